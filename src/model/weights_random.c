/* Full-size random Kokoro-82M weights, for benchmarks and for serving when no real weights are
 * present. The audio is not speech, but the arithmetic and the lengths are the real model's:
 *
 * - weights ~ U(-a, a), a = 1/sqrt(fan_in) (PyTorch's default scale), so activations neither
 *   vanish nor explode through the stacks; weight-normed convolutions get weight_g = 1/sqrt(3),
 *   the expected row norm of such a weight, so the folded weight has that same scale;
 * - LayerNorm and instance-norm affines are 1 and 0, Snake alphas 1;
 * - durations: duration = sum over 50 of sigmoid(duration_proj), so a bias of
 *   logit(3.3/50) = -2.65 with weights scaled down by 10 gives about 3.3 frames (at 40 frames
 *   per second) per token: about 12 tokens per second of audio, as real speech;
 * - pitch: F0_proj's output is F0 in Hz; a bias of 170 with weights scaled so the spread is
 *   some tens of Hz keeps voiced F0 within about 100-250 Hz.
 * The file is safetensors, deterministic for a seed. */
#include "koe/weights.h"
#include "model/weights_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "koe/base.h"

void koe_kokoro_full_dims(koe_kokoro_dims *d) {
    *d = (koe_kokoro_dims){.n_token = 178,
                           .E = 128,
                           .Hb = 768,
                           .inter = 2048,
                           .positions = 512,
                           .H = 512,
                           .style = 128,
                           .W1 = 1024,
                           .W2 = 512,
                           .W3 = 64,
                           .max_dur = 50};
}

typedef struct emitter {
    void (*fn)(void *user, const koe_tensor_spec *s);
    void *user;
    size_t count;
} emitter;

static void emit(emitter *e, koe_init_kind init, float scale, float offset, int ndim, int64_t a,
                 int64_t b, int64_t c, const char *fmt, ...) __attribute__((format(printf, 9, 10)));
static void emit(emitter *e, koe_init_kind init, float scale, float offset, int ndim, int64_t a,
                 int64_t b, int64_t c, const char *fmt, ...) {
    koe_tensor_spec s = {.ndim = ndim, .init = init, .scale = scale, .offset = offset};
    s.shape[0] = a;
    s.shape[1] = b;
    s.shape[2] = c;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s.name, sizeof s.name, fmt, ap);
    va_end(ap);
    e->fn(e->user, &s);
    e->count++;
}

#define U(e, nd, a, b, c, ...) emit(e, KOE_INIT_UNIFORM, 1.0f, 0.0f, nd, a, b, c, __VA_ARGS__)
#define ONE(e, n, ...)         emit(e, KOE_INIT_CONST, 1.0f, 0.0f, 1, n, 0, 0, __VA_ARGS__)
#define ZERO(e, n, ...)        emit(e, KOE_INIT_CONST, 0.0f, 0.0f, 1, n, 0, 0, __VA_ARGS__)

static void linear(emitter *e, const char *p, int out, int in) {
    U(e, 2, out, in, 0, "%s.weight", p);
    U(e, 1, out, 0, 0, "%s.bias", p);
}

static void layer_norm(emitter *e, const char *p, int n) {
    ONE(e, n, "%s.weight", p);
    ZERO(e, n, "%s.bias", p);
}

/* Weight-normed Conv1d (or ConvTranspose1d: v is [in, out/groups, k], g per input channel). */
static void wn_conv(emitter *e, const char *p, int g_rows, int v1, int k, int bias_n) {
    if (bias_n) U(e, 1, bias_n, 0, 0, "%s.bias", p);
    emit(e, KOE_INIT_CONST, 0.57735f, 0.0f, 3, g_rows, 1, 1, "%s.weight_g", p);
    U(e, 3, g_rows, v1, k, "%s.weight_v", p);
}

