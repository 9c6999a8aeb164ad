/* bench_chunked: the chunked vocoder experiment (koe_synthesize_chunked) against the exact
 * whole-segment synthesis (koe_synthesize), measured in the same run.
 *
 * For full-size random weights (fp32 by default) and a short first-segment-like input and a longer
 * one, and for each chunking (W, L, growth): time to the first window against the time of the
 * exact segment (the engine-side TTFA gain; both include the text side, which the chunking does
 * not shorten), the total time and its overhead over exact, the playback stall a real-time player
 * started at the first window would suffer (the sum of the gaps while it waits for later windows),
 * and the deviation of the concatenated windows from the exact output: max abs difference, SNR,
 * log-spectral distance (koe_audio_compare; definitions in docs/PERFORMANCE.md), for the whole
 * segment and for the first window alone. Timings: median of RUNS, the exact and chunked runs
 * interleaved so the machine's load falls on all alike; deviations: deterministic (same seed).
 *
 * Then the same chunkings on the reference vectors' inputs (the tiny weights, test noise):
 * deviation from the exact output, next to the official code's own float32-vs-float64
 * end-to-end SNR from each case's meta.json, for scale.
 *
 *   bench_chunked [RUNS] [WEIGHTS] [--tokens LIST] [--threads N] [--precision P]
 *                 [--chunks W:L[:G],...] [--vectors DIR] [--no-full] [--no-vectors]
 *     RUNS default 5; WEIGHTS: full-size random weights (written to /tmp when not given);
 *     tokens default 20,100; threads default 2; chunks default
 *     10:0:2,10:5:2,10:10:2,20:10:2,20:20:2,40:20:2,10:10:16,20:10:16; vectors default
 *     $KOE_SHARED_VECTORS/kokoro-tiny or ../shared/vectors/kokoro-tiny. */
#include "koe/audio.h"
#include "koe/base.h"
#include "koe/model.h"
#include "koe/weights.h"

#include "common.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXC   16
#define MAXR   50
#define MAXWIN 4096
#define SPF    600 /* samples per frame */
#define RATE   24000.0

typedef struct chunking {
    koe_chunk_opts o;
} chunking;

/* Arrival times and sizes of one chunked call's windows. */
typedef struct arrivals {
    int n;
    long work;        /* frames the prefix runs went over, in all */
    int first_prefix; /* frames of the first window's run */
    double t[MAXWIN];
    int64_t offset[MAXWIN], samples[MAXWIN];
} arrivals;

static int on_window(void *user, const koe_chunk *ch) {
    arrivals *a = user;
    if (a->n < MAXWIN) {
        a->t[a->n] = ch->seconds;
        a->offset[a->n] = ch->offset;
        a->samples[a->n] = ch->n_samples;
    }
    a->work += ch->prefix_frames;
    if (a->n == 0) a->first_prefix = ch->prefix_frames;
    a->n++;
    return 0;
}

/* A player that starts at the first window's arrival and plays in real time: the total time it
 * waits for windows that arrive after it reached them. */
static double stall_seconds(const arrivals *a) {
    double clock = a->t[0], stall = 0; /* clock: when the player reaches the next window */
    for (int k = 0; k < a->n && k < MAXWIN; k++) {
        if (a->t[k] > clock) {
            stall += a->t[k] - clock;
            clock = a->t[k];
        }
        clock += (double)a->samples[k] / RATE;
    }
    return stall;
}

