/* koe bench: how fast this machine speaks, through the same pipeline as the server (front end,
 * scheduler, engine, encoder), without HTTP: for a sentence and a paragraph (or TEXT), each run
 * read to its end as a client would, it prints the time to first audio, the total time, the
 * audio length and the real-time factor, as medians over the runs, in a table or as JSON.
 * Numbers, not a test. For HTTP-level figures under concurrent load: bench/bench_ttfa. */
#include "cli/commands.h"
#include "koe/audio.h"
#include "koe/base.h"
#include "koe/model.h"
#include "koe/pipeline.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const SENTENCE =
    "The quick brown fox jumps over the lazy dog, and then it rests in the shade of an old oak "
    "tree.";
static const char *const PARAGRAPH =
    "Every morning the harbour woke before the town did. The first boats slipped out while the "
    "streets were still grey, their engines low and patient, and the gulls followed them in long "
    "untidy lines. By the time the bakery opened its shutters, the water had turned from slate "
    "to silver, and the fishermen who had stayed behind were mending nets on the quay, talking "
    "about the weather as if it were an old friend who could not be trusted. Children walked to "
    "school along the sea wall, counting the boats and arguing about which one was fastest.";

static void usage(FILE *f) {
    fprintf(f,
            "usage: koe bench [--model FILE | --random-weights] [--config FILE]\n"
            "                 [--precision fp32|bf16|int8|auto] [--threads N] [--runs N]\n"
            "                 [--voice NAME] [--data-dir DIR] [--json] [TEXT]\n"
            "\n"
            "Times speech through the server's pipeline (no HTTP) on this machine: time to first\n"
            "audio, total time, audio seconds and real-time factor (medians of --runs, default\n"
            "3, after one warm-up), for a sentence and a paragraph, or for TEXT. The engine is\n"
            "Kokoro with --model (or --random-weights: the full-size random weights in the data\n"
            "folder, written by koe serve --random-weights or koe random-weights), else\n"
            "espeak-ng. --threads: most threads a segment may use (default: all cores).\n");
}

typedef struct run_result {
    double ttfa, total, audio;
} run_result;

/* One request read to its end; times from the pipeline's own clock. */
static int one_run(koe_pipeline *p, const char *text, const char *voice, run_result *r,
                   koe_error *err) {
    koe_speech_request req = {.text = text,
                              .len = strlen(text),
                              .voice = voice,
                              .speed = 1.0f,
                              .format = KOE_FORMAT_PCM,
                              .normalize = 1};
    koe_job *j = koe_pipeline_submit(p, &req, err);
    if (!j) return err->code ? err->code : KOE_ERR_INTERNAL;
    char buf[65536];
    ssize_t n;
    do n = koe_job_read(j, buf, sizeof buf, 1000, err);
    while (n > 0 || n == -2);
    koe_job_times t;
    koe_job_get_times(j, &t);
    koe_job_release(j);
    if (n < 0) return err->code ? err->code : KOE_ERR_INTERNAL;
    r->ttfa = t.first_bytes;
    r->total = t.total;
    r->audio = t.audio_seconds;
    return 0;
}

