#!/usr/bin/env bash
# The web page of `koe serve` in Debian's headless Chromium, driven by playwright-core
# (tests/web/page_test.js): load /, pick up the voices, enter text, Speak with the keyboard, check
# that audio arrived and Web Audio is playing it, the download, Stop, and an API error.
# A screenshot is saved to ${KOE_TEST_OUT:-/tmp}/koe-web.png.
#
# KOE_WEB_STANDIN=1 runs the page against tests/web/standin.js instead of koe (for work on the
# page alone; see docs/WEB.md). Skipped (77) without Chromium, node or `npm ci --prefix tests/web`.
set -u
SRC=${KOE_SOURCE_DIR:?}
CHROMIUM=${KOE_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "skip: $CHROMIUM not installed (apt-get install chromium)"; exit 77; }
command -v node >/dev/null || { echo "skip: node not installed"; exit 77; }
[ -d "$SRC/tests/web/node_modules/playwright-core" ] ||
    { echo "skip: playwright-core missing (npm ci --prefix tests/web)"; exit 77; }
OUT=${KOE_TEST_OUT:-/tmp}
mkdir -p "$OUT"

. "$(dirname "$0")/lib.sh"
SERVER=
CLIENT=
on_exit() { # before $T goes
    # The client runs in its own process group: this also ends the Chromium it started.
    [ -n "$CLIENT" ] && kill -- -"$CLIENT" 2>/dev/null
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null
        wait "$SERVER" 2>/dev/null
    fi
}
trap 'exit 1' INT TERM

if [ "${KOE_WEB_STANDIN:-0}" = 1 ]; then
    echo "note: KOE_WEB_STANDIN=1, testing the page against the stand-in server, not koe"
    node "$SRC/tests/web/standin.js" >"$T/port" 2>"$T/server.log" &
    SERVER=$!
    for _ in $(seq 200); do [ -s "$T/port" ] && break; sleep 0.05; done
    PORT=$(cat "$T/port")
else
    KOE=${KOE_BINARY:?}
    "$KOE" serve --help >/dev/null 2>&1 || { echo "skip: $KOE has no serve command yet"; exit 77; }
    # Port 0 and the port it reports: a port probed free beforehand can be taken by another
    # test's client socket before the server binds it.
    "$KOE" serve --host 127.0.0.1 --port 0 --data-dir "${KOE_DATA_DIR:-$SRC/data}" --workers 1 \
        >"$T/server.log" 2>&1 &
    SERVER=$!
    PORT=$(serve_port "$T/server.log" "$SERVER" 600 "") # the port alone: ready is awaited below
fi
BASE="http://127.0.0.1:$PORT"

# Ready means /health answers 200 (503 while warming up); bounded, and fails if the server died.
ready=0
for _ in $(seq 1200); do
    kill -0 "$SERVER" 2>/dev/null || break
    if [ "${KOE_WEB_STANDIN:-0}" = 1 ]; then
        curl -sf -o /dev/null "$BASE/v1/audio/voices" && { ready=1; break; }
    else
        curl -sf -o /dev/null "$BASE/health" && { ready=1; break; }
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "FAIL the server did not become ready on $BASE"
    cat "$T/server.log"
    exit 1
fi

setsid node "$SRC/tests/web/page_test.js" "$BASE" "$OUT/koe-web.png" &
CLIENT=$!
wait "$CLIENT"
rc=$?
CLIENT=
if [ "$rc" -ne 0 ]; then
    echo "--- server log"
    tail -n 40 "$T/server.log"
fi
exit "$rc"
