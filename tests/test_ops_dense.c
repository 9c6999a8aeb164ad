/* Dense kernels (src/model/ops_dense.c) against straightforward double-precision versions of the
 * same formulas, with 1 and 2 threads, plus the weight fetcher's errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/ops_dense.h"

static koe_pool *pool2;

/* ---- small helpers ----------------------------------------------------------------------- */
static float frand(uint64_t *s) { /* xorshift64*, uniform in [-1, 1) */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)((double)((*s * 0x2545F4914F6CDD1DULL) >> 40) / (double)(1 << 23) - 1.0);
}

static float *rand_buf(size_t n, uint64_t seed, float scale) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand(&seed);
    return p;
}

/* max |a − b| / max(max |b|, tiny) */
static double rel_err(const float *a, const double *b, size_t n) {
    double e = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return e / m;
}

/* A lookup over a few named tensors held by the test. */
typedef struct named {
    const char *name;
    int ndim;
    int64_t shape[4];
    float *data;
} named;

typedef struct table {
    named t[32];
    int n;
} table;

static const float *table_lookup(void *user, const char *name, int *ndim, int64_t shape[4]) {
    table *tb = user;
    for (int i = 0; i < tb->n; i++)
        if (!strcmp(tb->t[i].name, name)) {
            *ndim = tb->t[i].ndim;
            memcpy(shape, tb->t[i].shape, sizeof tb->t[i].shape);
            return tb->t[i].data;
        }
    return NULL;
}

static float *table_add(table *tb, const char *name, int nd, int64_t a, int64_t b, uint64_t seed) {
    named *t = &tb->t[tb->n++];
    t->name = name;
    t->ndim = nd;
    t->shape[0] = a;
    t->shape[1] = nd > 1 ? b : 0;
    t->data = rand_buf((size_t)a * (nd > 1 ? (size_t)b : 1), seed, 0.5f);
    return t->data;
}

static void table_free(table *tb) {
    for (int i = 0; i < tb->n; i++) free(tb->t[i].data);
    tb->n = 0;
}

/* ---- linear ------------------------------------------------------------------------------ */
static void check_linear(int T, int in, int out, int with_bias) {
    int ldx = in + 3, ldy = out + 5;
    float *x = rand_buf((size_t)T * ldx, 1 + T, 1.0f),
          *w = rand_buf((size_t)out * in, 2 + in, 1.0f);
    float *b = with_bias ? rand_buf((size_t)out, 3, 1.0f) : NULL;
    double *ref = calloc((size_t)T * out, sizeof *ref);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++)
                s += (double)x[(size_t)t * ldx + i] * w[(size_t)o * in + i];
            ref[(size_t)t * out + o] = s;
        }
    float *y = malloc((size_t)T * ldy * sizeof *y), *yc = malloc((size_t)T * out * sizeof *yc);
    for (int threads = 1; threads <= 2; threads++) {
        for (size_t i = 0; i < (size_t)T * ldy; i++) y[i] = 12345.0f; /* padding must survive */
        koe_linear(threads == 2 ? pool2 : NULL, x, ldx, T, in, w, b, out, y, ldy);
        int pad_ok = 1;
        for (int t = 0; t < T; t++) {
            memcpy(yc + (size_t)t * out, y + (size_t)t * ldy, (size_t)out * sizeof *yc);
            for (int o = out; o < ldy; o++) pad_ok &= y[(size_t)t * ldy + o] == 12345.0f;
        }
        double e = rel_err(yc, ref, (size_t)T * out);
        KT_CHECK(e < 1e-5, "linear T=%d in=%d out=%d bias=%d threads=%d: rel err %g", T, in, out,
                 with_bias, threads, e);
        KT_CHECK(pad_ok, "linear wrote outside its columns (threads=%d)", threads);
    }
    free(x);
    free(w);
    free(b);
    free(ref);
    free(y);
    free(yc);
}

