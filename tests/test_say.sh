#!/usr/bin/env bash
# koe say: text (argument, stdin, --file) to a file of the extension's format, to a player or to a
# pipe; bad input exits 2 and leaves no file; SIGINT during a long synthesis leaves no partial file
# and keeps the good file already there; the progress line shows on a terminal only.
set -u
KOE=${KOE_BINARY:?}
. "$(dirname "$0")/lib.sh"
pid=
on_exit() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; }
codec() { ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$1" 2>/dev/null; }
duration() { ffprobe -v error -show_entries format=duration -of csv=p=0 "$1" 2>/dev/null; }
positive() { awk -v d="$1" 'BEGIN { exit !(d + 0 > 0) }'; }
only_files() { local got; got=$(cd "$T" && ls -A | LC_ALL=C sort | tr "\n" " "); [ "$got" = "$* " ] || { echo "files: $got"; return 1; }; }
[ -d "$KOE_DATA_DIR/voices" ] || { echo "no voices (make deps)"; exit 77; }
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "no ffprobe/ffmpeg"; exit 77; }
export KOE_DATA_DIR
cd "$T" || exit 1

# Files of the extension's format, text from the argument and from stdin.
"$KOE" say "Hello" -o hello.mp3 2>err
check "say to mp3 exits 0" test $? -eq 0
check "hello.mp3 is mp3" test "$(codec hello.mp3)" = mp3
check "hello.mp3 has audio" positive "$(duration hello.mp3)"
check "quiet when stderr is a file" test ! -s err
echo "Text from standard input." | "$KOE" say -o out.wav 2>err
check "stdin to wav exits 0" test $? -eq 0
check "out.wav is 16-bit pcm" test "$(codec out.wav)" = pcm_s16le
check "out.wav has audio" positive "$(duration out.wav)"
check "the wav header has the real sizes" test "$(od -An -tu4 -j40 -N4 out.wav | tr -d ' ')" -eq $(($(stat -c %s out.wav) - 44))
echo "Text from a file." > in.txt
"$KOE" say -v am_adam --file in.txt -o file.opus 2>/dev/null
check "--file to opus" test "$(codec file.opus)" = opus
"$KOE" say -o k.flac "A flac file that knows its length." 2>/dev/null
check "flac decodes" test "$(codec k.flac)" = flac
samples=$(( $(ffmpeg -v error -i k.flac -f s16le - | wc -c) / 2 ))
check "flac STREAMINFO holds the decoded sample count" test "$(ffprobe -v error -show_entries stream=duration_ts -of csv=p=0 k.flac)" = "$samples"
rm -f in.txt file.opus k.flac
D="$KOE_TEST_DATA/kokoro-tiny"
if [ -f "$D/kokoro-tiny-seed1.pth" ]; then
    "$KOE" say --model "$D/kokoro-tiny-seed1.pth" --config "$D/kokoro-tiny-seed1.config.json" \
        -v af_bella --seed 3 -o kokoro.wav "The tiny Kokoro model speaks." 2>/dev/null
    check "--model speaks with Kokoro into a wav" test "$(codec kokoro.wav)" = pcm_s16le
    rm -f kokoro.wav
fi

# Bad input: exit 2, nothing written, a good file already there untouched.
cp out.wav good.wav
"$KOE" say -v zz_nope -o good.wav "hi" 2>err
check "unknown voice exits 2" test $? -eq 2
check "it names the voice" grep -q zz_nope err
check "the good file is untouched" cmp -s out.wav good.wav
"$KOE" say -v zz_nope -o v.wav "hi" 2>/dev/null
"$KOE" say -o x.xyz "hi" 2>/dev/null
check "unknown extension exits 2" test $? -eq 2
"$KOE" say -o e.wav "" 2>/dev/null
check "empty text exits 2" test $? -eq 2
"$KOE" say -o "$T/no/such/dir/a.wav" "hi" 2>/dev/null
check "unwritable place exits 1" test $? -eq 1
check "no file is left behind" only_files err good.wav hello.mp3 out.wav

