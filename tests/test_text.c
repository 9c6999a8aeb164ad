/* The text front end: vocabulary, languages, segmentation with its coverage proof (property tests
 * over random texts), phonemization with punctuation in place, the 510-token split, espeak-ng's
 * speech and thread safety. */
#include "harness.h"
#include "koe/base.h"
#include "koe/espeak.h"
#include "koe/text.h"
#include "text/text_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* espeak-ng 1.51 leaks about 1.3 KB in each voice load once several languages alternate (its
 * own allocation, reproduced with espeak_SetVoiceByName alone): LeakSanitizer is told to ignore
 * allocations made inside libespeak-ng, and only those. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libespeak-ng.so\n";
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static void append_cp(koe_buf *b, uint32_t cp) {
    char u[4];
    int n = koe_utf8_encode(cp, u);
    koe_buf_append(b, u, (size_t)n);
}

/* ------------------------------------------------------------------ vocabulary */

static void test_vocab_matches_config(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/kokoro-config.json", kt_env("KOE_TEST_DATA", "tests/data"));
    size_t len;
    char *txt = kt_read_file(path, &len);
    KT_CHECK(txt != NULL, "cannot read %s", path);
    if (!txt) return;
    cJSON *root = cJSON_Parse(txt);
    cJSON *vocab = cJSON_GetObjectItem(root, "vocab");
    KT_CHECK(cJSON_IsObject(vocab), "config has no vocab");
    int count = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        uint32_t cp;
        koe_utf8_decode(it->string, &cp);
        KT_CHECK(koe_vocab_id(cp) == it->valueint, "U+%04X: id %d, config %d", (unsigned)cp,
                 koe_vocab_id(cp), it->valueint);
        count++;
    }
    KT_CHECK(count == 114, "config vocab has %d symbols", count);
    int known = 0;
    for (uint32_t cp = 0; cp < 0x30000; cp++) known += koe_vocab_id(cp) >= 0;
    KT_CHECK(known == count, "the C table knows %d symbols, the config %d", known, count);
    cJSON_Delete(root);
    free(txt);
}

static void test_fallback_targets_in_vocab(void) {
    int rows = 0;
    for (uint32_t cp = 0; cp < 0x30000; cp++) {
        const char *to = koe_vocab_fallback(cp);
        if (!to) continue;
        rows++;
        KT_CHECK(koe_vocab_id(cp) < 0, "U+%04X is in the vocabulary and the fallback table",
                 (unsigned)cp);
        for (const char *p = to; *p;) {
            uint32_t t;
            p += koe_utf8_decode(p, &t);
            KT_CHECK(koe_vocab_id(t) >= 0, "fallback of U+%04X gives U+%04X, not in the vocab",
                     (unsigned)cp, (unsigned)t);
        }
    }
    KT_CHECK(rows > 20, "fallback table has %d rows", rows);
    /* Filtering counts what it cannot map. */
    koe_buf b = {0};
    size_t dropped = 0;
    koe_vocab_filter("a\xc9\xab"
                     "b\xe2\x98\x83"
                     "c",
                     8, &b, &dropped); /* a ɫ b ☃ c */
    KT_CHECK(!strcmp(b.data, "alb"
                             "c") &&
                 dropped == 1,
             "filter gave '%s', dropped %zu", b.data, dropped);
    koe_buf_free(&b);
}

/* ------------------------------------------------------------------ languages */

