/* The Kokoro-82M engine: the parts wired in the order of kokoro-model.md, one shared read-only
 * model, per-context scratch. */
#include "koe/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koe/base.h"
#include "koe/weights.h"
#include "model/albert.h"
#include "model/config.h"
#include "model/decoder.h"
#include "model/generator.h"
#include "model/ops_bf16.h"
#include "model/ops_conv.h"
#include "model/ops_int8.h"
#include "model/pool.h"
#include "model/predictor.h"
#include "model/text_encoder.h"

#define STYLE 128

struct koe_model {
    koe_albert *albert;
    koe_predictor *pred;
    koe_text_encoder *te;
    koe_decoder *dec;
    koe_generator *gen;
    int H, vocab;
    koe_precision prec;
};

struct koe_ctx {
    const koe_model *m;
    koe_pool *pool;
    float *mem; /* one arena: buffers + the largest stage's scratch */
    size_t mem_floats;
    int32_t *dur;
    int64_t *ids64;
};

/* The config names dims the tensors also carry: a disagreement means the config and the
 * weights are not one model, said with the tensor that shows it. */
static int dim_of(const koe_weights *w, const char *name, int axis) {
    const koe_tensor *t = koe_weights_find(w, name);
    return t && axis < t->ndim ? (int)t->shape[axis] : -1;
}

/* How many blocks "<pre><n·step><post>" exist, counting up from n = 0 (bounded). */
static int count_of(const koe_weights *w, const char *pre, const char *post, int step) {
    int n = 0;
    char nm[128];
    for (; n < 1024; n++) {
        snprintf(nm, sizeof nm, "%s%d%s", pre, n * step, post);
        if (!koe_weights_find(w, nm)) break;
    }
    return n;
}

static int check_dims(const koe_model *m, const koe_weights *w, const koe_kokoro_config *cfg,
                      const char *path, koe_error *err) {
    struct {
        const char *field, *tensor;
        int config, weights;
    } d[] = {
        {"hidden_dim", "text_encoder.embedding.weight", cfg->hidden_dim, m->H},
        {"n_token", "text_encoder.embedding.weight", cfg->n_token, m->vocab},
        {"n_token", "bert.embeddings.word_embeddings.weight", cfg->n_token,
         koe_albert_vocab(m->albert)},
        {"plbert.hidden_size", "bert.encoder.embedding_hidden_mapping_in.weight",
         cfg->plbert.hidden_size, koe_albert_hidden(m->albert)},
        {"plbert.max_position_embeddings", "bert.embeddings.position_embeddings.weight",
         cfg->plbert.max_position_embeddings, koe_albert_max_tokens(m->albert)},
        {"style_dim", "predictor.F0.0.norm1.fc.weight", cfg->style_dim,
         koe_predictor_style(m->pred)},
        {"max_dur", "predictor.duration_proj.linear_layer.weight", cfg->max_dur,
         dim_of(w, "predictor.duration_proj.linear_layer.weight", 0)},
        {"n_layer", "text_encoder.cnn.*", cfg->n_layer,
         count_of(w, "text_encoder.cnn.", ".0.weight_v", 1)},
        {"n_layer", "predictor.text_encoder.lstms.*", cfg->n_layer,
         count_of(w, "predictor.text_encoder.lstms.", ".weight_ih_l0", 2)},
        {"text_encoder_kernel_size", "text_encoder.cnn.0.0.weight_v", cfg->text_encoder_kernel_size,
         dim_of(w, "text_encoder.cnn.0.0.weight_v", 2)},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if (d[i].config != d[i].weights)
            return koe_error_set(err, KOE_ERR_FORMAT,
                                 "%s says %s %d, but %s gives %d (config and weights of different "
                                 "models?)",
                                 path ? path : "the built-in Kokoro-82M config", d[i].field,
                                 d[i].config, d[i].tensor, d[i].weights);
    return 0;
}

void koe_model_free(koe_model *m) {
    if (!m) return;
    koe_albert_free(m->albert);
    koe_predictor_free(m->pred);
    koe_text_encoder_free(m->te);
    koe_decoder_free(m->dec);
    koe_generator_free(m->gen);
    free(m);
}

const char *koe_precision_name(koe_precision p) {
    switch (p) {
    case KOE_PRECISION_AUTO:
        return "auto";
    case KOE_PRECISION_FP32:
        return "fp32";
    case KOE_PRECISION_BF16:
        return "bf16";
    case KOE_PRECISION_INT8:
        return "int8";
    }
    return "?";
}

int koe_precision_parse(const char *s, koe_precision *out, koe_error *err) {
    static const struct {
        const char *name;
        koe_precision p;
    } names[] = {{"auto", KOE_PRECISION_AUTO},    {"fp32", KOE_PRECISION_FP32},
                 {"float32", KOE_PRECISION_FP32}, {"f32", KOE_PRECISION_FP32},
                 {"bf16", KOE_PRECISION_BF16},    {"int8", KOE_PRECISION_INT8}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].p;
            return 0;
        }
    return koe_error_set(err, KOE_ERR_INVALID,
                         "unknown precision '%s' (expected fp32, bf16, int8 or auto)",
                         s ? s : "(null)");
}

