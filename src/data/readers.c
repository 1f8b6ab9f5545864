/* readers.c: the input formats, see readers.h. */
#include "readers.h"

#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"

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
        char *line;
        size_t len;
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
        if (!line) break;
        if (!in_stripe(s, r.lineno) || is_blank(line, len)) continue;
        dm_jdoc_reset(&doc);
        dm_json *o;
        dm_jerr e;
        int pr = dm_json_parse(&doc, line, len, 0, &o, &e);
        if (pr) {
            rc = pr < 0 ? DM_ERR(DM_ENOMEM, "out of memory parsing '%s'", path) : json_line_error(path, r.lineno, &e, 0);
            goto done;
        }
        if (o->type != DM_JOBJ) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected a JSON object, found %s", path, (long long)r.lineno,
                        dm_json_type_name(o->type));
            goto done;
        }
        const dm_json *u, *it, *t;
        DM_TRY(rc, need_str(path, r.lineno, o, uk, &u, hint), done);
        DM_TRY(rc, need_str(path, r.lineno, o, ik, &it, hint), done);
        t = dm_json_get(o, tk);
        int64_t ts;
        if (!t || dm_json_int(t, &ts)) {
            double dt;
            if (t && t->type == DM_JNUM && !dm_json_double(t, &dt)) ts = (int64_t)llround(dt);
            else {
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: '%s' must be an integer timestamp%s", path, (long long)r.lineno, tk,
                            t ? "" : " (field missing)");
                DM_HINT("%s", hint);
                goto done;
            }
        }
        int64_t ms = version == 2023 ? ts : ts * 1000;
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
    char buf[64];
    size_t k = 0;
    for (; *s && k + 1 < sizeof buf; s++) {
        if (*s == ',') continue;
        if (!(isdigit((unsigned char)*s) || *s == '.')) break;
        buf[k++] = *s;
    }
    buf[k] = '\0';
    if (!k) return NAN;
    char *end;
    x = strtod(buf, &end);
    return *end ? NAN : x;
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
    dm_buf cats = {0}, title = {0};
    int rc = DM_OK;
    int python = version == 2014;
    const char *ik = version == 2023 ? "parent_asin" : "asin";
    const char *hint = version == 2014 ? "Amazon 2014 metadata has one Python-literal dict per line with 'asin'"
                                       : (version == 2018 ? "Amazon 2018 metadata has one JSON object per line with 'asin'"
                                                          : "Amazon 2023 metadata has one JSON object per line with 'parent_asin'");
    for (;;) {
        char *line;
        size_t len;
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
        if (!line) break;
        if (!in_stripe(s, r.lineno) || is_blank(line, len)) continue;
        dm_jdoc_reset(&doc);
        dm_json *o;
        dm_jerr e;
        /* the 2018 files are JSON, but some categories were released in the 2014 style: accept both */
        int pr = dm_json_parse(&doc, line, len, python, &o, &e);
        if (pr > 0 && !python) {
            dm_jdoc_reset(&doc);
            dm_jerr e2;
            if (dm_json_parse(&doc, line, len, 1, &o, &e2) == 0) pr = 0;
        }
        if (pr) {
            rc = pr < 0 ? DM_ERR(DM_ENOMEM, "out of memory parsing '%s'", path) : json_line_error(path, r.lineno, &e, python);
            if (pr > 0) DM_HINT("%s", hint);
            goto done;
        }
        if (o->type != DM_JOBJ) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected an object, found %s", path, (long long)r.lineno,
                        dm_json_type_name(o->type));
            goto done;
        }
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
        DM_TRY(rc, dm_meta_push(out, id->str, id->len, has_title ? (title.data ? title.data : "") : NULL,
                                b && b->type == DM_JSTR ? b->str : NULL, cats.data, NULL, price,
                                DM_ORDER(0, r.lineno, 0)), done);
    }
done:
    dm_buf_free(&cats);
    dm_buf_free(&title);
    dm_jdoc_free(&doc);
    dm_lines_close(&r);
    return rc;
}

/* ---- delimited files --------------------------------------------------------------------- */

#define MAX_FIELDS 256

