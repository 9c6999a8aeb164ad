#!/usr/bin/env bash
# koe serve's life around requests: a client that stops reading is timed out and its job
# cancelled; SIGTERM lets a stream in flight finish, byte for byte, and exits 0; with Kokoro
# weights (the committed tiny ones) the server says so and streams the engine's audio. Waits poll
# for a state; nothing here depends on how fast the machine is.
set -u
KOE=${KOE_BINARY:?}
. "$(dirname "$0")/lib.sh"
story=$(for i in $(seq 300); do printf 'Sentence number %d of a long story that nobody will hear to the end. ' "$i"; done)

# 1. A client that stops reading: once every buffer on the way is full, nothing moves for
# --timeout seconds, the connection is closed and the job cancelled.
start slow --timeout 1 --workers 1
S="http://127.0.0.1:$PORT_slow"
curl -s -N -X POST "$S/v1/audio/speech" -d "{\"input\":\"$story\",\"response_format\":\"pcm\"}" | sleep 600 &
PIDS+=($!)
check "a stalled reader is timed out" wait_metric "$PORT_slow" 'koe_client_disconnects_total{reason="timeout"}' 1
check "its job is cancelled" wait_metric "$PORT_slow" 'koe_jobs_total{outcome="cancelled"}' 1
check "the log says timeout" grep -q '"outcome":"timeout"' "$T/slow.log"
# a client that stops in the middle of its request body is closed too
exec 3<>"/dev/tcp/127.0.0.1/$PORT_slow"
printf 'POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"inp' >&3
timeout 120 cat <&3 >/dev/null  # returns at the server's close (the bound only guards a hang)
check "a stalled upload is closed by the server" test $? -eq 0
exec 3<&-
check "  and counted as a timeout" wait_metric "$PORT_slow" 'koe_client_disconnects_total{reason="timeout"}' 2
check "the worker is free again" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$S/v1/audio/speech" -d '{"input":"Next, please."}')" = 200
kill -9 "$PID_slow" 2>/dev/null

# 1b. A stream nobody reads holds its own segments back (the lookahead), not the only worker:
# another request is served meanwhile; when the idle client leaves, its job is cancelled.
start queued --workers 1 --max-queue 1 --timeout 600
Q="http://127.0.0.1:$PORT_queued"
mkfifo "$T/idle.fifo"
sleep 600 <"$T/idle.fifo" & # holds the pipe open and never reads it
PIDS+=($!)
curl -s -N -X POST "$Q/v1/audio/speech" -d "{\"input\":\"$story\",\"response_format\":\"pcm\"}" >"$T/idle.fifo" &
idle_reader=$!
PIDS+=($!)
check "the unread stream runs" wait_metric "$PORT_queued" koe_jobs_running 1
check "another request is served meanwhile" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$Q/v1/audio/speech" -d '{"input":"I will not wait."}')" = 200
check "  while the unread stream is still open" test "$(metric "$PORT_queued" koe_jobs_running)" = 1
kill "$idle_reader" 2>/dev/null; wait "$idle_reader" 2>/dev/null
check "the unread stream's job ends when its client goes" wait_metric_le "$PORT_queued" koe_jobs_running 0
check "  counted as cancelled" wait_metric "$PORT_queued" 'koe_jobs_total{outcome="cancelled"}' 1
check "  and the log says client_gone" grep -q '"outcome":"client_gone"' "$T/queued.log"
kill -9 "$PID_queued" 2>/dev/null

