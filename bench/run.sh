#!/usr/bin/env bash
# Load benchmark: the same wrk load against tokengate and the fastapi_seed peer, one at
# a time, on this machine, plus the two physical yardsticks: the HTTP floor (a bare axum
# hello-world, bench/floor, under the same wrk settings as `me`) and the argon2 bound
# (cores / one hash's time, `cargo bench --bench argon2_bound`). Prints a markdown
# table with the ratios (also saved in bench/out/).
#   bench/run.sh            # 10 s per scenario
#   BENCH_DURATION=30s bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DUR="${BENCH_DURATION:-10s}"
# The peer: a checkout of the FastAPI service the tutorials build (its own README says
# how it starts); not part of this repository.
PEER_DIR="${PEER_DIR:?set PEER_DIR to a checkout of the FastAPI tutorial service to compare with}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q
cargo build --release -q --manifest-path bench/floor/Cargo.toml --target-dir "$ROOT/target/floor"
BOUND_LINE=$(cargo bench -q --bench argon2_bound 2>/dev/null | grep bound_per_s)
BOUND=$(sed -E 's/.*bound_per_s=([0-9.]+).*/\1/' <<<"$BOUND_LINE")
ALL_CORES=$(sed -E 's/.*all_cores_per_s=([0-9.]+).*/\1/' <<<"$BOUND_LINE")
JWT_LINES=$(cargo bench -q --bench jwt_algorithms 2>/dev/null | grep '^alg=')
declare -A MINTED

wait_up() { # URL
  for _ in $(seq 300); do curl -sf "$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; return 1
}

# wrk output -> "req/s p50 p99 errors"
summarise() {
  awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /Non-2xx/ {err=$5}
    /Socket errors/ {serr=$0}
    END {printf "%s %s %s %s\n", rps, p50, p99, (err==""?0:err)}' "$1"
}

