/* The output chain: resampler -> loudness -> encoder, through one reusable work buffer. */
#include <stdlib.h>
#include <string.h>

#include "koe/audio.h"

#define OUT_PIECE 4096 /* input samples handled per step, so the work buffer stays small */

struct koe_audio_out {
    koe_resampler *rs; /* NULL when the rates match */
    koe_loudness *ld;  /* NULL without normalization */
    koe_encoder *enc;
    float *work;
    size_t work_cap;
    int failed; /* 0 or the code that stopped the chain */
    int finished;
};

koe_audio_out *koe_audio_out_new(koe_format fmt, int in_rate, int out_rate,
                                 const koe_audio_out_opts *opts, koe_write_fn write, void *user,
                                 koe_error *err) {
    koe_audio_out_opts o = opts ? *opts : (koe_audio_out_opts){0};
    koe_audio_out *out = calloc(1, sizeof *out);
    if (!out) {
        koe_error_set(err, KOE_ERR_NOMEM, "audio output: out of memory");
        return NULL;
    }
    out->enc = koe_encoder_new(fmt, out_rate, &o.encoder, write, user, err);
    if (!out->enc) goto fail;
    if (in_rate != out_rate) {
        out->rs = koe_resampler_new(in_rate, out_rate, err);
        if (!out->rs) goto fail;
    }
    if (o.normalize) {
        out->ld = koe_loudness_new(out_rate, &o.loudness, err);
        if (!out->ld) goto fail;
    }
    /* Room for one piece after resampling, or for the flushed tails. */
    out->work_cap = OUT_PIECE;
    if (out->rs) {
        size_t a = koe_resampler_max_output(out->rs, OUT_PIECE);
        size_t b = koe_resampler_max_output(out->rs, 0);
        out->work_cap = a > b ? a : b;
    }
    if (out->ld && koe_loudness_delay(out->ld) > out->work_cap)
        out->work_cap = koe_loudness_delay(out->ld);
    out->work = malloc(out->work_cap * sizeof *out->work);
    if (!out->work) {
        koe_error_set(err, KOE_ERR_NOMEM, "audio output: out of memory");
        goto fail;
    }
    return out;
fail:
    koe_error_prefix(err, "audio output: ");
    koe_audio_out_free(out);
    return NULL;
}

void koe_audio_out_free(koe_audio_out *out) {
    if (!out) return;
    koe_resampler_free(out->rs);
    koe_loudness_free(out->ld);
    koe_encoder_free(out->enc);
    free(out->work);
    free(out);
}

koe_encoder *koe_audio_out_encoder(koe_audio_out *out) {
    return out ? out->enc : NULL;
}

/* Normalizes (in place) and encodes n samples of the work buffer. */
static int loudness_and_encode(koe_audio_out *out, size_t n, koe_error *err) {
    int rc = 0;
    if (out->ld && n > 0) rc = koe_loudness_process(out->ld, out->work, n, out->work, n, &n, err);
    if (rc == 0 && n > 0) rc = koe_encoder_write(out->enc, out->work, n, err);
    return rc;
}

static int check_usable(koe_audio_out *out, const char *what, koe_error *err) {
    if (!out) return koe_error_set(err, KOE_ERR_INVALID, "audio output: %s on NULL", what);
    if (out->failed)
        return koe_error_set(err, out->failed, "audio output: %s after the stream failed", what);
    if (out->finished)
        return koe_error_set(err, KOE_ERR_INVALID, "audio output: %s after finish", what);
    return 0;
}

int koe_audio_out_write(koe_audio_out *out, const float *pcm, size_t n, koe_error *err) {
    int rc = check_usable(out, "write", err);
    if (rc != 0 || n == 0) return rc;
    if (!pcm) return koe_error_set(err, KOE_ERR_INVALID, "audio output: NULL samples");
    for (size_t done = 0; done < n && rc == 0;) {
        size_t k = n - done < OUT_PIECE ? n - done : OUT_PIECE, m = k;
        if (out->rs)
            rc = koe_resampler_process(out->rs, pcm + done, k, out->work, out->work_cap, &m, err);
        else
            memcpy(out->work, pcm + done, k * sizeof *pcm);
        if (rc == 0) rc = loudness_and_encode(out, m, err);
        done += k;
    }
    if (rc != 0) out->failed = rc;
    return rc;
}

int koe_audio_out_finish(koe_audio_out *out, koe_error *err) {
    int rc = check_usable(out, "finish", err);
    if (rc != 0) return rc;
    size_t m = 0;
    if (out->rs) rc = koe_resampler_flush(out->rs, out->work, out->work_cap, &m, err);
    if (rc == 0) rc = loudness_and_encode(out, m, err);
    if (rc == 0 && out->ld) {
        rc = koe_loudness_flush(out->ld, out->work, out->work_cap, &m, err);
        if (rc == 0 && m > 0) rc = koe_encoder_write(out->enc, out->work, m, err);
    }
    if (rc == 0) rc = koe_encoder_finish(out->enc, err);
    if (rc != 0)
        out->failed = rc;
    else
        out->finished = 1;
    return rc;
}
