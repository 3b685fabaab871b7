//! Value types that carry meaning: once constructed, they are valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A UUID's hyphenated lowercase form, without the formatting machinery that
/// `to_string` goes through (ids are in every user answer and every request id).
pub fn hyphenated(id: Uuid) -> String {
    id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned()
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The hyphenated form, as `to_string` gives it (see [`hyphenated`]).
            pub fn to_hyphenated(self) -> String {
                hyphenated(self.0)
            }

            pub fn as_uuid(self) -> Uuid {
                self.0
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user's id; the `sub` claim of its tokens.
    UserId
);
uuid_id!(
    /// One login (one device): the `sid` claim; refresh tokens belong to exactly one.
    SessionId
);
uuid_id!(
    /// The unique id of one access token: the `jti` claim.
    Jti
);
uuid_id!(
    /// One message in the mail outbox.
    MailId
);
uuid_id!(
    /// One passkey of a user's (not the credential ID its authenticator chose).
    PasskeyId
);
uuid_id!(
    /// An application that signs its users in here (OAuth2 / OpenID Connect): its
    /// `client_id`.
    ClientId
);

/// What a WebAuthn ceremony does: one of one kind never finishes another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CeremonyKind {
    /// Registers a passkey for a signed-in user.
    Register,
    /// Signs in with a passkey (first factor, or a user's only).
    SignIn,
    /// The second step of a sign-in whose password was right.
    SecondFactor,
    /// Proves a signed-in user's passkey again before a sensitive change.
    StepUp,
}

impl CeremonyKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::SecondFactor => "second_factor",
            Self::StepUp => "step_up",
        }
    }
}

/// What a one-time mail token is for: a token of one purpose never works for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Proves the user reads the address (at registration, or on request).
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
    /// Makes a new address the account's (mailed to the new address).
    ChangeEmail,
    /// Signs in without a password.
    MagicLink,
    /// The second step of a sign-in whose first factor was right (never mailed: the
    /// login answer carries it).
    MfaLogin,
}

impl TokenPurpose {
    pub const ALL: [Self; 5] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::ChangeEmail,
        Self::MagicLink,
        Self::MfaLogin,
    ];

    /// The purposes whose tokens go out by mail (and open a page of `/account`).
    pub const MAILED: [Self; 4] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::ChangeEmail,
        Self::MagicLink,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
            Self::MagicLink => "magic_link",
            Self::MfaLogin => "mfa_login",
        }
    }

    pub fn from_store(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A way a user proved who they are, as an access token's `amr` names it (RFC 8176).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// The password.
    Pwd,
    /// A sign-in link mailed to the account's address.
    Email,
    /// A one-time code: TOTP, or a recovery code.
    Otp,
    /// A key in hardware (a passkey on a security key or a platform authenticator).
    Hwk,
    /// A key in software (a synced passkey).
    Swk,
    /// The authenticator verified its user (PIN, biometrics).
    User,
}

impl AuthMethod {
    const ALL: [Self; 6] = [Self::Pwd, Self::Email, Self::Otp, Self::Hwk, Self::Swk, Self::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Email => "email",
            Self::Otp => "otp",
            Self::Hwk => "hwk",
            Self::Swk => "swk",
            Self::User => "user",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// A factor of its own (a verified user is a property of a key, not a factor).
    fn is_factor(self) -> bool {
        self != Self::User
    }
}

/// How and when a session's user signed in: its tokens' `amr` and `auth_time`. A set of
/// methods in a byte (it is copied with every session the request path reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authentication {
    pub at: UnixTime,
    /// Bit `i`: `AuthMethod::ALL[i]` was proved.
    methods: u8,
}

impl Authentication {
    pub fn new(at: UnixTime, methods: &[AuthMethod]) -> Self {
        Self { at, methods: 0 }.and(methods)
    }

    /// The same sign-in with `more` proved too.
    pub fn and(self, more: &[AuthMethod]) -> Self {
        let methods = more.iter().fold(self.methods, |bits, m| bits | Self::bit(*m));
        Self { at: self.at, methods }
    }

    fn bit(m: AuthMethod) -> u8 {
        let at = AuthMethod::ALL.iter().position(|x| *x == m).unwrap_or(0);
        1 << at
    }

