#include "model/ops_int8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* KOE_PORTABLE_ONLY builds the portable kernel alone, as on arm64 (a compile check on x86). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(KOE_PORTABLE_ONLY)
#include <immintrin.h>
#define KOE_X86 1
#else
#define KOE_X86 0
#endif

/* B's words are built with shifts (byte i of a word = column 4g + i) and the portable kernel
 * reads them back as bytes next to A's bytes: that needs little-endian words (x86-64, arm64). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ops_int8.c assumes little-endian byte order"
#endif

/* Micro-tile: 8 rows of A × 32 columns of B (two 16-lane vectors), as in ops_bf16.c. K is walked
 * in blocks of KCQ groups of 4 (512 values): the packed B panel (KCQ · 32 words = 16 KB) and the
 * A block (4 KB) stay in L1 across the micro-kernel's loop; columns in chunks of NCHUNK so that
 * the packed B block (128 KB) stays in L2 for every row block. */
#define MR     8
#define NR     32
#define KCQ    128
#define NCHUNK 256

/* ---- dispatch ---------------------------------------------------------------------------- */
int koe_i8_kernel_usable(koe_i8_kernel k) {
    switch (k) {
    case KOE_I8_KERNEL_C:
        return 1;
    case KOE_I8_KERNEL_AVX2:
        return koe_cpu_has("avx2");
    case KOE_I8_KERNEL_AVX512VNNI:
        return koe_cpu_has("avx512f") && koe_cpu_has("avx512bw") && koe_cpu_has("avx512vl") &&
               koe_cpu_has("avx512vnni");
    }
    return 0;
}

koe_i8_kernel koe_i8_best_kernel(void) {
    if (koe_i8_kernel_usable(KOE_I8_KERNEL_AVX512VNNI)) return KOE_I8_KERNEL_AVX512VNNI;
    if (koe_i8_kernel_usable(KOE_I8_KERNEL_AVX2)) return KOE_I8_KERNEL_AVX2;
    return KOE_I8_KERNEL_C;
}

const char *koe_i8_kernel_name(koe_i8_kernel k) {
    switch (k) {
    case KOE_I8_KERNEL_C:
        return "portable C";
    case KOE_I8_KERNEL_AVX2:
        return "AVX2 (vpmaddubsw)";
    case KOE_I8_KERNEL_AVX512VNNI:
        return "AVX-512 VNNI";
    }
    return "?";
}

/* ---- quantization ------------------------------------------------------------------------ */
/* clamp(round_even(x · inv), ±127) as the low byte of a word: adding 1.5 · 2^23 puts the rounded
 * integer in the low mantissa bits (exact for |v| ≤ 2^22), and 0x4B400000's low byte is 0, so the
 * low byte is the two's-complement s8. No float → int conversion (no undefined behaviour on NaN,
 * and it vectorizes). */
static inline __attribute__((always_inline)) uint32_t qbyte(float x, float inv) {
    float v = x * inv;
    v = v == v ? v : 0.0f;
    v = v < 127.0f ? v : 127.0f;
    v = v > -127.0f ? v : -127.0f;
    float r = v + 12582912.0f;
    uint32_t u;
    memcpy(&u, &r, 4);
    return u & 0xffu;
}

int koe_i8_quantize(float x, float inv) {
    return (int)(int8_t)(uint8_t)qbyte(x, inv);
}

