/* The Kokoro vocabulary as a C table (a fact copied from kokoro-config.json "vocab": 114 symbols,
 * ids 1..177) and the fallback table for near symbols that espeak-ng produces but Kokoro does not
 * know. */
#include "text/text_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct vocab_entry {
    uint32_t cp;
    int id;
} vocab_entry;

/* Sorted by code point for binary search. */
static const vocab_entry vocab[] = {
    {0x0020, 16},  /*   */
    {0x0021, 5},   /* ! */
    {0x0022, 11},  /* " */
    {0x0028, 12},  /* ( */
    {0x0029, 13},  /* ) */
    {0x002C, 3},   /* , */
    {0x002E, 4},   /* . */
    {0x003A, 2},   /* : */
    {0x003B, 1},   /* ; */
    {0x003F, 6},   /* ? */
    {0x0041, 24},  /* A */
    {0x0049, 25},  /* I */
    {0x004F, 31},  /* O */
    {0x0051, 33},  /* Q */
    {0x0053, 35},  /* S */
    {0x0054, 36},  /* T */
    {0x0057, 39},  /* W */
    {0x0059, 41},  /* Y */
    {0x0061, 43},  /* a */
    {0x0062, 44},  /* b */
    {0x0063, 45},  /* c */
    {0x0064, 46},  /* d */
    {0x0065, 47},  /* e */
    {0x0066, 48},  /* f */
    {0x0068, 50},  /* h */
    {0x0069, 51},  /* i */
    {0x006A, 52},  /* j */
    {0x006B, 53},  /* k */
    {0x006C, 54},  /* l */
    {0x006D, 55},  /* m */
    {0x006E, 56},  /* n */
    {0x006F, 57},  /* o */
    {0x0070, 58},  /* p */
    {0x0071, 59},  /* q */
    {0x0072, 60},  /* r */
    {0x0073, 61},  /* s */
    {0x0074, 62},  /* t */
    {0x0075, 63},  /* u */
    {0x0076, 64},  /* v */
    {0x0077, 65},  /* w */
    {0x0078, 66},  /* x */
    {0x0079, 67},  /* y */
    {0x007A, 68},  /* z */
    {0x00E6, 72},  /* æ */
    {0x00E7, 78},  /* ç */
    {0x00F0, 81},  /* ð */
    {0x00F8, 116}, /* ø */
    {0x014B, 112}, /* ŋ */
    {0x0153, 120}, /* œ */
    {0x0250, 70},  /* ɐ */
    {0x0251, 69},  /* ɑ */
    {0x0252, 71},  /* ɒ */
    {0x0254, 76},  /* ɔ */
    {0x0255, 77},  /* ɕ */
    {0x0256, 80},  /* ɖ */
    {0x0259, 83},  /* ə */
    {0x025A, 85},  /* ɚ */
    {0x025B, 86},  /* ɛ */
    {0x025C, 87},  /* ɜ */
    {0x025F, 90},  /* ɟ */
    {0x0261, 92},  /* ɡ */
    {0x0263, 139}, /* ɣ */
    {0x0264, 140}, /* ɤ */
    {0x0265, 99},  /* ɥ */
    {0x0268, 101}, /* ɨ */
    {0x026A, 102}, /* ɪ */
    {0x026F, 110}, /* ɯ */
    {0x0270, 111}, /* ɰ */
    {0x0272, 114}, /* ɲ */
    {0x0273, 113}, /* ɳ */
    {0x0274, 115}, /* ɴ */
    {0x0278, 118}, /* ɸ */
    {0x0279, 123}, /* ɹ */
    {0x027B, 126}, /* ɻ */
    {0x027D, 129}, /* ɽ */
    {0x027E, 125}, /* ɾ */
    {0x0281, 128}, /* ʁ */
    {0x0282, 130}, /* ʂ */
    {0x0283, 131}, /* ʃ */
    {0x0288, 132}, /* ʈ */
    {0x028A, 135}, /* ʊ */
    {0x028B, 136}, /* ʋ */
    {0x028C, 138}, /* ʌ */
    {0x028E, 143}, /* ʎ */
    {0x0292, 147}, /* ʒ */
    {0x0294, 148}, /* ʔ */
    {0x029D, 103}, /* ʝ */
    {0x02A3, 18},  /* ʣ */
    {0x02A4, 82},  /* ʤ */
    {0x02A5, 19},  /* ʥ */
    {0x02A6, 20},  /* ʦ */
    {0x02A7, 133}, /* ʧ */
    {0x02A8, 21},  /* ʨ */
    {0x02B0, 162}, /* ʰ */
    {0x02B2, 164}, /* ʲ */
    {0x02C8, 156}, /* ˈ */
    {0x02CC, 157}, /* ˌ */
    {0x02D0, 158}, /* ː */
    {0x0303, 17},  /* combining tilde */
    {0x03B2, 75},  /* β */
    {0x03B8, 119}, /* θ */
    {0x03C7, 142}, /* χ */
    {0x1D4A, 42},  /* ᵊ */
    {0x1D5D, 22},  /* ᵝ */
    {0x1D7B, 177}, /* ᵻ */
    {0x2014, 9},   /* — */
    {0x201C, 14},  /* “ */
    {0x201D, 15},  /* ” */
    {0x2026, 10},  /* … */
    {0x2192, 171}, /* → */
    {0x2193, 169}, /* ↓ */
    {0x2197, 172}, /* ↗ */
    {0x2198, 173}, /* ↘ */
    {0xAB67, 23},  /* ꭧ */
};

/* Near symbols -> vocabulary symbols. Each row says why. Anything neither here nor in the
 * vocabulary is dropped and counted. Short enough for a linear search. */
