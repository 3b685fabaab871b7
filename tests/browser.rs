//! The account page in a real browser: headless Chromium driven over WebDriver signs
//! in through the cookie flow, sees its sessions, revokes another one, signs out, and
//! never sees the access or refresh token in `document.cookie`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! them the test says why and skips, except under CI, where it fails.

#[path = "common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::smtp::SmtpSink;
use common::{Backend, PASSWORD, TestServer, jwt_parts};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::json;
use tokengate::mail::{MailTransportSettings, SmtpUrl};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether Chromium and its driver are here; without them the test says so and is
/// skipped, except under CI, where it fails.
fn chromium_installed() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        eprintln!("browser test running in {CHROMIUM}");
        return true;
    }
    let why = "SKIPPED browser test: /usr/bin/chromium and /usr/bin/chromedriver are not installed \
               (apt-get install chromium chromium-driver; .ci/run does this)";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("{why}");
    false
}

/// A headless Chromium with a fresh profile, driven over WebDriver.
struct Browser {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let (driver, port) = start_driver().await;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            // The console (CSP violations among it), read by `console_log`.
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1100,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session");
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }
}

/// chromedriver's console log of the page (its messages since the last read).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

async fn console_log(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Save a screenshot under the target folder and say where.
async fn screenshot(client: &Client, name: &str) {
    let shot = client.screenshot().await.unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(name), &shot).unwrap();
    eprintln!("screenshot: {}", out.join(name).display());
}

