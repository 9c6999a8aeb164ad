#include "model/ops_dense.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_conv.h" /* koe_blas_single_thread */

/* The x86 kernels (intrinsics under target attributes, chosen at run time) only where they can
 * exist; elsewhere (arm64) the portable code and OpenBLAS. KOE_PORTABLE_ONLY builds that on x86
 * (a compile check). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(KOE_PORTABLE_ONLY)
#include <immintrin.h>
#define KOE_X86 1
#else
#define KOE_X86 0
#endif

static int n_threads(koe_pool *pool) {
    return pool ? koe_pool_threads(pool) : 1;
}

/* ---- vectorizable transcendental functions ------------------------------------------------ */
/* libm's expf/tanhf do not vectorize and were a fifth of PL-BERT's time (softmax, gelu_new) and
 * most of an LSTM step's non-matvec work. exp_approx: range reduction to |r| ≤ ln2/2 and a
 * degree-6 Taylor polynomial, relative error ≈ 2e-7 (a few ulp), clamped to the float range. The
 * kernels below are compiled for AVX-512, AVX2 and the baseline and picked at run time. */
static inline __attribute__((always_inline)) float exp_approx(float x) {
    x = x > -87.0f ? x : -87.0f; /* written so that a NaN becomes -87: no undefined cast below */
    x = x < 88.0f ? x : 88.0f;
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    float r = x - n * 0.693145751953125f;                    /* ln2 split: exact high part */
    r = r - n * 1.428606820309417e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh(z) = 1 − 2/(e^{2z} + 1): absolute error ≈ 2e-7 (relative error grows only where |z| is
 * tiny, where the callers need absolute accuracy). */
static inline __attribute__((always_inline)) float tanh_approx(float z) {
    return 1.0f - 2.0f / (exp_approx(2.0f * z) + 1.0f);
}

static inline __attribute__((always_inline)) float sigmoid_approx(float z) {
    return 1.0f / (1.0f + exp_approx(-z));
}

/* r[i] = exp(r[i] − mx); returns Σ r[i] (16 float lanes, then summed). */
static inline __attribute__((always_inline)) float softmax_exp_k(float *r, int n, float mx) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            float e = exp_approx(r[i + k] - mx);
            r[i + k] = e;
            acc[k] += e;
        }
    float s = 0.0f;
    for (; i < n; i++) {
        r[i] = exp_approx(r[i] - mx);
        s += r[i];
    }
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

static inline __attribute__((always_inline)) void gelu_k(float *x, size_t n) {
    const float k0 = 0.7978845608028654f; /* √(2/π) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanh_approx(k0 * (v + 0.044715f * v * v * v)));
    }
}

/* One LSTM cell update over u units from the gate sums g = [i | f | g | o]. */
static inline __attribute__((always_inline)) void lstm_cell_k(const float *g, float *c, float *h,
                                                              float *out, int u) {
    for (int i = 0; i < u; i++) {
        float ig = sigmoid_approx(g[i]), fg = sigmoid_approx(g[u + i]);
        float gg = tanh_approx(g[2 * u + i]), og = sigmoid_approx(g[3 * u + i]);
        float cn = fg * c[i] + ig * gg;
        c[i] = cn;
        h[i] = og * tanh_approx(cn);
        out[i] = h[i];
    }
}

#if KOE_X86
#define KOE_DENSE_VARIANTS(name, ret, params, args)                                                \
    __attribute__((target("avx512f,avx512dq,fma"),                                                 \
                   optimize("tree-vectorize"))) static ret name##_avx512 params {                  \
        return name##_k args;                                                                      \
    }                                                                                              \
    __attribute__((target("avx2,fma"),                                                             \
                   optimize("tree-vectorize"))) static ret name##_avx2 params {                    \
        return name##_k args;                                                                      \
    }                                                                                              \
    __attribute__((optimize("tree-vectorize"))) static ret name##_base params {                    \
        return name##_k args;                                                                      \
    }

#else
/* Not x86: one portable variant under the three names the dispatch below uses. */
#define KOE_DENSE_VARIANTS(name, ret, params, args)                                                \
    __attribute__((optimize("tree-vectorize"))) static ret name##_base params {                    \
        return name##_k args;                                                                      \
    }                                                                                              \
    static ret name##_avx512 params {                                                              \
        return name##_base args;                                                                   \
    }                                                                                              \
    static ret name##_avx2 params {                                                                \
        return name##_base args;                                                                   \
    }
#endif

KOE_DENSE_VARIANTS(softmax_exp, float, (float *r, int n, float mx), (r, n, mx))
KOE_DENSE_VARIANTS(gelu, void, (float *x, size_t n), (x, n))
KOE_DENSE_VARIANTS(lstm_cell, void, (const float *g, float *c, float *h, float *out, int u),
                   (g, c, h, out, u))

