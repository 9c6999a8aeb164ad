/* koe serve: flags and environment, backend choice, warm-up, signals, drain. */
#include "cli/commands.h"
#include "koe/audio.h"
#include "koe/base.h"
#include "koe/model.h"
#include "koe/pipeline.h"
#include "koe/server.h"
#include "koe/text.h"
#include "koe/voice.h"
#include "koe/weights.h"

#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* Where --random-weights without a file keeps its weights: written once, reused after. */
#define RANDOM_WEIGHTS_FILE "kokoro-random-v1_0.safetensors"

typedef struct flag {
    const char *name, *env, *def, *help;
} flag;

static const flag flags[] = {
    {"host", "KOE_HOST", "127.0.0.1", "IPv4 address to listen on (0.0.0.0 = all; localhost ok)"},
    {"port", "KOE_PORT", "8880", "TCP port (0 = any free port, printed at start)"},
    {"data-dir", "KOE_DATA_DIR", "data", "voices (voices/*.bin) and kokoro-v1_0.pth"},
    {"model", "KOE_MODEL", "",
     "Kokoro weights (.pth or .safetensors); unset: data-dir/kokoro-v1_0.pth if present"},
    {"config", "KOE_CONFIG", "", "Kokoro config.json; unset: the built-in Kokoro-82M config"},
    {"random-weights", "KOE_RANDOM_WEIGHTS", "",
     "[=FILE] run Kokoro on full-size random weights (benchmarks); FILE is written if missing "
     "(alone or =1: data-dir/" RANDOM_WEIGHTS_FILE ")"},
    {"workers", "KOE_WORKERS", "0", "inference workers (0 = number of cores)"},
    {"threads", "KOE_THREADS", "0",
     "most threads one segment uses (0 = cores): a first segment, or a lone request's, takes "
     "every free core; others one each"},
    {"max-queue", "KOE_MAX_QUEUE", "0",
     "requests waiting for a worker before 503 (0 = 4 x workers)"},
    {"max-body", "KOE_MAX_BODY", "2097152", "largest request body in bytes (413 above)"},
    {"max-input", "KOE_MAX_INPUT", "100000", "largest input in characters (413 above)"},
    {"timeout", "KOE_TIMEOUT", "30", "seconds an idle or stalled connection is kept"},
    {"max-connections", "KOE_MAX_CONNECTIONS", "256", "connections in total"},
    {"max-per-ip", "KOE_MAX_PER_IP", "64", "connections per client address"},
    {"api-key", "KOE_API_KEY", "", "require Authorization: Bearer KEY on the API"},
    {"ttfa-target", "KOE_TTFA_TARGET_MS", "150", "time-to-first-audio target in ms (/status)"},
    {"first-segment-max", "KOE_FIRST_SEGMENT_MAX", "32",
     "longest first segment in characters (time to first audio grows with it)"},
    {"normalize", "KOE_NORMALIZE", "1", "loudness-normalize output to -16 LUFS (0 = off)"},
    {"drain", "KOE_DRAIN_S", "30", "seconds SIGTERM waits for requests in flight"},
    {"warmup", "KOE_WARMUP", "1",
     "speak a sentence on every worker before /health answers 200 (0 = off)"},
    {"audio-cache-mb", "KOE_AUDIO_CACHE_MB", "16",
     "MiB of finished answers replayed for repeated identical requests (0 = off)"},
    {"phoneme-cache-mb", "KOE_PHONEME_CACHE_MB", "4",
     "MiB of phonemes remembered per (text, language) (0 = off)"},
    {"precision", "KOE_PRECISION", "auto",
     "Kokoro arithmetic: fp32, bf16, int8 or auto (int8 with AVX-512 VNNI, else bf16 with "
     "AVX-512 BF16, else fp32)"},
    {"first-segment-min", "KOE_FIRST_SEGMENT_MIN", "0",
     "the first clause end after this many characters ends the first segment"},
    {"segment-ramp", "KOE_SEGMENT_RAMP", "2",
     "segment k is at most first-segment-max x ramp^k characters (1 = whole sentences)"},
    {"lookahead", "KOE_LOOKAHEAD", "3", "segments per request synthesized ahead of the client"},
    {"max-active", "KOE_MAX_ACTIVE", "0",
     "requests synthesizing at once, others wait for their turn (0 = 2 x workers)"},
    {"optimize", "KOE_OPTIMIZE", "1",
     "retune the first-segment length from measured TTFA toward --ttfa-target (0 = off)"},
    {"express-workers", "KOE_EXPRESS_WORKERS", "1",
     "workers for first segments only, which pause running later segments to take every core "
     "(0 = none)"},
    {"later-threads", "KOE_LATER_THREADS", "0",
     "most cores a later segment may take (0 = all free ones for a lone stream, else 1); the "
     "optimizer moves it by measured parallel efficiency"},
};
#define NFLAGS (sizeof flags / sizeof flags[0])
enum { F_RANDOM = 5 }; /* the one flag whose value is optional */

