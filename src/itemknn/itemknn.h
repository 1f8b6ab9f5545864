/* itemknn.h: item-based collaborative filtering (Sarwar et al., WWW 2001) as RecBole's ItemKNN.
 *
 *   x_u        the binary vector of user u's distinct training items
 *   c_ij       = sum_u x_ui x_uj   (co-occurrence: users who took both i and j; c_ii = n_i)
 *   sim(i, j)  = c_ij / (sqrt(n_i) sqrt(n_j) + shrink + 1e-6)   for j != i   (cosine with shrinkage)
 *   row i keeps its k most similar items j (sim descending, ties by lower j; only j with c_ij > 0)
 *   score(u, j) = sum over the distinct history items i of u of sim(i, j) when j is among i's k
 *
 * Row i depends only on the users of i and their items, so any split of the rows over ranks gives
 * the same rows bit for bit: the counts are integers, and each similarity is one double expression of
 * them rounded once to float. Scoring sums a user's terms in increasing item order, so a score is a
 * function of the user's history alone.
 *
 * Memory: the index holds the distinct training items of every user and the users of every item
 * (2 x distinct training interactions int32); a row computation needs n_items int32 counters and a
 * list of up to n_items candidates. Every struct owns its arrays; X_free releases them.
 */
#ifndef DM_ITEMKNN_H
#define DM_ITEMKNN_H

#include "../data/dataset.h"

#include <stddef.h>
#include <stdint.h>

/* the training matrix both ways */
typedef struct {
    size_t n_users, n_items;
    int64_t *u_off;   /* (n_users + 1) */
    int32_t *u_items; /* (u_off[n_users]) each user's distinct training items, increasing */
    int64_t *i_off;   /* (n_items + 1) */
    int32_t *i_users; /* (i_off[n_items]) each item's training users, increasing */
} itemknn_index;

/* From the rows of d whose role is DM_TRAIN (duplicates count once). */
int itemknn_index_init(itemknn_index *x, const dm_dataset *d, const int8_t *roles);
void itemknn_index_free(itemknn_index *x);

/* prefix (n_items + 1): cumulative cost of the rows (row i costs the items of i's users), for
   dm_shard_weighted */
void itemknn_row_cost(const itemknn_index *x, int64_t *prefix);

/* Columns kept per row: min(k, n_items - 1), at least 1. */
int itemknn_width(int k, size_t n_items);

/* Rows [lo, hi) of the top-k similarity: nbr and sim ((hi - lo), K) with K = itemknn_width(k),
   best first, nbr -1 and sim 0 past the row's last neighbour. */
int itemknn_rows(const itemknn_index *x, size_t lo, size_t hi, int k, double shrink, int32_t *nbr, float *sim);

/* A fitted model: the top-k rows of every item. */
typedef struct {
    size_t n_items;
    int K;
    int32_t *nbr; /* (n_items, K) */
    float *sim;   /* (n_items, K) */
} itemknn_model;

/* Scores of every item (n_items) for the history hist[0..nh) (any order, repeats allowed: each
   distinct item counts once); hist is sorted in place. */
void itemknn_score(const itemknn_model *m, int32_t *hist, size_t nh, float *scores);

#endif