/* 2: AVX-512, 1: AVX2 + FMA, 0: baseline (always 0 off x86). */
static int simd_level(void) {
#if KOE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

static float softmax_exp(float *r, int n, float mx) {
    int l = simd_level();
    return l == 2   ? softmax_exp_avx512(r, n, mx)
           : l == 1 ? softmax_exp_avx2(r, n, mx)
                    : softmax_exp_base(r, n, mx);
}

/* ---- weights ----------------------------------------------------------------------------- */
static void shape_str(char *out, size_t cap, int nd, const int64_t *s) {
    out[0] = 0;
    for (int i = 0; i < nd && i < 4; i++) {
        if (s[i] < 0) /* a size the caller left open */
            snprintf(out + strlen(out), cap - strlen(out), "%s?", i ? ", " : "");
        else
            snprintf(out + strlen(out), cap - strlen(out), "%s%lld", i ? ", " : "",
                     (long long)s[i]);
    }
}

const float *koe_fetch(koe_fetcher *f, const char *name, int nd, int64_t *want) {
    if (f->failed) return NULL;
    int ndim = 0;
    int64_t shape[4] = {0};
    const float *p = f->lookup(f->user, name, &ndim, shape);
    if (!p) {
        f->failed = KOE_ERR_NOT_FOUND;
        koe_error_set(f->err, KOE_ERR_NOT_FOUND, "missing tensor %s", name);
        return NULL;
    }
    int ok = ndim == nd;
    for (int i = 0; ok && i < nd; i++) {
        if (want[i] == -1 && shape[i] > 0) want[i] = shape[i];
        ok = want[i] == shape[i] && shape[i] > 0;
    }
    if (!ok) {
        char got[96], exp[96];
        shape_str(got, sizeof got, ndim, shape);
        shape_str(exp, sizeof exp, nd, want);
        f->failed = KOE_ERR_FORMAT;
        koe_error_set(f->err, KOE_ERR_FORMAT, "tensor %s has shape [%s], expected [%s]", name, got,
                      exp);
        return NULL;
    }
    return p;
}

float *koe_fetch_copy(koe_fetcher *f, const char *name, int nd, int64_t *want) {
    const float *p = koe_fetch(f, name, nd, want);
    if (!p) return NULL;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)want[i];
    float *q = malloc(n * sizeof *q);
    if (!q) {
        f->failed = KOE_ERR_NOMEM;
        koe_error_set(f->err, KOE_ERR_NOMEM, "out of memory copying %s", name);
        return NULL;
    }
    memcpy(q, p, n * sizeof *q);
    return q;
}

/* ---- linear layers ----------------------------------------------------------------------- */
typedef struct linear_job {
    const float *x, *w, *b;
    float *y;
    int ldx, ldy, T, in, out, chunk;
    int layout; /* KOE_DENSE_OUT_IN, KOE_DENSE_IN_OUT or a panel width */
    int gelu;   /* apply gelu_new to the outputs, inside the task (no extra fork-join) */
} linear_job;

/* Packed panels: for each block of P consecutive outputs, the weights as [in][P] (zero-padded
 * past `out`), 64-byte aligned. Rows of x are taken six at a time, each weight vector loaded
 * once per six rows and broadcast-multiplied: the weights are read in order exactly once per
 * six rows, with no per-call packing (OpenBLAS repacks the whole weight on every call, which
 * dominated at tens of tokens: 41–69 vs 100 GFLOP/s measured for PL-BERT's shapes at 20 rows). */
#define ROWS 6

#if KOE_X86
/* Register blocking written out by hand: with arrays of vectors gcc -O2 keeps the accumulators
 * in memory. */
#define FMA6(set1, fmadd, W0, W1)                                                                  \
    do {                                                                                           \
        v = set1(x[k]);                                                                            \
        a00 = fmadd(v, W0, a00);                                                                   \
        a01 = fmadd(v, W1, a01);                                                                   \
        v = set1(x[ld + k]);                                                                       \
        a10 = fmadd(v, W0, a10);                                                                   \
        a11 = fmadd(v, W1, a11);                                                                   \
        v = set1(x[2 * ld + k]);                                                                   \
        a20 = fmadd(v, W0, a20);                                                                   \
        a21 = fmadd(v, W1, a21);                                                                   \
        v = set1(x[3 * ld + k]);                                                                   \
        a30 = fmadd(v, W0, a30);                                                                   \
        a31 = fmadd(v, W1, a31);                                                                   \
        v = set1(x[4 * ld + k]);                                                                   \
        a40 = fmadd(v, W0, a40);                                                                   \
        a41 = fmadd(v, W1, a41);                                                                   \
        v = set1(x[5 * ld + k]);                                                                   \
        a50 = fmadd(v, W0, a50);                                                                   \
        a51 = fmadd(v, W1, a51);                                                                   \
    } while (0)

