/* adapter_summary.c: window summaries of items and users (see adapter_summary.h for the feature
 * definitions), an O(n log n) implementation and the naive O(n^2) reference beside it.
 */
#include "adapter_summary.h"

#include "../core/err.h"
#include "../core/sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const feat_names[4] = {"count", "trend", "recency", "cooc"};

const char *adapter_feature_name(int k)
{
    DM_ASSERT(k >= 0 && k < 4);
    return feat_names[k];
}

void adapter_summary_dims(unsigned features, int *ds_item, int *ds_user)
{
    int base = 0;
    for (int k = 0; k < 3; k++) base += (features >> k) & 1u;
    int di = base + ((features & ADAPTER_FEAT_COOC) ? 1 : 0);
    if (ds_item) *ds_item = di;
    if (ds_user) *ds_user = base + ((features & ADAPTER_FEAT_COOC) ? di : 0);
}

int adapter_parse_features(const char *const *names, size_t n, unsigned *mask)
{
    unsigned m = 0;
    for (size_t j = 0; j < n; j++) {
        int k = 0;
        while (k < 4 && strcmp(names[j], feat_names[k]) != 0) k++;
        if (k == 4) {
            DM_ERR(DM_ECONFIG, "adapter.features: unknown feature '%s'", names[j]);
            DM_HINT("the features are count, trend, recency and cooc");
            return DM_ECONFIG;
        }
        if (m & (1u << k)) {
            DM_ERR(DM_ECONFIG, "adapter.features: '%s' is listed twice", names[j]);
            return DM_ECONFIG;
        }
        m |= 1u << k;
    }
    *mask = m;
    return DM_OK;
}

static int check_args(const adapter_summary_config *c, int n_users, int n_items,
                      const adapter_events *cur, const adapter_events *prev)
{
    if (c->features & ~(unsigned)ADAPTER_FEAT_ALL) {
        DM_ERR(DM_ECONFIG, "adapter summaries: unknown feature bits 0x%x", c->features);
        return DM_ECONFIG;
    }
    if (c->recent < 1) {
        DM_ERR(DM_ECONFIG, "adapter.cooc_recent = %d, expected at least 1", c->recent);
        return DM_ECONFIG;
    }
    if (n_users < 0 || n_items < 0) {
        DM_ERR(DM_EINTERNAL, "adapter summaries: %d users, %d items", n_users, n_items);
        return DM_EINTERNAL;
    }
    const adapter_events *ev[2] = {cur, prev};
    for (int w = 0; w < 2; w++) {
        if (!ev[w]) continue;
        for (size_t k = 0; k < ev[w]->n; k++) {
            if (ev[w]->user[k] < 0 || ev[w]->user[k] >= n_users) {
                DM_ERR(DM_EINPUT, "adapter summaries: %s window interaction %zu has user %d, "
                       "expected 0..%d", w ? "previous" : "current", k, ev[w]->user[k],
                       n_users - 1);
                return DM_EINPUT;
            }
            if (ev[w]->item[k] < 0 || ev[w]->item[k] >= n_items) {
                DM_ERR(DM_EINPUT, "adapter summaries: %s window interaction %zu has item %d, "
                       "expected 0..%d", w ? "previous" : "current", k, ev[w]->item[k],
                       n_items - 1);
                return DM_EINPUT;
            }
        }
    }
    return DM_OK;
}

static double resolve_tau(const adapter_summary_config *c, int64_t t_begin, int64_t t_end)
{
    double tau = c->tau_ms > 0 ? c->tau_ms : (double)(t_end - t_begin);
    return tau > 0 ? tau : 1.0;
}

/* exp(-(t_end - last) / tau), 0 when never seen (has = 0) */
static double recency(int has, int64_t last, int64_t t_end, double tau)
{
    if (!has) return 0.0;
    double dt = (double)(t_end - last);
    return exp(-(dt > 0 ? dt : 0.0) / tau);
}

