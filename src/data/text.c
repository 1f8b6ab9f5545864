/* text.c: tokens and TF-IDF, see text.h. */
#include "text.h"

#include "../core/err.h"

#include <math.h>
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

/* tokens of item i (title, brand, category) */
static int item_tokens(const dm_dataset *d, size_t i, dm_strtab *t)
{
    const dm_strtab *f[3] = {&d->title, &d->brand, &d->category};
    for (int k = 0; k < 3; k++) {
        size_t l;
        const char *s = dm_strtab_get(f[k], i, &l);
        dm_tokenize(s, l, t);
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
    memset(out, 0, sizeof *out);
    size_t n = d->n_items;
    /* document frequencies over all items */
    dm_strmap all = {0};
    int64_t *df = NULL, *seen = NULL;
    size_t cap = 0;
    dm_strtab t = {0};
    for (size_t i = 0; i < n; i++) {
        t.n = 0;
        if (t.offsets) t.offsets[0] = 0;
        DM_CALL(item_tokens(d, i, &t));
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
        DM_CALL(item_tokens(d, i, &t));
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
        qsort(e, ne, sizeof *e, cmp_ent);
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
    return DM_OK;
}

void dm_csr_free(dm_csr *m)
{
    free(m->row_off);
    free(m->col);
    free(m->val);
    dm_strtab_free(&m->terms);
    memset(m, 0, sizeof *m);
}
