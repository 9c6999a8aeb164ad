#include "model/predictor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/adain_block.h"
#include "model/ops_conv.h"
#include "model/ops_dense.h"

#define N_ENC 3 /* LSTM + AdaLayerNorm pairs of the duration encoder (lstms.0 … lstms.5) */

struct koe_predictor {
    int H, st, max_dur;
    koe_lstm *enc_lstm[N_ENC];
    koe_dense enc_ln_fc[N_ENC]; /* AdaLayerNorm fc: st → 2H */
    koe_lstm *lstm;
    koe_dense dur_proj; /* H → max_dur */
    koe_lstm *shared;
    koe_resblk f0[3], n[3];
    float *f0_proj_w, *n_proj_w; /* [H/2] */
    float f0_proj_b, n_proj_b;
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
    for (int i = 0; i < 3; i++) {
        koe_resblk_free(&p->f0[i]);
        koe_resblk_free(&p->n[i]);
    }
    free(p->f0_proj_w);
    free(p->n_proj_w);
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
    for (int b = 0; b < 2; b++) {
        const char *br = b ? "N" : "F0";
        koe_resblk *rb = b ? p->n : p->f0;
        char nm[96];
        /* F0.0: H → H; F0.1: H → H/2 with upsampling; F0.2: H/2 → H/2 (same for N) */
        for (int i = 0; i < 3; i++) {
            snprintf(nm, sizeof nm, "predictor.%s.%d", br, i);
            koe_resblk_load(&f, nm, i == 0 ? H : (i == 1 ? H : H / 2), i == 0 ? H : H / 2, i == 1,
                            st, &rb[i]);
        }
        int64_t sw[3] = {1, H / 2, 1}, sb[1] = {1};
        snprintf(nm, sizeof nm, "predictor.%s_proj.weight", br);
        float *w = koe_fetch_copy(&f, nm, 3, sw);
        snprintf(nm, sizeof nm, "predictor.%s_proj.bias", br);
        const float *bias = koe_fetch(&f, nm, 1, sb);
        if (b)
            p->n_proj_w = w;
        else
            p->f0_proj_w = w;
        if (f.failed) goto fail;
        if (b)
            p->n_proj_b = bias[0];
        else
            p->f0_proj_b = bias[0];
    }
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

/* With two or more threads the F0 and N branches run side by side, one thread each: no
 * fork-join inside the blocks, and the same work. */
static int branches_in_parallel(koe_pool *pool) {
    return pool && koe_pool_threads(pool) >= 2;
}

/* Scratch a block stack needs over F frames with this pool. */
static size_t blocks_scratch(const koe_predictor *p, int frames, koe_pool *pool) {
    size_t m = 0;
    for (int i = 0; i < 3; i++) {
        int L = i == 2 ? 2 * frames : frames;
        m = max_sz(m, koe_resblk_scratch(&p->f0[i], L, pool));
        m = max_sz(m, koe_resblk_scratch(&p->n[i], L, pool));
    }
    return m;
}

/* Scratch layout: en tap [H+st, F] | shared out [F, H] | x [H, F] | y [H, 2F] | y2 [H, 2F] |
 * rest = max(LSTM scratch, dᵀ, block scratch (two of them when the branches run in parallel)). */
size_t koe_predictor_f0n_scratch_floats(const koe_predictor *p, int T, int frames, koe_pool *pool) {
    if (T < 1) T = 1;
    if (frames < 1) frames = 1;
    size_t F = (size_t)frames, H = (size_t)p->H, rest = koe_lstm_scratch_floats(p->shared, T);
    rest = max_sz(rest, (H + p->st) * (size_t)T); /* dᵀ for the "en" tap */
    rest = max_sz(rest, branches_in_parallel(pool) ? 2 * blocks_scratch(p, frames, NULL)
                                                   : blocks_scratch(p, frames, pool));
    return (H + p->st) * F + 2 * H * F + 2 * H * 2 * F + rest;
}

/* One branch: three blocks from x [H, F], then the k1 projection to out [2F]. */
typedef struct branch {
    const koe_predictor *p;
    const koe_resblk *rb;
    const float *pw, *x, *s_pro;
    float pb;
    int F;
    float *y, *z, *rest, *out; /* y [H, 2F], z [H/2, 2F], block scratch, out [2F] */
} branch;

static void f0n_branch(const branch *b, koe_pool *pool) {
    int H = b->p->H, C = H / 2, F = b->F, L = 2 * F, st = b->p->st;
    koe_resblk_run(&b->rb[0], pool, b->rest, b->x, F, b->s_pro, st, b->y);     /* [H, F] */
    koe_resblk_run(&b->rb[1], pool, b->rest, b->y, F, b->s_pro, st, b->z);     /* [H/2, 2F] */
    koe_resblk_run(&b->rb[2], pool, b->rest, b->z, 2 * F, b->s_pro, st, b->y); /* [H/2, 2F] */
    for (int t = 0; t < L; t++) b->out[t] = b->pb;
    for (int c = 0; c < C; c++) {
        const float *yr = b->y + (size_t)c * L;
        float w = b->pw[c];
        for (int t = 0; t < L; t++) b->out[t] += w * yr[t];
    }
}

static void branch_task(void *arg, int i) {
    f0n_branch((const branch *)arg + i, NULL);
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
    float *y = x + (size_t)H * F, *rest = y + (size_t)H * 4 * F;
    if (tap && tap->fn) {
        koe_transpose(d, T, W, W, rest, T); /* dᵀ [W, T] borrows the block scratch */
        koe_align_expand(rest, W, T, pred_dur, entap);
        emit(tap, "en", entap, 3, 1, W, F);
    }
    /* The shared LSTM runs over enᵀ, whose rows are d's rows repeated: the input projection is
     * computed per token, not per frame. */
    koe_lstm_run_repeated(p->shared, pool, rest, d, W, T, pred_dur, xs, H);
    koe_transpose(xs, (int)F, H, H, x, (int)F);
    if (cancel && *cancel) return koe_error_set(err, KOE_ERR_CANCELLED, "predictor: cancelled");
    /* xs and the en tap are free again: the branches' [H/2, 2F] buffers go there. */
    float *y2 = y + (size_t)H * 2 * F, *rest1 = y2 + (size_t)H * 2 * F;
    int par = branches_in_parallel(pool);
    branch br[2] = {{p, p->f0, p->f0_proj_w, x, s_pro, p->f0_proj_b, (int)F, y, entap, rest1, f0},
                    {p, p->n, p->n_proj_w, x, s_pro, p->n_proj_b, (int)F, y2, xs,
                     par ? rest1 + blocks_scratch(p, (int)F, NULL) : rest1, n}};
    if (par) {
        koe_pool_run(pool, 2, branch_task, br);
        emit(tap, "F0_pred", f0, 2, 1, 2 * F, 0);
    } else {
        f0n_branch(&br[0], pool);
        emit(tap, "F0_pred", f0, 2, 1, 2 * F, 0);
        if (cancel && *cancel) return koe_error_set(err, KOE_ERR_CANCELLED, "predictor: cancelled");
        f0n_branch(&br[1], pool);
    }
    emit(tap, "N_pred", n, 2, 1, 2 * F, 0);
    return 0;
}