/* Writes the [count, trend, recency] part (enabled columns) of one row; returns columns written. */
static int base_cols(float *row, unsigned f, int64_t c, int64_t cp, int has, int64_t last,
                     int64_t t_end, double tau)
{
    int j = 0;
    if (f & ADAPTER_FEAT_COUNT) row[j++] = (float)log1p((double)c);
    if (f & ADAPTER_FEAT_TREND) row[j++] = (float)(log1p((double)c) - log1p((double)cp));
    if (f & ADAPTER_FEAT_RECENCY) row[j++] = (float)recency(has, last, t_end, tau);
    return j;
}

typedef struct {
    int64_t *cnt, *cntp, *last; /* (n) counts in cur, prev; latest time */
    uint8_t *has;               /* (n) seen in cur or prev */
} tally;

static void tally_free(tally *t)
{
    DM_FREE_ALL(t->cnt, t->cntp, t->last, t->has);
}

static int tally_init(tally *t, int n)
{
    size_t m = n > 0 ? (size_t)n : 1;
    DM_ALLOC(t->cnt, m);
    DM_ALLOC(t->cntp, m);
    DM_ALLOC(t->last, m);
    DM_ALLOC(t->has, m);
    return DM_OK;
}

/* counts per id and the latest time over cur and prev; `ids` selects the user or item column */
static void tally_fill(tally *t, const adapter_events *cur, const adapter_events *prev, int users)
{
    const adapter_events *ev[2] = {cur, prev};
    for (int w = 0; w < 2; w++) {
        if (!ev[w]) continue;
        const int32_t *id = users ? ev[w]->user : ev[w]->item;
        int64_t *cnt = w ? t->cntp : t->cnt;
        for (size_t k = 0; k < ev[w]->n; k++) {
            int x = id[k];
            cnt[x]++;
            if (!t->has[x] || ev[w]->time[k] > t->last[x]) t->last[x] = ev[w]->time[k];
            t->has[x] = 1;
        }
    }
}

/* What both twins start from: the arguments checked, the row widths and tau. */
static int prepare(const adapter_summary_config *c, int n_users, int n_items, const adapter_events *cur,
                   const adapter_events *prev, int64_t t_begin, int64_t t_end, int *dsi, int *dsu, double *tau)
{
    DM_CALL(check_args(c, n_users, n_items, cur, prev));
    adapter_summary_dims(c->features, dsi, dsu);
    *tau = resolve_tau(c, t_begin, t_end);
    return DM_OK;
}

