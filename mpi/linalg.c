/* linalg.c: randomised SVD and PCA on ScaLAPACK, see linalg.h. */
#include "linalg.h"

#include "grid.h"

#include "../src/core/err.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"

#include <cblas.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *info);

int Csys2blacs_handle(MPI_Comm comm);

void la_row_block(par_ctx *ctx, size_t m, size_t *lo, size_t *hi)
{
    size_t mb = (m + (size_t)ctx->size - 1) / (size_t)ctx->size;
    if (mb == 0) mb = 1;
    *lo = (size_t)ctx->rank * mb;
    if (*lo > m) *lo = m;
    *hi = *lo + mb > m ? m : *lo + mb;
}

/* Orthonormalises the columns of the row-distributed Y (m x l; local rows x l column-major,
 * leading dimension lld) in place with pdgeqrf + pdorgqr on a P x 1 grid. */
static int dist_orth(par_ctx *ctx, int ctxt, double *Y, int m, int l, int mb, int lld)
{
    int desc[9], zero = 0, one = 1, info = 0;
    descinit_(desc, &m, &l, &mb, &l, &zero, &zero, &ctxt, &lld, &info);
    if (info) return DM_ERR(DM_EMPI, "descinit failed (info %d)", info);
    double *tau = calloc((size_t)l + 1, sizeof *tau), wq;
    if (!tau) return DM_ERR(DM_ENOMEM, "out of memory");
    int lw = -1;
    pdgeqrf_(&m, &l, Y, &one, &one, desc, tau, &wq, &lw, &info);
    lw = (int)wq + 1;
    double w2;
    int lw2 = -1;
    pdorgqr_(&m, &l, &l, Y, &one, &one, desc, tau, &w2, &lw2, &info);
    if ((int)w2 + 1 > lw) lw = (int)w2 + 1;
    double *work = malloc((size_t)lw * sizeof *work);
    if (!work) {
        free(tau);
        return DM_ERR(DM_ENOMEM, "out of memory");
    }
    pdgeqrf_(&m, &l, Y, &one, &one, desc, tau, work, &lw, &info);
    int64_t bad = info;
    if (!info) {
        pdorgqr_(&m, &l, &l, Y, &one, &one, desc, tau, work, &lw, &info);
        bad = info;
    }
    free(work);
    free(tau);
    par_allreduce_max_i64(ctx, &bad, 1);
    if (bad) return DM_ERR(DM_ENUM, "ScaLAPACK QR failed (info %lld)", (long long)bad);
    return DM_OK;
}

/* Y (rows x l, column-major ld rows) = A_local (rows x n) * Z (n x l, column-major) */
static void spmm(const dm_csr *A, const double *Z, size_t n, int l, double *Y, size_t ld)
{
    size_t rows = A->n_rows;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < rows; i++) {
        for (int c = 0; c < l; c++) {
            double s = 0;
            for (int64_t p = A->row_off[i]; p < A->row_off[i + 1]; p++) s += A->val[p] * Z[(size_t)c * n + (size_t)A->col[p]];
            Y[(size_t)c * ld + i] = s;
        }
    }
}

/* Z (n x l, column-major) = A_local^T Q_local, summed over ranks */
static int spmtm(par_ctx *ctx, const dm_csr *A, const double *Q, size_t ld, size_t n, int l, double *Z)
{
    memset(Z, 0, n * (size_t)l * sizeof *Z);
    for (size_t i = 0; i < A->n_rows; i++)
        for (int64_t p = A->row_off[i]; p < A->row_off[i + 1]; p++)
            for (int c = 0; c < l; c++) Z[(size_t)c * n + (size_t)A->col[p]] += A->val[p] * Q[(size_t)c * ld + i];
    return par_allreduce_sum_f64(ctx, Z, n * (size_t)l);
}

