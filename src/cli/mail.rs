//! `tokengate mail list|retry`: the outbox as an operator sees it (never a message's
//! body: it may carry a live link).

use std::sync::Arc;

use super::MailCommand;
use crate::auth::QueuedMail;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::MailId;
use crate::server::{OpenMode, Purpose, StartError, build_auth};

fn state(m: &QueuedMail) -> String {
    match (m.sent_at, m.failed_at) {
        (Some(t), _) => format!("sent {}", t.to_rfc3339()),
        (None, Some(t)) => format!("failed {}", t.to_rfc3339()),
        (None, None) => format!("queued, next try {}", m.next_attempt_at.to_rfc3339()),
    }
}

/// Run one `mail` subcommand; the text to print on success.
pub async fn run(settings: &Settings, cmd: MailCommand) -> Result<String, StartError> {
    let auth = build_auth(settings, Arc::new(SystemClock), OpenMode::MustExist, Purpose::Operate).await?;
    let fail = |e: crate::auth::AuthError| StartError::Runtime(e.to_string());
    match cmd {
        MailCommand::List { failed, limit } => {
            let mails = auth.queued_mail(failed, limit).await.map_err(fail)?;
            if mails.is_empty() {
                return Ok(if failed {
                    "no failed mail"
                } else {
                    "the outbox is empty"
                }
                .to_owned());
            }
            let rows = mails.iter().map(|m| {
                vec![
                    m.id.to_string(),
                    m.kind.clone(),
                    m.recipient.clone(),
                    m.created_at.to_rfc3339(),
                    m.attempts.to_string(),
                    state(m),
                    m.last_error.clone().unwrap_or_default(),
                ]
            });
            Ok(super::table::render(
                &["ID", "KIND", "TO", "CREATED", "ATTEMPTS", "STATE", "LAST ERROR"],
                &[36, 14, 24, 20, 8, 38],
                rows,
            ))
        }
        MailCommand::Retry { id, all } => {
            let id = match (id, all) {
                (Some(id), false) => Some(id.parse::<MailId>().map_err(|_| {
                    StartError::Runtime(format!("{id:?} is not a message id (see `mail list --failed`)"))
                })?),
                (None, true) => None,
                _ => return Err(StartError::Runtime("name one message id, or --all".into())),
            };
            let n = auth.retry_mail(id).await.map_err(fail)?;
            match (n, id) {
                (0, Some(id)) => Err(StartError::Runtime(format!("no failed message {id}"))),
                (n, _) => Ok(format!(
                    "queued again: {n} (a running server delivers them within seconds)"
                )),
            }
        }
    }
}
