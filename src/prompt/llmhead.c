/* llmhead.c: the item-head LLM recommender, see llmhead.h. */
#include "llmhead.h"

#include "../core/err.h"
#include "../nn/gemm.h"
#include "../nn/linear.h"

#include <math.h>
#include <string.h>

/* the prompt through the LM, q from its last hidden state, the scores of every item; *P = the
 * prompt length */
static int head_forward(pm *p, const float *h, const int32_t *hist, int n, int keep, int *P)
{
    if (!p->head) return DM_ERR(DM_EINTERNAL, "pm_head_*: the recommender was not made by pm_init_head");
    const int C = p->C, d = (int)p->d;
    DM_CALL(pm_project(p, h, hist, n, NULL, 0));
    int T = pm_build_prompt(p, hist, n, p->L, p->in);
    lm_set_target_weights(&p->lm, NULL);
    DM_CALL(lm_forward(&p->lm, p->in, p->soft, p->L + n, NULL, 1, T, 1.0f, LM_NOLOGITS | (keep ? LM_KEEP : 0)));
    float *q = p->hq, *x = p->hq + 2 * (size_t)d;
    memcpy(x, lm_last(&p->lm).hidden + (size_t)(T - 1) * C, (size_t)C * sizeof(float));
    nn_linear_forward(q, x, p->hw, p->hb, 1, C, d);
    if (p->head_res != 0.0f)
        for (int k = 0; k < d; k++) q[k] += p->head_res * h[k];
    nn_sgemm(CblasNoTrans, CblasNoTrans, (int)p->n_items, 1, d, 1.0f, p->z, d, q, 1, 0.0f, p->hs, 1);
    *P = T;
    return DM_OK;
}

int pm_head_scores(pm *p, const float *h, const int32_t *hist, int n)
{
    int P;
    return head_forward(p, h, hist, n, 0, &P);
}

int pm_head_train_user(pm *p, const float *h, const int32_t *hist, int n, int32_t pos, float scale, double *loss)
{
    const int C = p->C, d = (int)p->d;
    const size_t N = p->n_items;
    if (pos < 0 || (size_t)pos >= N) return DM_ERR(DM_EINTERNAL, "pm_head_train_user: item %d outside %zu items", pos, N);
    int T = 0;
    DM_CALL(head_forward(p, h, hist, n, 1, &T));
    /* softmax over the catalogue (double sums, in item order), then r = scale (p - y) in place */
    float *s = p->hs;
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < N; i++) mx = s[i] > mx ? s[i] : mx;
    for (size_t i = 0; i < N; i++) z += exp((double)s[i] - mx);
    *loss = -((double)s[pos] - mx - log(z));
    for (size_t i = 0; i < N; i++) s[i] = (float)(scale * (exp((double)s[i] - mx) / z - (i == (size_t)pos)));
    float *dq = p->hq + d, *x = p->hq + 2 * (size_t)d;
    nn_sgemm(CblasTrans, CblasNoTrans, d, 1, (int)N, 1.0f, p->z, d, s, 1, 0.0f, dq, 1);
    /* head gradients, and dx into the last position's hidden-state gradient */
    size_t TC = (size_t)T * C;
    memset(p->dh, 0, TC * sizeof *p->dh);
    nn_linear_backward(p->dh + TC - C, p->hgw, p->hgb, dq, x, p->hw, 1, C, d);
    int ns = p->L + n;
    memset(p->dsoft, 0, (size_t)ns * C * sizeof *p->dsoft);
    DM_CALL(lm_backward(&p->lm, p->dh, p->dsoft));
    DM_CALL(nn_mlp_backward(&p->up, &p->ua, p->dsoft, NULL));
    if (n > 0) DM_CALL(nn_mlp_backward(&p->ip, &p->ia, p->dsoft + (size_t)p->L * C, NULL));
    return DM_OK;
}
