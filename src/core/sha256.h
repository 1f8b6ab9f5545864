/* sha256.h: SHA-256 (FIPS 180-4) for provenance hashes of source files and resolved configs. */
#ifndef DM_SHA256_H
#define DM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} dm_sha256;

void dm_sha256_init(dm_sha256 *c);
void dm_sha256_update(dm_sha256 *c, const void *data, size_t n);
void dm_sha256_final(dm_sha256 *c, uint8_t out[32]);
/* Hex digest (65 bytes with the NUL) of a buffer. */
void dm_sha256_hex(const void *data, size_t n, char out[65]);
void dm_sha256_tohex(const uint8_t d[32], char out[65]);
/* Hex digest of a whole file; returns DM_EIO naming the file on failure. */
int dm_sha256_file(const char *path, char out[65]);

#endif
