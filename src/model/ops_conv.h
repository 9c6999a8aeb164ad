/* Convolution kernels and the per-channel elementwise ops around them (weight norm, AdaIN,
 * LeakyReLU, Snake), shared by the Kokoro decoder, predictor and generator.
 *
 * Layout: activations are [channels, time] row-major float32 (batch 1); a channel concatenation
 * is therefore just consecutive rows. Weights are given in PyTorch layout once, at load time, and
 * prepacked into an opaque koe_conv / koe_convt that is read-only afterwards (shareable between
 * threads). Every run function parallelizes over the caller's koe_pool (NULL = run inline) and
 * never allocates: it takes scratch of at least *_scratch_floats() floats. */
#ifndef KOE_MODEL_OPS_CONV_H
#define KOE_MODEL_OPS_CONV_H

#include <stddef.h>

#include "koe/error.h"
#include "model/pool.h"

/* Weight norm: out = g · v / ‖v‖, the norm taken over each slice along dim 0 (n0 slices of
 * `slice` floats each; g has n0 values). Conv1d [Cout, Cin, K]: n0 = Cout; ConvTranspose1d
 * [Cin, Cout/groups, K]: n0 = Cin (per INPUT channel). out may equal v. Norm in double. */
void koe_weight_norm(const float *g, const float *v, int n0, size_t slice, float *out);

/* OpenBLAS's own threading is a process-wide setting; kernels call sgemm from pool tasks, so
 * it must run single-threaded. Idempotent and thread-safe; koe_conv_new calls it. */
void koe_blas_single_thread(void);

/* The precision a loader asks a layer for (the `prec` arguments of the model's constructors):
 * 0 float32, 1 bf16, 2 int8. */
enum { KOE_CONV_FP32 = 0, KOE_CONV_BF16 = 1, KOE_CONV_INT8 = 2 };

/* ---- Conv1d ------------------------------------------------------------------------------ */
typedef struct koe_conv_desc {
    int cin, cout, k;
    int stride, pad, dil, groups; /* 0 is read as stride 1, dilation 1, groups 1 */
    /* 1: weights stored in bf16 and every product done in bf16 with float32 sums (ops_bf16.h);
     * groups 1 only (ignored otherwise). 0: float32 throughout. */
    int bf16;
    /* 1: int8 weights (a scale per output channel), activations quantized with one scale per
     * output sample (max |x| / 127 over its receptive field, every input channel; in the
     * frequency-domain path per block and bin), int32 sums (ops_int8.h); groups 1 only;
     * overrides bf16. */
    int int8;
} koe_conv_desc;

typedef struct koe_conv koe_conv;

/* weight: PyTorch Conv1d layout [cout, cin/groups, k] (already weight-norm folded); bias: [cout]
 * or NULL. The weight is copied (packed), the caller may free it afterwards. */
koe_conv *koe_conv_new(const koe_conv_desc *d, const float *weight, const float *bias,
                       koe_error *err);
void koe_conv_free(koe_conv *c);
const koe_conv_desc *koe_conv_get_desc(const koe_conv *c);
/* (t_in + 2·pad − dil·(k−1) − 1) / stride + 1, or ≤ 0 when the input is too short. */
int koe_conv_out_len(const koe_conv *c, int t_in);
size_t koe_conv_scratch_floats(const koe_conv *c, int t_in, koe_pool *pool);
/* Multiply-adds one run really performs (the frequency-domain path, used for narrow long
 * dilated convolutions, needs fewer than cin·cout·k per output sample). */
double koe_conv_macs(const koe_conv *c, int t_in);
/* Whether the frequency-domain path is used (for tests and reports). */
int koe_conv_uses_fd(const koe_conv *c);
/* x: [cin, t_in] → y: [cout, out_len]. accumulate = 0: y = conv(x) + bias; 1: y += conv(x) + bias.
 * x and y must not overlap. */
void koe_conv_run(const koe_conv *c, koe_pool *pool, float *scratch, const float *x, int t_in,
                  float *y, int accumulate);

/* ---- ConvTranspose1d --------------------------------------------------------------------- */
typedef struct koe_convt_desc {
    int cin, cout, k;
    int stride, pad, out_pad, groups; /* stride 0 → 1, groups 0 → 1 (dilation is always 1) */
    int bf16;                         /* as in koe_conv_desc (groups 1 only) */
    int int8;                         /* as in koe_conv_desc (groups 1 only, overrides bf16) */
} koe_convt_desc;

typedef struct koe_convt koe_convt;

/* weight: PyTorch ConvTranspose1d layout [cin, cout/groups, k] (folded); bias [cout] or NULL. */
koe_convt *koe_convt_new(const koe_convt_desc *d, const float *weight, const float *bias,
                         koe_error *err);
void koe_convt_free(koe_convt *c);
/* (t_in − 1)·stride − 2·pad + k + out_pad */
int koe_convt_out_len(const koe_convt *c, int t_in);
size_t koe_convt_scratch_floats(const koe_convt *c, int t_in, koe_pool *pool);
/* x: [cin, t_in] → y: [cout, out_len] (overwritten). */
void koe_convt_run(const koe_convt *c, koe_pool *pool, float *scratch, const float *x, int t_in,
                   float *y);

/* ---- AdaIN and activations --------------------------------------------------------------- */
/* Instance norm with AdaIN affine folded into one per-channel affine y = a[c]·x + b[c]:
 * y = (1 + γ)·(IN(x)·w + nb) + β with IN over the whole time axis (biased variance, eps 1e-5,
 * statistics accumulated in double). gamma_beta: [2C] = fc(style) (γ then β); norm_w, norm_b:
 * [C] affine of the instance norm, or NULL for identity. x: [C, T]. */
void koe_adain_coefs(koe_pool *pool, const float *x, int C, int T, const float *gamma_beta,
                     const float *norm_w, const float *norm_b, float *a, float *b);

/* y[c,t] = lrelu(a[c]·x[c,t] + b[c], slope); a, b may be NULL (1 and 0). y may equal x. */
void koe_affine_lrelu(koe_pool *pool, const float *x, float *y, int C, int T, const float *a,
                      const float *b, float slope);
/* u = a[c]·x + b[c]; y = u + sin²(α[c]·u) / α[c] (Snake); a, b may be NULL. y may equal x. */
void koe_affine_snake(koe_pool *pool, const float *x, float *y, int C, int T, const float *a,
                      const float *b, const float *alpha);
/* In place LeakyReLU over n floats. */
void koe_lrelu(float *x, size_t n, float slope);

#endif
