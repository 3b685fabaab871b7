//! Recovery codes: the second factor of a user who lost their authenticator. Each is 80
//! random bits, written as 16 base32 letters in four groups (`abcd-efgh-ijkl-mnop`) to
//! be copied from paper; stored only as the SHA-256 of its letters.

use std::fmt;

use super::opaque::{OpaqueHash, Recovery};

/// How many a user is given at once.
pub const CODES_PER_SET: usize = 10;
/// Letters in a code (5 bits each: 80 bits).
const LETTERS: usize = 16;
/// RFC 4648's base32 alphabet, lower-cased: no 0/1/8/9, so no O/0 or I/1 mix-ups.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A stored recovery code's hash.
pub type RecoveryCodeHash = OpaqueHash<Recovery>;

/// A recovery code, shown to its user once. It never prints itself in `Debug`.
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// A fresh code from the OS's random source, with its hash.
    pub fn generate() -> Result<(Self, RecoveryCodeHash), getrandom::Error> {
        let mut raw = [0u8; LETTERS];
        getrandom::fill(&mut raw)?;
        // 256 is a multiple of 32: each byte's low five bits are uniform.
        let letters: String = raw.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect();
        let hash = RecoveryCodeHash::of(&letters);
        Ok((Self(letters), hash))
    }

    /// A fresh set of [`CODES_PER_SET`].
    pub fn generate_set() -> Result<(Vec<Self>, Vec<RecoveryCodeHash>), getrandom::Error> {
        let mut codes = Vec::with_capacity(CODES_PER_SET);
        let mut hashes = Vec::with_capacity(CODES_PER_SET);
        for _ in 0..CODES_PER_SET {
            let (code, hash) = Self::generate()?;
            codes.push(code);
            hashes.push(hash);
        }
        Ok((codes, hashes))
    }

    /// As shown: four groups of four letters.
    pub fn display(&self) -> String {
        let b = self.0.as_bytes();
        b.chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The hash of a code as a user typed it (any case, with or without the dashes and
    /// spaces); `None` when it cannot be a code.
    pub fn hash_of_presented(presented: &str) -> Option<RecoveryCodeHash> {
        if presented.len() > 64 {
            return None;
        }
        let letters: String = presented
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let ok = letters.len() == LETTERS && letters.bytes().all(|b| ALPHABET.contains(&b));
        ok.then(|| RecoveryCodeHash::of(&letters))
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_found_again_however_it_is_typed_and_nothing_else_is() {
        let (code, hash) = RecoveryCode::generate().unwrap();
        let shown = code.display();
        assert_eq!(shown.len(), 19);
        assert_eq!(shown.matches('-').count(), 3);
        for typed in [
            shown.clone(),
            shown.to_uppercase(),
            shown.replace('-', ""),
            shown.replace('-', " "),
            format!(" {shown} "),
        ] {
            assert_eq!(RecoveryCode::hash_of_presented(&typed), Some(hash.clone()), "{typed}");
        }
        for bad in [
            "",
            "123456",
            "abcd-efgh-ijkl-mno",
            "abcd-efgh-ijkl-mnop-q",
            "abcd-efgh-ijkl-mn01",
            &"a".repeat(100),
        ] {
            assert!(RecoveryCode::hash_of_presented(bad).is_none(), "{bad}");
        }
        assert_eq!(format!("{code:?}"), "RecoveryCode(***)");
    }

    #[test]
    fn a_set_is_ten_distinct_codes() {
        let (codes, hashes) = RecoveryCode::generate_set().unwrap();
        assert_eq!(codes.len(), CODES_PER_SET);
        let mut unique = hashes.iter().map(|h| h.as_str().to_owned()).collect::<Vec<_>>();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), CODES_PER_SET);
        assert!(codes.iter().all(|c| c.0.bytes().all(|b| ALPHABET.contains(&b))));
    }
}
