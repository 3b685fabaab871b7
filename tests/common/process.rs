//! The real binary as a child process: started on a free port, read until it listens.
// Several test crates include this file; each uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// The binary in `dir` with no TOKENGATE_* variables from the outside.
pub fn tokengate(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("TOKENGATE_ARGON2_MEMORY_KIB", "1024")
        .env("TOKENGATE_ARGON2_ITERATIONS", "2");
    c
}

/// Start `cmd serve` on a free port; the child, its log so far and its base URL.
pub fn start_server_with(mut cmd: Command) -> (Child, String, String) {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.contains("listening on") {
        assert!(Instant::now() < deadline, "no 'listening on' in: {log}");
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("server exited: {log}");
        }
        log.push_str(&line);
    }
    let addr = log
        .split("listening on http://")
        .nth(1)
        .and_then(|a| a.split_whitespace().next());
    let base = format!("http://{}", addr.unwrap_or_default());
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, log, base)
}

/// Run `cmd` to its end with `stdin` as its input; exit code, stdout, stderr.
pub fn run(cmd: &mut Command, stdin: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tokengate");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SIGTERM, then the exit code.
pub fn terminate(child: &mut Child) -> i32 {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    child.wait().unwrap().code().unwrap_or(-1)
}

/// A child that is killed (SIGKILL) when dropped: a failed assertion leaves no server
/// running behind the test.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
