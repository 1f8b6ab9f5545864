/* adapter_naive.c: the naive reference kernels of the adapter: the same signatures and equations
 * as adapter_kernels.c written as plain serial loops with double accumulators, no BLAS, no OpenMP
 * (the linear layer is src/nn's naive twin).
 * The yardstick of the optimised kernels (tests/unit/test_adapter.c); adapter_config.naive = 1
 * runs a whole model on them.
 */
#include "adapter_kernels.h"

#include "adapter.h"

#include "../nn/linear.h"

#include <math.h>

static double rec_loss(float *dscore, const float *h, const float *z, const int32_t *ex_u,
                       const int32_t *ex_i, int B, int K1, int d, int loss, float scale,
                       double *rowbuf)
{
    (void)rowbuf;
    double tot = 0.0;
    for (int b = 0; b < B; b++) {
        double s[K1 > 0 ? K1 : 1];
        for (int k = 0; k < K1; k++) {
            double acc = 0.0;
            for (int c = 0; c < d; c++)
                acc += (double)h[(size_t)ex_u[b] * d + c] * z[(size_t)ex_i[(size_t)b * K1 + k] * d + c];
            s[k] = acc;
        }
        if (loss == ADAPTER_LOSS_SOFTMAX) {
            /* l = log sum_k exp(s_k) - s_0, d l / d s_k = softmax_k - [k = 0] */
            double mx = s[0], se = 0.0;
            for (int k = 1; k < K1; k++) mx = fmax(mx, s[k]);
            for (int k = 0; k < K1; k++) se += exp(s[k] - mx);
            tot += mx + log(se) - s[0];
            for (int k = 0; dscore && k < K1; k++)
                dscore[(size_t)b * K1 + k] = (float)(scale * (exp(s[k] - mx) / se - (k == 0 ? 1.0 : 0.0)));
        } else {
            /* l = -log sigmoid(s_0) - sum_k log(1 - sigmoid(s_k)) */
            tot += -log(1.0 / (1.0 + exp(-s[0])));
            for (int k = 1; k < K1; k++) tot += -log(1.0 - 1.0 / (1.0 + exp(-s[k])));
            for (int k = 0; dscore && k < K1; k++) {
                double sg = 1.0 / (1.0 + exp(-s[k]));
                dscore[(size_t)b * K1 + k] = (float)(scale * (k == 0 ? sg - 1.0 : sg));
            }
        }
    }
    return scale * tot;
}

const adapter_kernels adapter_kernels_naive = {nn_linear_forward_naive, nn_linear_backward_naive,
                                               rec_loss};
