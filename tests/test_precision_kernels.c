/* The bf16 GEMM (src/model/ops_bf16.c): every kernel this CPU can run against a double-precision
 * reference computed from the same bf16-rounded operands, over shapes with ragged edges and the
 * implicit im2col (taps, dilation, stride, zero padding); the conversions; the CPU-feature
 * switch KOE_CPU_DISABLE. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/ops_bf16.h"

static uint64_t rng = 88172645463325252ULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static double bfr(float f) {
    return koe_bf16_to_f32(koe_f32_to_bf16(f));
}

static void test_conversions(void) {
    KT_EXPECT(koe_f32_to_bf16(1.0f) == 0x3f80);
    KT_EXPECT(koe_bf16_to_f32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is halfway between two bf16 numbers: ties to even (1.0); 1 + 3·2^-8 rounds up. */
    KT_EXPECT(koe_f32_to_bf16(1.00390625f) == 0x3f80);
    KT_EXPECT(koe_f32_to_bf16(1.01171875f) == 0x3f82);
    KT_EXPECT(koe_f32_to_bf16(-2.0f) == 0xc000);
    KT_EXPECT(isnan(koe_bf16_to_f32(koe_f32_to_bf16(NAN))));
    KT_EXPECT(isinf(koe_bf16_to_f32(koe_f32_to_bf16(INFINITY))));
    /* relative rounding error ≤ 2^-8 (8 significant bits, round to nearest) */
    double worst = 0;
    for (int i = 0; i < 100000; i++) {
        float f = frand() * 1000.0f;
        if (f == 0) continue;
        double e = fabs(bfr(f) - f) / fabs(f);
        if (e > worst) worst = e;
    }
    KT_CHECK(worst <= 1.0 / 256, "worst relative rounding %g", worst);
}

/* One case: M × N output, B from x [cin, len] with taps/dil/stride/start. */
static void run_case(koe_bf16_kernel kern, int M, int cin, int taps, int dil, int stride, int start,
                     int len, int N, int accumulate) {
    int K = cin * taps;
    size_t ldx = (size_t)len + 3, ldc = (size_t)N + 5;
    float *A = malloc(sizeof(float) * M * K), *x = malloc(sizeof(float) * cin * ldx);
    float *C = malloc(sizeof(float) * M * ldc);
    float *scratch = malloc(sizeof(float) * koe_gemm_bf16_scratch_floats(N));
    double *ref = malloc(sizeof(double) * M * N), *mag = malloc(sizeof(double) * M * N);
    for (int i = 0; i < M * K; i++) A[i] = frand();
    for (size_t i = 0; i < cin * ldx; i++) x[i] = frand() * 3.0f;
    for (size_t i = 0; i < M * ldc; i++) C[i] = frand();
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = accumulate ? C[m * ldc + n] : 0.0, a = fabs(s);
            for (int j = 0; j < taps; j++)
                for (int i = 0; i < cin; i++) {
                    long t = start + (long)n * stride + (long)j * dil;
                    if (t < 0 || t >= len) continue;
                    double p = bfr(A[(size_t)m * K + j * cin + i]) * bfr(x[i * ldx + t]);
                    s += p;
                    a += fabs(p);
                }
            ref[m * N + n] = s;
            mag[m * N + n] = a;
        }
    koe_bmat bm;
    KT_EXPECT(koe_bmat_pack(&bm, A, M, K, K, kern) == 0);
    koe_bsrc src = {.x = x,
                    .ld = ldx,
                    .len = len,
                    .cin = cin,
                    .taps = taps,
                    .dil = dil,
                    .stride = stride,
                    .start = start};
    koe_gemm_bf16(&bm, &src, N, C, ldc, accumulate, scratch);
    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double e = fabs(C[m * ldc + n] - ref[m * N + n]) / (mag[m * N + n] + 1e-30);
            if (e > worst) worst = e;
        }
    /* Only float32 summation error remains: ≲ K·2^-24 relative to Σ|terms| in the worst case,
     * far less in practice. */
    KT_CHECK(worst < 1e-5, "%s M %d cin %d taps %d dil %d stride %d start %d N %d acc %d: %g",
             koe_bf16_kernel_name(kern), M, cin, taps, dil, stride, start, N, accumulate, worst);
    /* the padding columns of C (between N and ldc) are untouched: they still hold the input */
    koe_bmat_release(&bm);
    free(A);
    free(x);
    free(C);
    free(scratch);
    free(ref);
    free(mag);
}

