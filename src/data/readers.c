/* readers.c: the input formats, see readers.h. */
#include "readers.h"

#include "../core/buf.h"
#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"
#include "../core/log.h"
#include "../core/str.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int in_stripe(const dm_stripe *s, int64_t k)
{
    if (!s || s->size <= 1) return 1;
    return ((k - 1) / s->block) % s->size == s->rank;
}

static int json_line_error(const char *path, int64_t line, const dm_jerr *e, int python)
{
    DM_ERR(DM_EINPUT, "'%s' line %lld: broken %s at column %zu: %s", path, (long long)line,
           python ? "Python literal" : "JSON", e->offset + 1, e->what);
    return DM_EINPUT;
}

static int need_str(const char *path, int64_t line, const dm_json *o, const char *key, const dm_json **out,
                    const char *fmt_hint)
{
    const dm_json *v = dm_json_get(o, key);
    if (!v) {
        DM_ERR(DM_EINPUT, "'%s' line %lld: no '%s' field", path, (long long)line, key);
        DM_HINT("%s", fmt_hint);
        return DM_EINPUT;
    }
    if (v->type != DM_JSTR && v->type != DM_JNUM) {
        DM_ERR(DM_EINPUT, "'%s' line %lld: '%s' must be a string, found %s", path, (long long)line, key,
               dm_json_type_name(v->type));
        return DM_EINPUT;
    }
    *out = v;
    return DM_OK;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

/* The next object of a JSON-lines file: reads on to the next line of this rank's stripe that is
 * not blank and parses it into doc (Python-literal syntax when python; with mixed, a line that is
 * not JSON is tried again as a Python literal: some 2018 files were released in the 2014 style).
 * DM_OK with *o the object, or NULL at the end of the file; a line that does not parse or is not an
 * object is an error naming the file and line (a syntax error with `hint` when given). */
static int json_next(dm_lines *r, const dm_stripe *s, dm_jdoc *doc, const char *path, int python, int mixed,
                     const char *hint, const dm_json **o)
{
    char *line;
    size_t len;
    *o = NULL;
    for (;;) {
        DM_CALL(dm_lines_next(r, &line, &len));
        if (!line) return DM_OK;
        if (in_stripe(s, r->lineno) && !is_blank(line, len)) break;
    }
    dm_jdoc_reset(doc);
    dm_json *v;
    dm_jerr e;
    int pr = dm_json_parse(doc, line, len, python, &v, &e);
    if (pr > 0 && mixed && !python) {
        dm_jdoc_reset(doc);
        dm_jerr e2;
        if (dm_json_parse(doc, line, len, 1, &v, &e2) == 0) pr = 0;
    }
    if (pr < 0) return DM_ERR(DM_ENOMEM, "out of memory parsing '%s'", path);
    if (pr > 0) {
        json_line_error(path, r->lineno, &e, python);
        if (hint) DM_HINT("%s", hint);
        return DM_EINPUT;
    }
    if (v->type != DM_JOBJ)
        return DM_ERR(DM_EINPUT, "'%s' line %lld: expected an object, found %s", path, (long long)r->lineno,
                      dm_json_type_name(v->type));
    *o = v;
    return DM_OK;
}

/* ---- timestamps -------------------------------------------------------------------------- */

enum { TIME_OK, TIME_NAN, TIME_RANGE, TIME_MS_RANGE };

/* [+-]digits[.digits][(e|E)[+-]digits]: what JSON and RecBole's float columns write (no hex, inf,
 * nan, which strtod would also take) */
static int is_decimal(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    const char *d = p;
    while (isdigit((unsigned char)*p)) p++;
    int digits = p > d;
    if (*p == '.') {
        p++;
        const char *q = p;
        while (isdigit((unsigned char)*p)) p++;
        digits |= p > q;
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        const char *q = p;
        while (isdigit((unsigned char)*p)) p++;
        if (p == q) return 0;
    }
    return *p == '\0';
}

/* A timestamp's text (NUL-terminated) to integer milliseconds: seconds unless `ms`; a decimal
 * (RecBole writes float seconds) is rounded to the nearest ms. Returns TIME_OK; TIME_NAN when it is
 * not a number; TIME_RANGE when the value does not fit a 64-bit integer of its own unit; TIME_MS_RANGE
 * when seconds do, but their milliseconds do not. Never a wrapped or saturated value. */
static int time_to_ms(const char *s, int ms, int64_t *out)
{
    if (!is_decimal(s)) return TIME_NAN;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end == '\0') {
        if (errno == ERANGE) return TIME_RANGE;
        if (ms) {
            *out = (int64_t)v;
            return TIME_OK;
        }
        int64_t m;
        if (__builtin_mul_overflow((int64_t)v, (int64_t)1000, &m)) return TIME_MS_RANGE;
        *out = m;
        return TIME_OK;
    }
    /* long double (64-bit mantissa on x86-64, 113 on aarch64) holds every int64 exactly, so values
       near the ends of the range are judged right, which double (53 bits) cannot do */
    long double d = strtold(s, &end);
    /* the int64 range is [-2^63, 2^63), and both ends are exact */
    const long double lim = 9223372036854775808.0L;
    if (!(d >= -lim && d < lim)) return TIME_RANGE;
    long double m = roundl(ms ? d : d * 1000.0L);
    if (!(m >= -lim && m < lim)) return ms ? TIME_RANGE : TIME_MS_RANGE;
    *out = (int64_t)m;
    return TIME_OK;
}

/* `where` is "column 3" or similar; `text` need not be NUL-terminated */
static int time_error(const char *path, int64_t line, const char *where, int code, const char *text, size_t n, int ms,
                      const char *hint)
{
    if (code == TIME_NAN)
        DM_ERR(DM_EINPUT, "'%s' line %lld %s: timestamp '%.*s' is not a number", path, (long long)line, where, (int)n, text);
    else if (code == TIME_RANGE)
        DM_ERR(DM_EINPUT, "'%s' line %lld %s: timestamp '%.*s' is out of range: %s must fit a 64-bit integer", path,
               (long long)line, where, (int)n, text, ms ? "milliseconds" : "seconds");
    else
        DM_ERR(DM_EINPUT, "'%s' line %lld %s: timestamp '%.*s' (seconds) overflows a 64-bit integer when converted to "
               "milliseconds", path, (long long)line, where, (int)n, text);
    DM_HINT("%s", hint);
    return DM_EINPUT;
}

/* ---- Amazon ------------------------------------------------------------------------------ */

