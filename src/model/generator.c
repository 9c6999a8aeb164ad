#include "model/generator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_conv.h"

#define N_HARM    9     /* harmonics of the source: f0 · 1..9 */
#define UPP       300   /* samples per generator input step (10 · 6 · hop 5) */
#define SR        24000 /* sample rate */
#define NFFT      20
#define HOP       5
#define NBIN      11 /* NFFT / 2 + 1 */
#define STYLE_DIM 128

/* One AdaIN1d: fc maps the style to γ, β; the instance norm's own affine is optional. */
typedef struct adain {
    float *fc_w, *fc_b; /* [2C, 128], [2C] */
    float *nw, *nb;     /* [C] or NULL */
} adain;

/* AdaINResBlock1(C, k, dilations 1, 3, 5). */
typedef struct resblock {
    int C, k;
    koe_conv *c1[3], *c2[3];
    adain a1[3], a2[3];
    float *alpha1[3], *alpha2[3];
} resblock;

struct koe_generator {
    int W2, C1, C2;
    float l_w[N_HARM], l_b;
    koe_conv *noise_conv[2];
    resblock noise_res[2];
    koe_convt *ups[2];
    resblock res[6];
    koe_conv *post;
};

/* ---- loading ----------------------------------------------------------------------------- */
typedef struct loader {
    koe_tensor_lookup lookup;
    void *user;
    koe_error *err;
    int failed;
    int prec; /* KOE_CONV_FP32, _BF16 or _INT8 (ops_conv.h) */
} loader;

/* Fetches `name` (under decoder.generator.) and checks its shape against want[0..nd-1]; a want
 * of -1 accepts any size and is filled in. Returns the data or NULL (error set, naming it). */
static const float *fetch(loader *ld, const char *name, int nd, int64_t *want, int optional) {
    if (ld->failed) return NULL;
    char full[160];
    snprintf(full, sizeof full, "decoder.generator.%s", name);
    int ndim = 0;
    int64_t shape[4] = {0};
    const float *p = ld->lookup(ld->user, full, &ndim, shape);
    if (!p) {
        if (optional) return NULL;
        ld->failed = 1;
        koe_error_set(ld->err, KOE_ERR_NOT_FOUND, "missing tensor %s", full);
        return NULL;
    }
    int ok = ndim == nd;
    for (int i = 0; ok && i < nd; i++) {
        if (want[i] == -1) want[i] = shape[i];
        ok = want[i] == shape[i] && shape[i] > 0;
    }
    if (!ok) {
        char got[80] = "", exp[80] = "";
        for (int i = 0; i < ndim && i < 4; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        for (int i = 0; i < nd; i++)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", i ? ", " : "",
                     (long long)want[i]);
        ld->failed = 1;
        koe_error_set(ld->err, KOE_ERR_FORMAT, "tensor %s has shape [%s], expected [%s]", full, got,
                      exp);
        return NULL;
    }
    return p;
}

static float *fetch_copy(loader *ld, const char *name, int nd, int64_t *want, int optional) {
    const float *p = fetch(ld, name, nd, want, optional);
    if (!p) return NULL;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)want[i];
    float *q = malloc(n * sizeof *q);
    if (!q) {
        ld->failed = 1;
        koe_error_set(ld->err, KOE_ERR_NOMEM, "out of memory copying decoder.generator.%s", name);
        return NULL;
    }
    memcpy(q, p, n * sizeof *q);
    return q;
}

/* A weight-normed Conv1d `name` (weight_g, weight_v, bias) of cin → cout channels. */
/* The desc flags for precision p (KOE_CONV_*). */
static int is_bf16(int p) {
    return p >= KOE_CONV_BF16;
}
static int is_int8(int p) {
    return p == KOE_CONV_INT8;
}
/* At most bf16: the layers an int8 model keeps in bf16. */
static int cap_bf16(int p) {
    return p > KOE_CONV_BF16 ? KOE_CONV_BF16 : p;
}

/* name.weight_v [d0, d1, k] and name.weight_g [d0, 1, 1] folded into one weight (malloc'd; the
 * norm is over dim 0: output channels for Conv1d, input channels for ConvTranspose1d), and
 * name.bias [nb] in *bias. NULL (ld->failed set) on a missing tensor or no memory. */
static float *fetch_wn(loader *ld, const char *name, int d0, int d1, int k, int nb,
                       const float **bias) {
    char nm[128];
    int64_t sv[3] = {d0, d1, k}, sg[3] = {d0, 1, 1}, sb[1] = {nb};
    snprintf(nm, sizeof nm, "%s.weight_v", name);
    const float *v = fetch(ld, nm, 3, sv, 0);
    snprintf(nm, sizeof nm, "%s.weight_g", name);
    const float *g = fetch(ld, nm, 3, sg, 0);
    snprintf(nm, sizeof nm, "%s.bias", name);
    *bias = fetch(ld, nm, 1, sb, 0);
    if (ld->failed) return NULL;
    float *w = malloc((size_t)d0 * d1 * k * sizeof *w);
    if (!w) {
        ld->failed = 1;
        koe_error_set(ld->err, KOE_ERR_NOMEM, "out of memory folding %s", name);
        return NULL;
    }
    koe_weight_norm(g, v, d0, (size_t)d1 * k, w);
    return w;
}

