#include "koe/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

koe_code koe_error_set(koe_error *err, koe_code code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void koe_error_prefix(koe_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable here: the message is for people, the code carries the meaning. */
    size_t n = strlen(prefix);
    if (n >= sizeof err->msg) n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof err->msg - 1 - n) rest = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = 0;
}

void koe_error_clear(koe_error *err) {
    if (!err) return;
    err->code = KOE_OK;
    err->msg[0] = 0;
}

const char *koe_code_name(koe_code code) {
    switch (code) {
    case KOE_OK:
        return "ok";
    case KOE_ERR_INVALID:
        return "invalid";
    case KOE_ERR_NOMEM:
        return "out_of_memory";
    case KOE_ERR_IO:
        return "io";
    case KOE_ERR_FORMAT:
        return "format";
    case KOE_ERR_NOT_FOUND:
        return "not_found";
    case KOE_ERR_UNSUPPORTED:
        return "unsupported";
    case KOE_ERR_LIMIT:
        return "limit";
    case KOE_ERR_CANCELLED:
        return "cancelled";
    case KOE_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
