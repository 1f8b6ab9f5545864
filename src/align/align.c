/* align.c: the multimodal base aligner (see align.h): the parameter slab and its tensor table,
 * modality dropout, the item encoders, shared projector, decoders, fusion and user tower, the four
 * losses against a negative bank, the backward pass, AdamW and inference. Matrix work goes through
 * the kernels of align_kernels.h.
 */
#include "align.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/adam.h"
#include "align_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NRM_EPS 1e-12f /* F.normalize's eps: zhat = z / max(|z|, eps) */

static const char *mod_names[ALIGN_K] = {"cf", "text", "visual", "audio"};

const char *align_modality_name(int k)
{
    DM_ASSERT(k >= 0 && k < ALIGN_K);
    return mod_names[k];
}

static const align_kernels *kern(const align_config *c)
{
    return c->naive ? &align_kernels_naive : &align_kernels_fast;
}

/* ---- configuration --------------------------------------------------------------------------- */

static int max_rank(const align_config *c) { return c->max_rank > 0 ? c->max_rank : c->max_users; }
static int max_bank(const align_config *c) { return c->max_bank > 0 ? c->max_bank : c->max_batch; }

int align_config_check(const align_config *c)
{
#define BAD DM_CONFIG_CHECK
    int used = 0;
    for (int k = 0; k < ALIGN_K; k++) {
        BAD(c->dim_in[k] < 0 || c->dim_in[k] > 1000000,
            "align: feature width of modality '%s' = %d is out of range 0..1000000", mod_names[k],
            c->dim_in[k]);
        used += c->dim_in[k] > 0;
    }
    BAD(used == 0, "align: no modality has features (every feature width is 0)");
    BAD(c->dim_user < 0 || c->dim_user > 1000000, "align: user state width %d is out of range",
        c->dim_user);
    BAD(c->d < 1 || c->hidden < 1, "align: d = %d, hidden = %d, expected at least 1", c->d,
        c->hidden);
    BAD(c->act < ALIGN_ACT_RELU || c->act > ALIGN_ACT_TANH, "align: act = %d is unknown", c->act);
    BAD(c->fusion != ALIGN_FUSE_MEAN && c->fusion != ALIGN_FUSE_GATE,
        "align: fusion = %d is unknown", c->fusion);
    BAD(c->rank_loss != ALIGN_RANK_SOFTMAX && c->rank_loss != ALIGN_RANK_BCE,
        "align: rank_loss = %d is unknown", c->rank_loss);
    BAD(c->n_neg < 0, "align: n_neg = %d is negative", c->n_neg);
    BAD(c->max_batch < 1 || c->max_batch > 100000000, "align: max_batch = %d is out of range",
        c->max_batch);
    BAD(c->max_users < 1 || c->max_users > 100000000, "align: max_users = %d is out of range",
        c->max_users);
    BAD(c->max_rank < 0 || c->max_rank > 100000000, "align: max_rank = %d is out of range",
        c->max_rank);
    BAD(max_bank(c) < c->max_batch || max_bank(c) > 1000000000,
        "align: max_bank = %d must hold at least max_batch = %d rows", max_bank(c), c->max_batch);
#undef BAD
    return DM_OK;
}

/* ---- the tensor table ------------------------------------------------------------------------ */

/* Every possible tensor has a fixed slot (also its initialisation key), whichever exist. */
enum {
    S_ENC = 0,                   /* + 4 k + {w1, b1, w2, b2} */
    S_PROJ_W = 4 * ALIGN_K,
    S_PROJ_B,
    S_USER_W1,
    S_USER_B1,
    S_USER_W2,
    S_USER_B2,
    S_DEC,                       /* + 4 k + {w1, b1, w2, b2} */
    S_FUSE_GATE = S_DEC + 4 * ALIGN_K,
    S_FUSE_QUERY,
    S_N
};

static const char *slot_names[S_N] = {
    "enc.cf.w1",     "enc.cf.b1",     "enc.cf.w2",     "enc.cf.b2",     "enc.text.w1",
    "enc.text.b1",   "enc.text.w2",   "enc.text.b2",   "enc.visual.w1", "enc.visual.b1",
    "enc.visual.w2", "enc.visual.b2", "enc.audio.w1",  "enc.audio.b1",  "enc.audio.w2",
    "enc.audio.b2",  "proj.w",        "proj.b",        "user.w1",       "user.b1",
    "user.w2",       "user.b2",       "dec.cf.w1",     "dec.cf.b1",     "dec.cf.w2",
    "dec.cf.b2",     "dec.text.w1",   "dec.text.b1",   "dec.text.w2",   "dec.text.b2",
    "dec.visual.w1", "dec.visual.b1", "dec.visual.w2", "dec.visual.b2", "dec.audio.w1",
    "dec.audio.b1",  "dec.audio.w2",  "dec.audio.b2",  "fuse.gate",     "fuse.query"};

/* Shape of slot s (0 rows = the tensor does not exist); returns the rank. */
static int slot_shape(const align_config *c, int s, size_t shape[2])
{
    size_t H = (size_t)c->hidden, d = (size_t)c->d, Du = (size_t)c->dim_user;
    shape[0] = shape[1] = 0;
    if (s < S_PROJ_W || (s >= S_DEC && s < S_FUSE_GATE)) {
        int dec = s >= S_DEC, k = (s - (dec ? S_DEC : S_ENC)) / 4, j = (s - (dec ? S_DEC : S_ENC)) % 4;
        size_t D = (size_t)c->dim_in[k];
        if (D == 0) return 0;
        size_t in1 = dec ? d : D, out2 = dec ? D : H;
        switch (j) {
        case 0: shape[0] = H, shape[1] = in1; return 2;
        case 1: shape[0] = H; return 1;
        case 2: shape[0] = out2, shape[1] = H; return 2;
        default: shape[0] = out2; return 1;
        }
    }
    switch (s) {
    case S_PROJ_W: shape[0] = d, shape[1] = H; return 2;
    case S_PROJ_B: shape[0] = d; return 1;
    case S_USER_W1: if (Du) shape[0] = H, shape[1] = Du; return 2;
    case S_USER_B1: if (Du) shape[0] = H; return 1;
    case S_USER_W2: if (Du) shape[0] = H, shape[1] = H; return 2;
    case S_USER_B2: if (Du) shape[0] = H; return 1;
    case S_FUSE_GATE: if (c->fusion == ALIGN_FUSE_GATE) shape[0] = ALIGN_K; return 1;
    case S_FUSE_QUERY: if (c->fusion == ALIGN_FUSE_GATE) shape[0] = d; return 1;
    }
    DM_ASSERT(0);
    return 0;
}

