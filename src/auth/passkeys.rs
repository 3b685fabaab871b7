//! Passkeys (WebAuthn): registration, sign-in with no username (discoverable) or after
//! one, the second step of a password sign-in, step-up, and their management.
//!
//! The rules: the WebAuthn library (webauthn-rs) verifies every answer (origin, RP ID,
//! challenge, signature, user verification, counter); a ceremony is stored server-side
//! for 5 minutes and finished once, by any instance; registering needs step-up and a
//! proven address, and turns MFA on (a passkey is a second factor after a password, and
//! a whole sign-in by itself); adding or removing one ends every other session and
//! mails a notice; a username that is unknown, or has no passkey, gets sign-in options
//! shaped like a real user's.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    WebauthnError,
};

use super::budget::Spent;
use super::mfa::StepUp;
use super::sessions::net_of;
use super::{AuthError, AuthService, PasskeyPolicy, PasskeyProof, Principal, SignIn, TokenPair};
use crate::crypto::recovery_codes::RecoveryCode;
use crate::crypto::tokens::{OneTimeToken, OneTimeTokenHash};
use crate::domain::{AuthMethod, Authentication, CeremonyKind, PasskeyId, PasskeyName, UnixTime, UserId, Username};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::LimitKey;
use crate::store::{
    AddPasskey, NewCeremony, PasskeyAdded, PasskeyRemoved, PasskeyUse, RemovePasskey, StoredPasskey, UserRecord,
};

/// How long a ceremony may wait for its authenticator (and its user).
pub const CEREMONY_TTL_SECS: u64 = 5 * 60;

/// A ceremony begun: its id, and the options for `navigator.credentials.create()` or
/// `.get()` (`publicKey`).
#[derive(Debug)]
pub struct CeremonyStart {
    pub ceremony_id: String,
    pub public_key: Value,
}

/// A passkey as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyView {
    pub id: PasskeyId,
    pub name: PasskeyName,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

impl From<&StoredPasskey> for PasskeyView {
    fn from(p: &StoredPasskey) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// A registered passkey, and the recovery codes made when it turned MFA on (shown
/// this once).
#[derive(Debug)]
pub struct PasskeyRegistered {
    pub passkey: PasskeyView,
    pub recovery_codes: Option<Vec<RecoveryCode>>,
}

/// What a registration ceremony keeps.
#[derive(Serialize, Deserialize)]
struct Registering {
    state: PasskeyRegistration,
    /// The session that began it: only it finishes it.
    session: String,
}

/// What a sign-in, second-step or step-up ceremony keeps.
#[derive(Serialize, Deserialize)]
struct Asserting {
    state: DiscoverableAuthentication,
    /// The second step's MFA token (its hash), or the step-up's session.
    #[serde(default)]
    bound_to: Option<String>,
    /// Begun for one user (by username, MFA token or session): only that user's
    /// passkeys finish it, so one that named nobody is finished by none.
    #[serde(default)]
    named: bool,
}

/// A verified assertion: whose passkey, and how it signed in.
struct Asserted {
    user: UserRecord,
    method: AuthMethod,
}

impl AuthService {
    fn passkey_policy(&self) -> Result<&PasskeyPolicy, AuthError> {
        self.passkeys.as_ref().ok_or(AuthError::PasskeysOff)
    }

    /// Log at start-up what passkeys this server serves, and warn when passkeys were
    /// registered for another RP ID (they cannot sign in here).
    pub async fn check_passkey_rp_id(&self) -> Result<(), AuthError> {
        let registered = self.store.passkey_rp_ids().await?;
        let here = self.passkeys.as_ref().map(PasskeyPolicy::rp_id);
        for (rp_id, count) in registered.iter().filter(|(id, _)| Some(id.as_str()) != here) {
            tracing::warn!(
                registered_for = %rp_id,
                passkeys = count,
                rp_id = here.unwrap_or("(none: passkeys are off)"),
                "passkeys registered for another RP ID cannot sign in here: TOKENGATE_WEBAUTHN_RP_ID (or the public URL's host) changed"
            );
        }
        Ok(())
    }