/* koe_dense in every layout this CPU runs gives the same results. */
static void check_dense(int T, int in, int out) {
    table tb = {0};
    float *w = table_add(&tb, "fc.weight", 2, out, in, 61);
    float *b = table_add(&tb, "fc.bias", 1, out, 0, 62);
    koe_error err = {0};
    koe_fetcher f = {table_lookup, &tb, &err, 0};
    koe_dense d;
    int rc = koe_dense_load(&f, "fc", in, -1, &d);
    KT_CHECK(rc == 0 && d.in == in && d.out == out && d.layout == koe_dense_best_layout(in, out),
             "dense load %dx%d: %s", out, in, err.msg);
    koe_dense_free(&d);
    float *x = rand_buf((size_t)T * (in + 2), 63, 1.0f), *y = malloc((size_t)T * (out + 3) * 4);
    double *ref = malloc((size_t)T * out * sizeof *ref);
    for (int bias = 0; bias < 2; bias++) {
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) {
                double s = bias ? b[o] : 0.0;
                for (int i = 0; i < in; i++)
                    s += (double)x[(size_t)t * (in + 2) + i] * w[(size_t)o * in + i];
                ref[(size_t)t * out + o] = s;
            }
        static const int layouts[4] = {KOE_DENSE_OUT_IN, KOE_DENSE_IN_OUT, 16, 32};
        for (int li = 0; li < 4; li++) {
            rc = koe_dense_init(&d, w, bias ? b : NULL, in, out, layouts[li], &err);
            if (rc == KOE_ERR_UNSUPPORTED) continue; /* a panel width this CPU lacks */
            KT_CHECK(rc == 0, "dense init layout %d: %s", layouts[li], err.msg);
            if (rc) continue;
            for (int threads = 1; threads <= 2; threads++) {
                for (size_t i = 0; i < (size_t)T * (out + 3); i++) y[i] = 777.0f;
                koe_dense_run(&d, threads == 2 ? pool2 : NULL, x, in + 2, T, y, out + 3);
                double e = 0, m = 1e-30;
                int pad_ok = 1;
                for (int t = 0; t < T; t++) {
                    for (int o = 0; o < out; o++) {
                        e = fmax(e, fabs(y[(size_t)t * (out + 3) + o] - ref[(size_t)t * out + o]));
                        m = fmax(m, fabs(ref[(size_t)t * out + o]));
                    }
                    for (int o = out; o < out + 3; o++)
                        pad_ok &= y[(size_t)t * (out + 3) + o] == 777.0f;
                }
                KT_CHECK(e / m < 1e-5 && pad_ok,
                         "dense %d -> %d, %d rows, layout %d, bias %d, threads %d: rel err %g%s",
                         in, out, T, layouts[li], bias, threads, e / m,
                         pad_ok ? "" : ", wrote past out");
                /* fused gelu_new: the same as running it afterwards */
                float *yg = malloc((size_t)T * (out + 3) * sizeof *yg);
                memcpy(yg, y, (size_t)T * (out + 3) * sizeof *yg);
                for (int t = 0; t < T; t++) koe_gelu_new(yg + (size_t)t * (out + 3), (size_t)out);
                koe_dense_run_gelu(&d, threads == 2 ? pool2 : NULL, x, in + 2, T, y, out + 3);
                KT_CHECK(!memcmp(y, yg, (size_t)T * (out + 3) * sizeof *yg),
                         "dense + gelu_new, layout %d, threads %d", layouts[li], threads);
                free(yg);
            }
            koe_dense_free(&d);
        }
    }
    free(x);
    free(y);
    free(ref);
    table_free(&tb);
}

static void test_linear(void) {
    check_dense(9, 300, 70);
    check_dense(9, 70, 300);
    check_dense(1, 128, 256);   /* a style fc */
    check_dense(13, 40, 33);    /* rows and columns not multiples of the blocks */
    check_dense(25, 200, 1030); /* several panels per thread */
    check_linear(1, 5, 3, 1);
    check_linear(7, 37, 53, 1);
    check_linear(20, 100, 200, 1); /* large enough to be split over threads */
    check_linear(33, 64, 517, 0);
}

