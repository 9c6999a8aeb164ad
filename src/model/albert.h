/* PL-BERT (an ALBERT encoder: embeddings, a mapping to the hidden width, then one shared layer
 * applied n_layers times) followed by Kokoro's `bert_encoder` Linear(Hb → H).
 *
 * A koe_albert holds copies of the `bert.*` and `bert_encoder.*` weights (unused `bert.pooler.*`
 * and `bert.embeddings.position_ids` are ignored); it is read-only after construction and may be
 * shared by any number of threads. Widths (vocabulary, embedding E, hidden Hb, intermediate,
 * H, max positions) come from the tensor shapes; the layer count and the head count cannot, so
 * they come from the config (`plbert.num_hidden_layers`, `plbert.num_attention_heads`). */
#ifndef KOE_MODEL_ALBERT_H
#define KOE_MODEL_ALBERT_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"
#include "koe/model.h"
#include "model/generator.h" /* koe_tensor_lookup */
#include "model/pool.h"

typedef struct koe_albert_config {
    int n_layers; /* passes of the shared layer; 0 = 12 (the full model) */
    int n_heads;  /* attention heads; 0 = 12; must divide the hidden width */
} koe_albert_config;

typedef struct koe_albert koe_albert;

/* cfg may be NULL (full-model defaults). The error names any missing or mis-shaped tensor. */
koe_albert *koe_albert_new(koe_tensor_lookup lookup, void *user, const koe_albert_config *cfg,
                           koe_error *err);
void koe_albert_free(koe_albert *a);

int koe_albert_hidden(const koe_albert *a);     /* Hb (768 full) */
int koe_albert_out_width(const koe_albert *a);  /* H = bert_encoder output width (512 full) */
int koe_albert_vocab(const koe_albert *a);      /* number of token ids (178) */
int koe_albert_max_tokens(const koe_albert *a); /* max positions (512) */

size_t koe_albert_scratch_floats(const koe_albert *a, int T, koe_pool *pool);

/* ids: [T] token ids (pads included); d_en: [T, H] time-major (the transpose of the reference's
 * d_en [1, H, T]). The tap (may be NULL) sees "bert" [1,T,Hb] and "d_en" [1,H,T]. Returns 0, or
 * KOE_ERR_INVALID for T out of 1..max_tokens or an id out of range. */
int koe_albert_run(const koe_albert *a, koe_pool *pool, float *scratch, const int64_t *ids, int T,
                   const koe_stage_tap *tap, float *d_en, koe_error *err);

#endif
