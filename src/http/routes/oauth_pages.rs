//! `/oauth/authorize`: the authorization endpoint, a page (not part of the JSON API's
//! document). It reads the browser's cookie session: signed out, it sends the user to
//! the account page to sign in and come back; it shows the consent page, takes its
//! answer, and sends the browser back to the application.
//!
//! Every page here: no script, styles from `/account`, never framed, never cached, no
//! Referer; a form may post only here and, after, lead only to the application.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::Principal;
use crate::auth::oauth::{
    AuthorizeParams, AuthorizeRefusal, Authorized, ConsentPrompt, LoggedOut, LogoutParams, LogoutRefusal,
};
use crate::http::AppState;
use crate::http::cookies::Kind;
use crate::http::error::ApiError;
use crate::http::extract::Client;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorize", get(authorize).post(authorize_post))
        .route("/oauth/logout", get(logout))
}

/// The parameters this endpoint reads; any other is ignored.
const PARAMS: [&str; 12] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "request",
    "request_uri",
];

/// Set on the way back from a sign-in asked for by `prompt=login` or `max_age`.
const FRESH: &str = "tg_fresh";

/// A request's pairs (query or form), each known parameter at most once.
struct Request {
    pairs: Vec<(String, String)>,
}

impl Request {
    fn parse(raw: &str) -> Result<Self, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw).map_err(|_| "The request's parameters could not be read.".to_owned())?;
        for name in PARAMS.iter().chain([&FRESH]) {
            if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
                return Err(format!("The parameter {name} is given more than once."));
            }
        }
        Ok(Self { pairs })
    }

    fn get(&self, name: &str) -> Option<String> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn params(&self) -> AuthorizeParams {
        AuthorizeParams {
            response_type: self.get("response_type"),
            client_id: self.get("client_id"),
            redirect_uri: self.get("redirect_uri"),
            scope: self.get("scope"),
            state: self.get("state"),
            nonce: self.get("nonce"),
            code_challenge: self.get("code_challenge"),
            code_challenge_method: self.get("code_challenge_method"),
            prompt: self.get("prompt"),
            max_age: self.get("max_age"),
            request: self.get("request"),
            request_uri: self.get("request_uri"),
            fresh_mark: self.get(FRESH),
        }
    }

    /// The request again, as a URL of this endpoint (the account page comes back to
    /// it after a sign-in), with `fresh_after` when a new sign-in is asked for.
    fn again(&self, prefix: &str, fresh_mark: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs.iter().filter(|(k, _)| PARAMS.contains(&k.as_str())) {
            q.append_pair(k, v);
        }
        if let Some(mark) = fresh_mark {
            q.append_pair(FRESH, mark);
        }
        format!("{prefix}/oauth/authorize?{}", q.finish())
    }
}

/// The signed-in user of the browser: its access cookie, if live (never a Bearer
/// header: this is a page a browser opens).
async fn browser_user(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    let token = state.cookies.read(headers, Kind::Access).ok()??;
    state.auth.authenticate(&token).await.ok()
}

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let req = match Request::parse(query.as_deref().unwrap_or_default()) {
        Ok(r) => r,
        Err(why) => return error_page(&state, &why),
    };
    let who = browser_user(&state, &headers).await;
    let outcome = state.auth.authorize(&req.params(), who.as_ref(), &client).await;
    answer(&state, &req, outcome, StatusCode::FOUND)
}

