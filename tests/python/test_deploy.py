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
from pathlib import Path

import pytest
import yaml

from conftest import BIN, ROOT

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
    for expr in exprs:
        for name in re.findall(r"\b(tokengate_[a-z_]+)\b", expr):
            assert name in series, f"{name} (in {expr}) is not exported"
        for event in re.findall(r'event="([^"]+)"', expr):
            assert event in events, f"no auth event {event}"
