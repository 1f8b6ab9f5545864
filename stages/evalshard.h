/* evalshard.h: item-sharded scoring of dot-product models (SASRec, the aligner: models.h's
 * model_latents), for catalogues whose item table does not fit one rank's share of memory.
 *
 * Items are split over the ranks in even contiguous blocks (dm_shard_even): rank r holds rows
 * [i0, i1) of the item table, read from the model's file as a row block (h5_read_rows), and the user
 * states of every user (n_users x C; not sharded). Users stay sharded as in evalcore.h (rank r owns
 * the rows of its users [lo, hi)), but are scored together: a block of users is the next chunk of
 * every rank's users, in rank order, and every rank scores the whole block against its items
 * (model_latents_score over its rows, as the unsharded path calls it over the whole table).
 * Per block:
 *   full      each user's distinct target scores reach every rank (the owner of each target item
 *             contributes it, the others 0, summed: exact); every rank counts its items strictly
 *             between and equal to those scores, less its items of the user's history
 *             (metrics_shard_count); the counts are summed over ranks and the user's owner finishes
 *             the row (metrics_shard_finish): the integers metrics_full counts, so the same row.
 *   uniN/popN the block's candidate rows are gathered from their owners; each rank scores only the
 *             targets and negatives in its shard (model_latents_score_items: the same kernel), the
 *             scores are summed over ranks as above, and the owner scores them with
 *             metrics_sampled(_multi) as ev_score_users does.
 * Rows are therefore identical to ev_score_users over the whole table (every tie rule): both score
 * through model_latents_score's fixed-order kernel, which computes each score from its user's state
 * and its item's row alone, whatever the other rows of the call (OpenBLAS's sgemm does not: its
 * results move by an ulp with the call's shape, and at 10^6 items that reorders some targets).
 * tests/mpi/test_evalshard.c and tests/cli/test_evalshard.sh check the identity at 1 to 4 ranks.
 *
 * Memory per rank: (i1 - i0) C floats of the table, 2 n_users C of the states and a block of scores
 * for the users ev_score_users scores at once (about EV_BLOCK_BYTES / P; for sampled protocols a
 * block of candidate lists), where the unsharded path holds n_items C floats of the table and a
 * block of about EV_BLOCK_BYTES.
 *
 * Top-K lists: ev_shard_topk merges every rank's best K (score descending, ties to the lower item
 * index) into the catalogue's best K, the list dm_top_k_f32 gives over the whole score vector.
 *
 * All functions taking a par_ctx are collective.
 */
#ifndef DM_EVALSHARD_H
#define DM_EVALSHARD_H

#include "evalcore.h"
#include "models.h"

typedef struct {
    size_t n_items, C; /* the catalogue and the latent width */
    size_t i0, i1;     /* this rank's items */
    float *e;          /* (i1 - i0, C) its rows of the item table */
    float *state[3];   /* (n_users, C) by split: [DM_VALID], [DM_TEST] */
} ev_shard_latents;

/* Reads this rank's rows of the item table and every user state of dot-product model m from the
 * file at path (its datasets: model_latents_names). */
int ev_shard_load(par_ctx *ctx, const model_def *m, const char *path, ev_shard_latents *out);
void ev_shard_free(ev_shard_latents *m);

/* Scores (B, i1 - i0) of the users' split-s states against the shard's rows. Not collective. */
int ev_shard_scores(const ev_shard_latents *m, const ev_split *s, const size_t *users, size_t B, float *scores);

/* ev_score_users for a sharded dot-product model: rows of users [lo, hi) (this rank's) under
 * protocol; batch users per block over all ranks, bounded as ev_score_users bounds its blocks over
 * the whole catalogue (so a rank's block of scores is about EV_BLOCK_BYTES / P). */
int ev_score_sharded(par_ctx *ctx, const ev_split *s, const metrics_spec *spec, const char *protocol, const ev_shard_latents *m,
                     size_t lo, size_t hi, size_t batch, double *rows);

/* The K best items of each of B users from every rank's shard scores (B, n) of items [i0, i0 + n)
 * (every rank the same users), leaving out the user's excluded items excl[excl_off[b] ..
 * excl_off[b + 1]) (global ids; excl_off NULL = none): out (B, K) item ids best first, ties to the
 * lower index, -1 past the end of a short list; out_scores (B, K) their scores, or NULL. */
int ev_shard_topk(par_ctx *ctx, const float *scores, size_t B, size_t i0, size_t n, const int64_t *excl_off,
                  const int32_t *excl, int K, int32_t *out, float *out_scores);

/* Whether a stage shards the item table of a model with n_items x C float latents by the keys of its
 * config group ("eval": eval.item_shard, eval.mem_per_rank; "stream": stream.item_shard, ...):
 * on, off, or auto = more than one rank and a table larger than a quarter of the memory per rank
 * (<group>.mem_per_rank MiB; 0 = the node's physical memory over its ranks, the least over ranks).
 * *table_mib and *budget_mib get the figures the choice was made from. Collective. */
int ev_item_shard(par_ctx *ctx, const dm_cfg *cfg, const char *group, size_t n_items, size_t C, double *table_mib,
                  double *budget_mib);

/* Whether eval scores model m (its file at path) item-sharded: 0 for a model that is not a
 * dot-product model, else ev_item_shard's choice from the table's shape, logged. */
int ev_shard_plan(par_ctx *ctx, const dm_cfg *cfg, const model_def *m, const char *path, int *on);

#endif
