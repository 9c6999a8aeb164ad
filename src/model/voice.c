/* Voice packs: a folder listing, blends as weighted means of whole packs, style rows. */
#include "koe/voice.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PACK_FLOATS (KOE_VOICE_ROWS * KOE_VOICE_DIM)
#define PACK_BYTES  (PACK_FLOATS * 4)
#define MAX_NAME    64
#define MAX_PARTS   8

struct koe_voices {
    char *dir;
    char (*names)[MAX_NAME];
    size_t n;
};

struct koe_voice {
    float *rows; /* KOE_VOICE_ROWS x KOE_VOICE_DIM */
    char spec[MAX_PARTS * (MAX_NAME + 8)];
    const char *lang;
};

static int valid_name(const char *s, size_t n) {
    if (n == 0 || n >= MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(a, b);
}

koe_voices *koe_voices_open(const char *dir, koe_error *err) {
    DIR *d = opendir(dir);
    if (!d) {
        koe_error_set(err, KOE_ERR_NOT_FOUND,
                      "no voice folder at %s (%s): run `make deps` to fetch the Kokoro voices", dir,
                      strerror(errno));
        return NULL;
    }
    koe_voices *v = calloc(1, sizeof *v);
    size_t cap = 0;
    int rc = v ? 0 : KOE_ERR_NOMEM;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".bin") || !valid_name(e->d_name, len - 4))
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
        if (st.st_size != PACK_BYTES) {
            rc = koe_error_set(err, KOE_ERR_FORMAT,
                               "voice pack %s has %lld bytes, expected %d (510 x 256 float32)",
                               path, (long long)st.st_size, PACK_BYTES);
            break;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 64;
            void *x = realloc(v->names, cap * sizeof *v->names);
            if (!x) {
                rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
                break;
            }
            v->names = x;
        }
        memcpy(v->names[v->n], e->d_name, len - 4);
        v->names[v->n][len - 4] = 0;
        v->n++;
    }
    closedir(d);
    if (!rc && v && !v->n)
        rc = koe_error_set(err, KOE_ERR_NOT_FOUND,
                           "no voice packs in %s: run `make deps` to fetch the Kokoro voices", dir);
    if (!rc && !(v->dir = strdup(dir))) rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    if (rc) {
        if (rc == KOE_ERR_NOMEM) koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        koe_voices_close(v);
        return NULL;
    }
    qsort(v->names, v->n, sizeof *v->names, cmp_name);
    return v;
}

void koe_voices_close(koe_voices *v) {
    if (!v) return;
    free(v->dir);
    free(v->names);
    free(v);
}

size_t koe_voices_count(const koe_voices *v) {
    return v ? v->n : 0;
}

const char *koe_voices_name(const koe_voices *v, size_t i) {
    return v && i < v->n ? v->names[i] : NULL;
}

static const char *lang_of(char c) {
    switch (c) {
    case 'a':
        return "en-us";
    case 'b':
        return "en-gb";
    case 'e':
        return "es";
    case 'f':
        return "fr";
    case 'h':
        return "hi";
    case 'i':
        return "it";
    case 'j':
        return "ja";
    case 'p':
        return "pt-br";
    case 'z':
        return "zh";
    default:
        return "unknown";
    }
}

const char *koe_voices_lang(const koe_voices *v, size_t i) {
    return v && i < v->n ? lang_of(v->names[i][0]) : NULL;
}

const char *koe_voices_gender(const koe_voices *v, size_t i) {
    if (!v || i >= v->n) return NULL;
    char g = v->names[i][1];
    return g == 'f' ? "female" : g == 'm' ? "male" : "unknown";
}

long koe_voices_find(const koe_voices *v, const char *name) {
    if (!v || !name) return -1;
    char(*hit)[MAX_NAME] = bsearch(name, v->names, v->n, sizeof *v->names, cmp_name);
    return hit ? (long)(hit - v->names) : -1;
}

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_NAME || lb > MAX_NAME) return (size_t)-1;
    size_t row[MAX_NAME + 1];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* "unknown voice 'af_bela'; closest: af_bella, af_nicole, af_sky" */
static int unknown_voice(const koe_voices *v, const char *name, koe_error *err) {
    size_t best[3] = {(size_t)-1, (size_t)-1, (size_t)-1}, idx[3] = {0};
    for (size_t i = 0; i < v->n; i++) {
        size_t d = edit_distance(name, v->names[i]);
        for (int k = 0; k < 3; k++)
            if (d < best[k]) {
                for (int m = 2; m > k; m--) best[m] = best[m - 1], idx[m] = idx[m - 1];
                best[k] = d;
                idx[k] = i;
                break;
            }
    }
    char list[3 * MAX_NAME + 8] = "";
    for (int k = 0; k < 3 && best[k] != (size_t)-1; k++) {
        if (k) strcat(list, ", ");
        strcat(list, v->names[idx[k]]);
    }
    return koe_error_set(err, KOE_ERR_NOT_FOUND, "unknown voice '%.*s'; closest: %s", MAX_NAME,
                         name, list);
}

