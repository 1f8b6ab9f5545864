/* report_util.c: helpers of sweep and report, see report_util.h. */
#include "report_util.h"

#include "../src/core/err.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int ru_key_type(const char *key)
{
    size_t n;
    const dm_key *k = dm_keys(&n);
    int i = dm_key_index(key);
    DM_ASSERT(i >= 0);
    return (int)k[i].type;
}

static int put_float(dm_buf *b, double x)
{
    char t[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x) break;
    }
    return dm_buf_adds(b, t);
}

int ru_value_text(const dm_cfg *c, const char *key, dm_buf *out)
{
    int i = dm_key_index(key);
    DM_ASSERT(i >= 0);
    size_t n;
    const dm_key *k = &dm_keys(&n)[i];
    const dm_cval *v = &c->v[i];
    switch (k->type) {
    case DM_KT_INT: return dm_buf_printf(out, "%lld", v->i);
    case DM_KT_FLOAT: return put_float(out, v->f);
    case DM_KT_BOOL: return dm_buf_adds(out, v->i ? "true" : "false");
    case DM_KT_STR:
    case DM_KT_ENUM: return dm_buf_adds(out, v->s ? v->s : "");
    default:
        DM_CALL(dm_buf_addc(out, '['));
        for (size_t j = 0; j < v->n; j++) {
            if (j) DM_CALL(dm_buf_addc(out, ','));
            if (k->type == DM_KT_INTS) DM_CALL(dm_buf_printf(out, "%lld", v->il[j]));
            else if (k->type == DM_KT_FLOATS) DM_CALL(put_float(out, v->fl[j]));
            else DM_CALL(dm_buf_adds(out, v->sl[j]));
        }
        return dm_buf_addc(out, ']');
    }
}

int ru_mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return DM_ERR(DM_EIO, "path too long: '%s'", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0775) != 0 && errno != EEXIST)
                return DM_ERR(DM_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return DM_OK;
}

int ru_write_atomic(const char *path, const void *data, size_t n, int mode)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp) return DM_ERR(DM_EIO, "path too long: '%s'", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        DM_ERR(DM_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        DM_HINT("check that the directory exists and is writable");
        return DM_EIO;
    }
    int bad = n && fwrite(data, 1, n, f) != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        remove(tmp);
        return DM_ERR(DM_EIO, "cannot write '%s': %s", tmp, strerror(errno));
    }
    chmod(tmp, (mode_t)mode);
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return DM_ERR(DM_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    }
    return DM_OK;
}

int ru_read_file(const char *path, char **out, size_t *n)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    dm_buf b = {0};
    char tmp[1 << 14];
    size_t k;
    int rc = DM_OK;
    while (!rc && (k = fread(tmp, 1, sizeof tmp, f)) > 0) rc = dm_buf_add(&b, tmp, k);
    if (!rc && ferror(f)) rc = DM_ERR(DM_EIO, "cannot read '%s': %s", path, strerror(errno));
    fclose(f);
    if (!rc && !b.data) rc = dm_buf_adds(&b, "");
    if (rc) {
        dm_buf_free(&b);
        return rc;
    }
    *out = b.data;
    if (n) *n = b.len;
    return DM_OK;
}

char *ru_strndup(const char *s, size_t n)
{
    char *d = dm_calloc_at(n + 1, 1, __FILE__, __LINE__);
    if (d) memcpy(d, s, n);
    return d;
}

char *ru_strdup(const char *s) { return ru_strndup(s, strlen(s)); }

int ru_strv_push(char ***v, size_t *n, const char *s)
{
    char *d = ru_strdup(s);
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

void ru_strv_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

int ru_strv_find(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return (int)i;
    return -1;
}

int ru_split(const char *s, char sep, char ***out, size_t *n)
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
                char *part = ru_strndup(a, (size_t)(b - a));
                if (!part) {
                    ru_strv_free(*out, *n);
                    return DM_ENOMEM;
                }
                char **nv = dm_realloc_at(*out, *n + 1, sizeof **out, __FILE__, __LINE__);
                if (!nv) {
                    free(part);
                    ru_strv_free(*out, *n);
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

int ru_is_number(const char *s, double *v)
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

int ru_match(const char *pattern, const char *s) { return fnmatch(pattern, s, 0) == 0; }

int ru_tex_escape(dm_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\': DM_CALL(dm_buf_adds(b, "\\textbackslash{}")); break;
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
            DM_CALL(dm_buf_addc(b, '\\'));
            DM_CALL(dm_buf_addc(b, *s));
            break;
        case '~': DM_CALL(dm_buf_adds(b, "\\textasciitilde{}")); break;
        case '^': DM_CALL(dm_buf_adds(b, "\\textasciicircum{}")); break;
        case '<': DM_CALL(dm_buf_adds(b, "\\textless{}")); break;
        case '>': DM_CALL(dm_buf_adds(b, "\\textgreater{}")); break;
        default: DM_CALL(dm_buf_addc(b, *s));
        }
    }
    return DM_OK;
}

int ru_json_str(dm_buf *b, const char *s)
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

int ru_gp_str(dm_buf *b, const char *s)
{
    DM_CALL(dm_buf_addc(b, '"'));
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') DM_CALL(dm_buf_addc(b, '\\'));
        DM_CALL(dm_buf_addc(b, *s));
    }
    return dm_buf_addc(b, '"');
}

void ru_slug(const char *s, char *out, size_t cap)
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
