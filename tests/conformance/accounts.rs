use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, assert_invalid_token};

#[per_backend]
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
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "email_verified",
            "id",
            "is_active",
            "roles",
            "username"
        ]
    );
    assert_eq!(body["username"], "alzy");
    assert_eq!(body["email"], "Alzy@example.com");
    assert_eq!(body["is_active"], true);
    assert_eq!(body["roles"], json!([]));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(!body.to_string().contains("argon2"));
}

#[per_backend]
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

#[per_backend]
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

#[per_backend]
pub async fn register_counts_password_characters_not_bytes(b: Backend) {
    let srv = TestServer::start(b).await;
    // 100 four-byte characters (none repeated): 400 bytes, well past bcrypt's 72, and
    // within 128 characters.
    let emoji = |n: u32| {
        (0..n)
            .filter_map(|i| char::from_u32(0x1F400 + i * 7))
            .collect::<String>()
    };
    let long = emoji(100);
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "emoji", "email": "e@example.com", "password": long}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    srv.login("emoji", &long).await;
    // Nothing is truncated: the same first 72 bytes with a different tail is wrong.
    let mut other = emoji(99);
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

#[per_backend]
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

#[per_backend]
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

#[per_backend]
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

/// Settings whose hash takes long enough (tens of ms) that requests overlap, with one
/// waiting slot in front of the cores.
fn slow_hash_one_waiting(s: &mut tokengate::config::Settings) {
    s.argon2 = tokengate::crypto::passwords::Argon2Params {
        memory_kib: 32 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    s.limits.hash_queue_max = 1;
}

async fn register_many(srv: &TestServer, names: impl Iterator<Item = String>) -> Vec<reqwest::Response> {
    let sends = names.map(|name| {
        srv.http
            .post(srv.url("/auth/register"))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
            .send()
    });
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("response"))
        .collect()
}

#[per_backend]
pub async fn a_taken_name_costs_no_hash(b: Backend) {
    let srv = TestServer::start_with(b, slow_hash_one_waiting).await;
    srv.register("alzy").await;
    // Twelve at once: if each hashed, all but three would find the queue full (503).
    let answers = register_many(&srv, (0..12).map(|_| "alzy".to_owned())).await;
    for res in answers {
        assert_eq!(res.status(), StatusCode::CONFLICT);
    }
}