/* Splits a line into fields; for ',' honours RFC 4180 quotes (in place, quotes removed). */
static int split_fields(char *line, size_t len, char sep, char **f, size_t *fl, int *nf)
{
    int n = 0;
    size_t i = 0;
    for (;;) {
        if (n == MAX_FIELDS) return -1;
        if (sep == ',' && i < len && line[i] == '"') {
            size_t w = i, j = i + 1;
            f[n] = line + i;
            for (;;) {
                if (j >= len) return -2; /* unterminated quote */
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
            fl[n++] = w - i;
            if (j < len && line[j] != sep) return -3;
            if (j >= len) break;
            i = j + 1;
            continue;
        }
        char *p = memchr(line + i, sep, len - i);
        size_t e = p ? (size_t)(p - line) : len;
        f[n] = line + i;
        fl[n++] = e - i;
        if (!p) break;
        i = e + 1;
    }
    /* trim spaces around fields */
    for (int k = 0; k < n; k++) {
        while (fl[k] && isspace((unsigned char)f[k][0])) f[k]++, fl[k]--;
        while (fl[k] && isspace((unsigned char)f[k][fl[k] - 1])) fl[k]--;
    }
    *nf = n;
    return 0;
}

static int split_error(const char *path, int64_t line, int code)
{
    const char *what = code == -1 ? "more than 256 fields" : (code == -2 ? "an unterminated quote" : "text after a closing quote");
    return DM_ERR(DM_EINPUT, "'%s' line %lld: %s", path, (long long)line, what);
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
static int find_col(const char *spec, char **hdr, size_t *hl, int nh, int have_header)
{
    if (!spec || !spec[0]) return -1;
    if (have_header)
        for (int k = 0; k < nh; k++) {
            /* RecBole-style "name:type" headers match on the name */
            size_t l = hl[k];
            const char *colon = memchr(hdr[k], ':', l);
            size_t ln = colon ? (size_t)(colon - hdr[k]) : l;
            if ((strlen(spec) == l && !memcmp(spec, hdr[k], l)) || (strlen(spec) == ln && !memcmp(spec, hdr[k], ln))) return k;
        }
    if (is_int(spec, strlen(spec))) return atoi(spec);
    return -1;
}

static int parse_time(const char *s, size_t n, int ms, int64_t *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end == '\0' && !errno) {
        *out = ms ? v : v * 1000;
        return 0;
    }
    double d = strtod(buf, &end);
    if (*end || !isfinite(d)) return 1;
    *out = ms ? (int64_t)llround(d) : (int64_t)llround(d * 1000.0);
    return 0;
}

int dm_read_tsv(const char *path, const dm_tsv_opts *o, const dm_stripe *s, int file_index, int part, dm_raw *out)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    int rc = DM_OK;
    char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int nf;
    char *line;
    size_t len;
    char sep = o->sep;
    int header = o->header;
    int uc = -1, ic = -1, tc = -1;
    int64_t data_line = 0;
    char *hdr_copy = NULL;
    DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
    if (!line) {
        rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
        DM_HINT("an interaction file needs at least one 'user item' line");
        goto done;
    }
    if (!sep) sep = memchr(line, '\t', len) ? '\t' : ',';
    {
        hdr_copy = malloc(len + 1);
        if (!hdr_copy) {
            rc = DM_ERR(DM_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(hdr_copy, line, len + 1);
        int e = split_fields(hdr_copy, len, sep, f, fl, &nf);
        if (e) {
            rc = split_error(path, 1, e);
            goto done;
        }
        if (header < 0) {
            /* a header when the id columns (by index) are not all integers, or columns are named */
            int ui = is_int(o->user_col, strlen(o->user_col)) ? atoi(o->user_col) : -1;
            int ii = is_int(o->item_col, strlen(o->item_col)) ? atoi(o->item_col) : -1;
            if (ui < 0 || ii < 0) header = 1;
            else header = !(ui < nf && ii < nf && is_int(f[ui], fl[ui]) && is_int(f[ii], fl[ii]));
        }
        uc = find_col(o->user_col, f, fl, nf, header);
        ic = find_col(o->item_col, f, fl, nf, header);
        tc = o->time_col && o->time_col[0] ? find_col(o->time_col, f, fl, nf, header) : -1;
        const char *bad = uc < 0 ? o->user_col : (ic < 0 ? o->item_col : ((o->time_col && o->time_col[0] && tc < 0) ? o->time_col : NULL));
        if (bad) {
            rc = DM_ERR(DM_ECONFIG, "'%s' line 1: no column '%s'%s", path, bad, header ? " in the header" : "");
            DM_HINT("set data.user_col / data.item_col / data.time_col to a header name or a 0-based index (the first line has %d fields)", nf);
            goto done;
        }
    }
    out->has_time |= tc >= 0;
    if (header) {
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
    }
    int need = (uc > ic ? uc : ic);
    if (tc > need) need = tc;
    for (; line; ) {
        data_line++;
        if (in_stripe(s, data_line) && !is_blank(line, len)) {
            int e = split_fields(line, len, sep, f, fl, &nf);
            if (e) {
                rc = split_error(path, r.lineno, e);
                goto done;
            }
            if (nf <= need) {
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected at least %d fields separated by '%s', found %d", path,
                            (long long)r.lineno, need + 1, sep == '\t' ? "\\t" : (char[2]){sep, 0}, nf);
                DM_HINT("check data.sep and the column settings");
                goto done;
            }
            if (fl[uc] == 0 || fl[ic] == 0) {
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: empty %s id", path, (long long)r.lineno, fl[uc] == 0 ? "user" : "item");
                goto done;
            }
            int64_t t = 0;
            if (tc >= 0 && parse_time(f[tc], fl[tc], o->time_ms, &t)) {
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: timestamp '%.*s' is not a number", path, (long long)r.lineno,
                            (int)fl[tc], f[tc]);
                goto done;
            }
            DM_TRY(rc, dm_raw_push(out, f[uc], fl[uc], f[ic], fl[ic], t, DM_ORDER(file_index, r.lineno, 0), (int8_t)part), done);
        }
        DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
    }
done:
    free(hdr_copy);
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
    dm_tsv_opts o = {'\t', 1, "user_id", "item_id", has_time ? "timestamp" : "", 0};
    return dm_read_tsv(path, &o, s, 0, -1, out);
}

