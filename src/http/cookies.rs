//! Browser credentials: the cookies of cookie mode, the CSRF header, and the
//! cross-site checks of cookie login.
//!
//! With `Secure` (the default) the names carry the browser-enforced prefixes, so a
//! sibling subdomain cannot set (toss) a cookie that shadows ours:
//! - access:  `__Host-tokengate_access`    HttpOnly; Secure; SameSite=Lax;    Path=/
//! - refresh: `__Secure-tokengate_refresh` HttpOnly; Secure; SameSite=Strict; Path=/auth/cookie
//!   (`__Host-` requires `Path=/`, and the refresh cookie must go to the cookie routes only)
//! - csrf:    `__Host-tokengate_csrf`      Secure; SameSite=Strict; Path=/, readable by the page
//! - device:  `__Host-tokengate_device`    HttpOnly; Secure; SameSite=Strict; Path=/ (see
//!   `crypto::device`)
//!
//! Without `Secure` (plain-HTTP development only) the prefixes are dropped: browsers
//! refuse prefixed cookies without it.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use cookie::{Cookie, SameSite};

use crate::http::error::ApiError;

/// The header that must carry the CSRF token on unsafe cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The refresh cookie goes only to the cookie routes (under the path prefix, if any).
pub const REFRESH_PATH: &str = "/auth/cookie";

/// Which of our cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
    Csrf,
    Device,
}

/// How cookies are set: `Secure` (off only by explicit configuration), lifetimes, and
/// the refresh cookie's path.
#[derive(Clone, Debug)]
pub struct CookiePolicy {
    pub secure: bool,
    /// `REFRESH_PATH` under the path prefix.
    pub refresh_path: std::sync::Arc<str>,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub device_ttl_secs: u64,
}

impl CookiePolicy {
    /// The name of cookie `kind` under this policy.
    pub fn name(&self, kind: Kind) -> &'static str {
        match (kind, self.secure) {
            (Kind::Access, true) => "__Host-tokengate_access",
            (Kind::Access, false) => "tokengate_access",
            (Kind::Refresh, true) => "__Secure-tokengate_refresh",
            (Kind::Refresh, false) => "tokengate_refresh",
            (Kind::Csrf, true) => "__Host-tokengate_csrf",
            (Kind::Csrf, false) => "tokengate_csrf",
            (Kind::Device, true) => "__Host-tokengate_device",
            (Kind::Device, false) => "tokengate_device",
        }
    }

    /// The `Set-Cookie` values of a signed-in browser.
    pub fn signed_in(&self, access: &str, refresh: &str, csrf: &str) -> Vec<HeaderValue> {
        vec![
            self.cookie(Kind::Access, access, self.access_ttl_secs),
            self.cookie(Kind::Refresh, refresh, self.refresh_ttl_secs),
            self.cookie(Kind::Csrf, csrf, self.refresh_ttl_secs),
        ]
    }

    /// The device cookie (after a successful login).
    pub fn device(&self, token: &str) -> HeaderValue {
        self.cookie(Kind::Device, token, self.device_ttl_secs)
    }

    /// `Set-Cookie` values that remove the session's cookies (the device cookie stays:
    /// signing out does not make this browser a stranger).
    pub fn cleared(&self) -> Vec<HeaderValue> {
        [Kind::Access, Kind::Refresh, Kind::Csrf]
            .into_iter()
            .map(|k| self.cookie(k, "", 0))
            .collect()
    }

    fn cookie(&self, kind: Kind, value: &str, max_age: u64) -> HeaderValue {
        let (path, same_site, http_only) = match kind {
            Kind::Access => ("/", SameSite::Lax, true),
            Kind::Refresh => (&*self.refresh_path, SameSite::Strict, true),
            Kind::Csrf => ("/", SameSite::Strict, false),
            Kind::Device => ("/", SameSite::Strict, true),
        };
        let c = Cookie::build((self.name(kind), value))
            .path(path)
            .same_site(same_site)
            .http_only(http_only)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age).unwrap_or(i64::MAX),
            ))
            .build();
        // Names and values are base64url/JWT characters: always a valid header value.
        HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The value of cookie `kind` in the request, if any. Two cookies of that name are
    /// refused: one was planted (tossed) by someone else, and we cannot tell which.
    pub fn read(&self, headers: &HeaderMap, kind: Kind) -> Result<Option<String>, ApiError> {
        read(headers, self.name(kind))
    }
}