static float **slot_view(align_params *p, int s)
{
    if (s < S_PROJ_W) {
        int k = s / 4;
        float **v[4] = {&p->enc_w1[k], &p->enc_b1[k], &p->enc_w2[k], &p->enc_b2[k]};
        return v[s % 4];
    }
    if (s >= S_DEC && s < S_FUSE_GATE) {
        int k = (s - S_DEC) / 4;
        float **v[4] = {&p->dec_w1[k], &p->dec_b1[k], &p->dec_w2[k], &p->dec_b2[k]};
        return v[(s - S_DEC) % 4];
    }
    switch (s) {
    case S_PROJ_W: return &p->proj_w;
    case S_PROJ_B: return &p->proj_b;
    case S_USER_W1: return &p->user_w1;
    case S_USER_B1: return &p->user_b1;
    case S_USER_W2: return &p->user_w2;
    case S_USER_B2: return &p->user_b2;
    case S_FUSE_GATE: return &p->fuse_gate;
    default: return &p->fuse_query;
    }
}

/* slot of tensor t: the existing slots in order */
static int tensor_slot(const align_model *m, int t)
{
    DM_ASSERT(t >= 0 && t < m->ntensors);
    int seen = 0;
    for (int s = 0; s < S_N; s++) {
        size_t sh[2];
        slot_shape(&m->cfg, s, sh);
        if (sh[0] == 0) continue;
        if (seen++ == t) return s;
    }
    DM_ASSERT(0);
    return -1;
}

size_t align_tensor_info(const align_model *m, int t, const char **name, int *ndim,
                         size_t shape[2])
{
    int s = tensor_slot(m, t);
    size_t sh[2];
    int nd = slot_shape(&m->cfg, s, sh);
    if (name) *name = slot_names[s];
    if (ndim) *ndim = nd;
    if (shape) shape[0] = sh[0], shape[1] = nd == 2 ? sh[1] : 0;
    return nd == 2 ? sh[0] * sh[1] : sh[0];
}

int align_tensor_find(const align_model *m, const char *name)
{
    for (int t = 0; t < m->ntensors; t++) {
        const char *n;
        align_tensor_info(m, t, &n, NULL, NULL);
        if (!strcmp(n, name)) return t;
    }
    return -1;
}

static void set_views(const align_model *m, align_params *p, float *base)
{
    memset(p, 0, sizeof *p);
    for (int t = 0; t < m->ntensors; t++) *slot_view(p, tensor_slot(m, t)) = base + m->offset[t];
}

int align_init(align_model *m, const align_config *cfg)
{
    memset(m, 0, sizeof *m);
    DM_CALL(align_config_check(cfg));
    m->cfg = *cfg;
    size_t n = 0;
    for (int s = 0; s < S_N; s++) {
        size_t sh[2];
        int nd = slot_shape(&m->cfg, s, sh);
        if (sh[0] == 0) continue;
        m->offset[m->ntensors++] = n;
        n += nd == 2 ? sh[0] * sh[1] : sh[0];
    }
    m->nparams = n;
    m->params_mem = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
    m->grads_mem = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
    m->m_mem = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
    m->v_mem = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
    if (!m->params_mem || !m->grads_mem || !m->m_mem || !m->v_mem) {
        align_free(m);
        return DM_ENOMEM;
    }
    set_views(m, &m->params, m->params_mem);
    set_views(m, &m->grads, m->grads_mem);
    return DM_OK;
}

void align_free(align_model *m)
{
    DM_FREE_ALL(m->params_mem, m->grads_mem, m->m_mem, m->v_mem);
    memset(m, 0, sizeof *m);
}

void align_init_weights(align_model *m, uint64_t seed)
{
    for (int t = 0; t < m->ntensors; t++) {
        int s = tensor_slot(m, t), nd;
        size_t sh[2];
        size_t n = align_tensor_info(m, t, NULL, &nd, sh);
        float *w = m->params_mem + m->offset[t];
        if (s == S_FUSE_GATE || s == S_FUSE_QUERY) {
            memset(w, 0, n * sizeof(float));
            continue;
        }
        /* torch.nn.Linear: kaiming_uniform(a = sqrt 5) = uniform(+-1/sqrt(fan_in)) for the weight,
         * the same bound for the bias; a bias slot follows its weight's */
        size_t wsh[2];
        size_t fan_in = nd == 2 ? sh[1] : (slot_shape(&m->cfg, s - 1, wsh), wsh[1]);
        double bound = 1.0 / sqrt((double)fan_in);
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(seed, 0xa11a, (uint64_t)s));
        for (size_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * dm_rng_uniform(&r) - 1.0));
    }
    memset(m->grads_mem, 0, m->nparams * sizeof(float));
    memset(m->m_mem, 0, m->nparams * sizeof(float));
    memset(m->v_mem, 0, m->nparams * sizeof(float));
    m->step = 0;
}

/* ---- activations ----------------------------------------------------------------------------- */