static koe_conv *load_wn_conv(loader *ld, const char *name, int cin, int cout, int k, int pad,
                              int dil, int prec) {
    const float *b;
    float *w = fetch_wn(ld, name, cout, cin, k, cout, &b);
    if (!w) return NULL;
    koe_conv_desc d = {.cin = cin,
                       .cout = cout,
                       .k = k,
                       .pad = pad,
                       .dil = dil,
                       .bf16 = is_bf16(prec),
                       .int8 = is_int8(prec)};
    koe_conv *c = koe_conv_new(&d, w, b, ld->err);
    free(w);
    if (!c) ld->failed = 1;
    return c;
}

static void load_adain(loader *ld, const char *name, int C, adain *a) {
    char nm[128];
    int64_t sw[2] = {2 * C, STYLE_DIM}, sb[1] = {2 * C}, sn[1] = {C}, sn2[1] = {C};
    snprintf(nm, sizeof nm, "%s.fc.weight", name);
    a->fc_w = fetch_copy(ld, nm, 2, sw, 0);
    snprintf(nm, sizeof nm, "%s.fc.bias", name);
    a->fc_b = fetch_copy(ld, nm, 1, sb, 0);
    snprintf(nm, sizeof nm, "%s.norm.weight", name);
    a->nw = fetch_copy(ld, nm, 1, sn, 1);
    snprintf(nm, sizeof nm, "%s.norm.bias", name);
    a->nb = fetch_copy(ld, nm, 1, sn2, 1);
    if (!ld->failed && (!a->nw) != (!a->nb)) {
        ld->failed = 1;
        koe_error_set(ld->err, KOE_ERR_NOT_FOUND,
                      "decoder.generator.%s.norm: weight and bias must come together", name);
    }
}

static void free_adain(adain *a) {
    free(a->fc_w);
    free(a->fc_b);
    free(a->nw);
    free(a->nb);
}

static void load_resblock(loader *ld, const char *name, int C, int k, resblock *rb) {
    static const int dil[3] = {1, 3, 5};
    char nm[128];
    rb->C = C;
    rb->k = k;
    for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "%s.convs1.%d", name, i);
        /* both convolutions read Snake(AdaIN(x)): normalized per channel, int8-safe */
        rb->c1[i] = load_wn_conv(ld, nm, C, C, k, dil[i] * (k - 1) / 2, dil[i], ld->prec);
        snprintf(nm, sizeof nm, "%s.convs2.%d", name, i);
        rb->c2[i] = load_wn_conv(ld, nm, C, C, k, (k - 1) / 2, 1, ld->prec);
        snprintf(nm, sizeof nm, "%s.adain1.%d", name, i);
        load_adain(ld, nm, C, &rb->a1[i]);
        snprintf(nm, sizeof nm, "%s.adain2.%d", name, i);
        load_adain(ld, nm, C, &rb->a2[i]);
        int64_t sa[3] = {1, C, 1}, sa2[3] = {1, C, 1};
        snprintf(nm, sizeof nm, "%s.alpha1.%d", name, i);
        rb->alpha1[i] = fetch_copy(ld, nm, 3, sa, 0);
        snprintf(nm, sizeof nm, "%s.alpha2.%d", name, i);
        rb->alpha2[i] = fetch_copy(ld, nm, 3, sa2, 0);
    }
}

static void free_resblock(resblock *rb) {
    for (int i = 0; i < 3; i++) {
        koe_conv_free(rb->c1[i]);
        koe_conv_free(rb->c2[i]);
        free_adain(&rb->a1[i]);
        free_adain(&rb->a2[i]);
        free(rb->alpha1[i]);
        free(rb->alpha2[i]);
    }
}

static koe_convt *load_ups(loader *ld, int i, int cin, int cout, int k, int stride) {
    char name[32];
    snprintf(name, sizeof name, "ups.%d", i);
    const float *b;
    /* ConvTranspose1d weight norm is per input channel (dim 0 of [cin, cout, k]). */
    float *w = fetch_wn(ld, name, cin, cout, k, cout, &b);
    if (!w) return NULL;
    koe_convt_desc d = {.cin = cin,
                        .cout = cout,
                        .k = k,
                        .stride = stride,
                        .pad = (k - stride) / 2,
                        .bf16 = is_bf16(ld->prec),
                        .int8 = is_int8(ld->prec)};
    koe_convt *c = koe_convt_new(&d, w, b, ld->err);
    free(w);
    if (!c) ld->failed = 1;
    return c;
}

static koe_conv *load_plain_conv(loader *ld, int i, int cout, int k, int stride, int pad) {
    char nm[64];
    int64_t sw[3] = {cout, 2 * NBIN, k}, sb[1] = {cout};
    snprintf(nm, sizeof nm, "noise_convs.%d.weight", i);
    const float *w = fetch(ld, nm, 3, sw, 0);
    snprintf(nm, sizeof nm, "noise_convs.%d.bias", i);
    const float *b = fetch(ld, nm, 1, sb, 0);
    if (ld->failed) return NULL;
    koe_conv_desc d = {
        .cin = 2 * NBIN,
        .cout = cout,
        .k = k,
        .stride = stride,
        .pad = pad,
        /* The source's STFT mixes magnitudes and phases (±π) of very different scales, and
         * these layers are small (22 input channels): bf16 in int8 models. */
        .bf16 = is_bf16(ld->prec)};
    koe_conv *c = koe_conv_new(&d, w, b, ld->err);
    if (!c) ld->failed = 1;
    return c;
}

