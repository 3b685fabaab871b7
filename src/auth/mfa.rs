//! Multi-factor sign-in: TOTP enrolment and removal, recovery codes, the second step of
//! a sign-in, step-up with a code, and roles that require MFA.
//!
//! The rules: a factor counts only once confirmed by a code, whose step is then spent;
//! a TOTP step is accepted once per account (RFC 6238 §5.2), within ±1 step; a recovery
//! code works once; turning MFA on or off ends every other session (the stamp moves)
//! and mails a notice; a sign-in whose first factor was right for an account with MFA
//! issues nothing but an MFA token (5 minutes, single use, 5 attempts, this network).

use serde::{Deserialize, Serialize};

use super::budget::Spent;
use super::error::MfaChallenge;
use super::keys::totp_secret_context;
use super::sessions::net_of;
use super::{AuthError, AuthService, Principal, SignIn, TokenPair};
use crate::crypto::recovery_codes::{RecoveryCode, RecoveryCodeHash};
use crate::crypto::tokens::{OneTimeToken, OneTimeTokenHash};
use crate::crypto::totp::{self, TotpSecret};
use crate::domain::{AuthMethod, Authentication, DeviceName, Password, TokenPurpose, UnixTime, UserId};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::LimitKey;
use crate::mail::Template;
use crate::store::{
    ConfirmTotp, FactorScope, FactorsRemoved, NewMail, NewOneTimeToken, RemoveFactors, StoredTotp, UserRecord,
};

/// How long the second step of a sign-in may wait.
pub const MFA_TOKEN_TTL_SECS: u64 = 5 * 60;
/// Codes tried against one MFA token, at most.
pub const MFA_TOKEN_ATTEMPTS: i64 = 5;
/// Steps either side of now whose code is accepted (clock drift, a code typed late).
const WINDOW_STEPS: u64 = 1;

/// The caller's factors, as the account page shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaStatus {
    pub totp: bool,
    pub passkeys: u32,
    /// Enrolment begun, not yet confirmed.
    pub totp_pending: bool,
    pub recovery_codes_left: u32,
    /// A role the caller holds needs MFA here, and theirs is off.
    pub required: bool,
}

/// A TOTP enrolment begun: what an authenticator app needs.
#[derive(Debug)]
pub struct TotpEnrolment {
    pub secret: TotpSecret,
    pub otpauth_uri: String,
}

/// Step-up: the account password, and a second proof when the account has MFA (a
/// current code, or a passkey's answer to a step-up ceremony).
#[derive(Debug)]
pub struct StepUp {
    pub password: Password,
    pub code: Option<String>,
    pub passkey: Option<super::PasskeyProof>,
}

/// What an MFA token keeps of the sign-in it completes (stored beside it, opaque to
/// the store).
#[derive(Serialize, Deserialize)]
pub(super) struct Pending {
    /// The client network it was issued to.
    net: String,
    /// How the first step proved the user, and when.
    amr: String,
    at: i64,
    device: Option<String>,
    /// The nonce of the device token the first step came with, if a sign-in that
    /// passed this account's MFA issued it.
    #[serde(default)]
    known_device: Option<String>,
}

/// A code that could be accepted now, before it is spent.
enum Judged {
    /// A TOTP code for this step.
    Step(i64),
    /// An unused recovery code.
    Recovery(RecoveryCodeHash),
}

/// The steps whose codes are accepted at `now`.
fn window(now: UnixTime) -> impl Iterator<Item = u64> {
    let at = totp::step_at(now);
    at.saturating_sub(WINDOW_STEPS)..=at + WINDOW_STEPS
}

