/* Errors: every fallible koe function returns a status (0 / NULL on failure) and fills an optional
 * koe_error with a code and a human-readable message that names the problem. */
#ifndef KOE_ERROR_H
#define KOE_ERROR_H

typedef enum koe_code {
    KOE_OK = 0,
    KOE_ERR_INVALID,     /* bad argument or bad input (user's fault) */
    KOE_ERR_NOMEM,       /* allocation failed */
    KOE_ERR_IO,          /* file or socket error */
    KOE_ERR_FORMAT,      /* malformed file or data */
    KOE_ERR_NOT_FOUND,   /* unknown name (voice, tensor, file) */
    KOE_ERR_UNSUPPORTED, /* valid but not supported (language, format, dtype) */
    KOE_ERR_LIMIT,       /* over a configured limit (size, length, queue) */
    KOE_ERR_CANCELLED,   /* the caller asked to stop */
    KOE_ERR_INTERNAL     /* a bug: an invariant did not hold */
} koe_code;

typedef struct koe_error {
    koe_code code;
    char msg[512];
} koe_error;

/* Sets *err (if err is not NULL) and returns code, so that `return koe_error_set(...)` reads well.
 */
koe_code koe_error_set(koe_error *err, koe_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends context ("loading weights: ") to an error already set. */
void koe_error_prefix(koe_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void koe_error_clear(koe_error *err);
const char *koe_code_name(koe_code code);

#endif