    async fn open(
        &self,
        kind: CeremonyKind,
        user: Option<UserId>,
        state: &impl Serialize,
    ) -> Result<String, AuthError> {
        let (id, hash) = OneTimeToken::generate().map_err(AuthError::internal)?;
        let now = self.clock.now();
        self.store
            .open_ceremony(NewCeremony {
                hash,
                kind,
                user,
                state: serde_json::to_string(state).map_err(AuthError::internal)?,
                now,
                expires_at: now.plus(CEREMONY_TTL_SECS),
            })
            .await?;
        Ok(id.expose().to_owned())
    }

    /// Take a ceremony of `kind` to finish it: once, unexpired.
    async fn take<T: for<'de> Deserialize<'de>>(
        &self,
        ceremony_id: &str,
        kind: CeremonyKind,
    ) -> Result<(Option<UserId>, T), AuthError> {
        let hash = OneTimeTokenHash::of_presented(ceremony_id).ok_or(AuthError::InvalidCeremony)?;
        let taken = self
            .store
            .take_ceremony(&hash, kind, self.clock.now())
            .await?
            .ok_or(AuthError::InvalidCeremony)?;
        let state = serde_json::from_str(&taken.state).map_err(AuthError::internal)?;
        Ok((taken.user, state))
    }

    /// Begin registering a passkey (step-up, a proven address): the options for
    /// `navigator.credentials.create()`. A failed or abandoned ceremony costs nothing:
    /// begin another.
    pub async fn begin_passkey_registration(
        &self,
        who: &Principal,
        step_up: StepUp,
        client: &ClientInfo,
    ) -> Result<CeremonyStart, AuthError> {
        let policy = self.passkey_policy()?;
        // As for TOTP: a factor on an address nobody proved would keep its owner out.
        if !who.user.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        self.limit(
            LimitKey::CeremonyOwner(format!("user:{}", who.user.id)),
            AuthEvent::PasskeyLimited,
            client,
        )
        .await?;
        self.step_up(who, step_up, client).await?;
        let user = &who.user;
        let existing = self.store.passkeys_of(user.id).await?;
        let exclude = existing.iter().map(|p| p.credential_id.clone()).collect::<Vec<_>>();
        let (options, state) = policy
            .webauthn
            .start_passkey_registration(
                user.id.as_uuid(),
                user.username.as_str(),
                user.username.as_str(),
                Some(exclude),
            )
            .map_err(AuthError::internal)?;
        let mut public_key = serde_json::to_value(options.public_key).map_err(AuthError::internal)?;
        // A credential the browser can offer without a username (discoverable), where
        // the authenticator can keep one; the library asks for none.
        public_key["authenticatorSelection"]["residentKey"] = Value::from("preferred");
        let ceremony_id = self
            .open(
                CeremonyKind::Register,
                Some(user.id),
                &Registering {
                    state,
                    session: who.session.id.to_string(),
                },
            )
            .await?;
        Ok(CeremonyStart {
            ceremony_id,
            public_key,
        })
    }

