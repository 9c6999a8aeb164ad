/* bench_ttfa: a load generator that speaks HTTP/1.1 itself and measures what a listener gets
 * from a running `koe serve`: client-side time to first audio (request sent → first audio byte
 * received), total time, and underruns of a simulated player that starts at the first byte and
 * plays 24 kHz audio in real time (count and total length of the gaps).
 *
 *   bench_ttfa [--host H] [--port P] [--format pcm|wav|mp3] [--clients 1,4,16]
 *              [--requests N] [--voice V] [--text sentence|paragraph|"any text"]
 *
 * Each client runs N requests back to back; figures are p50/p95/p99 over all requests of a
 * concurrency level. Numbers, not a test: it never decides pass/fail. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const char *SENTENCE = "The quick brown fox jumps over the lazy dog, and then it rests "
                              "in the shade of an old oak tree.";

/* About 2,000 characters of plain prose (written for this benchmark). */
static const char *PARAGRAPH =
    "Every morning the harbour woke before the town did. The first boats slipped out while the "
    "streets were still grey, their engines low and patient, and the gulls followed them in "
    "long untidy lines. By the time the bakery opened its shutters, the water had turned from "
    "slate to silver, and the fishermen who had stayed behind were mending nets on the quay, "
    "talking about the weather as if it were an old friend who could not be trusted. Children "
    "walked to school along the sea wall, counting the boats and arguing about which one was "
    "fastest. The schoolteacher, a tall woman with a quiet voice, let them argue; she said that "
    "an argument about boats was still an argument about numbers, and numbers were her subject. "
    "In the afternoons the wind came up from the south, and the whole town smelled of salt and "
    "tar and bread. Visitors sometimes asked why nobody seemed to hurry. The answer, if anyone "
    "bothered to give one, was that the tide did not hurry either, and the tide had been "
    "keeping time here for longer than anyone could remember. When the boats came back in the "
    "evening, people gathered to watch them round the point, one after another, their lights "
    "swinging in the dusk. Somebody always counted them aloud. On most nights the count came "
    "out right, and everyone went home to supper. On the rare nights when it did not, the "
    "whole town waited on the quay together, wrapped in coats and blankets, until the last "
    "light appeared beyond the rocks, or until the morning came and there was nothing left to "
    "wait for. Those nights were remembered for years. They were the reason the count "
    "mattered, and the reason the children, who did not yet understand any of this, were "
    "allowed to count too. A town that counts its boats, the old harbour master used to say, "
    "is a town that knows what it has. He said it so often that it was painted above the door "
    "of the harbour office, in letters that the salt had nearly worn away.";

typedef enum { FMT_PCM, FMT_WAV, FMT_MP3 } fmt_t;

typedef struct cfg {
    const char *host;
    int port;
    fmt_t fmt;
    const char *fmt_name;
    const char *voice;
    const char *text;
    const char *text_label;
    int requests;
} cfg;

typedef struct result {
    int ok;
    int status;
    double ttfa_ms, total_ms, audio_s;
    int underruns;
    double gap_ms;
} result;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Counts the audio seconds in a byte stream of the chosen format, incrementally. */
typedef struct audio_counter {
    fmt_t fmt;
    uint64_t bytes;
    double seconds;
    /* wav: bytes of the 44-byte header seen so far */
    size_t hdr_fill;
    int in_data;
    /* mp3: carry-over of a partial frame header and bytes left in the current frame */
    unsigned char mp3_carry[10];
    size_t carry;
    size_t frame_left;
} audio_counter;

static int mp3_frame(const unsigned char *h, size_t *len, int *samples, int *rate) {
    static const int br1[16] = {0,   32,  40,  48,  56,  64,  80,  96,
                                112, 128, 160, 192, 224, 256, 320, 0};
    static const int br2[16] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0};
    static const int sr[4][3] = {
        {11025, 12000, 8000}, {0, 0, 0}, {22050, 24000, 16000}, {44100, 48000, 32000}};
    if (h[0] != 0xFF || (h[1] & 0xE0) != 0xE0) return 0;
    int ver = (h[1] >> 3) & 3, layer = (h[1] >> 1) & 3;
    int bri = h[2] >> 4, sri = (h[2] >> 2) & 3, pad = (h[2] >> 1) & 1;
    if (ver == 1 || layer != 1 || bri == 0 || bri == 15 || sri == 3) return 0;
    int kbps = ver == 3 ? br1[bri] : br2[bri];
    *rate = sr[ver][sri];
    *samples = ver == 3 ? 1152 : 576;
    *len = (size_t)((ver == 3 ? 144 : 72) * kbps * 1000 / *rate + pad);
    return 1;
}

