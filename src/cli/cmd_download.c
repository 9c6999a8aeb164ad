/* koe download: fetch the official Kokoro weights (and config) over HTTPS, resumably, and verify
 * them against the size and SHA-256 the hosting service publishes.
 *
 * Hugging Face answers a HEAD on .../resolve/main/<file> with a redirect carrying
 * X-Linked-Size and X-Linked-Etag (the LFS object's SHA-256); a plain server's ETag and
 * Content-Length serve the same purpose when they look like a SHA-256 and a size. The file is
 * written to <dir>/<name>.part, resumed with a Range request, verified, then renamed into place:
 * a partial or corrupt file never takes the final name. Nothing here runs unless the user asks. */
#include "cli/commands.h"
#include "koe/sha256.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_BASE_URL "https://huggingface.co/hexgrad/Kokoro-82M/resolve/main"

typedef struct remote_info {
    long status;
    int64_t size;      /* -1 when unknown */
    char sha256[65];   /* empty when the host publishes none */
    char etag_raw[96]; /* what the host sent, for messages */
} remote_info;

typedef struct dl_opts {
    const char *dir;
    const char *base_url;
    long stall_seconds;
    int quiet;
    int progress; /* stderr is a terminal */
} dl_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: koe download [--dir DIR] [--url BASE] [--timeout S] [--quiet] [FILE...]\n"
            "\n"
            "Fetches the Kokoro-82M weights from the official model repository and verifies\n"
            "each file's size and SHA-256 against what the host publishes. An interrupted\n"
            "download resumes when run again.\n"
            "\n"
            "  --dir DIR     where to put the files (default: $KOE_DATA_DIR, else ./data)\n"
            "  --url BASE    repository base URL (default: %s)\n"
            "  --timeout S   give up when no byte arrives for S seconds (default 60)\n"
            "  --quiet       no progress output\n"
            "  FILE...       files to fetch (default: kokoro-v1_0.pth config.json)\n",
            DEFAULT_BASE_URL);
}

static int is_hex64(const char *s, size_t n) {
    if (n != 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* A file name in the repository: one path component, no tricks. */
static int valid_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 200) return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-')) return 0;
    return 1;
}

/* Header lines of the HEAD answer; values are trimmed and quotes (and a W/ prefix) dropped. */
static size_t on_head_header(char *buf, size_t size, size_t n, void *user) {
    remote_info *ri = user;
    size_t len = size * n;
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t klen = (size_t)(colon - buf);
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    if (end - v >= 2 && v[0] == 'W' && v[1] == '/') v += 2;
    if (end > v && *v == '"') v++;
    if (end > v && end[-1] == '"') end--;
    size_t vlen = (size_t)(end - v);
    char val[96];
    if (vlen >= sizeof val) vlen = sizeof val - 1;
    memcpy(val, v, vlen);
    val[vlen] = 0;
#define KEY(k) (klen == sizeof(k) - 1 && !strncasecmp(buf, k, klen))
    if (KEY("x-linked-etag")) {
        if (is_hex64(val, vlen)) {
            memcpy(ri->sha256, val, 65);
            for (int i = 0; i < 64; i++) ri->sha256[i] = (char)tolower((unsigned char)val[i]);
        }
        snprintf(ri->etag_raw, sizeof ri->etag_raw, "%s", val);
    } else if (KEY("etag")) {
        if (!ri->sha256[0] && is_hex64(val, vlen)) {
            for (int i = 0; i < 64; i++) ri->sha256[i] = (char)tolower((unsigned char)val[i]);
            ri->sha256[64] = 0;
        }
        if (!ri->etag_raw[0]) snprintf(ri->etag_raw, sizeof ri->etag_raw, "%s", val);
    } else if (KEY("x-linked-size")) {
        ri->size = strtoll(val, NULL, 10);
    } else if (KEY("content-length")) {
        if (ri->size < 0) ri->size = strtoll(val, NULL, 10);
    }
#undef KEY
    return len;
}

static void common_opts(CURL *c, const dl_opts *o, char *errbuf) {
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->stall_seconds);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "koe-download/" KOE_VERSION);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
}

