/* lines.c: see lines.h. */
#include "lines.h"

#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

int dm_lines_open(dm_lines *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    struct stat st;
    if (stat(path, &st) != 0)
        return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return DM_ERR(DM_EIO, "cannot read '%s': it is a directory", path);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    gzbuffer(gz, 1 << 17);
    r->gz = gz;
    r->cap = 1 << 20;
    DM_ALLOC(r->buf, r->cap);
    r->line_cap = 1 << 12;
    DM_ALLOC(r->line, r->line_cap);
    return DM_OK;
}

static int fill(dm_lines *r)
{
    int n = gzread((gzFile)r->gz, r->buf, (unsigned)r->cap);
    if (n < 0) {
        int zerr;
        const char *msg = gzerror((gzFile)r->gz, &zerr);
        return DM_ERR(DM_EINPUT, "cannot decompress '%s' after byte %lld: %s", r->path,
                      (long long)r->consumed, msg);
    }
    if (n == 0) {
        int zerr;
        const char *msg = gzerror((gzFile)r->gz, &zerr);
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            DM_ERR(DM_EINPUT, "'%s' is truncated or corrupt after byte %lld: %s", r->path,
                   (long long)r->consumed, msg);
            DM_HINT("re-download the file; 'gzip -t %s' checks it", r->path);
            return DM_EINPUT;
        }
        r->eof = 1;
    }
    r->beg = 0;
    r->end = (size_t)n;
    return DM_OK;
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
    if (r->gz) gzclose((gzFile)r->gz);
    free(r->buf);
    free(r->line);
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
