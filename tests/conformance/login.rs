use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{AUDIENCE, Backend, ISSUER, PASSWORD, TestServer, jwt_parts};

#[per_backend]
pub async fn login_accepts_oauth2_form_and_json(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let form = srv
        .http
        .post(srv.url("/auth/login"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alzy"),
            ("password", PASSWORD),
            ("scope", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let json_res = srv
        .post_json("/auth/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    assert_eq!(json_res.status(), StatusCode::OK);
    for res in [form, json_res] {
        assert_eq!(res.headers()["cache-control"], "no-store");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["token_type"], "bearer");
        assert_eq!(v["expires_in"], 900);
        let refresh = v["refresh_token"].as_str().unwrap();
        assert_eq!(refresh.len(), 43, "32 bytes, base64url");
        assert!(!refresh.contains('.'), "the refresh token is opaque, not a JWT");
        assert_eq!(srv.me_status(v["access_token"].as_str().unwrap()).await, StatusCode::OK);
    }
}

#[per_backend]
pub async fn login_unknown_user_and_wrong_password_look_the_same(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let mut answers = Vec::new();
    for (u, p) in [("alzy", "wrong-password"), ("nobody", PASSWORD), ("nobody", "x")] {
        let res = srv
            .post_json("/auth/login", json!({"username": u, "password": p}))
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        answers.push(res.text().await.unwrap());
    }
    assert_eq!(answers[0], crate::common::BAD_CREDENTIALS);
    assert!(answers.iter().all(|a| a == &answers[0]));
}

#[per_backend]
pub async fn login_validation_errors(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .form(&[("username", "alzy")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["detail"][0]["loc"], json!(["body", "password"]));
    assert_eq!(v["detail"][0]["type"], "missing");

    assert_eq!(v["error"], "invalid_request", "{v}");
    assert_eq!(v["error_description"], "body.password: Field required", "{v}");

    let res = srv.http.post(srv.url("/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn token_form(srv: &TestServer, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = srv.http.post(srv.url("/auth/login")).form(fields).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// RFC 6749 section 6 at the advertised token endpoint: the refresh grant, with the
/// rotation and reuse rules of `/auth/refresh`.
#[per_backend]
pub async fn token_endpoint_takes_the_refresh_grant(b: Backend) {
    let srv = TestServer::start(b).await;
    let first = srv.user("alzy").await;
    let refresh = |token: &str| {
        let token = token.to_owned();
        let srv = &srv;
        async move { token_form(srv, &[("grant_type", "refresh_token"), ("refresh_token", &token)]).await }
    };
    let (status, second) = refresh(&first.refresh).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["token_type"], "bearer");
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first.refresh);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(srv.me_status(access).await, StatusCode::OK);
    let (_, c1) = jwt_parts(&first.access);
    let (_, c2) = jwt_parts(access);
    assert_eq!(c1["sid"], c2["sid"], "the same session");

    // Reuse of the spent token: refused as invalid_grant, and the session dies.
    let (status, v) = refresh(&first.refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_grant", "{v}");
    assert_eq!(v["detail"], "Invalid or expired refresh token");
    assert_eq!(srv.me_status(access).await, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh(&second_refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its successor died with the session");

    // The two endpoints share one chain: a token rotated here is spent for /auth/refresh.
    let t = srv.login("alzy", PASSWORD).await;
    let (status, _) = refresh(&t.refresh).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(srv.refresh(&t.refresh).await.status(), StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn token_endpoint_errors_carry_the_oauth2_error(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let (status, v) = token_form(&srv, &[("grant_type", "refresh_token")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["detail"][0]["loc"], json!(["body", "refresh_token"]));
    assert_eq!(v["error"], "invalid_request");

    let (status, v) = token_form(&srv, &[("grant_type", "refresh_token"), ("refresh_token", "made-up")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_grant");

    for grant in ["client_credentials", "authorization_code", ""] {
        let (status, v) = token_form(
            &srv,
            &[("grant_type", grant), ("username", "alzy"), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grant:?}: {v}");
        assert_eq!(v["error"], "unsupported_grant_type", "{grant:?}");
        assert!(v["detail"].as_str().unwrap().contains("grant_type"), "{v}");
    }

    srv.set_active("alzy", false).await;
    let (status, v) = token_form(&srv, &[("username", "alzy"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        (v["detail"].as_str(), v["error"].as_str()),
        (Some("Inactive user"), Some("invalid_grant"))
    );

    // Other routes keep FastAPI's body alone.
    let res = srv
        .post_json("/auth/refresh", json!({"refresh_token": "made-up"}))
        .await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v, json!({"detail": "Invalid or expired refresh token"}));
}

#[per_backend]
pub async fn access_token_has_the_contract_shape(b: Backend) {
    let srv = TestServer::start(b).await;
    let user = srv.register("alzy").await;
    let t = srv.login("alzy", PASSWORD).await;
    let (header, claims) = jwt_parts(&t.access);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    assert!(header["kid"].as_str().unwrap().starts_with("hs256-"));
    let mut keys: Vec<_> = claims.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "amr",
            "aud",
            "auth_time",
            "exp",
            "iat",
            "iss",
            "jti",
            "nbf",
            "preferred_username",
            "roles",
            "sid",
            "sub",
            "type"
        ]
    );
    // A password sign-in (RFC 8176), when it happened.
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["type"], "access");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert_eq!(claims["nbf"], claims["iat"]);
    // Two logins: two sessions, two distinct jtis.
    let t2 = srv.login("alzy", PASSWORD).await;
    let (_, c2) = jwt_parts(&t2.access);
    assert_ne!(c2["sid"], claims["sid"]);
    assert_ne!(c2["jti"], claims["jti"]);
}

#[per_backend]
pub async fn me_returns_the_caller(b: Backend) {
    let srv = TestServer::start(b).await;
    let user = srv.register("alzy").await;
    srv.register("other").await;
    let t = srv.login("alzy", PASSWORD).await;
    let res = srv.get_auth("/me", &t.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me, user);
}

#[per_backend]
pub async fn login_accepts_multipart_form_data(b: Backend) {
    // Browsers' FormData sends multipart; FastAPI's OAuth2PasswordRequestForm takes it.
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let body = format!(
        "--tgboundary\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalzy\r\n\
         --tgboundary\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{PASSWORD}\r\n--tgboundary--\r\n"
    );
    for path in ["/auth/login", "/auth/cookie/login"] {
        let res = srv
            .http
            .post(srv.url(path))
            .header("content-type", "multipart/form-data; boundary=tgboundary")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .header("content-type", "multipart/form-data")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "no boundary");
}

#[per_backend]
pub async fn json_sent_as_a_form_is_a_415_that_says_so(b: Backend) {
    // `curl -d '{...}'` sends JSON labelled as a form.
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(r#"{{"username":"alzy","password":"{PASSWORD}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("Content-Type: application/json"),
        "{v}"
    );
}
