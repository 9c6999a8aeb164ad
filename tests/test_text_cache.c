/* The phoneme cache of the text front end: a hit gives exactly the tokens a miss gives (and
 * what the cache switched off gives), the byte bound holds under eviction in LRU order, it
 * stays right under many threads, capacity 0 turns it off, failures are not cached. */
#include "harness.h"
#include "koe/base.h"
#include "koe/text.h"
#include "text/text_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libespeak-ng.so\n";
}

static const struct {
    const char *lang, *text;
} samples[] = {
    {"en-us", "Hello there, this is koe."},
    {"en-us", "The quick brown fox jumps over the lazy dog; then it rests!"},
    {"en-gb", "Hello there, this is koe."}, /* same text, other language: its own entry */
    {"fr", "Bonjour, comment allez-vous ?"},
    {"es", "¿Dónde está la biblioteca?"},
    {"it", "Buongiorno a tutti."},
    {"en-us", ""},
    {"en-us", "..."},
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

/* 1 when a and b are the same tokens, field by field. */
static int tokens_equal(const koe_tokens *a, const koe_tokens *b) {
    if (a->nchunks != b->nchunks || a->dropped != b->dropped) return 0;
    if (strcmp(a->phonemes, b->phonemes)) return 0;
    for (size_t c = 0; c < a->nchunks; c++) {
        const koe_token_chunk *x = &a->chunks[c], *y = &b->chunks[c];
        if (x->count != y->count || memcmp(x->ids, y->ids, x->count * sizeof *x->ids) ||
            strcmp(x->phonemes, y->phonemes))
            return 0;
    }
    return 1;
}

static int tokens_of(const char *lang, const char *text, koe_tokens *t) {
    koe_error err = {0};
    int rc = koe_text_tokens(text, strlen(text), lang, t, &err);
    if (rc) fprintf(stderr, "tokens(%s, %s): %s\n", lang, text, err.msg);
    return rc;
}

/* A text long enough to be split into several chunks of at most 510 ids. */
static char *long_text(void) {
    koe_buf b = {0};
    for (int i = 0; i < 60; i++)
        koe_buf_printf(&b, "Sentence number %d is here, and it goes on a little. ", i);
    koe_buf_terminate(&b);
    return b.data;
}

static void test_hit_equals_miss(void) {
    koe_text_cache_set_capacity(KOE_TEXT_CACHE_DEFAULT);
    koe_text_cache_clear();
    char *lt = long_text();
    for (size_t i = 0; i <= NSAMPLES; i++) {
        const char *lang = i < NSAMPLES ? samples[i].lang : "en-us";
        const char *text = i < NSAMPLES ? samples[i].text : lt;
        koe_text_cache_stats s0, s1, s2;
        koe_text_cache_get_stats(&s0);
        koe_tokens miss, hit, off;
        KT_CHECK(!tokens_of(lang, text, &miss), "miss %zu", i);
        koe_text_cache_get_stats(&s1);
        KT_CHECK(s1.misses == s0.misses + 1 && s1.hits == s0.hits, "sample %zu: first is a miss",
                 i);
        KT_CHECK(s1.entries == s0.entries + 1, "sample %zu: stored (%zu entries)", i, s1.entries);
        KT_CHECK(!tokens_of(lang, text, &hit), "hit %zu", i);
        koe_text_cache_get_stats(&s2);
        KT_CHECK(s2.hits == s1.hits + 1 && s2.misses == s1.misses, "sample %zu: second is a hit",
                 i);
        KT_CHECK(tokens_equal(&miss, &hit), "sample %zu (%s): hit gives the miss's tokens", i,
                 lang);
        /* and both equal a fresh phonemization with the cache off */
        koe_text_cache_set_capacity(0);
        KT_CHECK(!tokens_of(lang, text, &off), "off %zu", i);
        KT_CHECK(tokens_equal(&miss, &off), "sample %zu: cache off gives the same tokens", i);
        koe_text_cache_set_capacity(KOE_TEXT_CACHE_DEFAULT);
        if (i == NSAMPLES) KT_CHECK(hit.nchunks > 1, "long text: %zu chunks", hit.nchunks);
        koe_tokens_free(&miss);
        koe_tokens_free(&hit);
        koe_tokens_free(&off);
        /* turning the cache off emptied it: put this sample's entry back for the next round */
        koe_tokens again;
        tokens_of(lang, text, &again);
        koe_tokens_free(&again);
    }
    free(lt);
}

static void test_eviction_bound_lru(void) {
    const size_t cap = 4096;
    koe_text_cache_set_capacity(cap);
    koe_text_cache_clear();
    char text[64], value[200];
    memset(value, 'x', sizeof value);
    size_t max_entries = 0, over = 0;
    for (int i = 0; i < 500; i++) {
        int n = snprintf(text, sizeof text, "entry %d", i);
        koe_text_cache_put("en-us", text, (size_t)n, value, sizeof value);
        /* keep entry 0 in use: it must survive, being never the least recently used */
        koe_buf b = {0};
        if (!koe_text_cache_get("en-us", "entry 0", 7, &b)) over++;
        koe_buf_free(&b);
        koe_text_cache_stats s;
        koe_text_cache_get_stats(&s);
        if (s.bytes > cap) over++;
        if (s.entries > max_entries) max_entries = s.entries;
    }
    KT_CHECK(over == 0, "bytes stayed <= %zu and entry 0 stayed (%zu violations)", cap, over);
    koe_text_cache_stats s;
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.entries >= 5 && s.entries < 500, "%zu entries held in %zu bytes", s.entries, cap);
    /* the newest are there, the oldest (other than entry 0) are gone */
    koe_buf b = {0};
    KT_CHECK(koe_text_cache_get("en-us", "entry 499", 9, &b), "newest entry held");
    KT_CHECK(b.len == sizeof value && !memcmp(b.data, value, b.len), "its value intact");
    koe_buf_free(&b);
    KT_CHECK(!koe_text_cache_get("en-us", "entry 1", 7, &b), "oldest entry evicted");
    koe_buf_free(&b);
    /* an entry bigger than the whole cache is not stored and evicts nothing */
    char *huge = malloc(cap + 1);
    memset(huge, 'y', cap + 1);
    koe_text_cache_stats before, after;
    koe_text_cache_get_stats(&before);
    koe_text_cache_put("en-us", "huge", 4, huge, cap + 1);
    koe_text_cache_get_stats(&after);
    KT_CHECK(after.entries == before.entries && after.bytes == before.bytes,
             "an entry over the capacity is refused");
    free(huge);
    /* lowering the capacity evicts at once */
    koe_text_cache_set_capacity(1024);
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.bytes <= 1024 && s.capacity == 1024, "shrunk to %zu bytes (cap 1024)", s.bytes);
    KT_CHECK(koe_text_cache_get("en-us", "entry 0", 7, &b), "the most recent survives a shrink");
    koe_buf_free(&b);
    /* the same text in another language is another key */
    KT_CHECK(!koe_text_cache_get("en-gb", "entry 0", 7, &b), "lang is part of the key");
    koe_buf_free(&b);
}