/* ---- packing A --------------------------------------------------------------------------- */
int koe_qmat_pack(koe_qmat *m, const float *A, int M, int K, size_t lda, koe_i8_kernel kern) {
    memset(m, 0, sizeof *m);
    m->M = M;
    m->K = K;
    m->kq = (K + 3) / 4;
    m->mblocks = (M + MR - 1) / MR;
    m->kblocks = (m->kq + KCQ - 1) / KCQ;
    m->kern = kern;
    size_t bytes = (size_t)m->mblocks * m->kq * MR * 4;
    m->p = malloc(bytes + 1);
    m->scale = calloc((size_t)m->mblocks * MR, sizeof *m->scale);
    m->corr = calloc((size_t)m->mblocks * m->kblocks * MR + 1, sizeof *m->corr);
    if (!m->p || !m->scale || !m->corr) {
        koe_qmat_release(m);
        return -1;
    }
    memset(m->p, 0, bytes);
    for (int row = 0; row < M; row++) {
        const float *a = A + (size_t)row * lda;
        double mx = 0;
        for (int k = 0; k < K; k++) mx = fabs(a[k]) > mx ? fabs(a[k]) : mx;
        if (!(mx > 0) || !isfinite(mx)) continue; /* a zero (or broken) row stays 0 */
        double inv = 127.0 / mx;
        m->scale[row] = (float)(mx / 127.0);
        int mb = row / MR, r = row % MR;
        int8_t *dst = m->p + ((size_t)mb * m->kq * MR + r) * 4;
        int32_t *corr = m->corr + (size_t)mb * m->kblocks * MR + r;
        for (int g = 0; g < m->kq; g++) {
            int sum = 0;
            for (int i = 0; i < 4; i++) {
                int k = 4 * g + i, q = 0;
                if (k < K) {
                    /* round to nearest even by adding 1.5 · 2^52 (as nearbyint, without the
                     * libm call: a full-size model quantizes ~10^8 weights at load) */
                    double v = a[k] * inv;
                    v = (v + 0x1.8p52) - 0x1.8p52;
                    q = (int)(v > 127 ? 127 : v < -127 ? -127 : v);
                }
                dst[(size_t)g * MR * 4 + i] = (int8_t)q;
                sum += q;
            }
            corr[(size_t)(g / KCQ) * MR] += 128 * sum;
        }
    }
    return 0;
}

void koe_qmat_release(koe_qmat *m) {
    free(m->p);
    free(m->scale);
    free(m->corr);
    m->p = NULL;
    m->scale = NULL;
    m->corr = NULL;
}

size_t koe_qmat_bytes(const koe_qmat *m) {
    return (size_t)m->mblocks * m->kq * MR * 4 + (size_t)m->mblocks * MR * sizeof(float) +
           (size_t)m->mblocks * m->kblocks * MR * sizeof(int32_t);
}

int koe_qmat_get(const koe_qmat *m, int row, int col) {
    int mb = row / MR, r = row % MR;
    return m->p[(((size_t)mb * m->kq + col / 4) * MR + r) * 4 + col % 4];
}

/* ---- packing B --------------------------------------------------------------------------- */
/* out[q][g − g0][n] (q = panel of 32 columns) = the quantized rows 4g .. 4g + 3 at column n, one
 * byte each (low byte row 4g), XORed with xr (0x80808080 turns s8 into u8 = s8 + 128). */
static inline __attribute__((always_inline)) void pack_b(const koe_bsrc *b, const float *inv,
                                                         uint32_t xr, int n0, int nc, int g0,
                                                         int ng, uint32_t *out) {
    float t0[NCHUNK], t1[NCHUNK], t2[NCHUNK], t3[NCHUNK];
    int panels = (nc + NR - 1) / NR;
    for (int g = g0; g < g0 + ng; g++) {
        const float *r0 = koe_bsrc_row(b, 4 * g, n0, nc, t0);
        const float *r1 = koe_bsrc_row(b, 4 * g + 1, n0, nc, t1);
        const float *r2 = koe_bsrc_row(b, 4 * g + 2, n0, nc, t2);
        const float *r3 = koe_bsrc_row(b, 4 * g + 3, n0, nc, t3);
        for (int q = 0; q < panels; q++) {
            uint32_t *o = out + ((size_t)q * ng + (g - g0)) * NR;
            int w = nc - q * NR, c = q * NR;
            if (w >= NR) {
                for (int n = 0; n < NR; n++)
                    o[n] =
                        (qbyte(r0[c + n], inv[c + n]) | qbyte(r1[c + n], inv[c + n]) << 8 |
                         qbyte(r2[c + n], inv[c + n]) << 16 | qbyte(r3[c + n], inv[c + n]) << 24) ^
                        xr;
            } else {
                for (int n = 0; n < NR; n++)
                    o[n] = n < w
                               ? (qbyte(r0[c + n], inv[c + n]) | qbyte(r1[c + n], inv[c + n]) << 8 |
                                  qbyte(r2[c + n], inv[c + n]) << 16 |
                                  qbyte(r3[c + n], inv[c + n]) << 24) ^
                                     xr
                               : xr;
            }
        }
    }
}

