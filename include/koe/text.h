/* The text front end: any text -> segments with proven coverage -> normalized text -> IPA
 * phonemes (espeak-ng) -> Kokoro token ids in chunks of at most 510.
 *
 * Two steps, for time to first audio: koe_text_segment() cuts the whole input quickly (no
 * espeak-ng), with a deliberately short first segment; koe_text_tokens() then phonemizes one
 * segment at a time, so a pipeline phonemizes the first segment before the others.
 *
 * Thread safety: every function may be called from any thread. espeak-ng is not re-entrant and
 * keeps global state, so all espeak-ng calls (here and in koe/espeak.h) are serialized by one
 * mutex inside src/text/ (the only global mutable state of koe). Lengths counted in
 * "characters" are Unicode code points. */
#ifndef KOE_TEXT_H
#define KOE_TEXT_H

#include "koe/error.h"

#include <stddef.h>
#include <stdint.h>

/* A Kokoro model call takes at most this many token ids between its two pads. */
#define KOE_TEXT_MAX_TOKENS 510
/* The pad id Kokoro expects at both ends of a call (not included in koe_token_chunk.ids). */
#define KOE_TEXT_PAD_ID 0

typedef struct koe_text_opts {
    const char *lang;   /* "en-us" (default), "en-gb", "es", "fr", "it", "pt-br", "hi" */
    size_t first_min;   /* first segment: ends at the first clause/sentence end after this many
                           characters ... */
    size_t first_max;   /* ... or at the last word boundary before this many characters */
    size_t segment_max; /* later segments: sentences longer than this are cut at clause ends,
                           then at word boundaries (characters) */
    double ramp;        /* > 1: segment k (k >= 1) is also cut like an over-long sentence beyond
                           first_max x ramp^k characters and beyond ramp x the characters of the
                           segments before it (until segment_max), so that each segment is ready
                           before the ones before it have played; <= 1: no ramp */
} koe_text_opts;

/* Defaults: en-us, first_min 20, first_max 150, segment_max 400, no ramp. In koe_text_segment a
 * NULL lang or a zero first_max / segment_max means the default. */
koe_text_opts koe_text_opts_default(void);

typedef struct koe_segment {
    size_t start, end; /* byte span [start, end) in the input; no whitespace at either end */
    char *normalized;  /* NUL-terminated normalized text, ready for koe_text_tokens() */
    size_t normalized_len;
    size_t dropped;   /* characters dropped by normalization (emoji, controls, ...) */
    int sentence_end; /* 1 when the segment ends a sentence (or the input), 0 at a clause or
                         word cut */
} koe_segment;

typedef struct koe_segments {
    koe_segment *items;
    size_t count;
    size_t dropped; /* sum of items[].dropped */
} koe_segments;

/* Segments in[0, len) (UTF-8; invalid UTF-8 -> KOE_ERR_INVALID naming the byte offset) and
 * normalizes each segment. Empty or whitespace-only input gives zero segments. The result
 * always passes koe_text_check_coverage(). o may be NULL (defaults). Unsupported language
 * (ja, zh, unknown) -> KOE_ERR_UNSUPPORTED. Free with koe_segments_free(). */
int koe_text_segment(const char *in, size_t len, const koe_text_opts *o, koe_segments **out,
                     koe_error *err);
void koe_segments_free(koe_segments *s);

/* The coverage proof: 0 when the spans are in order, non-empty, start and end on UTF-8
 * character boundaries, do not overlap, and only whitespace lies outside them; otherwise
 * KOE_ERR_INTERNAL naming the first gap or overlap. Cheap (one pass); usable at run time. */
int koe_text_check_coverage(const char *in, size_t len, const koe_segments *s, koe_error *err);

/* Normalizes one piece of text (what koe_text_segment does per segment). *dropped (may be
 * NULL) receives the number of dropped characters. out is appended to and NUL-terminated. */
