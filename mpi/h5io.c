/* h5io.c: parallel HDF5 helpers, see h5io.h. */
#include "h5io.h"

#include "../src/core/err.h"
#include "../src/core/log.h"

#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <unistd.h>

#ifndef DM_VERSION
#define DM_VERSION "unknown"
#endif
#ifndef DM_CFLAGS
#define DM_CFLAGS ""
#endif

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    char *out = data;
    if (n == 0) snprintf(out, 512, "%s (in %s)", e->desc, e->func_name);
    return 0;
}

static int h5fail(const char *file, int line, const char *what, const char *name, const char *path)
{
    char detail[512] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, detail);
    H5Eclear2(H5E_DEFAULT);
    return dm_error_at(file, line, DM_EHDF5, "hdf5: cannot %s '%s' in '%s'%s%s", what, name ? name : "/",
                       path ? path : "?", detail[0] ? ": " : "", detail);
}
#define H5FAIL(what, name) h5fail(__FILE__, __LINE__, what, name, f->tmp ? f->tmp : f->path)

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

int h5_create(par_ctx *ctx, const char *path, int compress, size_t chunk_rows, h5file *f)
{
    quiet();
    memset(f, 0, sizeof *f);
    f->id = -1;
    f->ctx = ctx;
    f->compress = compress;
    f->chunk_rows = chunk_rows ? chunk_rows : 65536;
    f->path = xstrdup(path);
    if (!f->path) return DM_ENOMEM;
    size_t n = strlen(path) + 8;
    f->tmp = dm_calloc_at(n, 1, __FILE__, __LINE__);
    if (!f->tmp) return DM_ENOMEM;
    snprintf(f->tmp, n, "%s.part", path);
    hid_t fapl = fapl_mpio(ctx);
    hid_t id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (id < 0) {
        h5fail(__FILE__, __LINE__, "create file", f->tmp, f->tmp);
        DM_HINT("check that the directory of '%s' exists and is writable by every rank (a shared filesystem)", path);
        return DM_EHDF5;
    }
    f->id = id;
    return DM_OK;
}

int h5_commit(h5file *f)
{
    int rc = DM_OK;
    if (f->id >= 0 && H5Fclose((hid_t)f->id) < 0) rc = H5FAIL("close", "/");
    f->id = -1;
    rc = par_agree(f->ctx, rc);
    if (!rc && f->ctx->rank == 0 && rename(f->tmp, f->path) != 0)
        rc = DM_ERR(DM_EIO, "cannot rename '%s' to '%s': %s", f->tmp, f->path, strerror(errno));
    rc = par_agree(f->ctx, rc);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    return rc;
}

void h5_discard(h5file *f)
{
    if (f->id >= 0) H5Fclose((hid_t)f->id);
    f->id = -1;
    if (f->tmp && f->ctx && f->ctx->rank == 0) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
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
    f->path = xstrdup(path);
    if (!f->path) return DM_ENOMEM;
    if (H5Fis_hdf5(path) <= 0) {
        DM_ERR(DM_EFORMAT, "'%s' is not an HDF5 file", path);
        return DM_EFORMAT;
    }
    hid_t fapl = fapl_mpio(ctx);
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (id < 0) return h5fail(__FILE__, __LINE__, "open file", path, path);
    f->id = id;
    return DM_OK;
}

int h5_open_update(par_ctx *ctx, const char *path, h5file *f)
{
    quiet();
    memset(f, 0, sizeof *f);
    f->id = -1;
    f->ctx = ctx;
    f->compress = 4;
    f->chunk_rows = 65536;
    f->path = xstrdup(path);
    size_t n = strlen(path) + 8;
    f->tmp = dm_calloc_at(n, 1, __FILE__, __LINE__);
    if (!f->path || !f->tmp) return DM_ENOMEM;
    snprintf(f->tmp, n, "%s.part", path);
    int rc = DM_OK;
    if (ctx->rank == 0) {
        /* copy the file byte for byte; the copy is edited and renamed over the original */
        FILE *in = fopen(path, "rb"), *out = in ? fopen(f->tmp, "wb") : NULL;
        if (!in) rc = DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
        else if (!out) rc = DM_ERR(DM_EIO, "cannot create '%s': %s", f->tmp, strerror(errno));
        else {
            char buf[1 << 16];
            size_t k;
            while ((k = fread(buf, 1, sizeof buf, in)) > 0)
                if (fwrite(buf, 1, k, out) != k) {
                    rc = DM_ERR(DM_EIO, "cannot write '%s': %s", f->tmp, strerror(errno));
                    break;
                }
        }
        if (in) fclose(in);
        if (out && fclose(out) != 0 && !rc) rc = DM_ERR(DM_EIO, "cannot write '%s'", f->tmp);
    }
    DM_CALL(par_agree(ctx, rc));
    hid_t fapl = fapl_mpio(ctx);
    hid_t id = H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    rc = id < 0 ? h5fail(__FILE__, __LINE__, "open file for update", f->tmp, f->tmp) : DM_OK;
    DM_CALL(par_agree(ctx, rc));
    f->id = id;
    return DM_OK;
}

