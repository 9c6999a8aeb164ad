/* Times the front half of the full-size Kokoro engine on random weights made here: PL-BERT
 * (12 passes at 768, 12 heads) + bert_encoder, the text encoder, the duration path and the
 * F0/N path of the prosody predictor, for 20, 100 and 400 tokens with 1 and 2 threads (median
 * of N runs after a warm-up). Weights are U(−1/√fan_in, 1/√fan_in) of the full shapes; the
 * duration_proj bias is −2.65 so that a token lasts about 3.3 frames, as in real speech.
 *
 * usage: bench_front [runs [tokens]]   (default 5 runs; 20, 100 and 400 tokens) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koe/base.h"
#include "model/albert.h"
#include "model/ops_conv.h"
#include "model/pool.h"
#include "model/predictor.h"
#include "model/text_encoder.h"

#include "common.h"

/* Full-model widths (kokoro-config.json and the PL-BERT config). */
enum { VOCAB = 178, EMB = 128, POS = 512, HB = 768, INTER = 2048, H = 512, ST = 128, DUR = 50 };

static float inv_sqrt(double fan_in) {
    return (float)(1.0 / __builtin_sqrt(fan_in));
}

static void add_linear(bench_weights *w, const char *prefix, int out, int in) {
    char nm[112];
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    bench_weights_add(w, nm, 2, out, in, 0, inv_sqrt(in), 0.0f);
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    bench_weights_add(w, nm, 1, out, 0, 0, inv_sqrt(in), 0.0f);
}

static void add_ln(bench_weights *w, const char *wname, const char *bname, int n) {
    bench_weights_add(w, wname, 1, n, 0, 0, 0.1f, 1.0f);
    bench_weights_add(w, bname, 1, n, 0, 0, 0.1f, 0.0f);
}

static void add_lstm(bench_weights *w, const char *prefix, int in, int u) {
    static const char *sfx[2] = {"", "_reverse"};
    char nm[112];
    for (int d = 0; d < 2; d++) {
        snprintf(nm, sizeof nm, "%s.weight_ih_l0%s", prefix, sfx[d]);
        bench_weights_add(w, nm, 2, 4 * u, in, 0, inv_sqrt(u),
                          0.0f); /* PyTorch's LSTM init: U(±1/√u) */
        snprintf(nm, sizeof nm, "%s.weight_hh_l0%s", prefix, sfx[d]);
        bench_weights_add(w, nm, 2, 4 * u, u, 0, inv_sqrt(u), 0.0f);
        snprintf(nm, sizeof nm, "%s.bias_ih_l0%s", prefix, sfx[d]);
        bench_weights_add(w, nm, 1, 4 * u, 0, 0, inv_sqrt(u), 0.0f);
        snprintf(nm, sizeof nm, "%s.bias_hh_l0%s", prefix, sfx[d]);
        bench_weights_add(w, nm, 1, 4 * u, 0, 0, inv_sqrt(u), 0.0f);
    }
}

/* Weight-normed Conv1d (or depthwise ConvTranspose1d when depthwise) with bias. */
static void add_wn(bench_weights *w, const char *prefix, int out, int in, int k, int with_bias) {
    char nm[112];
    snprintf(nm, sizeof nm, "%s.weight_v", prefix);
    bench_weights_add(w, nm, 3, out, in, k, inv_sqrt((double)in * k), 0.0f);
    snprintf(nm, sizeof nm, "%s.weight_g", prefix);
    bench_weights_add(w, nm, 3, out, 1, 1, 0.1f, 1.0f);
    if (with_bias) {
        snprintf(nm, sizeof nm, "%s.bias", prefix);
        bench_weights_add(w, nm, 1, out, 0, 0, inv_sqrt((double)in * k), 0.0f);
    }
}

static void add_adain(bench_weights *w, const char *prefix, int C) {
    char nm[112], nb[112];
    snprintf(nm, sizeof nm, "%s.fc", prefix);
    add_linear(w, nm, 2 * C, ST);
    snprintf(nm, sizeof nm, "%s.norm.weight", prefix);
    snprintf(nb, sizeof nb, "%s.norm.bias", prefix);
    add_ln(w, nm, nb, C);
}

