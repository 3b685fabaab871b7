//! Passkeys (contract v1.2), against a software authenticator and WebAuthn client no
//! one here wrote (1Password's): registration with step-up, sign-in with no username
//! and after one, the second step of a password sign-in, step-up, management, and the
//! failures: wrong origin or RP ID, replayed assertions, expired and reused
//! ceremonies, a cloned authenticator's counter, usernames that do not exist.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens, jwt_parts};
use crate::soft_passkey::SoftPasskey;

async fn body(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The origin a browser on this machine shows for the server (the RP ID is
/// `localhost`: a loopback public URL is served as `localhost`).
fn origin(srv: &TestServer) -> String {
    srv.base.replace("127.0.0.1", "localhost")
}

async fn post(srv: &TestServer, path: &str, v: Value) -> (StatusCode, Value) {
    body(srv.post_json(path, v).await).await
}

async fn post_as(srv: &TestServer, access: &str, path: &str, v: Value) -> (StatusCode, Value) {
    body(srv.post_auth(path, access, Some(v)).await).await
}

/// An operator vouches for the address of `session`'s user (a factor needs a proven
/// address).
async fn vouch(srv: &TestServer, session: &Tokens) {
    let (_, claims) = jwt_parts(&session.access);
    let id = claims["sub"].as_str().unwrap().parse().unwrap();
    srv.auth().vouch_for_email(id, &Default::default()).await.unwrap();
}

/// `POST /auth/passkeys/register/finish` with the authenticator's answer to `start`.
async fn finish_registration(
    srv: &TestServer,
    access: &str,
    start: &Value,
    credential: &Value,
    name: &str,
) -> (StatusCode, Value) {
    post_as(
        srv,
        access,
        "/auth/passkeys/register/finish",
        json!({"ceremony_id": start["ceremony_id"], "credential": credential, "name": name}),
    )
    .await
}

/// A user with a passkey registered from `session`: its authenticator, and the
/// recovery codes the registration made.
struct Holder {
    key: SoftPasskey,
    session: Tokens,
    codes: Vec<String>,
    passkey_id: String,
}

/// Register a passkey named `name` from `session` (step-up `step_up`): the answer.
async fn register(
    srv: &TestServer,
    key: &mut SoftPasskey,
    session: &Tokens,
    step_up: Value,
    name: &str,
) -> (StatusCode, Value) {
    let (status, start) = post_as(srv, &session.access, "/auth/passkeys/register/start", step_up).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let credential = key.create(&start["publicKey"]).await;
    finish_registration(srv, &session.access, &start, &credential, name).await
}

async fn holder(srv: &TestServer, name: &str) -> Holder {
    let session = srv.user(name).await;
    vouch(srv, &session).await;
    let mut key = SoftPasskey::new(&origin(srv));
    let (status, v) = register(srv, &mut key, &session, json!({"password": PASSWORD}), "YubiKey").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let codes = v["recovery_codes"]
        .as_array()
        .expect("recovery codes with the first factor")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Holder {
        key,
        session,
        codes,
        passkey_id: v["id"].as_str().unwrap().to_owned(),
    }
}

/// Begin a sign-in with `start` (`{}`, `{"username"}` or `{"mfa_token"}`).
async fn sign_in_start(srv: &TestServer, start: Value) -> Value {
    let (status, v) = post(srv, "/auth/passkeys/login/start", start).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn sign_in_finish(srv: &TestServer, ceremony: &Value, credential: &Value) -> (StatusCode, Value) {
    post(
        srv,
        "/auth/passkeys/login/finish",
        json!({"ceremony_id": ceremony["ceremony_id"], "credential": credential}),
    )
    .await
}

/// A whole sign-in with `key` (no username).
async fn sign_in(srv: &TestServer, key: &mut SoftPasskey) -> (StatusCode, Value) {
    let start = sign_in_start(srv, json!({})).await;
    let credential = key.get(&start["publicKey"]).await;
    sign_in_finish(srv, &start, &credential).await
}

fn amr(access: &str) -> Vec<String> {
    let (_, claims) = jwt_parts(access);
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// How many notices of a change to a user's factors were queued for `to`.
async fn notices(srv: &TestServer, to: &str) -> usize {
    let mails = srv.store().await.list_mail(false, 100).await.unwrap();
    mails
        .iter()
        .filter(|m| m.kind == "mfa_changed" && m.recipient == to)
        .count()
}

/// The credential IDs a sign-in's options allow.
fn allowed(start: &Value) -> Vec<String> {
    start["publicKey"]["allowCredentials"]
        .as_array()
        .map(|a| a.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[per_backend]
pub async fn a_registered_passkey_signs_in_without_a_username(b: Backend) {
    let srv = TestServer::start(b).await;
    let mut h = holder(&srv, "pat").await;
    assert_eq!(h.codes.len(), 10);
    // The first factor turned MFA on.
    let (_, mfa) = body(srv.get_auth("/auth/mfa", &h.session.access).await).await;
    assert_eq!(mfa["passkeys"], 1, "{mfa}");
    assert_eq!(mfa["recovery_codes_left"], 10, "{mfa}");
    // Discoverable: the options name no credential; the browser offers the one it has.
    let start = sign_in_start(&srv, json!({})).await;
    assert!(allowed(&start).is_empty(), "{start}");
    assert_eq!(start["publicKey"]["rpId"], "localhost");
    assert_eq!(start["publicKey"]["userVerification"], "required");
    let credential = h.key.get(&start["publicKey"]).await;
    let (status, v) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let methods = amr(v["access_token"].as_str().unwrap());
    assert!(methods == ["hwk", "user"] || methods == ["swk", "user"], "{methods:?}");
    let t = Tokens::from(v);
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    // The list shows it, used now.
    let (status, list) = body(srv.get_auth("/auth/passkeys", &t.access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], h.passkey_id.as_str());
    assert_eq!(list[0]["name"], "YubiKey");
    assert!(list[0]["last_used_at"].is_string(), "{list}");
    assert!(list[0]["created_at"].is_string(), "{list}");
    // A passkey session satisfies a role that requires MFA (it is multi-factor itself).
    let _ = h.session;
}

#[per_backend]
pub async fn username_first_options_look_the_same_for_unknown_users(b: Backend) {
    let srv = TestServer::start(b).await;
    let mut h = holder(&srv, "quinn").await;
    srv.user("nokey").await;
    let real = sign_in_start(&srv, json!({"username": "quinn"})).await;
    let unknown = sign_in_start(&srv, json!({"username": "nobody-here"})).await;
    let without = sign_in_start(&srv, json!({"username": "nokey"})).await;
    assert_eq!(allowed(&real).len(), 1, "{real}");
    for v in [&real, &unknown, &without] {
        // One or two, as real users have.
        assert!((1..=2).contains(&allowed(v).len()), "{v}");
        let mut keys: Vec<&String> = v["publicKey"].as_object().unwrap().keys().collect();
        keys.sort();
        let mut real_keys: Vec<&String> = real["publicKey"].as_object().unwrap().keys().collect();
        real_keys.sort();
        assert_eq!(keys, real_keys);
        assert_eq!(
            v["publicKey"]["allowCredentials"][0].as_object().unwrap().len(),
            real["publicKey"]["allowCredentials"][0].as_object().unwrap().len()
        );
    }
    // The same decoy each time (asking twice tells nothing), of a length real
    // authenticators' IDs have (16 to 64 bytes: 22 to 86 base64url characters).
    let again = sign_in_start(&srv, json!({"username": "NOBODY-here"})).await;
    assert_eq!(allowed(&unknown), allowed(&again));
    assert_ne!(allowed(&unknown), allowed(&without));
    for decoy in allowed(&unknown).iter().chain(&allowed(&without)) {
        assert!([22, 27, 43, 86].contains(&decoy.len()), "{decoy}");
    }
    // A real user's in another case: the same (the lookup ignores case, and so does
    // the decoy). An address is not a username: its owner's passkeys are not named.
    let upper = sign_in_start(&srv, json!({"username": "QUINN"})).await;
    assert_eq!(allowed(&upper), allowed(&real));
    let by_address = sign_in_start(&srv, json!({"username": "quinn@example.com"})).await;
    assert_ne!(allowed(&by_address), allowed(&real));
    // A ceremony begun for a name that is nobody's is finished by no passkey (else a
    // caller with a passkey of their own would learn which names exist).
    let mut options = unknown["publicKey"].clone();
    options["allowCredentials"] = json!([]);
    let credential = h.key.get(&options).await;
    let (status, v) = sign_in_finish(&srv, &unknown, &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // The real one signs in with its passkey.
    let credential = h.key.get(&real["publicKey"]).await;
    let (status, v) = sign_in_finish(&srv, &real, &credential).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A passkey answering a ceremony begun for another user is refused (a client may
    // answer with any credential it has).
    let mut options = without["publicKey"].clone();
    options["allowCredentials"] = json!([]);
    let credential = h.key.get(&options).await;
    let (status, v) = sign_in_finish(&srv, &without, &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["detail"], "Passkey not recognised");
}

#[per_backend]
pub async fn after_a_password_a_passkey_is_the_second_factor(b: Backend) {
    let srv = TestServer::start(b).await;
    let mut h = holder(&srv, "rita").await;
    let res = srv
        .post_json("/auth/login", json!({"username": "rita", "password": PASSWORD}))
        .await;
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "mfa_required");
    assert_eq!(v["methods"], json!(["passkey", "recovery_code"]));
    let mfa_token = v["mfa_token"].as_str().unwrap().to_owned();
    let start = sign_in_start(&srv, json!({"mfa_token": mfa_token})).await;
    assert_eq!(allowed(&start).len(), 1, "{start}");
    let credential = h.key.get(&start["publicKey"]).await;
    let (status, v) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let methods = amr(v["access_token"].as_str().unwrap());
    assert_eq!(methods[0], "pwd");
    assert!(
        methods.contains(&"user".to_owned()) && methods.contains(&"mfa".to_owned()),
        "{methods:?}"
    );
    // The MFA token is spent: another ceremony on it is refused.
    let (status, _) = post(&srv, "/auth/passkeys/login/start", json!({"mfa_token": mfa_token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A recovery code still completes a password sign-in (a lost passkey is no lockout).
    let res = srv
        .post_json("/auth/login", json!({"username": "rita", "password": PASSWORD}))
        .await;
    let (_, v) = body(res).await;
    let (status, v) = post(
        &srv,
        "/auth/login/mfa",
        json!({"mfa_token": v["mfa_token"], "code": h.codes[0]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[per_backend]
pub async fn a_wrong_origin_or_rp_id_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let session = srv.user("sam").await;
    vouch(&srv, &session).await;
    let mut key = SoftPasskey::new(&origin(&srv));
    // Registration from another port of localhost: another origin.
    let (_, start) = post_as(
        &srv,
        &session.access,
        "/auth/passkeys/register/start",
        json!({"password": PASSWORD}),
    )
    .await;
    let elsewhere = url::Url::parse("http://localhost:1").unwrap();
    let credential = key.create_at(&elsewhere, &start["publicKey"]).await.unwrap();
    let (status, v) = finish_registration(&srv, &session.access, &start, &credential, "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // A site of another RP ID relaying our options as its own.
    let (_, start) = post_as(
        &srv,
        &session.access,
        "/auth/passkeys/register/start",
        json!({"password": PASSWORD}),
    )
    .await;
    let mut options = start["publicKey"].clone();
    options["rp"]["id"] = json!("example.com");
    let phishing = url::Url::parse("https://example.com").unwrap();
    let credential = key.create_at(&phishing, &options).await.unwrap();
    let (status, v) = finish_registration(&srv, &session.access, &start, &credential, "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // Neither burnt anything: a registration from the right origin works now.
    let (status, v) = register(&srv, &mut key, &session, json!({"password": PASSWORD}), "ok").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // Sign-in: an assertion made at another origin, or for another RP ID, is refused.
    let start = sign_in_start(&srv, json!({})).await;
    let credential = key.get_at(&elsewhere, &start["publicKey"]).await.unwrap();
    let (status, v) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let start = sign_in_start(&srv, json!({})).await;
    let mut options = start["publicKey"].clone();
    options["rpId"] = json!("example.com");
    let credential = key.get_at(&phishing, &options).await.unwrap();
    let (status, v) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // The right one still works.
    let (status, v) = sign_in(&srv, &mut key).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[per_backend]
pub async fn ceremonies_are_single_use_and_expire(b: Backend) {
    let srv = TestServer::start(b).await;
    let mut h = holder(&srv, "tess").await;
    // Replayed: the same answer twice.
    let start = sign_in_start(&srv, json!({})).await;
    let credential = h.key.get(&start["publicKey"]).await;
    let (status, _) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["detail"],
        "Unknown, expired or finished passkey ceremony; start again"
    );
    // An old answer for a new ceremony: its challenge is another's.
    let fresh = sign_in_start(&srv, json!({})).await;
    let (status, v) = sign_in_finish(&srv, &fresh, &credential).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // Expired: 5 minutes.
    let start = sign_in_start(&srv, json!({})).await;
    let credential = h.key.get(&start["publicKey"]).await;
    srv.clock.advance(5 * 60 + 1);
    let (status, v) = sign_in_finish(&srv, &start, &credential).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // A ceremony of one kind never finishes another: a sign-in's id at registration.
    let t = Tokens::from(sign_in(&srv, &mut h.key).await.1);
    let start = sign_in_start(&srv, json!({})).await;
    let credential = h.key.get(&start["publicKey"]).await;
    let (status, v) = finish_registration(&srv, &t.access, &start, &credential, "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // Garbage is a clear 4xx.
    let (status, v) = post(
        &srv,
        "/auth/passkeys/login/finish",
        json!({"ceremony_id": "nope", "credential": {"id": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let fresh = sign_in_start(&srv, json!({})).await;
    let (status, v) = post(
        &srv,
        "/auth/passkeys/login/finish",
        json!({"ceremony_id": fresh["ceremony_id"], "credential": {"id": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v) = post(
        &srv,
        "/auth/passkeys/login/finish",
        json!({"ceremony_id": fresh["ceremony_id"], "credential": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[per_backend]
pub async fn a_counter_that_goes_backwards_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    let mut h = holder(&srv, "uma").await;
    // A copy of the authenticator as it was after registration (counter 0).
    let copy = h.key.stored();
    for _ in 0..2 {
        let (status, v) = sign_in(&srv, &mut h.key).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let original = h.key.stored();
    // The copy signs with counter 1, behind the 2 recorded: a clone.
    h.key.restore(copy);
    let (status, v) = sign_in(&srv, &mut h.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // The original goes on.
    h.key.restore(original);
    let (status, v) = sign_in(&srv, &mut h.key).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[per_backend]
pub async fn registering_needs_step_up_and_a_proven_address(b: Backend) {
    let srv = TestServer::start(b).await;
    let session = srv.user("val").await;
    let (status, v) = post_as(
        &srv,
        &session.access,
        "/auth/passkeys/register/start",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, &v["detail"]),
        (StatusCode::FORBIDDEN, &json!("Email not verified"))
    );
    vouch(&srv, &session).await;
    let (status, _) = post_as(
        &srv,
        &session.access,
        "/auth/passkeys/register/start",
        json!({"password": "not the password"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post_as(&srv, &session.access, "/auth/passkeys/register/start", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // With MFA on (the first passkey), a second one needs a second proof too.
    let mut key = SoftPasskey::new(&origin(&srv));
    let (status, v) = register(&srv, &mut key, &session, json!({"password": PASSWORD}), "first").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let codes = v["recovery_codes"].clone();
    let (status, v) = post_as(
        &srv,
        &session.access,
        "/auth/passkeys/register/start",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // A second passkey: no new codes (MFA was on).
    let mut other = SoftPasskey::new(&origin(&srv));
    let (status, v) = register(
        &srv,
        &mut other,
        &session,
        json!({"password": PASSWORD, "code": codes[0]}),
        "second",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v.get("recovery_codes").is_none(), "{v}");
    // The same authenticator again: the options exclude it, and a registered
    // credential is never stored twice.
    let (_, start) = post_as(
        &srv,
        &session.access,
        "/auth/passkeys/register/start",
        json!({"password": PASSWORD, "code": codes[1]}),
    )
    .await;
    assert_eq!(start["publicKey"]["excludeCredentials"].as_array().unwrap().len(), 2);
}

#[per_backend]
pub async fn adding_and_removing_a_passkey_ends_other_sessions(b: Backend) {
    let srv = TestServer::start(b).await;
    let session = srv.user("wes").await;
    let elsewhere = srv.login("wes", PASSWORD).await;
    vouch(&srv, &session).await;
    let mut key = SoftPasskey::new(&origin(&srv));
    let (status, v) = register(&srv, &mut key, &session, json!({"password": PASSWORD}), "key").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(srv.me_status(&elsewhere.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.me_status(&session.access).await, StatusCode::OK);
    // The owner is told (a notice in the outbox, queued with the change).
    assert_eq!(notices(&srv, "wes@example.com").await, 1);
    // The registering session counts as having proved the passkey.
    let (_, sessions) = body(srv.get_auth("/auth/sessions", &session.access).await).await;
    // (1Password's authenticator makes synced passkeys: a key in software, as its own
    // sign-ins say.)
    assert_eq!(sessions[0]["amr"], json!(["pwd", "swk", "user", "mfa"]), "{sessions}");
    let (_, own) = sign_in(&srv, &mut key).await;
    assert_eq!(amr(own["access_token"].as_str().unwrap()), ["swk", "user"]);
    // Rename.
    let res = srv
        .patch_auth(
            &format!("/auth/passkeys/{id}"),
            &session.access,
            json!({"name": "  Blue key "}),
        )
        .await;
    let (status, v) = body(res).await;
    assert_eq!((status, &v["name"]), (StatusCode::OK, &json!("Blue key")), "{v}");
    let res = srv
        .patch_auth(&format!("/auth/passkeys/{id}"), &session.access, json!({"name": ""}))
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = srv
        .patch_auth(
            &format!("/auth/passkeys/{}", uuid::Uuid::new_v4()),
            &session.access,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Remove with step-up by the passkey itself.
    let other = srv.login_with_passkey(&mut key).await;
    let (status, start) = post_as(&srv, &session.access, "/auth/passkeys/step-up/start", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let credential = key.get(&start["publicKey"]).await;
    let res = srv
        .http
        .delete(srv.url(&format!("/auth/passkeys/{id}")))
        .bearer_auth(&session.access)
        .json(
            &json!({"password": PASSWORD, "passkey": {"ceremony_id": start["ceremony_id"], "credential": credential}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.me_status(&other).await, StatusCode::UNAUTHORIZED);
    assert_eq!(notices(&srv, "wes@example.com").await, 2);
    // The last factor gone: MFA is off, its codes with it; the password alone signs in.
    let (_, mfa) = body(srv.get_auth("/auth/mfa", &session.access).await).await;
    assert_eq!(
        (mfa["passkeys"].clone(), mfa["recovery_codes_left"].clone()),
        (json!(0), json!(0)),
        "{mfa}"
    );
    srv.login("wes", PASSWORD).await;
    // And the passkey signs in no more.
    let (status, _) = sign_in(&srv, &mut key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn the_last_factor_of_an_mfa_role_stays(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.mfa.required_roles = vec![tokengate::domain::Role::parse("admin").unwrap()];
    })
    .await;
    let admin = srv.admin("xena").await;
    vouch(&srv, &admin).await;
    let mut key = SoftPasskey::new(&origin(&srv));
    let (status, v) = register(&srv, &mut key, &admin, json!({"password": PASSWORD}), "key").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let code = v["recovery_codes"][0].as_str().unwrap().to_owned();
    // The registering session proved the passkey: the role works from it.
    assert_eq!(
        srv.get_auth("/admin/users", &admin.access).await.status(),
        StatusCode::OK
    );
    // A passkey sign-in satisfies the role too.
    let t = srv.login_with_passkey(&mut key).await;
    assert_eq!(srv.get_auth("/admin/users", &t).await.status(), StatusCode::OK);
    let res = srv
        .http
        .delete(srv.url(&format!("/auth/passkeys/{id}")))
        .bearer_auth(&t)
        .json(&json!({"password": PASSWORD, "code": code}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(res).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("last second factor"), "{v}");
    // Still there, and still signs in.
    let (status, _) = sign_in(&srv, &mut key).await;
    assert_eq!(status, StatusCode::OK);
}

#[per_backend]
pub async fn an_operator_reset_removes_passkeys_too(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("yuri").await;
    let mut h = holder(&srv, "zoe").await;
    let (_, claims) = jwt_parts(&h.session.access);
    let id = claims["sub"].as_str().unwrap().to_owned();
    let res = srv.delete_auth(&format!("/admin/users/{id}/mfa"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, _) = sign_in(&srv, &mut h.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let t = srv.login("zoe", PASSWORD).await;
    let (_, list) = body(srv.get_auth("/auth/passkeys", &t.access).await).await;
    assert_eq!(list, json!([]));
}

impl TestServer {
    /// A discoverable passkey sign-in with `key`: the access token.
    async fn login_with_passkey(&self, key: &mut SoftPasskey) -> String {
        let (status, v) = sign_in(self, key).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }
}

#[per_backend]
pub async fn a_used_up_mfa_token_takes_no_passkey_and_starts_are_limited(b: Backend) {
    let srv = TestServer::start_with(b, |s| {
        s.limits.refresh = tokengate::limits::Rate {
            count: 8,
            window_secs: 60,
        };
    })
    .await;
    let h = holder(&srv, "vera").await;
    let res = srv
        .post_json("/auth/login", json!({"username": "vera", "password": PASSWORD}))
        .await;
    let (_, v) = body(res).await;
    let mfa_token = v["mfa_token"].as_str().unwrap().to_owned();
    // Five wrong codes use the token up: a passkey finishes it no more.
    for _ in 0..5 {
        let (status, _) = post(
            &srv,
            "/auth/login/mfa",
            json!({"mfa_token": mfa_token, "code": "000000"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, v) = post(&srv, "/auth/passkeys/login/start", json!({"mfa_token": mfa_token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // Each start is stored until it expires: an anonymous one counts per client
    // network (the refresh rate, 8 a minute here), and so does one naming a dead or
    // made-up MFA token (the refused one above; a live token's counts against it).
    let (status, _) = post(&srv, "/auth/passkeys/login/start", json!({"mfa_token": "A".repeat(43)})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&srv, "/auth/passkeys/login/start", json!({})).await.0);
    }
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let (status, v) = post(&srv, "/auth/passkeys/login/start", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // A signed-in user's starts spend their own budget, not the network's.
    let (status, v) = post_as(&srv, &h.session.access, "/auth/passkeys/step-up/start", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}
