#include "model/ops_conv.h"

#include "model/ops_bf16.h"
#include "model/ops_int8.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The x86 variants of the elementwise kernels (target attributes, chosen at run time) only where
 * they can exist; elsewhere (arm64) the portable ones. KOE_PORTABLE_ONLY builds that on x86. */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(KOE_PORTABLE_ONLY)
#define KOE_X86 1
#else
#define KOE_X86 0
#endif

/* Time tiles keep a task's slice of input and output in L2 while every tap's sgemm reuses it. */
#define TILE_MAX 256
#define TILE_MIN 32

void koe_weight_norm(const float *g, const float *v, int n0, size_t slice, float *out) {
    for (int i = 0; i < n0; i++) {
        const float *vi = v + (size_t)i * slice;
        double ss = 0;
        for (size_t j = 0; j < slice; j++) ss += (double)vi[j] * vi[j];
        /* A zero slice stays zero instead of becoming NaN. */
        double scale = ss > 0 ? g[i] / sqrt(ss) : 0.0;
        float *oi = out + (size_t)i * slice;
        for (size_t j = 0; j < slice; j++) oi[j] = (float)(vi[j] * scale);
    }
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) {
    openblas_set_num_threads(1);
}
void koe_blas_single_thread(void) {
    pthread_once(&blas_once, blas_init);
}

static int n_workers(koe_pool *pool) {
    return pool ? koe_pool_threads(pool) : 1;
}

/* Runs fn(arg, slot) once per worker slot; each slot pulls work items itself from an atomic
 * counter, so per-slot scratch is enough and the load still balances. */
static void run_slots(koe_pool *pool, int slots, koe_pool_fn fn, void *arg) {
    if (!pool || slots <= 1) {
        for (int s = 0; s < slots; s++) fn(arg, s);
        return;
    }
    koe_pool_run(pool, slots, fn, arg);
}

static int pick_tile(int t_out, int workers) {
    /* At least two tiles per worker when the length allows it, so that no worker idles. */
    int want = (t_out + 2 * workers - 1) / (2 * workers);
    if (want > TILE_MAX) want = TILE_MAX;
    if (want < TILE_MIN) want = TILE_MIN;
    return want;
}

/* ---- Conv1d ------------------------------------------------------------------------------ */
struct koe_conv {
    koe_conv_desc d;
    int cig, cog; /* channels per group */
    /* stride 1: [groups][k][cog][cig] (one [cout, cin] matrix per tap);
     * stride > 1: PyTorch layout [groups][cog][cig·k] (an im2col tile is multiplied at once) */
    float *w;
    float *bias;
    /* Frequency-domain form (see fd_*) or NULL: A_f = [Hr_f | −Hi_f], [FD_NF][cout][2·cin]. */
    float *fd_a;
    /* Reduced precision (groups 1 only; lowp set, int8 says which): w and fd_a are converted and
     * freed. wb / wq: [cout][k·cin], column j·cin + i = tap j of input i (one product per tile,
     * taps packed on the fly); fd_b / fd_q: the 3·FD_NF matrices of the frequency-domain path. */
    int lowp, int8, fd;
    koe_bmat wb;
    koe_bmat *fd_b;
    koe_qmat wq;
    koe_qmat *fd_q;
};

static void desc_defaults(koe_conv_desc *d) {
    if (d->stride == 0) d->stride = 1;
    if (d->dil == 0) d->dil = 1;
    if (d->groups == 0) d->groups = 1;
}

/* Frequency-domain path for the long dilated stride-1 convolutions (k 7 and 11 in the
 * generator). With pad a multiple of the dilation d, output sample r + n·d only reads input
 * samples of the same residue r mod d, so the convolution splits into d undilated ones over the
 * polyphase sequences. Each of those is done by overlap-save with N = 32-point DFTs: a block of
 * FD_B = N − k + 1 outputs reads N inputs; per frequency the channel mixing is a complex
 * [cout × cin] matrix product. DFTs are themselves small GEMMs, so everything runs in sgemm:
 * 17 bins × 4 real multiplies instead of k per (output, input channel) pair, per FD_B outputs:
 * 2.6·C² instead of 7·C² per sample for k 7, 3.1·C² instead of 11·C² for k 11. The transformed
 * weights take 34·cin·cout floats, so only narrow layers use it (see fd_eligible). */
#define FD_N    32
#define FD_NF   (FD_N / 2 + 1)
#define FD_NB   64 /* blocks per task */
#define FD_MAXW (1 << 20)

/* In bf16 the transformed weights take 2 bytes a value, and with the time-domain products twice
 * as fast the DFTs' overhead matters less: the 256-channel k 7 / k 11 layers go through it too. */
#define FD_MAXW_BF16 (1 << 22)

static int fd_eligible(const koe_conv_desc *d) {
    return d->stride == 1 && d->groups == 1 && d->k >= 5 && d->k <= FD_N / 2 &&
           d->pad % d->dil == 0 &&
           (size_t)2 * FD_NF * d->cin * d->cout <= (d->bf16 || d->int8 ? FD_MAXW_BF16 : FD_MAXW);
}

/* Forward DFT rows (cos, −sin, −cos per bin, so that [Ure; Uim] and [Uim; −Ure] are both
 * contiguous) and the inverse real DFT, transposed: [2f + part][s]; computed once. */
static float fd_fwd[3 * FD_NF][FD_N], fd_inv_t[2 * FD_NF][FD_N];
/* bf16 form: only (cos, −sin) per bin; the weights carry both mixings (see conv_to_bf16). */
static float fd_fwd2[2 * FD_NF][FD_N];
static pthread_once_t fd_once = PTHREAD_ONCE_INIT;
static void fd_init(void) {
    for (int f = 0; f < FD_NF; f++)
        for (int m = 0; m < FD_N; m++) {
            double a = 2 * M_PI * f * m / FD_N;
            fd_fwd[3 * f][m] = (float)cos(a);
            fd_fwd[3 * f + 1][m] = (float)-sin(a);
            fd_fwd[3 * f + 2][m] = (float)-cos(a);
            fd_fwd2[2 * f][m] = (float)cos(a);
            fd_fwd2[2 * f + 1][m] = (float)-sin(a);
            double cf = (f == 0 || f == FD_N / 2) ? 1.0 : 2.0;
            fd_inv_t[2 * f][m] = (float)(cf * cos(a) / FD_N);
            fd_inv_t[2 * f + 1][m] = (float)(-cf * sin(a) / FD_N);
        }
}

