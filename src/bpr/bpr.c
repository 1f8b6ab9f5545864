/* bpr.c: BPR-MF, see bpr.h. */
#include "bpr.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../core/sort.h"
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
    size_t d_ = (size_t)c->d;
    m->nparams = ((size_t)c->n_users + (size_t)c->n_items) * d_;
    DM_ALLOC(m->params, m->nparams);
    DM_ALLOC(m->grads, m->nparams);
    DM_ALLOC(m->opt, 2 * m->nparams);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0xB9A, 0));
    for (size_t k = 0; k < m->nparams; k++) m->params[k] = (float)(c->init_std * dm_rng_normal(&r));
    /* the training interactions, and each user's training items sorted */
    DM_ALLOC(m->u_off, (size_t)c->n_users + 1);
    size_t n = 0;
    for (size_t i = 0; i < d->n_inter; i++) n += roles[i] == DM_TRAIN;
    DM_ALLOC(m->ex_u, n + 1);
    DM_ALLOC(m->ex_i, n + 1);
    DM_ALLOC(m->u_items, n + 1);
    for (size_t u = 0; u < d->n_users; u++) {
        int64_t s = (int64_t)m->n_ex;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
            if (roles[j] != DM_TRAIN) continue;
            m->ex_u[m->n_ex] = (int32_t)u;
            m->ex_i[m->n_ex] = d->item[j];
            m->u_items[m->n_ex++] = d->item[j];
        }
        qsort(m->u_items + s, m->n_ex - (size_t)s, sizeof(int32_t), dm_cmp_i32);
        m->u_off[u + 1] = (int64_t)m->n_ex;
    }
    return DM_OK;
}

void bpr_free(bpr_model *m)
{
    free(m->params);
    free(m->grads);
    free(m->opt);
    free(m->ex_u);
    free(m->ex_i);
    free(m->u_off);
    free(m->u_items);
    memset(m, 0, sizeof *m);
}

int32_t bpr_negative(const bpr_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx)
{
    int32_t u = m->ex_u[k];
    const int32_t *own = m->u_items + m->u_off[u];
    size_t n_own = (size_t)(m->u_off[u + 1] - m->u_off[u]);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed ^ 0xB9B, step, (uint64_t)gidx));
    int all_taken = n_own >= (size_t)m->cfg.n_items;
    int32_t j;
    do j = (int32_t)dm_rng_below(&r, (uint64_t)m->cfg.n_items);
    while (!all_taken && dm_in_sorted_i32(own, n_own, j));
    return j;
}

/* log(1 + exp(-x)), stable for both signs */
static double softplus_neg(double x) { return x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }

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
        double x = 0, sq = 0;
        for (size_t c = 0; c < d; c++) {
            x += (double)pu[c] * ((double)pi[c] - (double)pj[c]);
            sq += (double)pu[c] * pu[c] + (double)pi[c] * pi[c] + (double)pj[c] * pj[c];
        }
        ls += softplus_neg(x) + 0.5 * reg * sq;
        float g = (float)(-1.0 / (1.0 + exp(x))) * inv; /* -sigmoid(-x) / norm */
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

void bpr_adam_step(bpr_model *m)
{
    const bpr_config *c = &m->cfg;
    m->t++;
    float *mo = m->opt, *ve = m->opt + m->nparams;
    const float b1 = c->beta1, b2 = c->beta2;
    const double bc1 = 1.0 - pow(b1, (double)m->t), bc2 = 1.0 - pow(b2, (double)m->t);
    const float step = (float)(c->lr / bc1), sb2 = (float)sqrt(bc2);
    for (size_t k = 0; k < m->nparams; k++) {
        float g = m->grads[k];
        mo[k] = b1 * mo[k] + (1.0f - b1) * g;
        ve[k] = b2 * ve[k] + (1.0f - b2) * g * g;
        m->params[k] -= step * mo[k] / (sqrtf(ve[k]) / sb2 + c->eps);
    }
}

void bpr_scores(const bpr_model *m, const size_t *users, size_t B, float *scores, float *urows)
{
    const size_t d = (size_t)m->cfg.d, n = (size_t)m->cfg.n_items;
    const float *V = m->params + (size_t)m->cfg.n_users * d;
    for (size_t b = 0; b < B; b++) memcpy(urows + b * d, m->params + users[b] * d, d * sizeof *urows);
    nn_sgemm(CblasNoTrans, CblasTrans, (int)B, (int)n, (int)d, 1.0f, urows, (int)d, V, (int)d, 0.0f, scores, (int)n);
}

/* ---- the model interface (src/model/model.h) ---- */

static const char *const g_groups[] = {"bpr", NULL};

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
    bpr_model *m;
    DM_ALLOC(m, 1);
    int rc = bpr_init(m, &c, d, roles, seed);
    if (rc) {
        bpr_free(m);
        free(m);
        return rc;
    }
    *self = m;
    return DM_OK;
}

static void ops_destroy(void *self)
{
    bpr_free(self);
    free(self);
}

DM_MODEL_SLAB_OPS(bpr_model)
static size_t ops_n_examples(void *self) { return ((bpr_model *)self)->n_ex; }

static double ops_norm(void *self, const size_t *ex, size_t n)
{
    (void)self;
    (void)ex;
    return (double)n;
}

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
    .destroy = ops_destroy,
    .params = model_params,
    .grads = model_grads,
    .opt_state = model_opt,
    .opt_steps = model_steps,
    .n_examples = ops_n_examples,
    .batch_norm = ops_norm,
    .grad = ops_grad,
    .after_reduce = NULL,
    .step = ops_step,
    .score = ops_score,
    .tensor = ops_tensor,
};