int dm_read_recbole_item(const char *path, const dm_stripe *s, dm_meta *out)
{
    dm_lines r;
    DM_CALL(dm_lines_open(&r, path));
    int rc = DM_OK;
    char *f[MAX_FIELDS], *h[MAX_FIELDS];
    size_t fl[MAX_FIELDS], hl[MAX_FIELDS];
    int nf, nh;
    char *line, *hdr = NULL;
    size_t len;
    dm_buf cats = {0}, title = {0}, brand = {0};
    DM_TRY(rc, dm_lines_next(&r, &line, &len), done);
    if (!line) {
        rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
        goto done;
    }
    hdr = malloc(len + 1);
    if (!hdr) {
        rc = DM_ERR(DM_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(hdr, line, len + 1);
    if (split_fields(hdr, len, '\t', h, hl, &nh)) {
        rc = DM_ERR(DM_EINPUT, "'%s' line 1: cannot split the header", path);
        goto done;
    }
    int ci = find_col("item_id", h, hl, nh, 1), ct = find_col("title", h, hl, nh, 1);
    if (ct < 0) ct = find_col("movie_title", h, hl, nh, 1);
    int cb = find_col("brand", h, hl, nh, 1), cc = find_col("categories", h, hl, nh, 1);
    if (cc < 0) cc = find_col("genre", h, hl, nh, 1);
    int cp = find_col("price", h, hl, nh, 1);
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
        int e = split_fields(line, len, '\t', f, fl, &nf);
        if (e) {
            rc = split_error(path, r.lineno, e);
            goto done;
        }
        if (nf <= ci || fl[ci] == 0) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: missing item_id (field %d)", path, (long long)r.lineno, ci + 1);
            goto done;
        }
        dm_buf_reset(&title);
        dm_buf_reset(&brand);
        dm_buf_reset(&cats);
        int has_title = ct >= 0 && ct < nf;
        if (has_title) DM_TRY(rc, dm_buf_add(&title, f[ct], fl[ct]), done);
        if (cb >= 0 && cb < nf) DM_TRY(rc, dm_buf_add(&brand, f[cb], fl[cb]), done);
        if (cc >= 0 && cc < nf) {
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
        if (cp >= 0 && cp < nf && fl[cp]) {
            char pb[64];
            size_t l = fl[cp] < 63 ? fl[cp] : 63;
            memcpy(pb, f[cp], l);
            pb[l] = '\0';
            char *end;
            double x = strtod(pb, &end);
            if (!*end) price = x;
        }
        DM_TRY(rc, dm_meta_push(out, f[ci], fl[ci], has_title ? (title.data ? title.data : "") : NULL, brand.data,
                                cats.data, NULL, price, DM_ORDER(0, r.lineno, 0)), done);
    }
done:
    free(hdr);
    dm_buf_free(&cats);
    dm_buf_free(&title);
    dm_buf_free(&brand);
    dm_lines_close(&r);
    return rc;
}

int dm_read_sasrec(const char *path, int layout, const dm_stripe *s, dm_raw *out)
{
    dm_lines r;
    int rc = DM_OK;
    char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int nf;
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
            int n = 0;
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
        /* whitespace-separated */
        nf = 0;
        for (size_t i = 0; i < len;) {
            while (i < len && isspace((unsigned char)line[i])) i++;
            if (i >= len) break;
            if (nf == MAX_FIELDS && layout == 1) break;
            size_t j = i;
            while (j < len && !isspace((unsigned char)line[j])) j++;
            if (nf < MAX_FIELDS) {
                f[nf] = line + i;
                fl[nf] = j - i;
                nf++;
            } else {
                /* long sequence lines: flush in chunks so any length works */
                for (int k = 1; k < nf; k++)
                    DM_TRY(rc, dm_raw_push(out, f[0], fl[0], f[k], fl[k], 0, DM_ORDER(0, r.lineno, 0), -1), done);
                rc = DM_ERR(DM_EINPUT, "'%s' line %lld: more than %d items on one line", path, (long long)r.lineno, MAX_FIELDS - 1);
                goto done;
            }
            i = j;
        }
        if (layout == 1 && nf != 2) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected 'user item', found %d fields", path, (long long)r.lineno, nf);
            DM_HINT("set data.sasrec_layout = \"sequences\" for one user per line");
            goto done;
        }
        if (layout == 2 && nf < 2) {
            rc = DM_ERR(DM_EINPUT, "'%s' line %lld: expected 'user item item ...'", path, (long long)r.lineno);
            goto done;
        }
        for (int k = 1; k < nf; k++)
            DM_TRY(rc, dm_raw_push(out, f[0], fl[0], f[k], fl[k], 0, DM_ORDER(0, r.lineno, k), -1), done);
    }
    if (!any) rc = DM_ERR(DM_EINPUT, "'%s' is empty", path);
