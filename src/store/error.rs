//! What a store reports when a call did not do what it asked.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached right now, or refused the transaction for a
    /// reason a retry may cure (a lost connection, a busy or serialisation failure).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Backend(String),
}
