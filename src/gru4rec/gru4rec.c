/* gru4rec.c: GRU4Rec, see gru4rec.h. */
#include "gru4rec.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/gemm.h"
#include "../nn/linear.h"
#include "../nn/xent.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters -------------------------------------------------------------------------------- */

static size_t layer_in(const gru4rec_config *c, int l) { return (size_t)(l == 0 ? c->E : c->H); }

/* lays out the named views over slab s; returns the floats they take */
static size_t views(const gru4rec_config *c, float *s, gru4rec_views *v)
{
    const size_t E = (size_t)c->E, H = (size_t)c->H;
    size_t o = 0;
    v->emb = s + o, o += (size_t)c->n_items * E;
    for (int l = 0; l < c->L; l++) {
        v->w_ih[l] = s + o, o += 3 * H * layer_in(c, l);
        v->w_hh[l] = s + o, o += 3 * H * H;
    }
    v->dense_w = s + o, o += E * H;
    v->dense_b = s + o, o += E;
    return o;
}

static void fill_uniform(dm_rng *r, float *w, size_t n, double bound)
{
    for (size_t k = 0; k < n; k++) w[k] = (float)((2.0 * dm_rng_uniform(r) - 1.0) * bound);
}

static void init_weights(gru4rec_model *m, uint64_t seed)
{
    const gru4rec_config *c = &m->cfg;
    const size_t E = (size_t)c->E, H = (size_t)c->H;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0x6a0, 0));
    double sd = sqrt(2.0 / (double)(c->n_items + c->E)); /* xavier normal: fan_in + fan_out */
    for (size_t k = 0; k < (size_t)c->n_items * E; k++) m->p.emb[k] = (float)(sd * dm_rng_normal(&r));
    for (int l = 0; l < c->L; l++) {
        fill_uniform(&r, m->p.w_ih[l], 3 * H * layer_in(c, l), sqrt(6.0 / (double)(3 * H + layer_in(c, l))));
        fill_uniform(&r, m->p.w_hh[l], 3 * H * H, sqrt(6.0 / (double)(4 * H)));
    }
    fill_uniform(&r, m->p.dense_w, E * H, 1.0 / sqrt((double)H));
    fill_uniform(&r, m->p.dense_b, E, 1.0 / sqrt((double)H));
}

/* ---- set-up -------------------------------------------------------------------------------------- */

static int acts_init(gru4rec_acts *a, const gru4rec_config *c)
{
    const size_t B = (size_t)c->max_batch, T = (size_t)c->T, E = (size_t)c->E, H = (size_t)c->H, BT = B * T;
    const size_t wide = E > H ? E : H, n = (size_t)c->n_items;
    size_t rows = GRU4REC_BLOCK_FLOATS / n;
    rows = rows < 1 ? 1 : rows > BT ? BT : rows;
    DM_ALLOC(a->seq, BT);
    DM_ALLOC(a->tgt, BT);
    DM_ALLOC(a->len, B);
    DM_ALLOC(a->mask, BT * E);
    DM_ALLOC(a->x, BT * E);
    for (int l = 0; l < c->L; l++) {
        DM_ALLOC(a->xg[l], BT * 3 * H);
        DM_ALLOC(a->gate[l], BT * 3 * H);
        DM_ALLOC(a->hgn[l], BT * H);
        DM_ALLOC(a->h[l], BT * H);
    }
    DM_ALLOC(a->hg, B * 3 * H);
    DM_ALLOC(a->vrow, BT);
    DM_ALLOC(a->tv, BT);
    DM_ALLOC(a->rowloss, BT);
    DM_ALLOC(a->hv, BT * H);
    DM_ALLOC(a->ov, BT * E);
    DM_ALLOC(a->logits, rows * n);
    DM_ALLOC(a->dov, BT * E);
    DM_ALLOC(a->dhv, BT * H);
    DM_ALLOC(a->dh, BT * H);
    DM_ALLOC(a->dxg, BT * 3 * H);
    DM_ALLOC(a->dx, BT * wide);
    DM_ALLOC(a->dhg, B * 3 * H);
    DM_ALLOC(a->dhn, B * H);
    return DM_OK;
}

static void acts_free(gru4rec_acts *a)
{
    void *p[] = {a->seq, a->tgt, a->len, a->mask, a->x, a->hg, a->vrow, a->tv, a->rowloss, a->hv, a->ov, a->logits, a->dov, a->dhv, a->dh, a->dxg, a->dx, a->dhg, a->dhn};
    for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) free(p[k]);
    for (int l = 0; l < GRU4REC_MAX_LAYERS; l++) {
        DM_FREE_ALL(a->xg[l], a->gate[l], a->hgn[l], a->h[l]);
    }
    memset(a, 0, sizeof *a);
}

