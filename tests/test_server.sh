#!/usr/bin/env bash
# koe serve end to end over loopback with curl and ffprobe/ffmpeg: every
# format decodes, every error has its status and OpenAI-shaped body, limits, auth, the legacy
# request shape, 503 when the queue is full, cancellation when a client goes away, metrics and
# status reflecting what was just done, SIGTERM exiting 0. Nothing here depends on timing: waits
# poll for a state.
set -u
KOE=${KOE_BINARY:?}
[ -d "$KOE_DATA_DIR/voices" ] || { echo "skip: no voice packs in $KOE_DATA_DIR/voices (make deps)"; exit 77; }
. "$(dirname "$0")/lib.sh"
START_POLLS=300 WAIT_POLLS=600
post() { # url body [curl args...] -> writes body to $T/out, prints status
    local url=$1 body=$2; shift 2
    curl -s -o "$T/out" -w '%{http_code}' -X POST "$url" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

start main
P=$PORT_main
B="http://127.0.0.1:$P"
check "server started and printed its port" test -n "$P"
check "health is online" grep -q '"status":"online"' <(curl -s "$B/health")
check "starts bound to loopback by default" grep -q "listening on http://127.0.0.1:" "$T/main.log"
check "log says espeak-ng speaks and where the weights go" grep -q "kokoro-v1_0.pth" "$T/main.log"

# Every format, decoded by ffprobe.
TEXT='Hello there. This is koe, speaking every format; the time is 3:30pm.'
for f in mp3 opus aac flac wav; do
    code=$(post "$B/v1/audio/speech" "{\"model\":\"kokoro\",\"input\":\"$TEXT\",\"voice\":\"af_heart\",\"response_format\":\"$f\"}")
    cp "$T/out" "$T/speech.$f"
    codec=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels -of csv=p=0 "$T/speech.$f" 2>/dev/null)
    # decoded length (a streamed file may not announce its duration)
    bytes=$(ffmpeg -v error -i "$T/speech.$f" -f s16le -ac 1 -ar 24000 - 2>/dev/null | wc -c)
    check "$f: 200, decodes ($codec, $bytes bytes of s16 at 24 kHz)" test "$code" = 200 -a -n "$codec"
    # opus always decodes at 48 kHz; everything else keeps 24 kHz
    check "$f: mono at the right rate, over a second of audio" awk -v c="$codec" -v b="$bytes" 'BEGIN{exit !((c ~ /,24000,1$/ || c ~ /^opus,48000,1$/) && b > 48000)}'
done
code=$(post "$B/v1/audio/speech" "{\"input\":\"$TEXT\",\"response_format\":\"pcm\"}")
size=$(stat -c %s "$T/out")
check "pcm: 200, raw s16le (even size, $size bytes)" test "$code" = 200 -a $((size % 2)) -eq 0 -a "$size" -gt 48000
check "pcm decodes as s16le 24 kHz" ffmpeg -v error -f s16le -ar 24000 -ac 1 -i "$T/out" -f null -
code=$(post "$B/v1/audio/speech" "{\"input\":\"$TEXT\"}")
check "default format is mp3" ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$T/out"
check "a blend of voices speaks" test "$(post "$B/v1/audio/speech" '{"input":"Blend.","voice":"af_bella:0.7+af_sky:0.3"}')" = 200
check "OpenAI voice names are accepted" test "$(post "$B/v1/audio/speech" '{"input":"Alloy.","voice":"alloy","model":"tts-1"}')" = 200
hdrs=$(curl -s -D - -o "$T/nostream" -X POST "$B/v1/audio/speech" -d "{\"input\":\"$TEXT\",\"stream\":false,\"response_format\":\"wav\"}")
check "stream:false answers with a Content-Length" grep -qi '^content-length: [1-9]' <<<"$hdrs"
check "stream:false wav has its real sizes in the header" test "$(od -An -tu4 -j40 -N4 "$T/nostream" | tr -d ' ')" -eq $(($(stat -c %s "$T/nostream") - 44))
hdrs=$(curl -s -D - -o /dev/null -X POST "$B/v1/audio/speech" -d "{\"input\":\"$TEXT\",\"response_format\":\"wav\"}")
check "streaming answers chunked" grep -qi '^transfer-encoding: chunked' <<<"$hdrs"

