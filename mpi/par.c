/* par.c: the MPI layer, see par.h. */
#include "par.h"

#include "../src/core/err.h"
#include "../src/core/log.h"

#include <limits.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void openblas_set_num_threads(int); /* from OpenBLAS */

static MPI_Comm g_world = MPI_COMM_NULL;
static MPI_Comm g_node = MPI_COMM_NULL;

#define COMM(ctx) (*(MPI_Comm *)(ctx)->comm)
#define CHUNK ((size_t)1 << 30)

static int mpierr(int e, const char *what, const char *file, int line)
{
    if (e == MPI_SUCCESS) return DM_OK;
    char s[MPI_MAX_ERROR_STRING];
    int l = 0;
    MPI_Error_string(e, s, &l);
    return dm_error_at(file, line, DM_EMPI, "%s failed: %s", what, s);
}
#define MPICALL(x) DM_CALL(mpierr((x), #x, __FILE__, __LINE__))

int par_init(int *argc, char ***argv, par_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    int provided;
    int inited;
    /* Open MPI: ROMIO rather than OMPIO for MPI-IO, by priority, so that OMPIO still serves where
       ROMIO is not built and OMPI_MCA_io still chooses. Open MPI 4.1's OMPIO takes a short write (a
       full disk) for a complete one and reports success, so a file with holes would pass as
       finished; ROMIO retries and reports ENOSPC. Other MPIs ignore these variables. */
    setenv("OMPI_MCA_io_romio321_priority", "100", 0); /* Open MPI 4.x */
    setenv("OMPI_MCA_io_romio341_priority", "100", 0); /* Open MPI 5.x */
    MPI_Initialized(&inited);
    if (!inited && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "dynmm: error: MPI_Init_thread failed\n");
        return DM_EMPI;
    }
    g_world = MPI_COMM_WORLD;
    MPI_Comm_set_errhandler(g_world, MPI_ERRORS_RETURN);
    ctx->comm = &g_world;
    MPI_Comm_rank(g_world, &ctx->rank);
    MPI_Comm_size(g_world, &ctx->size);
    MPI_Comm_split_type(g_world, MPI_COMM_TYPE_SHARED, ctx->rank, MPI_INFO_NULL, &g_node);
    ctx->node_comm = &g_node;
    MPI_Comm_rank(g_node, &ctx->local_rank);
    MPI_Comm_size(g_node, &ctx->local_size);
    ctx->t_start = MPI_Wtime();
    dm_log_init(ctx->rank == 0, 1);
    par_set_threads(ctx, 0);
    return DM_OK;
}

void par_set_threads(par_ctx *ctx, int requested)
{
    int t = requested;
    if (t <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        if (env && atoi(env) > 0) t = atoi(env);
        else {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            t = (int)(cores / (ctx->local_size > 0 ? ctx->local_size : 1));
        }
    }
    if (t < 1) t = 1;
    ctx->threads = t;
    omp_set_num_threads(t);
    /* kernels call BLAS from outside OpenMP regions with all threads, or from inside with one:
       BLAS gets the same count and is never called from within a parallel region */
    openblas_set_num_threads(t);
}

void par_finalize(par_ctx *ctx)
{
    (void)ctx;
    if (g_node != MPI_COMM_NULL) MPI_Comm_free(&g_node);
    int fin;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

void par_abort(par_ctx *ctx, int code)
{
    MPI_Abort(ctx ? COMM(ctx) : MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1);
}

int par_agree(par_ctx *ctx, int rc)
{
    if (ctx->size == 1) return rc;
    int mine = rc != DM_OK ? ctx->rank : INT_MAX;
    int first = INT_MAX;
    int e = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, COMM(ctx));
    if (e != MPI_SUCCESS) {
        /* the communicator itself is broken: nothing collective can be trusted any more */
        fprintf(stderr, "dynmm: error: rank %d: MPI_Allreduce failed while agreeing on errors\n", ctx->rank);
        par_abort(ctx, DM_EMPI);
    }
    if (first == INT_MAX) return DM_OK;
    struct {
        int code;
        char msg[2048], hint[2048], where[1024];
    } m;
    memset(&m, 0, sizeof m);
    if (ctx->rank == first) {
        m.code = rc;
        snprintf(m.msg, sizeof m.msg, "%s", dm_error_message());
        snprintf(m.hint, sizeof m.hint, "%s", dm_error_hint_text());
        if (strncmp(dm_error_where(), "rank ", 5) == 0) snprintf(m.where, sizeof m.where, "%s", dm_error_where());
        else snprintf(m.where, sizeof m.where, "rank %d: %s", ctx->rank, dm_error_where());
    }
    e = MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, COMM(ctx));
    if (e != MPI_SUCCESS) par_abort(ctx, DM_EMPI);
    dm_error_set_raw(m.code, m.msg, m.hint, m.where);
    return m.code ? m.code : DM_EINTERNAL;
}

