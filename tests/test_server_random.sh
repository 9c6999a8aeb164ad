#!/usr/bin/env bash
# koe serve --random-weights: without a file it writes random weights once to a cache file in
# the data folder (never leaving a partial one) and reuses it; "--random-weights FILE" and
# KOE_RANDOM_WEIGHTS name the file; the server then runs Kokoro on them, warms every worker up
# before it says ready, and speaks. The tiny config keeps the files small. Waits poll for a state.
set -u
KOE=${KOE_BINARY:?}
CFG="$KOE_TEST_DATA/kokoro-tiny/kokoro-tiny-seed1.config.json"
if [ ! -d "$KOE_DATA_DIR/voices" ] || [ ! -f "$CFG" ]; then
    echo "skip: no voices in $KOE_DATA_DIR or no tiny config"
    exit 77
fi
. "$(dirname "$0")/lib.sh"

mkdir "$T/data"
ln -s "$(cd "$KOE_DATA_DIR" && pwd)/voices" "$T/data/voices"
CACHE="$T/data/kokoro-random-v1_0.safetensors"

SERVE_ARGS=(--data-dir "$T/data" --workers 2 --config "$CFG")
START_POLLS=1200
stop() { # NAME: SIGTERM, expect exit 0
    local pid; eval "pid=\$PID_$1"
    kill -TERM "$pid"; wait "$pid"
}
speaks() { # port: a wav from Kokoro that ffmpeg decodes to some audio
    local code
    code=$(curl -s -o "$T/out.wav" -w '%{http_code}' -X POST "http://127.0.0.1:$1/v1/audio/speech" \
        -d '{"input":"Random weights, spoken anyway.","voice":"af_bella","response_format":"wav"}')
    [ "$code" = 200 ] || return 1
    local bytes
    bytes=$(ffmpeg -v error -i "$T/out.wav" -f s16le -ac 1 -ar 24000 - 2>/dev/null | wc -c)
    [ "$bytes" -gt 0 ]
}
backend_is() { # port model-regex
    curl -s "http://127.0.0.1:$1/status" | node -e '
        const s = JSON.parse(require("fs").readFileSync(0));
        process.exit(s.backend === "kokoro" && s.model_loaded === true && new RegExp(process.argv[1]).test(s.model) ? 0 : 1)' "$2"
}

# 1. --random-weights alone: the cache file in the data folder, written once.
start first --random-weights
check "--random-weights alone starts" test -n "$PORT_first"
check "  writes the cache file in the data folder" test -s "$CACHE"
check "  says it wrote it" grep -q "writing full-size random weights to $CACHE" "$T/first.log"
check "  leaves no partial file" test -z "$(ls "$T/data" | grep partial)"
check "  runs Kokoro on it" backend_is "$PORT_first" 'kokoro-random-v1_0\.safetensors$'
check "  warms both workers (and the express one) up before ready" grep -q "warm-up: 2 workers + 1 express" "$T/first.log"
check "  speaks" speaks "$PORT_first"
check "  SIGTERM exits 0" stop first

# 2. A second start reuses the file as it is.
sum=$(sha256sum "$CACHE" | cut -d' ' -f1)
start again --random-weights
check "a second start reuses the cache" test -n "$PORT_again"
check "  without writing it again" test "$(grep -c "writing full-size random weights" "$T/again.log")" = 0
check "  the file is unchanged" test "$(sha256sum "$CACHE" | cut -d' ' -f1)" = "$sum"
check "  and speaks" speaks "$PORT_again"
# Kokoro reports where its first segment's time went: the text side's mark sits between the
# front end's and the first segment's, and the steps name the encoder side and the vocoder.
check "  the TTFA breakdown splits text side and vocoder" node -e '
    const t = JSON.parse(process.argv[1]), s = t.stages;
    const ok = s.text_side_done.samples === t.samples && t.samples > 0 &&
        s.front_end_done.p50_ms <= s.text_side_done.p50_ms &&
        s.text_side_done.p50_ms <= s.first_segment_done.p50_ms &&
        "encoder_and_predictor" in t.steps_p50_ms && "vocoder" in t.steps_p50_ms &&
        !("synthesis" in t.steps_p50_ms) && Array.isArray(t.recommendations);
    process.exit(ok ? 0 : 1)' "$(curl -s "http://127.0.0.1:$PORT_again/v1/performance/ttfa")"
check "  SIGTERM exits 0" stop again

# 3. A file named as a separate word (the official .pth layout, by its extension).
start named --random-weights "$T/rw.pth" --warmup 0
check "--random-weights FILE writes FILE" test -s "$T/rw.pth"
check "  as a torch zip (.pth)" test "$(head -c 2 "$T/rw.pth")" = PK
check "  runs Kokoro on it" backend_is "$PORT_named" 'rw\.pth$'
check "  --warmup 0 skips the warm-up" test "$(grep -c "warm-up" "$T/named.log")" = 0
check "  and speaks" speaks "$PORT_named"
check "  SIGTERM exits 0" stop named

# 4. The environment variable, with a file name.
KOE_RANDOM_WEIGHTS="$T/env.safetensors" start env
check "KOE_RANDOM_WEIGHTS=FILE writes FILE" test -s "$T/env.safetensors"
check "  runs Kokoro on it" backend_is "$PORT_env" 'env\.safetensors$'
check "  SIGTERM exits 0" stop env

# 5. Failures: a clear message, exit 1, no file left behind.
"$KOE" serve --port 0 --data-dir "$T/data" --random-weights "$T/bad.safetensors" \
    --config "$T/no-such-config.json" >"$T/bad.log" 2>&1
check "a missing config exits 1" test $? -eq 1
check "  and names it" grep -q "no-such-config" "$T/bad.log"
check "  leaving no file" test -z "$(ls "$T" | grep -E '^bad\.safetensors|partial')"
"$KOE" serve --port 0 --data-dir "$T/data" --random-weights "$T/no-such-dir/rw.safetensors" \
    --config "$CFG" >"$T/bad2.log" 2>&1
check "an unwritable path exits 1" test $? -eq 1

check "no sanitizer reports in any server log" test -z "$(grep -l Sanitizer "$T"/*.log)"

[ $fails -eq 0 ] && echo "all random-weights checks passed"
exit $((fails > 0))
