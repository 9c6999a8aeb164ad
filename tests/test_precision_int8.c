/* The int8 GEMM (src/model/ops_int8.c): the quantization of weights and activations (per-column
 * scales against their definition), and every kernel this CPU can run against a scalar
 * reference built from the same integers: the integer sums are exact, so on one K block the
 * float result must be bit-identical to (float)Σ qa·qx · (sa · sx[n]), every kernel must give the
 * same bits as the portable one, and over several K blocks the result is within float32 rounding of
 * the exact sum. Shapes have ragged edges and the implicit im2col (taps, dilation, stride, zero
 * padding); extreme values check the VNNI +128 offset and that vpmaddubsw never saturates. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/ops_int8.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static void test_quantize(void) {
    KT_EXPECT(koe_i8_quantize(0.0f, 1.0f) == 0);
    KT_EXPECT(koe_i8_quantize(2.5f, 1.0f) == 2); /* ties to even */
    KT_EXPECT(koe_i8_quantize(3.5f, 1.0f) == 4);
    KT_EXPECT(koe_i8_quantize(-2.5f, 1.0f) == -2);
    KT_EXPECT(koe_i8_quantize(-0.49f, 1.0f) == 0);
    KT_EXPECT(koe_i8_quantize(1000.0f, 1.0f) == 127); /* clamped, never −128 */
    KT_EXPECT(koe_i8_quantize(-1000.0f, 1.0f) == -127);
    KT_EXPECT(koe_i8_quantize(INFINITY, 1.0f) == 127);
    KT_EXPECT(koe_i8_quantize(NAN, 1.0f) == 0);
    KT_EXPECT(koe_i8_quantize(5.0f, 0.0f) == 0); /* scale 0: everything is 0 */
    KT_EXPECT(koe_i8_quantize(1.0f, 127.0f) == 127);
    /* within half a step everywhere */
    for (int i = 0; i < 10000; i++) {
        float x = frand() * 3.0f, inv = 127.0f / 3.0f;
        int q = koe_i8_quantize(x, inv);
        KT_CHECK(fabs(q - (double)x * inv) <= 0.5 + 1e-4, "x %g q %d", x, q);
    }
}

/* The column scales against the definition: max |B[k, n]| over every row of the implicit
 * im2col (channels × taps, zero outside x) / 127; on the stack-window path and on the
 * column-by-column one (a window over 2048 samples). */
static void col_scale_case(int cin, int taps, int dil, int stride, int start, int len, int N) {
    size_t ld = (size_t)len + 2;
    float *x = malloc(sizeof(float) * cin * ld), *sx = malloc(sizeof(float) * N);
    for (size_t i = 0; i < cin * ld; i++) x[i] = frand() * (float)(1 + (i * 7) % 13);
    x[ld / 2] = NAN; /* skipped */
    koe_bsrc src = {.x = x,
                    .ld = ld,
                    .len = len,
                    .cin = cin,
                    .taps = taps,
                    .dil = dil,
                    .stride = stride,
                    .start = start};
    koe_i8_col_scales(&src, N, sx);
    int bad = 0;
    for (int n = 0; n < N; n++) {
        float mx = 0;
        for (int j = 0; j < taps; j++) {
            long t = start + (long)n * stride + (long)j * dil;
            if (t < 0 || t >= len) continue;
            for (int i = 0; i < cin; i++) {
                float v = fabsf(x[i * ld + t]);
                mx = v > mx ? v : mx;
            }
        }
        bad += sx[n] != mx / 127.0f;
    }
    KT_CHECK(bad == 0, "col scales cin %d taps %d dil %d stride %d start %d N %d: %d wrong", cin,
             taps, dil, stride, start, N, bad);
    free(x);
    free(sx);
}

static void test_col_scales(void) {
    col_scale_case(5, 3, 1, 1, -1, 100, 100);
    col_scale_case(7, 11, 5, 1, -25, 300, 300); /* dilated, two column chunks */
    col_scale_case(4, 12, 1, 6, -3, 500, 80);   /* strided */
    col_scale_case(3, 2, 1, 20, -5, 6000, 290); /* window over 2048: column by column */
    col_scale_case(2, 1, 1, 1, 50, 40, 10);     /* wholly outside x: zeros */
}

