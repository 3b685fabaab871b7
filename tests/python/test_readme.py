"""The README's shell blocks that can run here, run as printed (only the address and
the binary's name are the test's): the curl walk-through, the JWKS and key-rotation
terminal, and the operator commands. Each against a fresh tokengate."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, ROOT, Tokengate

README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    return README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def sh_blocks(heading: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", section(heading), re.S)


def run_block(block: str, tg: Tokengate, tmp_path: Path, stdin: str = "") -> str:
    """`block` in bash, in the server's folder, with `tokengate` naming the binary and
    `localhost:8000` the server; its output (the run must succeed)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    link = bindir / "tokengate"
    if not link.exists():
        link.symlink_to(BIN)
    port = tg.base.rsplit(":", 1)[1]
    script = block.replace("localhost:8000", f"127.0.0.1:{port}")
    env = {**tg.env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tg.dir.name, env=env, input=stdin, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.mark.skipif(shutil.which("jq") is None and not os.environ.get("CI"), reason="jq is not installed")
def test_the_walk_through_runs_as_printed(tokengate, tmp_path):
    (walk,) = sh_blocks("Walk-through with curl")
    out = run_block(walk, tokengate, tmp_path)
    lines = out.splitlines()
    # Register, form login, /me: the user; every JSON answer on a line of its own.
    assert lines[0].startswith('{"id":') and '"username":"alzy"' in lines[0], out
    assert lines[1].startswith('{"access_token":'), out
    assert '"username":"alzy"' in lines[2], out
    # The reused refresh token, then the revoked session's access token.
    assert '"detail":"Invalid or expired refresh token"' in lines[3], out
    assert '"detail":"Could not validate credentials"' in lines[4], out
    # Password change, logout, the dead token, logout-all.
    assert lines[5:] == ["204", "204", '{"detail":"Could not validate credentials"}', "204"], out


def test_the_signing_key_terminal_runs_as_printed(tmp_path):
    first, second = sh_blocks("Many services: asymmetric keys, JWKS and rotation")[:2]
    assert "TOKENGATE_ALGORITHM=EdDSA cargo run --release -- serve" in first
    tg = Tokengate(TOKENGATE_ALGORITHM="EdDSA")
    try:
        out = run_block(second, tg, tmp_path)
    finally:
        tg.stop()
    assert '"kty":"OKP"' in out and '"alg":"EdDSA"' in out, out
    assert "kid" in out and "signing" in out, out
    assert "new active key" in out, out


def test_the_operator_commands_run_as_printed(tmp_path):
    (block,) = sh_blocks("Command line")
    lines = [
        line for line in block.splitlines()
        # The server itself, and the imports (their files are the reader's).
        if line.strip() and not line.startswith(("tokengate serve", "tokengate user import"))
        # Sealing needs an encryption key, which the walk-through does not set.
        and "keys reencrypt" not in line
    ]
    # The commands that prompt read their password from standard input here, one each.
    passwords = {"user create --username root": "a-long-root-password-42\n",
                 "user set-password": "a-new-ops-password-42\n"}
    tg = Tokengate(TOKENGATE_ALGORITHM="EdDSA")
    out = ""
    try:
        for line in lines:
            stdin = next((p for cmd, p in passwords.items() if cmd in line), "")
            out += run_block(line, tg, tmp_path, stdin=stdin)
    finally:
        tg.stop()
    assert "database schema is up to date" in out, out
    assert "created user root" in out and "created user ops" in out, out
    assert "user ops now has roles [admin, editor]" in out, out
    assert "the address of ops is now ops2@example.com (not verified)" in out, out
    assert "the address ops2@example.com of ops counts as verified" in out, out
    assert "ops has no two-step sign-in; nothing changed" in out, out
    assert "new active key" in out, out


def test_the_mail_walk_through_resets_a_password_as_printed(tokengate, tmp_path):
    """With no SMTP server, the mail is an .eml file beside the database: the README's
    reset by hand reads the link from it and sets a new password."""
    reset = sh_blocks("Mail and account recovery")[0]
    out = run_block(reset, tokengate, tmp_path)
    lines = out.splitlines()
    assert lines[0].startswith('{"detail":"If the address belongs to an account'), out
    assert "/account/reset#token=" in lines[1], out
    assert lines[-1] == "204", out
    # The new password works.
    res = tokengate.login("mara", "a-brand-new-passphrase")
    assert res.status == 200, res


@pytest.mark.skipif(shutil.which("jq") is None and not os.environ.get("CI"), reason="jq is not installed")
def test_the_multi_factor_walk_through_runs_as_printed(tokengate, tmp_path):
    """TOTP by hand: enrol with step-up, confirm with the code the shell computes, the
    password alone answers mfa_required, the second step signs in and says so in amr."""
    (walk,) = sh_blocks("Multi-factor sign-in")
    out = run_block(walk, tokengate, tmp_path)
    assert out.splitlines() == ["10", "['pwd', 'otp', 'mfa']"], out
    # The password alone issues nothing now.
    assert tokengate.login("otto", "correct-horse-battery").status == 403
