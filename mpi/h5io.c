/* h5io.c: parallel HDF5 helpers, see h5io.h. */
#include "h5io.h"
#include "mpicount.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <libgen.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#ifndef DM_VERSION
#define DM_VERSION "unknown"
#endif
#ifndef DM_CFLAGS
#define DM_CFLAGS ""
#endif

/* ---- the MPI-IO calls under HDF5 -----------------------------------------------------------------
 * Parallel HDF5 does not agree on I/O errors: when a collective write fails on one rank only (a full
 * disk hits whichever rank aggregates the bytes), that rank leaves the HDF5 call with an error while
 * the others go on to HDF5's next collective and wait there forever. So dynmm provides the MPI-IO
 * functions HDF5 calls (the MPI profiling interface: each calls its PMPI_ twin) and, after every
 * collective one, the ranks of the file agree on its outcome: a failure anywhere is returned on every
 * rank, HDF5 fails at the same point everywhere and takes the same path after it.
 *
 * A handle also has a mode, set through io_set_mode() around H5Fclose:
 *   IO_DOOMED   the file is being discarded: writes, resizes and syncs succeed without touching the
 *               disk, so closing it after a failure can neither fail again nor diverge;
 *   IO_LENIENT  the file is being closed for good: a failure is agreed and recorded in g_io_err but
 *               reported to HDF5 as success, so H5Fclose always releases the file (a failed H5Fclose
 *               leaves a dangling file id that crashes HDF5 at MPI_Finalize) and h5_commit() then
 *               refuses the file. */
enum { IO_NORMAL, IO_LENIENT, IO_DOOMED };

typedef struct {
    int used;
    MPI_File fh;
    MPI_Comm comm; /* a duplicate of the file's communicator, for the agreement */
    int mode;
    char *path;
} io_file;

#define IO_MAX 64 /* files open at once; more are served without agreement */
static io_file g_io[IO_MAX];
/* errno of the last failed write (ENOSPC for a full disk), the same on every rank of the file after
   a collective call; 0 when none. Turned into the message by h5fail(), h5_commit() or h5_discard(). */
static int g_io_err;

static io_file *io_find(MPI_File fh)
{
    for (int i = 0; i < IO_MAX; i++)
        if (g_io[i].used && g_io[i].fh == fh) return &g_io[i];
    return NULL;
}

static size_t io_bytes(int count, MPI_Datatype t)
{
    int sz = 0;
    if (count <= 0 || MPI_Type_size(t, &sz) != MPI_SUCCESS || sz <= 0) return 0;
    return (size_t)count * (size_t)sz;
}

/* The errno behind a failed call: the MPI library may report a full disk as a generic error, so a
 * write larger than the room left on the filesystem counts as one. */
static int io_errno(const io_file *io, int rc, int err, size_t bytes)
{
    int cls = MPI_ERR_OTHER;
    MPI_Error_class(rc, &cls);
    if (cls == MPI_ERR_NO_SPACE || err == ENOSPC) return ENOSPC;
    if (cls == MPI_ERR_QUOTA || err == EDQUOT) return EDQUOT;
    struct statvfs st;
    if (bytes && io && io->path && statvfs(io->path, &st) == 0 && (size_t)st.f_bavail * st.f_frsize < bytes)
        return ENOSPC;
    return err > 0 ? err : EIO;
}

/* Collective over the file's ranks (when io is known): every rank returns the first failure's error
 * class if any rank failed, and records its errno in g_io_err. */
static int io_agree(io_file *io, int rc, int err, size_t bytes)
{
    int v[2] = {0, 0}; /* error class, errno */
    if (rc != MPI_SUCCESS) {
        MPI_Error_class(rc, &v[0]);
        if (v[0] == MPI_SUCCESS) v[0] = MPI_ERR_OTHER;
        v[1] = io_errno(io, rc, err, bytes);
    }
    if (io && io->comm != MPI_COMM_NULL) {
        int w[2];
        if (MPI_Allreduce(v, w, 2, MPI_INT, MPI_MAX, io->comm) == MPI_SUCCESS) memcpy(v, w, sizeof v);
    }
    if (v[0] == 0) return MPI_SUCCESS;
    if (!g_io_err) g_io_err = v[1] ? v[1] : EIO;
    if (io && io->mode == IO_LENIENT) return MPI_SUCCESS;
    return rc != MPI_SUCCESS ? rc : v[0];
}

/* A transfer reported complete without having happened (HDF5 checks the byte count of the status). */
static int io_skip(MPI_Status *status, MPI_Datatype t, int count)
{
    if (status != MPI_STATUS_IGNORE) MPI_Status_set_elements_x(status, MPI_BYTE, (MPI_Count)io_bytes(count, t));
    return MPI_SUCCESS;
}

int MPI_File_open(MPI_Comm comm, const char *filename, int amode, MPI_Info info, MPI_File *fh)
{
    mpicount_t0 t0;
    int counted = mpicount_enter(&t0);
    errno = 0;
    int rc = PMPI_File_open(comm, filename, amode, info, fh);
    int err = errno;
    io_file tmp = {1, MPI_FILE_NULL, MPI_COMM_NULL, IO_NORMAL, NULL}, *io = NULL;
    if (MPI_Comm_dup(comm, &tmp.comm) != MPI_SUCCESS) tmp.comm = MPI_COMM_NULL;
    rc = io_agree(&tmp, rc, err, 0);
    if (rc == MPI_SUCCESS)
        for (int i = 0; i < IO_MAX && !io; i++)
            if (!g_io[i].used) io = &g_io[i];
    if (io) {
        /* strdup failing only loses the full-disk guess of io_errno() */
        tmp.fh = *fh;
        tmp.path = strdup(filename);
        *io = tmp;
    } else if (tmp.comm != MPI_COMM_NULL)
        MPI_Comm_free(&tmp.comm);
    /* when the open failed on another rank only, this rank's handle is left open: closing it is
       collective and the others have nothing to close */
    if (rc != MPI_SUCCESS && *fh != MPI_FILE_NULL) *fh = MPI_FILE_NULL;
    if (counted) mpicount_leave(&t0, MC_FILE_OPEN, 0);
    return rc;
}

