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
 *                         columns as y (default: every other column), one series per dataset
 * Several seeds of a configuration give mean +- sd at every point (yerrorlines).
 */
#include "rpt_fig.h"

#include "rpt_label.h"

#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char *label;
    double *x, *y, *sd; /* (n) */
    size_t n, cap;
} series;

typedef struct {
    series *s;
    size_t n;
    char **cats;  /* categorical x: the category names; x holds their positions */
    size_t ncats;
    int any_sd;
} plot;

static void plot_free(plot *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->s[i].label);
        free(p->s[i].x);
        free(p->s[i].y);
        free(p->s[i].sd);
    }
    free(p->s);
    dm_strv_free(p->cats, p->ncats);
    memset(p, 0, sizeof *p);
}

static series *new_series(plot *p, const char *label)
{
    series *ns = dm_realloc_at(p->s, p->n + 1, sizeof *ns, __FILE__, __LINE__);
    if (!ns) return NULL;
    p->s = ns;
    series *s = &p->s[p->n];
    memset(s, 0, sizeof *s);
    s->label = dm_str_dup(label);
    if (!s->label) return NULL;
    p->n++;
    return s;
}

static int add_point(series *s, double x, double y, double sd)
{
    if (s->n == s->cap) {
        size_t c = s->cap ? 2 * s->cap : 8;
        double *a = dm_realloc_at(s->x, c, sizeof *a, __FILE__, __LINE__);
        if (!a) return DM_ENOMEM;
        s->x = a;
        if (!(a = dm_realloc_at(s->y, c, sizeof *a, __FILE__, __LINE__))) return DM_ENOMEM;
        s->y = a;
        if (!(a = dm_realloc_at(s->sd, c, sizeof *a, __FILE__, __LINE__))) return DM_ENOMEM;
        s->sd = a;
        s->cap = c;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->sd[s->n] = sd;
    s->n++;
    return DM_OK;
}

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

static int sort_series(series *s)
{
    for (size_t i = 1; i < s->n; i++)
        for (size_t j = i; j > 0 && s->x[j - 1] > s->x[j]; j--) {
            double t = s->x[j];
            s->x[j] = s->x[j - 1];
            s->x[j - 1] = t;
            t = s->y[j];
            s->y[j] = s->y[j - 1];
            s->y[j - 1] = t;
            t = s->sd[j];
            s->sd[j] = s->sd[j - 1];
            s->sd[j - 1] = t;
        }
    return DM_OK;
}

static int same_series(const series *a, const series *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->x[i] != b->x[i] || a->y[i] != b->y[i] || !((isnan(a->sd[i]) && isnan(b->sd[i])) || a->sd[i] == b->sd[i])) return 0;
    return 1;
}

/* ---- building the plots ------------------------------------------------------------------ */

static int cat_index(plot *p, const char *c, double *x)
{
    int i = dm_strv_find(p->cats, p->ncats, c);
    if (i < 0) {
        DM_CALL(dm_strv_push(&p->cats, &p->ncats, c));
        i = (int)p->ncats - 1;
    }
    *x = i;
    return DM_OK;
}

