/* config.c: typed settings over libconfig, see config.h. */
#include "config.h"

#include "../core/err.h"
#include "../core/sha256.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the key table ---------------------------------------------------------------------- */

#define INT DM_KT_INT
#define FLOAT DM_KT_FLOAT
#define BOOL DM_KT_BOOL
#define STR DM_KT_STR
#define ENUM DM_KT_ENUM
#define INTS DM_KT_INTS
#define FLOATS DM_KT_FLOATS
#define STRS DM_KT_STRS
#define DM_KEY(name, type, def, min, max, choices, doc) {name, type, def, min, max, choices, doc},
static dm_key g_keys[] = {
#include "keys/all.def"
};
#undef DM_KEY
static const size_t g_nkeys = sizeof g_keys / sizeof g_keys[0];
static int g_sorted;

/* compare dotted names component by component so a group's keys stay contiguous */
static int cmp_name(const char *a, const char *b)
{
    for (;;) {
        size_t la = strcspn(a, "."), lb = strcspn(b, ".");
        int a_last = a[la] == '\0', b_last = b[lb] == '\0';
        /* leaves sort before subgroups at the same level */
        if (a_last != b_last) return a_last ? -1 : 1;
        size_t m = la < lb ? la : lb;
        int r = memcmp(a, b, m);
        if (r) return r;
        if (la != lb) return la < lb ? -1 : 1;
        if (a_last) return 0;
        a += la + 1;
        b += lb + 1;
    }
}

static int cmp_key(const void *x, const void *y)
{
    return cmp_name(((const dm_key *)x)->name, ((const dm_key *)y)->name);
}

static void sort_keys(void)
{
    if (g_sorted) return;
    qsort(g_keys, g_nkeys, sizeof g_keys[0], cmp_key);
    for (size_t i = 1; i < g_nkeys; i++) DM_ASSERT(strcmp(g_keys[i - 1].name, g_keys[i].name) != 0);
    g_sorted = 1;
}

const dm_key *dm_keys(size_t *n)
{
    sort_keys();
    *n = g_nkeys;
    return g_keys;
}

int dm_key_index(const char *name)
{
    sort_keys();
    size_t lo = 0, hi = g_nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = cmp_name(g_keys[mid].name, name);
        if (r == 0) return (int)mid;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static size_t key_at(const char *name)
{
    int k = dm_key_index(name);
    if (k < 0) {
        fprintf(stderr, "dynmm: bug: config key '%s' is not in the key table\n", name);
        DM_ASSERT(k >= 0);
    }
    return (size_t)k;
}

/* ---- values ----------------------------------------------------------------------------- */

static void val_clear(dm_cval *v)
{
    DM_FREE_ALL(v->s, v->il, v->fl);
    for (size_t j = 0; j < v->n && v->sl; j++) free(v->sl[j]);
    DM_FREE_ALL(v->sl, v->file);
    memset(v, 0, sizeof *v);
}

static const char *type_name(dm_ktype t)
{
    switch (t) {
    case DM_KT_INT: return "an integer";
    case DM_KT_FLOAT: return "a number";
    case DM_KT_BOOL: return "a boolean (true or false)";
    case DM_KT_STR: return "a string";
    case DM_KT_ENUM: return "one of a set of strings";
    case DM_KT_INTS: return "a list of integers, like [1, 5, 10]";
    case DM_KT_FLOATS: return "a list of numbers, like [0.5, 1.0]";
    case DM_KT_STRS: return "a list of strings, like [\"a\", \"b\"]";
    }
    return "?";
}

static int fmt_range(char *b, size_t cap, const dm_key *k)
{
    return snprintf(b, cap, "[%.10g, %.10g]", k->min, k->max);
}

static int check_num(const dm_key *k, double x, const char *where)
{
    if (!(x >= k->min && x <= k->max) || isnan(x)) {
        char r[96];
        fmt_range(r, sizeof r, k);
        DM_ERR(DM_ECONFIG, "%s: '%s' = %.10g is out of range %s", where, k->name, x, r);
        DM_HINT("%s", k->doc);
        return DM_ECONFIG;
    }
    return DM_OK;
}

static int check_enum(const dm_key *k, const char *s, const char *where)
{
    const char *c = k->choices;
    size_t ls = strlen(s);
    while (*c) {
        size_t l = strcspn(c, "|");
        if (l == ls && memcmp(c, s, l) == 0) return DM_OK;
        c += l;
        if (*c == '|') c++;
    }
    DM_ERR(DM_ECONFIG, "%s: '%s' = \"%s\" is not one of: %s", where, k->name, s, k->choices);
    DM_HINT("%s", k->doc);
    return DM_ECONFIG;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *d = dm_calloc_at(n + 1, 1, __FILE__, __LINE__);
    if (d) memcpy(d, s, n);
    return d;
}

static int set_origin(dm_cval *v, int origin, const char *file, int line)
{
    free(v->file);
    v->file = xstrdup(file ? file : "");
    if (!v->file) return DM_ENOMEM;
    v->origin = origin;
    v->line = line;
    return DM_OK;
}

/* Parses one scalar token of the --set / default syntax. */
static int parse_int_tok(const dm_key *k, const char *t, const char *where, long long *out)
{
    errno = 0;
    char *end;
    while (isspace((unsigned char)*t)) t++;
    long long x = strtoll(t, &end, 0);
    while (isspace((unsigned char)*end)) end++;
    if (errno || end == t || *end) {
        DM_ERR(DM_ECONFIG, "%s: '%s' must be an integer, found '%s'", where, k->name, t);
        DM_HINT("%s", k->doc);
        return DM_ECONFIG;
    }
    DM_CALL(check_num(k, (double)x, where));
    *out = x;
    return DM_OK;
}

static int parse_float_tok(const dm_key *k, const char *t, const char *where, double *out)
{
    errno = 0;
    char *end;
    while (isspace((unsigned char)*t)) t++;
    double x = strtod(t, &end);
    while (isspace((unsigned char)*end)) end++;
    if (errno || end == t || *end || !isfinite(x)) {
        DM_ERR(DM_ECONFIG, "%s: '%s' must be a finite number, found '%s'", where, k->name, t);
        DM_HINT("%s", k->doc);
        return DM_ECONFIG;
    }
    DM_CALL(check_num(k, x, where));
    *out = x;
    return DM_OK;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    size_t i = 0;
    while (isspace((unsigned char)s[i])) i++;
    if (i) memmove(s, s + i, n - i + 1);
    n = strlen(s);
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) {
        memmove(s, s + 1, n - 2);
        s[n - 2] = '\0';
    }
}

