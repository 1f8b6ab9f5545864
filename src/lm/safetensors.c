/* safetensors.c: see safetensors.h. */
#include "safetensors.h"

#include "../core/buf.h"
#include "../core/err.h"
#include "../core/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is not a tensor index but a corrupt length field. */
#define HEADER_MAX ((uint64_t)100 << 20)

static int dtype_of(const char *s, size_t *width)
{
    if (!strcmp(s, "F32")) { *width = 4; return SAFETENSORS_F32; }
    if (!strcmp(s, "F16")) { *width = 2; return SAFETENSORS_F16; }
    if (!strcmp(s, "BF16")) { *width = 2; return SAFETENSORS_BF16; }
    static const struct { const char *n; size_t w; } other[] = {
        {"F64", 8}, {"I64", 8}, {"U64", 8}, {"I32", 4}, {"U32", 4}, {"I16", 2}, {"U16", 2},
        {"I8", 1}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcmp(s, other[i].n)) { *width = other[i].w; return SAFETENSORS_OTHER; }
    *width = 0;
    return -1;
}

static int parse_entry(safetensors_file *sf, const dm_json *v, safetensors_tensor *t, uint64_t data_len)
{
    const char *path = sf->path;
    if (v->type != DM_JOBJ)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' header entry is a %s, expected an object", path,
                      t->name, dm_json_type_name(v->type));
    const dm_json *dt = dm_json_get(v, "dtype"), *sh = dm_json_get(v, "shape"),
                  *off = dm_json_get(v, "data_offsets");
    if (!dt || dt->type != DM_JSTR || !sh || sh->type != DM_JARR || !off || off->type != DM_JARR ||
        off->len != 2)
        return DM_ERR(DM_EINPUT,
                      "'%s': tensor '%s' needs \"dtype\" (string), \"shape\" (list) and "
                      "\"data_offsets\" ([begin, end])", path, t->name);
    size_t width;
    t->dtype = dtype_of(dt->str, &width);
    if (t->dtype < 0)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' has unknown dtype '%s'", path, t->name, dt->str);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->str);
    if (sh->len > SAFETENSORS_MAX_DIM)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' has %zu dimensions, at most %d are supported",
                      path, t->name, sh->len, SAFETENSORS_MAX_DIM);
    t->ndim = (int)sh->len;
    t->numel = 1;
    int d = 0;
    for (const dm_json *c = sh->child; c; c = c->next, d++) {
        int64_t x;
        if (dm_json_int(c, &x) || x < 0)
            return DM_ERR(DM_EINPUT, "'%s': tensor '%s' shape[%d] is not a non-negative integer",
                          path, t->name, d);
        t->shape[d] = x;
        if (x && t->numel > SIZE_MAX / 8 / (size_t)x)
            return DM_ERR(DM_EINPUT, "'%s': tensor '%s' is too large", path, t->name);
        t->numel *= (size_t)x;
    }
    int64_t b, e;
    if (dm_json_int(dm_json_at(off, 0), &b) || dm_json_int(dm_json_at(off, 1), &e) || b < 0 || e < b)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' has bad data_offsets", path, t->name);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end - t->begin != (uint64_t)t->numel * width)
        return DM_ERR(DM_EINPUT,
                      "'%s': tensor '%s' spans %llu bytes but its shape and dtype %s need %llu", path,
                      t->name, (unsigned long long)(t->end - t->begin), t->dtype_name,
                      (unsigned long long)t->numel * width);
    if (t->end > data_len) {
        DM_ERR(DM_EINPUT,
               "'%s': tensor '%s' data [%llu, %llu) lies beyond the end of the file (%llu data bytes)",
               path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
               (unsigned long long)data_len);
        DM_HINT("the file is truncated (an interrupted download or copy?)");
        return DM_EINPUT;
    }
    return DM_OK;
}

