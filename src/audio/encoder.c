/* Format names, the shared streaming-encoder front (argument checks, input clipping, holding bytes
 * until the stream starts, callback failures), and the two header-only formats: pcm and wav. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/encoder_impl.h"

static const struct {
    const char *name, *mime, *ext;
} format_info[KOE_FORMAT_COUNT] = {
    [KOE_FORMAT_PCM] = {"pcm", "audio/pcm", "pcm"},
    [KOE_FORMAT_WAV] = {"wav", "audio/wav", "wav"},
    [KOE_FORMAT_MP3] = {"mp3", "audio/mpeg", "mp3"},
    [KOE_FORMAT_OPUS] = {"opus", "audio/ogg", "opus"},
    [KOE_FORMAT_FLAC] = {"flac", "audio/flac", "flac"},
    [KOE_FORMAT_AAC] = {"aac", "audio/aac", "aac"},
};

static int format_valid(koe_format fmt) {
    return (int)fmt >= 0 && fmt < KOE_FORMAT_COUNT;
}

const char *koe_format_name(koe_format fmt) {
    return format_valid(fmt) ? format_info[fmt].name : "unknown";
}

const char *koe_format_mime(koe_format fmt) {
    return format_valid(fmt) ? format_info[fmt].mime : "application/octet-stream";
}

const char *koe_format_ext(koe_format fmt) {
    return format_valid(fmt) ? format_info[fmt].ext : "bin";
}

int koe_format_parse(const char *name, koe_format *out, koe_error *err) {
    if (!name || !out) return koe_error_set(err, KOE_ERR_INVALID, "format: no name given");
    for (int f = 0; f < KOE_FORMAT_COUNT; f++) {
        if (strcasecmp(name, format_info[f].name) == 0) {
            *out = (koe_format)f;
            return 0;
        }
    }
    if (strcasecmp(name, "ogg") == 0) {
        *out = KOE_FORMAT_OPUS;
        return 0;
    }
    return koe_error_set(err, KOE_ERR_INVALID,
                         "unknown audio format '%.64s' (expected mp3, opus, aac, flac, wav or pcm)",
                         name);
}

int koe_format_from_path(const char *path, koe_format *out, koe_error *err) {
    if (!path || !out) return koe_error_set(err, KOE_ERR_INVALID, "format: no file name given");
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot || !dot[1])
        return koe_error_set(err, KOE_ERR_INVALID,
                             "cannot tell the audio format of '%.200s': no file extension", path);
    if (strcasecmp(dot + 1, "raw") == 0) {
        *out = KOE_FORMAT_PCM;
        return 0;
    }
    if (koe_format_parse(dot + 1, out, NULL) == 0) return 0;
    return koe_error_set(err, KOE_ERR_INVALID,
                         "unknown audio file extension '%.32s' in '%.200s' (expected .mp3 .opus "
                         ".ogg .aac .flac .wav .pcm .raw)",
                         dot, path);
}

void koe_audio_to_s16(const float *in, int16_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = in[i];
        /* The comparisons are written so that NaN falls through to 0. */
        if (v >= 1.0f)
            out[i] = 32767;
        else if (v <= -1.0f)
            out[i] = -32768;
        else if (v == v) {
            long q = lrintf(v * 32768.0f);
            out[i] = (int16_t)(q > 32767 ? 32767 : q);
        } else
            out[i] = 0;
    }
}

/* ---- shared front ---------------------------------------------------------------------------- */

static const koe_codec_ops *codec_for(koe_format fmt) {
    switch (fmt) {
    case KOE_FORMAT_PCM:
        return &koe_codec_pcm;
    case KOE_FORMAT_WAV:
        return &koe_codec_wav;
    case KOE_FORMAT_MP3:
        return &koe_codec_mp3;
    case KOE_FORMAT_OPUS:
        return &koe_codec_opus;
    case KOE_FORMAT_FLAC:
        return &koe_codec_flac;
    case KOE_FORMAT_AAC:
        return &koe_codec_aac;
    default:
        return NULL;
    }
}

