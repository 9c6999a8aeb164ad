#!/usr/bin/env bash
# koe voices: the table and --json over the real kokoro-js voices, and a clear failure without.
set -u
KOE=${KOE_BINARY:?}
[ -d "$KOE_DATA_DIR/voices" ] || { echo "no voices (make deps)"; exit 77; }
fails=0
check() { if "$@"; then echo "ok   ${*: -1}"; else echo "FAIL $*"; fails=$((fails + 1)); fi; }
out=$("$KOE" voices)
check test "$(grep -c . <<<"$out")" -eq 55
check grep -qE '^af_heart +en-us +female$' <<<"$out"
check grep -qE '^bm_george +en-gb +male$' <<<"$out"
json=$("$KOE" voices --json)
check node -e 'const v = JSON.parse(process.argv[1]).voices;
  if (v.length !== 54 || !v.some(x => x.name === "jf_alpha" && x.language === "ja")) process.exit(1)' "$json"
"$KOE" voices --dir /nonexistent 2>"${TMPDIR:-/tmp}/koe-voices-err.$$"
check test $? -eq 1
check grep -q "make deps" "${TMPDIR:-/tmp}/koe-voices-err.$$"
rm -f "${TMPDIR:-/tmp}/koe-voices-err.$$"
"$KOE" voices --bogus 2>/dev/null
check test $? -eq 2
exit $((fails > 0))
