/* rmsnorm.h: root-mean-square layer normalisation over the last axis (Zhang & Sennrich 2019; the
 * norm of Llama, Hugging Face LlamaRMSNorm), forward and backward over raw row-major pointers.
 *
 * Forward, per row x (C) of inp (N, C), with gain w (C):
 *   rstd = 1 / sqrt(mean(x^2) + eps),   out = x rstd w
 * The sum of squares runs in double (a row of equal large values keeps its exact scale); rstd is
 * rounded to float and out computed in float from it, as HF's float32 path does. rstd (N) keeps
 * the factor for the backward; it may be NULL (inference). out may alias inp.
 *
 * Backward, with xhat = x rstd and g = dout w (per row):
 *   dinp += rstd (g - xhat mean(g xhat)),   dw += sum over rows of dout xhat
 * ACCUMULATES (+=) into the gradients given; NULL skips one; dinp must not alias dout. The row loop
 * is parallel for dinp; the dw sums run over rows in order, columns in parallel (thread-count
 * independent).
 *
 * Naive twins (suffix _naive, same signatures): double throughout, serial loops. Nothing
 * allocates.
 */
#ifndef DM_NN_RMSNORM_H
#define DM_NN_RMSNORM_H

/* out (N, C) from inp (N, C) and w (C); rstd (N) or NULL */
void nn_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
/* dinp (N, C), dw (C) += from dout (N, C), inp, w and the forward's rstd */
void nn_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C);

void nn_rmsnorm_forward_naive(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                              float eps);
void nn_rmsnorm_backward_naive(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                               const float *rstd, int N, int C);

#endif
