#!/usr/bin/env bash
# koe model-check: a committed case passes (exit 0, JSON with every stage), a doctored copy of it
# fails naming the stage, timing adds median_s, bad arguments exit 2.
set -u
KOE=${KOE_BINARY:?}
D="$KOE_TEST_DATA/kokoro-tiny"
W="$D/kokoro-tiny-seed1.pth"
C="$D/kokoro-tiny-seed1.config.json"
. "$(dirname "$0")/lib.sh"

"$KOE" model-check --weights "$W" --config "$C" --case "$D/case0_T8_speed1" >"$T/ok.json"
check "committed case exits 0" test $? -eq 0
check "JSON lists the stages with errors" node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const s = r.stages;
    for (const k of ["bert", "d_en", "pred_dur", "en", "F0_pred", "t_en", "asr", "dec_encode", "gen_input", "gen.audio"])
        if (!s[k] || typeof s[k].max_abs !== "number" || !s[k].pass) { console.error("stage", k); process.exit(1); }
    if (!r.pass || r.duration_mismatches !== 0) process.exit(1);' "$T/ok.json"

# Doctor a copy: perturb dec_decode1 by 1% of its range.
cp -r "$D/case0_T8_speed1" "$T/bad"
node -e '
    const fs = require("fs"), p = process.argv[1];
    const b = fs.readFileSync(p); const f = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    let m = 0; for (const x of f) m = Math.max(m, Math.abs(x));
    f[7] += 0.01 * m; fs.writeFileSync(p, Buffer.from(f.buffer, f.byteOffset, f.byteLength));' "$T/bad/dec_decode1.f32"
"$KOE" model-check --weights "$W" --config "$C" --case "$T/bad" >"$T/bad.json"
check "doctored case exits non-zero" test $? -ne 0
check "the failing stage is named" grep -q '"first_failure":[[:space:]]*"dec_decode1"' "$T/bad.json"

# Doctored durations: the mismatch is counted.
cp -r "$D/case0_T8_speed1" "$T/dur"
node -e '
    const fs = require("fs"), p = process.argv[1];
    const b = fs.readFileSync(p); const d = new BigInt64Array(b.buffer, b.byteOffset, b.length / 8);
    d[3] += 1n; fs.writeFileSync(p, Buffer.from(d.buffer, d.byteOffset, d.byteLength));' "$T/dur/pred_dur.i64"
"$KOE" model-check --weights "$W" --config "$C" --case "$T/dur" >"$T/dur.json"
check "a wrong duration fails" test $? -ne 0
check "duration mismatches reported" grep -q '"duration_mismatches":[[:space:]]*1' "$T/dur.json"

"$KOE" model-check --weights "$W" --config "$C" --case "$D/case1_T40_speed1" --runs 3 --threads 2 >"$T/t.json"
check "--runs adds median_s" grep -q '"median_s"' "$T/t.json"

"$KOE" model-check --weights "$W" --config "$C" --case "$T/nonexistent" 2>/dev/null
check "a missing case exits 2" test $? -eq 2
"$KOE" model-check --case "$D/case0_T8_speed1" 2>/dev/null
check "no weights exits 2" test $? -eq 2
exit $((fails > 0))