    /// The methods proved, in `amr`'s order.
    pub fn methods(self) -> impl Iterator<Item = AuthMethod> {
        AuthMethod::ALL
            .into_iter()
            .filter(move |m| self.methods & Self::bit(*m) != 0)
    }

    /// Two factors or more were proved.
    pub fn is_multi_factor(self) -> bool {
        self.methods().filter(|m| m.is_factor()).count() >= 2
    }

    /// Strong enough where MFA is required: two factors, or a key whose authenticator
    /// verified its user (a passkey with PIN or biometrics is multi-factor by itself,
    /// NIST SP 800-63B's multi-factor cryptographic authenticator).
    pub fn satisfies_mfa(self) -> bool {
        let has = |m: AuthMethod| self.methods & Self::bit(m) != 0;
        self.is_multi_factor() || ((has(AuthMethod::Hwk) || has(AuthMethod::Swk)) && has(AuthMethod::User))
    }

    /// The `amr` claim: each method, and `mfa` when two factors were proved.
    pub fn amr(self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self.methods().map(AuthMethod::as_str).collect();
        if self.is_multi_factor() {
            out.push("mfa");
        }
        out
    }

    /// As stored: the methods, space-separated.
    pub fn methods_to_store(self) -> String {
        self.methods().map(AuthMethod::as_str).collect::<Vec<_>>().join(" ")
    }

    /// From storage; an unknown name is dropped rather than trusted.
    pub fn from_store(at: UnixTime, methods: &str) -> Self {
        let parsed: Vec<AuthMethod> = methods.split_whitespace().filter_map(AuthMethod::parse).collect();
        Self::new(at, &parsed)
    }
}

#[cfg(test)]
mod client_tests {
    use super::{RedirectUri, Scope};

    #[test]
    fn redirect_uris_are_https_loopback_http_or_an_apps_scheme() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?tenant=1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9000/cb",
            "com.example.app:/oauth2redirect",
            "https://app.example.com/",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/callback",
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "myapp:/cb",
            "",
            // Not in the form a parser writes back: what they mean is not what is read.
            "https://app.example.com",
            "https:evil.com",
            "https:\\\\evil.com\\cb",
            "https://evil.com\\@app.example.com/",
            "http://127.0.0.1\\@evil.com/",
            "https://app.example.com/cb\r\nSet-Cookie: x=1",
            " https://app.example.com/cb",
            "https://app.example.com/a b",
            "https://\u{0430}pple.com/cb",
            "https://:@app.example.com/cb",
            "https://*.example.com/cb",
            "a.b:x",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_are_rfc_6749_tokens() {
        for ok in ["openid", "read:orders", "offline_access", "a"] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "two words", "quo\"te", "back\\slash", "é"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod authentication_tests {
    use super::{AuthMethod, Authentication, UnixTime};

    #[test]
    fn amr_lists_each_method_once_in_order_and_mfa_for_two_factors() {
        let t = UnixTime(1);
        assert_eq!(Authentication::new(t, &[AuthMethod::Pwd]).amr(), ["pwd"]);
        let both = Authentication::new(t, &[AuthMethod::Otp, AuthMethod::Pwd, AuthMethod::Otp]);
        assert_eq!(both.amr(), ["pwd", "otp", "mfa"]);
        assert!(both.is_multi_factor());
        // A verified user is a property of a key, not a second factor.
        let key = Authentication::new(t, &[AuthMethod::Hwk, AuthMethod::User]);
        assert_eq!(key.amr(), ["hwk", "user"]);
        assert!(!key.is_multi_factor());
        // ...but a key that verified its user satisfies an MFA requirement.
        assert!(key.satisfies_mfa());
        assert!(!Authentication::new(t, &[AuthMethod::Swk]).satisfies_mfa());
        assert!(!Authentication::new(t, &[AuthMethod::Pwd]).satisfies_mfa());
        assert!(both.satisfies_mfa());
        assert_eq!(
            Authentication::new(t, &[AuthMethod::Email])
                .and(&[AuthMethod::Otp])
                .amr(),
            ["email", "otp", "mfa"]
        );
        let stored = both.methods_to_store();
        assert_eq!(stored, "pwd otp");
        assert_eq!(Authentication::from_store(t, &stored), both);
        assert_eq!(Authentication::from_store(t, "pwd bogus").amr(), ["pwd"]);
    }
}

/// Seconds since the Unix epoch. All stored and signed times use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// This time plus `secs` seconds (saturating).
    pub fn plus(self, secs: u64) -> Self {
        Self(self.0.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)))
    }

    /// RFC 3339 in UTC (`2026-11-27T06:52:05Z`), as FastAPI serialises datetimes.
    /// The calendar comes from `time`; the digits are written here because `time`'s
    /// general formatter was a tenth of a `GET /me` (it runs for every user answer).
    pub fn to_rfc3339(self) -> String {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(self.0) else {
            return String::new();
        };
        // RFC 3339 years have four digits; `from_unix_timestamp` allows more.
        let Ok(year) = u16::try_from(t.year()) else {
            return String::new();
        };
        if year > 9999 {
            return String::new();
        }
        let mut out = [0u8; 20];
        let mut put = |at: usize, value: u16, digits: usize| {
            let mut v = value;
            for i in (0..digits).rev() {
                out[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year, 4);
        put(5, u16::from(u8::from(t.month())), 2);
        put(8, u16::from(t.day()), 2);
        put(11, u16::from(t.hour()), 2);
        put(14, u16::from(t.minute()), 2);
        put(17, u16::from(t.second()), 2);
        for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'Z')] {
            out[at] = sep;
        }
        out.iter().map(|&b| char::from(b)).collect()
    }
}

