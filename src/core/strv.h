/* strv.h: vectors of strings (char **v with a separate count n), and splitting text into one.
 *
 * A vector owns its strings: every string is a malloc'd copy, and dm_strv_free(v, n) frees them
 * and the array (a NULL vector is empty). Growing functions keep v and n valid when they fail.
 */
#ifndef DM_STRV_H
#define DM_STRV_H

#include <stddef.h>

/* Appends a copy of s. */
int dm_strv_push(char ***v, size_t *n, const char *s);
void dm_strv_free(char **v, size_t n);
/* Index of the first string equal to s, or -1. */
int dm_strv_find(char *const *v, size_t n, const char *s);
/* Splits s at `sep` outside brackets [] () and double quotes, trims spaces, tabs and newlines
 * around each part, drops empty parts: "a=1; b=[x;y]" at ';' gives "a=1", "b=[x;y]". *out (*n
 * strings) is a new vector; nothing is allocated on failure. */
int dm_strv_split(const char *s, char sep, char ***out, size_t *n);

#endif
