#!/usr/bin/env bash
# A quick look at the server under load, with a CPU profile: seeds ORGS organizations on SQLite
# (or on the PostgreSQL server at PG, in a new database dropped afterwards), starts the release
# server, drives it with wrk (MODE=reads: authorized reads only; MODE=mix: the load run's mix;
# C connections for D) while `perf record -g` samples it, and prints requests/s, p50/p99, the
# server's memory, its CPU time per request and its largest anonymous mappings (glibc's
# per-thread heaps show there).
# Needs perf and wrk; PERF=0 skips the profile; BIN=<path> runs another build of the server
# (an A/B comparison: copy the release binary aside, change the code, run both); METRICS=1 also
# prints, per route, how many requests the server itself took 1 s, 2.5 s and 5 s or longer on
# (from its /metrics histograms: time inside the server, not waiting to be read). Read it with
#   perf report -i target/profile.perf.data --no-children --sort comm,symbol
#
#   bash bench/load/profile.sh                 # ORGS=200 C=256 D=20s MODE=reads, SQLite
#   PG=postgres://postgres@127.0.0.1:5432/test MODE=mix PERF=0 bash bench/load/profile.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ORGS=${ORGS:-200}
C=${C:-256}
D=${D:-20s}
MODE=${MODE:-reads}
PG=${PG:-}
out=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$out/release/axie-server}
cargo build -q --release -p axie-server --bin axie-server --example load_seed
work=$(mktemp -d)
pid=
db=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$db" ]; then psql "$PG" -qc "DROP DATABASE $db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
url="sqlite://$work/load.db?mode=rwc"
if [ -n "$PG" ]; then
  db="profile_$(date +%s)"
  psql "$PG" -qc "CREATE DATABASE $db" >/dev/null
  url="${PG%/*}/$db"
fi
"$out/release/examples/load_seed" "$url" "$ORGS" "$work" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
AXIE_METRICS__TOKEN="$metrics_token" \
AXIE_DATABASE__URL="$url" AXIE_SERVER__PORT=$port AXIE_SERVER__DATA_DIR="$work" \
  AXIE_LOG__LEVEL=error AXIE_DATABASE__MAX_CONNECTIONS=${POOL:-16} \
  AXIE_BOOTSTRAP__OWNER_PASSWORD="unused because the database is seeded" \
  "$BIN" & pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
echo "idle: $(grep VmRSS "/proc/$pid/status")"
if [ "${PERF:-1}" = 1 ]; then
  perf record -F 499 -g -p "$pid" -o "$out/profile.perf.data" -- sleep "${D%s}" >/dev/null 2>&1 &
  perfpid=$!
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
cpu0=$(cpu_ticks)
wrk -t2 -c"$C" -d"$D" --latency -s bench/load/mix.lua "http://127.0.0.1:$port" -- "$work/tokens.tsv" "$work/logins.tsv" "$MODE" \
  > "$work/wrk.out"
cpu1=$(cpu_ticks)
grep -E "Requests/sec|50%|99%|Non-2xx|Socket" "$work/wrk.out"
# The server's CPU time per request (user + system), steadier than requests/s on a shared machine.
requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
  'BEGIN {printf "server CPU: %.1f s, %.0f µs per request\n", t / hz, t / hz * 1e6 / n}'
if [ "${PERF:-1}" = 1 ]; then wait "$perfpid" || true; echo "profile: $out/profile.perf.data"; fi
if [ "${METRICS:-0}" = 1 ]; then
  echo "requests by route: count, and how many took at least 1 s / 2.5 s / 5 s inside the server:"
  curl -sf -H "Authorization: Bearer $metrics_token" "http://127.0.0.1:$port/metrics" | awk '
    /^axie_http_request_duration_seconds_(bucket|count)/ {
      match($0, /route="[^"]*"/); route = substr($0, RSTART + 7, RLENGTH - 8)
      match($0, /method="[^"]*"/); key = substr($0, RSTART + 8, RLENGTH - 9) " " route
      n = $NF
      if ($0 ~ /_count/) count[key] = n
      else if ($0 ~ /le="1"/) b1[key] = n
      else if ($0 ~ /le="2.5"/) b25[key] = n
      else if ($0 ~ /le="5"/) b5[key] = n
    }
    END { for (k in count) printf "  %s: %d, %d / %d / %d\n", k, count[k], count[k] - b1[k], count[k] - b25[k], count[k] - b5[k] }' | sort
fi
echo "peak: $(grep VmHWM "/proc/$pid/status")"
echo "now: $(grep VmRSS "/proc/$pid/status")"
echo "largest anonymous mappings (resident KiB, size KiB):"
awk '/^[0-9a-f]+-[0-9a-f]+ / {anon = ($6 == "" || $6 ~ /heap/)} /^Size:/ {size=$2} /^Rss:/ && anon {print $2, size}' \
  "/proc/$pid/smaps" | sort -rn | head -12
