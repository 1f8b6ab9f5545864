/* grid.c: BLACS grids, block-cyclic matrices and their HDF5 output, see grid.h. */
#include "grid.h"

#include "../src/core/err.h"

#include <hdf5.h>
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

/* Adds the owned blocks of one dimension as (start, stride, count, block) patterns: the full
 * blocks, and the partial last block if this process owns it. Returns the number of patterns. */
static int dim_patterns(int n, int b, int p, int np, hsize_t st[2], hsize_t sd[2], hsize_t ct[2], hsize_t bl[2])
{
    int nblocks_full = n / b, k = 0;
    /* full blocks p, p + np, ... below nblocks_full */
    int nf = nblocks_full > p ? (nblocks_full - p + np - 1) / np : 0;
    if (nf > 0) {
        st[k] = (hsize_t)p * (hsize_t)b;
        sd[k] = (hsize_t)np * (hsize_t)b;
        ct[k] = (hsize_t)nf;
        bl[k] = (hsize_t)b;
        k++;
    }
    if (n % b && nblocks_full % np == p) {
        st[k] = (hsize_t)nblocks_full * (hsize_t)b;
        sd[k] = 1;
        ct[k] = 1;
        bl[k] = (hsize_t)(n % b);
        k++;
    }
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
    hsize_t dims[2] = {(hsize_t)A->m, (hsize_t)A->n};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[2] = {(hsize_t)A->mb, (hsize_t)(A->n < 4096 ? A->n : 4096)};
    if (chunk[0] > dims[0]) chunk[0] = dims[0];
    H5Pset_chunk(dcpl, 2, chunk);
    if (f->compress > 0) H5Pset_deflate(dcpl, (unsigned)f->compress);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t d = H5Dcreate2((hid_t)f->id, name, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    int rc = DM_OK;
    if (d < 0) rc = DM_ERR(DM_EHDF5, "hdf5: cannot create dataset '%s'", name);
    hsize_t rs[2], rsd[2], rct[2], rbl[2], cs[2], csd[2], cct[2], cbl[2];
    int nr = dim_patterns(A->m, A->mb, g->myrow, g->nprow, rs, rsd, rct, rbl);
    int nc = dim_patterns(A->n, A->nb, g->mycol, g->npcol, cs, csd, cct, cbl);
    hid_t mspace;
    if (lr * lc > 0 && nr > 0 && nc > 0) {
        int first = 1;
        for (int a = 0; a < nr; a++)
            for (int b = 0; b < nc; b++) {
                hsize_t st[2] = {rs[a], cs[b]}, sd[2] = {rsd[a], csd[b]}, ct[2] = {rct[a], cct[b]}, bl[2] = {rbl[a], cbl[b]};
                H5Sselect_hyperslab(space, first ? H5S_SELECT_SET : H5S_SELECT_OR, st, sd, ct, bl);
                first = 0;
            }
        hsize_t md[2] = {lr, lc};
        mspace = H5Screate_simple(2, md, NULL);
        if ((hsize_t)H5Sget_select_npoints(space) != (hsize_t)(lr * lc))
            rc = DM_ERR(DM_EINTERNAL, "block-cyclic selection has %lld points, expected %zu",
                        (long long)H5Sget_select_npoints(space), lr * lc);
    } else {
        H5Sselect_none(space);
        hsize_t one[2] = {1, 1};
        mspace = H5Screate_simple(2, one, NULL);
        H5Sselect_none(mspace);
    }
    if (!rc) {
        hid_t x = H5Pcreate(H5P_DATASET_XFER);
        H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE);
        if (H5Dwrite(d, H5T_NATIVE_FLOAT, mspace, space, x, buf) < 0) rc = DM_ERR(DM_EHDF5, "hdf5: cannot write '%s'", name);
        H5Pclose(x);
    }
    H5Sclose(mspace);
    H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    free(buf);
    return rc;
}
