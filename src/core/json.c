/* json.c: recursive-descent JSON / Python-literal parser, see json.h. */
#include "json.h"
#include "err.h"
#include "lines.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dm_jblock {
    struct dm_jblock *next;
    size_t used, cap;
    char data[];
};

static void *arena_alloc(dm_jdoc *d, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct dm_jblock *b = d->cur;
    while (b && b->used + n > b->cap) {
        b = b->next;
        if (b) b->used = 0;
        d->cur = b ? b : d->cur;
    }
    if (!b) {
        size_t cap = n > (1u << 16) ? n : (1u << 16);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = NULL;
        b->used = 0;
        b->cap = cap;
        if (!d->blocks) d->blocks = b;
        else {
            struct dm_jblock *t = d->blocks;
            while (t->next) t = t->next;
            t->next = b;
        }
        d->cur = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void dm_jdoc_reset(dm_jdoc *d)
{
    d->cur = d->blocks;
    if (d->cur) d->cur->used = 0;
}

void dm_jdoc_free(dm_jdoc *d)
{
    struct dm_jblock *b = d->blocks;
    while (b) {
        struct dm_jblock *n = b->next;
        free(b);
        b = n;
    }
    d->blocks = d->cur = NULL;
}

typedef struct {
    dm_jdoc *doc;
    const char *s;
    size_t n, i;
    int py;
    int depth;
    dm_jerr *err;
} P;

static int fail(P *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(P *p, const char *fmt, ...)
{
    if (p->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err->what, sizeof p->err->what, fmt, ap);
        va_end(ap);
        p->err->offset = p->i;
    }
    return 1;
}

static int oom(P *p)
{
    if (p->err) {
        snprintf(p->err->what, sizeof p->err->what, "out of memory");
        p->err->offset = p->i;
    }
    return -1;
}

static void ws(P *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->i++;
        else break;
    }
}

static const char *show(P *p)
{
    static _Thread_local char b[16];
    if (p->i >= p->n) return "end of input";
    unsigned char c = (unsigned char)p->s[p->i];
    if (c >= 32 && c < 127) snprintf(b, sizeof b, "'%c'", c);
    else snprintf(b, sizeof b, "byte 0x%02x", c);
    return b;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63)); return 4;
}

static int read_hex(P *p, int ndig, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < ndig; k++) {
        if (p->i >= p->n) return fail(p, "truncated escape: expected %d hex digits", ndig);
        int h = hexval(p->s[p->i]);
        if (h < 0) return fail(p, "bad escape: expected a hex digit, found %s", show(p));
        v = v * 16 + (uint32_t)h;
        p->i++;
    }
    *out = v;
    return 0;
}

/* Parses a quoted string at p->i (quote char q); output decoded UTF-8 into the arena. */
static int parse_string(P *p, const char **out, size_t *outlen)
{
    char q = p->s[p->i];
    size_t start = ++p->i;
    /* the decoded string is never longer than the source (escapes shrink; \x80 -> 2 bytes from 4) */
    size_t end = start;
    while (end < p->n && p->s[end] != q) {
        if (p->s[end] == '\\') end++;
        end++;
    }
    if (end >= p->n) {
        p->i = start - 1;
        return fail(p, "unterminated string");
    }
    char *o = arena_alloc(p->doc, end - start + 1);
    if (!o) return oom(p);
    size_t k = 0;
    while (p->i < end) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '\\') {
            p->i++;
            char e = p->s[p->i++];
            uint32_t cp = 0;
            switch (e) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u':
                if (read_hex(p, 4, &cp)) return 1;
                if (cp >= 0xD800 && cp < 0xDC00 && p->i + 6 <= end && p->s[p->i] == '\\' &&
                    p->s[p->i + 1] == 'u') {
                    uint32_t lo;
                    p->i += 2;
                    if (read_hex(p, 4, &lo)) return 1;
                    if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else {
                        k += put_utf8(o + k, 0xFFFD);
                        cp = lo;
                    }
                }
                if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* lone surrogate */
                k += put_utf8(o + k, cp);
                break;
            default:
                if (p->py && e == '\'') o[k++] = '\'';
                else if (p->py && e == 'x') {
                    if (read_hex(p, 2, &cp)) return 1;
                    k += put_utf8(o + k, cp);
                } else if (p->py && e == 'U') {
                    if (read_hex(p, 8, &cp)) return 1;
                    if (cp > 0x10FFFF) return fail(p, "bad \\U escape: code point out of range");
                    k += put_utf8(o + k, cp);
                } else if (p->py && e == 'a') o[k++] = '\a';
                else if (p->py && e == 'v') o[k++] = '\v';
                else if (p->py && e == '0') o[k++] = '\0';
                else if (p->py && e == '\n') { /* line continuation */ }
                else {
                    p->i -= 1;
                    return fail(p, "bad escape '\\%c' in string", e);
                }
            }
        } else {
            if (c < 0x20 && !p->py) return fail(p, "control character (byte 0x%02x) inside a string", c);
            o[k++] = (char)c;
            p->i++;
        }
    }
    p->i = end + 1;
    o[k] = '\0';
    *out = o;
    *outlen = k;
    return 0;
}

