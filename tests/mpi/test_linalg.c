/* test_linalg.c: the ScaLAPACK randomised SVD (pdgeqrf/pdorgqr range finder) and PCA (pdsyevd)
 * against NumPy at 1, 2 and 3 ranks (references from tests/reference/gen_linalg.py). */
#include "../../mpi/linalg.h"
#include "../../mpi/par.h"
#include "../../src/core/err.h"
#include "../unit/tap.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *load(const char *name, size_t bytes)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/linalg/%s", getenv("DM_REF_DIR"), name);
    FILE *f = fopen(p, "rb");
    if (!f) {
        printf("FAIL: cannot open %s (did gen_linalg.py run?)\n", p);
        exit(1);
    }
    void *b = malloc(bytes + 8);
    size_t got = fread(b, 1, bytes, f);
    fclose(f);
    if (got != bytes) {
        printf("FAIL: %s has %zu bytes, expected %zu\n", p, got, bytes);
        exit(1);
    }
    return b;
}

int main(int argc, char **argv)
{
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    char dp[1024];
    snprintf(dp, sizeof dp, "%s/linalg/dims.txt", getenv("DM_REF_DIR"));
    FILE *f = fopen(dp, "r");
    size_t m, n, k, N, D, K, nnz;
    if (!f || fscanf(f, "%zu %zu %zu %zu %zu %zu %zu", &m, &n, &k, &N, &D, &K, &nnz) != 7) {
        printf("FAIL: %s missing\n", dp);
        return 1;
    }
    fclose(f);
    int64_t *ro = load("rsvd_rowoff.bin", (m + 1) * 8);
    int32_t *col = load("rsvd_col.bin", nnz * 4);
    double *val = load("rsvd_val.bin", nnz * 8), *sref = load("rsvd_s.bin", k * 8), *uref = load("rsvd_u.bin", m * k * 8);
    size_t lo, hi;
    la_row_block(&ctx, m, &lo, &hi);
    dm_csr A = {0};
    A.n_rows = hi - lo;
    A.n_cols = n;
    A.row_off = malloc((A.n_rows + 1) * 8);
    for (size_t i = 0; i <= A.n_rows; i++) A.row_off[i] = ro[lo + i] - ro[lo];
    A.col = col + ro[lo];
    A.val = val + ro[lo];
    double *U = calloc((A.n_rows + 1) * k, sizeof *U), S[64];
    int rc = la_rsvd(&ctx, &A, m, (int)k, 10, 3, 7, 0, U, S);
    CHECK(rc == DM_OK, "la_rsvd: %s", dm_error_message());
    double es = 0, eu = 0;
    for (size_t j = 0; j < k; j++) es = fmax(es, fabs(S[j] - sref[j]) / sref[j]);
    /* columns up to sign: the sign of the dot product with the reference, summed over ranks */
    double dots[64] = {0};
    for (size_t i = lo; i < hi; i++)
        for (size_t j = 0; j < k; j++) dots[j] += U[(i - lo) * k + j] * uref[i * k + j];
    MPI_Allreduce(MPI_IN_PLACE, dots, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (size_t i = lo; i < hi; i++)
        for (size_t j = 0; j < k; j++) eu = fmax(eu, fabs((dots[j] < 0 ? -1 : 1) * U[(i - lo) * k + j] - uref[i * k + j]));
    MPI_Allreduce(MPI_IN_PLACE, &eu, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (ctx.rank == 0) printf("rsvd at %d ranks: max relative singular value error %.3g, max |U - U_numpy| %.3g\n", ctx.size, es, eu);
    CHECK(es < 1e-9, "singular values: %.3g", es);
    CHECK(eu < 1e-7, "left singular vectors: %.3g", eu);

    float *X = load("pca_x.bin", N * D * 4);
    uint8_t *pres = load("pca_present.bin", N);
    double *wref = load("pca_w.bin", K * 8), *pref = load("pca_proj.bin", N * K * 8);
    size_t plo, phi;
    la_row_block(&ctx, N, &plo, &phi);
    float *out = calloc((phi - plo + 1) * K, sizeof *out);
    double w[64], mean[256];
    rc = la_pca(&ctx, X + plo * D, pres + plo, phi - plo, D, (int)K, 1, 1e-6, 8, out, w, mean);
    CHECK(rc == DM_OK, "la_pca: %s", dm_error_message());
    double ew = 0, ep = 0;
    for (size_t j = 0; j < K; j++) ew = fmax(ew, fabs(w[j] - wref[j]) / wref[j]);
    for (size_t i = plo; i < phi; i++)
        for (size_t j = 0; j < K; j++) ep = fmax(ep, fabs(out[(i - plo) * K + j] - pref[i * K + j]));
    MPI_Allreduce(MPI_IN_PLACE, &ep, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (ctx.rank == 0) printf("pca at %d ranks: max relative eigenvalue error %.3g, max projection error %.3g\n", ctx.size, ew, ep);
    CHECK(ew < 1e-10, "eigenvalues: %.3g", ew);
    CHECK(ep < 1e-4, "whitened projections (float32): %.3g", ep);
    int failed = tap_fail_count;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int ret = ctx.rank == 0 ? tap_done("test_linalg") : 0;
    par_finalize(&ctx);
    return failed ? 1 : ret;
}