# Piped standard output: a valid wav (or --format).
"$KOE" say "Piped to another program." | cat > piped.wav
check "piped wav decodes" test "$(codec piped.wav)" = pcm_s16le
check "piped wav has audio" positive "$(duration piped.wav)"
"$KOE" say --format mp3 "Piped as mp3." | cat > piped.mp3
check "--format mp3 on a pipe" test "$(codec piped.mp3)" = mp3
"$KOE" say "Standard output redirected to a file." > redirected.wav
check "a redirected wav gets the real sizes" test "$(od -An -tu4 -j40 -N4 redirected.wav | tr -d ' ')" -eq $(($(stat -c %s redirected.wav) - 44))
"$KOE" say -o - --format flac "Dash means standard output." > dash.flac
check "-o - with --format flac" test "$(codec dash.flac)" = flac
rm -f piped.wav piped.mp3 redirected.wav dash.flac

# Ctrl-C during a long synthesis: exit 130, no partial file, the good file untouched. The text
# takes far longer to speak than the test waits; SIGINT is sent once audio is being written.
for i in $(seq 4000); do echo "Sentence number $i of a very long text that is read aloud to the end."; done > long.txt
set -m # the background job gets its own process group, so SIGINT is not ignored
"$KOE" say --file long.txt -o good.wav 2>err &
pid=$!
set +m
for _ in $(seq 600); do
    compgen -G ".good.wav.koe-*" >/dev/null && [ -s "$(compgen -G ".good.wav.koe-*" | head -n1)" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
has_temp() { compgen -G ".good.wav.koe-*" >/dev/null; }
check "a temporary file is being written" has_temp
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
check "SIGINT exits 130" test $rc -eq 130
check "SIGINT says so" grep -q interrupted err
check "SIGINT leaves the good file untouched" cmp -s out.wav good.wav
rm -f long.txt
check "SIGINT leaves no partial file" only_files err good.wav hello.mp3 out.wav

# The progress line: on a pseudo-terminal, not when stderr is a file (checked above).
if command -v script >/dev/null; then
    script -qfec "'$KOE' say -o pty.wav 'First sentence here. A second sentence follows it, and a third one.'" /dev/null > pty.log
    # every segment counted to the last (how many depends on the segment lengths: 3 today)
    check "progress on a terminal: segments" grep -qE "segments ([0-9]+)/\1" pty.log
    check "progress on a terminal: real-time factor" grep -q "real-time factor" pty.log
    check "the file is written under a terminal too" test "$(codec pty.wav)" = pcm_s16le

    # On a terminal without -o: the player gets raw s16le 24 kHz mono on its stdin.
    printf '#!/bin/sh\ncat > "%s/played.raw"\n' "$T" > player.sh
    chmod +x player.sh
    KOE_PLAYER="$T/player.sh" script -qfec "'$KOE' say 'Played aloud.'" /dev/null > play.log
    check "a player receives the audio" test -s played.raw
    check "the player gets whole 16-bit samples" test $(($(stat -c %s played.raw) % 2)) -eq 0
    check "raw audio decodes as s16le 24 kHz" positive "$(ffprobe -v error -f s16le -ar 24000 -i played.raw -show_entries format=duration -of csv=p=0 2>/dev/null)"
    printf '#!/bin/sh\nexit 3\n' > broken.sh
    chmod +x broken.sh
    KOE_PLAYER="$T/broken.sh" script -qfec "'$KOE' say 'Played aloud.'; echo status=\$?" /dev/null > play.log
    check "a failing player is an error" grep -q "status=1" play.log
    # No player on PATH (or no device): say how to get a file, exit 1.
    script -qfec "env PATH=/nonexistent '$KOE' say 'No device.'; echo status=\$?" /dev/null > play.log
    check "without a device it exits 1" grep -q "status=1" play.log
    check "without a device it suggests -o" grep -q -- "-o " play.log
else
    echo "skip progress/player checks: no script(1)"
fi
exit $((fails > 0))
