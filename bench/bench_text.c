/* bench_text: the text front end's speed.
 *
 * Generates its own public-domain-style prose (about 120,000 characters: narration, dialogue,
 * numbers, money, dates, abbreviations), then reports, as the median of N runs (default 5):
 *   - end to end: koe_text_process on the whole text (segmentation, normalization, espeak-ng
 *     phonemization, ids, split), in characters per second;
 *   - the stages alone: segmentation + normalization; phonemization + ids of every segment;
 *   - the baseline, same run: espeak-ng alone (espeak_TextToPhonemes over the normalized text,
 *     one call per clause) - the floor of any espeak-based front end;
 *   - a typical 200-character first segment: segmentation of the input plus tokens of the
 *     first segment, as the pipeline does before the first audio (warm; the first call of the
 *     process, which initializes espeak-ng, is reported separately).
 * Usage: bench_text [runs] */
#include "koe/base.h"
#include "koe/text.h"
#include "text/text_internal.h"

#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}
#define PICK(a) (a)[rnd(sizeof(a) / sizeof((a)[0]))]

static const char *names[] = {"Martha",    "John",      "Eliza",         "Thomas", "Dr. Hale",
                              "Mr. Crane", "Mrs. Ward", "Captain Moore", "Anna",   "Samuel"};
static const char *places[] = {"the harbour",    "the old mill",      "London",
                               "the village",    "St. Mary's church", "the northern road",
                               "the river bank", "the market square", "Boston",
                               "the lighthouse"};
static const char *verbs[] = {"walked to",    "looked toward", "wrote about", "remembered",
                              "hurried past", "spoke of",      "returned to", "waited near",
                              "thought of",   "sailed from"};
static const char *adjs[] = {"quiet", "grey",  "distant", "cold",  "bright",   "narrow",
                             "old",   "green", "silent",  "windy", "familiar", "crowded"};
static const char *nouns[] = {"morning", "letter", "storm",  "garden", "window", "journey",
                              "bell",    "winter", "supper", "bridge", "candle", "ship"};
static const char *extras[] = {
    "in 1848",        "on 12 March",       "at 6:30 pm",         "for $3.50",
    "with 42 others", "about 1,200 miles", "on the 3rd of June", "for nearly 20 years",
    "at 10-20 mph",   "with 75% of them",  "e.g. the fishermen", "by 1901",
    "for £12",        "until 9:00",        "for the 2nd time",   "near 3.5 km away"};

static void sentence(koe_buf *b) {
    switch (rnd(5)) {
    case 0:
        koe_buf_printf(b, "%s %s %s %s, and the %s %s seemed %s.", PICK(names), PICK(verbs),
                       PICK(places), PICK(extras), PICK(adjs), PICK(nouns), PICK(adjs));
        break;
    case 1:
        koe_buf_printf(b, "\"I have not seen the %s since %s,\" said %s; \"it was %s then.\"",
                       PICK(nouns), PICK(places), PICK(names), PICK(adjs));
        break;
    case 2:
        koe_buf_printf(b, "The %s %s was %s, %s, and %s.", PICK(adjs), PICK(nouns), PICK(adjs),
                       PICK(adjs), PICK(adjs));
        break;
    case 3:
        koe_buf_printf(b, "Why had %s %s %s %s?", PICK(names), PICK(verbs), PICK(places),
                       PICK(extras));
        break;
    default:
        koe_buf_printf(b, "%s %s %s %s — a %s %s — before the %s came.", PICK(names), PICK(verbs),
                       PICK(places), PICK(extras), PICK(adjs), PICK(nouns), PICK(nouns));
    }
}

static char *make_text(size_t min_chars, size_t *len) {
    koe_buf b = {0};
    while (b.len < min_chars) {
        int n = 3 + (int)rnd(5);
        for (int i = 0; i < n; i++) {
            if (i) koe_buf_append(&b, " ", 1);
            sentence(&b);
        }
        koe_buf_append_str(&b, "\n\n");
    }
    koe_buf_terminate(&b);
    *len = b.len;
    return b.data;
}

