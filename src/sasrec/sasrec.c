/* sasrec.c: the SASRec model (see sasrec.h): parameter slab, packing of a padded batch into
 * non-padding rows, keyed dropout masks, the forward and backward passes over the layer kernels
 * (sasrec_kernels.h), the losses, Adam and inference.
 */
#include "sasrec.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/adam.h"
#include "../nn/dropout.h"
#include "../nn/gemm.h"
#include "sasrec_kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int ffn_width(const sasrec_config *c) { return c->F > 0 ? c->F : c->C; }

int sasrec_config_from(const dm_cfg *cfg, int n_items, int max_batch, sasrec_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_items = n_items;
    c->C = (int)dm_cfg_int(cfg, "sasrec.hidden");
    c->F = (int)dm_cfg_int(cfg, "sasrec.ffn");
    c->T = (int)dm_cfg_int(cfg, "sasrec.maxlen");
    c->L = (int)dm_cfg_int(cfg, "sasrec.blocks");
    c->H = (int)dm_cfg_int(cfg, "sasrec.heads");
    c->max_batch = max_batch;
    c->dropout = (float)dm_cfg_float(cfg, "sasrec.dropout");
    const char *norm = dm_cfg_str(cfg, "sasrec.norm");
    c->norm = !strcmp(norm, "pre") ? SASREC_NORM_PRE : !strcmp(norm, "post") ? SASREC_NORM_POST : SASREC_NORM_KANG;
    c->loss = !strcmp(dm_cfg_str(cfg, "sasrec.loss"), "ce") ? SASREC_LOSS_CE : SASREC_LOSS_BCE;
    c->lr = (float)dm_cfg_float(cfg, "sasrec.lr");
    c->beta1 = (float)dm_cfg_float(cfg, "sasrec.beta1");
    c->beta2 = (float)dm_cfg_float(cfg, "sasrec.beta2");
    c->eps = (float)dm_cfg_float(cfg, "sasrec.eps");
    c->l2 = (float)dm_cfg_float(cfg, "sasrec.l2");
    c->chunk_floats = (size_t)(dm_cfg_float(cfg, "sasrec.ce_chunk_mb") * 1048576.0 / 4.0);
    c->naive = 0;
    if (c->C % c->H) {
        char w[256];
        DM_ERR(DM_ECONFIG, "%s = %d does not divide sasrec.hidden = %d", dm_cfg_where(cfg, "sasrec.heads", w, sizeof w), c->H, c->C);
        DM_HINT("the heads split the hidden width evenly; e.g. sasrec.heads = 1 or 2 for hidden 50");
        return DM_ECONFIG;
    }
    return sasrec_config_check(c);
}

int sasrec_config_check(const sasrec_config *c)
{
#define BAD DM_CONFIG_CHECK
    BAD(c->n_items < 1, "sasrec: n_items = %d, expected at least 1", c->n_items);
    BAD(c->H < 1 || c->C % c->H != 0, "sasrec: %d heads do not divide hidden = %d", c->H, c->C);
    BAD(c->max_batch < 1 || (long long)c->max_batch * c->T > 1000000000LL,
        "sasrec: max_batch = %d is out of range (max_batch * maxlen must stay below 1e9)",
        c->max_batch);
#undef BAD
    return DM_OK;
}

size_t sasrec_tensor_info(const sasrec_config *c, int k, const char **name, int *ndim,
                          size_t shape[3])
{
    static const char *names[SASREC_NTENSORS] = {
        "wte",  "wpe",  "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
        "ln2w", "ln2b", "fc1w", "fc1b", "fc2w", "fc2b", "lnfw",     "lnfb"};
    size_t V = (size_t)c->n_items + 1, C = (size_t)c->C, T = (size_t)c->T, L = (size_t)c->L;
    size_t F = (size_t)ffn_width(c);
    size_t s[SASREC_NTENSORS][3] = {{V, C, 0},     {T, C, 0},     {L, C, 0}, {L, C, 0},
                                    {L, 3 * C, C}, {L, 3 * C, 0}, {L, C, C}, {L, C, 0},
                                    {L, C, 0},     {L, C, 0},     {L, F, C}, {L, F, 0},
                                    {L, C, F},     {L, C, 0},     {C, 0, 0}, {C, 0, 0}};
    DM_ASSERT(k >= 0 && k < SASREC_NTENSORS);
    int nd = s[k][2] ? 3 : s[k][1] ? 2 : 1;
    size_t n = 1;
    for (int d = 0; d < 3; d++) {
        if (shape) shape[d] = d < nd ? s[k][d] : 0;
        if (d < nd) n *= s[k][d];
    }
    if (name) *name = names[k];
    if (ndim) *ndim = nd;
    return n;
}

static void set_views(sasrec_params *p, float *base, const size_t *off)
{
    float **v[SASREC_NTENSORS] = {
        &p->wte,  &p->wpe,  &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fc1w, &p->fc1b, &p->fc2w, &p->fc2b, &p->lnfw,     &p->lnfb};
    for (int k = 0; k < SASREC_NTENSORS; k++) *v[k] = base + off[k];
}

