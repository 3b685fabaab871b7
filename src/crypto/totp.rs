//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits,
//! 30-second steps, as every authenticator app computes them. The HMAC and SHA-1 are
//! RustCrypto's; what is here is the RFCs' counter encoding and dynamic truncation.
//! Which step a code may be for (the window) and that a step is accepted once per
//! account are auth's rules: this module only says which step, if any, a code matches.

use std::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::domain::UnixTime;

/// Seconds per step (RFC 6238's X, the default every app uses).
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret: 160 bits, the size of SHA-1's output (RFC 4226 §4 R6).
const SECRET_BYTES: usize = 20;

/// A TOTP shared secret. It never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut raw = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut raw)?;
        Ok(Self(raw))
    }

    /// From its bytes (as stored, after unsealing).
    pub fn from_bytes(raw: Vec<u8>) -> Self {
        Self(raw)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as authenticator apps take it typed or in a
    /// `otpauth://` URI.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The code for `step` (RFC 4226's counter), `digits` long.
    fn code(&self, step: u64, digits: u32) -> u32 {
        // Any key length is valid for HMAC.
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        // Dynamic truncation (RFC 4226 §5.3).
        let offset = usize::from(digest[19] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset],
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]) & 0x7fff_ffff;
        binary % 10u32.pow(digits)
    }

    /// The code for `step`, as an app shows it (zero-padded).
    pub fn code_at(&self, step: u64) -> String {
        format!("{:0width$}", self.code(step, DIGITS), width = DIGITS as usize)
    }

    /// The step among `steps` whose code `presented` is, if any. Every candidate is
    /// compared, in constant time, so the answer's timing says nothing of which.
    pub fn matching_step(&self, presented: &str, steps: impl IntoIterator<Item = u64>) -> Option<u64> {
        if presented.len() != DIGITS as usize || !presented.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut found = None;
        for step in steps {
            if bool::from(self.code_at(step).as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(step);
            }
        }
        found
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

/// The step `at` falls in.
pub fn step_at(at: UnixTime) -> u64 {
    u64::try_from(at.0.div_euclid(STEP_SECS)).unwrap_or(0)
}

/// The `otpauth://` URI an authenticator app reads from a QR code (Google's Key URI
/// format): the label is `issuer:account`, and the parameters repeat the issuer and
/// state the RFC's defaults explicitly.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC);
    let account_enc = utf8_percent_encode(account, NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret.base32()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(rfc_secret().code(counter as u64, 6), code, "counter {counter}");
        }
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_for_sha1() {
        for (time, code) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(rfc_secret().code(step_at(UnixTime(time)), 8), code, "T={time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_only_and_is_zero_padded() {
        let secret = rfc_secret();
        let step = step_at(UnixTime(1111111109));
        let code = secret.code_at(step);
        assert_eq!(code, "081804", "six digits, leading zero kept");
        assert_eq!(secret.matching_step(&code, [step - 1, step, step + 1]), Some(step));
        assert_eq!(secret.matching_step(&code, [step + 1, step + 2]), None);
        for bad in ["81804", "0818040", "08180a", "", "０８１８０４"] {
            assert_eq!(secret.matching_step(bad, [step]), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_and_account_and_carries_the_secret_in_base32() {
        let secret = rfc_secret();
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = otpauth_uri("tokengate", "mara@example.com", &secret);
        assert_eq!(
            uri,
            "otpauth://totp/tokengate:mara%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=tokengate&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(format!("{secret:?}"), "TotpSecret(***)");
        let fresh = TotpSecret::generate().unwrap();
        assert_eq!(fresh.as_bytes().len(), 20);
        assert_ne!(fresh, TotpSecret::generate().unwrap());
    }
}
