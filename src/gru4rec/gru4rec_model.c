/* gru4rec_model.c: GRU4Rec as a dm_model_ops model (src/model/model.h), see gru4rec.h.
 * Examples are the training users with at least two training items; a batch's normaliser is its
 * target count. */
#include "gru4rec.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

static const char *const g_groups[] = {"gru4rec", NULL};

DM_MODEL_SLAB_OPS(gru4rec_model)
DM_MODEL_LIFECYCLE(gru4rec_model, gru4rec_config, gru4rec_init, gru4rec_free)

static int ops_create(void **self, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, int max_batch, uint64_t seed)
{
    gru4rec_config c = {(int)d->n_items,
                        (int)dm_cfg_int(cfg, "gru4rec.emb"),
                        (int)dm_cfg_int(cfg, "gru4rec.hidden"),
                        (int)dm_cfg_int(cfg, "gru4rec.layers"),
                        (int)dm_cfg_int(cfg, "gru4rec.maxlen"),
                        (float)dm_cfg_float(cfg, "gru4rec.dropout"),
                        (float)dm_cfg_float(cfg, "gru4rec.lr"),
                        (float)dm_cfg_float(cfg, "gru4rec.beta1"),
                        (float)dm_cfg_float(cfg, "gru4rec.beta2"),
                        (float)dm_cfg_float(cfg, "gru4rec.eps"),
                        max_batch};
    return model_new(self, &c, d, roles, seed);
}

static size_t ops_n_examples(void *self) { return ((gru4rec_model *)self)->seqs.n; }

static int64_t targets(const void *self, size_t k)
{
    const gru4rec_model *m = self;
    int64_t n = (int64_t)dm_seqs_len(&m->seqs, k) - 1;
    return n < m->cfg.T ? n : m->cfg.T;
}

static double ops_norm(void *self, const size_t *ex, size_t n) { return dm_model_count_sum(self, ex, n, targets); }

static int ops_grad(void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double norm, double *loss)
{
    gru4rec_model *m = self;
    gru4rec_acts *a = &m->a;
    const size_t T = (size_t)m->cfg.T;
    if (n > (size_t)m->cfg.max_batch)
        return DM_ERR(DM_EINTERNAL, "gru4rec: a share of %zu sequences exceeds max_batch = %d", n, m->cfg.max_batch);
    if (n == 0) {
        if (loss) *loss = 0;
        return DM_OK;
    }
    for (size_t b = 0; b < n; b++) {
        a->len[b] = gru4rec_train_row(m, ex[b], a->seq + b * T, a->tgt + b * T);
        if (m->cfg.dropout > 0) gru4rec_dropout_row(m, (int)n, (int)b, seed, step, gidx[b], a->mask);
    }
    size_t nv = gru4rec_forward(m, (int)n, m->cfg.dropout > 0 ? a->mask : NULL);
    return gru4rec_backward(m, (int)n, nv, norm, loss);
}

static void ops_step(void *self) { gru4rec_adam_step(self); }

static int ops_score(void *self, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    return gru4rec_scores(self, d, roles, split, users, B, scores);
}

static int ops_tensor(void *self, int k, const char **tname, size_t *rows, size_t *cols, float **data)
{
    gru4rec_model *m = self;
    const gru4rec_config *c = &m->cfg;
    const int L = c->L;
    *cols = (size_t)c->H;
    if (k == 0) {
        *tname = "emb", *rows = (size_t)c->n_items, *cols = (size_t)c->E, *data = m->p.emb;
    } else if (k <= 2 * L) {
        int l = (k - 1) / 2, hh = (k - 1) % 2;
        *tname = m->tname[k - 1];
        *rows = 3 * (size_t)c->H;
        *cols = hh || l > 0 ? (size_t)c->H : (size_t)c->E;
        *data = hh ? m->p.w_hh[l] : m->p.w_ih[l];
    } else if (k == 2 * L + 1) {
        *tname = "dense_w", *rows = (size_t)c->E, *data = m->p.dense_w;
    } else if (k == 2 * L + 2) {
        *tname = "dense_b", *rows = (size_t)c->E, *cols = 0, *data = m->p.dense_b;
    } else
        return 0;
    return 1;
}

static size_t ops_score_batch(const dm_cfg *cfg) { return (size_t)dm_cfg_int(cfg, "gru4rec.eval_batch"); }

const dm_model_ops gru4rec_model_ops = {
    .name = "gru4rec",
    .label = "GRU4Rec",
    .groups = g_groups,
    .create = ops_create,
    .destroy = model_destroy,
    DM_MODEL_SLAB_MEMBERS,
    .n_examples = ops_n_examples,
    .batch_norm = ops_norm,
    .grad = ops_grad,
    .after_reduce = NULL,
    .step = ops_step,
    .score = ops_score,
    .tensor = ops_tensor,
    .score_batch = ops_score_batch,
    .examples = "training users",
};