static void add_adain_resblk(bench_weights *w, const char *prefix, int a, int b, int upsample) {
    char nm[112];
    snprintf(nm, sizeof nm, "%s.norm1", prefix);
    add_adain(w, nm, a);
    snprintf(nm, sizeof nm, "%s.norm2", prefix);
    add_adain(w, nm, b);
    snprintf(nm, sizeof nm, "%s.conv1", prefix);
    add_wn(w, nm, b, a, 3, 1);
    snprintf(nm, sizeof nm, "%s.conv2", prefix);
    add_wn(w, nm, b, b, 3, 1);
    if (a != b) {
        snprintf(nm, sizeof nm, "%s.conv1x1", prefix);
        add_wn(w, nm, b, a, 1, 0);
    }
    if (upsample) {
        snprintf(nm, sizeof nm, "%s.pool", prefix);
        add_wn(w, nm, a, 1, 3, 1);
    }
}

static void make_weights(bench_weights *w) {
    const char *L = "bert.encoder.albert_layer_groups.0.albert_layers.0.";
    char nm[112], nb[112];
    bench_weights_add(w, "bert.embeddings.word_embeddings.weight", 2, VOCAB, EMB, 0, 1.0f, 0.0f);
    bench_weights_add(w, "bert.embeddings.position_embeddings.weight", 2, POS, EMB, 0, 1.0f, 0.0f);
    bench_weights_add(w, "bert.embeddings.token_type_embeddings.weight", 2, 2, EMB, 0, 1.0f, 0.0f);
    add_ln(w, "bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias", EMB);
    add_linear(w, "bert.encoder.embedding_hidden_mapping_in", HB, EMB);
    static const char *lin[4] = {"attention.query", "attention.key", "attention.value",
                                 "attention.dense"};
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "%s%s", L, lin[i]);
        add_linear(w, nm, HB, HB);
    }
    snprintf(nm, sizeof nm, "%sattention.LayerNorm.weight", L);
    snprintf(nb, sizeof nb, "%sattention.LayerNorm.bias", L);
    add_ln(w, nm, nb, HB);
    snprintf(nm, sizeof nm, "%sffn", L);
    add_linear(w, nm, INTER, HB);
    snprintf(nm, sizeof nm, "%sffn_output", L);
    add_linear(w, nm, HB, INTER);
    snprintf(nm, sizeof nm, "%sfull_layer_layer_norm.weight", L);
    snprintf(nb, sizeof nb, "%sfull_layer_layer_norm.bias", L);
    add_ln(w, nm, nb, HB);
    add_linear(w, "bert_encoder", H, HB);

    for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "predictor.text_encoder.lstms.%d", 2 * i);
        add_lstm(w, nm, H + ST, H / 2);
        snprintf(nm, sizeof nm, "predictor.text_encoder.lstms.%d.fc", 2 * i + 1);
        add_linear(w, nm, 2 * H, ST);
    }
    add_lstm(w, "predictor.lstm", H + ST, H / 2);
    add_linear(w, "predictor.duration_proj.linear_layer", DUR, H);
    /* Σ sigmoid over 50 logits ≈ 50·σ(−2.65) ≈ 3.3 frames per token. */
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, "predictor.duration_proj.linear_layer.bias"))
            for (int k = 0; k < DUR; k++) w->t[i].data[k] = -2.65f + 0.05f * bench_urand(&w->rng);
    add_lstm(w, "predictor.shared", H + ST, H / 2);
    static const char *branch[2] = {"F0", "N"};
    for (int b = 0; b < 2; b++) {
        snprintf(nm, sizeof nm, "predictor.%s.0", branch[b]);
        add_adain_resblk(w, nm, H, H, 0);
        snprintf(nm, sizeof nm, "predictor.%s.1", branch[b]);
        add_adain_resblk(w, nm, H, H / 2, 1);
        snprintf(nm, sizeof nm, "predictor.%s.2", branch[b]);
        add_adain_resblk(w, nm, H / 2, H / 2, 0);
        snprintf(nm, sizeof nm, "predictor.%s_proj.weight", branch[b]);
        bench_weights_add(w, nm, 3, 1, H / 2, 1, inv_sqrt(H / 2), 0.0f);
        snprintf(nm, sizeof nm, "predictor.%s_proj.bias", branch[b]);
        bench_weights_add(w, nm, 1, 1, 0, 0, 0.0f,
                          b == 0 ? 180.0f : 0.0f); /* F0 around a voiced 180 Hz */
    }

    bench_weights_add(w, "text_encoder.embedding.weight", 2, VOCAB, H, 0, 1.0f, 0.0f);
    for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.0", i);
        add_wn(w, nm, H, H, 5, 1);
        snprintf(nm, sizeof nm, "text_encoder.cnn.%d.1.gamma", i);
        snprintf(nb, sizeof nb, "text_encoder.cnn.%d.1.beta", i);
        add_ln(w, nm, nb, H);
    }
    add_lstm(w, "text_encoder.lstm", H, H / 2);
}

