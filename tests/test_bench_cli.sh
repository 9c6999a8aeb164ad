#!/usr/bin/env bash
# koe bench: the espeak-ng engine (always there) gives a table and valid JSON with a sentence
# and a paragraph, positive times and audio; the tiny Kokoro weights work through --model; bad
# flags exit 2 with a message; --random-weights without the file says how to make it (exit 1).
set -u
KOE=${KOE_BINARY:?} TD=${KOE_TEST_DATA:?} DD=${KOE_DATA_DIR:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { # name command...
    local name=$1
    shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
"$KOE" bench --runs 1 --data-dir "$DD" >"$T/table" 2>"$T/err"
check "espeak-ng: exit 0" test $? -eq 0
check "espeak-ng: a table with the sentence and the paragraph" grep -q "^| paragraph |" "$T/table"
"$KOE" bench --runs 2 --json --data-dir "$DD" "Hello there. How are you today?" >"$T/json" 2>"$T/err"
check "json: exit 0" test $? -eq 0
check "json: figures that make sense" node -e '
    const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const r = o.results[0];
    if (!(o.engine === "espeak-ng" && o.runs === 2 && o.results.length === 1 && r.text === "text")) process.exit(1);
    if (!(r.ttfa_ms > 0 && r.total_s * 1000 >= r.ttfa_ms && r.audio_s > 0.5 && r.rtf > 0)) process.exit(1);' "$T/json"
if [ -f "$DD/voices/af_bella.bin" ]; then
    "$KOE" bench --runs 1 --json --voice af_bella --data-dir "$DD" --precision fp32 \
        --model "$TD/kokoro-tiny/kokoro-tiny-seed1.pth" --config "$TD/kokoro-tiny/kokoro-tiny-seed1.config.json" \
        "Tiny weights speak." >"$T/tiny" 2>"$T/err"
    check "tiny Kokoro: exit 0" test $? -eq 0
    check "tiny Kokoro: engine and precision named" node -e '
        const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        if (!(o.engine === "kokoro" && o.precision === "fp32" && o.results[0].audio_s > 0)) process.exit(1);' "$T/tiny"
fi
for bad in "--runs 0" "--threads x" "--precision fp64" "--nope"; do
    # shellcheck disable=SC2086
    "$KOE" bench $bad >/dev/null 2>"$T/err"
    check "bad $bad: exit 2 with a message" test $? -eq 2 -a -s "$T/err"
done
mkdir -p "$T/empty"
"$KOE" bench --random-weights --data-dir "$T/empty" >/dev/null 2>"$T/err"
check "--random-weights without the file: exit 1, says how" test $? -eq 1
check "  names koe random-weights" grep -q "koe random-weights" "$T/err"
[ $fails -eq 0 ]