koe_precision koe_precision_auto(void) {
    /* Each precision's quality gate (tests/test_precision_model.c) passes with every kernel, and
     * int8's kernels give the same bits, so the choice is only about speed: int8 with VNNI
     * (faster than bf16, see docs/PERFORMANCE.md), bf16 with AVX-512 BF16, else fp32 (the
     * emulated kernels are not faster than float32 sgemm per multiply). */
    if (koe_i8_kernel_usable(KOE_I8_KERNEL_AVX512VNNI)) return KOE_PRECISION_INT8;
    return koe_bf16_kernel_usable(KOE_BF16_KERNEL_AVX512BF16) ? KOE_PRECISION_BF16
                                                              : KOE_PRECISION_FP32;
}

koe_precision koe_model_precision(const koe_model *m) {
    return m->prec;
}

koe_model *koe_model_load(const char *weights_path, const char *config_path, koe_error *err) {
    koe_model_options o = {.config_path = config_path, .precision = KOE_PRECISION_FP32};
    const char *env = getenv("KOE_PRECISION");
    if (env && *env && koe_precision_parse(env, &o.precision, err)) {
        koe_error_prefix(err, "KOE_PRECISION: ");
        return NULL;
    }
    return koe_model_load_ex(weights_path, &o, err);
}

koe_model *koe_model_load_ex(const char *weights_path, const koe_model_options *opts,
                             koe_error *err) {
    koe_model_options o = {0};
    if (opts) o = *opts;
    const char *config_path = o.config_path;
    koe_precision prec = o.precision == KOE_PRECISION_AUTO ? koe_precision_auto() : o.precision;
    if (prec != KOE_PRECISION_FP32 && prec != KOE_PRECISION_BF16 && prec != KOE_PRECISION_INT8) {
        koe_error_set(err, KOE_ERR_INVALID, "unknown precision %d", (int)o.precision);
        return NULL;
    }
    int lowp = prec == KOE_PRECISION_INT8   ? KOE_CONV_INT8
               : prec == KOE_PRECISION_BF16 ? KOE_CONV_BF16
                                            : KOE_CONV_FP32;
    koe_kokoro_config cfg;
    if (koe_kokoro_config_load(config_path, &cfg, err)) return NULL;
    koe_albert_config ac = {.n_layers = cfg.plbert.num_hidden_layers,
                            .n_heads = cfg.plbert.num_attention_heads};
    koe_weights *w = koe_weights_open(weights_path, err);
    if (!w) return NULL;
    koe_model *m = calloc(1, sizeof *m);
    if (!m) {
        koe_weights_close(w);
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->prec = prec;
    /* Each part copies and packs what it needs; the file's pages are released after each so
     * that the mapping never adds the whole checkpoint to the peak memory. */
    int ok = (m->albert = koe_albert_new(koe_weights_lookup, w, &ac, err)) != NULL;
    koe_weights_release_pages(w);
    ok = ok && (m->pred = koe_predictor_new(koe_weights_lookup, w, err));
    koe_weights_release_pages(w);
    ok = ok && (m->te = koe_text_encoder_new(koe_weights_lookup, w, err));
    if (ok) {
        m->H = koe_text_encoder_width(m->te);
        m->vocab = koe_text_encoder_vocab(m->te);
        koe_weights_release_pages(w);
        ok = (m->dec = koe_decoder_new_prec(koe_weights_lookup, w, m->H, STYLE, lowp, err)) != NULL;
        koe_weights_release_pages(w);
        ok = ok && (m->gen = koe_generator_new_prec(koe_weights_lookup, w, lowp, err));
    }
    if (ok && (koe_albert_out_width(m->albert) != m->H || koe_predictor_width(m->pred) != m->H ||
               koe_decoder_out_width(m->dec) != koe_generator_width(m->gen))) {
        koe_error_set(err, KOE_ERR_FORMAT, "the parts of %s disagree on their widths",
                      weights_path);
        ok = 0;
    }
    if (ok && check_dims(m, w, &cfg, config_path, err)) ok = 0;
    if (ok) {
        static const char *const unused_ok[] = {"bert.pooler.", "bert.embeddings.position_ids",
                                                NULL};
        const char *extra = koe_weights_first_unused(w, unused_ok);
        if (extra) {
            koe_error_set(err, KOE_ERR_FORMAT, "%s holds a tensor Kokoro does not have: %s",
                          weights_path, extra);
            ok = 0;
        }
    }
    /* Every part copied what it needs: the file can go. */
    koe_weights_close(w);
    if (!ok) {
        koe_error_prefix(err, "%s: ", weights_path);
        koe_model_free(m);
        return NULL;
    }
    return m;
}

koe_ctx *koe_ctx_new(const koe_model *m, int n_threads, koe_error *err) {
    koe_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->m = m;
    c->pool = koe_pool_new(n_threads > 0 ? n_threads : 1, err);
    c->dur = malloc(KOE_MODEL_MAX_TOKENS * sizeof *c->dur);
    c->ids64 = malloc(KOE_MODEL_MAX_TOKENS * sizeof *c->ids64);
    if (!c->pool || !c->dur || !c->ids64) {
        if (c->pool) koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        koe_ctx_free(c);
        return NULL;
    }
    return c;
}

int koe_ctx_set_threads(koe_ctx *c, int n_threads) {
    return koe_pool_set_active(c->pool, n_threads);
}

void koe_ctx_set_yield(koe_ctx *c, void (*fn)(void *user), void *user) {
    koe_pool_set_yield(c->pool, fn, user);
}

void koe_ctx_free(koe_ctx *c) {
    if (!c) return;
    koe_pool_free(c->pool);
    free(c->mem);
    free(c->dur);
    free(c->ids64);
    free(c);
}

static size_t mx(size_t a, size_t b) {
    return a > b ? a : b;
}

static int reserve(koe_ctx *c, size_t floats, koe_error *err) {
    if (floats <= c->mem_floats) return 0;
    float *p = realloc(c->mem, floats * sizeof *p);
    if (!p)
        return koe_error_set(err, KOE_ERR_NOMEM, "out of memory (%zu MB of scratch)",
                             floats * 4 >> 20);
    c->mem = p;
    c->mem_floats = floats;
    return 0;
}

/* Where the frame-rate tensors of one call live in the context's arena: the text side's
 * buffers (d_en [T,H], d [T,H+st], t_en [T,H]), then f0 and n [2F], asr [H,F], asr_p [H,F]
 * (chunked only: a prefix of asr, packed), gen_in [W2,2F], audio [600F], emitted [600F]
 * (chunked only: the windows' concatenation), then the scratch every stage shares. */
typedef struct frames_buf {
    float *d, *t_en, *f0, *n, *asr, *asr_p, *gen_in, *audio, *emitted, *scr;
    int F;
} frames_buf;

static size_t frames_floats(const koe_model *m, int T, int F, koe_pool *pool, int chunked) {
    size_t H = (size_t)m->H, Fz = (size_t)F, W2 = (size_t)koe_decoder_out_width(m->dec);
    size_t s2 = mx(koe_predictor_f0n_scratch_floats(m->pred, T, F, pool),
                   koe_decoder_scratch_floats(m->dec, F, pool));
    s2 = mx(s2, koe_generator_scratch_floats(m->gen, 2 * F, pool));
    size_t S = (size_t)koe_generator_samples(2 * F);
    return 4 * Fz + H * Fz + W2 * 2 * Fz + S + s2 + (chunked ? H * Fz + S : 0);
}

/* Steps 1-2 of the model up to the decoder's inputs: validation, the text side, durations,
 * F0/N and the aligned text features, all over the whole segment (exact in both modes). */
static int synth_front(koe_ctx *c, const int32_t *ids, int T, const float ref_s[256], float speed,
                       const koe_stage_tap *tap, volatile const int *cancel, int chunked,
                       frames_buf *fb, koe_error *err) {
    const koe_model *m = c->m;
    if (T < 3 || T > KOE_MODEL_MAX_TOKENS)
        return koe_error_set(err, KOE_ERR_INVALID, "%d token ids (with pads) is outside 3..%d", T,
                             KOE_MODEL_MAX_TOKENS);
    if (!(speed > 0.0f && speed <= 10.0f))
        return koe_error_set(err, KOE_ERR_INVALID, "speed %g is outside (0, 10]", speed);
    for (int i = 0; i < T; i++) {
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return koe_error_set(err, KOE_ERR_INVALID, "token id %d at %d is outside 0..%d", ids[i],
                                 i, m->vocab - 1);
        c->ids64[i] = ids[i];
    }
    const float *s_pro = ref_s + STYLE;
    size_t H = (size_t)m->H, Tz = (size_t)T, D = H + STYLE;
    /* 1. text side up to the durations: d_en [T,H], d [T,H+st] */
    size_t s1 = mx(koe_albert_scratch_floats(m->albert, T, c->pool),
                   koe_predictor_dur_scratch_floats(m->pred, T, c->pool));
    s1 = mx(s1, koe_text_encoder_scratch_floats(m->te, T, c->pool));
    if (reserve(c, Tz * H + Tz * D + Tz * H + s1, err)) return KOE_ERR_NOMEM;
    float *d_en = c->mem, *d = d_en + Tz * H, *t_en = d + Tz * D, *scr = t_en + Tz * H;
    int F = 0, rc;
    rc = koe_albert_run(m->albert, c->pool, scr, c->ids64, T, tap, d_en, err);
    if (!rc)
        rc = koe_predictor_durations(m->pred, c->pool, scr, d_en, T, s_pro, speed, tap, d, c->dur,
                                     &F, err);
    if (!rc) rc = koe_text_encoder_run(m->te, c->pool, scr, c->ids64, T, tap, t_en, err);
    if (rc) return rc;
    if (cancel && *cancel) return koe_error_set(err, KOE_ERR_CANCELLED, "cancelled");
    /* 2. frames: f0, n [2F], asr [H,F] (d and t_en kept before them) */
    size_t Fz = (size_t)F, W2 = (size_t)koe_decoder_out_width(m->dec);
    size_t base = Tz * H + Tz * D + Tz * H;
    if (reserve(c, base + frames_floats(m, T, F, c->pool, chunked), err)) return KOE_ERR_NOMEM;
    size_t S = (size_t)koe_generator_samples(2 * F);
    fb->F = F;
    fb->d = c->mem + Tz * H;
    fb->t_en = fb->d + Tz * D;
    fb->f0 = c->mem + base;
    fb->n = fb->f0 + 2 * Fz;
    fb->asr = fb->n + 2 * Fz;
    fb->asr_p = chunked ? fb->asr + H * Fz : NULL;
    fb->gen_in = fb->asr + (chunked ? 2 : 1) * H * Fz;
    fb->audio = fb->gen_in + W2 * 2 * Fz;
    fb->emitted = chunked ? fb->audio + S : NULL;
    fb->scr = fb->audio + (chunked ? 2 : 1) * S;
    rc = koe_predictor_f0n(m->pred, c->pool, fb->scr, fb->d, T, c->dur, F, s_pro, tap, cancel,
                           fb->f0, fb->n, err);
    if (rc) return rc;
    koe_align_expand(fb->t_en, (int)H, T, c->dur, fb->asr);
    if (tap && tap->fn) {
        int64_t shape[3] = {1, (int64_t)H, F};
        tap->fn(tap->user, "asr", fb->asr, 3, shape);
    }
    return 0;
}

/* What both decode paths report: the audio, the durations, and where the time went (t0: start,
 * t1: end of the text side). */
static void fill_out(koe_synth_out *out, const koe_ctx *c, const float *audio, int T, int F,
                     double t0, double t1) {
    out->audio = audio;
    out->n_samples = koe_generator_samples(2 * F);
    out->durations = c->dur;
    out->n_tokens = T;
    out->frames = F;
    out->text_seconds = t1 - t0;
    out->decoder_seconds = koe_now_s() - t1;
}

int koe_synthesize(koe_ctx *c, const int32_t *ids, int T, const float ref_s[256], float speed,
                   koe_noise noise, const koe_stage_tap *tap, volatile const int *cancel,
                   koe_synth_out *out, koe_error *err) {
    const koe_model *m = c->m;
    memset(out, 0, sizeof *out);
    double t0 = koe_now_s();
    frames_buf fb = {0};
    int rc = synth_front(c, ids, T, ref_s, speed, tap, cancel, 0, &fb, err);
    if (rc) return rc;
    int F = fb.F;
    double t1 = koe_now_s();
    rc = koe_decoder_run(m->dec, c->pool, fb.scr, fb.asr, F, fb.f0, fb.n, ref_s, tap, cancel,
                         fb.gen_in, err);
    if (!rc)
        rc = koe_generator_run(m->gen, c->pool, fb.scr, fb.gen_in, 2 * F, fb.f0, ref_s, noise, tap,
                               cancel, fb.audio, err);
    if (rc) return rc;
    fill_out(out, c, fb.audio, T, F, t0, t1);
    return 0;
}

/* The decoder and generator over the prefix [0, P) of the segment's frame tensors: asr's rows
 * are packed into asr_p (f0 and n are prefixes already); audio gets 600·P samples. */
static int decode_prefix(koe_ctx *c, const frames_buf *fb, int P, const float *s_dec,
                         koe_noise noise, volatile const int *cancel, koe_error *err) {
    const koe_model *m = c->m;
    size_t H = (size_t)m->H, Fz = (size_t)fb->F, Pz = (size_t)P;
    for (size_t h = 0; h < H; h++)
        memcpy(fb->asr_p + h * Pz, fb->asr + h * Fz, Pz * sizeof *fb->asr_p);
    int rc = koe_decoder_run(m->dec, c->pool, fb->scr, fb->asr_p, P, fb->f0, fb->n, s_dec, NULL,
                             cancel, fb->gen_in, err);
    if (!rc)
        rc = koe_generator_run(m->gen, c->pool, fb->scr, fb->gen_in, 2 * P, fb->f0, s_dec, noise,
                               NULL, cancel, fb->audio, err);
    return rc;
}

int koe_synthesize_chunked(koe_ctx *c, const int32_t *ids, int T, const float ref_s[256],
                           float speed, koe_noise noise, const koe_chunk_opts *opts,
                           koe_chunk_fn fn, void *user, const koe_stage_tap *tap,
                           volatile const int *cancel, koe_synth_out *out, koe_error *err) {
    memset(out, 0, sizeof *out);
    if (!opts || opts->window < 1 || opts->lookahead < 0 || opts->growth < 0 || opts->growth > 16)
        return koe_error_set(err, KOE_ERR_INVALID,
                             "chunked vocoder: window %d, lookahead %d, growth %d (expected "
                             "window >= 1, lookahead >= 0, growth 0..16)",
                             opts ? opts->window : 0, opts ? opts->lookahead : 0,
                             opts ? opts->growth : 0);
    double t0 = koe_now_s();
    frames_buf fb = {0};
    int rc = synth_front(c, ids, T, ref_s, speed, tap, cancel, 1, &fb, err);
    if (rc) return rc;
    int F = fb.F, growth = opts->growth > 1 ? opts->growth : 1;
    double t1 = koe_now_s();
    const int64_t spf = koe_generator_samples(2); /* samples per frame */
    int64_t w = opts->window;                     /* int64: growth^k overflows int */
    for (int s = 0, k = 0; s < F; k++) {
        int e = (int)(s + w < F ? s + w : F);
        int P = e + opts->lookahead < F ? e + opts->lookahead : F;
        if (P == F) e = F; /* this run is the exact one: the rest of the segment is final */
        if (cancel && *cancel) return koe_error_set(err, KOE_ERR_CANCELLED, "cancelled");
        rc = decode_prefix(c, &fb, P, ref_s, noise, cancel, err);
        if (rc) return rc;
        memcpy(fb.emitted + s * spf, fb.audio + s * spf, (size_t)(e - s) * spf * sizeof(float));
        koe_chunk ch = {.audio = fb.emitted + s * spf,
                        .offset = s * spf,
                        .n_samples = (e - s) * spf,
                        .frame_start = s,
                        .frame_end = e,
                        .prefix_frames = P,
                        .index = k,
                        .exact = P == F,
                        .seconds = koe_now_s() - t0};
        if (fn && fn(user, &ch))
            return koe_error_set(err, KOE_ERR_CANCELLED,
                                 "chunked vocoder: stopped by the callback");
        s = e;
        if (w < F) w *= growth;
    }
    fill_out(out, c, fb.emitted, T, F, t0, t1);
    return 0;
}

/* For the case checker (model/check.c), which runs the generator from a reference STFT. */
const koe_generator *koe_model_generator(const koe_model *m);
const koe_model *koe_ctx_model(const koe_ctx *c);
koe_pool *koe_ctx_pool(koe_ctx *c);
const koe_generator *koe_model_generator(const koe_model *m) {
    return m->gen;
}
const koe_model *koe_ctx_model(const koe_ctx *c) {
    return c->m;
}
koe_pool *koe_ctx_pool(koe_ctx *c) {
    return c->pool;
}