int la_rsvd(par_ctx *ctx, const dm_csr *A, size_t m, int k, int oversample, int power_iters, uint64_t seed, int scale,
            double *U_local, double *S)
{
    size_t n = A->n_cols, lo, hi;
    la_row_block(ctx, m, &lo, &hi);
    if (A->n_rows != hi - lo) return DM_ERR(DM_EINTERNAL, "la_rsvd: %zu local rows, expected %zu", A->n_rows, hi - lo);
    int l = k + oversample;
    if ((size_t)l > n) l = (int)n;
    if ((size_t)l > m) l = (int)m;
    if (l < k) return DM_ERR(DM_ECONFIG, "rank %d asked of a %zu x %zu matrix", k, m, n);
    int mb = (int)((m + (size_t)ctx->size - 1) / (size_t)ctx->size);
    if (mb < 1) mb = 1;
    int rows = (int)(hi - lo), lld = rows > 1 ? rows : 1;
    int ctxt = Csys2blacs_handle(*(MPI_Comm *)ctx->comm);
    Cblacs_gridinit(&ctxt, "Col", ctx->size, 1);
    double *Om = malloc(n * (size_t)l * sizeof *Om), *Y = calloc((size_t)lld * (size_t)l, sizeof *Y),
           *B = malloc((size_t)l * n * sizeof *B);
    int rc = (!Om || !Y || !B) ? DM_ERR(DM_ENOMEM, "out of memory for the randomised SVD") : DM_OK;
    if (!rc)
        for (int c = 0; c < l; c++) {
            dm_rng r;
            dm_rng_seed(&r, dm_rng_key(seed, 0x0E6A, (uint64_t)c));
            for (size_t j = 0; j < n; j++) Om[(size_t)c * n + j] = dm_rng_normal(&r);
        }
    if (!rc) spmm(A, Om, n, l, Y, (size_t)lld);
    for (int it = 0; it < power_iters && !rc; it++) {
        rc = dist_orth(ctx, ctxt, Y, (int)m, l, mb, lld);
        if (!rc) rc = spmtm(ctx, A, Y, (size_t)lld, n, l, Om);
        if (!rc) spmm(A, Om, n, l, Y, (size_t)lld);
    }
    if (!rc) rc = dist_orth(ctx, ctxt, Y, (int)m, l, mb, lld);
    /* B^T = A^T Q (n x l column-major) */
    if (!rc) rc = spmtm(ctx, A, Y, (size_t)lld, n, l, B);
    if (!rc) {
        /* SVD of B^T (n x l): B^T = V S U_b^T, so the left vectors of B are the right ones here */
        int nn = (int)n, info = 0, lw = -1, ldvt = l;
        double *s = malloc((size_t)l * sizeof *s), *vt = malloc((size_t)l * (size_t)l * sizeof *vt), wq;
        dgesvd_("N", "A", &nn, &l, B, &nn, s, NULL, &nn, vt, &ldvt, &wq, &lw, &info);
        lw = (int)wq + 1;
        double *work = malloc((size_t)lw * sizeof *work);
        if (!s || !vt || !work) rc = DM_ERR(DM_ENOMEM, "out of memory");
        else {
            dgesvd_("N", "A", &nn, &l, B, &nn, s, NULL, &nn, vt, &ldvt, work, &lw, &info);
            if (info) rc = DM_ERR(DM_ENUM, "dgesvd failed (info %d)", info);
        }
        if (!rc) {
            /* U = Q U_b, U_b = vt^T: U[i, j] = sum_c Q[i, c] vt[j, c] */
            for (int j = 0; j < k; j++) S[j] = s[j];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < k; j++) {
                    double acc = 0;
                    for (int c = 0; c < l; c++) acc += Y[(size_t)c * (size_t)lld + (size_t)i] * vt[(size_t)c * (size_t)ldvt + (size_t)j];
                    U_local[(size_t)i * (size_t)k + (size_t)j] = scale ? acc * s[j] : acc;
                }
        }
        free(s);
        free(vt);
        free(work);
    }
    Cblacs_gridexit(ctxt);
    free(Om);
    free(Y);
    free(B);
    return par_agree(ctx, rc);
}

