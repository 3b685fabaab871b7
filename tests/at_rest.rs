//! Secrets at rest, with the real binary: with `TOKENGATE_ENCRYPTION_KEY` no private key,
//! server secret or HS256 secret is readable in the files; the wrong key or none is
//! refused at start; `keys reencrypt` moves everything to a new key.

#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::{Child, Command};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use process::{start_server_with, terminate, tokengate};
use serde_json::{Value, json};
use tokengate::auth::keys::KeyService;
use tokengate::config::Settings;
use tokengate::crypto::at_rest::{EncryptionKey, Vault, sealed_with};
use tokengate::server::{OpenMode, open_store};
use tokengate::store::DatabaseUrl;

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];
const PASSWORD: &str = "at-rest-password";

fn b64(k: [u8; 32]) -> String {
    B64.encode(k)
}

fn with_key(dir: &Path, key: Option<[u8; 32]>, alg: &str) -> Command {
    let mut c = tokengate(dir);
    c.env("TOKENGATE_ALGORITHM", alg);
    if let Some(k) = key {
        c.env("TOKENGATE_ENCRYPTION_KEY", b64(k));
    }
    c
}

fn stop(mut child: Child) {
    terminate(&mut child);
}

/// Register and log in; the access token.
async fn sign_in(base: &str, user: &str) -> String {
    let http = reqwest::Client::new();
    let _ = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"username": user, "email": format!("{user}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let v: Value = http
        .post(format!("{base}/auth/login"))
        .form(&[("username", user), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().expect("logged in").to_owned()
}

async fn me_status(base: &str, access: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every byte of the database's files (the WAL too).
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().contains("tokengate.db") {
            all.extend(std::fs::read(p).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn vault_of(key: [u8; 32]) -> Vault {
    Vault::new(Some(EncryptionKey::from_base64(&b64(key)).unwrap()), Vec::new())
}

fn settings_for(dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.store.database_url = DatabaseUrl::Sqlite {
        path: dir.join("tokengate.db"),
    };
    s
}

/// Start `cmd serve` expecting a refusal within 20 s (a server that does start is
/// stopped, and the test fails); the last line of its error output.
fn start_refused(mut cmd: Command) -> String {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("started although it should have refused");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success(), "exited 0 although it should have refused");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let last = err
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned();
    assert!(last.contains("encrypt"), "{err}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_the_database_holds_no_private_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let (child, log, base) = start_server_with(with_key(dir.path(), Some(KEY_A), "ES256"));
    assert!(log.contains("stored encrypted"), "{log}");
    let access = sign_in(&base, "alzy").await;
    assert_eq!(me_status(&base, &access).await, 200);
    stop(child);

    let store = open_store(&settings_for(dir.path()), OpenMode::MustExist)
        .await
        .unwrap();
    let raw = store.signing_keys().await.unwrap();
    assert!(!raw.is_empty());
    let vault = vault_of(KEY_A);
    let opened = KeyService::new(store.clone(), std::sync::Arc::new(vault), 900)
        .opened()
        .await
        .unwrap();
    let files = database_bytes(dir.path());
    for (stored, key) in raw.iter().zip(&opened) {
        assert!(sealed_with(&stored.private_der).is_some(), "{} stored sealed", key.kid);
        assert!(
            !contains(&files, &key.private_der),
            "a private key in the database file"
        );
        assert!(
            !contains(&files, B64.encode(&key.private_der).as_bytes()),
            "a private key (base64) in the database file"
        );
    }
    for name in tokengate::server::SERVER_SECRETS {
        let stored = store
            .server_secret(name, b"unused".to_vec(), tokengate::domain::UnixTime(0))
            .await
            .unwrap();
        assert!(sealed_with(&stored).is_some(), "server secret {name} stored sealed");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_or_with_another_the_server_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _, _) = start_server_with(with_key(dir.path(), Some(KEY_A), "ES256"));
    stop(child);
    let none = start_refused(with_key(dir.path(), None, "ES256"));
    assert!(none.contains("no TOKENGATE_ENCRYPTION_KEY"), "{none}");
    let wrong = start_refused(with_key(dir.path(), Some(KEY_B), "ES256"));
    let (a, b) = (
        EncryptionKey::from_base64(&b64(KEY_A)).unwrap().id().to_owned(),
        EncryptionKey::from_base64(&b64(KEY_B)).unwrap().id().to_owned(),
    );
    assert!(wrong.contains(&a) && wrong.contains(&b), "both key ids named: {wrong}");
    // HS256 (the secret file and the server secrets) the same.
    let dir = tempfile::tempdir().unwrap();
    let (child, _, _) = start_server_with(with_key(dir.path(), Some(KEY_A), "HS256"));
    stop(child);
    let file = std::fs::read(dir.path().join("tokengate.secret")).unwrap();
    assert!(
        sealed_with(file.trim_ascii()).is_some(),
        "the HS256 secret file is sealed"
    );
    start_refused(with_key(dir.path(), None, "HS256"));
    start_refused(with_key(dir.path(), Some(KEY_B), "HS256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencrypt_moves_everything_to_a_new_key_and_tokens_stay_valid() {
    for alg in ["ES256", "HS256"] {
        let dir = tempfile::tempdir().unwrap();
        // Unencrypted first, as every database before this feature.
        let (child, _, base) = start_server_with(with_key(dir.path(), None, alg));
        let access = sign_in(&base, "alzy").await;
        stop(child);
        // Encrypt what is stored with A.
        let out = with_key(dir.path(), Some(KEY_A), alg)
            .args(["keys", "reencrypt"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Then move from A to B.
        let out = with_key(dir.path(), Some(KEY_B), alg)
            .env("TOKENGATE_PREVIOUS_ENCRYPTION_KEYS", b64(KEY_A))
            .args(["keys", "reencrypt"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted"));
        // B opens everything; the token signed before is still good (same keys).
        let (child, _, base) = start_server_with(with_key(dir.path(), Some(KEY_B), alg));
        assert_eq!(me_status(&base, &access).await, 200, "{alg}");
        stop(child);
        // A alone no longer does.
        start_refused(with_key(dir.path(), Some(KEY_A), alg));
        // Re-running is harmless.
        let out = with_key(dir.path(), Some(KEY_B), alg)
            .args(["keys", "reencrypt"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Every raw secret at rest in `dir`'s database (and its HS256 file, if any) is sealed.
async fn all_sealed(dir: &Path) -> bool {
    let store = open_store(&settings_for(dir), OpenMode::MustExist).await.unwrap();
    let mut raw: Vec<Vec<u8>> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.private_der)
        .collect();
    for name in tokengate::server::SERVER_SECRETS {
        raw.push(
            store
                .server_secret(name, b"unused".to_vec(), tokengate::domain::UnixTime(0))
                .await
                .unwrap(),
        );
    }
    store.close().await;
    if let Ok(file) = std::fs::read(dir.join("tokengate.secret")) {
        raw.push(file.trim_ascii().to_vec());
    }
    raw.iter().all(|v| sealed_with(v).is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_on_an_unencrypted_database_is_refused_until_keys_reencrypt() {
    for alg in ["ES256", "HS256"] {
        let dir = tempfile::tempdir().unwrap();
        let (child, _, base) = start_server_with(with_key(dir.path(), None, alg));
        let access = sign_in(&base, "alzy").await;
        stop(child);
        assert!(!all_sealed(dir.path()).await);
        // A key with values in the clear: refused (they could be anyone's), naming the
        // command that seals them; nothing is sealed behind the operator's back.
        let refused = start_refused(with_key(dir.path(), Some(KEY_A), alg));
        assert!(refused.contains("keys reencrypt"), "{alg}: {refused}");
        assert!(!all_sealed(dir.path()).await, "{alg}");
        let out = with_key(dir.path(), Some(KEY_A), alg)
            .args(["keys", "reencrypt"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(all_sealed(dir.path()).await, "{alg}: everything sealed");
        let (child, log, base) = start_server_with(with_key(dir.path(), Some(KEY_A), alg));
        assert!(log.contains("stored encrypted"), "{alg}: {log}");
        assert_eq!(me_status(&base, &access).await, 200, "{alg}");
        stop(child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_secret_planted_in_a_sealed_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _, _) = start_server_with(with_key(dir.path(), Some(KEY_A), "ES256"));
    stop(child);
    // Someone with write access to the database picks the CSRF key, in the clear (or
    // every key: the next test's case).
    let store = open_store(&settings_for(dir.path()), OpenMode::MustExist)
        .await
        .unwrap();
    assert!(
        store
            .replace_server_secret("csrf", b"attacker-chosen-csrf-key-0123456789".to_vec())
            .await
            .unwrap()
    );
    store.close().await;
    let refused = start_refused(with_key(dir.path(), Some(KEY_A), "ES256"));
    assert!(refused.contains("keys reencrypt"), "{refused}");
    assert!(refused.contains("TOKENGATE_ENCRYPTION_KEY"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_replaced_in_the_clear_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _, _) = start_server_with(with_key(dir.path(), Some(KEY_A), "EdDSA"));
    stop(child);
    // A second, unencrypted database of the attacker's: its keys replace every value.
    let theirs = tempfile::tempdir().unwrap();
    let (child, _, _) = start_server_with(with_key(theirs.path(), None, "EdDSA"));
    stop(child);
    let mine = open_store(&settings_for(dir.path()), OpenMode::MustExist)
        .await
        .unwrap();
    let planted = open_store(&settings_for(theirs.path()), OpenMode::MustExist)
        .await
        .unwrap();
    let victim_kid = mine.signing_keys().await.unwrap()[0].kid.clone();
    let attacker_key = planted.signing_keys().await.unwrap().remove(0);
    assert!(
        mine.replace_key_material(&victim_kid, attacker_key.private_der)
            .await
            .unwrap()
    );
    for name in tokengate::server::SERVER_SECRETS {
        let plain = planted
            .server_secret(name, b"unused".to_vec(), tokengate::domain::UnixTime(0))
            .await
            .unwrap();
        assert!(mine.replace_server_secret(name, plain).await.unwrap());
    }
    mine.close().await;
    planted.close().await;
    let refused = start_refused(with_key(dir.path(), Some(KEY_A), "EdDSA"));
    assert!(refused.contains("keys reencrypt"), "{refused}");
}
