/* trainer.h: data-parallel training of any dm_model_ops model (src/model/model.h), written once.
 *
 * Per epoch e: the examples in an order drawn from (seed, e), the same on every rank; steps of
 * <name>.batch examples (the global batch), each rank computing the gradient of its even share
 * (ops->grad with the global batch's normaliser and the examples' global positions), one allreduce
 * of the gradient slab, ops->after_reduce, ops->step on every rank. Every <name>.eval_every epochs
 * the validation split is scored (<name>.select_metric under <name>.select_protocol, the users
 * sharded over the ranks) and the best parameters are kept; <name>.patience rounds without
 * improvement stop the training. The test split is never read.
 *
 * Checkpoints (stages/ckpt.h: <run.dir>/ckpt_<name>.h5, every <name>.checkpoint_every epochs and
 * at the next multiple of 16 steps after SIGTERM/SIGUSR1, removed when the training completes) hold
 * the parameters, the optimiser state, the best parameters, the curve and the cursor including the
 * current epoch's partial sums, under the stage hash: a resumed run reaches exactly the weights and
 * curve of an uninterrupted one. Without a stage hash there are no checkpoints and the signals keep
 * their handlers.
 *
 * The model's optional members (model.h) apply: seed_key (trainer_seed), loss_is_mean (the curve's
 * loss), score_batch (users per validation call; create() gets max_batch = the larger of that and a
 * rank's share of the global batch), examples (the log's name for them).
 *
 * The training keys of a model with group <name>: epochs, batch, eval_every, patience,
 * checkpoint_every, select_metric, select_protocol, seed (its key table declares them).
 *
 * Output (trainer_write): /<name>/weights/<tensor> per ops->tensor, /<name>/curve (epoch, mean loss,
 * validation metric, seconds) and the attributes best_epoch, best_valid, epochs_run, steps,
 * early_stopped, train_seconds, seed, label.
 */
#ifndef DM_TRAINER_H
#define DM_TRAINER_H

#include "evalcore.h"

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"
#include "../src/model/model.h"

typedef struct {
    const dm_model_ops *ops;
    void *self;           /* the model, created by ops->create */
    uint64_t seed;
    /* after trainer_fit */
    double *curve;        /* (ncurve, 4) */
    size_t ncurve;
    long best_epoch, epochs_run, steps;
    double best_valid, train_seconds;
    int early_stopped;
} trainer_run;

/* How trainer_fit runs (NULL: checkpoints off, <name>.epochs with validation, normal verbosity). */
typedef struct {
    const char *stage_hash; /* checkpoints under this stage hash; NULL = none */
    long epochs;            /* > 0: exactly this many epochs and no validation (a model retrained inside
                               another stage); 0 = <name>.epochs with validation and early stopping */
    int log_level;          /* the verbosity its progress lines need (dm_log_v): 1 = always, 2 = verbose */
} trainer_opts;

/* The training keys' values that need no file (the select protocol). */
int trainer_check(const dm_cfg *cfg, const dm_model_ops *ops);
/* The model's seed: <name>.seed, or derived from run.seed (by ops->seed_key or the name). */
uint64_t trainer_seed(const dm_cfg *cfg, const dm_model_ops *ops);
/* Creates the model and trains it (see above). Collective. */
int trainer_fit(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const dm_model_ops *ops, const trainer_opts *opts,
                trainer_run *t);
/* Writes the trained model and its curve under /<name> of f. Collective. */
int trainer_write(par_ctx *ctx, const trainer_run *t, h5file *f);
/* Loads the model saved under /<name> of the file at path, created with the config stored in that
 * file (so it has the shapes it was trained with). Collective. */
int trainer_load(par_ctx *ctx, const char *path, const dm_dataset *d, const dm_model_ops *ops, int max_batch, void **self);
void trainer_run_free(trainer_run *t);

/* Inside a long epoch: a line "<name> epoch E  step k of N (p%)  ms/step  epoch eta" (at log
 * verbosity `level`) when DM_PROGRESS_SECONDS (60 by default) have passed since *t_note (start it
 * at the epoch's start t0), and none after its last step; *t_note = the time of the last line. Not
 * collective. */
void trainer_progress(int level, const char *name, long epoch, long done, long total, double t0, double *t_note);

/* A trained model as a scorer of the evaluation core (evalcore.h): trainer_score is the ev_score_fn
 * of a trainer_scorer, scoring through ops->score. */
typedef struct {
    const dm_model_ops *ops;
    void *self;
} trainer_scorer;
int trainer_score(void *scorer, const ev_split *s, const size_t *users, size_t B, float *scores);

#endif
