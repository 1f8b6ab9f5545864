/* h5io.h: parallel HDF5 files of dynmm.
 *
 * Every stage writes one file collectively (MPI-IO driver, collective transfers, chunked and
 * deflate-compressed datasets). A file is created under a temporary name (<path>.part) and renamed
 * by h5_commit() only when complete, so an interrupted or failed stage never leaves a file that
 * looks finished; h5_discard() removes the partial file.
 *
 * Datasets are row blocks: global shape (rows) or (rows, cols); each rank writes or reads its own
 * contiguous block [row0, row0 + nrows). All calls are collective over the file's ranks, including
 * for ranks whose block is empty. Groups along a dataset's path are created as needed. Attributes
 * are written by all ranks with identical values (HDF5 requires metadata calls to be collective).
 *
 * Failures (a full disk above all) are agreed by every rank of the file before its next collective
 * call, so all ranks leave together with one message that names the file ("no space left on device
 * writing 'run/cf.h5' (cannot write dataset '/sasrec/e_cf')") and none waits in HDF5: h5io.c defines
 * the MPI-IO functions parallel HDF5 calls (MPI_File_open, _write_at_all, _set_size, ...; they call
 * the PMPI_ ones) and agrees on the outcome of each collective one, because HDF5 itself does not.
 * Every write call (h5_write_*, h5_attr_*, h5_create, h5_commit) returns the same code on every
 * rank. A file that cannot be finished is closed without further writes and its .part removed, by
 * h5_discard() or, when the failure comes at the close, by h5_commit() itself; h5_create() leaves
 * nothing behind when it fails. A damaged input is refused by h5_open() with what is wrong with it
 * (empty, not HDF5, truncated to N of M bytes).
 *
 * Text is stored as a string table: <name>/chars (uint8, the strings back to back) and
 * <name>/offsets (int64, n + 1), which parallel HDF5 can write in row blocks and h5py reads easily.
 */
#ifndef DM_H5IO_H
#define DM_H5IO_H

#include "par.h"

#include "../src/config/config.h"
#include "../src/core/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { H5_F32, H5_F64, H5_I32, H5_I64, H5_U8, H5_I8 } h5type;

typedef struct {
    int64_t id;   /* hid_t */
    char *path;   /* final path */
    char *tmp;    /* temporary path while writing, NULL for files opened for reading */
    par_ctx *ctx;
    int compress;
    size_t chunk_rows;
} h5file;

int h5_create(par_ctx *ctx, const char *path, int compress, size_t chunk_rows, h5file *f);
int h5_commit(h5file *f);
void h5_discard(h5file *f);
/* Ends a file being written by the outcome rc of its writes: agreed over the file's ranks, then
 * h5_commit() when every rank succeeded, h5_discard() otherwise. Returns the agreed code. */
int h5_finish(h5file *f, int rc);
int h5_open(par_ctx *ctx, const char *path, h5file *f);
/* Opens an existing finished file for adding datasets (used by stages that store candidate sets in
 * the dataset file); changes are made to a copy that replaces the original at h5_commit(). */
int h5_open_update(par_ctx *ctx, const char *path, h5file *f);
void h5_close(h5file *f);
/* Opens a finished file for reading by this rank alone (over a one-rank communicator), so ranks can
 * read different files, or one rank a file the others do not, without a collective partner. Not
 * collective; every read call on f is then local too. */
int h5_open_local(par_ctx *ctx, const char *path, h5file *f);

size_t h5_type_size(h5type t);

/* Collective row-block write; cols == 0 means a 1-D dataset. */
int h5_write_rows(h5file *f, const char *name, h5type t, size_t global_rows, size_t cols, size_t row0,
                  size_t nrows, const void *data);
/* Every rank holds the same data; written once. */
int h5_write_all(h5file *f, const char *name, h5type t, size_t rows, size_t cols, const void *data);
/* Indices start + i * stride + j for i < count, j < block: the rows (or columns) of a block-cyclic
 * distribution that one process owns, a pattern per run of equal blocks. */
typedef struct {
    size_t start, stride, count, block;
} h5_blocks;
/* Collective write of a (rows, cols) float32 dataset, chunked (chunk[0], chunk[1]) and deflated at
 * f->compress, of which this rank holds the entries at (the rows of rsel) x (the columns of csel):
 * data is (local rows, local columns) row-major, each the sum of count * block over the patterns,
 * rows and columns in increasing order; the patterns of a dimension must not overlap. The layout of
 * a block-cyclic matrix (grid.h). */
