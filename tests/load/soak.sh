#!/usr/bin/env bash
# The soak (tests/load/soak.js) on a koe server of its own: full-size random Kokoro weights
# (written once to KOE_SOAK_WEIGHTS, default $TMPDIR/koe-soak-random.safetensors), 2 workers,
# audio cache off, loopback port chosen by the kernel. Afterwards the server gets SIGTERM and must
# exit 0. Everything after BUILD goes to soak.js.
#   tests/load/soak.sh [BUILD] [--seconds 1200 --window 300 --warmup 120 --clients 2 ...]
#   tests/load/soak.sh build --seconds 120 --window 50 --warmup 20      # the short variant
# KOE_SOAK_BACKEND=espeak runs the espeak-ng backend instead (no weights).
# KOE_SOAK_SERVER_LOG=FILE keeps the server's log.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build
if (($#)) && [[ $1 != --* ]]; then build=$1; shift; fi
koe=$build/koe
[ -x "$koe" ] || { echo "soak: no $koe (build it first)"; exit 2; }
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

model=()
if [ "${KOE_SOAK_BACKEND:-kokoro}" != espeak ]; then
  weights=${KOE_SOAK_WEIGHTS:-${TMPDIR:-/tmp}/koe-soak-random.safetensors}
  [ -s "$weights" ] || "$koe" random-weights --out "$weights"
  model=(--random-weights "$weights")
fi
"$koe" serve --port 0 --data-dir data --workers 2 --audio-cache-mb 0 "${model[@]}" \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  grep -q "ready" "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; echo "soak: server died"; exit 1; }
  sleep 0.1
done
port=$(grep -o '127\.0\.0\.1:[0-9]*' "$work/server.log" | head -1 | cut -d: -f2)
[ -n "$port" ] || { cat "$work/server.log"; echo "soak: no port"; exit 1; }
head -3 "$work/server.log"
rc=0
node tests/load/soak.js --port "$port" --pid "$server" "$@" || rc=$?
kill -TERM "$server"
src=0
wait "$server" || src=$?
server=
echo "soak: server exit status after SIGTERM: $src"
# KOE_SOAK_SERVER_LOG=FILE keeps the server's log (its request lines carry late_segments)
[ -z "${KOE_SOAK_SERVER_LOG:-}" ] || cp "$work/server.log" "$KOE_SOAK_SERVER_LOG"
bad=$(grep '"status":5' "$work/server.log" | head -5 || true)
[ -z "$bad" ] || { echo "soak: 5xx in the server's log:"; echo "$bad"; rc=1; }
((src == 0)) || rc=1
exit $rc
