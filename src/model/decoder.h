/* Kokoro's decoder before the generator (`decoder.F0_conv`, `N_conv`, `asr_res`, `encode`,
 * `decode.0-3`): aligned text features + F0 + energy → the generator's input [W2, 2F]. Widths
 * from the tensors (W1 = encode width, W3 = asr_res width, W2 = decode.3 width). Read-only once
 * built; runs use the caller's pool and scratch. */
#ifndef KOE_MODEL_DECODER_H
#define KOE_MODEL_DECODER_H

#include <stddef.h>

#include "koe/error.h"
#include "koe/model.h"
#include "model/generator.h"
#include "model/pool.h"

typedef struct koe_decoder koe_decoder;

/* H: text width (asr channels); st: style width (128). */
koe_decoder *koe_decoder_new(koe_tensor_lookup lookup, void *user, int H, int st, koe_error *err);
/* The same with the convolutions in reduced precision: prec KOE_CONV_BF16 or KOE_CONV_INT8
 * (ops_conv.h; the layers int8 leaves in bf16 are named in adain_block.c). */
koe_decoder *koe_decoder_new_prec(koe_tensor_lookup lookup, void *user, int H, int st, int prec,
                                  koe_error *err);
void koe_decoder_free(koe_decoder *d);
int koe_decoder_out_width(const koe_decoder *d); /* W2 */
size_t koe_decoder_scratch_floats(const koe_decoder *d, int frames, koe_pool *pool);

/* asr [H, F], f0 and n [2F], s_dec [st] → out [W2, 2F]. The tap sees "dec_encode",
 * "dec_decode0".."dec_decode3" and "gen_input". */
int koe_decoder_run(const koe_decoder *d, koe_pool *pool, float *scratch, const float *asr,
                    int frames, const float *f0, const float *n, const float *s_dec,
                    const koe_stage_tap *tap, volatile const int *cancel, float *out,
                    koe_error *err);

#endif
