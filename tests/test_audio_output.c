/* The output chain: espeak-ng-rate input delivered resampled, normalized and encoded; the same
 * bytes as a bare encoder when there is nothing to do; errors from any stage. */
#include "harness.h"
#include "koe/audio.h"
#include "koe/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink {
    koe_buf bytes;
    int calls, fail_after;
} sink;

static int sink_write(void *user, const void *data, size_t n) {
    sink *s = user;
    if (s->fail_after && ++s->calls >= s->fail_after) return 1;
    return koe_buf_append(&s->bytes, data, n);
}

/* A 1 kHz tone pulsing at 3 Hz, so loudness gating and the limiter both have work. */
static float *tone(size_t n, int rate, double amp) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate, env = 0.55 + 0.45 * sin(2 * M_PI * 3 * t);
        x[i] = (float)(amp * env * sin(2 * M_PI * 1000 * t));
    }
    return x;
}

static int16_t le16(const char *p) {
    return (int16_t)((unsigned char)p[0] | (unsigned char)p[1] << 8);
}

static void test_resample_normalize_wav(void) {
    const size_t n = 22050 * 4 + 11;
    float *x = tone(n, 22050, 0.02); /* about -40 LUFS */
    sink s = {0};
    koe_error err = {0};
    koe_audio_out_opts opts = {.normalize = 1};
    koe_audio_out *out =
        koe_audio_out_new(KOE_FORMAT_WAV, 22050, 24000, &opts, sink_write, &s, &err);
    KT_CHECK(out != NULL, "new: %s", err.msg);
    if (!out) return;
    static const size_t chunks[] = {1, 100, 7000, 4096, 4097, 33};
    int rc = 0;
    for (size_t done = 0, c = 0; done < n && rc == 0; c = (c + 1) % 6) {
        size_t k = chunks[c] < n - done ? chunks[c] : n - done;
        rc = koe_audio_out_write(out, x + done, k, &err);
        done += k;
    }
    KT_CHECK(rc == 0, "write: %s", err.msg);
    KT_CHECK(koe_audio_out_finish(out, &err) == 0, "finish: %s", err.msg);
    size_t want = (n * 24000 + 22049) / 22050;
    KT_CHECK(koe_encoder_samples_in(koe_audio_out_encoder(out)) == want,
             "every resampled sample reaches the encoder (%llu, want %zu)",
             (unsigned long long)koe_encoder_samples_in(koe_audio_out_encoder(out)), want);
    KT_CHECK(s.bytes.len == 44 + 2 * want, "wav of %zu bytes", s.bytes.len);
    KT_EXPECT(koe_audio_out_write(out, x, 10, &err) == KOE_ERR_INVALID);
    koe_audio_out_free(out);
    if (s.bytes.len == 44 + 2 * want) {
        float *y = malloc(want * sizeof *y);
        for (size_t i = 0; i < want; i++) y[i] = le16(s.bytes.data + 44 + 2 * i) / 32768.0f;
        double l = 0, tp = 0;
        KT_EXPECT(koe_loudness_measure(y, want, 24000, &l, &tp, &err) == 0);
        KT_CHECK(fabs(l + 16) <= 1 && tp <= -1, "normalized: %.2f LUFS, %.2f dBTP", l, tp);
        /* Frequency kept through the resampler: zero crossings of the 1 kHz tone. */
        int crossings = 0;
        for (size_t i = 24000; i < 48000; i++) crossings += y[i - 1] < 0 && y[i] >= 0;
        KT_CHECK(abs(crossings - 1000) <= 1, "1 kHz stays 1 kHz (%d crossings in 1 s)", crossings);
        free(y);
    }
    koe_buf_free(&s.bytes);
    free(x);
}

static void test_plain_equals_encoder(void) {
    /* No resampling, no normalization: exactly the bytes of a bare encoder. */
    const size_t n = 24000 + 5;
    float *x = tone(n, 24000, 0.3);
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        if (f == KOE_FORMAT_OPUS) continue; /* Ogg serial numbers differ by design */
        sink a = {0}, b = {0};
        koe_audio_out *out =
            koe_audio_out_new((koe_format)f, 24000, 24000, NULL, sink_write, &a, NULL);
        koe_encoder *enc = koe_encoder_new((koe_format)f, 24000, NULL, sink_write, &b, NULL);
        KT_EXPECT(out && enc);
        if (out && enc) {
            KT_EXPECT(koe_audio_out_write(out, x, n, NULL) == 0 &&
                      koe_audio_out_finish(out, NULL) == 0);
            KT_EXPECT(koe_encoder_write(enc, x, n, NULL) == 0 &&
                      koe_encoder_finish(enc, NULL) == 0);
            KT_CHECK(a.bytes.len == b.bytes.len &&
                         memcmp(a.bytes.data, b.bytes.data, a.bytes.len) == 0,
                     "%s: same bytes as the bare encoder", koe_format_name((koe_format)f));
        }
        koe_audio_out_free(out);
        koe_encoder_free(enc);
        koe_buf_free(&a.bytes);
        koe_buf_free(&b.bytes);
    }
    free(x);
}

static void test_errors(void) {
    sink s = {0};
    koe_error err = {0};
    KT_EXPECT(koe_audio_out_new(KOE_FORMAT_MP3, 22050, 24001, NULL, sink_write, &s, &err) == NULL &&
              err.code != 0 && strstr(err.msg, "audio output"));
    KT_EXPECT(koe_audio_out_new(KOE_FORMAT_OPUS, 22050, 22050, NULL, sink_write, &s, &err) ==
                  NULL &&
              err.code == KOE_ERR_UNSUPPORTED);
    koe_audio_out_opts bad = {.normalize = 1, .loudness = {.ceiling_dbtp = 5}};
    KT_EXPECT(koe_audio_out_new(KOE_FORMAT_WAV, 24000, 24000, &bad, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_INVALID);
    KT_EXPECT(koe_audio_out_write(NULL, NULL, 1, &err) == KOE_ERR_INVALID);
    koe_audio_out_free(NULL);

    /* The client goes away mid-stream. */
    s.fail_after = 2;
    koe_audio_out_opts opts = {.normalize = 1};
    koe_audio_out *out =
        koe_audio_out_new(KOE_FORMAT_MP3, 22050, 24000, &opts, sink_write, &s, &err);
    float *x = tone(22050, 22050, 0.1);
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++) rc = koe_audio_out_write(out, x, 22050, &err);
    KT_CHECK(rc == KOE_ERR_CANCELLED, "stop reported (%d: %s)", rc, err.msg);
    KT_EXPECT(koe_audio_out_write(out, x, 100, &err) == KOE_ERR_CANCELLED);
    KT_EXPECT(koe_audio_out_finish(out, &err) == KOE_ERR_CANCELLED);
    koe_audio_out_free(out);
    koe_buf_free(&s.bytes);
    free(x);
}

int main(void) {
    koe_audio_quiet_codec_logs();
    kt_run("resample_normalize_wav", test_resample_normalize_wav);
    kt_run("plain_equals_encoder", test_plain_equals_encoder);
    kt_run("errors", test_errors);
    return kt_finish();
}
