#include "model/ops_bf16.h"

#include <stdlib.h>
#include <string.h>

/* KOE_PORTABLE_ONLY builds the portable kernel alone, as on arm64 (a compile check on x86). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(KOE_PORTABLE_ONLY)
#include <immintrin.h>
#define KOE_X86 1
#else
#define KOE_X86 0
#endif

/* Micro-tile: 8 rows of A × 32 columns of B (two 16-lane vectors), 16 accumulators. */
#define MR 8
#define NR 32
/* K is walked in blocks of KCP column pairs so that one packed B panel (KCP · 32 words = 16 KB)
 * and the A block (KCP · 8 words = 4 KB) stay in L1 across the micro-kernel's loop; columns in
 * chunks of NCHUNK so that the packed B block (128 KB) stays in L2 for every row block. */
#define KCP    128
#define NCHUNK 256

/* ---- CPU features ------------------------------------------------------------------------ */
static int disabled(const char *feature) {
    const char *env = getenv("KOE_CPU_DISABLE");
    if (!env) return 0;
    size_t n = strlen(feature);
    for (const char *p = env; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len == n && strncmp(p, feature, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int koe_cpu_has(const char *feature) {
#if KOE_X86
    __builtin_cpu_init();
    int has = 0;
    if (!strcmp(feature, "avx2"))
        has = __builtin_cpu_supports("avx2");
    else if (!strcmp(feature, "fma"))
        has = __builtin_cpu_supports("fma");
    else if (!strcmp(feature, "avx512f"))
        has = __builtin_cpu_supports("avx512f");
    else if (!strcmp(feature, "avx512bw"))
        has = __builtin_cpu_supports("avx512bw");
    else if (!strcmp(feature, "avx512vl"))
        has = __builtin_cpu_supports("avx512vl");
    else if (!strcmp(feature, "avx512bf16"))
        has = __builtin_cpu_supports("avx512bf16");
    else if (!strcmp(feature, "avx512vnni"))
        has = __builtin_cpu_supports("avx512vnni");
    return has && !disabled(feature);
#else
    (void)feature;
    (void)disabled;
    return 0;
#endif
}

int koe_bf16_kernel_usable(koe_bf16_kernel k) {
    switch (k) {
    case KOE_BF16_KERNEL_C:
        return 1;
    case KOE_BF16_KERNEL_AVX2:
        return koe_cpu_has("avx2") && koe_cpu_has("fma");
    case KOE_BF16_KERNEL_AVX512BF16:
        return koe_cpu_has("avx512f") && koe_cpu_has("avx512bw") && koe_cpu_has("avx512vl") &&
               koe_cpu_has("avx512bf16");
    }
    return 0;
}

koe_bf16_kernel koe_bf16_best_kernel(void) {
    if (koe_bf16_kernel_usable(KOE_BF16_KERNEL_AVX512BF16)) return KOE_BF16_KERNEL_AVX512BF16;
    if (koe_bf16_kernel_usable(KOE_BF16_KERNEL_AVX2)) return KOE_BF16_KERNEL_AVX2;
    return KOE_BF16_KERNEL_C;
}

const char *koe_bf16_kernel_name(koe_bf16_kernel k) {
    switch (k) {
    case KOE_BF16_KERNEL_C:
        return "portable C";
    case KOE_BF16_KERNEL_AVX2:
        return "AVX2 emulation";
    case KOE_BF16_KERNEL_AVX512BF16:
        return "AVX-512 BF16";
    }
    return "?";
}

/* ---- conversions ------------------------------------------------------------------------- */
static inline __attribute__((always_inline)) uint32_t bits_rne_hi(uint32_t u) {
    /* Round to nearest even on the 16 bits that are dropped. */
    return u + 0x7fffu + ((u >> 16) & 1u);
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)(bits_rne_hi(u) >> 16);
}

uint16_t koe_f32_to_bf16(float f) {
    return f32_to_bf16(f);
}

float koe_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline __attribute__((always_inline)) float lo_f(uint32_t w) {
    uint32_t u = w << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __attribute__((always_inline)) float hi_f(uint32_t w) {
    uint32_t u = w & 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- packing A --------------------------------------------------------------------------- */
int koe_bmat_pack(koe_bmat *m, const float *A, int M, int K, size_t lda, koe_bf16_kernel kern) {
    memset(m, 0, sizeof *m);
    m->M = M;
    m->K = K;
    m->kpairs = (K + 1) / 2;
    m->mblocks = (M + MR - 1) / MR;
    m->kern = kern;
    size_t words = (size_t)m->mblocks * m->kpairs * MR;
    m->p = malloc(words * sizeof(uint32_t) + 1);
    if (!m->p) return -1;
    for (int mb = 0; mb < m->mblocks; mb++)
        for (int p = 0; p < m->kpairs; p++)
            for (int r = 0; r < MR; r++) {
                int row = mb * MR + r, c0 = 2 * p, c1 = 2 * p + 1;
                uint32_t lo = 0, hi = 0;
                if (row < M) {
                    lo = f32_to_bf16(A[(size_t)row * lda + c0]);
                    if (c1 < K) hi = f32_to_bf16(A[(size_t)row * lda + c1]);
                }
                m->p[((size_t)mb * m->kpairs + p) * MR + r] = lo | hi << 16;
            }
    return 0;
}

void koe_bmat_release(koe_bmat *m) {
    free(m->p);
    m->p = NULL;
}

size_t koe_bmat_bytes(const koe_bmat *m) {
    return (size_t)m->mblocks * m->kpairs * MR * sizeof(uint32_t);
}

/* ---- packing B --------------------------------------------------------------------------- */
const float *koe_bsrc_row(const koe_bsrc *b, int r, int n0, int nc, float *tmp) {
    int rows = b->cin * b->taps;
    if (r >= rows) {
        memset(tmp, 0, (size_t)nc * sizeof *tmp);
        return tmp;
    }
    int j = r / b->cin, i = r % b->cin;
    const float *xi = b->x + (size_t)i * b->ld;
    long s0 = (long)b->start + (long)n0 * b->stride + (long)j * b->dil;
    long s1 = s0 + (long)(nc - 1) * b->stride;
    if (b->stride == 1 && s0 >= 0 && s1 < b->len) return xi + s0;
    for (int n = 0; n < nc; n++) {
        long s = s0 + (long)n * b->stride;
        tmp[n] = (s >= 0 && s < b->len) ? xi[s] : 0.0f;
    }
    return tmp;
}

/* out[q][p − p0][n] (q = panel of 32 columns) = bf16(row 2p)[n] | bf16(row 2p + 1)[n] << 16. */
static inline __attribute__((always_inline)) void pack_b(const koe_bsrc *b, int n0, int nc, int p0,
                                                         int np, uint32_t *out) {
    float t0[NCHUNK], t1[NCHUNK];
    int panels = (nc + NR - 1) / NR;
    for (int p = p0; p < p0 + np; p++) {
        const float *r0 = koe_bsrc_row(b, 2 * p, n0, nc, t0);
        const float *r1 = koe_bsrc_row(b, 2 * p + 1, n0, nc, t1);
        for (int q = 0; q < panels; q++) {
            uint32_t *o = out + ((size_t)q * np + (p - p0)) * NR;
            int w = nc - q * NR;
            if (w >= NR) {
                const float *a = r0 + q * NR, *c = r1 + q * NR;
                for (int n = 0; n < NR; n++) {
                    uint32_t ua, uc;
                    memcpy(&ua, a + n, 4);
                    memcpy(&uc, c + n, 4);
                    o[n] = (bits_rne_hi(ua) >> 16) | (bits_rne_hi(uc) & 0xffff0000u);
                }
            } else {
                for (int n = 0; n < NR; n++) {
                    uint32_t ua = 0, uc = 0;
                    if (n < w) {
                        memcpy(&ua, r0 + q * NR + n, 4);
                        memcpy(&uc, r1 + q * NR + n, 4);
                        ua = bits_rne_hi(ua);
                        uc = bits_rne_hi(uc);
                    }
                    o[n] = (ua >> 16) | (uc & 0xffff0000u);
                }
            }
        }
    }
}

typedef void (*pack_fn)(const koe_bsrc *, int, int, int, int, uint32_t *);
typedef void (*mk_fn)(int np, const uint32_t *a, const uint32_t *b, float *c, size_t ldc, int load);

__attribute__((optimize("tree-vectorize"))) static void
pack_b_base(const koe_bsrc *b, int n0, int nc, int p0, int np, uint32_t *out) {
    pack_b(b, n0, nc, p0, np, out);
}

/* Portable micro-kernel: the same arithmetic as the vector ones (bf16 products, float sums). */
__attribute__((optimize("tree-vectorize"))) static void
mk_c(int np, const uint32_t *a, const uint32_t *b, float *c, size_t ldc, int load) {
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int n = 0; n < NR; n++) acc[r][n] = load ? c[(size_t)r * ldc + n] : 0.0f;
    for (int p = 0; p < np; p++, a += MR, b += NR) {
        float b0[NR], b1[NR];
        for (int n = 0; n < NR; n++) {
            b0[n] = lo_f(b[n]);
            b1[n] = hi_f(b[n]);
        }
        for (int r = 0; r < MR; r++) {
            float a0 = lo_f(a[r]), a1 = hi_f(a[r]);
            for (int n = 0; n < NR; n++) acc[r][n] += a0 * b0[n] + a1 * b1[n];
        }
    }
    for (int r = 0; r < MR; r++)
        for (int n = 0; n < NR; n++) c[(size_t)r * ldc + n] = acc[r][n];
}

#if KOE_X86
__attribute__((target("avx2,fma"), optimize("tree-vectorize"))) static void
pack_b_avx2(const koe_bsrc *b, int n0, int nc, int p0, int np, uint32_t *out) {
    pack_b(b, n0, nc, p0, np, out);
}
__attribute__((target("avx512f,avx512bw,avx512vl"), optimize("tree-vectorize"))) static void
pack_b_avx512(const koe_bsrc *b, int n0, int nc, int p0, int np, uint32_t *out) {
    pack_b(b, n0, nc, p0, np, out);
}

/* AVX2 + FMA: bf16 widened by a shift (low half) or a mask (high half); the 8 × 32 tile is done
 * as four passes of 4 rows × 16 columns (8 accumulators) over the L1-resident panels. */
__attribute__((target("avx2,fma"))) static void
mk_avx2(int np, const uint32_t *a, const uint32_t *b, float *c, size_t ldc, int load) {
    const __m256i mask = _mm256_set1_epi32((int)0xffff0000u);
    for (int rh = 0; rh < MR; rh += 4)
        for (int ch = 0; ch < NR; ch += 16) {
            __m256 acc[4][2];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++)
                    acc[r][v] = load ? _mm256_loadu_ps(c + (size_t)(rh + r) * ldc + ch + 8 * v)
                                     : _mm256_setzero_ps();
            const uint32_t *ap = a + rh, *bp = b + ch;
            for (int p = 0; p < np; p++, ap += MR, bp += NR) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)bp);
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(bp + 8));
                __m256 b0l = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
                __m256 b0h = _mm256_castsi256_ps(_mm256_and_si256(w0, mask));
                __m256 b1l = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
                __m256 b1h = _mm256_castsi256_ps(_mm256_and_si256(w1, mask));
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    __m256i aw = _mm256_set1_epi32((int)ap[r]);
                    __m256 al = _mm256_castsi256_ps(_mm256_slli_epi32(aw, 16));
                    __m256 ah = _mm256_castsi256_ps(_mm256_and_si256(aw, mask));
                    acc[r][0] = _mm256_fmadd_ps(al, b0l, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(al, b1l, acc[r][1]);
                    acc[r][0] = _mm256_fmadd_ps(ah, b0h, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(ah, b1h, acc[r][1]);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++)
                    _mm256_storeu_ps(c + (size_t)(rh + r) * ldc + ch + 8 * v, acc[r][v]);
        }
}

