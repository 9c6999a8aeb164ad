/* Streaming encoders: every format decodes with ffmpeg to the right codec, rate, channel count,
 * length and signal; odd-sized writes; a write callback that stops; invalid arguments; the WAV
 * streaming header read from a pipe; complete WAV files. */
#include "harness.h"
#include "koe/audio.h"
#include "koe/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RATE 24000
#define FREQ 440.0
#define AMP  0.5

static char tmpdir[256];
static int have_ffmpeg;

typedef struct sink {
    koe_buf bytes;
    int calls;
    int empty_calls; /* writes of 0 bytes: an HTTP chunked stream would end at one */
    int fail_after;  /* fail on this call (1-based); 0 = never */
} sink;

static int sink_write(void *user, const void *data, size_t n) {
    sink *s = user;
    s->calls++;
    if (n == 0) s->empty_calls++;
    if (s->fail_after && s->calls >= s->fail_after) return 7;
    return koe_buf_append(&s->bytes, data, n);
}

static float *make_sine(size_t n, double freq, double amp) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / RATE));
    return x;
}

static int save(const char *path, const koe_buf *b) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = b->len ? fwrite(b->data, 1, b->len, f) : 0;
    return fclose(f) == 0 && w == b->len ? 0 : -1;
}

/* Runs a shell command and returns its whole stdout (malloc'd) or NULL. */
static char *run_capture(const char *cmd, size_t *len) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    koe_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0) koe_buf_append(&b, chunk, got);
    int status = pclose(p);
    koe_buf_terminate(&b);
    if (status != 0) {
        koe_buf_free(&b);
        return NULL;
    }
    if (len) *len = b.len;
    return b.data;
}

/* Decodes a file with ffmpeg to mono float at its own rate. input_opts go before -i.
 * -xerror makes any decoding complaint a failure; not for WAV of unknown length, where ffmpeg
 * flags the last (short) read as a corrupt packet although it decodes every sample. */
static float *ffmpeg_decode(const char *input_opts, const char *path, size_t *n, int strict) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error %s %s -i '%s' -f f32le -ac 1 - 2>/dev/null",
             strict ? "-xerror" : "", input_opts, path);
    size_t len = 0;
    char *raw = run_capture(cmd, &len);
    if (!raw) return NULL;
    *n = len / sizeof(float);
    return (float *)raw;
}

/* Frequency from positive-going zero crossings (interpolated) and RMS, over [from, to). */
static void measure_sine(const float *x, size_t from, size_t to, double rate, double *freq,
                         double *rms) {
    double first = -1, last = -1, sum = 0;
    int crossings = 0;
    for (size_t i = from; i < to; i++) {
        sum += (double)x[i] * x[i];
        if (i > from && x[i - 1] < 0 && x[i] >= 0) {
            double t = (double)(i - 1) + x[i - 1] / (double)(x[i - 1] - x[i]);
            if (first < 0) first = t;
            last = t;
            crossings++;
        }
    }
    *freq = crossings > 1 ? (crossings - 1) * rate / (last - first) : 0;
    *rms = sqrt(sum / (double)(to - from));
}

/* Encodes a sine in awkward chunk sizes into a memory sink. */
static int encode_sine(koe_format fmt, size_t n, const koe_encoder_opts *opts, sink *s,
                       koe_error *err) {
    float *x = make_sine(n, FREQ, AMP);
    koe_encoder *enc = koe_encoder_new(fmt, RATE, opts, sink_write, s, err);
    if (!enc) {
        free(x);
        return -1;
    }
    KT_CHECK(koe_encoder_bytes_out(enc) == 0 && s->calls == 0,
             "%s: nothing written before the first samples", koe_format_name(fmt));
    static const size_t chunks[] = {1, 7, 333, 1000, 4097, 2, 12345, 480, 1024};
    size_t done = 0;
    int rc = 0;
    for (int c = 0; done < n && rc == 0; c = (c + 1) % 9) {
        size_t k = chunks[c] < n - done ? chunks[c] : n - done;
        rc = koe_encoder_write(enc, x + done, k, err);
        done += k;
        if (rc == 0 && done >= RATE && done - k < RATE)
            KT_CHECK(koe_encoder_bytes_out(enc) > 1000,
                     "%s: audio leaves before finish (%llu bytes after 1 s)", koe_format_name(fmt),
                     (unsigned long long)koe_encoder_bytes_out(enc));
    }
    if (rc == 0) rc = koe_encoder_finish(enc, err);
    uint64_t after_finish = koe_encoder_bytes_out(enc);
    KT_CHECK(rc != 0 || after_finish == s->bytes.len, "%s: bytes_out counts what was written",
             koe_format_name(fmt));
    KT_CHECK(rc != 0 || koe_encoder_samples_in(enc) == n, "%s: samples_in", koe_format_name(fmt));
    koe_encoder_free(enc);
    KT_CHECK(s->bytes.len == after_finish, "%s: nothing written after finish (at free)",
             koe_format_name(fmt));
    KT_CHECK(s->empty_calls == 0, "%s: no zero-length writes", koe_format_name(fmt));
    free(x);
    return rc;
}

