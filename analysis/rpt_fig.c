/* rpt_fig.c: figures of `dynmm report`: a data file and a gnuplot script per figure, run with
 * gnuplot into PNG (pngcairo) and PDF (pdfcairo). The scripts stay beside the figures so that they
 * can be restyled and rerun (`gnuplot NAME.gp` in the output directory).
 *
 * Kinds (spec key `kind`, `x`):
 *   bars                  categories = the models (x configurations), one bar per metric, error bars
 *                         = standard deviation over seeds (a modality-dropout or model comparison)
 *   curve, x=key:K        metric against the value of config key K across configurations (a sweep);
 *                         one series per model and value of the other varied keys
 *   curve, x=suffix       metric against the number ending each model variant's name
 *                         ("sasrec@noise_snr_10" -> x = 10); one series per name stem
 *   curve, x=column:NAME  points entries of group `data` (latency against prompt length, metrics per
 *   curve, x=row          streaming window): column NAME or the row number as x, the `metrics`
 *                         columns as y (default: every other column), one series per dataset and
 *                         column; columns of a second quantity (rpt_quantity: seconds beside losses)
 *                         on the right axis, a third left out
 * Several seeds of a configuration give mean +- sd at every point (yerrorlines). A curve at a single
 * x is drawn as bars at that x. Every axis is named by its quantity (and unit), and the caption says
 * what is plotted against what, on which split, protocol and users (rpt_gp.h draws).
 */
#include "rpt_fig.h"

#include "rpt_gp.h"
#include "rpt_label.h"

#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mean and sd (ddof 1; NaN with one value) of the finite values */
static size_t mean_sd(const double *v, size_t n, double *mean, double *sd)
{
    double buf[4096];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 4096; i++)
        if (isfinite(v[i])) buf[k++] = v[i];
    *mean = *sd = NAN;
    if (!k) return 0;
    stats_summary s;
    stats_summarize(buf, k, 0.95, &s);
    *mean = s.mean;
    *sd = k > 1 ? s.sd : NAN;
    return k;
}

/* mean and sd in percent when report.percent */
static void to_percent(const rpt_opts *o, double *mean, double *sd)
{
    if (!o->percent) return;
    *mean *= 100;
    *sd *= 100;
}

static int same_series(const rpt_series *a, const rpt_series *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->x[i] != b->x[i] || a->y[i] != b->y[i] || !((isnan(a->sd[i]) && isnan(b->sd[i])) || a->sd[i] == b->sd[i])) return 0;
    return 1;
}

/* ---- the figure -------------------------------------------------------------------------- */

/* A figure under construction. */
typedef struct {
    const rpt_set *s;
    const rpt_opts *o;
    const rpt_fig_spec *f;
    int bars, points;      /* kind=bars; a curve of points entries (x=column:NAME or x=row) */
    char **models;         /* (nmodels) the models matching the spec (not for points) */
    size_t nmodels;
    const char *ms;        /* the first metric ("" without) */
    rpt_plot p;
    char xlabel[512], ylabel[512], y2label[512];
    int64_t ulo, uhi;      /* fewest and most users behind a plotted mean (users entries) */
    char **axcols[3];      /* points: the y columns on axis 1 and 2 */
    size_t naxcols[3];
    dm_buf left_out;       /* models left out of a sweep curve: the same in every configuration */
    dm_buf what;           /* points: what the data are, for the caption */
    int single;            /* a curve at one x, drawn as bars of its series at x0 */
    double x0;
} figure;

/* Configuration c is plotted: it has runs and passes the spec's where= filters. */
static int conf_plotted(const figure *g, size_t c)
{
    return g->s->confs[c].nruns && rpt_conf_ok(g->s, c, g->f->where, g->f->nwhere);
}

/* The mean and sd of model's metric over configuration c's runs (the spec's split and protocol), in
 * percent when report.percent; returns how many runs have it (none: mean and sd NaN). */
static size_t conf_mean(const figure *g, size_t c, const char *model, const char *metric, double *mean, double *sd)
{
    double vals[4096];
    size_t n = rpt_conf_values(g->s, c, g->f->split, g->f->protocol, model, metric, vals);
    mean_sd(vals, g->s->confs[c].nruns, mean, sd);
    to_percent(g->o, mean, sd);
    return n;
}

/* The label of a metric axis: the metric's, in percent when report.percent. */
static void metric_ylabel(figure *g, const char *metric)
{
    snprintf(g->ylabel, sizeof g->ylabel, "%s%s", rpt_label(g->o, metric), g->o->percent ? " (%)" : "");
}

/* Counts the users of model m's entries in configuration c toward ulo..uhi. */
static void note_users(figure *g, size_t c, const char *m)
{
    const rpt_conf *cf = &g->s->confs[c];
    for (size_t i = 0; i < cf->nruns; i++) {
        const rpt_entry *e = rpt_find(&g->s->runs[cf->runs[i]], g->f->split, g->f->protocol, m);
        if (!e || e->users <= 0) continue;
        g->ulo = g->ulo && g->ulo < e->users ? g->ulo : e->users;
        g->uhi = g->uhi > e->users ? g->uhi : e->users;
    }
}

