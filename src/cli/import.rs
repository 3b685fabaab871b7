//! `tokengate user import`: read users from a JSON Lines or CSV file, or straight from
//! another app's SQLite or PostgreSQL table, into `SourceRow`s for `auth::import`.
//! Columns are matched by name (case-insensitively), as the FastAPI tutorials name
//! them; `--map column=field` reads another column as one of our fields.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::{Map, Value};
use sqlx::Connection as _;

use crate::auth::import::{RowNumber, SourceRow, SourceUser};
use crate::config::DatabaseUrl;
use crate::domain::UnixTime;
use crate::server::absolute;

/// Our fields a source column can be read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The old app's id of the row (for `--id-map`).
    Id,
    Username,
    Email,
    HashedPassword,
    IsActive,
    /// Whether the old app had proven the address (false when no column says so).
    EmailVerified,
    /// The opposite of `is_active`, as the FastAPI docs' tutorial names it.
    Disabled,
    Role,
    Roles,
    CreatedAt,
}

impl Field {
    const ALL: [(&'static str, Field); 10] = [
        ("id", Field::Id),
        ("username", Field::Username),
        ("email", Field::Email),
        ("hashed_password", Field::HashedPassword),
        ("is_active", Field::IsActive),
        ("email_verified", Field::EmailVerified),
        ("disabled", Field::Disabled),
        ("role", Field::Role),
        ("roles", Field::Roles),
        ("created_at", Field::CreatedAt),
    ];

    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, f)| *f == self).map_or("?", |(n, _)| n)
    }
}

/// Which source column is read as which field: the fields' own names, plus `--map`.
#[derive(Clone, Debug)]
pub struct ColumnMap(HashMap<String, Field>);

impl ColumnMap {
    /// From `--map column=field` arguments; the reason if one is malformed.
    pub fn parse(maps: &[String]) -> Result<Self, String> {
        let mut map: HashMap<String, Field> = Field::ALL.iter().map(|(n, f)| ((*n).to_owned(), *f)).collect();
        for m in maps {
            let (column, field) = m
                .split_once('=')
                .ok_or_else(|| format!("--map {m:?}: expected COLUMN=FIELD"))?;
            let field = Field::named(field.trim()).ok_or_else(|| {
                let names: Vec<_> = Field::ALL.iter().map(|(n, _)| *n).collect();
                format!("--map {m:?}: {field:?} is not one of {}", names.join(", "))
            })?;
            let column = column.trim().to_lowercase();
            if column.is_empty() {
                return Err(format!("--map {m:?}: the column name is empty"));
            }
            // The mapped column replaces the field's default one.
            map.retain(|_, f| *f != field);
            map.insert(column, field);
        }
        Ok(Self(map))
    }

    fn field_of(&self, column: &str) -> Option<Field> {
        self.0.get(&column.to_lowercase()).copied()
    }
}

/// For a field the rows lack, the unread columns that look like it (`password_hash` for
/// `hashed_password`), as `--map` arguments to try.
pub fn map_hints(missing: &[&str], unread: &BTreeSet<String>) -> Vec<String> {
    let looks_like = |field: &str, column: &str| {
        let c = column.to_lowercase();
        match field {
            "hashed_password" => c.contains("hash") || c.contains("pass") || c.contains("pwd"),
            "email" => c.contains("mail"),
            "username" => c.contains("user") || c.contains("login") || c == "name" || c.contains("handle"),
            _ => false,
        }
    };
    missing
        .iter()
        .flat_map(|field| {
            unread
                .iter()
                .filter(move |c| looks_like(field, c))
                .map(move |c| format!("--map {c}={field}"))
        })
        .collect()
}

/// Rows read from a source, and its columns that no field reads.
#[derive(Debug)]
pub struct SourceRows {
    pub rows: Vec<SourceRow>,
    pub unread_columns: BTreeSet<String>,
}

/// Rows of a JSON Lines file (one object per line) or a CSV file (header row first),
/// told apart by the extension, else by the first character.
pub fn read_file(path: &Path, columns: &ColumnMap) -> Result<SourceRows, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
    let is_csv = match ext.as_str() {
        "csv" => true,
        "jsonl" | "ndjson" | "json" => false,
        _ => !text.trim_start().starts_with('{'),
    };
    let objects = if is_csv {
        csv_objects(&text, columns)?
    } else {
        json_lines(&text)
    };
    Ok(to_rows(objects, columns))
}

