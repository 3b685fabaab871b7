//! Importing users from another system (a FastAPI tutorial app's `users` table): what
//! is accepted, skipped or refused, and the one transaction that writes them. Reading
//! the sources (files, databases) is the command line's job; the rules are here.

use std::collections::HashMap;

use super::{AuthError, AuthService};
use crate::crypto::passwords::{CostBounds, PasswordHashString};
use crate::domain::{Email, Role, UnixTime, UserId, Username};
use crate::store::{ImportedUser, NewUser, StoreError, UserRecord};

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
    /// The row's id in the old app (`users.id`), for the id map.
    pub old_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// Never printed: a hash is a secret too.
    pub hashed_password: Option<String>,
    pub is_active: bool,
    /// Only where the import maps a column to it: an address nobody proved here is not
    /// verified.
    pub email_verified: bool,
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
    /// Write nothing at all: check and report every row (`--dry-run`).
    DryRun,
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
    /// Old id (as the source had it) to tokengate id, for every imported or skipped row
    /// that had one: the rows of the old app that point at `users.id` are relinked by it.
    pub ids: Vec<(String, UserId)>,
}

/// A row that passed every rule, with what it left out.
struct Accepted {
    user: ImportedUser,
    dropped_roles: Vec<String>,
    old_id: Option<String>,
    /// The source's username was an email address: `user.username` is a stand-in
    /// derived from it (made unique against the input and the store later).
    named_by_email: bool,
}

/// A username made from an email address's local part (`jane.doe+x@example.com` ->
/// `jane.doe_x`): characters a username cannot hold become `_`, padded to 3 and cut to
/// 46, so that a `-2`... suffix still fits. The user keeps logging in with the email.
pub fn username_from_email(email: &Email) -> Username {
    let local = email.as_str().rsplit_once('@').map_or(email.as_str(), |(l, _)| l);
    let mut name: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(46)
        .collect();
    while name.len() < 3 {
        name.push('_');
    }
    Username::parse(&name).unwrap_or_else(|_| Username::parse("user").expect("a valid username"))
}

/// `base` with a `-N` suffix (2, 3, ...): the next candidate after `base` is taken.
fn numbered(base: &Username, n: u32) -> Username {
    Username::parse(&format!("{}-{n}", base.as_str())).unwrap_or_else(|_| base.clone())
}

/// Each field through its domain type; the first refusal's reason otherwise.
fn validate(source: SourceUser, now: UnixTime, bounds: &CostBounds) -> Result<Accepted, String> {
    let raw_name = source.username.ok_or("username missing")?;
    // An app whose usernames are email addresses (fastapi-users, many tutorials): the
    // address is the email, and the username is derived from it.
    let name_as_email = raw_name.contains('@').then(|| Email::parse(&raw_name).ok()).flatten();
    let raw_email = match (&source.email, &name_as_email) {
        (Some(e), _) => e.clone(),
        (None, Some(e)) => e.as_str().to_owned(),
        (None, None) => return Err("email missing (tokengate requires one)".into()),
    };
    let email = Email::parse(&raw_email).map_err(|m| format!("invalid email {raw_email:?}: {m}"))?;
    let username = match &name_as_email {
        Some(e) => username_from_email(e),
        None => Username::parse(&raw_name).map_err(|m| format!("invalid username {raw_name:?}: {m}"))?,
    };
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
            email_verified: source.email_verified,
        },
        dropped_roles,
        old_id: source.old_id,
        named_by_email: name_as_email.is_some(),
    })
}

impl AuthService {
    /// A row skipped because its user exists already goes into the id map only if that
    /// account still holds the very hash of the row: then an import made it (and its
    /// user has not logged in since). A name or address can be registered by anyone
    /// before the import; the old app's hash cannot be chosen.
    fn link_skipped(
        &self,
        report: &mut ImportReport,
        number: RowNumber,
        old_id: Option<String>,
        existing: &UserRecord,
        hash: &PasswordHashString,
    ) {
        let Some(old) = old_id else { return };
        if existing.password_hash.0 == hash.0 {
            report.ids.push((old, existing.id));
        } else {
            report.notes.push((
                number,
                format!(
                    "user {:?} exists here and its password is not this row's (registered here, or logged in since \
                     an earlier import, whose id map has it): left out of the id map",
                    existing.username.as_str()
                ),
            ));
        }
    }