scenarios() { # NAME BASE
  local name=$1 base=$2
  curl -sf -X POST "$base/auth/register" -H 'Content-Type: application/json' \
    -d '{"username":"benchuser","email":"bench@example.com","password":"benchpass123"}' >/dev/null
  login() { curl -sf -X POST "$base/auth/login" -d 'username=benchuser&password=benchpass123'; }
  local access
  access=$(login | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

  wrk -t2 -c32 -d"$DUR" --latency -H "Authorization: Bearer $access" "$base/me" > "$OUT/$name-me.txt"
  # The same load as /me under the login storm below, without the storm: its baseline.
  wrk -t1 -c16 -d"$DUR" --latency -H "Authorization: Bearer $access" "$base/me" > "$OUT/$name-me_c16.txt"
  wrk -t2 -c8 -d"$DUR" --latency -s bench/login.lua "$base/auth/login" > "$OUT/$name-login.txt"
  # /me while a login storm runs: does password hashing starve token checks?
  wrk -t1 -c8 -d"$DUR" -s bench/login.lua "$base/auth/login" > "$OUT/$name-storm-login.txt" &
  local storm=$!
  wrk -t1 -c16 -d"$DUR" --latency -H "Authorization: Bearer $access" "$base/me" > "$OUT/$name-me_under_login_storm.txt"
  wait $storm
  : > "$OUT/$name-tokens.txt"
  for _ in 1 2 3 4; do
    { login | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' | tr -d '\n'; echo; } >> "$OUT/$name-tokens.txt"
  done
  BENCH_TOKENS="$OUT/$name-tokens.txt" wrk -t4 -c4 -d"$DUR" --latency -s bench/refresh.lua \
    "$base/auth/refresh" > "$OUT/$name-refresh.txt"
  # 32 chains at once (one connection each): the writer under contention.
  : > "$OUT/$name-tokens32.txt"
  for _ in $(seq 32); do
    { login | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' | tr -d '\n'; echo; } >> "$OUT/$name-tokens32.txt"
  done
  BENCH_TOKENS="$OUT/$name-tokens32.txt" wrk -t32 -c32 -d"$DUR" --latency -s bench/refresh.lua \
    "$base/auth/refresh" > "$OUT/$name-refresh_c32.txt"
}

# --- the HTTP floor: a bare axum hello-world, same wrk settings as `me`. Run before
# tokengate and again after the peer (A B ... B A), and averaged: this machine drifts.
floor_run() { # OUTFILE
  target/floor/release/tokengate-bench-floor 127.0.0.1:8102 &
  FLOOR_PID=$!
  wait_up http://127.0.0.1:8102
  wrk -t2 -c32 -d"$DUR" --latency http://127.0.0.1:8102/me > "$1"
  kill $FLOOR_PID; wait $FLOOR_PID 2>/dev/null || true
}
floor_run "$OUT/floor-me-1.txt"

# --- tokengate (release build, fresh SQLite file, default argon2id cost)
TG_DIR=$(mktemp -d)
TOKENGATE_LOG=warn TOKENGATE_BIND=127.0.0.1:8100 \
  TOKENGATE_DATABASE_URL="sqlite://$TG_DIR/tokengate.db" \
  TOKENGATE_LOGIN_RATE=1000000/1s TOKENGATE_REFRESH_RATE=1000000/1s \
  target/release/tokengate serve 2>"$OUT/tokengate.log" &
TG_PID=$!
trap 'kill $TG_PID 2>/dev/null || true' EXIT
wait_up http://127.0.0.1:8100
scenarios tokengate http://127.0.0.1:8100
TG_RSS=$(awk '/VmHWM/ {print $2}' /proc/$TG_PID/status)
kill $TG_PID; wait $TG_PID 2>/dev/null || true
rm -rf "$TG_DIR"

# --- tokengate again, login only, with the peer's argon2 cost (argon2-cffi defaults:
# m=64 MiB, t=3, p=4), so the login figures compare the servers rather than the cost.
TG_DIR=$(mktemp -d)
TOKENGATE_LOG=warn TOKENGATE_BIND=127.0.0.1:8100 \
  TOKENGATE_DATABASE_URL="sqlite://$TG_DIR/tokengate.db" \
  TOKENGATE_ARGON2_MEMORY_KIB=65536 TOKENGATE_ARGON2_ITERATIONS=3 TOKENGATE_ARGON2_PARALLELISM=4 \
  TOKENGATE_LOGIN_RATE=1000000/1s target/release/tokengate serve 2>>"$OUT/tokengate.log" &
TG_PID=$!
wait_up http://127.0.0.1:8100
curl -sf -X POST http://127.0.0.1:8100/auth/register -H 'Content-Type: application/json' \
  -d '{"username":"benchuser","email":"bench@example.com","password":"benchpass123"}' >/dev/null
wrk -t2 -c8 -d"$DUR" --latency -s bench/login.lua http://127.0.0.1:8100/auth/login > "$OUT/tokengate-login_peer_cost.txt"
kill $TG_PID; wait $TG_PID 2>/dev/null || true
rm -rf "$TG_DIR"

# --- tokengate, GET /me per signing algorithm: the same token on every request (served
# by the verified-token memo after the first), and a different token on every request
# (each a first verification: parse + signature check), tokens minted by refresh chains.
for ALG in HS256 EdDSA ES256 RS256; do
  TG_DIR=$(mktemp -d)
  TOKENGATE_LOG=warn TOKENGATE_BIND=127.0.0.1:8100 TOKENGATE_ALGORITHM=$ALG \
    TOKENGATE_DATABASE_URL="sqlite://$TG_DIR/tokengate.db" \
    TOKENGATE_LOGIN_RATE=1000000/1s TOKENGATE_REFRESH_RATE=1000000/1s \
    target/release/tokengate serve 2>>"$OUT/tokengate.log" &
  TG_PID=$!
  wait_up http://127.0.0.1:8100
  curl -sf -X POST http://127.0.0.1:8100/auth/register -H 'Content-Type: application/json' \
    -d '{"username":"benchuser","email":"bench@example.com","password":"benchpass123"}' >/dev/null
  : > "$TG_DIR/chains.txt"
  for _ in 1 2 3 4; do
    curl -sf -X POST http://127.0.0.1:8100/auth/login -d 'username=benchuser&password=benchpass123' \
      | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' | tr -d '\n' >> "$TG_DIR/chains.txt"
    echo >> "$TG_DIR/chains.txt"
  done
  : > "$TG_DIR/minted.txt"
  BENCH_TOKENS="$TG_DIR/chains.txt" BENCH_MINTED="$TG_DIR/minted.txt" \
    wrk -t4 -c4 -d4s -s bench/mint.lua http://127.0.0.1:8100/auth/refresh > /dev/null
  access=$(tail -1 "$TG_DIR/minted.txt")
  wrk -t2 -c32 -d"$DUR" --latency -H "Authorization: Bearer $access" http://127.0.0.1:8100/me \
    > "$OUT/tokengate-me_$ALG.txt"
  MINTED[$ALG]=$(wc -l < "$TG_DIR/minted.txt")
  BENCH_MINTED="$TG_DIR/minted.txt" wrk -t2 -c32 -d"$DUR" --latency -s bench/me_fresh.lua \
    http://127.0.0.1:8100/me > "$OUT/tokengate-me_fresh_$ALG.txt"
  kill $TG_PID; wait $TG_PID 2>/dev/null || true
  rm -rf "$TG_DIR"
done

# --- the peer: FastAPI + uvicorn (2 workers), SQLite + Redis
PEER_RESET_DB=1 "$PEER_DIR/run.sh" 8101 2 > "$OUT/peer.log" 2>&1 &
PEER_PID=$!
trap 'kill $PEER_PID 2>/dev/null || true' EXIT
wait_up http://127.0.0.1:8101
scenarios fastapi_seed http://127.0.0.1:8101
kill $PEER_PID; wait $PEER_PID 2>/dev/null || true
floor_run "$OUT/floor-me-2.txt"
# The floor's figure: the mean of the two runs (latencies from the first).
awk '/Requests\/sec/ {sum += $2; n++} END {printf "Requests/sec: %.2f\n", sum / n}' \
  "$OUT/floor-me-1.txt" "$OUT/floor-me-2.txt" > "$OUT/floor-me.txt"
grep -E '^ +(50|99)%' "$OUT/floor-me-1.txt" >> "$OUT/floor-me.txt"

{
  echo "| scenario | server | req/s | p50 | p99 | non-2xx |"
  echo "|---|---|---|---|---|---|"
  read -r rps p50 p99 err < <(summarise "$OUT/floor-me.txt")
  echo "| me (HTTP floor: bare axum, mean of a run before and after) | floor | $rps | $p50 | $p99 | $err |"
  for s in me me_c16 login refresh refresh_c32 me_under_login_storm; do
    for n in tokengate fastapi_seed; do
      read -r rps p50 p99 err < <(summarise "$OUT/$n-$s.txt")
      echo "| $s | $n | $rps | $p50 | $p99 | $err |"
    done
  done
  read -r rps p50 p99 err < <(summarise "$OUT/tokengate-login_peer_cost.txt")
  echo "| login (peer's argon2 cost) | tokengate | $rps | $p50 | $p99 | $err |"
  for ALG in HS256 EdDSA ES256 RS256; do
    read -r rps p50 p99 err < <(summarise "$OUT/tokengate-me_$ALG.txt")
    echo "| me ($ALG, same token) | tokengate | $rps | $p50 | $p99 | $err |"
    read -r rps p50 p99 err < <(summarise "$OUT/tokengate-me_fresh_$ALG.txt")
    echo "| me ($ALG, a new token each request, ${MINTED[$ALG]} cycled) | tokengate | $rps | $p50 | $p99 | $err |"
  done
  for s in me login refresh refresh_c32 me_under_login_storm; do
    a=$(summarise "$OUT/tokengate-$s.txt" | cut -d' ' -f1)
    b=$(summarise "$OUT/fastapi_seed-$s.txt" | cut -d' ' -f1)
    awk -v s="$s" -v a="$a" -v b="$b" 'BEGIN {printf "ratio %s: tokengate/fastapi_seed = %.1fx\n", s, a/b}'
  done
  echo "tokengate peak RSS (VmHWM, after me, login, storm, refresh): ${TG_RSS} KiB ($((TG_RSS / 1024)) MiB)"
  me=$(summarise "$OUT/tokengate-me.txt" | cut -d' ' -f1)
  floor=$(summarise "$OUT/floor-me.txt" | cut -d' ' -f1)
  login=$(summarise "$OUT/tokengate-login.txt" | cut -d' ' -f1)
  awk -v a="$me" -v b="$floor" 'BEGIN {printf "ratio me/floor = %.2f\n", a/b}'
  hs=$(summarise "$OUT/tokengate-me_fresh_HS256.txt" | cut -d' ' -f1)
  for ALG in EdDSA ES256 RS256; do
    a=$(summarise "$OUT/tokengate-me_fresh_$ALG.txt" | cut -d' ' -f1)
    awk -v s="$ALG" -v a="$a" -v b="$hs" 'BEGIN {printf "ratio me %s/HS256, a new token each request = %.2f\n", s, a/b}'
  done
  echo "signing and first verification (cargo bench --bench jwt_algorithms):"
  echo "$JWT_LINES"
  echo "argon2 bound: $BOUND_LINE"
  awk -v a="$login" -v b="$BOUND" 'BEGIN {printf "ratio login/bound = %.2f\n", a/b}'
  # What every core hashing at once achieves here (the hashes share the memory bus).
  awk -v a="$login" -v b="$ALL_CORES" 'BEGIN {printf "ratio login/(every core hashing at once) = %.2f\n", a/b}'
  p99_ms() { awk '/^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$1"; }
  quiet=$(p99_ms "$OUT/tokengate-me_c16.txt")
  storm=$(p99_ms "$OUT/tokengate-me_under_login_storm.txt")
  awk -v a="$storm" -v b="$quiet" 'BEGIN {printf "ratio me p99 under login storm / unloaded (same -t1 -c16) = %.2f (%.2f ms / %.2f ms)\n", a/b, a, b}'
} | tee "$OUT/results.md"
