/* Kokoro's `text_encoder`: embedding, three × (weight-normed Conv1d k5 → channel LayerNorm →
 * LeakyReLU 0.2), then a bidirectional LSTM. Built once from a koe_tensor_lookup (widths from
 * the tensor shapes), read-only afterwards and shareable between threads. */
#ifndef KOE_MODEL_TEXT_ENCODER_H
#define KOE_MODEL_TEXT_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"
#include "koe/model.h"
#include "model/generator.h" /* koe_tensor_lookup */
#include "model/pool.h"

typedef struct koe_text_encoder koe_text_encoder;

koe_text_encoder *koe_text_encoder_new(koe_tensor_lookup lookup, void *user, koe_error *err);
void koe_text_encoder_free(koe_text_encoder *te);

int koe_text_encoder_width(const koe_text_encoder *te); /* H (512 full) */
int koe_text_encoder_vocab(const koe_text_encoder *te);

size_t koe_text_encoder_scratch_floats(const koe_text_encoder *te, int T, koe_pool *pool);

/* ids: [T] → t_en: [H, T] channel-major (as the reference). The tap sees "t_en" [1,H,T].
 * Returns 0 or KOE_ERR_INVALID for T < 1 or an id out of range. */
int koe_text_encoder_run(const koe_text_encoder *te, koe_pool *pool, float *scratch,
                         const int64_t *ids, int T, const koe_stage_tap *tap, float *t_en,
                         koe_error *err);

#endif
