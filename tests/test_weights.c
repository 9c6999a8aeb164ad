/* The checkpoint readers: the committed tiny .pth read tensor by tensor against its manifest
 * (and against the raw reference blob when ../shared/vectors is present), safetensors with
 * every dtype, crafted hostile pickles, and hundreds of truncated and bit-flipped files that
 * must give clean errors, never crashes. */
#include "harness.h"
#include "koe/weights.h"
#include "model/weights_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tiny_pth[1024], tiny_manifest[1024], shared_bin[1024], shared_manifest[1024];

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static char *temp_path(const char *suffix) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "/tmp/koe-test-weights-%d-%d%s", (int)getpid(), k, suffix);
    return p;
}

static void test_tiny_pth_matches_manifest(void) {
    koe_error err = {0};
    koe_weights *w = koe_weights_open(tiny_pth, &err);
    KT_CHECK(w != NULL, "open %s: %s", tiny_pth, err.msg);
    if (!w) return;
    size_t mlen;
    char *mtext = kt_read_file(tiny_manifest, &mlen);
    KT_CHECK(mtext != NULL, "read %s", tiny_manifest);
    cJSON *m = mtext ? cJSON_Parse(mtext) : NULL;
    KT_EXPECT(cJSON_IsArray(m));
    KT_CHECK((size_t)cJSON_GetArraySize(m) == koe_weights_count(w),
             "%d tensors in the manifest, %zu read", cJSON_GetArraySize(m), koe_weights_count(w));
    size_t mismatches = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, m) {
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        const char *dt = cJSON_GetObjectItem(e, "dtype")->valuestring;
        const koe_tensor *t = koe_weights_find(w, name);
        if (!t) {
            KT_CHECK(0, "tensor %s missing", name);
            continue;
        }
        cJSON *shape = cJSON_GetObjectItem(e, "shape");
        int ok =
            t->ndim == cJSON_GetArraySize(shape) && (t->dtype == KOE_DT_I64) == !strcmp(dt, "i64");
        for (int d = 0; ok && d < t->ndim; d++)
            ok = t->shape[d] == (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble;
        if (!ok) mismatches++;
    }
    KT_CHECK(mismatches == 0, "%zu tensors differ in dtype or shape", mismatches);
    KT_CHECK(koe_weights_first_unused(w, NULL) == NULL, "every tensor was found");
    cJSON_Delete(m);
    free(mtext);
    koe_weights_close(w);
}

static void test_tiny_pth_equals_blob(void) {
    if (access(shared_bin, R_OK)) {
        printf("  (no %s: byte comparison skipped)\n", shared_bin);
        return;
    }
    koe_error err = {0};
    koe_weights *w = koe_weights_open(tiny_pth, &err);
    size_t blen, mlen;
    unsigned char *blob = kt_read_file(shared_bin, &blen);
    char *mtext = kt_read_file(shared_manifest, &mlen);
    cJSON *m = mtext ? cJSON_Parse(mtext) : NULL;
    KT_EXPECT(w && blob && m);
    size_t compared = 0, differ = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, m) {
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        size_t off = (size_t)cJSON_GetObjectItem(e, "offset")->valuedouble;
        size_t n = (size_t)cJSON_GetObjectItem(e, "nbytes")->valuedouble;
        const koe_tensor *t = w ? koe_weights_find(w, name) : NULL;
        if (!t || off + n > blen || t->nbytes != n || memcmp(t->data, blob + off, n)) differ++;
        compared++;
    }
    KT_CHECK(compared > 600 && differ == 0, "%zu of %zu tensors differ from the blob", differ,
             compared);
    cJSON_Delete(m);
    free(mtext);
    free(blob);
    koe_weights_close(w);
}

/* Every tensor of b equals a's (names, dtypes, shapes, bytes). */
static size_t count_differences(const koe_weights *a, const koe_weights *b) {
    size_t differ = koe_weights_count(a) != koe_weights_count(b);
    for (size_t i = 0; i < koe_weights_count(a); i++) {
        const koe_tensor *x = koe_weights_at(a, i), *y = koe_weights_find(b, x->name);
        differ += !y || y->dtype != x->dtype || y->ndim != x->ndim || y->nbytes != x->nbytes ||
                  memcmp(y->shape, x->shape, sizeof x->shape) ||
                  memcmp(y->data, x->data, x->nbytes);
    }
    return differ;
}

/* The raw blob + manifest form: one built here from the tiny .pth and the committed manifest,
 * the reference blob itself when present, and manifests that lie about the blob. */
