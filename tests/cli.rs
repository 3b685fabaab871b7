//! The real binary, as a user runs it: zero-config start, bad configuration, the
//! operator's `user` and `migrate` commands.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/process.rs"]
mod process;
use process::{run, start_server_with, terminate, tokengate};

#[test]
fn bad_configuration_is_one_line_naming_the_variable_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("TOKENGATE_ACCESS_TTL", "soon"),
        // A bare number could be seconds or minutes: refused, not guessed.
        ("TOKENGATE_ACCESS_TTL", "15"),
        ("TOKENGATE_SECRET_KEY", "changeme"),
        ("TOKENGATE_SECRET_KEY", "password1234password1234password"),
        // The second review's: a phrase, a keyboard walk, a pangram.
        ("TOKENGATE_SECRET_KEY", "correcthorsebatterystaple12345678"),
        ("TOKENGATE_SECRET_KEY", "qwertyuiopasdfghjklzxcvbnm123456"),
        ("TOKENGATE_SECRET_KEY", "TheQuickBrownFoxJumpsOverTheLazyDog"),
        ("TOKENGATE_PUBLIC_URL", "auth.example.com"),
        (
            "TOKENGATE_SECRET_KEY",
            "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        ),
        ("TOKENGATE_SECRET_KEY", "too-short"),
        ("TOKENGATE_BIND", "localhost"),
        ("TOKENGATE_DATABASE_URL", "mysql://root@localhost/db"),
        ("TOKENGATE_ALGORITHM", "HS512"),
        ("TOKENGATE_LOGIN_RATE", "ten per minute"),
        ("TOKENGATE_TRUSTED_PROXIES", "not-a-cidr"),
        ("TOKENGATE_CORS_ORIGINS", "*"),
        ("TOKENGATE_LOG_FORMAT", "xml"),
        ("TOKENGATE_COOKIE_SECURE", "perhaps"),
        // A filter naming no level: accepted, it would silence every log line.
        ("TOKENGATE_LOG", "verbose"),
        ("TOKENGATE_DATABASE_URL", "sqlite:///./app.db"),
        // Browsers refuse an IP address as an RP ID, and one the pages are not on.
        ("TOKENGATE_WEBAUTHN_RP_ID", "127.0.0.1"),
        ("TOKENGATE_WEBAUTHN_RP_ID", "example.com"),
        ("TOKENGATE_WEBAUTHN_ORIGINS", "https://evil.example"),
    ];
    for (var, value) in cases {
        let (code, _, err) = run(tokengate(dir.path()).arg("serve").env(var, value), "");
        assert_eq!(code, 2, "{var}={value}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
        assert!(!err.contains("09d25e09"), "the refused secret is not echoed");
    }
    // The same through a flag, and through .env.
    let (code, _, err) = run(tokengate(dir.path()).args(["serve", "--access-ttl", "soon"]), "");
    assert_eq!(code, 2);
    assert!(err.contains("TOKENGATE_ACCESS_TTL"));
    std::fs::write(dir.path().join(".env"), "TOKENGATE_REFRESH_TTL=forever\n").unwrap();
    let (code, _, err) = run(tokengate(dir.path()).arg("serve"), "");
    assert_eq!(code, 2);
    assert!(err.contains("TOKENGATE_REFRESH_TTL"), "{err}");
    assert!(
        !dir.path().join("tokengate.db").exists(),
        "nothing is created on bad config"
    );
}