/// The value of cookie `name`; `Err` when the request carries it twice.
pub fn read(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .map(|c| c.value().to_owned());
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::BadRequest(
            "A cookie was sent twice; clear this site's cookies and sign in again",
        ));
    }
    Ok(first.filter(|v| !v.is_empty()))
}

/// Methods that change state and so need the CSRF header under cookie auth.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The `X-CSRF-Token` header's value, if any.
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// Is this request from another site that we do not trust? Browsers say where a
/// request comes from in `Origin` (every cross-origin POST) and `Sec-Fetch-Site`.
/// Allowed: no browser hint at all (not a browser), our own origin (`public_url`, or
/// the origin whose host is the one the request was sent to), or a configured CORS
/// origin.
pub fn is_cross_site(headers: &HeaderMap, public_url: &str, cors_origins: &[HeaderValue]) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    match origin {
        Some(o) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            let same_host = host.is_some_and(|h| o.split_once("://").is_some_and(|(_, rest)| rest == h));
            let ours = o == public_url || public_url.starts_with(&format!("{o}/")) || same_host;
            !(ours || cors_origins.iter().any(|c| c.as_bytes() == o.as_bytes()))
        }
        None => matches!(fetch_site, Some("cross-site" | "same-site")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secure: bool) -> CookiePolicy {
        CookiePolicy {
            secure,
            refresh_path: REFRESH_PATH.into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 604_800,
            device_ttl_secs: 7_776_000,
        }
    }

    #[test]
    fn attributes_and_prefixes() {
        let v = policy(true).signed_in("a.b.c", "rrr", "ccc");
        let s: Vec<_> = v.iter().map(|h| h.to_str().unwrap().to_owned()).collect();
        assert_eq!(
            s[0],
            "__Host-tokengate_access=a.b.c; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=900"
        );
        assert_eq!(
            s[1],
            "__Secure-tokengate_refresh=rrr; HttpOnly; SameSite=Strict; Secure; Path=/auth/cookie; Max-Age=604800"
        );
        assert_eq!(
            s[2],
            "__Host-tokengate_csrf=ccc; SameSite=Strict; Secure; Path=/; Max-Age=604800"
        );
        let insecure = policy(false).signed_in("a", "r", "c");
        let first = insecure[0].to_str().unwrap();
        assert!(first.starts_with("tokengate_access=") && !first.contains("Secure"));
        let cleared = policy(true).cleared();
        assert!(cleared.iter().all(|h| h.to_str().unwrap().contains("Max-Age=0")));
        let device = policy(true).device("d");
        assert!(
            device
                .to_str()
                .unwrap()
                .starts_with("__Host-tokengate_device=d; HttpOnly; SameSite=Strict; Secure; Path=/")
        );
    }

    #[test]
    fn a_cookie_sent_twice_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; tokengate_csrf=tok123"));
        assert_eq!(read(&h, "tokengate_csrf").unwrap().as_deref(), Some("tok123"));
        assert_eq!(read(&h, "missing").unwrap(), None);
        h.append(header::COOKIE, HeaderValue::from_static("tokengate_csrf=planted"));
        assert!(matches!(read(&h, "tokengate_csrf"), Err(ApiError::BadRequest(_))));
        let mut one_header = HeaderMap::new();
        one_header.insert(header::COOKIE, HeaderValue::from_static("a=1; a=2"));
        assert!(read(&one_header, "a").is_err());
    }

    #[test]
    fn cross_site_detection() {
        let cors = [HeaderValue::from_static("https://app.example.com")];
        let check = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            is_cross_site(&h, "https://auth.example.com", &cors)
        };
        assert!(!check(&[]), "curl, scripts: no browser hint");
        assert!(!check(&[("origin", "https://auth.example.com")]));
        assert!(!check(&[
            ("origin", "http://localhost:8000"),
            ("host", "localhost:8000")
        ]));
        assert!(!check(&[
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-site")
        ]));
        assert!(check(&[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(check(&[("origin", "null")]));
        assert!(check(&[("sec-fetch-site", "cross-site")]));
        assert!(!check(&[("sec-fetch-site", "same-origin")]));
    }
}
