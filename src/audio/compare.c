/* koe_audio_compare: max abs difference, SNR and log-spectral distance (definitions in audio.h). */
#include <math.h>
#include <string.h>

#include "koe/audio.h"

#define LSD_N    512
#define LSD_HOP  256
#define LSD_BINS (LSD_N / 2 + 1)
#define LSD_LOG2 9

/* In-place iterative radix-2 FFT of LSD_N points; tw holds cos/sin of 2πk/N for k < N/2. */
static void fft512(double *re, double *im, const double *twc, const double *tws) {
    for (int i = 1, j = 0; i < LSD_N; i++) {
        int bit = LSD_N >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j |= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j], re[j] = t;
            t = im[i];
            im[i] = im[j], im[j] = t;
        }
    }
    for (int len = 2; len <= LSD_N; len <<= 1) {
        int step = LSD_N / len;
        for (int i = 0; i < LSD_N; i += len)
            for (int k = 0; k < len / 2; k++) {
                double wr = twc[k * step], wi = -tws[k * step];
                int a = i + k, b = i + k + len / 2;
                double xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr, im[b] = im[a] - xi;
                re[a] += xr, im[a] += xi;
            }
    }
}

/* Power spectrum of the frame of x starting at t0. */
static void power(const float *x, int64_t t0, const double *win, const double *twc,
                  const double *tws, double *p) {
    double re[LSD_N], im[LSD_N];
    for (int j = 0; j < LSD_N; j++) re[j] = win[j] * x[t0 + j], im[j] = 0;
    fft512(re, im, twc, tws);
    for (int k = 0; k < LSD_BINS; k++) p[k] = re[k] * re[k] + im[k] * im[k];
}

void koe_audio_compare(const float *ref, const float *x, int64_t n, koe_audio_deviation *out) {
    memset(out, 0, sizeof *out);
    double e_ref = 0, e_diff = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - ref[i];
        if (fabs(d) > out->max_abs) out->max_abs = fabs(d);
        e_ref += (double)ref[i] * ref[i];
        e_diff += d * d;
    }
    out->snr_db = e_diff > 0 ? 10.0 * log10(e_ref / e_diff) : INFINITY;
    if (n < LSD_N) return;
    double win[LSD_N], twc[LSD_N / 2], tws[LSD_N / 2], pr[LSD_BINS], px[LSD_BINS];
    for (int j = 0; j < LSD_N; j++) win[j] = 0.5 - 0.5 * cos(2 * M_PI * j / LSD_N);
    for (int k = 0; k < LSD_N / 2; k++) {
        twc[k] = cos(2 * M_PI * k / LSD_N);
        tws[k] = sin(2 * M_PI * k / LSD_N);
    }
    int frames = (int)((n - LSD_N) / LSD_HOP + 1);
    /* first pass: the reference's strongest bin sets the floor */
    double peak = 0;
    for (int f = 0; f < frames; f++) {
        power(ref, (int64_t)f * LSD_HOP, win, twc, tws, pr);
        for (int k = 0; k < LSD_BINS; k++)
            if (pr[k] > peak) peak = pr[k];
    }
    double eps = peak > 0 ? 1e-10 * peak : 1e-30, sum = 0;
    for (int f = 0; f < frames; f++) {
        power(ref, (int64_t)f * LSD_HOP, win, twc, tws, pr);
        power(x, (int64_t)f * LSD_HOP, win, twc, tws, px);
        double acc = 0;
        for (int k = 0; k < LSD_BINS; k++) {
            double d = 10.0 * log10((pr[k] + eps) / (px[k] + eps));
            acc += d * d;
        }
        sum += sqrt(acc / LSD_BINS);
    }
    out->lsd_db = sum / frames;
    out->lsd_frames = frames;
}