/* A_f[o] = [Re | −Im] of conj(DFT(w[o, i, ·])) — a correlation, as Conv1d is. */
static int fd_pack(koe_conv *c, const float *weight) {
    const koe_conv_desc *d = &c->d;
    size_t row = 2 * (size_t)d->cin;
    c->fd_a = malloc(sizeof(float) * FD_NF * d->cout * row);
    if (!c->fd_a) return -1;
    /* Every (o, i) row of k taps against the k × 2·FD_NF table of cos and sin at once: one
     * dgemm (the per-bin loops took ~0.3 s of a bf16 model load). */
    size_t rows = (size_t)d->cout * d->cin;
    double *cs = malloc(sizeof(double) * d->k * 2 * FD_NF),
           *wd = malloc(sizeof(double) * rows * d->k);
    double *out = malloc(sizeof(double) * rows * 2 * FD_NF);
    if (!cs || !wd || !out) {
        free(cs);
        free(wd);
        free(out);
        return -1;
    }
    for (int j = 0; j < d->k; j++)
        for (int f = 0; f < FD_NF; f++) {
            cs[(size_t)j * 2 * FD_NF + 2 * f] = cos(2 * M_PI * f * j / FD_N);
            cs[(size_t)j * 2 * FD_NF + 2 * f + 1] = sin(2 * M_PI * f * j / FD_N);
        }
    for (size_t e = 0; e < rows * d->k; e++) wd[e] = weight[e];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, 2 * FD_NF, d->k, 1.0, wd,
                d->k, cs, 2 * FD_NF, 0.0, out, 2 * FD_NF);
    for (int o = 0; o < d->cout; o++) /* one channel's results (cin × 34) stay in cache */
        for (int f = 0; f < FD_NF; f++) {
            float *a = c->fd_a + ((size_t)f * d->cout + o) * row;
            const double *ro = out + (size_t)o * d->cin * 2 * FD_NF + 2 * f;
            for (int i = 0; i < d->cin; i++) {
                a[i] = (float)ro[(size_t)i * 2 * FD_NF];
                a[d->cin + i] = (float)-ro[(size_t)i * 2 * FD_NF + 1];
            }
        }
    free(cs);
    free(wd);
    free(out);
    return 0;
}

static size_t fd_slot_floats(const koe_conv *c) {
    size_t B = (size_t)FD_N * c->d.cin * FD_NB, V = (size_t)3 * FD_NF * c->d.cin * FD_NB;
    size_t Z = (size_t)2 * FD_NF * c->d.cout * FD_NB, O = (size_t)FD_N * c->d.cout * FD_NB;
    /* U is [cin][FD_NB][FD_N] and O is [cout][FD_NB][FD_B ≤ FD_N]: same sizes as above */
    return B + V + Z + O;
}

/* Packs A [M, K] in the layer's reduced precision: bf16 into *b, or int8 into *q. */
static int pack_lowp(const koe_conv *c, koe_bmat *b, koe_qmat *q, const float *A, int M, int K) {
    if (c->int8) return koe_qmat_pack(q, A, M, K, (size_t)K, koe_i8_best_kernel());
    return koe_bmat_pack(b, A, M, K, (size_t)K, koe_bf16_best_kernel());
}

/* Converts the packed float weights to bf16 or int8 (per output channel scales) and frees them. */
static int conv_to_lowp(koe_conv *c, const float *weight) {
    const koe_conv_desc *d = &c->d;
    c->lowp = 1;
    c->int8 = d->int8;
    if (c->fd) {
        /* bf16: per bin the complex product (Hr + i·Hi)(Vr + i·Vi) with three real products
         * (P1 = Hr·Vr, P2 = Hi·Vi, P3 = (Hr + Hi)(Vr + Vi); Re = P1 − P2, Im = P3 − P1 − P2):
         * 3·cout·cin multiplies per column instead of 4, and 3 instead of 4 stored matrices.
         * fd_b[3f + 0..2] = Hr, Hi, Hr + Hi, each [cout, cin].
         * int8: Im = P3 − P1 − P2 cancels large terms, and with int8's coarser roundings that
         * tripled the error of these layers; the four-product form costs a third more
         * multiplies, cheap in int8, and needs no combining pass: one product per bin,
         * fd_q[f] = [Hr | −Hi ; Hi | Hr] ([2·cout, 2·cin]) times [Vr; Vi] gives [Re; Im]. */
        size_t row = 2 * (size_t)d->cin, n = (size_t)d->cout * d->cin;
        if (c->int8)
            c->fd_q = calloc(FD_NF, sizeof *c->fd_q);
        else
            c->fd_b = calloc(3 * FD_NF, sizeof *c->fd_b);
        if (!c->fd_q && !c->fd_b) return -1;
        float *h = malloc(sizeof(float) * 4 * n);
        if (!h) return -1;
        int rc = 0;
        for (int f = 0; f < FD_NF && !rc; f++) {
            const float *a = c->fd_a + (size_t)f * d->cout * row; /* [Hr | −Hi] */
            for (int o = 0; o < d->cout; o++)
                for (int i = 0; i < d->cin; i++) {
                    float hr = a[o * row + i], hi = -a[o * row + d->cin + i];
                    if (c->int8) {
                        float *top = h + o * row, *bot = h + (d->cout + o) * row;
                        top[i] = hr;
                        top[d->cin + i] = -hi;
                        bot[i] = hi;
                        bot[d->cin + i] = hr;
                        continue;
                    }
                    size_t e = (size_t)o * d->cin + i;
                    h[e] = hr;
                    h[n + e] = hi;
                    h[2 * n + e] = hr + hi;
                }
            if (c->int8)
                rc = koe_qmat_pack(&c->fd_q[f], h, 2 * d->cout, 2 * d->cin, row,
                                   koe_i8_best_kernel());
            for (int m = 0; m < 3 && !rc && !c->int8; m++)
                rc = koe_bmat_pack(&c->fd_b[3 * f + m], h + m * n, d->cout, d->cin, (size_t)d->cin,
                                   koe_bf16_best_kernel());
        }
        free(h);
        if (rc) return -1;
        free(c->fd_a);
        c->fd_a = NULL;
        return 0;
    }
    size_t kk = (size_t)d->k * d->cin;
    float *a = malloc(sizeof(float) * d->cout * kk);
    if (!a) return -1;
    for (int o = 0; o < d->cout; o++)
        for (int j = 0; j < d->k; j++)
            for (int i = 0; i < d->cin; i++)
                a[o * kk + (size_t)j * d->cin + i] = weight[((size_t)o * d->cin + i) * d->k + j];
    int rc = pack_lowp(c, &c->wb, &c->wq, a, d->cout, (int)kk);
    free(a);
    if (rc) return -1;
    free(c->w);
    c->w = NULL;
    return 0;
}

