/* The convolution kernels against direct implementations written here from the definitions. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/ops_conv.h"
#include "model/pool.h"

static uint64_t rng_state = 12345;
static uint32_t rnd_u32(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}
static int rnd_int(int lo, int hi) { /* inclusive */
    return lo + (int)(rnd_u32() % (uint32_t)(hi - lo + 1));
}
static float rnd_f(void) {
    return (float)rnd_u32() / 2147483648.0f - 1.0f;
}
static float *rnd_vec(size_t n) {
    float *v = malloc(n * sizeof *v + 1);
    for (size_t i = 0; i < n; i++) v[i] = rnd_f();
    return v;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}
static double max_diff(const float *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* y[o,t] = b[o] + Σ_i Σ_j w[o,i,j] x[g·cig+i, t·s + j·d − p] */
static void conv_ref(const koe_conv_desc *d, const float *w, const float *b, const float *x,
                     int t_in, int t_out, double *y) {
    int g_n = d->groups, cig = d->cin / g_n, cog = d->cout / g_n;
    for (int o = 0; o < d->cout; o++) {
        int g = o / cog;
        for (int t = 0; t < t_out; t++) {
            double acc = b ? b[o] : 0;
            for (int i = 0; i < cig; i++)
                for (int j = 0; j < d->k; j++) {
                    int s = t * d->stride + j * d->dil - d->pad;
                    if (s < 0 || s >= t_in) continue;
                    acc += (double)w[((size_t)o * cig + i) * d->k + j] *
                           x[(size_t)(g * cig + i) * t_in + s];
                }
            y[(size_t)o * t_out + t] = acc;
        }
    }
}

/* out[o, t·s + j − p] += w[i, o', j] x[i, t] */
static void convt_ref(const koe_convt_desc *d, const float *w, const float *b, const float *x,
                      int t_in, int t_out, double *y) {
    int cig = d->cin / d->groups, cog = d->cout / d->groups;
    for (int o = 0; o < d->cout; o++)
        for (int t = 0; t < t_out; t++) y[(size_t)o * t_out + t] = b ? b[o] : 0;
    for (int i = 0; i < d->cin; i++) {
        int g = i / cig;
        for (int og = 0; og < cog; og++) {
            int o = g * cog + og;
            for (int t = 0; t < t_in; t++)
                for (int j = 0; j < d->k; j++) {
                    int u = t * d->stride + j - d->pad;
                    if (u < 0 || u >= t_out) continue;
                    y[(size_t)o * t_out + u] +=
                        (double)w[((size_t)i * cog + og) * d->k + j] * x[(size_t)i * t_in + t];
                }
        }
    }
}

static koe_pool *pool2;

static void check_conv(const koe_conv_desc *d, int t_in, int with_bias, int accumulate,
                       koe_pool *pool) {
    koe_error err = {0};
    size_t wn = (size_t)d->cout * (d->cin / (d->groups ? d->groups : 1)) * d->k;
    float *w = rnd_vec(wn), *b = with_bias ? rnd_vec(d->cout) : NULL;
    float *x = rnd_vec((size_t)d->cin * t_in);
    koe_conv *c = koe_conv_new(d, w, b, &err);
    KT_CHECK(c != NULL, "koe_conv_new: %s", err.msg);
    if (!c) goto out;
    koe_conv_desc full = *koe_conv_get_desc(c);
    int t_out = koe_conv_out_len(c, t_in);
    long expect = ((long)t_in + 2 * full.pad - (long)full.dil * (full.k - 1) - 1);
    expect = expect < 0 ? 0 : expect / full.stride + 1;
    KT_CHECK(t_out == expect, "out_len %d, expected %ld", t_out, expect);
    if (t_out > 0) {
        size_t n = (size_t)d->cout * t_out;
        float *y = rnd_vec(n), *y0 = malloc(n * sizeof *y0);
        memcpy(y0, y, n * sizeof *y0);
        double *r = malloc(n * sizeof *r);
        conv_ref(&full, w, b, x, t_in, t_out, r);
        if (accumulate)
            for (size_t i = 0; i < n; i++) r[i] += y0[i];
        size_t ns = koe_conv_scratch_floats(c, t_in, pool);
        float *scratch = malloc(ns * sizeof(float) + 1);
        koe_conv_run(c, pool, scratch, x, t_in, y, accumulate);
        double e = max_diff(y, r, n), scale = fmax(1.0, max_abs(y, n));
        KT_CHECK(e <= 1e-5 * scale * sqrt((double)d->k * d->cin),
                 "conv cin %d cout %d k %d s %d p %d d %d g %d t_in %d acc %d: err %g", d->cin,
                 d->cout, d->k, full.stride, d->pad, full.dil, full.groups, t_in, accumulate, e);
        free(scratch);
        free(y);
        free(y0);
        free(r);
    }
    koe_conv_free(c);
out:
    free(w);
    free(b);
    free(x);
}

static void test_conv_fixed(void) {
    /* The shapes Kokoro uses (small channel counts). */
    koe_conv_desc shapes[] = {
        {.cin = 16, .cout = 16, .k = 3, .pad = 1},                          /* conv1/conv2 k3 */
        {.cin = 16, .cout = 8, .k = 1},                                     /* conv1x1 */
        {.cin = 1, .cout = 1, .k = 3, .stride = 2, .pad = 1},               /* F0_conv */
        {.cin = 22, .cout = 16, .k = 12, .stride = 6, .pad = 3},            /* noise_convs.0 */
        {.cin = 16, .cout = 16, .k = 7, .pad = 15, .dil = 5},               /* dilated resblock */
        {.cin = 16, .cout = 16, .k = 11, .pad = 15, .dil = 3},              /* dilated resblock */
        {.cin = 24, .cout = 16, .k = 5, .pad = 2},                          /* text encoder */
        {.cin = 16, .cout = 22, .k = 7, .pad = 3},                          /* conv_post */
        {.cin = 12, .cout = 12, .k = 3, .pad = 1, .groups = 12},            /* depthwise */
        {.cin = 12, .cout = 8, .k = 3, .stride = 3, .pad = 2, .groups = 4}, /* grouped strided */
    };
    int lens[] = {1, 2, 7, 31, 33, 257, 601};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            check_conv(&shapes[s], lens[l], 1, 0, NULL);
            check_conv(&shapes[s], lens[l], l & 1, 1, pool2);
        }
}

