/* bf16 matrix products with float32 accumulation: the reduced-precision GEMM under the
 * convolutions (ops_conv.c) when a model is loaded in bf16.
 *
 * C[M, N] (+)= A[M, K] · B[K, N]. A (the weights) is converted to bf16 once and packed; B (the
 * activations) is float32 and is rounded to bf16 while it is packed for each product, straight
 * from a [channels, time] tensor with the taps, dilation and stride of a convolution applied on
 * the fly (an implicit im2col), so no float im2col copy is made. Products of two bf16 numbers are
 * exact in float32 and every sum is float32, so the only rounding is that of the two operands
 * (relative 2^-8 each at most).
 *
 * Three kernels compute the same thing and are chosen at run time, never at build time:
 * AVX-512 BF16 (vdpbf16ps), AVX2 + FMA (bf16 widened to float by a shift), and portable C (any
 * CPU, arm64 included). */
#ifndef KOE_MODEL_OPS_BF16_H
#define KOE_MODEL_OPS_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef enum koe_bf16_kernel {
    KOE_BF16_KERNEL_C = 0,
    KOE_BF16_KERNEL_AVX2 = 1,
    KOE_BF16_KERNEL_AVX512BF16 = 2
} koe_bf16_kernel;

/* Whether the CPU (and the OS) support a feature: "avx2", "fma", "avx512f", "avx512bw",
 * "avx512vl", "avx512bf16", "avx512vnni". A feature named in the environment variable
 * KOE_CPU_DISABLE (comma-separated, e.g. "avx512bf16,avx512vnni") is reported absent, so that
 * tests and users can exercise the paths of an older CPU. Read on every call (no cached state);
 * callers ask at load time, not in inner loops. Always 0 on non-x86 builds. */
int koe_cpu_has(const char *feature);

/* The fastest kernel this CPU offers, honouring KOE_CPU_DISABLE. */
koe_bf16_kernel koe_bf16_best_kernel(void);
/* Whether kernel k can run on this CPU (KOE_CPU_DISABLE honoured). */
int koe_bf16_kernel_usable(koe_bf16_kernel k);
const char *koe_bf16_kernel_name(koe_bf16_kernel k);

/* float → bf16, rounded to nearest even (NaN stays NaN). */
uint16_t koe_f32_to_bf16(float f);
float koe_bf16_to_f32(uint16_t h);

/* A packed bf16 matrix. Layout: blocks of 8 rows; within a block, for each pair of columns
 * (2p, 2p + 1) the 8 rows' pairs as 32-bit words (low half column 2p). Rows and columns past
 * M and K are zero. */
typedef struct koe_bmat {
    int M, K, kpairs, mblocks;
    koe_bf16_kernel kern;
    uint32_t *p;
} koe_bmat;

/* Packs A [M, K] (row stride lda) for kernel kern. Returns 0, or -1 when out of memory. */
int koe_bmat_pack(koe_bmat *m, const float *A, int M, int K, size_t lda, koe_bf16_kernel kern);
void koe_bmat_release(koe_bmat *m);
size_t koe_bmat_bytes(const koe_bmat *m);

/* Where B's rows come from: row r = j·cin + i (tap j < taps, channel i < cin) of column n reads
 * x[i·ld + start + n·stride + j·dil], or 0 when that index is outside [0, len). A plain
 * row-major [K, N] matrix is cin = K, taps 1, stride 1, start 0, len ≥ N. */
typedef struct koe_bsrc {
    const float *x;
    size_t ld;
    int len, cin, taps, dil, stride, start;
} koe_bsrc;

/* Row r of B over columns [n0, n0 + nc) (nc ≤ 256): a pointer into x when the row is contiguous
 * and wholly inside, else gathered (zeros outside, and for r ≥ cin · taps) into tmp. */
const float *koe_bsrc_row(const koe_bsrc *b, int r, int n0, int nc, float *tmp);

/* Scratch (floats) koe_gemm_bf16 needs for products of up to n columns. */
size_t koe_gemm_bf16_scratch_floats(int n);
/* C[M, N] = A·B (accumulate 0) or C += A·B (accumulate 1); C's row stride ldc. B has A->K rows
 * (= b->cin · b->taps). scratch: koe_gemm_bf16_scratch_floats(N) floats, 64-byte alignment not
 * required. Single-threaded; callers split the columns over their pool. */
void koe_gemm_bf16(const koe_bmat *A, const koe_bsrc *b, int N, float *C, size_t ldc,
                   int accumulate, float *scratch);

#endif
