//! Signing a JWT with a key parsed once. `jsonwebtoken::encode` parses the private key
//! again for every signature, and aws-lc checks an RSA key's consistency when it
//! parses one: half of an RS256 signature's time here (BENCHMARKS.md, issue 27). This
//! keeps the parsed key and writes the same compact JWS (RFC 7515 §7.1); the signature
//! itself is aws-lc-rs's, and verification stays jsonwebtoken's.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

/// A parsed private key (or HMAC secret) and the one algorithm it signs with.
pub struct JwsSigner {
    alg: Algorithm,
    key: Key,
    rng: SystemRandom,
}

enum Key {
    /// Boxed: aws-lc's HMAC key holds its precomputed state inline (over 1 KiB).
    Hmac(Box<hmac::Key>),
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("header names {0:?}, the key signs {1:?}")]
    WrongAlgorithm(Algorithm, Algorithm),
    #[error("{0}")]
    Encoding(String),
    #[error("the signature failed")]
    Signature,
}

impl JwsSigner {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(
            Algorithm::HS256,
            Key::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
        )
    }

    pub fn rs256(key: RsaKeyPair) -> Self {
        Self::new(Algorithm::RS256, Key::Rsa(key))
    }

    /// A P-256 key parsed for `ECDSA_P256_SHA256_FIXED_SIGNING`: JWS writes the
    /// signature as r || s, not DER (RFC 7518 §3.4).
    pub fn es256(key: EcdsaKeyPair) -> Self {
        Self::new(Algorithm::ES256, Key::Ecdsa(key))
    }

    pub fn ed25519(key: Ed25519KeyPair) -> Self {
        Self::new(Algorithm::EdDSA, Key::Ed25519(key))
    }

    fn new(alg: Algorithm, key: Key) -> Self {
        Self {
            alg,
            key,
            rng: SystemRandom::new(),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// `base64url(header) . base64url(claims) . base64url(signature)`; the header must
    /// name this key's algorithm.
    pub fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, JwsError> {
        if header.alg != self.alg {
            return Err(JwsError::WrongAlgorithm(header.alg, self.alg));
        }
        let mut out = String::with_capacity(512);
        encode_part(header, &mut out)?;
        out.push('.');
        encode_part(claims, &mut out)?;
        let signature = self.signature(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(out)
    }

    fn signature(&self, message: &[u8]) -> Result<Vec<u8>, JwsError> {
        match &self.key {
            Key::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Key::Rsa(key) => {
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| JwsError::Signature)?;
                Ok(sig)
            }
            Key::Ecdsa(key) => Ok(key
                .sign(&self.rng, message)
                .map_err(|_| JwsError::Signature)?
                .as_ref()
                .to_vec()),
            Key::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }
}

/// A JSON part of the token, base64url without padding, appended to `out`.
fn encode_part<T: Serialize + ?Sized>(part: &T, out: &mut String) -> Result<(), JwsError> {
    let json = serde_json::to_vec(part).map_err(|e| JwsError::Encoding(e.to_string()))?;
    URL_SAFE_NO_PAD.encode_string(json, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::{Value, json};

    #[test]
    fn hs256_tokens_verify_with_jsonwebtoken_and_match_its_encoding() {
        let secret = [9u8; 32];
        let signer = JwsSigner::hs256(&secret);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let claims = json!({"sub": "x", "exp": 4_000_000_000u64});
        let ours = signer.sign(&header, &claims).unwrap();
        // HMAC is deterministic: byte for byte what jsonwebtoken writes.
        let theirs = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(ours, theirs);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        let got = jsonwebtoken::decode::<Value>(&ours, &DecodingKey::from_secret(&secret), &v).unwrap();
        assert_eq!(got.claims["sub"], "x");
        assert_eq!(got.header.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn a_header_naming_another_algorithm_is_refused() {
        let signer = JwsSigner::hs256(b"secret");
        let err = signer.sign(&Header::new(Algorithm::RS256), &json!({})).unwrap_err();
        assert!(matches!(
            err,
            JwsError::WrongAlgorithm(Algorithm::RS256, Algorithm::HS256)
        ));
    }
}
