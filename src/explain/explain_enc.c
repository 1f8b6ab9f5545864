/* explain_enc.c: the evidence encoder (see explain_enc.h): slab layout, initialisation and the
 * BLAS kernels. Per-kind maps run as one linear layer (src/nn/linear.h) per kind over the gathered
 * rows; the attention pooling loops over sets with OpenMP (plain loops inside, no BLAS); the MLP is
 * src/nn/mlp.h's. */
#include "explain_enc.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/linear.h"
#include "explain_enc_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int group_of(const explain_enc_config *c)
{
    return c->group > 1 ? c->group : 1;
}

int explain_enc_rows(const explain_enc_config *c)
{
    return c->E / group_of(c);
}

/* the MLP reads G consecutive slots as one row */
static nn_mlp_config mlp_config(const explain_enc_config *c)
{
    return (nn_mlp_config){group_of(c) * c->D, c->hidden, c->C, c->ln_eps};
}

static void own_sizes(const explain_enc_config *c, size_t n[5])
{
    size_t D = (size_t)c->D, NI = (size_t)c->din, E = (size_t)c->E;
    n[0] = EXPLAIN_ENC_KINDS * D * NI;
    n[1] = EXPLAIN_ENC_KINDS * D;
    n[2] = E * D;
    n[3] = D;
    n[4] = D;
}

size_t explain_enc_size(const explain_enc_config *c)
{
    size_t n[5], s = 0;
    own_sizes(c, n);
    for (int k = 0; k < 5; k++) s += n[k];
    nn_mlp_config pc = mlp_config(c);
    return s + nn_mlp_size(&pc);
}

void explain_enc_bind(explain_enc *e, const explain_enc_config *c, float *w, float *g)
{
    DM_ASSERT(c->E > 0 && c->E % group_of(c) == 0);
    size_t n[5], off = 0;
    own_sizes(c, n);
    e->cfg = *c;
    float **v[5] = {&e->win, &e->bin, &e->q, &e->k0, &e->v0};
    float **gv[5] = {&e->gwin, &e->gbin, &e->gq, &e->gk0, &e->gv0};
    for (int k = 0; k < 5; k++) {
        *v[k] = w + off;
        *gv[k] = g ? g + off : NULL;
        off += n[k];
    }
    nn_mlp_config pc = mlp_config(c);
    nn_mlp_bind(&e->mlp, &pc, w + off, g ? g + off : NULL);
    e->params = w;
    e->grads = g;
    e->nparams = explain_enc_size(c);
}

