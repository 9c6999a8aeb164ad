/* Normalization: text as written -> text as spoken, for the phonemizer.
 *
 * Every language: Unicode quotes, dashes, ellipses, spaces and full-width forms are folded to what
 * espeak-ng and Kokoro's vocabulary know; emoji, control characters and other unpronounceable
 * symbols are dropped and counted. English (en-us, en-gb) then reads numbers, money, dates,
 * times, units, abbreviations, URLs and e-mail addresses through the tables below, one
 * whitespace-separated word at a time with its neighbours as context. Other languages leave
 * numbers to espeak-ng, which reads them in its own language. */
#include "text/text_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ folding (all languages) */

typedef enum { FOLD_KEEP, FOLD_DROP, FOLD_SPACE, FOLD_TO } fold_kind;

typedef struct fold_range {
    uint32_t lo, hi;
    fold_kind kind;
    const char *to;
} fold_range;

/* Checked in order; the first matching range decides. */
static const fold_range folds[] = {
    {0x09, 0x0D, FOLD_SPACE, NULL},            /* tab, newlines */
    {0x00, 0x1F, FOLD_DROP, NULL},             /* other C0 controls */
    {0x7F, 0x9F, FOLD_DROP, NULL},             /* DEL, C1 controls (U+0085 next line included) */
    {0xA0, 0xA0, FOLD_SPACE, NULL},            /* no-break space */
    {0xAD, 0xAD, FOLD_DROP, NULL},             /* soft hyphen */
    {0xAB, 0xAB, FOLD_TO, "\""},               /* « */
    {0xBB, 0xBB, FOLD_TO, "\""},               /* » */
    {0xB4, 0xB4, FOLD_TO, "'"},                /* acute accent used as apostrophe */
    {0x2000, 0x200A, FOLD_SPACE, NULL},        /* typographic spaces */
    {0x200B, 0x200F, FOLD_DROP, NULL},         /* zero-width space/joiners, direction marks */
    {0x2010, 0x2011, FOLD_TO, "-"},            /* hyphens */
    {0x2012, 0x2013, FOLD_TO, "\xe2\x80\x93"}, /* figure dash, en dash -> en dash (ranges) */
    {0x2014, 0x2015, FOLD_TO, "\xe2\x80\x94"}, /* em dash, horizontal bar -> em dash */
    {0x2018, 0x201B, FOLD_TO, "'"},            /* single quotes */
    {0x201C, 0x201F, FOLD_TO, "\""},           /* double quotes */
    {0x2024, 0x2024, FOLD_TO, "."},            /* one dot leader */
    {0x2025, 0x2025, FOLD_TO, "\xe2\x80\xa6"}, /* two dot leader -> … */
    {0x2028, 0x2029, FOLD_SPACE, NULL},        /* line/paragraph separators */
    {0x202A, 0x202E, FOLD_DROP, NULL},         /* bidi embeddings */
    {0x202F, 0x202F, FOLD_SPACE, NULL},        /* narrow no-break space */
    {0x2032, 0x2032, FOLD_TO, "'"},            /* prime */
    {0x2033, 0x2033, FOLD_TO, "\""},           /* double prime */
    {0x2039, 0x203A, FOLD_TO, "'"},            /* single angle quotes */
    {0x205F, 0x205F, FOLD_SPACE, NULL},        /* medium mathematical space */
    {0x2060, 0x206F, FOLD_DROP, NULL},         /* word joiner, invisible operators */
    {0x2190, 0x21FF, FOLD_DROP, NULL},         /* arrows */
    {0x2212, 0x2212, FOLD_TO, "-"},            /* minus sign */
    {0x2300, 0x23FF, FOLD_DROP, NULL},         /* technical symbols (⌚ ⏰ ...) */
    {0x2500, 0x27BF, FOLD_DROP, NULL},         /* box drawing, shapes, misc symbols, dingbats */
    {0x2800, 0x28FF, FOLD_DROP, NULL},         /* braille */
    {0x2B00, 0x2BFF, FOLD_DROP, NULL},         /* misc symbols and arrows (⭐) */
    {0x3000, 0x3000, FOLD_SPACE, NULL},        /* ideographic space */
    {0x301D, 0x301F, FOLD_TO, "\""},           /* CJK double primes */
    {0xD800, 0xDFFF, FOLD_DROP, NULL},         /* (never valid UTF-8; listed for clarity) */
    {0xE000, 0xF8FF, FOLD_DROP, NULL},         /* private use */
    {0xFB00, 0xFB00, FOLD_TO, "ff"},           /* ligatures */
    {0xFB01, 0xFB01, FOLD_TO, "fi"},
    {0xFB02, 0xFB02, FOLD_TO, "fl"},
    {0xFE00, 0xFE0F, FOLD_DROP, NULL},    /* variation selectors (emoji presentation) */
    {0xFEFF, 0xFEFF, FOLD_DROP, NULL},    /* byte order mark */
    {0xFFF0, 0xFFFF, FOLD_DROP, NULL},    /* specials, replacement character, non-characters */
    {0x1F000, 0x1FAFF, FOLD_DROP, NULL},  /* emoji, pictographs, flags, skin tones, symbols */
    {0xE0000, 0xE007F, FOLD_DROP, NULL},  /* tags (flag sequences) */
    {0xE0100, 0xE01EF, FOLD_DROP, NULL},  /* variation selectors supplement */
    {0xF0000, 0x10FFFF, FOLD_DROP, NULL}, /* supplementary private use */
};

static const fold_range *find_fold(uint32_t cp) {
    for (size_t i = 0; i < sizeof folds / sizeof folds[0]; i++)
        if (cp >= folds[i].lo && cp <= folds[i].hi) return &folds[i];
    return NULL;
}

