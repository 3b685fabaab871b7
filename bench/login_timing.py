#!/usr/bin/env python3
"""Login timing: an unknown username and a wrong password must cost the same, or the
answer time tells an attacker which usernames exist. Runs against a tokengate started
here (release, fresh SQLite, default argon2 cost, limits raised), alternating the two
cases one request at a time (A B A B ..., so drift hits both), and prints the medians
and their ratio; the target is within 10%.

    bench/login_timing.py            # 300 of each
    N=1000 bench/login_timing.py
"""

import http.client
import json
import os
import statistics
import time
import urllib.parse

from local_server import release_server

N = int(os.environ.get("N", "300"))
PORT = 8141


def post(conn, path, body, content_type):
    conn.request("POST", path, body=body, headers={"Content-Type": content_type})
    res = conn.getresponse()
    res.read()
    return res.status


def main():
    with release_server(PORT, LOGIN_RATE="1000000/1s", REGISTER_RATE="1000000/1s"):
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        body = json.dumps({"username": "timing_user", "email": "t@example.com", "password": "the-right-password"})
        assert post(conn, "/auth/register", body, "application/json") == 201
        cases = {
            "unknown user": urllib.parse.urlencode({"username": "no_such_user", "password": "a-wrong-password"}),
            "wrong password": urllib.parse.urlencode({"username": "timing_user", "password": "a-wrong-password"}),
        }
        times = {k: [] for k in cases}
        for _ in range(5):  # warm up
            for body in cases.values():
                post(conn, "/auth/login", body, "application/x-www-form-urlencoded")
        for _ in range(N):
            for name, body in cases.items():
                started = time.perf_counter()
                status = post(conn, "/auth/login", body, "application/x-www-form-urlencoded")
                times[name].append(time.perf_counter() - started)
                assert status == 401, status
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    for k, m in medians.items():
        q = statistics.quantiles(times[k], n=10)
        print(f"{k}: median {m:.2f} ms, p10 {q[0] * 1000:.2f} ms, p90 {q[-1] * 1000:.2f} ms (n={N})")
    ratio = medians["unknown user"] / medians["wrong password"]
    print(f"ratio unknown/wrong = {ratio:.3f} (target: within 10%, 0.90-1.10)")


if __name__ == "__main__":
    main()