/* Floating-point operations of one PL-BERT + bert_encoder run over T tokens (12 passes). */
static double albert_flops(int T) {
    double t = T,
           layer = 2 * t * HB * 3 * HB + 4 * t * t * HB + 2 * t * HB * HB + 4 * t * HB * INTER;
    return 2 * t * EMB * HB + 12 * layer + 2 * t * HB * H;
}

/* Reference: OpenBLAS sgemm 512×512 · 512×1024 per thread (one per pool task, the inputs
 * shared), GFLOP/s: the best of 5 samples of 4 runs. */
static double sgemm_peak(koe_pool *pool, int threads, bench_weights *w) {
    float *a = malloc(512 * 512 * sizeof(float)), *b = malloc(512 * 1024 * sizeof(float));
    bench_sgemm_job j = {
        {a, a}, {b, b}, {malloc(512 * 1024 * sizeof(float)), malloc(512 * 1024 * sizeof(float))}};
    if (!a || !b || !j.c[0] || !j.c[1]) abort();
    for (int i = 0; i < 512 * 512; i++) a[i] = bench_urand(&w->rng);
    for (int i = 0; i < 512 * 1024; i++) b[i] = bench_urand(&w->rng);
    koe_pool_run(pool, threads, bench_sgemm_task, &j); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = koe_now_s();
        for (int k = 0; k < 4; k++) koe_pool_run(pool, threads, bench_sgemm_task, &j);
        double dt = (koe_now_s() - t0) / 4;
        best = dt < best ? dt : best;
    }
    free(a);
    free(b);
    free(j.c[0]);
    free(j.c[1]);
    return threads * 2.0 * 512 * 512 * 1024 / best * 1e-9;
}

