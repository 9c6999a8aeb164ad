#!/usr/bin/env bash
# The TTFA breakdown: GET /v1/performance/ttfa (and the "ttfa" of /status) count exactly the
# requests that produced audio, and for each mark on the way to the first byte report when
# requests reached it. Each request passes the marks in order, so their medians are in order
# too, whatever the machine's speed; nothing here measures time itself.
set -u
KOE=${KOE_BINARY:?}
. "$(dirname "$0")/lib.sh"
SERVE_ARGS=(--data-dir "$KOE_DATA_DIR" --workers 2)

start main --ttfa-target 60000
B="http://127.0.0.1:$PORT_main"
check "server started" test -n "$PORT_main"
check "no samples before any request" node -e '
    const t = JSON.parse(process.argv[1]);
    process.exit(t.samples === 0 && t.category === "NO_DATA" && t.slowest_step === null ? 0 : 1)' "$(curl -s "$B/v1/performance/ttfa")"

N=6
for i in $(seq $N); do
    curl -s -o "$T/a.pcm" -X POST "$B/v1/audio/speech" \
        -d "{\"input\":\"Request $i. It has a second sentence.\",\"response_format\":\"pcm\"}"
done
# errors produce no audio and no TTFA sample
curl -s -o /dev/null -X POST "$B/v1/audio/speech" -d '{"input":""}'
curl -s -o /dev/null -X POST "$B/v1/audio/speech" -d '{"input":"x","voice":"nobody"}'

curl -s "$B/v1/performance/ttfa" >"$T/ttfa.json"
check "/v1/performance/ttfa counts exactly the $N spoken requests" node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const names = ["parsed", "worker_started", "front_end_done", "first_segment_done", "first_bytes_encoded"];
    if (t.samples !== +process.argv[2]) process.exit(1);
    for (const n of names) if (!t.stages[n] || t.stages[n].samples !== t.samples) process.exit(1);' "$T/ttfa.json" $N
check "  the marks medians are in order, up to the TTFA itself" node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1])), s = t.stages;
    const chain = [s.parsed.p50_ms, s.worker_started.p50_ms, s.front_end_done.p50_ms,
                   s.first_bytes_encoded.p50_ms, t.p50_ms];
    for (let i = 1; i < chain.length; i++) if (!(chain[i] >= chain[i - 1])) process.exit(1);
    for (const k in s) if (!(s[k].p50_ms <= s[k].p95_ms && s[k].p95_ms <= s[k].p99_ms)) process.exit(1);' "$T/ttfa.json"
check "  names its slowest step" node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const steps = ["reading_and_parsing", "queue_wait", "front_end", "synthesis", "audio_encoding", "first_write"];
    process.exit(steps.includes(t.slowest_step) && t.slowest_step_p50_ms >= 0 && t.slowest_step_p50_ms <= t.p50_ms ? 0 : 1)' "$T/ttfa.json"
# espeak-ng does not split its synthesis: no text-side mark, one synthesis step; every step is
# a difference of medians in order, so none is negative.
check "  its steps: synthesis in one piece with espeak-ng, none negative" node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1])), st = t.steps_p50_ms;
    const ok = t.stages.text_side_done.samples === 0 && "synthesis" in st && !("vocoder" in st) &&
        Object.values(st).every((v) => v >= 0);
    process.exit(ok ? 0 : 1)' "$T/ttfa.json"
# Recommendations follow the figures: a target far above any TTFA here gives none.
check "  recommendations: a list, empty when on target" node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1]));
    process.exit(Array.isArray(t.recommendations) && (t.p50_ms > t.target_ms || t.recommendations.length === 0) ? 0 : 1)' "$T/ttfa.json"
check "/status carries the same breakdown" node -e '
    const s = JSON.parse(process.argv[1]).ttfa;
    process.exit(s.samples === +process.argv[2] && s.stages && s.stages.front_end_done.samples === s.samples ? 0 : 1)' \
    "$(curl -s "$B/status")" $N
hdrs=$(curl -s -D - -o /dev/null -X POST "$B/v1/performance/ttfa")
check "POST /v1/performance/ttfa -> 405 with Allow" grep -qi '^allow: GET' <<<"$hdrs"
kill -TERM "$PID_main"; wait "$PID_main"
check "SIGTERM exits 0" test $? -eq 0

start auth --api-key k3y --ttfa-target 1
A="http://127.0.0.1:$PORT_auth"
check "with an API key, the breakdown needs it" test "$(curl -s -o /dev/null -w '%{http_code}' "$A/v1/performance/ttfa")" = 401
check "  and answers with it" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer k3y' "$A/v1/performance/ttfa")" = 200
# A 1 ms target is always missed: the recommendation names the slowest step and a flag.
curl -s -o /dev/null -H 'Authorization: Bearer k3y' -X POST "$A/v1/audio/speech" \
    -d '{"input":"Missed by a mile.","response_format":"pcm"}'
check "  a missed target gets a recommendation naming a flag or a format" node -e '
    const t = JSON.parse(process.argv[1]);
    process.exit(t.p50_ms > 1 && t.recommendations.length >= 1 &&
        /--[a-z-]+|pcm|proxy|smaller requests|slowly/.test(t.recommendations.join(" ")) ? 0 : 1)' \
    "$(curl -s -H 'Authorization: Bearer k3y' "$A/v1/performance/ttfa")"

[ $fails -eq 0 ] && echo "all TTFA breakdown checks passed"
exit $((fails > 0))