#[test]
fn refusals_carry_the_obvious_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "TOKENGATE_BIND",
            "8710",
            "127.0.0.1:8710 (this machine only) or 0.0.0.0:8710",
        ),
        ("TOKENGATE_ALGORITHM", "eddsa", "did you mean EdDSA?"),
        (
            "TOKENGATE_LOG",
            "verbose",
            "names no level or known target; use a level",
        ),
        // SQLAlchemy's relative file: not silently a file at the filesystem root.
        (
            "TOKENGATE_DATABASE_URL",
            "sqlite:///./app.db",
            "here that is sqlite://app.db",
        ),
    ];
    for (var, value, fix) in cases {
        let (code, _, err) = run(tokengate(dir.path()).arg("serve").env(var, value), "");
        assert_eq!(code, 2, "{var}={value}: {err}");
        assert!(err.starts_with(&format!("error: {var}: ")), "{var}={value}: {err}");
        assert!(err.contains(fix), "{var}={value}: {err}");
    }
    assert!(!Path::new("/app.db").exists() && !dir.path().join("app.db").exists());
    // The same URL given to the import, and a path that does not exist: named.
    let (code, _, err) = run(
        tokengate(dir.path()).args(["user", "import", "--from-db", "sqlite:///./app.db"]),
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("here that is sqlite://app.db"), "{err}");
    let (code, _, err) = run(
        tokengate(dir.path()).args(["user", "import", "--from-db", "sqlite:///srv/nowhere/app.db"]),
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no database file at /srv/nowhere/app.db"), "{err}");
    // A port taken by another process: which variable to change.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(tokengate(dir.path()).args(["serve", "--bind", &addr]), "");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr} (TOKENGATE_BIND)")),
        "{err}"
    );
    assert!(err.contains("another process listens there"), "{err}");
}

#[test]
fn each_command_lists_only_its_own_flags_each_with_help() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let (code, out, err) = run(tokengate(dir.path()).args(args).arg("--help"), "");
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    // The server's settings are `serve`'s.
    assert!(help(&["serve"]).contains("--access-ttl"));
    for args in [
        &["user"][..],
        &["user", "import"],
        &["user", "create"],
        &["user", "list"],
        &["keys"],
        &["keys", "rotate"],
        &["migrate"],
        &["healthcheck"],
    ] {
        let out = help(args);
        assert!(
            !out.contains("--access-ttl") && !out.contains("--login-rate"),
            "{args:?}:\n{out}"
        );
        // Every flag has a line of help (clap prints the flag alone when it has none).
        for line in out.lines().map(str::trim).filter(|l| l.starts_with("--")) {
            let (flag, text) = line.split_once("  ").unwrap_or((line, ""));
            assert!(!text.trim().is_empty(), "{args:?}: {flag} has no help:\n{out}");
        }
    }
    let import = help(&["user", "import"]);
    for flag in [
        "--from ",
        "--from-db",
        "--table",
        "--map",
        "--skip-invalid",
        "--dry-run",
        "--id-map",
        "--database-url",
    ] {
        assert!(import.contains(flag), "{flag}:\n{import}");
    }
    let create = help(&["user", "create"]);
    assert!(create.contains("--username") && create.contains("--email"), "{create}");
}

#[test]
fn misspelled_variables_and_malformed_env_lines_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TOKENGATE_LOGIN_RATE=20/1m\nthis line is not a setting\nTOKENGATE_REFRESH_RATE=30/1m\n",
    )
    .unwrap();
    let mut cmd = tokengate(dir.path());
    cmd.env("TOKENGATE_ACESS_TTL", "5m");
    let (mut child, log, _) = start_server_with(cmd);
    assert!(
        log.contains("unknown variable TOKENGATE_ACESS_TTL is ignored; did you mean TOKENGATE_ACCESS_TTL?"),
        "{log}"
    );
    assert!(log.contains(".env: ignored a malformed line"), "{log}");
    assert_eq!(terminate(&mut child), 0);
}

/// Start `serve` in `dir`, wait for "listening on", return the child and the log so far.
fn start_server(dir: &Path) -> (std::process::Child, String) {
    let (child, log, _) = start_server_with(tokengate(dir));
    (child, log)
}