/* ---- sweeps: a metric against a varied key ----------------------------------------------- */

/* The series of model m (from p->n on): one per combination of the other varied keys. */
static int key_series(figure *g, int kv, int numeric, const char *m)
{
    const rpt_set *s = g->s;
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    rpt_plot *p = &g->p;
    size_t first = p->n;
    for (size_t c = 0; c < s->nconfs; c++) {
        if (!conf_plotted(g, c)) continue;
        dm_buf lab = {0};
        dm_buf_adds(&lab, rpt_label(o, m));
        for (size_t k = 0, n = 0; k < s->nvaried; k++)
            if ((int)k != kv) dm_buf_printf(&lab, "%s%s=%s", n++ ? ", " : " (", rpt_label_key(o, s, s->varied[k]), s->confs[c].values[k]);
        if (s->nvaried > 1) dm_buf_adds(&lab, ")");
        rpt_series *se = NULL;
        for (size_t i = first; i < p->n; i++)
            if (!strcmp(p->s[i].label, lab.data)) se = &p->s[i];
        if (!se) se = rpt_plot_series(p, lab.data);
        dm_buf_free(&lab);
        if (!se) return DM_ENOMEM;
        double mean, sd, x;
        if (!conf_mean(g, c, m, f->metrics[0], &mean, &sd)) continue;
        if (numeric) x = strtod(s->confs[c].values[kv], NULL);
        else DM_CALL(rpt_plot_category(p, s->confs[c].values[kv], &x));
        DM_CALL(rpt_plot_point(se, x, mean, sd));
        note_users(g, c, m);
    }
    for (size_t i = first; i < p->n; i++) rpt_series_sort(&p->s[i]);
    /* a model that does not depend on the other keys: one series */
    int all_same = p->n - first > 1;
    for (size_t i = first + 1; i < p->n && all_same; i++) all_same = same_series(&p->s[first], &p->s[i]);
    if (!all_same) return DM_OK;
    while (p->n > first + 1) {
        rpt_series *t = &p->s[--p->n];
        free(t->label);
        free(t->x);
        free(t->y);
        free(t->sd);
    }
    free(p->s[first].label);
    p->s[first].label = dm_str_dup(rpt_label(o, m));
    return p->s[first].label ? DM_OK : DM_ENOMEM;
}

/* Series first..last-1 hold one value everywhere (a model the swept keys do not change). */
static int flat_series(const rpt_plot *p, size_t first, size_t last)
{
    for (size_t i = first; i < last; i++)
        for (size_t j = 0; j < p->s[i].n; j++)
            if (p->s[i].y[j] != p->s[first].y[0]) return 0;
    return last > first && p->s[first].n > 0;
}

/* A metric against varied key K: a series per model (and value of the other varied keys). Models
 * the key does not change (popularity when SASRec's settings vary) are left out when another one
 * varies: as flat lines they would only stretch the y range over the effect; the caption names
 * them. */
static int build_key_curve(figure *g, const char *key)
{
    const rpt_set *s = g->s;
    const rpt_fig_spec *f = g->f;
    rpt_plot *p = &g->p;
    int kv = dm_strv_find(s->varied, s->nvaried, key);
    if (kv < 0) {
        DM_ERR(DM_ECONFIG, "figure '%s': '%s' does not vary between the configurations read", f->name, key);
        if (s->nvaried) {
            dm_buf h = {0};
            for (size_t i = 0; i < s->nvaried; i++) dm_buf_printf(&h, "%s%s", i ? ", " : "", s->varied[i]);
            DM_HINT("keys that vary: %s", h.data);
            dm_buf_free(&h);
        } else
            DM_HINT("the results come from one configuration; give several runs of a sweep");
        return DM_ECONFIG;
    }
    int numeric = 1;
    for (size_t c = 0; c < s->nconfs; c++) numeric &= dm_str_is_number(s->confs[c].values[kv], NULL);
    size_t *start;
    DM_ALLOC(start, g->nmodels + 1);
    int rc = DM_OK;
    for (size_t m = 0; m < g->nmodels && !rc; m++) {
        start[m] = p->n;
        rc = key_series(g, kv, numeric, g->models[m]);
    }
    start[g->nmodels] = p->n;
    size_t nvary = 0;
    for (size_t m = 0; m < g->nmodels && !rc; m++) nvary += !flat_series(p, start[m], start[m + 1]);
    /* keep the varying models' series, in order */
    size_t w = 0;
    for (size_t m = 0; m < g->nmodels && !rc; m++) {
        int drop = nvary && flat_series(p, start[m], start[m + 1]);
        if (drop) dm_buf_printf(&g->left_out, "%s%s", g->left_out.len ? ", " : "", rpt_label(g->o, g->models[m]));
        for (size_t i = start[m]; i < start[m + 1]; i++) {
            if (!drop) {
                p->s[w++] = p->s[i];
                continue;
            }
            free(p->s[i].label);
            free(p->s[i].x);
            free(p->s[i].y);
            free(p->s[i].sd);
        }
    }
    if (!rc) p->n = w;
    free(start);
    return rc;
}

