/* itemknn.c: ItemKNN's fit and scorer for the registry, see itemknn.h. */
#include "itemknn.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/itemknn/itemknn.h"

#include <stdlib.h>
#include <string.h>

int itemknn_train(const model_train_args *t)
{
    double t0 = dm_wtime();
    int k = (int)dm_cfg_int(t->cfg, "itemknn.k");
    double shrink = dm_cfg_float(t->cfg, "itemknn.shrink");
    size_t n = t->d->n_items, lo = 0, hi = 0;
    int K = itemknn_width(k, n);
    itemknn_index x;
    int64_t *cost = NULL;
    int32_t *nbr = NULL;
    float *sim = NULL;
    int rc = itemknn_index_init(&x, t->d, t->roles);
    if (!rc) rc = (cost = malloc((n + 1) * sizeof *cost)) ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    if (!rc) {
        itemknn_row_cost(&x, cost);
        dm_shard_weighted(cost, n, t->ctx->size, t->ctx->rank, &lo, &hi);
        nbr = malloc(((hi - lo) * (size_t)K + 1) * sizeof *nbr);
        sim = malloc(((hi - lo) * (size_t)K + 1) * sizeof *sim);
        if (!nbr || !sim) rc = DM_ERR(DM_ENOMEM, "itemknn: cannot allocate %zu rows of %d neighbours", hi - lo, K);
    }
    if (!rc) rc = itemknn_rows(&x, lo, hi, k, shrink, nbr, sim);
    rc = par_agree(t->ctx, rc);
    if (!rc) rc = h5_write_rows(t->f, "/itemknn/nbr", H5_I32, n, (size_t)K, lo, hi - lo, nbr);
    if (!rc) rc = h5_write_rows(t->f, "/itemknn/sim", H5_F32, n, (size_t)K, lo, hi - lo, sim);
    if (!rc) rc = h5_attr_i64(t->f, "/itemknn", "k", k);
    if (!rc) rc = h5_attr_f64(t->f, "/itemknn", "shrink", shrink);
    if (!rc) rc = h5_attr_f64(t->f, "/itemknn", "fit_seconds", dm_wtime() - t0);
    if (!rc)
        dm_log("  itemknn: %zu items, %d neighbours each, shrink %g, rows over %d ranks, %.2fs", n, K, shrink, t->ctx->size,
               dm_wtime() - t0);
    itemknn_index_free(&x);
    free(cost);
    free(nbr);
    free(sim);
    return par_agree(t->ctx, rc);
}

typedef struct {
    itemknn_model m;
    int32_t *hist; /* scratch: one user's history */
} scorer;

static int itemknn_score_users(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    scorer *sc = mv;
    for (size_t b = 0; b < B; b++) {
        size_t nh = ev_history(s, users[b], sc->hist);
        itemknn_score(&sc->m, sc->hist, nh, scores + b * sc->m.n_items);
    }
    return DM_OK;
}

int itemknn_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml)
{
    scorer *sc;
    DM_ALLOC(sc, 1);
    ml->state = sc;
    ml->score = itemknn_score_users;
    DM_ALLOC(sc->hist, d->n_inter + 1);
    DM_CALL(model_need(f, "/itemknn/sim", "itemknn"));
    void *p;
    size_t r, c, r2, c2;
    DM_CALL(h5_read_all(f, "/itemknn/nbr", H5_I32, &p, &r, &c));
    sc->m.nbr = p;
    DM_CALL(h5_read_all(f, "/itemknn/sim", H5_F32, &p, &r2, &c2));
    sc->m.sim = p;
    if (r != d->n_items || r2 != r || c2 != c || c < 1 || c > (size_t)INT32_MAX) {
        int rc = DM_ERR(DM_EFORMAT, "%s: /itemknn/nbr is (%zu, %zu) and /itemknn/sim (%zu, %zu); expected (%zu, K) both", f->path, r,
                        c, r2, c2, d->n_items);
        DM_HINT("the file was made from another dataset: rerun train-cf");
        return rc;
    }
    for (size_t q = 0; q < r * c; q++)
        if (sc->m.nbr[q] < -1 || sc->m.nbr[q] >= (int32_t)r)
            return DM_ERR(DM_EFORMAT, "%s: /itemknn/nbr[%zu] = %d is not an item index", f->path, q, (int)sc->m.nbr[q]);
    sc->m.n_items = r;
    sc->m.K = (int)c;
    return DM_OK;
}

void itemknn_unload(model_loaded *ml)
{
    scorer *sc = ml->state;
    if (sc) {
        DM_FREE_ALL(sc->m.nbr, sc->m.sim, sc->hist, sc);
    }
    ml->state = NULL;
}