static void test_capacity_zero(void) {
    koe_text_cache_set_capacity(KOE_TEXT_CACHE_DEFAULT);
    koe_tokens t;
    tokens_of("en-us", "Something to remember.", &t);
    koe_tokens_free(&t);
    koe_text_cache_stats s;
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.entries > 0, "entries before turning off");
    koe_text_cache_set_capacity(0);
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.entries == 0 && s.bytes == 0 && s.capacity == 0, "off: emptied");
    uint64_t h = s.hits, m = s.misses;
    for (int i = 0; i < 3; i++) {
        KT_CHECK(!tokens_of("en-us", "Something to remember.", &t), "tokens with cache off");
        KT_CHECK(t.nchunks == 1 && t.chunks[0].count > 5, "and they are real tokens");
        koe_tokens_free(&t);
    }
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.entries == 0 && s.hits == h && s.misses == m, "off: nothing stored or counted");
    koe_text_cache_put("en-us", "x", 1, "y", 1);
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.entries == 0, "off: put stores nothing");
}

static void test_failures_not_cached(void) {
    koe_text_cache_set_capacity(KOE_TEXT_CACHE_DEFAULT);
    koe_text_cache_clear();
    koe_tokens t;
    koe_error err = {0};
    const char bad[] = "caf\xc3";
    for (int i = 0; i < 2; i++) {
        int rc = koe_text_tokens(bad, sizeof bad - 1, "en-us", &t, &err);
        KT_CHECK(rc == KOE_ERR_INVALID, "invalid UTF-8 refused (try %d): %d", i, rc);
        koe_tokens_free(&t);
    }
    KT_CHECK(koe_text_tokens("hello", 5, "xx-yy", &t, &err) != 0, "unknown language refused");
    koe_tokens_free(&t);
    KT_CHECK(koe_text_tokens("hello", 5, "xx-yy", &t, &err) != 0, "and again");
    koe_tokens_free(&t);
    koe_text_cache_stats s;
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.entries == 0, "no failure stored (%zu entries)", s.entries);
}

