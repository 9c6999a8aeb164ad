/* The server's finished-audio cache (src/server/audio_cache.c) on its own: hits return the
 * stored bytes, the byte bound holds in LRU order, an answer being replayed survives its
 * eviction, the collection budget, the largest entry, capacity 0, and many threads at once. */
#include "harness.h"
#include "server/audio_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *filled(size_t n, int seed) {
    unsigned char *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + (size_t)seed);
    return p;
}

static int is_filled(const audio_blob *b, size_t n, int seed) {
    if (!b || b->len != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (b->data[i] != (unsigned char)(i * 31 + (size_t)seed)) return 0;
    return 1;
}

static void test_hit_and_miss(void) {
    audio_cache *c = audio_cache_new(1 << 20);
    KT_EXPECT(audio_cache_enabled(c));
    KT_EXPECT(audio_cache_get(c, "a", 1) == NULL);
    audio_cache_put(c, "a", 1, filled(1000, 1), 1000);
    const audio_blob *b = audio_cache_get(c, "a", 1);
    KT_CHECK(is_filled(b, 1000, 1), "the stored bytes come back");
    audio_cache_release(c, b);
    /* keys differ by any byte, including after a NUL */
    KT_EXPECT(audio_cache_get(c, "a\0x", 3) == NULL);
    KT_EXPECT(audio_cache_get(c, "b", 1) == NULL);
    /* a key already present keeps its first answer */
    audio_cache_put(c, "a", 1, filled(1000, 2), 1000);
    b = audio_cache_get(c, "a", 1);
    KT_CHECK(is_filled(b, 1000, 1), "first answer kept");
    audio_cache_release(c, b);
    audio_cache_stats s;
    audio_cache_get_stats(c, &s);
    KT_CHECK(s.hits == 2 && s.misses == 3 && s.entries == 1 && s.inserts == 1,
             "counts: %llu hits %llu misses %zu entries", (unsigned long long)s.hits,
             (unsigned long long)s.misses, s.entries);
    KT_CHECK(s.bytes >= 1001 && s.bytes < 1200, "bytes %zu count the answer and the key", s.bytes);
    audio_cache_free(c);
}

static void test_bound_lru_and_held(void) {
    const size_t cap = 64 * 1024, n = 10000; /* entries of at most cap / 4 */
    audio_cache *c = audio_cache_new(cap);
    KT_EXPECT(audio_cache_max_entry(c) == cap / 4);
    const audio_blob *held = NULL;
    int over = 0;
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "k%d", i);
        audio_cache_put(c, key, strlen(key), filled(n, i), n);
        if (i == 0) held = audio_cache_get(c, "k0", 2); /* a response replaying k0 */
        /* keep k1 recently used: it must survive */
        const audio_blob *b = audio_cache_get(c, "k1", 2);
        if (i >= 1 && !b) over++;
        audio_cache_release(c, b);
        audio_cache_stats s;
        audio_cache_get_stats(c, &s);
        if (s.bytes > cap) over++;
    }
    KT_CHECK(over == 0, "bound held and k1 kept (%d violations)", over);
    const audio_blob *b = audio_cache_get(c, "k0", 2);
    KT_CHECK(b == NULL, "k0 was evicted");
    KT_CHECK(is_filled(held, n, 0), "the replayed k0 is intact after its eviction");
    audio_cache_release(c, held); /* freed now (ASan would see a leak or a double free) */
    b = audio_cache_get(c, "k39", 3);
    KT_CHECK(is_filled(b, n, 39), "the newest is there");
    audio_cache_release(c, b);
    /* the largest entry: a quarter of the capacity */
    audio_cache_stats before, after;
    audio_cache_get_stats(c, &before);
    audio_cache_put(c, "big", 3, filled(cap / 4 + 1, 7), cap / 4 + 1);
    audio_cache_get_stats(c, &after);
    KT_CHECK(after.entries == before.entries && after.inserts == before.inserts,
             "an answer over a quarter of the capacity is not stored");
    KT_CHECK(after.evictions == before.evictions, "and evicts nothing");
    audio_cache_free(c); /* frees what it holds */
}

