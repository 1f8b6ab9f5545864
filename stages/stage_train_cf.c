/* cmd_train_cf.c: `dynmm train-cf`: the collaborative-filtering models of cf.models into cf.h5. */
#include "cands.h"
#include "cf_sasrec.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "ease.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CF_FORMAT "dynmm-cf"

static const char USAGE[] =
    "usage: dynmm train-cf CONFIG.cfg [--set group.key=value ...] [--resume]\n\n"
    "Trains the models of cf.models on the training split of <run.dir>/dataset.h5 (split.protocol) and\n"
    "writes <run.dir>/cf.h5:\n"
    "  pop     train-set popularity                      /pop/count\n"
    "  ease    EASE, Gram inverse with ScaLAPACK         /ease/B (items x items)\n"
    "  sasrec  SASRec, data parallel over users          /sasrec/weights, /sasrec/e_cf (items x d),\n"
    "          /sasrec/state_valid and /sasrec/state_test (users x d), /sasrec/curve\n"
    "SASRec keeps the weights of its best validation round (sasrec.select_metric under\n"
    "sasrec.select_protocol); the test split is not read. An interrupted run (a kill, or SIGTERM/SIGUSR1\n"
    "from Slurm) continues from <run.dir>/ckpt_sasrec.h5 when rerun (run.resume = true, the default).\n";

static const char *const cf_config_groups[] = {"cf", "sasrec", "ease", "split.protocol", "eval.seed", "eval.pop_power", NULL};

static int has_model(const dm_cfg *cfg, const char *name)
{
    for (size_t k = 0; k < dm_cfg_len(cfg, "cf.models"); k++)
        if (!strcmp(dm_cfg_str_at(cfg, "cf.models", k), name)) return 1;
    return 0;
}

static int check_train_cf(const dm_cfg *cfg)
{
    char w[256];
    for (size_t k = 0; k < dm_cfg_len(cfg, "cf.models"); k++) {
        const char *mname = dm_cfg_str_at(cfg, "cf.models", k);
        if (strcmp(mname, "pop") && strcmp(mname, "ease") && strcmp(mname, "sasrec")) {
            DM_ERR(DM_ECONFIG, "%s: unknown model '%s'", dm_cfg_where(cfg, "cf.models", w, sizeof w), mname);
            DM_HINT("cf.models takes pop, ease and sasrec");
            return DM_ECONFIG;
        }
    }
    if (has_model(cfg, "sasrec")) {
        long long hd = dm_cfg_int(cfg, "sasrec.hidden"), nh = dm_cfg_int(cfg, "sasrec.heads");
        if (hd % nh) {
            DM_ERR(DM_ECONFIG, "%s = %lld does not divide sasrec.hidden = %lld", dm_cfg_where(cfg, "sasrec.heads", w, sizeof w), nh, hd);
            DM_HINT("the heads split the hidden width evenly; e.g. sasrec.heads = 1 or 2 for hidden 50");
            return DM_ECONFIG;
        }
        char kind;
        size_t n;
        DM_CALL(cands_parse(dm_cfg_str(cfg, "sasrec.select_protocol"), &kind, &n));
    }
    return DM_OK;
}

static int stage_train_cf(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    DM_CALL(check_train_cf(cfg));
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
    if (!rc && has_model(cfg, "pop")) {
        double *cnt = calloc(d.n_items + 1, sizeof *cnt);
        if (!cnt) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < d.n_inter; i++)
            if (roles[i] == DM_TRAIN) cnt[d.item[i]] += 1.0;
        if (!rc) rc = h5_write_all(&f, "/pop/count", H5_F64, d.n_items, 0, cnt);
        free(cnt);
        dm_log("  pop: train-set counts of %zu items", d.n_items);
    }
    rc = par_agree(ctx, rc);
    if (!rc && has_model(cfg, "ease")) {
        size_t lo, hi;
        ds_user_block(ctx, &d, &lo, &hi);
        rc = ease_fit_write(ctx, &d, roles, lo, hi, dm_cfg_float(cfg, "ease.lambda"), (int)dm_cfg_int(cfg, "ease.block"), &f);
    }
    if (!rc && has_model(cfg, "sasrec")) rc = cf_sasrec_train(ctx, cfg, &d, roles, sr->hash, &f);
    rc = stage_output_finish(sr, &f, rc);
    if (!rc) {
        char ck[4096];
        if (cli_run_path(ctx, cfg, "ckpt_sasrec.h5", ck, sizeof ck) == DM_OK && ctx->rank == 0) unlink(ck);
    }
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
    .uses = NULL,
    .check = check_train_cf,
    .run = stage_train_cf,
    .prepare = prepare,
    .summary = "train the collaborative-filtering models (SASRec, EASE, popularity) into cf.h5",
    .usage = USAGE,
};
