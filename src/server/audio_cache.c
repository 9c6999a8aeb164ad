/* The finished-audio cache (audio_cache.h): a hash table over an LRU list, one mutex, answers
 * shared with the responses replaying them by a reference count. */
#include "server/audio_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct ac_blob {
    audio_blob pub; /* first: a const audio_blob * handed out is this blob */
    int refs;       /* the cache's entry (while held) + each response replaying it */
} ac_blob;

typedef struct ac_entry {
    struct ac_entry *hnext;       /* the bucket's chain */
    struct ac_entry *prev, *next; /* LRU: head = most recently used */
    uint64_t hash;
    size_t klen, cost;
    ac_blob *blob;
    unsigned char key[];
} ac_entry;

struct audio_cache {
    pthread_mutex_t mu;
    size_t capacity, bytes, entries, pending;
    uint64_t hits, misses, inserts, evictions;
    ac_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    ac_entry *head, *tail;
};

static uint64_t hash_key(const unsigned char *k, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 0x100000001b3ull;
    return h;
}

audio_cache *audio_cache_new(size_t capacity) {
    audio_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->capacity = capacity;
    return c;
}

int audio_cache_enabled(const audio_cache *c) {
    return c && c->capacity > 0;
}

size_t audio_cache_max_entry(const audio_cache *c) {
    return c ? c->capacity / 4 : 0;
}

static void blob_unref(ac_blob *b) {
    if (--b->refs == 0) {
        free((void *)b->pub.data);
        free(b);
    }
}

static void unlink_lru(audio_cache *c, ac_entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(audio_cache *c, ac_entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void remove_entry(audio_cache *c, ac_entry *e) {
    ac_entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*p != e) p = &(*p)->hnext;
    *p = e->hnext;
    unlink_lru(c, e);
    c->entries--;
    c->bytes -= e->cost;
    blob_unref(e->blob);
    free(e);
}

static ac_entry *find(audio_cache *c, uint64_t h, const void *key, size_t klen) {
    ac_entry *e = c->nbuckets ? c->buckets[h & (c->nbuckets - 1)] : NULL;
    while (e && !(e->hash == h && e->klen == klen && !memcmp(e->key, key, klen))) e = e->hnext;
    return e;
}

void audio_cache_free(audio_cache *c) {
    if (!c) return;
    while (c->tail) remove_entry(c, c->tail);
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const audio_blob *audio_cache_get(audio_cache *c, const void *key, size_t klen) {
    if (!audio_cache_enabled(c)) return NULL;
    uint64_t h = hash_key(key, klen);
    pthread_mutex_lock(&c->mu);
    ac_entry *e = find(c, h, key, klen);
    const audio_blob *b = NULL;
    if (e) {
        unlink_lru(c, e);
        push_front(c, e);
        e->blob->refs++;
        b = &e->blob->pub;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

void audio_cache_release(audio_cache *c, const audio_blob *b) {
    if (!c || !b) return;
    pthread_mutex_lock(&c->mu);
    blob_unref((ac_blob *)b);
    pthread_mutex_unlock(&c->mu);
}

int audio_cache_reserve(audio_cache *c, size_t n) {
    if (!audio_cache_enabled(c)) return 0;
    pthread_mutex_lock(&c->mu);
    int ok = c->pending + n <= c->capacity;
    if (ok) c->pending += n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

void audio_cache_unreserve(audio_cache *c, size_t n) {
    if (!audio_cache_enabled(c) || !n) return;
    pthread_mutex_lock(&c->mu);
    c->pending -= n <= c->pending ? n : c->pending;
    pthread_mutex_unlock(&c->mu);
}

/* Doubles the bucket array once entries outnumber buckets (a failed allocation only leaves the
 * chains longer). */
static void maybe_grow(audio_cache *c) {
    if (c->nbuckets && c->entries < c->nbuckets) return;
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
    ac_entry **b = calloc(n, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (ac_entry *e = c->buckets[i], *nx; e; e = nx) {
            nx = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

void audio_cache_put(audio_cache *c, const void *key, size_t klen, void *data, size_t len) {
    /* The bytes an entry holds: the answer, the key, the bookkeeping and its share of the
     * bucket array (at most two pointers per entry). */
    size_t cost = len + klen + sizeof(ac_entry) + sizeof(ac_blob) + 2 * sizeof(ac_entry *);
    if (!audio_cache_enabled(c) || !len || len > audio_cache_max_entry(c) || cost > c->capacity) {
        free(data);
        return;
    }
    /* Collected in a growing buffer: give back its slack before keeping it. */
    void *shrunk = realloc(data, len);
    if (shrunk) data = shrunk;
    uint64_t h = hash_key(key, klen);
    ac_entry *e = malloc(sizeof *e + klen);
    ac_blob *b = malloc(sizeof *b);
    pthread_mutex_lock(&c->mu);
    if (!e || !b || find(c, h, key, klen)) {
        pthread_mutex_unlock(&c->mu);
        free(e);
        free(b);
        free(data);
        return;
    }
    while (c->tail && c->bytes + cost > c->capacity) {
        remove_entry(c, c->tail);
        c->evictions++;
    }
    b->pub.data = data;
    b->pub.len = len;
    b->refs = 1;
    e->hash = h;
    e->klen = klen;
    e->cost = cost;
    e->blob = b;
    memcpy(e->key, key, klen);
    c->entries++;
    maybe_grow(c);
    if (!c->nbuckets) { /* not even a first bucket array: keep nothing */
        c->entries--;
        pthread_mutex_unlock(&c->mu);
        free(e);
        blob_unref(b);
        return;
    }
    e->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = e;
    push_front(c, e);
    c->bytes += cost;
    c->inserts++;
    pthread_mutex_unlock(&c->mu);
}

void audio_cache_get_stats(audio_cache *c, audio_cache_stats *s) {
    memset(s, 0, sizeof *s);
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    s->hits = c->hits;
    s->misses = c->misses;
    s->inserts = c->inserts;
    s->evictions = c->evictions;
    s->entries = c->entries;
    s->bytes = c->bytes;
    s->capacity = c->capacity;
    s->pending = c->pending;
    pthread_mutex_unlock(&c->mu);
}
