/* test_itemknn.c: ItemKNN (src/itemknn/itemknn.h)
 *  - the top-k rows and every user's scores against NumPy/SciPy in float64
 *    (tests/reference/gen_itemknn.py: three cases, ties among similarities, k above the catalogue)
 *  - rows computed in 2 or 3 blocks (as the ranks of train-cf split them) equal the whole, bitwise
 *  - a hand-worked example: repeats counted once, padding, an item without training users
 * Tolerances: the kept neighbours must match exactly (both sides decide them with the same double
 * expression of integer counts); a stored similarity is that double rounded once to float, within
 * 2^-24 relative; a score sums m such positive terms in float, within (m + 1) 2^-24 of the reference
 * (first order), where a dropped or doubled term is off by a whole similarity.
 */
#include "tap.h"
#include "testlib.h"

#include "../../src/core/err.h"
#include "../../src/core/shard.h"
#include "../../src/itemknn/itemknn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double worst_score = 0;

/* rows [0, n) in `parts` blocks split by row cost, as train-cf's ranks do */
static void rows_in_parts(const itemknn_index *x, int k, double shrink, int parts, int32_t *nbr, float *sim)
{
    size_t n = x->n_items, lo, hi;
    int K = itemknn_width(k, n);
    int64_t *cost = malloc((n + 1) * sizeof *cost);
    itemknn_row_cost(x, cost);
    for (int p = 0; p < parts; p++) {
        dm_shard_weighted(cost, n, parts, p, &lo, &hi);
        CHECK(itemknn_rows(x, lo, hi, k, shrink, nbr + lo * (size_t)K, sim + lo * (size_t)K) == DM_OK, "rows: %s", dm_error_message());
    }
    free(cost);
}

static void check_scores(const char *name, const dm_dataset *d, const int8_t *roles, const itemknn_model *m, const double *ref)
{
    size_t n = d->n_items, bad = 0;
    float *sc = malloc(n * sizeof *sc);
    int32_t *hist = malloc(d->n_inter * sizeof *hist);
    for (size_t u = 0; u < d->n_users; u++) {
        size_t nh = 0;
        for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++)
            if (roles[k] < DM_TEST) hist[nh++] = d->item[k];
        itemknn_score(m, hist, nh, sc);
        for (size_t j = 0; j < n; j++) {
            double r = ref[u * n + j], diff = fabs(sc[j] - r);
            worst_score = fmax(worst_score, r > 0 ? diff / r : diff);
            if (diff > (double)(nh + 1) * ldexp(1.0, -24) * r) bad++;
        }
    }
    CHECK(!bad, "%s: %zu scores off the reference by more than (m + 1) 2^-24 relative", name, bad);
    free(sc);
    free(hist);
}

static void parity_case(const char *dir, const dm_json *cs, int naive)
{
    const char *name = dm_json_get(cs, "name")->str;
    size_t U = (size_t)tl_jint(cs, "n_users"), n = (size_t)tl_jint(cs, "n_items"), N = (size_t)tl_jint(cs, "n_inter");
    int k = (int)tl_jint(cs, "k"), K = (int)tl_jint(cs, "K");
    double shrink = tl_jnum(cs, "shrink");
    int64_t *off = tl_load(dir, name, "_off.i64", (U + 1) * 8);
    int32_t *item = tl_load(dir, name, "_item.i32", N * 4), *rnbr = tl_load(dir, name, "_nbr.i32", n * (size_t)K * 4);
    int8_t *roles = tl_load(dir, name, "_roles.i8", N);
    double *rsim = tl_load(dir, name, "_sim.f64", n * (size_t)K * 8), *rsc = tl_load(dir, name, "_scores.f64", U * n * 8);
    dm_dataset d = tl_dataset_view((int)U, (int)n, off, item);
    d.n_inter = N;
    itemknn_index x;
    CHECK(itemknn_index_init(&x, &d, roles) == DM_OK, "%s: index", name);
    CHECK(itemknn_width(k, n) == K, "%s: width %d, reference %d", name, itemknn_width(k, n), K);
    itemknn_model m = {n, K, malloc(n * (size_t)K * 4), malloc(n * (size_t)K * 4)};
    CHECK(itemknn_rows(&x, 0, n, k, shrink, m.nbr, m.sim) == DM_OK, "%s: rows", name);
    CHECK(!memcmp(m.nbr, rnbr, n * (size_t)K * 4), "%s: the kept neighbours differ from SciPy's", name);
    double ws = 0;
    for (size_t q = 0; q < n * (size_t)K; q++) ws = fmax(ws, fabs(m.sim[q] - rsim[q]) / fmax(rsim[q], 1e-300));
    printf("# %s: max relative |sim - SciPy| = %.3g\n", name, ws);
    CHECK(ws <= ldexp(1.0, -24), "%s: similarity beyond one float rounding: %.3g", name, ws);
    for (int parts = 2; parts <= 3; parts++) {
        int32_t *pn = malloc(n * (size_t)K * 4);
        float *ps = malloc(n * (size_t)K * 4);
        rows_in_parts(&x, k, shrink, parts, pn, ps);
        CHECK(!memcmp(pn, m.nbr, n * (size_t)K * 4) && !memcmp(ps, m.sim, n * (size_t)K * 4), "%s: rows in %d blocks differ from the whole",
              name, parts);
        TL_FREE(pn, ps);
    }
    check_scores(name, &d, roles, &m, rsc);
    itemknn_index_free(&x);
    TL_FREE(off, item, rnbr, roles, rsim, rsc, m.nbr, m.sim);
}