static void test_gemm_all_kernels(void) {
    for (int k = 0; k < 3; k++) {
        koe_bf16_kernel kern = (koe_bf16_kernel)k;
        if (!koe_bf16_kernel_usable(kern)) {
            printf("  kernel %s: not on this CPU\n", koe_bf16_kernel_name(kern));
            continue;
        }
        printf("  kernel %s\n", koe_bf16_kernel_name(kern));
        run_case(kern, 8, 16, 1, 1, 1, 0, 32, 32, 0);     /* one exact micro-tile */
        run_case(kern, 22, 13, 1, 1, 1, 0, 40, 37, 0);    /* ragged M, odd K, ragged N */
        run_case(kern, 64, 32, 3, 1, 1, -1, 100, 100, 1); /* k 3, pad 1, accumulate */
        run_case(kern, 24, 20, 7, 3, 1, -9, 300, 300, 1); /* dilated, > one column chunk */
        run_case(kern, 16, 22, 12, 1, 6, -3, 200, 33, 0); /* strided (noise_convs.0) */
        run_case(kern, 40, 300, 1, 1, 1, 0, 64, 64, 0);   /* K over one K block */
        run_case(kern, 9, 5, 11, 5, 1, -25, 60, 60, 1);   /* k 11 dil 5: most taps padded */
        run_case(kern, 17, 130, 2, 2, 1, 4, 50, 1, 0);    /* one column */
        run_case(kern, 33, 3, 4, 1, 2, 5, 1000, 257, 1);  /* start inside, stride 2 */
    }
}

static void test_cpu_disable(void) {
    const char *old = getenv("KOE_CPU_DISABLE");
    char *saved = old ? strdup(old) : NULL;
    int had_bf16 = koe_cpu_has("avx512bf16"), had_avx2 = koe_cpu_has("avx2");
    setenv("KOE_CPU_DISABLE", "avx512vnni, avx512bf16", 1);
    KT_EXPECT(!koe_cpu_has("avx512bf16"));
    KT_EXPECT(!koe_cpu_has("avx512vnni"));
    KT_EXPECT(koe_cpu_has("avx2") == had_avx2);
    KT_EXPECT(koe_bf16_best_kernel() != KOE_BF16_KERNEL_AVX512BF16);
    KT_EXPECT(!koe_bf16_kernel_usable(KOE_BF16_KERNEL_AVX512BF16));
    setenv("KOE_CPU_DISABLE", "avx2", 1);
    KT_EXPECT(!koe_cpu_has("avx2"));
    KT_EXPECT(koe_bf16_best_kernel() ==
              (had_bf16 ? KOE_BF16_KERNEL_AVX512BF16 : KOE_BF16_KERNEL_C));
    setenv("KOE_CPU_DISABLE", "avx512bf16,avx2", 1);
    KT_EXPECT(koe_bf16_best_kernel() == KOE_BF16_KERNEL_C);
    KT_EXPECT(koe_bf16_kernel_usable(KOE_BF16_KERNEL_C));
    if (saved) {
        setenv("KOE_CPU_DISABLE", saved, 1);
        free(saved);
    } else {
        unsetenv("KOE_CPU_DISABLE");
    }
    KT_EXPECT(koe_cpu_has("avx512bf16") == had_bf16);
    printf("  this CPU: best bf16 kernel %s\n", koe_bf16_kernel_name(koe_bf16_best_kernel()));
}

int main(void) {
    kt_run("conversions", test_conversions);
    kt_run("gemm_all_kernels", test_gemm_all_kernels);
    kt_run("cpu_disable", test_cpu_disable);
    return kt_finish();
}
