//! The OAuth2 / OpenID Connect provider, driven by a relying party no one here wrote
//! (ramosbugs' `openidconnect`: discovery, PKCE, nonce, id_token verification, refresh,
//! userinfo), with the browser's part (the cookie session, the consent page) played by
//! plain HTTP. The module names follow the OpenID Foundation's Basic OP test plan where
//! one fits.

use std::collections::HashMap;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::auth::oauth::ClientRegistration;
use tokengate::domain::{ClientName, RedirectUri, Scope as OurScope};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer};

const CALLBACK: &str = "https://app.example.com/callback";
const SIGNED_OUT: &str = "https://app.example.com/signed-out";

/// A client that never follows redirects (the relying party's own advice, and how the
/// browser's part is read here).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct App {
    id: String,
    secret: Option<String>,
}

async fn register_app(srv: &TestServer, name: &str, trusted: bool, public: bool, scopes: &[&str]) -> App {
    let done = srv
        .auth()
        .register_client(ClientRegistration {
            name: ClientName::parse(name).unwrap(),
            redirect_uris: vec![
                RedirectUri::parse(CALLBACK).unwrap(),
                RedirectUri::parse("http://127.0.0.1:8400/cb").unwrap(),
            ],
            post_logout_redirect_uris: vec![RedirectUri::parse(SIGNED_OUT).unwrap()],
            scopes: Some(scopes.iter().map(|s| OurScope::parse(s).unwrap()).collect()),
            public,
            trusted,
            audience: None,
        })
        .await
        .unwrap();
    App {
        id: done.client.id.to_string(),
        secret: done.secret,
    }
}

/// Sign `username` in on the account page's cookie flow; the `Cookie` header a browser
/// would send afterwards.
async fn browser(srv: &TestServer, username: &str) -> String {
    let res = srv
        .post_json(
            "/auth/cookie/login",
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    crate::common::cookie_header(&res)
}

async fn relying_party(
    srv: &TestServer,
    app: &App,
) -> CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
> {
    let issuer = IssuerUrl::new(srv.url("")).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http())
        .await
        .expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(app.id.clone()),
        app.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap())
}

/// The query of a redirect's `Location`, as pairs.
fn query_of(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).expect("an absolute Location");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Open `url` as the signed-in browser; the response, unfollowed.
async fn open(url: &str, cookies: &str) -> reqwest::Response {
    http().get(url).header("cookie", cookies).send().await.unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {}", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The hidden fields of the consent page's form.
fn consent_form(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = part.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let end = start + part[start..].find('"').unwrap();
            part[start..end]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        out.push((attr("name"), attr("value")));
    }
    out
}

async fn answer_consent(
    srv: &TestServer,
    cookies: &str,
    fields: &[(String, String)],
    decision: &str,
) -> reqwest::Response {
    let mut form = fields.to_vec();
    form.push(("consent".into(), decision.into()));
    http()
        .post(srv.url("/oauth/authorize"))
        .header("cookie", cookies)
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[per_backend]
pub async fn oidcc_server_code_flow_with_pkce_nonce_id_token_userinfo_and_refresh(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("oidcuser").await;
    let app = register_app(&srv, "Grafana", true, false, &["openid", "profile", "email", "roles"]).await;
    let rp = relying_party(&srv, &app).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    // Signed out: to the account page, and back here after.
    let res = open(url.as_str(), "").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(to.starts_with("/account?continue="), "{to}");
    let back = query_of(&format!("http://x{to}"))["continue"].clone();
    assert!(back.starts_with("/oauth/authorize?"), "{back}");
    // Signed in (a trusted app: no consent page): back to the app with a code.
    let cookies = browser(&srv, "oidcuser").await;
    let res = open(&srv.url(&back), &cookies).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let to = location(&res);
    assert!(to.starts_with(CALLBACK), "{to}");
    let q = query_of(&to);
    assert_eq!(q["state"], *csrf.secret());
    assert_eq!(q["iss"], srv.url(""), "RFC 9207");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("the code exchanged");
    let id_token = tokens.id_token().expect("an id_token");
    let claims: &CoreIdTokenClaims = id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("a valid id_token");
    let me = srv.login("oidcuser", PASSWORD).await;
    let me = srv.get_auth("/me", &me.access).await.json::<Value>().await.unwrap();
    assert_eq!(claims.subject().as_str(), me["id"].as_str().unwrap());
    assert_eq!(claims.email().map(|e| e.as_str()), Some("oidcuser@example.com"));
    assert!(claims.auth_time().is_some());
    let (header, _) = crate::common::jwt_parts(&id_token.to_string());
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    // The access token: RFC 9068's claims, for this app.
    let access = tokens.access_token().secret().clone();
    let (_, at) = crate::common::jwt_parts(&access);
    assert_eq!(at["client_id"], app.id.as_str());
    assert_eq!(at["aud"], app.id.as_str(), "never the server's own audience");
    assert_eq!(at["scope"], "openid email profile");
    assert_eq!(at["roles"], json!([]), "no roles without the roles scope");
    // An application's token is not a first-party token.
    assert_eq!(srv.me_status(&access).await, StatusCode::UNAUTHORIZED);
    // Userinfo, through the relying party.
    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http())
        .await
        .expect("userinfo");
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("oidcuser"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("oidcuser@example.com"));
    // Refresh: rotated, a new id_token without a nonce, the old refresh token dead.
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let again = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http())
        .await
        .expect("refreshed");
    assert_ne!(again.refresh_token().unwrap().secret(), refresh.secret());
    assert!(again.id_token().is_some());
    let stale = rp
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .unwrap()
        .request_async(&http())
        .await;
    assert!(stale.is_err(), "a spent refresh token is refused");
    // ...and its reuse ended the session.
    let res = srv.get_auth("/oauth/userinfo", again.access_token().secret()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The app's refresh token is not accepted at the first-party refresh endpoint.
    assert_eq!(srv.refresh(refresh.secret()).await.status(), StatusCode::UNAUTHORIZED);
}

