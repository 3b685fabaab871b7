//! What each mail says: a plain-text and an HTML body from templates embedded in the
//! binary (`templates/`), each naming the product, the action, how long its link works,
//! and what to do if it was not you. Values are HTML-escaped in the HTML body.

use super::compose::Content;

/// One mail the server sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Template<'a> {
    /// Proves the address (registration, or on request).
    VerifyEmail {
        link: &'a str,
        expires_in_secs: u64,
    },
    PasswordReset {
        link: &'a str,
        expires_in_secs: u64,
    },
    /// To the new address: confirms it.
    EmailChange {
        link: &'a str,
        expires_in_secs: u64,
        new_email: &'a str,
    },
    /// To the current address, when a change is asked for.
    EmailChangeRequested {
        new_email: &'a str,
    },
    /// To the former address, once the change took effect.
    EmailChanged {
        new_email: &'a str,
    },
    /// After a reset.
    PasswordChanged,
    MagicLink {
        link: &'a str,
        expires_in_secs: u64,
    },
    /// A second factor was turned on or off, or recovery codes were replaced: `change`
    /// says which, in a sentence.
    MfaChanged {
        change: &'a str,
    },
}

struct Parts {
    kind: &'static str,
    subject: &'static str,
    text: &'static str,
    html: &'static str,
    not_you: &'static str,
}

impl Template<'_> {
    /// Its name in the outbox, logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.parts().kind
    }

    fn parts(&self) -> Parts {
        match self {
            Self::VerifyEmail { .. } => Parts {
                kind: "verify_email",
                subject: "Confirm your email address",
                text: include_str!("templates/verify_email.txt"),
                html: include_str!("templates/verify_email.html"),
                not_you: "If you did not create this account, ignore this message: the address stays unconfirmed.",
            },
            Self::PasswordReset { .. } => Parts {
                kind: "password_reset",
                subject: "Reset your password",
                text: include_str!("templates/password_reset.txt"),
                html: include_str!("templates/password_reset.html"),
                not_you: "If you did not ask for this, ignore this message: your password stays as it is.",
            },
            Self::EmailChange { .. } => Parts {
                kind: "email_change",
                subject: "Confirm your new email address",
                text: include_str!("templates/email_change.txt"),
                html: include_str!("templates/email_change.html"),
                not_you: "If you did not ask for this, ignore this message: nothing changes.",
            },
            Self::EmailChangeRequested { .. } => Parts {
                kind: "email_change_requested",
                subject: "Your email address is about to change",
                text: include_str!("templates/email_change_requested.txt"),
                html: include_str!("templates/email_change_requested.html"),
                not_you: "If this was not you, someone knows your password: change it now.",
            },
            Self::EmailChanged { .. } => Parts {
                kind: "email_changed",
                subject: "Your email address was changed",
                text: include_str!("templates/email_changed.txt"),
                html: include_str!("templates/email_changed.html"),
                not_you: "If this was not you, contact your administrator at once: your account may be in other hands.",
            },
            Self::PasswordChanged => Parts {
                kind: "password_changed",
                subject: "Your password was reset",
                text: include_str!("templates/password_changed.txt"),
                html: include_str!("templates/password_changed.html"),
                not_you: "If this was not you, someone can read this mailbox: secure it, then reset your password.",
            },
            Self::MagicLink { .. } => Parts {
                kind: "magic_link",
                subject: "Your sign-in link",
                text: include_str!("templates/magic_link.txt"),
                html: include_str!("templates/magic_link.html"),
                not_you: "If you did not ask to sign in, ignore this message: no one can sign in without this link.",
            },
            Self::MfaChanged { .. } => Parts {
                kind: "mfa_changed",
                subject: "Your two-step sign-in changed",
                text: include_str!("templates/mfa_changed.txt"),
                html: include_str!("templates/mfa_changed.html"),
                not_you: "If this was not you, someone has your password: reset it now and tell your administrator.",
            },
        }
    }

    /// The values the template names, besides the product and the user.
    fn values(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::VerifyEmail { link, expires_in_secs }
            | Self::PasswordReset { link, expires_in_secs }
            | Self::MagicLink { link, expires_in_secs } => {
                vec![("link", (*link).to_owned()), ("expiry", human(*expires_in_secs))]
            }
            Self::EmailChange {
                link,
                expires_in_secs,
                new_email,
            } => vec![
                ("link", (*link).to_owned()),
                ("expiry", human(*expires_in_secs)),
                ("email", (*new_email).to_owned()),
            ],
            Self::EmailChangeRequested { new_email } | Self::EmailChanged { new_email } => {
                vec![("email", (*new_email).to_owned())]
            }
            Self::PasswordChanged => Vec::new(),
            Self::MfaChanged { change } => vec![("change", (*change).to_owned())],
        }
    }

    /// The mail to `username` (at `email`, which a template may name) from `product`.
    pub fn render(&self, product: &str, username: &str, email: &str) -> Content {
        let parts = self.parts();
        let mut values = vec![
            ("product", product.to_owned()),
            ("username", username.to_owned()),
            ("email", email.to_owned()),
        ];
        // A template's own `email` (the new address) wins over the account's.
        for (name, value) in self.values() {
            values.retain(|(n, _)| *n != name);
            values.push((name, value));
        }
        let subject = format!("{product}: {}", parts.subject);
        let text = format!("{}\n{}\n", fill(parts.text, &values, false).trim_end(), parts.not_you);
        let body = fill(parts.html, &values, true);
        let html = fill(
            include_str!("templates/layout.html"),
            &[
                ("subject", subject.clone()),
                ("product", product.to_owned()),
                ("not_you", parts.not_you.to_owned()),
            ],
            true,
        )
        .replacen("{{body}}", &body, 1);
        Content { subject, text, html }
    }
}

