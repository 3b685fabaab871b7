//! Is a configured HS256 secret strong enough to sign with? RFC 8725 §3.5: a human-made
//! secret (a placeholder, words and digits, a repeated block, a handful of characters)
//! falls to an offline guess from one captured token, so start-up refuses it.

use std::collections::BTreeSet;

use crate::domain::Secret;

/// Values that must never be used as a signing secret.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change_me",
    "change-me",
    "your-secret-key",
    "your_secret_key",
    "supersecret",
    "mysecret",
    // The example key of FastAPI's security tutorial, copied into countless apps.
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
];

/// Words people build secrets from. None is spelled with a-f only, so the letters of a
/// random hex string never read as words.
const WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "secret",
    "secrets",
    "super",
    "admin",
    "root",
    "user",
    "login",
    "letmein",
    "welcome",
    "qwerty",
    "asdf",
    "zxcv",
    "monkey",
    "dragon",
    "master",
    "shadow",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "iloveyou",
    "trustno",
    "hello",
    "test",
    "testing",
    "token",
    "tokens",
    "jwt",
    "key",
    "keys",
    "signing",
    "sign",
    "private",
    "my",
    "your",
    "the",
    "app",
    "api",
    "auth",
    "server",
    "service",
    "prod",
    "production",
    "dev",
    "development",
    "staging",
    "default",
    "example",
    "sample",
    "demo",
    "change",
    "changeme",
    "replace",
    "this",
    "with",
    "random",
    "string",
    "long",
    "very",
    "strong",
    "top",
    "is",
    "not",
    "and",
    "for",
    "of",
    "to",
    "in",
    "on",
    "it",
    "an",
    "i",
    "me",
    "we",
    "you",
    "our",
    "new",
    "old",
    "tokengate",
    "fastapi",
    "django",
    "flask",
    "rails",
    "spring",
    "node",
    "express",
    "hunter",
    "summer",
    "winter",
    "autumn",
    "monday",
    "friday",
    "january",
    "june",
    "july",
    "love",
    "god",
    "money",
    "secure",
    "security",
    "access",
    "refresh",
    "session",
    "cookie",
    "hmac",
    "sha",
    "hs",
    "encryption",
    "encrypt",
    "crypto",
    "salt",
    "pepper",
];

const HINT: &str = "generate one with: openssl rand -base64 48";

/// Refuse short secrets, placeholders and secrets a guesser would try first.
pub fn check_secret(v: &str) -> Result<Secret, String> {
    let lowered = v.to_ascii_lowercase();
    let squashed: String = lowered.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let placeholder = PLACEHOLDER_SECRETS.contains(&lowered.as_str())
        || squashed.contains("changeme")
        || squashed.contains("yoursecret")
        || squashed.contains("replaceme");
    if placeholder {
        return Err(format!("is a known placeholder; {HINT}"));
    }
    if v.len() < 32 {
        return Err(format!("must be at least 32 bytes (got {}); {HINT}", v.len()));
    }
    if let Some(why) = weakness(v) {
        return Err(format!("{why}, so it can be guessed; {HINT}"));
    }
    Ok(Secret::new(v.as_bytes().to_vec()))
}

/// Why `v` (already long enough) is too predictable, if it is.
fn weakness(v: &str) -> Option<&'static str> {
    let bytes = v.as_bytes();
    let distinct = bytes.iter().collect::<BTreeSet<_>>().len();
    if distinct < 8 {
        return Some("has too few distinct characters");
    }
    if repeats_a_block(bytes) {
        return Some("repeats one block");
    }
    let classes = [
        bytes.iter().any(u8::is_ascii_lowercase),
        bytes.iter().any(u8::is_ascii_uppercase),
        bytes.iter().any(u8::is_ascii_digit),
        bytes.iter().any(|b| !b.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() == 1 && distinct < 12 {
        return Some("uses one kind of character with few distinct ones");
    }
    if is_words_and_digits(v) {
        return Some("is made of dictionary words and digits");
    }
    None
}

/// The whole value is a block of at most half its length, repeated (the last copy may
/// be cut short): `abcd1234abcd1234abcd`.
fn repeats_a_block(b: &[u8]) -> bool {
    (1..=b.len() / 2).any(|p| (p..b.len()).all(|i| b[i] == b[i - p]))
}

/// Strip digits and punctuation; what is left is nothing but dictionary words.
fn is_words_and_digits(v: &str) -> bool {
    let letters: Vec<u8> = v
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if letters.is_empty() {
        return false;
    }
    // reachable[i]: letters[..i] splits into words.
    let mut reachable = vec![false; letters.len() + 1];
    reachable[0] = true;
    for i in 0..letters.len() {
        if !reachable[i] {
            continue;
        }
        for w in WORDS {
            if letters[i..].starts_with(w.as_bytes()) {
                reachable[i + w.len()] = true;
            }
        }
    }
    reachable[letters.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_refused() {
        for bad in [
            "changeme",
            "secret",
            "CHANGE_ME_TO_A_LONG_RANDOM_STRING_PLEASE",
            "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
            "short-but-random-9f8a",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            // The review's examples: words with digits, one 8-character block repeated.
            "password1234password1234password",
            "k9X!m2Qzk9X!m2Qzk9X!m2Qzk9X!m2Qz",
            "SuperSecretPassword2024!MyApp#Prod",
            "my-very-long-jwt-signing-key-for-production-2024",
            "abcdefghabcdefghabcdefghabcdefgh",
            "01234567890123456789012345678901",
            "zyxwvutszyxwvutszyxwvutszyxwvuts",
        ] {
            assert!(check_secret(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_secrets_pass() {
        for good in [
            "q3vJ9c1XkP0sZb7Lr2mYt8Wn5Hd4Ga6Fe",
            // openssl rand -hex 16 / -base64 48
            "3f9a0c27d1e84b6f5a2c9e07b4d18f63",
            "e1b2f07c94d3a58e6f0b1c2d3e4f5a69",
            "Yq0m3nK7v1R9bT2xW8cZ5pL4hJ6dF0gS3aE1uI7oN9kM2vB5zX8rT4yQ1wP6sD0f",
            "test-secret-for-tokengate-tests-0123456789abcdef",
        ] {
            assert!(check_secret(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn random_hex_is_never_refused() {
        // 32 hex characters as `openssl rand -hex 16` prints them, from the OS RNG.
        for _ in 0..2000 {
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw).unwrap();
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            assert!(check_secret(&hex).is_ok(), "{hex}");
        }
    }

    #[test]
    fn no_word_is_spelled_in_hex_letters() {
        for w in WORDS {
            assert!(!w.bytes().all(|b| (b'a'..=b'f').contains(&b)), "{w}");
        }
    }

    #[test]
    fn every_message_is_one_line() {
        let err = check_secret("password1234password1234password").unwrap_err();
        assert!(!err.contains('\n') && err.contains("openssl rand"), "{err}");
    }
}