#[test]
fn zero_config_start_creates_database_and_private_secret_then_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log) = start_server(dir.path());
    assert!(log.contains("tokengate.db"), "{log}");
    // The version, and absolute paths: an operator sees which files are in use.
    assert!(log.contains(env!("CARGO_PKG_VERSION")), "{log}");
    let abs = std::path::absolute(dir.path()).unwrap();
    assert!(log.contains(&format!("{}/tokengate.db", abs.display())), "{log}");
    assert!(log.contains(&format!("{}/tokengate.secret", abs.display())), "{log}");
    assert!(log.contains("generated a new HS256 secret"), "{log}");
    assert!(log.contains("tokengate.secret"), "{log}");
    let secret_path = dir.path().join("tokengate.secret");
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    assert!(secret.trim().len() >= 43);
    assert!(!log.contains(secret.trim()), "the secret is never logged");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for f in ["tokengate.secret", "tokengate.db"] {
            let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by the owner only");
        }
    }
    assert_eq!(terminate(&mut child), 0, "SIGTERM is a clean exit");

    let (mut child, log) = start_server(dir.path());
    assert!(log.contains("HS256 secret loaded"), "{log}");
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);
    assert_eq!(terminate(&mut child), 0);

    // The same database restarted with another algorithm: the HS256 tokens issued so far
    // are refused from now on, and the log says so and how to keep them.
    let (mut child, log, _) = start_server_with(cmd_ed(dir.path()));
    assert!(log.contains("switched from HS256 to EdDSA"), "{log}");
    assert!(log.contains("TOKENGATE_PREVIOUS_SECRET_KEYS"), "{log}");
    assert_eq!(terminate(&mut child), 0);
}

#[test]
fn operator_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["user", "list"],
        vec!["keys", "list"],
        vec!["user", "deactivate", "--username", "x"],
    ] {
        let (code, out, err) = run(tokengate(dir.path()).args(&args), "");
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(err.contains("no database at") && err.contains("tokengate.db"), "{err}");
        assert!(
            err.contains("TOKENGATE_DATABASE_URL"),
            "says how to point at the right one: {err}"
        );
        let shown = dir.path().canonicalize().unwrap();
        assert!(
            err.contains(shown.to_str().unwrap()) || err.contains(dir.path().to_str().unwrap()),
            "absolute path: {err}"
        );
    }
    assert!(!dir.path().join("tokengate.db").exists());
}

