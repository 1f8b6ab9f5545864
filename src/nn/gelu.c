/* gelu.c: see gelu.h. */
#include "gelu.h"

#include "linear.h" /* NN_PAR_MIN */
#include "softmax.h"

#include <math.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* tanh(x) = 1 - 2 / (1 + e^{2x}); |x| is clamped at 9 where tanh is 1 in float. */
static inline float tanh_fast(float x)
{
    x = x < -9.0f ? -9.0f : x;
    x = x > 9.0f ? 9.0f : x;
    return 1.0f - 2.0f / (1.0f + nn_expf(2.0f * x));
}

/* gelu'(x) given t = tanh(u) */
static inline float gelu_grad(float x, float t)
{
    float sech2 = 1.0f - t * t;
    return 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

void nn_gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

void nn_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        dinp[i] = gelu_grad(x, tanh_fast(GELU_K * (x + 0.044715f * x * x * x))) * dout[i];
    }
}

void nn_gelu_forward_naive(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

void nn_gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        dinp[i] = gelu_grad(x, tanhf(GELU_K * (x + 0.044715f * x * x * x))) * dout[i];
    }
}
