/* align_naive.c: the naive reference kernels of the multimodal aligner: the same signatures and
 * equations as align_kernels.c written as plain serial loops with double accumulators, no BLAS, no
 * OpenMP (the linear layer is src/nn's naive twin). They are the yardstick the optimised kernels are tested against (tests/unit/test_align.c)
 * and can run a whole model (align_config.naive = 1).
 */
#include "align_kernels.h"

#include "../nn/linear.h"

#include <math.h>
#include <string.h>

static double nce(float *dahat, float *dbhat, const float *ahat, const int *pos,
                  const int64_t *aitem, int na, const float *bhat, const int64_t *bitem, int nb,
                  int d, float inv_tau, float gscale, float *logits, size_t chunk, double *rowloss)
{
    (void)logits;
    (void)chunk;
    (void)rowloss;
    double total = 0.0;
    for (int r = 0; r < na; r++) {
        const float *a = ahat + (size_t)r * d;
        const int p = pos[r];
        /* candidates: every j except other rows of the same item */
        double mx = -INFINITY;
        for (int j = 0; j < nb; j++) {
            if (aitem && bitem && bitem[j] == aitem[r] && j != p) continue;
            double s = 0.0;
            for (int c = 0; c < d; c++) s += (double)a[c] * bhat[(size_t)j * d + c];
            s *= inv_tau;
            if (s > mx) mx = s;
        }
        double z = 0.0, sp = 0.0;
        for (int j = 0; j < nb; j++) {
            if (aitem && bitem && bitem[j] == aitem[r] && j != p) continue;
            double s = 0.0;
            for (int c = 0; c < d; c++) s += (double)a[c] * bhat[(size_t)j * d + c];
            s *= inv_tau;
            z += exp(s - mx);
            if (j == p) sp = s;
        }
        const double lse = mx + log(z);
        total += lse - sp;
        if (!dahat) continue;
        for (int c = 0; c < d; c++) dahat[(size_t)r * d + c] = 0.0f;
        for (int j = 0; j < nb; j++) {
            if (aitem && bitem && bitem[j] == aitem[r] && j != p) continue;
            double s = 0.0;
            for (int c = 0; c < d; c++) s += (double)a[c] * bhat[(size_t)j * d + c];
            double g = exp(s * inv_tau - lse) - (j == p ? 1.0 : 0.0);
            g *= (double)gscale * inv_tau;
            for (int c = 0; c < d; c++) {
                dahat[(size_t)r * d + c] += (float)(g * bhat[(size_t)j * d + c]);
                dbhat[(size_t)j * d + c] += (float)(g * a[c]);
            }
        }
    }
    return total;
}

const align_kernels align_kernels_naive = {nn_linear_forward_naive, nn_linear_backward_naive,
                                           nce};
