/* The finished-audio cache of koe serve (private to src/server): whole encoded answers per
 * request key, in an LRU bounded in bytes.
 *
 * A key is every request field that changes the bytes (see audio_cache_key in server.c). Only
 * an answer whose synthesis ran to its complete end and whose response was fully delivered is
 * inserted; a hit replays those bytes exactly. Kokoro draws random noise per request, so a hit
 * replays the earlier take, not a new one; identical requests get identical audio.
 *
 * Memory: `bytes` (entries held) stays at or under the capacity. Answers being collected for
 * insertion draw on a separate budget of the same size (audio_cache_reserve), so collection
 * never holds more than the capacity either; one entry is at most a quarter of the capacity.
 * Entries handed out to a response (a hit being streamed) stay alive until released even when
 * evicted meanwhile; they are then no longer counted. Thread-safe (one mutex). */
#ifndef KOE_SERVER_AUDIO_CACHE_H
#define KOE_SERVER_AUDIO_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct audio_cache audio_cache;

/* One cached answer, shared by the cache and the responses replaying it. */
typedef struct audio_blob {
    const unsigned char *data;
    size_t len;
} audio_blob;

typedef struct audio_cache_stats {
    uint64_t hits, misses, inserts, evictions;
    size_t entries, bytes, capacity, pending; /* pending: bytes being collected for insertion */
} audio_cache_stats;

/* capacity in bytes; 0 gives a cache that is off (every call is then a no-op: no hit, no miss,
 * no reservation). NULL only when out of memory. */
audio_cache *audio_cache_new(size_t capacity);
void audio_cache_free(audio_cache *c);
int audio_cache_enabled(const audio_cache *c);
/* The largest answer that can be stored (a quarter of the capacity). */
size_t audio_cache_max_entry(const audio_cache *c);

/* The answer stored under key, held for the caller (audio_cache_release it), or NULL (a miss).
 * Counts a hit or a miss. */
const audio_blob *audio_cache_get(audio_cache *c, const void *key, size_t klen);
void audio_cache_release(audio_cache *c, const audio_blob *b);

/* Collection budget: 1 when n more bytes may be collected (they are then reserved), 0 when
 * the budget is spent (the caller gives up collecting this answer and unreserves what it got). */
int audio_cache_reserve(audio_cache *c, size_t n);
void audio_cache_unreserve(audio_cache *c, size_t n);

/* Stores data[0, len) (malloc'd; ownership passes to the cache, which frees it if it does not
 * keep it) under key, evicting least recently used entries to stay under the capacity. An
 * existing key keeps its first answer. */
void audio_cache_put(audio_cache *c, const void *key, size_t klen, void *data, size_t len);

void audio_cache_get_stats(audio_cache *c, audio_cache_stats *s);

#endif