/* Folds in[0, len) into out: single spaces, no leading/trailing space. */
static int fold_text(const char *in, size_t len, koe_buf *out, size_t *dropped) {
    int space = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = koe_utf8_decode(in + i, &cp);
        if (n <= 0) n = 1, cp = 0xFFFD;
        const char *src = in + i;
        size_t srclen = (size_t)n;
        i += (size_t)n;
        if (cp > 0x20 && cp < 0x7F && cp != '.') { /* printable ASCII: kept as it is */
            if (out->len && space && koe_buf_append(out, " ", 1)) return KOE_ERR_NOMEM;
            space = 0;
            if (koe_buf_append(out, src, 1)) return KOE_ERR_NOMEM;
            continue;
        }
        if (cp >= 0xFF01 && cp <= 0xFF5E) { /* full-width ASCII */
            char c = (char)(cp - 0xFEE0);
            if (out->len && space && koe_buf_append(out, " ", 1)) return KOE_ERR_NOMEM;
            space = 0;
            if (koe_buf_append(out, &c, 1)) return KOE_ERR_NOMEM;
            continue;
        }
        if (cp == '.' && i + 1 < len && in[i] == '.' && in[i + 1] == '.') { /* ... -> … */
            while (i < len && in[i] == '.') i++;
            if (out->len && space && koe_buf_append(out, " ", 1)) return KOE_ERR_NOMEM;
            space = 0;
            if (koe_buf_append(out, "\xe2\x80\xa6", 3)) return KOE_ERR_NOMEM;
            continue;
        }
        const fold_range *f = cp == ' ' ? NULL : find_fold(cp);
        if (cp == ' ' || (f && f->kind == FOLD_SPACE)) {
            space = 1;
            continue;
        }
        if (f && f->kind == FOLD_DROP) {
            (*dropped)++;
            continue;
        }
        if (f && f->kind == FOLD_TO) src = f->to, srclen = strlen(f->to);
        /* An em dash is a pause between words, even when written without spaces. */
        int dash = srclen == 3 && !memcmp(src, "\xe2\x80\x94", 3);
        if (dash) space = 1;
        if (out->len && space && koe_buf_append(out, " ", 1)) return KOE_ERR_NOMEM;
        space = 0;
        if (koe_buf_append(out, src, srclen)) return KOE_ERR_NOMEM;
        if (dash) space = 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ spoken output */

typedef struct writer {
    koe_buf *b;
    int space; /* a space goes before the next word */
    int gb;    /* British: "one hundred and five" */
    int fail;
} writer;

static void w_raw(writer *w, const char *s, size_t n) {
    if (!w->fail && n && koe_buf_append(w->b, s, n)) w->fail = 1;
}

/* A word (or several): preceded by a space unless it starts the text or follows an opener. */
static void w_word(writer *w, const char *s, size_t n) {
    if (!n) return;
    if (w->space && w->b->len) w_raw(w, " ", 1);
    w_raw(w, s, n);
    w->space = 1;
}

static void w_str(writer *w, const char *s) {
    w_word(w, s, strlen(s));
}

/* ------------------------------------------------------------------ numbers as words */

static const char *const ones[] = {"zero",    "one",     "two",       "three",    "four",
                                   "five",    "six",     "seven",     "eight",    "nine",
                                   "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                   "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const tens[] = {"",      "",      "twenty",  "thirty", "forty",
                                   "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const scales[] = {"", "thousand", "million", "billion", "trillion"};

/* 1..999 */
static void say_hundreds(writer *w, unsigned v, int and_ok) {
    if (v >= 100) {
        w_str(w, ones[v / 100]);
        w_str(w, "hundred");
        v %= 100;
        if (v && w->gb) w_str(w, "and");
    } else if (v && and_ok && w->gb) {
        w_str(w, "and");
    }
    if (v >= 20) {
        w_str(w, tens[v / 10]);
        if (v % 10) w_str(w, ones[v % 10]);
    } else if (v) {
        w_str(w, ones[v]);
    }
}

static void say_digits(writer *w, const char *d, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (isdigit((unsigned char)d[i])) w_str(w, ones[d[i] - '0']);
}

/* Integer from its digits (no separators). Above 15 digits it is read digit by digit. */
static void say_int(writer *w, const char *d, size_t n) {
    while (n > 1 && *d == '0') d++, n--;
    if (n > 15) {
        say_digits(w, d, n);
        return;
    }
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (unsigned)(d[i] - '0');
    if (v == 0) {
        w_str(w, "zero");
        return;
    }
    unsigned groups[5] = {0};
    for (int g = 0; g < 5; g++) groups[g] = (unsigned)(v % 1000), v /= 1000;
    int said = 0;
    for (int g = 4; g >= 0; g--) {
        if (!groups[g]) continue;
        /* British "and" before a last group under 100: "one thousand and five". */
        say_hundreds(w, groups[g], g == 0 && said);
        if (g) w_str(w, scales[g]);
        said = 1;
    }
}

static void say_uint(writer *w, unsigned long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    say_int(w, tmp, (size_t)n);
}

/* Rewrites the last word written as an ordinal (twenty two -> twenty second). */
static void ordinalize_last(writer *w) {
    koe_buf *b = w->b;
    if (w->fail || !b->len) return;
    size_t s = b->len;
    while (s && b->data[s - 1] != ' ') s--;
    char word[32];
    size_t wl = b->len - s;
    if (wl >= sizeof word) return;
    memcpy(word, b->data + s, wl);
    word[wl] = 0;
    static const struct {
        const char *card, *ord;
    } irregular[] = {{"one", "first"},     {"two", "second"},   {"three", "third"},
                     {"five", "fifth"},    {"eight", "eighth"}, {"nine", "ninth"},
                     {"twelve", "twelfth"}};
    b->len = s;
    for (size_t i = 0; i < sizeof irregular / sizeof irregular[0]; i++)
        if (!strcmp(word, irregular[i].card)) {
            w_raw(w, irregular[i].ord, strlen(irregular[i].ord));
            return;
        }
    if (wl && word[wl - 1] == 'y') {
        w_raw(w, word, wl - 1);
        w_raw(w, "ieth", 4);
    } else {
        w_raw(w, word, wl);
        w_raw(w, "th", 2);
    }
}

/* Rewrites the last word as a plural (nineties, hundreds). */
static void pluralize_last(writer *w) {
    koe_buf *b = w->b;
    if (w->fail || !b->len) return;
    if (b->data[b->len - 1] == 'y') {
        b->len--;
        w_raw(w, "ies", 3);
    } else if (b->data[b->len - 1] == 'x') {
        w_raw(w, "es", 2);
    } else {
        w_raw(w, "s", 1);
    }
}

/* A year: 1999 nineteen ninety nine, 1905 nineteen oh five, 1900 nineteen hundred, 2000 two
 * thousand, 2008 two thousand eight, 2024 twenty twenty four. */
static void say_year(writer *w, unsigned y) {
    if (y < 1000 || y % 1000 == 0 || (y > 2000 && y < 2010) || y > 9999) {
        say_uint(w, y);
        return;
    }
    int gb = w->gb;
    w->gb = 0; /* no "and" inside a year */
    say_uint(w, y / 100);
    unsigned r = y % 100;
    if (r == 0)
        w_str(w, "hundred");
    else if (r < 10) {
        w_str(w, "oh");
        w_str(w, ones[r]);
    } else
        say_uint(w, r);
    w->gb = gb;
}

/* ------------------------------------------------------------------ parsing helpers */

typedef struct num {
    int neg;
    char ip[40]; /* integer digits, separators removed */
    size_t ipn;
    const char *fp; /* fraction digits (into the source) */
    size_t fpn;
    int has_point;
    int grouped; /* had thousands separators */
} num;

/* Parses a number at s[0, n): [-]digits[,ddd]*[.digits] or [-].digits. Returns the bytes used
 * (0 when there is no number). */
static size_t parse_num(const char *s, size_t n, num *v) {
    memset(v, 0, sizeof *v);
    size_t i = 0;
    if (i < n && s[i] == '-') v->neg = 1, i++;
    size_t run = 0;
    while (i < n) {
        if (isdigit((unsigned char)s[i])) {
            if (v->ipn + 1 >= sizeof v->ip) return 0;
            v->ip[v->ipn++] = s[i++];
            run++;
        } else if (s[i] == ',' && run >= 1 && (run <= 3 || v->grouped) && i + 3 < n &&
                   isdigit((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2]) &&
                   isdigit((unsigned char)s[i + 3]) &&
                   (i + 4 >= n || !isdigit((unsigned char)s[i + 4]))) {
            if (v->grouped && run != 3) break;
            v->grouped = 1;
            run = 0;
            i++;
        } else {
            break;
        }
    }
    if (v->grouped && run != 3) return 0;
    if (i < n && s[i] == '.' && i + 1 < n && isdigit((unsigned char)s[i + 1])) {
        v->has_point = 1;
        i++;
        v->fp = s + i;
        while (i < n && isdigit((unsigned char)s[i])) i++, v->fpn++;
    }
    if (!v->ipn && !v->fpn) return 0;
    return i;
}

static void say_num(writer *w, const num *v) {
    if (v->neg) w_str(w, "minus");
    if (v->ipn)
        say_int(w, v->ip, v->ipn);
    else if (!v->has_point)
        w_str(w, "zero");
    if (v->has_point) {
        w_str(w, "point");
        say_digits(w, v->fp, v->fpn);
    }
}

static int all_digits(const char *s, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static unsigned small_int(const char *s, size_t n) {
    unsigned v = 0;
    for (size_t i = 0; i < n && i < 9; i++) v = v * 10 + (unsigned)(s[i] - '0');
    return v;
}

static int eq_ci(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && !strncasecmp(s, lit, n);
}

/* ------------------------------------------------------------------ tables */

static const char *const months[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};

static int month_index(const char *s, size_t n) {
    static const char *const abbr[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
    for (int m = 0; m < 12; m++) {
        if (eq_ci(s, n, months[m])) return m;
        if (n >= 3 && n <= 4 && !strncasecmp(s, abbr[m], 3) &&
            (n == 3 || (m == 8 && (s[3] == 't' || s[3] == 'T'))))
            return m;
    }
    return -1;
}

/* Words after which a four-digit number is a year. */
static const char *const year_cues[] = {
    "in",      "since", "by",        "from",   "until",  "till",   "of",
    "year",    "circa", "around",    "before", "after",  "during", "early",
    "late",    "mid",   "spring",    "summer", "autumn", "fall",   "winter",
    "between", "c.",    "christmas", "class",  "to",     "and",    "\xc2\xa9" /* © */};
/* Words after a number: it is a year. */
static const char *const era_words[] = {"AD", "BC", "BCE", "CE", "A.D.", "B.C."};

typedef struct unit {
    const char *abbr, *one, *many;
    int exact_case; /* 1: case matters (m vs M, g vs G) */
} unit;

static const unit units[] = {
    {"km", "kilometer", "kilometers", 0},
    {"m", "meter", "meters", 1},
    {"cm", "centimeter", "centimeters", 0},
    {"mm", "millimeter", "millimeters", 0},
    {"mi", "mile", "miles", 0},
    {"ft", "foot", "feet", 0},
    {"yd", "yard", "yards", 0},
    {"kg", "kilogram", "kilograms", 0},
    {"g", "gram", "grams", 1},
    {"mg", "milligram", "milligrams", 0},
    {"lb", "pound", "pounds", 0},
    {"lbs", "pounds", "pounds", 0},
    {"oz", "ounce", "ounces", 0},
    {"mph", "mile per hour", "miles per hour", 0},
    {"km/h", "kilometer per hour", "kilometers per hour", 0},
    {"kph", "kilometer per hour", "kilometers per hour", 0},
    {"ml", "milliliter", "milliliters", 0},
    {"l", "liter", "liters", 1},
    {"L", "liter", "liters", 1},
    {"kb", "kilobyte", "kilobytes", 0},
    {"mb", "megabyte", "megabytes", 0},
    {"gb", "gigabyte", "gigabytes", 0},
    {"tb", "terabyte", "terabytes", 0},
    {"hz", "hertz", "hertz", 0},
    {"khz", "kilohertz", "kilohertz", 0},
    {"mhz", "megahertz", "megahertz", 0},
    {"ghz", "gigahertz", "gigahertz", 0},
    {"kw", "kilowatt", "kilowatts", 0},
    {"kwh", "kilowatt hour", "kilowatt hours", 0},
    {"w", "watt", "watts", 0},
    {"v", "volt", "volts", 0},
    {"ms", "millisecond", "milliseconds", 0},
    {"sec", "second", "seconds", 0},
    {"s", "second", "seconds", 1},
    {"min", "minute", "minutes", 0},
    {"h", "hour", "hours", 1},
    {"hr", "hour", "hours", 0},
    {"hrs", "hours", "hours", 0},
    {"°C", "degree Celsius", "degrees Celsius", 1},
    {"°F", "degree Fahrenheit", "degrees Fahrenheit", 1},
    {"°", "degree", "degrees", 1},
    {"%", "percent", "percent", 1},
};

static const unit *find_unit(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        const unit *u = &units[i];
        if (strlen(u->abbr) != n) continue;
        if (u->exact_case ? !memcmp(s, u->abbr, n) : !strncasecmp(s, u->abbr, n)) return u;
    }
    return NULL;
}

typedef struct currency {
    const char *sym, *one, *many, *sub_one, *sub_many;
} currency;

static const currency currencies[] = {
    {"$", "dollar", "dollars", "cent", "cents"},
    {"\xe2\x82\xac", "euro", "euros", "cent", "cents"},    /* € */
    {"\xc2\xa3", "pound", "pounds", "penny", "pence"},     /* £ */
    {"\xc2\xa5", "yen", "yen", NULL, NULL},                /* ¥ */
    {"\xe2\x82\xb9", "rupee", "rupees", "paisa", "paise"}, /* ₹ */
};

static const currency *find_currency(const char *s, size_t n, size_t *symlen) {
    for (size_t i = 0; i < sizeof currencies / sizeof currencies[0]; i++) {
        size_t l = strlen(currencies[i].sym);
        if (l <= n && !memcmp(s, currencies[i].sym, l)) {
            *symlen = l;
            return &currencies[i];
        }
    }
    return NULL;
}

/* Money magnitudes: $1.2M, $5k, $3bn. */
static const char *magnitude(const char *s, size_t n) {
    if (eq_ci(s, n, "k") || eq_ci(s, n, "thousand")) return "thousand";
    if (eq_ci(s, n, "m") || eq_ci(s, n, "mn") || eq_ci(s, n, "million")) return "million";
    if (eq_ci(s, n, "b") || eq_ci(s, n, "bn") || eq_ci(s, n, "billion")) return "billion";
    if (eq_ci(s, n, "t") || eq_ci(s, n, "tn") || eq_ci(s, n, "trillion")) return "trillion";
    return NULL;
}

typedef struct abbrev {
    const char *from, *to;
    int final_ok; /* may end a sentence: keep its period when last */
} abbrev;

/* Matched with their final period (or without, where listed so). Case-sensitive. */
static const abbrev abbrevs[] = {
    {"Mr.", "Mister", 0},
    {"Mrs.", "Missus", 0},
    {"Ms.", "Miz", 0},
    {"Dr.", "Doctor", 0},
    {"Prof.", "Professor", 0},
    {"Jr.", "Junior", 1},
    {"Sr.", "Senior", 1},
    {"vs.", "versus", 0},
    {"vs", "versus", 0},
    {"etc.", "et cetera", 1},
    {"e.g.", "for example", 0},
    {"i.e.", "that is", 0},
    {"Mt.", "Mount", 0},
    {"St.", "Street", 1},
    {"Ave.", "Avenue", 1},
    {"Rd.", "Road", 1},
    {"Blvd.", "Boulevard", 1},
    {"Inc.", "Incorporated", 1},
    {"Ltd.", "Limited", 1},
    {"Co.", "Company", 1},
    {"Corp.", "Corporation", 1},
    {"Dept.", "Department", 1},
    {"approx.", "approximately", 0},
    {"Fig.", "Figure", 0},
    {"Gen.", "General", 0},
    {"Capt.", "Captain", 0},
    {"Lt.", "Lieutenant", 0},
    {"Sgt.", "Sergeant", 0},
    {"Rev.", "Reverend", 0},
    {"Hon.", "Honorable", 0},
    {"Ph.D.", "P H D", 1},
    {"a.m.", "a m", 1},
    {"p.m.", "p m", 1},
    {"am", "a m", 1},
    {"pm", "p m", 1},
    {"AM", "a m", 1},
    {"PM", "p m", 1},
};

typedef struct symbol {
    const char *sym, *word;
} symbol;

/* Symbols read out inside or between words. */
static const symbol symbols[] = {
    {"&", "and"},
    {"@", "at"},
    {"+", "plus"},
    {"=", "equals"},
    {"#", "hash"},
    {"%", "percent"},
    {"<", "less than"},
    {">", "greater than"},
    {"~", "about"},
    {"/", "slash"},
    {"\xc2\xb0", "degrees"},        /* ° */
    {"\xc3\x97", "times"},          /* × */
    {"\xc3\xb7", "divided by"},     /* ÷ */
    {"\xc2\xb1", "plus or minus"},  /* ± */
    {"\xc2\xa9", "copyright"},      /* © */
    {"\xc2\xae", "registered"},     /* ® */
    {"\xe2\x84\xa2", "trademark"},  /* ™ */
    {"\xc2\xa7", "section"},        /* § */
    {"\xc2\xb6", "paragraph"},      /* ¶ */
    {"\xc2\xbd", "one half"},       /* ½ */
    {"\xc2\xbc", "one quarter"},    /* ¼ */
    {"\xc2\xbe", "three quarters"}, /* ¾ */
    {"\xe2\x85\x93", "one third"},  /* ⅓ */
    {"\xe2\x85\x94", "two thirds"}, /* ⅔ */
};
/* Symbols with nothing to say: dropped and counted. */
static const char *const silent_symbols[] = {"*",
                                             "|",
                                             "\\",
                                             "^",
                                             "`",
                                             "\xe2\x80\xa2", /* • */
                                             "\xc2\xb7",     /* · */
                                             "\xe2\x80\xa0",
                                             "\xe2\x80\xa1", /* † ‡ */
                                             "\xc2\xa6",
                                             "\xc2\xa8",
                                             "\xc2\xaf"};

/* ------------------------------------------------------------------ English words */

typedef struct span {
    const char *s;
    size_t n;
} span;

typedef struct word {
    span lead, core, trail; /* opening marks, the word, closing marks */
} word;

typedef struct ctx {
    writer *w;
    size_t *dropped;
    word *words;
    size_t nwords, i; /* the word being read */
    int year_next;    /* the next number is a year (after a date's day) */
    int no_lookahead; /* reading part of a word (a range's first half): leave the next word */
    int phone_run;    /* the next digit groups continue a phone number */
} ctx;

static int is_lead(char c) {
    return c == '"' || c == '\'' || c == '(' || c == '[' || c == '{';
}
static int is_trail_byte(const char *s, size_t n, size_t *len) {
    static const char *const marks[] = {".",  ",", ";", ":", "!", "?",
                                        "\"", "'", ")", "]", "}", "\xe2\x80\xa6" /* … */};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        size_t l = strlen(marks[i]);
        if (l <= n && !memcmp(s + n - l, marks[i], l)) {
            *len = l;
            return 1;
        }
    }
    return 0;
}

static word split_word(const char *s, size_t n) {
    word wd;
    size_t a = 0, b = n, l;
    while (a < n && is_lead(s[a])) a++;
    while (b > a && is_trail_byte(s + a, b - a, &l)) b -= l;
    wd.lead = (span){s, a};
    wd.core = (span){s + a, b - a};
    wd.trail = (span){s + b, n - b};
    return wd;
}

static const word *peek(const ctx *c, long off) {
    long k = (long)c->i + off;
    if (k < 0 || (size_t)k >= c->nwords) return NULL;
    return &c->words[k];
}

static int in_words(const char *const *list, size_t n, span s) {
    for (size_t i = 0; i < n; i++)
        if (eq_ci(s.s, s.n, list[i])) return 1;
    return 0;
}

static void say_time(writer *w, unsigned h, unsigned m, int has_sec, unsigned sec, int ampm) {
    say_uint(w, h);
    if (m == 0 && !has_sec) {
        if (!ampm) w_str(w, h <= 12 ? "o'clock" : "hundred");
    } else if (m < 10) {
        w_str(w, "oh");
        w_str(w, ones[m]);
    } else {
        say_uint(w, m);
    }
    if (has_sec) {
        w_str(w, "and");
        say_uint(w, sec);
        w_str(w, sec == 1 ? "second" : "seconds");
    }
}

static int ampm_word(span s) {
    return eq_ci(s.s, s.n, "am") || eq_ci(s.s, s.n, "pm") || eq_ci(s.s, s.n, "a.m") ||
           eq_ci(s.s, s.n, "p.m") || eq_ci(s.s, s.n, "a.m.") || eq_ci(s.s, s.n, "p.m.");
}

static void say_ampm(writer *w, span s) {
    w_str(w, tolower((unsigned char)s.s[0]) == 'a' ? "a m" : "p m");
}

/* H:MM[:SS][am|pm] -> 1 when read. */
static int try_time(ctx *c, span s) {
    size_t i = 0;
    while (i < s.n && i < 2 && isdigit((unsigned char)s.s[i])) i++;
    if (!i || i >= s.n || s.s[i] != ':') return 0;
    unsigned h = small_int(s.s, i);
    if (i + 3 > s.n || !isdigit((unsigned char)s.s[i + 1]) || !isdigit((unsigned char)s.s[i + 2]))
        return 0;
    unsigned m = small_int(s.s + i + 1, 2);
    size_t j = i + 3;
    int has_sec = 0;
    unsigned sec = 0;
    if (j + 3 <= s.n && s.s[j] == ':' && isdigit((unsigned char)s.s[j + 1]) &&
        isdigit((unsigned char)s.s[j + 2])) {
        has_sec = 1;
        sec = small_int(s.s + j + 1, 2);
        j += 3;
    }
    if (h > 23 || m > 59 || sec > 59) return 0;
    span rest = {s.s + j, s.n - j};
    if (rest.n && !ampm_word(rest)) return 0;
    const word *nx = peek(c, 1);
    int next_ampm = !rest.n && nx && !c->no_lookahead && !nx->lead.n && ampm_word(nx->core);
    say_time(c->w, h, m, has_sec, sec, rest.n || next_ampm);
    if (rest.n) say_ampm(c->w, rest);
    return 1;
}

static void say_currency(writer *w, const currency *cur, const num *v, const char *mag) {
    if (v->neg) w_str(w, "minus");
    if (mag) {
        num t = *v;
        t.neg = 0;
        say_num(w, &t);
        w_str(w, mag);
        w_str(w, cur->many);
        return;
    }
    unsigned long long whole = 0;
    int big = v->ipn > 15;
    if (!big)
        for (size_t k = 0; k < v->ipn; k++) whole = whole * 10 + (unsigned)(v->ip[k] - '0');
    if (v->has_point && v->fpn <= 2 && cur->sub_one && !big) {
        unsigned cents =
            (unsigned)(v->fp[0] - '0') * 10 + (v->fpn == 2 ? (unsigned)(v->fp[1] - '0') : 0);
        if (whole) {
            say_int(w, v->ip, v->ipn);
            w_str(w, whole == 1 ? cur->one : cur->many);
        }
        if (cents) {
            say_uint(w, cents);
            w_str(w, cents == 1 ? cur->sub_one : cur->sub_many);
        }
        if (!whole && !cents) {
            w_str(w, "zero");
            w_str(w, cur->many);
        }
        return;
    }
    num t = *v;
    t.neg = 0;
    say_num(w, &t);
    w_str(w, (whole == 1 && !v->has_point) ? cur->one : cur->many);
}

/* [-]$1,234.56[M] or [-]1,234.56€ or 50¢. */
static int try_money(ctx *c, span s) {
    size_t i = 0, sl = 0;
    int neg = 0;
    if (i < s.n && s.s[i] == '-') neg = 1, i++;
    const currency *cur = find_currency(s.s + i, s.n - i, &sl);
    num v;
    size_t used;
    if (cur) {
        i += sl;
        used = parse_num(s.s + i, s.n - i, &v);
        if (!used || v.neg) return 0;
        i += used;
    } else {
        used = parse_num(s.s + i, s.n - i, &v);
        if (!used || v.neg) return 0;
        size_t j = i + used;
        if (j + 2 == s.n && !memcmp(s.s + j, "\xc2\xa2", 2)) { /* ¢ */
            v.neg = neg;
            say_num(c->w, &v);
            w_str(c->w, (!v.has_point && v.ipn == 1 && v.ip[0] == '1') ? "cent" : "cents");
            return 1;
        }
        cur = find_currency(s.s + j, s.n - j, &sl);
        if (!cur || j + sl != s.n) return 0;
        i = j + sl;
    }
    v.neg = neg;
    const char *mag = NULL;
    if (i < s.n) {
        mag = magnitude(s.s + i, s.n - i);
        if (!mag) return 0;
    } else {
        const word *nx = peek(c, 1);
        if (nx && !c->no_lookahead && !nx->lead.n && (mag = magnitude(nx->core.s, nx->core.n)) &&
            nx->core.n > 2)
            c->i++; /* "$3 million": the next word is part of the amount */
        else
            mag = NULL;
    }
    say_currency(c->w, cur, &v, mag);
    return 1;
}

static int phone_like(span s) {
    /* Digit groups joined by '-' or '.': 555-123-4567, 123-4567, 555.123.4567. */
    size_t groups = 0, run = 0, maxrun = 0, i = 0, digits = 0;
    char sep = 0;
    if (s.n && s.s[0] == '+') i = 1;
    for (; i < s.n; i++) {
        char ch = s.s[i];
        if (isdigit((unsigned char)ch))
            run++, digits++;
        else if ((ch == '-' || ch == '.') && run && (!sep || sep == ch)) {
            sep = ch;
            groups++;
            if (run > maxrun) maxrun = run;
            run = 0;
        } else
            return 0;
    }
    if (!run) return 0;
    groups++;
    if (run > maxrun) maxrun = run;
    if (groups >= 3 && maxrun <= 4 && digits >= 7) return 1;     /* not a version like 2.0.1 */
    return groups == 2 && s.s[0] != '+' && run == 4 && s.n == 8; /* 123-4567 */
}

static void say_phone(writer *w, span s) {
    size_t i = 0;
    if (s.n && s.s[0] == '+') {
        w_str(w, "plus");
        i = 1;
    }
    size_t g = i;
    for (; i <= s.n; i++) {
        if (i == s.n || !isdigit((unsigned char)s.s[i])) {
            say_digits(w, s.s + g, i - g);
            if (i < s.n) w_raw(w, ",", 1);
            g = i + 1;
        }
    }
}

/* YYYY-MM-DD or A/B/YYYY (month first in en-us unless impossible, day first in en-gb). */
static int try_date(ctx *c, span s) {
    unsigned y, mo, d;
    if (s.n == 10 && all_digits(s.s, 4) && s.s[4] == '-' && all_digits(s.s + 5, 2) &&
        s.s[7] == '-' && all_digits(s.s + 8, 2)) {
        y = small_int(s.s, 4), mo = small_int(s.s + 5, 2), d = small_int(s.s + 8, 2);
    } else {
        size_t a = 0, b, e;
        while (a < s.n && isdigit((unsigned char)s.s[a])) a++;
        if (a < 1 || a > 2 || a >= s.n || s.s[a] != '/') return 0;
        b = a + 1;
        while (b < s.n && isdigit((unsigned char)s.s[b])) b++;
        if (b - a - 1 < 1 || b - a - 1 > 2 || b >= s.n || s.s[b] != '/') return 0;
        e = b + 1;
        if (!all_digits(s.s + e, s.n - e) || (s.n - e != 4 && s.n - e != 2)) return 0;
        unsigned p = small_int(s.s, a), q = small_int(s.s + a + 1, b - a - 1);
        y = small_int(s.s + e, s.n - e);
        if (s.n - e == 2) y += y < 50 ? 2000 : 1900;
        int day_first = c->w->gb ? q <= 12 : p > 12;
        mo = day_first ? q : p;
        d = day_first ? p : q;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31) return 0;
    writer *w = c->w;
    if (w->gb) {
        w_str(w, "the");
        say_uint(w, d);
        ordinalize_last(w);
        w_str(w, "of");
        w_str(w, months[mo - 1]);
    } else {
        w_str(w, months[mo - 1]);
        say_uint(w, d);
        ordinalize_last(w);
    }
    w_raw(w, ",", 1);
    say_year(w, y);
    return 1;
}

/* Versions and other dotted digit groups: 2.0.1 -> two point zero point one. */
static int try_version(ctx *c, span s) {
    size_t groups = 1, i = 0;
    if (!s.n || !isdigit((unsigned char)s.s[0])) return 0;
    for (; i < s.n; i++) {
        if (s.s[i] == '.') {
            if (i + 1 >= s.n || !isdigit((unsigned char)s.s[i + 1])) return 0;
            groups++;
        } else if (!isdigit((unsigned char)s.s[i])) {
            return 0;
        }
    }
    if (groups < 3) return 0;
    for (size_t g = 0; g < s.n;) {
        size_t e = g;
        while (e < s.n && s.s[e] != '.') e++;
        if (g) w_str(c->w, "point");
        say_int(c->w, s.s + g, e - g);
        g = e + 1;
    }
    return 1;
}

/* 1/2 one half, 3/4 three quarters, 2/3 two thirds (denominators 2 to 10). */
static int try_fraction(ctx *c, span s) {
    const char *slash = memchr(s.s, '/', s.n);
    if (!slash) return 0;
    size_t a = (size_t)(slash - s.s), b = s.n - a - 1;
    if (!a || a > 2 || !b || b > 2 || !all_digits(s.s, a) || !all_digits(slash + 1, b)) return 0;
    unsigned num_ = small_int(s.s, a), den = small_int(slash + 1, b);
    if (den < 2 || den > 10 || num_ == 0 || num_ >= den) {
        /* 24/7, 50/50: said as the two numbers */
        say_uint(c->w, num_);
        say_uint(c->w, den);
        return 1;
    }
    say_uint(c->w, num_);
    if (den == 2)
        w_str(c->w, num_ == 1 ? "half" : "halves");
    else if (den == 4)
        w_str(c->w, num_ == 1 ? "quarter" : "quarters");
    else {
        say_uint(c->w, den);
        ordinalize_last(c->w);
        if (num_ != 1) pluralize_last(c->w);
    }
    return 1;
}

/* digits + st/nd/rd/th */
static int try_ordinal(ctx *c, span s) {
    if (s.n < 3) return 0;
    span suf = {s.s + s.n - 2, 2};
    if (!(eq_ci(suf.s, 2, "st") || eq_ci(suf.s, 2, "nd") || eq_ci(suf.s, 2, "rd") ||
          eq_ci(suf.s, 2, "th")))
        return 0;
    num v;
    if (parse_num(s.s, s.n - 2, &v) != s.n - 2 || v.neg || v.has_point) return 0;
    say_int(c->w, v.ip, v.ipn);
    ordinalize_last(c->w);
    return 1;
}

static int read_number_with_context(ctx *c, span s, const num *v);
static int phone_like(span s);

/* A number, possibly with an attached unit (5km, 25°C, 50%) or a unit word after it. */
static int try_number(ctx *c, span s) {
    num v;
    size_t used = parse_num(s.s, s.n, &v);
    if (!used) return 0;
    span rest = {s.s + used, s.n - used};
    const unit *u = NULL;
    int plural_s = 0;
    if (rest.n) {
        /* 1990s and 80s are decades; 5s is five seconds */
        int decade = !v.has_point && !v.neg && !v.grouped && (v.ipn == 2 || v.ipn == 4) &&
                     v.ip[v.ipn - 1] == '0';
        u = decade && rest.n == 1 && rest.s[0] == 's' ? NULL : find_unit(rest.s, rest.n);
        if (!u && rest.n == 1 && rest.s[0] == 's' && decade)
            plural_s = 1;
        else if (!u && rest.n == 2 && rest.s[0] == '\'' && rest.s[1] == 's' && !v.has_point)
            plural_s = 1; /* 1990's */
        if (!u && !plural_s && ampm_word(rest) && !v.has_point && !v.neg && v.ipn <= 2) {
            say_int(c->w, v.ip, v.ipn); /* 3pm */
            say_ampm(c->w, rest);
            return 1;
        }
        if (!u && !plural_s && !v.has_point && !v.neg) {
            static const symbol vulgar[] = {{"\xc2\xbd", "a half"},
                                            {"\xc2\xbc", "a quarter"},
                                            {"\xc2\xbe", "three quarters"},
                                            {"\xe2\x85\x93", "a third"},
                                            {"\xe2\x85\x94", "two thirds"}};
            for (size_t k = 0; k < sizeof vulgar / sizeof vulgar[0]; k++)
                if (eq_ci(rest.s, rest.n, vulgar[k].sym)) { /* 1½ */
                    say_int(c->w, v.ip, v.ipn);
                    w_str(c->w, "and");
                    w_str(c->w, vulgar[k].word);
                    return 1;
                }
        }
        if (!u && !plural_s) return 0;
    }
    if (plural_s) { /* 1990s, 80s */
        if (v.ipn == 4 && !v.grouped)
            say_year(c->w, small_int(v.ip, 4));
        else
            say_int(c->w, v.ip, v.ipn);
        pluralize_last(c->w);
        return 1;
    }
    if (!u) {
        const word *nx = peek(c, 1);
        if (nx && !c->no_lookahead && !nx->lead.n && !c->words[c->i].trail.n &&
            (u = find_unit(nx->core.s, nx->core.n)) && !eq_ci(nx->core.s, nx->core.n, "m") &&
            !eq_ci(nx->core.s, nx->core.n, "s") && !eq_ci(nx->core.s, nx->core.n, "h") &&
            !eq_ci(nx->core.s, nx->core.n, "l") && !eq_ci(nx->core.s, nx->core.n, "g") &&
            !eq_ci(nx->core.s, nx->core.n, "v") && !eq_ci(nx->core.s, nx->core.n, "w") &&
            strcmp(nx->core.s, "%"))
            c->i++;
        else
            u = NULL;
    }
    if (!read_number_with_context(c, s, &v)) say_num(c->w, &v);
    if (u) {
        int one = !v.neg && !v.has_point && v.ipn == 1 && v.ip[0] == '1';
        w_str(c->w, one ? u->one : u->many);
    }
    return 1;
}

/* Years, phone-like runs and leading-zero codes: 1 when read here. */
static int read_number_with_context(ctx *c, span s, const num *v) {
    if (v->neg || v->has_point || v->grouped) return 0;
    const word *pv = peek(c, -1), *nx = peek(c, 1);
    const word *self = &c->words[c->i];
    int area_code = v->ipn == 3 && self->lead.n == 1 && self->lead.s[0] == '(' &&
                    self->trail.n == 1 && self->trail.s[0] == ')' && nx && phone_like(nx->core);
    if (c->phone_run || area_code || (v->ipn >= 2 && v->ip[0] == '0')) {
        say_digits(c->w, v->ip, v->ipn);
        return 1;
    }
    if (v->ipn == 4) {
        unsigned y = small_int(v->ip, 4);
        int cue = c->year_next ||
                  (pv && !pv->trail.n &&
                   in_words(year_cues, sizeof year_cues / sizeof year_cues[0], pv->core)) ||
                  /* "November 1887", "November, 1887" */
                  (pv && (!pv->trail.n || (pv->trail.n == 1 && pv->trail.s[0] == ',')) &&
                   pv->core.n >= 3 && month_index(pv->core.s, pv->core.n) >= 0) ||
                  (nx && in_words(era_words, sizeof era_words / sizeof era_words[0], nx->core));
        if (cue && y >= 1000) {
            say_year(c->w, y);
            return 1;
        }
    }
    (void)s;
    return 0;
}

/* A day number after a month name (March 15 -> fifteenth) or before one (15 March). */
static int try_day(ctx *c, span s) {
    if (!all_digits(s.s, s.n) || s.n > 2) return 0;
    unsigned d = small_int(s.s, s.n);
    if (d < 1 || d > 31) return 0;
    const word *pv = peek(c, -1), *nx = peek(c, 1);
    int after_month = pv && (!pv->trail.n || (pv->trail.n == 1 && pv->trail.s[0] == '.')) &&
                      month_index(pv->core.s, pv->core.n) >= 0;
    int before_month = nx && !c->words[c->i].trail.n && month_index(nx->core.s, nx->core.n) >= 0 &&
                       nx->core.n >= 3;
    if (!after_month && !before_month) return 0;
    if (before_month) w_str(c->w, "the");
    say_uint(c->w, d);
    ordinalize_last(c->w);
    if (before_month) w_str(c->w, "of");
    c->year_next = 1; /* "March 15, 2024": the year follows */
    return 1;
}

static void say_spelled(writer *w, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char ch[2] = {s[i], 0};
        w_str(w, ch);
    }
}

/* URL or e-mail: letters as words, digits one by one, each mark by its name. */
static void say_address(ctx *c, span s) {
    static const symbol marks[] = {{".", "dot"},           {"@", "at"},      {"/", "slash"},
                                   {":", "colon"},         {"-", "dash"},    {"_", "underscore"},
                                   {"?", "question mark"}, {"=", "equals"},  {"&", "and"},
                                   {"#", "hash"},          {"%", "percent"}, {"~", "tilde"},
                                   {"+", "plus"}};
    size_t i = 0;
    if (s.n >= 8 && !strncasecmp(s.s, "https://", 8)) {
        say_spelled(c->w, "https", 5);
        i = 5;
    } else if (s.n >= 7 && !strncasecmp(s.s, "http://", 7)) {
        say_spelled(c->w, "http", 4);
        i = 4;
    }
    while (i < s.n) {
        char ch = s.s[i];
        if (isalpha((unsigned char)ch)) {
            size_t j = i;
            while (j < s.n && isalpha((unsigned char)s.s[j])) j++;
            if (eq_ci(s.s + i, j - i, "www"))
                say_spelled(c->w, "www", 3);
            else
                w_word(c->w, s.s + i, j - i);
            i = j;
        } else if (isdigit((unsigned char)ch)) {
            say_digits(c->w, s.s + i, 1);
            i++;
        } else {
            const char *name = NULL;
            for (size_t k = 0; k < sizeof marks / sizeof marks[0]; k++)
                if (marks[k].sym[0] == ch) name = marks[k].word;
            if (name)
                w_str(c->w, name);
            else if ((unsigned char)ch >= 0x80) { /* a non-ASCII letter: keep the character */
                uint32_t cp;
                int n = koe_utf8_decode(s.s + i, &cp);
                w_word(c->w, s.s + i, (size_t)(n > 0 ? n : 1));
                i += (size_t)(n > 0 ? n : 1);
                continue;
            } else
                (*c->dropped)++;
            i++;
        }
    }
}

static int looks_url(span s) {
    if ((s.n > 7 && !strncasecmp(s.s, "http://", 7)) ||
        (s.n > 8 && !strncasecmp(s.s, "https://", 8)) || (s.n > 4 && !strncasecmp(s.s, "www.", 4)))
        return 1;
    /* name.tld[/path] with a well-known top-level domain */
    static const char *const tlds[] = {"com", "org", "net", "edu", "gov",
                                       "io",  "dev", "ai",  "app", "info"};
    size_t end = 0;
    while (end < s.n && s.s[end] != '/') end++;
    size_t dot = end;
    while (dot > 0 && s.s[dot - 1] != '.') dot--;
    if (dot < 2) return 0;
    span tld = {s.s + dot, end - dot};
    for (size_t i = 0; i < sizeof tlds / sizeof tlds[0]; i++)
        if (eq_ci(tld.s, tld.n, tlds[i])) return isalnum((unsigned char)s.s[0]);
    return 0;
}

static int looks_email(span s) {
    const char *at = memchr(s.s, '@', s.n);
    if (!at || at == s.s) return 0;
    const char *dot = memchr(at, '.', s.n - (size_t)(at - s.s));
    return dot && dot > at + 1 && dot < s.s + s.n - 1;
}

/* Dotted acronyms: U.S.A. -> U S A */
static int try_acronym(ctx *c, span s, span *trail) {
    size_t n = s.n;
    int with_final_dot = trail->n && trail->s[0] == '.';
    /* U.S (the last period went to the trailing marks) */
    if (n < 3) return 0;
    for (size_t i = 0; i < n; i++) {
        int letter_pos = (i % 2) == 0;
        if (letter_pos ? !isalpha((unsigned char)s.s[i]) : s.s[i] != '.') return 0;
    }
    if (n % 2 == 0) return 0;
    for (size_t i = 0; i < n; i += 2) {
        char ch[2] = {(char)toupper((unsigned char)s.s[i]), 0};
        w_str(c->w, ch);
    }
    if (with_final_dot && c->i + 1 < c->nwords) trail->s++, trail->n--; /* period of the acronym */
    return 1;
}

/* Mixed words: letters kept, digit runs read, symbols named or dropped. */
static void say_mixed(ctx *c, span s) {
    size_t i = 0;
    while (i < s.n) {
        unsigned char ch = (unsigned char)s.s[i];
        if (isdigit(ch) ||
            ((ch == '.' || ch == '-') && i + 1 < s.n && isdigit((unsigned char)s.s[i + 1]) &&
             (i == 0 || !isalnum((unsigned char)s.s[i - 1])))) {
            num v;
            size_t used = parse_num(s.s + i, s.n - i, &v);
            if (used) {
                say_num(c->w, &v);
                i += used;
                continue;
            }
            if (isdigit(ch)) {
                /* Too long to read as a number: digit by digit (the letter scan below would
                 * not move past a digit, and the loop would never end). */
                size_t j = i;
                while (j < s.n && isdigit((unsigned char)s.s[j])) j++;
                say_digits(c->w, s.s + i, j - i);
                i = j;
                continue;
            }
        }
        if (ch == '#' && i + 1 < s.n && isdigit((unsigned char)s.s[i + 1])) {
            w_str(c->w, "number");
            i++;
            continue;
        }
        if (ch == '#' && i + 1 < s.n && isalpha((unsigned char)s.s[i + 1])) {
            w_str(c->w, "hashtag");
            i++;
            continue;
        }
        if (ch == '-' && i > 0 && i + 1 < s.n && isalpha((unsigned char)s.s[i - 1]) &&
            isdigit((unsigned char)s.s[i + 1])) {
            c->w->space = 1; /* COVID-19 */
            i++;
            continue;
        }
        if (i + 3 <= s.n && !memcmp(s.s + i, "\xe2\x80\x93", 3)) { /* en dash, not a range */
            c->w->space = 1;
            i += 3;
            continue;
        }
        if (ch == '_') {
            c->w->space = 1;
            i++;
            continue;
        }
        if (ch == '-' && i > 0 && i + 1 < s.n && isalpha((unsigned char)s.s[i - 1]) &&
            isalpha((unsigned char)s.s[i + 1])) {
            w_raw(c->w, "-", 1); /* well-known: espeak-ng reads the compound */
            c->w->space = 0;
            i++;
            continue;
        }
        int done = 0;
        for (size_t k = 0; k < sizeof symbols / sizeof symbols[0] && !done; k++) {
            size_t l = strlen(symbols[k].sym);
            if (l <= s.n - i && !memcmp(s.s + i, symbols[k].sym, l)) {
                const char *wd = symbols[k].word;
                /* "/" between words is "and/or" -> "and or"; in numbers it is "over" */
                if (!strcmp(symbols[k].sym, "/")) {
                    int digits = i > 0 && isdigit((unsigned char)s.s[i - 1]) && i + 1 < s.n &&
                                 isdigit((unsigned char)s.s[i + 1]);
                    wd = digits ? "over" : (i > 0 && i + 1 < s.n ? "" : "slash");
                }
                if (*wd)
                    w_str(c->w, wd);
                else
                    c->w->space = 1;
                i += l;
                done = 1;
            }
        }
        for (size_t k = 0; k < sizeof silent_symbols / sizeof silent_symbols[0] && !done; k++) {
            size_t l = strlen(silent_symbols[k]);
            if (l <= s.n - i && !memcmp(s.s + i, silent_symbols[k], l)) {
                (*c->dropped)++;
                c->w->space = 1;
                i += l;
                done = 1;
            }
        }
        if (done) continue;
        /* A run of letters (any script), apostrophes inside words, and other characters. */
        size_t j = i;
        while (j < s.n) {
            unsigned char cj = (unsigned char)s.s[j];
            if (cj >= 0x80) {
                uint32_t cp;
                int n = koe_utf8_decode(s.s + j, &cp);
                int sym = cp == 0x2013; /* en dash: handled above */
                for (size_t k = 0; k < sizeof symbols / sizeof symbols[0]; k++)
                    if (!strncmp(s.s + j, symbols[k].sym, strlen(symbols[k].sym))) sym = 1;
                for (size_t k = 0; k < sizeof silent_symbols / sizeof silent_symbols[0]; k++)
                    if (!strncmp(s.s + j, silent_symbols[k], strlen(silent_symbols[k]))) sym = 1;
                if (sym) break;
                j += (size_t)(n > 0 ? n : 1);
            } else if (isalpha(cj) || (cj == '\'' && j > i) ||
                       (cj == '.' && j > i && j + 1 < s.n && isalpha((unsigned char)s.s[j + 1]))) {
                j++;
            } else if (j == i && !isdigit(cj)) {
                j++; /* a lone other mark: kept for espeak-ng / the phonemizer */
                break;
            } else {
                break;
            }
        }
        if (j == i) { /* digits no number rule took (too long): read one by one */
            while (j < s.n && isdigit((unsigned char)s.s[j])) j++;
            if (j == i) j = i + 1; /* never stall */
            say_digits(c->w, s.s + i, j - i);
            i = j;
            continue;
        }
        /* letters directly after digits (3D, 4K) or before (MP3) are separate words */
        w_word(c->w, s.s + i, j - i);
        i = j;
    }
}

/* The value of an upper-case Roman numeral (II to MMMCMXCIX, written canonically), or 0. */
static unsigned roman_value(span s) {
    static const struct {
        const char *sym;
        unsigned v;
    } parts[] = {{"M", 1000}, {"CM", 900}, {"D", 500}, {"CD", 400}, {"C", 100},
                 {"XC", 90},  {"L", 50},   {"XL", 40}, {"X", 10},   {"IX", 9},
                 {"V", 5},    {"IV", 4},   {"I", 1}};
    unsigned v = 0;
    size_t i = 0;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0] && i < s.n; k++) {
        size_t l = strlen(parts[k].sym);
        int reps = 0, max = l == 1 ? 3 : 1;
        while (reps < max && i + l <= s.n && !memcmp(s.s + i, parts[k].sym, l)) {
            v += parts[k].v;
            i += l;
            reps++;
        }
    }
    return i == s.n && s.n >= 2 ? v : 0;
}

