/* koe say: text (argument, --file or stdin) spoken to a file, to a sound device or to a pipe.
 *
 * The pipeline always delivers raw s16le at 24 kHz (already loudness-normalized); this command
 * encodes it itself. That keeps one path for the three destinations (a player wants raw samples
 * anyway) and gives the exact audio duration at every moment for the progress line, whatever the
 * output format. A file appears only when complete: the audio goes to a hidden temporary file
 * beside it, renamed over the target at the end; an error, SIGINT or SIGTERM removes it. */
#define _GNU_SOURCE
#include "cli/commands.h"
#include "koe/audio.h"
#include "koe/base.h"
#include "koe/model.h"
#include "koe/pipeline.h"
#include "koe/text.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void usage(FILE *f) {
    fprintf(
        f, "usage: koe say [-v VOICE] [-s SPEED] [-l LANG] [-o FILE] [--format FMT] [--file PATH]\n"
           "               [--model FILE] [--config FILE] [--data-dir DIR] [TEXT | -]\n"
           "\n"
           "Speaks TEXT (or the file given with --file, or standard input).\n"
           "  -o FILE     write FILE; the format follows the extension (wav, mp3, opus, flac,\n"
           "              aac, pcm). The file appears only when complete. -o - is stdout.\n"
           "  no -o       on a terminal: play through the default sound device (aplay, paplay or\n"
           "              ffplay; KOE_PLAYER=\"command\" names another player reading raw s16le\n"
           "              24 kHz mono on its stdin); otherwise write the audio to standard\n"
           "              output (--format, default wav).\n"
           "  -v VOICE    a voice (koe voices) or a blend like af_bella:0.7+af_sky:0.3\n"
           "  -s SPEED    0.25 to 4 (default 1)\n"
           "  -l LANG     language (default: from the voice)\n"
           "With --model the Kokoro engine speaks, otherwise espeak-ng. A progress line is shown\n"
           "on stderr when it is a terminal. Exit: 0 done, 1 failure, 2 bad usage or input,\n"
           "130 interrupted.\n");
}

/* ------------------------------------------------------------------ signals */

static volatile sig_atomic_t g_signal;

static void on_signal(int sig) {
    g_signal = sig;
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocked read or write returns EINTR, so the flag is seen at once. */
    sigaction(SIGINT, NULL, old_int);
    sigaction(SIGTERM, NULL, old_term);
    /* A signal the caller chose to ignore (nohup, a background job) stays ignored. */
    if (old_int->sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    if (old_term->sa_handler != SIG_IGN) sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------------ destinations */

typedef enum { DEST_FILE, DEST_STDOUT, DEST_PLAYER } dest_kind;

typedef struct dest {
    dest_kind kind;
    int fd;         /* where encoded bytes go */
    char tmp[4096]; /* DEST_FILE: the temporary file */
    pid_t player;   /* DEST_PLAYER */
    char player_name[64];
    off_t start;            /* offset where the stream began (for patching a wav header) */
    int write_failed;       /* errno of the first failed write */
    uint64_t written;       /* bytes written */
    unsigned char head[64]; /* the first bytes written (a header to patch at the end) */
    size_t head_len;
} dest;

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR && !g_signal) continue;
            return errno ? errno : EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int on_encoded(void *user, const void *data, size_t n) {
    dest *d = user;
    if (d->write_failed) return 1;
    if (d->head_len < sizeof d->head) {
        size_t k = n < sizeof d->head - d->head_len ? n : sizeof d->head - d->head_len;
        memcpy(d->head + d->head_len, data, k);
        d->head_len += k;
    }
    d->write_failed = write_all(d->fd, data, n);
    if (!d->write_failed) d->written += n;
    return d->write_failed != 0;
}

/* Whether the stream's header can be rewritten in place: a regular file (not O_APPEND, where
 * pwrite appends) that holds exactly the bytes written since d->start, whose first bytes (kept in
 * d->head: stdout may be write-only) are there. */
static int header_rewritable(const dest *d, size_t need) {
    struct stat st;
    int fl = fcntl(d->fd, F_GETFL);
    if (d->start < 0 || d->head_len < need || fl < 0 || (fl & O_APPEND) || fstat(d->fd, &st) ||
        !S_ISREG(st.st_mode))
        return 0;
    return lseek(d->fd, 0, SEEK_CUR) == d->start + (off_t)d->written;
}

/* A stream of unknown length gets 0xFFFFFFFF sizes in its wav header; where the output can be
 * rewritten (a file), put the real sizes in so every reader sees the exact duration. */
static void patch_wav_sizes(dest *d, uint64_t data_bytes) {
    const unsigned char *h = d->head;
    if (data_bytes > 0xFFFFFFFFull - 36 || !header_rewritable(d, 44)) return;
    if (memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4) || memcmp(h + 36, "data", 4)) return;
    unsigned char le[4];
    uint32_t riff = (uint32_t)(data_bytes + 36), data = (uint32_t)data_bytes;
    for (int i = 0; i < 4; i++) le[i] = (unsigned char)(riff >> (8 * i));
    if (pwrite(d->fd, le, 4, d->start + 4) != 4) return;
    for (int i = 0; i < 4; i++) le[i] = (unsigned char)(data >> (8 * i));
    if (pwrite(d->fd, le, 4, d->start + 40) != 4) return;
}

