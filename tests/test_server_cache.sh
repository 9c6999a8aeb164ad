#!/usr/bin/env bash
# koe serve's caches end to end: a repeated identical request is answered from the audio cache
# (streamed or whole) with the very same bytes and without synthesis; any field that changes the
# bytes makes a miss; a cancelled stream is never cached; the byte bound holds with eviction; 0
# turns the caches off; flags and environment; both caches in /metrics and /status. Also: a
# streamed request whose job fails before any audio gets a JSON error, not 200 and a cut stream.
# Nothing here depends on timing: waits poll for a state.
set -u
KOE=${KOE_BINARY:?}
[ -d "$KOE_DATA_DIR/voices" ] || { echo "skip: no voice packs in $KOE_DATA_DIR/voices (make deps)"; exit 77; }
. "$(dirname "$0")/lib.sh"
SERVE_ARGS=(--data-dir "$KOE_DATA_DIR" --warmup 0)
START_POLLS=300
# speak PORT BODY OUT: POST, body to OUT, headers to OUT.h; prints the status
speak() {
    curl -s -D "$3.h" -o "$3" -w '%{http_code}' -X POST "http://127.0.0.1:$1/v1/audio/speech" \
        -H 'Content-Type: application/json' --data-binary "$2"
}
cache_hdr() { tr -d '\r' <"$1.h" | awk -F': ' 'tolower($1) == "x-koe-cache" {print $2}'; }
wait_metric_eq() { # port key value
    for _ in $(seq 600); do [ "$(metric "$1" "$2")" = "$3" ] && return 0; sleep 0.05; done
    return 1
}
AH='koe_cache_hits_total{cache="audio"}'
AM='koe_cache_misses_total{cache="audio"}'
AE='koe_cache_entries{cache="audio"}'
AB='koe_cache_bytes{cache="audio"}'
AC='koe_cache_capacity_bytes{cache="audio"}'
DONE='koe_jobs_total{outcome="done"}'

start main
P=$PORT_main
check "server started" test -n "$P"

# 1. The second identical request is a hit: same bytes, no synthesis.
TEXT='Hello there. This sentence is spoken once and then replayed from the cache.'
REQ="{\"input\":\"$TEXT\",\"voice\":\"af_heart\",\"response_format\":\"pcm\"}"
check "first request: 200" test "$(speak "$P" "$REQ" "$T/a1")" = 200
check "first request: X-Koe-Cache miss" test "$(cache_hdr "$T/a1")" = miss
wait_metric_eq "$P" "$AE" 1
jobs=$(metric "$P" "$DONE")
check "second request: 200" test "$(speak "$P" "$REQ" "$T/a2")" = 200
check "second request: X-Koe-Cache hit" test "$(cache_hdr "$T/a2")" = hit
check "hit: byte-identical to the miss ($(stat -c %s "$T/a1") bytes)" cmp -s "$T/a1" "$T/a2"
check "hit: streamed chunked, like the miss" grep -qi '^transfer-encoding: chunked' "$T/a2.h"
check "hit: no job ran" test "$(metric "$P" "$DONE")" = "$jobs"
check "hit: counted (hits 1, misses 1)" test "$(metric "$P" "$AH")" = 1 -a "$(metric "$P" "$AM")" = 1
hitline=$(grep '"cache":"hit"' "$T/main.log" | head -1)
missline=$(grep '"cache":"miss"' "$T/main.log" | head -1)
check "the request log marks the hit, with no synthesis" grep -q '"segments":0' <<<"$hitline"
echo "info TTFA miss $(sed 's/.*"ttfa_ms":\([0-9.]*\).*/\1/' <<<"$missline") ms, hit $(sed 's/.*"ttfa_ms":\([0-9.]*\).*/\1/' <<<"$hitline") ms (server side)"
# stream:false of the same request: the same bytes, whole, with a Content-Length
check "stream:false of a cached answer: 200" test "$(speak "$P" "${REQ%\}},\"stream\":false}" "$T/a3")" = 200
check "stream:false hit: same bytes" cmp -s "$T/a1" "$T/a3"
check "stream:false hit: Content-Length" grep -qi '^content-length: [1-9]' "$T/a3.h"
check "stream:false hit: X-Koe-Cache hit" test "$(cache_hdr "$T/a3")" = hit
# wav: the streamed answer is cached as streamed; a whole one gets its real sizes
WREQ="{\"input\":\"$TEXT\",\"response_format\":\"wav\"}"
speak "$P" "$WREQ" "$T/w1" >/dev/null
wait_metric_eq "$P" "$AE" 2
code=$(speak "$P" "${WREQ%\}},\"stream\":false}" "$T/w2")
check "wav stream:false from the streamed answer: hit" test "$code" = 200 -a "$(cache_hdr "$T/w2")" = hit
check "wav: the whole file has its real data size" test "$(od -An -tu4 -j40 -N4 "$T/w2" | tr -d ' ')" -eq $(($(stat -c %s "$T/w2") - 44))
check "wav: the audio is the streamed audio" cmp -s <(tail -c +45 "$T/w1") <(tail -c +45 "$T/w2")
check "wav: the streamed answer announced an unknown length" test "$(od -An -tu4 -j40 -N4 "$T/w1" | tr -d ' ')" = 4294967295

