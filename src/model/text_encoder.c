#include "model/text_encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_conv.h"
#include "model/ops_dense.h"

#define N_CNN 3

struct koe_text_encoder {
    int V, H, k;
    float *emb; /* [V, H] */
    koe_conv *conv[N_CNN];
    float *gamma[N_CNN], *beta[N_CNN];
    koe_lstm *lstm;
};

void koe_text_encoder_free(koe_text_encoder *te) {
    if (!te) return;
    free(te->emb);
    for (int i = 0; i < N_CNN; i++) {
        koe_conv_free(te->conv[i]);
        free(te->gamma[i]);
        free(te->beta[i]);
    }
    koe_lstm_free(te->lstm);
    free(te);
}

koe_text_encoder *koe_text_encoder_new(koe_tensor_lookup lookup, void *user, koe_error *err) {
    koe_text_encoder *te = calloc(1, sizeof *te);
    if (!te) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory loading the text encoder");
        return NULL;
    }
    koe_fetcher f = {lookup, user, err, 0};
    int64_t se[2] = {-1, -1};
    te->emb = koe_fetch_copy(&f, "text_encoder.embedding.weight", 2, se);
    if (f.failed) goto fail;
    te->V = (int)se[0];
    te->H = (int)se[1];
    int H = te->H;
    for (int i = 0; i < N_CNN; i++) {
        char nm[96];
        int64_t sv[3] = {H, H, -1};
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.0.weight_v", i);
        const float *v = koe_fetch(&f, nm, 3, sv);
        int k = (int)sv[2];
        if (!f.failed && k % 2 == 0) {
            koe_error_set(err, KOE_ERR_FORMAT, "tensor %s: kernel %d is not odd", nm, k);
            goto fail;
        }
        int64_t sg[3] = {H, 1, 1}, sb[1] = {H}, s1[1] = {H}, s2[1] = {H};
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.0.weight_g", i);
        const float *g = koe_fetch(&f, nm, 3, sg);
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.0.bias", i);
        const float *b = koe_fetch(&f, nm, 1, sb);
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.1.gamma", i);
        te->gamma[i] = koe_fetch_copy(&f, nm, 1, s1);
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.1.beta", i);
        te->beta[i] = koe_fetch_copy(&f, nm, 1, s2);
        if (f.failed) goto fail;
        size_t n = (size_t)H * H * k;
        float *w = malloc(n * sizeof *w);
        if (!w) {
            koe_error_set(err, KOE_ERR_NOMEM, "out of memory loading the text encoder");
            goto fail;
        }
        koe_weight_norm(g, v, H, (size_t)H * k, w);
        koe_conv_desc d = {.cin = H, .cout = H, .k = k, .pad = k / 2};
        te->conv[i] = koe_conv_new(&d, w, b, err);
        free(w);
        if (!te->conv[i]) goto fail;
        te->k = k;
    }
    if (H % 2) {
        koe_error_set(err, KOE_ERR_FORMAT, "text encoder width %d is odd", H);
        goto fail;
    }
    te->lstm = koe_lstm_load(&f, "text_encoder.lstm", H, H / 2);
    if (!te->lstm) goto fail;
    return te;
fail:
    koe_text_encoder_free(te);
    return NULL;
}

int koe_text_encoder_width(const koe_text_encoder *te) {
    return te->H;
}

int koe_text_encoder_vocab(const koe_text_encoder *te) {
    return te->V;
}

static size_t conv_scratch(const koe_text_encoder *te, int T, koe_pool *pool) {
    size_t m = 0;
    for (int i = 0; i < N_CNN; i++) {
        size_t s = koe_conv_scratch_floats(te->conv[i], T, pool);
        if (s > m) m = s;
    }
    return m;
}

/* Scratch layout: a [H,T] | b [H,T] | max(conv scratch, LSTM scratch). */
size_t koe_text_encoder_scratch_floats(const koe_text_encoder *te, int T, koe_pool *pool) {
    if (T < 1) T = 1;
    size_t c = conv_scratch(te, T, pool), l = koe_lstm_scratch_floats(te->lstm, T);
    return 2 * (size_t)te->H * T + (c > l ? c : l);
}

int koe_text_encoder_run(const koe_text_encoder *te, koe_pool *pool, float *scratch,
                         const int64_t *ids, int T, const koe_stage_tap *tap, float *t_en,
                         koe_error *err) {
    if (T < 1) return koe_error_set(err, KOE_ERR_INVALID, "text encoder: no tokens");
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= te->V)
            return koe_error_set(err, KOE_ERR_INVALID,
                                 "text encoder: token %d has id %lld, outside 0..%d", t,
                                 (long long)ids[t], te->V - 1);
    int H = te->H;
    float *a = scratch, *b = a + (size_t)H * T, *rest = b + (size_t)H * T;
    for (int t = 0; t < T; t++)
        memcpy(b + (size_t)t * H, te->emb + (size_t)ids[t] * H, (size_t)H * sizeof(float));
    koe_transpose(b, T, H, H, a, T); /* convolutions want [H, T] */
    for (int i = 0; i < N_CNN; i++) {
        koe_conv_run(te->conv[i], pool, rest, a, T, b, 0);
        koe_layer_norm_cols(b, H, T, te->gamma[i], te->beta[i], 1e-5f);
        koe_lrelu(b, (size_t)H * T, 0.2f);
        float *s = a;
        a = b;
        b = s;
    }
    /* a holds [H, T]; the LSTM wants [T, H] rows. */
    koe_transpose(a, H, T, T, b, H);
    koe_lstm_run(te->lstm, pool, rest, b, H, T, a, H);
    koe_transpose(a, T, H, H, t_en, T);
    if (tap && tap->fn) {
        int64_t shape[3] = {1, H, T};
        tap->fn(tap->user, "t_en", t_en, 3, shape);
    }
    return 0;
}
