/* json.h: a small DOM parser for strict JSON and for Python literals.
 *
 * Python mode accepts what Python's repr() of dicts/lists writes (the Amazon 2014 metadata and the
 * .npy header): single- or double-quoted strings with Python escapes (\x, \u, \U, \'), True /
 * False / None, tuples (as arrays), u'' / b'' prefixes and trailing commas. Strings are decoded to
 * UTF-8. Numbers keep their source text so 64-bit integers are exact.
 *
 * Nodes live in a dm_jdoc arena; dm_jdoc_reset() reuses the memory for the next line, so parsing
 * one object per line allocates nothing in steady state. The parser never touches the global
 * error state: on failure it returns non-zero and fills dm_jerr (byte offset and what was
 * expected) for the caller to report with its own file and line.
 */
#ifndef DM_JSON_H
#define DM_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DM_JNULL, DM_JBOOL, DM_JNUM, DM_JSTR, DM_JARR, DM_JOBJ } dm_jtype;

typedef struct dm_json dm_json;
struct dm_json {
    dm_jtype type;
    int boolean;
    const char *str; /* DM_JSTR: decoded UTF-8 (NUL-terminated); DM_JNUM: source text */
    size_t len;      /* string length, or number of children for arrays/objects */
    const char *key; /* member name when the parent is an object (decoded, NUL-terminated) */
    size_t keylen;
    dm_json *child;  /* first child */
    dm_json *next;   /* next sibling */
    size_t offset;   /* byte offset of the value in the parsed text, for messages naming a column */
};

typedef struct {
    struct dm_jblock *blocks;
    struct dm_jblock *cur;
} dm_jdoc;

typedef struct {
    size_t offset;   /* byte offset of the problem in the input */
    char what[160];  /* "expected ',' or '}' after member" */
} dm_jerr;

/* Parses text[0..n) completely (trailing whitespace allowed). Returns 0 on success. A return of
 * -1 means out of memory (dm_jerr says so), 1 a syntax error. */
int dm_json_parse(dm_jdoc *doc, const char *text, size_t n, int python, dm_json **root, dm_jerr *err);
void dm_jdoc_reset(dm_jdoc *doc);
void dm_jdoc_free(dm_jdoc *doc);
/* Reads and parses the JSON file at path (strict JSON): *text holds its bytes (the caller frees it
 * after dm_jdoc_free(doc)), *root its value; with want_object a top level other than an object is
 * an error. Errors name the file (unreadable; bad JSON with the byte offset; not an object); on an
 * error *text and doc are already freed. */
int dm_json_load(const char *path, int want_object, dm_jdoc *doc, char **text, dm_json **root);

const dm_json *dm_json_get(const dm_json *obj, const char *key); /* member or NULL */
const dm_json *dm_json_at(const dm_json *arr, size_t i);        /* element or NULL */
/* Number conversions: return 0 on success, non-zero when the node is not a number of that kind. */
int dm_json_int(const dm_json *v, int64_t *out);
int dm_json_double(const dm_json *v, double *out);
const char *dm_json_type_name(dm_jtype t);

/* Writes s as a JSON string literal (with quotes) into out; returns bytes needed (excluding the
 * NUL), like snprintf. */
size_t dm_json_quote(char *out, size_t cap, const char *s, size_t len);

#endif
