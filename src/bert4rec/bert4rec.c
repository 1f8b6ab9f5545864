/* bert4rec.c: BERT4Rec, see bert4rec.h. The layers are src/nn's (linear, layer norm, GELU,
 * attention, dropout, full-softmax cross-entropy, Adam); this file lays out the slab, packs a batch,
 * draws the cloze and dropout masks, and chains the layers forward and backward. */
#include "bert4rec.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/attention.h"
#include "../nn/dropout.h"
#include "../nn/gelu.h"
#include "../nn/gemm.h"
#include "../nn/layernorm.h"
#include "../nn/linear.h"
#include "../nn/xent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration and parameters ---------------------------------------------------------------- */

int bert4rec_config_check(const bert4rec_config *c)
{
#define BAD DM_CONFIG_CHECK
    BAD(c->n_items < 1, "bert4rec: the dataset has %d items, expected at least 1", c->n_items);
    BAD(c->H < 1 || c->C % c->H, "bert4rec.heads = %d does not divide bert4rec.dim = %d: expected a divisor of the dimension", c->H, c->C);
    BAD(c->max_batch < 1 || (long long)c->max_batch * c->T > 1000000000LL,
        "bert4rec: batches of %d sequences of bert4rec.maxlen = %d, expected at least 1 and a product below 1e9", c->max_batch, c->T);
#undef BAD
    return DM_OK;
}

int bert4rec_config_from(const dm_cfg *cfg, int n_items, int max_batch, bert4rec_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_items = n_items;
    c->C = (int)dm_cfg_int(cfg, "bert4rec.dim");
    c->L = (int)dm_cfg_int(cfg, "bert4rec.layers");
    c->H = (int)dm_cfg_int(cfg, "bert4rec.heads");
    c->F = (int)dm_cfg_int(cfg, "bert4rec.ffn");
    if (c->F == 0) c->F = 4 * c->C;
    c->T = (int)dm_cfg_int(cfg, "bert4rec.maxlen");
    c->mask_prob = (float)dm_cfg_float(cfg, "bert4rec.mask_prob");
    c->dropout = (float)dm_cfg_float(cfg, "bert4rec.dropout");
    c->lr = (float)dm_cfg_float(cfg, "bert4rec.lr");
    c->beta1 = (float)dm_cfg_float(cfg, "bert4rec.beta1");
    c->beta2 = (float)dm_cfg_float(cfg, "bert4rec.beta2");
    c->eps = (float)dm_cfg_float(cfg, "bert4rec.eps");
    c->max_batch = max_batch;
    return bert4rec_config_check(c);
}

static const char *const g_names[BERT4REC_NTENSORS] = {"emb",  "pos",  "lnew", "lneb", "qkvw", "qkvb", "ow",   "ob",   "ln1w", "ln1b", "fc1w",
                                                       "fc1b", "fc2w", "fc2b", "ln2w", "ln2b", "hw",   "hb",   "lnhw", "lnhb", "outb"};

/* rows and columns of tensor k (cols 0: a vector of `rows`); a stacked per-block tensor is (L, rest) */
static void shape(const bert4rec_config *c, int k, size_t *rows, size_t *cols)
{
    const size_t C = (size_t)c->C, L = (size_t)c->L, F = (size_t)c->F;
    const size_t s[BERT4REC_NTENSORS][2] = {
        {(size_t)c->n_items + 1, C}, {(size_t)c->T, C}, {C, 0}, {C, 0}, {L, 3 * C * C}, {L, 3 * C}, {L, C * C}, {L, C}, {L, C}, {L, C}, {L, F * C},
        {L, F},                      {L, C * F},        {L, C}, {L, C}, {L, C},         {C, C},     {C, 0},     {C, 0}, {C, 0}, {(size_t)c->n_items, 0}};
    *rows = s[k][0];
    *cols = s[k][1];
}