static void test_raw_blob(void) {
    koe_error err = {0};
    koe_weights *pth = koe_weights_open(tiny_pth, &err);
    KT_CHECK(pth != NULL, "%s", err.msg);
    size_t mlen;
    char *mtext = kt_read_file(tiny_manifest, &mlen);
    cJSON *m = mtext ? cJSON_Parse(mtext) : NULL;
    if (!pth || !m) {
        KT_CHECK(0, "tiny .pth and manifest readable");
        goto done;
    }
    size_t blen = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, m) {
        size_t end = (size_t)(cJSON_GetObjectItem(e, "offset")->valuedouble +
                              cJSON_GetObjectItem(e, "nbytes")->valuedouble);
        if (end > blen) blen = end;
    }
    unsigned char *blob = calloc(1, blen);
    cJSON_ArrayForEach(e, m) {
        const koe_tensor *t = koe_weights_find(pth, cJSON_GetObjectItem(e, "name")->valuestring);
        if (t)
            memcpy(blob + (size_t)cJSON_GetObjectItem(e, "offset")->valuedouble, t->data,
                   t->nbytes);
    }
    char bin[300], man[300];
    snprintf(bin, sizeof bin, "/tmp/koe-test-raw-%d.bin", (int)getpid());
    snprintf(man, sizeof man, "/tmp/koe-test-raw-%d.manifest.json", (int)getpid());
    KT_EXPECT(write_file(bin, blob, blen) == 0 && write_file(man, mtext, mlen) == 0);
    koe_weights *raw = koe_weights_open(bin, &err);
    KT_CHECK(raw != NULL, "blob + manifest: %s", err.msg);
    if (raw) KT_CHECK(count_differences(pth, raw) == 0, "the blob's tensors equal the .pth's");
    koe_weights_close(raw);
    /* the reference vectors' own blob */
    if (!access(shared_bin, R_OK)) {
        raw = koe_weights_open(shared_bin, &err);
        KT_CHECK(raw && count_differences(pth, raw) == 0, "%s equals the .pth: %s", shared_bin,
                 raw ? "" : err.msg);
        koe_weights_close(raw);
    }
    /* a manifest that reaches past the blob, one that is not JSON, one with a bad dtype */
    write_file(bin, blob, blen - 1);
    raw = koe_weights_open(bin, &err);
    KT_CHECK(!raw && strstr(err.msg, "do not fit the blob"), "blob one byte short: %s", err.msg);
    koe_weights_close(raw);
    write_file(man, "[{\"name\": \"x\",", 15);
    raw = koe_weights_open(bin, &err);
    KT_CHECK(!raw && strstr(err.msg, "not a JSON array"), "broken manifest: %s", err.msg);
    koe_weights_close(raw);
    const char *c64 = "[{\"name\":\"x\",\"dtype\":\"c64\",\"shape\":[1],\"offset\":0,"
                      "\"nbytes\":8}]";
    write_file(man, c64, strlen(c64));
    raw = koe_weights_open(bin, &err);
    KT_CHECK(!raw && strstr(err.msg, "c64"), "unknown dtype named: %s", err.msg);
    koe_weights_close(raw);
    unlink(bin);
    unlink(man);
    free(blob);
done:
    cJSON_Delete(m);
    free(mtext);
    koe_weights_close(pth);
}

static void test_lookup_and_unused(void) {
    koe_error err = {0};
    koe_weights *w = koe_weights_open(tiny_pth, &err);
    KT_CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    int nd = 0;
    int64_t sh[4];
    const float *v = koe_weights_lookup(w, "decoder.generator.ups.0.weight_v", &nd, sh);
    KT_CHECK(v && nd == 3 && sh[2] == 20, "ups.0.weight_v as float [.,.,20]");
    KT_EXPECT(koe_weights_lookup(w, "bert.embeddings.position_ids", &nd, sh) == NULL);
    KT_EXPECT(koe_weights_lookup(w, "no.such.tensor", &nd, sh) == NULL);
    const char *unused = koe_weights_first_unused(w, NULL);
    KT_CHECK(unused && strcmp(unused, "decoder.generator.ups.0.weight_v"), "an untouched tensor");
    for (size_t i = 0; i < koe_weights_count(w); i++) {
        const char *n = koe_weights_at(w, i)->name;
        if (strncmp(n, "bert.pooler.", 12)) koe_weights_find(w, n);
    }
    const char *ignore[] = {"bert.pooler.", NULL};
    KT_EXPECT(koe_weights_first_unused(w, ignore) == NULL);
    unused = koe_weights_first_unused(w, NULL);
    KT_CHECK(unused && !strncmp(unused, "bert.pooler.", 12), "the pooler is reported unused");
    koe_weights_close(w);
}