__attribute__((target("avx512f,fma"))) static void panels_avx512(const linear_job *j, int p0,
                                                                 int p1) {
    int K = j->in;
    size_t ld = (size_t)j->ldx;
    for (int p = p0; p < p1; p++) {
        const float *w = j->w + (size_t)p * K * 32;
        int n0 = p * 32, nn = j->out - n0 < 32 ? j->out - n0 : 32;
        __mmask16 m0 = nn >= 16 ? 0xffff : (__mmask16)((1u << nn) - 1);
        __mmask16 m1 = nn >= 32 ? 0xffff : nn > 16 ? (__mmask16)((1u << (nn - 16)) - 1) : 0;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, j->b + n0);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, j->b + n0 + (nn > 16 ? 16 : 0));
        int t = 0;
        for (; t + ROWS <= j->T; t += ROWS) {
            __m512 a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1;
            __m512 a30 = b0, a31 = b1, a40 = b0, a41 = b1, a50 = b0, a51 = b1, v;
            const float *x = j->x + (size_t)t * ld;
            for (int k = 0; k < K; k++) {
                __m512 w0 = _mm512_load_ps(w + (size_t)k * 32);
                __m512 w1 = _mm512_load_ps(w + (size_t)k * 32 + 16);
                FMA6(_mm512_set1_ps, _mm512_fmadd_ps, w0, w1);
            }
            float *y = j->y + (size_t)t * j->ldy + n0;
            size_t ly = (size_t)j->ldy;
            _mm512_mask_storeu_ps(y, m0, a00);
            _mm512_mask_storeu_ps(y + ly, m0, a10);
            _mm512_mask_storeu_ps(y + 2 * ly, m0, a20);
            _mm512_mask_storeu_ps(y + 3 * ly, m0, a30);
            _mm512_mask_storeu_ps(y + 4 * ly, m0, a40);
            _mm512_mask_storeu_ps(y + 5 * ly, m0, a50);
            if (m1) {
                _mm512_mask_storeu_ps(y + 16, m1, a01);
                _mm512_mask_storeu_ps(y + ly + 16, m1, a11);
                _mm512_mask_storeu_ps(y + 2 * ly + 16, m1, a21);
                _mm512_mask_storeu_ps(y + 3 * ly + 16, m1, a31);
                _mm512_mask_storeu_ps(y + 4 * ly + 16, m1, a41);
                _mm512_mask_storeu_ps(y + 5 * ly + 16, m1, a51);
            }
        }
        for (; t < j->T; t++) {
            __m512 a0 = b0, a1 = b1;
            const float *x = j->x + (size_t)t * ld;
            for (int k = 0; k < K; k++) {
                __m512 v = _mm512_set1_ps(x[k]);
                a0 = _mm512_fmadd_ps(v, _mm512_load_ps(w + (size_t)k * 32), a0);
                a1 = _mm512_fmadd_ps(v, _mm512_load_ps(w + (size_t)k * 32 + 16), a1);
            }
            float *y = j->y + (size_t)t * j->ldy + n0;
            _mm512_mask_storeu_ps(y, m0, a0);
            if (m1) _mm512_mask_storeu_ps(y + 16, m1, a1);
        }
    }
}

/* AVX2: panels of 16 (two 8-float registers), the same six-row scheme (12 accumulators). */
__attribute__((target("avx2,fma"))) static void store16(float *y, __m256 lo, __m256 hi, int nn) {
    if (nn == 16) {
        _mm256_storeu_ps(y, lo);
        _mm256_storeu_ps(y + 8, hi);
    } else {
        float tmp[16];
        _mm256_storeu_ps(tmp, lo);
        _mm256_storeu_ps(tmp + 8, hi);
        memcpy(y, tmp, (size_t)nn * sizeof(float));
    }
}

__attribute__((target("avx2,fma"))) static void panels_avx2(const linear_job *j, int p0, int p1) {
    int K = j->in;
    size_t ld = (size_t)j->ldx, ly = (size_t)j->ldy;
    for (int p = p0; p < p1; p++) {
        const float *w = j->w + (size_t)p * K * 16;
        int n0 = p * 16, nn = j->out - n0 < 16 ? j->out - n0 : 16;
        float bias[16] = {0};
        memcpy(bias, j->b + n0, (size_t)nn * sizeof(float));
        __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
        int t = 0;
        for (; t + ROWS <= j->T; t += ROWS) {
            __m256 a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1;
            __m256 a30 = b0, a31 = b1, a40 = b0, a41 = b1, a50 = b0, a51 = b1, v;
            const float *x = j->x + (size_t)t * ld;
            for (int k = 0; k < K; k++) {
                __m256 w0 = _mm256_load_ps(w + (size_t)k * 16);
                __m256 w1 = _mm256_load_ps(w + (size_t)k * 16 + 8);
                FMA6(_mm256_set1_ps, _mm256_fmadd_ps, w0, w1);
            }
            float *y = j->y + (size_t)t * ly + n0;
            store16(y, a00, a01, nn);
            store16(y + ly, a10, a11, nn);
            store16(y + 2 * ly, a20, a21, nn);
            store16(y + 3 * ly, a30, a31, nn);
            store16(y + 4 * ly, a40, a41, nn);
            store16(y + 5 * ly, a50, a51, nn);
        }
        for (; t < j->T; t++) {
            __m256 a0 = b0, a1 = b1;
            const float *x = j->x + (size_t)t * ld;
            for (int k = 0; k < K; k++) {
                __m256 v = _mm256_set1_ps(x[k]);
                a0 = _mm256_fmadd_ps(v, _mm256_load_ps(w + (size_t)k * 16), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_load_ps(w + (size_t)k * 16 + 8), a1);
            }
            store16(j->y + (size_t)t * ly + n0, a0, a1, nn);
        }
    }
}

