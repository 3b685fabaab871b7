"""Schemathesis against the running server's /openapi.json: every operation, as a plain
user and as an admin. Fails on any 5xx, any response the document does not describe
(status, headers, body schema, content type), any schema-violating request that is
accepted, and auth that is not enforced.

The run is bounded (ST_MAX_TIME seconds per identity, default 60); `.ci/run` runs it as
part of this suite. By hand, against a server of your own:

    st run http://127.0.0.1:8000/openapi.json --checks all -H "Authorization: Bearer $ACCESS"
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, PASSWORD, Tokengate

HERE = Path(__file__).resolve().parent
MAX_TIME = os.environ.get("ST_MAX_TIME", "60")


@pytest.fixture(scope="module")
def server():
    tg = Tokengate(
        TOKENGATE_LOGIN_RATE="1000000/1s",
        TOKENGATE_REFRESH_RATE="1000000/1s",
        TOKENGATE_REGISTER_RATE="1000000/1s",
        TOKENGATE_LOG="error",
    )
    tg.register("st_user")
    tg.register("st_admin")
    # Roles are an operator's decision: the CLI, on the same database.
    subprocess.run([BIN, "user", "set-roles", "--username", "st_admin", "--role", "admin"], cwd=tg.dir.name, env=tg.env, check=True)
    yield tg
    tg.stop()


@pytest.mark.parametrize("identity", ["st_user", "st_admin"])
def test_every_operation_holds_to_the_document(server, identity):
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "st_hooks",
        "PYTHONPATH": str(HERE),
        "ST_BASE": server.base,
        "ST_USER": identity,
        "ST_PASSWORD": PASSWORD,
        "ST_ROLES": "admin" if identity == "st_admin" else "",
        "ST_CLI": BIN,
        "ST_CLI_DIR": server.dir.name,
        **{k: v for k, v in server.env.items() if k.startswith("TOKENGATE_")},
    }
    st = Path(sys.executable).with_name("st")
    # One worker: with two, CPython 3.11's compiler can fail inside schemathesis itself
    # ("AST constructor recursion depth mismatch"), a runtime error that is not ours.
    run = subprocess.run(
        [
            str(st), "--config-file", str(HERE / "schemathesis.toml"), "run", f"{server.base}/openapi.json",
            # Every check runs (the default), save those schemathesis.toml turns off for
            # named operations (a CLI `--checks all` would override it).
            "--max-time", MAX_TIME,
            "--workers", "1",
            "--request-timeout", "10",
            "--seed", "20261127",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-4000:]
