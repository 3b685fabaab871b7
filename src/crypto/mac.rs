//! HMAC-SHA256 tags for values the server hands out and must recognise later (CSRF
//! tokens bound to a session, device tokens), from the `hmac` crate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::domain::Secret;

type HmacSha256 = Hmac<Sha256>;

/// A key for one purpose; tags made for one purpose never verify for another.
#[derive(Clone, Debug)]
pub struct MacKey {
    key: Secret,
    purpose: &'static str,
}

impl MacKey {
    /// At least 32 random bytes.
    pub fn new(key: Secret, purpose: &'static str) -> Self {
        Self { key, purpose }
    }

    fn mac(&self, message: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(self.key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(self.purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message);
        mac
    }

    /// The tag of `message`, as bytes.
    pub fn raw_tag(&self, message: &[u8]) -> [u8; 32] {
        self.mac(message).finalize().into_bytes().into()
    }

    /// The tag of `message`, base64url.
    pub fn tag(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(message).finalize().into_bytes())
    }

    /// Does `tag` (base64url) belong to `message`? Compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.mac(message).verify_slice(&raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(purpose: &'static str) -> MacKey {
        MacKey::new(Secret::new(vec![7; 32]), purpose)
    }

    #[test]
    fn tags_verify_only_for_their_message_and_purpose() {
        let k = key("csrf");
        let t = k.tag(b"session-1");
        assert!(k.verify(b"session-1", &t));
        assert!(!k.verify(b"session-2", &t));
        assert!(!key("device").verify(b"session-1", &t));
        assert!(!k.verify(b"session-1", "not base64 !"));
        assert!(!k.verify(b"session-1", ""));
    }
}
