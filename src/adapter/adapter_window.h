/* adapter_window.h: one streaming window's interactions gathered from the dataset, in the form the
 * adapter's summaries (adapter_events), reservoir and batch plans (adapter_record) take.
 *
 * Order: the dataset's (users in id order, each user's interactions in time order), the same on
 * every rank, so the reservoir fed with these records is rank-count independent. Windows < 0 and
 * >= n_windows come back empty: the history before window 0 (the base models' training data,
 * window -1 in the dataset) is not summarised as a window, so window 0's summaries see no
 * previous window.
 */
#ifndef DM_ADAPTER_WINDOW_H
#define DM_ADAPTER_WINDOW_H

#include "../data/dataset.h"
#include "adapter_replay.h"
#include "adapter_summary.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t w;            /* window index */
    int64_t t_begin, t_end; /* window_start[w], window_start[w + 1] (0, 0 when empty) */
    size_t n;
    int32_t *user;        /* (n) */
    int32_t *item;        /* (n) */
    int64_t *time;        /* (n) ms */
    adapter_record *rec;  /* (n) the same interactions as records */
    adapter_events ev;    /* views of user/item/time */
} adapter_window;

/* Gathers window w of d (owning copies). adapter_window_free releases them and zeroes the struct. */
int adapter_window_gather(const dm_dataset *d, int64_t w, adapter_window *out);
void adapter_window_free(adapter_window *win);

#endif
