/* Segmentation: sentences, then clauses or words where a segment would be too long, with a
 * deliberately short first segment; every segment carries its byte span in the input, and the
 * coverage check proves that the spans tile the input. No espeak-ng here: it must be fast. */
#include "text/text_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

koe_text_opts koe_text_opts_default(void) {
    koe_text_opts o = {"en-us", 20, 150, 400, 0};
    return o;
}

/* Whitespace between segments (the coverage check accepts exactly these outside the spans). */
static int is_ws(uint32_t cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static int is_terminal(uint32_t cp) {
    return cp == '.' || cp == '!' || cp == '?' || cp == 0x2026 /* … */ || cp == 0x203C ||
           cp == 0x2047 || cp == 0x2048 || cp == 0x2049 || cp == 0x3002 /* 。 */;
}

static int is_closer(uint32_t cp) {
    return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == '}' || cp == 0x201D ||
           cp == 0x2019 || cp == 0xBB /* » */;
}

static int is_clause_mark(uint32_t cp) {
    return cp == ',' || cp == ';' || cp == ':' || cp == 0x2013 || cp == 0x2014 || cp == '-' ||
           cp == 0xFF0C || cp == 0x3001;
}

static uint32_t cp_at(const char *s, size_t len, size_t i, int *n) {
    uint32_t cp = 0;
    if (i >= len) {
        *n = 0;
        return 0;
    }
    *n = koe_utf8_decode(s + i, &cp);
    return cp;
}

/* Abbreviations whose period never ends a sentence (a name or number follows). */
static const char *const never_final[] = {
    "mr",   "mrs", "ms",  "dr",     "prof", "st",  "jr",  "sr", "mt",
    "no",   "fig", "vs",  "e.g",    "i.e",  "gen", "col", "lt", "sgt",
    "capt", "rev", "hon", "approx", "ca",   "cf",  "vol", "pp", "p",
};
/* Abbreviations that end a sentence when a capital letter (or the end) follows. */
static const char *const maybe_final[] = {
    "etc", "inc",  "ltd", "co",  "corp", "jan", "feb", "mar",  "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec",  "a.m", "p.m", "dept", "est", "u.s", "u.k",
};

static int in_list(const char *const *list, size_t n, const char *w, size_t wl) {
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == wl && !strncasecmp(list[i], w, wl)) return 1;
    return 0;
}

/* Does the period at in[dot] end a sentence? word_start is where its word begins. */
static int period_ends_sentence(const char *in, size_t len, size_t word_start, size_t dot,
                                size_t after) {
    size_t wl = dot - word_start;
    const char *w = in + word_start;
    while (wl && (*w == '"' || *w == '(' || *w == '\'')) w++, wl--;
    if (wl == 1 && isalpha((unsigned char)w[0])) return 0; /* an initial: "J. R. R. Tolkien" */
    if (in_list(never_final, sizeof never_final / sizeof never_final[0], w, wl)) return 0;
    if (in_list(maybe_final, sizeof maybe_final / sizeof maybe_final[0], w, wl)) {
        size_t k = after;
        int n;
        while (k < len && is_ws(cp_at(in, len, k, &n))) k += (size_t)n;
        return k >= len || isupper((unsigned char)in[k]);
    }
    return 1;
}

typedef struct cut {
    size_t end;       /* exclusive byte offset of the segment's end */
    int sentence_end; /* 1 at a sentence end */
} cut;

/* The longest segment number k may be: the first's bound; then, with a ramp, that bound times
 * ramp^k, and also no more than ramp times the characters of all the segments before it (their
 * audio is what a listener has buffered while this one is synthesized: a first segment cut short
 * at an early clause mark must not be followed by one many times its length); until
 * segment_max. */
