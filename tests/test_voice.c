/* Voice packs: fake packs in a temp folder (exact arithmetic of blends and rows, bad files,
 * bad specs, closest-match errors), and the real kokoro-js packs when make deps fetched them. */
#include "harness.h"
#include "koe/voice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

/* Pack whose every value is base + row (so rows and blends are checkable exactly). */
static void write_pack(const char *name, float base, size_t bytes) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    float row[KOE_VOICE_DIM];
    size_t written = 0;
    for (int r = 0; r < KOE_VOICE_ROWS && written < bytes; r++) {
        for (int k = 0; k < KOE_VOICE_DIM; k++) row[k] = base + (float)r;
        size_t n = bytes - written < sizeof row ? bytes - written : sizeof row;
        fwrite(row, 1, n, f);
        written += n;
    }
    fclose(f);
}

static void test_listing_and_rows(void) {
    koe_error err = {0};
    koe_voices *v = koe_voices_open(dir, &err);
    KT_CHECK(v != NULL, "%s", err.msg);
    if (!v) return;
    KT_CHECK(koe_voices_count(v) == 3,
             "3 packs listed (the README.txt and odd names skipped), got %zu", koe_voices_count(v));
    KT_EXPECT(!strcmp(koe_voices_name(v, 0), "af_test"));
    KT_EXPECT(!strcmp(koe_voices_lang(v, 0), "en-us") &&
              !strcmp(koe_voices_gender(v, 0), "female"));
    KT_EXPECT(!strcmp(koe_voices_lang(v, 1), "en-gb") && !strcmp(koe_voices_gender(v, 1), "male"));
    KT_EXPECT(!strcmp(koe_voices_lang(v, 2), "ja"));
    koe_voice *a = koe_voice_get(v, "af_test", &err);
    KT_CHECK(a != NULL, "%s", err.msg);
    if (a) {
        KT_EXPECT(koe_voice_style(a, 1)[0] == 10.0f);      /* row 0 */
        KT_EXPECT(koe_voice_style(a, 100)[255] == 109.0f); /* row 99 */
        KT_EXPECT(koe_voice_style(a, 510)[0] == 519.0f);
        KT_EXPECT(koe_voice_style(a, 9999)[0] == 519.0f); /* clamped */
        KT_EXPECT(koe_voice_style(a, 0)[0] == 10.0f);
        KT_EXPECT(!strcmp(koe_voice_lang(a), "en-us"));
    }
    koe_voice *b = koe_voice_get(v, "af_test:3+bm_test:1", &err);
    KT_CHECK(b != NULL, "%s", err.msg);
    if (b) {
        /* 0.75 * (10 + r) + 0.25 * (20 + r) = 12.5 + r */
        KT_CHECK(koe_voice_style(b, 5)[7] == 16.5f, "blend weights normalized: %g",
                 koe_voice_style(b, 5)[7]);
        KT_EXPECT(strstr(koe_voice_spec(b), "af_test:0.750") != NULL);
    }
    koe_voice *c = koe_voice_get(v, "af_test+bm_test", &err);
    KT_EXPECT(c && koe_voice_style(c, 1)[0] == 15.0f);
    koe_voice_free(a);
    koe_voice_free(b);
    koe_voice_free(c);
    koe_voices_close(v);
}

static void test_bad_specs(void) {
    koe_error err = {0};
    koe_voices *v = koe_voices_open(dir, &err);
    if (!v) return;
    struct {
        const char *spec, *needle;
    } bad[] = {{"af_tset", "closest: af_test"},  {"../etc/passwd", "not a voice name"},
               {"/tmp/x", "not a voice name"},   {"", "not a voice name"},
               {"af_test:", "positive number"},  {"af_test:-1+bm_test", "positive number"},
               {"af_test:0", "positive number"}, {"af_test:abc", "positive number"},
               {"af_test+", "not a voice name"}, {"af_test*2", "not a voice name"},
               {"af_test:1x", "unexpected"},     {"AF_TEST", "not a voice name"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        koe_voice *x = koe_voice_get(v, bad[i].spec, &err);
        KT_CHECK(x == NULL && strstr(err.msg, bad[i].needle), "'%s' refused naming '%s' (got: %s)",
                 bad[i].spec, bad[i].needle, err.msg);
        koe_voice_free(x);
    }
    koe_voices_close(v);
}

static void test_bad_folders(void) {
    koe_error err = {0};
    KT_EXPECT(koe_voices_open("/nonexistent/voices", &err) == NULL && strstr(err.msg, "make deps"));
    char sub[300];
    snprintf(sub, sizeof sub, "%s/empty", dir);
    mkdir(sub, 0700);
    KT_EXPECT(koe_voices_open(sub, &err) == NULL && strstr(err.msg, "no voice packs"));
    rmdir(sub);
    write_pack("af_short.bin", 0, 1000);
    KT_CHECK(koe_voices_open(dir, &err) == NULL && strstr(err.msg, "af_short.bin"),
             "a truncated pack is named: %s", err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/af_short.bin", dir);
    unlink(path);
}

static void test_real_voices(void) {
    char real[1024];
    snprintf(real, sizeof real, "%s/voices", kt_env("KOE_DATA_DIR", "data"));
    if (access(real, R_OK)) {
        printf("  (no %s: real voices skipped)\n", real);
        return;
    }
    koe_error err = {0};
    koe_voices *v = koe_voices_open(real, &err);
    KT_CHECK(v && koe_voices_count(v) == 54, "54 kokoro-js voices: %s", err.msg);
    if (!v) return;
    KT_EXPECT(koe_voices_find(v, "af_heart") >= 0 && koe_voices_find(v, "bm_george") >= 0);
    koe_voice *h = koe_voice_get(v, "af_heart", &err);
    KT_CHECK(h != NULL, "%s", err.msg);
    if (h) {
        double mag = 0;
        const float *s = koe_voice_style(h, 40);
        for (int k = 0; k < KOE_VOICE_DIM; k++) mag += (double)s[k] * s[k];
        KT_CHECK(mag > 0.1 && mag < 1e4, "af_heart's style row is a plausible vector (|s|^2 = %g)",
                 mag);
    }
    koe_voice *x = koe_voice_get(v, "af_bela", &err);
    KT_CHECK(!x && strstr(err.msg, "af_bella"), "af_bela suggests af_bella: %s", err.msg);
    koe_voice_free(h);
    koe_voices_close(v);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/koe-test-voices-%d", (int)getpid());
    mkdir(dir, 0700);
    write_pack("af_test.bin", 10, 522240);
    write_pack("bm_test.bin", 20, 522240);
    write_pack("jf_test.bin", 30, 522240);
    write_pack("Bad-Name.bin", 0, 522240);
    write_pack("README.txt", 0, 10);
    kt_run("listing, rows and blends", test_listing_and_rows);
    kt_run("bad specs", test_bad_specs);
    kt_run("bad folders and packs", test_bad_folders);
    kt_run("real kokoro-js voices", test_real_voices);
    const char *files[] = {"af_test.bin", "bm_test.bin", "jf_test.bin", "Bad-Name.bin",
                           "README.txt"};
    for (size_t i = 0; i < 5; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return kt_finish();
}
