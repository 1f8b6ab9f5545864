/* strv.c: vectors of strings, see strv.h. */
#include "strv.h"

#include "err.h"
#include "str.h"

#include <stdlib.h>
#include <string.h>

int dm_strv_push(char ***v, size_t *n, const char *s)
{
    char *d = dm_str_dup(s);
    if (!d) return DM_ENOMEM;
    char **nv = dm_realloc_at(*v, *n + 1, sizeof **v, __FILE__, __LINE__);
    if (!nv) {
        free(d);
        return DM_ENOMEM;
    }
    nv[(*n)++] = d;
    *v = nv;
    return DM_OK;
}

void dm_strv_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

int dm_strv_find(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return (int)i;
    return -1;
}

int dm_strv_split(const char *s, char sep, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int depth = 0, quote = 0;
    const char *start = s;
    for (const char *p = s;; p++) {
        char c = *p;
        if (c == '"') quote = !quote;
        else if (!quote && (c == '[' || c == '(')) depth++;
        else if (!quote && (c == ']' || c == ')') && depth > 0) depth--;
        if (c == '\0' || (c == sep && !depth && !quote)) {
            const char *a = start, *b = p;
            while (a < b && (*a == ' ' || *a == '\t' || *a == '\n')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n')) b--;
            if (b > a) {
                char *part = dm_str_ndup(a, (size_t)(b - a));
                char **nv = part ? dm_realloc_at(*out, *n + 1, sizeof **out, __FILE__, __LINE__) : NULL;
                if (!nv) {
                    free(part);
                    dm_strv_free(*out, *n);
                    *out = NULL;
                    *n = 0;
                    return DM_ENOMEM;
                }
                nv[(*n)++] = part;
                *out = nv;
            }
            if (c == '\0') break;
            start = p + 1;
        }
    }
    return DM_OK;
}
