/* report_util.h: small helpers shared by `dynmm sweep` and `dynmm report` (serial, rank 0 work):
 * config values as --set text, atomic file writes, directory creation, splitting of the compact
 * "a=1; b=[x,y]" spec strings, and escaping for LaTeX, JSON and file names.
 *
 * Every function that returns char* or char** hands ownership to the caller (ru_strv_free frees a
 * vector and its strings). Errors are recorded with DM_ERR and returned as codes.
 */
#ifndef DM_REPORT_UTIL_H
#define DM_REPORT_UTIL_H

#include "../src/config/config.h"
#include "../src/core/buf.h"

#include <stddef.h>

/* The value of `key` in --set syntax ("16", "0.5", "true", "bce", "[pop,sasrec]"); floats in their
 * shortest round-trip form. Appends to out. */
int ru_value_text(const dm_cfg *c, const char *key, dm_buf *out);
/* Type of a key (DM_KT_*); the key must exist. */
int ru_key_type(const char *key);

/* Writes data to path.part, then renames it over path; mode e.g. 0644 or 0755. */
int ru_write_atomic(const char *path, const void *data, size_t n, int mode);
/* mkdir -p */
int ru_mkdirs(const char *path);
/* Reads a whole file into *out (NUL-terminated, malloc'd). */
int ru_read_file(const char *path, char **out, size_t *n);

char *ru_strdup(const char *s);
char *ru_strndup(const char *s, size_t n);
/* Splits s at `sep` outside brackets [] () and double quotes, trims whitespace around each part,
 * drops empty parts. *out (n strings) is malloc'd. */
int ru_split(const char *s, char sep, char ***out, size_t *n);
void ru_strv_free(char **v, size_t n);
/* Appends a copy of s to a growing vector. */
int ru_strv_push(char ***v, size_t *n, const char *s);
int ru_strv_find(char *const *v, size_t n, const char *s); /* index or -1 */

/* s is a complete finite number (strtod); *v receives it when v != NULL. */
int ru_is_number(const char *s, double *v);
/* Shell-glob match (fnmatch without flags). */
int ru_match(const char *pattern, const char *s);

int ru_tex_escape(dm_buf *b, const char *s);   /* \ _ % & # $ { } ~ ^ escaped */
int ru_json_str(dm_buf *b, const char *s);     /* "..." with JSON escapes */
int ru_gp_str(dm_buf *b, const char *s);       /* a gnuplot double-quoted string (enhanced text escaped) */
/* Copies s into out keeping [A-Za-z0-9.+-] and mapping runs of anything else to one '+'; at most
 * cap - 1 bytes. */
void ru_slug(const char *s, char *out, size_t cap);

#endif
