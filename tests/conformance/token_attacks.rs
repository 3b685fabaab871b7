//! Every way to present a token that must not work, against a server whose secret
//! the test knows (so forged tokens are otherwise perfect).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{
    Backend, PASSWORD, TEST_SECRET, TestServer, assert_invalid_token, assert_refused_because, jwt_parts,
};

/// A live session's genuine header and claims, to be bent by each test.
async fn genuine(srv: &TestServer) -> (String, Value) {
    let t = srv.user("alzy").await;
    let (header, claims) = jwt_parts(&t.access);
    (header["kid"].as_str().unwrap().to_owned(), claims)
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &[u8]) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(key)).unwrap()
}

fn sign_good(kid: &str, claims: &Value) -> String {
    sign(Algorithm::HS256, Some(kid), claims, TEST_SECRET.as_bytes())
}

async fn refused(srv: &TestServer, token: &str) {
    assert_invalid_token(srv.get_auth("/me", token).await).await;
}

#[per_backend]
pub async fn missing_or_non_bearer_credentials_are_not_authenticated(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let res = srv.http.get(srv.url("/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        res.text().await.unwrap(),
        concat!(r#"{"detail":"Not authenticated"}"#, "\n")
    );
    let res = srv
        .http
        .get(srv.url("/me"))
        .header("authorization", format!("Basic {}", t.access))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn resigned_genuine_claims_are_accepted(b: Backend) {
    // The control for every test below: the forging itself is right.
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    assert_eq!(srv.me_status(&sign_good(&kid, &claims)).await, StatusCode::OK);
}

#[per_backend]
pub async fn alg_none_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        refused(&srv, &token).await;
    }
}

#[per_backend]
pub async fn other_algorithm_with_the_same_secret_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        refused(&srv, &sign(alg, Some(&kid), &claims, TEST_SECRET.as_bytes())).await;
    }
}

#[per_backend]
pub async fn guessed_key_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for key in ["secret", "changeme", "test-secret-for-tokengate-tests-0123456789abcdeF"] {
        refused(&srv, &sign(Algorithm::HS256, Some(&kid), &claims, key.as_bytes())).await;
    }
}

#[per_backend]
pub async fn unknown_or_missing_kid_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (_, claims) = genuine(&srv).await;
    refused(&srv, &sign(Algorithm::HS256, None, &claims, TEST_SECRET.as_bytes())).await;
    refused(
        &srv,
        &sign(
            Algorithm::HS256,
            Some("hs256-0000000000000000"),
            &claims,
            TEST_SECRET.as_bytes(),
        ),
    )
    .await;
}

#[per_backend]
pub async fn wrong_issuer_or_audience_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for (field, value) in [
        ("iss", json!("someone-else")),
        ("aud", json!("another-api")),
        ("aud", json!(["another-api"])),
    ] {
        let mut c = claims.clone();
        c[field] = value;
        refused(&srv, &sign_good(&kid, &c)).await;
    }
}

#[per_backend]
pub async fn wrong_token_type_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for t in ["refresh", "id", "ACCESS", ""] {
        let mut c = claims.clone();
        c["type"] = json!(t);
        refused(&srv, &sign_good(&kid, &c)).await;
    }
}

#[per_backend]
pub async fn missing_claims_are_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for field in ["sub", "type", "iat", "nbf", "exp", "jti", "iss", "aud", "roles", "sid"] {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(field);
        let res = srv.get_auth("/me", &sign_good(&kid, &c)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "without {field}");
    }
}

#[per_backend]
pub async fn mistyped_claims_are_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    let cases = [
        ("sub", json!(12345)),
        ("sub", json!("not-a-uuid")),
        ("exp", json!("9999999999")),
        ("roles", json!("admin")),
        ("sid", json!(null)),
        ("sid", json!("00000000-0000-0000-0000-000000000000")),
        ("jti", json!(["x"])),
    ];
    for (field, value) in cases {
        let mut c = claims.clone();
        c[field] = value.clone();
        let res = srv.get_auth("/me", &sign_good(&kid, &c)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{field} = {value}");
    }
    // A real session id with someone else's user id is not that user.
    srv.register("other").await;
    let other = srv.login("other", PASSWORD).await;
    let (_, oc) = jwt_parts(&other.access);
    let mut c = claims.clone();
    c["sub"] = oc["sub"].clone();
    refused(&srv, &sign_good(&kid, &c)).await;
}

