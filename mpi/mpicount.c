/* mpicount.c: MPI calls counted per stage through the profiling interface, see mpicount.h.
 *
 * Each wrapper: when counting is off (or a counted call is already running), the PMPI call and
 * nothing else; when on, the bytes of the call, wall and process-CPU clocks around it, one cell of
 * the (stage x op) table updated. MPI_Finalize writes the table before PMPI_Finalize. */
#include "mpicount.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int mpicount_on_;
static int g_depth;           /* 1 while a counted call runs: calls made inside it are part of it */
static char *g_path;          /* DM_MPI_COUNT */
static const char *g_label[MPICOUNT_MAX_STAGES] = {"other"};
static int g_nlabel = 1, g_cur;
static mpicount_cell g_tab[MPICOUNT_MAX_STAGES][MC_NOPS];
static double g_stage_wall[MPICOUNT_MAX_STAGES], g_stage_cpu[MPICOUNT_MAX_STAGES];
static double g_seg_wall, g_seg_cpu; /* start of the current label's segment */

static const struct {
    const char *name, *kind;
} g_op[MC_NOPS] = {
    [MC_ALLREDUCE] = {"Allreduce", "coll"}, [MC_REDUCE] = {"Reduce", "coll"}, [MC_BCAST] = {"Bcast", "coll"},
    [MC_BARRIER] = {"Barrier", "coll"}, [MC_EXSCAN] = {"Exscan", "coll"}, [MC_SCAN] = {"Scan", "coll"},
    [MC_ALLTOALL] = {"Alltoall", "coll"}, [MC_ALLGATHER] = {"Allgather", "coll"},
    [MC_ALLGATHERV] = {"Allgatherv", "coll"}, [MC_GATHER] = {"Gather", "coll"}, [MC_GATHERV] = {"Gatherv", "coll"},
    [MC_SCATTERV] = {"Scatterv", "coll"}, [MC_COMM_DUP] = {"Comm_dup", "coll"}, [MC_COMM_SPLIT] = {"Comm_split", "coll"},
    [MC_SEND] = {"Send", "p2p"}, [MC_RSEND] = {"Rsend", "p2p"}, [MC_RECV] = {"Recv", "p2p"}, [MC_ISEND] = {"Isend", "p2p"},
    [MC_IRECV] = {"Irecv", "p2p"}, [MC_SENDRECV] = {"Sendrecv", "p2p"}, [MC_WAIT] = {"Wait", "p2p"},
    [MC_WAITALL] = {"Waitall", "p2p"}, [MC_TESTALL] = {"Testall", "p2p"}, [MC_MPROBE] = {"Mprobe", "p2p"},
    [MC_IMRECV] = {"Imrecv", "p2p"},
    [MC_FILE_OPEN] = {"File_open", "io"}, [MC_FILE_CLOSE] = {"File_close", "io"},
    [MC_FILE_WRITE_AT_ALL] = {"File_write_at_all", "io"}, [MC_FILE_WRITE_AT] = {"File_write_at", "io"},
    [MC_FILE_READ_AT_ALL] = {"File_read_at_all", "io"}, [MC_FILE_READ_AT] = {"File_read_at", "io"},
    [MC_FILE_SET_SIZE] = {"File_set_size", "io"}, [MC_FILE_SYNC] = {"File_sync", "io"},
    [MC_FILE_SET_VIEW] = {"File_set_view", "io"}, [MC_FILE_GET_SIZE] = {"File_get_size", "io"},
};

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int mpicount_enabled(void) { return mpicount_on_; }

int mpicount_enter_(mpicount_t0 *t)
{
    if (g_depth) return 0;
    g_depth = 1;
    t->wall = PMPI_Wtime();
    t->cpu = cpu_now();
    return 1;
}

void mpicount_leave(const mpicount_t0 *t, int op, uint64_t bytes)
{
    mpicount_cell *c = &g_tab[g_cur][op];
    c->calls++;
    c->bytes += bytes;
    if (bytes > c->max_bytes) c->max_bytes = bytes;
    c->seconds += PMPI_Wtime() - t->wall;
    c->cpu_seconds += cpu_now() - t->cpu;
    g_depth = 0;
}

static uint64_t tbytes(int count, MPI_Datatype t)
{
    int sz = 0;
    if (count <= 0 || t == MPI_DATATYPE_NULL || PMPI_Type_size(t, &sz) != MPI_SUCCESS || sz <= 0) return 0;
    return (uint64_t)count * (uint64_t)sz;
}