int MPI_File_close(MPI_File *fh)
{
    io_file *io = io_find(*fh);
    mpicount_t0 t0;
    int counted = mpicount_enter(&t0);
    errno = 0;
    int rc = PMPI_File_close(fh);
    int err = errno;
    if (io) {
        rc = io_agree(io, rc, err, 0);
        if (io->comm != MPI_COMM_NULL) MPI_Comm_free(&io->comm);
        free(io->path);
        memset(io, 0, sizeof *io);
    }
    if (counted) mpicount_leave(&t0, MC_FILE_CLOSE, 0);
    return rc;
}

/* The outcome of a write as an MPI code. Open MPI 4.1's OMPIO (its "vulcan" collective writer)
 * reports a write that failed with ENOSPC as a success with the full byte count, so the errno it
 * leaves behind is trusted too; a short byte count in the status is a failure as well. (OMPIO also
 * takes a short pwritev for a complete one, with no trace at all: par_init() selects ROMIO.) */
static int io_wrote(int rc, int err, MPI_Status *status, size_t bytes)
{
    if (rc != MPI_SUCCESS) return rc;
    if (err == ENOSPC || err == EDQUOT || err == EFBIG || err == EIO) return MPI_ERR_IO;
    MPI_Count got = 0;
    if (bytes && status != MPI_STATUS_IGNORE && MPI_Get_elements_x(status, MPI_BYTE, &got) == MPI_SUCCESS &&
        got != MPI_UNDEFINED && (size_t)got < bytes)
        return MPI_ERR_IO;
    return MPI_SUCCESS;
}

typedef int (*io_write_fn)(MPI_File fh, MPI_Offset offset, const void *buf, int count, MPI_Datatype t,
                           MPI_Status *status);

/* A write through pwrite (the PMPI call; op its mpicount code). A collective write agrees on the
 * outcome (a lenient file takes a failed one for a complete write); an independent one has nothing
 * to agree with: its failure is recorded and the caller's agreement follows. */
static int io_write(io_write_fn pwrite, int collective, int op, MPI_File fh, MPI_Offset offset, const void *buf,
                    int count, MPI_Datatype t, MPI_Status *status)
{
    io_file *io = io_find(fh);
    if (io && io->mode == IO_DOOMED) return io_skip(status, t, count);
    size_t bytes = io_bytes(count, t);
    mpicount_t0 t0;
    int counted = mpicount_enter(&t0);
    errno = 0;
    int rc = pwrite(fh, offset, buf, count, t, status);
    int err = errno;
    rc = io_wrote(rc, err, status, bytes);
    if (collective) {
        int arc = io_agree(io, rc, err, bytes);
        if (arc == MPI_SUCCESS && rc != MPI_SUCCESS) io_skip(status, t, count); /* lenient: a complete write */
        rc = arc;
    } else if (rc != MPI_SUCCESS && !g_io_err)
        g_io_err = io_errno(io, rc, err, bytes);
    if (counted) mpicount_leave(&t0, op, bytes);
    return rc;
}

int MPI_File_write_at_all(MPI_File fh, MPI_Offset offset, const void *buf, int count, MPI_Datatype t,
                          MPI_Status *status)
{
    return io_write(PMPI_File_write_at_all, 1, MC_FILE_WRITE_AT_ALL, fh, offset, buf, count, t, status);
}

int MPI_File_write_at(MPI_File fh, MPI_Offset offset, const void *buf, int count, MPI_Datatype t,
                      MPI_Status *status)
{
    return io_write(PMPI_File_write_at, 0, MC_FILE_WRITE_AT, fh, offset, buf, count, t, status);
}

int MPI_File_read_at_all(MPI_File fh, MPI_Offset offset, void *buf, int count, MPI_Datatype t, MPI_Status *status)
{
    io_file *io = io_find(fh);
    mpicount_t0 t0;
    int counted = mpicount_enter(&t0);
    errno = 0;
    int rc = PMPI_File_read_at_all(fh, offset, buf, count, t, status);
    int err = errno, keep = g_io_err; /* agreed, but not a write failure */
    rc = io_agree(io, rc, err, 0);
    g_io_err = keep;
    if (counted) mpicount_leave(&t0, MC_FILE_READ_AT_ALL, io_bytes(count, t));
    return rc;
}

int MPI_File_set_size(MPI_File fh, MPI_Offset size)
{
    io_file *io = io_find(fh);
    if (io && io->mode == IO_DOOMED) return MPI_SUCCESS;
    mpicount_t0 t0;
    int counted = mpicount_enter(&t0);
    errno = 0;
    int rc = PMPI_File_set_size(fh, size);
    int err = errno;
    rc = io_agree(io, rc, err, 0);
    if (counted) mpicount_leave(&t0, MC_FILE_SET_SIZE, 0);
    return rc;
}

int MPI_File_sync(MPI_File fh)
{
    io_file *io = io_find(fh);
    if (io && io->mode == IO_DOOMED) return MPI_SUCCESS;
    mpicount_t0 t0;
    int counted = mpicount_enter(&t0);
    errno = 0;
    int rc = PMPI_File_sync(fh);
    int err = errno;
    rc = io_agree(io, rc, err, 0);
    if (counted) mpicount_leave(&t0, MC_FILE_SYNC, 0);
    return rc;
}

/* Sets the mode of the MPI-IO handle under an open HDF5 file (all ranks alike). */
static void io_set_mode(hid_t id, int mode)
{
    void *h = NULL;
    if (H5Fget_vfd_handle(id, H5P_DEFAULT, &h) < 0 || !h) {
        H5Eclear2(H5E_DEFAULT);
        return;
    }
    io_file *io = io_find(*(MPI_File *)h);
    if (io) io->mode = mode;
}

/* ---- errors ------------------------------------------------------------------------------------ */

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    char *out = data;
    if (n == 0) snprintf(out, 512, "%s (in %s)", e->desc, e->func_name);
    return 0;
}

/* "no space left on device writing 'path' (context)" and its hint when err is a full disk or quota;
 * ctx says what was being done (may be empty). */
static int io_error_ctx(const char *file, int line, int err, const char *path, const char *ctx)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    const char *d = dirname(dir);
    const char *o = ctx[0] ? " (" : "", *c = ctx[0] ? ")" : "";
    if (err == ENOSPC || err == EDQUOT) {
        dm_error_at(file, line, DM_EIO, "%s writing '%s'%s%s%s",
                    err == ENOSPC ? "no space left on device" : "disk quota exceeded", path, o, ctx, c);
        DM_HINT("make room on the filesystem of '%s' (see `df -h %s`) or set run.dir to one with more space, "
                "then rerun; the partial file is removed",
                d, d);
        return DM_EIO;
    }
    return dm_error_at(file, line, DM_EIO, "cannot write '%s'%s%s%s: %s", path, o, ctx, c, strerror(err));
}

