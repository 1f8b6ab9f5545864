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

#include "../nn/linear.h" /* the linear pair; NN_PAR_MIN, below which loops stay serial */

#include <stddef.h>
#include <stdint.h>

typedef struct {
    nn_linear_forward_fn *linear_forward;   /* nn_linear_forward or its naive twin */
    nn_linear_backward_fn *linear_backward; /* nn_linear_backward or its naive twin */
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
