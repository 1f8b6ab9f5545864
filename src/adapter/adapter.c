/* adapter.c: the online adapter (see adapter.h): parameter slab, batch preparation (each distinct
 * user and item of a batch is computed once), forward and backward of the gated residual MLPs,
 * the recommendation and KL losses, EWC, Adam, EMA, the per-example Fisher and serving.
 */
#include "adapter.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/adam.h"
#include "adapter_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int adapter_config_check(const adapter_config *c)
{
#define BAD DM_CONFIG_CHECK
    BAD(c->n_items < 1 || c->n_users < 1, "adapter: %d items and %d users, expected at least 1",
        c->n_items, c->n_users);
    BAD(c->d_cf < 0 || c->d < 1, "adapter: d_cf = %d, d = %d out of range", c->d_cf, c->d);
    BAD(c->ds_item < 0 || c->ds_user < 0, "adapter: negative summary width");
    BAD(c->d_cf + c->ds_item < 1 || c->d_cf + c->ds_user < 1,
        "adapter: empty adapter input (d_cf = 0 and no summary features)");
    BAD(c->max_batch < 1, "adapter: max_batch = %d, expected at least 1", c->max_batch);
#undef BAD
    return DM_OK;
}

size_t adapter_tensor_info(const adapter_config *c, int k, const char **name, int *ndim,
                           size_t shape[2])
{
    static const char *names[ADAPTER_NTENSORS] = {"item.w1", "item.b1", "item.w2", "item.b2",
                                                  "item.wa", "item.ca", "user.w1", "user.b1",
                                                  "user.w2", "user.b2", "user.wa", "user.ca"};
    DM_ASSERT(k >= 0 && k < ADAPTER_NTENSORS);
    size_t H = (size_t)c->hidden, d = (size_t)c->d;
    size_t Dx = (size_t)c->d_cf + (size_t)(k < 6 ? c->ds_item : c->ds_user);
    size_t s[6][2] = {{H, Dx}, {H, 0}, {d, H}, {d, 0}, {Dx, 0}, {1, 0}};
    int nd = s[k % 6][1] ? 2 : 1;
    if (name) *name = names[k];
    if (ndim) *ndim = nd;
    if (shape) {
        shape[0] = s[k % 6][0];
        shape[1] = s[k % 6][1];
    }
    return s[k % 6][0] * (nd == 2 ? s[k % 6][1] : 1);
}

static void set_views(adapter_params *p, float *base, const size_t *off)
{
    float **v[ADAPTER_NTENSORS] = {&p->item.w1, &p->item.b1, &p->item.w2, &p->item.b2,
                                   &p->item.wa, &p->item.ca, &p->user.w1, &p->user.b1,
                                   &p->user.w2, &p->user.b2, &p->user.wa, &p->user.ca};
    for (int k = 0; k < ADAPTER_NTENSORS; k++) *v[k] = base + off[k];
}

int adapter_init(adapter *m, const adapter_config *cfg)
{
    memset(m, 0, sizeof *m);
    DM_CALL(adapter_config_check(cfg));
    m->cfg = *cfg;
    m->dx_item = cfg->d_cf + cfg->ds_item;
    m->dx_user = cfg->d_cf + cfg->ds_user;
    size_t n = 0;
    for (int k = 0; k < ADAPTER_NTENSORS; k++) {
        m->offset[k] = n;
        n += adapter_tensor_info(cfg, k, NULL, NULL, NULL);
    }
    m->nparams = n;
    float **slabs[9] = {&m->params_mem, &m->grads_mem,  &m->m_mem,      &m->v_mem,
                        &m->ema_mem,    &m->fisher_mem, &m->anchor_mem, &m->fisher_acc,
                        &m->gstep_mem};
    for (int s = 0; s < 9; s++) {
        *slabs[s] = dm_calloc_at(n, sizeof(float), __FILE__, __LINE__);
        if (!*slabs[s]) {
            adapter_free(m);
            return DM_ENOMEM;
        }
    }
    set_views(&m->params, m->params_mem, m->offset);
    set_views(&m->grads, m->grads_mem, m->offset);
    set_views(&m->ema, m->ema_mem, m->offset);
    return DM_OK;
}