int dm_read_amazon_reviews(const char *path, int version, const dm_stripe *s, int file_index, dm_raw *out)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    dm_jdoc doc = {0};
    int rc = DM_OK;
    const char *uk = version == 2023 ? "user_id" : "reviewerID";
    const char *ik = version == 2023 ? "parent_asin" : "asin";
    const char *tk = version == 2023 ? "timestamp" : "unixReviewTime";
    const char *hint = version == 2023 ? "Amazon 2023 reviews are JSON lines with user_id, parent_asin and timestamp (data.format = \"amazon2023\")"
                                       : "Amazon 2014/2018 reviews are JSON lines with reviewerID, asin and unixReviewTime";
    out->has_time = 1;
    for (;;) {
        const dm_json *o;
        DM_TRY(rc, json_next(&r, s, &doc, path, 0, 0, NULL, &o), done);
        if (!o) break;
        const dm_json *u, *it, *t;
        DM_TRY(rc, need_str(path, r.lineno, o, uk, &u, hint), done);
        DM_TRY(rc, need_str(path, r.lineno, o, ik, &it, hint), done);
        t = dm_json_get(o, tk);
        if (!t || t->type != DM_JNUM) {
            if (t)
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld column %zu: '%s' must be an integer timestamp, found %s", path,
                            (long long)r.lineno, t->offset + 1, tk, dm_json_type_name(t->type));
            else
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: '%s' must be an integer timestamp (field missing)", path,
                            (long long)r.lineno, tk);
            DM_HINT("%s", hint);
            goto done;
        }
        int64_t ms;
        int te = time_to_ms(t->str, version == 2023, &ms);
        if (te) {
            char where[64];
            snprintf(where, sizeof where, "column %zu ('%s')", t->offset + 1, tk);
            rc = time_error(path, r.lineno, where, te, t->str, t->len, version == 2023,
                            version == 2023 ? "Amazon 2023 timestamps are Unix times in milliseconds"
                                            : "Amazon 2014/2018 unixReviewTime is a Unix time in seconds");
            goto done;
        }
        DM_TRY(rc, dm_raw_push(out, u->str, u->len, it->str, it->len, ms, DM_ORDER(file_index, r.lineno, 0), -1), done);
    }
done:
    dm_jdoc_free(&doc);
    dm_lines_close(&r);
    return rc;
}

/* "$12.99" -> 12.99; ranges "$1.00 - $2.00" -> the lower end; anything else -> NaN */
static double parse_price(const dm_json *v)
{
    double x;
    if (!v) return NAN;
    if (v->type == DM_JNUM) return dm_json_double(v, &x) ? NAN : x;
    if (v->type != DM_JSTR) return NAN;
    const char *s = v->str;
    while (*s && (*s == '$' || isspace((unsigned char)*s))) s++;
    /* the number without its thousands separators (the text is NUL-terminated, of any length) */
    char *buf = malloc(strlen(s) + 1);
    if (!buf) return NAN;
    size_t k = 0;
    for (; *s; s++) {
        if (*s == ',') continue;
        if (!(isdigit((unsigned char)*s) || *s == '.')) break;
        buf[k++] = *s;
    }
    buf[k] = '\0';
    char *end;
    x = k ? strtod(buf, &end) : NAN;
    if (k && *end) x = NAN;
    free(buf);
    return x;
}

/* appends the strings of an array (levels) joined by '\t' */
static int join_path(dm_buf *b, const dm_json *arr)
{
    int first = 1;
    for (const dm_json *c = arr ? arr->child : NULL; c; c = c->next) {
        if (c->type != DM_JSTR || c->len == 0) continue;
        if (!first) DM_CALL(dm_buf_addc(b, '\t'));
        /* tabs or newlines inside a name would break the encoding */
        for (size_t i = 0; i < c->len; i++) DM_CALL(dm_buf_addc(b, (c->str[i] == '\t' || c->str[i] == '\n') ? ' ' : c->str[i]));
        first = 0;
    }
    return DM_OK;
}

int dm_read_amazon_meta(const char *path, int version, const dm_stripe *s, dm_meta *out)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    dm_jdoc doc = {0};
    dm_buf cats = {0}, title = {0}, brand = {0};
    int rc = DM_OK;
    int python = version == 2014;
    const char *ik = version == 2023 ? "parent_asin" : "asin";
    const char *hint = version == 2014 ? "Amazon 2014 metadata has one Python-literal dict per line with 'asin'"
                                       : (version == 2018 ? "Amazon 2018 metadata has one JSON object per line with 'asin'"
                                                          : "Amazon 2023 metadata has one JSON object per line with 'parent_asin'");
    for (;;) {
        const dm_json *o;
        DM_TRY(rc, json_next(&r, s, &doc, path, python, 1, hint, &o), done);
        if (!o) break;
        const dm_json *id;
        DM_TRY(rc, need_str(path, r.lineno, o, ik, &id, hint), done);
        const dm_json *t = dm_json_get(o, "title");
        dm_buf_reset(&title);
        int has_title = t && t->type == DM_JSTR;
        if (has_title) DM_TRY(rc, dm_buf_add(&title, t->str, t->len), done);
        const dm_json *b = dm_json_get(o, version == 2023 ? "store" : "brand");
        if (version == 2023 && (!b || b->type != DM_JSTR)) {
            const dm_json *det = dm_json_get(o, "details");
            b = det ? dm_json_get(det, "Brand") : NULL;
        }
        dm_buf_reset(&cats);
        if (version == 2014) {
            const dm_json *c = dm_json_get(o, "categories");
            int first = 1;
            for (const dm_json *p = c && c->type == DM_JARR ? c->child : NULL; p; p = p->next) {
                if (p->type != DM_JARR) continue;
                if (!first) DM_TRY(rc, dm_buf_addc(&cats, '\n'), done);
                DM_TRY(rc, join_path(&cats, p), done);
                first = 0;
            }
        } else {
            const dm_json *c = dm_json_get(o, version == 2023 ? "categories" : "category");
            if (c && c->type == DM_JARR && c->len > 0) DM_TRY(rc, join_path(&cats, c), done);
            else {
                const dm_json *mc = dm_json_get(o, version == 2023 ? "main_category" : "main_cat");
                if (mc && mc->type == DM_JSTR) DM_TRY(rc, dm_buf_add(&cats, mc->str, mc->len), done);
            }
        }
        double price = parse_price(dm_json_get(o, "price"));
        /* the scraped text keeps HTML character references ("L&#39;Oreal", "&amp;"): decoded */
        dm_buf_reset(&brand);
        int has_brand = b && b->type == DM_JSTR;
        if (has_brand) DM_TRY(rc, dm_buf_add(&brand, b->str, b->len), done);
        dm_buf *text[] = {&title, &brand, &cats};
        for (int k = 0; k < 3; k++)
            if (text[k]->data) text[k]->len = dm_str_html_unescape(text[k]->data);
        DM_TRY(rc, dm_meta_push(out, id->str, id->len, has_title ? (title.data ? title.data : "") : NULL,
                                has_brand ? (brand.data ? brand.data : "") : NULL, cats.data, NULL, price,
                                DM_ORDER(0, r.lineno, 0)), done);
    }
done:
    dm_buf_free(&cats);
    dm_buf_free(&title);
    dm_buf_free(&brand);
    dm_jdoc_free(&doc);
    dm_lines_close(&r);
    return rc;
}

/* ---- delimited files --------------------------------------------------------------------- */

/* The fields of one line: pointers into the line (not NUL-terminated), grown as needed, so that a
 * line may have any number of fields. */
typedef struct {
    char **f;   /* (cap) field starts */
    size_t *fl; /* (cap) field lengths */
    size_t n, cap;
} fields;

