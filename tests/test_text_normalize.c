/* Normalization as a table: input -> normalized text (and the count of dropped characters), for
 * every rule family of the English normalizer, the Unicode folding of every language, and the
 * explicit dropping of unpronounceable input. */
#include "harness.h"
#include "koe/base.h"
#include "koe/text.h"

#include <string.h>

typedef struct norm_case {
    const char *lang, *in, *want;
    size_t dropped;
} norm_case;

static const norm_case cases[] = {
    {"en-us", "I have 3 apples.", "I have three apples.", 0},
    {"en-us", "0", "zero", 0},
    {"en-us", "7", "seven", 0},
    {"en-us", "13", "thirteen", 0},
    {"en-us", "21", "twenty one", 0},
    {"en-us", "100", "one hundred", 0},
    {"en-us", "101", "one hundred one", 0},
    {"en-us", "999", "nine hundred ninety nine", 0},
    {"en-us", "1000", "one thousand", 0},
    {"en-us", "1001", "one thousand one", 0},
    {"en-us", "12345", "twelve thousand three hundred forty five", 0},
    {"en-us", "1,234", "one thousand two hundred thirty four", 0},
    {"en-us", "1,234,567", "one million two hundred thirty four thousand five hundred sixty seven",
     0},
    {"en-us", "1,000,000", "one million", 0},
    {"en-us", "1000000000", "one billion", 0},
    {"en-us", "123456789012",
     "one hundred twenty three billion four hundred fifty six million seven hundred eighty nine "
     "thousand twelve",
     0},
    {"en-us", "12345678901234567890",
     "one two three four five six seven eight nine zero one two three four five six seven eight "
     "nine zero",
     0},
    {"en-gb", "105", "one hundred and five", 0},
    {"en-gb", "1,005", "one thousand and five", 0},
    {"en-gb", "123", "one hundred and twenty three", 0},
    {"en-us", "1st", "first", 0},
    {"en-us", "2nd", "second", 0},
    {"en-us", "3rd", "third", 0},
    {"en-us", "4th", "fourth", 0},
    {"en-us", "11th", "eleventh", 0},
    {"en-us", "12th", "twelfth", 0},
    {"en-us", "21st", "twenty first", 0},
    {"en-us", "22nd", "twenty second", 0},
    {"en-us", "103rd", "one hundred third", 0},
    {"en-us", "100th", "one hundredth", 0},
    {"en-us", "1,000th", "one thousandth", 0},
    {"en-us", "3.14", "three point one four", 0},
    {"en-us", "0.5", "zero point five", 0},
    {"en-us", ".5", "point five", 0},
    {"en-us", "10.05", "ten point zero five", 0},
    {"en-us", "1,234.56", "one thousand two hundred thirty four point five six", 0},
    {"en-us", "-5", "minus five", 0},
    {"en-us", "-3.5", "minus three point five", 0},
    {"en-us", "It was -12 outside.", "It was minus twelve outside.", 0},
    {"en-us", "10-20", "ten to twenty", 0},
    {"en-us", "10–20", "ten to twenty", 0},
    {"en-us", "pages 5-10", "pages five to ten", 0},
    {"en-us", "1999-2004", "nineteen ninety nine to two thousand four", 0},
    {"en-us", "$10-$20", "ten dollars to twenty dollars", 0},
    {"en-us", "10-20%", "ten to twenty percent", 0},
    {"en-us", "$3.50", "three dollars fifty cents", 0},
    {"en-us", "$1", "one dollar", 0},
    {"en-us", "$1.00", "one dollar", 0},
    {"en-us", "$0.99", "ninety nine cents", 0},
    {"en-us", "$0.01", "one cent", 0},
    {"en-us", "$5", "five dollars", 0},
    {"en-us", "$1,000", "one thousand dollars", 0},
    {"en-us", "$1.2M", "one point two million dollars", 0},
    {"en-us", "$5k", "five thousand dollars", 0},
    {"en-us", "$3B", "three billion dollars", 0},
    {"en-us", "$2.5 billion", "two point five billion dollars", 0},
    {"en-us", "$3.999", "three point nine nine nine dollars", 0},
    {"en-us", "-$5", "minus five dollars", 0},
    {"en-us", "€20", "twenty euros", 0},
    {"en-us", "€1.50", "one euro fifty cents", 0},
    {"en-us", "£3.50", "three pounds fifty pence", 0},
    {"en-us", "£1", "one pound", 0},
    {"en-us", "¥100", "one hundred yen", 0},
    {"en-us", "50¢", "fifty cents", 0},
    {"en-us", "1¢", "one cent", 0},
    {"en-us", "20€", "twenty euros", 0},
    {"en-us", "50%", "fifty percent", 0},
    {"en-us", "3.5%", "three point five percent", 0},
    {"en-us", "-2%", "minus two percent", 0},
    {"en-us", "100 %", "one hundred percent", 0},
    {"en-us", "in 1999", "in nineteen ninety nine", 0},
    {"en-us", "1999 items", "one thousand nine hundred ninety nine items", 0},
    {"en-us", "since 2008", "since two thousand eight", 0},
    {"en-us", "by 2020", "by twenty twenty", 0},
    {"en-us", "in 2000", "in two thousand", 0},
    {"en-us", "in 1905", "in nineteen oh five", 0},
    {"en-us", "in 1900", "in nineteen hundred", 0},
    {"en-us", "from 1066", "from ten sixty six", 0},
    {"en-us", "the 1990s", "the nineteen nineties", 0},
    {"en-us", "the 80s", "the eighties", 0},
    {"en-us", "in 1990's", "in nineteen nineties", 0},
    {"en-us", "300 BC", "three hundred BC", 0},
    {"en-us", "born in 1984, she", "born in nineteen eighty four, she", 0},
    {"en-us", "3:30pm", "three thirty p m", 0},
    {"en-us", "3:30 pm", "three thirty p m", 0},
    {"en-us", "3:30 p.m.", "three thirty p m.", 0},
    {"en-us", "14:05", "fourteen oh five", 0},
    {"en-us", "9:00", "nine o'clock", 0},
    {"en-us", "9:00 am", "nine a m", 0},
    {"en-us", "18:00", "eighteen hundred", 0},
    {"en-us", "12:45:30", "twelve forty five and thirty seconds", 0},
    {"en-us", "3pm", "three p m", 0},
    {"en-us", "11am", "eleven a m", 0},
    {"en-us", "0:30", "zero thirty", 0},
    {"en-us", "2024-03-15", "March fifteenth, twenty twenty four", 0},
    {"en-gb", "2024-03-15", "the fifteenth of March, twenty twenty four", 0},
    {"en-us", "03/15/2024", "March fifteenth, twenty twenty four", 0},
    {"en-us", "15/03/2024", "March fifteenth, twenty twenty four", 0},
    {"en-gb", "15/03/2024", "the fifteenth of March, twenty twenty four", 0},
    {"en-gb", "03/04/2024", "the third of April, twenty twenty four", 0},
    {"en-us", "03/04/2024", "March fourth, twenty twenty four", 0},
    {"en-us", "1/2/99", "January second, nineteen ninety nine", 0},
    {"en-us", "March 15, 2024", "March fifteenth, twenty twenty four", 0},
    {"en-us", "on May 1", "on May first", 0},
    {"en-gb", "15 March 2024", "the fifteenth of March twenty twenty four", 0},
    {"en-us", "Jan. 5", "January fifth", 0},
    {"en-us", "555-123-4567", "five five five, one two three, four five six seven", 0},
    {"en-us", "555.123.4567", "five five five, one two three, four five six seven", 0},
    {"en-us", "123-4567", "one two three, four five six seven", 0},
    {"en-us", "+1 555 123 4567", "plus one five five five one two three four five six seven", 0},
    {"en-us", "+44 20 7946 0958",
     "plus four four two zero seven nine four six zero nine five eight", 0},
    {"en-us", "(555) 123-4567", "(five five five) one two three, four five six seven", 0},
    {"en-us", "007", "zero zero seven", 0},
    {"en-us", "0800123456", "zero eight zero zero one two three four five six", 0},
    {"en-us", "Dr. Smith", "Doctor Smith", 0},
    {"en-us", "Mr. Brown", "Mister Brown", 0},
    {"en-us", "Mrs. Jones", "Missus Jones", 0},
    {"en-us", "Ms. Lee", "Miz Lee", 0},
    {"en-us", "Prof. Xavier", "Professor Xavier", 0},
    {"en-us", "Main St. is long.", "Main Street is long.", 0},
    {"en-us", "St. Louis", "Saint Louis", 0},
    {"en-us", "Elm Dr. is quiet.", "Elm Drive is quiet.", 0},
    {"en-us", "Bill Jr. left.", "Bill Junior left.", 0},
    {"en-us", "cats vs. dogs", "cats versus dogs", 0},
    {"en-us", "cats vs dogs", "cats versus dogs", 0},
    {"en-us", "apples, pears, etc.", "apples, pears, et cetera.", 0},
    {"en-us", "apples etc. and more", "apples et cetera and more", 0},
    {"en-us", "fruit, e.g. apples", "fruit, for example apples", 0},
    {"en-us", "one, i.e. the first", "one, that is the first", 0},
    {"en-us", "Mt. Everest", "Mount Everest", 0},
    {"en-us", "Acme Inc. sells.", "Acme Incorporated sells.", 0},
    {"en-us", "approx. 5", "approximately five", 0},
    {"en-us", "No. 5", "number five", 0},
    {"en-us", "U.S.A.", "U S A.", 0},
    {"en-us", "the U.S. army", "the U S army", 0},
    {"en-us", "5 km", "five kilometers", 0},
    {"en-us", "5km", "five kilometers", 0},
    {"en-us", "1 km", "one kilometer", 0},
    {"en-us", "10 kg", "ten kilograms", 0},
    {"en-us", "2.5 kg", "two point five kilograms", 0},
    {"en-us", "60 mph", "sixty miles per hour", 0},
    {"en-us", "100 km/h", "one hundred kilometers per hour", 0},
    {"en-us", "25°C", "twenty five degrees Celsius", 0},
    {"en-us", "-5 °C", "minus five degrees Celsius", 0},
    {"en-us", "98.6°F", "ninety eight point six degrees Fahrenheit", 0},
    {"en-us", "90°", "ninety degrees", 0},
    {"en-us", "500 mg", "five hundred milligrams", 0},
    {"en-us", "3 ft", "three feet", 0},
    {"en-us", "2 lbs", "two pounds", 0},
    {"en-us", "16 oz", "sixteen ounces", 0},
    {"en-us", "8 GB", "eight gigabytes", 0},
    {"en-us", "2.4 GHz", "two point four gigahertz", 0},
    {"en-us", "250 ml", "two hundred fifty milliliters", 0},
    {"en-us", "100 ms", "one hundred milliseconds", 0},
    {"en-us", "https://example.com", "h t t p s colon slash slash example dot com", 0},
    {"en-us", "http://www.example.org/path",
     "h t t p colon slash slash w w w dot example dot org slash path", 0},
    {"en-us", "www.example.com/a-b?x=1&y=2",
     "w w w dot example dot com slash a dash b question mark x equals one and y equals two", 0},
    {"en-us", "example.com", "example dot com", 0},
    {"en-us", "user@example.com", "user at example dot com", 0},
    {"en-us", "john.smith@mail.example.org", "john dot smith at mail dot example dot org", 0},
    {"en-us", "first_last@example.io", "first underscore last at example dot io", 0},
    {"en-us", "Tom & Jerry", "Tom and Jerry", 0},
    {"en-us", "AT&T", "AT and T", 0},
    {"en-us", "R&D", "R and D", 0},
    {"en-us", "me @ home", "me at home", 0},
    {"en-us", "2 + 2 = 4", "two plus two equals four", 0},
    {"en-us", "C++", "C plus plus", 0},
    {"en-us", "#1", "number one", 0},
    {"en-us", "#hashtag", "hashtag hashtag", 0},
    {"en-us", "#", "hash", 0},
    {"en-us", "x = 5", "x equals five", 0},
    {"en-us", "5 × 3", "five times three", 0},
    {"en-us", "10 ÷ 2", "ten divided by two", 0},
    {"en-us", "±3", "plus or minus three", 0},
    {"en-us", "~5", "about five", 0},
    {"en-us", "3 < 4", "three less than four", 0},
    {"en-us", "© 2024", "copyright twenty twenty four", 0},
    {"en-us", "Brand™", "Brand trademark", 0},
    {"en-us", "§ 5", "section five", 0},
    {"en-us", "and/or", "and or", 0},
    {"en-us", "1/2", "one half", 0},
    {"en-us", "½ cup", "one half cup", 0},
    {"en-us", "1½", "one and a half", 0},
    {"en-us", "snake_case", "snake case", 0},
    {"en-us", "a * b", "a b", 1},
    {"en-us", "• item", "item", 1},
    {"en-us", "“Hello,” she said.", "\"Hello,\" she said.", 0},
    {"en-us", "‘single’ quotes", "single quotes", 0},
    {"en-us", "It’s fine.", "It's fine.", 0},
    {"en-us", "wait — what", "wait — what", 0},
    {"en-us", "wait—what", "wait — what", 0},
    {"en-us", "wait – what", "wait — what", 0},
    {"en-us", "wait - what", "wait — what", 0},
    {"en-us", "Wait...", "Wait…", 0},
    {"en-us", "Wait…", "Wait…", 0},
    {"en-us", "Wait. . . no", "Wait... no", 0},
    {"en-us", "Hi 😀 there", "Hi there", 1},
    {"en-us", "👍🏽 good", "good", 2},
    {"en-us", "🇫🇷 France", "France", 2},
    {"en-us",
     "a\xe2\x80\x8b"
     "b",
     "ab", 1},
    {"en-us",
     "a\x09"
     "b",
     "a b", 0},
    {"en-us", "line\none", "line one", 0},
    {"en-us", "line\r\n\r\ntwo", "line two", 0},
    {"en-us",
     "bell\x07"
     "char",
     "bellchar", 1},
    {"en-us",
     "vertical\x0b"
     "tab",
     "vertical tab", 0},
    {"en-us",
     "del\x7f"
     "x",
     "delx", 1},
    {"en-us",
     "nbsp\xc2\xa0"
     "here",
     "nbsp here", 0},
    {"en-us",
     "bom\xef\xbb\xbf"
     "x",
     "bomx", 1},
    {"en-us",
     "private\xee\x80\x80"
     "use",
     "privateuse", 1},
    {"en-us", "ｆｕｌｌ ｗｉｄｔｈ", "full width", 0},
    {"en-us", "the ﬁrst", "the first", 0},
    {"en-us", "(see [note])", "(see (note))", 0},
    {"en-us", "well-known", "well-known", 0},
    {"en-us", "COVID-19", "COVID nineteen", 0},
    {"en-us", "MP3", "MP three", 0},
    {"en-us", "3D", "three D", 0},
    {"en-us", "4K video", "four K video", 0},
    {"en-us", "Room 101", "Room one hundred one", 0},
    {"en-us", "Flight 370", "Flight three hundred seventy", 0},
    {"en-us", "❤️ love", "love", 2},
    {"en-us", "→ next", "next", 1},
    {"en-us", "★★★", "", 3},
    {"en-us", "a|b", "a b", 1},
    {"fr", "Il a 3 pommes.", "Il a 3 pommes.", 0},
    {"fr", "« Bonjour »", "\" Bonjour \"", 0},
    {"es", "¿Qué tal? 😀", "¿Qué tal?", 1},
    {"fr", "Il a 50 % de réduction & un code", "Il a 50 pour cent de réduction et un code", 0},
    {"es", "5+3=8", "5 más 3 igual a 8", 0},
    {"it", "50% di sconto", "50 per cento di sconto", 0},
    {"pt-br", "a@b", "a arroba b", 0},
    {"hi", "50% छूट", "50 प्रतिशत छूट", 0},
    {"fr", "[note] α β", "(note)", 2},
    {"es", "precio: 20 € (aprox.)", "precio: 20 € (aprox.)", 0},
    {"fr", "a*b/c#d", "a b c d", 3},
    {"it", "Ж слово", "", 6},
    {"en-us", "late November, 1887, when", "late November, eighteen eighty seven, when", 0},
    {"en-us", "I met Dr.", "I met Doctor.", 0},
    {"en-us", "in May 1990 items", "in May nineteen ninety items", 0},
    {"en-us", "Version 2.0.1", "Version two point zero point one", 0},
    {"en-us", "50/50 chance", "fifty fifty chance", 0},
    {"en-us", "24/7 service", "twenty four seven service", 0},
    {"en-us", "3/4 cup", "three quarters cup", 0},
    {"en-us", "the 1920s–1930s", "the nineteen twenties to nineteen thirties", 0},
    {"en-us", "the 80s-90s", "the eighties to nineties", 0},
    {"en-us", "north–south", "north south", 0},
    {"en-us", "1-800-555-0199", "one, eight zero zero, five five five, zero one nine nine", 0},
    {"fr", "Eh bien... oui", "Eh bien… oui", 0},
    {"en-us", "no.....", "no…", 0},
    {"en-us", "King Henry VIII had six wives", "King Henry the eighth had six wives", 0},
    {"en-us", "after World War II ended", "after World War two ended", 0},
    {"en-us", "Chapter XIV", "Chapter fourteen", 0},
    {"en-us", "Pope John Paul II.", "Pope John Paul the second.", 0},
    {"en-us", "a MIX of CD and DVD", "a MIX of CD and DVD", 0},
    {"en-us", "Louis XVI", "Louis the sixteenth", 0},
};

