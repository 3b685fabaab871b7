//! The authorization endpoint's rules (RFC 6749 §4.1, RFC 7636, OpenID Connect Core
//! §3.1.2, RFC 9700): which requests are answered at all, which go back to the
//! application with an error, and when the user must sign in or be asked.
//!
//! Order matters: until the client and its redirect URI are known to match, nothing is
//! sent anywhere (an error page only); after, every error goes back to the application
//! with `state` and `iss`.

use super::ProviderPolicy;
use crate::auth::sessions::net_of;
use crate::auth::{AuthError, AuthService, Principal};
use crate::crypto::tokens::AuthCode;
use crate::domain::{ClientId, ClientName, Scope, UnixTime, Username};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::LimitKey;
use crate::store::{NewCode, StoredClient, StoredCode};

/// An authorization code lives this long (RFC 6749 §4.1.2: "a maximum lifetime of 10
/// minutes is RECOMMENDED"; one minute is what an app needs to exchange it).
pub const CODE_TTL_SECS: u64 = 60;

/// An authorization request's parameters as sent (query or form); unknown ones are
/// ignored by the HTTP edge.
#[derive(Clone, Debug, Default)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// Set by this server on the way back from a sign-in that `prompt=login` or
    /// `max_age` asked for (a time and its MAC, see [`AuthService::fresh_mark`]): a
    /// sign-in at or after that time satisfies them.
    pub fresh_mark: Option<String>,
}

/// Why a request was refused.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// Shown to the user: the client or its redirect URI is unknown, so nothing may be
    /// sent to it.
    Page(String),
    /// Sent back to the application (its redirect URI with `error`, `state`, `iss`).
    Redirect(String),
    /// Not a refusal of the request: the server could not answer now.
    Failed(AuthError),
}

impl From<AuthError> for AuthorizeRefusal {
    fn from(e: AuthError) -> Self {
        Self::Failed(e)
    }
}

impl From<crate::store::StoreError> for AuthorizeRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Failed(e.into())
    }
}

/// What the endpoint does next.
#[derive(Debug)]
pub enum Authorized {
    /// Back to the application: this URL (with a code, or `access_denied`).
    Redirect(String),
    /// The user must sign in first; with `fresh_mark`, again even while signed in (the
    /// request comes back with the mark, and a sign-in since it was made satisfies it).
    SignIn { fresh_mark: Option<String> },
    /// The user must be asked.
    Consent(ConsentPrompt),
}

/// What the consent page shows and sends back.
#[derive(Debug)]
pub struct ConsentPrompt {
    pub client_id: ClientId,
    pub client_name: ClientName,
    pub scopes: Vec<Scope>,
    /// Who is signed in (so a user in the wrong account can tell).
    pub username: Username,
    /// The session's CSRF token: the answer must carry it.
    pub csrf_token: String,
}

/// A request whose client and redirect URI match, and whose every parameter is valid.
struct ValidRequest {
    client: StoredClient,
    redirect_uri: String,
    scopes: Vec<Scope>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Prompt,
    max_age: Option<u64>,
    /// Verified: a time this server set.
    fresh_after: Option<UnixTime>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

/// Whether `presented` is one of the client's redirect URIs: exactly, or for a loopback
/// `http` one, exactly but for the port (RFC 8252 §7.3: a native app listens on a port
/// the system gives it).
fn redirect_uri_matches(client: &StoredClient, presented: &str) -> bool {
    client.redirect_uris.iter().any(|r| {
        let registered = r.as_str();
        if registered == presented {
            return true;
        }
        let (Ok(mut a), Ok(mut b)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
            return false;
        };
        let loopback = |u: &url::Url| {
            u.scheme() == "http"
                && match u.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                }
        };
        // The presented one must also be in normal form: what is compared is what the
        // browser will be sent to.
        if !loopback(&a) || b.as_str() != presented {
            return false;
        }
        let _ = a.set_port(None);
        let _ = b.set_port(None);
        a == b
    })
}

/// A code challenge for S256: base64url of 32 bytes, unpadded (RFC 7636 §4.2).
fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `base` with `pairs` appended to its query.
pub(super) fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.into()
        }
        // Redirect URIs are parsed when they are registered and matched before use.
        Err(_) => base.to_owned(),
    }
}

impl ValidRequest {
    /// The application's redirect URI with `error` (RFC 6749 §4.1.2.1), `state` and
    /// `iss` (RFC 9207).
    fn error(&self, provider: &ProviderPolicy, error: &str, description: &str) -> String {
        error_redirect(&self.redirect_uri, self.state.as_deref(), provider, error, description)
    }
}