#endif /* KOE_X86: the packed-panel kernels */

/* Output columns [j0, j1) through OpenBLAS (unpacked layouts). */
static void linear_cols(const linear_job *j, int j0, int j1) {
    if (j1 <= j0) return;
    float beta = 0.0f;
    if (j->b) {
        for (int t = 0; t < j->T; t++)
            memcpy(j->y + (size_t)t * j->ldy + j0, j->b + j0, (size_t)(j1 - j0) * sizeof(float));
        beta = 1.0f;
    }
    if (j->layout == KOE_DENSE_IN_OUT)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->T, j1 - j0, j->in, 1.0f, j->x,
                    j->ldx, j->w + j0, j->out, beta, j->y + j0, j->ldy);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, j1 - j0, j->in, 1.0f, j->x,
                    j->ldx, j->w + (size_t)j0 * j->in, j->in, beta, j->y + j0, j->ldy);
}

/* Task `task` takes a contiguous share of the units: panels when packed, else blocks of 16
 * columns. */
static void linear_task(void *arg, int task) {
    const linear_job *j = arg;
    int unit = j->layout > 1 ? j->layout : 16, units = (j->out + unit - 1) / unit;
    int u0 = task * j->chunk, u1 = u0 + j->chunk < units ? u0 + j->chunk : units;
    if (u1 <= u0) return;
    int c0 = u0 * unit, c1 = u1 * unit < j->out ? u1 * unit : j->out;
#if KOE_X86
    if (j->layout == 32)
        panels_avx512(j, u0, u1);
    else if (j->layout == 16)
        panels_avx2(j, u0, u1);
    else
#endif
        linear_cols(j, c0, c1);
    if (j->gelu)
        for (int t = 0; t < j->T; t++)
            koe_gelu_new(j->y + (size_t)t * j->ldy + c0, (size_t)(c1 - c0));
}

static void linear_any(koe_pool *pool, const float *x, int ldx, int T, int in, const float *w,
                       int layout, const float *b, int out, float *y, int ldy, int gelu) {
    if (T <= 0 || out <= 0) return;
    if (layout <= 1) koe_blas_single_thread();
    int unit = layout > 1 ? layout : 16, units = (out + unit - 1) / unit;
    int nt = n_threads(pool);
    /* Below ~64k multiply-adds the fork-join costs more than it saves. */
    if (nt > units || (double)T * in * out < 65536.0) nt = 1;
    int chunk = (units + nt - 1) / nt;
    linear_job j = {x, w, b, y, ldx, ldy, T, in, out, chunk, layout, gelu};
    int tasks = (units + chunk - 1) / chunk;
    if (tasks > 1)
        koe_pool_run(pool, tasks, linear_task, &j);
    else
        linear_task(&j, 0);
}

void koe_linear(koe_pool *pool, const float *x, int ldx, int T, int in, const float *w,
                const float *b, int out, float *y, int ldy) {
    linear_any(pool, x, ldx, T, in, w, KOE_DENSE_OUT_IN, b, out, y, ldy, 0);
}

int koe_dense_best_layout(int in, int out) {
#if KOE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return 32;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 16;
#endif
    /* OpenBLAS packs a [out, in] weight poorly when in > out and few rows come at a time */
    return in > out ? KOE_DENSE_IN_OUT : KOE_DENSE_OUT_IN;
}