int par_barrier(par_ctx *ctx)
{
    MPICALL(MPI_Barrier(COMM(ctx)));
    return DM_OK;
}

int par_bcast(par_ctx *ctx, void *buf, size_t bytes, int root)
{
    char *p = buf;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPICALL(MPI_Bcast(p + off, (int)n, MPI_BYTE, root, COMM(ctx)));
    }
    return DM_OK;
}

int par_bcast_str(par_ctx *ctx, char **s, int root)
{
    int64_t n = ctx->rank == root ? (int64_t)strlen(*s) : 0;
    DM_CALL(par_bcast(ctx, &n, sizeof n, root));
    if (ctx->rank != root) {
        DM_ALLOC(*s, (size_t)n + 1);
    }
    DM_CALL(par_bcast(ctx, *s, (size_t)n + 1, root));
    return DM_OK;
}

static int allreduce(par_ctx *ctx, void *buf, size_t n, size_t esize, MPI_Datatype t, MPI_Op op)
{
    if (ctx->size == 1) return DM_OK;
    char *p = buf;
    size_t chunk = CHUNK / esize;
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        MPICALL(MPI_Allreduce(MPI_IN_PLACE, p + off * esize, (int)k, t, op, COMM(ctx)));
    }
    return DM_OK;
}

int par_allreduce_sum_f32(par_ctx *ctx, float *b, size_t n) { return allreduce(ctx, b, n, 4, MPI_FLOAT, MPI_SUM); }
int par_allreduce_sum_f64(par_ctx *ctx, double *b, size_t n) { return allreduce(ctx, b, n, 8, MPI_DOUBLE, MPI_SUM); }
int par_allreduce_sum_i64(par_ctx *ctx, int64_t *b, size_t n) { return allreduce(ctx, b, n, 8, MPI_INT64_T, MPI_SUM); }
int par_allreduce_max_i64(par_ctx *ctx, int64_t *b, size_t n) { return allreduce(ctx, b, n, 8, MPI_INT64_T, MPI_MAX); }
int par_allreduce_min_i64(par_ctx *ctx, int64_t *b, size_t n) { return allreduce(ctx, b, n, 8, MPI_INT64_T, MPI_MIN); }
int par_allreduce_max_f64(par_ctx *ctx, double *b, size_t n) { return allreduce(ctx, b, n, 8, MPI_DOUBLE, MPI_MAX); }

int par_exscan_i64(par_ctx *ctx, int64_t v, int64_t *before, int64_t *total)
{
    int64_t b = 0, t = v;
    if (ctx->size > 1) {
        MPICALL(MPI_Exscan(&v, &b, 1, MPI_INT64_T, MPI_SUM, COMM(ctx)));
        if (ctx->rank == 0) b = 0;
        MPICALL(MPI_Allreduce(&v, &t, 1, MPI_INT64_T, MPI_SUM, COMM(ctx)));
    }
    if (before) *before = b;
    if (total) *total = t;
    return DM_OK;
}

/* Variable-size exchange built from point-to-point messages in CHUNK pieces, so sizes above
 * INT_MAX bytes work. */
int par_alltoallv(par_ctx *ctx, const void *send, const size_t *send_counts, void **out, size_t **recv_counts)
{
    int P = ctx->size;
    size_t *rc;
    DM_ALLOC(rc, P);
    int64_t *sc64, *rc64;
    DM_ALLOC(sc64, P);
    DM_ALLOC(rc64, P);
    for (int r = 0; r < P; r++) sc64[r] = (int64_t)send_counts[r];
    MPICALL(MPI_Alltoall(sc64, 1, MPI_INT64_T, rc64, 1, MPI_INT64_T, COMM(ctx)));
    size_t total = 0;
    for (int r = 0; r < P; r++) {
        rc[r] = (size_t)rc64[r];
        total += rc[r];
    }
    char *buf;
    DM_ALLOC(buf, total + 1);
    size_t *soff, *roff;
    DM_ALLOC(soff, P + 1);
    DM_ALLOC(roff, P + 1);
    for (int r = 0; r < P; r++) {
        soff[r + 1] = soff[r] + send_counts[r];
        roff[r + 1] = roff[r] + rc[r];
    }
    size_t nreq = 0;
    for (int r = 0; r < P; r++) nreq += 2 * ((send_counts[r] + CHUNK - 1) / CHUNK + (rc[r] + CHUNK - 1) / CHUNK);
    MPI_Request *req;
    DM_ALLOC(req, nreq + 1);
    size_t q = 0;
    const char *s = send;
    for (int r = 0; r < P; r++) {
        for (size_t off = 0; off < rc[r]; off += CHUNK) {
            size_t n = rc[r] - off < CHUNK ? rc[r] - off : CHUNK;
            MPICALL(MPI_Irecv(buf + roff[r] + off, (int)n, MPI_BYTE, r, 7, COMM(ctx), &req[q++]));
        }
        for (size_t off = 0; off < send_counts[r]; off += CHUNK) {
            size_t n = send_counts[r] - off < CHUNK ? send_counts[r] - off : CHUNK;
            MPICALL(MPI_Isend(s + soff[r] + off, (int)n, MPI_BYTE, r, 7, COMM(ctx), &req[q++]));
        }
    }
    MPICALL(MPI_Waitall((int)q, req, MPI_STATUSES_IGNORE));
    free(req);
    free(soff);
    free(roff);
    free(sc64);
    free(rc64);
    *out = buf;
    *recv_counts = rc;
    return DM_OK;
}

