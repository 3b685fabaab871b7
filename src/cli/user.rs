//! `tokengate user create|import|list|...` against the configured database.

use std::io::{BufRead as _, IsTerminal as _};
use std::sync::Arc;

use std::collections::BTreeSet;

use super::UserCommand;
use super::import::{self, ColumnMap};
use crate::auth::AuthError;
use crate::auth::User;
use crate::auth::import::{ImportReport, OnRefused};
use crate::clock::SystemClock;
use crate::config::DatabaseUrl;
use crate::config::Settings;
use crate::domain::{Email, Password, Role, Username};
use crate::events::ClientInfo;
use crate::server::{OpenMode, Purpose, StartError, absolute, build_auth};

fn roles_text(u: &User) -> String {
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
    // An import is how a new deployment gets its users: it may make the database.
    let mode = match cmd {
        UserCommand::Import { .. } => OpenMode::CreateIfMissing,
        _ => OpenMode::MustExist,
    };
    // A dry run writes nothing: with no database yet, the rows are judged against an
    // empty one of its own, removed afterwards.
    let scratch = match (&cmd, &settings.store.database_url) {
        (UserCommand::Import { dry_run: true, .. }, DatabaseUrl::Sqlite { path }) if !path.exists() => {
            Some(ScratchDatabase::new().map_err(StartError::Runtime)?)
        }
        _ => None,
    };
    let scratch_settings = scratch.as_ref().map(|s| s.settings(settings));
    let settings = scratch_settings.as_ref().unwrap_or(settings);
    let auth = build_auth(settings, Arc::new(SystemClock), mode, Purpose::Operate).await?;
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
            let user = auth
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
            let user = named(&auth, &username).await?;
            let user = auth
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
            let user = named(&auth, &username).await?;
            let password = read_password(password_stdin).map_err(fail)?;
            auth.set_password(user.id, password, &ClientInfo::default())
                .await
                .map_err(operator_error)?;
            Ok(format!(
                "password of {} reset; every session of theirs is revoked",
                user.username.as_str()
            ))
        }
        UserCommand::SetEmail { username, email } => {
            let email = Email::parse(&email).map_err(|m| fail(format!("--email: {m}")))?;
            let user = named(&auth, &username).await?;
            let user = auth.set_email(user.id, email).await.map_err(operator_error)?;
            Ok(format!(
                "the address of {} is now {} (not verified)",
                user.username.as_str(),
                user.email.as_str()
            ))
        }
        UserCommand::VerifyEmail { username } => {
            let user = named(&auth, &username).await?;
            let user = auth
                .vouch_for_email(user.id, &ClientInfo::default())
                .await
                .map_err(operator_error)?;
            Ok(format!(
                "the address {} of {} counts as verified",
                user.email.as_str(),
                user.username.as_str()
            ))
        }
        UserCommand::ResetMfa { username } => {
            let user = named(&auth, &username).await?;
            let name = user.username.as_str();
            match auth.reset_mfa(user.id, &ClientInfo::default()).await {
                Ok(()) => Ok(format!(
                    "two-step sign-in of {name} is off; every session of theirs is revoked"
                )),
                // What the operator wanted is so already.
                Err(AuthError::MfaNotEnabled) => Ok(format!("{name} has no two-step sign-in; nothing changed")),
                Err(e) => Err(operator_error(e)),
            }
        }
        UserCommand::Deactivate { username } => set_active(&auth, &username, false).await,
        UserCommand::Activate { username } => set_active(&auth, &username, true).await,
        UserCommand::Import {
            from,
            from_db,
            table,
            maps,
            skip_invalid,
            dry_run,
            id_map,
        } => {
            let columns = ColumnMap::parse(&maps).map_err(fail)?;
            let source = match (&from, &from_db) {
                (Some(path), _) => import::read_file(path, &columns).map_err(fail)?,
                (None, Some(url)) => import::read_database(url, &table, &columns).await.map_err(fail)?,
                (None, None) => return Err(fail("give --from FILE or --from-db URL".into())),
            };
            let on_refused = match (dry_run, skip_invalid) {
                (true, _) => OnRefused::DryRun,
                (false, true) => OnRefused::ImportTheRest,
                (false, false) => OnRefused::ImportNothing,
            };
            let report = auth.import_users(source.rows, on_refused).await.map_err(|e| match e {
                AuthError::Taken => fail(
                    "a username or email was registered while the import ran; nothing was imported: run it again"
                        .into(),
                ),
                other => operator_error(other),
            })?;
            let mut text = import_summary(&report, &source.unread_columns, &target_of(settings), dry_run);
            if let Some(path) = id_map.filter(|_| !dry_run) {
                write_id_map(&path, &report.ids).map_err(fail)?;
                text.push_str(&format!(
                    "\nold id -> new id of {} users written to {}",
                    report.ids.len(),
                    absolute(&path).display()
                ));
            }
            if report.refused.is_empty() || report.committed {
                Ok(text)
            } else {
                Err(fail(text))
            }
        }
        UserCommand::List { limit, offset } => {
            let users = auth
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

/// An empty SQLite database in a folder of its own under the system's temporary folder,
/// removed when dropped.
struct ScratchDatabase(std::path::PathBuf);

impl ScratchDatabase {
    fn new() -> Result<Self, String> {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| format!("no OS randomness: {e}"))?;
        let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("tokengate-dry-run-{name}"));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }

    fn settings(&self, settings: &Settings) -> Settings {
        let mut s = settings.clone();
        s.store.database_url = DatabaseUrl::Sqlite {
            path: self.0.join("dry-run.db"),
        };
        s
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The database written to, for the summary (a PostgreSQL URL may hold a password).
fn target_of(settings: &Settings) -> String {
    match &settings.store.database_url {
        DatabaseUrl::Sqlite { path } => absolute(path).display().to_string(),
        DatabaseUrl::Postgres(_) => "the PostgreSQL database (TOKENGATE_DATABASE_URL)".into(),
    }
}

/// Every row that needs a word, then the counts. Never a password or a hash.
/// `--id-map`: `old_id,new_id` rows under a header, written whole or not at all.
fn write_id_map(path: &std::path::Path, ids: &[(String, crate::domain::UserId)]) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut rows = vec![["old_id".to_owned(), "new_id".to_owned()]];
    rows.extend(ids.iter().map(|(old, new)| [old.clone(), new.to_hyphenated()]));
    for r in &rows {
        w.write_record(r).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("--id-map: cannot write {}: {e}", absolute(path).display()))
}