static int acts_alloc(align_acts *a, const align_config *c)
{
    size_t B = (size_t)c->max_batch, U = (size_t)c->max_users, R = (size_t)max_rank(c);
    size_t G = (size_t)max_bank(c), K = ALIGN_K, d = (size_t)c->d, H = (size_t)c->hidden;
    size_t BU = B > U ? B : U, BK = B * K;
    a->cfg = *c;
    DM_ALLOC(a->mask, BK);
    DM_ALLOC(a->z, BK * d);
    DM_ALLOC(a->zb, B * d);
    DM_ALLOC(a->alpha, BK);
    DM_ALLOC(a->hu, U * d);
    for (int k = 0; k < ALIGN_K; k++) {
        size_t D = (size_t)c->dim_in[k];
        if (!D) continue;
        DM_ALLOC(a->rows[k], B);
        DM_ALLOC(a->xin[k], B * D);
        DM_ALLOC(a->eh[k], B * H);
        DM_ALLOC(a->ea[k], B * H);
        DM_ALLOC(a->eo[k], B * H);
        DM_ALLOC(a->zc[k], B * d);
        DM_ALLOC(a->dh[k], B * H);
        DM_ALLOC(a->da[k], B * H);
        DM_ALLOC(a->xhat[k], B * D);
        DM_ALLOC(a->dxhat[k], B * D);
    }
    if (c->dim_user) {
        DM_ALLOC(a->uh, U * H);
        DM_ALLOC(a->ua, U * H);
        DM_ALLOC(a->uo, U * H);
    }
    DM_ALLOC(a->dz, BK * d);
    DM_ALLOC(a->dzb, B * d);
    DM_ALLOC(a->dhu, U * d);
    DM_ALLOC(a->zhat, BK * d);
    DM_ALLOC(a->znrm, BK);
    DM_ALLOC(a->sd, BU * d);
    DM_ALLOC(a->sh1, BU * H);
    DM_ALLOC(a->sh2, BU * H);
    DM_ALLOC(a->bhat, G * d);
    DM_ALLOC(a->dbhat, G * d);
    DM_ALLOC(a->bnrm, G);
    DM_ALLOC(a->bidx, G);
    DM_ALLOC(a->bmap, G);
    DM_ALLOC(a->bitem, G);
    DM_ALLOC(a->anc, BK * d);
    DM_ALLOC(a->danc, BK * d);
    DM_ALLOC(a->apos, BK);
    DM_ALLOC(a->asrc, BK);
    DM_ALLOC(a->aitem, BK);
    DM_ALLOC(a->rowloss, BK > R ? BK : R);
    a->chunk = c->chunk_floats > G ? c->chunk_floats : G;
    DM_ALLOC(a->logits, a->chunk);
    DM_ALLOC(a->dbank_self, BK * d);
    DM_ALLOC(a->sc, R * (size_t)(1 + c->n_neg));
    return DM_OK;
}

int align_acts_init(align_acts *a, const align_config *cfg)
{
    memset(a, 0, sizeof *a);
    DM_CALL(align_config_check(cfg));
    int rc = acts_alloc(a, cfg);
    if (rc != DM_OK) align_acts_free(a);
    return rc;
}

void align_acts_free(align_acts *a)
{
    float **f[] = {&a->z,   &a->zb,   &a->alpha, &a->hu,   &a->uh,   &a->ua,    &a->uo,
                   &a->dz,  &a->dzb,  &a->dhu,   &a->zhat, &a->znrm, &a->sd,    &a->sh1,
                   &a->sh2, &a->bhat, &a->dbhat, &a->bnrm, &a->anc,  &a->danc,  &a->logits,
                   &a->dbank_self, &a->sc};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) DM_FREE(*f[i]);
    for (int k = 0; k < ALIGN_K; k++) {
        DM_FREE_ALL(a->rows[k], a->xin[k], a->eh[k], a->ea[k], a->eo[k], a->zc[k], a->dh[k], a->da[k],
                    a->xhat[k], a->dxhat[k]);
    }
    DM_FREE_ALL(a->mask, a->bidx, a->bmap, a->bitem, a->apos, a->asrc, a->aitem, a->rowloss);
    memset(a, 0, sizeof *a);
}

/* ---- elementwise pieces ---------------------------------------------------------------------- */

/* y = act(x), n elements */
static void act_forward(float *y, const float *x, size_t n, int act)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        switch (act) {
        case ALIGN_ACT_RELU: y[i] = v > 0.0f ? v : 0.0f; break;
        case ALIGN_ACT_GELU: y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
        default: y[i] = tanhf(v); break;
        }
    }
}

/* dx = dy act'(x) (dx may alias dy); x the pre-activation, y = act(x) */
static void act_backward(float *dx, const float *dy, const float *x, const float *y, size_t n,
                         int act)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i], g;
        switch (act) {
        case ALIGN_ACT_RELU: g = v > 0.0f ? 1.0f : 0.0f; break;
        case ALIGN_ACT_GELU: /* Phi(x) + x phi(x) */
            g = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) +
                v * 0.39894228040143268f * expf(-0.5f * v * v);
            break;
        default: g = 1.0f - y[i] * y[i]; break;
        }
        dx[i] = dy[i] * g;
    }
}

static double dot(const float *a, const float *b, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double softplus(double x) { return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x))); }

/* ---- modality dropout ------------------------------------------------------------------------ */

void align_modality_dropout(float p, uint64_t seed, uint64_t step, int64_t item,
                            const uint8_t present[ALIGN_K], uint8_t keep[ALIGN_K])
{
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, step, (uint64_t)item));
    int np = 0, nk = 0;
    for (int k = 0; k < ALIGN_K; k++) { /* always four draws: absent modalities shift nothing */
        double u = dm_rng_uniform(&r);
        keep[k] = present[k] && !(u < p);
        np += present[k] != 0;
        nk += keep[k];
    }
    if (np > 0 && nk == 0) { /* never drop them all: keep one present modality uniformly */
        int j = (int)dm_rng_below(&r, (uint64_t)np);
        for (int k = 0; k < ALIGN_K; k++)
            if (present[k] && j-- == 0) keep[k] = 1;
    }
}

/* ---- forward --------------------------------------------------------------------------------- */

/* The activations were sized for this model's widths (their batch sizes may differ). */
static int acts_match(const align_model *m, const align_acts *a)
{
    const align_config *c = &m->cfg, *q = &a->cfg;
    int same = c->d == q->d && c->hidden == q->hidden && c->dim_user == q->dim_user &&
               c->n_neg == q->n_neg;
    for (int k = 0; k < ALIGN_K; k++) same &= c->dim_in[k] == q->dim_in[k];
    if (!same) {
        DM_ERR(DM_EINTERNAL, "align: activations sized for another model configuration");
        return DM_EINTERNAL;
    }
    return DM_OK;
}

/* Item side for B items: effective masks, encoders + projector into a->z, fusion into a->zb and
 * (with_dec) the decoders. */
