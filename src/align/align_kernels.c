/* align_kernels.c: the optimised kernels of the multimodal aligner (see align_kernels.h): linear
 * layers (src/nn/linear.h) and the InfoNCE logits and gradients as nn_sgemm calls (OpenBLAS, or the fixed-order
 * kernel in reproducible mode: src/nn/gemm.h), the row-wise softmax under OpenMP (never around a
 * BLAS call).
 */
#include "align_kernels.h"

#include "../core/err.h"
#include "../nn/gemm.h"
#include "../nn/linear.h"

#include <math.h>
#include <string.h>

static void nce_rows(float *logits, double *rowloss, const int *pos, const int64_t *aitem,
                     const int64_t *bitem, int n, int nb, float inv_tau, float gscale, int grad)
{
    const int excl = aitem && bitem;
#pragma omp parallel for schedule(static) if ((size_t)n * nb > NN_PAR_MIN)
    for (int r = 0; r < n; r++) {
        float *L = logits + (size_t)r * nb;
        const int p = pos[r];
        const int64_t it = excl ? aitem[r] : 0;
        float mx = L[p];
        const float lp = L[p];
        for (int j = 0; j < nb; j++)
            if (!(excl && bitem[j] == it && j != p) && L[j] > mx) mx = L[j];
        double s = 0.0;
        for (int j = 0; j < nb; j++) { /* L becomes exp(L - max), 0 at excluded candidates */
            float e = (excl && bitem[j] == it && j != p) ? 0.0f : expf(L[j] - mx);
            L[j] = e;
            s += e;
        }
        rowloss[r] = mx + log(s) - lp;
        if (grad) {
            const float c = (float)(gscale * inv_tau / s);
            for (int j = 0; j < nb; j++) L[j] *= c;
            L[p] -= gscale * inv_tau;
        }
    }
}

static double nce(float *dahat, float *dbhat, const float *ahat, const int *pos,
                  const int64_t *aitem, int na, const float *bhat, const int64_t *bitem, int nb,
                  int d, float inv_tau, float gscale, float *logits, size_t chunk, double *rowloss)
{
    if (na <= 0 || nb <= 0) return 0.0;
    DM_ASSERT(chunk >= (size_t)nb);
    size_t rb = chunk / (size_t)nb;
    if (rb > (size_t)na) rb = (size_t)na;
    const int grad = dahat != NULL;
    for (int r0 = 0; r0 < na; r0 += (int)rb) {
        int n = na - r0 < (int)rb ? na - r0 : (int)rb;
        const float *A = ahat + (size_t)r0 * d;
        nn_sgemm(CblasNoTrans, CblasTrans, n, nb, d, inv_tau, A, d, bhat, d, 0.0f, logits, nb);
        nce_rows(logits, rowloss + r0, pos + r0, aitem ? aitem + r0 : NULL, bitem, n, nb, inv_tau,
                 gscale, grad);
        if (grad) {
            /* dA = G bhat, dB += G^T A with G = gscale inv_tau (softmax - onehot) */
            nn_sgemm(CblasNoTrans, CblasNoTrans, n, d, nb, 1.0f, logits, nb, bhat, d, 0.0f,
                     dahat + (size_t)r0 * d, d);
            nn_sgemm(CblasTrans, CblasNoTrans, nb, d, n, 1.0f, logits, nb, A, d, 1.0f, dbhat, d);
        }
    }
    double s = 0.0;
    for (int r = 0; r < na; r++) s += rowloss[r];
    return s;
}

const align_kernels align_kernels_fast = {nn_linear_forward, nn_linear_backward, nce};