int sasrec_init(sasrec *m, const sasrec_config *cfg)
{
    memset(m, 0, sizeof *m);
    DM_CALL(sasrec_config_check(cfg));
    m->cfg = *cfg;
    m->cfg.F = ffn_width(cfg);
    m->V = cfg->n_items + 1;
    size_t n = 0;
    for (int k = 0; k < SASREC_NTENSORS; k++) {
        m->offset[k] = n;
        n += sasrec_tensor_info(&m->cfg, k, NULL, NULL, NULL);
    }
    m->nparams = n;
    m->params_mem = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
    m->grads_mem = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
    m->m_mem = dm_calloc_at(2 * n, sizeof(float), __FILE__, __LINE__);
    m->v_mem = m->m_mem ? m->m_mem + n : NULL;
    if (!m->params_mem || !m->grads_mem || !m->m_mem) {
        sasrec_free(m);
        return DM_ENOMEM;
    }
    set_views(&m->params, m->params_mem, m->offset);
    set_views(&m->grads, m->grads_mem, m->offset);
    return DM_OK;
}

void sasrec_free(sasrec *m)
{
    free(m->params_mem);
    free(m->grads_mem);
    free(m->m_mem); /* and v_mem, its second half */
    memset(m, 0, sizeof *m);
}

/* xavier_normal_: std = sqrt(2 / (fan_in + fan_out)), fan_in = size(1) * receptive field,
 * fan_out = size(0) * receptive field, as torch.nn.init computes them for a 2-D or Conv1d weight. */
static void xavier_normal(dm_rng *r, float *w, size_t rows, size_t cols)
{
    double sd = sqrt(2.0 / (double)(rows + cols));
    for (size_t i = 0; i < rows * cols; i++) w[i] = (float)(sd * dm_rng_normal(r));
}

static void uniform(dm_rng *r, float *w, size_t n, double bound)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * dm_rng_uniform(r) - 1.0));
}

void sasrec_init_weights(sasrec *m, uint64_t seed)
{
    const sasrec_config *c = &m->cfg;
    size_t V = (size_t)m->V, C = (size_t)c->C, T = (size_t)c->T, F = (size_t)c->F;
    sasrec_params *p = &m->params;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0x5a5, 0));
    memset(m->params_mem, 0, m->nparams * sizeof(float));
    xavier_normal(&r, p->wte, V, C);
    memset(p->wte, 0, C * sizeof(float)); /* padding row */
    xavier_normal(&r, p->wpe, T, C);
    for (int l = 0; l < c->L; l++) {
        for (size_t i = 0; i < C; i++) p->ln1w[l * C + i] = p->ln2w[l * C + i] = 1.0f;
        xavier_normal(&r, p->qkvw + l * 3 * C * C, 3 * C, C);
        xavier_normal(&r, p->attprojw + l * C * C, C, C);
        xavier_normal(&r, p->fc1w + l * F * C, F, C);
        uniform(&r, p->fc1b + l * F, F, 1.0 / sqrt((double)C));
        xavier_normal(&r, p->fc2w + l * C * F, C, F);
        uniform(&r, p->fc2b + l * C, C, 1.0 / sqrt((double)F));
    }
    for (size_t i = 0; i < C; i++) p->lnfw[i] = 1.0f;
    memset(m->grads_mem, 0, m->nparams * sizeof(float));
    memset(m->m_mem, 0, m->nparams * sizeof(float));
    memset(m->v_mem, 0, m->nparams * sizeof(float));
    m->step = 0;
}

static int acts_alloc(sasrec_acts *a, const sasrec_config *c)
{
    size_t C = (size_t)c->C, F = (size_t)ffn_width(c), L = (size_t)c->L, T = (size_t)c->T;
    size_t mb = (size_t)c->max_batch, maxN = mb * T, attL = mb * (size_t)c->H * T * T;
    size_t V = (size_t)c->n_items + 1;
    a->cfg = *c;
    a->cfg.F = (int)F;
    a->maxN = (int)maxN;
    a->attL = attL;
    DM_ALLOC(a->off, mb + 1);
    DM_ALLOC(a->row_t, maxN);
    DM_ALLOC(a->row_item, maxN);
    DM_ALLOC(a->row_pos, maxN);
    DM_ALLOC(a->row_neg, maxN);
    DM_ALLOC(a->att_off, mb + 1);
    DM_ALLOC(a->tgt_row, maxN);
    DM_ALLOC(a->tgt_item, maxN);
    DM_ALLOC(a->tgt_neg, maxN);
    DM_ALLOC(a->x0, maxN * C);
    DM_ALLOC(a->ln1, L * maxN * C);
    DM_ALLOC(a->ln1_mean, L * maxN);
    DM_ALLOC(a->ln1_rstd, L * maxN);
    DM_ALLOC(a->qkv, L * maxN * 3 * C);
    DM_ALLOC(a->att, L * attL);
    DM_ALLOC(a->atty, L * maxN * C);
    DM_ALLOC(a->r1, L * maxN * C);
    DM_ALLOC(a->ln2, L * maxN * C);
    DM_ALLOC(a->ln2_mean, L * maxN);
    DM_ALLOC(a->ln2_rstd, L * maxN);
    DM_ALLOC(a->fch, L * maxN * F);
    DM_ALLOC(a->r2, L * maxN * C);
    DM_ALLOC(a->hf, maxN * C);
    DM_ALLOC(a->lnf_mean, maxN);
    DM_ALLOC(a->lnf_rstd, maxN);
    DM_ALLOC(a->m_emb, maxN * C);
    DM_ALLOC(a->m_att, L * attL);
    DM_ALLOC(a->m_fc1, L * maxN * F);
    DM_ALLOC(a->m_fc2, L * maxN * C);
    DM_ALLOC(a->dx, maxN * C);
    DM_ALLOC(a->dtmp, maxN * C);
    DM_ALLOC(a->dtmp2, maxN * C);
    DM_ALLOC(a->dqkv, maxN * 3 * C);
    DM_ALLOC(a->dfch, maxN * F);
    DM_ALLOC(a->dh, maxN * C);
    DM_ALLOC(a->hc, maxN * C);
    DM_ALLOC(a->dhc, maxN * C);
    DM_ALLOC(a->ones, maxN);
    DM_ALLOC(a->rowbuf, 3 * maxN);
    a->chunk = c->chunk_floats > V ? c->chunk_floats : V;
    /* the logits block never needs more than all rows times all items */
    if (a->chunk > maxN * V) a->chunk = maxN * V;
    DM_ALLOC(a->logits, a->chunk);
    for (size_t i = 0; i < maxN; i++) a->ones[i] = 1.0f;
    return DM_OK;
}

