"""`GET /metrics`: Prometheus text that a real parser reads, counters that move with
what happens, and no personal data in any label."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from conftest import METRICS_TOKEN, PASSWORD, Tokengate, free_port


def scrape(tg: Tokengate, base: str | None = None) -> dict:
    # The private metrics address needs no token; the main one does.
    res = tg.request("GET", "/metrics", base=base) if base else tg.metrics()
    assert res.status == 200
    assert res.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(res.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_login_and_failed_login_move_their_counters(tokengate):
    tokengate.register("metrics-user")
    before = scrape(tokengate)
    assert tokengate.login("metrics-user").status == 200
    assert tokengate.login("metrics-user", "wrong-password").status == 401
    after = scrape(tokengate)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tokengate_auth_events_total", event="login.ok") == 1
    assert moved("tokengate_auth_events_total", event="login.failed") == 1
    login = {"method": "POST", "route": "/auth/login"}
    assert moved("tokengate_http_requests_total", status="200", **login) == 1
    assert moved("tokengate_http_requests_total", status="401", **login) == 1
    assert moved("tokengate_http_request_duration_seconds_count", status="200", **login) == 1
    # Two verifications (the good and the wrong password), each timed.
    assert moved("tokengate_password_hash_duration_seconds_count") == 2
    assert value(after, "tokengate_password_hashes_in_flight") == 0
    assert value(after, "tokengate_store_operation_duration_seconds_count", op="create_session") >= 1
    assert value(after, "tokengate_db_connections", pool="sqlite_write", state="idle") >= 0
    # Both logins were counted against the client's address and the username.
    assert value(after, "tokengate_rate_limit_keys", kind="login_ip") >= 1
    assert value(after, "tokengate_rate_limit_keys", kind="login_user") >= 1
    assert value(after, "tokengate_build_info", version=value_label(after, "tokengate_build_info")) == 1


def value_label(samples: dict, name: str) -> str:
    return next(dict(labels)["version"] for (n, labels) in samples if n == name)


def test_no_label_carries_a_username_ip_token_or_id(tokengate):
    tokengate.register("secret-name")
    tokens = tokengate.login("secret-name").json()
    tokengate.request("GET", "/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    tokengate.request("DELETE", "/auth/sessions/5b2c3bd6-2f4e-4a4e-9d55-3a8f7b0c1d2e",
                      headers={"Authorization": f"Bearer {tokens['access_token']}"})
    tokengate.request("GET", "/no/such/path/secret-name")
    text = tokengate.metrics().body.decode()
    for needle in ("secret-name", "127.0.0.1", tokens["access_token"][:20], tokens["refresh_token"][:20],
                   "5b2c3bd6", PASSWORD):
        assert needle not in text, needle
    assert 'route="/auth/sessions/{id}"' in text
    assert 'route="unmatched"' in text


def test_main_address_metrics_need_the_token(tokengate):
    assert tokengate.request("GET", "/metrics").status == 401
    wrong = {"Authorization": "Bearer " + METRICS_TOKEN[:-1] + "x"}
    assert tokengate.request("GET", "/metrics", headers=wrong).status == 401
    assert tokengate.metrics().status == 200


def test_metrics_bind_moves_metrics_off_the_public_address():
    port = free_port()
    tg = Tokengate(TOKENGATE_METRICS_BIND=f"127.0.0.1:{port}", TOKENGATE_METRICS_TOKEN="")
    try:
        assert tg.request("GET", "/metrics").status == 404
        samples = scrape(tg, base=f"http://127.0.0.1:{port}")
        assert any(name == "tokengate_build_info" for name, _ in samples)
    finally:
        tg.stop()


def test_what_an_operator_alerts_on_is_there(tokengate):
    """The standard process series, the database's state, and the session cache's mode."""
    import os
    import time

    samples = scrape(tokengate)
    names = {name for name, _ in samples}
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_cpu_seconds_total",
        "process_threads",
    ]:
        assert name in names, name
    assert value(samples, "process_resident_memory_bytes") > 1_000_000
    assert value(samples, "process_open_fds") >= 3
    assert abs(value(samples, "process_start_time_seconds") - time.time()) < 3600
    assert value(samples, "tokengate_database_up") == 1
    # Following the revocation log: checks answered from memory.
    assert value(samples, "tokengate_session_cache_trusted") == 1
    # No Redis configured: no Redis series.
    assert "tokengate_redis_up" not in names
    redis = os.environ.get("TOKENGATE_TEST_REDIS_URL")
    if redis:
        tg = Tokengate(TOKENGATE_REDIS_URL=redis, TOKENGATE_REDIS_PREFIX=f"py-metrics-{free_port()}:")
        try:
            assert value(scrape(tg), "tokengate_redis_up") == 1
        finally:
            tg.stop()
        down = Tokengate(TOKENGATE_REDIS_URL="redis://127.0.0.1:1")
        try:
            assert ("tokengate_redis_up", ()) in scrape(down)
            assert value(scrape(down), "tokengate_redis_up") == 0
        finally:
            down.stop()


def test_refused_logins_cost_no_database_read():
    """A client refused by a login budget is refused before the account is looked up,
    even when it shows another account's device token with an email (each such attempt
    spends that token's budget for good)."""
    tg = Tokengate(TOKENGATE_LOGIN_RATE="3/1m", TOKENGATE_TRUSTED_PROXIES="127.0.0.1/32")
    try:
        tg.register("alice")
        tg.register("mallory")
        device = tg.login("mallory").json()["device_token"]

        def login(ip: str, body: dict) -> int:
            return tg.request("POST", "/auth/login", body, headers={"X-Forwarded-For": ip}).status

        def lookups() -> float:
            samples = scrape(tg)
            return sum(value(samples, "tokengate_store_operation_duration_seconds_count", op=op)
                       for op in ("user_by_email", "user_by_username"))

        # A distributed attack on the address: failures from five networks lock it.
        for n in range(1, 6):
            assert login(f"198.51.100.{n}", {"username": "alice@example.com", "password": "not-hers"}) == 401
        before = lookups()
        statuses = []
        for _ in range(20):
            body = {"username": "alice@example.com", "password": PASSWORD, "device_token": device}
            statuses.append(login("198.51.100.9", body))
        assert set(statuses) == {429}, statuses
        # Mallory's token buys its own budget's worth of lookups (3 a minute), no more.
        assert lookups() - before <= 3, lookups() - before
    finally:
        tg.stop()