    /// Finish a registration with the authenticator's answer: the passkey is stored,
    /// MFA is on (recovery codes made if it was off), every other session ends, the
    /// user is told.
    pub async fn finish_passkey_registration(
        &self,
        who: &Principal,
        ceremony_id: &str,
        credential: Value,
        name: PasskeyName,
        client: &ClientInfo,
    ) -> Result<PasskeyRegistered, AuthError> {
        let policy = self.passkey_policy()?;
        let (user, registering): (_, Registering) = self.take(ceremony_id, CeremonyKind::Register).await?;
        if user != Some(who.user.id) || registering.session != who.session.id.to_string() {
            return Err(AuthError::InvalidCeremony);
        }
        let answer: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| AuthError::PasskeyRejected)?;
        let passkey = policy
            .webauthn
            .finish_passkey_registration(&answer, &registering.state)
            .map_err(|e| {
                tracing::info!(user_id = %who.user.id, error = %e, "passkey registration refused");
                AuthError::PasskeyRejected
            })?;
        let now = self.clock.now();
        let stored = StoredPasskey {
            id: PasskeyId::new(),
            user: who.user.id,
            credential_id: passkey.cred_id().to_vec(),
            rp_id: policy.rp_id.clone(),
            name,
            credential: serde_json::to_string(&passkey).map_err(AuthError::internal)?,
            sign_count: 0,
            created_at: now,
            last_used_at: None,
        };
        let (codes, hashes) = RecoveryCode::generate_set().map_err(AuthError::internal)?;
        let view = PasskeyView::from(&stored);
        // A synced passkey is a key in software (the library keeps the flag it read).
        let synced = serde_json::to_value(&passkey)
            .ok()
            .and_then(|v| v["cred"]["backup_eligible"].as_bool())
            .unwrap_or(false);
        let key = if synced { AuthMethod::Swk } else { AuthMethod::Hwk };
        let added = self
            .store
            .add_passkey(AddPasskey {
                passkey: stored,
                codes_if_first: hashes,
                keep: who.session.id,
                // This session just proved the passkey (with its user verified).
                keep_auth: who.session.auth.and(&[key, AuthMethod::User]),
                now,
                mails: self.mfa_notice(
                    &who.user,
                    &format!(
                        "A passkey ({}) was added to your account, and every other session of the account was signed out.",
                        view.name.as_str()
                    ),
                ),
            })
            .await?;
        match added {
            PasskeyAdded::Added { mfa_turned_on, .. } => {
                self.events
                    .record(AuthEvent::PasskeyAdded, Some(who.user.id), Some(who.session.id), client);
                Ok(PasskeyRegistered {
                    passkey: view,
                    recovery_codes: mfa_turned_on.then_some(codes),
                })
            }
            PasskeyAdded::CredentialTaken => Err(AuthError::PasskeyTaken),
            PasskeyAdded::NoUser => Err(AuthError::InactiveUser),
        }
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, who: &Principal) -> Result<Vec<PasskeyView>, AuthError> {
        let stored = self.store.passkeys_of(who.user.id).await?;
        Ok(stored.iter().map(PasskeyView::from).collect())
    }

    /// Rename one of the caller's passkeys.
    pub async fn rename_passkey(
        &self,
        who: &Principal,
        id: PasskeyId,
        name: PasskeyName,
    ) -> Result<PasskeyView, AuthError> {
        if !self.store.rename_passkey(who.user.id, id, name).await? {
            return Err(AuthError::NotFound);
        }
        let stored = self.store.passkeys_of(who.user.id).await?;
        stored
            .iter()
            .find(|p| p.id == id)
            .map(PasskeyView::from)
            .ok_or(AuthError::NotFound)
    }

    /// Remove one of the caller's passkeys (step-up): every other session ends, the
    /// user is told; the last factor of a holder of an MFA-required role stays.
    pub async fn remove_passkey(
        &self,
        who: &Principal,
        id: PasskeyId,
        step_up: StepUp,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let stored = self.store.passkeys_of(who.user.id).await?;
        let passkey = stored.iter().find(|p| p.id == id).ok_or(AuthError::NotFound)?;
        self.step_up(who, step_up, client).await?;
        let removed = self
            .store
            .remove_passkey(RemovePasskey {
                user: who.user.id,
                id,
                keep: who.session.id,
                keep_a_factor: self.holds_mfa_role(&who.user),
                now: self.clock.now(),
                mails: self.mfa_notice(
                    &who.user,
                    &format!(
                        "The passkey {} was removed from your account, and every other session of the account was signed out.",
                        passkey.name.as_str()
                    ),
                ),
            })
            .await?;
        match removed {
            PasskeyRemoved::Removed { .. } => {
                self.events.record(
                    AuthEvent::PasskeyRemoved,
                    Some(who.user.id),
                    Some(who.session.id),
                    client,
                );
                Ok(())
            }
            PasskeyRemoved::NotFound => Err(AuthError::NotFound),
            PasskeyRemoved::LastFactor => Err(AuthError::LastFactor),
        }
    }