typedef struct expect {
    koe_format fmt;
    const char *codec;
    int decoded_rate; /* Opus always decodes at 48 kHz */
    size_t priming;   /* samples a plain decoder outputs before the signal */
    size_t frame;     /* codec frame: the tail may be padded up to this */
    const char *input_opts;
} expect;

static const expect formats[] = {
    {KOE_FORMAT_PCM, NULL, RATE, 0, 0, "-f s16le -ar 24000 -ac 1"},
    {KOE_FORMAT_WAV, "pcm_s16le", RATE, 0, 0, ""},
    /* lame's encoder delay (576) plus the MP3 decoder delay (529); no LAME tag to trim them. */
    {KOE_FORMAT_MP3, "mp3", RATE, 1105, 576, ""},
    /* pre-skip and the final granule trim exactly. */
    {KOE_FORMAT_OPUS, "opus", 48000, 0, 0, ""},
    {KOE_FORMAT_FLAC, "flac", RATE, 0, 0, ""},
    /* ADTS carries no priming info: the encoder's 1024 priming samples stay. */
    {KOE_FORMAT_AAC, "aac", RATE, 1024, 1024, ""},
};

static void check_format(const expect *ex, size_t n) {
    const char *name = koe_format_name(ex->fmt);
    sink s = {0};
    koe_error err = {0};
    int rc = encode_sine(ex->fmt, n, NULL, &s, &err);
    KT_CHECK(rc == 0, "%s: encode: %s", name, err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/sine_%zu.%s", tmpdir, n, koe_format_ext(ex->fmt));
    KT_CHECK(save(path, &s.bytes) == 0, "%s: save", name);
    koe_buf_free(&s.bytes);
    if (rc != 0 || !have_ffmpeg) return;

    if (ex->codec) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "ffprobe -v error -show_entries stream=codec_name,sample_rate,channels -of "
                 "csv=p=0 '%s'",
                 path);
        char *info = run_capture(cmd, NULL);
        char want[128];
        snprintf(want, sizeof want, "%s,%d,1", ex->codec, ex->decoded_rate);
        KT_CHECK(info && strncmp(info, want, strlen(want)) == 0, "%s: ffprobe says '%s', want '%s'",
                 name, info ? info : "(failed)", want);
        free(info);
    }
    size_t got = 0;
    float *y = ffmpeg_decode(ex->input_opts, path, &got, ex->fmt != KOE_FORMAT_WAV);
    KT_CHECK(y != NULL, "%s: ffmpeg decodes %s without error", name, path);
    if (!y) return;
    /* As an HTTP client gets it: from a pipe, no seeking, the format guessed from the bytes
     * (except raw pcm, which has nothing to guess from). */
    {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cat '%s' | ffmpeg -nostdin -v error %s -i pipe:0 -f f32le -ac 1 - 2>/dev/null | "
                 "wc -c",
                 path, ex->input_opts);
        char *out = run_capture(cmd, NULL);
        size_t piped = out ? strtoul(out, NULL, 10) / sizeof(float) : 0;
        KT_CHECK(piped == got, "%s: from a pipe %zu samples, from the file %zu", name, piped, got);
        free(out);
    }
    double scale = ex->decoded_rate / (double)RATE;
    size_t want_min = (size_t)((double)(n + ex->priming) * scale);
    size_t want_max = (size_t)((double)(n + ex->priming + ex->frame) * scale);
    KT_CHECK(got >= want_min && got <= want_max, "%s: %zu decoded samples, want %zu..%zu", name,
             got, want_min, want_max);
    if (got > want_min / 2 && n >= RATE / 2) {
        /* Skip the priming and the codec's onset/tail, measure the middle. */
        size_t from = (size_t)((double)(ex->priming + RATE / 10) * scale);
        size_t to = (size_t)((double)(ex->priming + n - RATE / 10) * scale);
        double f, rms;
        measure_sine(y, from, to, ex->decoded_rate, &f, &rms);
        double want_rms = AMP / sqrt(2.0);
        KT_CHECK(fabs(f - FREQ) < 0.5, "%s: decoded frequency %.3f Hz, want %.0f", name, f, FREQ);
        KT_CHECK(fabs(20 * log10(rms / want_rms)) < 0.5, "%s: decoded RMS %.4f, want %.4f", name,
                 rms, want_rms);
        if (ex->priming == 0 && ex->fmt != KOE_FORMAT_OPUS) {
            /* Lossless formats: sample-exact within the s16 quantization. */
            float *x = make_sine(n, FREQ, AMP);
            double maxdiff = 0;
            for (size_t i = 0; i < n && i < got; i++) {
                double d = fabs((double)x[i] - y[i]);
                if (d > maxdiff) maxdiff = d;
            }
            KT_CHECK(maxdiff <= 1.0 / 32768 + 1e-6, "%s: lossless, max difference %g", name,
                     maxdiff);
            free(x);
        }
    }
    free(y);
}

