/* models.h: the model registry shared by train-cf, eval and (through the labels eval stores) report.
 *
 * Each entry: {name, the file of run.dir that holds it, how it is trained, loaded and scored}. A
 * model trained by train-cf lives in cf.h5; the aligner lives in align.h5 (its own stage trains it).
 * Most models are a dm_model_ops (src/model/model.h) and need nothing else: the generic trainer
 * trains them (stages/trainer.h), trainer_load loads them, their ops->score scores them, and their
 * key table's groups join the stage hashes of train-cf and eval when cf.models / eval.models lists
 * them. Adding such a baseline is its src/ folder, its key table (src/config/keys/<name>.def, one
 * include line in all.def) and one line in models.c's table.
 *
 * Models with their own code paths fill the train/load hooks themselves: popularity, EASE on
 * ScaLAPACK and the aligner have only those; SASRec is a dm_model_ops (sasrec_model_ops) whose train
 * hook runs the generic trainer and then writes its item table and user states (cf_sasrec.h), and
 * whose load hook scores from those stored states.
 */
#ifndef DM_MODELS_H
#define DM_MODELS_H

#include "evalcore.h"

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"
#include "../src/model/model.h"

/* Models that score by a dot product of a user state and an item table (SASRec, the aligner):
 * the table and the states of the valid and test histories. */
typedef struct {
    size_t n_items, C;
    float *e;          /* (n_items, C) */
    float *state[3];   /* (n_users, C) by split: [DM_VALID], [DM_TEST] */
} model_latents;
/* Reads the three datasets of an open file. */
int model_latents_read(h5file *f, const char *item, const char *valid, const char *test, model_latents *m);
void model_latents_free(model_latents *m);
/* An ev_score_fn over a model_latents: h_u . e_i by nn_sgemm_fixed (src/nn/gemm.h), so each score is
 * the same bits whatever the users and items of the call (the rank count, the item shards). */
int model_latents_score(void *m, const ev_split *s, const size_t *users, size_t B, float *scores);
/* Its ev_items_fn: h_u . e_i of listed items by the same kernel, so the same bits as the row's. */
int model_latents_score_items(void *m, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n, float *scores);
/* Its arithmetic on bare arrays: scores[b * n + k] = st[users[b]] . e[items[b * n + k]] (rows of C
 * floats) by nn_sgemm_fixed over each user's gathered rows; DM_EINTERNAL for an item outside
 * [0, n_items). */
int model_dot_items(const float *e, size_t n_items, size_t C, const float *st, const size_t *users, size_t B, const int32_t *items,
                    size_t n, float *scores);

/* The datasets of a dot-product model (item table, valid states, test states) in its file, or NULL
 * for a model that does not score by a dot product; model_latents_check refuses a file that does
 * not hold them (with a hint). Read item-sharded by stages/evalshard.h. */
struct model_def;
const char *const *model_latents_names(const struct model_def *m);
int model_latents_check(const struct model_def *m, h5file *f);
/* DM_OK when f holds dataset dset of model `name` (listed in eval.models); otherwise an error
 * naming the file, with the hint to add the model to cf.models and rerun train-cf. */
int model_need(h5file *f, const char *dset, const char *name);

/* What a model's training gets. */
typedef struct {
    par_ctx *ctx;
    const dm_cfg *cfg;
    const dm_dataset *d;
    const int8_t *roles;    /* split.protocol's roles */
    const char *stage_hash; /* for checkpoints */
    h5file *f;              /* the stage's output (cf.h5), written under /<name> */
} model_train_args;

/* A loaded model: its scoring function and state (freed with model_unload). */
typedef struct {
    const struct model_def *def;
    ev_score_fn score;
    ev_items_fn score_items; /* NULL: sampled protocols pick the candidates out of whole rows */
    void *state;
} model_loaded;

typedef struct model_def {
    const char *name;             /* in cf.models / eval.models */
    const char *label;            /* for tables (stored with the rows in results.h5) */
    const char *file;             /* the file of run.dir holding it */
    const char *const *groups;    /* its config groups (NULL = none) */
    const dm_model_ops *ops;      /* a generic model (its name, label and groups are used), or NULL */
    /* own hooks, used instead of the generic path when set: train into t->f; load from the open file f */
    int (*train)(const model_train_args *t);
    int (*load)(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *m);
    void (*unload)(model_loaded *m);
    int (*check)(const dm_cfg *cfg); /* settings checked before any stage runs; NULL = the model's (ops->check) and the trainer's, or none */
} model_def;

const model_def *model_find(const char *name);
int model_count(void);
const model_def *model_at(int i);
/* The label for tables ("SASRec", "BPR-MF"). */
const char *model_label(const model_def *m);
/* "pop, ease, sasrec, ..." (those trained by train-cf when trainable = 1) */
const char *model_names(int trainable);

/* Its settings, checked before any stage runs. */
int model_check(const model_def *m, const dm_cfg *cfg);
/* Trains one model of cf.models into t->f. */
int model_train(const model_def *m, const model_train_args *t);
/* Loads a model from path for scoring on dataset d. */
int model_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const model_def *m, const char *path, model_loaded *out);
void model_unload(model_loaded *m);

/* The config groups of the models listed in list key `key` (cf.models, eval.models), appended to
 * out[0..*n) (cap entries; NULL-terminated on return). */
void model_groups(const dm_cfg *cfg, const char *key, const char **out, size_t *n, size_t cap);

#endif
