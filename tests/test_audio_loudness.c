/* Loudness normalization measured with libebur128 (through koe_loudness_measure, independent of
 * the module's own K-weighting): speech-like signals at very different levels, streamed in
 * segment-sized and in 20 ms pieces, come out at -16 +- 1 LUFS integrated with a true peak at or
 * below -1 dBTP. Also espeak-ng's own speech (resampled 22050 -> 24000 Hz) when espeak-ng is
 * installed, the calibrated mode, in-place processing and argument errors. */
#include "harness.h"
#include "koe/audio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE 24000

/* A voiced-speech stand-in: a gliding 100-145 Hz glottal pitch with 1/k harmonics and two formant
 * bumps, syllables at ~4 Hz with varying strength, and a pause every ~2 s. */
static float *speech_like(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof *x);
    double phase = 0, syl_amp = 1;
    unsigned s = seed;
    int last_syl = -1;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / RATE;
        double f0 = 122 + 22 * sin(2 * M_PI * 0.7 * t) + 8 * sin(2 * M_PI * 2.3 * t);
        phase += 2 * M_PI * f0 / RATE;
        double v = 0;
        for (int k = 1; k * f0 < 5000; k++) {
            double f = k * f0;
            double formants = 1 + 3 * exp(-pow((f - 650) / 250, 2)) +
                              1.5 * exp(-pow((f - 1700) / 350, 2)) +
                              0.7 * exp(-pow((f - 2700) / 400, 2));
            v += formants / k * sin(k * phase);
        }
        int syl = (int)(t * 4.3);
        if (syl != last_syl) {
            s = s * 1103515245u + 12345u;
            syl_amp = 0.3 + 0.7 * (double)((s >> 16) & 0x7fff) / 32767.0;
            last_syl = syl;
        }
        double env = sin(M_PI * fmod(t * 4.3, 1.0));
        env = env * env * syl_amp;
        if (fmod(t, 2.1) > 1.75) env = 0; /* pause */
        x[i] = (float)(0.1 * v * env);
    }
    return x;
}

static void scale_to(float *x, size_t n, double want_lufs) {
    double l = 0;
    koe_loudness_measure(x, n, RATE, &l, NULL, NULL);
    float g = (float)pow(10, (want_lufs - l) / 20);
    for (size_t i = 0; i < n; i++) x[i] *= g;
}

/* Streams x through a koe_loudness in pieces of `piece` samples; returns the output. */
static float *normalize(const float *x, size_t n, size_t piece, const koe_loudness_opts *opts,
                        size_t *out_n) {
    koe_error err = {0};
    koe_loudness *ld = koe_loudness_new(RATE, opts, &err);
    KT_CHECK(ld != NULL, "new: %s", err.msg);
    if (!ld) return NULL;
    float *y = malloc((n + koe_loudness_delay(ld)) * sizeof *y);
    size_t w = 0;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < piece ? n - done : piece, p = 0;
        KT_EXPECT(koe_loudness_process(ld, x + done, k, y + w, k, &p, &err) == 0);
        w += p;
        done += k;
    }
    size_t p = 0;
    KT_EXPECT(koe_loudness_flush(ld, y + w, koe_loudness_delay(ld), &p, &err) == 0);
    w += p;
    koe_loudness_free(ld);
    *out_n = w;
    return y;
}

static void check_output(const char *what, const float *y, size_t n, size_t want_n,
                         int whole_segments) {
    double l = 0, tp = 0, l_tail = 0, l_head = 0;
    KT_CHECK(n == want_n, "%s: %zu samples out for %zu in", what, n, want_n);
    KT_EXPECT(koe_loudness_measure(y, n, RATE, &l, &tp, NULL) == 0);
    KT_CHECK(fabs(l + 16) <= 1, "%s: integrated %.2f LUFS, want -16 +- 1", what, l);
    KT_CHECK(tp <= -1.0, "%s: true peak %.2f dBTP, want <= -1", what, tp);
    /* For the record: the first second and the rest on their own. */
    koe_loudness_measure(y, RATE, RATE, &l_head, NULL, NULL);
    koe_loudness_measure(y + RATE, n - RATE, RATE, &l_tail, NULL, NULL);
    /* Segments handed over whole are normalized from their first sample. */
    if (whole_segments)
        KT_CHECK(fabs(l_head + 16) <= 1, "%s: first second at %.2f LUFS", what, l_head);
    fprintf(stderr, "  %-40s %6.2f LUFS  %6.2f dBTP  (first second %6.2f, after %6.2f)\n", what, l,
            tp, l_head, l_tail);
}

