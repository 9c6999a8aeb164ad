/* A minimal test harness: checks count, failures print where they happened, and every
 * test program ends with the line "N passed, N failed" that CI reads. */
#ifndef KOE_TEST_HARNESS_H
#define KOE_TEST_HARNESS_H

#include <stddef.h>

void kt_check(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Runs one named test function; failures inside it are attributed to the name. With KT_ONLY
 * set (comma-separated names) only the listed ones run; a KT_ONLY matching none fails. */
void kt_run(const char *name, void (*fn)(void));
/* Prints the summary line and returns the process exit status (0 when nothing failed). */
int kt_finish(void);
/* Marks the whole program as skipped (exit 77, CTest's skip code) with a reason. */
int kt_skip(const char *why);
/* Environment variable or a default. */
const char *kt_env(const char *name, const char *fallback);
/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
void *kt_read_file(const char *path, size_t *len);

#define KT_CHECK(cond, ...) kt_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define KT_EXPECT(cond)     kt_check(!!(cond), __FILE__, __LINE__, "%s", #cond)

#endif