int koe_encoder_emit(koe_encoder *enc, const void *data, size_t n, koe_error *err) {
    if (enc->failed)
        return koe_error_set(err, enc->failed, "%s encoder: the stream already failed",
                             koe_format_name(enc->fmt));
    if (n == 0) return 0;
    if (!enc->started) {
        if (koe_buf_append(&enc->pending, data, n) != 0)
            return koe_error_set(err, KOE_ERR_NOMEM, "%s encoder: out of memory",
                                 koe_format_name(enc->fmt));
        return 0;
    }
    int rc = enc->write(enc->user, data, n);
    if (rc != 0) {
        enc->failed = KOE_ERR_CANCELLED;
        return koe_error_set(err, KOE_ERR_CANCELLED,
                             "%s encoder: the output stopped (write callback returned %d)",
                             koe_format_name(enc->fmt), rc);
    }
    enc->bytes_out += n;
    return 0;
}

/* From now on bytes go straight out; the held header goes first. */
static int start_stream(koe_encoder *enc, koe_error *err) {
    if (enc->started) return 0;
    enc->started = 1;
    int rc = koe_encoder_emit(enc, enc->pending.data, enc->pending.len, err);
    koe_buf_free(&enc->pending);
    return rc;
}

koe_encoder *koe_encoder_new(koe_format fmt, int sample_rate, const koe_encoder_opts *opts,
                             koe_write_fn write, void *user, koe_error *err) {
    const koe_codec_ops *ops = codec_for(fmt);
    if (!ops) {
        koe_error_set(err, KOE_ERR_INVALID, "audio encoder: invalid format %d", (int)fmt);
        return NULL;
    }
    if (!write) {
        koe_error_set(err, KOE_ERR_INVALID, "%s encoder: no write callback", koe_format_name(fmt));
        return NULL;
    }
    if (sample_rate < 8000 || sample_rate > 192000) {
        koe_error_set(err, KOE_ERR_UNSUPPORTED,
                      "%s encoder: sample rate %d Hz is outside 8000..192000", koe_format_name(fmt),
                      sample_rate);
        return NULL;
    }
    if (opts && (opts->bitrate < 0 || opts->bitrate > 512000)) {
        koe_error_set(err, KOE_ERR_INVALID, "%s encoder: bitrate %d is outside 0..512000",
                      koe_format_name(fmt), opts->bitrate);
        return NULL;
    }
    if (opts && (opts->flac_level < 0 || opts->flac_level > 8)) {
        koe_error_set(err, KOE_ERR_INVALID, "flac encoder: level %d is outside 1..8 (0 = default)",
                      opts->flac_level);
        return NULL;
    }
    koe_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) {
        koe_error_set(err, KOE_ERR_NOMEM, "audio encoder: out of memory");
        return NULL;
    }
    enc->fmt = fmt;
    enc->sample_rate = sample_rate;
    if (opts) enc->opts = *opts;
    enc->write = write;
    enc->user = user;
    enc->ops = ops;
    if (ops->init(enc, err) != 0) {
        koe_encoder_free(enc);
        return NULL;
    }
    return enc;
}

static int check_usable(koe_encoder *enc, const char *what, koe_error *err) {
    if (!enc) return koe_error_set(err, KOE_ERR_INVALID, "audio encoder: %s on NULL", what);
    if (enc->failed)
        return koe_error_set(err, enc->failed, "%s encoder: %s after the stream failed",
                             koe_format_name(enc->fmt), what);
    if (enc->finished)
        return koe_error_set(err, KOE_ERR_INVALID, "%s encoder: %s after finish",
                             koe_format_name(enc->fmt), what);
    return 0;
}

