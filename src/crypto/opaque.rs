//! Opaque bearer secrets: 32 random bytes, base64url (43 characters), stored only as
//! their SHA-256. One shape for every kind (refresh tokens, one-time mail tokens); the
//! kind is a type parameter, so a hash of one kind cannot be looked up as another.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What a kind of opaque token is called (in `Debug`, which never shows the secret).
pub trait TokenKind: Send + Sync + 'static {
    const NAME: &'static str;
}

/// A refresh token's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refresh {}

impl TokenKind for Refresh {
    const NAME: &'static str = "RefreshToken";
}

/// A one-time mail token's kind (verification, reset, email change, magic link).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OneTime {}

impl TokenKind for OneTime {
    const NAME: &'static str = "OneTimeToken";
}

/// A recovery code's kind (see `crypto::recovery_codes`: its own shape, this hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Recovery {}

impl TokenKind for Recovery {
    const NAME: &'static str = "RecoveryCode";
}

/// An OAuth client's secret (confidential clients): shown once, stored as its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientSecretKind {}

impl TokenKind for ClientSecretKind {
    const NAME: &'static str = "ClientSecret";
}

/// An OAuth authorization code: handed to the browser once, exchanged once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthCodeKind {}

impl TokenKind for AuthCodeKind {
    const NAME: &'static str = "AuthorizationCode";
}

/// The secret itself: handed to the client once, never stored.
pub struct Opaque<K: TokenKind>(String, PhantomData<K>);

impl<K: TokenKind> Opaque<K> {
    /// A fresh token from the OS's random source, with its hash.
    pub fn generate() -> Result<(Self, OpaqueHash<K>), getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        Ok(Self::from_text(URL_SAFE_NO_PAD.encode(raw)))
    }

    /// A token whose text was made elsewhere (a derived successor), with its hash.
    pub(crate) fn from_text(text: String) -> (Self, OpaqueHash<K>) {
        let hash = OpaqueHash::of(&text);
        (Self(text, PhantomData), hash)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<K: TokenKind> fmt::Debug for Opaque<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(***)", K::NAME)
    }
}

/// SHA-256 of a token, hex: all the store ever sees. Lookup by hash is constant-time
/// in effect: an attacker cannot steer a hash prefix.
pub struct OpaqueHash<K: TokenKind>(String, PhantomData<K>);

impl<K: TokenKind> OpaqueHash<K> {
    pub fn of(presented: &str) -> Self {
        let digest = Sha256::digest(presented.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02x}")).collect(), PhantomData)
    }

    /// Well-formed tokens only (43 base64url characters); anything else cannot exist.
    pub fn of_presented(presented: &str) -> Option<Self> {
        let ok = presented.len() == 43
            && presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self::of(presented))
    }

    pub fn from_store(hex: String) -> Self {
        Self(hex, PhantomData)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// By hand: a derive would ask the kind (an empty enum) to be Clone, Eq and so on too.
impl<K: TokenKind> Clone for OpaqueHash<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<K: TokenKind> PartialEq for OpaqueHash<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: TokenKind> Eq for OpaqueHash<K> {}

impl<K: TokenKind> std::hash::Hash for OpaqueHash<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<K: TokenKind> fmt::Debug for OpaqueHash<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}Hash({})", K::NAME, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_43_characters_and_their_hashes_64_hex() {
        let (a, ha) = Opaque::<OneTime>::generate().unwrap();
        let (b, hb) = Opaque::<OneTime>::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        assert_eq!(OpaqueHash::<OneTime>::of_presented(a.expose()), Some(ha.clone()));
        assert_ne!(ha, hb);
        assert_eq!(ha.as_str().len(), 64);
        assert!(ha.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        for bad in [
            "short",
            &"a".repeat(44),
            &format!("{}=", &a.expose()[..42]),
            &"é".repeat(22),
        ] {
            assert!(OpaqueHash::<OneTime>::of_presented(bad).is_none(), "{bad}");
        }
        assert_eq!(format!("{a:?}"), "OneTimeToken(***)");
    }
}