koe_conv *koe_conv_new(const koe_conv_desc *desc, const float *weight, const float *bias,
                       koe_error *err) {
    koe_conv_desc d = *desc;
    desc_defaults(&d);
    if (d.cin < 1 || d.cout < 1 || d.k < 1 || d.stride < 1 || d.dil < 1 || d.groups < 1 ||
        d.pad < 0 || d.cin % d.groups || d.cout % d.groups) {
        koe_error_set(err, KOE_ERR_INVALID,
                      "bad Conv1d shape (cin %d, cout %d, k %d, stride %d, pad %d, dilation %d, "
                      "groups %d)",
                      d.cin, d.cout, d.k, d.stride, d.pad, d.dil, d.groups);
        return NULL;
    }
    if (d.groups != 1) d.bf16 = d.int8 = 0; /* grouped layers stay float32 */
    if (d.int8) d.bf16 = 0;
    int lowp = d.bf16 || d.int8;
    koe_blas_single_thread();
    koe_conv *c = calloc(1, sizeof *c);
    if (!c) goto nomem;
    c->d = d;
    c->cig = d.cin / d.groups;
    c->cog = d.cout / d.groups;
    size_t n = (size_t)d.cout * c->cig * d.k;
    /* The float time-domain form only when it is used (not for the frequency-domain path nor
     * in bf16 / int8, which pack from `weight` themselves). */
    int need_w = !fd_eligible(&d) && !lowp;
    c->w = malloc((need_w ? n : 1) * sizeof(float));
    if (!c->w) goto nomem;
    if (!need_w) {
        /* nothing: freed below */
    } else if (d.stride == 1) {
        for (int g = 0; g < d.groups; g++)
            for (int j = 0; j < d.k; j++)
                for (int o = 0; o < c->cog; o++)
                    for (int i = 0; i < c->cig; i++)
                        c->w[(((size_t)g * d.k + j) * c->cog + o) * c->cig + i] =
                            weight[(((size_t)g * c->cog + o) * c->cig + i) * d.k + j];
    } else {
        memcpy(c->w, weight, n * sizeof(float));
    }
    if (bias) {
        c->bias = malloc((size_t)d.cout * sizeof(float));
        if (!c->bias) goto nomem;
        memcpy(c->bias, bias, (size_t)d.cout * sizeof(float));
    }
    if (fd_eligible(&d)) {
        pthread_once(&fd_once, fd_init);
        if (fd_pack(c, weight)) goto nomem;
        free(c->w); /* the time-domain form is not used any more */
        c->w = NULL;
        c->fd = 1;
    }
    if (lowp && conv_to_lowp(c, weight)) goto nomem;
    return c;
nomem:
    koe_conv_free(c);
    koe_error_set(err, KOE_ERR_NOMEM, "out of memory packing a Conv1d");
    return NULL;
}

void koe_conv_free(koe_conv *c) {
    if (!c) return;
    if (c->fd_b)
        for (int f = 0; f < 3 * FD_NF; f++) koe_bmat_release(&c->fd_b[f]);
    if (c->fd_q)
        for (int f = 0; f < FD_NF; f++) koe_qmat_release(&c->fd_q[f]);
    free(c->fd_b);
    free(c->fd_q);
    koe_bmat_release(&c->wb);
    koe_qmat_release(&c->wq);
    free(c->fd_a);
    free(c->w);
    free(c->bias);
    free(c);
}

const koe_conv_desc *koe_conv_get_desc(const koe_conv *c) {
    return &c->d;
}

int koe_conv_out_len(const koe_conv *c, int t_in) {
    long span = (long)t_in + 2L * c->d.pad - (long)c->d.dil * (c->d.k - 1) - 1;
    if (span < 0) return 0;
    return (int)(span / c->d.stride + 1);
}

/* Scratch (floats) of one reduced-precision product of up to n columns. */
static size_t lowp_scratch_floats(const koe_conv *c, int n) {
    return c->int8 ? (koe_gemm_i8_scratch_bytes(n) + sizeof(float) - 1) / sizeof(float)
                   : koe_gemm_bf16_scratch_floats(n);
}

/* Scratch of one worker slot. */
static size_t conv_slot_floats(const koe_conv *c) {
    /* bf16: + packing, Vr + Vi [cin][FD_NB] and P3 [cout][FD_NB] */
    if (c->fd)
        return fd_slot_floats(c) +
               (c->lowp ? lowp_scratch_floats(c, FD_NB) + (size_t)(c->d.cin + c->d.cout) * FD_NB
                        : 0);
    if (c->lowp) return lowp_scratch_floats(c, TILE_MAX);
    if (c->d.stride == 1) return 0;
    return (size_t)c->cig * c->d.k * TILE_MAX;
}

size_t koe_conv_scratch_floats(const koe_conv *c, int t_in, koe_pool *pool) {
    (void)t_in;
    return (size_t)n_workers(pool) * conv_slot_floats(c);
}

int koe_conv_uses_fd(const koe_conv *c) {
    return c->fd;
}

double koe_conv_macs(const koe_conv *c, int t_in) {
    int t_out = koe_conv_out_len(c, t_in);
    const koe_conv_desc *d = &c->d;
    if (!c->fd) return (double)d->cin / d->groups * d->cout * d->k * t_out;
    int B = FD_N - d->k + 1;
    double blocks = 0;
    for (int r = 0; r < d->dil; r++) {
        int len = (t_out - r + d->dil - 1) / d->dil;
        if (len > 0) blocks += (len + B - 1) / B;
    }
    /* bf16: two forward-DFT rows per bin and three real products for the mixing; int8 two
     * rows and four products */
    double rows = c->lowp ? 2 : 3, mix = c->lowp && !c->int8 ? 3 : 4;
    return blocks * (rows * FD_NF * FD_N * d->cin + mix * FD_NF * d->cin * d->cout +
                     2.0 * FD_NF * B * d->cout);
}

typedef struct conv_job {
    const koe_conv *c;
    const float *x;
    float *y;
    float *scratch;
    int t_in, t_out, tile, n_tiles, accumulate;
    int fd_nb; /* frequency-domain path: blocks per task */
    atomic_int next;
} conv_job;