/// `POST /oauth/authorize`: an authorization request as a form (OpenID Connect Core
/// §3.1.2.1), or the consent page's answer (`consent` and `csrf_token`).
pub async fn authorize_post(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !crate::http::body::is_form(&headers) {
        return error_page(
            &state,
            "The request must be a form (application/x-www-form-urlencoded).",
        );
    }
    let req = match std::str::from_utf8(&body)
        .map_err(|_| "The form is not UTF-8.".to_owned())
        .and_then(Request::parse)
    {
        Ok(r) => r,
        Err(why) => return error_page(&state, &why),
    };
    let who = browser_user(&state, &headers).await;
    let outcome = match (req.get("consent").as_deref(), &who) {
        (None, _) => state.auth.authorize(&req.params(), who.as_ref(), &client).await,
        (Some(decision), Some(who)) => {
            let csrf = req.get("csrf_token").unwrap_or_default();
            state
                .auth
                .consent_decision(&req.params(), who, decision == "allow", &csrf, &client)
                .await
        }
        // Signed out between the page and the answer: sign in, then be asked again.
        (Some(_), None) => Ok(Authorized::SignIn { fresh_mark: None }),
    };
    answer(&state, &req, outcome, StatusCode::SEE_OTHER)
}

fn answer(
    state: &AppState,
    req: &Request,
    outcome: Result<Authorized, AuthorizeRefusal>,
    redirect: StatusCode,
) -> Response {
    let prefix = &state.path_prefix;
    match outcome {
        Ok(Authorized::Redirect(to)) | Err(AuthorizeRefusal::Redirect(to)) => go(redirect, &to),
        Ok(Authorized::SignIn { fresh_mark }) => {
            let back = req.again(prefix, fresh_mark.as_deref());
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("continue", &back);
            if fresh_mark.is_some() {
                q.append_pair("fresh", "1");
            }
            go(StatusCode::SEE_OTHER, &format!("{prefix}/account?{}", q.finish()))
        }
        Ok(Authorized::Consent(prompt)) => consent_page(state, req, &prompt),
        Err(AuthorizeRefusal::Page(why)) => error_page(state, &why),
        Err(AuthorizeRefusal::Failed(e)) => ApiError::from(e).into_response(),
    }
}

fn go(status: StatusCode, to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(location) => {
            let mut res = status.into_response();
            res.headers_mut().insert(header::LOCATION, location);
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res.headers_mut()
                .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            res
        }
        Err(_) => ApiError::internal("a redirect URL is not a header value").into_response(),
    }
}

/// `GET /oauth/logout`: RP-initiated logout. With a valid `id_token_hint`, that grant's
/// session ends, and the browser's session here when it is the same user's; then back to
/// the registered `post_logout_redirect_uri` (with `state`), or a page.
pub async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(_) => return error_page(&state, "The request's parameters could not be read."),
    };
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let params = LogoutParams {
        id_token_hint: get("id_token_hint"),
        client_id: get("client_id"),
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        state: get("state"),
    };
    let who = browser_user(&state, &headers).await;
    let prefix = &state.path_prefix;
    let (mut res, ended) = match state.auth.end_session(&params, who.as_ref(), &client).await {
        Ok(LoggedOut::Redirect { to, browser_ended }) => (go(StatusCode::FOUND, &to), browser_ended),
        Ok(LoggedOut::Done { browser_ended }) => {
            let content = format!(
                "<h1>Signed out</h1><p>You are signed out of the application{}.</p>\
                 <p><a href=\"{prefix}/account\">Your account page</a></p>",
                if browser_ended { " and of this server" } else { "" }
            );
            (
                page(&state, StatusCode::OK, "Signed out", &content, None),
                browser_ended,
            )
        }
        Ok(LoggedOut::Nothing { back }) => {
            let back = back
                .map(|b| format!("<p><a href=\"{}\">Back to the application</a></p>", escape(&b)))
                .unwrap_or_default();
            let content = format!(
                "<h1>Sign out</h1><p>Nothing was signed out: the request did not say which sign-in to end. \
                 To sign out of this server, use <a href=\"{prefix}/account\">your account page</a>.</p>{back}"
            );
            (page(&state, StatusCode::OK, "Sign out", &content, None), false)
        }
        Err(LogoutRefusal::Page(why)) => (error_page(&state, &why), false),
        Err(LogoutRefusal::Failed(e)) => (ApiError::from(e).into_response(), false),
    };
    if ended {
        for cookie in state.cookies.cleared() {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    res
}

/// Text for HTML: every character that could end an element or an attribute escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a scope lets the application have, in the user's words.
fn scope_text(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account's id)".into(),
        "profile" => "Your username".into(),
        "email" => "Your email address".into(),
        "roles" => "Your roles".into(),
        "offline_access" => "Stay connected while you are away".into(),
        other => format!("Access to {}", escape(other)),
    }
}

