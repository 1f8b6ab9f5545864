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

/* the sorted distinct training items of user u into items; returns their count */
static size_t train_items(const dm_dataset *d, const int8_t *split, size_t u, int32_t *items)
{
    size_t m = 0;
    for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++)
        if (split[k] == DM_TRAIN) items[m++] = d->item[k];
    qsort(items, m, sizeof *items, dm_cmp_i32);
    size_t q = 0;
    for (size_t k = 0; k < m; k++)
        if (!q || items[k] != items[q - 1]) items[q++] = items[k];
    return q;
}

/* the item pairs (i >= j) of users [ulo, uhi) by owner of G(i, j): counted into cnt (buf NULL),
   or packed into buf at fill[owner] */
static void route_pairs(const dm_dataset *d, const int8_t *split, size_t ulo, size_t uhi, const par_grid *g,
                        const dmat *A, int32_t *items, size_t *cnt, size_t *fill, int32_t *buf)
{
    for (size_t u = ulo; u < uhi; u++) {
        size_t q = train_items(d, split, u, items);
        for (size_t a = 0; a < q; a++)
            for (size_t b = 0; b <= a; b++) {
                int o = grid_owner(g, A, (size_t)items[a], (size_t)items[b]);
                if (!buf) cnt[o]++;
                else {
                    buf[2 * fill[o]] = items[a];
                    buf[2 * fill[o] + 1] = items[b];
                    fill[o]++;
                }
            }
    }
}

/* step 1: the Gram matrix G = X^T X (lower triangle) into A: each rank sends the item pairs of its
   users' histories to the owners of G(i, j), which add them up. Collective. */
static int gram_exchange(par_ctx *ctx, const dm_dataset *d, const int8_t *split, size_t ulo, size_t uhi,
                         const par_grid *g, dmat *A)
{
    int P = ctx->size;
    size_t *cnt = calloc((size_t)P + 1, sizeof *cnt), *fill = NULL, *bytes = NULL;
    int32_t *items = malloc(((size_t)d->n_items + 1) * sizeof *items), *buf = NULL;
    int rc = (!cnt || !items) ? DM_ERR(DM_ENOMEM, "out of memory") : DM_OK;
    if (!rc) { /* count the pairs per owner, then pack them */
        route_pairs(d, split, ulo, uhi, g, A, items, cnt, NULL, NULL);
        size_t tot = 0;
        for (int r = 0; r < P; r++) tot += cnt[r];
        buf = malloc(2 * tot * sizeof *buf + 8);
        fill = calloc((size_t)P + 1, sizeof *fill);
        bytes = malloc((size_t)P * sizeof *bytes);
        if (!buf || !fill || !bytes) rc = DM_ERR(DM_ENOMEM, "cannot allocate %zu item pairs", tot);
    }
    if (!rc) {
        for (int r = 1; r <= P; r++) fill[r] = fill[r - 1] + cnt[r - 1];
        route_pairs(d, split, ulo, uhi, g, A, items, cnt, fill, buf);
        for (int r = 0; r < P; r++) bytes[r] = cnt[r] * 2 * sizeof(int32_t);
    }
    void *in = NULL;
    size_t *rcnt = NULL;
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_alltoallv(ctx, buf, bytes, &in, &rcnt);
    if (!rc) {
        size_t tot = 0;
        for (int r = 0; r < P; r++) tot += rcnt[r] / (2 * sizeof(int32_t));
        const int32_t *pr = in;
        for (size_t k = 0; k < tot; k++) {
            size_t i = (size_t)pr[2 * k], j = (size_t)pr[2 * k + 1];
            A->a[dmat_lrow(A, g, i) + dmat_lcol(A, g, j) * (size_t)A->lld] += 1.0;
        }
        dm_log_v(2, "  ease: %zu Gram entries on rank 0", tot);
    }
    free(in);
    free(rcnt);
    free(bytes);
    free(buf);
    free(fill);
    free(cnt);
    free(items);
    return rc;
}

/* step 2: P = (G + lambda I)^{-1} by Cholesky (pdpotrf + pdpotri) on the lower triangle of A; the
   upper triangle cleared, and its transpose in C. Collective. */
