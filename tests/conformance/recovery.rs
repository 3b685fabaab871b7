//! Mail, verification and recovery (contract v1.2), through a real SMTP server: every
//! link is read from the message a mail client would show, and its token sent back as
//! the `/account` page does.

use std::time::Duration;

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

/// An account an operator created (`tokengate user create`): no mail went to it, so
/// its address's budget is whole.
async fn created(srv: &TestServer, name: &str) {
    use tokengate::domain::{Email, Password, Username};
    srv.auth()
        .create_user(
            Username::parse(name).unwrap(),
            Email::parse(&format!("{name}@example.com")).unwrap(),
            Password::parse(PASSWORD).unwrap(),
            Vec::new(),
        )
        .await
        .unwrap();
}

/// A rate of `count` in 15 minutes (the window of the mail budgets' defaults).
fn per_15_minutes(count: u32) -> tokengate::limits::Rate {
    tokengate::limits::Rate {
        count,
        window_secs: 900,
    }
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
        s.recovery.mail_rate = per_15_minutes(2);
    })
    .await;
    created(&srv, "lena").await;
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
    // The right password earned a fresh link (a user whose first one expired is not
    // locked out); it replaces the welcome mail's.
    let mails = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(sink.count_to("uma@example.com"), 2, "the wrong password earned nothing");
    let (welcome, fresh) = (mails[0].token(), mails[1].token());
    let old = srv.post_json("/auth/email/verify", json!({"token": welcome})).await;
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    let ok = srv.post_json("/auth/email/verify", json!({"token": fresh})).await;
    assert_eq!(ok.status(), StatusCode::OK);
    srv.login("uma", PASSWORD).await;

    // An operator who withdraws the address's verification ends the user's sessions:
    // the refresh token no longer refreshes.
    let t = srv.login("uma", PASSWORD).await;
    srv.register("root").await;
    srv.set_roles("root", &["admin"]).await;
    let root = srv.auth().user_named("root").await.unwrap();
    srv.auth().vouch_for_email(root.id, &Default::default()).await.unwrap();
    let admin = srv.login("root", PASSWORD).await;
    let uma = srv.auth().user_named("uma").await.unwrap();
    let res = srv
        .patch_auth(
            &format!("/admin/users/{}", uma.id),
            &admin.access,
            json!({"email_verified": false}),
        )
        .await;
    let (status, v) = detail(res).await;
    assert_eq!((status, &v["email_verified"]), (StatusCode::OK, &json!(false)));
    assert_eq!(srv.refresh(&t.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
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
        s.recovery.mail_rate = per_15_minutes(2);
    })
    .await;
    created(&srv, "fay").await;
    let t = srv.login("fay", PASSWORD).await;
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

