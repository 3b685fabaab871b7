"""A real tokengate process per test (SQLite in a temporary folder, a free port)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TOKENGATE_BIN", str(ROOT / "target" / "debug" / "tokengate"))
PASSWORD = "python-suite-pass"
# `/metrics` on the main address answers only to this bearer token (TOKENGATE_METRICS_TOKEN).
METRICS_TOKEN = "python-suite-metrics-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class Tokengate:
    def __init__(self, **env: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TOKENGATE_BIND": f"127.0.0.1:{port}",
            "TOKENGATE_ARGON2_MEMORY_KIB": "1024",
            "TOKENGATE_LOG": "warn",
            "TOKENGATE_METRICS_TOKEN": METRICS_TOKEN,
            **env,
        }
        self.proc = subprocess.Popen([BIN, "serve"], cwd=self.dir.name, env=self.env)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("tokengate did not start")
                time.sleep(0.1)

    def request(self, method: str, path: str, body=None, headers=None, base=None) -> Response:
        headers = dict(headers or {})
        data = None
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, (str, bytes)):
            data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(f"{base or self.base}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return Response(res.status, res.headers, res.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def metrics(self) -> Response:
        return self.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    def register(self, username: str) -> None:
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        assert self.request("POST", "/auth/register", body).status == 201

    def login(self, username: str, password: str = PASSWORD) -> Response:
        return self.request("POST", "/auth/login", {"username": username, "password": password})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.dir.cleanup()


@pytest.fixture
def tokengate():
    tg = Tokengate()
    yield tg
    tg.stop()