static void set_views(bert4rec_views *v, float *base, const size_t *off)
{
    float **p[BERT4REC_NTENSORS] = {&v->emb,  &v->pos,  &v->lnew, &v->lneb, &v->qkvw, &v->qkvb, &v->ow,   &v->ob,   &v->ln1w, &v->ln1b, &v->fc1w,
                                    &v->fc1b, &v->fc2w, &v->fc2b, &v->ln2w, &v->ln2b, &v->hw,   &v->hb,   &v->lnhw, &v->lnhb, &v->outb};
    for (int k = 0; k < BERT4REC_NTENSORS; k++) *p[k] = base + off[k];
}

int bert4rec_tensor(const bert4rec_model *m, int k, const char **name, size_t *rows, size_t *cols, float **data)
{
    if (k < 0 || k >= BERT4REC_NTENSORS) return 0;
    shape(&m->cfg, k, rows, cols);
    *name = g_names[k];
    *data = m->params + m->off[k];
    return 1;
}

static void normal(dm_rng *r, float *w, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)(sd * dm_rng_normal(r));
}

static void ones(float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) w[i] = 1.0f;
}

/* RecBole's _init_weights: N(0, 0.02^2) on every linear weight and embedding, zero biases, layer
 * norms 1 and 0 */
static void init_weights(bert4rec_model *m, uint64_t seed)
{
    const bert4rec_config *c = &m->cfg;
    const size_t C = (size_t)c->C, L = (size_t)c->L, F = (size_t)c->F;
    const bert4rec_views *p = &m->p;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0xb4, 0));
    memset(m->params, 0, m->nparams * sizeof(float));
    normal(&r, p->emb, ((size_t)c->n_items + 1) * C, 0.02);
    normal(&r, p->pos, (size_t)c->T * C, 0.02);
    normal(&r, p->qkvw, L * 3 * C * C, 0.02);
    normal(&r, p->ow, L * C * C, 0.02);
    normal(&r, p->fc1w, L * F * C, 0.02);
    normal(&r, p->fc2w, L * C * F, 0.02);
    normal(&r, p->hw, C * C, 0.02);
    ones(p->lnew, C);
    ones(p->ln1w, L * C);
    ones(p->ln2w, L * C);
    ones(p->lnhw, C);
}

/* ---- set-up ---------------------------------------------------------------------------------------- */

/* The activations live in one block: acts_layout sets each buffer's pointer at its offset in base
 * (NULL: only counts) and returns the block's size; every buffer starts on a 64-byte boundary. */
static size_t acts_layout(bert4rec_acts *a, const bert4rec_config *c, char *base)
{
    const size_t mb = (size_t)c->max_batch, T = (size_t)c->T, C = (size_t)c->C, F = (size_t)c->F, L = (size_t)c->L;
    const size_t maxN = mb * T, attL = mb * (size_t)c->H * T * T, n = (size_t)c->n_items;
    size_t rows = BERT4REC_BLOCK_FLOATS / n, o = 0;
    rows = rows < 1 ? 1 : rows > maxN ? maxN : rows;
#define BUF(ptr, count)                                \
    do {                                               \
        if (base) (ptr) = (void *)(base + o);          \
        o += ((count) * sizeof *(ptr) + 63) / 64 * 64; \
    } while (0)
    BUF(a->seq, maxN); BUF(a->tgt, maxN); BUF(a->len, mb); BUF(a->off, mb + 1); BUF(a->att_off, mb + 1);
    BUF(a->item, maxN); BUF(a->t, maxN); BUF(a->trow, maxN); BUF(a->titem, maxN);
    BUF(a->e0, maxN * C); BUF(a->lne, maxN * C); BUF(a->lne_mean, maxN); BUF(a->lne_rstd, maxN); BUF(a->x0, maxN * C);
    BUF(a->qkv, L * maxN * 3 * C); BUF(a->att, L * attL); BUF(a->atty, L * maxN * C); BUF(a->r1, L * maxN * C);
    BUF(a->y, L * maxN * C); BUF(a->y_mean, L * maxN); BUF(a->y_rstd, L * maxN); BUF(a->u, L * maxN * F); BUF(a->gu, L * maxN * F);
    BUF(a->r2, L * maxN * C); BUF(a->x, L * maxN * C); BUF(a->x_mean, L * maxN); BUF(a->x_rstd, L * maxN);
    BUF(a->m_emb, maxN * C); BUF(a->m_att, L * attL); BUF(a->m_o, L * maxN * C); BUF(a->m_f, L * maxN * C);
    BUF(a->hc, maxN * C); BUF(a->hu, maxN * C); BUF(a->hg, maxN * C); BUF(a->hz, maxN * C); BUF(a->hz_mean, maxN); BUF(a->hz_rstd, maxN);
    BUF(a->logits, rows * n); BUF(a->rowloss, maxN);
    BUF(a->dz, maxN * C); BUF(a->dx, maxN * C); BUF(a->dt, maxN * C); BUF(a->dt2, maxN * C); BUF(a->dqkv, maxN * 3 * C); BUF(a->df, maxN * F);
#undef BUF
    return o;
}