# Errors: status, OpenAI shape, the parameter named.
err() { # what expected_code expected_param body [path]
    local what=$1 want=$2 param=$3 body=$4 path=${5:-/v1/audio/speech}
    local got; got=$(post "$B$path" "$body")
    check "$what -> $want" test "$got" = "$want"
    check "$what: OpenAI error shape" node -e '
        const e = JSON.parse(require("fs").readFileSync(process.argv[1])).error;
        if (!e || typeof e.message !== "string" || !e.type || !("param" in e) || !e.code) process.exit(1);
        if (process.argv[2] !== "-" && e.param !== process.argv[2]) process.exit(1);' "$T/out" "$param"
}
err "malformed JSON" 400 - '{"input": "x",'
err "body not an object" 400 - '["input"]'
err "a field given twice" 400 input '{"input":"one","voice":"af_heart","input":"two"}'
check "  names the field" grep -q "'input' appears more than once" "$T/out"
err "missing input" 400 input '{"voice":"af_heart"}'
err "input not a string" 400 input '{"input":5}'
err "empty input" 400 input '{"input":""}'
err "whitespace-only input" 400 input '{"input":"  \n\t "}'
err "unknown voice" 400 voice '{"input":"hi","voice":"af_bela"}'
check "unknown voice names close matches" grep -q "af_bella" "$T/out"
err "voice not a string" 400 voice '{"input":"hi","voice":7}'
err "unknown format" 400 response_format '{"input":"hi","response_format":"ogg_vorbis"}'
err "speed too high" 400 speed '{"input":"hi","speed":5}'
err "speed too low" 400 speed '{"input":"hi","speed":0.1}'
err "speed not a number" 400 speed '{"input":"hi","speed":"fast"}'
err "stream not a bool" 400 stream '{"input":"hi","stream":"yes"}'
err "unknown model" 400 model '{"input":"hi","model":"gpt-4"}'
err "Japanese refused clearly" 400 - '{"input":"hi","voice":"jf_alpha"}'
err "an escaped NUL in input" 400 - '{"input":"Hello\u0000 world"}'
check "  named as such" grep -q "U+0000" "$T/out"
check "an escaped backslash before u0000 is just text" test "$(post "$B/v1/audio/speech" '{"input":"a \\u0000 b","response_format":"pcm"}')" = 200
printf '{"input":"caf\xc3 x"}' >"$T/badutf8.json"
code=$(curl -s -o "$T/out" -w '%{http_code}' -X POST "$B/v1/audio/speech" --data-binary @"$T/badutf8.json")
check "invalid UTF-8 -> 400" test "$code" = 400
big=$(head -c 100001 /dev/zero | tr '\0' 'a')
printf '{"input":"%s"}' "$big" >"$T/big.json"
code=$(curl -s -o "$T/out" -w '%{http_code}' -X POST "$B/v1/audio/speech" --data-binary @"$T/big.json")
check "input over 100,000 characters -> 413" test "$code" = 413
code=$(curl -s -o /dev/null -w '%{http_code}' "$B/nope")
check "unknown path -> 404" test "$code" = 404
hdrs=$(curl -s -D - -o "$T/out" "$B/v1/audio/speech")
check "GET on the speech endpoint -> 405" grep -q '^HTTP/1.1 405' <<<"$hdrs"
check "405 names the allowed method" grep -qi '^allow: POST' <<<"$hdrs"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$B/health")
check "DELETE /health -> 405" test "$code" = 405