/* ---- normalization ----------------------------------------------------------------------- */
static void test_layer_norm(void) {
    int T = 13, C = 70, ld = 75;
    float *x = rand_buf((size_t)T * ld, 11, 2.0f), *sc = rand_buf(C, 12, 1.0f);
    float *sh = rand_buf(C, 13, 1.0f);
    for (int t = 0; t < T; t++) /* a large mean must not cost precision */
        for (int c = 0; c < C; c++) x[(size_t)t * ld + c] += 1000.0f * (t % 3);
    for (int affine = 0; affine < 2; affine++) {
        double *ref = malloc((size_t)T * C * sizeof *ref);
        for (int t = 0; t < T; t++) {
            const float *r = x + (size_t)t * ld;
            double m = 0, v = 0;
            for (int c = 0; c < C; c++) m += r[c];
            m /= C;
            for (int c = 0; c < C; c++) v += (r[c] - m) * (r[c] - m);
            v /= C;
            for (int c = 0; c < C; c++) {
                double y = (r[c] - m) / sqrt(v + 1e-5);
                ref[(size_t)t * C + c] = affine ? y * sc[c] + sh[c] : y;
            }
        }
        /* rows */
        float *xr = malloc((size_t)T * ld * sizeof *xr), *got = malloc((size_t)T * C * sizeof *got);
        memcpy(xr, x, (size_t)T * ld * sizeof *xr);
        koe_layer_norm_rows(xr, T, C, ld, affine ? sc : NULL, affine ? sh : NULL, 1e-5f);
        for (int t = 0; t < T; t++)
            memcpy(got + (size_t)t * C, xr + (size_t)t * ld, (size_t)C * sizeof *got);
        double e = rel_err(got, ref, (size_t)T * C);
        KT_CHECK(e < 2e-6, "layer_norm_rows affine=%d: rel err %g", affine, e);
        /* columns: the same data transposed to [C, T] */
        float *xc = malloc((size_t)C * T * sizeof *xc);
        koe_transpose(x, T, C, ld, xc, T);
        koe_layer_norm_cols(xc, C, T, affine ? sc : NULL, affine ? sh : NULL, 1e-5f);
        koe_transpose(xc, C, T, T, got, C);
        e = rel_err(got, ref, (size_t)T * C);
        KT_CHECK(e < 2e-6, "layer_norm_cols affine=%d: rel err %g", affine, e);
        free(xr);
        free(got);
        free(xc);
        free(ref);
    }
    /* more columns than one block of the column kernel */
    int T2 = 150, C2 = 9;
    float *y = rand_buf((size_t)C2 * T2, 14, 3.0f);
    koe_layer_norm_cols(y, C2, T2, NULL, NULL, 1e-5f);
    double worst = 0;
    for (int t = 0; t < T2; t++) {
        double m = 0, v = 0;
        for (int c = 0; c < C2; c++) m += y[(size_t)c * T2 + t];
        m /= C2;
        for (int c = 0; c < C2; c++) v += pow(y[(size_t)c * T2 + t] - m, 2);
        worst = fmax(worst, fmax(fabs(m), fabs(v / C2 - 1.0)));
    }
    KT_CHECK(worst < 1e-3, "layer_norm_cols over 150 columns: mean/var off by %g", worst);
    float gb[6] = {0.5f, -1.0f, 0.0f, 2.0f, 3.0f, 4.0f}, s[3], h[3];
    koe_ada_ln_affine(gb, 3, s, h);
    KT_CHECK(s[0] == 1.5f && s[1] == 0.0f && s[2] == 1.0f && h[0] == 2.0f && h[2] == 4.0f,
             "AdaLayerNorm affine is (1 + gamma, beta)");
    free(x);
    free(sc);
    free(sh);
    free(y);
}

