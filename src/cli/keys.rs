//! `tokengate keys generate|rotate|revoke|list|reencrypt` against the configured database. Running
//! servers pick a rotation up within `KEY_RELOAD_SECS` seconds.

use std::sync::Arc;

use super::KeysCommand;
use crate::auth::keys::{Hs256Source, KEY_RELOAD_SECS, KeyError, KeyService, KeyState, RotateMode};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::crypto::keys::SigningAlgorithm;
use crate::domain::{KeyPurpose, UnixTime};
use crate::server::{
    OpenMode, StartError, hs256_secret_file, key_config, open_store, signing_algorithm, start_error, vault,
};
use crate::store::StoredKey;

/// Run one `keys` subcommand; the text to print on success.
pub async fn run(settings: &Settings, cmd: KeysCommand) -> Result<String, StartError> {
    let store = open_store(settings, OpenMode::MustExist).await?;
    let ttl = settings.tokens.access_ttl_secs;
    // Reencryption opens what is sealed with a previous key or not at all.
    let vault = match cmd {
        KeysCommand::Reencrypt => vault(settings)?.accepting_unsealed(),
        _ => vault(settings)?,
    };
    let keys = KeyService::new(store, Arc::new(vault), ttl);
    let now = SystemClock.now();
    let alg = signing_algorithm(settings, &keys).await?;
    match cmd {
        KeysCommand::Reencrypt => reencrypt(settings, &keys, now).await,
        KeysCommand::List => {
            let mut rows: Vec<Row> = Vec::new();
            if alg == SigningAlgorithm::Hs256 {
                let hs256 = keys.hs256_keys(&key_config(settings)).map_err(start_error)?;
                rows.extend(hs256.into_iter().map(|k| {
                    let (state, retires) = match k.source {
                        Hs256Source::Configured => ("signing (TOKENGATE_SECRET_KEY)", "-"),
                        Hs256Source::File => ("signing (secret file)", "-"),
                        Hs256Source::Previous => ("verify only (TOKENGATE_PREVIOUS_SECRET_KEYS)", "when removed"),
                    };
                    Row {
                        kid: k.kid,
                        purpose: KeyPurpose::Access.as_str().into(),
                        algorithm: "HS256".into(),
                        state: state.into(),
                        created: "-".into(),
                        retires: retires.into(),
                    }
                }));
            }
            let listed = keys.list(now).await.map_err(start_error)?;
            rows.extend(listed.into_iter().map(|(k, state)| Row {
                kid: k.kid,
                purpose: k.purpose.as_str().into(),
                algorithm: k.algorithm.jose_name().into(),
                state: state.as_str().into(),
                created: k.created_at.to_rfc3339(),
                retires: k.retires_at.map(UnixTime::to_rfc3339).unwrap_or_else(|| "-".into()),
            }));
            Ok(table(rows.into_iter()))
        }
        KeysCommand::Generate if alg == SigningAlgorithm::Hs256 => Err(start_error(KeyError::Hs256HasNoStoredKeys)),
        KeysCommand::Generate => {
            let key = keys.generate(alg, now).await.map_err(start_error)?;
            Ok(format!(
                "generated active {} key {}",
                key.algorithm.jose_name(),
                key.kid
            ))
        }
        KeysCommand::Rotate { now: compromised } => {
            let mode = if compromised {
                RotateMode::Revoke
            } else {
                RotateMode::Scheduled
            };
            // Every stored key kind rotates together: the access tokens' (asymmetric
            // algorithms) and the provider's id_token key (once it exists).
            let listed = keys.list(now).await.map_err(start_error)?;
            let active = |purpose: KeyPurpose| listed.iter().find(|(k, _)| k.active && k.purpose == purpose);
            // What verifies now, per purpose: what `--now` cuts off.
            let trusted = |purpose: KeyPurpose| -> Vec<String> {
                listed
                    .iter()
                    .filter(|(k, s)| {
                        k.purpose == purpose && matches!(s, KeyState::Signing | KeyState::Next | KeyState::Verifying)
                    })
                    .map(|(k, _)| k.kid.clone())
                    .collect()
            };
            let before = |purpose: KeyPurpose| {
                if compromised {
                    trusted(purpose)
                } else {
                    active(purpose).map(|(k, _)| k.kid.clone()).into_iter().collect()
                }
            };
            let mut lines = Vec::new();
            if alg != SigningAlgorithm::Hs256 {
                let old = before(KeyPurpose::Access);
                let key = keys
                    .rotate(KeyPurpose::Access, alg, now, mode)
                    .await
                    .map_err(start_error)?;
                lines.push(rotated("", &key, &old, compromised, ttl));
            }
            if let Some((id_key, _)) = active(KeyPurpose::IdToken) {
                let old = before(KeyPurpose::IdToken);
                let key = keys
                    .rotate(KeyPurpose::IdToken, id_key.algorithm, now, mode)
                    .await
                    .map_err(start_error)?;
                lines.push(rotated("id_token ", &key, &old, compromised, ttl));
            }
            if lines.is_empty() {
                return Err(start_error(KeyError::Hs256HasNoStoredKeys));
            }
            Ok(lines.join("\n"))
        }
        KeysCommand::Revoke { kid } => {
            let replacement = keys.revoke(&kid, now).await.map_err(start_error)?;
            let then = match replacement {
                Some(k) => format!("; new active key {} signs from now", k.kid),
                None => String::new(),
            };
            Ok(format!(
                "key {kid} revoked: it left the JWKS and every token it signed is refused (within {KEY_RELOAD_SECS} s on running servers){then}"
            ))
        }
    }
}

