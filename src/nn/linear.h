/* linear.h: the linear (fully connected) layer, forward and backward over raw row-major pointers,
 * in the two weight layouts the models use:
 *
 *   nn_linear_*   W (OC, IC) as torch.nn.Linear:               out = inp W^T + b
 *   nn_matmul_*   W (IC, OC) as GPT-2's Conv1D (Hugging Face):  out = inp W + b
 *
 * with inp (N, IC), out (N, OC), b (OC) or NULL (no bias). The _ld variants of nn_linear take row
 * strides: inp and dinp rows ldi >= IC floats apart, out and dout rows ldo >= OC apart (a column
 * block of a wider matrix, e.g. Q of a fused (N, 3C) QKV).
 *
 * Backward, from dout = dL/dout:
 *   dinp (N, IC) += dout W           (linear)      dinp += dout W^T   (matmul)
 *   dw  (OC, IC) += dout^T inp       (linear)      dw (IC, OC) += inp^T dout   (matmul)
 *   db  (OC)     += sum over rows of dout
 * Every backward ACCUMULATES (+=) into the gradients it is given; NULL skips one. The bias sum
 * runs over rows in order (columns in parallel), so it does not depend on the thread count, or,
 * when `ones` (N floats of 1) is given to nn_linear_backward_ld, is one OpenBLAS sgemv dout^T 1
 * (faster on long batches; OpenBLAS's summation order).
 *
 * Products go through nn_sgemm (src/nn/gemm.h): OpenBLAS, or in reproducible mode the fixed-order
 * kernel, where every output row depends only on its own input row. The bias is copied into out
 * first and the product added to it (sgemm's beta = 1): out = b + sum_k inp_k w_k in sgemm's order.
 * N <= 0 does nothing; IC = 0 gives out = b (or 0) and no weight or input gradient.
 *
 * Each function has a naive twin (suffix _naive, same signature): plain serial loops with double
 * accumulators, no BLAS, no OpenMP; the models' naive modes (cfg.naive) run on them and
 * tests/unit/test_nn.c holds the two together. Nothing allocates.
 */
#ifndef DM_NN_LINEAR_H
#define DM_NN_LINEAR_H

#include <stddef.h>

/* Loops over fewer elements stay on one thread: a parallel region costs a fork and a barrier. */
#define NN_PAR_MIN ((size_t)1 << 15)

/* out (N, OC; rows ldo apart) = inp (N, IC; rows ldi apart) w^T + b;  w (OC, IC), b (OC) or NULL */
void nn_linear_forward_ld(float *out, int ldo, const float *inp, int ldi, const float *w,
                          const float *b, int N, int IC, int OC);
/* dinp += dout w;  dw (OC, IC) += dout^T inp;  db (OC) += sum_rows dout (as an sgemv when ones,
 * N floats of 1, is given) */
void nn_linear_backward_ld(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                           const float *inp, const float *w, const float *ones, int N, int IC,
                           int OC);
/* out (N, OC) = inp (N, IC) w + b;  w (IC, OC), b (OC) or NULL */
void nn_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC,
                       int OC);
/* dinp (N, IC) += dout w^T;  dw (IC, OC) += inp^T dout;  db (OC) += sum_rows dout */
void nn_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC);

void nn_linear_forward_ld_naive(float *out, int ldo, const float *inp, int ldi, const float *w,
                                const float *b, int N, int IC, int OC);
void nn_linear_backward_ld_naive(float *dinp, int ldi, float *dw, float *db, const float *dout,
                                 int ldo, const float *inp, const float *w, const float *ones, int N,
                                 int IC, int OC);
void nn_matmul_forward_naive(float *out, const float *inp, const float *w, const float *b, int N,
                             int IC, int OC);
void nn_matmul_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, int N, int IC, int OC);

/* The contiguous torch-layout layer most models call: out (N, OC) = inp (N, IC) w^T + b and its
 * backward (dinp (N, IC), dw (OC, IC), db (OC) +=), each beside its naive twin; a model's kernel
 * table holds one pair as an nn_linear_forward_fn and an nn_linear_backward_fn. */
typedef void nn_linear_forward_fn(float *out, const float *inp, const float *w, const float *b, int N,
                                  int IC, int OC);
typedef void nn_linear_backward_fn(float *dinp, float *dw, float *db, const float *dout,
                                   const float *inp, const float *w, int N, int IC, int OC);
static inline void nn_linear_forward(float *out, const float *inp, const float *w, const float *b,
                                     int N, int IC, int OC)
{
    nn_linear_forward_ld(out, OC, inp, IC, w, b, N, IC, OC);
}
static inline void nn_linear_forward_naive(float *out, const float *inp, const float *w,
                                           const float *b, int N, int IC, int OC)
{
    nn_linear_forward_ld_naive(out, OC, inp, IC, w, b, N, IC, OC);
}
static inline void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                                      const float *inp, const float *w, int N, int IC, int OC)
{
    nn_linear_backward_ld(dinp, IC, dw, db, dout, OC, inp, w, NULL, N, IC, OC);
}
static inline void nn_linear_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                            const float *inp, const float *w, int N, int IC,
                                            int OC)
{
    nn_linear_backward_ld_naive(dinp, IC, dw, db, dout, OC, inp, w, NULL, N, IC, OC);
}

#endif
