//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): an application sends
//! the browser here with the id_token it got; the session of that grant ends, and the
//! browser's own session here with it, then the browser goes back to a registered
//! post-logout URI.
//!
//! Only a valid `id_token_hint` ends anything: a link without one (which anyone can
//! make) signs nobody out.

use super::authorize::with_query;
use crate::auth::{AuthError, AuthService, Principal};
use crate::crypto::id_token;
use crate::domain::{ClientId, SessionId, UserId};
use crate::events::{AuthEvent, ClientInfo};

/// A logout request's parameters as sent.
#[derive(Clone, Debug, Default)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// What the logout did.
#[derive(Debug)]
pub enum LoggedOut {
    /// Back to the application, at this URL.
    Redirect {
        to: String,
        /// The browser's own session here ended too (its cookies go).
        browser_ended: bool,
    },
    /// No registered place to go back to: a page says it is done.
    Done { browser_ended: bool },
    /// Nothing ended (no hint): a page says how to sign out here, with a link back to
    /// the application's registered URI, if one was given.
    Nothing { back: Option<String> },
}

/// Why a logout request was refused (shown on a page: nothing is redirected).
#[derive(Debug)]
pub enum LogoutRefusal {
    Page(String),
    Failed(AuthError),
}

impl From<AuthError> for LogoutRefusal {
    fn from(e: AuthError) -> Self {
        Self::Failed(e)
    }
}

impl From<crate::store::StoreError> for LogoutRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Failed(e.into())
    }
}

fn with_state(uri: &str, state: Option<&str>) -> String {
    match state {
        Some(s) => with_query(uri, &[("state", s)]),
        None => uri.to_owned(),
    }
}

impl AuthService {
    /// End the grant an id_token stands for, and the browser's session here when it is
    /// the same user's; where to send the browser.
    pub async fn end_session(
        &self,
        p: &LogoutParams,
        browser: Option<&Principal>,
        client: &ClientInfo,
    ) -> Result<LoggedOut, LogoutRefusal> {
        let page = |why: &str| LogoutRefusal::Page(why.to_owned());
        let hint = match (&p.id_token_hint, self.existing_id_token_keys().await?) {
            (Some(raw), Some(keys)) => Some(
                id_token::read_hint(&keys, raw, &self.provider.issuer, self.clock.now())
                    .ok_or_else(|| page("The sign-out request carries an id_token this server did not issue."))?,
            ),
            (Some(_), None) => {
                return Err(page(
                    "The sign-out request carries an id_token this server did not issue.",
                ));
            }
            (None, _) => None,
        };
        // The application: the hint's audience, which `client_id` (if sent) must match.
        let app_id = match (&hint, p.client_id.as_deref()) {
            (Some(h), Some(c)) if h.aud != c => return Err(page("client_id does not match the id_token.")),
            (Some(h), _) => Some(h.aud.clone()),
            (None, c) => c.map(str::to_owned),
        };
        let app = match app_id.as_deref().map(str::parse::<ClientId>) {
            Some(Ok(id)) => self.store.client(id).await?,
            Some(Err(_)) => None,
            None => None,
        };
        let back = match (&p.post_logout_redirect_uri, &app) {
            (None, _) => None,
            (Some(uri), Some(app)) if app.post_logout_redirect_uris.iter().any(|r| r.as_str() == uri) => {
                Some(uri.clone())
            }
            (Some(_), _) => {
                return Err(page(
                    "The address the application asked to send you to after signing out is not one it registered.",
                ));
            }
        };
        let Some(hint) = hint else {
            // Nothing ends without proof of the sign-in (else any page could sign
            // anyone out).
            return Ok(LoggedOut::Nothing {
                back: back.map(|uri| with_state(&uri, p.state.as_deref())),
            });
        };
        let now = self.clock.now();
        let user: Option<UserId> = hint.sub.parse().ok();
        // The hint's grant must still be live: an old id_token (used before, or of a
        // grant long over) ends nothing, so one seen in a URL long ago signs no one out.
        let grant_ended = match (user, hint.sid.as_deref().and_then(|s| s.parse::<SessionId>().ok())) {
            (Some(user), Some(sid)) => self.store.revoke_session(user, sid, now).await?,
            _ => false,
        };
        if grant_ended {
            self.events.record(AuthEvent::Logout, user, None, client);
        }
        let browser_ended = match browser {
            Some(who) if grant_ended && Some(who.user_id()) == user && who.session.client.is_none() => {
                self.store.revoke_session(who.user_id(), who.session_id(), now).await?;
                self.events
                    .record(AuthEvent::Logout, Some(who.user_id()), Some(who.session_id()), client);
                true
            }
            _ => false,
        };
        Ok(match back {
            Some(uri) => LoggedOut::Redirect {
                to: with_state(&uri, p.state.as_deref()),
                browser_ended,
            },
            None => LoggedOut::Done { browser_ended },
        })
    }
}
