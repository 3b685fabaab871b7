"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_schemathesis.py).

Every generated request carries a freshly issued access token of ST_USER: a generated
logout, logout-all or password change ends sessions, and must not leave the rest of the
run testing nothing but 401s. An admin run may legitimately demote, deactivate or delete
its own identity (once it has made another admin): then the identity is restored with
the operator CLI (ST_CLI, run in ST_CLI_DIR with the server's environment) and the run
goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import schemathesis


def try_login() -> str | None:
    data = urllib.parse.urlencode({"username": os.environ["ST_USER"], "password": os.environ["ST_PASSWORD"]})
    req = urllib.request.Request(f"{os.environ['ST_BASE']}/auth/login", data=data.encode())
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)["access_token"]
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return None
        raise


def cli(*args: str) -> None:
    subprocess.run(
        [os.environ["ST_CLI"], "user", *args],
        cwd=os.environ["ST_CLI_DIR"],
        input=os.environ["ST_PASSWORD"] + "\n",
        capture_output=True,
        text=True,
        check=False,
    )


def restore() -> None:
    """Put the identity back as the test made it (each step a no-op if not needed)."""
    user = os.environ["ST_USER"]
    roles = [a for r in os.environ.get("ST_ROLES", "").split(",") if r for a in ("--role", r)]
    cli("create", "--username", user, "--email", f"{user}@st.example.com", *roles)
    cli("set-password", "--username", user)
    cli("activate", "--username", user)
    cli("set-roles", "--username", user, *roles)


def login() -> str:
    token = try_login()
    if token is None:
        restore()
        token = try_login()
    if token is None:
        raise RuntimeError(f"cannot log in as {os.environ['ST_USER']}, even after restoring it")
    return token


@schemathesis.auth(refresh_interval=None)
class FreshLogin:
    def get(self, case, ctx):
        return login()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