void adapter_free(adapter *m)
{
    DM_FREE_ALL(m->params_mem, m->grads_mem, m->m_mem, m->v_mem, m->ema_mem, m->fisher_mem, m->anchor_mem,
                m->fisher_acc, m->gstep_mem);
    memset(m, 0, sizeof *m);
}

void adapter_init_weights(adapter *m, uint64_t seed)
{
    const adapter_config *c = &m->cfg;
    for (int k = 0; k < ADAPTER_NTENSORS; k++) {
        size_t shape[2];
        size_t n = adapter_tensor_info(c, k, NULL, NULL, shape);
        float *w = m->params_mem + m->offset[k];
        int role = k % 6; /* w1 b1 w2 b2 wa ca */
        double fan_in = role <= 1 || role == 4 ? (double)(k < 6 ? m->dx_item : m->dx_user)
                                               : (double)c->hidden;
        double bound = 1.0 / sqrt(fan_in);
        if (role == 5 || ((role == 2 || role == 3) && c->zero_init)) bound = 0.0;
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(seed, 0x61646170ULL, (uint64_t)k));
        for (size_t i = 0; i < n; i++)
            w[i] = bound > 0 ? (float)((2.0 * dm_rng_uniform(&r) - 1.0) * bound) : 0.0f;
    }
    const size_t bytes = m->nparams * sizeof(float);
    memset(m->grads_mem, 0, bytes);
    memset(m->m_mem, 0, bytes);
    memset(m->v_mem, 0, bytes);
    memset(m->fisher_mem, 0, bytes);
    memset(m->fisher_acc, 0, bytes);
    memcpy(m->ema_mem, m->params_mem, bytes);
    memcpy(m->anchor_mem, m->params_mem, bytes);
    m->step = 0;
    m->has_fisher = 0;
}

/* ---- activations ----------------------------------------------------------------------------- */

static void side_free(adapter_side_acts *s)
{
    DM_FREE_ALL(s->ids, s->occ, s->slot, s->x, s->pre, s->hact, s->g, s->gl, s->a, s->z, s->dz, s->dg, s->dh,
                s->dgl);
    memset(s, 0, sizeof *s);
}

static int side_init(adapter_side_acts *s, int maxN, int Dx, int H, int d, int nslots)
{
    memset(s, 0, sizeof *s);
    s->maxN = maxN;
    s->Dx = Dx;
    const size_t N = (size_t)maxN;
    DM_ALLOC(s->ids, N);
    DM_ALLOC(s->occ, N);
    DM_ALLOC(s->x, N * Dx);
    DM_ALLOC(s->pre, N * H);
    DM_ALLOC(s->hact, N * H);
    DM_ALLOC(s->g, N * d);
    DM_ALLOC(s->gl, N);
    DM_ALLOC(s->a, N);
    DM_ALLOC(s->z, N * d);
    DM_ALLOC(s->dz, N * d);
    DM_ALLOC(s->dg, N * d);
    DM_ALLOC(s->dh, N * H);
    DM_ALLOC(s->dgl, N);
    if (nslots > 0) {
        DM_ALLOC(s->slot, (size_t)nslots);
        for (int i = 0; i < nslots; i++) s->slot[i] = -1;
    }
    return DM_OK;
}

static int acts_alloc(adapter_acts *a, const adapter_config *c)
{
    const int K1 = c->negatives + 1, H = c->hidden, d = c->d;
    const int dxi = c->d_cf + c->ds_item, dxu = c->d_cf + c->ds_user;
    long long ni = (long long)c->max_batch * K1;
    if (ni > 1000000000LL) {
        DM_ERR(DM_ECONFIG, "adapter: max_batch * (negatives + 1) = %lld is too large", ni);
        return DM_ECONFIG;
    }
    int maxi = (int)ni > c->serve_rows ? (int)ni : c->serve_rows;
    int maxu = c->max_batch > c->serve_rows ? c->max_batch : c->serve_rows;
    DM_CALL(side_init(&a->item, maxi, dxi, H, d, c->n_items));
    DM_CALL(side_init(&a->user, maxu, dxu, H, d, c->n_users));
    DM_CALL(side_init(&a->ex, K1, dxi > dxu ? dxi : dxu, H, d, 0));
    DM_ALLOC(a->ex_u, (size_t)c->max_batch);
    DM_ALLOC(a->ex_i, (size_t)ni);
    DM_ALLOC(a->dscore, (size_t)ni);
    DM_ALLOC(a->rowloss, (size_t)c->max_batch);
    size_t np = 0;
    for (int k = 0; k < ADAPTER_NTENSORS; k++) np += adapter_tensor_info(c, k, NULL, NULL, NULL);
    DM_ALLOC(a->gtmp, np);
    return DM_OK;
}

