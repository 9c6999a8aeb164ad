/* The front end's entry points: languages, tokens of one segment, the one-call process. */
#include "text/text_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const supported_langs[] = {"en-us", "en-gb", "es", "fr", "it", "pt-br", "hi"};

int koe_text_lang_check(const char *lang, koe_error *err) {
    if (!lang || !*lang) return koe_error_set(err, KOE_ERR_INVALID, "no language given");
    for (size_t i = 0; i < sizeof supported_langs / sizeof supported_langs[0]; i++)
        if (!strcmp(lang, supported_langs[i])) return 0;
    if (!strncmp(lang, "ja", 2) || !strncmp(lang, "zh", 2) || !strncmp(lang, "cmn", 3))
        return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                             "language '%s' is refused: Kokoro's Japanese and Mandarin voices "
                             "expect a phoneme inventory espeak-ng does not produce",
                             lang);
    return koe_error_set(err, KOE_ERR_UNSUPPORTED,
                         "unsupported language '%s' (supported: en-us, en-gb, es, fr, it, pt-br, "
                         "hi)",
                         lang);
}

const char *koe_text_lang_for_voice(const char *voice_name, koe_error *err) {
    if (!voice_name || !*voice_name) {
        koe_error_set(err, KOE_ERR_INVALID, "no voice name given");
        return NULL;
    }
    switch (voice_name[0]) {
    case 'a':
        return "en-us";
    case 'b':
        return "en-gb";
    case 'e':
        return "es";
    case 'f':
        return "fr";
    case 'h':
        return "hi";
    case 'i':
        return "it";
    case 'p':
        return "pt-br";
    case 'j':
    case 'z':
        koe_error_set(err, KOE_ERR_UNSUPPORTED,
                      "voice '%.64s' is %s: refused, its phoneme inventory is not espeak-ng's",
                      voice_name, voice_name[0] == 'j' ? "Japanese" : "Mandarin");
        return NULL;
    default:
        koe_error_set(err, KOE_ERR_INVALID,
                      "voice '%.64s': unknown language letter '%c' (expected one of a b e f h i p)",
                      voice_name, voice_name[0]);
        return NULL;
    }
}

int koe_text_warmup(const char *lang, koe_error *err) {
    koe_tokens t;
    int rc = koe_text_tokens("Ready.", 6, lang, &t, err);
    koe_tokens_free(&t);
    return rc;
}

void koe_tokens_free(koe_tokens *t) {
    if (!t) return;
    for (size_t i = 0; i < t->nchunks; i++) {
        free(t->chunks[i].ids);
        free(t->chunks[i].phonemes);
    }
    free(t->chunks);
    free(t->phonemes);
    memset(t, 0, sizeof *t);
}

int koe_text_tokens(const char *normalized, size_t len, const char *lang, koe_tokens *out,
                    koe_error *err) {
    if (!out) return koe_error_set(err, KOE_ERR_INVALID, "tokens: no output");
    memset(out, 0, sizeof *out);
    if (!normalized && len) return koe_error_set(err, KOE_ERR_INVALID, "tokens: no text");
    koe_buf raw = {0}, filtered = {0};
    int32_t *ids = NULL;
    size_t *offs = NULL, *ends = NULL;
    const char *text = normalized ? normalized : "";
    int rc = 0;
    if (!koe_text_cache_get(lang, text, len, &raw)) {
        rc = koe_text_phonemize(text, len, lang, &raw, err);
        if (rc) goto done;
        koe_text_cache_put(lang, text, len, raw.data ? raw.data : "", raw.len);
    }
    if (koe_vocab_filter(raw.data ? raw.data : "", raw.len, &filtered, &out->dropped)) {
        rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* One id per code point of the filtered string; offs[k] is the byte offset of id k. */
    size_t cap = filtered.len + 1;
    ids = malloc(cap * sizeof *ids);
    offs = malloc(cap * sizeof *offs);
    ends = malloc(cap * sizeof *ends);
    if (!ids || !offs || !ends) {
        rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t n = koe_vocab_ids(filtered.data, filtered.len, ids);
    for (size_t i = 0, k = 0; i < filtered.len;) {
        uint32_t cp;
        offs[k++] = i;
        i += (size_t)koe_utf8_decode(filtered.data + i, &cp);
    }
    offs[n] = filtered.len;
    size_t nchunks = koe_text_split_ids(ids, n, KOE_TEXT_MAX_TOKENS, ends);
    if (nchunks) {
        out->chunks = calloc(nchunks, sizeof *out->chunks);
        if (!out->chunks) {
            rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    for (size_t c = 0, start = 0; c < nchunks; c++) {
        koe_token_chunk *ch = &out->chunks[c];
        out->nchunks = c + 1;
        ch->count = ends[c] - start;
        ch->ids = malloc(ch->count * sizeof *ch->ids);
        size_t b0 = offs[start], b1 = offs[ends[c]];
        ch->phonemes = malloc(b1 - b0 + 1);
        if (!ch->ids || !ch->phonemes) {
            rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(ch->ids, ids + start, ch->count * sizeof *ch->ids);
        memcpy(ch->phonemes, filtered.data + b0, b1 - b0);
        ch->phonemes[b1 - b0] = 0;
        start = ends[c];
    }
    out->phonemes = filtered.data ? filtered.data : calloc(1, 1);
    filtered.data = NULL;
    if (!out->phonemes) rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
done:
    koe_buf_free(&raw);
    koe_buf_free(&filtered);
    free(ids);
    free(offs);
    free(ends);
    if (rc) koe_tokens_free(out);
    return rc;
}

void koe_text_result_free(koe_text_result *r) {
    if (!r) return;
    if (r->tokens && r->segments)
        for (size_t i = 0; i < r->segments->count; i++) koe_tokens_free(&r->tokens[i]);
    free(r->tokens);
    koe_segments_free(r->segments);
    free(r);
}

int koe_text_process(const char *in, size_t len, const koe_text_opts *o, koe_text_result **out,
                     koe_error *err) {
    if (!out) return koe_error_set(err, KOE_ERR_INVALID, "process: no output");
    *out = NULL;
    koe_text_opts opts = o ? *o : koe_text_opts_default();
    if (!opts.lang) opts.lang = "en-us";
    koe_text_result *r = calloc(1, sizeof *r);
    if (!r) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    int rc = koe_text_segment(in, len, &opts, &r->segments, err);
    if (!rc && r->segments->count) {
        r->tokens = calloc(r->segments->count, sizeof *r->tokens);
        if (!r->tokens) rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    }
    if (!rc) r->dropped = r->segments->dropped;
    for (size_t i = 0; !rc && i < r->segments->count; i++) {
        const koe_segment *s = &r->segments->items[i];
        rc = koe_text_tokens(s->normalized, s->normalized_len, opts.lang, &r->tokens[i], err);
        if (!rc) r->dropped += r->tokens[i].dropped;
    }
    if (rc) {
        koe_text_result_free(r);
        return rc;
    }
    *out = r;
    return 0;
}
