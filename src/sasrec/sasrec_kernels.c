/* sasrec_kernels.c: the optimised SASRec layer kernels (see sasrec_kernels.h). Matrix products go
 * through nn_sgemm (OpenBLAS, or the fixed-order kernel in reproducible mode: src/nn/gemm.h) and
 * OpenBLAS sgemv, called outside OpenMP regions; row-wise work (layer norm, softmax, attention per
 * (sequence, head)) is parallel over its outermost independent loop. Every reduction runs in a
 * fixed order, so results do not depend on the thread schedule.
 */
#include "sasrec_kernels.h"

#include "../nn/gemm.h"
#include "../nn/layernorm.h"
#include "../nn/linear.h"
#include "../nn/softmax.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static inline __attribute__((always_inline)) void axpy(float *y, float a, const float *x, int n)
{
#pragma omp simd
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

/* One (sequence, head) pair per task: P_i = softmax_j<=i(q_i . k_j / sqrt(hs)),
 * out_i = sum_j P_ij d_ij v_j with d the dropout multiplier (mask * keep or 1). */
static void attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask,
                              float keep, const int *off, const size_t *att_off, int B, int C,
                              int H)
{
    const int hs = C / H, C3 = 3 * C;
    const float sc = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic, 1) if (att_off[B] / H * hs > SASREC_PAR_MIN)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H;
        int o = off[b], n = off[b + 1] - off[b];
        for (int i = 0; i < n; i++) {
            const float *q = qkv + (size_t)(o + i) * C3 + h * hs;
            float *p = att + att_off[b] + ((size_t)h * n + i) * n;
            const uint8_t *mk = mask ? mask + att_off[b] + ((size_t)h * n + i) * n : NULL;
            for (int j = 0; j <= i; j++)
                p[j] = dot(q, qkv + (size_t)(o + j) * C3 + C + h * hs, hs) * sc;
            nn_softmax(p, i + 1);
            float *y = out + (size_t)(o + i) * C + h * hs;
            memset(y, 0, (size_t)hs * sizeof(float));
            for (int j = 0; j <= i; j++) {
                float pj = mk ? (mk[j] ? p[j] * keep : 0.0f) : p[j];
                if (pj != 0.0f) axpy(y, pj, qkv + (size_t)(o + j) * C3 + 2 * C + h * hs, hs);
            }
        }
    }
}

/* dPd_ij = dout_i . v_j;  dv_j += Pd_ij dout_i;  dP = dPd * d;  dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik);
 * dq_i += sc sum_j dS_ij k_j;  dk_j += sc dS_ij q_i. Tasks write disjoint (rows, head) blocks. */
static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const uint8_t *mask, float keep, const int *off,
                               const size_t *att_off, int B, int C, int H)
{
    const int hs = C / H, C3 = 3 * C;
    const float sc = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic, 1) if (att_off[B] / H * hs > SASREC_PAR_MIN)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H;
        int o = off[b], n = off[b + 1] - off[b];
        float dp[n > 0 ? n : 1];
        for (int i = 0; i < n; i++) {
            const float *p = att + att_off[b] + ((size_t)h * n + i) * n;
            const uint8_t *mk = mask ? mask + att_off[b] + ((size_t)h * n + i) * n : NULL;
            const float *dy = dout + (size_t)(o + i) * C + h * hs;
            const float *q = qkv + (size_t)(o + i) * C3 + h * hs;
            float *dq = dqkv + (size_t)(o + i) * C3 + h * hs;
            float s = 0.0f;
            for (int j = 0; j <= i; j++) {
                const float *v = qkv + (size_t)(o + j) * C3 + 2 * C + h * hs;
                float *dv = dqkv + (size_t)(o + j) * C3 + 2 * C + h * hs;
                float d = mk ? (mk[j] ? keep : 0.0f) : 1.0f;
                if (d != 0.0f) {
                    axpy(dv, p[j] * d, dy, hs);
                    dp[j] = dot(dy, v, hs) * d;
                } else {
                    dp[j] = 0.0f;
                }
                s += p[j] * dp[j];
            }
            for (int j = 0; j <= i; j++) {
                float ds = p[j] * (dp[j] - s) * sc;
                if (ds == 0.0f) continue;
                const float *k = qkv + (size_t)(o + j) * C3 + C + h * hs;
                float *dk = dqkv + (size_t)(o + j) * C3 + C + h * hs;
                axpy(dq, ds, k, hs);
                axpy(dk, ds, q, hs);
            }
        }
    }
}