int adapter_acts_init(adapter_acts *a, const adapter_config *cfg)
{
    memset(a, 0, sizeof *a);
    DM_CALL(adapter_config_check(cfg));
    a->cfg = *cfg;
    int rc = acts_alloc(a, cfg);
    if (rc != DM_OK) adapter_acts_free(a);
    return rc;
}

void adapter_acts_free(adapter_acts *a)
{
    DM_EACH(side_free, &a->item, &a->user, &a->ex);
    DM_FREE_ALL(a->ex_u, a->ex_i, a->dscore, a->rowloss, a->gtmp);
    memset(a, 0, sizeof *a);
}

/* ---- forward and backward of one side -------------------------------------------------------- */

static const adapter_kernels *kern(const adapter *m)
{
    return m->cfg.naive ? &adapter_kernels_naive : &adapter_kernels_fast;
}

static inline float sigmoidf_(float x)
{
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* x rows = [emb[ids[r]] (d_cf) ; summ[ids[r]] (ds)] */
static void gather_x(adapter_side_acts *s, const float *emb, int d_cf, const float *summ, int ds,
                     int N)
{
    const int Dx = d_cf + ds;
#pragma omp parallel for schedule(static) if ((size_t)N * Dx > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        float *x = s->x + (size_t)r * Dx;
        if (d_cf) memcpy(x, emb + (size_t)s->ids[r] * d_cf, (size_t)d_cf * sizeof(float));
        if (ds) memcpy(x + d_cf, summ + (size_t)s->ids[r] * ds, (size_t)ds * sizeof(float));
    }
}

/* pre = W1 x + b1, hact = relu(pre), g = W2 hact + b2, a = sigmoid(w_a . x + c_a) (1 without the
 * gate); with base (table, (rows, d)): z = base[ids] + a g. Rows 0..N-1 of s. */
static void side_forward(const adapter_kernels *k, const adapter_side *p, adapter_side_acts *s,
                         int N, int Dx, int H, int d, int gate, const float *base)
{
    if (N <= 0) return;
    k->linear_forward(s->pre, s->x, p->w1, p->b1, N, Dx, H);
    const size_t nh = (size_t)N * H;
#pragma omp parallel for schedule(static) if (nh > NN_PAR_MIN)
    for (size_t j = 0; j < nh; j++) s->hact[j] = s->pre[j] > 0.0f ? s->pre[j] : 0.0f;
    k->linear_forward(s->g, s->hact, p->w2, p->b2, N, H, d);
    if (gate) {
        k->linear_forward(s->gl, s->x, p->wa, p->ca, N, Dx, 1);
        for (int r = 0; r < N; r++) s->a[r] = sigmoidf_(s->gl[r]);
    } else {
        for (int r = 0; r < N; r++) s->a[r] = 1.0f;
    }
    if (!base) return;
#pragma omp parallel for schedule(static) if ((size_t)N * d > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *zb = base + (size_t)s->ids[r] * d, *g = s->g + (size_t)r * d;
        float *z = s->z + (size_t)r * d, ar = s->a[r];
        for (int c = 0; c < d; c++) z[c] = zb[c] + ar * g[c];
    }
}

/* Given s->dz (N, d), accumulates the gradients of the side's weights into G:
 *   dg = a dz;  d logit = (dz . g) a (1 - a) (gate);  dW2 += dg^T hact, db2 += sum dg;
 *   dpre = (dg W2) * [pre > 0];  dW1 += dpre^T x, db1 += sum dpre;  dw_a += dlogit^T x, dc_a. */
