/* bench_model: the whole Kokoro engine on full-size random weights (koe random-weights): for
 * 20, 100 and 400 tokens and 1 and 2 threads, synthesis time, audio seconds, real-time factor,
 * text side vs decoder/vocoder time and peak RSS; median of N runs after a warm-up. Also the
 * generator's computed GFLOP per audio second against this machine's sgemm rate measured in the
 * same run.
 *
 * Several precisions are timed in the same run, their runs interleaved (so that the machine's
 * load falls on all of them alike), each against the first (the baseline, fp32 by default).
 *
 *   bench_model [RUNS] [WEIGHTS] [--precision LIST] [--tokens LIST] [--threads LIST]
 *     RUNS default 5; weights written to /tmp when not given; LIST comma-separated:
 *     precisions fp32,bf16,int8,auto (default "fp32,auto" — auto counted once if it is one of
 *     the others),
 *     tokens (default 20,100,400), threads (default 1,2). */
#include "koe/base.h"
#include "koe/model.h"
#include "koe/weights.h"
#include "model/generator.h"
#include "model/ops_bf16.h"
#include "model/ops_conv.h"
#include "model/ops_int8.h"

#include "common.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const koe_generator *koe_model_generator(const koe_model *m);

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Single-thread sgemm rate on a generator-like shape (128 x 896 by 896 x 4096). */
static double sgemm_gflops(void) {
    const int M = 128, K = 896, N = 4096;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N),
          *c = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < K * N; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
    double t[5];
    for (int r = 0; r < 5; r++) {
        double t0 = koe_now_s();
        for (int k = 0; k < 5; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
        t[r] = koe_now_s() - t0;
    }
    qsort(t, 5, sizeof t[0], bench_cmp_double);
    free(a), free(b), free(c);
    return 5.0 * 2.0 * M * K * N / t[2] / 1e9;
}

#define MAXP 4

