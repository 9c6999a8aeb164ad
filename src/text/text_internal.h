/* Internals of the text front end shared by the files of src/text and the text tests. */
#ifndef KOE_TEXT_INTERNAL_H
#define KOE_TEXT_INTERNAL_H

#include "koe/base.h"
#include "koe/error.h"
#include "koe/text.h"

#include <stddef.h>
#include <stdint.h>

/* ---- vocab.c: the Kokoro vocabulary (kokoro-config.json "vocab") and the fallback table ---- */

/* The Kokoro id of code point cp, or -1 when it is not in the vocabulary. */
int koe_vocab_id(uint32_t cp);
/* The replacement (UTF-8, possibly empty) for a symbol outside the vocabulary, or NULL when the
 * fallback table has none (the symbol is then dropped and counted). */
const char *koe_vocab_fallback(uint32_t cp);
/* Maps a phoneme string to vocabulary symbols only: every code point is kept when in the
 * vocabulary, replaced through the fallback table, or dropped (counted in *dropped). The result
 * (appended to out) holds exactly one code point per token id. */
int koe_vocab_filter(const char *ipa, size_t len, koe_buf *out, size_t *dropped);
/* Token ids of a filtered string (one per code point); ids must hold len entries. Returns the
 * count. */
size_t koe_vocab_ids(const char *filtered, size_t len, int32_t *ids);

/* ---- espeak.c: the only place that calls libespeak-ng, behind one process-wide mutex ---- */

/* The espeak-ng voice name for a supported language, or NULL. */
const char *koe_espeak_voice_for_lang(const char *lang);
/* Takes the espeak-ng lock (initializing espeak-ng on first use) and selects lang's voice. On
 * success the caller holds the lock and must call koe_espeak_unlock(). */
int koe_espeak_lock(const char *lang, koe_error *err);
void koe_espeak_unlock(void);
/* With the lock held: appends the IPA (ties marked U+0361) of text (NUL-terminated, no clause
 * punctuation expected) to out, clauses separated by a space. */
int koe_espeak_ipa_locked(const char *text, koe_buf *out, koe_error *err);

/* ---- phonemize.c ---- */

/* Phonemizes normalized text in lang: espeak-ng per stretch between punctuation marks, its IPA
 * mapped to Kokoro's symbols, the vocabulary's punctuation put back in place. Appends the raw
 * (unfiltered) Kokoro-style phoneme string to out. */
int koe_text_phonemize(const char *text, size_t len, const char *lang, koe_buf *out,
                       koe_error *err);
/* Applies the language's espeak -> Kokoro symbol table to one stretch of espeak IPA. */
int koe_text_map_ipa(const char *ipa, size_t len, const char *lang, koe_buf *out);

/* ---- cache.c: the phoneme cache (koe/text.h) ---- */

/* On a hit appends the cached phonemizer output for (lang, text[0, len)) to out and returns 1;
 * 0 on a miss, when the cache is off or lang is NULL. */
int koe_text_cache_get(const char *lang, const char *text, size_t len, koe_buf *out);
/* Remembers value[0, vlen) as the output for (lang, text[0, len)), evicting as needed; an entry
 * larger than the whole capacity, or a key already present, is not stored. */
void koe_text_cache_put(const char *lang, const char *text, size_t len, const char *value,
                        size_t vlen);

/* ---- split.c ---- */

/* Splits ids[0, n) into chunks of at most max ids: at the last sentence/clause punctuation
 * followed by a space, else the last space (word boundary), else a phoneme boundary (never
 * after a stress mark, never before a length mark or diacritic). Writes the chunk ends
 * (exclusive indices, increasing, last == n) to ends (capacity n / 1 + 1 at most n entries);
 * returns the number of chunks (0 when n == 0). */
size_t koe_text_split_ids(const int32_t *ids, size_t n, size_t max, size_t *ends);

#endif