/// What a rotation of one kind of key did, in a line (`what`: "" for the access-token
/// key, "id_token " for the provider's); `old`: the key it retires, or with `--now`
/// every key it cut off.
fn rotated(what: &str, key: &StoredKey, old: &[String], compromised: bool, ttl: u64) -> String {
    let retired = match (old, compromised) {
        ([], _) => String::new(),
        (kids, false) => format!(
            "; {} retired, verifying until {}",
            kids.join(", "),
            key.signs_from.plus(ttl).to_rfc3339()
        ),
        (kids, true) => format!(
            "; {} revoked: out of the JWKS, and every token signed with them is refused (within {KEY_RELOAD_SECS} s on running servers)",
            kids.join(", ")
        ),
    };
    format!(
        "new active {what}key {} (published within {KEY_RELOAD_SECS} s, signing from {}){retired}",
        key.kid,
        key.signs_from.to_rfc3339()
    )
}

struct Row {
    kid: String,
    purpose: String,
    algorithm: String,
    state: String,
    created: String,
    retires: String,
}

fn table(rows: impl Iterator<Item = Row>) -> String {
    super::table::render(
        &["kid", "signs", "algorithm", "state", "created", "retires at"],
        &[24, 8, 9, 22, 20],
        rows.map(|r| vec![r.kid, r.purpose, r.algorithm, r.state, r.created, r.retires]),
    )
}

/// `keys reencrypt`: every sealed value opened with the current or a previous key (or
/// read as stored when unencrypted) and stored again sealed with the current key.
async fn reencrypt(settings: &Settings, keys: &KeyService, now: UnixTime) -> Result<String, StartError> {
    let Some(id) = keys.vault().current_id().map(str::to_owned) else {
        return Err(StartError::Config(ConfigError::new(
            "TOKENGATE_ENCRYPTION_KEY",
            "must be set: the key to encrypt with (the keys values are sealed with now go in TOKENGATE_PREVIOUS_ENCRYPTION_KEYS)",
        )));
    };
    // What is not sealed yet is sealed too (a database from before the key was set).
    let file = hs256_secret_file(settings).filter(|f| f.exists());
    let done = keys.reencrypt(file.as_deref(), now).await.map_err(start_error)?;
    let (key_count, secret_count, totp_count) = (done.signing_keys, done.server_secrets, done.totp_secrets);
    let file_note = match (&file, done.secret_file) {
        (Some(f), true) => format!(", and the HS256 secret file {}", f.display()),
        _ => String::new(),
    };
    Ok(format!(
        "re-encrypted {key_count} signing keys, {secret_count} server secrets and {totp_count} TOTP secrets{file_note} \
         with encryption key {id}; \
         restart every instance with TOKENGATE_ENCRYPTION_KEY set to it"
    ))
}