/* A safetensors file with one tensor of each dtype. */
static void test_safetensors_dtypes(void) {
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a.f32\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                      "\"b.f16\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                      "\"c.bf16\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[22,24]},"
                      "\"d.i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[24,32]},"
                      "\"e.f16\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[32,40]}}";
    size_t hl = strlen(hdr), n = 8 + hl + 40;
    unsigned char *f = calloc(1, n);
    for (int i = 0; i < 8; i++) f[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(f + 8, hdr, hl);
    unsigned char *d = f + 8 + hl;
    float a[4] = {1, -2, 3.5f, 0.25f};
    memcpy(d, a, 16);
    uint16_t h[3] = {0x3C00, 0xC000, 0x3555}; /* 1, -2, ~0.333 */
    memcpy(d + 16, h, 6);
    uint16_t bf = 0x4049; /* 3.140625 */
    memcpy(d + 22, &bf, 2);
    int64_t i64 = 7;
    memcpy(d + 24, &i64, 8);
    /* the smallest subnormal, infinity, -0, the largest finite half */
    uint16_t h2[4] = {0x0001, 0x7C00, 0x8000, 0x7BFF};
    memcpy(d + 32, h2, 8);
    const char *path = temp_path(".safetensors");
    KT_EXPECT(write_file(path, f, n) == 0);
    koe_error err = {0};
    koe_weights *w = koe_weights_open(path, &err);
    KT_CHECK(w != NULL, "%s", err.msg);
    if (w) {
        int nd;
        int64_t sh[4];
        const float *x = koe_weights_lookup(w, "a.f32", &nd, sh);
        KT_EXPECT(x && nd == 2 && x[2] == 3.5f);
        x = koe_weights_lookup(w, "b.f16", &nd, sh);
        KT_EXPECT(x && x[0] == 1.0f && x[1] == -2.0f && x[2] > 0.333f && x[2] < 0.3334f);
        x = koe_weights_lookup(w, "c.bf16", &nd, sh);
        KT_EXPECT(x && x[0] == 3.140625f);
        x = koe_weights_lookup(w, "e.f16", &nd, sh);
        KT_EXPECT(x && nd == 2 && x[0] == ldexpf(1.0f, -24) && isinf(x[1]) && x[1] > 0 &&
                  x[2] == 0.0f && signbit(x[2]) && x[3] == 65504.0f);
        const koe_tensor *t = koe_weights_find(w, "d.i64");
        KT_EXPECT(t && t->dtype == KOE_DT_I64 && *(const int64_t *)t->data == 7);
        koe_weights_close(w);
    }
    /* A header of 0x4B50 bytes: the file starts with "PK" like a zip, and is still read as
     * safetensors. */
    {
        size_t hl2 = 0x4B50, n2 = 8 + hl2 + 40;
        unsigned char *g = calloc(1, n2);
        for (int i = 0; i < 8; i++) g[i] = (unsigned char)((uint64_t)hl2 >> (8 * i));
        memset(g + 8, ' ', hl2);
        memcpy(g + 8, hdr, hl);
        memcpy(g + 8 + hl2, d, 40);
        KT_EXPECT(g[0] == 'P' && g[1] == 'K' && write_file(path, g, n2) == 0);
        w = koe_weights_open(path, &err);
        KT_CHECK(w && koe_weights_count(w) == 5, "safetensors starting with PK: %s",
                 w ? "" : err.msg);
        koe_weights_close(w);
        free(g);
    }
    /* An offset past the end of the data is refused. */
    char *bad = strdup(hdr);
    char *pos = strstr(bad, "[24,32]");
    memcpy(pos, "[24,40]", 7);
    memcpy(f + 8, bad, hl);
    KT_EXPECT(write_file(path, f, n) == 0);
    w = koe_weights_open(path, &err);
    KT_CHECK(w == NULL && strstr(err.msg, "d.i64"), "bad offsets named: %s", err.msg);
    unlink(path);
    free(bad);
    free(f);
}

/* A minimal zip of stored entries, for crafted checkpoints; with zip64 set, every size and
 * offset the format allows is moved to the zip64 records (as a file over 4 GiB would have it). */
static unsigned char *zp;
static size_t zpos;
static void put(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) zp[zpos++] = (unsigned char)(v >> (8 * i));
}
static void put_bytes(const void *p, size_t n) {
    memcpy(zp + zpos, p, n);
    zpos += n;
}

