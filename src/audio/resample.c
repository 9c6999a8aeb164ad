/* Streaming rational resampler: out/in reduced to L/M, one Kaiser-windowed sinc evaluated at L
 * fractional offsets (a polyphase table), each output a dot product over the input around its
 * exact time k*M/L. The first output is centred on input 0 (zeros before the start), so there is
 * no delay to trim; flush feeds zeros after the end and stops at ceil(n*L/M) outputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "koe/audio.h"

#define MAX_PHASES 1024
#define MAX_TAPS   4096
/* Design: passband to 0.82 of the lower Nyquist, stopband from the lower Nyquist, 70 dB Kaiser
 * design so the measured stopband clears 60 dB with margin. */
#define PASS_EDGE     0.82
#define STOP_ATTEN_DB 70.0

struct koe_resampler {
    int in_rate, out_rate;
    int64_t up, down; /* L and M */
    int half;         /* H: taps span input offsets -(H-1) .. H */
    int taps;         /* 2H */
    float *table;     /* [L][taps] */
    float *hist;      /* input from absolute index hist_start on */
    size_t hist_len, hist_cap;
    int64_t hist_start;
    int64_t n_in; /* input samples received */
    int64_t k;    /* next output index */
    int flushed;
};

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Modified Bessel function of the first kind, order 0 (power series; converges fast for the
 * arguments a Kaiser window uses). */
static double bessel_i0(double x) {
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 200 && term > 1e-12 * sum; k++) {
        term *= q / ((double)k * k);
        sum += term;
    }
    return sum;
}

static int reserve_hist(koe_resampler *rs, size_t extra) {
    if (rs->hist_len + extra <= rs->hist_cap) return 0;
    size_t cap = rs->hist_cap ? rs->hist_cap : 1024;
    while (cap < rs->hist_len + extra) cap *= 2;
    float *h = realloc(rs->hist, cap * sizeof *h);
    if (!h) return -1;
    rs->hist = h;
    rs->hist_cap = cap;
    return 0;
}

void koe_resampler_reset(koe_resampler *rs) {
    if (!rs) return;
    /* H-1 zeros of history before input 0. */
    memset(rs->hist, 0, (size_t)(rs->half - 1) * sizeof *rs->hist);
    rs->hist_len = (size_t)(rs->half - 1);
    rs->hist_start = -(int64_t)(rs->half - 1);
    rs->n_in = 0;
    rs->k = 0;
    rs->flushed = 0;
}

koe_resampler *koe_resampler_new(int in_rate, int out_rate, koe_error *err) {
    if (in_rate < 1000 || in_rate > 384000 || out_rate < 1000 || out_rate > 384000) {
        koe_error_set(err, KOE_ERR_INVALID, "resampler: rates %d -> %d Hz outside 1000..384000",
                      in_rate, out_rate);
        return NULL;
    }
    int64_t g = gcd64(in_rate, out_rate);
    int64_t up = out_rate / g, down = in_rate / g;
    if (up > MAX_PHASES) {
        koe_error_set(err, KOE_ERR_UNSUPPORTED,
                      "resampler: %d -> %d Hz needs %lld phases (at most %d supported)", in_rate,
                      out_rate, (long long)up, MAX_PHASES);
        return NULL;
    }
    /* Cutoff and transition width relative to the input rate; for downsampling the filter works
     * below the output's Nyquist, so it gets longer in input samples. */
    double low_nyq = 0.5 * (in_rate < out_rate ? in_rate : out_rate);
    double cutoff = 0.5 * (1 + PASS_EDGE) * low_nyq / in_rate; /* cycles per input sample */
    double width = (1 - PASS_EDGE) * low_nyq / in_rate;
    double beta = 0.1102 * (STOP_ATTEN_DB - 8.7);
    double length = (STOP_ATTEN_DB - 8) / (2.285 * 2 * M_PI * width);
    int half = (int)ceil(length / 2) + 1;
    if (2 * half > MAX_TAPS) {
        koe_error_set(err, KOE_ERR_UNSUPPORTED, "resampler: %d -> %d Hz needs a %d-tap filter",
                      in_rate, out_rate, 2 * half);
        return NULL;
    }
    koe_resampler *rs = calloc(1, sizeof *rs);
    if (!rs) {
        koe_error_set(err, KOE_ERR_NOMEM, "resampler: out of memory");
        return NULL;
    }
    rs->in_rate = in_rate;
    rs->out_rate = out_rate;
    rs->up = up;
    rs->down = down;
    rs->half = half;
    rs->taps = 2 * half;
    rs->table = malloc((size_t)up * (size_t)rs->taps * sizeof *rs->table);
    if (!rs->table || reserve_hist(rs, 4096) != 0) {
        koe_resampler_free(rs);
        koe_error_set(err, KOE_ERR_NOMEM, "resampler: out of memory");
        return NULL;
    }
    double i0_beta = bessel_i0(beta);
    for (int64_t p = 0; p < up; p++) {
        float *row = rs->table + p * rs->taps;
        double frac = (double)p / (double)up, sum = 0;
        double v[MAX_TAPS];
        for (int j = 0; j < rs->taps; j++) {
            double tau = (double)(j - (half - 1)) - frac; /* input offset from the output time */
            double x = 2 * cutoff * tau;
            double sinc = fabs(x) < 1e-12 ? 1.0 : sin(M_PI * x) / (M_PI * x);
            double r = tau / half;
            double w = fabs(r) < 1 ? bessel_i0(beta * sqrt(1 - r * r)) / i0_beta : 0;
            v[j] = 2 * cutoff * sinc * w;
            sum += v[j];
        }
        /* Unit DC gain in every phase, so a constant stays exactly constant. */
        for (int j = 0; j < rs->taps; j++) row[j] = (float)(v[j] / sum);
    }
    koe_resampler_reset(rs);
    return rs;
}