static void test_pack(void) {
    enum { M = 11, K = 23 };
    float A[M * K];
    for (int i = 0; i < M * K; i++) A[i] = frand() * (1 + i % 5);
    for (int k = 0; k < K; k++) A[4 * K + k] = 0; /* a zero row */
    koe_qmat q;
    KT_EXPECT(koe_qmat_pack(&q, A, M, K, K, KOE_I8_KERNEL_C) == 0);
    for (int m = 0; m < M; m++) {
        int top = 0;
        for (int k = 0; k < K; k++) {
            int v = koe_qmat_get(&q, m, k);
            top = abs(v) > top ? abs(v) : top;
            if (m != 4)
                KT_CHECK(fabs(v * (double)q.scale[m] - A[m * K + k]) <= 0.5 * q.scale[m] * 1.0001,
                         "row %d col %d: %d · %g vs %g", m, k, v, q.scale[m], A[m * K + k]);
        }
        KT_CHECK(top == (m == 4 ? 0 : 127), "row %d: max |q| %d", m, top);
    }
    KT_EXPECT(q.scale[4] == 0.0f);
    koe_qmat_release(&q);
}

/* Exact integer sum of row m, column n over K values [k0, k1). */
static int64_t isum(const koe_qmat *q, const float *x, size_t ldx, int cin, int dil, int stride,
                    int start, int len, float inv, int m, int n, int k0, int k1) {
    int64_t s = 0;
    for (int r = k0; r < k1; r++) {
        int j = r / cin, i = r % cin;
        long t = start + (long)n * stride + (long)j * dil;
        if (t < 0 || t >= len) continue;
        s += (int64_t)koe_qmat_get(q, m, r) * koe_i8_quantize(x[i * ldx + t], inv);
    }
    return s;
}

/* One case on kernel kern; out: the result (M × N, for the cross-kernel comparison). */
static void run_case(koe_i8_kernel kern, int M, int cin, int taps, int dil, int stride, int start,
                     int len, int N, int accumulate, int extreme, float *out) {
    int K = cin * taps;
    size_t ldx = (size_t)len + 3, ldc = (size_t)N + 5;
    float *A = malloc(sizeof(float) * M * K), *x = malloc(sizeof(float) * cin * ldx);
    float *C = malloc(sizeof(float) * M * ldc), *C0 = malloc(sizeof(float) * M * ldc);
    void *scratch = malloc(koe_gemm_i8_scratch_bytes(N));
    uint64_t keep = rng;
    rng = 12345 + (uint64_t)M * 7 + (uint64_t)K * 131 + (uint64_t)N; /* same data for each kernel */
    for (int i = 0; i < M * K; i++) A[i] = extreme ? (i % 3 ? 1.0f : -1.0f) : frand();
    for (size_t i = 0; i < cin * ldx; i++)
        x[i] = extreme ? ((i / 2) % 2 ? 2.0f : -2.0f) : frand() * 3.0f;
    for (size_t i = 0; i < M * ldc; i++) C[i] = C0[i] = frand();
    rng = keep;
    koe_qmat q;
    KT_EXPECT(koe_qmat_pack(&q, A, M, K, K, kern) == 0);
    koe_bsrc src = {.x = x,
                    .ld = ldx,
                    .len = len,
                    .cin = cin,
                    .taps = taps,
                    .dil = dil,
                    .stride = stride,
                    .start = start};
    koe_gemm_i8(&q, &src, N, C, ldc, accumulate, scratch);
    float *sx = malloc(sizeof(float) * N); /* the column scales, as the product computes them */
    koe_i8_col_scales(&src, N, sx);
    double worst = 0;
    int exact_bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float rs = q.scale[m] * sx[n], got = C[m * ldc + n];
            float inv = sx[n] > 0 ? 1.0f / sx[n] : 0.0f;
            if (K <= 512 && !accumulate) {
                /* one K block: the exact integer, one conversion, one product */
                int64_t s = isum(&q, x, ldx, cin, dil, stride, start, len, inv, m, n, 0, K);
                exact_bad += got != (float)s * rs;
            }
            int64_t s = isum(&q, x, ldx, cin, dil, stride, start, len, inv, m, n, 0, K);
            double ref = (accumulate ? C0[m * ldc + n] : 0.0) + (double)s * rs;
            double mag = fabs(accumulate ? C0[m * ldc + n] : 0.0) + 127.0 * 127.0 * K * rs;
            double e = fabs(got - ref) / mag;
            worst = e > worst ? e : worst;
        }
    KT_CHECK(exact_bad == 0, "%s: %d results differ from the exact integer sum",
             koe_i8_kernel_name(kern), exact_bad);
    KT_CHECK(worst < 1e-6, "%s M %d cin %d taps %d dil %d stride %d start %d N %d acc %d: %g",
             koe_i8_kernel_name(kern), M, cin, taps, dil, stride, start, N, accumulate, worst);
    int pad_ok = 1; /* the columns past N are untouched */
    for (int m = 0; m < M; m++)
        for (size_t n = (size_t)N; n < ldc; n++) pad_ok &= C[m * ldc + n] == C0[m * ldc + n];
    KT_EXPECT(pad_ok);
    for (int m = 0; m < M; m++) memcpy(out + (size_t)m * N, C + m * ldc, sizeof(float) * N);
    koe_qmat_release(&q);
    free(sx);
    free(A);
    free(x);
    free(C);
    free(C0);
    free(scratch);
}

