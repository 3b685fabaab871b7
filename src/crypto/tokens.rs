//! Access tokens (JWT) and refresh tokens (opaque, stored only as SHA-256).

use std::sync::{Arc, RwLock};

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use crate::crypto::keys::KeyRing;
use crate::crypto::mac::MacKey;
use crate::crypto::opaque::{OneTime, Opaque, OpaqueHash, Refresh};
use crate::crypto::verified::{Verified, VerifiedTokens};
use crate::domain::{Authentication, Jti, Role, SessionId, UnixTime, UserId, Username};

/// The claims of an access token, exactly as signed.
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    /// The username (OIDC's standard claim): what a resource server shows or links by.
    /// Tokens signed before it was added lack it.
    #[serde(default)]
    preferred_username: String,
    #[serde(rename = "type")]
    token_type: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    iss: String,
    aud: String,
    roles: Vec<String>,
    sid: String,
    /// When the session's sign-in proved the user (OIDC's `auth_time`).
    #[serde(default)]
    auth_time: i64,
    /// How it did (RFC 8176).
    #[serde(default)]
    amr: Vec<String>,
    /// The application it was issued to (RFC 9068); absent for first-party tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// The scopes granted to that application, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// What an access token issued to an application says of it.
#[derive(Clone, Debug)]
pub struct ClientClaims {
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    /// `None`: the application's own id.
    pub audience: Option<String>,
}

impl ClientClaims {
    /// The token's `aud`: the application's audience, else its id. Never the server's
    /// own: a resource server that accepts first-party tokens must not take an
    /// application's for the user's.
    fn aud(&self) -> String {
        self.audience.clone().unwrap_or_else(|| self.client_id.clone())
    }
}

/// The claims of a token a confidential application got for itself (the
/// `client_credentials` grant): no user, no session.
#[derive(Debug, Serialize, Deserialize)]
struct ClientCredentialsClaims {
    sub: String,
    client_id: String,
    scope: String,
    #[serde(rename = "type")]
    token_type: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    iss: String,
    aud: String,
}

const ACCESS_TYPE: &str = "access";
/// Longer than any token we sign; a bigger one is refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A verified access token: signature, algorithm, `iss`, `aud`, `exp`, `nbf` and
/// `type` are checked. Revocation is the caller's next step.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub jti: Jti,
    pub roles: Vec<String>,
    pub issued_at: UnixTime,
    pub not_before: UnixTime,
    pub expires_at: UnixTime,
    /// Issued to an application (its id and scopes): such a token is for that
    /// application's APIs and the provider's userinfo, never for tokengate's own routes.
    pub client: Option<(String, String)>,
    /// `aud` is this server's (first-party routes accept no other).
    pub ours: bool,
}

impl AccessToken {
    /// A first-party token: issued to no application, for this server's audience.
    pub fn is_first_party(&self) -> bool {
        self.ours && self.client.is_none()
    }
}

/// `exp` and `nbf` against `now`, with no leeway: issuer and verifier are the same
/// process.
fn check_times(token: AccessToken, now: UnixTime) -> Result<AccessToken, (&'static str, Refusal)> {
    if now.0 >= token.expires_at.0 {
        return Err(("expired", Refusal::Expired));
    }
    if now.0 < token.not_before.0 {
        return Err(("not yet valid", Refusal::Invalid));
    }
    Ok(token)
}

/// A freshly signed access token.
pub struct SignedAccess {
    pub token: String,
    pub jti: Jti,
    pub expires_at: UnixTime,
}

