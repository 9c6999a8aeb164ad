/* AdainResBlk1d: the residual block of StyleTTS2's decoder and of Kokoro's F0/N predictor
 * stacks (kokoro-model.md, "Building blocks of the decoder side"): AdaIN (instance norm over the
 * whole segment, then a style-dependent affine) → LeakyReLU(0.2) → [depthwise ConvTranspose ×2]
 * → conv1 → AdaIN → LeakyReLU → conv2, plus a shortcut ([nearest ×2] → [conv1x1]), over √2.
 *
 * Weights are read once (weight norm folded, convolutions packed); a block is read-only
 * afterwards. Runs take the caller's pool and scratch and never allocate. */
#ifndef KOE_MODEL_ADAIN_BLOCK_H
#define KOE_MODEL_ADAIN_BLOCK_H

#include <stddef.h>

#include "model/ops_conv.h"
#include "model/ops_dense.h"
#include "model/pool.h"

typedef struct koe_adain {
    koe_dense fc;   /* style → [γ | β], 2C */
    float *nw, *nb; /* instance norm affine [C], or NULL (identity) */
} koe_adain;

typedef struct koe_resblk {
    int cin, cout, upsample;
    koe_adain n1, n2;
    koe_convt *pool;              /* depthwise ConvTranspose1d ×2, when upsampling */
    koe_conv *conv1, *conv2, *sc; /* sc: conv1x1 shortcut when cin ≠ cout */
} koe_resblk;

/* prefix: e.g. "decoder.encode"; st: style width (128). Errors go through f (f->failed). */
void koe_resblk_load(koe_fetcher *f, const char *prefix, int cin, int cout, int upsample, int st,
                     koe_resblk *rb);
/* The same in reduced precision: prec KOE_CONV_BF16 (ops_conv.h) runs conv1, conv2 and the
 * shortcut in bf16; KOE_CONV_INT8 runs conv1 and conv2 in int8 and the shortcut in bf16 (see
 * adain_block.c). */
void koe_resblk_load_prec(koe_fetcher *f, const char *prefix, int cin, int cout, int upsample,
                          int st, int prec, koe_resblk *rb);
void koe_resblk_free(koe_resblk *rb);
/* Floats of scratch a run over L input steps needs. */
size_t koe_resblk_scratch(const koe_resblk *rb, int L, koe_pool *pool);
/* x [cin, L] → out [cout, L2] (L2 = 2L when upsampling); style [st]. out must not alias x. */
void koe_resblk_run(const koe_resblk *rb, koe_pool *pool, float *scratch, const float *x, int L,
                    const float *style, int st, float *out);

/* A weight-normed Conv1d prefix.{weight_g, weight_v[, bias]}, kernel k, padding k/2. */
koe_conv *koe_wn_conv_load(koe_fetcher *f, const char *prefix, int cin, int cout, int k,
                           int with_bias);
koe_conv *koe_wn_conv_load_prec(koe_fetcher *f, const char *prefix, int cin, int cout, int k,
                                int with_bias, int prec);

#endif