int koe_dense_init(koe_dense *d, const float *w, const float *b, int in, int out, int layout,
                   koe_error *err) {
    memset(d, 0, sizeof *d);
    if (in < 1 || out < 1)
        return koe_error_set(err, KOE_ERR_INVALID, "linear layer %d → %d", in, out);
    if (layout < 0) layout = koe_dense_best_layout(in, out);
    if (layout > 1 && layout != koe_dense_best_layout(in, out) &&
        !(layout == 16 && koe_dense_best_layout(in, out) == 32))
        return koe_error_set(err, KOE_ERR_UNSUPPORTED, "linear layout %d needs a newer CPU",
                             layout);
    if (layout != KOE_DENSE_OUT_IN && layout != KOE_DENSE_IN_OUT && layout != 16 && layout != 32)
        return koe_error_set(err, KOE_ERR_INVALID, "unknown linear layout %d", layout);
    size_t panels = layout > 1 ? (size_t)(out + layout - 1) / layout : 0;
    size_t n = layout > 1 ? panels * layout * in : (size_t)in * out;
    d->w = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    d->b = malloc((size_t)out * sizeof(float));
    if (!d->w || !d->b) {
        koe_dense_free(d);
        return koe_error_set(err, KOE_ERR_NOMEM, "out of memory for a linear layer");
    }
    d->in = in;
    d->out = out;
    d->layout = layout;
    if (b)
        memcpy(d->b, b, (size_t)out * sizeof(float));
    else
        memset(d->b, 0, (size_t)out * sizeof(float));
    if (layout == KOE_DENSE_OUT_IN) {
        memcpy(d->w, w, n * sizeof(float));
    } else if (layout == KOE_DENSE_IN_OUT) {
        koe_transpose(w, out, in, in, d->w, out);
    } else {
        memset(d->w, 0, n * sizeof(float));
        for (int o = 0; o < out; o++) {
            float *panel = d->w + (size_t)(o / layout) * layout * in;
            for (int i = 0; i < in; i++)
                panel[(size_t)i * layout + o % layout] = w[(size_t)o * in + i];
        }
    }
    return 0;
}

int koe_dense_load(koe_fetcher *f, const char *prefix, int in, int out, koe_dense *d) {
    char nm[200];
    int64_t sw[2] = {out, in};
    memset(d, 0, sizeof *d);
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    const float *w = koe_fetch(f, nm, 2, sw);
    int64_t sb[1] = {sw[0]};
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    const float *b = koe_fetch(f, nm, 1, sb);
    if (f->failed) return f->failed;
    int rc = koe_dense_init(d, w, b, (int)sw[1], (int)sw[0], -1, f->err);
    if (rc) {
        f->failed = rc;
        koe_error_prefix(f->err, "%s: ", prefix);
    }
    return rc;
}

void koe_dense_free(koe_dense *d) {
    free(d->w);
    free(d->b);
    d->w = d->b = NULL;
}

void koe_dense_run(const koe_dense *d, koe_pool *pool, const float *x, int ldx, int T, float *y,
                   int ldy) {
    linear_any(pool, x, ldx, T, d->in, d->w, d->layout, d->b, d->out, y, ldy, 0);
}

void koe_dense_run_gelu(const koe_dense *d, koe_pool *pool, const float *x, int ldx, int T,
                        float *y, int ldy) {
    linear_any(pool, x, ldx, T, d->in, d->w, d->layout, d->b, d->out, y, ldy, 1);
}

/* ---- normalization and activations ------------------------------------------------------- */
void koe_layer_norm_rows(float *x, int T, int C, int ld, const float *scale, const float *shift,
                         float eps) {
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * ld;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += r[c];
        double mean = s / C, v = 0.0;
        for (int c = 0; c < C; c++) {
            double e = r[c] - mean;
            v += e * e;
        }
        double inv = 1.0 / sqrt(v / C + (double)eps);
        for (int c = 0; c < C; c++) {
            /* the centring in double: a float mean far from zero would lose low bits */
            float y = (float)((r[c] - mean) * inv);
            if (scale) y *= scale[c];
            if (shift) y += shift[c];
            r[c] = y;
        }
    }
}

void koe_layer_norm_cols(float *x, int C, int T, const float *scale, const float *shift,
                         float eps) {
    enum { B = 64 }; /* columns per block: statistics stay on the stack, rows stream through */
    for (int t0 = 0; t0 < T; t0 += B) {
        int nb = T - t0 < B ? T - t0 : B;
        double mean[B] = {0}, var[B] = {0};
        for (int c = 0; c < C; c++) {
            const float *r = x + (size_t)c * T + t0;
            for (int i = 0; i < nb; i++) mean[i] += r[i];
        }
        for (int i = 0; i < nb; i++) mean[i] /= C;
        for (int c = 0; c < C; c++) {
            const float *r = x + (size_t)c * T + t0;
            for (int i = 0; i < nb; i++) {
                double e = r[i] - mean[i];
                var[i] += e * e;
            }
        }
        double inv[B];
        for (int i = 0; i < nb; i++) inv[i] = 1.0 / sqrt(var[i] / C + (double)eps);
        for (int c = 0; c < C; c++) {
            float *r = x + (size_t)c * T + t0;
            float sc = scale ? scale[c] : 1.0f, sh = shift ? shift[c] : 0.0f;
            for (int i = 0; i < nb; i++) r[i] = (float)((r[i] - mean[i]) * inv[i]) * sc + sh;
        }
    }
}

void koe_ada_ln_affine(const float *gamma_beta, int C, float *scale, float *shift) {
    for (int c = 0; c < C; c++) {
        scale[c] = 1.0f + gamma_beta[c];
        shift[c] = gamma_beta[C + c];
    }
}