/* ---- variants: a metric against the number ending their names ----------------------------- */

/* "sasrec@noise_snr_10" -> stem "sasrec@noise_snr_", x 10; 0 when the name does not end in a number */
static int split_suffix(const char *name, char *stem, size_t cap, double *x)
{
    size_t l = strlen(name), i = l;
    while (i > 0 && ((name[i - 1] >= '0' && name[i - 1] <= '9') || name[i - 1] == '.')) i--;
    if (i == l || !strchr(name, '@')) return 0;
    if (i > 0 && name[i - 1] == '-' && (i < 2 || name[i - 2] == '_')) i--;
    *x = strtod(name + i, NULL);
    snprintf(stem, cap, "%.*s", (int)i, name);
    return 1;
}

static int build_suffix_curve(figure *g)
{
    const rpt_set *s = g->s;
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    rpt_plot *p = &g->p;
    for (size_t c = 0; c < s->nconfs; c++) {
        if (!conf_plotted(g, c)) continue;
        for (size_t m = 0; m < g->nmodels; m++) {
            char stem[512];
            double x;
            if (!split_suffix(g->models[m], stem, sizeof stem, &x)) continue;
            /* drop the trailing separator for the label */
            char lab[700];
            size_t sl = strlen(stem);
            while (sl && (stem[sl - 1] == '_' || stem[sl - 1] == '-' || stem[sl - 1] == '=')) sl--;
            const char *at = strchr(stem, '@');
            char base[256];
            snprintf(base, sizeof base, "%.*s", (int)(at - stem), stem);
            snprintf(lab, sizeof lab, "%s %.*s%s%s%s", rpt_label(o, base), (int)(sl - (size_t)(at + 1 - stem)), at + 1,
                     s->nconfs > 1 && s->confs[c].label[0] ? " (" : "", s->nconfs > 1 ? s->confs[c].label : "",
                     s->nconfs > 1 && s->confs[c].label[0] ? ")" : "");
            rpt_series *se = NULL;
            for (size_t i = 0; i < p->n; i++)
                if (!strcmp(p->s[i].label, lab)) se = &p->s[i];
            if (!se && !(se = rpt_plot_series(p, lab))) return DM_ENOMEM;
            double mean, sd;
            if (!conf_mean(g, c, g->models[m], f->metrics[0], &mean, &sd)) continue;
            DM_CALL(rpt_plot_point(se, x, mean, sd));
            note_users(g, c, g->models[m]);
        }
    }
    for (size_t i = 0; i < p->n; i++) rpt_series_sort(&p->s[i]);
    return DM_OK;
}

/* The x label of suffix curves: the common start of the stems after '@' ("drop_visual_",
 * "drop_text_" -> "drop"). */
static void suffix_xlabel(figure *g)
{
    char lab[512] = "";
    int first = 1;
    for (size_t m = 0; m < g->nmodels; m++) {
        char stem[512];
        double x;
        if (!split_suffix(g->models[m], stem, sizeof stem, &x)) continue;
        const char *at = strchr(stem, '@');
        if (first) snprintf(lab, sizeof lab, "%s", at + 1);
        else {
            size_t l = 0;
            while (lab[l] && lab[l] == at[1 + l]) l++;
            lab[l] = '\0';
        }
        first = 0;
    }
    for (size_t l = strlen(lab); l && (lab[l - 1] == '_' || lab[l - 1] == '-' || lab[l - 1] == '='); l--) lab[l - 1] = '\0';
    snprintf(g->xlabel, sizeof g->xlabel, "%s", rpt_label(g->o, lab));
}

/* ---- bars of the models ------------------------------------------------------------------ */

/* The same numbers in every configuration of a model (categories cats_before..): one category,
 * named by the model. */
static int merge_categories(figure *g, size_t cats_before, const char *model)
{
    rpt_plot *p = &g->p;
    if (p->ncats - cats_before <= 1) return DM_OK;
    for (size_t k = 0; k < p->n; k++)
        for (size_t c = cats_before + 1; c < p->ncats; c++)
            if (p->s[k].y[c] != p->s[k].y[cats_before]) return DM_OK;
    for (size_t c = cats_before + 1; c < p->ncats; c++) free(p->cats[c]);
    p->ncats = cats_before + 1;
    for (size_t k = 0; k < p->n; k++) p->s[k].n = cats_before + 1;
    free(p->cats[cats_before]);
    p->cats[cats_before] = dm_str_dup(rpt_label(g->o, model));
    return p->cats[cats_before] ? DM_OK : DM_ENOMEM;
}