static void count_audio(audio_counter *a, const unsigned char *p, size_t n) {
    a->bytes += n;
    if (a->fmt == FMT_PCM) {
        a->seconds = (double)(a->bytes / 2) / 24000.0;
        return;
    }
    if (a->fmt == FMT_WAV) {
        /* Skip the RIFF header (44 bytes for koe's streaming header), count the rest. */
        if (!a->in_data) {
            size_t take = n < 44 - a->hdr_fill ? n : 44 - a->hdr_fill;
            a->hdr_fill += take;
            p += take;
            n -= take;
            if (a->hdr_fill < 44) return;
            a->in_data = 1;
        }
        a->seconds += (double)n / 2 / 24000.0;
        return;
    }
    /* mp3: walk frame headers; bytes of a frame count once the whole frame has arrived. */
    while (n > 0) {
        if (a->frame_left) {
            size_t take = n < a->frame_left ? n : a->frame_left;
            a->frame_left -= take;
            p += take;
            n -= take;
            continue;
        }
        while (a->carry < 4 && n > 0) {
            a->mp3_carry[a->carry++] = *p++;
            n--;
        }
        if (a->carry < 4) return;
        size_t len;
        int samples, rate;
        if (mp3_frame(a->mp3_carry, &len, &samples, &rate) && len > 4) {
            a->seconds += (double)samples / rate;
            a->frame_left = len - 4;
            a->carry = 0;
        } else {
            /* not at a frame start (ID3 tag or garbage): slide by one byte */
            memmove(a->mp3_carry, a->mp3_carry + 1, 3);
            a->carry = 3;
        }
    }
}

static int connect_to(const char *host, int port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &res)) return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, 0);
        if (fd < 0) continue;
        if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static void json_escape(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
}

/* One request: send, then read the response, decoding chunked transfer as it arrives. */
static void one_request(const cfg *c, result *r) {
    memset(r, 0, sizeof *r);
    static char esc[8192];
    char body[9000], req[10000];
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    json_escape(esc, sizeof esc, c->text);
    snprintf(body, sizeof body,
             "{\"model\":\"kokoro\",\"input\":\"%s\",\"voice\":\"%s\",\"response_format\":\"%s\","
             "\"stream\":true}",
             esc, c->voice, c->fmt_name);
    pthread_mutex_unlock(&mu);
    int blen = (int)strlen(body);
    int rlen = snprintf(req, sizeof req,
                        "POST /v1/audio/speech HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: "
                        "application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                        c->host, c->port, blen, body);
    int fd = connect_to(c->host, c->port);
    if (fd < 0) return;
    double t0 = now_ms();
    for (int off = 0; off < rlen;) {
        ssize_t w = write(fd, req + off, (size_t)(rlen - off));
        if (w <= 0) {
            close(fd);
            return;
        }
        off += (int)w;
    }
    static __thread unsigned char buf[1 << 16];
    char head[8192];
    size_t hfill = 0;
    int headers_done = 0, chunked = 0;
    int64_t chunk_left = 0; /* bytes of chunk data still expected; -1 while reading a size line */
    char sizeline[64];
    size_t slen = 0;
    int crlf_skip = 0, done = 0;
    audio_counter ac = {.fmt = c->fmt};
    double first = -1, gaps = 0;
    r->underruns = 0;
    while (!done) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        double t = now_ms();
        unsigned char *p = buf;
        size_t left = (size_t)n;
        if (!headers_done) {
            size_t before_fill = hfill;
            size_t take = left < sizeof head - 1 - hfill ? left : sizeof head - 1 - hfill;
            memcpy(head + hfill, p, take);
            hfill += take;
            head[hfill] = 0;
            char *end = strstr(head, "\r\n\r\n");
            if (!end) {
                if (hfill >= sizeof head - 1) break;
                continue;
            }
            size_t hlen = (size_t)(end + 4 - head);
            r->status = atoi(head + 9);
            chunked = strcasestr(head, "transfer-encoding: chunked") != NULL;
            headers_done = 1;
            /* the body starts in this read, after the header's last bytes: everything the read
             * brought past them is body, however much (not only what fit in `head`) */
            p += hlen - before_fill;
            left = (size_t)n - (hlen - before_fill);
            chunk_left = chunked ? -1 : INT64_MAX;
        }
        double before = ac.seconds;
        while (left > 0) {
            if (chunked && crlf_skip) {
                size_t k = left < (size_t)crlf_skip ? left : (size_t)crlf_skip;
                p += k;
                left -= k;
                crlf_skip -= (int)k;
                continue;
            }
            if (chunked && chunk_left < 0) {
                unsigned char ch = *p++;
                left--;
                if (ch == '\n') {
                    sizeline[slen] = 0;
                    chunk_left = strtoll(sizeline, NULL, 16);
                    slen = 0;
                    if (chunk_left == 0) {
                        done = 1;
                        break;
                    }
                } else if (slen < sizeof sizeline - 1) {
                    sizeline[slen++] = (char)ch;
                }
                continue;
            }
            size_t k = left < (uint64_t)chunk_left ? left : (size_t)chunk_left;
            if (r->status == 200) {
                if (first < 0 && k > 0) first = t;
                count_audio(&ac, p, k);
            }
            p += k;
            left -= k;
            if (chunked) {
                chunk_left -= (int64_t)k;
                if (chunk_left == 0) {
                    chunk_left = -1;
                    crlf_skip = 2;
                }
            }
        }
        /* Player: it started at `first` and has played (t - first - gaps) seconds of audio. */
        if (first >= 0 && ac.seconds > before) {
            double played = (t - first - gaps) / 1e3;
            if (played > before + 0.005) {
                double gap = (played - before) * 1e3;
                gaps += gap;
                r->underruns++;
            }
        }
    }
    double t_end = now_ms();
    close(fd);
    r->total_ms = t_end - t0;
    r->ttfa_ms = first >= 0 ? first - t0 : -1;
    r->audio_s = ac.seconds;
    r->gap_ms = gaps;
    r->ok = r->status == 200 && first >= 0 && (!chunked || done);
}