static void lstm(emitter *e, const char *p, int in, int out) {
    int u = out / 2;
    for (int rev = 0; rev < 2; rev++) {
        const char *sfx = rev ? "_reverse" : "";
        U(e, 2, 4 * u, in, 0, "%s.weight_ih_l0%s", p, sfx);
        U(e, 2, 4 * u, u, 0, "%s.weight_hh_l0%s", p, sfx);
        U(e, 1, 4 * u, 0, 0, "%s.bias_ih_l0%s", p, sfx);
        U(e, 1, 4 * u, 0, 0, "%s.bias_hh_l0%s", p, sfx);
    }
}

static void adain(emitter *e, const char *p, int ch, int style) {
    char q[160];
    snprintf(q, sizeof q, "%s.norm", p);
    layer_norm(e, q, ch);
    snprintf(q, sizeof q, "%s.fc", p);
    linear(e, q, 2 * ch, style);
}

static void adain_resblk(emitter *e, const char *p, int a, int b, int up, int style) {
    char q[160];
    snprintf(q, sizeof q, "%s.conv1", p);
    wn_conv(e, q, b, a, 3, b);
    snprintf(q, sizeof q, "%s.conv2", p);
    wn_conv(e, q, b, b, 3, b);
    snprintf(q, sizeof q, "%s.norm1", p);
    adain(e, q, a, style);
    snprintf(q, sizeof q, "%s.norm2", p);
    adain(e, q, b, style);
    if (a != b) {
        snprintf(q, sizeof q, "%s.conv1x1", p);
        wn_conv(e, q, b, a, 1, 0);
    }
    if (up) {
        snprintf(q, sizeof q, "%s.pool", p);
        wn_conv(e, q, a, 1, 3, a);
    }
}

static void adain_resblock1(emitter *e, const char *p, int ch, int k, int style) {
    char q[160];
    for (int j = 0; j < 3; j++) {
        snprintf(q, sizeof q, "%s.convs1.%d", p, j);
        wn_conv(e, q, ch, ch, k, ch);
    }
    for (int j = 0; j < 3; j++) {
        snprintf(q, sizeof q, "%s.convs2.%d", p, j);
        wn_conv(e, q, ch, ch, k, ch);
    }
    for (int j = 0; j < 3; j++) {
        snprintf(q, sizeof q, "%s.adain1.%d", p, j);
        adain(e, q, ch, style);
    }
    for (int j = 0; j < 3; j++) {
        snprintf(q, sizeof q, "%s.adain2.%d", p, j);
        adain(e, q, ch, style);
    }
    for (int j = 0; j < 3; j++)
        emit(e, KOE_INIT_CONST, 1.0f, 0.0f, 3, 1, ch, 1, "%s.alpha1.%d", p, j);
    for (int j = 0; j < 3; j++)
        emit(e, KOE_INIT_CONST, 1.0f, 0.0f, 3, 1, ch, 1, "%s.alpha2.%d", p, j);
}