int sasrec_acts_init(sasrec_acts *a, const sasrec_config *cfg)
{
    memset(a, 0, sizeof *a);
    DM_CALL(sasrec_config_check(cfg));
    int rc = acts_alloc(a, cfg);
    if (rc != DM_OK) {
        sasrec_acts_free(a);
        dm_error_trace(__FILE__, __LINE__);
    }
    return rc;
}

void sasrec_acts_free(sasrec_acts *a)
{
    void *p[] = {a->off,      a->row_t,    a->row_item, a->row_pos, a->row_neg, a->att_off,
                 a->tgt_row,  a->tgt_item, a->tgt_neg,  a->x0,      a->ln1,     a->ln1_mean,
                 a->ln1_rstd, a->qkv,      a->att,      a->atty,    a->r1,      a->ln2,
                 a->ln2_mean, a->ln2_rstd, a->fch,      a->r2,      a->hf,      a->lnf_mean,
                 a->lnf_rstd, a->m_emb,    a->m_att,    a->m_fc1,   a->m_fc2,   a->dx,
                 a->dtmp,     a->dtmp2,    a->dqkv,     a->dfch,    a->dh,      a->hc,
                 a->dhc,      a->ones,     a->rowbuf,   a->logits};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(a, 0, sizeof *a);
}

void sasrec_set_threads(int n)
{
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

/* ---- batch packing and dropout masks ---------------------------------------------------------- */

static int pack_batch(const sasrec *m, sasrec_acts *a, const sasrec_batch *b, int targets)
{
    const sasrec_config *c = &m->cfg;
    const int T = c->T, H = c->H, ni = c->n_items;
    const sasrec_config *ac = &a->cfg;
    if (ac->n_items != ni || ac->C != c->C || ac->F != c->F || ac->T != T || ac->L != c->L ||
        ac->H != H) {
        DM_ERR(DM_EINTERNAL,
               "sasrec activations were sized for another model (C %d/%d, T %d/%d, L %d/%d, H "
               "%d/%d, F %d/%d, items %d/%d)",
               ac->C, c->C, ac->T, T, ac->L, c->L, ac->H, H, ac->F, c->F, ac->n_items, ni);
        return DM_EINTERNAL;
    }
    if (b->B < 0 || b->B > ac->max_batch) {
        DM_ERR(DM_EINPUT, "sasrec batch of %d sequences exceeds max_batch = %d", b->B,
               ac->max_batch);
        return DM_EINPUT;
    }
    if (!b->seq || (targets && !b->pos) || (targets && c->loss == SASREC_LOSS_BCE && !b->neg)) {
        DM_ERR(DM_EINPUT, "sasrec batch without %s",
               !b->seq   ? "input sequences"
               : !b->pos ? "targets"
                         : "negatives");
        return DM_EINPUT;
    }
    int N = 0, M = 0;
    a->B = b->B;
    a->off[0] = 0;
    a->att_off[0] = 0;
    for (int s = 0; s < b->B; s++) {
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)s * T + t;
            int it = b->seq[i], ps = targets ? b->pos[i] : 0;
            int ng = targets && c->loss == SASREC_LOSS_BCE ? b->neg[i] : 1;
            if (it < 0 || it > ni || ps < 0 || ps > ni) {
                DM_ERR(DM_EINPUT,
                       "sasrec batch: item %d at sequence %d, position %d is out of range 0..%d",
                       it < 0 || it > ni ? it : ps, s, t, ni);
                return DM_EINPUT;
            }
            if (it == 0) {
                if (ps != 0) {
                    DM_ERR(DM_EINPUT,
                           "sasrec batch: target %d at sequence %d, position %d sits on padding",
                           ps, s, t);
                    DM_HINT("targets (pos) must be 0 wherever the input (seq) is 0");
                    return DM_EINPUT;
                }
                continue;
            }
            a->row_t[N] = t;
            a->row_item[N] = it;
            a->row_pos[N] = ps;
            if (ps != 0) {
                if (ng < 1 || ng > ni) {
                    DM_ERR(DM_EINPUT,
                           "sasrec batch: negative %d at sequence %d, position %d is out of range "
                           "1..%d",
                           ng, s, t, ni);
                    return DM_EINPUT;
                }
                a->tgt_row[M] = N;
                a->tgt_item[M] = ps;
                a->tgt_neg[M] = ng;
                M++;
            }
            N++;
        }
        int n = N - a->off[s];
        a->off[s + 1] = N;
        a->att_off[s + 1] = a->att_off[s] + (size_t)H * n * n;
    }
    a->N = N;
    a->M = M;
    double norm = b->norm > 0 ? b->norm : (double)M;
    a->scale = norm > 0 ? (float)(1.0 / norm) : 0.0f;
    return DM_OK;
}