static int forward_items(align_model *m, align_acts *a, int B, const float *const x[ALIGN_K],
                         const int64_t *xrow, const uint8_t *present, const int64_t *item,
                         uint64_t seed, uint64_t step, int train, int with_dec)
{
    const align_config *c = &m->cfg;
    const align_kernels *K = kern(c);
    const int d = c->d, H = c->hidden;
    const align_params *p = &m->params;
    DM_CALL(acts_match(m, a));
    if (B < 0 || B > a->cfg.max_batch) {
        DM_ERR(DM_EINPUT, "align: batch of %d items exceeds max_batch = %d", B, a->cfg.max_batch);
        return DM_EINPUT;
    }
    if (B > 0 && !present) {
        DM_ERR(DM_EINPUT, "align: batch of %d items without presence flags", B);
        return DM_EINPUT;
    }
    a->B = B;
    a->has_grad = 0;
    const int drop = train && c->modality_dropout > 0.0f;
    for (int i = 0; i < B; i++) {
        uint8_t pr[ALIGN_K];
        for (int k = 0; k < ALIGN_K; k++) {
            pr[k] = present[(size_t)i * ALIGN_K + k] && c->dim_in[k] > 0;
            if (pr[k] && !x[k]) {
                DM_ERR(DM_EINPUT, "align: item %d has modality '%s' but no feature table was given",
                       i, mod_names[k]);
                return DM_EINPUT;
            }
        }
        if (xrow && xrow[i] < 0) {
            DM_ERR(DM_EINPUT, "align: item %d has feature row %lld", i, (long long)xrow[i]);
            return DM_EINPUT;
        }
        uint8_t *mk = a->mask + (size_t)i * ALIGN_K;
        if (drop)
            align_modality_dropout(c->modality_dropout, seed, step, item ? item[i] : i, pr, mk);
        else
            memcpy(mk, pr, ALIGN_K);
    }
    memset(a->z, 0, (size_t)B * ALIGN_K * d * sizeof(float));
    for (int k = 0; k < ALIGN_K; k++) {
        const int D = c->dim_in[k];
        a->n[k] = 0;
        if (!D) continue;
        int n = 0;
        for (int i = 0; i < B; i++)
            if (a->mask[(size_t)i * ALIGN_K + k]) a->rows[k][n++] = i;
        a->n[k] = n;
        if (!n) continue;
        const int *rows = a->rows[k];
#pragma omp parallel for schedule(static) if ((size_t)n * D > NN_PAR_MIN)
        for (int r = 0; r < n; r++) {
            size_t src = xrow ? (size_t)xrow[rows[r]] : (size_t)rows[r];
            memcpy(a->xin[k] + (size_t)r * D, x[k] + src * D, (size_t)D * sizeof(float));
        }
        /* z = P(enc_k(x)) */
        K->linear_forward(a->eh[k], a->xin[k], p->enc_w1[k], p->enc_b1[k], n, D, H);
        act_forward(a->ea[k], a->eh[k], (size_t)n * H, c->act);
        K->linear_forward(a->eo[k], a->ea[k], p->enc_w2[k], p->enc_b2[k], n, H, H);
        K->linear_forward(a->zc[k], a->eo[k], p->proj_w, p->proj_b, n, H, d);
        for (int r = 0; r < n; r++)
            memcpy(a->z + ((size_t)rows[r] * ALIGN_K + k) * d, a->zc[k] + (size_t)r * d,
                   (size_t)d * sizeof(float));
        if (with_dec) { /* xhat = dec_k(z) */
            K->linear_forward(a->dh[k], a->zc[k], p->dec_w1[k], p->dec_b1[k], n, d, H);
            act_forward(a->da[k], a->dh[k], (size_t)n * H, c->act);
            K->linear_forward(a->xhat[k], a->da[k], p->dec_w2[k], p->dec_b2[k], n, H, D);
        }
    }
    /* fusion: z_base = sum_k alpha_k z^k over the present set */
    const int gate = c->fusion == ALIGN_FUSE_GATE;
#pragma omp parallel for schedule(static) if ((size_t)B * ALIGN_K * d > NN_PAR_MIN)
    for (int i = 0; i < B; i++) {
        const uint8_t *mk = a->mask + (size_t)i * ALIGN_K;
        const float *zi = a->z + (size_t)i * ALIGN_K * d;
        float *al = a->alpha + (size_t)i * ALIGN_K, *zb = a->zb + (size_t)i * d;
        int cnt = 0;
        double s[ALIGN_K], mx = -INFINITY, sum = 0.0;
        for (int k = 0; k < ALIGN_K; k++) {
            al[k] = 0.0f;
            if (!mk[k]) continue;
            cnt++;
            s[k] = gate ? p->fuse_gate[k] + dot(p->fuse_query, zi + (size_t)k * d, d) : 0.0;
            if (s[k] > mx) mx = s[k];
        }
        for (int k = 0; k < ALIGN_K; k++)
            if (mk[k]) sum += exp(s[k] - mx);
        for (int k = 0; k < ALIGN_K; k++)
            if (mk[k]) al[k] = (float)(exp(s[k] - mx) / sum);
        for (int j = 0; j < d; j++) {
            double v = 0.0;
            for (int k = 0; k < ALIGN_K; k++)
                if (mk[k]) v += (double)al[k] * zi[(size_t)k * d + j];
            zb[j] = cnt ? (float)v : 0.0f;
        }
    }
    return DM_OK;
}

static int forward_users(align_model *m, align_acts *a, int U, const float *r)
{
    const align_config *c = &m->cfg;
    const align_kernels *K = kern(c);
    const align_params *p = &m->params;
    DM_CALL(acts_match(m, a));
    if (U < 0 || U > a->cfg.max_users) {
        DM_ERR(DM_EINPUT, "align: batch of %d users exceeds max_users = %d", U, a->cfg.max_users);
        return DM_EINPUT;
    }
    if (U > 0 && (!c->dim_user || !r)) {
        DM_ERR(DM_EINPUT, "align: %d users given but %s", U,
               c->dim_user ? "no user states" : "the model has no user tower (dim_user = 0)");
        return DM_EINPUT;
    }
    a->U = U;
    if (!U) return DM_OK;
    const int H = c->hidden;
    /* h_u = P(enc_user(r_u)) */
    K->linear_forward(a->uh, r, p->user_w1, p->user_b1, U, c->dim_user, H);
    act_forward(a->ua, a->uh, (size_t)U * H, c->act);
    K->linear_forward(a->uo, a->ua, p->user_w2, p->user_b2, U, H, H);
    K->linear_forward(a->hu, a->uo, p->proj_w, p->proj_b, U, H, c->d);
    return DM_OK;
}

