/* Times the full-size Kokoro generator (W2 = 512) on random weights made here, for an input of
 * 2F steps (default 600: F = 300 frames ≈ 100 tokens ≈ 7.5 s of audio), with 1 and 2 threads,
 * median of N runs after a warm-up, against this machine's sgemm peak measured in the same run.
 *
 * Precisions: fp32 (OpenBLAS sgemm), bf16 (ops_bf16.c) and int8 (ops_int8.c), the fastest
 * kernels of this CPU, built from the same weights and timed with their runs interleaved, each
 * against fp32 (when it runs).
 *
 * usage: bench_generator [frames2 [runs [fp32|bf16|int8|both|all]]] (default 600 5 both;
 * both = fp32 and bf16, all = the three) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koe/base.h"
#include "model/generator.h"
#include "model/ops_bf16.h"
#include "model/ops_conv.h"
#include "model/ops_int8.h"
#include "model/pool.h"

#include "common.h"

#define NP 3 /* precisions: fp32, bf16, int8 (KOE_CONV_*) */

/* The weights, and the random numbers of the inputs and of the sgemm reference after them. */
static bench_weights wts = {.rng = 0x1234567};

static float urand(void) { /* [-1, 1) */
    return bench_urand(&wts.rng);
}

/* Adds decoder.generator.`name` filled with scale · U(-1, 1) + offset. */
static void add(const char *name, int ndim, int64_t a, int64_t b, int64_t c, float scale,
                float offset) {
    char full[128]; /* the names here are under 96 characters, the prefix 18 */
    snprintf(full, sizeof full, "decoder.generator.%s", name);
    bench_weights_add(&wts, full, ndim, a, b, c, scale, offset);
}

static void add_wn(const char *name, int64_t d0, int64_t d1, int64_t k, int64_t bias_n) {
    char nm[96];
    snprintf(nm, sizeof nm, "%s.weight_v", name);
    add(nm, 3, d0, d1, k, 1.0f, 0);
    snprintf(nm, sizeof nm, "%s.weight_g", name);
    add(nm, 3, d0, 1, 1, 0.1f, 1.0f);
    snprintf(nm, sizeof nm, "%s.bias", name);
    add(nm, 1, bias_n, 0, 0, 0.05f, 0);
}

static void add_resblock(const char *name, int C, int k) {
    char nm[96];
    for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "%s.convs1.%d", name, i);
        add_wn(nm, C, C, k, C);
        snprintf(nm, sizeof nm, "%s.convs2.%d", name, i);
        add_wn(nm, C, C, k, C);
        for (int j = 1; j <= 2; j++) {
            snprintf(nm, sizeof nm, "%s.adain%d.%d.fc.weight", name, j, i);
            add(nm, 2, 2 * C, 128, 0, 0.02f, 0);
            snprintf(nm, sizeof nm, "%s.adain%d.%d.fc.bias", name, j, i);
            add(nm, 1, 2 * C, 0, 0, 0.1f, 0);
            snprintf(nm, sizeof nm, "%s.adain%d.%d.norm.weight", name, j, i);
            add(nm, 1, C, 0, 0, 0.1f, 1.0f);
            snprintf(nm, sizeof nm, "%s.adain%d.%d.norm.bias", name, j, i);
            add(nm, 1, C, 0, 0, 0.1f, 0);
            snprintf(nm, sizeof nm, "%s.alpha%d.%d", name, j, i);
            add(nm, 3, 1, C, 1, 0.3f, 1.0f);
        }
    }
}

static void make_weights(int W2) {
    int C1 = W2 / 2, C2 = W2 / 4;
    add("m_source.l_linear.weight", 2, 1, 9, 0, 0.5f, 0);
    add("m_source.l_linear.bias", 1, 1, 0, 0, 0.1f, 0);
    add("noise_convs.0.weight", 3, C1, 22, 12, 0.1f, 0);
    add("noise_convs.0.bias", 1, C1, 0, 0, 0.05f, 0);
    add("noise_convs.1.weight", 3, C2, 22, 1, 0.1f, 0);
    add("noise_convs.1.bias", 1, C2, 0, 0, 0.05f, 0);
    add_resblock("noise_res.0", C1, 7);
    add_resblock("noise_res.1", C2, 11);
    add_wn("ups.0", W2, C1, 20, C1);
    add_wn("ups.1", C1, C2, 12, C2);
    static const int ks[3] = {3, 7, 11};
    for (int i = 0; i < 6; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "resblocks.%d", i);
        add_resblock(nm, i < 3 ? C1 : C2, ks[i % 3]);
    }
    add_wn("conv_post", 22, C2, 7, 22);
}

