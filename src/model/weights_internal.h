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
/* The raw blob + manifest of the reference vectors: x.bin is described by x.manifest.json.
 * koe_raw_manifest_path writes that name (0 when path does not end in .bin). */
int koe_raw_manifest_path(const char *path, char *out, size_t cap);
int koe_raw_read(koe_weights *w, const unsigned char *buf, size_t len, const char *manifest,
                 koe_error *err);

#endif

/* The tensors of a Kokoro-82M checkpoint, for writing random weights (and for tests, which
 * compare the list for the tiny widths with the reference manifest). */
typedef struct koe_kokoro_dims {
    int n_token, E, Hb, inter, positions; /* PL-BERT */
    int H, style;                         /* hidden_dim, style half */
    int W1, W2, W3;                       /* decoder width, generator input, asr_res */
    int max_dur;
} koe_kokoro_dims;

/* How a tensor is initialized (see weights_random.c). */
typedef enum {
    KOE_INIT_UNIFORM, /* U(-a, a), a = scale / sqrt(fan_in) */
    KOE_INIT_CONST,   /* every element = scale */
    KOE_INIT_POSITIONS
} koe_init_kind;

typedef struct koe_tensor_spec {
    char name[160];
    int ndim;
    int64_t shape[4];
    koe_init_kind init;
    float scale, offset; /* offset added after a uniform draw (biases that set durations, F0) */
} koe_tensor_spec;

void koe_kokoro_full_dims(koe_kokoro_dims *d);
/* Calls fn for every tensor in checkpoint order; returns the count. */
size_t koe_kokoro_tensor_specs(const koe_kokoro_dims *d,
                               void (*fn)(void *user, const koe_tensor_spec *s), void *user);
/* koe_weights_write_random for explicit widths (the tests write tiny files). */
int koe_weights_write_random_dims(const char *path, const koe_kokoro_dims *d, uint64_t seed,
                                  koe_error *err);
