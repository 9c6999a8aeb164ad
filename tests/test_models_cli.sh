#!/usr/bin/env bash
# koe models: discovery order, Kokoro checkpoints told from other files, checksum records,
# and the backend koe serve will pick.
set -u
KOE=${KOE_BINARY:?}
. "$(dirname "$0")/lib.sh"
TINY="$KOE_TEST_DATA/kokoro-tiny/kokoro-tiny-seed1.pth"

out=$(KOE_MODEL= "$KOE" models --dir "$T")
check "empty folder: espeak-ng backend" grep -q "will speak with the espeak-ng voice" <<<"$out"

cp "$TINY" "$T/kokoro-v1_0.pth"
echo "not a model" >"$T/notes.pth"
head -c 4096 "$TINY" >"$T/cut.pth"
printf '%s  kokoro-v1_0.pth\n' "$(sha256sum "$TINY" | cut -d' ' -f1)" >"$T/kokoro-v1_0.pth.sha256"
out=$(KOE_MODEL= "$KOE" models --dir "$T" --verify)
check "exit 0" test $? -eq 0
check "the data folder's kokoro-v1_0.pth is chosen" grep -q "will run the Kokoro engine on $T/kokoro-v1_0.pth" <<<"$out"
check "checksum matches the record" grep -q "matches the download record" <<<"$out"
check "a text file is refused with a reason" grep -A3 "notes.pth" <<<"$out" | grep -q "refused"
check "a truncated checkpoint is refused with a reason" grep -A3 "cut.pth" <<<"$out" | grep -q "refused"

printf '%064d  kokoro-v1_0.pth\n' 0 >"$T/kokoro-v1_0.pth.sha256"
out=$(KOE_MODEL= "$KOE" models --dir "$T" --verify)
check "a changed file is reported" grep -q "MISMATCH" <<<"$out"

out=$(KOE_MODEL="$T/cut.pth" "$KOE" models --dir "$T")
check "KOE_MODEL is listed first" test "$(head -1 <<<"$out")" = "$T/cut.pth (KOE_MODEL)"
"$KOE" models --model "$T/notes.pth" --dir "$T" >/dev/null
check "an unusable --model exits 1" test $? -eq 1
"$KOE" models --bogus 2>/dev/null
check "bad usage exits 2" test $? -eq 2
exit $((fails > 0))