int koe_encoder_write(koe_encoder *enc, const float *pcm, size_t n, koe_error *err) {
    int rc = check_usable(enc, "write", err);
    if (rc != 0) return rc;
    if (n == 0) return 0;
    if (!pcm)
        return koe_error_set(err, KOE_ERR_INVALID, "%s encoder: NULL samples",
                             koe_format_name(enc->fmt));
    if (enc->opts.total_samples && enc->samples_in + n > enc->opts.total_samples)
        return koe_error_set(
            err, KOE_ERR_INVALID, "%s encoder: more samples than the announced %llu",
            koe_format_name(enc->fmt), (unsigned long long)enc->opts.total_samples);
    if ((rc = start_stream(enc, err)) != 0) return rc;
    /* Clip in fixed-size pieces so any caller buffer size works without allocation. */
    float clean[1024];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 1024 ? n - done : 1024;
        for (size_t i = 0; i < k; i++) {
            float v = pcm[done + i];
            clean[i] = v >= 1.0f ? 1.0f : v <= -1.0f ? -1.0f : v == v ? v : 0.0f;
        }
        if ((rc = enc->ops->encode(enc, clean, k, err)) != 0) {
            enc->failed = rc;
            return rc;
        }
        enc->samples_in += k;
        done += k;
    }
    if (enc->ops->end_of_write && (rc = enc->ops->end_of_write(enc, err)) != 0) enc->failed = rc;
    return rc;
}

int koe_encoder_finish(koe_encoder *enc, koe_error *err) {
    int rc = check_usable(enc, "finish", err);
    if (rc != 0) return rc;
    if (enc->opts.total_samples && enc->samples_in != enc->opts.total_samples) {
        enc->failed = KOE_ERR_INVALID;
        return koe_error_set(err, KOE_ERR_INVALID,
                             "%s encoder: finished after %llu samples but %llu were announced",
                             koe_format_name(enc->fmt), (unsigned long long)enc->samples_in,
                             (unsigned long long)enc->opts.total_samples);
    }
    if ((rc = start_stream(enc, err)) != 0) return rc;
    enc->finished = 1;
    if ((rc = enc->ops->finish(enc, err)) != 0) enc->failed = rc;
    return rc;
}

void koe_encoder_free(koe_encoder *enc) {
    if (!enc) return;
    if (enc->ops && enc->ops->destroy) enc->ops->destroy(enc);
    koe_buf_free(&enc->pending);
    free(enc);
}

koe_format koe_encoder_format(const koe_encoder *enc) {
    return enc->fmt;
}
int koe_encoder_sample_rate(const koe_encoder *enc) {
    return enc->sample_rate;
}
uint64_t koe_encoder_samples_in(const koe_encoder *enc) {
    return enc->samples_in;
}
uint64_t koe_encoder_bytes_out(const koe_encoder *enc) {
    return enc->bytes_out;
}

/* ---- pcm and wav ----------------------------------------------------------------------------- */

static int s16_init(koe_encoder *enc, koe_error *err) {
    (void)enc;
    (void)err;
    return 0;
}

static void put_le16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
}

static void put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
}

/* Little-endian s16 bytes regardless of the host's byte order. */
static int s16_encode(koe_encoder *enc, const float *pcm, size_t n, koe_error *err) {
    int16_t s[1024];
    unsigned char bytes[2048];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 1024 ? n - done : 1024;
        koe_audio_to_s16(pcm + done, s, k);
        for (size_t i = 0; i < k; i++) put_le16(bytes + 2 * i, (uint16_t)s[i]);
        int rc = koe_encoder_emit(enc, bytes, 2 * k, err);
        if (rc != 0) return rc;
        done += k;
    }
    return 0;
}

static int s16_finish(koe_encoder *enc, koe_error *err) {
    (void)enc;
    (void)err;
    return 0;
}

/* The canonical 44-byte header. data_bytes = UINT32_MAX means "unknown length": the RIFF size is
 * then UINT32_MAX as well, the convention ffmpeg and browsers read as "until the stream ends". */
