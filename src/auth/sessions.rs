//! Sessions: login opens one, refresh rotates its token, logout closes it.

use std::net::{IpAddr, Ipv4Addr};

use super::AuthError;
use super::budget::Spent;
use super::{AppIssue, AppSignIn, AuthService, Principal, SignIn, TokenPair};
use crate::crypto::device;
use crate::crypto::tokens::{RefreshToken, RefreshTokenHash};
use crate::domain::{AuthMethod, Authentication, DeviceName, Email, Password, SessionId, UnixTime, Username};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::{ClientNet, LimitKey};
use crate::store::{NewSession, RotateRequest, Rotation, SessionClient, SessionOpen, SessionRecord, UserRecord};

/// A device token stays good this long after the login that issued it (each login
/// issues a fresh one).
pub const DEVICE_TOKEN_TTL_SECS: u64 = 90 * 24 * 3600;

/// A session as its owner sees it.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub session: SessionRecord,
    /// The session of the token that asked.
    pub current: bool,
}

/// Whether `session` was opened for `app` (or, with none, for no application).
fn same_party(session: &SessionRecord, app: Option<&AppIssue<'_>>) -> bool {
    session.client.as_ref().map(|c| c.id) == app.map(|a| a.client.id)
}

/// The client's network as limits key it.
pub(super) fn net_of(client: &ClientInfo) -> ClientNet {
    ClientNet::of(client.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
}

impl AuthService {
    /// Check a username (or the account's email) and password and open a session. An
    /// unknown user and a wrong password get the same answer after the same work (one
    /// argon2 verification).
    ///
    /// Limits count failures only (a success gives its attempts back). A failure counts
    /// against the client's network, and against the name as typed from that network (a
    /// client with a valid device token: against that token instead), so one network's
    /// guesses lock out only that network. While failures for the name come from
    /// [`DISTRIBUTED_NETWORKS`](super::budget::DISTRIBUTED_NETWORKS) or more networks within the window (a distributed
    /// attack), the name's shared budget applies too, to every client without a device
    /// token, even with the right password: the real user's known devices still get in.
    ///
    /// These budgets are spent before the account is looked up, so a refused client
    /// costs no database read. A login by email spends the account's budgets (by its
    /// username) as well, so the two names give no extra guesses; a refusal there is
    /// answered as a wrong password would be, since a 429 would tell whose the address is.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_token: Option<&str>,
        device_name: Option<DeviceName>,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        self.login_for(username, password, device_token, device_name, None, client)
            .await
    }

    /// [`AuthService::login`], for an application (the provider's password grant) or
    /// first-party (`None`).
    pub(super) async fn login_for(
        &self,
        username: &str,
        password: &str,
        device_token: Option<&str>,
        device_name: Option<DeviceName>,
        app: Option<AppSignIn>,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let net = net_of(client);
        let mut spent = Spent::default();
        self.spend(&mut spent, LimitKey::LoginIp(net), client).await?;
        // Refused before any hash, so it counts against no username.
        let Some(password) = Password::candidate(password) else {
            self.events.record(AuthEvent::LoginFailed, None, None, client);
            return Err(AuthError::BadCredentials);
        };
        // Valid usernames are at most 50 characters (emails 254, but only their account's
        // budget matters); a longer key names no one and must not grow the limiter.
        let typed = username.chars().take(64).collect::<String>().to_lowercase();
        let now = self.clock.now();
        // A device token can only be this login's if it names the username typed, or
        // (for a login by email) the account the address turns out to be.
        let device = device_token
            .and_then(|t| device::verify(&self.macs.device, t, now))
            .filter(|d| d.username == typed || typed.contains('@'));
        let outcome = async {
            // Before the lookup and the hash: once a budget is spent, even the right
            // password waits.
            match &device {
                Some(d) => {
                    self.spend(&mut spent, LimitKey::LoginDevice(d.nonce.clone()), client)
                        .await?
                }
                None => self.spend_name(&mut spent, &typed, net, client).await?,
            }
            let user = self.user_by_login_name(username).await?;
            let account = user.as_ref().map(|u| u.username.as_str().to_lowercase());
            let device_fits = matches!((&device, &account), (Some(d), Some(a)) if d.username == *a);
            if device.is_some() && !device_fits {
                // Another account's token, shown with an email: the attempt it paid for
                // stays paid, whatever follows (a refusal would give it back, and the
                // token would buy lookups for free), and the name's budgets apply.
                spent.0.retain(|k| !matches!(k, LimitKey::LoginDevice(_)));
                self.spend_name(&mut spent, &typed, net, client).await?;
            }
            if let Some(a) = account.as_ref().filter(|a| **a != typed && !device_fits)
                && self.spend_name(&mut spent, a, net, client).await.is_err()
            {
                return self.verify_login(None, password, client).await;
            }
            self.verify_login(user, password, client).await
        }
        .await;
        match outcome {
            Ok((user, password)) => {
                self.give_back(spent).await;
                // Only someone who knows the password learns that the account is
                // disabled; a disabled account's hash is not redone.
                self.refuse_inactive(&user, client)?;
                self.upgrade_hash(&user, password, client).await;
                // The device token, if it is this account's, keeps its own budget at
                // the second step too.
                let account = user.username.as_str().to_lowercase();
                let sign_in = SignIn {
                    auth: Authentication::new(self.clock.now(), &[AuthMethod::Pwd]),
                    device_name,
                    known_device: device.filter(|d| d.username == account),
                    app,
                };
                self.open_session(user, sign_in, client).await
            }
            Err(e) => {
                if matches!(e, AuthError::BadCredentials) {
                    // Noted under the name typed only: a lockout seen through the other
                    // name would link the two.
                    self.note_failing_network(&typed, net).await;
                } else {
                    // Only a wrong password counts; a refusal before the hash, or a busy
                    // or unavailable server, costs the client nothing.
                    self.give_back(spent).await;
                }
                Err(e)
            }
        }
    }

    /// The per-network and shared budgets of one login name.
    async fn spend_name(
        &self,
        spent: &mut Spent,
        name: &str,
        net: ClientNet,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.spend(spent, LimitKey::LoginUserNet(name.to_owned(), net), client)
            .await?;
        self.spend_shared(spent, name, client).await
    }

    /// The account a login names: by username, or by email (a username never holds an
    /// `@`, so the two cannot be confused). A string that is neither names no one and is
    /// not looked up (PostgreSQL refuses a NUL in text outright); it costs the same hash.
    pub(super) async fn user_by_login_name(&self, name: &str) -> Result<Option<UserRecord>, AuthError> {
        if Username::parse(name).is_ok() {
            return Ok(self.store.user_by_username(name).await?);
        }
        match Email::parse(name) {
            Ok(email) => Ok(self.store.user_by_email(&email).await?),
            Err(_) => Ok(None),
        }
    }

    /// `user` if `password` is theirs, or `BadCredentials` after the same work.
    async fn verify_login(
        &self,
        user: Option<UserRecord>,
        password: Password,
        client: &ClientInfo,
    ) -> Result<(UserRecord, Password), AuthError> {
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.hasher.verify(password.clone(), stored).await?;
        match user {
            Some(u) if ok => Ok((u, password)),
            other => {
                self.events
                    .record(AuthEvent::LoginFailed, other.map(|u| u.id), None, client);
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// A disabled account is refused (logged), told only to a caller who proved who
    /// they are.
    fn refuse_inactive(&self, user: &UserRecord, client: &ClientInfo) -> Result<(), AuthError> {
        if user.is_active {
            return Ok(());
        }
        self.events
            .record(AuthEvent::LoginInactive, Some(user.id), None, client);
        Err(AuthError::InactiveUser)
    }

    /// Open the session of a sign-in that proved who it is (`auth`: a password, a
    /// sign-in link, and a second factor when the account has MFA), for an active
    /// user: only while the user is as it read them. An account with MFA whose sign-in
    /// proved one factor gets an MFA token instead ([`AuthError::MfaRequired`]).
    pub(super) async fn open_session(
        &self,
        user: UserRecord,
        sign_in: SignIn,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        self.refuse_inactive(&user, client)?;
        // Told only to someone who proved who they are.
        if self.recovery.require_verified_email && !user.email_verified {
            self.events.record(AuthEvent::LoginFailed, Some(user.id), None, client);
            // The right password proves the account: a fresh link, so that a user
            // whose first one expired is not locked out.
            self.verification_after_login(&user, client).await;
            return Err(AuthError::EmailNotVerified);
        }
        if user.mfa_enabled && !sign_in.auth.satisfies_mfa() {
            if sign_in.app.is_some() {
                // Its second step is a first-party one: an application signs such a
                // user in with the authorization code flow instead.
                self.events.record(AuthEvent::LoginFailed, Some(user.id), None, client);
                return Err(AuthError::OAuth(super::oauth::OAuthError::new(
                    super::oauth::OAuthErrorCode::InvalidGrant,
                    "this account has two-step sign-in: use the authorization code flow",
                )));
            }
            return Err(self.mfa_challenge(&user, sign_in, client).await);
        }
        let SignIn {
            auth, device_name, app, ..
        } = sign_in;
        let session_id = SessionId::new();
        let now = self.clock.now();
        let (refresh, refresh_hash) = RefreshToken::generate().map_err(AuthError::internal)?;
        let (expires_at, max_expires_at) = self.sessions.expiries(now);
        let opened = self
            .store
            .create_session(NewSession {
                id: session_id,
                user_id: user.id,
                expected_stamp: user.security_stamp,
                now,
                expires_at,
                max_expires_at,
                user_agent: client.user_agent.clone(),
                ip: self.sessions.ip.keep(client.ip),
                device_name: device_name
                    .map(|d| d.as_str().to_owned())
                    .or_else(|| app.as_ref().map(|a| a.client.name.as_str().chars().take(64).collect())),
                refresh_hash,
                auth,
                client: app.as_ref().map(|a| SessionClient {
                    id: a.client.id,
                    scopes: a.scopes.clone(),
                }),
                from_code: None,
            })
            .await?;
        if opened == SessionOpen::UserChanged {
            // The password changed, or the user was deactivated, demoted or deleted,
            // while this login was hashing: what it verified no longer holds.
            self.events.record(AuthEvent::LoginFailed, Some(user.id), None, client);
            return Err(AuthError::BadCredentials);
        }
        self.events
            .record(AuthEvent::LoginOk, Some(user.id), Some(session_id), client);
        if let Some(app) = &app {
            let issue = AppIssue {
                client: &app.client,
                id_keys: &app.id_keys,
                nonce: None,
                narrowed: None,
            };
            return self.app_pair(&user, session_id, auth, &app.scopes, refresh, &issue);
        }
        let device_token = device::issue(
            &self.macs.device,
            user.username.as_str(),
            now.plus(DEVICE_TOKEN_TTL_SECS),
        )
        .map_err(AuthError::internal)?;
        let mut pair = self.pair(&user, session_id, &auth, refresh)?;
        pair.device_token = Some(device_token);
        Ok(pair)
    }

    /// Replace a hash that is not argon2id at the configured cost (an imported bcrypt
    /// or argon2 hash, or ours from before an operator raised the cost) now that the
    /// password is known, as passlib's `deprecated="auto"` does. Only if the stored hash
    /// is still the one verified: a password change in between wins. A failure costs
    /// nothing but a retry at the next login, so it does not fail this one.
    async fn upgrade_hash(&self, user: &UserRecord, password: Password, client: &ClientInfo) {
        if self.hasher.is_current(&user.password_hash) {
            return;
        }
        let upgraded = match self.hasher.hash(password).await {
            Ok(new) => {
                self.store
                    .upgrade_password_hash(user.id, &user.password_hash, new)
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, "password hash not upgraded; the next login tries again");
                return;
            }
        };
        match upgraded {
            Ok(true) => self
                .events
                .record(AuthEvent::PasswordRehashed, Some(user.id), None, client),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "password hash not upgraded; the next login tries again"),
        }
    }

    /// Spend a refresh token for a new pair. A token that was already spent is a
    /// reuse: somebody holds a stolen copy, so its whole session dies. With a reuse
    /// grace, the token spent last in a live session is instead answered with the same
    /// successor for that long (two tabs, a retry after a lost response): the chain
    /// never forks.
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<TokenPair, AuthError> {
        self.refresh_as(presented, None, client).await
    }

    /// [`AuthService::refresh`] by `app` (the provider's token endpoint, the client
    /// authenticated) or by a first-party client (`None`). A token of a session opened
    /// for another party is a stolen one: its session dies.
    pub(super) async fn refresh_as(
        &self,
        presented: &str,
        app: Option<&AppIssue<'_>>,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        self.limit(LimitKey::RefreshIp(net_of(client)), AuthEvent::RefreshLimited, client)
            .await?;
        let Some(hash) = RefreshTokenHash::of_presented(presented) else {
            self.events.record(AuthEvent::RefreshRejected, None, None, client);
            return Err(AuthError::InvalidRefreshToken);
        };
        let now = self.clock.now();
        let grace = self.sessions.reuse_grace_secs;
        // With a grace the successor is derived from the token it replaces, so a late
        // duplicate of this request can be given the same one without storing it.
        let (successor, successor_hash) = if grace > 0 {
            RefreshToken::successor_of(&self.macs.refresh, presented)
        } else {
            RefreshToken::generate().map_err(AuthError::internal)?
        };
        let outcome = self
            .store
            .rotate_refresh(RotateRequest {
                presented: hash,
                successor: successor_hash.clone(),
                successor_expires_at: now.plus(self.sessions.refresh_ttl_secs),
                now,
            })
            .await?;
        match outcome {
            Rotation::Spent { session, .. } if !same_party(&session, app) => {
                self.store.revoke_session(session.user_id, session.id, now).await?;
                self.events.record(
                    AuthEvent::RefreshRejected,
                    Some(session.user_id),
                    Some(session.id),
                    client,
                );
                Err(AuthError::InvalidRefreshToken)
            }
            Rotation::Spent { session, user } if session.is_live(now) && user.is_active => {
                if self.recovery.require_verified_email && !user.email_verified {
                    // Required since the session began (verification withdrawn ends
                    // the sessions). The session ends here too, so that the successor
                    // just stored cannot be had by repeating the token within a grace.
                    self.store.revoke_session(user.id, session.id, now).await?;
                    self.events
                        .record(AuthEvent::RefreshRejected, Some(user.id), Some(session.id), client);
                    return Err(AuthError::EmailNotVerified);
                }
                self.events
                    .record(AuthEvent::Refresh, Some(user.id), Some(session.id), client);
                self.pair_for(&user, &session, successor, app)
            }
            // A token of a revoked or expired session, or of a deactivated user: its
            // successor lives in a dead session and is refused like it.
            Rotation::Spent { .. } | Rotation::Unknown => {
                self.events.record(AuthEvent::RefreshRejected, None, None, client);
                Err(AuthError::InvalidRefreshToken)
            }
            Rotation::AlreadySpent {
                user_id,
                session_id,
                spent_at,
            } => {
                if grace > 0
                    && now <= spent_at.plus(grace)
                    && let Some(pair) = self
                        .repeat_successor(session_id, successor, &successor_hash, now, app)
                        .await?
                {
                    self.events
                        .record(AuthEvent::RefreshRepeated, Some(user_id), Some(session_id), client);
                    return Ok(pair);
                }
                // A spent token came back: someone holds a copy. The whole session dies.
                self.store.revoke_session(user_id, session_id, now).await?;
                self.events
                    .record(AuthEvent::RefreshReuse, Some(user_id), Some(session_id), client);
                Err(AuthError::InvalidRefreshToken)
            }
        }
    }

    /// Within the grace: a new pair around `successor` (the successor of the token just
    /// presented) if it is still the current token of that live session: unspent,
    /// unexpired, of an active user. An older token's successor has been spent.
    async fn repeat_successor(
        &self,
        session_id: SessionId,
        successor: RefreshToken,
        successor_hash: &RefreshTokenHash,
        now: UnixTime,
        app: Option<&AppIssue<'_>>,
    ) -> Result<Option<TokenPair>, AuthError> {
        let current = self
            .store
            .refresh_token(successor_hash)
            .await?
            .is_some_and(|t| !t.spent && t.session_id == session_id && now < t.expires_at);
        if !current {
            return Ok(None);
        }
        match self.store.session_with_user(session_id).await? {
            Some((session, user))
                if session.is_live(now)
                    && user.is_active
                    && same_party(&session, app)
                    && (user.email_verified || !self.recovery.require_verified_email) =>
            {
                Ok(Some(self.pair_for(&user, &session, successor, app)?))
            }
            _ => Ok(None),
        }
    }

    /// Close the caller's session (every token of it dies at once) and, if a refresh
    /// token of the caller's is given, that token's session too.
    pub async fn logout(&self, who: &Principal, refresh: Option<&str>, client: &ClientInfo) -> Result<(), AuthError> {
        let now = self.clock.now();
        self.store.revoke_session(who.user.id, who.session.id, now).await?;
        if let Some(hash) = refresh.and_then(RefreshTokenHash::of_presented) {
            self.store
                .revoke_session_of_refresh(Some(who.user.id), &hash, now)
                .await?;
        }
        self.events
            .record(AuthEvent::Logout, Some(who.user.id), Some(who.session.id), client);
        Ok(())
    }

    /// Close the session a refresh token belongs to (a browser whose access cookie has
    /// already expired signs out with its refresh cookie). Unknown tokens are a no-op.
    pub async fn logout_by_refresh(&self, refresh: &str, client: &ClientInfo) -> Result<(), AuthError> {
        if let Some(hash) = RefreshTokenHash::of_presented(refresh)
            && self
                .store
                .revoke_session_of_refresh(None, &hash, self.clock.now())
                .await?
                .is_some()
        {
            self.events.record(AuthEvent::Logout, None, None, client);
        }
        Ok(())
    }

    /// Close every session of the caller, on every device.
    pub async fn logout_all(&self, who: &Principal, client: &ClientInfo) -> Result<(), AuthError> {
        self.store.revoke_sessions(who.user.id, None, self.clock.now()).await?;
        self.events
            .record(AuthEvent::LogoutAll, Some(who.user.id), Some(who.session.id), client);
        Ok(())
    }

    /// The caller's live sessions, theirs marked `current`.
    pub async fn sessions(&self, who: &Principal) -> Result<Vec<SessionView>, AuthError> {
        let list = self.store.list_sessions(who.user.id, self.clock.now()).await?;
        Ok(list
            .into_iter()
            .map(|session| SessionView {
                current: session.id == who.session.id,
                session,
            })
            .collect())
    }

    /// Revoke one of the caller's sessions. Another user's session is "not found",
    /// exactly like an unknown one: its existence is never revealed.
    pub async fn revoke_session(&self, who: &Principal, id: SessionId, client: &ClientInfo) -> Result<(), AuthError> {
        if !self.store.revoke_session(who.user.id, id, self.clock.now()).await? {
            return Err(AuthError::NotFound);
        }
        self.events
            .record(AuthEvent::SessionRevoked, Some(who.user.id), Some(id), client);
        Ok(())
    }

    /// Sign an access token for the session (`auth`: its sign-in); roles come from the
    /// store, never from an older token, so a role change applies at the next refresh.
    fn pair(
        &self,
        user: &UserRecord,
        session: SessionId,
        auth: &Authentication,
        refresh: RefreshToken,
    ) -> Result<TokenPair, AuthError> {
        let signed = self
            .tokens
            .sign(user.id, &user.username, session, &user.roles, auth, self.clock.now())?;
        Ok(TokenPair {
            access_token: signed.token,
            refresh_token: refresh,
            expires_in: self.tokens.ttl_secs(),
            session_id: session,
            device_token: None,
            id_token: None,
            scopes: None,
        })
    }

    /// The tokens of `session`: first-party ones, or an application's (its claims,
    /// audience and scopes; an id_token when `openid` was granted).
    pub(super) fn pair_for(
        &self,
        user: &UserRecord,
        session: &SessionRecord,
        refresh: RefreshToken,
        app: Option<&AppIssue<'_>>,
    ) -> Result<TokenPair, AuthError> {
        match (app, &session.client) {
            (Some(app), Some(granted)) => self.app_pair(
                user,
                session.id,
                session.auth,
                app.narrowed.unwrap_or(&granted.scopes),
                refresh,
                app,
            ),
            _ => self.pair(user, session.id, &session.auth, refresh),
        }
    }
}
