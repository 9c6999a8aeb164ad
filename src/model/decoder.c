/* The decoder's convolutional half (kokoro-model.md, stage 4). */
#include "model/decoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/adain_block.h"
#include "model/ops_dense.h"

struct koe_decoder {
    int H, st, W1, W2, W3;
    koe_conv *f0_conv, *n_conv, *asr_res;
    koe_resblk encode, decode[4];
};

void koe_decoder_free(koe_decoder *d) {
    if (!d) return;
    koe_conv_free(d->f0_conv);
    koe_conv_free(d->n_conv);
    koe_conv_free(d->asr_res);
    koe_resblk_free(&d->encode);
    for (int i = 0; i < 4; i++) koe_resblk_free(&d->decode[i]);
    free(d);
}

/* F0_conv / N_conv: weight-normed Conv1d(1→1, k3, stride 2, padding 1). */
static koe_conv *stride2_conv(koe_fetcher *f, const char *prefix) {
    char nm[128];
    int64_t sv[3] = {1, 1, 3}, sg[3] = {1, 1, 1}, sb[1] = {1};
    snprintf(nm, sizeof nm, "%s.weight_v", prefix);
    const float *v = koe_fetch(f, nm, 3, sv);
    snprintf(nm, sizeof nm, "%s.weight_g", prefix);
    const float *g = koe_fetch(f, nm, 3, sg);
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    const float *b = koe_fetch(f, nm, 1, sb);
    if (f->failed) return NULL;
    float w[3];
    koe_weight_norm(g, v, 1, 3, w);
    koe_conv_desc cd = {.cin = 1, .cout = 1, .k = 3, .stride = 2, .pad = 1};
    koe_conv *c = koe_conv_new(&cd, w, b, f->err);
    if (!c) f->failed = KOE_ERR_NOMEM;
    return c;
}

koe_decoder *koe_decoder_new(koe_tensor_lookup lookup, void *user, int H, int st, koe_error *err) {
    return koe_decoder_new_prec(lookup, user, H, st, 0, err);
}

koe_decoder *koe_decoder_new_prec(koe_tensor_lookup lookup, void *user, int H, int st, int prec,
                                  koe_error *err) {
    koe_decoder *d = calloc(1, sizeof *d);
    if (!d) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    koe_fetcher f = {lookup, user, err, 0};
    d->H = H;
    d->st = st;
    /* widths from the shapes */
    int64_t w1[3] = {-1, H + 2, 3}, w3[3] = {-1, H, 1}, w2[3] = {-1, -1, 3};
    koe_fetch(&f, "decoder.encode.conv1.weight_v", 3, w1);
    koe_fetch(&f, "decoder.asr_res.0.weight_v", 3, w3);
    koe_fetch(&f, "decoder.decode.3.conv1.weight_v", 3, w2);
    if (f.failed) {
        koe_decoder_free(d);
        return NULL;
    }
    d->W1 = (int)w1[0];
    d->W3 = (int)w3[0];
    d->W2 = (int)w2[0];
    if (w2[1] != d->W1 + d->W3 + 2) {
        koe_error_set(err, KOE_ERR_FORMAT,
                      "decoder.decode.3.conv1.weight_v has %lld input channels, expected %d",
                      (long long)w2[1], d->W1 + d->W3 + 2);
        koe_decoder_free(d);
        return NULL;
    }
    d->f0_conv = stride2_conv(&f, "decoder.F0_conv");
    d->n_conv = stride2_conv(&f, "decoder.N_conv");
    /* asr_res reads the aligned text features alone (one kind of channel): int8 is fine */
    d->asr_res = koe_wn_conv_load_prec(&f, "decoder.asr_res.0", H, d->W3, 1, 1, prec);
    koe_resblk_load_prec(&f, "decoder.encode", H + 2, d->W1, 0, st, prec, &d->encode);
    for (int i = 0; i < 4 && !f.failed; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "decoder.decode.%d", i);
        koe_resblk_load_prec(&f, nm, d->W1 + d->W3 + 2, i == 3 ? d->W2 : d->W1, i == 3, st, prec,
                             &d->decode[i]);
    }
    if (f.failed) {
        koe_decoder_free(d);
        return NULL;
    }
    return d;
}