/* Sets value v of key k from text in --set syntax. */
static int set_from_text(const dm_key *k, dm_cval *v, const char *text, const char *where)
{
    dm_cval nv;
    memset(&nv, 0, sizeof nv);
    int rc = DM_OK;
    char *tmp = xstrdup(text);
    if (!tmp) return DM_ENOMEM;
    switch (k->type) {
    case DM_KT_INT:
        rc = parse_int_tok(k, tmp, where, &nv.i);
        break;
    case DM_KT_FLOAT:
        rc = parse_float_tok(k, tmp, where, &nv.f);
        break;
    case DM_KT_BOOL:
        trim(tmp);
        if (!strcmp(tmp, "true") || !strcmp(tmp, "1") || !strcmp(tmp, "yes") || !strcmp(tmp, "on")) nv.i = 1;
        else if (!strcmp(tmp, "false") || !strcmp(tmp, "0") || !strcmp(tmp, "no") || !strcmp(tmp, "off")) nv.i = 0;
        else {
            rc = DM_ERR(DM_ECONFIG, "%s: '%s' must be true or false, found '%s'", where, k->name, tmp);
            DM_HINT("%s", k->doc);
        }
        break;
    case DM_KT_STR:
    case DM_KT_ENUM:
        trim(tmp);
        if (k->type == DM_KT_ENUM) rc = check_enum(k, tmp, where);
        if (!rc) {
            nv.s = xstrdup(tmp);
            if (!nv.s) rc = DM_ENOMEM;
        }
        break;
    case DM_KT_INTS:
    case DM_KT_FLOATS:
    case DM_KT_STRS: {
        char *s = tmp;
        while (isspace((unsigned char)*s)) s++;
        size_t L = strlen(s);
        while (L && isspace((unsigned char)s[L - 1])) s[--L] = '\0';
        if (L && s[0] == '[') {
            if (s[L - 1] != ']') {
                rc = DM_ERR(DM_ECONFIG, "%s: '%s' must be %s, found '%s'", where, k->name, type_name(k->type), text);
                break;
            }
            s[L - 1] = '\0';
            s++;
        }
        size_t cnt = 0;
        {
            char *q = s;
            while (isspace((unsigned char)*q)) q++;
            if (*q) {
                cnt = 1;
                for (char *r = q; *r; r++) cnt += *r == ',';
            }
        }
        if (cnt) {
            if (k->type == DM_KT_INTS) nv.il = dm_calloc_at(cnt, sizeof *nv.il, __FILE__, __LINE__);
            if (k->type == DM_KT_FLOATS) nv.fl = dm_calloc_at(cnt, sizeof *nv.fl, __FILE__, __LINE__);
            if (k->type == DM_KT_STRS) nv.sl = dm_calloc_at(cnt, sizeof *nv.sl, __FILE__, __LINE__);
            if (!nv.il && !nv.fl && !nv.sl) { rc = DM_ENOMEM; break; }
        }
        char *tok = s;
        for (size_t j = 0; j < cnt && !rc; j++) {
            char *comma = strchr(tok, ',');
            if (comma) *comma = '\0';
            if (k->type == DM_KT_INTS) rc = parse_int_tok(k, tok, where, &nv.il[j]);
            else if (k->type == DM_KT_FLOATS) rc = parse_float_tok(k, tok, where, &nv.fl[j]);
            else {
                trim(tok);
                nv.sl[j] = xstrdup(tok);
                if (!nv.sl[j]) rc = DM_ENOMEM;
            }
            nv.n = j + 1;
            tok = comma ? comma + 1 : tok + strlen(tok);
        }
        break;
    }
    }
    free(tmp);
    if (rc) {
        val_clear(&nv);
        return rc;
    }
    nv.origin = v->origin;
    nv.file = v->file;
    nv.line = v->line;
    v->file = NULL;
    val_clear(v);
    *v = nv;
    return DM_OK;
}

