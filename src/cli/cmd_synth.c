/* koe synth: text (argument or stdin) to an audio file through the same pipeline as the server:
 * the front end, Kokoro (with --model) or espeak-ng, loudness, the encoder chosen by the file's
 * extension. The file appears only when complete (written beside it, then renamed). */
#include "cli/commands.h"
#include "koe/audio.h"
#include "koe/model.h"
#include "koe/pipeline.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "koe/base.h"

static void usage(FILE *f) {
    fprintf(f, "usage: koe synth [--model FILE] [--config FILE] [--voice NAME] [--speed S]\n"
               "                 [--lang L] [--seed N] [--data-dir DIR]\n"
               "                 [--precision fp32|bf16|int8|auto] --out FILE [TEXT | -]\n"
               "\n"
               "Speaks TEXT (or standard input) into FILE; the format follows the extension (wav,\n"
               "mp3, opus, flac, aac, pcm). With --model the Kokoro engine speaks, otherwise\n"
               "espeak-ng. Voices: koe voices; blends like af_bella:0.7+af_sky:0.3.\n"
               "--precision: the engine's decoder and generator arithmetic; auto (the default,\n"
               "or KOE_PRECISION) is int8 on CPUs with AVX-512 VNNI, else bf16 on CPUs with\n"
               "AVX-512 BF16, else fp32.\n");
}

typedef struct sink {
    FILE *f;
} sink;

int koe_cmd_synth(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *voice = "af_heart", *lang = NULL, *out = NULL;
    const char *data_dir = koe_cli_data_dir();
    double speed = 1.0;
    unsigned long long seed = 0;
    static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                       {"config", required_argument, 0, 'c'},
                                       {"voice", required_argument, 0, 'v'},
                                       {"speed", required_argument, 0, 's'},
                                       {"lang", required_argument, 0, 'l'},
                                       {"seed", required_argument, 0, 'S'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {"out", required_argument, 0, 'o'},
                                       {"precision", required_argument, 0, 'p'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    optind = 1;
    koe_precision prec;
    int have_prec = 0;
    while ((ch = getopt_long(argc, argv, "m:c:v:s:l:S:d:o:p:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (koe_cli_precision("synth", optarg, &prec)) return KOE_EXIT_USAGE;
            have_prec = 1;
            break;
        case 'm':
            model = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'v':
            voice = optarg;
            break;
        case 'l':
            lang = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            if (koe_cli_speed("synth", optarg, &speed)) return KOE_EXIT_USAGE;
            break;
        case 'S':
            if (koe_cli_seed("synth", optarg, &seed)) return KOE_EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (!out || argc - optind > 1) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    koe_error err = {0};
    koe_format fmt;
    if (koe_format_from_path(out, &fmt, &err)) {
        fprintf(stderr, "koe synth: %s\n", err.msg);
        return KOE_EXIT_USAGE;
    }
    koe_buf text = {0};
    if (optind < argc && strcmp(argv[optind], "-")) {
        koe_buf_append_str(&text, argv[optind]);
    } else {
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) koe_buf_append(&text, chunk, n);
    }
    if (!text.len) {
        fprintf(stderr, "koe synth: no text to speak\n");
        koe_buf_free(&text);
        return KOE_EXIT_USAGE;
    }
    /* --precision, else KOE_PRECISION, else auto */
    if (!have_prec && koe_cli_precision_from_env("synth", &prec)) {
        koe_buf_free(&text);
        return KOE_EXIT_USAGE;
    }
    koe_audio_quiet_codec_logs();
    koe_pipeline_opts po = {.workers = 1,
                            .threads = 2,
                            .precision = (int)prec,
                            .data_dir = data_dir,
                            .model_path = model,
                            .config_path = config};
    koe_pipeline *p = koe_pipeline_new(&po, &err);
    if (!p) {
        fprintf(stderr, "koe synth: %s\n", err.msg);
        koe_buf_free(&text);
        return KOE_EXIT_FAIL;
    }
    koe_speech_request r = {.text = text.data,
                            .len = text.len,
                            .voice = voice,
                            .lang = lang,
                            .speed = (float)speed,
                            .format = fmt,
                            .normalize = 1,
                            .seed = seed};
    koe_job *job = koe_pipeline_submit(p, &r, &err);
    if (!job) {
        fprintf(stderr, "koe synth: %s\n", err.msg);
        koe_pipeline_free(p);
        koe_buf_free(&text);
        return KOE_EXIT_USAGE;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part%d", out, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = f ? 0 : KOE_EXIT_FAIL;
    if (!f) fprintf(stderr, "koe synth: cannot write %s: %s\n", tmp, strerror(errno));
    char buf[65536];
    for (ssize_t n; !rc;) {
        n = koe_job_read(job, buf, sizeof buf, 1000, &err);
        if (n == -2) continue;
        if (n == 0) break;
        if (n < 0) {
            fprintf(stderr, "koe synth: %s\n", err.msg);
            rc = KOE_EXIT_FAIL;
        } else if (fwrite(buf, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "koe synth: writing %s: %s\n", tmp, strerror(errno));
            rc = KOE_EXIT_FAIL;
        }
    }
    if (f && fclose(f) && !rc) {
        fprintf(stderr, "koe synth: writing %s: %s\n", tmp, strerror(errno));
        rc = KOE_EXIT_FAIL;
    }
    koe_job_times t;
    koe_job_get_times(job, &t);
    koe_job_release(job);
    const char *backend = koe_pipeline_backend_name(p);
    koe_pipeline_free(p);
    koe_buf_free(&text);
    if (!rc && rename(tmp, out)) {
        fprintf(stderr, "koe synth: cannot rename to %s: %s\n", out, strerror(errno));
        rc = KOE_EXIT_FAIL;
    }
    if (rc) {
        unlink(tmp); /* never leave a partial file behind */
        return rc;
    }
    fprintf(stderr, "koe synth: %s: %.2f s of audio in %.2f s (%s, real-time factor %.3f)\n", out,
            t.audio_seconds, t.total, backend, t.audio_seconds > 0 ? t.total / t.audio_seconds : 0);
    return KOE_EXIT_OK;
}