/// `{{name}}` replaced by its value (HTML-escaped for an HTML template), in one pass:
/// a value is never read as a template itself. An unknown name stays as written.
fn fill(template: &str, values: &[(&'static str, String)], html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if html => out.push_str(&escape(v)),
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// "30 minutes", "1 hour", "2 days".
fn human(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s % 86_400 == 0 && s >= 86_400 => (s / 86_400, "day"),
        s if s % 3600 == 0 && s >= 3600 => (s / 3600, "hour"),
        s if s >= 60 => (s.div_ceil(60), "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Template<'static>> {
        let link = "https://auth.example.com/account/reset#token=abc";
        vec![
            Template::VerifyEmail {
                link,
                expires_in_secs: 86_400,
            },
            Template::PasswordReset {
                link,
                expires_in_secs: 1800,
            },
            Template::EmailChange {
                link,
                expires_in_secs: 86_400,
                new_email: "new@example.com",
            },
            Template::EmailChangeRequested {
                new_email: "new@example.com",
            },
            Template::EmailChanged {
                new_email: "new@example.com",
            },
            Template::PasswordChanged,
            Template::MagicLink {
                link,
                expires_in_secs: 900,
            },
        ]
    }

    #[test]
    fn every_mail_names_the_product_the_action_its_expiry_and_what_if_it_was_not_you() {
        for t in all() {
            let c = t.render("Acme Auth", "alice", "alice@example.com");
            for body in [&c.text, &c.html] {
                assert!(body.contains("Acme Auth"), "{}: {body}", t.kind());
                assert!(body.contains("alice"), "{}", t.kind());
                assert!(body.contains(t.parts().not_you), "{}", t.kind());
                assert!(!body.contains("{{"), "{}: a placeholder left: {body}", t.kind());
            }
            assert!(c.subject.starts_with("Acme Auth: "));
            if let Template::VerifyEmail { link, .. }
            | Template::PasswordReset { link, .. }
            | Template::MagicLink { link, .. } = &t
            {
                assert!(c.text.contains(link) && c.html.contains(link), "{}", t.kind());
            }
        }
        let reset = all()[1].render("Acme", "alice", "alice@example.com");
        assert!(reset.text.contains("30 minutes"), "{}", reset.text);
        let change = all()[2].render("Acme", "alice", "alice@example.com");
        assert!(change.text.contains("new@example.com") && !change.text.contains("alice@example.com"));
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let t = Template::EmailChanged {
            new_email: "a<b>&\"c\"@example.com",
        };
        let c = t.render("<Acme>", "bob", "bob@example.com");
        assert!(c.html.contains("&lt;Acme&gt;") && !c.html.contains("<Acme>"));
        assert!(c.html.contains("a&lt;b&gt;&amp;&quot;c&quot;@example.com"));
        assert!(c.text.contains("a<b>&\"c\"@example.com"));
    }

    #[test]
    fn a_value_is_never_read_as_a_template() {
        let t = Template::EmailChanged {
            new_email: "{{product}}@example.com",
        };
        let c = t.render("Acme", "bob", "bob@example.com");
        assert!(c.text.contains("{{product}}@example.com"), "{}", c.text);
        assert_eq!(fill("a {{x}} b {{y", &[("x", "1".into())], false), "a 1 b {{y");
        assert_eq!(
            fill("{{unknown}} {{x}}", &[("x", "<".into())], true),
            "{{unknown}} &lt;"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(1800), "30 minutes");
        assert_eq!(human(3600), "1 hour");
        assert_eq!(human(86_400), "1 day");
        assert_eq!(human(172_800), "2 days");
        assert_eq!(human(90), "2 minutes");
        assert_eq!(human(45), "45 seconds");
    }
}
