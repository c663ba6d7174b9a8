#!/usr/bin/env bash
# A quick look at the server under the read load, with a CPU profile: seeds ORGS organizations
# on SQLite, starts the release server, drives it with wrk (authorized reads only, C connections
# for D) while `perf record -g` samples it, and prints requests/s, p50/p99 and the server's memory.
# Needs perf and wrk; PERF=0 skips the profile. Read it with
#   perf report -i target/profile.perf.data --no-children --sort comm,symbol
#
#   bash bench/load/profile.sh                 # ORGS=200 C=256 D=20s
set -euo pipefail
cd "$(dirname "$0")/../.."
ORGS=${ORGS:-200}
C=${C:-256}
D=${D:-20s}
out=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p axie-server --bin axie-server --example load_seed
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$out/release/examples/load_seed" "sqlite://$work/load.db?mode=rwc" "$ORGS" "$work" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AXIE_DATABASE__URL="sqlite://$work/load.db?mode=rwc" AXIE_SERVER__PORT=$port AXIE_SERVER__DATA_DIR="$work" \
  AXIE_LOG__LEVEL=error AXIE_DATABASE__MAX_CONNECTIONS=16 \
  AXIE_BOOTSTRAP__OWNER_PASSWORD="unused because the database is seeded" \
  "$out/release/axie-server" & pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
printf 'x\tx\n' >"$work/logins.tsv"
echo "idle: $(grep VmRSS "/proc/$pid/status")"
if [ "${PERF:-1}" = 1 ]; then
  perf record -F 499 -g -p "$pid" -o "$out/profile.perf.data" -- sleep "${D%s}" >/dev/null 2>&1 &
  perfpid=$!
fi
wrk -t2 -c"$C" -d"$D" --latency -s bench/load/mix.lua "http://127.0.0.1:$port" -- "$work/tokens.tsv" "$work/logins.tsv" reads |
  grep -E "Requests/sec|50%|99%|Non-2xx|Socket"
if [ "${PERF:-1}" = 1 ]; then wait "$perfpid" || true; echo "profile: $out/profile.perf.data"; fi
echo "peak: $(grep VmHWM "/proc/$pid/status")"