static int fields_add(fields *F, char *p, size_t l)
{
    if (F->n == F->cap) {
        size_t cap = F->cap ? 2 * F->cap : 64;
        DM_REALLOC(F->f, cap);
        DM_REALLOC(F->fl, cap);
        F->cap = cap;
    }
    F->f[F->n] = p;
    F->fl[F->n++] = l;
    return DM_OK;
}

static void fields_free(fields *F)
{
    free(F->f);
    free(F->fl);
    memset(F, 0, sizeof *F);
}

enum { SPLIT_QUOTE = -2, SPLIT_AFTER_QUOTE = -3 };

/* Splits a line into fields; for ',' honours RFC 4180 quotes (in place, quotes removed). Returns
 * DM_OK, SPLIT_QUOTE (an unterminated quote), SPLIT_AFTER_QUOTE (text after a closing quote), or
 * DM_ENOMEM. */
static int split_fields(char *line, size_t len, char sep, fields *F)
{
    F->n = 0;
    size_t i = 0;
    for (;;) {
        if (sep == ',' && i < len && line[i] == '"') {
            size_t w = i, j = i + 1;
            for (;;) {
                if (j >= len) return SPLIT_QUOTE;
                if (line[j] == '"') {
                    if (j + 1 < len && line[j + 1] == '"') {
                        line[w++] = '"';
                        j += 2;
                        continue;
                    }
                    j++;
                    break;
                }
                line[w++] = line[j++];
            }
            DM_CALL(fields_add(F, line + i, w - i));
            if (j < len && line[j] != sep) return SPLIT_AFTER_QUOTE;
            if (j >= len) break;
            i = j + 1;
            continue;
        }
        char *p = memchr(line + i, sep, len - i);
        size_t e = p ? (size_t)(p - line) : len;
        DM_CALL(fields_add(F, line + i, e - i));
        if (!p) break;
        i = e + 1;
    }
    /* trim spaces around fields */
    for (size_t k = 0; k < F->n; k++) {
        while (F->fl[k] && isspace((unsigned char)F->f[k][0])) F->f[k]++, F->fl[k]--;
        while (F->fl[k] && isspace((unsigned char)F->f[k][F->fl[k] - 1])) F->fl[k]--;
    }
    return DM_OK;
}

static int split_error(const char *path, int64_t line, int code)
{
    if (code > 0) return code; /* out of memory, already recorded */
    return DM_ERR(DM_EINPUT, "'%s' line %lld: %s", path, (long long)line,
                  code == SPLIT_QUOTE ? "an unterminated quote" : "text after a closing quote");
}

/* Reads line 1 of a table (an empty file is an error, with `hint` when not NULL), decides *sep
 * when it is 0 (tab if line 1 has one, else comma) and splits a copy of line 1 into H (the fields
 * point into *copy, which the caller frees). *line / *len stay line 1. */
static int first_line_fields(dm_lines *r, const char *path, const char *hint, char *sep, char **line, size_t *len,
                             char **copy, fields *H)
{
    DM_CALL(dm_lines_next(r, line, len));
    if (!*line) {
        int rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
        if (hint) DM_HINT("%s", hint);
        return rc;
    }
    if (!*sep) *sep = memchr(*line, '\t', *len) ? '\t' : ',';
    *copy = malloc(*len + 1);
    if (!*copy) return DM_ERR(DM_ENOMEM, "out of memory");
    memcpy(*copy, *line, *len + 1);
    int e = split_fields(*copy, *len, *sep, H);
    return e ? split_error(path, 1, e) : DM_OK;
}