static void test_formats_decode(void) {
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        check_format(&formats[i], 36001); /* 1.5 s, not a multiple of any frame */
        check_format(&formats[i], 100);   /* shorter than one frame of every codec */
    }
}

static void test_empty_stream(void) {
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        sink s = {0};
        koe_error err = {0};
        koe_encoder *enc = koe_encoder_new((koe_format)f, RATE, NULL, sink_write, &s, &err);
        KT_CHECK(enc != NULL, "%s: new: %s", koe_format_name((koe_format)f), err.msg);
        if (!enc) continue;
        KT_CHECK(koe_encoder_finish(enc, &err) == 0, "%s: finish with no samples: %s",
                 koe_format_name((koe_format)f), err.msg);
        koe_encoder_free(enc);
        /* Raw formats without any header: no samples, no bytes. */
        int headerless = f == KOE_FORMAT_PCM || f == KOE_FORMAT_AAC;
        KT_CHECK(headerless == (s.bytes.len == 0), "%s: empty stream has %zu bytes",
                 koe_format_name((koe_format)f), s.bytes.len);
        if (have_ffmpeg && !headerless) {
            char path[512];
            snprintf(path, sizeof path, "%s/empty.%s", tmpdir, koe_format_ext((koe_format)f));
            save(path, &s.bytes);
            char cmd[1024];
            snprintf(cmd, sizeof cmd,
                     "ffprobe -v error -show_entries stream=codec_name -of csv=p=0 '%s'", path);
            char *out = run_capture(cmd, NULL);
            KT_CHECK(out && *out, "%s: an empty stream is still a valid file",
                     koe_format_name((koe_format)f));
            free(out);
        }
        koe_buf_free(&s.bytes);
    }
}