/* Roman numerals after a name (Henry VIII -> Henry the eighth) or a heading word (Chapter IV,
 * World War II -> four, two). Only there: elsewhere "MIX" or "CD" are words. */
static int try_roman(ctx *c, span s) {
    static const char *const headings[] = {"chapter", "part", "book",    "volume",   "act",
                                           "scene",   "war",  "section", "appendix", "phase"};
    const word *pv = peek(c, -1);
    if (!pv || pv->trail.n || !pv->core.n) return 0;
    unsigned v = roman_value(s);
    if (!v) return 0;
    if (in_words(headings, sizeof headings / sizeof headings[0], pv->core)) {
        say_uint(c->w, v);
        return 1;
    }
    if (isupper((unsigned char)pv->core.s[0]) && pv->core.n > 1 &&
        islower((unsigned char)pv->core.s[1]) && v < 40) {
        w_str(c->w, "the");
        say_uint(c->w, v);
        ordinalize_last(c->w);
        return 1;
    }
    return 0;
}

static int try_abbrev(ctx *c, span core, span *trail) {
    /* the period of "Dr." was split off into the trailing marks */
    int dot = trail->n && trail->s[0] == '.';
    for (size_t k = 0; k < sizeof abbrevs / sizeof abbrevs[0]; k++) {
        const abbrev *a = &abbrevs[k];
        size_t al = strlen(a->from);
        int needs_dot = a->from[al - 1] == '.';
        size_t cl = needs_dot ? al - 1 : al;
        if (!needs_dot && !(core.n == al && !memcmp(core.s, a->from, al))) continue;
        if (needs_dot && (!dot || core.n != cl || memcmp(core.s, a->from, cl))) continue;
        /* am/pm only right after a number or time */
        if (!needs_dot && (!strcasecmp(a->from, "am") || !strcasecmp(a->from, "pm"))) {
            const word *pv = peek(c, -1);
            if (!pv || !isdigit((unsigned char)pv->core.s[pv->core.n ? pv->core.n - 1 : 0]))
                continue;
        }
        const char *to = a->to;
        const word *pv = peek(c, -1), *nx = peek(c, 1);
        int next_cap = nx && nx->core.n && isupper((unsigned char)nx->core.s[0]);
        int prev_cap = pv && pv->core.n && isupper((unsigned char)pv->core.s[0]) && !pv->trail.n;
        if (!strcmp(a->from, "St.")) to = (prev_cap || !next_cap) ? "Street" : "Saint";
        if (!strcmp(a->from, "Dr.") && prev_cap && !next_cap) to = "Drive";
        w_str(c->w, to);
        /* The abbreviation's own period goes, unless it also ends the text. */
        if (needs_dot && c->i + 1 < c->nwords) trail->s++, trail->n--;
        return 1;
    }
    /* "No. 5" -> number five */
    if (dot && eq_ci(core.s, core.n, "no") && peek(c, 1) &&
        isdigit((unsigned char)peek(c, 1)->core.s[0])) {
        w_str(c->w, "number");
        trail->s++, trail->n--;
        return 1;
    }
    int m = month_index(core.s, core.n);
    if (dot && m >= 0 && core.n <= 4) {
        w_str(c->w, months[m]);
        if (c->i + 1 < c->nwords) trail->s++, trail->n--;
        return 1;
    }
    return 0;
}