koe_generator *koe_generator_new_lookup(koe_tensor_lookup lookup, void *user, koe_error *err) {
    return koe_generator_new_prec(lookup, user, 0, err);
}

koe_generator *koe_generator_new_prec(koe_tensor_lookup lookup, void *user, int prec,
                                      koe_error *err) {
    koe_generator *g = calloc(1, sizeof *g);
    if (!g) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory creating the generator");
        return NULL;
    }
    loader ld = {.lookup = lookup, .user = user, .err = err, .prec = prec};
    /* Widths from the shapes: ups.0.weight_v is [W2, W2/2, 20]. */
    int64_t s0[3] = {-1, -1, 20};
    fetch(&ld, "ups.0.weight_v", 3, s0, 0);
    if (!ld.failed && (s0[0] % 4 || s0[1] * 2 != s0[0] || s0[0] > 65536)) {
        ld.failed = 1;
        koe_error_set(err, KOE_ERR_FORMAT,
                      "tensor decoder.generator.ups.0.weight_v has shape [%lld, %lld, 20], "
                      "expected [W2, W2/2, 20] with W2 a multiple of 4",
                      (long long)s0[0], (long long)s0[1]);
    }
    if (ld.failed) goto fail;
    g->W2 = (int)s0[0];
    g->C1 = g->W2 / 2;
    g->C2 = g->W2 / 4;

    int64_t slw[2] = {1, N_HARM}, slb[1] = {1};
    const float *lw = fetch(&ld, "m_source.l_linear.weight", 2, slw, 0);
    const float *lb = fetch(&ld, "m_source.l_linear.bias", 1, slb, 0);
    if (ld.failed) goto fail;
    memcpy(g->l_w, lw, sizeof g->l_w);
    g->l_b = lb[0];

    g->noise_conv[0] = load_plain_conv(&ld, 0, g->C1, 12, 6, 3);
    g->noise_conv[1] = load_plain_conv(&ld, 1, g->C2, 1, 1, 0);
    load_resblock(&ld, "noise_res.0", g->C1, 7, &g->noise_res[0]);
    load_resblock(&ld, "noise_res.1", g->C2, 11, &g->noise_res[1]);
    g->ups[0] = load_ups(&ld, 0, g->W2, g->C1, 20, 10);
    g->ups[1] = load_ups(&ld, 1, g->C1, g->C2, 12, 6);
    static const int kernels[3] = {3, 7, 11};
    for (int i = 0; i < 6; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "resblocks.%d", i);
        load_resblock(&ld, nm, i < 3 ? g->C1 : g->C2, kernels[i % 3], &g->res[i]);
    }
    /* conv_post is the last layer: it gives the log-magnitudes (exponentiated: an error there
     * is a relative error of the audio) and the phases; bf16 in int8 models. */
    g->post = load_wn_conv(&ld, "conv_post", g->C2, 2 * NBIN, 7, 3, 1, cap_bf16(ld.prec));
    if (ld.failed) goto fail;
    return g;
fail:
    koe_error_prefix(err, "generator: ");
    koe_generator_free(g);
    return NULL;
}

void koe_generator_free(koe_generator *g) {
    if (!g) return;
    for (int i = 0; i < 2; i++) {
        koe_conv_free(g->noise_conv[i]);
        free_resblock(&g->noise_res[i]);
        koe_convt_free(g->ups[i]);
    }
    for (int i = 0; i < 6; i++) free_resblock(&g->res[i]);
    koe_conv_free(g->post);
    free(g);
}

int koe_generator_width(const koe_generator *g) {
    return g->W2;
}

int64_t koe_generator_samples(int frames2) {
    return (int64_t)UPP * frames2;
}

/* ---- harmonic source --------------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* The vectors' test stream, in [-1, 1). */
static float test_noise(uint64_t salt, uint64_t i) {
    return 2.0f * ((float)(splitmix64((salt << 32) + i) >> 40) / 16777216.0f) - 1.0f;
}

/* Seeded, counter-based stream for the normal mode: uniform in [0, 1) ... */
static double rand_uniform(uint64_t seed, uint64_t salt, uint64_t i) {
    uint64_t key = splitmix64(seed ^ (salt * 0xD1B54A32D192ED03ULL));
    return (double)(splitmix64(key + i) >> 11) * 0x1.0p-53;
}
/* ... and standard normal by Box–Muller over pairs of draws. */
static double rand_normal(uint64_t seed, uint64_t salt, uint64_t i) {
    uint64_t pair = i >> 1;
    double u1 = rand_uniform(seed, salt, 2 * pair), u2 = rand_uniform(seed, salt, 2 * pair + 1);
    double r = sqrt(-2.0 * log(1.0 - u1));
    return (i & 1) ? r * sin(2 * M_PI * u2) : r * cos(2 * M_PI * u2);
}

