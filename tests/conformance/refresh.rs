use std::collections::HashSet;
use tokengate_test_macros::per_backend;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, TestServer, Tokens, assert_invalid_token, jwt_parts};

#[per_backend]
pub async fn refresh_rotates_and_old_token_dies(b: Backend) {
    let srv = TestServer::start(b).await;
    let first = srv.user("alzy").await;
    let res = srv.refresh(&first.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = Tokens::from(res.json::<Value>().await.unwrap());
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    // Same session, new jti.
    let (_, c1) = jwt_parts(&first.access);
    let (_, c2) = jwt_parts(&second.access);
    assert_eq!(c1["sid"], c2["sid"]);
    assert_ne!(c1["jti"], c2["jti"]);
    assert_eq!(srv.me_status(&second.access).await, StatusCode::OK);
    // The successor works once more, in a chain.
    let res = srv.refresh(&second.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[per_backend]
pub async fn refresh_reuse_revokes_the_whole_session(b: Backend) {
    let srv = TestServer::start(b).await;
    let first = srv.user("alzy").await;
    let other_device = srv.login("alzy", crate::common::PASSWORD).await;
    let second = Tokens::from(srv.refresh(&first.refresh).await.json::<Value>().await.unwrap());
    // The rotated token comes back: a thief or a replay.
    assert_invalid_token(srv.refresh(&first.refresh).await).await;
    // Everything of that session is dead at once: the new access and refresh tokens.
    assert_invalid_token(srv.get_auth("/me", &second.access).await).await;
    assert_invalid_token(srv.get_auth("/me", &first.access).await).await;
    assert_invalid_token(srv.refresh(&second.refresh).await).await;
    // Another session of the same user is untouched.
    assert_eq!(srv.me_status(&other_device.access).await, StatusCode::OK);
    assert_eq!(srv.refresh(&other_device.refresh).await.status(), StatusCode::OK);
}

#[per_backend]
pub async fn parallel_refresh_issues_exactly_one_pair(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let http = srv.http.clone();
        let url = srv.url("/auth/refresh");
        let body = json!({"refresh_token": t.refresh});
        tasks.spawn(async move {
            let res = http.post(url).json(&body).send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        });
    }
    let mut answers = Vec::new();
    while let Some(a) = tasks.join_next().await {
        answers.push(a.unwrap());
    }
    let statuses: Vec<_> = answers.iter().map(|(s, _)| *s).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert_eq!((ok, unauthorized), (1, 19), "{statuses:?}");
    // The 19 others presented a token already spent: a reuse, which revokes the whole
    // session, the winner's new pair with it (strict mode: no reuse grace).
    let winner = Tokens::from(answers.into_iter().find(|(s, _)| *s == StatusCode::OK).unwrap().1);
    assert_invalid_token(srv.get_auth("/me", &winner.access).await).await;
    assert_invalid_token(srv.refresh(&winner.refresh).await).await;
}

#[per_backend]
pub async fn refresh_token_expires(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.refresh_ttl_secs = 3600).await;
    let t = srv.user("alzy").await;
    srv.clock.advance(3599);
    let res = srv.refresh(&t.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let next = Tokens::from(res.json::<Value>().await.unwrap());
    // The successor has a full lifetime of its own.
    srv.clock.advance(3599);
    let res = srv.refresh(&next.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let last = Tokens::from(res.json::<Value>().await.unwrap());
    srv.clock.advance(3600);
    assert_invalid_token(srv.refresh(&last.refresh).await).await;
}

#[per_backend]
pub async fn refresh_refuses_malformed_and_unknown_tokens(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let mut seen = HashSet::new();
    for bad in [
        "",
        "nope",
        &"A".repeat(43),
        &t.access,
        &format!("{}x", t.refresh),
        &"é".repeat(43),
    ] {
        let res = srv.refresh(bad).await;
        seen.insert(res.status());
        assert_invalid_token(res).await;
    }
    assert_eq!(seen.len(), 1);
    // None of those was a reuse: the real token still works.
    assert_eq!(srv.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[per_backend]
pub async fn refresh_validation_errors(b: Backend) {
    let srv = TestServer::start(b).await;
    for body in [json!({}), json!({"refresh_token": 5}), json!({"token": "x"})] {
        let res = srv.post_json("/auth/refresh", body.clone()).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["detail"][0]["loc"], json!(["body", "refresh_token"]));
    }
}

#[per_backend]
pub async fn access_token_expires_and_refresh_renews_it(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.access_ttl_secs = 2).await;
    let t = srv.user("alzy").await;
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    srv.clock.advance(2);
    assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
    let res = srv.refresh(&t.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["expires_in"], 2);
    assert_eq!(srv.me_status(v["access_token"].as_str().unwrap()).await, StatusCode::OK);
}

#[per_backend]
pub async fn sessions_end_at_their_absolute_lifetime(b: Backend) {
    // 7-day refresh tokens, 30-day sessions (the defaults): refreshing every 6 days
    // keeps a session going only until 30 days after its login.
    let srv = TestServer::start(b).await;
    let mut t = srv.user("alzy").await;
    const DAY: i64 = 86_400;
    for _ in 0..4 {
        srv.clock.advance(6 * DAY);
        let res = srv.refresh(&t.refresh).await;
        assert_eq!(res.status(), StatusCode::OK);
        t = Tokens::from(res.json::<Value>().await.unwrap());
    }
    // Day 24: the session ends on day 30, not a week from now.
    let sessions: Vec<Value> = srv.get_auth("/auth/sessions", &t.access).await.json().await.unwrap();
    let secs = |field: &str| {
        let text = sessions[0][field].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    assert_eq!(secs("expires_at") - secs("created_at"), 30 * DAY);
    srv.clock.advance(6 * DAY);
    assert_invalid_token(srv.refresh(&t.refresh).await).await;
    // A fresh login starts a new 30 days.
    let again = srv.login("alzy", crate::common::PASSWORD).await;
    assert_eq!(srv.refresh(&again.refresh).await.status(), StatusCode::OK);
}

#[per_backend]
pub async fn the_session_lifetime_is_configurable(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.session_max_lifetime_secs = 3600).await;
    let t = srv.user("alzy").await;
    srv.clock.advance(1800);
    let res = srv.refresh(&t.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t = Tokens::from(res.json::<Value>().await.unwrap());
    srv.clock.advance(1800);
    assert_invalid_token(srv.refresh(&t.refresh).await).await;
}

/// 20 parallel refreshes of one token, each answer's status and refresh token.
async fn refresh_in_parallel(srv: &TestServer, token: &str) -> Vec<(StatusCode, Option<String>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let http = srv.http.clone();
        let url = srv.url("/auth/refresh");
        let body = json!({"refresh_token": token});
        tasks.spawn(async move {
            let res = http.post(url).json(&body).send().await.unwrap();
            let status = res.status();
            let v: Value = res.json().await.unwrap();
            (status, v["refresh_token"].as_str().map(str::to_owned))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[per_backend]
pub async fn reuse_grace_gives_parallel_refreshes_one_successor(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.refresh_reuse_grace_secs = 2).await;
    let t = srv.user("alzy").await;
    let answers = refresh_in_parallel(&srv, &t.refresh).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK), "{answers:?}");
    let successors: HashSet<_> = answers.iter().map(|(_, r)| r.clone().unwrap()).collect();
    assert_eq!(successors.len(), 1, "one successor for all: the chain never forks");
    let successor = successors.into_iter().next().unwrap();
    // The session lives, and its chain goes on from that one successor.
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    let res = srv.refresh(&successor).await;
    assert_eq!(res.status(), StatusCode::OK);
    let next = Tokens::from(res.json::<Value>().await.unwrap());
    assert_eq!(srv.me_status(&next.access).await, StatusCode::OK);
}

#[per_backend]
pub async fn reuse_after_the_grace_revokes_the_session(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.refresh_reuse_grace_secs = 2).await;
    let t = srv.user("alzy").await;
    let second = Tokens::from(srv.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    // Inside the grace: the same successor again.
    srv.clock.advance(2);
    let again = Tokens::from(srv.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    assert_eq!(again.refresh, second.refresh);
    // Past it: reuse, and the whole session dies.
    srv.clock.advance(1);
    assert_invalid_token(srv.refresh(&t.refresh).await).await;
    assert_invalid_token(srv.get_auth("/me", &second.access).await).await;
    assert_invalid_token(srv.refresh(&second.refresh).await).await;
}

#[per_backend]
pub async fn reuse_grace_covers_only_the_token_spent_last(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.refresh_reuse_grace_secs = 2).await;
    let t = srv.user("alzy").await;
    let second = Tokens::from(srv.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    let third = Tokens::from(srv.refresh(&second.refresh).await.json::<Value>().await.unwrap());
    // Still inside the grace of the first rotation, but the first token's successor
    // has itself been spent: the first token is an older token, so this is reuse.
    assert_invalid_token(srv.refresh(&t.refresh).await).await;
    assert_invalid_token(srv.get_auth("/me", &third.access).await).await;
    assert_invalid_token(srv.refresh(&third.refresh).await).await;
}

#[per_backend]
pub async fn reuse_grace_never_revives_a_revoked_session(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.refresh_reuse_grace_secs = 2).await;
    let t = srv.user("alzy").await;
    let second = Tokens::from(srv.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    let res = srv.post_auth("/auth/logout", &second.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(srv.refresh(&t.refresh).await).await;
    assert_invalid_token(srv.refresh(&second.refresh).await).await;
}