static int io_error(const char *file, int line, int err, const char *path, const char *what, const char *name)
{
    char ctx[1024] = "";
    if (what && name) snprintf(ctx, sizeof ctx, "cannot %s '%s'", what, name);
    else if (what) snprintf(ctx, sizeof ctx, "cannot %s", what);
    return io_error_ctx(file, line, err, path, ctx);
}

static int h5fail(const char *file, int line, const char *what, const char *name, const char *path, const char *final)
{
    char detail[512] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, detail);
    H5Eclear2(H5E_DEFAULT);
    if (g_io_err) {
        int e = g_io_err;
        g_io_err = 0;
        return io_error(file, line, e, final ? final : path, what, name);
    }
    return dm_error_at(file, line, DM_EHDF5, "hdf5: cannot %s '%s' in '%s'%s%s", what, name ? name : "/",
                       path ? path : "?", detail[0] ? ": " : "", detail);
}
#define H5FAIL(what, name) h5fail(__FILE__, __LINE__, what, name, f->tmp ? f->tmp : f->path, f->path)

static hid_t mem_type(h5type t)
{
    switch (t) {
    case H5_F32: return H5T_NATIVE_FLOAT;
    case H5_F64: return H5T_NATIVE_DOUBLE;
    case H5_I32: return H5T_NATIVE_INT32;
    case H5_I64: return H5T_NATIVE_INT64;
    case H5_U8: return H5T_NATIVE_UINT8;
    case H5_I8: return H5T_NATIVE_INT8;
    }
    return -1;
}

static hid_t file_type(h5type t)
{
    switch (t) {
    case H5_F32: return H5T_IEEE_F32LE;
    case H5_F64: return H5T_IEEE_F64LE;
    case H5_I32: return H5T_STD_I32LE;
    case H5_I64: return H5T_STD_I64LE;
    case H5_U8: return H5T_STD_U8LE;
    case H5_I8: return H5T_STD_I8LE;
    }
    return -1;
}

size_t h5_type_size(h5type t)
{
    switch (t) {
    case H5_F32: case H5_I32: return 4;
    case H5_F64: case H5_I64: return 8;
    default: return 1;
    }
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *d = dm_calloc_at(n + 1, 1, __FILE__, __LINE__);
    if (d) memcpy(d, s, n);
    return d;
}

static hid_t fapl_mpio(par_ctx *ctx)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, *(MPI_Comm *)ctx->comm, MPI_INFO_NULL);
    H5Pset_all_coll_metadata_ops(fapl, 1);
    H5Pset_coll_metadata_write(fapl, 1);
    return fapl;
}

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static void h5file_free(h5file *f)
{
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
}

/* Removes the partial file (rank 0) and frees f. */
static void drop_part(h5file *f)
{
    if (f->tmp && f->ctx && f->ctx->rank == 0) unlink(f->tmp);
    h5file_free(f);
}

/* The start of h5_create / h5_open_update: f for path, written as path.part until h5_commit.
 * Returns DM_ENOMEM (f->tmp NULL) or DM_OK; local. */
static int part_init(par_ctx *ctx, const char *path, int compress, size_t chunk_rows, h5file *f)
{
    quiet();
    memset(f, 0, sizeof *f);
    f->id = -1;
    f->ctx = ctx;
    f->compress = compress;
    f->chunk_rows = chunk_rows ? chunk_rows : 65536;
    size_t n = strlen(path) + 8;
    f->path = xstrdup(path);
    f->tmp = f->path ? dm_calloc_at(n, 1, __FILE__, __LINE__) : NULL;
    if (!f->tmp) return DM_ENOMEM;
    snprintf(f->tmp, n, "%s.part", path);
    return DM_OK;
}

/* The end of h5_create / h5_open_update once every rank agrees on rc: f holds the open file id, or
 * on failure nothing is left behind (the file closed without writing, the partial file removed, f
 * freed; the callers see f->id < 0 and leave nothing to discard). */
static int part_opened(h5file *f, hid_t id, int rc)
{
    if (rc) {
        if (id >= 0) {
            io_set_mode(id, IO_DOOMED);
            H5Fclose(id);
        }
        H5Eclear2(H5E_DEFAULT);
        drop_part(f);
        return rc;
    }
    f->id = id;
    return DM_OK;
}

int h5_create(par_ctx *ctx, const char *path, int compress, size_t chunk_rows, h5file *f)
{
    int rc = part_init(ctx, path, compress, chunk_rows, f);
    rc = par_agree(ctx, rc); /* H5Fcreate is collective */
    hid_t id = -1;
    if (!rc) {
        g_io_err = 0;
        hid_t fapl = fapl_mpio(ctx);
        id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (id < 0) {
            int io = g_io_err;
            rc = h5fail(__FILE__, __LINE__, "create file", f->tmp, f->tmp, path);
            if (io != ENOSPC && io != EDQUOT)
                DM_HINT("check that the directory of '%s' exists and is writable by every rank (a shared filesystem)",
                        path);
        }
        H5Pclose(fapl);
    }
    return part_opened(f, id, par_agree(ctx, rc));
}

int h5_commit(h5file *f)
{
    int rc = DM_OK;
    if (f->id >= 0) {
        /* a full disk shows during the close's metadata flush at the latest: the close completes
           (lenient mode) and the recorded failure refuses the file */
        g_io_err = 0;
        io_set_mode((hid_t)f->id, IO_LENIENT);
        herr_t e = H5Fclose((hid_t)f->id);
        int io = g_io_err;
        g_io_err = 0;
        if (io) rc = io_error(__FILE__, __LINE__, io, f->path, "flush the file at close", NULL);
        else if (e < 0) rc = H5FAIL("close", "/");
    }
    f->id = -1;
    rc = par_agree(f->ctx, rc);
    if (!rc && f->ctx->rank == 0 && rename(f->tmp, f->path) != 0) {
        int err = errno;
        if (err == ENOSPC || err == EDQUOT)
            rc = io_error(__FILE__, __LINE__, err, f->path, "rename the partial file", NULL);
        else rc = DM_ERR(DM_EIO, "cannot rename '%s' to '%s': %s", f->tmp, f->path, strerror(err));
    }
    rc = par_agree(f->ctx, rc);
    if (rc) drop_part(f);
    else h5file_free(f);
    return rc;
}

