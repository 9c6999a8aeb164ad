/* Resampler quality and streaming behaviour: passband flatness, stopband (images when going up,
 * aliases when going down), frequency and time alignment of a sine, exact output length, chunked
 * calls identical to one call, argument errors. */
#include "harness.h"
#include "koe/audio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Resamples all of x in one call plus flush. Returns a malloc'd buffer and its length. */
static float *resample_all(int in_rate, int out_rate, const float *x, size_t n, size_t *out_n) {
    koe_error err = {0};
    koe_resampler *rs = koe_resampler_new(in_rate, out_rate, &err);
    KT_CHECK(rs != NULL, "new %d -> %d: %s", in_rate, out_rate, err.msg);
    if (!rs) return NULL;
    size_t cap = koe_resampler_max_output(rs, n) + koe_resampler_max_output(rs, 0);
    float *y = malloc(cap * sizeof *y);
    size_t a = 0, b = 0;
    KT_EXPECT(koe_resampler_process(rs, x, n, y, cap, &a, &err) == 0);
    KT_EXPECT(koe_resampler_flush(rs, y + a, cap - a, &b, &err) == 0);
    koe_resampler_free(rs);
    *out_n = a + b;
    return y;
}

static float *sine(size_t n, double freq, double rate, double amp) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / rate));
    return x;
}

/* Amplitude of the component at freq over [from, to) with a Hann window (a single DFT bin at an
 * arbitrary frequency; the window keeps leakage from the strong tone far below -60 dB). */
static double tone_amplitude(const float *y, size_t from, size_t to, double freq, double rate) {
    double re = 0, im = 0, wsum = 0;
    size_t len = to - from;
    for (size_t i = 0; i < len; i++) {
        double w = 0.5 - 0.5 * cos(2 * M_PI * (double)i / (double)(len - 1));
        double ph = 2 * M_PI * freq * (double)(from + i) / rate;
        re += w * y[from + i] * cos(ph);
        im -= w * y[from + i] * sin(ph);
        wsum += w;
    }
    return 2 * sqrt(re * re + im * im) / wsum;
}

static double db(double v) {
    return 20 * log10(v);
}

static void test_passband_and_images_up(void) {
    /* 22050 -> 24000: the espeak-ng voice to Kokoro's rate. */
    const int in = 22050, out = 24000;
    const size_t n = 22050; /* 1 s */
    double worst_pass = 0, worst_image = -200;
    for (double f = 100; f <= 9000; f += 700) {
        float *x = sine(n, f, in, 0.5);
        size_t m = 0;
        float *y = resample_all(in, out, x, n, &m);
        if (!y) return;
        double a = tone_amplitude(y, 2000, m - 2000, f, out);
        double dev = fabs(db(a / 0.5));
        if (dev > worst_pass) worst_pass = dev;
        /* The image of f around the input rate (in - f) folds to f + (out - in) at 24 kHz. */
        double image = tone_amplitude(y, 2000, m - 2000, f + (out - in), out);
        if (db(image / a) > worst_image) worst_image = db(image / a);
        free(x);
        free(y);
    }
    /* Tones in the transition band: their images (in - f) land between the input Nyquist and the
     * output Nyquist, the hardest place for the stopband. */
    double worst_edge = -200;
    for (double f = 10100; f <= 11000; f += 300) {
        float *x = sine(n, f, in, 0.5);
        size_t m = 0;
        float *y = resample_all(in, out, x, n, &m);
        double image = tone_amplitude(y, 2000, m - 2000, in - f, out);
        if (db(image / 0.5) > worst_edge) worst_edge = db(image / 0.5);
        free(x);
        free(y);
    }
    KT_CHECK(worst_edge < -60, "stopband from 11025 Hz at least 60 dB (worst %.1f dB)", worst_edge);
    KT_CHECK(worst_pass < 0.1, "passband to 9 kHz within 0.1 dB (worst %.4f dB)", worst_pass);
    KT_CHECK(worst_image < -60, "images at least 60 dB down (worst %.1f dB)", worst_image);
    fprintf(stderr, "22050->24000: passband worst %.4f dB, image worst %.1f dB, edge %.1f dB\n",
            worst_pass, worst_image, worst_edge);
}

static void test_alias_down(void) {
    /* 48000 -> 24000: a 14 kHz tone is above the new Nyquist and must not alias to 10 kHz. */
    const size_t n = 48000;
    float *x = sine(n, 14000, 48000, 0.5);
    size_t m = 0;
    float *y = resample_all(48000, 24000, x, n, &m);
    if (!y) return;
    double alias = tone_amplitude(y, 2000, m - 2000, 10000, 24000);
    KT_CHECK(db(alias / 0.5) < -60, "alias of 14 kHz at %.1f dB", db(alias / 0.5));
    free(x);
    free(y);
    x = sine(n, 8000, 48000, 0.5);
    y = resample_all(48000, 24000, x, n, &m);
    double a = tone_amplitude(y, 2000, m - 2000, 8000, 24000);
    KT_CHECK(fabs(db(a / 0.5)) < 0.1, "8 kHz passes 48k -> 24k (%.4f dB)", db(a / 0.5));
    free(x);
    free(y);
}