#[test]
fn operator_creates_the_first_admin_and_lists_users() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(tokengate(dir.path()).arg("migrate"), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up to date"));
    assert!(!err.contains("INFO"), "operator commands print no INFO lines: {err}");

    let create = [
        "user",
        "create",
        "--username",
        "root",
        "--email",
        "root@example.com",
        "--role",
        "admin",
        "--password-stdin",
    ];
    let (code, out, err) = run(tokengate(dir.path()).args(create), "a-long-admin-password\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created user root") && out.contains("[admin]"), "{out}");
    assert!(!err.contains("a-long-admin-password") && !out.contains("a-long-admin-password"));
    assert_eq!(err, "", "a successful command prints its result only");

    let (code, _, err) = run(tokengate(dir.path()).args(create), "a-long-admin-password\n");
    assert_eq!(code, 1);
    assert!(err.contains("already registered"), "{err}");
    let (code, _, err) = run(
        tokengate(dir.path()).args(["user", "create", "--username", "x", "--email", "x@example.com"]),
        "a-long-password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("--username"), "{err}");
    let (code, _, err) = run(
        tokengate(dir.path()).args(["user", "create", "--username", "shorty", "--email", "s@example.com"]),
        "short\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("password"), "{err}");
    let (code, _, err) = run(
        tokengate(dir.path()).args([
            "user",
            "create",
            "--username",
            "bob",
            "--email",
            "b@example.com",
            "--role",
            "Admin!",
        ]),
        "a-long-password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("--role"), "{err}");

    let (code, out, err) = run(
        tokengate(dir.path()).args([
            "user",
            "set-roles",
            "--username",
            "root",
            "--role",
            "admin",
            "--role",
            "auditor",
        ]),
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[admin, auditor]"), "{out}");
    // root is the only admin: nothing may leave the server without one.
    for args in [vec!["deactivate"], vec!["set-roles", "--role", "auditor"]] {
        let mut full = vec!["user", args[0], "--username", "root"];
        full.extend(&args[1..]);
        let (code, _, err) = run(tokengate(dir.path()).args(&full), "");
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains("no active admin"), "{err}");
    }
    let (code, _, err) = run(
        tokengate(dir.path()).args(["user", "create", "--username", "bob", "--email", "bob@example.com"]),
        "bobs-password-1\n",
    );
    assert_eq!(code, 0, "{err}");
    for cmd in [["deactivate"], ["activate"]] {
        let (code, out, err) = run(tokengate(dir.path()).args(["user", cmd[0], "--username", "bob"]), "");
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(cmd[0]), "{out}");
    }
    let (code, out, err) = run(
        tokengate(dir.path()).args(["user", "set-password", "--username", "bob", "--password-stdin"]),
        "a-brand-new-password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reset") && !out.contains("a-brand-new-password"), "{out}");
    let (code, _, err) = run(
        tokengate(dir.path()).args(["user", "set-password", "--username", "bob"]),
        "short\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("password"), "{err}");
    for cmd in [
        vec!["set-roles", "--role", "admin"],
        vec!["deactivate"],
        vec!["activate"],
        vec!["set-password"],
    ] {
        let mut args = vec!["user", cmd[0], "--username", "ghost"];
        args.extend(&cmd[1..]);
        let (code, _, err) = run(tokengate(dir.path()).args(&args), "");
        assert_eq!(code, 1, "{cmd:?}");
        assert!(err.contains("no user named \"ghost\""), "{err}");
    }

    let (code, out, _) = run(tokengate(dir.path()).args(["user", "list"]), "");
    assert_eq!(code, 0);
    let rows: Vec<_> = out.lines().collect();
    assert_eq!(rows.len(), 3, "{out}");
    let root = rows.iter().find(|r| r.contains("root")).expect("root listed");
    assert!(root.contains("admin,auditor") && root.contains("true"), "{out}");
}

#[test]
fn keys_commands_and_a_running_server_picks_up_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let ed = |c: &mut Command| {
        c.env("TOKENGATE_ALGORITHM", "EdDSA");
    };
    let (code, _, err) = run(tokengate(dir.path()).arg("migrate"), "");
    assert_eq!(code, 0, "{err}");
    let mut cmd = tokengate(dir.path());
    ed(&mut cmd);
    let (code, out, err) = run(cmd.args(["keys", "generate"]), "");
    assert_eq!(code, 0, "{err}");
    let first_kid = out.split_whitespace().last().unwrap().to_owned();
    assert!(out.contains("EdDSA"), "{out}");
    let mut cmd = tokengate(dir.path());
    ed(&mut cmd);
    let (code, _, err) = run(cmd.args(["keys", "generate"]), "");
    assert_eq!(code, 1);
    assert!(err.contains("keys rotate"), "{err}");

    // A server on the same database, started before the rotation.
    let mut server = tokengate(dir.path());
    ed(&mut server);
    let (mut child, _, base) = start_server_with(server);
    let jwks = || -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&http_get(&base, "/.well-known/jwks.json")).unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(jwks(), vec![first_kid.clone()]);

    let mut cmd = tokengate(dir.path());
    ed(&mut cmd);
    let (code, out, err) = run(cmd.args(["keys", "rotate"]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{first_kid} retired")), "{out}");
    // Picked up without a restart, within the reload interval.
    let deadline = Instant::now() + Duration::from_secs(15);
    while jwks().len() != 2 {
        assert!(Instant::now() < deadline, "the server did not pick up the rotation");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut cmd = tokengate(dir.path());
    ed(&mut cmd);
    let (code, out, _) = run(cmd.args(["keys", "list"]), "");
    assert_eq!(code, 0);
    // Right after a rotation the old key still signs; the new one is only published.
    let second_kid = key_states(&out).into_iter().find(|(k, _)| *k != first_kid).unwrap().0;
    assert_eq!(
        key_states(&out),
        vec![
            (second_kid.clone(), "next (published)".to_owned()),
            (first_kid.clone(), "signing".to_owned())
        ],
        "{out}"
    );

    // A compromised key: revoked at once, out of the running server's JWKS; the next
    // key signs at once, and the table says both.
    let (code, out, err) = run(cmd_ed(dir.path()).args(["keys", "revoke", &first_kid]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (_, out, _) = run(cmd_ed(dir.path()).args(["keys", "list"]), "");
    assert_eq!(
        key_states(&out),
        vec![
            (second_kid.clone(), "signing".to_owned()),
            (first_kid.clone(), "revoked".to_owned())
        ],
        "{out}"
    );
    // `rotate --now`: the new key signs at once, the old one is revoked.
    let (code, _, err) = run(cmd_ed(dir.path()).args(["keys", "rotate", "--now"]), "");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(cmd_ed(dir.path()).args(["keys", "list"]), "");
    let states = key_states(&out);
    assert_eq!(states.len(), 3, "{out}");
    assert_eq!(states[0].1, "signing", "{out}");
    let mut old: Vec<_> = states[1..].to_vec();
    old.sort();
    let mut expected = vec![
        (second_kid.clone(), "revoked".to_owned()),
        (first_kid.clone(), "revoked".to_owned()),
    ];
    expected.sort();
    assert_eq!(old, expected, "{out}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while jwks().contains(&first_kid) {
        assert!(Instant::now() < deadline, "the revoked key is still published");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, _, err) = run(cmd_ed(dir.path()).args(["keys", "revoke", "no-such-kid"]), "");
    assert_eq!(code, 1);
    assert!(err.contains("no signing key"), "{err}");
    assert_eq!(terminate(&mut child), 0);

    // Without TOKENGATE_ALGORITHM the database's key decides: never a silent HS256.
    let (code, out, err) = run(tokengate(dir.path()).args(["keys", "list"]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("EdDSA") && !out.contains("hs256-"), "{out}");
    let (mut child, log, base) = start_server_with(tokengate(dir.path()));
    assert!(log.contains("EdDSA keys loaded"), "{log}");
    let v: serde_json::Value = serde_json::from_str(&http_get(&base, "/.well-known/jwks.json")).unwrap();
    assert!(!v["keys"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(terminate(&mut child), 0);
    // Asking for HS256 over it is refused at start, naming what to set.
    let (code, _, err) = run(
        tokengate(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("TOKENGATE_ALGORITHM", "HS256"),
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TOKENGATE_ALGORITHM=EdDSA"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{err}");
    assert!(
        err.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("error: TOKENGATE_ALGORITHM"),
        "{err}"
    );

    // HS256: listed from configuration, never rotated here.
    let hs = tempfile::tempdir().unwrap();
    let (code, _, _) = run(tokengate(hs.path()).arg("migrate"), "");
    assert_eq!(code, 0);
    let (code, _, err) = run(tokengate(hs.path()).args(["keys", "rotate"]), "");
    assert_eq!(code, 1);
    assert!(err.contains("TOKENGATE_PREVIOUS_SECRET_KEYS"), "{err}");
    let (code, out, _) = run(
        tokengate(hs.path())
            .args(["keys", "list"])
            .env("TOKENGATE_SECRET_KEY", "q3vJ9c1XkP0sZb7Lr2mYt8Wn5Hd4Ga6Fe"),
        "",
    );
    assert_eq!(code, 0);
    assert!(out.contains("hs256-") && !out.contains("q3vJ9c1X"), "{out}");
    // Once the provider has an id_token key (made with the first application), it is
    // listed and rotated by the same commands, under HS256 too.
    let (code, _, err) = run(
        tokengate(hs.path()).args([
            "client",
            "create",
            "--name",
            "App",
            "--redirect-uri",
            "https://app.example.com/cb",
        ]),
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(tokengate(hs.path()).args(["keys", "list"]), "");
    let id_rows: Vec<&str> = out.lines().filter(|l| l.contains("id_token")).collect();
    assert_eq!(id_rows.len(), 1, "{out}");
    assert!(id_rows[0].contains("RS256") && id_rows[0].contains("signing"), "{out}");
    let id_kid = id_rows[0].split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = run(tokengate(hs.path()).args(["keys", "rotate"]), "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("new active id_token key") && out.contains(&format!("{id_kid} retired")),
        "{out}"
    );
    let (_, out, _) = run(tokengate(hs.path()).args(["keys", "list"]), "");
    let states: Vec<(String, String)> = key_states(&out)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("hs256-"))
        .collect();
    assert_eq!(states.len(), 2, "{out}");
    assert!(states.contains(&(id_kid.clone(), "signing".to_owned())), "{out}");
    assert!(
        states.iter().any(|(k, s)| *k != id_kid && s == "next (published)"),
        "{out}"
    );
    let (code, out, err) = run(tokengate(hs.path()).args(["keys", "revoke", &id_kid]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
}

/// The binary with `TOKENGATE_ALGORITHM=EdDSA`.
/// `keys list`'s rows as (kid, state), in its order.
fn key_states(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let kid = line.split_whitespace().next()?.to_owned();
            let state = [
                "next (published)",
                "retired (verifying)",
                "signing",
                "revoked",
                "expired",
            ]
            .into_iter()
            .find(|s| line.contains(s))?;
            Some((kid, state.to_owned()))
        })
        .collect()
}

fn cmd_ed(dir: &Path) -> Command {
    let mut c = tokengate(dir);
    c.env("TOKENGATE_ALGORITHM", "EdDSA");
    c
}

/// The body of a plain HTTP/1.0 GET (no client library needed in a sync test).
fn http_get(base: &str, path: &str) -> String {
    use std::io::Read as _;
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// SIGTERM in the middle of a burst: every request the server had started on is
/// answered completely, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_answers_every_accepted_request_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokengate(dir.path());
    // Hashes slow enough that the burst is still in flight when the signal comes.
    cmd.env("TOKENGATE_ARGON2_MEMORY_KIB", "16384")
        .env("TOKENGATE_LOGIN_RATE", "10000/1m")
        .env("TOKENGATE_REGISTER_RATE", "10000/1m");
    let (mut child, _, base) = start_server_with(cmd);
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"username": "alzy", "email": "alzy@example.com", "password": "burst-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let burst: Vec<_> = (0..40)
        .map(|_| {
            let req = http
                .post(format!("{base}/auth/login"))
                .form(&[("username", "alzy"), ("password", "burst-password-1")]);
            tokio::spawn(async move {
                match req.send().await {
                    // A response that started must arrive whole.
                    Ok(res) => {
                        let status = res.status();
                        res.bytes().await.map(|_| Some(status)).map_err(|e| e.to_string())
                    }
                    // Never accepted, or closed before the server read it: not answered,
                    // but never half-answered.
                    Err(e) if !e.is_body() && !e.is_decode() && !e.is_timeout() => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut answered = 0;
    for task in burst {
        match task.await.unwrap() {
            Ok(Some(status)) => {
                assert!(status.is_success() || status.as_u16() == 503, "{status}");
                answered += 1;
            }
            Ok(None) => {}
            Err(e) => panic!("a request was cut off mid-answer: {e}"),
        }
    }
    assert!(answered > 0, "the burst was in flight when the signal came");
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

/// With `TOKENGATE_OTLP_ENDPOINT`, a login's spans reach an OTLP/HTTP receiver (flushed
/// at shutdown): the request span named after its route, and under it the password
/// verification, the storage operations and the signing; no attribute carries a
/// password, a token, a username or an address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_of_a_login_reach_an_otlp_receiver_without_secrets() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;
    use std::sync::{Arc, Mutex};

    let bodies: Arc<Mutex<Vec<axum::body::Bytes>>> = Arc::default();
    let sink = bodies.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            sink.lock().unwrap().push(body);
            async { axum::http::StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokengate(dir.path());
    cmd.env("TOKENGATE_OTLP_ENDPOINT", &collector);
    let (mut child, log, base) = tokio::task::spawn_blocking(move || start_server_with(cmd))
        .await
        .unwrap();
    assert!(log.contains("exporting traces over OTLP/HTTP"), "{log}");
    let http = reqwest::Client::new();
    let password = "trace-password-1";
    let res = http
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"username": "tracee", "email": "tracee@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let tokens: serde_json::Value = http
        .post(format!("{base}/auth/login"))
        .form(&[("username", "tracee"), ("password", password)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let code = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert_eq!(code, 0);

    // Every span received: (name, id, parent id, attribute values).
    let mut spans = Vec::new();
    for body in bodies.lock().unwrap().iter() {
        let export = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP protobuf");
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            assert_eq!(service, Some(Any::StringValue("tokengate".into())));
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let values: Vec<String> = span
                    .attributes
                    .iter()
                    .filter_map(|kv| kv.value.as_ref()?.value.as_ref())
                    .map(|v| format!("{v:?}"))
                    .collect();
                spans.push((span.name, span.span_id, span.parent_span_id, values));
            }
        }
    }
    let names: Vec<&str> = spans.iter().map(|s| s.0.as_str()).collect();
    for expected in [
        "POST /auth/register",
        "POST /auth/login",
        "password.hash",
        "password.verify",
        "db.user_by_username",
        "db.create_session",
        "token.sign",
    ] {
        assert!(names.contains(&expected), "no {expected} span in {names:?}");
    }
    let login = spans.iter().find(|s| s.0 == "POST /auth/login").unwrap();
    let verify = spans.iter().find(|s| s.0 == "password.verify").unwrap();
    assert_eq!(verify.2, login.1, "password.verify is a child of the login request");
    for (name, _, _, values) in &spans {
        for v in values {
            for secret in [password, access.as_str(), refresh.as_str(), "tracee", "127.0.0.1"] {
                assert!(!v.contains(secret), "span {name} carries {secret:?} in {v}");
            }
        }
    }
}

/// `tokengate healthcheck` (the container HEALTHCHECK): 0 while the server at
/// `TOKENGATE_BIND` answers `/healthz`, 1 once it is gone.
#[test]
fn healthcheck_command_exits_0_while_serving_and_1_after() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, base) = start_server_with(tokengate(dir.path()));
    let addr = base.trim_start_matches("http://").to_owned();
    let (code, out, err) = run(tokengate(dir.path()).args(["healthcheck", "--bind", &addr]), "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("healthy"), "{out}");
    assert_eq!(terminate(&mut child), 0);
    let (code, _, err) = run(tokengate(dir.path()).args(["healthcheck", "--bind", &addr]), "");
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");
}

/// Passkeys stored for another RP ID (the public URL's host changed) cannot sign in: the
/// start says so, with how many and for which RP ID; the server serves all the same.
#[test]
fn passkeys_of_another_rp_id_are_warned_about_at_start() {
    use tokengate::domain::{Authentication, PasskeyId, PasskeyName, SessionId, UnixTime, UserId};
    use tokengate::store::{AddPasskey, NewUser, StoredPasskey};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log) = start_server(dir.path());
    assert!(
        log.contains("passkeys: relying party") && log.contains("localhost"),
        "{log}"
    );
    assert!(!log.contains("another RP ID"), "{log}");
    assert_eq!(terminate(&mut child), 0);
    // A passkey registered when the server was reached as auth.old.example.
    let mut settings = tokengate::config::Settings::default();
    settings.store.database_url = tokengate::store::DatabaseUrl::Sqlite {
        path: dir.path().join("tokengate.db"),
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = tokengate::server::open_store(&settings, tokengate::server::OpenMode::MustExist)
            .await
            .unwrap();
        let now = UnixTime(1_900_000_000);
        let user = UserId::new();
        store
            .create_user(NewUser {
                id: user,
                username: tokengate::domain::Username::parse("pat").unwrap(),
                email: tokengate::domain::Email::parse("pat@example.com").unwrap(),
                password_hash: tokengate::crypto::passwords::PasswordHashString("x".into()),
                roles: Vec::new(),
                created_at: now,
            })
            .await
            .unwrap();
        store
            .add_passkey(AddPasskey {
                passkey: StoredPasskey {
                    id: PasskeyId::new(),
                    user,
                    credential_id: b"cred".to_vec(),
                    rp_id: "auth.old.example".into(),
                    name: PasskeyName::parse("key").unwrap(),
                    credential: "{}".into(),
                    sign_count: 0,
                    created_at: now,
                    last_used_at: None,
                },
                codes_if_first: Vec::new(),
                keep: SessionId::new(),
                keep_auth: Authentication::new(now, &[]),
                now,
                mails: Vec::new(),
            })
            .await
            .unwrap();
        store.close().await;
    });
    let (mut child, log) = start_server(dir.path());
    assert!(
        log.contains("passkeys registered for another RP ID cannot sign in here"),
        "{log}"
    );
    assert!(log.contains("auth.old.example"), "{log}");
    assert_eq!(terminate(&mut child), 0);
}

/// `client create|list|rotate-secret|delete`: the secret printed once, a bad redirect
/// URI refused with the flag named, a public client without a secret.
#[test]
fn operator_registers_lists_rotates_and_deletes_applications() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(tokengate(dir.path()).arg("migrate"), "");
    assert_eq!(code, 0, "{err}");
    let create = [
        "client",
        "create",
        "--name",
        "Grafana",
        "--redirect-uri",
        "https://grafana.example.com/login/generic_oauth",
        "--trusted",
    ];
    let (code, out, err) = run(tokengate(dir.path()).args(create), "");
    assert_eq!(code, 0, "{err}");
    let field = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let id = field(&out, "client_id");
    let secret = field(&out, "client_secret");
    assert!(secret.len() >= 43, "{out}");
    let (code, out, err) = run(
        tokengate(dir.path()).args([
            "client",
            "create",
            "--name",
            "SPA",
            "--redirect-uri",
            "http://127.0.0.1:5173/cb",
            "--public",
            "--scope",
            "openid",
        ]),
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("public client: no secret"), "{out}");
    let (code, out, _) = run(tokengate(dir.path()).args(["client", "list"]), "");
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("Grafana") && out.contains("confidential"),
        "{out}"
    );
    assert!(out.contains("SPA") && out.contains("public"), "{out}");
    assert!(!out.contains(&secret), "the secret is never listed: {out}");
    let (code, out, err) = run(tokengate(dir.path()).args(["client", "rotate-secret", &id]), "");
    assert_eq!(code, 0, "{err}");
    assert_ne!(field(&out, "client_secret"), secret);
    // Refusals: the flag and the reason, exit 1.
    let (code, _, err) = run(
        tokengate(dir.path()).args([
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "http://app.example.com/cb",
        ]),
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("--redirect-uri") && err.contains("loopback"), "{err}");
    let (code, _, err) = run(tokengate(dir.path()).args(["client", "delete", "nope"]), "");
    assert_eq!(code, 1);
    assert!(err.contains("not a client_id"), "{err}");
    let (code, out, err) = run(tokengate(dir.path()).args(["client", "delete", &id]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted"), "{out}");
    let (code, _, _) = run(tokengate(dir.path()).args(["client", "delete", &id]), "");
    assert_eq!(code, 1);
}
