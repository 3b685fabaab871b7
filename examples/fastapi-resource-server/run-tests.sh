#!/usr/bin/env bash
# Create (once) a venv with the pinned requirements, then run the pytest suite against
# the tokengate binary (TOKENGATE_BIN, default ../../target/debug/tokengate).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
if [ ! -f "$stamp" ] || ! sha256sum -c --status "$stamp" 2>/dev/null; then
  "$VENV/bin/pip" install -q -r requirements.txt
  sha256sum requirements.txt > "$stamp"
fi
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider test_resource_server.py test_hs256_snippets.py "$@"