static void side_backward(const adapter_kernels *k, const adapter_side *p, const adapter_side *G,
                          adapter_side_acts *s, int N, int Dx, int H, int d, int gate)
{
    if (N <= 0) return;
    for (int r = 0; r < N; r++) {
        const float *dz = s->dz + (size_t)r * d, *g = s->g + (size_t)r * d;
        float *dg = s->dg + (size_t)r * d, ar = s->a[r];
        float dot = 0.0f;
        for (int c = 0; c < d; c++) {
            dg[c] = ar * dz[c];
            dot += dz[c] * g[c];
        }
        s->dgl[r] = gate ? dot * ar * (1.0f - ar) : 0.0f;
    }
    memset(s->dh, 0, (size_t)N * H * sizeof(float));
    k->linear_backward(s->dh, G->w2, G->b2, s->dg, s->hact, p->w2, N, H, d);
    const size_t nh = (size_t)N * H;
#pragma omp parallel for schedule(static) if (nh > NN_PAR_MIN)
    for (size_t j = 0; j < nh; j++)
        if (!(s->pre[j] > 0.0f)) s->dh[j] = 0.0f;
    k->linear_backward(NULL, G->w1, G->b1, s->dh, s->x, p->w1, N, Dx, H);
    if (gate) k->linear_backward(NULL, G->wa, G->ca, s->dgl, s->x, p->wa, N, Dx, 1);
}

/* ---- batches --------------------------------------------------------------------------------- */

static int row_of(adapter_side_acts *s, int32_t id)
{
    int r = s->slot[id];
    if (r < 0) {
        r = s->N++;
        s->slot[id] = r;
        s->ids[r] = id;
        s->occ[r] = 0.0f;
    }
    s->occ[r] += 1.0f;
    return r;
}

/* The activations must match the model (max_batch and serve_rows may differ) and every table the
 * configuration needs must be there. */
static int check_shapes(const adapter *m, const adapter_acts *a, const adapter_tables *t)
{
    const adapter_config *c = &m->cfg;
    if (a->cfg.n_items != c->n_items || a->cfg.n_users != c->n_users ||
        a->cfg.hidden != c->hidden || a->cfg.d != c->d || a->cfg.negatives != c->negatives ||
        a->item.Dx != m->dx_item || a->user.Dx != m->dx_user) {
        DM_ERR(DM_EINTERNAL, "adapter: activations were sized for another configuration");
        return DM_EINTERNAL;
    }
    if ((c->d_cf && (!t->e_cf || !t->r)) || !t->z_base || !t->h_base ||
        (c->ds_item && !t->s_item) || (c->ds_user && !t->s_user)) {
        DM_ERR(DM_EINTERNAL, "adapter: a table the configuration needs is missing (NULL)");
        return DM_EINTERNAL;
    }
    return DM_OK;
}

/* Maps the batch's users and items to distinct rows (in order of first appearance) and gathers
 * their inputs. */
static int prepare(adapter *m, adapter_acts *a, const adapter_tables *t, const adapter_batch *b)
{
    const adapter_config *c = &m->cfg;
    const int K = c->negatives, K1 = K + 1;
    if (b->B < 0 || b->B > a->cfg.max_batch) {
        DM_ERR(DM_ECONFIG, "adapter: batch of %d examples, the activations hold %d", b->B,
               a->cfg.max_batch);
        DM_HINT("split a rank's share into several calls with the same norm");
        return DM_ECONFIG;
    }
    DM_CALL(check_shapes(m, a, t));
    for (int e = 0; e < b->B; e++) {
        if (b->user[e] < 0 || b->user[e] >= c->n_users) {
            DM_ERR(DM_EINPUT, "adapter: example %d has user %d, expected 0..%d", e, b->user[e],
                   c->n_users - 1);
            return DM_EINPUT;
        }
        for (int k = 0; k < K1; k++) {
            int32_t it = k == 0 ? b->pos[e] : b->neg[(size_t)e * K + k - 1];
            if (it < 0 || it >= c->n_items) {
                DM_ERR(DM_EINPUT, "adapter: example %d has %s item %d, expected 0..%d", e,
                       k ? "negative" : "positive", it, c->n_items - 1);
                return DM_EINPUT;
            }
        }
    }
    a->B = b->B;
    a->item.N = a->user.N = 0;
    for (int e = 0; e < b->B; e++) {
        a->ex_u[e] = row_of(&a->user, b->user[e]);
        for (int k = 0; k < K1; k++)
            a->ex_i[(size_t)e * K1 + k] =
                row_of(&a->item, k == 0 ? b->pos[e] : b->neg[(size_t)e * K + k - 1]);
    }
    for (int r = 0; r < a->item.N; r++) a->item.slot[a->item.ids[r]] = -1;
    for (int r = 0; r < a->user.N; r++) a->user.slot[a->user.ids[r]] = -1;
    gather_x(&a->item, t->e_cf, c->d_cf, t->s_item, c->ds_item, a->item.N);
    gather_x(&a->user, t->r, c->d_cf, t->s_user, c->ds_user, a->user.N);
    return DM_OK;
}