/// Rows of `table` in a SQLite (`sqlite://PATH`) or PostgreSQL (`postgres://...`)
/// database, read-only, each row as a JSON object the database itself builds.
pub async fn read_database(url: &str, table: &str, columns: &ColumnMap) -> Result<SourceRows, String> {
    let table = quoted_table(table)?;
    let source = DatabaseUrl::parse(url).map_err(|m| format!("--from-db: {m}"))?;
    let described = source.describe();
    let texts: Vec<String> = if let DatabaseUrl::Sqlite { path } = &source {
        if !path.exists() {
            return Err(format!("--from-db: no database file at {}", absolute(path).display()));
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| format!("--from-db: cannot open {described}: {e}"))?;
        // SQLite has no row-to-JSON of its own: name the columns.
        let names: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{}')", table.sqlite_name))
                .fetch_all(&mut conn)
                .await
                .map_err(|e| format!("--from-db ({described}): {e}"))?;
        if names.is_empty() {
            return Err(format!("--from-db: no table {:?} in {described}", table.sqlite_name));
        }
        let pairs: Vec<String> = names
            .iter()
            .map(|n| format!("'{}', \"{}\"", n.replace('\'', "''"), n.replace('"', "\"\"")))
            .collect();
        let sql = format!(
            "SELECT json_object({}) FROM {} ORDER BY rowid",
            pairs.join(", "),
            table.quoted
        );
        sqlx::query_scalar(&sql)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("--from-db ({described}): {e}"))?
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| format!("--from-db: cannot connect to {described}: {e}"))?;
        let sql = format!(
            "SELECT row_to_json(t)::text FROM (SELECT * FROM {} ORDER BY 1) t",
            table.quoted
        );
        sqlx::query_scalar(&sql)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("--from-db ({described}): {e}"))?
    };
    let objects = texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let object = serde_json::from_str::<Map<String, Value>>(&t).map_err(|e| e.to_string());
            (RowNumber::Row(i + 1), object)
        })
        .collect();
    Ok(to_rows(objects, columns))
}

/// A table name, checked and quoted: `users` or `schema.users`.
struct QuotedTable {
    quoted: String,
    sqlite_name: String,
}

fn quoted_table(table: &str) -> Result<QuotedTable, String> {
    let parts: Vec<&str> = table.split('.').collect();
    let plain = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    if parts.len() > 2 || !parts.iter().all(plain) {
        return Err(format!("--table {table:?}: expected a name like users or schema.users"));
    }
    Ok(QuotedTable {
        quoted: parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join("."),
        sqlite_name: (*parts.last().unwrap_or(&table)).to_owned(),
    })
}

type Objects = Vec<(RowNumber, Result<Map<String, Value>, String>)>;

fn json_lines(text: &str) -> Objects {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let object = match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(o)) => Ok(o),
                Ok(_) => Err("not a JSON object".to_owned()),
                Err(e) => Err(format!("not JSON: {e}")),
            };
            (RowNumber::Line(i + 1), object)
        })
        .collect()
}

fn csv_objects(text: &str, columns: &ColumnMap) -> Result<Objects, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("CSV header row: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if headers.iter().all(|h| columns.field_of(h).is_none()) {
        return Err("CSV: the first row must name the columns (username, email, hashed_password, ...)".into());
    }
    let mut objects = Vec::new();
    for record in reader.records() {
        let (line, object) = match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line() as usize);
                let object = if r.len() != headers.len() {
                    Err(format!("{} values for {} columns", r.len(), headers.len()))
                } else {
                    Ok(headers
                        .iter()
                        .zip(r.iter())
                        .map(|(h, v)| {
                            let value = if v.is_empty() {
                                Value::Null
                            } else {
                                Value::String(v.to_owned())
                            };
                            (h.clone(), value)
                        })
                        .collect())
                };
                (line, object)
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                (line, Err(format!("not CSV: {e}")))
            }
        };
        objects.push((RowNumber::Line(line), object));
    }
    Ok(objects)
}

fn to_rows(objects: Objects, columns: &ColumnMap) -> SourceRows {
    let mut unread_columns = BTreeSet::new();
    let rows = objects
        .into_iter()
        .map(|(number, object)| {
            let mut notes = Vec::new();
            let user = object.and_then(|o| {
                for key in o.keys() {
                    if columns.field_of(key).is_none() {
                        unread_columns.insert(key.clone());
                    }
                }
                source_user(o, columns, &mut notes)
            });
            SourceRow { number, user, notes }
        })
        .collect();
    SourceRows { rows, unread_columns }
}

