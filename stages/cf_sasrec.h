/* cf_sasrec.h: data-parallel SASRec training inside `dynmm train-cf`.
 *
 * Every epoch visits the training users (those with at least two training interactions) in an order
 * drawn from (seed, epoch); step k takes the next sasrec.batch of them as the global batch, and each
 * rank computes the gradient of its even share (sasrec_train_step with the global target count as
 * the divisor), followed by one allreduce of the gradient slab and the same Adam step on every rank.
 * Negatives and dropout masks are keyed by (seed, step, global sequence index), so 1, 2 and 3 ranks
 * take the same steps (to float summation order). Validation (split valid, the first protocol of
 * eval.protocols, sasrec.select_metric) every sasrec.eval_every epochs selects the kept weights and
 * drives early stopping; the test split is never read here.
 *
 * Checkpoints (<run.dir>/ckpt_sasrec.h5, written atomically every sasrec.checkpoint_every epochs, on
 * SIGTERM/SIGUSR1 at the next step, and deleted when the stage completes) hold the weights, Adam
 * moments, the best weights, the epoch and step cursor and the early-stopping state, with the stage
 * hash: a resumed run continues exactly where the checkpoint left off and ends with the same
 * weights as an uninterrupted one.
 */
#ifndef DM_CF_SASREC_H
#define DM_CF_SASREC_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"
#include "../src/sasrec/sasrec.h"

/* Trains and writes /sasrec/... into f: weights, e_cf, user states for valid and test histories,
 * the training curve. */
int cf_sasrec_train(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const char *stage_hash,
                    h5file *f);

/* The training behind cf_sasrec_train, for other stages: stage_hash NULL = no checkpoints; f NULL =
 * nothing written; epochs_override > 0 = that many epochs without validation (e.g. the retrained
 * reference of the streaming protocol); out_m/out_a non-NULL receive the trained model and its
 * activations (the caller frees them). */
int cf_sasrec_fit(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const char *stage_hash,
                  h5file *f, long epochs_override, sasrec *out_m, sasrec_acts *out_a);

/* Loads the trained SASRec of cf.h5 (its shape from the /sasrec attributes, weights from
 * /sasrec/weights) with activations for batches of max_batch users, on every rank. */
int cf_sasrec_load(par_ctx *ctx, const char *path, size_t n_items, int max_batch, sasrec *m, sasrec_acts *a);
/* User states of histories: seq (B, T) left-padded SASRec ids (dense + 1); out (B, C). */
int cf_sasrec_states(sasrec *m, sasrec_acts *a, const int32_t *seq, int B, float *out);

#endif
