//! Abuse limits: per client IP and per username on login, per IP on refresh.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokengate::limits::Rate;
use tokengate_test_macros::per_backend;

use crate::common::{BAD_CREDENTIALS, Backend, PASSWORD, TestServer, jwt_parts};

fn rate(count: u32, window_secs: u64) -> Rate {
    Rate { count, window_secs }
}

/// Log in as if from `ip` (believed only when 127.0.0.1 is a trusted proxy).
async fn login_from(srv: &TestServer, ip: &str, username: &str, password: &str, form: bool) -> Response {
    let req = srv.http.post(srv.url("/auth/login")).header("x-forwarded-for", ip);
    let req = if form {
        req.form(&[("username", username), ("password", password)])
    } else {
        req.json(&json!({"username": username, "password": password}))
    };
    req.send().await.unwrap()
}

async fn assert_limited(res: Response) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = res.json().await.unwrap();
    // The wait is in the words too, not only in the header.
    let unit = if retry == 1 { "second" } else { "seconds" };
    assert_eq!(v["detail"], format!("Too many requests; retry in {retry} {unit}"));
}

fn trusting_loopback(s: &mut tokengate::config::Settings) {
    s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// A server allowing `count` login attempts a minute per budget, believing the
/// `X-Forwarded-For` the tests send (they play many clients from 127.0.0.1).
async fn login_limited_server(b: Backend, count: u32) -> TestServer {
    TestServer::start_with(b, |s| {
        s.limits.login = rate(count, 60);
        trusting_loopback(s);
    })
    .await
}

#[per_backend]
pub async fn login_is_limited_per_ip(b: Backend) {
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    for name in ["a1", "a2", "a3"] {
        let res = login_from(&srv, "203.0.113.7", name, "wrong-password", true).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(login_from(&srv, "203.0.113.7", "alzy", PASSWORD, true).await).await;
    // Another client IP is unaffected.
    assert_eq!(
        login_from(&srv, "203.0.113.8", "alzy", PASSWORD, true).await.status(),
        StatusCode::OK
    );
}

#[per_backend]
pub async fn limited_username_refuses_even_the_right_password_on_every_route(b: Backend) {
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    srv.register("bob").await;
    // Failures from five networks within the window: a distributed attack.
    for (i, ip) in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
    ]
    .iter()
    .enumerate()
    {
        let res = login_from(&srv, ip, "alzy", "wrong-password", i % 2 == 0).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Fresh IPs, the right password, form and JSON, any letter case: still limited.
    assert_limited(login_from(&srv, "198.51.100.6", "alzy", PASSWORD, true).await).await;
    assert_limited(login_from(&srv, "198.51.100.7", "ALZY", PASSWORD, false).await).await;
    // Another username from another IP is unaffected.
    assert_eq!(
        login_from(&srv, "198.51.100.8", "bob", PASSWORD, false).await.status(),
        StatusCode::OK
    );
}

#[per_backend]
pub async fn a_locked_account_is_not_told_apart_through_its_email(b: Backend) {
    // A distributed attack on the username: probing addresses from elsewhere finds no
    // difference between the attacked account's and anyone else's (a 429 there would
    // tell whose address it is).
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    srv.register("bob").await;
    for ip in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
    ] {
        let res = login_from(&srv, ip, "alzy", "wrong-password", false).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(login_from(&srv, "198.51.100.6", "alzy", PASSWORD, false).await).await;
    for (ip, email) in [
        ("198.51.100.7", "alzy@example.com"),
        ("198.51.100.8", "bob@example.com"),
        ("198.51.100.9", "nobody@example.com"),
    ] {
        let res = login_from(&srv, ip, email, "wrong-password", false).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert_eq!(res.text().await.unwrap(), BAD_CREDENTIALS, "{email}");
    }
    // ...and the locked account does not let the right password in through its email.
    let res = login_from(&srv, "198.51.100.10", "alzy@example.com", PASSWORD, false).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_from(&srv, "198.51.100.11", "bob@example.com", PASSWORD, false)
            .await
            .status(),
        StatusCode::OK
    );
}

#[per_backend]
pub async fn one_network_guessing_locks_out_only_that_network(b: Backend) {
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    // One address guesses, far past the budget; three more networks fail once each,
    // so no five networks fail together.
    for _ in 0..6 {
        let res = login_from(&srv, "203.0.113.7", "alzy", "wrong-password", true).await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&res.status()),
            "{}",
            res.status()
        );
    }
    for ip in ["203.0.113.8", "203.0.113.9", "203.0.113.10"] {
        let res = login_from(&srv, ip, "alzy", "wrong-password", true).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // The guessing network waits, even with the right password...
    assert_limited(login_from(&srv, "203.0.113.7", "alzy", PASSWORD, true).await).await;
    // ...every other client, with no device token (a standard OAuth2 client, Swagger's
    // Authorize, a new browser), gets in.
    for form in [true, false] {
        let res = login_from(&srv, "198.51.100.20", "alzy", PASSWORD, form).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[per_backend]
pub async fn only_failed_logins_count(b: Backend) {
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    for _ in 0..8 {
        let res = login_from(&srv, "203.0.113.30", "alzy", PASSWORD, false).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Failures still add up.
    for _ in 0..3 {
        let res = login_from(&srv, "203.0.113.30", "alzy", "wrong-password", false).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(login_from(&srv, "203.0.113.30", "alzy", PASSWORD, false).await).await;
}

#[per_backend]
pub async fn limit_lifts_when_the_window_passes(b: Backend) {
    // The test's clock moves the window: counted in this process (Redis counts on its
    // own clock, tested in scale_out.rs).
    let srv = TestServer::start_with(b, |s| {
        s.limits.login = rate(2, 60);
        s.redis.url = None;
    })
    .await;
    srv.register("alzy").await;
    for _ in 0..2 {
        let res = srv
            .post_json("/auth/login", json!({"username": "alzy", "password": "wrong-password"}))
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let right = json!({"username": "alzy", "password": PASSWORD});
    assert_limited(srv.post_json("/auth/login", right.clone()).await).await;
    // 2 a minute: one attempt is back 30 s later (on the server's clock, no sleeping).
    srv.clock.advance(29);
    assert_limited(srv.post_json("/auth/login", right.clone()).await).await;
    srv.clock.advance(1);
    srv.login("alzy", PASSWORD).await;
}

#[per_backend]
pub async fn refresh_is_limited_per_ip(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.limits.refresh = rate(2, 60)).await;
    let t = srv.user("alzy").await;
    let mut refresh = t.refresh;
    for _ in 0..2 {
        let res = srv.refresh(&refresh).await;
        assert_eq!(res.status(), StatusCode::OK);
        refresh = res.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert_limited(srv.refresh(&refresh).await).await;
}

#[per_backend]
pub async fn forged_forwarded_for_is_ignored_by_default(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.limits.login = rate(3, 60)).await;
    srv.register("alzy").await;
    for (i, ip) in ["10.1.1.1", "10.2.2.2", "10.3.3.3"].iter().enumerate() {
        let res = login_from(&srv, ip, &format!("nobody{i}"), "wrong-password", true).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Every attempt counted against the real peer, whatever the header said.
    assert_limited(login_from(&srv, "10.4.4.4", "alzy", PASSWORD, true).await).await;
}

#[per_backend]
pub async fn session_ip_comes_from_trusted_proxies_only(b: Backend) {
    let plain = TestServer::start(b).await;
    plain.register("alzy").await;
    let res = login_from(&plain, "203.0.113.50", "alzy", PASSWORD, false).await;
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Vec<Value> = plain.get_auth("/auth/sessions", &access).await.json().await.unwrap();
    assert_eq!(sessions[0]["ip"], "127.0.0.1");

    let proxied = TestServer::start_with(b, trusting_loopback).await;
    proxied.register("alzy").await;
    let res = login_from(&proxied, "203.0.113.50", "alzy", PASSWORD, false).await;
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Vec<Value> = proxied.get_auth("/auth/sessions", &access).await.json().await.unwrap();
    assert_eq!(sessions[0]["ip"], "203.0.113.50");
    assert_eq!(sessions[0]["id"], jwt_parts(&access).1["sid"]);
}

#[per_backend]
pub async fn password_change_guesses_spend_the_sessions_own_budget(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.limits.login = rate(3, 60)).await;
    let thief = srv.user("alzy").await;
    let owner = srv.login("alzy", PASSWORD).await;
    let guess = json!({"current_password": "guess-one-two", "new_password": "a-brand-new-pass"});
    for _ in 0..3 {
        let res = srv
            .post_auth("/auth/password", &thief.access, Some(guess.clone()))
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let right = json!({"current_password": PASSWORD, "new_password": "a-brand-new-pass"});
    assert_limited(
        srv.post_auth("/auth/password", &thief.access, Some(right.clone()))
            .await,
    )
    .await;
    // The owner, from their own session, changes the password they think is stolen...
    let res = srv.post_auth("/auth/password", &owner.access, Some(right)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // ...and logins were never blocked by the guesses.
    srv.login("alzy", "a-brand-new-pass").await;
}

/// The right password for `username` with a device token in `X-Device-Token`.
async fn login_with_device(srv: &TestServer, ip: &str, username: &str, password: &str, device: &str) -> Response {
    srv.http
        .post(srv.url("/auth/login"))
        .header("x-forwarded-for", ip)
        .header("x-device-token", device)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[per_backend]
pub async fn oversized_passwords_spend_no_username_budget(b: Backend) {
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    // Refused before any hash, from many addresses: none of it counts against alzy.
    let huge = "x".repeat(2000);
    for i in 0..10 {
        let res = login_from(&srv, &format!("203.0.113.{i}"), "alzy", &huge, i % 2 == 0).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&srv, "198.51.100.200", "alzy", PASSWORD, true)
            .await
            .status(),
        StatusCode::OK
    );
}

#[per_backend]
pub async fn a_known_device_is_not_locked_out_by_strangers(b: Backend) {
    let srv = login_limited_server(b, 3).await;
    srv.register("alzy").await;
    srv.register("bob").await;
    // The real user logged in before, from their laptop: it holds a device token.
    let res = login_from(&srv, "198.51.100.1", "alzy", PASSWORD, false).await;
    assert_eq!(res.status(), StatusCode::OK);
    let device = res.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .expect("a login hands out a device token")
        .to_owned();
    let res = login_from(&srv, "198.51.100.1", "bob", PASSWORD, false).await;
    let bobs_device = res.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A stranger guesses alzy's password from five networks: a distributed attack, so
    // the username's shared budget (3) now applies.
    for i in 0..5 {
        let res = login_from(&srv, &format!("203.0.113.{i}"), "alzy", "wrong-password", true).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(login_from(&srv, "203.0.113.9", "alzy", "wrong-password", true).await).await;
    // Unknown clients wait, even with the right password (the documented trade-off)...
    assert_limited(login_from(&srv, "198.51.100.2", "alzy", PASSWORD, true).await).await;
    // ...and so does a device token issued for someone else, or a forged one.
    assert_limited(login_with_device(&srv, "198.51.100.3", "alzy", PASSWORD, &bobs_device).await).await;
    let forged = format!("{device}x");
    assert_limited(login_with_device(&srv, "198.51.100.3", "alzy", PASSWORD, &forged).await).await;
    // The real user's device has its own budget: they get in.
    let res = login_with_device(&srv, "198.51.100.4", "alzy", PASSWORD, &device).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The same token in the JSON body works too.
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .header("x-forwarded-for", "198.51.100.5")
        .json(&json!({"username": "alzy", "password": PASSWORD, "device_token": device}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A device guessing wrong spends its own budget, not the stranger's.
    let mine = res.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let res = login_with_device(&srv, "198.51.100.6", "alzy", "wrong-password", &mine).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(login_with_device(&srv, "198.51.100.6", "alzy", PASSWORD, &mine).await).await;
}

#[per_backend]
pub async fn register_is_limited_per_ip(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.limits.register = rate(2, 60);
        trusting_loopback(s);
    })
    .await;
    let register = |ip: &'static str, name: &'static str| {
        srv.http
            .post(srv.url("/auth/register"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
            .send()
    };
    assert_eq!(
        register("203.0.113.1", "user1").await.unwrap().status(),
        StatusCode::CREATED
    );
    // A taken name still counts: a flood of 409s is a flood.
    assert_eq!(
        register("203.0.113.1", "user1").await.unwrap().status(),
        StatusCode::CONFLICT
    );
    assert_limited(register("203.0.113.1", "user2").await.unwrap()).await;
    assert_eq!(
        register("203.0.113.2", "user2").await.unwrap().status(),
        StatusCode::CREATED
    );
}

#[per_backend]
pub async fn ipv6_clients_share_a_budget_per_64(b: Backend) {
    let srv = login_limited_server(b, 2).await;
    srv.register("alzy").await;
    // Two addresses of one /64 (one host can have them all): one budget.
    for (ip, name) in [("2001:db8:0:1::1", "n1"), ("2001:db8:0:1:ffff::2", "n2")] {
        assert_eq!(
            login_from(&srv, ip, name, "wrong-password", true).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_limited(login_from(&srv, "2001:db8:0:1:abcd::3", "alzy", PASSWORD, true).await).await;
    // Another /64 is another client.
    assert_eq!(
        login_from(&srv, "2001:db8:0:2::1", "alzy", PASSWORD, true)
            .await
            .status(),
        StatusCode::OK
    );
}