/* AVX-512 BF16: one vdpbf16ps does 16 lanes × one column pair; A's pair is broadcast. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
mk_avx512bf16(int np, const uint32_t *a, const uint32_t *b, float *c, size_t ldc, int load) {
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
            acc[r][v] = load ? _mm512_loadu_ps(c + (size_t)r * ldc + 16 * v) : _mm512_setzero_ps();
    for (int p = 0; p < np; p++, a += MR, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)b);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + 16));
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) _mm512_storeu_ps(c + (size_t)r * ldc + 16 * v, acc[r][v]);
}
#endif

/* ---- the product ------------------------------------------------------------------------- */
size_t koe_gemm_bf16_scratch_floats(int n) {
    if (n > NCHUNK) n = NCHUNK;
    if (n < 1) n = 1;
    return (size_t)KCP * NR * ((n + NR - 1) / NR);
}

void koe_gemm_bf16(const koe_bmat *A, const koe_bsrc *b, int N, float *C, size_t ldc,
                   int accumulate, float *scratch) {
    pack_fn pack = pack_b_base;
    mk_fn mk = mk_c;
#if KOE_X86
    if (A->kern == KOE_BF16_KERNEL_AVX512BF16) {
        pack = pack_b_avx512;
        mk = mk_avx512bf16;
    } else if (A->kern == KOE_BF16_KERNEL_AVX2) {
        pack = pack_b_avx2;
        mk = mk_avx2;
    }
#endif
    uint32_t *bp = (uint32_t *)scratch;
    for (int n0 = 0; n0 < N; n0 += NCHUNK) {
        int nc = N - n0 < NCHUNK ? N - n0 : NCHUNK, panels = (nc + NR - 1) / NR;
        for (int p0 = 0; p0 < A->kpairs; p0 += KCP) {
            int np = A->kpairs - p0 < KCP ? A->kpairs - p0 : KCP;
            int load = accumulate || p0 > 0;
            pack(b, n0, nc, p0, np, bp);
            for (int mb = 0; mb < A->mblocks; mb++) {
                const uint32_t *ap = A->p + ((size_t)mb * A->kpairs + p0) * MR;
                int mr = A->M - mb * MR < MR ? A->M - mb * MR : MR;
                for (int q = 0; q < panels; q++) {
                    int nr = nc - q * NR < NR ? nc - q * NR : NR;
                    float *cc = C + (size_t)mb * MR * ldc + n0 + q * NR;
                    const uint32_t *bq = bp + (size_t)q * np * NR;
                    if (mr == MR && nr == NR) {
                        mk(np, ap, bq, cc, ldc, load);
                        continue;
                    }
                    /* Edge tile: through a full-size temporary. */
                    float tmp[MR * NR];
                    for (int r = 0; r < MR; r++)
                        for (int n = 0; n < NR; n++)
                            tmp[r * NR + n] =
                                (load && r < mr && n < nr) ? cc[(size_t)r * ldc + n] : 0.0f;
                    mk(np, ap, bq, tmp, NR, 1);
                    for (int r = 0; r < mr; r++)
                        memcpy(cc + (size_t)r * ldc, tmp + r * NR, (size_t)nr * sizeof(float));
                }
            }
        }
    }
}
