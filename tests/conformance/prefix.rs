//! `TOKENGATE_PATH_PREFIX`: the main flow under `/api/v1` (the frontend of a FastAPI app
//! mounted there keeps its URLs), and nothing at the unprefixed paths.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens};

const PREFIX: &str = "/api/v1";

async fn prefixed(b: Backend) -> TestServer {
    TestServer::start_with(b, |s| s.http.path_prefix = PREFIX.into()).await
}

#[per_backend]
pub async fn the_main_flow_works_under_a_path_prefix(b: Backend) {
    let srv = prefixed(b).await;
    // register, log in (form), /me, refresh on both endpoints, sessions, logout.
    srv.register("alzy").await;
    let t = srv.login("alzy", PASSWORD).await;
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    let res = srv.refresh(&t.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t = Tokens::from(res.json::<Value>().await.unwrap());
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", t.refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t = Tokens::from(res.json::<Value>().await.unwrap());
    let sessions: Value = srv.get_auth("/auth/sessions", &t.access).await.json().await.unwrap();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert_eq!(
        srv.post_auth("/auth/logout", &t.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(srv.me_status(&t.access).await, StatusCode::UNAUTHORIZED);

    // The cookie flow: the refresh cookie's path follows the prefix.
    let res = srv
        .post_json("/auth/cookie/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let refresh_cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("tokengate_refresh="))
        .expect("a refresh cookie");
    assert!(refresh_cookie.contains("Path=/api/v1/auth/cookie"), "{refresh_cookie}");

    // Discovery, the OpenAPI document, the docs page, the account page, health.
    let conf = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(conf["token_endpoint"], format!("{}{PREFIX}/oauth/token", srv.base));
    assert_eq!(conf["issuer"], format!("{}{PREFIX}", srv.base));
    assert_eq!(conf["jwks_uri"], format!("{}{PREFIX}/.well-known/jwks.json", srv.base));
    let jwks = srv.http.get(conf["jwks_uri"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
    let doc = srv.get_json("/openapi.json").await;
    assert_eq!(doc["servers"][0]["url"], PREFIX);
    let flow = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    assert_eq!(flow["tokenUrl"], format!("{PREFIX}/auth/login"));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let docs = no_redirects.get(srv.url("/docs")).send().await.unwrap();
    assert_eq!(docs.headers()["location"], format!("{PREFIX}/docs/"));
    let swagger = srv
        .http
        .get(srv.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(swagger.text().await.unwrap().contains("/api/v1/openapi.json"));
    let page = srv.http.get(srv.url("/account")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let script = srv.http.get(srv.url("/account/app.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    for path in ["/healthz", "/readyz"] {
        let res = srv.http.get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}

#[per_backend]
pub async fn nothing_answers_outside_the_path_prefix(b: Backend) {
    let srv = prefixed(b).await;
    srv.register("alzy").await;
    let t = srv.login("alzy", PASSWORD).await;
    let unprefixed = |path: &str| format!("{}{path}", srv.base);
    for path in [
        "/healthz",
        "/me",
        "/openapi.json",
        "/docs",
        "/account",
        "/.well-known/jwks.json",
        "/api/v1x/healthz",
        "/api/healthz",
    ] {
        let res = srv
            .http
            .get(unprefixed(path))
            .bearer_auth(&t.access)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = srv
        .http
        .post(unprefixed("/auth/login"))
        .form(&[("username", "alzy"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
