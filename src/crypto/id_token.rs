//! OpenID Connect id_tokens: signed RS256 by the provider's own key (Discovery requires
//! RS256, whatever algorithm the access tokens use), `kid` in the header.

use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use crate::crypto::keys::{KeyRing, SigningKey};
use crate::crypto::tokens::TokenError;

/// The claims of an id_token (OpenID Connect Core §2, §5.1): who, for which
/// application, when and how they signed in; the profile claims their scopes allow.
#[derive(Debug, Serialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    /// The party it was issued to (the same application).
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<&'static str>,
    /// The session its tokens belong to.
    pub sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// Sign `claims` with `key` (an RS256 key of the id_token ring).
pub fn sign(key: &SigningKey, claims: &IdTokenClaims) -> Result<String, TokenError> {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    key.signer
        .sign(&header, claims)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// What an `id_token_hint` names, once its signature and issuer are checked (its expiry
/// is not: RP-initiated logout takes hints that have expired).
#[derive(Debug, serde::Deserialize)]
pub struct Hint {
    pub sub: String,
    pub aud: String,
    #[serde(default)]
    pub sid: Option<String>,
}

/// An id_token of ours, read as a logout hint; `None` if no key of `keys` that still
/// verifies at `now` signed it for `issuer`.
pub fn read_hint(keys: &KeyRing, token: &str, issuer: &str, now: crate::domain::UnixTime) -> Option<Hint> {
    if token.len() > 8 * 1024 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = keys.verifying(header.kid.as_deref()?, now)?;
    if header.alg != Algorithm::RS256 || key.alg != Algorithm::RS256 {
        return None;
    }
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims(&["iss", "sub", "aud"]);
    jsonwebtoken::decode::<Hint>(token, &key.decoding, &v)
        .ok()
        .map(|d| d.claims)
}