# 2. SIGTERM while a stream is in flight: the stream completes (its last chunk arrives, which a
# failed or cut job never sends) and is as long as an undisturbed one.
start drain --workers 1 --audio-cache-mb 0 # the same request twice: both synthesized
D="http://127.0.0.1:$PORT_drain"
para=$(for i in $(seq 12); do printf 'Paragraph sentence %d is read to the very last word. ' "$i"; done)
body="{\"input\":\"$para\",\"response_format\":\"wav\",\"voice\":\"af_heart\"}"
curl -s -f -o "$T/reference.wav" -X POST "$D/v1/audio/speech" -d "$body"
check "reference stream fetched" test -s "$T/reference.wav"
# a slow reader keeps the stream in flight while the signal arrives
curl -s -f -N --limit-rate 256k -o "$T/drained.wav" -X POST "$D/v1/audio/speech" -d "$body" &
cpid=$!
check "the stream is in flight" wait_metric "$PORT_drain" koe_active_streams 1
kill -TERM "$PID_drain"
wait "$cpid"
check "the client's stream ended cleanly (curl exit 0)" test $? -eq 0
# espeak-ng's timing varies a little from run to run: compare decoded lengths, not bytes
ref=$(ffmpeg -v error -i "$T/reference.wav" -f s16le - 2>/dev/null | wc -c)
got=$(ffmpeg -v error -i "$T/drained.wav" -f s16le - 2>/dev/null | wc -c)
check "the drained stream decodes to the whole text ($got vs $ref bytes)" \
    awk -v a="$got" -v b="$ref" 'BEGIN{exit !(b > 0 && a > 0.98 * b && a < 1.02 * b)}'
wait "$PID_drain"
check "the server exited 0 after draining" test $? -eq 0
check "the log says it drained" grep -q "draining" "$T/drain.log"

# 3. Kokoro: the committed tiny weights through the server.
K="$KOE_TEST_DATA/kokoro-tiny"
if [ -d "$KOE_DATA_DIR/voices" ] && [ -f "$K/kokoro-tiny-seed1.pth" ]; then
    start kokoro --model "$K/kokoro-tiny-seed1.pth" --config "$K/kokoro-tiny-seed1.config.json" --workers 1
    B="http://127.0.0.1:$PORT_kokoro"
    check "kokoro: the log names the backend" grep -q "backend kokoro" "$T/kokoro.log"
    check "kokoro: /status says kokoro with the model loaded" node -e '
        const s = JSON.parse(process.argv[1]);
        process.exit(s.backend === "kokoro" && s.model_loaded === true && /kokoro-tiny/.test(s.model) ? 0 : 1)' \
        "$(curl -s "$B/status")"
    code=$(curl -s -o "$T/k.wav" -w '%{http_code}' -X POST "$B/v1/audio/speech" \
        -d '{"input":"Hello world. The tiny model speaks.","voice":"af_bella","response_format":"wav"}')
    check "kokoro: speech 200" test "$code" = 200
    check "kokoro: the wav decodes at 24 kHz" test "$(ffprobe -v error -show_entries stream=sample_rate -of csv=p=0 "$T/k.wav")" = 24000
    check "kokoro: an unknown voice is refused by name" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/v1/audio/speech" -d '{"input":"hi","voice":"zz_nobody"}')" = 400
    kill -TERM "$PID_kokoro"; wait "$PID_kokoro"
    check "kokoro: SIGTERM exits 0" test $? -eq 0
else
    echo "skip kokoro (no voices in $KOE_DATA_DIR or no tiny weights)"
fi

# 4. A model that cannot be loaded, asked for explicitly: a clear message, exit 1 (the voices
# are checked first, so without them the message is about them).
echo "not a checkpoint" >"$T/bad.pth"
"$KOE" serve --port 0 --data-dir "$KOE_DATA_DIR" --model "$T/bad.pth" >"$T/bad.log" 2>&1
check "an unreadable --model exits 1" test $? -eq 1
if [ -d "$KOE_DATA_DIR/voices" ]; then
    check "and names the file" grep -q "bad.pth" "$T/bad.log"
else
    check "and says the voices are missing" grep -q "voices" "$T/bad.log"
fi

[ $fails -eq 0 ] && echo "all lifecycle checks passed"
exit $((fails > 0))