fn error_redirect(uri: &str, state: Option<&str>, provider: &ProviderPolicy, error: &str, description: &str) -> String {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &provider.issuer));
    with_query(uri, &pairs)
}

impl AuthService {
    /// Check a request: the client and its redirect URI first (refused on a page), then
    /// every other parameter (refused back to the application).
    async fn authorization_request(&self, p: &AuthorizeParams) -> Result<ValidRequest, AuthorizeRefusal> {
        let page = |why: &str| AuthorizeRefusal::Page(why.to_owned());
        let client_id = p
            .client_id
            .as_deref()
            .ok_or_else(|| page("The request names no application (client_id)."))?;
        let unknown = || page("The application that sent you here is not registered with this server.");
        let id: ClientId = client_id.parse().map_err(|_| unknown())?;
        let client = self.store.client(id).await?.ok_or_else(unknown)?;
        let redirect_uri = p
            .redirect_uri
            .as_deref()
            .ok_or_else(|| page("The request names no redirect URI (redirect_uri)."))?;
        if !redirect_uri_matches(&client, redirect_uri) {
            return Err(page(
                "The address this application asked to send you back to is not one it registered.",
            ));
        }
        // From here on, errors go back to the application. A state too long to echo is
        // not echoed.
        let state = p.state.clone().filter(|s| s.len() <= 2048);
        let provider = &self.provider;
        let refuse = |error: &str, description: &str| {
            AuthorizeRefusal::Redirect(error_redirect(
                redirect_uri,
                state.as_deref(),
                provider,
                error,
                description,
            ))
        };
        if p.state.as_ref().is_some_and(|s| s.len() > 2048) {
            return Err(refuse("invalid_request", "state is longer than 2048 bytes"));
        }
        if p.request.is_some() {
            return Err(refuse("request_not_supported", "request objects are not supported"));
        }
        if p.request_uri.is_some() {
            return Err(refuse("request_uri_not_supported", "request_uri is not supported"));
        }
        match p.response_type.as_deref() {
            None => return Err(refuse("invalid_request", "response_type is required")),
            Some("code") => {}
            Some(_) => {
                return Err(refuse(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        let scopes = parse_scopes(p.scope.as_deref().unwrap_or_default())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| refuse("invalid_scope", "scope is missing or malformed"))?;
        if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            return Err(refuse(
                "invalid_scope",
                &format!("scope {:?} is not allowed for this application", s.as_str()),
            ));
        }
        // PKCE for every client, S256 only (RFC 9700 §2.1.1): `plain` would hand the
        // verifier to whoever sees the request.
        let code_challenge = match (p.code_challenge.as_deref(), p.code_challenge_method.as_deref()) {
            (None, _) => return Err(refuse("invalid_request", "code_challenge is required (PKCE, S256)")),
            (Some(_), None | Some("plain")) => {
                return Err(refuse("invalid_request", "code_challenge_method must be S256"));
            }
            (Some(c), Some("S256")) if valid_challenge(c) => c.to_owned(),
            (Some(_), Some("S256")) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge must be 43 base64url characters",
                ));
            }
            (Some(_), Some(_)) => return Err(refuse("invalid_request", "code_challenge_method must be S256")),
        };
        if p.nonce.as_ref().is_some_and(|n| n.len() > 512) {
            return Err(refuse("invalid_request", "nonce is longer than 512 bytes"));
        }
        let mut prompt = Prompt::default();
        for value in p.prompt.as_deref().unwrap_or_default().split_whitespace() {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // One account per browser here: nothing to choose.
                "select_account" => {}
                other => return Err(refuse("invalid_request", &format!("unknown prompt value {other:?}"))),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(refuse(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match p.max_age.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.parse::<u64>()
                    .map_err(|_| refuse("invalid_request", "max_age must be a number of seconds"))?,
            ),
        };
        let fresh_after = p
            .fresh_mark
            .as_deref()
            .and_then(|m| self.fresh_after(m, client.id, &code_challenge, self.clock.now()));
        Ok(ValidRequest {
            redirect_uri: redirect_uri.to_owned(),
            client,
            scopes,
            state,
            nonce: p.nonce.clone(),
            code_challenge,
            prompt,
            max_age,
            fresh_after,
        })
    }