static int head(const char *url, const dl_opts *o, remote_info *ri) {
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    if (!c) return -1;
    memset(ri, 0, sizeof *ri);
    ri->size = -1;
    common_opts(c, o, errbuf);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    /* The first answer (the redirect on Hugging Face) carries the LFS size and SHA-256. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, ri);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ri->status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "koe download: %s: %s\n", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return -1;
    }
    if (ri->status >= 400) {
        fprintf(stderr, "koe download: %s: HTTP %ld\n", url, ri->status);
        return -1;
    }
    return 0;
}

typedef struct transfer {
    FILE *f;
    CURL *c;
    int64_t offset; /* bytes already on disk when this transfer started */
    int64_t written;
    int64_t expected;
    int checked_status;
    int restarted;
    const char *name;
    const dl_opts *o;
    double t0, last_draw;
} transfer;

static size_t on_body(char *buf, size_t size, size_t n, void *user) {
    transfer *t = user;
    size_t len = size * n;
    if (!t->checked_status) {
        long code = 0;
        curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &code);
        t->checked_status = 1;
        if (t->offset > 0 && code == 200) {
            /* The server ignored the Range request: start the file over. */
            if (fflush(t->f) || ftruncate(fileno(t->f), 0) || fseek(t->f, 0, SEEK_SET)) return 0;
            t->offset = 0;
            t->restarted = 1;
        }
    }
    if (t->expected >= 0 && t->offset + t->written + (int64_t)len > t->expected) return 0;
    if (fwrite(buf, 1, len, t->f) != len) return 0;
    t->written += (int64_t)len;
    return len;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    transfer *t = user;
    if (!t->o->progress) return 0;
    double now = now_s();
    if (now - t->last_draw < 0.2) return 0;
    t->last_draw = now;
    double have = (double)(t->offset + t->written), total = (double)t->expected;
    double rate = t->written / (now - t->t0 > 1e-3 ? now - t->t0 : 1e-3);
    if (t->expected > 0) {
        double eta = rate > 0 ? (total - have) / rate : 0;
        fprintf(stderr, "\r  %-18s %5.1f%%  %7.1f / %.1f MB  %6.1f MB/s  ETA %4.0fs ", t->name,
                100.0 * have / total, have / 1e6, total / 1e6, rate / 1e6, eta);
    } else {
        fprintf(stderr, "\r  %-18s %7.1f MB  %6.1f MB/s ", t->name, have / 1e6, rate / 1e6);
    }
    return 0;
}