static int comm_size(MPI_Comm c)
{
    int p = 1;
    PMPI_Comm_size(c, &p);
    return p;
}

static int comm_rank(MPI_Comm c)
{
    int r = 0;
    PMPI_Comm_rank(c, &r);
    return r;
}

/* WRAP(op, bytes, call): the call, counted when on. `bytes` is evaluated only when counting. */
#define WRAP(op, bytes, call)                                                                          \
    do {                                                                                               \
        mpicount_t0 t_;                                                                                \
        if (!mpicount_on_ || !mpicount_enter_(&t_)) return call;                                       \
        uint64_t b_ = (bytes);                                                                         \
        int rc_ = call;                                                                                \
        mpicount_leave(&t_, op, b_);                                                                   \
        return rc_;                                                                                    \
    } while (0)

/* ---- labels -------------------------------------------------------------------------------------- */

static void close_segment(void)
{
    double w = PMPI_Wtime(), c = cpu_now();
    g_stage_wall[g_cur] += w - g_seg_wall;
    g_stage_cpu[g_cur] += c - g_seg_cpu;
    g_seg_wall = w;
    g_seg_cpu = c;
}

void mpicount_stage(const char *name)
{
    if (!mpicount_on_) return;
    close_segment();
    int k = 0;
    if (name)
        for (k = 1; k < g_nlabel; k++)
            if (g_label[k] == name || !strcmp(g_label[k], name)) break;
    if (name && k == g_nlabel) {
        if (g_nlabel == MPICOUNT_MAX_STAGES) k = 0;
        else g_label[g_nlabel++] = name;
    }
    g_cur = k;
}

mpicount_cell mpicount_get(const char *stage, const char *op)
{
    mpicount_cell z = {0};
    for (int k = 0; k < g_nlabel; k++)
        if (!strcmp(g_label[k], stage))
            for (int o = 0; o < MC_NOPS; o++)
                if (!strcmp(g_op[o].name, op)) return g_tab[k][o];
    return z;
}

void mpicount_reset(void)
{
    memset(g_tab, 0, sizeof g_tab);
    memset(g_stage_wall, 0, sizeof g_stage_wall);
    memset(g_stage_cpu, 0, sizeof g_stage_cpu);
    g_seg_wall = PMPI_Wtime();
    g_seg_cpu = cpu_now();
}

/* ---- start and end --------------------------------------------------------------------------- */

static void start(void)
{
    const char *p = getenv("DM_MPI_COUNT");
    if (!p || !p[0]) return;
    g_path = strdup(p);
    if (!g_path) return;
    mpicount_on_ = 1;
    mpicount_reset();
}

int MPI_Init(int *argc, char ***argv)
{
    int rc = PMPI_Init(argc, argv);
    if (rc == MPI_SUCCESS) start();
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int rc = PMPI_Init_thread(argc, argv, required, provided);
    if (rc == MPI_SUCCESS) start();
    return rc;
}

/* This rank's rows as CSV text (malloc'd). */
static char *rows(int size, int rank, int *len)
{
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = '\0';
    for (int k = 0; k < g_nlabel; k++) {
        for (int o = -1; o < MC_NOPS; o++) {
            char line[512];
            int l;
            if (o < 0) {
                if (g_stage_wall[k] <= 0 && k) continue;
                l = snprintf(line, sizeof line, "%d,%d,%s,wall,stage,1,0,0,%.9f,%.9f\n", size, rank, g_label[k],
                             g_stage_wall[k], g_stage_cpu[k]);
            } else {
                const mpicount_cell *c = &g_tab[k][o];
                if (!c->calls) continue;
                l = snprintf(line, sizeof line, "%d,%d,%s,%s,%s,%llu,%llu,%llu,%.9f,%.9f\n", size, rank, g_label[k],
                             g_op[o].name, g_op[o].kind, (unsigned long long)c->calls, (unsigned long long)c->bytes,
                             (unsigned long long)c->max_bytes, c->seconds, c->cpu_seconds);
            }
            if (n + (size_t)l + 1 > cap) {
                char *t = realloc(s, cap = 2 * cap + (size_t)l);
                if (!t) {
                    free(s);
                    return NULL;
                }
                s = t;
            }
            memcpy(s + n, line, (size_t)l + 1);
            n += (size_t)l;
        }
    }
    *len = (int)n;
    return s;
}

