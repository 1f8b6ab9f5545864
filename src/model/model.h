/* model.h: what a trainable recommender provides to the rest of dynmm (MPI-free).
 *
 * A model that fits this interface is trained data parallel by the generic trainer
 * (stages/trainer.h: epochs, the global batch split over ranks, one gradient allreduce per step,
 * validation and early stopping, checkpoints, the training curve), saved to and loaded from its
 * stage file, and scored by `dynmm eval` through the model registry (stages/models.h) — so adding a
 * baseline is its src/ folder (its maths and one dm_model_ops), its key table
 * (src/config/keys/<name>.def) and one registration line.
 *
 * The trainer's contract, per step: the epoch's examples 0..n_examples-1 are visited in an order
 * drawn from (seed, epoch) that is the same on every rank; a global batch of examples is cut into
 * even shares, rank r calls grad() on its share with the batch's global normaliser and the examples'
 * global indices (so every random draw can be keyed by (seed, step, global index) and no rank count
 * changes the step), the gradient slabs are summed over ranks, after_reduce() (may be NULL) edits the
 * summed gradient, and step() updates the parameters identically on every rank.
 *
 * The optional members at the end (zero / NULL: the defaults they name) let a model keep the
 * arithmetic it had before it was written against this interface (SASRec's seeds, its loss scaled
 * inside the kernels, its inference batch), so moving a model onto the trainer changes no number.
 *
 * Memory: the model owns its parameter slab (params, nparams floats), gradient slab (grads) and
 * optimiser state (opt, nopt floats: Adam moments and the like, saved in checkpoints); the trainer
 * keeps one copy of the best parameters.
 */
#ifndef DM_MODEL_H
#define DM_MODEL_H

#include "../config/config.h"
#include "../core/err.h"
#include "../data/dataset.h"
#include "../nn/adam.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct dm_model_ops {
    const char *name;              /* as in cf.models / eval.models: "bpr" */
    const char *label;             /* for tables and logs: "BPR-MF" */
    const char *const *groups;     /* the config groups it reads (its key table): {"bpr", NULL} */

    /* Allocates and initialises a model for dataset d trained on `roles` (DM_TRAIN rows), with room
     * for batches of up to max_batch examples (training) or users (scoring). */
    int (*create)(void **self, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, int max_batch, uint64_t seed);
    void (*destroy)(void *self);

    /* the slabs */
    float *(*params)(void *self, size_t *n);
    float *(*grads)(void *self, size_t *n);
    float *(*opt_state)(void *self, size_t *n); /* saved and restored with the parameters; may be NULL */
    long *(*opt_steps)(void *self);             /* the optimiser's step counter, saved likewise */

    /* training */
    size_t (*n_examples)(void *self);           /* examples of an epoch, the same on every rank */
    /* normaliser of the global batch ex[0..n) (e.g. its example count) */
    double (*batch_norm)(void *self, const size_t *ex, size_t n);
    /* adds the gradient of (sum of the losses of ex[0..n)) / norm into grads; gidx[k] is ex[k]'s
     * position in the global batch stream; *loss = that sum (not divided; see loss_is_mean) */
    int (*grad)(void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double norm, double *loss);
    void (*after_reduce)(void *self);           /* may be NULL */
    void (*step)(void *self);                   /* the optimiser step on the summed gradient */

    /* Scores of every item for users[0..B) given their history in `split` (roles < split; the
     * training split's rows for the valid split, train + valid for test): scores (B, n_items). */
    int (*score)(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores);

    /* the tensors saved as /<name>/weights/<tensor> (cols 0 = a vector): k = 0, 1, ... until it
     * returns 0. A saved model is loaded by create() with the config stored in its file, then
     * these tensors filled from the file. */
    int (*tensor)(void *self, int k, const char **tname, size_t *rows, size_t *cols, float **data);

    /* optional */
    uint64_t seed_key;  /* <name>.seed = -1: the seed is dm_rng_key(run.seed, seed_key, 0); 0 = keyed by the name */
    int loss_is_mean;   /* 1: grad's *loss is already (sum of the losses) / norm, the share's part of the batch mean */
    /* users per score() call in validation (NULL = 256); create() gets room for at least that many */
    size_t (*score_batch)(const dm_cfg *cfg);
    const char *examples; /* what the examples are, for the log ("training users"); NULL = "training examples" */
    /* Scores of listed items only, scores[b * n + k] for item items[b * n + k] of users[b]: score()'s
       entries up to the rounding of a dot product (NULL = none). Validation under a sampled
       select_protocol then scores a user's 100 candidates instead of its row over the catalogue. */
    int (*score_items)(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B,
                       const int32_t *items, size_t n, float *scores);
    /* checks of its keys that need no data (a shape it can have), run before any stage: DM_ECONFIG
       naming the key; NULL = none */
    int (*check)(const dm_cfg *cfg);
} dm_model_ops;

