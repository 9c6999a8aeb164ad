/* Zip central directory reader for PyTorch checkpoints (torch.save writes stored entries, and
 * zip64 records once the file or an entry passes 4 GiB or 65,535 entries). */
#include "model/zip.h"

#include <stdlib.h>
#include <string.h>

static uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) {
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

#define SIG_EOCD   0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64  0x07064b50u
#define SIG_CEN    0x02014b50u
#define SIG_LOC    0x04034b50u

/* The zip64 extended-information extra field replaces whichever of the 32-bit fields are
 * 0xFFFFFFFF, in the order uncompressed size, compressed size, local header offset. */
static int zip64_extra(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *off) {
    size_t p = 0;
    while (p + 4 <= xlen) {
        uint16_t id = rd16(x + p), sz = rd16(x + p + 2);
        if (p + 4 + sz > xlen) return -1;
        if (id == 1) {
            size_t q = p + 4, end = p + 4 + sz;
            uint64_t *fields[3] = {usize, csize, off};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu) continue;
                if (q + 8 > end) return -1;
                *fields[i] = rd64(x + q);
                q += 8;
            }
            return 0;
        }
        p += 4 + (size_t)sz;
    }
    return 0;
}

int koe_zip_list(const unsigned char *buf, size_t len, koe_zip_entry **entries, size_t *count,
                 koe_error *err) {
    *entries = NULL;
    *count = 0;
    if (len < 22) return koe_error_set(err, KOE_ERR_FORMAT, "not a zip file (too short)");
    /* The end-of-central-directory record sits in the last 22 + 65,535 bytes. */
    size_t eocd = (size_t)-1;
    size_t lowest = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t p = len - 22 + 1; p-- > lowest;)
        if (rd32(buf + p) == SIG_EOCD && p + 22 + rd16(buf + p + 20) <= len) {
            eocd = p;
            break;
        }
    if (eocd == (size_t)-1)
        return koe_error_set(err, KOE_ERR_FORMAT, "not a zip file (no end of central directory)");
    uint64_t n = rd16(buf + eocd + 10), cd_size = rd32(buf + eocd + 12),
             cd_off = rd32(buf + eocd + 16);
    if (n == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(buf + eocd - 20) != SIG_LOC64)
            return koe_error_set(err, KOE_ERR_FORMAT, "zip64 locator missing");
        uint64_t e64 = rd64(buf + eocd - 20 + 8);
        if (e64 > len || len - e64 < 56 || rd32(buf + e64) != SIG_EOCD64)
            return koe_error_set(err, KOE_ERR_FORMAT, "zip64 end record out of bounds");
        n = rd64(buf + e64 + 32);
        cd_size = rd64(buf + e64 + 40);
        cd_off = rd64(buf + e64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off)
        return koe_error_set(err, KOE_ERR_FORMAT, "zip central directory out of bounds");
    if (n > cd_size / 46)
        return koe_error_set(err, KOE_ERR_FORMAT, "zip entry count %llu does not fit",
                             (unsigned long long)n);
    koe_zip_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory listing the zip");
    size_t p = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < n; i++) {
        if (p + 46 > end || rd32(buf + p) != SIG_CEN) {
            free(e);
            return koe_error_set(err, KOE_ERR_FORMAT, "zip central directory entry %llu is corrupt",
                                 (unsigned long long)i);
        }
        uint16_t method = rd16(buf + p + 10), nlen = rd16(buf + p + 28), xlen = rd16(buf + p + 30),
                 clen = rd16(buf + p + 32);
        uint64_t csize = rd32(buf + p + 20), usize = rd32(buf + p + 24), loff = rd32(buf + p + 42);
        if (p + 46 + (size_t)nlen + xlen + clen > end ||
            zip64_extra(buf + p + 46 + nlen, xlen, &usize, &csize, &loff)) {
            free(e);
            return koe_error_set(err, KOE_ERR_FORMAT, "zip entry %llu: header out of bounds",
                                 (unsigned long long)i);
        }
        e[i].name = (const char *)buf + p + 46;
        e[i].name_len = nlen;
        e[i].method = method;
        e[i].size = usize;
        if (loff > len || len - loff < 30 || rd32(buf + loff) != SIG_LOC) {
            koe_error_set(err, KOE_ERR_FORMAT, "zip entry '%.*s': local header corrupt", (int)nlen,
                          (const char *)buf + p + 46);
            free(e);
            return KOE_ERR_FORMAT;
        }
        uint64_t data = loff + 30 + rd16(buf + loff + 26) + rd16(buf + loff + 28);
        if (method == 0 && (csize != usize || data > len || usize > len - data)) {
            koe_error_set(err, KOE_ERR_FORMAT,
                          "zip entry '%.*s': %llu bytes at %llu run past the end of the file",
                          (int)nlen, (const char *)buf + p + 46, (unsigned long long)usize,
                          (unsigned long long)data);
            free(e);
            return KOE_ERR_FORMAT;
        }
        e[i].data = method == 0 ? buf + data : NULL;
        p += 46 + (size_t)nlen + xlen + clen;
    }
    *entries = e;
    *count = (size_t)n;
    return 0;
}
