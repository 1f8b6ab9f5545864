/* par.h: the MPI layer. Every MPI call of dynmm goes through here or through h5io.h/grid.h.
 *
 * par_ctx holds the world communicator, this rank and the node-local layout. Errors are agreed
 * collectively (HPL's habit): a stage runs a local phase, then calls par_agree(ctx, rc) before the
 * next collective operation. If any rank failed, every rank receives the message of the lowest
 * failing rank, returns its code, and unwinds; rank 0 prints the message once and all ranks exit
 * non-zero together, so no rank is left waiting in a collective.
 *
 * Runs with mpirun, srun, or as a single process without any launcher (singleton MPI_Init).
 * Collective wrappers take byte/element counts as size_t and split them when they exceed INT_MAX.
 */
#ifndef DM_PAR_H
#define DM_PAR_H

#include "../src/core/timer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct par_ctx {
    int rank, size;
    int local_rank, local_size; /* ranks on this node */
    void *comm;                 /* MPI_Comm* of the world */
    void *node_comm;            /* MPI_Comm* of this node */
    int threads;                /* OpenMP/BLAS threads per rank */
    double t_start;
    dm_timers timers;
} par_ctx;

/* Under Open MPI, par_init() makes MPI-IO prefer ROMIO to OMPIO (by component priority; the
 * environment's OMPI_MCA_io still chooses): Open MPI 4.1's OMPIO takes a short write on a full disk
 * for a complete one, so an HDF5 file with holes would be committed as finished. */
int par_init(int *argc, char ***argv, par_ctx *ctx);
void par_finalize(par_ctx *ctx);
/* Hard stop of every rank (last resort; prefer par_agree and a clean return). */
_Noreturn void par_abort(par_ctx *ctx, int code);

/* Collective: returns DM_OK on every rank if rc == DM_OK on every rank; otherwise every rank gets
 * the lowest failing rank's error (message, hint, trace) and its code. */
int par_agree(par_ctx *ctx, int rc);
/* Sets OpenMP and BLAS threads: `requested` per rank, or (0) the node's cores / local ranks. */
void par_set_threads(par_ctx *ctx, int requested);

int par_barrier(par_ctx *ctx);
int par_bcast(par_ctx *ctx, void *buf, size_t bytes, int root);
/* Broadcasts a NUL-terminated string owned by root; others receive a malloc'd copy in *s. */
int par_bcast_str(par_ctx *ctx, char **s, int root);
int par_allreduce_sum_f32(par_ctx *ctx, float *buf, size_t n);
int par_allreduce_sum_f64(par_ctx *ctx, double *buf, size_t n);
int par_allreduce_sum_i64(par_ctx *ctx, int64_t *buf, size_t n);
int par_allreduce_max_i64(par_ctx *ctx, int64_t *buf, size_t n);
int par_allreduce_min_i64(par_ctx *ctx, int64_t *buf, size_t n);
int par_allreduce_max_f64(par_ctx *ctx, double *buf, size_t n);
/* Exclusive prefix sum of one value over ranks (rank 0 gets 0) and the total. */
int par_exscan_i64(par_ctx *ctx, int64_t v, int64_t *before, int64_t *total);
/* Gathers every rank's bytes on every rank: *out (malloc'd, concatenated in rank order) and
 * counts[r] (malloc'd, ctx->size entries). */
int par_allgatherv(par_ctx *ctx, const void *send, size_t bytes, void **out, size_t **counts);
/* Like par_allgatherv but only root receives (others get *out = NULL). */
int par_gatherv(par_ctx *ctx, const void *send, size_t bytes, int root, void **out, size_t **counts);
/* Personalised exchange: send_counts[r] bytes to rank r from `send` (packed in rank order). */
int par_alltoallv(par_ctx *ctx, const void *send, const size_t *send_counts, void **out,
                  size_t **recv_counts);

/* Timer report across ranks: count, total, % of wall, min/max with rank ids (rank 0 prints). */
void par_timer_report(par_ctx *ctx, const char *title);
/* Peak RSS: max over ranks (with its rank) and sum, in bytes. */
void par_peak_rss(par_ctx *ctx, size_t *max_bytes, int *max_rank, size_t *sum_bytes);

/* Logs "peak memory X MiB on rank r (Y MiB over all ranks)" on rank 0. Collective. */
void par_log_peak(par_ctx *ctx);

/* Strings describing the environment, for provenance. */
const char *par_mpi_library(void);

#endif
