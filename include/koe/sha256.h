/* SHA-256 (FIPS 180-4), streaming. Used to verify downloaded model files against the checksum
 * their host publishes. */
#ifndef KOE_SHA256_H
#define KOE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct koe_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    unsigned char block[64];
    size_t fill; /* bytes waiting in block */
} koe_sha256;

void koe_sha256_init(koe_sha256 *s);
void koe_sha256_update(koe_sha256 *s, const void *data, size_t n);
void koe_sha256_final(koe_sha256 *s, unsigned char digest[32]);
/* digest as 64 lowercase hex digits + NUL. */
void koe_sha256_hex(const unsigned char digest[32], char hex[65]);
/* Hashes a whole file; returns 0, or -1 if it cannot be read (errno set). */
int koe_sha256_file(const char *path, char hex[65]);

#endif
