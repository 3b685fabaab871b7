//! The mail service: composes messages for the outbox (sealed when the server seals
//! secrets at rest: a queued message carries a live link), and delivers what is due.
//!
//! Delivery is at least once: a batch is claimed for a lease longer than its SMTP
//! conversations may take, and only the latest claimer's outcome is recorded. A sender killed between
//! the server's acceptance and the record sends that message again after the lease
//! (the one case of a duplicate); killed anywhere else, nothing is lost or repeated.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio::sync::Notify;

use super::compose::{Content, compose};
use super::transport::{DeliveryError, Transport};
use crate::clock::Clock;
use crate::crypto::at_rest::{AtRestError, Vault, sealed_with};
use crate::domain::{Email, MailId, UnixTime};
use crate::metrics::{MAIL_DELIVERIES, MAIL_FAILED_WAITING, MAIL_OLDEST_QUEUED_AGE, MAIL_QUEUED};
use crate::store::{ClaimedMail, Delivery, NewMail, Outbox, StoreError};

/// Messages claimed at once by one sender.
const BATCH: u32 = 8;
/// How long a claim holds: the whole batch, each message taking up to its SMTP bound
/// (30 s), and a margin. No other sender takes a message of the batch meanwhile.
const LEASE_SECS: i64 = BATCH as i64 * 30 + 60;
/// Deliveries of one message at most before it is given up on: the waits between them
/// double from 30 s to at most an hour, about 3 hours in all.
pub const MAX_ATTEMPTS: i64 = 10;
/// How often the outbox is looked at when nothing woke the sender and nothing in it
/// comes due sooner: for what another process queued (an operator's `mail retry`, mail
/// from another instance). Whoever queues mail wakes its own instance's sender, so this
/// is no delivery delay; and a server that sends no mail pays one query a minute.
const IDLE_POLL: Duration = Duration::from_secs(60);
/// The sealing context of a queued message: its id and recipient, so a sealed body
/// cannot be moved to another row or address.
fn sealed_as(id: MailId, recipient: &str) -> String {
    format!("mail outbox message {id} to {recipient}")
}

/// The wait before delivery `attempt + 1`, after `attempt` failed.
pub fn backoff_secs(attempt: i64) -> i64 {
    let doublings = u32::try_from(attempt.clamp(1, 8) - 1).unwrap_or(0);
    (30_i64 << doublings).min(3600)
}

/// What one round of delivery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retried: usize,
    pub given_up: usize,
    /// Outcomes not recorded: the claim had run out and another sender took over.
    pub lost_claims: usize,
}

impl Round {
    fn worked(&self) -> bool {
        self.sent + self.retried + self.given_up + self.lost_claims > 0
    }
}

pub struct MailService {
    outbox: Arc<dyn Outbox>,
    transport: Transport,
    from: Mailbox,
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    wake: Notify,
}

