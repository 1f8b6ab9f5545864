/* seqs.h: what the sequential models (GRU4Rec, BERT4Rec) read of a dataset: their training
 * sequences and the latest items of a user's history in a split (MPI-free).
 *
 * dm_seqs holds the users with at least min_len training (DM_TRAIN) interactions, in user order,
 * each with its training items in time order: sequence k is user user[k] with items
 * items[off[k] .. off[k+1]). It owns its arrays (dm_seqs_free releases them and zeroes it).
 *
 * dm_history_latest writes the latest n <= cap items of user u whose role is below split (the
 * training rows for the valid split, training and valid for the test split), oldest first, and
 * returns n.
 */
#ifndef DM_MODEL_SEQS_H
#define DM_MODEL_SEQS_H

#include "../data/dataset.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;       /* sequences */
    size_t *user;   /* (n) dataset user of each */
    int64_t *off;   /* (n + 1) into items */
    int32_t *items; /* their training items, sequence after sequence */
} dm_seqs;

int dm_seqs_init(dm_seqs *s, const dm_dataset *d, const int8_t *roles, size_t min_len);
void dm_seqs_free(dm_seqs *s);
/* items of sequence k */
static inline size_t dm_seqs_len(const dm_seqs *s, size_t k) { return (size_t)(s->off[k + 1] - s->off[k]); }

int dm_history_latest(const dm_dataset *d, const int8_t *roles, int split, size_t u, int cap, int32_t *seq);

#endif
