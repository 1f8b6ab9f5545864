/* align_kernels.h: the matrix kernels of the multimodal aligner (align.h), a forward/backward pair
 * for the linear layer and the InfoNCE loss with its gradient. Two implementations share every
 * signature: the optimised one (align_kernels.c: OpenBLAS sgemm, OpenMP over rows) and the naive
 * reference (align_naive.c: plain serial loops, double accumulators). Tests hold them together.
 * The linear entries are the shared layer of src/nn/linear.h (nn_linear_forward/backward and their
 * naive twins).
 *
 * Conventions: row-major; a linear layer is y = x W^T + b with W (out, in) as torch.nn.Linear;
 * backward kernels ACCUMULATE (+=) into every gradient they are given, NULL skips one.
 * No kernel allocates; callers pass scratch.
 */
#ifndef DM_ALIGN_KERNELS_H
#define DM_ALIGN_KERNELS_H

#include "../nn/linear.h" /* the linear pair; NN_PAR_MIN, below which loops stay serial */

#include <stddef.h>
#include <stdint.h>

typedef struct {
    nn_linear_forward_fn *linear_forward;   /* nn_linear_forward or its naive twin */
    nn_linear_backward_fn *linear_backward; /* nn_linear_backward or its naive twin */
    /* InfoNCE of na anchors against nb candidates, all rows unit vectors of width d:
     *   s_rj = ahat_r . bhat_j * inv_tau over the candidates j of anchor r (every j except those
     *   with bitem[j] == aitem[r] and j != pos[r]; aitem or bitem NULL = no exclusion),
     *   returns sum_r (logsumexp_j s_rj - s_r,pos[r])  (double accumulation, unscaled).
     * When dahat != NULL: dahat (na, d) = gscale d/dahat (overwritten) and dbhat (nb, d) +=
     * gscale d/dbhat. logits: scratch of chunk floats (>= nb; anchors go in blocks of chunk / nb),
     * rowloss: scratch of na doubles (per-anchor losses, summed in a fixed order). */
    double (*nce)(float *dahat, float *dbhat, const float *ahat, const int *pos,
                  const int64_t *aitem, int na, const float *bhat, const int64_t *bitem, int nb,
                  int d, float inv_tau, float gscale, float *logits, size_t chunk,
                  double *rowloss);
} align_kernels;

extern const align_kernels align_kernels_fast;  /* align_kernels.c */
extern const align_kernels align_kernels_naive; /* align_naive.c */

#endif