void koe_resampler_free(koe_resampler *rs) {
    if (!rs) return;
    free(rs->table);
    free(rs->hist);
    free(rs);
}

size_t koe_resampler_max_output(const koe_resampler *rs, size_t n) {
    /* Outputs due from the new input plus those held back for the filter's look-ahead. */
    return (size_t)((((int64_t)n + rs->half + 1) * rs->up + rs->down - 1) / rs->down) + 1;
}

/* Produces outputs while their window ends before input index `limit` (exclusive), up to
 * `max_k`. */
static size_t produce(koe_resampler *rs, int64_t limit, int64_t max_k, float *out) {
    size_t produced = 0;
    for (; rs->k < max_k; rs->k++) {
        int64_t pos = rs->k * rs->down;
        int64_t base = pos / rs->up;
        if (base + rs->half >= limit) break;
        const float *row = rs->table + (pos % rs->up) * rs->taps;
        const float *x = rs->hist + (base - (rs->half - 1) - rs->hist_start);
        float acc = 0;
        for (int j = 0; j < rs->taps; j++) acc += x[j] * row[j];
        out[produced++] = acc;
    }
    /* Drop input no future output reaches. */
    int64_t keep_from = (rs->k * rs->down) / rs->up - (rs->half - 1);
    int64_t drop = keep_from - rs->hist_start;
    if (drop > 0) {
        if ((size_t)drop > rs->hist_len) drop = (int64_t)rs->hist_len;
        memmove(rs->hist, rs->hist + drop, (rs->hist_len - (size_t)drop) * sizeof *rs->hist);
        rs->hist_len -= (size_t)drop;
        rs->hist_start += drop;
    }
    return produced;
}

int koe_resampler_process(koe_resampler *rs, const float *in, size_t n, float *out, size_t out_cap,
                          size_t *produced, koe_error *err) {
    if (produced) *produced = 0;
    if (!rs || !produced || (n && (!in || !out)))
        return koe_error_set(err, KOE_ERR_INVALID, "resampler: NULL argument");
    if (rs->flushed)
        return koe_error_set(err, KOE_ERR_INVALID, "resampler: process after flush (reset first)");
    if (out_cap < koe_resampler_max_output(rs, n))
        return koe_error_set(err, KOE_ERR_INVALID,
                             "resampler: output room %zu is below the %zu needed for %zu samples",
                             out_cap, koe_resampler_max_output(rs, n), n);
    if (reserve_hist(rs, n) != 0)
        return koe_error_set(err, KOE_ERR_NOMEM, "resampler: out of memory");
    /* NaN and infinities would poison every later output through the filter memory. */
    for (size_t i = 0; i < n; i++) rs->hist[rs->hist_len + i] = isfinite(in[i]) ? in[i] : 0.0f;
    rs->hist_len += n;
    rs->n_in += (int64_t)n;
    *produced = produce(rs, rs->n_in, INT64_MAX, out);
    return 0;
}

int koe_resampler_flush(koe_resampler *rs, float *out, size_t out_cap, size_t *produced,
                        koe_error *err) {
    if (produced) *produced = 0;
    if (!rs || !produced || !out)
        return koe_error_set(err, KOE_ERR_INVALID, "resampler: NULL argument");
    if (rs->flushed) return 0;
    if (out_cap < koe_resampler_max_output(rs, 0))
        return koe_error_set(err, KOE_ERR_INVALID,
                             "resampler: output room %zu is below the %zu needed to flush", out_cap,
                             koe_resampler_max_output(rs, 0));
    if (reserve_hist(rs, (size_t)rs->half + 1) != 0)
        return koe_error_set(err, KOE_ERR_NOMEM, "resampler: out of memory");
    /* Zeros after the end, enough for the last output's window. */
    memset(rs->hist + rs->hist_len, 0, ((size_t)rs->half + 1) * sizeof *rs->hist);
    rs->hist_len += (size_t)rs->half + 1;
    int64_t total = (rs->n_in * rs->up + rs->down - 1) / rs->down;
    *produced = produce(rs, rs->n_in + rs->half + 1, total, out);
    rs->flushed = 1;
    return 0;
}