static int parse_value(P *p, dm_json **out);

static int match_word(P *p, const char *w)
{
    size_t l = strlen(w);
    if (p->i + l <= p->n && memcmp(p->s + p->i, w, l) == 0) {
        char c = p->i + l < p->n ? p->s[p->i + l] : ' ';
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') return 0;
        p->i += l;
        return 1;
    }
    return 0;
}

static int parse_number(P *p, dm_json *v)
{
    size_t st = p->i;
    if (p->i < p->n && (p->s[p->i] == '-' || (p->py && p->s[p->i] == '+'))) p->i++;
    if (p->py && (match_word(p, "inf") || match_word(p, "nan"))) goto done;
    if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9'))
        return fail(p, "expected a value, found %s", show(p));
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9'))
            return fail(p, "bad number: expected exponent digits");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->py && p->i < p->n && (p->s[p->i] == 'L' || p->s[p->i] == 'l')) p->i++; /* py2 long */
done:;
    char *t = arena_alloc(p->doc, p->i - st + 1);
    if (!t) return oom(p);
    memcpy(t, p->s + st, p->i - st);
    t[p->i - st] = '\0';
    v->type = DM_JNUM;
    v->str = t;
    v->len = p->i - st;
    return 0;
}

static int parse_container(P *p, dm_json *v, char open)
{
    int obj = open == '{';
    char close = obj ? '}' : (open == '[' ? ']' : ')');
    v->type = obj ? DM_JOBJ : DM_JARR;
    p->i++;
    if (++p->depth > 512) return fail(p, "nesting deeper than 512 levels");
    dm_json **tail = &v->child;
    for (;;) {
        ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            if (v->len > 0 && !p->py) return fail(p, "trailing comma before '%c'", close);
            p->i++;
            break;
        }
        const char *key = NULL;
        size_t keylen = 0;
        if (obj) {
            if (p->i >= p->n) return fail(p, "unterminated object: expected a member or '}'");
            char c = p->s[p->i];
            if (p->py && (c == 'u' || c == 'b') && p->i + 1 < p->n && (p->s[p->i + 1] == '\'' || p->s[p->i + 1] == '"')) p->i++, c = p->s[p->i];
            if (!(c == '"' || (p->py && c == '\''))) return fail(p, "expected a string key, found %s", show(p));
            int rc = parse_string(p, &key, &keylen);
            if (rc) return rc;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':' after key, found %s", show(p));
            p->i++;
        }
        dm_json *c;
        int rc = parse_value(p, &c);
        if (rc) return rc;
        c->key = key;
        c->keylen = keylen;
        *tail = c;
        tail = &c->next;
        v->len++;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            break;
        }
        return fail(p, "expected ',' or '%c', found %s", close, show(p));
    }
    p->depth--;
    return 0;
}