static int invert_gram(par_ctx *ctx, const par_grid *g, dmat *A, dmat *C, int n, double lambda)
{
    for (size_t lc = 0; lc < (size_t)A->locc; lc++) {
        size_t gj = dmat_gcol(A, g, lc);
        for (size_t lr = 0; lr < (size_t)A->locr; lr++)
            if (dmat_grow(A, g, lr) == gj) A->a[lr + lc * (size_t)A->lld] += lambda;
    }
    int one = 1, info = 0;
    pdpotrf_("L", &n, A->a, &one, &one, A->desc, &info);
    int64_t bad = info;
    par_allreduce_max_i64(ctx, &bad, 1);
    if (bad) {
        int rc = DM_ERR(DM_ENUM, "ease: the regularised Gram matrix is not positive definite (pdpotrf info %lld)",
                        (long long)bad);
        DM_HINT("increase ease.lambda");
        return rc;
    }
    pdpotri_("L", &n, A->a, &one, &one, A->desc, &info);
    bad = info;
    par_allreduce_max_i64(ctx, &bad, 1);
    if (bad) return DM_ERR(DM_ENUM, "ease: pdpotri failed (info %lld)", (long long)bad);
    for (size_t lc = 0; lc < (size_t)A->locc; lc++) {
        size_t gj = dmat_gcol(A, g, lc);
        for (size_t lr = 0; lr < (size_t)A->locr; lr++)
            if (dmat_grow(A, g, lr) < gj) A->a[lr + lc * (size_t)A->lld] = 0.0;
    }
    double alpha = 1.0, beta = 0.0;
    pdtran_(&n, &n, &alpha, A->a, &one, &one, A->desc, &beta, C->a, &one, &one, C->desc);
    return DM_OK;
}

/* step 3: the full symmetric P = lower + transpose, then B = -P_ij / P_jj off the diagonal and 0
   on it, in place in A. Collective. */
static int weights_from_inverse(par_ctx *ctx, const par_grid *g, dmat *A, const dmat *C, int n)
{
    double *diag = calloc((size_t)n + 1, sizeof *diag);
    int rc = par_agree(ctx, diag ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
    if (rc) {
        free(diag);
        return rc;
    }
    for (size_t lc = 0; lc < (size_t)A->locc; lc++) {
        size_t gj = dmat_gcol(A, g, lc);
        for (size_t lr = 0; lr < (size_t)A->locr; lr++) {
            size_t gi = dmat_grow(A, g, lr), o = lr + lc * (size_t)A->lld;
            if (gi == gj) diag[gi] = A->a[o];
            else A->a[o] += C->a[o];
        }
    }
    rc = par_allreduce_sum_f64(ctx, diag, (size_t)n);
    for (size_t lc = 0; !rc && lc < (size_t)A->locc; lc++) {
        size_t gj = dmat_gcol(A, g, lc);
        for (size_t lr = 0; lr < (size_t)A->locr; lr++) {
            size_t gi = dmat_grow(A, g, lr), o = lr + lc * (size_t)A->lld;
            A->a[o] = gi == gj ? 0.0 : -A->a[o] / diag[gj];
        }
    }
    free(diag);
    return rc;
}

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
    if (!rc) rc = par_agree(ctx, gram_exchange(ctx, d, split, ulo, uhi, &g, &A));
    if (!rc) rc = invert_gram(ctx, &g, &A, &C, n, lambda);
    if (!rc) rc = par_agree(ctx, weights_from_inverse(ctx, &g, &A, &C, n));
    dmat_free(&C);
    if (!rc) rc = dmat_write_h5(f, "/ease/B", &g, &A);
    if (!rc) rc = h5_attr_f64(f, "/ease", "lambda", lambda);
    if (!rc) rc = h5_attr_f64(f, "/ease", "fit_seconds", dm_wtime() - t0);
    if (!rc) dm_log("  ease: %d items, lambda %g, %dx%d BLACS grid, %.1fs", n, lambda, g.nprow, g.npcol, dm_wtime() - t0);
    dmat_free(&A);
    dmat_free(&C);
    grid_free(&g);
    return par_agree(ctx, rc);
}