/* The same for FLAC: a stream encoder cannot seek back, so STREAMINFO says "total samples
 * unknown" (0) and readers cannot tell the duration; put the count in (36 bits: the low nibble of
 * byte 21 and bytes 22..25 of the file). */
static void patch_flac_total(dest *d, uint64_t samples) {
    unsigned char h[26];
    if (samples >> 36 || !header_rewritable(d, sizeof h)) return;
    memcpy(h, d->head, sizeof h);
    if (memcmp(h, "fLaC", 4) || (h[4] & 0x7F) != 0 || h[5] || h[6] || h[7] != 34) return;
    h[21] = (unsigned char)((h[21] & 0xF0) | ((samples >> 32) & 0x0F));
    for (int i = 0; i < 4; i++) h[22 + i] = (unsigned char)(samples >> (24 - 8 * i));
    if (pwrite(d->fd, h + 21, 5, d->start + 21) != 5) return;
}

/* A hidden temporary file in the target's directory (rename must not cross file systems). */
static int open_temp(dest *d, const char *out) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", out);
    snprintf(b, sizeof b, "%s", out);
    int n = snprintf(d->tmp, sizeof d->tmp, "%s/.%s.koe-XXXXXX", dirname(a), basename(b));
    if (n < 0 || (size_t)n >= sizeof d->tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    d->fd = mkstemp(d->tmp);
    if (d->fd < 0) return -1;
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(d->fd, 0666 & ~um); /* mkstemp makes it 0600; give the usual mode */
    return 0;
}

/* Whether a sound device is there to play on: a PulseAudio/PipeWire server or an ALSA card. */
static int have_pulse(void) {
    const char *s = getenv("PULSE_SERVER");
    if (s && *s) return 1;
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (!rt || !*rt) return 0;
    char p[4096];
    snprintf(p, sizeof p, "%s/pulse/native", rt);
    if (!access(p, F_OK)) return 1;
    snprintf(p, sizeof p, "%s/pipewire-0", rt);
    return !access(p, F_OK);
}

static int have_alsa(void) {
    struct stat st;
    return !stat("/dev/snd/controlC0", &st);
}

static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path || !*path) return 0;
    char dir[4096];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int k = snprintf(dir, sizeof dir, "%.*s/%s", (int)n, n ? p : ".", prog);
        if (k > 0 && (size_t)k < sizeof dir && !access(dir, X_OK)) return 1;
        p += n + (e ? 1 : 0);
        if (!e) break;
    }
    return 0;
}

/* The player for raw s16le 24 kHz mono on stdin, or NULL when there is no player or no sound
 * device (*why says which). */
