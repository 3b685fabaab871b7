"""The deployment files, checked with what runs on this machine (there is no container
engine here: the image and the compose stack are linted and parsed, not run).
- Dockerfile: hadolint.
- deploy/docker-compose.yml: parsed; its structure and every TOKENGATE_ variable checked.
- deploy/nginx.conf: `nginx -t` (hostnames swapped for loopback).
- deploy/tokengate.service: `systemd-analyze verify` without a warning, and
  `systemd-analyze security --offline` exposure at most 2.0.
- deploy/grafana/tokengate-dashboard.json: every series it queries exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import yaml

from conftest import BIN, ROOT, free_port

DEPLOY = ROOT / "deploy"


def need(tool: str) -> str:
    """The path of `tool`; missing, the test is skipped, or fails under CI (.ci/run installs it)."""
    path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def known_variables() -> set[str]:
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"env: (TOKENGATE_[A-Z0-9_]+)", help_text)) | {"TOKENGATE_LOG"}


def test_dockerfile_passes_hadolint():
    out = subprocess.run([need("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert re.search(r"^USER 65532", text, re.M)
    assert 'CMD ["/usr/local/bin/tokengate", "healthcheck"]' in text
    for var in re.findall(r"(TOKENGATE_[A-Z0-9_]+)=", text):
        assert var in known_variables(), var


def test_compose_file_has_two_instances_on_postgres_and_redis_behind_nginx():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "tokengate-1", "tokengate-2", "nginx"} <= set(services)
    known = known_variables()
    for name in ("tokengate-1", "tokengate-2"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / "Dockerfile").exists()
        env = svc["environment"]
        assert env["TOKENGATE_DATABASE_URL"].startswith("postgres://")
        assert env["TOKENGATE_REDIS_URL"].startswith("redis://")
        assert set(env) <= known, set(env) - known
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    for dep in ("postgres", "redis"):
        assert "healthcheck" in services[dep]
    # Safer defaults: Redis needs a password, only nginx's address is a trusted proxy.
    redis = services["redis"]
    assert "--requirepass" in redis["command"]
    env = services["tokengate-1"]["environment"]
    assert env["TOKENGATE_REDIS_URL"].startswith("redis://:${TOKENGATE_REDIS_PASSWORD")
    nginx_ip = services["nginx"]["networks"]["default"]["ipv4_address"]
    assert env["TOKENGATE_TRUSTED_PROXIES"] == f"{nginx_ip}/32"
    nginx = services["nginx"]
    mount = nginx["volumes"][0].split(":")[0]
    assert (DEPLOY / mount).resolve() == DEPLOY / "nginx.conf"
    assert nginx["depends_on"]["tokengate-2"]["condition"] == "service_healthy"


def test_nginx_config_is_valid_and_uses_forward_auth(tmp_path):
    nginx = need("nginx")
    conf = (DEPLOY / "nginx.conf").read_text()
    assert "auth_request /_tokengate_verify;" in conf
    assert "proxy_pass http://tokengate/auth/verify;" in conf
    # Compose's service names do not resolve here; nginx -t resolves upstream hosts.
    local = re.sub(r"server [a-z0-9-]+:(\d+);", r"server 127.0.0.1:\1;", conf)
    (tmp_path / "site.conf").write_text(local)
    (tmp_path / "nginx.conf").write_text(f"events {{}}\nhttp {{\n include {tmp_path}/site.conf;\n}}\n")
    out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    analyze = need("systemd-analyze")
    unit = (DEPLOY / "tokengate.service").read_text()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet="):
        assert setting in unit, setting
    # verify checks that ExecStart exists: point it at the binary built here.
    local = tmp_path / "tokengate.service"
    local.write_text(unit.replace("ExecStart=/usr/local/bin/tokengate", f"ExecStart={BIN}"))
    out = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    out = subprocess.run([analyze, "security", "--offline=true", str(local)], capture_output=True, text=True)
    exposure = re.search(r"Overall exposure level for tokengate.service: ([0-9.]+)", out.stdout + out.stderr)
    assert exposure and float(exposure.group(1)) <= 2.0, out.stdout[-400:]


def test_grafana_dashboard_queries_only_series_that_exist(tokengate):
    dashboard = json.loads((DEPLOY / "grafana" / "tokengate-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    tokengate.register("dash-user")
    tokengate.login("dash-user")
    scraped = tokengate.metrics().body.decode()
    families = set(re.findall(r"^# TYPE (tokengate_[a-z_]+) (\w+)", scraped, re.M))
    series = {name for name, _ in families}
    series |= {f"{name}_bucket" for name, kind in families if kind == "histogram"}
    # A family appears once it has a sample (store errors need a failure): the names
    # declared in src/metrics.rs count too.
    declared = set(re.findall(r'pub const [A-Z_]+: &str = "(tokengate_[a-z_]+)";', (ROOT / "src" / "metrics.rs").read_text()))
    assert {n for n, _ in families} <= declared, "every exported family is declared in src/metrics.rs"
    series |= declared | {f"{n}_bucket" for n in declared if n.endswith("_seconds")}
    events = set(re.findall(r'=> "([a-z_.]+)"', (ROOT / "src" / "events.rs").read_text()))
    process = set(re.findall(r"^# TYPE (process_[a-z_]+) ", scraped, re.M))
    for expr in exprs:
        for name in re.findall(r"\b(tokengate_[a-z_]+)\b", expr):
            assert name in series, f"{name} (in {expr}) is not exported"
        for name in re.findall(r"\b(process_[a-z_]+)\b", expr):
            assert name in process, f"{name} (in {expr}) is not exported"
    # A panel for each thing an operator alerts on.
    queried = " ".join(exprs)
    for name in ["tokengate_database_up", "tokengate_redis_up", "tokengate_session_cache_trusted",
                 "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
                 "process_cpu_seconds_total"]:
        assert name in queried, name
        for event in re.findall(r'event="([^"]+)"', expr):
            assert event in events, f"no auth event {event}"


class _Echo:
    """An app behind nginx that answers every request with the headers it received."""

    def __init__(self) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def _run_nginx(tmp_path: Path, server_block: str) -> subprocess.Popen:
    import time
    import urllib.request

    nginx = need("nginx")
    for d in ("body", "proxy", "logs"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        f"events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n"
        f" proxy_temp_path {tmp_path}/proxy;\n{server_block}\n}}\n"
    )
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port = re.search(r"listen 127\.0\.0\.1:(\d+);", server_block).group(1)
    deadline = time.time() + 10
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/app/", timeout=1)
        except urllib.error.HTTPError:
            return proc
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {proc.stderr.read() if proc.poll() is not None else ''}")
            time.sleep(0.1)
        else:
            return proc


def _forged_headers_never_reach_the_app(tokengate, nginx_port: int, path: str) -> None:
    import urllib.request

    tokengate.register("edge-user")
    access = tokengate.login("edge-user").json()["access_token"]
    forged = {
        "X-Auth-User-Id": "forged-user",
        "X-Auth-Username": "forged-name",
        "X-Auth-Roles": "admin",
        "X-Auth-Session-Id": "forged-session",
    }
    base = f"http://127.0.0.1:{nginx_port}"
    # Without a token: refused at the edge, whatever the client claims.
    req = urllib.request.Request(f"{base}{path}", headers=forged)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
    # With a token: the app sees tokengate's identity, never the forged one.
    req = urllib.request.Request(f"{base}{path}", headers={**forged, "Authorization": f"Bearer {access}"})
    with urllib.request.urlopen(req, timeout=10) as res:
        seen = json.loads(res.read())
    me = tokengate.request("GET", "/me", headers={"Authorization": f"Bearer {access}"}).json()
    assert seen["x-auth-user-id"] == me["id"]
    assert seen["x-auth-username"] == "edge-user"
    assert seen.get("x-auth-roles", "") == ""
    sid = seen["x-auth-session-id"]
    assert sid and sid != "forged-session", seen


def _through_nginx(tokengate, tmp_path, server_block) -> None:
    """Run nginx with `server_block` ({tg} and {app} for the ports of tokengate and an
    echo app, {port} for nginx's) and check what reaches the app at /app/."""
    echo = _Echo()
    port = free_port()
    tg_port = tokengate.base.rsplit(":", 1)[1]
    proc = _run_nginx(tmp_path, server_block(tg_port, echo.port, port))
    try:
        _forged_headers_never_reach_the_app(tokengate, port, "/app/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        echo.stop()


def test_deploy_nginx_conf_passes_only_tokengates_identity_headers(tokengate, tmp_path):
    """deploy/nginx.conf end to end: nginx 1.22, tokengate and an echo app."""
    def block(tg_port, app_port, port):
        conf = (DEPLOY / "nginx.conf").read_text()
        conf = re.sub(r"server tokengate-\d:8000;", f"server 127.0.0.1:{tg_port};", conf)
        conf = conf.replace("server app:80;", f"server 127.0.0.1:{app_port};")
        return conf.replace("listen 80;", f"listen 127.0.0.1:{port};")

    _through_nginx(tokengate, tmp_path, block)


def test_readme_nginx_snippet_passes_only_tokengates_identity_headers(tokengate, tmp_path):
    """The README's forward-auth snippet, as printed, end to end."""
    def block(tg_port, app_port, port):
        readme = (ROOT / "README.md").read_text()
        snippet = re.search(r"## Protecting any app behind nginx.*?```nginx\n(.*?)```", readme, re.S).group(1)
        snippet = snippet.replace("127.0.0.1:8000", f"127.0.0.1:{tg_port}")
        snippet = snippet.replace("127.0.0.1:9000", f"127.0.0.1:{app_port}")
        return f"server {{\n listen 127.0.0.1:{port};\n{snippet}\n}}"

    _through_nginx(tokengate, tmp_path, block)