    /// Whether `user` holds a role this server requires MFA of.
    pub(super) fn holds_mfa_role(&self, user: &UserRecord) -> bool {
        self.mfa
            .required_roles
            .iter()
            .any(|r| user.roles.iter().any(|held| held == r))
    }

    /// Begin a passkey sign-in: with no username, for the browser to offer the user's
    /// discoverable passkeys; with one, for that user's passkeys (a username unknown, or
    /// without passkeys, gets options of the same shape, and a ceremony no passkey
    /// finishes); with an MFA token, as the second step of that sign-in.
    pub async fn begin_passkey_sign_in(
        &self,
        username: Option<&str>,
        mfa_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<CeremonyStart, AuthError> {
        let policy = self.passkey_policy()?;
        // Every start is stored until it expires: counted, never given back; a second
        // step's against its user once its MFA token is known live (however many tokens
        // their password buys), any other (and a dead token's) against the client's
        // network.
        let live = match mfa_token {
            Some(token) => {
                let found = match OneTimeTokenHash::of_presented(token) {
                    Some(hash) => self.live_mfa_token(&hash, client).await.map(|(t, _)| (hash, t)),
                    None => Err(AuthError::InvalidMfaToken),
                };
                if let Err(e) = found {
                    self.limit(LimitKey::CeremonyIp(net_of(client)), AuthEvent::PasskeyLimited, client)
                        .await?;
                    return Err(e);
                }
                found.ok()
            }
            None => None,
        };
        let budget = match &live {
            Some((_, token)) => LimitKey::CeremonyOwner(format!("user:{}", token.user)),
            None => LimitKey::CeremonyIp(net_of(client)),
        };
        self.limit(budget, AuthEvent::PasskeyLimited, client).await?;
        let (options, state) = policy
            .webauthn
            .start_discoverable_authentication()
            .map_err(AuthError::internal)?;
        let mut public_key = serde_json::to_value(options.public_key).map_err(AuthError::internal)?;
        let mut asserting = Asserting {
            state,
            bound_to: None,
            named: false,
        };
        let (kind, user) = if let Some((hash, token)) = live {
            allow(&mut public_key, &self.credential_ids(token.user).await?);
            asserting.bound_to = Some(hash.as_str().to_owned());
            asserting.named = true;
            (CeremonyKind::SecondFactor, Some(token.user))
        } else if let Some(name) = username {
            // Usernames only (an address would tie itself to its account's passkeys),
            // matched as login matches them; the same reads whether or not the name is
            // anyone's.
            let user = match Username::parse(name) {
                Ok(_) => self.store.user_by_username(name).await?,
                Err(_) => None,
            };
            let nobody = UserId::from_uuid(uuid::Uuid::nil());
            let ids = self.credential_ids(user.as_ref().map_or(nobody, |u| u.id)).await?;
            // Unknown, or without a passkey: credentials that exist nowhere, the same for
            // every spelling the lookup takes as this name (asking twice, or in another
            // case, tells nothing either).
            let ids = if ids.is_empty() {
                self.decoy_credentials(name)
            } else {
                ids
            };
            allow(&mut public_key, &ids);
            asserting.named = true;
            (CeremonyKind::SignIn, user.map(|u| u.id))
        } else {
            (CeremonyKind::SignIn, None)
        };
        let ceremony_id = self.open(kind, user, &asserting).await?;
        Ok(CeremonyStart {
            ceremony_id,
            public_key,
        })
    }

    /// Credential IDs that exist nowhere, the same for every spelling of `name` the
    /// username lookup matches (it ignores ASCII case): one or two, as real users have,
    /// each of a length real authenticators' IDs have (16 to 64 bytes).
    fn decoy_credentials(&self, name: &str) -> Vec<Vec<u8>> {
        const LENGTHS: [usize; 4] = [16, 20, 32, 64];
        let mac = &self.macs.passkey_decoy;
        let key = mac.raw_tag(name.to_ascii_lowercase().as_bytes());
        let count: u8 = if key[0].is_multiple_of(4) { 2 } else { 1 };
        (0..count)
            .map(|i| {
                let first = mac.raw_tag(&[&key[..], &[i, 1]].concat());
                let second = mac.raw_tag(&[&key[..], &[i, 2]].concat());
                let mut id = [first, second].concat();
                id.truncate(LENGTHS[usize::from(first[0]) % LENGTHS.len()]);
                id
            })
            .collect()
    }

    async fn credential_ids(&self, user: UserId) -> Result<Vec<Vec<u8>>, AuthError> {
        Ok(self
            .store
            .passkeys_of(user)
            .await?
            .into_iter()
            .map(|p| p.credential_id)
            .collect())
    }

    /// Finish a passkey sign-in: the login answer. As the second step of a password
    /// sign-in, it completes that sign-in (its MFA token is spent).
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony_id: &str,
        credential: Value,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let hash = OneTimeTokenHash::of_presented(ceremony_id).ok_or(AuthError::InvalidCeremony)?;
        let now = self.clock.now();
        // Which kind it is: the one whose ceremony this id takes.
        let taken = self.store.take_ceremony(&hash, CeremonyKind::SignIn, now).await?;
        let (kind, taken) = match taken {
            Some(t) => (CeremonyKind::SignIn, t),
            None => (
                CeremonyKind::SecondFactor,
                self.store
                    .take_ceremony(&hash, CeremonyKind::SecondFactor, now)
                    .await?
                    .ok_or(AuthError::InvalidCeremony)?,
            ),
        };
        let asserting: Asserting = serde_json::from_str(&taken.state).map_err(AuthError::internal)?;
        if kind == CeremonyKind::SecondFactor {
            let mfa = OneTimeTokenHash::from_store(asserting.bound_to.clone().unwrap_or_default());
            return self
                .passkey_second_step(&mfa, taken.user, asserting, credential, client)
                .await;
        }
        let mut spent = Spent::default();
        self.spend(&mut spent, LimitKey::LoginIp(net_of(client)), client)
            .await?;
        let asserted = self.verify_assertion(taken.user, asserting, credential, client).await;
        self.settle(spent, matches!(asserted, Err(AuthError::PasskeyRefused)))
            .await;
        let Asserted { user, method } = asserted?;
        let sign_in = SignIn {
            auth: Authentication::new(now, &[method, AuthMethod::User]),
            device_name: None,
            known_device: None,
            app: None,
        };
        self.open_session(user, sign_in, client).await
    }

