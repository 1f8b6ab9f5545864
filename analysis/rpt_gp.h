/* rpt_gp.h: the plots of `dynmm report` (series of points, or categories of bars) and their gnuplot
 * form: NAME.dat (the numbers) and NAME.gp (the script, kept to restyle and rerun), run by gnuplot
 * into NAME.png (pngcairo) and NAME.pdf (pdfcairo, fonts embedded as TrueType, never Type 3).
 *
 * What a venue checks is settled here: every axis named (a quantity and its unit), one quantity
 * per axis (series of a second quantity on a labelled right axis), y ranges fitted to the data
 * (bars from zero), category labels that fit (rotated, with the margins gnuplot computes for them).
 *
 * A plot owns its series and categories; rpt_plot_free() releases them.
 */
#ifndef DM_RPT_GP_H
#define DM_RPT_GP_H

#include "rpt.h"

typedef struct {
    char *label;
    double *x, *y, *sd; /* (n) sd NaN: none */
    size_t n, cap;
    int axis;           /* 1: left y axis, 2: right */
} rpt_series;

typedef struct {
    rpt_series *s;      /* (n) curves: a line each; bars: a bar of every category each */
    size_t n;
    char **cats;        /* (ncats) categorical x: names ('\n' between lines); x holds their positions */
    size_t ncats;
    int any_sd;         /* some point has a standard deviation (error bars) */
} rpt_plot;

/* How to draw a plot. */
typedef struct {
    const char *name;             /* NAME.dat, NAME.gp, NAME.png, NAME.pdf */
    int bars;                     /* a bar chart: p->cats x p->s */
    const char *xlabel, *ylabel;  /* "" = none */
    const char *y2label;          /* the right axis (series with axis 2) */
    const char *title;            /* NULL or "" = none */
    int logx, logy;
} rpt_gp_style;

/* A new empty series labelled label (copied), on the left axis; NULL when out of memory. */
rpt_series *rpt_plot_series(rpt_plot *p, const char *label);
int rpt_plot_point(rpt_series *s, double x, double y, double sd);
/* The index of category c, added when new. */
int rpt_plot_category(rpt_plot *p, const char *c, double *x);
/* Sorts a series by x. */
void rpt_series_sort(rpt_series *s);
void rpt_plot_free(rpt_plot *p);

/* Writes <o->out>/<name>.dat and .gp for the formats of o (png, pdf). */
int rpt_gp_write(const rpt_opts *o, const rpt_gp_style *st, const rpt_plot *p);
/* Runs report.gnuplot on <name>.gp in o->out (its log kept only on failure, with a warning);
 * *missing when gnuplot cannot be run (or report.gnuplot is empty: scripts only). */
int rpt_gp_run(const rpt_opts *o, const char *name, int *missing);

#endif