int par_allgatherv(par_ctx *ctx, const void *send, size_t bytes, void **out, size_t **counts)
{
    int P = ctx->size;
    size_t *sc;
    DM_ALLOC(sc, P);
    for (int r = 0; r < P; r++) sc[r] = bytes;
    /* replicate our block to every rank */
    char *rep;
    DM_ALLOC(rep, bytes * (size_t)P + 1);
    for (int r = 0; r < P; r++)
        if (bytes) memcpy(rep + (size_t)r * bytes, send, bytes);
    int rc = par_alltoallv(ctx, rep, sc, out, counts);
    free(rep);
    free(sc);
    return rc;
}

int par_gatherv(par_ctx *ctx, const void *send, size_t bytes, int root, void **out, size_t **counts)
{
    int P = ctx->size;
    size_t *sc;
    DM_ALLOC(sc, P);
    sc[root] = bytes;
    /* only the root's slot is non-empty; the buffer is laid out in rank order */
    char *packed;
    DM_ALLOC(packed, bytes + 1);
    if (bytes) memcpy(packed, send, bytes);
    int rc = par_alltoallv(ctx, packed, sc, out, counts);
    free(packed);
    free(sc);
    if (rc) return rc;
    if (ctx->rank != root) {
        free(*out);
        *out = NULL;
    }
    return DM_OK;
}

void par_timer_report(par_ctx *ctx, const char *title)
{
    dm_timers *t = &ctx->timers;
    double wall = MPI_Wtime() - ctx->t_start;
    int n = t->n;
    MPI_Bcast(&n, 1, MPI_INT, 0, COMM(ctx));
    if (n != t->n) return; /* timers differ across ranks; nothing comparable to report */
    if (ctx->rank == 0) dm_log("%s timers (wall %.2fs, %d ranks):\n  %-22s %8s %10s %6s %18s %18s", title, wall, ctx->size,
                                "name", "count", "total s", "%", "min s (rank)", "max s (rank)");
    for (int i = 0; i < n; i++) {
        struct { double v; int r; } in = {t->total[i], ctx->rank}, mn, mx;
        MPI_Allreduce(&in, &mn, 1, MPI_DOUBLE_INT, MPI_MINLOC, COMM(ctx));
        MPI_Allreduce(&in, &mx, 1, MPI_DOUBLE_INT, MPI_MAXLOC, COMM(ctx));
        if (ctx->rank == 0)
            dm_log("  %-22s %8ld %10.3f %6.1f %12.3f (%3d) %12.3f (%3d)", t->name[i], t->count[i], t->total[i],
                   wall > 0 ? 100 * t->total[i] / wall : 0, mn.v, mn.r, mx.v, mx.r);
    }
}

void par_peak_rss(par_ctx *ctx, size_t *max_bytes, int *max_rank, size_t *sum_bytes)
{
    struct { double v; int r; } in = {(double)dm_peak_rss(), ctx->rank}, mx;
    double sum = in.v;
    MPI_Allreduce(&in, &mx, 1, MPI_DOUBLE_INT, MPI_MAXLOC, COMM(ctx));
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, COMM(ctx));
    if (max_bytes) *max_bytes = (size_t)mx.v;
    if (max_rank) *max_rank = mx.r;
    if (sum_bytes) *sum_bytes = (size_t)sum;
}

void par_log_peak(par_ctx *ctx)
{
    size_t mx, sum;
    int mr;
    par_peak_rss(ctx, &mx, &mr, &sum);
    dm_log("  peak memory %.1f MiB on rank %d (%.1f MiB over all ranks)", (double)mx / 1048576.0, mr, (double)sum / 1048576.0);
}

const char *par_mpi_library(void)
{
    static char s[MPI_MAX_LIBRARY_VERSION_STRING];
    int l = 0;
    MPI_Get_library_version(s, &l);
    for (int i = 0; i < l; i++)
        if (s[i] == '\n' || s[i] == ',') {
            s[i] = '\0';
            break;
        }
    return s;
}
