/* metrics.c: exact expected ranking metrics under ties, see metrics.h.
 *
 * Everything reduces to tied blocks (G, B, j): G competitors strictly above, B candidates in the
 * block, j of them targets. Under a uniformly random order of the block:
 *   - each target's rank is uniform on G+1 .. G+B, so by linearity
 *       E[#targets in top K]   = sum_blocks j/B * #{r in G+1..G+B : r <= K}
 *       E[DCG@K]               = sum_blocks j/B * sum_{r = G+1}^{min(G+B, K)} 1/log2(1+r)
 *   - the first target of the top block (smallest G) sits at G + F, where F (1-based position of the
 *     first of j marked items among B shuffled ones) has
 *       P(F > x) = C(B-x, j) / C(B, j) = prod_{i=0}^{j-1} (B-x-i)/(B-i)            (0 <= x <= B-j)
 *       P(F = f) = C(B-f, j-1) / C(B, j),  P(F = 1) = j/B,
 *       P(F = f+1) / P(F = f) = (B-f-j+1) / (B-f)
 *     so Hit@K = 1 - P(F > K-G) and MRR = sum_f P(F = f) / (G + f).
 * Pessimistic / optimistic ties replace the uniform placement by the last / first j slots.
 */
#include "metrics.h"

#include "../core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MARK_TARGET = 1, MARK_EXCLUDED = 2, MARK_SEEN = 4 };

/* ---- spec --------------------------------------------------------------------------------- */

int metrics_spec_init(metrics_spec *s, const int64_t *ks, size_t nk, metrics_ties ties)
{
    memset(s, 0, sizeof *s);
    if (nk == 0) return DM_ERR(DM_EINPUT, "metrics: no cutoffs given (need at least one K)");
    if (ties != METRICS_TIES_EXPECTED && ties != METRICS_TIES_PESSIMISTIC && ties != METRICS_TIES_OPTIMISTIC)
        return DM_ERR(DM_EINPUT, "metrics: unknown tie mode %d", (int)ties);
    for (size_t i = 0; i < nk; i++) {
        if (ks[i] < 1) return DM_ERR(DM_EINPUT, "metrics: cutoff K = %lld at position %zu must be >= 1", (long long)ks[i], i);
        for (size_t k = 0; k < i; k++)
            if (ks[k] == ks[i]) return DM_ERR(DM_EINPUT, "metrics: cutoff K = %lld is listed twice", (long long)ks[i]);
    }
    DM_ALLOC(s->ks, nk);
    memcpy(s->ks, ks, nk * sizeof *ks);
    s->nk = nk;
    s->ties = ties;
    s->ncols = 3 * nk + 1;
    return DM_OK;
}

void metrics_spec_free(metrics_spec *s)
{
    free(s->ks);
    memset(s, 0, sizeof *s);
}

size_t metrics_col(const metrics_spec *s, metrics_kind kind, size_t ki)
{
    DM_ASSERT(kind == METRICS_MRR || ki < s->nk);
    return kind == METRICS_MRR ? 3 * s->nk : (size_t)kind * s->nk + ki;
}

int metrics_col_name(const metrics_spec *s, size_t col, char *buf, size_t cap)
{
    static const char *names[] = {"hit", "ndcg", "recall"};
    DM_ASSERT(col < s->ncols);
    if (col == 3 * s->nk) return snprintf(buf, cap, "mrr");
    return snprintf(buf, cap, "%s@%lld", names[col / s->nk], (long long)s->ks[col % s->nk]);
}

static const char *g_ties_names[] = {"expected", "pessimistic", "optimistic"};

int metrics_ties_parse(const char *name, metrics_ties *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, g_ties_names[i]) == 0) {
            *out = (metrics_ties)i;
            return DM_OK;
        }
    DM_ERR(DM_ECONFIG, "unknown tie mode '%s'", name);
    DM_HINT("use expected, pessimistic or optimistic");
    return DM_ECONFIG;
}

const char *metrics_ties_name(metrics_ties t)
{
    return (unsigned)t < 3 ? g_ties_names[t] : "?";
}

/* ---- workspace ------------------------------------------------------------------------------ */

int metrics_ws_init(metrics_ws *w, size_t n_items)
{
    memset(w, 0, sizeof *w);
    w->n_items = n_items;
    DM_ALLOC(w->mark, n_items ? n_items : 1);
    return DM_OK;
}

void metrics_ws_free(metrics_ws *w)
{
    DM_FREE_ALL(w->mark, w->tscore, w->between, w->eq, w->ntarget, w->G, w->B, w->list);
    memset(w, 0, sizeof *w);
}

