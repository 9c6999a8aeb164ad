/* The precision setting of the engine (koe_model_load_ex) and the bf16 and int8 quality gates:
 * - auto picks int8 with AVX-512 VNNI, else bf16 with AVX-512 BF16, else fp32, also once the
 *   dispatch is forced off (KOE_CPU_DISABLE=avx512vnni, =avx512bf16,avx512vnni), as on a CPU
 *   without them;
 * - on the reference cases (tests/data/kokoro-tiny, and ../shared/vectors when present) every
 *   stage is within its tolerance in bf16 and in int8, stage by stage, the generator also from
 *   the reference STFT (koe_model_check_case: fp32 tolerances for the text side, which stays
 *   float32, the precision's own for the decoder and generator), with every kernel this CPU
 *   can run (int8's kernels give the same bits);
 * - on full-size random weights (koe_weights_write_random, as `koe random-weights`): the
 *   generator alone from the same input, bf16 and int8 against fp32 (relative error of its
 *   output before the iSTFT and of the audio, log-spectral distance of the audio), and the whole
 *   engine. */
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
#include "model/ops_conv.h"
#include "model/ops_int8.h"
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
    koe_model *m = load(KOE_PRECISION_INT8, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_INT8, "int8: %s", err.msg);
    koe_model_free(m);
    /* a value outside the enum is refused with a message */
    koe_model_options bad = {.config_path = config, .precision = (koe_precision)9};
    m = koe_model_load_ex(weights, &bad, &err);
    KT_CHECK(!m && err.code == KOE_ERR_INVALID, "precision 9: %s", err.msg);
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
    int bf16 = koe_cpu_has("avx512bf16") && koe_cpu_has("avx512f");
    int vnni = koe_i8_kernel_usable(KOE_I8_KERNEL_AVX512VNNI);
    koe_precision want = vnni ? KOE_PRECISION_INT8 : bf16 ? KOE_PRECISION_BF16 : KOE_PRECISION_FP32;
    KT_EXPECT(koe_precision_auto() == want);
    koe_model *m = load(KOE_PRECISION_AUTO, &err);
    KT_CHECK(m && koe_model_precision(m) == want, "auto: %s", err.msg);
    koe_model_free(m);
    /* a CPU with BF16 but no VNNI (forced): auto is bf16 where BF16 is, else fp32 */
    setenv("KOE_CPU_DISABLE", "avx512vnni", 1);
    KT_EXPECT(koe_precision_auto() == (bf16 ? KOE_PRECISION_BF16 : KOE_PRECISION_FP32));
    m = load(KOE_PRECISION_AUTO, &err);
    KT_CHECK(m && koe_model_precision(m) == koe_precision_auto(), "VNNI off: %s", err.msg);
    koe_model_free(m);
    /* a CPU without BF16/VNNI (forced): auto is fp32, an explicit bf16 or int8 still works */
    setenv("KOE_CPU_DISABLE", "avx512bf16,avx512vnni", 1);
    KT_EXPECT(koe_precision_auto() == KOE_PRECISION_FP32);
    m = load(KOE_PRECISION_AUTO, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_FP32, "forced off: %s", err.msg);
    koe_model_free(m);
    m = load(KOE_PRECISION_BF16, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_BF16, "bf16 forced off: %s", err.msg);
    koe_model_free(m);
    m = load(KOE_PRECISION_INT8, &err);
    KT_CHECK(m && koe_model_precision(m) == KOE_PRECISION_INT8, "int8 forced off: %s", err.msg);
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

/* The reference cases in precision prec (BF16 or INT8) against fp32, with each kernel of that
 * precision this CPU can run (forced with KOE_CPU_DISABLE). */