/* A range: 10-20, 1999–2004, $10-$20, 3:00-5:00pm. */
static int read_core(ctx *c, span core, span *trail);

static int try_range(ctx *c, span s, span *trail) {
    for (size_t i = 1; i + 1 < s.n; i++) {
        size_t dl = 0;
        if (s.s[i] == '-')
            dl = 1;
        else if (i + 3 < s.n && !memcmp(s.s + i, "\xe2\x80\x93", 3))
            dl = 3;
        if (!dl) continue;
        span a = {s.s, i}, b = {s.s + i + dl, s.n - i - dl};
        char last = a.s[a.n - 1];
        if (!isdigit((unsigned char)last) && last != '%' &&
            !(last == 's' && a.n >= 3 && isdigit((unsigned char)a.s[a.n - 2])))
            return 0;
        if (!b.n || !(isdigit((unsigned char)b.s[0]) || find_currency(b.s, b.n, &dl))) return 0;
        /* both sides years when both are four-digit numbers */
        if (a.n == 4 && b.n == 4 && all_digits(a.s, 4) && all_digits(b.s, 4) &&
            small_int(a.s, 4) >= 1000 && small_int(a.s, 4) < 2100) {
            say_year(c->w, small_int(a.s, 4));
            w_str(c->w, "to");
            say_year(c->w, small_int(b.s, 4));
            return 1;
        }
        span none = {"", 0};
        c->no_lookahead = 1;
        int said = read_core(c, a, &none);
        c->no_lookahead = 0;
        if (!said) return 0;
        w_str(c->w, "to");
        read_core(c, b, trail);
        return 1;
    }
    return 0;
}

