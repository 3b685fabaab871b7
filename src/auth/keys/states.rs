//! What each stored key is doing at a moment, as the key ring built from the same rows
//! would use it: for `tokengate keys list`.

use crate::domain::UnixTime;
use crate::store::StoredKey;

/// What a stored key is doing at a moment, as the key ring built from the same rows
/// would use it (`load_ring`, `KeyRing::signing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens now (the active key once due, or the retired key that signs
    /// until it is; or the active key before its time when no retired key is left).
    Signing,
    /// Active, published, not signing yet.
    Next,
    /// Retired: verifies the tokens it signed until they expire.
    Verifying,
    /// Stopped verifying before the tokens it signed would have expired.
    Revoked,
    /// Retired, and every token it signed has expired.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Next => "next (published)",
            Self::Verifying => "retired (verifying)",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// The state of each of `keys` (as `signing_keys` lists them) at `now`.
pub fn key_states(keys: &[StoredKey], access_ttl_secs: u64, now: UnixTime) -> Vec<KeyState> {
    let live = |k: &StoredKey| k.retires_at.is_some_and(|t| now < t);
    let active = keys.iter().find(|k| k.active);
    // The newest retired key still verifying signs until the active key is due.
    let stand_in = keys
        .iter()
        .filter(|k| !k.active && live(k))
        .max_by_key(|k| (k.created_at, k.signs_from))
        .filter(|_| active.is_some_and(|a| now < a.signs_from));
    keys.iter()
        .map(|k| {
            if k.active {
                return if now < k.signs_from && stand_in.is_some() {
                    KeyState::Next
                } else {
                    KeyState::Signing
                };
            }
            if stand_in.is_some_and(|s| s.kid == k.kid) {
                return KeyState::Signing;
            }
            if live(k) {
                return KeyState::Verifying;
            }
            // It stopped signing when its successor did (or when it was cut off); its
            // last token expired one lifetime after that.
            let successor_from = keys
                .iter()
                .filter(|s| s.created_at >= k.created_at && s.kid != k.kid)
                .map(|s| s.signs_from)
                .min();
            let retires = k.retires_at.unwrap_or(now);
            let stopped = successor_from.map_or(retires, |f| f.min(retires));
            if retires < stopped.plus(access_ttl_secs) {
                KeyState::Revoked
            } else {
                KeyState::Expired
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{KeyState, key_states};
    use crate::crypto::keys::SigningAlgorithm;
    use crate::domain::UnixTime;
    use crate::store::StoredKey;

    const TTL: u64 = 900;

    fn key(kid: &str, active: bool, created: i64, signs_from: i64, retires_at: Option<i64>) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            purpose: crate::domain::KeyPurpose::Access,
            algorithm: SigningAlgorithm::EdDsa,
            private_der: Vec::new(),
            active,
            created_at: UnixTime(created),
            signs_from: UnixTime(signs_from),
            retires_at: retires_at.map(UnixTime),
        }
    }

    #[test]
    fn a_scheduled_rotation_keeps_the_old_key_signing_until_the_new_one_is_due() {
        // Rotated at 1000: the new key signs from 1300, the old verifies until 2200.
        let keys = [key("new", true, 1000, 1300, None), key("old", false, 0, 0, Some(2200))];
        let at = |t| key_states(&keys, TTL, UnixTime(t));
        assert_eq!(at(1000), [KeyState::Next, KeyState::Signing]);
        assert_eq!(at(1300), [KeyState::Signing, KeyState::Verifying]);
        assert_eq!(at(2200), [KeyState::Signing, KeyState::Expired]);
    }

    #[test]
    fn a_revoked_key_is_called_revoked_and_the_next_key_signs_at_once() {
        // After the scheduled rotation above, the old key is revoked at 1100.
        let keys = [key("new", true, 1000, 1300, None), key("old", false, 0, 0, Some(1100))];
        assert_eq!(
            key_states(&keys, TTL, UnixTime(1100)),
            [KeyState::Signing, KeyState::Revoked]
        );
        assert_eq!(
            key_states(&keys, TTL, UnixTime(9999)),
            [KeyState::Signing, KeyState::Revoked]
        );
        // `rotate --now` at 1000: the new key signs at once, the old stopped verifying then.
        let keys = [key("new", true, 1000, 1000, None), key("old", false, 0, 0, Some(1000))];
        assert_eq!(
            key_states(&keys, TTL, UnixTime(1000)),
            [KeyState::Signing, KeyState::Revoked]
        );
    }
}
