/* swiglu.c: see swiglu.h. */
#include "swiglu.h"

#include "linear.h"  /* NN_PAR_MIN */
#include "softmax.h" /* nn_expf */

#include <math.h>
#include <stddef.h>

void nn_swiglu_forward(float *out, const float *gu, int N, int F, int ld)
{
#pragma omp parallel for schedule(static) if ((size_t)N * F > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *g = gu + (size_t)r * ld, *u = g + F;
        float *o = out + (size_t)r * F;
#pragma omp simd
        for (int i = 0; i < F; i++) o[i] = g[i] / (1.0f + nn_expf(-g[i])) * u[i];
    }
}

void nn_swiglu_backward(float *dgu, const float *dout, const float *gu, int N, int F, int ld)
{
#pragma omp parallel for schedule(static) if ((size_t)N * F > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *g = gu + (size_t)r * ld, *u = g + F, *d = dout + (size_t)r * F;
        float *dg = dgu + (size_t)r * ld, *du = dg + F;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            float gi = g[i], ui = u[i], s = 1.0f / (1.0f + nn_expf(-gi));
            dg[i] = d[i] * ui * s * (1.0f + gi * (1.0f - s));
            du[i] = d[i] * gi * s;
        }
    }
}

void nn_swiglu_forward_naive(float *out, const float *gu, int N, int F, int ld)
{
    for (int r = 0; r < N; r++)
        for (int i = 0; i < F; i++) {
            double g = gu[(size_t)r * ld + i], u = gu[(size_t)r * ld + F + i];
            out[(size_t)r * F + i] = (float)(g / (1.0 + exp(-g)) * u);
        }
}

void nn_swiglu_backward_naive(float *dgu, const float *dout, const float *gu, int N, int F, int ld)
{
    for (int r = 0; r < N; r++)
        for (int i = 0; i < F; i++) {
            double g = gu[(size_t)r * ld + i], u = gu[(size_t)r * ld + F + i], d = dout[(size_t)r * F + i];
            double s = 1.0 / (1.0 + exp(-g));
            dgu[(size_t)r * ld + i] = (float)(d * u * s * (1.0 + g * (1.0 - s)));
            dgu[(size_t)r * ld + F + i] = (float)(d * g * s);
        }
}
