/* metrics_sample.c: uniform and popularity negative samplers keyed per user, see metrics_sample.h.
 *
 * Alias method: Vose, "A linear algorithm for generating random numbers with a given distribution",
 * IEEE TSE 1991. Weighted sampling without replacement by keys: Efraimidis & Spirakis, "Weighted
 * random sampling with a reservoir", IPL 2006 (largest u^(1/w), computed as log(u)/w).
 */
#include "metrics_sample.h"

#include "../core/buf.h"
#include "../core/err.h"
#include "../core/sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MARK_USER = 1, MARK_CHOSEN = 2 };

uint64_t metrics_protocol_key(const char *name) { return dm_hash_bytes(name, strlen(name)); }

static int ws_reserve_list(metrics_ws *w, size_t n)
{
    if (n <= w->list_cap) return DM_OK;
    DM_REALLOC(w->list, n);
    w->list_cap = n;
    return DM_OK;
}

/* Marks the user's items; returns the number of distinct ones (and, with p, those of weight > 0). */
static int mark_user(metrics_ws *w, const int32_t *items, size_t n, int64_t user, const double *p,
                     size_t *distinct, size_t *distinct_pos)
{
    size_t c = 0, cp = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t it = items[i];
        if (it < 0 || (size_t)it >= w->n_items) {
            for (size_t k = 0; k < i; k++) w->mark[items[k]] = 0;
            return DM_ERR(DM_EINPUT, "negatives: user %lld has item %d outside the catalogue [0, %zu)", (long long)user,
                          (int)it, w->n_items);
        }
        if (w->mark[it] & MARK_USER) continue;
        w->mark[it] |= MARK_USER;
        c++;
        if (p && p[it] > 0) cp++;
    }
    *distinct = c;
    if (distinct_pos) *distinct_pos = cp;
    return DM_OK;
}

static void unmark_all(metrics_ws *w, const int32_t *items, size_t n, const int32_t *chosen, size_t nc)
{
    for (size_t i = 0; i < n; i++) w->mark[items[i]] = 0;
    for (size_t i = 0; i < nc; i++) w->mark[chosen[i]] = 0;
}

int metrics_sample_uniform(metrics_ws *w, uint64_t seed, int64_t user, uint64_t protocol,
                           const int32_t *user_items, size_t n_user_items, size_t n_neg,
                           int32_t *neg)
{
    size_t n_items = w->n_items, distinct = 0;
    DM_CALL(mark_user(w, user_items, n_user_items, user, NULL, &distinct, NULL));
    size_t eligible = n_items - distinct;
    if (eligible < n_neg) {
        unmark_all(w, user_items, n_user_items, NULL, 0);
        DM_ERR(DM_EINPUT, "negatives: user %lld has %zu eligible items (of %zu; %zu touched), the protocol needs %zu",
               (long long)user, eligible, n_items, distinct, n_neg);
        DM_HINT("drop users with too few untouched items or use fewer sampled negatives");
        return DM_EINPUT;
    }
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, (uint64_t)user, protocol));
    if (4 * (eligible - n_neg) >= n_items) {
        /* acceptance stays above 1/4 until the last draw */
        size_t got = 0;
        while (got < n_neg) {
            int32_t it = (int32_t)dm_rng_below(&r, n_items);
            if (w->mark[it]) continue;
            w->mark[it] |= MARK_CHOSEN;
            neg[got++] = it;
        }
    } else {
        DM_CALL(ws_reserve_list(w, eligible ? eligible : 1));
        size_t c = 0;
        for (size_t i = 0; i < n_items; i++)
            if (!w->mark[i]) w->list[c++] = (int32_t)i;
        DM_ASSERT(c == eligible);
        for (size_t i = 0; i < n_neg; i++) {
            size_t k = i + (size_t)dm_rng_below(&r, eligible - i);
            int32_t t = w->list[i];
            w->list[i] = w->list[k];
            w->list[k] = t;
            neg[i] = w->list[i];
        }
    }
    unmark_all(w, user_items, n_user_items, neg, n_neg);
    return DM_OK;
}

/* ---- popularity ------------------------------------------------------------------------------ */

