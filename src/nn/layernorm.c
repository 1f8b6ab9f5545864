/* layernorm.c: see layernorm.h. */
#include "layernorm.h"

#include "linear.h" /* NN_PAR_MIN */

#include <math.h>
#include <stddef.h>

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *y = out + (size_t)r * C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float mu = (float)(s / C);
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (double)(x[c] - mu) * (x[c] - mu);
        float rs = (float)(1.0 / sqrt(v / C + (double)eps));
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - mu) * rs * w[c] + b[c];
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}

void nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C)
{
#pragma omp parallel if ((size_t)N * C > NN_PAR_MIN)
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
            /* columns in blocks of 16 per task, rows in order inside: deterministic, and the
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

void nn_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C, float eps)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        double mu = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mu += x[c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
        var /= C;
        double rs = 1.0 / sqrt(var + (double)eps);
        for (int c = 0; c < C; c++) out[(size_t)r * C + c] = (float)((x[c] - mu) * rs * w[c] + b[c]);
        if (mean) mean[r] = (float)mu;
        if (rstd) rstd[r] = (float)rs;
    }
}

void nn_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
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
                dinp[(size_t)r * C + c] += (float)(rs * ((double)dy[c] * w[c] - sg - (x[c] - mu) * rs * sgx));
    }
}
