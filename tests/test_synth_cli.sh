#!/usr/bin/env bash
# koe synth: text through the front end and the Kokoro engine (the committed tiny weights) or
# espeak-ng into a file of the extension's format; bad input exits 2 and leaves no file.
set -u
KOE=${KOE_BINARY:?}
D="$KOE_TEST_DATA/kokoro-tiny"
. "$(dirname "$0")/lib.sh"
[ -d "$KOE_DATA_DIR/voices" ] || { echo "no voices (make deps)"; exit 77; }
export KOE_DATA_DIR

"$KOE" synth --model "$D/kokoro-tiny-seed1.pth" --config "$D/kokoro-tiny-seed1.config.json" \
    --voice af_bella:0.5+am_adam:0.5 --seed 3 --out "$T/k.wav" "Hello world. The tiny model speaks, 1, 2, 3." 2>"$T/err"
check "kokoro synth exits 0" test $? -eq 0
check "kokoro wav decodes at 24 kHz" test "$(ffprobe -v error -show_entries stream=sample_rate -of csv=p=0 "$T/k.wav")" = 24000
check "it says which backend spoke" grep -q "kokoro" "$T/err"
"$KOE" synth --model "$D/kokoro-tiny-seed1.pth" --config "$D/kokoro-tiny-seed1.config.json" \
    --seed 3 --voice af_bella:0.5+am_adam:0.5 --out "$T/k2.wav" "Hello world. The tiny model speaks, 1, 2, 3." 2>/dev/null
check "a seed replays the same audio" cmp -s "$T/k.wav" "$T/k2.wav"
echo "Standard input, spoken by espeak-ng." | "$KOE" synth --out "$T/e.mp3" 2>/dev/null
check "stdin to mp3 with espeak-ng" test "$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$T/e.mp3")" = mp3
"$KOE" synth --out "$T/x.xyz" hi 2>/dev/null
check "unknown extension exits 2" test $? -eq 2
"$KOE" synth --voice zz_nope --out "$T/v.wav" hi 2>"$T/err"
check "unknown voice exits 2" test $? -eq 2
check "no file is left behind" test -z "$(ls "$T" | grep -v -e '^k' -e '^e.mp3' -e '^err')"
"$KOE" synth --out "$T/empty.wav" "" 2>/dev/null
check "empty text exits 2" test $? -eq 2
# a seed is plain digits: strtoull would take "-5" (wrapped) and "" (0)
for bad in -5 "" 1x; do
    "$KOE" synth --seed "$bad" --out "$T/s.wav" hi 2>"$T/err"
    rc=$?
    check "--seed '$bad' exits 2 and says why" test $rc -eq 2 -a -n "$(grep 'seed wants a number' "$T/err")"
done
"$KOE" synth --speed 9 --out "$T/s.wav" hi 2>"$T/err"
rc=$?
check "--speed 9 exits 2 and says why" test $rc -eq 2 -a -n "$(grep 'speed wants 0.25 to 4.0' "$T/err")"
exit $((fails > 0))