static int is_int(const char *s, size_t n)
{
    size_t i = 0;
    if (n && (s[0] == '-' || s[0] == '+')) i = 1;
    if (i == n) return 0;
    for (; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* Resolves a column spec (name or index) against a header; -1 = not found. */
static int find_col(const char *spec, const fields *H, int have_header)
{
    if (!spec || !spec[0]) return -1;
    if (have_header)
        for (size_t k = 0; k < H->n; k++) {
            /* RecBole-style "name:type" headers match on the name */
            size_t l = H->fl[k];
            const char *colon = memchr(H->f[k], ':', l);
            size_t ln = colon ? (size_t)(colon - H->f[k]) : l;
            if ((strlen(spec) == l && !memcmp(spec, H->f[k], l)) || (strlen(spec) == ln && !memcmp(spec, H->f[k], ln)))
                return (int)k;
        }
    if (is_int(spec, strlen(spec))) return atoi(spec);
    return -1;
}

/* "column 3" (1-based, as cut and awk count), with the header's name when there is one */
static void column_name(char *out, size_t cap, int col, const fields *H, int have_header)
{
    if (have_header && col >= 0 && (size_t)col < H->n)
        snprintf(out, cap, "column %d ('%.*s')", col + 1, (int)(H->fl[col] < 64 ? H->fl[col] : 64), H->f[col]);
    else
        snprintf(out, cap, "column %d", col + 1);
}

/* parses field text that is not NUL-terminated: the byte after it is in the line buffer (the
 * separator, or the line's NUL), so it is swapped for a NUL and back */
static int field_time(char *s, size_t n, int ms, int64_t *out)
{
    char c = s[n];
    s[n] = '\0';
    int rc = time_to_ms(s, ms, out);
    s[n] = c;
    return rc;
}

/* logs, once per file, which header auto-detection found */
static void log_header(const char *path, const fields *H, const char *why)
{
    dm_buf b = {0};
    size_t show = H->n < 16 ? H->n : 16;
    for (size_t k = 0; k < show; k++)
        if (dm_buf_printf(&b, "%s'%.*s'", k ? ", " : "", (int)(H->fl[k] < 64 ? H->fl[k] : 64), H->f[k])) break;
    if (show < H->n) dm_buf_printf(&b, ", ... (%zu in all)", H->n);
    dm_log("'%s': line 1 taken as a header (%s), column names %s; set data.header = \"no\" if it is data", path, why,
           b.data ? b.data : "");
    dm_buf_free(&b);
}

int dm_read_tsv(const char *path, const dm_tsv_opts *o, const dm_stripe *s, int file_index, int part, dm_raw *out)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    int rc = DM_OK;
    fields H = {0}, F = {0};
    char *line;
    size_t len;
    char sep = o->sep;
    int header = o->header;
    int uc = -1, ic = -1, tc = -1, pc = -1;
    int has_split = o->split_col && o->split_col[0];
    int64_t data_line = 0;
    char *hdr_copy = NULL;
    /* data.header = "no" and line 1's ids are not integers: set while line 2 is to be compared */
    int probe = 0, probe_col = -1;
    DM_TRY(rc, first_line_fields(&r, path, "an interaction file needs at least one 'user item' line", &sep, &line, &len,
                                 &hdr_copy, &H), done);
    {
        int ui = is_int(o->user_col, strlen(o->user_col)) ? atoi(o->user_col) : -1;
        int ii = is_int(o->item_col, strlen(o->item_col)) ? atoi(o->item_col) : -1;
        int ids_int = ui >= 0 && ii >= 0 && (size_t)ui < H.n && (size_t)ii < H.n && is_int(H.f[ui], H.fl[ui]) &&
                      is_int(H.f[ii], H.fl[ii]);
        if (header < 0) {
            /* a header when the id columns (by index) are not all integers, or columns are named */
            header = ui < 0 || ii < 0 || !ids_int;
            if (header)
                log_header(path, &H, ui < 0 || ii < 0 ? "data.user_col / data.item_col are names"
                                                       : "its id columns are not integers");
        } else if (header == 0 && ui >= 0 && ii >= 0 && !ids_int && (size_t)ui < H.n && (size_t)ii < H.n) {
            probe = 1;
            probe_col = is_int(H.f[ui], H.fl[ui]) ? ii : ui;
        }
        uc = find_col(o->user_col, &H, header);
        ic = find_col(o->item_col, &H, header);
        tc = o->time_col && o->time_col[0] ? find_col(o->time_col, &H, header) : -1;
        pc = has_split ? find_col(o->split_col, &H, header) : -1;
        const char *bad = uc < 0 ? o->user_col : (ic < 0 ? o->item_col : ((o->time_col && o->time_col[0] && tc < 0) ? o->time_col : NULL));
        if (!bad && has_split && pc < 0) bad = o->split_col;
        if (bad) {
            rc = DM_ERR(DM_ECONFIG, "'%s' line 1: no column '%s'%s", path, bad, header ? " in the header" : "");
            DM_HINT("set data.user_col / data.item_col / data.time_col / data.split_col to a header name or a 0-based index (the first line has %zu fields)", H.n);
            goto done;
        }
    }
    out->has_time |= tc >= 0;
    if (header) {
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
    }
    int need = (uc > ic ? uc : ic);
    if (tc > need) need = tc;
    if (pc > need) need = pc;
    for (; line; ) {
        data_line++;
        int blank = is_blank(line, len);
        int mine = in_stripe(s, data_line) && !blank;
        /* every rank reads every line, so each makes the line-2 comparison whatever its stripe */
        int check = probe && !blank && r.lineno > 1;
        if (mine || check) {
            int e = split_fields(line, len, sep, &F);
            if (e) {
                rc = split_error(path, r.lineno, e);
                goto done;
            }
            if (check && F.n > (size_t)(uc > ic ? uc : ic)) {
                probe = 0;
                if (is_int(F.f[uc], F.fl[uc]) && is_int(F.f[ic], F.fl[ic])) {
                    rc = DM_ERR(DM_EINPUT, "'%s' line 1 column %d: id '%.*s' is not an integer, while the ids on line %lld "
                                "are: line 1 looks like a header, and data.header = \"no\"", path, probe_col + 1,
                                (int)(H.fl[probe_col] < 64 ? H.fl[probe_col] : 64), H.f[probe_col], (long long)r.lineno);
                    DM_HINT("set data.header = \"yes\" (or \"auto\") to skip it");
                    goto done;
                }
            }
        }
        if (mine) {
            if (F.n <= (size_t)need) {
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected at least %d fields separated by '%s', found %zu", path,
                            (long long)r.lineno, need + 1, sep == '\t' ? "\\t" : (char[2]){sep, 0}, F.n);
                DM_HINT("check data.sep and the column settings");
                goto done;
            }
            if (F.fl[uc] == 0 || F.fl[ic] == 0) {
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: empty %s id", path, (long long)r.lineno, F.fl[uc] == 0 ? "user" : "item");
                goto done;
            }
            int64_t t = 0;
            int te = tc >= 0 ? field_time(F.f[tc], F.fl[tc], o->time_ms, &t) : TIME_OK;
            if (te) {
                char where[96];
                column_name(where, sizeof where, tc, &H, header);
                rc = time_error(path, r.lineno, where, te, F.f[tc], F.fl[tc], o->time_ms,
                                "timestamps are Unix times: integer seconds, or milliseconds with data.time_ms = true");
                goto done;
            }
            int8_t lp = (int8_t)part;
            if (pc >= 0) {
                if (F.fl[pc] != 1 || F.f[pc][0] < '0' || F.f[pc][0] > '2') {
                    char where[96];
                    column_name(where, sizeof where, pc, &H, header);
                    rc = DM_ERR(DM_EINPUT, "'%s' line %lld %s: split '%.*s'; expected 0 (train), 1 (validation) or 2 (test)",
                                path, (long long)r.lineno, where, (int)(F.fl[pc] < 64 ? F.fl[pc] : 64), F.f[pc]);
                    goto done;
                }
                lp = (int8_t)(F.f[pc][0] - '0');
            }
            DM_TRY(rc, dm_raw_push(out, F.f[uc], F.fl[uc], F.f[ic], F.fl[ic], t, DM_ORDER(file_index, r.lineno, 0), lp), done);
        }
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
    }
done:
    free(hdr_copy);
    fields_free(&H);
    fields_free(&F);
    dm_lines_close(&r);
    return rc;
}

int dm_read_recbole_inter(const char *path, const dm_stripe *s, dm_raw *out)
{
    /* check the typed header, then read as TSV by column name */
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    char *line;
    size_t len;
    int rc = dm_lines_next(&r, &line, &len);
    int has_time = 0;
    if (!rc && !line) {
        rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
        DM_HINT("a RecBole .inter file starts with a header like user_id:token<TAB>item_id:token<TAB>timestamp:float");
    }
    if (!rc) {
        if (!strstr(line, "user_id:") || !strstr(line, "item_id:")) {
            rc = DM_ERR(DM_EINPUT, "'%s' line 1: expected a RecBole header with user_id:token and item_id:token", path);
            DM_HINT("RecBole atomic files start with typed column names, e.g. user_id:token<TAB>item_id:token");
        }
        has_time = strstr(line, "timestamp:") != NULL;
    }
    dm_lines_close(&r);
    DM_CALL(rc);
    dm_tsv_opts o = {'\t', 1, "user_id", "item_id", has_time ? "timestamp" : "", 0, NULL};
    return dm_read_tsv(path, &o, s, 0, -1, out);
}

int dm_read_item_map(const char *inter, const char *mapped, const dm_tsv_opts *o, dm_item_map *out)
{
    dm_raw a = {0}, b = {0};
    dm_strmap back = {0};
    int64_t *back_orig = NULL;
    memset(out, 0, sizeof *out);
    int rc = dm_read_tsv(inter, o, NULL, 0, -1, &a);
    if (!rc) rc = dm_read_tsv(mapped, o, NULL, 1, -1, &b);
    if (!rc && a.n != b.n) {
        rc = DM_ERR(DM_EINPUT, "'%s' has %zu interactions and '%s' %zu: data.item_map must hold the same rows as data.inter",
                    mapped, b.n, inter, a.n);
        DM_HINT("data.item_map is data.inter with the original ids, row for row (Last.fm-2k: lfm2k_og_ids.inter beside lfm2k.inter)");
    }
    if (!rc && a.n && !(back_orig = malloc(a.items.keys.n * sizeof *back_orig))) rc = DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < a.n; i++) {
        size_t dl, ol;
        const char *d = dm_strtab_get(&a.items.keys, (size_t)a.item[i], &dl);
        const char *g = dm_strtab_get(&b.items.keys, (size_t)b.item[i], &ol);
        int64_t k, j;
        int added, added_back;
        if ((rc = dm_strmap_intern(&out->orig, g, ol, &k, &added))) break;
        if ((rc = dm_strmap_intern(&back, d, dl, &j, &added_back))) break;
        if (added_back) back_orig[j] = k;
        if (added) {
            if ((rc = dm_strtab_add(&out->dense, d, dl))) break;
        }
        size_t el;
        const char *e = dm_strtab_get(&out->dense, (size_t)k, &el);
        if (el != dl || memcmp(e, d, dl)) {
            rc = DM_ERR(DM_EINPUT, "'%s' interaction %zu: original id '%.*s' names item '%.*s' of '%s', and item '%.*s' before",
                        mapped, i + 1, (int)ol, g, (int)dl, d, inter, (int)el, e);
            break;
        }
        if (back_orig[j] != k) {
            size_t pl;
            const char *p = dm_strtab_get(&out->orig.keys, (size_t)back_orig[j], &pl);
            rc = DM_ERR(DM_EINPUT, "'%s' interaction %zu: item '%.*s' of '%s' has original id '%.*s', and '%.*s' before",
                        mapped, i + 1, (int)dl, d, inter, (int)ol, g, (int)pl, p);
            break;
        }
    }
    free(back_orig);
    dm_strmap_free(&back);
    dm_raw_free(&a);
    dm_raw_free(&b);
    if (rc) dm_item_map_free(out);
    return rc;
}

