/* rpt_spec.h: which tables and figures `dynmm report` makes.
 *
 * report.tables and report.figures hold specs, one string each, of "key=value" pairs separated by
 * ';' (lists separated by ',' or '|'):
 *   table:  name, split, protocols, models (globs, in order), metrics, baseline, caption,
 *           where (config filters "group.key=value,...")
 *   figure: name, kind (bars|curve), split, protocol, models, metrics, x (key:GROUP.KEY | suffix |
 *           column:NAME | row), data (group of points datasets), xlabel, ylabel, y2 (columns of a
 *           points figure on the right axis), y2label, title, logx, logy, where
 * A spec's missing fields come from report.splits, report.models and report.metrics; a table
 * without baseline= compares with the baseline of report.baselines / report.baseline
 * (rpt_table.c). Without table specs (figure specs) the report makes, for every split of
 * report.splits: one table per protocol over the models without '@' (report.models), one table
 * per variant family ("sasrec@drop_*": the part after '@' up to the first '_' or digit); and
 * figures: a bar chart of the models (one configuration) or a curve per varied key (a sweep), a
 * curve (numeric suffixes) or bars per variant family, and a curve per dataset group of points
 * (one figure per quantity pair: a loss and seconds share one figure on two axes, rpt_quantity).
 * New model or variant names therefore need no new code or config.
 */
#ifndef DM_RPT_SPEC_H
#define DM_RPT_SPEC_H

#include "rpt.h"
#include "rpt_fig.h"
#include "rpt_table.h"

typedef struct {
    rpt_table_spec *t; /* (nt) */
    size_t nt;
    rpt_fig_spec *f;   /* (nf) */
    size_t nf;
} rpt_specs;

/* The tables and figures for the set s under the settings c: the default ones, then the specs of
 * report.tables and report.figures completed (errors name the spec's entry). Not collective. */
int rpt_spec_build(const rpt_set *s, const dm_cfg *c, rpt_specs *sp);
void rpt_spec_free(rpt_specs *sp);

#endif
