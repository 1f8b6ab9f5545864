/* text.c: tokens and TF-IDF, see text.h. */
#include "text.h"

#include "../core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const STOP[] = {"an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of",
                                   "on", "or", "the", "to", "with", "that", "this", "your", "you", "its", NULL};

static int is_stop(const char *s, size_t n)
{
    for (int k = 0; STOP[k]; k++)
        if (strlen(STOP[k]) == n && !memcmp(STOP[k], s, n)) return 1;
    return 0;
}

static int wordch(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80; }

size_t dm_tokenize(const char *s, size_t n, dm_strtab *out)
{
    char buf[256];
    size_t cnt = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && !wordch((unsigned char)s[i])) i++;
        size_t j = i, l = 0;
        while (j < n && wordch((unsigned char)s[j])) {
            unsigned char c = (unsigned char)s[j];
            if (l < sizeof buf) buf[l++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            j++;
        }
        if (l >= 2 && !is_stop(buf, l)) {
            if (dm_strtab_add(out, buf, l) != DM_OK) return cnt;
            cnt++;
        }
        i = j;
    }
    return cnt;
}

int dm_tfidf_fields(dm_tfidf_select *o, char *const *names, size_t n, char **attr_only)
{
    static const char *const kw[] = {"title", "brand", "category", "price", "attributes"};
    o->fields = 0;
    o->n_attr_only = 0;
    o->numeric_bins = 10;
    o->attr_only = attr_only;
    for (size_t i = 0; i < n; i++) {
        int k = 0;
        while (k < 5 && strcmp(names[i], kw[k])) k++;
        if (k < 5) o->fields |= 1u << k;
        else if (!strncmp(names[i], "attr:", 5) && names[i][5]) {
            o->fields |= DM_TF_ATTRS;
            attr_only[o->n_attr_only++] = names[i] + 5;
        } else
            return (int)i;
    }
    if (!(o->fields & DM_TF_ATTRS) || !o->n_attr_only) o->attr_only = NULL, o->n_attr_only = 0;
    return -1;
}

/* the field of "name=value" (its length), or 0 */
static size_t field_len(const char *s, size_t l)
{
    const char *eq = memchr(s, '=', l);
    return eq && eq > s ? (size_t)(eq - s) : 0;
}

