/* The espeak-ng voice: what koe speaks with when no Kokoro weights are present. espeak-ng
 * itself lives in src/text (one global lock); this adapts its int16 output to floats. */
#include "koe/espeak.h"
#include "pipeline/backend.h"

#include <stdlib.h>

typedef struct sink_adapter {
    koe_pcm_sink sink;
    void *user;
    float buf[4096];
} sink_adapter;

static int on_pcm(void *user, const int16_t *pcm, size_t n) {
    sink_adapter *a = user;
    while (n > 0) {
        size_t k = n < 4096 ? n : 4096;
        for (size_t i = 0; i < k; i++) a->buf[i] = (float)pcm[i] / 32768.0f;
        if (a->sink(a->user, a->buf, k)) return 1;
        pcm += k;
        n -= k;
    }
    return 0;
}

static koe_backend_worker *worker_new(koe_backend *b, int threads, koe_error *err) {
    (void)b, (void)threads, (void)err;
    return (koe_backend_worker *)b; /* stateless: any non-NULL token */
}

static void worker_free(koe_backend_worker *w) {
    (void)w;
}

static int speak(koe_backend_worker *w, const koe_segment_job *s, koe_pcm_sink sink, void *user,
                 volatile const int *cancel, koe_error *err) {
    (void)w;
    sink_adapter *a = malloc(sizeof *a);
    if (!a) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    a->sink = sink;
    a->user = user;
    int rc = koe_espeak_speak(s->normalized, s->len, s->lang, s->speed, on_pcm, a, cancel, err);
    free(a);
    return rc;
}

static void backend_free(koe_backend *b) {
    free(b);
}

koe_backend *koe_backend_espeak_new(koe_error *err) {
    koe_backend *b = calloc(1, sizeof *b);
    if (!b) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    b->name = "espeak-ng";
    b->sample_rate = koe_espeak_sample_rate();
    b->worker_new = worker_new;
    b->worker_free = worker_free;
    b->speak = speak;
    b->free = backend_free;
    return b;
}