/* Returns 0 when <dir>/<name> is in place and verified, 1 on failure. */
static int fetch_one(const char *name, const dl_opts *o) {
    char url[2048], final_path[4096], part_path[4200], sum_path[4200];
    snprintf(url, sizeof url, "%s/%s", o->base_url, name);
    snprintf(final_path, sizeof final_path, "%s/%s", o->dir, name);
    snprintf(part_path, sizeof part_path, "%s.part", final_path);
    snprintf(sum_path, sizeof sum_path, "%s.sha256", final_path);

    remote_info ri;
    if (head(url, o, &ri)) return 1;
    if (ri.size < 0) {
        fprintf(stderr, "koe download: %s: the server gives no size; refusing to guess\n", name);
        return 1;
    }

    struct stat st;
    if (!stat(final_path, &st) && (int64_t)st.st_size == ri.size) {
        char hex[65];
        if (!ri.sha256[0] || (!koe_sha256_file(final_path, hex) && !strcmp(hex, ri.sha256))) {
            if (!o->quiet) printf("%s: already present and verified\n", final_path);
            return 0;
        }
    }

    int64_t have = 0;
    if (!stat(part_path, &st)) have = (int64_t)st.st_size;
    if (have > ri.size) {
        unlink(part_path); /* longer than the file can be: not ours to resume */
        have = 0;
    }
    FILE *f = fopen(part_path, have ? "r+b" : "wb");
    if (!f) {
        fprintf(stderr, "koe download: cannot write %s: %s\n", part_path, strerror(errno));
        return 1;
    }
    if (have && fseek(f, 0, SEEK_END)) {
        fclose(f);
        return 1;
    }
    if (!o->quiet && have)
        printf("%s: resuming at %" PRId64 " of %" PRId64 " bytes\n", name, have, ri.size);

    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    transfer t = {.f = f, .c = c, .offset = have, .expected = ri.size, .name = name, .o = o};
    t.t0 = t.last_draw = now_s();
    CURLcode rc = CURLE_OK;
    long code = 0;
    if (have < ri.size) {
        if (!c) {
            fclose(f);
            return 1;
        }
        common_opts(c, o, errbuf);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
        /* A plain Range header rather than CURLOPT_RESUME_FROM: a server that answers 200
         * with the whole file is handled in on_body (restart) instead of failing. */
        char range[48];
        snprintf(range, sizeof range, "%" PRId64 "-", have);
        if (have) curl_easy_setopt(c, CURLOPT_RANGE, range);
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (o->progress) fputc('\n', stderr);
    }
    if (c) curl_easy_cleanup(c);
    int closed_bad = fclose(f) != 0;
    int64_t total = t.offset + t.written;

    if (rc != CURLE_OK || closed_bad) {
        if (total > ri.size || rc == CURLE_WRITE_ERROR) {
            unlink(part_path);
            fprintf(stderr, "koe download: %s: %s; the partial file was deleted\n", name,
                    total > ri.size ? "the server sent more bytes than announced"
                                    : "could not write the file");
        } else {
            fprintf(stderr,
                    "koe download: %s: interrupted at %" PRId64 " of %" PRId64
                    " bytes (%s); run the same command again to resume\n",
                    name, total, ri.size, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
        return 1;
    }
    if (total != ri.size) {
        fprintf(stderr,
                "koe download: %s: got %" PRId64 " bytes, expected %" PRId64
                "; run again to resume\n",
                name, total, ri.size);
        return 1;
    }
    char hex[65];
    if (koe_sha256_file(part_path, hex)) {
        fprintf(stderr, "koe download: cannot read back %s: %s\n", part_path, strerror(errno));
        return 1;
    }
    if (ri.sha256[0] && strcmp(hex, ri.sha256)) {
        unlink(part_path);
        fprintf(stderr,
                "koe download: %s: SHA-256 mismatch (published %s, got %s); the file was "
                "deleted\n",
                name, ri.sha256, hex);
        return 1;
    }
    if (rename(part_path, final_path)) {
        fprintf(stderr, "koe download: cannot rename to %s: %s\n", final_path, strerror(errno));
        return 1;
    }
    FILE *sf = fopen(sum_path, "w");
    if (sf) {
        fprintf(sf, "%s  %s\n", hex, name);
        fclose(sf);
    }
    if (!o->quiet) {
        if (ri.sha256[0])
            printf("%s: %" PRId64 " bytes, SHA-256 %s verified\n", final_path, total, hex);
        else
            printf("%s: %" PRId64 " bytes (size verified; the host publishes no SHA-256 for it: "
                   "ETag %s)\n",
                   final_path, total, ri.etag_raw[0] ? ri.etag_raw : "none");
    }
    return 0;
}

int koe_cmd_download(int argc, char **argv) {
    dl_opts o = {.dir = getenv("KOE_DATA_DIR"), .base_url = DEFAULT_BASE_URL, .stall_seconds = 60};
    if (!o.dir || !*o.dir) o.dir = "data";
    static const struct option longopts[] = {
        {"dir", required_argument, 0, 'd'},     {"url", required_argument, 0, 'u'},
        {"timeout", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:u:t:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o.dir = optarg;
            break;
        case 'u':
            o.base_url = optarg;
            break;
        case 't': {
            char *end;
            o.stall_seconds = strtol(optarg, &end, 10);
            if (*end || o.stall_seconds < 1 || o.stall_seconds > 3600) {
                fprintf(stderr, "koe download: --timeout wants 1..3600 seconds\n");
                return KOE_EXIT_USAGE;
            }
            break;
        }
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (strncmp(o.base_url, "https://", 8) && strncmp(o.base_url, "http://", 7)) {
        fprintf(stderr, "koe download: --url must start with https:// or http://\n");
        return KOE_EXIT_USAGE;
    }
    o.progress = !o.quiet && isatty(STDERR_FILENO);
    const char *defaults[] = {"kokoro-v1_0.pth", "config.json"};
    const char **names = (const char **)argv + optind;
    int n = argc - optind;
    if (n == 0) {
        names = defaults;
        n = 2;
    }
    for (int i = 0; i < n; i++)
        if (!valid_name(names[i])) {
            fprintf(stderr, "koe download: '%s' is not a plain file name\n", names[i]);
            return KOE_EXIT_USAGE;
        }
    if (mkdir(o.dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "koe download: cannot create %s: %s\n", o.dir, strerror(errno));
        return KOE_EXIT_FAIL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "koe download: libcurl failed to start\n");
        return KOE_EXIT_FAIL;
    }
    int failed = 0;
    for (int i = 0; i < n; i++) failed |= fetch_one(names[i], &o);
    curl_global_cleanup();
    return failed ? KOE_EXIT_FAIL : KOE_EXIT_OK;
}