typedef void (*pack_fn)(const koe_bsrc *, const float *, uint32_t, int, int, int, int, uint32_t *);
/* One micro-tile: t[r][n] = Σ over ng groups of A's 8 rows by B's 32 columns, exact int32. */
typedef void (*mk_fn)(int ng, const uint32_t *a, const uint32_t *b, const int32_t *corr,
                      int32_t *t);

__attribute__((optimize("tree-vectorize"))) static void pack_b_base(const koe_bsrc *b,
                                                                    const float *inv, uint32_t xr,
                                                                    int n0, int nc, int g0, int ng,
                                                                    uint32_t *out) {
    pack_b(b, inv, xr, n0, nc, g0, ng, out);
}

/* Portable: s8 × s8 in int32 (B stored without the +128 offset, so corr is not needed). */
__attribute__((optimize("tree-vectorize"))) static void
mk_c(int ng, const uint32_t *a, const uint32_t *b, const int32_t *corr, int32_t *t) {
    (void)corr;
    int32_t acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int g = 0; g < ng; g++, a += MR, b += NR) {
        const int8_t *ab = (const int8_t *)a, *bb = (const int8_t *)b;
        for (int r = 0; r < MR; r++) {
            int a0 = ab[4 * r], a1 = ab[4 * r + 1], a2 = ab[4 * r + 2], a3 = ab[4 * r + 3];
            for (int n = 0; n < NR; n++)
                acc[r][n] +=
                    a0 * bb[4 * n] + a1 * bb[4 * n + 1] + a2 * bb[4 * n + 2] + a3 * bb[4 * n + 3];
        }
    }
    memcpy(t, acc, sizeof acc);
}

#if KOE_X86
__attribute__((target("avx2"), optimize("tree-vectorize"))) static void
pack_b_avx2(const koe_bsrc *b, const float *inv, uint32_t xr, int n0, int nc, int g0, int ng,
            uint32_t *out) {
    pack_b(b, inv, xr, n0, nc, g0, ng, out);
}
__attribute__((target("avx512f,avx512bw,avx512vl"), optimize("tree-vectorize"))) static void
pack_b_avx512(const koe_bsrc *b, const float *inv, uint32_t xr, int n0, int nc, int g0, int ng,
              uint32_t *out) {
    pack_b(b, inv, xr, n0, nc, g0, ng, out);
}

/* AVX2: |x| (u8) by w · sign(x) (s8) with vpmaddubsw: x · w = |x| · (w · sign(x)), and with both
 * magnitudes ≤ 127 a pair sums to at most 32258, below the s16 saturation; vpmaddwd by ones
 * widens the pairs into int32. The 8 × 32 tile as four passes of 4 rows × 16 columns. */
__attribute__((target("avx2"))) static void mk_avx2(int ng, const uint32_t *a, const uint32_t *b,
                                                    const int32_t *corr, int32_t *t) {
    (void)corr;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int rh = 0; rh < MR; rh += 4)
        for (int ch = 0; ch < NR; ch += 16) {
            __m256i acc[4][2];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
            const uint32_t *ap = a + rh, *bp = b + ch;
            for (int g = 0; g < ng; g++, ap += MR, bp += NR) {
                __m256i x0 = _mm256_loadu_si256((const __m256i *)bp);
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(bp + 8));
                __m256i ax0 = _mm256_abs_epi8(x0), ax1 = _mm256_abs_epi8(x1);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    __m256i w = _mm256_set1_epi32((int)ap[r]);
                    __m256i p0 = _mm256_maddubs_epi16(ax0, _mm256_sign_epi8(w, x0));
                    __m256i p1 = _mm256_maddubs_epi16(ax1, _mm256_sign_epi8(w, x1));
                    acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
                    acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                _mm256_storeu_si256((__m256i *)(t + (rh + r) * NR + ch), acc[r][0]);
                _mm256_storeu_si256((__m256i *)(t + (rh + r) * NR + ch + 8), acc[r][1]);
            }
        }
}

