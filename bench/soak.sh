#!/usr/bin/env bash
# Soak: a bounded mixed load against one tokengate (release, fresh SQLite file) for
# SOAK_SECONDS (default 300): logins, refresh chains, GET /me, and session lifecycles
# (log in, list, revoke, log in, log out), all at once. RSS (VmRSS) and open file
# descriptors are sampled every second; the script prints them per 30 s as a table, and
# the statuses of every load (non-2xx must be 0; the refresh chains must never break).
#   bench/soak.sh                  # 5 minutes
#   SOAK_SECONDS=60 bench/soak.sh
#   SOAK_PG_URL=postgres://postgres@127.0.0.1:5432/test bench/soak.sh   # state in PostgreSQL
#                                  # (a schema of its own, dropped after)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SOAK_SECONDS:-300}"
OUT=bench/out/soak
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
DIR=$(mktemp -d)
PORT=8140
BASE="http://127.0.0.1:$PORT"
DB_URL="sqlite://$DIR/t.db"
if [ -n "${SOAK_PG_URL:-}" ]; then
  SCHEMA="soak_$$"
  psql -q "$SOAK_PG_URL" -c "CREATE SCHEMA $SCHEMA"
  DB_URL="$SOAK_PG_URL?options[search_path]=$SCHEMA"
  export TOKENGATE_SECRET_KEY="$(head -c 32 /dev/urandom | base64 | tr -d '=+/')$(head -c 16 /dev/urandom | base64 | tr -d '=+/')"
fi
# The /me load reuses one access token for the whole run: it must outlive the run.
TOKENGATE_ACCESS_TTL="$((SECS + 600))s" \
TOKENGATE_LOG=warn TOKENGATE_BIND="127.0.0.1:$PORT" TOKENGATE_DATABASE_URL="$DB_URL" \
  TOKENGATE_LOGIN_RATE=1000000/1s TOKENGATE_REFRESH_RATE=1000000/1s TOKENGATE_REGISTER_RATE=1000000/1s \
  target/release/tokengate serve 2>"$OUT/server.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"; [ -z "${SCHEMA:-}" ] || psql -q "$SOAK_PG_URL" -c "DROP SCHEMA $SCHEMA CASCADE"' EXIT
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
PW=soak-password-1
reg() { curl -sf -X POST "$BASE/auth/register" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"$PW\"}" >/dev/null; }
token() { curl -sf -X POST "$BASE/auth/login" -d "username=$1&password=$PW" | sed -E "s/.*\"$2\":\"([^\"]+)\".*/\1/"; }
reg soak_me; reg soak_login
: > "$DIR/chains"; : > "$DIR/users"
# One token a line (a JSON body ends with a newline: the token is cut out of one).
for i in 1 2 3 4; do reg "soak_chain$i"; token "soak_chain$i" refresh_token | tr -d "\n" >> "$DIR/chains"; echo >> "$DIR/chains"; done
for i in 1 2; do reg "soak_life$i"; echo "soak_life$i" >> "$DIR/users"; done
ACCESS=$(token soak_me access_token)
# The peer's login.lua posts benchuser/benchpass123; this load logs in soak_login.
printf 'wrk.method="POST"\nwrk.body="username=soak_login&password=%s"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"\n' "$PW" > "$DIR/login.lua"

wrk -t1 -c2 -d"${SECS}s" -s "$DIR/login.lua" "$BASE/auth/login" > "$OUT/login.txt" &
BENCH_TOKENS="$DIR/chains" wrk -t4 -c4 -d"${SECS}s" -s bench/refresh.lua "$BASE/auth/refresh" > "$OUT/refresh.txt" &
wrk -t1 -c8 -d"${SECS}s" -H "Authorization: Bearer $ACCESS" "$BASE/me" > "$OUT/me.txt" &
BENCH_USERS="$DIR/users" BENCH_PASSWORD="$PW" wrk -t2 -c2 -d"${SECS}s" -s bench/lifecycle.lua "$BASE" > "$OUT/lifecycle.txt" &
: > "$OUT/samples.csv"
for s in $(seq "$SECS"); do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  fds=$(ls /proc/$PID/fd | wc -l)
  echo "$s,$rss,$fds" >> "$OUT/samples.csv"
  sleep 1
done
wait $(jobs -p | grep -v "^$PID$") 2>/dev/null || true
HWM=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
# Where the resident memory is at the end, by mapping: the binary, shared libraries,
# the database's files (the WAL index is mapped), thread stacks, and anonymous memory
# (the allocator's heaps and arenas, the hashing threads' buffers).
cp /proc/$PID/smaps "$OUT/smaps.txt"
THREADS=$(ls /proc/$PID/task | wc -l)

echo "| seconds | RSS min (MiB) | RSS max (MiB) | open fds max |"
echo "|---|---|---|---|"
awk -F, '{b=int(($1-1)/30); if(!(b in mn)||$2<mn[b])mn[b]=$2; if($2>mx[b])mx[b]=$2; if($3>fd[b])fd[b]=$3; n=b}
  END {for(i=0;i<=n;i++) printf "| %d-%d | %.1f | %.1f | %d |\n", i*30+1, (i+1)*30, mn[i]/1024, mx[i]/1024, fd[i]}' "$OUT/samples.csv"
echo "peak RSS (VmHWM): $((HWM / 1024)) MiB; threads at the end: $THREADS"
echo
echo "| resident at the end, by mapping | MiB | mappings |"
echo "|---|---|---|"
awk -v bin="$(readlink -f target/release/tokengate)" '
  /^[0-9a-f]+-[0-9a-f]+ / {
    path = (NF >= 6) ? $6 : ""
    if (path == bin) k = "the binary"
    else if (path ~ /\.so/) k = "shared libraries"
    else if (path ~ /\.db-shm$/) k = "the database WAL index (-shm)"
    else if (path ~ /\.db(-wal)?$/) k = "database file pages"
    else if (path == "[heap]") k = "main heap"
    else if (path == "[stack]") k = "main stack"
    else if (path == "") k = "anonymous (arenas, buffers, thread stacks)"
    else k = path
    n[k]++
  }
  /^Rss:/ { r[k] += $2 }
  END { for (k in r) if (r[k] > 0) printf "| %s | %.1f | %d |\n", k, r[k] / 1024, n[k] }' "$OUT/smaps.txt" | sort -t'|' -k3 -rn
echo
echo "| load | requests | req/s | non-2xx | socket errors |"
echo "|---|---|---|---|---|"
for l in login refresh me lifecycle; do
  f="$OUT/$l.txt"
  awk -v l="$l" '/requests in/ {n=$1} /Requests\/sec/ {r=$2} /Non-2xx/ {e=$5} /Socket errors/ {s=$0}
    END {printf "| %s | %s | %s | %s | %s |\n", l, n, r, (e==""?0:e), (s==""?"none":s)}' "$f"
done
