/* testlib.h: what the unit tests, the multi-rank tests and the benchmarks share.
 *
 * Numbers (largest magnitudes and differences, Gaussian fills, medians, a wall clock), the
 * reference files tests/reference/gen_*.py write into DM_REF_DIR (JSON manifests, raw float
 * dumps, JSON fields), and small hand-made datasets (dm_process options, a dataset viewing the
 * caller's arrays, strings of a string table).
 *
 * Checks made here count in the calling test's totals: tap.h's counters are defined in testlib.c,
 * which every test binary links (Makefile: $(BUILD)/tests/testlib.o). A failed check made here
 * names the file it was reading, so the message says which reference was wrong.
 *
 * Memory: functions returning a pointer return malloc'd memory the caller frees; tl_str returns
 * one of four rotating static buffers (valid until the fourth next call).
 */
#ifndef DM_TESTLIB_H
#define DM_TESTLIB_H

#include "../../src/core/buf.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/data/dataset.h"
#include "../../src/lm/safetensors.h"
#include "../../src/model/model.h"

#include <stddef.h>

/* ---- numbers --------------------------------------------------------------------------------- */

double tl_now(void);                                         /* monotonic seconds */
double tl_maxabs(const float *a, size_t n);                  /* max |a_i| */
double tl_maxdiff(const float *a, const float *b, size_t n); /* max |a_i - b_i| */
/* max |x_i - ref_i| against a float64 reference; *refmax (optional) = max |ref_i| */
double tl_maxdiff_ref(const float *x, const double *ref, size_t n, double *refmax);
/* x (n) = sd * N(0, 1) draws from r, in order */
void tl_randn(dm_rng *r, float *x, size_t n, double sd);
/* the same into a new buffer (at least one element, so n = 0 is not NULL) */
float *tl_randn_new(dm_rng *r, size_t n, double sd);
/* median of v (n >= 1); sorts v */
double tl_median(double *v, int n);
/* prints the pending error as `what: message` on stderr and exits 1 (benchmarks) */
void tl_die(const char *what);

/* Frees every pointer of a list: TL_FREE(a, b, c) for the buffers a test owns. */
void tl_free_list(void *const *p, size_t n);
#define TL_FREE(...) \
    tl_free_list((void *const[]){__VA_ARGS__}, sizeof((void *const[]){__VA_ARGS__}) / sizeof(void *))

/* ---- reference files ------------------------------------------------------------------------- */

/* DM_REF_DIR, or NULL when it is unset (said on stdout: PyTorch parity not checked). */
const char *tl_ref_dir(void);
/* Runs test(DM_REF_DIR), the parity test of a reference generator's dumps; when DM_REF_DIR is unset
 * only says so (tl_ref_dir). */
void tl_with_ref(void (*test)(const char *ref));

/* A manifest DM_REF_DIR/SUB/manifest.json: the directory of its raw dumps, its text and parse. */
typedef struct {
    char dir[1024];
    char *text;
    dm_jdoc doc;
    dm_json *root; /* NULL when the parse failed */
} tl_manifest;

/* Reads the manifest of tests/reference/gen_SUB.py and checks it is `format` version 1: four
 * checks (open, read, parse, format). Returns 1 with nothing to free when DM_REF_DIR is unset
 * (said on stdout, nothing checked) or the file cannot be opened (one failed check); otherwise 0,
 * and the caller frees with tl_manifest_close (root is NULL when the parse failed). */
int tl_manifest_open(tl_manifest *m, const char *sub, const char *format);
void tl_manifest_close(tl_manifest *m);

/* A manifest's case runner: one case object of the manifest, its dumps in dir; naive = 1 runs the
 * naive kernels. */
typedef void (*tl_case_fn)(const char *dir, const dm_json *cs, int naive);
/* Runs every element of the manifest's array `key` (with the fast kernels, then with the naive
 * ones when naive_too); returns how many there were (0 when root is NULL). */
int tl_each_case(const tl_manifest *m, const char *key, tl_case_fn run, int naive_too);
/* A whole parity test: opens the manifest of gen_SUB.py (tl_manifest_open's checks), runs its
 * "cases" (tl_each_case) and checks there are at least min_cases. Returns how many cases ran, or
 * -1 when the manifest was not read (DM_REF_DIR unset, or a failed check). */
int tl_parity(const char *sub, const char *format, tl_case_fn run, int naive_too, int min_cases);
/* the first element of array member k of o (NULL when o is NULL or k absent) */
const dm_json *tl_json_first(const dm_json *o, const char *k);

/* Reads and parses DM_REF_DIR/NAME (build/ref/NAME when DM_REF_DIR is unset), written by
 * tests/reference/GEN: one check (the parse), or one failed check when the file cannot be read.
 * Returns 0 (root NULL when the parse failed; free with tl_manifest_close) or 1 (nothing to free). */
int tl_ref_json(tl_manifest *m, const char *name, const char *gen);