int h5_write_blocks_f32(h5file *f, const char *name, size_t rows, size_t cols, const size_t chunk[2], const h5_blocks *rsel,
                        size_t nr, const h5_blocks *csel, size_t nc, const float *data);
/* Collective row-block read into caller memory (nrows * cols elements). */
int h5_read_rows(h5file *f, const char *name, h5type t, size_t row0, size_t nrows, void *data);
/* Every rank reads the whole dataset into *data (malloc'd). */
int h5_read_all(h5file *f, const char *name, h5type t, void **data, size_t *rows, size_t *cols);
/* A whole f32 dataset from the file at path (opened and closed here); collective, the error agreed
 * on all ranks; *data = NULL on error. */
int h5_read_file_f32(par_ctx *ctx, const char *path, const char *name, float **data, size_t *rows, size_t *cols);
/* Shape of a dataset; *exists = 0 (and no error) when it is absent. */
int h5_shape(h5file *f, const char *name, size_t *rows, size_t *cols, int *exists);
int h5_exists(h5file *f, const char *name);
/* A dataset of a file, as h5_list_datasets() lists them. */
typedef struct {
    char *name;   /* its path without the leading '/': "test/full/sasrec" */
    int rank;     /* number of dimensions */
    int is_float; /* a floating-point element type */
} h5_dataset_info;
/* Every dataset of the file, depth-first in name order (the order of H5Lvisit by name); *list
 * (*n entries) is malloc'd, free it with h5_dataset_info_free(). Objects that cannot be opened are
 * left out. */
int h5_list_datasets(h5file *f, h5_dataset_info **list, size_t *n);
void h5_dataset_info_free(h5_dataset_info *list, size_t n);

int h5_write_strtab(h5file *f, const char *name, const dm_strtab *local, size_t row0, size_t global_n);
int h5_read_strtab(h5file *f, const char *name, dm_strtab *out);
/* The string table `name` appended to a string vector (*v, *n: strv.h). Files written by `dynmm
 * eval` at several ranks before that was fixed carry the final offset in the first row (the last
 * rank wrote its block at row 0); they still read, since offsets[0] = 0 and offsets[n] = #chars by
 * definition. */
int h5_read_strv(h5file *f, const char *name, char ***v, size_t *n);

int h5_attr_str(h5file *f, const char *obj, const char *name, const char *val);
int h5_attr_i64(h5file *f, const char *obj, const char *name, int64_t val);
int h5_attr_f64(h5file *f, const char *obj, const char *name, double val);
int h5_attr_f64s(h5file *f, const char *obj, const char *name, const double *v, size_t n);
int h5_get_attr_str(h5file *f, const char *obj, const char *name, char **out);
int h5_get_attr_i64(h5file *f, const char *obj, const char *name, int64_t *out);
int h5_get_attr_f64(h5file *f, const char *obj, const char *name, double *out);
/* A float64 array attribute of exactly n values into out. With found != NULL, an attribute that is
 * absent or holds another number of values sets *found = 0 (and no error); else it is an error. */
int h5_get_attr_f64s(h5file *f, const char *obj, const char *name, double *out, size_t n, int *found);
int h5_has_attr(h5file *f, const char *obj, const char *name);

/* Writes the root attributes every dynmm file carries: format, format_version, stage, code
 * version, build flags, library versions, rank count, seed, the resolved config and its hash
 * (stage_hash: the hash of the groups the stage depends on, used to skip finished stages). */
int h5_write_provenance(h5file *f, const char *format, int version, const char *stage, const dm_cfg *cfg,
                        const char *stage_hash);
/* A stage's checkpoint at path, if there is one of this format written under stage hash `hash`:
 * *found = 1 and f open (the caller reads and closes it). No file: *found = 0. A checkpoint of other
 * settings: a warning, *found = 0, and the run starts afresh. Collective. */
int h5_open_checkpoint(par_ctx *ctx, const char *path, const char *format, const char *hash, h5file *f, int *found);
/* Refuses a file whose root `format` differs or whose version is newer than `max_version`. */
int h5_check_format(h5file *f, const char *format, int max_version);

#endif