fn import_summary(report: &ImportReport, unread: &BTreeSet<String>, target: &str, dry_run: bool) -> String {
    let mut out = String::new();
    for (n, name) in &report.skipped {
        out.push_str(&format!("{n}: skipped: user {} exists already\n", name.as_str()));
    }
    for (n, why) in &report.refused {
        out.push_str(&format!("{n}: refused: {why}\n"));
    }
    for (n, note) in &report.notes {
        out.push_str(&format!("{n}: note: {note}\n"));
    }
    if !unread.is_empty() {
        let names: Vec<&str> = unread.iter().map(String::as_str).collect();
        out.push_str(&format!("columns not imported: {}\n", names.join(", ")));
    }
    let missing: Vec<&str> = ["username", "email", "hashed_password"]
        .into_iter()
        .filter(|f| {
            let why = format!("{f} missing");
            report.refused.iter().any(|(_, r)| r.starts_with(&why))
        })
        .collect();
    let hints = import::map_hints(&missing, unread);
    if !hints.is_empty() {
        out.push_str(&format!(
            "hint: a column looks like a missing field; try {}\n",
            hints.join(" ")
        ));
    }
    if dry_run {
        out.push_str(&format!(
            "dry run: would import {}, skip {} (exist already), refuse {}; nothing was written",
            report.imported.len(),
            report.skipped.len(),
            report.refused.len()
        ));
        return out;
    }
    out.push_str(&format!(
        "imported {}, skipped {} (exist already), refused {}",
        report.imported.len(),
        report.skipped.len(),
        report.refused.len()
    ));
    if report.committed {
        out.push_str(&format!(" into {target}"));
    } else if !report.refused.is_empty() {
        out.push_str(
            "\nnothing was imported: correct or remove the refused rows, or pass --skip-invalid to import the others",
        );
    }
    out
}

async fn named(auth: &crate::auth::AuthService, username: &str) -> Result<User, StartError> {
    auth.user_named(username).await.map_err(|e| match e {
        AuthError::NotFound => StartError::Runtime(format!("no user named {username:?}")),
        other => StartError::Runtime(other.to_string()),
    })
}

async fn set_active(auth: &crate::auth::AuthService, username: &str, active: bool) -> Result<String, StartError> {
    let user = named(auth, username).await?;
    let change = crate::auth::UserChange {
        is_active: Some(active),
        ..Default::default()
    };
    let user = auth
        .update_user(None, user.id, change, &ClientInfo::default())
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