#[per_backend]
pub async fn a_full_hash_queue_answers_503_at_once(b: Backend) {
    let srv = TestServer::start_with(b, slow_hash_one_waiting).await;
    let answers = register_many(&srv, (0..12).map(|i| format!("user{i}"))).await;
    let mut busy = 0;
    for res in answers {
        match res.status() {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(res.headers()["retry-after"], "1");
                let v: Value = res.json().await.unwrap();
                assert!(v["detail"].as_str().unwrap().contains("busy"), "{v}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "some of twelve simultaneous hashes found the queue full");
    // Nothing waits behind them: the next request is served normally.
    srv.register("after").await;
    srv.login("after", PASSWORD).await;
}

#[per_backend]
pub async fn a_login_in_flight_during_a_password_change_opens_no_session(b: Backend) {
    use tokengate::crypto::tokens::RefreshToken;
    use tokengate::domain::SessionId;
    use tokengate::store::{NewSession, SessionOpen};
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let store = srv.store().await;
    // What a login read before hashing the old password...
    let read = store.user_by_username("alzy").await.unwrap().unwrap();
    let session = |stamp: i64| {
        let now = tokengate::domain::UnixTime(srv.clock.now_secs());
        NewSession {
            id: SessionId::new(),
            user_id: read.id,
            expected_stamp: stamp,
            now,
            expires_at: now.plus(3600),
            max_expires_at: now.plus(3600),
            user_agent: None,
            ip: None,
            device_name: None,
            refresh_hash: RefreshToken::generate().unwrap().1,
            auth: tokengate::domain::Authentication::new(now, &[tokengate::domain::AuthMethod::Pwd]),
            client: None,
            from_code: None,
        }
    };
    // ...then the password changes, while it hashes.
    let res = srv
        .post_auth(
            "/auth/password",
            &t.access,
            Some(json!({"current_password": PASSWORD, "new_password": "a-new-password-1"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The login's session must not open on what it verified.
    let opened = store.create_session(session(read.security_stamp)).await.unwrap();
    assert_eq!(opened, SessionOpen::UserChanged);
    // A login that read the user after the change opens one.
    let now = store.user_by_username("alzy").await.unwrap().unwrap();
    assert_ne!(now.security_stamp, read.security_stamp);
    assert_eq!(
        store.create_session(session(now.security_stamp)).await.unwrap(),
        SessionOpen::Opened
    );
}

/// The attacker's `POST /auth/password` as it stood when its current password had been
/// verified: the caller as authenticated then. What commits meanwhile must win.
async fn change_from(
    srv: &TestServer,
    who: &tokengate::auth::Principal,
    new: &str,
) -> Result<(), tokengate::auth::AuthError> {
    use tokengate::domain::Password;
    let client = tokengate::events::ClientInfo {
        ip: None,
        user_agent: None,
    };
    srv.auth()
        .change_password(
            who,
            tokengate::auth::StepUp {
                password: Password::parse(PASSWORD).unwrap(),
                code: None,
                passkey: None,
            },
            Password::parse(new).unwrap(),
            &client,
        )
        .await
}

#[per_backend]
pub async fn a_password_change_that_lost_a_race_writes_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let thief = srv.user("alzy").await;
    let owner = srv.login("alzy", PASSWORD).await;
    // The thief's change has verified the old password (it read the account then)...
    let in_flight = srv.auth().authenticate(&thief.access).await.unwrap();
    // ...when the owner's own change commits, revoking the thief's session.
    let res = srv
        .post_auth(
            "/auth/password",
            &owner.access,
            Some(json!({"current_password": PASSWORD, "new_password": "owners-new-password"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let lost = change_from(&srv, &in_flight, "thiefs-new-password").await;
    assert!(
        matches!(lost, Err(tokengate::auth::AuthError::InvalidToken(_))),
        "{lost:?}"
    );
    // Nothing of the thief's was written: the owner's password and session stand.
    assert_eq!(srv.me_status(&owner.access).await, StatusCode::OK);
    let res = srv
        .post_json(
            "/auth/login",
            json!({"username": "alzy", "password": "thiefs-new-password"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    srv.login("alzy", "owners-new-password").await;
}

#[per_backend]
pub async fn a_password_change_loses_to_an_operator_reset(b: Backend) {
    let srv = TestServer::start(b).await;
    let thief = srv.user("alzy").await;
    let in_flight = srv.auth().authenticate(&thief.access).await.unwrap();
    let client = tokengate::events::ClientInfo {
        ip: None,
        user_agent: None,
    };
    srv.auth()
        .set_password(
            in_flight.user_id(),
            tokengate::domain::Password::parse("operators-password").unwrap(),
            &client,
        )
        .await
        .unwrap();
    let lost = change_from(&srv, &in_flight, "thiefs-new-password").await;
    assert!(
        matches!(lost, Err(tokengate::auth::AuthError::InvalidToken(_))),
        "{lost:?}"
    );
    srv.login("alzy", "operators-password").await;
}

#[per_backend]
pub async fn a_password_change_from_a_revoked_session_writes_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let thief = srv.user("alzy").await;
    let owner = srv.login("alzy", PASSWORD).await;
    let in_flight = srv.auth().authenticate(&thief.access).await.unwrap();
    // The owner ends the thief's session alone (no stamp moves) while its change hashes.
    let path = format!("/auth/sessions/{}", in_flight.session_id());
    assert_eq!(
        srv.delete_auth(&path, &owner.access).await.status(),
        StatusCode::NO_CONTENT
    );
    let lost = change_from(&srv, &in_flight, "thiefs-new-password").await;
    assert!(
        matches!(lost, Err(tokengate::auth::AuthError::InvalidToken(_))),
        "{lost:?}"
    );
    assert_eq!(srv.me_status(&owner.access).await, StatusCode::OK);
    srv.login("alzy", PASSWORD).await;
}

#[per_backend]
pub async fn the_most_common_passwords_are_refused_with_a_reason(b: Backend) {
    let srv = TestServer::start(b).await;
    for (i, common) in ["password", "iloveyou", "12345678", "Password123", "qwertyuiop"]
        .iter()
        .enumerate()
    {
        let res = srv
            .post_json(
                "/auth/register",
                json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"), "password": common}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{common}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["detail"][0]["loc"], json!(["body", "password"]), "{v}");
        assert!(v["detail"][0]["msg"].as_str().unwrap().contains("too common"), "{v}");
    }
    // A new password at a change is held to the same rule.
    let t = srv.user("alzy").await;
    let res = srv
        .post_auth(
            "/auth/password",
            &t.access,
            Some(json!({"current_password": PASSWORD, "new_password": "baseball"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