static int ws_reserve_targets(metrics_ws *w, size_t m)
{
    if (m <= w->cap) return DM_OK;
    size_t cap = w->cap ? w->cap : 8;
    while (cap < m) cap *= 2;
    DM_REALLOC(w->tscore, cap);
    DM_REALLOC(w->between, cap + 1);
    DM_REALLOC(w->eq, cap);
    DM_REALLOC(w->ntarget, cap);
    DM_REALLOC(w->G, cap);
    DM_REALLOC(w->B, cap);
    w->cap = cap;
    return DM_OK;
}

/* ---- the block formulas ----------------------------------------------------------------------- */

static inline double disc(int64_t r) { return 1.0 / log2((double)r + 1.0); }

/* Target slots of a block under the tie mode: ranks lo..hi, each slot carrying weight wt (the
 * probability a given slot holds a target, times the number of targets per slot). */
static void block_slots(metrics_ties ties, int64_t G, int64_t B, int64_t j, int64_t *lo, int64_t *hi,
                        double *wt)
{
    switch (ties) {
    case METRICS_TIES_PESSIMISTIC: *lo = G + B - j + 1; *hi = G + B; *wt = 1.0; break;
    case METRICS_TIES_OPTIMISTIC: *lo = G + 1; *hi = G + j; *wt = 1.0; break;
    default: *lo = G + 1; *hi = G + B; *wt = (double)j / (double)B; break;
    }
}

/* P(F > x) for the first of j targets among B shuffled slots. */
static double first_after(int64_t B, int64_t j, int64_t x)
{
    if (x <= 0) return 1.0;
    if (x > B - j) return 0.0;
    double p = 1.0;
    for (int64_t i = 0; i < j; i++) p *= (double)(B - x - i) / (double)(B - i);
    return p;
}

/* E[1 / (G + F)] */
static double expected_rr(int64_t G, int64_t B, int64_t j)
{
    double sum = 0.0;
    if (j == 1) {
        for (int64_t f = 1; f <= B; f++) sum += 1.0 / (double)(G + f);
        return sum / (double)B;
    }
    double p = (double)j / (double)B;
    for (int64_t f = 1; f <= B - j + 1; f++) {
        sum += p / (double)(G + f);
        p *= (double)(B - f - j + 1) / (double)(B - f);
    }
    return sum;
}

int metrics_from_blocks(const metrics_spec *s, const int64_t *G, const int64_t *B, const int64_t *j,
                        size_t nblocks, double *row)
{
    if (nblocks == 0) return DM_ERR(DM_EINPUT, "metrics: user has no target");
    int64_t m = 0;
    size_t top = 0;
    for (size_t b = 0; b < nblocks; b++) {
        if (G[b] < 0 || j[b] < 1 || B[b] < j[b])
            return DM_ERR(DM_EINPUT, "metrics: invalid tied block %zu (G %lld, B %lld, j %lld)", b, (long long)G[b],
                          (long long)B[b], (long long)j[b]);
        m += j[b];
        if (G[b] < G[top]) top = b;
    }
    for (size_t ki = 0; ki < s->nk; ki++) {
        int64_t K = s->ks[ki];
        double hits = 0.0, dcg = 0.0;
        for (size_t b = 0; b < nblocks; b++) {
            int64_t lo, hi;
            double wt;
            block_slots(s->ties, G[b], B[b], j[b], &lo, &hi, &wt);
            int64_t top_r = hi < K ? hi : K;
            if (top_r < lo) continue;
            hits += wt * (double)(top_r - lo + 1);
            double d = 0.0;
            for (int64_t r = lo; r <= top_r; r++) d += disc(r);
            dcg += wt * d;
        }
        double idcg = 0.0;
        for (int64_t i = 1; i <= (m < K ? m : K); i++) idcg += disc(i);
        double hit;
        int64_t Gt = G[top], Bt = B[top], jt = j[top];
        switch (s->ties) {
        case METRICS_TIES_PESSIMISTIC: hit = Gt + Bt - jt + 1 <= K; break;
        case METRICS_TIES_OPTIMISTIC: hit = Gt + 1 <= K; break;
        default: hit = 1.0 - first_after(Bt, jt, K - Gt); break;
        }
        row[metrics_col(s, METRICS_HIT, ki)] = hit;
        row[metrics_col(s, METRICS_NDCG, ki)] = dcg / idcg;
        row[metrics_col(s, METRICS_RECALL, ki)] = hits / (double)m;
    }
    double mrr;
    switch (s->ties) {
    case METRICS_TIES_PESSIMISTIC: mrr = 1.0 / (double)(G[top] + B[top] - j[top] + 1); break;
    case METRICS_TIES_OPTIMISTIC: mrr = 1.0 / (double)(G[top] + 1); break;
    default: mrr = expected_rr(G[top], B[top], j[top]); break;
    }
    row[metrics_col(s, METRICS_MRR, 0)] = mrr;
    return DM_OK;
}