impl MailService {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        transport: Transport,
        from: Mailbox,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            outbox,
            transport,
            from,
            vault,
            clock,
            wake: Notify::new(),
        }
    }

    /// Where mail goes, for the start-up log.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// A message to `to`, ready to queue (`kind` names it in logs and metrics).
    pub fn message(&self, to: &Email, kind: &'static str, content: Content) -> Result<NewMail, String> {
        let raw = compose(&self.from, to.as_str(), content)?;
        let id = MailId::new();
        let stored = self
            .vault
            .seal(raw.as_bytes(), &sealed_as(id, to.as_str()))
            .map_err(|e| e.to_string())?;
        Ok(NewMail {
            id,
            recipient: to.clone(),
            kind,
            message: String::from_utf8(stored).map_err(|e| e.to_string())?,
        })
    }

    /// Something was queued here: deliver now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Deliver forever: at every wake-up, when the outbox's next message comes due (a
    /// retry any instance scheduled, one queued before a restart, a lease that runs
    /// out), and at least every [`IDLE_POLL`]. A panic in a round (a bug) is logged and
    /// the loop goes on: mail must not stop on an instance unnoticed.
    pub async fn run(self: Arc<Self>) {
        tracing::info!(transport = %self.describe(), "mail: delivering through the outbox");
        loop {
            let this = Arc::clone(&self);
            let round = tokio::spawn(async move { this.deliver_due().await }).await;
            match round {
                // More may be due at once (a batch was full): go on without waiting.
                Ok(Ok(round)) if round.worked() => continue,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "mail: the outbox could not be read; trying again"),
                Err(e) => tracing::error!(error = %e, "mail: a delivery round failed; going on"),
            }
            let next_due = self.observe().await;
            let _ = tokio::time::timeout(self.idle_wait(next_due), self.wake.notified()).await;
        }
    }

    /// Until `next_due` (a second at least: the round just ran), at most [`IDLE_POLL`].
    fn idle_wait(&self, next_due: Option<UnixTime>) -> Duration {
        next_due.map_or(IDLE_POLL, |due| {
            let secs = u64::try_from(due.0 - self.clock.now().0).unwrap_or(0).max(1);
            Duration::from_secs(secs).min(IDLE_POLL)
        })
    }

    /// One round: claim what is due, deliver it, record each outcome.
    pub async fn deliver_due(&self) -> Result<Round, StoreError> {
        let now = self.clock.now();
        let claimed = self.outbox.claim_mail(now, UnixTime(now.0 + LEASE_SECS), BATCH).await?;
        let mut round = Round::default();
        for mail in claimed {
            let outcome = if mail.attempt > MAX_ATTEMPTS {
                // Claimed this often without an outcome: every try ended the sender.
                Delivery::GiveUp {
                    error: format!("claimed {} times without an outcome", mail.attempt - 1),
                }
            } else {
                match self.deliver(&mail).await {
                    Ok(()) => Delivery::Sent,
                    Err(e) if e.permanent || mail.attempt >= MAX_ATTEMPTS => Delivery::GiveUp { error: e.message },
                    Err(e) => Delivery::Retry {
                        error: e.message,
                        retry_at: UnixTime(self.clock.now().0 + backoff_secs(mail.attempt)),
                    },
                }
            };
            let label = match &outcome {
                Delivery::Sent => {
                    round.sent += 1;
                    tracing::info!(mail_id = %mail.id, kind = %mail.kind, attempt = mail.attempt, "mail sent");
                    "sent"
                }
                Delivery::Retry { error, retry_at } => {
                    round.retried += 1;
                    tracing::warn!(mail_id = %mail.id, kind = %mail.kind, attempt = mail.attempt, error = %error,
                        retry_in_secs = retry_at.0 - self.clock.now().0, "mail not delivered; will retry");
                    "retry"
                }
                Delivery::GiveUp { error } => {
                    round.given_up += 1;
                    tracing::error!(mail_id = %mail.id, kind = %mail.kind, attempt = mail.attempt, error = %error,
                        "mail given up on (tokengate mail list --failed; tokengate mail retry)");
                    "failed"
                }
            };
            metrics::counter!(MAIL_DELIVERIES, "outcome" => label).increment(1);
            // One message's record failing must not cost the others theirs: each is
            // delivered again after the lease otherwise.
            match self
                .outbox
                .finish_mail(mail.id, mail.claim, outcome, self.clock.now())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    round.lost_claims += 1;
                    tracing::warn!(mail_id = %mail.id, "mail: the claim ran out before the outcome was recorded");
                }
                Err(e) => {
                    round.lost_claims += 1;
                    tracing::warn!(mail_id = %mail.id, error = %e, "mail: the outcome could not be recorded");
                }
            }
        }
        Ok(round)
    }

    async fn deliver(&self, mail: &ClaimedMail) -> Result<(), DeliveryError> {
        let stored = mail.message.as_bytes();
        let context = sealed_as(mail.id, &mail.recipient);
        // With a key set, a body stored in the clear was not queued by this server: not
        // sent (as `Vault::open` refuses any unsealed secret).
        let raw = if sealed_with(stored).is_some() || self.vault.seals() {
            self.vault.open(stored, &context).map_err(|e| DeliveryError {
                // Another instance may hold the key this one lacks (a key change rolling
                // out): not given up on for that.
                permanent: !matches!(e, AtRestError::NoKey { .. } | AtRestError::WrongKey { .. }),
                message: format!("the queued message cannot be opened: {e}"),
            })?
        } else {
            stored.to_vec()
        };
        self.transport.deliver(&self.from, &mail.recipient, &raw, mail.id).await
    }

    /// The outbox's gauges: waiting, given up on, and the age of the oldest waiting;
    /// when the next waiting message comes due.
    async fn observe(&self) -> Option<UnixTime> {
        let Ok(stats) = self.outbox.outbox_stats().await else {
            return None;
        };
        metrics::gauge!(MAIL_QUEUED).set(stats.queued as f64);
        metrics::gauge!(MAIL_FAILED_WAITING).set(stats.failed as f64);
        let age = stats.oldest_queued.map_or(0, |t| (self.clock.now().0 - t.0).max(0));
        metrics::gauge!(MAIL_OLDEST_QUEUED_AGE).set(age as f64);
        stats.next_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_30_seconds_to_an_hour() {
        let waits: Vec<i64> = (1..=MAX_ATTEMPTS).map(backoff_secs).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        let total: i64 = waits[..usize::try_from(MAX_ATTEMPTS - 1).unwrap()].iter().sum();
        assert_eq!(total, 11_010, "about 3 hours before giving up");
    }
}
