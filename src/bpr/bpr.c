/* bpr.c: BPR-MF, see bpr.h. */
#include "bpr.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../model/pairs.h"
#include "../nn/gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bpr_init(bpr_model *m, const bpr_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    if (c->n_users < 1 || c->n_items < 2 || c->d < 1)
        return DM_ERR(DM_ECONFIG, "bpr: %d users, %d items, dimension %d; needs users, two items and d >= 1", c->n_users, c->n_items, c->d);
    m->cfg = *c;
    m->nparams = ((size_t)c->n_users + (size_t)c->n_items) * (size_t)c->d;
    DM_ALLOC(m->params, m->nparams);
    DM_ALLOC(m->grads, m->nparams);
    DM_ALLOC(m->opt, 2 * m->nparams);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0xB9A, 0));
    for (size_t k = 0; k < m->nparams; k++) m->params[k] = (float)(c->init_std * dm_rng_normal(&r));
    return dm_pairs_init(d, roles, (size_t)c->n_users, &m->n_ex, &m->ex_u, &m->ex_i, &m->u_off, &m->u_items);
}

void bpr_free(bpr_model *m)
{
    DM_FREE_ALL(m->params, m->grads, m->opt, m->ex_u, m->ex_i, m->u_off, m->u_items);
    memset(m, 0, sizeof *m);
}

int32_t bpr_negative(const bpr_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx)
{
    return dm_pairs_negative(m->u_off, m->u_items, m->ex_u[k], m->cfg.n_items, dm_rng_key(seed ^ 0xB9B, step, (uint64_t)gidx));
}

int bpr_grad_triples(bpr_model *m, const int32_t *u, const int32_t *i, const int32_t *j, size_t n, double norm, double *loss)
{
    const size_t d = (size_t)m->cfg.d;
    const float reg = m->cfg.reg, inv = (float)(1.0 / norm);
    float *V = m->params + (size_t)m->cfg.n_users * d, *dV = m->grads + (size_t)m->cfg.n_users * d;
    double ls = 0;
    /* serial: rows of different triples may coincide, and the sum's order stays fixed */
    for (size_t k = 0; k < n; k++) {
        const float *pu = m->params + (size_t)u[k] * d, *pi = V + (size_t)i[k] * d, *pj = V + (size_t)j[k] * d;
        float *gu = m->grads + (size_t)u[k] * d, *gi = dV + (size_t)i[k] * d, *gj = dV + (size_t)j[k] * d;
        float g;
        ls += dm_pairs_bpr_loss(pu, pi, pj, pu, pi, pj, d, reg, inv, &g);
        for (size_t c = 0; c < d; c++) {
            float a = pu[c], b = pi[c], e = pj[c];
            gu[c] += g * (b - e) + reg * inv * a;
            gi[c] += g * a + reg * inv * b;
            gj[c] += -g * a + reg * inv * e;
        }
    }
    if (loss) *loss = ls;
    return isfinite(ls) ? DM_OK : DM_ERR(DM_ENUM, "bpr: the loss is not finite (%g); lower bpr.lr", ls);
}

void bpr_adam_step(bpr_model *m) { DM_MODEL_ADAM_STEP(m); }

void bpr_scores(const bpr_model *m, const size_t *users, size_t B, float *scores, float *urows)
{
    const size_t d = (size_t)m->cfg.d, n = (size_t)m->cfg.n_items;
    const float *V = m->params + (size_t)m->cfg.n_users * d;
    for (size_t b = 0; b < B; b++) memcpy(urows + b * d, m->params + users[b] * d, d * sizeof *urows);
    nn_sgemm(CblasNoTrans, CblasTrans, (int)B, (int)n, (int)d, 1.0f, urows, (int)d, V, (int)d, 0.0f, scores, (int)n);
}

/* ---- the model interface (src/model/model.h) ---- */

static const char *const g_groups[] = {"bpr", NULL};

DM_MODEL_SLAB_OPS(bpr_model)
DM_MODEL_LIFECYCLE(bpr_model, bpr_config, bpr_init, bpr_free)

static int ops_create(void **self, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, int max_batch, uint64_t seed)
{
    (void)max_batch;
    bpr_config c = {(int)d->n_users,
                    (int)d->n_items,
                    (int)dm_cfg_int(cfg, "bpr.dim"),
                    (float)dm_cfg_float(cfg, "bpr.reg"),
                    (float)dm_cfg_float(cfg, "bpr.init_std"),
                    (float)dm_cfg_float(cfg, "bpr.lr"),
                    (float)dm_cfg_float(cfg, "bpr.beta1"),
                    (float)dm_cfg_float(cfg, "bpr.beta2"),
                    (float)dm_cfg_float(cfg, "bpr.eps")};
    return model_new(self, &c, d, roles, seed);
}

static size_t ops_n_examples(void *self) { return ((bpr_model *)self)->n_ex; }

static int ops_grad(void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double norm, double *loss)
{
    bpr_model *m = self;
    int32_t *u, *i, *j;
    DM_ALLOC(u, n + 1);
    DM_ALLOC(i, n + 1);
    DM_ALLOC(j, n + 1);
    for (size_t k = 0; k < n; k++) {
        u[k] = m->ex_u[ex[k]];
        i[k] = m->ex_i[ex[k]];
        j[k] = bpr_negative(m, ex[k], seed, step, gidx[k]);
    }
    int rc = bpr_grad_triples(m, u, i, j, n, norm, loss);
    free(u);
    free(i);
    free(j);
    return rc;
}

static void ops_step(void *self) { bpr_adam_step(self); }

static int ops_score(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    (void)d;
    (void)roles;
    (void)split;
    bpr_model *m = self;
    float *urows;
    DM_ALLOC(urows, B * (size_t)m->cfg.d + 1);
    bpr_scores(m, users, B, scores, urows);
    free(urows);
    return DM_OK;
}

static int ops_tensor(void *self, int k, const char **tname, size_t *rows, size_t *cols, float **data)
{
    bpr_model *m = self;
    size_t d = (size_t)m->cfg.d;
    if (k == 0) {
        *tname = "user";
        *rows = (size_t)m->cfg.n_users;
        *data = m->params;
    } else if (k == 1) {
        *tname = "item";
        *rows = (size_t)m->cfg.n_items;
        *data = m->params + (size_t)m->cfg.n_users * d;
    } else
        return 0;
    *cols = d;
    return 1;
}

const dm_model_ops bpr_model_ops = {
    .name = "bpr",
    .label = "BPR-MF",
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