void h5_discard(h5file *f)
{
    /* an I/O failure that was reported without its cause (an error recorded by the caller after a
       write of this module failed): the message gets it, the same on every rank */
    if (g_io_err && f->path && dm_error_code() != DM_OK) {
        char msg[2048], hint[2048], where[1024];
        snprintf(msg, sizeof msg, "%s", dm_error_message());
        snprintf(where, sizeof where, "%s", dm_error_where());
        int code = dm_error_code();
        io_error_ctx(__FILE__, __LINE__, g_io_err, f->path, msg);
        snprintf(msg, sizeof msg, "%s", dm_error_message());
        snprintf(hint, sizeof hint, "%s", dm_error_hint_text());
        dm_error_set_raw(code, msg, hint, where);
    }
    g_io_err = 0;
    if (f->id >= 0) {
        /* every rank discards (callers agree first); nothing more is written, so the close cannot
           fail or wait for a rank that failed */
        io_set_mode((hid_t)f->id, IO_DOOMED);
        H5Fclose((hid_t)f->id);
        H5Eclear2(H5E_DEFAULT);
        g_io_err = 0;
    }
    f->id = -1;
    drop_part(f);
}

int h5_finish(h5file *f, int rc)
{
    rc = par_agree(f->ctx, rc);
    if (rc) {
        h5_discard(f);
        return rc;
    }
    return h5_commit(f);
}

#define HDF5_SIGNATURE "\211HDF\r\n\032\n"

/* The stack entry of a truncated file, "truncated file: eof = E, sblock->base_addr = B, stored_eof = S". */
static herr_t truncated_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    unsigned long long *eof = data;
    const char *p = e->desc ? strstr(e->desc, "truncated file") : NULL;
    if (p && !eof[2]) {
        const char *q = strstr(p, "eof = "), *r = strstr(p, "stored_eof = ");
        eof[0] = q ? strtoull(q + 6, NULL, 10) : 0;
        eof[1] = r ? strtoull(r + 13, NULL, 10) : 0;
        eof[2] = 1;
    }
    return 0;
}

int h5_open(par_ctx *ctx, const char *path, h5file *f)
{
    quiet();
    memset(f, 0, sizeof *f);
    f->id = -1;
    f->ctx = ctx;
    struct stat st;
    if (stat(path, &st) != 0) {
        DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
        return DM_EIO;
    }
    /* dynmm writes the signature at offset 0; HDF5 also looks at 512, 1024, ... (a user block) */
    char sig[8] = {0};
    FILE *in = fopen(path, "rb");
    size_t got = in ? fread(sig, 1, sizeof sig, in) : 0;
    if (in) fclose(in);
    int is_h5 = (got == 8 && !memcmp(sig, HDF5_SIGNATURE, 8)) || H5Fis_hdf5(path) > 0;
    H5Eclear2(H5E_DEFAULT);
    if (!is_h5) {
        if (st.st_size == 0) DM_ERR(DM_EFORMAT, "'%s' is empty (0 bytes), not an HDF5 file", path);
        else
            DM_ERR(DM_EFORMAT, "'%s' is not an HDF5 file (no HDF5 signature in its %lld bytes)", path,
                   (long long)st.st_size);
        DM_HINT("dynmm expects a file written by one of its stages here; rerun the stage that writes '%s'", path);
        return DM_EFORMAT;
    }
    f->path = xstrdup(path);
    if (!f->path) return DM_ENOMEM;
    hid_t fapl = fapl_mpio(ctx);
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    unsigned long long eof[3] = {0, 0, 0}; /* size, size the superblock records, found */
    char detail[512] = "";
    if (id < 0) {
        /* before any other HDF5 call, which would clear the error stack */
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, truncated_cb, eof);
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, detail);
    }
    H5Pclose(fapl);
    if (id < 0) {
        H5Eclear2(H5E_DEFAULT);
        g_io_err = 0;
        if (eof[2] && eof[1] > eof[0])
            DM_ERR(DM_EFORMAT, "'%s' is not a complete HDF5 file (truncated: %llu of %llu bytes)", path, eof[0],
                   eof[1]);
        else
            DM_ERR(DM_EFORMAT, "'%s' is not a complete HDF5 file (truncated or damaged)%s%s", path,
                   detail[0] ? ": " : "", detail);
        DM_HINT("the file was cut short or overwritten (a full disk, a quota, an interrupted copy?); rerun the stage "
                "that writes '%s'",
                path);
        h5file_free(f);
        return DM_EFORMAT;
    }
    f->id = id;
    return DM_OK;
}