# 2. Any field that changes the bytes is another key.
for variant in '"speed":1.25' '"voice":"af_bella"' '"response_format":"mp3"' '"lang":"en-gb"'; do
    body="{\"input\":\"$TEXT\",\"voice\":\"af_heart\",\"response_format\":\"pcm\",$variant}"
    body=$(sed 's/"voice":"af_heart",\(.*\)"voice":"af_bella"/\1"voice":"af_bella"/; s/"response_format":"pcm",\(.*\)"response_format":"mp3"/\1"response_format":"mp3"/' <<<"$body")
    code=$(speak "$P" "$body" "$T/v")
    check "$variant: a miss (200, $(cache_hdr "$T/v"))" test "$code" = 200 -a "$(cache_hdr "$T/v")" = miss
done
code=$(speak "$P" "{\"input\":\"$TEXT.\",\"response_format\":\"pcm\"}" "$T/v")
check "one more character: a miss" test "$(cache_hdr "$T/v")" = miss
code=$(speak "$P" "{\"input\":\"$TEXT\",\"response_format\":\"pcm\",\"model\":\"tts-1\",\"instructions\":\"x\"}" "$T/v")
check "fields that do not change the bytes (model, unknown ones): still a hit" test "$(cache_hdr "$T/v")" = hit

# 3. A cancelled stream is not cached.
story=$(for i in $(seq 120); do printf 'Sentence %d of a story that nobody hears to the end. ' "$i"; done)
SREQ="{\"input\":\"$story\",\"response_format\":\"mp3\"}"
entries=$(metric "$P" "$AE")
cancelled=$(metric "$P" 'koe_jobs_total{outcome="cancelled"}')
curl -s -N -X POST "http://127.0.0.1:$P/v1/audio/speech" -d "$SREQ" | head -c 20000 >/dev/null
check "the client left mid-stream: its job is cancelled" wait_metric_eq "$P" 'koe_jobs_total{outcome="cancelled"}' $((cancelled + 1))
check "no stream open any more" wait_metric_eq "$P" koe_active_streams 0
check "the cancelled answer was not cached ($entries entries)" test "$(metric "$P" "$AE")" = "$entries"
check "nothing left collecting" grep -q '"collecting_bytes":0' <(curl -s "http://127.0.0.1:$P/status")
curl -s -N -D "$T/s2.h" -X POST "http://127.0.0.1:$P/v1/audio/speech" -d "$SREQ" | head -c 20000 >/dev/null
check "the same request again is a miss" test "$(cache_hdr "$T/s2")" = miss

# 4. /status and /metrics show both caches.
st=$(curl -s "http://127.0.0.1:$P/status")
check "/status has caches.audio and caches.phonemes" python3 -c "import json,sys; c=json.loads(sys.argv[1])['caches']; assert c['audio']['hits']>=4 and c['audio']['capacity_bytes']==16<<20 and c['phonemes']['capacity_bytes']==4<<20" "$st"
check "default audio capacity 16 MiB in /metrics" test "$(metric "$P" "$AC")" = $((16 << 20))
check "phoneme cache in /metrics" test -n "$(metric "$P" 'koe_cache_misses_total{cache="phoneme"}')"
check "audio bytes reported" test "$(metric "$P" "$AB")" -gt 0
kill -TERM "$PID_main"
wait "$PID_main"
check "SIGTERM exits 0 with a full cache" test $? -eq 0

# 5. The byte bound: 1 MiB, entries of at most 256 KiB; distinct answers keep coming.
start small --audio-cache-mb 1
S=$PORT_small
over=0
for i in $(seq 14); do
    speak "$S" "{\"input\":\"Request number $i is different from every other one.\",\"response_format\":\"pcm\"}" "$T/b" >/dev/null
    wait_metric_eq "$S" koe_active_streams 0
    b=$(metric "$S" "$AB")
    [ "$b" -le $((1 << 20)) ] || over=$((over + 1))