static void reference_cases(koe_precision prec) {
    char dirs[4][4096];
    int n = case_dirs(dirs, 4);
    int i8 = prec == KOE_PRECISION_INT8;
    static const char *dis16[] = {"", "avx512bf16", "avx512bf16,avx2"};
    static const char *dis8[] = {"", "avx512vnni", "avx512vnni,avx2"};
    const char *pn = koe_precision_name(prec);
    env_save();
    int prev = -1;
    /* int8: the first kernel's figures, which every other must repeat exactly (exact integer
     * sums), as long as the layers int8 leaves in bf16 run on the same bf16 kernel */
    double first[4][4];
    koe_bf16_kernel first_bf16 = koe_bf16_best_kernel();
    for (int k = 0; k < 3; k++) {
        setenv("KOE_CPU_DISABLE", i8 ? dis8[k] : dis16[k], 1);
        int kern = i8 ? (int)koe_i8_best_kernel() : (int)koe_bf16_best_kernel();
        const char *kname = i8 ? koe_i8_kernel_name((koe_i8_kernel)kern)
                               : koe_bf16_kernel_name((koe_bf16_kernel)kern);
        if (kern == prev) continue;
        int first_kernel = prev == -1;
        prev = kern;
        koe_error err = {0};
        koe_model *m32 = load(KOE_PRECISION_FP32, &err), *mp = load(prec, &err);
        KT_CHECK(m32 && mp, "load: %s", err.msg);
        koe_ctx *c32 = m32 ? koe_ctx_new(m32, 2, &err) : NULL;
        koe_ctx *cp = mp ? koe_ctx_new(mp, 2, &err) : NULL;
        /* int8: the other kernels must repeat the first one exactly: one case is enough */
        int n_here = (SLOW_BUILD || i8) && !first_kernel ? 1 : SLOW_BUILD && i8 && n > 2 ? 2 : n;
        for (int i = 0; c32 && cp && i < n_here; i++) {
            koe_check_report r32, rp;
            KT_CHECK(!koe_model_check_case(c32, dirs[i], &r32, &err), "%s", err.msg);
            KT_CHECK(!koe_model_check_case(cp, dirs[i], &rp, &err), "%s", err.msg);
            KT_CHECK(r32.pass, "fp32 %s: %s", dirs[i], r32.first_failure);
            KT_CHECK(rp.pass, "%s (%s) %s: first failure %s", pn, kname, dirs[i], rp.first_failure);
            KT_EXPECT(rp.dur_mismatches == 0 && rp.frames_got == rp.frames_ref);
            /* the text side is float32 in both: the same numbers */
            const char *same[] = {"bert", "pred_lstm", "F0_pred", "N_pred", "asr"};
            for (int s = 0; s < 5; s++) {
                const koe_check_stage *a = find_stage(&r32, same[s]), *b = find_stage(&rp, same[s]);
                KT_CHECK(a && b && a->max_abs == b->max_abs, "%s differs between precisions",
                         same[s]);
            }
            /* and the decoder really ran in reduced precision (errors of its size, not
             * float32's) */
            const char *dec[] = {"dec_encode", "gen_input", "gen.conv_post", "gen.audio"};
            printf("  %s %s %s:", pn, kname, strrchr(dirs[i], '/') + 1);
            for (int s = 0; s < 4; s++) {
                const koe_check_stage *a = find_stage(&r32, dec[s]), *b = find_stage(&rp, dec[s]);
                if (!a || !b) continue;
                printf(" %s %.1e (fp32 %.1e)", dec[s], b->max_rel, a->max_rel);
                KT_CHECK(b->max_rel > 1e-4 && b->max_rel > 10 * a->max_rel,
                         "%s: %s error %g, fp32 %g", dec[s], pn, b->max_rel, a->max_rel);
                if (i8 && i < 4 && first_kernel) first[i][s] = b->max_rel;
                if (i8 && i < 4 && !first_kernel && koe_bf16_best_kernel() == first_bf16)
                    KT_CHECK(b->max_rel == first[i][s], "int8 %s: %s gives %g, the first kernel %g",
                             dec[s], kname, b->max_rel, first[i][s]);
            }
            printf("\n");
        }
        koe_ctx_free(c32);
        koe_ctx_free(cp);
        koe_model_free(m32);
        koe_model_free(mp);
    }
    env_restore();
}

static void test_reference_cases(void) {
    reference_cases(KOE_PRECISION_BF16);
}