# The legacy request shape (text/format, default pcm, 4,500 characters).
code=$(post "$B/audio/speech" '{"text":"Legacy client here.","voice":"af_heart","format":"wav","lang":"en-us"}')
check "legacy /audio/speech with text+format -> wav" test "$code" = 200 -a "$(head -c 4 "$T/out")" = RIFF
code=$(post "$B/v1/audio/speech" '{"text":"Legacy shape on the v1 path."}')
check "legacy shape defaults to pcm" test "$code" = 200 -a "$(head -c 4 "$T/out")" != RIFF
long=$(head -c 4501 /dev/zero | tr '\0' 'b')
check "legacy text over 4,500 characters -> 413" test "$(post "$B/audio/speech" "{\"text\":\"$long\"}")" = 413
check "GET /voices lists af_heart" grep -q '"af_heart"' <(curl -s "$B/voices")
check "GET /v1/audio/voices lists 54 voices" node -e '
    const v = JSON.parse(require("fs").readFileSync(0)).voices; process.exit(v.length === 54 ? 0 : 1)' < <(curl -s "$B/v1/audio/voices")
check "GET /v1/models lists kokoro and tts-1" grep -q '"tts-1"' <(curl -s "$B/v1/models")
check "GET / serves the web page" grep -qi '<html' <(curl -s "$B/")

# (The official openai client: tests/test_server_openai.sh.)

# A client that goes away mid-stream cancels its job.
before=$(metric "$P" 'koe_jobs_total{outcome="cancelled"}')
story=$(for i in $(seq 300); do printf 'Sentence number %d of a long story that nobody will hear to the end. ' "$i"; done)
# (the story is about 20 minutes of audio: it cannot be finished when the reader leaves)
curl -s -N -X POST "$B/v1/audio/speech" -d "{\"input\":\"$story\",\"response_format\":\"wav\"}" | head -c 100000 >/dev/null
check "disconnect mid-stream cancels the job" wait_metric "$P" 'koe_jobs_total{outcome="cancelled"}' $((${before:-0} + 1))
check "the log names the client as gone" grep -q '"outcome":"client_gone"' "$T/main.log"

# Metrics and status show what was just done.
m=$(curl -s "$B/metrics")
check "metrics count 200s" grep -qE '^koe_requests_total\{code="200"\} [1-9]' <<<"$m"
check "metrics count 400s" grep -qE '^koe_requests_total\{code="400"\} [1-9]' <<<"$m"
check "metrics have a TTFA histogram with samples" grep -qE '^koe_ttfa_seconds_count [1-9]' <<<"$m"
check "metrics have the real-time factor" grep -q '^koe_real_time_factor ' <<<"$m"
check "metrics have the pipeline's segments and first-segment length" test "$(grep -cE '^koe_(segments_running|segments_ready|first_segment_max) [0-9]+$' <<<"$m")" = 3
s=$(curl -s "$B/status")
check "status reports TTFA percentiles and a category" node -e '
    const s = JSON.parse(process.argv[1]);
    if (!(s.ttfa.samples > 5 && s.ttfa.p50_ms > 0 && s.ttfa.p95_ms >= s.ttfa.p50_ms && s.ttfa.category)) process.exit(1);
    if (s.backend !== "espeak-ng" || s.model_loaded !== false || !s.performance_stats) process.exit(1);' "$s"
check "status shows the pipeline settings" node -e '
    const p = JSON.parse(process.argv[1]).pipeline;
    if (!(p.workers >= 1 && p.lookahead_segments === 3 && p.first_segment_max >= 12 && p.first_segment_max <= 150 && p.segment_ramp === 2)) process.exit(1);
    const o = JSON.parse(process.argv[1]).optimizer;
    if (!(o.enabled === true && o.target_ms === 150 && Array.isArray(o.decisions))) process.exit(1);' "$s"
check "every speech request logged with TTFA" test "$(grep -c '"ttfa_ms"' "$T/main.log")" -gt 10
# a client-chosen string with quotes and a newline cannot forge log fields
post "$B/v1/audio/speech" '{"input":"hi","voice":"x\",\"status\":200,\n\"y"}' >/dev/null

