/* AAC-LC through libavcodec's native "aac" encoder (float planar, 1024-sample frames), each packet
 * framed with a 7-byte ADTS header so the stream is self-describing and can be cut anywhere. */
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <stdlib.h>
#include <string.h>

#include "audio/encoder_impl.h"

#define AAC_DEFAULT_BITRATE 64000

typedef struct aac_state {
    AVCodecContext *ctx;
    AVFrame *frame;
    AVPacket *pkt;
    int frame_size;
    int fill;    /* samples in the current frame */
    int64_t pts; /* samples sent to the codec */
    int sf_index;
} aac_state;

/* ADTS sampling_frequency_index values (ISO 14496-3). */
static int adts_rate_index(int rate) {
    static const int rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                22050, 16000, 12000, 11025, 8000,  7350};
    for (int i = 0; i < (int)(sizeof rates / sizeof rates[0]); i++)
        if (rates[i] == rate) return i;
    return -1;
}

static int av_failure(int averr, const char *what, koe_error *err) {
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(averr, msg, sizeof msg);
    return koe_error_set(err, averr == AVERROR(ENOMEM) ? KOE_ERR_NOMEM : KOE_ERR_INTERNAL,
                         "aac encoder: %s: %s", what, msg);
}

static int aac_init(koe_encoder *enc, koe_error *err) {
    int sf = adts_rate_index(enc->sample_rate);
    if (sf < 0)
        return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                             "aac encoder: %d Hz is not an AAC sample rate (7350..96000, e.g. "
                             "24000, 44100, 48000)",
                             enc->sample_rate);
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    if (!codec)
        return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                             "aac encoder: libavcodec has no native \"aac\" encoder");
    aac_state *st = calloc(1, sizeof *st);
    if (!st) return koe_error_set(err, KOE_ERR_NOMEM, "aac encoder: out of memory");
    enc->codec = st;
    st->sf_index = sf;
    st->ctx = avcodec_alloc_context3(codec);
    st->frame = av_frame_alloc();
    st->pkt = av_packet_alloc();
    if (!st->ctx || !st->frame || !st->pkt)
        return koe_error_set(err, KOE_ERR_NOMEM, "aac encoder: out of memory");
    AVCodecContext *c = st->ctx;
    c->sample_fmt = AV_SAMPLE_FMT_FLTP;
    c->sample_rate = enc->sample_rate;
    c->bit_rate = enc->opts.bitrate ? enc->opts.bitrate : AAC_DEFAULT_BITRATE;
    c->profile = FF_PROFILE_AAC_LOW;
    c->time_base = (AVRational){1, enc->sample_rate};
    av_channel_layout_default(&c->ch_layout, 1);
    int rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) return av_failure(rc, "opening the codec", err);
    st->frame_size = c->frame_size > 0 ? c->frame_size : 1024;
    st->frame->format = AV_SAMPLE_FMT_FLTP;
    st->frame->nb_samples = st->frame_size;
    st->frame->sample_rate = enc->sample_rate;
    if ((rc = av_channel_layout_copy(&st->frame->ch_layout, &c->ch_layout)) < 0 ||
        (rc = av_frame_get_buffer(st->frame, 0)) < 0)
        return av_failure(rc, "allocating a frame", err);
    return 0;
}

static int emit_packet(koe_encoder *enc, aac_state *st, koe_error *err) {
    size_t len = 7 + (size_t)st->pkt->size;
    if (len > 8191) /* ADTS frame_length is 13 bits; a 1024-sample mono frame never gets close */
        return koe_error_set(err, KOE_ERR_INTERNAL, "aac encoder: packet of %d bytes too large",
                             st->pkt->size);
    unsigned char h[7];
    const int profile = 1; /* AAC LC: audio object type 2, minus one */
    const int channels = 1;
    h[0] = 0xFF;
    h[1] = 0xF1; /* sync, MPEG-4, layer 0, no CRC */
    h[2] = (unsigned char)((profile << 6) | (st->sf_index << 2) | (channels >> 2));
    h[3] = (unsigned char)(((channels & 3) << 6) | (len >> 11));
    h[4] = (unsigned char)((len >> 3) & 0xFF);
    h[5] = (unsigned char)(((len & 7) << 5) | 0x1F); /* buffer fullness 0x7FF: variable rate */
    h[6] = 0xFC;
    int rc = koe_encoder_emit(enc, h, sizeof h, err);
    if (rc == 0) rc = koe_encoder_emit(enc, st->pkt->data, (size_t)st->pkt->size, err);
    av_packet_unref(st->pkt);
    return rc;
}

/* Sends one frame (NULL = end of stream) and writes every packet the codec has ready. */
static int send_and_drain(koe_encoder *enc, aac_state *st, AVFrame *frame, koe_error *err) {
    int rc = avcodec_send_frame(st->ctx, frame);
    if (rc < 0) return av_failure(rc, "sending samples", err);
    for (;;) {
        rc = avcodec_receive_packet(st->ctx, st->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) return av_failure(rc, "receiving a packet", err);
        if ((rc = emit_packet(enc, st, err)) != 0) return rc;
    }
}

static int send_frame(koe_encoder *enc, aac_state *st, int nb_samples, koe_error *err) {
    st->frame->nb_samples = nb_samples;
    st->frame->pts = st->pts;
    st->pts += nb_samples;
    st->fill = 0;
    return send_and_drain(enc, st, st->frame, err);
}

static int aac_encode(koe_encoder *enc, const float *pcm, size_t n, koe_error *err) {
    aac_state *st = enc->codec;
    for (size_t done = 0; done < n;) {
        if (st->fill == 0) {
            /* The codec may still hold a reference to the previous frame's buffer. */
            int rc = av_frame_make_writable(st->frame);
            if (rc < 0) return av_failure(rc, "preparing a frame", err);
        }
        size_t k = (size_t)(st->frame_size - st->fill);
        if (k > n - done) k = n - done;
        memcpy((float *)st->frame->data[0] + st->fill, pcm + done, k * sizeof *pcm);
        st->fill += (int)k;
        done += k;
        if (st->fill == st->frame_size) {
            int rc = send_frame(enc, st, st->frame_size, err);
            if (rc != 0) return rc;
        }
    }
    return 0;
}

static int aac_finish(koe_encoder *enc, koe_error *err) {
    aac_state *st = enc->codec;
    if (st->fill > 0) {
        int n = st->fill;
        if (!(st->ctx->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME)) {
            memset((float *)st->frame->data[0] + n, 0,
                   (size_t)(st->frame_size - n) * sizeof(float));
            n = st->frame_size;
        }
        int rc = send_frame(enc, st, n, err);
        if (rc != 0) return rc;
    }
    return send_and_drain(enc, st, NULL, err);
}

static void aac_destroy(koe_encoder *enc) {
    aac_state *st = enc->codec;
    if (!st) return;
    avcodec_free_context(&st->ctx);
    av_frame_free(&st->frame);
    av_packet_free(&st->pkt);
    free(st);
}

void koe_audio_quiet_codec_logs(void) {
    av_log_set_level(AV_LOG_ERROR);
}

const koe_codec_ops koe_codec_aac = {aac_init, aac_encode, NULL, aac_finish, aac_destroy};
