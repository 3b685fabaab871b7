//! `GET /auth/verify` for nginx auth_request, Traefik ForwardAuth, Caddy forward_auth.

use reqwest::{Method, StatusCode};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, TestServer, jwt_parts};

#[per_backend]
pub async fn verify_answers_identity_headers(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let res = srv.get_auth("/auth/verify", &t.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, claims) = jwt_parts(&t.access);
    let h = res.headers().clone();
    assert_eq!(h["x-auth-user-id"], claims["sub"].as_str().unwrap());
    assert_eq!(h["x-auth-username"], "alzy");
    assert_eq!(h["x-auth-roles"], "");
    assert_eq!(h["x-auth-session-id"], claims["sid"].as_str().unwrap());
    assert!(res.bytes().await.unwrap().is_empty());
    // Proxies may send the subrequest with the original method.
    let res = srv
        .http
        .request(Method::POST, srv.url("/auth/verify"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[per_backend]
pub async fn verify_refuses_missing_invalid_and_revoked(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let res = srv.http.get(srv.url("/auth/verify")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        srv.get_auth("/auth/verify", "x.y.z").await.status(),
        StatusCode::UNAUTHORIZED
    );
    srv.post_auth("/auth/logout", &t.access, None).await;
    let res = srv.get_auth("/auth/verify", &t.access).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("x-auth-user-id").is_none());
}

#[per_backend]
pub async fn verify_checks_a_required_role(b: Backend) {
    let srv = TestServer::start(b).await;
    let user = srv.user("alzy").await;
    let admin = srv.admin("root").await;
    let res = srv.get_auth("/auth/verify?role=admin", &user.access).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.text().await.unwrap(),
        concat!(r#"{"detail":"Insufficient role"}"#, "\n")
    );
    let res = srv.get_auth("/auth/verify?role=admin", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-roles"], "admin");
}

#[per_backend]
pub async fn verify_applies_csrf_to_the_method_the_proxy_names(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let res = srv
        .post_json(
            "/auth/cookie/login",
            serde_json::json!({"username": "alzy", "password": crate::common::PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.contains("refresh"))
        .collect();
    let csrf = res.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = |extra: &[(&'static str, String)]| {
        let mut req = srv
            .http
            .get(srv.url("/auth/verify"))
            .header("cookie", cookies.join("; "));
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        req.send()
    };
    // nginx's auth_request always sends GET; the snippets pass the real method on.
    assert_eq!(verify(&[]).await.unwrap().status(), StatusCode::OK);
    for header in ["x-original-method", "x-forwarded-method"] {
        for method in ["POST", "DELETE", "PATCH"] {
            let res = verify(&[(header, method.to_owned())]).await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{header}: {method}");
            let res = verify(&[(header, method.to_owned()), ("x-csrf-token", csrf.clone())])
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{header}: {method} with its token");
        }
        let res = verify(&[(header, "GET".to_owned())]).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Bearer callers need no CSRF token, whatever the method.
    let t = srv.login("alzy", crate::common::PASSWORD).await;
    let res = srv
        .http
        .get(srv.url("/auth/verify"))
        .bearer_auth(&t.access)
        .header("x-forwarded-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
