"""The FastAPI resource server against a real tokengate, per algorithm: good token,
tampered token, key rotation (old and new tokens both accepted until the old one
expires), and the admin route. Needs the tokengate binary (TOKENGATE_BIN, default
../../target/debug/tokengate, built by `cargo test`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import create_app

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("TOKENGATE_BIN", str(HERE.parent.parent / "target" / "debug" / "tokengate"))
PASSWORD = "resource-server-pass"


class Tokengate:
    def __init__(self, algorithm: str, access_ttl: str = "15m", **extra: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TOKENGATE_ALGORITHM": algorithm,
            "TOKENGATE_BIND": f"127.0.0.1:{port}",
            "TOKENGATE_ACCESS_TTL": access_ttl,
            "TOKENGATE_ARGON2_MEMORY_KIB": "1024",
            "TOKENGATE_LOG": "warn",
            **extra,
        }
        self.proc = subprocess.Popen([BIN, "serve"], cwd=self.dir.name, env=self.env)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("tokengate did not start")
                time.sleep(0.1)

    def cli(self, *args: str, stdin: str = "") -> str:
        out = subprocess.run([BIN, *args], cwd=self.dir.name, env=self.env, input=stdin, text=True,
                             capture_output=True, check=True)
        return out.stdout

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(f"{self.base}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req) as res:
            return json.loads(res.read())

    def jwks_kids(self) -> list[str]:
        with urllib.request.urlopen(f"{self.base}/.well-known/jwks.json") as res:
            return [k["kid"] for k in json.loads(res.read())["keys"]]

    def login(self, username: str) -> str:
        return self.post("/auth/login", {"username": username, "password": PASSWORD})["access_token"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.dir.cleanup()


@pytest.fixture(params=["EdDSA", "ES256", "RS256"])
def tokengate(request):
    tg = Tokengate(request.param)
    tg.post("/auth/register", {"username": "alzy", "email": "alzy@example.com", "password": PASSWORD})
    tg.cli("user", "create", "--username", "root", "--email", "root@example.com", "--role", "admin",
           "--password-stdin", stdin=PASSWORD + "\n")
    yield tg
    tg.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    flipped = ("A" if payload[5] != "A" else "B")
    return ".".join([head, payload[:5] + flipped + payload[6:], sig])


def test_verifies_tokens_through_the_jwks(tokengate):
    client = TestClient(create_app(tokengate.base))
    token = tokengate.login("alzy")
    res = client.get("/hello", headers=bearer(token))
    assert res.status_code == 200
    assert res.json()["roles"] == []
    assert client.get("/hello", headers=bearer(tamper(token))).status_code == 401
    assert client.get("/hello").status_code == 401
    assert client.get("/hello", headers=bearer("not.a.jwt")).status_code == 401


def test_admin_route_needs_the_admin_role(tokengate):
    client = TestClient(create_app(tokengate.base))
    assert client.get("/admin/report", headers=bearer(tokengate.login("alzy"))).status_code == 403
    res = client.get("/admin/report", headers=bearer(tokengate.login("root")))
    assert res.status_code == 200
    assert res.json()["report"] == "for admins only"


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_rotation_old_and_new_tokens_both_work_until_the_old_expires(algorithm):
    # A 16 s access lifetime: tokengate publishes a rotated-in key 8 s before it signs
    # (half the lifetime, the JWKS max-age); the app caches the JWKS for 4 s.
    tg = Tokengate(algorithm, access_ttl="16s")
    try:
        tg.post("/auth/register", {"username": "alzy", "email": "alzy@example.com", "password": PASSWORD})
        client = TestClient(create_app(tg.base, jwks_cache_seconds=4))
        old = tg.login("alzy")
        old_kid = kid_of(old)
        assert client.get("/hello", headers=bearer(old)).status_code == 200
        tg.cli("keys", "rotate")
        wait_until(lambda: len(tg.jwks_kids()) == 2, "the running server did not publish the new key")
        new = None

        def new_key_signs() -> bool:
            nonlocal new
            new = tg.login("alzy")
            return kid_of(new) != old_kid

        wait_until(new_key_signs, "the new key never started signing", timeout=20, step=1)
        # Both are accepted: the new one through the refreshed JWKS, the old one while
        # its key stays published.
        assert client.get("/hello", headers=bearer(new)).status_code == 200
        assert client.get("/hello", headers=bearer(old)).status_code == 200
        # Until the old token expires.
        time.sleep(max(0.0, jwt_exp(old) - time.time()) + 1.0)
        assert client.get("/hello", headers=bearer(old)).status_code == 401
        assert client.get("/hello", headers=bearer(tg.login("alzy"))).status_code == 200
    finally:
        tg.stop()


def test_expired_tokens_are_refused():
    tg = Tokengate("EdDSA", access_ttl="2s")
    try:
        tg.post("/auth/register", {"username": "alzy", "email": "alzy@example.com", "password": PASSWORD})
        client = TestClient(create_app(tg.base))
        token = tg.login("alzy")
        assert client.get("/hello", headers=bearer(token)).status_code == 200
        time.sleep(2.5)
        assert client.get("/hello", headers=bearer(token)).status_code == 401
    finally:
        tg.stop()


def test_wrong_audience_or_issuer_is_refused(tokengate):
    token = tokengate.login("alzy")
    assert TestClient(create_app(tokengate.base, audience="another-api")).get(
        "/hello", headers=bearer(token)).status_code == 401
    assert TestClient(create_app(tokengate.base, issuer="someone-else")).get(
        "/hello", headers=bearer(token)).status_code == 401


def _b64(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def kid_of(token: str) -> str:
    return json.loads(_b64(token.split(".")[0]))["kid"]


def jwt_exp(token: str) -> int:
    return json.loads(_b64(token.split(".")[1]))["exp"]


def wait_until(check, message: str, timeout: float = 15, step: float = 0.2) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, message
        time.sleep(step)
