/* AdainResBlk1d (see adain_block.h). Shared by the decoder and the predictor's F0/N stacks. */
#include "model/adain_block.h"

#include <stdio.h>
#include <stdlib.h>

static void adain_load(koe_fetcher *f, const char *prefix, int C, int st, koe_adain *a) {
    char nm[160];
    snprintf(nm, sizeof nm, "%s.fc", prefix);
    koe_dense_load(f, nm, st, 2 * C, &a->fc);
    /* The instance norm's affine is optional (identity when absent), but comes as a pair. */
    int64_t s1[1] = {C}, s2[1] = {C}, shape[4];
    int nd, has_w, has_b;
    snprintf(nm, sizeof nm, "%s.norm.weight", prefix);
    has_w = f->lookup(f->user, nm, &nd, shape) != NULL;
    snprintf(nm, sizeof nm, "%s.norm.bias", prefix);
    has_b = f->lookup(f->user, nm, &nd, shape) != NULL;
    if (!has_w && !has_b) return;
    snprintf(nm, sizeof nm, "%s.norm.weight", prefix);
    a->nw = koe_fetch_copy(f, nm, 1, s1);
    snprintf(nm, sizeof nm, "%s.norm.bias", prefix);
    a->nb = koe_fetch_copy(f, nm, 1, s2);
}

static void adain_free(koe_adain *a) {
    koe_dense_free(&a->fc);
    free(a->nw);
    free(a->nb);
}

/* Weight-normed Conv1d prefix.{weight_g, weight_v[, bias]} with kernel k and padding k/2. */
koe_conv *koe_wn_conv_load(koe_fetcher *f, const char *prefix, int cin, int cout, int k,
                           int with_bias) {
    return koe_wn_conv_load_prec(f, prefix, cin, cout, k, with_bias, 0);
}

koe_conv *koe_wn_conv_load_prec(koe_fetcher *f, const char *prefix, int cin, int cout, int k,
                                int with_bias, int prec) {
    char nm[160];
    int64_t sv[3] = {cout, cin, k}, sg[3] = {cout, 1, 1}, sb[1] = {cout};
    snprintf(nm, sizeof nm, "%s.weight_v", prefix);
    const float *v = koe_fetch(f, nm, 3, sv);
    snprintf(nm, sizeof nm, "%s.weight_g", prefix);
    const float *g = koe_fetch(f, nm, 3, sg);
    const float *b = NULL;
    if (with_bias) {
        snprintf(nm, sizeof nm, "%s.bias", prefix);
        b = koe_fetch(f, nm, 1, sb);
    }
    if (f->failed) return NULL;
    float *w = malloc((size_t)cout * cin * k * sizeof *w);
    if (!w) {
        f->failed = KOE_ERR_NOMEM;
        koe_error_set(f->err, KOE_ERR_NOMEM, "out of memory loading %s", prefix);
        return NULL;
    }
    koe_weight_norm(g, v, cout, (size_t)cin * k, w);
    koe_conv_desc d = {.cin = cin,
                       .cout = cout,
                       .k = k,
                       .pad = k / 2,
                       .bf16 = prec >= KOE_CONV_BF16,
                       .int8 = prec == KOE_CONV_INT8};
    koe_conv *c = koe_conv_new(&d, w, b, f->err);
    free(w);
    if (!c) f->failed = f->err ? f->err->code : KOE_ERR_NOMEM;
    return c;
}

void koe_resblk_load(koe_fetcher *f, const char *prefix, int cin, int cout, int upsample, int st,
                     koe_resblk *rb) {
    koe_resblk_load_prec(f, prefix, cin, cout, upsample, st, 0, rb);
}

void koe_resblk_load_prec(koe_fetcher *f, const char *prefix, int cin, int cout, int upsample,
                          int st, int prec, koe_resblk *rb) {
    char nm[160];
    rb->cin = cin;
    rb->cout = cout;
    rb->upsample = upsample;
    snprintf(nm, sizeof nm, "%s.norm1", prefix);
    adain_load(f, nm, cin, st, &rb->n1);
    snprintf(nm, sizeof nm, "%s.norm2", prefix);
    adain_load(f, nm, cout, st, &rb->n2);
    snprintf(nm, sizeof nm, "%s.conv1", prefix);
    /* conv1 and conv2 read AdaIN-normalized activations (every channel at a similar scale),
     * which one int8 scale per tensor represents well. The shortcut reads the block's raw
     * input, which in the decoder is [x; asr_res; F0; N]: F0 in Hz is ~100× the other
     * channels, so one scale would round the rest to a few levels: bf16 there in int8 models
     * (it is a k 1 layer, a small part of the work). */
    rb->conv1 = koe_wn_conv_load_prec(f, nm, cin, cout, 3, 1, prec);
    snprintf(nm, sizeof nm, "%s.conv2", prefix);
    rb->conv2 = koe_wn_conv_load_prec(f, nm, cout, cout, 3, 1, prec);
    if (cin != cout) {
        snprintf(nm, sizeof nm, "%s.conv1x1", prefix);
        rb->sc = koe_wn_conv_load_prec(f, nm, cin, cout, 1, 0,
                                       prec > KOE_CONV_BF16 ? KOE_CONV_BF16 : prec);
    }
    if (upsample && !f->failed) {
        int64_t sv[3] = {cin, 1, 3}, sg[3] = {cin, 1, 1}, sb[1] = {cin};
        snprintf(nm, sizeof nm, "%s.pool.weight_v", prefix);
        const float *v = koe_fetch(f, nm, 3, sv);
        snprintf(nm, sizeof nm, "%s.pool.weight_g", prefix);
        const float *g = koe_fetch(f, nm, 3, sg);
        snprintf(nm, sizeof nm, "%s.pool.bias", prefix);
        const float *b = koe_fetch(f, nm, 1, sb);
        if (f->failed) return;
        float w[3 * 1024];
        float *wp = cin <= 1024 ? w : malloc((size_t)3 * cin * sizeof *wp);
        if (!wp) {
            f->failed = KOE_ERR_NOMEM;
            koe_error_set(f->err, KOE_ERR_NOMEM, "out of memory loading %s", prefix);
            return;
        }
        /* ConvTranspose1d weight [cin, 1, 3]: the norm is per input channel (dim 0) */
        koe_weight_norm(g, v, cin, 3, wp);
        koe_convt_desc d = {
            .cin = cin, .cout = cin, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .groups = cin};
        rb->pool = koe_convt_new(&d, wp, b, f->err);
        if (wp != w) free(wp);
        if (!rb->pool) f->failed = f->err ? f->err->code : KOE_ERR_NOMEM;
    }
}