/* Reads one word's core; 1 when something was said (or dropped). */
/* A plain word (letters and apostrophes, not all capitals, no period after it, not "vs", "am" or
 * "pm") needs none of the rules: most words of a text take this fast path. */
static int plain_word(span core, span trail) {
    int lower = 0;
    for (size_t i = 0; i < core.n; i++) {
        unsigned char ch = (unsigned char)core.s[i];
        if (islower(ch))
            lower = 1;
        else if (!isupper(ch) && !(ch == '\'' && i > 0))
            return 0;
    }
    if (!lower && core.n > 1) return 0;
    if (trail.n && trail.s[0] == '.') return 0;
    return !eq_ci(core.s, core.n, "vs") && !eq_ci(core.s, core.n, "am") &&
           !eq_ci(core.s, core.n, "pm");
}

static int read_core(ctx *c, span core, span *trail) {
    if (!core.n) return 0;
    if (plain_word(core, *trail)) {
        w_word(c->w, core.s, core.n);
        return 1;
    }
    if (looks_email(core) || looks_url(core)) {
        say_address(c, core);
        return 1;
    }
    if (try_abbrev(c, core, trail)) return 1;
    if (try_date(c, core)) return 1;
    if (phone_like(core)) {
        say_phone(c->w, core);
        c->phone_run = 0;
        return 1;
    }
    if (try_time(c, core) || try_money(c, core) || try_ordinal(c, core)) return 1;
    if (try_day(c, core) || try_fraction(c, core) || try_version(c, core)) return 1;
    if (try_number(c, core)) return 1;
    if (try_range(c, core, trail)) return 1;
    if (core.s[0] == '+' && core.n > 1 && all_digits(core.s + 1, core.n - 1)) {
        w_str(c->w, "plus"); /* +44: a country code, the digits that follow are a number */
        say_digits(c->w, core.s + 1, core.n - 1);
        c->phone_run = 1;
        return 1;
    }
    if (try_acronym(c, core, trail) || try_roman(c, core)) return 1;
    say_mixed(c, core);
    return 1;
}

