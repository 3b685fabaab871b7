//! Extractors: who is calling (client facts) and with which credentials.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use ipnet::IpNet;

use super::{AppState, cookies};
use crate::auth::Principal;
use crate::events::ClientInfo;
use crate::http::error::ApiError;

/// The client's IP and user agent. `X-Forwarded-For` is believed only when the peer
/// is a trusted proxy.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = peer.map(|p| client_ip(p, &parts.headers, &state.trusted_proxies));
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Client(ClientInfo { ip, user_agent }))
    }
}

/// Walk `X-Forwarded-For` from the right, skipping trusted proxies: the first
/// untrusted address is the client. Anything unparsable stops the walk.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// A caller authenticated by an access token whose session is live: the Bearer
/// header, or else the access cookie (then unsafe methods must pass the CSRF check).
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unsafe_method = cookies::is_unsafe(&parts.method);
        authenticate(&parts.headers, state, unsafe_method)
            .await
            .map(Authenticated)
    }
}

/// How the access token came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Bearer,
    Cookie,
}

/// Authenticate a request's headers. A cookie-authenticated request for an unsafe
/// method must carry the CSRF token of its session (`X-CSRF-Token`).
pub async fn authenticate(headers: &HeaderMap, state: &AppState, unsafe_method: bool) -> Result<Principal, ApiError> {
    let (token, via) = credential(headers, state)?;
    let who = state.auth.authenticate(&token).await?;
    if via == Via::Cookie && unsafe_method {
        let presented = cookies::csrf_header(headers).ok_or(ApiError::CsrfFailed)?;
        if !state.auth.csrf_matches(who.session_id(), presented) {
            return Err(ApiError::CsrfFailed);
        }
    }
    Ok(who)
}

/// The access token a request carries. A Bearer header wins (and needs no CSRF token:
/// a browser never adds one on its own); a bad header is not rescued by a cookie.
fn credential<'h>(headers: &'h HeaderMap, state: &AppState) -> Result<(Cow<'h, str>, Via), ApiError> {
    if headers.contains_key(AUTHORIZATION) {
        return bearer_token(headers).map(|t| (Cow::Borrowed(t), Via::Bearer));
    }
    let token = state
        .cookies
        .read(headers, cookies::Kind::Access)?
        .ok_or(ApiError::NotAuthenticated)?;
    Ok((Cow::Owned(token), Via::Cookie))
}

/// A role that a route requires.
pub trait RoleName: Send + Sync + 'static {
    const NAME: &'static str;
}

/// The built-in `admin` role.
pub struct Admin;

impl RoleName for Admin {
    const NAME: &'static str = crate::domain::Role::ADMIN;
}

/// An authenticated caller who holds role `R`; anyone else valid gets 403.
pub struct RequireRole<R: RoleName>(pub Principal, pub PhantomData<R>);

impl<R: RoleName> FromRequestParts<AppState> for RequireRole<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated(who) = Authenticated::from_request_parts(parts, state).await?;
        state.auth.require_role(&who, R::NAME)?;
        Ok(Self(who, PhantomData))
    }
}

/// A typed id from the last path segment; one that does not parse is simply not found.
pub struct IdPath<T>(pub T);

impl<T: FromStr + Send, S: Send + Sync> FromRequestParts<S> for IdPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        raw.parse().map(IdPath).map_err(|_| ApiError::NotFound)
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(AUTHORIZATION).ok_or(ApiError::NotAuthenticated)?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken(crate::auth::TokenProblem::Invalid))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::NotAuthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::NotAuthenticated);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff("203.0.113.9, 10.0.0.7");
        assert_eq!(client_ip(proxy, &h, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        // Untrusted peer: the header is ignored.
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        // A forged leftmost entry is skipped past the real client.
        let h = xff("1.1.1.1, 203.0.113.9");
        assert_eq!(client_ip(proxy, &h, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer_token(&h), Err(ApiError::NotAuthenticated)));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(matches!(bearer_token(&h), Err(ApiError::NotAuthenticated)));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc.def.ghi"));
        assert_eq!(bearer_token(&h).unwrap(), "abc.def.ghi");
    }
}