size_t koe_kokoro_tensor_specs(const koe_kokoro_dims *d,
                               void (*fn)(void *user, const koe_tensor_spec *s), void *user) {
    emitter em = {fn, user, 0}, *e = &em;
    const int H = d->H, st = d->style, Hb = d->Hb;
    char q[160];
    /* PL-BERT */
    emit(e, KOE_INIT_POSITIONS, 0, 0, 2, 1, d->positions, 0, "bert.embeddings.position_ids");
    U(e, 2, d->n_token, d->E, 0, "bert.embeddings.word_embeddings.weight");
    U(e, 2, d->positions, d->E, 0, "bert.embeddings.position_embeddings.weight");
    U(e, 2, 2, d->E, 0, "bert.embeddings.token_type_embeddings.weight");
    layer_norm(e, "bert.embeddings.LayerNorm", d->E);
    linear(e, "bert.encoder.embedding_hidden_mapping_in", Hb, d->E);
    const char *L = "bert.encoder.albert_layer_groups.0.albert_layers.0";
    snprintf(q, sizeof q, "%s.full_layer_layer_norm", L);
    layer_norm(e, q, Hb);
    const char *att[] = {"query", "key", "value", "dense"};
    for (int i = 0; i < 4; i++) {
        snprintf(q, sizeof q, "%s.attention.%s", L, att[i]);
        linear(e, q, Hb, Hb);
    }
    snprintf(q, sizeof q, "%s.attention.LayerNorm", L);
    layer_norm(e, q, Hb);
    snprintf(q, sizeof q, "%s.ffn", L);
    linear(e, q, d->inter, Hb);
    snprintf(q, sizeof q, "%s.ffn_output", L);
    linear(e, q, Hb, d->inter);
    linear(e, "bert.pooler", Hb, Hb);
    linear(e, "bert_encoder", H, Hb);
    /* prosody predictor */
    for (int i = 0; i < 6; i++) {
        snprintf(q, sizeof q, "predictor.text_encoder.lstms.%d", i);
        if (i % 2 == 0) {
            lstm(e, q, H + st, H);
        } else {
            char f[170];
            snprintf(f, sizeof f, "%s.fc", q);
            linear(e, f, 2 * H, st);
        }
    }
    lstm(e, "predictor.lstm", H + st, H);
    emit(e, KOE_INIT_UNIFORM, 0.1f, 0.0f, 2, d->max_dur, H, 0,
         "predictor.duration_proj.linear_layer.weight");
    emit(e, KOE_INIT_UNIFORM, 0.0f, -2.65f, 1, d->max_dur, 0, 0,
         "predictor.duration_proj.linear_layer.bias");
    lstm(e, "predictor.shared", H + st, H);
    const char *branches[] = {"F0", "N"};
    for (int b = 0; b < 2; b++) {
        snprintf(q, sizeof q, "predictor.%s.0", branches[b]);
        adain_resblk(e, q, H, H, 0, st);
        snprintf(q, sizeof q, "predictor.%s.1", branches[b]);
        adain_resblk(e, q, H, H / 2, 1, st);
        snprintf(q, sizeof q, "predictor.%s.2", branches[b]);
        adain_resblk(e, q, H / 2, H / 2, 0, st);
    }
    emit(e, KOE_INIT_UNIFORM, 30.0f, 0.0f, 3, 1, H / 2, 1, "predictor.F0_proj.weight");
    emit(e, KOE_INIT_UNIFORM, 0.0f, 170.0f, 1, 1, 0, 0, "predictor.F0_proj.bias");
    U(e, 3, 1, H / 2, 1, "predictor.N_proj.weight");
    U(e, 1, 1, 0, 0, "predictor.N_proj.bias");
    /* text encoder */
    U(e, 2, d->n_token, H, 0, "text_encoder.embedding.weight");
    for (int i = 0; i < 3; i++) {
        snprintf(q, sizeof q, "text_encoder.cnn.%d.0", i);
        wn_conv(e, q, H, H, 5, H);
        ONE(e, H, "text_encoder.cnn.%d.1.gamma", i);
        ZERO(e, H, "text_encoder.cnn.%d.1.beta", i);
    }
    lstm(e, "text_encoder.lstm", H, H);
    /* decoder */
    adain_resblk(e, "decoder.encode", H + 2, d->W1, 0, st);
    for (int i = 0; i < 4; i++) {
        snprintf(q, sizeof q, "decoder.decode.%d", i);
        adain_resblk(e, q, d->W1 + d->W3 + 2, i == 3 ? d->W2 : d->W1, i == 3, st);
    }
    wn_conv(e, "decoder.F0_conv", 1, 1, 3, 1);
    wn_conv(e, "decoder.N_conv", 1, 1, 3, 1);
    wn_conv(e, "decoder.asr_res.0", d->W3, H, 1, d->W3);
    /* generator */
    const char *G = "decoder.generator";
    snprintf(q, sizeof q, "%s.m_source.l_linear", G);
    linear(e, q, 1, 9);
    U(e, 3, d->W2 / 2, 22, 12, "%s.noise_convs.0.weight", G);
    U(e, 1, d->W2 / 2, 0, 0, "%s.noise_convs.0.bias", G);
    U(e, 3, d->W2 / 4, 22, 1, "%s.noise_convs.1.weight", G);
    U(e, 1, d->W2 / 4, 0, 0, "%s.noise_convs.1.bias", G);
    snprintf(q, sizeof q, "%s.noise_res.0", G);
    adain_resblock1(e, q, d->W2 / 2, 7, st);
    snprintf(q, sizeof q, "%s.noise_res.1", G);
    adain_resblock1(e, q, d->W2 / 4, 11, st);
    /* ConvTranspose1d: weight_v [in, out, k], weight_g per input channel, bias per output */
    U(e, 1, d->W2 / 2, 0, 0, "%s.ups.0.bias", G);
    emit(e, KOE_INIT_CONST, 0.57735f, 0.0f, 3, d->W2, 1, 1, "%s.ups.0.weight_g", G);
    U(e, 3, d->W2, d->W2 / 2, 20, "%s.ups.0.weight_v", G);
    U(e, 1, d->W2 / 4, 0, 0, "%s.ups.1.bias", G);
    emit(e, KOE_INIT_CONST, 0.57735f, 0.0f, 3, d->W2 / 2, 1, 1, "%s.ups.1.weight_g", G);
    U(e, 3, d->W2 / 2, d->W2 / 4, 12, "%s.ups.1.weight_v", G);
    static const int kernels[3] = {3, 7, 11};
    for (int i = 0; i < 6; i++) {
        snprintf(q, sizeof q, "%s.resblocks.%d", G, i);
        adain_resblock1(e, q, i < 3 ? d->W2 / 2 : d->W2 / 4, kernels[i % 3], st);
    }
    snprintf(q, sizeof q, "%s.conv_post", G);
    wn_conv(e, q, 22, d->W2 / 4, 7, 22);
    return em.count;
}