static int acts_init(bert4rec_acts *a, const bert4rec_config *c)
{
    size_t bytes = acts_layout(a, c, NULL);
    char *base = calloc(bytes, 1);
    if (!base) return DM_ERR(DM_ENOMEM, "bert4rec: out of memory for the activations of %d sequences (%zu MiB)", c->max_batch, bytes >> 20);
    acts_layout(a, c, base);
    return DM_OK;
}

/* the block starts with seq */
static void acts_free(bert4rec_acts *a)
{
    free(a->seq);
    memset(a, 0, sizeof *a);
}

int bert4rec_init(bert4rec_model *m, const bert4rec_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    DM_CALL(bert4rec_config_check(c));
    m->cfg = *c;
    size_t n = 0;
    for (int k = 0; k < BERT4REC_NTENSORS; k++) {
        size_t r, cl;
        shape(c, k, &r, &cl);
        m->off[k] = n;
        n += r * (cl ? cl : 1);
    }
    m->off[BERT4REC_NTENSORS] = m->nparams = n;
    int rc = DM_OK;
    m->params = calloc(n, sizeof(float));
    m->grads = calloc(n, sizeof(float));
    m->opt = calloc(2 * n, sizeof(float));
    if (!m->params || !m->grads || !m->opt) rc = DM_ERR(DM_ENOMEM, "bert4rec: out of memory for %zu parameters", n);
    if (!rc) rc = acts_init(&m->a, c);
    if (!rc && roles) rc = dm_seqs_init(&m->seqs, d, roles, 2);
    if (rc) {
        bert4rec_free(m);
        return rc;
    }
    set_views(&m->p, m->params, m->off);
    set_views(&m->g, m->grads, m->off);
    init_weights(m, seed);
    return DM_OK;
}

void bert4rec_free(bert4rec_model *m)
{
    DM_FREE_ALL(m->params, m->grads, m->opt);
    acts_free(&m->a);
    dm_seqs_free(&m->seqs);
    memset(m, 0, sizeof *m);
}

/* ---- batches, cloze and dropout masks ------------------------------------------------------------ */

