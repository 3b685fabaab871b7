//! Cookie mode: raw Set-Cookie attributes, no tokens in bodies, CSRF, rotation and
//! reuse, logout clearing cookies, CORS, and the account page's headers.

use std::collections::HashMap;
use tokengate_test_macros::per_backend;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, PASSWORD, TestServer, assert_invalid_token};

/// The cookie names with `Secure` on (the default): prefixed so no subdomain can toss them.
const ACCESS: &str = "__Host-tokengate_access";
const REFRESH: &str = "__Secure-tokengate_refresh";
const CSRF: &str = "__Host-tokengate_csrf";
const DEVICE: &str = "__Host-tokengate_device";

/// name -> full Set-Cookie line, from a response.
fn set_cookies(res: &Response) -> HashMap<String, String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let line = v.to_str().unwrap().to_owned();
            (line.split('=').next().unwrap().to_owned(), line)
        })
        .collect()
}

fn value(line: &str) -> String {
    line.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

/// A browser's cookie jar, kept by hand so every attribute stays visible.
#[derive(Clone, Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn absorb(&mut self, res: &Response) {
        for (name, line) in set_cookies(res) {
            let v = value(&line);
            if line.contains("Max-Age=0") || v.is_empty() {
                self.0.remove(&name);
            } else {
                self.0.insert(name, v);
            }
        }
    }

    /// The Cookie header for `path` (the refresh cookie only under /auth/cookie).
    fn header(&self, path: &str) -> String {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() != REFRESH || path.starts_with("/auth/cookie"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn csrf(&self) -> String {
        self.0[CSRF].clone()
    }
}

async fn send(srv: &TestServer, jar: &Jar, method: Method, path: &str, csrf: Option<&str>) -> Response {
    let mut req = srv
        .http
        .request(method, srv.url(path))
        .header("cookie", jar.header(path));
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    req.send().await.unwrap()
}

async fn cookie_login(srv: &TestServer, username: &str) -> (Jar, Value) {
    let res = srv
        .post_json(
            "/auth/cookie/login",
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut jar = Jar::default();
    jar.absorb(&res);
    (jar, res.json().await.unwrap())
}

#[per_backend]
pub async fn cookie_login_sets_the_three_cookies_and_no_token_in_the_body(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let form = srv
        .http
        .post(srv.url("/auth/cookie/login"))
        .form(&[("username", "alzy"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let c = set_cookies(&form);
    let access = &c[ACCESS];
    let refresh = &c[REFRESH];
    let csrf = &c[CSRF];
    let device = &c[DEVICE];
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            device.split("; ").any(|a| a == attr),
            "device cookie lacks {attr}: {device}"
        );
    }
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=900"] {
        assert!(
            access.split("; ").any(|a| a == attr),
            "access cookie lacks {attr}: {access}"
        );
    }
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth/cookie",
        "Max-Age=604800",
    ] {
        assert!(
            refresh.split("; ").any(|a| a == attr),
            "refresh cookie lacks {attr}: {refresh}"
        );
    }
    assert!(!csrf.contains("HttpOnly"), "the page must read the CSRF cookie");
    assert!(csrf.contains("Secure") && csrf.contains("Path=/"));
    assert_eq!(value(access).split('.').count(), 3, "the access cookie holds the JWT");
    assert_eq!(value(refresh).len(), 43);

    let body = form.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["csrf_token"], value(csrf).as_str());
    assert_eq!(v["expires_in"], 900);
    assert!(v.get("access_token").is_none() && v.get("refresh_token").is_none());
    assert!(!body.contains(&value(access)) && !body.contains(&value(refresh)));

    let (jar, _) = cookie_login(&srv, "alzy").await;
    assert_eq!(jar.0.len(), 4);
}

