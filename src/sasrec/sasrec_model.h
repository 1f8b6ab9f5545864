/* sasrec_model.h: SASRec (sasrec.h) as a trainable recommender of the model interface
 * (src/model/model.h): `sasrec_model_ops` is what the generic trainer trains and the registry lists.
 *
 * Training examples are the users with at least two training interactions (dense order). Example k
 * at step s is the row of its latest T + 1 training items: inputs the items before each target,
 * left-padded with item 0, targets the next items; each target's negative is a uniform item the user
 * never took in training, drawn from dm_rng_key(seed ^ "neg", s, global position), so the steps do
 * not depend on the rank count. A batch's normaliser is its target count (min(len - 1, T) per
 * user), the loss and gradient are those of sasrec_train_step. After the gradient is summed over
 * the ranks, the key bias's gradient is set to its exact value, zero (see after_reduce in the .c).
 *
 * Inference: a user's state is the final hidden state over the latest T items of its history in a
 * split (its interactions with role < split), the scores of every item the dot products with E.
 *
 * Memory: the sasrec model and one set of activations sized for max_batch sequences (the largest of
 * a rank's training share and sasrec.eval_batch), the training sequences, and (max_batch, T)
 * buffers of inputs, targets and negatives.
 */
#ifndef DM_SASREC_MODEL_H
#define DM_SASREC_MODEL_H

#include "../model/model.h"
#include "sasrec.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    sasrec m;
    sasrec_acts a;
    /* training sequences: the users with at least two training interactions */
    size_t nu;
    size_t *user;          /* (nu) dataset user id */
    int64_t *off;          /* (nu + 1) into items */
    int32_t *items;        /* their training items in time order */
    int32_t *sorted;       /* the same per user, sorted (negatives avoid them) */
    int32_t *seq, *pos, *neg; /* (max_batch, T) each */
    float *states;         /* (max_batch, C) */
} sasrec_model;

/* Allocates the model for cfg (max_batch and n_items set) trained on the DM_TRAIN rows of d
 * (roles NULL = no training set, for inference), weights drawn from seed. */
int sasrec_model_init(sasrec_model *s, const sasrec_config *cfg, const dm_dataset *d, const int8_t *roles, uint64_t seed);
void sasrec_model_free(sasrec_model *s);

/* Targets of training sequence k: min(len - 1, T). */
int64_t sasrec_model_targets(const sasrec_model *s, size_t k);
/* Row of training sequence k at step `step` (SASRec ids: dense + 1) into seq/pos/neg (T each). */
void sasrec_model_train_row(const sasrec_model *s, size_t k, uint64_t seed, uint64_t step, int64_t gidx, int32_t *seq, int32_t *pos,
                            int32_t *neg);
/* The latest T items of user u's history in split (roles < split), left-padded: seq (T). */
void sasrec_history_row(const dm_dataset *d, const int8_t *roles, int split, size_t u, int T, int32_t *seq);
/* States (B, C) of users[0..B) from their histories in split, in batches of max_batch. */
int sasrec_model_states(sasrec_model *s, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *out);

/* The users per score() call of validation: sasrec.eval_batch. */
size_t sasrec_model_score_batch(const dm_cfg *cfg);

extern const dm_model_ops sasrec_model_ops;

#endif