int bert4rec_pack(bert4rec_model *m, int B)
{
    bert4rec_acts *a = &m->a;
    const int T = m->cfg.T, n = m->cfg.n_items, H = m->cfg.H;
    if (B < 0 || B > m->cfg.max_batch) return DM_ERR(DM_EINTERNAL, "bert4rec: a batch of %d sequences exceeds max_batch = %d", B, m->cfg.max_batch);
    int N = 0, M = 0;
    a->off[0] = 0;
    a->att_off[0] = 0;
    for (int b = 0; b < B; b++) {
        if (a->len[b] < 0 || a->len[b] > T) return DM_ERR(DM_EINPUT, "bert4rec: row %d has length %d, expected 0..%d", b, a->len[b], T);
        for (int t = 0; t < a->len[b]; t++) {
            int32_t it = a->seq[(size_t)b * T + t], tg = a->tgt[(size_t)b * T + t];
            if (it < 0 || it > n || tg < -1 || tg >= n)
                return DM_ERR(DM_EINPUT, "bert4rec: row %d, position %d: item %d / target %d out of range (items 0..%d, [mask] %d)", b, t, it, tg,
                              n - 1, n);
            a->item[N] = it;
            a->t[N] = t;
            if (tg >= 0) {
                a->trow[M] = N;
                a->titem[M++] = tg;
            }
            N++;
        }
        a->off[b + 1] = N;
        a->att_off[b + 1] = a->att_off[b] + (size_t)H * (size_t)a->len[b] * (size_t)a->len[b];
    }
    a->B = B;
    a->N = N;
    a->M = M;
    return DM_OK;
}

void bert4rec_draw_dropout(bert4rec_model *m, int b, uint64_t seed, uint64_t step, int64_t gidx)
{
    bert4rec_acts *a = &m->a;
    const size_t C = (size_t)m->cfg.C, maxN = (size_t)m->cfg.max_batch * (size_t)m->cfg.T;
    const size_t attL = maxN * (size_t)m->cfg.H * (size_t)m->cfg.T, o = (size_t)a->off[b], n = (size_t)(a->off[b + 1] - a->off[b]);
    nn_keep_stream k;
    nn_keep_init(&k, dm_rng_key(seed, step, (uint64_t)gidx), nn_keep_threshold((double)m->cfg.dropout));
    for (size_t i = o * C; i < (o + n) * C; i++) a->m_emb[i] = nn_keep_bit(&k);
    for (int l = 0; l < m->cfg.L; l++) {
        uint8_t *ma = a->m_att + (size_t)l * attL + a->att_off[b];
        for (size_t i = 0; i < a->att_off[b + 1] - a->att_off[b]; i++) ma[i] = nn_keep_bit(&k);
        for (size_t i = o * C; i < (o + n) * C; i++) a->m_o[(size_t)l * maxN * C + i] = nn_keep_bit(&k);
        for (size_t i = o * C; i < (o + n) * C; i++) a->m_f[(size_t)l * maxN * C + i] = nn_keep_bit(&k);
    }
}

static int row_len(const bert4rec_model *m, size_t k)
{
    size_t len = dm_seqs_len(&m->seqs, k);
    return len < (size_t)m->cfg.T ? (int)len : m->cfg.T;
}

int bert4rec_targets(const bert4rec_model *m, size_t k)
{
    long c = lround((double)m->cfg.mask_prob * row_len(m, k));
    return c < 1 ? 1 : (int)c;
}

int bert4rec_train_row(const bert4rec_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx, int32_t *seq, int32_t *tgt)
{
    const int n = row_len(m, k), c = bert4rec_targets(m, k);
    const int32_t *it = m->seqs.items + m->seqs.off[k + 1] - n;
    int pos[n];
    for (int j = 0; j < n; j++) {
        seq[j] = it[j];
        tgt[j] = -1;
        pos[j] = j;
    }
    /* the first c of a partial Fisher-Yates shuffle of the positions */
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed ^ 0x636c6f7a65ULL, step, (uint64_t)gidx));
    for (int j = 0; j < c; j++) {
        int s = j + (int)dm_rng_below(&r, (uint64_t)(n - j)), p = pos[s];
        pos[s] = pos[j];
        pos[j] = p;
        tgt[p] = it[p];
        seq[p] = m->cfg.n_items;
    }
    return n;
}

/* ---- forward and backward ------------------------------------------------------------------------- */

static void vzero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