static void run_levels(const char *name, const float *base, size_t n) {
    static const double levels[] = {-50, -35, -23, -16, -8, 0};
    float *x = malloc(n * sizeof *x);
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        static const size_t pieces[] = {RATE * 3 / 2, RATE / 50}; /* segments, 20 ms */
        for (int pi = 0; pi < 2; pi++) {
            memcpy(x, base, n * sizeof *x);
            scale_to(x, n, levels[li]);
            size_t m = 0;
            float *y = normalize(x, n, pieces[pi], NULL, &m);
            char what[128];
            snprintf(what, sizeof what, "%s at %+.0f LUFS, %s pieces", name, levels[li],
                     pi == 0 ? "1.5 s" : "20 ms");
            if (y) check_output(what, y, m, n, pi == 0);
            free(y);
        }
    }
    free(x);
}

static void test_synthetic_levels(void) {
    size_t n = 8 * RATE;
    float *x = speech_like(n, 7);
    run_levels("synthetic speech", x, n);
    free(x);
}

/* espeak-ng's own speech, as the fallback voice delivers it: 22050 Hz resampled to 24000. */
static float *espeak_speech(size_t *out_n) {
    FILE *p = popen("espeak-ng --stdout -v en-us -s 165 'Loudness normalization keeps every voice "
                    "at the same level. The quick brown fox jumps over the lazy dog, and then it "
                    "rests for a while before reading the next paragraph aloud.' 2>/dev/null",
                    "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, len = 0, got;
    unsigned char *buf = malloc(cap);
    while ((got = fread(buf + len, 1, cap - len, p)) > 0) {
        len += got;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    if (pclose(p) != 0 || len < 44 || memcmp(buf, "RIFF", 4) != 0) {
        free(buf);
        return NULL;
    }
    /* Find the data chunk (espeak-ng writes a canonical header; walk chunks anyway). */
    size_t off = 12, data = 0;
    while (off + 8 <= len) {
        uint32_t sz =
            buf[off + 4] | buf[off + 5] << 8 | buf[off + 6] << 16 | (uint32_t)buf[off + 7] << 24;
        if (!memcmp(buf + off, "data", 4)) {
            data = off + 8;
            break;
        }
        off += 8 + sz;
    }
    int rate = buf[24] | buf[25] << 8 | buf[26] << 16;
    if (!data || rate <= 0) {
        free(buf);
        return NULL;
    }
    size_t n = (len - data) / 2;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(int16_t)(buf[data + 2 * i] | buf[data + 2 * i + 1] << 8) / 32768.0f;
    free(buf);
    koe_error err = {0};
    koe_resampler *rs = koe_resampler_new(rate, RATE, &err);
    size_t cap_out = koe_resampler_max_output(rs, n) + koe_resampler_max_output(rs, 0), a = 0,
           b = 0;
    float *y = malloc(cap_out * sizeof *y);
    koe_resampler_process(rs, x, n, y, cap_out, &a, &err);
    koe_resampler_flush(rs, y + a, cap_out - a, &b, &err);
    koe_resampler_free(rs);
    free(x);
    *out_n = a + b;
    return y;
}

static void test_espeak_levels(void) {
    size_t n = 0;
    float *x = espeak_speech(&n);
    if (!x) {
        fprintf(stderr, "  espeak-ng not available: espeak-ng speech part skipped\n");
        return;
    }
    KT_CHECK(n > 3 * RATE, "espeak-ng gave %zu samples", n);
    run_levels("espeak-ng speech", x, n);
    free(x);
}

static void test_calibrated(void) {
    /* Calibrate on one utterance, then normalize another utterance of the same voice. */
    size_t n = 8 * RATE;
    float *cal = speech_like(n, 99), *x = speech_like(n, 7);
    scale_to(cal, n, -31);
    scale_to(x, n, -31);
    double cal_lufs = 0;
    KT_EXPECT(koe_loudness_measure(cal, n, RATE, &cal_lufs, NULL, NULL) == 0);
    koe_loudness_opts opts = {.input_lufs = cal_lufs};
    size_t m = 0;
    float *y = normalize(x, n, RATE / 50, &opts, &m);
    if (y) check_output("calibrated, 20 ms pieces", y, m, n, 1);
    free(y);
    free(cal);
    free(x);
}

static void test_in_place_and_delay(void) {
    size_t n = 3 * RATE;
    float *x = speech_like(n, 3), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    memcpy(b, x, n * sizeof *b);
    koe_error err = {0};
    koe_loudness *l1 = koe_loudness_new(RATE, NULL, &err), *l2 = koe_loudness_new(RATE, NULL, &err);
    size_t d = koe_loudness_delay(l1), p1 = 0, p2 = 0;
    KT_CHECK(d >= 48 && d < 200, "delay %zu samples (2 ms look-ahead + interpolation)", d);
    KT_EXPECT(koe_loudness_process(l1, x, n, a, n, &p1, &err) == 0);
    KT_EXPECT(koe_loudness_process(l2, b, n, b, n, &p2, &err) == 0);
    KT_CHECK(p1 == n - d && p2 == n - d, "first call holds back the delay (%zu, %zu)", p1, p2);
    KT_CHECK(memcmp(a, b, p1 * sizeof *a) == 0, "in place gives the same output");
    float tail[512];
    KT_EXPECT(koe_loudness_flush(l1, tail, 512, &p1, &err) == 0 && p1 == d);
    KT_EXPECT(koe_loudness_input_lufs(l1) < -10 && koe_loudness_input_lufs(l1) > -40);
    KT_EXPECT(fabs(koe_loudness_gain_db(l1) - (-16 - koe_loudness_input_lufs(l1))) < 3);
    koe_loudness_free(l1);
    koe_loudness_free(l2);
    free(x);
    free(a);
    free(b);
}

static void test_short_and_silent(void) {
    koe_error err = {0};
    koe_loudness *ld = koe_loudness_new(RATE, NULL, &err);
    float x[10] = {0.5f, -0.5f, 0.25f, NAN, INFINITY, 0, 0, 0, 0, 0}, y[10], t[256];
    size_t p = 0, q = 0;
    KT_EXPECT(koe_loudness_process(ld, x, 10, y, 10, &p, &err) == 0 && p == 0);
    KT_EXPECT(koe_loudness_flush(ld, t, 256, &q, &err) == 0 && q == 10);
    int finite = 1;
    for (size_t i = 0; i < q; i++) finite &= isfinite(t[i]) && fabsf(t[i]) < 1;
    KT_CHECK(finite, "fewer samples than the delay: all come back at flush, finite, limited");
    koe_loudness_free(ld);
    /* Silence stays silence (no gain blow-up). */
    ld = koe_loudness_new(RATE, NULL, &err);
    float *z = calloc(RATE, sizeof *z);
    KT_EXPECT(koe_loudness_process(ld, z, RATE, z, RATE, &p, &err) == 0);
    float maxv = 0;
    for (size_t i = 0; i < p; i++) maxv = fmaxf(maxv, fabsf(z[i]));
    KT_EXPECT(maxv == 0);
    free(z);
    koe_loudness_free(ld);
}

static void test_invalid(void) {
    koe_error err = {0};
    KT_EXPECT(koe_loudness_new(100, NULL, &err) == NULL && err.code == KOE_ERR_INVALID);
    koe_loudness_opts bad = {.ceiling_dbtp = 3};
    KT_EXPECT(koe_loudness_new(RATE, &bad, &err) == NULL && err.code == KOE_ERR_INVALID);
    koe_loudness_opts bad2 = {.lookahead_ms = 500};
    KT_EXPECT(koe_loudness_new(RATE, &bad2, &err) == NULL && err.code == KOE_ERR_INVALID);
    koe_loudness_opts bad3 = {.target_lufs = NAN};
    KT_EXPECT(koe_loudness_new(RATE, &bad3, &err) == NULL);
    koe_loudness *ld = koe_loudness_new(RATE, NULL, &err);
    float x[100] = {0};
    size_t p;
    KT_EXPECT(koe_loudness_process(ld, x, 100, x, 50, &p, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_loudness_process(ld, NULL, 100, x, 100, &p, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_loudness_flush(ld, x, 0, &p, &err) == 0 && p == 0);
    koe_loudness_free(ld);
    koe_loudness_free(NULL);
    double l = 0;
    KT_EXPECT(koe_loudness_measure(NULL, 10, RATE, &l, NULL, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_loudness_measure(x, 100, RATE, &l, NULL, &err) == 0 && isinf(l) && l < 0);
}

int main(void) {
    kt_run("synthetic_levels", test_synthetic_levels);
    kt_run("espeak_levels", test_espeak_levels);
    kt_run("calibrated", test_calibrated);
    kt_run("in_place_and_delay", test_in_place_and_delay);
    kt_run("short_and_silent", test_short_and_silent);
    kt_run("invalid", test_invalid);
    return kt_finish();
}