/* ---- threads: many readers and writers over a small cache that keeps evicting ---- */

static koe_tokens reference[NSAMPLES];
static int thread_bad;
static pthread_mutex_t bad_mu = PTHREAD_MUTEX_INITIALIZER;
#define ROUNDS 60

static void *worker(void *arg) {
    unsigned k = (unsigned)(size_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        size_t i = (k * 7 + (unsigned)r * 3) % NSAMPLES;
        koe_tokens t;
        koe_error err = {0};
        int rc =
            koe_text_tokens(samples[i].text, strlen(samples[i].text), samples[i].lang, &t, &err);
        if (rc || !tokens_equal(&t, &reference[i])) {
            pthread_mutex_lock(&bad_mu);
            thread_bad++;
            pthread_mutex_unlock(&bad_mu);
        }
        koe_tokens_free(&t);
    }
    return NULL;
}

static void test_threads(void) {
    koe_text_cache_set_capacity(0);
    for (size_t i = 0; i < NSAMPLES; i++)
        tokens_of(samples[i].lang, samples[i].text, &reference[i]);
    /* room for a few entries only: hits, misses and evictions all happen concurrently */
    const size_t cap = 1200;
    koe_text_cache_set_capacity(cap);
    koe_text_cache_clear();
    enum { NT = 8 };
    pthread_t th[NT];
    for (size_t k = 0; k < NT; k++) pthread_create(&th[k], NULL, worker, (void *)k);
    for (size_t k = 0; k < NT; k++) pthread_join(th[k], NULL);
    KT_CHECK(thread_bad == 0, "%d results differed from the reference", thread_bad);
    koe_text_cache_stats s;
    koe_text_cache_get_stats(&s);
    KT_CHECK(s.hits + s.misses == NT * ROUNDS, "every lookup counted (%llu + %llu)",
             (unsigned long long)s.hits, (unsigned long long)s.misses);
    KT_CHECK(s.hits > 0 && s.misses > 0, "both hits (%llu) and misses (%llu) happened",
             (unsigned long long)s.hits, (unsigned long long)s.misses);
    KT_CHECK(s.bytes <= cap, "bytes %zu <= %zu", s.bytes, cap);
    for (size_t i = 0; i < NSAMPLES; i++) koe_tokens_free(&reference[i]);
}

int main(void) {
    kt_run("hit equals miss", test_hit_equals_miss);
    kt_run("eviction keeps the byte bound, in LRU order", test_eviction_bound_lru);
    kt_run("capacity 0 turns the cache off", test_capacity_zero);
    kt_run("failures are not cached", test_failures_not_cached);
    kt_run("threads", test_threads);
    koe_text_cache_clear();
    return kt_finish();
}