int safetensors_open(safetensors_file *sf, const char *path)
{
    memset(sf, 0, sizeof *sf);
    int rc = DM_OK;
    char *hdr = NULL;
    dm_jdoc doc = {0};
    sf->path = strdup(path);
    if (!sf->path) return DM_ERR(DM_ENOMEM, "out of memory");
    sf->f = fopen(path, "rb");
    if (!sf->f) {
        rc = DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fileno(sf->f), &st) != 0) {
        rc = DM_ERR(DM_EIO, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    sf->file_size = (uint64_t)st.st_size;
    unsigned char lenb[8];
    if (sf->file_size < 8 || fread(lenb, 1, 8, sf->f) != 8) {
        rc = DM_ERR(DM_EINPUT, "'%s': file of %llu bytes is too short for a safetensors header", path,
                    (unsigned long long)sf->file_size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenb[i];
    if (hlen > HEADER_MAX || hlen > sf->file_size - 8) {
        rc = DM_ERR(DM_EINPUT, "'%s': header length %llu does not fit in the file of %llu bytes", path,
                    (unsigned long long)hlen, (unsigned long long)sf->file_size);
        DM_HINT("not a safetensors file, or a truncated one");
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) { rc = DM_ERR(DM_ENOMEM, "out of memory reading the header of '%s'", path); goto fail; }
    if (fread(hdr, 1, hlen, sf->f) != hlen) {
        rc = DM_ERR(DM_EIO, "'%s': short read of the header", path);
        goto fail;
    }
    hdr[hlen] = '\0';
    sf->data_start = 8 + hlen;
    dm_json *root;
    dm_jerr jerr;
    int jr = dm_json_parse(&doc, hdr, hlen, 0, &root, &jerr);
    if (jr) {
        rc = DM_ERR(jr < 0 ? DM_ENOMEM : DM_EINPUT, "'%s': bad safetensors header at byte %zu: %s", path,
                    jerr.offset + 8, jerr.what);
        goto fail;
    }
    if (root->type != DM_JOBJ) {
        rc = DM_ERR(DM_EINPUT, "'%s': safetensors header is not a JSON object", path);
        goto fail;
    }
    sf->t = calloc(root->len ? root->len : 1, sizeof *sf->t);
    if (!sf->t) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto fail; }
    uint64_t data_len = sf->file_size - sf->data_start;
    for (const dm_json *c = root->child; c; c = c->next) {
        if (!strcmp(c->key, "__metadata__")) continue;
        safetensors_tensor *t = &sf->t[sf->n++];
        t->name = strdup(c->key); /* the header's arena goes away below */
        if (!t->name) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto fail; }
        if ((rc = parse_entry(sf, c, t, data_len)) != DM_OK) goto fail;
    }
    free(hdr);
    dm_jdoc_free(&doc);
    return DM_OK;
fail:
    free(hdr);
    dm_jdoc_free(&doc);
    safetensors_close(sf);
    return rc;
}

const safetensors_tensor *safetensors_find(const safetensors_file *sf, const char *name)
{
    for (size_t i = 0; i < sf->n; i++)
        if (!strcmp(sf->t[i].name, name)) return &sf->t[i];
    return NULL;
}

float safetensors_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float safetensors_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t safetensors_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

uint16_t safetensors_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                      /* below the smallest normal: subnormal or 0 */
        if (ax < 0x33000000u) return sign;       /* < 2^-25 rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)e; /* value m * 2^(e-150) in units of 2^-24 (the f16 subnormal step) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1); /* round mantissa to 10 bits, nearest even */
    return (uint16_t)(sign | (((r >> 13) - ((127 - 15) << 10)) & 0x7fff));
}

int safetensors_read_f32(safetensors_file *sf, const safetensors_tensor *t, float *out)
{
    if (t->dtype == SAFETENSORS_OTHER)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' has dtype %s, expected F32, F16 or BF16", sf->path,
                      t->name, t->dtype_name);
    if (fseeko(sf->f, (off_t)(sf->data_start + t->begin), SEEK_SET) != 0)
        return DM_ERR(DM_EIO, "'%s': cannot seek to tensor '%s': %s", sf->path, t->name, strerror(errno));
    if (t->dtype == SAFETENSORS_F32) {
        if (fread(out, 4, t->numel, sf->f) != t->numel)
            return DM_ERR(DM_EIO, "'%s': short read of tensor '%s'", sf->path, t->name);
        return DM_OK;
    }
    /* 16-bit: convert through a bounded staging buffer so a big tensor needs no 2nd copy */
    enum { CHUNK = 1 << 16 };
    uint16_t *tmp = malloc(CHUNK * sizeof *tmp);
    if (!tmp) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->numel; i += CHUNK) {
        size_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        if (fread(tmp, 2, n, sf->f) != n) {
            free(tmp);
            return DM_ERR(DM_EIO, "'%s': short read of tensor '%s'", sf->path, t->name);
        }
        if (t->dtype == SAFETENSORS_F16)
            for (size_t j = 0; j < n; j++) out[i + j] = safetensors_f16_to_f32(tmp[j]);
        else
            for (size_t j = 0; j < n; j++) out[i + j] = safetensors_bf16_to_f32(tmp[j]);
    }
    free(tmp);
    return DM_OK;
}

