/* adapter_window.c: gathering one streaming window of the dataset (see adapter_window.h). */
#include "adapter_window.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

int adapter_window_gather(const dm_dataset *d, int64_t w, adapter_window *out)
{
    memset(out, 0, sizeof *out);
    out->w = (int32_t)w;
    if (w < 0 || (size_t)w >= d->n_windows || !d->window) return DM_OK;
    out->t_begin = d->window_start[w];
    out->t_end = d->window_start[w + 1];
    size_t n = 0;
    for (size_t k = 0; k < d->n_inter; k++) n += d->window[k] == (int32_t)w;
    size_t m = n ? n : 1;
    out->user = dm_calloc_at(m, sizeof *out->user, __FILE__, __LINE__);
    out->item = dm_calloc_at(m, sizeof *out->item, __FILE__, __LINE__);
    out->time = dm_calloc_at(m, sizeof *out->time, __FILE__, __LINE__);
    out->rec = dm_calloc_at(m, sizeof *out->rec, __FILE__, __LINE__);
    if (!out->user || !out->item || !out->time || !out->rec) {
        adapter_window_free(out);
        return DM_ENOMEM;
    }
    size_t j = 0;
    for (size_t u = 0; u < d->n_users; u++)
        for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++) {
            if (d->window[k] != (int32_t)w) continue;
            out->user[j] = (int32_t)u;
            out->item[j] = d->item[k];
            out->time[j] = d->time[k];
            out->rec[j] = (adapter_record){(int32_t)u, d->item[k], d->time[k]};
            j++;
        }
    out->n = n;
    out->ev = (adapter_events){n, out->user, out->item, out->time};
    return DM_OK;
}

void adapter_window_free(adapter_window *win)
{
    DM_FREE_ALL(win->user, win->item, win->time, win->rec);
    memset(win, 0, sizeof *win);
}
