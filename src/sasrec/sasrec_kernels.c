/* sasrec_kernels.c: the optimised SASRec layer kernels (see sasrec_kernels.h). Matrix products go
 * through nn_sgemm (OpenBLAS, or the fixed-order kernel in reproducible mode: src/nn/gemm.h) and
 * OpenBLAS sgemv, called outside OpenMP regions; row-wise work (layer norm, softmax, attention per
 * (sequence, head)) is parallel over its outermost independent loop. Every reduction runs in a
 * fixed order, so results do not depend on the thread schedule.
 */
#include "sasrec_kernels.h"

#include "../nn/gemm.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static void linear_forward(float *out, int ldo, const float *inp, int ldi, const float *w,
                           const float *b, int N, int IC, int OC)
{
    if (N <= 0) return;
    float beta = 0.0f;
    if (b) {
        /* start from the bias and let sgemm add x W^T to it */
#pragma omp parallel for schedule(static) if ((size_t)N * OC > SASREC_PAR_MIN)
        for (int r = 0; r < N; r++) memcpy(out + (size_t)r * ldo, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    nn_sgemm(CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, ldi, w, IC, beta, out, ldo);
}

static void linear_backward(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                            const float *inp, const float *w, const float *ones, int N, int IC,
                            int OC)
{
    if (N <= 0) return;
    if (dinp) /* dx = dy W */
        nn_sgemm(CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, ldo, w, IC, 1.0f, dinp, ldi);
    if (dw) /* dW = dy^T x */
        nn_sgemm(CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, ldo, inp, ldi, 1.0f, dw, IC);
    if (db) /* db = dy^T 1 */
        cblas_sgemv(CblasRowMajor, CblasTrans, N, OC, 1.0f, dout, ldo, ones, 1, 1.0f, db, 1);
}

static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C > SASREC_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *y = out + (size_t)r * C;
        /* sums in double: the mean of a constant row is then exact, so its variance is exactly 0
         * (with eps = 1e-8 a rounding error of 1e-8 in x - mu would be amplified 1e4 times) */
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float mu = (float)(s / C);
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (double)(x[c] - mu) * (x[c] - mu);
        float rs = (float)(1.0 / sqrt(v / C + (double)SASREC_LN_EPS));
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - mu) * rs * w[c] + b[c];
        mean[r] = mu;
        rstd[r] = rs;
    }
}

/* With xhat = (x - mu) rstd and g = dout * w:
 *   dx = rstd (g - mean(g) - xhat mean(g xhat)),  dw += sum_r dout xhat,  db += sum_r dout.
 * The row loop is parallel for dx; the parameter sums run over rows in order, columns in
 * parallel, so they are deterministic. */
static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C)
{
#pragma omp parallel if ((size_t)N * C > SASREC_PAR_MIN)
    {
        if (dinp) {
#pragma omp for schedule(static)
            for (int r = 0; r < N; r++) {
                const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
                float *dx = dinp + (size_t)r * C;
                float mu = mean[r], rs = rstd[r];
                float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
                for (int c = 0; c < C; c++) {
                    float g = dy[c] * w[c];
                    sg += g;
                    sgx += g * (x[c] - mu) * rs;
                }
                sg /= C;
                sgx /= C;
#pragma omp simd
                for (int c = 0; c < C; c++)
                    dx[c] += rs * (dy[c] * w[c] - sg - (x[c] - mu) * rs * sgx);
            }
        }
        if (dw || db) {
            /* columns in blocks of 16 per task, rows in order inside: deterministic and the
             * inner loop runs over contiguous columns */
            const int CB = 16, nblk = (C + CB - 1) / CB;
#pragma omp for schedule(static)
            for (int blk = 0; blk < nblk; blk++) {
                int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
                float sw[16] = {0}, sb[16] = {0};
                for (int r = 0; r < N; r++) {
                    const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
                    float mu = mean[r], rs = rstd[r];
#pragma omp simd
                    for (int c = c0; c < c1; c++) {
                        sw[c - c0] += dy[c] * (x[c] - mu) * rs;
                        sb[c - c0] += dy[c];
                    }
                }
                for (int c = c0; c < c1; c++) {
                    if (dw) dw[c] += sw[c - c0];
                    if (db) db[c] += sb[c - c0];
                }
            }
        }
    }
}

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

/* exp(x) by the Cephes expf reduction and polynomial (relative error below 2e-7 over the float
 * range; inputs below -87 flush to about 1e-38). Branch-free and call-free, so the softmax loops
 * over all items vectorise; libm's expf is a function call per element. */
static inline __attribute__((always_inline)) float exp_poly(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* fx = nearest integer to x log2(e), by the 1.5 * 2^23 trick (floorf would not vectorise) */
    float fx = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    union {
        uint32_t u;
        float f;
    } two_n = {.u = (uint32_t)((int32_t)fx + 127) << 23}; /* 2^fx from the exponent bits */
    return y * two_n.f;
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
            float mx = -INFINITY;
            for (int j = 0; j <= i; j++) {
                p[j] = dot(q, qkv + (size_t)(o + j) * C3 + C + h * hs, hs) * sc;
                if (p[j] > mx) mx = p[j];
            }
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int j = 0; j <= i; j++) {
                p[j] = exp_poly(p[j] - mx);
                s += p[j];
            }
            float inv = 1.0f / s;
            for (int j = 0; j <= i; j++) p[j] *= inv;
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

/* Rows in blocks of R = chunk / V: logits = h W^T by sgemm, a row-parallel softmax that turns the
 * block into scale (p - onehot) in place, then dh = G W and dW += G^T h by sgemm. */
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
            float *z = logits + (size_t)r * V;
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
            int t = tgt[r0 + r];
            float zt = z[t];
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int i = 1; i < V; i++) {
                z[i] = exp_poly(z[i] - mx);
                s += z[i];
            }
            /* loss = logsumexp - z_t = log s + mx - z_t */
            rowbuf[r0 + r] = logf(s) + mx - zt;
            float g = scale / s;
            z[0] = 0.0f;
#pragma omp simd
            for (int i = 1; i < V; i++) z[i] *= g;
            z[t] -= scale;
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
    linear_forward,    linear_backward,    layernorm_forward, layernorm_backward,
    attention_forward, attention_backward, ce_loss,           bce_loss,
};
