/* Shared between the checkpoint readers (pickle.c, safetensors.c) and weights.c. */
#ifndef KOE_MODEL_WEIGHTS_INTERNAL_H
#define KOE_MODEL_WEIGHTS_INTERNAL_H

#include "koe/weights.h"

/* Adds one tensor. data points into the mapping when contiguous and aligned; otherwise the
 * reader passes strides (elements; NULL = contiguous) and the bytes are copied into memory w
 * owns. name is copied. Errors: a duplicate name, more than 4 dims, no memory. */
int koe_weights_add(koe_weights *w, const char *name, koe_dtype dt, int ndim, const int64_t *shape,
                    const int64_t *strides, const void *data, koe_error *err);
size_t koe_dtype_size(koe_dtype dt);

/* The readers: fill w from a whole file in memory. */
int koe_pth_read(koe_weights *w, const unsigned char *buf, size_t len, koe_error *err);
int koe_safetensors_read(koe_weights *w, const unsigned char *buf, size_t len, koe_error *err);

#endif
