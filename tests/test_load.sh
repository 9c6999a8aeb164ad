#!/usr/bin/env bash
# The short variant of the bounded mixed load (issue 7): koe serve with the espeak-ng voice on a
# free loopback port, 16 connections for 10 s after a 20 s warm-up of the same mix, by
# tests/load/load_mix.js: valid requests checked complete and decodable, invalid ones 4xx,
# clients vanishing mid-stream; no 5xx but 503, the server alive and idle afterwards, RSS after
# the run no more than 5% above RSS after warm-up. The run's length is the load's, not a wait: every wait
# polls for a state. The full run (64 connections, 60 s) is in docs/RELIABILITY.md.
set -u
KOE=${KOE_BINARY:?}
SRC=${KOE_SOURCE_DIR:?}
command -v node >/dev/null || { echo "node is needed for the load client"; exit 77; }
[ -d "$KOE_DATA_DIR/voices" ] || { echo "no voices in $KOE_DATA_DIR (make deps)"; exit 77; }
CONNS=${KOE_LOAD_CONNECTIONS:-16}
SECS=${KOE_LOAD_SECONDS:-10}
WARM=${KOE_LOAD_WARMUP:-20}
. "$(dirname "$0")/lib.sh"

# Connection limits above the load's own (closed connections linger a moment on the server side);
# a queue deep enough that most requests are served, though 503 stays allowed. The caches are off:
# they grow by design up to their bounds (tested in test_server_cache), which would hide a leak's
# growth or fail the RSS bound without one.
start server --max-per-ip 512 --max-connections 512 --max-queue 128 --audio-cache-mb 0 \
    --phoneme-cache-mb 0
PORT=$PORT_server PID=$PID_server
check "server started" test -n "$PORT"
[ -n "$PORT" ] || exit 1

# Under AddressSanitizer the allocator's quarantine grows RSS by design: the RSS bound is off there.
# Elsewhere the issue's 5 %: with one malloc arena (koe serve sets it) RSS after this short run is
# within ~0.1 % of RSS after warm-up; with glibc's default of 8 arenas per core it drifted 9-41 %,
# the connection threads' arenas fragmenting, without a leak.
RSSTOL=5
ldd "$KOE" 2>/dev/null | grep -q libasan && RSSTOL=off
timeout $((SECS + WARM + 300)) node "$SRC/tests/load/load_mix.js" --port "$PORT" --pid "$PID" \
    --connections "$CONNS" --seconds "$SECS" --warmup "$WARM" --rss-tolerance "$RSSTOL" >"$T/load.out"
rc=$?
cat "$T/load.out"
check "mixed load: $CONNS connections for ${SECS}s, every check held (exit $rc)" test "$rc" = 0
check "mixed load: the load client printed its verdict" grep -q '^load: ' "$T/load.out"
check "no request log line with a 5xx other than 503" test -z "$(grep '"status":5' "$T/server.log" | grep -v '"status":503')"
kill -TERM "$PID"
wait "$PID"
check "SIGTERM after the load exits 0" test $? -eq 0
PIDS=() # it has ended: nothing left to kill at exit
[ $fails -eq 0 ] && echo "all load checks passed"
exit $((fails > 0))