void koe_resblk_free(koe_resblk *rb) {
    adain_free(&rb->n1);
    adain_free(&rb->n2);
    koe_convt_free(rb->pool);
    koe_conv_free(rb->conv1);
    koe_conv_free(rb->conv2);
    koe_conv_free(rb->sc);
}

size_t koe_resblk_scratch(const koe_resblk *rb, int L, koe_pool *pool) {
    int L2 = rb->upsample ? 2 * L : L;
    size_t c = koe_conv_scratch_floats(rb->conv1, L2, pool);
    size_t c2 = koe_conv_scratch_floats(rb->conv2, L2, pool);
    if (c2 > c) c = c2;
    if (rb->sc && koe_conv_scratch_floats(rb->sc, L2, pool) > c)
        c = koe_conv_scratch_floats(rb->sc, L2, pool);
    if (rb->pool && koe_convt_scratch_floats(rb->pool, L, pool) > c)
        c = koe_convt_scratch_floats(rb->pool, L, pool);
    /* gb [2·max C], coefs a, b [max C], r [cin, L2], y [cout, L2], up [cin, L2], conv scratch */
    size_t cmax = (size_t)(rb->cin > rb->cout ? rb->cin : rb->cout);
    return 4 * cmax + (size_t)L2 * (2 * (size_t)rb->cin + rb->cout) + c;
}

/* x [cin, L] → out [cout, L2] (L2 = 2L when upsampling). */
void koe_resblk_run(const koe_resblk *rb, koe_pool *pool, float *scratch, const float *x, int L,
                    const float *style, int st, float *out) {
    int ci = rb->cin, co = rb->cout, L2 = rb->upsample ? 2 * L : L;
    size_t cmax = (size_t)(ci > co ? ci : co);
    float *gb = scratch, *ca = gb + 2 * cmax, *cb = ca + cmax, *r = cb + cmax;
    float *up = r + (size_t)ci * L, *y = up + (size_t)ci * L2, *cs = y + (size_t)co * L2;
    /* residual: AdaIN → lrelu → [pool] → conv1 → AdaIN → lrelu → conv2 */
    koe_dense_run(&rb->n1.fc, NULL, style, st, 1, gb, 2 * ci);
    koe_adain_coefs(pool, x, ci, L, gb, rb->n1.nw, rb->n1.nb, ca, cb);
    koe_affine_lrelu(pool, x, r, ci, L, ca, cb, 0.2f);
    const float *rin = r;
    if (rb->upsample) {
        koe_convt_run(rb->pool, pool, cs, r, L, up);
        rin = up;
    }
    koe_conv_run(rb->conv1, pool, cs, rin, L2, y, 0);
    koe_dense_run(&rb->n2.fc, NULL, style, st, 1, gb, 2 * co);
    koe_adain_coefs(pool, y, co, L2, gb, rb->n2.nw, rb->n2.nb, ca, cb);
    koe_affine_lrelu(pool, y, y, co, L2, ca, cb, 0.2f);
    koe_conv_run(rb->conv2, pool, cs, y, L2, out, 0);
    /* shortcut: [nearest ×2] → [conv1x1], added to the residual */
    const float *sx = x;
    if (rb->upsample) {
        for (int c = 0; c < ci; c++) {
            const float *xr = x + (size_t)c * L;
            float *ur = up + (size_t)c * L2;
            for (int t = 0; t < L; t++) ur[2 * t] = ur[2 * t + 1] = xr[t];
        }
        sx = up;
    }
    if (rb->sc)
        koe_conv_run(rb->sc, pool, cs, sx, L2, out, 1);
    else
        for (size_t i = 0; i < (size_t)co * L2; i++) out[i] += sx[i];
    const float rs2 = 0.70710677f; /* float32 1/√2, as torch.rsqrt(2) */
    for (size_t i = 0; i < (size_t)co * L2; i++) out[i] *= rs2;
}
