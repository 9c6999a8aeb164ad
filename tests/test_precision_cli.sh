#!/usr/bin/env bash
# --precision on the commands that run the engine: koe synth (fp32, bf16, int8, auto; auto is
# int8 exactly when the CPU has AVX-512 VNNI, else bf16 exactly when it has AVX-512 BF16, else
# fp32, also when they are forced off with KOE_CPU_DISABLE; the same seed replays the same audio
# in each precision, and int8 gives the same audio with each of its kernels),
# koe model-check (bf16 and int8 pass the committed case with their tolerances and say so),
# bad values exit 2.
set -u
KOE=${KOE_BINARY:?}
D="$KOE_TEST_DATA/kokoro-tiny"
W="$D/kokoro-tiny-seed1.pth"
C="$D/kokoro-tiny-seed1.config.json"
. "$(dirname "$0")/lib.sh"
unset KOE_PRECISION KOE_CPU_DISABLE
TEXT="Hello world. The tiny model speaks."
synth() { local out=$1; shift; "$KOE" synth --model "$W" --config "$C" --seed 3 --out "$out" "$@" "$TEXT" 2>"$T/err"; }

synth "$T/fp32.wav" --precision fp32; check "synth --precision fp32" test $? -eq 0
synth "$T/bf16.wav" --precision bf16; check "synth --precision bf16" test $? -eq 0
synth "$T/int8.wav" --precision int8; check "synth --precision int8" test $? -eq 0
synth "$T/bf16b.wav" --precision bf16
check "bf16 replays the same audio for a seed" cmp -s "$T/bf16.wav" "$T/bf16b.wav"
check "bf16 audio differs from fp32 (it really ran in bf16)" test -n "$(cmp "$T/fp32.wav" "$T/bf16.wav" 2>&1)"
check "int8 audio differs from fp32 and bf16" \
    bash -c "! cmp -s '$T/fp32.wav' '$T/int8.wav' && ! cmp -s '$T/bf16.wav' '$T/int8.wav'"
synth "$T/auto.wav"; check "synth default (auto)" test $? -eq 0
has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
if has avx512_vnni && has avx512f && has avx512bw && has avx512vl; then
    check "auto is int8 on a CPU with AVX-512 VNNI" cmp -s "$T/auto.wav" "$T/int8.wav"
elif has avx512_bf16 && has avx512f; then
    check "auto is bf16 on a CPU with AVX-512 BF16 (no VNNI)" cmp -s "$T/auto.wav" "$T/bf16.wav"
else
    check "auto is fp32 on a CPU without AVX-512 BF16/VNNI" cmp -s "$T/auto.wav" "$T/fp32.wav"
fi
KOE_CPU_DISABLE=avx512vnni synth "$T/auto-novnni.wav" --precision auto
if has avx512_bf16 && has avx512f; then
    check "auto is bf16 with VNNI forced off" cmp -s "$T/auto-novnni.wav" "$T/bf16.wav"
else
    check "auto is fp32 with VNNI forced off" cmp -s "$T/auto-novnni.wav" "$T/fp32.wav"
fi
KOE_CPU_DISABLE=avx512bf16,avx512vnni synth "$T/auto-off.wav" --precision auto
check "auto is fp32 with BF16/VNNI forced off" cmp -s "$T/auto-off.wav" "$T/fp32.wav"
KOE_CPU_DISABLE=avx512bf16,avx512vnni synth "$T/bf16-emul.wav" --precision bf16
check "bf16 without AVX-512 BF16 (emulated) works" test -s "$T/bf16-emul.wav"
# int8's sums are exact integers: every kernel gives the same audio (the bf16 layers it keeps
# run on the same bf16 kernel here, AVX-512 BF16 stays on)
KOE_CPU_DISABLE=avx512vnni synth "$T/int8-avx2.wav" --precision int8
check "int8 through AVX2 gives the same audio as the best kernel" cmp -s "$T/int8-avx2.wav" "$T/int8.wav"
KOE_CPU_DISABLE=avx512vnni,avx2 synth "$T/int8-c.wav" --precision int8
if has avx512_bf16 || ! has avx2; then
    check "int8 through portable C gives the same audio" cmp -s "$T/int8-c.wav" "$T/int8.wav"
else
    check "int8 through portable C works" test -s "$T/int8-c.wav"
fi
KOE_PRECISION=bf16 synth "$T/env.wav"
check "KOE_PRECISION=bf16 is bf16" cmp -s "$T/env.wav" "$T/bf16.wav"
synth "$T/bad.wav" --precision fp16; rc=$?
check "synth --precision fp16 exits 2" test $rc -eq 2
check "  naming the value" grep -q "fp16" "$T/err"
check "  and writes no file" test ! -e "$T/bad.wav"

"$KOE" model-check --weights "$W" --config "$C" --case "$D/case0_T8_speed1" --precision bf16 >"$T/mc.json"
check "model-check --precision bf16 passes the committed case" test $? -eq 0
check "  the JSON says bf16 and every stage passes" node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    if (r.precision !== "bf16" || !r.pass || r.duration_mismatches !== 0) process.exit(1);
    for (const k of ["dec_encode", "gen_input", "gen.conv_post", "gen.audio"])
        if (!r.stages[k].pass || !(r.stages[k].max_rel > 1e-4) || !(r.stages[k].tolerance >= 1e-2)) process.exit(1);
    if (r.stages.bert.tolerance !== 1e-4) process.exit(1);' "$T/mc.json"
"$KOE" model-check --weights "$W" --config "$C" --case "$D/case0_T8_speed1" --precision int8 >"$T/mc8.json"
check "model-check --precision int8 passes the committed case" test $? -eq 0
check "  the JSON says int8 and every stage passes with int8's tolerances" node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    if (r.precision !== "int8" || !r.pass || r.duration_mismatches !== 0) process.exit(1);
    for (const k of ["dec_encode", "gen_input", "gen.conv_post", "gen.audio"])
        if (!r.stages[k].pass || !(r.stages[k].max_rel > 1e-4) || !(r.stages[k].tolerance >= 4e-2)) process.exit(1);
    if (r.stages.bert.tolerance !== 1e-4) process.exit(1);' "$T/mc8.json"
"$KOE" model-check --weights "$W" --config "$C" --case "$D/case0_T8_speed1" --precision bogus >/dev/null 2>&1
check "model-check --precision bogus exits 2" test $? -eq 2
echo "$fails failed"
[ "$fails" -eq 0 ]
