#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;
static const char *current = "main";

void kt_check(int ok, const char *file, int line, const char *fmt, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL [%s] %s:%d: ", current, file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int ran;

/* KT_ONLY=name,name runs only those subtests: e.g. one slow subtest under valgrind, the others
 * in a second process beside it. */
static int selected(const char *name) {
    const char *only = getenv("KT_ONLY");
    if (!only || !*only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

void kt_run(const char *name, void (*fn)(void)) {
    if (!selected(name)) {
        fprintf(stderr, "skip %s (not in KT_ONLY)\n", name);
        return;
    }
    ran++;
    int before = failed;
    current = name;
    fn();
    fprintf(stderr, "%s %s\n", failed == before ? "ok  " : "FAIL", name);
    current = "main";
}

int kt_finish(void) {
    if (!ran && getenv("KT_ONLY")) {
        fprintf(stderr, "FAIL KT_ONLY=%s names no subtest of this program\n", getenv("KT_ONLY"));
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

int kt_skip(const char *why) {
    printf("skipped: %s\n", why);
    return 77;
}

const char *kt_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

void *kt_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