    /// The second step of a password sign-in with a passkey.
    async fn passkey_second_step(
        &self,
        mfa: &OneTimeTokenHash,
        owner: Option<UserId>,
        asserting: Asserting,
        credential: Value,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let (token, pending) = self.live_mfa_token(mfa, client).await?;
        if owner != Some(token.user) {
            return Err(AuthError::InvalidCeremony);
        }
        let mut spent = Spent::default();
        self.spend(&mut spent, self.mfa_budget(&pending, token.user), client)
            .await?;
        let asserted = self.verify_assertion(owner, asserting, credential, client).await;
        self.settle(spent, matches!(asserted, Err(AuthError::PasskeyRefused)))
            .await;
        if let Err(AuthError::PasskeyRefused) = &asserted {
            self.events.record(AuthEvent::MfaFailed, Some(token.user), None, client);
            // A failed try costs the token one of its attempts.
            let _ = self
                .store
                .attempt_one_time(
                    mfa,
                    crate::domain::TokenPurpose::MfaLogin,
                    self.clock.now(),
                    super::mfa::MFA_TOKEN_ATTEMPTS,
                )
                .await?;
        }
        let Asserted { method, .. } = asserted?;
        self.complete_second_step(mfa, &token, pending, &[method, AuthMethod::User], client)
            .await
    }