static size_t make_zip_ex(unsigned char *out, const char *const *names,
                          const unsigned char *const *data, const size_t *sizes, int n, int zip64) {
    size_t offs[8];
    zp = out;
    zpos = 0;
    for (int i = 0; i < n; i++) {
        offs[i] = zpos;
        put(0x04034b50u, 4);
        put(20, 2), put(0, 2), put(0, 2), put(0, 2), put(0, 2); /* version, flags, method, time */
        put(0, 4), put(sizes[i], 4), put(sizes[i], 4);          /* crc, sizes */
        put(strlen(names[i]), 2), put(0, 2);
        put_bytes(names[i], strlen(names[i]));
        put_bytes(data[i], sizes[i]);
    }
    size_t cd = zpos;
    for (int i = 0; i < n; i++) {
        put(0x02014b50u, 4);
        put(45, 2), put(45, 2), put(0, 2), put(0, 2), put(0, 2), put(0, 2);
        put(0, 4);
        put(zip64 ? 0xFFFFFFFFu : sizes[i], 4), put(zip64 ? 0xFFFFFFFFu : sizes[i], 4);
        put(strlen(names[i]), 2), put(zip64 ? 4 + 24 : 0, 2), put(0, 2);
        put(0, 2), put(0, 2), put(0, 4);
        put(zip64 ? 0xFFFFFFFFu : offs[i], 4);
        put_bytes(names[i], strlen(names[i]));
        if (zip64) { /* extra field 1: uncompressed size, compressed size, local offset */
            put(1, 2), put(24, 2);
            put(sizes[i], 8), put(sizes[i], 8), put(offs[i], 8);
        }
    }
    size_t cds = zpos - cd;
    if (zip64) {
        size_t e64 = zpos;
        put(0x06064b50u, 4), put(44, 8), put(45, 2), put(45, 2), put(0, 4), put(0, 4);
        put((uint64_t)n, 8), put((uint64_t)n, 8), put(cds, 8), put(cd, 8);
        put(0x07064b50u, 4), put(0, 4), put(e64, 8), put(1, 4); /* locator */
    }
    put(0x06054b50u, 4), put(0, 2), put(0, 2);
    put(zip64 ? 0xFFFF : (unsigned)n, 2), put(zip64 ? 0xFFFF : (unsigned)n, 2);
    put(zip64 ? 0xFFFFFFFFu : cds, 4), put(zip64 ? 0xFFFFFFFFu : cd, 4), put(0, 2);
    return zpos;
}

static size_t make_zip(unsigned char *out, const char *const *names,
                       const unsigned char *const *data, const size_t *sizes, int n) {
    return make_zip_ex(out, names, data, sizes, n, 0);
}

/* The pickle torch.save writes for {'t': tensor} with the given view of a FloatStorage '0' of
 * `storage_n` elements (integers as 8-byte LONG1, as pickle does for large values). */
static size_t tensor_pickle(unsigned char *out, int64_t storage_n, int64_t offset, int ndim,
                            const int64_t *shape, const int64_t *stride) {
    zp = out;
    zpos = 0;
#define STR(lit) (put('X', 1), put(sizeof lit - 1, 4), put_bytes(lit, sizeof lit - 1))
#define INT(v)   (put(0x8a, 1), put(8, 1), put((uint64_t)(v), 8))
    put_bytes("\x80\x02}", 3);
    STR("t");
    put_bytes("ctorch._utils\n_rebuild_tensor_v2\n((", 35);
    STR("storage");
    put_bytes("ctorch\nFloatStorage\n", 20);
    STR("0");
    STR("cpu");
    INT(storage_n);
    put_bytes("tQ", 2);
    INT(offset);
    put('(', 1);
    for (int d = 0; d < ndim; d++) INT(shape[d]);
    put_bytes("t(", 2);
    for (int d = 0; d < ndim; d++) INT(stride[d]);
    put_bytes("t\x89", 2);
    put_bytes("ccollections\nOrderedDict\n)RtRs.", 32);
#undef STR
#undef INT
    return zpos;
}