int dm_cfg_init(dm_cfg *c)
{
    sort_keys();
    memset(c, 0, sizeof *c);
    DM_ALLOC(c->v, g_nkeys);
    DM_ALLOC(c->seen, g_nkeys);
    c->nkeys = g_nkeys;
    for (size_t k = 0; k < g_nkeys; k++) {
        char where[160];
        snprintf(where, sizeof where, "default of %s", g_keys[k].name);
        DM_CALL(set_from_text(&g_keys[k], &c->v[k], g_keys[k].def, where));
    }
    return DM_OK;
}

void dm_cfg_free(dm_cfg *c)
{
    for (size_t k = 0; k < c->nkeys; k++) val_clear(&c->v[k]);
    free(c->v);
    free(c->seen);
    memset(c, 0, sizeof *c);
}

int dm_cfg_copy(dm_cfg *dst, const dm_cfg *src)
{
    dm_buf b = {0};
    DM_CALL(dm_cfg_serialize(src, NULL, &b));
    int rc = dm_cfg_init(dst);
    if (!rc) rc = dm_cfg_load_string(dst, b.data, "(copy)");
    if (!rc) /* keep the origins of the source for error messages */
        for (size_t k = 0; k < src->nkeys && !rc; k++) {
            rc = set_origin(&dst->v[k], src->v[k].origin, src->v[k].file, src->v[k].line);
        }
    dm_buf_free(&b);
    return rc;
}

/* ---- loading libconfig files -------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
            d[i][j] = s < x ? (s < y ? s : y) : (x < y ? x : y);
        }
    return d[la][lb];
}

static const char *closest_key(const char *name)
{
    size_t best = (size_t)-1;
    const char *bk = NULL;
    for (size_t k = 0; k < g_nkeys; k++) {
        size_t d = edit_distance(name, g_keys[k].name);
        /* also match on the last component, so "sasrec.hiden" finds "sasrec.hidden" and
           "hidden" alone finds a key ending in it */
        const char *dot = strrchr(g_keys[k].name, '.');
        if (dot && strcmp(dot + 1, name) == 0) d = 1;
        if (d < best) {
            best = d;
            bk = g_keys[k].name;
        }
    }
    return bk;
}

static int unknown_key(const char *where, const char *name)
{
    DM_ERR(DM_ECONFIG, "%s: unknown key '%s'", where, name);
    const char *c = closest_key(name);
    if (c) DM_HINT("did you mean '%s'? every key is listed with its default in configs/reference.cfg", c);
    else DM_HINT("every key is listed with its default in configs/reference.cfg");
    return DM_ECONFIG;
}

static int is_group_prefix(const char *name)
{
    size_t l = strlen(name);
    for (size_t k = 0; k < g_nkeys; k++)
        if (strncmp(g_keys[k].name, name, l) == 0 && g_keys[k].name[l] == '.') return 1;
    return 0;
}

static const char *lc_type(int t)
{
    switch (t) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    case CONFIG_TYPE_GROUP: return "a group";
    }
    return "a value";
}