static void forward_both(adapter *m, adapter_acts *a, const adapter_params *p,
                         const adapter_tables *t)
{
    const adapter_config *c = &m->cfg;
    side_forward(kern(m), &p->item, &a->item, a->item.N, m->dx_item, c->hidden, c->d, c->gate,
                 t->z_base);
    side_forward(kern(m), &p->user, &a->user, a->user.N, m->dx_user, c->hidden, c->d, c->gate,
                 t->h_base);
}

/* sum over rows of occ |a g|^2 (the squared distance of z from z_base, per occurrence) */
static double kl_side(const adapter_side_acts *s, int N, int d, float scale, float inv_s2,
                      int grad)
{
    double tot = 0.0;
    for (int r = 0; r < N; r++) {
        const float *g = s->g + (size_t)r * d;
        float *dz = s->dz + (size_t)r * d, ar = s->a[r], w = s->occ[r] * scale * inv_s2;
        double q = 0.0;
        for (int c = 0; c < d; c++) {
            float delta = ar * g[c];
            q += (double)delta * delta;
            if (grad) dz[c] += w * delta;
        }
        tot += s->occ[r] * q;
    }
    return 0.5 * inv_s2 * scale * tot;
}

/* Forward, losses, and (when G != NULL) backward into the gradient views G. */
static int run_batch(adapter *m, adapter_acts *a, const adapter_tables *t, const adapter_batch *b,
                     const adapter_params *G, int with_kl, adapter_loss *out)
{
    const adapter_config *c = &m->cfg;
    const int K1 = c->negatives + 1, d = c->d, H = c->hidden;
    DM_CALL(prepare(m, a, t, b));
    const double norm = b->norm > 0 ? b->norm : (b->B > 0 ? b->B : 1);
    const float scale = (float)(1.0 / norm);
    forward_both(m, a, &m->params, t);
    double rec = kern(m)->rec_loss(G ? a->dscore : NULL, a->user.z, a->item.z, a->ex_u, a->ex_i,
                                   a->B, K1, d, c->loss, scale, a->rowloss);
    if (G) {
        memset(a->item.dz, 0, (size_t)a->item.N * d * sizeof(float));
        memset(a->user.dz, 0, (size_t)a->user.N * d * sizeof(float));
        /* dh_u += ds_bk z_i, dz_i += ds_bk h_u; serial, so the sum order is fixed */
        for (int e = 0; e < a->B; e++) {
            const int u = a->ex_u[e];
            const float *hu = a->user.z + (size_t)u * d;
            float *dhu = a->user.dz + (size_t)u * d;
            for (int k = 0; k < K1; k++) {
                const int i = a->ex_i[(size_t)e * K1 + k];
                const float ds = a->dscore[(size_t)e * K1 + k];
                const float *zi = a->item.z + (size_t)i * d;
                float *dzi = a->item.dz + (size_t)i * d;
                for (int q = 0; q < d; q++) {
                    dhu[q] += ds * zi[q];
                    dzi[q] += ds * hu[q];
                }
            }
        }
    }
    double kl = 0.0;
    if (with_kl) {
        const float su = c->sigma_user > 0.0f ? c->sigma_user : c->sigma;
        kl = kl_side(&a->item, a->item.N, d, scale, 1.0f / (c->sigma * c->sigma), G != NULL) +
             kl_side(&a->user, a->user.N, d, scale, 1.0f / (su * su), G != NULL);
    }
    if (G) {
        side_backward(kern(m), &m->params.item, &G->item, &a->item, a->item.N, m->dx_item, H, d,
                      c->gate);
        side_backward(kern(m), &m->params.user, &G->user, &a->user, a->user.N, m->dx_user, H, d,
                      c->gate);
    }
    if (!isfinite(rec) || !isfinite(kl)) {
        DM_ERR(DM_ENUM, "adapter: loss is not finite (rec %g, kl %g)", rec, kl);
        DM_HINT("lower adapter.lr or check the input tables for NaN/Inf");
        return DM_ENUM;
    }
    if (out) {
        out->rec = rec;
        out->kl = kl;
    }
    return DM_OK;
}