static void test_conv_random(void) {
    for (int it = 0; it < 150; it++) {
        koe_conv_desc d = {0};
        d.groups = rnd_int(1, 3);
        d.cin = d.groups * rnd_int(1, 9);
        d.cout = d.groups * rnd_int(1, 9);
        d.k = rnd_int(1, 12);
        d.stride = rnd_int(1, 4);
        d.dil = rnd_int(1, 5);
        d.pad = rnd_int(0, 2 * d.k);
        int t_in = rnd_int(1, 700);
        check_conv(&d, t_in, rnd_int(0, 1), rnd_int(0, 1), (it & 1) ? pool2 : NULL);
    }
}

/* Generator-sized dilated convolutions (these take the frequency-domain path): relative error
 * to the largest output, over several tiles and both threads. */
static void test_conv_generator_sizes(void) {
    koe_conv_desc shapes[] = {
        {.cin = 128, .cout = 128, .k = 11, .pad = 25, .dil = 5},
        {.cin = 128, .cout = 128, .k = 7, .pad = 9, .dil = 3},
        {.cin = 64, .cout = 64, .k = 7, .pad = 3, .dil = 1},
    };
    int t_in = 2501;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const koe_conv_desc *d = &shapes[s];
        float *w = rnd_vec((size_t)d->cout * d->cin * d->k), *b = rnd_vec(d->cout);
        float *x = rnd_vec((size_t)d->cin * t_in);
        koe_conv *c = koe_conv_new(d, w, b, NULL);
        KT_EXPECT(c != NULL);
        int t_out = koe_conv_out_len(c, t_in);
        size_t n = (size_t)d->cout * t_out;
        float *y = malloc(n * sizeof *y),
              *scratch = malloc(sizeof(float) * (koe_conv_scratch_floats(c, t_in, pool2) + 1));
        double *r = malloc(n * sizeof *r);
        koe_conv_run(c, pool2, scratch, x, t_in, y, 0);
        conv_ref(koe_conv_get_desc(c), w, b, x, t_in, t_out, r);
        double m = 0;
        for (size_t i = 0; i < n; i++) m = fmax(m, fabs(r[i]));
        double e = max_diff(y, r, n) / m;
        KT_CHECK(e < 2e-6, "k %d d %d C %d: relative error %g", d->k, d->dil, d->cin, e);
        KT_CHECK(koe_conv_macs(c, t_in) > 0, "macs");
        koe_conv_free(c);
        free(w);
        free(b);
        free(x);
        free(y);
        free(scratch);
        free(r);
    }
}