#[per_backend]
pub async fn protected_routes_accept_the_access_cookie(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let (jar, _) = cookie_login(&srv, "alzy").await;
    for path in ["/me", "/auth/sessions", "/auth/verify"] {
        let res = send(&srv, &jar, Method::GET, path, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // A bad Bearer header is not rescued by a good cookie.
    let res = srv
        .http
        .get(srv.url("/me"))
        .header("cookie", jar.header("/me"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn unsafe_cookie_requests_need_the_csrf_header(b: Backend) {
    let srv = TestServer::start(b).await;
    let bearer = srv.user("alzy").await;
    let (jar, _) = cookie_login(&srv, "alzy").await;
    let body = json!({"current_password": PASSWORD, "new_password": "another-pass-1"});
    for csrf in [None, Some("wrong"), Some("")] {
        let mut req = srv
            .http
            .post(srv.url("/auth/password"))
            .header("cookie", jar.header("/auth/password"))
            .json(&body);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{csrf:?}");
        assert_eq!(
            res.text().await.unwrap(),
            concat!(r#"{"detail":"CSRF token missing or invalid"}"#, "\n")
        );
    }
    for path in [
        "/auth/cookie/refresh",
        "/auth/cookie/logout",
        "/auth/logout",
        "/auth/logout-all",
    ] {
        let res = send(&srv, &jar, Method::POST, path, None).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let res = send(&srv, &jar, Method::POST, path, Some("x")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing above did anything: the session is alive.
    assert_eq!(
        send(&srv, &jar, Method::GET, "/me", None).await.status(),
        StatusCode::OK
    );
    // With the header: accepted.
    let res = srv
        .http
        .post(srv.url("/auth/password"))
        .header("cookie", jar.header("/auth/password"))
        .header("x-csrf-token", jar.csrf())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Bearer callers need no CSRF token (the bearer session was signed out by the change).
    let fresh = srv.login("alzy", "another-pass-1").await;
    let res = srv.post_auth("/auth/logout", &fresh.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(srv.get_auth("/me", &bearer.access).await).await;
}

#[per_backend]
pub async fn cookie_refresh_rotates_and_reuse_kills_the_session(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let (first, _) = cookie_login(&srv, "alzy").await;
    let res = send(&srv, &first, Method::POST, "/auth/cookie/refresh", Some(&first.csrf())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut second = first.clone();
    second.absorb(&res);
    let v: Value = res.json().await.unwrap();
    assert!(v.get("refresh_token").is_none() && v.get("access_token").is_none());
    assert_eq!(v["csrf_token"], second.csrf().as_str());
    assert_ne!(second.0[REFRESH], first.0[REFRESH]);
    assert_ne!(second.0[ACCESS], first.0[ACCESS]);
    assert_eq!(second.csrf(), first.csrf(), "the CSRF token belongs to the session");
    assert_eq!(
        send(&srv, &second, Method::GET, "/me", None).await.status(),
        StatusCode::OK
    );

    // The old refresh cookie comes back: reuse. 401, cookies cleared, session dead.
    let res = send(&srv, &first, Method::POST, "/auth/cookie/refresh", Some(&first.csrf())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let cleared = set_cookies(&res);
    assert_eq!(cleared.len(), 3);
    assert!(cleared.values().all(|l| l.contains("Max-Age=0")));
    assert_eq!(
        send(&srv, &second, Method::GET, "/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = send(
        &srv,
        &second,
        Method::POST,
        "/auth/cookie/refresh",
        Some(&second.csrf()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn cookie_logout_clears_cookies_and_kills_the_session(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let (jar, _) = cookie_login(&srv, "alzy").await;
    let res = send(&srv, &jar, Method::POST, "/auth/cookie/logout", Some(&jar.csrf())).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&res);
    for name in [ACCESS, REFRESH, CSRF] {
        assert!(cleared[name].contains("Max-Age=0"), "{name}");
    }
    assert!(cleared[REFRESH].contains("Path=/auth/cookie"));
    assert!(
        !cleared.contains_key(DEVICE),
        "signing out keeps the browser a known device"
    );
    // The old cookies are dead even if a client kept them.
    assert_eq!(
        send(&srv, &jar, Method::GET, "/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = send(&srv, &jar, Method::POST, "/auth/cookie/refresh", Some(&jar.csrf())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn cookie_logout_after_access_expiry_uses_the_refresh_cookie(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let (mut jar, _) = cookie_login(&srv, "alzy").await;
    // The browser dropped the expired access cookie.
    jar.0.remove(ACCESS);
    let keep = jar.clone();
    let res = send(&srv, &jar, Method::POST, "/auth/cookie/logout", Some(&jar.csrf())).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = send(&srv, &keep, Method::POST, "/auth/cookie/refresh", Some(&keep.csrf())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[per_backend]
pub async fn insecure_cookies_only_when_configured(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.http.cookie_secure = false).await;
    srv.register("alzy").await;
    let res = srv
        .post_json("/auth/cookie/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    for line in set_cookies(&res).values() {
        assert!(!line.contains("Secure"), "{line}");
        assert!(line.contains("SameSite"), "{line}");
        assert!(
            line.starts_with("tokengate_"),
            "browsers refuse prefixed cookies without Secure: {line}"
        );
    }
}

#[per_backend]
pub async fn cors_allows_configured_origins_only(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.http.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        srv.http
            .request(Method::OPTIONS, srv.url("/auth/cookie/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-csrf-token")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success());
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed_headers = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed_headers.contains("x-csrf-token"));
    let evil = preflight("https://evil.example.com").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A simple request from an allowed origin is answered with the origin, never "*".
    let res = srv
        .http
        .get(srv.url("/healthz"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");

    // Without configuration there is no CORS at all.
    let plain = TestServer::start(b).await;
    let res = plain
        .http
        .request(Method::OPTIONS, plain.url("/auth/cookie/login"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[per_backend]
pub async fn account_page_is_served_with_strict_security_headers(b: Backend) {
    let srv = TestServer::start(b).await;
    for (path, ty) in [
        ("/account", "text/html"),
        ("/account/app.js", "text/javascript"),
        ("/account/app.css", "text/css"),
    ] {
        let res = srv.http.get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with(ty));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let html = srv
        .http
        .get(srv.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains("onclick"));
}

#[per_backend]
pub async fn a_cookie_sent_twice_is_refused(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let (jar, _) = cookie_login(&srv, "alzy").await;
    // A second cookie of the same name (tossed by a sibling subdomain, say): which is
    // ours cannot be told, so neither is used.
    let header = format!("{}; {ACCESS}=planted.by.someone", jar.header("/me"));
    let res = srv
        .http
        .get(srv.url("/me"))
        .header("cookie", header)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("twice"), "{v}");
}

#[per_backend]
pub async fn csrf_token_is_bound_to_its_session(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("victim").await;
    srv.register("mallory").await;
    let (victim, _) = cookie_login(&srv, "victim").await;
    let (mallory, _) = cookie_login(&srv, "mallory").await;
    // Mallory plants her own CSRF cookie in the victim's browser and sends the matching
    // header: the double submit matches, but the token is not the victim session's.
    let mut tossed = victim.clone();
    tossed.0.insert(CSRF.into(), mallory.csrf());
    for path in ["/auth/logout-all", "/auth/cookie/refresh", "/auth/cookie/logout"] {
        let res = send(&srv, &tossed, Method::POST, path, Some(&mallory.csrf())).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        send(&srv, &victim, Method::GET, "/me", None).await.status(),
        StatusCode::OK
    );
    // The session's own token works.
    let res = send(&srv, &victim, Method::POST, "/auth/logout-all", Some(&victim.csrf())).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[per_backend]
pub async fn cross_site_cookie_login_is_refused(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.http.cors_origins = vec!["https://app.example.com".into()]).await;
    srv.register("mallory").await;
    let login = |headers: &[(&'static str, &'static str)]| {
        let mut req = srv
            .http
            .post(srv.url("/auth/cookie/login"))
            .form(&[("username", "mallory"), ("password", PASSWORD)]);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    // A form on evil.example posting the attacker's credentials (login CSRF).
    for hint in [
        vec![("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let res = login(&hint).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{hint:?}");
        assert!(set_cookies(&res).is_empty(), "no cookie for a cross-site login");
        let v: Value = res.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("Cross-site"), "{v}");
    }
    // Our own page, an allowed origin, and non-browser clients sign in.
    let own = format!("http://{}", srv.base.trim_start_matches("http://"));
    let res = srv
        .http
        .post(srv.url("/auth/cookie/login"))
        .header("origin", own)
        .header("sec-fetch-site", "same-origin")
        .form(&[("username", "mallory"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = login(&[("origin", "https://app.example.com"), ("sec-fetch-site", "same-site")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(login(&[]).await.unwrap().status(), StatusCode::OK);
}

#[per_backend]
pub async fn cookie_refresh_in_the_reuse_grace_repeats_the_successor(b: Backend) {
    let srv = TestServer::start_with(b, |s| s.tokens.refresh_reuse_grace_secs = 2).await;
    srv.register("alzy").await;
    let (first, _) = cookie_login(&srv, "alzy").await;
    // Two tabs refresh with the same cookie, one after the other.
    let res = send(&srv, &first, Method::POST, "/auth/cookie/refresh", Some(&first.csrf())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut tab_a = first.clone();
    tab_a.absorb(&res);
    let res = send(&srv, &first, Method::POST, "/auth/cookie/refresh", Some(&first.csrf())).await;
    assert_eq!(res.status(), StatusCode::OK, "inside the grace: not a reuse");
    let mut tab_b = first.clone();
    tab_b.absorb(&res);
    assert_eq!(tab_a.0[REFRESH], tab_b.0[REFRESH], "the same successor");
    assert_ne!(tab_b.0[REFRESH], first.0[REFRESH]);
    for tab in [&tab_a, &tab_b] {
        assert_eq!(send(&srv, tab, Method::GET, "/me", None).await.status(), StatusCode::OK);
    }
    // Past the grace, the old cookie is a reuse as ever.
    srv.clock.advance(3);
    let res = send(&srv, &first, Method::POST, "/auth/cookie/refresh", Some(&first.csrf())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&srv, &tab_a, Method::GET, "/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