static void forward_blocks(bert4rec_model *m, int drop)
{
    const bert4rec_config *c = &m->cfg;
    const bert4rec_views *p = &m->p;
    bert4rec_acts *a = &m->a;
    const int C = c->C, F = c->F, N = a->N;
    const size_t maxN = (size_t)c->max_batch * (size_t)c->T, attL = maxN * (size_t)c->H * (size_t)c->T;
    const size_t NC = (size_t)N * C, NF = (size_t)N * F, C3 = 3 * (size_t)C;
    const float keep = drop ? 1.0f / (1.0f - c->dropout) : 1.0f;
    for (int r = 0; r < N; r++) {
        const float *e = p->emb + (size_t)a->item[r] * C, *pe = p->pos + (size_t)a->t[r] * C;
        float *x = a->e0 + (size_t)r * C;
        for (int i = 0; i < C; i++) x[i] = e[i] + pe[i];
    }
    nn_layernorm_forward(a->lne, a->lne_mean, a->lne_rstd, a->e0, p->lnew, p->lneb, N, C, BERT4REC_LN_EPS);
    nn_dropout_add_forward(a->x0, NULL, a->lne, drop ? a->m_emb : NULL, keep, NC);
    for (int l = 0; l < c->L; l++) {
        const size_t lo = (size_t)l * maxN * C, lm = (size_t)l * maxN;
        const float *xin = l == 0 ? a->x0 : a->x + lo - maxN * C;
        float *qkv = a->qkv + 3 * lo, *att = a->att + (size_t)l * attL, *atty = a->atty + lo;
        float *u = a->u + (size_t)l * maxN * F, *gu = a->gu + (size_t)l * maxN * F;
        nn_linear_forward(qkv, xin, p->qkvw + l * C3 * C, p->qkvb + l * C3, N, C, 3 * C);
        nn_attention_forward(atty, att, qkv, drop ? a->m_att + (size_t)l * attL : NULL, keep, a->off, a->att_off, a->B, C, c->H, 0);
        nn_linear_forward(a->dt, atty, p->ow + (size_t)l * C * C, p->ob + (size_t)l * C, N, C, C);
        nn_dropout_add_forward(a->r1 + lo, xin, a->dt, drop ? a->m_o + lo : NULL, keep, NC);
        nn_layernorm_forward(a->y + lo, a->y_mean + lm, a->y_rstd + lm, a->r1 + lo, p->ln1w + (size_t)l * C, p->ln1b + (size_t)l * C, N, C,
                             BERT4REC_LN_EPS);
        nn_linear_forward(u, a->y + lo, p->fc1w + (size_t)l * F * C, p->fc1b + (size_t)l * F, N, C, F);
        nn_gelu_forward(gu, u, NF);
        nn_linear_forward(a->dt, gu, p->fc2w + (size_t)l * C * F, p->fc2b + (size_t)l * C, N, F, C);
        nn_dropout_add_forward(a->r2 + lo, a->y + lo, a->dt, drop ? a->m_f + lo : NULL, keep, NC);
        nn_layernorm_forward(a->x + lo, a->x_mean + lm, a->x_rstd + lm, a->r2 + lo, p->ln2w + (size_t)l * C, p->ln2b + (size_t)l * C, N, C,
                             BERT4REC_LN_EPS);
    }
}

/* the output transform at the target positions: hz (M, C) */
static void head_forward(bert4rec_model *m)
{
    const bert4rec_views *p = &m->p;
    bert4rec_acts *a = &m->a;
    const int C = m->cfg.C, M = a->M;
    const float *xl = a->x + (size_t)(m->cfg.L - 1) * (size_t)m->cfg.max_batch * (size_t)m->cfg.T * C;
    for (int r = 0; r < M; r++) memcpy(a->hc + (size_t)r * C, xl + (size_t)a->trow[r] * C, (size_t)C * sizeof(float));
    nn_linear_forward(a->hu, a->hc, p->hw, p->hb, M, C, C);
    nn_gelu_forward(a->hg, a->hu, (size_t)M * C);
    nn_layernorm_forward(a->hz, a->hz_mean, a->hz_rstd, a->hg, p->lnhw, p->lnhb, M, C, BERT4REC_LN_EPS);
}

