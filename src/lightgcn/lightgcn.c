/* lightgcn.c: LightGCN, see lightgcn.h. */
#include "lightgcn.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../model/pairs.h"
#include "../nn/gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A_hat over the distinct training pairs: user rows list their items (columns n_users + i), item
 * rows their users, both ascending */
static int graph_init(lightgcn_model *m)
{
    const size_t nu = (size_t)m->cfg.n_users, N = m->N;
    int64_t *deg;
    DM_ALLOC(deg, N + 1);
    DM_ALLOC(m->adj_off, N + 1);
    for (size_t u = 0; u < nu; u++)
        for (int64_t k = m->u_off[u]; k < m->u_off[u + 1]; k++)
            if (k == m->u_off[u] || m->u_items[k] != m->u_items[k - 1]) deg[u]++, deg[nu + (size_t)m->u_items[k]]++;
    for (size_t a = 0; a < N; a++) m->adj_off[a + 1] = m->adj_off[a] + deg[a];
    m->nnz = (size_t)m->adj_off[N];
    DM_ALLOC(m->adj_col, m->nnz + 1);
    DM_ALLOC(m->adj_val, m->nnz + 1);
    int64_t *fill;
    DM_ALLOC(fill, N + 1);
    memcpy(fill, m->adj_off, N * sizeof *fill);
    for (size_t u = 0; u < nu; u++)
        for (int64_t k = m->u_off[u]; k < m->u_off[u + 1]; k++) {
            if (k > m->u_off[u] && m->u_items[k] == m->u_items[k - 1]) continue;
            size_t it = nu + (size_t)m->u_items[k];
            double v = 1.0 / sqrt(((double)deg[u] + 1e-7) * ((double)deg[it] + 1e-7));
            m->adj_col[fill[u]] = (int32_t)it;
            m->adj_val[fill[u]++] = (float)v;
            m->adj_col[fill[it]] = (int32_t)u;
            m->adj_val[fill[it]++] = (float)v;
        }
    free(deg);
    free(fill);
    return DM_OK;
}

int lightgcn_init(lightgcn_model *m, const lightgcn_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    if (c->n_users < 1 || c->n_items < 2 || c->d < 1 || c->K < 0)
        return DM_ERR(DM_ECONFIG, "lightgcn: %d users, %d items, dimension %d, %d layers; needs users, two items, d >= 1 and layers >= 0",
                      c->n_users, c->n_items, c->d, c->K);
    m->cfg = *c;
    m->N = (size_t)c->n_users + (size_t)c->n_items;
    m->nparams = m->N * (size_t)c->d;
    DM_ALLOC(m->params, m->nparams);
    DM_ALLOC(m->grads, m->nparams);
    DM_ALLOC(m->opt, 2 * m->nparams);
    DM_ALLOC(m->F, m->nparams);
    DM_ALLOC(m->F_of, m->nparams);
    DM_ALLOC(m->G, m->nparams);
    DM_ALLOC(m->cur, m->nparams);
    DM_ALLOC(m->nxt, m->nparams);
    if (!roles) return DM_ERR(DM_EINTERNAL, "lightgcn: the graph needs the training split");
    DM_CALL(dm_pairs_init(d, roles, (size_t)c->n_users, &m->n_ex, &m->ex_u, &m->ex_i, &m->u_off, &m->u_items));
    DM_CALL(graph_init(m));
    /* xavier uniform per table: bound sqrt(6 / (rows + d)) */
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0x6C6763, 0));
    const size_t d_ = (size_t)c->d, nu = (size_t)c->n_users;
    for (size_t k = 0; k < m->nparams; k++) {
        double rows = k < nu * d_ ? (double)c->n_users : (double)c->n_items;
        m->params[k] = (float)((2.0 * dm_rng_uniform(&r) - 1.0) * sqrt(6.0 / (rows + (double)c->d)));
    }
    return DM_OK;
}

void lightgcn_free(lightgcn_model *m)
{
    void *p[] = {m->params, m->grads, m->opt, m->adj_off, m->adj_col, m->adj_val, m->F, m->F_of, m->G, m->cur, m->nxt,
                 m->ex_u, m->ex_i, m->u_off, m->u_items};
    for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) free(p[k]);
    memset(m, 0, sizeof *m);
}