/// The fields of one row; the reason if a value is not of its field's kind.
fn source_user(object: Map<String, Value>, columns: &ColumnMap, notes: &mut Vec<String>) -> Result<SourceUser, String> {
    let mut user = SourceUser {
        is_active: true,
        ..SourceUser::default()
    };
    let (mut is_active, mut disabled) = (None, None);
    for (column, value) in object {
        let Some(field) = columns.field_of(&column) else {
            continue;
        };
        let bad = |what: &str| format!("{} ({column}): {what}", field.name());
        match field {
            Field::Id => user.old_id = id_text(&value).map_err(&bad)?,
            Field::Username => user.username = text(&value).map_err(&bad)?,
            Field::Email => user.email = text(&value).map_err(&bad)?,
            Field::HashedPassword => user.hashed_password = text(&value).map_err(&bad)?,
            Field::IsActive => is_active = boolean(&value).map_err(&bad)?,
            Field::EmailVerified => user.email_verified = boolean(&value).map_err(&bad)?.unwrap_or(false),
            Field::Disabled => disabled = boolean(&value).map_err(&bad)?,
            Field::Role => user.roles.extend(text(&value).map_err(&bad)?),
            Field::Roles => user.roles.extend(role_list(&value).map_err(&bad)?),
            Field::CreatedAt => match time_of(&value) {
                Ok(t) => user.created_at = t,
                Err(w) => notes.push(format!("{}; imported as created now", bad(w))),
            },
        }
    }
    user.is_active = match (is_active, disabled) {
        (Some(a), Some(d)) if a == d => return Err("is_active and disabled disagree".into()),
        (Some(a), _) => a,
        (None, Some(d)) => !d,
        (None, None) => true,
    };
    Ok(user)
}

fn text(v: &Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err("not text"),
    }
}

/// An id as databases write them: a number, a UUID or any other text.
fn id_text(v: &Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Number(n) => Ok(Some(n.to_string())),
        other => text(other),
    }
}

/// A boolean as databases and CSV files write them: true/false, 1/0, t/f, yes/no.
fn boolean(v: &Value) -> Result<Option<bool>, &'static str> {
    const NOT: &str = "not a boolean (true/false, 1/0)";
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(NOT),
        },
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "" => Ok(None),
            "true" | "t" | "1" | "yes" | "y" => Ok(Some(true)),
            "false" | "f" | "0" | "no" | "n" => Ok(Some(false)),
            _ => Err(NOT),
        },
        _ => Err(NOT),
    }
}

/// Roles as a JSON array (a PostgreSQL array, a JSON column) or a string holding one,
/// or a comma-separated string.
fn role_list(v: &Value) -> Result<Vec<String>, &'static str> {
    const NOT: &str = "not a list of role names";
    let from_array = |items: &Vec<Value>| {
        items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(NOT))
            .collect::<Result<Vec<_>, _>>()
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => from_array(items),
        Value::String(s) if s.trim_start().starts_with('[') => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => from_array(&items),
            _ => Err(NOT),
        },
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()),
        _ => Err(NOT),
    }
}

