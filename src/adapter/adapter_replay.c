/* adapter_replay.c: reservoir buffer (Vitter's algorithm R) with keyed draws, and the keyed plan
 * of a global training batch (see adapter_replay.h).
 */
#include "adapter_replay.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* distinct key streams for the buffer, the batch records and the negatives */
#define TAG_BATCH UINT64_C(0x6261746368) /* "batch" */
#define TAG_NEG UINT64_C(0x6e6567)       /* "neg" */

int adapter_reservoir_init(adapter_reservoir *r, size_t cap, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    if (cap < 1) {
        DM_ERR(DM_ECONFIG, "adapter.replay_capacity = %zu, expected at least 1", cap);
        return DM_ECONFIG;
    }
    DM_ALLOC(r->rec, cap);
    r->cap = cap;
    r->seed = seed;
    return DM_OK;
}

void adapter_reservoir_free(adapter_reservoir *r)
{
    free(r->rec);
    memset(r, 0, sizeof *r);
}

void adapter_reservoir_add(adapter_reservoir *r, uint64_t window, const adapter_record *recs,
                           size_t n)
{
    if (r->seen == 0 || window != r->window) {
        r->window = window;
        r->win_offered = 0;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t s = r->seen++, i = r->win_offered++;
        if (s < r->cap) {
            r->rec[s] = recs[k];
            r->n = (size_t)s + 1;
            continue;
        }
        dm_rng g;
        dm_rng_seed(&g, dm_rng_key(r->seed, window, i));
        uint64_t j = dm_rng_below(&g, s + 1); /* record s + 1 of s + 1 seen */
        if (j < r->cap) r->rec[j] = recs[k];
    }
}

size_t adapter_plan_batch(const adapter_plan_config *c, const adapter_record *win, size_t nwin,
                          const adapter_reservoir *buf, uint64_t window, uint64_t step, size_t G,
                          int32_t *user, int32_t *pos, int32_t *neg)
{
    size_t R = 0;
    if (buf && buf->n > 0 && c->mix > 0) R = (size_t)llround(c->mix * (double)G);
    if (R > G) R = G;
    if (nwin == 0) R = buf && buf->n > 0 ? G : 0;
    DM_ASSERT(nwin > 0 || R == G);
    const uint64_t key = dm_rng_key(c->seed ^ TAG_BATCH, window, step);
    const int K = c->negatives;
    for (size_t j = 0; j < G; j++) {
        dm_rng g;
        dm_rng_seed(&g, dm_rng_key(key, j, 0));
        const adapter_record *rc =
            j < G - R ? &win[dm_rng_below(&g, nwin)] : &buf->rec[dm_rng_below(&g, buf->n)];
        user[j] = rc->user;
        pos[j] = rc->item;
        dm_rng_seed(&g, dm_rng_key(key ^ TAG_NEG, j, 1));
        for (int k = 0; k < K; k++) {
            int32_t x;
            if (c->n_items <= 1) {
                x = 0;
            } else { /* uniform over the other n_items - 1 items */
                x = (int32_t)dm_rng_below(&g, (uint64_t)c->n_items - 1);
                if (x >= rc->item) x++;
            }
            neg[j * (size_t)K + k] = x;
        }
    }
    return R;
}
