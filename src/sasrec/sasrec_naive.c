/* sasrec_naive.c: the naive reference kernels of SASRec: the same signatures and equations as
 * sasrec_kernels.c written as plain serial loops with double accumulators, no BLAS, no OpenMP (the
 * linear and layer-norm entries are src/nn's naive twins).
 * They are the yardstick the optimised kernels are tested against (tests/unit/test_sasrec.c) and
 * can run a whole model (sasrec_config.naive = 1).
 */
#include "sasrec_kernels.h"

#include "../nn/layernorm.h"
#include "../nn/linear.h"

#include <math.h>
#include <string.h>

static void attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask,
                              float keep, const int *off, const size_t *att_off, int B, int C,
                              int H)
{
    const int hs = C / H, C3 = 3 * C;
    const double sc = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++) {
        int o = off[b], n = off[b + 1] - off[b];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < n; i++) {
                float *p = att + att_off[b] + ((size_t)h * n + i) * n;
                double mx = -INFINITY, s = 0.0;
                double e[n];
                for (int j = 0; j <= i; j++) {
                    double d = 0.0;
                    for (int k = 0; k < hs; k++)
                        d += (double)qkv[(size_t)(o + i) * C3 + h * hs + k] *
                             qkv[(size_t)(o + j) * C3 + C + h * hs + k];
                    e[j] = d * sc;
                    if (e[j] > mx) mx = e[j];
                }
                for (int j = 0; j <= i; j++) {
                    e[j] = exp(e[j] - mx);
                    s += e[j];
                }
                for (int j = 0; j <= i; j++) p[j] = (float)(e[j] / s);
                for (int k = 0; k < hs; k++) {
                    double y = 0.0;
                    for (int j = 0; j <= i; j++) {
                        double d =
                            mask ? (mask[att_off[b] + ((size_t)h * n + i) * n + j] ? keep : 0.0)
                                 : 1.0;
                        y += (double)p[j] * d * qkv[(size_t)(o + j) * C3 + 2 * C + h * hs + k];
                    }
                    out[(size_t)(o + i) * C + h * hs + k] = (float)y;
                }
            }
    }
}

static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const uint8_t *mask, float keep, const int *off,
                               const size_t *att_off, int B, int C, int H)
{
    const int hs = C / H, C3 = 3 * C;
    const double sc = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++) {
        int o = off[b], n = off[b + 1] - off[b];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < n; i++) {
                const float *p = att + att_off[b] + ((size_t)h * n + i) * n;
                double dp[n], s = 0.0;
                for (int j = 0; j <= i; j++) {
                    double d =
                        mask ? (mask[att_off[b] + ((size_t)h * n + i) * n + j] ? keep : 0.0) : 1.0;
                    double g = 0.0;
                    for (int k = 0; k < hs; k++) {
                        double dy = dout[(size_t)(o + i) * C + h * hs + k];
                        g += dy * qkv[(size_t)(o + j) * C3 + 2 * C + h * hs + k];
                        dqkv[(size_t)(o + j) * C3 + 2 * C + h * hs + k] += (float)(p[j] * d * dy);
                    }
                    dp[j] = g * d;
                    s += p[j] * dp[j];
                }
                for (int j = 0; j <= i; j++) {
                    double ds = p[j] * (dp[j] - s) * sc;
                    for (int k = 0; k < hs; k++) {
                        dqkv[(size_t)(o + i) * C3 + h * hs + k] +=
                            (float)(ds * qkv[(size_t)(o + j) * C3 + C + h * hs + k]);
                        dqkv[(size_t)(o + j) * C3 + C + h * hs + k] +=
                            (float)(ds * qkv[(size_t)(o + i) * C3 + h * hs + k]);
                    }
                }
            }
    }
}

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
    nn_layernorm_backward_naive, attention_forward,          attention_backward,
    ce_loss,                     bce_loss,
};