int main(int argc, char **argv) {
    int runs = 5, n_prec = 0, n_len = 3, n_thr = 2;
    int lengths[8] = {20, 100, 400}, threads_list[8] = {1, 2};
    koe_precision precs[MAXP];
    const char *weights = NULL, *plist = "fp32,auto";
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            plist = argv[++i];
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            if ((n_len = bench_parse_list(argv[++i], lengths, 8, 1, 510)) < 1)
                return fprintf(stderr, "bench_model: bad --tokens\n"), 2;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if ((n_thr = bench_parse_list(argv[++i], threads_list, 8, 1, 64)) < 1)
                return fprintf(stderr, "bench_model: bad --threads (1 to 64 each)\n"), 2;
        } else if (positional == 0 && argv[i][0] != '-') {
            runs = atoi(argv[i]);
            positional++;
        } else if (positional == 1 && argv[i][0] != '-') {
            weights = argv[i];
            positional++;
        } else {
            fprintf(stderr, "bench_model: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || runs > 50) runs = 5;
    koe_error err = {0};
    {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", plist);
        for (char *tok = strtok(buf, ","); tok && n_prec < MAXP; tok = strtok(NULL, ",")) {
            koe_precision p;
            if (koe_precision_parse(tok, &p, &err)) {
                fprintf(stderr, "bench_model: %s\n", err.msg);
                return 2;
            }
            if (p == KOE_PRECISION_AUTO) p = koe_precision_auto();
            int dup = 0;
            for (int k = 0; k < n_prec; k++) dup |= precs[k] == p;
            if (!dup) precs[n_prec++] = p;
        }
    }
    char path[256];
    if (weights) {
        snprintf(path, sizeof path, "%s", weights);
    } else {
        snprintf(path, sizeof path, "/tmp/koe-bench-model-%d.safetensors", (int)getpid());
        if (koe_weights_write_random(path, NULL, 1, &err)) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
    }
    koe_model *models[MAXP];
    double load_s[MAXP];
    for (int p = 0; p < n_prec; p++) {
        koe_model_options o = {.precision = precs[p]};
        double t0 = koe_now_s();
        models[p] = koe_model_load_ex(path, &o, &err);
        load_s[p] = koe_now_s() - t0;
        if (!models[p]) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
    }
    koe_blas_single_thread();
    double peak1 = sgemm_gflops();
    float style[256];
    for (int i = 0; i < 256; i++) style[i] = 0.2f * (float)((i * 37) % 11 - 5) / 5.0f;
    printf("# bench_model: full-size random weights, sgemm %.1f GFLOP/s per thread, auto = %s "
           "(bf16 kernel %s, int8 kernel %s)\n",
           peak1, koe_precision_name(koe_precision_auto()),
           koe_bf16_kernel_name(koe_bf16_best_kernel()), koe_i8_kernel_name(koe_i8_best_kernel()));
    for (int p = 0; p < n_prec; p++)
        printf("# load %s: %.3f s\n", koe_precision_name(precs[p]), load_s[p]);
    printf("| tokens | threads | precision | audio s | synth s (median of %d) | RTF | vs %s | text "
           "side s | decoder+vocoder s | generator GFLOP/audio s | GFLOP/s | of sgemm peak | peak "
           "RSS MB |\n",
           runs, koe_precision_name(precs[0]));
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int li = 0; li < n_len; li++) {
        int T = lengths[li] + 2;
        int32_t ids[KOE_MODEL_MAX_TOKENS];
        uint32_t x = 12345;
        ids[0] = ids[T - 1] = 0;
        for (int i = 1; i < T - 1; i++) {
            x = x * 1103515245u + 12345u;
            ids[i] = 1 + (int)((x >> 16) % 177);
        }
        for (int ti = 0; ti < n_thr; ti++) {
            int threads = threads_list[ti];
            koe_ctx *c[MAXP];
            koe_synth_out out[MAXP];
            koe_noise noise = {KOE_NOISE_RANDOM, 1};
            double t[MAXP][50], ts[MAXP][50], td[MAXP][50];
            for (int p = 0; p < n_prec; p++) {
                c[p] = koe_ctx_new(models[p], threads, &err);
                if (!c[p] ||
                    koe_synthesize(c[p], ids, T, style, 1.0f, noise, NULL, NULL, &out[p], &err)) {
                    fprintf(stderr, "bench_model: %s\n", err.msg);
                    return 1;
                }
            }
            /* interleaved: run r of every precision before run r + 1 of any */
            for (int r = 0; r < runs; r++)
                for (int p = 0; p < n_prec; p++) {
                    double a = koe_now_s();
                    koe_synthesize(c[p], ids, T, style, 1.0f, noise, NULL, NULL, &out[p], &err);
                    t[p][r] = koe_now_s() - a;
                    ts[p][r] = out[p].text_seconds;
                    td[p][r] = out[p].decoder_seconds;
                }
            double base = 0;
            for (int p = 0; p < n_prec; p++) {
                qsort(t[p], (size_t)runs, sizeof t[p][0], bench_cmp_double);
                qsort(ts[p], (size_t)runs, sizeof t[p][0], bench_cmp_double);
                qsort(td[p], (size_t)runs, sizeof t[p][0], bench_cmp_double);
                double audio = (double)out[p].n_samples / KOE_MODEL_SAMPLE_RATE,
                       med = t[p][runs / 2];
                if (p == 0) base = med;
                double gen_gflop =
                    2.0 *
                    koe_generator_macs_computed(koe_model_generator(models[p]), 2 * out[p].frames) /
                    1e9;
                printf("| %d | %d | %s | %.2f | %.3f | %.3f | %.2fx | %.3f | %.3f | %.1f | %.0f | "
                       "%.0f%% | %.0f |\n",
                       lengths[li], threads, koe_precision_name(precs[p]), audio, med, med / audio,
                       base / med, ts[p][runs / 2], td[p][runs / 2], gen_gflop / audio,
                       gen_gflop / td[p][runs / 2],
                       100.0 * gen_gflop / td[p][runs / 2] / (peak1 * threads), peak_rss_mb());
                fflush(stdout);
                koe_ctx_free(c[p]);
            }
        }
    }
    for (int p = 0; p < n_prec; p++) koe_model_free(models[p]);
    if (!weights) unlink(path);
    return 0;
}