static void wav_header(unsigned char h[44], int rate, uint32_t data_bytes) {
    memcpy(h, "RIFF", 4);
    put_le32(h + 4, data_bytes == UINT32_MAX ? UINT32_MAX : 36 + data_bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le32(h + 16, 16);
    put_le16(h + 20, 1); /* PCM */
    put_le16(h + 22, 1); /* mono */
    put_le32(h + 24, (uint32_t)rate);
    put_le32(h + 28, (uint32_t)rate * 2);
    put_le16(h + 32, 2);
    put_le16(h + 34, 16);
    memcpy(h + 36, "data", 4);
    put_le32(h + 40, data_bytes);
}

/* WAV sizes are 32-bit: the largest data chunk that fits with the RIFF header. */
#define WAV_MAX_SAMPLES ((uint64_t)(UINT32_MAX - 36) / 2)

static int wav_init(koe_encoder *enc, koe_error *err) {
    uint64_t total = enc->opts.total_samples;
    if (total > WAV_MAX_SAMPLES)
        return koe_error_set(err, KOE_ERR_LIMIT,
                             "wav encoder: %llu samples do not fit in a WAV file (max %llu)",
                             (unsigned long long)total, (unsigned long long)WAV_MAX_SAMPLES);
    unsigned char h[44];
    wav_header(h, enc->sample_rate, total ? (uint32_t)(total * 2) : UINT32_MAX);
    return koe_encoder_emit(enc, h, sizeof h, err);
}

const koe_codec_ops koe_codec_pcm = {s16_init, s16_encode, NULL, s16_finish, NULL};
const koe_codec_ops koe_codec_wav = {wav_init, s16_encode, NULL, s16_finish, NULL};

/* ---- complete WAV file ----------------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int koe_wav_write_file(const char *path, const float *pcm, size_t n, int sample_rate,
                       koe_error *err) {
    if (!path || !*path) return koe_error_set(err, KOE_ERR_INVALID, "wav file: no path given");
    if (n > 0 && !pcm) return koe_error_set(err, KOE_ERR_INVALID, "wav file: NULL samples");
    if (sample_rate < 8000 || sample_rate > 192000)
        return koe_error_set(err, KOE_ERR_INVALID,
                             "wav file: sample rate %d is outside 8000..192000", sample_rate);
    if ((uint64_t)n > WAV_MAX_SAMPLES)
        return koe_error_set(err, KOE_ERR_LIMIT, "wav file: %zu samples do not fit in a WAV file",
                             n);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return koe_error_set(err, KOE_ERR_NOMEM, "wav file: out of memory");
    /* Same directory, so that rename() is atomic; mkstemp gives a name no one else uses. */
    snprintf(tmp, plen + 32, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return koe_error_set(err, KOE_ERR_IO, "wav file: cannot create a file next to %s: %s", path,
                             strerror(e));
    }
    unsigned char h[44];
    wav_header(h, sample_rate, (uint32_t)(n * 2));
    int failed = write_all(fd, h, sizeof h);
    int16_t s[1024];
    unsigned char bytes[2048];
    for (size_t done = 0; !failed && done < n;) {
        size_t k = n - done < 1024 ? n - done : 1024;
        koe_audio_to_s16(pcm + done, s, k);
        for (size_t i = 0; i < k; i++) put_le16(bytes + 2 * i, (uint16_t)s[i]);
        failed = write_all(fd, bytes, 2 * k);
        done += k;
    }
    int e = failed ? errno : 0;
    if (!failed && fchmod(fd, 0644) != 0) {
        failed = 1;
        e = errno;
    }
    if (close(fd) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    if (!failed && rename(tmp, path) != 0) {
        failed = 1;
        e = errno;
    }
    if (failed) {
        unlink(tmp);
        free(tmp);
        return koe_error_set(err, KOE_ERR_IO, "wav file: cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}
