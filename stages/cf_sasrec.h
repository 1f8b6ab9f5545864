/* cf_sasrec.h: what SASRec adds to the generic trainer inside `dynmm train-cf`, and the trained
 * SASRec for the stages built on it (align, prompt, stream).
 *
 * SASRec is the dm_model_ops `sasrec_model_ops` (src/sasrec/sasrec_model.h) trained by trainer_fit
 * (stages/trainer.h): the global batch of sasrec.batch users split over the ranks, one gradient
 * allreduce per step, negatives and dropout masks keyed by (seed, step, global sequence index) so 1,
 * 2 and 3 ranks take the same steps, validation (sasrec.select_metric under sasrec.select_protocol)
 * every sasrec.eval_every epochs selecting the kept weights and driving early stopping, checkpoints
 * in <run.dir>/ckpt_sasrec.h5. The test split is never read by training.
 *
 * cf.h5 under /sasrec: what trainer_write writes (weights/<tensor>, curve, best_epoch, ...), the item
 * table e_cf (n_items, C), the user states of the valid and test histories state_valid and
 * state_test (n_users, C) that eval scores, and the attributes select_metric, hidden, maxlen,
 * blocks, heads, ffn, norm.
 */
#ifndef DM_CF_SASREC_H
#define DM_CF_SASREC_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"
#include "../src/sasrec/sasrec.h"

/* Trains SASRec on the DM_TRAIN rows of roles and writes /sasrec into f (see above). Collective. */
int cf_sasrec_train(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const char *stage_hash, h5file *f);

/* SASRec trained from scratch for `epochs` epochs without validation or checkpoints (e.g. the
 * retrained reference of the streaming protocol), with activations for batches of the larger of
 * sasrec.eval_batch and a rank's share of sasrec.batch; the caller frees m and a (sasrec_free,
 * sasrec_acts_free). Collective. */
int cf_sasrec_retrain(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, long epochs, sasrec *m, sasrec_acts *a);

/* Loads the trained SASRec of cf.h5 (its shape from the config stored in the file, weights from
 * /sasrec/weights) with activations for batches of max_batch users, on every rank. */
int cf_sasrec_load(par_ctx *ctx, const char *path, size_t n_items, int max_batch, sasrec *m, sasrec_acts *a);
/* User states of histories: seq (B, T) left-padded SASRec ids (dense + 1); out (B, C). */
int cf_sasrec_states(sasrec *m, sasrec_acts *a, const int32_t *seq, int B, float *out);

#endif
