//! Account recovery and email verification by mail: one-time tokens, each written with
//! the mail that carries it (the outbox) and spent by one conditional write with what it
//! does. Links open pages of `/account` with the token in the fragment (`#token=`), so it
//! reaches no server log and no `Referer`; the page POSTs it. One answer (400) for a
//! token that is unknown, spent, expired or of another purpose.
//!
//! No enumeration: asking for a reset or a sign-in link answers the same, as fast, and
//! spends the same per-address budget whether or not the address is an account's; the
//! lookup and the mail happen after the answer.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::budget::Spent;
use super::sessions::net_of;
use super::{AuthError, AuthService, Principal, TokenPair, User};
use crate::crypto::tokens::{OneTimeToken, OneTimeTokenHash};
use crate::domain::{AuthMethod, Authentication, DeviceName, Email, Password, TokenPurpose, Username};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::LimitKey;
use crate::mail::Template;
use crate::store::{
    NewMail, NewOneTimeToken, Redeem, Redeemed, Redemption, StoreError, StoredOneTimeToken, UserRecord,
};

/// How long a verification link works.
pub const VERIFY_TTL_SECS: u64 = 24 * 3600;
/// How long the link confirming a new address works.
pub const CHANGE_TTL_SECS: u64 = 24 * 3600;
/// How long a sign-in link works.
pub const MAGIC_TTL_SECS: u64 = 15 * 60;

/// The page of `/account` a token's link opens.
fn page(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::VerifyEmail | TokenPurpose::ChangeEmail => "verify",
        TokenPurpose::ResetPassword => "reset",
        // An MFA step is never mailed.
        TokenPurpose::MagicLink | TokenPurpose::MfaLogin => "magic",
    }
}

/// Whether a token of `purpose` dies when the user's stamp moves after it went out: a
/// verification proves an address whatever else changed; every other link is void once
/// the password (the stamp) changed.
fn dies_with_the_stamp(purpose: TokenPurpose) -> bool {
    purpose != TokenPurpose::VerifyEmail
}

