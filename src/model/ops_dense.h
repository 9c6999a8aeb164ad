/* Dense kernels for the text side of Kokoro (PL-BERT, the prosody predictor's duration path, the
 * text encoder): linear layers through cblas_sgemm, LayerNorm / AdaLayerNorm, gelu_new, softmax
 * attention, bidirectional LSTMs, and reading weights through a koe_tensor_lookup.
 *
 * Layout: unlike ops_conv.h, these kernels work on time-major activations [T, C] (one row per
 * token or frame, row stride `ld` ≥ C), because a linear layer over a sequence is then one sgemm
 * and a concatenation along channels is a column offset. Loaded weights are owned copies,
 * read-only afterwards. Run functions take the caller's koe_pool (NULL = inline) and never
 * allocate; those needing scratch say how much. */
#ifndef KOE_MODEL_OPS_DENSE_H
#define KOE_MODEL_OPS_DENSE_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"
#include "model/generator.h" /* koe_tensor_lookup */
#include "model/pool.h"

/* ---- weights ----------------------------------------------------------------------------- */
/* Reads tensors by full name, checking shapes; the first failure is kept in err and every later
 * fetch returns NULL, so a constructor can fetch everything and test `failed` once. */
typedef struct koe_fetcher {
    koe_tensor_lookup lookup;
    void *user;
    koe_error *err;
    int failed;
} koe_fetcher;

/* want[0..nd-1]: expected shape; -1 accepts any positive size and is filled in. Returns the
 * lookup's data (valid only during the constructor) or NULL with the error naming the tensor. */
const float *koe_fetch(koe_fetcher *f, const char *name, int nd, int64_t *want);
/* The same, copied into a malloc'd buffer owned by the caller. */
float *koe_fetch_copy(koe_fetcher *f, const char *name, int nd, int64_t *want);

/* ---- linear layers ----------------------------------------------------------------------- */
/* y[t, :] = x[t, :] · wᵀ + b for t < T; w: [out, in] (PyTorch Linear layout), b: [out] or NULL.
 * x has row stride ldx, y row stride ldy; they must not overlap. Columns are split over the
 * pool's threads. */
void koe_linear(koe_pool *pool, const float *x, int ldx, int T, int in, const float *w,
                const float *b, int out, float *y, int ldy);

/* A linear layer with its weights laid out once for speed. Layouts: [out, in] or [in, out] for
 * OpenBLAS, or panels of 16 (AVX2) / 32 (AVX-512) outputs × in for koe's own kernel, which
 * needs no per-call packing (the fastest at every row count measured; the default where the
 * CPU has it). */
enum { KOE_DENSE_OUT_IN = 0, KOE_DENSE_IN_OUT = 1 };
typedef struct koe_dense {
    int in, out;
    float *w, *b; /* b: [out] (zeros when the layer has none) */
    int layout;   /* KOE_DENSE_OUT_IN, KOE_DENSE_IN_OUT, 16 or 32 */
} koe_dense;

/* The layout koe_dense_init picks for this CPU when asked for -1. */
int koe_dense_best_layout(int in, int out);
/* Copies w [out, in] (PyTorch layout) and b [out] (or NULL) into d in `layout` (-1 = best).
 * Returns 0, or KOE_ERR_UNSUPPORTED for a panel width this CPU cannot run, or KOE_ERR_NOMEM. */
int koe_dense_init(koe_dense *d, const float *w, const float *b, int in, int out, int layout,
                   koe_error *err);
/* Loads `prefix.weight` [out, in] + `prefix.bias` [out]; in / out: expected sizes or -1 for any.
 * Returns 0 or the fetcher's error code. */
int koe_dense_load(koe_fetcher *f, const char *prefix, int in, int out, koe_dense *d);
void koe_dense_free(koe_dense *d);
void koe_dense_run(const koe_dense *d, koe_pool *pool, const float *x, int ldx, int T, float *y,
                   int ldy);
/* The same followed by gelu_new, applied by each thread to its own columns. */
void koe_dense_run_gelu(const koe_dense *d, koe_pool *pool, const float *x, int ldx, int T,
                        float *y, int ldy);

/* ---- normalization and activations ------------------------------------------------------- */
/* Row-wise LayerNorm of x [T, C] (stride ld) in place: y = (x − μ)/√(σ² + eps) · scale + shift,
 * statistics in double. scale / shift: [C] or NULL (1 and 0). AdaLayerNorm is scale = 1 + γ,
 * shift = β. */
void koe_layer_norm_rows(float *x, int T, int C, int ld, const float *scale, const float *shift,
                         float eps);
/* The same over the channels of a channel-major x [C, T] (each column normalized). */
void koe_layer_norm_cols(float *x, int C, int T, const float *scale, const float *shift, float eps);
/* AdaLayerNorm's affine from the style: gamma_beta = fc(s) [2C] → scale = 1 + γ, shift = β. */
void koe_ada_ln_affine(const float *gamma_beta, int C, float *scale, float *shift);
/* gelu_new (tanh approximation) in place over n floats. */
void koe_gelu_new(float *x, size_t n);
/* [T, C] (stride ldx) → [C, T] (stride ldy ≥ T). */
void koe_transpose(const float *x, int T, int C, int ldx, float *y, int ldy);

/* ---- attention --------------------------------------------------------------------------- */
/* Scaled dot-product attention without mask (one unpadded sequence). qkv: [T, 3·H·d] holding q,
 * k, v side by side (H heads of d each); ctx: [T, H·d] = concat over heads of
 * softmax(q_h·k_hᵀ/√d)·v_h. Heads are spread over the pool. */
size_t koe_attention_scratch_floats(int T, koe_pool *pool);
void koe_attention(koe_pool *pool, float *scratch, const float *qkv, int T, int heads, int d,
                   float *ctx);

/* ---- bidirectional LSTM ------------------------------------------------------------------ */
/* One-layer bidirectional LSTM (PyTorch names and gate order i, f, g, o) with u units per
 * direction: output [steps, 2u], forward then backward outputs. */
typedef struct koe_lstm koe_lstm;

/* Loads prefix.{weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0}[_reverse]. in: expected
 * input width or -1; units: expected u or -1. NULL on failure (fetcher's error set). */
koe_lstm *koe_lstm_load(koe_fetcher *f, const char *prefix, int in, int units);
void koe_lstm_free(koe_lstm *l);
int koe_lstm_in(const koe_lstm *l);
int koe_lstm_units(const koe_lstm *l);

/* Scratch for T input rows and `steps` recurrence steps (steps = T unless expanded). */
size_t koe_lstm_scratch_floats(const koe_lstm *l, int T);
/* x: [T, in] (stride ldx) → y: [T, 2u] (stride ldy). The two directions run as two pool tasks.
 * y may overlap x (x is read completely before y is written). */
void koe_lstm_run(const koe_lstm *l, koe_pool *pool, float *scratch, const float *x, int ldx, int T,
                  float *y, int ldy);
/* The LSTM over the sequence in which row t of x is repeated rep[t] ≥ 1 times (steps = Σ rep):
 * the input projections are computed once per row, not once per step. y: [steps, 2u]. */
void koe_lstm_run_repeated(const koe_lstm *l, koe_pool *pool, float *scratch, const float *x,
                           int ldx, int T, const int32_t *rep, float *y, int ldy);

#endif