/* Writes the copy of path at tmp (rank 0): a byte-for-byte copy, checked up to the close. */
static int copy_file(const char *path, const char *tmp)
{
    FILE *in = fopen(path, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
    int rc = DM_OK, err = 0;
    if (!in) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (!out) {
        rc = DM_ERR(DM_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        fclose(in);
        return rc;
    }
    char buf[1 << 16];
    size_t k;
    while (!err && (k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k) err = errno ? errno : EIO;
    if (!err && ferror(in)) rc = DM_ERR(DM_EIO, "cannot read '%s'", path);
    fclose(in);
    if (fclose(out) != 0 && !err) err = errno ? errno : EIO;
    if (err) rc = io_error(__FILE__, __LINE__, err, tmp, "copy the file for update", NULL);
    return rc;
}

int h5_open_update(par_ctx *ctx, const char *path, h5file *f)
{
    int rc = part_init(ctx, path, 4, 65536, f);
    /* the copy is edited and renamed over the original at h5_commit() */
    if (!rc && ctx->rank == 0) {
        errno = 0;
        rc = copy_file(path, f->tmp);
    }
    rc = par_agree(ctx, rc);
    hid_t id = -1;
    if (!rc) {
        g_io_err = 0;
        hid_t fapl = fapl_mpio(ctx);
        id = H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
        if (id < 0) rc = h5fail(__FILE__, __LINE__, "open file for update", f->tmp, f->tmp, path);
        H5Pclose(fapl);
        rc = par_agree(ctx, rc);
    }
    return part_opened(f, id, rc);
}

void h5_close(h5file *f)
{
    if (f->id >= 0) H5Fclose((hid_t)f->id);
    f->id = -1;
    h5file_free(f);
}

/* the one-rank context of h5_open_local(): its files keep a pointer to it */
static MPI_Comm g_self_comm;
static par_ctx g_local_ctx;

int h5_open_local(par_ctx *ctx, const char *path, h5file *f)
{
    g_self_comm = MPI_COMM_SELF;
    g_local_ctx = *ctx;
    g_local_ctx.rank = 0;
    g_local_ctx.size = 1;
    g_local_ctx.local_rank = 0;
    g_local_ctx.local_size = 1;
    g_local_ctx.comm = &g_self_comm;
    g_local_ctx.node_comm = &g_self_comm;
    return h5_open(&g_local_ctx, path, f);
}

static hid_t dxpl_coll(void)
{
    hid_t x = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE);
    return x;
}

/* Selects nothing of the file space and returns a memory space (of `rank` dimensions, cols columns)
 * that selects nothing either: a rank with nothing to transfer still takes part in the collective. */
static hid_t select_none(hid_t space, int rank, hsize_t cols)
{
    H5Sselect_none(space);
    hsize_t one[2] = {1, cols ? cols : 1};
    hid_t mspace = H5Screate_simple(rank, one, NULL);
    H5Sselect_none(mspace);
    return mspace;
}

/* Selects rows row0..row0+nrows of the file space of a (rows, cols) dataset (cols = 0: 1-D, rank 1)
 * and returns the memory space of those rows. */
static hid_t select_rows(hid_t space, int rank, hsize_t row0, hsize_t nrows, hsize_t cols)
{
    if (nrows == 0) return select_none(space, rank, cols);
    hsize_t start[2] = {row0, 0}, count[2] = {nrows, cols};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    return H5Screate_simple(rank, count, NULL);
}

int h5_exists(h5file *f, const char *name)
{
    /* check each path component, as H5Lexists requires */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            htri_t e = H5Lexists((hid_t)f->id, buf, H5P_DEFAULT);
            if (e <= 0) {
                H5Eclear2(H5E_DEFAULT);
                return 0;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    return 1;
}

typedef struct {
    h5_dataset_info *v;
    size_t n;
    int rc;
} list_ctx;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    list_ctx *l = data;
    (void)info;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    if (H5Iget_type(o) == H5I_DATASET) {
        hid_t sp = H5Dget_space(o), t = H5Dget_type(o);
        h5_dataset_info *nv = dm_realloc_at(l->v, l->n + 1, sizeof *nv, __FILE__, __LINE__);
        char *nm = nv ? xstrdup(name) : NULL;
        if (nv) l->v = nv;
        if (!nm) l->rc = DM_ENOMEM;
        else l->v[l->n++] = (h5_dataset_info){nm, H5Sget_simple_extent_ndims(sp), H5Tget_class(t) == H5T_FLOAT};
        H5Sclose(sp);
        H5Tclose(t);
    }
    H5Oclose(o);
    return l->rc ? -1 : 0;
}

int h5_list_datasets(h5file *f, h5_dataset_info **list, size_t *n)
{
    list_ctx l = {0};
    int rc = DM_OK;
    if (H5Lvisit((hid_t)f->id, H5_INDEX_NAME, H5_ITER_INC, list_cb, &l) < 0) rc = l.rc ? l.rc : H5FAIL("list the datasets of", "/");
    H5Eclear2(H5E_DEFAULT);
    if (rc) {
        h5_dataset_info_free(l.v, l.n);
        l.v = NULL;
        l.n = 0;
    }
    *list = l.v;
    *n = l.n;
    return rc;
}

void h5_dataset_info_free(h5_dataset_info *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) free(list[i].name);
    free(list);
}

/* Creates dataset `name` (groups along its path as needed) of file type ftype and shape dims,
 * chunked when chunk != NULL and then deflated at f->compress, after a byte shuffle when shuffle;
 * *space is its file dataspace (the caller closes it, also on failure). */
static int create_dataset(h5file *f, const char *name, hid_t ftype, int rank, const hsize_t *dims, const hsize_t *chunk,
                          int shuffle, hid_t *space, hid_t *d)
{
    *space = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) {
        H5Pset_chunk(dcpl, rank, chunk);
        if (f->compress > 0) {
            if (shuffle) H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, (unsigned)f->compress);
        }
    }
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    *d = H5Dcreate2((hid_t)f->id, name, ftype, *space, lcpl, dcpl, H5P_DEFAULT);
    int rc = *d < 0 ? H5FAIL("create dataset", name) : DM_OK; /* before other calls clear HDF5's error stack */
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    return rc;
}

int h5_write_rows(h5file *f, const char *name, h5type t, size_t global_rows, size_t cols, size_t row0,
                  size_t nrows, const void *data)
{
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {global_rows, cols}, chunk[2] = {0, cols};
    if (global_rows > 0) {
        size_t rowbytes = h5_type_size(t) * (cols ? cols : 1);
        size_t cr = f->chunk_rows;
        size_t maxr = ((size_t)4 << 20) / rowbytes;
        if (maxr < 1) maxr = 1;
        if (cr > maxr) cr = maxr;
        if (cr > global_rows) cr = global_rows;
        chunk[0] = cr;
    }
    hid_t space, d;
    int rc = create_dataset(f, name, file_type(t), rank, dims, global_rows > 0 ? chunk : NULL, 1, &space, &d);
    if (rc) {
        H5Sclose(space);
        return par_agree(f->ctx, rc);
    }
    hid_t mspace = select_rows(space, rank, row0, nrows, cols);
    hid_t x = dxpl_coll();
    herr_t e = global_rows > 0 ? H5Dwrite(d, mem_type(t), mspace, space, x, data) : 0;
    if (e < 0) rc = H5FAIL("write dataset", name);
    H5Pclose(x);
    H5Sclose(mspace);
    H5Sclose(space);
    if (H5Dclose(d) < 0 && !rc) rc = H5FAIL("write dataset", name);
    /* the ranks agree before the next collective call (the I/O layer above has already made a
       failed transfer fail everywhere; this covers HDF5 failing on one rank for any other reason) */
    return par_agree(f->ctx, rc);
}