static void conv_tile_s1(const conv_job *jb, int t0, int t1) {
    const koe_conv *c = jb->c;
    const koe_conv_desc *d = &c->d;
    for (int g = 0; g < d->groups; g++) {
        float *y = jb->y + (size_t)g * c->cog * jb->t_out;
        const float *x = jb->x + (size_t)g * c->cig * jb->t_in;
        for (int o = 0; o < c->cog; o++) {
            float *yo = y + (size_t)o * jb->t_out;
            float b = c->bias ? c->bias[g * c->cog + o] : 0.0f;
            if (jb->accumulate) {
                if (b != 0.0f)
                    for (int t = t0; t < t1; t++) yo[t] += b;
            } else {
                for (int t = t0; t < t1; t++) yo[t] = b;
            }
        }
        for (int j = 0; j < d->k; j++) {
            /* Output t reads input t + off; only the part of the tile inside the input counts
             * (the zero padding contributes nothing). */
            int off = j * d->dil - d->pad;
            int a = t0, e = t1;
            if (a + off < 0) a = -off;
            if (e + off > jb->t_in) e = jb->t_in - off;
            if (e <= a) continue;
            const float *w = c->w + ((size_t)g * d->k + j) * c->cog * c->cig;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cog, e - a, c->cig, 1.0f, w,
                        c->cig, x + a + off, jb->t_in, 1.0f, y + a, jb->t_out);
        }
    }
}