static char *const *pick_player(const char **why) {
    static char *const paplay[] = {"paplay",       "--raw",        "--format=s16le",
                                   "--rate=24000", "--channels=1", NULL};
    static char *const aplay[] = {"aplay", "-q",    "-t", "raw", "-f", "S16_LE",
                                  "-r",    "24000", "-c", "1",   "-",  NULL};
    static char *const ffplay[] = {"ffplay", "-nodisp", "-autoexit", "-loglevel", "error",
                                   "-f",     "s16le",   "-ar",       "24000",     "-ch_layout",
                                   "mono",   "-i",      "-",         NULL};
    static char *custom[] = {"/bin/sh", "-c", NULL, NULL};
    char *const *argv = NULL;
    custom[2] = getenv("KOE_PLAYER");
    if (custom[2] && *custom[2]) {
        argv = custom; /* the user's choice: trust it to know its device */
    } else {
        int pulse = have_pulse(), alsa = have_alsa();
        if (!pulse && !alsa) {
            *why = "no sound device found";
            return NULL;
        }
        if (pulse && on_path("paplay"))
            argv = paplay;
        else if (alsa && on_path("aplay"))
            argv = aplay;
        else if (on_path("ffplay"))
            argv = ffplay;
        if (!argv) *why = "no audio player found (aplay, paplay or ffplay)";
    }
    return argv;
}

static int start_player(dest *d, char *const *argv, const char **why) {
    int pfd[2];
    if (pipe(pfd)) {
        *why = strerror(errno);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[0], 0);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    int rc = posix_spawnp(&d->player, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[0]);
    if (rc) {
        close(pfd[1]);
        *why = strerror(rc);
        return -1;
    }
    fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
    d->fd = pfd[1];
    snprintf(d->player_name, sizeof d->player_name, "%s",
             strcmp(argv[0], "/bin/sh") ? argv[0] : "KOE_PLAYER");
    return 0;
}