void explain_enc_init(explain_enc *e, uint64_t seed, float out_scale)
{
    const explain_enc_config *c = &e->cfg;
    size_t n[5];
    own_sizes(c, n);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0xE4C, 1));
    float a1 = 1.0f / sqrtf((float)c->din), a2 = 1.0f / sqrtf((float)c->D);
    for (size_t k = 0; k < n[0]; k++) e->win[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a1;
    for (size_t k = 0; k < n[1]; k++) e->bin[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a1;
    for (size_t k = 0; k < n[2]; k++) e->q[k] = (float)dm_rng_normal(&r);
    for (size_t k = 0; k < n[3]; k++) e->k0[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a2;
    for (size_t k = 0; k < n[4]; k++) e->v0[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a2;
    nn_mlp_init(&e->mlp, dm_rng_key(seed, 0xE4C, 2), out_scale);
}

size_t explain_enc_tensor(const explain_enc *e, int k, const char **name, size_t *offset)
{
    static const char *const names[EXPLAIN_ENC_NTENSORS] = {"win", "bin", "q", "k0", "v0", "mlp.w1",
                                                            "mlp.b1", "mlp.lnw", "mlp.lnb", "mlp.w2", "mlp.b2"};
    DM_ASSERT(k >= 0 && k < EXPLAIN_ENC_NTENSORS);
    const float *base[EXPLAIN_ENC_NTENSORS] = {e->win, e->bin, e->q, e->k0, e->v0, e->mlp.w1,
                                               e->mlp.b1, e->mlp.lnw, e->mlp.lnb, e->mlp.w2, e->mlp.b2};
    size_t own[5];
    own_sizes(&e->cfg, own);
    size_t H = (size_t)e->cfg.hidden, GD = (size_t)group_of(&e->cfg) * (size_t)e->cfg.D, C = (size_t)e->cfg.C;
    size_t n[EXPLAIN_ENC_NTENSORS] = {own[0], own[1], own[2], own[3], own[4], H * GD, H, H, H, C * H, C};
    if (name) *name = names[k];
    if (offset) *offset = (size_t)(base[k] - e->params);
    return n[k];
}

int explain_enc_acts_init(explain_enc_acts *a, const explain_enc_config *c, int maxB, int maxN)
{
    memset(a, 0, sizeof *a);
    size_t B = (size_t)(maxB > 0 ? maxB : 1), N = (size_t)(maxN > 0 ? maxN : 1);
    size_t D = (size_t)c->D, E = (size_t)c->E, NI = (size_t)c->din;
    a->maxB = (int)B;
    a->maxN = (int)N;
    DM_ALLOC(a->off, B + 1);
    DM_ALLOC(a->kind, N);
    DM_ALLOC(a->x, N * NI);
    DM_ALLOC(a->w, N);
    DM_ALLOC(a->u, N * D);
    DM_ALLOC(a->att, E * (N + B));
    DM_ALLOC(a->ds, E * (N + B));
    DM_ALLOC(a->slot, B * E * D);
    DM_ALLOC(a->dslot, B * E * D);
    DM_ALLOC(a->du, N * D);
    DM_ALLOC(a->gx, N * NI);
    DM_ALLOC(a->gu, N * D);
    DM_ALLOC(a->perm, N);
    DM_ALLOC(a->qt, D * E);
    DM_ALLOC(a->acc, B * E);
    nn_mlp_config pc = mlp_config(c);
    DM_CALL(nn_mlp_acts_init(&a->mlp, &pc, (int)(B * (size_t)explain_enc_rows(c))));
    return DM_OK;
}

void explain_enc_acts_free(explain_enc_acts *a)
{
    DM_FREE_ALL(a->off, a->kind, a->x, a->w, a->u, a->att, a->ds, a->slot, a->dslot, a->du, a->gx, a->gu,
                a->perm, a->qt, a->acc);
    nn_mlp_acts_free(&a->mlp);
    memset(a, 0, sizeof *a);
}

int explain_enc_stash(const explain_enc *e, explain_enc_acts *a, const int64_t *off, int B, const int8_t *kind,
                      const float *x, const float *w)
{
    if (B < 0 || B > a->maxB) return DM_ERR(DM_EINTERNAL, "evidence batch of %d sets, sized for %d", B, a->maxB);
    if (off[0] != 0) return DM_ERR(DM_EINTERNAL, "evidence batch offsets must start at 0, not %lld", (long long)off[0]);
    for (int b = 0; b < B; b++)
        if (off[b + 1] < off[b])
            return DM_ERR(DM_EINTERNAL, "evidence batch offsets decrease at set %d", b);
    int64_t N = off[B];
    if (N > a->maxN) return DM_ERR(DM_EINTERNAL, "evidence batch of %lld elements, sized for %d", (long long)N, a->maxN);
    for (int64_t j = 0; j < N; j++)
        if (kind[j] < 0 || kind[j] >= EXPLAIN_ENC_KINDS)
            return DM_ERR(DM_EINPUT, "evidence element %lld has kind %d (expected 0..%d)", (long long)j, kind[j],
                          EXPLAIN_ENC_KINDS - 1);
    a->B = B;
    a->N = (int)N;
    memcpy(a->off, off, ((size_t)B + 1) * sizeof *off);
    memcpy(a->kind, kind, (size_t)N * sizeof *kind);
    memcpy(a->x, x, (size_t)N * e->cfg.din * sizeof *x);
    memcpy(a->w, w, (size_t)N * sizeof *w);
    /* elements grouped by kind (stable) for the per-kind sgemms */
    memset(a->kcount, 0, sizeof a->kcount);
    for (int j = 0; j < a->N; j++) a->kcount[kind[j]]++;
    int start[EXPLAIN_ENC_KINDS], s = 0;
    for (int k = 0; k < EXPLAIN_ENC_KINDS; k++) {
        start[k] = s;
        s += a->kcount[k];
    }
    for (int j = 0; j < a->N; j++) a->perm[start[kind[j]]++] = j;
    return DM_OK;
}

/* Attention pooling of set b (plain loops, run in parallel over sets):
 *   s_0 = q_e . k0 / sqrt(D), s_j = q_e . u_j / sqrt(D), a = softmax(s),
 *   slot_e = a_0 v0 + sum_j a_j w_j u_j
 * The scores of all E slots for one key are summed together over c (the queries transposed,
 * qt (D, E)), each in the order c = 0..D-1: the sums of a slot-at-a-time loop, vectorised across
 * slots. acc (E) is the set's scratch. */
static void pool_set(const explain_enc *e, explain_enc_acts *a, const float *qt, int b, float *acc)
{
    const int D = e->cfg.D, E = e->cfg.E;
    const int64_t j0 = a->off[b];
    const int n = (int)(a->off[b + 1] - j0);
    const float scale = 1.0f / sqrtf((float)D);
    float *att0 = a->att + (size_t)E * (j0 + b);
    for (int j = -1; j < n; j++) {
        const float *key = j < 0 ? e->k0 : a->u + (size_t)(j0 + j) * D;
        for (int s = 0; s < E; s++) acc[s] = 0;
        for (int c = 0; c < D; c++) {
            const float *qc = qt + (size_t)c * E;
            const float kc = key[c];
            for (int s = 0; s < E; s++) acc[s] += qc[s] * kc;
        }
        for (int s = 0; s < E; s++) att0[(size_t)s * (n + 1) + (size_t)(j + 1)] = acc[s] * scale;
    }
    for (int s = 0; s < E; s++) {
        float *att = att0 + (size_t)s * (n + 1);
        float *slot = a->slot + ((size_t)b * E + s) * D;
        float mx = att[0], z = 0;
        for (int j = 1; j <= n; j++)
            if (att[j] > mx) mx = att[j];
        for (int j = 0; j <= n; j++) {
            att[j] = expf(att[j] - mx);
            z += att[j];
        }
        for (int j = 0; j <= n; j++) att[j] /= z;
        for (int c = 0; c < D; c++) slot[c] = att[0] * e->v0[c];
        for (int j = 0; j < n; j++) {
            const float *u = a->u + (size_t)(j0 + j) * D;
            float aw = att[j + 1] * a->w[j0 + j];
            for (int c = 0; c < D; c++) slot[c] += aw * u[c];
        }
    }
}

/* Backward of the pooling of set b given dslot: ds, du (rows of the set, overwritten), dw (when
 * non-NULL, overwritten). Parameter gradients of q, k0, v0 are left to pool_grads. */
static void pool_set_backward(const explain_enc *e, explain_enc_acts *a, int b, float *dw)
{
    const int D = e->cfg.D, E = e->cfg.E;
    const int64_t j0 = a->off[b];
    const int n = (int)(a->off[b + 1] - j0);
    const float scale = 1.0f / sqrtf((float)D);
    memset(a->du + (size_t)j0 * D, 0, (size_t)n * D * sizeof *a->du);
    if (dw)
        for (int j = 0; j < n; j++) dw[j0 + j] = 0;
    for (int s = 0; s < E; s++) {
        const float *q = e->q + (size_t)s * D;
        const float *att = a->att + (size_t)E * (j0 + b) + (size_t)s * (n + 1);
        float *ds = a->ds + (size_t)E * (j0 + b) + (size_t)s * (n + 1);
        const float *dsl = a->dslot + ((size_t)b * E + s) * D;
        /* da_0 = dslot . v0, da_j = w_j (dslot . u_j); ds = a (da - sum a da) */
        float da0 = 0, dot;
        for (int c = 0; c < D; c++) da0 += dsl[c] * e->v0[c];
        dot = att[0] * da0;
        for (int j = 0; j < n; j++) {
            const float *u = a->u + (size_t)(j0 + j) * D;
            float g = 0;
            for (int c = 0; c < D; c++) g += dsl[c] * u[c];
            ds[j + 1] = g; /* dslot . u_j for now */
            dot += att[j + 1] * a->w[j0 + j] * g;
        }
        ds[0] = att[0] * (da0 - dot);
        for (int j = 0; j < n; j++) {
            float g = ds[j + 1], wj = a->w[j0 + j], aj = att[j + 1];
            if (dw) dw[j0 + j] += aj * g;
            ds[j + 1] = aj * (wj * g - dot);
            /* du_j += a_j w_j dslot + ds_j q / sqrt(D) */
            float *du = a->du + (size_t)(j0 + j) * D;
            float c1 = aj * wj, c2 = ds[j + 1] * scale;
            for (int c = 0; c < D; c++) du[c] += c1 * dsl[c] + c2 * q[c];
        }
    }
}

/* gv0 += sum a_0 dslot, gk0 += sum ds_0 q / sqrt(D), gq_e += (ds_0 k0 + sum_j ds_j u_j) / sqrt(D) */
static void pool_grads(const explain_enc *e, explain_enc_acts *a)
{
    const int D = e->cfg.D, E = e->cfg.E;
    const float scale = 1.0f / sqrtf((float)D);
    for (int b = 0; b < a->B; b++) {
        const int64_t j0 = a->off[b];
        const int n = (int)(a->off[b + 1] - j0);
        for (int s = 0; s < E; s++) {
            const float *q = e->q + (size_t)s * D;
            const float *att = a->att + (size_t)E * (j0 + b) + (size_t)s * (n + 1);
            const float *ds = a->ds + (size_t)E * (j0 + b) + (size_t)s * (n + 1);
            const float *dsl = a->dslot + ((size_t)b * E + s) * D;
            float *gq = e->gq + (size_t)s * D;
            for (int c = 0; c < D; c++) {
                e->gv0[c] += att[0] * dsl[c];
                e->gk0[c] += ds[0] * scale * q[c];
                gq[c] += ds[0] * scale * e->k0[c];
            }
            for (int j = 0; j < n; j++) {
                const float *u = a->u + (size_t)(j0 + j) * D;
                float c2 = ds[j + 1] * scale;
                for (int c = 0; c < D; c++) gq[c] += c2 * u[c];
            }
        }
    }
}

int explain_enc_forward(const explain_enc *e, explain_enc_acts *a, const int64_t *off, int B, const int8_t *kind,
                        const float *x, const float *w, float *y)
{
    DM_CALL(explain_enc_stash(e, a, off, B, kind, x, w));
    const int D = e->cfg.D, NI = e->cfg.din;
    /* u = Win[k] x + bin[k], one sgemm per kind over gathered rows */
    int p = 0;
    for (int k = 0; k < EXPLAIN_ENC_KINDS; k++) {
        int nk = a->kcount[k];
        if (!nk) continue;
        const int32_t *rows = a->perm + p;
        for (int r = 0; r < nk; r++) memcpy(a->gx + (size_t)r * NI, a->x + (size_t)rows[r] * NI, (size_t)NI * sizeof(float));
        nn_linear_forward(a->gu, a->gx, e->win + (size_t)k * D * NI, e->bin + (size_t)k * D, nk, NI, D);
        for (int r = 0; r < nk; r++) memcpy(a->u + (size_t)rows[r] * D, a->gu + (size_t)r * D, (size_t)D * sizeof(float));
        p += nk;
    }
    const int E = e->cfg.E;
    for (int s = 0; s < E; s++)
        for (int c = 0; c < D; c++) a->qt[(size_t)c * E + s] = e->q[(size_t)s * D + c];
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < B; b++) pool_set(e, a, a->qt, b, a->acc + (size_t)b * E);
    if (B == 0) return DM_OK;
    /* slots (B, E, D) read as (B E / G, G D): each row a group of G slots */
    DM_CALL(nn_mlp_forward(&e->mlp, &a->mlp, a->slot, B * explain_enc_rows(&e->cfg), y));
    return DM_OK;
}

int explain_enc_backward(const explain_enc *e, explain_enc_acts *a, const float *dy, float *dx, float *dw)
{
    const int D = e->cfg.D, NI = e->cfg.din, B = a->B;
    if (B == 0) return DM_OK;
    memset(a->dslot, 0, (size_t)B * e->cfg.E * D * sizeof *a->dslot);
    DM_CALL(nn_mlp_backward(&e->mlp, &a->mlp, dy, a->dslot));
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < B; b++) pool_set_backward(e, a, b, dw);
    pool_grads(e, a);
    /* gWin[k] += du_k^T x_k, gbin[k] += sum du_k, dx_k = du_k Win[k] */
    int p = 0;
    for (int k = 0; k < EXPLAIN_ENC_KINDS; k++) {
        int nk = a->kcount[k];
        if (!nk) continue;
        const int32_t *rows = a->perm + p;
        const float *wk = e->win + (size_t)k * D * NI;
        for (int r = 0; r < nk; r++) {
            memcpy(a->gx + (size_t)r * NI, a->x + (size_t)rows[r] * NI, (size_t)NI * sizeof(float));
            memcpy(a->gu + (size_t)r * D, a->du + (size_t)rows[r] * D, (size_t)D * sizeof(float));
        }
        nn_linear_backward(NULL, e->gwin + (size_t)k * D * NI, e->gbin + (size_t)k * D, a->gu, a->gx, wk, nk, NI, D);
        if (dx) { /* gx is spent: it takes dx of the kind's rows */
            memset(a->gx, 0, (size_t)nk * NI * sizeof(float));
            nn_linear_backward(a->gx, NULL, NULL, a->gu, NULL, wk, nk, NI, D);
            for (int r = 0; r < nk; r++) memcpy(dx + (size_t)rows[r] * NI, a->gx + (size_t)r * NI, (size_t)NI * sizeof(float));
        }
        p += nk;
    }
    return DM_OK;
}
