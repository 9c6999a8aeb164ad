/* The phoneme cache: espeak-ng's work per (lang, normalized text), remembered in a process-wide
 * LRU bounded in bytes.
 *
 * Phonemization is the front end's slow step (espeak-ng, serialized behind one lock), and the
 * same short segments come back again and again (greetings, UI strings, repeated requests). The
 * cache holds the phonemizer's output string, not the ids: koe_text_tokens maps it to ids the
 * same way on a hit as on a miss, so a hit gives exactly what a miss would.
 *
 * One mutex guards the table and the list; it is held only for lookups, copies and pointer
 * updates, never while espeak-ng runs. Two threads missing the same key at once both phonemize
 * (the results are equal) and the second insertion is dropped. */
#include "text/text_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct pc_entry {
    struct pc_entry *hnext;       /* the hash bucket's chain */
    struct pc_entry *prev, *next; /* the LRU list: head = most recently used */
    uint64_t hash;
    size_t klen, vlen; /* key = lang, NUL, text; the value follows the key in data */
    size_t cost;
    char data[];
} pc_entry;

static pthread_mutex_t pc_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_entry **pc_buckets;
static size_t pc_nbuckets; /* 0 or a power of two */
static pc_entry *pc_head, *pc_tail;
static size_t pc_entries, pc_bytes, pc_capacity = KOE_TEXT_CACHE_DEFAULT;
static uint64_t pc_hits, pc_misses;

/* FNV-1a over the key's two parts (the NUL between them included). */
static uint64_t key_hash(const char *lang, size_t llen, const char *text, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < llen; i++) h = (h ^ (unsigned char)lang[i]) * 0x100000001b3ull;
    h = (h ^ 0u) * 0x100000001b3ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    return h;
}

static int key_equal(const pc_entry *e, uint64_t h, const char *lang, size_t llen, const char *text,
                     size_t len) {
    return e->hash == h && e->klen == llen + 1 + len && !memcmp(e->data, lang, llen) &&
           e->data[llen] == 0 && (!len || !memcmp(e->data + llen + 1, text, len));
}

static void list_unlink(pc_entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        pc_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        pc_tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(pc_entry *e) {
    e->prev = NULL;
    e->next = pc_head;
    if (pc_head) pc_head->prev = e;
    pc_head = e;
    if (!pc_tail) pc_tail = e;
}

static void remove_entry(pc_entry *e) {
    pc_entry **p = &pc_buckets[e->hash & (pc_nbuckets - 1)];
    while (*p != e) p = &(*p)->hnext;
    *p = e->hnext;
    list_unlink(e);
    pc_entries--;
    pc_bytes -= e->cost;
    free(e);
}

/* Evicts least recently used entries until `need` more bytes fit under the capacity. */
static void make_room(size_t need) {
    while (pc_tail && pc_bytes + need > pc_capacity) remove_entry(pc_tail);
}

/* Doubles the bucket array when entries outnumber buckets; a failed allocation only keeps the
 * chains longer. */
static void maybe_grow(void) {
    if (pc_nbuckets && pc_entries < pc_nbuckets) return;
    size_t n = pc_nbuckets ? pc_nbuckets * 2 : 256;
    pc_entry **b = calloc(n, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < pc_nbuckets; i++) {
        for (pc_entry *e = pc_buckets[i], *nx; e; e = nx) {
            nx = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(pc_buckets);
    pc_buckets = b;
    pc_nbuckets = n;
}

int koe_text_cache_get(const char *lang, const char *text, size_t len, koe_buf *out) {
    if (!lang) return 0;
    size_t llen = strlen(lang);
    uint64_t h = key_hash(lang, llen, text, len);
    int found = 0;
    pthread_mutex_lock(&pc_mu);
    if (pc_capacity) {
        pc_entry *e = pc_nbuckets ? pc_buckets[h & (pc_nbuckets - 1)] : NULL;
        while (e && !key_equal(e, h, lang, llen, text, len)) e = e->hnext;
        /* The copy is made under the lock: the entry may be evicted right after. */
        if (e && !koe_buf_append(out, e->data + e->klen, e->vlen)) {
            list_unlink(e);
            list_push_front(e);
            found = 1;
        }
        if (found)
            pc_hits++;
        else
            pc_misses++;
    }
    pthread_mutex_unlock(&pc_mu);
    return found;
}

void koe_text_cache_put(const char *lang, const char *text, size_t len, const char *value,
                        size_t vlen) {
    if (!lang) return;
    size_t llen = strlen(lang), klen = llen + 1 + len;
    /* The bytes an entry holds: its header and data, plus its share of the bucket array (at
     * most two pointers per entry, as the array doubles when entries outnumber buckets). */
    size_t cost = sizeof(pc_entry) + klen + vlen + 2 * sizeof(pc_entry *);
    uint64_t h = key_hash(lang, llen, text, len);
    pthread_mutex_lock(&pc_mu);
    if (cost > pc_capacity) {
        pthread_mutex_unlock(&pc_mu);
        return;
    }
    pc_entry *e = pc_nbuckets ? pc_buckets[h & (pc_nbuckets - 1)] : NULL;
    while (e && !key_equal(e, h, lang, llen, text, len)) e = e->hnext;
    if (e) { /* another thread phonemized the same text meanwhile */
        pthread_mutex_unlock(&pc_mu);
        return;
    }
    make_room(cost);
    e = malloc(sizeof *e + klen + vlen);
    if (e) {
        e->hash = h;
        e->klen = klen;
        e->vlen = vlen;
        e->cost = cost;
        memcpy(e->data, lang, llen);
        e->data[llen] = 0;
        if (len) memcpy(e->data + llen + 1, text, len);
        if (vlen) memcpy(e->data + klen, value, vlen);
        pc_entries++;
        pc_bytes += cost;
        maybe_grow();
        if (pc_nbuckets) {
            e->hnext = pc_buckets[h & (pc_nbuckets - 1)];
            pc_buckets[h & (pc_nbuckets - 1)] = e;
            list_push_front(e);
        } else { /* no bucket array could be allocated at all: do not keep it */
            pc_entries--;
            pc_bytes -= cost;
            free(e);
        }
    }
    pthread_mutex_unlock(&pc_mu);
}

void koe_text_cache_set_capacity(size_t bytes) {
    pthread_mutex_lock(&pc_mu);
    pc_capacity = bytes;
    make_room(0);
    if (!pc_entries) {
        free(pc_buckets);
        pc_buckets = NULL;
        pc_nbuckets = 0;
    }
    pthread_mutex_unlock(&pc_mu);
}

void koe_text_cache_clear(void) {
    pthread_mutex_lock(&pc_mu);
    while (pc_tail) remove_entry(pc_tail);
    free(pc_buckets);
    pc_buckets = NULL;
    pc_nbuckets = 0;
    pc_hits = pc_misses = 0;
    pthread_mutex_unlock(&pc_mu);
}

void koe_text_cache_get_stats(koe_text_cache_stats *s) {
    if (!s) return;
    pthread_mutex_lock(&pc_mu);
    s->hits = pc_hits;
    s->misses = pc_misses;
    s->entries = pc_entries;
    s->bytes = pc_bytes;
    s->capacity = pc_capacity;
    pthread_mutex_unlock(&pc_mu);
}