int h5_write_all(h5file *f, const char *name, h5type t, size_t rows, size_t cols, const void *data)
{
    int r0 = f->ctx->rank == 0;
    return h5_write_rows(f, name, t, rows, cols, 0, r0 ? rows : 0, data);
}

static size_t blocks_len(const h5_blocks *b, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += b[i].count * b[i].block;
    return k;
}

int h5_write_blocks_f32(h5file *f, const char *name, size_t rows, size_t cols, const size_t chunk[2], const h5_blocks *rsel,
                        size_t nr, const h5_blocks *csel, size_t nc, const float *data)
{
    hsize_t dims[2] = {rows, cols}, ch[2] = {chunk[0], chunk[1]};
    hid_t space, d;
    int rc = create_dataset(f, name, H5T_IEEE_F32LE, 2, dims, ch, 0, &space, &d);
    if (rc) {
        H5Sclose(space);
        return par_agree(f->ctx, rc);
    }
    /* the file selection: the union of (row pattern) x (column pattern); HDF5 pairs its points in
       row-major order with the memory array, which is the local row-major order */
    size_t lr = blocks_len(rsel, nr), lc = blocks_len(csel, nc);
    hid_t mspace;
    if (lr * lc > 0) {
        for (size_t a = 0; a < nr; a++)
            for (size_t b = 0; b < nc; b++) {
                hsize_t st[2] = {rsel[a].start, csel[b].start}, sd[2] = {rsel[a].stride, csel[b].stride};
                hsize_t ct[2] = {rsel[a].count, csel[b].count}, bl[2] = {rsel[a].block, csel[b].block};
                H5Sselect_hyperslab(space, a || b ? H5S_SELECT_OR : H5S_SELECT_SET, st, sd, ct, bl);
            }
        hsize_t md[2] = {lr, lc};
        mspace = H5Screate_simple(2, md, NULL);
        hssize_t npts = H5Sget_select_npoints(space);
        if (npts != (hssize_t)(lr * lc))
            rc = DM_ERR(DM_EINTERNAL, "'%s': the blocks select %lld entries, expected %zu (overlapping patterns?)", name,
                        (long long)npts, lr * lc);
    } else
        mspace = select_none(space, 2, 1);
    rc = par_agree(f->ctx, rc); /* the write is collective */
    if (!rc) {
        hid_t x = dxpl_coll();
        if (H5Dwrite(d, H5T_NATIVE_FLOAT, mspace, space, x, data) < 0) rc = H5FAIL("write dataset", name);
        H5Pclose(x);
    }
    H5Sclose(mspace);
    H5Sclose(space);
    if (H5Dclose(d) < 0 && !rc) rc = H5FAIL("write dataset", name);
    return par_agree(f->ctx, rc);
}

int h5_shape(h5file *f, const char *name, size_t *rows, size_t *cols, int *exists)
{
    *rows = *cols = 0;
    if (!h5_exists(f, name)) {
        if (exists) {
            *exists = 0;
            return DM_OK;
        }
        DM_ERR(DM_EFORMAT, "'%s' has no dataset '%s'", f->tmp ? f->tmp : f->path, name);
        DM_HINT("the file may come from an older dynmm or another stage; run `dynmm info %s`", f->path);
        return DM_EFORMAT;
    }
    if (exists) *exists = 1;
    hid_t d = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (d < 0) return H5FAIL("open dataset", name);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int r = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    H5Dclose(d);
    if (r < 1 || r > 2) return DM_ERR(DM_EFORMAT, "dataset '%s' in '%s' has rank %d, expected 1 or 2", name, f->path, r);
    *rows = dims[0];
    *cols = r == 2 ? dims[1] : 0;
    return DM_OK;
}

int h5_read_rows(h5file *f, const char *name, h5type t, size_t row0, size_t nrows, void *data)
{
    size_t rows, cols;
    DM_CALL(h5_shape(f, name, &rows, &cols, NULL));
    if (row0 + nrows > rows)
        return DM_ERR(DM_EFORMAT, "dataset '%s' in '%s' has %zu rows, asked for rows %zu..%zu", name, f->path, rows,
                      row0, row0 + nrows);
    hid_t d = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (d < 0) return H5FAIL("open dataset", name);
    int rank = cols ? 2 : 1;
    hid_t space = H5Dget_space(d);
    hid_t mspace = select_rows(space, rank, row0, nrows, cols);
    hid_t x = dxpl_coll();
    herr_t e = rows > 0 ? H5Dread(d, mem_type(t), mspace, space, x, data) : 0;
    H5Pclose(x);
    H5Sclose(mspace);
    H5Sclose(space);
    H5Dclose(d);
    if (e < 0) return H5FAIL("read dataset", name);
    return DM_OK;
}

int h5_read_all(h5file *f, const char *name, h5type t, void **data, size_t *rows, size_t *cols)
{
    size_t r, c;
    DM_CALL(h5_shape(f, name, &r, &c, NULL));
    char *buf = dm_calloc_at(r * (c ? c : 1) + 1, h5_type_size(t), __FILE__, __LINE__);
    if (!buf) return DM_ENOMEM;
    int rc = h5_read_rows(f, name, t, 0, r, buf);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    if (rows) *rows = r;
    if (cols) *cols = c;
    return DM_OK;
}

int h5_read_file_f32(par_ctx *ctx, const char *path, const char *name, float **data, size_t *rows, size_t *cols)
{
    h5file f;
    void *p = NULL;
    *data = NULL;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    int rc = h5_read_all(&f, name, H5_F32, &p, rows, cols);
    h5_close(&f);
    *data = p;
    return par_agree(ctx, rc);
}

int h5_write_strtab(h5file *f, const char *name, const dm_strtab *t, size_t row0, size_t global_n)
{
    char nm[512];
    int64_t nchars = t->n ? t->offsets[t->n] : 0, before = 0, total = 0;
    DM_CALL(par_exscan_i64(f->ctx, nchars, &before, &total));
    snprintf(nm, sizeof nm, "%s/chars", name);
    DM_CALL(h5_write_rows(f, nm, H5_U8, (size_t)total, 0, (size_t)before, (size_t)nchars, t->chars));
    int last = f->ctx->rank == f->ctx->size - 1;
    size_t n = t->n + (last ? 1 : 0);
    int64_t *off = dm_calloc_at(n + 1, sizeof *off, __FILE__, __LINE__);
    int rc = par_agree(f->ctx, off ? DM_OK : DM_ENOMEM); /* the next write is collective */
    if (rc) {
        free(off);
        return rc;
    }
    for (size_t i = 0; i < t->n; i++) off[i] = t->offsets[i] + before;
    if (last) off[t->n] = total;
    snprintf(nm, sizeof nm, "%s/offsets", name);
    rc = h5_write_rows(f, nm, H5_I64, global_n + 1, 0, row0, n, off);
    free(off);
    return rc;
}