/* "a, b and c" of the labels of names (n) into b */
static void and_list(const rpt_opts *o, char *const *names, size_t n, dm_buf *b)
{
    for (size_t k = 0; k < n; k++) dm_buf_printf(b, "%s%s", k == 0 ? "" : k + 1 == n ? " and " : ", ", rpt_label(o, names[k]));
}

/* Bars: categories model x configuration (as in tables), a bar per metric. */
static int build_bars(figure *g)
{
    const rpt_set *s = g->s;
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    rpt_plot *p = &g->p;
    for (size_t k = 0; k < f->nmetrics; k++)
        if (!rpt_plot_series(p, rpt_label(o, f->metrics[k]))) return DM_ENOMEM;
    for (size_t m = 0; m < g->nmodels; m++) {
        size_t cats_before = p->ncats;
        for (size_t c = 0; c < s->nconfs; c++) {
            double mean, sd;
            if (!conf_plotted(g, c) || !conf_mean(g, c, g->models[m], f->metrics[0], &mean, &sd)) continue;
            dm_buf lab = {0};
            dm_buf_adds(&lab, rpt_label(o, g->models[m]));
            /* the settings' values on a second line (the x label names the keys) */
            for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&lab, "%s%s", v ? ", " : "\n", s->confs[c].values[v]);
            double x;
            int rc = rpt_plot_category(p, lab.data, &x);
            dm_buf_free(&lab);
            DM_CALL(rc);
            for (size_t k = 0; k < f->nmetrics; k++) {
                conf_mean(g, c, g->models[m], f->metrics[k], &mean, &sd);
                DM_CALL(rpt_plot_point(&p->s[k], x, mean, sd));
            }
            note_users(g, c, g->models[m]);
        }
        DM_CALL(merge_categories(g, cats_before, g->models[m]));
    }
    g->xlabel[0] = '\0';
    for (size_t v = 0; v < s->nvaried && p->ncats > 0; v++) {
        size_t l = strlen(g->xlabel);
        snprintf(g->xlabel + l, sizeof g->xlabel - l, "%s%s", v ? ", " : "model (", rpt_label_key(o, s, s->varied[v]));
    }
    if (g->xlabel[0]) strncat(g->xlabel, ")", sizeof g->xlabel - strlen(g->xlabel) - 1);
    dm_buf y = {0};
    and_list(o, f->metrics, f->nmetrics, &y);
    snprintf(g->ylabel, sizeof g->ylabel, "%s%s", y.data ? y.data : "", o->percent ? " (%)" : "");
    dm_buf_free(&y);
    return DM_OK;
}

static int add_unique(char ***v, size_t *n, const char *x) { return dm_strv_find(*v, *n, x) >= 0 ? DM_OK : dm_strv_push(v, n, x); }

/* ---- points: columns of datasets against a column or the row -------------------------------- */

/* A y column of a points figure: one of its metrics (globs), or any with none given. */
static int wanted_column(const rpt_fig_spec *f, const char *col)
{
    int want = !f->nmetrics;
    for (size_t k = 0; k < f->nmetrics; k++) want |= dm_str_match(f->metrics[k], col);
    return want;
}

/* The points entries of the figure: group matching data=, leaf matching models= (any without). */
static int points_entry(const rpt_fig_spec *f, const rpt_entry *en)
{
    if (en->kind != RPT_POINTS || !dm_str_match(f->data, en->group)) return 0;
    int ok = !f->nmodels;
    for (size_t g = 0; g < f->nmodels; g++) ok |= dm_str_match(f->models[g], en->leaf);
    return ok;
}

/* The x column of entry en (-1: the row number), or an error naming it. */
static int points_x(const rpt_fig_spec *f, const rpt_entry *en, int *cx)
{
    const char *xcol = !strncmp(f->x, "column:", 7) ? f->x + 7 : NULL;
    *cx = xcol ? rpt_col(en, xcol) : (!strcmp(f->x, "row") ? -1 : 0);
    if (xcol && *cx < 0) return DM_ERR(DM_ECONFIG, "figure '%s': %s has no column '%s'", f->name, en->name, xcol);
    return DM_OK;
}

static int has_loss_column(const rpt_entry *en)
{
    for (size_t j = 0; j < en->cols; j++)
        if (strstr(en->colnames[j], "loss")) return 1;
    return 0;
}

/* The axis of y column j of en: 2 for the y2= columns, else 1 for the first quantity met (q1), 2
 * for the second (q2), 0 for any other (left out). */
static int column_axis(const rpt_fig_spec *f, const rpt_entry *en, size_t j, char *q1, char *q2, size_t cap)
{
    for (size_t k = 0; k < f->ny2; k++)
        if (dm_str_match(f->y2[k], en->colnames[j])) return 2;
    if (f->ny2) return 1;
    const char *q = rpt_quantity(en->colnames[j], has_loss_column(en));
    if (!q1[0]) snprintf(q1, cap, "%s", q);
    if (!strcmp(q, q1)) return 1;
    if (!q2[0]) snprintf(q2, cap, "%s", q);
    return strcmp(q, q2) ? 0 : 2;
}