/* y (N, d) = A_hat x; each row summed in the graph's order */
static void spmm(const lightgcn_model *m, const float *x, float *y)
{
    const size_t d = (size_t)m->cfg.d;
#pragma omp parallel for schedule(static) if (m->nnz * d > ((size_t)1 << 16))
    for (size_t a = 0; a < m->N; a++) {
        float *ya = y + a * d;
        memset(ya, 0, d * sizeof *ya);
        for (int64_t e = m->adj_off[a]; e < m->adj_off[a + 1]; e++) {
            const float v = m->adj_val[e], *xb = x + (size_t)m->adj_col[e] * d;
            for (size_t c = 0; c < d; c++) ya[c] += v * xb[c];
        }
    }
}

void lightgcn_propagate(lightgcn_model *m, const float *in, float *out)
{
    const size_t n = m->nparams;
    const float layers = (float)(m->cfg.K + 1);
    memcpy(m->cur, in, n * sizeof *m->cur);
    if (out != in) memcpy(out, in, n * sizeof *out);
    for (int k = 0; k < m->cfg.K; k++) {
        spmm(m, m->cur, m->nxt);
        for (size_t q = 0; q < n; q++) out[q] += m->nxt[q];
        float *t = m->cur;
        m->cur = m->nxt, m->nxt = t;
    }
    for (size_t q = 0; q < n; q++) out[q] /= layers; /* torch.mean: the sum divided by the count */
}

const float *lightgcn_final(lightgcn_model *m)
{
    if (!m->have_F || memcmp(m->F_of, m->params, m->nparams * sizeof *m->params)) {
        lightgcn_propagate(m, m->params, m->F);
        memcpy(m->F_of, m->params, m->nparams * sizeof *m->params);
        m->have_F = 1;
    }
    return m->F;
}

int lightgcn_grad_triples(lightgcn_model *m, const int32_t *u, const int32_t *i, const int32_t *j, size_t n, double norm, double *loss)
{
    const size_t d = (size_t)m->cfg.d, nu = (size_t)m->cfg.n_users;
    const float reg = m->cfg.reg, inv = (float)(1.0 / norm);
    const float *F = lightgcn_final(m);
    memset(m->G, 0, m->nparams * sizeof *m->G);
    double ls = 0;
    /* serial: rows of different triples may coincide, and the sum's order stays fixed */
    for (size_t k = 0; k < n; k++) {
        size_t ru = (size_t)u[k] * d, ri = (nu + (size_t)i[k]) * d, rj = (nu + (size_t)j[k]) * d;
        const float *fu = F + ru, *fi = F + ri, *fj = F + rj, *eu = m->params + ru, *ei = m->params + ri, *ej = m->params + rj;
        float g;
        ls += dm_pairs_bpr_loss(fu, fi, fj, eu, ei, ej, d, reg, inv, &g);
        float *gu = m->G + ru, *gi = m->G + ri, *gj = m->G + rj;
        for (size_t c = 0; c < d; c++) {
            float a = fu[c], b = fi[c], e = fj[c];
            gu[c] += g * (b - e);
            gi[c] += g * a;
            gj[c] -= g * a;
            m->grads[ru + c] += reg * inv * eu[c];
            m->grads[ri + c] += reg * inv * ei[c];
            m->grads[rj + c] += reg * inv * ej[c];
        }
    }
    /* through the layer mean: dE0 = (G + A_hat G + ... + A_hat^K G) / (K + 1) */
    lightgcn_propagate(m, m->G, m->G);
    for (size_t q = 0; q < m->nparams; q++) m->grads[q] += m->G[q];
    if (loss) *loss = ls;
    return isfinite(ls) ? DM_OK : DM_ERR(DM_ENUM, "lightgcn: the loss is not finite (%g); lower lightgcn.lr", ls);
}

int32_t lightgcn_negative(const lightgcn_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx)
{
    return dm_pairs_negative(m->u_off, m->u_items, m->ex_u[k], m->cfg.n_items, dm_rng_key(seed ^ 0x4C47, step, (uint64_t)gidx));
}

void lightgcn_adam_step(lightgcn_model *m) { DM_MODEL_ADAM_STEP(m); }

int lightgcn_scores(lightgcn_model *m, const size_t *users, size_t B, float *scores)
{
    const size_t d = (size_t)m->cfg.d, n = (size_t)m->cfg.n_items;
    const float *F = lightgcn_final(m), *V = F + (size_t)m->cfg.n_users * d;
    float *rows;
    DM_ALLOC(rows, B * d + 1);
    for (size_t b = 0; b < B; b++) memcpy(rows + b * d, F + users[b] * d, d * sizeof *rows);
    nn_sgemm(CblasNoTrans, CblasTrans, (int)B, (int)n, (int)d, 1.0f, rows, (int)d, V, (int)d, 0.0f, scores, (int)n);
    free(rows);
    return DM_OK;
}