/* Writes a checkpoint of that one tensor over storage floats 0, 1, 2, ... and opens it. */
static koe_weights *open_view(int64_t storage_n, int64_t offset, int ndim, const int64_t *shape,
                              const int64_t *stride, int zip64, koe_error *err) {
    static unsigned char pkl[1024], zip[8192];
    float storage[64];
    for (int i = 0; i < 64; i++) storage[i] = (float)i;
    size_t pl = tensor_pickle(pkl, storage_n, offset, ndim, shape, stride);
    /* The storage first and an odd top folder: neither order nor folder name may matter. */
    const char *names[] = {"some name/data/0", "some name/data.pkl", "some name/version"};
    const unsigned char *data[] = {(const unsigned char *)storage, pkl,
                                   (const unsigned char *)"3\n"};
    size_t sizes[] = {(size_t)(storage_n < 64 ? storage_n : 64) * 4, pl, 2};
    size_t zl = make_zip_ex(zip, names, data, sizes, 3, zip64);
    const char *path = temp_path(".pth");
    KT_EXPECT(write_file(path, zip, zl) == 0);
    koe_weights *w = koe_weights_open(path, err);
    unlink(path);
    return w;
}

/* Views: storage offsets and strides are honoured (a transposed view is gathered), contiguous
 * views stay in place, zip64 archives read the same, and views that overflow or reach past
 * their storage are refused. */
static void test_views_and_zip64(void) {
    koe_error err = {0};
    for (int z = 0; z < 2; z++) {
        /* t[i][j] = storage[1 + i + 3j]: shape (3, 2), stride (1, 3), offset 1 */
        koe_weights *w = open_view(12, 1, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3}, z, &err);
        KT_CHECK(w != NULL, "strided view%s: %s", z ? " (zip64)" : "", err.msg);
        if (w) {
            int nd;
            int64_t sh[4];
            const float *x = koe_weights_lookup(w, "t", &nd, sh);
            int ok = x && nd == 2 && sh[0] == 3 && sh[1] == 2;
            for (int i = 0; ok && i < 3; i++)
                for (int j = 0; j < 2; j++) ok &= x[i * 2 + j] == (float)(1 + i + 3 * j);
            KT_CHECK(ok, "transposed view gathered row-major%s", z ? " (zip64)" : "");
            koe_weights_close(w);
        }
        /* contiguous with offset 2: shape (2, 3) stride (3, 1); size-1 dims' strides are free */
        w = open_view(12, 2, 3, (int64_t[]){2, 1, 3}, (int64_t[]){3, 99, 1}, z, &err);
        KT_CHECK(w != NULL, "contiguous view: %s", err.msg);
        if (w) {
            const koe_tensor *t = koe_weights_find(w, "t");
            const float *x = t ? t->data : NULL;
            KT_EXPECT(x && t->nbytes == 24 && x[0] == 2.0f && x[5] == 7.0f);
            koe_weights_close(w);
        }
    }
    struct {
        const char *what;
        int64_t n, off;
        int ndim;
        int64_t shape[2], stride[2];
        const char *needle;
    } bad[] = {
        {"offset past the storage", 12, 13, 1, {0}, {1}, "offset past"},
        {"one element too many", 12, 0, 2, {3, 5}, {4, 1}, "past its storage"},
        {"stride product overflows",
         12,
         0,
         2,
         {(int64_t)1 << 33, 2},
         {(int64_t)1 << 33, 1},
         "absurd"},
        {"sum wraps around",
         12,
         0,
         2,
         {((int64_t)1 << 62) + 1, 3},
         {2, (int64_t)1 << 62},
         "absurd"},
        {"broadcast to terabytes",
         12,
         0,
         2,
         {(int64_t)1 << 30, (int64_t)1 << 30},
         {0, 0},
         "larger than the file"},
        {"element count wraps",
         12,
         0,
         2,
         {(int64_t)1 << 32, (int64_t)1 << 32},
         {0, 0},
         "larger than the file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        koe_weights *w =
            open_view(bad[i].n, bad[i].off, bad[i].ndim, bad[i].shape, bad[i].stride, 0, &err);
        KT_CHECK(w == NULL && strstr(err.msg, bad[i].needle), "%s: refused naming '%s' (got: %s)",
                 bad[i].what, bad[i].needle, w ? "opened" : err.msg);
        koe_weights_close(w);
    }
}

static void expect_pickle_error(const char *what, const unsigned char *pkl, size_t n,
                                const char *needle) {
    static unsigned char zip[1 << 17];
    const char *names[] = {"ckpt/data.pkl", "ckpt/data/0"};
    static const unsigned char storage[16];
    const unsigned char *data[] = {pkl, storage};
    size_t sizes[] = {n, sizeof storage};
    size_t zl = make_zip(zip, names, data, sizes, 2);
    const char *path = temp_path(".pth");
    KT_EXPECT(write_file(path, zip, zl) == 0);
    koe_error err = {0};
    koe_weights *w = koe_weights_open(path, &err);
    KT_CHECK(w == NULL && strstr(err.msg, needle), "%s: refused naming '%s' (got: %s)", what,
             needle, err.msg);
    koe_weights_close(w);
    unlink(path);
}

