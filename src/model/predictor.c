#include "model/predictor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_dense.h"

#define N_ENC 3 /* LSTM + AdaLayerNorm pairs of the duration encoder (lstms.0 … lstms.5) */

struct koe_predictor {
    int H, st, max_dur;
    koe_lstm *enc_lstm[N_ENC];
    koe_dense enc_ln_fc[N_ENC]; /* AdaLayerNorm fc: st → 2H */
    koe_lstm *lstm;
    koe_dense dur_proj; /* H → max_dur */
    koe_lstm *shared;
};

void koe_predictor_free(koe_predictor *p) {
    if (!p) return;
    for (int i = 0; i < N_ENC; i++) {
        koe_lstm_free(p->enc_lstm[i]);
        koe_dense_free(&p->enc_ln_fc[i]);
    }
    koe_lstm_free(p->lstm);
    koe_dense_free(&p->dur_proj);
    koe_lstm_free(p->shared);
    free(p);
}

koe_predictor *koe_predictor_new(koe_tensor_lookup lookup, void *user, koe_error *err) {
    koe_predictor *p = calloc(1, sizeof *p);
    if (!p) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory loading the predictor");
        return NULL;
    }
    koe_fetcher f = {lookup, user, err, 0};
    /* The AdaLayerNorm fc [2H, st] gives both widths. */
    if (koe_dense_load(&f, "predictor.text_encoder.lstms.1.fc", -1, -1, &p->enc_ln_fc[0]))
        goto fail;
    p->st = p->enc_ln_fc[0].in;
    if (p->enc_ln_fc[0].out % 4) {
        koe_error_set(err, KOE_ERR_FORMAT,
                      "tensor predictor.text_encoder.lstms.1.fc.weight: %d rows is not 2·H with "
                      "H even",
                      p->enc_ln_fc[0].out);
        goto fail;
    }
    int H = p->H = p->enc_ln_fc[0].out / 2, st = p->st;
    for (int i = 0; i < N_ENC; i++) {
        char nm[96];
        snprintf(nm, sizeof nm, "predictor.text_encoder.lstms.%d", 2 * i);
        p->enc_lstm[i] = koe_lstm_load(&f, nm, H + st, H / 2);
        if (!p->enc_lstm[i]) goto fail;
        if (i > 0) {
            snprintf(nm, sizeof nm, "predictor.text_encoder.lstms.%d.fc", 2 * i + 1);
            if (koe_dense_load(&f, nm, st, 2 * H, &p->enc_ln_fc[i])) goto fail;
        }
    }
    p->lstm = koe_lstm_load(&f, "predictor.lstm", H + st, H / 2);
    if (!p->lstm) goto fail;
    if (koe_dense_load(&f, "predictor.duration_proj.linear_layer", H, -1, &p->dur_proj)) goto fail;
    p->max_dur = p->dur_proj.out;
    p->shared = koe_lstm_load(&f, "predictor.shared", H + st, H / 2);
    if (!p->shared) goto fail;
    return p;
fail:
    koe_predictor_free(p);
    return NULL;
}

int koe_predictor_width(const koe_predictor *p) {
    return p->H;
}

int koe_predictor_style(const koe_predictor *p) {
    return p->st;
}

static void emit(const koe_stage_tap *tap, const char *name, const float *data, int ndim,
                 int64_t d0, int64_t d1, int64_t d2) {
    if (!tap || !tap->fn) return;
    int64_t shape[3] = {d0, d1, d2};
    if (ndim == 1) shape[0] = d0;
    tap->fn(tap->user, name, data, ndim, shape);
}

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Scratch layout: lstm out [T,H] | logits [T,max_dur] | duration [T] | affine 4H |
 * LSTM scratch. */
size_t koe_predictor_dur_scratch_floats(const koe_predictor *p, int T, koe_pool *pool) {
    (void)pool;
    if (T < 1) T = 1;
    size_t l = koe_lstm_scratch_floats(p->lstm, T);
    for (int i = 0; i < N_ENC; i++) l = max_sz(l, koe_lstm_scratch_floats(p->enc_lstm[i], T));
    return (size_t)T * ((size_t)p->H + p->max_dur + 1) + 4 * (size_t)p->H + l;
}