/* Keyed dropout (src/nn/dropout.h): sequence s draws from dm_rng_key(seed, step, gidx[s]), in the
 * order embedding rows, then per block: attention (head, query i, key j <= i), fc1 rows, fc2 rows.
 * The draws depend only on the key and the sequence's length. */
static void draw_masks(const sasrec *m, sasrec_acts *a, const sasrec_batch *b)
{
    const sasrec_config *c = &m->cfg;
    const int C = c->C, F = c->F, H = c->H, L = c->L;
    const size_t maxN = (size_t)a->maxN, attL = a->attL;
    const uint32_t thr = nn_keep_threshold((double)c->dropout);
#pragma omp parallel for schedule(dynamic, 4) if ((size_t)a->N * C * L > NN_PAR_MIN)
    for (int s = 0; s < a->B; s++) {
        nn_keep_stream k;
        nn_keep_init(&k, dm_rng_key(b->seed, b->step, b->gidx ? (uint64_t)b->gidx[s] : (uint64_t)s), thr);
        int o = a->off[s], n = a->off[s + 1] - a->off[s];
        for (size_t i = (size_t)o * C; i < (size_t)(o + n) * C; i++) a->m_emb[i] = nn_keep_bit(&k);
        for (int l = 0; l < L; l++) {
            uint8_t *ma = a->m_att + l * attL + a->att_off[s];
            for (int h = 0; h < H; h++)
                for (int i = 0; i < n; i++)
                    for (int j = 0; j <= i; j++) ma[((size_t)h * n + i) * n + j] = nn_keep_bit(&k);
            uint8_t *m1 = a->m_fc1 + l * maxN * F, *m2 = a->m_fc2 + l * maxN * C;
            for (size_t i = (size_t)o * F; i < (size_t)(o + n) * F; i++) m1[i] = nn_keep_bit(&k);
            for (size_t i = (size_t)o * C; i < (size_t)(o + n) * C; i++) m2[i] = nn_keep_bit(&k);
        }
    }
}

static void copy_masks(const sasrec *m, sasrec_acts *a, const sasrec_dense_masks *d)
{
    const sasrec_config *c = &m->cfg;
    const int C = c->C, F = c->F, H = c->H, L = c->L, T = c->T, B = a->B;
    const size_t maxN = (size_t)a->maxN, attL = a->attL;
    for (int s = 0; s < B; s++) {
        int o = a->off[s], n = a->off[s + 1] - a->off[s];
        for (int i = 0; i < n; i++) {
            int ti = a->row_t[o + i];
            memcpy(a->m_emb + (size_t)(o + i) * C, d->emb + ((size_t)s * T + ti) * C, (size_t)C);
            for (int l = 0; l < L; l++) {
                memcpy(a->m_fc1 + l * maxN * F + (size_t)(o + i) * F,
                       d->fc1 + (((size_t)l * B + s) * T + ti) * F, (size_t)F);
                memcpy(a->m_fc2 + l * maxN * C + (size_t)(o + i) * C,
                       d->fc2 + (((size_t)l * B + s) * T + ti) * C, (size_t)C);
                for (int h = 0; h < H; h++)
                    for (int j = 0; j <= i; j++)
                        a->m_att[l * attL + a->att_off[s] + ((size_t)h * n + i) * n + j] =
                            d->att[((((size_t)l * B + s) * H + h) * T + ti) * T + a->row_t[o + j]];
            }
        }
    }
}

static int prepare(const sasrec *m, sasrec_acts *a, const sasrec_batch *b, int targets)
{
    DM_CALL(pack_batch(m, a, b, targets));
    a->drop = b->train && m->cfg.dropout > 0.0f;
    if (a->drop) {
        if (b->masks)
            copy_masks(m, a, b->masks);
        else
            draw_masks(m, a, b);
    }
    return DM_OK;
}

/* ---- element-wise layers (one implementation: no BLAS, nothing to hold a naive twin against) -- */

