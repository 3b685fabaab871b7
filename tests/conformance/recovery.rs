//! Mail, verification and recovery (contract v1.2), through a real SMTP server: every
//! link is read from the message a mail client would show, and its token sent back as
//! the `/account` page does.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::mail::{MailTransportSettings, SmtpUrl};
use tokengate_test_macros::per_backend;

use crate::common::smtp::SmtpSink;
use crate::common::{Backend, PASSWORD, TestServer};

const INVALID: &str = "Invalid or expired token";

/// A server whose mail goes to `sink`, with `tweak` applied after.
async fn server(b: Backend, sink: &SmtpSink, tweak: impl FnOnce(&mut tokengate::config::Settings)) -> TestServer {
    let url = SmtpUrl::parse(&sink.url()).unwrap();
    TestServer::start_with(b, |s| {
        s.mail.transport = MailTransportSettings::Smtp(url);
        tweak(s);
    })
    .await
}

async fn detail(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[per_backend]
pub async fn registration_mails_a_verification_link_that_works_once(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    let user = srv.register("vera").await;
    assert_eq!(user["email_verified"], false);
    let mail = sink.last_to("vera@example.com").await;
    assert!(
        mail.subject().contains("Confirm your email address"),
        "{}",
        mail.subject()
    );
    let text = mail.parsed().body_text(0).unwrap().into_owned();
    assert!(
        text.contains("/account/verify#token="),
        "the link opens the account page: {text}"
    );
    let token = mail.token();
    let (status, body) = detail(srv.post_json("/auth/email/verify", json!({"token": token})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email_verified"], true);
    assert_eq!(body["username"], "vera");
    // Spent.
    let (status, body) = detail(srv.post_json("/auth/email/verify", json!({"token": token})).await).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some(INVALID))
    );
    let me = srv.login("vera", PASSWORD).await;
    let res = srv.get_auth("/me", &me.access).await;
    assert_eq!(res.json::<Value>().await.unwrap()["email_verified"], true);
}

#[per_backend]
pub async fn every_bad_token_gets_the_same_400(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    srv.register("tess").await;
    let verify = sink.last_to("tess@example.com").await.token();
    srv.post_json("/auth/password/forgot", json!({"email": "tess@example.com"}))
        .await;
    let reset = sink.mail_to("tess@example.com", "Reset").await.token();
    let cases = [
        ("/auth/email/verify", json!({"token": "x".repeat(43)})),
        ("/auth/email/verify", json!({"token": "short"})),
        // A token of another flow.
        ("/auth/email/verify", json!({"token": reset})),
        (
            "/auth/password/reset",
            json!({"token": verify, "new_password": "brand-new-pass-1"}),
        ),
    ];
    for (path, body) in cases {
        let (status, v) = detail(srv.post_json(path, body.clone()).await).await;
        assert_eq!(
            (status, v["detail"].as_str()),
            (StatusCode::BAD_REQUEST, Some(INVALID)),
            "{path} {body}"
        );
    }
    // Expired: half an hour by default.
    srv.clock.advance(30 * 60);
    let (status, v) = detail(
        srv.post_json(
            "/auth/password/reset",
            json!({"token": reset, "new_password": "brand-new-pass-1"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, v["detail"].as_str()), (StatusCode::BAD_REQUEST, Some(INVALID)));
    // The verification (a day) still works: the refusals spent nothing.
    let (status, _) = detail(srv.post_json("/auth/email/verify", json!({"token": verify})).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[per_backend]
pub async fn a_reset_ends_every_session_and_tells_the_user(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    let before = srv.user("rita").await;
    let other = srv.login("rita", PASSWORD).await;
    let (status, body) = detail(
        srv.post_json("/auth/password/forgot", json!({"email": "RITA@example.com"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let unknown = detail(
        srv.post_json("/auth/password/forgot", json!({"email": "nobody@example.com"}))
            .await,
    )
    .await;
    assert_eq!(
        unknown,
        (status, body.clone()),
        "an unknown address gets the same answer"
    );
    let reset = sink.mail_to("rita@example.com", "Reset your password").await.token();
    let weak = srv
        .post_json("/auth/password/reset", json!({"token": reset, "new_password": "short"}))
        .await;
    assert_eq!(
        weak.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a weak password spends nothing"
    );
    let res = srv
        .post_json(
            "/auth/password/reset",
            json!({"token": reset, "new_password": "rita-new-password-9"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for t in [&before, &other] {
        assert_eq!(srv.get_auth("/me", &t.access).await.status(), StatusCode::UNAUTHORIZED);
        let refreshed = srv
            .post_json("/auth/refresh", json!({"refresh_token": t.refresh}))
            .await;
        assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    }
    let old = srv
        .post_json("/auth/login", json!({"username": "rita", "password": PASSWORD}))
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = srv.login("rita", "rita-new-password-9").await;
    let me: Value = srv.get_auth("/me", &new.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true, "the reset proved the address");
    let notice = sink.mail_to("rita@example.com", "Your password was reset").await;
    assert!(notice.parsed().body_text(0).unwrap().contains("If this was not you"));
    let again = srv
        .post_json(
            "/auth/password/reset",
            json!({"token": reset, "new_password": "rita-other-password-9"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sink.count_to("nobody@example.com"), 0);
}

#[per_backend]
pub async fn mail_to_one_address_is_limited_known_or_not(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |s| {
        s.recovery.mail_rate = tokengate::limits::Rate {
            count: 2,
            window_secs: 900,
        };
    })
    .await;
    srv.register("lena").await;
    for email in ["lena@example.com", "ghost@example.com"] {
        for _ in 0..2 {
            let res = srv.post_json("/auth/password/forgot", json!({"email": email})).await;
            assert_eq!(res.status(), StatusCode::ACCEPTED, "{email}");
        }
        let res = srv
            .post_json("/auth/password/forgot", json!({"email": email.to_uppercase()}))
            .await;
        assert_eq!(
            res.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{email}: the third in the window"
        );
        assert!(res.headers().contains_key("retry-after"));
    }
}

#[per_backend]
pub async fn an_unverified_address_keeps_its_user_out_where_required(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |s| s.recovery.require_verified_email = true).await;
    srv.register("uma").await;
    let res = srv
        .post_json("/auth/login", json!({"username": "uma", "password": PASSWORD}))
        .await;
    let (status, v) = detail(res).await;
    assert_eq!(
        (status, v["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("Email not verified"))
    );
    // A wrong password is told as ever: nothing about the address.
    let res = srv
        .post_json(
            "/auth/login",
            json!({"username": "uma", "password": "wrong-password-1"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let token = sink.last_to("uma@example.com").await.token();
    srv.post_json("/auth/email/verify", json!({"token": token})).await;
    srv.login("uma", PASSWORD).await;
}

#[per_backend]
pub async fn an_email_change_takes_effect_at_the_new_address_and_tells_the_old(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    let t = srv.user("cleo").await;
    srv.register("taken").await;
    let change = |new: &str, password: &str| json!({"new_email": new, "password": password});
    let wrong = srv
        .post_auth(
            "/auth/email/change",
            &t.access,
            Some(change("cleo2@example.com", "wrong-password-1")),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let taken = srv
        .post_auth(
            "/auth/email/change",
            &t.access,
            Some(change("taken@example.com", PASSWORD)),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let ok = srv
        .post_auth(
            "/auth/email/change",
            &t.access,
            Some(change("cleo2@example.com", PASSWORD)),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let confirm = sink.last_to("cleo2@example.com").await;
    assert!(confirm.subject().contains("Confirm your new email address"));
    let warned = sink.mail_to("cleo@example.com", "about to change").await;
    assert!(warned.parsed().body_text(0).unwrap().contains("cleo2@example.com"));
    // Nothing changed yet.
    let me: Value = srv.get_auth("/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email"], "cleo@example.com");
    let (status, body) = detail(
        srv.post_json("/auth/email/verify", json!({"token": confirm.token()}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["email"].as_str(), body["email_verified"].as_bool()),
        (Some("cleo2@example.com"), Some(true))
    );
    let me: Value = srv.get_auth("/me", &t.access).await.json().await.unwrap();
    assert_eq!(
        me["email"], "cleo2@example.com",
        "the session stays, and sees the change"
    );
    let told = sink.mail_to("cleo@example.com", "was changed").await;
    assert!(told.parsed().body_text(0).unwrap().contains("cleo2@example.com"));
}

#[per_backend]
pub async fn sign_in_links_work_once_and_only_when_on(b: Backend) {
    let sink = SmtpSink::start();
    let off = server(b, &sink, |_| {}).await;
    let res = off
        .post_json("/auth/magic-link", json!({"email": "mia@example.com"}))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = off
        .post_json("/auth/magic-link/login", json!({"token": "x".repeat(43)}))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let srv = server(b, &sink, |s| s.recovery.magic_links = true).await;
    srv.register("mia").await;
    let res = srv
        .post_json("/auth/magic-link", json!({"email": "mia@example.com"}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let link = sink.mail_to("mia@example.com", "sign-in link").await;
    assert!(link.parsed().body_text(0).unwrap().contains("/account/magic#token="));
    let token = link.token();
    let (status, body) = detail(
        srv.post_json(
            "/auth/magic-link/login",
            json!({"token": token, "device_name": "Mia's phone"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let me: Value = srv.get_auth("/me", access).await.json().await.unwrap();
    assert_eq!(
        (me["username"].as_str(), me["email_verified"].as_bool()),
        (Some("mia"), Some(true))
    );
    let again = srv.post_json("/auth/magic-link/login", json!({"token": token})).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
}

#[per_backend]
pub async fn an_email_change_cannot_flood_either_address(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |s| {
        s.recovery.mail_rate = tokengate::limits::Rate {
            count: 2,
            window_secs: 900,
        };
    })
    .await;
    let t = srv.user("fay").await;
    let change = |n: usize| json!({"new_email": format!("fay{n}@example.com"), "password": PASSWORD});
    for n in 0..2 {
        let res = srv.post_auth("/auth/email/change", &t.access, Some(change(n))).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    // A new address each time: the current address's budget still runs out.
    let res = srv.post_auth("/auth/email/change", &t.access, Some(change(9))).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // And so does testing which addresses are taken.
    let taken = srv
        .post_auth(
            "/auth/email/change",
            &t.access,
            Some(json!({"new_email": "x@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sink.count_to("fay9@example.com"), 0);
}
