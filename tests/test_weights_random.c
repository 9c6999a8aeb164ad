/* Random weights: deterministic for a seed, the reference checkpoint's tensor list at tiny widths
 * written and read back, the initialization rules (norm affines, Snake alphas, weight-norm
 * scale), and, at full size through the real PL-BERT and prosody predictor, the two promises
 * the benchmarks rely on: about 3.3 frames per token and F0 within 100-250 Hz. */
#include "harness.h"
#include "koe/weights.h"
#include "model/albert.h"
#include "model/pool.h"
#include "model/predictor.h"
#include "model/weights_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tiny_manifest[1024];

static const koe_kokoro_dims TINY = {.n_token = 178,
                                     .E = 32,
                                     .Hb = 32,
                                     .inter = 64,
                                     .positions = 512,
                                     .H = 64,
                                     .style = 128,
                                     .W1 = 128,
                                     .W2 = 64,
                                     .W3 = 16,
                                     .max_dur = 50};

static void temp_path(char *out, size_t cap, const char *tag) {
    snprintf(out, cap, "/tmp/koe-test-random-%d-%s.safetensors", (int)getpid(), tag);
}

static void test_deterministic(void) {
    char a[256], b[256], c[256];
    temp_path(a, sizeof a, "a");
    temp_path(b, sizeof b, "b");
    temp_path(c, sizeof c, "c");
    koe_error err = {0};
    KT_CHECK(koe_weights_write_random_dims(a, &TINY, 7, &err) == 0, "%s", err.msg);
    KT_CHECK(koe_weights_write_random_dims(b, &TINY, 7, &err) == 0, "%s", err.msg);
    KT_CHECK(koe_weights_write_random_dims(c, &TINY, 8, &err) == 0, "%s", err.msg);
    size_t la = 0, lb = 0, lc = 0;
    unsigned char *fa = kt_read_file(a, &la), *fb = kt_read_file(b, &lb),
                  *fc = kt_read_file(c, &lc);
    KT_CHECK(fa && fb && la == lb && !memcmp(fa, fb, la), "seed 7 twice: identical files (%zu B)",
             la);
    KT_CHECK(fc && lc == la && memcmp(fa, fc, la), "seed 8: same layout, other values");
    free(fa);
    free(fb);
    free(fc);
    unlink(a);
    unlink(b);
    unlink(c);
}