static void test_languages(void) {
    static const struct {
        const char *voice, *lang;
    } ok[] = {{"af_bella", "en-us"}, {"bm_george", "en-gb"},
              {"ef_dora", "es"},     {"ff_siwis", "fr"},
              {"hf_alpha", "hi"},    {"if_sara", "it"},
              {"pm_alex", "pt-br"},  {"af_bella:0.7+bf_emma:0.3", "en-us"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        koe_error err = {0};
        const char *l = koe_text_lang_for_voice(ok[i].voice, &err);
        KT_CHECK(l && !strcmp(l, ok[i].lang), "%s -> %s, want %s", ok[i].voice, l ? l : "NULL",
                 ok[i].lang);
        KT_CHECK(l && koe_text_lang_check(l, NULL) == 0, "%s not accepted", ok[i].lang);
    }
    const char *refused[] = {"jf_alpha", "zf_xiaobei", "zm_yunjian"};
    for (size_t i = 0; i < 3; i++) {
        koe_error err = {0};
        KT_CHECK(!koe_text_lang_for_voice(refused[i], &err) && err.code == KOE_ERR_UNSUPPORTED,
                 "%s must be refused", refused[i]);
        KT_CHECK(strstr(err.msg, "refused") != NULL, "message: %s", err.msg);
    }
    koe_error err = {0};
    KT_CHECK(!koe_text_lang_for_voice("xx_nobody", &err) && err.code == KOE_ERR_INVALID,
             "unknown letter");
    KT_CHECK(!koe_text_lang_for_voice("", &err) && err.code == KOE_ERR_INVALID, "empty name");
    KT_CHECK(!koe_text_lang_for_voice(NULL, &err), "NULL name");
    KT_CHECK(koe_text_lang_check("ja", &err) == KOE_ERR_UNSUPPORTED, "ja accepted");
    KT_CHECK(koe_text_lang_check("zh", &err) == KOE_ERR_UNSUPPORTED, "zh accepted");
    KT_CHECK(koe_text_lang_check("klingon", &err) == KOE_ERR_UNSUPPORTED, "unknown accepted");
    koe_tokens t;
    KT_CHECK(koe_text_tokens("hi", 2, "ja", &t, &err) == KOE_ERR_UNSUPPORTED,
             "tokens in Japanese must be refused");
    KT_CHECK(koe_text_warmup("en-gb", &err) == 0, "warm-up: %s", err.msg);
    KT_CHECK(koe_text_warmup("zh", &err) == KOE_ERR_UNSUPPORTED, "warm-up in Mandarin refused");
}

/* ------------------------------------------------------------------ phonemes and tokens */

static int is_vocab_punct(uint32_t cp) {
    return cp == ';' || cp == ':' || cp == ',' || cp == '.' || cp == '!' || cp == '?' ||
           cp == '"' || cp == '(' || cp == ')' || cp == 0x2014 || cp == 0x2026 || cp == 0x201C ||
           cp == 0x201D;
}

/* The vocabulary's punctuation of the text, in order (marks inside words like 3,5 excepted). */
static void punct_sequence(const char *s, koe_buf *out) {
    for (size_t i = 0; s[i];) {
        uint32_t cp;
        int n = koe_utf8_decode(s + i, &cp);
        int inside = (cp == ',' || cp == '.') && i > 0 && s[i - 1] != ' ' && s[i + 1] &&
                     s[i + 1] != ' ' && !strchr(".,;:!?\"()", s[i + 1]);
        if (is_vocab_punct(cp) && !inside) koe_buf_append(out, s + i, (size_t)n);
        i += (size_t)n;
    }
    koe_buf_terminate(out);
}

static void check_punct_kept(const char *lang, const char *text) {
    koe_tokens t;
    koe_error err = {0};
    int rc = koe_text_tokens(text, strlen(text), lang, &t, &err);
    KT_CHECK(rc == 0, "[%s] %s: %s", lang, text, err.msg);
    if (rc) return;
    koe_buf a = {0}, b = {0};
    punct_sequence(text, &a);
    punct_sequence(t.phonemes, &b);
    KT_CHECK(!strcmp(a.data, b.data), "[%s] '%s': marks '%s' became '%s' in '%s'", lang, text,
             a.data, b.data, t.phonemes);
    KT_CHECK(t.dropped == 0, "[%s] '%s': %zu symbols dropped (%s)", lang, text, t.dropped,
             t.phonemes);
    size_t n = 0;
    for (size_t c = 0; c < t.nchunks; c++)
        for (size_t k = 0; k < t.chunks[c].count; k++, n++) {
            int32_t id = t.chunks[c].ids[k];
            KT_CHECK(id > 0 && id <= 177, "id %d out of the vocabulary", (int)id);
        }
    KT_CHECK(n > 0, "[%s] '%s': no tokens", lang, text);
    koe_buf_free(&a);
    koe_buf_free(&b);
    koe_tokens_free(&t);
}

static void test_punctuation_in_place(void) {
    check_punct_kept("en-us", "Hello, world!");
    check_punct_kept("en-us", "\"Quoted\" (paren) text; colon: here… and — a dash. Right?");
    check_punct_kept("en-us", "Wait… what?! No; yes: (maybe).");
    check_punct_kept("en-gb", "Well, I never! \"Really?\" she asked.");
    check_punct_kept("es", "¿Qué tal? Me llamo Juan, y tengo tres perros.");
    check_punct_kept("fr", "Bonjour, je m'appelle Jean. Le weekend, j'ai 3,5 euros.");
    check_punct_kept("it", "Ciao, come stai? Mi chiamo Giulia.");
    check_punct_kept("pt-br", "Olá, tudo bem? Eu me chamo João.");
    check_punct_kept("hi", "नमस्ते, आप कैसे हैं?");
}

static char *phonemes_of(const char *lang, const char *text) {
    koe_tokens t;
    if (koe_text_tokens(text, strlen(text), lang, &t, NULL)) return NULL;
    char *p = t.phonemes;
    t.phonemes = NULL;
    koe_tokens_free(&t);
    return p;
}

static void test_kokoro_symbols(void) {
    /* espeak-ng's tied diphthongs and affricates become Kokoro's single symbols. */
    char *p = phonemes_of("en-us", "Joy chair judge, go, my cow, day.");
    KT_CHECK(p && strstr(p, "ʤ") && strstr(p, "ʧ") && strstr(p, "Y") && strstr(p, "O") &&
                 strstr(p, "I") && strstr(p, "W") && strstr(p, "A"),
             "en-us symbols: %s", p ? p : "NULL");
    KT_CHECK(p && strstr(p, "ˈ"), "stress marks kept: %s", p ? p : "");
    KT_CHECK(p && !strstr(p, "\xcd\xa1") && !strstr(p, "ː"), "no ties or lengths in en-us: %s",
             p ? p : "");
    free(p);
    /* Examples from the inventory Kokoro's English voices were trained on (misaki's
     * EN_PHONES.md), which espeak-ng 1.51 plus the tables reproduce. */
    static const char *const us[][2] = {
        {"butter", "bˈʌɾəɹ"}, {"boxes", "bˈɑksᵻz"}, {"hair", "hˈɛɹ"}, {"sun", "sˈʌn"},
        {"jump", "ʤˈʌmp"},    {"lunch", "lˈʌnʧ"},   {"high", "hˈI"},  {"soy", "sˈY"}};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        char *q = phonemes_of("en-us", us[i][0]);
        KT_CHECK(q && !strcmp(q, us[i][1]), "en-us %s -> %s, want %s", us[i][0], q ? q : "NULL",
                 us[i][1]);
        free(q);
    }
    p = phonemes_of("en-gb", "Go home, father.");
    KT_CHECK(p && strstr(p, "Q") && strstr(p, "ː"), "en-gb keeps Q and lengths: %s", p ? p : "");
    free(p);
    /* French: no language-switch flags "(en)" in the output */
    p = phonemes_of("fr", "Le weekend au parking.");
    KT_CHECK(p && !strchr(p, '(') && !strchr(p, ')'), "fr flags removed: %s", p ? p : "");
    free(p);
    /* Nothing to say gives no tokens and no error. */
    koe_tokens t;
    KT_CHECK(koe_text_tokens("", 0, "en-us", &t, NULL) == 0 && t.nchunks == 0, "empty text");
    koe_tokens_free(&t);
    KT_CHECK(koe_text_tokens("a\xc3", 2, "en-us", &t, NULL) == KOE_ERR_INVALID, "bad UTF-8");
}