static void test_hostile_pickles(void) {
    /* {'x': os.system('echo')}: GLOBAL of a forbidden callable */
    static const unsigned char sys_call[] =
        "\x80\x02}q\x00X\x01\x00\x00\x00xcos\nsystem\nX\x04\x00\x00\x00echo\x85R.";
    expect_pickle_error("os.system", sys_call, sizeof sys_call - 1, "os.system");
    static const unsigned char builtins[] = "\x80\x02"
                                            "cbuiltins\neval\n.";
    expect_pickle_error("builtins.eval", builtins, sizeof builtins - 1, "builtins.eval");
    static const unsigned char unknown_op[] = "\x80\x02}\x94.";
    expect_pickle_error("MEMOIZE opcode", unknown_op, sizeof unknown_op - 1, "0x94");
    static const unsigned char huge_str[] = "\x80\x02X\xff\xff\xff\x7f"
                                            "abc";
    expect_pickle_error("huge string", huge_str, sizeof huge_str - 1, "truncated");
    /* a storage type called as a function */
    static const unsigned char call_storage[] = "\x80\x02"
                                                "ctorch\nFloatStorage\n)R.";
    expect_pickle_error("REDUCE of a storage type", call_storage, sizeof call_storage - 1,
                        "torch.FloatStorage");
    static const unsigned char huge_memo[] = "\x80\x02}r\xff\xff\xff\xff.";
    expect_pickle_error("memo index 2^32-1", huge_memo, sizeof huge_memo - 1, "memo index");
    static const unsigned char huge_get[] = "\x80\x02}q\x00j\xff\xff\xff\x7f.";
    expect_pickle_error("LONG_BINGET far away", huge_get, sizeof huge_get - 1, "unset memo");
    static unsigned char marks[70003];
    marks[0] = 0x80, marks[1] = 2;
    memset(marks + 2, '(', sizeof marks - 3);
    marks[sizeof marks - 1] = '.';
    expect_pickle_error("70,000 MARKs", marks, sizeof marks, "deeper than");
    static const unsigned char wide_int[] = "\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.";
    expect_pickle_error("9-byte integer", wide_int, sizeof wide_int - 1, "too large");
    static const unsigned char no_stop[] = "\x80\x02}";
    expect_pickle_error("no STOP", no_stop, sizeof no_stop - 1, "STOP");
    static const unsigned char bad_get[] = "\x80\x02h\x05.";
    expect_pickle_error("unset memo", bad_get, sizeof bad_get - 1, "memo");
    /* A tensor whose view reaches past its 4-element storage:
     * {'t': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 4), 2, (4,), (1,), False,
     * OrderedDict())} */
    static const unsigned char past[] =
        "\x80\x02}X\x01\x00\x00\x00t"
        "ctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"
        "0X\x03\x00\x00\x00"
        "cpuK\x04tQ"
        "K\x02K\x04\x85K\x01\x85\x89"
        "ccollections\nOrderedDict\n)Rt"
        "Rs.";
    expect_pickle_error("view past storage", past, sizeof past - 1, "past its storage");
    static const unsigned char more[] =
        "\x80\x02}X\x01\x00\x00\x00t"
        "ctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"
        "0X\x03\x00\x00\x00"
        "cpuK\x09tQ"
        "K\x00K\x09\x85K\x01\x85\x89"
        "ccollections\nOrderedDict\n)Rt"
        "Rs.";
    expect_pickle_error("storage shorter than announced", more, sizeof more - 1, "announced");
}

/* Truncations and bit flips of a valid file: each open either fails with a message or succeeds
 * and then every byte of every tensor is readable (this test runs under ASan in CI). A third of
 * the variants are truncated, a third have flips in [lo, hi) (the structures: central directory
 * or pickle, safetensors header), a third anywhere. */