typedef struct worker {
    const cfg *c;
    result *out;
    int n;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->n; i++) one_request(w->c, &w->out[i]);
    return NULL;
}

static double pct(double *v, int n, double p) {
    if (n == 0) return 0;
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return v[i];
}

static void run_level(const cfg *c, int clients) {
    int total = clients * c->requests;
    result *res = calloc((size_t)total, sizeof *res);
    worker *ws = calloc((size_t)clients, sizeof *ws);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double t0 = now_ms();
    for (int i = 0; i < clients; i++) {
        ws[i] = (worker){c, res + i * c->requests, c->requests};
        pthread_create(&th[i], NULL, run_worker, &ws[i]);
    }
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double wall = (now_ms() - t0) / 1e3;
    double *ttfa = calloc((size_t)total, sizeof *ttfa), *tot = calloc((size_t)total, sizeof *tot);
    int ok = 0, under = 0, s503 = 0;
    double audio = 0, gap = 0;
    for (int i = 0; i < total; i++) {
        if (res[i].status == 503) s503++;
        if (!res[i].ok) continue;
        ttfa[ok] = res[i].ttfa_ms;
        tot[ok] = res[i].total_ms;
        ok++;
        audio += res[i].audio_s;
        under += res[i].underruns;
        gap += res[i].gap_ms;
    }
    qsort(ttfa, (size_t)ok, sizeof *ttfa, bench_cmp_double);
    qsort(tot, (size_t)ok, sizeof *tot, bench_cmp_double);
    printf("| %-9s | %-4s | %3d | %3d/%-3d | %6.0f | %6.0f | %6.0f | %7.0f | %7.0f | %5.2f | %4d | "
           "%7.0f "
           "| %3d |\n",
           c->text_label, c->fmt_name, clients, ok, total, pct(ttfa, ok, 50), pct(ttfa, ok, 95),
           pct(ttfa, ok, 99), pct(tot, ok, 50), pct(tot, ok, 95), audio / wall, under, gap, s503);
    fflush(stdout);
    free(res);
    free(ws);
    free(th);
    free(ttfa);
    free(tot);
}

int main(int argc, char **argv) {
    cfg c = {.host = "127.0.0.1",
             .port = 8880,
             .fmt = FMT_PCM,
             .fmt_name = "pcm",
             .voice = "af_heart",
             .text = SENTENCE,
             .text_label = "sentence",
             .requests = 5};
    const char *levels = "1,4,16";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--host") && v)
            c.host = argv[++i];
        else if (!strcmp(a, "--port") && v)
            c.port = atoi(argv[++i]);
        else if (!strcmp(a, "--voice") && v)
            c.voice = argv[++i];
        else if (!strcmp(a, "--clients") && v)
            levels = argv[++i];
        else if (!strcmp(a, "--requests") && v)
            c.requests = atoi(argv[++i]);
        else if (!strcmp(a, "--format") && v) {
            c.fmt_name = argv[++i];
            if (!strcmp(c.fmt_name, "pcm"))
                c.fmt = FMT_PCM;
            else if (!strcmp(c.fmt_name, "wav"))
                c.fmt = FMT_WAV;
            else if (!strcmp(c.fmt_name, "mp3"))
                c.fmt = FMT_MP3;
            else {
                fprintf(stderr, "bench_ttfa: --format pcm|wav|mp3\n");
                return 2;
            }
        } else if (!strcmp(a, "--text") && v) {
            const char *t = argv[++i];
            if (!strcmp(t, "sentence"))
                c.text = SENTENCE, c.text_label = "sentence";
            else if (!strcmp(t, "paragraph"))
                c.text = PARAGRAPH, c.text_label = "paragraph";
            else
                c.text = t, c.text_label = "custom";
        } else {
            fprintf(stderr, "usage: bench_ttfa [--host H] [--port P] [--format pcm|wav|mp3] "
                            "[--clients 1,4,16] [--requests N] [--voice V] "
                            "[--text sentence|paragraph|TEXT]\n");
            return 2;
        }
    }
    if (c.requests < 1 || c.port < 1) return 2;
    printf("# bench_ttfa %s:%d, %d requests per client, text %s (%zu chars)\n", c.host, c.port,
           c.requests, c.text_label, strlen(c.text));
    printf("| text      | fmt  | cli | ok/all  | TTFA50 | TTFA95 | TTFA99 | total50 | total95 | "
           "aud/s | undr | gap ms  | 503 |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    char *copy = strdup(levels);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        int n = atoi(tok);
        if (n > 0 && n <= 256) run_level(&c, n);
    }
    free(copy);
    return 0;
}
