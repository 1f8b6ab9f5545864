/* sasrec_kernels.c: the optimised SASRec layer kernels (see sasrec_kernels.h). Matrix products go
 * through nn_sgemm (OpenBLAS, or the fixed-order kernel in reproducible mode: src/nn/gemm.h) and
 * OpenBLAS sgemv, called outside OpenMP regions; row-wise work (layer norm, softmax, attention per
 * (sequence, head)) is parallel over its outermost independent loop. Every reduction runs in a
 * fixed order, so results do not depend on the thread schedule.
 */
#include "sasrec_kernels.h"

#include "../nn/attention.h"
#include "../nn/gemm.h"
#include "../nn/layernorm.h"
#include "../nn/linear.h"
#include "../nn/softmax.h"
#include "../nn/vec.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

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
#pragma omp parallel for schedule(static) if ((size_t)nr * V > NN_PAR_MIN)
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
#pragma omp parallel for schedule(static) if ((size_t)M * C > NN_PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *x = h + (size_t)r * C;
        const float *ep = wte + (size_t)pos[r] * C, *en = wte + (size_t)neg[r] * C;
        float lp = nn_dot(x, ep, C), ln = nn_dot(x, en, C);
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
            nn_axpy(dwte + (size_t)pos[r] * C, ga[r], h + (size_t)r * C, C);
            nn_axpy(dwte + (size_t)neg[r] * C, gn[r], h + (size_t)r * C, C);
        }
    return loss * scale;
}

const sasrec_kernels sasrec_kernels_fast = {
    nn_linear_forward_ld,    nn_linear_backward_ld,    nn_layernorm_forward, nn_layernorm_backward,
    nn_attention_forward,    nn_attention_backward,    ce_loss,              bce_loss,
};