int adapter_summaries(const adapter_summary_config *c, int n_users, int n_items,
                      const adapter_events *cur, const adapter_events *prev, int64_t t_begin,
                      int64_t t_end, float *s_item, float *s_user)
{
    int dsi, dsu;
    double tau;
    DM_CALL(prepare(c, n_users, n_items, cur, prev, t_begin, t_end, &dsi, &dsu, &tau));
    const unsigned f = c->features;
    const size_t n = cur ? cur->n : 0;
    tally ti = {0}, tu = {0};
    size_t *idx = NULL, *ord = NULL;
    int64_t *uoff = NULL, *P = NULL;
    int32_t *mc = NULL;
    int rc = DM_OK;
    DM_TRY(rc, tally_init(&ti, n_items), done);
    DM_TRY(rc, tally_init(&tu, n_users), done);
    tally_fill(&ti, cur, prev, 0);
    tally_fill(&tu, cur, prev, 1);
    const int cooc = (f & ADAPTER_FEAT_COOC) != 0;
    if (cooc) {
        /* each user's interactions in (time, array position) order: a stable sort by time, then
           a stable counting sort by user */
        idx = dm_calloc_at(n ? n : 1, sizeof *idx, __FILE__, __LINE__);
        ord = dm_calloc_at(n ? n : 1, sizeof *ord, __FILE__, __LINE__);
        uoff = dm_calloc_at((size_t)n_users + 1, sizeof *uoff, __FILE__, __LINE__);
        P = dm_calloc_at(n_items ? (size_t)n_items : 1, sizeof *P, __FILE__, __LINE__);
        mc = dm_calloc_at(n_items ? (size_t)n_items : 1, sizeof *mc, __FILE__, __LINE__);
        if (!idx || !ord || !uoff || !P || !mc) {
            rc = DM_ENOMEM;
            goto done;
        }
        if (n) DM_TRY(rc, dm_argsort_i64(cur->time, n, idx), done);
        for (size_t k = 0; k < n; k++) uoff[cur->user[k] + 1]++;
        for (int u = 0; u < n_users; u++) uoff[u + 1] += uoff[u];
        for (size_t k = 0; k < n; k++) {
            size_t e = idx[k];
            int u = cur->user[e];
            /* tu.cnt[u] holds the count; place from the back so the cursor needs no extra array */
            ord[uoff[u + 1] - tu.cnt[u]] = e;
            tu.cnt[u]--;
        }
        for (size_t k = 0; k < n; k++) tu.cnt[cur->user[k]]++; /* restore the counts */
        /* P_i = sum over positions p of R_u with item i of (|R_u| - m_u(i)) */
        for (int u = 0; u < n_users; u++) {
            int64_t lo = uoff[u + 1] - c->recent > uoff[u] ? uoff[u + 1] - c->recent : uoff[u];
            int64_t r = uoff[u + 1] - lo;
            for (int64_t p = lo; p < uoff[u + 1]; p++) mc[cur->item[ord[p]]]++;
            for (int64_t p = lo; p < uoff[u + 1]; p++) P[cur->item[ord[p]]] += r - mc[cur->item[ord[p]]];
            for (int64_t p = lo; p < uoff[u + 1]; p++) mc[cur->item[ord[p]]] = 0;
        }
    }
#pragma omp parallel for schedule(static) if (n_items > 65536)
    for (int i = 0; i < n_items; i++) {
        float *row = s_item + (size_t)i * dsi;
        int j = base_cols(row, f, ti.cnt[i], ti.cntp[i], ti.has[i], ti.last[i], t_end, tau);
        if (cooc) row[j] = (float)log1p((double)P[i]);
    }
#pragma omp parallel for schedule(static) if (n_users > 65536)
    for (int u = 0; u < n_users; u++) {
        float *row = s_user + (size_t)u * dsu;
        int j = base_cols(row, f, tu.cnt[u], tu.cntp[u], tu.has[u], tu.last[u], t_end, tau);
        if (!cooc) continue;
        int64_t lo = uoff[u + 1] - c->recent > uoff[u] ? uoff[u + 1] - c->recent : uoff[u];
        int64_t r = uoff[u + 1] - lo;
        for (int q = 0; q < dsi; q++) {
            double s = 0.0;
            for (int64_t p = lo; p < uoff[u + 1]; p++)
                s += s_item[(size_t)cur->item[ord[p]] * dsi + q];
            row[j + q] = r ? (float)(s / (double)r) : 0.0f;
        }
    }
done:
    tally_free(&ti);
    tally_free(&tu);
    free(idx);
    free(ord);
    free(uoff);
    free(P);
    free(mc);
    return rc;
}

/* ---- naive reference ------------------------------------------------------------------------- */

/* sel[0..m) = user u's cur interactions in (time, position) order (insertion sort); returns m */
static size_t naive_user_list(const adapter_events *cur, int u, size_t *sel)
{
    size_t m = 0, n = cur ? cur->n : 0;
    for (size_t k = 0; k < n; k++)
        if (cur->user[k] == u) {
            size_t z = m++; /* k grows, so equal times keep position order */
            while (z > 0 && cur->time[sel[z - 1]] > cur->time[k]) {
                sel[z] = sel[z - 1];
                z--;
            }
            sel[z] = k;
        }
    return m;
}