static int parse_chunks(const char *s, chunking *c, int max) {
    int n = 0;
    while (*s && n < max) {
        int w = 0, l = 0, g = 1, used = 0;
        int got = sscanf(s, "%d:%d%n", &w, &l, &used);
        if (got != 2 || w < 1 || l < 0) return -1;
        s += used;
        if (*s == ':') {
            if (sscanf(s, ":%d%n", &g, &used) != 1 || g < 1 || g > 16) return -1;
            s += used;
        }
        c[n++].o = (koe_chunk_opts){.window = w, .lookahead = l, .growth = g};
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

static void chunk_name(const koe_chunk_opts *o, char *buf, size_t n) {
    if (o->growth > 1)
        snprintf(buf, n, "W=%d L=%d ×%d", o->window, o->lookahead, o->growth);
    else
        snprintf(buf, n, "W=%d L=%d", o->window, o->lookahead);
}

static void fmt_snr(double snr, char *buf, size_t n) {
    if (isinf(snr))
        snprintf(buf, n, "exact");
    else
        snprintf(buf, n, "%.1f", snr);
}

/* Full-size weights: one input length, every chunking. */
static int bench_full(koe_ctx *c, int tokens, const chunking *ch, int nc, int runs) {
    int T = tokens + 2;
    int32_t ids[KOE_MODEL_MAX_TOKENS];
    uint32_t x = 12345;
    ids[0] = ids[T - 1] = 0;
    for (int i = 1; i < T - 1; i++) {
        x = x * 1103515245u + 12345u;
        ids[i] = 1 + (int)((x >> 16) % 177);
    }
    float style[256];
    for (int i = 0; i < 256; i++) style[i] = 0.2f * (float)((i * 37) % 11 - 5) / 5.0f;
    koe_noise noise = {KOE_NOISE_RANDOM, 1};
    koe_error err = {0};
    koe_synth_out out;
    /* warm-up and the exact reference */
    if (koe_synthesize(c, ids, T, style, 1.0f, noise, NULL, NULL, &out, &err)) {
        fprintf(stderr, "bench_chunked: %s\n", err.msg);
        return 1;
    }
    int64_t n = out.n_samples;
    int F = out.frames;
    float *ref = malloc((size_t)n * sizeof *ref);
    memcpy(ref, out.audio, (size_t)n * sizeof *ref);
    static double t_exact[MAXR], t_text[MAXR], t_first[MAXC][MAXR], t_total[MAXC][MAXR],
        stall[MAXC][MAXR];
    koe_audio_deviation dev[MAXC], dev1[MAXC];
    int windows[MAXC];
    double work[MAXC], first_work[MAXC];
    static arrivals a;
    for (int k = 0; k < nc; k++) { /* deviation (deterministic) and warm-up */
        a.n = 0;
        a.work = 0;
        a.first_prefix = 0;
        if (koe_synthesize_chunked(c, ids, T, style, 1.0f, noise, &ch[k].o, on_window, &a, NULL,
                                   NULL, &out, &err)) {
            fprintf(stderr, "bench_chunked: %s\n", err.msg);
            free(ref);
            return 1;
        }
        work[k] = (double)a.work / F;
        first_work[k] = (double)a.first_prefix / F;
        koe_audio_compare(ref, out.audio, n, &dev[k]);
        koe_audio_compare(ref, out.audio, a.samples[0], &dev1[k]);
        windows[k] = a.n;
    }
    for (int r = 0; r < runs; r++) {
        double t0 = koe_now_s();
        koe_synthesize(c, ids, T, style, 1.0f, noise, NULL, NULL, &out, &err);
        t_exact[r] = koe_now_s() - t0;
        t_text[r] = out.text_seconds;
        for (int k = 0; k < nc; k++) {
            a.n = 0;
            t0 = koe_now_s();
            koe_synthesize_chunked(c, ids, T, style, 1.0f, noise, &ch[k].o, on_window, &a, NULL,
                                   NULL, &out, &err);
            t_total[k][r] = koe_now_s() - t0;
            t_first[k][r] = a.t[0];
            stall[k][r] = stall_seconds(&a);
        }
    }
    double ex = bench_median(t_exact, runs), tx = bench_median(t_text, runs);
    printf("\n%d tokens: F = %d frames, %.2f s of audio; exact %.3f s (text side %.3f s), median "
           "of %d\n\n",
           tokens, F, (double)n / RATE, ex, tx, runs);
    printf("| chunking | windows | 1st run frames / F | all runs' frames / F | first window s | "
           "TTFA gain s | first / exact | total s | "
           "overhead | stall s | max abs | SNR dB | LSD dB | 1st window SNR dB | 1st window LSD "
           "dB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < nc; k++) {
        char name[48], s1[16], s2[16];
        chunk_name(&ch[k].o, name, sizeof name);
        double fw = bench_median(t_first[k], runs), tt = bench_median(t_total[k], runs),
               st = bench_median(stall[k], runs);
        fmt_snr(dev[k].snr_db, s1, sizeof s1);
        fmt_snr(dev1[k].snr_db, s2, sizeof s2);
        printf("| %s | %d | %.2f | %.2f | %.3f | %.3f | %.2f | %.3f | %+.0f%% | %.3f | %.3g | %s | "
               "%.2f | %s | "
               "%.2f |\n",
               name, windows[k], first_work[k], work[k], fw, ex - fw, fw / ex, tt,
               100.0 * (tt / ex - 1), st, dev[k].max_abs, s1, dev[k].lsd_db, s2, dev1[k].lsd_db);
        fflush(stdout);
    }
    free(ref);
    return 0;
}

/* A reference case's inputs; the official float32-vs-float64 end-to-end audio SNR when known. */
static int load_case(const char *dir, int32_t *ids, int *T, float *style, float *speed,
                     double *f32_snr) {
    char path[4200];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/input_ids.i64", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int64_t v[KOE_MODEL_MAX_TOKENS];
    len = fread(v, 8, KOE_MODEL_MAX_TOKENS, f);
    fclose(f);
    if (len < 3) return -1;
    *T = (int)len;
    for (size_t i = 0; i < len; i++) ids[i] = (int32_t)v[i];
    snprintf(path, sizeof path, "%s/ref_s.f32", dir);
    f = fopen(path, "rb");
    if (!f) return -1;
    len = fread(style, 4, 256, f);
    fclose(f);
    if (len != 256) return -1;
    *speed = 1.0f;
    *f32_snr = NAN;
    snprintf(path, sizeof path, "%s/meta.json", dir);
    f = fopen(path, "rb");
    if (!f) return 0;
    static char text[1 << 20];
    len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    cJSON *m = cJSON_Parse(text);
    cJSON *sp = cJSON_GetObjectItem(m, "speed");
    if (cJSON_IsNumber(sp)) *speed = (float)sp->valuedouble;
    cJSON *snr = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(m, "f32_vs_f64"), "audio"), "snr_db_end_to_end");
    if (cJSON_IsNumber(snr)) *f32_snr = snr->valuedouble;
    cJSON_Delete(m);
    return 0;
}

