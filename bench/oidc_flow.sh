#!/usr/bin/env bash
# The provider against the oidc-provider peer (panva's, OpenID Certified): the same
# signed-in code + PKCE flow (authorize with a live browser session and a remembered
# grant -> code -> token -> id_token verified against the JWKS), driven N times in a row
# by one Rust client (bench/oidc_flow), first against tokengate (release build, SQLite),
# then against the peer. Prints both rates, their ratio and each leg's mean time.
#   PEER_DIR=/path/to/oidc_provider bench/oidc_flow.sh          # N=2000
#   OIDC_FLOWS=5000 PEER_DIR=... bench/oidc_flow.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N="${OIDC_FLOWS:-2000}"
# The peer: a checkout of the oidc-provider setup (its run.sh installs and starts it);
# not part of this repository.
PEER_DIR="${PEER_DIR:?set PEER_DIR to the oidc-provider peer folder (its run.sh starts it)}"
TG_PORT=8611
PEER_PORT=8601
cargo build --release -q
cargo build --release -q --manifest-path bench/oidc_flow/Cargo.toml --target-dir "$ROOT/target/oidc_flow"
DRIVER="$ROOT/target/oidc_flow/release/tokengate-bench-oidc-flow"
WORK=$(mktemp -d)
trap 'kill ${TG_PID:-} ${PEER_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_up() { # URL
  for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; return 1
}

cd "$WORK"
export TOKENGATE_BIND=127.0.0.1:$TG_PORT TOKENGATE_COOKIE_SECURE=false TOKENGATE_LOG=warn \
  TOKENGATE_REFRESH_RATE=1000000/1m TOKENGATE_LOGIN_RATE=1000000/1m
"$ROOT/target/release/tokengate" migrate >/dev/null
CLIENT_ID=$("$ROOT/target/release/tokengate" client create --name Bench --redirect-uri http://127.0.0.1:9/cb \
  --scope openid --scope profile --public --trusted | sed -n 's/^client_id: //p')
"$ROOT/target/release/tokengate" serve & TG_PID=$!
wait_up "http://127.0.0.1:$TG_PORT/healthz"
curl -sf -X POST "http://127.0.0.1:$TG_PORT/auth/register" -H 'Content-Type: application/json' \
  -d '{"username":"benchuser","email":"bench@example.com","password":"benchpass123"}' >/dev/null
TG_LINE=$("$DRIVER" tokengate "http://127.0.0.1:$TG_PORT" "$CLIENT_ID" benchuser benchpass123 "$N")
kill $TG_PID; wait $TG_PID 2>/dev/null || true; TG_PID=

"$PEER_DIR/run.sh" $PEER_PORT >"$WORK/peer.log" 2>&1 & PEER_PID=$!
wait_up "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration"
PEER_LINE=$("$DRIVER" peer "http://127.0.0.1:$PEER_PORT" "$N")
kill $PEER_PID; wait $PEER_PID 2>/dev/null || true; PEER_PID=

rate() { sed -E 's/^([0-9.]+) flows.*/\1/' <<<"$1"; }
echo "tokengate: $TG_LINE"
echo "peer:      $PEER_LINE"
awk -v a="$(rate "$TG_LINE")" -v b="$(rate "$PEER_LINE")" 'BEGIN { printf "ratio tokengate/peer: %.1fx\n", a / b }'