/* ------------------------------------------------------------------ writing */

typedef struct plan {
    koe_tensor_spec *s;
    size_t n, cap;
    int oom;
} plan;

static void collect(void *user, const koe_tensor_spec *s) {
    plan *p = user;
    if (p->oom) return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        koe_tensor_spec *x = realloc(p->s, cap * sizeof *x);
        if (!x) {
            p->oom = 1;
            return;
        }
        p->s = x;
        p->cap = cap;
    }
    p->s[p->n++] = *s;
}

static size_t numel(const koe_tensor_spec *s) {
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
    return n;
}

static uint64_t next_u64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int read_dims(const char *config_path, koe_kokoro_dims *d, koe_error *err) {
    koe_kokoro_full_dims(d);
    if (!config_path) return 0;
    FILE *f = fopen(config_path, "rb");
    if (!f)
        return koe_error_set(err, KOE_ERR_IO, "cannot open %s: %s", config_path, strerror(errno));
    koe_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (koe_buf_append(&b, chunk, n)) break;
    fclose(f);
    cJSON *c = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    koe_buf_free(&b);
    if (!c) return koe_error_set(err, KOE_ERR_FORMAT, "%s is not JSON", config_path);
    cJSON *pl = cJSON_GetObjectItem(c, "plbert"), *ist = cJSON_GetObjectItem(c, "istftnet");
#define GETI(obj, key, dst)                                                                        \
    do {                                                                                           \
        cJSON *v_ = cJSON_GetObjectItem(obj, key);                                                 \
        if (cJSON_IsNumber(v_) && v_->valueint > 0 && v_->valueint <= 65536) dst = v_->valueint;   \
    } while (0)
    GETI(c, "hidden_dim", d->H);
    GETI(c, "style_dim", d->style);
    GETI(c, "n_token", d->n_token);
    GETI(c, "max_dur", d->max_dur);
    GETI(pl, "hidden_size", d->Hb);
    GETI(pl, "intermediate_size", d->inter);
    GETI(pl, "max_position_embeddings", d->positions);
    GETI(pl, "embedding_size", d->E);
    GETI(ist, "upsample_initial_channel", d->W2);
#undef GETI
    cJSON_Delete(c);
    if (d->H % 2 || d->W2 % 4)
        return koe_error_set(
            err, KOE_ERR_INVALID,
            "%s: hidden_dim must be even, upsample_initial_channel a multiple of 4", config_path);
    return 0;
}