static int build_key_curve(const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, const char *key, char *const *models,
                           size_t nmodels, plot *p)
{
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
    double vals[4096];
    const char *metric = f->metrics[0];
    for (size_t m = 0; m < nmodels; m++) {
        size_t first = p->n;
        /* one series per combination of the other varied keys */
        for (size_t c = 0; c < s->nconfs; c++) {
            if (!s->confs[c].nruns || !rpt_conf_ok(s, c, f->where, f->nwhere)) continue;
            dm_buf other = {0};
            for (size_t k = 0; k < s->nvaried; k++)
                if ((int)k != kv) dm_buf_printf(&other, "%s%s=%s", other.len ? ", " : "", rpt_label_key(o, s, s->varied[k]), s->confs[c].values[k]);
            dm_buf lab = {0};
            dm_buf_adds(&lab, rpt_label(o, models[m]));
            if (other.len) dm_buf_printf(&lab, " (%s)", other.data);
            series *se = NULL;
            for (size_t i = first; i < p->n; i++)
                if (!strcmp(p->s[i].label, lab.data)) se = &p->s[i];
            if (!se) se = new_series(p, lab.data);
            dm_buf_free(&other);
            dm_buf_free(&lab);
            if (!se) return DM_ENOMEM;
            size_t k = rpt_conf_values(s, c, f->split, f->protocol, models[m], metric, vals);
            if (!k) continue;
            double mean, sd, x;
            mean_sd(vals, s->confs[c].nruns, &mean, &sd);
            if (numeric) x = strtod(s->confs[c].values[kv], NULL);
            else DM_CALL(cat_index(p, s->confs[c].values[kv], &x));
            to_percent(o, &mean, &sd);
            DM_CALL(add_point(se, x, mean, sd));
        }
        /* a model that does not depend on the other keys: one series */
        for (size_t i = first + 1; i < p->n; i++) sort_series(&p->s[i]);
        if (first < p->n) sort_series(&p->s[first]);
        int all_same = p->n - first > 1;
        for (size_t i = first + 1; i < p->n && all_same; i++) all_same = same_series(&p->s[first], &p->s[i]);
        if (all_same) {
            for (size_t i = first + 1; i < p->n; i++) {
                free(p->s[i].label);
                free(p->s[i].x);
                free(p->s[i].y);
                free(p->s[i].sd);
            }
            p->n = first + 1;
            free(p->s[first].label);
            p->s[first].label = dm_str_dup(rpt_label(o, models[m]));
            if (!p->s[first].label) return DM_ENOMEM;
        }
    }
    return DM_OK;
}

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

static int build_suffix_curve(const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, char *const *models, size_t nmodels,
                              plot *p)
{
    double vals[4096];
    for (size_t c = 0; c < s->nconfs; c++) {
        if (!s->confs[c].nruns || !rpt_conf_ok(s, c, f->where, f->nwhere)) continue;
        for (size_t m = 0; m < nmodels; m++) {
            char stem[512];
            double x;
            if (!split_suffix(models[m], stem, sizeof stem, &x)) continue;
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
            series *se = NULL;
            for (size_t i = 0; i < p->n; i++)
                if (!strcmp(p->s[i].label, lab)) se = &p->s[i];
            if (!se && !(se = new_series(p, lab))) return DM_ENOMEM;
            if (!rpt_conf_values(s, c, f->split, f->protocol, models[m], f->metrics[0], vals)) continue;
            double mean, sd;
            mean_sd(vals, s->confs[c].nruns, &mean, &sd);
            to_percent(o, &mean, &sd);
            DM_CALL(add_point(se, x, mean, sd));
        }
    }
    for (size_t i = 0; i < p->n; i++) sort_series(&p->s[i]);
    return DM_OK;
}

/* A y column of a points figure: one of its metrics (globs), or any with none given. */
static int wanted_column(const rpt_fig_spec *f, const char *col)
{
    int want = !f->nmetrics;
    for (size_t k = 0; k < f->nmetrics; k++) want |= dm_str_match(f->metrics[k], col);
    return want;
}