void dm_item_map_free(dm_item_map *m)
{
    dm_strmap_free(&m->orig);
    dm_strtab_free(&m->dense);
    memset(m, 0, sizeof *m);
}

/* One item table: calls back per data row with the id and value fields (value NULL when the
 * column is absent). */
typedef int (*table_row_fn)(void *ctx, const char *path, int64_t line, const char *id, size_t idl, const char *v,
                            size_t vl);

static int read_table(const char *path, char sep, const char *id_col, const char *val_col, const char *what,
                      table_row_fn fn, void *ctx)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    int rc = DM_OK;
    fields H = {0}, F = {0};
    char *line, *hdr = NULL;
    size_t len;
    DM_TRY(rc, first_line_fields(&r, path, "an item table starts with a header line naming its columns", &sep, &line, &len,
                                 &hdr, &H), done);
    int ci = find_col(id_col, &H, 1), cv = val_col && val_col[0] ? find_col(val_col, &H, 1) : -1;
    if (ci < 0 || (val_col && val_col[0] && cv < 0)) {
        rc = DM_ERR(DM_ECONFIG, "'%s' line 1: no column '%s' in the header", path, ci < 0 ? id_col : val_col);
        DM_HINT("set %s to a header name or a 0-based index (the header has %zu fields)", what, H.n);
        goto done;
    }
    int need = ci > cv ? ci : cv;
    for (;;) {
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
        if (!line) break;
        if (is_blank(line, len)) continue;
        int e = split_fields(line, len, sep, &F);
        if (e) {
            rc = split_error(path, r.lineno, e);
            goto done;
        }
        if (F.n <= (size_t)need) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected at least %d fields separated by '%s', found %zu", path,
                        (long long)r.lineno, need + 1, sep == '\t' ? "\\t" : (char[2]){sep, 0}, F.n);
            goto done;
        }
        if (F.fl[ci] == 0) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: empty item id", path, (long long)r.lineno);
            goto done;
        }
        DM_TRY(rc, fn(ctx, path, r.lineno, F.f[ci], F.fl[ci], cv >= 0 ? F.f[cv] : NULL, cv >= 0 ? F.fl[cv] : 0), done);
    }
done:
    free(hdr);
    fields_free(&H);
    fields_free(&F);
    dm_lines_close(&r);
    return rc;
}

typedef struct {
    const dm_item_map *map;
    dm_strmap seen;    /* ids of this table (translated) */
    int64_t *line;     /* (seen) line of each */
    size_t cap;
    dm_strtab val;     /* (seen) the value: title, or tags joined by '\n' */
    size_t skipped;
    int tags;
    dm_buf b;
} table_acc;

static int table_row(void *ctx, const char *path, int64_t line, const char *id, size_t idl, const char *v, size_t vl)
{
    table_acc *A = ctx;
    if (A->map) {
        int64_t k = dm_strmap_find(&A->map->orig, id, idl);
        if (k < 0) {
            A->skipped++;
            return DM_OK;
        }
        id = dm_strtab_get(&A->map->dense, (size_t)k, &idl);
    }
    int64_t k;
    int added;
    DM_CALL(dm_strmap_intern(&A->seen, id, idl, &k, &added));
    if (!added)
        return DM_ERR(DM_EINPUT, "'%s' line %lld: item '%.*s' is listed again (first on line %lld)", path, (long long)line,
                      (int)idl, id, (long long)A->line[k]);
    if ((size_t)k >= A->cap) {
        A->cap = A->cap ? 2 * A->cap : 1024;
        DM_REALLOC(A->line, A->cap);
    }
    A->line[k] = line;
    dm_buf_reset(&A->b);
    if (A->tags) {
        /* comma-separated tags, each one category path of one level */
        size_t i = 0;
        while (i < vl) {
            while (i < vl && (v[i] == ',' || isspace((unsigned char)v[i]))) i++;
            size_t j = i;
            while (j < vl && v[j] != ',') j++;
            size_t e = j;
            while (e > i && isspace((unsigned char)v[e - 1])) e--;
            if (e > i) {
                if (A->b.len) DM_CALL(dm_buf_addc(&A->b, '\n'));
                DM_CALL(dm_buf_add(&A->b, v + i, e - i));
            }
            i = j;
        }
    } else if (v)
        DM_CALL(dm_buf_add(&A->b, v, vl));
    return dm_strtab_add(&A->val, A->b.len ? A->b.data : "", A->b.len);
}

static void table_acc_free(table_acc *A)
{
    dm_strmap_free(&A->seen);
    dm_strtab_free(&A->val);
    free(A->line);
    dm_buf_free(&A->b);
}

/* Adds one item of the tables to out: its title (row ti of T, or none) and tags (row gi of G, or
 * none); dm_meta_push reads NUL-terminated fields, the ids by length. */
static int push_item(dm_meta *out, const char *id, size_t idl, const table_acc *T, int64_t ti, const table_acc *G,
                     int64_t gi, int64_t order)
{
    size_t tl = 0, gl = 0;
    const char *tv = ti >= 0 ? dm_strtab_get(&T->val, (size_t)ti, &tl) : NULL;
    const char *gv = gi >= 0 ? dm_strtab_get(&G->val, (size_t)gi, &gl) : NULL;
    char *title = tv ? dm_str_ndup(tv, tl) : NULL, *tags = gv ? dm_str_ndup(gv, gl) : NULL;
    int rc;
    if ((tv && !title) || (gv && !tags)) rc = DM_ERR(DM_ENOMEM, "out of memory");
    else rc = dm_meta_push(out, id, idl, title, NULL, tags && tags[0] ? tags : NULL, NULL, NAN, order);
    free(title);
    free(tags);
    return rc;
}