/// Why a token was refused, as far as a client may be told (RFC 6750 §3's
/// `error_description`); the precise reason goes to the debug log only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    BadSignature,
    /// Malformed, wrong claims, wrong key or algorithm, not yet valid.
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs and verifies access tokens with the key ring (replaced whole on a reload).
pub struct AccessTokens {
    keys: RwLock<Arc<KeyRing>>,
    /// Tokens already verified in full (see `crypto::verified`).
    verified: VerifiedTokens<AccessToken>,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl AccessTokens {
    pub fn new(keys: KeyRing, issuer: String, audience: String, ttl_secs: u64) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            verified: VerifiedTokens::default(),
            issuer,
            audience,
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    fn ring(&self) -> Arc<KeyRing> {
        // A poisoned lock only means a panic elsewhere; the ring inside is whole.
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swap in a freshly loaded key ring (rotation picked up without a restart).
    pub fn replace_keys(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.keys.write() {
            Ok(mut g) => *g = ring,
            Err(p) => *p.into_inner() = ring,
        }
        // Every hit checks its key against the ring anyway; this also frees the memory.
        self.verified.clear();
    }

    /// The public JWK Set at `now`.
    pub fn jwks(&self, now: UnixTime) -> serde_json::Value {
        self.ring().jwks(now)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of first-party tokens (`TOKENGATE_AUDIENCE`).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The JOSE name of the signing algorithm.
    pub fn signing_algorithm(&self) -> String {
        format!("{:?}", self.ring().active().alg)
    }

    pub fn sign(
        &self,
        user: UserId,
        username: &Username,
        session: SessionId,
        roles: &[Role],
        auth: &Authentication,
        now: UnixTime,
    ) -> Result<SignedAccess, TokenError> {
        self.sign_as(user, username, session, roles, auth, None, now)
    }

    /// An access token for an application (RFC 9068's `client_id` and `scope`, its
    /// audience).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_for_client(
        &self,
        user: UserId,
        username: &Username,
        session: SessionId,
        roles: &[Role],
        auth: &Authentication,
        client: &ClientClaims,
        now: UnixTime,
    ) -> Result<SignedAccess, TokenError> {
        self.sign_as(user, username, session, roles, auth, Some(client), now)
    }

    /// A token an application gets for itself (`sub` = its id). Nothing revokes it
    /// before its expiry: it is as short-lived as any access token.
    pub fn sign_client_credentials(&self, client: &ClientClaims, now: UnixTime) -> Result<SignedAccess, TokenError> {
        self.encode(now, |jti, expires_at| ClientCredentialsClaims {
            sub: client.client_id.clone(),
            client_id: client.client_id.clone(),
            scope: client.scope.clone(),
            token_type: ACCESS_TYPE.into(),
            iat: now.0,
            nbf: now.0,
            exp: expires_at.0,
            jti: jti.to_string(),
            iss: self.issuer.clone(),
            aud: client.aud(),
        })
    }

    /// Sign the claims `claims` makes of a fresh `jti` and the expiry, with the key
    /// that signs at `now` (its `kid` in the header).
    fn encode<C: Serialize>(
        &self,
        now: UnixTime,
        claims: impl FnOnce(&Jti, UnixTime) -> C,
    ) -> Result<SignedAccess, TokenError> {
        let ring = self.ring();
        let key = ring.signing(now);
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        tracing::Span::current().record("alg", format!("{:?}", key.alg));
        let jti = Jti::new();
        let expires_at = now.plus(self.ttl_secs);
        let token = key
            .signer
            .sign(&header, &claims(&jti, expires_at))
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(SignedAccess { token, jti, expires_at })
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_as(
        &self,
        user: UserId,
        username: &Username,
        session: SessionId,
        roles: &[Role],
        auth: &Authentication,
        client: Option<&ClientClaims>,
        now: UnixTime,
    ) -> Result<SignedAccess, TokenError> {
        let _span = tracing::debug_span!("token.sign", alg = tracing::field::Empty).entered();
        self.encode(now, |jti, expires_at| AccessClaims {
            sub: user.to_string(),
            preferred_username: username.as_str().to_owned(),
            token_type: ACCESS_TYPE.into(),
            iat: now.0,
            nbf: now.0,
            exp: expires_at.0,
            jti: jti.to_string(),
            iss: self.issuer.clone(),
            aud: client.map_or_else(|| self.audience.clone(), ClientClaims::aud),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            sid: session.to_string(),
            auth_time: auth.at.0,
            amr: auth.amr().into_iter().map(str::to_owned).collect(),
            client_id: client.map(|c| c.client_id.clone()),
            scope: client.map(|c| c.scope.clone()),
        })
    }

    /// Verify everything that the token itself proves. Times use the injected clock.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<AccessToken, TokenError> {
        self.verify_why(token, now)
            .map_err(|(why, _)| TokenError::Rejected(why))
    }

    /// [`AccessTokens::verify`], with what the client may be told on refusal. A token
    /// verified before is not parsed or checked for its signature again, but its key
    /// must still verify and its times are checked again.
    pub fn verify_why(&self, token: &str, now: UnixTime) -> Result<AccessToken, (&'static str, Refusal)> {
        let verified = self.verify_any_why(token, now)?;
        if !verified.is_first_party() {
            return Err(("issued to an application, or for another audience", Refusal::Invalid));
        }
        Ok(verified)
    }

    /// [`AccessTokens::verify_why`] for tokens issued to applications too, whatever
    /// their audience (the provider's userinfo and introspection).
    pub fn verify_any_why(&self, token: &str, now: UnixTime) -> Result<AccessToken, (&'static str, Refusal)> {
        if let Some(hit) = self.verified.get(token)
            && self.ring().verifying(&hit.kid, now).is_some()
        {
            return check_times(hit.token, now);
        }
        let (kid, verified) = self.verify_in_full(token, now)?;
        self.verified.insert(
            token,
            Verified {
                token: verified.clone(),
                kid: kid.into(),
            },
        );
        check_times(verified, now)
    }

    /// An access token of any shape we sign (a user's, an application's, a client's own)
    /// verified in full (signature, key, algorithm, `iss`, `type`, `exp`, `nbf`), its
    /// claims as signed: what introspection reports. `None` for anything else.
    pub fn inspect(&self, token: &str, now: UnixTime) -> Option<serde_json::Map<String, serde_json::Value>> {
        let (_, claims) = self
            .decode_checked::<serde_json::Map<String, serde_json::Value>>(token, now)
            .ok()?;
        let time = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
        let live = time("exp").is_some_and(|exp| now.0 < exp) && time("nbf").is_some_and(|nbf| now.0 >= nbf);
        let access = claims.get("type").and_then(serde_json::Value::as_str) == Some(ACCESS_TYPE);
        (live && access).then_some(claims)
    }

    /// Size, header (no key-locating header, no `crit`), key by `kid`, its algorithm
    /// pinned, signature, `iss`, and the claims every token of ours has; not `aud`
    /// (an application's tokens carry their own) nor the times (checked against the
    /// injected clock, with no leeway: issuer and verifier are the same process). The
    /// key's id with the claims as `C`.
    fn decode_checked<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<(String, C), (&'static str, Refusal)> {
        let invalid = |why: &'static str| (why, Refusal::Invalid);
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed header"))?;
        // Key-locating headers are never followed, and tokens we sign never carry them.
        if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some() {
            return Err(invalid("key-locating header"));
        }
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` makes it invalid.
        if header.crit.is_some() {
            return Err(invalid("crit header"));
        }
        let kid = header.kid.ok_or(invalid("no kid"))?;
        let ring = self.ring();
        let key = ring.verifying(&kid, now).ok_or(invalid("unknown or retired kid"))?;
        if header.alg != key.alg {
            return Err(invalid("algorithm does not match the key"));
        }
        let mut v = Validation::new(key.alg);
        v.set_issuer(&[&self.issuer]);
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<C>(token, &key.decoding, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => ("signature", Refusal::BadSignature),
            _ => invalid("claims"),
        })?;
        Ok((kid, data.claims))
    }

    /// Everything but the times: [`AccessTokens::decode_checked`], then the access
    /// token's own claims. The key's id with what the token says.
    fn verify_in_full(&self, token: &str, now: UnixTime) -> Result<(String, AccessToken), (&'static str, Refusal)> {
        let invalid = |why: &'static str| (why, Refusal::Invalid);
        let (kid, c) = self.decode_checked::<AccessClaims>(token, now)?;
        if c.token_type != ACCESS_TYPE {
            return Err(invalid("not an access token"));
        }
        let parse = |s: &str| s.parse().map_err(|_| invalid("malformed id claim"));
        let verified = AccessToken {
            user_id: parse(&c.sub)?,
            session_id: c.sid.parse().map_err(|_| invalid("malformed sid"))?,
            jti: c.jti.parse().map_err(|_| invalid("malformed jti"))?,
            roles: c.roles,
            issued_at: UnixTime(c.iat),
            not_before: UnixTime(c.nbf),
            expires_at: UnixTime(c.exp),
            ours: c.aud == self.audience,
            client: c.client_id.map(|id| (id, c.scope.unwrap_or_default())),
        };
        Ok((kid, verified))
    }
}

/// A one-time mail token (verification, reset, email change, magic link).
pub type OneTimeToken = Opaque<OneTime>;
/// SHA-256 of a one-time token, hex.
pub type OneTimeTokenHash = OpaqueHash<OneTime>;

/// An OAuth client's secret (opaque, 256 bits, stored only as its SHA-256).
pub type ClientSecret = Opaque<super::opaque::ClientSecretKind>;
/// SHA-256 of a client secret, hex.
pub type ClientSecretHash = OpaqueHash<super::opaque::ClientSecretKind>;

/// An OAuth authorization code (opaque, 60 s, one use, stored only as its SHA-256).
pub type AuthCode = Opaque<super::opaque::AuthCodeKind>;
/// SHA-256 of an authorization code, hex.
pub type AuthCodeHash = OpaqueHash<super::opaque::AuthCodeKind>;

/// A refresh token (opaque, stored only as its SHA-256).
pub type RefreshToken = Opaque<Refresh>;
/// SHA-256 of a refresh token, hex: all the store ever sees.
pub type RefreshTokenHash = OpaqueHash<Refresh>;

impl Opaque<Refresh> {
    /// The successor of `presented`, derived rather than drawn: the same input always
    /// gives the same token, so a token spent moments ago can be answered with its
    /// successor again without the successor ever being stored. As unguessable as a
    /// random one without `key` (HMAC-SHA256, 32 bytes, base64url).
    pub fn successor_of(key: &MacKey, presented: &str) -> (Self, RefreshTokenHash) {
        Self::from_text(key.tag(presented.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    fn tokens(ttl: u64) -> AccessTokens {
        let secret = Secret::new(b"unit-test-secret-unit-test-secret-0123".to_vec());
        AccessTokens::new(KeyRing::hs256(&secret, &[]), "iss".into(), "aud".into(), ttl)
    }

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    fn pwd(at: UnixTime) -> Authentication {
        Authentication::new(at, &[crate::domain::AuthMethod::Pwd])
    }

    #[test]
    fn sign_verify_and_expiry_boundary() {
        let t = tokens(60);
        let now = UnixTime(1_800_000_000);
        let (u, s) = (UserId::new(), SessionId::new());
        let signed = t
            .sign(u, &alice(), s, &[Role::parse("admin").unwrap()], &pwd(now), now)
            .unwrap();
        let v = t.verify(&signed.token, now).unwrap();
        assert_eq!((v.user_id, v.session_id, v.jti), (u, s, signed.jti));
        assert_eq!(v.roles, vec!["admin".to_string()]);
        assert!(t.verify(&signed.token, now.plus(59)).is_ok());
        assert!(t.verify(&signed.token, now.plus(60)).is_err());
        assert!(t.verify(&signed.token, UnixTime(now.0 - 1)).is_err(), "nbf");
    }

    #[test]
    fn a_remembered_token_is_still_refused_when_its_key_goes_or_its_time_is_up() {
        let t = tokens(60);
        let now = UnixTime(1_800_000_000);
        let signed = t
            .sign(UserId::new(), &alice(), SessionId::new(), &[], &pwd(now), now)
            .unwrap();
        assert!(t.verify(&signed.token, now).is_ok());
        assert_eq!(t.verified.remembered(), 1, "remembered after a full verification");
        // Remembered, yet the times are checked on every use.
        assert!(t.verify(&signed.token, now.plus(30)).is_ok());
        assert!(matches!(
            t.verify_why(&signed.token, now.plus(60)),
            Err((_, Refusal::Expired))
        ));
        assert!(t.verify(&signed.token, UnixTime(now.0 - 1)).is_err(), "nbf");
        // Other bytes never match a remembered token: a tampered copy takes the full path.
        let mut tampered = signed.token.clone();
        tampered.pop();
        tampered.push(if signed.token.ends_with('A') { 'B' } else { 'A' });
        assert!(t.verify(&tampered, now).is_err());
        // The signing secret replaced (not kept as a previous one): refused at once.
        let other = Secret::new(b"another-unit-test-secret-0123456789ab".to_vec());
        t.replace_keys(KeyRing::hs256(&other, &[]));
        assert!(t.verify(&signed.token, now.plus(1)).is_err());
    }

    #[test]
    fn a_hit_checks_the_key_even_if_the_memo_was_not_cleared() {
        let t = tokens(60);
        let now = UnixTime(1_800_000_000);
        let signed = t
            .sign(UserId::new(), &alice(), SessionId::new(), &[], &pwd(now), now)
            .unwrap();
        let first = t.verify(&signed.token, now).unwrap();
        // Plant the entry under a kid the ring does not know: the hit must not count.
        t.verified.insert(
            &signed.token,
            Verified {
                token: first,
                kid: "no-such-kid".into(),
            },
        );
        assert!(
            t.verify(&signed.token, now).is_ok(),
            "falls back to a full verification"
        );
        let other = Secret::new(b"another-unit-test-secret-0123456789ab".to_vec());
        *t.keys.write().unwrap() = Arc::new(KeyRing::hs256(&other, &[]));
        assert!(t.verify(&signed.token, now).is_err(), "its key is gone from the ring");
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = RefreshToken::generate().unwrap();
        let (b, hb) = RefreshToken::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        assert_eq!(RefreshTokenHash::of_presented(a.expose()), Some(ha.clone()));
        assert_ne!(ha, hb);
        assert_eq!(ha.as_str().len(), 64);
        assert!(RefreshTokenHash::of_presented("short").is_none());
        assert_eq!(format!("{a:?}"), "RefreshToken(***)");
    }
}
