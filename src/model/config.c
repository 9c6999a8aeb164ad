/* Kokoro config.json → koe_kokoro_config, over the full model's values. */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "koe/base.h"

#define CONFIG_MAX_BYTES (1 << 20) /* the real file is ~3 KB; refuse anything absurd */

void koe_kokoro_config_default(koe_kokoro_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden_dim = 512;
    c->style_dim = 128;
    c->n_token = 178;
    c->max_dur = 50;
    c->n_layer = 3;
    c->text_encoder_kernel_size = 5;
    c->plbert.hidden_size = 768;
    c->plbert.num_attention_heads = 12;
    c->plbert.intermediate_size = 2048;
    c->plbert.max_position_embeddings = 512;
    c->plbert.num_hidden_layers = 12;
    c->istftnet.upsample_rates[0] = 10;
    c->istftnet.upsample_rates[1] = 6;
    c->istftnet.upsample_kernel_sizes[0] = 20;
    c->istftnet.upsample_kernel_sizes[1] = 12;
    c->istftnet.resblock_kernel_sizes[0] = 3;
    c->istftnet.resblock_kernel_sizes[1] = 7;
    c->istftnet.resblock_kernel_sizes[2] = 11;
    for (int i = 0; i < 3; i++) {
        c->istftnet.resblock_dilation_sizes[i][0] = 1;
        c->istftnet.resblock_dilation_sizes[i][1] = 3;
        c->istftnet.resblock_dilation_sizes[i][2] = 5;
    }
    c->istftnet.gen_istft_n_fft = 20;
    c->istftnet.gen_istft_hop_size = 5;
    c->istftnet.upsample_initial_channel = 512;
}

/* An integer field in lo..hi if present; absent keeps *out. */
static int get_int(const cJSON *obj, const char *prefix, const char *key, int lo, int hi, int *out,
                   koe_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return 0;
    double d = v->valuedouble;
    /* the range first: converting a double beyond long long's range is undefined */
    if (!cJSON_IsNumber(v) || !(d >= lo && d <= hi) || d != (double)(long long)d)
        return koe_error_set(err, KOE_ERR_FORMAT, "config: %s%s must be an integer in %d..%d",
                             prefix, key, lo, hi);
    *out = (int)d;
    return 0;
}

/* An integer array of exactly n; what names it in the error. */
static int ints_of(const cJSON *v, const char *what, int n, int *out, koe_error *err) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return koe_error_set(err, KOE_ERR_FORMAT, "config: %s must be an array of %d integers",
                             what, n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || !(d >= 0 && d <= 1e6) || d != (double)(long long)d)
            return koe_error_set(err, KOE_ERR_FORMAT, "config: %s[%d] is not an integer", what, i);
        out[i++] = (int)d;
    }
    return 0;
}

static int get_ints(const cJSON *obj, const char *key, int n, int *out, koe_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return 0;
    char what[96];
    snprintf(what, sizeof what, "istftnet.%s", key);
    return ints_of(v, what, n, out, err);
}

/* The generator is written for Kokoro's istftnet: any other value is unsupported, said so. */
static int same(const int *got, const int *want, int n, const char *key, koe_error *err) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i])
            return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                                 "config: istftnet.%s differs from Kokoro's generator (%d at %d, "
                                 "expected %d)",
                                 key, got[i], i, want[i]);
    return 0;
}

