use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, PASSWORD, TestServer, assert_invalid_token};

pub async fn register_returns_user_read_without_hash(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "alzy", "email": "Alzy@Example.COM", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "email", "id", "is_active", "roles", "username"]);
    assert_eq!(body["username"], "alzy");
    assert_eq!(body["email"], "Alzy@example.com");
    assert_eq!(body["is_active"], true);
    assert_eq!(body["roles"], json!([]));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(!body.to_string().contains("argon2"));
}

pub async fn register_refuses_taken_username_and_email(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    for body in [
        json!({"username": "ALZY", "email": "other@example.com", "password": PASSWORD}),
        json!({"username": "other", "email": "alzy@EXAMPLE.com", "password": PASSWORD}),
    ] {
        let res = srv.post_json("/auth/register", body).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["detail"], "Username or email already registered");
    }
}

pub async fn register_validation_lists_every_field(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "a b", "email": "nope", "password": "short"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    let locs: Vec<_> = v["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    assert_eq!(
        locs,
        [
            json!(["body", "username"]),
            json!(["body", "email"]),
            json!(["body", "password"])
        ]
    );
    for e in v["detail"].as_array().unwrap() {
        assert!(e["msg"].is_string() && e["type"].is_string());
    }

    let res = srv.post_json("/auth/register", json!({"username": "alzy"})).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    let types: Vec<_> = v["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(types, [json!("missing"), json!("missing")]);

    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": 7, "email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["detail"][0]["type"], "string_type");

    for name in ["ab", &"x".repeat(51)] {
        let res = srv
            .post_json(
                "/auth/register",
                json!({"username": name, "email": "a@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
    }
}

pub async fn register_counts_password_characters_not_bytes(b: Backend) {
    let srv = TestServer::start(b).await;
    // 100 four-byte characters: 400 bytes, well past bcrypt's 72, and within 128 characters.
    let long = "🔑".repeat(100);
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "emoji", "email": "e@example.com", "password": long}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    srv.login("emoji", &long).await;
    // Nothing is truncated: the same first 72 bytes with a different tail is wrong.
    let mut other = "🔑".repeat(99);
    other.push('x');
    let res = srv
        .post_json("/auth/login", json!({"username": "emoji", "password": other}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "toolong", "email": "t@example.com", "password": "é".repeat(129)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn register_never_grants_roles_from_the_body(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "mallory", "email": "m@example.com", "password": PASSWORD,
                   "roles": ["admin"], "is_active": false, "id": "00000000-0000-0000-0000-000000000000"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["roles"], json!([]));
    assert_eq!(v["is_active"], true);
    assert_ne!(v["id"], "00000000-0000-0000-0000-000000000000");
    let t = srv.login("mallory", PASSWORD).await;
    let (_, claims) = crate::common::jwt_parts(&t.access);
    assert_eq!(claims["roles"], json!([]));
}

pub async fn password_change_keeps_current_session_and_revokes_others(b: Backend) {
    let srv = TestServer::start(b).await;
    let here = srv.user("alzy").await;
    let there = srv.login("alzy", PASSWORD).await;
    let res = srv
        .post_auth(
            "/auth/password",
            &here.access,
            Some(json!({"current_password": PASSWORD, "new_password": "a-brand-new-pass"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The current session goes on; the other device is signed out, access and refresh.
    assert_eq!(srv.me_status(&here.access).await, StatusCode::OK);
    assert_eq!(srv.refresh(&here.refresh).await.status(), StatusCode::OK);
    assert_invalid_token(srv.get_auth("/me", &there.access).await).await;
    assert_invalid_token(srv.refresh(&there.refresh).await).await;
    // Old password no longer works; the new one does.
    let res = srv
        .post_json("/auth/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    srv.login("alzy", "a-brand-new-pass").await;
}

pub async fn password_change_refuses_wrong_current_and_weak_new(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let res = srv
        .post_auth(
            "/auth/password",
            &t.access,
            Some(json!({"current_password": "not-my-password", "new_password": "a-brand-new-pass"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["detail"], "Incorrect password");

    let res = srv
        .post_auth(
            "/auth/password",
            &t.access,
            Some(json!({"current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["detail"][0]["loc"], json!(["body", "new_password"]));

    let res = srv
        .http
        .post(srv.url("/auth/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": "a-brand-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing changed.
    srv.login("alzy", PASSWORD).await;
}
