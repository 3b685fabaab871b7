use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{AUDIENCE, Backend, ISSUER, PASSWORD, TestServer, jwt_parts};

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
    assert_eq!(answers[0], r#"{"detail":"Incorrect username or password"}"#);
    assert!(answers.iter().all(|a| a == &answers[0]));
}

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

    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("username", "alzy"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let res = srv.http.post(srv.url("/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

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
        ["aud", "exp", "iat", "iss", "jti", "nbf", "roles", "sid", "sub", "type"]
    );
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
