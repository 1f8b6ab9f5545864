/* rpt_fig.h: one figure of `dynmm report`: data, gnuplot script, PNG and PDF (see rpt_fig.c for the
 * kinds). */
#ifndef DM_RPT_FIG_H
#define DM_RPT_FIG_H

#include "rpt.h"

/* What a figure shows (from a report.figures spec or the defaults, rpt_spec.h); owns its strings. */
typedef struct {
    char *name, *kind, *split, *protocol, *x, *data, *xlabel, *ylabel, *y2label, *title;
    char **models, **metrics, **where, **y2; /* y2: columns (globs) of a points figure on the right axis */
    size_t nmodels, nmetrics, nwhere, ny2;
    int logx, logy; /* -1 = automatic */
} rpt_fig_spec;

/* Writes <name>.dat and <name>.gp (rank 0), runs gnuplot, appends a Markdown image line to md and
 * a LaTeX figure to tex. Collective. Returns DM_OK with *made = 0 when the files hold nothing to
 * plot. */
int rpt_fig(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, dm_buf *md, dm_buf *tex, int *made);
void rpt_fig_spec_free(rpt_fig_spec *f);

#endif