int dm_read_item_tables(const dm_item_tables *t, const dm_item_map *map, dm_meta *out, size_t *skipped)
{
    table_acc T = {.map = map}, G = {.map = map, .tags = 1};
    int rc = DM_OK, has_title = t->title_col && t->title_col[0];
    *skipped = 0;
    if (t->path && t->path[0])
        DM_TRY(rc, read_table(t->path, t->sep, t->id_col, t->title_col, "data.meta_cols", table_row, &T), done);
    if (t->tags_path && t->tags_path[0])
        DM_TRY(rc, read_table(t->tags_path, t->sep, t->tags_id_col, t->tags_col, "data.tags_cols", table_row, &G), done);
    /* the title table's items in its order, then the items only the tags table names */
    for (size_t i = 0; i < T.seen.keys.n && !rc; i++) {
        size_t idl;
        const char *id = dm_strtab_get(&T.seen.keys, i, &idl);
        rc = push_item(out, id, idl, &T, has_title ? (int64_t)i : -1, &G, dm_strmap_find(&G.seen, id, idl),
                       DM_ORDER(0, T.line[i], 0));
    }
    for (size_t i = 0; i < G.seen.keys.n && !rc; i++) {
        size_t idl;
        const char *id = dm_strtab_get(&G.seen.keys, i, &idl);
        if (dm_strmap_find(&T.seen, id, idl) < 0) rc = push_item(out, id, idl, &T, -1, &G, (int64_t)i, DM_ORDER(1, G.line[i], 0));
    }
    *skipped = T.skipped + G.skipped;
done:
    table_acc_free(&T);
    table_acc_free(&G);
    return rc;
}

/* Appends the attributes of a RecBole .item field (header name "name:type") to attrs, '\t'-joined:
 * "name=value"; a _seq type gives one per space-separated element. */
static int extra_attrs(const fields *H, size_t k, const char *v, size_t vl, dm_buf *attrs)
{
    const char *h = H->f[k], *colon = memchr(h, ':', H->fl[k]);
    size_t hn = colon ? (size_t)(colon - h) : H->fl[k];
    int seq = colon && H->fl[k] - hn > 4 && !memcmp(h + H->fl[k] - 4, "_seq", 4);
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (v[i] == ' ' || (seq && v[i] == ','))) i++;
        size_t j = i;
        if (seq)
            while (j < vl && v[j] != ' ' && v[j] != ',') j++;
        else
            j = vl;
        while (j > i && v[j - 1] == ' ') j--;
        if (j > i) {
            if (attrs->len) DM_CALL(dm_buf_addc(attrs, '\t'));
            DM_CALL(dm_buf_add(attrs, h, hn));
            DM_CALL(dm_buf_addc(attrs, '='));
            DM_CALL(dm_buf_add(attrs, v + i, j - i));
        }
        if (!seq) break;
        i = j + 1;
    }
    return DM_OK;
}

int dm_read_recbole_item(const char *path, const dm_stripe *s, dm_meta *out)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    int rc = DM_OK;
    fields H = {0}, F = {0};
    char *line, *hdr = NULL;
    size_t len;
    dm_buf cats = {0}, title = {0}, brand = {0}, attrs = {0};
    int8_t *extra = NULL;
    char sep = '\t';
    DM_TRY(rc, first_line_fields(&r, path, NULL, &sep, &line, &len, &hdr, &H), done);
    int ci = find_col("item_id", &H, 1), ct = find_col("title", &H, 1);
    if (ct < 0) ct = find_col("movie_title", &H, 1);
    int cb = find_col("brand", &H, 1), cc = find_col("categories", &H, 1);
    if (cc < 0) cc = find_col("genre", &H, 1);
    int cp = find_col("price", &H, 1);
    /* every other column becomes attributes "name=value" (token_seq/float_seq: one per element) */
    extra = calloc(H.n + 1, 1);
    if (!extra) {
        rc = DM_ERR(DM_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < H.n; k++)
        extra[k] = (int)k != ci && (int)k != ct && (int)k != cb && (int)k != cc && (int)k != cp && H.fl[k] > 0;
    if (ci < 0) {
        rc = DM_ERR(DM_EINPUT, "'%s' line 1: no item_id column in the header", path);
        DM_HINT("a RecBole .item file starts with item_id:token and attribute columns");
        goto done;
    }
    int64_t dl = 0;
    for (;;) {
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
        if (!line) break;
        dl++;
        if (!in_stripe(s, dl) || is_blank(line, len)) continue;
        int e = split_fields(line, len, '\t', &F);
        if (e) {
            rc = split_error(path, r.lineno, e);
            goto done;
        }
        size_t nf = F.n;
        char **f = F.f;
        size_t *fl = F.fl;
        if (nf <= (size_t)ci || fl[ci] == 0) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: missing item_id (field %d)", path, (long long)r.lineno, ci + 1);
            goto done;
        }
        dm_buf_reset(&title);
        dm_buf_reset(&brand);
        dm_buf_reset(&cats);
        int has_title = ct >= 0 && (size_t)ct < nf;
        if (has_title) DM_TRY(rc, dm_buf_add(&title, f[ct], fl[ct]), done);
        if (cb >= 0 && (size_t)cb < nf) DM_TRY(rc, dm_buf_add(&brand, f[cb], fl[cb]), done);
        if (cc >= 0 && (size_t)cc < nf) {
            /* token_seq: space-separated tokens (commas also separate), each a top-level category */
            int first = 1;
            size_t i = 0;
            while (i < fl[cc]) {
                while (i < fl[cc] && (f[cc][i] == ' ' || f[cc][i] == ',' || f[cc][i] == '\'')) i++;
                size_t j = i;
                while (j < fl[cc] && f[cc][j] != ' ' && f[cc][j] != ',' && f[cc][j] != '\'') j++;
                if (j > i) {
                    if (!first) DM_TRY(rc, dm_buf_addc(&cats, '\n'), done);
                    DM_TRY(rc, dm_buf_add(&cats, f[cc] + i, j - i), done);
                    first = 0;
                }
                i = j;
            }
        }
        double price = NAN;
        if (cp >= 0 && (size_t)cp < nf && fl[cp]) {
            /* the field in place, NUL-terminated for strtod (the byte after it is the separator or the line's NUL) */
            char c = f[cp][fl[cp]], *end;
            f[cp][fl[cp]] = '\0';
            double x = strtod(f[cp], &end);
            if (!*end) price = x;
            f[cp][fl[cp]] = c;
        }
        dm_buf_reset(&attrs);
        for (size_t k = 0; k < nf && k < H.n; k++)
            if (extra[k]) DM_TRY(rc, extra_attrs(&H, k, f[k], fl[k], &attrs), done);
        DM_TRY(rc, dm_meta_push(out, f[ci], fl[ci], has_title ? (title.data ? title.data : "") : NULL, brand.data,
                                cats.data, attrs.len ? attrs.data : NULL, price, DM_ORDER(0, r.lineno, 0)), done);
    }
done:
    free(hdr);
    free(extra);
    dm_buf_free(&attrs);
    fields_free(&H);
    fields_free(&F);
    dm_buf_free(&cats);
    dm_buf_free(&title);
    dm_buf_free(&brand);
    dm_lines_close(&r);
    return rc;
}

/* DM_ORDER keeps 20 bits for the position of a record within its line */
#define ORDER_POS_MAX ((1 << 20) - 1)

