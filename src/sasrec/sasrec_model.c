/* sasrec_model.c: SASRec as a dm_model_ops model, see sasrec_model.h. */
#include "sasrec_model.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../core/sort.h"
#include "../model/seqs.h"

#include <stdlib.h>
#include <string.h>

/* the training sequences (src/model/seqs.h, whose arrays s takes over) and a sorted copy of each */
static int trainset_init(sasrec_model *s, const dm_dataset *d, const int8_t *roles)
{
    dm_seqs q;
    DM_CALL(dm_seqs_init(&q, d, roles, 2));
    s->nu = q.n, s->user = q.user, s->off = q.off, s->items = q.items;
    DM_ALLOC(s->sorted, d->n_inter + 1);
    for (size_t k = 0; k < s->nu; k++) {
        size_t start = (size_t)s->off[k], n = dm_seqs_len(&q, k);
        memcpy(s->sorted + start, s->items + start, n * sizeof(int32_t));
        qsort(s->sorted + start, n, sizeof(int32_t), dm_cmp_i32);
    }
    return DM_OK;
}

int sasrec_model_init(sasrec_model *s, const sasrec_config *cfg, const dm_dataset *d, const int8_t *roles, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    size_t rows = (size_t)cfg->max_batch * (size_t)cfg->T;
    int rc = sasrec_init(&s->m, cfg);
    if (!rc) rc = sasrec_acts_init(&s->a, cfg);
    if (!rc && roles) rc = trainset_init(s, d, roles);
    if (!rc) {
        s->seq = malloc(3 * rows * sizeof(int32_t) + 16);
        s->states = malloc((size_t)cfg->max_batch * (size_t)cfg->C * sizeof(float) + 16);
        if (!s->seq || !s->states) rc = DM_ERR(DM_ENOMEM, "out of memory for SASRec batches of %d sequences", cfg->max_batch);
    }
    if (rc) {
        sasrec_model_free(s);
        return rc;
    }
    s->pos = s->seq + rows;
    s->neg = s->pos + rows;
    sasrec_init_weights(&s->m, seed);
    return DM_OK;
}

void sasrec_model_free(sasrec_model *s)
{
    sasrec_acts_free(&s->a);
    sasrec_free(&s->m);
    DM_FREE_ALL(s->user, s->off, s->items, s->sorted, s->seq, s->states);
    memset(s, 0, sizeof *s);
}

int64_t sasrec_model_targets(const sasrec_model *s, size_t k)
{
    int64_t len = s->off[k + 1] - s->off[k] - 1;
    return len < s->m.cfg.T ? len : s->m.cfg.T;
}

void sasrec_model_train_row(const sasrec_model *s, size_t k, uint64_t seed, uint64_t step, int64_t gidx, int32_t *seq, int32_t *pos,
                            int32_t *neg)
{
    const int T = s->m.cfg.T, n_items = s->m.cfg.n_items;
    const int32_t *it = s->items + s->off[k], *srt = s->sorted + s->off[k];
    size_t len = (size_t)(s->off[k + 1] - s->off[k]), m = (size_t)sasrec_model_targets(s, k);
    memset(seq, 0, (size_t)T * sizeof *seq);
    memset(pos, 0, (size_t)T * sizeof *pos);
    memset(neg, 0, (size_t)T * sizeof *neg);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed ^ 0x6e6567ULL, step, (uint64_t)gidx));
    int all_taken = len >= (size_t)n_items;
    for (size_t j = 0; j < m; j++) {
        size_t p = (size_t)T - m + j; /* position in the padded row */
        size_t src = len - 1 - m + j; /* input item index */
        seq[p] = it[src] + 1;
        pos[p] = it[src + 1] + 1;
        int32_t x;
        do x = (int32_t)dm_rng_below(&r, (uint64_t)n_items);
        while (!all_taken && dm_in_sorted_i32(srt, len, x));
        neg[p] = x + 1;
    }
}

void sasrec_history_row(const dm_dataset *d, const int8_t *roles, int split, size_t u, int T, int32_t *seq)
{
    memset(seq, 0, (size_t)T * sizeof *seq);
    int p = T;
    for (int64_t j = d->user_off[u + 1] - 1; j >= d->user_off[u] && p > 0; j--)
        if (roles[j] < split) seq[--p] = d->item[j] + 1;
}

int sasrec_model_states(sasrec_model *s, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *out)
{
    const int T = s->m.cfg.T, C = s->m.cfg.C, mb = s->m.cfg.max_batch;
    for (size_t b0 = 0; b0 < B; b0 += (size_t)mb) {
        int nb = (int)(B - b0 < (size_t)mb ? B - b0 : (size_t)mb);
        for (int b = 0; b < nb; b++) sasrec_history_row(d, roles, split, users[b0 + (size_t)b], T, s->seq + (size_t)b * (size_t)T);
        DM_CALL(sasrec_user_states(&s->m, &s->a, s->seq, nb, out + b0 * (size_t)C));
    }
    return DM_OK;
}

size_t sasrec_model_score_batch(const dm_cfg *cfg) { return (size_t)dm_cfg_int(cfg, "sasrec.eval_batch"); }

/* ---- the model interface (src/model/model.h) ---- */

static const char *const g_groups[] = {"sasrec", NULL};

DM_MODEL_LIFECYCLE(sasrec_model, sasrec_config, sasrec_model_init, sasrec_model_free)