static void test_reference_cases_int8(void) {
    reference_cases(KOE_PRECISION_INT8);
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
 * this machine, with 2-3× room; a real defect (a lost tap or column, a mis-packed weight, a
 * wrong scale) gives errors of order 1 and LSDs of several dB.
 * bf16: generator from the same input: output 7.6e-3, audio 9.5e-3, LSD 0.22 dB; whole engine:
 * audio 9.5e-3, LSD 0.19 dB.
 * int8: generator: output 1.9e-2, audio 2.3e-2, LSD 0.47 dB; engine: audio 2.4e-2, LSD 0.45 dB. */
typedef struct bounds {
    double gen_rel, audio_rel, lsd_db;
} bounds;
static const bounds BF16_BOUNDS = {2e-2, 3e-2, 0.5}, INT8_BOUNDS = {5e-2, 6e-2, 1.0};

static const bounds *bounds_of(koe_precision p) {
    return p == KOE_PRECISION_INT8 ? &INT8_BOUNDS : &BF16_BOUNDS;
}

/* Full-size random weights, written once by whichever subtest asks first (so that the two can
 * also run in two processes, KT_ONLY, e.g. side by side under valgrind); removed at exit. */
static char full_size_path[256];
static int full_size_written;

static const char *full_size_weights(void) {
    if (full_size_written) return full_size_path;
    snprintf(full_size_path, sizeof full_size_path, "/tmp/koe-test-precision-%d.safetensors",
             (int)getpid());
    koe_error err = {0};
    if (koe_weights_write_random(full_size_path, NULL, 7, &err)) {
        KT_CHECK(0, "random weights: %s", err.msg);
        unlink(full_size_path);
        return NULL;
    }
    full_size_written = 1;
    return full_size_path;
}

static void test_full_size_generator(void) {
    const char *path = full_size_weights();
    if (!path) return;
    koe_error err = {0};
    /* the generator alone, from the same input: fp32, bf16, int8 */
    static const koe_precision precs[3] = {KOE_PRECISION_FP32, KOE_PRECISION_BF16,
                                           KOE_PRECISION_INT8};
    static const int conv_prec[3] = {KOE_CONV_FP32, KOE_CONV_BF16, KOE_CONV_INT8};
    koe_weights *w = koe_weights_open(path, &err);
    koe_generator *g[3] = {NULL, NULL, NULL};
    for (int p = 0; p < 3 && w; p++) {
        g[p] = koe_generator_new_prec(koe_weights_lookup, w, conv_prec[p], &err);
        KT_CHECK(g[p] != NULL, "generator %s: %s", koe_precision_name(precs[p]), err.msg);
    }
    koe_weights_close(w);
    koe_pool *pool = koe_pool_new(2, &err);
    if (g[0] && g[1] && g[2] && pool) {
        int W2 = koe_generator_width(g[0]), frames2 = SLOW_BUILD ? 12 : 80; /* 1 s of audio */
        int64_t S = koe_generator_samples(frames2);
        float *x = malloc(sizeof(float) * (size_t)W2 * frames2), f0[80], style[128];
        uint64_t r = 99;
        for (size_t i = 0; i < (size_t)W2 * frames2; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 2 - 1);
        }
        for (int i = 0; i < frames2; i++) f0[i] = i % 20 < 16 ? 120.0f + 2.0f * i : 0.0f;
        for (int i = 0; i < 128; i++) style[i] = 0.1f * (float)((i * 29) % 13 - 6) / 6.0f;
        size_t ns = 0;
        for (int p = 0; p < 3; p++) {
            size_t n = koe_generator_scratch_floats(g[p], frames2, pool);
            ns = n > ns ? n : ns;
        }
        float *scr = malloc(sizeof(float) * ns), *audio[3];
        grab post[3];
        koe_noise noise = {KOE_NOISE_RANDOM, 5};
        for (int p = 0; p < 3; p++) {
            audio[p] = malloc(sizeof(float) * (size_t)S);
            post[p] = (grab){"conv_post", NULL, 0};
            koe_stage_tap tap = {grab_stage, &post[p]};
            KT_EXPECT(!koe_generator_run(g[p], pool, scr, x, frames2, f0, style, noise, &tap, NULL,
                                         audio[p], &err));
        }
        for (int p = 1; p < 3; p++) {
            const bounds *b = bounds_of(precs[p]);
            if (!post[0].data || !post[p].data || post[0].n != post[p].n) {
                KT_CHECK(0, "no conv_post tap");
                continue;
            }
            double ep = rel_err(post[p].data, post[0].data, post[0].n);
            double ea = rel_err(audio[p], audio[0], S), lsd = lsd_db(audio[p], audio[0], S);
            printf("  %s: full-size generator, same input, %.2f s: output (conv_post) relative "
                   "error %.2e, audio %.2e, log-spectral distance %.3f dB\n",
                   koe_precision_name(precs[p]), (double)S / KOE_MODEL_SAMPLE_RATE, ep, ea, lsd);
            KT_CHECK(ep < b->gen_rel && ep > 1e-5, "%s generator output relative error %g",
                     koe_precision_name(precs[p]), ep);
            KT_CHECK(ea < b->audio_rel, "%s audio relative error %g", koe_precision_name(precs[p]),
                     ea);
            KT_CHECK(lsd < b->lsd_db, "%s log-spectral distance %g dB",
                     koe_precision_name(precs[p]), lsd);
        }
        for (int p = 0; p < 3; p++) {
            free(post[p].data);
            free(audio[p]);
        }
        free(x);
        free(scr);
    }
    koe_pool_free(pool);
    for (int p = 0; p < 3; p++) koe_generator_free(g[p]);
}

