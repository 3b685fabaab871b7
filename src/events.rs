//! Auth events: one structured log line per security-relevant event, with ids and
//! client facts only: never a password, token or secret. `auth` reports each event to
//! an injected [`EventSink`]; the server's sink logs and counts in one place, so the
//! log and the metrics can never disagree.

use std::net::IpAddr;

use crate::domain::{SessionId, UserId};

/// Who is calling, as far as the transport tells.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// What a session, and every log line and event about it, keeps of its client's address
/// (`TOKENGATE_SESSION_IP`): all of it, its network (IPv4 /24, IPv6 /48), or nothing, for
/// deployments that must keep as little personal data as they can.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionIp {
    #[default]
    Full,
    Prefix,
    None,
}

impl SessionIp {
    /// `ip` as a session stores it under this policy.
    pub fn keep(self, ip: Option<std::net::IpAddr>) -> Option<String> {
        let ip = ip?;
        match self {
            Self::Full => Some(ip.to_string()),
            Self::None => None,
            Self::Prefix => {
                let len = if ip.is_ipv4() { 24 } else { 48 };
                Some(ipnet::IpNet::new(ip, len).ok()?.trunc().to_string())
            }
        }
    }
}

/// The security-relevant things that happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthEvent {
    Register,
    RegisterLimited,
    LoginOk,
    LoginFailed,
    LoginInactive,
    LoginLimited,
    Refresh,
    RefreshLimited,
    RefreshRejected,
    RefreshReuse,
    /// A token spent moments ago came back within the reuse grace and was given the
    /// same successor again.
    RefreshRepeated,
    Logout,
    LogoutAll,
    PasswordChanged,
    PasswordChangeFailed,
    PasswordReset,
    /// A stored hash of another kind or cost was replaced by argon2id at the
    /// configured cost, at a login that verified it.
    PasswordRehashed,
    SessionRevoked,
    RolesChanged,
    UserDeactivated,
    UserActivated,
    UserDeleted,
    /// Mail to one address was refused: over `TOKENGATE_MAIL_RATE`.
    MailLimited,
    EmailVerificationSent,
    EmailVerified,
    /// A reset link was asked for an address that belongs to a user (and mailed).
    PasswordResetRequested,
    /// A password set through a reset link.
    PasswordResetByMail,
    EmailChangeRequested,
    EmailChanged,
    MagicLinkRequested,
    LoginMagicLink,
    /// A one-time token was refused (unknown, spent, expired, of another purpose).
    OneTimeTokenRejected,
    /// A first factor was right; the second was asked for.
    MfaChallenged,
    /// A second factor was refused (wrong, replayed, used, another network's token).
    MfaFailed,
    MfaEnabled,
    MfaDisabled,
    /// An operator turned a user's MFA off.
    MfaReset,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    PasskeyAdded,
    PasskeyRemoved,
    /// A passkey's signature counter went backwards: its authenticator may be cloned.
    PasskeyCloned,
    /// A passkey sign-in was refused (unknown passkey, bad assertion).
    PasskeyFailed,
    /// Passkey ceremonies begun over their budget.
    PasskeyLimited,
    /// A user allowed an application (new scopes, or its first use).
    ConsentGranted,
    /// A user took an application's access back (its sessions revoked).
    ConsentRevoked,
    /// An authorization code was issued.
    CodeIssued,
    /// An authorization code was exchanged: a session for an application opened.
    CodeExchanged,
    /// An authorization code came back a second time: what its first use opened died.
    CodeReuse,
    /// A token request was refused (bad client, code, verifier, grant).
    TokenRejected,
    /// An application got a token for itself (`client_credentials`).
    ClientToken,
}

