/* stages.h: the pipeline's stages and how `dynmm run` decides what to (re)run.
 *
 * Each stage reads its upstream file from run.dir, writes one output file there, and records a
 * stage hash in it: the sha256 of the config groups it depends on, the seed, and the upstream
 * file's own stage hash (the dataset stage hashes its input files instead). A stage whose output
 * exists with the same stage hash is current and is skipped (unless run.force), so changing
 * eval settings never retrains SASRec, while changing sasrec.* reruns SASRec and everything after.
 */
#ifndef DM_STAGES_H
#define DM_STAGES_H

#include "par.h"

#include "../src/config/config.h"

typedef struct {
    const char *name;            /* as in run.stages */
    const char *output;          /* file in run.dir */
    const char *input;           /* upstream file in run.dir, NULL for the first stage */
    const char *const *groups;   /* config groups the stage depends on */
    int (*run)(par_ctx *ctx, const dm_cfg *cfg);
} stage_def;

const stage_def *stage_find(const char *name);
/* Names of all stages, for messages ("ingest, synth, train-cf, ..."). */
const char *stage_names(void);
int stage_hash(par_ctx *ctx, const stage_def *s, const dm_cfg *cfg, char out[65]);
/* 1 if run.dir/output exists and carries stage hash `hash`. Collective. */
int stage_is_current(par_ctx *ctx, const stage_def *s, const dm_cfg *cfg, const char *hash, int *current);

int stage_ingest(par_ctx *ctx, const dm_cfg *cfg);
int stage_train_cf(par_ctx *ctx, const dm_cfg *cfg);
extern const char *const cf_config_groups[];
int stage_eval(par_ctx *ctx, const dm_cfg *cfg);
int stage_align(par_ctx *ctx, const dm_cfg *cfg);
int stage_stream(par_ctx *ctx, const dm_cfg *cfg);
int stage_lm(par_ctx *ctx, const dm_cfg *cfg);
int stage_prompt(par_ctx *ctx, const dm_cfg *cfg);
int stage_explain(par_ctx *ctx, const dm_cfg *cfg);
extern const char *const explain_config_groups[];
extern const char *const prompt_config_groups[];
extern const char *const lm_config_groups[];
extern const char *const stream_config_groups[];
extern const char *const align_config_groups[];
/* Loads the aligner of align.h5 (weights and shape) with activations for `batch` items/users, and
 * optionally its z_base (items, d). */
#include "../src/align/align.h"
int align_load(par_ctx *ctx, const char *path, int batch, align_model *m, align_acts *ai, float **z_base, size_t *n_items);
extern const char *const eval_config_groups[];

#endif
