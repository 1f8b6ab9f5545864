/* lines.h: a line reader over plain or gzip-compressed text.
 *
 * A file starting with the gzip magic (1f 8b) is decoded with zlib's inflate, member after member
 * (a concatenation of gzip members reads as one stream, as gzip itself does); anything else is
 * read as plain text. Each line is returned without its '\n' (and without a trailing '\r'), with
 * its 1-based line number and the uncompressed byte offset of its first byte, so that readers can
 * name exactly where a bad record is. A UTF-8 byte-order mark (EF BB BF) at the start of the
 * (uncompressed) text is skipped; offsets still count it. Lines have no length limit.
 *
 * Errors name the file: a truncated or corrupt gzip stream, with the uncompressed offset reached,
 * never a silent short read; bytes after the last gzip member that do not start another member
 * ("trailing data after the gzip stream"), with their compressed byte offset (gzread would skip
 * them silently, which is why this reader does its own inflate).
 *
 * The reader owns its buffers; the returned line pointer is valid until the next call.
 */
#ifndef DM_LINES_H
#define DM_LINES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *fp;           /* FILE * */
    void *z;            /* z_stream * when the file is gzip, else NULL */
    const char *path;   /* not owned */
    unsigned char *in;  /* (in_cap) bytes read from the file, not yet decoded */
    size_t in_cap, in_beg, in_end;
    int in_eof;         /* the file has no more bytes */
    int member_end;     /* the last gzip member is complete; what follows must be another one */
    int64_t file_off;   /* bytes read from the file so far */
    int64_t file_size;
    char *buf;          /* (cap) uncompressed text */
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

/* Reads a whole (optionally gzip-compressed) file into memory, without a leading UTF-8 BOM;
 * *data is NUL-terminated. */
int dm_read_file(const char *path, char **data, size_t *len);

#endif
