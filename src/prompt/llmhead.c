/* llmhead.c: the item-head LLM recommender, see llmhead.h. */
#include "llmhead.h"

#include "../core/err.h"
#include "../nn/gemm.h"
#include "../nn/adam.h"
#include "../nn/linear.h"

#include <math.h>
#include <string.h>

/* the prompt through the LM (none for the LM-free twin: x = 0), the queries q_j from its last
 * hidden state, the scores of every item; *P = the prompt length */
static int head_forward(pm *p, const float *const u[2], const int32_t *hist, int n, int keep, int *P)
{
    if (!p->head) return DM_ERR(DM_EINTERNAL, "pm_head_*: the recommender was not made by pm_init_head");
    if (p->nsp > 1 && !u[1]) return DM_ERR(DM_EINTERNAL, "pm_head_*: the head scores in the CF model's space but no CF latent was given");
    const int C = p->C;
    float *x = p->hx;
    int T = 0;
    if (p->head_nolm) {
        memset(x, 0, (size_t)C * sizeof *x);
    } else {
        DM_CALL(pm_project(p, u[0], hist, n, NULL, 0));
        T = pm_build_prompt(p, hist, n, p->L, p->in);
        lm_set_target_weights(&p->lm, NULL);
        DM_CALL(lm_forward(&p->lm, p->in, p->soft, p->L + n, NULL, 1, T, 1.0f, LM_NOLOGITS | (keep ? LM_KEEP : 0)));
        memcpy(x, lm_last(&p->lm).hidden + (size_t)(T - 1) * C, (size_t)C * sizeof(float));
    }
    for (int j = 0; j < p->nsp; j++) {
        pm_head_space *q = &p->sp[j];
        int d = (int)q->d;
        nn_linear_forward(q->q, x, q->w, q->b, 1, C, d);
        if (*q->a != 0.0f)
            for (int k = 0; k < d; k++) q->q[k] += *q->a * u[j][k];
        nn_sgemm(CblasNoTrans, CblasNoTrans, (int)p->n_items, 1, d, 1.0f, q->t, d, q->q, 1, j ? 1.0f : 0.0f, p->hs, 1);
    }
    if (p->head_text && (keep || *p->at != 0.0f)) { /* + a_t (x . wte_f(i) - mean_v x . wte_v) */
        const int V = p->V;
        nn_sgemm(CblasNoTrans, CblasNoTrans, V, 1, C, 1.0f, lm_head(&p->lm), C, x, 1, 0.0f, p->tlog, 1);
        double m = 0;
        for (int v = 0; v < V; v++) m += p->tlog[v];
        p->tmean = m / V;
        const float a = *p->at, mf = (float)p->tmean;
        if (a != 0.0f)
            for (size_t i = 0; i < p->n_items; i++)
                if (p->ftok[i] >= 0) p->hs[i] += a * (p->tlog[p->ftok[i]] - mf);
    }
    *P = T;
    return DM_OK;
}

int pm_head_scores(pm *p, const float *h, const float *g, const int32_t *hist, int n)
{
    int P;
    const float *u[2] = {h, g};
    return head_forward(p, u, hist, n, 0, &P);
}

int pm_head_train_user(pm *p, const float *h, const float *g, const int32_t *hist, int n, int32_t pos, float scale, double *loss)
{
    const int C = p->C;
    const size_t N = p->n_items;
    if (pos < 0 || (size_t)pos >= N) return DM_ERR(DM_EINTERNAL, "pm_head_train_user: item %d outside %zu items", pos, N);
    int T = 0;
    const float *u[2] = {h, g};
    DM_CALL(head_forward(p, u, hist, n, 1, &T));
    /* softmax over the catalogue (double sums, in item order), then r = scale (p - y) in place */
    float *s = p->hs;
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < N; i++) mx = s[i] > mx ? s[i] : mx;
    for (size_t i = 0; i < N; i++) z += exp((double)s[i] - mx);
    *loss = -((double)s[pos] - mx - log(z));
    for (size_t i = 0; i < N; i++) s[i] = (float)(scale * (exp((double)s[i] - mx) / z - (i == (size_t)pos)));
    /* per space: dq = T^T r; the head's gradients, da = dq . u, and dx (into the last position's
       hidden-state gradient) */
    size_t TC = (size_t)T * C;
    float *dx = p->dh + (TC ? TC - C : 0);
    if (!p->head_nolm) memset(p->dh, 0, TC * sizeof *p->dh);
    for (int j = 0; j < p->nsp; j++) {
        pm_head_space *q = &p->sp[j];
        int d = (int)q->d;
        nn_sgemm(CblasTrans, CblasNoTrans, d, 1, (int)N, 1.0f, q->t, d, s, 1, 0.0f, q->dq, 1);
        nn_linear_backward(p->head_nolm ? NULL : dx, q->gw, q->gb, q->dq, p->hx, q->w, 1, C, d);
        if (q->train_a) {
            double da = 0;
            for (int k = 0; k < d; k++) da += (double)q->dq[k] * u[j][k];
            *q->ga += (float)da;
        }
    }
    if (p->head_text) { /* da_t = sum_i r_i l_i; dx += a_t sum_v (c_v - c / V) wte_v, c_v = sum_{f(i) = v} r_i */
        const int V = p->V;
        float *cv = p->tlog + V;
        memset(cv, 0, (size_t)V * sizeof *cv);
        double c = 0, da = 0;
        const float mf = (float)p->tmean;
        for (size_t i = 0; i < N; i++)
            if (p->ftok[i] >= 0) {
                cv[p->ftok[i]] += s[i];
                c += s[i];
                da += (double)s[i] * (p->tlog[p->ftok[i]] - mf);
            }
        *p->gat += (float)da;
        for (int v = 0; v < V; v++) cv[v] -= (float)(c / V);
        nn_sgemm(CblasTrans, CblasNoTrans, C, 1, V, *p->at, lm_head(&p->lm), C, cv, 1, 1.0f, dx, 1);
    }
    if (p->head_nolm) return DM_OK;
    int ns = p->L + n;
    memset(p->dsoft, 0, (size_t)ns * C * sizeof *p->dsoft);
    DM_CALL(lm_backward(&p->lm, p->dh, p->dsoft));
    DM_CALL(nn_mlp_backward(&p->up, &p->ua, p->dsoft, NULL));
    if (n > 0) DM_CALL(nn_mlp_backward(&p->ip, &p->ia, p->dsoft + (size_t)p->L * C, NULL));
    return DM_OK;
}

void pm_head_adam_step(pm *p, const nn_adam *o, float mix_lr)
{
    /* the mixing weights: each space's a (trained or kept), then a_t */
    size_t at[3];
    int tr[3], na = 0;
    float keep[3][3];
    for (int j = 0; j < p->nsp; j++) at[na] = (size_t)(p->sp[j].a - p->w), tr[na++] = p->sp[j].train_a;
    if (p->head_text) at[na] = (size_t)(p->at - p->w), tr[na++] = 1;
    for (int j = 0; j < na; j++) keep[j][0] = p->w[at[j]], keep[j][1] = p->am[at[j]], keep[j][2] = p->av[at[j]];
    nn_adam_step(o, p->t, p->w, p->g, p->am, p->av, p->nparams);
    nn_adam om = *o;
    om.lr = mix_lr;
    om.weight_decay = 0;
    for (int j = 0; j < na; j++) {
        size_t k = at[j];
        p->w[k] = keep[j][0], p->am[k] = keep[j][1], p->av[k] = keep[j][2];
        if (tr[j]) nn_adam_step(&om, p->t, p->w + k, p->g + k, p->am + k, p->av + k, 1);
    }
}