int koe_decoder_out_width(const koe_decoder *d) {
    return d->W2;
}

static size_t mx(size_t a, size_t b) {
    return a > b ? a : b;
}

size_t koe_decoder_scratch_floats(const koe_decoder *d, int F, koe_pool *pool) {
    size_t Fz = (size_t)F, cin = (size_t)(d->W1 + d->W3 + 2);
    size_t inner = koe_resblk_scratch(&d->encode, F, pool);
    for (int i = 0; i < 4; i++) inner = mx(inner, koe_resblk_scratch(&d->decode[i], F, pool));
    inner = mx(inner, koe_conv_scratch_floats(d->asr_res, F, pool));
    inner = mx(inner, koe_conv_scratch_floats(d->f0_conv, 2 * F, pool));
    /* f0d, nd [F]; cat [cin, F]; x [W1, F] */
    return 2 * Fz + cin * Fz + (size_t)d->W1 * Fz + inner;
}

static void emit(const koe_stage_tap *tap, const char *name, const float *x, int C, int L) {
    if (!tap || !tap->fn) return;
    int64_t shape[3] = {1, C, L};
    tap->fn(tap->user, name, x, 3, shape);
}

int koe_decoder_run(const koe_decoder *d, koe_pool *pool, float *scratch, const float *asr, int F,
                    const float *f0, const float *n, const float *s_dec, const koe_stage_tap *tap,
                    volatile const int *cancel, float *out, koe_error *err) {
    if (F < 1) return koe_error_set(err, KOE_ERR_INVALID, "decoder: no frames");
    size_t Fz = (size_t)F, H = (size_t)d->H, W1 = (size_t)d->W1, W3 = (size_t)d->W3;
    size_t cin = W1 + W3 + 2;
    float *f0d = scratch, *nd = f0d + Fz, *cat = nd + Fz, *x = cat + cin * Fz, *rest = x + W1 * Fz;
    koe_conv_run(d->f0_conv, pool, rest, f0, 2 * F, f0d, 0);
    koe_conv_run(d->n_conv, pool, rest, n, 2 * F, nd, 0);
    /* encode(concat(asr, F0d, Nd)) */
    memcpy(cat, asr, H * Fz * sizeof *cat);
    memcpy(cat + H * Fz, f0d, Fz * sizeof *cat);
    memcpy(cat + (H + 1) * Fz, nd, Fz * sizeof *cat);
    koe_resblk_run(&d->encode, pool, rest, cat, F, s_dec, d->st, x);
    emit(tap, "dec_encode", x, d->W1, F);
    /* r = asr_res(asr), kept in the concat buffer's r rows for every decode block */
    koe_conv_run(d->asr_res, pool, rest, asr, F, cat + W1 * Fz, 0);
    memcpy(cat + (W1 + W3) * Fz, f0d, Fz * sizeof *cat);
    memcpy(cat + (W1 + W3 + 1) * Fz, nd, Fz * sizeof *cat);
    for (int i = 0; i < 4; i++) {
        if (cancel && *cancel) return koe_error_set(err, KOE_ERR_CANCELLED, "cancelled");
        memcpy(cat, x, W1 * Fz * sizeof *cat);
        float *dst = i == 3 ? out : x;
        koe_resblk_run(&d->decode[i], pool, rest, cat, F, s_dec, d->st, dst);
        char nm[16];
        snprintf(nm, sizeof nm, "dec_decode%d", i);
        emit(tap, nm, dst, i == 3 ? d->W2 : d->W1, i == 3 ? 2 * F : F);
    }
    emit(tap, "gen_input", out, d->W2, 2 * F);
    return 0;
}