# SIGTERM drains and exits 0.
kill -TERM "$PID_main"
wait "$PID_main"
check "SIGTERM exits 0" test $? -eq 0
check "every log line of a request is one JSON object with an id, status and outcome" node -e '
    const all = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("{"));
    for (const l of all) JSON.parse(l); /* the optimizer lines too */
    const lines = all.filter((l) => !JSON.parse(l).optimizer);
    let errors = 0;
    for (const l of lines) {
        const o = JSON.parse(l);
        if (!(o.request > 0 && o.status >= 200 && o.outcome && o.path)) process.exit(1);
        if (o.status === 400 && !o.error) process.exit(1);
        if (o.status === 400) errors++;
    }
    const forged = lines.map(JSON.parse).filter((o) => typeof o.voice === "string" && o.voice.includes("status"));
    process.exit(lines.length > 20 && errors > 5 && forged.length === 1 && forged[0].status === 400 ? 0 : 1)' "$T/main.log"

# A full server answers 503 with Retry-After: one worker, room for one job beyond it (--max-queue
# 1), both taken by streams whose readers never read.
start q --workers 1 --max-queue 1
Q="http://127.0.0.1:$PORT_q"
# a reader that never reads: the pipe and the socket fill, the job stops at its lookahead
curl -s -N -X POST "$Q/v1/audio/speech" -d "{\"input\":\"$story\",\"response_format\":\"wav\"}" | sleep 600 &
PIDS+=($!)
check "the worker is busy" wait_metric "$PORT_q" koe_jobs_running 1
curl -s -N -X POST "$Q/v1/audio/speech" -d "{\"input\":\"$story\",\"response_format\":\"wav\"}" | sleep 600 &
PIDS+=($!)
check "a second stream is admitted" wait_metric "$PORT_q" koe_jobs_running 2
hdrs=$(curl -s -D - -o "$T/out" -X POST "$Q/v1/audio/speech" -d '{"input":"one more"}')
check "a full queue -> 503" grep -q '^HTTP/1.1 503' <<<"$hdrs"
check "503 carries Retry-After" grep -qi '^retry-after: ' <<<"$hdrs"
kill -9 "$PID_q" 2>/dev/null

# An API key, when configured, is required on the API (not on /health).
start auth --api-key s3cret
A="http://127.0.0.1:$PORT_auth"
check "no key -> 401" test "$(post "$A/v1/audio/speech" '{"input":"hi"}')" = 401
check "wrong key -> 401" test "$(post "$A/v1/audio/speech" '{"input":"hi"}' -H 'Authorization: Bearer nope')" = 401
check "right key -> 200" test "$(post "$A/v1/audio/speech" '{"input":"hi"}' -H 'Authorization: Bearer s3cret')" = 200
check "health needs no key" test "$(curl -s -o /dev/null -w '%{http_code}' "$A/health")" = 200

# A body over --max-body is refused before it is read.
start small --max-body 4096
head -c 100000 /dev/zero | tr '\0' 'c' | sed 's/^/{"input":"/; s/$/"}/' >"$T/huge.json"
code=$(curl -s -o "$T/out" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT_small/v1/audio/speech" --data-binary @"$T/huge.json")
check "body over --max-body -> 413" test "$code" = 413

# Bad flags: a clear message and exit 2.
"$KOE" serve --port 99999 2>"$T/flag.err"
check "bad --port exits 2" test $? -eq 2
check "bad --port is explained" grep -q "port" "$T/flag.err"
check "--help lists the environment variables" grep -q KOE_API_KEY <("$KOE" serve --help)
for bad in "--precision fp64" "--segment-ramp 0.5" "--segment-ramp x" "--lookahead 0" "--first-segment-max 0"; do
    # shellcheck disable=SC2086
    "$KOE" serve $bad 2>"$T/flag.err"
    check "bad $bad exits 2 with a message" test $? -eq 2 -a -s "$T/flag.err"
done

[ $fails -eq 0 ] && echo "all server checks passed"
exit $((fails > 0))