impl AuthEvent {
    /// The stable name operators search for.
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::RegisterLimited => "register.limited",
            Self::LoginOk => "login.ok",
            Self::LoginFailed => "login.failed",
            Self::LoginInactive => "login.inactive",
            Self::LoginLimited => "login.limited",
            Self::Refresh => "refresh.ok",
            Self::RefreshLimited => "refresh.limited",
            Self::RefreshRejected => "refresh.rejected",
            Self::RefreshReuse => "refresh.reuse_detected",
            Self::RefreshRepeated => "refresh.repeated_in_grace",
            Self::Logout => "logout",
            Self::LogoutAll => "logout.all",
            Self::PasswordChanged => "password.changed",
            Self::PasswordChangeFailed => "password.change_failed",
            Self::PasswordReset => "password.reset",
            Self::PasswordRehashed => "password.rehashed",
            Self::SessionRevoked => "session.revoked",
            Self::RolesChanged => "user.roles_changed",
            Self::UserDeactivated => "user.deactivated",
            Self::UserActivated => "user.activated",
            Self::UserDeleted => "user.deleted",
            Self::MailLimited => "mail.limited",
            Self::EmailVerificationSent => "email.verification_sent",
            Self::EmailVerified => "email.verified",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordResetByMail => "password.reset_by_mail",
            Self::EmailChangeRequested => "email.change_requested",
            Self::EmailChanged => "email.changed",
            Self::MagicLinkRequested => "magic_link.requested",
            Self::LoginMagicLink => "login.magic_link",
            Self::OneTimeTokenRejected => "one_time_token.rejected",
            Self::MfaChallenged => "mfa.challenged",
            Self::MfaFailed => "mfa.failed",
            Self::MfaEnabled => "mfa.enabled",
            Self::MfaDisabled => "mfa.disabled",
            Self::MfaReset => "mfa.reset",
            Self::RecoveryCodeUsed => "mfa.recovery_code_used",
            Self::RecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::PasskeyCloned => "passkey.counter_regressed",
            Self::PasskeyFailed => "passkey.failed",
            Self::PasskeyLimited => "passkey.limited",
            Self::ConsentGranted => "oauth.consent_granted",
            Self::ConsentRevoked => "oauth.consent_revoked",
            Self::CodeIssued => "oauth.code_issued",
            Self::CodeExchanged => "oauth.code_exchanged",
            Self::CodeReuse => "oauth.code_reuse_detected",
            Self::TokenRejected => "oauth.token_rejected",
            Self::ClientToken => "oauth.client_credentials",
        }
    }

    fn is_warning(self) -> bool {
        matches!(
            self,
            Self::RefreshReuse
                | Self::LoginFailed
                | Self::PasswordChangeFailed
                | Self::OneTimeTokenRejected
                | Self::MfaFailed
                | Self::PasskeyCloned
                | Self::PasskeyFailed
                | Self::CodeReuse
                | Self::TokenRejected
        )
    }
}

/// Where `auth` reports what happened.
pub trait EventSink: Send + Sync {
    fn record(&self, event: AuthEvent, user: Option<UserId>, session: Option<SessionId>, client: &ClientInfo);
}

/// The server's sink: one `tokengate::event` log line and one increment of
/// `tokengate_auth_events_total{event}` per event. The client's address is logged as
/// sessions keep it (`TOKENGATE_SESSION_IP`).
pub struct LogAndCount {
    pub ip: SessionIp,
}

impl EventSink for LogAndCount {
    fn record(&self, event: AuthEvent, user: Option<UserId>, session: Option<SessionId>, client: &ClientInfo) {
        metrics::counter!(crate::metrics::AUTH_EVENTS, "event" => event.name()).increment(1);
        let user_id = user.map(|u| u.to_string());
        let session_id = session.map(|s| s.to_string());
        let ip = self.ip.keep(client.ip);
        let ua = client.user_agent.as_deref();
        if event.is_warning() {
            tracing::warn!(target: "tokengate::event", event = event.name(), user_id, session_id, ip, user_agent = ua, "auth event");
        } else {
            tracing::info!(target: "tokengate::event", event = event.name(), user_id, session_id, ip, user_agent = ua, "auth event");
        }
    }
}

#[cfg(test)]
mod session_ip_tests {
    use super::SessionIp;

    #[test]
    fn each_policy_keeps_what_it_says() {
        let v4 = Some("203.0.113.77".parse().unwrap());
        let v6 = Some("2001:db8:1234:5678::9".parse().unwrap());
        assert_eq!(SessionIp::Full.keep(v4).as_deref(), Some("203.0.113.77"));
        assert_eq!(SessionIp::Prefix.keep(v4).as_deref(), Some("203.0.113.0/24"));
        assert_eq!(SessionIp::Prefix.keep(v6).as_deref(), Some("2001:db8:1234::/48"));
        assert_eq!(SessionIp::None.keep(v4), None);
        assert_eq!(SessionIp::Full.keep(None), None);
    }
}
