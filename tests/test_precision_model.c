/* The precision setting of the engine (koe_model_load_ex) and the bf16 quality gate:
 * - auto picks bf16 only with AVX-512 BF16, and fp32 once the dispatch is forced off
 *   (KOE_CPU_DISABLE=avx512bf16,avx512vnni), as on a CPU without it;
 * - on the reference cases (tests/data/kokoro-tiny, and ../shared/vectors when present) every
 *   stage is within its tolerance in bf16, stage by stage, the generator also from the reference
 *   STFT (koe_model_check_case: fp32 tolerances for the text side, which stays float32, bf16 ones
 *   for the decoder and generator), with every bf16 kernel this CPU can run;
 * - on full-size random weights (koe_weights_write_random, as `koe random-weights`): the
 *   generator alone from the same input, bf16 against fp32 (relative error of its output before
 *   the iSTFT and of the audio, log-spectral distance of the audio), and the whole engine. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "koe/model.h"
#include "koe/weights.h"
#include "model/check.h"
#include "model/generator.h"
#include "model/ops_bf16.h"
#include "model/pool.h"

/* Unoptimized sanitizer builds run the same checks on less data (one reference case per
 * emulated kernel, a shorter full-size generator run, no whole-engine run): they are there to
 * find memory and UB errors; the figures come from the optimized build. */
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

static char weights[4096], config[4096];

static char *saved_env;
static void env_save(void) {
    const char *v = getenv("KOE_CPU_DISABLE");
    saved_env = v ? strdup(v) : NULL;
}
static void env_restore(void) {
    if (saved_env)
        setenv("KOE_CPU_DISABLE", saved_env, 1);
    else
        unsetenv("KOE_CPU_DISABLE");
}

static koe_model *load(koe_precision p, koe_error *err) {
    koe_model_options o = {.config_path = config, .precision = p};
    return koe_model_load_ex(weights, &o, err);
}

static void test_names(void) {
    koe_precision p = KOE_PRECISION_AUTO;
    koe_error err = {0};
    KT_EXPECT(!koe_precision_parse("bf16", &p, &err) && p == KOE_PRECISION_BF16);
    KT_EXPECT(!koe_precision_parse("fp32", &p, &err) && p == KOE_PRECISION_FP32);
    KT_EXPECT(!koe_precision_parse("int8", &p, &err) && p == KOE_PRECISION_INT8);
    KT_EXPECT(!koe_precision_parse("auto", &p, &err) && p == KOE_PRECISION_AUTO);
    KT_EXPECT(koe_precision_parse("fp16", &p, &err) == KOE_ERR_INVALID && strstr(err.msg, "fp16"));
    KT_EXPECT(!strcmp(koe_precision_name(KOE_PRECISION_BF16), "bf16"));
    /* int8 is refused with a message, not silently replaced */
    koe_model *m = load(KOE_PRECISION_INT8, &err);
    KT_CHECK(!m && err.code == KOE_ERR_UNSUPPORTED && strstr(err.msg, "int8"), "int8: %s", err.msg);
    koe_model_free(m);
    /* plain koe_model_load stays float32 */
    m = koe_model_load(weights, config, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_FP32, "%s", err.msg);
    koe_model_free(m);
}

static void test_auto(void) {
    env_save();
    koe_error err = {0};
    unsetenv("KOE_CPU_DISABLE");
    int native = koe_cpu_has("avx512bf16") && koe_cpu_has("avx512f");
    KT_EXPECT(koe_precision_auto() == (native ? KOE_PRECISION_BF16 : KOE_PRECISION_FP32));
    koe_model *m = load(KOE_PRECISION_AUTO, &err);
    KT_CHECK(m && koe_model_precision(m) == koe_precision_auto(), "auto: %s", err.msg);
    koe_model_free(m);
    /* a CPU without BF16/VNNI (forced): auto is fp32, an explicit bf16 still works */
    setenv("KOE_CPU_DISABLE", "avx512bf16,avx512vnni", 1);
    KT_EXPECT(koe_precision_auto() == KOE_PRECISION_FP32);
    m = load(KOE_PRECISION_AUTO, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_FP32, "forced off: %s", err.msg);
    koe_model_free(m);
    m = load(KOE_PRECISION_BF16, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_BF16, "bf16 forced off: %s", err.msg);
    koe_model_free(m);
    /* without AVX-512 at all */
    setenv("KOE_CPU_DISABLE", "avx512f", 1);
    KT_EXPECT(koe_precision_auto() == KOE_PRECISION_FP32);
    env_restore();
    printf("  auto on this CPU: %s\n", koe_precision_name(koe_precision_auto()));
}