    /// Answer an authorization request for the browser's signed-in user, if any (its
    /// cookie session): a code, a sign-in first, or the consent page.
    pub async fn authorize(
        &self,
        p: &AuthorizeParams,
        browser: Option<&Principal>,
        client: &ClientInfo,
    ) -> Result<Authorized, AuthorizeRefusal> {
        let req = self.authorization_request(p).await?;
        let now = self.clock.now();
        let Some(who) = browser.filter(|w| w.session.client.is_none()) else {
            if req.prompt.none {
                return Ok(Authorized::Redirect(req.error(
                    &self.provider,
                    "login_required",
                    "the user is not signed in",
                )));
            }
            return Ok(Authorized::SignIn { fresh_mark: None });
        };
        if self.needs_new_sign_in(&req, who, now) {
            if req.prompt.none {
                return Ok(Authorized::Redirect(req.error(
                    &self.provider,
                    "login_required",
                    "a new sign-in is required",
                )));
            }
            return Ok(Authorized::SignIn {
                fresh_mark: Some(self.fresh_mark(now, &req)),
            });
        }
        let granted = self.store.consent(who.user.id, req.client.id).await?;
        let covered = granted
            .as_ref()
            .is_some_and(|g| req.scopes.iter().all(|s| g.contains(s)));
        let ask = req.prompt.consent || (!req.client.trusted && !covered);
        if ask {
            if req.prompt.none {
                return Ok(Authorized::Redirect(req.error(
                    &self.provider,
                    "consent_required",
                    "the user has not allowed this application",
                )));
            }
            return Ok(Authorized::Consent(ConsentPrompt {
                client_id: req.client.id,
                client_name: req.client.name.clone(),
                scopes: req.scopes.clone(),
                username: who.user.username.clone(),
                csrf_token: self.csrf_token(who.session.id),
            }));
        }
        if !covered {
            // A trusted application is not asked, but its access is listed and can be
            // taken back like any other.
            self.remember_consent(who, &req, granted, client).await?;
        }
        self.issue_code(who, &req, client).await.map(Authorized::Redirect)
    }

    /// The user's answer on the consent page (`csrf_token`: the one the page was given).
    pub async fn consent_decision(
        &self,
        p: &AuthorizeParams,
        who: &Principal,
        allow: bool,
        csrf_token: &str,
        client: &ClientInfo,
    ) -> Result<Authorized, AuthorizeRefusal> {
        let req = self.authorization_request(p).await?;
        // A page of ours, in this session: another site cannot answer for the user.
        if who.session.client.is_some() || !self.csrf_matches(who.session.id, csrf_token) {
            return Err(AuthorizeRefusal::Page(
                "This answer did not come from the consent page of your session. Start again from the application."
                    .into(),
            ));
        }
        if !allow {
            return Ok(Authorized::Redirect(req.error(
                &self.provider,
                "access_denied",
                "the user did not allow the application",
            )));
        }
        // `max_age` holds at the answer too (the page may have been open a while).
        let now = self.clock.now();
        if self.needs_new_sign_in(&req, who, now) {
            return Ok(Authorized::SignIn {
                fresh_mark: Some(self.fresh_mark(now, &req)),
            });
        }
        let granted = self.store.consent(who.user.id, req.client.id).await?;
        self.remember_consent(who, &req, granted, client).await?;
        self.issue_code(who, &req, client).await.map(Authorized::Redirect)
    }

    /// `prompt=login`, or a `max_age` the browser's sign-in is older than, unless the
    /// request came back with a mark made before that sign-in.
    fn needs_new_sign_in(&self, req: &ValidRequest, who: &Principal, now: UnixTime) -> bool {
        let signed_in_at = who.session.auth.at;
        let too_old = req
            .max_age
            .is_some_and(|max| now.0.saturating_sub(signed_in_at.0) > i64::try_from(max).unwrap_or(i64::MAX));
        let fresh_enough = req.fresh_after.is_some_and(|after| signed_in_at >= after);
        (req.prompt.login || too_old) && !fresh_enough
    }

    /// The mark a request carries back from a new sign-in asked for at `at`: the time and
    /// a MAC of it with the request's client and PKCE challenge, so that no one (a link
    /// made elsewhere, a mark copied from another request) can claim a sign-in was had.
    fn fresh_mark(&self, at: UnixTime, req: &ValidRequest) -> String {
        let tag = self
            .macs
            .csrf
            .tag(fresh_message(at, req.client.id, &req.code_challenge).as_bytes());
        format!("{}.{tag}", at.0)
    }

    /// The time of a mark this server made for this client and challenge, within
    /// [`FRESH_MARK_TTL_SECS`]; `None` for anything else.
    fn fresh_after(&self, mark: &str, client: ClientId, challenge: &str, now: UnixTime) -> Option<UnixTime> {
        let (at, tag) = mark.split_once('.')?;
        let at = UnixTime(at.parse().ok()?);
        let recent = at <= now && now.0 - at.0 <= FRESH_MARK_TTL_SECS;
        (recent
            && self
                .macs
                .csrf
                .verify(fresh_message(at, client, challenge).as_bytes(), tag))
        .then_some(at)
    }