static void test_sine_alignment(void) {
    const int in = 22050, out = 24000;
    const size_t n = 3 * 22050 + 17;
    float *x = sine(n, 440, in, 0.8);
    size_t m = 0;
    float *y = resample_all(in, out, x, n, &m);
    if (!y) return;
    size_t want = (size_t)(((uint64_t)n * out + in - 1) / in);
    KT_CHECK(m == want, "length %zu, want ceil(n * 24000 / 22050) = %zu", m, want);
    /* Same sine, same phase, at the new rate: no delay, no frequency change. */
    double maxerr = 0;
    for (size_t k = 200; k + 200 < m; k++) {
        double e = fabs(y[k] - 0.8 * sin(2 * M_PI * 440 * (double)k / out));
        if (e > maxerr) maxerr = e;
    }
    KT_CHECK(maxerr < 1e-3, "matches the ideal 440 Hz sine at 24 kHz (max error %g)", maxerr);
    /* Zero crossings: frequency preserved. */
    double first = -1, last = -1;
    int crossings = 0;
    for (size_t k = 1; k < m; k++)
        if (y[k - 1] < 0 && y[k] >= 0) {
            double t = (double)(k - 1) + y[k - 1] / (double)(y[k - 1] - y[k]);
            if (first < 0) first = t;
            last = t;
            crossings++;
        }
    double f = (crossings - 1) * (double)out / (last - first);
    KT_CHECK(fabs(f - 440) < 0.01, "frequency %.4f Hz", f);
    free(x);
    free(y);
}

static void test_chunked_equals_whole(void) {
    const int rates[][2] = {{22050, 24000}, {24000, 22050}, {48000, 24000}, {16000, 24000}};
    for (int r = 0; r < 4; r++) {
        const size_t n = 30011;
        float *x = malloc(n * sizeof *x);
        unsigned s = 12345;
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
        }
        size_t m = 0;
        float *whole = resample_all(rates[r][0], rates[r][1], x, n, &m);
        koe_error err = {0};
        koe_resampler *rs = koe_resampler_new(rates[r][0], rates[r][1], &err);
        float *y = malloc((m + 64) * sizeof *y);
        size_t got = 0, done = 0;
        static const size_t chunks[] = {1, 2, 3, 5, 77, 480, 1, 2047, 4096, 9};
        for (int c = 0; done < n; c = (c + 1) % 10) {
            size_t k = chunks[c] < n - done ? chunks[c] : n - done;
            size_t cap = koe_resampler_max_output(rs, k), p = 0;
            float *tmp = malloc(cap * sizeof *tmp);
            KT_EXPECT(koe_resampler_process(rs, x + done, k, tmp, cap, &p, &err) == 0);
            if (got + p <= m) memcpy(y + got, tmp, p * sizeof *tmp);
            got += p;
            done += k;
            free(tmp);
        }
        size_t cap = koe_resampler_max_output(rs, 0), p = 0;
        float *tmp = malloc(cap * sizeof *tmp);
        KT_EXPECT(koe_resampler_flush(rs, tmp, cap, &p, &err) == 0);
        if (got + p <= m) memcpy(y + got, tmp, p * sizeof *tmp);
        got += p;
        KT_CHECK(got == m && memcmp(y, whole, m * sizeof *y) == 0,
                 "%d -> %d: chunked output identical to one call (%zu vs %zu samples)", rates[r][0],
                 rates[r][1], got, m);
        /* Reset gives a fresh stream with the same output. */
        koe_resampler_reset(rs);
        float *again = malloc(koe_resampler_max_output(rs, n) * sizeof *again);
        KT_EXPECT(koe_resampler_process(rs, x, n, again, koe_resampler_max_output(rs, n), &p,
                                        &err) == 0 &&
                  memcmp(again, whole, p * sizeof *again) == 0);
        free(again);
        free(tmp);
        koe_resampler_free(rs);
        free(y);
        free(whole);
        free(x);
    }
}

static void test_constant_and_nan(void) {
    size_t n = 5000, m = 0;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = 0.25f;
    x[2500] = NAN;
    float *y = resample_all(22050, 24000, x, n, &m);
    int finite = 1;
    for (size_t i = 0; i < m; i++) finite &= isfinite(y[i]) != 0;
    KT_CHECK(finite, "NaN input gives finite output");
    KT_CHECK(fabs(y[1000] - 0.25f) < 1e-5, "DC passes with unit gain (%g)", y[1000]);
    free(x);
    free(y);
}

static void test_invalid(void) {
    koe_error err = {0};
    KT_EXPECT(koe_resampler_new(0, 24000, &err) == NULL && err.code == KOE_ERR_INVALID);
    KT_EXPECT(koe_resampler_new(22050, 24001, &err) == NULL && err.code == KOE_ERR_UNSUPPORTED);
    koe_resampler *rs = koe_resampler_new(22050, 24000, &err);
    float x[100] = {0}, y[200];
    size_t p = 99;
    KT_EXPECT(koe_resampler_process(rs, x, 100, y, 10, &p, &err) == KOE_ERR_INVALID && p == 0);
    KT_EXPECT(koe_resampler_process(rs, NULL, 100, y, 200, &p, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_resampler_process(rs, x, 0, y, 200, &p, &err) == 0 && p == 0);
    KT_EXPECT(koe_resampler_flush(rs, y, 200, &p, &err) == 0);
    KT_EXPECT(koe_resampler_process(rs, x, 10, y, 200, &p, &err) == KOE_ERR_INVALID);
    koe_resampler_free(rs);
    koe_resampler_free(NULL);
    /* Same rate works (a plain filter). */
    size_t m = 0;
    float *s = sine(1000, 1000, 24000, 0.5);
    float *o = resample_all(24000, 24000, s, 1000, &m);
    KT_EXPECT(m == 1000);
    free(s);
    free(o);
}

int main(void) {
    kt_run("passband_and_images_up", test_passband_and_images_up);
    kt_run("alias_down", test_alias_down);
    kt_run("sine_alignment", test_sine_alignment);
    kt_run("chunked_equals_whole", test_chunked_equals_whole);
    kt_run("constant_and_nan", test_constant_and_nan);
    kt_run("invalid", test_invalid);
    return kt_finish();
}