/* Gathers every rank's rows to rank 0 (uncounted PMPI calls) and writes the file there. */
static void write_out(void)
{
    close_segment();
    mpicount_on_ = 0;
    int size = comm_size(MPI_COMM_WORLD), rank = comm_rank(MPI_COMM_WORLD);
    int len = 0, *lens = NULL, *offs = NULL;
    char *mine = rows(size, rank, &len), *all = NULL;
    if (!mine) len = 0;
    if (rank == 0) {
        lens = calloc((size_t)size, sizeof *lens);
        offs = calloc((size_t)size, sizeof *offs);
    }
    PMPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
    long total = 0;
    if (rank == 0 && lens && offs) {
        for (int r = 0; r < size; r++) {
            offs[r] = (int)total;
            total += lens[r];
        }
        all = malloc((size_t)total + 1);
    }
    PMPI_Gatherv(mine, len, MPI_CHAR, all, lens, offs, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.part", g_path);
        FILE *f = all ? fopen(tmp, "w") : NULL;
        int ok = f && fputs("ranks,rank,stage,op,kind,calls,bytes,max_bytes,seconds,cpu_seconds\n", f) >= 0 &&
                 fwrite(all, 1, (size_t)total, f) == (size_t)total;
        if (f && fclose(f)) ok = 0;
        if (ok && rename(tmp, g_path)) ok = 0;
        if (!ok) {
            fprintf(stderr, "dynmm: error: DM_MPI_COUNT: cannot write '%s'\nhint: the directory must exist and be writable\n", g_path);
            remove(tmp);
        }
    }
    free(mine);
    free(all);
    free(lens);
    free(offs);
}

int MPI_Finalize(void)
{
    if (mpicount_on_) write_out();
    return PMPI_Finalize();
}

/* ---- collectives --------------------------------------------------------------------------------- */

int MPI_Allreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    WRAP(MC_ALLREDUCE, tbytes(n, t), PMPI_Allreduce(s, r, n, t, op, c));
}

int MPI_Reduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, int root, MPI_Comm c)
{
    WRAP(MC_REDUCE, tbytes(n, t), PMPI_Reduce(s, r, n, t, op, root, c));
}

int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm c)
{
    WRAP(MC_BCAST, tbytes(n, t), PMPI_Bcast(b, n, t, root, c));
}

int MPI_Barrier(MPI_Comm c) { WRAP(MC_BARRIER, 0, PMPI_Barrier(c)); }

int MPI_Exscan(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    WRAP(MC_EXSCAN, tbytes(n, t), PMPI_Exscan(s, r, n, t, op, c));
}

int MPI_Scan(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    WRAP(MC_SCAN, tbytes(n, t), PMPI_Scan(s, r, n, t, op, c));
}

int MPI_Alltoall(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt, MPI_Comm c)
{
    WRAP(MC_ALLTOALL, (uint64_t)comm_size(c) * (s == MPI_IN_PLACE ? tbytes(rn, rt) : tbytes(sn, st)),
         PMPI_Alltoall(s, sn, st, r, rn, rt, c));
}

int MPI_Allgather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt, MPI_Comm c)
{
    WRAP(MC_ALLGATHER, s == MPI_IN_PLACE ? tbytes(rn, rt) : tbytes(sn, st), PMPI_Allgather(s, sn, st, r, rn, rt, c));
}

int MPI_Allgatherv(const void *s, int sn, MPI_Datatype st, void *r, const int rn[], const int displs[], MPI_Datatype rt,
                   MPI_Comm c)
{
    WRAP(MC_ALLGATHERV, s == MPI_IN_PLACE ? tbytes(rn[comm_rank(c)], rt) : tbytes(sn, st),
         PMPI_Allgatherv(s, sn, st, r, rn, displs, rt, c));
}

int MPI_Gather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt, int root, MPI_Comm c)
{
    WRAP(MC_GATHER, s == MPI_IN_PLACE ? tbytes(rn, rt) : tbytes(sn, st), PMPI_Gather(s, sn, st, r, rn, rt, root, c));
}

int MPI_Gatherv(const void *s, int sn, MPI_Datatype st, void *r, const int rn[], const int displs[], MPI_Datatype rt,
                int root, MPI_Comm c)
{
    WRAP(MC_GATHERV, s == MPI_IN_PLACE ? tbytes(rn[comm_rank(c)], rt) : tbytes(sn, st),
         PMPI_Gatherv(s, sn, st, r, rn, displs, rt, root, c));
}

