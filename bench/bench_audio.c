/* Audio output costs: each encoder on 60 s of a speech-like signal (speed as multiples of real
 * time, output bitrate) and its first-byte latency (input samples fed, one at a time, before the
 * first encoded-audio byte leaves); the resampler (22050 -> 24000) and loudness normalization on
 * the same signal. pcm is the in-run baseline: the cost of the shared front (clipping, s16, the
 * callback) without a codec. Also the audio stage of time to first audio: a 2 s first segment
 * through a fresh koe_audio_out (loudness on) until its first byte. Median of N runs (default 5).
 *
 * usage: bench_audio [runs [seconds]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koe/audio.h"
#include "koe/base.h"

#include "common.h"

#define RATE  24000
#define CHUNK 4800 /* 200 ms per write, like a pipeline handing over audio */

/* Speech-like: a gliding pitch with 1/k harmonics and a formant bump, syllables at ~4 Hz. */
static float *speech_like(size_t n) {
    float *x = malloc(n * sizeof *x);
    if (!x) abort();
    double phase = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / RATE, f0 = 120 + 25 * sin(2 * M_PI * 0.7 * t);
        phase += 2 * M_PI * f0 / RATE;
        double v = 0;
        for (int k = 1; k <= 24; k++)
            v += (1 + 2 * exp(-pow((k * f0 - 700) / 300, 2))) / k * sin(k * phase);
        double env = sin(M_PI * fmod(t * 4.3, 1.0));
        x[i] = (float)(0.08 * v * env * env);
    }
    return x;
}

static int count_bytes(void *user, const void *data, size_t n) {
    (void)data;
    *(uint64_t *)user += n;
    return 0;
}

/* Samples fed one at a time before the first byte of encoded audio. Headers leave with the first
 * sample, so: if the second sample adds bytes, the format is sample-by-sample (latency 1);
 * otherwise the first sample whose write adds bytes beyond the header. */
static long first_byte_latency(koe_format fmt, const float *x, size_t n) {
    uint64_t bytes = 0;
    koe_encoder *enc = koe_encoder_new(fmt, RATE, NULL, count_bytes, &bytes, NULL);
    if (!enc) return -1;
    long latency = -1;
    uint64_t header = 0;
    for (size_t i = 0; i < n; i++) {
        if (koe_encoder_write(enc, x + i, 1, NULL) != 0) break;
        if (i == 0) {
            header = bytes;
        } else if (bytes > header) {
            latency = i == 1 ? 1 : (long)i + 1;
            break;
        }
    }
    koe_encoder_free(enc);
    return latency;
}

typedef struct first_byte {
    uint64_t t0, first; /* start, and the time of the first callback (0 = none yet) */
} first_byte;

static int note_first(void *user, const void *data, size_t n) {
    (void)data;
    first_byte *fb = user;
    if (!fb->first && n) fb->first = koe_now_ns();
    return 0;
}

/* The audio stage of time to first audio: a 2 s first segment handed to a fresh output chain
 * (loudness normalization on, 24 kHz) until its first byte reaches the callback. */
