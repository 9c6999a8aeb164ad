/* Audio output: streaming encoders (pcm, wav, mp3, opus in Ogg, flac, aac in ADTS), a streaming
 * polyphase resampler, and loudness normalization (-16 LUFS integrated, true peak <= -1 dBTP).
 *
 * Samples are mono float in [-1, 1] (values outside are clipped, NaN becomes 0). Every object here
 * is used by one thread at a time; separate objects are independent (no shared state). */
#ifndef KOE_AUDIO_H
#define KOE_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"

/* Kokoro's output rate; the default everywhere a rate is needed. */
#define KOE_AUDIO_RATE 24000

/* ------------------------------------------------------------------------------------------------
 * Formats */

typedef enum koe_format {
    KOE_FORMAT_PCM = 0, /* raw s16le mono, no header */
    KOE_FORMAT_WAV,     /* RIFF/WAVE s16le mono */
    KOE_FORMAT_MP3,     /* MPEG layer III (libmp3lame); 24 kHz gives MPEG-2 layer III */
    KOE_FORMAT_OPUS,    /* Opus in Ogg (libopus + libogg), 20 ms frames */
    KOE_FORMAT_FLAC,    /* FLAC 16-bit (libFLAC) */
    KOE_FORMAT_AAC,     /* AAC-LC in ADTS framing (libavcodec's native "aac" encoder) */
    KOE_FORMAT_COUNT
} koe_format;

/* Parses a format name as used by the OpenAI API ("pcm", "wav", "mp3", "opus", "flac", "aac";
 * case-insensitive; "ogg" is accepted for opus). Returns 0 or KOE_ERR_INVALID naming the choices.
 */
int koe_format_parse(const char *name, koe_format *out, koe_error *err);
/* Picks the format from a file name's extension (.pcm .raw .wav .mp3 .opus .ogg .flac .aac).
 * Returns 0 or KOE_ERR_INVALID. */
int koe_format_from_path(const char *path, koe_format *out, koe_error *err);
/* Canonical name ("mp3"), MIME type ("audio/mpeg") and file extension without dot ("mp3").
 * Static strings; "unknown" / "application/octet-stream" / "bin" for an out-of-range value. */
const char *koe_format_name(koe_format fmt);
const char *koe_format_mime(koe_format fmt);
const char *koe_format_ext(koe_format fmt);

/* ------------------------------------------------------------------------------------------------
 * Streaming encoders
 *
 * Bytes leave through the write callback as soon as the codec has a frame. Nothing at all is
 * written before the first koe_encoder_write() with samples (or koe_encoder_finish()), so a caller
 * can still answer with an error status if synthesis fails before any audio exists.
 * The write callback returns 0 to go on, non-zero to stop (e.g. the client went away): the encoder
 * call in progress then returns KOE_ERR_CANCELLED, and so does every later call; only
 * koe_encoder_free() is useful afterwards. */

typedef int (*koe_write_fn)(void *user, const void *data, size_t n);

/* Options; a zero-initialized struct (or NULL) means the defaults for every field. */
typedef struct koe_encoder_opts {
    int bitrate;    /* bits/s for mp3, opus and aac; 0 = default (mp3 64k, opus 32k, aac 64k) */
    int flac_level; /* FLAC compression level 1..8; 0 = default (5) */
    uint64_t total_samples; /* if known in advance (> 0): wav gets an exact header and flac an exact
                               STREAMINFO; finishing with a different count is KOE_ERR_INVALID.
                               0 = unknown length: wav sizes are 0xFFFFFFFF ("until end of
                               stream"), which ffmpeg, browsers and sox accept */
} koe_encoder_opts;

typedef struct koe_encoder koe_encoder;

/* sample_rate: 8000..192000 for pcm/wav/flac; an MPEG rate for mp3 (8000, 11025, 12000, 16000,
 * 22050, 24000, 32000, 44100, 48000); 8000/12000/16000/24000/48000 for opus; an AAC rate for aac.
 * Other combinations are KOE_ERR_UNSUPPORTED (resample first). */
koe_encoder *koe_encoder_new(koe_format fmt, int sample_rate, const koe_encoder_opts *opts,
                             koe_write_fn write, void *user, koe_error *err);
/* Encodes n samples (any n, including 0). Returns 0 or an error code. */
int koe_encoder_write(koe_encoder *enc, const float *pcm, size_t n, koe_error *err);
/* Flushes the codec and writes the trailer (end-of-stream page, last frames). After a
 * successful finish the bytes written form a complete file (for pcm and aac, a stream without
 * samples is empty). Further writes are KOE_ERR_INVALID. */
