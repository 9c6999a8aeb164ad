#!/usr/bin/env bash
# Scale-out through deploy/nginx/koe.conf: two koe instances behind nginx on loopback. Streamed
# audio arrives through the proxy; its TTFA is within 20 ms of the direct figure (median of 10
# each, same run); load spreads over both instances; killing one mid-run loses no new request.
set -u
KOE=${KOE_BINARY:?}
command -v nginx >/dev/null || { echo "nginx not installed"; exit 77; }
"$KOE" serve --help >/dev/null 2>&1 || { echo "no koe serve"; exit 77; }
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -f "$T/nginx/nginx.pid" ] && kill "$(cat "$T/nginx/nginx.pid")" 2>/dev/null
    sleep 0.2
    rm -rf "$T"
}
trap cleanup EXIT
fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi; }
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
    done
}
start_koe() { # name port
    "$KOE" serve --port "$2" --data-dir "$KOE_DATA_DIR" --workers 1 >"$T/$1.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$1=$!"
    for _ in $(seq 200); do grep -q "koe: ready" "$T/$1.log" && return 0; sleep 0.05; done
    return 1
}
PA=$(free_port); PB=$(free_port); PN=$(free_port)
check "instance a started" start_koe a "$PA"
check "instance b started" start_koe b "$PB"

mkdir -p "$T/nginx/logs"
sed -e "s/127.0.0.1:8880/127.0.0.1:$PA/" -e "s/127.0.0.1:8881/127.0.0.1:$PB/" \
    -e "s/listen 127.0.0.1:8080/listen 127.0.0.1:$PN/" "$KOE_SOURCE_DIR/deploy/nginx/koe.conf" >"$T/nginx/koe.conf"
cat >"$T/nginx/nginx.conf" <<CONF
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log;
daemon on;
events {}
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    include $T/nginx/koe.conf;
}
CONF
check "nginx starts with deploy/nginx/koe.conf" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PN/health" && break; sleep 0.05; done

BODY='{"input":"Hello through the proxy. Streaming must pass through as it is made.","response_format":"pcm"}'
TEXT="Hello through the proxy. Streaming must pass through as it is made."
# TTFA as a client sees it (request sent -> first audio byte) with bench_ttfa, which speaks HTTP
# itself; direct and proxied runs alternate so that both see the same machine.
BENCH="$(dirname "$KOE")/bench_ttfa"
ttfa50() { "$BENCH" --port "$1" --clients 1 --requests 2 --format pcm --text "$TEXT" | awk -F'|' '/^\| custom/ {gsub(/ /, "", $7); print $7}'; }
if [ -x "$BENCH" ]; then
    : >"$T/direct"; : >"$T/proxy"
    for i in $(seq 5); do ttfa50 "$PA" >>"$T/direct"; ttfa50 "$PN" >>"$T/proxy"; done
    med() { sort -n "$1" | sed -n 3p; }
    d=$(med "$T/direct"); p=$(med "$T/proxy")
    echo "     TTFA median of 5 x p50: direct ${d} ms, through nginx ${p} ms"
    check "TTFA through nginx within 20 ms of direct" awk -v d="$d" -v p="$p" 'BEGIN {exit !(d > 0 && p > 0 && p - d <= 20)}'
else
    echo "skip TTFA comparison (no $BENCH)"
fi
for i in $(seq 6); do
    code=$(curl -s -o "$T/out.pcm" -w '%{http_code}' -X POST "http://127.0.0.1:$PN/v1/audio/speech" -d "$BODY")
    [ "$code" = 200 ] && [ "$(stat -c %s "$T/out.pcm")" -gt 48000 ] || echo "bad proxied response $code" >>"$T/bad"
done
check "proxied requests succeed with audio" test ! -e "$T/bad"
hdrs=$(curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$PN/v1/audio/speech" -d "$BODY")
check "the response stays chunked through the proxy" grep -qi '^transfer-encoding: chunked' <<<"$hdrs"

served() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "koe_requests_total{code=\"200\"}" {print $2}'; }
sa=$(served "$PA"); sb=$(served "$PB")
echo "     200s served: a=$sa b=$sb"
check "load spread over both instances" test "${sa:-0}" -gt 2 -a "${sb:-0}" -gt 2

# Kill one instance mid-run: no new request is lost.
ok=0
for i in $(seq 20); do
    [ "$i" = 6 ] && kill -9 "$PID_a"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PN/v1/audio/speech" -d "$BODY")
    [ "$code" = 200 ] && ok=$((ok + 1))
done
check "20 of 20 requests succeed while an instance dies" test "$ok" -eq 20
exit $((fails > 0))
