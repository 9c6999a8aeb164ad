#!/usr/bin/env bash
# --precision on the commands that run the engine: koe synth (fp32, bf16, auto; auto is bf16
# exactly when the CPU has AVX-512 BF16 and fp32 when that is forced off with KOE_CPU_DISABLE;
# the same seed replays the same audio in each precision), koe model-check (bf16 passes the
# committed case with bf16 tolerances and says so), bad values exit 2, int8 is refused.
set -u
KOE=${KOE_BINARY:?}
D="$KOE_TEST_DATA/kokoro-tiny"
W="$D/kokoro-tiny-seed1.pth"
C="$D/kokoro-tiny-seed1.config.json"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi; }
unset KOE_PRECISION KOE_CPU_DISABLE
TEXT="Hello world. The tiny model speaks."
synth() { local out=$1; shift; "$KOE" synth --model "$W" --config "$C" --seed 3 --out "$out" "$@" "$TEXT" 2>"$T/err"; }

synth "$T/fp32.wav" --precision fp32; check "synth --precision fp32" test $? -eq 0
synth "$T/bf16.wav" --precision bf16; check "synth --precision bf16" test $? -eq 0
synth "$T/bf16b.wav" --precision bf16
check "bf16 replays the same audio for a seed" cmp -s "$T/bf16.wav" "$T/bf16b.wav"
check "bf16 audio differs from fp32 (it really ran in bf16)" test -n "$(cmp "$T/fp32.wav" "$T/bf16.wav" 2>&1)"
synth "$T/auto.wav"; check "synth default (auto)" test $? -eq 0
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && grep -qw avx512f /proc/cpuinfo; then
    check "auto is bf16 on a CPU with AVX-512 BF16" cmp -s "$T/auto.wav" "$T/bf16.wav"
else
    check "auto is fp32 on a CPU without AVX-512 BF16" cmp -s "$T/auto.wav" "$T/fp32.wav"
fi
KOE_CPU_DISABLE=avx512bf16,avx512vnni synth "$T/auto-off.wav" --precision auto
check "auto is fp32 with BF16/VNNI forced off" cmp -s "$T/auto-off.wav" "$T/fp32.wav"
KOE_CPU_DISABLE=avx512bf16,avx512vnni synth "$T/bf16-emul.wav" --precision bf16
check "bf16 without AVX-512 BF16 (emulated) works" test -s "$T/bf16-emul.wav"
KOE_PRECISION=bf16 synth "$T/env.wav"
check "KOE_PRECISION=bf16 is bf16" cmp -s "$T/env.wav" "$T/bf16.wav"
synth "$T/bad.wav" --precision fp16; rc=$?
check "synth --precision fp16 exits 2" test $rc -eq 2
check "  naming the value" grep -q "fp16" "$T/err"
check "  and writes no file" test ! -e "$T/bad.wav"
synth "$T/i8.wav" --precision int8; rc=$?
check "synth --precision int8 fails (not implemented) with a message" \
    bash -c "test $rc -ne 0 && grep -q int8 '$T/err' && test ! -e '$T/i8.wav'"

"$KOE" model-check --weights "$W" --config "$C" --case "$D/case0_T8_speed1" --precision bf16 >"$T/mc.json"
check "model-check --precision bf16 passes the committed case" test $? -eq 0
check "  the JSON says bf16 and every stage passes" node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    if (r.precision !== "bf16" || !r.pass || r.duration_mismatches !== 0) process.exit(1);
    for (const k of ["dec_encode", "gen_input", "gen.conv_post", "gen.audio"])
        if (!r.stages[k].pass || !(r.stages[k].max_rel > 1e-4) || !(r.stages[k].tolerance >= 1e-2)) process.exit(1);
    if (r.stages.bert.tolerance !== 1e-4) process.exit(1);' "$T/mc.json"
"$KOE" model-check --weights "$W" --config "$C" --case "$D/case0_T8_speed1" --precision bogus >/dev/null 2>&1
check "model-check --precision bogus exits 2" test $? -eq 2
echo "$fails failed"
[ "$fails" -eq 0 ]