async fn start_driver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Driver(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_page_signs_in_lists_revokes_and_signs_out_in_chromium() {
    if !chromium_installed() {
        return;
    }
    let srv = TestServer::start(Backend::Sqlite).await;
    srv.register("alzy").await;
    // Another device of the same user, to be revoked from the page.
    let other = srv.login("alzy", PASSWORD).await;
    let other_sid = jwt_parts(&other.access).1["sid"].as_str().unwrap().to_owned();
    // Browsers treat localhost as a secure context, so Secure cookies work over http.
    let base = srv.base.replace("127.0.0.1", "localhost");

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&format!("{base}/account")).await.unwrap();
    wait_for(client, "#signin:not([hidden])").await;
    type_into(client, "#username", "alzy").await;
    type_into(client, "#password", PASSWORD).await;
    click(client, "#signin-button").await;

    wait_for(client, "#account:not([hidden])").await;
    assert_eq!(text(client, "#whoami").await, "You are alzy with roles: none");
    let other_row = format!("#sessions tr[data-session-id=\"{other_sid}\"]");
    wait_for(client, &other_row).await;
    let rows = client.find_all(Locator::Css("#sessions tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2);
    let current = text(client, "#sessions tr.current").await;
    assert!(current.contains("(this browser)"), "{current}");

    // The page can read the CSRF cookie, never the tokens.
    let cookie = document_cookie(client).await;
    assert!(cookie.contains("tokengate_csrf="), "{cookie}");
    assert!(
        !cookie.contains("tokengate_access") && !cookie.contains("tokengate_refresh"),
        "{cookie}"
    );
    assert!(!cookie.contains("eyJ"), "no JWT in document.cookie: {cookie}");

    screenshot(client, "account.png").await;

    // A sibling subdomain could plant a plain `tokengate_csrf` cookie that the page sees
    // first (a longer path sorts first): the page must still send the real one.
    client
        .execute("document.cookie = 'tokengate_csrf=planted; path=/account'", vec![])
        .await
        .unwrap();
    assert!(document_cookie(client).await.starts_with("tokengate_csrf=planted"));
    // Revoke the other device from the page: its tokens die at once.
    click(client, &format!("{other_row} button.revoke")).await;
    let deadline = Instant::now() + WAIT;
    while !client.find_all(Locator::Css(&other_row)).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the revoked session is still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text(client, "#status").await, "Session revoked.");
    assert_eq!(srv.me_status(&other.access).await, StatusCode::UNAUTHORIZED);
    client
        .execute(
            "document.cookie = 'tokengate_csrf=; path=/account; expires=Thu, 01 Jan 1970 00:00:00 GMT'",
            vec![],
        )
        .await
        .unwrap();

    // Sign out: back to the sign-in form, cookies gone, and still signed out on reload.
    click(client, "#signout").await;
    wait_for(client, "#signin:not([hidden])").await;
    assert_eq!(document_cookie(client).await, "");
    client.goto(&format!("{base}/account")).await.unwrap();
    wait_for(client, "#signin:not([hidden])").await;

    // No account yet: the page creates one and signs in with it (by email, too, later).
    click(client, "#to-register").await;
    wait_for(client, "#register:not([hidden])").await;
    type_into(client, "#new-username", "newbie").await;
    type_into(client, "#new-email", "newbie@example.com").await;
    type_into(client, "#new-account-password", PASSWORD).await;
    click(client, "#register-button").await;
    wait_for(client, "#account:not([hidden])").await;
    assert_eq!(text(client, "#whoami").await, "You are newbie with roles: none");
    assert_eq!(
        text(client, "#status").await,
        "Account created. You are signed in. Open the link we mailed you to confirm your address."
    );
    click(client, "#signout").await;
    wait_for(client, "#signin:not([hidden])").await;
    type_into(client, "#username", "newbie@example.com").await;
    type_into(client, "#password", PASSWORD).await;
    click(client, "#signin-button").await;
    wait_for(client, "#account:not([hidden])").await;
    assert_eq!(text(client, "#whoami").await, "You are newbie with roles: none");
    client.clone().close().await.unwrap();
}

/// A forgotten password, from the account page to the mail and back: ask for a link,
/// read it from a real SMTP server, open it as the reader would (the page takes the
/// token out of the address bar and spends nothing until the form is sent), set a new
/// password, sign in with it. The session that was open elsewhere is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_password_is_reset_through_the_mailed_link_in_chromium() {
    if !chromium_installed() {
        return;
    }
    let sink = SmtpSink::start();
    let smtp = SmtpUrl::parse(&sink.url()).unwrap();
    let srv = TestServer::start_with(Backend::Sqlite, |s| {
        s.mail.transport = MailTransportSettings::Smtp(smtp);
    })
    .await;
    let elsewhere = srv.user("rosa").await;
    let base = srv.base.replace("127.0.0.1", "localhost");
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&format!("{base}/account")).await.unwrap();
    wait_for(client, "#signin:not([hidden])").await;
    click(client, "#to-forgot").await;
    wait_for(client, "#forgot:not([hidden])").await;
    type_into(client, "#forgot-email", "rosa@example.com").await;
    click(client, "#forgot-button").await;
    wait_for_text(client, "#status", "If the address belongs to an account").await;

    let mail = sink.mail_to("rosa@example.com", "Reset your password").await;
    let link = mail.link();
    assert!(link.contains("/account/reset#token="), "{link}");
    client.goto(&link.replace("127.0.0.1", "localhost")).await.unwrap();
    wait_for(client, "#reset:not([hidden])").await;
    assert_eq!(
        text(client, "#for-account").await,
        "A new password for the account rosa."
    );
    // The token left the address bar (and so the history) as the page opened.
    let shown = client.current_url().await.unwrap();
    assert_eq!(shown.fragment(), None, "{shown}");
    assert!(shown.path().ends_with("/account/reset"), "{shown}");
    // Opening the page spent nothing: the form's POST below is what spends the token.
    let new_password = "a-new-long-passphrase-7";
    type_into(client, "#reset-password", new_password).await;
    click(client, "#reset-button").await;
    wait_for_text(client, "#status", "Your password is changed").await;
    assert_eq!(srv.me_status(&elsewhere.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.refresh(&elsewhere.refresh).await.status(), StatusCode::UNAUTHORIZED);
    let notice = sink.mail_to("rosa@example.com", "Your password was reset").await;
    assert!(notice.subject().contains("reset"));

    // The account page signs in with the new password; the reset proved the address.
    click(client, "#to-account").await;
    wait_for(client, "#signin:not([hidden])").await;
    type_into(client, "#username", "rosa").await;
    type_into(client, "#password", new_password).await;
    click(client, "#signin-button").await;
    wait_for(client, "#account:not([hidden])").await;
    assert!(
        !client
            .find(Locator::Css("#unverified"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );

    // The same link again: the page says it is spent, and offers no form.
    client.goto(&link.replace("127.0.0.1", "localhost")).await.unwrap();
    wait_for_text(client, "#status", "Invalid or expired token: this link was used").await;
    assert!(
        !client
            .find(Locator::Css("#reset"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );

    assert_no_csp_violation(client).await;
    client.clone().close().await.unwrap();
}

/// Two-step sign-in from the account page: turn it on from the QR code's key (a code
/// computed from the key the page shows, as an app would), keep the recovery codes,
/// sign out, sign in with the password and a code, then with a recovery code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_sign_in_is_set_up_and_used_from_the_account_page_in_chromium() {
    use tokengate::crypto::totp::{TotpSecret, step_at};
    if !chromium_installed() {
        return;
    }
    let srv = TestServer::start(Backend::Sqlite).await;
    srv.register("tess").await;
    // MFA wants a proven address: an operator vouches for it here.
    let id = srv.auth().user_named("tess").await.unwrap().id;
    srv.auth().vouch_for_email(id, &Default::default()).await.unwrap();
    let elsewhere = srv.login("tess", PASSWORD).await;
    let base = srv.base.replace("127.0.0.1", "localhost");
    let browser = Browser::start().await;
    let client = &browser.client;
    let sign_in = async |client: &Client| sign_in_with_password(client, "tess").await;
    client.goto(&format!("{base}/account")).await.unwrap();
    sign_in(client).await;
    wait_for(client, "#account:not([hidden])").await;
    wait_for_text(client, "#mfa-state", "Off").await;

    type_into(client, "#totp-begin-password", PASSWORD).await;
    click(client, "#totp-begin-button").await;
    wait_for(client, "#totp-enrol:not([hidden]) #totp-qr svg").await;
    let key = text(client, "#totp-secret").await;
    let secret = TotpSecret::from_bytes(data_encoding::BASE32_NOPAD.decode(key.as_bytes()).unwrap());
    let now_code = |srv: &TestServer| secret.code_at(step_at(tokengate::domain::UnixTime(srv.clock.now_secs())));
    type_into(client, "#totp-confirm-code", &now_code(&srv)).await;
    click(client, "#totp-confirm-button").await;
    wait_for(client, "#recovery-codes:not([hidden])").await;
    let codes: Vec<String> = {
        let items = client.find_all(Locator::Css("#recovery-list li")).await.unwrap();
        let mut out = Vec::new();
        for li in items {
            out.push(li.text().await.unwrap());
        }
        out
    };
    assert_eq!(codes.len(), 10);
    wait_for_text(client, "#mfa-state", "Recovery codes left: 10").await;
    // The other device was signed out by the enrolment.
    assert_eq!(srv.me_status(&elsewhere.access).await, StatusCode::UNAUTHORIZED);
    screenshot(client, "account-mfa.png").await;

    // Out, and in again: the password, then the app's code (a later step's: the one
    // that confirmed is spent).
    click(client, "#signout").await;
    sign_in(client).await;
    wait_for(client, "#second-step:not([hidden])").await;
    srv.clock.advance(30);
    type_into(client, "#mfa-code", &now_code(&srv)).await;
    click(client, "#mfa-button").await;
    wait_for(client, "#account:not([hidden])").await;
    assert_eq!(text(client, "#whoami").await, "You are tess with roles: none");

    // Out, and in with a recovery code; one fewer is left.
    click(client, "#signout").await;
    sign_in(client).await;
    wait_for(client, "#second-step:not([hidden])").await;
    type_into(client, "#mfa-code", &codes[0]).await;
    click(client, "#mfa-button").await;
    wait_for(client, "#account:not([hidden])").await;
    wait_for_text(client, "#mfa-state", "Recovery codes left: 9").await;

    // The same recovery code again is refused, on the page's second step.
    click(client, "#signout").await;
    sign_in(client).await;
    wait_for(client, "#second-step:not([hidden])").await;
    type_into(client, "#mfa-code", &codes[0]).await;
    click(client, "#mfa-button").await;
    wait_for_text(client, "#status", "Invalid MFA code").await;

    assert_no_csp_violation(client).await;
    client.clone().close().await.unwrap();
}

/// A command of the W3C WebAuthn automation extension, which chromedriver serves:
/// `path` under the session (`webauthn/authenticator`, ...).
#[derive(Debug)]
struct WebAuthnCommand {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (self.method.clone(), self.body.as_ref().map(|b| b.to_string()))
    }
}

/// Passkeys on the account page, with Chromium's virtual authenticator (a platform
/// authenticator that keeps discoverable credentials and verifies its user): add one
/// (after the password), sign out, sign in with it and no username, sign in with the
/// password and it as the second step, then remove it (step-up by the passkey itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_are_added_used_and_removed_from_the_account_page_in_chromium() {
    if !chromium_installed() {
        return;
    }
    let srv = TestServer::start(Backend::Sqlite).await;
    srv.register("pia").await;
    let id = srv.auth().user_named("pia").await.unwrap().id;
    srv.auth().vouch_for_email(id, &Default::default()).await.unwrap();
    let elsewhere = srv.login("pia", PASSWORD).await;
    // The RP ID is `localhost`: the page is opened there.
    let base = srv.base.replace("127.0.0.1", "localhost");
    let browser = Browser::start().await;
    let client = &browser.client;
    let authenticator = client
        .issue_cmd(WebAuthnCommand {
            method: http::Method::POST,
            path: "webauthn/authenticator".into(),
            body: Some(json!({
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserVerified": true,
                "automaticPresenceSimulation": true
            })),
        })
        .await
        .expect("a virtual authenticator (WebAuthn automation)");
    let authenticator = authenticator.as_str().expect("authenticator id").to_owned();
    let credentials = async |client: &Client| {
        let v = client
            .issue_cmd(WebAuthnCommand {
                method: http::Method::GET,
                path: format!("webauthn/authenticator/{authenticator}/credentials"),
                body: None,
            })
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    };
    let sign_in = async |client: &Client| sign_in_with_password(client, "pia").await;
    client.goto(&format!("{base}/account")).await.unwrap();
    sign_in(client).await;
    wait_for(client, "#account:not([hidden])").await;

    // Add: a name and the password; the authenticator makes a discoverable credential.
    type_into(client, "#passkey-name", "Laptop").await;
    type_into(client, "#passkey-password", PASSWORD).await;
    click(client, "#passkey-add-button").await;
    wait_for_text(client, "#status", "Passkey added").await;
    wait_for(client, "#recovery-codes:not([hidden])").await;
    wait_for(client, "#passkeys:not([hidden]) tbody tr").await;
    wait_for_text(client, "#mfa-state", "1 passkey").await;
    let stored = credentials(client).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["isResidentCredential"], true, "{stored:?}");
    assert_eq!(stored[0]["rpId"], "localhost");
    // The other device was signed out.
    assert_eq!(srv.me_status(&elsewhere.access).await, StatusCode::UNAUTHORIZED);
    screenshot(client, "account-passkeys.png").await;

    // Out, and in with the passkey: no username, no password.
    click(client, "#signout").await;
    wait_for(client, "#signin:not([hidden])").await;
    click(client, "#passkey-signin").await;
    wait_for(client, "#account:not([hidden])").await;
    assert_eq!(text(client, "#whoami").await, "You are pia with roles: none");
    let sessions = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/auth/sessions', {credentials: 'same-origin'}).then((r) => r.json()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .cloned();
    assert_eq!(current.unwrap()["amr"], json!(["hwk", "user"]), "{sessions}");

    // Out, and in with the password: the passkey is the second step.
    click(client, "#signout").await;
    sign_in(client).await;
    wait_for(client, "#second-step:not([hidden]) #mfa-passkey:not([hidden])").await;
    click(client, "#mfa-passkey").await;
    wait_for(client, "#account:not([hidden])").await;
    assert_eq!(text(client, "#whoami").await, "You are pia with roles: none");

    // Remove: the password, and the passkey itself as the second proof.
    type_into(client, "#passkey-password", PASSWORD).await;
    click(client, ".passkey-remove").await;
    wait_for_text(client, "#status", "Passkey removed").await;
    wait_for_text(client, "#mfa-state", "Off").await;
    wait_for(client, "#passkeys[hidden]").await;

    // The authenticator still holds the credential, but the server knows it no more.
    click(client, "#signout").await;
    wait_for(client, "#signin:not([hidden])").await;
    click(client, "#passkey-signin").await;
    wait_for_text(client, "#status", "Passkey not recognised").await;

    assert_no_csp_violation(client).await;
    client.clone().close().await.unwrap();
}