static void conv_tile_strided(const conv_job *jb, int t0, int t1, float *cols) {
    const koe_conv *c = jb->c;
    const koe_conv_desc *d = &c->d;
    int n = t1 - t0, kk = c->cig * d->k;
    for (int g = 0; g < d->groups; g++) {
        const float *x = jb->x + (size_t)g * c->cig * jb->t_in;
        for (int i = 0; i < c->cig; i++) {
            const float *xi = x + (size_t)i * jb->t_in;
            for (int j = 0; j < d->k; j++) {
                float *row = cols + ((size_t)i * d->k + j) * n;
                int off = j * d->dil - d->pad;
                for (int t = 0; t < n; t++) {
                    int s = (t0 + t) * d->stride + off;
                    row[t] = (s >= 0 && s < jb->t_in) ? xi[s] : 0.0f;
                }
            }
        }
        float *y = jb->y + (size_t)g * c->cog * jb->t_out + t0;
        for (int o = 0; o < c->cog; o++) {
            float *yo = y + (size_t)o * jb->t_out;
            float b = c->bias ? c->bias[g * c->cog + o] : 0.0f;
            if (jb->accumulate) {
                if (b != 0.0f)
                    for (int t = 0; t < n; t++) yo[t] += b;
            } else {
                for (int t = 0; t < n; t++) yo[t] = b;
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cog, n, kk, 1.0f,
                    c->w + (size_t)g * c->cog * kk, kk, cols, n, 1.0f, y, jb->t_out);
    }
}

/* bf16 / int8: the bias (or nothing) first, then one product over every tap at once; the
 * packing reads the taps' shifted (and strided) views of x, zeros outside it. */
static void conv_tile_lowp(const conv_job *jb, int t0, int t1, float *pk) {
    const koe_conv *c = jb->c;
    const koe_conv_desc *d = &c->d;
    for (int o = 0; o < d->cout; o++) {
        float *yo = jb->y + (size_t)o * jb->t_out;
        float b = c->bias ? c->bias[o] : 0.0f;
        if (jb->accumulate) {
            if (b != 0.0f)
                for (int t = t0; t < t1; t++) yo[t] += b;
        } else {
            for (int t = t0; t < t1; t++) yo[t] = b;
        }
    }
    koe_bsrc src = {.x = jb->x,
                    .ld = (size_t)jb->t_in,
                    .len = jb->t_in,
                    .cin = d->cin,
                    .taps = d->k,
                    .dil = d->dil,
                    .stride = d->stride,
                    .start = t0 * d->stride - d->pad};
    if (c->int8)
        koe_gemm_i8(&c->wq, &src, t1 - t0, jb->y + t0, (size_t)jb->t_out, 1, pk);
    else
        koe_gemm_bf16(&c->wb, &src, t1 - t0, jb->y + t0, (size_t)jb->t_out, 1, pk);
}

/* Blocks are numbered over all residues: residue r has ceil(len_r / FD_B) blocks of FD_B
 * outputs, len_r = number of output samples ≡ r (mod d). */
static int fd_blocks_of(const conv_job *jb, int r, int B) {
    int len = (jb->t_out - r + jb->c->d.dil - 1) / jb->c->d.dil;
    return len > 0 ? (len + B - 1) / B : 0;
}

/* The strided copies in and out of the blocks, with the dilations the generator uses (1, 3, 5)
 * as constants so that the compiler can vectorize them (the variable-stride loops were ~10% of
 * a bf16 run). */
static inline __attribute__((always_inline)) void fd_gather_d(float *u, const float *x, int dil) {
    for (int m = 0; m < FD_N; m++) u[m] = x[(long)m * dil];
}
static void fd_gather(float *u, const float *x, int dil) {
    switch (dil) {
    case 1:
        memcpy(u, x, FD_N * sizeof(float));
        break;
    case 3:
        fd_gather_d(u, x, 3);
        break;
    case 5:
        fd_gather_d(u, x, 5);
        break;
    default:
        fd_gather_d(u, x, dil);
    }
}
static inline __attribute__((always_inline)) void fd_scatter_d(float *y, const float *o, int n,
                                                               int dil, float bias, int acc) {
    if (acc)
        for (int s = 0; s < n; s++) y[(long)s * dil] += o[s] + bias;
    else
        for (int s = 0; s < n; s++) y[(long)s * dil] = o[s] + bias;
}
static void fd_scatter(float *y, const float *o, int n, int dil, float bias, int acc) {
    switch (dil) {
    case 1:
        fd_scatter_d(y, o, n, 1, bias, acc);
        break;
    case 3:
        fd_scatter_d(y, o, n, 3, bias, acc);
        break;
    case 5:
        fd_scatter_d(y, o, n, 5, bias, acc);
        break;
    default:
        fd_scatter_d(y, o, n, dil, bias, acc);
    }
}

__attribute__((optimize("tree-vectorize"))) static void fd_tile(const conv_job *jb, int g0, int g1,
                                                                float *scr) {
    const koe_conv *c = jb->c;
    const koe_conv_desc *d = &c->d;
    int cin = d->cin, cout = d->cout, dil = d->dil, B = FD_N - d->k + 1, h = d->pad / dil;
    int nb = g1 - g0;
    float *U = scr, *V = U + (size_t)FD_N * cin * FD_NB;
    float *Z = V + (size_t)3 * FD_NF * cin * FD_NB, *O = Z + (size_t)2 * FD_NF * cout * FD_NB;
    int rs[FD_NB], n0s[FD_NB];
    /* Block g is time block g / d of residue g % d: a task's blocks cover every residue of one
     * stretch of output, so that it writes whole cache lines and two tasks (threads) rarely
     * share one. Residues past the end (the last time block of the shorter ones) are empty. */
    for (int b = 0, g = g0; b < nb; b++, g++) {
        rs[b] = g % dil;
        n0s[b] = g / dil * B;
    }
    /* U[i][b][m] = x[i, r + (n0 − h + m)·d], zero outside: each row is one block's input */
    for (int i = 0; i < cin; i++) {
        const float *xi = jb->x + (size_t)i * jb->t_in;
        for (int b = 0; b < nb; b++) {
            float *u = U + ((size_t)i * nb + b) * FD_N;
            long t = rs[b] + (long)(n0s[b] - h) * dil;
            if (t >= 0 && t + (long)(FD_N - 1) * dil < jb->t_in) {
                fd_gather(u, xi + t, dil);
            } else {
                for (int m = 0; m < FD_N; m++, t += dil)
                    u[m] = (t >= 0 && t < jb->t_in) ? xi[t] : 0.0f;
            }
        }
    }
    size_t ucols = (size_t)cin * nb;
    if (c->lowp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 2 * FD_NF, (int)ucols, FD_N, 1.0f,
                    &fd_fwd2[0][0], FD_N, U, FD_N, 0.0f, V, (int)ucols);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 3 * FD_NF, (int)ucols, FD_N, 1.0f,
                    &fd_fwd[0][0], FD_N, U, FD_N, 0.0f, V, (int)ucols);
    float *pk = O + (size_t)FD_N * cout * FD_NB; /* bf16 / int8 packing scratch */
    for (int f = 0; f < FD_NF; f++) {
        const float *Vf = V + (size_t)3 * f * ucols;
        float *Zre = Z + (size_t)2 * f * cout * nb, *Zim = Zre + (size_t)cout * nb;
        if (c->int8) {
            /* [Re; Im] = fd_q[f] · [Vr; Vi] (rows 2f, 2f + 1 of the forward DFT: contiguous);
             * a column is one block's bin over the input channels, with its own scale (bins
             * and blocks differ in magnitude by orders, a column's values much less) */
            koe_bsrc src = {.x = V + (size_t)2 * f * ucols,
                            .ld = (size_t)nb,
                            .len = nb,
                            .cin = 2 * cin,
                            .taps = 1,
                            .dil = 1,
                            .stride = 1};
            koe_gemm_i8(&c->fd_q[f], &src, nb, Zre, (size_t)nb, 0, pk);
            continue;
        }
        if (c->lowp) {
            const float *Vr = V + (size_t)2 * f * ucols, *Vi = Vr + ucols;
            float *S = pk + lowp_scratch_floats(c, FD_NB), *P3 = S + ucols;
            for (size_t e = 0; e < ucols; e++) S[e] = Vr[e] + Vi[e];
            koe_bsrc src = {
                .x = Vr, .ld = (size_t)nb, .len = nb, .cin = cin, .taps = 1, .dil = 1, .stride = 1};
            koe_gemm_bf16(&c->fd_b[3 * f], &src, nb, Zre, (size_t)nb, 0, pk); /* P1 */
            src.x = Vi;
            koe_gemm_bf16(&c->fd_b[3 * f + 1], &src, nb, Zim, (size_t)nb, 0, pk); /* P2 */
            src.x = S;
            koe_gemm_bf16(&c->fd_b[3 * f + 2], &src, nb, P3, (size_t)nb, 0, pk);
            size_t zn = (size_t)cout * nb;
            for (size_t e = 0; e < zn; e++) {
                float p1 = Zre[e], p2 = Zim[e];
                Zre[e] = p1 - p2;
                Zim[e] = P3[e] - p1 - p2;
            }
            continue;
        }
        const float *A = c->fd_a + (size_t)f * cout * 2 * cin;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, nb, 2 * cin, 1.0f, A, 2 * cin,
                    Vf, nb, 0.0f, Zre, nb);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, nb, 2 * cin, 1.0f, A, 2 * cin,
                    Vf + ucols, nb, 0.0f, Zim, nb);
    }
    /* O[o][b][s]: row (o, b) holds block b's FD_B outputs of channel o */
    size_t zcols = (size_t)cout * nb;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)zcols, B, 2 * FD_NF, 1.0f, Z,
                (int)zcols, &fd_inv_t[0][0], FD_N, 0.0f, O, B);
    for (int o = 0; o < cout; o++) {
        float *yo = jb->y + (size_t)o * jb->t_out;
        float bias = c->bias ? c->bias[o] : 0.0f;
        for (int b = 0; b < nb; b++) {
            const float *ob = O + ((size_t)o * nb + b) * B;
            long t = rs[b] + (long)n0s[b] * dil;
            int n = B;
            if (t >= jb->t_out) continue;
            if (t + (long)(n - 1) * dil >= jb->t_out) n = (int)((jb->t_out - 1 - t) / dil + 1);
            fd_scatter(yo + t, ob, n, dil, bias, jb->accumulate);
        }
    }
}

static void fd_slot(void *arg, int slot) {
    conv_job *jb = arg;
    float *scr = jb->scratch + (size_t)slot * conv_slot_floats(jb->c);
    for (;;) {
        int i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->n_tiles) return;
        int g0 = i * jb->fd_nb, g1 = g0 + jb->fd_nb;
        if (g1 > jb->tile) g1 = jb->tile; /* jb->tile holds the total block count here */
        fd_tile(jb, g0, g1, scr);
    }
}

static void conv_slot(void *arg, int slot) {
    conv_job *jb = arg;
    float *cols = jb->scratch ? jb->scratch + (size_t)slot * conv_slot_floats(jb->c) : NULL;
    for (;;) {
        int i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->n_tiles) return;
        int t0 = i * jb->tile, t1 = t0 + jb->tile;
        if (t1 > jb->t_out) t1 = jb->t_out;
        if (jb->c->lowp)
            conv_tile_lowp(jb, t0, t1, cols);
        else if (jb->c->d.stride == 1)
            conv_tile_s1(jb, t0, t1);
        else
            conv_tile_strided(jb, t0, t1, cols);
    }
}

