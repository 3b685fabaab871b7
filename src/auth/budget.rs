//! Attempt budgets: what a login spends against the rate limits, what it gives back
//! when it succeeds, and the username's shared budget against distributed guessing.

use super::{AuthError, AuthService};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::{Decision, LimitKey};

/// Failures for one username from this many client networks within the login window
/// are a distributed attack: the username's shared budget applies (contract v1.2).
pub const DISTRIBUTED_NETWORKS: usize = 5;

/// The limit keys an attempt has spent so far (given back if it succeeds).
#[derive(Default)]
pub(super) struct Spent(pub(super) Vec<LimitKey>);

impl AuthService {
    /// Count an attempt against `key`; over the limit it is refused (and logged). A
    /// limiter that cannot count lets the attempt through, logged: every other check
    /// still applies, and refusing every login while a counter is unreachable would
    /// turn its outage into ours.
    pub(super) async fn limit(&self, key: LimitKey, event: AuthEvent, client: &ClientInfo) -> Result<(), AuthError> {
        match self.limiter.hit(&key).await {
            Ok(Decision::Allowed) => Ok(()),
            Ok(Decision::Limited(retry)) => {
                self.events.record(event, None, None, client);
                Err(AuthError::RateLimited {
                    retry_after_secs: retry.secs(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "rate limit not counted");
                Ok(())
            }
        }
    }

    /// [`AuthService::limit`], remembering the key in `spent` if it was counted.
    pub(super) async fn spend(&self, spent: &mut Spent, key: LimitKey, client: &ClientInfo) -> Result<(), AuthError> {
        self.limit(key.clone(), AuthEvent::LoginLimited, client).await?;
        spent.0.push(key);
        Ok(())
    }

    /// Give back every attempt in `spent`: the attempt did not fail.
    pub(super) async fn give_back(&self, spent: Spent) {
        for key in spent.0 {
            if let Err(e) = self.limiter.refund(&key).await {
                tracing::warn!(error = %e, "rate limit not refunded");
            }
        }
    }

    /// Give `spent` back unless the attempt `failed` (only failures count).
    pub(super) async fn settle(&self, spent: Spent, failed: bool) {
        if !failed {
            self.give_back(spent).await;
        }
    }

    /// The username's shared budget: every failure without a device token counts
    /// against it, but it refuses only while failures come from many networks at once
    /// (a distributed attack); one network's guesses never lock out the others.
    pub(super) async fn spend_shared(
        &self,
        spent: &mut Spent,
        username: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let key = LimitKey::LoginUser(username.to_owned());
        match self.limiter.hit(&key).await {
            Ok(Decision::Allowed) => spent.0.push(key),
            Ok(Decision::Limited(retry)) => {
                let networks = match self.limiter.failing_networks(username, None).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "failing networks not counted");
                        0
                    }
                };
                if networks >= DISTRIBUTED_NETWORKS {
                    self.events.record(AuthEvent::LoginLimited, None, None, client);
                    return Err(AuthError::RateLimited {
                        retry_after_secs: retry.secs(),
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "rate limit not counted"),
        }
        Ok(())
    }

    /// Note that a login as `username` failed from `net`.
    pub(super) async fn note_failing_network(&self, username: &str, net: crate::limits::ClientNet) {
        if let Err(e) = self.limiter.failing_networks(username, Some(net)).await {
            tracing::warn!(error = %e, "failing network not noted");
        }
    }
}
