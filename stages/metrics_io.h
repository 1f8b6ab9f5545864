/* metrics_io.h: the per-user metric rows of results.h5, prompt.h5 and stream.h5, for the commands
 * that read them back (export, info).
 *
 * Those files hold, beside whatever else, datasets /<split>/<protocol>/<model>: float64 (n_users,
 * ncols), one row per dense user of the dataset (NaN rows: users not scored), the columns named by
 * the root string table /columns ("hit@10", "ndcg@10", "mrr", ...). The split is "valid" or "test"
 * (eval, prompt) or "prequential" (stream: per-user means over the windows, protocols "full",
 * "full-drifting", "full-stable"); a model may carry a variant ("align@drop_visual_50").
 *
 * mio_open lists them; every call is collective over the file's ranks (h5io.h). The caller owns the
 * list (mio_free) and the rows it reads (free).
 */
#ifndef DM_METRICS_IO_H
#define DM_METRICS_IO_H

#include "../mpi/h5io.h"

#include <stddef.h>

typedef struct {
    char *name;     /* "test/full/sasrec" */
    char *split;    /* "test" */
    char *protocol; /* "full" */
    char *model;    /* "sasrec", "align@cold" */
    size_t rows;
} mio_entry;

typedef struct {
    char **cols;    /* (ncols) the metric names of /columns */
    size_t ncols;
    mio_entry *e;   /* (n) in the file's name order */
    size_t n;
} mio_list;

/* The metric entries of an open file (none for a file without /columns). */
int mio_open(h5file *f, mio_list *l);
void mio_free(mio_list *l);
/* The (rows, ncols) values of entry e, malloc'd. */
int mio_rows(h5file *f, const mio_list *l, const mio_entry *e, double **rows);
/* Column index of a metric name, -1 if absent. */
int mio_col(const mio_list *l, const char *metric);

#endif