static int build_points_curve(const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, plot *p)
{
    const char *xcol = !strncmp(f->x, "column:", 7) ? f->x + 7 : NULL;
    int byrow = !strcmp(f->x, "row"), globbed = strpbrk(f->data, "*?[") != NULL;
    char *const star[] = {"*"};
    for (size_t c = 0; c < s->nconfs; c++) {
        if (!s->confs[c].nruns || !rpt_conf_ok(s, c, f->where, f->nwhere)) continue;
        const rpt_conf *cf = &s->confs[c];
        const rpt_run *r0 = &s->runs[cf->runs[0]];
        for (size_t e = 0; e < r0->ne; e++) {
            const rpt_entry *en = &r0->e[e];
            if (en->kind != RPT_POINTS || !dm_str_match(f->data, en->group)) continue;
            int ok = 0;
            char *const *globs = f->nmodels ? f->models : star;
            for (size_t g = 0; g < (f->nmodels ? f->nmodels : 1); g++) ok |= dm_str_match(globs[g], en->leaf);
            if (!ok) continue;
            int cx = xcol ? rpt_col(en, xcol) : (byrow ? -1 : 0);
            if (xcol && cx < 0) {
                DM_ERR(DM_ECONFIG, "figure '%s': %s has no column '%s'", f->name, en->name, xcol);
                return DM_ECONFIG;
            }
            for (size_t j = 0; j < en->cols; j++) {
                if ((int)j == cx || !wanted_column(f, en->colnames[j])) continue;
                /* a series per dataset: named by its group's last part when data= is a glob
                 * (data=stream/... names the variants), else by the dataset */
                dm_buf lab = {0};
                const char *gl = strrchr(en->group, '/');
                dm_buf_adds(&lab, rpt_label(o, globbed ? (gl ? gl + 1 : en->group) : en->leaf));
                size_t ny = 0;
                for (size_t jj = 0; jj < en->cols; jj++) ny += (int)jj != cx && wanted_column(f, en->colnames[jj]);
                if (ny > 1) dm_buf_printf(&lab, " %s", rpt_label(o, en->colnames[j]));
                if (s->nconfs > 1 && cf->label[0]) dm_buf_printf(&lab, " (%s)", cf->label);
                series *se = new_series(p, lab.data);
                dm_buf_free(&lab);
                if (!se) return DM_ENOMEM;
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
                    if (isfinite(x) && isfinite(mean)) DM_CALL(add_point(se, x, mean, sd));
                }
                sort_series(se);
            }
        }
    }
    return DM_OK;
}

/* ---- writing ----------------------------------------------------------------------------- */

static const char *const g_colors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
static const int g_points[] = {7, 5, 9, 11, 13, 15, 4, 6};

/* Runs `gnuplot NAME.gp` in dir; stdout and stderr to NAME.gp.log (removed on success). */
static int run_gnuplot(const rpt_opts *o, const char *name, int *missing)
{
    const char *cmd = dm_cfg_str(o->cfg, "report.gnuplot");
    *missing = 0;
    if (!cmd[0]) return DM_OK;
    char script[512], log[4400];
    snprintf(script, sizeof script, "%s.gp", name);
    snprintf(log, sizeof log, "%s.gp.log", name);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, o->out);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = {(char *)cmd, script, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, cmd, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e) {
        *missing = 1;
        return DM_OK;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    char full[8900];
    snprintf(full, sizeof full, "%s/%s", o->out, log);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        *missing = 1;
        unlink(full);
        return DM_OK;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        dm_warn("gnuplot failed on %s/%s (see %s); the script and data are kept", o->out, script, full);
        return DM_OK;
    }
    unlink(full);
    return DM_OK;
}

/* a gnuplot double-quoted string (enhanced text escaped) */
static int gp_str(dm_buf *b, const char *s)
{
    DM_CALL(dm_buf_addc(b, '"'));
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') DM_CALL(dm_buf_addc(b, '\\'));
        DM_CALL(dm_buf_addc(b, *s));
    }
    return dm_buf_addc(b, '"');
}