static void usage(FILE *f) {
    fprintf(
        f, "usage: koe serve [options]\n\nThe speech server: POST /v1/audio/speech "
           "(OpenAI-compatible), "
           "GET /v1/audio/voices,\n/v1/models, /health, /status, /metrics, and a web page at /.\n\n"
           "Every option can also be set by its environment variable (the flag wins):\n\n");
    for (size_t i = 0; i < NFLAGS; i++)
        fprintf(f, "  --%-18s %-22s %s (default: %s)\n", flags[i].name, flags[i].env, flags[i].help,
                *flags[i].def ? flags[i].def : "none");
}

/* Written under a temporary name then renamed, so an interrupted run never leaves a partial
 * file that the next start would take for the cache. The extension stays (it picks the
 * format). */
static int write_random_weights(const char *path, const char *config, koe_error *err) {
    char tmp[4300];
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash)) dot = path + strlen(path);
    snprintf(tmp, sizeof tmp, "%.*s.partial-%ld%s", (int)(dot - path), path, (long)getpid(), dot);
    int rc = koe_weights_write_random(tmp, config, 1, err);
    if (!rc && rename(tmp, path)) {
        rc = koe_error_set(err, KOE_ERR_IO, "cannot rename %s to %s", tmp, path);
    }
    if (rc) unlink(tmp);
    return rc;
}

/* One short sentence per worker, all at once (an idle worker takes the next job, so each gets
 * one), read to the end. A failure is reported, not fatal: requests would show it too. */
static void warm_up(koe_pipeline *pipe) {
    koe_job *jobs[64];
    koe_pipeline_opts po;
    koe_pipeline_get_opts(pipe, &po);
    int n = po.workers + po.express_workers, got = 0;
    const struct koe_voices *v = koe_pipeline_voices(pipe);
    static const char text[] = "Warming up.";
    koe_speech_request r = {.text = text,
                            .len = sizeof text - 1,
                            .voice = v && koe_voices_count(v) ? koe_voices_name(v, 0) : "af_heart",
                            .speed = 1.0f,
                            .format = KOE_FORMAT_PCM};
    double t0 = koe_now_s();
    koe_error err = {0};
    while (got < n && got < 64 && (jobs[got] = koe_pipeline_submit(pipe, &r, &err))) got++;
    if (!got) fprintf(stderr, "koe: warm-up skipped: %s\n", err.msg);
    int failed = 0;
    for (int i = 0; i < got; i++) {
        char buf[16384];
        ssize_t k;
        do k = koe_job_read(jobs[i], buf, sizeof buf, 200, &err);
        while ((k > 0 || k == -2) && !stop_requested);
        if (k == -1 && !failed++) fprintf(stderr, "koe: warm-up failed: %s\n", err.msg);
        koe_job_release(jobs[i]);
    }
    if (got && !failed)
        fprintf(stderr, "koe: warm-up: %d worker%s + %d express in %.0f ms\n", po.workers,
                po.workers > 1 ? "s" : "", po.express_workers, (koe_now_s() - t0) * 1e3);
}

/* The pipeline's log lines (the optimizer's decisions): one JSON object a line, like requests'. */
static void log_line(void *user, const char *json_line) {
    (void)user;
    fprintf(stderr, "%s\n", json_line);
}

static int parse_int(const char *name, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "koe serve: --%s wants a number from %ld to %ld (got '%s')\n", name, lo, hi,
                v);
        return -1;
    }
    *out = x;
    return 0;
}

