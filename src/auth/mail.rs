//! The outbox as an operator and the server see it: the delivery loop, the messages
//! given up on, and queuing them again.

use std::sync::Arc;

use super::{AuthError, AuthService};
use crate::domain::MailId;
use crate::mail::MailService;
pub use crate::store::MailEntry as QueuedMail;

impl AuthService {
    /// The mail service, whose delivery loop a serving instance runs.
    pub fn mail_service(&self) -> Arc<MailService> {
        self.mail.clone()
    }

    /// Messages in the outbox, newest first (`failed_only`: those given up on).
    pub async fn queued_mail(&self, failed_only: bool, limit: u32) -> Result<Vec<QueuedMail>, AuthError> {
        Ok(self.store.list_mail(failed_only, limit).await?)
    }

    /// Queue again the failed message `id`, or every failed one; how many.
    pub async fn retry_mail(&self, id: Option<MailId>) -> Result<u64, AuthError> {
        let n = self.store.retry_mail(id, self.clock.now()).await?;
        self.mail.wake();
        Ok(n)
    }
}