int h5_read_strtab(h5file *f, const char *name, dm_strtab *out)
{
    char nm[512];
    memset(out, 0, sizeof *out);
    size_t nc, c, no;
    void *chars = NULL, *off = NULL;
    snprintf(nm, sizeof nm, "%s/chars", name);
    DM_CALL(h5_read_all(f, nm, H5_U8, &chars, &nc, &c));
    snprintf(nm, sizeof nm, "%s/offsets", name);
    int rc = h5_read_all(f, nm, H5_I64, &off, &no, &c);
    if (rc) {
        free(chars);
        return rc;
    }
    int64_t *o = off;
    if (no < 1 || o[0] != 0 || o[no - 1] != (int64_t)nc) {
        free(chars);
        free(off);
        return DM_ERR(DM_EFORMAT, "string table '%s' in '%s' is inconsistent", name, f->path);
    }
    /* chars are not NUL-terminated per string; keep them as one block with a final NUL */
    char *cc = realloc(chars, nc + 1);
    if (!cc) {
        free(chars);
        free(off);
        return DM_ERR(DM_ENOMEM, "cannot allocate %zu bytes", nc + 1);
    }
    cc[nc] = '\0';
    out->chars = cc;
    out->offsets = o;
    out->n = no - 1;
    out->cap_n = no;
    out->cap_chars = nc + 1;
    return DM_OK;
}

int h5_read_strv(h5file *f, const char *name, char ***v, size_t *n)
{
    char nm[800];
    void *chars = NULL, *off = NULL;
    size_t nc, no, c;
    snprintf(nm, sizeof nm, "%s/chars", name);
    DM_CALL(h5_read_all(f, nm, H5_U8, &chars, &nc, &c));
    snprintf(nm, sizeof nm, "%s/offsets", name);
    int rc = h5_read_all(f, nm, H5_I64, &off, &no, &c);
    int64_t *o = off;
    if (!rc && no >= 1) {
        o[0] = 0;
        o[no - 1] = (int64_t)nc;
    }
    for (size_t i = 0; !rc && i + 1 < no; i++)
        if (o[i] > o[i + 1]) rc = DM_ERR(DM_EFORMAT, "string table '%s' in '%s' is inconsistent", name, f->path);
    for (size_t i = 0; !rc && i + 1 < no; i++) {
        char *s = dm_str_ndup((const char *)chars + o[i], (size_t)(o[i + 1] - o[i]));
        rc = s ? dm_strv_push(v, n, s) : DM_ENOMEM;
        free(s);
    }
    free(chars);
    free(off);
    return rc;
}

static hid_t open_obj(h5file *f, const char *obj)
{
    return H5Oopen((hid_t)f->id, obj, H5P_DEFAULT);
}

static int put_attr(h5file *f, const char *obj, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                    const void *val)
{
    hid_t o = open_obj(f, obj);
    if (o < 0) return par_agree(f->ctx, H5FAIL("open object", obj));
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t a = H5Acreate2(o, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, val);
    int rc = e < 0 ? H5FAIL("write attribute", name) : DM_OK;
    if (a >= 0 && H5Aclose(a) < 0 && !rc) rc = H5FAIL("write attribute", name);
    if (H5Oclose(o) < 0 && !rc) rc = H5FAIL("write attribute", name);
    return par_agree(f->ctx, rc);
}

int h5_attr_str(h5file *f, const char *obj, const char *name, const char *val)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    size_t n = strlen(val);
    H5Tset_size(t, n ? n : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = put_attr(f, obj, name, t, t, s, n ? val : "");
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int h5_attr_i64(h5file *f, const char *obj, const char *name, int64_t val)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = put_attr(f, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, s, &val);
    H5Sclose(s);
    return rc;
}

int h5_attr_f64(h5file *f, const char *obj, const char *name, double val)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = put_attr(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s, &val);
    H5Sclose(s);
    return rc;
}

int h5_attr_f64s(h5file *f, const char *obj, const char *name, const double *v, size_t n)
{
    hsize_t d = n;
    hid_t s = H5Screate_simple(1, &d, NULL);
    int rc = put_attr(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s, v);
    H5Sclose(s);
    return rc;
}

int h5_has_attr(h5file *f, const char *obj, const char *name)
{
    if (strcmp(obj, "/") && !h5_exists(f, obj)) return 0;
    hid_t o = open_obj(f, obj);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    htri_t e = H5Aexists(o, name);
    H5Oclose(o);
    return e > 0;
}

static int get_attr(h5file *f, const char *obj, const char *name, hid_t *o, hid_t *a)
{
    *o = open_obj(f, obj);
    if (*o < 0) return H5FAIL("open object", obj);
    if (H5Aexists(*o, name) <= 0) {
        H5Oclose(*o);
        DM_ERR(DM_EFORMAT, "'%s' has no attribute '%s' on '%s'", f->path, name, obj);
        return DM_EFORMAT;
    }
    *a = H5Aopen(*o, name, H5P_DEFAULT);
    if (*a < 0) {
        H5Oclose(*o);
        return H5FAIL("open attribute", name);
    }
    return DM_OK;
}

int h5_get_attr_str(h5file *f, const char *obj, const char *name, char **out)
{
    hid_t o = -1, a = -1;
    DM_CALL(get_attr(f, obj, name, &o, &a));
    hid_t t = H5Aget_type(a);
    int rc = DM_OK;
    if (H5Tget_class(t) != H5T_STRING) rc = DM_ERR(DM_EFORMAT, "attribute '%s' of '%s' is not a string", name, f->path);
    else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t)); /* h5py writes UTF-8 variable-length strings */
        if (H5Aread(a, mt, &s) < 0) rc = H5FAIL("read attribute", name);
        else {
            *out = xstrdup(s ? s : "");
            if (!*out) rc = DM_ENOMEM;
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        char *s = dm_calloc_at(n + 1, 1, __FILE__, __LINE__);
        if (!s) rc = DM_ENOMEM;
        else if (H5Aread(a, t, s) < 0) {
            free(s);
            rc = H5FAIL("read attribute", name);
        } else {
            s[n] = '\0';
            *out = s;
        }
    }
    H5Tclose(t);
    H5Aclose(a);
    H5Oclose(o);
    return rc;
}