typedef struct shape {
    int M, cin, taps, dil, stride, start, len, N, acc, extreme;
} shape;
static const shape shapes[] = {
    {8, 16, 1, 1, 1, 0, 32, 32, 0, 0},     /* one exact micro-tile */
    {22, 13, 1, 1, 1, 0, 40, 37, 0, 0},    /* ragged M, K not a multiple of 4, ragged N */
    {64, 32, 3, 1, 1, -1, 100, 100, 1, 0}, /* k 3, pad 1, accumulate */
    {24, 20, 7, 3, 1, -9, 300, 300, 1, 0}, /* dilated, > one column chunk */
    {16, 22, 12, 1, 6, -3, 200, 33, 0, 0}, /* strided (noise_convs.0) */
    {40, 300, 2, 1, 1, 0, 64, 64, 0, 0},   /* K 600: two K blocks */
    {9, 5, 11, 5, 1, -25, 60, 60, 1, 0},   /* k 11 dil 5: most taps padded */
    {17, 130, 2, 2, 1, 4, 50, 1, 0, 0},    /* one column */
    {33, 3, 4, 1, 2, 5, 1000, 257, 1, 0},  /* start inside, stride 2 */
    {16, 256, 3, 1, 1, -1, 70, 70, 0, 1},  /* ±127 · ±127 everywhere (offset, saturation) */
    {8, 1024, 3, 1, 1, -1, 40, 40, 0, 1},  /* the same over 6 K blocks */
};
#define N_SHAPES (sizeof shapes / sizeof *shapes)

static void test_gemm_all_kernels(void) {
    float *ref[N_SHAPES];
    for (size_t s = 0; s < N_SHAPES; s++)
        ref[s] = malloc(sizeof(float) * shapes[s].M * shapes[s].N);
    for (int k = 0; k < 3; k++) {
        koe_i8_kernel kern = (koe_i8_kernel)k;
        if (!koe_i8_kernel_usable(kern)) {
            printf("  kernel %s: not on this CPU\n", koe_i8_kernel_name(kern));
            continue;
        }
        printf("  kernel %s\n", koe_i8_kernel_name(kern));
        for (size_t s = 0; s < N_SHAPES; s++) {
            const shape *h = &shapes[s];
            float *out = malloc(sizeof(float) * h->M * h->N);
            run_case(kern, h->M, h->cin, h->taps, h->dil, h->stride, h->start, h->len, h->N, h->acc,
                     h->extreme, k == 0 ? ref[s] : out);
            if (k > 0)
                KT_CHECK(!memcmp(out, ref[s], sizeof(float) * h->M * h->N),
                         "%s differs from the portable kernel on shape %zu",
                         koe_i8_kernel_name(kern), s);
            free(out);
        }
    }
    for (size_t s = 0; s < N_SHAPES; s++) free(ref[s]);
}

static void test_cpu_disable(void) {
    const char *old = getenv("KOE_CPU_DISABLE");
    char *saved = old ? strdup(old) : NULL;
    int had_vnni = koe_i8_kernel_usable(KOE_I8_KERNEL_AVX512VNNI);
    int had_avx2 = koe_cpu_has("avx2");
    setenv("KOE_CPU_DISABLE", "avx512vnni", 1);
    KT_EXPECT(!koe_i8_kernel_usable(KOE_I8_KERNEL_AVX512VNNI));
    KT_EXPECT(koe_i8_best_kernel() == (had_avx2 ? KOE_I8_KERNEL_AVX2 : KOE_I8_KERNEL_C));
    setenv("KOE_CPU_DISABLE", "avx2", 1);
    KT_EXPECT(koe_i8_best_kernel() == (had_vnni ? KOE_I8_KERNEL_AVX512VNNI : KOE_I8_KERNEL_C));
    setenv("KOE_CPU_DISABLE", "avx512vnni,avx2", 1);
    KT_EXPECT(koe_i8_best_kernel() == KOE_I8_KERNEL_C);
    if (saved) {
        setenv("KOE_CPU_DISABLE", saved, 1);
        free(saved);
    } else {
        unsetenv("KOE_CPU_DISABLE");
    }
    printf("  this CPU: best int8 kernel %s\n", koe_i8_kernel_name(koe_i8_best_kernel()));
}

int main(void) {
    kt_run("quantize", test_quantize);
    kt_run("pack", test_pack);
    kt_run("col_scales", test_col_scales);
    kt_run("gemm_all_kernels", test_gemm_all_kernels);
    kt_run("cpu_disable", test_cpu_disable);
    return kt_finish();
}