/* AVX-512 VNNI: one vpdpbusd does 16 columns × 4 products; A's 4 bytes of a row are broadcast.
 * B holds x + 128 (u8), so each accumulator starts at −128 · Σ w over the block. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static void
mk_vnni(int ng, const uint32_t *a, const uint32_t *b, const int32_t *corr, int32_t *t) {
    __m512i acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_set1_epi32(-corr[r]);
    for (int g = 0; g < ng; g++, a += MR, b += NR) {
        __m512i b0 = _mm512_loadu_si512((const void *)b);
        __m512i b1 = _mm512_loadu_si512((const void *)(b + 16));
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512i ar = _mm512_set1_epi32((int)a[r]);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, ar);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, ar);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_si512((void *)(t + r * NR), acc[r][0]);
        _mm512_storeu_si512((void *)(t + r * NR + 16), acc[r][1]);
    }
}
#endif

/* C = (load ? C : 0) + (float)t · (sa[r] · sx[n]): the same float operations for every kernel. */
__attribute__((optimize("tree-vectorize"))) static void epilogue(const int32_t *t, float *c,
                                                                 size_t ldc, int mr, int nr,
                                                                 const float *sa, const float *sx,
                                                                 int load) {
    for (int r = 0; r < mr; r++) {
        float *cr = c + (size_t)r * ldc, s = sa[r];
        const int32_t *tr = t + r * NR;
        if (load)
            for (int n = 0; n < nr; n++) cr[n] = cr[n] + (float)tr[n] * (s * sx[n]);
        else
            for (int n = 0; n < nr; n++) cr[n] = (float)tr[n] * (s * sx[n]);
    }
}

/* ---- column scales ----------------------------------------------------------------------- */
/* Time samples whose channel maxima are kept on the stack: a column chunk's window,
 * (nc − 1)·stride + (taps − 1)·dil + 1, is at most 1·256 + 10·5 (dilated k 11) or
 * 127·6 + 12 (noise_convs.0, stride 6, k 12, in 128-column tiles) for Kokoro's layers. */
#define COLWIN 2048

static inline __attribute__((always_inline)) void col_scales_k(const koe_bsrc *b, int n0, int nc,
                                                               float *sx) {
    long s0 = (long)b->start + (long)n0 * b->stride;
    long span = (long)(nc - 1) * b->stride + (long)(b->taps - 1) * b->dil + 1;
    if (span <= COLWIN) {
        /* m[u] = max over channels of |x[i, s0 + u]| (0 outside x), then each column's max
         * over its taps */
        float m[COLWIN];
        long a = s0 < 0 ? -s0 : 0, e = s0 + span > b->len ? b->len - s0 : span;
        for (long u = 0; u < span; u++) m[u] = 0;
        for (int i = 0; i < b->cin; i++) {
            const float *row = b->x + (size_t)i * b->ld + s0;
            for (long u = a; u < e; u++) {
                float v = fabsf(row[u]);
                m[u] = v > m[u] ? v : m[u]; /* a NaN compares false: skipped */
            }
        }
        for (int n = 0; n < nc; n++) {
            float mx = 0;
            for (int j = 0; j < b->taps; j++) {
                float v = m[(long)n * b->stride + (long)j * b->dil];
                mx = v > mx ? v : mx;
            }
            sx[n] = mx / 127.0f;
        }
        return;
    }
    for (int n = 0; n < nc; n++) { /* any other shape: column by column */
        float mx = 0;
        for (int j = 0; j < b->taps; j++) {
            long t = s0 + (long)n * b->stride + (long)j * b->dil;
            if (t < 0 || t >= b->len) continue;
            for (int i = 0; i < b->cin; i++) {
                float v = fabsf(b->x[(size_t)i * b->ld + t]);
                mx = v > mx ? v : mx;
            }
        }
        sx[n] = mx / 127.0f;
    }
}

