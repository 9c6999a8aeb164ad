/* MP3 through libmp3lame: constant bitrate, mono, at the input rate (24 kHz is MPEG-2 layer III).
 * No Xing/LAME tag frame: it would have to be rewritten at the end, which a stream cannot do. */
#include <lame/lame.h>
#include <stdlib.h>

#include "audio/encoder_impl.h"

#define MP3_DEFAULT_BITRATE 64000
#define MP3_CHUNK           1152
/* lame's documented worst case for one call: 1.25 x samples + 7200 bytes. */
#define MP3_OUT_CAP (MP3_CHUNK * 5 / 4 + 7200)

typedef struct mp3_state {
    lame_global_flags *lame;
    int16_t s16[MP3_CHUNK];
    unsigned char out[MP3_OUT_CAP];
} mp3_state;

static int mp3_rate_ok(int rate) {
    static const int rates[] = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (rates[i] == rate) return 1;
    return 0;
}

static int mp3_init(koe_encoder *enc, koe_error *err) {
    if (!mp3_rate_ok(enc->sample_rate))
        return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                             "mp3 encoder: %d Hz is not an MPEG sample rate (8000, 11025, 12000, "
                             "16000, 22050, 24000, 32000, 44100, 48000)",
                             enc->sample_rate);
    int bitrate = enc->opts.bitrate ? enc->opts.bitrate : MP3_DEFAULT_BITRATE;
    /* lame silently clamps a bitrate its MPEG version cannot carry; say so instead. */
    int low_rates = enc->sample_rate < 32000; /* MPEG-2 and 2.5 */
    int kbps_min = low_rates ? 8 : 32, kbps_max = low_rates ? 160 : 320;
    if (bitrate < kbps_min * 1000 || bitrate > kbps_max * 1000)
        return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                             "mp3 encoder: %d bit/s is outside %d-%d kbit/s allowed at %d Hz",
                             bitrate, kbps_min, kbps_max, enc->sample_rate);
    mp3_state *st = calloc(1, sizeof *st);
    if (!st) return koe_error_set(err, KOE_ERR_NOMEM, "mp3 encoder: out of memory");
    enc->codec = st;
    st->lame = lame_init();
    if (!st->lame) return koe_error_set(err, KOE_ERR_NOMEM, "mp3 encoder: lame_init failed");
    lame_set_num_channels(st->lame, 1);
    lame_set_mode(st->lame, MONO);
    lame_set_in_samplerate(st->lame, enc->sample_rate);
    /* Without this lame may pick a lower output rate for low bitrates. */
    lame_set_out_samplerate(st->lame, enc->sample_rate);
    lame_set_brate(st->lame, (bitrate + 500) / 1000);
    lame_set_VBR(st->lame, vbr_off);
    lame_set_bWriteVbrTag(st->lame, 0);
    lame_set_quality(st->lame, 5); /* lame's speed/quality middle ground */
    if (lame_init_params(st->lame) < 0)
        return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                             "mp3 encoder: lame rejects %d Hz at %d bit/s", enc->sample_rate,
                             bitrate);
    return 0;
}

static int mp3_encode(koe_encoder *enc, const float *pcm, size_t n, koe_error *err) {
    mp3_state *st = enc->codec;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < MP3_CHUNK ? n - done : MP3_CHUNK;
        koe_audio_to_s16(pcm + done, st->s16, k);
        int got = lame_encode_buffer(st->lame, st->s16, st->s16, (int)k, st->out, MP3_OUT_CAP);
        if (got < 0)
            return koe_error_set(err, KOE_ERR_INTERNAL,
                                 "mp3 encoder: lame_encode_buffer failed (%d)", got);
        int rc = koe_encoder_emit(enc, st->out, (size_t)got, err);
        if (rc != 0) return rc;
        done += k;
    }
    return 0;
}

static int mp3_finish(koe_encoder *enc, koe_error *err) {
    mp3_state *st = enc->codec;
    int got = lame_encode_flush(st->lame, st->out, MP3_OUT_CAP);
    if (got < 0)
        return koe_error_set(err, KOE_ERR_INTERNAL, "mp3 encoder: lame_encode_flush failed (%d)",
                             got);
    return koe_encoder_emit(enc, st->out, (size_t)got, err);
}

static void mp3_destroy(koe_encoder *enc) {
    mp3_state *st = enc->codec;
    if (!st) return;
    if (st->lame) lame_close(st->lame);
    free(st);
}

const koe_codec_ops koe_codec_mp3 = {mp3_init, mp3_encode, NULL, mp3_finish, mp3_destroy};