/* users {0, 1, 0 (again)}, {0, 1, 2}, {2, 3}; item 4 only in a valid row: n = (2, 2, 2, 1, 0) */
static void test_hand(void)
{
    int64_t off[4] = {0, 3, 6, 9};
    int32_t item[9] = {0, 1, 0, 0, 1, 2, 2, 3, 4};
    int8_t roles[9] = {0, 0, 0, 0, 0, 0, 0, 0, DM_VALID};
    dm_dataset d = tl_dataset_view(3, 5, off, item);
    d.n_inter = 9;
    itemknn_index x;
    CHECK(itemknn_index_init(&x, &d, roles) == DM_OK, "index");
    CHECK(x.u_off[1] == 2 && x.i_off[1] - x.i_off[0] == 2, "a repeated item counts once");
    int32_t nbr[10];
    float sim[10];
    CHECK(itemknn_rows(&x, 0, 5, 2, 0.0, nbr, sim) == DM_OK, "rows");
    /* row 0: c01 = 2 over sqrt(2) sqrt(2), c02 = 1 over 2; row 3: c32 = 1 over sqrt(2), then padding */
    CHECK(nbr[0] == 1 && nbr[1] == 2, "row 0 keeps 1 then 2: %d %d", nbr[0], nbr[1]);
    NEAR(sim[0], 2.0 / (2.0 + 1e-6), 1e-7, "sim(0, 1)");
    NEAR(sim[1], 1.0 / (2.0 + 1e-6), 1e-7, "sim(0, 2)");
    CHECK(nbr[6] == 2 && nbr[7] == -1 && sim[7] == 0.0f, "row 3: one neighbour, then padding");
    CHECK(nbr[8] == -1 && nbr[9] == -1, "item 4 has no training users: an empty row");
    /* row 2 ties: c20 = c21 = c23 = 1; 1/2, 1/2, 1/sqrt(2): item 3 first, then the lower of 0 and 1 */
    CHECK(nbr[4] == 3 && nbr[5] == 0, "row 2: 3, then 0 before 1 on a tie: %d %d", nbr[4], nbr[5]);
    CHECK(itemknn_rows(&x, 0, 5, 1, 2.0, nbr, sim) == DM_OK, "rows with shrinkage");
    NEAR(sim[0], 2.0 / (2.0 + 2.0 + 1e-6), 1e-7, "shrinkage in the denominator");
    itemknn_model m = {5, 1, nbr, sim};
    int32_t hist[4] = {3, 0, 0, 4};
    float sc[5];
    itemknn_score(&m, hist, 4, sc);
    CHECK(sc[1] == sim[0] && sc[2] == sim[3] && sc[0] == 0 && sc[3] == 0 && sc[4] == 0,
          "scores add each distinct history item's row once: %g %g %g", sc[0], sc[1], sc[2]);
    itemknn_index_free(&x);
}

int main(void)
{
    test_hand();
    int nc = tl_parity("itemknn", "dynmm-itemknn-ref", parity_case, 0, 3);
    if (nc >= 0) printf("# SciPy: %d cases, worst relative score difference %.3g\n", nc, worst_score);
    return tap_done("test_itemknn");
}
