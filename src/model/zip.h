/* The read side of the zip format, as much as PyTorch checkpoints need: the central directory
 * (zip64 included) and stored (uncompressed) entries, located in a buffer the caller owns
 * (the mmapped file). Every offset and size is checked against the buffer. */
#ifndef KOE_MODEL_ZIP_H
#define KOE_MODEL_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"

typedef struct koe_zip_entry {
    const char *name; /* not NUL-terminated: name_len bytes inside the buffer */
    size_t name_len;
    const unsigned char *data; /* the stored bytes (method 0 only; NULL otherwise) */
    uint64_t size;
    int method; /* 0 stored, 8 deflate, ... */
} koe_zip_entry;

/* Lists the entries of the zip in buf[0..len). *entries is malloc'd (free it). */
int koe_zip_list(const unsigned char *buf, size_t len, koe_zip_entry **entries, size_t *count,
                 koe_error *err);

#endif