int koe_predictor_durations(const koe_predictor *p, koe_pool *pool, float *scratch,
                            const float *d_en, int T, const float *s_pro, float speed,
                            const koe_stage_tap *tap, float *d, int32_t *pred_dur, int *frames,
                            koe_error *err) {
    if (T < 1) return koe_error_set(err, KOE_ERR_INVALID, "predictor: no tokens");
    if (!(speed > 0.0f) || !isfinite(speed))
        return koe_error_set(err, KOE_ERR_INVALID, "predictor: speed %g is not a positive number",
                             (double)speed);
    int H = p->H, st = p->st, W = H + st, M = p->max_dur;
    float *L = scratch, *logits = L + (size_t)T * H, *dur = logits + (size_t)T * M;
    float *gb = dur + T, *scale = gb + 2 * H, *shift = scale + H, *ls = shift + H;

    /* x = concat(d_en, s): the style columns never change, the LSTM and AdaLayerNorm rewrite
     * the first H columns in place. */
    for (int t = 0; t < T; t++) {
        memcpy(d + (size_t)t * W, d_en + (size_t)t * H, (size_t)H * sizeof(float));
        memcpy(d + (size_t)t * W + H, s_pro, (size_t)st * sizeof(float));
    }
    for (int i = 0; i < N_ENC; i++) {
        koe_lstm_run(p->enc_lstm[i], pool, ls, d, W, T, d, W);
        koe_dense_run(&p->enc_ln_fc[i], NULL, s_pro, st, 1, gb, 2 * H);
        koe_ada_ln_affine(gb, H, scale, shift);
        koe_layer_norm_rows(d, T, H, W, scale, shift, 1e-5f);
    }
    emit(tap, "pred_text_enc", d, 3, 1, T, W);
    koe_lstm_run(p->lstm, pool, ls, d, W, T, L, H);
    emit(tap, "pred_lstm", L, 3, 1, T, H);
    koe_dense_run(&p->dur_proj, pool, L, H, T, logits, M);
    emit(tap, "dur_logits", logits, 3, 1, T, M);

    int64_t F = 0;
    for (int t = 0; t < T; t++) {
        /* In double so that only values within ~1e-12 of a .5 boundary could round otherwise
         * than the exact sum; float32 sums already agree with the reference at its margins. */
        double s = 0.0;
        const float *r = logits + (size_t)t * M;
        for (int k = 0; k < M; k++) s += 1.0 / (1.0 + exp(-(double)r[k]));
        s /= (double)speed;
        dur[t] = (float)s;
        double rd = nearbyint(s); /* default rounding mode: half to even, as torch.round */
        if (rd < 1.0) rd = 1.0;
        if (rd > KOE_PREDICTOR_MAX_FRAMES) rd = KOE_PREDICTOR_MAX_FRAMES + 1.0;
        pred_dur[t] = (int32_t)rd;
        F += pred_dur[t];
    }
    emit(tap, "duration", dur, 2, 1, T, 0);
    if (tap && tap->fn) {
        for (int t = 0; t < T; t++) dur[t] = (float)pred_dur[t]; /* the tap wants floats */
        emit(tap, "pred_dur", dur, 1, T, 0, 0);
    }
    if (F > KOE_PREDICTOR_MAX_FRAMES)
        return koe_error_set(err, KOE_ERR_LIMIT,
                             "predictor: %lld frames of audio, more than the limit of %d",
                             (long long)F, KOE_PREDICTOR_MAX_FRAMES);
    *frames = (int)F;
    return 0;
}

void koe_align_expand(const float *x, int C, int T, const int32_t *dur, float *y) {
    int64_t F = 0;
    for (int t = 0; t < T; t++) F += dur[t];
    for (int c = 0; c < C; c++) {
        const float *xr = x + (size_t)c * T;
        float *yr = y + (size_t)c * F;
        for (int t = 0; t < T; t++) {
            float v = xr[t];
            for (int r = 0; r < dur[t]; r++) *yr++ = v;
        }
    }
}

/* Scratch layout: en tap [H+st, F] | shared out [F, H] | x [H, F] | LSTM scratch. */
size_t koe_predictor_f0n_scratch_floats(const koe_predictor *p, int T, int frames, koe_pool *pool) {
    (void)pool;
    if (T < 1) T = 1;
    if (frames < 1) frames = 1;
    size_t F = (size_t)frames, H = (size_t)p->H;
    return (H + p->st) * F + 2 * H * F + koe_lstm_scratch_floats(p->shared, T);
}

int koe_predictor_f0n(const koe_predictor *p, koe_pool *pool, float *scratch, const float *d, int T,
                      const int32_t *pred_dur, int frames, const float *s_pro,
                      const koe_stage_tap *tap, volatile const int *cancel, float *f0, float *n,
                      koe_error *err) {
    int64_t F = 0;
    for (int t = 0; t < T; t++) {
        if (pred_dur[t] < 1)
            return koe_error_set(err, KOE_ERR_INVALID, "predictor: token %d lasts %d frames", t,
                                 (int)pred_dur[t]);
        F += pred_dur[t];
    }
    if (T < 1 || F != frames)
        return koe_error_set(err, KOE_ERR_INVALID,
                             "predictor: %d tokens lasting %lld frames, expected %d", T,
                             (long long)F, frames);
    int H = p->H, W = H + p->st;
    float *entap = scratch, *xs = entap + (size_t)W * F, *x = xs + (size_t)H * F;
    float *ls = x + (size_t)H * F;
    if (tap && tap->fn) {
        koe_transpose(d, T, W, W, ls, T); /* dᵀ [W, T] borrows the LSTM scratch */
        koe_align_expand(ls, W, T, pred_dur, entap);
        emit(tap, "en", entap, 3, 1, W, F);
    }
    /* The shared LSTM runs over enᵀ, whose rows are d's rows repeated: the input projection is
     * computed per token, not per frame. */
    koe_lstm_run_repeated(p->shared, pool, ls, d, W, T, pred_dur, xs, H);
    koe_transpose(xs, (int)F, H, H, x, (int)F);
    if (cancel && *cancel) return koe_error_set(err, KOE_ERR_CANCELLED, "predictor: cancelled");
    (void)s_pro;
    (void)f0;
    (void)n;
    return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                         "predictor: F0/N blocks not implemented yet (waiting for adain_block)");
}