static double initial_phase(koe_noise noise, int h) {
    if (h == 0) return 0.0;
    if (noise.mode == KOE_NOISE_TEST) return (test_noise(1, (uint64_t)h) + 1.0f) / 2.0f;
    return rand_uniform(noise.seed, 1, (uint64_t)h);
}

static double source_noise(koe_noise noise, uint64_t i) {
    if (noise.mode == KOE_NOISE_TEST) return test_noise(2, i);
    return rand_normal(noise.seed, 2, i);
}

/* rad = (f0·(h+1) / 24000) mod 1, in float as the reference computes it. */
static float rad_value(float f0, int h) {
    float r = f0 * (float)(h + 1) / (float)SR;
    return r - floorf(r);
}

/* rad[s, h] of the reference at sample s (f0 upsampled by nearest neighbour; the initial phase
 * is added at sample 0 only). */
static double rad_at(const float *f0, int64_t s, int h, const double *phi) {
    double r = rad_value(f0[s / UPP], h);
    return s == 0 ? r + phi[h] : r;
}

/* P[i·9 + h] = 300 · 2π · Σ_{i' ≤ i} down[i', h]: the scaled phase at input step i, where down
 * is rad linearly interpolated at 300·i + 149.5 (so the initial phase at sample 0 is never
 * read — as in the reference). The reference accumulates its cumsum in double but stores
 * float, then scales by 2π and 300 and interpolates in float; the same roundings are kept here,
 * because at tens of thousands of radians they decide the sine's last digits. */
static void phase_table(const float *f0, int frames2, koe_noise noise, float *P) {
    int64_t S = (int64_t)UPP * frames2;
    double phi[N_HARM], cum[N_HARM] = {0};
    for (int h = 0; h < N_HARM; h++) phi[h] = initial_phase(noise, h);
    const float two_pi_f = 2.0f, pi_f = (float)M_PI, upp_f = (float)UPP;
    for (int i = 0; i < frames2; i++) {
        int64_t s0 = (int64_t)UPP * i + UPP / 2 - 1; /* floor(300i + 149.5) */
        int64_t s1 = s0 + 1 < S ? s0 + 1 : s0;
        for (int h = 0; h < N_HARM; h++) {
            float down =
                0.5f * (float)rad_at(f0, s0, h, phi) + 0.5f * (float)rad_at(f0, s1, h, phi);
            cum[h] += down;
            P[(size_t)i * N_HARM + h] = (((float)cum[h] * two_pi_f) * pi_f) * upp_f;
        }
    }
}

