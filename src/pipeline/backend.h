/* Speech backends behind the pipeline: each turns one normalized segment into float samples at
 * its own rate, delivered through a callback (non-zero return = stop). */
#ifndef KOE_PIPELINE_BACKEND_H
#define KOE_PIPELINE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"

struct koe_voice;

typedef int (*koe_pcm_sink)(void *user, const float *pcm, size_t n);

typedef struct koe_backend koe_backend;
/* Per-worker state of a backend (a Kokoro context with its scratch; nothing for espeak-ng). */
typedef struct koe_backend_worker koe_backend_worker;

/* Where a segment's synthesis time went, as far as the backend can tell (0 = unknown). */
typedef struct koe_segment_costs {
    double text_seconds;    /* phonemes, tokens, PL-BERT, predictor, text encoder */
    double vocoder_seconds; /* decoder and generator */
} koe_segment_costs;

typedef struct koe_segment_job {
    const char *normalized;
    size_t len;
    const char *lang;
    float speed;
    const struct koe_voice *voice; /* NULL for espeak-ng without voice packs */
    uint64_t seed;
    koe_segment_costs *costs; /* may be NULL; else filled by speak */
} koe_segment_job;

struct koe_backend {
    const char *name;
    int sample_rate;
    koe_backend_worker *(*worker_new)(koe_backend *b, int threads, koe_error *err);
    void (*worker_free)(koe_backend_worker *w);
    /* threads the worker's next segments use (1 .. its threads); NULL when it has no threads */
    void (*set_threads)(koe_backend_worker *w, int threads);
    /* fn(user) between two kernels of the worker's segments, may block (koe_ctx_set_yield); NULL
     * when the backend cannot pause */
    void (*set_yield)(koe_backend_worker *w, void (*fn)(void *user), void *user);
    int (*speak)(koe_backend_worker *w, const koe_segment_job *s, koe_pcm_sink sink, void *user,
                 volatile const int *cancel, koe_error *err);
    void (*free)(koe_backend *b);
    const char *model_path;
    const char *precision; /* the engine's, NULL for espeak-ng */
};

koe_backend *koe_backend_espeak_new(koe_error *err);
/* NULL with an error naming the problem when the weights cannot be loaded. */
koe_backend *koe_backend_kokoro_new(const char *model_path, const char *config_path, int precision,
                                    koe_error *err);

#endif
