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

#define KOE_MODEL_SAMPLE_RATE 24000
#define KOE_MODEL_MAX_TOKENS  512 /* ids per call, pads included */

typedef struct koe_model koe_model;
typedef struct koe_ctx koe_ctx;

/* Loads a Kokoro-82M checkpoint (.pth or safetensors) and prepares every part (weight norm
 * folded, convolutions packed). config_path: the model's config.json (NULL = the built-in full
 * Kokoro-82M config): it gives the PL-BERT layer and head counts, and every dim it names
 * (hidden_dim, n_token, max_dur, n_layer, plbert sizes, ...) must agree with the tensors; other
 * widths come from the tensor shapes. Every tensor the parts need is checked for presence and
 * shape, and a tensor no part uses is an error that names it. */
koe_model *koe_model_load(const char *weights_path, const char *config_path, koe_error *err);
void koe_model_free(koe_model *m);

/* Numeric precision of the heavy part of the engine (the decoder's and the generator's
 * convolutions, ~95% of the work). The text side (PL-BERT, predictor, text encoder) always runs
 * in float32: it decides the durations, which are rounded, so a small error there could move a
 * frame boundary. */
typedef enum koe_precision {
    KOE_PRECISION_AUTO = 0, /* the fastest precision whose quality gate passes on this CPU */
    KOE_PRECISION_FP32 = 1,
    KOE_PRECISION_BF16 = 2, /* bf16 weights and activations, float32 sums */
    KOE_PRECISION_INT8 = 3  /* int8 weights (per output channel) and activations (a scale per time
                               tile), int32 sums; the few layers where int8 is unsafe in bf16 */
} koe_precision;

/* "auto", "fp32", "bf16", "int8". */
const char *koe_precision_name(koe_precision p);
/* The inverse (also "float32", "f32"); 0 or KOE_ERR_INVALID naming the bad value. */
int koe_precision_parse(const char *s, koe_precision *out, koe_error *err);
/* What AUTO means on this CPU: INT8 where AVX-512 VNNI (vpdpbusd) is present, else BF16 where
 * AVX-512 BF16 (vdpbf16ps) is, else FP32 (the AVX2 and portable kernels are correct but not
 * faster than float32 OpenBLAS per multiply). Honours KOE_CPU_DISABLE (e.g.
 * "avx512bf16,avx512vnni"), read on every call. */
koe_precision koe_precision_auto(void);

typedef struct koe_model_options {
    const char *config_path; /* NULL = the built-in Kokoro-82M config (see koe_model_load) */
    koe_precision precision; /* 0 = AUTO */
} koe_model_options;

/* koe_model_load with options (opts NULL = all defaults: built-in config, AUTO). Plain
 * koe_model_load is koe_model_load_ex with precision FP32, as it always was, unless the
 * environment variable KOE_PRECISION names one (fp32, bf16, int8, auto; anything else is an
 * error): the way `koe synth --precision` reaches the model through the pipeline. */
koe_model *koe_model_load_ex(const char *weights_path, const koe_model_options *opts,
                             koe_error *err);
/* The precision the model was prepared in (never AUTO). */
koe_precision koe_model_precision(const koe_model *m);

/* A context: its own thread pool (n_threads including the caller) and scratch memory, grown
 * for longer inputs and reused. Any number of contexts may share one model. */
koe_ctx *koe_ctx_new(const koe_model *m, int n_threads, koe_error *err);
void koe_ctx_free(koe_ctx *c);
/* The threads the context's next calls use: 1 .. the n_threads it was created with (clamped);
 * returns the count set. Lets a scheduler give a call all the cores when nothing else runs. */
int koe_ctx_set_threads(koe_ctx *c, int n_threads);
/* fn(user), when set, is called by the context's thread between two kernels of every call (a few
 * hundred times per second of audio) and may block: a scheduler's way to pause this context's
 * work while a more urgent call has the cores. NULL = none. Set between calls only. */