int adapter_train_step(adapter *m, adapter_acts *a, const adapter_tables *t,
                       const adapter_batch *b, adapter_loss *out)
{
    return run_batch(m, a, t, b, &m->grads, m->cfg.kl, out);
}

int adapter_eval_loss(adapter *m, adapter_acts *a, const adapter_tables *t, const adapter_batch *b,
                      adapter_loss *out)
{
    return run_batch(m, a, t, b, NULL, m->cfg.kl, out);
}

void adapter_zero_grad(adapter *m) { memset(m->grads_mem, 0, m->nparams * sizeof(float)); }

/* ---- EWC, Adam, EMA -------------------------------------------------------------------------- */

static int ewc_on(const adapter *m) { return m->cfg.ewc && m->has_fisher && m->cfg.lambda_ewc > 0; }

double adapter_ewc_loss(const adapter *m)
{
    if (!ewc_on(m)) return 0.0;
    double s = 0.0;
    for (size_t j = 0; j < m->nparams; j++) {
        double dw = (double)m->params_mem[j] - m->anchor_mem[j];
        s += (double)m->fisher_mem[j] * dw * dw;
    }
    return m->cfg.lambda_ewc * s;
}

void adapter_ewc_grad(const adapter *m, float *grad)
{
    if (!ewc_on(m)) return;
    const float two_l = 2.0f * m->cfg.lambda_ewc;
    for (size_t j = 0; j < m->nparams; j++)
        grad[j] += two_l * m->fisher_mem[j] * (m->params_mem[j] - m->anchor_mem[j]);
}

void adapter_adam_step(adapter *m)
{
    const adapter_config *c = &m->cfg;
    const nn_adam o = {c->lr, c->beta1, c->beta2, c->eps, 0.0f, NN_ADAM_DECOUPLED};
    const float *g = m->grads_mem;
    if (ewc_on(m)) { /* g = grads + 2 lambda F (theta - theta*) */
        memcpy(m->gstep_mem, m->grads_mem, m->nparams * sizeof(float));
        adapter_ewc_grad(m, m->gstep_mem);
        g = m->gstep_mem;
    }
    nn_adam_step(&o, ++m->step, m->params_mem, g, m->m_mem, m->v_mem, m->nparams);
}

void adapter_ema_update(adapter *m)
{
    if (!m->cfg.ema) return;
    const float dcy = m->cfg.ema_decay, one_m = 1.0f - dcy;
    for (size_t j = 0; j < m->nparams; j++) m->ema_mem[j] = dcy * m->ema_mem[j] + one_m * m->params_mem[j];
}

/* ---- Fisher ---------------------------------------------------------------------------------- */

void adapter_fisher_begin(adapter *m) { memset(m->fisher_acc, 0, m->nparams * sizeof(float)); }

void adapter_fisher_commit(adapter *m)
{
    const float gm = m->cfg.fisher_decay;
    for (size_t j = 0; j < m->nparams; j++) m->fisher_mem[j] = gm * m->fisher_mem[j] + m->fisher_acc[j];
    memcpy(m->anchor_mem, m->params_mem, m->nparams * sizeof(float));
    m->has_fisher = 1;
}