/* Writes marks (opening or closing), folding "..." to "…" and dropping stray apostrophes. */
static void write_marks(ctx *c, span m, int opening) {
    for (size_t i = 0; i < m.n; i++) {
        if (m.s[i] == '\'') continue; /* quote marks of single quotes: nothing to say */
        if (m.s[i] == '.' && i + 2 < m.n && m.s[i + 1] == '.' && m.s[i + 2] == '.') {
            w_raw(c->w, "\xe2\x80\xa6", 3);
            i += 2;
            continue;
        }
        char ch = m.s[i];
        if (ch == '[' || ch == '{') ch = '(';
        if (ch == ']' || ch == '}') ch = ')';
        if (opening && c->w->space && c->w->b->len) w_raw(c->w, " ", 1);
        w_raw(c->w, &ch, 1);
        if (opening) c->w->space = 0;
    }
}

static int normalize_en(const char *s, size_t n, koe_buf *out, int gb, size_t *dropped) {
    writer w = {out, 0, gb, 0};
    size_t cap = 16, nw = 0;
    word *words = malloc(cap * sizeof *words);
    if (!words) return KOE_ERR_NOMEM;
    for (size_t i = 0; i < n;) {
        while (i < n && s[i] == ' ') i++;
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if (j > i) {
            if (nw == cap) {
                word *p = realloc(words, cap * 2 * sizeof *words);
                if (!p) {
                    free(words);
                    return KOE_ERR_NOMEM;
                }
                words = p;
                cap *= 2;
            }
            words[nw++] = split_word(s + i, j - i);
        }
        i = j;
    }
    ctx c = {.w = &w, .dropped = dropped, .words = words, .nwords = nw};
    for (c.i = 0; c.i < nw && !w.fail; c.i++) {
        size_t first = c.i;
        word wd = words[c.i];
        write_marks(&c, wd.lead, 1);
        span trail = wd.trail;
        int year_next = c.year_next, phone = c.phone_run;
        /* a lone dash between words is a pause */
        if (wd.core.n == 1 && wd.core.s[0] == '-') {
            w_word(&w, "\xe2\x80\x94", 3);
        } else if (wd.core.n == 3 && !memcmp(wd.core.s, "\xe2\x80\x93", 3)) {
            w_word(&w, "\xe2\x80\x94", 3);
        } else if (wd.core.n) {
            read_core(&c, wd.core, &trail);
        }
        if (c.i != first) trail = words[c.i].trail; /* a following word was read with this one */
        write_marks(&c, trail, 0);
        if (year_next) c.year_next = 0;
        if (phone && c.phone_run == phone) c.phone_run = 0;
        /* a phone number continues over digit groups: +1 555 123 4567 */
        if (c.phone_run == 1 && !phone)
            c.phone_run = 1;
        else if (phone && c.i + 1 < nw && all_digits(words[c.i + 1].core.s, words[c.i + 1].core.n))
            c.phone_run = 1;
    }
    free(words);
    return w.fail ? KOE_ERR_NOMEM : 0;
}

