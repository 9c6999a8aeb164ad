/* Normalized text -> Kokoro-style phoneme string. espeak-ng phonemizes each stretch of text
 * between punctuation marks (its clause API would swallow them), its IPA goes through the
 * language's table below, and the marks Kokoro's vocabulary knows are put back in place with the
 * text's own spacing. Stress marks (ˈ ˌ) pass through. */
#include "text/text_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct ipa_rule {
    const char *from, *to;
} ipa_rule;

/* espeak-ng English -> Kokoro's English inventory (the symbols Kokoro's English voices were trained
 * on: A I O Q W Y for the diphthongs, ʤ ʧ, ᵊ for syllabic consonants, ɹ). "͡" is the tie U+0361
 * that espeak-ng puts inside a multi-letter phoneme. Longest match wins. */
static const ipa_rule en_common[] = {
    {"ʔˌn̩", "tᵊn"}, {"ʔn̩", "tᵊn"}, {"ʔn", "tᵊn"}, {"ʔ", "t"},       {"a͡ɪ", "I"},  {"a͡ʊ", "W"},
    {"d͡ʒ", "ʤ"},    {"e͡ɪ", "A"},   {"t͡ʃ", "ʧ"},   {"ɔ͡ɪ", "Y"},      {"ə͡l", "ᵊl"}, {"ʲo", "jo"},
    {"ʲə", "jə"},   {"ʲ", ""},     {"ɚɹ", "əɹ"},  {"ɚ", "əɹ"},      {"r", "ɹ"},   {"x", "k"},
    {"ç", "k"},     {"ɐ", "ə"},    {"ɬ", "l"},    {"\xcc\x83", ""},
};
/* American: o͡ʊ is O, the long ɜː is r-coloured, length marks go, o alone is ɔ (espeak-ng 1.51). */
static const ipa_rule en_us[] = {
    {"o͡ʊ", "O"},  {"ɜːɹ", "ɜɹ"}, {"ɜː", "ɜɹ"}, {"ɪ͡ə", "iə"},
    {"ɪə", "iə"}, {"ː", ""},     {"e", "A"},   {"o", "ɔ"},
};
/* British: e͡ə is ɛː, ə͡ʊ is Q, lengths stay. */
static const ipa_rule en_gb[] = {
    {"e͡ə", "ɛː"}, {"i͡ə", "ɪə"}, {"ə͡ʊ", "Q"}, {"e", "A"}, {"o", "ɔ"},
};
/* Other espeak-ng languages: tied affricates and diphthongs to Kokoro's single symbols. */
static const ipa_rule other[] = {
    {"a͡ɪ", "I"}, {"a͡ʊ", "W"}, {"d͡z", "ʣ"}, {"d͡ʒ", "ʤ"}, {"d͡ʑ", "ʥ"}, {"e͡ɪ", "A"}, {"o͡ʊ", "O"},
    {"ə͡ʊ", "Q"}, {"s͡s", "S"}, {"t͡s", "ʦ"}, {"t͡ʃ", "ʧ"}, {"t͡ɕ", "ʨ"}, {"ɔ͡ɪ", "Y"}, {"-", ""},
};

static const ipa_rule *match(const ipa_rule *t, size_t n, const char *s, size_t left,
                             size_t *best_len) {
    const ipa_rule *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (t[i].from[0] != s[0]) continue; /* cheap first-byte test before the full match */
        size_t l = strlen(t[i].from);
        if (l <= left && l > *best_len && !memcmp(s, t[i].from, l)) {
            best = &t[i];
            *best_len = l;
        }
    }
    return best;
}

static int is_syllabic_mark(const char *s, size_t left) {
    return left >= 2 && (unsigned char)s[0] == 0xCC && (unsigned char)s[1] == 0xA9; /* U+0329 */
}

int koe_text_map_ipa(const char *ipa, size_t len, const char *lang, koe_buf *out) {
    int en = !strncmp(lang, "en-", 3), us = !strcmp(lang, "en-us");
    size_t i = 0;
    while (i < len) {
        size_t l = 0;
        const ipa_rule *r = NULL;
        if (en) {
            r = match(en_common, sizeof en_common / sizeof en_common[0], ipa + i, len - i, &l);
            const ipa_rule *r2 =
                us ? match(en_us, sizeof en_us / sizeof en_us[0], ipa + i, len - i, &l)
                   : match(en_gb, sizeof en_gb / sizeof en_gb[0], ipa + i, len - i, &l);
            if (r2) r = r2;
        } else {
            r = match(other, sizeof other / sizeof other[0], ipa + i, len - i, &l);
        }
        if (r) {
            if (koe_buf_append_str(out, r->to)) return KOE_ERR_NOMEM;
            i += l;
            continue;
        }
        /* English syllabic consonant: n̩ -> ᵊn (Kokoro's spelling of a syllabic n/l/m). */
        uint32_t cp;
        int n = koe_utf8_decode(ipa + i, &cp);
        if (n <= 0) n = 1;
        if (en && is_syllabic_mark(ipa + i + n, len - i - (size_t)n)) {
            if (koe_buf_append_str(out, "ᵊ") || koe_buf_append(out, ipa + i, (size_t)n))
                return KOE_ERR_NOMEM;
            i += (size_t)n + 2;
            continue;
        }
        if (koe_buf_append(out, ipa + i, (size_t)n)) return KOE_ERR_NOMEM;
        i += (size_t)n;
    }
    return 0;
}