static size_t segment_limit(const koe_text_opts *o, size_t k, size_t before) {
    if (k == 0) return o->first_max;
    if (!(o->ramp > 1.0)) return o->segment_max;
    double lim = (double)o->first_max;
    for (size_t i = 0; i < k && lim < (double)o->segment_max; i++) lim *= o->ramp;
    double by_buffer = o->ramp * (double)before;
    if (by_buffer < lim) lim = by_buffer;
    if (lim < 1) lim = 1;
    return lim < (double)o->segment_max ? (size_t)lim : o->segment_max;
}

/* Characters (code points) in [a, b). */
static size_t count_chars(const char *in, size_t a, size_t b) {
    size_t n = 0;
    for (size_t i = a; i < b; i++) n += ((unsigned char)in[i] & 0xC0) != 0x80;
    return n;
}

/* Finds where segment number `index`, starting at pos (a non-space character), ends. */
static cut find_cut(const char *in, size_t len, size_t pos, size_t index, size_t before,
                    const koe_text_opts *o) {
    int first = index == 0;
    size_t max = segment_limit(o, index, before);
    size_t min = first ? o->first_min : 0;
    if (max < 1) max = 1;
    size_t chars = 0, word_start = pos, last_word = 0, last_clause = 0, last_nonws = pos;
    size_t i = pos;
    while (i < len) {
        int n;
        uint32_t c = cp_at(in, len, i, &n);
        size_t next = i + (size_t)n;
        chars++;
        if (is_ws(c)) {
            /* A blank line ends a paragraph, whatever its length. */
            if (c == '\n') {
                size_t k = next;
                int m;
                uint32_t d;
                while (k < len && is_ws(d = cp_at(in, len, k, &m))) {
                    if (d == '\n') return (cut){last_nonws, 1};
                    k += (size_t)m;
                }
            }
            word_start = next;
        } else {
            last_nonws = next;
            uint32_t after_c = cp_at(in, len, next, &n);
            int ws_next = next >= len || is_ws(after_c);
            if (is_terminal(c)) {
                /* The whole run of marks and closing quotes/brackets stays with the sentence. */
                size_t k = next;
                int m;
                uint32_t d;
                while (k < len && (is_terminal(d = cp_at(in, len, k, &m)) || is_closer(d)))
                    k += (size_t)m;
                if ((k >= len || is_ws(cp_at(in, len, k, &m))) &&
                    (c != '.' || k != next || period_ends_sentence(in, len, word_start, i, k))) {
                    if (chars >= min) return (cut){k, 1};
                    last_clause = k;
                }
            } else if (is_clause_mark(c) && ws_next && (c != '-' || word_start == i)) {
                if (first && chars >= min) return (cut){next, 0};
                last_clause = next;
            }
            if (ws_next) last_word = next;
        }
        if (chars >= max && next < len) {
            /* Too long: a clause end in the second half, else the last word, else right here
             * (one giant word: cut between characters). */
            if (!first && last_clause > pos + (next - pos) / 2) return (cut){last_clause, 0};
            if (last_word > pos) return (cut){last_word, 0};
            if (!is_ws(c)) return (cut){next, 0};
        }
        i = next;
    }
    return (cut){last_nonws, 1};
}

void koe_segments_free(koe_segments *s) {
    if (!s) return;
    for (size_t i = 0; i < s->count; i++) free(s->items[i].normalized);
    free(s->items);
    free(s);
}

