//! A client written against the FastAPI security tutorial: its URLs (`POST /token`, its
//! `tokenUrl`, and `GET /users/me`), a username in the token, and users whose name was
//! their email address logging in with it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{BAD_CREDENTIALS, Backend, PASSWORD, TestServer, jwt_parts};

/// `OAuth2PasswordRequestForm` posted to `path`, as the tutorial's frontend does.
async fn form_login(srv: &TestServer, path: &str, username: &str, password: &str) -> reqwest::Response {
    srv.http
        .post(srv.url(path))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[per_backend]
pub async fn the_tutorials_urls_are_served_and_documented(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let res = form_login(&srv, "/token", "alzy", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let pair: Value = res.json().await.unwrap();
    assert_eq!(pair["token_type"], "bearer");
    let access = pair["access_token"].as_str().unwrap();
    let me = srv.get_auth("/users/me", access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], "alzy");
    assert_eq!(me, srv.get_auth("/me", access).await.json::<Value>().await.unwrap());
    // The same rules as the routes they stand for.
    let res = form_login(&srv, "/token", "alzy", "wrong-password").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text().await.unwrap(), BAD_CREDENTIALS);
    assert_eq!(
        srv.get_auth("/users/me", "not.a.token").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = pair["refresh_token"].as_str().unwrap();
    let res = srv
        .http
        .post(srv.url("/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Listed in the OpenAPI document, each with its own operation id.
    let doc = srv.get_json("/openapi.json").await;
    assert_eq!(doc["paths"]["/token"]["post"]["operationId"], "token");
    assert_eq!(doc["paths"]["/users/me"]["get"]["operationId"], "users_me");
    assert_eq!(
        doc["paths"]["/token"]["post"]["responses"],
        doc["paths"]["/auth/login"]["post"]["responses"]
    );
}

#[per_backend]
pub async fn the_tutorials_urls_follow_the_path_prefix(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.http.path_prefix = "/api/v1".into()).await;
    srv.register("alzy").await;
    let res = form_login(&srv, "/token", "alzy", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(srv.get_auth("/users/me", &access).await.status(), StatusCode::OK);
    let outside = srv
        .http
        .get(format!("{}/users/me", srv.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
}

#[per_backend]
pub async fn access_tokens_name_the_user(b: Backend) {
    let srv = TestServer::start(b).await;
    let user = srv.register("Alzy.Dev").await;
    let t = srv.login("alzy.dev", PASSWORD).await;
    let claims = jwt_parts(&t.access).1;
    // As stored, whatever case the login used; `sub` stays the id.
    assert_eq!(claims["preferred_username"], "Alzy.Dev");
    assert_eq!(claims["sub"], user["id"]);
}

#[per_backend]
pub async fn users_log_in_with_their_email_too(b: Backend) {
    let srv = TestServer::start(b).await;
    let user = srv.register("alzy").await;
    for name in ["alzy@example.com", "ALZY@Example.COM"] {
        let res = form_login(&srv, "/auth/login", name, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        let access = res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(jwt_parts(&access).1["sub"], user["id"]);
    }
    let json_login = srv
        .post_json(
            "/auth/login",
            json!({"username": "alzy@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(json_login.status(), StatusCode::OK);
    // A wrong password and an unknown email look the same as any bad login.
    for (name, password) in [("alzy@example.com", "wrong-password"), ("nobody@example.com", PASSWORD)] {
        let res = form_login(&srv, "/auth/login", name, password).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(res.text().await.unwrap(), BAD_CREDENTIALS);
    }
    // The cookie login takes it too.
    let res = srv
        .post_json(
            "/auth/cookie/login",
            json!({"username": "alzy@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