int dm_read_sasrec(const char *path, int layout, const dm_stripe *s, dm_raw *out)
{
    dm_lines r;
    int rc = DM_OK;
    fields F = {0};
    if (layout == 0) {
        /* decide from the first 100 non-blank lines: all with 2 fields = pairs */
        DM_CALL(dm_lines_open(&r, path));
        int seen = 0, pairs = 1;
        char *line;
        size_t len;
        while (seen < 100) {
            DM_TRY(rc, dm_lines_next(&r, &line, &len), scan_done);
            if (!line) break;
            if (is_blank(line, len)) continue;
            size_t n = 0;
            for (size_t i = 0; i < len;) {
                while (i < len && isspace((unsigned char)line[i])) i++;
                if (i < len) n++;
                while (i < len && !isspace((unsigned char)line[i])) i++;
            }
            if (n != 2) pairs = 0;
            seen++;
        }
        if (seen == 0) rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
    scan_done:
        dm_lines_close(&r);
        DM_CALL(rc);
        layout = pairs ? 1 : 2;
    }
    DM_CALL(dm_lines_open(&r, path));
    char *line;
    size_t len;
    int any = 0;
    for (;;) {
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
        if (!line) break;
        if (is_blank(line, len)) continue;
        any = 1;
        if (!in_stripe(s, r.lineno)) continue;
        /* whitespace-separated, any number of items */
        F.n = 0;
        for (size_t i = 0; i < len;) {
            while (i < len && isspace((unsigned char)line[i])) i++;
            if (i >= len) break;
            size_t j = i;
            while (j < len && !isspace((unsigned char)line[j])) j++;
            DM_TRY(rc, fields_add(&F, line + i, j - i), done);
            i = j;
        }
        if (layout == 1 && F.n != 2) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected 'user item', found %zu fields", path, (long long)r.lineno, F.n);
            DM_HINT("set data.sasrec_layout = \"sequences\" for one user per line");
            goto done;
        }
        if (layout == 2 && F.n < 2) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected 'user item item ...'", path, (long long)r.lineno);
            goto done;
        }
        if (F.n - 1 > ORDER_POS_MAX) {
            /* the input-order key (dataset.h) has room for 2^20 - 1 records per line */
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: %zu items on one line; at most %d fit the input-order key", path,
                        (long long)r.lineno, F.n - 1, ORDER_POS_MAX);
            DM_HINT("split the sequence over several lines of the same user, or write 'user item' pairs");
            goto done;
        }
        for (size_t k = 1; k < F.n; k++)
            DM_TRY(rc, dm_raw_push(out, F.f[0], F.fl[0], F.f[k], F.fl[k], 0, DM_ORDER(0, r.lineno, k), -1), done);
    }
    if (!any) rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
done:
    fields_free(&F);
    dm_lines_close(&r);
    return rc;
}

int dm_read_item2attributes(const char *path, dm_meta *out)
{
    char *text;
    size_t n;
    DM_CALL(dm_read_file(path, &text, &n));
    dm_jdoc doc = {0};
    dm_json *root;
    dm_jerr e;
    int rc = DM_OK;
    int pr = dm_json_parse(&doc, text, n, 0, &root, &e);
    if (pr) {
        /* report the line of the byte offset */
        int64_t line = 1;
        for (size_t i = 0; i < e.offset && i < n; i++) line += text[i] == '\n';
        rc = DM_ERR(DM_EINPUT, "'%s' line %lld (byte %zu): broken JSON: %s", path, (long long)line, e.offset, e.what);
        goto done;
    }
    if (root->type != DM_JOBJ) {
        rc = DM_ERR(DM_EINPUT, "'%s': expected a JSON object {\"item\": [attributes]}", path);
        goto done;
    }
    dm_buf attrs = {0};
    int64_t k = 0;
    for (const dm_json *c = root->child; c; c = c->next, k++) {
        dm_buf_reset(&attrs);
        if (c->type != DM_JARR) {
            rc = DM_ERR(DM_EINPUT, "'%s': item '%s' must map to a list of attributes, found %s", path, c->key,
                        dm_json_type_name(c->type));
            break;
        }
        for (const dm_json *a = c->child; a; a = a->next) {
            if (a->type != DM_JNUM && a->type != DM_JSTR) continue;
            if (attrs.len && (rc = dm_buf_addc(&attrs, '\t'))) break;
            if ((rc = dm_buf_add(&attrs, a->str, a->type == DM_JSTR ? a->len : strlen(a->str)))) break;
        }
        if (rc) break;
        rc = dm_meta_push(out, c->key, c->keylen, NULL, NULL, NULL, attrs.data ? attrs.data : "", NAN, DM_ORDER(0, k, 0));
        if (rc) break;
    }
    dm_buf_free(&attrs);
done:
    dm_jdoc_free(&doc);
    free(text);
    return rc;
}

/* ---- feature matrices -------------------------------------------------------------------- */