static int scalar_ok(dm_ktype want, int have)
{
    switch (want) {
    case DM_KT_INT:
    case DM_KT_INTS: return have == CONFIG_TYPE_INT || have == CONFIG_TYPE_INT64;
    case DM_KT_FLOAT:
    case DM_KT_FLOATS:
        return have == CONFIG_TYPE_FLOAT || have == CONFIG_TYPE_INT || have == CONFIG_TYPE_INT64;
    case DM_KT_BOOL: return have == CONFIG_TYPE_BOOL;
    case DM_KT_STR:
    case DM_KT_ENUM:
    case DM_KT_STRS: return have == CONFIG_TYPE_STRING;
    }
    return 0;
}

static double num_of(const config_setting_t *s)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_FLOAT) return config_setting_get_float(s);
    return (double)config_setting_get_int64(s);
}

static int apply_setting(dm_cfg *c, config_setting_t *s, const char *path, const char *name)
{
    const char *file = config_setting_source_file(s);
    int line = (int)config_setting_source_line(s);
    char where[600];
    snprintf(where, sizeof where, "%s:%d", file ? file : name, line);
    int k = dm_key_index(path);
    if (k < 0) return unknown_key(where, path);
    const dm_key *key = &g_keys[k];
    dm_cval *v = &c->v[k];
    int t = config_setting_type(s);
    int is_list = key->type == DM_KT_INTS || key->type == DM_KT_FLOATS || key->type == DM_KT_STRS;
    int bad = 0;
    if (is_list) {
        if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) bad = 1;
        else
            for (int j = 0; j < config_setting_length(s); j++)
                if (!scalar_ok(key->type, config_setting_type(config_setting_get_elem(s, (unsigned)j)))) bad = 1;
    } else if (!scalar_ok(key->type, t))
        bad = 1;
    if (bad) {
        DM_ERR(DM_ECONFIG, "%s: '%s' must be %s, found %s", where, path, type_name(key->type), lc_type(t));
        DM_HINT("%s (default: %s)", key->doc, key->def);
        return DM_ECONFIG;
    }
    dm_cval nv;
    memset(&nv, 0, sizeof nv);
    int rc = DM_OK;
    switch (key->type) {
    case DM_KT_INT:
        nv.i = config_setting_get_int64(s);
        rc = check_num(key, (double)nv.i, where);
        break;
    case DM_KT_FLOAT:
        nv.f = num_of(s);
        rc = check_num(key, nv.f, where);
        break;
    case DM_KT_BOOL:
        nv.i = config_setting_get_bool(s);
        break;
    case DM_KT_STR:
    case DM_KT_ENUM:
        if (key->type == DM_KT_ENUM) rc = check_enum(key, config_setting_get_string(s), where);
        if (!rc && !(nv.s = xstrdup(config_setting_get_string(s)))) rc = DM_ENOMEM;
        break;
    default: {
        size_t n = (size_t)config_setting_length(s);
        nv.n = 0;
        if (key->type == DM_KT_INTS && !(nv.il = dm_calloc_at(n, sizeof *nv.il, __FILE__, __LINE__))) rc = DM_ENOMEM;
        if (key->type == DM_KT_FLOATS && !(nv.fl = dm_calloc_at(n, sizeof *nv.fl, __FILE__, __LINE__))) rc = DM_ENOMEM;
        if (key->type == DM_KT_STRS && !(nv.sl = dm_calloc_at(n, sizeof *nv.sl, __FILE__, __LINE__))) rc = DM_ENOMEM;
        for (size_t j = 0; j < n && !rc; j++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)j);
            if (key->type == DM_KT_INTS) {
                nv.il[j] = config_setting_get_int64(e);
                rc = check_num(key, (double)nv.il[j], where);
            } else if (key->type == DM_KT_FLOATS) {
                nv.fl[j] = num_of(e);
                rc = check_num(key, nv.fl[j], where);
            } else if (!(nv.sl[j] = xstrdup(config_setting_get_string(e))))
                rc = DM_ENOMEM;
            nv.n = j + 1;
        }
    }
    }
    if (rc) {
        val_clear(&nv);
        return rc;
    }
    val_clear(v);
    *v = nv;
    return set_origin(v, 1, file ? file : name, line);
}

/* ---- every error of a load at once ----------------------------------------------------------
 * A load goes on past a bad key or value: each error is taken from the error state into the list
 * and the next setting is applied. At the end a single error remains: the only one as it was, or
 * all of them, each on its own line with its hint, as far as a message holds (the rest counted). */