int koe_weights_write_random(const char *path, const char *config_path, uint64_t seed,
                             koe_error *err) {
    koe_kokoro_dims d;
    int rc = read_dims(config_path, &d, err);
    return rc ? rc : koe_weights_write_random_dims(path, &d, seed, err);
}

/* One tensor's bytes: int64 positions, or float32 values drawn from the shared stream x (so a
 * seed gives the same values whatever the container). buf holds numel(s) * 8 bytes. */
static size_t fill(const koe_tensor_spec *s, void *buf, uint64_t *x) {
    size_t n = numel(s);
    if (s->init == KOE_INIT_POSITIONS) {
        for (size_t k = 0; k < n; k++) {
            int64_t v = (int64_t)k;
            memcpy((unsigned char *)buf + 8 * k, &v, 8);
        }
        return 8 * n;
    }
    float *f = buf;
    size_t fan_in = s->ndim >= 2 ? n / (size_t)s->shape[0] : (size_t)s->shape[0];
    if (!strstr(s->name, "weight") && s->ndim == 1) fan_in = 64; /* biases: small */
    float a = s->scale / sqrtf((float)(fan_in ? fan_in : 1));
    for (size_t k = 0; k < n; k++) {
        if (s->init == KOE_INIT_CONST) {
            f[k] = s->scale;
        } else {
            double u = (double)(next_u64(x) >> 11) * (1.0 / 9007199254740992.0);
            f[k] = (float)((2.0 * u - 1.0) * a) + s->offset;
        }
    }
    return 4 * n;
}

static int write_safetensors(FILE *f, const plan *p, uint64_t seed, void *buf) {
    koe_buf h = {0};
    koe_buf_append_str(&h,
                       "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"koe random-weights\"}");
    size_t off = 0;
    for (size_t i = 0; i < p->n; i++) {
        const koe_tensor_spec *s = &p->s[i];
        size_t bytes = numel(s) * (s->init == KOE_INIT_POSITIONS ? 8 : 4);
        koe_buf_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s->name,
                       s->init == KOE_INIT_POSITIONS ? "I64" : "F32");
        for (int k = 0; k < s->ndim; k++)
            koe_buf_printf(&h, "%s%lld", k ? "," : "", (long long)s->shape[k]);
        koe_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    koe_buf_append_str(&h, "}");
    while ((8 + h.len) % 64) koe_buf_append_str(&h, " "); /* aligned data for in-place use */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int bad = !h.data || fwrite(len8, 1, 8, f) != 8 || fwrite(h.data, 1, h.len, f) != h.len;
    koe_buf_free(&h);
    uint64_t x = seed ^ 0x6B6F65ull;
    for (size_t i = 0; i < p->n && !bad; i++) {
        size_t bytes = fill(&p->s[i], buf, &x);
        bad = fwrite(buf, 1, bytes, f) != bytes;
    }
    return bad;
}

/* ---- the official layout: a torch.save zip of {part: OrderedDict("module.<key>": tensor)} */