/* ---- sampled protocol ------------------------------------------------------------------------- */

/* How many of x[0..n) are above u, equal to it, and NaN: one branch-free pass the compiler vectorises. */
static inline void count_vs(const float *x, size_t n, float u, int64_t *gt, int64_t *eq, int64_t *nan)
{
    int64_t g = 0, e = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        g += x[i] > u;
        e += x[i] == u;
        nn += x[i] != x[i];
    }
    *gt = g;
    *eq = e;
    *nan = nn;
}

int metrics_sampled(const metrics_spec *s, float target, const float *neg, size_t n_neg, double *row)
{
    if (isnan(target)) return DM_ERR(DM_ENUM, "metrics: the target's score is NaN");
    int64_t gt, eq, nan;
    count_vs(neg, n_neg, target, &gt, &eq, &nan);
    if (nan) return DM_ERR(DM_ENUM, "metrics: %lld of %zu negative scores are NaN", (long long)nan, n_neg);
    int64_t B = eq + 1, j = 1;
    return metrics_from_blocks(s, &gt, &B, &j, 1, row);
}

/* ---- full ranking ------------------------------------------------------------------------------ */

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* number of entries of u (descending, d entries) strictly greater than x */
static inline size_t n_above(const float *u, size_t d, float x)
{
    size_t lo = 0, hi = d;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u[mid] > x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Adds `sign` to the count of the bin that score x falls in; NaNs go to *nan. */
static inline void classify(const metrics_ws *w, size_t d, float x, int64_t sign, int64_t *nan)
{
    if (x != x) {
        *nan += sign;
        return;
    }
    size_t k = n_above(w->tscore, d, x);
    if (k == d) return; /* below every target: irrelevant */
    if (w->tscore[k] == x) w->eq[k] += sign;
    else w->between[k] += sign;
}

/* Every score of scores[0..n) into the bins of the d target scores (w->between, w->eq zeroed); one
 * distinct target score takes count_vs. */
static void count_pass(metrics_ws *w, size_t d, const float *scores, size_t n, int64_t *nan)
{
    if (d != 1) {
        for (size_t i = 0; i < n; i++) classify(w, d, scores[i], 1, nan);
        return;
    }
    int64_t nn;
    count_vs(scores, n, w->tscore[0], &w->between[0], &w->eq[0], &nn);
    *nan += nn;
}

/* Sorts the m target scores in w->tscore descending and merges equal ones: returns the number d
 * of distinct scores, with w->ntarget[k] targets at w->tscore[k]; zeroes the bins. */
static size_t sort_distinct(metrics_ws *w, size_t m)
{
    qsort(w->tscore, m, sizeof *w->tscore, cmp_float_desc);
    size_t d = 0;
    for (size_t i = 0; i < m; i++) {
        if (d > 0 && w->tscore[d - 1] == w->tscore[i]) {
            w->ntarget[d - 1]++;
            continue;
        }
        w->tscore[d] = w->tscore[i];
        w->ntarget[d] = 1;
        d++;
    }
    memset(w->between, 0, (d + 1) * sizeof *w->between);
    memset(w->eq, 0, d * sizeof *w->eq);
    return d;
}

/* bins -> blocks: G_k = competitors above score k, B_k = competitors at it (targets included) */
static int finish_blocks(const metrics_spec *s, metrics_ws *w, size_t d, double *row)
{
    int64_t above = 0;
    for (size_t k = 0; k < d; k++) {
        above += w->between[k];
        w->G[k] = above;
        w->B[k] = w->eq[k];
        DM_ASSERT(w->B[k] >= w->ntarget[k]);
        above += w->eq[k];
    }
    return metrics_from_blocks(s, w->G, w->B, w->ntarget, d, row);
}

static void unmark(metrics_ws *w, const int32_t *targets, size_t n_targets, const int32_t *excluded,
                   size_t n_excluded, size_t n_items)
{
    for (size_t i = 0; i < n_targets; i++)
        if (targets[i] >= 0 && (size_t)targets[i] < n_items) w->mark[targets[i]] = 0;
    for (size_t i = 0; i < n_excluded; i++)
        if (excluded[i] >= 0 && (size_t)excluded[i] < n_items) w->mark[excluded[i]] = 0;
}

static int check_ids(const int32_t *ids, size_t n, size_t n_items, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= n_items)
            return DM_ERR(DM_EINPUT, "metrics: %s item %d (position %zu) is outside the catalogue [0, %zu)", what,
                          (int)ids[i], i, n_items);
    return DM_OK;
}

