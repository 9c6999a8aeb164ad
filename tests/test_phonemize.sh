#!/bin/bash
# koe phonemize: the JSON is exactly what issue 2 specifies, its spans tile the input, tokens are
# Kokoro ids without pads, and bad input gives a message on stderr and exit status 2.
set -u
KOE=${KOE_BINARY:?KOE_BINARY not set}
command -v python3 >/dev/null || { echo "python3 missing: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# check_json FILE_WITH_INPUT FILE_WITH_OUTPUT [expected dropped]
check_json() {
    python3 - "$1" "$2" "${3:-}" <<'PY'
import json, sys
inp = open(sys.argv[1], 'rb').read()
out = open(sys.argv[2], 'rb').read().decode('utf-8')
want_dropped = sys.argv[3]
assert out.count('\n') == 1 and out.endswith('\n'), 'not exactly one line'
d = json.loads(out)
assert list(d.keys()) == ['segments', 'dropped'], d.keys()
assert isinstance(d['dropped'], int) and d['dropped'] >= 0
if want_dropped:
    assert d['dropped'] == int(want_dropped), ('dropped', d['dropped'], want_dropped)
ws = set(' \t\n\r\x0b\x0c\x85\xa0\u2028\u2029\u202f\u205f\u3000') | set(chr(c) for c in range(0x2000, 0x200b))
pos = 0
for s in d['segments']:
    assert list(s.keys()) == ['start', 'end', 'text', 'normalized', 'phonemes', 'tokens'], s.keys()
    b, e = s['start'], s['end']
    assert pos <= b < e <= len(inp), ('span', b, e, pos)
    gap = inp[pos:b].decode('utf-8')
    assert all(c in ws for c in gap), ('uncovered', gap)
    assert inp[b:e].decode('utf-8') == s['text'], ('text', s['text'])
    assert s['text'] == s['text'].strip(), 'segment not trimmed'
    assert all(isinstance(t, int) and 1 <= t <= 177 for t in s['tokens']), 'bad token'
    assert (len(s['tokens']) > 0) == (len(s['phonemes']) > 0)
    assert len(s['tokens']) == len(s['phonemes']), 'one id per phoneme symbol'
    pos = e
assert all(c in ws for c in inp[pos:].decode('utf-8')), 'tail uncovered'
PY
}

run_case() { # name, expected dropped or "", then the input on stdin
    local name=$1 dropped=$2
    cat > "$tmp/in"
    if ! "$KOE" phonemize --json < "$tmp/in" > "$tmp/out" 2> "$tmp/err"; then
        echo "FAIL $name: exit status $? ($(cat "$tmp/err"))"; fail=1; return
    fi
    if ! check_json "$tmp/in" "$tmp/out" "$dropped" 2> "$tmp/py"; then
        echo "FAIL $name: $(tail -1 "$tmp/py")"; fail=1; return
    fi
    echo "ok   $name"
}

printf 'Hello, world! Dr. Smith paid $3.50 at 3:30pm on 2024-03-15.\n\nNew paragraph: "quoted"...' | run_case prose 0
printf '  Leading and trailing spaces  \n\t' | run_case spaces 0
printf 'Emoji \xf0\x9f\x98\x80 and \xe2\x9d\xa4\xef\xb8\x8f here.' | run_case emoji 3
printf 'Unicode: \xc3\xa9t\xc3\xa9, \xd0\x96, \xe4\xb8\xad\xe6\x96\x87 \xe2\x80\x94 fine\xe2\x80\xa6' | run_case unicode ""
printf '' | run_case empty 0
printf ' \n\t\n ' | run_case whitespace 0
printf '!!! ... ??? ;;; ,,, ---' | run_case punctuation 0
head -c 30000 /dev/zero | tr '\0' 'a' | run_case giant_word 0
python3 -c "
import random; random.seed(7)
w='the of and river light stone 42 3.5 \$10 Dr. e.g. mid-day'.split()
print(' '.join(random.choice(w)+random.choice(['', '', ',', '.', '!', '?']) for _ in range(3000)))" | run_case long_text ""

# TEXT on the command line, several words joined; --lang; the readable form
"$KOE" phonemize --json --lang en-gb Hello there, friend. > "$tmp/out" 2>&1 && printf 'Hello there, friend.' > "$tmp/in" && check_json "$tmp/in" "$tmp/out" 0 \
    && echo "ok   argv_text" || { echo "FAIL argv_text: $(cat "$tmp/out")"; fail=1; }
"$KOE" phonemize --voice ef_dora "Hola, amigo." > "$tmp/out" 2>&1 && grep -q "phonemes:" "$tmp/out" \
    && echo "ok   readable" || { echo "FAIL readable: $(cat "$tmp/out")"; fail=1; }

# --first-min / --first-max shape the first segment.
t='Hello there, my friend. This sentence is the second one.'
n1=$("$KOE" phonemize --json --first-min 5 "$t" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["segments"]))')
n2=$("$KOE" phonemize --json --first-min 16 "$t" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["segments"]))')
n3=$("$KOE" phonemize --json --first-min 200 --first-max 300 "$t" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["segments"]))')
[ "$n1" = 3 ] && [ "$n2" = 2 ] && [ "$n3" = 1 ] && echo "ok   first segment options" \
    || { echo "FAIL first segment options: $n1 $n2 $n3"; fail=1; }

# Bad input: message on stderr, exit 2, nothing on stdout.
expect_usage() { # name, then the command
    local name=$1; shift
    "$@" > "$tmp/out" 2> "$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && [ -s "$tmp/err" ] && [ ! -s "$tmp/out" ]; then echo "ok   $name ($(head -1 "$tmp/err"))"
    else echo "FAIL $name: exit $rc, stderr '$(cat "$tmp/err")'"; fail=1; fi
}
printf 'bad \xff\xfe bytes' > "$tmp/bad"
expect_usage invalid_utf8 sh -c "'$KOE' phonemize --json < '$tmp/bad'"
expect_usage invalid_utf8_argv "$KOE" phonemize "$(printf 'x\xc3')"
expect_usage japanese "$KOE" phonemize --lang ja "konnichiwa"
expect_usage mandarin_voice "$KOE" phonemize --voice zf_xiaobei "ni hao"
expect_usage unknown_lang "$KOE" phonemize --lang xx "hello"
expect_usage unknown_option "$KOE" phonemize --frobnicate "hello"
expect_usage missing_value "$KOE" phonemize --lang
expect_usage bad_number "$KOE" phonemize --first-max -3 "hello"
sh -c "'$KOE' phonemize < '$tmp/bad'" 2> "$tmp/err" >/dev/null
grep -q "byte 4" "$tmp/err" && echo "ok   error names the byte" || { echo "FAIL error message: $(cat "$tmp/err")"; fail=1; }

exit $fail