/* The words every y column of entry en with the same axis ends in ("llm median seconds per batch",
 * "llm p95 seconds per batch" -> " seconds per batch"): their length, 0 with fewer than two such
 * columns, or when a name would be left empty. */
static size_t common_tail(const rpt_entry *en, const int *axis, int ax)
{
    const char *a = NULL;
    size_t l = 0, n = 0;
    for (size_t j = 0; j < en->cols; j++) {
        if (axis[j] != ax) continue;
        const char *c = en->colnames[j];
        if (!a) {
            a = c;
            l = strlen(c);
        } else {
            size_t la = strlen(a), lc = strlen(c), k = 0;
            while (k < l && k < lc && a[la - 1 - k] == c[lc - 1 - k]) k++;
            l = k;
        }
        n++;
    }
    if (n < 2) return 0;
    while (l && a[strlen(a) - l] != ' ') l--; /* whole words, from a space on */
    for (size_t j = 0; j < en->cols; j++)
        if (axis[j] == ax && strlen(en->colnames[j]) <= l) return 0;
    return l;
}

/* The series of column j of entry en (of run r0 of configuration c): mean +- sd over its seeds at
 * every row. */
static int points_series(figure *g, size_t c, const rpt_entry *en, int cx, size_t j, const char *label, int axis)
{
    const rpt_set *s = g->s;
    const rpt_conf *cf = &s->confs[c];
    rpt_series *se = rpt_plot_series(&g->p, label);
    if (!se) return DM_ENOMEM;
    se->axis = axis;
    for (size_t row = 0; row < en->rows; row++) {
        double ys[4096], x = cx >= 0 ? en->data[row * en->cols + (size_t)cx] : (double)(row + 1);
        size_t n = 0;
        for (size_t i = 0; i < cf->nruns && n < 4096; i++) {
            const rpt_entry *ei = rpt_find_name(&s->runs[cf->runs[i]], en->name);
            if (!ei || ei->rows != en->rows || ei->cols != en->cols) continue;
            ys[n++] = ei->data[row * ei->cols + j];
        }
        double mean, sd;
        mean_sd(ys, n, &mean, &sd);
        if (isfinite(x) && isfinite(mean)) DM_CALL(rpt_plot_point(se, x, mean, sd));
    }
    rpt_series_sort(se);
    return DM_OK;
}

/* The series of entry en: one per wanted y column, named by the dataset (its group's last part when
 * data= is a glob: data=stream/... names the variants) when the figure has several datasets, and by
 * the column (without the words all its axis's columns end in) when the entry has several. */
static int points_entry_series(figure *g, size_t c, const rpt_entry *en, size_t nds, char *q1, char *q2, int *dropped)
{
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    int cx, axis[256] = {0};
    DM_CALL(points_x(f, en, &cx));
    size_t ny = 0;
    for (size_t j = 0; j < en->cols && j < 256; j++) {
        if ((int)j == cx || !wanted_column(f, en->colnames[j])) continue;
        axis[j] = column_axis(f, en, j, q1, q2, 64);
        if (!axis[j]) *dropped = 1;
        ny += axis[j] != 0;
    }
    size_t tail[3] = {0, common_tail(en, axis, 1), common_tail(en, axis, 2)};
    const char *gl = strrchr(en->group, '/');
    const char *ds = rpt_label(o, strpbrk(f->data, "*?[") ? (gl ? gl + 1 : en->group) : en->leaf);
    for (size_t j = 0; j < en->cols && j < 256; j++) {
        if (!axis[j]) continue;
        DM_CALL(add_unique(&g->axcols[axis[j]], &g->naxcols[axis[j]], en->colnames[j]));
        dm_buf lab = {0};
        if (ny == 1 || nds > 1) dm_buf_adds(&lab, ds);
        if (ny > 1) {
            /* a generated label as is; the raw name without the words its axis label holds */
            const char *raw = en->colnames[j], *cl = rpt_label(o, raw);
            size_t cut = cl == raw ? tail[axis[j]] : 0, l = strlen(cl);
            if (!strcmp(rpt_quantity(raw, 0), "time") && l > 4 && !strcmp(cl + l - 4, " (s)")) cl = "time", cut = 0;
            dm_buf_printf(&lab, "%s%.*s", lab.len ? " " : "", (int)(strlen(cl) - cut), cl);
        }
        if (axis[j] == 2 && !f->ny2) dm_buf_adds(&lab, " (right axis)");
        if (g->s->nconfs > 1 && g->s->confs[c].label[0]) dm_buf_printf(&lab, " (%s)", g->s->confs[c].label);
        int rc = points_series(g, c, en, cx, j, lab.data, axis[j]);
        dm_buf_free(&lab);
        DM_CALL(rc);
    }
    return DM_OK;
}