int align_forward(align_model *m, align_acts *a, const align_batch *b)
{
    const align_config *c = &m->cfg;
    DM_CALL(forward_items(m, a, b->B, b->x, b->xrow, b->present, b->item, b->seed, b->step,
                          b->train, 1));
    DM_CALL(forward_users(m, a, b->U, b->r));
    if (b->R < 0 || b->R > max_rank(&a->cfg)) {
        DM_ERR(DM_EINPUT, "align: %d rank examples exceed max_rank = %d", b->R, max_rank(&a->cfg));
        return DM_EINPUT;
    }
    for (int e = 0; e < b->R; e++) {
        int bad = b->ex_user[e] < 0 || b->ex_user[e] >= b->U || b->ex_pos[e] < 0 ||
                  b->ex_pos[e] >= b->B;
        for (int j = 0; j < c->n_neg && !bad; j++) {
            int32_t v = b->ex_neg[(size_t)e * c->n_neg + j];
            bad = v < 0 || v >= b->B;
        }
        if (bad) {
            DM_ERR(DM_EINPUT, "align: rank example %d refers to a user outside 0..%d or an item "
                   "outside 0..%d", e, b->U - 1, b->B - 1);
            DM_HINT("positives and negatives are rows of this rank's item batch");
            return DM_EINPUT;
        }
    }
    a->R = b->R;
    return DM_OK;
}

/* ---- losses ---------------------------------------------------------------------------------- */

/* zhat = z / max(|z|, eps): backward dz += (dzh - zh (zh . dzh)) / |z| (dzh / eps when clamped) */
static void l2n_backward(float *dz, const float *dzh, const float *zh, float nrm, int d)
{
    if (nrm <= NRM_EPS) {
        for (int j = 0; j < d; j++) dz[j] += dzh[j] / NRM_EPS;
        return;
    }
    double t = dot(zh, dzh, d);
    for (int j = 0; j < d; j++) dz[j] += (float)((dzh[j] - zh[j] * t) / nrm);
}

static float l2n(float *zh, const float *z, int d)
{
    float nrm = (float)sqrt(dot(z, z, d));
    float den = nrm > NRM_EPS ? nrm : NRM_EPS;
    for (int j = 0; j < d; j++) zh[j] = z[j] / den;
    return nrm;
}

/* The bank must hold this rank's forward batch at rows lo .. lo + B - 1. */
static int loss_check(const align_acts *a, const align_batch *b, const align_bank *bank)
{
    const int B = a->B, G = bank->G, lo = bank->lo;
    const size_t Kd = (size_t)ALIGN_K * a->cfg.d;
    if (G < B || G > max_bank(&a->cfg) || lo < 0 || lo > G - B) {
        DM_ERR(DM_EINPUT, "align: bank of %d rows (max_bank %d) cannot hold this rank's %d items "
               "at row %d", G, max_bank(&a->cfg), B, lo);
        return DM_EINPUT;
    }
    if (b->B != B || b->R != a->R || b->U != a->U) {
        DM_ERR(DM_EINPUT, "align: loss batch (B %d, U %d, R %d) is not the forward batch (B %d, U "
               "%d, R %d)", b->B, b->U, b->R, B, a->U, a->R);
        return DM_EINPUT;
    }
    if (B > 0 && (memcmp(bank->mask + (size_t)lo * ALIGN_K, a->mask, (size_t)B * ALIGN_K) ||
                  memcmp(bank->z + (size_t)lo * Kd, a->z, (size_t)B * Kd * sizeof(float)))) {
        DM_ERR(DM_EINPUT, "align: bank rows %d..%d do not hold this rank's latents", lo,
               lo + B - 1);
        DM_HINT("gather a->z and a->mask of every rank in rank order after align_forward");
        return DM_EINPUT;
    }
    return DM_OK;
}

/* The normalisers into loss->n_*: the batch's given ones, else counted from the bank's mask
 * (present ordered pairs, present (i, k), items with cf and text) and this batch's examples. */
static void loss_norms(const align_config *c, const align_batch *b, const align_bank *bank,
                       align_losses *loss)
{
    double n_nce = 0, n_rec = 0, n_match = 0;
    for (int j = 0; j < bank->G; j++) {
        const uint8_t *mk = bank->mask + (size_t)j * ALIGN_K;
        int cnt = 0;
        for (int k = 0; k < ALIGN_K; k++) cnt += mk[k] && c->dim_in[k];
        if (!bank->nce || bank->nce[j]) n_nce += (double)cnt * (cnt - 1);
        n_rec += cnt;
        n_match += mk[ALIGN_CF] && mk[ALIGN_TEXT] && c->dim_in[ALIGN_CF] && c->dim_in[ALIGN_TEXT];
    }
    loss->n_nce = b->norm.nce > 0 ? b->norm.nce : n_nce;
    loss->n_recon = b->norm.recon > 0 ? b->norm.recon : n_rec;
    loss->n_match = b->norm.match > 0 ? b->norm.match : n_match;
    loss->n_rank = b->norm.rank > 0 ? b->norm.rank : (double)b->R;
}

/* The InfoNCE candidates of modality l: the bank rows that have it (and take part in InfoNCE),
 * normalised into a->bhat, with a->bidx / a->bmap between compact and bank rows. Returns their
 * count. */
static int nce_bank_rows(align_acts *a, const align_bank *bank, int l)
{
    const int d = a->cfg.d;
    const size_t Kd = (size_t)ALIGN_K * d;
    int nb = 0;
    for (int j = 0; j < bank->G; j++) {
        a->bmap[j] = -1;
        if (!bank->mask[(size_t)j * ALIGN_K + l] || (bank->nce && !bank->nce[j])) continue;
        a->bmap[j] = nb;
        a->bidx[nb] = j;
        a->bitem[nb] = bank->item ? bank->item[j] : j;
        a->bnrm[nb] = l2n(a->bhat + (size_t)nb * d, bank->z + (size_t)j * Kd + (size_t)l * d, d);
        nb++;
    }
    return nb;
}

