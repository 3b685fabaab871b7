#!/usr/bin/env bash
# Limiter memory: rounds of failed logins, each with a new username and a new
# X-Forwarded-For address from a trusted proxy (so every one is a new limiter key per
# username and per client network), and tokengate's RSS after each round. The
# in-memory limiter keeps at most 100,000 keys per limit, so memory grows with the keys
# up to that bound and then stays flat.
#   bench/limiter_memory.sh               # 6 rounds of 25,000
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-6}"
PER_ROUND="${PER_ROUND:-25000}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
DIR=$(mktemp -d)
PORT=8142
# The cheapest argon2 cost: this measures the limiters, not hashing.
TOKENGATE_LOG=error TOKENGATE_BIND="127.0.0.1:$PORT" TOKENGATE_DATABASE_URL="sqlite://$DIR/t.db" \
  TOKENGATE_TRUSTED_PROXIES=127.0.0.1 TOKENGATE_ARGON2_MEMORY_KIB=8 TOKENGATE_ARGON2_ITERATIONS=1 \
  TOKENGATE_LOGIN_RATE=1000000/1s target/release/tokengate serve &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
echo "| after | distinct usernames and addresses | RSS (MiB) |"
echo "|---|---|---|"
echo "| start | 0 | $(( $(rss) / 1024 )) |"
for r in $(seq "$ROUNDS"); do
  BENCH_COUNT=$((PER_ROUND / 2)) BENCH_ROUND=$r wrk -t2 -c2 -d600s -s bench/distinct_logins.lua \
    "http://127.0.0.1:$PORT/auth/login" > /dev/null
  echo "| round $r | $((r * PER_ROUND)) | $(( $(rss) / 1024 )) |"
done
echo "peak RSS (VmHWM): $(( $(awk '/VmHWM/ {print $2}' /proc/$PID/status) / 1024 )) MiB"
