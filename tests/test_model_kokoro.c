/* The whole engine against the reference vectors, stage by stage, from the committed tiny .pth
 * (the two committed cases) and, when ../shared/vectors is present, every case there. Also:
 * the seeded noise mode replays, contexts on one model agree across threads, cancellation,
 * bad inputs. */
#include "harness.h"
#include "koe/model.h"
#include "model/check.h"
#include "model/config.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static koe_model *model;
static char weights[1024], config[1024];

static void check_dir(const char *root) {
    DIR *d = opendir(root);
    if (!d) {
        printf("  (no %s)\n", root);
        return;
    }
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 2, &err);
    KT_CHECK(c != NULL, "%s", err.msg);
    struct dirent *e;
    int cases = 0;
    while (c && (e = readdir(d))) {
        if (strncmp(e->d_name, "case", 4)) continue;
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        koe_check_report rep;
        int rc = koe_model_check_case(c, dir, &rep, &err);
        KT_CHECK(rc == 0, "%s: %s", e->d_name, err.msg);
        if (rc) continue;
        cases++;
        printf("  %s: T=%d F=%d/%d %s", e->d_name, rep.tokens, rep.frames_got, rep.frames_ref,
               rep.pass ? "pass" : "FAIL");
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < rep.n; i++)
            if (rep.stage[i].compared && !rep.stage[i].info_only && rep.stage[i].tol > 0 &&
                rep.stage[i].max_rel / rep.stage[i].tol > worst)
                worst = rep.stage[i].max_rel / rep.stage[i].tol, worst_name = rep.stage[i].name;
        printf(" (closest to its tolerance: %s at %.2f of it)\n", worst_name, worst);
        KT_CHECK(rep.pass, "%s: first failing stage %s", e->d_name, rep.first_failure);
        KT_CHECK(rep.dur_mismatches == 0 && rep.frames_got == rep.frames_ref,
                 "%s: durations equal (%d mismatches)", e->d_name, rep.dur_mismatches);
        int stages = 0;
        for (int i = 0; i < rep.n; i++) stages += rep.stage[i].compared && !rep.stage[i].info_only;
        KT_CHECK(stages >= 15, "%s: %d stages compared", e->d_name, stages);
    }
    closedir(d);
    KT_CHECK(cases > 0, "cases found in %s", root);
    koe_ctx_free(c);
}

static void test_committed_cases(void) {
    char root[1024];
    snprintf(root, sizeof root, "%s/kokoro-tiny", kt_env("KOE_TEST_DATA", "tests/data"));
    check_dir(root);
}

static void test_shared_cases(void) {
    char root[1024];
    snprintf(root, sizeof root, "%s/kokoro-tiny",
             kt_env("KOE_SHARED_VECTORS", "../shared/vectors"));
    check_dir(root);
}

static const int32_t ids[] = {0, 50, 83, 156, 43, 102, 16, 61, 123, 54, 0};
#define NIDS (int)(sizeof ids / sizeof ids[0])

static float style[256];

static void run(koe_ctx *c, koe_noise n, float **audio, int64_t *len) {
    koe_error err = {0};
    koe_synth_out out;
    int rc = koe_synthesize(c, ids, NIDS, style, 1.0f, n, NULL, NULL, &out, &err);
    KT_CHECK(rc == 0, "%s", err.msg);
    *len = rc ? 0 : out.n_samples;
    *audio = malloc((size_t)(*len ? *len : 1) * sizeof **audio);
    if (*len) memcpy(*audio, out.audio, (size_t)*len * sizeof **audio);
}

static void test_seeded_noise(void) {
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 1, &err);
    float *a, *b, *x;
    int64_t la, lb, lx;
    run(c, (koe_noise){KOE_NOISE_RANDOM, 7}, &a, &la);
    run(c, (koe_noise){KOE_NOISE_RANDOM, 7}, &b, &lb);
    run(c, (koe_noise){KOE_NOISE_RANDOM, 8}, &x, &lx);
    KT_CHECK(la > 0 && la == lb && !memcmp(a, b, (size_t)la * 4), "same seed, same audio");
    KT_CHECK(la == lx && memcmp(a, x, (size_t)la * 4), "another seed, other audio");
    double e = 0;
    for (int64_t i = 0; i < la; i++) e += (double)a[i] * a[i];
    KT_CHECK(e > 0 && isfinite(e), "audio is finite and not silent");
    free(a), free(b), free(x);
    koe_ctx_free(c);
}

typedef struct thread_run {
    koe_ctx *c;
    float *audio;
    int64_t len;
} thread_run;

static void *thread_main(void *arg) {
    thread_run *t = arg;
    run(t->c, (koe_noise){KOE_NOISE_TEST, 0}, &t->audio, &t->len);
    return NULL;
}