done
check "bytes stayed within 1 MiB after every request (last $(metric "$S" "$AB"))" test "$over" = 0
check "entries were evicted ($(metric "$S" 'koe_cache_evictions_total{cache="audio"}'))" test "$(metric "$S" 'koe_cache_evictions_total{cache="audio"}')" -gt 0
check "several entries held ($(metric "$S" "$AE"))" test "$(metric "$S" "$AE")" -ge 2
code=$(speak "$S" "{\"input\":\"Request number 14 is different from every other one.\",\"response_format\":\"pcm\"}" "$T/b")
check "the most recent answer is still there" test "$(cache_hdr "$T/b")" = hit
code=$(speak "$S" "{\"input\":\"Request number 1 is different from every other one.\",\"response_format\":\"pcm\"}" "$T/b")
check "the oldest was evicted" test "$(cache_hdr "$T/b")" = miss
long=$(for i in $(seq 12); do printf 'This long answer is more than a quarter of the cache. '; done)
entries=$(metric "$S" "$AE")
speak "$S" "{\"input\":\"$long\",\"response_format\":\"pcm\"}" "$T/l" >/dev/null
wait_metric_eq "$S" koe_active_streams 0
check "an answer over a quarter of the capacity ($(stat -c %s "$T/l") bytes) is not stored" test "$(metric "$S" "$AE")" -le "$entries"
speak "$S" "{\"input\":\"$long\",\"response_format\":\"pcm\"}" "$T/l" >/dev/null
check "so it is a miss again" test "$(cache_hdr "$T/l")" = miss
kill -TERM "$PID_small"
wait "$PID_small"

# 6. Off: flags and environment.
KOE_AUDIO_CACHE_MB=0 start off --phoneme-cache-mb 0
O=$PORT_off
speak "$O" "$REQ" "$T/o1" >/dev/null
speak "$O" "$REQ" "$T/o2" >/dev/null
check "KOE_AUDIO_CACHE_MB=0: capacity 0" test "$(metric "$O" "$AC")" = 0
check "off: no hits, no misses, no X-Koe-Cache header" test "$(metric "$O" "$AH")" = 0 -a "$(metric "$O" "$AM")" = 0 -a -z "$(cache_hdr "$T/o2")"
check "off: every request synthesized" test "$(metric "$O" "$DONE")" = 2
check "--phoneme-cache-mb 0: phoneme capacity 0" test "$(metric "$O" 'koe_cache_capacity_bytes{cache="phoneme"}')" = 0
kill -TERM "$PID_off"
wait "$PID_off"
"$KOE" serve --port 0 --audio-cache-mb -1 >"$T/bad.log" 2>&1
check "--audio-cache-mb -1: usage error (exit 2) naming the flag" test $? = 2 -a -n "$(grep audio-cache-mb "$T/bad.log")"
KOE_PHONEME_CACHE_MB=x "$KOE" serve --port 0 >"$T/bad.log" 2>&1
check "KOE_PHONEME_CACHE_MB=x: usage error naming the flag" test $? = 2 -a -n "$(grep phoneme-cache-mb "$T/bad.log")"
check "--help lists both flags" test "$("$KOE" serve --help | grep -c 'cache-mb')" = 2

# 7. A job failing before any audio: a JSON error, not 200 and a cut stream. espeak-ng is made to
# refuse every voice (a preloaded stand-in for espeak_SetVoiceByName), so every job fails in its
# front end, before its first byte.
if command -v cc >/dev/null; then
    printf 'int espeak_SetVoiceByName(const char *name) { (void)name; return -1; }\n' >"$T/shim.c"
    if cc -shared -fPIC -o "$T/shim.so" "$T/shim.c" 2>/dev/null; then
        LD_PRELOAD="$T/shim.so" ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0" start broken
        F=$PORT_broken
        for stream in true false; do
            code=$(speak "$F" "{\"input\":\"Hello.\",\"response_format\":\"pcm\",\"stream\":$stream}" "$T/f")
            check "stream:$stream, failure before audio: a 4xx/5xx ($code), not 200" test "$code" -ge 400
            check "stream:$stream: the body is an OpenAI-shaped JSON error" python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['error']; assert 'synthesis failed' in e['message']" "$T/f"
            check "stream:$stream: JSON content type" grep -qi '^content-type: application/json' "$T/f.h"
        done
        check "failed answers are not cached" test "$(metric "$F" "$AE")" = 0
        check "the log says what failed" grep -q '"error":"synthesis failed' "$T/broken.log"
        check "server still serving" grep -q online <(curl -s "http://127.0.0.1:$F/health")
        kill -TERM "$PID_broken"
        wait "$PID_broken"
        check "SIGTERM exits 0" test $? -eq 0
    else
        echo "skip failure-before-audio checks: cannot build the preload shim"
    fi
else
    echo "skip failure-before-audio checks: no C compiler"
fi
for f in "$T"/*.log; do
    check "no sanitizer report in $(basename "$f")" test -z "$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f")"
done

[ $fails -eq 0 ] && echo "all cache checks passed"
exit $((fails > 0))