typedef void (*cols_fn)(const koe_bsrc *, int, int, float *);
__attribute__((optimize("tree-vectorize"))) static void col_scales_base(const koe_bsrc *b, int n0,
                                                                        int nc, float *sx) {
    col_scales_k(b, n0, nc, sx);
}
#if KOE_X86
__attribute__((target("avx2"), optimize("tree-vectorize"))) static void
col_scales_avx2(const koe_bsrc *b, int n0, int nc, float *sx) {
    col_scales_k(b, n0, nc, sx);
}
__attribute__((target("avx512f"), optimize("tree-vectorize"))) static void
col_scales_avx512(const koe_bsrc *b, int n0, int nc, float *sx) {
    col_scales_k(b, n0, nc, sx);
}
#endif

void koe_i8_col_scales(const koe_bsrc *b, int N, float *sx) {
    for (int n0 = 0; n0 < N; n0 += NCHUNK)
        col_scales_base(b, n0, N - n0 < NCHUNK ? N - n0 : NCHUNK, sx + n0);
}

/* ---- the product ------------------------------------------------------------------------- */
size_t koe_gemm_i8_scratch_bytes(int n) {
    if (n > NCHUNK) n = NCHUNK;
    if (n < 1) n = 1;
    return (size_t)KCQ * NR * 4 * ((n + NR - 1) / NR);
}

void koe_gemm_i8(const koe_qmat *A, const koe_bsrc *b, int N, float *C, size_t ldc, int accumulate,
                 void *scratch) {
    pack_fn pack = pack_b_base;
    mk_fn mk = mk_c;
    cols_fn cols = col_scales_base;
    uint32_t xr = 0;
#if KOE_X86
    if (A->kern == KOE_I8_KERNEL_AVX512VNNI) {
        pack = pack_b_avx512;
        mk = mk_vnni;
        cols = col_scales_avx512;
        xr = 0x80808080u;
    } else if (A->kern == KOE_I8_KERNEL_AVX2) {
        pack = pack_b_avx2;
        mk = mk_avx2;
        cols = col_scales_avx2;
    }
#endif
    uint32_t *bp = scratch;
    const uint32_t *ap0 = (const uint32_t *)(const void *)A->p;
    float sx[NCHUNK], inv[NCHUNK];
    for (int n0 = 0; n0 < N; n0 += NCHUNK) {
        int nc = N - n0 < NCHUNK ? N - n0 : NCHUNK, panels = (nc + NR - 1) / NR;
        cols(b, n0, nc, sx);
        for (int n = 0; n < nc; n++) inv[n] = sx[n] > 0 && isfinite(sx[n]) ? 1.0f / sx[n] : 0.0f;
        for (int n = nc; n < panels * NR; n++) sx[n] = inv[n] = 0.0f;
        for (int kb = 0; kb < A->kblocks; kb++) {
            int g0 = kb * KCQ, ng = A->kq - g0 < KCQ ? A->kq - g0 : KCQ;
            int load = accumulate || kb > 0;
            pack(b, inv, xr, n0, nc, g0, ng, bp);
            for (int mb = 0; mb < A->mblocks; mb++) {
                const uint32_t *ap = ap0 + ((size_t)mb * A->kq + g0) * MR;
                const int32_t *corr = A->corr + ((size_t)mb * A->kblocks + kb) * MR;
                int mr = A->M - mb * MR < MR ? A->M - mb * MR : MR;
                for (int q = 0; q < panels; q++) {
                    int nr = nc - q * NR < NR ? nc - q * NR : NR;
                    int32_t t[MR * NR];
                    mk(ng, ap, bp + (size_t)q * ng * NR, corr, t);
                    epilogue(t, C + (size_t)mb * MR * ldc + n0 + q * NR, ldc, mr, nr,
                             A->scale + mb * MR, sx + q * NR, load);
                }
            }
        }
    }
}
