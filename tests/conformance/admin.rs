use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens, assert_invalid_token, jwt_parts};

async fn user_id(srv: &TestServer, t: &Tokens) -> String {
    srv.get_auth("/me", &t.access).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[per_backend]
pub async fn non_admin_gets_403_and_anonymous_401(b: Backend) {
    let srv = TestServer::start(b).await;
    let alzy = srv.user("alzy").await;
    let id = user_id(&srv, &alzy).await;
    let responses = [
        srv.get_auth("/admin/users", &alzy.access).await,
        srv.patch_auth(&format!("/admin/users/{id}"), &alzy.access, json!({"roles": ["admin"]}))
            .await,
        srv.delete_auth(&format!("/admin/users/{id}"), &alzy.access).await,
    ];
    for res in responses {
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.text().await.unwrap(),
            concat!(r#"{"detail":"Insufficient role"}"#, "\n")
        );
    }
    let res = srv.http.get(srv.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing changed.
    let me: Value = srv.get_auth("/me", &alzy.access).await.json().await.unwrap();
    assert_eq!(me["roles"], json!([]));
}

#[per_backend]
pub async fn admin_lists_users_with_bounded_paging(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("root").await;
    for i in 0..5 {
        srv.register(&format!("user{i}")).await;
    }
    let all: Vec<Value> = srv.get_auth("/admin/users", &admin.access).await.json().await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|u| u.get("password_hash").is_none()));
    let page: Vec<Value> = srv
        .get_auth("/admin/users?limit=2&offset=2", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["id"], all[2]["id"]);
    for bad in ["limit=-1", "limit=abc", "offset=-3", "limit=100000", "limit=0"] {
        let res = srv.get_auth(&format!("/admin/users?{bad}"), &admin.access).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["detail"][0]["loc"][0], "query");
    }
}