float dm_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {
            /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31)
        bits = sign | 0x7f800000u | man << 13;
    else
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int dm_read_npy(const char *path, float **data, size_t *rows, size_t *cols)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    int rc = DM_OK;
    unsigned char pre[10];
    char *hdr = NULL;
    void *raw = NULL;
    dm_jdoc doc = {0};
    size_t got = fread(pre, 1, 10, fp);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        rc = DM_ERR(DM_EINPUT, "'%s' is not a NumPy .npy file (bad magic at byte 0)", path);
        DM_HINT("save features with numpy.save(); raw float32 files need modal.<name>.shape");
        goto done;
    }
    int major = pre[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        unsigned char b2[2];
        if (fread(b2, 1, 2, fp) != 2) {
            rc = DM_ERR(DM_EINPUT, "'%s' is truncated in its header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)b2[0] << 16 | (size_t)b2[1] << 24;
        off = 12;
    } else {
        rc = DM_ERR(DM_EINPUT, "'%s': unsupported .npy format version %d.%d", path, pre[6], pre[7]);
        goto done;
    }
    if (hlen > (1u << 24)) {
        rc = DM_ERR(DM_EINPUT, "'%s': implausible .npy header length %zu", path, hlen);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        rc = DM_ERR(DM_ENOMEM, "out of memory");
        goto done;
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        rc = DM_ERR(DM_EINPUT, "'%s' is truncated in its header (byte %zu)", path, off);
        goto done;
    }
    hdr[hlen] = '\0';
    dm_json *h;
    dm_jerr e;
    if (dm_json_parse(&doc, hdr, hlen, 1, &h, &e) || h->type != DM_JOBJ) {
        rc = DM_ERR(DM_EINPUT, "'%s': unreadable .npy header at byte %zu", path, off + (h ? e.offset : 0));
        goto done;
    }
    const dm_json *descr = dm_json_get(h, "descr"), *fo = dm_json_get(h, "fortran_order"), *shape = dm_json_get(h, "shape");
    if (!descr || descr->type != DM_JSTR || !fo || fo->type != DM_JBOOL || !shape || shape->type != DM_JARR) {
        rc = DM_ERR(DM_EINPUT, "'%s': .npy header lacks descr, fortran_order or shape", path);
        goto done;
    }
    if (fo->boolean) {
        rc = DM_ERR(DM_EINPUT, "'%s' is stored in Fortran (column-major) order", path);
        DM_HINT("re-save it in C order: numpy.save(path, numpy.ascontiguousarray(x))");
        goto done;
    }
    size_t es;
    int kind;
    if (!strcmp(descr->str, "<f2") || !strcmp(descr->str, "f2")) es = 2, kind = 2;
    else if (!strcmp(descr->str, "<f4") || !strcmp(descr->str, "f4")) es = 4, kind = 4;
    else if (!strcmp(descr->str, "<f8") || !strcmp(descr->str, "f8")) es = 8, kind = 8;
    else {
        rc = DM_ERR(DM_EINPUT, "'%s' has dtype '%s'; expected little-endian float16, float32 or float64 (<f2, <f4, <f8)",
                    path, descr->str);
        DM_HINT("convert with x.astype(numpy.float32)");
        goto done;
    }
    if (shape->len != 2) {
        rc = DM_ERR(DM_EINPUT, "'%s' has %zu dimensions; expected a 2-D (items, features) matrix", path, shape->len);
        goto done;
    }
    int64_t r64, c64;
    if (dm_json_int(dm_json_at(shape, 0), &r64) || dm_json_int(dm_json_at(shape, 1), &c64) || r64 < 0 || c64 <= 0) {
        rc = DM_ERR(DM_EINPUT, "'%s' has an invalid shape", path);
        goto done;
    }
    /* rows * cols * element size, and the float32 copy, must not wrap (a crafted header can ask for
       2^62 columns); the data must then be exactly what the file holds after the header */
    size_t n, nbytes, nout;
    if (__builtin_mul_overflow((uint64_t)r64, (uint64_t)c64, &n) || __builtin_mul_overflow(n, es, &nbytes) ||
        __builtin_mul_overflow(n, sizeof(float), &nout) || nout > SIZE_MAX - 1) {
        rc = DM_ERR(DM_EINPUT, "'%s' has shape (%lld, %lld), too large to address: its size overflows 64 bits", path,
                    (long long)r64, (long long)c64);
        DM_HINT("the .npy header is corrupt (numpy.save writes the true shape); re-save the matrix");
        goto done;
    }
    long pos = ftell(fp);
    if (pos < 0 || fseek(fp, 0, SEEK_END) != 0) {
        rc = DM_ERR(DM_EIO, "cannot seek in '%s': %s", path, strerror(errno));
        goto done;
    }
    long end = ftell(fp);
    if (end < pos || fseek(fp, pos, SEEK_SET) != 0) {
        rc = DM_ERR(DM_EIO, "cannot seek in '%s': %s", path, strerror(errno));
        goto done;
    }
    size_t have = (size_t)(end - pos);
    if (have < nbytes) {
        rc = DM_ERR(DM_EINPUT, "'%s' is truncated: shape (%lld, %lld) needs %zu bytes of data after the header, found %zu",
                    path, (long long)r64, (long long)c64, nbytes, have);
        goto done;
    }
    if (have > nbytes) {
        rc = DM_ERR(DM_EINPUT, "'%s' has extra bytes after its (%lld, %lld) data", path, (long long)r64, (long long)c64);
        goto done;
    }
    raw = malloc(nbytes + 1);
    float *outp = malloc(nout + 1);
    if (!raw || !outp) {
        free(outp);
        rc = DM_ERR(DM_ENOMEM, "cannot allocate %zu bytes for '%s'", nbytes + nout, path);
        goto done;
    }
    size_t k = fread(raw, es, n, fp);
    if (k != n) {
        free(outp);
        rc = DM_ERR(DM_EINPUT, "'%s' is truncated: shape (%lld, %lld) needs %zu bytes of data after the header, found %zu",
                    path, (long long)r64, (long long)c64, nbytes, k * es);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (kind == 2) {
            uint16_t v;
            memcpy(&v, (char *)raw + 2 * i, 2);
            outp[i] = dm_half_to_float(v);
        } else if (kind == 4)
            memcpy(&outp[i], (char *)raw + 4 * i, 4);
        else {
            double v;
            memcpy(&v, (char *)raw + 8 * i, 8);
            outp[i] = (float)v;
        }
    }
    *data = outp;
    *rows = (size_t)r64;
    *cols = (size_t)c64;
done:
    dm_jdoc_free(&doc);
    free(hdr);
    free(raw);
    fclose(fp);
    return rc;
}

int dm_read_raw_f32(const char *path, size_t rows, size_t cols, float **data)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    size_t n, nbytes;
    if (__builtin_mul_overflow(rows, cols, &n) || __builtin_mul_overflow(n, (size_t)4, &nbytes) || nbytes == SIZE_MAX) {
        fclose(fp);
        DM_ERR(DM_ECONFIG, "'%s': shape (%zu, %zu) of float32 is too large: its size overflows 64 bits", path, rows, cols);
        DM_HINT("modal.<name>.shape must match the raw file");
        return DM_ECONFIG;
    }
    long sz = -1;
    if (fseek(fp, 0, SEEK_END) == 0) sz = ftell(fp);
    if (sz < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        int err = errno;
        fclose(fp);
        return DM_ERR(DM_EIO, "cannot seek in '%s': %s", path, strerror(err));
    }
    if ((size_t)sz != nbytes) {
        fclose(fp);
        DM_ERR(DM_EINPUT, "'%s' has %ld bytes; shape (%zu, %zu) of float32 needs %zu", path, sz, rows, cols, nbytes);
        DM_HINT("modal.<name>.shape must match the raw file");
        return DM_EINPUT;
    }
    float *p = malloc(nbytes + 1);
    if (!p) {
        fclose(fp);
        return DM_ERR(DM_ENOMEM, "cannot allocate %zu bytes", nbytes);
    }
    size_t k = fread(p, 4, n, fp);
    fclose(fp);
    if (k != n) {
        free(p);
        return DM_ERR(DM_EIO, "cannot read '%s'", path);
    }
    *data = p;
    return DM_OK;
}

int dm_read_id_list(const char *path, dm_strtab *ids)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    dm_strmap seen = {0};
    int rc = DM_OK;
    int64_t *first_line = NULL;
    size_t cap = 0;
    for (;;) {
        char *line;
        size_t len;
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
        if (!line) break;
        while (len && isspace((unsigned char)line[len - 1])) len--;
        while (len && isspace((unsigned char)*line)) line++, len--;
        int64_t id;
        int added;
        DM_TRY(rc, dm_strmap_intern(&seen, line, len, &id, &added), done);
        if (!added) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld repeats id '%.*s' (first at line %lld)", path, (long long)r.lineno,
                        (int)len, line, (long long)first_line[id]);
            goto done;
        }
        if ((size_t)id >= cap) {
            cap = cap ? 2 * cap : 1024;
            int64_t *q = realloc(first_line, cap * sizeof *q);
            if (!q) {
                rc = DM_ERR(DM_ENOMEM, "out of memory");
                goto done;
            }
            first_line = q;
        }
        first_line[id] = r.lineno;
        DM_TRY(rc, dm_strtab_add(ids, line, len), done);
    }
    if (ids->n == 0) rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
done:
    free(first_line);
    dm_strmap_free(&seen);
    dm_lines_close(&r);
    return rc;
}