/* Samples [t0, t1) of the harmonic source from the phase table. */
static void har_range(const koe_generator *g, const float *f0, int frames2, koe_noise noise,
                      const float *P, int64_t t0, int64_t t1, float *har_source) {
    for (int64_t t = t0; t < t1; t++) {
        /* PyTorch's source index for scale 300, computed in float and clamped at 0. */
        float src = (1.0f / (float)UPP) * ((float)t + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int i0 = (int)src;
        if (i0 > frames2 - 1) i0 = frames2 - 1;
        int i1 = i0 < frames2 - 1 ? i0 + 1 : i0;
        float lam = src - (float)i0;
        if (lam > 1) lam = 1;
        if (lam < 0) lam = 0;
        float lam0 = 1.0f - lam;
        const float *pa = P + (size_t)i0 * N_HARM, *pb = P + (size_t)i1 * N_HARM;
        float f0t = f0[t / UPP];
        int voiced = f0t > 10.0f;
        float amp = voiced ? 0.003f : (float)(0.1 / 3.0);
        double acc = g->l_b;
        for (int h = 0; h < N_HARM; h++) {
            /* w0·t0 + w1·t1 as PyTorch's vectorized kernel evaluates it (contracted to an FMA). */
            float up = fmaf(lam0, pa[h], lam * pb[h]);
            float sw = voiced ? (float)sin((double)up) * 0.1f : 0.0f;
            sw += amp * (float)source_noise(noise, (uint64_t)t * N_HARM + (uint64_t)h);
            acc += (double)g->l_w[h] * sw;
        }
        har_source[t] = (float)tanh(acc);
    }
}

int koe_generator_har_source(const koe_generator *g, const float *f0, int frames2, koe_noise noise,
                             float *har_source) {
    float *P = malloc(sizeof(float) * N_HARM * (size_t)(frames2 > 0 ? frames2 : 1));
    if (!P) return KOE_ERR_NOMEM;
    phase_table(f0, frames2, noise, P);
    har_range(g, f0, frames2, noise, P, 0, (int64_t)UPP * frames2, har_source);
    free(P);
    return 0;
}

/* ---- STFT and iSTFT ---------------------------------------------------------------------- */
static void dft_tables(double win[NFFT], double cs[NBIN][NFFT], double sn[NBIN][NFFT]) {
    for (int n = 0; n < NFFT; n++) {
        win[n] = 0.5 - 0.5 * cos(2 * M_PI * n / NFFT); /* periodic Hann */
        for (int k = 0; k < NBIN; k++) {
            cs[k][n] = cos(2 * M_PI * k * n / NFFT);
            sn[k][n] = sin(2 * M_PI * k * n / NFFT);
        }
    }
}

/* Frames [m0, m1) of the STFT. */
static void stft_range(const float *x, int64_t n, float *spec, float *phase, int64_t m0,
                       int64_t m1) {
    double win[NFFT], cs[NBIN][NFFT], sn[NBIN][NFFT];
    dft_tables(win, cs, sn);
    int64_t frames = n / HOP + 1;
    for (int64_t m = m0; m < m1; m++) {
        double buf[NFFT];
        for (int j = 0; j < NFFT; j++) {
            int64_t i = m * HOP + j - NFFT / 2; /* reflect padding of 10 */
            if (i < 0) i = -i;
            if (i >= n) i = 2 * (n - 1) - i;
            buf[j] = win[j] * x[i];
        }
        for (int k = 0; k < NBIN; k++) {
            double re = 0, im = 0;
            for (int j = 0; j < NFFT; j++) {
                re += buf[j] * cs[k][j];
                im -= buf[j] * sn[k][j];
            }
            spec[(int64_t)k * frames + m] = (float)sqrt(re * re + im * im);
            phase[(int64_t)k * frames + m] = (float)atan2(im, re);
        }
    }
}

void koe_stft20(const float *x, int64_t n, float *spec, float *phase) {
    stft_range(x, n, spec, phase, 0, n / HOP + 1);
}

/* Output samples [t0, t1) of the iSTFT: overlap-add of the windowed inverse real DFTs of the
 * frames that reach them (frame m covers padded positions 5m .. 5m+19; output t is padded
 * position t + 10), in frame order, then divided by the overlap-added squared window. Ranges
 * are independent, so they can run in parallel. */
static void istft_range(const float *post, int64_t frames, float *audio, int64_t t0, int64_t t1) {
    double win[NFFT], cs[NBIN][NFFT], sn[NBIN][NFFT];
    dft_tables(win, cs, sn);
    for (int64_t t = t0; t < t1; t++) audio[t] = 0;
    int64_t m_lo = (t0 + NFFT / 2 - (NFFT - 1)) / HOP, m_hi = (t1 - 1 + NFFT / 2) / HOP;
    if (t0 + NFFT / 2 - (NFFT - 1) < 0) m_lo = 0;
    if (m_hi > frames - 1) m_hi = frames - 1;
    for (int64_t m = m_lo; m <= m_hi; m++) {
        double re[NBIN], im[NBIN];
        for (int k = 0; k < NBIN; k++) {
            double mag = exp(post[(int64_t)k * frames + m]);
            double ph = sin(post[(int64_t)(k + NBIN) * frames + m]);
            re[k] = mag * cos(ph);
            im[k] = mag * sin(ph);
        }
        /* The imaginary parts of the DC and Nyquist bins drop out, as in a C2R transform. */
        im[0] = im[NBIN - 1] = 0;
        for (int j = 0; j < NFFT; j++) {
            int64_t t = m * HOP + j - NFFT / 2;
            if (t < t0 || t >= t1) continue;
            double v = re[0] + re[NBIN - 1] * cs[NBIN - 1][j];
            for (int k = 1; k < NBIN - 1; k++) v += 2.0 * (re[k] * cs[k][j] - im[k] * sn[k][j]);
            audio[t] += (float)(win[j] * v / NFFT);
        }
    }
    for (int64_t t = t0; t < t1; t++) {
        int64_t p = t + NFFT / 2;
        int64_t lo = p - NFFT + 1 <= 0 ? 0 : (p - NFFT + HOP) / HOP;
        int64_t hi = p / HOP < frames - 1 ? p / HOP : frames - 1;
        double env = 0;
        for (int64_t m = lo; m <= hi; m++) {
            int64_t j = p - m * HOP;
            if (j >= 0 && j < NFFT) env += win[j] * win[j];
        }
        audio[t] = env > 1e-11 ? (float)(audio[t] / env) : 0.0f;
    }
}

void koe_istft20(const float *post, int64_t frames, float *audio) {
    istft_range(post, frames, audio, 0, HOP * (frames - 1));
}

/* ---- parallel helpers for the light passes ----------------------------------------------- */
#define LIGHT_TASKS 16

typedef enum light_op { OP_ADD, OP_MEAN3, OP_STFT, OP_ISTFT, OP_HAR } light_op;

typedef struct light_job {
    light_op op;
    float *x;
    const float *a;
    int64_t n;   /* elements, or STFT input samples, or iSTFT frames */
    float *out2; /* STFT phase */
    /* harmonic source: samples n = 300 · frames2 from the phase table a */
    const koe_generator *g;
    const float *f0;
    int frames2;
    koe_noise noise;
} light_job;

static void light_task(void *arg, int task) {
    light_job *j = arg;
    int64_t len = j->op == OP_STFT ? j->n / HOP + 1 : j->op == OP_ISTFT ? HOP * (j->n - 1) : j->n;
    int64_t i0 = len * task / LIGHT_TASKS, i1 = len * (task + 1) / LIGHT_TASKS;
    switch (j->op) {
    case OP_ADD:
        for (int64_t i = i0; i < i1; i++) j->x[i] += j->a[i];
        break;
    case OP_MEAN3: /* x = (acc + x) / 3, with acc = r0 + r1 in a */
        for (int64_t i = i0; i < i1; i++) j->x[i] = (j->a[i] + j->x[i]) / 3.0f;
        break;
    case OP_STFT:
        stft_range(j->a, j->n, j->x, j->out2, i0, i1);
        break;
    case OP_ISTFT:
        istft_range(j->a, j->n, j->x, i0, i1);
        break;
    case OP_HAR:
        har_range(j->g, j->f0, j->frames2, j->noise, j->a, i0, i1, j->x);
        break;
    }
}

static void light_run(koe_pool *pool, light_op op, float *x, const float *a, int64_t n,
                      float *out2) {
    light_job j = {.op = op, .x = x, .a = a, .n = n, .out2 = out2};
    if (pool)
        koe_pool_run(pool, LIGHT_TASKS, light_task, &j);
    else
        for (int t = 0; t < LIGHT_TASKS; t++) light_task(&j, t);
}

/* ---- the network ------------------------------------------------------------------------- */
/* Lengths of one run: T0 = frames2 input steps, T1 = 10·T0 after ups.0, T2 = 60·T0 + 1 after
 * ups.1 and the reflection pad (= STFT frames S/5 + 1). */
typedef struct dims {
    int T0, T1, T2;
    int64_t S;
    size_t big; /* floats of each [C, T] work buffer */
    size_t conv_scratch;
} dims;

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

static size_t resblock_scratch(const resblock *rb, int T, koe_pool *pool) {
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        n = max_sz(n, koe_conv_scratch_floats(rb->c1[i], T, pool));
        n = max_sz(n, koe_conv_scratch_floats(rb->c2[i], T, pool));
    }
    return n;
}

