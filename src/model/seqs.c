/* seqs.c: see seqs.h. */
#include "seqs.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

static int fill(dm_seqs *s, const dm_dataset *d, const int8_t *roles, size_t min_len)
{
    DM_ALLOC(s->user, d->n_users + 1);
    DM_ALLOC(s->off, d->n_users + 1);
    DM_ALLOC(s->items, d->n_inter + 1);
    size_t q = 0;
    for (size_t u = 0; u < d->n_users; u++) {
        size_t start = q;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
            if (roles[j] == DM_TRAIN) s->items[q++] = d->item[j];
        if (q - start < min_len) {
            q = start;
            continue;
        }
        s->user[s->n++] = u;
        s->off[s->n] = (int64_t)q;
    }
    return DM_OK;
}

int dm_seqs_init(dm_seqs *s, const dm_dataset *d, const int8_t *roles, size_t min_len)
{
    memset(s, 0, sizeof *s);
    int rc = fill(s, d, roles, min_len);
    if (rc) dm_seqs_free(s);
    return rc;
}

void dm_seqs_free(dm_seqs *s)
{
    DM_FREE_ALL(s->user, s->off, s->items);
    memset(s, 0, sizeof *s);
}

int dm_history_latest(const dm_dataset *d, const int8_t *roles, int split, size_t u, int cap, int32_t *seq)
{
    int n = 0;
    int64_t j = d->user_off[u + 1] - 1;
    for (; j >= d->user_off[u] && n < cap; j--) n += roles[j] < split;
    for (int p = 0; ++j < d->user_off[u + 1];)
        if (roles[j] < split) seq[p++] = d->item[j];
    return n;
}
