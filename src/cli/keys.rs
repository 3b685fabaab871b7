//! `tokengate keys generate|rotate|revoke|list|reencrypt` against the configured database. Running
//! servers pick a rotation up within `KEY_RELOAD_SECS` seconds.

use super::KeysCommand;
use crate::auth::keys::{
    KEY_RELOAD_SECS, KeyAdminError, KeyStore, RotateMode, key_states, new_key, revoke_key, rotate_key, seal_at_rest,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::crypto::at_rest::Vault;
use crate::crypto::keys::hs256_kid;
use crate::crypto::keys::{SigningAlgorithm, read_secret_file};
use crate::domain::{Secret, UnixTime};
use crate::server::{OpenMode, StartError, hs256_secret_file, open_store, secret_path, signing_algorithm, vault};
use crate::store::Store;

fn fail(e: impl std::fmt::Display) -> StartError {
    StartError::Runtime(e.to_string())
}

/// Run one `keys` subcommand; the text to print on success.
pub async fn run(settings: &Settings, cmd: KeysCommand) -> Result<String, StartError> {
    let store = open_store(settings, OpenMode::MustExist).await?;
    let vault = vault(settings)?;
    let now = SystemClock.now();
    let alg = signing_algorithm(settings, store.as_ref()).await?;
    let keys = KeyStore {
        store: store.as_ref(),
        vault: &vault,
    };
    match cmd {
        KeysCommand::Reencrypt => reencrypt(settings, store.as_ref(), &vault, now).await,
        cmd if alg == SigningAlgorithm::Hs256 => hs256(settings, cmd, &vault),
        KeysCommand::Generate => {
            let stored = store.signing_keys().await.map_err(fail)?;
            if let Some(active) = stored.iter().find(|k| k.active) {
                return Err(fail(format!(
                    "an active key exists already ({} {}); use `tokengate keys rotate` for a new one",
                    active.kid, active.algorithm
                )));
            }
            let key = new_key(alg, now, now).map_err(fail)?;
            let (kid, algorithm) = (key.kid.clone(), key.algorithm.clone());
            store
                .add_active_key(keys.sealed(key).map_err(fail)?)
                .await
                .map_err(fail)?;
            Ok(format!("generated active {algorithm} key {kid}"))
        }
        KeysCommand::Rotate { now: compromised } => {
            let old = store.signing_keys().await.map_err(fail)?.into_iter().find(|k| k.active);
            let mode = if compromised {
                RotateMode::Revoke
            } else {
                RotateMode::Scheduled
            };
            let key = rotate_key(keys, alg, settings.tokens.access_ttl_secs, now, mode)
                .await
                .map_err(|e: KeyAdminError| fail(e))?;
            let retired = match (old, compromised) {
                (Some(k), false) => format!(
                    "; {} retired, verifying until {}",
                    k.kid,
                    key.signs_from.plus(settings.tokens.access_ttl_secs).to_rfc3339()
                ),
                (Some(k), true) => format!(
                    "; {} revoked: it left the JWKS and every token it signed is refused (within {KEY_RELOAD_SECS} s on running servers)",
                    k.kid
                ),
                (None, _) => String::new(),
            };
            Ok(format!(
                "new active key {} (published within {KEY_RELOAD_SECS} s, signing from {}){retired}",
                key.kid,
                key.signs_from.to_rfc3339()
            ))
        }
        KeysCommand::Revoke { kid } => {
            let replacement = revoke_key(keys, &kid, settings.tokens.access_ttl_secs, now)
                .await
                .map_err(fail)?;
            let then = match replacement {
                Some(k) => format!("; new active key {} signs from now", k.kid),
                None => String::new(),
            };
            Ok(format!(
                "key {kid} revoked: it left the JWKS and every token it signed is refused (within {KEY_RELOAD_SECS} s on running servers){then}"
            ))
        }
        KeysCommand::List => {
            let keys = store.signing_keys().await.map_err(fail)?;
            let states = key_states(&keys, settings.tokens.access_ttl_secs, now);
            Ok(table(keys.iter().zip(states).map(|(k, state)| Row {
                kid: k.kid.clone(),
                algorithm: k.algorithm.clone(),
                state: state.as_str().into(),
                created: k.created_at.to_rfc3339(),
                retires: k.retires_at.map(UnixTime::to_rfc3339).unwrap_or_else(|| "-".into()),
            })))
        }
    }
}

/// HS256 keys are the configured secrets: listed, never generated or rotated here.
fn hs256(settings: &Settings, cmd: KeysCommand, vault: &Vault) -> Result<String, StartError> {
    match cmd {
        KeysCommand::Generate | KeysCommand::Rotate { .. } | KeysCommand::Revoke { .. } | KeysCommand::Reencrypt => {
            Err(fail(
                "HS256 signs with TOKENGATE_SECRET_KEY: to rotate, set a new secret and move the old one into \
             TOKENGATE_PREVIOUS_SECRET_KEYS until its tokens expire (or choose TOKENGATE_ALGORITHM=EdDSA, ES256 or RS256)",
            ))
        }
        KeysCommand::List => {
            let current: Option<(Secret, &str)> = match (&settings.tokens.secret_key, &settings.store.database_url) {
                (Some(s), _) => Some((s.clone(), "TOKENGATE_SECRET_KEY")),
                (None, crate::store::DatabaseUrl::Sqlite { path }) => read_secret_file(&secret_path(path), vault)
                    .map_err(fail)?
                    .and_then(|t| crate::config::check_secret(&t).ok())
                    .map(|s| (s, "secret file")),
                (None, _) => None,
            };
            let mut rows = Vec::new();
            if let Some((s, source)) = current {
                rows.push(Row {
                    kid: hs256_kid(&s),
                    algorithm: "HS256".into(),
                    state: format!("signing ({source})"),
                    created: "-".into(),
                    retires: "-".into(),
                });
            }
            for s in &settings.tokens.previous_secret_keys {
                rows.push(Row {
                    kid: hs256_kid(s),
                    algorithm: "HS256".into(),
                    state: "verify only (TOKENGATE_PREVIOUS_SECRET_KEYS)".into(),
                    created: "-".into(),
                    retires: "when removed".into(),
                });
            }
            Ok(table(rows.into_iter()))
        }
    }
}

struct Row {
    kid: String,
    algorithm: String,
    state: String,
    created: String,
    retires: String,
}

fn table(rows: impl Iterator<Item = Row>) -> String {
    super::table::render(
        &["kid", "algorithm", "state", "created", "retires at"],
        &[24, 9, 22, 20],
        rows.map(|r| vec![r.kid, r.algorithm, r.state, r.created, r.retires]),
    )
}

/// `keys reencrypt`: every sealed value opened with the current or a previous key (or
/// read as stored when unencrypted) and stored again sealed with the current key. Each
/// value is replaced on its own, so an interrupted run is finished by running it again.
async fn reencrypt(settings: &Settings, store: &dyn Store, vault: &Vault, now: UnixTime) -> Result<String, StartError> {
    let Some(id) = vault.current_id().map(str::to_owned) else {
        return Err(StartError::Config(ConfigError::new(
            "TOKENGATE_ENCRYPTION_KEY",
            "must be set: the key to encrypt with (the keys values are sealed with now go in TOKENGATE_PREVIOUS_ENCRYPTION_KEYS)",
        )));
    };
    // What is not sealed yet is sealed too (a database from before the key was set).
    let sealing = crate::server::vault(settings)?.accepting_unsealed();
    let file = hs256_secret_file(settings).filter(|f| f.exists());
    let (key_count, secret_count, file_sealed) = seal_at_rest(store, &sealing, file.as_deref(), now)
        .await
        .map_err(fail)?;
    let file_note = match (&file, file_sealed) {
        (Some(f), true) => format!(", and the HS256 secret file {}", f.display()),
        _ => String::new(),
    };
    Ok(format!(
        "re-encrypted {key_count} signing keys and {secret_count} server secrets{file_note} with encryption key {id}; \
         restart every instance with TOKENGATE_ENCRYPTION_KEY set to it"
    ))
}