int gru4rec_init(gru4rec_model *m, const gru4rec_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    if (c->n_items < 1 || c->E < 1 || c->H < 1 || c->L < 1 || c->L > GRU4REC_MAX_LAYERS || c->T < 1 || c->max_batch < 1)
        return DM_ERR(DM_ECONFIG, "gru4rec: %d items, emb %d, hidden %d, %d layers (1..%d), maxlen %d, batch %d: every size must be >= 1",
                      c->n_items, c->E, c->H, c->L, GRU4REC_MAX_LAYERS, c->T, c->max_batch);
    m->cfg = *c;
    gru4rec_views tmp;
    m->nparams = views(c, NULL, &tmp);
    int rc = DM_OK;
    m->params = calloc(m->nparams, sizeof(float));
    m->grads = calloc(m->nparams, sizeof(float));
    m->opt = calloc(2 * m->nparams, sizeof(float));
    if (!m->params || !m->grads || !m->opt) rc = DM_ERR(DM_ENOMEM, "gru4rec: out of memory for %zu parameters", m->nparams);
    if (!rc) rc = acts_init(&m->a, c);
    if (!rc && roles) rc = dm_seqs_init(&m->seqs, d, roles, 2);
    if (rc) {
        gru4rec_free(m);
        return rc;
    }
    views(c, m->params, &m->p);
    views(c, m->grads, &m->g);
    for (int l = 0; l < c->L; l++) {
        snprintf(m->tname[2 * l], sizeof m->tname[0], "w_ih_l%d", l);
        snprintf(m->tname[2 * l + 1], sizeof m->tname[0], "w_hh_l%d", l);
    }
    init_weights(m, seed);
    return DM_OK;
}

void gru4rec_free(gru4rec_model *m)
{
    DM_FREE_ALL(m->params, m->grads, m->opt);
    acts_free(&m->a);
    dm_seqs_free(&m->seqs);
    memset(m, 0, sizeof *m);
}

/* ---- one GRU layer (time-major) ------------------------------------------------------------------ */

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* h (Tm, B, H), gate (Tm, B, 3H), hgn (Tm, B, H), xg (Tm, B, 3H) from inp (Tm, B, IC);
 * hg (B, 3H) scratch. */
static void gru_forward(float *h, float *gate, float *hgn, float *xg, float *hg, const float *inp, const float *w_ih, const float *w_hh, int Tm,
                        int B, int IC, int H)
{
    const size_t BH = (size_t)B * (size_t)H, H3 = 3 * (size_t)H;
    nn_linear_forward(xg, inp, w_ih, NULL, Tm * B, IC, 3 * H);
    for (int t = 0; t < Tm; t++) {
        const float *hp = t > 0 ? h + (size_t)(t - 1) * BH : NULL;
        if (hp) nn_linear_forward(hg, hp, w_hh, NULL, B, H, 3 * H);
        else memset(hg, 0, (size_t)B * H3 * sizeof *hg);
        for (int b = 0; b < B; b++) {
            const float *xr = xg + ((size_t)t * B + b) * H3, *hr = hg + (size_t)b * H3;
            float *g = gate + ((size_t)t * B + b) * H3, *hn = hgn + (size_t)t * BH + (size_t)b * H, *ho = h + (size_t)t * BH + (size_t)b * H;
            for (int j = 0; j < H; j++) {
                float r = sigmoidf(xr[j] + hr[j]);
                float z = sigmoidf(xr[H + j] + hr[H + j]);
                float n = tanhf(xr[2 * H + j] + r * hr[2 * H + j]);
                float prev = hp ? hp[(size_t)b * H + j] : 0.0f;
                g[j] = r, g[H + j] = z, g[2 * H + j] = n;
                hn[j] = hr[2 * H + j];
                ho[j] = (1.0f - z) * n + z * prev;
            }
        }
    }
}

/* From dh (Tm, B, H), the gradient into the layer's outputs (consumed): dinp (Tm, B, IC) = the
 * gradient into its inputs (NULL: not needed), dw_ih and dw_hh accumulated. dxg (Tm, B, 3H), dhg
 * (B, 3H), dhn (B, H) scratch. */