static int case_dirs(char dirs[][4096], int max) {
    int n = 0;
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    const char *sv = kt_env("KOE_SHARED_VECTORS", "../shared/vectors");
    const char *committed[] = {"case0_T8_speed1", "case1_T40_speed1"};
    for (int i = 0; i < 2 && n < max; i++)
        snprintf(dirs[n++], 4096, "%s/kokoro-tiny/%s", td, committed[i]);
    const char *shared[] = {"case2_T150_speed1.3", "case3_T64_speed0.8"};
    for (int i = 0; i < 2 && n < max; i++) {
        snprintf(dirs[n], 4096, "%s/kokoro-tiny/%s/meta.json", sv, shared[i]);
        if (access(dirs[n], R_OK)) continue;
        snprintf(dirs[n++], 4096, "%s/kokoro-tiny/%s", sv, shared[i]);
    }
    return n;
}

static const koe_check_stage *find_stage(const koe_check_report *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->stage[i].name, name)) return &r->stage[i];
    return NULL;
}

static void test_reference_cases(void) {
    char dirs[4][4096];
    int n = case_dirs(dirs, 4);
    static const char *disable[] = {"", "avx512bf16", "avx512bf16,avx2"};
    env_save();
    koe_bf16_kernel prev = (koe_bf16_kernel)-1;
    for (int k = 0; k < 3; k++) {
        setenv("KOE_CPU_DISABLE", disable[k], 1);
        koe_bf16_kernel kern = koe_bf16_best_kernel();
        if (kern == prev) continue;
        prev = kern;
        koe_error err = {0};
        koe_model *m32 = load(KOE_PRECISION_FP32, &err), *m16 = load(KOE_PRECISION_BF16, &err);
        KT_CHECK(m32 && m16, "load: %s", err.msg);
        koe_ctx *c32 = m32 ? koe_ctx_new(m32, 2, &err) : NULL;
        koe_ctx *c16 = m16 ? koe_ctx_new(m16, 2, &err) : NULL;
        int n_here = SLOW_BUILD && k > 0 ? 1 : n;
        for (int i = 0; c32 && c16 && i < n_here; i++) {
            koe_check_report r32, r16;
            KT_CHECK(!koe_model_check_case(c32, dirs[i], &r32, &err), "%s", err.msg);
            KT_CHECK(!koe_model_check_case(c16, dirs[i], &r16, &err), "%s", err.msg);
            KT_CHECK(r32.pass, "fp32 %s: %s", dirs[i], r32.first_failure);
            KT_CHECK(r16.pass, "bf16 (%s) %s: first failure %s", koe_bf16_kernel_name(kern),
                     dirs[i], r16.first_failure);
            KT_EXPECT(r16.dur_mismatches == 0 && r16.frames_got == r16.frames_ref);
            /* the text side is float32 in both: the same numbers */
            const char *same[] = {"bert", "pred_lstm", "F0_pred", "N_pred", "asr"};
            for (int s = 0; s < 5; s++) {
                const koe_check_stage *a = find_stage(&r32, same[s]),
                                      *b = find_stage(&r16, same[s]);
                KT_CHECK(a && b && a->max_abs == b->max_abs, "%s differs between precisions",
                         same[s]);
            }
            /* and the decoder really ran in bf16 (errors of bf16's size, not float32's) */
            const char *dec[] = {"dec_encode", "gen_input", "gen.conv_post", "gen.audio"};
            printf("  %s %s:", koe_bf16_kernel_name(kern), strrchr(dirs[i], '/') + 1);
            for (int s = 0; s < 4; s++) {
                const koe_check_stage *a = find_stage(&r32, dec[s]), *b = find_stage(&r16, dec[s]);
                if (!a || !b) continue;
                printf(" %s %.1e (fp32 %.1e)", dec[s], b->max_rel, a->max_rel);
                KT_CHECK(b->max_rel > 1e-4 && b->max_rel > 10 * a->max_rel,
                         "%s: bf16 error %g, fp32 %g", dec[s], b->max_rel, a->max_rel);
            }
            printf("\n");
        }
        koe_ctx_free(c32);
        koe_ctx_free(c16);
        koe_model_free(m32);
        koe_model_free(m16);
    }
    env_restore();
}

/* ---- full-size random weights ------------------------------------------------------------ */
/* Log-spectral distance (dB) between two signals: 512-point Hann frames, hop 256, power spectra
 * floored at 1e-10 of the reference's mean frame power, RMS over bins of the dB difference,
 * mean over frames. */
