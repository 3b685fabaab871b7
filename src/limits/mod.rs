//! Rate limits: what an attempt is counted against, and the `Limiter` backends that
//! count. `memory.rs` serves one instance; a shared backend for many instances is one
//! more file. A backend counts and reports; `auth/` decides what a failure means.

pub mod memory;
pub mod redis;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::SessionId;

/// `N` attempts per `window_secs` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window_secs: u64,
}

/// What an attempt is counted against. Client addresses are [`ClientNet`]s.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// Login attempts from one client network.
    LoginIp(ClientNet),
    /// Login attempts for one username (lower-cased) from one client network.
    LoginUserNet(String, ClientNet),
    /// Login attempts for one username (lower-cased) from every client without a device
    /// token: the shared budget, applied while failures come from many networks.
    LoginUser(String),
    /// Login attempts from one device that logged in before (its device token's nonce).
    LoginDevice(String),
    /// Refreshes from one client network.
    RefreshIp(ClientNet),
    /// Registrations from one client network.
    RegisterIp(ClientNet),
    /// Current-password attempts at a password change, from one session.
    PasswordSession(SessionId),
    /// Mail asked for to one address (a digest of it, lower-cased): known and unknown
    /// addresses count alike.
    MailRecipient(String),
    /// Mail asked for from one client network, to any address: one client cannot turn
    /// the server into a mailer for a list of addresses.
    MailIp(ClientNet),
    /// Second-factor codes tried for one account at a sign-in's second step, from
    /// clients that are not its known devices.
    Mfa(crate::domain::UserId),
    /// Second-factor codes tried at a sign-in's second step from one known device (a
    /// device token issued by a sign-in that passed the account's MFA).
    MfaDevice(String),
    /// Second-factor codes tried from one session (step-up, enrolment).
    MfaSession(SessionId),
    /// Passkey ceremonies begun from one client network with no session (each is
    /// stored until it is finished or expires), at the refresh rate.
    CeremonyIp(ClientNet),
    /// Passkey ceremonies begun for one user (`user:ID`: signed in, or at a second step
    /// with a live MFA token), at the refresh rate: theirs do not spend their
    /// network's, and no number of sessions or tokens multiplies it.
    CeremonyOwner(String),
}

/// A client address as rate limits see it: an IPv4 address, or an IPv6 /64. One IPv6
/// host is routinely given a whole /64, so keying by /128 would hand it 2^64 budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientNet(IpAddr);

impl ClientNet {
    /// The address that stands for the network (an IPv6 /64 as its first address).
    pub fn as_ip(&self) -> IpAddr {
        self.0
    }

    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// An attempt over the limit may be retried after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (for the `Retry-After` header).
    pub fn secs(self) -> u64 {
        let d = self.0;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// What counting one attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the rate: may be retried after this long.
    Limited(RetryAfter),
}

/// The backend could not count (a lost connection, say).
#[derive(Debug, thiserror::Error)]
#[error("rate-limit backend: {0}")]
pub struct LimitError(pub String);

/// Counts attempts against keys.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Count one attempt against `key`, atomically, and say whether it is within the rate.
    async fn hit(&self, key: &LimitKey) -> Result<Decision, LimitError>;

    /// Give back one attempt that `hit` counted against `key` (it succeeded, and only
    /// failures are to count). Never below a full budget.
    async fn refund(&self, key: &LimitKey) -> Result<(), LimitError>;

    /// How many distinct client networks failed a login as `username` within the login
    /// window; with `failed`, that network's failure is noted first (atomically).
    async fn failing_networks(&self, username: &str, failed: Option<ClientNet>) -> Result<usize, LimitError>;

    /// For `/readyz`: the state of a shared backend ("ok", "degraded"); `None` when
    /// the limits live in this process.
    fn health(&self) -> Option<&'static str> {
        None
    }

    /// Keys this process holds, per kind (for `/metrics`); none for a shared backend
    /// that keeps nothing here.
    fn keys_in_memory(&self) -> Vec<(&'static str, usize)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = ClientNet::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientNet::of("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap());
        let other = ClientNet::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        let v4 = ClientNet::of("203.0.113.9".parse().unwrap());
        assert_ne!(v4, ClientNet::of("203.0.113.10".parse().unwrap()));
        assert_eq!(v4, ClientNet::of("::ffff:203.0.113.9".parse().unwrap()));
    }
}
