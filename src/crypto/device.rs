//! Device tokens (OWASP's "device cookies"): a client that has logged in as a user
//! before carries a signed token naming that user, and its login attempts are counted
//! against the token's own budget instead of the user's shared one. A stranger who
//! hammers a username then locks out only other strangers.

use getrandom::Error as RngError;

use crate::crypto::mac::MacKey;
use crate::domain::UnixTime;

/// A valid device token: which user it was issued for, and its own limiter key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The lower-cased username it was issued for.
    pub username: String,
    /// Random, unique per token: the device's limiter key.
    pub nonce: String,
    /// When it stops being good (its issue time plus the token lifetime).
    pub expires: UnixTime,
}

/// Longer than any token we issue; anything bigger is refused unread.
const MAX_LEN: usize = 256;

/// `v1:<expires>:<nonce>:<username>.<tag>`: usernames never contain `:`, and the tag
/// (base64url) never contains `.`, so both split unambiguously.
pub fn issue(key: &MacKey, username: &str, expires: UnixTime) -> Result<String, RngError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)?;
    let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let body = format!("v1:{}:{nonce}:{}", expires.0, username.to_lowercase());
    let tag = key.tag(body.as_bytes());
    Ok(format!("{body}.{tag}"))
}

/// The device a presented token names, if its tag verifies and it has not expired.
pub fn verify(key: &MacKey, presented: &str, now: UnixTime) -> Option<Device> {
    if presented.len() > MAX_LEN {
        return None;
    }
    let (body, tag) = presented.rsplit_once('.')?;
    if !key.verify(body.as_bytes(), tag) {
        return None;
    }
    let mut parts = body.splitn(4, ':');
    let (Some("v1"), Some(expires), Some(nonce), Some(username)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let expires: i64 = expires.parse().ok()?;
    (now.0 < expires).then(|| Device {
        username: username.to_owned(),
        nonce: nonce.to_owned(),
        expires: UnixTime(expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    fn key() -> MacKey {
        MacKey::new(Secret::new(vec![9; 32]), "device")
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let k = key();
        let t = issue(&k, "Alzy", UnixTime(1000)).unwrap();
        let d = verify(&k, &t, UnixTime(999)).unwrap();
        assert_eq!(d.username, "alzy");
        assert_eq!(d.nonce.len(), 32);
        assert_eq!(verify(&k, &t, UnixTime(1000)), None);
        // Each token is its own device.
        let other = issue(&k, "alzy", UnixTime(1000)).unwrap();
        assert_ne!(verify(&k, &other, UnixTime(0)).unwrap().nonce, d.nonce);
    }

    #[test]
    fn forged_or_altered_tokens_are_refused() {
        let k = key();
        let t = issue(&k, "alzy", UnixTime(1000)).unwrap();
        let altered = t.replacen("alzy", "root", 1);
        assert_eq!(verify(&k, &altered, UnixTime(0)), None);
        let other_key = MacKey::new(Secret::new(vec![1; 32]), "device");
        assert_eq!(verify(&other_key, &t, UnixTime(0)), None);
        for junk in ["", ".", "v1:1:2:3", "v1:1:2:3.", &"x".repeat(300)] {
            assert_eq!(verify(&k, junk, UnixTime(0)), None, "{junk}");
        }
    }
}