/* ------------------------------------------------------------------ the 510 split */

static void check_split(const int32_t *ids, size_t n, size_t max) {
    size_t *ends = malloc((n + 1) * sizeof *ends);
    size_t k = koe_text_split_ids(ids, n, max, ends);
    size_t pos = 0;
    for (size_t c = 0; c < k; c++) {
        KT_CHECK(ends[c] > pos && ends[c] - pos <= max, "chunk %zu [%zu, %zu) over %zu", c, pos,
                 ends[c], max);
        if (c + 1 < k) {
            KT_CHECK(ids[ends[c]] != 158 && ids[ends[c] - 1] != 156 && ids[ends[c] - 1] != 157,
                     "chunk %zu cuts a phoneme", c);
        }
        pos = ends[c];
    }
    KT_CHECK(pos == n, "chunks cover %zu of %zu", pos, n);
    free(ends);
}

static void test_split_ids(void) {
    int32_t ids[5000];
    /* Words of 1..12 ids between spaces: every cut lands after a space. */
    for (size_t i = 0; i < 5000; i++) ids[i] = 43 + (int32_t)rnd(20);
    for (size_t i = 0; i < 5000; i += 1 + rnd(12)) ids[i] = 16;
    check_split(ids, 5000, 510);
    size_t ends[5001];
    size_t k = koe_text_split_ids(ids, 5000, 510, ends);
    for (size_t c = 0; c + 1 < k; c++)
        KT_CHECK(ids[ends[c] - 1] == 16, "cut %zu not at a space", c);
    /* One giant word with stress and length marks: cuts at phoneme boundaries. */
    for (size_t i = 0; i < 5000; i++) {
        uint32_t r = rnd(10);
        ids[i] = r == 0 ? 156 : r == 1 ? 157 : r == 2 ? 158 : 43 + (int32_t)rnd(20);
    }
    check_split(ids, 5000, 510);
    KT_CHECK(koe_text_split_ids(ids, 0, 510, ends) == 0, "nothing to split");
    KT_CHECK(koe_text_split_ids(ids, 510, 510, ends) == 1 && ends[0] == 510, "510 fits");
}

/* Prose without a sentence end: the split has only word boundaries to go by. */
static char *make_prose(size_t chars, int punctuation) {
    static const char *words[] = {"the",    "river",  "ran",    "quietly",  "past",   "old",
                                  "houses", "where",  "people", "had",      "lived",  "for",
                                  "many",   "years",  "and",    "children", "played", "near",
                                  "green",  "fields", "under",  "a",        "wide",   "sky"};
    koe_buf b = {0};
    while (b.len < chars) {
        if (b.len) koe_buf_append(&b, " ", 1);
        koe_buf_append_str(&b, words[rnd(sizeof words / sizeof words[0])]);
        if (punctuation && rnd(9) == 0) koe_buf_append_str(&b, rnd(2) ? "," : ".");
    }
    koe_buf_terminate(&b);
    return b.data;
}

static void test_split_20000(void) {
    char *text = make_prose(20000, 1);
    size_t len = strlen(text);
    koe_tokens t;
    koe_error err = {0};
    int rc = koe_text_tokens(text, len, "en-us", &t, &err);
    KT_CHECK(rc == 0, "tokens: %s", err.msg);
    /* The unsplit reference: phonemize, filter, map, without the split. */
    koe_buf raw = {0}, filtered = {0};
    size_t dropped = 0;
    KT_CHECK(koe_text_phonemize(text, len, "en-us", &raw, &err) == 0, "phonemize: %s", err.msg);
    koe_vocab_filter(raw.data, raw.len, &filtered, &dropped);
    int32_t *all = malloc((filtered.len + 1) * sizeof *all);
    size_t n = koe_vocab_ids(filtered.data, filtered.len, all);
    KT_CHECK(n > 3 * KOE_TEXT_MAX_TOKENS, "only %zu tokens", n);
    KT_CHECK(t.nchunks >= n / KOE_TEXT_MAX_TOKENS + 1, "%zu chunks for %zu tokens", t.nchunks, n);
    size_t pos = 0;
    int same = 1;
    koe_buf joined = {0};
    for (size_t c = 0; c < t.nchunks; c++) {
        KT_CHECK(t.chunks[c].count >= 1 && t.chunks[c].count <= KOE_TEXT_MAX_TOKENS,
                 "chunk %zu has %zu ids", c, t.chunks[c].count);
        for (size_t k = 0; k < t.chunks[c].count; k++, pos++)
            if (pos >= n || t.chunks[c].ids[k] != all[pos]) same = 0;
        koe_buf_append_str(&joined, t.chunks[c].phonemes);
    }
    koe_buf_terminate(&joined);
    KT_CHECK(same && pos == n, "the chunks' ids differ from the unsplit ids (%zu vs %zu)", pos, n);
    KT_CHECK(!strcmp(joined.data, t.phonemes), "the chunks' phonemes differ from the whole");
    KT_CHECK(dropped == t.dropped, "dropped %zu vs %zu", dropped, t.dropped);
    koe_buf_free(&joined);
    koe_buf_free(&raw);
    koe_buf_free(&filtered);
    free(all);
    koe_tokens_free(&t);
    free(text);
}