enum { P_BERT, P_TE, P_DUR, P_F0N, N_PARTS };
static const char *const PART[N_PARTS] = {"albert", "text_enc", "durations", "f0n"};

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5, only = argc > 2 ? atoi(argv[2]) : 0;
    if (runs < 1 || runs > 100 || only < 0 || only > POS) {
        fprintf(stderr, "usage: bench_front [runs 1..100 [tokens 2..512]]\n");
        return 2;
    }
    bench_weights w = {.rng = 0x9E3779B97F4A7C15ULL};
    make_weights(&w);
    koe_error err = {0};
    koe_albert *bert = koe_albert_new(bench_weights_lookup, &w, NULL, &err);
    koe_text_encoder *te = bert ? koe_text_encoder_new(bench_weights_lookup, &w, &err) : NULL;
    koe_predictor *pred = te ? koe_predictor_new(bench_weights_lookup, &w, &err) : NULL;
    if (!pred) {
        fprintf(stderr, "bench_front: %s\n", err.msg);
        return 1;
    }
    float s_pro[ST];
    for (int i = 0; i < ST; i++) s_pro[i] = 0.3f * bench_urand(&w.rng);

    printf("# bench_front: full-size front half on random weights, median of %d runs (s)\n", runs);
    printf("%-7s %-7s %-7s %-9s %-9s %-9s %-9s %-9s %s\n", "tokens", "threads", "frames", PART[0],
           PART[1], PART[2], PART[3], "total", "albert GFLOP/s");
    int lens[3] = {20, 100, 400}, n_lens = 3;
    if (only) {
        lens[0] = only < 2 ? 2 : only;
        n_lens = 1;
    }
    for (int li = 0; li < n_lens; li++) {
        int T = lens[li];
        int64_t *ids = malloc((size_t)T * sizeof *ids);
        for (int t = 0; t < T; t++) ids[t] = t == 0 || t == T - 1 ? 0 : 1 + (t * 37) % (VOCAB - 1);
        for (int threads = 1; threads <= 2; threads++) {
            koe_pool *pool = koe_pool_new(threads, &err);
            if (!pool) {
                fprintf(stderr, "bench_front: %s\n", err.msg);
                return 1;
            }
            int maxF = 60 * T; /* generous: the scratch of F0/N is sized once per length */
            size_t sz = koe_albert_scratch_floats(bert, T, pool);
            size_t s2 = koe_text_encoder_scratch_floats(te, T, pool);
            size_t s3 = koe_predictor_dur_scratch_floats(pred, T, pool);
            size_t s4 = koe_predictor_f0n_scratch_floats(pred, T, maxF, pool);
            sz = sz > s2 ? sz : s2;
            sz = sz > s3 ? sz : s3;
            sz = sz > s4 ? sz : s4;
            float *scratch = malloc(sz * sizeof(float));
            float *d_en = malloc((size_t)T * H * sizeof(float));
            float *t_en = malloc((size_t)T * H * sizeof(float));
            float *d = malloc((size_t)T * (H + ST) * sizeof(float));
            int32_t *dur = malloc((size_t)T * sizeof *dur);
            float *f0 = malloc((size_t)2 * maxF * sizeof(float));
            float *nn = malloc((size_t)2 * maxF * sizeof(float));
            double times[N_PARTS][100], total[100];
            int F = 0, rc = 0, f0n_ok = 1;
            for (int r = -1; r < runs && rc == 0; r++) { /* r = -1: warm-up */
                double t0 = koe_now_s();
                rc |= koe_albert_run(bert, pool, scratch, ids, T, NULL, d_en, &err);
                double t1 = koe_now_s();
                rc |= koe_text_encoder_run(te, pool, scratch, ids, T, NULL, t_en, &err);
                double t2 = koe_now_s();
                rc |= koe_predictor_durations(pred, pool, scratch, d_en, T, s_pro, 1.0f, NULL, d,
                                              dur, &F, &err);
                double t3 = koe_now_s();
                if (rc == 0 && F > maxF) {
                    fprintf(stderr, "bench_front: %d frames, more than the %d planned\n", F, maxF);
                    rc = 1;
                }
                if (rc == 0 && f0n_ok &&
                    koe_predictor_f0n(pred, pool, scratch, d, T, dur, F, s_pro, NULL, NULL, f0, nn,
                                      &err)) {
                    fprintf(stderr, "bench_front: F0/N not timed: %s\n", err.msg);
                    f0n_ok = 0;
                }
                double t4 = koe_now_s();
                if (r >= 0) {
                    times[P_BERT][r] = t1 - t0;
                    times[P_TE][r] = t2 - t1;
                    times[P_DUR][r] = t3 - t2;
                    times[P_F0N][r] = f0n_ok ? t4 - t3 : 0.0;
                    total[r] = t4 - t0;
                }
            }
            if (rc) {
                fprintf(stderr, "bench_front: %s\n", err.msg);
                return 1;
            }
            printf("%-7d %-7d %-7d", T, threads, F);
            for (int p = 0; p < N_PARTS; p++) printf(" %-9.4f", bench_median(times[p], runs));
            double tb = bench_median(times[P_BERT], runs);
            printf(" %-9.4f %.1f\n", bench_median(total, runs), albert_flops(T) / tb * 1e-9);
            fflush(stdout);
            free(scratch);
            free(d_en);
            free(t_en);
            free(d);
            free(dur);
            free(f0);
            free(nn);
            koe_pool_free(pool);
        }
        free(ids);
    }
    koe_blas_single_thread();
    for (int threads = 1; threads <= 2; threads++) {
        koe_pool *pool = koe_pool_new(threads, &err);
        if (!pool) break;
        printf("# reference: OpenBLAS sgemm 512x512x1024 per thread, %d thread(s): %.1f GFLOP/s\n",
               threads, sgemm_peak(pool, threads, &w));
        koe_pool_free(pool);
    }
    koe_albert_free(bert);
    koe_text_encoder_free(te);
    koe_predictor_free(pred);
    bench_weights_free(&w);
    return 0;
}
