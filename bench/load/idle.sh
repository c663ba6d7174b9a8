#!/usr/bin/env bash
# Where the idle release server's memory goes: seeds ORGS organizations on SQLite, starts the
# server, waits WAIT seconds after /readyz, and prints its resident memory split into the pages
# of its own binary (file-backed) and anonymous memory, with the largest mappings.
# BIN=<path> measures another build (an A/B: copy the release binary aside, change, run both).
#
#   bash bench/load/idle.sh
#   ORGS=1000 BIN=/tmp/axie-server.before bash bench/load/idle.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ORGS=${ORGS:-1000}
out=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$out/release/axie-server}
cargo build -q --release -p axie-server --bin axie-server --example load_seed
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$out/release/examples/load_seed" "sqlite://$work/load.db?mode=rwc" "$ORGS" "$work" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AXIE_DATABASE__URL="sqlite://$work/load.db?mode=rwc" AXIE_SERVER__PORT=$port AXIE_SERVER__DATA_DIR="$work" \
  AXIE_LOG__LEVEL=error AXIE_DATABASE__MAX_CONNECTIONS=16 \
  AXIE_BOOTSTRAP__OWNER_PASSWORD="unused because the database is seeded" \
  "$BIN" >/dev/null & pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
sleep "${WAIT:-8}"
grep -E "^(Rss|Anonymous|Pss_File)" "/proc/$pid/smaps_rollup"
echo "largest mappings (kB resident):"
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6; if (name == "") name = "[anon]"} /^Rss:/ {r[name] += $2}
  END {for (n in r) print r[n], n}' "/proc/$pid/smaps" | sort -rn | head -8