static void test_giant_word_tokens(void) {
    /* No space at all: the split falls back to phoneme boundaries; nothing is lost. */
    char word[4001];
    for (int i = 0; i < 4000; i++) word[i] = (char)('a' + (i * 7) % 26);
    word[4000] = 0;
    koe_tokens t;
    koe_error err = {0};
    KT_CHECK(koe_text_tokens(word, 4000, "en-us", &t, &err) == 0, "giant word: %s", err.msg);
    size_t total = 0;
    koe_buf joined = {0};
    for (size_t c = 0; c < t.nchunks; c++) {
        KT_CHECK(t.chunks[c].count <= KOE_TEXT_MAX_TOKENS, "chunk over the limit");
        total += t.chunks[c].count;
        koe_buf_append_str(&joined, t.chunks[c].phonemes);
    }
    koe_buf_terminate(&joined);
    KT_CHECK(total > KOE_TEXT_MAX_TOKENS && t.nchunks >= 2, "%zu tokens in %zu chunks", total,
             t.nchunks);
    KT_CHECK(joined.data && !strcmp(joined.data, t.phonemes), "chunks lose phonemes");
    koe_buf_free(&joined);
    koe_tokens_free(&t);
}

/* ------------------------------------------------------------------ segmentation */

static size_t count_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static int is_space_cp(uint32_t cp) {
    return cp == ' ' || (cp >= 9 && cp <= 13) || cp == 0x85 || cp == 0xA0 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Checks a segmentation independently of koe_text_check_coverage. */
static void check_segments(const char *in, size_t len, const koe_text_opts *o,
                           const koe_segments *s, const char *what) {
    KT_CHECK(koe_text_check_coverage(in, len, s, NULL) == 0, "%s: coverage check fails", what);
    size_t pos = 0;
    for (size_t k = 0; k < s->count; k++) {
        const koe_segment *g = &s->items[k];
        for (size_t i = pos; i < g->start;) {
            uint32_t cp;
            int n = koe_utf8_decode(in + i, &cp);
            KT_CHECK(is_space_cp(cp), "%s: U+%04X at byte %zu is outside every segment", what,
                     (unsigned)cp, i);
            i += (size_t)n;
        }
        KT_CHECK(g->end > g->start, "%s: empty segment %zu", what, k);
        uint32_t first, last = 0;
        koe_utf8_decode(in + g->start, &first);
        size_t e = g->end - 1;
        while (e > g->start && ((unsigned char)in[e] & 0xC0) == 0x80) e--;
        koe_utf8_decode(in + e, &last);
        KT_CHECK(!is_space_cp(first) && !is_space_cp(last), "%s: segment %zu not trimmed", what, k);
        KT_CHECK(g->normalized && strlen(g->normalized) == g->normalized_len,
                 "%s: segment %zu normalized text", what, k);
        size_t chars = count_chars(in + g->start, g->end - g->start);
        size_t max = k == 0 ? o->first_max : o->segment_max;
        /* Closing marks after a sentence end stay with it, whatever the limit. */
        size_t tail = 0;
        for (size_t i = g->end; i > g->start; tail++) {
            size_t j = i - 1;
            while (j > g->start && ((unsigned char)in[j] & 0xC0) == 0x80) j--;
            uint32_t cp;
            koe_utf8_decode(in + j, &cp);
            if (!(cp == '.' || cp == '!' || cp == '?' || cp == '"' || cp == '\'' || cp == ')' ||
                  cp == ']' || cp == '}' || cp == 0x2026 || cp == 0x201D || cp == 0x2019 ||
                  cp == 0xBB || cp == 0x203C || (cp >= 0x2047 && cp <= 0x2049) || cp == 0x3002))
                break;
            i = j;
        }
        KT_CHECK(chars <= max + tail, "%s: segment %zu has %zu characters (max %zu): '%.*s'", what,
                 k, chars, max, (int)(g->end - g->start), in + g->start);
        pos = g->end;
    }
    for (size_t i = pos; i < len;) {
        uint32_t cp;
        int n = koe_utf8_decode(in + i, &cp);
        KT_CHECK(is_space_cp(cp), "%s: trailing U+%04X uncovered", what, (unsigned)cp);
        i += (size_t)n;
    }
}

static void segment_and_check(const char *in, size_t len, const koe_text_opts *o,
                              const char *what) {
    koe_segments *s = NULL;
    koe_error err = {0};
    int rc = koe_text_segment(in, len, o, &s, &err);
    KT_CHECK(rc == 0, "%s: %s", what, err.msg);
    if (!rc) check_segments(in, len, o, s, what);
    koe_segments_free(s);
}

static void test_coverage_random(void) {
    static const uint32_t alphabet[] = {
        'a',    'b',   'e',    'k',    'o',     'T',     'Z',    '0',    '7',     ' ',    ' ',
        ' ',    '\n',  '\t',   '.',    ',',     '!',     '?',    ';',    ':',     '-',    '"',
        '\'',   '(',   ')',    '$',    '%',     '&',     '@',    '/',    0xA0,    0xE9,   0xDF,
        0x3A9,  0x416, 0x4E2D, 0x3042, 0x1F600, 0x1F44D, 0x200B, 0x2028, 0x2014,  0x2026, 0x201C,
        0x201D, 0x301, 0x3000, 0xFEFF, 0x7,     0x1B,    0x85,   0xFFFD, 0x10FFFF};
    for (int iter = 0; iter < 400; iter++) {
        koe_buf b = {0};
        size_t n = rnd(iter < 50 ? 40 : 1500);
        for (size_t i = 0; i < n; i++)
            append_cp(&b, alphabet[rnd(sizeof alphabet / sizeof alphabet[0])]);
        koe_text_opts o = koe_text_opts_default();
        o.first_min = rnd(60);
        o.first_max = 1 + rnd(300);
        o.segment_max = 1 + rnd(700);
        char what[64];
        snprintf(what, sizeof what, "random text %d", iter);
        segment_and_check(b.data ? b.data : "", b.len, &o, what);
        if (iter < 250) { /* and all the way to tokens, in every language */
            koe_text_result *r = NULL;
            koe_error err = {0};
            static const char *const langs[] = {"en-us", "fr", "en-gb", "es", "it", "pt-br", "hi"};
            o.lang = langs[(iter / 36) % 7]; /* in blocks: a server switches language rarely */
            int rc = koe_text_process(b.data ? b.data : "", b.len, &o, &r, &err);
            KT_CHECK(rc == 0, "%s: process: %s", what, err.msg);
            for (size_t i = 0; r && i < r->segments->count; i++)
                for (size_t c = 0; c < r->tokens[i].nchunks; c++)
                    KT_CHECK(r->tokens[i].chunks[c].count <= KOE_TEXT_MAX_TOKENS, "%s: chunk",
                             what);
            koe_text_result_free(r);
        }
        koe_buf_free(&b);
    }
}

static void test_coverage_special(void) {
    koe_text_opts o = koe_text_opts_default();
    koe_segments *s = NULL;
    KT_CHECK(koe_text_segment("", 0, &o, &s, NULL) == 0 && s->count == 0, "empty input");
    koe_segments_free(s);
    const char *ws = " \t\n\r \xc2\xa0\xe3\x80\x80\xe2\x80\xa8 ";
    KT_CHECK(koe_text_segment(ws, strlen(ws), &o, &s, NULL) == 0 && s->count == 0,
             "whitespace only");
    koe_segments_free(s);
    /* No punctuation at all. */
    char *prose = make_prose(30000, 0);
    segment_and_check(prose, strlen(prose), &o, "no punctuation");
    free(prose);
    /* One 100,000-character word. */
    char *word = malloc(100001);
    for (int i = 0; i < 100000; i++) word[i] = (char)('a' + i % 26);
    segment_and_check(word, 100000, &o, "100,000-character word");
    /* The same word in two-byte characters: cuts never split a character. */
    koe_buf wide = {0};
    for (int i = 0; i < 50000; i++) append_cp(&wide, 0x416);
    segment_and_check(wide.data, wide.len, &o, "100,000-byte Cyrillic word");
    koe_buf_free(&wide);
    /* Only punctuation. */
    for (int i = 0; i < 100000; i++) word[i] = ".,;:!?-\"()"[i % 10];
    segment_and_check(word, 100000, &o, "only punctuation");
    for (int i = 0; i < 20000; i++) word[i] = i % 2 ? ' ' : "!?."[i % 3];
    segment_and_check(word, 20000, &o, "spaced punctuation");
    free(word);
    /* Only emoji: covered, dropped and counted. */
    const char *emoji = "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 \xf0\x9f\x91\x8d";
    KT_CHECK(koe_text_segment(emoji, strlen(emoji), &o, &s, NULL) == 0 && s->dropped == 3,
             "emoji dropped and counted");
    koe_segments_free(s);
    /* Invalid UTF-8: a clear error naming the byte. */
    static const struct {
        const char *s;
        size_t n, at;
    } bad[] = {{"ab\x80"
                "cd",
                5, 2},
               {"abc\xc3", 4, 3},
               {"\xc0\xaf", 2, 0},
               {"x\xed\xa0\x80", 4, 1},
               {"ok \xf4\x90\x80\x80", 7, 3},
               {"\xff", 1, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        koe_error err = {0};
        char want[32];
        snprintf(want, sizeof want, "byte %zu", bad[i].at);
        KT_CHECK(koe_text_segment(bad[i].s, bad[i].n, &o, &s, &err) == KOE_ERR_INVALID &&
                     strstr(err.msg, want) && strstr(err.msg, "UTF-8"),
                 "invalid UTF-8 case %zu: '%s'", i, err.msg);
    }
}

static void test_coverage_check_rejects(void) {
    const char *in = "One two. Three four.";
    koe_segment items[2] = {{0, 8, NULL, 0, 0, 1}, {9, 20, NULL, 0, 0, 1}};
    koe_segments s = {items, 2, 0};
    KT_CHECK(koe_text_check_coverage(in, strlen(in), &s, NULL) == 0, "valid tiling");
    items[1].start = 10; /* "T" left out */
    KT_CHECK(koe_text_check_coverage(in, strlen(in), &s, NULL) == KOE_ERR_INTERNAL, "gap");
    items[1].start = 7; /* overlap */
    KT_CHECK(koe_text_check_coverage(in, strlen(in), &s, NULL) == KOE_ERR_INTERNAL, "overlap");
    items[1].start = 9;
    items[1].end = 19; /* last "." left out */
    KT_CHECK(koe_text_check_coverage(in, strlen(in), &s, NULL) == KOE_ERR_INTERNAL, "tail");
    const char *u = "\xc3\xa9t\xc3\xa9";
    koe_segment one = {0, 1, NULL, 0, 0, 1};
    koe_segments s1 = {&one, 1, 0};
    KT_CHECK(koe_text_check_coverage(u, 5, &s1, NULL) == KOE_ERR_INTERNAL, "mid-character");
}

static koe_segments *seg(const char *text, size_t first_min, size_t first_max) {
    koe_text_opts o = koe_text_opts_default();
    o.first_min = first_min;
    o.first_max = first_max;
    koe_segments *s = NULL;
    koe_text_segment(text, strlen(text), &o, &s, NULL);
    return s;
}

static int seg_is(const char *text, const koe_segments *s, size_t k, const char *want) {
    if (!s || k >= s->count) return 0;
    const koe_segment *g = &s->items[k];
    return g->end - g->start == strlen(want) && !memcmp(text + g->start, want, strlen(want));
}

static void test_first_segment(void) {
    const char *t = "Hello there, my friend. This is a longer sentence that goes on and on.";
    koe_segments *s = seg(t, 5, 150);
    KT_CHECK(seg_is(t, s, 0, "Hello there,") && !s->items[0].sentence_end, "min 5: first clause");
    KT_CHECK(seg_is(t, s, 1, "my friend."), "then the rest of the sentence");
    koe_segments_free(s);
    s = seg(t, 16, 150);
    KT_CHECK(seg_is(t, s, 0, "Hello there, my friend.") && s->items[0].sentence_end,
             "min 16: the sentence");
    koe_segments_free(s);
    const char *np = "one two three four five six seven eight nine ten eleven twelve";
    s = seg(np, 5, 20);
    KT_CHECK(seg_is(np, s, 0, "one two three four"), "max 20: cut at the last word");
    koe_segments_free(s);
    const char *ab = "Dr. Smith met Mr. J. R. Brown at 3.30 p.m. today. He left.";
    s = seg(ab, 1, 150);
    KT_CHECK(seg_is(ab, s, 0, "Dr. Smith met Mr. J. R. Brown at 3.30 p.m. today."),
             "abbreviations and initials do not end sentences");
    koe_segments_free(s);
    const char *q = "\"Stop!\" he said. Then (quietly.) more.";
    s = seg(q, 1, 150);
    KT_CHECK(seg_is(q, s, 0, "\"Stop!\"") && seg_is(q, s, 2, "Then (quietly.)"),
             "closing quotes stay with their sentence");
    koe_segments_free(s);
    const char *para = "A title\n\nThe first paragraph starts here.";
    s = seg(para, 20, 150);
    KT_CHECK(seg_is(para, s, 0, "A title"), "a blank line ends a segment");
    koe_segments_free(s);
    /* Later sentences longer than segment_max are cut at a clause end. */
    koe_text_opts o = koe_text_opts_default();
    o.first_min = 1;
    o.segment_max = 60;
    const char *lng = "Short one. This sentence runs on for a while, and then it keeps going "
                      "with many more words until the end.";
    koe_segments *l = NULL;
    koe_text_segment(lng, strlen(lng), &o, &l, NULL);
    KT_CHECK(l && seg_is(lng, l, 1, "This sentence runs on for a while,"), "clause cut");
    koe_segments_free(l);
}

/* With a ramp, segment k is at most first_max x ramp^k characters and at most ramp x the
 * characters before it (cut at a word), up to segment_max; sentence ends still end segments;
 * coverage holds. Without, the second segment is the rest of the sentence. */
static void test_segment_ramp(void) {
    koe_buf t = {0};
    for (int i = 0; i < 60; i++) koe_buf_printf(&t, "word%02d ", i);
    koe_buf_append_str(&t, "end. Next sentence is short.");
    koe_text_opts o = koe_text_opts_default();
    o.first_min = 0;
    o.first_max = 16;
    o.segment_max = 200;
    o.ramp = 2.0;
    koe_segments *s = NULL;
    KT_CHECK(koe_text_segment(t.data, t.len, &o, &s, NULL) == 0 && s, "segmented");
    if (!s) return;
    size_t by_first = 16, before = 0;
    for (size_t k = 0; k + 1 < s->count; k++) {
        size_t lim = k == 0 ? 16 : by_first < 2 * before ? by_first : 2 * before;
        if (lim > 200) lim = 200;
        size_t n = s->items[k].end - s->items[k].start;
        KT_CHECK(n <= lim, "segment %zu: %zu chars over its limit %zu", k, n, lim);
        /* cut at a word, not earlier than needed: the next word would not fit */
        if (!s->items[k].sentence_end)
            KT_CHECK(n + 8 > lim, "segment %zu: %zu chars, limit %zu", k, n, lim);
        by_first = by_first * 2 < 200 ? by_first * 2 : 200;
        before += n;
    }
    KT_CHECK(s->count >= 5, "%zu segments", s->count);
    const koe_segment *last = &s->items[s->count - 1];
    KT_CHECK(!strncmp(t.data + last->start, "Next sentence is short.", last->end - last->start),
             "the sentence end still cuts");
    KT_EXPECT(koe_text_check_coverage(t.data, t.len, s, NULL) == 0);
    koe_segments_free(s);
    /* a first segment cut short at an early clause mark: what follows grows from its length,
     * not from first_max, so that it is ready before the listener's buffer runs out */
    const char *early = "Yes, I will read the whole of this rather long sentence to you now, "
                        "every single word of it, slowly.";
    o.first_max = 32;
    int erc = koe_text_segment(early, strlen(early), &o, &s, NULL);
    KT_CHECK(erc == 0 && s && s->count >= 4, "early clause: %zu segments", s ? s->count : 0);
    size_t sum = 0;
    for (size_t k = 0; s && k < s->count; k++) {
        size_t n = s->items[k].end - s->items[k].start;
        if (k == 0) KT_CHECK(n == 4, "first segment 'Yes,': %zu chars", n);
        if (k > 0) KT_CHECK(n <= 2 * sum, "segment %zu: %zu chars, over 2 x %zu", k, n, sum);
        sum += n;
    }
    KT_EXPECT(s && koe_text_check_coverage(early, strlen(early), s, NULL) == 0);
    koe_segments_free(s);
    o.first_max = 16;
    o.ramp = 0;
    KT_CHECK(koe_text_segment(t.data, t.len, &o, &s, NULL) == 0 && s && s->count >= 2 &&
                 s->items[1].end - s->items[1].start > 150,
             "no ramp: the second segment runs to segment_max");
    koe_segments_free(s);
    koe_buf_free(&t);
}

static void test_process(void) {
    const char *t = "It costs $3.50 today \xf0\x9f\x98\x80. Dr. Smith agreed, at 3:30pm; then "
                    "she left.";
    koe_text_result *r = NULL;
    koe_error err = {0};
    KT_CHECK(koe_text_process(t, strlen(t), NULL, &r, &err) == 0, "process: %s", err.msg);
    if (!r) return;
    KT_CHECK(r->segments->count >= 2, "%zu segments", r->segments->count);
    KT_CHECK(r->dropped == 1, "the emoji is counted: %zu", r->dropped);
    KT_CHECK(strstr(r->segments->items[0].normalized, "three dollars fifty cents") != NULL,
             "normalized: %s", r->segments->items[0].normalized);
    for (size_t i = 0; i < r->segments->count; i++)
        KT_CHECK(r->tokens[i].nchunks == 1 && r->tokens[i].chunks[0].count > 3,
                 "segment %zu tokens", i);
    koe_text_result_free(r);
    KT_CHECK(koe_text_process("x\xff", 2, NULL, &r, &err) == KOE_ERR_INVALID && !r, "bad input");
    koe_text_opts o = koe_text_opts_default();
    o.lang = "zh";
    KT_CHECK(koe_text_process("x", 1, &o, &r, &err) == KOE_ERR_UNSUPPORTED, "zh refused");
}

/* Short random mixtures of scripts, symbols and marks in random languages, through the whole
 * front end: regression guard for the espeak-ng 1.51 memory bugs worked around in
 * phonemize.c and normalize.c (they show under ASan: "Ω'Ω", "ạβо", "ạ.ß", "/a-%@" in hi). */
static void test_espeak_fuzz(void) {
    static const uint32_t alphabet[] = {
        'a',   'b',   'e',   'k',    'o',    'T',     'Z',    '0',    '7',    ' ',
        ' ',   ' ',   '\'',  '\'',   '-',    '.',     ',',    '!',    '?',    ';',
        ':',   '"',   '(',   ')',    '$',    '%',     '&',    '@',    '/',    0xE9,
        0xDF,  0xF0,  0x3A9, 0x3B1,  0x3B2,  0x416,   0x43E,  0x4E2D, 0x3042, 0x30A2,
        0x5D0, 0x627, 0x928, 0x93F,  0x94D,  0x1F600, 0x2019, 0x2014, 0x2026, 0x301,
        0x10D, 0x131, 0xE0,  0x1EA1, 0x263A, 0xAC00,  0xE01,  0x10D0, 0x531};
    static const char *const langs[] = {"en-us", "en-gb", "es", "fr", "it", "pt-br", "hi"};
    for (int iter = 0; iter < 1500; iter++) {
        koe_buf b = {0};
        size_t n = rnd(100);
        for (size_t i = 0; i < n; i++)
            append_cp(&b, alphabet[rnd(sizeof alphabet / sizeof alphabet[0])]);
        koe_text_opts o = koe_text_opts_default();
        o.lang = langs[rnd(7)];
        koe_text_result *r = NULL;
        koe_error err = {0};
        int rc = koe_text_process(b.data ? b.data : "", b.len, &o, &r, &err);
        KT_CHECK(rc == 0, "[%s] '%.*s': %s", o.lang, (int)b.len, b.data ? b.data : "", err.msg);
        koe_text_result_free(r);
        koe_buf_free(&b);
    }
}

/* ------------------------------------------------------------------ espeak-ng speech */

typedef struct pcm_stats {
    size_t samples, calls, stop_after;
    double sumsq;
} pcm_stats;

static int on_pcm(void *user, const int16_t *pcm, size_t n) {
    pcm_stats *st = user;
    st->calls++;
    st->samples += n;
    for (size_t i = 0; i < n; i++) st->sumsq += (double)pcm[i] * pcm[i];
    return st->stop_after && st->calls >= st->stop_after;
}

static void test_espeak_speak(void) {
    KT_CHECK(koe_espeak_sample_rate() == 22050, "rate %d", koe_espeak_sample_rate());
    const char *text = "Hello there. This is the fallback voice speaking a whole sentence.";
    pcm_stats st = {0};
    koe_error err = {0};
    int rc = koe_espeak_speak(text, strlen(text), "en-us", 1.0f, on_pcm, &st, NULL, &err);
    KT_CHECK(rc == 0, "speak: %s", err.msg);
    double secs = (double)st.samples / 22050.0;
    KT_CHECK(secs > 2.0 && secs < 15.0, "%.2f s of speech", secs);
    double rms = st.samples ? sqrt(st.sumsq / (double)st.samples) : 0;
    KT_CHECK(rms > 300, "speech is not silent (rms %.1f)", rms);
    /* Faster speech is shorter. */
    pcm_stats fast = {0};
    koe_espeak_speak(text, strlen(text), "en-us", 2.0f, on_pcm, &fast, NULL, NULL);
    KT_CHECK(fast.samples < st.samples * 3 / 4, "speed 2: %zu vs %zu samples", fast.samples,
             st.samples);
    /* The callback stops it. */
    pcm_stats stop = {0};
    stop.stop_after = 2;
    rc = koe_espeak_speak(text, strlen(text), "en-us", 1.0f, on_pcm, &stop, NULL, &err);
    KT_CHECK(rc == KOE_ERR_CANCELLED && stop.calls == 2 && stop.samples < st.samples / 2,
             "stop by callback: rc %d, %zu calls", rc, stop.calls);
    /* A cancel flag already set: nothing is spoken. */
    volatile int cancel = 1;
    pcm_stats none = {0};
    rc = koe_espeak_speak(text, strlen(text), "en-us", 1.0f, on_pcm, &none, &cancel, &err);
    KT_CHECK(rc == KOE_ERR_CANCELLED && none.samples == 0, "pre-cancelled: rc %d", rc);
    KT_CHECK(koe_espeak_speak("a\xff", 2, "en-us", 1, on_pcm, &none, NULL, &err) == KOE_ERR_INVALID,
             "invalid UTF-8");
    KT_CHECK(koe_espeak_speak("x", 1, "ja", 1, on_pcm, &none, NULL, &err) == KOE_ERR_UNSUPPORTED,
             "Japanese refused");
    /* Other languages speak too, and phonemization still works afterwards. */
    pcm_stats es = {0};
    KT_CHECK(koe_espeak_speak("Hola, ¿qué tal?", strlen("Hola, ¿qué tal?"), "es", 1, on_pcm, &es,
                              NULL, &err) == 0 &&
                 es.samples > 5000,
             "Spanish speech");
    char *p = phonemes_of("en-us", "Still fine.");
    KT_CHECK(p && strstr(p, "fˈIn"), "phonemize after speech: %s", p ? p : "NULL");
    free(p);
}

/* ------------------------------------------------------------------ threads */

static const char *thread_texts[][2] = {
    {"en-us", "The quick brown fox jumps over the lazy dog, twice."},
    {"fr", "Le renard brun saute par-dessus le chien paresseux."},
    {"en-gb", "Whilst the colour of the harbour changed, we waited."},
    {"es", "El veloz murciélago hindú comía feliz cardillo y kiwi."}};
static char *thread_want[4];

static void *thread_main(void *arg) {
    size_t id = (size_t)arg;
    long bad = 0;
    for (int i = 0; i < 30; i++) {
        size_t k = (id + (size_t)i) % 4;
        char *p = phonemes_of(thread_texts[k][0], thread_texts[k][1]);
        if (!p || strcmp(p, thread_want[k])) bad++;
        free(p);
        if (id == 0 && i % 10 == 0) {
            pcm_stats st = {0};
            koe_espeak_speak("Interleaved speech.", 19, "en-us", 1, on_pcm, &st, NULL, NULL);
            if (!st.samples) bad++;
        }
    }
    return (void *)bad;
}

static void test_threads(void) {
    for (size_t k = 0; k < 4; k++)
        thread_want[k] = phonemes_of(thread_texts[k][0], thread_texts[k][1]);
    pthread_t th[3];
    for (size_t i = 0; i < 3; i++) pthread_create(&th[i], NULL, thread_main, (void *)i);
    for (size_t i = 0; i < 3; i++) {
        void *bad;
        pthread_join(th[i], &bad);
        KT_CHECK(bad == NULL, "thread %zu: %ld results differ from the serial ones", i, (long)bad);
    }
    for (size_t k = 0; k < 4; k++) free(thread_want[k]);
}

int main(void) {
    kt_run("vocab_matches_config", test_vocab_matches_config);
    kt_run("fallback_targets_in_vocab", test_fallback_targets_in_vocab);
    kt_run("languages", test_languages);
    kt_run("punctuation_in_place", test_punctuation_in_place);
    kt_run("kokoro_symbols", test_kokoro_symbols);
    kt_run("split_ids", test_split_ids);
    kt_run("split_20000", test_split_20000);
    kt_run("giant_word_tokens", test_giant_word_tokens);
    kt_run("coverage_random", test_coverage_random);
    kt_run("coverage_special", test_coverage_special);
    kt_run("coverage_check_rejects", test_coverage_check_rejects);
    kt_run("first_segment", test_first_segment);
    kt_run("segment_ramp", test_segment_ramp);
    kt_run("process", test_process);
    kt_run("espeak_fuzz", test_espeak_fuzz);
    kt_run("espeak_speak", test_espeak_speak);
    kt_run("threads", test_threads);
    return kt_finish();
}