/* The start of a script: what it is, the style, the line types, the axis labels and the title. */
static void gp_preamble(const rpt_fig_spec *f, int bars, const char *xlabel, const char *ylabel, dm_buf *gp)
{
    dm_buf_printf(gp,
                  "# %s.gp: written by dynmm report. Restyle freely and rerun `gnuplot %s.gp` in this directory.\n"
                  "# Data: %s.dat (tab-separated%s).\n"
                  "set datafile separator \"\\t\"\nset encoding utf8\nset datafile missing \"nan\"\n"
                  "set border 3 lw 1\nset tics nomirror out scale 0.6\nset grid ytics lc rgb \"#dddddd\" lw 0.6 dt 1\n"
                  "%s",
                  f->name, f->name, f->name, bars ? "; one row per category: label, then mean and sd per bar" : "; one block per series: x, mean, sd over seeds",
                  bars ? "set key above horizontal Left reverse samplen 1.2 width 1 noenhanced\n"
                       : "set key outside right center vertical Left reverse samplen 1.2 spacing 1.1 width -1 noenhanced\n");
    for (int i = 0; i < 8; i++)
        dm_buf_printf(gp, "set linetype %d lc rgb \"%s\" lw 1.6 pt %d ps 0.4\n", i + 1, g_colors[i], g_points[i]);
    dm_buf_adds(gp, "set xlabel ");
    gp_str(gp, xlabel);
    dm_buf_adds(gp, " noenhanced\nset ylabel ");
    gp_str(gp, ylabel);
    dm_buf_adds(gp, " noenhanced\n");
    if (f->title && f->title[0]) {
        dm_buf_adds(gp, "set title ");
        gp_str(gp, f->title);
        dm_buf_adds(gp, " noenhanced\n");
    }
}

/* The longest line of any category name (names hold '\n' between model and settings). */
static size_t longest_category(const plot *p)
{
    size_t longest = 0;
    for (size_t c = 0; c < p->ncats; c++) {
        size_t l = strcspn(p->cats[c], "\n");
        for (const char *q = p->cats[c]; (q = strchr(q, '\n')); q++) l = strcspn(q + 1, "\n") > l ? strcspn(q + 1, "\n") : l;
        longest = l > longest ? l : longest;
    }
    return longest;
}

/* The category tics of a bar chart (clusters sit at 0, 1, ...) and the bottom margin they need. */
static void bars_xtics(const plot *p, size_t ncat, const char *xlabel, dm_buf *gp)
{
    size_t longest = longest_category(p);
    dm_buf_printf(gp, "set style data histograms\nset style histogram %s gap 1.4%s\nset style fill solid 0.9 border -1\n"
                      "set boxwidth 0.92\nset yrange [0:*]\nset offsets 0, 0, graph 0.05, 0\nset xtics scale 0%s (",
                  p->any_sd ? "errorbars" : "clustered", p->any_sd ? " lw 1" : "", ncat * longest > 90 ? " rotate by 30 right" : "");
    for (size_t c = 0; c < ncat; c++) {
        dm_buf_adds(gp, c ? ", \"" : "\"");
        for (const char *q = p->cats[c]; *q; q++) {
            if (*q == '\n') dm_buf_adds(gp, ncat * longest > 90 ? ", " : "\\n");
            else {
                if (*q == '"' || *q == '\\') dm_buf_addc(gp, '\\');
                dm_buf_addc(gp, *q);
            }
        }
        dm_buf_printf(gp, "\" %zu", c);
    }
    size_t lines = 1;
    for (size_t c = 0; c < ncat && ncat * longest <= 90; c++) {
        size_t l = 1;
        for (const char *q = p->cats[c]; *q; q++) l += *q == '\n';
        lines = l > lines ? l : lines;
    }
    dm_buf_printf(gp, ")\nset bmargin %zu\n", lines + (xlabel[0] ? 2 : 1));
    if (lines > 1) dm_buf_printf(gp, "set xlabel offset 0,-%zu\n", lines - 1);
}

