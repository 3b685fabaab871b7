//! Mail: what the server sends (verification, reset, notices), how it is composed, and
//! its delivery through the durable outbox. A message is queued in the same
//! transaction as what it tells of (`store::Outbox`); a sender on every instance claims
//! due messages one at a time per message, hands them to the transport, and records
//! the outcome: sent, retried with backoff, or given up on (kept with its error for
//! `tokengate mail list --failed`).

mod compose;
mod sender;
mod settings;
mod templates;
mod transport;

pub use compose::{Content, compose};
pub use sender::{MailService, Round};
pub use settings::{MailSettings, MailTransportSettings, SmtpTls, SmtpUrl, parse_mailbox};
pub use templates::Template;
pub use transport::{DeliveryError, Transport};