/* ------------------------------------------------------------------ other languages */

/* Symbols read as words in es, fr, it, pt-br, hi (espeak-ng reads the numbers itself). */
typedef struct lang_symbols {
    const char *lang;
    const char *percent, *amp, *at, *plus, *equals;
} lang_symbols;

static const lang_symbols other_symbols[] = {
    {"es", "por ciento", "y", "arroba", "más", "igual a"},
    {"fr", "pour cent", "et", "arobase", "plus", "égal"},
    {"it", "per cento", "e", "chiocciola", "più", "uguale"},
    {"pt-br", "por cento", "e", "arroba", "mais", "igual a"},
    {"hi", "प्रतिशत", "और", "ऐट", "प्लस", "बराबर"},
};

/* Letters of the language's own scripts: Latin for all, Devanagari for Hindi too. */
static int own_script(const char *lang, uint32_t cp) {
    if (cp < 0x250 || (cp >= 0x1E00 && cp <= 0x1EFF)) return 1;
    if (cp >= 0x300 && cp <= 0x36F) return 1; /* combining accents */
    return !strcmp(lang, "hi") && cp >= 0x900 && cp <= 0x97F;
}

/* es, fr, it, pt-br, hi: the common symbols become words; other ASCII symbols and the letters of
 * other scripts (which these voices cannot say, and on which espeak-ng 1.51 reads freed memory
 * when it switches language for them) are dropped and counted. */
