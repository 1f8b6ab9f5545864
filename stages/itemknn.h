/* itemknn.h: ItemKNN (src/itemknn/itemknn.h) in the model registry: fitted by train-cf, scored by eval.
 *
 * The fit shards the items over the ranks, balanced by the cost of their rows (the items of each
 * item's users): every rank computes the top-k similarity rows of its items from the replicated
 * training data and writes them to cf.h5 (/itemknn/nbr int32 and /itemknn/sim float32, both
 * (n_items, K)) in one collective row-block write, so no rank holds the whole item x item matrix.
 * The rows do not depend on the split (itemknn.h), so 1, 2 and 3 ranks write the same bits. Loading
 * reads both datasets on every rank; a user's scores add the rows of its distinct history items.
 */
#ifndef DM_STAGE_ITEMKNN_H
#define DM_STAGE_ITEMKNN_H

#include "models.h"

/* the registry's hooks (models.h) */
int itemknn_train(const model_train_args *t);
int itemknn_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *m);
void itemknn_unload(model_loaded *m);

#endif
