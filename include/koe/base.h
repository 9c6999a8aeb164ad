/* Small shared utilities: a monotonic clock, a growable byte buffer and UTF-8 validation. */
#ifndef KOE_BASE_H
#define KOE_BASE_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds / seconds. */
uint64_t koe_now_ns(void);
double koe_now_s(void);

/* The median of v[0..n) (n >= 1); sorts v in place. */
double koe_median(double *v, size_t n);

/* A growable byte buffer. Zero-initialise, append, then free. Appends return 0 or KOE_ERR_NOMEM. */
typedef struct koe_buf {
    char *data;
    size_t len, cap;
} koe_buf;

int koe_buf_reserve(koe_buf *b, size_t extra);
int koe_buf_append(koe_buf *b, const void *p, size_t n);
int koe_buf_append_str(koe_buf *b, const char *s);
int koe_buf_printf(koe_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ensures data is NUL-terminated (the NUL is not counted in len). */
int koe_buf_terminate(koe_buf *b);
void koe_buf_free(koe_buf *b);

/* Returns the byte offset of the first invalid UTF-8 sequence, or len if all of s is valid
 * (rejects overlongs, surrogates and code points above U+10FFFF). */
size_t koe_utf8_validate(const char *s, size_t len);
/* Decodes one code point at s (which must be valid UTF-8); returns its length in bytes. */
int koe_utf8_decode(const char *s, uint32_t *cp);
/* Encodes cp into out (at least 4 bytes); returns the length. */
int koe_utf8_encode(uint32_t cp, char *out);

#endif
