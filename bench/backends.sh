#!/usr/bin/env bash
# tokengate under the same wrk load on each backend, one at a time: SQLite; PostgreSQL +
# Redis with one instance; two instances on one PostgreSQL + Redis sharing the load (two
# wrk processes at once, one per instance, req/s summed). Refresh: 32 rotation chains
# (BENCH_CHAINS), one connection each. Prints a markdown table
# (raw wrk output in bench/out/backends-*).
#   bench/backends.sh                        # 10 s per scenario
#   BENCH_PG_URL=postgres://... BENCH_REDIS_URL=redis://... BENCH_DURATION=30s bench/backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${BENCH_DURATION:-10s}"
PG="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
OUT="$PWD/bench/out"
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
SCHEMA="tg_bench_$$"
psql "$PG" -qc "CREATE SCHEMA $SCHEMA" >/dev/null
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_up() { for _ in $(seq 300); do curl -sf "$1/healthz" >/dev/null && return 0; sleep 0.1; done; return 1; }

start() { # PORT DATABASE_URL [REDIS_URL]
  TOKENGATE_LOG=warn TOKENGATE_BIND="127.0.0.1:$1" TOKENGATE_DATABASE_URL="$2" \
    TOKENGATE_REDIS_URL="${3:-}" TOKENGATE_REDIS_PREFIX="bench-$$:" TOKENGATE_SECRET_KEY="$SECRET" \
    TOKENGATE_LOGIN_RATE=1000000/1s TOKENGATE_REFRESH_RATE=1000000/1s TOKENGATE_REGISTER_RATE=1000000/1s \
    target/release/tokengate serve 2>>"$OUT/backends-tokengate.log" &
  PIDS+=($!)
  wait_up "http://127.0.0.1:$1"
}

stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

login() { curl -sf -X POST "$1/auth/login" -d 'username=benchuser&password=benchpass123'; }

CHAINS="${BENCH_CHAINS:-32}"

prepare() { # BASE NAME: a user, an access token, $CHAINS refresh chains
  curl -sf -X POST "$1/auth/register" -H 'Content-Type: application/json' \
    -d '{"username":"benchuser","email":"bench@example.com","password":"benchpass123"}' >/dev/null || true
  ACCESS=$(login "$1" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  : > "$OUT/backends-$2-tokens.txt"
  for _ in $(seq "$CHAINS"); do
    { login "$1" | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/'; echo; } >> "$OUT/backends-$2-tokens.txt"
  done
}

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '/^ +99%/ {print $2}' "$1"; }

one() { # NAME BASE
  prepare "$2" "$1"
  wrk -t2 -c32 -d"$DUR" --latency -H "Authorization: Bearer $ACCESS" "$2/me" > "$OUT/backends-$1-me.txt"
  BENCH_TOKENS="$OUT/backends-$1-tokens.txt" wrk -t"$CHAINS" -c"$CHAINS" -d"$DUR" --latency -s bench/refresh.lua \
    "$2/auth/refresh" > "$OUT/backends-$1-refresh.txt"
}

# SQLite
DIR=$(mktemp -d)
start 8200 "sqlite://$DIR/tokengate.db"
one sqlite http://127.0.0.1:8200
stop_all; rm -rf "$DIR"

# PostgreSQL + Redis, one instance
start 8201 "$PG?options[search_path]=$SCHEMA" "$REDIS"
one pg_redis http://127.0.0.1:8201

# ... and a second instance on the same database, both under load at once
start 8202 "$PG?options[search_path]=$SCHEMA" "$REDIS"
prepare http://127.0.0.1:8202 pg_redis_b
wrk -t1 -c16 -d"$DUR" --latency -H "Authorization: Bearer $ACCESS" http://127.0.0.1:8201/me > "$OUT/backends-two-me-a.txt" &
W=$!
wrk -t1 -c16 -d"$DUR" --latency -H "Authorization: Bearer $ACCESS" http://127.0.0.1:8202/me > "$OUT/backends-two-me-b.txt"
wait $W
stop_all

{
  echo "| scenario | backend | req/s | p99 |"
  echo "|---|---|---|---|"
  for s in me refresh; do
    for b in sqlite pg_redis; do
      echo "| $s | $b | $(rps "$OUT/backends-$b-$s.txt") | $(p99 "$OUT/backends-$b-$s.txt") |"
    done
  done
  a=$(rps "$OUT/backends-two-me-a.txt"); b=$(rps "$OUT/backends-two-me-b.txt")
  awk -v a="$a" -v b="$b" 'BEGIN {printf "| me | pg_redis, two instances (summed) | %.2f | |\n", a + b}'
  s=$(rps "$OUT/backends-sqlite-me.txt"); p=$(rps "$OUT/backends-pg_redis-me.txt")
  awk -v s="$s" -v p="$p" 'BEGIN {printf "ratio me: pg_redis/sqlite = %.2f\n", p / s}'
} | tee "$OUT/backends.md"