static uint32_t crc32_update(const uint32_t *table, uint32_t crc, const unsigned char *p,
                             size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

typedef struct zip_out {
    FILE *f;
    uint64_t pos;
    koe_buf cd; /* the central directory, built as entries are written */
    uint32_t table[256];
    size_t entries;
    int bad;
} zip_out;

static void le(unsigned char *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A stored entry whose data starts on a 64-byte boundary (as torch.save aligns it, padding the
 * local header's extra field), so every tensor can be used in place. */
static void zip_entry(zip_out *z, const char *name, const void *data, size_t n) {
    size_t nl = strlen(name), pad = (64 - (z->pos + 30 + nl + 4) % 64) % 64;
    unsigned char h[30 + 256 + 4 + 64] = {0}, c[46];
    if (z->bad) return;
    if (nl > 256 || n > 0xFFFFFFF0u || z->pos > 0xFFFFFFF0u - n) {
        z->bad = 3; /* beyond the 32-bit zip this writer makes: use safetensors */
        return;
    }
    uint32_t crc = crc32_update(z->table, 0, data, n);
    le(h, 0x04034b50u, 4), le(h + 4, 20, 2), le(h + 14, crc, 4), le(h + 18, n, 4);
    le(h + 22, n, 4), le(h + 26, nl, 2), le(h + 28, 4 + pad, 2);
    memcpy(h + 30, name, nl);
    le(h + 30 + nl, 0x4246, 2), le(h + 32 + nl, pad, 2); /* "FB" padding field, like torch */
    size_t hl = 30 + nl + 4 + pad;
    memset(c, 0, sizeof c);
    le(c, 0x02014b50u, 4), le(c + 4, 20, 2), le(c + 6, 20, 2), le(c + 16, crc, 4);
    le(c + 20, n, 4), le(c + 24, n, 4), le(c + 28, nl, 2), le(c + 42, z->pos, 4);
    if (koe_buf_append(&z->cd, c, sizeof c) || koe_buf_append(&z->cd, name, nl)) z->bad = 2;
    if (!z->bad && (fwrite(h, 1, hl, z->f) != hl || fwrite(data, 1, n, z->f) != n)) z->bad = 1;
    z->pos += hl + n;
    z->entries++;
}

static void zip_finish(zip_out *z) {
    if (z->bad) return;
    unsigned char e[22] = {0};
    le(e, 0x06054b50u, 4), le(e + 8, z->entries, 2), le(e + 10, z->entries, 2);
    le(e + 12, z->cd.len, 4), le(e + 16, z->pos, 4);
    if (z->entries > 0xFFFF || z->pos > 0xFFFFFFFFu - z->cd.len) {
        z->bad = 3;
        return;
    }
    if (fwrite(z->cd.data, 1, z->cd.len, z->f) != z->cd.len || fwrite(e, 1, 22, z->f) != 22)
        z->bad = 1;
}

/* Pickle protocol 2 as torch.save writes it, opcodes from the subset the reader accepts. */
typedef struct pk_out {
    koe_buf b;
    int oom;
} pk_out;

static void pk_raw(pk_out *o, const void *p, size_t n) {
    o->oom |= koe_buf_append(&o->b, p, n) != 0;
}
static void pk_op(pk_out *o, const char *s) {
    pk_raw(o, s, strlen(s));
}
static void pk_str(pk_out *o, const char *s, size_t n) {
    unsigned char h[5] = {'X'};
    le(h + 1, n, 4);
    pk_raw(o, h, 5);
    pk_raw(o, s, n);
}
static void pk_int(pk_out *o, uint64_t v) {
    unsigned char h[10] = {'J'};
    if (v < 0x80000000u) { /* BININT */
        le(h + 1, v, 4);
        pk_raw(o, h, 5);
    } else { /* LONG1, 8 bytes (sizes of configs far beyond Kokoro's) */
        h[0] = 0x8a, h[1] = 8;
        le(h + 2, v, 8);
        pk_raw(o, h, 10);
    }
}

static void pk_tensor(pk_out *o, const koe_tensor_spec *s, size_t key) {
    char k[32];
    int kl = snprintf(k, sizeof k, "%zu", key);
    pk_op(o, "ctorch._utils\n_rebuild_tensor_v2\n((");
    pk_str(o, "storage", 7);
    pk_op(o, s->init == KOE_INIT_POSITIONS ? "ctorch\nLongStorage\n" : "ctorch\nFloatStorage\n");
    pk_str(o, k, (size_t)kl);
    pk_str(o, "cpu", 3);
    pk_int(o, numel(s));
    pk_op(o, "tQ");
    pk_int(o, 0);
    pk_op(o, "(");
    for (int d = 0; d < s->ndim; d++) pk_int(o, (uint64_t)s->shape[d]);
    pk_op(o, "t(");
    int64_t stride = 1, st[4];
    for (int d = s->ndim - 1; d >= 0; d--) st[d] = stride, stride *= s->shape[d];
    for (int d = 0; d < s->ndim; d++) pk_int(o, (uint64_t)st[d]);
    pk_op(o, "t\x89"
             "ccollections\nOrderedDict\n)RtR");
}

static int write_pth(FILE *f, const plan *p, uint64_t seed, void *buf) {
    zip_out z = {.f = f};
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        z.table[i] = c;
    }
    /* {part: OrderedDict(module.key: tensor)}, parts in checkpoint order, each opened when its
     * first tensor comes (the spec list keeps a part's tensors together). */
    pk_out pk = {0};
    pk_op(&pk, "\x80\x02}(");
    size_t plen = 0;
    const char *part = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const char *name = p->s[i].name, *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        if (!part || l != plen || memcmp(part, name, l)) {
            if (part) pk_op(&pk, "u");
            part = name, plen = l;
            pk_str(&pk, name, l);
            pk_op(&pk, "ccollections\nOrderedDict\n)R(");
        }
        char key[200];
        int kl = snprintf(key, sizeof key, "module.%s", dot ? dot + 1 : name);
        pk_str(&pk, key, (size_t)kl);
        pk_tensor(&pk, &p->s[i], i);
    }
    pk_op(&pk, "uu.");
    if (pk.oom) {
        koe_buf_free(&pk.b);
        return 2;
    }
    zip_entry(&z, "kokoro/data.pkl", pk.b.data, pk.b.len);
    koe_buf_free(&pk.b);
    uint64_t x = seed ^ 0x6B6F65ull;
    for (size_t i = 0; i < p->n && !z.bad; i++) {
        size_t bytes = fill(&p->s[i], buf, &x);
        char name[64];
        snprintf(name, sizeof name, "kokoro/data/%zu", i);
        zip_entry(&z, name, buf, bytes);
    }
    zip_entry(&z, "kokoro/version", "3\n", 2);
    zip_entry(&z, "kokoro/byteorder", "little", 6);
    zip_finish(&z);
    koe_buf_free(&z.cd);
    return z.bad;
}

int koe_weights_write_random_dims(const char *path, const koe_kokoro_dims *d, uint64_t seed,
                                  koe_error *err) {
    int rc = 0;
    plan p = {0};
    koe_kokoro_tensor_specs(d, collect, &p);
    size_t biggest = 0;
    for (size_t i = 0; i < p.n; i++)
        if (numel(&p.s[i]) > biggest) biggest = numel(&p.s[i]);
    void *buf = p.oom ? NULL : malloc(biggest * 8 + 8);
    if (!buf) {
        free(p.s);
        return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    }
    size_t pl = strlen(path);
    int pth = pl >= 4 && !strcmp(path + pl - 4, ".pth");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = koe_error_set(err, KOE_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    } else {
        int bad = pth ? write_pth(f, &p, seed, buf) : write_safetensors(f, &p, seed, buf);
        if (fclose(f)) bad = 1;
        if (bad == 3) {
            unlink(tmp);
            rc = koe_error_set(err, KOE_ERR_LIMIT,
                               "%s: too large for a .pth without zip64; write .safetensors", path);
        } else if (bad) {
            unlink(tmp);
            rc = koe_error_set(err, bad == 2 ? KOE_ERR_NOMEM : KOE_ERR_IO, "cannot write %s", tmp);
        } else if (rename(tmp, path)) {
            unlink(tmp);
            rc = koe_error_set(err, KOE_ERR_IO, "cannot rename to %s: %s", path, strerror(errno));
        }
    }
    free(buf);
    free(p.s);
    return rc;
}