/* The slab accessors of a model type T whose struct holds size_t nparams, float *params, *grads,
 * *opt (Adam m then v: 2 nparams) and long t: defines static model_params, model_grads,
 * model_opt and model_steps for its dm_model_ops (DM_MODEL_SLAB_MEMBERS names them there). */
#define DM_MODEL_SLAB_OPS(T)                                                                           \
    static float *model_params(void *self, size_t *n)                                                  \
    {                                                                                                  \
        *n = ((T *)self)->nparams;                                                                     \
        return ((T *)self)->params;                                                                    \
    }                                                                                                  \
    static float *model_grads(void *self, size_t *n)                                                   \
    {                                                                                                  \
        *n = ((T *)self)->nparams;                                                                     \
        return ((T *)self)->grads;                                                                     \
    }                                                                                                  \
    static float *model_opt(void *self, size_t *n)                                                     \
    {                                                                                                  \
        *n = 2 * ((T *)self)->nparams;                                                                 \
        return ((T *)self)->opt;                                                                       \
    }                                                                                                  \
    static long *model_steps(void *self) { return &((T *)self)->t; }
#define DM_MODEL_SLAB_MEMBERS .params = model_params, .grads = model_grads, .opt_state = model_opt, .opt_steps = model_steps

/* One Adam step (torch.optim.Adam without weight decay, src/nn/adam.h) on the slabs of a model m
 * laid out as DM_MODEL_SLAB_OPS asks, whose config m->cfg holds lr, beta1, beta2 and eps; m->t
 * counts the steps. */
#define DM_MODEL_ADAM_STEP(m)                                                                                          \
    do {                                                                                                               \
        const nn_adam dm_adam_ = {(m)->cfg.lr, (m)->cfg.beta1, (m)->cfg.beta2, (m)->cfg.eps, 0.0f, NN_ADAM_L2};        \
        nn_adam_step(&dm_adam_, ++(m)->t, (m)->params, (m)->grads, (m)->opt, (m)->opt + (m)->nparams, (m)->nparams); \
    } while (0)

/* batch_norm for a model whose normaliser is the batch's example count */
static inline double dm_model_count_norm(void *self, const size_t *ex, size_t n)
{
    (void)self;
    (void)ex;
    return (double)n;
}

/* batch_norm for a model whose normaliser is a count per example: the sum of count(self, ex[k]) */
static inline double dm_model_count_sum(void *self, const size_t *ex, size_t n, int64_t (*count)(const void *self, size_t k))
{
    int64_t t = 0;
    for (size_t k = 0; k < n; k++) t += count(self, ex[k]);
    return (double)t;
}

/* The create/destroy pair of a model type T set up by `int INIT(T *, const CT *config, const
 * dm_dataset *, const int8_t *roles, uint64_t seed)` and released by `void FREE(T *)` (which takes
 * a T that INIT left half set up when it failed, or one it released and zeroed itself): defines
 * static model_new(self, c, d, roles, seed), which allocates a zeroed T, sets it up from the config
 * c and stores it in *self (for a create() that has built c from the keys), and model_destroy for
 * dm_model_ops.destroy. */
#define DM_MODEL_LIFECYCLE(T, CT, INIT, FREE)                                                               \
    static int model_new(void **self, const CT *c, const dm_dataset *d, const int8_t *roles, uint64_t seed) \
    {                                                                                                       \
        T *m = calloc(1, sizeof *m);                                                                        \
        if (!m) return DM_ERR(DM_ENOMEM, "out of memory for a %s", #T);                                     \
        int rc = INIT(m, c, d, roles, seed);                                                                \
        if (rc) {                                                                                           \
            FREE(m);                                                                                        \
            free(m);                                                                                        \
            return rc;                                                                                      \
        }                                                                                                   \
        *self = m;                                                                                          \
        return DM_OK;                                                                                       \
    }                                                                                                       \
    static void model_destroy(void *self)                                                                   \
    {                                                                                                       \
        FREE(self);                                                                                         \
        free(self);                                                                                         \
    }

#endif
