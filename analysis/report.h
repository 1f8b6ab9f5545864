/* report.h: the internals of `dynmm report` shared by cmd_report.c (orchestration and specs),
 * report_data.c (reading results files), report_table.c (tables and significance) and
 * report_fig.c (gnuplot figures).
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
 * Parallelism. Every rank reads the metadata of every file (through a one-rank communicator, so
 * reads need no collective partner) and builds the same tables; the paired tests, which read the
 * per-user rows, are shared out across ranks and gathered; rank 0 writes every output file.
 */
#ifndef DM_REPORT_H
#define DM_REPORT_H

#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/core/buf.h"
#include "../src/stats/stats.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { RE_USERS = 0, RE_POINTS = 1 } rpt_kind;

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
} rpt_entry;

typedef struct {
    char *path;     /* results file */
    char *id;       /* run id: the name of the directory holding the file */
    dm_cfg cfg;     /* its resolved config */
    int64_t seed;   /* run.seed */
    size_t conf;    /* configuration index */
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

/* ---- report_data.c ----------------------------------------------------------------------- */

/* Expands inputs (files, run or sweep directories, manifests, globs) into results-file paths,
 * sorted and without duplicates. Missing runs of a manifest are warned about and counted. */
int rpt_resolve_inputs(char *const *inputs, size_t n, char ***paths, size_t *npaths, size_t *missing);
/* Reads every file's metadata and groups runs into configurations. Collective (each rank reads). */
int rpt_load(par_ctx *ctx, char *const *paths, size_t n, rpt_set *s);
void rpt_set_free(rpt_set *s);
/* Reads the per-user rows of a users entry: (rows, cols) doubles, malloc'd. Not collective. */
int rpt_read_rows(par_ctx *ctx, const rpt_run *r, const rpt_entry *e, double **rows);
const rpt_entry *rpt_find(const rpt_run *r, const char *split, const char *protocol, const char *model);
const rpt_entry *rpt_find_name(const rpt_run *r, const char *name);
/* Column index of `metric` in a users entry, or -1. */
int rpt_col(const rpt_entry *e, const char *metric);

/* ---- labels ------------------------------------------------------------------------------ */

/* Display name of a model, metric, protocol, split or key: report.labels first, then built-in names
 * ("sasrec" -> "SASRec", "ndcg@10" -> "NDCG@10", "uni99" -> "1+99 uniform"), else the name. Short
 * key names drop the group when that is unambiguous among the varied keys. */
const char *rpt_label(const rpt_opts *o, const char *name);
const char *rpt_key_label(const rpt_opts *o, const rpt_set *s, const char *key);
int rpt_lower_better(const rpt_opts *o, const char *metric);

/* ---- report_table.c ---------------------------------------------------------------------- */

typedef struct {
    char *name, *split, *caption, *baseline;
    char **protocols, **models, **metrics, **where;
    size_t nprotocols, nmodels, nmetrics, nwhere;
} rpt_table_spec;

/* Builds the table, runs its tests (collective), and (rank 0) writes <name>.{tex,md,csv} and
 * <name>_tests.csv into o->out. *md receives the Markdown (for index.md), *tex_name the LaTeX file
 * name (NULL when tex is off). */
int rpt_table(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_table_spec *t, dm_buf *md);

/* ---- report_fig.c ------------------------------------------------------------------------ */

typedef struct {
    char *name, *kind, *split, *protocol, *x, *data, *xlabel, *ylabel, *title;
    char **models, **metrics, **where;
    size_t nmodels, nmetrics, nwhere;
    int logx, logy; /* -1 = automatic */
} rpt_fig_spec;

/* Writes <name>.dat and <name>.gp (rank 0), runs gnuplot, appends a Markdown image line to md and
 * a LaTeX figure to tex. Returns DM_OK with *made = 0 when the files hold nothing to plot. */
int rpt_figure(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, dm_buf *md, dm_buf *tex,
               int *made);

/* Model names matching globs, in the set's model order (each model once). */
int rpt_match_models(const rpt_set *s, char *const *globs, size_t n, char ***out, size_t *nout);
/* Configuration c passes the "key=value" filters. */
int rpt_conf_ok(const rpt_set *s, size_t c, char *const *where, size_t nwhere);
/* Mean (over runs, by seed) of metric column `col` of entry split/protocol/model of configuration c:
 * fills vals (nruns of c, NaN where absent) and returns how many are present. */
size_t rpt_conf_values(const rpt_set *s, size_t c, const char *split, const char *protocol, const char *model,
                       const char *metric, double *vals);

#endif