/// Swagger UI at `/docs`, offline from the binary: Authorize with a username and
/// password (the OAuth2 password flow against `/auth/login`), then run `GET /me`
/// from the page and see 200 with the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_authorizes_with_a_password_and_runs_me_in_chromium() {
    if !chromium_installed() {
        return;
    }
    let srv = TestServer::start(Backend::Sqlite).await;
    srv.register("alzy").await;
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&format!("{}/docs", srv.base)).await.unwrap();
    wait_for(client, "button.authorize").await;
    click(client, "button.authorize").await;
    let oauth = ".auth-container:has(#oauth_username)";
    wait_for(client, &format!("{oauth} #oauth_password")).await;
    type_into(client, &format!("{oauth} #oauth_username"), "alzy").await;
    type_into(client, &format!("{oauth} #oauth_password"), PASSWORD).await;
    click(client, &format!("{oauth} button.authorize")).await;
    // Authorized: the OAuth2 form (the first) now offers to log out.
    let deadline = Instant::now() + WAIT;
    loop {
        let form = text(client, ".auth-container").await;
        if form.contains("Logout") {
            break;
        }
        assert!(Instant::now() < deadline, "the password flow did not authorize: {form}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(client, ".auth-container button.btn-done").await;

    let me = "#operations-auth-me";
    click(client, &format!("{me} .opblock-summary-control")).await;
    wait_for(client, &format!("{me} button.execute")).await;
    click(client, &format!("{me} button.execute")).await;
    let status = format!("{me} .live-responses-table .response .response-col_status");
    wait_for(client, &status).await;
    assert_eq!(text(client, &status).await.trim(), "200");
    let body = text(
        client,
        &format!("{me} .live-responses-table tbody .response-col_description"),
    )
    .await;
    assert!(body.contains("\"username\": \"alzy\""), "{body}");
    screenshot(client, "docs.png").await;

    // The tutorial's URLs are listed too.
    wait_for(client, "#operations-auth-token").await;
    wait_for(client, "#operations-auth-users_me").await;
    assert_no_csp_violation(client).await;
    client.clone().close().await.unwrap();

    // The page's login is named for it in the user's session list.
    let access = srv.login("alzy", PASSWORD).await.access;
    let sessions: serde_json::Value = srv.get_auth("/auth/sessions", &access).await.json().await.unwrap();
    let names: Vec<_> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["device_name"].clone())
        .collect();
    assert!(names.contains(&json!("Swagger UI (/docs)")), "{sessions}");
}