/* count in cur, count in prev and latest time over both of id x in column users/items */
static void naive_tally(const adapter_events *cur, const adapter_events *prev, int users, int x,
                        int64_t *c, int64_t *cp, int *has, int64_t *last)
{
    const adapter_events *ev[2] = {cur, prev};
    *c = *cp = 0;
    *has = 0;
    *last = 0;
    for (int w = 0; w < 2; w++)
        for (size_t k = 0; ev[w] && k < ev[w]->n; k++)
            if ((users ? ev[w]->user[k] : ev[w]->item[k]) == x) {
                if (w) (*cp)++;
                else (*c)++;
                if (!*has || ev[w]->time[k] > *last) *last = ev[w]->time[k];
                *has = 1;
            }
}

static void naive_row(float *row, unsigned f, int64_t c, int64_t cp, int has, int64_t last,
                      int64_t t_end, double tau)
{
    int j = 0;
    if (f & ADAPTER_FEAT_COUNT) row[j++] = (float)log(1.0 + (double)c);
    if (f & ADAPTER_FEAT_TREND) row[j++] = (float)log((1.0 + (double)c) / (1.0 + (double)cp));
    if (f & ADAPTER_FEAT_RECENCY)
        row[j++] = has ? (float)exp(-fmax((double)(t_end - last), 0.0) / tau) : 0.0f;
}

int adapter_summaries_naive(const adapter_summary_config *c, int n_users, int n_items,
                            const adapter_events *cur, const adapter_events *prev,
                            int64_t t_begin, int64_t t_end, float *s_item, float *s_user)
{
    int dsi, dsu;
    double tau;
    DM_CALL(prepare(c, n_users, n_items, cur, prev, t_begin, t_end, &dsi, &dsu, &tau));
    const unsigned f = c->features;
    const size_t n = cur ? cur->n : 0;
    size_t *sel = dm_calloc_at(n ? n : 1, sizeof *sel, __FILE__, __LINE__);
    int64_t *P = dm_calloc_at(n_items ? (size_t)n_items : 1, sizeof *P, __FILE__, __LINE__);
    if (!sel || !P) {
        free(sel);
        free(P);
        return DM_ENOMEM;
    }
    const int cooc = (f & ADAPTER_FEAT_COOC) != 0;
    /* P_i = ordered position pairs (p, q), p != q, of R_u with item_p = i and item_q != i */
    for (int u = 0; cooc && u < n_users; u++) {
        size_t m = naive_user_list(cur, u, sel), lo = m > (size_t)c->recent ? m - c->recent : 0;
        for (size_t p = lo; p < m; p++)
            for (size_t q = lo; q < m; q++)
                if (p != q && cur->item[sel[p]] != cur->item[sel[q]]) P[cur->item[sel[p]]]++;
    }
    for (int i = 0; i < n_items; i++) {
        int64_t ci, cp, last;
        int has;
        naive_tally(cur, prev, 0, i, &ci, &cp, &has, &last);
        naive_row(s_item + (size_t)i * dsi, f, ci, cp, has, last, t_end, tau);
        if (cooc) s_item[(size_t)i * dsi + dsi - 1] = (float)log(1.0 + (double)P[i]);
    }
    for (int u = 0; u < n_users; u++) {
        int64_t cu, cp, last;
        int has;
        naive_tally(cur, prev, 1, u, &cu, &cp, &has, &last);
        float *row = s_user + (size_t)u * dsu;
        naive_row(row, f, cu, cp, has, last, t_end, tau);
        if (!cooc) continue;
        size_t m = naive_user_list(cur, u, sel), lo = m > (size_t)c->recent ? m - c->recent : 0;
        for (int q = 0; q < dsi; q++) {
            double s = 0.0;
            for (size_t p = lo; p < m; p++) s += s_item[(size_t)cur->item[sel[p]] * dsi + q];
            row[dsu - dsi + q] = m > lo ? (float)(s / (double)(m - lo)) : 0.0f;
        }
    }
    free(sel);
    free(P);
    return DM_OK;
}