static void test_table(void) {
    size_t n = sizeof cases / sizeof cases[0];
    KT_CHECK(n >= 150, "only %zu cases", n);
    for (size_t i = 0; i < n; i++) {
        const norm_case *c = &cases[i];
        koe_buf b = {0};
        size_t dropped = 99;
        koe_error err = {0};
        int rc = koe_text_normalize(c->in, strlen(c->in), c->lang, &b, &dropped, &err);
        KT_CHECK(rc == 0, "[%s] '%s': error %s", c->lang, c->in, err.msg);
        const char *got = b.data ? b.data : "";
        KT_CHECK(!strcmp(got, c->want), "[%s] '%s' -> '%s', want '%s'", c->lang, c->in, got,
                 c->want);
        KT_CHECK(dropped == c->dropped, "[%s] '%s': dropped %zu, want %zu", c->lang, c->in, dropped,
                 c->dropped);
        koe_buf_free(&b);
    }
}

/* What no normalized text may hold, whatever the input: control characters, emoji, runs of
 * spaces, or spaces at either end. */
static void test_output_is_clean(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        koe_buf b = {0};
        size_t dropped;
        koe_text_normalize(cases[i].in, strlen(cases[i].in), cases[i].lang, &b, &dropped, NULL);
        const char *s = b.data ? b.data : "";
        size_t n = b.len;
        KT_CHECK(koe_utf8_validate(s, n) == n, "'%s': output is not UTF-8", cases[i].in);
        KT_CHECK(!n || (s[0] != ' ' && s[n - 1] != ' '), "'%s': space at an end", cases[i].in);
        KT_CHECK(!strstr(s, "  "), "'%s': double space in '%s'", cases[i].in, s);
        for (size_t k = 0; k < n;) {
            uint32_t cp;
            int l = koe_utf8_decode(s + k, &cp);
            KT_CHECK(cp >= 0x20 && cp != 0x7F && !(cp >= 0x1F000 && cp <= 0x1FAFF),
                     "'%s': U+%04X left in the output", cases[i].in, (unsigned)cp);
            k += (size_t)(l > 0 ? l : 1);
        }
        koe_buf_free(&b);
    }
}