int koe_kokoro_config_parse(const char *json, size_t len, koe_kokoro_config *c, koe_error *err) {
    koe_kokoro_config_default(c);
    if (!json || len > CONFIG_MAX_BYTES)
        return koe_error_set(err, KOE_ERR_FORMAT, "config: larger than %d bytes", CONFIG_MAX_BYTES);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return koe_error_set(err, KOE_ERR_FORMAT, "config: not a JSON object");
    }
    int rc = get_int(root, "", "hidden_dim", 1, 8192, &c->hidden_dim, err);
    if (!rc) rc = get_int(root, "", "style_dim", 128, 128, &c->style_dim, err);
    if (!rc) rc = get_int(root, "", "n_token", 1, 65536, &c->n_token, err);
    if (!rc) rc = get_int(root, "", "max_dur", 1, 10000, &c->max_dur, err);
    if (!rc) rc = get_int(root, "", "n_layer", 1, 64, &c->n_layer, err);
    if (!rc)
        rc =
            get_int(root, "", "text_encoder_kernel_size", 1, 63, &c->text_encoder_kernel_size, err);
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(root, "plbert");
    if (!rc && pl && !cJSON_IsObject(pl))
        rc = koe_error_set(err, KOE_ERR_FORMAT, "config: plbert must be an object");
    if (!rc && pl) {
        const char *p = "plbert.";
        rc = get_int(pl, p, "hidden_size", 1, 8192, &c->plbert.hidden_size, err);
        if (!rc)
            rc = get_int(pl, p, "num_attention_heads", 1, 64, &c->plbert.num_attention_heads, err);
        if (!rc)
            rc = get_int(pl, p, "intermediate_size", 1, 65536, &c->plbert.intermediate_size, err);
        if (!rc)
            rc = get_int(pl, p, "max_position_embeddings", 3, 65536,
                         &c->plbert.max_position_embeddings, err);
        if (!rc) rc = get_int(pl, p, "num_hidden_layers", 1, 64, &c->plbert.num_hidden_layers, err);
        if (!rc && c->plbert.hidden_size % c->plbert.num_attention_heads)
            rc = koe_error_set(err, KOE_ERR_FORMAT,
                               "config: plbert.num_attention_heads (%d) does not divide "
                               "plbert.hidden_size (%d)",
                               c->plbert.num_attention_heads, c->plbert.hidden_size);
    }
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(root, "istftnet");
    if (!rc && is && !cJSON_IsObject(is))
        rc = koe_error_set(err, KOE_ERR_FORMAT, "config: istftnet must be an object");
    if (!rc && is) {
        koe_kokoro_config d;
        koe_kokoro_config_default(&d);
        const char *p = "istftnet.";
        int dil[9];
        memcpy(dil, d.istftnet.resblock_dilation_sizes, sizeof dil);
        rc = get_ints(is, "upsample_rates", 2, c->istftnet.upsample_rates, err);
        if (!rc)
            rc = get_ints(is, "upsample_kernel_sizes", 2, c->istftnet.upsample_kernel_sizes, err);
        if (!rc)
            rc = get_ints(is, "resblock_kernel_sizes", 3, c->istftnet.resblock_kernel_sizes, err);
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(is, "resblock_dilation_sizes");
        if (!rc && ds) {
            if (!cJSON_IsArray(ds) || cJSON_GetArraySize(ds) != 3)
                rc = koe_error_set(err, KOE_ERR_FORMAT,
                                   "config: istftnet.resblock_dilation_sizes must be 3 arrays");
            for (int i = 0; !rc && i < 3; i++) {
                char what[64];
                snprintf(what, sizeof what, "istftnet.resblock_dilation_sizes[%d]", i);
                rc = ints_of(cJSON_GetArrayItem(ds, i), what, 3, dil + 3 * i, err);
            }
        }
        if (!rc)
            rc = get_int(is, p, "gen_istft_n_fft", 1, 65536, &c->istftnet.gen_istft_n_fft, err);
        if (!rc)
            rc = get_int(is, p, "gen_istft_hop_size", 1, 65536, &c->istftnet.gen_istft_hop_size,
                         err);
        if (!rc)
            rc = get_int(is, p, "upsample_initial_channel", 1, 65536,
                         &c->istftnet.upsample_initial_channel, err);
        if (!rc) memcpy(c->istftnet.resblock_dilation_sizes, dil, sizeof dil);
        if (!rc)
            rc = same(c->istftnet.upsample_rates, d.istftnet.upsample_rates, 2, "upsample_rates",
                      err);
        if (!rc)
            rc = same(c->istftnet.upsample_kernel_sizes, d.istftnet.upsample_kernel_sizes, 2,
                      "upsample_kernel_sizes", err);
        if (!rc)
            rc = same(c->istftnet.resblock_kernel_sizes, d.istftnet.resblock_kernel_sizes, 3,
                      "resblock_kernel_sizes", err);
        if (!rc)
            rc = same(dil, &d.istftnet.resblock_dilation_sizes[0][0], 9, "resblock_dilation_sizes",
                      err);
        if (!rc)
            rc = same(&c->istftnet.gen_istft_n_fft, &d.istftnet.gen_istft_n_fft, 1,
                      "gen_istft_n_fft", err);
        if (!rc)
            rc = same(&c->istftnet.gen_istft_hop_size, &d.istftnet.gen_istft_hop_size, 1,
                      "gen_istft_hop_size", err);
    }
    cJSON_Delete(root);
    return rc;
}

int koe_kokoro_config_load(const char *path, koe_kokoro_config *c, koe_error *err) {
    koe_kokoro_config_default(c);
    if (!path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return koe_error_set(err, KOE_ERR_IO, "cannot open config %s", path);
    koe_buf b = {0};
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > CONFIG_MAX_BYTES)
            rc = koe_error_set(err, KOE_ERR_FORMAT, "config: larger than %d bytes",
                               CONFIG_MAX_BYTES);
        else if (koe_buf_append(&b, chunk, n))
            rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    }
    if (!rc && ferror(f)) rc = koe_error_set(err, KOE_ERR_IO, "cannot read config %s", path);
    fclose(f);
    if (!rc) rc = koe_kokoro_config_parse(b.data ? b.data : "", b.len, c, err);
    koe_buf_free(&b);
    if (rc) koe_error_prefix(err, "%s: ", path);
    return rc;
}
