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

/* the UTF-8 bytes of code point c into out (c valid, not 0): their count */
static int utf8_put(unsigned long c, char *out)
{
    if (c < 0x80) return out[0] = (char)c, 1;
    if (c < 0x800) return out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000) return out[0] = (char)(0xE0 | c >> 12), out[1] = (char)(0x80 | (c >> 6 & 0x3F)), out[2] = (char)(0x80 | (c & 0x3F)), 3;
    out[0] = (char)(0xF0 | c >> 18), out[1] = (char)(0x80 | (c >> 12 & 0x3F)), out[2] = (char)(0x80 | (c >> 6 & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* the reference at s ('&'): its text in out (*n bytes) and its length in *used; 0 when it is none */
static int html_ref(const char *s, char out[4], int *n, size_t *used)
{
    static const char *const named[][2] = {{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", " "}};
    const char *semi = strchr(s, ';');
    if (!semi || semi - s > 10 || semi - s < 3) return 0;
    size_t len = (size_t)(semi - s) - 1; /* between '&' and ';' */
    if (s[1] == '#') {
        int hex = s[2] == 'x' || s[2] == 'X';
        const char *d = s + 2 + hex;
        if (d == semi) return 0;
        unsigned long c = 0;
        for (const char *p = d; p < semi; p++) {
            int v = *p >= '0' && *p <= '9' ? *p - '0' : hex && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : hex && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
            if (v < 0) return 0;
            c = c * (hex ? 16 : 10) + (unsigned long)v;
        }
        if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        *n = utf8_put(c, out);
    } else {
        size_t k = 0;
        while (k < sizeof named / sizeof named[0] && (strlen(named[k][0]) != len || strncmp(s + 1, named[k][0], len))) k++;
        if (k == sizeof named / sizeof named[0]) return 0;
        *n = 1;
        out[0] = named[k][1][0];
    }
    *used = len + 2;
    return 1;
}

size_t dm_str_html_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        char buf[4];
        int n;
        size_t used;
        if (*r == '&' && html_ref(r, buf, &n, &used)) {
            memcpy(w, buf, (size_t)n);
            w += n, r += used;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}