/* acc[lo..hi) += g[lo..hi)^2 * w */
static void square_acc(float *acc, const float *g, size_t lo, size_t hi, float w)
{
    for (size_t j = lo; j < hi; j++) acc[j] += w * g[j] * g[j];
}

/* Copies rows `rows` of the batch activations src into the per-example scratch ex (R rows). */
static void gather_rows(adapter_side_acts *ex, const adapter_side_acts *src, const int32_t *rows,
                        int R, int Dx, int H, int d)
{
    for (int q = 0; q < R; q++) {
        const size_t r = (size_t)rows[q];
        memcpy(ex->x + (size_t)q * Dx, src->x + r * Dx, (size_t)Dx * sizeof(float));
        memcpy(ex->pre + (size_t)q * H, src->pre + r * H, (size_t)H * sizeof(float));
        memcpy(ex->hact + (size_t)q * H, src->hact + r * H, (size_t)H * sizeof(float));
        memcpy(ex->g + (size_t)q * d, src->g + r * d, (size_t)d * sizeof(float));
        ex->a[q] = src->a[r];
    }
}

/* One forward of the whole sample (each distinct row once), then per example: its gradient by the
 * training backward on its own rows (the user row; the K + 1 item occurrences) into a scratch
 * slab, squared into fisher_acc. */
int adapter_fisher_accumulate(adapter *m, adapter_acts *a, const adapter_tables *t,
                              const adapter_batch *b)
{
    const adapter_config *c = &m->cfg;
    const int K1 = c->negatives + 1, d = c->d, H = c->hidden;
    DM_CALL(prepare(m, a, t, b));
    const double norm = b->norm > 0 ? b->norm : (b->B > 0 ? b->B : 1);
    const float w = (float)(1.0 / norm);
    forward_both(m, a, &m->params, t);
    /* per-example d l_b / d s_bk (scale 1) */
    double l = kern(m)->rec_loss(a->dscore, a->user.z, a->item.z, a->ex_u, a->ex_i, a->B, K1, d,
                                 c->loss, 1.0f, a->rowloss);
    if (!isfinite(l)) {
        DM_ERR(DM_ENUM, "adapter: Fisher sample loss is not finite (%g)", l);
        return DM_ENUM;
    }
    adapter_params G;
    set_views(&G, a->gtmp, m->offset);
    adapter_side_acts *ex = &a->ex;
    const size_t item_lo = m->offset[0], item_hi = m->offset[6], user_hi = m->nparams;
    for (int e = 0; e < a->B; e++) {
        const int u = a->ex_u[e];
        const int32_t *irows = a->ex_i + (size_t)e * K1;
        const float *hu = a->user.z + (size_t)u * d, *ds = a->dscore + (size_t)e * K1;
        /* item side: occurrence k has dz = ds_k h_u */
        gather_rows(ex, &a->item, irows, K1, m->dx_item, H, d);
        for (int k = 0; k < K1; k++)
            for (int q = 0; q < d; q++) ex->dz[(size_t)k * d + q] = ds[k] * hu[q];
        memset(a->gtmp + item_lo, 0, (item_hi - item_lo) * sizeof(float));
        side_backward(kern(m), &m->params.item, &G.item, ex, K1, m->dx_item, H, d, c->gate);
        square_acc(m->fisher_acc, a->gtmp, item_lo, item_hi, w);
        /* user side: dh_u = sum_k ds_k z_ik */
        gather_rows(ex, &a->user, &a->ex_u[e], 1, m->dx_user, H, d);
        for (int q = 0; q < d; q++) {
            float s = 0.0f;
            for (int k = 0; k < K1; k++) s += ds[k] * a->item.z[(size_t)irows[k] * d + q];
            ex->dz[q] = s;
        }
        memset(a->gtmp + item_hi, 0, (user_hi - item_hi) * sizeof(float));
        side_backward(kern(m), &m->params.user, &G.user, ex, 1, m->dx_user, H, d, c->gate);
        square_acc(m->fisher_acc, a->gtmp, item_hi, user_hi, w);
    }
    return DM_OK;
}