/* x0 (N, C) = dropout(sqrt(C) E[item_r] + P[t_r]); mask (N, C) or NULL (no dropout) */
static void embed_forward(float *x0, const float *wte, const float *wpe, const int *item,
                          const int *t, const uint8_t *mask, float keep, int N, int C)
{
    const float sc = sqrtf((float)C);
#pragma omp parallel for schedule(static) if ((size_t)N * C > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *e = wte + (size_t)item[r] * C, *pe = wpe + (size_t)t[r] * C;
        float *x = x0 + (size_t)r * C;
        const uint8_t *mk = mask ? mask + (size_t)r * C : NULL;
        for (int i = 0; i < C; i++) {
            x[i] = sc * e[i] + pe[i];
            if (mk) x[i] = mk[i] ? x[i] * keep : 0.0f;
        }
    }
}

/* dE[item_r] += sqrt(C) d, dP[t_r] += d with d = dropout'(dx0); serial since rows share items */
static void embed_backward(float *dwte, float *dwpe, const float *dx0, const int *item,
                           const int *t, const uint8_t *mask, float keep, int N, int C)
{
    const float sc = sqrtf((float)C);
    for (int r = 0; r < N; r++) {
        float *ge = dwte + (size_t)item[r] * C, *gp = dwpe + (size_t)t[r] * C;
        const float *d = dx0 + (size_t)r * C;
        const uint8_t *mk = mask ? mask + (size_t)r * C : NULL;
        for (int i = 0; i < C; i++) {
            float v = mk ? (mk[i] ? d[i] * keep : 0.0f) : d[i];
            ge[i] += sc * v;
            gp[i] += v;
        }
    }
}

/* h = dropout(relu(h)) in place, n elements */
static void relu_dropout_forward(float *h, const uint8_t *mask, float keep, size_t n)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = h[i] > 0.0f ? h[i] : 0.0f;
        h[i] = mask ? (mask[i] ? v * keep : 0.0f) : v;
    }
}

/* dh *= relu'(.) dropout'(.) in place, from the layer's output h: h > 0 exactly where the unit was
 * active and kept, the only places with gradient */
static void relu_dropout_backward(float *dh, const float *h, float keep, size_t n)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) dh[i] = h[i] > 0.0f ? dh[i] * keep : 0.0f;
}

/* ---- forward and backward -------------------------------------------------------------------- */

static const sasrec_kernels *kern(const sasrec *m)
{
    return m->cfg.naive ? &sasrec_kernels_naive : &sasrec_kernels_fast;
}

/* output of block l: LN2(r2) for post-norm, r2 otherwise */
static float *block_out(const sasrec *m, const sasrec_acts *a, int l)
{
    size_t o = (size_t)l * a->maxN * m->cfg.C;
    return m->cfg.norm == SASREC_NORM_POST ? a->ln2 + o : a->r2 + o;
}

