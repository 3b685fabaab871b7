#!/usr/bin/env python3
"""Rate-limiter memory under failed logins from ever-new usernames and addresses.

Starts a release tokengate on a fresh SQLite file behind a "trusted proxy" (this
script), then sends ROUNDS rounds of PER_ROUND failed logins (default 12 x 10,000),
each with a username and an X-Forwarded-For address never used before. After each
round it reads the server's VmRSS and the `tokengate_rate_limit_keys` gauges and
prints a row. The limiter holds at most 100,000 keys per kind: the key counts must
stop there and RSS must stop growing with them; past the cap, newcomers share one
overflow budget (the 429s). Then it waits out the login window (61 s) and sends one
more round: the old keys are swept, and the newcomers get their own budgets again.

argon2 runs at its smallest parameters here: the hashes are not what is measured,
and at the recommended ones 120,000 failed logins would take twenty minutes.

    python3 bench/limiter_memory.py            # needs `cargo build --release` first
    ROUNDS=3 PER_ROUND=10000 python3 bench/limiter_memory.py
"""

import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

ROUNDS = int(os.environ.get("ROUNDS", "12"))
PER_ROUND = int(os.environ.get("PER_ROUND", "10000"))
THREADS = 8
PORT = 8150
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "tokengate")
METRICS_TOKEN = "limiter-memory-bench-metrics-token-0123"


def address(n: int) -> str:
    """The n-th client address: 10.0.0.1, 10.0.0.2, ... (never repeated below 2^24)."""
    n += 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def send(first: int, count: int, statuses: Counter, lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    seen = Counter()
    for n in range(first, first + count):
        body = f"username=lm{n}&password=not-the-password"
        conn.request("POST", "/auth/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": address(n),
        })
        res = conn.getresponse()
        res.read()
        seen[res.status] += 1
    conn.close()
    with lock:
        statuses.update(seen)


def rss_kib(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1))
    return field("VmRSS"), field("VmHWM")


def key_counts() -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    text = conn.getresponse().read().decode()
    return {m.group(1): int(float(m.group(2))) for m in
            re.finditer(r'^tokengate_rate_limit_keys\{kind="(\w+)"\} (\S+)$', text, re.M)}


def main() -> int:
    if not os.path.exists(BINARY):
        print("build first: cargo build --release", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp()
    env = dict(os.environ,
               TOKENGATE_BIND=f"127.0.0.1:{PORT}",
               TOKENGATE_DATABASE_URL=f"sqlite://{workdir}/t.db",
               TOKENGATE_TRUSTED_PROXIES="127.0.0.1/32",
               TOKENGATE_ARGON2_MEMORY_KIB="8",
               TOKENGATE_ARGON2_ITERATIONS="1",
               TOKENGATE_ARGON2_PARALLELISM="1",
               TOKENGATE_METRICS_TOKEN=METRICS_TOKEN,
               TOKENGATE_LOG="error")
    server = subprocess.Popen([BINARY, "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                key_counts()
                break
            except OSError:
                time.sleep(0.1)
        rss, _ = rss_kib(server.pid)
        print(f"started: RSS {rss / 1024:.1f} MiB")
        print("| round | logins sent | login_ip keys | login_user keys | RSS (MiB) | 401 | 429 | other |")
        print("|---|---|---|---|---|---|---|---|")
        for r in range(ROUNDS + 1):
            label = str(r + 1)
            if r == ROUNDS:
                time.sleep(61)  # the default login window (10/1m), and a second
                label = f"{r + 1} (61 s later)"
            statuses: Counter = Counter()
            lock = threading.Lock()
            share = PER_ROUND // THREADS
            base = r * PER_ROUND
            threads = [threading.Thread(target=send, args=(base + t * share, share, statuses, lock))
                       for t in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            keys = key_counts()
            rss, _ = rss_kib(server.pid)
            other = sum(v for k, v in statuses.items() if k not in (401, 429))
            print(f"| {label} | {(r + 1) * share * THREADS:,} | {keys.get('login_ip', 0):,} "
                  f"| {keys.get('login_user', 0):,} | {rss / 1024:.1f} | {statuses[401]:,} "
                  f"| {statuses[429]:,} | {other} |", flush=True)
        _, hwm = rss_kib(server.pid)
        print(f"peak RSS (VmHWM): {hwm / 1024:.1f} MiB")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
