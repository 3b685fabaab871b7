//! Asymmetric signing keys: generation and loading, by aws-lc-rs (the backend
//! `jsonwebtoken` signs and verifies with).
//! Private keys are kept as DER (Ed25519 and P-256: PKCS#8; RSA: PKCS#1, the forms
//! `jsonwebtoken` signs with); the public half is published as an RFC 7517 JWK.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};

use crate::crypto::algorithm::SigningAlgorithm;
use crate::crypto::jws::JwsSigner;

/// Smallest RSA modulus we sign with or load.
pub const RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[error("signing key: {0}")]
pub struct KeyError(pub String);

fn err(e: impl std::fmt::Display) -> KeyError {
    KeyError(e.to_string())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JOSE name of an asymmetric algorithm (`None` for HS256).
pub fn jose_algorithm(alg: SigningAlgorithm) -> Option<Algorithm> {
    match alg {
        SigningAlgorithm::Hs256 => None,
        SigningAlgorithm::EdDsa => Some(Algorithm::EdDSA),
        SigningAlgorithm::Es256 => Some(Algorithm::ES256),
        SigningAlgorithm::Rs256 => Some(Algorithm::RS256),
    }
}

/// A new private key for `alg` (asymmetric only), as DER, and a fresh random `kid`.
pub fn generate(alg: SigningAlgorithm) -> Result<(String, Vec<u8>), KeyError> {
    let rng = SystemRandom::new();
    let der = match alg {
        SigningAlgorithm::Hs256 => return Err(KeyError("HS256 keys come from TOKENGATE_SECRET_KEY".into())),
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng).map_err(err)?.as_ref().to_vec(),
        SigningAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(err)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Rs256 => {
            // aws-lc-rs writes PKCS#8; the RSA signer takes the PKCS#1 key inside it.
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(err)?;
            let pkcs8 = key.as_der().map_err(err)?;
            let info = pkcs8::PrivateKeyInfo::try_from(pkcs8.as_ref()).map_err(err)?;
            info.private_key.to_vec()
        }
    };
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(err)?;
    let prefix = match alg {
        SigningAlgorithm::EdDsa => "ed",
        SigningAlgorithm::Es256 => "es",
        _ => "rs",
    };
    Ok((format!("{prefix}-{}", b64(&id)), der))
}

/// A loaded asymmetric key: signs, verifies, and publishes its public JWK.
pub struct AsymmetricKey {
    pub kid: String,
    pub alg: Algorithm,
    /// The private key, parsed once.
    pub signer: Arc<JwsSigner>,
    pub decoding: DecodingKey,
    pub jwk: Value,
}

/// Load a stored key; the public half is derived from the private one.
pub fn load(kid: &str, alg: SigningAlgorithm, der: &[u8]) -> Result<AsymmetricKey, KeyError> {
    let (signer, decoding, mut jwk) = match alg {
        SigningAlgorithm::Hs256 => return Err(KeyError("HS256 is not an asymmetric algorithm".into())),
        SigningAlgorithm::EdDsa => {
            let key = Ed25519KeyPair::from_pkcs8(der).map_err(err)?;
            let x = b64(key.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x).map_err(err)?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            (JwsSigner::ed25519(key), decoding, jwk)
        }
        SigningAlgorithm::Es256 => {
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(err)?;
            // The uncompressed point: 0x04, then x and y, 32 bytes each.
            let point = key.public_key().as_ref();
            let [0x04, coordinates @ ..] = point else {
                return Err(KeyError("P-256 public key is not an uncompressed point".into()));
            };
            let (x, y) = coordinates.split_at(coordinates.len() / 2);
            let (x, y) = (b64(x), b64(y));
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(err)?;
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
            (JwsSigner::es256(key), decoding, jwk)
        }
        SigningAlgorithm::Rs256 => {
            let key = aws_lc_rs::rsa::KeyPair::from_der(der).map_err(err)?;
            if key.public_modulus_len() * 8 < RSA_BITS {
                return Err(KeyError(format!("RSA keys must have at least {RSA_BITS} bits")));
            }
            let public = key.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(err)?;
            let jwk = json!({"kty": "RSA", "n": n, "e": e});
            (JwsSigner::rs256(key), decoding, jwk)
        }
    };
    let jose = signer.algorithm();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(format!("{jose:?}"));
    jwk["use"] = json!("sig");
    Ok(AsymmetricKey {
        kid: kid.to_owned(),
        alg: jose,
        signer: Arc::new(signer),
        decoding,
        jwk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation};

    /// Signs with `key`, then verifies with its decoding key and with its published JWK.
    fn assert_signs_and_verifies(key: &AsymmetricKey, what: &str) {
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        let claims = json!({"sub": "x", "exp": 4_000_000_000u64});
        let token = key.signer.sign(&header, &claims).unwrap();
        let mut v = Validation::new(key.alg);
        v.validate_aud = false;
        assert!(
            jsonwebtoken::decode::<Value>(&token, &key.decoding, &v).is_ok(),
            "{what}"
        );
        // The JWK verifies too, through jsonwebtoken's own JWK parser.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        let from_jwk = DecodingKey::from_jwk(&jwk).unwrap();
        assert!(
            jsonwebtoken::decode::<Value>(&token, &from_jwk, &v).is_ok(),
            "{what} via JWK"
        );
        assert!(key.jwk.get("d").is_none() && key.jwk.get("p").is_none());
        assert_eq!(key.jwk["kid"], key.kid.as_str());
        assert_eq!(key.jwk["use"], "sig");
    }

    #[test]
    fn each_algorithm_signs_verifies_and_publishes_only_public_parts() {
        for alg in [
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
        ] {
            let (kid, der) = generate(alg).unwrap();
            assert_signs_and_verifies(&load(&kid, alg, &der).unwrap(), &format!("{alg:?}"));
        }
    }

    #[test]
    fn keys_stored_by_earlier_releases_still_load() {
        // Ed25519 PKCS#8 v1, P-256 PKCS#8, RSA PKCS#1: the forms the RustCrypto
        // generator wrote (tests/fixtures/keys/README.md).
        let fixtures = [
            (
                SigningAlgorithm::EdDsa,
                include_str!("../../tests/fixtures/keys/ed25519-pkcs8v1.b64"),
            ),
            (
                SigningAlgorithm::Es256,
                include_str!("../../tests/fixtures/keys/p256-pkcs8.b64"),
            ),
            (
                SigningAlgorithm::Rs256,
                include_str!("../../tests/fixtures/keys/rsa2048-pkcs1.b64"),
            ),
        ];
        for (alg, b64) in fixtures {
            let der = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap();
            let key = load("old-key", alg, &der).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_signs_and_verifies(&key, &format!("stored {alg:?}"));
        }
    }

    #[test]
    fn generated_rsa_keys_are_pkcs1_of_the_minimum_size() {
        let (_, der) = generate(SigningAlgorithm::Rs256).unwrap();
        let key = aws_lc_rs::rsa::KeyPair::from_der(&der).expect("PKCS#1, as earlier releases stored");
        assert_eq!(key.public_modulus_len() * 8, RSA_BITS);
    }

    #[test]
    fn alg_names_are_jose() {
        let (kid, der) = generate(SigningAlgorithm::EdDsa).unwrap();
        assert_eq!(load(&kid, SigningAlgorithm::EdDsa, &der).unwrap().jwk["alg"], "EdDSA");
        assert!(
            load(&kid, SigningAlgorithm::Es256, &der).is_err(),
            "a key loads only as its own kind"
        );
    }
}
