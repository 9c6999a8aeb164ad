#include "model/albert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_dense.h"

#define LAYER "bert.encoder.albert_layer_groups.0.albert_layers.0."

struct koe_albert {
    int n_layers, n_heads;
    int V, P, E, Hb, I, H;
    float *word, *pos, *type0; /* [V,E], [P,E], [E] (token type 0 only) */
    float *emb_ln_w, *emb_ln_b;
    koe_dense map;   /* E → Hb */
    koe_dense qkv;   /* Hb → 3Hb: query, key, value stacked for one product */
    koe_dense dense; /* attention output Hb → Hb */
    float *attn_ln_w, *attn_ln_b;
    koe_dense ffn, ffn_out; /* Hb → I, I → Hb */
    float *full_ln_w, *full_ln_b;
    koe_dense bert_encoder; /* Hb → H */
};

void koe_albert_free(koe_albert *a) {
    if (!a) return;
    free(a->word);
    free(a->pos);
    free(a->type0);
    free(a->emb_ln_w);
    free(a->emb_ln_b);
    koe_dense_free(&a->map);
    koe_dense_free(&a->qkv);
    koe_dense_free(&a->dense);
    free(a->attn_ln_w);
    free(a->attn_ln_b);
    koe_dense_free(&a->ffn);
    koe_dense_free(&a->ffn_out);
    free(a->full_ln_w);
    free(a->full_ln_b);
    koe_dense_free(&a->bert_encoder);
    free(a);
}

koe_albert *koe_albert_new(koe_tensor_lookup lookup, void *user, const koe_albert_config *cfg,
                           koe_error *err) {
    koe_albert *a = calloc(1, sizeof *a);
    if (!a) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory loading PL-BERT");
        return NULL;
    }
    a->n_layers = cfg && cfg->n_layers ? cfg->n_layers : 12;
    a->n_heads = cfg && cfg->n_heads ? cfg->n_heads : 12;
    koe_fetcher f = {lookup, user, err, 0};
    if (a->n_layers < 1 || a->n_heads < 1) {
        koe_error_set(err, KOE_ERR_INVALID, "PL-BERT: %d layers and %d heads make no model",
                      a->n_layers, a->n_heads);
        goto fail;
    }

    int64_t sw[2] = {-1, -1};
    a->word = koe_fetch_copy(&f, "bert.embeddings.word_embeddings.weight", 2, sw);
    int64_t sp[2] = {-1, sw[1]}, st[2] = {-1, sw[1]}, se[1] = {sw[1]}, se2[1] = {sw[1]};
    a->pos = koe_fetch_copy(&f, "bert.embeddings.position_embeddings.weight", 2, sp);
    const float *tt = koe_fetch(&f, "bert.embeddings.token_type_embeddings.weight", 2, st);
    a->emb_ln_w = koe_fetch_copy(&f, "bert.embeddings.LayerNorm.weight", 1, se);
    a->emb_ln_b = koe_fetch_copy(&f, "bert.embeddings.LayerNorm.bias", 1, se2);
    if (f.failed) goto fail;
    a->V = (int)sw[0];
    a->E = (int)sw[1];
    a->P = (int)sp[0];
    a->type0 = malloc((size_t)a->E * sizeof(float));
    if (!a->type0) goto nomem;
    memcpy(a->type0, tt, (size_t)a->E * sizeof(float));

    if (koe_dense_load(&f, "bert.encoder.embedding_hidden_mapping_in", a->E, -1, &a->map))
        goto fail;
    a->Hb = a->map.out;
    int Hb = a->Hb;
    if (Hb % a->n_heads) {
        koe_error_set(err, KOE_ERR_FORMAT, "PL-BERT hidden width %d is not a multiple of %d heads",
                      Hb, a->n_heads);
        goto fail;
    }

    float *qkv_w = malloc((size_t)3 * Hb * Hb * sizeof(float));
    float *qkv_b = malloc((size_t)3 * Hb * sizeof(float));
    if (!qkv_w || !qkv_b) {
        free(qkv_w);
        free(qkv_b);
        goto nomem;
    }
    static const char *qkv_names[3] = {"query", "key", "value"};
    for (int i = 0; i < 3; i++) {
        char nm[160];
        int64_t sq[2] = {Hb, Hb}, sb[1] = {Hb};
        snprintf(nm, sizeof nm, LAYER "attention.%s.weight", qkv_names[i]);
        const float *w = koe_fetch(&f, nm, 2, sq);
        snprintf(nm, sizeof nm, LAYER "attention.%s.bias", qkv_names[i]);
        const float *b = koe_fetch(&f, nm, 1, sb);
        if (f.failed) break;
        memcpy(qkv_w + (size_t)i * Hb * Hb, w, (size_t)Hb * Hb * sizeof(float));
        memcpy(qkv_b + (size_t)i * Hb, b, (size_t)Hb * sizeof(float));
    }
    int rc = f.failed ? f.failed : koe_dense_init(&a->qkv, qkv_w, qkv_b, Hb, 3 * Hb, -1, err);
    free(qkv_w);
    free(qkv_b);
    if (rc) goto fail;
    int64_t s1[1] = {Hb}, s2[1] = {Hb}, s3[1] = {Hb}, s4[1] = {Hb};
    if (koe_dense_load(&f, LAYER "attention.dense", Hb, Hb, &a->dense)) goto fail;
    a->attn_ln_w = koe_fetch_copy(&f, LAYER "attention.LayerNorm.weight", 1, s1);
    a->attn_ln_b = koe_fetch_copy(&f, LAYER "attention.LayerNorm.bias", 1, s2);
    if (koe_dense_load(&f, LAYER "ffn", Hb, -1, &a->ffn)) goto fail;
    a->I = a->ffn.out;
    if (koe_dense_load(&f, LAYER "ffn_output", a->I, Hb, &a->ffn_out)) goto fail;
    a->full_ln_w = koe_fetch_copy(&f, LAYER "full_layer_layer_norm.weight", 1, s3);
    a->full_ln_b = koe_fetch_copy(&f, LAYER "full_layer_layer_norm.bias", 1, s4);
    if (koe_dense_load(&f, "bert_encoder", Hb, -1, &a->bert_encoder)) goto fail;
    if (f.failed) goto fail;
    a->H = a->bert_encoder.out;
    return a;

