/* bert4rec_model.c: BERT4Rec as a dm_model_ops model (src/model/model.h), see bert4rec.h.
 * Examples are the training users with at least two training items; a batch's normaliser is its
 * count of masked positions. */
#include "bert4rec.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

static const char *const g_groups[] = {"bert4rec", NULL};

DM_MODEL_SLAB_OPS(bert4rec_model)
DM_MODEL_LIFECYCLE(bert4rec_model, bert4rec_config, bert4rec_init, bert4rec_free)

static int ops_create(void **self, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, int max_batch, uint64_t seed)
{
    bert4rec_config c;
    DM_CALL(bert4rec_config_from(cfg, (int)d->n_items, max_batch, &c));
    return model_new(self, &c, d, roles, seed);
}

/* the shape the keys ask for, before any data is read */
static int ops_check(const dm_cfg *cfg)
{
    bert4rec_config c;
    return bert4rec_config_from(cfg, 1, 1, &c);
}

static size_t ops_n_examples(void *self) { return ((bert4rec_model *)self)->seqs.n; }

static int64_t targets(const void *self, size_t k) { return bert4rec_targets(self, k); }
static double ops_norm(void *self, const size_t *ex, size_t n) { return dm_model_count_sum(self, ex, n, targets); }

static int ops_grad(void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double norm, double *loss)
{
    bert4rec_model *m = self;
    bert4rec_acts *a = &m->a;
    const size_t T = (size_t)m->cfg.T;
    const int drop = m->cfg.dropout > 0;
    if (n > (size_t)m->cfg.max_batch)
        return DM_ERR(DM_EINTERNAL, "bert4rec: a share of %zu sequences exceeds max_batch = %d", n, m->cfg.max_batch);
    for (size_t b = 0; b < n; b++) a->len[b] = bert4rec_train_row(m, ex[b], seed, step, gidx[b], a->seq + b * T, a->tgt + b * T);
    DM_CALL(bert4rec_pack(m, (int)n));
    for (size_t b = 0; drop && b < n; b++) bert4rec_draw_dropout(m, (int)b, seed, step, gidx[b]);
    return bert4rec_forward_backward(m, drop, 1, norm, loss);
}

/* The key bias cannot change any attention output (it adds q . b_k to every score of a query, which
 * the softmax cancels), so its exact gradient is zero and the computed one rounding noise, which Adam
 * would turn into lr-sized steps that differ with the summation order (the rank count). Use the exact
 * zero. */
static void ops_after_reduce(void *self)
{
    bert4rec_model *m = self;
    const size_t C = (size_t)m->cfg.C;
    for (int l = 0; l < m->cfg.L; l++) memset(m->g.qkvb + (size_t)l * 3 * C + C, 0, C * sizeof(float));
}

static void ops_step(void *self) { bert4rec_adam_step(self); }

static int ops_score(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    return bert4rec_scores(self, d, roles, split, users, B, scores);
}

static int ops_tensor(void *self, int k, const char **tname, size_t *rows, size_t *cols, float **data)
{
    return bert4rec_tensor(self, k, tname, rows, cols, data);
}

static size_t ops_score_batch(const dm_cfg *cfg) { return (size_t)dm_cfg_int(cfg, "bert4rec.eval_batch"); }

const dm_model_ops bert4rec_model_ops = {
    .name = "bert4rec",
    .label = "BERT4Rec",
    .groups = g_groups,
    .create = ops_create,
    .destroy = model_destroy,
    DM_MODEL_SLAB_MEMBERS,
    .n_examples = ops_n_examples,
    .batch_norm = ops_norm,
    .grad = ops_grad,
    .after_reduce = ops_after_reduce,
    .step = ops_step,
    .score = ops_score,
    .tensor = ops_tensor,
    .score_batch = ops_score_batch,
    .examples = "training users",
    .check = ops_check,
};
