#!/usr/bin/env bash
# koe voices: the table and --json over fake packs in a temp folder (always) and over the real
# kokoro-js voices (when make deps fetched them); clear failures for a missing folder, a pack of
# the wrong size and bad usage.
set -u
KOE=${KOE_BINARY:?}
fails=0
check() { if "$@"; then printf "ok   %.90s\n" "$*"; else printf "FAIL %.300s\n" "$*"; fails=$((fails + 1)); fi; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/koe-voices-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Fake packs: the right size (510 x 256 float32), names that give each language and gender.
mkdir "$tmp/voices"
for v in af_one bm_two zf_three ef_four xq_odd; do head -c 522240 /dev/zero >"$tmp/voices/$v.bin"; done
echo "not a voice" >"$tmp/voices/README.txt"
out=$("$KOE" voices --dir "$tmp/voices")
check test $? -eq 0
check test "$(grep -c . <<<"$out")" -eq 6
check grep -qE '^af_one +en-us +female$' <<<"$out"
check grep -qE '^bm_two +en-gb +male$' <<<"$out"
check grep -qE '^zf_three +zh +female$' <<<"$out"
check grep -qE '^xq_odd +unknown +unknown$' <<<"$out"
json=$("$KOE" voices --dir "$tmp/voices" --json)
check node -e 'const v = JSON.parse(process.argv[1]).voices;
  if (v.length !== 5 || v[0].name !== "af_one" || v[1].gender !== "male" || v[2].language !== "es")
    process.exit(1)' "$json"

# A pack of the wrong size is named; a missing folder says how to get the voices.
head -c 1000 /dev/zero >"$tmp/voices/af_short.bin"
"$KOE" voices --dir "$tmp/voices" >/dev/null 2>"$tmp/err"
check test $? -eq 1
check grep -q "af_short.bin" "$tmp/err"
"$KOE" voices --dir /nonexistent 2>"$tmp/err"
check test $? -eq 1
check grep -q "make deps" "$tmp/err"
"$KOE" voices --bogus 2>/dev/null
check test $? -eq 2
"$KOE" voices extra-argument 2>/dev/null
check test $? -eq 2

# The real kokoro-js voices.
if [ -d "$KOE_DATA_DIR/voices" ]; then
  out=$("$KOE" voices)
  check test "$(grep -c . <<<"$out")" -eq 55
  check grep -qE '^af_heart +en-us +female$' <<<"$out"
  check grep -qE '^bm_george +en-gb +male$' <<<"$out"
  json=$("$KOE" voices --json)
  check node -e 'const v = JSON.parse(process.argv[1]).voices;
    if (v.length !== 54 || !v.some(x => x.name === "jf_alpha" && x.language === "ja")) process.exit(1)' "$json"
else
  echo "skip real voices: no $KOE_DATA_DIR/voices (make deps)"
fi
exit $((fails > 0))