/* the whole engine, 30 tokens */
static void test_full_size_engine(void) {
    if (SLOW_BUILD) return;
    const char *path = full_size_weights();
    if (!path) return;
    koe_error err = {0};
    static const koe_precision precs[3] = {KOE_PRECISION_FP32, KOE_PRECISION_BF16,
                                           KOE_PRECISION_INT8};
    koe_model *m[3] = {NULL, NULL, NULL};
    koe_ctx *c[3] = {NULL, NULL, NULL};
    for (int p = 0; p < 3; p++) {
        koe_model_options o = {.precision = precs[p]};
        m[p] = koe_model_load_ex(path, &o, &err);
        KT_CHECK(m[p] != NULL, "model %s: %s", koe_precision_name(precs[p]), err.msg);
        c[p] = m[p] ? koe_ctx_new(m[p], 2, &err) : NULL;
    }
    if (c[0] && c[1] && c[2]) {
        int32_t ids[32];
        ids[0] = ids[31] = 0;
        for (int i = 1; i < 31; i++) ids[i] = 1 + (i * 37) % 170;
        float ref_s[256];
        for (int i = 0; i < 256; i++) ref_s[i] = 0.2f * (float)((i * 37) % 11 - 5) / 5.0f;
        koe_noise noise = {KOE_NOISE_RANDOM, 3};
        koe_synth_out o1, o2;
        KT_EXPECT(!koe_synthesize(c[0], ids, 32, ref_s, 1.0f, noise, NULL, NULL, &o1, &err));
        float *keep = malloc(sizeof(float) * (size_t)o1.n_samples);
        memcpy(keep, o1.audio, sizeof(float) * (size_t)o1.n_samples);
        for (int p = 1; p < 3; p++) {
            const bounds *b = bounds_of(precs[p]);
            KT_EXPECT(!koe_synthesize(c[p], ids, 32, ref_s, 1.0f, noise, NULL, NULL, &o2, &err));
            KT_CHECK(o1.n_samples == o2.n_samples && o1.frames == o2.frames, "lengths differ");
            if (o1.n_samples != o2.n_samples) continue;
            double ea = rel_err(o2.audio, keep, o1.n_samples);
            double lsd = lsd_db(o2.audio, keep, o1.n_samples);
            printf("  %s: full-size engine, 30 tokens (%.2f s): audio relative error %.2e, "
                   "log-spectral distance %.3f dB\n",
                   koe_precision_name(precs[p]), (double)o1.n_samples / KOE_MODEL_SAMPLE_RATE, ea,
                   lsd);
            KT_CHECK(ea < b->audio_rel, "%s engine audio relative error %g",
                     koe_precision_name(precs[p]), ea);
            KT_CHECK(lsd < b->lsd_db, "%s engine log-spectral distance %g dB",
                     koe_precision_name(precs[p]), lsd);
        }
        free(keep);
    }
    for (int p = 0; p < 3; p++) {
        koe_ctx_free(c[p]);
        koe_model_free(m[p]);
    }
}

int main(void) {
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    snprintf(weights, sizeof weights, "%s/kokoro-tiny/kokoro-tiny-seed1.pth", td);
    snprintf(config, sizeof config, "%s/kokoro-tiny/kokoro-tiny-seed1.config.json", td);
    kt_run("names", test_names);
    kt_run("auto", test_auto);
    kt_run("reference_cases", test_reference_cases);
    kt_run("reference_cases_int8", test_reference_cases_int8);
    kt_run("full_size_generator", test_full_size_generator);
    kt_run("full_size_engine", test_full_size_engine);
    if (full_size_written) unlink(full_size_path);
    return kt_finish();
}