nomem:
    koe_error_set(err, KOE_ERR_NOMEM, "out of memory loading PL-BERT");
fail:
    koe_albert_free(a);
    return NULL;
}

int koe_albert_hidden(const koe_albert *a) {
    return a->Hb;
}

int koe_albert_out_width(const koe_albert *a) {
    return a->H;
}

int koe_albert_vocab(const koe_albert *a) {
    return a->V;
}

int koe_albert_max_tokens(const koe_albert *a) {
    return a->P;
}

/* Scratch layout, in floats: e [T,E] | h [T,Hb] | qkv [T,3Hb] | ctx [T,Hb] | h1 [T,Hb] |
 * ff [T,I] | tap [T,H] | attention. */
size_t koe_albert_scratch_floats(const koe_albert *a, int T, koe_pool *pool) {
    size_t t = (size_t)(T > 0 ? T : 0);
    return t * ((size_t)a->E + 6 * (size_t)a->Hb + a->I + a->H) +
           koe_attention_scratch_floats(T, pool);
}

static void emit(const koe_stage_tap *tap, const char *name, const float *data, int ndim,
                 int64_t d0, int64_t d1, int64_t d2) {
    if (!tap || !tap->fn) return;
    int64_t shape[3] = {d0, d1, d2};
    tap->fn(tap->user, name, data, ndim, shape);
}

int koe_albert_run(const koe_albert *a, koe_pool *pool, float *scratch, const int64_t *ids, int T,
                   const koe_stage_tap *tap, float *d_en, koe_error *err) {
    if (T < 1 || T > a->P)
        return koe_error_set(err, KOE_ERR_INVALID, "PL-BERT: %d tokens, expected 1 to %d", T, a->P);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= a->V)
            return koe_error_set(err, KOE_ERR_INVALID,
                                 "PL-BERT: token %d has id %lld, outside 0..%d", t,
                                 (long long)ids[t], a->V - 1);
    int E = a->E, Hb = a->Hb, I = a->I, H = a->H;
    size_t tt = (size_t)T;
    float *e = scratch, *h = e + tt * E, *qkv = h + tt * Hb, *ctx = qkv + tt * 3 * Hb;
    float *h1 = ctx + tt * Hb, *ff = h1 + tt * Hb, *tapbuf = ff + tt * I, *att = tapbuf + tt * H;

    for (int t = 0; t < T; t++) {
        const float *w = a->word + (size_t)ids[t] * E, *p = a->pos + (size_t)t * E;
        float *r = e + (size_t)t * E;
        for (int c = 0; c < E; c++) r[c] = w[c] + a->type0[c] + p[c];
    }
    koe_layer_norm_rows(e, T, E, E, a->emb_ln_w, a->emb_ln_b, 1e-12f);
    koe_dense_run(&a->map, pool, e, E, T, h, Hb);

    for (int layer = 0; layer < a->n_layers; layer++) {
        koe_dense_run(&a->qkv, pool, h, Hb, T, qkv, 3 * Hb);
        koe_attention(pool, att, qkv, T, a->n_heads, Hb / a->n_heads, ctx);
        koe_dense_run(&a->dense, pool, ctx, Hb, T, h1, Hb);
        for (size_t i = 0; i < tt * Hb; i++) h1[i] += h[i];
        koe_layer_norm_rows(h1, T, Hb, Hb, a->attn_ln_w, a->attn_ln_b, 1e-12f);
        koe_dense_run_gelu(&a->ffn, pool, h1, Hb, T, ff, I);
        koe_dense_run(&a->ffn_out, pool, ff, I, T, h, Hb);
        for (size_t i = 0; i < tt * Hb; i++) h[i] += h1[i];
        koe_layer_norm_rows(h, T, Hb, Hb, a->full_ln_w, a->full_ln_b, 1e-12f);
    }
    emit(tap, "bert", h, 3, 1, T, Hb);
    koe_dense_run(&a->bert_encoder, pool, h, Hb, T, d_en, H);
    if (tap && tap->fn) {
        koe_transpose(d_en, T, H, H, tapbuf, T);
        emit(tap, "d_en", tapbuf, 3, 1, H, T);
    }
    return 0;
}
