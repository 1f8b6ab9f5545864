/* dropout.c: see dropout.h. */
#include "dropout.h"

#include "linear.h" /* NN_PAR_MIN */

void nn_dropout_add_forward(float *out, const float *res, const float *y, const uint8_t *mask, float keep, size_t n)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = (res ? res[i] : 0.0f) + (mask ? (mask[i] ? y[i] * keep : 0.0f) : y[i]);
}

void nn_dropout_backward(float *dy, const float *dout, const uint8_t *mask, float keep, size_t n)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) dy[i] = mask ? (mask[i] ? dout[i] * keep : 0.0f) : dout[i];
}
