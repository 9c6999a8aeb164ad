/* SHA-256 against the FIPS 180-4 / NIST example vectors, and streaming in odd pieces. */
#include "harness.h"
#include "koe/sha256.h"

#include <string.h>

static void hash(const void *p, size_t n, char hex[65]) {
    koe_sha256 s;
    unsigned char d[32];
    koe_sha256_init(&s);
    koe_sha256_update(&s, p, n);
    koe_sha256_final(&s, d);
    koe_sha256_hex(d, hex);
}

static void test_vectors(void) {
    char hex[65];
    hash("", 0, hex);
    KT_EXPECT(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    hash("abc", 3, hex);
    KT_EXPECT(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hash(two, strlen(two), hex);
    KT_EXPECT(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
}

static void test_million_a_in_pieces(void) {
    static char a[1000];
    memset(a, 'a', sizeof a);
    koe_sha256 s;
    unsigned char d[32];
    char hex[65];
    koe_sha256_init(&s);
    /* 1,000,000 'a' in uneven pieces, so every buffering path runs. */
    size_t done = 0, step = 1;
    while (done < 1000000) {
        size_t n = step < 1000000 - done ? step : 1000000 - done;
        if (n > sizeof a) n = sizeof a;
        koe_sha256_update(&s, a, n);
        done += n;
        step = step * 7 % 997 + 1;
    }
    koe_sha256_final(&s, d);
    koe_sha256_hex(d, hex);
    KT_EXPECT(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

int main(void) {
    kt_run("nist vectors", test_vectors);
    kt_run("million a in pieces", test_million_a_in_pieces);
    return kt_finish();
}
