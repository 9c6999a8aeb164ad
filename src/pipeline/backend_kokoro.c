/* The Kokoro backend: a segment's phonemes → token chunks (≤ 510 ids, split by the front end,
 * never truncated) → the engine, one context per worker over the one shared model. */
#include "koe/model.h"
#include "koe/text.h"
#include "koe/voice.h"
#include "pipeline/backend.h"

#include <stdlib.h>
#include <string.h>

#include "koe/base.h"

typedef struct kokoro_backend {
    koe_backend base;
    koe_model *model;
} kokoro_backend;

struct koe_backend_worker {
    koe_ctx *ctx;
    int32_t ids[KOE_MODEL_MAX_TOKENS];
    uint64_t calls;
};

static koe_backend_worker *worker_new(koe_backend *b, int threads, koe_error *err) {
    kokoro_backend *kb = (kokoro_backend *)b;
    koe_backend_worker *w = calloc(1, sizeof *w);
    if (!w) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->ctx = koe_ctx_new(kb->model, threads, err);
    if (!w->ctx) {
        free(w);
        return NULL;
    }
    return w;
}

static void worker_free(koe_backend_worker *w) {
    if (!w) return;
    koe_ctx_free(w->ctx);
    free(w);
}

static void set_threads(koe_backend_worker *w, int threads) {
    koe_ctx_set_threads(w->ctx, threads);
}

static void set_yield(koe_backend_worker *w, void (*fn)(void *user), void *user) {
    koe_ctx_set_yield(w->ctx, fn, user);
}

static int speak(koe_backend_worker *w, const koe_segment_job *s, koe_pcm_sink sink, void *user,
                 volatile const int *cancel, koe_error *err) {
    if (!s->voice) return koe_error_set(err, KOE_ERR_INVALID, "Kokoro needs a voice");
    koe_tokens tok;
    memset(&tok, 0, sizeof tok);
    double t0 = koe_now_s();
    int rc = koe_text_tokens(s->normalized, s->len, s->lang, &tok, err);
    if (s->costs) s->costs->text_seconds += koe_now_s() - t0;
    for (size_t i = 0; !rc && i < tok.nchunks; i++) {
        const koe_token_chunk *ch = &tok.chunks[i];
        if (ch->count + 2 > KOE_MODEL_MAX_TOKENS) {
            rc = koe_error_set(err, KOE_ERR_INTERNAL, "a token chunk of %zu ids", ch->count);
            break;
        }
        w->ids[0] = 0;
        memcpy(w->ids + 1, ch->ids, ch->count * sizeof *w->ids);
        w->ids[ch->count + 1] = 0;
        /* The replayable seed of a request, or a fresh one per call. */
        uint64_t seed = s->seed ? s->seed + i : koe_now_ns() ^ (++w->calls << 32);
        koe_noise noise = {KOE_NOISE_RANDOM, seed};
        koe_synth_out out;
        rc = koe_synthesize(w->ctx, w->ids, (int)ch->count + 2,
                            koe_voice_style(s->voice, (int)ch->count), s->speed, noise, NULL,
                            cancel, &out, err);
        if (!rc && s->costs) {
            s->costs->text_seconds += out.text_seconds;
            s->costs->vocoder_seconds += out.decoder_seconds;
        }
        if (!rc && sink(user, out.audio, (size_t)out.n_samples))
            rc = koe_error_set(err, KOE_ERR_CANCELLED, "cancelled");
    }
    koe_tokens_free(&tok);
    return rc;
}

static void backend_free(koe_backend *b) {
    kokoro_backend *kb = (kokoro_backend *)b;
    koe_model_free(kb->model);
    free(kb);
}

koe_backend *koe_backend_kokoro_new(const char *model_path, const char *config_path, int precision,
                                    koe_error *err) {
    kokoro_backend *kb = calloc(1, sizeof *kb);
    if (!kb) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    koe_model_options mo = {.config_path = config_path, .precision = (koe_precision)precision};
    kb->model = koe_model_load_ex(model_path, &mo, err);
    if (!kb->model) {
        free(kb);
        return NULL;
    }
    kb->base.name = "kokoro";
    kb->base.sample_rate = KOE_MODEL_SAMPLE_RATE;
    kb->base.worker_new = worker_new;
    kb->base.worker_free = worker_free;
    kb->base.set_threads = set_threads;
    kb->base.set_yield = set_yield;
    kb->base.speak = speak;
    kb->base.free = backend_free;
    kb->base.model_path = model_path;
    kb->base.precision = koe_precision_name(koe_model_precision(kb->model));
    return &kb->base;
}