/* A bar chart: data (a row per category: label, then mean and sd per metric), tics, plot command. */
static void bars_script(const rpt_opts *o, const rpt_fig_spec *f, const plot *p, char *const *bar_metrics, size_t nbm,
                        const char *xlabel, dm_buf *dat, dm_buf *gp, dm_buf *plotcmd)
{
    dm_buf_adds(dat, "# category");
    for (size_t k = 0; k < nbm; k++) dm_buf_printf(dat, "\t%s mean\t%s sd", bar_metrics[k], bar_metrics[k]);
    dm_buf_adds(dat, "\n");
    size_t ncat = p->n ? p->s[0].n : 0;
    for (size_t c = 0; c < ncat; c++) {
        for (const char *q = p->cats[c]; *q; q++) dm_buf_addc(dat, *q == '\n' ? ' ' : *q);
        for (size_t k = 0; k < nbm; k++) {
            double y = p->s[k].y[c], sd = p->s[k].sd[c];
            dm_buf_printf(dat, "\t%.10g\t%.10g", y, isnan(sd) ? 0.0 : sd);
        }
        dm_buf_adds(dat, "\n");
    }
    bars_xtics(p, ncat, xlabel, gp);
    dm_buf_adds(plotcmd, "plot ");
    for (size_t k = 0; k < nbm; k++) {
        if (k) dm_buf_adds(plotcmd, ", \\\n     ");
        dm_buf_printf(plotcmd, "\"%s%s\" using %zu", k ? "" : f->name, k ? "" : ".dat", 2 + 2 * k);
        if (p->any_sd) dm_buf_printf(plotcmd, ":%zu", 3 + 2 * k);
        dm_buf_printf(plotcmd, " lt %zu title ", k + 1);
        gp_str(plotcmd, rpt_label(o, bar_metrics[k]));
    }
    dm_buf_adds(plotcmd, "\n");
}

/* The x tics of curves: the categories, or a sweep's few values (at most 10) at the values. */
static void curves_xtics(const plot *p, dm_buf *gp)
{
    if (p->ncats) {
        dm_buf_adds(gp, "set xtics (");
        for (size_t c = 0; c < p->ncats; c++) {
            if (c) dm_buf_adds(gp, ", ");
            gp_str(gp, p->cats[c]);
            dm_buf_printf(gp, " %zu", c);
        }
        dm_buf_printf(gp, ")\nset xrange [-0.5:%g]\n", (double)p->ncats - 0.5);
        return;
    }
    dm_buf_adds(gp, "set offsets graph 0.06, graph 0.06, graph 0.06, graph 0.06\n");
    double xs[16];
    size_t nx = 0;
    for (size_t i = 0; i < p->n && nx <= 10; i++)
        for (size_t j = 0; j < p->s[i].n && nx <= 10; j++) {
            size_t q = 0;
            while (q < nx && xs[q] != p->s[i].x[j]) q++;
            if (q == nx) xs[nx++] = p->s[i].x[j];
        }
    if (nx < 2 || nx > 10) return;
    for (size_t i = 1; i < nx; i++)
        for (size_t j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
            double t = xs[j];
            xs[j] = xs[j - 1];
            xs[j - 1] = t;
        }
    dm_buf_adds(gp, "set xtics (");
    for (size_t i = 0; i < nx; i++) dm_buf_printf(gp, "%s%.10g", i ? ", " : "", xs[i]);
    dm_buf_adds(gp, ")\n");
}

/* Curves: data (a block per series: x, mean, sd), tics, log scales, plot command. */
static void curves_script(const rpt_fig_spec *f, const plot *p, int logx, dm_buf *dat, dm_buf *gp, dm_buf *plotcmd)
{
    dm_buf_printf(dat, "# x\tmean\tsd\n");
    size_t blk = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->s[i].n) continue;
        if (blk) dm_buf_adds(dat, "\n\n");
        dm_buf_printf(dat, "# %s\n", p->s[i].label);
        for (size_t j = 0; j < p->s[i].n; j++)
            dm_buf_printf(dat, "%.10g\t%.10g\t%.10g\n", p->s[i].x[j], p->s[i].y[j], isnan(p->s[i].sd[j]) ? 0.0 : p->s[i].sd[j]);
        dm_buf_printf(plotcmd, "%s\"%s%s\" index %zu using 1:2%s with %s lt %zu dt %zu title ", blk ? ", \\\n     " : "plot ",
                      blk ? "" : f->name, blk ? "" : ".dat", blk, p->any_sd ? ":3" : "", p->any_sd ? "yerrorlines" : "linespoints", blk % 8 + 1,
                      blk / 8 % 5 + 1);
        gp_str(plotcmd, p->s[i].label);
        blk++;
    }
    dm_buf_adds(plotcmd, "\n");
    curves_xtics(p, gp);
    if (logx) dm_buf_adds(gp, "set logscale x\n");
    if (f->logy > 0) dm_buf_adds(gp, "set logscale y\n");
}

