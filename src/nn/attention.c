/* attention.c: see attention.h. */
#include "attention.h"

#include "linear.h" /* NN_PAR_MIN */
#include "softmax.h"
#include "vec.h"

#include <math.h>
#include <string.h>

/* One (sequence, head) pair per task; query i sees keys 0 .. nk - 1. */
void nn_attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask, float keep,
                          const int *off, const size_t *att_off, int B, int C, int H, int causal)
{
    const int hs = C / H, C3 = 3 * C;
    const float sc = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic, 1) if (att_off[B] / H * hs > NN_PAR_MIN)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H;
        int o = off[b], n = off[b + 1] - off[b];
        for (int i = 0; i < n; i++) {
            const int nk = causal ? i + 1 : n;
            const float *q = qkv + (size_t)(o + i) * C3 + h * hs;
            float *p = att + att_off[b] + ((size_t)h * n + i) * n;
            const uint8_t *mk = mask ? mask + att_off[b] + ((size_t)h * n + i) * n : NULL;
            for (int j = 0; j < nk; j++) p[j] = nn_dot(q, qkv + (size_t)(o + j) * C3 + C + h * hs, hs) * sc;
            nn_softmax(p, nk);
            float *y = out + (size_t)(o + i) * C + h * hs;
            memset(y, 0, (size_t)hs * sizeof(float));
            for (int j = 0; j < nk; j++) {
                float pj = mk ? (mk[j] ? p[j] * keep : 0.0f) : p[j];
                if (pj != 0.0f) nn_axpy(y, pj, qkv + (size_t)(o + j) * C3 + 2 * C + h * hs, hs);
            }
        }
    }
}

/* Tasks write disjoint (rows, head) column blocks of dqkv. */
void nn_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           const uint8_t *mask, float keep, const int *off, const size_t *att_off,
                           int B, int C, int H, int causal)
{
    const int hs = C / H, C3 = 3 * C;
    const float sc = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic, 1) if (att_off[B] / H * hs > NN_PAR_MIN)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H;
        int o = off[b], n = off[b + 1] - off[b];
        float dp[n > 0 ? n : 1];
        for (int i = 0; i < n; i++) {
            const int nk = causal ? i + 1 : n;
            const float *p = att + att_off[b] + ((size_t)h * n + i) * n;
            const uint8_t *mk = mask ? mask + att_off[b] + ((size_t)h * n + i) * n : NULL;
            const float *dy = dout + (size_t)(o + i) * C + h * hs;
            const float *q = qkv + (size_t)(o + i) * C3 + h * hs;
            float *dq = dqkv + (size_t)(o + i) * C3 + h * hs;
            float s = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *v = qkv + (size_t)(o + j) * C3 + 2 * C + h * hs;
                float *dv = dqkv + (size_t)(o + j) * C3 + 2 * C + h * hs;
                float d = mk ? (mk[j] ? keep : 0.0f) : 1.0f;
                if (d != 0.0f) {
                    nn_axpy(dv, p[j] * d, dy, hs);
                    dp[j] = nn_dot(dy, v, hs) * d;
                } else {
                    dp[j] = 0.0f;
                }
                s += p[j] * dp[j];
            }
            for (int j = 0; j < nk; j++) {
                float ds = p[j] * (dp[j] - s) * sc;
                if (ds == 0.0f) continue;
                const float *k = qkv + (size_t)(o + j) * C3 + C + h * hs;
                float *dk = dqkv + (size_t)(o + j) * C3 + C + h * hs;
                nn_axpy(dq, ds, k, hs);
                nn_axpy(dk, ds, q, hs);
            }
        }
    }
}

/* ---- naive twins: double accumulators, serial -------------------------------------------------- */

void nn_attention_forward_naive(float *out, float *att, const float *qkv, const uint8_t *mask,
                                float keep, const int *off, const size_t *att_off, int B, int C,
                                int H, int causal)
{
    const int hs = C / H, C3 = 3 * C;
    const double sc = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++) {
        int o = off[b], n = off[b + 1] - off[b];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < n; i++) {
                const int nk = causal ? i + 1 : n;
                float *p = att + att_off[b] + ((size_t)h * n + i) * n;
                double mx = -INFINITY, s = 0.0;
                double e[n];
                for (int j = 0; j < nk; j++) {
                    double d = 0.0;
                    for (int k = 0; k < hs; k++)
                        d += (double)qkv[(size_t)(o + i) * C3 + h * hs + k] * qkv[(size_t)(o + j) * C3 + C + h * hs + k];
                    e[j] = d * sc;
                    if (e[j] > mx) mx = e[j];
                }
                for (int j = 0; j < nk; j++) {
                    e[j] = exp(e[j] - mx);
                    s += e[j];
                }
                for (int j = 0; j < nk; j++) p[j] = (float)(e[j] / s);
                for (int k = 0; k < hs; k++) {
                    double y = 0.0;
                    for (int j = 0; j < nk; j++) {
                        double d = mask ? (mask[att_off[b] + ((size_t)h * n + i) * n + j] ? keep : 0.0) : 1.0;
                        y += (double)p[j] * d * qkv[(size_t)(o + j) * C3 + 2 * C + h * hs + k];
                    }
                    out[(size_t)(o + i) * C + h * hs + k] = (float)y;
                }
            }
    }
}

void nn_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                 const float *att, const uint8_t *mask, float keep, const int *off,
                                 const size_t *att_off, int B, int C, int H, int causal)
{
    const int hs = C / H, C3 = 3 * C;
    const double sc = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++) {
        int o = off[b], n = off[b + 1] - off[b];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < n; i++) {
                const int nk = causal ? i + 1 : n;
                const float *p = att + att_off[b] + ((size_t)h * n + i) * n;
                double dp[n], s = 0.0;
                for (int j = 0; j < nk; j++) {
                    double d = mask ? (mask[att_off[b] + ((size_t)h * n + i) * n + j] ? keep : 0.0) : 1.0;
                    double g = 0.0;
                    for (int k = 0; k < hs; k++) {
                        double dy = dout[(size_t)(o + i) * C + h * hs + k];
                        g += dy * qkv[(size_t)(o + j) * C3 + 2 * C + h * hs + k];
                        dqkv[(size_t)(o + j) * C3 + 2 * C + h * hs + k] += (float)(p[j] * d * dy);
                    }
                    dp[j] = g * d;
                    s += p[j] * dp[j];
                }
                for (int j = 0; j < nk; j++) {
                    double ds = p[j] * (dp[j] - s) * sc;
                    for (int k = 0; k < hs; k++) {
                        dqkv[(size_t)(o + i) * C3 + h * hs + k] += (float)(ds * qkv[(size_t)(o + j) * C3 + C + h * hs + k]);
                        dqkv[(size_t)(o + j) * C3 + C + h * hs + k] += (float)(ds * qkv[(size_t)(o + i) * C3 + h * hs + k]);
                    }
                }
            }
    }
}