typedef struct fallback_entry {
    uint32_t cp;
    const char *to;
} fallback_entry;

static const fallback_entry fallback[] = {
    {0x0027, ""},   /* ' apostrophe: no sound of its own */
    {0x002D, ""},   /* - espeak-ng's unstressed-syllable / word-joining mark */
    {0x005F, ""},   /* _ espeak-ng's short-pause mark */
    {0x0067, "ɡ"},  /* ASCII g -> IPA script g (U+0261) */
    {0x00E4, "a"},  /* ä open central -> a */
    {0x0127, "h"},  /* ħ pharyngeal fricative -> h */
    {0x0253, "b"},  /* ɓ implosive -> b */
    {0x0257, "d"},  /* ɗ implosive -> d */
    {0x0258, "ə"},  /* ɘ close-mid central -> schwa */
    {0x025D, "ɜɹ"}, /* ɝ r-coloured open-mid central -> ɜɹ (Kokoro's en spelling) */
    {0x025E, "ɜ"},  /* ɞ -> ɜ */
    {0x0260, "ɡ"},  /* ɠ implosive -> ɡ */
    {0x0262, "ɡ"},  /* ɢ uvular stop -> ɡ */
    {0x0266, "h"},  /* ɦ breathy h -> h */
    {0x0267, "ʃ"},  /* ɧ sj-sound -> ʃ */
    {0x026B, "l"},  /* ɫ dark l -> l */
    {0x026C, "l"},  /* ɬ lateral fricative -> l */
    {0x026D, "l"},  /* ɭ retroflex lateral -> l */
    {0x026E, "l"},  /* ɮ -> l */
    {0x0271, "m"},  /* ɱ labiodental nasal -> m */
    {0x0275, "ə"},  /* ɵ close-mid central rounded -> schwa */
    {0x0276, "œ"},  /* ɶ -> œ */
    {0x027A, "ɾ"},  /* ɺ lateral flap -> ɾ */
    {0x0280, "ʁ"},  /* ʀ uvular trill -> ʁ */
    {0x0284, "ɟ"},  /* ʄ implosive -> ɟ */
    {0x0289, "u"},  /* ʉ close central rounded -> u */
    {0x028D, "w"},  /* ʍ voiceless w -> w */
    {0x028F, "y"},  /* ʏ near-close front rounded -> y */
    {0x0290, "ʒ"},  /* ʐ retroflex fricative -> ʒ */
    {0x0291, "ʒ"},  /* ʑ alveolo-palatal fricative -> ʒ */
    {0x0295, "h"},  /* ʕ pharyngeal -> h */
    {0x0299, "b"},  /* ʙ bilabial trill -> b */
    {0x029B, "ɡ"},  /* ʛ -> ɡ */
    {0x029F, "l"},  /* ʟ velar lateral -> l */
    {0x02B1, "ʰ"},  /* ʱ breathy aspiration -> ʰ */
    {0x02B7, "w"},  /* ʷ labialization -> w */
    {0x02BC, ""},   /* ʼ ejective mark: no symbol, keep the stop */
    {0x02D1, "ː"},  /* ˑ half-long -> long */
    {0x0306, ""},   /* combining breve (extra-short): diacritic only */
    {0x0325, ""},   /* combining ring below (voiceless): diacritic only */
    {0x0329, ""},   /* combining syllabic mark: diacritic only (en maps it to ᵊ before) */
    {0x032A, ""},   /* combining bridge below (dental): diacritic only */
    {0x032F, ""},   /* combining inverted breve below (non-syllabic): diacritic only */
    {0x035C, ""},   /* combining double breve below (tie): joins symbols, no sound */
    {0x0361, ""},   /* combining double inverted breve (tie): joins symbols, no sound */
    {0x207F, "n"},  /* ⁿ nasal release -> n */
    {0x2016, ""},   /* ‖ espeak-ng major-break mark: the punctuation carries the pause */
};

static int find_vocab(uint32_t cp) {
    size_t lo = 0, hi = sizeof vocab / sizeof vocab[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vocab[mid].cp == cp) return vocab[mid].id;
        if (vocab[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int koe_vocab_id(uint32_t cp) {
    return find_vocab(cp);
}

const char *koe_vocab_fallback(uint32_t cp) {
    for (size_t i = 0; i < sizeof fallback / sizeof fallback[0]; i++)
        if (fallback[i].cp == cp) return fallback[i].to;
    return NULL;
}

int koe_vocab_filter(const char *ipa, size_t len, koe_buf *out, size_t *dropped) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int n = koe_utf8_decode(ipa + i, &cp);
        if (n <= 0) n = 1, cp = 0xFFFD;
        if (find_vocab(cp) >= 0) {
            if (koe_buf_append(out, ipa + i, (size_t)n)) return KOE_ERR_NOMEM;
        } else {
            const char *to = koe_vocab_fallback(cp);
            if (!to) {
                if (dropped) (*dropped)++;
            } else if (*to) {
                /* Fallback rows only produce vocabulary symbols (checked by test_text). */
                if (koe_buf_append_str(out, to)) return KOE_ERR_NOMEM;
            }
        }
        i += (size_t)n;
    }
    return koe_buf_terminate(out) ? KOE_ERR_NOMEM : 0;
}

size_t koe_vocab_ids(const char *filtered, size_t len, int32_t *ids) {
    size_t i = 0, count = 0;
    while (i < len) {
        uint32_t cp;
        int n = koe_utf8_decode(filtered + i, &cp);
        if (n <= 0) n = 1, cp = 0;
        int id = find_vocab(cp);
        if (id >= 0) ids[count++] = id;
        i += (size_t)n;
    }
    return count;
}
