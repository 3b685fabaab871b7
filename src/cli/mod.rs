//! The command line: `serve`, `migrate`, `user ...`, `keys ...`, `mail ...`, `healthcheck`. Parsing lives here; `main.rs`
//! only dispatches.

mod client;
pub mod healthcheck;
mod import;
mod keys;
mod mail;
mod table;
mod user;

use clap::{Parser, Subcommand};

use crate::config::RawSettings;

/// A JWT authentication server. Every setting is a `TOKENGATE_*` variable (or a line of
/// `./.env`); `serve --help` lists them, each also a flag of `serve`.
#[derive(Parser, Debug)]
#[command(name = "tokengate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<RawSettings>),
    /// Bring the database schema up to date.
    Migrate(Database),
    /// Manage users (settings from the environment: TOKENGATE_DATABASE_URL, TOKENGATE_ARGON2_*, ...).
    User {
        #[command(flatten)]
        database: Database,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage signing keys (EdDSA, ES256, RS256; HS256 uses TOKENGATE_SECRET_KEY).
    Keys {
        #[command(flatten)]
        database: Database,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The applications that sign their users in here (OAuth2 / OpenID Connect clients).
    Client {
        #[command(flatten)]
        database: Database,
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// The mail outbox: what waits, what was given up on, and queuing it again.
    Mail {
        #[command(flatten)]
        database: Database,
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Ask the server for /healthz; exit 0 when healthy (container health checks
    /// without curl).
    Healthcheck {
        /// The server's address [default: 127.0.0.1:8000]
        #[arg(long, env = "TOKENGATE_BIND")]
        bind: Option<String>,
        /// The server's path prefix, if any (e.g. /api/v1)
        #[arg(long, env = "TOKENGATE_PATH_PREFIX")]
        path_prefix: Option<String>,
    },
}

/// The database an operator command works on.
#[derive(clap::Args, Debug, Clone)]
pub struct Database {
    /// sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://tokengate.db]
    #[arg(
        long,
        env = "TOKENGATE_DATABASE_URL",
        value_name = "URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

impl Command {
    /// The raw settings this command runs with: `serve`'s flags and the environment,
    /// or, for every other command, the environment with the command's own flags over it.
    pub fn settings(&self) -> Result<RawSettings, clap::Error> {
        let database = match self {
            Self::Serve(raw) => return Ok(raw.as_ref().clone()),
            Self::Migrate(d)
            | Self::User { database: d, .. }
            | Self::Keys { database: d, .. }
            | Self::Client { database: d, .. }
            | Self::Mail { database: d, .. } => Some(d),
            Self::Healthcheck { .. } => None,
        };
        let mut raw = RawSettings::from_environment()?;
        if let Some(url) = database.and_then(|d| d.database_url.clone()) {
            raw.database_url = Some(url);
        }
        if let Self::Healthcheck { bind, path_prefix } = self {
            raw.bind.clone_from(bind);
            raw.path_prefix.clone_from(path_prefix);
        }
        Ok(raw)
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create the active signing key when there is none.
    Generate,
    /// Make a new active key: published now, signing after the JWKS cache time (at most
    /// 5 minutes); the old key verifies one access-token lifetime longer. The provider's
    /// id_token key (once it has one) rotates with it, also under HS256.
    Rotate {
        /// The active key is compromised: the new key signs at once, and the old one
        /// leaves the JWKS and stops verifying at once (every token it signed is refused).
        #[arg(long)]
        now: bool,
    },
    /// Stop trusting one key at once (see `keys list`): it leaves the JWKS and every
    /// token it signed is refused; if it is the active key, a new one replaces it.
    Revoke {
        /// The key's kid.
        kid: String,
    },
    /// List keys: kid, what it signs (access tokens, id_tokens), algorithm, state,
    /// created, retires at.
    List,
    /// Encrypt every stored private key, server secret and the HS256 secret file with
    /// TOKENGATE_ENCRYPTION_KEY, opening what is sealed with the keys in
    /// TOKENGATE_PREVIOUS_ENCRYPTION_KEYS (or stored unencrypted). Safe to run again.
    Reencrypt,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register an application: prints its client_id, and its secret (confidential
    /// clients) once.
    Create {
        /// Its name, as its users see it on the consent page.
        #[arg(long)]
        name: String,
        /// A redirect URI (repeatable; at least one): https://, http:// on a loopback
        /// host, or an app's reversed-domain scheme. Matched exactly.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the user back (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A scope it may ask for (repeatable) [default: openid profile email].
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// No secret: a SPA or a mobile app (it uses PKCE alone).
        #[arg(long)]
        public: bool,
        /// First-party: its users are not asked to consent.
        #[arg(long)]
        trusted: bool,
        /// The `aud` of its access tokens (an API's identifier; never TOKENGATE_AUDIENCE) [default: its client_id].
        #[arg(long)]
        audience: Option<String>,
    },
    /// List applications: client_id, name, type, trusted, scopes, redirect URIs.
    List,
    /// Remove an application.
    Delete {
        /// Its client_id (see `client list`).
        client_id: String,
    },
    /// A new secret for a confidential application; the old one stops working at once.
    RotateSecret {
        /// Its client_id (see `client list`).
        client_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// List messages, newest first: id, kind, recipient, attempts, state, last error
    /// (never a body).
    List {
        /// Only the messages given up on.
        #[arg(long)]
        failed: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Queue a failed message again (or every failed one, --all); a running server
    /// delivers it within seconds.
    Retry {
        /// The message's id (see `mail list --failed`).
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user. The password is prompted for (not echoed) at a terminal, else
    /// read as one line from standard input.
    Create {
        /// The new user's name: 3-50 characters of letters, digits, `_`, `.` and `-`.
        #[arg(long)]
        username: String,
        /// The new user's email address (unique; they may log in with it too).
        #[arg(long)]
        email: String,
        /// A role to grant (repeatable), e.g. --role admin
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from standard input even at a terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Reset a user's password (for a user who lost theirs): every session of theirs
    /// is revoked at once. Prompted for at a terminal, else read from standard input.
    SetPassword {
        /// The user whose password to reset.
        #[arg(long)]
        username: String,
        /// Read the password from standard input even at a terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Replace a user's roles (none given: no roles). Applies at their next login or refresh.
    SetRoles {
        /// The user whose roles to replace.
        #[arg(long)]
        username: String,
        /// A role (repeatable), e.g. --role admin
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Deactivate a user: every session and token of theirs dies at once.
    Deactivate {
        /// The user to deactivate.
        #[arg(long)]
        username: String,
    },
    /// Give a user another email address (it counts as unverified until they open the
    /// link they ask for, or an operator vouches for it).
    SetEmail {
        /// The user whose address to change.
        #[arg(long)]
        username: String,
        /// The new address (unique; they may log in with it too).
        #[arg(long)]
        email: String,
    },
    /// Count a user's email address as verified (they need no link; with
    /// TOKENGATE_REQUIRE_VERIFIED_EMAIL they can log in).
    VerifyEmail {
        /// The user whose address to vouch for.
        #[arg(long)]
        username: String,
    },
    /// Turn a user's two-step sign-in off (they lost their authenticator and their
    /// recovery codes): their factors and codes are deleted, every session of theirs
    /// ends, and they are told by mail. They sign in with the password alone, then
    /// enrol again.
    ResetMfa {
        /// The user whose MFA to turn off.
        #[arg(value_name = "USER")]
        username: String,
    },
    /// Let a deactivated user log in again (old tokens stay dead).
    Activate {
        /// The user to let in again.
        #[arg(long)]
        username: String,
    },
    /// Import users with their password hashes (bcrypt or argon2, as a FastAPI/passlib
    /// app stores them; each becomes argon2id at its first login) from a JSON Lines or
    /// CSV file (header row first) or another app's database table. Columns: username,
    /// email, hashed_password, is_active or disabled, email_verified (false when absent),
    /// role or roles, created_at. One transaction; existing usernames are skipped, so
    /// running it again is safe.
    Import {
        /// A JSON Lines (.jsonl) or CSV (.csv) file.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "from_db",
            required_unless_present = "from_db"
        )]
        from: Option<std::path::PathBuf>,
        /// A database to read: sqlite://PATH or postgres://USER@HOST/DB (read only).
        #[arg(long, value_name = "URL")]
        from_db: Option<String>,
        /// The table to read with --from-db (schema.table for another schema).
        #[arg(long, default_value = "users")]
        table: String,
        /// Read COLUMN as FIELD (repeatable), e.g. --map password_hash=hashed_password
        #[arg(long = "map", value_name = "COLUMN=FIELD")]
        maps: Vec<String>,
        /// Import the valid rows even if some are refused (by default nothing is
        /// imported until every row is valid or removed).
        #[arg(long)]
        skip_invalid: bool,
        /// Check and report every row, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write each imported row's old id and its new tokengate id to FILE (CSV:
        /// old_id,new_id), to relink the old app's rows that point at `users.id`.
        #[arg(long, value_name = "FILE")]
        id_map: Option<std::path::PathBuf>,
    },
    /// List users.
    List {
        /// Users to list at most.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Users to skip first (oldest first), for the next page.
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
}

pub use client::run as run_client;
pub use keys::run as run_keys;
pub use mail::run as run_mail;
pub use user::run as run_user;