static void gru_backward(float *dinp, float *dw_ih, float *dw_hh, float *dh, float *dxg, float *dhg, float *dhn, const float *inp, const float *h,
                         const float *gate, const float *hgn, const float *w_ih, const float *w_hh, int Tm, int B, int IC, int H)
{
    const size_t BH = (size_t)B * (size_t)H, H3 = 3 * (size_t)H;
    memset(dhn, 0, BH * sizeof *dhn);
    for (int t = Tm - 1; t >= 0; t--) {
        const float *hp = t > 0 ? h + (size_t)(t - 1) * BH : NULL;
        for (int b = 0; b < B; b++) {
            const float *g = gate + ((size_t)t * B + b) * H3, *hn = hgn + (size_t)t * BH + (size_t)b * H;
            float *dx3 = dxg + ((size_t)t * B + b) * H3, *dh3 = dhg + (size_t)b * H3, *dn_ = dhn + (size_t)b * H;
            const float *dho = dh + (size_t)t * BH + (size_t)b * H;
            for (int j = 0; j < H; j++) {
                float r = g[j], z = g[H + j], n = g[2 * H + j], prev = hp ? hp[(size_t)b * H + j] : 0.0f;
                float d = dho[j] + dn_[j];
                float dan = d * (1.0f - z) * (1.0f - n * n); /* through n = tanh(a_n) */
                float daz = d * (prev - n) * z * (1.0f - z);
                float dar = dan * hn[j] * r * (1.0f - r);
                dx3[j] = dar, dx3[H + j] = daz, dx3[2 * H + j] = dan;
                dh3[j] = dar, dh3[H + j] = daz, dh3[2 * H + j] = dan * r;
                dn_[j] = d * z;
            }
        }
        /* h_{t-1} feeds step t through W_hh: dh_{t-1} += dhg W_hh, dW_hh += dhg^T h_{t-1} */
        if (hp) nn_linear_backward(dhn, dw_hh, NULL, dhg, hp, w_hh, B, H, 3 * H);
    }
    if (dinp) memset(dinp, 0, (size_t)Tm * (size_t)B * (size_t)IC * sizeof *dinp);
    nn_linear_backward(dinp, dw_ih, NULL, dxg, inp, w_ih, Tm * B, IC, 3 * H);
}

/* ---- the model ------------------------------------------------------------------------------------- */

static int longest(const int *len, int B)
{
    int Tm = 0;
    for (int b = 0; b < B; b++) Tm = len[b] > Tm ? len[b] : Tm;
    return Tm;
}

size_t gru4rec_forward(gru4rec_model *m, int B, const float *mask)
{
    const gru4rec_config *c = &m->cfg;
    gru4rec_acts *a = &m->a;
    const int E = c->E, H = c->H, T = c->T, Tm = longest(a->len, B);
    a->used_mask = mask;
    /* x (Tm, B, E): the embeddings of the inputs, masked; zero beyond a row's length */
    for (int t = 0; t < Tm; t++)
        for (int b = 0; b < B; b++) {
            float *x = a->x + ((size_t)t * B + b) * E;
            if (t >= a->len[b]) {
                memset(x, 0, (size_t)E * sizeof *x);
                continue;
            }
            const float *e = m->p.emb + (size_t)a->seq[(size_t)b * T + t] * E, *mk = mask ? mask + ((size_t)t * B + b) * E : NULL;
            for (int k = 0; k < E; k++) x[k] = mk ? e[k] * mk[k] : e[k];
        }
    const float *inp = a->x;
    for (int l = 0; l < c->L; l++) {
        gru_forward(a->h[l], a->gate[l], a->hgn[l], a->xg[l], a->hg, inp, m->p.w_ih[l], m->p.w_hh[l], Tm, B, (int)layer_in(c, l), H);
        inp = a->h[l];
    }
    /* the valid rows, and o there */
    size_t nv = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < a->len[b]; t++) {
            a->vrow[nv] = t * B + b;
            memcpy(a->hv + nv * (size_t)H, inp + ((size_t)t * B + b) * H, (size_t)H * sizeof(float));
            nv++;
        }
    nn_linear_forward(a->ov, a->hv, m->p.dense_w, m->p.dense_b, (int)nv, H, E);
    return nv;
}

/* cross-entropy over the catalogue for the valid rows (src/nn/xent.h): dov = dlogits E, dE += dlogits^T o */
static int xent_blocks(gru4rec_model *m, int B, size_t nv, double norm, double *loss)
{
    gru4rec_acts *a = &m->a;
    const int T = m->cfg.T;
    for (size_t r = 0; r < nv; r++) a->tv[r] = a->tgt[(size_t)(a->vrow[r] % B) * T + (size_t)(a->vrow[r] / B)];
    double ls = nn_xent_rows(a->dov, m->g.emb, NULL, a->ov, a->tv, m->p.emb, NULL, (int)nv, m->cfg.n_items, m->cfg.E, (float)(1.0 / norm),
                             a->logits, GRU4REC_BLOCK_FLOATS, a->rowloss);
    *loss = ls;
    return isfinite(ls) ? DM_OK : DM_ERR(DM_ENUM, "gru4rec: the loss is not finite (%g); lower gru4rec.lr", ls);
}