static void test_write_callback_stops(void) {
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        const char *name = koe_format_name((koe_format)f);
        sink s = {.fail_after = 3};
        koe_error err = {0};
        float *x = make_sine(RATE, FREQ, AMP);
        koe_encoder *enc = koe_encoder_new((koe_format)f, RATE, NULL, sink_write, &s, &err);
        KT_CHECK(enc != NULL, "%s: new", name);
        if (!enc) {
            free(x);
            continue;
        }
        int rc = 0;
        for (int i = 0; i < 20 && rc == 0; i++) rc = koe_encoder_write(enc, x, RATE, &err);
        KT_CHECK(rc == KOE_ERR_CANCELLED, "%s: the callback's stop is reported (rc %d)", name, rc);
        KT_CHECK(strstr(err.msg, "write callback returned 7") != NULL, "%s: message '%s'", name,
                 err.msg);
        int calls = s.calls;
        KT_CHECK(koe_encoder_write(enc, x, 100, &err) == KOE_ERR_CANCELLED,
                 "%s: later writes fail too", name);
        KT_CHECK(koe_encoder_finish(enc, &err) == KOE_ERR_CANCELLED, "%s: finish fails too", name);
        koe_encoder_free(enc);
        KT_CHECK(s.calls == calls, "%s: the callback is not called again (%d vs %d)", name, s.calls,
                 calls);
        koe_buf_free(&s.bytes);
        free(x);
    }
}

static void test_invalid(void) {
    sink s = {0};
    koe_error err = {0};
    KT_EXPECT(koe_encoder_new((koe_format)99, RATE, NULL, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_INVALID);
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_MP3, RATE, NULL, NULL, &s, &err) == NULL &&
              err.code == KOE_ERR_INVALID);
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_WAV, 0, NULL, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_UNSUPPORTED);
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_OPUS, 22050, NULL, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_UNSUPPORTED && strstr(err.msg, "22050"));
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_MP3, 23000, NULL, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_UNSUPPORTED);
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_AAC, 23000, NULL, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_UNSUPPORTED);
    koe_encoder_opts bad_level = {.flac_level = 9};
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_FLAC, RATE, &bad_level, sink_write, &s, &err) == NULL &&
              err.code == KOE_ERR_INVALID);
    koe_encoder_opts bad_rate = {.bitrate = -5};
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_MP3, RATE, &bad_rate, sink_write, &s, &err) == NULL);
    koe_encoder_opts mp3_too_high = {.bitrate = 320000}; /* MPEG-2 tops out at 160 kbit/s */
    KT_EXPECT(koe_encoder_new(KOE_FORMAT_MP3, RATE, &mp3_too_high, sink_write, &s, &err) == NULL);
    KT_CHECK(s.calls == 0, "failed constructors write nothing");

    koe_encoder *enc = koe_encoder_new(KOE_FORMAT_PCM, RATE, NULL, sink_write, &s, &err);
    KT_EXPECT(koe_encoder_write(enc, NULL, 5, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_encoder_write(enc, NULL, 0, &err) == 0);
    KT_EXPECT(koe_encoder_finish(enc, &err) == 0);
    float one = 0.25f;
    KT_EXPECT(koe_encoder_write(enc, &one, 1, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_encoder_finish(enc, &err) == KOE_ERR_INVALID);
    koe_encoder_free(enc);
    KT_EXPECT(koe_encoder_write(NULL, &one, 1, &err) == KOE_ERR_INVALID);
    koe_encoder_free(NULL);

    /* An announced length must be kept. */
    koe_encoder_opts total = {.total_samples = 10};
    enc = koe_encoder_new(KOE_FORMAT_WAV, RATE, &total, sink_write, &s, &err);
    float x[11] = {0};
    KT_EXPECT(koe_encoder_write(enc, x, 11, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_encoder_write(enc, x, 9, &err) == 0);
    KT_EXPECT(koe_encoder_finish(enc, &err) == KOE_ERR_INVALID && strstr(err.msg, "announced"));
    koe_encoder_free(enc);
    koe_buf_free(&s.bytes);
}

/* Garbage in (NaN, infinities, huge values, denormals) is clipped, never an error or a crash,
 * and the result still decodes. */
static void test_extreme_values(void) {
    const size_t n = 5000;
    float *x = malloc(n * sizeof *x);
    unsigned r = 1;
    for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        static const float specials[] = {NAN,    INFINITY, -INFINITY, 1e30f,
                                         -1e30f, 1e-40f,   1.0f,      -1.0f};
        x[i] = (r >> 28) < 8 ? specials[(r >> 28)] : (float)((int)(r >> 8) % 4001 - 2000) / 1000;
    }
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        const char *name = koe_format_name((koe_format)f);
        sink s = {0};
        koe_error err = {0};
        koe_encoder *enc = koe_encoder_new((koe_format)f, RATE, NULL, sink_write, &s, &err);
        KT_CHECK(enc && koe_encoder_write(enc, x, n, &err) == 0 &&
                     koe_encoder_finish(enc, &err) == 0,
                 "%s: extreme values encode (%s)", name, err.msg);
        koe_encoder_free(enc);
        if (have_ffmpeg && f != KOE_FORMAT_PCM) {
            char path[512];
            snprintf(path, sizeof path, "%s/extreme.%s", tmpdir, koe_format_ext((koe_format)f));
            save(path, &s.bytes);
            size_t got = 0;
            float *y = ffmpeg_decode("", path, &got, f != KOE_FORMAT_WAV);
            int finite = y != NULL;
            for (size_t i = 0; y && i < got; i++) finite &= isfinite(y[i]) != 0;
            KT_CHECK(finite && got >= n, "%s: decodes to %zu finite samples", name, got);
            free(y);
        }
        koe_buf_free(&s.bytes);
    }
    free(x);
}