void koe_gelu_new(float *x, size_t n) {
    int l = simd_level();
    if (l == 2)
        gelu_avx512(x, n);
    else if (l == 1)
        gelu_avx2(x, n);
    else
        gelu_base(x, n);
}

void koe_transpose(const float *x, int T, int C, int ldx, float *y, int ldy) {
    enum { B = 32 }; /* tiles keep both sides in cache */
    for (int t0 = 0; t0 < T; t0 += B)
        for (int c0 = 0; c0 < C; c0 += B) {
            int t1 = t0 + B < T ? t0 + B : T, c1 = c0 + B < C ? c0 + B : C;
            for (int c = c0; c < c1; c++)
                for (int t = t0; t < t1; t++) y[(size_t)c * ldy + t] = x[(size_t)t * ldx + c];
        }
}

/* ---- attention --------------------------------------------------------------------------- */
size_t koe_attention_scratch_floats(int T, koe_pool *pool) {
    return (size_t)n_threads(pool) * (size_t)T * (size_t)T;
}

typedef struct attn_job {
    const float *qkv;
    float *ctx, *scratch;
    int T, heads, d, slots;
} attn_job;

static void attn_slot(void *arg, int slot) {
    const attn_job *j = arg;
    int T = j->T, d = j->d, hd = j->heads * d, ld = 3 * hd;
    float *S = j->scratch + (size_t)slot * T * T;
    float alpha = (float)(1.0 / sqrt((double)d));
    for (int h = slot; h < j->heads; h += j->slots) {
        const float *q = j->qkv + (size_t)h * d, *k = q + hd, *v = q + 2 * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, alpha, q, ld, k, ld, 0.0f, S,
                    T);
        for (int t = 0; t < T; t++) {
            float *r = S + (size_t)t * T, mx = r[0];
            for (int i = 1; i < T; i++) mx = r[i] > mx ? r[i] : mx;
            float sum = softmax_exp(r, T, mx);
            float inv = 1.0f / sum;
            for (int i = 0; i < T; i++) r[i] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, 1.0f, S, T, v, ld, 0.0f,
                    j->ctx + (size_t)h * d, hd);
    }
}

void koe_attention(koe_pool *pool, float *scratch, const float *qkv, int T, int heads, int d,
                   float *ctx) {
    koe_blas_single_thread();
    int slots = n_threads(pool);
    if (slots > heads) slots = heads;
    attn_job j = {qkv, ctx, scratch, T, heads, d, slots};
    if (slots > 1)
        koe_pool_run(pool, slots, attn_slot, &j);
    else
        attn_slot(&j, 0);
}

/* ---- bidirectional LSTM ------------------------------------------------------------------ */
/* The recurrence's g += W_hh·h (4u × u, 1 MB at full size, read once per step) as broadcasts of
 * h[k] against W_hhᵀ rows: W_hh is stored in panels of PW gate rows laid out [u][PW], so each
 * step streams the matrix once with PW/VW accumulators in registers (sgemv's dot products
 * ran at 35 GFLOP/s here). The last panel may be narrower: [u][rest]. */
#define HH_PANEL_512 256 /* 16 registers of 16 */
#define HH_PANEL_256 64  /* 8 registers of 8 */

#if KOE_X86
#define ACC8(OP)  OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7)
#define ACC16(OP) ACC8(OP) OP(8) OP(9) OP(10) OP(11) OP(12) OP(13) OP(14) OP(15)

__attribute__((target("avx512f,fma"))) static void hh_avx512(const float *wp, int u, int G,
                                                             const float *h, float *g) {
    int p0 = 0;
    for (; p0 + HH_PANEL_512 <= G; p0 += HH_PANEL_512) {
        const float *w = wp + (size_t)p0 * u;
#define DECL(i)  __m512 c##i = _mm512_loadu_ps(g + p0 + 16 * (i));
#define STEP(i)  c##i = _mm512_fmadd_ps(v, _mm512_load_ps(wk + 16 * (i)), c##i);
#define STORE(i) _mm512_storeu_ps(g + p0 + 16 * (i), c##i);
        ACC16(DECL)
        for (int k = 0; k < u; k++) {
            __m512 v = _mm512_set1_ps(h[k]);
            const float *wk = w + (size_t)k * HH_PANEL_512;
            ACC16(STEP)
        }
        ACC16(STORE)
#undef DECL
#undef STEP
#undef STORE
    }
    int nv = (G - p0) / 16;
    const float *w = wp + (size_t)p0 * u;
    for (int vi = 0; vi < nv; vi++) {
        __m512 c = _mm512_loadu_ps(g + p0 + 16 * vi);
        for (int k = 0; k < u; k++)
            c = _mm512_fmadd_ps(_mm512_set1_ps(h[k]),
                                _mm512_load_ps(w + (size_t)k * nv * 16 + 16 * vi), c);
        _mm512_storeu_ps(g + p0 + 16 * vi, c);
    }
}