static void forward_blocks(const sasrec *m, sasrec_acts *a)
{
    const sasrec_kernels *k = kern(m);
    const sasrec_config *c = &m->cfg;
    const sasrec_params *p = &m->params;
    const int C = c->C, F = c->F, H = c->H, N = a->N, B = a->B;
    const size_t maxN = (size_t)a->maxN, attL = a->attL;
    const size_t NC = (size_t)N * C, NF = (size_t)N * F;
    const float keep = a->drop ? 1.0f / (1.0f - c->dropout) : 1.0f;

    /* x0 = dropout(sqrt(C) E[item] + P[t]) */
    embed_forward(a->x0, p->wte, p->wpe, a->row_item, a->row_t, a->drop ? a->m_emb : NULL, keep, N,
                  C);
    for (int l = 0; l < c->L; l++) {
        const float *x = l == 0 ? a->x0 : block_out(m, a, l - 1);
        size_t lo = (size_t)l * maxN * C, lm = (size_t)l * maxN;
        float *ln1 = a->ln1 + lo, *ln2 = a->ln2 + lo, *r1 = a->r1 + lo, *r2 = a->r2 + lo;
        float *atty = a->atty + lo, *qkv = a->qkv + 3 * lo, *att = a->att + l * attL;
        float *fch = a->fch + (size_t)l * maxN * F;
        const uint8_t *m1 = a->m_fc1 + (size_t)l * maxN * F, *m2 = a->m_fc2 + lo;
        const float *qkvw = p->qkvw + (size_t)l * 3 * C * C, *qkvb = p->qkvb + (size_t)l * 3 * C;
        const float *res1, *ffin, *res2;
        if (c->norm == SASREC_NORM_KANG) {
            /* a = LN1(x); Q from a, K and V from x; y = a + MHA */
            k->layernorm_forward(ln1, a->ln1_mean + lm, a->ln1_rstd + lm, x, p->ln1w + l * C,
                                 p->ln1b + l * C, N, C, SASREC_LN_EPS);
            k->linear_forward(qkv, 3 * C, ln1, C, qkvw, qkvb, N, C, C);
            k->linear_forward(qkv + C, 3 * C, x, C, qkvw + (size_t)C * C, qkvb + C, N, C, 2 * C);
            res1 = ln1;
        } else if (c->norm == SASREC_NORM_PRE) {
            k->layernorm_forward(ln1, a->ln1_mean + lm, a->ln1_rstd + lm, x, p->ln1w + l * C,
                                 p->ln1b + l * C, N, C, SASREC_LN_EPS);
            k->linear_forward(qkv, 3 * C, ln1, C, qkvw, qkvb, N, C, 3 * C);
            res1 = x;
        } else {
            k->linear_forward(qkv, 3 * C, x, C, qkvw, qkvb, N, C, 3 * C);
            res1 = x;
        }
        k->attention_forward(atty, att, qkv, a->drop ? a->m_att + l * attL : NULL, keep, a->off,
                             a->att_off, B, C, H, 1);
        k->linear_forward(r1, C, atty, C, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, N,
                          C, C);
        nn_dropout_add_forward(r1, res1, r1, NULL, 1.0f,
                            NC); /* r1 += res1 (no dropout on W_o's output) */
        if (c->norm == SASREC_NORM_POST) {
            k->layernorm_forward(ln1, a->ln1_mean + lm, a->ln1_rstd + lm, r1, p->ln1w + l * C,
                                 p->ln1b + l * C, N, C, SASREC_LN_EPS);
            ffin = ln1;
            res2 = ln1;
        } else {
            k->layernorm_forward(ln2, a->ln2_mean + lm, a->ln2_rstd + lm, r1, p->ln2w + l * C,
                                 p->ln2b + l * C, N, C, SASREC_LN_EPS);
            ffin = ln2;
            res2 = c->norm == SASREC_NORM_KANG ? ln2 : r1;
        }
        /* FFN: fch = dropout(relu(W1 ffin + b1)); r2 = res2 + dropout(W2 fch + b2) */
        k->linear_forward(fch, F, ffin, C, p->fc1w + (size_t)l * F * C, p->fc1b + l * F, N, C, F);
        relu_dropout_forward(fch, a->drop ? m1 : NULL, keep, NF);
        k->linear_forward(a->dtmp, C, fch, F, p->fc2w + (size_t)l * C * F, p->fc2b + l * C, N, F,
                          C);
        nn_dropout_add_forward(r2, res2, a->dtmp, a->drop ? m2 : NULL, keep, NC);
        if (c->norm == SASREC_NORM_POST)
            k->layernorm_forward(ln2, a->ln2_mean + lm, a->ln2_rstd + lm, r2, p->ln2w + l * C,
                                 p->ln2b + l * C, N, C, SASREC_LN_EPS);
    }
    k->layernorm_forward(a->hf, a->lnf_mean, a->lnf_rstd, block_out(m, a, c->L - 1), p->lnfw,
                         p->lnfb, N, C, SASREC_LN_EPS);
}

static void vzero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