static double lsd_db(const float *a, const float *b, int64_t n) {
    enum { NF = 512, HOP = 256, NB = NF / 2 + 1 };
    static double cs[NB][NF], sn[NB][NF], win[NF];
    for (int i = 0; i < NF; i++) win[i] = 0.5 - 0.5 * cos(2 * M_PI * i / NF);
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < NF; i++) {
            cs[k][i] = cos(2 * M_PI * k * i / NF);
            sn[k][i] = sin(2 * M_PI * k * i / NF);
        }
    int frames = (int)((n - NF) / HOP + 1);
    if (frames < 1) return NAN;
    double *pa = malloc(sizeof(double) * frames * NB), *pb = malloc(sizeof(double) * frames * NB);
    double mean = 0;
    for (int f = 0; f < frames; f++)
        for (int k = 0; k < NB; k++) {
            double ar = 0, ai = 0, br = 0, bi = 0;
            for (int i = 0; i < NF; i++) {
                double wa = win[i] * a[(int64_t)f * HOP + i], wb = win[i] * b[(int64_t)f * HOP + i];
                ar += wa * cs[k][i];
                ai -= wa * sn[k][i];
                br += wb * cs[k][i];
                bi -= wb * sn[k][i];
            }
            pa[f * NB + k] = ar * ar + ai * ai;
            pb[f * NB + k] = br * br + bi * bi;
            mean += pa[f * NB + k];
        }
    double floor_p = 1e-10 * mean / frames + 1e-30, sum = 0;
    for (int f = 0; f < frames; f++) {
        double s = 0;
        for (int k = 0; k < NB; k++) {
            double d = 10 * log10((pa[f * NB + k] + floor_p) / (pb[f * NB + k] + floor_p));
            s += d * d;
        }
        sum += sqrt(s / NB);
    }
    free(pa);
    free(pb);
    return sum / frames;
}

static double rel_err(const float *a, const float *b, int64_t n) {
    double se = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        sr += (double)b[i] * b[i];
    }
    return sqrt(se / (sr + 1e-300));
}

typedef struct grab {
    const char *name;
    float *data;
    int64_t n;
} grab;
static void grab_stage(void *user, const char *stage, const float *data, int ndim,
                       const int64_t *shape) {
    grab *g = user;
    if (strcmp(stage, g->name)) return;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    free(g->data);
    g->data = malloc(sizeof(float) * (size_t)n);
    if (g->data) memcpy(g->data, data, sizeof(float) * (size_t)n);
    g->n = n;
}

/* Thresholds, justified in docs/PERFORMANCE.md ("Reduced precision"): measured by this test on
 * this machine (generator from the same input: output 7.6e-3, audio 9.5e-3, LSD 0.22 dB; whole
 * engine: audio 9.5e-3, LSD 0.19 dB), with 2-3× room; a real defect (a lost tap or column, a
 * mis-packed weight) gives errors of order 1 and LSDs of several dB. */
#define FULL_GEN_REL   2e-2
#define FULL_AUDIO_REL 3e-2
#define FULL_LSD_DB    0.5

