/* pairs.c: see pairs.h. */
#include "pairs.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../core/sort.h"

#include <math.h>
#include <stdlib.h>

int dm_pairs_init(const dm_dataset *d, const int8_t *roles, size_t n_users, size_t *n_ex, int32_t **ex_u, int32_t **ex_i,
                  int64_t **u_off, int32_t **u_items)
{
    size_t n = 0;
    for (size_t k = 0; k < d->n_inter; k++) n += roles[k] == DM_TRAIN;
    DM_ALLOC(*u_off, n_users + 1);
    DM_ALLOC(*ex_u, n + 1);
    DM_ALLOC(*ex_i, n + 1);
    DM_ALLOC(*u_items, n + 1);
    size_t q = 0;
    for (size_t u = 0; u < d->n_users; u++) {
        size_t s = q;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
            if (roles[j] != DM_TRAIN) continue;
            (*ex_u)[q] = (int32_t)u;
            (*ex_i)[q] = d->item[j];
            (*u_items)[q++] = d->item[j];
        }
        qsort(*u_items + s, q - s, sizeof(int32_t), dm_cmp_i32);
        (*u_off)[u + 1] = (int64_t)q;
    }
    *n_ex = q;
    return DM_OK;
}

int32_t dm_pairs_negative(const int64_t *u_off, const int32_t *u_items, int32_t u, int32_t n_items, uint64_t key)
{
    const int32_t *own = u_items + u_off[u];
    size_t n_own = (size_t)(u_off[u + 1] - u_off[u]);
    dm_rng r;
    dm_rng_seed(&r, key);
    int all_taken = n_own >= (size_t)n_items;
    int32_t j;
    do j = (int32_t)dm_rng_below(&r, (uint64_t)n_items);
    while (!all_taken && dm_in_sorted_i32(own, n_own, j));
    return j;
}

/* log(1 + exp(-x)), stable for both signs */
static double softplus_neg(double x) { return x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }

double dm_pairs_bpr_loss(const float *fu, const float *fi, const float *fj, const float *eu, const float *ei, const float *ej, size_t d,
                         float reg, float inv, float *g)
{
    double x = 0, sq = 0;
    for (size_t c = 0; c < d; c++) {
        x += (double)fu[c] * ((double)fi[c] - (double)fj[c]);
        sq += (double)eu[c] * eu[c] + (double)ei[c] * ei[c] + (double)ej[c] * ej[c];
    }
    *g = (float)(-1.0 / (1.0 + exp(x))) * inv; /* -sigmoid(-x) / norm */
    return softplus_neg(x) + 0.5 * reg * sq;
}