/// Run the code flow by hand (no relying-party library): the code, and the verifier.
async fn code_for(srv: &TestServer, app: &App, cookies: &str, extra: &[(&str, &str)]) -> (String, String) {
    let verifier = "a-verifier-of-forty-three-characters-or-more-0123";
    let challenge = tokengate::crypto::pkce::s256(verifier);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", app.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "openid email"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // An extra parameter replaces the default of that name.
    params.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    params.extend_from_slice(extra);
    let url = reqwest::Url::parse_with_params(&srv.url("/oauth/authorize"), &params).unwrap();
    let res = open(url.as_str(), cookies).await;
    assert_eq!(res.status(), StatusCode::FOUND, "{}", res.text().await.unwrap());
    let q = query_of(&location(&res));
    (
        q.get("code").cloned().unwrap_or_else(|| panic!("no code: {q:?}")),
        verifier.into(),
    )
}

async fn exchange(srv: &TestServer, app: &App, code: &str, verifier: &str) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
        ("client_id", app.id.as_str()),
    ];
    if let Some(s) = &app.secret {
        form.push(("client_secret", s));
    }
    http().post(srv.url("/oauth/token")).form(&form).send().await.unwrap()
}

async fn oauth_error(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

#[per_backend]
pub async fn oidcc_codereuse_revokes_what_the_first_use_issued(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("reuser").await;
    let app = register_app(&srv, "App", true, false, &["openid", "email"]).await;
    let cookies = browser(&srv, "reuser").await;
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    let res = exchange(&srv, &app, &code, &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let first: Value = res.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(srv.get_auth("/oauth/userinfo", access).await.status(), StatusCode::OK);
    // 30 seconds later, the same code again: refused, and the first tokens die.
    srv.clock.advance(30);
    let (status, error) = oauth_error(exchange(&srv, &app, &code, &verifier).await).await;
    assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert_eq!(
        srv.get_auth("/oauth/userinfo", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    let res = http()
        .post(srv.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &app.id),
            ("client_secret", app.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A code lives 60 seconds.
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    srv.clock.advance(61);
    let (_, error) = oauth_error(exchange(&srv, &app, &code, &verifier).await).await;
    assert_eq!(error, "invalid_grant");
}

#[per_backend]
pub async fn the_token_endpoint_binds_a_code_to_its_client_redirect_uri_and_verifier(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("binder").await;
    let a = register_app(&srv, "A", true, false, &["openid", "email"]).await;
    let other = register_app(&srv, "B", true, false, &["openid", "email"]).await;
    let public = register_app(&srv, "SPA", true, true, &["openid", "email"]).await;
    let cookies = browser(&srv, "binder").await;
    // Code injection: A's code at B.
    let (code, verifier) = code_for(&srv, &a, &cookies, &[]).await;
    let (_, error) = oauth_error(exchange(&srv, &other, &code, &verifier).await).await;
    assert_eq!(error, "invalid_grant");
    // ...and it was spent by the attempt: A cannot use it either.
    let (_, error) = oauth_error(exchange(&srv, &a, &code, &verifier).await).await;
    assert_eq!(error, "invalid_grant");
    // Wrong verifier; no verifier (PKCE downgrade).
    for bad in ["b".repeat(43), String::new()] {
        let (code, _) = code_for(&srv, &a, &cookies, &[]).await;
        let (_, error) = oauth_error(exchange(&srv, &a, &code, &bad).await).await;
        assert_eq!(error, "invalid_grant", "{bad:?}");
    }
    // Another redirect URI than the request's.
    let (code, verifier) = code_for(&srv, &a, &cookies, &[]).await;
    let res = http()
        .post(srv.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8400/cb"),
            ("code_verifier", &verifier),
        ])
        .basic_auth(&a.id, a.secret.as_deref())
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(res).await.1, "invalid_grant");
    // A wrong secret, by Basic: 401 invalid_client with a Basic challenge.
    let (code, verifier) = code_for(&srv, &a, &cookies, &[]).await;
    let res = http()
        .post(srv.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier.as_str()),
        ])
        .basic_auth(&a.id, Some("not-the-secret"))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // A confidential client without its secret.
    let no_secret = App {
        id: a.id.clone(),
        secret: None,
    };
    let (_, error) = oauth_error(exchange(&srv, &no_secret, &code, &verifier).await).await;
    assert_eq!(error, "invalid_client");
    // The right one, by Basic (client_secret_basic) and in the body (client_secret_post),
    // and a public client with its id alone.
    let (code, verifier) = code_for(&srv, &a, &cookies, &[]).await;
    let res = http()
        .post(srv.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier.as_str()),
        ])
        .basic_auth(&a.id, a.secret.as_deref())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (code, verifier) = code_for(&srv, &a, &cookies, &[]).await;
    assert_eq!(exchange(&srv, &a, &code, &verifier).await.status(), StatusCode::OK);
    let (code, verifier) = code_for(&srv, &public, &cookies, &[]).await;
    assert_eq!(exchange(&srv, &public, &code, &verifier).await.status(), StatusCode::OK);
    // Unknown grant types, and a missing code.
    for form in [
        vec![("grant_type", "implicit")],
        vec![("grant_type", "authorization_code")],
        vec![],
    ] {
        let res = http()
            .post(srv.url("/oauth/token"))
            .basic_auth(&a.id, a.secret.as_deref())
            .form(&form)
            .send()
            .await
            .unwrap();
        let (status, error) = oauth_error(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert!(
            ["unsupported_grant_type", "invalid_request"].contains(&error.as_str()),
            "{error}"
        );
    }
}