int la_pca(par_ctx *ctx, const float *X, const uint8_t *present, size_t rows, size_t D, int k, int whiten, double eps,
           int block, float *out, double *eigvals, double *mean)
{
    if ((size_t)k > D) return DM_ERR(DM_ECONFIG, "pca: %d components of %zu-dimensional features", k, D);
    double *acc = calloc(D + 1, sizeof *acc), *cov = calloc(D * D, sizeof *cov), *xc = malloc(D * sizeof *xc);
    int rc = (!acc || !cov || !xc) ? DM_ERR(DM_ENOMEM, "out of memory for a %zu x %zu covariance", D, D) : DM_OK;
    rc = par_agree(ctx, rc);
    if (rc) goto done;
    for (size_t i = 0; i < rows; i++) {
        if (present && !present[i]) continue;
        for (size_t j = 0; j < D; j++) acc[j] += X[i * D + j];
        acc[D] += 1.0;
    }
    rc = par_allreduce_sum_f64(ctx, acc, D + 1);
    if (!rc && acc[D] < 2) rc = DM_ERR(DM_EINPUT, "pca: %.0f rows present, need at least 2", acc[D]);
    if (rc) goto done;
    for (size_t j = 0; j < D; j++) mean[j] = acc[j] / acc[D];
    for (size_t i = 0; i < rows; i++) {
        if (present && !present[i]) continue;
        for (size_t j = 0; j < D; j++) xc[j] = X[i * D + j] - mean[j];
        cblas_dsyr(CblasColMajor, CblasLower, (int)D, 1.0, xc, 1, cov, (int)D);
    }
    rc = par_allreduce_sum_f64(ctx, cov, D * D);
    if (rc) goto done;
    {
        par_grid g;
        rc = par_agree(ctx, grid_init(ctx, &g));
        if (rc) goto done;
        dmat C, Z;
        memset(&Z, 0, sizeof Z);
        int Di = (int)D;
        rc = dmat_init(&g, &C, Di, Di, block, block);
        if (!rc) rc = dmat_init(&g, &Z, Di, Di, block, block);
        rc = par_agree(ctx, rc);
        if (!rc) {
            for (size_t lc = 0; lc < (size_t)C.locc; lc++) {
                size_t gj = dmat_gcol(&C, &g, lc);
                for (size_t lr = 0; lr < (size_t)C.locr; lr++) {
                    size_t gi = dmat_grow(&C, &g, lr);
                    /* lower triangle holds the sums */
                    double v = gi >= gj ? cov[gj * D + gi] : cov[gi * D + gj];
                    C.a[lr + lc * (size_t)C.lld] = v / (acc[D] - 1.0);
                }
            }
            double *w = calloc(D, sizeof *w), wq;
            int one = 1, info = 0, lw = -1, liw = -1, iwq;
            pdsyevd_("V", "L", &Di, C.a, &one, &one, C.desc, w, Z.a, &one, &one, Z.desc, &wq, &lw, &iwq, &liw, &info);
            lw = (int)wq + 1;
            liw = iwq + 1;
            double *work = malloc((size_t)lw * sizeof *work);
            int *iwork = malloc((size_t)liw * sizeof *iwork);
            if (!w || !work || !iwork) rc = DM_ERR(DM_ENOMEM, "out of memory");
            else pdsyevd_("V", "L", &Di, C.a, &one, &one, C.desc, w, Z.a, &one, &one, Z.desc, work, &lw, iwork, &liw, &info);
            int64_t bad = rc ? -1 : info;
            par_allreduce_max_i64(ctx, &bad, 1);
            if (!rc && bad) rc = DM_ERR(DM_ENUM, "pdsyevd failed (info %lld)", (long long)bad);
            /* the top k eigenvectors (eigenvalues ascend), gathered on every rank */
            double *V = calloc(D * (size_t)k + 1, sizeof *V);
            if (!rc && !V) rc = DM_ERR(DM_ENOMEM, "out of memory");
            if (!rc) {
                for (size_t lc = 0; lc < (size_t)Z.locc; lc++) {
                    size_t gj = dmat_gcol(&Z, &g, lc);
                    if (gj < D - (size_t)k) continue;
                    size_t c = D - 1 - gj;
                    for (size_t lr = 0; lr < (size_t)Z.locr; lr++) V[dmat_grow(&Z, &g, lr) * (size_t)k + c] = Z.a[lr + lc * (size_t)Z.lld];
                }
                rc = par_allreduce_sum_f64(ctx, V, D * (size_t)k);
            }
            if (!rc) {
                /* a deterministic sign: the largest-magnitude entry of each component positive */
                for (int c = 0; c < k; c++) {
                    size_t arg = 0;
                    for (size_t j = 1; j < D; j++)
                        if (fabs(V[j * (size_t)k + (size_t)c]) > fabs(V[arg * (size_t)k + (size_t)c])) arg = j;
                    if (V[arg * (size_t)k + (size_t)c] < 0)
                        for (size_t j = 0; j < D; j++) V[j * (size_t)k + (size_t)c] = -V[j * (size_t)k + (size_t)c];
                    eigvals[c] = w[D - 1 - (size_t)c];
                }
                for (size_t i = 0; i < rows; i++) {
                    float *o = out + i * (size_t)k;
                    if (present && !present[i]) {
                        memset(o, 0, (size_t)k * sizeof *o);
                        continue;
                    }
                    for (int c = 0; c < k; c++) {
                        double s = 0;
                        for (size_t j = 0; j < D; j++) s += (X[i * D + j] - mean[j]) * V[j * (size_t)k + (size_t)c];
                        o[c] = (float)(whiten ? s / sqrt(eigvals[c] + eps) : s);
                    }
                }
            }
            free(V);
            free(w);
            free(work);
            free(iwork);
        }
        dmat_free(&C);
        dmat_free(&Z);
        grid_free(&g);
    }
done:
    free(acc);
    free(cov);
    free(xc);
    return par_agree(ctx, rc);
}