/* The label of points axis ax: its quantity with the unit where known. */
static void points_axis_label(figure *g, int ax, const char *q, char *out, size_t cap)
{
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    char *const *c = g->axcols[ax];
    size_t n = g->naxcols[ax], per_batch = 0;
    for (size_t i = 0; i < n; i++) per_batch += strstr(c[i], "per batch") != NULL;
    const char *x = !strncmp(f->x, "column:", 7) ? f->x + 7 : "";
    if (q && !strcmp(q, "time") && n && per_batch == n) snprintf(out, cap, "seconds per batch");
    else if (q && !strcmp(q, "time") && (!strcmp(x, "epoch") || !strcmp(x, "step")))
        snprintf(out, cap, "seconds per %s", x);
    else if (n == 1) snprintf(out, cap, "%s", rpt_label(o, c[0]));
    else if (q && !strcmp(q, "time")) snprintf(out, cap, "seconds");
    else if (q && !strcmp(q, "loss")) snprintf(out, cap, "loss");
    else {
        dm_buf b = {0};
        and_list(o, c, n, &b);
        snprintf(out, cap, "%s", b.data ? b.data : "");
        dm_buf_free(&b);
    }
}

/* The stream stage's per-window means: which users a dataset averages ("mean_drift"). */
static const char *stream_users(const char *leaf)
{
    if (!strcmp(leaf, "mean")) return "all users";
    if (!strcmp(leaf, "mean_drift")) return "the users with a planted drift of taste";
    if (!strcmp(leaf, "mean_stable")) return "the users without drift";
    return leaf;
}

/* The caption's words on what the points are: per streaming window (which users), a training curve
 * (of what), else the datasets; the file and the dataset's note. */
static void points_what(figure *g, const rpt_entry *e0, char *const *leaves, size_t nl, char *const *groups, size_t ng)
{
    const rpt_opts *o = g->o;
    dm_buf *w = &g->what;
    const char *file = e0->file ? e0->file : g->s->runs[0].path, *sl = strrchr(file, '/');
    file = sl ? sl + 1 : file;
    int curves = 1;
    for (size_t i = 0; i < nl; i++) curves &= !strcmp(leaves[i], "curve");
    if (!strncmp(g->f->data, "stream/", 7)) {
        dm_buf_adds(w, "each streaming variant per window, the window's interactions ranked against the full catalogue before the "
                       "variant learns from them, on ");
        for (size_t i = 0; i < nl; i++) dm_buf_printf(w, "%s%s", i ? ", " : "", stream_users(leaves[i]));
    } else if (curves) {
        dm_buf_adds(w, "the training curve of ");
        for (size_t i = 0; i < ng; i++) {
            const char *gl = strrchr(groups[i], '/');
            dm_buf_printf(w, "%s%s", i == 0 ? "" : i + 1 == ng ? " and " : ", ", rpt_label(o, gl ? gl + 1 : groups[i]));
        }
    } else {
        if (nl > 1 && ng == 1 && groups[0][0]) dm_buf_printf(w, "%s: ", rpt_label(o, groups[0]));
        and_list(o, leaves, nl, w);
    }
    dm_buf_printf(w, " (%s%s%s)", file, e0->note ? "; " : "", e0->note ? e0->note : "");
}

/* Points: the series of every matching dataset of every configuration, the axes' labels, and what
 * the caption says of them. Columns of a third quantity are left out with a warning. */
static int build_points(figure *g)
{
    const rpt_set *s = g->s;
    const rpt_fig_spec *f = g->f;
    if (!f->data || !f->data[0]) return DM_ERR(DM_ECONFIG, "figure '%s': x=%s needs data=GROUP (a group of points datasets)", f->name, f->x);
    char **leaves = NULL, **groups = NULL, q1[64] = "", q2[64] = "";
    size_t nl = 0, ng = 0, nds = 0;
    const rpt_entry *e0 = NULL;
    int rc = DM_OK, dropped = 0;
    const rpt_run *r0 = &s->runs[s->confs[0].runs[0]];
    for (size_t e = 0; e < r0->ne && !rc; e++)
        if (points_entry(f, &r0->e[e])) {
            nds++;
            e0 = e0 ? e0 : &r0->e[e];
            rc = add_unique(&leaves, &nl, r0->e[e].leaf);
            if (!rc) rc = add_unique(&groups, &ng, r0->e[e].group);
        }
    for (size_t c = 0; c < s->nconfs && !rc; c++) {
        if (!conf_plotted(g, c)) continue;
        const rpt_run *r = &s->runs[s->confs[c].runs[0]];
        for (size_t e = 0; e < r->ne && !rc; e++)
            if (points_entry(f, &r->e[e])) rc = points_entry_series(g, c, &r->e[e], nds, q1, q2, &dropped);
    }
    if (!rc && dropped)
        dm_warn("figure '%s': columns of a third quantity left out (a figure shows %s and %s); name them in metrics= of another figure",
                f->name, q1, q2);
    if (!rc) {
        snprintf(g->xlabel, sizeof g->xlabel, "%s",
                 !strcmp(f->x, "row") ? (strstr(f->data, "stream") || strstr(f->data, "window") ? "window" : "row") : rpt_label(g->o, f->x + 7));
        points_axis_label(g, 1, q1[0] ? q1 : NULL, g->ylabel, sizeof g->ylabel);
        points_axis_label(g, 2, q2[0] ? q2 : NULL, g->y2label, sizeof g->y2label);
        if (e0) points_what(g, e0, leaves, nl, groups, ng);
    }
    dm_strv_free(leaves, nl);
    dm_strv_free(groups, ng);
    return rc;
}