/// A change to an authorization request's parameters.
type Change = Box<dyn Fn(&mut Vec<(String, String)>)>;

#[per_backend]
pub async fn oidcc_ensure_registered_redirect_uri_and_request_errors(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("checker").await;
    let app = register_app(&srv, "Checked", true, false, &["openid", "email"]).await;
    let cookies = browser(&srv, "checker").await;
    let challenge = tokengate::crypto::pkce::s256("a-verifier-of-forty-three-characters-or-more-0123");
    let base = |redirect: &str| {
        vec![
            ("response_type".to_owned(), "code".to_owned()),
            ("client_id".to_owned(), app.id.clone()),
            ("redirect_uri".to_owned(), redirect.to_owned()),
            ("scope".to_owned(), "openid".to_owned()),
            ("state".to_owned(), "s1".to_owned()),
            ("code_challenge".to_owned(), challenge.clone()),
            ("code_challenge_method".to_owned(), "S256".to_owned()),
        ]
    };
    let url_of =
        |params: &[(String, String)]| reqwest::Url::parse_with_params(&srv.url("/oauth/authorize"), params).unwrap();
    // Unregistered redirect URIs, an unknown client: a page, never a redirect.
    for redirect in [
        "https://app.example.com/callback/",
        "https://app.example.com/Callback",
        "https://APP.example.com/callback",
        "https://app.example.com/callback?x=1",
        "https://app.example.com/callback#f",
        "https://evil@app.example.com/callback",
        "https://app.example.com.evil.example/callback",
        "https://evil.example/",
    ] {
        let res = open(url_of(&base(redirect)).as_str(), &cookies).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{redirect}");
        assert!(res.headers().get("location").is_none(), "{redirect}");
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
    let mut unknown = base(CALLBACK);
    unknown[1].1 = uuid::Uuid::new_v4().to_string();
    let res = open(url_of(&unknown).as_str(), &cookies).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    // After the redirect URI is known good: errors go back, with state and iss.
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|p| p.retain(|(k, _)| k != "response_type")), "invalid_request"),
        (Box::new(|p| p[0].1 = "token".into()), "unsupported_response_type"),
        (
            Box::new(|p| p.retain(|(k, _)| !k.starts_with("code_challenge"))),
            "invalid_request",
        ),
        (Box::new(|p| p[6].1 = "plain".into()), "invalid_request"),
        (
            Box::new(|p| p.retain(|(k, _)| k != "code_challenge_method")),
            "invalid_request",
        ),
        (
            Box::new(|p| p.push(("request".into(), "eyJ.x.y".into()))),
            "request_not_supported",
        ),
        (
            Box::new(|p| p.push(("request_uri".into(), "https://x/".into()))),
            "request_uri_not_supported",
        ),
        (Box::new(|p| p[3].1 = "openid admin".into()), "invalid_scope"),
        (
            Box::new(|p| p.push(("prompt".into(), "none login".into()))),
            "invalid_request",
        ),
    ];
    for (change, want) in cases {
        let mut p = base(CALLBACK);
        change(&mut p);
        let res = open(url_of(&p).as_str(), &cookies).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{want}");
        let to = location(&res);
        assert!(to.starts_with(CALLBACK), "{to}");
        let q = query_of(&to);
        assert_eq!(q["error"], want, "{p:?}");
        assert_eq!(q["state"], "s1");
        assert_eq!(q["iss"], srv.url(""));
        assert!(!q.contains_key("code"));
    }
    // Unknown parameters are ignored; the POST form works the same (OpenID Connect
    // Core §3.1.2.1); a loopback redirect URI may use any port.
    let mut p = base(CALLBACK);
    p.push(("display".into(), "popup".into()));
    p.push(("ui_locales".into(), "fr".into()));
    p.push(("login_hint".into(), "checker".into()));
    let res = open(url_of(&p).as_str(), &cookies).await;
    assert!(query_of(&location(&res)).contains_key("code"));
    let res = http()
        .post(srv.url("/oauth/authorize"))
        .header("cookie", &cookies)
        .form(&base(CALLBACK))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(query_of(&location(&res)).contains_key("code"));
    let res = open(url_of(&base("http://127.0.0.1:51999/cb")).as_str(), &cookies).await;
    assert!(location(&res).starts_with("http://127.0.0.1:51999/cb?code="));
    // A parameter twice: a page.
    let mut twice = base(CALLBACK);
    twice.push(("client_id".into(), app.id.clone()));
    let res = open(url_of(&twice).as_str(), &cookies).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[per_backend]