#define ERRS_CAP 1900 /* below the error state's message size, which every rank can receive */

typedef struct {
    size_t n;         /* errors taken */
    size_t shown;     /* of which in `all` */
    int code;         /* the first error's code */
    char first_msg[2048], first_hint[2048], first_where[1024];
    dm_buf all;       /* "  <message>\n    hint: <hint>\n" per shown error */
} errlist;

static void errs_take(errlist *e)
{
    if (e->n == 0) {
        e->code = dm_error_code() ? dm_error_code() : DM_ECONFIG;
        snprintf(e->first_msg, sizeof e->first_msg, "%s", dm_error_message());
        snprintf(e->first_hint, sizeof e->first_hint, "%s", dm_error_hint_text());
        snprintf(e->first_where, sizeof e->first_where, "%s", dm_error_where());
    }
    e->n++;
    const char *msg = dm_error_message(), *hint = dm_error_hint_text();
    size_t need = strlen(msg) + (hint[0] ? strlen(hint) + 12 : 0) + 4;
    if (e->code != DM_ENOMEM && e->all.len + need <= ERRS_CAP) {
        int rc = dm_buf_printf(&e->all, "  %s\n", msg);
        if (!rc && hint[0]) rc = dm_buf_printf(&e->all, "    hint: %s\n", hint);
        if (!rc) e->shown++;
    }
    dm_error_clear();
}

/* DM_OK when nothing failed; else one error, and the list is emptied */
static int errs_finish(errlist *e)
{
    int rc = DM_OK;
    if (e->n == 1 || (e->n && e->shown == 0)) {
        dm_error_set_raw(e->code, e->first_msg, e->first_hint, e->first_where);
        if (e->n > 1) dm_error_hint("%s%s(and %zu more errors in the configuration)", e->first_hint,
                                    e->first_hint[0] ? " " : "", e->n - 1);
        rc = e->code;
    } else if (e->n > 1) {
        size_t len = e->all.len;
        while (len && e->all.data[len - 1] == '\n') len--;
        DM_ERR(DM_ECONFIG, "%zu errors in the configuration:\n%.*s%s", e->n, (int)len, e->all.data,
               e->shown < e->n ? "\n  ..." : "");
        if (e->shown < e->n) DM_HINT("%zu more not shown: fix these and run again", e->n - e->shown);
        else DM_HINT("every key is listed with its default, type and range in configs/reference.cfg");
        rc = DM_ECONFIG;
    }
    dm_buf_free(&e->all);
    e->n = e->shown = 0;
    return rc;
}

static int walk(dm_cfg *c, config_setting_t *g, const char *prefix, const char *name, errlist *e)
{
    int n = config_setting_length(g);
    for (int j = 0; j < n; j++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
        const char *nm = config_setting_name(s);
        char path[512];
        if (prefix[0]) snprintf(path, sizeof path, "%s.%s", prefix, nm);
        else snprintf(path, sizeof path, "%s", nm);
        const char *file = config_setting_source_file(s);
        int line = (int)config_setting_source_line(s);
        if (config_setting_type(s) == CONFIG_TYPE_GROUP) {
            if (dm_key_index(path) >= 0) {
                DM_ERR(DM_ECONFIG, "%s:%d: '%s' must be %s, found a group", file ? file : name, line, path,
                       type_name(g_keys[dm_key_index(path)].type));
                errs_take(e);
            } else if (!is_group_prefix(path)) {
                DM_ERR(DM_ECONFIG, "%s:%d: unknown group '%s'", file ? file : name, line, path);
                const char *ck = closest_key(path);
                if (ck) DM_HINT("did you mean a key like '%s'? every key is listed in configs/reference.cfg", ck);
                errs_take(e);
            } else
                walk(c, s, path, name, e);
        } else if (dm_key_index(path) < 0 && is_group_prefix(path)) {
            DM_ERR(DM_ECONFIG, "%s:%d: '%s' is a group of keys, not a value", file ? file : name, line, path);
            DM_HINT("write it as %s: { ... };", path);
            errs_take(e);
        } else if (apply_setting(c, s, path, name) != DM_OK)
            errs_take(e);
    }
    return e->n ? DM_ECONFIG : DM_OK;
}