/// Sign in on the account page's form with `username` and the tests' password.
async fn sign_in_with_password(client: &Client, username: &str) {
    wait_for(client, "#signin:not([hidden])").await;
    // The page keeps the name typed before (a sign-out does not reload it).
    client
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(client, "#username", username).await;
    type_into(client, "#password", PASSWORD).await;
    click(client, "#signin-button").await;
}

async fn wait_for(client: &Client, css: &str) {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap();
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn type_into(client: &Client, css: &str, keys: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

async fn text(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

async fn document_cookie(client: &Client) -> String {
    let v = client.execute("return document.cookie", vec![]).await.unwrap();
    v.as_str().unwrap_or_default().to_owned()
}

/// Wait until the element's text contains `expected`.
async fn wait_for_text(client: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = text(client, css).await;
        if now.contains(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{css} says {now:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing the page did was refused by its Content-Security-Policy.
async fn assert_no_csp_violation(client: &Client) {
    let violations: Vec<_> = console_log(client)
        .await
        .into_iter()
        .filter(|m| m.contains("Content Security Policy"))
        .collect();
    assert!(violations.is_empty(), "{violations:?}");
}

/// A relying party no one would mistake for tokengate: its own port, its own pages. It
/// sends the browser to tokengate's authorization endpoint (code + PKCE), takes the
/// code at its callback, exchanges it on the server side and shows who signed in;
/// `/again` asks userinfo with the token it kept.
struct RelyingParty {
    base: String,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct RpState {
    issuer: String,
    browser_issuer: String,
    client_id: String,
    secret: String,
    redirect_uri: String,
    token: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

const RP_VERIFIER: &str = "relying-party-verifier-of-forty-three-characters-at-least";

impl RelyingParty {
    async fn start(srv: &TestServer, browser_base: &str) -> (Self, String) {
        use tokengate::auth::oauth::ClientRegistration;
        use tokengate::domain::{ClientName, RedirectUri, Scope};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let redirect_uri = format!("{base}/cb");
        let done = srv
            .auth()
            .register_client(ClientRegistration {
                name: ClientName::parse("Orders <app>").unwrap(),
                redirect_uris: vec![RedirectUri::parse(&redirect_uri).unwrap()],
                post_logout_redirect_uris: vec![],
                scopes: Some(
                    ["openid", "profile", "email"]
                        .iter()
                        .map(|s| Scope::parse(s).unwrap())
                        .collect(),
                ),
                public: false,
                trusted: false,
                audience: None,
            })
            .await
            .unwrap();
        let state = RpState {
            issuer: srv.url(""),
            browser_issuer: browser_base.to_owned(),
            client_id: done.client.id.to_string(),
            secret: done.secret.unwrap(),
            redirect_uri,
            token: Default::default(),
        };
        let app = axum::Router::new()
            .route("/login", axum::routing::get(rp_login))
            .route("/cb", axum::routing::get(rp_callback))
            .route("/again", axum::routing::get(rp_again))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (Self { base, _task: task }, state.client_id)
    }
}

async fn rp_login(axum::extract::State(rp): axum::extract::State<RpState>) -> axum::response::Redirect {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/oauth/authorize", rp.browser_issuer),
        &[
            ("response_type", "code"),
            ("client_id", rp.client_id.as_str()),
            ("redirect_uri", rp.redirect_uri.as_str()),
            ("scope", "openid profile email"),
            ("state", "rp-state"),
            ("nonce", "rp-nonce"),
            ("code_challenge", &tokengate::crypto::pkce::s256(RP_VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    axum::response::Redirect::to(url.as_str())
}

async fn rp_userinfo(rp: &RpState, token: &str) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", rp.issuer))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn rp_callback(
    axum::extract::State(rp): axum::extract::State<RpState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Html<String> {
    assert_eq!(q.get("state").map(String::as_str), Some("rp-state"));
    assert_eq!(q.get("iss"), Some(&rp.issuer), "RFC 9207");
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", rp.issuer))
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", rp.redirect_uri.as_str()),
            ("code_verifier", RP_VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().expect("tokens").to_owned();
    let (_, id) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "rp-nonce");
    let (_, info) = rp_userinfo(&rp, &access).await;
    *rp.token.lock().unwrap() = Some(access);
    axum::response::Html(format!(
        "<!doctype html><title>Orders</title><p id=\"hello\">Hello {}</p>",
        info["preferred_username"].as_str().unwrap_or("?")
    ))
}

async fn rp_again(axum::extract::State(rp): axum::extract::State<RpState>) -> axum::response::Html<String> {
    let token = rp.token.lock().unwrap().clone().unwrap_or_default();
    let (status, _) = rp_userinfo(&rp, &token).await;
    axum::response::Html(format!(
        "<!doctype html><title>Orders</title><p id=\"status\">userinfo {status}</p>"
    ))
}

/// Single sign-on in a real browser: an application sends the user to tokengate, who
/// signs in on the account page, is asked to consent (the application's name escaped),
/// and comes back with a code the application exchanges; then the user takes the
/// application's access back on `/account`, and the application's token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_signs_a_user_in_and_loses_access_when_revoked_in_chromium() {
    if !chromium_installed() {
        return;
    }
    let srv = TestServer::start(Backend::Sqlite).await;
    srv.register("ssouser").await;
    let base = srv.base.replace("127.0.0.1", "localhost");
    let (rp, client_id) = RelyingParty::start(&srv, &base).await;

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&format!("{}/login", rp.base)).await.unwrap();
    // Signed out: the account page, then straight back.
    sign_in_with_password(client, "ssouser").await;
    wait_for(client, "#allow").await;
    let page = client.source().await.unwrap();
    assert!(page.contains("Allow Orders &lt;app&gt;?"), "{page}");
    assert!(page.contains("Your email address"));
    screenshot(client, "oauth-consent.png").await;
    assert_no_csp_violation(client).await;
    click(client, "#allow").await;
    // The application's page, once it has exchanged the code on its side.
    wait_for(client, "#hello").await;
    wait_for_text(client, "#hello", "Hello ssouser").await;
    assert_no_csp_violation(client).await;

    // The user's side: the application is listed, and taken back.
    client.goto(&format!("{base}/account")).await.unwrap();
    let row = format!("#apps tr[data-client-id=\"{client_id}\"]");
    wait_for(client, &row).await;
    assert!(text(client, &row).await.contains("Orders <app>"));
    screenshot(client, "account-apps.png").await;
    click(client, &format!("{row} button.revoke-app")).await;
    wait_for_text(client, "#status", "no longer has access").await;
    client.goto(&format!("{}/again", rp.base)).await.unwrap();
    wait_for(client, "#status").await;
    wait_for_text(client, "#status", "userinfo 401").await;
    client.clone().close().await.unwrap();
}