void h5_close(h5file *f)
{
    if (f->id >= 0) H5Fclose((hid_t)f->id);
    f->id = -1;
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
}

static hid_t dxpl_coll(void)
{
    hid_t x = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE);
    return x;
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

int h5_write_rows(h5file *f, const char *name, h5type t, size_t global_rows, size_t cols, size_t row0,
                  size_t nrows, const void *data)
{
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {global_rows, cols};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    size_t es = h5_type_size(t);
    if (global_rows > 0) {
        size_t rowbytes = es * (cols ? cols : 1);
        size_t cr = f->chunk_rows;
        size_t maxr = ((size_t)4 << 20) / rowbytes;
        if (maxr < 1) maxr = 1;
        if (cr > maxr) cr = maxr;
        if (cr > global_rows) cr = global_rows;
        hsize_t chunk[2] = {cr, cols};
        H5Pset_chunk(dcpl, rank, chunk);
        if (f->compress > 0) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, (unsigned)f->compress);
        }
    }
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t d = H5Dcreate2((hid_t)f->id, name, file_type(t), space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    if (d < 0) {
        H5Sclose(space);
        return H5FAIL("create dataset", name);
    }
    hsize_t start[2] = {row0, 0}, count[2] = {nrows, cols};
    hid_t mspace;
    if (nrows > 0) {
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        mspace = H5Screate_simple(rank, count, NULL);
    } else {
        H5Sselect_none(space);
        hsize_t one[2] = {1, cols ? cols : 1};
        mspace = H5Screate_simple(rank, one, NULL);
        H5Sselect_none(mspace);
    }
    hid_t x = dxpl_coll();
    herr_t e = global_rows > 0 ? H5Dwrite(d, mem_type(t), mspace, space, x, data) : 0;
    H5Pclose(x);
    H5Sclose(mspace);
    H5Sclose(space);
    H5Dclose(d);
    if (e < 0) return H5FAIL("write dataset", name);
    return DM_OK;
}

int h5_write_all(h5file *f, const char *name, h5type t, size_t rows, size_t cols, const void *data)
{
    int r0 = f->ctx->rank == 0;
    return h5_write_rows(f, name, t, rows, cols, 0, r0 ? rows : 0, data);
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
    hsize_t start[2] = {row0, 0}, count[2] = {nrows, cols};
    hid_t mspace;
    if (nrows > 0) {
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        mspace = H5Screate_simple(rank, count, NULL);
    } else {
        H5Sselect_none(space);
        hsize_t one[2] = {1, cols ? cols : 1};
        mspace = H5Screate_simple(rank, one, NULL);
        H5Sselect_none(mspace);
    }
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
    int64_t *off;
    DM_ALLOC(off, n + 1);
    for (size_t i = 0; i < t->n; i++) off[i] = t->offsets[i] + before;
    if (last) off[t->n] = total;
    snprintf(nm, sizeof nm, "%s/offsets", name);
    int rc = h5_write_rows(f, nm, H5_I64, global_n + 1, 0, row0, n, off);
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

static hid_t open_obj(h5file *f, const char *obj)
{
    return H5Oopen((hid_t)f->id, obj, H5P_DEFAULT);
}

static int put_attr(h5file *f, const char *obj, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                    const void *val)
{
    hid_t o = open_obj(f, obj);
    if (o < 0) return H5FAIL("open object", obj);
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t a = H5Acreate2(o, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, val);
    if (a >= 0) H5Aclose(a);
    H5Oclose(o);
    if (e < 0) return H5FAIL("write attribute", name);
    return DM_OK;
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

int h5_get_attr_i64(h5file *f, const char *obj, const char *name, int64_t *out)
{
    hid_t o = -1, a = -1;
    DM_CALL(get_attr(f, obj, name, &o, &a));
    herr_t e = H5Aread(a, H5T_NATIVE_INT64, out);
    H5Aclose(a);
    H5Oclose(o);
    return e < 0 ? H5FAIL("read attribute", name) : DM_OK;
}

int h5_get_attr_f64(h5file *f, const char *obj, const char *name, double *out)
{
    hid_t o = -1, a = -1;
    DM_CALL(get_attr(f, obj, name, &o, &a));
    herr_t e = H5Aread(a, H5T_NATIVE_DOUBLE, out);
    H5Aclose(a);
    H5Oclose(o);
    return e < 0 ? H5FAIL("read attribute", name) : DM_OK;
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
        dm_buf b = {0};
        DM_CALL(dm_cfg_serialize(cfg, NULL, &b));
        int rc = h5_attr_str(f, "/", "config", b.data ? b.data : "");
        dm_buf_free(&b);
        DM_CALL(rc);
        char h[65];
        DM_CALL(dm_cfg_hash(cfg, NULL, h));
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
