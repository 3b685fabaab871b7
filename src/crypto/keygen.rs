//! Asymmetric signing keys: generation and loading, all by RustCrypto crates.
//! Private keys are kept as DER (Ed25519 and P-256: PKCS#8; RSA: PKCS#1, the forms
//! `jsonwebtoken` signs with); the public half is published as an RFC 7517 JWK.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand_core::OsRng;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use crate::crypto::keys::SigningAlgorithm;

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
    let der = match alg {
        SigningAlgorithm::Hs256 => return Err(KeyError("HS256 keys come from TOKENGATE_SECRET_KEY".into())),
        SigningAlgorithm::EdDsa => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(err)?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            key.to_pkcs8_der().map_err(err)?.as_bytes().to_vec()
        }
        SigningAlgorithm::Es256 => {
            let key = p256::SecretKey::random(&mut OsRng);
            p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                .map_err(err)?
                .as_bytes()
                .to_vec()
        }
        SigningAlgorithm::Rs256 => {
            let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(err)?;
            key.to_pkcs1_der().map_err(err)?.as_bytes().to_vec()
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
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwk: Value,
}

/// Load a stored key; the public half is derived from the private one.
pub fn load(kid: &str, alg: SigningAlgorithm, der: &[u8]) -> Result<AsymmetricKey, KeyError> {
    let (jose, encoding, decoding, mut jwk) = match alg {
        SigningAlgorithm::Hs256 => return Err(KeyError("HS256 is not an asymmetric algorithm".into())),
        SigningAlgorithm::EdDsa => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(err)?;
            let x = b64(key.verifying_key().as_bytes());
            let decoding = DecodingKey::from_ed_components(&x).map_err(err)?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            (Algorithm::EdDSA, EncodingKey::from_ed_der(der), decoding, jwk)
        }
        SigningAlgorithm::Es256 => {
            let key: p256::SecretKey = p256::pkcs8::DecodePrivateKey::from_pkcs8_der(der).map_err(err)?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(KeyError("P-256 public key has no coordinates".into()));
            };
            let (x, y) = (b64(x), b64(y));
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(err)?;
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
            (Algorithm::ES256, EncodingKey::from_ec_der(der), decoding, jwk)
        }
        SigningAlgorithm::Rs256 => {
            let key = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(err)?;
            if key.size() * 8 < RSA_BITS {
                return Err(KeyError(format!("RSA keys must have at least {RSA_BITS} bits")));
            }
            let n = b64(&key.n().to_bytes_be());
            let e = b64(&key.e().to_bytes_be());
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(err)?;
            let jwk = json!({"kty": "RSA", "n": n, "e": e});
            (Algorithm::RS256, EncodingKey::from_rsa_der(der), decoding, jwk)
        }
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(format!("{jose:?}"));
    jwk["use"] = json!("sig");
    Ok(AsymmetricKey {
        kid: kid.to_owned(),
        alg: jose,
        encoding,
        decoding,
        jwk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation};

    #[test]
    fn each_algorithm_signs_verifies_and_publishes_only_public_parts() {
        for alg in [
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
        ] {
            let (kid, der) = generate(alg).unwrap();
            let key = load(&kid, alg, &der).unwrap();
            let mut header = Header::new(key.alg);
            header.kid = Some(kid.clone());
            let claims = json!({"sub": "x", "exp": 4_000_000_000u64});
            let token = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
            let mut v = Validation::new(key.alg);
            v.validate_aud = false;
            assert!(
                jsonwebtoken::decode::<Value>(&token, &key.decoding, &v).is_ok(),
                "{alg:?}"
            );
            // The JWK verifies too, through jsonwebtoken's own JWK parser.
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
            let from_jwk = DecodingKey::from_jwk(&jwk).unwrap();
            assert!(
                jsonwebtoken::decode::<Value>(&token, &from_jwk, &v).is_ok(),
                "{alg:?} via JWK"
            );
            assert!(key.jwk.get("d").is_none() && key.jwk.get("p").is_none());
            assert_eq!(key.jwk["kid"], kid.as_str());
            assert_eq!(key.jwk["use"], "sig");
        }
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