/// A creation time: Unix seconds, RFC 3339, or SQL's `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// (SQLAlchemy's SQLite format; without a zone, UTC).
fn time_of(v: &Value) -> Result<Option<UnixTime>, &'static str> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    const NOT: &str = "not a time (Unix seconds, RFC 3339 or YYYY-MM-DD HH:MM:SS)";
    let s = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => return n.as_f64().map(|f| Some(UnixTime(f as i64))).ok_or(NOT),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim(),
        _ => return Err(NOT),
    };
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(Some(UnixTime(t.unix_timestamp())));
    }
    let naive = format_description!(
        version = 2,
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = time::PrimitiveDateTime::parse(s, naive) {
        return Ok(Some(UnixTime(t.assume_utc().unix_timestamp())));
    }
    let zoned = format_description!(
        version = 2,
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:[offset_minute]]]"
    );
    time::OffsetDateTime::parse(s, zoned)
        .map(|t| Some(UnixTime(t.unix_timestamp())))
        .map_err(|_| NOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> ColumnMap {
        ColumnMap::parse(&[]).unwrap()
    }

    #[test]
    fn json_lines_and_csv_read_the_tutorial_columns() {
        let jsonl = concat!(
            r#"{"id": 1, "username": "alice", "email": "a@example.com", "hashed_password": "$2b$12$x", "is_active": true, "email_verified": true, "roles": ["admin"]}"#,
            "\n\n",
            r#"{"username": "bob", "email": "b@example.com", "hashed_password": "h", "disabled": 1, "role": "user"}"#,
            "\n[1, 2]\n{not json\n",
        );
        let read = to_rows(json_lines(jsonl), &columns());
        assert!(read.unread_columns.is_empty(), "{:?}", read.unread_columns);
        assert_eq!(read.rows[0].user.as_ref().unwrap().old_id.as_deref(), Some("1"));
        let numbers: Vec<_> = read.rows.iter().map(|r| r.number).collect();
        assert_eq!(
            numbers,
            [
                RowNumber::Line(1),
                RowNumber::Line(3),
                RowNumber::Line(4),
                RowNumber::Line(5)
            ]
        );
        let alice = read.rows[0].user.as_ref().unwrap();
        assert_eq!(alice.username.as_deref(), Some("alice"));
        assert!(alice.is_active);
        assert!(alice.email_verified);
        assert_eq!(alice.roles, ["admin"]);
        let bob = read.rows[1].user.as_ref().unwrap();
        assert!(!bob.is_active);
        assert!(!bob.email_verified, "no column: not verified");
        assert_eq!(bob.roles, ["user"]);
        assert_eq!(read.rows[2].user.as_ref().unwrap_err(), "not a JSON object");
        assert!(read.rows[3].user.as_ref().unwrap_err().starts_with("not JSON"));

        let csv = "username,email,hashed_password,is_active,roles,created_at\n\
                   carol,c@example.com,h,0,\"[\"\"admin\"\", \"\"ops\"\"]\",2024-01-02 03:04:05.123456\n\
                   dave,d@example.com,h,t,\"a, b\",yesterday\n\
                   erin,e@example.com\n";
        let read = to_rows(csv_objects(csv, &columns()).unwrap(), &columns());
        assert!(
            csv_objects("alice,a@example.com,h\n", &columns()).is_err(),
            "no header row"
        );
        let carol = read.rows[0].user.as_ref().unwrap();
        assert_eq!(read.rows[0].number, RowNumber::Line(2));
        assert!(!carol.is_active);
        assert_eq!(carol.roles, ["admin", "ops"]);
        assert_eq!(carol.created_at, Some(UnixTime(1_704_164_645)));
        let dave = read.rows[1].user.as_ref().unwrap();
        assert_eq!(dave.roles, ["a", "b"]);
        assert_eq!(dave.created_at, None);
        assert!(read.rows[1].notes[0].contains("created_at"), "{:?}", read.rows[1].notes);
        assert_eq!(read.rows[2].user.as_ref().unwrap_err(), "2 values for 6 columns");
    }

    #[test]
    fn values_of_the_wrong_kind_are_refused_with_the_column() {
        let read = to_rows(
            json_lines(
                r#"{"username": 7}
{"username": "x", "is_active": "maybe"}
{"username": "x", "is_active": true, "disabled": true}"#,
            ),
            &columns(),
        );
        assert_eq!(read.rows[0].user.as_ref().unwrap_err(), "username (username): not text");
        assert!(
            read.rows[1]
                .user
                .as_ref()
                .unwrap_err()
                .starts_with("is_active (is_active): not a boolean")
        );
        assert_eq!(
            read.rows[2].user.as_ref().unwrap_err(),
            "is_active and disabled disagree"
        );
    }

    #[test]
    fn map_reads_another_column_as_a_field() {
        let map = ColumnMap::parse(&["Password_Hash=hashed_password".into(), "login=username".into()]).unwrap();
        let read = to_rows(
            json_lines(r#"{"login": "zed", "username": "ignored", "password_hash": "h"}"#),
            &map,
        );
        let zed = read.rows[0].user.as_ref().unwrap();
        assert_eq!(zed.username.as_deref(), Some("zed"));
        assert_eq!(zed.hashed_password.as_deref(), Some("h"));
        assert_eq!(read.unread_columns.iter().collect::<Vec<_>>(), ["username"]);
        assert!(ColumnMap::parse(&["a=nonsense".into()]).is_err());
        assert!(ColumnMap::parse(&["no-equals".into()]).is_err());
    }

    #[test]
    fn times_in_the_formats_databases_write() {
        let t = |s: &str| time_of(&Value::String(s.into()));
        let want = Ok(Some(UnixTime(1_704_164_645)));
        assert_eq!(t("2024-01-02T03:04:05Z"), want);
        assert_eq!(t("2024-01-02T03:04:05.5+00:00"), want);
        assert_eq!(t("2024-01-02 03:04:05"), want);
        assert_eq!(t("2024-01-02 05:04:05+02"), want);
        assert_eq!(time_of(&serde_json::json!(1_704_164_645)), want);
        assert!(t("02/01/2024").is_err());
    }

    #[test]
    fn table_names_are_checked_and_quoted() {
        assert_eq!(quoted_table("users").unwrap().quoted, "\"users\"");
        assert_eq!(quoted_table("app.users").unwrap().quoted, "\"app\".\"users\"");
        for bad in ["", "users; drop table x", "a.b.c", "1users", "us\"ers"] {
            assert!(quoted_table(bad).is_err(), "{bad:?}");
        }
    }
}
