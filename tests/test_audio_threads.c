/* Concurrent streams, as the server runs them: several threads encode (and normalize) the same
 * audio at once in every format; each must produce exactly what a lone encoder produces. */
#include "harness.h"
#include "koe/audio.h"
#include "koe/base.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RATE    24000
#define N       (RATE * 2 + 333)
#define THREADS 4

static float signal_in[N];

typedef struct result {
    koe_buf bytes[KOE_FORMAT_COUNT];
    float *normalized;
    size_t normalized_n;
    int failures;
} result;

static int sink_write(void *user, const void *data, size_t n) {
    return koe_buf_append(user, data, n);
}

static void run_all(result *r) {
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        koe_encoder *enc =
            koe_encoder_new((koe_format)f, RATE, NULL, sink_write, &r->bytes[f], NULL);
        if (!enc) {
            r->failures++;
            continue;
        }
        for (size_t done = 0; done < N; done += 1000)
            if (koe_encoder_write(enc, signal_in + done, N - done < 1000 ? N - done : 1000, NULL))
                r->failures++;
        if (koe_encoder_finish(enc, NULL)) r->failures++;
        koe_encoder_free(enc);
    }
    koe_loudness *ld = koe_loudness_new(RATE, NULL, NULL);
    r->normalized = malloc((N + koe_loudness_delay(ld)) * sizeof(float));
    size_t a = 0, b = 0;
    if (koe_loudness_process(ld, signal_in, N, r->normalized, N, &a, NULL) ||
        koe_loudness_flush(ld, r->normalized + a, koe_loudness_delay(ld), &b, NULL))
        r->failures++;
    r->normalized_n = a + b;
    koe_loudness_free(ld);
}

static void *thread_main(void *arg) {
    run_all(arg);
    return NULL;
}

static void free_result(result *r) {
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) koe_buf_free(&r->bytes[f]);
    free(r->normalized);
}

static void test_concurrent_streams(void) {
    for (size_t i = 0; i < N; i++)
        signal_in[i] = (float)(0.4 * sin(2 * M_PI * 310 * i / RATE) * (0.6 + 0.4 * sin(i * 1e-3)));
    result ref = {0}, res[THREADS] = {0};
    run_all(&ref);
    KT_CHECK(ref.failures == 0, "reference run failed %d times", ref.failures);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        KT_EXPECT(pthread_create(&th[t], NULL, thread_main, &res[t]) == 0);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        KT_CHECK(res[t].failures == 0, "thread %d: %d failures", t, res[t].failures);
        for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
            const koe_buf *a = &ref.bytes[f], *b = &res[t].bytes[f];
            int same = a->len == b->len;
            if (same && f != KOE_FORMAT_OPUS) same = memcmp(a->data, b->data, a->len) == 0;
            /* Ogg streams get distinct serial numbers (and so page CRCs): compare the payload
             * from the audio pages on by length only. */
            KT_CHECK(same, "thread %d, %s: %zu bytes vs %zu alone", t,
                     koe_format_name((koe_format)f), b->len, a->len);
        }
        KT_CHECK(res[t].normalized_n == ref.normalized_n &&
                     memcmp(res[t].normalized, ref.normalized, ref.normalized_n * sizeof(float)) ==
                         0,
                 "thread %d: loudness output identical", t);
        free_result(&res[t]);
    }
    free_result(&ref);
}

int main(void) {
    koe_audio_quiet_codec_logs();
    kt_run("concurrent_streams", test_concurrent_streams);
    return kt_finish();
}
