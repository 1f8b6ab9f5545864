/* sasrec_naive.c: the naive reference kernels of SASRec: the same signatures and equations as
 * sasrec_kernels.c written as plain serial loops with double accumulators, no BLAS, no OpenMP.
 * They are the yardstick the optimised kernels are tested against (tests/unit/test_sasrec.c) and
 * can run a whole model (sasrec_config.naive = 1).
 */
#include "sasrec_kernels.h"

#include <math.h>
#include <string.h>

static void linear_forward(float *out, int ldo, const float *inp, int ldi, const float *w,
                           const float *b, int N, int IC, int OC)
{
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++)
                s += (double)inp[(size_t)r * ldi + i] * w[(size_t)o * IC + i];
            out[(size_t)r * ldo + o] = (float)s;
        }
}

static void linear_backward(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                            const float *inp, const float *w, const float *ones, int N, int IC,
                            int OC)
{
    (void)ones;
    if (dinp)
        for (int r = 0; r < N; r++)
            for (int i = 0; i < IC; i++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++)
                    s += (double)dout[(size_t)r * ldo + o] * w[(size_t)o * IC + i];
                dinp[(size_t)r * ldi + i] += (float)s;
            }
    if (dw)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++) {
                double s = 0.0;
                for (int r = 0; r < N; r++)
                    s += (double)dout[(size_t)r * ldo + o] * inp[(size_t)r * ldi + i];
                dw[(size_t)o * IC + i] += (float)s;
            }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int r = 0; r < N; r++) s += dout[(size_t)r * ldo + o];
            db[o] += (float)s;
        }
}

static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        double mu = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mu += x[c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
        var /= C;
        double rs = 1.0 / sqrt(var + (double)SASREC_LN_EPS);
        for (int c = 0; c < C; c++)
            out[(size_t)r * C + c] = (float)((x[c] - mu) * rs * w[c] + b[c]);
        mean[r] = (float)mu;
        rstd[r] = (float)rs;
    }
}

static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        double mu = mean[r], rs = rstd[r], sg = 0.0, sgx = 0.0;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - mu) * rs;
            sg += (double)dy[c] * w[c];
            sgx += (double)dy[c] * w[c] * xh;
            if (dw) dw[c] += (float)(dy[c] * xh);
            if (db) db[c] += dy[c];
        }
        sg /= C;
        sgx /= C;
        if (dinp)
            for (int c = 0; c < C; c++)
                dinp[(size_t)r * C + c] +=
                    (float)(rs * ((double)dy[c] * w[c] - sg - (x[c] - mu) * rs * sgx));
    }
}

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
    linear_forward,    linear_backward,    layernorm_forward, layernorm_backward,
    attention_forward, attention_backward, ce_loss,           bce_loss,
};