int gru4rec_backward(gru4rec_model *m, int B, size_t nv, double norm, double *loss)
{
    const gru4rec_config *c = &m->cfg;
    gru4rec_acts *a = &m->a;
    const int E = c->E, H = c->H, T = c->T, Tm = longest(a->len, B);
    double ls = 0;
    DM_CALL(xent_blocks(m, B, nv, norm, &ls));
    if (loss) *loss = ls;
    /* dense: dhv = dov W_d, dW_d += dov^T hv, db_d += sum dov; scattered into dh (Tm, B, H) */
    memset(a->dhv, 0, nv * (size_t)H * sizeof *a->dhv);
    nn_linear_backward(a->dhv, m->g.dense_w, m->g.dense_b, a->dov, a->hv, m->p.dense_w, (int)nv, H, E);
    memset(a->dh, 0, (size_t)Tm * (size_t)B * (size_t)H * sizeof *a->dh);
    for (size_t r = 0; r < nv; r++) memcpy(a->dh + (size_t)a->vrow[r] * H, a->dhv + r * (size_t)H, (size_t)H * sizeof(float));
    for (int l = c->L - 1; l >= 0; l--) {
        const float *inp = l == 0 ? a->x : a->h[l - 1];
        gru_backward(a->dx, m->g.w_ih[l], m->g.w_hh[l], a->dh, a->dxg, a->dhg, a->dhn, inp, a->h[l], a->gate[l], a->hgn[l], m->p.w_ih[l],
                     m->p.w_hh[l], Tm, B, (int)layer_in(c, l), H);
        if (l > 0) memcpy(a->dh, a->dx, (size_t)Tm * (size_t)B * (size_t)H * sizeof *a->dh);
    }
    /* the embedding rows of the inputs, through the mask (serial: rows repeat) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < a->len[b]; t++) {
            const float *dx = a->dx + ((size_t)t * B + b) * E, *mk = a->used_mask ? a->used_mask + ((size_t)t * B + b) * E : NULL;
            float *de = m->g.emb + (size_t)a->seq[(size_t)b * T + t] * E;
            for (int k = 0; k < E; k++) de[k] += mk ? dx[k] * mk[k] : dx[k];
        }
    return DM_OK;
}

void gru4rec_dropout_row(const gru4rec_model *m, int B, int b, uint64_t seed, uint64_t step, int64_t gidx, float *mask)
{
    const int E = m->cfg.E;
    const double p = m->cfg.dropout;
    const float keep = p > 0 ? (float)(1.0 / (1.0 - p)) : 1.0f;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed ^ 0x64726f70ULL, step, (uint64_t)gidx));
    for (int t = 0; t < m->cfg.T; t++) {
        float *mk = mask + ((size_t)t * B + b) * E;
        for (int k = 0; k < E; k++) mk[k] = p > 0 && dm_rng_uniform(&r) < p ? 0.0f : keep;
    }
}

int gru4rec_train_row(const gru4rec_model *m, size_t k, int32_t *seq, int32_t *tgt)
{
    const int T = m->cfg.T;
    const int32_t *it = m->seqs.items + m->seqs.off[k];
    int64_t len = (int64_t)dm_seqs_len(&m->seqs, k), n = len - 1 < T ? len - 1 : T;
    for (int64_t j = 0; j < n; j++) {
        seq[j] = it[len - 1 - n + j];
        tgt[j] = it[len - n + j];
    }
    return (int)n;
}

int gru4rec_scores(gru4rec_model *m, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores)
{
    gru4rec_acts *a = &m->a;
    const int E = m->cfg.E, T = m->cfg.T, n = m->cfg.n_items;
    const size_t mb = (size_t)m->cfg.max_batch;
    float *st;
    DM_ALLOC(st, mb * (size_t)E);
    for (size_t b0 = 0; b0 < B; b0 += mb) {
        int nb = (int)(B - b0 < mb ? B - b0 : mb);
        for (int b = 0; b < nb; b++) a->len[b] = dm_history_latest(d, roles, split, users[b0 + (size_t)b], T, a->seq + (size_t)b * T);
        gru4rec_forward(m, nb, NULL);
        /* o at each row's last input (the valid rows run (b, t) in order); o = b_d for an empty row */
        size_t v = 0;
        for (int b = 0; b < nb; b++) {
            v += (size_t)a->len[b];
            const float *o = a->len[b] ? a->ov + (v - 1) * (size_t)E : m->p.dense_b;
            memcpy(st + (size_t)b * E, o, (size_t)E * sizeof *st);
        }
        nn_sgemm(CblasNoTrans, CblasTrans, nb, n, E, 1.0f, st, E, m->p.emb, E, 0.0f, scores + b0 * (size_t)n, n);
    }
    free(st);
    return DM_OK;
}

void gru4rec_adam_step(gru4rec_model *m) { DM_MODEL_ADAM_STEP(m); }
