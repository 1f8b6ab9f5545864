/* cands.h: the candidate sets of the sampled protocols (uniN, popN).
 *
 * The negatives of user u exclude every item u touched (train, valid and test) and are a pure
 * function of (eval seed, u, protocol name, the dataset) (src/eval/metrics_sample.h): every stage
 * that scores a sampled protocol draws them itself with cands_draw and gets exactly the same sets,
 * whatever the rank count or the other protocols listed. So adding a protocol to eval.protocols
 * reruns only the eval stage (the dataset is not rewritten, no model retrains), and the LLM
 * recommenders of the prompt stage are scored on the very sets `dynmm eval` stores in results.h5
 * (/candidates/<protocol>). popN draws in proportion to train counts (split.protocol) ^
 * eval.pop_power. The keys they depend on: eval.seed, eval.pop_power, split.protocol, run.seed.
 */
#ifndef DM_CANDS_H
#define DM_CANDS_H

#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"

/* The eval seed: eval.seed, or derived from run.seed when 0. */
uint64_t cands_seed(const dm_cfg *cfg);
/* Parses "uni99" / "pop19" into kind ('u' or 'p') and N; "full" gives kind 0. */
int cands_parse(const char *proto, char *kind, size_t *n);
/* DM_ECONFIG naming `key` when its value (one protocol, such as sasrec.select_protocol) does not parse. */
int cands_check_key(const dm_cfg *cfg, const char *key);
/* Draws the sets of the sampled protocols among protocols[0..n) (others, such as "full" or
 * "top50", are passed over) for users [lo, hi) into d->cand, replacing any held: row u - lo of
 * d->cand[c].rows belongs to user u (d->cand_row0 = lo). Users with too few untouched items get a
 * row of -1 (they take no part; one warning). Collective. */
int cands_draw(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d, const char *const *protocols, size_t n,
               size_t lo, size_t hi);
/* The same for the protocols of list key `key` ("eval.protocols", "prompt.protocols"). */
int cands_draw_key(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d, const char *key, size_t lo, size_t hi);
/* The roles array of split.protocol, or an error naming the key when the dataset lacks it. */
int cands_split(const dm_cfg *cfg, const dm_dataset *d, const int8_t **roles);

#endif