void safetensors_close(safetensors_file *sf)
{
    if (sf->f) fclose(sf->f);
    free(sf->path);
    for (size_t i = 0; i < sf->n; i++) free(sf->t[i].name);
    free(sf->t);
    memset(sf, 0, sizeof *sf);
}

static int write_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, f) != n)
        return DM_ERR(DM_EIO, "cannot write '%s': %s", path, strerror(errno));
    return DM_OK;
}

/* Opens `path`.part for writing; finish_atomic() flushes, syncs and renames it onto `path`. */
static int open_part(const char *path, char **part, FILE **f)
{
    size_t n = strlen(path) + 6;
    *part = malloc(n);
    if (!*part) return DM_ERR(DM_ENOMEM, "out of memory");
    snprintf(*part, n, "%s.part", path);
    *f = fopen(*part, "wb");
    if (!*f) {
        int rc = DM_ERR(DM_EIO, "cannot create '%s': %s", *part, strerror(errno));
        DM_FREE(*part);
        return rc;
    }
    return DM_OK;
}

static int finish_atomic(const char *path, char *part, FILE *f, int rc)
{
    if (rc == DM_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = DM_ERR(DM_EIO, "cannot write '%s': %s", part, strerror(errno));
    if (fclose(f) != 0 && rc == DM_OK) rc = DM_ERR(DM_EIO, "cannot close '%s': %s", part, strerror(errno));
    if (rc == DM_OK && rename(part, path) != 0)
        rc = DM_ERR(DM_EIO, "cannot rename '%s' to '%s': %s", part, path, strerror(errno));
    if (rc != DM_OK) remove(part);
    free(part);
    return rc;
}

int safetensors_write_file_atomic(const char *path, const void *data, size_t len)
{
    char *part;
    FILE *f;
    DM_CALL(open_part(path, &part, &f));
    int rc = write_all(f, data, len, part);
    return finish_atomic(path, part, f, rc);
}

int safetensors_write_f32(const char *path, const safetensors_entry *e, size_t n,
                          const char *const *metadata)
{
    dm_buf h = {0};
    int rc = DM_OK;
    char q[512];
    uint64_t off = 0;
    DM_TRY(rc, dm_buf_adds(&h, "{"), done);
    if (metadata && metadata[0]) {
        DM_TRY(rc, dm_buf_adds(&h, "\"__metadata__\":{"), done);
        for (size_t i = 0; metadata[i]; i += 2) {
            if (dm_json_quote(q, sizeof q, metadata[i], strlen(metadata[i])) >= sizeof q) {
                rc = DM_ERR(DM_EINTERNAL, "metadata key too long");
                goto done;
            }
            DM_TRY(rc, dm_buf_printf(&h, "%s%s:", i ? "," : "", q), done);
            size_t need = dm_json_quote(NULL, 0, metadata[i + 1], strlen(metadata[i + 1]));
            char *v = malloc(need + 1);
            if (!v) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
            dm_json_quote(v, need + 1, metadata[i + 1], strlen(metadata[i + 1]));
            rc = dm_buf_adds(&h, v);
            free(v);
            if (rc) goto done;
        }
        DM_TRY(rc, dm_buf_adds(&h, "},"), done);
    }
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        if (dm_json_quote(q, sizeof q, e[i].name, strlen(e[i].name)) >= sizeof q) {
            rc = DM_ERR(DM_EINTERNAL, "tensor name too long: '%s'", e[i].name);
            goto done;
        }
        DM_TRY(rc, dm_buf_printf(&h, "%s%s:{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", q), done);
        for (int d = 0; d < e[i].ndim; d++)
            DM_TRY(rc, dm_buf_printf(&h, "%s%lld", d ? "," : "", (long long)e[i].shape[d]), done);
        DM_TRY(rc, dm_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                 (unsigned long long)(off + 4 * numel)), done);
        off += 4 * numel;
    }
    DM_TRY(rc, dm_buf_adds(&h, "}"), done);
    while (h.len % 8) DM_TRY(rc, dm_buf_addc(&h, ' '), done); /* keeps the data 8-byte aligned */

    char *part;
    FILE *f;
    DM_TRY(rc, open_part(path, &part, &f), done);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    rc = write_all(f, lenb, 8, part);
    if (!rc) rc = write_all(f, h.data, h.len, part);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        rc = write_all(f, e[i].data, 4 * numel, part); /* the host is little-endian (x86/arm64) */
    }
    rc = finish_atomic(path, part, f, rc);
done:
    dm_buf_free(&h);
    return rc;
}
