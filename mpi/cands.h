/* cands.h: the stored candidate sets of the sampled protocols (uniN, popN of eval.protocols).
 *
 * They are drawn once, when the dataset is written, and stored in dataset.h5 under
 * /candidates/<protocol> as (n_users, N) item ids, so every model of every later stage is scored on
 * exactly the same sets. The negatives of user u exclude every item u touched (train, valid and
 * test) and are keyed by (eval seed, u, protocol) (src/eval/metrics_sample.h): they do not depend on
 * the rank count. popN draws in proportion to train counts (split.protocol) ^ eval.pop_power.
 */
#ifndef DM_CANDS_H
#define DM_CANDS_H

#include "par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"

/* The eval seed: eval.seed, or derived from run.seed when 0. */
uint64_t cands_seed(const dm_cfg *cfg);
/* Parses "uni99" / "pop19" into kind ('u' or 'p') and N; "full" gives kind 0. */
int cands_parse(const char *proto, char *kind, size_t *n);
/* Draws the sets for users [lo, hi) into d->cand (rows of that block). */
int cands_generate(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d, size_t lo, size_t hi);
/* The roles array of split.protocol, or an error naming the key when the dataset lacks it. */
int cands_split(const dm_cfg *cfg, const dm_dataset *d, const int8_t **roles);

#endif