static int parse_num(const char *s, size_t l, double *x)
{
    char buf[64], *end;
    if (!l || l >= sizeof buf) return 0;
    memcpy(buf, s, l);
    buf[l] = '\0';
    *x = strtod(buf, &end);
    return *end == '\0' && isfinite(*x);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int attr_selected(const dm_tfidf_select *o, const char *s, size_t l)
{
    if (!o->n_attr_only) return 1;
    size_t f = field_len(s, l);
    for (size_t k = 0; k < o->n_attr_only; k++)
        if (f && strlen(o->attr_only[k]) == f && !memcmp(o->attr_only[k], s, f)) return 1;
    return 0;
}

/* Bins the numeric field of attribute a (its field's values, weighted by the items having them) into
 * o->numeric_bins quantile bins: fills the terms of every attribute of that field. */
static int bin_numeric_field(const dm_dataset *d, const dm_tfidf_select *o, size_t a, char **term)
{
    size_t l;
    const char *s = dm_strtab_get(&d->attr_name, a, &l);
    size_t f = field_len(s, l);
    int bins = o->numeric_bins > 0 ? o->numeric_bins : 1;
    /* the field's attributes: all numeric? how many distinct values? */
    int8_t *of = calloc(d->n_attr + 1, 1);
    if (!of) return DM_ERR(DM_ENOMEM, "out of memory");
    size_t distinct = 0;
    int numeric = 1;
    for (size_t b = 0; b < d->n_attr; b++) {
        size_t lb;
        const char *sb = dm_strtab_get(&d->attr_name, b, &lb);
        if (d->attr_kind[b] != DM_ATTR_OTHER || field_len(sb, lb) != f || memcmp(sb, s, f)) continue;
        double x;
        of[b] = 1;
        distinct++;
        numeric &= parse_num(sb + f + 1, lb - f - 1, &x);
    }
    int rc = DM_OK;
    if (!numeric || distinct <= (size_t)bins) { /* whole terms */
        for (size_t b = 0; b < d->n_attr && !rc; b++)
            if (of[b]) {
                const char *sb = dm_strtab_get(&d->attr_name, b, &l);
                term[b] = malloc(l + 6);
                if (!term[b]) rc = DM_ERR(DM_ENOMEM, "out of memory");
                else snprintf(term[b], l + 6, "attr:%.*s", (int)l, sb);
            }
        free(of);
        return rc;
    }
    /* the values of the items' occurrences, sorted; edges at the i/bins quantiles */
    size_t nv = 0, nocc = (size_t)d->item_attr_off[d->n_items];
    for (size_t i = 0; i < nocc; i++) nv += of[d->item_attr[i]];
    double *v = malloc((nv + 1) * sizeof *v);
    if (!v) rc = DM_ERR(DM_ENOMEM, "out of memory");
    size_t q = 0;
    for (size_t i = 0; !rc && i < nocc; i++) {
        int32_t b = d->item_attr[i];
        if (!of[b]) continue;
        size_t lb;
        const char *sb = dm_strtab_get(&d->attr_name, (size_t)b, &lb);
        parse_num(sb + f + 1, lb - f - 1, &v[q++]);
    }
    if (!rc) qsort(v, nv, sizeof *v, cmp_dbl);
    for (size_t b = 0; b < d->n_attr && !rc; b++) {
        if (!of[b]) continue;
        size_t lb;
        const char *sb = dm_strtab_get(&d->attr_name, b, &lb);
        double x = 0;
        parse_num(sb + f + 1, lb - f - 1, &x);
        int k = 0; /* bin: edges v[nv * j / bins] for j = 1 .. bins - 1 */
        while (k + 1 < bins && nv && x >= v[(size_t)((double)nv * (k + 1) / bins)]) k++;
        term[b] = malloc(f + 32);
        if (!term[b]) rc = DM_ERR(DM_ENOMEM, "out of memory");
        else snprintf(term[b], f + 32, "attr:%.*s#q%d", (int)f, sb, k);
    }
    free(v);
    free(of);
    return rc;
}

/* The term of every attribute under o (NULL = none). */
static int attribute_terms(const dm_dataset *d, const dm_tfidf_select *o, char ***out)
{
    char **term = calloc(d->n_attr + 1, sizeof *term);
    if (!term) return DM_ERR(DM_ENOMEM, "out of memory");
    int rc = DM_OK;
    for (size_t a = 0; a < d->n_attr && !rc; a++) {
        if (term[a]) continue;
        size_t l;
        const char *s = dm_strtab_get(&d->attr_name, a, &l);
        int kind = d->attr_kind[a];
        if (kind == DM_ATTR_PRICE && (o->fields & DM_TF_PRICE)) {
            term[a] = malloc(l + 6);
            if (!term[a]) rc = DM_ERR(DM_ENOMEM, "out of memory");
            else snprintf(term[a], l + 6, "attr:%.*s", (int)l, s);
        } else if (kind == DM_ATTR_OTHER && (o->fields & DM_TF_ATTRS) && attr_selected(o, s, l)) {
            if (field_len(s, l)) rc = bin_numeric_field(d, o, a, term);
            else {
                term[a] = malloc(l + 6);
                if (!term[a]) rc = DM_ERR(DM_ENOMEM, "out of memory");
                else snprintf(term[a], l + 6, "attr:%.*s", (int)l, s);
            }
        }
    }
    if (rc) {
        for (size_t a = 0; a < d->n_attr; a++) free(term[a]);
        free(term);
        return rc;
    }
    *out = term;
    return DM_OK;
}

/* tokens of item i: the words of its selected text fields, then its attributes' terms */
static int item_tokens(const dm_dataset *d, unsigned fields, char *const *aterm, size_t i, dm_strtab *t)
{
    const dm_strtab *f[3] = {&d->title, &d->brand, &d->category};
    for (int k = 0; k < 3; k++) {
        if (!(fields & (1u << k))) continue;
        size_t l;
        const char *s = dm_strtab_get(f[k], i, &l);
        dm_tokenize(s, l, t);
    }
    if (aterm && d->item_attr_off)
        for (int64_t j = d->item_attr_off[i]; j < d->item_attr_off[i + 1]; j++) {
            const char *s = aterm[d->item_attr[j]];
            if (s) DM_CALL(dm_strtab_add(t, s, strlen(s)));
        }
    return DM_OK;
}

typedef struct {
    int64_t df;
    int64_t id;
    const char *s;
    size_t l;
} term;

static int cmp_term(const void *a, const void *b)
{
    const term *x = a, *y = b;
    if (x->df != y->df) return x->df > y->df ? -1 : 1;
    size_t m = x->l < y->l ? x->l : y->l;
    int r = memcmp(x->s, y->s, m);
    if (r) return r;
    return (x->l > y->l) - (x->l < y->l);
}

typedef struct {
    int32_t col;
    double cnt;
} ent;

static int cmp_ent(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

int dm_tfidf(const dm_dataset *d, const dm_tfidf_opts *o, size_t lo, size_t hi, dm_csr *out)
{
    return dm_tfidf_sel(d, o, NULL, lo, hi, out);
}

int dm_tfidf_sel(const dm_dataset *d, const dm_tfidf_opts *o, const dm_tfidf_select *sel, size_t lo, size_t hi, dm_csr *out)
{
    memset(out, 0, sizeof *out);
    size_t n = d->n_items;
    unsigned fields = sel ? sel->fields : DM_TF_TITLE | DM_TF_BRAND | DM_TF_CATEGORY;
    char **aterm = NULL;
    if (fields & (DM_TF_PRICE | DM_TF_ATTRS)) DM_CALL(attribute_terms(d, sel, &aterm));
    /* document frequencies over all items */
    dm_strmap all = {0};
    int64_t *df = NULL, *seen = NULL;
    size_t cap = 0;
    dm_strtab t = {0};
    for (size_t i = 0; i < n; i++) {
        t.n = 0;
        if (t.offsets) t.offsets[0] = 0;
        DM_CALL(item_tokens(d, fields, aterm, i, &t));
        for (size_t k = 0; k < t.n; k++) {
            size_t l;
            const char *s = dm_strtab_get(&t, k, &l);
            int64_t id;
            DM_CALL(dm_strmap_intern(&all, s, l, &id, NULL));
            if ((size_t)id >= cap) {
                size_t nc = cap ? 2 * cap : 4096;
                while (nc <= (size_t)id) nc *= 2;
                DM_REALLOC(df, nc);
                DM_REALLOC(seen, nc);
                for (size_t q = cap; q < nc; q++) df[q] = 0, seen[q] = -1;
                cap = nc;
            }
            if (seen[id] != (int64_t)i) {
                seen[id] = (int64_t)i;
                df[id]++;
            }
        }
    }
    size_t nt = all.keys.n;
    term *terms;
    DM_ALLOC(terms, nt + 1);
    size_t kept = 0;
    double maxdf = o->max_df * (double)n;
    for (size_t k = 0; k < nt; k++) {
        if (df[k] < o->min_df || (double)df[k] > maxdf) continue;
        terms[kept].df = df[k];
        terms[kept].id = (int64_t)k;
        terms[kept].s = dm_strtab_get(&all.keys, k, &terms[kept].l);
        kept++;
    }
    qsort(terms, kept, sizeof *terms, cmp_term);
    if (kept > o->max_terms) kept = o->max_terms;
    int32_t *col_of;
    DM_ALLOC(col_of, nt + 1);
    for (size_t k = 0; k < nt; k++) col_of[k] = -1;
    double *idf;
    DM_ALLOC(idf, kept + 1);
    for (size_t c = 0; c < kept; c++) {
        col_of[terms[c].id] = (int32_t)c;
        idf[c] = log((1.0 + (double)n) / (1.0 + (double)terms[c].df)) + 1.0;
        DM_CALL(dm_strtab_add(&out->terms, terms[c].s, terms[c].l));
    }
    /* rows of [lo, hi) */
    out->n_rows = hi - lo;
    out->n_cols = kept;
    DM_ALLOC(out->row_off, out->n_rows + 1);
    size_t nnz_cap = 1024, nnz = 0;
    DM_ALLOC(out->col, nnz_cap);
    DM_ALLOC(out->val, nnz_cap);
    ent *e = NULL;
    size_t ecap = 0;
    for (size_t i = lo; i < hi; i++) {
        t.n = 0;
        if (t.offsets) t.offsets[0] = 0;
        DM_CALL(item_tokens(d, fields, aterm, i, &t));
        size_t ne = 0;
        if (t.n > ecap) {
            ecap = 2 * t.n;
            DM_REALLOC(e, ecap);
        }
        for (size_t k = 0; k < t.n; k++) {
            size_t l;
            const char *s = dm_strtab_get(&t, k, &l);
            int64_t id = dm_strmap_find(&all, s, l);
            if (id < 0 || col_of[id] < 0) continue;
            e[ne].col = col_of[id];
            e[ne].cnt = 1;
            ne++;
        }
        if (ne > 1) qsort(e, ne, sizeof *e, cmp_ent); /* e is NULL while no item had a term */
        size_t q = 0;
        for (size_t k = 0; k < ne; k++) {
            if (q && e[q - 1].col == e[k].col) e[q - 1].cnt += 1;
            else e[q++] = e[k];
        }
        double norm = 0;
        for (size_t k = 0; k < q; k++) {
            e[k].cnt = (1.0 + log(e[k].cnt)) * idf[e[k].col];
            norm += e[k].cnt * e[k].cnt;
        }
        norm = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
        if (nnz + q > nnz_cap) {
            while (nnz + q > nnz_cap) nnz_cap *= 2;
            DM_REALLOC(out->col, nnz_cap);
            DM_REALLOC(out->val, nnz_cap);
        }
        for (size_t k = 0; k < q; k++) {
            out->col[nnz] = e[k].col;
            out->val[nnz] = e[k].cnt * norm;
            nnz++;
        }
        out->row_off[i - lo + 1] = (int64_t)nnz;
    }
    free(e);
    free(idf);
    free(col_of);
    free(terms);
    free(df);
    free(seen);
    dm_strtab_free(&t);
    dm_strmap_free(&all);
    for (size_t a = 0; aterm && a < d->n_attr; a++) free(aterm[a]);
    free(aterm);
    return DM_OK;
}

void dm_csr_free(dm_csr *m)
{
    DM_FREE_ALL(m->row_off, m->col, m->val);
    dm_strtab_free(&m->terms);
    memset(m, 0, sizeof *m);
}