int metrics_alias_init(metrics_alias *a, const double *weight, size_t n)
{
    memset(a, 0, sizeof *a);
    if (n == 0 || n > INT32_MAX) return DM_ERR(DM_EINPUT, "negatives: popularity table of %zu items", n);
    double total = 0.0;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(weight[i] >= 0) || !isfinite(weight[i]))
            return DM_ERR(DM_EINPUT, "negatives: popularity weight of item %zu is %g (must be finite and >= 0)", i,
                          weight[i]);
        total += weight[i];
        pos += weight[i] > 0;
    }
    if (pos == 0) return DM_ERR(DM_EINPUT, "negatives: every popularity weight is zero");
    int rc = DM_OK;
    int32_t *small = NULL, *large = NULL;
    double *q = NULL;
    a->n = n;
    a->n_pos = pos;
    a->prob = calloc(n, sizeof *a->prob);
    a->alias = calloc(n, sizeof *a->alias);
    a->p = calloc(n, sizeof *a->p);
    small = calloc(n, sizeof *small);
    large = calloc(n, sizeof *large);
    q = calloc(n, sizeof *q);
    if (!a->prob || !a->alias || !a->p || !small || !large || !q) {
        rc = DM_ERR(DM_ENOMEM, "negatives: out of memory building an alias table of %zu items", n);
        goto done;
    }
    size_t ns = 0, nl = 0, heaviest = 0;
    for (size_t i = 0; i < n; i++) {
        a->p[i] = weight[i] / total;
        q[i] = a->p[i] * (double)n;
        if (weight[i] > weight[heaviest]) heaviest = i;
        if (q[i] < 1.0) small[ns++] = (int32_t)i;
        else large[nl++] = (int32_t)i;
    }
    while (ns && nl) {
        int32_t s = small[--ns], l = large[nl - 1];
        a->prob[s] = q[s];
        a->alias[s] = l;
        q[l] = (q[l] + q[s]) - 1.0;
        if (q[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    /* leftovers carry probability ~1 up to rounding; a zero-weight leftover must stay unreachable */
    while (nl) {
        int32_t l = large[--nl];
        a->prob[l] = 1.0;
        a->alias[l] = l;
    }
    while (ns) {
        int32_t s = small[--ns];
        a->prob[s] = weight[s] > 0 ? 1.0 : 0.0;
        a->alias[s] = weight[s] > 0 ? s : (int32_t)heaviest;
    }
done:
    free(small);
    free(large);
    free(q);
    if (rc) metrics_alias_free(a);
    return rc;
}

void metrics_alias_free(metrics_alias *a)
{
    DM_FREE_ALL(a->prob, a->alias, a->p);
    memset(a, 0, sizeof *a);
}

int32_t metrics_alias_draw(const metrics_alias *a, dm_rng *rng)
{
    size_t i = (size_t)dm_rng_below(rng, a->n);
    return dm_rng_uniform(rng) < a->prob[i] ? (int32_t)i : a->alias[i];
}

int metrics_sample_pop(metrics_ws *w, const metrics_alias *a, uint64_t seed, int64_t user,
                       uint64_t protocol, const int32_t *user_items, size_t n_user_items,
                       size_t n_neg, int32_t *neg)
{
    if (a->n != w->n_items)
        return DM_ERR(DM_EINTERNAL, "negatives: popularity table has %zu items, workspace %zu", a->n, w->n_items);
    size_t distinct = 0, distinct_pos = 0;
    DM_CALL(mark_user(w, user_items, n_user_items, user, a->p, &distinct, &distinct_pos));
    size_t eligible = a->n_pos - distinct_pos;
    if (eligible < n_neg) {
        unmark_all(w, user_items, n_user_items, NULL, 0);
        DM_ERR(DM_EINPUT,
               "negatives: user %lld has %zu eligible items of non-zero popularity (%zu such items, %zu touched), the "
               "protocol needs %zu",
               (long long)user, eligible, a->n_pos, distinct_pos, n_neg);
        DM_HINT("drop users with too few untouched items or use fewer sampled negatives");
        return DM_EINPUT;
    }
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, (uint64_t)user, protocol));
    size_t got = 0, draws = 0, cap = 64 * n_neg + 1024;
    while (got < n_neg && draws < cap) {
        draws++;
        int32_t it = metrics_alias_draw(a, &r);
        if (w->mark[it]) continue;
        w->mark[it] |= MARK_CHOSEN;
        neg[got++] = it;
    }
    if (got < n_neg) {
        /* the user's items hold most of the mass: redraw the whole set by keys */
        for (size_t i = 0; i < got; i++) w->mark[neg[i]] = 0;
        dm_keyed *k = calloc(eligible ? eligible : 1, sizeof *k);
        if (!k) {
            unmark_all(w, user_items, n_user_items, NULL, 0);
            return DM_ERR(DM_ENOMEM, "negatives: out of memory (%zu keys)", eligible);
        }
        size_t c = 0;
        for (size_t i = 0; i < a->n; i++) {
            if (w->mark[i] || !(a->p[i] > 0)) continue;
            double u = dm_rng_uniform(&r);
            if (u <= 0) u = 0x1.0p-60;
            k[c].key = log(u) / a->p[i];
            k[c].id = (int64_t)i;
            c++;
        }
        DM_ASSERT(c == eligible);
        qsort(k, c, sizeof *k, dm_cmp_keyed_desc);
        for (size_t i = 0; i < n_neg; i++) neg[i] = (int32_t)k[i].id;
        free(k);
        unmark_all(w, user_items, n_user_items, NULL, 0);
        return DM_OK;
    }
    unmark_all(w, user_items, n_user_items, neg, n_neg);
    return DM_OK;
}
