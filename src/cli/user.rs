//! `tokengate user create|list` against the configured database.

use std::io::BufRead as _;
use std::sync::Arc;

use super::UserCommand;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{Email, Password, Role, Username};
use crate::error::ApiError;
use crate::server::{StartError, build_state};

/// Run one `user` subcommand; the text to print on success.
pub async fn run(settings: &Settings, cmd: UserCommand) -> Result<String, StartError> {
    let state = build_state(settings, Arc::new(SystemClock)).await?;
    let fail = |m: String| StartError::Runtime(m);
    match cmd {
        UserCommand::Create {
            username,
            email,
            roles,
            password_stdin: _,
        } => {
            let username =
                Username::parse(&username).map_err(|m| fail(format!("--username: {m}")))?;
            let email = Email::parse(&email).map_err(|m| fail(format!("--email: {m}")))?;
            let roles = roles
                .iter()
                .map(|r| Role::parse(r).map_err(|m| fail(format!("--role {r:?}: {m}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let password = read_password().map_err(fail)?;
            let user = state
                .auth
                .create_user(username, email, password, roles)
                .await
                .map_err(|e| match e {
                    ApiError::Conflict(m) => fail(m.to_string()),
                    other => fail(other.to_string()),
                })?;
            Ok(format!(
                "created user {} ({}) with roles [{}]",
                user.username.as_str(),
                user.id,
                user.roles
                    .iter()
                    .map(Role::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        UserCommand::List { limit, offset } => {
            let users = state
                .auth
                .store()
                .list_users(limit.min(10_000), offset)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut out = format!(
                "{:<36}  {:<20}  {:<30}  {:<6}  roles\n",
                "id", "username", "email", "active"
            );
            for u in users {
                out.push_str(&format!(
                    "{:<36}  {:<20}  {:<30}  {:<6}  {}\n",
                    u.id,
                    u.username.as_str(),
                    u.email.as_str(),
                    u.is_active,
                    u.roles
                        .iter()
                        .map(Role::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            Ok(out.trim_end().to_owned())
        }
    }
}

/// One line from standard input, without its line ending.
fn read_password() -> Result<Password, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Password::parse(pw).map_err(|m| format!("password (standard input): {m}"))
}
