//! Where mail goes: an SMTP server (`TOKENGATE_SMTP_URL`), or `.eml` files in a folder
//! when none is configured, so that zero configuration still lets a developer open a
//! reset link; and who it is from (`TOKENGATE_MAIL_FROM`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use lettre::message::Mailbox;

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
    /// `smtp://`: STARTTLS, required (port 587).
    StartTls,
    /// `smtp://...?tls=none`: in the clear; only to a loopback address (a local sink).
    None,
}

/// A parsed `TOKENGATE_SMTP_URL`. Its password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User name and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SmtpUrl {
    /// `smtp://user:pass@host:587` (STARTTLS), `smtps://user:pass@host:465`, or
    /// `smtp://127.0.0.1:2525?tls=none` (a loopback sink only). The reason otherwise.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|_| "is not a URL like smtp://user:pass@host:587".to_owned())?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("names no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let tls_param = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        for (k, _) in url.query_pairs() {
            if k != "tls" {
                return Err(format!("has an unknown parameter {k:?} (only tls=none is understood)"));
            }
        }
        let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None) => (SmtpTls::Implicit, 465),
            ("smtp", None) => (SmtpTls::StartTls, 587),
            ("smtp", Some("none")) => (SmtpTls::None, 25),
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!(
                    "tls={other:?} is not understood (only tls=none, for a loopback sink)"
                ));
            }
            (other, _) => return Err(format!("scheme {other:?} is not smtp or smtps")),
        };
        if tls == SmtpTls::None && !is_loopback(&host) {
            return Err(
                "tls=none is for a loopback address only: mail and its links would cross the network in the clear"
                    .into(),
            );
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "has credentials that are not UTF-8".to_owned())
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(pass)) => Some((decode(user)?, decode(pass)?)),
            (_, None) => return Err("names a user without a password".into()),
        };
        if credentials.is_some() && tls == SmtpTls::None {
            return Err("sends a password in the clear (tls=none)".into());
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            credentials,
        })
    }

    /// For logs: host, port and how it is secured; never the credentials.
    pub fn describe(&self) -> String {
        let how = match self.tls {
            SmtpTls::Implicit => "TLS",
            SmtpTls::StartTls => "STARTTLS",
            SmtpTls::None => "no TLS, loopback",
        };
        let user = self.credentials.as_ref().map_or("", |_| ", authenticated");
        format!("smtp {}:{} ({how}{user})", self.host, self.port)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where mail goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailTransportSettings {
    Smtp(SmtpUrl),
    /// `.eml` files (mode 0600) in this folder.
    Files(PathBuf),
}

/// The mail settings, validated.
#[derive(Clone, Debug)]
pub struct MailSettings {
    pub transport: MailTransportSettings,
    pub from: Mailbox,
}

/// `TOKENGATE_MAIL_FROM`: `name <address>` or an address.
pub fn parse_mailbox(v: &str) -> Result<Mailbox, String> {
    v.parse::<Mailbox>()
        .map_err(|e| format!("{v:?} is not a sender like \"Example <no-reply@example.com>\": {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_as_the_contract_writes_them() {
        let u = SmtpUrl::parse("smtp://me%40example.com:p%40ss@smtp.example.com:587").unwrap();
        assert_eq!(u.host, "smtp.example.com");
        assert_eq!((u.port, u.tls), (587, SmtpTls::StartTls));
        assert_eq!(u.credentials, Some(("me@example.com".into(), "p@ss".into())));
        let u = SmtpUrl::parse("smtps://user:secret@mail.example.com").unwrap();
        assert_eq!((u.port, u.tls), (465, SmtpTls::Implicit));
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 2525, SmtpTls::None));
        let u = SmtpUrl::parse("smtp://[::1]:2525?tls=none").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(SmtpUrl::parse("smtp://smtp.example.com").unwrap().port, 587);
    }

    #[test]
    fn a_password_never_prints() {
        let u = SmtpUrl::parse("smtps://user:hunter2-secret@mail.example.com").unwrap();
        for shown in [format!("{u:?}"), u.describe()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("mail.example.com:465"), "{shown}");
        }
    }

    #[test]
    fn what_is_refused_says_why() {
        for (raw, why) in [
            ("http://smtp.example.com", "scheme"),
            ("smtp://smtp.example.com?tls=none", "loopback"),
            ("smtp://user:pw@127.0.0.1?tls=none", "clear"),
            ("smtp://127.0.0.1?tls=maybe", "not understood"),
            ("smtp://smtp.example.com?port=1", "unknown parameter"),
            ("smtp://user@smtp.example.com", "without a password"),
            ("not a url", "not a URL"),
        ] {
            let err = SmtpUrl::parse(raw).expect_err(raw);
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    #[test]
    fn senders() {
        assert_eq!(
            parse_mailbox("Example <no-reply@example.com>").unwrap().to_string(),
            "Example <no-reply@example.com>"
        );
        assert!(parse_mailbox("no-reply@example.com").is_ok());
        assert!(parse_mailbox("nobody").is_err());
    }
}