/// A step as stored.
fn stored_step(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

impl AuthService {
    /// The caller's factors.
    pub async fn mfa_status(&self, who: &Principal) -> Result<MfaStatus, AuthError> {
        let state = self.store.second_factors(who.user.id).await?;
        let confirmed = state.totp.as_ref().is_some_and(|t| t.confirmed_at.is_some());
        Ok(MfaStatus {
            totp: confirmed,
            passkeys: state.passkeys,
            totp_pending: state.totp.is_some() && !confirmed,
            recovery_codes_left: state.recovery_codes_left,
            required: !who.user.mfa_enabled && self.mfa.required_roles.iter().any(|r| who.has_role(r.as_str())),
        })
    }

    /// Begin a TOTP enrolment (step-up): a fresh secret, pending until a code confirms
    /// it (a pending one is replaced). Refused while a confirmed factor exists.
    pub async fn begin_totp(
        &self,
        who: &Principal,
        step_up: StepUp,
        client: &ClientInfo,
    ) -> Result<TotpEnrolment, AuthError> {
        // Before the step-up, which would spend a code.
        let confirmed = self.store.second_factors(who.user.id).await?.totp;
        if confirmed.is_some_and(|t| t.confirmed_at.is_some()) {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        // A second factor on an address nobody proved would let whoever registered
        // someone else's address first keep the account from its owner (the owner's
        // sign-in link is refused for an account with MFA).
        if !who.user.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        self.step_up(who, step_up, client).await?;
        let secret = TotpSecret::generate().map_err(AuthError::internal)?;
        let sealed = self.seal_totp(who.user.id, &secret)?;
        if !self.store.begin_totp(who.user.id, sealed, self.clock.now()).await? {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let otpauth_uri = totp::otpauth_uri(&self.recovery.product, who.user.username.as_str(), &secret);
        Ok(TotpEnrolment { secret, otpauth_uri })
    }

    /// Confirm the pending TOTP factor with a code from the app: MFA is on, its step is
    /// spent, every other session ends, the user is told by mail; the recovery codes,
    /// shown this once.
    pub async fn confirm_totp(
        &self,
        who: &Principal,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        let user = &who.user;
        let pending = self
            .store
            .second_factors(user.id)
            .await?
            .totp
            .filter(|t| t.confirmed_at.is_none())
            .ok_or(AuthError::NoPendingTotp)?;
        let now = self.clock.now();
        let mut spent = Spent::default();
        self.spend(&mut spent, LimitKey::MfaSession(who.session.id), client)
            .await?;
        let confirmed = self.confirm_pending(who, pending, code, now, client).await;
        self.settle(spent, matches!(confirmed, Err(AuthError::InvalidMfaCode)))
            .await;
        let codes = confirmed?;
        self.events
            .record(AuthEvent::MfaEnabled, Some(user.id), Some(who.session.id), client);
        Ok(codes)
    }

    /// [`AuthService::confirm_totp`]'s check and write, without its budget.
    async fn confirm_pending(
        &self,
        who: &Principal,
        pending: StoredTotp,
        code: &str,
        now: UnixTime,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        let user = &who.user;
        let secret = self.open_totp(user.id, &pending)?;
        let Some(step) = secret.matching_step(code.trim(), window(now)) else {
            self.events
                .record(AuthEvent::MfaFailed, Some(user.id), Some(who.session.id), client);
            return Err(AuthError::InvalidMfaCode);
        };
        let (codes, hashes) = RecoveryCode::generate_set().map_err(AuthError::internal)?;
        let confirm = ConfirmTotp {
            user: user.id,
            secret: pending.secret,
            step: stored_step(step),
            codes: hashes,
            keep: who.session.id,
            // This session proved the authenticator with the code just checked.
            keep_auth: who.session.auth.and(&[AuthMethod::Otp]),
            now,
            mails: self.mfa_notice(
                user,
                "Two-step sign-in with an authenticator app was turned on for your account, \
                 and every other session of the account was signed out.",
            ),
        };
        if self.store.confirm_totp(confirm).await?.is_none() {
            // Replaced by a newer enrolment, or confirmed by another request meanwhile.
            return Err(AuthError::NoPendingTotp);
        }
        Ok(codes)
    }

    /// Turn TOTP off (step-up with a current code): the factor and the recovery codes
    /// go, every other session ends, the user is told.
    pub async fn remove_totp(&self, who: &Principal, step_up: StepUp, client: &ClientInfo) -> Result<(), AuthError> {
        if !who.user.mfa_enabled {
            return Err(AuthError::NotFound);
        }
        let passkeys_left = self.store.second_factors(who.user.id).await?.passkeys > 0;
        let keep_a_factor = self.holds_mfa_role(&who.user);
        // Told before the step-up spends a code; the store checks again in its write.
        if !passkeys_left && keep_a_factor {
            return Err(AuthError::LastFactor);
        }
        self.step_up(who, step_up, client).await?;
        let removal = RemoveFactors {
            user: who.user.id,
            scope: FactorScope::Totp,
            keep_a_factor,
            keep: Some(who.session.id),
            now: self.clock.now(),
            mails: self.mfa_notice(
                &who.user,
                if passkeys_left {
                    "The authenticator app was removed from your account's two-step sign-in (your passkeys \
                     still work), and every other session of the account was signed out."
                } else {
                    "Two-step sign-in was turned off for your account, its recovery codes no longer work, \
                     and every other session of the account was signed out."
                },
            ),
        };
        match self.store.remove_second_factors(removal).await? {
            FactorsRemoved::Removed(_) => {}
            FactorsRemoved::Nothing => return Err(AuthError::NotFound),
            FactorsRemoved::LastFactor => return Err(AuthError::LastFactor),
        }
        self.events
            .record(AuthEvent::MfaDisabled, Some(who.user.id), Some(who.session.id), client);
        Ok(())
    }

    /// New recovery codes (step-up): the old list dies.
    pub async fn regenerate_recovery_codes(
        &self,
        who: &Principal,
        step_up: StepUp,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        if !who.user.mfa_enabled {
            return Err(AuthError::MfaNotEnabled);
        }
        self.step_up(who, step_up, client).await?;
        let (codes, hashes) = RecoveryCode::generate_set().map_err(AuthError::internal)?;
        let mails = self.mfa_notice(
            &who.user,
            "New recovery codes were made for your account; the earlier ones no longer work.",
        );
        if !self
            .store
            .replace_recovery_codes(who.user.id, hashes, self.clock.now(), mails)
            .await?
        {
            return Err(AuthError::MfaNotEnabled);
        }
        self.events.record(
            AuthEvent::RecoveryCodesRegenerated,
            Some(who.user.id),
            Some(who.session.id),
            client,
        );
        Ok(codes)
    }

    /// An operator turns a user's MFA off (they lost every factor): every session of
    /// theirs ends, they are told.
    pub async fn reset_mfa(&self, id: UserId, client: &ClientInfo) -> Result<(), AuthError> {
        let user = self.store.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        let removal = RemoveFactors {
            user: id,
            scope: FactorScope::Every,
            keep_a_factor: false,
            keep: None,
            now: self.clock.now(),
            mails: self.mfa_notice(
                &user,
                "An administrator turned two-step sign-in off for your account and signed out every \
                 session of it. Sign in with your password and turn it on again.",
            ),
        };
        if !matches!(
            self.store.remove_second_factors(removal).await?,
            FactorsRemoved::Removed(_)
        ) {
            return Err(AuthError::MfaNotEnabled);
        }
        self.events.record(AuthEvent::MfaReset, Some(id), None, client);
        Ok(())
    }

    /// A sign-in whose first step proved `user` (`auth`) but whose account has MFA: an
    /// MFA token for the second step, issued only while the user is as read.
    pub(super) async fn mfa_challenge(&self, user: &UserRecord, sign_in: SignIn, client: &ClientInfo) -> AuthError {
        match self.issue_mfa_token(user, sign_in, client).await {
            Ok(Some((mfa_token, factors))) => {
                self.events
                    .record(AuthEvent::MfaChallenged, Some(user.id), None, client);
                let mut methods = Vec::with_capacity(3);
                if factors.totp.as_ref().is_some_and(|t| t.confirmed_at.is_some()) {
                    methods.push("totp");
                }
                if factors.passkeys > 0 {
                    methods.push("passkey");
                }
                methods.push("recovery_code");
                AuthError::MfaRequired(MfaChallenge { mfa_token, methods })
            }
            // The password changed, or the user was deactivated, while this sign-in
            // was hashing: what it verified no longer holds.
            Ok(None) => AuthError::BadCredentials,
            Err(e) => e,
        }
    }

    async fn issue_mfa_token(
        &self,
        user: &UserRecord,
        sign_in: SignIn,
        client: &ClientInfo,
    ) -> Result<Option<(String, crate::store::SecondFactorState)>, AuthError> {
        let (token, hash) = OneTimeToken::generate().map_err(AuthError::internal)?;
        let now = self.clock.now();
        let factors = self.store.second_factors(user.id).await?;
        // Known only if a sign-in that passed this MFA issued it: a device token from
        // before MFA was turned on (whoever had the password then could have many) buys
        // no budget of its own.
        let known_device = match sign_in.known_device {
            Some(device) => {
                let totp_since = factors.totp.as_ref().and_then(|t| t.confirmed_at);
                let passkey_since = if factors.passkeys > 0 {
                    self.store.passkeys_of(user.id).await?.first().map(|p| p.created_at)
                } else {
                    None
                };
                let confirmed = totp_since.into_iter().chain(passkey_since).min();
                let issued = UnixTime(
                    device
                        .expires
                        .0
                        .saturating_sub(super::DEVICE_TOKEN_TTL_SECS.cast_signed()),
                );
                confirmed.filter(|at| issued > *at).map(|_| device.nonce)
            }
            None => None,
        };
        let pending = Pending {
            net: net_of(client).as_ip().to_string(),
            amr: sign_in.auth.methods_to_store(),
            at: sign_in.auth.at.0,
            device: sign_in.device_name.map(|d| d.as_str().to_owned()),
            known_device,
        };
        let issued = self
            .store
            .issue_one_time(NewOneTimeToken {
                hash,
                purpose: TokenPurpose::MfaLogin,
                user: user.id,
                email: user.email.clone(),
                expected_stamp: user.security_stamp,
                now,
                expires_at: now.plus(MFA_TOKEN_TTL_SECS),
                mails: Vec::new(),
                context: Some(serde_json::to_string(&pending).map_err(AuthError::internal)?),
                // Each sign-in's second step is its own: the owner's in flight is not
                // ended by anyone else's password step.
                replaces_older: false,
            })
            .await?;
        Ok(issued.then(|| (token.expose().to_owned(), factors)))
    }

    /// The second step of a sign-in: the MFA token and a TOTP or recovery code; the
    /// login answer. Each try counts against the token (5) and the account
    /// (`TOKENGATE_MFA_RATE`, failures only); a token shown from another network, or
    /// after the account changed, is refused like an unknown one.
    pub async fn complete_mfa(&self, mfa_token: &str, code: &str, client: &ClientInfo) -> Result<TokenPair, AuthError> {
        let refused = || AuthError::InvalidMfaToken;
        let hash = OneTimeTokenHash::of_presented(mfa_token).ok_or_else(refused)?;
        let now = self.clock.now();
        // Read first: a token shown from another network, or refused by a budget, costs
        // it none of its attempts (its owner's tries stay theirs).
        let (token, pending) = self.live_mfa_token(&hash, client).await?;
        let mut spent = Spent::default();
        self.spend(&mut spent, self.mfa_budget(&pending, token.user), client)
            .await?;
        let counted = self
            .store
            .attempt_one_time(&hash, TokenPurpose::MfaLogin, now, MFA_TOKEN_ATTEMPTS)
            .await?;
        let user = match (counted, self.store.user_by_id(token.user).await?) {
            (Some(_), Some(u)) if u.is_active && u.security_stamp == token.stamp && u.mfa_enabled => u,
            _ => {
                self.give_back(spent).await;
                return Err(refused());
            }
        };
        let judged = self.judge_code(&user, code, None, client).await;
        self.settle(spent, matches!(judged, Err(AuthError::InvalidMfaCode)))
            .await;
        let judged = judged?;
        // The token is claimed before the code is spent: of requests racing with one
        // token, one goes on, and only its code is used.
        if self
            .store
            .spend_one_time(&hash, TokenPurpose::MfaLogin, now)
            .await?
            .is_none()
        {
            return Err(refused());
        }
        let method = self.spend_code(&user, judged, None, client).await?;
        self.open_after_second_step(user, pending, &[method], client).await
    }

    /// A live MFA token (unused, unexpired) shown from the network it was issued to,
    /// and the sign-in it completes. A read: nothing is spent.
    pub(super) async fn live_mfa_token(
        &self,
        hash: &OneTimeTokenHash,
        client: &ClientInfo,
    ) -> Result<(crate::store::StoredOneTimeToken, Pending), AuthError> {
        let refused = || AuthError::InvalidMfaToken;
        let now = self.clock.now();
        let token = self
            .store
            .one_time_token(hash)
            .await?
            .filter(|t| {
                t.purpose == TokenPurpose::MfaLogin
                    && t.used_at.is_none()
                    && now < t.expires_at
                    && t.attempts < MFA_TOKEN_ATTEMPTS
            })
            .ok_or_else(refused)?;
        let pending: Pending = token
            .context
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(refused)?;
        if pending.net != net_of(client).as_ip().to_string() {
            self.events.record(AuthEvent::MfaFailed, Some(token.user), None, client);
            return Err(refused());
        }
        Ok((token, pending))
    }

    /// The budget a sign-in's second step counts against. A device that passed this
    /// MFA before has its own (at the same rate): whoever else has the password cannot
    /// spend it.
    pub(super) fn mfa_budget(&self, pending: &Pending, user: UserId) -> LimitKey {
        match &pending.known_device {
            Some(nonce) => LimitKey::MfaDevice(nonce.clone()),
            None => LimitKey::Mfa(user),
        }
    }

    /// Complete a sign-in whose second factor (`methods`) was proved: its MFA token is
    /// claimed (once), its user is as it was, and the session opens.
    pub(super) async fn complete_second_step(
        &self,
        hash: &OneTimeTokenHash,
        token: &crate::store::StoredOneTimeToken,
        pending: Pending,
        methods: &[AuthMethod],
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let refused = || AuthError::InvalidMfaToken;
        if self
            .store
            .spend_one_time(hash, TokenPurpose::MfaLogin, self.clock.now())
            .await?
            .is_none()
        {
            return Err(refused());
        }
        let user = match self.store.user_by_id(token.user).await? {
            Some(u) if u.is_active && u.security_stamp == token.stamp && u.mfa_enabled => u,
            _ => return Err(refused()),
        };
        self.open_after_second_step(user, pending, methods, client).await
    }

    async fn open_after_second_step(
        &self,
        user: UserRecord,
        pending: Pending,
        methods: &[AuthMethod],
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let sign_in = SignIn {
            auth: Authentication::from_store(UnixTime(pending.at), &pending.amr).and(methods),
            device_name: pending.device.and_then(|d| DeviceName::parse(&d).ok()),
            known_device: None,
            app: None,
        };
        self.open_session(user, sign_in, client).await
    }

    /// Check a second factor of `user` (a TOTP code, or a recovery code), spending it:
    /// a step is accepted once, a recovery code works once. Counts against `budget`
    /// (failures only).
    async fn second_factor(
        &self,
        user: &UserRecord,
        code: &str,
        budget: LimitKey,
        session: Option<crate::domain::SessionId>,
        client: &ClientInfo,
    ) -> Result<AuthMethod, AuthError> {
        let mut spent = Spent::default();
        self.spend(&mut spent, budget, client).await?;
        let checked = self.check_code(user, code, session, client).await;
        // Only a wrong code counts (a database that failed judged nothing).
        self.settle(spent, matches!(checked, Err(AuthError::InvalidMfaCode)))
            .await;
        checked
    }

    /// [`AuthService::second_factor`] without a budget (the caller's): judged, then spent.
    async fn check_code(
        &self,
        user: &UserRecord,
        code: &str,
        session: Option<crate::domain::SessionId>,
        client: &ClientInfo,
    ) -> Result<AuthMethod, AuthError> {
        let judged = self.judge_code(user, code, session, client).await?;
        self.spend_code(user, judged, session, client).await
    }

    /// Which code `code` is, if it could be accepted now: a TOTP code of the confirmed
    /// factor within the window, for a step later than the last accepted one, or an
    /// unused recovery code. A read: nothing is spent.
    async fn judge_code(
        &self,
        user: &UserRecord,
        code: &str,
        session: Option<crate::domain::SessionId>,
        client: &ClientInfo,
    ) -> Result<Judged, AuthError> {
        let code = code.trim();
        let judged = if code.len() == totp::DIGITS as usize {
            self.judge_totp(user, code).await?.map(Judged::Step)
        } else if let Some(hash) = RecoveryCode::hash_of_presented(code) {
            let unused = self.store.recovery_code_unused(user.id, &hash).await?;
            unused.then_some(Judged::Recovery(hash))
        } else {
            None
        };
        judged.ok_or_else(|| {
            self.events.record(AuthEvent::MfaFailed, Some(user.id), session, client);
            AuthError::InvalidMfaCode
        })
    }

    /// Spend a judged code (one conditional write: of two requests with one code, one
    /// spends it; the other is refused as a wrong code).
    async fn spend_code(
        &self,
        user: &UserRecord,
        judged: Judged,
        session: Option<crate::domain::SessionId>,
        client: &ClientInfo,
    ) -> Result<AuthMethod, AuthError> {
        let spent = match judged {
            Judged::Step(step) => self.store.advance_totp_step(user.id, step).await?,
            Judged::Recovery(hash) => {
                let used = self.store.spend_recovery_code(user.id, &hash, self.clock.now()).await?;
                if used {
                    self.events
                        .record(AuthEvent::RecoveryCodeUsed, Some(user.id), session, client);
                }
                used
            }
        };
        if !spent {
            self.events.record(AuthEvent::MfaFailed, Some(user.id), session, client);
            return Err(AuthError::InvalidMfaCode);
        }
        Ok(AuthMethod::Otp)
    }

    /// The step a TOTP code of `user`'s confirmed factor is for, if it is within the
    /// window and later than the last accepted one.
    async fn judge_totp(&self, user: &UserRecord, code: &str) -> Result<Option<i64>, AuthError> {
        let Some(factor) = self
            .store
            .second_factors(user.id)
            .await?
            .totp
            .filter(|t| t.confirmed_at.is_some())
        else {
            return Ok(None);
        };
        let secret = self.open_totp(user.id, &factor)?;
        let Some(step) = secret.matching_step(code, window(self.clock.now())) else {
            return Ok(None);
        };
        let step = stored_step(step);
        Ok(factor.last_step.is_none_or(|last| last < step).then_some(step))
    }

    /// Step-up: the caller's password and, when the account has MFA, a current code
    /// (spent), both against this session's own budget: whoever has the password and
    /// burns the account's budget at the sign-in's second step does not keep the owner,
    /// in their live session, from changing the password or the factors.
    pub(super) async fn step_up(&self, who: &Principal, step_up: StepUp, client: &ClientInfo) -> Result<(), AuthError> {
        self.step_up_password(who, step_up.password, client).await?;
        if !who.user.mfa_enabled {
            return Ok(());
        }
        if let Some(proof) = step_up.passkey {
            return self.passkey_step_up(who, proof, client).await;
        }
        let code = step_up
            .code
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or(AuthError::MfaCodeRequired)?;
        let budget = LimitKey::MfaSession(who.session.id);
        self.second_factor(&who.user, code, budget, Some(who.session.id), client)
            .await
            .map(|_| ())
    }

    /// Whether the caller may act with `role`: they hold it (token and account), and,
    /// if this server requires MFA of that role, their MFA is on and this session's
    /// sign-in proved two factors (or proved the authenticator when it was enrolled).
    pub fn require_role(&self, who: &Principal, role: &str) -> Result<(), AuthError> {
        if !who.has_role(role) {
            return Err(AuthError::InsufficientRole);
        }
        let mfa_session = who.user.mfa_enabled && who.session.auth.satisfies_mfa();
        if !mfa_session && self.mfa.required_roles.iter().any(|r| r.as_str() == role) {
            return Err(AuthError::MfaRequiredForRole);
        }
        Ok(())
    }

    /// The notice of an MFA change, for the outbox (none if it cannot be composed: the
    /// change stands, logged).
    pub(super) fn mfa_notice(&self, user: &UserRecord, change: &str) -> Vec<NewMail> {
        match self.compose(&user.email, user.username.as_str(), Template::MfaChanged { change }) {
            Ok(mail) => vec![mail],
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, "the MFA notice was not composed");
                Vec::new()
            }
        }
    }

    fn seal_totp(&self, user: UserId, secret: &TotpSecret) -> Result<Vec<u8>, AuthError> {
        self.keys
            .vault()
            .seal(secret.as_bytes(), &totp_secret_context(user))
            .map_err(AuthError::internal)
    }

    fn open_totp(&self, user: UserId, stored: &StoredTotp) -> Result<TotpSecret, AuthError> {
        let raw = self
            .keys
            .vault()
            .open(&stored.secret, &totp_secret_context(user))
            .map_err(AuthError::internal)?;
        Ok(TotpSecret::from_bytes(raw))
    }
}