int metrics_full(const metrics_spec *s, metrics_ws *w, const float *scores, size_t n_items,
                 const int32_t *targets, size_t n_targets, const int32_t *excluded,
                 size_t n_excluded, double *row)
{
    if (n_items != w->n_items)
        return DM_ERR(DM_EINTERNAL, "metrics: workspace made for %zu items, scores have %zu", w->n_items, n_items);
    if (n_targets == 0) return DM_ERR(DM_EINPUT, "metrics: user has no target");
    DM_CALL(check_ids(targets, n_targets, n_items, "target"));
    DM_CALL(check_ids(excluded, n_excluded, n_items, "excluded"));
    DM_CALL(ws_reserve_targets(w, n_targets));
    int rc = DM_OK;

    /* distinct targets and their scores */
    size_t m = 0;
    for (size_t i = 0; i < n_targets; i++) {
        int32_t t = targets[i];
        if (w->mark[t] & MARK_TARGET) continue;
        w->mark[t] |= MARK_TARGET;
        if (isnan(scores[t])) {
            rc = DM_ERR(DM_ENUM, "metrics: target item %d has a NaN score", (int)t);
            goto done;
        }
        w->tscore[m++] = scores[t];
    }
    size_t d = sort_distinct(w, m);

    /* one pass over every item */
    int64_t nan = 0;
    count_pass(w, d, scores, n_items, &nan);
    /* the excluded items never competed */
    for (size_t i = 0; i < n_excluded; i++) {
        int32_t e = excluded[i];
        if (w->mark[e] & (MARK_TARGET | MARK_EXCLUDED)) continue;
        w->mark[e] |= MARK_EXCLUDED;
        classify(w, d, scores[e], -1, &nan);
    }
    if (nan) {
        rc = DM_ERR(DM_ENUM, "metrics: %lld competing item scores are NaN", (long long)nan);
        goto done;
    }
    rc = finish_blocks(s, w, d, row);
done:
    unmark(w, targets, n_targets, excluded, n_excluded, n_items);
    return rc;
}

int metrics_sampled_multi(const metrics_spec *s, metrics_ws *w, const float *tscores, size_t m,
                          const float *neg, size_t n_neg, double *row)
{
    if (m == 0) return DM_ERR(DM_EINPUT, "metrics: user has no target");
    DM_CALL(ws_reserve_targets(w, m));
    for (size_t i = 0; i < m; i++) {
        if (isnan(tscores[i])) return DM_ERR(DM_ENUM, "metrics: target %zu has a NaN score", i);
        w->tscore[i] = tscores[i];
    }
    size_t d = sort_distinct(w, m);
    int64_t nan = 0;
    for (size_t i = 0; i < n_neg; i++) classify(w, d, neg[i], 1, &nan);
    for (size_t i = 0; i < m; i++) classify(w, d, tscores[i], 1, &nan); /* lands in its own block */
    if (nan) return DM_ERR(DM_ENUM, "metrics: %lld of %zu negative scores are NaN", (long long)nan, n_neg);
    return finish_blocks(s, w, d, row);
}

