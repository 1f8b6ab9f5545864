/* cf_sasrec.c: SASRec in train-cf and for the stages built on it, see cf_sasrec.h. */
#include "cf_sasrec.h"

#include "trainer.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/shard.h"
#include "../src/sasrec/sasrec_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the user states of the histories of split, users sharded over the ranks, into dataset `name` */
static int write_states(par_ctx *ctx, sasrec_model *s, const dm_dataset *d, const int8_t *roles, int split, h5file *f, const char *name)
{
    size_t lo, hi, C = (size_t)s->m.cfg.C, mb = (size_t)s->m.cfg.max_batch;
    dm_shard_even(d->n_users, ctx->size, ctx->rank, &lo, &hi);
    float *st = malloc((hi - lo + 1) * C * sizeof *st);
    size_t *users = malloc((mb + 1) * sizeof *users);
    int rc = st && users ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory for SASRec user states");
    for (size_t u0 = lo; u0 < hi && !rc; u0 += mb) {
        size_t nb = hi - u0 < mb ? hi - u0 : mb;
        for (size_t b = 0; b < nb; b++) users[b] = u0 + b;
        rc = sasrec_model_states(s, d, roles, split, users, nb, st + (u0 - lo) * C);
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = h5_write_rows(f, name, H5_F32, d->n_users, C, lo, hi - lo, st);
    free(st);
    free(users);
    return rc;
}

/* what cf.h5 holds of SASRec beyond trainer_write's: e_cf, the user states, the shape attributes */
static int write_extras(par_ctx *ctx, const dm_cfg *cfg, sasrec_model *s, const dm_dataset *d, const int8_t *roles, h5file *f)
{
    const sasrec_config *c = &s->m.cfg;
    float *e = malloc(d->n_items * (size_t)c->C * sizeof *e + 4);
    int rc = e ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    if (!rc) {
        sasrec_item_table(&s->m, e);
        rc = h5_write_all(f, "/sasrec/e_cf", H5_F32, d->n_items, (size_t)c->C, e);
    }
    free(e);
    rc = par_agree(ctx, rc);
    if (!rc) rc = write_states(ctx, s, d, roles, DM_VALID, f, "/sasrec/state_valid");
    if (!rc) rc = write_states(ctx, s, d, roles, DM_TEST, f, "/sasrec/state_test");
    if (!rc) rc = h5_attr_str(f, "/sasrec", "select_metric", dm_cfg_str(cfg, "sasrec.select_metric"));
    if (!rc) rc = h5_attr_i64(f, "/sasrec", "hidden", c->C);
    if (!rc) rc = h5_attr_i64(f, "/sasrec", "maxlen", c->T);
    if (!rc) rc = h5_attr_i64(f, "/sasrec", "blocks", c->L);
    if (!rc) rc = h5_attr_i64(f, "/sasrec", "heads", c->H);
    if (!rc) rc = h5_attr_i64(f, "/sasrec", "ffn", c->F);
    if (!rc) rc = h5_attr_str(f, "/sasrec", "norm", dm_cfg_str(cfg, "sasrec.norm"));
    return par_agree(ctx, rc);
}

int cf_sasrec_train(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const char *stage_hash, h5file *f)
{
    dm_log("  sasrec: %zu items, d=%lld, T=%lld, %lld blocks, %lld heads, %s norm, %s loss", d->n_items, dm_cfg_int(cfg, "sasrec.hidden"),
           dm_cfg_int(cfg, "sasrec.maxlen"), dm_cfg_int(cfg, "sasrec.blocks"), dm_cfg_int(cfg, "sasrec.heads"), dm_cfg_str(cfg, "sasrec.norm"),
           dm_cfg_str(cfg, "sasrec.loss"));
    trainer_opts o = {stage_hash, 0, 1};
    trainer_run t;
    int rc = trainer_fit(ctx, cfg, d, roles, &sasrec_model_ops, &o, &t);
    if (!rc) rc = trainer_write(ctx, &t, f);
    if (!rc) rc = write_extras(ctx, cfg, t.self, d, roles, f);
    trainer_run_free(&t);
    return rc;
}

int cf_sasrec_retrain(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, long epochs, sasrec *m, sasrec_acts *a)
{
    memset(m, 0, sizeof *m);
    memset(a, 0, sizeof *a);
    trainer_opts o = {NULL, epochs, 2};
    trainer_run t;
    int rc = trainer_fit(ctx, cfg, d, roles, &sasrec_model_ops, &o, &t);
    if (!rc) {
        /* hand the model and its activations over; the rest goes with the run */
        sasrec_model *s = t.self;
        *m = s->m;
        *a = s->a;
        memset(&s->m, 0, sizeof s->m);
        memset(&s->a, 0, sizeof s->a);
    }
    trainer_run_free(&t);
    return rc;
}

/* the sasrec config a file was trained with: the sasrec.* keys of the config stored in it */
static int stored_config(h5file *f, const char *path, size_t n_items, int max_batch, sasrec_config *sc)
{
    char *text = NULL;
    dm_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = h5_get_attr_str(f, "/", "config", &text);
    if (!rc) rc = dm_cfg_init(&cfg);
    if (!rc) rc = dm_cfg_load_string(&cfg, text, path);
    if (!rc) rc = sasrec_config_from(&cfg, (int)n_items, max_batch, sc);
    free(text);
    if (cfg.v) dm_cfg_free(&cfg);
    return rc;
}

int cf_sasrec_load(par_ctx *ctx, const char *path, size_t n_items, int max_batch, sasrec *m, sasrec_acts *a)
{
    memset(m, 0, sizeof *m);
    memset(a, 0, sizeof *a);
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    sasrec_config sc;
    int rc = h5_check_format(&f, "dynmm-cf", 1);
    if (!rc && !h5_exists(&f, "/sasrec/weights")) {
        rc = DM_ERR(DM_EFORMAT, "'%s' holds no SASRec model", path);
        DM_HINT("add sasrec to cf.models and rerun train-cf");
    }
    if (!rc) rc = stored_config(&f, path, n_items, max_batch, &sc);
    if (!rc) rc = sasrec_init(m, &sc);
    if (!rc) rc = sasrec_acts_init(a, &sc);
    for (int k = 0; k < SASREC_NTENSORS && !rc; k++) {
        const char *name;
        int nd;
        size_t shape[3];
        size_t n = sasrec_tensor_info(&m->cfg, k, &name, &nd, shape);
        char nm[128];
        snprintf(nm, sizeof nm, "/sasrec/weights/%s", name);
        size_t r, c;
        rc = h5_shape(&f, nm, &r, &c, NULL);
        if (!rc && r * (c ? c : 1) != n) rc = DM_ERR(DM_EFORMAT, "'%s': %s has %zu values, the model needs %zu", path, nm, r * (c ? c : 1), n);
        if (!rc) rc = h5_read_rows(&f, nm, H5_F32, 0, r, m->params_mem + m->offset[k]);
    }
    h5_close(&f);
    rc = par_agree(ctx, rc);
    if (rc) {
        sasrec_acts_free(a);
        sasrec_free(m);
    }
    return rc;
}

int cf_sasrec_states(sasrec *m, sasrec_acts *a, const int32_t *seq, int B, float *out)
{
    return sasrec_user_states(m, a, seq, B, out);
}
