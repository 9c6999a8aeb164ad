/* espeak-ng's own speech, for the fallback voice (no Kokoro weights). espeak-ng keeps global
 * state, so this goes through the same single mutex as the phonemizer in src/text/: one
 * utterance (or phonemization) at a time across the whole process. */
#ifndef KOE_ESPEAK_H
#define KOE_ESPEAK_H

#include "koe/error.h"

#include <stddef.h>
#include <stdint.h>

/* Receives mono 16-bit PCM at koe_espeak_sample_rate(); return non-zero to stop. It runs with the
 * espeak-ng lock held: it must not call koe_text_* or koe_espeak_* (that would deadlock), and
 * should hand the samples on quickly (copy into a buffer or queue). */
typedef int (*koe_espeak_pcm_fn)(void *user, const int16_t *pcm, size_t n);

/* Speaks text (UTF-8, len bytes) in lang ("en-us", "en-gb", "es", "fr", "it", "pt-br", "hi")
 * at speed (1.0 = normal, clamped to 0.5..3). Blocks until done. Returns 0, or
 * KOE_ERR_CANCELLED when pcm_fn returned non-zero or *cancel (may be NULL) became non-zero,
 * KOE_ERR_INVALID for bad UTF-8, KOE_ERR_UNSUPPORTED for a language it cannot speak. While one
 * call speaks, other espeak-ng users (every phonemization) wait for the lock: speak one segment
 * per call (koe_segment.normalized, so that numbers, dates and symbols read as with Kokoro), not
 * a whole request. */
int koe_espeak_speak(const char *text, size_t len, const char *lang, float speed,
                     koe_espeak_pcm_fn pcm_fn, void *user, volatile const int *cancel,
                     koe_error *err);

/* The sample rate of koe_espeak_speak's PCM (22050). Initializes espeak-ng if needed; 0 if
 * espeak-ng cannot be initialized. */
int koe_espeak_sample_rate(void);

#endif