/* The anchors against modality l: every other present modality k of the local items that have l,
 * normalised, with their positive (the item's own compact bank row), item id and source. Returns
 * their count. */
static int nce_anchors(align_acts *a, const align_batch *b, const align_bank *bank, int l)
{
    const int d = a->cfg.d, lo = bank->lo;
    int na = 0;
    for (int i = 0; i < a->B; i++) {
        const uint8_t *mk = a->mask + (size_t)i * ALIGN_K;
        if (!mk[l] || (bank->nce && !bank->nce[lo + i])) continue;
        for (int k = 0; k < ALIGN_K; k++) {
            if (k == l || !mk[k]) continue;
            memcpy(a->anc + (size_t)na * d, a->zhat + ((size_t)i * ALIGN_K + k) * d,
                   (size_t)d * sizeof(float));
            a->apos[na] = a->bmap[lo + i];
            a->aitem[na] = b->item ? b->item[i] : lo + i;
            a->asrc[na] = i * ALIGN_K + k;
            na++;
        }
    }
    return na;
}

/* InfoNCE: anchors z_i^k (local), positive and negatives from the bank's modality l; with grad,
 * the gradients go to a->dz (anchors) and dbank (candidates). Returns the sum over anchors. */
static double loss_nce(const align_config *c, align_acts *a, const align_batch *b,
                       const align_bank *bank, float *dbank, int grad, const align_losses *loss)
{
    const align_kernels *K = kern(c);
    const int B = a->B, d = c->d;
    const size_t Kd = (size_t)ALIGN_K * d;
    double s_nce = 0.0;
    for (int i = 0; i < B; i++)
        for (int k = 0; k < ALIGN_K; k++)
            if (a->mask[(size_t)i * ALIGN_K + k])
                a->znrm[(size_t)i * ALIGN_K + k] =
                    l2n(a->zhat + ((size_t)i * ALIGN_K + k) * d, a->z + ((size_t)i * ALIGN_K + k) * d, d);
    const float gnce = loss->n_nce > 0 ? (float)(c->w_nce / loss->n_nce) : 0.0f;
    for (int l = 0; l < ALIGN_K && loss->n_nce > 0; l++) {
        if (!c->dim_in[l]) continue;
        int nb = nce_bank_rows(a, bank, l);
        int na = nce_anchors(a, b, bank, l);
        if (!na || !nb) continue;
        const int excl = b->item && bank->item;
        const int g_on = grad && gnce != 0.0f; /* w_nce = 0: the loss is still reported */
        if (g_on) memset(a->dbhat, 0, (size_t)nb * d * sizeof(float));
        s_nce += K->nce(g_on ? a->danc : NULL, a->dbhat, a->anc, a->apos, excl ? a->aitem : NULL,
                        na, a->bhat, excl ? a->bitem : NULL, nb, d, 1.0f / c->tau, gnce,
                        a->logits, a->chunk, a->rowloss);
        if (!g_on) continue;
        for (int r = 0; r < na; r++) {
            int src = a->asrc[r];
            l2n_backward(a->dz + (size_t)src * d, a->danc + (size_t)r * d,
                         a->zhat + (size_t)src * d, a->znrm[src], d);
        }
        for (int q = 0; q < nb; q++)
            l2n_backward(dbank + (size_t)a->bidx[q] * Kd + (size_t)l * d, a->dbhat + (size_t)q * d,
                         a->bhat + (size_t)q * d, a->bnrm[q], d);
    }
    return s_nce;
}

/* Reconstruction: sum over present (i, k) of (1/D_k) |xhat - x|^2; with grad, a->dxhat. */
static double loss_recon(const align_config *c, align_acts *a, int grad, const align_losses *loss)
{
    double s_rec = 0.0;
    for (int k = 0; k < ALIGN_K; k++) {
        const int D = c->dim_in[k], n = a->n[k];
        if (!D || !n) continue;
        const double g = loss->n_recon > 0 ? 2.0 * c->w_recon / ((double)D * loss->n_recon) : 0.0;
        for (size_t e = 0; e < (size_t)n * D; e++) {
            double diff = (double)a->xhat[k][e] - a->xin[k][e];
            s_rec += diff * diff / D;
            if (grad) a->dxhat[k][e] = (float)(g * diff);
        }
    }
    return s_rec;
}

/* Matching (A-LLMRec): sum over items with cf and text of (1/d) |z^cf - z^text|^2; with grad,
 * added to a->dz. */
static double loss_match(const align_config *c, align_acts *a, int grad, const align_losses *loss)
{
    const int d = c->d;
    const size_t Kd = (size_t)ALIGN_K * d;
    double s_match = 0.0;
    if (!c->dim_in[ALIGN_CF] || !c->dim_in[ALIGN_TEXT] || loss->n_match <= 0) return 0.0;
    const double g = 2.0 * c->w_match / ((double)d * loss->n_match);
    for (int i = 0; i < a->B; i++) {
        const uint8_t *mk = a->mask + (size_t)i * ALIGN_K;
        if (!mk[ALIGN_CF] || !mk[ALIGN_TEXT]) continue;
        const float *zc = a->z + (size_t)i * Kd + (size_t)ALIGN_CF * d;
        const float *zt = a->z + (size_t)i * Kd + (size_t)ALIGN_TEXT * d;
        float *dc = a->dz + (size_t)i * Kd + (size_t)ALIGN_CF * d;
        float *dt = a->dz + (size_t)i * Kd + (size_t)ALIGN_TEXT * d;
        for (int j = 0; j < d; j++) {
            double diff = (double)zc[j] - zt[j];
            s_match += diff * diff / d;
            if (grad) {
                dc[j] += (float)(g * diff);
                dt[j] -= (float)(g * diff);
            }
        }
    }
    return s_match;
}

/* Recommendation: s = h_u . z_base over each example's positive and sampled negatives, softmax or
 * BCE; with grad, a->dhu and a->dzb. Returns the sum over examples. */
