/* stage_train_cf.c: `dynmm train-cf`: the collaborative-filtering models of cf.models into cf.h5. */
#include "cands.h"
#include "dataset_io.h"
#include "models.h"
#include "stage.h"

#include "../src/core/err.h"

#include <string.h>

#define CF_FORMAT "dynmm-cf"

static const char USAGE[] =
    "usage: dynmm train-cf CONFIG.cfg [--set group.key=value ...] [--resume]\n\n"
    "Trains the models of cf.models on the training split of <run.dir>/dataset.h5 (split.protocol) and\n"
    "writes <run.dir>/cf.h5:\n"
    "  pop     train-set popularity                      /pop/count\n"
    "  ease    EASE, Gram inverse with ScaLAPACK         /ease/B (items x items)\n"
    "  sasrec  SASRec, data parallel over users          /sasrec/weights, /sasrec/e_cf (items x d),\n"
    "          /sasrec/state_valid and /sasrec/state_test (users x d), /sasrec/curve\n"
    "  <model> any model of the registry written against src/model/model.h, trained by the generic\n"
    "          trainer: /<model>/weights/<tensor>, /<model>/curve\n"
    "SASRec and the generic models train through the same trainer: each keeps the weights of its best\n"
    "validation round (<model>.select_metric under <model>.select_protocol); the test split is not read.\n"
    "An interrupted run (a kill, or SIGTERM/SIGUSR1 from Slurm) continues from <run.dir>/ckpt_<model>.h5\n"
    "when rerun (run.resume = true, the default).\n";

/* the groups of the models listed in cf.models join these (stage.h: models_key) */
static const char *const cf_config_groups[] = {"cf", "split.protocol", "eval.seed", "eval.pop_power", NULL};

static int check_train_cf(const dm_cfg *cfg)
{
    char w[256];
    for (size_t k = 0; k < dm_cfg_len(cfg, "cf.models"); k++) {
        const char *mname = dm_cfg_str_at(cfg, "cf.models", k);
        const model_def *m = model_find(mname);
        if (!m || (!m->train && !m->ops)) {
            DM_ERR(DM_ECONFIG, "%s: %s model '%s'", dm_cfg_where(cfg, "cf.models", w, sizeof w), m ? "train-cf does not train the" : "unknown", mname);
            DM_HINT("cf.models takes %s", model_names(1));
            return DM_ECONFIG;
        }
        for (size_t j = 0; j < k; j++)
            if (!strcmp(dm_cfg_str_at(cfg, "cf.models", j), mname)) {
                DM_ERR(DM_ECONFIG, "%s lists '%s' twice", dm_cfg_where(cfg, "cf.models", w, sizeof w), mname);
                return DM_ECONFIG;
            }
        DM_CALL(model_check(m, cfg));
    }
    return DM_OK;
}

static int stage_train_cf(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    DM_CALL(par_agree(ctx, check_train_cf(cfg)));
    dm_dataset d;
    DM_CALL(ds_read(ctx, stage_input(sr, "dataset.h5"), &d));
    const int8_t *roles = NULL;
    int rc = par_agree(ctx, cands_split(cfg, &d, &roles));
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = stage_output_create(sr, CF_FORMAT, 1, &f);
    if (!rc) rc = h5_attr_i64(&f, "/", "n_users", (int64_t)d.n_users);
    if (!rc) rc = h5_attr_i64(&f, "/", "n_items", (int64_t)d.n_items);
    if (!rc) rc = h5_attr_str(&f, "/", "split", dm_cfg_str(cfg, "split.protocol"));
    model_train_args t = {ctx, cfg, &d, roles, sr->hash, &f};
    for (size_t k = 0; !rc && k < dm_cfg_len(cfg, "cf.models"); k++) rc = model_train(model_find(dm_cfg_str_at(cfg, "cf.models", k)), &t);
    rc = stage_output_finish(sr, &f, rc);
    dm_dataset_free(&d);
    return rc;
}

static int prepare(dm_cfg *cfg, const char *const *args, int nargs)
{
    for (int i = 0; i < nargs; i++) {
        if (!strcmp(args[i], "--resume")) DM_CALL(dm_cfg_set(cfg, "run.resume=true"));
        else return DM_ERR(DM_ECONFIG, "train-cf: unexpected argument '%s'", args[i]);
    }
    return DM_OK;
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_train_cf_def = {
    .name = "train-cf",
    .output = "cf.h5",
    .inputs = {"dataset.h5", NULL},
    .groups = cf_config_groups,
    .models_key = "cf.models",
    .check = check_train_cf,
    .run = stage_train_cf,
    .prepare = prepare,
    .summary = "train the collaborative-filtering models (SASRec, EASE, popularity) into cf.h5",
    .usage = USAGE,
};
