//! Browser credentials: the three cookies of cookie mode and the CSRF check.
//!
//! - access:  HttpOnly; Secure; SameSite=Lax;    Path=/             (the access JWT)
//! - refresh: HttpOnly; Secure; SameSite=Strict; Path=/auth/cookie  (the refresh token)
//! - csrf:    Secure; SameSite=Strict; Path=/, readable by the page (double submit)

use axum::http::{HeaderMap, HeaderValue, Method, header};
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

pub const ACCESS: &str = "tokengate_access";
pub const REFRESH: &str = "tokengate_refresh";
pub const CSRF: &str = "tokengate_csrf";
/// The refresh cookie goes only to the cookie routes.
pub const REFRESH_PATH: &str = "/auth/cookie";
/// The header that must repeat the CSRF cookie on unsafe cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How cookies are set: `Secure` (off only by explicit configuration) and lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    pub secure: bool,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
}

impl CookiePolicy {
    /// The three `Set-Cookie` values of a signed-in browser.
    pub fn signed_in(&self, access: &str, refresh: &str, csrf: &str) -> Vec<HeaderValue> {
        vec![
            self.cookie(ACCESS, access, "/", SameSite::Lax, true, self.access_ttl_secs),
            self.cookie(
                REFRESH,
                refresh,
                REFRESH_PATH,
                SameSite::Strict,
                true,
                self.refresh_ttl_secs,
            ),
            self.cookie(CSRF, csrf, "/", SameSite::Strict, false, self.refresh_ttl_secs),
        ]
    }

    /// `Set-Cookie` values that remove all three.
    pub fn cleared(&self) -> Vec<HeaderValue> {
        vec![
            self.cookie(ACCESS, "", "/", SameSite::Lax, true, 0),
            self.cookie(REFRESH, "", REFRESH_PATH, SameSite::Strict, true, 0),
            self.cookie(CSRF, "", "/", SameSite::Strict, false, 0),
        ]
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        path: &str,
        same_site: SameSite,
        http_only: bool,
        max_age: u64,
    ) -> HeaderValue {
        let c = Cookie::build((name, value))
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
}

/// The value of cookie `name` in the request, if any.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Methods that change state and so need the CSRF header under cookie auth.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The `X-CSRF-Token` header must equal the CSRF cookie (compared in constant time).
pub fn check_csrf(headers: &HeaderMap) -> Result<(), ApiError> {
    let cookie = read(headers, CSRF).ok_or(ApiError::CsrfFailed)?;
    let header = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::CsrfFailed)?;
    if bool::from(cookie.as_bytes().ct_eq(header.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::CsrfFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secure: bool) -> CookiePolicy {
        CookiePolicy {
            secure,
            access_ttl_secs: 900,
            refresh_ttl_secs: 604_800,
        }
    }

    #[test]
    fn attributes() {
        let v = policy(true).signed_in("a.b.c", "rrr", "ccc");
        let s: Vec<_> = v.iter().map(|h| h.to_str().unwrap().to_owned()).collect();
        assert_eq!(
            s[0],
            "tokengate_access=a.b.c; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=900"
        );
        assert_eq!(
            s[1],
            "tokengate_refresh=rrr; HttpOnly; SameSite=Strict; Secure; Path=/auth/cookie; Max-Age=604800"
        );
        assert_eq!(
            s[2],
            "tokengate_csrf=ccc; SameSite=Strict; Secure; Path=/; Max-Age=604800"
        );
        let insecure = policy(false).signed_in("a", "r", "c");
        assert!(!insecure[0].to_str().unwrap().contains("Secure"));
        let cleared = policy(true).cleared();
        assert!(cleared.iter().all(|h| h.to_str().unwrap().contains("Max-Age=0")));
    }

    #[test]
    fn csrf_double_submit() {
        let mut h = HeaderMap::new();
        assert!(check_csrf(&h).is_err());
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; tokengate_csrf=tok123"));
        assert!(check_csrf(&h).is_err());
        h.insert(CSRF_HEADER, HeaderValue::from_static("tok124"));
        assert!(check_csrf(&h).is_err());
        h.insert(CSRF_HEADER, HeaderValue::from_static("tok123"));
        assert!(check_csrf(&h).is_ok());
        assert_eq!(read(&h, "x").as_deref(), Some("1"));
        assert_eq!(read(&h, "missing"), None);
    }
}