/* The outputs: PNG (pngcairo, 300 dpi) and PDF (pdfcairo) at report.width inches. */
static void gp_terminals(const rpt_opts *o, const rpt_fig_spec *f, const dm_buf *plotcmd, dm_buf *gp)
{
    double w = dm_cfg_float(o->cfg, "report.width"), h = 0.68 * w, fs = dm_cfg_float(o->cfg, "report.font_size");
    const char *font = dm_cfg_str(o->cfg, "report.font");
    if (o->png)
        dm_buf_printf(gp, "\nset terminal pngcairo size %d,%d noenhanced font \"%s,%g\" linewidth %g\nset output \"%s.png\"\n%s",
                      (int)(w * 300 + 0.5), (int)(h * 300 + 0.5), font, fs * 1.9, 2.4, f->name, plotcmd->data);
    if (o->pdf)
        dm_buf_printf(gp, "\nset terminal pdfcairo size %gin,%gin noenhanced font \"%s,%g\" linewidth 0.8\nset output \"%s.pdf\"\n%s",
                      w, h, font, fs, f->name, o->png ? "replot\n" : plotcmd->data);
    dm_buf_adds(gp, "unset output\n");
}

/* Writes <name>.dat and <name>.gp into o->out. */
static int write_plot(const rpt_opts *o, const rpt_fig_spec *f, const plot *p, int bars, char *const *bar_metrics, size_t nbm,
                      const char *xlabel, const char *ylabel, int logx)
{
    dm_buf dat = {0}, gp = {0}, plotcmd = {0};
    gp_preamble(f, bars, xlabel, ylabel, &gp);
    if (bars) bars_script(o, f, p, bar_metrics, nbm, xlabel, &dat, &gp, &plotcmd);
    else curves_script(f, p, logx, &dat, &gp, &plotcmd);
    gp_terminals(o, f, &plotcmd, &gp);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.dat", o->out, f->name);
    int rc = dm_fs_write_atomic(path, dat.data ? dat.data : "", dat.len, 0644);
    snprintf(path, sizeof path, "%s/%s.gp", o->out, f->name);
    if (!rc) rc = dm_fs_write_atomic(path, gp.data, gp.len, 0644);
    dm_buf_free(&dat);
    dm_buf_free(&gp);
    dm_buf_free(&plotcmd);
    return rc;
}

/* ---- the figure -------------------------------------------------------------------------- */

/* A figure under construction. */
typedef struct {
    const rpt_set *s;
    const rpt_opts *o;
    const rpt_fig_spec *f;
    int bars, points;     /* kind=bars; a curve of points entries (x=column:NAME or x=row) */
    char **models;        /* (nmodels) the models matching the spec (not for points) */
    size_t nmodels;
    const char *ms;       /* the first metric ("" without) */
    plot p;
    char xlabel[512], ylabel[512];
} figure;

/* The label of a metric axis: the metric's, in percent when report.percent. */
static void metric_ylabel(figure *g, const char *metric)
{
    snprintf(g->ylabel, sizeof g->ylabel, "%s%s", rpt_label(g->o, metric), g->o->percent ? " (%)" : "");
}

/* The same numbers in every configuration of a model (categories cats_before..): one category,
 * named by the model. */