void koe_ctx_set_yield(koe_ctx *c, void (*fn)(void *user), void *user);

typedef struct koe_synth_out {
    const float *audio; /* n_samples at 24 kHz; owned by the context until its next call */
    int64_t n_samples;
    const int32_t *durations; /* frames per token (n_tokens, pads included) */
    int n_tokens;
    int frames;             /* F = sum of durations (40 per second) */
    double text_seconds;    /* PL-BERT, predictor, text encoder */
    double decoder_seconds; /* decoder + generator */
} koe_synth_out;

/* ids: n_ids token ids with the pad 0 at both ends (3 <= n_ids <= KOE_MODEL_MAX_TOKENS);
 * ref_s: the voice's 256-float style row; speed > 0. cancel (may be NULL) is polled between
 * stages: a set flag returns KOE_ERR_CANCELLED. */
int koe_synthesize(koe_ctx *c, const int32_t *ids, int n_ids, const float ref_s[256], float speed,
                   koe_noise noise, const koe_stage_tap *tap, volatile const int *cancel,
                   koe_synth_out *out, koe_error *err);

/* ---- Chunked vocoder (an experiment, off unless called) ------------------------------------
 * koe_synthesize is exact only per whole segment: every AdaIN of the decoder and the generator
 * normalizes over the segment's whole time axis, so no sample is final before all of it is
 * computed. koe_synthesize_chunked trades exactness for an earlier first window: the text side,
 * durations and F0/N run once over the whole segment (exact); then, for each window [s, e) of
 * frames, the decoder and generator run on the prefix [0, P) of their inputs, P = min(F, e + L),
 * and the window's samples [600 s, 600 e) of that run are emitted. Every instance norm thus sees
 * the frames available so far plus L frames of lookahead, which also covers the convolutions'
 * receptive field at the prefix end. Once a prefix reaches F (e + L >= F) that run is the exact
 * computation, and everything not yet emitted is emitted from it in one last window: so with
 * L >= F - W (or W >= F) the output equals koe_synthesize's. Windows grow by `growth` (window k
 * has W·growth^k frames), which bounds the number of prefix runs. */
typedef struct koe_chunk_opts {
    int window;    /* W: frames of the first window (>= 1; 40 frames = 1 s) */
    int lookahead; /* L: frames past a window's end its run sees (>= 0) */
    int growth;    /* window k has W·growth^k frames; 0 or 1 = constant, at most 16 */
} koe_chunk_opts;

typedef struct koe_chunk {
    const float *audio; /* n_samples final samples (valid during the callback only) */
    int64_t offset;     /* index of audio[0] in the segment's samples */
    int64_t n_samples;  /* 600 · (frame_end − frame_start) */
    int frame_start, frame_end, prefix_frames; /* window [start, end) from a run over [0, prefix) */
    int index;                                 /* 0, 1, ... in order */
    int exact;      /* 1 when prefix_frames = F: these samples equal koe_synthesize's */
    double seconds; /* since koe_synthesize_chunked was called */
} koe_chunk;

/* Returns 0 to go on; anything else stops the call with KOE_ERR_CANCELLED. */
typedef int (*koe_chunk_fn)(void *user, const koe_chunk *chunk);

/* As koe_synthesize (same arguments, noise and validation), plus opts and the callback, called
 * in order with each window as soon as its samples exist. On success out is filled as by
 * koe_synthesize, with out->audio the windows' concatenation (600·F samples) and
 * decoder_seconds the total of all prefix runs. The tap sees the text side's stages only (the
 * prefix runs' decoder stages would not have the reference's shapes). */
int koe_synthesize_chunked(koe_ctx *c, const int32_t *ids, int n_ids, const float ref_s[256],
                           float speed, koe_noise noise, const koe_chunk_opts *opts,
                           koe_chunk_fn fn, void *user, const koe_stage_tap *tap,
                           volatile const int *cancel, koe_synth_out *out, koe_error *err);

#endif
