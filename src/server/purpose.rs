//! Whom a server's parts are built for: the server itself, or an operator command.

/// Whom the state is built for. An operator command (`user ...`) signs no token and
/// counts no rate: it needs no signing secret, no rate-limit store, and prints none of
/// the server's warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Operate,
}
