/* layernorm.h: layer normalisation over the last axis (torch.nn.LayerNorm), forward and backward
 * over raw row-major pointers.
 *
 * Forward, per row x (C) of inp (N, C), with gain w (C) and bias b (C):
 *   mu = mean(x),  var = mean((x - mu)^2) (biased),  rstd = 1 / sqrt(var + eps)
 *   out = (x - mu) rstd w + b
 * The row sums run in double: the mean of a constant row is then exact and its variance exactly 0
 * (with a small eps, SASRec's 1e-8, a rounding error of 1e-8 in x - mu would be amplified 1e4
 * times); mu and rstd are rounded to float and out computed in float from them. mean, rstd (N)
 * keep mu and rstd for the backward; either may be NULL (inference).
 *
 * Backward, with xhat = (x - mu) rstd and g = dout w (per row):
 *   dinp += rstd (g - mean(g) - xhat mean(g xhat))
 *   dw   += sum over rows of dout xhat,   db += sum over rows of dout
 * ACCUMULATES (+=) into every gradient given; NULL skips one; dinp must not alias dout. The row
 * loop is parallel for dinp; the parameter sums run over rows in order, columns in parallel, so no
 * result depends on the thread count.
 *
 * Naive twins (suffix _naive, same signatures): double throughout, plain serial loops. Nothing
 * allocates.
 */
#ifndef DM_NN_LAYERNORM_H
#define DM_NN_LAYERNORM_H

/* out (N, C) from inp (N, C); mean, rstd (N) or NULL */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps);
/* dinp (N, C), dw (C), db (C) += from dout (N, C), inp, w and the forward's mean, rstd */
void nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C);

void nn_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C, float eps);
void nn_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C);

#endif