static dims get_dims(const koe_generator *g, int frames2, koe_pool *pool) {
    dims d;
    d.T0 = frames2;
    d.T1 = 10 * frames2;
    d.T2 = 60 * frames2 + 1;
    d.S = (int64_t)UPP * frames2;
    d.big = max_sz((size_t)g->C1 * d.T1, (size_t)g->C2 * d.T2);
    size_t c = koe_conv_scratch_floats(g->noise_conv[0], d.T2, pool);
    c = max_sz(c, koe_conv_scratch_floats(g->noise_conv[1], d.T2, pool));
    c = max_sz(c, koe_convt_scratch_floats(g->ups[0], d.T0, pool));
    c = max_sz(c, koe_convt_scratch_floats(g->ups[1], d.T1, pool));
    c = max_sz(c, koe_conv_scratch_floats(g->post, d.T2, pool));
    c = max_sz(c, resblock_scratch(&g->noise_res[0], d.T1, pool));
    c = max_sz(c, resblock_scratch(&g->noise_res[1], d.T2, pool));
    for (int i = 0; i < 6; i++)
        c = max_sz(c, resblock_scratch(&g->res[i], i < 3 ? d.T1 : d.T2, pool));
    d.conv_scratch = c;
    return d;
}

/* Scratch layout: har [22, T2] | input copy [W2, T0] | 5 work buffers | post [22, T2] |
 * style coefficients 4·C1 | conv scratch. */
size_t koe_generator_scratch_floats(const koe_generator *g, int frames2, koe_pool *pool) {
    if (frames2 < 1) return 0;
    dims d = get_dims(g, frames2, pool);
    return 2 * (size_t)2 * NBIN * d.T2 + (size_t)g->W2 * d.T0 + 5 * d.big + 4 * (size_t)g->C1 +
           d.conv_scratch + 64;
}

static double conv_macs(int cin, int cout, int k, double t_out) {
    return (double)cin * cout * k * t_out;
}

static double resblock_macs(const resblock *rb, double T) {
    return 6 * conv_macs(rb->C, rb->C, rb->k, T);
}

double koe_generator_macs(const koe_generator *g, int frames2) {
    double T0 = frames2, T1 = 10.0 * frames2, T2 = 60.0 * frames2 + 1;
    double m = conv_macs(2 * NBIN, g->C1, 12, T1) + conv_macs(2 * NBIN, g->C2, 1, T2);
    m += resblock_macs(&g->noise_res[0], T1) + resblock_macs(&g->noise_res[1], T2);
    m += conv_macs(g->W2, g->C1, 20, T0) + conv_macs(g->C1, g->C2, 12, T1);
    for (int i = 0; i < 6; i++) m += resblock_macs(&g->res[i], i < 3 ? T1 : T2);
    m += conv_macs(g->C2, 2 * NBIN, 7, T2);
    return m;
}

static double resblock_macs_computed(const resblock *rb, int T) {
    double m = 0;
    for (int i = 0; i < 3; i++) m += koe_conv_macs(rb->c1[i], T) + koe_conv_macs(rb->c2[i], T);
    return m;
}

