/* rpt_table.h: one results table of `dynmm report` (see rpt_table.c for its rows, cells and tests). */
#ifndef DM_RPT_TABLE_H
#define DM_RPT_TABLE_H

#include "rpt.h"

/* What a table shows (from a report.tables spec or the defaults, rpt_spec.h); owns its strings. */
typedef struct {
    char *name, *split, *caption, *baseline;
    char **protocols, **models, **metrics, **where;
    size_t nprotocols, nmodels, nmetrics, nwhere;
} rpt_table_spec;

/* Builds the table, runs its tests (collective), and (rank 0) writes <name>.{tex,md,csv},
 * <name>_tabular.tex and <name>_tests.csv into o->out (the formats of o) and appends its Markdown to
 * md. A table with no matching model or no results is skipped with a warning (md unchanged). */
int rpt_table(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_table_spec *t, dm_buf *md);
void rpt_table_spec_free(rpt_table_spec *t);

#endif