static void test_errors(void) {
    koe_buf b = {0};
    koe_error err = {0};
    size_t d;
    KT_CHECK(koe_text_normalize("a\xff", 2, "en-us", &b, &d, &err) == KOE_ERR_INVALID,
             "invalid UTF-8 must be refused");
    KT_CHECK(strstr(err.msg, "byte 1") != NULL, "message names the byte: %s", err.msg);
    KT_CHECK(koe_text_normalize("x", 1, "ja", &b, &d, &err) == KOE_ERR_UNSUPPORTED,
             "Japanese must be refused");
    KT_CHECK(koe_text_normalize("x", 1, "de", &b, &d, &err) == KOE_ERR_UNSUPPORTED,
             "an unknown language must be refused");
    KT_CHECK(koe_text_normalize("", 0, "en-us", &b, &d, &err) == 0 && b.len == 0,
             "empty text normalizes to nothing");
    koe_buf_free(&b);
}

/* Random mixtures of the characters the rules look at: never a crash (run under ASan/UBSan),
 * always clean UTF-8 out. */
static void test_fuzz(void) {
    static const char *const pieces[] = {"1",
                                         "2",
                                         "0",
                                         "9",
                                         "12",
                                         "12345678901234567890",
                                         "1999",
                                         "$",
                                         "\xe2\x82\xac",
                                         "\xc2\xa3",
                                         "\xc2\xa2",
                                         "%",
                                         ":",
                                         "/",
                                         "-",
                                         ".",
                                         ",",
                                         "'",
                                         "\"",
                                         "(",
                                         ")",
                                         "[",
                                         "@",
                                         "#",
                                         "&",
                                         "+",
                                         "=",
                                         "*",
                                         "|",
                                         "st",
                                         "nd",
                                         "th",
                                         "am",
                                         "pm",
                                         "km",
                                         "M",
                                         "k",
                                         "Dr",
                                         "St",
                                         "e.g",
                                         "www",
                                         "http://",
                                         ".com",
                                         "\xc2\xb0",
                                         "C",
                                         "\xc2\xbd",
                                         " ",
                                         " ",
                                         " ",
                                         "a",
                                         "Jan",
                                         "\xf0\x9f\x98\x80",
                                         "\xe2\x80\x94",
                                         "\xe2\x80\x93",
                                         "\xe2\x80\xa6",
                                         "_",
                                         "\t",
                                         "\xd0\x96"};
    unsigned long long st = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        char text[512];
        size_t n = 0;
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        int parts = (int)((st >> 33) % 40);
        for (int k = 0; k < parts; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            const char *p = pieces[(st >> 33) % (sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(p);
            if (n + l >= sizeof text) break;
            memcpy(text + n, p, l);
            n += l;
        }
        const char *lang = iter % 3 == 0 ? "en-gb" : "en-us";
        koe_buf b = {0};
        size_t dropped;
        koe_error err = {0};
        int rc = koe_text_normalize(text, n, lang, &b, &dropped, &err);
        KT_CHECK(rc == 0, "'%.*s': %s", (int)n, text, err.msg);
        KT_CHECK(koe_utf8_validate(b.data ? b.data : "", b.len) == b.len, "'%.*s': bad UTF-8 out",
                 (int)n, text);
        koe_buf_free(&b);
    }
}

int main(void) {
    kt_run("fuzz", test_fuzz);
    kt_run("table", test_table);
    kt_run("output_is_clean", test_output_is_clean);
    kt_run("errors", test_errors);
    return kt_finish();
}
