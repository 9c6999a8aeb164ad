#!/usr/bin/env bash
# cmake/embed_web.cmake on its own: the generated table compiles as strict C11, holds every file of
# web/ byte for byte with the right MIME type, and koe_web_asset_find() maps "/" to the page,
# ignores query strings and refuses anything that is not an embedded path.
set -u
SRC=${KOE_SOURCE_DIR:?}
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "no C compiler"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { # description, then a command that must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}

cmake -DWEB_DIR="$SRC/web" -DOUT="$T/gen/web_assets.c" -P "$SRC/cmake/embed_web.cmake"
check "embed script succeeds" test -s "$T/gen/web_assets.c"

cat >"$T/main.c" <<'C'
#include <stdio.h>
#include <string.h>

#include "koe/web_assets.h"

static int fails;
#define EXPECT(cond) ((cond) ? (void)0 : (void)(fails++, fprintf(stderr, "FAIL %s\n", #cond)))

static const char *path_of(const char *request) {
    const koe_web_asset *a = koe_web_asset_find(request);
    return a ? a->path : "(none)";
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "dump") == 0) { /* writes one asset's bytes to stdout */
        const koe_web_asset *a = koe_web_asset_find(argv[2]);
        if (!a)
            return 1;
        return fwrite(a->data, 1, a->len, stdout) == a->len ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[1], "list") == 0) { /* path and MIME type, one asset a line */
        for (size_t i = 0; koe_web_asset_at(i); i++)
            printf("%s\t%s\n", koe_web_asset_at(i)->path, koe_web_asset_at(i)->mime);
        return 0;
    }
    EXPECT(strcmp(path_of("/"), "/index.html") == 0);
    EXPECT(strcmp(path_of("/?voice=af_heart"), "/index.html") == 0);
    EXPECT(strcmp(path_of("/index.html"), "/index.html") == 0);
    EXPECT(strcmp(path_of("/app.js?v=2"), "/app.js") == 0);
    EXPECT(strcmp(path_of("/style.css#x"), "/style.css") == 0);
    EXPECT(koe_web_asset_find(NULL) == NULL);
    EXPECT(koe_web_asset_find("") == NULL);
    EXPECT(koe_web_asset_find("index.html") == NULL);
    EXPECT(koe_web_asset_find("/nope.html") == NULL);
    EXPECT(koe_web_asset_find("/app.js/") == NULL);
    EXPECT(koe_web_asset_find("/app.j") == NULL);
    EXPECT(koe_web_asset_find("/../CMakeLists.txt") == NULL);
    EXPECT(koe_web_asset_find("/web/index.html") == NULL);
    EXPECT(koe_web_asset_find("//index.html") == NULL);
    EXPECT(koe_web_asset_find("/%2e%2e/CMakeLists.txt") == NULL);
    EXPECT(koe_web_asset_at(0) != NULL);
    size_t n = 0;
    while (koe_web_asset_at(n))
        n++;
    EXPECT(koe_web_asset_at(n) == NULL);
    for (size_t i = 0; i < n; i++) {
        const koe_web_asset *a = koe_web_asset_at(i);
        EXPECT(a->len > 0 && a->data[a->len] == 0);    /* NUL after the bytes, not counted */
        EXPECT(koe_web_asset_find(a->path) == a);
    }
    return fails ? 1 : 0;
}
C
"$CC" -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror -pedantic -I"$SRC/include" -o "$T/t" "$T/main.c" "$T/gen/web_assets.c" \
    2>"$T/cc.log"
check "generated source compiles as C11 with -Wall -Wextra -Werror -pedantic" test $? -eq 0
[ -x "$T/t" ] || { cat "$T/cc.log"; echo "FAIL cannot go on without the test program"; exit 1; }
check "lookups: / is the page, queries ignored, unknown and escaping paths refused" "$T/t"

"$T/t" list >"$T/list"
expected=$(cd "$SRC/web" && find . -type f ! -name '.*' | sed 's#^\.##' | LC_ALL=C sort)
check "every file of web/ is embedded, nothing else" test "$(cut -f1 "$T/list")" = "$expected"
while read -r path; do
    "$T/t" dump "$path" >"$T/asset"
    check "$path is embedded byte for byte" cmp -s "$T/asset" "$SRC/web$path"
done <<<"$expected"
check "index.html is served as UTF-8 HTML" grep -qxF $'/index.html\ttext/html; charset=utf-8' "$T/list"
check "app.js is served as UTF-8 JavaScript" grep -qxF $'/app.js\ttext/javascript; charset=utf-8' "$T/list"
check "style.css is served as UTF-8 CSS" grep -qxF $'/style.css\ttext/css; charset=utf-8' "$T/list"

# An unchanged page must not rewrite the output (that would rebuild koe_core on every build).
touch -d '2000-01-01' "$T/gen/web_assets.c"
cmake -DWEB_DIR="$SRC/web" -DOUT="$T/gen/web_assets.c" -DSTAMP="$T/gen/stamp" -P "$SRC/cmake/embed_web.cmake"
check "unchanged input leaves the output untouched" test "$(stat -c %Y "$T/gen/web_assets.c")" = "$(date -d 2000-01-01 +%s)"
check "the stamp (the build rule's output) is written on every run" test -f "$T/gen/stamp"

# A changed file is picked up, and file names that would break the C string are refused.
mkdir -p "$T/web2/sub" && printf 'x' >"$T/web2/sub/a.svg" && printf '<p>' >"$T/web2/index.html"
cmake -DWEB_DIR="$T/web2" -DOUT="$T/gen2.c" -P "$SRC/cmake/embed_web.cmake"
check "files in subfolders get their path and type" grep -qF '{"/sub/a.svg", "image/svg+xml", asset_1, 1}' "$T/gen2.c"
printf 'y' >"$T/web2/bad\"name.js"
cmake -DWEB_DIR="$T/web2" -DOUT="$T/gen3.c" -P "$SRC/cmake/embed_web.cmake" >/dev/null 2>&1
check "a file name with a quote is refused" test $? -ne 0 -a ! -e "$T/gen3.c"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all web embedding checks passed"