/// An account pre-hijack: someone registers the victim's address first, with a password
/// of their own, and keeps a session. The owner's first sign-in link proves the address:
/// the squatter's session ends and their password stops working.
#[per_backend]
pub async fn a_first_sign_in_link_voids_what_a_squatter_set(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |s| s.recovery.magic_links = true).await;
    let squatter = srv.user("vic").await;
    let res = srv
        .post_json("/auth/magic-link", json!({"email": "vic@example.com"}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = sink.mail_to("vic@example.com", "sign-in link").await.token();
    let res = srv.post_json("/auth/magic-link/login", json!({"token": token})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(srv.me_status(&squatter.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.refresh(&squatter.refresh).await.status(), StatusCode::UNAUTHORIZED);
    let res = srv
        .post_json("/auth/login", json!({"username": "vic", "password": PASSWORD}))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the registrant's password is void"
    );

    // Proven now: the next link signs in and ends nothing.
    let (status, first) = detail(
        srv.post_json("/auth/magic-link", json!({"email": "vic@example.com"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    sink.wait_for(3, Duration::from_secs(5)).await;
    let token = sink.last_to("vic@example.com").await.token();
    let (status, session) = detail(srv.post_json("/auth/magic-link/login", json!({"token": token})).await).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let owner = session["access_token"].as_str().unwrap();
    assert_eq!(srv.me_status(owner).await, StatusCode::OK);
}

/// One client cannot mail a list of addresses: past `TOKENGATE_MAIL_NETWORK_RATE`
/// every address is refused, a new one as well.
#[per_backend]
pub async fn one_client_cannot_mail_a_list_of_addresses(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |s| {
        s.recovery.mail_network_rate = per_15_minutes(3);
    })
    .await;
    for n in 0..3 {
        let res = srv
            .post_json(
                "/auth/password/forgot",
                json!({"email": format!("list{n}@example.com")}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    let res = srv
        .post_json("/auth/password/forgot", json!({"email": "list9@example.com"}))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}

/// An address is one spelling everywhere: an internationalised domain in its DNS form,
/// any case; a domain too long for DNS, or a non-ASCII local part, is a 422, never a 500
/// when the mail is written.
#[per_backend]
pub async fn addresses_have_one_spelling_and_bad_ones_are_refused(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    let register = |name: &str, email: &str| json!({"username": name, "email": email, "password": PASSWORD});
    let (status, body) = detail(
        srv.post_json("/auth/register", register("ida", "Ida@BÜCHER.example"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email"], "Ida@xn--bcher-kva.example");
    let same = srv
        .post_json("/auth/register", register("ida2", "ida@xn--BCHER-kva.example"))
        .await;
    assert_eq!(
        same.status(),
        StatusCode::CONFLICT,
        "the same address in another spelling"
    );
    let welcome = sink.last_to("Ida@xn--bcher-kva.example").await;
    assert!(welcome.subject().contains("Confirm"), "{}", welcome.subject());

    let long_label = format!("a@{}.example", "ü".repeat(60));
    for bad in [long_label.as_str(), "jürgen@example.com"] {
        let (status, body) = detail(srv.post_json("/auth/register", register("idb", bad)).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        let res = srv.post_json("/auth/password/forgot", json!({"email": bad})).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

/// The SMTP server refusing for a while (451) is never the user's problem: registration
/// and a reset request are answered as ever, and the mail goes out after the backoff,
/// once the server takes it again.
#[per_backend]
pub async fn mail_refused_for_a_while_goes_out_later_and_the_user_never_sees_it(b: Backend) {
    use crate::common::smtp::Answer;
    let sink = SmtpSink::start();
    sink.answer(Answer::TryLater);
    let srv = server(b, &sink, |_| {}).await;
    srv.register("sol").await;
    let res = srv
        .post_json("/auth/password/forgot", json!({"email": "sol@example.com"}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // Both tried and refused meanwhile (the outbox keeps the 451); nothing arrived.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let queued = srv.auth().queued_mail(false, 10).await.unwrap();
        let refused = queued
            .iter()
            .filter(|m| m.last_error.as_deref().is_some_and(|e| e.contains("451")))
            .count();
        if refused == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{queued:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sink.received().is_empty());
    sink.answer(Answer::Accept);
    srv.clock.advance(30);
    // The next mail queued wakes the sender, which takes what came due with it.
    srv.register("sol2").await;
    sink.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(
        sink.count_to("sol@example.com"),
        2,
        "the welcome mail and the reset link"
    );
    sink.mail_to("sol@example.com", "Reset your password").await;
}

/// The page a link opens asks whose account it acts on: the answer names the account
/// and the purpose, spends nothing, and refuses what a redemption would refuse.
#[per_backend]
pub async fn a_link_names_its_account_without_being_spent(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    srv.register("nell").await;
    let token = sink.last_to("nell@example.com").await.token();
    for _ in 0..2 {
        let (status, body) = detail(srv.post_json("/auth/link/account", json!({"token": token})).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"username": "nell", "purpose": "verify_email"}));
    }
    let res = srv.post_json("/auth/email/verify", json!({"token": token})).await;
    assert_eq!(res.status(), StatusCode::OK, "asking spent nothing");
    for spent_or_bad in [token.as_str(), "x", &"A".repeat(43)] {
        let (status, body) = detail(
            srv.post_json("/auth/link/account", json!({"token": spent_or_bad}))
                .await,
        )
        .await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::BAD_REQUEST, Some(INVALID)),
            "{spent_or_bad}"
        );
    }
}

/// Verification required after sessions began (an upgrade, a setting turned on): an
/// unverified user's refresh is refused and ends the session, also for the same token
/// presented again within the reuse grace.
#[per_backend]
pub async fn requiring_verification_later_ends_an_unverified_session_at_its_refresh(b: Backend) {
    let sink = SmtpSink::start();
    let before = server(b, &sink, |s| s.tokens.refresh_reuse_grace_secs = 30).await;
    let t = before.user("late").await;
    let mut settings = before.settings.clone();
    settings.recovery.require_verified_email = true;
    let after = TestServer::start_settings(settings, before.clock.clone()).await;
    let (status, body) = detail(after.refresh(&t.refresh).await).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("Email not verified"))
    );
    assert_eq!(after.refresh(&t.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(after.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
}

/// A registration is mail too: past the client network's mail budget the account is
/// created, and no mail goes out.
#[per_backend]
pub async fn registrations_spend_the_mail_budgets(b: Backend) {
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |s| {
        s.recovery.mail_network_rate = per_15_minutes(1);
    })
    .await;
    srv.register("first").await;
    sink.last_to("first@example.com").await;
    srv.register("second").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count_to("second@example.com"), 0);
}

/// Addresses stored before they had one spelling (an internationalised domain as typed)
/// are rewritten: the user is found again by every lookup. One that cannot be written so
/// (a non-ASCII local part) or whose new spelling another account holds is left and
/// reported.
#[per_backend]
pub async fn addresses_stored_in_an_old_spelling_are_rewritten(b: Backend) {
    use tokengate::crypto::passwords::PasswordHashString;
    use tokengate::domain::{Email, UnixTime, UserId, Username};
    use tokengate::server::{OpenMode, open_store};
    use tokengate::store::NewUser;
    let sink = SmtpSink::start();
    let srv = server(b, &sink, |_| {}).await;
    let store = open_store(&srv.settings, OpenMode::MustExist).await.unwrap();
    let legacy = |name: &str, email: &str| NewUser {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        email: Email::from_store(email.to_owned()),
        password_hash: PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        roles: Vec::new(),
        created_at: UnixTime(1_700_000_000),
    };
    // As an earlier release stored them.
    for (name, email) in [
        ("bob", "Bob@Bücher.example"),
        ("jurgen", "jürgen@example.com"),
        ("carl2", "carl@exämple.com"),
    ] {
        store.create_user(legacy(name, email)).await.unwrap();
    }
    // carl2's mailbox in the new spelling is another account's already.
    store
        .create_user(legacy("carl3", "carl@xn--exmple-cua.com"))
        .await
        .unwrap();
    let report = srv.auth().respell_stored_addresses().await.unwrap();
    assert_eq!(report.rewritten, 1, "{report:?}");
    let mut left: Vec<_> = report
        .left
        .iter()
        .map(|(u, why)| (u.as_str().to_owned(), why.clone()))
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "{report:?}");
    assert_eq!(left[0].0, "carl2");
    assert!(left[0].1.contains("another account"), "{report:?}");
    assert_eq!(left[1].0, "jurgen");
    assert!(left[1].1.contains("ASCII"), "{report:?}");

    let bob = srv.auth().user_named("bob").await.unwrap();
    assert_eq!(bob.email.as_str(), "Bob@xn--bcher-kva.example");
    // Found by the spelling every lookup now uses: the reset link goes out.
    let res = srv
        .post_json("/auth/password/forgot", json!({"email": "bob@BÜCHER.example"}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    sink.mail_to("Bob@xn--bcher-kva.example", "Reset your password").await;
    // Nothing left to do the second time.
    let again = srv.auth().respell_stored_addresses().await.unwrap();
    assert_eq!(again.rewritten, 0);
}