/// A page of ours: `content`, under a CSP with no script and forms posting only here
/// (and, after, leading only to `form_target`, the application's origin).
fn page(state: &AppState, status: StatusCode, title: &str, content: &str, form_target: Option<&str>) -> Response {
    let prefix = &state.path_prefix;
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"{prefix}/account/app.css\"></head>\
         <body><main>{content}</main></body></html>\n",
        title = escape(title),
    );
    // Chromium applies form-action to the redirect that follows a form's post, so the
    // application's origin is allowed there too.
    let form_action = match form_target {
        Some(t) => format!("'self' {t}"),
        None => "'self'".into(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let headers: [(HeaderName, HeaderValue); 5] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (status, headers, body).into_response()
}

/// The request could not be answered, and nothing is sent to the application.
fn error_page(state: &AppState, why: &str) -> Response {
    let content = format!(
        "<h1>This sign-in cannot go on</h1><p>{}</p><p>Go back to the application and try again; \
         if this persists, tell its developers.</p>",
        escape(why)
    );
    page(state, StatusCode::BAD_REQUEST, "Sign-in error", &content, None)
}

/// Where the application's redirect URI may be led after the consent form: its
/// origin (a web app), or its scheme (a native app).
fn application_origin(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => Some(format!("{}:", url.scheme())),
    }
}

fn consent_page(state: &AppState, req: &Request, prompt: &ConsentPrompt) -> Response {
    let prefix = &state.path_prefix;
    let app = escape(prompt.client_name.as_str());
    let scopes: String = prompt
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", scope_text(s.as_str())))
        .collect();
    // The request itself, sent back with the answer (checked again in full), but not
    // `prompt`: the answer is the consent it asked for.
    let hidden: String = req
        .pairs
        .iter()
        .filter(|(k, _)| (PARAMS.contains(&k.as_str()) && k != "prompt") || k == FRESH)
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let content = format!(
        "<h1>Allow {app}?</h1>\
         <p>You are signed in as <strong>{user}</strong>. {app} asks to:</p><ul>{scopes}</ul>\
         <form method=\"post\" action=\"{prefix}/oauth/authorize\">{hidden}\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"consent\" value=\"allow\" id=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"consent\" value=\"deny\" id=\"deny\">Deny</button></form>\
         <p>You can take this back at any time on <a href=\"{prefix}/account\">your account page</a>.</p>",
        user = escape(prompt.username.as_str()),
        csrf = escape(&prompt.csrf_token),
    );
    let target = req.get("redirect_uri").as_deref().and_then(application_origin);
    page(
        state,
        StatusCode::OK,
        &format!("Allow {}?", prompt.client_name.as_str()),
        &content,
        target.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert!(Request::parse("client_id=a&client_id=b").is_err());
        assert!(Request::parse("unknown=a&unknown=b").is_ok());
    }

    #[test]
    fn the_way_back_keeps_only_known_parameters() {
        let r = Request::parse("client_id=a&x=1&state=s%20t&tg_fresh=5").unwrap();
        let again = r.again("/p", Some("9.tag"));
        assert_eq!(again, "/p/oauth/authorize?client_id=a&state=s+t&tg_fresh=9.tag");
    }

    #[test]
    fn the_application_origin_for_form_action() {
        assert_eq!(
            application_origin("https://app.example.com/cb?x").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            application_origin("http://127.0.0.1:9000/cb").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            application_origin("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
    }
}
