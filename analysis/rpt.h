/* rpt.h: the data of `dynmm report` (runs, their entries, configurations) read from results files,
 * the queries the tables and figures make of it, and the report's options.
 *
 * The report's modules, each including only ones before it: rpt (this: data and options),
 * rpt_label (display names), rpt_table (a table with its tests), rpt_fig (a gnuplot figure),
 * rpt_spec (which tables and figures) and cmd_report (the command).
 *
 * Data model. Every results file is a run (its resolved config, its seed) holding entries: the
 * 2-D float datasets of the file.
 *   users entries   (n_users, ncols) per-user metrics named /<split>/<protocol>/<model>, columns
 *                   from the root string table /columns (what `dynmm eval` writes). Tables and
 *                   significance tests use them; a model may be a variant "base@variant".
 *   points entries  any other 2-D dataset whose group (or an ancestor below the root) holds its own
 *                   string table "columns", or that has a "columns" attribute (comma-separated), or
 *                   a "kind" attribute "points", or whose row count is not the file's n_users: rows
 *                   are points of a curve (windows, prompt lengths, noise levels), column 0 is x
 *                   unless the figure says otherwise. The run directory's stream.h5 ("dynmm-stream":
 *                   /stream/<variant>/mean, metrics per window) is read as points entries too.
 * Runs whose configs agree on every key except run.dir, run.seed, run.threads, run.verbose,
 * run.resume, run.force, io.*, report.* and sweep.* form one configuration; its runs are its seeds.
 * The keys whose values differ between configurations are the varied keys.
 *
 * Parallelism. Every rank reads the metadata of every file (each file opened by one rank alone, so
 * reads need no collective partner) and builds the same tables; the paired tests, which read the
 * per-user rows, are shared out across ranks and gathered; rank 0 writes every output file.
 *
 * The set owns everything it points to; rpt_set_free() releases it.
 */
#ifndef DM_RPT_H
#define DM_RPT_H

#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/core/buf.h"
#include "../src/stats/stats.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { RPT_USERS = 0, RPT_POINTS = 1 } rpt_kind;

typedef struct {
    char *name;                     /* "test/full/sasrec" (no leading '/') */
    char *group;                    /* "test/full" ("" at the root) */
    char *leaf;                     /* "sasrec" */
    char *split, *protocol, *model; /* users entries: the three components */
    rpt_kind kind;
    int root_cols;                  /* named by the file's root /columns (metric columns) */
    size_t rows, cols;
    char **colnames;                /* (cols) */
    double *mean;                   /* (cols) users: mean over rows without NaN */
    double *data;                   /* points: (rows, cols) */
    int64_t users;                  /* users: rows scored */
    char *file;                     /* the file holding the rows when not the run's results file */
    char *note;                     /* points: what the rows are, from the dataset's attributes "note",
                                     * "batch_users" and "candidates" (NULL: none) */
} rpt_entry;

typedef struct {
    char *path;     /* results file */
    char *id;       /* run id: the name of the directory holding the file */
    dm_cfg cfg;     /* its resolved config */
    int64_t seed;   /* run.seed */
    size_t conf;    /* configuration index (SIZE_MAX: a duplicate of another run, left out) */
    rpt_entry *e;
    size_t ne;
} rpt_run;

typedef struct {
    char *key;      /* canonical text of the config without the ignored keys */
    size_t *runs;   /* (nruns) run indices, by seed */
    size_t nruns;
    char **values;  /* (nvaried) value text of each varied key */
    char *label;    /* "hidden=32, dropout=0.2" ("" with no varied key) */
} rpt_conf;

typedef struct {
    rpt_run *runs;
    size_t nruns;
    rpt_conf *confs;
    size_t nconfs;
    char **varied;  /* varied keys, in key-table order */
    size_t nvaried;
    char **models;  /* every users-entry model: eval.models order of the runs, then by name */
    size_t nmodels;
    char **splits, **protocols;
    size_t nsplits, nprotocols;
    char **groups;  /* groups holding points entries */
    size_t ngroups;
} rpt_set;

/* ---- reading ----------------------------------------------------------------------------- */

/* Expands inputs (files, run or sweep directories, manifests, globs) into results-file paths,
 * sorted and without duplicates. Missing runs of a manifest are warned about and counted. */
int rpt_resolve_inputs(char *const *inputs, size_t n, char ***paths, size_t *npaths, size_t *missing);
/* Reads every file's metadata and groups runs into configurations. Collective (each rank reads). */
int rpt_load(par_ctx *ctx, char *const *paths, size_t n, rpt_set *s);
/* The display label a loaded results file stores with a model's rows (attribute "label", written
 * from the model registry), or NULL; the first file read wins. Valid until rpt_set_free. */
const char *rpt_stored_label(const char *model);
void rpt_set_free(rpt_set *s);
/* Reads the per-user rows of a users entry: (rows, cols) doubles, malloc'd. Not collective. */
int rpt_read_rows(par_ctx *ctx, const rpt_run *r, const rpt_entry *e, double **rows);

/* ---- queries ----------------------------------------------------------------------------- */

const rpt_entry *rpt_find(const rpt_run *r, const char *split, const char *protocol, const char *model);
const rpt_entry *rpt_find_name(const rpt_run *r, const char *name);
/* Column index of `metric` in an entry, or -1. */
int rpt_col(const rpt_entry *e, const char *metric);
/* Some run holds a users entry of split (and protocol, and model, unless NULL). */
int rpt_has_entry(const rpt_set *s, const char *split, const char *protocol, const char *model);
/* Model names matching globs, in the set's model order (each model once). */
int rpt_match_models(const rpt_set *s, char *const *globs, size_t n, char ***out, size_t *nout);
/* Configuration c passes the "key=value" filters. */
int rpt_conf_ok(const rpt_set *s, size_t c, char *const *where, size_t nwhere);
/* The per-run means of `metric` in entry split/protocol/model of the runs of configuration c (by
 * seed): fills vals (nruns of c, NaN where absent) and returns how many are present. */
size_t rpt_conf_values(const rpt_set *s, size_t c, const char *split, const char *protocol, const char *model,
                       const char *metric, double *vals);

/* ---- options ----------------------------------------------------------------------------- */

typedef struct {
    const dm_cfg *cfg;
    char out[4096];          /* output directory */
    stats_opts so;
    double alpha;
    int holm;                /* stats.correction = holm */
    int across;              /* report.across_seeds: 0 ttest, 1 test, 2 pooled */
    int digits, percent, std;
    int tex, md, csv;        /* table formats */
    int png, pdf;            /* figure formats */
} rpt_opts;

/* The options from the report.* and stats.* keys of c (o->out is left empty); errors name the key. */
int rpt_opts_init(const dm_cfg *c, rpt_opts *o);
/* report.lower_better matches the metric. */
int rpt_lower_better(const rpt_opts *o, const char *metric);

#endif
