//! What the `cargo fuzz` targets (`fuzz/fuzz_targets/`) call: each entry point feeds
//! client bytes to the parsers that see them and checks what must hold whatever the
//! bytes are. A panic, or a broken check, is a finding. Compiled only under
//! `--cfg fuzzing` (which `cargo fuzz` sets), so none of it is in the server.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config;
use crate::crypto::device;
use crate::crypto::keys::KeyRing;
use crate::crypto::mac::MacKey;
use crate::crypto::tokens::{AccessTokens, OneTimeTokenHash, RefreshToken, RefreshTokenHash};
use crate::domain::{Email, Secret, UnixTime};
use crate::http::body::{parse_form, parse_json, read_fields};
use crate::http::routes::admin::UserUpdateRequest;
use crate::http::routes::auth::{
    LogoutRequest, PasswordChangeRequest, PasswordGrant, RefreshRequest, RegisterRequest, TokenRequest,
};
use crate::http::{cookies, extract};

const NOW: UnixTime = UnixTime(1_800_000_000);

static TOKENS: LazyLock<AccessTokens> = LazyLock::new(|| {
    let secret = Secret::new(b"fuzzing-secret-fuzzing-secret-32".to_vec());
    AccessTokens::new(
        KeyRing::hs256(&secret, &[]),
        "tokengate".into(),
        "tokengate".into(),
        900,
    )
});

static MAC: LazyLock<MacKey> = LazyLock::new(|| MacKey::new(Secret::new(vec![7; 32]), "fuzz"));

/// A header map with one `name` header of these bytes, if HTTP allows them at all
/// (hyper refuses the rest before any of our code runs).
fn headers_with(name: header::HeaderName, data: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(data).ok()?;
    let mut h = HeaderMap::new();
    h.insert(name, value);
    Some(h)
}

/// `Authorization` header -> bearer token -> JWT verification. Bytes no one signed
/// never verify, and a refusal is always a 401.
pub fn authorization(data: &[u8]) {
    let Some(headers) = headers_with(header::AUTHORIZATION, data) else {
        return;
    };
    match extract::bearer_token(&headers) {
        Ok(token) => {
            assert!(!token.is_empty());
            assert!(TOKENS.verify(token, NOW).is_err(), "an unsigned token verified");
        }
        Err(e) => assert_eq!(e.status().as_u16(), 401, "{e:?}"),
    }
    // The token bytes straight to the verifier too (whatever the header parser lets by).
    if let Ok(s) = std::str::from_utf8(data) {
        assert!(TOKENS.verify(s, NOW).is_err());
    }
}

/// Refresh tokens, device tokens and CSRF tokens: the three opaque values clients send
/// back. None of them verifies unless it was issued.
pub fn opaque_tokens(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(hash) = RefreshTokenHash::of_presented(s) {
        assert_eq!(s.len(), 43);
        assert_eq!(hash.as_str().len(), 64);
        // The successor is as well-formed as any refresh token.
        let (next, _) = RefreshToken::successor_of(&MAC, s);
        assert!(RefreshTokenHash::of_presented(next.expose()).is_some());
    }
    assert!(device::verify(&MAC, s, NOW).is_none(), "a forged device token verified");
    assert!(!MAC.verify(b"session", s) || s == MAC.tag(b"session"));
}

/// Request bodies as JSON (first byte even) or a urlencoded form (odd), read as every
/// request type: an answer or a 4xx, never anything else.
pub fn bodies(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let fields = if selector % 2 == 0 {
        parse_json(bytes)
    } else {
        parse_form(bytes)
    };
    let fields = match fields {
        Ok(f) => f,
        Err(e) => {
            assert!(e.status().is_client_error(), "{e:?}");
            return;
        }
    };
    fn refused<T>(r: Result<T, crate::http::error::ApiError>) {
        if let Err(e) = r {
            assert!(e.status().is_client_error(), "{e:?}");
        }
    }
    refused(read_fields::<RegisterRequest>(&fields));
    refused(read_fields::<TokenRequest>(&fields));
    refused(read_fields::<PasswordGrant>(&fields));
    refused(read_fields::<RefreshRequest>(&fields));
    refused(read_fields::<LogoutRequest>(&fields));
    refused(read_fields::<PasswordChangeRequest>(&fields));
    refused(read_fields::<UserUpdateRequest>(&fields));
}

/// `Cookie` headers: a value, nothing, or a 400 for a cookie sent twice.
pub fn cookie_header(data: &[u8]) {
    let Some(headers) = headers_with(header::COOKIE, data) else {
        return;
    };
    for name in [
        "__Host-tokengate_access",
        "__Secure-tokengate_refresh",
        "tokengate_csrf",
    ] {
        match cookies::read(&headers, name) {
            Ok(Some(v)) => assert!(!v.is_empty()),
            Ok(None) => {}
            Err(e) => assert_eq!(e.status().as_u16(), 400, "{e:?}"),
        }
    }
}

/// `X-Forwarded-For` from a trusted proxy: the client is the peer or one of the
/// addresses the header lists.
pub fn forwarded_for(data: &[u8]) {
    let Some(headers) = headers_with(header::HeaderName::from_static("x-forwarded-for"), data) else {
        return;
    };
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let trusted = ["10.0.0.0/8".parse().expect("CIDR"), "::1/128".parse().expect("CIDR")];
    let client = extract::client_ip(peer, &headers, &trusted);
    let listed = std::str::from_utf8(data)
        .unwrap_or_default()
        .split(',')
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .any(|ip| ip == client);
    assert!(client == peer || listed, "{client} is neither the peer nor listed");
    // An untrusted peer is the client, whatever it claims.
    let stranger = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    assert_eq!(extract::client_ip(stranger, &headers, &trusted), stranger);
}

/// The configuration parsers (durations, grace, rates, CIDRs, booleans, URLs): a value
/// or an error message, and accepted values are in range.
pub fn config_values(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(secs) = config::parse_duration(s) {
        assert!((1..=10 * 365 * 86_400).contains(&secs));
    }
    if let Ok(secs) = config::parse_reuse_grace(s) {
        assert!(secs <= config::MAX_REUSE_GRACE_SECS);
    }
    if let Ok(rate) = config::parse_rate(s) {
        assert!(rate.count >= 1 && rate.window_secs >= 1);
    }
    let _ = config::parse_cidr(s);
    let _ = config::parse_bool(s);
    if let Ok(url) = config::parse_public_url(s) {
        assert!(url.starts_with("http://") || url.starts_with("https://"));
        assert!(!url.ends_with('/'));
    }
    if let Ok(url) = config::parse_otlp_endpoint(s) {
        assert!(url.starts_with("http://") && url.ends_with("/v1/traces"));
    }
}

/// An address as a client sends it (registration, forgot password, sign-in link,
/// email change), and a link's token. The one spelling is ASCII, at most 254 bytes, the
/// same when read again, and a mailbox the mail transport accepts (so a message to it
/// is always composed: never a 500 for an address that passed).
pub fn mail_addresses(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(email) = Email::parse(s) {
        let one = email.as_str();
        assert!(one.is_ascii() && one.len() <= 254, "{one:?}");
        let again = Email::parse(one).ok().map(Email::into_string);
        assert_eq!(again.as_deref(), Some(one), "read again");
        assert_eq!(email.folded(), one.to_ascii_lowercase());
        assert!(one.parse::<lettre::message::Mailbox>().is_ok(), "{one:?}");
    }
    if OneTimeTokenHash::of_presented(s).is_some() {
        assert_eq!(s.len(), 43, "a token is 32 bytes in base64url");
    }
}