double koe_generator_macs_computed(const koe_generator *g, int frames2) {
    int T0 = frames2, T1 = 10 * frames2, T2 = 60 * frames2 + 1;
    double m = koe_conv_macs(g->noise_conv[0], T2) + koe_conv_macs(g->noise_conv[1], T2);
    m +=
        resblock_macs_computed(&g->noise_res[0], T1) + resblock_macs_computed(&g->noise_res[1], T2);
    m += conv_macs(g->W2, g->C1, 20, T0) + conv_macs(g->C1, g->C2, 12, T1);
    for (int i = 0; i < 6; i++) m += resblock_macs_computed(&g->res[i], i < 3 ? T1 : T2);
    m += koe_conv_macs(g->post, T2);
    return m;
}

typedef struct work {
    koe_pool *pool;
    const float *style;
    float *t1, *t2;    /* [C, T] temporaries of a resblock */
    float *gb, *a, *b; /* 2C, C, C */
    float *cs;         /* conv scratch */
    volatile const int *cancel;
} work;

static int cancelled(const work *w) {
    return w->cancel && *w->cancel;
}

/* γ, β = fc(style): [2C]. */
static void adain_style(const adain *ad, int C, const float *s, float *gb) {
    for (int r = 0; r < 2 * C; r++) {
        const float *wr = ad->fc_w + (size_t)r * STYLE_DIM;
        double acc = ad->fc_b[r];
        for (int j = 0; j < STYLE_DIM; j++) acc += (double)wr[j] * s[j];
        gb[r] = (float)acc;
    }
}

/* x ← AdaINResBlock1(x): for each dilation, x += conv2(snake(adain2(conv1(snake(adain1(x)))))). */
static int resblock_run(const resblock *rb, work *w, float *x, int T) {
    int C = rb->C;
    for (int i = 0; i < 3; i++) {
        if (cancelled(w)) return KOE_ERR_CANCELLED;
        adain_style(&rb->a1[i], C, w->style, w->gb);
        koe_adain_coefs(w->pool, x, C, T, w->gb, rb->a1[i].nw, rb->a1[i].nb, w->a, w->b);
        koe_affine_snake(w->pool, x, w->t1, C, T, w->a, w->b, rb->alpha1[i]);
        koe_conv_run(rb->c1[i], w->pool, w->cs, w->t1, T, w->t2, 0);
        adain_style(&rb->a2[i], C, w->style, w->gb);
        koe_adain_coefs(w->pool, w->t2, C, T, w->gb, rb->a2[i].nw, rb->a2[i].nb, w->a, w->b);
        koe_affine_snake(w->pool, w->t2, w->t1, C, T, w->a, w->b, rb->alpha2[i]);
        koe_conv_run(rb->c2[i], w->pool, w->cs, w->t1, T, x, 1);
    }
    return 0;
}

/* x ← mean of resblocks[first .. first+2](x); acc and tmp are work buffers of x's size. */
static int resblock_mean(const koe_generator *g, int first, work *w, float *x, int T, float *acc,
                         float *tmp) {
    int C = g->res[first].C, rc;
    size_t n = (size_t)C * T;
    memcpy(acc, x, n * sizeof *acc);
    if ((rc = resblock_run(&g->res[first], w, acc, T))) return rc;
    memcpy(tmp, x, n * sizeof *tmp);
    if ((rc = resblock_run(&g->res[first + 1], w, tmp, T))) return rc;
    light_run(w->pool, OP_ADD, acc, tmp, (int64_t)n, NULL);
    if ((rc = resblock_run(&g->res[first + 2], w, x, T))) return rc;
    light_run(w->pool, OP_MEAN3, x, acc, (int64_t)n, NULL);
    return 0;
}

static void tap_emit(const koe_stage_tap *tap, const char *name, const float *data, int ndim,
                     int64_t a, int64_t b, int64_t c) {
    if (!tap || !tap->fn) return;
    int64_t shape[3] = {a, b, c};
    tap->fn(tap->user, name, data, ndim, shape);
}