static double loss_rank(const align_config *c, align_acts *a, const align_batch *b, int grad,
                        const align_losses *loss)
{
    const int d = c->d, nn = c->n_neg, nc = 1 + nn;
    const double grank = loss->n_rank > 0 ? c->w_rank / loss->n_rank : 0.0;
    double s_rank = 0.0;
    for (int e = 0; e < b->R; e++) {
        const int u = b->ex_user[e];
        const float *h = a->hu + (size_t)u * d;
        float *sc = a->sc + (size_t)e * nc;
        for (int j = 0; j < nc; j++) {
            int it = j == 0 ? b->ex_pos[e] : b->ex_neg[(size_t)e * nn + j - 1];
            sc[j] = (float)dot(h, a->zb + (size_t)it * d, d);
        }
        double le = 0.0, mx = sc[0], z = 0.0;
        if (c->rank_loss == ALIGN_RANK_SOFTMAX) {
            for (int j = 1; j < nc; j++) mx = sc[j] > mx ? sc[j] : mx;
            for (int j = 0; j < nc; j++) z += exp(sc[j] - mx);
            le = mx + log(z) - sc[0];
        } else {
            le = softplus(-(double)sc[0]);
            for (int j = 1; j < nc; j++) le += softplus(sc[j]);
        }
        s_rank += le;
        if (!grad) continue;
        float *dh = a->dhu + (size_t)u * d;
        for (int j = 0; j < nc; j++) {
            double g; /* dL/ds_j */
            if (c->rank_loss == ALIGN_RANK_SOFTMAX)
                g = exp(sc[j] - mx) / z - (j == 0);
            else
                g = j == 0 ? -1.0 / (1.0 + exp((double)sc[0])) : 1.0 / (1.0 + exp(-(double)sc[j]));
            g *= grank;
            int it = j == 0 ? b->ex_pos[e] : b->ex_neg[(size_t)e * nn + j - 1];
            const float *zb = a->zb + (size_t)it * d;
            float *dzb = a->dzb + (size_t)it * d;
            for (int q = 0; q < d; q++) {
                dh[q] += (float)(g * zb[q]);
                dzb[q] += (float)(g * h[q]);
            }
        }
    }
    return s_rank;
}

/* The four losses in named steps: the bank checked, the normalisers, the gradient buffers cleared,
 * then InfoNCE, reconstruction, matching and the recommendation loss, each a mean over its
 * normaliser. */
int align_loss(align_model *m, align_acts *a, const align_batch *b, const align_bank *bank,
               float *dbank, align_losses *loss)
{
    const align_config *c = &m->cfg;
    const int B = a->B, d = c->d;
    const size_t Kd = (size_t)ALIGN_K * d;
    const int grad = dbank != NULL;
    memset(loss, 0, sizeof *loss);
    DM_CALL(loss_check(a, b, bank));
    loss_norms(c, b, bank, loss);
    if (grad) {
        memset(dbank, 0, (size_t)bank->G * Kd * sizeof(float));
        memset(a->dz, 0, (size_t)B * Kd * sizeof(float));
        memset(a->dzb, 0, (size_t)B * d * sizeof(float));
        memset(a->dhu, 0, (size_t)a->U * d * sizeof(float));
    }
    double s_nce = loss_nce(c, a, b, bank, dbank, grad, loss);
    loss->nce = loss->n_nce > 0 ? s_nce / loss->n_nce : 0.0;
    double s_rec = loss_recon(c, a, grad, loss);
    loss->recon = loss->n_recon > 0 ? s_rec / loss->n_recon : 0.0;
    double s_match = loss_match(c, a, grad, loss);
    loss->match = loss->n_match > 0 ? s_match / loss->n_match : 0.0;
    double s_rank = loss_rank(c, a, b, grad, loss);
    loss->rank = loss->n_rank > 0 ? s_rank / loss->n_rank : 0.0;
    loss->total = c->w_nce * loss->nce + c->w_recon * loss->recon + c->w_match * loss->match +
                  c->w_rank * loss->rank;
    a->has_grad = grad;
    if (!isfinite(loss->total)) {
        DM_ERR(DM_ENUM, "align: loss is not finite (nce %g, recon %g, match %g, rank %g)",
               loss->nce, loss->recon, loss->match, loss->rank);
        DM_HINT("lower align.lr or raise align.tau");
        return DM_ENUM;
    }
    return DM_OK;
}

/* ---- backward -------------------------------------------------------------------------------- */