    /// Verify an authenticator's assertion against the ceremony's state: the passkey
    /// it names is registered, is `owner`'s when the ceremony named a user, and signed
    /// this challenge for this origin with its user verified; its counter moved on.
    async fn verify_assertion(
        &self,
        owner: Option<UserId>,
        asserting: Asserting,
        credential: Value,
        client: &ClientInfo,
    ) -> Result<Asserted, AuthError> {
        let policy = self.passkey_policy()?;
        let refused = || AuthError::PasskeyRefused;
        let answer: PublicKeyCredential = serde_json::from_value(credential).map_err(|_| refused())?;
        let found = self.store.passkey_by_credential(answer.get_credential_id()).await?;
        // The passkey it names, if this ceremony takes it: registered, the ceremony's
        // user's when it named one (and it named someone), and the user its
        // discoverable answer names.
        let stored = found.filter(|stored| {
            let owner_ok = match owner {
                Some(o) => o == stored.user,
                None => !asserting.named,
            };
            let handle_ok = answer
                .get_user_unique_id()
                .is_none_or(|handle| handle == stored.user.as_uuid().as_bytes());
            owner_ok && handle_ok
        });
        // The user (and their stamp) before the use is recorded: a removal of this passkey
        // that commits after it moves the stamp, and the session is then not opened.
        let nobody = UserId::from_uuid(uuid::Uuid::nil());
        let user = self
            .store
            .user_by_id(stored.as_ref().map_or(owner.unwrap_or(nobody), |s| s.user))
            .await?;
        let (Some(stored), Some(user)) = (stored, user) else {
            // The same work as for a passkey this ceremony takes (a signature checked,
            // against a key nobody holds): how long the refusal takes tells nobody
            // whether a credential offered for a username was real.
            let _ = decoy_check(policy, &answer, asserting.state);
            return Err(refused());
        };
        let mut passkey: Passkey = serde_json::from_str(&stored.credential).map_err(AuthError::internal)?;
        let result = match policy
            .webauthn
            .finish_discoverable_authentication_v2(&answer, asserting.state, &passkey)
        {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(
                    user_id = %stored.user,
                    passkey_id = %stored.id,
                    "passkey refused: its signature counter went backwards (a cloned authenticator?)"
                );
                self.events
                    .record(AuthEvent::PasskeyCloned, Some(stored.user), None, client);
                return Err(refused());
            }
            Err(e) => {
                tracing::info!(user_id = %stored.user, error = %e, "passkey assertion refused");
                self.events
                    .record(AuthEvent::PasskeyFailed, Some(stored.user), None, client);
                return Err(refused());
            }
        };
        passkey.update_credential(&result);
        let recorded = self
            .store
            .record_passkey_use(PasskeyUse {
                id: stored.id,
                credential: serde_json::to_string(&passkey).map_err(AuthError::internal)?,
                sign_count: result.counter(),
                now: self.clock.now(),
            })
            .await?;
        if !recorded {
            // A use with a later counter was recorded meanwhile: this one is older.
            tracing::warn!(user_id = %stored.user, passkey_id = %stored.id, "passkey refused: a later use was recorded first");
            return Err(refused());
        }
        let method = if result.backup_eligible() {
            AuthMethod::Swk
        } else {
            AuthMethod::Hwk
        };
        Ok(Asserted { user, method })
    }

    /// Begin a step-up with a passkey: options for the caller's passkeys.
    pub async fn begin_passkey_step_up(
        &self,
        who: &Principal,
        client: &ClientInfo,
    ) -> Result<CeremonyStart, AuthError> {
        let policy = self.passkey_policy()?;
        let ids = self.credential_ids(who.user.id).await?;
        if ids.is_empty() {
            return Err(AuthError::NotFound);
        }
        self.limit(
            LimitKey::CeremonyOwner(format!("user:{}", who.user.id)),
            AuthEvent::PasskeyLimited,
            client,
        )
        .await?;
        let (options, state) = policy
            .webauthn
            .start_discoverable_authentication()
            .map_err(AuthError::internal)?;
        let mut public_key = serde_json::to_value(options.public_key).map_err(AuthError::internal)?;
        allow(&mut public_key, &ids);
        let asserting = Asserting {
            state,
            bound_to: Some(who.session.id.to_string()),
            named: true,
        };
        let ceremony_id = self.open(CeremonyKind::StepUp, Some(who.user.id), &asserting).await?;
        Ok(CeremonyStart {
            ceremony_id,
            public_key,
        })
    }

    /// A step-up's second proof by passkey: a step-up ceremony of this session,
    /// answered by one of the caller's passkeys.
    pub(super) async fn passkey_step_up(
        &self,
        who: &Principal,
        proof: PasskeyProof,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let (owner, asserting): (_, Asserting) = self.take(&proof.ceremony_id, CeremonyKind::StepUp).await?;
        if owner != Some(who.user.id) || asserting.bound_to.as_deref() != Some(&who.session.id.to_string()) {
            return Err(AuthError::InvalidCeremony);
        }
        let mut spent = Spent::default();
        self.spend(&mut spent, LimitKey::MfaSession(who.session.id), client)
            .await?;
        let asserted = self.verify_assertion(owner, asserting, proof.credential, client).await;
        self.settle(spent, matches!(asserted, Err(AuthError::PasskeyRefused)))
            .await;
        if asserted.is_err() {
            self.events
                .record(AuthEvent::MfaFailed, Some(who.user.id), Some(who.session.id), client);
        }
        asserted.map(|_| ())
    }
}

