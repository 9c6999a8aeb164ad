/* Kokoro-82M inference. A koe_model is loaded once and shared read-only; each thread of work
 * owns a koe_ctx (its scratch memory and thread pool). */
#ifndef KOE_MODEL_H
#define KOE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"

/* Where the harmonic source's randomness comes from. */
typedef enum koe_noise_mode {
    KOE_NOISE_RANDOM = 0, /* the original distributions from a seeded PRNG (replayable by seed) */
    KOE_NOISE_TEST = 1    /* the counter-based test stream of ../shared/vectors/README.md */
} koe_noise_mode;

typedef struct koe_noise {
    koe_noise_mode mode;
    uint64_t seed; /* used by KOE_NOISE_RANDOM */
} koe_noise;

/* Optional observer of intermediate tensors, named as in the reference vectors ("bert", "d_en",
 * ..., "audio"); data is row-major with the reference's shape. Used by tests and model-check. */
typedef void (*koe_stage_fn)(void *user, const char *stage, const float *data, int ndim,
                             const int64_t *shape);
typedef struct koe_stage_tap {
    koe_stage_fn fn;
    void *user;
} koe_stage_tap;

/* TODO(model engineer): the model/context API follows below. */

#endif