int koe_cmd_bench(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *voice = "af_heart", *precision = "auto";
    const char *data_dir = koe_cli_data_dir();
    int runs = 3, threads = 0, json = 0, random = 0;
    static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                       {"config", required_argument, 0, 'c'},
                                       {"random-weights", no_argument, 0, 'R'},
                                       {"precision", required_argument, 0, 'p'},
                                       {"threads", required_argument, 0, 't'},
                                       {"runs", required_argument, 0, 'n'},
                                       {"voice", required_argument, 0, 'v'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:c:Rp:t:n:v:d:jh", lo, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'm':
            model = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'R':
            random = 1;
            break;
        case 'p':
            precision = optarg;
            break;
        case 't':
            threads = (int)strtol(optarg, &end, 10);
            if (!*optarg || *end || threads < 1 || threads > 64) {
                fprintf(stderr, "koe bench: --threads wants 1 to 64 (got '%s')\n", optarg);
                return KOE_EXIT_USAGE;
            }
            break;
        case 'n':
            runs = (int)strtol(optarg, &end, 10);
            if (!*optarg || *end || runs < 1 || runs > 100) {
                fprintf(stderr, "koe bench: --runs wants 1 to 100 (got '%s')\n", optarg);
                return KOE_EXIT_USAGE;
            }
            break;
        case 'v':
            voice = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (argc - optind > 1 || (model && random)) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    koe_error err = {0};
    koe_precision prec;
    if (koe_cli_precision("bench", precision, &prec)) return KOE_EXIT_USAGE;
    char rw[4200];
    if (random) {
        struct stat st;
        snprintf(rw, sizeof rw, "%s/kokoro-random-v1_0.safetensors", data_dir);
        if (stat(rw, &st)) {
            fprintf(stderr,
                    "koe bench: no %s: write it with `koe random-weights --out %s` (or start "
                    "koe serve --random-weights once)\n",
                    rw, rw);
            return KOE_EXIT_FAIL;
        }
        model = rw;
    }
    const char *texts[2] = {SENTENCE, PARAGRAPH}, *names[2] = {"sentence", "paragraph"};
    int ntexts = 2;
    if (optind < argc) {
        texts[0] = argv[optind];
        names[0] = "text";
        ntexts = 1;
    }
    koe_audio_quiet_codec_logs();
    koe_pipeline_opts po = {.workers = 0,
                            .threads = threads,
                            .precision = (int)prec,
                            .data_dir = data_dir,
                            .model_path = model,
                            .config_path = config};
    double t0 = koe_now_s();
    koe_pipeline *p = koe_pipeline_new(&po, &err);
    if (!p) {
        fprintf(stderr, "koe bench: %s\n", err.msg);
        return KOE_EXIT_FAIL;
    }
    double load = koe_now_s() - t0;
    koe_pipeline_opts eff;
    koe_pipeline_get_opts(p, &eff);
    const char *engine = koe_pipeline_backend_name(p), *pr = koe_pipeline_precision(p);
    run_result warm;
    int rc = one_run(p, texts[0], voice, &warm, &err); /* warm-up: caches, scratch, threads */
    if (json)
        printf("{\"engine\":\"%s\",\"precision\":\"%s\",\"workers\":%d,\"threads\":%d,"
               "\"load_s\":%.3f,\"runs\":%d,\"results\":[",
               engine, pr ? pr : "none", eff.workers, eff.threads, load, runs);
    else
        printf("# koe bench: %s%s%s, %d workers, up to %d threads a segment, load %.2f s, "
               "medians of %d runs\n"
               "| text | chars | TTFA ms | total s | audio s | RTF |\n|---|---|---|---|---|---|\n",
               engine, pr ? " " : "", pr ? pr : "", eff.workers, eff.threads, load, runs);
    for (int k = 0; !rc && k < ntexts; k++) {
        double ttfa[100], total[100], rtf[100], audio = 0;
        for (int i = 0; !rc && i < runs; i++) {
            run_result r;
            rc = one_run(p, texts[k], voice, &r, &err);
            ttfa[i] = r.ttfa;
            total[i] = r.total;
            rtf[i] = r.audio > 0 ? r.total / r.audio : 0;
            audio = r.audio;
        }
        if (rc) break;
        double mt = koe_median(ttfa, (size_t)runs), mtot = koe_median(total, (size_t)runs),
               mr = koe_median(rtf, (size_t)runs);
        if (json)
            printf("%s{\"text\":\"%s\",\"chars\":%zu,\"ttfa_ms\":%.1f,\"total_s\":%.3f,"
                   "\"audio_s\":%.2f,\"rtf\":%.3f}",
                   k ? "," : "", names[k], strlen(texts[k]), mt * 1e3, mtot, audio, mr);
        else
            printf("| %s | %zu | %.0f | %.2f | %.2f | %.3f |\n", names[k], strlen(texts[k]),
                   mt * 1e3, mtot, audio, mr);
    }
    if (json) printf("]}\n");
    koe_pipeline_free(p);
    if (rc) {
        fprintf(stderr, "koe bench: %s\n", err.msg);
        return rc == KOE_ERR_INVALID || rc == KOE_ERR_NOT_FOUND ? KOE_EXIT_USAGE : KOE_EXIT_FAIL;
    }
    return KOE_EXIT_OK;
}