static size_t count_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* The pipeline's first step: segment everything, then tokens for the first segment only. */
static double first_segment_ms(const char *text, size_t len, const koe_text_opts *o,
                               size_t *seg_chars) {
    uint64_t t0 = koe_now_ns();
    koe_segments *s = NULL;
    koe_tokens t;
    koe_error err = {0};
    if (koe_text_segment(text, len, o, &s, &err) || !s->count ||
        koe_text_tokens(s->items[0].normalized, s->items[0].normalized_len, "en-us", &t, &err)) {
        fprintf(stderr, "bench_text: %s\n", err.msg);
        exit(1);
    }
    double ms = (double)(koe_now_ns() - t0) / 1e6;
    *seg_chars = count_chars(text + s->items[0].start, s->items[0].end - s->items[0].start);
    koe_tokens_free(&t);
    koe_segments_free(s);
    return ms;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 100) runs = 5;
    koe_text_cache_set_capacity(0); /* measure espeak-ng, not the phoneme cache's hits */
    size_t len;
    char *text = make_text(120000, &len);
    size_t chars = count_chars(text, len);

    /* A typical first request: about 200 characters, the first sentence ending after 150. */
    const char *first_text = "The lighthouse keeper walked slowly along the rocky shore at "
                             "6:30 pm, watching the grey waves roll in from the distant "
                             "horizon while the gulls cried above the harbour wall and the "
                             "boats came home.";
    size_t first_len = strlen(first_text), first_chars = 0;
    /* first_min 180: the whole 200-character sentence is the first segment */
    koe_text_opts first_opts = koe_text_opts_default();
    first_opts.first_min = 180;
    first_opts.first_max = 250;
    double cold = first_segment_ms(first_text, first_len, &first_opts, &first_chars);

    double *e2e = calloc((size_t)runs, sizeof *e2e), *seg = calloc((size_t)runs, sizeof *seg),
           *tok = calloc((size_t)runs, sizeof *tok), *base = calloc((size_t)runs, sizeof *base),
           *first = calloc((size_t)runs, sizeof *first);
    size_t nseg = 0, ntok = 0, dropped = 0;
    for (int r = 0; r < runs; r++) {
        koe_error err = {0};
        /* end to end */
        uint64_t t0 = koe_now_ns();
        koe_text_result *res = NULL;
        if (koe_text_process(text, len, NULL, &res, &err)) {
            fprintf(stderr, "bench_text: %s\n", err.msg);
            return 1;
        }
        e2e[r] = (double)(koe_now_ns() - t0) / 1e9;
        nseg = res->segments->count;
        ntok = 0;
        dropped = res->dropped;
        for (size_t i = 0; i < nseg; i++)
            for (size_t c = 0; c < res->tokens[i].nchunks; c++)
                ntok += res->tokens[i].chunks[c].count;
        koe_text_result_free(res);

        /* segmentation + normalization alone */
        t0 = koe_now_ns();
        koe_segments *s = NULL;
        koe_text_segment(text, len, NULL, &s, &err);
        seg[r] = (double)(koe_now_ns() - t0) / 1e9;

        /* phonemization + ids of every segment */
        t0 = koe_now_ns();
        for (size_t i = 0; i < s->count; i++) {
            koe_tokens t;
            koe_text_tokens(s->items[i].normalized, s->items[i].normalized_len, "en-us", &t, &err);
            koe_tokens_free(&t);
        }
        tok[r] = (double)(koe_now_ns() - t0) / 1e9;

        /* baseline: espeak-ng alone over the same normalized text, clause by clause */
        koe_buf all = {0}, ipa = {0};
        for (size_t i = 0; i < s->count; i++) {
            koe_buf_append(&all, s->items[i].normalized, s->items[i].normalized_len);
            koe_buf_append(&all, " ", 1);
        }
        koe_buf_terminate(&all);
        t0 = koe_now_ns();
        if (koe_espeak_lock("en-us", &err) == 0) {
            koe_espeak_ipa_locked(all.data, &ipa, &err);
            koe_espeak_unlock();
        }
        base[r] = (double)(koe_now_ns() - t0) / 1e9;
        koe_buf_free(&all);
        koe_buf_free(&ipa);
        koe_segments_free(s);

        first[r] = first_segment_ms(first_text, first_len, &first_opts, &first_chars);
    }
    /* Changing espeak-ng's language reloads its dictionary: the cost of one switch and back. */
    double *sw = calloc((size_t)runs, sizeof *sw);
    for (int r = 0; r < runs; r++) {
        koe_tokens t;
        uint64_t t0 = koe_now_ns();
        koe_text_tokens("Good evening.", 13, "en-gb", &t, NULL);
        koe_tokens_free(&t);
        koe_text_tokens("Good evening.", 13, "en-us", &t, NULL);
        koe_tokens_free(&t);
        sw[r] = (double)(koe_now_ns() - t0) / 1e6;
    }
    double m_sw = bench_median(sw, runs);
    free(sw);
    /* koe_text_segment normalizes the whole input before the first segment can be phonemized:
     * its cost on a 1 MB input (the text repeated) is time to first audio for a long input. */
    koe_buf big = {0};
    while (big.len < 1000000) {
        koe_buf_append(&big, text, len);
        koe_buf_append(&big, "\n\n", 2);
    }
    double *mb = calloc((size_t)runs, sizeof *mb);
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = koe_now_ns();
        koe_segments *s = NULL;
        koe_text_segment(big.data, big.len, NULL, &s, NULL);
        mb[r] = (double)(koe_now_ns() - t0) / 1e6;
        koe_segments_free(s);
    }
    double m_mb = bench_median(mb, runs);
    size_t big_len = big.len;
    free(mb);
    koe_buf_free(&big);
    double m_e2e = bench_median(e2e, runs), m_seg = bench_median(seg, runs),
           m_tok = bench_median(tok, runs), m_base = bench_median(base, runs),
           m_first = bench_median(first, runs);
    printf("text: %zu characters (%zu bytes), %zu segments, %zu tokens, %zu dropped; median of "
           "%d runs\n",
           chars, len, nseg, ntok, dropped, runs);
    printf("end to end (koe_text_process)      %8.1f ms  %10.0f chars/s\n", m_e2e * 1e3,
           (double)chars / m_e2e);
    printf("  segmentation + normalization     %8.1f ms  %10.0f chars/s\n", m_seg * 1e3,
           (double)chars / m_seg);
    printf("  phonemization + ids + split      %8.1f ms  %10.0f chars/s\n", m_tok * 1e3,
           (double)chars / m_tok);
    printf("baseline: espeak-ng alone          %8.1f ms  %10.0f chars/s\n", m_base * 1e3,
           (double)chars / m_base);
    printf("first segment (%zu chars): %.3f ms warm (median), %.3f ms cold (first call, "
           "espeak-ng start-up)\n",
           first_chars, m_first, cold);
    printf("segmentation + normalization of %zu bytes (the text repeated): %.1f ms\n", big_len,
           m_mb);
    printf("language switch en-us -> en-gb -> en-us with two short texts: %.2f ms\n", m_sw);
    free(e2e), free(seg), free(tok), free(base), free(first);
    free(text);
    return 0;
}
