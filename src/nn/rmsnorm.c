/* rmsnorm.c: see rmsnorm.h. */
#include "rmsnorm.h"

#include "linear.h" /* NN_PAR_MIN */

#include <math.h>
#include <stddef.h>

void nn_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *y = out + (size_t)r * C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += (double)x[c] * x[c];
        float rs = (float)(1.0 / sqrt(s / C + (double)eps));
        if (rstd) rstd[r] = rs;
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = x[c] * rs * w[c];
    }
}

void nn_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C)
{
#pragma omp parallel if ((size_t)N * C > NN_PAR_MIN)
    {
        if (dinp) {
#pragma omp for schedule(static)
            for (int r = 0; r < N; r++) {
                const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
                float *dx = dinp + (size_t)r * C;
                float rs = rstd[r], sgx = 0.0f;
#pragma omp simd reduction(+ : sgx)
                for (int c = 0; c < C; c++) sgx += dy[c] * w[c] * x[c] * rs;
                sgx /= C;
#pragma omp simd
                for (int c = 0; c < C; c++) dx[c] += rs * (dy[c] * w[c] - x[c] * rs * sgx);
            }
        }
        if (dw) {
            const int CB = 16, nblk = (C + CB - 1) / CB;
#pragma omp for schedule(static)
            for (int blk = 0; blk < nblk; blk++) {
                int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
                float sw[16] = {0};
                for (int r = 0; r < N; r++) {
                    const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
                    float rs = rstd[r];
#pragma omp simd
                    for (int c = c0; c < c1; c++) sw[c - c0] += dy[c] * x[c] * rs;
                }
                for (int c = c0; c < c1; c++) dw[c] += sw[c - c0];
            }
        }
    }
}

void nn_rmsnorm_forward_naive(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                              float eps)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += (double)x[c] * x[c];
        double rs = 1.0 / sqrt(s / C + (double)eps);
        if (rstd) rstd[r] = (float)rs;
        for (int c = 0; c < C; c++) out[(size_t)r * C + c] = (float)(x[c] * rs * w[c]);
    }
}

void nn_rmsnorm_backward_naive(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                               const float *rstd, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        double rs = rstd[r], sgx = 0.0;
        for (int c = 0; c < C; c++) sgx += (double)dy[c] * w[c] * x[c] * rs;
        sgx /= C;
        for (int c = 0; c < C; c++) {
            if (dinp) dinp[(size_t)r * C + c] += (float)(rs * ((double)dy[c] * w[c] - x[c] * rs * sgx));
            if (dw) dw[c] += (float)((double)dy[c] * x[c] * rs);
        }
    }
}