static void test_budget_and_off(void) {
    audio_cache *c = audio_cache_new(1000);
    KT_EXPECT(audio_cache_reserve(c, 600));
    KT_EXPECT(!audio_cache_reserve(c, 600)); /* over the budget */
    KT_EXPECT(audio_cache_reserve(c, 400));
    audio_cache_stats s;
    audio_cache_get_stats(c, &s);
    KT_CHECK(s.pending == 1000, "pending %zu", s.pending);
    audio_cache_unreserve(c, 1000);
    audio_cache_get_stats(c, &s);
    KT_CHECK(s.pending == 0, "all given back");
    audio_cache_free(c);

    audio_cache *off = audio_cache_new(0);
    KT_EXPECT(off && !audio_cache_enabled(off));
    KT_EXPECT(!audio_cache_reserve(off, 1));
    audio_cache_put(off, "a", 1, filled(10, 1), 10); /* freed, not kept */
    KT_EXPECT(audio_cache_get(off, "a", 1) == NULL);
    audio_cache_get_stats(off, &s);
    KT_CHECK(s.entries == 0 && s.hits == 0 && s.misses == 0 && s.capacity == 0,
             "off: nothing stored or counted");
    audio_cache_free(off);
    audio_cache_free(NULL);
}

/* ---- threads: readers replaying while writers insert and evict ---- */

static audio_cache *shared;
static int thread_bad;
static pthread_mutex_t bad_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    int k = (int)(size_t)arg, bad = 0;
    char key[16];
    for (int r = 0; r < 2000; r++) {
        /* each key looked up 4 times in a row: with room for ~10 and 8 threads, the repeats
         * hit (a plain cycle over 50 keys could thrash the LRU into no hit at all) */
        int i = (k * 13 + (r / 4) * 7) % 50;
        snprintf(key, sizeof key, "t%d", i);
        const audio_blob *b = audio_cache_get(shared, key, strlen(key));
        if (b) {
            if (!is_filled(b, 3000 + (size_t)i, i)) bad++;
            audio_cache_release(shared, b);
        } else if (audio_cache_reserve(shared, 3000 + (size_t)i)) {
            audio_cache_put(shared, key, strlen(key), filled(3000 + (size_t)i, i),
                            3000 + (size_t)i);
            audio_cache_unreserve(shared, 3000 + (size_t)i);
        }
    }
    pthread_mutex_lock(&bad_mu);
    thread_bad += bad;
    pthread_mutex_unlock(&bad_mu);
    return NULL;
}

static void test_threads(void) {
    shared = audio_cache_new(40000); /* room for about ten of the fifty answers */
    enum { NT = 8 };
    pthread_t th[NT];
    for (size_t k = 0; k < NT; k++) pthread_create(&th[k], NULL, worker, (void *)k);
    for (size_t k = 0; k < NT; k++) pthread_join(th[k], NULL);
    audio_cache_stats s;
    audio_cache_get_stats(shared, &s);
    KT_CHECK(thread_bad == 0, "%d replays had wrong bytes", thread_bad);
    KT_CHECK(s.hits + s.misses == NT * 2000, "every lookup counted");
    KT_CHECK(s.hits > 0 && s.evictions > 0, "hits %llu, evictions %llu", (unsigned long long)s.hits,
             (unsigned long long)s.evictions);
    KT_CHECK(s.bytes <= 40000 && s.pending == 0, "bytes %zu, pending %zu", s.bytes, s.pending);
    audio_cache_free(shared);
}

int main(void) {
    kt_run("hit and miss", test_hit_and_miss);
    kt_run("byte bound, LRU order, a replayed answer outlives its eviction",
           test_bound_lru_and_held);
    kt_run("collection budget and capacity 0", test_budget_and_off);
    kt_run("threads", test_threads);
    return kt_finish();
}
