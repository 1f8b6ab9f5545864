/* buf.h: a growable byte buffer (like git's strbuf) and a string table.
 *
 * dm_buf owns `data`; it is always NUL-terminated after any append so it can be used as a C
 * string. dm_strtab stores many strings back to back: chars (concatenated, no NULs) and offsets
 * (n + 1 entries, offsets[0] = 0), the layout the HDF5 files use for variable-length text.
 */
#ifndef DM_BUF_H
#define DM_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;
    size_t len, cap;
} dm_buf;

int dm_buf_grow(dm_buf *b, size_t extra);
int dm_buf_add(dm_buf *b, const void *p, size_t n);
int dm_buf_adds(dm_buf *b, const char *s);
int dm_buf_addc(dm_buf *b, char c);
int dm_buf_printf(dm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dm_buf_reset(dm_buf *b);
void dm_buf_free(dm_buf *b);

typedef struct {
    char *chars;      /* (offsets[n]) bytes */
    int64_t *offsets; /* (n + 1) */
    size_t n, cap_n, cap_chars;
} dm_strtab;

int dm_strtab_add(dm_strtab *t, const char *s, size_t len);
static inline const char *dm_strtab_get(const dm_strtab *t, size_t i, size_t *len)
{
    *len = (size_t)(t->offsets[i + 1] - t->offsets[i]);
    return t->chars + t->offsets[i];
}
void dm_strtab_free(dm_strtab *t);

/* Open-addressing hash map from byte strings to dense ids 0..n-1 (insertion order), backed by a
 * dm_strtab that owns the keys. */
typedef struct {
    dm_strtab keys;
    int64_t *slots; /* (cap) id or -1 */
    size_t cap;
} dm_strmap;

uint64_t dm_hash_bytes(const void *p, size_t n);
/* Returns the id of `s` (inserting it if absent); *added says whether it was new. */
int dm_strmap_intern(dm_strmap *m, const char *s, size_t len, int64_t *id, int *added);
int64_t dm_strmap_find(const dm_strmap *m, const char *s, size_t len); /* -1 if absent */
void dm_strmap_free(dm_strmap *m);

#endif