/// The per-address mail budget's key: a digest, so no address is kept in the limiter
/// (or Redis) as such; case does not make another budget.
fn recipient_key(email: &Email) -> LimitKey {
    let digest = Sha256::digest(email.folded().as_bytes());
    LimitKey::MailRecipient(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

impl AuthService {
    pub(super) fn compose(&self, to: &Email, username: &str, template: Template<'_>) -> Result<NewMail, AuthError> {
        let content = template.render(&self.recovery.product, username, to.as_str());
        self.mail
            .message(to, template.kind(), content)
            .map_err(AuthError::internal)
    }

    /// A fresh token of `purpose`: its hash, and the link that carries it.
    fn new_token(&self, purpose: TokenPurpose) -> Result<(OneTimeTokenHash, String), AuthError> {
        let (token, hash) = OneTimeToken::generate().map_err(AuthError::internal)?;
        let link = format!(
            "{}/{}#token={}",
            self.recovery.account_url,
            page(purpose),
            token.expose()
        );
        Ok((hash, link))
    }

    /// Store token `hash` of `purpose` for `user` (for `to`), with its `mail` and any
    /// `notices`, in one transaction; `false` if the user changed meanwhile (nothing
    /// written, nothing sent).
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        user: &UserRecord,
        purpose: TokenPurpose,
        to: &Email,
        ttl_secs: u64,
        hash: OneTimeTokenHash,
        mail: NewMail,
        notices: Vec<NewMail>,
    ) -> Result<bool, AuthError> {
        let mut mails = vec![mail];
        mails.extend(notices);
        let now = self.clock.now();
        let issued = self
            .store
            .issue_one_time(NewOneTimeToken {
                hash,
                purpose,
                user: user.id,
                email: to.clone(),
                expected_stamp: user.security_stamp,
                now,
                expires_at: now.plus(ttl_secs),
                mails,
                context: None,
                // The newest link is the one to open.
                replaces_older: true,
            })
            .await?;
        if issued {
            self.mail.wake();
        }
        Ok(issued)
    }

    /// A verification link for `user`'s address.
    async fn mail_verification(&self, user: &UserRecord) -> Result<bool, AuthError> {
        let (hash, link) = self.new_token(TokenPurpose::VerifyEmail)?;
        let template = Template::VerifyEmail {
            link: &link,
            expires_in_secs: VERIFY_TTL_SECS,
        };
        let mail = self.compose(&user.email, user.username.as_str(), template)?;
        self.issue(
            user,
            TokenPurpose::VerifyEmail,
            &user.email,
            VERIFY_TTL_SECS,
            hash,
            mail,
            Vec::new(),
        )
        .await
    }

    /// Count one mail to `to` against `TOKENGATE_MAIL_RATE`, and one from the client's
    /// network against `TOKENGATE_MAIL_NETWORK_RATE`.
    async fn mail_budget(&self, to: &Email, client: &ClientInfo) -> Result<Spent, AuthError> {
        let keys = [LimitKey::MailIp(net_of(client)), recipient_key(to)];
        for key in &keys {
            self.limit(key.clone(), AuthEvent::MailLimited, client).await?;
        }
        Ok(Spent(keys.into()))
    }

    /// Spend `presented` with `effect` (and queue `mails`); the same refusal for every
    /// reason it is not good.
    async fn redeem(
        &self,
        presented: &str,
        effect: Redemption,
        mails: Vec<NewMail>,
        client: &ClientInfo,
    ) -> Result<Redeemed, AuthError> {
        let hash = OneTimeTokenHash::of_presented(presented).ok_or_else(|| self.rejected(client))?;
        let check_stamp = dies_with_the_stamp(effect.purpose());
        let queues_mail = !mails.is_empty();
        let redeem = Redeem {
            hash,
            now: self.clock.now(),
            effect,
            check_stamp,
            mails,
        };
        match self.store.redeem_one_time(redeem).await {
            Ok(Some(done)) => {
                if queues_mail {
                    self.mail.wake();
                }
                Ok(done)
            }
            Ok(None) => Err(self.rejected(client)),
            // An email change to an address someone took meanwhile.
            Err(StoreError::Conflict) => Err(AuthError::Taken),
            Err(e) => Err(e.into()),
        }
    }

    fn rejected(&self, client: &ClientInfo) -> AuthError {
        self.events.record(AuthEvent::OneTimeTokenRejected, None, None, client);
        AuthError::InvalidOneTimeToken
    }

    /// The live token `presented` of one of `purposes` and its user, if any (a read:
    /// the redemption decides).
    async fn token_user(
        &self,
        presented: &str,
        purposes: &[TokenPurpose],
    ) -> Result<Option<(StoredOneTimeToken, UserRecord)>, AuthError> {
        let Some(hash) = OneTimeTokenHash::of_presented(presented) else {
            return Ok(None);
        };
        let Some(t) = self.store.one_time_token(&hash).await? else {
            return Ok(None);
        };
        if t.used_at.is_some() || t.expires_at <= self.clock.now() || !purposes.contains(&t.purpose) {
            return Ok(None);
        }
        Ok(self.store.user_by_id(t.user).await?.map(|u| (t, u)))
    }

    /// `POST /auth/link/account`: whose account a link's token acts on, and for what (a
    /// read: nothing is spent), for the page the link opens to say before the user
    /// acts; the same refusal as a redemption's for a token that would be refused.
    pub async fn link_account(
        &self,
        presented: &str,
        client: &ClientInfo,
    ) -> Result<(Username, TokenPurpose), AuthError> {
        match self.token_user(presented, &TokenPurpose::MAILED).await? {
            Some((t, u)) if u.is_active && (!dies_with_the_stamp(t.purpose) || u.security_stamp == t.stamp) => {
                Ok((u.username, t.purpose))
            }
            _ => Err(self.rejected(client)),
        }
    }

    /// After a registration: the verification mail. The account stands whatever
    /// happens to the mail (logged): the user can ask again.
    pub(super) async fn send_welcome(&self, user: &User, client: &ClientInfo) {
        // Registration is mail too: without these budgets, one client could mail a
        // list of addresses by registering them. Past one, no mail (the user can ask).
        if self.mail_budget(&user.email, client).await.is_err() {
            return;
        }
        match self.store.user_by_id(user.id).await {
            Ok(Some(record)) => self.queue_verification(&record, client).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, user_id = %user.id, "the verification mail was not queued"),
        }
    }

    /// A verification link for `user`, logged: what asked for it stands whatever
    /// happens to the mail.
    async fn queue_verification(&self, user: &UserRecord, client: &ClientInfo) {
        match self.mail_verification(user).await {
            Ok(true) => self
                .events
                .record(AuthEvent::EmailVerificationSent, Some(user.id), None, client),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, user_id = %user.id, "the verification mail was not queued"),
        }
    }

    /// A login refused for want of a verified address (with its right password): a
    /// new link, within the address's budget; the refusal stands whatever happens here.
    pub(super) async fn verification_after_login(&self, user: &UserRecord, client: &ClientInfo) {
        if self.mail_budget(&user.email, client).await.is_ok() {
            self.queue_verification(user, client).await;
        }
    }

    /// `POST /auth/email/verify/request`: mail the caller a verification link (nothing
    /// when the address is verified already).
    pub async fn request_verification(&self, who: &Principal, client: &ClientInfo) -> Result<(), AuthError> {
        let user = &who.user;
        if user.email_verified {
            return Ok(());
        }
        self.mail_budget(&user.email, client).await?;
        let sent = self.mail_verification(user).await?;
        if sent {
            self.events.record(
                AuthEvent::EmailVerificationSent,
                Some(user.id),
                Some(who.session.id),
                client,
            );
        }
        Ok(())
    }

    /// `POST /auth/email/verify`: a verification link, or the link confirming a new
    /// address (which then becomes the account's; the former address is told).
    pub async fn verify_email(&self, presented: &str, client: &ClientInfo) -> Result<User, AuthError> {
        let found = self
            .token_user(presented, &[TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail])
            .await?;
        let done = match found {
            Some((token, before)) if token.purpose == TokenPurpose::ChangeEmail => {
                let done = self.redeem_change(presented, &token.email, &before, client).await?;
                self.events
                    .record(AuthEvent::EmailChanged, Some(done.user.id), None, client);
                done
            }
            _ => {
                let done = self
                    .redeem(presented, Redemption::VerifyEmail, Vec::new(), client)
                    .await?;
                self.events
                    .record(AuthEvent::EmailVerified, Some(done.user.id), None, client);
                done
            }
        };
        Ok(User::from(done.user))
    }

    /// An email change to `new_email` (as the token, read just before, holds it), with
    /// its notice to the address it leaves; a redemption of another token in between
    /// fails this one (the stamp moved), so the notice and the change cannot disagree.
    async fn redeem_change(
        &self,
        presented: &str,
        new_email: &Email,
        before: &UserRecord,
        client: &ClientInfo,
    ) -> Result<Redeemed, AuthError> {
        let notice = self.compose(
            &before.email,
            before.username.as_str(),
            Template::EmailChanged {
                new_email: new_email.as_str(),
            },
        )?;
        self.redeem(presented, Redemption::ChangeEmail, vec![notice], client)
            .await
    }

    /// `POST /auth/password/forgot`: the same answer, as fast, for any address; the
    /// address's budget is spent whether it is an account's or not. The lookup and the
    /// mail run after the answer.
    pub async fn forgot_password(self: &Arc<Self>, email: Email, client: &ClientInfo) -> Result<(), AuthError> {
        self.request_link(email, TokenPurpose::ResetPassword, client).await
    }

    /// A reset or sign-in link asked for: the address's budgets are spent now; the
    /// lookup and the mail run after the answer, at most [`super::LINKS_IN_FLIGHT`] at
    /// once (past that, the request is dropped, logged, and its budget given back: a
    /// flood must not queue unbounded work behind the answers it already got, and a
    /// dropped request mailed no one).
    async fn request_link(
        self: &Arc<Self>,
        email: Email,
        purpose: TokenPurpose,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let spent = self.mail_budget(&email, client).await?;
        let Ok(permit) = Arc::clone(&self.recovery_slots).try_acquire_owned() else {
            tracing::warn!("too many reset and sign-in links in flight; one request dropped");
            self.give_back(spent).await;
            return Ok(());
        };
        let this = Arc::clone(self);
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = this.send_link(&email, purpose, &client).await {
                tracing::warn!(error = %e, "a reset or sign-in link was not queued");
            }
            drop(permit);
        });
        Ok(())
    }

    /// `POST /auth/magic-link`: as [`AuthService::forgot_password`], for a sign-in link.
    pub async fn request_magic_link(self: &Arc<Self>, email: Email, client: &ClientInfo) -> Result<(), AuthError> {
        if !self.recovery.magic_links {
            return Err(AuthError::Disabled);
        }
        self.request_link(email, TokenPurpose::MagicLink, client).await
    }

    /// A reset or sign-in link to the active account `email` is, if any.
    async fn send_link(&self, email: &Email, purpose: TokenPurpose, client: &ClientInfo) -> Result<(), AuthError> {
        let Some(user) = self.store.user_by_email(email).await? else {
            return Ok(());
        };
        if !user.is_active {
            return Ok(());
        }
        let (hash, link) = self.new_token(purpose)?;
        let (ttl, event, template) = match purpose {
            TokenPurpose::MagicLink => (
                MAGIC_TTL_SECS,
                AuthEvent::MagicLinkRequested,
                Template::MagicLink {
                    link: &link,
                    expires_in_secs: MAGIC_TTL_SECS,
                },
            ),
            _ => {
                let ttl = self.recovery.reset_ttl_secs;
                let template = Template::PasswordReset {
                    link: &link,
                    expires_in_secs: ttl,
                };
                (ttl, AuthEvent::PasswordResetRequested, template)
            }
        };
        let mail = self.compose(&user.email, user.username.as_str(), template)?;
        let sent = self
            .issue(&user, purpose, &user.email, ttl, hash, mail, Vec::new())
            .await?;
        if sent {
            self.events.record(event, Some(user.id), None, client);
        }
        Ok(())
    }

    /// `POST /auth/password/reset`: a new password through a reset link. Every session
    /// of the user dies (the stamp moves), the address counts as verified, and the user
    /// is told. The token is read before the password is hashed, so a wrong token costs
    /// no hash; the redemption decides.
    pub async fn reset_password(&self, presented: &str, new: Password, client: &ClientInfo) -> Result<(), AuthError> {
        let Some((_, user)) = self.token_user(presented, &[TokenPurpose::ResetPassword]).await? else {
            return Err(self.rejected(client));
        };
        let hash = self.hasher.hash(new).await?;
        let notice = self.compose(&user.email, user.username.as_str(), Template::PasswordChanged)?;
        let done = self
            .redeem(presented, Redemption::ResetPassword { hash }, vec![notice], client)
            .await?;
        self.events
            .record(AuthEvent::PasswordResetByMail, Some(done.user.id), None, client);
        Ok(())
    }

    /// `POST /auth/email/change`: with the password (step-up), mail a link to the new
    /// address (it takes effect when opened) and a notice to the current one.
    pub async fn request_email_change(
        &self,
        who: &Principal,
        new_email: Email,
        step_up: super::StepUp,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = &who.user;
        if new_email.folded() == user.email.folded() {
            return Ok(());
        }
        // Taken now: said at once (registration says as much). Taken by the time the
        // link is opened: the change fails then, with the same 409.
        // Both addresses' budgets, before anything is looked up or sent: the notice to
        // the current address is mail too, and a caller must not turn this route into a
        // way to mail anyone, or to test which addresses are taken, without bound.
        self.mail_budget(&user.email, client).await?;
        self.mail_budget(&new_email, client).await?;
        if self.store.user_by_email(&new_email).await?.is_some() {
            return Err(AuthError::Taken);
        }
        // Last of the refusals: the step-up spends a code, which a refusal after it
        // would waste.
        self.step_up(who, step_up, client).await?;
        let notice = self.compose(
            &user.email,
            user.username.as_str(),
            Template::EmailChangeRequested {
                new_email: new_email.as_str(),
            },
        )?;
        let (hash, link) = self.new_token(TokenPurpose::ChangeEmail)?;
        let template = Template::EmailChange {
            link: &link,
            expires_in_secs: CHANGE_TTL_SECS,
            new_email: new_email.as_str(),
        };
        let mail = self.compose(&new_email, user.username.as_str(), template)?;
        let sent = self
            .issue(
                user,
                TokenPurpose::ChangeEmail,
                &new_email,
                CHANGE_TTL_SECS,
                hash,
                mail,
                vec![notice],
            )
            .await?;
        if !sent {
            // The account changed since this request's token was checked.
            return Err(AuthError::InvalidToken(super::TokenProblem::Revoked));
        }
        self.events.record(
            AuthEvent::EmailChangeRequested,
            Some(user.id),
            Some(who.session.id),
            client,
        );
        Ok(())
    }

    /// `POST /auth/magic-link/login`: a sign-in link's session (the address is proven
    /// by it). The first proof of an address also ends every session of the account and
    /// voids its password (the owner sets one by a reset).
    pub async fn magic_link_login(
        &self,
        presented: &str,
        device_name: Option<DeviceName>,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        if !self.recovery.magic_links {
            return Err(AuthError::Disabled);
        }
        // Read first, so a wrong token costs no hash.
        let Some((_, user)) = self.token_user(presented, &[TokenPurpose::MagicLink]).await? else {
            return Err(self.rejected(client));
        };
        // An address never proven may have been registered by someone else first (an
        // account pre-hijack): its password gives way to one nobody knows.
        // Not for an account with MFA on, though: its second factor would go with the
        // password, and a mailbox alone must not be enough to take such an account
        // (its owner may have mistyped the address). Such a link is refused; the owner
        // signs in with the password and the second factor, then proves the address.
        let unproven_password = if user.email_verified || user.mfa_enabled {
            None
        } else {
            Some(self.hasher.hash_unguessable().await?)
        };
        let done = self
            .redeem(presented, Redemption::SignIn { unproven_password }, Vec::new(), client)
            .await?;
        self.events
            .record(AuthEvent::LoginMagicLink, Some(done.user.id), None, client);
        let sign_in = super::SignIn {
            auth: Authentication::new(self.clock.now(), &[AuthMethod::Email]),
            device_name,
            known_device: None,
            app: None,
        };
        self.open_session(done.user, sign_in, client).await
    }

    /// The caller's password again (step-up), against this session's own budget of
    /// failures.
    pub(super) async fn step_up_password(
        &self,
        who: &Principal,
        password: Password,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let budget = LimitKey::PasswordSession(who.session.id);
        self.limit(budget.clone(), AuthEvent::LoginLimited, client).await?;
        let verified = self.hasher.verify(password, Some(who.user.password_hash.clone())).await;
        // Only a wrong password counts (a busy hasher judged nothing).
        self.settle(Spent(vec![budget]), matches!(verified, Ok(false))).await;
        if !verified? {
            self.events.record(
                AuthEvent::PasswordChangeFailed,
                Some(who.user.id),
                Some(who.session.id),
                client,
            );
            return Err(AuthError::WrongPassword);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_budget_is_one_per_address_whatever_its_case_and_names_no_address() {
        let a = recipient_key(&Email::parse("Alice@Example.com").unwrap());
        let b = recipient_key(&Email::parse("alice@example.com").unwrap());
        assert_eq!(a, b);
        let LimitKey::MailRecipient(digest) = a else { panic!() };
        assert_eq!(digest.len(), 32);
        assert!(!digest.contains("alice"));
    }
}