static void corrupt_variants(const char *what, const unsigned char *orig, size_t len,
                             const char *suffix, size_t lo, size_t hi, int variants) {
    unsigned char *buf = malloc(len);
    const char *path = temp_path(suffix);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int errors = 0, ok = 0, silent = 0;
    for (int k = 0; k < variants; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(buf, orig, len);
        size_t n = len;
        if (k % 3 == 0) {
            n = (size_t)(x % len);
        } else {
            for (int f = 0; f < 1 + k % 4; f++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = k % 3 == 1 ? lo + (size_t)(x % (hi - lo)) : (size_t)(x % len);
                buf[at] ^= (unsigned char)(1u << (x >> 60 & 7));
            }
        }
        write_file(path, buf, n);
        koe_error err = {0};
        koe_weights *w = koe_weights_open(path, &err);
        if (w) {
            ok++;
            volatile unsigned char sink = 0;
            for (size_t i = 0; i < koe_weights_count(w); i++) {
                const koe_tensor *t = koe_weights_at(w, i);
                /* every page and the last byte: a bound past the mapping would fault */
                const unsigned char *b = t->data;
                for (size_t j = 0; j < t->nbytes; j += 4096) sink ^= b[j];
                if (t->nbytes) sink ^= b[t->nbytes - 1];
                int nd;
                int64_t sh[4];
                koe_weights_lookup(w, t->name, &nd, sh);
            }
            (void)sink;
            koe_weights_close(w);
        } else {
            errors++;
            if (!err.msg[0]) silent++;
        }
    }
    KT_CHECK(silent == 0, "%s: %d failures without a message", what, silent);
    KT_CHECK(errors > variants / 3, "%s: corruptions detected: %d errors, %d opened", what, errors,
             ok);
    printf("  %s: %d variants, %d clean errors, %d opened\n", what, variants, errors, ok);
    unlink(path);
    free(buf);
}

static void test_corrupt_files(void) {
    size_t len;
    unsigned char *orig = kt_read_file(tiny_pth, &len);
    KT_EXPECT(orig != NULL && len > 100000);
    if (!orig || len <= 100000) return;
    /* the pickle is the first 85 kB of the tiny file; the central directory the last 60 kB */
    corrupt_variants(".pth, pickle", orig, len, ".pth", 0, 90000, 150);
    corrupt_variants(".pth, central directory", orig, len, ".pth", len - 65536, len, 150);
    free(orig);
    /* safetensors: random weights at tiny widths; the header is the structure */
    koe_kokoro_dims d = {.n_token = 178,
                         .E = 32,
                         .Hb = 32,
                         .inter = 64,
                         .positions = 512,
                         .H = 64,
                         .style = 128,
                         .W1 = 128,
                         .W2 = 64,
                         .W3 = 16,
                         .max_dur = 50};
    const char *st = temp_path(".safetensors");
    koe_error err = {0};
    KT_CHECK(koe_weights_write_random_dims(st, &d, 1, &err) == 0, "%s", err.msg);
    orig = kt_read_file(st, &len);
    unlink(st);
    KT_EXPECT(orig != NULL && len > 8);
    if (!orig || len <= 8) return;
    size_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (size_t)orig[i] << (8 * i);
    corrupt_variants("safetensors", orig, len, ".safetensors", 0, 8 + hlen, 200);
    free(orig);
}

static void test_not_a_checkpoint(void) {
    koe_error err = {0};
    KT_EXPECT(koe_weights_open("/nonexistent/kokoro.pth", &err) == NULL && err.code == KOE_ERR_IO);
    const char *path = temp_path(".txt");
    write_file(path, "hello, this is not a model at all\n", 34);
    KT_EXPECT(koe_weights_open(path, &err) == NULL && err.code == KOE_ERR_FORMAT);
    write_file(path, "", 0);
    KT_EXPECT(koe_weights_open(path, &err) == NULL && err.msg[0]);
    unlink(path);
    KT_EXPECT(koe_weights_open("/tmp", &err) == NULL && err.msg[0]);
}

typedef struct spec_check {
    const koe_weights *w;
    size_t seen, wrong;
    char first_wrong[200];
} spec_check;

static void check_spec(void *user, const koe_tensor_spec *s) {
    spec_check *c = user;
    c->seen++;
    const koe_tensor *t = koe_weights_find(c->w, s->name);
    int ok = t && t->ndim == s->ndim;
    for (int d = 0; ok && d < s->ndim; d++) ok = t->shape[d] == s->shape[d];
    if (!ok && !c->wrong++) snprintf(c->first_wrong, sizeof c->first_wrong, "%s", s->name);
}

/* The random writer's tensor list, at the tiny widths, is exactly the reference checkpoint's. */
static void test_specs_match_tiny_checkpoint(void) {
    koe_error err = {0};
    koe_weights *w = koe_weights_open(tiny_pth, &err);
    KT_CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    koe_kokoro_dims d = {.n_token = 178,
                         .E = 32,
                         .Hb = 32,
                         .inter = 64,
                         .positions = 512,
                         .H = 64,
                         .style = 128,
                         .W1 = 128,
                         .W2 = 64,
                         .W3 = 16,
                         .max_dur = 50};
    spec_check c = {.w = w};
    size_t n = koe_kokoro_tensor_specs(&d, check_spec, &c);
    KT_CHECK(c.wrong == 0, "%zu specs differ from the checkpoint, first %s", c.wrong,
             c.first_wrong);
    KT_CHECK(n == koe_weights_count(w), "%zu specs, %zu tensors", n, koe_weights_count(w));
    KT_CHECK(koe_weights_first_unused(w, NULL) == NULL, "a checkpoint tensor has no spec: %s",
             koe_weights_first_unused(w, NULL));
    koe_weights_close(w);
}