/* The network from har = [spec; phase] (in scratch) to audio. */
static int run_core(const koe_generator *g, koe_pool *pool, float *scratch, const dims *d,
                    const float *x_in, const float *s_dec, const koe_stage_tap *tap,
                    volatile const int *cancel, float *audio) {
    float *har = scratch;
    float *post = har + (size_t)2 * NBIN * d->T2;
    float *xin = post + (size_t)2 * NBIN * d->T2;
    float *X = xin + (size_t)g->W2 * d->T0;
    float *A = X + d->big, *B = A + d->big;
    work w = {.pool = pool, .style = s_dec, .cancel = cancel};
    w.t1 = B + d->big;
    w.t2 = w.t1 + d->big;
    w.gb = w.t2 + d->big;
    w.a = w.gb + 2 * (size_t)g->C1;
    w.b = w.a + g->C1;
    w.cs = w.b + g->C1;
    int rc;

    /* Stage 0: 2F → 20F at C1 channels. */
    koe_affine_lrelu(pool, x_in, xin, g->W2, d->T0, NULL, NULL, 0.1f);
    koe_conv_run(g->noise_conv[0], pool, w.cs, har, d->T2, A, 0);
    if ((rc = resblock_run(&g->noise_res[0], &w, A, d->T1))) return rc;
    koe_convt_run(g->ups[0], pool, w.cs, xin, d->T0, X);
    light_run(pool, OP_ADD, X, A, (int64_t)g->C1 * d->T1, NULL);
    if ((rc = resblock_mean(g, 0, &w, X, d->T1, A, B))) return rc;

    /* Stage 1: 20F → 120F (+1 reflected sample on the left) at C2 channels. */
    koe_affine_lrelu(pool, X, X, g->C1, d->T1, NULL, NULL, 0.1f);
    koe_conv_run(g->noise_conv[1], pool, w.cs, har, d->T2, A, 0);
    if ((rc = resblock_run(&g->noise_res[1], &w, A, d->T2))) return rc;
    koe_convt_run(g->ups[1], pool, w.cs, X, d->T1, B);
    int Tu = d->T2 - 1;
    for (int c = 0; c < g->C2; c++) {
        float *dst = X + (size_t)c * d->T2;
        const float *srcr = B + (size_t)c * Tu;
        const float *ar = A + (size_t)c * d->T2;
        dst[0] = srcr[1] + ar[0]; /* ReflectionPad1d((1, 0)) */
        for (int t = 0; t < Tu; t++) dst[t + 1] = srcr[t] + ar[t + 1];
    }
    if ((rc = resblock_mean(g, 3, &w, X, d->T2, A, B))) return rc;

    /* conv_post after PyTorch's default LeakyReLU slope, then the iSTFT. */
    if (cancel && *cancel) return KOE_ERR_CANCELLED;
    koe_affine_lrelu(pool, X, X, g->C2, d->T2, NULL, NULL, 0.01f);
    koe_conv_run(g->post, pool, w.cs, X, d->T2, post, 0);
    tap_emit(tap, "conv_post", post, 3, 1, 2 * NBIN, d->T2);
    light_run(pool, OP_ISTFT, audio, post, d->T2, NULL);
    tap_emit(tap, "audio", audio, 1, d->S, 0, 0);
    return 0;
}

static int check_args(const koe_generator *g, int frames2, const float *x, const float *s_dec,
                      float *scratch, float *audio, koe_error *err) {
    if (!g || !x || !s_dec || !scratch || !audio)
        return koe_error_set(err, KOE_ERR_INVALID, "generator: missing argument");
    if (frames2 < 1 || frames2 > (1 << 20) / 2)
        return koe_error_set(err, KOE_ERR_INVALID, "generator: %d input steps is out of range",
                             frames2);
    return 0;
}

int koe_generator_run(const koe_generator *g, koe_pool *pool, float *scratch, const float *x,
                      int frames2, const float *f0, const float *s_dec, koe_noise noise,
                      const koe_stage_tap *tap, volatile const int *cancel, float *audio,
                      koe_error *err) {
    int rc = check_args(g, frames2, x, s_dec, scratch, audio, err);
    if (rc) return rc;
    if (!f0) return koe_error_set(err, KOE_ERR_INVALID, "generator: missing F0");
    dims d = get_dims(g, frames2, pool);
    /* The harmonic source goes through the audio buffer (same length), then into har; its
     * phase table borrows the (not yet used) conv_post area of the scratch. */
    float *P = scratch + (size_t)2 * NBIN * d.T2;
    phase_table(f0, frames2, noise, P);
    light_job hj = {.op = OP_HAR,
                    .x = audio,
                    .a = P,
                    .n = d.S,
                    .g = g,
                    .f0 = f0,
                    .frames2 = frames2,
                    .noise = noise};
    if (pool)
        koe_pool_run(pool, LIGHT_TASKS, light_task, &hj);
    else
        for (int t = 0; t < LIGHT_TASKS; t++) light_task(&hj, t);
    tap_emit(tap, "har_source", audio, 3, 1, d.S, 1);
    float *har = scratch;
    light_run(pool, OP_STFT, har, audio, d.S, har + (size_t)NBIN * d.T2);
    tap_emit(tap, "har_spec", har, 3, 1, NBIN, d.T2);
    tap_emit(tap, "har_phase", har + (size_t)NBIN * d.T2, 3, 1, NBIN, d.T2);
    rc = run_core(g, pool, scratch, &d, x, s_dec, tap, cancel, audio);
    if (rc == KOE_ERR_CANCELLED) return koe_error_set(err, rc, "generator: cancelled");
    return rc;
}

int koe_generator_run_from_har(const koe_generator *g, koe_pool *pool, float *scratch,
                               const float *x, int frames2, const float *har_spec,
                               const float *har_phase, const float *s_dec, const koe_stage_tap *tap,
                               volatile const int *cancel, float *audio, koe_error *err) {
    int rc = check_args(g, frames2, x, s_dec, scratch, audio, err);
    if (rc) return rc;
    if (!har_spec || !har_phase)
        return koe_error_set(err, KOE_ERR_INVALID, "generator: missing har_spec/har_phase");
    dims d = get_dims(g, frames2, pool);
    memcpy(scratch, har_spec, (size_t)NBIN * d.T2 * sizeof(float));
    memcpy(scratch + (size_t)NBIN * d.T2, har_phase, (size_t)NBIN * d.T2 * sizeof(float));
    rc = run_core(g, pool, scratch, &d, x, s_dec, tap, cancel, audio);
    if (rc == KOE_ERR_CANCELLED) return koe_error_set(err, rc, "generator: cancelled");
    return rc;
}
