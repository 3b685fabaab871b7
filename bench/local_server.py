"""A release tokengate on a fresh SQLite file, for the timing benchmarks (imported by
bench/login_timing.py and bench/forgot_timing.py)."""

import contextlib
import http.client
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def release_server(port, **settings):
    """Build the release binary, serve on `port` with `settings` (TOKENGATE_* names
    without the prefix); yield its folder (the database, `mail/`); stop it."""
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as d:
        env = {
            **os.environ,
            "TOKENGATE_LOG": "error",
            "TOKENGATE_BIND": f"127.0.0.1:{port}",
            "TOKENGATE_DATABASE_URL": f"sqlite://{d}/t.db",
            **{f"TOKENGATE_{k}": v for k, v in settings.items()},
        }
        server = subprocess.Popen([f"{ROOT}/target/release/tokengate", "serve"], env=env)
        try:
            for _ in range(100):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/healthz")
                    c.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.1)
            yield d
        finally:
            server.terminate()
            server.wait()