/* Waits for the player; returns its exit status (128 + signal when killed). */
static int wait_player(dest *d) {
    int st = 0;
    while (waitpid(d->player, &st, 0) < 0)
        if (errno != EINTR) return 1;
    d->player = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ------------------------------------------------------------------ progress */

/* The pipeline reports the segment count once it has cut the text, but not which segment it is
 * on (koe_job_times would need a segments_done field). So the count done is estimated: the audio
 * produced so far against the audio the whole text should give, mapped onto the segments'
 * character spans. The speaking rate starts at about 15 characters a second (English at ~150
 * words a minute) times the speed and is corrected by the first segment once it is done (the
 * job's first_synth time appears; its audio is then what has been read), weighted as if the
 * guess were worth 100 characters. Estimates are marked with '~'; the last line gives the
 * measured figures. */
typedef struct progress {
    int on;
    double t0, last;
    double chars; /* normalized characters of the text */
    double *cum;  /* cumulative characters at the end of each segment */
    size_t nseg;
    double speed;
    double rate; /* characters per second of audio, current estimate */
    int calibrated;
    size_t shown; /* characters of the last line (to blank it out) */
} progress;

static void progress_init(progress *pg, const char *text, size_t len, const char *lang,
                          double speed) {
    koe_text_opts o = koe_text_opts_default();
    o.lang = lang;
    koe_segments *segs = NULL;
    pg->speed = speed;
    pg->rate = 15.0 * speed;
    pg->t0 = pg->last = koe_now_s();
    if (koe_text_segment(text, len, &o, &segs, NULL) || !segs->count) {
        koe_segments_free(segs);
        return;
    }
    pg->cum = malloc(segs->count * sizeof *pg->cum);
    if (pg->cum) {
        double c = 0;
        for (size_t i = 0; i < segs->count; i++)
            pg->cum[i] = c += (double)segs->items[i].normalized_len;
        pg->nseg = segs->count;
        pg->chars = c;
    }
    koe_segments_free(segs);
}

static void progress_show(progress *pg, const koe_job_times *t, double audio_s, int final) {
    if (!pg->on) return;
    int nseg_pipeline = t->segments;
    if (!pg->calibrated && t->first_synth > 0 && pg->nseg > 0) {
        pg->calibrated = 1;
        pg->rate = (pg->cum[0] + 100.0) / (audio_s + 100.0 / pg->rate);
    }
    double now = koe_now_s();
    if (!final && now - pg->last < 0.1) return;
    pg->last = now;
    double el = now - pg->t0;
    int total = nseg_pipeline > 0 ? nseg_pipeline : (int)pg->nseg;
    char line[256];
    int n;
    if (final) {
        n = snprintf(line, sizeof line,
                     "segments %d/%d, %.1f s of audio in %.1f s, real-time factor %.3f", total,
                     total, audio_s, el, audio_s > 0 ? el / audio_s : 0.0);
    } else {
        double expect = pg->chars > 0 ? pg->chars / pg->rate : 0;
        double frac = expect > 0 ? audio_s / expect : 0;
        if (frac > 0.99) frac = 0.99;
        size_t done = 0;
        while (done < pg->nseg && pg->cum[done] <= frac * pg->chars) done++;
        if (total > 0 && (int)done > total) done = (size_t)total;
        double rtf = audio_s > 0 ? el / audio_s : 0;
        char eta[32] = "?";
        if (frac > 0.02) snprintf(eta, sizeof eta, "%.0f s", el / frac - el);
        n = snprintf(line, sizeof line,
                     "segments ~%zu/%d, %.1f s of audio, real-time factor %.3f, ETA %s", done,
                     total, audio_s, rtf, eta);
    }
    if (n < 0) return;
    fprintf(stderr, "\r%s", line);
    for (size_t i = (size_t)n; i < pg->shown; i++) fputc(' ', stderr);
    pg->shown = (size_t)n;
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static void progress_clear(progress *pg) {
    if (pg->on && pg->shown) fputc('\n', stderr);
    free(pg->cum);
    pg->cum = NULL;
}

/* ------------------------------------------------------------------ text */

static int read_stream(FILE *f, koe_buf *text) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (koe_buf_append(text, chunk, n)) return -1;
    return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------ command */

int koe_cmd_say(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *voice = "af_heart", *lang = NULL, *out = NULL;
    const char *file = NULL, *format = NULL;
    const char *data_dir = koe_cli_data_dir();
    double speed = 1.0;
    unsigned long long seed = 0;
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},    {"config", required_argument, 0, 'c'},
        {"voice", required_argument, 0, 'v'},    {"speed", required_argument, 0, 's'},
        {"lang", required_argument, 0, 'l'},     {"seed", required_argument, 0, 'S'},
        {"data-dir", required_argument, 0, 'd'}, {"out", required_argument, 0, 'o'},
        {"file", required_argument, 0, 'f'},     {"format", required_argument, 0, 'F'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:c:v:s:l:S:d:o:f:F:h", lo, NULL)) != -1) {
        switch (ch) {
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
        case 'f':
            file = optarg;
            break;
        case 'F':
            format = optarg;
            break;
        case 's':
            if (koe_cli_speed("say", optarg, &speed)) return KOE_EXIT_USAGE;
            break;
        case 'S':
            if (koe_cli_seed("say", optarg, &seed)) return KOE_EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (argc - optind > 1 || (file && optind < argc)) {
        fprintf(stderr, "koe say: give the text once (one argument, --file or standard input)\n");
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    int to_stdout = out && !strcmp(out, "-");
    if (to_stdout) out = NULL; /* -o - : standard output, even on a terminal */
    koe_error err = {0};
    koe_format fmt = KOE_FORMAT_WAV;
    if (out && format) {
        fprintf(stderr, "koe say: --format is for standard output; -o takes the extension's\n");
        return KOE_EXIT_USAGE;
    }
    if ((out && koe_format_from_path(out, &fmt, &err)) ||
        (format && koe_format_parse(format, &fmt, &err))) {
        fprintf(stderr, "koe say: %s\n", err.msg);
        return KOE_EXIT_USAGE;
    }
    dest d = {.fd = -1};
    d.kind = out ? DEST_FILE : to_stdout || !isatty(STDOUT_FILENO) ? DEST_STDOUT : DEST_PLAYER;
    if (d.kind == DEST_PLAYER) fmt = KOE_FORMAT_PCM;

    /* Fail before loading a model when there is nothing to play on. */
    const char *why = NULL;
    char *const *player = d.kind == DEST_PLAYER ? pick_player(&why) : NULL;
    if (d.kind == DEST_PLAYER && !player) {
        fprintf(stderr,
                "koe say: cannot play: %s.\n"
                "Write a file instead: koe say -o speech.mp3 ... (or wav, opus, flac, aac), or\n"
                "pipe it: koe say ... | some-player\n",
                why);
        return KOE_EXIT_FAIL;
    }

    koe_buf text = {0};
    int rc = 0;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "koe say: cannot read %s: %s\n", file, strerror(errno));
            return KOE_EXIT_USAGE;
        }
        rc = read_stream(f, &text);
        fclose(f);
    } else if (optind < argc && strcmp(argv[optind], "-")) {
        rc = koe_buf_append_str(&text, argv[optind]) ? -1 : 0;
    } else {
        rc = read_stream(stdin, &text);
    }
    if (rc) {
        fprintf(stderr, "koe say: cannot read the text: %s\n", strerror(errno));
        koe_buf_free(&text);
        return KOE_EXIT_FAIL;
    }
    if (!text.len) {
        fprintf(stderr, "koe say: no text to speak\n");
        koe_buf_free(&text);
        return KOE_EXIT_USAGE;
    }

    koe_precision prec;
    if (koe_cli_precision_from_env("say", &prec)) {
        koe_buf_free(&text);
        return KOE_EXIT_USAGE;
    }

    struct sigaction old_int, old_term;
    install_signals(&old_int, &old_term);
    koe_audio_quiet_codec_logs();
    koe_pipeline_opts po = {.workers = 1,
                            .threads = 2,
                            .precision = (int)prec,
                            .data_dir = data_dir,
                            .model_path = model,
                            .config_path = config};
    koe_pipeline *p = koe_pipeline_new(&po, &err);
    koe_job *job = NULL;
    koe_encoder *enc = NULL;
    progress pg = {0};
    if (!p) {
        fprintf(stderr, "koe say: %s\n", err.msg);
        rc = KOE_EXIT_FAIL;
        goto done;
    }
    koe_speech_request r = {.text = text.data,
                            .len = text.len,
                            .voice = voice,
                            .lang = lang,
                            .speed = (float)speed,
                            .format = KOE_FORMAT_PCM,
                            .normalize = 1,
                            .seed = seed,
                            .realtime = d.kind == DEST_PLAYER};
    job = koe_pipeline_submit(p, &r, &err);
    if (!job) {
        fprintf(stderr, "koe say: %s\n", err.msg);
        rc = err.code == KOE_ERR_LIMIT || err.code == KOE_ERR_INTERNAL ? KOE_EXIT_FAIL
                                                                       : KOE_EXIT_USAGE;
        goto done;
    }
    /* The request is valid: only now may a destination appear. */
    if (d.kind == DEST_FILE && open_temp(&d, out)) {
        fprintf(stderr, "koe say: cannot write beside %s: %s\n", out, strerror(errno));
        rc = KOE_EXIT_FAIL;
        goto done;
    } else if (d.kind == DEST_PLAYER && start_player(&d, player, &why)) {
        fprintf(stderr, "koe say: cannot start %s: %s\n", player[0], why);
        rc = KOE_EXIT_FAIL;
        goto done;
    } else if (d.kind == DEST_STDOUT) {
        d.fd = STDOUT_FILENO;
        d.start = lseek(d.fd, 0, SEEK_CUR);
    }
    enc = koe_encoder_new(fmt, KOE_AUDIO_RATE, NULL, on_encoded, &d, &err);
    if (!enc) {
        fprintf(stderr, "koe say: %s\n", err.msg);
        rc = KOE_EXIT_FAIL;
        goto done;
    }
    pg.on = isatty(STDERR_FILENO);
    if (pg.on)
        progress_init(&pg, text.data, text.len, lang ? lang : koe_text_lang_for_voice(voice, NULL),
                      speed);

    /* Raw s16le from the pipeline; an odd byte waits for its partner. */
    static unsigned char buf[65536 + 1];
    static float samples[32768];
    size_t carry = 0;
    uint64_t nsamples = 0;
    while (!rc) {
        if (g_signal) break;
        ssize_t n = koe_job_read(job, buf + carry, sizeof buf - 1 - carry, 100, &err);
        koe_job_times t;
        if (n == -2 || n > 0) {
            if (n > 0) {
                size_t have = carry + (size_t)n, whole = have / 2;
                for (size_t i = 0; i < whole; i++) {
                    int16_t s = (int16_t)(buf[2 * i] | (buf[2 * i + 1] << 8));
                    samples[i] = (float)s / 32768.0f;
                }
                carry = have & 1;
                if (carry) buf[0] = buf[have - 1];
                if (koe_encoder_write(enc, samples, whole, &err)) {
                    if (!g_signal)
                        fprintf(stderr, "%skoe say: %s: %s\n", pg.shown ? "\n" : "",
                                d.kind == DEST_PLAYER ? d.player_name
                                : d.kind == DEST_FILE ? d.tmp
                                                      : "standard output",
                                d.write_failed ? strerror(d.write_failed) : err.msg);
                    pg.shown = 0;
                    rc = KOE_EXIT_FAIL;
                    break;
                }
                nsamples += whole;
            }
            koe_job_get_times(job, &t);
            progress_show(&pg, &t, (double)nsamples / KOE_AUDIO_RATE, 0);
            continue;
        }
        if (n == 0) break;
        if (!g_signal) {
            fprintf(stderr, "%skoe say: %s\n", pg.shown ? "\n" : "", err.msg);
            pg.shown = 0;
        }
        rc = KOE_EXIT_FAIL;
    }
    if (!rc && !g_signal && koe_encoder_finish(enc, &err)) {
        fprintf(stderr, "%skoe say: %s\n", pg.shown ? "\n" : "", err.msg);
        pg.shown = 0;
        rc = KOE_EXIT_FAIL;
    }
    if (!rc && !g_signal) {
        koe_job_times t;
        koe_job_get_times(job, &t);
        progress_show(&pg, &t, (double)nsamples / KOE_AUDIO_RATE, 1);
        pg.shown = 0;
    }
    if (!rc && !g_signal && fmt == KOE_FORMAT_WAV && d.kind != DEST_PLAYER && d.start >= 0)
        patch_wav_sizes(&d, nsamples * 2);
    if (!rc && !g_signal && fmt == KOE_FORMAT_FLAC && d.kind != DEST_PLAYER && d.start >= 0)
        patch_flac_total(&d, nsamples);

done:
    if (job) {
        koe_job_cancel(job); /* a no-op once it is complete */
        koe_job_release(job);
    }
    koe_encoder_free(enc);
    koe_pipeline_free(p);
    koe_buf_free(&text);
    progress_clear(&pg);
    /* From here a late signal changes nothing: the outcome is decided by the one seen so far. */
    int sig = g_signal;
    if (d.kind == DEST_FILE && d.fd >= 0) {
        /* On disk before the rename, so a crash cannot leave an empty file in the good one's
         * place. */
        int werr = !rc && !sig && fsync(d.fd) ? errno : 0;
        if (close(d.fd) && !werr) werr = errno;
        if (!rc && !sig && werr) {
            fprintf(stderr, "koe say: writing %s: %s\n", d.tmp, strerror(werr));
            rc = KOE_EXIT_FAIL;
        }
        if (!rc && !sig && rename(d.tmp, out)) {
            fprintf(stderr, "koe say: cannot rename to %s: %s\n", out, strerror(errno));
            rc = KOE_EXIT_FAIL;
        }
        if (rc || sig) unlink(d.tmp); /* never leave a partial file behind */
    } else if (d.kind == DEST_PLAYER && d.player > 0) {
        close(d.fd);
        int st = wait_player(&d);
        if (!rc && !sig && st) {
            fprintf(stderr, "koe say: %s failed (status %d); write a file with -o FILE instead\n",
                    d.player_name, st);
            rc = KOE_EXIT_FAIL;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (sig) {
        fprintf(stderr, "koe say: interrupted%s\n", d.kind == DEST_FILE ? "; no file written" : "");
        return 128 + sig;
    }
    return rc;
}
