/* lines.h: a line reader over plain or gzip-compressed text (zlib detects which).
 *
 * Each line is returned without its '\n' (and without a trailing '\r'), with its 1-based line number
 * and the uncompressed byte offset of its first byte, so that readers can name exactly where a bad
 * record is. A truncated or corrupt gzip stream is an error naming the file and the offset reached,
 * never a silent short read. The reader owns its line buffer; the returned pointer is valid until the
 * next call.
 */
#ifndef DM_LINES_H
#define DM_LINES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *gz;           /* gzFile */
    const char *path;   /* not owned */
    char *buf;          /* (cap) read buffer */
    size_t cap, beg, end;
    char *line;         /* (line_cap) assembled line */
    size_t line_cap;
    int64_t lineno;     /* of the last line returned */
    int64_t offset;     /* byte offset of the last line returned */
    int64_t consumed;   /* uncompressed bytes consumed so far */
    int eof;
} dm_lines;

int dm_lines_open(dm_lines *r, const char *path);
/* Returns DM_OK and sets *line and *len, or DM_OK with *line == NULL at end of file, or an error. */
int dm_lines_next(dm_lines *r, char **line, size_t *len);
void dm_lines_close(dm_lines *r);

/* Reads a whole (optionally gzip-compressed) file into memory; *data is NUL-terminated. */
int dm_read_file(const char *path, char **data, size_t *len);

#endif
