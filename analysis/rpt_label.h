/* rpt_label.h: the display names of `dynmm report` and their escaping for LaTeX.
 *
 * A name (model, metric, protocol, split, config key) is shown as its report.labels entry
 * ("sasrec=SASRec$^{*}$": LaTeX passes through to .tex), else the label a results file stores with
 * the model's rows (attribute "label", from the model registry, stages/models.c: "sasrec" ->
 * "SASRec"), else a built-in name ("ndcg@10" -> "NDCG@10", "uni99" -> "1+99 uniform",
 * "sasrec@drop_visual_50" -> "SASRec drop_visual_50"), else the name itself. Generated labels are kept in a cache that
 * rpt_label_free() releases: the returned strings stay valid until then.
 */
#ifndef DM_RPT_LABEL_H
#define DM_RPT_LABEL_H

#include "rpt.h"

const char *rpt_label(const rpt_opts *o, const char *name);
/* A varied key's label: report.labels, else its name without the group when that is unambiguous
 * among the varied keys ("sasrec.hidden" -> "hidden"). */
const char *rpt_label_key(const rpt_opts *o, const rpt_set *s, const char *key);
/* Appends label (the label of name) for LaTeX: a report.labels entry verbatim, a generated one
 * escaped. */
int rpt_label_tex(dm_buf *b, const rpt_opts *o, const char *name, const char *label);
/* Appends s with \ _ % & # $ { } ~ ^ < > escaped for LaTeX text. */
int rpt_label_tex_escape(dm_buf *b, const char *s);
/* The quantity a column of points measures, for sharing axes: "time" (seconds, latency),
 * "throughput" (x/s), "metric" (Hit@K, NDCG@K, MRR, a validation metric), "learning rate", "loss",
 * else the column itself; with_loss: the dataset has a loss column, and its other columns that are
 * none of these are loss terms ("listwise", "faithfulness"). */
const char *rpt_quantity(const char *col, int with_loss);
void rpt_label_free(void);

#endif
