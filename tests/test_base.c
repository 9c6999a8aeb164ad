#include "harness.h"
#include "koe/base.h"
#include "koe/error.h"

#include <string.h>

static void test_utf8(void) {
    const char ok[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80";
    KT_EXPECT(koe_utf8_validate(ok, sizeof ok - 1) == sizeof ok - 1);
    KT_CHECK(koe_utf8_validate("ab\xc0\xafz", 5) == 2, "overlong rejected");
    KT_CHECK(koe_utf8_validate("ab\xed\xa0\x80", 5) == 2, "surrogate rejected");
    KT_CHECK(koe_utf8_validate("\xf4\x90\x80\x80", 4) == 0, "above U+10FFFF rejected");
    KT_CHECK(koe_utf8_validate("x\xe2\x82", 3) == 1, "truncated sequence rejected");
    uint32_t cps[] = {0x41, 0xE9, 0x20AC, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char b[4];
        uint32_t back = 0;
        int n = koe_utf8_encode(cps[i], b);
        KT_CHECK(koe_utf8_validate(b, (size_t)n) == (size_t)n, "encoded U+%X is valid", cps[i]);
        KT_CHECK(koe_utf8_decode(b, &back) == n && back == cps[i], "round trip U+%X", cps[i]);
    }
}

static void test_buf(void) {
    koe_buf b = {0};
    for (int i = 0; i < 1000; i++) KT_EXPECT(koe_buf_printf(&b, "%d,", i) == 0);
    KT_EXPECT(b.len == strlen(b.data));
    KT_EXPECT(!strncmp(b.data, "0,1,2,", 6));
    KT_EXPECT(!strcmp(b.data + b.len - 4, "999,"));
    koe_buf_free(&b);
    KT_EXPECT(b.data == NULL && b.len == 0);
}

static void test_error(void) {
    koe_error e;
    koe_error_clear(&e);
    KT_EXPECT(koe_error_set(&e, KOE_ERR_FORMAT, "bad %s", "thing") == KOE_ERR_FORMAT);
    koe_error_prefix(&e, "loading %d: ", 7);
    KT_EXPECT(!strcmp(e.msg, "loading 7: bad thing"));
    KT_EXPECT(!strcmp(koe_code_name(KOE_ERR_FORMAT), "format"));
    KT_EXPECT(koe_error_set(NULL, KOE_ERR_IO, "ignored") == KOE_ERR_IO);
}

int main(void) {
    kt_run("utf8", test_utf8);
    kt_run("buf", test_buf);
    kt_run("error", test_error);
    return kt_finish();
}