/* sgemm peak: each pool task multiplies its own 512×512 by 512×1024 (the shape class of the
 * generator's convolutions), single-threaded OpenBLAS per task; the median of RUNS samples of 5
 * runs. */
#define PM BENCH_SGEMM_M
#define PK BENCH_SGEMM_K
#define PN BENCH_SGEMM_N
static double sgemm_peak(koe_pool *pool, int threads, int runs) {
    bench_sgemm_job j;
    for (int t = 0; t < 2; t++) {
        j.a[t] = malloc(sizeof(float) * PM * PK);
        j.b[t] = malloc(sizeof(float) * PK * PN);
        j.c[t] = malloc(sizeof(float) * PM * PN);
        for (int i = 0; i < PM * PK; i++) j.a[t][i] = urand();
        for (int i = 0; i < PK * PN; i++) j.b[t][i] = urand();
    }
    double best[32];
    koe_pool_run(pool, threads, bench_sgemm_task, &j);
    for (int r = 0; r < runs; r++) {
        double t0 = koe_now_s();
        for (int rep = 0; rep < 5; rep++) koe_pool_run(pool, threads, bench_sgemm_task, &j);
        best[r] = koe_now_s() - t0;
    }
    double s = bench_median(best, runs);
    for (int t = 0; t < 2; t++) {
        free(j.a[t]);
        free(j.b[t]);
        free(j.c[t]);
    }
    return 5.0 * threads * 2.0 * PM * PK * PN / s / 1e9;
}

