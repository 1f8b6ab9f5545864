/* buf.c: see buf.h. */
#include "buf.h"

#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dm_buf_grow(dm_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return DM_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = dm_realloc_at(b->data, cap, 1, __FILE__, __LINE__);
    if (!p) return DM_ENOMEM;
    b->data = p;
    b->cap = cap;
    return DM_OK;
}

int dm_buf_add(dm_buf *b, const void *p, size_t n)
{
    DM_CALL(dm_buf_grow(b, n));
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return DM_OK;
}

int dm_buf_adds(dm_buf *b, const char *s) { return dm_buf_add(b, s, strlen(s)); }
int dm_buf_addc(dm_buf *b, char c) { return dm_buf_add(b, &c, 1); }

int dm_buf_printf(dm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return DM_ERR(DM_EINTERNAL, "bad format string '%s'", fmt);
    DM_CALL(dm_buf_grow(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return DM_OK;
}

void dm_buf_reset(dm_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void dm_buf_free(dm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int dm_strtab_add(dm_strtab *t, const char *s, size_t len)
{
    if (t->n + 2 > t->cap_n) {
        size_t cap = t->cap_n ? 2 * t->cap_n : 256;
        DM_REALLOC(t->offsets, cap);
        t->cap_n = cap;
        if (t->n == 0) t->offsets[0] = 0;
    }
    size_t used = (size_t)t->offsets[t->n];
    if (used + len + 1 > t->cap_chars) {
        size_t cap = t->cap_chars ? t->cap_chars : 4096;
        while (cap < used + len + 1) cap *= 2;
        DM_REALLOC(t->chars, cap);
        t->cap_chars = cap;
    }
    if (len) memcpy(t->chars + used, s, len);
    t->chars[used + len] = '\0';
    t->offsets[t->n + 1] = (int64_t)(used + len);
    t->n++;
    return DM_OK;
}

void dm_strtab_free(dm_strtab *t)
{
    free(t->chars);
    free(t->offsets);
    memset(t, 0, sizeof *t);
}

uint64_t dm_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a 64 with a final avalanche */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int rehash(dm_strmap *m, size_t cap)
{
    int64_t *slots;
    DM_ALLOC(slots, cap);
    for (size_t i = 0; i < cap; i++) slots[i] = -1;
    for (size_t id = 0; id < m->keys.n; id++) {
        size_t len;
        const char *s = dm_strtab_get(&m->keys, id, &len);
        size_t j = dm_hash_bytes(s, len) & (cap - 1);
        while (slots[j] >= 0) j = (j + 1) & (cap - 1);
        slots[j] = (int64_t)id;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return DM_OK;
}

int64_t dm_strmap_find(const dm_strmap *m, const char *s, size_t len)
{
    if (!m->cap) return -1;
    size_t j = dm_hash_bytes(s, len) & (m->cap - 1);
    while (m->slots[j] >= 0) {
        size_t kl;
        const char *k = dm_strtab_get(&m->keys, (size_t)m->slots[j], &kl);
        if (kl == len && memcmp(k, s, len) == 0) return m->slots[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

int dm_strmap_intern(dm_strmap *m, const char *s, size_t len, int64_t *id, int *added)
{
    if (2 * (m->keys.n + 1) > m->cap) DM_CALL(rehash(m, m->cap ? 2 * m->cap : 1024));
    size_t j = dm_hash_bytes(s, len) & (m->cap - 1);
    while (m->slots[j] >= 0) {
        size_t kl;
        const char *k = dm_strtab_get(&m->keys, (size_t)m->slots[j], &kl);
        if (kl == len && memcmp(k, s, len) == 0) {
            *id = m->slots[j];
            if (added) *added = 0;
            return DM_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    DM_CALL(dm_strtab_add(&m->keys, s, len));
    m->slots[j] = (int64_t)(m->keys.n - 1);
    *id = m->slots[j];
    if (added) *added = 1;
    return DM_OK;
}

void dm_strmap_free(dm_strmap *m)
{
    dm_strtab_free(&m->keys);
    free(m->slots);
    m->slots = NULL;
    m->cap = 0;
}
