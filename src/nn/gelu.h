/* gelu.h: the GELU activation in GPT-2's tanh approximation (torch gelu(approximate="tanh")),
 * forward and backward, elementwise over n floats:
 *
 *   gelu(x)  = x/2 (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)
 *   gelu'(x) = (1 + tanh(u))/2 + x/2 (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 0.044715 x^2)
 *
 * nn_gelu_forward   out = gelu(inp)                 (out may alias inp)
 * nn_gelu_backward  dinp = gelu'(inp) dout          (WRITES, so it can run in place: dinp may
 *                                                    alias dout; not an accumulation)
 * tanh is computed as 1 - 2 / (1 + e^{2u}) with nn_expf (src/nn/softmax.h), |u| clamped at 9 where
 * tanh is 1 in float: vectorisable, within 1e-6 of the tanhf form over [-10, 10]. The naive twins
 * (same signatures) use libm's tanhf. OpenMP over elements; nothing allocates.
 */
#ifndef DM_NN_GELU_H
#define DM_NN_GELU_H

#include <stddef.h>

void nn_gelu_forward(float *out, const float *inp, size_t n);
void nn_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void nn_gelu_forward_naive(float *out, const float *inp, size_t n);
void nn_gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t n);

#endif