/* Punctuation Kokoro's vocabulary knows, kept in the phoneme string. */
static int is_kept_punct(uint32_t cp) {
    switch (cp) {
    case ';':
    case ':':
    case ',':
    case '.':
    case '!':
    case '?':
    case '"':
    case '(':
    case ')':
    case 0x2014: /* — */
    case 0x2026: /* … */
    case 0x201C: /* “ */
    case 0x201D: /* ” */
        return 1;
    default:
        return 0;
    }
}

static int is_space(uint32_t cp) {
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v';
}

/* A mark between two word characters ("3.5", "3,5" in French, "a:b") belongs to the word:
 * espeak-ng reads it there. */
static int word_char(uint32_t cp) {
    return cp && !is_space(cp) && !is_kept_punct(cp);
}

static int may_join_words(uint32_t cp) {
    return cp == '.' || cp == ',' || cp == ':' || cp == ';';
}

/* Latin letters: ASCII, Latin-1 and Latin Extended-A/B (U+00C0..U+024F, bar × and ÷). */
static int latin_cp(uint32_t cp) {
    return (cp < 0x80 && ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')) ||
           (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7);
}

/* A coarse script class for letters (0: digits, marks, punctuation: no script). */
static int script_of(uint32_t cp) {
    static const struct {
        uint32_t lo, hi;
        int script;
    } blocks[] = {
        {'A', 'Z', 1},        {'a', 'z', 1},        {0xC0, 0x24F, 1},     {0x1E00, 0x1EFF, 1},
        {0x370, 0x3FF, 2},    {0x1F00, 0x1FFF, 2},  {0x400, 0x52F, 3},    {0x530, 0x58F, 4},
        {0x590, 0x5FF, 5},    {0x600, 0x6FF, 6},    {0x750, 0x77F, 6},    {0x900, 0x97F, 7},
        {0x980, 0xDFF, 8},    {0xE00, 0xE7F, 9},    {0x10A0, 0x10FF, 10}, {0x1100, 0x11FF, 11},
        {0x3130, 0x318F, 11}, {0xAC00, 0xD7AF, 11}, {0x3040, 0x30FF, 12}, {0x3400, 0x4DBF, 13},
        {0x4E00, 0x9FFF, 13},
    };
    if (cp == 0xD7 || cp == 0xF7) return 0;
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (cp >= blocks[i].lo && cp <= blocks[i].hi) return blocks[i].script;
    return 0;
}

/* The accented letters each language's espeak-ng dictionary reads as its own (facts of the
 * alphabets; English reads the usual loanword accents: café, naïve, façade). */
static int native_letter(const char *lang, uint32_t cp) {
    static const struct {
        const char *lang;
        const char *letters;
    } alphabets[] = {
        {"en-us", "àâäçéèêëîïôöûüùñáíóúÀÂÄÇÉÈÊËÎÏÔÖÛÜÙÑÁÍÓÚ"},
        {"en-gb", "àâäçéèêëîïôöûüùñáíóúÀÂÄÇÉÈÊËÎÏÔÖÛÜÙÑÁÍÓÚ"},
        {"es", "áéíóúüñÁÉÍÓÚÜÑ"},
        {"fr", "àâæçéèêëîïôœùûüÿÀÂÆÇÉÈÊËÎÏÔŒÙÛÜŸ"},
        {"it", "àèéìíîòóùúÀÈÉÌÍÎÒÓÙÚ"},
        {"pt-br", "áâãàçéêíóôõúüÁÂÃÀÇÉÊÍÓÔÕÚÜ"},
        {"hi", ""},
    };
    for (size_t i = 0; i < sizeof alphabets / sizeof alphabets[0]; i++) {
        if (strcmp(lang, alphabets[i].lang)) continue;
        for (const char *p = alphabets[i].letters; *p;) {
            uint32_t c;
            p += koe_utf8_decode(p, &c);
            if (c == cp) return 1;
        }
        return 0;
    }
    return 0;
}

static int latin_letter_at(const char *s, size_t len, size_t i) {
    uint32_t cp;
    return i < len && koe_utf8_decode(s + i, &cp) > 0 && latin_cp(cp);
}

static int latin_letter_before(const char *s, size_t i) {
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    uint32_t cp;
    return koe_utf8_decode(s + j, &cp) > 0 && latin_cp(cp);
}

/* Phonemizes text[s, e) (no kept punctuation inside, trimmed) and appends it mapped. */
static int phonemize_stretch(const char *text, size_t s, size_t e, const char *lang,
                             koe_buf *scratch, koe_buf *ipa, koe_buf *out, koe_error *err) {
    /* espeak-ng's input, made safe: NUL bytes (they would end the input) become spaces; so do
     * apostrophes except between Latin letters (don't, l'homme: the only place they mean
     * something), and a space goes between letters of different scripts. The last two work
     * around espeak-ng 1.51 reading freed memory when it switches language inside a word
     * ("Ω'Ω" or "ạβо" in fr, es, it; found by test_text under ASan). */
    scratch->len = 0;
    int last_script = 0, space_next = 0;
    for (size_t i = s; i < e;) {
        uint32_t cp;
        int n = koe_utf8_decode(text + i, &cp);
        if (n <= 0) n = 1, cp = ' ';
        int sc = script_of(cp);
        const char *src = text + i;
        size_t sl = (size_t)n;
        int joiner = cp == '.' || cp == ',' || cp == ':' || cp == ';';
        if (cp == 0 || (cp == '\'' && !(i > s && latin_letter_before(text + s, i - s) &&
                                        latin_letter_at(text, e, i + 1)))) {
            src = " ", sl = 1;
        } else if (joiner && !(i > s && isalnum((unsigned char)text[i - 1]) && i + 1 < e &&
                               isalnum((unsigned char)text[i + 1]))) {
            /* A mark inside a word matters between ASCII letters or digits (3.5, 3,5, a.b);
             * elsewhere ("ạ.ß") it is a space (espeak-ng 1.51 again reads freed memory). */
            src = " ", sl = 1;
        } else if ((sc && last_script && sc != last_script) || space_next ||
                   (sc == 1 && cp >= 0x80 && !native_letter(lang, cp))) {
            /* A Latin letter foreign to the language stands alone: espeak-ng switches language
             * for it, and two such switches inside one word read freed memory ("ạß", "ðß"). */
            if (scratch->len && scratch->data[scratch->len - 1] != ' ' &&
                koe_buf_append(scratch, " ", 1))
                return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        }
        space_next = sc == 1 && cp >= 0x80 && !native_letter(lang, cp);
        if (cp == ' ' || cp == '\'' || cp == 0)
            last_script = 0;
        else if (sc)
            last_script = sc;
        if (koe_buf_append(scratch, src, sl))
            return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        i += (size_t)n;
    }
    if (koe_buf_terminate(scratch)) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    ipa->len = 0;
    int rc = koe_espeak_ipa_locked(scratch->data, ipa, err);
    if (rc) return rc;
    if (koe_text_map_ipa(ipa->data ? ipa->data : "", ipa->len, lang, out))
        return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    return 0;
}

/* Phonemizes one stretch, preceded by a space when the text had one; a stretch that says nothing
 * (a lone symbol espeak-ng skips) leaves no trace, not even the space. */
static int flush_stretch(const char *text, size_t s, size_t e, const char *lang, int space_before,
                         koe_buf *scratch, koe_buf *ipa, koe_buf *out, koe_error *err) {
    size_t before = out->len;
    if (space_before && out->len && koe_buf_append(out, " ", 1))
        return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    size_t mark = out->len;
    int rc = phonemize_stretch(text, s, e, lang, scratch, ipa, out, err);
    if (!rc && out->len == mark) out->len = before;
    return rc;
}

int koe_text_phonemize(const char *text, size_t len, const char *lang, koe_buf *out,
                       koe_error *err) {
    size_t bad = koe_utf8_validate(text ? text : "", len);
    if (bad != len) return koe_error_set(err, KOE_ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
    int rc = koe_espeak_lock(lang, err);
    if (rc) return rc;
    koe_buf scratch = {0}, ipa = {0};
    /* The open stretch [s, e) is phonemized in one espeak-ng call when a mark or the end closes
     * it; spaces inside it stay (one call per phrase, not per word). */
    size_t i = 0, s = 0, e = 0;
    int open = 0, space_before = 0, space_after = 0;
    uint32_t prev = 0;
    while (i < len && !rc) {
        uint32_t cp, next = 0;
        int n = koe_utf8_decode(text + i, &cp);
        if (i + (size_t)n < len) koe_utf8_decode(text + i + n, &next);
        if (is_space(cp)) {
            if (open)
                space_after = 1;
            else
                space_before = 1;
        } else if (is_kept_punct(cp) &&
                   !(may_join_words(cp) && word_char(prev) && word_char(next))) {
            if (open) {
                rc = flush_stretch(text, s, e, lang, space_before, &scratch, &ipa, out, err);
                open = 0;
                space_before = space_after;
                space_after = 0;
            }
            if (!rc && space_before && out->len && koe_buf_append(out, " ", 1))
                rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
            if (!rc && koe_buf_append(out, text + i, (size_t)n))
                rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
            space_before = 0;
        } else {
            if (!open) {
                open = 1;
                s = i;
            }
            e = i + (size_t)n;
            space_after = 0;
        }
        prev = cp;
        i += (size_t)n;
    }
    if (open && !rc) rc = flush_stretch(text, s, e, lang, space_before, &scratch, &ipa, out, err);
    koe_espeak_unlock();
    koe_buf_free(&scratch);
    koe_buf_free(&ipa);
    if (!rc && koe_buf_terminate(out)) rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    return rc;
}