void koe_conv_run(const koe_conv *c, koe_pool *pool, float *scratch, const float *x, int t_in,
                  float *y, int accumulate) {
    int t_out = koe_conv_out_len(c, t_in);
    if (t_out <= 0) return;
    int workers = n_workers(pool);
    conv_job jb = {.c = c,
                   .x = x,
                   .y = y,
                   .scratch = scratch,
                   .t_in = t_in,
                   .t_out = t_out,
                   .accumulate = accumulate};
    atomic_init(&jb.next, 0);
    if (c->fd) {
        /* residue 0 has the most blocks; see fd_tile for the numbering */
        int B = FD_N - c->d.k + 1, total = c->d.dil * fd_blocks_of(&jb, 0, B);
        jb.tile = total;
        /* Short layers (the 256-channel ones: ~275 blocks for 7.5 s) in half-size tasks, so that
         * two workers get 5 and 4 tasks of 32 rather than 3 and 2 of 64. */
        jb.fd_nb = workers > 1 && total < FD_NB * 4 * workers ? FD_NB / 2 : FD_NB;
        jb.n_tiles = (total + jb.fd_nb - 1) / jb.fd_nb;
        int slots = workers < jb.n_tiles ? workers : jb.n_tiles;
        run_slots(pool, slots, fd_slot, &jb);
        return;
    }
    jb.tile = pick_tile(t_out, workers);
    jb.n_tiles = (t_out + jb.tile - 1) / jb.tile;
    int slots = workers < jb.n_tiles ? workers : jb.n_tiles;
    run_slots(pool, slots, conv_slot, &jb);
}

/* ---- ConvTranspose1d --------------------------------------------------------------------- */
struct koe_convt {
    koe_convt_desc d;
    int cig, cog;
    /* groups == 1: [k·cout, cin], row j·cout + o holds w[·, o, j] (one sgemm gives every tap's
     * contribution of an input chunk); groups > 1: PyTorch layout [cin, cog, k]. */
    float *w;
    float *bias;
    /* bf16 / int8 (groups 1; lowp set, int8 says which): the same [k·cout, cin] matrix in bf16
     * or int8 (a scale per row, i.e. per (tap, output channel)); w is freed. */
    int lowp, int8;
    koe_bmat wb;
    koe_qmat wq;
};

koe_convt *koe_convt_new(const koe_convt_desc *desc, const float *weight, const float *bias,
                         koe_error *err) {
    koe_convt_desc d = *desc;
    if (d.stride == 0) d.stride = 1;
    if (d.groups == 0) d.groups = 1;
    if (d.cin < 1 || d.cout < 1 || d.k < 1 || d.stride < 1 || d.groups < 1 || d.pad < 0 ||
        d.out_pad < 0 || d.cin % d.groups || d.cout % d.groups) {
        koe_error_set(err, KOE_ERR_INVALID,
                      "bad ConvTranspose1d shape (cin %d, cout %d, k %d, stride %d, pad %d, "
                      "output_padding %d, groups %d)",
                      d.cin, d.cout, d.k, d.stride, d.pad, d.out_pad, d.groups);
        return NULL;
    }
    koe_blas_single_thread();
    koe_convt *c = calloc(1, sizeof *c);
    if (!c) goto nomem;
    c->d = d;
    c->cig = d.cin / d.groups;
    c->cog = d.cout / d.groups;
    size_t n = (size_t)d.cin * c->cog * d.k;
    c->w = malloc(n * sizeof(float));
    if (!c->w) goto nomem;
    if (d.groups == 1) {
        for (int j = 0; j < d.k; j++)
            for (int o = 0; o < d.cout; o++)
                for (int i = 0; i < d.cin; i++)
                    c->w[((size_t)j * d.cout + o) * d.cin + i] =
                        weight[((size_t)i * d.cout + o) * d.k + j];
    } else {
        memcpy(c->w, weight, n * sizeof(float));
    }
    if (bias) {
        c->bias = malloc((size_t)d.cout * sizeof(float));
        if (!c->bias) goto nomem;
        memcpy(c->bias, bias, (size_t)d.cout * sizeof(float));
    }
    if ((d.bf16 || d.int8) && d.groups == 1) {
        int rc = d.int8 ? koe_qmat_pack(&c->wq, c->w, d.k * d.cout, d.cin, (size_t)d.cin,
                                        koe_i8_best_kernel())
                        : koe_bmat_pack(&c->wb, c->w, d.k * d.cout, d.cin, (size_t)d.cin,
                                        koe_bf16_best_kernel());
        if (rc) goto nomem;
        free(c->w);
        c->w = NULL;
        c->lowp = 1;
        c->int8 = d.int8;
    }
    return c;
nomem:
    koe_convt_free(c);
    koe_error_set(err, KOE_ERR_NOMEM, "out of memory packing a ConvTranspose1d");
    return NULL;
}

void koe_convt_free(koe_convt *c) {
    if (!c) return;
    koe_bmat_release(&c->wb);
    koe_qmat_release(&c->wq);
    free(c->w);
    free(c->bias);
    free(c);
}

int koe_convt_out_len(const koe_convt *c, int t_in) {
    if (t_in < 1) return 0;
    long n = (long)(t_in - 1) * c->d.stride - 2L * c->d.pad + c->d.k + c->d.out_pad;
    return n > 0 ? (int)n : 0;
}

/* Input columns an output tile of `tile` samples can read. */
static int convt_chunk(const koe_convt *c, int tile) {
    return (tile + c->d.k) / c->d.stride + 2;
}

/* Per worker slot: every tap's contribution of one input chunk (+ the bf16 / int8 packing). */
static size_t convt_slot_floats(const koe_convt *c) {
    if (c->d.groups != 1) return 0;
    int chunk = convt_chunk(c, TILE_MAX);
    size_t n = (size_t)c->d.k * c->d.cout * chunk;
    if (c->int8)
        n += (koe_gemm_i8_scratch_bytes(chunk) + sizeof(float) - 1) / sizeof(float);
    else if (c->lowp)
        n += koe_gemm_bf16_scratch_floats(chunk);
    return n;
}

size_t koe_convt_scratch_floats(const koe_convt *c, int t_in, koe_pool *pool) {
    (void)t_in;
    return (size_t)n_workers(pool) * convt_slot_floats(c);
}