/* One file or text into c; every error goes to e (the caller finishes it). */
static void load(dm_cfg *c, const char *path, const char *text, const char *name, errlist *e)
{
    config_t lc;
    config_init(&lc);
    int ok;
    if (path) {
        /* @include paths are relative to the including file's directory */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            config_set_include_dir(&lc, dir);
        }
        FILE *f = fopen(path, "r");
        if (!f) {
            config_destroy(&lc);
            DM_ERR(DM_ECONFIG, "cannot open config '%s': %s", path, strerror(errno));
            errs_take(e);
            return;
        }
        fclose(f);
        ok = config_read_file(&lc, path);
    } else
        ok = config_read_string(&lc, text);
    if (!ok) {
        const char *ef = config_error_file(&lc);
        DM_ERR(DM_ECONFIG, "%s:%d: %s", ef ? ef : (path ? path : name), config_error_line(&lc),
               config_error_text(&lc));
        if (strstr(config_error_text(&lc), "mismatched element type"))
            DM_HINT("libconfig arrays [ ] hold one type: write 5.0 rather than 5 among floats, or use a list ( )");
        else
            DM_HINT("config files use libconfig syntax: group: { key = value; };");
        config_destroy(&lc);
        errs_take(e);
        return;
    }
    walk(c, config_root_setting(&lc), "", path ? path : name, e);
    config_destroy(&lc);
}

static int load_one(dm_cfg *c, const char *path, const char *text, const char *name)
{
    errlist e;
    memset(&e, 0, sizeof e);
    load(c, path, text, name, &e);
    return errs_finish(&e);
}

int dm_cfg_load_file(dm_cfg *c, const char *path) { return load_one(c, path, NULL, path); }
int dm_cfg_load_string(dm_cfg *c, const char *text, const char *name) { return load_one(c, NULL, text, name); }

int dm_cfg_set(dm_cfg *c, const char *a)
{
    const char *eq = strchr(a, '=');
    if (!eq || eq == a) {
        DM_ERR(DM_ECONFIG, "--set %s: expected group.key=value", a);
        return DM_ECONFIG;
    }
    char name[256];
    size_t l = (size_t)(eq - a);
    if (l >= sizeof name) return DM_ERR(DM_ECONFIG, "--set %s: key too long", a);
    memcpy(name, a, l);
    name[l] = '\0';
    trim(name);
    char where[300];
    snprintf(where, sizeof where, "--set %s", name);
    int k = dm_key_index(name);
    if (k < 0) return unknown_key("--set", name);
    DM_CALL(set_from_text(&g_keys[k], &c->v[k], eq + 1, where));
    return set_origin(&c->v[k], 2, "--set", 0);
}

int dm_cfg_text_str(const char *text, const char *key, char *out, size_t cap)
{
    config_t lc;
    config_init(&lc);
    const char *v = NULL;
    int rc = DM_OK;
    if (!config_read_string(&lc, text))
        rc = DM_ERR(DM_EINPUT, "stored config, line %d: %s", config_error_line(&lc), config_error_text(&lc));
    else if (!config_lookup_string(&lc, key, &v))
        rc = DM_ERR(DM_EINPUT, "the stored config has no string '%s'", key);
    else if ((size_t)snprintf(out, cap, "%s", v) >= cap)
        rc = DM_ERR(DM_EINPUT, "the stored config's '%s' is too long", key);
    config_destroy(&lc);
    return rc;
}

int dm_cfg_load_all(dm_cfg *c, const char *const *files, size_t nfiles, const char *const *sets, size_t nsets)
{
    errlist e;
    memset(&e, 0, sizeof e);
    for (size_t i = 0; i < nfiles; i++) load(c, files[i], NULL, files[i], &e);
    for (size_t i = 0; i < nsets; i++)
        if (dm_cfg_set(c, sets[i]) != DM_OK) errs_take(&e);
    return errs_finish(&e);
}

/* ---- accessors --------------------------------------------------------------------------- */

static const dm_cval *get(const dm_cfg *c, const char *key, dm_ktype t1, dm_ktype t2)
{
    size_t k = key_at(key);
    if (c->seen) c->seen[k] = 1;
    if (g_keys[k].type != t1 && g_keys[k].type != t2) {
        fprintf(stderr, "dynmm: bug: config key '%s' read as the wrong type\n", key);
        DM_ASSERT(0);
    }
    return &c->v[k];
}

long long dm_cfg_int(const dm_cfg *c, const char *key) { return get(c, key, DM_KT_INT, DM_KT_INT)->i; }
double dm_cfg_float(const dm_cfg *c, const char *key) { return get(c, key, DM_KT_FLOAT, DM_KT_FLOAT)->f; }
int dm_cfg_bool(const dm_cfg *c, const char *key) { return (int)get(c, key, DM_KT_BOOL, DM_KT_BOOL)->i; }
const char *dm_cfg_str(const dm_cfg *c, const char *key) { return get(c, key, DM_KT_STR, DM_KT_ENUM)->s; }

