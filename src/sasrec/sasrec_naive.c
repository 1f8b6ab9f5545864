/* sasrec_naive.c: the naive reference kernels of SASRec: the same signatures and equations as
 * sasrec_kernels.c written as plain serial loops with double accumulators, no BLAS, no OpenMP (the
 * linear and layer-norm entries are src/nn's naive twins).
 * They are the yardstick the optimised kernels are tested against (tests/unit/test_sasrec.c) and
 * can run a whole model (sasrec_config.naive = 1).
 */
#include "sasrec_kernels.h"

#include "../nn/attention.h"
#include "../nn/layernorm.h"
#include "../nn/linear.h"

#include <math.h>
#include <string.h>

static double ce_loss(float *dh, float *dwte, const float *h, const int *tgt, const float *wte,
                      int M, int V, int C, float scale, float *logits, size_t chunk, float *rowbuf)
{
    (void)chunk;
    (void)rowbuf;
    double loss = 0.0;
    for (int r = 0; r < M; r++) {
        const float *x = h + (size_t)r * C;
        double mx = -INFINITY, s = 0.0;
        for (int i = 1; i < V; i++) {
            double z = 0.0;
            for (int c = 0; c < C; c++) z += (double)x[c] * wte[(size_t)i * C + c];
            logits[i] = (float)z;
            if (z > mx) mx = z;
        }
        for (int i = 1; i < V; i++) s += exp(logits[i] - mx);
        loss += log(s) + mx - logits[tgt[r]];
        if (dh) {
            for (int c = 0; c < C; c++) dh[(size_t)r * C + c] = 0.0f;
            for (int i = 1; i < V; i++) {
                double g = scale * (exp(logits[i] - mx) / s - (i == tgt[r]));
                for (int c = 0; c < C; c++) {
                    dh[(size_t)r * C + c] += (float)(g * wte[(size_t)i * C + c]);
                    dwte[(size_t)i * C + c] += (float)(g * x[c]);
                }
            }
        }
    }
    return loss * scale;
}

static double bce_loss(float *dh, float *dwte, const float *h, const int *pos, const int *neg,
                       const float *wte, int M, int C, float scale, float *rowbuf)
{
    (void)rowbuf;
    double loss = 0.0;
    for (int r = 0; r < M; r++) {
        const float *x = h + (size_t)r * C;
        double lp = 0.0, ln = 0.0;
        for (int c = 0; c < C; c++) {
            lp += (double)x[c] * wte[(size_t)pos[r] * C + c];
            ln += (double)x[c] * wte[(size_t)neg[r] * C + c];
        }
        double sp = 1.0 / (1.0 + exp(-lp)), sn = 1.0 / (1.0 + exp(-ln));
        /* -log sigmoid(lp) - log(1 - sigmoid(ln)) = softplus(-lp) + softplus(ln) */
        loss += (lp > 0 ? log1p(exp(-lp)) : -lp + log1p(exp(lp))) +
                (ln > 0 ? ln + log1p(exp(-ln)) : log1p(exp(ln)));
        if (dh) {
            double a = scale * (sp - 1.0), g = scale * sn;
            for (int c = 0; c < C; c++) {
                dh[(size_t)r * C + c] =
                    (float)(a * wte[(size_t)pos[r] * C + c] + g * wte[(size_t)neg[r] * C + c]);
                dwte[(size_t)pos[r] * C + c] += (float)(a * x[c]);
                dwte[(size_t)neg[r] * C + c] += (float)(g * x[c]);
            }
        }
    }
    return loss * scale;
}

const sasrec_kernels sasrec_kernels_naive = {
    nn_linear_forward_ld_naive, nn_linear_backward_ld_naive, nn_layernorm_forward_naive,
    nn_layernorm_backward_naive, nn_attention_forward_naive, nn_attention_backward_naive,
    ce_loss,                     bce_loss,
};
