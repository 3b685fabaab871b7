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
fn weakness(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let distinct = bytes.iter().collect::<BTreeSet<_>>().len();
    // Few enough that no 32-character output of `openssl rand -hex 16` is ever near it
    // (fewer than 6 of 16 symbols: ~10^-13); zxcvbn judges the rest.
    if distinct < 6 {
        return Some("has too few distinct characters".into());
    }
    if repeats_a_block(bytes) {
        return Some("repeats one block".into());
    }
    if is_words_and_digits(v) || mostly_dictionary_words(v) {
        return Some("is made of dictionary words".into());
    }
    // zxcvbn (dictionaries of words, names and leaked passwords, keyboard walks,
    // sequences, dates, l33t): its estimate saturates near 10^19 guesses, so anything
    // below that is a pattern a cracker's rules reach. Random output of any alphabet
    // saturates it (the `openssl_rand_at_scale` test; BENCHMARKS.md).
    let head: String = v.chars().take(ZXCVBN_MAX_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&head, &[]).guesses_log10();
    if estimate < MIN_GUESSES_LOG10 {
        return Some(format!("falls to about 10^{estimate:.0} guesses (zxcvbn)"));
    }
    None
}

/// Below this many guesses (log10) a secret is refused: zxcvbn's ceiling, ~2^63.
const MIN_GUESSES_LOG10: f64 = 19.0;

/// zxcvbn slows down on long input; a secret's first 64 characters are enough to tell
/// a pattern from random output (the rest of a longer secret only adds to it).
const ZXCVBN_MAX_CHARS: usize = 64;

/// The letters of `v`, in runs split at every non-letter and at each lower-to-upper
/// case change ("TheQuickBrown" -> The, Quick, Brown): if runs that are dictionary words
/// (or split into them) cover most of the value, it is a phrase, however long.
fn mostly_dictionary_words(v: &str) -> bool {
    let chars: Vec<char> = v.chars().collect();
    let mut covered = 0;
    let mut start = 0;
    for i in 1..=chars.len() {
        let ends = i == chars.len()
            || !chars[i].is_ascii_alphabetic()
            || !chars[i - 1].is_ascii_alphabetic()
            || (chars[i - 1].is_ascii_lowercase() && chars[i].is_ascii_uppercase());
        if ends {
            let run: String = chars[start..i].iter().collect::<String>().to_ascii_lowercase();
            if run.len() >= 3 && run.bytes().all(|b| b.is_ascii_alphabetic()) && splits_into_words(&run) {
                covered += run.len();
            }
            start = i;
        }
    }
    covered * 10 >= chars.len() * 6
}

/// `run` (lower-case letters) is a sequence of dictionary words of 3+ letters.
fn splits_into_words(run: &str) -> bool {
    let n = run.len();
    let mut reachable = vec![false; n + 1];
    reachable[0] = true;
    for i in 0..n {
        if !reachable[i] {
            continue;
        }
        for j in (i + 3)..=n.min(i + 16) {
            if !reachable[j] && is_dictionary_word(&run[i..j]) {
                reachable[j] = true;
            }
        }
    }
    reachable[n]
}

/// zxcvbn reads `w` as one word of its dictionaries (reversed or l33t included: a
/// cracker's rules try those too).
fn is_dictionary_word(w: &str) -> bool {
    use zxcvbn::matching::patterns::MatchPattern;
    let estimate = zxcvbn::zxcvbn(w, &[]);
    match estimate.sequence() {
        [only] => matches!(only.pattern, MatchPattern::Dictionary(_)) && only.token.len() == w.len(),
        _ => false,
    }
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
            // The second review's examples: a phrase, a keyboard walk, a pangram.
            "correcthorsebatterystaple12345678",
            "qwertyuiopasdfghjklzxcvbnm123456",
            "TheQuickBrownFoxJumpsOverTheLazyDog",
            "thequickbrownfoxjumpsoverthelazydog",
            "the-quick-brown-fox-jumps-over-the-lazy-dog",
            "1234567890qwertyuiopasdfghjkl;zxc",
            "ThisIsMyVeryLongAndSecureJwtSecretKey2024",
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

    /// `n` pseudo-random byte strings of `len` bytes, always the same ones (SHA-256 in
    /// counter mode from a fixed seed): the test cannot fail by chance.
    fn fixed_random(n: usize, len: usize) -> Vec<Vec<u8>> {
        use sha2::{Digest as _, Sha256};
        (0..n)
            .map(|i| {
                let mut out = Vec::new();
                let mut block = 0u32;
                while out.len() < len {
                    let d = Sha256::new()
                        .chain_update(b"tokengate secret test")
                        .chain_update((i as u64).to_le_bytes())
                        .chain_update(block.to_le_bytes())
                        .finalize();
                    out.extend_from_slice(&d);
                    block += 1;
                }
                out.truncate(len);
                out
            })
            .collect()
    }

    /// 300 of each format here; `TOKENGATE_SECRET_SAMPLES=100000 cargo test --lib
    /// openssl_rand_at_scale -- --ignored` runs the same check at scale (BENCHMARKS.md).
    const SAMPLES: usize = 300;

    #[test]
    #[ignore = "minutes; run by hand (BENCHMARKS.md)"]
    fn openssl_rand_at_scale() {
        use base64::Engine as _;
        let n = std::env::var("TOKENGATE_SECRET_SAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let mut refused = Vec::new();
        for raw in fixed_random(n, 48) {
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let digits: String = raw[..32].iter().map(|b| char::from(b'0' + b % 10)).collect();
            for candidate in [
                hex[..32].to_owned(),
                hex[..64].to_owned(),
                base64::engine::general_purpose::STANDARD.encode(&raw),
                digits,
            ] {
                if check_secret(&candidate).is_err() {
                    refused.push(candidate);
                }
            }
        }
        println!("{n} samples of each format, refused: {refused:?}");
        assert!(refused.is_empty());
    }

    #[test]
    fn what_openssl_rand_prints_is_never_refused() {
        use base64::Engine as _;
        // The digits-only output that the old rule refused (`openssl rand -hex 16`).
        assert!(check_secret("28572203647479534054483371013479").is_ok());
        for raw in fixed_random(SAMPLES, 48) {
            // openssl rand -hex 16 / -hex 32 / -base64 48 / -base64 32 (44 chars).
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            for candidate in [
                hex[..32].to_owned(),
                hex[..64].to_owned(),
                base64::engine::general_purpose::STANDARD.encode(&raw),
                base64::engine::general_purpose::STANDARD.encode(&raw[..32]),
            ] {
                assert!(check_secret(&candidate).is_ok(), "{candidate}");
            }
            // The digits-only case, whatever its odds.
            let digits: String = raw[..32].iter().map(|b| char::from(b'0' + b % 10)).collect();
            assert!(check_secret(&digits).is_ok(), "{digits}");
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
