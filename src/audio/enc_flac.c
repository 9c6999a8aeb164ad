/* FLAC through libFLAC's stream encoder with a write callback only: no seeking, so STREAMINFO
 * keeps "unknown" total length (unless announced) and an all-zero MD5 ("not computed"). Blocks of
 * 1152 samples (48 ms at 24 kHz) instead of libFLAC's 4096 so that the tail of a segment is not
 * held long. */
#include <FLAC/stream_encoder.h>
#include <stdlib.h>

#include "audio/encoder_impl.h"

#define FLAC_DEFAULT_LEVEL 5
#define FLAC_BLOCK         1152
#define FLAC_CHUNK         1024

typedef struct flac_state {
    FLAC__StreamEncoder *flac;
    koe_encoder *enc;
    koe_error *err;  /* where the write callback reports, during a libFLAC call */
    int callback_rc; /* what the last emit returned */
    int closing;     /* being freed: drop whatever libFLAC still writes */
    FLAC__int32 s32[FLAC_CHUNK];
} flac_state;

static FLAC__StreamEncoderWriteStatus flac_write_cb(const FLAC__StreamEncoder *e,
                                                    const FLAC__byte buffer[], size_t bytes,
                                                    uint32_t samples, uint32_t frame, void *user) {
    (void)e;
    (void)samples;
    (void)frame;
    flac_state *st = user;
    if (st->closing) return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
    st->callback_rc = koe_encoder_emit(st->enc, buffer, bytes, st->err);
    return st->callback_rc == 0 ? FLAC__STREAM_ENCODER_WRITE_STATUS_OK
                                : FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
}

/* libFLAC failed: the callback's own error if it was the cause, else libFLAC's state. */
static int flac_failure(flac_state *st, const char *what, koe_error *err) {
    if (st->callback_rc != 0) return st->callback_rc;
    FLAC__StreamEncoderState s = FLAC__stream_encoder_get_state(st->flac);
    return koe_error_set(err, KOE_ERR_INTERNAL, "flac encoder: %s failed (%s)", what,
                         FLAC__StreamEncoderStateString[s]);
}

static int flac_init(koe_encoder *enc, koe_error *err) {
    int rate = enc->sample_rate;
    flac_state *st = calloc(1, sizeof *st);
    if (!st) return koe_error_set(err, KOE_ERR_NOMEM, "flac encoder: out of memory");
    enc->codec = st;
    st->enc = enc;
    st->flac = FLAC__stream_encoder_new();
    if (!st->flac) return koe_error_set(err, KOE_ERR_NOMEM, "flac encoder: out of memory");
    FLAC__StreamEncoder *f = st->flac;
    int ok = FLAC__stream_encoder_set_channels(f, 1) &&
             FLAC__stream_encoder_set_bits_per_sample(f, 16) &&
             FLAC__stream_encoder_set_sample_rate(f, (uint32_t)rate) &&
             FLAC__stream_encoder_set_compression_level(
                 f, (uint32_t)(enc->opts.flac_level ? enc->opts.flac_level : FLAC_DEFAULT_LEVEL)) &&
             FLAC__stream_encoder_set_blocksize(f, FLAC_BLOCK) &&
             FLAC__stream_encoder_set_streamable_subset(f, true) &&
             FLAC__stream_encoder_set_total_samples_estimate(f, enc->opts.total_samples);
    if (!ok) return koe_error_set(err, KOE_ERR_INTERNAL, "flac encoder: configuration refused");
    st->err = err;
    FLAC__StreamEncoderInitStatus is =
        FLAC__stream_encoder_init_stream(f, flac_write_cb, NULL, NULL, NULL, st);
    st->err = NULL;
    if (is != FLAC__STREAM_ENCODER_INIT_STATUS_OK) {
        if (st->callback_rc != 0) return st->callback_rc;
        return koe_error_set(err, KOE_ERR_UNSUPPORTED, "flac encoder: %s at %d Hz",
                             FLAC__StreamEncoderInitStatusString[is], rate);
    }
    return 0;
}

static int flac_encode(koe_encoder *enc, const float *pcm, size_t n, koe_error *err) {
    flac_state *st = enc->codec;
    int16_t s16[FLAC_CHUNK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < FLAC_CHUNK ? n - done : FLAC_CHUNK;
        koe_audio_to_s16(pcm + done, s16, k);
        for (size_t i = 0; i < k; i++) st->s32[i] = s16[i];
        st->err = err;
        FLAC__bool ok = FLAC__stream_encoder_process_interleaved(st->flac, st->s32, (uint32_t)k);
        st->err = NULL;
        if (!ok) return flac_failure(st, "encoding", err);
        done += k;
    }
    return 0;
}

static int flac_finish(koe_encoder *enc, koe_error *err) {
    flac_state *st = enc->codec;
    st->err = err;
    FLAC__bool ok = FLAC__stream_encoder_finish(st->flac);
    st->err = NULL;
    return ok ? 0 : flac_failure(st, "finishing", err);
}

static void flac_destroy(koe_encoder *enc) {
    flac_state *st = enc->codec;
    if (!st) return;
    st->closing = 1; /* delete() finishes an unfinished stream: nobody wants those bytes */
    if (st->flac) FLAC__stream_encoder_delete(st->flac);
    free(st);
}

const koe_codec_ops koe_codec_flac = {flac_init, flac_encode, NULL, flac_finish, flac_destroy};