int metrics_full_batch(const metrics_spec *s, const float *scores, size_t n_users, size_t n_items,
                       const int64_t *target_off, const int32_t *targets, const int64_t *excl_off,
                       const int32_t *excluded, double *rows)
{
    size_t bad_user = (size_t)-1;
    int bad_code = DM_OK;
    char bad_msg[512] = "", bad_where[256] = "";
#pragma omp parallel
    {
        metrics_ws w;
        int ok = metrics_ws_init(&w, n_items) == DM_OK;
#pragma omp for schedule(dynamic, 16)
        for (size_t u = 0; u < n_users; u++) {
            double *row = rows + u * s->ncols;
            int rc = ok ? DM_OK : DM_ENOMEM;
            size_t nt = (size_t)(target_off[u + 1] - target_off[u]);
            if (rc == DM_OK && nt == 0) {
                for (size_t c = 0; c < s->ncols; c++) row[c] = NAN;
                continue;
            }
            if (rc == DM_OK)
                rc = metrics_full(s, &w, scores + u * n_items, n_items, targets + target_off[u], nt,
                                  excl_off ? excluded + excl_off[u] : NULL,
                                  excl_off ? (size_t)(excl_off[u + 1] - excl_off[u]) : 0, row);
            if (rc != DM_OK) {
#pragma omp critical(metrics_batch_error)
                if (u < bad_user) {
                    bad_user = u;
                    bad_code = rc;
                    snprintf(bad_msg, sizeof bad_msg, "%s", ok ? dm_error_message() : "out of memory");
                    snprintf(bad_where, sizeof bad_where, "%s", dm_error_where());
                }
            }
        }
        if (ok) metrics_ws_free(&w);
    }
    if (bad_code != DM_OK) {
        dm_error_set_raw(bad_code, bad_msg, "", bad_where);
        return DM_ERR(bad_code, "metrics: user %zu of the batch: %s", bad_user, bad_msg);
    }
    return DM_OK;
}

/* ---- naive reference ----------------------------------------------------------------------------- */

static int in_list(const int32_t *ids, size_t n, int32_t x)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == x) return 1;
    return 0;
}

/* C(B-f, j-1) / C(B, j) from scratch: (j/B) * prod_{i=1}^{f-1} (B-j-i+1)/(B-i) */
static double naive_pfirst(int64_t B, int64_t j, int64_t f)
{
    double p = (double)j / (double)B;
    for (int64_t i = 1; i < f; i++) p *= (double)(B - j - i + 1) / (double)(B - i);
    return p;
}

int metrics_full_naive(const metrics_spec *s, metrics_ws *w, const float *scores, size_t n_items,
                       const int32_t *targets, size_t n_targets, const int32_t *excluded,
                       size_t n_excluded, double *row)
{
    (void)w;
    if (n_targets == 0) return DM_ERR(DM_EINPUT, "metrics: user has no target");
    DM_CALL(check_ids(targets, n_targets, n_items, "target"));
    DM_CALL(check_ids(excluded, n_excluded, n_items, "excluded"));
    int64_t m = 0;
    for (size_t a = 0; a < n_targets; a++) m += !in_list(targets, a, targets[a]);

    /* per distinct target: G, B (= ties including itself) and j (targets sharing its score) */
    double hits[64] = {0}, dcg[64] = {0};
    if (s->nk > 64) return DM_ERR(DM_EINPUT, "metrics: the naive reference takes at most 64 cutoffs, got %zu", s->nk);
    int64_t Gtop = -1, Btop = 0, jtop = 0;
    for (size_t a = 0; a < n_targets; a++) {
        if (in_list(targets, a, targets[a])) continue;
        float st = scores[targets[a]];
        if (isnan(st)) return DM_ERR(DM_ENUM, "metrics: target item %d has a NaN score", (int)targets[a]);
        int64_t G = 0, B = 0, j = 0;
        for (size_t i = 0; i < n_items; i++) {
            int is_target = in_list(targets, n_targets, (int32_t)i);
            if (!is_target && in_list(excluded, n_excluded, (int32_t)i)) continue;
            float x = scores[i];
            if (isnan(x)) return DM_ERR(DM_ENUM, "metrics: competing item %zu has a NaN score", i);
            if (x > st) G++;
            if (x == st) {
                B++;
                j += is_target;
            }
        }
        /* this target's own rank distribution */
        for (size_t ki = 0; ki < s->nk; ki++) {
            int64_t K = s->ks[ki];
            if (s->ties == METRICS_TIES_EXPECTED) {
                for (int64_t r = G + 1; r <= G + B; r++)
                    if (r <= K) {
                        hits[ki] += 1.0 / (double)B;
                        dcg[ki] += 1.0 / (double)B / log2((double)r + 1.0);
                    }
            } else {
                /* pessimistic/optimistic: the block's j targets take j consecutive slots; give
                 * this target the average over them (the sum over the block is what matters) */
                int64_t lo = s->ties == METRICS_TIES_PESSIMISTIC ? G + B - j + 1 : G + 1;
                for (int64_t r = lo; r < lo + j; r++)
                    if (r <= K) {
                        hits[ki] += 1.0 / (double)j;
                        dcg[ki] += 1.0 / (double)j / log2((double)r + 1.0);
                    }
            }
        }
        if (Gtop < 0 || G < Gtop) {
            Gtop = G;
            Btop = B;
            jtop = j;
        }
    }
    for (size_t ki = 0; ki < s->nk; ki++) {
        int64_t K = s->ks[ki];
        double idcg = 0.0;
        for (int64_t i = 1; i <= m && i <= K; i++) idcg += 1.0 / log2((double)i + 1.0);
        double hit = 0.0;
        if (s->ties == METRICS_TIES_EXPECTED) {
            for (int64_t f = 1; f <= Btop - jtop + 1; f++)
                if (Gtop + f <= K) hit += naive_pfirst(Btop, jtop, f);
        } else {
            int64_t first = s->ties == METRICS_TIES_PESSIMISTIC ? Gtop + Btop - jtop + 1 : Gtop + 1;
            hit = first <= K;
        }
        row[metrics_col(s, METRICS_HIT, ki)] = hit;
        row[metrics_col(s, METRICS_NDCG, ki)] = dcg[ki] / idcg;
        row[metrics_col(s, METRICS_RECALL, ki)] = hits[ki] / (double)m;
    }
    double mrr = 0.0;
    if (s->ties == METRICS_TIES_EXPECTED) {
        for (int64_t f = 1; f <= Btop - jtop + 1; f++) mrr += naive_pfirst(Btop, jtop, f) / (double)(Gtop + f);
    } else {
        int64_t first = s->ties == METRICS_TIES_PESSIMISTIC ? Gtop + Btop - jtop + 1 : Gtop + 1;
        mrr = 1.0 / (double)first;
    }
    row[metrics_col(s, METRICS_MRR, 0)] = mrr;
    return DM_OK;
}