__attribute__((target("avx2,fma"))) static void hh_avx2(const float *wp, int u, int G,
                                                        const float *h, float *g) {
    int p0 = 0;
    for (; p0 + HH_PANEL_256 <= G; p0 += HH_PANEL_256) {
        const float *w = wp + (size_t)p0 * u;
#define DECL(i)  __m256 c##i = _mm256_loadu_ps(g + p0 + 8 * (i));
#define STEP(i)  c##i = _mm256_fmadd_ps(v, _mm256_load_ps(wk + 8 * (i)), c##i);
#define STORE(i) _mm256_storeu_ps(g + p0 + 8 * (i), c##i);
        ACC8(DECL)
        for (int k = 0; k < u; k++) {
            __m256 v = _mm256_set1_ps(h[k]);
            const float *wk = w + (size_t)k * HH_PANEL_256;
            ACC8(STEP)
        }
        ACC8(STORE)
#undef DECL
#undef STEP
#undef STORE
    }
    int nv = (G - p0) / 8;
    const float *w = wp + (size_t)p0 * u;
    for (int vi = 0; vi < nv; vi++) {
        __m256 c = _mm256_loadu_ps(g + p0 + 8 * vi);
        for (int k = 0; k < u; k++)
            c = _mm256_fmadd_ps(_mm256_set1_ps(h[k]),
                                _mm256_load_ps(w + (size_t)k * nv * 8 + 8 * vi), c);
        _mm256_storeu_ps(g + p0 + 8 * vi, c);
    }
}

#endif /* KOE_X86: the recurrent kernels */

/* Vector width of the recurrent kernel for G gate rows on this CPU: 16, 8, or 0 (sgemv; always
 * off x86, where simd_level is 0). */
static int hh_width(int G) {
    int l = simd_level();
    if (l == 2 && G % 16 == 0) return 16;
    if (l >= 1 && G % 8 == 0) return 8;
    return 0;
}

/* Packs w [G, u] (row-major, PyTorch) into the panel layout for vector width vw. */
static void hh_pack(const float *w, int G, int u, int vw, float *wp) {
    int pw = vw == 16 ? HH_PANEL_512 : HH_PANEL_256;
    for (int p0 = 0; p0 < G; p0 += pw) {
        int width = G - p0 < pw ? G - p0 : pw;
        float *panel = wp + (size_t)p0 * u;
        for (int r = 0; r < width; r++)
            for (int k = 0; k < u; k++) panel[(size_t)k * width + r] = w[(size_t)(p0 + r) * u + k];
    }
}

struct koe_lstm {
    int in, u;
    koe_dense proj; /* in → 8u: forward gates then backward gates (bias_ih + bias_hh), so one
                       product projects both directions */
    float *w_hh[2]; /* [4u, u] row-major (hh_vw 0) or packed panels */
    int hh_vw;      /* vector width of the recurrent kernel, 0 = cblas_sgemv */
};

koe_lstm *koe_lstm_load(koe_fetcher *f, const char *prefix, int in, int units) {
    if (f->failed) return NULL;
    koe_lstm *l = calloc(1, sizeof *l);
    if (!l) {
        f->failed = KOE_ERR_NOMEM;
        koe_error_set(f->err, KOE_ERR_NOMEM, "out of memory loading %s", prefix);
        return NULL;
    }
    int64_t g4 = units > 0 ? 4 * (int64_t)units : -1, win = in;
    float *w_ih = NULL, *bias = NULL; /* both directions stacked, until packed below */
    for (int dir = 0; dir < 2 && !f->failed; dir++) {
        const char *sfx = dir ? "_reverse" : "";
        char nm[200];
        int64_t sih[2] = {g4, win};
        snprintf(nm, sizeof nm, "%s.weight_ih_l0%s", prefix, sfx);
        const float *wih = koe_fetch(f, nm, 2, sih);
        if (f->failed) break;
        g4 = sih[0];
        win = sih[1];
        if (g4 % 4) {
            f->failed = KOE_ERR_FORMAT;
            koe_error_set(f->err, KOE_ERR_FORMAT, "tensor %s: %lld rows is not 4 gates", nm,
                          (long long)g4);
            break;
        }
        int64_t shh[2] = {g4, g4 / 4}, sb[1] = {g4}, sb2[1] = {g4};
        snprintf(nm, sizeof nm, "%s.weight_hh_l0%s", prefix, sfx);
        const float *whh = koe_fetch(f, nm, 2, shh);
        snprintf(nm, sizeof nm, "%s.bias_ih_l0%s", prefix, sfx);
        const float *bih = koe_fetch(f, nm, 1, sb);
        snprintf(nm, sizeof nm, "%s.bias_hh_l0%s", prefix, sfx);
        const float *bhh = koe_fetch(f, nm, 1, sb2);
        if (f->failed) break;
        if (dir == 0) {
            l->u = (int)(g4 / 4);
            l->in = (int)win;
            w_ih = malloc((size_t)8 * l->u * l->in * sizeof(float));
            bias = malloc((size_t)8 * l->u * sizeof(float));
        }
        l->hh_vw = hh_width(4 * l->u);
        l->w_hh[dir] = aligned_alloc(64, ((size_t)16 * l->u * l->u + 63) / 64 * 64);
        if (!w_ih || !bias || !l->w_hh[dir]) {
            f->failed = KOE_ERR_NOMEM;
            koe_error_set(f->err, KOE_ERR_NOMEM, "out of memory loading %s", prefix);
            break;
        }
        size_t G = (size_t)4 * l->u;
        memcpy(w_ih + dir * G * l->in, wih, G * l->in * sizeof(float));
        if (l->hh_vw)
            hh_pack(whh, (int)G, l->u, l->hh_vw, l->w_hh[dir]);
        else
            memcpy(l->w_hh[dir], whh, G * l->u * sizeof(float));
        for (size_t i = 0; i < G; i++) bias[dir * G + i] = bih[i] + bhh[i];
    }
    if (!f->failed) {
        int rc = koe_dense_init(&l->proj, w_ih, bias, l->in, 8 * l->u, -1, f->err);
        if (rc) f->failed = rc;
    }
    free(w_ih);
    free(bias);
    if (f->failed) {
        koe_lstm_free(l);
        return NULL;
    }
    return l;
}

