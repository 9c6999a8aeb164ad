#!/usr/bin/env bash
# The files with x86 kernels (intrinsics under target attributes, cpuid dispatch) must build
# without them, as on arm64: KOE_PORTABLE_ONLY turns off their x86 parts on this machine, so a
# syntax-and-warnings pass with it checks that every x86-only line is fenced and that the
# portable fallbacks are complete. (An arm64 compiler is not installed here; see
# docs/PERFORMANCE.md for the clang --target=aarch64 check done by hand.)
set -u
S=${KOE_SOURCE_DIR:?}
CC=${CC:-gcc}
command -v "$CC" >/dev/null || exit 77
fails=0
for f in src/model/ops_bf16.c src/model/ops_int8.c src/model/ops_conv.c src/model/ops_dense.c; do
    if "$CC" -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DKOE_PORTABLE_ONLY \
        -fsyntax-only -Wall -Wextra -Werror -I"$S/include" -I"$S/src" \
        $(pkg-config --cflags openblas 2>/dev/null) "$S/$f"; then
        echo "ok   $f builds without its x86 kernels"
    else
        echo "FAIL $f"
        fails=$((fails + 1))
    fi
done
echo "$fails failed"
[ "$fails" -eq 0 ]
