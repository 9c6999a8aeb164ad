/* Internal to src/audio: the shared encoder object and the per-codec operations behind it. */
#ifndef KOE_AUDIO_ENCODER_IMPL_H
#define KOE_AUDIO_ENCODER_IMPL_H

#include "koe/audio.h"
#include "koe/base.h"

typedef struct koe_codec_ops {
    /* Sets up enc->codec; may emit header bytes (they are held until the stream starts). */
    int (*init)(koe_encoder *enc, koe_error *err);
    /* pcm is already clipped to [-1, 1] and free of NaN; n > 0. */
    int (*encode)(koe_encoder *enc, const float *pcm, size_t n, koe_error *err);
    /* Optional: called at the end of each koe_encoder_write() to push out what is ready. */
    int (*end_of_write)(koe_encoder *enc, koe_error *err);
    int (*finish)(koe_encoder *enc, koe_error *err);
    void (*destroy)(koe_encoder *enc);
} koe_codec_ops;

struct koe_encoder {
    koe_format fmt;
    int sample_rate;
    koe_encoder_opts opts;
    koe_write_fn write;
    void *user;
    const koe_codec_ops *ops;
    void *codec;     /* the codec's own state */
    koe_buf pending; /* bytes emitted before the stream started */
    int started;     /* the first samples (or finish) arrived: bytes go straight out */
    int failed;      /* 0, or the koe_code that stopped the stream (callback, codec) */
    int finished;
    uint64_t samples_in, bytes_out;
};

/* Hands bytes to the write callback (or holds them before the stream starts). Returns 0,
 * KOE_ERR_CANCELLED when the callback asked to stop, or KOE_ERR_NOMEM. */
int koe_encoder_emit(koe_encoder *enc, const void *data, size_t n, koe_error *err);

extern const koe_codec_ops koe_codec_pcm, koe_codec_wav, koe_codec_mp3, koe_codec_opus,
    koe_codec_flac, koe_codec_aac;

#endif