/* The raw dump DIR/NAME+SUFFIX: NULL (said on stdout) when it cannot be read or, with want > 0,
 * does not hold exactly `want` bytes. */
void *tl_slurp(const char *dir, const char *name, const char *suffix, size_t want);
/* The same as one check: always a buffer of `bytes` (zeroed where the file was short), and a
 * failed check naming the file unless it holds exactly `bytes` bytes. */
void *tl_load(const char *dir, const char *name, const char *suffix, size_t bytes);

/* Members of a manifest object: 0 / NaN (said on stdout) when missing or of another type. */
long long tl_jint(const dm_json *o, const char *k);
double tl_jnum(const dm_json *o, const char *k);
/* element i of an array of integers: 0 (said on stdout) when missing */
long long tl_jat(const dm_json *arr, size_t i);

/* ---- safetensors references (the language models' tests) ------------------------------------ */

/* Opens ROOT/SUB/ref.safetensors, written by tests/reference/gen_SUB.py, into f and puts ROOT/SUB
 * into dir (cap bytes): 0, or 1 with the failure printed as `test`'s. */
int tl_st_open_ref(safetensors_file *f, char *dir, size_t cap, const char *root, const char *sub, const char *test);
/* Tensor `name` of the reference f as floats (a new buffer of one element more than its numel),
 * *n (optional) = its numel; exits 1 (said on stdout) when it is missing or unreadable. */
float *tl_st_get(safetensors_file *f, const char *name, size_t *n);
/* The same rounded to int (the reference stores token ids as floats). */
int *tl_st_get_int(safetensors_file *f, const char *name, size_t *n);
/* max |a_i - b_i| with NaN counted as infinite, so that a NaN never passes a tolerance */
double tl_maxdiff_nan(const float *a, const float *b, size_t n);

/* ---- text corpora (the tokenizers' parity tests) ------------------------------------------------ */

/* Hands every line of the JSON-lines file `path` (Python literals allowed; read through dm_lines, so
 * gzip too) to fn(root, ctx). A line that does not parse is skipped or, with strict, ends the walk
 * (said on stdout as FAIL path:line). Returns 0, or -1 when the file cannot be opened or a strict
 * parse failed. */
int tl_each_json_line(const char *path, int strict, void (*fn)(const dm_json *root, void *ctx), void *ctx);
/* The Amazon Beauty metadata file under DM_DATA into path (cap bytes): 1 when it is readable, 0 when
 * DM_DATA is unset or lacks it. */
int tl_beauty_meta(char *path, size_t cap);
/* Appends the strings of texts to out as the reference scripts read them: per string its byte
 * length (32-bit little-endian), then its bytes. Returns 0 or an allocation error. */
int tl_length_records(dm_buf *out, const dm_strtab *texts);

/* ---- small datasets -------------------------------------------------------------------------- */

/* dm_process options of the tests' hand-made catalogues: leave-one-out from 3 items, price
 * buckets at edges[0..n_edges), categories to cat_levels levels, every attribute value kept;
 * windows = 1: one window, no temporal split; windows = 2: temporal splits of 20% / 20% and two
 * windows from the middle of the time range. Original ids stay strings (numeric_ids = 0). */
dm_process_opts tl_process_opts(const double *edges, int n_edges, int cat_levels, int windows);

/* A dataset viewing the caller's arrays (nothing owned: never dm_dataset_free it): n_users users
 * with user_off (n_users + 1) into item (user_off[n_users]); every other field zero. */
dm_dataset tl_dataset_view(int n_users, int n_items, int64_t *user_off, int32_t *item);

/* ---- models (src/model/model.h) ------------------------------------------------------------- */

/* One check: max |x_i - ref_i| <= rtol max |ref_i| (printed with `what`); returns max |ref_i|. */
double tl_check_ref(const float *x, const double *ref, size_t n, double rtol, const char *what);
/* Central differences (f(w_k + h) - f(w_k - h)) / (2 h norm) of a loss f(ctx) over every stride-th
 * element w_k of w (n floats, each restored) against grad (n): returns the largest difference. */
double tl_fd_maxdiff(float *w, size_t n, size_t stride, double h, double norm, const double *grad, double (*f)(void *ctx), void *ctx);

/* The data-parallel contract of a trainable model: the gradient of the batch ex[0..n) (n >= 2, its
 * examples at global positions gidx, normaliser ops->batch_norm) equals the sum of the gradients of
 * its shares {ex[0]} and ex[1..n) within gtol of the largest component, and the shares' losses add
 * up to the batch's within ltol relative. Two checks; the gradient slab is left zeroed. */
void tl_model_shares(const dm_model_ops *ops, void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double gtol,
                     double ltol);

/* String i of t as a NUL-terminated string (at most 255 bytes), in a rotating static buffer. */
const char *tl_str(const dm_strtab *t, size_t i);

#endif