static int normalize_other(const char *s, size_t n, const char *lang, koe_buf *out,
                           size_t *dropped) {
    const lang_symbols *ls = &other_symbols[0];
    for (size_t i = 0; i < sizeof other_symbols / sizeof other_symbols[0]; i++)
        if (!strcmp(lang, other_symbols[i].lang)) ls = &other_symbols[i];
    writer w = {out, 0, 0, 0};
    for (size_t i = 0; i < n && !w.fail;) {
        uint32_t cp;
        int l = koe_utf8_decode(s + i, &cp);
        if (l <= 0) l = 1, cp = 0xFFFD;
        const char *spoken = NULL;
        switch (cp) {
        case '%':
            spoken = ls->percent;
            break;
        case '&':
            spoken = ls->amp;
            break;
        case '@':
            spoken = ls->at;
            break;
        case '+':
            spoken = ls->plus;
            break;
        case '=':
            spoken = ls->equals;
            break;
        case '[':
        case '{':
            spoken = "(";
            break;
        case ']':
        case '}':
            spoken = ")";
            break;
        default:
            break;
        }
        if (spoken && spoken[0] == '(') {
            w_raw(&w, spoken, 1);
            i += (size_t)l;
            continue;
        }
        if (spoken && spoken[0] == ')') {
            w_raw(&w, spoken, 1);
            i += (size_t)l;
            continue;
        }
        if (spoken) {
            if (out->len && out->data[out->len - 1] != ' ') w_raw(&w, " ", 1);
            w_raw(&w, spoken, strlen(spoken));
            if (i + (size_t)l < n && s[i + l] != ' ') w_raw(&w, " ", 1);
        } else if ((cp < 0x80 && strchr("$#*/<>^_|\\~`", (int)cp) && cp) ||
                   (cp >= 0x80 && !own_script(lang, cp) && !(cp >= 0x2000 && cp <= 0x206F) &&
                    !(cp >= 0x20A0 && cp <= 0x20CF) && cp != 0xA1 && cp != 0xBF)) {
            (*dropped)++; /* ¡ ¿, general punctuation and currency signs pass */
            if (out->len && out->data[out->len - 1] != ' ' && i + (size_t)l < n && s[i + l] != ' ')
                w_raw(&w, " ", 1);
        } else {
            w_raw(&w, s + i, (size_t)l);
        }
        i += (size_t)l;
    }
    /* no space at either end */
    while (out->len && out->data[out->len - 1] == ' ') out->len--;
    return w.fail ? KOE_ERR_NOMEM : 0;
}

int koe_text_normalize(const char *in, size_t len, const char *lang, koe_buf *out, size_t *dropped,
                       koe_error *err) {
    size_t drop_local = 0;
    if (!dropped) dropped = &drop_local;
    *dropped = 0;
    if (!in && len) return koe_error_set(err, KOE_ERR_INVALID, "normalize: no text");
    if (!in) in = "";
    int rc = koe_text_lang_check(lang, err);
    if (rc) return rc;
    size_t bad = koe_utf8_validate(in, len);
    if (bad != len) return koe_error_set(err, KOE_ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
    koe_buf folded = {0};
    rc = fold_text(in, len, &folded, dropped);
    if (!rc) {
        if (!strncmp(lang, "en-", 3))
            rc = normalize_en(folded.data ? folded.data : "", folded.len, out,
                              !strcmp(lang, "en-gb"), dropped);
        else
            rc = normalize_other(folded.data ? folded.data : "", folded.len, lang, out, dropped);
    }
    koe_buf_free(&folded);
    if (!rc && koe_buf_terminate(out)) rc = KOE_ERR_NOMEM;
    if (rc) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory normalizing");
    return 0;
}
