/* Helpers shared by the benchmark programs (bench/bench_*.c): the median of a run's timings, the
 * qsort order of doubles, the integer lists of --tokens/--threads, and the random full-size
 * weights made in memory (xorshift numbers, a named tensor store with its lookup, the sgemm
 * task of the peak references). Each was copied from program to program; one copy here keeps
 * the programs measuring and reporting alike. Linked into every bench program (CMakeLists.txt).
 * Only helpers whose behaviour is the same everywhere live here: what differs per program (which
 * tensors it makes and how they are scaled, how a peak is sampled) stays in the program. */
#ifndef KOE_BENCH_COMMON_H
#define KOE_BENCH_COMMON_H

#include <stdint.h>

/* qsort comparison of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

/* Median of v[0..n) (the mean of the middle two when n is even). Sorts v in place. */
double bench_median(double *v, int n);

/* A comma-separated list of integers in [lo, hi] ("20,100,400") into out[0..max): how many, or
 * -1 for anything else. */
int bench_parse_list(const char *s, int *out, int max, int lo, int hi);

/* xorshift64: the next number in [-1, 1) from *state (not 0). */
float bench_urand(uint64_t *state);

/* Random weights held in memory: named tensors filled from the store's own random numbers. */
typedef struct bench_tensor {
    char name[112];
    int ndim;
    int64_t shape[4];
    float *data;
} bench_tensor;

typedef struct bench_weights {
    bench_tensor *t;
    int n, cap;
    uint64_t rng; /* xorshift state for bench_urand: set it (not 0) before the first add */
} bench_weights;

/* Adds `name` of shape (a[, b[, c]]) (ndim of them) filled with scale·U(−1, 1) + offset. */
void bench_weights_add(bench_weights *w, const char *name, int ndim, int64_t a, int64_t b,
                       int64_t c, float scale, float offset);

/* The model's tensor lookup (koe_tensor_lookup) over a bench_weights passed as user. */
const float *bench_weights_lookup(void *user, const char *name, int *ndim, int64_t shape[4]);

/* Frees every tensor; the store is empty afterwards (its rng is kept). */
void bench_weights_free(bench_weights *w);

/* The sgemm of the peak references: pool task k multiplies a[k] (512×512) by b[k] (512×1024)
 * into c[k] with single-threaded OpenBLAS (the shape class of the model's convolutions). The
 * inputs of tasks may be the same arrays; c[k] must not be. */
enum { BENCH_SGEMM_M = 512, BENCH_SGEMM_K = 512, BENCH_SGEMM_N = 1024 };
typedef struct bench_sgemm_job {
    float *a[2], *b[2], *c[2];
} bench_sgemm_job;
void bench_sgemm_task(void *job, int task);

#endif