/* A scalar attribute read as the native type mt into out. */
static int get_attr_scalar(h5file *f, const char *obj, const char *name, hid_t mt, void *out)
{
    hid_t o = -1, a = -1;
    DM_CALL(get_attr(f, obj, name, &o, &a));
    herr_t e = H5Aread(a, mt, out);
    H5Aclose(a);
    H5Oclose(o);
    return e < 0 ? H5FAIL("read attribute", name) : DM_OK;
}

int h5_get_attr_i64(h5file *f, const char *obj, const char *name, int64_t *out)
{
    return get_attr_scalar(f, obj, name, H5T_NATIVE_INT64, out);
}

int h5_get_attr_f64(h5file *f, const char *obj, const char *name, double *out)
{
    return get_attr_scalar(f, obj, name, H5T_NATIVE_DOUBLE, out);
}

int h5_get_attr_f64s(h5file *f, const char *obj, const char *name, double *out, size_t n, int *found)
{
    if (found) {
        *found = 0;
        if (!h5_has_attr(f, obj, name)) return DM_OK;
    }
    hid_t o = -1, a = -1;
    DM_CALL(get_attr(f, obj, name, &o, &a));
    hid_t sp = H5Aget_space(a);
    hssize_t k = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    int rc = DM_OK;
    if (k != (hssize_t)n) {
        if (!found)
            rc = DM_ERR(DM_EFORMAT, "attribute '%s' of '%s' in '%s' holds %lld values, expected %zu", name, obj, f->path,
                        (long long)k, n);
    } else if (H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0)
        rc = H5FAIL("read attribute", name);
    else if (found)
        *found = 1;
    H5Aclose(a);
    H5Oclose(o);
    return rc;
}

int h5_write_provenance(h5file *f, const char *format, int version, const char *stage, const dm_cfg *cfg,
                        const char *stage_hash)
{
    DM_CALL(h5_attr_str(f, "/", "format", format));
    DM_CALL(h5_attr_i64(f, "/", "format_version", version));
    DM_CALL(h5_attr_str(f, "/", "stage", stage));
    DM_CALL(h5_attr_str(f, "/", "code_version", DM_VERSION));
    DM_CALL(h5_attr_str(f, "/", "build_flags", DM_CFLAGS));
    char lib[256];
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    snprintf(lib, sizeof lib, "HDF5 %u.%u.%u; %s", maj, min, rel, par_mpi_library());
    DM_CALL(h5_attr_str(f, "/", "libraries", lib));
    DM_CALL(h5_attr_i64(f, "/", "ranks", f->ctx->size));
    DM_CALL(h5_attr_i64(f, "/", "threads_per_rank", f->ctx->threads));
    /* one timestamp for all ranks (attribute values must agree) */
    int64_t now = (int64_t)time(NULL);
    DM_CALL(par_bcast(f->ctx, &now, sizeof now, 0));
    char ts[64];
    time_t tt = (time_t)now;
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
    DM_CALL(h5_attr_str(f, "/", "created_utc", ts));
    if (cfg) {
        /* collective from here: a local failure is agreed before the next attribute */
        dm_buf b = {0};
        int rc = par_agree(f->ctx, dm_cfg_serialize(cfg, NULL, &b));
        if (!rc) rc = h5_attr_str(f, "/", "config", b.data ? b.data : "");
        dm_buf_free(&b);
        DM_CALL(rc);
        char h[65];
        DM_CALL(par_agree(f->ctx, dm_cfg_hash(cfg, NULL, h)));
        DM_CALL(h5_attr_str(f, "/", "config_hash", h));
        DM_CALL(h5_attr_i64(f, "/", "seed", (int64_t)dm_cfg_int(cfg, "run.seed")));
    }
    if (stage_hash) DM_CALL(h5_attr_str(f, "/", "stage_hash", stage_hash));
    return DM_OK;
}

int h5_check_format(h5file *f, const char *format, int max_version)
{
    char *fmt = NULL;
    if (!h5_has_attr(f, "/", "format")) {
        DM_ERR(DM_EFORMAT, "'%s' is not a dynmm file (no 'format' attribute)", f->path);
        return DM_EFORMAT;
    }
    DM_CALL(h5_get_attr_str(f, "/", "format", &fmt));
    int64_t v = 0;
    int rc = strcmp(fmt, format) ? DM_EFORMAT : DM_OK;
    if (rc) {
        DM_ERR(DM_EFORMAT, "'%s' is a %s file, expected %s", f->path, fmt, format);
        free(fmt);
        return rc;
    }
    free(fmt);
    DM_CALL(h5_get_attr_i64(f, "/", "format_version", &v));
    if (v > max_version || v < 1) {
        DM_ERR(DM_EFORMAT, "'%s' is %s version %lld; this dynmm reads versions up to %d", f->path, format,
               (long long)v, max_version);
        DM_HINT("rebuild dynmm from a newer version, or regenerate the file with this one");
        return DM_EFORMAT;
    }
    return DM_OK;
}

int h5_open_checkpoint(par_ctx *ctx, const char *path, const char *format, const char *hash, h5file *f, int *found)
{
    *found = 0;
    int64_t ex = access(path, F_OK) == 0;
    DM_CALL(par_allreduce_min_i64(ctx, &ex, 1));
    if (!ex) return DM_OK;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, f)));
    char *h = NULL;
    int rc = h5_check_format(f, format, 1);
    if (!rc) rc = h5_get_attr_str(f, "/", "stage_hash", &h);
    rc = par_agree(ctx, rc);
    if (rc || strcmp(h, hash)) {
        if (!rc) dm_warn("%s was made with other settings; starting afresh", path);
        dm_error_clear();
        free(h);
        h5_close(f);
        return DM_OK;
    }
    free(h);
    *found = 1;
    return DM_OK;
}
