/* Kokoro voice packs (the .bin files of kokoro-js, 510 rows x 256 float32, one row per input
 * length): listing with language and gender, blends, and the style row for a token count.
 * A voice name is only ever compared with the names found in the folder, never used as a path. */
#ifndef KOE_VOICE_H
#define KOE_VOICE_H

#include <stddef.h>

#include "koe/error.h"

#define KOE_VOICE_ROWS 510
#define KOE_VOICE_DIM  256

typedef struct koe_voices koe_voices;
typedef struct koe_voice koe_voice;

/* Lists the packs in dir (files named [a-z0-9_]+.bin of exactly 522,240 bytes; a .bin of another
 * size is an error naming it). An empty or missing folder is an error that says how to get the
 * voices (make deps). */
koe_voices *koe_voices_open(const char *dir, koe_error *err);
void koe_voices_close(koe_voices *v);

size_t koe_voices_count(const koe_voices *v);
/* Sorted by name. lang: "en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh" or
 * "unknown" (from the first letter); gender: "female", "male" or "unknown" (second letter). */
const char *koe_voices_name(const koe_voices *v, size_t i);
const char *koe_voices_lang(const koe_voices *v, size_t i);
const char *koe_voices_gender(const koe_voices *v, size_t i);
/* Index of a listed voice, or -1. */
long koe_voices_find(const koe_voices *v, const char *name);

/* A voice or a blend: "af_bella", "af_bella:0.7+af_sky:0.3" (weights normalized to sum 1),
 * "af_bella+af_sky" (equal). An unknown name is an error naming the closest listed voices; bad
 * syntax, or a weight that is not a positive number, is an error too. */
koe_voice *koe_voice_get(const koe_voices *v, const char *spec, koe_error *err);
void koe_voice_free(koe_voice *voice);

/* The 256-float style for an input of n_tokens tokens without the pads: row n_tokens - 1,
 * clamped to 0..509. */
const float *koe_voice_style(const koe_voice *voice, int n_tokens);
/* The canonical spec ("af_bella:0.700+af_sky:0.300" for blends) and the language of the first
 * voice. */
const char *koe_voice_spec(const koe_voice *voice);
const char *koe_voice_lang(const koe_voice *voice);

#endif