static double first_segment_ms(koe_format fmt, const float *x, int runs, double *t) {
    for (int r = 0; r < runs; r++) {
        first_byte fb = {0};
        koe_audio_out_opts opts = {.normalize = 1};
        fb.t0 = koe_now_ns();
        koe_audio_out *out = koe_audio_out_new(fmt, RATE, RATE, &opts, note_first, &fb, NULL);
        if (!out) return -1;
        koe_audio_out_write(out, x, 2 * RATE, NULL);
        if (!fb.first) koe_audio_out_finish(out, NULL);
        t[r] = (double)(fb.first - fb.t0) * 1e-6;
        koe_audio_out_free(out);
    }
    return bench_median(t, runs);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    double seconds = argc > 2 ? atof(argv[2]) : 60;
    if (runs < 1 || runs > 100 || !(seconds > 0 && seconds <= 3600)) {
        fprintf(stderr, "usage: bench_audio [runs 1..100 [seconds]]\n");
        return 2;
    }
    koe_audio_quiet_codec_logs();
    size_t n = (size_t)(seconds * RATE);
    float *x = speech_like(n);
    printf("bench_audio: %.0f s of 24 kHz speech-like audio, writes of %d samples, median of %d\n",
           seconds, CHUNK, runs);
    printf("%-6s %12s %10s %12s %14s %18s\n", "format", "x realtime", "ms total", "kbit/s",
           "latency", "2 s seg. -> byte");
    double *t = malloc((size_t)runs * sizeof *t);
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        uint64_t bytes = 0;
        for (int r = 0; r < runs; r++) {
            bytes = 0;
            koe_error err = {0};
            uint64_t t0 = koe_now_ns();
            koe_encoder *enc =
                koe_encoder_new((koe_format)f, RATE, NULL, count_bytes, &bytes, &err);
            if (!enc) {
                fprintf(stderr, "%s: %s\n", koe_format_name((koe_format)f), err.msg);
                return 1;
            }
            for (size_t done = 0; done < n; done += CHUNK)
                koe_encoder_write(enc, x + done, n - done < CHUNK ? n - done : CHUNK, &err);
            koe_encoder_finish(enc, &err);
            koe_encoder_free(enc);
            t[r] = (double)(koe_now_ns() - t0) * 1e-9;
        }
        double med = bench_median(t, runs);
        long lat = first_byte_latency((koe_format)f, x, (size_t)RATE);
        double seg = n >= 2 * RATE ? first_segment_ms((koe_format)f, x, runs, t) : -1;
        printf("%-6s %12.0f %10.1f %12.1f %8ld (%.1f ms) %12.2f ms\n",
               koe_format_name((koe_format)f), seconds / med, med * 1e3,
               (double)bytes * 8 / seconds / 1000, lat, lat * 1000.0 / RATE, seg);
    }

    /* Resampler 22050 -> 24000 on the same samples taken as 22050 Hz input. */
    {
        koe_resampler *rs = koe_resampler_new(22050, RATE, NULL);
        size_t cap = koe_resampler_max_output(rs, CHUNK);
        float *out = malloc(cap * sizeof *out);
        for (int r = 0; r < runs; r++) {
            koe_resampler_reset(rs);
            uint64_t t0 = koe_now_ns();
            size_t p;
            for (size_t done = 0; done < n; done += CHUNK)
                koe_resampler_process(rs, x + done, n - done < CHUNK ? n - done : CHUNK, out, cap,
                                      &p, NULL);
            koe_resampler_flush(rs, out, cap, &p, NULL);
            t[r] = (double)(koe_now_ns() - t0) * 1e-9;
        }
        double med = bench_median(t, runs), in_seconds = (double)n / 22050;
        printf("resample 22050->24000 %8.0f x realtime (%.1f ms for %.0f s)\n", in_seconds / med,
               med * 1e3, in_seconds);
        free(out);
        koe_resampler_free(rs);
    }
    /* Loudness normalization (running estimate + limiter). */
    {
        float *out = malloc(CHUNK * sizeof *out);
        size_t delay = 0;
        for (int r = 0; r < runs; r++) {
            koe_loudness *ld = koe_loudness_new(RATE, NULL, NULL);
            delay = koe_loudness_delay(ld);
            float tail[1024];
            uint64_t t0 = koe_now_ns();
            size_t p;
            for (size_t done = 0; done < n; done += CHUNK)
                koe_loudness_process(ld, x + done, n - done < CHUNK ? n - done : CHUNK, out, CHUNK,
                                     &p, NULL);
            koe_loudness_flush(ld, tail, 1024, &p, NULL);
            t[r] = (double)(koe_now_ns() - t0) * 1e-9;
            koe_loudness_free(ld);
        }
        double med = bench_median(t, runs);
        printf("loudness (-16 LUFS, -1 dBTP) %8.0f x realtime (%.1f ms), delay %zu samples\n",
               seconds / med, med * 1e3, delay);
        free(out);
    }
    free(t);
    free(x);
    return 0;
}