/// A validated username: 3-50 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Why a candidate is refused, in the words of a 422 `msg`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let len = raw.chars().count();
        if !(3..=50).contains(&len) {
            return Err("Username must be 3 to 50 characters long");
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("Username may contain only letters, digits, '_', '.' and '-'");
        }
        Ok(Self(raw.to_owned()))
    }

    /// Trusted input from our own store.
    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A validated email address; the domain is lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const INVALID: &str = "value is not a valid email address";
        if raw.len() > 254 || !email_address::EmailAddress::is_valid(raw) {
            return Err(INVALID);
        }
        let (local, domain) = raw.rsplit_once('@').ok_or(INVALID)?;
        // Like email-validator: a deliverable address needs a dotted domain name, not an IP literal.
        let domain_ok = domain.contains('.')
            && !domain.starts_with('[')
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
        if local.starts_with('"') || !domain_ok {
            return Err(INVALID);
        }
        // One spelling per address, the same to every backend and to Rust: an ASCII
        // local part (so SQLite's ASCII-only `lower()`, PostgreSQL's and Rust's agree on
        // what is the same address) and the domain in its DNS form (IDNA, lowercase, and
        // within DNS lengths, so the mail transport can always address it).
        if !local.is_ascii() {
            return Err("value is not a valid email address: the part before the @ must be ASCII");
        }
        let domain = idna::domain_to_ascii_strict(domain).map_err(|_| INVALID)?;
        let email = format!("{local}@{domain}");
        if email.len() > 254 {
            return Err(INVALID);
        }
        Ok(Self(email))
    }

    /// The address as every comparison sees it (ASCII, so lowercasing means the same
    /// in SQL and here).
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A plaintext password (8-128 characters). It never prints itself.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Length counts characters, not bytes: nothing is truncated (unlike bcrypt's 72 bytes).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let len = raw.chars().count();
        if len < 8 {
            return Err("Password must be at least 8 characters long");
        }
        if len > 128 {
            return Err("Password must be at most 128 characters long");
        }
        if is_too_common(raw) {
            return Err("Password is too common (one of the first ones an attacker tries); choose another");
        }
        Ok(Self(raw.to_owned()))
    }

    /// A password offered at login: any length up to a bound, so a too-short guess
    /// is just a wrong password, not a validation error that tells it apart.
    pub fn candidate(raw: &str) -> Option<Self> {
        (raw.chars().count() <= 1024).then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Why a label (a device's or a passkey's name) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LabelProblem {
    Length,
    Control,
    Invisible,
}

/// A label the user gives something: 1-64 printable characters, surrounding spaces
/// trimmed.
fn label(raw: &str) -> Result<&str, LabelProblem> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(LabelProblem::Length);
    }
    if name.chars().any(char::is_control) {
        return Err(LabelProblem::Control);
    }
    // Bidi overrides and invisible characters would let a thief dress a session up
    // as the owner's ("\u{202e}MacBook (this browser)").
    if name.chars().any(is_format_character) {
        return Err(LabelProblem::Invisible);
    }
    Ok(name)
}

