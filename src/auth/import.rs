//! Importing users from another system (a FastAPI tutorial app's `users` table): what
//! is accepted, skipped or refused, and the one transaction that writes them. Reading
//! the sources (files, databases) is the command line's job; the rules are here.

use std::collections::HashMap;

use super::{AuthError, AuthService};
use crate::crypto::passwords::{CostBounds, PasswordHashString};
use crate::domain::{Email, Role, UnixTime, UserId, Username};
use crate::store::{ImportedUser, NewUser, StoreError};

/// Where a row was in its source: a line of a file, or a row of a table (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowNumber {
    Line(usize),
    Row(usize),
}

impl std::fmt::Display for RowNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// One user as a source holds it, before any rule: fields by our names.
#[derive(Clone, Debug, Default)]
pub struct SourceUser {
    pub username: Option<String>,
    pub email: Option<String>,
    /// Never printed: a hash is a secret too.
    pub hashed_password: Option<String>,
    pub is_active: bool,
    pub roles: Vec<String>,
    pub created_at: Option<UnixTime>,
}

/// A source row, or why it could not be read as one.
#[derive(Clone, Debug)]
pub struct SourceRow {
    pub number: RowNumber,
    pub user: Result<SourceUser, String>,
    /// What reading it left out (a value it could not understand and did without).
    pub notes: Vec<String>,
}

/// What to do when some rows are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefused {
    /// Import nothing (the default: a run is all or nothing).
    ImportNothing,
    /// Import the rows that are fine.
    ImportTheRest,
}

/// What a run did, row by row where a row needs a word.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    pub imported: Vec<(RowNumber, Username)>,
    /// Usernames that exist already (a re-run skips what the last run imported).
    pub skipped: Vec<(RowNumber, Username)>,
    pub refused: Vec<(RowNumber, String)>,
    /// Imported, with something left out (a role that is not a valid role name, a
    /// creation time that could not be read).
    pub notes: Vec<(RowNumber, String)>,
    /// Whether anything was written.
    pub committed: bool,
}

/// A row that passed every rule, with what it left out.
struct Accepted {
    user: ImportedUser,
    dropped_roles: Vec<String>,
}

/// Each field through its domain type; the first refusal's reason otherwise.
fn validate(source: SourceUser, now: UnixTime, bounds: &CostBounds) -> Result<Accepted, String> {
    let raw_name = source.username.ok_or("username missing")?;
    let username = Username::parse(&raw_name).map_err(|m| format!("invalid username {raw_name:?}: {m}"))?;
    let raw_email = source.email.ok_or("email missing (tokengate requires one)")?;
    let email = Email::parse(&raw_email).map_err(|m| format!("invalid email {raw_email:?}: {m}"))?;
    let raw_hash = source.hashed_password.ok_or("hashed_password missing")?;
    let password_hash = PasswordHashString::foreign(&raw_hash).map_err(|m| format!("hashed_password: {m}"))?;
    // A hash too costly to verify would let one wrong-password login pin a hashing
    // thread: refused, so the user resets their password instead.
    bounds
        .check(&password_hash)
        .map_err(|m| format!("hashed_password: {m}; the user must reset their password"))?;
    let mut roles = Vec::new();
    let mut dropped_roles = Vec::new();
    for r in source.roles {
        match Role::parse(&r) {
            Ok(role) if !roles.contains(&role) => roles.push(role),
            Ok(_) => {}
            Err(_) => dropped_roles.push(r),
        }
    }
    Ok(Accepted {
        user: ImportedUser {
            user: NewUser {
                id: UserId::new(),
                username,
                email,
                password_hash,
                roles,
                created_at: source.created_at.unwrap_or(now),
            },
            is_active: source.is_active,
        },
        dropped_roles,
    })
}

impl AuthService {
    /// Import `rows`: each is validated (username, email, a hash that verifies here,
    /// role names), compared with the rest of the input (a username or email twice is
    /// refused the second time) and with the stored users (an existing username is
    /// skipped, so a re-run is a no-op; an email held by someone else is refused).
    /// What is accepted is written in one transaction. With refusals and
    /// `OnRefused::ImportNothing`, nothing is written.
    pub async fn import_users(&self, rows: Vec<SourceRow>, on_refused: OnRefused) -> Result<ImportReport, AuthError> {
        let now = self.clock.now();
        let bounds = self.hasher.bounds();
        let mut report = ImportReport::default();
        let mut accepted: Vec<(RowNumber, ImportedUser)> = Vec::new();
        let mut names: HashMap<String, RowNumber> = HashMap::new();
        let mut emails: HashMap<String, RowNumber> = HashMap::new();
        for row in rows {
            let number = row.number;
            let read_notes = row.notes;
            let checked = row.user.and_then(|u| validate(u, now, &bounds));
            let ok = match checked {
                Ok(ok) => ok,
                Err(reason) => {
                    report.refused.push((number, reason));
                    continue;
                }
            };
            let user = &ok.user.user;
            let name_key = user.username.as_str().to_lowercase();
            let email_key = user.email.as_str().to_lowercase();
            if let Some(first) = names.get(&name_key) {
                let reason = format!("username {:?} is also on {first}", user.username.as_str());
                report.refused.push((number, reason));
                continue;
            }
            if let Some(first) = emails.get(&email_key) {
                let reason = format!("email {:?} is also on {first}", user.email.as_str());
                report.refused.push((number, reason));
                continue;
            }
            names.insert(name_key, number);
            emails.insert(email_key, number);
            let held = self.store.holders(&user.username, &user.email).await?;
            if held.username {
                report.skipped.push((number, user.username.clone()));
                continue;
            }
            if held.email {
                let reason = format!("email {:?} belongs to another user here", user.email.as_str());
                report.refused.push((number, reason));
                continue;
            }
            for role in ok.dropped_roles {
                report
                    .notes
                    .push((number, format!("role {role:?} left out (not a valid role name)")));
            }
            report.notes.extend(read_notes.into_iter().map(|n| (number, n)));
            accepted.push((number, ok.user));
        }
        if accepted.is_empty() || (!report.refused.is_empty() && on_refused == OnRefused::ImportNothing) {
            return Ok(report);
        }
        let imported = accepted.iter().map(|(n, u)| (*n, u.user.username.clone())).collect();
        match self
            .store
            .insert_users(accepted.into_iter().map(|(_, u)| u).collect())
            .await
        {
            Ok(()) => {}
            // Someone registered one of these names while the run was checking.
            Err(StoreError::Conflict) => return Err(AuthError::Taken),
            Err(e) => return Err(e.into()),
        }
        report.imported = imported;
        report.committed = true;
        Ok(report)
    }
}
