#!/usr/bin/env bash
# koe download against a local stand-in host (these machines have no internet): a good file,
# the Hugging Face redirect shape, a server dying mid-transfer then a resume, a server that
# ignores Range, a wrong checksum, a short file, and bad arguments.
set -u
command -v node >/dev/null || { echo "node not installed"; exit 77; }
KOE=${KOE_BINARY:?}
T=$(mktemp -d)
node "$KOE_SOURCE_DIR/tests/download/server.js" >"$T/port" 2>"$T/log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
read -r PORT SHA <"$T/port"
BASE="http://127.0.0.1:$PORT"
fails=0
check() { # description, then a command that must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# 1. A good file: verified, sidecar written, no .part left.
"$KOE" download --quiet --dir "$T/a" --url "$BASE/good" kokoro-v1_0.pth
check "good download exits 0" test $? -eq 0
check "good file has the published SHA-256" test "$(sha_of "$T/a/kokoro-v1_0.pth")" = "$SHA"
check "no partial left" test ! -e "$T/a/kokoro-v1_0.pth.part"
check "sidecar names the checksum" grep -q "$SHA" "$T/a/kokoro-v1_0.pth.sha256"
out=$("$KOE" download --dir "$T/a" --url "$BASE/good" kokoro-v1_0.pth)
check "second run sees the verified file" grep -q "already present and verified" <<<"$out"

# 2. The Hugging Face shape: the size and SHA-256 are on the redirect, not on the file.
"$KOE" download --quiet --dir "$T/b" --url "$BASE/redirect" kokoro-v1_0.pth
check "redirect download exits 0" test $? -eq 0
check "redirect file verified" test "$(sha_of "$T/b/kokoro-v1_0.pth")" = "$SHA"

# 3. The server dies mid-transfer: non-zero exit, partial kept, next run resumes with Range.
"$KOE" download --quiet --dir "$T/c" --url "$BASE/dieonce" kokoro-v1_0.pth 2>"$T/err"
check "interrupted download fails" test $? -ne 0
check "interrupted download says how to resume" grep -q "run the same command again" "$T/err"
check "partial file kept" test -s "$T/c/kokoro-v1_0.pth.part"
check "final name not taken by a partial file" test ! -e "$T/c/kokoro-v1_0.pth"
"$KOE" download --quiet --dir "$T/c" --url "$BASE/dieonce" kokoro-v1_0.pth
check "resumed download exits 0" test $? -eq 0
check "resumed file verified" test "$(sha_of "$T/c/kokoro-v1_0.pth")" = "$SHA"
check "resume used a Range request" grep -q "GET /dieonce/kokoro-v1_0.pth range=bytes=[1-9]" "$T/log"

# 4. A server that ignores Range: the partial is restarted, the result still right.
mkdir -p "$T/d" && head -c 1000 /dev/urandom >"$T/d/kokoro-v1_0.pth.part"
"$KOE" download --quiet --dir "$T/d" --url "$BASE/norange" kokoro-v1_0.pth
check "range-ignoring server still verified" test "$(sha_of "$T/d/kokoro-v1_0.pth")" = "$SHA"

# 5. Wrong published checksum: fails, deletes the partial, says so.
"$KOE" download --quiet --dir "$T/e" --url "$BASE/badsum" kokoro-v1_0.pth 2>"$T/err"
check "checksum mismatch fails" test $? -ne 0
check "mismatch is named" grep -q "SHA-256 mismatch" "$T/err"
check "mismatched file deleted" test ! -e "$T/e/kokoro-v1_0.pth.part" -a ! -e "$T/e/kokoro-v1_0.pth"

# 6. The host announces more bytes than it sends: fails without taking the final name.
"$KOE" download --quiet --dir "$T/f" --url "$BASE/short" --timeout 5 kokoro-v1_0.pth 2>"$T/err"
check "short file fails" test $? -ne 0
check "short file not installed" test ! -e "$T/f/kokoro-v1_0.pth"

# 7. A file without a published SHA-256 (config.json): size verified, and said so.
out=$("$KOE" download --dir "$T/g" --url "$BASE/good" config.json)
check "config download exits 0" test $? -eq 0
check "says only the size was verified" grep -q "size verified" <<<"$out"

# 8. Bad arguments: exit 2, nothing written.
"$KOE" download --dir "$T/h" --url "$BASE/good" ../evil 2>/dev/null
check "path-like name refused with 2" test $? -eq 2
"$KOE" download --url "ftp://x" 2>/dev/null
check "non-http URL refused with 2" test $? -eq 2
check "nothing written for bad names" test ! -e "$T/h/evil"

# 9. No server at all: a clear failure, not a hang.
"$KOE" download --quiet --dir "$T/i" --url "http://127.0.0.1:1" kokoro-v1_0.pth 2>"$T/err"
check "unreachable host fails" test $? -eq 1

[ $fails -eq 0 ] && echo "all download checks passed" || echo "$fails download checks failed"
exit $((fails > 0))