size_t dm_cfg_len(const dm_cfg *c, const char *key)
{
    size_t k = key_at(key);
    if (c->seen) c->seen[k] = 1;
    return c->v[k].n;
}

long long dm_cfg_int_at(const dm_cfg *c, const char *key, size_t i)
{
    const dm_cval *v = get(c, key, DM_KT_INTS, DM_KT_INTS);
    DM_ASSERT(i < v->n);
    return v->il[i];
}

double dm_cfg_float_at(const dm_cfg *c, const char *key, size_t i)
{
    const dm_cval *v = get(c, key, DM_KT_FLOATS, DM_KT_FLOATS);
    DM_ASSERT(i < v->n);
    return v->fl[i];
}

const char *dm_cfg_str_at(const dm_cfg *c, const char *key, size_t i)
{
    const dm_cval *v = get(c, key, DM_KT_STRS, DM_KT_STRS);
    DM_ASSERT(i < v->n);
    return v->sl[i];
}

const char *dm_cfg_where(const dm_cfg *c, const char *key, char *buf, size_t cap)
{
    const dm_cval *v = &c->v[key_at(key)];
    if (v->origin == 0) snprintf(buf, cap, "default of '%s'", key);
    else if (v->origin == 2) snprintf(buf, cap, "--set %s", key);
    else snprintf(buf, cap, "%s:%d: '%s'", v->file, v->line, key);
    return buf;
}

/* ---- serialisation ----------------------------------------------------------------------- */

static int put_float(dm_buf *b, double x)
{
    char t[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x) break;
    }
    if (!strpbrk(t, ".eEn")) strcat(t, ".0");
    return dm_buf_adds(b, t);
}

static int put_int(dm_buf *b, long long x)
{
    if (x > 2147483647LL || x < -2147483647LL) return dm_buf_printf(b, "%lldL", x);
    return dm_buf_printf(b, "%lld", x);
}

static int put_str(dm_buf *b, const char *s)
{
    DM_CALL(dm_buf_addc(b, '"'));
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            DM_CALL(dm_buf_addc(b, '\\'));
            DM_CALL(dm_buf_addc(b, (char)ch));
        } else if (ch == '\n') DM_CALL(dm_buf_adds(b, "\\n"));
        else if (ch == '\t') DM_CALL(dm_buf_adds(b, "\\t"));
        else if (ch == '\r') DM_CALL(dm_buf_adds(b, "\\r"));
        else if (ch < 0x20) DM_CALL(dm_buf_printf(b, "\\x%02x", ch));
        else DM_CALL(dm_buf_addc(b, (char)ch));
    }
    return dm_buf_addc(b, '"');
}

static int put_value(dm_buf *b, const dm_key *k, const dm_cval *v)
{
    switch (k->type) {
    case DM_KT_INT: return put_int(b, v->i);
    case DM_KT_FLOAT: return put_float(b, v->f);
    case DM_KT_BOOL: return dm_buf_adds(b, v->i ? "true" : "false");
    case DM_KT_STR:
    case DM_KT_ENUM: return put_str(b, v->s);
    default:
        DM_CALL(dm_buf_addc(b, '['));
        for (size_t j = 0; j < v->n; j++) {
            if (j) DM_CALL(dm_buf_adds(b, ", "));
            if (k->type == DM_KT_INTS) DM_CALL(put_int(b, v->il[j]));
            else if (k->type == DM_KT_FLOATS) DM_CALL(put_float(b, v->fl[j]));
            else DM_CALL(put_str(b, v->sl[j]));
        }
        return dm_buf_addc(b, ']');
    }
}

static int in_groups(const char *name, const char *const *groups)
{
    if (!groups) return 1;
    for (; *groups; groups++) {
        size_t l = strlen(*groups);
        if (strncmp(name, *groups, l) == 0 && (name[l] == '.' || name[l] == '\0')) return 1;
    }
    return 0;
}

int dm_cfg_in_groups(const char *name, const char *const *groups) { return groups && in_groups(name, groups); }

void dm_cfg_seen_clear(const dm_cfg *c)
{
    if (c->seen) memset(c->seen, 0, c->nkeys);
}