int adapter_fisher_accumulate_naive(adapter *m, adapter_acts *a, const adapter_tables *t,
                                    const adapter_batch *b)
{
    const int K = m->cfg.negatives;
    const double norm = b->norm > 0 ? b->norm : (b->B > 0 ? b->B : 1);
    adapter_params G;
    set_views(&G, a->gtmp, m->offset);
    for (int e = 0; e < b->B; e++) {
        adapter_batch one = {1, b->user + e, b->pos + e, b->neg + (size_t)e * K, 1.0};
        memset(a->gtmp, 0, m->nparams * sizeof(float));
        DM_CALL(run_batch(m, a, t, &one, &G, 0, NULL));
        square_acc(m->fisher_acc, a->gtmp, 0, m->nparams, (float)(1.0 / norm));
    }
    return DM_OK;
}

/* ---- serving --------------------------------------------------------------------------------- */

/* For ids[0..n) (NULL = 0..n-1) of one side, in blocks of serve_rows: base + a g into z, a g into
 * res, a into gate (each may be NULL). */
static int serve_side(adapter *m, adapter_acts *a, const adapter_tables *t, int serve, int user,
                      const int32_t *ids, int n, float *z, float *res, float *gate)
{
    const adapter_config *c = &m->cfg;
    const int d = c->d, H = c->hidden, rows = user ? c->n_users : c->n_items;
    adapter_side_acts *s = user ? &a->user : &a->item;
    const adapter_params *p = serve && c->ema ? &m->ema : &m->params;
    const adapter_side *ps = user ? &p->user : &p->item;
    const int Dx = user ? m->dx_user : m->dx_item;
    const float *emb = user ? t->r : t->e_cf, *summ = user ? t->s_user : t->s_item;
    const float *base = user ? t->h_base : t->z_base;
    const int ds = user ? c->ds_user : c->ds_item;
    DM_CALL(check_shapes(m, a, t));
    for (int j = 0; ids && j < n; j++)
        if (ids[j] < 0 || ids[j] >= rows) {
            DM_ERR(DM_EINPUT, "adapter: %s id %d at position %d, expected 0..%d",
                   user ? "user" : "item", ids[j], j, rows - 1);
            return DM_EINPUT;
        }
    if (!ids && n > rows) {
        DM_ERR(DM_EINPUT, "adapter: %d %ss requested, the tables hold %d", n,
               user ? "user" : "item", rows);
        return DM_EINPUT;
    }
    const int blk = a->cfg.serve_rows < s->maxN ? a->cfg.serve_rows : s->maxN;
    for (int lo = 0; lo < n; lo += blk) {
        const int N = n - lo < blk ? n - lo : blk;
        for (int r = 0; r < N; r++) s->ids[r] = ids ? ids[lo + r] : lo + r;
        gather_x(s, emb, c->d_cf, summ, ds, N);
        side_forward(kern(m), ps, s, N, Dx, H, d, c->gate, NULL);
#pragma omp parallel for schedule(static) if ((size_t)N * d > NN_PAR_MIN)
        for (int r = 0; r < N; r++) {
            const float *g = s->g + (size_t)r * d;
            const float ar = s->a[r];
            float *zo = z ? z + (size_t)(lo + r) * d : NULL;
            const float *zb = zo ? base + (size_t)s->ids[r] * d : NULL;
            float *ro = res ? res + (size_t)(lo + r) * d : NULL;
            for (int q = 0; q < d; q++) {
                float delta = ar * g[q];
                if (zo) zo[q] = zb[q] + delta;
                if (ro) ro[q] = delta;
            }
            if (gate) gate[lo + r] = ar;
        }
    }
    return DM_OK;
}

int adapter_item_latents(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                         const int32_t *ids, int n, float *z, float *res)
{
    return serve_side(m, a, t, serve, 0, ids, n, z, res, NULL);
}

int adapter_user_latents(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                         const int32_t *ids, int n, float *h, float *res)
{
    return serve_side(m, a, t, serve, 1, ids, n, h, res, NULL);
}

int adapter_item_gates(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                       const int32_t *ids, int n, float *out)
{
    return serve_side(m, a, t, serve, 0, ids, n, NULL, NULL, out);
}

int adapter_user_gates(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                       const int32_t *ids, int n, float *out)
{
    return serve_side(m, a, t, serve, 1, ids, n, NULL, NULL, out);
}