struct koe_buf;
int koe_text_normalize(const char *in, size_t len, const char *lang, struct koe_buf *out,
                       size_t *dropped, koe_error *err);

typedef struct koe_token_chunk {
    int32_t *ids; /* 1..KOE_TEXT_MAX_TOKENS Kokoro ids, without pads */
    size_t count;
    char *phonemes; /* the phonemes of this chunk (NUL-terminated) */
} koe_token_chunk;

typedef struct koe_tokens {
    char *phonemes;          /* the whole segment's phoneme string (NUL-terminated) */
    koe_token_chunk *chunks; /* the ids split at word (then phoneme) boundaries; never truncated */
    size_t nchunks;          /* 0 when the text has nothing to say */
    size_t dropped;          /* phoneme symbols neither in the vocabulary nor the fallback table */
} koe_tokens;

/* Phonemizes normalized text (one segment) with espeak-ng in language lang and maps it to token
 * ids. Fills *out (zero it first; free with koe_tokens_free). */
int koe_text_tokens(const char *normalized, size_t len, const char *lang, koe_tokens *out,
                    koe_error *err);
void koe_tokens_free(koe_tokens *t);

/* The phoneme cache. koe_text_tokens() remembers the phonemizer's output per (lang, exact
 * normalized text) in a process-wide LRU bounded in bytes, so a segment seen before skips
 * espeak-ng. It holds the phoneme string, not the ids: a hit is mapped to ids exactly as a miss
 * is, so it gives the very same koe_tokens. Thread-safe (one mutex, never held while espeak-ng
 * runs); failures are never cached. The bytes counted are each entry's key, value and
 * bookkeeping (header and its share of the hash table). This is the second piece of global
 * mutable state of src/text (besides the espeak-ng lock). */
#define KOE_TEXT_CACHE_DEFAULT ((size_t)4 << 20) /* 4 MiB */

typedef struct koe_text_cache_stats {
    uint64_t hits, misses; /* lookups since start (or the last koe_text_cache_clear) */
    size_t entries, bytes; /* held now; bytes <= capacity always */
    size_t capacity;       /* bytes; 0 = off */
} koe_text_cache_stats;

/* Sets the bound in bytes, evicting least recently used entries down to it at once. 0 turns the
 * cache off (empties it; lookups then count neither hits nor misses). */
void koe_text_cache_set_capacity(size_t bytes);
/* Empties the cache and zeroes its hit and miss counts (the capacity stays). */
void koe_text_cache_clear(void);
void koe_text_cache_get_stats(koe_text_cache_stats *s);

/* One call for the whole input: segments plus tokens[i] for segments->items[i]. */
typedef struct koe_text_result {
    koe_segments *segments;
    koe_tokens *tokens; /* segments->count entries */
    size_t dropped;     /* characters dropped by normalization + phoneme symbols dropped */
} koe_text_result;

int koe_text_process(const char *in, size_t len, const koe_text_opts *o, koe_text_result **out,
                     koe_error *err);
void koe_text_result_free(koe_text_result *r);

/* The language of a Kokoro voice from its name's first letter: a en-us, b en-gb, e es, f fr,
 * h hi, i it, p pt-br. j (Japanese) and z (Mandarin) -> NULL with KOE_ERR_UNSUPPORTED (their
 * voices expect a phoneme inventory espeak-ng does not give); anything else -> NULL with
 * KOE_ERR_INVALID. For a blend ("af_bella:0.7+bf_emma:0.3") the first voice decides.
 * Returns a static string. */
const char *koe_text_lang_for_voice(const char *voice_name, koe_error *err);

/* Starts espeak-ng and loads lang's dictionary now (a few ms, more when its data is not in the
 * page cache), so that the first request does not pay for it. Servers call it at start-up. */
int koe_text_warmup(const char *lang, koe_error *err);

/* 0 when lang is one the front end speaks; else KOE_ERR_UNSUPPORTED with a message. */
int koe_text_lang_check(const char *lang, koe_error *err);

#endif