int main(int argc, char **argv) {
    int frames2 = argc > 1 ? atoi(argv[1]) : 600;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *which = argc > 3 ? argv[3] : "both";
    int all = !strcmp(which, "all");
    int want[NP] = {all || !strcmp(which, "fp32") || !strcmp(which, "both"),
                    all || !strcmp(which, "bf16") || !strcmp(which, "both"),
                    all || !strcmp(which, "int8")};
    if (frames2 < 1 || runs < 1 || runs > 32 || (!want[0] && !want[1] && !want[2])) {
        fprintf(stderr, "usage: bench_generator [frames2 [runs ≤ 32 [fp32|bf16|int8|both|all]]]\n");
        return 2;
    }
    int W2 = 512;
    make_weights(W2);
    koe_error err = {0};
    koe_generator *gens[NP] = {NULL, NULL, NULL};
    double tls[NP] = {0, 0, 0};
    const char *pname[NP] = {"fp32", "bf16", "int8"};
    for (int p = 0; p < NP; p++) {
        if (!want[p]) continue;
        double t0 = koe_now_s();
        gens[p] = koe_generator_new_prec(bench_weights_lookup, &wts, p, &err);
        if (!gens[p]) {
            fprintf(stderr, "bench_generator: %s\n", err.msg);
            return 1;
        }
        tls[p] = koe_now_s() - t0;
    }
    koe_generator *g = gens[0] ? gens[0] : gens[1] ? gens[1] : gens[2];
    double tl = tls[0] ? tls[0] : tls[1] ? tls[1] : tls[2];
    bench_weights_free(&wts);

    float *x = malloc(sizeof(float) * (size_t)W2 * frames2), *f0 = malloc(sizeof(float) * frames2);
    float style[128];
    for (size_t i = 0; i < (size_t)W2 * frames2; i++) x[i] = urand();
    for (int i = 0; i < frames2; i++) f0[i] = (i % 50) < 40 ? 175.0f + 75.0f * urand() : 0.0f;
    for (int i = 0; i < 128; i++) style[i] = 0.3f * urand();
    int64_t S = koe_generator_samples(frames2);
    float *audio = malloc(sizeof(float) * (size_t)S);
    double audio_s = (double)S / 24000.0, gflop = 2.0 * koe_generator_macs(g, frames2) / 1e9;
    double gflop_c = 2.0 * koe_generator_macs_computed(g, frames2) / 1e9;
    printf("generator W2 %d, 2F = %d steps, %.2f s of audio, %.1f GFLOP as direct convolutions "
           "(%.1f per audio second), %.1f GFLOP computed (%.1f per audio second), prepared in "
           "%.3f s\n",
           W2, frames2, audio_s, gflop, gflop / audio_s, gflop_c, gflop_c / audio_s, tl);
    if (gens[1])
        printf("bf16 kernel: %s, prepared in %.3f s, %.1f GFLOP computed (%.1f per audio second; "
               "its of_peak is against the float32 sgemm peak)\n",
               koe_bf16_kernel_name(koe_bf16_best_kernel()), tls[1],
               2.0 * koe_generator_macs_computed(gens[1], frames2) / 1e9,
               2.0 * koe_generator_macs_computed(gens[1], frames2) / 1e9 / audio_s);
    if (gens[2])
        printf("int8 kernel: %s, prepared in %.3f s (layers int8 leaves in bf16 use the bf16 "
               "kernel)\n",
               koe_i8_kernel_name(koe_i8_best_kernel()), tls[2]);
    printf("%-8s %-6s %10s %8s %14s %14s %12s %10s %8s %8s\n", "threads", "prec", "median_s", "RTF",
           "direct_GFLOP/s", "computed_GF/s", "sgemm_peak", "of_peak", "min_s", "vs_fp32");
    for (int threads = 1; threads <= 2; threads++) {
        koe_pool *pool = koe_pool_new(threads, &err);
        if (!pool) {
            fprintf(stderr, "bench_generator: %s\n", err.msg);
            return 1;
        }
        double peak = sgemm_peak(pool, threads, runs);
        size_t ns = 0;
        for (int p = 0; p < NP; p++) {
            size_t n = gens[p] ? koe_generator_scratch_floats(gens[p], frames2, pool) : 0;
            if (n > ns) ns = n;
        }
        float *scratch = malloc(ns * sizeof(float));
        koe_noise noise = {KOE_NOISE_RANDOM, 42};
        double times[NP][32];
        for (int r = -1; r < runs; r++) /* r = -1: warm-up; the precisions interleaved */
            for (int p = 0; p < NP; p++) {
                if (!gens[p]) continue;
                double t0 = koe_now_s();
                if (koe_generator_run(gens[p], pool, scratch, x, frames2, f0, style, noise, NULL,
                                      NULL, audio, &err)) {
                    fprintf(stderr, "bench_generator: %s\n", err.msg);
                    return 1;
                }
                if (r >= 0) times[p][r] = koe_now_s() - t0;
            }
        double base = gens[0] ? bench_median(times[0], runs) : 0;
        for (int p = 0; p < NP; p++) {
            if (!gens[p]) continue;
            double med = bench_median(times[p], runs), mn = times[p][0];
            for (int r = 1; r < runs; r++)
                if (times[p][r] < mn) mn = times[p][r];
            /* what this precision's generator really computes (bf16 takes the frequency-domain
             * path for more layers, with fewer products each) */
            double gc = 2.0 * koe_generator_macs_computed(gens[p], frames2) / 1e9;
            printf("%-8d %-6s %10.3f %8.3f %14.1f %14.1f %12.1f %9.0f%% %8.3f %7.2fx\n", threads,
                   pname[p], med, med / audio_s, gflop / med, gc / med, peak,
                   100.0 * gc / med / peak, mn, base > 0 ? base / med : 1.0);
        }
        free(scratch);
        koe_pool_free(pool);
    }
    printf("generator scratch: %.1f MB (1 thread)\n",
           (double)koe_generator_scratch_floats(g, frames2, NULL) * 4 / 1e6);
    free(x);
    free(f0);
    free(audio);
    koe_generator_free(gens[0]);
    koe_generator_free(gens[1]);
    koe_generator_free(gens[2]);
    return 0;
}
