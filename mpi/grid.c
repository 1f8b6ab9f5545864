/* grid.c: BLACS grids, block-cyclic matrices and their HDF5 output, see grid.h. */
#include "grid.h"

#include "../src/core/err.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

int Csys2blacs_handle(MPI_Comm comm);

int grid_init(par_ctx *ctx, par_grid *g)
{
    memset(g, 0, sizeof *g);
    int P = ctx->size, r = (int)sqrt((double)P);
    while (r > 1 && P % r) r--;
    g->nprow = r;
    g->npcol = P / r;
    g->ctxt = Csys2blacs_handle(*(MPI_Comm *)ctx->comm);
    Cblacs_gridinit(&g->ctxt, "Row", g->nprow, g->npcol);
    int a, b;
    Cblacs_gridinfo(g->ctxt, &a, &b, &g->myrow, &g->mycol);
    if (a != g->nprow || b != g->npcol || g->myrow < 0)
        return DM_ERR(DM_EMPI, "BLACS grid %dx%d could not be created (got %dx%d)", g->nprow, g->npcol, a, b);
    return DM_OK;
}

void grid_free(par_grid *g)
{
    if (g->nprow > 0) Cblacs_gridexit(g->ctxt);
    memset(g, 0, sizeof *g);
}

int grid_owner(const par_grid *g, const dmat *A, size_t i, size_t j)
{
    return Cblacs_pnum(g->ctxt, (int)(i / (size_t)A->mb % (size_t)g->nprow), (int)(j / (size_t)A->nb % (size_t)g->npcol));
}

int dmat_init(const par_grid *g, dmat *A, int m, int n, int mb, int nb)
{
    memset(A, 0, sizeof *A);
    A->m = m;
    A->n = n;
    A->mb = mb;
    A->nb = nb;
    int zero = 0, info = 0;
    A->locr = numroc_(&m, &mb, &g->myrow, &zero, &g->nprow);
    A->locc = numroc_(&n, &nb, &g->mycol, &zero, &g->npcol);
    A->lld = A->locr > 1 ? A->locr : 1;
    descinit_(A->desc, &m, &n, &mb, &nb, &zero, &zero, &g->ctxt, &A->lld, &info);
    if (info) return DM_ERR(DM_EMPI, "descinit failed (info %d) for a %dx%d matrix", info, m, n);
    DM_ALLOC(A->a, (size_t)A->lld * (size_t)(A->locc > 0 ? A->locc : 1));
    return DM_OK;
}

void dmat_free(dmat *A)
{
    free(A->a);
    memset(A, 0, sizeof *A);
}

/* The owned blocks of one dimension as (start, stride, count, block) patterns: the full blocks,
 * and the partial last block if this process owns it. Returns the number of patterns. */
static size_t dim_patterns(int n, int b, int p, int np, h5_blocks out[2])
{
    int nblocks_full = n / b;
    size_t k = 0;
    /* full blocks p, p + np, ... below nblocks_full */
    int nf = nblocks_full > p ? (nblocks_full - p + np - 1) / np : 0;
    if (nf > 0) out[k++] = (h5_blocks){(size_t)p * (size_t)b, (size_t)np * (size_t)b, (size_t)nf, (size_t)b};
    if (n % b && nblocks_full % np == p) out[k++] = (h5_blocks){(size_t)nblocks_full * (size_t)b, 1, 1, (size_t)(n % b)};
    return k;
}

static size_t patterns_len(const h5_blocks *b, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += b[i].count * b[i].block;
    return k;
}

int dmat_write_h5(h5file *f, const char *name, const par_grid *g, const dmat *A)
{
    /* row-major local copy in float */
    size_t lr = (size_t)(A->locr > 0 ? A->locr : 0), lc = (size_t)(A->locc > 0 ? A->locc : 0);
    float *buf;
    DM_ALLOC(buf, lr * lc + 1);
    for (size_t i = 0; i < lr; i++)
        for (size_t j = 0; j < lc; j++) buf[i * lc + j] = (float)A->a[i + j * (size_t)A->lld];
    h5_blocks rs[2], cs[2];
    size_t nr = dim_patterns(A->m, A->mb, g->myrow, g->nprow, rs);
    size_t nc = dim_patterns(A->n, A->nb, g->mycol, g->npcol, cs);
    DM_ASSERT(patterns_len(rs, nr) == lr && patterns_len(cs, nc) == lc); /* the blocks numroc counted */
    size_t chunk[2] = {(size_t)A->mb, (size_t)(A->n < 4096 ? A->n : 4096)};
    if (chunk[0] > (size_t)A->m) chunk[0] = (size_t)A->m;
    int rc = h5_write_blocks_f32(f, name, (size_t)A->m, (size_t)A->n, chunk, rs, nr, cs, nc, buf);
    free(buf);
    return rc;
}
