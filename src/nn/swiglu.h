/* swiglu.h: the SwiGLU gate of Llama's MLP (Shazeer 2020, "GLU Variants Improve Transformer"),
 * forward and backward over raw row-major pointers:
 *
 *   out = silu(g) u,   silu(g) = g sigmoid(g) = g / (1 + e^-g)
 *   dg  = dout u silu'(g),  silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))),   du = dout silu(g)
 *
 * g and u are the gate and up projections of N rows of F values; gate row r starts at
 * gu + r * ld and up row r at gu + r * ld + F (one fused (N, ld >= 2F) projection output, gate
 * columns first). out (N, F) is dense. The backward WRITES dgu (same layout as gu; it may alias
 * gu, each element is read before it is written). sigmoid uses nn_expf (src/nn/softmax.h, relative
 * error below 2e-7), so the loops vectorise; the naive twins use libm's exp in double. OpenMP over
 * rows; nothing allocates.
 */
#ifndef DM_NN_SWIGLU_H
#define DM_NN_SWIGLU_H

/* out (N, F) from gu (N, ld): gate columns [0, F), up columns [F, 2F) */
void nn_swiglu_forward(float *out, const float *gu, int N, int F, int ld);
/* dgu (N, ld) = the gradients of gate and up from dout (N, F) and the forward's gu */
void nn_swiglu_backward(float *dgu, const float *dout, const float *gu, int N, int F, int ld);

void nn_swiglu_forward_naive(float *out, const float *gu, int N, int F, int ld);
void nn_swiglu_backward_naive(float *dgu, const float *dout, const float *gu, int N, int F, int ld);

#endif