/* from dz (M, C), the gradient of the head's output: the head's gradients and dx (N, C), the
 * gradient of the last block's output */
static void head_backward(bert4rec_model *m)
{
    const bert4rec_views *p = &m->p;
    bert4rec_views *g = &m->g;
    bert4rec_acts *a = &m->a;
    const int C = m->cfg.C, M = a->M;
    const size_t MC = (size_t)M * C;
    vzero(a->dt, MC);
    nn_layernorm_backward(a->dt, g->lnhw, g->lnhb, a->dz, a->hg, p->lnhw, a->hz_mean, a->hz_rstd, M, C);
    nn_gelu_backward(a->dt, a->hu, a->dt, MC);
    vzero(a->dt2, MC);
    nn_linear_backward(a->dt2, g->hw, g->hb, a->dt, a->hc, p->hw, M, C, C);
    vzero(a->dx, (size_t)a->N * C);
    for (int r = 0; r < M; r++) memcpy(a->dx + (size_t)a->trow[r] * C, a->dt2 + (size_t)r * C, (size_t)C * sizeof(float));
}

static void backward_blocks(bert4rec_model *m, int drop)
{
    const bert4rec_config *c = &m->cfg;
    const bert4rec_views *p = &m->p;
    bert4rec_views *g = &m->g;
    bert4rec_acts *a = &m->a;
    const int C = c->C, F = c->F, N = a->N;
    const size_t maxN = (size_t)c->max_batch * (size_t)c->T, attL = maxN * (size_t)c->H * (size_t)c->T;
    const size_t NC = (size_t)N * C, NF = (size_t)N * F, C3 = 3 * (size_t)C;
    const float keep = drop ? 1.0f / (1.0f - c->dropout) : 1.0f;
    for (int l = c->L - 1; l >= 0; l--) {
        const size_t lo = (size_t)l * maxN * C, lm = (size_t)l * maxN;
        const float *xin = l == 0 ? a->x0 : a->x + lo - maxN * C;
        const float *u = a->u + (size_t)l * maxN * F, *gu = a->gu + (size_t)l * maxN * F;
        /* dx = d x_l;  dt = d r2 = LN2'(dx), which is also the residual part of d y */
        vzero(a->dt, NC);
        nn_layernorm_backward(a->dt, g->ln2w + (size_t)l * C, g->ln2b + (size_t)l * C, a->dx, a->r2 + lo, p->ln2w + (size_t)l * C, a->x_mean + lm,
                              a->x_rstd + lm, N, C);
        /* the feed-forward path: df = d u, then dt += d y through W_1 */
        nn_dropout_backward(a->dt2, a->dt, drop ? a->m_f + lo : NULL, keep, NC);
        vzero(a->df, NF);
        nn_linear_backward(a->df, g->fc2w + (size_t)l * C * F, g->fc2b + (size_t)l * C, a->dt2, gu, p->fc2w + (size_t)l * C * F, N, F, C);
        nn_gelu_backward(a->df, u, a->df, NF);
        nn_linear_backward(a->dt, g->fc1w + (size_t)l * F * C, g->fc1b + (size_t)l * F, a->df, a->y + lo, p->fc1w + (size_t)l * F * C, N, C, F);
        /* dx = d r1 = LN1'(d y), which is also the residual part of d x_in */
        vzero(a->dx, NC);
        nn_layernorm_backward(a->dx, g->ln1w + (size_t)l * C, g->ln1b + (size_t)l * C, a->dt, a->r1 + lo, p->ln1w + (size_t)l * C, a->y_mean + lm,
                              a->y_rstd + lm, N, C);
        /* the attention path: W_o, the attention, then dx += d x_in through Q, K, V */
        nn_dropout_backward(a->dt2, a->dx, drop ? a->m_o + lo : NULL, keep, NC);
        vzero(a->dt, NC);
        nn_linear_backward(a->dt, g->ow + (size_t)l * C * C, g->ob + (size_t)l * C, a->dt2, a->atty + lo, p->ow + (size_t)l * C * C, N, C, C);
        vzero(a->dqkv, 3 * NC);
        nn_attention_backward(a->dqkv, a->dt, a->qkv + 3 * lo, a->att + (size_t)l * attL, drop ? a->m_att + (size_t)l * attL : NULL, keep, a->off,
                              a->att_off, a->B, C, c->H, 0);
        nn_linear_backward(a->dx, g->qkvw + l * C3 * C, g->qkvb + l * C3, a->dqkv, xin, p->qkvw + l * C3 * C, N, C, 3 * C);
    }
    /* the embedding: d lne = dropout'(dx), d e0 = LN_e'(d lne), then the rows of E and P (serial:
       positions share items) */
    nn_dropout_backward(a->dt, a->dx, drop ? a->m_emb : NULL, keep, NC);
    vzero(a->dt2, NC);
    nn_layernorm_backward(a->dt2, g->lnew, g->lneb, a->dt, a->e0, p->lnew, a->lne_mean, a->lne_rstd, N, C);
    for (int r = 0; r < N; r++) {
        const float *d = a->dt2 + (size_t)r * C;
        float *ge = g->emb + (size_t)a->item[r] * C, *gp = g->pos + (size_t)a->t[r] * C;
        for (int i = 0; i < C; i++) {
            ge[i] += d[i];
            gp[i] += d[i];
        }
    }
}