static int merge_categories(figure *g, size_t cats_before, const char *model)
{
    plot *p = &g->p;
    const rpt_fig_spec *f = g->f;
    if (p->ncats - cats_before <= 1) return DM_OK;
    for (size_t k = 0; k < f->nmetrics; k++)
        for (size_t c = cats_before + 1; c < p->ncats; c++)
            if (p->s[k].y[c] != p->s[k].y[cats_before]) return DM_OK;
    for (size_t c = cats_before + 1; c < p->ncats; c++) free(p->cats[c]);
    p->ncats = cats_before + 1;
    for (size_t k = 0; k < f->nmetrics; k++) p->s[k].n = cats_before + 1;
    free(p->cats[cats_before]);
    p->cats[cats_before] = dm_str_dup(rpt_label(g->o, model));
    return p->cats[cats_before] ? DM_OK : DM_ENOMEM;
}

/* Bars: categories model x configuration (as in tables), a bar per metric. */
static int build_bars(figure *g)
{
    const rpt_set *s = g->s;
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    plot *p = &g->p;
    double vals[4096];
    for (size_t k = 0; k < f->nmetrics; k++)
        if (!new_series(p, f->metrics[k])) return DM_ENOMEM;
    for (size_t m = 0; m < g->nmodels; m++) {
        size_t cats_before = p->ncats;
        for (size_t c = 0; c < s->nconfs; c++) {
            if (!s->confs[c].nruns || !rpt_conf_ok(s, c, f->where, f->nwhere)) continue;
            if (!rpt_conf_values(s, c, f->split, f->protocol, g->models[m], f->metrics[0], vals)) continue;
            dm_buf lab = {0};
            dm_buf_adds(&lab, rpt_label(o, g->models[m]));
            /* the settings' values on a second line (the x label names the keys) */
            for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&lab, "%s%s", v ? ", " : "\n", s->confs[c].values[v]);
            double x;
            int rc = cat_index(p, lab.data, &x);
            dm_buf_free(&lab);
            DM_CALL(rc);
            for (size_t k = 0; k < f->nmetrics; k++) {
                double mean = NAN, sd = NAN;
                rpt_conf_values(s, c, f->split, f->protocol, g->models[m], f->metrics[k], vals);
                mean_sd(vals, s->confs[c].nruns, &mean, &sd);
                to_percent(o, &mean, &sd);
                DM_CALL(add_point(&p->s[k], x, mean, sd));
            }
        }
        DM_CALL(merge_categories(g, cats_before, g->models[m]));
    }
    g->xlabel[0] = '\0';
    for (size_t v = 0; v < s->nvaried && p->ncats > 0; v++) {
        size_t l = strlen(g->xlabel);
        snprintf(g->xlabel + l, sizeof g->xlabel - l, "%s%s", v ? ", " : "model (", rpt_label_key(o, s, s->varied[v]));
    }
    if (g->xlabel[0]) strncat(g->xlabel, ")", sizeof g->xlabel - strlen(g->xlabel) - 1);
    if (f->nmetrics == 1) metric_ylabel(g, g->ms);
    else snprintf(g->ylabel, sizeof g->ylabel, "score%s", o->percent ? " (%)" : "");
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

/* The y label of points curves: the one y column every dataset contributes, else "value". */
static void points_ylabel(figure *g)
{
    const rpt_set *s = g->s;
    const rpt_fig_spec *f = g->f;
    const char *ycol = NULL;
    int one = 1;
    for (size_t r = 0; r < s->nruns && one; r++)
        for (size_t e = 0; e < s->runs[r].ne && one; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind != RPT_POINTS || !dm_str_match(f->data, en->group)) continue;
            for (size_t j = 0; j < en->cols && one; j++) {
                if (!strncmp(f->x, "column:", 7) && !strcmp(en->colnames[j], f->x + 7)) continue;
                if (!wanted_column(f, en->colnames[j])) continue;
                if (ycol && strcmp(ycol, en->colnames[j])) one = 0;
                ycol = en->colnames[j];
            }
        }
    snprintf(g->ylabel, sizeof g->ylabel, "%s", one && ycol ? rpt_label(g->o, ycol) : "value");
}