/* Rows in blocks of R = chunk / V: logits = h W^T by sgemm, a row-parallel softmax (nn_softmax_xent)
 * that turns the block into scale (p - onehot) in place, then dh = G W and dW += G^T h by sgemm. */
static double ce_loss(float *dh, float *dwte, const float *h, const int *tgt, const float *wte,
                      int M, int V, int C, float scale, float *logits, size_t chunk, float *rowbuf)
{
    int R = (int)(chunk / (size_t)V);
    if (R < 1) R = 1;
    if (R > M) R = M;
    double loss = 0.0;
    for (int r0 = 0; r0 < M; r0 += R) {
        int nr = M - r0 < R ? M - r0 : R;
        nn_sgemm(CblasNoTrans, CblasTrans, nr, V, C, 1.0f, h + (size_t)r0 * C, C, wte, C, 0.0f,
                 logits, V);
#pragma omp parallel for schedule(static) if ((size_t)nr * V > SASREC_PAR_MIN)
        for (int r = 0; r < nr; r++) {
            /* item 0 (padding) is not a class: the softmax runs over z[1..V) */
            float *z = logits + (size_t)r * V;
            rowbuf[r0 + r] = nn_softmax_xent(z + 1, V - 1, tgt[r0 + r] - 1, scale);
            z[0] = 0.0f;
        }
        if (dh) {
            nn_sgemm(CblasNoTrans, CblasNoTrans, nr, C, V, 1.0f, logits, V, wte, C, 0.0f,
                     dh + (size_t)r0 * C, C);
            nn_sgemm(CblasTrans, CblasNoTrans, V, C, nr, 1.0f, logits, V, h + (size_t)r0 * C, C,
                     1.0f, dwte, C);
        }
    }
    for (int r = 0; r < M; r++) loss += rowbuf[r];
    return loss * scale;
}

static inline float softplusf(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
static inline float sigmoidf(float x)
{
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

static double bce_loss(float *dh, float *dwte, const float *h, const int *pos, const int *neg,
                       const float *wte, int M, int C, float scale, float *rowbuf)
{
    float *gl = rowbuf, *ga = rowbuf + M, *gn = rowbuf + 2 * (size_t)M;
#pragma omp parallel for schedule(static) if ((size_t)M * C > SASREC_PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *x = h + (size_t)r * C;
        const float *ep = wte + (size_t)pos[r] * C, *en = wte + (size_t)neg[r] * C;
        float lp = dot(x, ep, C), ln = dot(x, en, C);
        /* -log sigmoid(lp) = softplus(-lp); -log(1 - sigmoid(ln)) = softplus(ln) */
        gl[r] = softplusf(-lp) + softplusf(ln);
        if (dh) {
            float a = scale * (sigmoidf(lp) - 1.0f), c = scale * sigmoidf(ln);
            float *d = dh + (size_t)r * C;
#pragma omp simd
            for (int k = 0; k < C; k++) d[k] = a * ep[k] + c * en[k];
            ga[r] = a;
            gn[r] = c;
        }
    }
    double loss = 0.0;
    for (int r = 0; r < M; r++) loss += gl[r];
    if (dh) /* serial scatter: rows may share items */
        for (int r = 0; r < M; r++) {
            axpy(dwte + (size_t)pos[r] * C, ga[r], h + (size_t)r * C, C);
            axpy(dwte + (size_t)neg[r] * C, gn[r], h + (size_t)r * C, C);
        }
    return loss * scale;
}

const sasrec_kernels sasrec_kernels_fast = {
    nn_linear_forward_ld, nn_linear_backward_ld, nn_layernorm_forward, nn_layernorm_backward,
    attention_forward,    attention_backward,    ce_loss,              bce_loss,
};