void koe_lstm_free(koe_lstm *l) {
    if (!l) return;
    koe_dense_free(&l->proj);
    free(l->w_hh[0]);
    free(l->w_hh[1]);
    free(l);
}

int koe_lstm_in(const koe_lstm *l) {
    return l->in;
}

int koe_lstm_units(const koe_lstm *l) {
    return l->u;
}

size_t koe_lstm_scratch_floats(const koe_lstm *l, int T) {
    /* input projections of both directions + per direction h, c and the 4u gate sums */
    return (size_t)T * 8 * l->u + 2 * (size_t)6 * l->u;
}

typedef struct lstm_job {
    const koe_lstm *l;
    const float *G; /* [T, 8u] */
    float *state;   /* 2 × 6u */
    const int32_t *rep;
    float *y;
    int T, steps, ldy;
} lstm_job;

/* One direction's recurrence: gates = G[token] + W_hh·h, then the cell update. */
static void lstm_dir(void *arg, int dir) {
    const lstm_job *j = arg;
    int u = j->l->u, G4 = 4 * u;
    float *h = j->state + (size_t)dir * 6 * u, *c = h + u, *g = c + u;
    memset(h, 0, 2 * (size_t)u * sizeof(float));
    const float *W = j->l->w_hh[dir];
    int step = dir ? j->steps - 1 : 0, simd = simd_level();
    for (int k = 0; k < j->T; k++) {
        int t = dir ? j->T - 1 - k : k;
        int reps = j->rep ? j->rep[t] : 1;
        const float *gin = j->G + (size_t)t * 8 * u + (size_t)dir * G4;
        for (int r = 0; r < reps; r++) {
            memcpy(g, gin, (size_t)G4 * sizeof(float));
#if KOE_X86
            if (j->l->hh_vw == 16)
                hh_avx512(W, u, G4, h, g);
            else if (j->l->hh_vw == 8)
                hh_avx2(W, u, G4, h, g);
            else
#endif
                cblas_sgemv(CblasRowMajor, CblasNoTrans, G4, u, 1.0f, W, u, h, 1, 1.0f, g, 1);
            float *out = j->y + (size_t)step * j->ldy + (size_t)dir * u;
            if (simd == 2)
                lstm_cell_avx512(g, c, h, out, u);
            else if (simd == 1)
                lstm_cell_avx2(g, c, h, out, u);
            else
                lstm_cell_base(g, c, h, out, u);
            step += dir ? -1 : 1;
        }
    }
}

void koe_lstm_run_repeated(const koe_lstm *l, koe_pool *pool, float *scratch, const float *x,
                           int ldx, int T, const int32_t *rep, float *y, int ldy) {
    if (T <= 0) return;
    float *G = scratch;
    koe_dense_run(&l->proj, pool, x, ldx, T, G, 8 * l->u);
    int steps = 0;
    for (int t = 0; t < T; t++) steps += rep ? rep[t] : 1;
    lstm_job j = {l, G, scratch + (size_t)T * 8 * l->u, rep, y, T, steps, ldy};
    koe_pool_run(pool, 2, lstm_dir, &j); /* the two directions in parallel */
}

void koe_lstm_run(const koe_lstm *l, koe_pool *pool, float *scratch, const float *x, int ldx, int T,
                  float *y, int ldy) {
    koe_lstm_run_repeated(l, pool, scratch, x, ldx, T, NULL, y, ldy);
}