/* The series of the figure and its axis labels, by kind and x. */
static int build_plot(figure *g)
{
    const rpt_fig_spec *f = g->f;
    if (g->bars) return build_bars(g);
    if (!strncmp(f->x, "key:", 4)) {
        int rc = build_key_curve(g->s, g->o, f, f->x + 4, g->models, g->nmodels, &g->p);
        snprintf(g->xlabel, sizeof g->xlabel, "%s", rpt_label_key(g->o, g->s, f->x + 4));
        metric_ylabel(g, g->ms);
        return rc;
    }
    if (!strcmp(f->x, "suffix")) {
        int rc = build_suffix_curve(g->s, g->o, f, g->models, g->nmodels, &g->p);
        suffix_xlabel(g);
        metric_ylabel(g, g->ms);
        return rc;
    }
    if (g->points) {
        if (!f->data || !f->data[0])
            return DM_ERR(DM_ECONFIG, "figure '%s': x=%s needs data=GROUP (a group of points datasets)", f->name, f->x);
        int rc = build_points_curve(g->s, g->o, f, &g->p);
        snprintf(g->xlabel, sizeof g->xlabel, "%s",
                 !strcmp(f->x, "row") ? (strstr(f->data, "stream") || strstr(f->data, "window") ? "window" : "row") : rpt_label(g->o, f->x + 7));
        points_ylabel(g);
        return rc;
    }
    DM_ERR(DM_ECONFIG, "figure '%s': unknown x '%s'", f->name, f->x);
    DM_HINT("x=key:GROUP.KEY, x=suffix, x=column:NAME or x=row");
    return DM_ECONFIG;
}

/* The caption: the spec's title, else what is plotted against what. */
static void fig_caption(const figure *g, dm_buf *cap)
{
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    if (f->title && f->title[0]) dm_buf_adds(cap, f->title);
    else if (g->points) dm_buf_printf(cap, "%s against %s (%s).", g->ylabel, g->xlabel, f->data);
    else if (g->bars) {
        for (size_t k = 0; k < f->nmetrics; k++) dm_buf_printf(cap, "%s%s", k ? ", " : "", rpt_label(o, f->metrics[k]));
        dm_buf_printf(cap, " on the %s split (%s)", rpt_label(o, f->split), rpt_label(o, f->protocol));
    } else
        dm_buf_printf(cap, "%s on the %s split (%s) against %s", rpt_label(o, g->ms), rpt_label(o, f->split), rpt_label(o, f->protocol),
                      g->xlabel);
    if (!g->points && !(f->title && f->title[0])) dm_buf_adds(cap, g->p.any_sd ? "; mean and standard deviation over seeds." : ".");
}

/* Rank 0: the data and script, gnuplot, the Markdown image and the LaTeX figure. */
static int publish(const figure *g, int logx, size_t npts, dm_buf *md, dm_buf *tex)
{
    const rpt_opts *o = g->o;
    const rpt_fig_spec *f = g->f;
    int rc = write_plot(o, f, &g->p, g->bars, f->metrics, f->nmetrics, g->xlabel, g->ylabel, logx);
    int missing = 0;
    if (!rc) rc = run_gnuplot(o, f->name, &missing);
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
    int logx = !g.bars && !g.p.ncats && (f->logx > 0 || (f->logx < 0 && xmin > 0 && xmax / xmin >= 50));
    rc = par_agree(ctx, rc);
    if (!rc && npts && ctx->rank == 0) rc = publish(&g, logx, npts, md, tex);
    if (!rc) *made = npts > 0;
    plot_free(&g.p);
    dm_strv_free(g.models, g.nmodels);
    return par_agree(ctx, rc);
}

void rpt_fig_spec_free(rpt_fig_spec *f)
{
    free(f->name);
    free(f->kind);
    free(f->split);
    free(f->protocol);
    free(f->x);
    free(f->data);
    free(f->xlabel);
    free(f->ylabel);
    free(f->title);
    dm_strv_free(f->models, f->nmodels);
    dm_strv_free(f->metrics, f->nmetrics);
    dm_strv_free(f->where, f->nwhere);
    memset(f, 0, sizeof *f);
}