pub async fn consent_is_asked_remembered_and_revocable(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("consenter").await;
    let app = register_app(
        &srv,
        "<b>Tricky</b> & \"co\"",
        false,
        false,
        &["openid", "email", "roles"],
    )
    .await;
    let cookies = browser(&srv, "consenter").await;
    let verifier = "a-verifier-of-forty-three-characters-or-more-0123";
    let url = reqwest::Url::parse_with_params(
        &srv.url("/oauth/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", CALLBACK),
            ("scope", "openid email"),
            ("state", "s<1>"),
            ("code_challenge", &tokengate::crypto::pkce::s256(verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let res = open(url.as_str(), &cookies).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self' https://app.example.com"),
        "{csp}"
    );
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("&lt;b&gt;Tricky&lt;/b&gt; &amp; &quot;co&quot;"),
        "the name is escaped"
    );
    assert!(!html.contains("<b>Tricky"));
    assert!(html.contains("Your email address"));
    let fields = consent_form(&html);
    assert!(fields.iter().any(|(k, v)| k == "state" && v == "s<1>"));
    // Consent CSRF: an answer without this session's token is refused.
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.clone(), if k == "csrf_token" { "forged".into() } else { v.clone() }))
        .collect();
    let res = answer_consent(&srv, &cookies, &forged, "allow").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    // Another signed-in user's browser cannot answer with this page's token either.
    srv.register("intruder").await;
    let theirs = browser(&srv, "intruder").await;
    assert_eq!(
        answer_consent(&srv, &theirs, &fields, "allow").await.status(),
        StatusCode::BAD_REQUEST
    );
    // Deny: back with access_denied.
    let res = answer_consent(&srv, &cookies, &fields, "deny").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(&res));
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("access_denied", "s<1>"));
    // Allow: a code; the next request is not asked again.
    let res = answer_consent(&srv, &cookies, &fields, "allow").await;
    let code = query_of(&location(&res))["code"].clone();
    let first: Value = exchange(&srv, &app, &code, verifier).await.json().await.unwrap();
    let res = open(url.as_str(), &cookies).await;
    assert_eq!(res.status(), StatusCode::FOUND, "remembered");
    // A scope not yet allowed asks again; so does prompt=consent.
    let mut more = url.clone();
    more.query_pairs_mut()
        .clear()
        .extend_pairs(url.query_pairs().map(|(k, v)| {
            if k == "scope" {
                (k, "openid email roles".into())
            } else {
                (k, v)
            }
        }));
    assert_eq!(open(more.as_str(), &cookies).await.status(), StatusCode::OK);
    let mut again = url.clone();
    again.query_pairs_mut().append_pair("prompt", "consent");
    assert_eq!(open(again.as_str(), &cookies).await.status(), StatusCode::OK);
    // prompt=none when consent is needed: consent_required, back to the app.
    let mut none = more.clone();
    none.query_pairs_mut().append_pair("prompt", "none");
    let res = open(none.as_str(), &cookies).await;
    assert_eq!(query_of(&location(&res))["error"], "consent_required");
    // The user's list, and taking it back: the app's tokens die at once.
    let me = srv.login("consenter", PASSWORD).await;
    let list: Value = srv.get_auth("/auth/consents", &me.access).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["client_id"], app.id.as_str());
    assert_eq!(list[0]["scopes"], json!(["openid", "email"]));
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(srv.get_auth("/oauth/userinfo", access).await.status(), StatusCode::OK);
    let res = srv.delete_auth(&format!("/auth/consents/{}", app.id), &me.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        srv.get_auth("/oauth/userinfo", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        open(url.as_str(), &cookies).await.status(),
        StatusCode::OK,
        "asked again"
    );
    let res = srv.delete_auth(&format!("/auth/consents/{}", app.id), &me.access).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[per_backend]
pub async fn oidcc_prompt_none_prompt_login_and_max_age(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("prompter").await;
    let app = register_app(&srv, "Prompted", true, false, &["openid"]).await;
    let challenge = tokengate::crypto::pkce::s256("a-verifier-of-forty-three-characters-or-more-0123");
    let url = |extra: &[(&str, &str)]| {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        p.extend_from_slice(extra);
        reqwest::Url::parse_with_params(&srv.url("/oauth/authorize"), &p)
            .unwrap()
            .to_string()
    };
    // prompt=none, signed out: login_required, back to the app.
    let res = open(&url(&[("prompt", "none")]), "").await;
    assert_eq!(query_of(&location(&res))["error"], "login_required");
    // Signed in: a code.
    let cookies = browser(&srv, "prompter").await;
    let res = open(&url(&[("prompt", "none")]), &cookies).await;
    assert!(query_of(&location(&res)).contains_key("code"));
    // prompt=login: a new sign-in first, even while signed in.
    srv.clock.advance(1);
    let res = open(&url(&[("prompt", "login")]), &cookies).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    let q = query_of(&format!("http://x{to}"));
    assert_eq!(q["fresh"], "1");
    let back = q["continue"].clone();
    assert!(back.contains("tg_fresh="), "{back}");
    // Coming back without one still asks...
    let res = open(&srv.url(&back), &cookies).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // ...as does a mark no one here made (a link claiming a sign-in was had).
    let forged = back.replace("tg_fresh=", "tg_fresh=0.forged&x=");
    let res = open(&srv.url(&forged), &cookies).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{forged}");
    // ...and after a new sign-in gives a code.
    srv.clock.advance(1);
    let fresh = browser(&srv, "prompter").await;
    // A mark made for this request does not serve another (another PKCE challenge).
    let mark = back.split("tg_fresh=").nth(1).unwrap().to_owned();
    let other = format!(
        "{}&tg_fresh={mark}",
        url(&[("prompt", "login")]).replace(&challenge, &tokengate::crypto::pkce::s256(&"o".repeat(43)))
    );
    let res = open(&other, &fresh).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{other}");
    let res = open(&srv.url(&back), &fresh).await;
    assert_eq!(res.status(), StatusCode::FOUND, "{}", location(&res));
    assert!(query_of(&location(&res)).contains_key("code"));
    // max_age: a sign-in older than that asks again.
    srv.clock.advance(5);
    let res = open(&url(&[("max_age", "1")]), &fresh).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = open(&url(&[("max_age", "10000")]), &fresh).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let res = open(&url(&[("max_age", "1"), ("prompt", "none")]), &fresh).await;
    assert_eq!(query_of(&location(&res))["error"], "login_required");
}

#[per_backend]
pub async fn client_credentials_introspection_and_revocation(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("inspected").await;
    let api = register_app(&srv, "Orders API", true, false, &["openid", "email", "read:orders"]).await;
    let other = register_app(&srv, "Other", false, false, &["openid", "email"]).await;
    let public = register_app(&srv, "Public", false, true, &["openid"]).await;
    let form = |client: &App, pairs: &[(&str, &str)]| {
        let mut f: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        f.push(("client_id".into(), client.id.clone()));
        if let Some(s) = &client.secret {
            f.push(("client_secret".into(), s.clone()));
        }
        f
    };
    let post = |path: &'static str, f: Vec<(String, String)>| {
        let url = srv.url(path);
        async move { http().post(url).form(&f).send().await.unwrap() }
    };
    // client_credentials: the client's own token, its scopes only, none about a user.
    let res = post(
        "/oauth/token",
        form(&api, &[("grant_type", "client_credentials"), ("scope", "read:orders")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cc: Value = res.json().await.unwrap();
    assert!(cc.get("refresh_token").is_none() && cc.get("id_token").is_none());
    let (_, claims) = crate::common::jwt_parts(cc["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["sub"].as_str(), claims["scope"].as_str()),
        (Some(api.id.as_str()), Some("read:orders"))
    );
    for scope in ["openid", "write:orders"] {
        let res = post(
            "/oauth/token",
            form(&api, &[("grant_type", "client_credentials"), ("scope", scope)]),
        )
        .await;
        assert_eq!(oauth_error(res).await.1, "invalid_scope", "{scope}");
    }
    let res = post("/oauth/token", form(&public, &[("grant_type", "client_credentials")])).await;
    assert_eq!(oauth_error(res).await.1, "unauthorized_client");
    // The password grant is for trusted clients only.
    let res = post(
        "/oauth/token",
        form(
            &other,
            &[
                ("grant_type", "password"),
                ("username", "inspected"),
                ("password", PASSWORD),
            ],
        ),
    )
    .await;
    assert_eq!(oauth_error(res).await.1, "unauthorized_client");
    // Introspection: the client's own token is active, with its claims...
    let res = post(
        "/oauth/introspect",
        form(&api, &[("token", cc["access_token"].as_str().unwrap())]),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], api.id.as_str());
    // ...another client learns nothing of it, and nonsense is inactive.
    let res = post(
        "/oauth/introspect",
        form(&other, &[("token", cc["access_token"].as_str().unwrap())]),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"active": false}));
    let res = post("/oauth/introspect", form(&api, &[("token", "nonsense")])).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"active": false}));
    // Unauthenticated introspection is refused.
    let res = http()
        .post(srv.url("/oauth/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A user's tokens: introspected, then revoked by their refresh token.
    let cookies = browser(&srv, "inspected").await;
    let (code, verifier) = code_for(&srv, &api, &cookies, &[]).await;
    let tokens: Value = exchange(&srv, &api, &code, &verifier).await.json().await.unwrap();
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    );
    for token in [access, refresh] {
        let body: Value = post("/oauth/introspect", form(&api, &[("token", token)]))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["username"], "inspected");
    }
    // Another client's revocation is a no-op (200 all the same).
    let res = post("/oauth/revoke", form(&other, &[("token", refresh)])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(srv.get_auth("/oauth/userinfo", access).await.status(), StatusCode::OK);
    let res = post(
        "/oauth/revoke",
        form(&api, &[("token", refresh), ("token_type_hint", "refresh_token")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        srv.get_auth("/oauth/userinfo", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let body: Value = post("/oauth/introspect", form(&api, &[("token", access)]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}));
    let res = post("/oauth/revoke", form(&api, &[("token", "unknown")])).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[per_backend]
pub async fn discovery_lists_the_provider_and_the_jwks_its_key(b: Backend) {
    let srv = TestServer::start(b).await;
    // No client yet: no key made (an HS256 server's JWKS stays empty).
    let jwks = srv.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"], json!([]));
    register_app(&srv, "Any", false, false, &["openid"]).await;
    let d = srv.get_json("/.well-known/openid-configuration").await;
    let base = srv.url("");
    assert_eq!(d["issuer"], base.as_str());
    assert_eq!(d["authorization_endpoint"], format!("{base}/oauth/authorize"));
    assert_eq!(d["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(d["userinfo_endpoint"], format!("{base}/oauth/userinfo"));
    assert_eq!(d["introspection_endpoint"], format!("{base}/oauth/introspect"));
    assert_eq!(d["revocation_endpoint"], format!("{base}/oauth/revoke"));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert!(
        d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256"))
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    let jwks = srv.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    // CORS on discovery and the token endpoint, never on the authorization endpoint.
    let res = http()
        .get(srv.url("/.well-known/openid-configuration"))
        .header("origin", "https://spa.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let res = http()
        .request(reqwest::Method::OPTIONS, srv.url("/oauth/token"))
        .header("origin", "https://spa.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert!(res.headers().get("access-control-allow-credentials").is_none());
    let res = http()
        .get(srv.url("/oauth/authorize"))
        .header("origin", "https://spa.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[per_backend]
pub async fn rp_initiated_logout_ends_the_grant_and_the_browser_session(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("leaver").await;
    let app = register_app(&srv, "Leaving", true, false, &["openid", "email"]).await;
    let cookies = browser(&srv, "leaver").await;
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    let tokens: Value = exchange(&srv, &app, &code, &verifier).await.json().await.unwrap();
    let (access, id_token) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["id_token"].as_str().unwrap(),
    );
    let discovery = srv.get_json("/.well-known/openid-configuration").await;
    let end = discovery["end_session_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(end, srv.url("/oauth/logout"));
    let logout = |params: Vec<(&str, &str)>| reqwest::Url::parse_with_params(&end, &params).unwrap().to_string();
    // Without a hint nothing ends; an unregistered URI is an error page; a forged hint too.
    let res = open(
        &logout(vec![("client_id", &app.id), ("post_logout_redirect_uri", SIGNED_OUT)]),
        &cookies,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("set-cookie").is_none());
    assert_eq!(srv.get_auth("/oauth/userinfo", access).await.status(), StatusCode::OK);
    let res = open(
        &logout(vec![
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ]),
        &cookies,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    let mut forged = id_token.to_owned();
    forged.pop();
    forged.push(if id_token.ends_with('A') { 'B' } else { 'A' });
    let res = open(&logout(vec![("id_token_hint", &forged)]), &cookies).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(srv.get_auth("/oauth/userinfo", access).await.status(), StatusCode::OK);
    // With the hint: the grant's session and the browser's end, back with state.
    let res = open(
        &logout(vec![
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "bye"),
        ]),
        &cookies,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), format!("{SIGNED_OUT}?state=bye"));
    assert!(
        res.headers().get_all("set-cookie").iter().count() >= 3,
        "cookies cleared"
    );
    assert_eq!(
        srv.get_auth("/oauth/userinfo", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = open(&srv.url("/auth/sessions"), &cookies).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the browser's session is over");
    // The same hint again, at a new browser session: its grant is over, nothing ends.
    let again = browser(&srv, "leaver").await;
    let res = open(&logout(vec![("id_token_hint", id_token)]), &again).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("set-cookie").is_none());
    assert_eq!(open(&srv.url("/auth/sessions"), &again).await.status(), StatusCode::OK);
}

#[per_backend]
pub async fn outstanding_codes_die_with_the_grant_and_the_browser_session(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("coder").await;
    let app = register_app(&srv, "Coded", true, false, &["openid", "email"]).await;
    let me = srv.login("coder", PASSWORD).await;
    // Taken back: a code issued before does not open a session after.
    let cookies = browser(&srv, "coder").await;
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    let res = srv.delete_auth(&format!("/auth/consents/{}", app.id), &me.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        oauth_error(exchange(&srv, &app, &code, &verifier).await).await.1,
        "invalid_grant"
    );
    // Signed out everywhere: the same.
    let cookies = browser(&srv, "coder").await;
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    let res = srv.post_auth("/auth/logout-all", &me.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        oauth_error(exchange(&srv, &app, &code, &verifier).await).await.1,
        "invalid_grant"
    );
    // Racing each other: a code and its replay, an exchange and the grant taken back, an
    // exchange and signing out everywhere. Whatever wins, nothing the loser should have
    // ended lives on.
    let delay = |i: u64| tokio::time::sleep(std::time::Duration::from_micros(i * 700));
    let dead = async |res: reqwest::Response, what: String| {
        if res.status() == StatusCode::OK {
            let t: Value = res.json().await.unwrap();
            let res = srv
                .get_auth("/oauth/userinfo", t["access_token"].as_str().unwrap())
                .await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        }
    };
    for i in 0..30u64 {
        let cookies = browser(&srv, "coder").await;
        let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
        let replay = async {
            delay(i % 10).await;
            exchange(&srv, &app, &code, &verifier).await
        };
        let (first, _) = tokio::join!(exchange(&srv, &app, &code, &verifier), replay);
        dead(first, format!("trial {i}: a replayed code's session lives")).await;
    }
    for i in 0..15u64 {
        let cookies = browser(&srv, "coder").await;
        let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
        let me = srv.login("coder", PASSWORD).await;
        let revoke = async {
            delay(i % 5).await;
            srv.delete_auth(&format!("/auth/consents/{}", app.id), &me.access).await
        };
        let (first, _) = tokio::join!(exchange(&srv, &app, &code, &verifier), revoke);
        dead(
            first,
            format!("trial {i}: a session opened as its grant was taken back lives"),
        )
        .await;
    }
    for i in 0..15u64 {
        let cookies = browser(&srv, "coder").await;
        let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
        let me = srv.login("coder", PASSWORD).await;
        let everywhere = async {
            delay(i % 5).await;
            srv.post_auth("/auth/logout-all", &me.access, None).await
        };
        let (first, _) = tokio::join!(exchange(&srv, &app, &code, &verifier), everywhere);
        dead(
            first,
            format!("trial {i}: a session opened during a sign-out everywhere lives"),
        )
        .await;
    }
}

#[per_backend]
pub async fn refresh_scopes_and_the_password_grant(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("scoper").await;
    let app = register_app(&srv, "Scoped", true, false, &["openid", "email", "roles"]).await;
    let cookies = browser(&srv, "scoper").await;
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    let t: Value = exchange(&srv, &app, &code, &verifier).await.json().await.unwrap();
    let refresh = |token: String, scope: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token),
            ("client_id", app.id.clone()),
            ("client_secret", app.secret.clone().unwrap()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s.to_owned()));
        }
        let url = srv.url("/oauth/token");
        async move { http().post(url).form(&form).send().await.unwrap() }
    };
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    // Wider than granted: refused, and the token is not spent.
    let res = refresh(rt.clone(), Some("openid email roles")).await;
    assert_eq!(oauth_error(res).await.1, "invalid_scope");
    // Narrower: the new access token carries only that.
    let res = refresh(rt, Some("openid")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let narrowed: Value = res.json().await.unwrap();
    assert_eq!(narrowed["scope"], "openid");
    let (_, claims) = crate::common::jwt_parts(narrowed["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "openid");
    // The password grant: the application's session and tokens, not first-party ones.
    let res = http()
        .post(srv.url("/oauth/token"))
        .basic_auth(&app.id, app.secret.as_deref())
        .form(&[
            ("grant_type", "password"),
            ("username", "scoper"),
            ("password", PASSWORD),
            ("scope", "openid email"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let pw: Value = res.json().await.unwrap();
    let access = pw["access_token"].as_str().unwrap();
    assert_eq!(crate::common::jwt_parts(access).1["client_id"], app.id.as_str());
    assert!(pw["id_token"].is_string());
    assert_eq!(srv.me_status(access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.get_auth("/oauth/userinfo", access).await.status(), StatusCode::OK);
    let res = refresh(pw["refresh_token"].as_str().unwrap().to_owned(), None).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "its refresh token works at the same endpoint"
    );
    // ...and never for a public client (any page could use its id).
    let public = register_app(&srv, "Public trusted", true, true, &["openid"]).await;
    let res = http()
        .post(srv.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "scoper"),
            ("password", PASSWORD),
            ("client_id", public.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(res).await.1, "unauthorized_client");
    // An application's audience may not be the server's own.
    let refused = srv
        .auth()
        .register_client(ClientRegistration {
            name: ClientName::parse("Confused").unwrap(),
            redirect_uris: vec![RedirectUri::parse(CALLBACK).unwrap()],
            post_logout_redirect_uris: vec![],
            scopes: None,
            public: false,
            trusted: false,
            audience: Some(srv.settings.tokens.audience.clone()),
        })
        .await;
    assert!(matches!(refused, Err(tokengate::auth::AuthError::ServerAudience)));
}

#[per_backend]
pub async fn oidcc_userinfo_get_post_header_post_body_and_scopes(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("infouser").await;
    srv.set_roles("infouser", &["editor"]).await;
    let app = register_app(&srv, "Info", true, false, &["openid", "profile", "email", "roles"]).await;
    let cookies = browser(&srv, "infouser").await;
    let claims_for = async |scope: &str| {
        let (code, verifier) = code_for(&srv, &app, &cookies, &[("scope", scope)]).await;
        let t: Value = exchange(&srv, &app, &code, &verifier).await.json().await.unwrap();
        let access = t["access_token"].as_str().unwrap().to_owned();
        let get: Value = srv.get_auth("/oauth/userinfo", &access).await.json().await.unwrap();
        let header: Value = http()
            .post(srv.url("/oauth/userinfo"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let body: Value = http()
            .post(srv.url("/oauth/userinfo"))
            .form(&[("access_token", access.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(get, header, "GET and POST with the header agree");
        assert_eq!(get, body, "GET and POST with the token in the body agree");
        get
    };
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&claims_for("openid").await), ["sub"]);
    assert_eq!(keys(&claims_for("openid profile").await), ["preferred_username", "sub"]);
    assert_eq!(
        keys(&claims_for("email openid").await),
        ["email", "email_verified", "sub"],
        "scope order"
    );
    let all = claims_for("openid profile email roles").await;
    assert_eq!(all["roles"], json!(["editor"]));
    assert_eq!(all["email_verified"], false);
    // The token in the query string is never read; no token at all is a 401.
    let res = http()
        .get(srv.url("/oauth/userinfo?access_token=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http().post(srv.url("/oauth/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A first-party token: valid, but no application's scopes.
    let me = srv.login("infouser", PASSWORD).await;
    let res = srv.get_auth("/oauth/userinfo", &me.access).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

/// The id_token's `kid`.
fn kid_of(id_token: &str) -> String {
    let (header, _) = crate::common::jwt_parts(id_token);
    header["kid"].as_str().unwrap().to_owned()
}

/// A new sign-in's id_token for `app`.
async fn fresh_id_token(srv: &TestServer, app: &App, cookies: &str) -> String {
    let (code, verifier) = code_for(srv, app, cookies, &[]).await;
    let tokens: Value = exchange(srv, app, &code, &verifier).await.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_owned()
}

async fn jwks_kids(srv: &TestServer) -> Vec<String> {
    let jwks = srv.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[per_backend]
pub async fn the_id_token_key_rotates_like_the_others(b: Backend) {
    // An HS256 server: its JWKS holds only the provider's id_token keys.
    let srv = TestServer::start(b).await;
    srv.register("rotor").await;
    let app = register_app(&srv, "Rotated", true, false, &["openid", "email"]).await;
    let mut cookies = browser(&srv, "rotor").await;
    let first = fresh_id_token(&srv, &app, &cookies).await;
    let old = kid_of(&first);
    assert_eq!(jwks_kids(&srv).await, [old.as_str()]);
    // A routine rotation: the new key is published at once and signs only after the
    // publish-ahead time; the old one keeps verifying one lifetime past that.
    let new = srv
        .auth()
        .rotate_id_token_keys(tokengate::auth::keys::RotateMode::Scheduled)
        .await
        .unwrap();
    assert_ne!(new, old);
    let mut kids = jwks_kids(&srv).await;
    kids.sort();
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert_eq!(kids, both);
    assert_eq!(kid_of(&fresh_id_token(&srv, &app, &cookies).await), old, "not yet due");
    let ttl = srv.auth().access_ttl_secs();
    srv.clock.advance(tokengate::auth::keys::publish_ahead_secs(ttl) as i64);
    srv.auth().reload_keys().await.unwrap();
    let second = fresh_id_token(&srv, &app, &cookies).await;
    assert_eq!(kid_of(&second), new, "due: the new key signs");
    // An id_token of the retired key still works as a logout hint while it verifies.
    let logout = |hint: &str| {
        reqwest::Url::parse_with_params(&srv.url("/oauth/logout"), &[("id_token_hint", hint)])
            .unwrap()
            .to_string()
    };
    assert_eq!(open(&logout(&first), "").await.status(), StatusCode::OK);
    // One lifetime later the retired key is gone: from the JWKS, and as a hint.
    srv.clock.advance(ttl as i64);
    srv.auth().reload_keys().await.unwrap();
    cookies = browser(&srv, "rotor").await;
    assert_eq!(jwks_kids(&srv).await, [new.as_str()]);
    assert_eq!(open(&logout(&first), "").await.status(), StatusCode::BAD_REQUEST);
    // A compromised key: the next one signs at once and the old leaves the JWKS now.
    let third_kid = srv
        .auth()
        .rotate_id_token_keys(tokengate::auth::keys::RotateMode::Revoke)
        .await
        .unwrap();
    assert_eq!(jwks_kids(&srv).await, [third_kid.as_str()]);
    assert_eq!(kid_of(&fresh_id_token(&srv, &app, &cookies).await), third_kid);
    assert_eq!(open(&logout(&second), "").await.status(), StatusCode::BAD_REQUEST);
    // A compromise during a scheduled rotation: the key signing then is a retired one,
    // and it is cut off too, not only the published next key.
    let third = fresh_id_token(&srv, &app, &cookies).await;
    let pending = srv
        .auth()
        .rotate_id_token_keys(tokengate::auth::keys::RotateMode::Scheduled)
        .await
        .unwrap();
    assert_eq!(
        kid_of(&fresh_id_token(&srv, &app, &cookies).await),
        third_kid,
        "not yet due"
    );
    let fifth = srv
        .auth()
        .rotate_id_token_keys(tokengate::auth::keys::RotateMode::Revoke)
        .await
        .unwrap();
    assert_ne!(fifth, pending);
    assert_eq!(jwks_kids(&srv).await, [fifth.as_str()]);
    assert_eq!(open(&logout(&third), "").await.status(), StatusCode::BAD_REQUEST);
    // The access tokens' HS256 key was never touched: the user's token still works.
    let me = srv.user("other").await;
    assert_eq!(srv.get_auth("/me", &me.access).await.status(), StatusCode::OK);
}

#[per_backend]
pub async fn an_mfa_account_signs_in_with_its_code_before_the_app_gets_one(b: Backend) {
    let srv = TestServer::start(b).await;
    let enrolled = crate::mfa::enrol(&srv, "twofa").await;
    let app = register_app(&srv, "Strict", true, false, &["openid", "email"]).await;
    // Not signed in: the authorization endpoint sends the browser to the account page.
    let challenge = tokengate::crypto::pkce::s256("a-verifier-of-forty-three-characters-or-more-0123");
    let params = [
        ("response_type", "code"),
        ("client_id", app.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "openid email"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let url = reqwest::Url::parse_with_params(&srv.url("/oauth/authorize"), &params).unwrap();
    let res = open(url.as_str(), "").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).contains("/account?"), "{}", location(&res));
    // There, the password alone opens no session: the account's second step is asked.
    let res = srv
        .post_json("/auth/cookie/login", json!({"username": "twofa", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("set-cookie").is_none());
    let mfa_token = crate::mfa::mfa_required(&res.json().await.unwrap());
    let res = srv
        .post_json(
            "/auth/cookie/login/mfa",
            json!({"mfa_token": mfa_token, "code": crate::mfa::code(&srv, &enrolled.secret, 0)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = crate::common::cookie_header(&res);
    // Then the app gets its code, and its tokens say how the user signed in.
    let (code, verifier) = code_for(&srv, &app, &cookies, &[]).await;
    let tokens: Value = exchange(&srv, &app, &code, &verifier).await.json().await.unwrap();
    for token in ["id_token", "access_token"] {
        let (_, claims) = crate::common::jwt_parts(tokens[token].as_str().unwrap());
        assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{token}: {claims}");
    }
    // The password grant never skips the second step: an MFA account is refused.
    let mut form = vec![
        ("grant_type", "password"),
        ("username", "twofa"),
        ("password", PASSWORD),
        ("client_id", app.id.as_str()),
    ];
    let secret = app.secret.clone().unwrap();
    form.push(("client_secret", &secret));
    let res = http().post(srv.url("/oauth/token")).form(&form).send().await.unwrap();
    assert_eq!(oauth_error(res).await.1, "invalid_grant");
}