static void test_full_size_random(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/koe-test-precision-%d.safetensors", (int)getpid());
    koe_error err = {0};
    if (koe_weights_write_random(path, NULL, 7, &err)) {
        KT_CHECK(0, "random weights: %s", err.msg);
        return;
    }
    /* the generator alone, from the same input */
    koe_weights *w = koe_weights_open(path, &err);
    koe_generator *g32 = w ? koe_generator_new_prec(koe_weights_lookup, w, 0, &err) : NULL;
    koe_generator *g16 = w ? koe_generator_new_prec(koe_weights_lookup, w, 1, &err) : NULL;
    koe_weights_close(w);
    KT_CHECK(g32 && g16, "generator: %s", err.msg);
    koe_pool *pool = koe_pool_new(2, &err);
    if (g32 && g16 && pool) {
        int W2 = koe_generator_width(g32), frames2 = SLOW_BUILD ? 12 : 80; /* 1 s of audio */
        int64_t S = koe_generator_samples(frames2);
        float *x = malloc(sizeof(float) * (size_t)W2 * frames2), f0[80], style[128];
        uint64_t r = 99;
        for (size_t i = 0; i < (size_t)W2 * frames2; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 2 - 1);
        }
        for (int i = 0; i < frames2; i++) f0[i] = i % 20 < 16 ? 120.0f + 2.0f * i : 0.0f;
        for (int i = 0; i < 128; i++) style[i] = 0.1f * (float)((i * 29) % 13 - 6) / 6.0f;
        size_t ns = koe_generator_scratch_floats(g32, frames2, pool);
        size_t ns16 = koe_generator_scratch_floats(g16, frames2, pool);
        float *scr = malloc(sizeof(float) * (ns > ns16 ? ns : ns16));
        float *a32 = malloc(sizeof(float) * (size_t)S), *a16 = malloc(sizeof(float) * (size_t)S);
        grab p32 = {"conv_post", NULL, 0}, p16 = {"conv_post", NULL, 0};
        koe_stage_tap t32 = {grab_stage, &p32}, t16 = {grab_stage, &p16};
        koe_noise noise = {KOE_NOISE_RANDOM, 5};
        KT_EXPECT(!koe_generator_run(g32, pool, scr, x, frames2, f0, style, noise, &t32, NULL, a32,
                                     &err));
        KT_EXPECT(!koe_generator_run(g16, pool, scr, x, frames2, f0, style, noise, &t16, NULL, a16,
                                     &err));
        if (p32.data && p16.data && p32.n == p16.n) {
            double ep = rel_err(p16.data, p32.data, p32.n), ea = rel_err(a16, a32, S);
            double lsd = lsd_db(a16, a32, S);
            printf("  full-size generator, same input, %.2f s: output (conv_post) relative error "
                   "%.2e, audio %.2e, log-spectral distance %.3f dB\n",
                   (double)S / KOE_MODEL_SAMPLE_RATE, ep, ea, lsd);
            KT_CHECK(ep < FULL_GEN_REL && ep > 1e-5, "generator output relative error %g", ep);
            KT_CHECK(ea < FULL_AUDIO_REL, "audio relative error %g", ea);
            KT_CHECK(lsd < FULL_LSD_DB, "log-spectral distance %g dB", lsd);
        } else {
            KT_CHECK(0, "no conv_post tap");
        }
        free(p32.data);
        free(p16.data);
        free(x);
        free(scr);
        free(a32);
        free(a16);
    }
    koe_pool_free(pool);
    koe_generator_free(g32);
    koe_generator_free(g16);

    /* the whole engine, 30 tokens */
    if (SLOW_BUILD) {
        unlink(path);
        return;
    }
    koe_model_options o32 = {.precision = KOE_PRECISION_FP32},
                      o16 = {.precision = KOE_PRECISION_BF16};
    koe_model *m32 = koe_model_load_ex(path, &o32, &err),
              *m16 = koe_model_load_ex(path, &o16, &err);
    KT_CHECK(m32 && m16, "model: %s", err.msg);
    koe_ctx *c32 = m32 ? koe_ctx_new(m32, 2, &err) : NULL,
            *c16 = m16 ? koe_ctx_new(m16, 2, &err) : NULL;
    if (c32 && c16) {
        int32_t ids[32];
        ids[0] = ids[31] = 0;
        for (int i = 1; i < 31; i++) ids[i] = 1 + (i * 37) % 170;
        float ref_s[256];
        for (int i = 0; i < 256; i++) ref_s[i] = 0.2f * (float)((i * 37) % 11 - 5) / 5.0f;
        koe_noise noise = {KOE_NOISE_RANDOM, 3};
        koe_synth_out o1, o2;
        KT_EXPECT(!koe_synthesize(c32, ids, 32, ref_s, 1.0f, noise, NULL, NULL, &o1, &err));
        float *keep = malloc(sizeof(float) * (size_t)o1.n_samples);
        memcpy(keep, o1.audio, sizeof(float) * (size_t)o1.n_samples);
        KT_EXPECT(!koe_synthesize(c16, ids, 32, ref_s, 1.0f, noise, NULL, NULL, &o2, &err));
        KT_CHECK(o1.n_samples == o2.n_samples && o1.frames == o2.frames, "lengths differ");
        if (o1.n_samples == o2.n_samples) {
            double ea = rel_err(o2.audio, keep, o1.n_samples);
            double lsd = lsd_db(o2.audio, keep, o1.n_samples);
            printf("  full-size engine, 30 tokens (%.2f s): audio relative error %.2e, "
                   "log-spectral distance %.3f dB\n",
                   (double)o1.n_samples / KOE_MODEL_SAMPLE_RATE, ea, lsd);
            KT_CHECK(ea < FULL_AUDIO_REL, "engine audio relative error %g", ea);
            KT_CHECK(lsd < FULL_LSD_DB, "engine log-spectral distance %g dB", lsd);
        }
        free(keep);
    }
    koe_ctx_free(c32);
    koe_ctx_free(c16);
    koe_model_free(m32);
    koe_model_free(m16);
    unlink(path);
}

int main(void) {
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    snprintf(weights, sizeof weights, "%s/kokoro-tiny/kokoro-tiny-seed1.pth", td);
    snprintf(config, sizeof config, "%s/kokoro-tiny/kokoro-tiny-seed1.config.json", td);
    kt_run("names", test_names);
    kt_run("auto", test_auto);
    kt_run("reference_cases", test_reference_cases);
    kt_run("full_size_random", test_full_size_random);
    return kt_finish();
}
