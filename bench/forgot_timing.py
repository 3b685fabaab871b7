#!/usr/bin/env python3
"""Forgot-password timing: an address that is an account's and one that is not must be
answered alike (status, body, time), or the answer tells an attacker which addresses
are registered. Runs against a tokengate started here (release, fresh SQLite, mail as
files, the mail budgets raised), alternating the two cases one request at a time
(A B A B ..., so drift hits both) with a short pause after each (the lookup and the
mail happen after the answer: the pause keeps one case's work out of the next one's
time, as an attacker's own pacing would), and prints the medians and their ratio; the
target is within 10%. The same for sign-in links (`TOKENGATE_MAGIC_LINKS=on`).

    bench/forgot_timing.py            # 300 of each
    N=1000 bench/forgot_timing.py
"""

import http.client
import json
import os
import statistics
import time

from local_server import release_server

N = int(os.environ.get("N", "300"))
PAUSE = float(os.environ.get("PAUSE_MS", "20")) / 1000
PORT = 8142
KNOWN = 50


def post(conn, path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    return res.status, res.read()


def main():
    results = {}
    settings = {
        "REGISTER_RATE": "1000000/1s",
        "MAIL_RATE": "1000000/1s",
        "MAIL_NETWORK_RATE": "1000000/1s",
        "MAGIC_LINKS": "on",
    }
    with release_server(PORT, **settings) as d:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        for i in range(KNOWN):
            body = {"username": f"known{i}", "email": f"known{i}@example.com", "password": "the-right-password"}
            assert post(conn, "/auth/register", body)[0] == 201
        for route in ["/auth/password/forgot", "/auth/magic-link"]:
            times = {"registered": [], "unknown": []}
            bodies = {}
            for n in range(N + 5):
                cases = {
                    "registered": {"email": f"known{n % KNOWN}@example.com"},
                    "unknown": {"email": f"nobody{n}@example.com"},
                }
                for name, body in cases.items():
                    time.sleep(PAUSE)
                    started = time.perf_counter()
                    status, answer = post(conn, route, body)
                    elapsed = time.perf_counter() - started
                    assert status == 202, (status, answer)
                    bodies.setdefault(name, answer)
                    assert answer == bodies[name], answer
                    if n >= 5:  # the first five warm up
                        times[name].append(elapsed)
            assert bodies["registered"] == bodies["unknown"], bodies
            results[route] = times
        mails = len(os.listdir(os.path.join(d, "mail")))
    print(f"mail written: {mails} (welcome mails, and one per request for a registered address)")
    for route, times in results.items():
        medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
        for k, m in medians.items():
            q = statistics.quantiles(times[k], n=10)
            print(f"{route} {k}: median {m:.3f} ms, p10 {q[0] * 1000:.3f} ms, p90 {q[-1] * 1000:.3f} ms (n={N})")
        ratio = medians["unknown"] / medians["registered"]
        print(f"{route} ratio unknown/registered = {ratio:.3f} (target: within 10%, 0.90-1.10)")


if __name__ == "__main__":
    main()