int koe_cmd_serve(int argc, char **argv) {
#ifdef __GLIBC__
    /* One malloc arena for the whole server, set before any thread starts. With glibc's default
     * (8 per core) every connection thread, which now also encodes, lands in an arena of its
     * own, and their fragments pile up: RSS grew 20-40 % over 10 s of mixed load with caches
     * off, and stayed flat with one arena (tests/test_load.sh). Inference allocates
     * per-layer buffers, not per-sample, so the shared lock costs nothing measurable
     * (docs/RELIABILITY.md). */
    mallopt(M_ARENA_MAX, 1);
#endif
    const char *val[NFLAGS];
    for (size_t i = 0; i < NFLAGS; i++) {
        const char *e = getenv(flags[i].env);
        val[i] = e ? e : flags[i].def;
    }
    struct option lo[NFLAGS + 2];
    for (size_t i = 0; i < NFLAGS; i++)
        lo[i] = (struct option){
            flags[i].name, i == F_RANDOM ? optional_argument : required_argument, 0, (int)i + 1000};
    lo[NFLAGS] = (struct option){"help", no_argument, 0, 'h'};
    lo[NFLAGS + 1] = (struct option){0, 0, 0, 0};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return KOE_EXIT_OK;
        }
        if (ch < 1000 || ch >= 1000 + (int)NFLAGS) {
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
        val[ch - 1000] = optarg;
        /* --random-weights alone means the cache file; "--random-weights FILE" (a separate
         * word that is not a flag) names one, as "--random-weights=FILE" does. */
        if (ch - 1000 == F_RANDOM && !optarg)
            val[F_RANDOM] = optind < argc && argv[optind][0] != '-' ? argv[optind++] : "1";
    }
    if (optind < argc) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    long port, workers, threads, max_queue, max_body, max_input, timeout, max_conn, max_ip, target,
        first_max, normalize, drain, warmup, audio_mb, phoneme_mb, first_min, lookahead, optimize,
        max_active, express, later_threads;
    if (parse_int("port", val[1], 0, 65535, &port) ||
        parse_int("workers", val[6], 0, 64, &workers) ||
        parse_int("threads", val[7], 0, 64, &threads) ||
        parse_int("max-queue", val[8], 0, 100000, &max_queue) ||
        parse_int("max-body", val[9], 1024, 1L << 30, &max_body) ||
        parse_int("max-input", val[10], 1, 10000000, &max_input) ||
        parse_int("timeout", val[11], 1, 3600, &timeout) ||
        parse_int("max-connections", val[12], 1, 100000, &max_conn) ||
        parse_int("max-per-ip", val[13], 1, 100000, &max_ip) ||
        parse_int("ttfa-target", val[15], 1, 100000, &target) ||
        parse_int("first-segment-max", val[16], 1, 100000, &first_max) ||
        parse_int("first-segment-min", val[23], 0, 100000, &first_min) ||
        parse_int("lookahead", val[25], 1, 64, &lookahead) ||
        parse_int("max-active", val[26], 0, 100000, &max_active) ||
        parse_int("optimize", val[27], 0, 1, &optimize) ||
        parse_int("express-workers", val[28], 0, 8, &express) ||
        parse_int("later-threads", val[29], 0, 64, &later_threads) ||
        parse_int("normalize", val[17], 0, 1, &normalize) ||
        parse_int("drain", val[18], 0, 3600, &drain) ||
        parse_int("warmup", val[19], 0, 1, &warmup) ||
        parse_int("audio-cache-mb", val[20], 0, 1 << 20, &audio_mb) ||
        parse_int("phoneme-cache-mb", val[21], 0, 1 << 20, &phoneme_mb))
        return KOE_EXIT_USAGE;
    char *rend = NULL;
    double ramp = strtod(val[24], &rend);
    if (!*val[24] || *rend || !(ramp >= 1 && ramp <= 8)) {
        fprintf(stderr, "koe serve: --segment-ramp wants a number from 1 to 8 (got '%s')\n",
                val[24]);
        return KOE_EXIT_USAGE;
    }
    koe_precision prec;
    koe_error perr = {0};
    if (koe_precision_parse(val[22], &prec, &perr)) {
        fprintf(stderr, "koe serve: --precision: %s\n", perr.msg);
        return KOE_EXIT_USAGE;
    }
    const char *data_dir = val[2], *model = *val[3] ? val[3] : NULL,
               *config = *val[4] ? val[4] : NULL,
               *random = *val[5] && strcmp(val[5], "0") ? val[5] : NULL;
    int requested = model != NULL;
    char found[4200], cache[4200];
    struct stat st;
    koe_error err = {0};
    if (random) {
        if (!strcmp(random, "1")) {
            snprintf(cache, sizeof cache, "%s/" RANDOM_WEIGHTS_FILE, data_dir);
            random = cache;
        }
        if (stat(random, &st)) {
            fprintf(stderr, "koe serve: writing full-size random weights to %s\n", random);
            if (write_random_weights(random, config, &err)) {
                fprintf(stderr, "koe serve: %s\n", err.msg);
                return KOE_EXIT_FAIL;
            }
        }
        model = random;
        requested = 1;
    } else if (!model) {
        snprintf(found, sizeof found, "%s/kokoro-v1_0.pth", data_dir);
        if (!stat(found, &st)) model = found;
    }
    koe_audio_quiet_codec_logs();
    koe_pipeline_opts po = {.workers = (int)workers,
                            .threads = (int)threads,
                            .max_queue = (int)max_queue,
                            .data_dir = data_dir,
                            .model_path = model,
                            .config_path = config,
                            .precision = (int)prec,
                            .lookahead = (int)lookahead,
                            .max_active = (int)max_active,
                            .express_workers = express ? (int)express : -1,
                            .later_threads = (int)later_threads,
                            .first_segment_max = (int)first_max,
                            .first_segment_min = (int)first_min,
                            .segment_ramp = ramp,
                            .optimize = (int)optimize,
                            .ttfa_target = (double)target / 1000.0,
                            .log = log_line};
    koe_pipeline *pipe = koe_pipeline_new(&po, &err);
    if (!pipe && model && !requested) {
        fprintf(stderr, "koe serve: found %s but cannot use it (%s); speaking with espeak-ng\n",
                model, err.msg);
        po.model_path = NULL;
        pipe = koe_pipeline_new(&po, &err);
    }
    if (!pipe) {
        fprintf(stderr, "koe serve: %s\n", err.msg);
        return KOE_EXIT_FAIL;
    }
    koe_server_opts so = {.host = val[0],
                          .port = (int)port,
                          .max_body = (size_t)max_body,
                          .max_input = (size_t)max_input,
                          .timeout_s = (int)timeout,
                          .max_connections = (int)max_conn,
                          .max_per_ip = (int)max_ip,
                          .api_key = *val[14] ? val[14] : NULL,
                          .ttfa_target_ms = (double)target,
                          .normalize = (int)normalize,
                          .audio_cache_bytes = (size_t)audio_mb << 20};
    koe_text_cache_set_capacity((size_t)phoneme_mb << 20);
    koe_server *srv = koe_server_start(&so, pipe, &err);
    if (!srv) {
        fprintf(stderr, "koe serve: %s\n", err.msg);
        koe_pipeline_free(pipe);
        return KOE_EXIT_FAIL;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int kokoro = koe_pipeline_backend(pipe) == KOE_BACKEND_KOKORO;
    fprintf(stderr, "koe: listening on http://%s:%d/ with %d workers; backend %s%s%s%s%s\n", val[0],
            koe_server_port(srv), koe_pipeline_workers(pipe), koe_pipeline_backend_name(pipe),
            kokoro ? " on " : "", kokoro ? model : "", kokoro ? ", precision " : "",
            kokoro ? koe_pipeline_precision(pipe) : "");
    if (!kokoro)
        fprintf(stderr,
                "koe: speaking with the espeak-ng voice. For Kokoro, put kokoro-v1_0.pth in "
                "%s/ (`koe download` fetches it) or pass --model FILE\n",
                data_dir);
    /* Warm-up: the phonemizer's dictionary, then a sentence through every worker (a Kokoro
     * context's scratch and threads), so the first request does not pay for them. */
    koe_text_warmup("en-us", &err);
    if (warmup) warm_up(pipe);
    koe_server_set_ready(srv, 1);
    fprintf(stderr, "koe: ready\n");
    fflush(stderr);
    while (!stop_requested) usleep(100000);
    fprintf(stderr, "koe: stopping; draining requests in flight (up to %lds)\n", drain);
    koe_server_set_ready(srv, 0);
    koe_server_stop(srv, (double)drain);
    koe_pipeline_free(pipe);
    fprintf(stderr, "koe: stopped\n");
    return KOE_EXIT_OK;
}
