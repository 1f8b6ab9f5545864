/* itemknn.c: ItemKNN's similarity rows and scores, see itemknn.h. */
#include "itemknn.h"

#include "../core/err.h"
#include "../core/sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* drops repeats from a sorted array; returns the new length */
static size_t uniq_i32(int32_t *a, size_t n)
{
    size_t q = 0;
    for (size_t k = 0; k < n; k++)
        if (!q || a[k] != a[q - 1]) a[q++] = a[k];
    return q;
}

int itemknn_index_init(itemknn_index *x, const dm_dataset *d, const int8_t *roles)
{
    memset(x, 0, sizeof *x);
    x->n_users = d->n_users;
    x->n_items = d->n_items;
    DM_ALLOC(x->u_off, d->n_users + 1);
    DM_ALLOC(x->u_items, d->n_inter + 1);
    DM_ALLOC(x->i_off, d->n_items + 1);
    size_t n = 0;
    for (size_t u = 0; u < d->n_users; u++) {
        size_t s = n;
        for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++)
            if (roles[k] == DM_TRAIN) x->u_items[n++] = d->item[k];
        qsort(x->u_items + s, n - s, sizeof *x->u_items, dm_cmp_i32);
        n = s + uniq_i32(x->u_items + s, n - s);
        x->u_off[u + 1] = (int64_t)n;
    }
    /* the transpose by counting: users come out increasing because u is visited in order */
    DM_ALLOC(x->i_users, n + 1);
    for (size_t k = 0; k < n; k++) x->i_off[x->u_items[k] + 1]++;
    for (size_t i = 0; i < d->n_items; i++) x->i_off[i + 1] += x->i_off[i];
    int64_t *fill;
    DM_ALLOC(fill, d->n_items + 1);
    memcpy(fill, x->i_off, d->n_items * sizeof *fill);
    for (size_t u = 0; u < d->n_users; u++)
        for (int64_t k = x->u_off[u]; k < x->u_off[u + 1]; k++) x->i_users[fill[x->u_items[k]]++] = (int32_t)u;
    free(fill);
    return DM_OK;
}

void itemknn_index_free(itemknn_index *x)
{
    DM_FREE_ALL(x->u_off, x->u_items, x->i_off, x->i_users);
    memset(x, 0, sizeof *x);
}

void itemknn_row_cost(const itemknn_index *x, int64_t *prefix)
{
    prefix[0] = 0;
    for (size_t i = 0; i < x->n_items; i++) {
        int64_t c = 1;
        for (int64_t k = x->i_off[i]; k < x->i_off[i + 1]; k++) c += x->u_off[x->i_users[k] + 1] - x->u_off[x->i_users[k]];
        prefix[i + 1] = prefix[i] + c;
    }
}

int itemknn_width(int k, size_t n_items)
{
    size_t w = n_items > 1 ? n_items - 1 : 1;
    return k < 1 ? 1 : (size_t)k < w ? k : (int)w;
}

int itemknn_rows(const itemknn_index *x, size_t lo, size_t hi, int k, double shrink, int32_t *nbr, float *sim)
{
    int K = itemknn_width(k, x->n_items);
    int32_t *cnt, *touched;
    dm_keyed *c; /* (similarity, item) of the candidates */
    DM_ALLOC(cnt, x->n_items + 1);
    DM_ALLOC(touched, x->n_items + 1);
    c = malloc((x->n_items + 1) * sizeof *c);
    if (!c) {
        free(cnt);
        free(touched);
        return DM_ERR(DM_ENOMEM, "itemknn: cannot allocate the candidates of %zu items", x->n_items);
    }
    for (size_t i = lo; i < hi; i++) {
        size_t nt = 0;
        for (int64_t a = x->i_off[i]; a < x->i_off[i + 1]; a++) {
            int32_t u = x->i_users[a];
            for (int64_t b = x->u_off[u]; b < x->u_off[u + 1]; b++)
                if (cnt[x->u_items[b]]++ == 0) touched[nt++] = x->u_items[b];
        }
        double ni = sqrt((double)(x->i_off[i + 1] - x->i_off[i]));
        size_t nc = 0;
        for (size_t t = 0; t < nt; t++) {
            int32_t j = touched[t];
            if ((size_t)j != i) {
                double nj = sqrt((double)(x->i_off[j + 1] - x->i_off[j]));
                c[nc].key = (double)cnt[j] / (ni * nj + shrink + 1e-6);
                c[nc++].id = j;
            }
            cnt[j] = 0;
        }
        /* similarity descending, then item ascending: a total order, so the kept set is unique */
        qsort(c, nc, sizeof *c, dm_cmp_keyed_desc);
        int32_t *rn = nbr + (i - lo) * (size_t)K;
        float *rs = sim + (i - lo) * (size_t)K;
        for (int q = 0; q < K; q++) {
            rn[q] = (size_t)q < nc ? (int32_t)c[q].id : -1;
            rs[q] = (size_t)q < nc ? (float)c[q].key : 0.0f;
        }
    }
    free(cnt);
    free(touched);
    free(c);
    return DM_OK;
}

void itemknn_score(const itemknn_model *m, int32_t *hist, size_t nh, float *scores)
{
    memset(scores, 0, m->n_items * sizeof *scores);
    qsort(hist, nh, sizeof *hist, dm_cmp_i32);
    nh = uniq_i32(hist, nh);
    for (size_t h = 0; h < nh; h++) {
        const int32_t *rn = m->nbr + (size_t)hist[h] * (size_t)m->K;
        const float *rs = m->sim + (size_t)hist[h] * (size_t)m->K;
        for (int q = 0; q < m->K && rn[q] >= 0; q++) scores[rn[q]] += rs[q];
    }
}