static int ops_create(void **self, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, int max_batch, uint64_t seed)
{
    sasrec_config c;
    DM_CALL(sasrec_config_from(cfg, (int)d->n_items, max_batch, &c));
    return model_new(self, &c, d, roles, seed);
}

static float *ops_params(void *self, size_t *n)
{
    sasrec *m = &((sasrec_model *)self)->m;
    *n = m->nparams;
    return m->params_mem;
}

static float *ops_grads(void *self, size_t *n)
{
    sasrec *m = &((sasrec_model *)self)->m;
    *n = m->nparams;
    return m->grads_mem;
}

static float *ops_opt(void *self, size_t *n)
{
    sasrec *m = &((sasrec_model *)self)->m;
    *n = 2 * m->nparams;
    return m->m_mem;
}

static long *ops_steps(void *self) { return &((sasrec_model *)self)->m.step; }
static size_t ops_n_examples(void *self) { return ((sasrec_model *)self)->nu; }

static double ops_norm(void *self, const size_t *ex, size_t n)
{
    int64_t t = 0;
    for (size_t k = 0; k < n; k++) t += sasrec_model_targets(self, ex[k]);
    return (double)t;
}

static int ops_grad(void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double norm, double *loss)
{
    sasrec_model *s = self;
    const size_t T = (size_t)s->m.cfg.T;
    if (n > (size_t)s->m.cfg.max_batch)
        return DM_ERR(DM_EINTERNAL, "sasrec: a share of %zu sequences exceeds max_batch = %d", n, s->m.cfg.max_batch);
    for (size_t b = 0; b < n; b++) sasrec_model_train_row(s, ex[b], seed, step, gidx[b], s->seq + b * T, s->pos + b * T, s->neg + b * T);
    sasrec_batch bt = {(int)n, s->seq, s->pos, s->neg, gidx, norm, seed, step, 1, NULL};
    return sasrec_train_step(&s->m, &s->a, &bt, loss);
}

/* The key bias cannot change any attention output (it adds q.b_k to every score of a query, which
 * the softmax cancels), so its exact gradient is zero and the computed one is rounding noise; Adam
 * would turn that noise into lr-sized steps that differ with the summation order, i.e. with the rank
 * count. Use the exact zero. */
static void ops_after_reduce(void *self)
{
    sasrec *m = &((sasrec_model *)self)->m;
    const size_t C = (size_t)m->cfg.C;
    for (int l = 0; l < m->cfg.L; l++) memset(m->grads.qkvb + (size_t)l * 3 * C + C, 0, C * sizeof(float));
}

static void ops_step(void *self) { sasrec_adam_step(&((sasrec_model *)self)->m); }

static int ops_score(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    sasrec_model *s = self;
    const size_t n = d->n_items, mb = (size_t)s->m.cfg.max_batch;
    for (size_t b0 = 0; b0 < B; b0 += mb) {
        size_t nb = B - b0 < mb ? B - b0 : mb;
        DM_CALL(sasrec_model_states(s, d, roles, split, users + b0, nb, s->states));
        /* items 1..n of the model are dense items 0..n-1 */
        sasrec_scores_block(&s->m, s->states, (int)nb, 1, (int)n + 1, scores + b0 * n);
    }
    return DM_OK;
}

static int ops_score_items(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B,
                           const int32_t *items, size_t n, float *scores)
{
    sasrec_model *s = self;
    const size_t mb = (size_t)s->m.cfg.max_batch;
    int32_t *it = malloc(mb * n * sizeof *it + 4);
    if (!it) return DM_ERR(DM_ENOMEM, "out of memory for %zu candidates", mb * n);
    int rc = DM_OK;
    for (size_t b0 = 0; b0 < B && !rc; b0 += mb) {
        size_t nb = B - b0 < mb ? B - b0 : mb;
        rc = sasrec_model_states(s, d, roles, split, users + b0, nb, s->states);
        /* items 1..n of the model are dense items 0..n-1 */
        for (size_t k = 0; k < nb * n; k++) it[k] = items[b0 * n + k] + 1;
        if (!rc) sasrec_scores_items(&s->m, s->states, (int)nb, it, (int)n, scores + b0 * n);
    }
    free(it);
    return rc;
}

static int ops_tensor(void *self, int k, const char **tname, size_t *rows, size_t *cols, float **data)
{
    sasrec *m = &((sasrec_model *)self)->m;
    if (k < 0 || k >= SASREC_NTENSORS) return 0;
    int nd;
    size_t shape[3], n = sasrec_tensor_info(&m->cfg, k, tname, &nd, shape);
    *rows = shape[0];
    *cols = nd == 1 ? 0 : n / shape[0];
    *data = m->params_mem + m->offset[k];
    return 1;
}

const dm_model_ops sasrec_model_ops = {
    .name = "sasrec",
    .label = "SASRec",
    .groups = g_groups,
    .seed_key = 0x5A5,
    .loss_is_mean = 1,
    .score_batch = sasrec_model_score_batch,
    .examples = "training users",
    .create = ops_create,
    .destroy = model_destroy,
    .params = ops_params,
    .grads = ops_grads,
    .opt_state = ops_opt,
    .opt_steps = ops_steps,
    .n_examples = ops_n_examples,
    .batch_norm = ops_norm,
    .grad = ops_grad,
    .after_reduce = ops_after_reduce,
    .step = ops_step,
    .score = ops_score,
    .score_items = ops_score_items,
    .tensor = ops_tensor,
};