/* The series of the figure and its axis labels, by kind and x. */
static int build_plot(figure *g)
{
    const rpt_fig_spec *f = g->f;
    if (g->bars) return build_bars(g);
    if (!strncmp(f->x, "key:", 4)) {
        int rc = build_key_curve(g, f->x + 4);
        snprintf(g->xlabel, sizeof g->xlabel, "%s", rpt_label_key(g->o, g->s, f->x + 4));
        metric_ylabel(g, g->ms);
        return rc;
    }
    if (!strcmp(f->x, "suffix")) {
        int rc = build_suffix_curve(g);
        suffix_xlabel(g);
        metric_ylabel(g, g->ms);
        return rc;
    }
    if (g->points) return build_points(g);
    DM_ERR(DM_ECONFIG, "figure '%s': unknown x '%s'", f->name, f->x);
    DM_HINT("x=key:GROUP.KEY, x=suffix, x=column:NAME or x=row");
    return DM_ECONFIG;
}

/* A curve whose every point sits at one x (one prompt length, one epoch) says nothing as a line:
 * its series become bars at that x, one per series, when they share the left axis. */
static int single_x_as_bars(figure *g)
{
    rpt_plot *p = &g->p, b = {0};
    double x0 = NAN;
    size_t npts = 0;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->s[i].n; j++) {
            if (p->s[i].axis != 1 || (!isnan(x0) && p->s[i].x[j] != x0)) return DM_OK;
            x0 = p->s[i].x[j];
            npts++;
        }
    if (g->bars || p->ncats || npts < 2 || npts != p->n) return DM_OK;
    rpt_series *se = rpt_plot_series(&b, g->ylabel);
    int rc = se ? DM_OK : DM_ENOMEM;
    for (size_t i = 0; i < p->n && !rc; i++) {
        double x;
        rc = rpt_plot_category(&b, p->s[i].label, &x);
        if (!rc) rc = rpt_plot_point(se, x, p->s[i].y[0], p->s[i].sd[0]);
    }
    if (rc) {
        rpt_plot_free(&b);
        return rc;
    }
    b.any_sd = p->any_sd;
    rpt_plot_free(p);
    *p = b;
    g->single = 1;
    g->x0 = x0;
    return DM_OK;
}

/* "(full ranking, 400 users)" of users entries: the protocol and the users behind each mean */
static void users_words(const figure *g, dm_buf *cap)
{
    dm_buf_printf(cap, " (%s", rpt_label(g->o, g->f->protocol));
    if (g->uhi && g->ulo == g->uhi) dm_buf_printf(cap, ", %lld users", (long long)g->uhi);
    else if (g->uhi) dm_buf_printf(cap, ", %lld to %lld users", (long long)g->ulo, (long long)g->uhi);
    dm_buf_adds(cap, ")");
}

/* The caption: the spec's title, else what is plotted against what, on which users. */
static void fig_caption(const figure *g, dm_buf *cap)
{
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    if (f->title && f->title[0]) {
        dm_buf_adds(cap, f->title);
        return;
    }
    if (g->points) {
        size_t at = cap->len;
        dm_buf_printf(cap, "%s%s%s%s", g->ylabel, g->y2label[0] ? " (left axis) and " : "", g->y2label, g->y2label[0] ? " (right axis)" : "");
        if (g->single) dm_buf_printf(cap, " at %s = %g", g->xlabel, g->x0);
        else dm_buf_printf(cap, " against %s", g->xlabel);
        dm_buf_printf(cap, ": %s.", g->what.data ? g->what.data : f->data);
        if (cap->data[at] >= 'a' && cap->data[at] <= 'z') cap->data[at] += 'A' - 'a';
        return;
    }
    if (g->bars) {
        and_list(o, f->metrics, f->nmetrics, cap);
        dm_buf_printf(cap, " of each model on the %s split", rpt_label(o, f->split));
    } else
        dm_buf_printf(cap, "%s on the %s split", rpt_label(o, g->ms), rpt_label(o, f->split));
    users_words(g, cap);
    if (!g->bars) dm_buf_printf(cap, " against %s", g->xlabel);
    if (g->left_out.len) dm_buf_printf(cap, "; %s, the same in every configuration, left out", g->left_out.data);
    dm_buf_adds(cap, g->p.any_sd ? "; mean and standard deviation over seeds." : ".");
}