/// A name the user gives a device at login ("Alice's laptop"): 1-64 printable
/// characters (no control characters), surrounding spaces trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceName(String);

impl DeviceName {
    /// Why a candidate is refused, in the words of a 422 `msg`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match label(raw) {
            Ok(name) => Ok(Self(name.to_owned())),
            Err(LabelProblem::Length) => Err("Device name must be 1 to 64 characters long"),
            Err(LabelProblem::Control) => Err("Device name may not contain control characters"),
            Err(LabelProblem::Invisible) => Err("Device name may not contain invisible or text-direction characters"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An application's name as its users see it (on the consent page): a label, as a
/// device's name is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    /// Why a candidate is refused, in the words of a 422 `msg`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match label(raw) {
            Ok(name) => Ok(Self(name.to_owned())),
            Err(LabelProblem::Length) => Err("Client name must be 1 to 64 characters long"),
            Err(LabelProblem::Control) => Err("Client name may not contain control characters"),
            Err(LabelProblem::Invisible) => Err("Client name may not contain invisible or text-direction characters"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A redirect URI an application registered (matched exactly at authorization):
/// absolute, without a fragment or user information; `https`, or `http` only for a
/// loopback host, or an app's private-use scheme (RFC 8252 §7.1: a reversed domain,
/// `com.example.app:/callback`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Why a candidate is refused, in the words of a 422 `msg`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > 2000 {
            return Err("Redirect URI must be at most 2000 bytes long");
        }
        let url = url::Url::parse(raw).map_err(|_| "Redirect URI must be an absolute URI")?;
        // Exactly as a URL parser writes it back: no spaces, control characters or
        // backslashes it would drop or turn, an ASCII (punycode) host, a `/` path. What
        // is registered is then what every parser, and every reader, takes it to be.
        if url.as_str() != raw {
            return Err("Redirect URI must be written in its normal form (as a browser would send it back)");
        }
        if url.fragment().is_some() {
            return Err("Redirect URI may not have a fragment");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("Redirect URI may not carry user information");
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let wildcard = url.host_str().is_some_and(|h| h.contains('*'));
        let ok = match url.scheme() {
            "https" => url.host().is_some() && !wildcard,
            "http" => loopback,
            // A private-use scheme: a reversed domain name (so it has a dot, and is no web
            // scheme), with an absolute path.
            other => other.contains('.') && url.path().starts_with('/') && url.host().is_none(),
        };
        if !ok {
            return Err(
                "Redirect URI must be https://, http:// on a loopback host, or an app's reversed-domain scheme",
            );
        }
        Ok(Self(raw.to_owned()))
    }

    /// As stored (checked when it was registered; rules may have tightened since, and a
    /// stored one is shown as it is rather than refused).
    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An OAuth scope (RFC 6749 §3.3): 1-64 printable ASCII characters but `"` and `\`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    /// Why a candidate is refused, in the words of a 422 `msg`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !ok {
            return Err("Scope must be 1 to 64 printable ASCII characters, with no space, quote or backslash");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Scopes as OAuth writes them, and as they are stored: space-separated.
    pub fn join(scopes: &[Self]) -> String {
        scopes.iter().map(Self::as_str).collect::<Vec<_>>().join(" ")
    }
}

/// What a stored signing key signs: access tokens, or the provider's id_tokens (RS256
/// whatever the access tokens use). Each has one active key, rotated the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    Access,
    IdToken,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::IdToken => "id_token",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "access" => Some(Self::Access),
            "id_token" => Some(Self::IdToken),
            _ => None,
        }
    }
}

/// A name the user gives a passkey ("YubiKey 5C", "iPhone"), under the same rules as
/// a device's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    /// Why a candidate is refused, in the words of a 422 `msg`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match label(raw) {
            Ok(name) => Ok(Self(name.to_owned())),
            Err(LabelProblem::Length) => Err("Passkey name must be 1 to 64 characters long"),
            Err(LabelProblem::Control) => Err("Passkey name may not contain control characters"),
            Err(LabelProblem::Invisible) => Err("Passkey name may not contain invisible or text-direction characters"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NIST 800-63B: refuse passwords from lists of commonly used or compromised ones.
/// zxcvbn carries those lists (leaked passwords, words, names) and keyboard patterns; a
/// password it expects to fall within 10,000 guesses is one of them.
fn is_too_common(password: &str) -> bool {
    // A common password is short, and zxcvbn's cost grows fast with length (tens of ms
    // at 24 characters, half a second at 64, on the request path before any limit):
    // longer passwords are not looked up.
    password.chars().count() <= 20 && zxcvbn::zxcvbn(password, &[]).guesses_log10() < 4.0
}

/// Unicode's format characters (category Cf) that change how text around them looks
/// without being seen (bidi controls, zero-width characters, the BOM, tags, variation
/// selectors), and the fillers that show as blanks (Hangul fillers).
fn is_format_character(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// A role name, such as the built-in `admin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Role(String);

impl Role {
    pub const ADMIN: &'static str = "admin";

    /// The built-in `admin` role.
    pub fn admin() -> Self {
        Self(Self::ADMIN.to_owned())
    }

    /// 1-50 characters of `[a-z0-9_:.-]`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let ok = (1..=50).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:.-".contains(c));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("Role must be 1 to 50 characters of a-z, 0-9, '_', ':', '.', '-'")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret value (signing key, token) whose `Debug` never reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphenated_ids_match_display() {
        let id = UserId::new();
        assert_eq!(id.to_hyphenated(), id.to_string());
    }

    #[test]
    fn rfc3339_matches_the_time_crate() {
        let rfc = &time::format_description::well_known::Rfc3339;
        for secs in [
            0,
            1,
            59,
            86_399,
            951_782_400,
            1_798_000_000,
            1_795_761_125,
            253_402_300_799,
            -1,
            -62_135_596_800,
            -62_167_219_200,
        ] {
            let expected = time::OffsetDateTime::from_unix_timestamp(secs)
                .unwrap()
                .format(rfc)
                .unwrap();
            assert_eq!(UnixTime(secs).to_rfc3339(), expected, "{secs}");
        }
        // Outside RFC 3339's four-digit years: nothing, as before.
        assert_eq!(UnixTime(253_402_300_800).to_rfc3339(), "");
        assert_eq!(UnixTime(-62_167_219_201).to_rfc3339(), "");
        assert_eq!(UnixTime(i64::MAX).to_rfc3339(), "");
    }

    #[test]
    fn username_rules() {
        assert!(Username::parse("alzy").is_ok());
        assert!(Username::parse("a.b-c_d9").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(51)).is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse("ünï").is_err());
    }

    #[test]
    fn password_counts_characters_not_bytes() {
        // 128 three-byte characters (CJK, none repeated): 384 bytes, allowed, kept whole.
        let cjk = |n: u32| {
            (0..n)
                .filter_map(|i| char::from_u32(0x4E00 + i * 7))
                .collect::<String>()
        };
        let long = cjk(128);
        assert_eq!(long.len(), 384);
        assert_eq!(Password::parse(&long).unwrap().expose(), long);
        assert!(Password::parse(&cjk(129)).is_err());
        assert!(Password::parse("seven77").is_err());
        assert_eq!(
            format!("{:?}", Password::parse("supersecret").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn email_rules() {
        assert_eq!(Email::parse("Alzy@Example.COM").unwrap().as_str(), "Alzy@example.com");
        for bad in ["no-at", "a@b", "a@", "@b.com", "a b@c.com", "a@[1.2.3.4]", "a@b..com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles() {
        assert!(Role::parse("admin").is_ok());
        assert!(Role::parse("Admin").is_err());
        assert!(Role::parse("").is_err());
    }
}
