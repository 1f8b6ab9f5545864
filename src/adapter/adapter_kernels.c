/* adapter_kernels.c: the optimised adapter kernels (see adapter_kernels.h): linear layers
 * (src/nn/linear.h) as nn_sgemm calls (OpenBLAS, or the fixed-order kernel in reproducible mode: src/nn/gemm.h), the
 * recommendation loss with OpenMP over examples. The per-example losses go through a buffer summed
 * in example order, so the result does not depend on the thread count.
 */
#include "adapter_kernels.h"

#include "adapter.h"

#include "../nn/gemm.h"
#include "../nn/linear.h"

#include <math.h>
#include <string.h>

static inline double softplus(double x) { return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x))); }
static inline double sigmoid(double x)
{
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

static double rec_loss(float *dscore, const float *h, const float *z, const int32_t *ex_u,
                       const int32_t *ex_i, int B, int K1, int d, int loss, float scale,
                       double *rowbuf)
{
#pragma omp parallel for schedule(static) if ((size_t)B * K1 * d > NN_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *hu = h + (size_t)ex_u[b] * d;
        double s[K1 > 0 ? K1 : 1];
        for (int k = 0; k < K1; k++) {
            const float *zi = z + (size_t)ex_i[(size_t)b * K1 + k] * d;
            float acc = 0.0f;
            for (int c = 0; c < d; c++) acc += hu[c] * zi[c];
            s[k] = acc;
        }
        double l;
        float *ds = dscore ? dscore + (size_t)b * K1 : NULL;
        if (loss == ADAPTER_LOSS_SOFTMAX) {
            double mx = s[0], se = 0.0;
            for (int k = 1; k < K1; k++) mx = s[k] > mx ? s[k] : mx;
            for (int k = 0; k < K1; k++) se += exp(s[k] - mx);
            l = mx + log(se) - s[0];
            if (ds)
                for (int k = 0; k < K1; k++)
                    ds[k] = (float)(scale * (exp(s[k] - mx) / se - (k == 0)));
        } else {
            l = softplus(-s[0]);
            for (int k = 1; k < K1; k++) l += softplus(s[k]);
            if (ds) {
                ds[0] = (float)(scale * (sigmoid(s[0]) - 1.0));
                for (int k = 1; k < K1; k++) ds[k] = (float)(scale * sigmoid(s[k]));
            }
        }
        rowbuf[b] = l;
    }
    double tot = 0.0;
    for (int b = 0; b < B; b++) tot += rowbuf[b];
    return scale * tot;
}

const adapter_kernels adapter_kernels_fast = {nn_linear_forward, nn_linear_backward, rec_loss};