/* Full-size random weights: written, read back, the official parameter count. */
static void test_random_full_size(void) {
    const char *path = temp_path(".safetensors");
    koe_error err = {0};
    int rc = koe_weights_write_random(path, NULL, 1, &err);
    KT_CHECK(rc == 0, "write: %s", err.msg);
    koe_weights *w = rc ? NULL : koe_weights_open(path, &err);
    KT_CHECK(w != NULL, "reopen: %s", err.msg);
    if (w) {
        double params = 0;
        for (size_t i = 0; i < koe_weights_count(w); i++) {
            const koe_tensor *t = koe_weights_at(w, i);
            if (t->dtype == KOE_DT_F32) params += (double)(t->nbytes / 4);
        }
        printf("  full-size random weights: %zu tensors, %.2f M parameters\n", koe_weights_count(w),
               params / 1e6);
        KT_CHECK(koe_weights_count(w) == 689, "%zu tensors", koe_weights_count(w));
        /* the tiny manifest's names, each with its rank, the widths full size */
        size_t mlen, missing = 0;
        char *mtext = kt_read_file(tiny_manifest, &mlen);
        cJSON *m = mtext ? cJSON_Parse(mtext) : NULL, *e;
        KT_EXPECT(cJSON_GetArraySize(m) == 689);
        cJSON_ArrayForEach(e, m) {
            const koe_tensor *t = koe_weights_find(w, cJSON_GetObjectItem(e, "name")->valuestring);
            missing += !t || t->ndim != cJSON_GetArraySize(cJSON_GetObjectItem(e, "shape"));
        }
        KT_CHECK(missing == 0, "%zu manifest names missing or of another rank", missing);
        cJSON_Delete(m);
        free(mtext);
        KT_CHECK(params > 81.0e6 && params < 82.6e6, "%.2f M parameters (81.8 M expected)",
                 params / 1e6);
        int nd;
        int64_t sh[4];
        const float *v = koe_weights_lookup(w, "decoder.encode.conv1.weight_v", &nd, sh);
        KT_CHECK(v && sh[0] == 1024 && sh[1] == 514 && sh[2] == 3, "encode.conv1 is [1024,514,3]");
        const float *b =
            koe_weights_lookup(w, "predictor.duration_proj.linear_layer.bias", &nd, sh);
        KT_CHECK(b && b[0] == -2.65f, "duration bias sets ~3.3 frames per token");
        koe_weights_close(w);
    }
    unlink(path);
}

int main(void) {
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    const char *sv = kt_env("KOE_SHARED_VECTORS", "../shared/vectors");
    snprintf(tiny_pth, sizeof tiny_pth, "%s/kokoro-tiny/kokoro-tiny-seed1.pth", td);
    snprintf(tiny_manifest, sizeof tiny_manifest, "%s/kokoro-tiny/kokoro-tiny-seed1.manifest.json",
             td);
    snprintf(shared_bin, sizeof shared_bin, "%s/kokoro-tiny/kokoro-tiny-seed1.bin", sv);
    snprintf(shared_manifest, sizeof shared_manifest,
             "%s/kokoro-tiny/kokoro-tiny-seed1.manifest.json", sv);
    kt_run("tiny .pth matches its manifest", test_tiny_pth_matches_manifest);
    kt_run("tiny .pth equals the reference blob", test_tiny_pth_equals_blob);
    kt_run("raw blob + manifest", test_raw_blob);
    kt_run("lookup and unused tensors", test_lookup_and_unused);
    kt_run("safetensors dtypes and bounds", test_safetensors_dtypes);
    kt_run("hostile pickles refused", test_hostile_pickles);
    kt_run("views, offsets, strides and zip64", test_views_and_zip64);
    kt_run("corrupt files give clean errors", test_corrupt_files);
    kt_run("not a checkpoint", test_not_a_checkpoint);
    kt_run("random writer's tensor list = the checkpoint's", test_specs_match_tiny_checkpoint);
    kt_run("full-size random weights", test_random_full_size);
    return kt_finish();
}