done:
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
            if (attrs.len) dm_buf_addc(&attrs, '\t');
            dm_buf_add(&attrs, a->str, a->type == DM_JSTR ? a->len : strlen(a->str));
        }
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
    size_t n = (size_t)r64 * (size_t)c64;
    raw = malloc(n * es + 1);
    float *outp = malloc(n * sizeof(float) + 1);
    if (!raw || !outp) {
        free(outp);
        rc = DM_ERR(DM_ENOMEM, "cannot allocate %zu bytes for '%s'", n * es, path);
        goto done;
    }
    size_t k = fread(raw, es, n, fp);
    if (k != n) {
        free(outp);
        rc = DM_ERR(DM_EINPUT, "'%s' is truncated: shape (%lld, %lld) needs %zu bytes of data after the header, found %zu",
                    path, (long long)r64, (long long)c64, n * es, k * es);
        goto done;
    }
    if (fgetc(fp) != EOF) {
        free(outp);
        rc = DM_ERR(DM_EINPUT, "'%s' has extra bytes after its (%lld, %lld) data", path, (long long)r64, (long long)c64);
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
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (sz < 0 || (size_t)sz != rows * cols * 4) {
        fclose(fp);
        DM_ERR(DM_EINPUT, "'%s' has %ld bytes; shape (%zu, %zu) of float32 needs %zu", path, sz, rows, cols, rows * cols * 4);
        DM_HINT("modal.<name>.shape must match the raw file");
        return DM_EINPUT;
    }
    float *p = malloc(rows * cols * 4 + 1);
    if (!p) {
        fclose(fp);
        return DM_ERR(DM_ENOMEM, "cannot allocate %zu bytes", rows * cols * 4);
    }
    size_t k = fread(p, 4, rows * cols, fp);
    fclose(fp);
    if (k != rows * cols) {
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
