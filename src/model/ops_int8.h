/* int8 matrix products with int32 accumulation: the GEMM under the convolutions (ops_conv.c)
 * that a model loaded in int8 runs in int8.
 *
 * C[m, n] (+)= sa[m] · sx[n] · Σ_k qa[m, k] · qx[k, n], where
 * - qa (the weights) are rounded once, at load, to integers in [−127, 127] with one scale per
 *   row (per output channel): sa[m] = max_k |A[m, k]| / 127;
 * - qx (the activations) are rounded while B is packed for each product, straight from a
 *   [channels, time] tensor through a koe_bsrc (the implicit im2col of ops_bf16.h), with one
 *   scale per column, computed on the fly (dynamic): sx[n] = max_k |B[k, n]| / 127, the largest
 *   value of that output sample's receptive field over every input channel and tap; the scale
 *   follows the signal's level along time (a quiet stretch is not rounded with the step of the
 *   loudest one), and it depends on the column alone, so results do not depend on tiling or
 *   threads;
 * - the sums are exact in int32 (|Σ| ≤ K · 127² fits for K < 133 000); the only float
 *   arithmetic is the final (float)sum · (sa[m] · sx[n]), added to C per block of K.
 * Since the integer sums are exact, every kernel gives the same bits.
 *
 * Three kernels, chosen at run time (cpuid, KOE_CPU_DISABLE), never at build time:
 * - AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, so the activations are stored
 *   as qx + 128 (u8) and the extra 128 · Σ_k qa[m, k] is subtracted: each accumulator starts at
 *   −128 · Σ qa over the K block (precomputed at load);
 * - AVX2: vpmaddubsw (u8 × s8 pairs summed into s16, saturating) on |qx| and qa · sign(qx): both
 *   ≤ 127 in magnitude, so a pair is at most 2 · 127² = 32258 < 32767 and never saturates; then
 *   vpmaddwd by ones into int32;
 * - portable C (any CPU, arm64 included). */
#ifndef KOE_MODEL_OPS_INT8_H
#define KOE_MODEL_OPS_INT8_H

#include <stddef.h>
#include <stdint.h>

#include "model/ops_bf16.h" /* koe_bsrc, koe_cpu_has */

typedef enum koe_i8_kernel {
    KOE_I8_KERNEL_C = 0,
    KOE_I8_KERNEL_AVX2 = 1,
    KOE_I8_KERNEL_AVX512VNNI = 2
} koe_i8_kernel;

/* The fastest kernel this CPU offers, honouring KOE_CPU_DISABLE ("avx512vnni", "avx2"). */
koe_i8_kernel koe_i8_best_kernel(void);
int koe_i8_kernel_usable(koe_i8_kernel k);
const char *koe_i8_kernel_name(koe_i8_kernel k);

/* A packed int8 matrix: blocks of 8 rows; within a block, for each group of 4 columns, the 8
 * rows' 4 bytes as 32-bit words (low byte = lowest column). Rows and columns past M and K are 0. */
typedef struct koe_qmat {
    int M, K, kq, mblocks, kblocks; /* kq = ceil(K / 4) groups; kblocks = K blocks of the product */
    koe_i8_kernel kern;
    int8_t *p;
    float *scale;  /* [mblocks · 8]: sa per row (0 for rows past M and all-zero rows) */
    int32_t *corr; /* [mblocks][kblocks][8]: 128 · Σ qa over the K block (the VNNI offset) */
} koe_qmat;

/* Quantizes and packs A [M, K] (row stride lda) for kernel kern. 0, or -1 when out of memory. */
int koe_qmat_pack(koe_qmat *m, const float *A, int M, int K, size_t lda, koe_i8_kernel kern);
void koe_qmat_release(koe_qmat *m);
size_t koe_qmat_bytes(const koe_qmat *m);
/* The integer weight qa[m, k] and its row scale (for tests). */
int koe_qmat_get(const koe_qmat *m, int row, int col);

/* The rounding every kernel applies to an activation: clamp(round_even(x · inv), ±127), where
 * inv = 1 / sx[n] in float (0 when sx[n] is 0 or not finite: everything rounds to 0). NaN rounds
 * to 0. */
int koe_i8_quantize(float x, float inv);

/* The column scales koe_gemm_i8 uses: sx[n] = (max over B's rows of |B[k, n]|) / 127.0f (NaNs
 * skipped), n < N (for tests). */
void koe_i8_col_scales(const koe_bsrc *b, int N, float *sx);

/* Scratch (bytes) koe_gemm_i8 needs for products of up to n columns. */
size_t koe_gemm_i8_scratch_bytes(int n);
/* C[M, N] = A·B (accumulate 0) or C += A·B (accumulate 1) as above. B has A->K rows. scratch:
 * koe_gemm_i8_scratch_bytes(N) bytes, 64-byte alignment not required. Single-threaded; callers
 * split the columns over their pool. */
void koe_gemm_i8(const koe_qmat *A, const koe_bsrc *b, int N, float *C, size_t ldc, int accumulate,
                 void *scratch);

#endif
