/* adapter_kernels.h: the layer kernels of the online adapter, each over raw row-major pointers.
 * Two implementations share every signature: the optimised one (adapter_kernels.c: OpenBLAS
 * sgemm/sgemv, OpenMP over examples) and the naive reference (adapter_naive.c: plain serial loops
 * with double accumulators). Tests hold them together; adapter_config.naive runs a whole model on
 * the naive ones. The linear entries are the shared layer of src/nn/linear.h (nn_linear_forward/
 * backward and their naive twins).
 *
 * Conventions: a linear layer is y = x W^T + b with W (out, in) as torch.nn.Linear; backward
 * kernels ACCUMULATE (+=) into every gradient they are given, NULL skips one. No kernel allocates.
 */
#ifndef DM_ADAPTER_KERNELS_H
#define DM_ADAPTER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Loops over fewer elements stay on one thread (a parallel region costs more than they do). */
#define ADAPTER_PAR_MIN ((size_t)1 << 15)

typedef struct {
    /* out (N, OC) = inp (N, IC) . w^T (w (OC, IC)) + b (OC; NULL = 0) */
    void (*linear_forward)(float *out, const float *inp, const float *w, const float *b, int N,
                           int IC, int OC);
    /* dinp (N, IC) += dout . w;  dw (OC, IC) += dout^T . inp;  db (OC) += sum_rows dout */
    void (*linear_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, int N, int IC, int OC);
    /* Recommendation loss over B examples: s_bk = h[ex_u[b]] . z[ex_i[b, k]] (h (*, d), z (*, d),
     * ex_i (B, K1), column 0 the positive). Returns scale * sum_b l_b (double accumulation; loss
     * ADAPTER_LOSS_*). dscore (B, K1) = scale * d l_b / d s_bk, overwritten (NULL = loss only).
     * rowbuf: scratch of B doubles (per-example losses, summed in example order). */
    double (*rec_loss)(float *dscore, const float *h, const float *z, const int32_t *ex_u,
                       const int32_t *ex_i, int B, int K1, int d, int loss, float scale,
                       double *rowbuf);
} adapter_kernels;

extern const adapter_kernels adapter_kernels_fast;  /* adapter_kernels.c */
extern const adapter_kernels adapter_kernels_naive; /* adapter_naive.c */

#endif