static void test_gelu(void) {
    enum { N = 2001 };
    float x[N];
    double ref[N];
    for (int i = 0; i < N; i++) {
        x[i] = -10.0f + 0.01f * (float)i;
        double v = x[i];
        ref[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    koe_gelu_new(x, N);
    double e = rel_err(x, ref, N);
    KT_CHECK(e < 1e-6, "gelu_new: rel err %g", e);
    /* far out: exactly x above, 0 below, and no NaN or overflow on the way */
    float far[6] = {50.0f, -50.0f, 1e4f, -1e4f, 3e38f, -3e38f};
    koe_gelu_new(far, 6);
    KT_CHECK(far[0] == 50.0f && far[2] == 1e4f && far[4] == 3e38f, "gelu_new(x) = x for large x");
    KT_CHECK(fabsf(far[1]) < 1e-30f && fabsf(far[3]) < 1e-30f && fabsf(far[5]) < 1e-30f,
             "gelu_new(x) = 0 for very negative x (%g %g %g)", (double)far[1], (double)far[3],
             (double)far[5]);
}

static void test_transpose(void) {
    int T = 37, C = 45;
    float *x = rand_buf((size_t)T * C, 21, 1.0f), *y = malloc((size_t)C * T * sizeof *y);
    koe_transpose(x, T, C, C, y, T);
    int ok = 1;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) ok &= y[(size_t)c * T + t] == x[(size_t)t * C + c];
    KT_CHECK(ok, "transpose moves every element");
    free(x);
    free(y);
}

/* ---- attention --------------------------------------------------------------------------- */
static void test_attention(void) {
    int T = 19, heads = 3, d = 8, hd = heads * d;
    float *qkv = rand_buf((size_t)T * 3 * hd, 31, 2.0f);
    double *ref = calloc((size_t)T * hd, sizeof *ref);
    double *p = malloc((size_t)T * sizeof *p);
    for (int h = 0; h < heads; h++)
        for (int t = 0; t < T; t++) {
            double mx = -1e300, sum = 0;
            for (int s = 0; s < T; s++) {
                double dot = 0;
                for (int i = 0; i < d; i++)
                    dot += (double)qkv[(size_t)t * 3 * hd + h * d + i] *
                           qkv[(size_t)s * 3 * hd + hd + h * d + i];
                p[s] = dot / sqrt((double)d);
                mx = fmax(mx, p[s]);
            }
            for (int s = 0; s < T; s++) sum += p[s] = exp(p[s] - mx);
            for (int i = 0; i < d; i++) {
                double acc = 0;
                for (int s = 0; s < T; s++)
                    acc += p[s] / sum * qkv[(size_t)s * 3 * hd + 2 * hd + h * d + i];
                ref[(size_t)t * hd + h * d + i] = acc;
            }
        }
    float *ctx = malloc((size_t)T * hd * sizeof *ctx);
    for (int threads = 1; threads <= 2; threads++) {
        koe_pool *pl = threads == 2 ? pool2 : NULL;
        float *scratch = malloc(koe_attention_scratch_floats(T, pl) * sizeof(float));
        koe_attention(pl, scratch, qkv, T, heads, d, ctx);
        double e = rel_err(ctx, ref, (size_t)T * hd);
        KT_CHECK(e < 1e-5, "attention threads=%d: rel err %g", threads, e);
        free(scratch);
    }
    free(qkv);
    free(ref);
    free(p);
    free(ctx);
}

/* ---- LSTM -------------------------------------------------------------------------------- */
static double sig(double x) {
    return 1.0 / (1.0 + exp(-x));
}

/* Straight from the definition, one direction at a time, in double. */
static void lstm_ref(table *tb, const float *x, int T, int in, int u, double *y) {
    for (int dir = 0; dir < 2; dir++) {
        int nd;
        int64_t sh[4];
        const float *wih =
            table_lookup(tb, dir ? "l.weight_ih_l0_reverse" : "l.weight_ih_l0", &nd, sh);
        const float *whh =
            table_lookup(tb, dir ? "l.weight_hh_l0_reverse" : "l.weight_hh_l0", &nd, sh);
        const float *bih = table_lookup(tb, dir ? "l.bias_ih_l0_reverse" : "l.bias_ih_l0", &nd, sh);
        const float *bhh = table_lookup(tb, dir ? "l.bias_hh_l0_reverse" : "l.bias_hh_l0", &nd, sh);
        double h[128] = {0}, c[128] = {0}, g[512];
        for (int k = 0; k < T; k++) {
            int t = dir ? T - 1 - k : k;
            for (int r = 0; r < 4 * u; r++) {
                double s = (double)bih[r] + bhh[r];
                for (int i = 0; i < in; i++)
                    s += (double)wih[(size_t)r * in + i] * x[(size_t)t * in + i];
                for (int i = 0; i < u; i++) s += (double)whh[(size_t)r * u + i] * h[i];
                g[r] = s;
            }
            for (int i = 0; i < u; i++) {
                c[i] = sig(g[u + i]) * c[i] + sig(g[i]) * tanh(g[2 * u + i]);
                h[i] = sig(g[3 * u + i]) * tanh(c[i]);
                y[(size_t)t * 2 * u + dir * u + i] = h[i];
            }
        }
    }
}

static void lstm_table(table *tb, int in, int u) {
    static const char *names[8] = {"l.weight_ih_l0",         "l.weight_hh_l0",
                                   "l.bias_ih_l0",           "l.bias_hh_l0",
                                   "l.weight_ih_l0_reverse", "l.weight_hh_l0_reverse",
                                   "l.bias_ih_l0_reverse",   "l.bias_hh_l0_reverse"};
    for (int dir = 0; dir < 2; dir++) {
        table_add(tb, names[4 * dir], 2, 4 * u, in, 40 + dir);
        table_add(tb, names[4 * dir + 1], 2, 4 * u, u, 42 + dir);
        table_add(tb, names[4 * dir + 2], 1, 4 * u, 0, 44 + dir);
        table_add(tb, names[4 * dir + 3], 1, 4 * u, 0, 46 + dir);
    }
}

static void check_lstm(int u);

static void test_lstm(void) {
    check_lstm(6);  /* gate rows not a multiple of the vector width: the sgemv path */
    check_lstm(8);  /* less than one panel */
    check_lstm(72); /* panels and a remainder */
}

static void check_lstm(int u) {
    int T = 11, in = 10;
    table tb = {0};
    lstm_table(&tb, in, u);
    koe_error err = {0};
    koe_fetcher f = {table_lookup, &tb, &err, 0};
    koe_lstm *l = koe_lstm_load(&f, "l", in, -1);
    KT_CHECK(l != NULL, "lstm load: %s", err.msg);
    if (!l) {
        table_free(&tb);
        return;
    }
    KT_CHECK(koe_lstm_in(l) == in && koe_lstm_units(l) == u, "lstm widths from shapes");
    float *x = rand_buf((size_t)T * in, 51, 1.5f);
    double *ref = malloc((size_t)T * 2 * u * sizeof *ref);
    lstm_ref(&tb, x, T, in, u, ref);
    float *y = malloc((size_t)T * 2 * u * sizeof *y);
    float *first = malloc((size_t)T * 2 * u * sizeof *first);
    for (int threads = 1; threads <= 2; threads++) {
        koe_pool *pl = threads == 2 ? pool2 : NULL;
        float *scratch = malloc(koe_lstm_scratch_floats(l, T) * sizeof(float));
        koe_lstm_run(l, pl, scratch, x, in, T, y, 2 * u);
        double e = rel_err(y, ref, (size_t)T * 2 * u);
        KT_CHECK(e < 1e-5, "lstm u=%d threads=%d: rel err %g", u, threads, e);
        if (threads == 1)
            memcpy(first, y, (size_t)T * 2 * u * sizeof *y);
        else
            KT_CHECK(!memcmp(first, y, (size_t)T * 2 * u * sizeof *y),
                     "lstm: 1 and 2 threads give the same bits");
        free(scratch);
    }
    /* In place: input rows of width 2u + 4, output into their first 2u columns. */
    {
        int in2 = 2 * u + 4;
        table tb2 = {0};
        lstm_table(&tb2, in2, u);
        koe_fetcher f2 = {table_lookup, &tb2, &err, 0};
        koe_lstm *l2 = koe_lstm_load(&f2, "l", in2, u);
        float *x2 = rand_buf((size_t)T * in2, 52, 1.0f), *buf = malloc((size_t)T * in2 * 4);
        double *ref2 = malloc((size_t)T * 2 * u * sizeof *ref2);
        lstm_ref(&tb2, x2, T, in2, u, ref2);
        memcpy(buf, x2, (size_t)T * in2 * 4);
        float *scratch = malloc(koe_lstm_scratch_floats(l2, T) * sizeof(float));
        koe_lstm_run(l2, pool2, scratch, buf, in2, T, buf, in2);
        float *got = malloc((size_t)T * 2 * u * sizeof *got);
        for (int t = 0; t < T; t++)
            memcpy(got + (size_t)t * 2 * u, buf + (size_t)t * in2, (size_t)2 * u * sizeof *got);
        double e = rel_err(got, ref2, (size_t)T * 2 * u);
        KT_CHECK(e < 1e-5, "lstm in place: rel err %g", e);
        free(x2);
        free(buf);
        free(ref2);
        free(scratch);
        free(got);
        koe_lstm_free(l2);
        table_free(&tb2);
    }
    /* Repeated rows: the same as the LSTM over the expanded sequence. */
    {
        int32_t rep[11] = {1, 3, 2, 1, 5, 1, 1, 4, 2, 1, 3};
        int steps = 0;
        for (int t = 0; t < T; t++) steps += rep[t];
        float *xe = malloc((size_t)steps * in * sizeof *xe);
        for (int t = 0, s = 0; t < T; t++)
            for (int r = 0; r < rep[t]; r++, s++)
                memcpy(xe + (size_t)s * in, x + (size_t)t * in, (size_t)in * sizeof *xe);
        double *refe = malloc((size_t)steps * 2 * u * sizeof *refe);
        lstm_ref(&tb, xe, steps, in, u, refe);
        float *ye = malloc((size_t)steps * 2 * u * sizeof *ye);
        float *scratch = malloc(koe_lstm_scratch_floats(l, T) * sizeof(float));
        koe_lstm_run_repeated(l, pool2, scratch, x, in, T, rep, ye, 2 * u);
        double e = rel_err(ye, refe, (size_t)steps * 2 * u);
        KT_CHECK(e < 1e-5, "lstm repeated rows: rel err %g", e);
        free(xe);
        free(refe);
        free(ye);
        free(scratch);
    }
    free(x);
    free(ref);
    free(y);
    free(first);
    koe_lstm_free(l);
    table_free(&tb);
}

/* ---- weight errors ----------------------------------------------------------------------- */
static void test_fetch_errors(void) {
    table tb = {0};
    lstm_table(&tb, 10, 6);
    koe_error err = {0};
    koe_fetcher f = {table_lookup, &tb, &err, 0};
    KT_CHECK(koe_lstm_load(&f, "nope", -1, -1) == NULL && err.code == KOE_ERR_NOT_FOUND &&
                 strstr(err.msg, "nope.weight_ih_l0"),
             "missing LSTM names its first tensor: %s", err.msg);
    koe_fetcher f2 = {table_lookup, &tb, &err, 0};
    KT_CHECK(koe_lstm_load(&f2, "l", 11, -1) == NULL && err.code == KOE_ERR_FORMAT &&
                 strstr(err.msg, "l.weight_ih_l0") && strstr(err.msg, "[24, 10]"),
             "wrong input width names tensor and shape: %s", err.msg);
    tb.t[5].shape[1] = 5; /* weight_hh_l0_reverse [24, 5] */
    koe_fetcher f3 = {table_lookup, &tb, &err, 0};
    KT_CHECK(koe_lstm_load(&f3, "l", -1, -1) == NULL && err.code == KOE_ERR_FORMAT &&
                 strstr(err.msg, "l.weight_hh_l0_reverse"),
             "mis-shaped recurrent weight is named: %s", err.msg);
    koe_fetcher f4 = {table_lookup, &tb, &err, 0};
    koe_dense d;
    KT_CHECK(koe_dense_load(&f4, "fc", -1, -1, &d) == KOE_ERR_NOT_FOUND &&
                 strstr(err.msg, "fc.weight"),
             "missing linear layer is named: %s", err.msg);
    /* after a failure every fetch returns NULL, keeping the first error */
    KT_CHECK(koe_fetch(&f4, "l.bias_ih_l0", 1, (int64_t[]){24}) == NULL &&
                 strstr(err.msg, "fc.weight"),
             "the first error is kept");
    table_free(&tb);
}

int main(void) {
    koe_error err = {0};
    pool2 = koe_pool_new(2, &err);
    if (!pool2) {
        fprintf(stderr, "pool: %s\n", err.msg);
        return 1;
    }
    kt_run("linear", test_linear);
    kt_run("layer_norm", test_layer_norm);
    kt_run("gelu_new", test_gelu);
    kt_run("transpose", test_transpose);
    kt_run("attention", test_attention);
    kt_run("lstm", test_lstm);
    kt_run("fetch_errors", test_fetch_errors);
    koe_pool_free(pool2);
    return kt_finish();
}
