/* str.h: small string helpers: copies, numbers, shell globs, file-name slugs and JSON string
 * literals.
 *
 * dm_str_dup and dm_str_ndup hand the copy to the caller (free it); NULL when out of memory (the
 * failure is recorded, as every allocation of src/core). The others allocate nothing but the
 * dm_buf they append to.
 */
#ifndef DM_STR_H
#define DM_STR_H

#include "buf.h"

#include <stddef.h>

char *dm_str_dup(const char *s);
/* The first n bytes of s (which must have them) and a NUL. */
char *dm_str_ndup(const char *s, size_t n);

/* s is a complete finite number (strtod; trailing spaces allowed); *v receives it when v != NULL. */
int dm_str_is_number(const char *s, double *v);
/* Shell-glob match (fnmatch without flags). */
int dm_str_match(const char *pattern, const char *s);
/* Copies s into out keeping [A-Za-z0-9.+-] and mapping runs of anything else to one '+'; at most
 * cap - 1 bytes. */
void dm_str_slug(const char *s, char *out, size_t cap);
/* Decodes HTML character references in place (as scraped catalogue text carries them: "L&#39;Oreal",
 * "&amp;"): &amp; &lt; &gt; &quot; &apos; &nbsp; (to a space) and numeric &#N; / &#xH; (to UTF-8;
 * NUL, surrogates and code points above U+10FFFF are left as they are), each ending in ';'. Anything
 * else stays verbatim. The text never grows. Returns the new length. */
size_t dm_str_html_unescape(char *s);
/* Appends s as a JSON string literal: quotes, \" \\ \n \t and \u00XX for the other control bytes. */
int dm_str_json(dm_buf *b, const char *s);

#endif