/* dst = w * pack (first) or dst += w * pack, read in chunks so that a blend needs no second
 * pack-sized buffer (w = 1 copies the pack exactly). */
static int read_pack(const koe_voices *v, size_t i, float w, int first, float *dst,
                     koe_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", v->dir, v->names[i]);
    FILE *f = fopen(path, "rb");
    if (!f) return koe_error_set(err, KOE_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    float chunk[4096];
    size_t done = 0;
    while (done < PACK_FLOATS) {
        size_t want = PACK_FLOATS - done < 4096 ? PACK_FLOATS - done : 4096;
        if (fread(chunk, 4, want, f) != want) break;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        /* The packs are little-endian float32 whatever the host. */
        for (size_t k = 0; k < want; k++) {
            uint32_t u;
            memcpy(&u, &chunk[k], 4);
            u = __builtin_bswap32(u);
            memcpy(&chunk[k], &u, 4);
        }
#endif
        float *d = dst + done;
        if (first)
            for (size_t k = 0; k < want; k++) d[k] = w * chunk[k];
        else
            for (size_t k = 0; k < want; k++) d[k] += w * chunk[k];
        done += want;
    }
    fclose(f);
    if (done != PACK_FLOATS) return koe_error_set(err, KOE_ERR_IO, "%s is truncated", path);
    return 0;
}

koe_voice *koe_voice_get(const koe_voices *v, const char *spec, koe_error *err) {
    if (!v || !spec) {
        koe_error_set(err, KOE_ERR_INVALID, "no voice given");
        return NULL;
    }
    size_t idx[MAX_PARTS];
    double wt[MAX_PARTS], total = 0;
    int n = 0;
    const char *p = spec;
    for (;;) {
        if (n == MAX_PARTS) {
            koe_error_set(err, KOE_ERR_INVALID, "a blend may mix at most %d voices", MAX_PARTS);
            return NULL;
        }
        size_t len = strcspn(p, ":+");
        char name[MAX_NAME];
        if (len == 0 || len >= MAX_NAME || !valid_name(p, len)) {
            koe_error_set(err, KOE_ERR_INVALID,
                          "voice '%.80s' is not a voice name or a blend like "
                          "af_bella:0.7+af_sky:0.3",
                          spec);
            return NULL;
        }
        memcpy(name, p, len);
        name[len] = 0;
        long i = koe_voices_find(v, name);
        if (i < 0) {
            unknown_voice(v, name, err);
            return NULL;
        }
        idx[n] = (size_t)i;
        wt[n] = 1;
        p += len;
        if (*p == ':') {
            char *end;
            errno = 0;
            wt[n] = strtod(p + 1, &end);
            if (end == p + 1 || errno || !(wt[n] > 0) || wt[n] > 1e6) {
                koe_error_set(err, KOE_ERR_INVALID,
                              "voice weight after '%s:' must be a positive number", name);
                return NULL;
            }
            p = end;
        }
        total += wt[n];
        n++;
        if (*p == 0) break;
        if (*p != '+') {
            koe_error_set(err, KOE_ERR_INVALID, "unexpected '%c' in voice '%.80s'", *p, spec);
            return NULL;
        }
        p++;
    }
    koe_voice *voice = calloc(1, sizeof *voice);
    if (voice) voice->rows = malloc(PACK_BYTES);
    if (!voice || !voice->rows) {
        koe_voice_free(voice);
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    voice->lang = lang_of(v->names[idx[0]][0]);
    size_t used = 0;
    for (int k = 0; k < n; k++) {
        float w = n == 1 ? 1.0f : (float)(wt[k] / total);
        if (read_pack(v, idx[k], w, k == 0, voice->rows, err)) {
            koe_voice_free(voice);
            return NULL;
        }
        if (n == 1)
            snprintf(voice->spec, sizeof voice->spec, "%s", v->names[idx[0]]);
        else
            used += (size_t)snprintf(voice->spec + used, sizeof voice->spec - used, "%s%s:%.3f",
                                     k ? "+" : "", v->names[idx[k]], wt[k] / total);
    }
    return voice;
}

void koe_voice_free(koe_voice *voice) {
    if (!voice) return;
    free(voice->rows);
    free(voice);
}

const float *koe_voice_style(const koe_voice *voice, int n_tokens) {
    int row = n_tokens - 1;
    if (row < 0) row = 0;
    if (row >= KOE_VOICE_ROWS) row = KOE_VOICE_ROWS - 1;
    return voice->rows + (size_t)row * KOE_VOICE_DIM;
}

const char *koe_voice_spec(const koe_voice *voice) {
    return voice->spec;
}
const char *koe_voice_lang(const koe_voice *voice) {
    return voice->lang;
}