#[per_backend]
pub async fn tampered_payload_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let parts: Vec<&str> = t.access.split('.').collect();
    let (_, mut claims) = jwt_parts(&t.access);
    claims["roles"] = json!(["admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    refused(&srv, &forged).await;
    // Flip one character of the signature.
    let mut sig = parts[2].to_owned();
    let last = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(last);
    refused(&srv, &format!("{}.{}.{}", parts[0], parts[1], sig)).await;
}

#[per_backend]
pub async fn expired_token_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    srv.clock.advance(899);
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    srv.clock.advance(1);
    refused(&srv, &t.access).await;
}

#[per_backend]
pub async fn not_yet_valid_token_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, mut claims) = genuine(&srv).await;
    claims["nbf"] = json!(claims["iat"].as_i64().unwrap() + 300);
    refused(&srv, &sign_good(&kid, &claims)).await;
}

#[per_backend]
pub async fn garbage_tokens_are_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let long = "a".repeat(20_000);
    for t in [
        "x",
        "a.b",
        "a.b.c",
        "...",
        "eyJhbGciOiJIUzI1NiJ9..",
        "ü.ü.ü",
        long.as_str(),
    ] {
        let res = srv.get_auth("/me", t).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{t:.20}");
    }
}

#[per_backend]
pub async fn token_in_query_string_is_ignored(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    for q in ["access_token", "token"] {
        let res = srv
            .http
            .get(srv.url(&format!("/me?{q}={}", t.access)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

#[per_backend]
pub async fn previous_secret_still_verifies(b: Backend) {
    // Tokens signed with the old secret keep working after a rotation that lists it
    // in TOKENGATE_PREVIOUS_SECRET_KEYS; new tokens use the new secret's kid.
    let old = TestServer::start(b).await;
    let (_, claims) = genuine(&old).await;
    let old_kid = {
        let t = old.login("alzy", PASSWORD).await;
        jwt_parts(&t.access).0["kid"].as_str().unwrap().to_owned()
    };
    let new_secret = "rotated-7Qm2xV9pLk4sN8dR1tY6wZ3cH5jB0fG";
    let rotated = TestServer::start_with(b, |s| {
        s.tokens.secret_key = Some(tokengate::config::check_secret(new_secret).unwrap());
        s.tokens.previous_secret_keys = vec![tokengate::config::check_secret(TEST_SECRET).unwrap()];
    })
    .await;
    let t = rotated.user("alzy").await;
    let (h, fresh) = jwt_parts(&t.access);
    assert_ne!(h["kid"].as_str().unwrap(), old_kid);
    // A token from the old secret (same claims shape, the rotated server's session).
    let mut c = claims.clone();
    for k in ["sub", "sid"] {
        c[k] = fresh[k].clone();
    }
    assert_eq!(rotated.me_status(&sign_good(&old_kid, &c)).await, StatusCode::OK);
    // Restarted on the same database without the previous secret: the old-secret
    // token is refused, the new-secret token still works.
    let mut settings = rotated.settings.clone();
    let clock = rotated.clock.clone();
    let _dir = rotated.stop().await;
    settings.tokens.previous_secret_keys.clear();
    let forgot = TestServer::start_settings(settings, clock).await;
    refused(&forgot, &sign_good(&old_kid, &c)).await;
    assert_eq!(forgot.me_status(&t.access).await, StatusCode::OK);
}

#[per_backend]
pub async fn crit_header_is_refused(b: Backend) {
    // RFC 7515 §4.1.11: a `crit` extension we do not understand makes the token invalid,
    // even when everything else about it is genuine.
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], vec![]] {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.crit = Some(crit);
        let token = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(TEST_SECRET.as_bytes())).unwrap();
        refused(&srv, &token).await;
    }
}

#[per_backend]
pub async fn refusals_say_why_in_the_challenge(b: Backend) {
    let srv = TestServer::start(b).await;
    let (kid, claims) = genuine(&srv).await;
    let t = srv.login("alzy", PASSWORD).await;
    let wrong_key = sign(
        Algorithm::HS256,
        Some(&kid),
        &claims,
        b"another-key-another-key-0123456789",
    );
    assert_refused_because(srv.get_auth("/me", &wrong_key).await, "invalid signature").await;
    let res = srv.post_auth("/auth/logout", &t.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_refused_because(srv.get_auth("/me", &t.access).await, "token revoked").await;
    let fresh = srv.login("alzy", PASSWORD).await;
    srv.clock.advance(900);
    assert_refused_because(srv.get_auth("/me", &fresh.access).await, "token expired").await;
    // Anything else says only that the token is invalid.
    let res = srv.get_auth("/me", "not-a-jwt").await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert_invalid_token(res).await;
}
