/* str.c: small string helpers, see str.h. */
#include "str.h"

#include "err.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

char *dm_str_ndup(const char *s, size_t n)
{
    char *d = dm_calloc_at(n + 1, 1, __FILE__, __LINE__);
    if (d) memcpy(d, s, n);
    return d;
}

char *dm_str_dup(const char *s) { return dm_str_ndup(s, strlen(s)); }

int dm_str_is_number(const char *s, double *v)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end || errno || !isfinite(x)) return 0;
    if (v) *v = x;
    return 1;
}

int dm_str_match(const char *pattern, const char *s) { return fnmatch(pattern, s, 0) == 0; }

void dm_str_slug(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    int sep = 0;
    for (; *s && k + 1 < cap; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+';
        if (ok) {
            if (sep && k > 0 && k + 2 < cap) out[k++] = '+';
            sep = 0;
            out[k++] = c;
        } else
            sep = 1;
    }
    out[k] = '\0';
}

int dm_str_json(dm_buf *b, const char *s)
{
    DM_CALL(dm_buf_addc(b, '"'));
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') DM_CALL(dm_buf_printf(b, "\\%c", c));
        else if (c == '\n') DM_CALL(dm_buf_adds(b, "\\n"));
        else if (c == '\t') DM_CALL(dm_buf_adds(b, "\\t"));
        else if (c < 0x20) DM_CALL(dm_buf_printf(b, "\\u%04x", c));
        else DM_CALL(dm_buf_addc(b, (char)c));
    }
    return dm_buf_addc(b, '"');
}