static void test_contexts_in_threads(void) {
    koe_error err = {0};
    thread_run t[2] = {{koe_ctx_new(model, 1, &err), 0, 0}, {koe_ctx_new(model, 2, &err), 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thread_main, &t[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    double diff = 0;
    for (int64_t i = 0; i < t[0].len && i < t[1].len; i++)
        diff = fmax(diff, fabs((double)t[0].audio[i] - t[1].audio[i]));
    KT_CHECK(t[0].len == t[1].len && t[0].len > 0 && diff < 1e-5,
             "two contexts (1 and 2 threads) on one model agree: max diff %g", diff);
    for (int i = 0; i < 2; i++) {
        free(t[i].audio);
        koe_ctx_free(t[i].c);
    }
}

static void test_bad_input_and_cancel(void) {
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 1, &err);
    koe_synth_out out;
    koe_noise n = {KOE_NOISE_TEST, 0};
    int32_t bad[] = {0, 5000, 0};
    KT_EXPECT(koe_synthesize(c, bad, 3, style, 1, n, NULL, NULL, &out, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_synthesize(c, ids, 2, style, 1, n, NULL, NULL, &out, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_synthesize(c, ids, NIDS, style, 0, n, NULL, NULL, &out, &err) == KOE_ERR_INVALID);
    volatile int cancel = 1;
    KT_EXPECT(koe_synthesize(c, ids, NIDS, style, 1, n, NULL, &cancel, &out, &err) ==
              KOE_ERR_CANCELLED);
    koe_ctx_free(c);
    KT_EXPECT(koe_model_load("/nonexistent.pth", config, &err) == NULL && err.msg[0]);
}

/* Cancellation arriving mid-run: the tap raises the flag when it sees a stage; the run must
 * stop with KOE_ERR_CANCELLED, and the context must then synthesize as before. */
typedef struct cancel_at {
    const char *stage;
    volatile int flag;
} cancel_at;

static void raise_at(void *user, const char *stage, const float *data, int ndim,
                     const int64_t *shape) {
    (void)data, (void)ndim, (void)shape;
    cancel_at *ca = user;
    if (!strcmp(stage, ca->stage)) ca->flag = 1;
}

static void test_cancel_mid_run(void) {
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 2, &err);
    KT_CHECK(c != NULL, "%s", err.msg);
    if (!c) return;
    float *before, *after;
    int64_t lb, la;
    koe_noise n = {KOE_NOISE_TEST, 0};
    run(c, n, &before, &lb);
    static const char *const stages[] = {"d_en",        "t_en",      "dec_encode",
                                         "dec_decode2", "gen_input", "har_spec"};
    for (int i = 0; i < 6; i++) {
        cancel_at ca = {stages[i], 0};
        koe_stage_tap tap = {raise_at, &ca};
        koe_synth_out out;
        memset(&err, 0, sizeof err);
        int rc = koe_synthesize(c, ids, NIDS, style, 1.0f, n, &tap, &ca.flag, &out, &err);
        KT_CHECK(ca.flag && rc == KOE_ERR_CANCELLED, "cancel at %s: rc %d (%s)", stages[i], rc,
                 err.msg);
    }
    run(c, n, &after, &la);
    KT_CHECK(la == lb && la > 0 && !memcmp(before, after, (size_t)la * sizeof *after),
             "after cancelled runs the context gives the same audio");
    free(before), free(after);
    koe_ctx_free(c);
}

static void test_config(void) {
    koe_error err = {0};
    koe_kokoro_config def, got;
    koe_kokoro_config_default(&def);
    char path[1100];
    snprintf(path, sizeof path, "%s/kokoro-config.json", kt_env("KOE_TEST_DATA", "tests/data"));
    /* the built-in defaults are the shipped full config */
    KT_CHECK(koe_kokoro_config_load(path, &got, &err) == 0, "%s: %s", path, err.msg);
    KT_CHECK(!memcmp(&def, &got, sizeof def), "the built-in config equals %s", path);
    KT_CHECK(koe_kokoro_config_load(config, &got, &err) == 0, "%s: %s", config, err.msg);
    KT_EXPECT(got.hidden_dim == 64 && got.plbert.hidden_size == 32 &&
              got.plbert.num_attention_heads == 2 && got.plbert.num_hidden_layers == 2 &&
              got.n_token == 178 && got.style_dim == 128);
    static const struct {
        const char *json, *names;
        koe_code code;
    } bad[] = {
        {"{\"hidden_dim\": \"512\"}", "hidden_dim", KOE_ERR_FORMAT},
        {"{\"max_dur\": 2.5}", "max_dur", KOE_ERR_FORMAT},
        {"{\"n_token\": -1}", "n_token", KOE_ERR_FORMAT},
        {"{\"style_dim\": 256}", "style_dim", KOE_ERR_FORMAT},
        {"{\"plbert\": {\"num_attention_heads\": 5}}", "num_attention_heads", KOE_ERR_FORMAT},
        {"{\"plbert\": 3}", "plbert", KOE_ERR_FORMAT},
        {"{\"istftnet\": {\"upsample_rates\": [8, 8]}}", "upsample_rates", KOE_ERR_UNSUPPORTED},
        {"{\"istftnet\": {\"resblock_dilation_sizes\": [[1,3,5],[1,3],[1,3,5]]}}",
         "resblock_dilation_sizes[1]", KOE_ERR_FORMAT},
        {"{\"istftnet\": {\"gen_istft_n_fft\": 16}}", "gen_istft_n_fft", KOE_ERR_UNSUPPORTED},
        /* beyond long long's range: refused before any conversion (was undefined behaviour) */
        {"{\"hidden_dim\": 2e34}", "hidden_dim", KOE_ERR_FORMAT},
        {"{\"istftnet\": {\"upsample_rates\": [1e300, 6]}}", "upsample_rates", KOE_ERR_FORMAT},
        {"{\"hidden_dim\": 512", "JSON", KOE_ERR_FORMAT},
        {"[]", "JSON", KOE_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = koe_kokoro_config_parse(bad[i].json, strlen(bad[i].json), &got, &err);
        KT_CHECK(rc == (int)bad[i].code && strstr(err.msg, bad[i].names), "%s -> %d \"%s\"",
                 bad[i].json, rc, err.msg);
    }
}

/* Every truncation of the shipped config, and every one-byte corruption of its first 2000 bytes,
 * parses to a clean result: 0, or an error with a message (ASan watches the rest). */
static void test_config_damaged(void) {
    char path[1100];
    snprintf(path, sizeof path, "%s/kokoro-config.json", kt_env("KOE_TEST_DATA", "tests/data"));
    size_t len = 0;
    char *text = kt_read_file(path, &len);
    KT_CHECK(text != NULL, "read %s", path);
    if (!text) return;
    int bad = 0, failed = 0;
    koe_kokoro_config c;
    for (size_t n = 0; n < len; n++) {
        koe_error err = {0};
        int rc = koe_kokoro_config_parse(text, n, &c, &err);
        failed += rc != 0;
        bad += rc != 0 && (rc != KOE_ERR_FORMAT || !err.msg[0]);
    }
    static const char junk[] = "\"{}[],:0-9e.x\\";
    for (size_t i = 0; i < len && i < 2000; i++) {
        char keep = text[i];
        text[i] = junk[i % (sizeof junk - 1)];
        koe_error err = {0};
        int rc = koe_kokoro_config_parse(text, len, &c, &err);
        bad += rc != 0 && !err.msg[0];
        text[i] = keep;
    }
    KT_CHECK(bad == 0 && failed > 0, "%d damaged configs without a clean error", bad);
    free(text);
}

/* The tiny weights with a config that disagrees with them: the load fails naming the field. */
static void test_config_disagrees(void) {
    size_t len = 0;
    char *text = kt_read_file(config, &len);
    KT_CHECK(text != NULL, "read %s", config);
    if (!text) return;
    static const char *const edits[][3] = {
        {"\"hidden_dim\": 64", "\"hidden_dim\": 96", "hidden_dim"},
        {"\"n_token\": 178", "\"n_token\": 177", "n_token"},
        {"\"hidden_size\": 32", "\"hidden_size\": 64", "plbert.hidden_size"},
        {"\"max_dur\": 50", "\"max_dur\": 40", "max_dur"},
        {"\"n_layer\": 3", "\"n_layer\": 2", "n_layer"},
        {"\"text_encoder_kernel_size\": 5", "\"text_encoder_kernel_size\": 3",
         "text_encoder_kernel_size"}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *at = strstr(text, edits[i][0]);
        KT_CHECK(at != NULL, "the tiny config has %s", edits[i][0]);
        if (!at) continue;
        char tmp[] = "/tmp/koe-test-config-XXXXXX";
        int fd = mkstemp(tmp);
        KT_CHECK(fd >= 0, "mkstemp");
        if (fd < 0) continue;
        FILE *f = fdopen(fd, "w");
        fprintf(f, "%.*s%s%s", (int)(at - text), text, edits[i][1], at + strlen(edits[i][0]));
        fclose(f);
        koe_error err = {0};
        koe_model *m = koe_model_load(weights, tmp, &err);
        KT_CHECK(m == NULL && strstr(err.msg, edits[i][2]), "%s: \"%s\"", edits[i][1], err.msg);
        koe_model_free(m);
        unlink(tmp);
    }
    free(text);
}

int main(void) {
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    snprintf(weights, sizeof weights, "%s/kokoro-tiny/kokoro-tiny-seed1.pth", td);
    snprintf(config, sizeof config, "%s/kokoro-tiny/kokoro-tiny-seed1.config.json", td);
    koe_error err = {0};
    model = koe_model_load(weights, config, &err);
    KT_CHECK(model != NULL, "load %s: %s", weights, err.msg);
    if (!model) return kt_finish();
    for (int i = 0; i < 256; i++) style[i] = 0.1f * sinf((float)i);
    kt_run("committed reference cases, stage by stage", test_committed_cases);
    kt_run("shared reference cases, stage by stage", test_shared_cases);
    kt_run("seeded noise replays", test_seeded_noise);
    kt_run("contexts in threads agree", test_contexts_in_threads);
    kt_run("bad input and cancellation", test_bad_input_and_cancel);
    kt_run("cancellation mid-run", test_cancel_mid_run);
    kt_run("config: defaults, tiny, bad fields", test_config);
    kt_run("config: damaged text", test_config_damaged);
    kt_run("config and weights disagree", test_config_disagrees);
    koe_model_free(model);
    return kt_finish();
}
