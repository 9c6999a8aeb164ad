/* Helpers shared by the benchmark programs: see common.h. */
#include "common.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int bench_parse_list(const char *s, int *out, int max, int lo, int hi) {
    int n = 0;
    while (*s && n < max) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s || v < lo || v > hi) return -1;
        out[n++] = (int)v;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}

float bench_urand(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (float)(*state >> 40) / 8388608.0f - 1.0f;
}

void bench_weights_add(bench_weights *w, const char *name, int ndim, int64_t a, int64_t b,
                       int64_t c, float scale, float offset) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->t = realloc(w->t, (size_t)w->cap * sizeof *w->t);
        if (!w->t) abort();
    }
    bench_tensor *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int64_t sh[3] = {a, b, c};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)(t->shape[i] = sh[i]);
    t->data = malloc(n * sizeof(float));
    if (!t->data) abort();
    for (size_t i = 0; i < n; i++) t->data[i] = scale * bench_urand(&w->rng) + offset;
}

const float *bench_weights_lookup(void *user, const char *name, int *ndim, int64_t shape[4]) {
    const bench_weights *w = user;
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) {
            *ndim = w->t[i].ndim;
            memcpy(shape, w->t[i].shape, sizeof w->t[i].shape);
            return w->t[i].data;
        }
    return NULL;
}

void bench_weights_free(bench_weights *w) {
    for (int i = 0; i < w->n; i++) free(w->t[i].data);
    free(w->t);
    w->t = NULL;
    w->n = w->cap = 0;
}

void bench_sgemm_task(void *job, int task) {
    bench_sgemm_job *j = job;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BENCH_SGEMM_M, BENCH_SGEMM_N,
                BENCH_SGEMM_K, 1.0f, j->a[task], BENCH_SGEMM_K, j->b[task], BENCH_SGEMM_N, 0.0f,
                j->c[task], BENCH_SGEMM_N);
}
