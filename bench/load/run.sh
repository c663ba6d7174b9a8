#!/usr/bin/env bash
# Load test: the release server on SQLite and on PostgreSQL, seeded with ORGS organizations of 20
# members and 7 resources each, driven from loopback by wrk at CONNECTIONS connections for
# DURATION: authorized reads alone, then a mix of reads, audited and webhook-emitting edits and
# logins; and, in the same run, a bare actix-web hello world as the baseline.
# Prints a Markdown report (requests/s, p50/p99, errors, server memory) to stdout.
#
#   bash bench/load/run.sh                       # ORGS=1000 CONNECTIONS=256 DURATION=60s
#   ORGS=100 DURATION=10s bash bench/load/run.sh # a quick look
#   AXIE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bash bench/load/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ORGS=${ORGS:-1000}
CONNECTIONS=${CONNECTIONS:-256}
DURATION=${DURATION:-60s}
THREADS=${THREADS:-2}
PG=${AXIE_TEST_POSTGRES_URL:-}

command -v wrk >/dev/null || {
  (apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }) \
    || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
}
cargo build -q --release -p axie-server --bin axie-server --example hello --example load_seed
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
# wrk's full outputs (latency distributions, error breakdown) are kept here.
keep=${CARGO_TARGET_DIR:-target}/load-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$keep"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
kib() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }
mib() { awk -v v="$1" 'BEGIN {printf "%.1f", v/1024}'; }

# One wrk run; prints "rps p50 p99 errors".
drive() {
  local url=$1 mode=$2 out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/load/mix.lua "$url" -- "$work/tokens.tsv" "$work/logins.tsv" "$mode")
  echo "$out" >"$keep/wrk-${label_now:-hello}-$mode.txt"
  local rps p50 p99 non2xx sock
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out")
  sock=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
  echo "$rps $p50 $p99 $(( ${non2xx:-0} + ${sock:-0} ))"
}

# Baseline: hello world.
hello_port=$(free_port)
"$target/examples/hello" "$hello_port" & pids+=($!)
wait_ready "http://127.0.0.1:$hello_port/"
printf 'x\tx\t\n' >"$work/tokens.tsv"; printf 'x\tx\n' >"$work/logins.tsv"
read -r h_rps h_p50 h_p99 h_err < <(drive "http://127.0.0.1:$hello_port" hello)

echo "# Load run $(date -u +%Y-%m-%dT%H:%MZ): $ORGS organizations × 20 members, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores"
echo
echo "| database | run | requests/s | vs hello world | p50 | p99 | errors | server RSS |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
echo "| — | hello world (bare actix-web) | $h_rps | 100 % | $h_p50 | $h_p99 | $h_err | |"

run_db() {
  local label=$1 url=$2 dir port pid idle
  label_now=$label
  dir=$(mktemp -d -p "$work")
  "$target/examples/load_seed" "$url" "$ORGS" "$work" 2>"$work/seed.log"
  port=$(free_port)
  AXIE_DATABASE__URL="$url" AXIE_SERVER__PORT=$port AXIE_SERVER__DATA_DIR="$dir" AXIE_LOG__LEVEL=error \
    AXIE_DATABASE__MAX_CONNECTIONS=16 AXIE_WEBHOOKS__ALLOW_CIDRS='["127.0.0.1/32"]' AXIE_WEBHOOKS__HTTPS_ONLY=false \
    AXIE_BOOTSTRAP__OWNER_PASSWORD="unused because the database is seeded" \
    "$target/axie-server" & pid=$!; pids+=($pid)
  wait_ready "http://127.0.0.1:$port/readyz"
  # A webhook endpoint (to the hello-world server) for a tenth of the organizations.
  awk -F'\t' '!seen[$1]++ && NR % 10 == 1 {print $1"\t"$2}' "$work/tokens.tsv" | while IFS=$'\t' read -r org token; do
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/orgs/$org/webhooks" -H "Authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"url\":\"http://127.0.0.1:$hello_port/hook\",\"events\":[\"chat_interface.updated\"]}" || true
  done
  sleep 3
  idle=$(kib "$pid" VmRSS)
  read -r r_rps r_p50 r_p99 r_err < <(drive "http://127.0.0.1:$port" reads)
  read -r m_rps m_p50 m_p99 m_err < <(drive "http://127.0.0.1:$port" mix)
  local peak ratio
  peak=$(kib "$pid" VmHWM)
  ratio=$(awk -v a="$r_rps" -v b="$h_rps" 'BEGIN {printf "%.1f %%", 100*a/b}')
  echo "| $label | authorized reads | $r_rps | $ratio | $r_p50 | $r_p99 | $r_err | idle $(mib "$idle") MiB |"
  echo "| $label | mix: 89 % reads, 10 % audited edits with webhooks, 1 % logins | $m_rps | | $m_p50 | $m_p99 | $m_err | peak $(mib "$peak") MiB |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "<!-- $label seeding: $(tail -1 "$work/seed.log"); wrk outputs in $keep -->"
}

run_db "SQLite" "sqlite://$work/load.db?mode=rwc"
if [ -n "$PG" ]; then
  db="load_$(date +%s)"
  psql "$PG" -qc "CREATE DATABASE $db" >/dev/null
  run_db "PostgreSQL" "${PG%/*}/$db"
  psql "$PG" -qc "DROP DATABASE $db" >/dev/null 2>&1 || true
else
  echo
  echo "PostgreSQL skipped: set AXIE_TEST_POSTGRES_URL."
fi
