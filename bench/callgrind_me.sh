#!/usr/bin/env bash
# User-space instructions per `GET /me`, counted by callgrind: unlike req/s, the count
# is the same from run to run whatever else the machine is doing, so it shows what a
# change to the request path buys. tokengate (and the HTTP floor, bench/floor) run
# under valgrind; after 500 requests to warm up, the counters are zeroed, N requests
# are sent one at a time over one connection, and the counters are dumped.
#   bench/callgrind_me.sh                 # tokengate's release build and the floor
#   CG_REQUESTS=5000 bench/callgrind_me.sh
#   CG_BINARY=/path/to/tokengate bench/callgrind_me.sh   # another build (A/B)
# For a per-function breakdown, build with CARGO_PROFILE_RELEASE_STRIP=false and run
# `callgrind_annotate --inclusive=yes` on the file it names.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N="${CG_REQUESTS:-3000}"
PORT=8105
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "installing valgrind (Debian package)"; apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
if [ -z "${CG_BINARY:-}" ]; then
  cargo build --release -q
  CG_BINARY="$ROOT/target/release/tokengate"
fi
cargo build --release -q --manifest-path bench/floor/Cargo.toml --target-dir "$ROOT/target/floor"
WORK=$(mktemp -d)
trap 'kill "${VG_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_up() {
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.2; done
  echo "the server under valgrind did not come up" >&2; return 1
}

# measure NAME: the server is up as VG_PID; prints instructions per request
measure() {
  python3 bench/me_requests.py 500 "$PORT" "$WORK/token"
  callgrind_control -z "$VG_PID" >/dev/null 2>&1
  python3 bench/me_requests.py "$N" "$PORT" "$WORK/token"
  callgrind_control -d "$VG_PID" >/dev/null 2>&1
  sleep 1
  kill "$VG_PID"; wait "$VG_PID" 2>/dev/null || true
  local dump total
  dump=$(ls -t "$OUT/callgrind-$1".*.out.* | head -1)
  total=$(awk '/^summary:/ {print $2; exit}' "$dump")
  echo "$1: $total instructions over $N requests = $((total / N)) per GET /me ($dump)"
}

rm -f "$OUT"/callgrind-*.out*
# tokengate, cheap argon2 (valgrind is ~50x slower and the login is not measured).
TOKENGATE_LOG=warn TOKENGATE_BIND=127.0.0.1:$PORT TOKENGATE_DATABASE_URL="sqlite://$WORK/t.db" \
  TOKENGATE_ARGON2_MEMORY_KIB=1024 TOKENGATE_ARGON2_ITERATIONS=1 \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-tokengate.%p.out" \
  "$CG_BINARY" serve 2>"$WORK/tokengate.log" &
VG_PID=$!
wait_up
curl -sf -X POST "http://127.0.0.1:$PORT/auth/register" -H 'Content-Type: application/json' \
  -d '{"username":"benchuser","email":"bench@example.com","password":"benchpass123"}' >/dev/null
curl -sf -X POST "http://127.0.0.1:$PORT/auth/login" -d 'username=benchuser&password=benchpass123' \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/' > "$WORK/token"
measure tokengate

valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-floor.%p.out" \
  target/floor/release/tokengate-bench-floor "127.0.0.1:$PORT" 2>"$WORK/floor.log" &
VG_PID=$!
wait_up
measure floor