static void backward_blocks(sasrec *m, sasrec_acts *a)
{
    const sasrec_kernels *k = kern(m);
    const sasrec_config *c = &m->cfg;
    const sasrec_params *p = &m->params;
    sasrec_params *g = &m->grads;
    const int C = c->C, F = c->F, H = c->H, N = a->N, B = a->B;
    const size_t maxN = (size_t)a->maxN, attL = a->attL;
    const size_t NC = (size_t)N * C, NF = (size_t)N * F;
    const float keep = a->drop ? 1.0f / (1.0f - c->dropout) : 1.0f;
    float *dx = a->dx, *dt = a->dtmp, *dt2 = a->dtmp2, *dqkv = a->dqkv, *dfch = a->dfch;

    vzero(dx, NC);
    k->layernorm_backward(dx, g->lnfw, g->lnfb, a->dh, block_out(m, a, c->L - 1), p->lnfw,
                          a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = c->L - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : block_out(m, a, l - 1);
        size_t lo = (size_t)l * maxN * C, lm = (size_t)l * maxN;
        const float *ln1 = a->ln1 + lo, *ln2 = a->ln2 + lo, *r1 = a->r1 + lo, *r2 = a->r2 + lo;
        const float *atty = a->atty + lo, *qkv = a->qkv + 3 * lo, *att = a->att + l * attL;
        const float *fch = a->fch + (size_t)l * maxN * F;
        const uint8_t *m2 = a->m_fc2 + lo;
        const float *qkvw = p->qkvw + (size_t)l * 3 * C * C;
        float *gqkvw = g->qkvw + (size_t)l * 3 * C * C, *gqkvb = g->qkvb + (size_t)l * 3 * C;
        const float *ffin = c->norm == SASREC_NORM_POST ? ln1 : ln2;
        const float *g2; /* gradient of r2 */
        if (c->norm == SASREC_NORM_POST) {
            vzero(dt, NC);
            k->layernorm_backward(dt, g->ln2w + l * C, g->ln2b + l * C, dx, r2, p->ln2w + l * C,
                                  a->ln2_mean + lm, a->ln2_rstd + lm, N, C);
            g2 = dt;
        } else {
            g2 = dx;
        }
        /* FFN backward: dropout on fc2's output, fc2, relu + dropout, fc1 (input gradient later) */
        nn_dropout_backward(dt2, g2, a->drop ? m2 : NULL, keep, NC);
        vzero(dfch, NF);
        k->linear_backward(dfch, F, g->fc2w + (size_t)l * C * F, g->fc2b + l * C, dt2, C, fch,
                           p->fc2w + (size_t)l * C * F, a->ones, N, F, C);
        relu_dropout_backward(dfch, fch, keep, NF);
        const float *w1 = p->fc1w + (size_t)l * F * C;
        float *gw1 = g->fc1w + (size_t)l * F * C, *gb1 = g->fc1b + l * F;
        if (c->norm == SASREC_NORM_KANG) {
            /* d ln2 = g2 (residual) + FFN path; d r1 = LN2'(d ln2) */
            memcpy(dt, g2, NC * sizeof(float));
            k->linear_backward(dt, C, gw1, gb1, dfch, F, ffin, w1, a->ones, N, C, F);
            vzero(dx, NC);
            k->layernorm_backward(dx, g->ln2w + l * C, g->ln2b + l * C, dt, r1, p->ln2w + l * C,
                                  a->ln2_mean + lm, a->ln2_rstd + lm, N, C);
        } else if (c->norm == SASREC_NORM_PRE) {
            /* d r1 = g2 (residual, already in dx) + LN2'(FFN path) */
            vzero(dt, NC);
            k->linear_backward(dt, C, gw1, gb1, dfch, F, ffin, w1, a->ones, N, C, F);
            k->layernorm_backward(dx, g->ln2w + l * C, g->ln2b + l * C, dt, r1, p->ln2w + l * C,
                                  a->ln2_mean + lm, a->ln2_rstd + lm, N, C);
        } else {
            /* d ln1 = g2 (residual, in dt) + FFN path; d r1 = LN1'(d ln1) */
            k->linear_backward(dt, C, gw1, gb1, dfch, F, ffin, w1, a->ones, N, C, F);
            vzero(dx, NC);
            k->layernorm_backward(dx, g->ln1w + l * C, g->ln1b + l * C, dt, r1, p->ln1w + l * C,
                                  a->ln1_mean + lm, a->ln1_rstd + lm, N, C);
        }
        /* dx = d r1 now. Attention: W_o, then the attention itself. */
        vzero(dt2, NC);
        k->linear_backward(dt2, C, g->attprojw + (size_t)l * C * C, g->attprojb + l * C, dx, C,
                           atty, p->attprojw + (size_t)l * C * C, a->ones, N, C, C);
        vzero(dqkv, 3 * NC);
        k->attention_backward(dqkv, dt2, qkv, att, a->drop ? a->m_att + l * attL : NULL, keep,
                              a->off, a->att_off, B, C, H, 1);
        if (c->norm == SASREC_NORM_KANG) {
            /* d a = d r1 (residual) + Q path; d x = K,V path + LN1'(d a) */
            memcpy(dt, dx, NC * sizeof(float));
            k->linear_backward(dt, C, gqkvw, gqkvb, dqkv, 3 * C, ln1, qkvw, a->ones, N, C, C);
            vzero(dx, NC);
            k->linear_backward(dx, C, gqkvw + (size_t)C * C, gqkvb + C, dqkv + C, 3 * C, x,
                               qkvw + (size_t)C * C, a->ones, N, C, 2 * C);
            k->layernorm_backward(dx, g->ln1w + l * C, g->ln1b + l * C, dt, x, p->ln1w + l * C,
                                  a->ln1_mean + lm, a->ln1_rstd + lm, N, C);
        } else if (c->norm == SASREC_NORM_PRE) {
            /* d x = d r1 (residual) + LN1'(QKV path) */
            vzero(dt, NC);
            k->linear_backward(dt, C, gqkvw, gqkvb, dqkv, 3 * C, ln1, qkvw, a->ones, N, C, 3 * C);
            k->layernorm_backward(dx, g->ln1w + l * C, g->ln1b + l * C, dt, x, p->ln1w + l * C,
                                  a->ln1_mean + lm, a->ln1_rstd + lm, N, C);
        } else {
            /* d x = d r1 (residual) + QKV path */
            k->linear_backward(dx, C, gqkvw, gqkvb, dqkv, 3 * C, x, qkvw, a->ones, N, C, 3 * C);
        }
    }
    /* embedding: d E[item] += sqrt(C) d x0, d P[t] += d x0 */
    embed_backward(g->wte, g->wpe, dx, a->row_item, a->row_t, a->drop ? a->m_emb : NULL, keep, N,
                   C);
}

/* Loss over the target rows; with grad, dh (N, C) and the head's share of dE. */
static double head(sasrec *m, sasrec_acts *a, int grad)
{
    const sasrec_kernels *k = kern(m);
    const int C = m->cfg.C, M = a->M;
#pragma omp parallel for schedule(static) if ((size_t)M * C > NN_PAR_MIN)
    for (int r = 0; r < M; r++)
        memcpy(a->hc + (size_t)r * C, a->hf + (size_t)a->tgt_row[r] * C, (size_t)C * sizeof(float));
    double loss;
    if (m->cfg.loss == SASREC_LOSS_BCE)
        loss = k->bce_loss(grad ? a->dhc : NULL, m->grads.wte, a->hc, a->tgt_item, a->tgt_neg,
                           m->params.wte, M, C, a->scale, a->rowbuf);
    else
        loss = k->ce_loss(grad ? a->dhc : NULL, m->grads.wte, a->hc, a->tgt_item, m->params.wte, M,
                          m->V, C, a->scale, a->logits, a->chunk, a->rowbuf);
    if (grad) {
        vzero(a->dh, (size_t)a->N * C);
#pragma omp parallel for schedule(static) if ((size_t)M * C > NN_PAR_MIN)
        for (int r = 0; r < M; r++)
            memcpy(a->dh + (size_t)a->tgt_row[r] * C, a->dhc + (size_t)r * C,
                   (size_t)C * sizeof(float));
    }
    return loss;
}

