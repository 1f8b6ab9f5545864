/* ease.c: EASE on a BLACS grid, see ease.h. */
#include "ease.h"

#include "../mpi/grid.h"

#include "../src/core/err.h"
#include "../src/core/sort.h"
#include "../src/core/log.h"
#include "../src/core/timer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ease_fit_write(par_ctx *ctx, const dm_dataset *d, const int8_t *split, size_t ulo, size_t uhi, double lambda,
                   int block, h5file *f)
{
    double t0 = dm_wtime();
    int n = (int)d->n_items;
    par_grid g;
    DM_CALL(par_agree(ctx, grid_init(ctx, &g)));
    dmat A, C;
    memset(&C, 0, sizeof C);
    int rc = dmat_init(&g, &A, n, n, block, block);
    if (!rc) rc = dmat_init(&g, &C, n, n, block, block);
    rc = par_agree(ctx, rc);
    if (rc) goto done;
    {
        /* 1. item pairs (i >= j) of every local history, sent to the owner of G(i, j) */
        int P = ctx->size;
        size_t *cnt = calloc((size_t)P + 1, sizeof *cnt);
        int32_t *items = malloc(((size_t)d->n_items + 1) * sizeof *items);
        size_t *fill = NULL;
        int32_t *buf = NULL;
        rc = (!cnt || !items) ? DM_ERR(DM_ENOMEM, "out of memory") : DM_OK;
        /* pass 0 counts the pairs per owner, pass 1 packs them */
        for (int pass = 0; pass < 2 && !rc; pass++) {
            if (pass == 1) {
                size_t tot = 0;
                for (int r = 0; r < P; r++) tot += cnt[r];
                buf = malloc(2 * tot * sizeof *buf + 8);
                fill = calloc((size_t)P + 1, sizeof *fill);
                if (!buf || !fill) {
                    rc = DM_ERR(DM_ENOMEM, "cannot allocate %zu item pairs", tot);
                    break;
                }
                for (int r = 1; r <= P; r++) fill[r] = fill[r - 1] + cnt[r - 1];
            }
            for (size_t u = ulo; u < uhi; u++) {
                size_t m = 0;
                for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++)
                    if (split[k] == DM_TRAIN) items[m++] = d->item[k];
                qsort(items, m, sizeof *items, dm_cmp_i32);
                size_t q = 0;
                for (size_t k = 0; k < m; k++)
                    if (!q || items[k] != items[q - 1]) items[q++] = items[k];
                for (size_t a = 0; a < q; a++)
                    for (size_t b = 0; b <= a; b++) {
                        int o = grid_owner(&g, &A, (size_t)items[a], (size_t)items[b]);
                        if (pass == 0) cnt[o]++;
                        else {
                            buf[2 * fill[o]] = items[a];
                            buf[2 * fill[o] + 1] = items[b];
                            fill[o]++;
                        }
                    }
            }
            if (pass == 1) {
                size_t *bytes = malloc((size_t)P * sizeof *bytes);
                for (int r = 0; r < P; r++) bytes[r] = cnt[r] * 2 * sizeof(int32_t);
                void *in = NULL;
                size_t *rcnt = NULL;
                rc = par_agree(ctx, rc);
                if (!rc) rc = par_alltoallv(ctx, buf, bytes, &in, &rcnt);
                free(bytes);
                free(buf);
                free(fill);
                buf = NULL;
                fill = NULL;
                if (!rc) {
                    size_t tot = 0;
                    for (int r = 0; r < P; r++) tot += rcnt[r] / (2 * sizeof(int32_t));
                    const int32_t *pr = in;
                    for (size_t k = 0; k < tot; k++) {
                        size_t i = (size_t)pr[2 * k], j = (size_t)pr[2 * k + 1];
                        A.a[dmat_lrow(&A, &g, i) + dmat_lcol(&A, &g, j) * (size_t)A.lld] += 1.0;
                    }
                    dm_log_v(2, "  ease: %zu Gram entries on rank 0", tot);
                }
                free(in);
                free(rcnt);
            }
        }
        free(cnt);
        free(items);
    }
    rc = par_agree(ctx, rc);
    if (rc) goto done;
    /* 2. G += lambda I; Cholesky and inverse of the lower triangle */
    for (size_t lc = 0; lc < (size_t)A.locc; lc++) {
        size_t gj = dmat_gcol(&A, &g, lc);
        for (size_t lr = 0; lr < (size_t)A.locr; lr++)
            if (dmat_grow(&A, &g, lr) == gj) A.a[lr + lc * (size_t)A.lld] += lambda;
    }
    {
        int one = 1, info = 0;
        pdpotrf_("L", &n, A.a, &one, &one, A.desc, &info);
        int64_t bad = info;
        par_allreduce_max_i64(ctx, &bad, 1);
        if (bad) {
            rc = DM_ERR(DM_ENUM, "ease: the regularised Gram matrix is not positive definite (pdpotrf info %lld)", (long long)bad);
            DM_HINT("increase ease.lambda");
            goto done;
        }
        pdpotri_("L", &n, A.a, &one, &one, A.desc, &info);
        bad = info;
        par_allreduce_max_i64(ctx, &bad, 1);
        if (bad) {
            rc = DM_ERR(DM_ENUM, "ease: pdpotri failed (info %lld)", (long long)bad);
            goto done;
        }
        /* 3. P is in the lower triangle: clear the upper, add the transpose */
        for (size_t lc = 0; lc < (size_t)A.locc; lc++) {
            size_t gj = dmat_gcol(&A, &g, lc);
            for (size_t lr = 0; lr < (size_t)A.locr; lr++)
                if (dmat_grow(&A, &g, lr) < gj) A.a[lr + lc * (size_t)A.lld] = 0.0;
        }
        double alpha = 1.0, beta = 0.0;
        pdtran_(&n, &n, &alpha, A.a, &one, &one, A.desc, &beta, C.a, &one, &one, C.desc);
    }
    {
        double *diag = calloc((size_t)n + 1, sizeof *diag);
        if (!diag) {
            rc = DM_ERR(DM_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t lc = 0; lc < (size_t)A.locc; lc++) {
            size_t gj = dmat_gcol(&A, &g, lc);
            for (size_t lr = 0; lr < (size_t)A.locr; lr++) {
                size_t gi = dmat_grow(&A, &g, lr), o = lr + lc * (size_t)A.lld;
                if (gi == gj) diag[gi] = A.a[o];
                else A.a[o] += C.a[o];
            }
        }
        rc = par_allreduce_sum_f64(ctx, diag, (size_t)n);
        /* 4. B = -P_ij / P_jj off the diagonal, 0 on it */
        for (size_t lc = 0; !rc && lc < (size_t)A.locc; lc++) {
            size_t gj = dmat_gcol(&A, &g, lc);
            for (size_t lr = 0; lr < (size_t)A.locr; lr++) {
                size_t gi = dmat_grow(&A, &g, lr), o = lr + lc * (size_t)A.lld;
                A.a[o] = gi == gj ? 0.0 : -A.a[o] / diag[gj];
            }
        }
        free(diag);
    }
    dmat_free(&C);
    rc = par_agree(ctx, rc);
    if (!rc) rc = dmat_write_h5(f, "/ease/B", &g, &A);
    if (!rc) rc = h5_attr_f64(f, "/ease", "lambda", lambda);
    if (!rc) rc = h5_attr_f64(f, "/ease", "fit_seconds", dm_wtime() - t0);
    if (!rc) dm_log("  ease: %d items, lambda %g, %dx%d BLACS grid, %.1fs", n, lambda, g.nprow, g.npcol, dm_wtime() - t0);
done:
    dmat_free(&A);
    dmat_free(&C);
    grid_free(&g);
    return par_agree(ctx, rc);
}