/* ---- full ranking over item shards ------------------------------------------------------------- */

size_t metrics_shard_targets(metrics_ws *w, const float *tscores, size_t m)
{
    if (ws_reserve_targets(w, m ? m : 1)) return 0;
    memcpy(w->tscore, tscores, m * sizeof *tscores);
    return sort_distinct(w, m);
}

int metrics_shard_count(metrics_ws *w, size_t d, const float *scores, size_t i0, size_t n, const int32_t *targets,
                        size_t n_targets, const int32_t *excluded, size_t n_excluded, int64_t *cnt)
{
    if (n != w->n_items) return DM_ERR(DM_EINTERNAL, "metrics: workspace made for %zu items, the shard has %zu", w->n_items, n);
    int64_t nan = 0;
    memset(w->between, 0, (d + 1) * sizeof *w->between);
    memset(w->eq, 0, d * sizeof *w->eq);
    count_pass(w, d, scores, n, &nan);
    /* the targets of the shard, then its excluded items (once each, never a target): as metrics_full */
    for (size_t i = 0; i < n_targets; i++)
        if ((size_t)targets[i] >= i0 && (size_t)targets[i] < i0 + n) w->mark[targets[i] - (int64_t)i0] |= MARK_TARGET;
    for (size_t i = 0; i < n_excluded; i++) {
        int32_t e = excluded[i];
        if ((size_t)e < i0 || (size_t)e >= i0 + n || (w->mark[e - (int64_t)i0] & (MARK_TARGET | MARK_EXCLUDED))) continue;
        w->mark[e - (int64_t)i0] |= MARK_EXCLUDED;
        classify(w, d, scores[e - (int64_t)i0], -1, &nan);
    }
    for (size_t i = 0; i < n_targets; i++)
        if ((size_t)targets[i] >= i0 && (size_t)targets[i] < i0 + n) w->mark[targets[i] - (int64_t)i0] = 0;
    for (size_t i = 0; i < n_excluded; i++)
        if ((size_t)excluded[i] >= i0 && (size_t)excluded[i] < i0 + n) w->mark[excluded[i] - (int64_t)i0] = 0;
    memcpy(cnt, w->between, (d + 1) * sizeof *cnt);
    memcpy(cnt + d + 1, w->eq, d * sizeof *cnt);
    cnt[2 * d + 1] = nan;
    return DM_OK;
}

int metrics_shard_finish(const metrics_spec *s, metrics_ws *w, size_t d, const int64_t *cnt, double *row)
{
    if (cnt[2 * d + 1]) return DM_ERR(DM_ENUM, "metrics: %lld competing item scores are NaN", (long long)cnt[2 * d + 1]);
    memcpy(w->between, cnt, (d + 1) * sizeof *cnt);
    memcpy(w->eq, cnt + d + 1, d * sizeof *cnt);
    return finish_blocks(s, w, d, row);
}
