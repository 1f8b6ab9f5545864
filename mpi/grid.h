/* grid.h: BLACS process grids and block-cyclic distributed matrices for ScaLAPACK.
 *
 * par_grid wraps a BLACS context over all ranks of the world communicator, as close to square as the
 * rank count allows (nprow <= npcol, nprow * npcol = size). dmat is a double-precision matrix in
 * ScaLAPACK's 2-D block-cyclic layout: global entry (i, j) lives on grid process
 * (i / mb % nprow, j / nb % npcol) at local position (i / (mb nprow) * mb + i % mb,
 * j / (nb npcol) * nb + j % nb), stored column-major with leading dimension lld. The helpers convert
 * indices both ways and write a distributed matrix to HDF5 collectively, each rank selecting its
 * blocks with strided hyperslabs.
 */
#ifndef DM_GRID_H
#define DM_GRID_H

#include "h5io.h"
#include "par.h"

#include <stddef.h>

typedef struct {
    int ctxt;
    int nprow, npcol, myrow, mycol;
} par_grid;

typedef struct {
    int desc[9];
    int m, n, mb, nb;
    int locr, locc, lld;
    double *a; /* (lld, locc) column-major */
} dmat;

int grid_init(par_ctx *ctx, par_grid *g);
void grid_free(par_grid *g);
/* Grid process (rank in the world communicator) owning global entry (i, j). */
int grid_owner(const par_grid *g, const dmat *A, size_t i, size_t j);

int dmat_init(const par_grid *g, dmat *A, int m, int n, int mb, int nb);
void dmat_free(dmat *A);
/* local index of global row i / column j (valid on the owning process row / column) */
static inline size_t dmat_lrow(const dmat *A, const par_grid *g, size_t i)
{
    return i / ((size_t)A->mb * (size_t)g->nprow) * (size_t)A->mb + i % (size_t)A->mb;
}
static inline size_t dmat_lcol(const dmat *A, const par_grid *g, size_t j)
{
    return j / ((size_t)A->nb * (size_t)g->npcol) * (size_t)A->nb + j % (size_t)A->nb;
}
/* global row of local row l / global column of local column l */
static inline size_t dmat_grow(const dmat *A, const par_grid *g, size_t l)
{
    return (l / (size_t)A->mb * (size_t)g->nprow + (size_t)g->myrow) * (size_t)A->mb + l % (size_t)A->mb;
}
static inline size_t dmat_gcol(const dmat *A, const par_grid *g, size_t l)
{
    return (l / (size_t)A->nb * (size_t)g->npcol + (size_t)g->mycol) * (size_t)A->nb + l % (size_t)A->nb;
}

/* Collective write of A (converted to float32) as a row-major (m, n) dataset. */
int dmat_write_h5(h5file *f, const char *name, const par_grid *g, const dmat *A);

/* ScaLAPACK / BLACS (Fortran and C interfaces of libscalapack-openmpi). */
void Cblacs_get(int ctxt, int what, int *val);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);
int Cblacs_pnum(int ctxt, int prow, int pcol);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);
void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia, const int *ja, const int *desca, int *info);
void pdpotri_(const char *uplo, const int *n, double *a, const int *ia, const int *ja, const int *desca, int *info);
void pdtran_(const int *m, const int *n, const double *alpha, const double *a, const int *ia, const int *ja,
             const int *desca, const double *beta, double *c, const int *ic, const int *jc, const int *descc);
void pdgeqrf_(const int *m, const int *n, double *a, const int *ia, const int *ja, const int *desca, double *tau,
              double *work, const int *lwork, int *info);
void pdorgqr_(const int *m, const int *n, const int *k, double *a, const int *ia, const int *ja, const int *desca,
              const double *tau, double *work, const int *lwork, int *info);
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, double *w, double *z, const int *iz, const int *jz, const int *descz, double *work,
              const int *lwork, int *iwork, const int *liwork, int *info);
void pdgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);

#endif