int koe_encoder_finish(koe_encoder *enc, koe_error *err);
void koe_encoder_free(koe_encoder *enc);

koe_format koe_encoder_format(const koe_encoder *enc);
int koe_encoder_sample_rate(const koe_encoder *enc);
/* Samples accepted so far and bytes handed to the write callback so far. */
uint64_t koe_encoder_samples_in(const koe_encoder *enc);
uint64_t koe_encoder_bytes_out(const koe_encoder *enc);

/* Writes a complete WAV file (s16le mono, exact header) atomically: a temporary file next to path,
 * then rename. Returns 0 or KOE_ERR_IO / KOE_ERR_INVALID. */
int koe_wav_write_file(const char *path, const float *pcm, size_t n, int sample_rate,
                       koe_error *err);

/* libavcodec logs at "info" level to stderr by default (the aac encoder prints a statistics line
 * when it closes). This lowers libav's process-wide log level to errors; call it once at start-up
 * (it is the one global setting the audio module touches, so it is the caller's choice). */
void koe_audio_quiet_codec_logs(void);

/* Float to s16 with clipping (NaN -> 0); used by every 16-bit format. */
void koe_audio_to_s16(const float *in, int16_t *out, size_t n);

/* ------------------------------------------------------------------------------------------------
 * Resampler: streaming polyphase windowed-sinc (Kaiser) between any two rates whose reduced
 * ratio has at most 1024 phases (e.g. 22050 -> 24000 is 160/147). Passband flat to 0.82 x the lower
 * Nyquist within 0.1 dB (9 kHz for 22050 -> 24000), stopband >= 60 dB from the lower Nyquist up.
 * Output is time-aligned with the input (the filter delay is compensated): after flush, n input
 * samples have produced round-up(n x out_rate / in_rate) output samples, and chunked calls give
 * exactly the output of one call. */

typedef struct koe_resampler koe_resampler;

koe_resampler *koe_resampler_new(int in_rate, int out_rate, koe_error *err);
/* Output capacity that is always enough for a process() call with n input samples (or, with
 * n = 0, for flush()). */
size_t koe_resampler_max_output(const koe_resampler *rs, size_t n);
/* Consumes all n input samples, writes the produced samples to out and their count to *produced.
 * out_cap < koe_resampler_max_output(rs, n) is KOE_ERR_INVALID (nothing consumed). */
int koe_resampler_process(koe_resampler *rs, const float *in, size_t n, float *out, size_t out_cap,
                          size_t *produced, koe_error *err);
/* End of input: writes the remaining samples. The resampler can then be reused for a new stream
 * only after koe_resampler_reset(). */
int koe_resampler_flush(koe_resampler *rs, float *out, size_t out_cap, size_t *produced,
                        koe_error *err);
void koe_resampler_reset(koe_resampler *rs);
void koe_resampler_free(koe_resampler *rs);

/* ------------------------------------------------------------------------------------------------
 * Loudness: a gain toward a target integrated loudness, then a true-peak limiter.
 *
 * The gain comes either from a calibration (input_lufs: the measured integrated loudness of this
 * voice's raw output, e.g. from koe_loudness_measure() at warm-up) or, without one, from a running
 * BS.1770 gated estimate of the input so far. The estimate used for the samples of a call includes
 * up to one second of that call's own input, so a segment handed over whole is normalized from
 * its first sample; until 0.1 s of input above -70 LUFS exists the gain assumes -20 LUFS. The
 * first estimate applies at once; later the gain falls within ~50 ms and rises over ~0.25 s (an
 * early estimate tends to be low, and a short overshoot is better than a long one). The loudness
 * the limiter takes away (measured over the last 3 s; for a piece of >= 0.1 s before that, by
 * trying the piece on a copy of the limiter; at most 3 dB) is added back to the gain.
 * The limiter looks ahead a few ms (default 2 ms) at a 4x oversampled peak estimate, reaches the
 * needed gain within the look-ahead and releases smoothly (default 80 ms); it aims 0.2 dB under
 * the ceiling so another meter's true-peak filter also reads <= ceiling. Output is delayed by
 * koe_loudness_delay() samples: process() returns that many fewer samples at the start, and
 * flush() returns them at the end (the total count is unchanged). */

