/* pairs.h: what the pairwise models (BPR-MF, LightGCN) share: their examples, the training
 * (DM_TRAIN) interactions, each user's training items sorted, the uniform negative item drawn for an
 * example by rejection, and the BPR loss of a triple (MPI-free).
 *
 * dm_pairs_init allocates and fills the caller's arrays: the examples ex_u, ex_i (*n_ex of them, in
 * user order) and, for users 0..n_users-1 (at least the dataset's), user u's training items sorted
 * in u_items[u_off[u] .. u_off[u+1]). The caller owns the arrays, also when it fails (DM_ENOMEM).
 *
 * dm_pairs_negative draws an item of [0, n_items) that user u never took in training (the arrays
 * dm_pairs_init filled), uniformly, from the generator seeded with key (any item when u took them
 * all).
 *
 * dm_pairs_bpr_loss is the BPR loss of one triple (Rendle et al., UAI 2009) on the score vectors
 * fu, fi, fj (d) and the embeddings eu, ei, ej (d) its L2 term weighs (BPR-MF: the same rows;
 * LightGCN: the ego embeddings of the final ones):
 *   x = fu . (fi - fj),   l = -log sigmoid(x) + (reg / 2) (|eu|^2 + |ei|^2 + |ej|^2)
 * summed in double in the order of c; returns l and sets *g = (dl / dx) / norm = -sigmoid(-x) inv
 * (inv = 1 / norm, the product in float).
 */
#ifndef DM_MODEL_PAIRS_H
#define DM_MODEL_PAIRS_H

#include "../data/dataset.h"

#include <stddef.h>
#include <stdint.h>

int dm_pairs_init(const dm_dataset *d, const int8_t *roles, size_t n_users, size_t *n_ex, int32_t **ex_u, int32_t **ex_i,
                  int64_t **u_off, int32_t **u_items);
int32_t dm_pairs_negative(const int64_t *u_off, const int32_t *u_items, int32_t u, int32_t n_items, uint64_t key);
double dm_pairs_bpr_loss(const float *fu, const float *fi, const float *fj, const float *eu, const float *ei, const float *ej, size_t d,
                         float reg, float inv, float *g);

#endif