    /// Store what the user allows now: what they allowed before, and this request's.
    async fn remember_consent(
        &self,
        who: &Principal,
        req: &ValidRequest,
        granted: Option<Vec<Scope>>,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let mut scopes = granted.unwrap_or_default();
        for s in &req.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        self.store
            .save_consent(who.user.id, req.client.id, scopes, self.clock.now())
            .await?;
        self.events.record(
            AuthEvent::ConsentGranted,
            Some(who.user.id),
            Some(who.session.id),
            client,
        );
        tracing::info!(client_id = %req.client.id, scope = %Scope::join(&req.scopes), "OAuth consent recorded");
        Ok(())
    }

    /// A code for the signed-in user, and the URL that takes it to the application.
    async fn issue_code(
        &self,
        who: &Principal,
        req: &ValidRequest,
        client: &ClientInfo,
    ) -> Result<String, AuthorizeRefusal> {
        // Each code is a row until its minute (and the purge's grace) is over: a browser
        // issues them at the refresh rate, as it would refresh.
        self.limit(LimitKey::RefreshIp(net_of(client)), AuthEvent::RefreshLimited, client)
            .await?;
        let now = self.clock.now();
        let (code, hash) = AuthCode::generate().map_err(AuthError::internal)?;
        self.store
            .save_code(NewCode {
                hash,
                code: StoredCode {
                    client: req.client.id,
                    user: who.user.id,
                    redirect_uri: req.redirect_uri.clone(),
                    code_challenge: req.code_challenge.clone(),
                    nonce: req.nonce.clone(),
                    scopes: req.scopes.clone(),
                    auth: who.session.auth,
                    user_stamp: who.user.security_stamp,
                    browser_session: who.session.id,
                    expires_at: now.plus(CODE_TTL_SECS),
                },
                now,
            })
            .await?;
        self.events
            .record(AuthEvent::CodeIssued, Some(who.user.id), Some(who.session.id), client);
        let mut pairs = vec![("code", code.expose())];
        if let Some(s) = req.state.as_deref() {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &self.provider.issuer));
        Ok(with_query(&req.redirect_uri, &pairs))
    }
}

/// A mark of a new sign-in asked for is good this long (a sign-in takes minutes at most).
const FRESH_MARK_TTL_SECS: i64 = 600;

/// What a fresh mark's MAC covers.
fn fresh_message(at: UnixTime, client: ClientId, challenge: &str) -> String {
    format!("oauth-fresh:{}:{client}:{challenge}", at.0)
}

/// Space-separated scopes, each valid, each once; `None` if one is not.
pub(super) fn parse_scopes(raw: &str) -> Option<Vec<Scope>> {
    let mut out: Vec<Scope> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        let scope = Scope::parse(s).ok()?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RedirectUri;

    fn client(uris: &[&str]) -> StoredClient {
        StoredClient {
            id: ClientId::new(),
            name: ClientName::parse("App").unwrap(),
            secret_hash: None,
            redirect_uris: uris.iter().map(|u| RedirectUri::parse(u).unwrap()).collect(),
            post_logout_redirect_uris: vec![],
            scopes: vec![],
            trusted: false,
            audience: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    #[test]
    fn redirect_uris_match_exactly_but_for_a_loopback_port() {
        let c = client(&[
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/cb",
            "com.example.app:/cb",
        ]);
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:51234/cb",
            "http://127.0.0.1/cb",
            "com.example.app:/cb",
        ] {
            assert!(redirect_uri_matches(&c, ok), "{ok}");
        }
        for bad in [
            "https://app.example.com/cb/",
            "https://app.example.com/CB",
            "https://APP.example.com/cb",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb#f",
            "https://app.example.com:443/cb",
            "https://evil@app.example.com/cb",
            "https://app.example.com.evil.com/cb",
            "http://app.example.com/cb",
            "http://127.0.0.1:8080/cb/",
            "http://127.0.0.1:8080/other",
            "http://localhost:8080/cb",
            "http://127.0.0.1:8080/cb?x",
            "http://user@127.0.0.1:8080/cb",
            "HTTP://127.0.0.1:8080/cb",
            "com.example.app:/cb2",
        ] {
            assert!(!redirect_uri_matches(&c, bad), "{bad}");
        }
    }

    #[test]
    fn scopes_parse_once_each() {
        let s = parse_scopes("openid  email openid").unwrap();
        assert_eq!(s.iter().map(Scope::as_str).collect::<Vec<_>>(), ["openid", "email"]);
        assert!(parse_scopes("openid \"x\"").is_none());
        assert_eq!(parse_scopes("").unwrap(), vec![]);
    }

    #[test]
    fn challenges_are_s256_shaped() {
        assert!(valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
        assert!(!valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="));
    }
}