typedef struct koe_loudness_opts {
    double target_lufs;  /* 0 = default -16 */
    double ceiling_dbtp; /* true-peak ceiling; 0 = default -1 (must be < 0) */
    double input_lufs;   /* calibration of the input; 0 = unknown (use the running estimate) */
    double lookahead_ms; /* limiter look-ahead; 0 = default 2 */
    double release_ms;   /* limiter release time constant; 0 = default 80 */
} koe_loudness_opts;

typedef struct koe_loudness koe_loudness;

koe_loudness *koe_loudness_new(int sample_rate, const koe_loudness_opts *opts, koe_error *err);
/* Processes n samples; writes the produced ones (n minus what the look-ahead holds back, never
 * more than n) to out and their count to *produced. out may equal in (in place). */
int koe_loudness_process(koe_loudness *ld, const float *in, size_t n, float *out, size_t out_cap,
                         size_t *produced, koe_error *err);
/* End of input: writes the held-back samples (koe_loudness_delay() of them, or fewer if fewer
 * were given). */
int koe_loudness_flush(koe_loudness *ld, float *out, size_t out_cap, size_t *produced,
                       koe_error *err);
size_t koe_loudness_delay(const koe_loudness *ld);
/* The gain (dB) currently applied before the limiter, and the input loudness estimate in use. */
double koe_loudness_gain_db(const koe_loudness *ld);
double koe_loudness_input_lufs(const koe_loudness *ld);
void koe_loudness_free(koe_loudness *ld);

/* Measures integrated loudness (LUFS, -HUGE_VAL for silence) and true peak (dBTP) of mono
 * samples with libebur128; either output may be NULL. */
int koe_loudness_measure(const float *pcm, size_t n, int sample_rate, double *lufs,
                         double *true_peak_dbtp, koe_error *err);

/* ------------------------------------------------------------------------------------------------
 * Output chain: resampling (when the input rate differs), loudness normalization (optional) and
 * an encoder behind one write/finish pair, e.g. espeak-ng's 22050 Hz speech delivered as 24 kHz
 * mp3 at -16 LUFS. Same streaming and callback rules as koe_encoder (nothing is written before
 * the first samples; a stopping callback gives KOE_ERR_CANCELLED from then on). */

typedef struct koe_audio_out_opts {
    koe_encoder_opts encoder; /* total_samples, if set, counts output-rate samples */
    int normalize;            /* non-zero: koe_loudness with the options below */
    koe_loudness_opts loudness;
} koe_audio_out_opts;

typedef struct koe_audio_out koe_audio_out;

/* in_rate: the rate of the samples given to write(); out_rate: the encoded rate. */
koe_audio_out *koe_audio_out_new(koe_format fmt, int in_rate, int out_rate,
                                 const koe_audio_out_opts *opts, koe_write_fn write, void *user,
                                 koe_error *err);
int koe_audio_out_write(koe_audio_out *out, const float *pcm, size_t n, koe_error *err);
/* Flushes the resampler and the limiter's look-ahead, then finishes the encoder. */
int koe_audio_out_finish(koe_audio_out *out, koe_error *err);
void koe_audio_out_free(koe_audio_out *out);
/* The encoder inside (for its counters); owned by the chain. */
koe_encoder *koe_audio_out_encoder(koe_audio_out *out);

/* ------------------------------------------------------------------------------------------------
 * Comparison of a signal x with a reference (how an approximation of the engine's exact output is
 * measured, e.g. the chunked vocoder; no allocation beyond a small table on the stack). */

typedef struct koe_audio_deviation {
    double max_abs; /* max |x − ref| */
    double snr_db;  /* 10·log10(Σ ref² / Σ (x − ref)²); +inf when x = ref */
    /* Log-spectral distance in dB: frames of 512 samples (21.3 ms at 24 kHz), hop 256, periodic
     * Hann, power spectra P = |DFT|² over the 257 bins 0..256; per frame
     * sqrt(mean over bins of (10·log10((P_ref + ε) / (P_x + ε)))²), averaged over the frames
     * that fit in n (none when n < 512: 0). ε = 1e-10 · the largest P_ref of the signal (a floor
     * 100 dB under the reference's strongest bin, so silence does not dominate). */
    double lsd_db;
    int lsd_frames;
} koe_audio_deviation;

void koe_audio_compare(const float *ref, const float *x, int64_t n, koe_audio_deviation *out);

#endif