#[per_backend]
pub async fn role_change_applies_at_next_refresh(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("root").await;
    let alzy = srv.user("alzy").await;
    let id = user_id(&srv, &alzy).await;
    let res = srv
        .patch_auth(
            &format!("/admin/users/{id}"),
            &admin.access,
            json!({"roles": ["editor", "admin"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["roles"], json!(["editor", "admin"]));
    // The old token carries no admin role: still refused.
    assert_eq!(
        srv.get_auth("/admin/users", &alzy.access).await.status(),
        StatusCode::FORBIDDEN
    );
    let refreshed = Tokens::from(srv.refresh(&alzy.refresh).await.json::<Value>().await.unwrap());
    assert_eq!(jwt_parts(&refreshed.access).1["roles"], json!(["editor", "admin"]));
    assert_eq!(
        srv.get_auth("/admin/users", &refreshed.access).await.status(),
        StatusCode::OK
    );
    // Removing the role takes effect at once, even for a token that still lists it.
    srv.patch_auth(
        &format!("/admin/users/{id}"),
        &admin.access,
        json!({"roles": ["editor"]}),
    )
    .await;
    assert_eq!(
        srv.get_auth("/admin/users", &refreshed.access).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[per_backend]
pub async fn patch_validates_its_body(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("root").await;
    let alzy = srv.user("alzy").await;
    let id = user_id(&srv, &alzy).await;
    for body in [
        json!({"roles": "admin"}),
        json!({"roles": ["Not A Role"]}),
        json!({"roles": [1]}),
        json!({"is_active": "no"}),
        json!({"password_hash": "x"}),
        json!({"username": "root2"}),
    ] {
        let res = srv
            .patch_auth(&format!("/admin/users/{id}"), &admin.access, body.clone())
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    for path in [
        "/admin/users/not-a-uuid",
        "/admin/users/00000000-0000-4000-8000-000000000000",
    ] {
        let res = srv.patch_auth(path, &admin.access, json!({"is_active": false})).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            srv.delete_auth(path, &admin.access).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[per_backend]
pub async fn deactivation_kills_every_token_and_reactivation_revives_none(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("root").await;
    let one = srv.user("alzy").await;
    let two = srv.login("alzy", PASSWORD).await;
    let id = user_id(&srv, &one).await;
    let res = srv
        .patch_auth(
            &format!("/admin/users/{id}"),
            &admin.access,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["is_active"], false);
    for t in [&one, &two] {
        assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
        assert_invalid_token(srv.refresh(&t.refresh).await).await;
    }
    // Inactive: the right password gets 403, a wrong one the same 401 as anyone.
    let res = srv
        .post_json("/auth/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.unwrap()["detail"], "Inactive user");
    let res = srv
        .post_json("/auth/login", json!({"username": "alzy", "password": "wrong-password"}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text().await.unwrap(), crate::common::BAD_CREDENTIALS);
    // Reactivated: a new login works; the old tokens stay dead.
    let res = srv
        .patch_auth(&format!("/admin/users/{id}"), &admin.access, json!({"is_active": true}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let again = srv.login("alzy", PASSWORD).await;
    assert_eq!(srv.me_status(&again.access).await, StatusCode::OK);
    for t in [&one, &two] {
        assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
        assert_invalid_token(srv.refresh(&t.refresh).await).await;
    }
}

#[per_backend]
pub async fn deleting_a_user_kills_their_tokens(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("root").await;
    let alzy = srv.user("alzy").await;
    let id = user_id(&srv, &alzy).await;
    let res = srv.delete_auth(&format!("/admin/users/{id}"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(srv.get_auth("/me", &alzy.access).await).await;
    assert_invalid_token(srv.refresh(&alzy.refresh).await).await;
    let res = srv
        .post_json("/auth/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        srv.delete_auth(&format!("/admin/users/{id}"), &admin.access)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The name is free again.
    srv.register("alzy").await;
}

#[per_backend]
pub async fn the_last_admin_cannot_leave_the_server_without_one(b: Backend) {
    let srv = TestServer::start(b).await;
    let root = srv.admin("root").await;
    let me = format!("/admin/users/{}", user_id(&srv, &root).await);
    let refused = |res: reqwest::Response| async move {
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let v: Value = res.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("no active admin"), "{v}");
    };
    refused(srv.patch_auth(&me, &root.access, json!({"roles": []})).await).await;
    refused(srv.patch_auth(&me, &root.access, json!({"roles": ["auditor"]})).await).await;
    refused(srv.patch_auth(&me, &root.access, json!({"is_active": false})).await).await;
    refused(srv.delete_auth(&me, &root.access).await).await;
    // Nothing changed: root is still an active admin.
    let res = srv.get_auth("/admin/users", &root.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    // With a second admin, stepping down is fine.
    let bob = srv.admin("bob").await;
    let res = srv.patch_auth(&me, &root.access, json!({"roles": []})).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Now bob is the last one.
    let bobs = format!("/admin/users/{}", user_id(&srv, &bob).await);
    refused(srv.delete_auth(&bobs, &bob.access).await).await;
    // Changes to non-admins are never held up.
    let alzy = srv.user("alzy").await;
    let res = srv
        .patch_auth(
            &format!("/admin/users/{}", user_id(&srv, &alzy).await),
            &bob.access,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A server whose password hash takes a few hundred milliseconds, so a login is still
/// hashing when an admin acts.
async fn slow_login_server(b: Backend) -> TestServer {
    TestServer::start_with(b, |s| {
        s.argon2 = tokengate::crypto::passwords::Argon2Params {
            memory_kib: 128 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    })
    .await
}

/// Log alzy in while `act` runs 40 ms later (the login is still hashing then); both
/// answers.
async fn login_racing<F: std::future::Future<Output = reqwest::Response>>(
    srv: &TestServer,
    act: F,
) -> (reqwest::Response, reqwest::Response) {
    let racing = srv
        .http
        .post(srv.url("/auth/login"))
        .json(&json!({"username": "alzy", "password": PASSWORD}))
        .send();
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        act.await
    };
    let (login, acted) = tokio::join!(racing, later);
    (login.unwrap(), acted)
}

#[per_backend]
pub async fn a_login_racing_a_deactivation_opens_no_session(b: Backend) {
    let srv = slow_login_server(b).await;
    let admin = srv.admin("root").await;
    let alzy = srv.user("alzy").await;
    let user = format!("/admin/users/{}", user_id(&srv, &alzy).await);
    let (login, deactivated) =
        login_racing(&srv, srv.patch_auth(&user, &admin.access, json!({"is_active": false}))).await;
    assert_eq!(deactivated.status(), StatusCode::OK);
    assert_ne!(
        login.status(),
        StatusCode::OK,
        "the login finished after the deactivation"
    );
    assert!(login.status().is_client_error(), "{}", login.status());
    // Reactivation revives nothing from before.
    let res = srv.patch_auth(&user, &admin.access, json!({"is_active": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = srv.login("alzy", PASSWORD).await;
    let sessions: Vec<Value> = srv.get_auth("/auth/sessions", &list.access).await.json().await.unwrap();
    assert_eq!(sessions.len(), 1, "only the new login's session: {sessions:?}");
}

#[per_backend]
pub async fn a_login_racing_a_deletion_is_refused_not_a_500(b: Backend) {
    let srv = slow_login_server(b).await;
    let admin = srv.admin("root").await;
    let alzy = srv.user("alzy").await;
    let user = format!("/admin/users/{}", user_id(&srv, &alzy).await);
    let (login, deleted) = login_racing(&srv, srv.delete_auth(&user, &admin.access)).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login.text().await.unwrap(), crate::common::BAD_CREDENTIALS);
}

#[per_backend]
pub async fn two_admins_demoting_each_other_at_once_leave_one(b: Backend) {
    let srv = TestServer::start(b).await;
    let root = srv.admin("root").await;
    let bob = srv.admin("bob").await;
    let root_path = format!("/admin/users/{}", user_id(&srv, &root).await);
    let bob_path = format!("/admin/users/{}", user_id(&srv, &bob).await);
    for _ in 0..5 {
        // Each demotes the other (and itself: roles [] on both) at the same instant.
        let (a, b2) = tokio::join!(
            srv.patch_auth(&bob_path, &root.access, json!({"roles": []})),
            srv.patch_auth(&root_path, &bob.access, json!({"roles": []})),
        );
        let ok = [a.status(), b2.status()]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert!(ok <= 1, "both demotions went through: no admin is left");
        // Restore both for the next round, through whoever is still admin.
        let still = if a.status() == StatusCode::OK { &root } else { &bob };
        for path in [&root_path, &bob_path] {
            let res = srv.patch_auth(path, &still.access, json!({"roles": ["admin"]})).await;
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
}
