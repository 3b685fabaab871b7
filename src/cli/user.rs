//! `tokengate user create|list` against the configured database.

use std::io::{BufRead as _, IsTerminal as _};
use std::sync::Arc;

use super::UserCommand;
use crate::auth::AuthError;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{Email, Password, Role, Username};
use crate::events::ClientInfo;
use crate::server::{OpenMode, StartError, build_state_opening};
use crate::store::{UserRecord, UserUpdate};

fn roles_text(u: &UserRecord) -> String {
    u.roles.iter().map(Role::as_str).collect::<Vec<_>>().join(", ")
}

fn parse_roles(roles: &[String]) -> Result<Vec<Role>, StartError> {
    roles
        .iter()
        .map(|r| Role::parse(r).map_err(|m| StartError::Runtime(format!("--role {r:?}: {m}"))))
        .collect()
}

/// Run one `user` subcommand; the text to print on success.
pub async fn run(settings: &Settings, cmd: UserCommand) -> Result<String, StartError> {
    let state = build_state_opening(settings, Arc::new(SystemClock), OpenMode::MustExist).await?;
    let fail = |m: String| StartError::Runtime(m);
    match cmd {
        UserCommand::Create {
            username,
            email,
            roles,
            password_stdin,
        } => {
            let username = Username::parse(&username).map_err(|m| fail(format!("--username: {m}")))?;
            let email = Email::parse(&email).map_err(|m| fail(format!("--email: {m}")))?;
            let roles = parse_roles(&roles)?;
            let password = read_password(password_stdin).map_err(fail)?;
            let user = state
                .auth
                .create_user(username, email, password, roles)
                .await
                .map_err(operator_error)?;
            Ok(format!(
                "created user {} ({}) with roles [{}]",
                user.username.as_str(),
                user.id,
                roles_text(&user)
            ))
        }
        UserCommand::SetRoles { username, roles } => {
            let roles = parse_roles(&roles)?;
            let user = named(&state.auth, &username).await?;
            let user = state
                .auth
                .set_roles(user.id, roles, &ClientInfo::default())
                .await
                .map_err(operator_error)?;
            Ok(format!(
                "user {} now has roles [{}]",
                user.username.as_str(),
                roles_text(&user)
            ))
        }
        UserCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let user = named(&state.auth, &username).await?;
            let password = read_password(password_stdin).map_err(fail)?;
            state
                .auth
                .set_password(user.id, password, &ClientInfo::default())
                .await
                .map_err(operator_error)?;
            Ok(format!(
                "password of {} reset; every session of theirs is revoked",
                user.username.as_str()
            ))
        }
        UserCommand::Deactivate { username } => set_active(&state.auth, &username, false).await,
        UserCommand::Activate { username } => set_active(&state.auth, &username, true).await,
        UserCommand::List { limit, offset } => {
            let users = state
                .auth
                .store()
                .list_users(limit.min(10_000), offset)
                .await
                .map_err(|e| fail(e.to_string()))?;
            Ok(super::table::render(
                &["id", "username", "email", "active", "roles"],
                &[36, 20, 30, 6],
                users.iter().map(|u| {
                    vec![
                        u.id.to_string(),
                        u.username.as_str().to_owned(),
                        u.email.as_str().to_owned(),
                        u.is_active.to_string(),
                        u.roles.iter().map(Role::as_str).collect::<Vec<_>>().join(","),
                    ]
                }),
            ))
        }
    }
}

async fn named(auth: &crate::auth::AuthService, username: &str) -> Result<UserRecord, StartError> {
    auth.user_named(username).await.map_err(|e| match e {
        AuthError::NotFound => StartError::Runtime(format!("no user named {username:?}")),
        other => StartError::Runtime(other.to_string()),
    })
}

async fn set_active(auth: &crate::auth::AuthService, username: &str, active: bool) -> Result<String, StartError> {
    let user = named(auth, username).await?;
    let update = UserUpdate {
        is_active: Some(active),
        ..UserUpdate::default()
    };
    let user = auth
        .update_user(None, user.id, update, &ClientInfo::default())
        .await
        .map_err(operator_error)?;
    let what = if active {
        "activated"
    } else {
        "deactivated; every session of theirs is revoked"
    };
    Ok(format!("user {} {what}", user.username.as_str()))
}

/// A refusal worded for the operator: the domain error says why in its own words.
fn operator_error(e: AuthError) -> StartError {
    StartError::Runtime(e.to_string())
}

/// The new password: prompted for twice without echo at a terminal (unless
/// `from_stdin`), else one line from standard input.
fn read_password(from_stdin: bool) -> Result<Password, String> {
    if !from_stdin && std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read the password: {e}"))?;
        let password = Password::parse(&first).map_err(|m| format!("password: {m}"))?;
        let again =
            rpassword::prompt_password("Repeat password: ").map_err(|e| format!("cannot read the password: {e}"))?;
        if again != first {
            return Err("the two passwords differ; nothing was changed".into());
        }
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Password::parse(pw).map_err(|m| format!("password (standard input): {m}"))
}