int bert4rec_forward_backward(bert4rec_model *m, int drop, int grad, double norm, double *loss)
{
    bert4rec_acts *a = &m->a;
    forward_blocks(m, drop);
    head_forward(m);
    double ls = nn_xent_rows(grad ? a->dz : NULL, m->g.emb, m->g.outb, a->hz, a->titem, m->p.emb, m->p.outb, a->M, m->cfg.n_items, m->cfg.C,
                             (float)(1.0 / norm), a->logits, BERT4REC_BLOCK_FLOATS, a->rowloss);
    if (loss) *loss = ls;
    if (!isfinite(ls)) {
        DM_ERR(DM_ENUM, "bert4rec: the loss is not finite (%g)", ls);
        DM_HINT("lower bert4rec.lr");
        return DM_ENUM;
    }
    if (grad && a->M > 0) {
        head_backward(m);
        backward_blocks(m, drop);
    }
    return DM_OK;
}

/* ---- scoring and the optimiser ---------------------------------------------------------------------- */

int bert4rec_scores(bert4rec_model *m, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    bert4rec_acts *a = &m->a;
    const int T = m->cfg.T, n = m->cfg.n_items, C = m->cfg.C;
    const size_t mb = (size_t)m->cfg.max_batch;
    for (size_t b0 = 0; b0 < B; b0 += mb) {
        int nb = (int)(B - b0 < mb ? B - b0 : mb);
        /* each row: the latest T - 1 items of the history, then [mask], the one position the head reads */
        for (int b = 0; b < nb; b++) {
            int32_t *sq = a->seq + (size_t)b * T, *tg = a->tgt + (size_t)b * T;
            int h = dm_history_latest(d, roles, split, users[b0 + (size_t)b], T - 1, sq);
            for (int t = 0; t < h; t++) tg[t] = -1;
            sq[h] = n;
            tg[h] = 0; /* a target there marks the position; its value is unused */
            a->len[b] = h + 1;
        }
        DM_CALL(bert4rec_pack(m, nb));
        forward_blocks(m, 0);
        head_forward(m);
        float *sc = scores + b0 * (size_t)n;
        for (int b = 0; b < nb; b++) memcpy(sc + (size_t)b * n, m->p.outb, (size_t)n * sizeof(float));
        nn_sgemm(CblasNoTrans, CblasTrans, nb, n, C, 1.0f, a->hz, C, m->p.emb, C, 1.0f, sc, n);
    }
    return DM_OK;
}

void bert4rec_adam_step(bert4rec_model *m) { DM_MODEL_ADAM_STEP(m); }
