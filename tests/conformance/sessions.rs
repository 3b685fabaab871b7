use reqwest::StatusCode;
use serde_json::Value;
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens, assert_invalid_token, jwt_parts};

async fn list(srv: &TestServer, access: &str) -> Vec<Value> {
    let res = srv.get_auth("/auth/sessions", access).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Vec<Value>>().await.unwrap()
}

fn sid(t: &Tokens) -> String {
    jwt_parts(&t.access).1["sid"].as_str().unwrap().to_owned()
}

#[per_backend]
pub async fn sessions_list_marks_current_and_hides_dead_ones(b: Backend) {
    let srv = TestServer::start(b).await;
    let phone = srv.user("alzy").await;
    let laptop = srv
        .http
        .post(srv.url("/auth/login"))
        .header("user-agent", "Laptop/1.0")
        .form(&[("username", "alzy"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let laptop = Tokens::from(laptop.json::<Value>().await.unwrap());
    let gone = srv.login("alzy", PASSWORD).await;
    srv.post_auth("/auth/logout", &gone.access, None).await;
    srv.user("other").await;

    let sessions = list(&srv, &phone.access).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let mine = sessions.iter().find(|s| s["id"] == sid(&phone).as_str()).unwrap();
    let theirs = sessions.iter().find(|s| s["id"] == sid(&laptop).as_str()).unwrap();
    assert_eq!(mine["current"], true);
    assert_eq!(theirs["current"], false);
    assert_eq!(theirs["user_agent"], "Laptop/1.0");
    assert_eq!(theirs["ip"], "127.0.0.1");
    for key in [
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "ip",
        "current",
        "device",
        "device_name",
    ] {
        assert!(mine.get(key).is_some(), "{key}");
    }
    assert!(!sessions.iter().any(|s| s["id"] == sid(&gone).as_str()));
}

#[per_backend]
pub async fn sessions_last_used_moves_on_refresh(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let before = list(&srv, &t.access).await[0]["last_used_at"].clone();
    srv.clock.advance(120);
    let t2 = Tokens::from(srv.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    let after = list(&srv, &t2.access).await;
    assert_eq!(after.len(), 1);
    assert_ne!(after[0]["last_used_at"], before);
    assert_ne!(after[0]["last_used_at"], after[0]["created_at"]);
    // Expired sessions are not listed either.
    srv.clock.advance(7 * 24 * 3600);
    let fresh = srv.login("alzy", PASSWORD).await;
    let now = list(&srv, &fresh.access).await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["id"], sid(&fresh).as_str());
}

#[per_backend]
pub async fn revoking_a_session_kills_it_at_once(b: Backend) {
    let srv = TestServer::start(b).await;
    let phone = srv.user("alzy").await;
    let laptop = srv.login("alzy", PASSWORD).await;
    let res = srv
        .delete_auth(&format!("/auth/sessions/{}", sid(&laptop)), &phone.access)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(srv.get_auth("/me", &laptop.access).await).await;
    assert_invalid_token(srv.refresh(&laptop.refresh).await).await;
    assert_eq!(srv.me_status(&phone.access).await, StatusCode::OK);
    // Again: it is gone.
    let res = srv
        .delete_auth(&format!("/auth/sessions/{}", sid(&laptop)), &phone.access)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[per_backend]
pub async fn another_users_session_is_not_found_and_stays_alive(b: Backend) {
    let srv = TestServer::start(b).await;
    let alzy = srv.user("alzy").await;
    let mallory = srv.user("mallory").await;
    let res = srv
        .delete_auth(&format!("/auth/sessions/{}", sid(&alzy)), &mallory.access)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let unknown = srv
        .delete_auth("/auth/sessions/00000000-0000-4000-8000-000000000000", &mallory.access)
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // Indistinguishable from an unknown id.
    let a: Value = res.json().await.unwrap();
    let b2: Value = unknown.json().await.unwrap();
    assert_eq!(a, b2);
    assert_eq!(srv.me_status(&alzy.access).await, StatusCode::OK);
    for bad in ["not-a-uuid", "1", "%00", "..%2F..%2Fetc"] {
        let res = srv.delete_auth(&format!("/auth/sessions/{bad}"), &mallory.access).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    let res = srv
        .http
        .delete(srv.url(&format!("/auth/sessions/{}", sid(&alzy))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Logs in through `path` with `fields` (a form) as `user_agent`; the status and body.
async fn login_as(srv: &TestServer, path: &str, user_agent: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = srv
        .http
        .post(srv.url(path))
        .header("user-agent", user_agent)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

const CHROME: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36";

#[per_backend]
pub async fn sessions_show_a_given_device_name_or_one_read_from_the_user_agent(b: Backend) {
    let srv = TestServer::start(b).await;
    let me = srv.user("alzy").await;
    let named = [
        ("username", "alzy"),
        ("password", PASSWORD),
        ("device_name", "  Alice's laptop "),
    ];
    let (status, _) = login_as(&srv, "/auth/login", CHROME, &named).await;
    assert_eq!(status, StatusCode::OK);
    let plain = [("username", "alzy"), ("password", PASSWORD)];
    let (status, _) = login_as(&srv, "/auth/login", "curl/8.5.0", &plain).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = login_as(
        &srv,
        "/auth/cookie/login",
        CHROME,
        &[plain[0], plain[1], ("device_name", "Kitchen tablet")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // JSON too, and an empty form field is no name.
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .json(&serde_json::json!({"username": "alzy", "password": PASSWORD, "device_name": "Work phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = login_as(
        &srv,
        "/auth/login",
        "curl/8.5.0",
        &[plain[0], plain[1], ("device_name", "")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let sessions = list(&srv, &me.access).await;
    let by_name = |n: &str| sessions.iter().find(|s| s["device_name"] == n).cloned();
    let laptop = by_name("Alice's laptop").expect("trimmed name listed");
    assert_eq!(laptop["device"], "Chrome 156 on Linux");
    assert_eq!(laptop["user_agent"], CHROME, "the raw string is still there");
    assert!(by_name("Kitchen tablet").is_some(), "cookie login names devices too");
    assert!(by_name("Work phone").is_some());
    let curls: Vec<_> = sessions.iter().filter(|s| s["device"] == "curl 8.5").collect();
    assert_eq!(curls.len(), 2, "{sessions:?}");
    assert!(curls.iter().all(|s| s["device_name"].is_null()));
}

#[per_backend]
pub async fn a_device_name_over_64_characters_or_with_control_characters_is_a_422(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let long = "x".repeat(65);
    for (path, bad) in [
        ("/auth/login", long.as_str()),
        ("/auth/login", "tab\there"),
        ("/auth/cookie/login", "bell\u{7}"),
        ("/auth/cookie/login", long.as_str()),
        // Bidi overrides and invisible characters dress a thief's session up.
        ("/auth/login", "\u{202e}MacBook (this browser)\u{202c}"),
        ("/auth/cookie/login", "Mac\u{200b}Book"),
        ("/auth/login", "\u{2066}iPhone\u{2069}"),
        ("/auth/login", "\u{feff}Laptop"),
    ] {
        let (status, v) = login_as(
            &srv,
            path,
            "curl/8.5.0",
            &[("username", "alzy"), ("password", PASSWORD), ("device_name", bad)],
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {bad:?}: {v}");
        assert_eq!(v["detail"][0]["loc"], serde_json::json!(["body", "device_name"]), "{v}");
    }
    // 64 characters (not bytes) is fine.
    let (status, _) = login_as(
        &srv,
        "/auth/login",
        "curl/8.5.0",
        &[
            ("username", "alzy"),
            ("password", PASSWORD),
            ("device_name", &"é".repeat(64)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[per_backend]
pub async fn session_ip_keeps_the_address_its_network_or_nothing(b: Backend) {
    use tokengate::auth::SessionIp;
    for (policy, want) in [
        (SessionIp::Full, Value::from("127.0.0.1")),
        (SessionIp::Prefix, Value::from("127.0.0.0/24")),
        (SessionIp::None, Value::Null),
    ] {
        let srv = TestServer::start_with(b, |s| s.tokens.session_ip = policy).await;
        let t = srv.user("alzy").await;
        let sessions = list(&srv, &t.access).await;
        assert_eq!(sessions[0]["ip"], want, "{policy:?}");
    }
}