int koe_text_segment(const char *in, size_t len, const koe_text_opts *o, koe_segments **out,
                     koe_error *err) {
    if (!out) return koe_error_set(err, KOE_ERR_INVALID, "segment: no output");
    *out = NULL;
    if (!in && len) return koe_error_set(err, KOE_ERR_INVALID, "segment: no text");
    if (!in) in = "";
    koe_text_opts opts = o ? *o : koe_text_opts_default();
    koe_text_opts def = koe_text_opts_default();
    if (!opts.lang) opts.lang = def.lang;
    if (!opts.first_max) opts.first_max = def.first_max;
    if (!opts.segment_max) opts.segment_max = def.segment_max;
    int rc = koe_text_lang_check(opts.lang, err);
    if (rc) return rc;
    size_t bad = koe_utf8_validate(in, len);
    if (bad != len)
        return koe_error_set(err, KOE_ERR_INVALID,
                             "invalid UTF-8 at byte %zu (byte 0x%02X): the text must be UTF-8", bad,
                             (unsigned)(unsigned char)in[bad]);
    koe_segments *s = calloc(1, sizeof *s);
    if (!s) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    size_t cap = 0, pos = 0, before = 0;
    koe_buf norm = {0};
    for (;;) {
        int n;
        while (pos < len && is_ws(cp_at(in, len, pos, &n))) pos += (size_t)n;
        if (pos >= len) break;
        cut c = find_cut(in, len, pos, s->count, before, &opts);
        if (c.end <= pos) { /* cannot happen: a segment holds at least one character */
            rc = koe_error_set(err, KOE_ERR_INTERNAL, "segmentation stalled at byte %zu", pos);
            break;
        }
        if (s->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            koe_segment *p = realloc(s->items, ncap * sizeof *p);
            if (!p) {
                rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
                break;
            }
            s->items = p;
            cap = ncap;
        }
        koe_segment *seg = &s->items[s->count];
        memset(seg, 0, sizeof *seg);
        seg->start = pos;
        seg->end = c.end;
        seg->sentence_end = c.sentence_end;
        norm.len = 0;
        rc = koe_text_normalize(in + pos, c.end - pos, opts.lang, &norm, &seg->dropped, err);
        if (rc) break;
        seg->normalized = malloc(norm.len + 1);
        if (!seg->normalized) {
            rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(seg->normalized, norm.data ? norm.data : "", norm.len);
        seg->normalized[norm.len] = 0;
        seg->normalized_len = norm.len;
        s->dropped += seg->dropped;
        s->count++;
        before += count_chars(in, pos, c.end);
        pos = c.end;
    }
    koe_buf_free(&norm);
    if (!rc) rc = koe_text_check_coverage(in, len, s, err);
    if (rc) {
        koe_segments_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int is_boundary(const char *in, size_t len, size_t i) {
    return i == 0 || i >= len || ((unsigned char)in[i] & 0xC0) != 0x80;
}

int koe_text_check_coverage(const char *in, size_t len, const koe_segments *s, koe_error *err) {
    if (!s) return koe_error_set(err, KOE_ERR_INTERNAL, "coverage: no segments");
    if (!in && len) return koe_error_set(err, KOE_ERR_INTERNAL, "coverage: no input");
    size_t pos = 0;
    for (size_t k = 0; k <= s->count; k++) {
        size_t next = k < s->count ? s->items[k].start : len;
        if (k < s->count) {
            const koe_segment *g = &s->items[k];
            if (g->start < pos || g->end <= g->start || g->end > len)
                return koe_error_set(err, KOE_ERR_INTERNAL,
                                     "coverage: segment %zu [%zu, %zu) overlaps, is empty or "
                                     "passes the end (previous end %zu, input %zu bytes)",
                                     k, g->start, g->end, pos, len);
            if (!is_boundary(in, len, g->start) || !is_boundary(in, len, g->end))
                return koe_error_set(err, KOE_ERR_INTERNAL,
                                     "coverage: segment %zu [%zu, %zu) splits a UTF-8 character", k,
                                     g->start, g->end);
        }
        /* Only whitespace may lie between the previous span and this one. */
        while (pos < next) {
            int n;
            uint32_t cp = cp_at(in, len, pos, &n);
            if (n <= 0 || !is_ws(cp))
                return koe_error_set(err, KOE_ERR_INTERNAL,
                                     "coverage: byte %zu (before segment %zu) is in no segment",
                                     pos, k);
            pos += (size_t)n;
        }
        if (k < s->count) pos = s->items[k].end;
    }
    return 0;
}
