/* lightgcn_model.c: LightGCN as a dm_model_ops model (src/model/model.h), see lightgcn.h.
 * Examples are the training interactions, one sampled negative each; a batch's normaliser is its
 * triple count. */
#include "lightgcn.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

static const char *const g_groups[] = {"lightgcn", NULL};

DM_MODEL_SLAB_OPS(lightgcn_model)
DM_MODEL_LIFECYCLE(lightgcn_model, lightgcn_config, lightgcn_init, lightgcn_free)

static int ops_create(void **self, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, int max_batch, uint64_t seed)
{
    (void)max_batch;
    lightgcn_config c = {(int)d->n_users,
                         (int)d->n_items,
                         (int)dm_cfg_int(cfg, "lightgcn.dim"),
                         (int)dm_cfg_int(cfg, "lightgcn.layers"),
                         (float)dm_cfg_float(cfg, "lightgcn.reg"),
                         (float)dm_cfg_float(cfg, "lightgcn.lr"),
                         (float)dm_cfg_float(cfg, "lightgcn.beta1"),
                         (float)dm_cfg_float(cfg, "lightgcn.beta2"),
                         (float)dm_cfg_float(cfg, "lightgcn.eps")};
    return model_new(self, &c, d, roles, seed);
}

static size_t ops_n_examples(void *self) { return ((lightgcn_model *)self)->n_ex; }

static int ops_grad(void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double norm, double *loss)
{
    lightgcn_model *m = self;
    int32_t *tr;
    DM_ALLOC(tr, 3 * n + 1);
    for (size_t k = 0; k < n; k++) {
        tr[k] = m->ex_u[ex[k]];
        tr[n + k] = m->ex_i[ex[k]];
        tr[2 * n + k] = lightgcn_negative(m, ex[k], seed, step, gidx[k]);
    }
    int rc = lightgcn_grad_triples(m, tr, tr + n, tr + 2 * n, n, norm, loss);
    free(tr);
    return rc;
}

static void ops_step(void *self) { lightgcn_adam_step(self); }

static int ops_score(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    (void)d;
    (void)roles;
    (void)split;
    return lightgcn_scores(self, users, B, scores);
}

static int ops_tensor(void *self, int k, const char **tname, size_t *rows, size_t *cols, float **data)
{
    lightgcn_model *m = self;
    if (k < 0 || k > 1) return 0;
    *tname = k == 0 ? "user" : "item";
    *rows = (size_t)(k == 0 ? m->cfg.n_users : m->cfg.n_items);
    *cols = (size_t)m->cfg.d;
    *data = m->params + (k == 0 ? 0 : (size_t)m->cfg.n_users * (size_t)m->cfg.d);
    return 1;
}

const dm_model_ops lightgcn_model_ops = {
    .name = "lightgcn",
    .label = "LightGCN",
    .groups = g_groups,
    .create = ops_create,
    .destroy = model_destroy,
    DM_MODEL_SLAB_MEMBERS,
    .n_examples = ops_n_examples,
    .batch_norm = dm_model_count_norm,
    .grad = ops_grad,
    .after_reduce = NULL,
    .step = ops_step,
    .score = ops_score,
    .tensor = ops_tensor,
};