static int parse_value(P *p, dm_json **out)
{
    ws(p);
    dm_json *v = arena_alloc(p->doc, sizeof *v);
    if (!v) return oom(p);
    memset(v, 0, sizeof *v);
    v->offset = p->i;
    *out = v;
    if (p->i >= p->n) return fail(p, "expected a value, found end of input");
    char c = p->s[p->i];
    if (p->py && (c == 'u' || c == 'b' || c == 'r') && p->i + 1 < p->n && (p->s[p->i + 1] == '\'' || p->s[p->i + 1] == '"')) {
        p->i++;
        c = p->s[p->i];
    }
    if (c == '"' || (p->py && c == '\'')) {
        v->type = DM_JSTR;
        return parse_string(p, &v->str, &v->len);
    }
    if (c == '{' || c == '[' || (p->py && c == '(')) return parse_container(p, v, c);
    if (!p->py) {
        if (match_word(p, "true")) { v->type = DM_JBOOL; v->boolean = 1; return 0; }
        if (match_word(p, "false")) { v->type = DM_JBOOL; return 0; }
        if (match_word(p, "null")) { v->type = DM_JNULL; return 0; }
    } else {
        if (match_word(p, "True")) { v->type = DM_JBOOL; v->boolean = 1; return 0; }
        if (match_word(p, "False")) { v->type = DM_JBOOL; return 0; }
        if (match_word(p, "None")) { v->type = DM_JNULL; return 0; }
    }
    return parse_number(p, v);
}

int dm_json_parse(dm_jdoc *doc, const char *text, size_t n, int python, dm_json **root, dm_jerr *err)
{
    P p = {doc, text, n, 0, python, 0, err};
    int rc = parse_value(&p, root);
    if (rc) return rc;
    ws(&p);
    if (p.i != n) return fail(&p, "unexpected %s after the value", show(&p));
    return 0;
}

const dm_json *dm_json_get(const dm_json *o, const char *key)
{
    if (!o || o->type != DM_JOBJ) return NULL;
    size_t kl = strlen(key);
    for (const dm_json *c = o->child; c; c = c->next)
        if (c->keylen == kl && memcmp(c->key, key, kl) == 0) return c;
    return NULL;
}

const dm_json *dm_json_at(const dm_json *a, size_t i)
{
    if (!a || (a->type != DM_JARR && a->type != DM_JOBJ)) return NULL;
    const dm_json *c = a->child;
    while (c && i--) c = c->next;
    return c;
}

int dm_json_int(const dm_json *v, int64_t *out)
{
    if (!v || v->type != DM_JNUM) return 1;
    errno = 0;
    char *end;
    long long x = strtoll(v->str, &end, 10);
    if (errno == 0 && (*end == '\0' || *end == 'L' || *end == 'l')) {
        *out = x;
        return 0;
    }
    /* accept integral floats like 1.0e3 */
    double d = strtod(v->str, &end);
    if (*end || d != floor(d) || fabs(d) > 9.2e18) return 1;
    *out = (int64_t)d;
    return 0;
}

int dm_json_double(const dm_json *v, double *out)
{
    if (!v || v->type != DM_JNUM) return 1;
    char *end;
    *out = strtod(v->str, &end);
    return (*end && *end != 'L' && *end != 'l') ? 1 : 0;
}

const char *dm_json_type_name(dm_jtype t)
{
    static const char *n[] = {"null", "boolean", "number", "string", "array", "object"};
    return n[t];
}

size_t dm_json_quote(char *out, size_t cap, const char *s, size_t len)
{
    size_t k = 0;
#define PUT(ch) do { if (k + 1 < cap) out[k] = (ch); k++; } while (0)
    PUT('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { PUT('\\'); PUT((char)c); }
        else if (c == '\n') { PUT('\\'); PUT('n'); }
        else if (c == '\t') { PUT('\\'); PUT('t'); }
        else if (c == '\r') { PUT('\\'); PUT('r'); }
        else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            for (int j = 0; j < 6; j++) PUT(e[j]);
        } else PUT((char)c);
    }
    PUT('"');
    if (cap) out[k < cap ? k : cap - 1] = '\0';
#undef PUT
    return k;
}

int dm_json_load(const char *path, int want_object, dm_jdoc *doc, char **text, dm_json **root)
{
    size_t len;
    *text = NULL;
    DM_CALL(dm_read_file(path, text, &len));
    dm_jerr jerr;
    int rc = DM_OK, jr = dm_json_parse(doc, *text, len, 0, root, &jerr);
    if (jr) rc = DM_ERR(jr < 0 ? DM_ENOMEM : DM_EINPUT, "'%s': bad JSON at byte %zu: %s", path, jerr.offset, jerr.what);
    else if (want_object && (*root)->type != DM_JOBJ) rc = DM_ERR(DM_EINPUT, "'%s': expected a JSON object", path);
    if (rc) {
        dm_jdoc_free(doc);
        free(*text);
        *text = NULL;
    }
    return rc;
}
