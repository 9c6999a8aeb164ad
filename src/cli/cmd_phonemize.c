/* koe phonemize: shows how the text front end reads a text (segments with their byte spans,
 * normalized text, phonemes, token ids). */
#include "cli/commands.h"
#include "koe/base.h"
#include "koe/text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Input larger than this is refused (the server has its own, smaller limit). */
#define PHONEMIZE_MAX_INPUT (64u << 20)

static void usage(FILE *f) {
    fprintf(f, "usage: koe phonemize [--lang L | --voice NAME] [--json] [--first-min N]\n"
               "                     [--first-max N] [--segment-max N] [TEXT...]\n"
               "Reads TEXT (several words are joined by spaces) or, without TEXT, standard input.\n"
               "Languages: en-us (default), en-gb, es, fr, it, pt-br, hi.\n"
               "--json prints one object: {\"segments\":[{\"start\":B,\"end\":E,\"text\":...,"
               "\"normalized\":...,\"phonemes\":...,\"tokens\":[...]}],\"dropped\":N}\n"
               "(start/end are byte offsets into the input; tokens exclude the pads).\n");
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-' || v == 0 || v > 1000000) return -1;
    *out = (size_t)v;
    return 0;
}

static int read_stdin(koe_buf *b) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (b->len + n > PHONEMIZE_MAX_INPUT) return KOE_ERR_LIMIT;
        if (koe_buf_append(b, chunk, n)) return KOE_ERR_NOMEM;
    }
    return ferror(stdin) ? KOE_ERR_IO : 0;
}

static int print_json(const char *in, const koe_text_result *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON *segs = cJSON_AddArrayToObject(root, "segments");
    int ok = root && segs;
    for (size_t i = 0; ok && i < r->segments->count; i++) {
        const koe_segment *s = &r->segments->items[i];
        const koe_tokens *t = &r->tokens[i];
        cJSON *o = cJSON_CreateObject();
        char *text = malloc(s->end - s->start + 1);
        ok = o && text && cJSON_AddItemToArray(segs, o);
        if (!ok) {
            free(text);
            break;
        }
        memcpy(text, in + s->start, s->end - s->start);
        text[s->end - s->start] = 0;
        ok = cJSON_AddNumberToObject(o, "start", (double)s->start) &&
             cJSON_AddNumberToObject(o, "end", (double)s->end) &&
             cJSON_AddStringToObject(o, "text", text) &&
             cJSON_AddStringToObject(o, "normalized", s->normalized) &&
             cJSON_AddStringToObject(o, "phonemes", t->phonemes ? t->phonemes : "");
        free(text);
        cJSON *ids = ok ? cJSON_AddArrayToObject(o, "tokens") : NULL;
        ok = ok && ids;
        for (size_t c = 0; ok && c < t->nchunks; c++)
            for (size_t k = 0; ok && k < t->chunks[c].count; k++) {
                cJSON *v = cJSON_CreateNumber(t->chunks[c].ids[k]);
                ok = v && cJSON_AddItemToArray(ids, v);
            }
    }
    ok = ok && cJSON_AddNumberToObject(root, "dropped", (double)r->dropped);
    char *txt = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!txt) {
        fprintf(stderr, "koe phonemize: out of memory\n");
        return KOE_EXIT_FAIL;
    }
    int rc = puts(txt) < 0 || fflush(stdout) ? KOE_EXIT_FAIL : KOE_EXIT_OK;
    free(txt);
    if (rc) fprintf(stderr, "koe phonemize: cannot write the output\n");
    return rc;
}

static int print_text(const char *in, const koe_text_result *r) {
    for (size_t i = 0; i < r->segments->count; i++) {
        const koe_segment *s = &r->segments->items[i];
        const koe_tokens *t = &r->tokens[i];
        printf("segment %zu [%zu, %zu)%s\n", i, s->start, s->end,
               s->sentence_end ? "" : " (cut inside a sentence)");
        printf("  text:       %.*s\n", (int)(s->end - s->start), in + s->start);
        printf("  normalized: %s\n", s->normalized);
        printf("  phonemes:   %s\n", t->phonemes ? t->phonemes : "");
        for (size_t c = 0; c < t->nchunks; c++) {
            printf("  tokens%s", t->nchunks > 1 ? "" : ":    ");
            if (t->nchunks > 1) printf(" %zu/%zu: ", c + 1, t->nchunks);
            for (size_t k = 0; k < t->chunks[c].count; k++)
                printf("%s%d", k ? " " : "", (int)t->chunks[c].ids[k]);
            printf("\n");
        }
    }
    printf("dropped: %zu\n", r->dropped);
    return fflush(stdout) ? KOE_EXIT_FAIL : KOE_EXIT_OK;
}

int koe_cmd_phonemize(int argc, char **argv) {
    koe_text_opts opts = koe_text_opts_default();
    int json = 0, i = 1;
    koe_error err = {0};
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return KOE_EXIT_OK;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (a[0] != '-' || a[1] == 0) break;
        if (i + 1 >= argc) {
            fprintf(stderr, "koe phonemize: %s needs a value\n", a);
            return KOE_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--lang")) {
            opts.lang = v;
        } else if (!strcmp(a, "--voice")) {
            opts.lang = koe_text_lang_for_voice(v, &err);
            if (!opts.lang) {
                fprintf(stderr, "koe phonemize: %s\n", err.msg);
                return KOE_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--first-min") || !strcmp(a, "--first-max") ||
                   !strcmp(a, "--segment-max")) {
            size_t n;
            if (parse_size(v, &n)) {
                fprintf(stderr, "koe phonemize: %s wants a number of characters (1-1000000)\n", a);
                return KOE_EXIT_USAGE;
            }
            if (!strcmp(a, "--segment-max"))
                opts.segment_max = n;
            else if (!strcmp(a, "--first-min"))
                opts.first_min = n;
            else
                opts.first_max = n;
        } else {
            fprintf(stderr, "koe phonemize: unknown option %s\n", a);
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (koe_text_lang_check(opts.lang, &err)) {
        fprintf(stderr, "koe phonemize: %s\n", err.msg);
        return KOE_EXIT_USAGE;
    }
    koe_buf in = {0};
    int rc = 0;
    if (i < argc) {
        for (int k = i; k < argc && !rc; k++)
            if ((k > i && koe_buf_append(&in, " ", 1)) || koe_buf_append_str(&in, argv[k]))
                rc = KOE_ERR_NOMEM;
    } else {
        rc = read_stdin(&in);
    }
    if (rc) {
        fprintf(stderr, "koe phonemize: %s\n",
                rc == KOE_ERR_LIMIT ? "input larger than 64 MiB"
                : rc == KOE_ERR_IO  ? "cannot read standard input"
                                    : "out of memory");
        koe_buf_free(&in);
        return rc == KOE_ERR_LIMIT ? KOE_EXIT_USAGE : KOE_EXIT_FAIL;
    }
    koe_text_result *r = NULL;
    rc = koe_text_process(in.data ? in.data : "", in.len, &opts, &r, &err);
    if (rc) {
        fprintf(stderr, "koe phonemize: %s\n", err.msg);
        koe_buf_free(&in);
        return rc == KOE_ERR_INVALID || rc == KOE_ERR_UNSUPPORTED ? KOE_EXIT_USAGE : KOE_EXIT_FAIL;
    }
    int status = json ? print_json(in.data ? in.data : "", r) : print_text(in.data, r);
    koe_text_result_free(r);
    koe_buf_free(&in);
    return status;
}