static int bench_vectors(const char *root, const chunking *ch, int nc, int threads) {
    char path[4096];
    snprintf(path, sizeof path, "%s/kokoro-tiny-seed1.pth", root);
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "%s/kokoro-tiny-seed1.config.json", root);
    koe_error err = {0};
    koe_model *m = koe_model_load(path, cfg, &err);
    if (!m) {
        fprintf(stderr, "bench_chunked: %s\n", err.msg);
        return 1;
    }
    koe_ctx *c = koe_ctx_new(m, threads, &err);
    DIR *d = opendir(root);
    if (!c || !d) {
        fprintf(stderr, "bench_chunked: %s\n", c ? root : err.msg);
        koe_ctx_free(c);
        koe_model_free(m);
        if (d) closedir(d);
        return 1;
    }
    char names[16][256];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 16)
        if (!strncmp(e->d_name, "case", 4)) snprintf(names[nn++], 256, "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)nn, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    printf("\nReference vectors (%s, tiny weights, test noise): deviation of the chunked output "
           "from the exact one\n\n",
           root);
    printf("| case | F | official f32 vs f64 SNR dB | chunking | windows | max abs | SNR dB | LSD "
           "dB | 1st window SNR dB | 1st window LSD dB "
           "|\n|---|---|---|---|---|---|---|---|---|---|\n");
    koe_noise noise = {KOE_NOISE_TEST, 0};
    for (int i = 0; i < nn; i++) {
        if (snprintf(path, sizeof path, "%s/%s", root, names[i]) >= (int)sizeof path) continue;
        int32_t ids[KOE_MODEL_MAX_TOKENS];
        int T;
        float style[256], speed;
        double f32snr;
        koe_synth_out out;
        if (load_case(path, ids, &T, style, &speed, &f32snr) ||
            koe_synthesize(c, ids, T, style, speed, noise, NULL, NULL, &out, &err)) {
            fprintf(stderr, "bench_chunked: %s: %s\n", names[i], err.msg);
            continue;
        }
        int64_t n = out.n_samples;
        float *ref = malloc((size_t)n * sizeof *ref);
        memcpy(ref, out.audio, (size_t)n * sizeof *ref);
        for (int k = 0; k < nc; k++) {
            static arrivals a;
            a.n = 0;
            if (koe_synthesize_chunked(c, ids, T, style, speed, noise, &ch[k].o, on_window, &a,
                                       NULL, NULL, &out, &err)) {
                fprintf(stderr, "bench_chunked: %s\n", err.msg);
                break;
            }
            koe_audio_deviation dv, d1;
            koe_audio_compare(ref, out.audio, n, &dv);
            koe_audio_compare(ref, out.audio, a.samples[0], &d1);
            char name[48], s1[16], s2[16];
            chunk_name(&ch[k].o, name, sizeof name);
            fmt_snr(dv.snr_db, s1, sizeof s1);
            fmt_snr(d1.snr_db, s2, sizeof s2);
            printf("| %s | %d | %.1f | %s | %d | %.3g | %s | %.2f | %s | %.2f |\n", names[i],
                   out.frames, f32snr, name, a.n, dv.max_abs, s1, dv.lsd_db, s2, d1.lsd_db);
            fflush(stdout);
        }
        free(ref);
    }
    koe_ctx_free(c);
    koe_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    int runs = 5, threads = 2, n_tok = 2, tokens[8] = {20, 100}, full = 1, vectors = 1;
    const char *weights = NULL, *vdir = NULL, *prec_name = "fp32";
    chunking ch[MAXC];
    int nc =
        parse_chunks("10:0:2,10:5:2,10:10:2,20:10:2,20:20:2,40:20:2,10:10:16,20:10:16", ch, MAXC);
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            if ((n_tok = bench_parse_list(argv[++i], tokens, 8, 1, 510)) < 1)
                return fprintf(stderr, "bench_chunked: bad --tokens\n"), 2;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            prec_name = argv[++i];
        } else if (!strcmp(argv[i], "--chunks") && i + 1 < argc) {
            if ((nc = parse_chunks(argv[++i], ch, MAXC)) < 1)
                return fprintf(stderr, "bench_chunked: bad --chunks (W:L[:G],...)\n"), 2;
        } else if (!strcmp(argv[i], "--vectors") && i + 1 < argc) {
            vdir = argv[++i];
        } else if (!strcmp(argv[i], "--no-full")) {
            full = 0;
        } else if (!strcmp(argv[i], "--no-vectors")) {
            vectors = 0;
        } else if (positional == 0 && argv[i][0] != '-') {
            runs = atoi(argv[i]);
            positional++;
        } else if (positional == 1 && argv[i][0] != '-') {
            weights = argv[i];
            positional++;
        } else {
            fprintf(stderr, "bench_chunked: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAXR) runs = 5;
    if (threads < 1 || threads > 64) threads = 2;
    koe_error err = {0};
    koe_precision prec;
    if (koe_precision_parse(prec_name, &prec, &err)) {
        fprintf(stderr, "bench_chunked: %s\n", err.msg);
        return 2;
    }
    printf("# bench_chunked: %d runs, %d threads, chunkings W:L[:growth] in frames (40 per "
           "second)\n",
           runs, threads);
    if (full) {
        char path[256];
        if (weights) {
            snprintf(path, sizeof path, "%s", weights);
        } else {
            snprintf(path, sizeof path, "/tmp/koe-bench-chunked-%d.safetensors", (int)getpid());
            if (koe_weights_write_random(path, NULL, 1, &err)) {
                fprintf(stderr, "bench_chunked: %s\n", err.msg);
                return 1;
            }
        }
        koe_model_options o = {.precision = prec};
        koe_model *m = koe_model_load_ex(path, &o, &err);
        if (!weights) unlink(path);
        if (!m) {
            fprintf(stderr, "bench_chunked: %s\n", err.msg);
            return 1;
        }
        printf("# full-size random weights (%s), precision %s\n",
               weights ? weights : "written here", koe_precision_name(koe_model_precision(m)));
        koe_ctx *c = koe_ctx_new(m, threads, &err);
        int rc = !c;
        for (int i = 0; !rc && i < n_tok; i++) rc = bench_full(c, tokens[i], ch, nc, runs);
        koe_ctx_free(c);
        koe_model_free(m);
        if (rc) return 1;
    }
    if (vectors) {
        char root[1024];
        if (vdir)
            snprintf(root, sizeof root, "%s", vdir);
        else {
            const char *sv = getenv("KOE_SHARED_VECTORS");
            snprintf(root, sizeof root, "%s/kokoro-tiny", sv ? sv : "../shared/vectors");
        }
        if (bench_vectors(root, ch, nc, threads)) return 1;
    }
    return 0;
}