int align_backward(align_model *m, align_acts *a, const align_batch *b, const float *dz_bank)
{
    const align_config *c = &m->cfg;
    const align_kernels *K = kern(c);
    const align_params *p = &m->params;
    align_params *g = &m->grads;
    const int B = a->B, d = c->d, H = c->hidden;
    const size_t Kd = (size_t)ALIGN_K * d;
    if (!a->has_grad) {
        DM_ERR(DM_EINTERNAL, "align_backward without a preceding align_loss with gradients");
        return DM_EINTERNAL;
    }
    a->has_grad = 0;
    if (dz_bank)
        for (size_t e = 0; e < (size_t)B * Kd; e++) a->dz[e] += dz_bank[e];
    /* decoders: xhat = V2 act(V1 z + c1) + c2 */
    for (int k = 0; k < ALIGN_K; k++) {
        const int D = c->dim_in[k], n = a->n[k];
        if (!D || !n) continue;
        memset(a->sh1, 0, (size_t)n * H * sizeof(float));
        K->linear_backward(a->sh1, g->dec_w2[k], g->dec_b2[k], a->dxhat[k], a->da[k], p->dec_w2[k],
                           n, H, D);
        act_backward(a->sh1, a->sh1, a->dh[k], a->da[k], (size_t)n * H, c->act);
        memset(a->sd, 0, (size_t)n * d * sizeof(float));
        K->linear_backward(a->sd, g->dec_w1[k], g->dec_b1[k], a->sh1, a->zc[k], p->dec_w1[k], n, d,
                           H);
        for (int r = 0; r < n; r++) {
            float *dz = a->dz + (size_t)a->rows[k][r] * Kd + (size_t)k * d;
            const float *s = a->sd + (size_t)r * d;
            for (int j = 0; j < d; j++) dz[j] += s[j];
        }
    }
    /* fusion: z_base = sum_k alpha_k z^k, alpha = softmax(g_k + q . z^k) (gate) or 1/|S| (mean) */
    const int gate = c->fusion == ALIGN_FUSE_GATE;
    for (int i = 0; i < B; i++) {
        const uint8_t *mk = a->mask + (size_t)i * ALIGN_K;
        const float *al = a->alpha + (size_t)i * ALIGN_K, *dzb = a->dzb + (size_t)i * d;
        const float *zi = a->z + (size_t)i * Kd;
        float *dzi = a->dz + (size_t)i * Kd;
        double t[ALIGN_K], tbar = 0.0;
        for (int k = 0; k < ALIGN_K; k++) {
            if (!mk[k]) continue;
            float *dz = dzi + (size_t)k * d;
            for (int j = 0; j < d; j++) dz[j] += al[k] * dzb[j];
            if (gate) {
                t[k] = dot(dzb, zi + (size_t)k * d, d);
                tbar += al[k] * t[k];
            }
        }
        if (!gate) continue;
        for (int k = 0; k < ALIGN_K; k++) {
            if (!mk[k]) continue;
            double ds = al[k] * (t[k] - tbar); /* dL/ds_k through the softmax */
            g->fuse_gate[k] += (float)ds;
            float *dz = dzi + (size_t)k * d;
            const float *z = zi + (size_t)k * d;
            for (int j = 0; j < d; j++) {
                dz[j] += (float)(ds * p->fuse_query[j]);
                g->fuse_query[j] += (float)(ds * z[j]);
            }
        }
    }
    /* user tower: h = P(W2 act(W1 r + b1) + b2) */
    if (a->U > 0) {
        const int U = a->U;
        memset(a->sh1, 0, (size_t)U * H * sizeof(float));
        K->linear_backward(a->sh1, g->proj_w, g->proj_b, a->dhu, a->uo, p->proj_w, U, H, d);
        memset(a->sh2, 0, (size_t)U * H * sizeof(float));
        K->linear_backward(a->sh2, g->user_w2, g->user_b2, a->sh1, a->ua, p->user_w2, U, H, H);
        act_backward(a->sh2, a->sh2, a->uh, a->ua, (size_t)U * H, c->act);
        K->linear_backward(NULL, g->user_w1, g->user_b1, a->sh2, b->r, p->user_w1, U, c->dim_user,
                           H);
    }
    /* encoders and the shared projector: z = P(W2 act(W1 x + b1) + b2) */
    for (int k = 0; k < ALIGN_K; k++) {
        const int D = c->dim_in[k], n = a->n[k];
        if (!D || !n) continue;
        for (int r = 0; r < n; r++)
            memcpy(a->sd + (size_t)r * d, a->dz + (size_t)a->rows[k][r] * Kd + (size_t)k * d,
                   (size_t)d * sizeof(float));
        memset(a->sh1, 0, (size_t)n * H * sizeof(float));
        K->linear_backward(a->sh1, g->proj_w, g->proj_b, a->sd, a->eo[k], p->proj_w, n, H, d);
        memset(a->sh2, 0, (size_t)n * H * sizeof(float));
        K->linear_backward(a->sh2, g->enc_w2[k], g->enc_b2[k], a->sh1, a->ea[k], p->enc_w2[k], n,
                           H, H);
        act_backward(a->sh2, a->sh2, a->eh[k], a->ea[k], (size_t)n * H, c->act);
        K->linear_backward(NULL, g->enc_w1[k], g->enc_b1[k], a->sh2, a->xin[k], p->enc_w1[k], n,
                           D, H);
    }
    return DM_OK;
}

/* ---- one process ----------------------------------------------------------------------------- */

int align_train_step(align_model *m, align_acts *a, const align_batch *b, align_losses *loss)
{
    DM_CALL(align_forward(m, a, b));
    align_bank bank = {b->B, 0, a->z, a->mask, b->item, NULL};
    DM_CALL(align_loss(m, a, b, &bank, a->dbank_self, loss));
    DM_CALL(align_backward(m, a, b, a->dbank_self));
    return DM_OK;
}

int align_eval_loss(align_model *m, align_acts *a, const align_batch *b, align_losses *loss)
{
    DM_CALL(align_forward(m, a, b));
    align_bank bank = {b->B, 0, a->z, a->mask, b->item, NULL};
    DM_CALL(align_loss(m, a, b, &bank, NULL, loss));
    return DM_OK;
}

void align_zero_grad(align_model *m) { memset(m->grads_mem, 0, m->nparams * sizeof(float)); }

void align_adam_step(align_model *m)
{
    const align_config *c = &m->cfg;
    const nn_adam o = {c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, NN_ADAM_DECOUPLED};
    nn_adam_step(&o, ++m->step, m->params_mem, m->grads_mem, m->m_mem, m->v_mem, m->nparams);
}

/* ---- inference ------------------------------------------------------------------------------- */

int align_item_latents(align_model *m, align_acts *a, const float *const x[ALIGN_K],
                       const int64_t *xrow, const uint8_t *present, int n, float *zbase,
                       float *zmod)
{
    const align_config *c = &m->cfg;
    const int d = c->d, mb = a->cfg.max_batch;
    for (int c0 = 0; c0 < n; c0 += mb) {
        int nb = n - c0 < mb ? n - c0 : mb;
        const float *xs[ALIGN_K];
        for (int k = 0; k < ALIGN_K; k++)
            xs[k] = x[k] && !xrow ? x[k] + (size_t)c0 * c->dim_in[k] : x[k];
        DM_CALL(forward_items(m, a, nb, xs, xrow ? xrow + c0 : NULL,
                              present + (size_t)c0 * ALIGN_K, NULL, 0, 0, 0, 0));
        memcpy(zbase + (size_t)c0 * d, a->zb, (size_t)nb * d * sizeof(float));
        if (zmod)
            memcpy(zmod + (size_t)c0 * ALIGN_K * d, a->z, (size_t)nb * ALIGN_K * d * sizeof(float));
    }
    return DM_OK;
}

int align_user_latents(align_model *m, align_acts *a, const float *r, int n, float *h)
{
    const align_config *c = &m->cfg;
    const int mu = a->cfg.max_users;
    for (int c0 = 0; c0 < n; c0 += mu) {
        int nb = n - c0 < mu ? n - c0 : mu;
        DM_CALL(forward_users(m, a, nb, r + (size_t)c0 * c->dim_user));
        memcpy(h + (size_t)c0 * c->d, a->hu, (size_t)nb * c->d * sizeof(float));
    }
    return DM_OK;
}