/* The tiny-width file read back: every name, dtype and shape of the reference manifest. */
static void test_tiny_widths_match_manifest(void) {
    char path[256];
    temp_path(path, sizeof path, "tiny");
    koe_error err = {0};
    KT_CHECK(koe_weights_write_random_dims(path, &TINY, 1, &err) == 0, "%s", err.msg);
    koe_weights *w = koe_weights_open(path, &err);
    KT_CHECK(w != NULL, "%s", err.msg);
    size_t mlen;
    char *mtext = kt_read_file(tiny_manifest, &mlen);
    cJSON *m = mtext ? cJSON_Parse(mtext) : NULL;
    KT_CHECK(cJSON_IsArray(m), "read %s", tiny_manifest);
    if (w && m) {
        KT_CHECK((size_t)cJSON_GetArraySize(m) == koe_weights_count(w), "%d in the manifest, %zu",
                 cJSON_GetArraySize(m), koe_weights_count(w));
        size_t wrong = 0;
        const char *first = NULL;
        cJSON *e;
        cJSON_ArrayForEach(e, m) {
            const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
            const char *dt = cJSON_GetObjectItem(e, "dtype")->valuestring;
            cJSON *shape = cJSON_GetObjectItem(e, "shape");
            const koe_tensor *t = koe_weights_find(w, name);
            int ok = t && t->ndim == cJSON_GetArraySize(shape) &&
                     (t->dtype == KOE_DT_I64) == !strcmp(dt, "i64");
            for (int d = 0; ok && d < t->ndim; d++)
                ok = t->shape[d] == (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble;
            if (!ok && !wrong++) first = name;
        }
        KT_CHECK(wrong == 0, "%zu tensors differ from the manifest, first %s", wrong, first);
        KT_CHECK(koe_weights_first_unused(w, NULL) == NULL, "no tensor beyond the manifest: %s",
                 koe_weights_first_unused(w, NULL));
    }
    cJSON_Delete(m);
    free(mtext);
    koe_weights_close(w);
    unlink(path);
}

/* The official layout (.pth) holds exactly the tensors and values of the safetensors file of
 * the same seed, under the same canonical names once "module." is stripped. */
static void test_pth_equals_safetensors(void) {
    char st[256], pth[256];
    temp_path(st, sizeof st, "same");
    snprintf(pth, sizeof pth, "/tmp/koe-test-random-%d-same.pth", (int)getpid());
    koe_error err = {0};
    KT_CHECK(koe_weights_write_random_dims(st, &TINY, 5, &err) == 0, "%s", err.msg);
    KT_CHECK(koe_weights_write_random_dims(pth, &TINY, 5, &err) == 0, "%s", err.msg);
    koe_weights *a = koe_weights_open(st, &err);
    KT_CHECK(a != NULL, "%s", err.msg);
    koe_weights *b = koe_weights_open(pth, &err);
    KT_CHECK(b != NULL, "%s", err.msg);
    if (a && b) {
        KT_CHECK(koe_weights_count(a) == koe_weights_count(b), "%zu and %zu tensors",
                 koe_weights_count(a), koe_weights_count(b));
        size_t differ = 0, misaligned = 0;
        for (size_t i = 0; i < koe_weights_count(a); i++) {
            const koe_tensor *x = koe_weights_at(a, i), *y = koe_weights_find(b, x->name);
            int same = y && y->dtype == x->dtype && y->ndim == x->ndim && y->nbytes == x->nbytes &&
                       !memcmp(y->shape, x->shape, sizeof x->shape) &&
                       !memcmp(y->data, x->data, x->nbytes);
            differ += !same;
            misaligned += y && (uintptr_t)y->data % 64 != 0; /* the writer aligns every storage */
        }
        KT_CHECK(differ == 0, "%zu tensors differ between .pth and .safetensors", differ);
        KT_CHECK(misaligned == 0, "%zu .pth tensors are not in place on 64-byte boundaries",
                 misaligned);
    }
    koe_weights_close(a);
    koe_weights_close(b);
    unlink(st);
    unlink(pth);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Norm affines, Snake alphas, and the effective scale of weight-normed convolutions. */
static void test_init_rules(void) {
    char path[256];
    temp_path(path, sizeof path, "rules");
    koe_error err = {0};
    KT_CHECK(koe_weights_write_random_dims(path, &TINY, 3, &err) == 0, "%s", err.msg);
    koe_weights *w = koe_weights_open(path, &err);
    KT_CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    size_t gammas = 0, betas = 0, alphas = 0, bad = 0, wn = 0, wn_bad = 0;
    for (size_t i = 0; i < koe_weights_count(w); i++) {
        const koe_tensor *t = koe_weights_at(w, i);
        if (t->dtype != KOE_DT_F32) continue;
        const float *x = t->data;
        size_t n = t->nbytes / 4;
        /* LayerNorm, AdaIN's instance-norm affine ("norm1.norm.weight") and the text
         * encoder's gamma/beta; Snake alphas */
        int gamma = ends_with(t->name, ".gamma") || ends_with(t->name, "Norm.weight") ||
                    ends_with(t->name, "norm.weight") || strstr(t->name, ".alpha");
        int beta = ends_with(t->name, ".beta") || ends_with(t->name, "Norm.bias") ||
                   ends_with(t->name, "norm.bias");
        if (gamma || beta) {
            for (size_t k = 0; k < n; k++)
                if (x[k] != (gamma ? 1.0f : 0.0f)) {
                    bad++;
                    break;
                }
            if (strstr(t->name, ".alpha"))
                alphas++;
            else if (gamma)
                gammas++;
            else
                betas++;
        }
        if (ends_with(t->name, ".weight_v")) {
            /* w = g v / |v| per output row: its RMS should be about 1/sqrt(3 fan_in) (the RMS
             * of U(-a, a) with a = 1/sqrt(fan_in)). */
            char gname[200];
            snprintf(gname, sizeof gname, "%.*s_g", (int)(strlen(t->name) - 2), t->name);
            const koe_tensor *g = koe_weights_find(w, gname);
            size_t rows = (size_t)t->shape[0], per = n / rows;
            double sumsq = 0;
            for (size_t r = 0; g && r < rows; r++) {
                double norm = 0;
                for (size_t k = 0; k < per; k++) norm += (double)x[r * per + k] * x[r * per + k];
                double scale = ((const float *)g->data)[r] / sqrt(norm);
                sumsq += scale * scale * norm;
            }
            double rms = sqrt(sumsq / (double)n), want = 1.0 / sqrt(3.0 * (double)per);
            wn++;
            /* (too few elements per row, as in the 3-tap pools, for a meaningful RMS) */
            if (!g || (per >= 8 && fabs(rms / want - 1) > 0.25)) wn_bad++;
        }
    }
    printf("  %zu gammas, %zu betas, %zu Snake alphas, %zu weight-normed convolutions\n", gammas,
           betas, alphas, wn);
    KT_CHECK(bad == 0, "%zu norm affines or alphas are not 1 / 0", bad);
    KT_CHECK(gammas == 76 && betas == 76 && alphas == 48 && wn == 89,
             "every affine, alpha and "
             "weight-normed convolution of the checkpoint checked");
    KT_CHECK(wn_bad == 0, "%zu weight-normed convolutions off the 1/sqrt(fan_in) scale", wn_bad);
    koe_weights_close(w);
    unlink(path);
}

/* Full size through PL-BERT and the predictor: frames per token and F0 as the writer promises. */
static void test_full_size_prosody(void) {
    char path[256];
    temp_path(path, sizeof path, "full");
    koe_error err = {0};
    int rc = koe_weights_write_random(path, NULL, 1, &err);
    KT_CHECK(rc == 0, "%s", err.msg);
    koe_weights *w = rc ? NULL : koe_weights_open(path, &err);
    KT_CHECK(w != NULL, "%s", err.msg);
    koe_pool *pool = koe_pool_new(2, &err);
    koe_albert_config cfg = {0}; /* the full model's 12 layers and heads */
    koe_albert *bert = w ? koe_albert_new(koe_weights_lookup, w, &cfg, &err) : NULL;
    koe_predictor *pred = bert ? koe_predictor_new(koe_weights_lookup, w, &err) : NULL;
    KT_CHECK(pool && bert && pred, "full-size PL-BERT and predictor: %s", err.msg);
    if (!pool || !bert || !pred) goto done;
    enum { T = 32 };
    int64_t ids[T];
    uint64_t x = 12345;
    ids[0] = ids[T - 1] = 0; /* the pads */
    for (int i = 1; i < T - 1; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = 1 + (int64_t)((x >> 33) % 177);
    }
    float s_pro[128];
    for (int k = 0; k < 128; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s_pro[k] = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5) * 0.6f;
    }
    int H = koe_predictor_width(pred), W = H + koe_predictor_style(pred), F = 0;
    float *d_en = malloc((size_t)T * H * sizeof *d_en), *d = malloc((size_t)T * W * sizeof *d);
    int32_t dur[T];
    float *s = malloc(koe_albert_scratch_floats(bert, T, pool) * sizeof *s);
    rc = koe_albert_run(bert, pool, s, ids, T, NULL, d_en, &err);
    free(s);
    s = malloc(koe_predictor_dur_scratch_floats(pred, T, pool) * sizeof *s);
    if (!rc)
        rc = koe_predictor_durations(pred, pool, s, d_en, T, s_pro, 1.0f, NULL, d, dur, &F, &err);
    free(s);
    KT_CHECK(rc == 0, "durations: %s", err.msg);
    if (!rc) {
        double per_token = (double)F / T;
        printf("  %d tokens -> %d frames: %.2f frames per token, %.1f tokens per second\n", T, F,
               per_token, 40.0 / per_token);
        KT_CHECK(per_token >= 2.5 && per_token <= 4.5, "%.2f frames per token (about 3.3 wanted)",
                 per_token);
        float *f0 = malloc(2 * (size_t)F * sizeof *f0), *nn = malloc(2 * (size_t)F * sizeof *nn);
        s = malloc(koe_predictor_f0n_scratch_floats(pred, T, F, pool) * sizeof *s);
        rc = koe_predictor_f0n(pred, pool, s, d, T, dur, F, s_pro, NULL, NULL, f0, nn, &err);
        free(s);
        KT_CHECK(rc == 0, "F0: %s", err.msg);
        if (!rc) {
            double lo = 1e9, hi = -1e9, sum = 0;
            for (int i = 0; i < 2 * F; i++) {
                lo = fmin(lo, f0[i]);
                hi = fmax(hi, f0[i]);
                sum += f0[i];
            }
            printf("  F0 over %d steps: mean %.1f Hz, range %.1f-%.1f Hz\n", 2 * F, sum / (2 * F),
                   lo, hi);
            KT_CHECK(lo >= 100 && hi <= 250, "F0 within 100-250 Hz: %.1f-%.1f", lo, hi);
        }
        free(f0);
        free(nn);
    }
    free(d_en);
    free(d);
done:
    koe_predictor_free(pred);
    koe_albert_free(bert);
    koe_pool_free(pool);
    koe_weights_close(w);
    unlink(path);
}

int main(void) {
    snprintf(tiny_manifest, sizeof tiny_manifest, "%s/kokoro-tiny/kokoro-tiny-seed1.manifest.json",
             kt_env("KOE_TEST_DATA", "tests/data"));
    kt_run("deterministic for a seed", test_deterministic);
    kt_run("tiny widths: the reference tensor list, read back", test_tiny_widths_match_manifest);
    kt_run(".pth (official layout) = safetensors", test_pth_equals_safetensors);
    kt_run("initialization rules", test_init_rules);
    kt_run("full size: durations and F0 through the predictor", test_full_size_prosody);
    return kt_finish();
}
