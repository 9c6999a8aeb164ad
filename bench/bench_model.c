/* bench_model: the whole Kokoro engine on full-size random weights (koe random-weights): for
 * 20, 100 and 400 tokens and 1 and 2 threads, synthesis time, audio seconds, real-time factor,
 * text side vs decoder/vocoder time and peak RSS; median of N runs after a warm-up. Also the
 * generator's computed GFLOP per audio second against this machine's sgemm rate measured in the
 * same run.
 *
 *   bench_model [RUNS] [WEIGHTS]      (default 5; weights written to /tmp when not given) */
#include "koe/base.h"
#include "koe/model.h"
#include "koe/weights.h"
#include "model/generator.h"
#include "model/ops_conv.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const koe_generator *koe_model_generator(const koe_model *m);

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

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
    qsort(t, 5, sizeof t[0], cmp);
    free(a), free(b), free(c);
    return 5.0 * 2.0 * M * K * N / t[2] / 1e9;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 50) runs = 5;
    char path[256];
    koe_error err = {0};
    if (argc > 2) {
        snprintf(path, sizeof path, "%s", argv[2]);
    } else {
        snprintf(path, sizeof path, "/tmp/koe-bench-model-%d.safetensors", (int)getpid());
        if (koe_weights_write_random(path, NULL, 1, &err)) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
    }
    double t0 = koe_now_s();
    koe_model *m = koe_model_load(path, NULL, &err);
    double load_s = koe_now_s() - t0;
    if (!m) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    koe_blas_single_thread();
    double peak1 = sgemm_gflops();
    float style[256];
    for (int i = 0; i < 256; i++) style[i] = 0.2f * (float)((i * 37) % 11 - 5) / 5.0f;
    printf("# bench_model: full-size random weights, load %.3f s, sgemm %.1f GFLOP/s per thread\n",
           load_s, peak1);
    printf(
        "| tokens | threads | audio s | synth s (median of %d) | RTF | text side s | "
        "decoder+vocoder s | generator GFLOP/audio s | GFLOP/s | of sgemm peak | peak RSS MB |\n",
        runs);
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    const int lengths[3] = {20, 100, 400};
    for (int li = 0; li < 3; li++) {
        int T = lengths[li] + 2;
        int32_t ids[KOE_MODEL_MAX_TOKENS];
        uint32_t x = 12345;
        ids[0] = ids[T - 1] = 0;
        for (int i = 1; i < T - 1; i++) {
            x = x * 1103515245u + 12345u;
            ids[i] = 1 + (int)((x >> 16) % 177);
        }
        for (int threads = 1; threads <= 2; threads++) {
            koe_ctx *c = koe_ctx_new(m, threads, &err);
            koe_synth_out out;
            koe_noise noise = {KOE_NOISE_RANDOM, 1};
            if (!c || koe_synthesize(c, ids, T, style, 1.0f, noise, NULL, NULL, &out, &err)) {
                fprintf(stderr, "bench_model: %s\n", err.msg);
                return 1;
            }
            double t[50], ts[50], td[50];
            for (int r = 0; r < runs; r++) {
                double a = koe_now_s();
                koe_synthesize(c, ids, T, style, 1.0f, noise, NULL, NULL, &out, &err);
                t[r] = koe_now_s() - a;
                ts[r] = out.text_seconds;
                td[r] = out.decoder_seconds;
            }
            qsort(t, (size_t)runs, sizeof t[0], cmp);
            qsort(ts, (size_t)runs, sizeof t[0], cmp);
            qsort(td, (size_t)runs, sizeof t[0], cmp);
            double audio = (double)out.n_samples / KOE_MODEL_SAMPLE_RATE, med = t[runs / 2];
            double gen_gflop =
                2.0 * koe_generator_macs_computed(koe_model_generator(m), 2 * out.frames) / 1e9;
            printf("| %d | %d | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f | %.0f | %.0f%% | %.0f |\n",
                   lengths[li], threads, audio, med, med / audio, ts[runs / 2], td[runs / 2],
                   gen_gflop / audio, gen_gflop / td[runs / 2],
                   100.0 * gen_gflop / td[runs / 2] / (peak1 * threads), peak_rss_mb());
            fflush(stdout);
            koe_ctx_free(c);
        }
    }
    koe_model_free(m);
    if (argc <= 2) unlink(path);
    return 0;
}
