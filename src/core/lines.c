/* lines.c: see lines.h. */
#include "lines.h"

#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static int corrupt(dm_lines *r, int64_t at, const char *what)
{
    DM_ERR(DM_EINPUT, "'%s' is truncated or corrupt after byte %lld: %s", r->path, (long long)at, what);
    DM_HINT("re-download the file; 'gzip -t %s' checks it", r->path);
    return DM_EINPUT;
}

/* moves the undecoded bytes to the front of `in` and appends what the file has next */
static int more_input(dm_lines *r)
{
    size_t keep = r->in_end - r->in_beg;
    if (keep && r->in_beg) memmove(r->in, r->in + r->in_beg, keep);
    r->in_beg = 0;
    r->in_end = keep;
    size_t n = fread(r->in + keep, 1, r->in_cap - keep, (FILE *)r->fp);
    if (n == 0) {
        if (ferror((FILE *)r->fp))
            return DM_ERR(DM_EIO, "cannot read '%s' at byte %lld: %s", r->path, (long long)r->file_off, strerror(errno));
        r->in_eof = 1;
    }
    r->in_end += n;
    r->file_off += (int64_t)n;
    return DM_OK;
}

/* decodes into buf until it is full or the input ends; *got = bytes produced */
static int inflate_some(dm_lines *r, size_t *got)
{
    z_stream *z = r->z;
    z->next_out = (Bytef *)r->buf;
    z->avail_out = (uInt)r->cap;
    while (z->avail_out > 0) {
        if (r->in_beg == r->in_end && !r->in_eof) DM_CALL(more_input(r));
        if (r->member_end) {
            /* after a complete member: the end of the file, another member (1f 8b), or junk */
            if (r->in_end - r->in_beg < 2 && !r->in_eof) {
                DM_CALL(more_input(r));
                continue;
            }
            if (r->in_beg == r->in_end) break;
            const unsigned char *p = r->in + r->in_beg;
            if (r->in_end - r->in_beg < 2 || p[0] != 0x1f || p[1] != 0x8b) {
                long long at = (long long)(r->file_off - (int64_t)(r->in_end - r->in_beg));
                DM_ERR(DM_EINPUT, "'%s' has trailing data after the gzip stream at byte %lld (of %lld)", r->path, at,
                       (long long)r->file_size);
                DM_HINT("the file is damaged or has something appended; 'gzip -t %s' checks it, and 'head -c %lld' keeps the "
                        "gzip part", r->path, at);
                return DM_EINPUT;
            }
            if (inflateReset(z) != Z_OK) return corrupt(r, r->consumed + (int64_t)(r->cap - z->avail_out), "cannot restart inflate");
            r->member_end = 0;
        }
        z->next_in = r->in + r->in_beg;
        z->avail_in = (uInt)(r->in_end - r->in_beg);
        int zr = inflate(z, Z_NO_FLUSH);
        r->in_beg = (size_t)(z->next_in - r->in);
        if (zr == Z_STREAM_END) r->member_end = 1;
        else if (zr == Z_BUF_ERROR && r->in_beg == r->in_end && r->in_eof)
            return corrupt(r, r->consumed + (int64_t)(r->cap - z->avail_out), "unexpected end of file");
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return corrupt(r, r->consumed + (int64_t)(r->cap - z->avail_out), z->msg ? z->msg : "corrupt data");
    }
    *got = r->cap - z->avail_out;
    return DM_OK;
}

/* replaces buf's contents with the next block of text; an empty block means end of file */
static int fill(dm_lines *r)
{
    size_t n = 0;
    if (r->z) DM_CALL(inflate_some(r, &n));
    else if (r->in_beg < r->in_end) {
        /* the bytes read to look for the gzip magic */
        n = r->in_end - r->in_beg < r->cap ? r->in_end - r->in_beg : r->cap;
        memcpy(r->buf, r->in + r->in_beg, n);
        r->in_beg += n;
    } else if (!r->in_eof) {
        n = fread(r->buf, 1, r->cap, (FILE *)r->fp);
        if (n == 0) {
            if (ferror((FILE *)r->fp))
                return DM_ERR(DM_EIO, "cannot read '%s' at byte %lld: %s", r->path, (long long)r->file_off, strerror(errno));
            r->in_eof = 1;
        }
        r->file_off += (int64_t)n;
    }
    r->beg = 0;
    r->end = n;
    if (n == 0) r->eof = 1;
    return DM_OK;
}