typedef struct convt_job {
    const koe_convt *c;
    const float *x;
    float *y;
    float *scratch;
    int t_in, t_out, tile, n_tiles;
    atomic_int next;
} convt_job;

static int floor_div(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static void convt_tile(const convt_job *jb, int t0, int t1, float *z) {
    const koe_convt *c = jb->c;
    const koe_convt_desc *d = &c->d;
    int s = d->stride, p = d->pad, k = d->k;
    /* Output t gets tap j from input (t + p − j) / s when divisible. */
    int ta = floor_div(t0 + p - (k - 1), s), tb = floor_div(t1 - 1 + p, s);
    if (ta < 0) ta = 0;
    if (tb > jb->t_in - 1) tb = jb->t_in - 1;
    int nb = tb - ta + 1;
    if (c->lowp && nb > 0) {
        koe_bsrc src = {.x = jb->x,
                        .ld = (size_t)jb->t_in,
                        .len = jb->t_in,
                        .cin = d->cin,
                        .taps = 1,
                        .dil = 1,
                        .stride = 1,
                        .start = ta};
        float *pk = z + (size_t)k * d->cout * convt_chunk(c, TILE_MAX);
        if (c->int8)
            koe_gemm_i8(&c->wq, &src, nb, z, (size_t)nb, 0, pk);
        else
            koe_gemm_bf16(&c->wb, &src, nb, z, (size_t)nb, 0, pk);
    } else if (d->groups == 1 && nb > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k * d->cout, nb, d->cin, 1.0f, c->w,
                    d->cin, jb->x + ta, jb->t_in, 0.0f, z, nb);
    }
    for (int o = 0; o < d->cout; o++) {
        float *yo = jb->y + (size_t)o * jb->t_out;
        float b = c->bias ? c->bias[o] : 0.0f;
        int g = o / c->cog, og = o % c->cog;
        for (int t = t0; t < t1; t++) {
            float acc = b;
            int r = (t + p) % s;
            for (int j = r; j < k; j += s) {
                int ti = (t + p - j) / s;
                if (ti < ta || ti > tb) continue;
                if (d->groups == 1) {
                    acc += z[((size_t)j * d->cout + o) * nb + (ti - ta)];
                } else {
                    for (int i = 0; i < c->cig; i++) {
                        int ci = g * c->cig + i;
                        acc += c->w[((size_t)ci * c->cog + og) * k + j] *
                               jb->x[(size_t)ci * jb->t_in + ti];
                    }
                }
            }
            yo[t] = acc;
        }
    }
}

static void convt_slot(void *arg, int slot) {
    convt_job *jb = arg;
    float *z = jb->scratch ? jb->scratch + (size_t)slot * convt_slot_floats(jb->c) : NULL;
    for (;;) {
        int i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->n_tiles) return;
        int t0 = i * jb->tile, t1 = t0 + jb->tile;
        if (t1 > jb->t_out) t1 = jb->t_out;
        convt_tile(jb, t0, t1, z);
    }
}

void koe_convt_run(const koe_convt *c, koe_pool *pool, float *scratch, const float *x, int t_in,
                   float *y) {
    int t_out = koe_convt_out_len(c, t_in);
    if (t_out <= 0) return;
    int workers = n_workers(pool);
    convt_job jb = {.c = c, .x = x, .y = y, .scratch = scratch, .t_in = t_in, .t_out = t_out};
    jb.tile = pick_tile(t_out, workers);
    jb.n_tiles = (t_out + jb.tile - 1) / jb.tile;
    atomic_init(&jb.next, 0);
    int slots = workers < jb.n_tiles ? workers : jb.n_tiles;
    run_slots(pool, slots, convt_slot, &jb);
}

/* ---- AdaIN and activations --------------------------------------------------------------- */
typedef struct chan_job {
    const float *x;
    float *y;
    int C, T, n_blocks;
    const float *a, *b, *gb, *nw, *nb, *alpha;
    float *oa, *ob;
    float slope;
} chan_job;

#define CHAN_BLOCKS 64

static void chan_range(const chan_job *jb, int blk, int *c0, int *c1) {
    *c0 = (int)((long)jb->C * blk / jb->n_blocks);
    *c1 = (int)((long)jb->C * (blk + 1) / jb->n_blocks);
}

static void chan_run(koe_pool *pool, chan_job *jb, koe_pool_fn fn) {
    jb->n_blocks = jb->C < CHAN_BLOCKS ? jb->C : CHAN_BLOCKS;
    if (jb->n_blocks < 1) return;
    if (pool)
        koe_pool_run(pool, jb->n_blocks, fn, jb);
    else
        for (int i = 0; i < jb->n_blocks; i++) fn(jb, i);
}

/* Mean and centred sum of squares of a row: 16 float lanes over blocks of 256 samples (short
 * enough for float), the blocks summed in double; two passes, so no cancellation. */
#define STAT_BLOCK 256
static inline __attribute__((always_inline)) void row_stats(const float *x, int T, double *mean,
                                                            double *m2) {
    double s = 0;
    int t = 0;
    for (; t + STAT_BLOCK <= T; t += STAT_BLOCK) {
        float acc[16] = {0};
        for (int b = 0; b < STAT_BLOCK; b += 16)
            for (int i = 0; i < 16; i++) acc[i] += x[t + b + i];
        for (int i = 0; i < 16; i++) s += acc[i];
    }
    for (; t < T; t++) s += x[t];
    double m = s / T;
    float mf = (float)m;
    double q = 0;
    for (t = 0; t + STAT_BLOCK <= T; t += STAT_BLOCK) {
        float acc[16] = {0};
        for (int b = 0; b < STAT_BLOCK; b += 16)
            for (int i = 0; i < 16; i++) {
                float d = x[t + b + i] - mf;
                acc[i] += d * d;
            }
        for (int i = 0; i < 16; i++) q += acc[i];
    }
    for (; t < T; t++) q += ((double)x[t] - mf) * ((double)x[t] - mf);
    /* centred on mf rather than m: Σ(x − m)² = Σ(x − mf)² − T·(m − mf)² */
    q -= (double)T * (m - mf) * (m - mf);
    *mean = m;
    *m2 = q > 0 ? q : 0;
}

#if KOE_X86
__attribute__((target("avx512f,avx512dq,fma"), optimize("tree-vectorize"))) static void
row_stats_avx512(const float *x, int T, double *mean, double *m2) {
    row_stats(x, T, mean, m2);
}
__attribute__((target("avx2,fma"), optimize("tree-vectorize"))) static void
row_stats_avx2(const float *x, int T, double *mean, double *m2) {
    row_stats(x, T, mean, m2);
}
#endif
__attribute__((optimize("tree-vectorize"))) static void row_stats_base(const float *x, int T,
                                                                       double *mean, double *m2) {
    row_stats(x, T, mean, m2);
}

