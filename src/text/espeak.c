/* Every libespeak-ng call of koe lives here. espeak-ng is not re-entrant: it keeps its voice,
 * its translator and its synthesis state in globals. So koe serializes it: one process-wide
 * mutex (espeak_mutex) guards every call, for phonemization and for the fallback voice's speech
 * alike. This mutex, the once-flag and the voice selected last are the only global mutable state
 * of koe, forced by the library. */
#include "koe/espeak.h"
#include "text/text_internal.h"

#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t espeak_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t espeak_mutex = PTHREAD_MUTEX_INITIALIZER;
static int espeak_rate;         /* sample rate, or <= 0 if initialization failed; set once */
static char espeak_current[16]; /* voice selected last (guarded by espeak_mutex) */

typedef struct speak_ctx {
    koe_espeak_pcm_fn fn;
    void *user;
    volatile const int *cancel;
    int stopped;
} speak_ctx;

/* Called by espeak_Synth (synchronous mode) with each buffer of samples; non-zero aborts. */
static int synth_callback(short *wav, int numsamples, espeak_EVENT *events) {
    speak_ctx *ctx = events ? (speak_ctx *)events->user_data : NULL;
    if (!ctx) return 0;
    if (ctx->stopped) return 1;
    if (ctx->cancel && *ctx->cancel) {
        ctx->stopped = 1;
        return 1;
    }
    if (wav && numsamples > 0 && ctx->fn(ctx->user, wav, (size_t)numsamples)) {
        ctx->stopped = 1;
        return 1;
    }
    return 0;
}

static void espeak_init_once(void) {
    /* DONT_EXIT: a missing data directory must be an error, not exit() inside the library. */
    espeak_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, espeakINITIALIZE_DONT_EXIT);
    if (espeak_rate > 0) espeak_SetSynthCallback(synth_callback);
}

const char *koe_espeak_voice_for_lang(const char *lang) {
    static const struct {
        const char *lang, *voice;
    } map[] = {/* espeak-ng 1.51 selects voices by file name: gmw/en is British English */
               {"en-us", "en-us"}, {"en-gb", "en"},    {"es", "es"}, {"fr", "fr"},
               {"it", "it"},       {"pt-br", "pt-br"}, {"hi", "hi"}};
    if (!lang) return NULL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(lang, map[i].lang)) return map[i].voice;
    return NULL;
}

int koe_espeak_lock(const char *lang, koe_error *err) {
    int rc = koe_text_lang_check(lang, err);
    if (rc) return rc;
    const char *voice = koe_espeak_voice_for_lang(lang);
    pthread_once(&espeak_once, espeak_init_once);
    if (espeak_rate <= 0)
        return koe_error_set(err, KOE_ERR_INTERNAL,
                             "espeak-ng could not be initialized (is espeak-ng-data installed?)");
    pthread_mutex_lock(&espeak_mutex);
    if (strcmp(espeak_current, voice)) {
        if (espeak_SetVoiceByName(voice) != EE_OK) {
            espeak_current[0] = 0;
            pthread_mutex_unlock(&espeak_mutex);
            return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                                 "espeak-ng has no voice '%s' for language '%s'", voice, lang);
        }
        snprintf(espeak_current, sizeof espeak_current, "%s", voice);
    }
    return 0;
}

void koe_espeak_unlock(void) {
    pthread_mutex_unlock(&espeak_mutex);
}

/* Appends espeak's output minus its language-switch flags "(en)" and with whitespace runs
 * collapsed; the parentheses of the text itself never reach espeak-ng (phonemize.c cuts there). */
static int append_clean(koe_buf *out, const char *s) {
    int in_flag = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '(')
            in_flag = 1;
        else if (c == ')')
            in_flag = 0;
        else if (in_flag)
            continue;
        else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            if (out->len && out->data[out->len - 1] != ' ' && koe_buf_append(out, " ", 1))
                return KOE_ERR_NOMEM;
        } else if (koe_buf_append(out, &c, 1)) {
            return KOE_ERR_NOMEM;
        }
    }
    return 0;
}

int koe_espeak_ipa_locked(const char *text, koe_buf *out, koe_error *err) {
    const void *p = text;
    size_t start = out->len;
    /* bit 1: IPA; bit 7 + bits 8-23: U+0361 ties the letters of one phoneme (so the mapping can
     * tell the diphthong a͡ɪ from a + ɪ). */
    const int mode = espeakPHONEMES_IPA | espeakPHONEMES_TIE | (0x0361 << 8);
    while (p) {
        const char *ph = espeak_TextToPhonemes(&p, espeakCHARS_UTF8, mode);
        if (!ph) break;
        if (out->len > start && out->data[out->len - 1] != ' ' && koe_buf_append(out, " ", 1))
            return koe_error_set(err, KOE_ERR_NOMEM, "out of memory phonemizing");
        if (append_clean(out, ph)) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    }
    while (out->len > start && out->data[out->len - 1] == ' ') out->len--;
    if (koe_buf_terminate(out)) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    return 0;
}

int koe_espeak_sample_rate(void) {
    pthread_once(&espeak_once, espeak_init_once);
    return espeak_rate > 0 ? espeak_rate : 0;
}

int koe_espeak_speak(const char *text, size_t len, const char *lang, float speed,
                     koe_espeak_pcm_fn pcm_fn, void *user, volatile const int *cancel,
                     koe_error *err) {
    if (!text && len) return koe_error_set(err, KOE_ERR_INVALID, "speak: no text");
    if (!pcm_fn) return koe_error_set(err, KOE_ERR_INVALID, "speak: no PCM callback");
    size_t bad = koe_utf8_validate(text ? text : "", len);
    if (bad != len)
        return koe_error_set(err, KOE_ERR_INVALID, "speak: invalid UTF-8 at byte %zu", bad);
    if (!(speed > 0)) speed = 1.0f; /* also catches NaN */
    if (speed < 0.5f) speed = 0.5f;
    if (speed > 3.0f) speed = 3.0f;
    char *copy = malloc(len + 1);
    if (!copy) return koe_error_set(err, KOE_ERR_NOMEM, "speak: out of memory");
    if (len) memcpy(copy, text, len);
    copy[len] = 0;
    /* A NUL inside the text would end espeak's input early: speak it as a space. */
    for (size_t i = 0; i < len; i++)
        if (!copy[i]) copy[i] = ' ';
    int rc = koe_espeak_lock(lang, err);
    if (rc) {
        free(copy);
        return rc;
    }
    speak_ctx ctx = {pcm_fn, user, cancel, 0};
    /* espeak-ng's normal rate is 175 words per minute. */
    espeak_SetParameter(espeakRATE, (int)(175.0f * speed + 0.5f), 0);
    espeak_ERROR e = EE_OK;
    if (!(cancel && *cancel))
        e = espeak_Synth(copy, len + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8 | espeakENDPAUSE,
                         NULL, &ctx);
    else
        ctx.stopped = 1;
    koe_espeak_unlock();
    free(copy);
    if (ctx.stopped) return koe_error_set(err, KOE_ERR_CANCELLED, "speech stopped");
    if (e != EE_OK) return koe_error_set(err, KOE_ERR_INTERNAL, "espeak-ng synthesis failed");
    return 0;
}