static void check_convt(const koe_convt_desc *d, int t_in, int with_bias, koe_pool *pool) {
    koe_error err = {0};
    int groups = d->groups ? d->groups : 1;
    size_t wn = (size_t)d->cin * (d->cout / groups) * d->k;
    float *w = rnd_vec(wn), *b = with_bias ? rnd_vec(d->cout) : NULL;
    float *x = rnd_vec((size_t)d->cin * t_in);
    koe_convt *c = koe_convt_new(d, w, b, &err);
    KT_CHECK(c != NULL, "koe_convt_new: %s", err.msg);
    if (!c) goto out;
    koe_convt_desc full = *d;
    if (!full.stride) full.stride = 1;
    full.groups = groups;
    int t_out = koe_convt_out_len(c, t_in);
    long expect = (long)(t_in - 1) * full.stride - 2 * full.pad + full.k + full.out_pad;
    KT_CHECK(t_out == (expect > 0 ? expect : 0), "convt out_len %d, expected %ld", t_out, expect);
    if (t_out > 0) {
        size_t n = (size_t)d->cout * t_out;
        float *y = rnd_vec(n);
        double *r = malloc(n * sizeof *r);
        convt_ref(&full, w, b, x, t_in, t_out, r);
        size_t ns = koe_convt_scratch_floats(c, t_in, pool);
        float *scratch = malloc(ns * sizeof(float) + 1);
        koe_convt_run(c, pool, scratch, x, t_in, y);
        double e = max_diff(y, r, n), scale = fmax(1.0, max_abs(y, n));
        KT_CHECK(e <= 1e-5 * scale * sqrt((double)d->k * d->cin),
                 "convt cin %d cout %d k %d s %d p %d op %d g %d t_in %d: err %g", d->cin, d->cout,
                 d->k, full.stride, d->pad, d->out_pad, groups, t_in, e);
        free(scratch);
        free(y);
        free(r);
    }
    koe_convt_free(c);
out:
    free(w);
    free(b);
    free(x);
}

static void test_convt(void) {
    koe_convt_desc shapes[] = {
        {.cin = 16, .cout = 8, .k = 20, .stride = 10, .pad = 5},                         /* ups.0 */
        {.cin = 8, .cout = 4, .k = 12, .stride = 6, .pad = 3},                           /* ups.1 */
        {.cin = 8, .cout = 8, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .groups = 8}, /* pool */
    };
    int lens[] = {1, 2, 5, 30, 61, 300};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            check_convt(&shapes[s], lens[l], 1, NULL);
            check_convt(&shapes[s], lens[l], 0, pool2);
        }
    for (int it = 0; it < 100; it++) {
        koe_convt_desc d = {0};
        d.groups = rnd_int(1, 3);
        d.cin = d.groups * rnd_int(1, 6);
        d.cout = d.groups * rnd_int(1, 6);
        d.k = rnd_int(1, 13);
        d.stride = rnd_int(1, 7);
        d.pad = rnd_int(0, (d.k - 1) / 2);
        d.out_pad = rnd_int(0, d.stride - 1);
        check_convt(&d, rnd_int(1, 400), rnd_int(0, 1), (it & 1) ? pool2 : NULL);
    }
}

static void test_weight_norm(void) {
    float v[2 * 3] = {3, 0, 4, 1, 1, 1}, g[2] = {10, 2}, out[6];
    koe_weight_norm(g, v, 2, 3, out);
    KT_EXPECT(fabsf(out[0] - 6) < 1e-6f && out[1] == 0 && fabsf(out[2] - 8) < 1e-6f);
    for (int i = 3; i < 6; i++) KT_EXPECT(fabsf(out[i] - 2 / sqrtf(3)) < 1e-6f);
    koe_weight_norm(g, v, 2, 3, v); /* in place */
    KT_EXPECT(fabsf(v[2] - 8) < 1e-6f);
}

