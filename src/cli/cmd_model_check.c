/* koe model-check: one reference case through the engine; one JSON object on stdout with every
 * stage's errors; exit 0 only if every stage is within tolerance. With --runs, also the median
 * time of N forward passes after a warm-up. */
#include "cli/commands.h"
#include "koe/base.h"
#include "koe/model.h"
#include "model/check.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: koe model-check --weights FILE [--config FILE] --case DIR [--runs N] "
            "[--threads K]\n"
            "                       [--precision fp32|bf16|int8|auto]\n"
            "\n"
            "Runs a reference case (a folder laid out like ../shared/vectors/kokoro-tiny/case*)\n"
            "through the engine in its deterministic noise mode and prints one JSON object with\n"
            "each stage's max absolute and relative error and the duration mismatches. Exit 0\n"
            "only if every stage is within tolerance. --runs N adds the median seconds of N\n"
            "forward passes (after one warm-up) with K threads. --precision (default fp32)\n"
            "runs the decoder and generator in that precision, checked against the\n"
            "reference with that precision's tolerances (see docs/PERFORMANCE.md).\n");
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static cJSON *num(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

int koe_cmd_model_check(int argc, char **argv) {
    const char *weights = NULL, *config = NULL, *dir = NULL;
    long runs = 0, threads = 1;
    koe_precision prec = KOE_PRECISION_FP32;
    static const struct option lo[] = {
        {"weights", required_argument, 0, 'w'}, {"config", required_argument, 0, 'c'},
        {"case", required_argument, 0, 'k'},    {"runs", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'}, {"precision", required_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "w:c:k:r:t:p:h", lo, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'p':
            if (koe_cli_precision("model-check", optarg, &prec)) return KOE_EXIT_USAGE;
            break;
        case 'w':
            weights = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'k':
            dir = optarg;
            break;
        case 'r':
            runs = strtol(optarg, &end, 10);
            if (*end || runs < 1 || runs > 1000) {
                fprintf(stderr, "koe model-check: --runs wants 1..1000\n");
                return KOE_EXIT_USAGE;
            }
            break;
        case 't':
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 64) {
                fprintf(stderr, "koe model-check: --threads wants 1..64\n");
                return KOE_EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (!weights || !dir || optind < argc) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    koe_error err = {0};
    double t0 = koe_now_s();
    koe_model_options mo = {.config_path = config, .precision = prec};
    koe_model *m = koe_model_load_ex(weights, &mo, &err);
    double load_s = koe_now_s() - t0;
    if (!m) {
        fprintf(stderr, "koe model-check: %s\n", err.msg);
        return KOE_EXIT_FAIL;
    }
    koe_ctx *c = koe_ctx_new(m, (int)threads, &err);
    koe_check_report rep;
    int rc = c ? koe_model_check_case(c, dir, &rep, &err) : KOE_ERR_NOMEM;
    if (rc) {
        fprintf(stderr, "koe model-check: %s\n", err.msg);
        koe_ctx_free(c);
        koe_model_free(m);
        return rc == KOE_ERR_IO || rc == KOE_ERR_FORMAT ? KOE_EXIT_USAGE : KOE_EXIT_FAIL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "case", dir);
    cJSON_AddStringToObject(root, "precision", koe_precision_name(koe_model_precision(m)));
    cJSON_AddBoolToObject(root, "pass", rep.pass);
    if (!rep.pass) cJSON_AddStringToObject(root, "first_failure", rep.first_failure);
    cJSON_AddNumberToObject(root, "tokens", rep.tokens);
    cJSON_AddNumberToObject(root, "frames", rep.frames_got);
    cJSON_AddNumberToObject(root, "frames_reference", rep.frames_ref);
    cJSON_AddNumberToObject(root, "duration_mismatches", rep.dur_mismatches);
    cJSON_AddNumberToObject(root, "load_s", load_s);
    cJSON *stages = cJSON_AddObjectToObject(root, "stages");
    for (int i = 0; i < rep.n; i++) {
        const koe_check_stage *s = &rep.stage[i];
        if (!s->compared) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "max_abs", num(s->max_abs));
        cJSON_AddItemToObject(o, "max_rel", num(s->max_rel));
        cJSON_AddNumberToObject(o, "tolerance", s->tol);
        cJSON_AddBoolToObject(o, "pass", s->pass);
        if (s->info_only) cJSON_AddBoolToObject(o, "information_only", 1);
        if (s->note[0]) cJSON_AddStringToObject(o, "note", s->note);
        cJSON_AddItemToObject(stages, s->name, o);
    }
    if (runs > 0) {
        /* Time the forward pass itself: ids and style from the case, deterministic noise. */
        double *t = malloc((size_t)runs * sizeof *t);
        char path[4096];
        snprintf(path, sizeof path, "%s/input_ids.i64", dir);
        FILE *f = fopen(path, "rb");
        int64_t ids64[KOE_MODEL_MAX_TOKENS];
        int32_t ids[KOE_MODEL_MAX_TOKENS];
        size_t n = f ? fread(ids64, 8, KOE_MODEL_MAX_TOKENS, f) : 0;
        if (f) fclose(f);
        float ref_s[256] = {0};
        snprintf(path, sizeof path, "%s/ref_s.f32", dir);
        f = fopen(path, "rb");
        if (f) {
            if (fread(ref_s, 4, 256, f) != 256) n = 0;
            fclose(f);
        }
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)ids64[i];
        koe_synth_out out;
        koe_noise noise = {KOE_NOISE_TEST, 0};
        int ok = t && n >= 3 &&
                 !koe_synthesize(c, ids, (int)n, ref_s, 1.0f, noise, NULL, NULL, &out, &err);
        for (long r = 0; ok && r < runs; r++) {
            double a = koe_now_s();
            ok = !koe_synthesize(c, ids, (int)n, ref_s, 1.0f, noise, NULL, NULL, &out, &err);
            t[r] = koe_now_s() - a;
        }
        if (ok) {
            qsort(t, (size_t)runs, sizeof *t, cmp);
            cJSON_AddNumberToObject(root, "median_s", t[runs / 2]);
            cJSON_AddNumberToObject(root, "runs", (double)runs);
            cJSON_AddNumberToObject(root, "threads", (double)threads);
            cJSON_AddNumberToObject(root, "audio_s", (double)out.n_samples / KOE_MODEL_SAMPLE_RATE);
        } else {
            cJSON_AddStringToObject(root, "timing_error", err.msg[0] ? err.msg : "no input");
        }
        free(t);
    }
    char *text = cJSON_Print(root);
    puts(text);
    free(text);
    cJSON_Delete(root);
    koe_ctx_free(c);
    koe_model_free(m);
    return rep.pass ? KOE_EXIT_OK : KOE_EXIT_FAIL;
}