static void test_names(void) {
    koe_format f;
    koe_error err = {0};
    KT_EXPECT(koe_format_parse("MP3", &f, &err) == 0 && f == KOE_FORMAT_MP3);
    KT_EXPECT(koe_format_parse("ogg", &f, &err) == 0 && f == KOE_FORMAT_OPUS);
    KT_EXPECT(koe_format_parse("mp4", &f, &err) == KOE_ERR_INVALID && strstr(err.msg, "mp4"));
    KT_EXPECT(koe_format_parse(NULL, &f, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_format_from_path("/a.b/out.FLAC", &f, &err) == 0 && f == KOE_FORMAT_FLAC);
    KT_EXPECT(koe_format_from_path("x.raw", &f, &err) == 0 && f == KOE_FORMAT_PCM);
    KT_EXPECT(koe_format_from_path("dir.wav/noext", &f, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_format_from_path("x.doc", &f, &err) == KOE_ERR_INVALID);
    for (int i = 0; i < KOE_FORMAT_COUNT; i++) {
        koe_format back;
        KT_EXPECT(koe_format_parse(koe_format_name((koe_format)i), &back, NULL) == 0 &&
                  back == (koe_format)i);
        KT_EXPECT(strchr(koe_format_mime((koe_format)i), '/') != NULL);
    }
    KT_EXPECT(!strcmp(koe_format_mime(KOE_FORMAT_MP3), "audio/mpeg"));
    KT_EXPECT(!strcmp(koe_format_ext(KOE_FORMAT_OPUS), "opus"));
    KT_EXPECT(!strcmp(koe_format_name((koe_format)-1), "unknown"));
}

static uint32_t le32_at(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static void test_wav_headers(void) {
    /* Streaming: sizes say "unknown"; ffmpeg reading from a pipe takes every sample. */
    sink s = {0};
    koe_error err = {0};
    size_t n = 12345;
    KT_EXPECT(encode_sine(KOE_FORMAT_WAV, n, NULL, &s, &err) == 0);
    KT_EXPECT(s.bytes.len == 44 + 2 * n);
    KT_EXPECT(le32_at(s.bytes.data + 4) == UINT32_MAX && le32_at(s.bytes.data + 40) == UINT32_MAX);
    KT_EXPECT(le32_at(s.bytes.data + 24) == RATE);
    char path[512];
    snprintf(path, sizeof path, "%s/stream.wav", tmpdir);
    save(path, &s.bytes);
    if (have_ffmpeg) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cat '%s' | ffmpeg -nostdin -v error -f wav -i pipe:0 -f s16le - | wc -c", path);
        char *out = run_capture(cmd, NULL);
        KT_CHECK(out && strtoul(out, NULL, 10) == 2 * n, "wav from a pipe: %s bytes, want %zu",
                 out ? out : "?", 2 * n);
        free(out);
    }
    koe_buf_free(&s.bytes);
    s.calls = 0;

    /* Known length: exact sizes. */
    koe_encoder_opts opts = {.total_samples = n};
    KT_EXPECT(encode_sine(KOE_FORMAT_WAV, n, &opts, &s, &err) == 0);
    KT_EXPECT(le32_at(s.bytes.data + 4) == 36 + 2 * n && le32_at(s.bytes.data + 40) == 2 * n);
    koe_buf_free(&s.bytes);

    /* FLAC with an announced length: STREAMINFO carries it. */
    s.calls = 0;
    KT_EXPECT(encode_sine(KOE_FORMAT_FLAC, n, &opts, &s, &err) == 0);
    snprintf(path, sizeof path, "%s/known.flac", tmpdir);
    save(path, &s.bytes);
    koe_buf_free(&s.bytes);
    if (have_ffmpeg) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "ffprobe -v error -show_entries stream=duration_ts -of csv=p=0 '%s'", path);
        char *out = run_capture(cmd, NULL);
        KT_CHECK(out && strtoul(out, NULL, 10) == n, "flac with known length: duration_ts %s",
                 out ? out : "?");
        free(out);
    }

    /* Complete file written atomically. */
    float *x = make_sine(n, FREQ, AMP);
    x[0] = 2.0f; /* clipped */
    x[1] = NAN;  /* becomes 0 */
    snprintf(path, sizeof path, "%s/file.wav", tmpdir);
    KT_CHECK(koe_wav_write_file(path, x, n, RATE, &err) == 0, "wav file: %s", err.msg);
    size_t len = 0;
    char *data = kt_read_file(path, &len);
    KT_EXPECT(data && len == 44 + 2 * n && !memcmp(data, "RIFF", 4) &&
              le32_at(data + 4) == 36 + 2 * n && le32_at(data + 40) == 2 * n);
    if (data) {
        const unsigned char *u = (const unsigned char *)data + 44;
        KT_EXPECT(u[0] == 0xff && u[1] == 0x7f); /* 32767 */
        KT_EXPECT(u[2] == 0 && u[3] == 0);
        int16_t s100 = (int16_t)(u[200] | u[201] << 8);
        KT_EXPECT(abs(s100 - (int)lrintf(x[100] * 32768)) <= 1);
    }
    free(data);
    if (have_ffmpeg) {
        size_t got = 0;
        float *y = ffmpeg_decode("", path, &got, 1);
        KT_CHECK(y && got == n, "wav file decodes to %zu samples", got);
        free(y);
    }
    snprintf(path, sizeof path, "%s/no/such/dir/file.wav", tmpdir);
    KT_EXPECT(koe_wav_write_file(path, x, n, RATE, &err) == KOE_ERR_IO && strstr(err.msg, path));
    KT_EXPECT(koe_wav_write_file(NULL, x, n, RATE, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_wav_write_file(path, NULL, n, RATE, &err) == KOE_ERR_INVALID);
    free(x);
}

static void test_s16(void) {
    float in[] = {0.0f, 1.0f, -1.0f, 1.5f, -7.0f, NAN, INFINITY, -INFINITY, 0.5f, -0.5f, 0.99999f};
    int16_t out[11];
    koe_audio_to_s16(in, out, 11);
    KT_EXPECT(out[0] == 0 && out[1] == 32767 && out[2] == -32768 && out[3] == 32767);
    KT_EXPECT(out[4] == -32768 && out[5] == 0 && out[6] == 32767 && out[7] == -32768);
    KT_EXPECT(out[8] == 16384 && out[9] == -16384 && out[10] == 32767);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/koe-test-audio-XXXXXX");
    if (!mkdtemp(tmpdir)) return kt_skip("cannot create a temporary directory");
    have_ffmpeg =
        system("ffmpeg -version >/dev/null 2>&1 && ffprobe -version >/dev/null 2>&1") == 0;
    if (!have_ffmpeg) fprintf(stderr, "ffmpeg/ffprobe not found: decoding checks skipped\n");
    kt_run("names", test_names);
    kt_run("s16", test_s16);
    kt_run("invalid", test_invalid);
    kt_run("formats_decode", test_formats_decode);
    kt_run("empty_stream", test_empty_stream);
    kt_run("extreme_values", test_extreme_values);
    kt_run("write_callback_stops", test_write_callback_stops);
    kt_run("wav_headers", test_wav_headers);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return kt_finish();
}
