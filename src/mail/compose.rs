//! A message as it is queued: RFC 5322, a plain-text and an HTML part
//! (multipart/alternative), built by lettre.

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The message from `from` to `to`, ready for the transport.
pub fn compose(from: &Mailbox, to: &str, content: Content) -> Result<String, String> {
    let to: Mailbox = to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?;
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(content.subject)
        .multipart(MultiPart::alternative_plain_html(content.text, content.html))
        .map_err(|e| e.to_string())?;
    // lettre encodes every part (quoted-printable or base64) and every header: the
    // formatted message is ASCII, but for an internationalised address (UTF-8).
    String::from_utf8(message.formatted()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_both_parts_and_encoded_headers() {
        let from: Mailbox = "tokengate <no-reply@example.com>".parse().unwrap();
        let raw = compose(
            &from,
            "zoe@example.com",
            Content {
                subject: "Réinitialiser".into(),
                text: "Open https://auth.example.com/account/reset#token=abc".into(),
                html: "<p>Open <a href=\"https://auth.example.com/account/reset#token=abc\">this link</a></p>".into(),
            },
        )
        .unwrap();
        assert!(raw.is_ascii());
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        assert!(raw.contains("From: tokengate <no-reply@example.com>"), "{raw}");
        assert!(raw.contains("Subject: =?utf-8?"), "{raw}");
        assert!(
            compose(
                &from,
                "not an address",
                Content {
                    subject: String::new(),
                    text: String::new(),
                    html: String::new(),
                }
            )
            .is_err()
        );
    }
}