    /// Import `rows`: each is validated (username, email, a hash that verifies here,
    /// role names), compared with the rest of the input (a username or email twice is
    /// refused the second time) and with the stored users (an existing username is
    /// skipped, so a re-run is a no-op; an email held by someone else is refused).
    /// What is accepted is written in one transaction. With refusals and
    /// `OnRefused::ImportNothing`, nothing is written; with `DryRun`, never.
    ///
    /// A row whose username is an email address is matched by that email instead: it
    /// is skipped when the email exists here (a re-run), else imported under a username
    /// derived from the address (`-2`, `-3`... when taken), noted in the report.
    pub async fn import_users(&self, rows: Vec<SourceRow>, on_refused: OnRefused) -> Result<ImportReport, AuthError> {
        let now = self.clock.now();
        let bounds = self.hasher.bounds();
        let mut report = ImportReport::default();
        let mut accepted: Vec<(RowNumber, Option<String>, ImportedUser)> = Vec::new();
        let mut names: HashMap<String, RowNumber> = HashMap::new();
        let mut emails: HashMap<String, RowNumber> = HashMap::new();
        // The usernames the input spells out: a name derived from an email never takes
        // one of them, whichever row comes first.
        let literal: std::collections::HashSet<String> = rows
            .iter()
            .filter_map(|r| r.user.as_ref().ok()?.username.as_deref())
            .filter(|n| !n.contains('@'))
            .map(str::to_lowercase)
            .collect();
        for row in rows {
            let number = row.number;
            let read_notes = row.notes;
            let checked = row.user.and_then(|u| validate(u, now, &bounds));
            let mut ok = match checked {
                Ok(ok) => ok,
                Err(reason) => {
                    report.refused.push((number, reason));
                    continue;
                }
            };
            if ok.named_by_email {
                let email = ok.user.user.email.clone();
                let base = ok.user.user.username.clone();
                if let Some(existing) = self.store.user_by_email(&email).await? {
                    self.link_skipped(&mut report, number, ok.old_id, &existing, &ok.user.user.password_hash);
                    report.skipped.push((number, existing.username));
                    continue;
                }
                let mut candidate = base.clone();
                for n in 2.. {
                    let key = candidate.as_str().to_lowercase();
                    let free = !names.contains_key(&key)
                        && !literal.contains(&key)
                        && !self.store.holders(&candidate, &email).await?.username;
                    if free || n > 1000 {
                        break;
                    }
                    candidate = numbered(&base, n);
                }
                report.notes.push((
                    number,
                    format!(
                        "username {:?} made from the email {:?} (they log in with either)",
                        candidate.as_str(),
                        email.as_str()
                    ),
                ));
                ok.user.user.username = candidate;
            }
            let user = &ok.user.user;
            let name_key = user.username.as_str().to_lowercase();
            let email_key = user.email.folded();
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
                if ok.old_id.is_some()
                    && let Some(existing) = self.store.user_by_username(user.username.as_str()).await?
                {
                    self.link_skipped(&mut report, number, ok.old_id, &existing, &user.password_hash);
                }
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
            accepted.push((number, ok.old_id, ok.user));
        }
        let imported: Vec<_> = accepted.iter().map(|(n, _, u)| (*n, u.user.username.clone())).collect();
        let write = match on_refused {
            OnRefused::DryRun => false,
            OnRefused::ImportNothing => report.refused.is_empty(),
            OnRefused::ImportTheRest => true,
        };
        if accepted.is_empty() || !write {
            if on_refused == OnRefused::DryRun {
                // What a real run would import, without the ids it would make.
                report.imported = imported;
            }
            return Ok(report);
        }
        let new_ids: Vec<_> = accepted
            .iter()
            .filter_map(|(_, old, u)| old.clone().map(|o| (o, u.user.id)))
            .collect();
        match self
            .store
            .insert_users(accepted.into_iter().map(|(_, _, u)| u).collect())
            .await
        {
            Ok(()) => {}
            // Someone registered one of these names while the run was checking.
            Err(StoreError::Conflict) => return Err(AuthError::Taken),
            Err(e) => return Err(e.into()),
        }
        report.imported = imported;
        report.ids.extend(new_ids);
        report.committed = true;
        Ok(report)
    }
}