static void test_adain_and_activations(void) {
    int C = 37, T = 1001;
    float *x = rnd_vec((size_t)C * T), *gb = rnd_vec(2 * C), *nw = rnd_vec(C), *nb = rnd_vec(C);
    float *alpha = rnd_vec(C);
    for (int c = 0; c < C; c++) {
        alpha[c] = 0.2f + 2 * fabsf(alpha[c]);
        for (int t = 0; t < T; t++) x[(size_t)c * T + t] = 3 * x[(size_t)c * T + t] + c;
    }
    float *a = malloc(C * sizeof *a), *b = malloc(C * sizeof *b);
    float *y = malloc((size_t)C * T * sizeof *y), *z = malloc((size_t)C * T * sizeof *z);
    for (int variant = 0; variant < 2; variant++) {
        const float *w = variant ? nw : NULL, *bb = variant ? nb : NULL;
        koe_adain_coefs(variant ? pool2 : NULL, x, C, T, gb, w, bb, a, b);
        double e_in = 0, e_sn = 0, e_lr = 0;
        koe_affine_snake(pool2, x, y, C, T, a, b, alpha);
        memcpy(z, x, (size_t)C * T * sizeof *z);
        koe_affine_lrelu(NULL, z, z, C, T, a, b, 0.2f); /* in place */
        for (int c = 0; c < C; c++) {
            const float *xc = x + (size_t)c * T;
            double m = 0, v = 0;
            for (int t = 0; t < T; t++) m += xc[t];
            m /= T;
            for (int t = 0; t < T; t++) v += (xc[t] - m) * (xc[t] - m);
            v /= T;
            for (int t = 0; t < T; t++) {
                double in = (xc[t] - m) / sqrt(v + 1e-5);
                if (variant) in = in * nw[c] + nb[c];
                double u = (1 + gb[c]) * in + gb[C + c];
                double got = (double)a[c] * xc[t] + b[c];
                e_in = fmax(e_in, fabs(got - u));
                double sn = u + pow(sin(alpha[c] * u), 2) / alpha[c];
                e_sn = fmax(e_sn, fabs(y[(size_t)c * T + t] - sn));
                double lr = u > 0 ? u : 0.2 * u;
                e_lr = fmax(e_lr, fabs(z[(size_t)c * T + t] - lr));
            }
        }
        KT_CHECK(e_in < 2e-5, "adain error %g", e_in);
        KT_CHECK(e_sn < 5e-5, "snake error %g", e_sn);
        KT_CHECK(e_lr < 2e-5, "lrelu error %g", e_lr);
    }
    /* Snake in place, with no affine, over a wide range of arguments. */
    int n = 4099;
    float *v = malloc(n * sizeof *v), *v0 = malloc(n * sizeof *v0);
    for (int i = 0; i < n; i++) v[i] = v0[i] = (i - n / 2) * 0.05f;
    float al = 1.7f;
    koe_affine_snake(NULL, v, v, 1, n, NULL, NULL, &al);
    double e = 0;
    for (int i = 0; i < n; i++)
        e = fmax(e, fabs(v[i] - (v0[i] + pow(sin((double)al * v0[i]), 2) / al)));
    KT_CHECK(e < 3e-5, "snake in place error %g", e);
    float l[4] = {-2, -0.5f, 0, 3};
    koe_lrelu(l, 4, 0.1f);
    KT_EXPECT(fabsf(l[0] + 0.2f) < 1e-7f && fabsf(l[1] + 0.05f) < 1e-7f && l[2] == 0 && l[3] == 3);
    free(v);
    free(v0);
    free(x);
    free(gb);
    free(nw);
    free(nb);
    free(alpha);
    free(a);
    free(b);
    free(y);
    free(z);
}

static void test_bad_desc(void) {
    koe_error err = {0};
    koe_conv_desc d = {.cin = 6, .cout = 4, .k = 3, .groups = 4};
    float w[64] = {0};
    KT_EXPECT(koe_conv_new(&d, w, NULL, &err) == NULL && err.code == KOE_ERR_INVALID);
    koe_convt_desc t = {.cin = 0, .cout = 4, .k = 3};
    KT_EXPECT(koe_convt_new(&t, w, NULL, &err) == NULL && err.code == KOE_ERR_INVALID);
}

int main(void) {
    pool2 = koe_pool_new(2, NULL);
    kt_run("weight_norm", test_weight_norm);
    kt_run("conv_fixed", test_conv_fixed);
    kt_run("conv_random", test_conv_random);
    kt_run("conv_generator_sizes", test_conv_generator_sizes);
    kt_run("convt", test_convt);
    kt_run("adain_activations", test_adain_and_activations);
    kt_run("bad_desc", test_bad_desc);
    koe_pool_free(pool2);
    return kt_finish();
}