/* Rank 0: the data and script, gnuplot, the Markdown image and the LaTeX figure. */
static int publish(const figure *g, int logx, size_t npts, dm_buf *md, dm_buf *tex)
{
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    char x0[600];
    snprintf(x0, sizeof x0, "%s = %g", g->xlabel, g->x0);
    rpt_gp_style st = {.name = f->name, .bars = g->bars || g->single, .xlabel = g->single ? x0 : g->xlabel, .ylabel = g->ylabel,
                       .y2label = g->y2label, .title = f->title, .logx = logx, .logy = f->logy > 0};
    int rc = rpt_gp_write(o, &st, &g->p);
    int missing = 0;
    if (!rc) rc = rpt_gp_run(o, f->name, &missing);
    if (!rc && missing) {
        static int warned;
        if (!warned) dm_warn("'%s' not found: figure scripts written but not run; install gnuplot (Debian: gnuplot-nox) and run "
                             "`gnuplot NAME.gp` in %s", dm_cfg_str(o->cfg, "report.gnuplot"), o->out);
        warned = 1;
    }
    dm_buf cap = {0};
    fig_caption(g, &cap);
    if (md) dm_buf_printf(md, "![%s](%s.png)\n\n*Figure %s.* %s\n\n", f->name, f->name, f->name, cap.data);
    if (tex) {
        dm_buf_printf(tex, "\\begin{figure}[tbp]\n\\centering\n\\includegraphics{%s.pdf}\n\\caption{", f->name);
        rpt_label_tex_escape(tex, cap.data);
        dm_buf_printf(tex, "}\n\\label{fig:%s}\n\\end{figure}\n\n", f->name);
    }
    dm_buf_free(&cap);
    dm_log("  figure %-28s %zu series, %zu points", f->name, g->p.n, npts);
    return rc;
}

static void figure_free(figure *g)
{
    rpt_plot_free(&g->p);
    dm_strv_free(g->models, g->nmodels);
    for (int a = 0; a < 3; a++) dm_strv_free(g->axcols[a], g->naxcols[a]);
    dm_buf_free(&g->left_out);
    dm_buf_free(&g->what);
}

int rpt_fig(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, dm_buf *md, dm_buf *tex, int *made)
{
    *made = 0;
    figure g = {.s = s, .o = o, .f = f, .bars = !strcmp(f->kind, "bars")};
    if (!g.bars && strcmp(f->kind, "curve")) {
        DM_ERR(DM_ECONFIG, "figure '%s': unknown kind '%s'", f->name, f->kind);
        DM_HINT("kind=bars or kind=curve");
        return par_agree(ctx, DM_ECONFIG);
    }
    int rc = DM_OK;
    g.points = !g.bars && (!strncmp(f->x, "column:", 7) || !strcmp(f->x, "row"));
    if (!g.points) {
        char *const star[] = {"*"};
        rc = rpt_match_models(s, f->nmodels ? f->models : star, f->nmodels ? f->nmodels : 1, &g.models, &g.nmodels);
        if (!rc && !f->nmetrics) rc = DM_ERR(DM_ECONFIG, "figure '%s': no metric given", f->name);
    }
    g.ms = f->nmetrics ? f->metrics[0] : "";
    if (!rc) rc = build_plot(&g);
    if (f->xlabel && f->xlabel[0]) snprintf(g.xlabel, sizeof g.xlabel, "%s", f->xlabel);
    if (f->ylabel && f->ylabel[0]) snprintf(g.ylabel, sizeof g.ylabel, "%s", f->ylabel);
    if (f->y2label && f->y2label[0]) snprintf(g.y2label, sizeof g.y2label, "%s", f->y2label);
    /* anything to draw? */
    size_t npts = 0;
    double xmin = INFINITY, xmax = -INFINITY;
    for (size_t i = 0; i < g.p.n; i++)
        for (size_t j = 0; j < g.p.s[i].n; j++) {
            npts += isfinite(g.p.s[i].y[j]);
            if (isfinite(g.p.s[i].sd[j])) g.p.any_sd = 1;
            xmin = g.p.s[i].x[j] < xmin ? g.p.s[i].x[j] : xmin;
            xmax = g.p.s[i].x[j] > xmax ? g.p.s[i].x[j] : xmax;
        }
    if (!rc) rc = single_x_as_bars(&g);
    int logx = !g.bars && !g.single && !g.p.ncats && (f->logx > 0 || (f->logx < 0 && xmin > 0 && xmax / xmin >= 50));
    rc = par_agree(ctx, rc);
    if (!rc && npts && ctx->rank == 0) rc = publish(&g, logx, npts, md, tex);
    if (!rc) *made = npts > 0;
    figure_free(&g);
    return par_agree(ctx, rc);
}

void rpt_fig_spec_free(rpt_fig_spec *f)
{
    DM_FREE_ALL(f->name, f->kind, f->split, f->protocol, f->x, f->data, f->xlabel, f->ylabel, f->y2label,
                f->title);
    dm_strv_free(f->models, f->nmodels);
    dm_strv_free(f->metrics, f->nmetrics);
    dm_strv_free(f->where, f->nwhere);
    dm_strv_free(f->y2, f->ny2);
    memset(f, 0, sizeof *f);
}
