/* The Kokoro config.json (kokoro-config.json): the dims the engine checks the weights against and
 * the PL-BERT layer/head counts that no tensor shape carries. Every field has the full
 * Kokoro-82M value as its default, so a missing file means the full model. Widths the config does
 * not name (decoder, generator, asr_res) come from the tensor shapes. */
#ifndef KOE_MODEL_CONFIG_H
#define KOE_MODEL_CONFIG_H

#include <stddef.h>

#include "koe/error.h"

typedef struct koe_kokoro_config {
    int hidden_dim;               /* H: text encoder / bert_encoder / predictor width (512) */
    int style_dim;                /* 128: each half of the 256-float style vector */
    int n_token;                  /* token ids (178) */
    int max_dur;                  /* duration classes of the predictor (50) */
    int n_layer;                  /* predictor text encoder blocks (3) */
    int text_encoder_kernel_size; /* 5 */
    struct {
        int hidden_size, num_attention_heads, intermediate_size, max_position_embeddings,
            num_hidden_layers;
    } plbert; /* 768, 12, 2048, 512, 12 */
    struct {
        int upsample_rates[2], upsample_kernel_sizes[2]; /* {10, 6}, {20, 12} */
        int resblock_kernel_sizes[3];                    /* {3, 7, 11} */
        int resblock_dilation_sizes[3][3];               /* {1, 3, 5} each */
        int gen_istft_n_fft, gen_istft_hop_size;         /* 20, 5 */
        int upsample_initial_channel;                    /* 512 (not checked: from the shapes) */
    } istftnet;
} koe_kokoro_config;

/* The built-in full Kokoro-82M config. */
void koe_kokoro_config_default(koe_kokoro_config *c);

/* Parses config JSON text over the defaults: a field that is present must have the right type
 * and a sane value, and the istftnet fields must be those of Kokoro's generator (the only one
 * this engine implements); the error names the field. Unknown fields (vocab, dropout, ...) are
 * ignored. */
int koe_kokoro_config_parse(const char *json, size_t len, koe_kokoro_config *c, koe_error *err);

/* Reads and parses a file; path NULL = the built-in defaults. */
int koe_kokoro_config_load(const char *path, koe_kokoro_config *c, koe_error *err);

#endif
