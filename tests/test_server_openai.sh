#!/usr/bin/env bash
# The official openai npm client (tests/client, installed by `npm ci --prefix tests/client`)
# against koe serve: client.audio.speech.create(...) streamed to a file in several formats and
# OpenAI voice names, each decoded by ffprobe/ffmpeg; typed errors; the API key. Skipped (77)
# when the client is not installed.
set -u
KOE=${KOE_BINARY:?}
[ -d "$KOE_DATA_DIR/voices" ] || { echo "skip: no voice packs in $KOE_DATA_DIR/voices (make deps)"; exit 77; }
CLIENT="$KOE_SOURCE_DIR/tests/client"
[ -d "$CLIENT/node_modules/openai" ] || { echo "skip: npm ci --prefix tests/client"; exit 77; }
. "$(dirname "$0")/lib.sh"

start main --workers 1
P=$PORT_main
check "server started" test -n "$P"
# format voice expected-codec
while read -r f v codec; do
    node "$CLIENT/speak.js" "$P" "$T/o.$f" "$f" "$v" 2>"$T/node.err" </dev/null
    check "openai client, $f as $v: created, streamed, typed 400" test $? -eq 0
    got=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 "$T/o.$f" 2>/dev/null </dev/null)
    bytes=$(ffmpeg -nostdin -v error -i "$T/o.$f" -f s16le -ac 1 -ar 24000 - 2>/dev/null | wc -c)
    check "  $f decodes as $codec, over a second ($bytes bytes)" test "$got" = "$codec" -a "$bytes" -gt 48000
done <<'LIST'
mp3 alloy mp3
opus nova opus
aac echo aac
flac fable flac
wav shimmer pcm_s16le
LIST
node "$CLIENT/speak.js" "$P" "$T/o.pcm" pcm onyx 2>/dev/null
size=$(stat -c %s "$T/o.pcm" 2>/dev/null || echo 0)
check "openai client, pcm: raw s16le ($size bytes)" test $((size % 2)) -eq 0 -a "$size" -gt 48000
check "the OpenAI voices were served as Kokoro voices" grep -q '"voice":"af_nova"' "$T/main.log"
kill -TERM "$PID_main"; wait "$PID_main"
check "server exits 0" test $? -eq 0

start auth --api-key k3y
KOE_TEST_KEY=wrong node "$CLIENT/speak.js" "$PORT_auth" "$T/a.mp3" mp3 2>/dev/null
check "wrong key: the client raises AuthenticationError" test $? -eq 3
KOE_TEST_KEY=k3y node "$CLIENT/speak.js" "$PORT_auth" "$T/a.mp3" mp3 2>/dev/null
check "right key: speech" test $? -eq 0 -a -s "$T/a.mp3"

[ $fails -eq 0 ] && echo "all openai client checks passed"
exit $((fails > 0))