static int check_loss(double loss)
{
    if (!isfinite(loss)) {
        DM_ERR(DM_ENUM, "sasrec loss is not finite (%g)", loss);
        DM_HINT("lower sasrec.lr, or check the input batch");
        return DM_ENUM;
    }
    return DM_OK;
}

int sasrec_train_step(sasrec *m, sasrec_acts *a, const sasrec_batch *b, double *loss)
{
    DM_CALL(prepare(m, a, b, 1));
    forward_blocks(m, a);
    *loss = head(m, a, 1);
    DM_CALL(check_loss(*loss));
    backward_blocks(m, a);
    return DM_OK;
}

int sasrec_eval_loss(sasrec *m, sasrec_acts *a, const sasrec_batch *b, double *loss)
{
    DM_CALL(prepare(m, a, b, 1));
    forward_blocks(m, a);
    *loss = head(m, a, 0);
    return DM_OK;
}

void sasrec_zero_grad(sasrec *m) { memset(m->grads_mem, 0, m->nparams * sizeof(float)); }

double sasrec_l2_loss(const sasrec *m)
{
    if (m->cfg.l2 == 0.0f) return 0.0;
    double s = 0.0;
    for (size_t i = 0; i < m->offset[2]; i++) s += (double)m->params_mem[i] * m->params_mem[i];
    return 0.5 * m->cfg.l2 * s;
}

/* torch.optim.Adam (src/nn/adam.h) with betas and eps from cfg, and its coupled weight decay
 * g += l2 w on E and P only (the first two tensors of the slab). */
void sasrec_adam_step(sasrec *m)
{
    const sasrec_config *c = &m->cfg;
    const nn_adam o = {c->lr, c->beta1, c->beta2, c->eps, c->l2, NN_ADAM_L2};
    size_t sizes[SASREC_NTENSORS];
    unsigned char decay[SASREC_NTENSORS] = {1, 1};
    for (int k = 0; k < SASREC_NTENSORS; k++)
        sizes[k] = (k + 1 < SASREC_NTENSORS ? m->offset[k + 1] : m->nparams) - m->offset[k];
    nn_adam_step_tensors(&o, ++m->step, m->params_mem, m->grads_mem, m->m_mem, m->v_mem,
                         SASREC_NTENSORS, sizes, decay);
}

/* ---- inference ------------------------------------------------------------------------------- */

int sasrec_user_states(sasrec *m, sasrec_acts *a, const int32_t *seq, int B, float *out)
{
    sasrec_batch b = {.B = B, .seq = seq};
    const int C = m->cfg.C, T = m->cfg.T;
    DM_CALL(prepare(m, a, &b, 0));
    forward_blocks(m, a);
    for (int s = 0; s < B; s++) {
        int last = a->off[s + 1] - 1;
        if (a->off[s + 1] > a->off[s] && a->row_t[last] == T - 1)
            memcpy(out + (size_t)s * C, a->hf + (size_t)last * C, (size_t)C * sizeof(float));
        else /* position T - 1 is padding: its state is LN_f(0) = b_f */
            memcpy(out + (size_t)s * C, m->params.lnfb, (size_t)C * sizeof(float));
    }
    return DM_OK;
}

void sasrec_scores_block(const sasrec *m, const float *states, int B, int lo, int hi, float *scores)
{
    DM_ASSERT(lo >= 0 && lo <= hi && hi <= m->V);
    if (B <= 0 || hi == lo) return;
    const int C = m->cfg.C;
    nn_sgemm(CblasNoTrans, CblasTrans, B, hi - lo, C, 1.0f, states, C,
             m->params.wte + (size_t)lo * C, C, 0.0f, scores, hi - lo);
}

void sasrec_scores_items(const sasrec *m, const float *states, int B, const int32_t *items, int K,
                         float *scores)
{
    const int C = m->cfg.C;
#pragma omp parallel for schedule(static) if ((size_t)B * K * C > NN_PAR_MIN)
    for (int s = 0; s < B; s++)
        for (int j = 0; j < K; j++) {
            int it = items[(size_t)s * K + j];
            DM_ASSERT(it >= 0 && it < m->V);
            const float *e = m->params.wte + (size_t)it * C, *h = states + (size_t)s * C;
            float d = 0.0f;
            for (int i = 0; i < C; i++) d += h[i] * e[i];
            scores[(size_t)s * K + j] = d;
        }
}

void sasrec_item_table(const sasrec *m, float *out)
{
    memcpy(out, m->params.wte + m->cfg.C, (size_t)m->cfg.n_items * m->cfg.C * sizeof(float));
}

const float *sasrec_hidden(const sasrec_acts *a) { return a->hf; }