/// Check `answer` as [`webauthn_rs::Webauthn::finish_discoverable_authentication_v2`]
/// would, but against a public key whose private key was thrown away when it was made
/// (so it never verifies), under the credential ID the answer names: the cost of a real
/// check, for a refusal that must not be told apart by its time.
fn decoy_check(policy: &PasskeyPolicy, answer: &PublicKeyCredential, state: DiscoverableAuthentication) -> bool {
    let Ok(mut decoy) = serde_json::from_str::<Value>(DECOY_PASSKEY) else {
        return false;
    };
    decoy["cred"]["cred_id"] = Value::from(b64url(answer.get_credential_id()));
    match serde_json::from_value::<Passkey>(decoy) {
        Ok(key) => policy
            .webauthn
            .finish_discoverable_authentication_v2(answer, state, &key)
            .is_ok(),
        Err(_) => false,
    }
}

/// A passkey as webauthn-rs stores one: an ES256 public key made for [`decoy_check`],
/// whose private key was discarded at once (no one can sign for it).
const DECOY_PASSKEY: &str = r#"{"cred":{"cred_id":"AAAAAAAAAAAAAAAAAAAAAA","cred":{"type_":"ES256","key":{"EC_EC2":{"curve":"SECP256R1","x":"o7ZivJGaPQQ6MHqDmF8D2mLjg3p7lfbwVaykIWu3ww4","y":"7OWiJtwA0Q_AEWvpAyjEOvMX1v0cnIL31aMM-76Aoic"}}},"counter":0,"transports":null,"user_verified":true,"backup_eligible":false,"backup_state":false,"registration_policy":"required","extensions":{"cred_protect":"Ignored","hmac_create_secret":"NotRequested","appid":"NotRequested","cred_props":"Ignored"},"attestation":{"data":"None","metadata":"None"},"attestation_format":"none"}}"#;

/// Offer exactly these credentials (`allowCredentials`).
fn allow(public_key: &mut Value, ids: &[Vec<u8>]) {
    public_key["allowCredentials"] = ids
        .iter()
        .map(|id| serde_json::json!({"type": "public-key", "id": b64url(id)}))
        .collect();
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
