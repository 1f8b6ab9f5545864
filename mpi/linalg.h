/* linalg.h: distributed dense linear algebra of the feature pipeline, on ScaLAPACK.
 *
 * la_rsvd: randomised truncated SVD (Halko, Martinsson & Tropp, 2011) of a sparse matrix whose rows
 *   are distributed in contiguous blocks (rank r holds rows [r*mb, (r+1)*mb), mb = ceil(m / P)):
 *   Y = A Omega, q power iterations Y = A (A^T Q), each orthonormalised with ScaLAPACK's pdgeqrf +
 *   pdorgqr on a P x 1 BLACS grid whose row blocks are exactly the ranks' row blocks; then B = Q^T A
 *   (allreduced, small), its SVD with LAPACK, U = Q U_B. Omega is drawn from (seed, column, row), so
 *   the result does not depend on the rank count beyond float summation order.
 * la_pca: principal components of row-distributed dense features (rows flagged absent are
 *   ignored): the covariance is summed over ranks, distributed block-cyclically over a square BLACS
 *   grid and diagonalised with pdsyevd; rows are projected on the top k components, optionally
 *   whitened (divided by sqrt(eigenvalue + eps)).
 * Both are collective over all ranks.
 */
#ifndef DM_LINALG_H
#define DM_LINALG_H

#include "par.h"

#include "../src/data/text.h"

#include <stdint.h>

/* Rows of the block distribution used by la_rsvd: [lo, hi) of m for this rank. */
void la_row_block(par_ctx *ctx, size_t m, size_t *lo, size_t *hi);

/* A: this rank's block of rows (n_cols = n for all ranks). Outputs: U_local (rows x k, row-major,
 * the left singular vectors scaled by the singular values when `scale` is set), S (k) on every rank. */
int la_rsvd(par_ctx *ctx, const dm_csr *A, size_t m, int k, int oversample, int power_iters, uint64_t seed, int scale,
            double *U_local, double *S);

/* X: this rank's rows (rows x D, row-major float), present (rows) or NULL = all present. out (rows x
 * k) float; eigvals (k, descending); mean (D). Absent rows of out are zero. */
int la_pca(par_ctx *ctx, const float *X, const uint8_t *present, size_t rows, size_t D, int k, int whiten, double eps,
           int block, float *out, double *eigvals, double *mean);

#endif