static int open_(dm_lines *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    struct stat st;
    if (stat(path, &st) != 0)
        return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return DM_ERR(DM_EIO, "cannot read '%s': it is a directory", path);
    r->file_size = (int64_t)st.st_size;
    FILE *fp = fopen(path, "rb");
    if (!fp) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    r->fp = fp;
    r->in_cap = 1 << 17;
    DM_ALLOC(r->in, r->in_cap);
    r->cap = 1 << 20;
    DM_ALLOC(r->buf, r->cap);
    r->line_cap = 1 << 12;
    DM_ALLOC(r->line, r->line_cap);
    DM_CALL(more_input(r));
    if (r->in_end >= 2 && r->in[0] == 0x1f && r->in[1] == 0x8b) {
        z_stream *z;
        DM_ALLOC(z, 1);
        r->z = z;
        /* 16 + MAX_WBITS: a gzip wrapper, whose CRC-32 and length inflate checks */
        if (inflateInit2(z, 16 + MAX_WBITS) != Z_OK) {
            free(z);
            r->z = NULL;
            return DM_ERR(DM_ENOMEM, "cannot start decompressing '%s'", path);
        }
    }
    DM_CALL(fill(r));
    if (r->end >= 3 && !memcmp(r->buf, "\xEF\xBB\xBF", 3)) {
        /* a UTF-8 byte-order mark is not part of the first line (it would glue itself to the first field) */
        r->beg = 3;
        r->consumed = 3;
    }
    return DM_OK;
}

int dm_lines_open(dm_lines *r, const char *path)
{
    int rc = open_(r, path);
    if (rc) {
        dm_error_trace(__FILE__, __LINE__);
        dm_lines_close(r);
    }
    return rc;
}

int dm_lines_next(dm_lines *r, char **line, size_t *len)
{
    size_t n = 0;
    int64_t start = r->consumed;
    for (;;) {
        if (r->beg == r->end) {
            if (r->eof) break;
            DM_CALL(fill(r));
            if (r->eof && r->beg == r->end) break;
        }
        char *p = memchr(r->buf + r->beg, '\n', r->end - r->beg);
        size_t take = p ? (size_t)(p - (r->buf + r->beg)) : r->end - r->beg;
        if (n + take + 1 > r->line_cap) {
            size_t cap = r->line_cap;
            while (cap < n + take + 1) cap *= 2;
            DM_REALLOC(r->line, cap);
            r->line_cap = cap;
        }
        memcpy(r->line + n, r->buf + r->beg, take);
        n += take;
        r->beg += take;
        r->consumed += (int64_t)take;
        if (p) {
            r->beg++;
            r->consumed++;
            goto got;
        }
    }
    if (n == 0) {
        *line = NULL;
        *len = 0;
        return DM_OK;
    }
got:
    if (n > 0 && r->line[n - 1] == '\r') n--;
    r->line[n] = '\0';
    r->lineno++;
    r->offset = start;
    *line = r->line;
    *len = n;
    return DM_OK;
}

void dm_lines_close(dm_lines *r)
{
    if (r->z) {
        inflateEnd((z_stream *)r->z);
        free(r->z);
    }
    if (r->fp) fclose((FILE *)r->fp);
    DM_FREE_ALL(r->in, r->buf, r->line);
    memset(r, 0, sizeof *r);
}

int dm_read_file(const char *path, char **data, size_t *len)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    size_t cap = 1 << 16, n = 0;
    char *out = dm_calloc_at(cap, 1, __FILE__, __LINE__);
    if (!out) {
        dm_lines_close(&r);
        return DM_ENOMEM;
    }
    for (;;) {
        if (r.beg == r.end) {
            if (r.eof) break;
            int rc = fill(&r);
            if (rc) {
                free(out);
                dm_lines_close(&r);
                return rc;
            }
            if (r.eof) break;
        }
        size_t k = r.end - r.beg;
        if (n + k + 1 > cap) {
            while (n + k + 1 > cap) cap *= 2;
            char *q = dm_realloc_at(out, cap, 1, __FILE__, __LINE__);
            if (!q) {
                free(out);
                dm_lines_close(&r);
                return DM_ENOMEM;
            }
            out = q;
        }
        memcpy(out + n, r.buf + r.beg, k);
        n += k;
        r.beg = r.end;
        r.consumed += (int64_t)k;
    }
    out[n] = '\0';
    dm_lines_close(&r);
    *data = out;
    *len = n;
    return DM_OK;
}
