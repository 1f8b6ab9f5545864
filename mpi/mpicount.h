/* mpicount.h: counting MPI traffic per stage through the MPI profiling interface (PMPI).
 *
 * mpicount.c defines the MPI functions dynmm and the libraries it links (parallel HDF5, ScaLAPACK's
 * BLACS) call - collectives, point-to-point and MPI-IO - as wrappers around their PMPI_ entry points.
 * With DM_MPI_COUNT=<file.csv> in the environment (read in MPI_Init/MPI_Init_thread) every wrapper
 * adds, under the current stage label, one call, its bytes and the wall and process CPU seconds
 * spent inside it; MPI_Finalize gathers every rank's rows to rank 0, which writes the CSV (through a
 * temporary name, renamed when complete). Without the variable a wrapper is one predictable branch
 * and the PMPI call.
 *
 * What is counted: calls that reach an MPI_ symbol, from dynmm itself and from the shared libraries
 * linked with it (the executable's definitions interpose theirs): HDF5's metadata collectives
 * (MPI_Bcast, MPI_Allreduce, MPI_Allgather, ...) and its MPI-IO calls, BLACS's sends and receives.
 * A call made while another counted call is running (an MPI library that calls MPI_ symbols from its
 * own MPI-IO) is part of the outer call's time and is not counted again. Open MPI's collective
 * algorithms and OMPIO/ROMIO's internal exchanges reach each other through internal tables, not MPI_
 * symbols: the point-to-point messages a collective is built from are not seen, only the collective.
 *
 * Bytes of a call (per rank, what the standard cost formulas call n):
 *   Allreduce, Reduce, Bcast, Exscan, Scan          count x type size (the vector)
 *   Allgather(v), Gather(v)                         this rank's contribution (send count x size)
 *   Scatterv                                        this rank's part (receive count x size)
 *   Alltoall                                        everything this rank sends (p x send count x size)
 *   Send, Rsend, Isend, Sendrecv (send part)        the message; Recv, Irecv: the posted buffer
 *   Waitall, Testall, Barrier, File_open/close/...  0 (time only)
 *   File_{read,write}_at[_all]                      the bytes requested by this rank
 *
 * The CSV has one row per (rank, stage, op) with calls > 0:
 *   ranks,rank,stage,op,kind,calls,bytes,max_bytes,seconds,cpu_seconds
 * kind is coll, p2p or io; one row per (rank, stage) of kind "stage" (op "wall") gives the stage's
 * wall and process CPU seconds on that rank. Calls outside any stage have stage "other".
 */
#ifndef DM_MPICOUNT_H
#define DM_MPICOUNT_H

#include <stdint.h>

/* Sets the label the following calls are counted under (the stage runner calls it around a stage
 * body); NULL returns to "other". Labels are interned (at most MPICOUNT_MAX_STAGES, then "other");
 * `name` must stay valid until MPI_Finalize (stage names are string literals). */
void mpicount_stage(const char *name);
/* 1 when counting is on (DM_MPI_COUNT was set at MPI_Init). */
int mpicount_enabled(void);

#define MPICOUNT_MAX_STAGES 32

/* One cell of the table, for tests: this rank's totals for (stage, op name) so far; zeros when the
 * pair was never counted. */
typedef struct {
    uint64_t calls, bytes, max_bytes;
    double seconds, cpu_seconds;
} mpicount_cell;
mpicount_cell mpicount_get(const char *stage, const char *op);
/* Clears every counter (labels stay). */
void mpicount_reset(void);

/* For MPI functions defined elsewhere (mpi/h5io.c defines the MPI-IO calls HDF5 makes):
 *     mpicount_t0 t; int on = mpicount_enter(&t); ... PMPI_x(...) ...; if (on) mpicount_leave(&t, MC_x, bytes);
 * mpicount_enter() returns 0 (and costs a branch) when counting is off or another counted call is
 * running; calls made between enter and leave are part of this one. */
enum {
    MC_ALLREDUCE, MC_REDUCE, MC_BCAST, MC_BARRIER, MC_EXSCAN, MC_SCAN, MC_ALLTOALL, MC_ALLGATHER, MC_ALLGATHERV,
    MC_GATHER, MC_GATHERV, MC_SCATTERV, MC_COMM_DUP, MC_COMM_SPLIT,
    MC_SEND, MC_RSEND, MC_RECV, MC_ISEND, MC_IRECV, MC_SENDRECV, MC_WAIT, MC_WAITALL, MC_TESTALL, MC_MPROBE, MC_IMRECV,
    MC_FILE_OPEN, MC_FILE_CLOSE, MC_FILE_WRITE_AT_ALL, MC_FILE_WRITE_AT, MC_FILE_READ_AT_ALL, MC_FILE_READ_AT,
    MC_FILE_SET_SIZE, MC_FILE_SYNC, MC_FILE_SET_VIEW, MC_FILE_GET_SIZE,
    MC_NOPS
};
typedef struct {
    double wall, cpu;
} mpicount_t0;
extern int mpicount_on_; /* read through mpicount_enter() */
int mpicount_enter_(mpicount_t0 *t);
static inline int mpicount_enter(mpicount_t0 *t) { return mpicount_on_ ? mpicount_enter_(t) : 0; }
void mpicount_leave(const mpicount_t0 *t, int op, uint64_t bytes);

#endif