typedef void (*stats_fn)(const float *, int, double *, double *);
static stats_fn pick_stats(void) {
#if KOE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return row_stats_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return row_stats_avx2;
#endif
    return row_stats_base;
}

static void adain_task(void *arg, int blk) {
    chan_job *jb = arg;
    int c0, c1;
    chan_range(jb, blk, &c0, &c1);
    stats_fn stats = pick_stats();
    for (int c = c0; c < c1; c++) {
        double mean, m2;
        stats(jb->x + (size_t)c * jb->T, jb->T, &mean, &m2);
        double rstd = 1.0 / sqrt(m2 / jb->T + 1e-5);
        double w = jb->nw ? jb->nw[c] : 1.0, nbias = jb->nb ? jb->nb[c] : 0.0;
        double g1 = 1.0 + jb->gb[c], beta = jb->gb[jb->C + c];
        jb->oa[c] = (float)(g1 * rstd * w);
        jb->ob[c] = (float)(g1 * (nbias - mean * rstd * w) + beta);
    }
}

void koe_adain_coefs(koe_pool *pool, const float *x, int C, int T, const float *gamma_beta,
                     const float *norm_w, const float *norm_b, float *a, float *b) {
    chan_job jb = {
        .x = x, .C = C, .T = T, .gb = gamma_beta, .nw = norm_w, .nb = norm_b, .oa = a, .ob = b};
    chan_run(pool, &jb, adain_task);
}

static void lrelu_task(void *arg, int blk) {
    chan_job *jb = arg;
    int c0, c1;
    chan_range(jb, blk, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        const float *xc = jb->x + (size_t)c * jb->T;
        float *yc = jb->y + (size_t)c * jb->T;
        float a = jb->a ? jb->a[c] : 1.0f, b = jb->b ? jb->b[c] : 0.0f, sl = jb->slope;
        for (int t = 0; t < jb->T; t++) {
            float u = a * xc[t] + b;
            yc[t] = u > 0 ? u : u * sl;
        }
    }
}

void koe_affine_lrelu(koe_pool *pool, const float *x, float *y, int C, int T, const float *a,
                      const float *b, float slope) {
    chan_job jb = {.x = x, .y = y, .C = C, .T = T, .a = a, .b = b, .slope = slope};
    chan_run(pool, &jb, lrelu_task);
}

void koe_lrelu(float *x, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : x[i] * slope;
}

/* sin² with a polynomial the compiler can vectorize (libm's sinf cannot be): reduce by
 * multiples of π (sin² has period π, so the sign of the reduction drops out), then an odd
 * Taylor polynomial to r^13 on [−π/2, π/2] (truncation error < 1e-9). The three-part π keeps
 * the reduction exact for |v| up to ~1e5, far beyond what activations reach. */
static inline __attribute__((always_inline)) float sin2_fast(float v) {
    const float inv_pi = 0.318309886183790671f;
    const float pa = 3.140625f, pb = 9.67502593994140625e-4f, pc = 1.509957990978376432e-7f;
    float n = (v * inv_pi + 12582912.0f) - 12582912.0f; /* round to nearest via 1.5·2^23 */
    float r = v - n * pa;
    r = r - n * pb;
    r = r - n * pc;
    float r2 = r * r;
    float p = 1.6059043836821615e-10f;
    p = p * r2 - 2.5052108385441720e-8f;
    p = p * r2 + 2.7557319223985893e-6f;
    p = p * r2 - 1.9841269841269841e-4f;
    p = p * r2 + 8.3333333333333333e-3f;
    p = p * r2 - 1.6666666666666667e-1f;
    float s = r + r * r2 * p;
    return s * s;
}

static inline __attribute__((always_inline)) void snake_row(const float *xc, float *yc, int T,
                                                            float a, float b, float al) {
    float inv = 1.0f / al;
    int t = 0;
    /* Fixed blocks that are read whole before being written: vectorizable, and correct when
     * yc == xc (no restrict needed). */
    for (; t + 16 <= T; t += 16) {
        float v[16];
        for (int i = 0; i < 16; i++) {
            float u = a * xc[t + i] + b;
            v[i] = u + inv * sin2_fast(al * u);
        }
        for (int i = 0; i < 16; i++) yc[t + i] = v[i];
    }
    for (; t < T; t++) {
        float u = a * xc[t] + b;
        yc[t] = u + inv * sin2_fast(al * u);
    }
}

/* Same source compiled for AVX-512 and for the baseline; picked at run time. */
#if KOE_X86
__attribute__((target("avx512f,avx512dq,fma"), optimize("tree-vectorize"))) static void
snake_row_avx512(const float *xc, float *yc, int T, float a, float b, float al) {
    snake_row(xc, yc, T, a, b, al);
}
__attribute__((target("avx2,fma"), optimize("tree-vectorize"))) static void
snake_row_avx2(const float *xc, float *yc, int T, float a, float b, float al) {
    snake_row(xc, yc, T, a, b, al);
}
#endif
__attribute__((optimize("tree-vectorize"))) static void
snake_row_base(const float *xc, float *yc, int T, float a, float b, float al) {
    snake_row(xc, yc, T, a, b, al);
}

typedef void (*snake_fn)(const float *, float *, int, float, float, float);
static snake_fn pick_snake(void) {
#if KOE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return snake_row_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return snake_row_avx2;
#endif
    return snake_row_base;
}

static void snake_task(void *arg, int blk) {
    chan_job *jb = arg;
    int c0, c1;
    chan_range(jb, blk, &c0, &c1);
    snake_fn fn = pick_snake();
    for (int c = c0; c < c1; c++) {
        float a = jb->a ? jb->a[c] : 1.0f, b = jb->b ? jb->b[c] : 0.0f;
        /* In place (y == x) is fine: each element is read before it is written. */
        fn(jb->x + (size_t)c * jb->T, jb->y + (size_t)c * jb->T, jb->T, a, b, jb->alpha[c]);
    }
}

void koe_affine_snake(koe_pool *pool, const float *x, float *y, int C, int T, const float *a,
                      const float *b, const float *alpha) {
    chan_job jb = {.x = x, .y = y, .C = C, .T = T, .a = a, .b = b, .alpha = alpha};
    chan_run(pool, &jb, snake_task);
}
