//! Multi-factor sign-in (contract v1.2): TOTP enrolment and confirmation, the two-step
//! login on every surface, replay and the ±1 step window on the injected clock,
//! recovery codes, MFA tokens (expiry, attempts, single use, network), step-up, roles
//! that require MFA, the operator's reset, and the sessions each change ends.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokengate::crypto::totp::{TotpSecret, step_at};
use tokengate::domain::UnixTime;
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens, jwt_parts};

const INVALID_CODE: &str = "Invalid MFA code";
const INVALID_TOKEN: &str = "Invalid or expired MFA token";

async fn body(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The code `secret` shows `steps` steps from the server's now.
pub(crate) fn code(srv: &TestServer, secret: &TotpSecret, steps: i64) -> String {
    let now = step_at(UnixTime(srv.clock.now_secs()));
    secret.code_at(now.checked_add_signed(steps).unwrap())
}

/// Move the server's clock to the start of the next step (a code of the step just
/// spent is a replay).
fn next_step(srv: &TestServer) {
    let now = srv.clock.now_secs();
    srv.clock.advance(30 - now.rem_euclid(30));
}

/// The TOTP secret of an enrolment's answer, as an app reads its `secret`.
fn secret_of(enrolment: &Value) -> TotpSecret {
    let key = enrolment["secret"].as_str().expect("secret");
    TotpSecret::from_bytes(data_encoding::BASE32_NOPAD.decode(key.as_bytes()).expect("base32"))
}

/// A JSON POST from client address `ip` (the server trusts loopback's X-Forwarded-For).
async fn post_from(srv: &TestServer, ip: &str, path: &str, v: Value) -> (StatusCode, Value) {
    let res = srv
        .http
        .post(srv.url(path))
        .header("x-forwarded-for", ip)
        .json(&v)
        .send()
        .await
        .unwrap();
    body(res).await
}

/// An account with TOTP on: its secret, its recovery codes, and the session that
/// enrolled.
pub(crate) struct Enrolled {
    pub(crate) secret: TotpSecret,
    codes: Vec<String>,
    session: Tokens,
}

async fn begin(srv: &TestServer, access: &str, body_: Value) -> (StatusCode, Value) {
    body(srv.post_auth("/auth/mfa/totp", access, Some(body_)).await).await
}

pub(crate) async fn enrol(srv: &TestServer, name: &str) -> Enrolled {
    enrol_in(srv, srv.user(name).await).await
}

/// An operator vouches for the address of the user `session` belongs to (MFA needs a
/// proven address).
async fn vouch(srv: &TestServer, session: &Tokens) {
    let (_, claims) = jwt_parts(&session.access);
    let id = claims["sub"].as_str().unwrap().parse().unwrap();
    srv.auth().vouch_for_email(id, &Default::default()).await.unwrap();
}

/// TOTP turned on from `session`.
async fn enrol_in(srv: &TestServer, session: Tokens) -> Enrolled {
    vouch(srv, &session).await;
    let (status, v) = begin(srv, &session.access, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let secret = secret_of(&v);
    let confirm = json!({"code": code(srv, &secret, 0)});
    let (status, v) = body(
        srv.post_auth("/auth/mfa/totp/confirm", &session.access, Some(confirm))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let codes = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    // The step the confirmation spent is behind us.
    next_step(srv);
    Enrolled { secret, codes, session }
}

/// `GET /auth/mfa` of the caller.
async fn mfa_of(srv: &TestServer, access: &str) -> Value {
    let (status, v) = body(srv.get_auth("/auth/mfa", access).await).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// `DELETE /auth/mfa/totp` with a step-up body.
async fn remove(srv: &TestServer, access: &str, step_up: Value) -> (StatusCode, Value) {
    let res = srv
        .http
        .delete(srv.url("/auth/mfa/totp"))
        .bearer_auth(access)
        .json(&step_up)
        .send()
        .await
        .unwrap();
    body(res).await
}

/// The first step of a JSON login: 403 `mfa_required`, nothing issued; its token.
async fn password_step(srv: &TestServer, name: &str) -> String {
    let (status, v) = body(
        srv.post_json("/auth/login", json!({"username": name, "password": PASSWORD}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    mfa_required(&v)
}

/// The `mfa_token` of a 403 `mfa_required` body, after checking its shape.
pub(crate) fn mfa_required(v: &Value) -> String {
    assert_eq!(v["detail"], "MFA required", "{v}");
    assert_eq!(v["error"], "mfa_required", "{v}");
    assert_eq!(v["methods"], json!(["totp", "recovery_code"]), "{v}");
    assert!(
        v.get("access_token").is_none() && v.get("refresh_token").is_none(),
        "{v}"
    );
    let token = v["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    token
}

async fn second_step(srv: &TestServer, mfa_token: &str, code: &str) -> (StatusCode, Value) {
    body(
        srv.post_json("/auth/login/mfa", json!({"mfa_token": mfa_token, "code": code}))
            .await,
    )
    .await
}

fn refused(got: (StatusCode, Value), detail: &str) {
    assert_eq!(
        (got.0, got.1["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some(detail)),
        "{}",
        got.1
    );
}

#[per_backend]
pub async fn enrolment_then_a_sign_in_needs_the_code_and_says_so_in_the_token(b: Backend) {
    let srv = TestServer::start(b).await;
    let other = {
        srv.register("tina").await;
        srv.login("tina", PASSWORD).await
    };
    let session = srv.login("tina", PASSWORD).await;
    // An address nobody proved takes no second factor.
    let (status, v) = begin(&srv, &session.access, json!({"password": PASSWORD})).await;
    assert_eq!(
        (status, v["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("Email not verified"))
    );
    vouch(&srv, &session).await;
    let (status, v) = begin(&srv, &session.access, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={}", v["secret"].as_str().unwrap())));
    assert!(v["qr_svg"].as_str().unwrap().contains("<svg"), "{v}");
    let secret = secret_of(&v);
    // Pending: no factor yet, a login needs none.
    let status_now = mfa_of(&srv, &session.access).await;
    assert_eq!(
        status_now,
        json!({"totp": false, "totp_pending": true, "passkeys": 0, "recovery_codes_left": 0, "required": false})
    );
    srv.login("tina", PASSWORD).await;
    // A wrong code confirms nothing.
    let wrong = json!({"code": if code(&srv, &secret, 0) == "000000" { "111111" } else { "000000" }});
    refused(
        body(
            srv.post_auth("/auth/mfa/totp/confirm", &session.access, Some(wrong))
                .await,
        )
        .await,
        INVALID_CODE,
    );
    let confirm = json!({"code": code(&srv, &secret, 0)});
    let (status, v) = body(
        srv.post_auth("/auth/mfa/totp/confirm", &session.access, Some(confirm.clone()))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let codes = v["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.as_str().unwrap().len() == 19));
    // Every other session ended; the one that enrolled goes on.
    assert_eq!(srv.me_status(&other.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.refresh(&other.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.me_status(&session.access).await, StatusCode::OK);
    let status_now = mfa_of(&srv, &session.access).await;
    assert_eq!(
        status_now,
        json!({"totp": true, "totp_pending": false, "passkeys": 0, "recovery_codes_left": 10, "required": false})
    );
    // Confirmed once: a second confirmation finds nothing pending.
    let (status, _) = body(
        srv.post_auth("/auth/mfa/totp/confirm", &session.access, Some(confirm))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The password alone issues nothing now.
    let token = password_step(&srv, "tina").await;
    // The confirming code is spent: the setup code is not the next login's factor.
    refused(second_step(&srv, &token, &code(&srv, &secret, 0)).await, INVALID_CODE);
    next_step(&srv);
    let (status, v) = second_step(&srv, &token, &code(&srv, &secret, 0)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let tokens = Tokens::from(v.clone());
    assert!(v["device_token"].is_string());
    let (_, claims) = jwt_parts(&tokens.access);
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    // auth_time is the password step's (the code came within its five minutes).
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    // A refresh keeps them.
    let refreshed = srv.refresh(&tokens.refresh).await.json::<Value>().await.unwrap();
    let (_, again) = jwt_parts(refreshed["access_token"].as_str().unwrap());
    assert_eq!(again["amr"], claims["amr"]);
    assert_eq!(again["auth_time"], claims["auth_time"]);
    // The session list shows how each session signed in.
    let list = srv
        .get_auth("/auth/sessions", &session.access)
        .await
        .json::<Value>()
        .await
        .unwrap();
    // Both say two factors: the sign-in that used the code, and the session that
    // enrolled (it proved the authenticator with the confirming code).
    let amrs: Vec<Value> = list.as_array().unwrap().iter().map(|s| s["amr"].clone()).collect();
    assert_eq!(
        amrs,
        [json!(["pwd", "otp", "mfa"]), json!(["pwd", "otp", "mfa"])],
        "{list}"
    );
    assert!(list[0]["auth_time"].as_str().unwrap().ends_with('Z'));
}

#[per_backend]
pub async fn a_code_is_accepted_once_and_never_after_a_newer_one(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "rita").await;
    let now_code = code(&srv, &e.secret, 0);
    let (status, _) = second_step(&srv, &password_step(&srv, "rita").await, &now_code).await;
    assert_eq!(status, StatusCode::OK);
    // The same code again, on a fresh sign-in: refused (RFC 6238 §5.2).
    refused(
        second_step(&srv, &password_step(&srv, "rita").await, &now_code).await,
        INVALID_CODE,
    );
    // The next step's code (a fast clock), then the previous step's: older than the
    // last accepted, refused though within the window.
    let (status, _) = second_step(&srv, &password_step(&srv, "rita").await, &code(&srv, &e.secret, 1)).await;
    assert_eq!(status, StatusCode::OK);
    next_step(&srv);
    refused(
        second_step(&srv, &password_step(&srv, "rita").await, &code(&srv, &e.secret, -1)).await,
        INVALID_CODE,
    );
    // Step-up spends codes too: a code used there cannot sign in.
    next_step(&srv);
    let fresh = code(&srv, &e.secret, 0);
    let res = srv
        .post_auth(
            "/auth/mfa/recovery-codes",
            &e.session.access,
            Some(json!({"password": PASSWORD, "code": fresh})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    refused(
        second_step(&srv, &password_step(&srv, "rita").await, &fresh).await,
        INVALID_CODE,
    );
}

#[per_backend]
pub async fn the_window_is_one_step_either_side(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "wendy").await;
    // One step past the step the confirmation spent: "one step late" is unspent.
    next_step(&srv);
    // Two steps late or early: refused, and nothing is spent by it.
    for steps in [-2, 2] {
        refused(
            second_step(&srv, &password_step(&srv, "wendy").await, &code(&srv, &e.secret, steps)).await,
            INVALID_CODE,
        );
    }
    // One step late: accepted (typed just as it turned).
    let (status, _) = second_step(&srv, &password_step(&srv, "wendy").await, &code(&srv, &e.secret, -1)).await;
    assert_eq!(status, StatusCode::OK);
    // The last second of a step and the first of the next, on the server's clock.
    next_step(&srv);
    srv.clock.advance(29);
    let (status, _) = second_step(&srv, &password_step(&srv, "wendy").await, &code(&srv, &e.secret, 0)).await;
    assert_eq!(status, StatusCode::OK);
    srv.clock.advance(1);
    let (status, _) = second_step(&srv, &password_step(&srv, "wendy").await, &code(&srv, &e.secret, 1)).await;
    assert_eq!(status, StatusCode::OK, "one step early");
}

#[per_backend]
pub async fn a_recovery_code_works_once_and_regeneration_kills_the_old_list(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "rowan").await;
    let first = &e.codes[0];
    // As typed from paper: upper case, no dashes.
    let typed = first.replace('-', "").to_uppercase();
    let (status, v) = second_step(&srv, &password_step(&srv, "rowan").await, &typed).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, claims) = jwt_parts(v["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    refused(
        second_step(&srv, &password_step(&srv, "rowan").await, first).await,
        INVALID_CODE,
    );
    let left = mfa_of(&srv, &e.session.access).await;
    assert_eq!(left["recovery_codes_left"], 9);
    // Regeneration (step-up with another recovery code): ten new, the old ones dead.
    let res = srv
        .post_auth(
            "/auth/mfa/recovery-codes",
            &e.session.access,
            Some(json!({"password": PASSWORD, "code": e.codes[1]})),
        )
        .await;
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let fresh: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !e.codes.contains(c)));
    for old in &e.codes[2..4] {
        refused(
            second_step(&srv, &password_step(&srv, "rowan").await, old).await,
            INVALID_CODE,
        );
    }
    let (status, _) = second_step(&srv, &password_step(&srv, "rowan").await, &fresh[0]).await;
    assert_eq!(status, StatusCode::OK);
    let left = mfa_of(&srv, &e.session.access).await;
    assert_eq!(left["recovery_codes_left"], 9);
}

#[per_backend]
pub async fn an_mfa_token_expires_allows_five_tries_and_works_once(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "mona").await;
    // Five minutes.
    let token = password_step(&srv, "mona").await;
    srv.clock.advance(5 * 60);
    refused(
        second_step(&srv, &token, &code(&srv, &e.secret, 0)).await,
        INVALID_TOKEN,
    );
    // Five tries: the sixth is refused even with the right code.
    next_step(&srv);
    let token = password_step(&srv, "mona").await;
    let right = code(&srv, &e.secret, 0);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        refused(second_step(&srv, &token, wrong).await, INVALID_CODE);
    }
    refused(second_step(&srv, &token, &right).await, INVALID_TOKEN);
    // Once: a completed token is spent, whatever code comes with it.
    let token = password_step(&srv, "mona").await;
    let (status, _) = second_step(&srv, &token, &right).await;
    assert_eq!(status, StatusCode::OK);
    refused(second_step(&srv, &token, &e.codes[0]).await, INVALID_TOKEN);
    // Malformed and unknown tokens, the same answer.
    for bad in ["", "short", &"x".repeat(43)] {
        refused(second_step(&srv, bad, &e.codes[0]).await, INVALID_TOKEN);
    }
    // A missing field is a 422, as everywhere.
    let res = srv.post_json("/auth/login/mfa", json!({"mfa_token": token})).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[per_backend]
pub async fn a_password_change_voids_an_mfa_token_in_flight(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "paul").await;
    let token = password_step(&srv, "paul").await;
    let res = srv
        .post_auth(
            "/auth/password",
            &e.session.access,
            Some(json!({"current_password": PASSWORD, "new_password": "another-pass-99", "code": e.codes[0]})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    refused(
        second_step(&srv, &token, &code(&srv, &e.secret, 0)).await,
        INVALID_TOKEN,
    );
}

#[per_backend]
pub async fn every_login_surface_answers_mfa_required(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "sam").await;
    let form = |path: &'static str, user: &'static str| {
        srv.http
            .post(srv.url(path))
            .form(&[("username", user), ("password", PASSWORD)])
            .send()
    };
    let answers = [
        form("/auth/login", "sam").await.unwrap(),
        form("/token", "sam").await.unwrap(),
        form("/auth/login", "sam@example.com").await.unwrap(),
        srv.post_json("/auth/login", json!({"username": "sam", "password": PASSWORD}))
            .await,
        srv.post_json("/auth/cookie/login", json!({"username": "sam", "password": PASSWORD}))
            .await,
    ];
    for res in answers {
        assert!(res.headers().get("set-cookie").is_none(), "no cookie is set");
        let (status, v) = body(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        mfa_required(&v);
    }
    // A wrong password still looks as it always did.
    let (status, v) = body(
        srv.post_json("/auth/login", json!({"username": "sam", "password": "wrong-password"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["detail"], "Incorrect username or password");
    // The browser's second step sets the cookies.
    let (status, v) = body(
        srv.post_json("/auth/cookie/login", json!({"username": "sam", "password": PASSWORD}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = srv
        .post_json(
            "/auth/cookie/login/mfa",
            json!({"mfa_token": mfa_required(&v), "code": code(&srv, &e.secret, 0)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("__Host-tokengate_access=")),
        "{cookies:?}"
    );
    let v: Value = res.json().await.unwrap();
    assert!(v["csrf_token"].is_string() && v.get("access_token").is_none());
}

#[per_backend]
pub async fn concurrent_second_steps_with_one_code_let_exactly_one_in(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "cora").await;
    // Eight requests race with one sign-in's token and one code, as eight instances
    // behind a balancer would.
    let token = password_step(&srv, "cora").await;
    let right = code(&srv, &e.secret, 0);
    let attempts = (0..8).map(|_| second_step(&srv, &token, &right));
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != StatusCode::OK)
            .all(|(s, _)| *s == StatusCode::UNAUTHORIZED)
    );
    // Four different recovery codes at once on one token: one sign-in, and only its
    // code is used (the token is claimed before a code is spent).
    let token = password_step(&srv, "cora").await;
    let attempts = e.codes[..4].iter().map(|c| second_step(&srv, &token, c));
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == StatusCode::OK).count(),
        1,
        "{results:?}"
    );
    assert_eq!(mfa_of(&srv, &e.session.access).await["recovery_codes_left"], 9);
}

#[per_backend]
pub async fn step_up_refusals(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("stu").await;
    vouch(&srv, &t).await;
    // A password is required, and must be right.
    let (status, _) = begin(&srv, &t.access, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, v) = begin(&srv, &t.access, json!({"password": "not-the-password"})).await;
    assert_eq!(
        (status, v["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Incorrect password"))
    );
    // Without MFA there are no codes to regenerate and nothing to remove.
    let res = srv
        .post_auth(
            "/auth/mfa/recovery-codes",
            &t.access,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let (status, _) = remove(&srv, &t.access, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Unauthenticated: 401.
    let res = srv.post_json("/auth/mfa/totp", json!({"password": PASSWORD})).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // With MFA on: a code is required too, and must be right; enrolling again is a 409.
    let e = enrol(&srv, "stella").await;
    let access = &e.session.access;
    let cases = [
        (
            json!({"password": PASSWORD}),
            "MFA code required: this account has two-step sign-in",
        ),
        (
            json!({"password": PASSWORD, "code": ""}),
            "MFA code required: this account has two-step sign-in",
        ),
        (json!({"password": PASSWORD, "code": "12345"}), INVALID_CODE),
        (
            json!({"password": PASSWORD, "code": "abcd-efgh-ijkl-mnop"}),
            INVALID_CODE,
        ),
        (
            json!({"password": "wrong-password", "code": e.codes[0]}),
            "Incorrect password",
        ),
    ];
    for (b_, detail) in cases {
        refused(
            body(
                srv.post_auth("/auth/mfa/recovery-codes", access, Some(b_.clone()))
                    .await,
            )
            .await,
            detail,
        );
        refused(remove(&srv, access, b_.clone()).await, detail);
        refused(
            body(
                srv.post_auth(
                    "/auth/password",
                    access,
                    Some(json!({"current_password": b_["password"], "new_password": "whatever-new-1", "code": b_["code"]})),
                )
                .await,
            )
            .await,
            detail,
        );
    }
    // The recovery code given with a wrong password was not spent.
    let now = mfa_of(&srv, access).await;
    assert_eq!(now["recovery_codes_left"], 10);
    let (status, v) = begin(&srv, access, json!({"password": PASSWORD, "code": e.codes[0]})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["detail"], "TOTP is already enabled; remove it first");
    let now = mfa_of(&srv, access).await;
    assert_eq!(now["recovery_codes_left"], 10, "a refused enrolment spends no code");
}

#[per_backend]
pub async fn removing_totp_ends_other_sessions_and_the_password_suffices_again(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "remy").await;
    let (status, v) = second_step(&srv, &password_step(&srv, "remy").await, &e.codes[0]).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let other = Tokens::from(v);
    let removal = json!({"password": PASSWORD, "code": code(&srv, &e.secret, 0)});
    assert_eq!(remove(&srv, &e.session.access, removal).await.0, StatusCode::NO_CONTENT);
    assert_eq!(srv.me_status(&other.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.me_status(&e.session.access).await, StatusCode::OK);
    let now = mfa_of(&srv, &e.session.access).await;
    assert_eq!(
        now,
        json!({"totp": false, "totp_pending": false, "passkeys": 0, "recovery_codes_left": 0, "required": false})
    );
    let t = srv.login("remy", PASSWORD).await;
    let (_, claims) = jwt_parts(&t.access);
    assert_eq!(claims["amr"], json!(["pwd"]));
}

#[per_backend]
pub async fn a_role_that_requires_mfa_is_refused_until_enrolled(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.mfa.required_roles = vec![tokengate::domain::Role::parse("admin").unwrap()];
    })
    .await;
    let admin = srv.admin("ada").await;
    let res = srv.get_auth("/admin/users", &admin.access).await;
    let (status, v) = body(res).await;
    assert_eq!(
        (status, v),
        (StatusCode::FORBIDDEN, json!({"detail": "MFA required for this role"}))
    );
    let res = srv.get_auth("/auth/verify?role=admin", &admin.access).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The account page learns why, to lead them to enrol.
    let now = mfa_of(&srv, &admin.access).await;
    assert_eq!(now["required"], true);
    // Routes that need no role still work, and a role that needs no MFA is unaffected.
    assert_eq!(srv.me_status(&admin.access).await, StatusCode::OK);
    // Enrolled (in this very session): allowed.
    enrol_in(&srv, admin.clone()).await;
    assert_eq!(
        srv.get_auth("/admin/users", &admin.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        srv.get_auth("/auth/verify?role=admin", &admin.access).await.status(),
        StatusCode::OK
    );
    let now = mfa_of(&srv, &admin.access).await;
    assert_eq!(now["required"], false);
}

#[per_backend]
pub async fn an_operator_resets_mfa_and_every_session_ends(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("olga").await;
    let e = enrol(&srv, "lost").await;
    let id = srv.auth().user_named("lost").await.unwrap().id;
    // Only an admin may.
    let res = srv
        .delete_auth(&format!("/admin/users/{id}/mfa"), &e.session.access)
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = srv.delete_auth(&format!("/admin/users/{id}/mfa"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.me_status(&e.session.access).await, StatusCode::UNAUTHORIZED);
    // The password alone signs in again; the old codes are gone.
    let t = srv.login("lost", PASSWORD).await;
    let now = mfa_of(&srv, &t.access).await;
    assert_eq!(now["totp"], false);
    assert_eq!(now["recovery_codes_left"], 0);
    // Nothing left to reset; an unknown user is not found.
    let res = srv.delete_auth(&format!("/admin/users/{id}/mfa"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = srv
        .delete_auth(&format!("/admin/users/{}/mfa", uuid::Uuid::new_v4()), &admin.access)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[per_backend]
pub async fn the_mfa_budget_is_per_account_and_counts_failures(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.mfa.rate = tokengate::limits::Rate {
            count: 3,
            window_secs: 300,
        }
    })
    .await;
    let e = enrol(&srv, "bea").await;
    let right = code(&srv, &e.secret, 0);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    // Successes give their attempt back.
    for recovery in &e.codes[6..] {
        let (status, _) = second_step(&srv, &password_step(&srv, "bea").await, recovery).await;
        assert_eq!(status, StatusCode::OK);
    }
    for _ in 0..3 {
        refused(
            second_step(&srv, &password_step(&srv, "bea").await, wrong).await,
            INVALID_CODE,
        );
    }
    // Over the budget: even the right code waits, on every token.
    let (status, v) = second_step(&srv, &password_step(&srv, "bea").await, &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // Another account is not affected.
    let other = enrol(&srv, "bob").await;
    let (status, _) = second_step(&srv, &password_step(&srv, "bob").await, &code(&srv, &other.secret, 0)).await;
    assert_eq!(status, StatusCode::OK);
    // (The window's end is the limiter's own: Redis keeps real time, not this clock.)
}

#[per_backend]
pub async fn a_newer_sign_in_leaves_the_owners_second_step_alone(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "nora").await;
    let owners = password_step(&srv, "nora").await;
    // Someone else with the password signs in, again and again.
    for _ in 0..3 {
        password_step(&srv, "nora").await;
    }
    let (status, v) = second_step(&srv, &owners, &code(&srv, &e.secret, 0)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[per_backend]
pub async fn a_burnt_account_budget_keeps_neither_known_devices_nor_live_sessions_out(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.mfa.rate = tokengate::limits::Rate {
            count: 2,
            window_secs: 300,
        }
    })
    .await;
    srv.register("kay").await;
    let before_mfa = srv
        .post_json("/auth/login", json!({"username": "kay", "password": PASSWORD}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let e = enrol_in(&srv, Tokens::from(before_mfa.clone())).await;
    // The owner's device signed in with the second factor (its device token).
    let (status, v) = second_step(&srv, &password_step(&srv, "kay").await, &e.codes[0]).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let device = v["device_token"].as_str().unwrap().to_owned();
    // Whoever else has the password burns the account's budget.
    let right = code(&srv, &e.secret, 0);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for _ in 0..2 {
        refused(
            second_step(&srv, &password_step(&srv, "kay").await, wrong).await,
            INVALID_CODE,
        );
    }
    let (status, _) = second_step(&srv, &password_step(&srv, "kay").await, &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A device token from before MFA was on (whoever had the password then could hold
    // many) buys no budget of its own.
    let (_, v) = body(
        srv.post_json(
            "/auth/login",
            json!({"username": "kay", "password": PASSWORD, "device_token": before_mfa["device_token"]}),
        )
        .await,
    )
    .await;
    let (status, _) = second_step(&srv, &mfa_required(&v), &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The owner's known device has its own budget...
    let (status, v) = body(
        srv.post_json(
            "/auth/login",
            json!({"username": "kay", "password": PASSWORD, "device_token": device}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = second_step(&srv, &mfa_required(&v), &right).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // ...and their live session changes the password with a code (its own budget).
    next_step(&srv);
    let res = srv
        .post_auth(
            "/auth/password",
            &e.session.access,
            Some(json!({"current_password": PASSWORD, "new_password": "kays-new-pass-1", "code": code(&srv, &e.secret, 0)})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[per_backend]
pub async fn an_mfa_token_works_only_from_its_network_and_refusals_there_cost_it_nothing(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let e = enrol(&srv, "ivy").await;
    let (_, v) = post_from(
        &srv,
        "203.0.113.5",
        "/auth/login",
        json!({"username": "ivy", "password": PASSWORD}),
    )
    .await;
    let token = mfa_required(&v);
    let second = json!({"mfa_token": token, "code": e.codes[0]});
    // More tries than the token allows, from another network: each refused, none
    // counted against it, and the code they carried not spent.
    for _ in 0..6 {
        refused(
            post_from(&srv, "198.51.100.7", "/auth/login/mfa", second.clone()).await,
            INVALID_TOKEN,
        );
    }
    let (status, v) = post_from(&srv, "203.0.113.5", "/auth/login/mfa", second).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[per_backend]
pub async fn enrolling_upgrades_the_session_that_proved_the_code_and_no_other(b: Backend) {
    let srv = TestServer::start(b).await;
    let e = enrol(&srv, "uma").await;
    let list = srv
        .get_auth("/auth/sessions", &e.session.access)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["amr"], json!(["pwd", "otp", "mfa"]));
    // Its next access token says so.
    let refreshed = srv.refresh(&e.session.refresh).await.json::<Value>().await.unwrap();
    let (_, claims) = jwt_parts(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
}

#[per_backend]
pub async fn a_role_that_requires_mfa_keeps_its_holders_last_factor(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.mfa.required_roles = vec![tokengate::domain::Role::parse("admin").unwrap()];
    })
    .await;
    let e = enrol_in(&srv, srv.admin("abe").await).await;
    // Their only factor: removing it would leave the role without MFA (409, nothing
    // spent: the code still works).
    let removal = json!({"password": PASSWORD, "code": code(&srv, &e.secret, 0)});
    let (status, v) = remove(&srv, &e.session.access, removal).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("last second factor"), "{v}");
    assert_eq!(
        srv.get_auth("/admin/users", &e.session.access).await.status(),
        StatusCode::OK
    );
    // An operator can (they lost the factor): every session ends, and a password
    // sign-in is refused the role until MFA is on again.
    let id = jwt_parts(&e.session.access).1["sub"].as_str().unwrap().parse().unwrap();
    srv.auth().reset_mfa(id, &Default::default()).await.unwrap();
    assert_eq!(srv.me_status(&e.session.access).await, StatusCode::UNAUTHORIZED);
    let t = srv.login("abe", PASSWORD).await;
    let (status, v) = body(srv.get_auth("/admin/users", &t.access).await).await;
    assert_eq!(
        (status, v["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("MFA required for this role"))
    );
}

#[per_backend]
pub async fn an_admin_reset_of_a_pending_enrolment_changes_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("alf").await;
    let t = srv.user("leo").await;
    vouch(&srv, &t).await;
    let (status, _) = begin(&srv, &t.access, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK);
    let id = srv.auth().user_named("leo").await.unwrap().id;
    let res = srv.delete_auth(&format!("/admin/users/{id}/mfa"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK, "no session ended");
}

#[per_backend]
pub async fn a_refused_email_change_spends_no_code(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("taken").await;
    let e = enrol(&srv, "emma").await;
    for (new_email, status) in [
        ("taken@example.com", StatusCode::CONFLICT),
        ("emma@example.com", StatusCode::ACCEPTED),
    ] {
        let res = srv
            .post_auth(
                "/auth/email/change",
                &e.session.access,
                Some(json!({"new_email": new_email, "password": PASSWORD, "code": e.codes[0]})),
            )
            .await;
        assert_eq!(res.status(), status, "{new_email}");
    }
    let now = mfa_of(&srv, &e.session.access).await;
    assert_eq!(now["recovery_codes_left"], 10);
}

#[per_backend]
pub async fn a_sign_in_link_needs_the_second_factor_and_never_takes_an_mfa_account(b: Backend) {
    use crate::common::smtp::SmtpSink;
    use tokengate::mail::{MailTransportSettings, SmtpUrl};
    let sink = SmtpSink::start();
    let url = SmtpUrl::parse(&sink.url()).unwrap();
    let srv = TestServer::start_with(b, |s| {
        s.mail.transport = MailTransportSettings::Smtp(url);
        s.recovery.magic_links = true;
    })
    .await;
    let e = enrol(&srv, "vic").await;
    let link = async |srv: &TestServer| {
        let before = sink.count_to("vic@example.com");
        let res = srv
            .post_json("/auth/magic-link", json!({"email": "vic@example.com"}))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        // The new link's mail, not an earlier one's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while sink.count_to("vic@example.com") == before {
            assert!(std::time::Instant::now() < deadline, "no sign-in link arrived");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sink.mail_to("vic@example.com", "sign-in link").await.token()
    };
    // A sign-in link is a first factor, as a password.
    let token = link(&srv).await;
    let (status, v) = body(srv.post_json("/auth/magic-link/login", json!({"token": token})).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = second_step(&srv, &mfa_required(&v), &code(&srv, &e.secret, 0)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, claims) = jwt_parts(v["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["email", "otp", "mfa"]));
    // An operator withdraws the address's proof: a link to it now proves it for the
    // first time, which for an account without MFA voids the password; a mailbox alone
    // never takes an account with MFA, so the link is refused and nothing changes.
    let id = srv.auth().user_named("vic").await.unwrap().id;
    let withdraw = tokengate::auth::UserChange {
        email_verified: Some(false),
        ..Default::default()
    };
    srv.auth()
        .update_user(None, id, withdraw, &Default::default())
        .await
        .unwrap();
    let token = link(&srv).await;
    let (status, v) = body(srv.post_json("/auth/magic-link/login", json!({"token": token})).await).await;
    assert_eq!(
        (status, v["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Invalid or expired token"))
    );
    let after = srv.store().await.user_by_id(id).await.unwrap().unwrap();
    assert!(after.mfa_enabled);
}
