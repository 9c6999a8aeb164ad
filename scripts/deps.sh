#!/usr/bin/env bash
# Installs everything koe needs: Debian packages (apt-get, non-interactive) and the Kokoro voice
# packs from the npm package kokoro-js. Idempotent: quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format valgrind
  libespeak-ng-dev espeak-ng espeak-ng-data
  libopenblas-dev
  libmicrohttpd-dev libcjson-dev
  libmp3lame-dev libopus-dev libogg-dev libflac-dev libavcodec-dev libavutil-dev libebur128-dev
  libcurl4-openssl-dev
  ffmpeg sox curl
  nginx-light
  chromium
)
# Node.js and npm fetch the voices (and run the client tests); take Debian's only if none is there.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Voice packs: 54 files of 510 x 1 x 256 float32 in kokoro-js@1.2.1 (folder voices/).
VOICE_DIR=data/voices
VOICE_BYTES=522240
VOICE_COUNT=54
have=0
if [ -d "$VOICE_DIR" ]; then
  have=$(find "$VOICE_DIR" -maxdepth 1 -name '*.bin' -size "${VOICE_BYTES}c" | wc -l)
fi
if [ "$have" -ne "$VOICE_COUNT" ]; then
  echo "deps: fetching voice packs (npm pack kokoro-js@1.2.1)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent kokoro-js@1.2.1 >/dev/null)
  tar -xzf "$tmp"/kokoro-js-1.2.1.tgz -C "$tmp" package/voices
  mkdir -p "$VOICE_DIR"
  n=0
  for f in "$tmp"/package/voices/*.bin; do
    size=$(stat -c %s "$f")
    if [ "$size" -ne "$VOICE_BYTES" ]; then
      echo "deps: $(basename "$f") has $size bytes, expected $VOICE_BYTES" >&2
      exit 1
    fi
    cp "$f" "$VOICE_DIR/"
    n=$((n + 1))
  done
  if [ "$n" -ne "$VOICE_COUNT" ]; then
    echo "deps: kokoro-js shipped $n voices, expected $VOICE_COUNT" >&2
    exit 1
  fi
fi
# Node packages of the test clients (the official openai client, playwright-core), pinned by
# their committed lock files; reinstalled only when a lock file changed.
for dir in tests/client tests/web; do
  [ -f "$dir/package-lock.json" ] || continue
  stamp="$dir/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    echo "deps: npm ci in $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --silent
  fi
done

echo "deps: ok (${#PACKAGES[@]} packages, $VOICE_COUNT voices in $VOICE_DIR)"