int MPI_Scatterv(const void *s, const int sn[], const int displs[], MPI_Datatype st, void *r, int rn, MPI_Datatype rt,
                 int root, MPI_Comm c)
{
    WRAP(MC_SCATTERV, r == MPI_IN_PLACE ? tbytes(sn[comm_rank(c)], st) : tbytes(rn, rt),
         PMPI_Scatterv(s, sn, displs, st, r, rn, rt, root, c));
}

int MPI_Comm_dup(MPI_Comm c, MPI_Comm *out) { WRAP(MC_COMM_DUP, 0, PMPI_Comm_dup(c, out)); }

int MPI_Comm_split(MPI_Comm c, int color, int key, MPI_Comm *out)
{
    WRAP(MC_COMM_SPLIT, 0, PMPI_Comm_split(c, color, key, out));
}

/* ---- point to point ------------------------------------------------------------------------------ */

int MPI_Send(const void *b, int n, MPI_Datatype t, int dest, int tag, MPI_Comm c)
{
    WRAP(MC_SEND, tbytes(n, t), PMPI_Send(b, n, t, dest, tag, c));
}

int MPI_Rsend(const void *b, int n, MPI_Datatype t, int dest, int tag, MPI_Comm c)
{
    WRAP(MC_RSEND, tbytes(n, t), PMPI_Rsend(b, n, t, dest, tag, c));
}

int MPI_Recv(void *b, int n, MPI_Datatype t, int src, int tag, MPI_Comm c, MPI_Status *st)
{
    WRAP(MC_RECV, tbytes(n, t), PMPI_Recv(b, n, t, src, tag, c, st));
}

int MPI_Isend(const void *b, int n, MPI_Datatype t, int dest, int tag, MPI_Comm c, MPI_Request *q)
{
    WRAP(MC_ISEND, tbytes(n, t), PMPI_Isend(b, n, t, dest, tag, c, q));
}

int MPI_Irecv(void *b, int n, MPI_Datatype t, int src, int tag, MPI_Comm c, MPI_Request *q)
{
    WRAP(MC_IRECV, tbytes(n, t), PMPI_Irecv(b, n, t, src, tag, c, q));
}

int MPI_Sendrecv(const void *s, int sn, MPI_Datatype st, int dest, int stag, void *r, int rn, MPI_Datatype rt, int src,
                 int rtag, MPI_Comm c, MPI_Status *status)
{
    WRAP(MC_SENDRECV, tbytes(sn, st), PMPI_Sendrecv(s, sn, st, dest, stag, r, rn, rt, src, rtag, c, status));
}

int MPI_Wait(MPI_Request *q, MPI_Status *st) { WRAP(MC_WAIT, 0, PMPI_Wait(q, st)); }

int MPI_Waitall(int n, MPI_Request q[], MPI_Status st[]) { WRAP(MC_WAITALL, 0, PMPI_Waitall(n, q, st)); }

int MPI_Testall(int n, MPI_Request q[], int *flag, MPI_Status st[]) { WRAP(MC_TESTALL, 0, PMPI_Testall(n, q, flag, st)); }

int MPI_Mprobe(int src, int tag, MPI_Comm c, MPI_Message *m, MPI_Status *st)
{
    WRAP(MC_MPROBE, 0, PMPI_Mprobe(src, tag, c, m, st));
}

int MPI_Imrecv(void *b, int n, MPI_Datatype t, MPI_Message *m, MPI_Request *q)
{
    WRAP(MC_IMRECV, tbytes(n, t), PMPI_Imrecv(b, n, t, m, q));
}

/* ---- MPI-IO not defined by h5io.c ----------------------------------------------------------------- */

int MPI_File_read_at(MPI_File fh, MPI_Offset off, void *b, int n, MPI_Datatype t, MPI_Status *st)
{
    WRAP(MC_FILE_READ_AT, tbytes(n, t), PMPI_File_read_at(fh, off, b, n, t, st));
}

int MPI_File_set_view(MPI_File fh, MPI_Offset disp, MPI_Datatype et, MPI_Datatype ft, const char *rep, MPI_Info info)
{
    WRAP(MC_FILE_SET_VIEW, 0, PMPI_File_set_view(fh, disp, et, ft, rep, info));
}

int MPI_File_get_size(MPI_File fh, MPI_Offset *size) { WRAP(MC_FILE_GET_SIZE, 0, PMPI_File_get_size(fh, size)); }