size_t dm_cfg_seen_outside(const dm_cfg *c, const char *const *groups, const char *const *exempt, dm_buf *out)
{
    size_t n = 0;
    for (size_t k = 0; c->seen && k < c->nkeys; k++) {
        if (!c->seen[k] || in_groups(g_keys[k].name, groups) || (exempt && in_groups(g_keys[k].name, exempt))) continue;
        if (out) dm_buf_printf(out, "%s%s", n ? ", " : "", g_keys[k].name);
        n++;
    }
    return n;
}

/* Emits nested groups for sorted dotted names; `extra` (may be NULL) writes comments before each
 * key. */
static int emit(dm_buf *b, const dm_cfg *c, const char *const *groups, int reference)
{
    char open[8][64];
    int depth = 0;
    for (size_t k = 0; k < g_nkeys; k++) {
        const dm_key *key = &g_keys[k];
        if (!in_groups(key->name, groups)) continue;
        /* split into components */
        char comp[8][64];
        int nc = 0;
        const char *s = key->name;
        while (*s && nc < 8) {
            size_t l = strcspn(s, ".");
            DM_ASSERT(l < 64);
            memcpy(comp[nc], s, l);
            comp[nc][l] = '\0';
            nc++;
            s += l;
            if (*s == '.') s++;
        }
        /* close groups that differ */
        int common = 0;
        while (common < depth && common < nc - 1 && strcmp(open[common], comp[common]) == 0) common++;
        while (depth > common) {
            depth--;
            DM_CALL(dm_buf_printf(b, "%*s};\n", 2 * depth, ""));
        }
        while (depth < nc - 1) {
            if (reference && depth == 0) DM_CALL(dm_buf_adds(b, "\n"));
            DM_CALL(dm_buf_printf(b, "%*s%s: {\n", 2 * depth, "", comp[depth]));
            snprintf(open[depth], 64, "%s", comp[depth]);
            depth++;
        }
        if (reference) {
            /* wrap the doc at ~96 columns */
            const char *d = key->doc;
            int ind = 2 * depth;
            while (*d) {
                int w = 96 - ind - 3;
                int l = (int)strlen(d);
                if (l > w) {
                    int cut = w;
                    while (cut > 0 && d[cut] != ' ') cut--;
                    if (cut == 0) cut = w;
                    l = cut;
                }
                DM_CALL(dm_buf_printf(b, "%*s# %.*s\n", ind, "", l, d));
                d += l;
                while (*d == ' ') d++;
            }
            char r[96] = "";
            if (key->type == DM_KT_INT || key->type == DM_KT_FLOAT || key->type == DM_KT_INTS ||
                key->type == DM_KT_FLOATS) {
                r[0] = ' ';
                fmt_range(r + 1, sizeof r - 1, key);
            }
            if (key->type == DM_KT_ENUM)
                DM_CALL(dm_buf_printf(b, "%*s# type: one of %s\n", ind, "", key->choices));
            else
                DM_CALL(dm_buf_printf(b, "%*s# type: %s%s%s\n", ind, "", type_name(key->type),
                                      r[0] ? ", range" : "", r));
        }
        DM_CALL(dm_buf_printf(b, "%*s%s = ", 2 * depth, "", comp[nc - 1]));
        DM_CALL(put_value(b, key, &c->v[k]));
        DM_CALL(dm_buf_adds(b, ";\n"));
    }
    while (depth > 0) {
        depth--;
        DM_CALL(dm_buf_printf(b, "%*s};\n", 2 * depth, ""));
    }
    return DM_OK;
}

int dm_cfg_serialize(const dm_cfg *c, const char *const *groups, dm_buf *out)
{
    sort_keys();
    return emit(out, c, groups, 0);
}

int dm_cfg_hash(const dm_cfg *c, const char *const *groups, char out[65])
{
    dm_buf b = {0};
    int rc = dm_cfg_serialize(c, groups, &b);
    if (!rc) dm_sha256_hex(b.data ? b.data : "", b.len, out);
    dm_buf_free(&b);
    return rc;
}

int dm_cfg_reference(dm_buf *out)
{
    dm_cfg c;
    DM_CALL(dm_cfg_init(&c));
    int rc = dm_buf_adds(out,
                         "# dynmm reference configuration: every key with its default, type and range.\n"
                         "# Generated by `dynmm config --reference`; do not edit by hand (a test keeps it\n"
                         "# identical to the key table in src/config/keys/). Copy the keys you change into\n"
                         "# your own config, or override any of them with --set group.key=value.\n");
    if (!rc) rc = emit(out, &c, NULL, 1);
    dm_cfg_free(&c);
    return rc;
}
