/* report_fig.c: figures of `dynmm report`: a data file and a gnuplot script per figure, run with
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
#include "report.h"

#include "report_util.h"

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
                if ((int)k != kv) dm_buf_printf(&other, "%s%s=%s", other.len ? ", " : "", rpt_key_label(o, s, s->varied[k]), s->confs[c].values[k]);
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
            if (o->percent) {
                mean *= 100;
                sd *= 100;
            }
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
            if (o->percent) {
                mean *= 100;
                sd *= 100;
            }
            DM_CALL(add_point(se, x, mean, sd));
        }
    }
    for (size_t i = 0; i < p->n; i++) sort_series(&p->s[i]);
    return DM_OK;
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
            if (en->kind != RE_POINTS || !dm_str_match(f->data, en->group)) continue;
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
                if ((int)j == cx) continue;
                int want = 0;
                if (f->nmetrics)
                    for (size_t k = 0; k < f->nmetrics; k++) want |= dm_str_match(f->metrics[k], en->colnames[j]);
                else
                    want = 1;
                if (!want) continue;
                /* a series per dataset: named by its group's last part when data= is a glob
                 * (data=stream/... names the variants), else by the dataset */
                dm_buf lab = {0};
                const char *gl = strrchr(en->group, '/');
                dm_buf_adds(&lab, rpt_label(o, globbed ? (gl ? gl + 1 : en->group) : en->leaf));
                size_t ny = 0;
                for (size_t jj = 0; jj < en->cols; jj++) {
                    int w = 0;
                    if ((int)jj == cx) continue;
                    if (f->nmetrics)
                        for (size_t k = 0; k < f->nmetrics; k++) w |= dm_str_match(f->metrics[k], en->colnames[jj]);
                    else
                        w = 1;
                    ny += w;
                }
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

static int write_plot(const rpt_opts *o, const rpt_fig_spec *f, const plot *p, int bars, char *const *bar_metrics, size_t nbm,
                      const char *xlabel, const char *ylabel, int logx)
{
    dm_buf dat = {0}, gp = {0};
    int rc = DM_OK;
    double w = dm_cfg_float(o->cfg, "report.width"), h = 0.68 * w, fs = dm_cfg_float(o->cfg, "report.font_size");
    const char *font = dm_cfg_str(o->cfg, "report.font");
    dm_buf_printf(&gp,
                  "# %s.gp: written by dynmm report. Restyle freely and rerun `gnuplot %s.gp` in this directory.\n"
                  "# Data: %s.dat (tab-separated%s).\n"
                  "set datafile separator \"\\t\"\nset encoding utf8\nset datafile missing \"nan\"\n"
                  "set border 3 lw 1\nset tics nomirror out scale 0.6\nset grid ytics lc rgb \"#dddddd\" lw 0.6 dt 1\n"
                  "%s",
                  f->name, f->name, f->name, bars ? "; one row per category: label, then mean and sd per bar" : "; one block per series: x, mean, sd over seeds",
                  bars ? "set key above horizontal Left reverse samplen 1.2 width 1 noenhanced\n"
                       : "set key outside right center vertical Left reverse samplen 1.2 spacing 1.1 width -1 noenhanced\n");
    for (int i = 0; i < 8; i++)
        dm_buf_printf(&gp, "set linetype %d lc rgb \"%s\" lw 1.6 pt %d ps 0.4\n", i + 1, g_colors[i], g_points[i]);
    dm_buf_adds(&gp, "set xlabel ");
    ru_gp_str(&gp, xlabel);
    dm_buf_adds(&gp, " noenhanced\nset ylabel ");
    ru_gp_str(&gp, ylabel);
    dm_buf_adds(&gp, " noenhanced\n");
    if (f->title && f->title[0]) {
        dm_buf_adds(&gp, "set title ");
        ru_gp_str(&gp, f->title);
        dm_buf_adds(&gp, " noenhanced\n");
    }
    dm_buf plotcmd = {0};
    if (bars) {
        /* data: label, then mean and sd per metric */
        dm_buf_adds(&dat, "# category");
        for (size_t k = 0; k < nbm; k++) dm_buf_printf(&dat, "\t%s mean\t%s sd", bar_metrics[k], bar_metrics[k]);
        dm_buf_adds(&dat, "\n");
        size_t ncat = p->n ? p->s[0].n : 0;
        for (size_t c = 0; c < ncat; c++) {
            for (const char *q = p->cats[c]; *q; q++) dm_buf_addc(&dat, *q == '\n' ? ' ' : *q);
            for (size_t k = 0; k < nbm; k++) {
                double y = p->s[k].y[c], sd = p->s[k].sd[c];
                dm_buf_printf(&dat, "\t%.10g\t%.10g", y, isnan(sd) ? 0.0 : sd);
            }
            dm_buf_adds(&dat, "\n");
        }
        size_t longest = 0;
        for (size_t c = 0; c < p->ncats; c++) {
            size_t l = strcspn(p->cats[c], "\n");
            for (const char *q = p->cats[c]; (q = strchr(q, '\n')); q++) l = strcspn(q + 1, "\n") > l ? strcspn(q + 1, "\n") : l;
            longest = l > longest ? l : longest;
        }
        dm_buf_printf(&gp, "set style data histograms\nset style histogram %s gap 1.4%s\nset style fill solid 0.9 border -1\n"
                           "set boxwidth 0.92\nset yrange [0:*]\nset offsets 0, 0, graph 0.05, 0\nset xtics scale 0%s (",
                      p->any_sd ? "errorbars" : "clustered", p->any_sd ? " lw 1" : "",
                      ncat * longest > 90 ? " rotate by 30 right" : "");
        /* the categories, one tic each (clusters sit at 0, 1, ...) */
        for (size_t c = 0; c < ncat; c++) {
            dm_buf_adds(&gp, c ? ", \"" : "\"");
            for (const char *q = p->cats[c]; *q; q++) {
                if (*q == '\n') dm_buf_adds(&gp, ncat * longest > 90 ? ", " : "\\n");
                else {
                    if (*q == '"' || *q == '\\') dm_buf_addc(&gp, '\\');
                    dm_buf_addc(&gp, *q);
                }
            }
            dm_buf_printf(&gp, "\" %zu", c);
        }
        size_t lines = 1;
        for (size_t c = 0; c < ncat && ncat * longest <= 90; c++) {
            size_t l = 1;
            for (const char *q = p->cats[c]; *q; q++) l += *q == '\n';
            lines = l > lines ? l : lines;
        }
        dm_buf_printf(&gp, ")\nset bmargin %zu\n", lines + (xlabel[0] ? 2 : 1));
        if (lines > 1) dm_buf_printf(&gp, "set xlabel offset 0,-%zu\n", lines - 1);
        {
            dm_buf_adds(&plotcmd, "plot ");
            for (size_t k = 0; k < nbm; k++) {
                if (k) dm_buf_adds(&plotcmd, ", \\\n     ");
                dm_buf_printf(&plotcmd, "\"%s%s\" using %zu", k ? "" : f->name, k ? "" : ".dat", 2 + 2 * k);
                if (p->any_sd) dm_buf_printf(&plotcmd, ":%zu", 3 + 2 * k);
                dm_buf_printf(&plotcmd, " lt %zu title ", k + 1);
                ru_gp_str(&plotcmd, rpt_label(o, bar_metrics[k]));
            }
            dm_buf_adds(&plotcmd, "\n");
        }
    } else {
        dm_buf_printf(&dat, "# x\tmean\tsd\n");
        size_t blk = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (!p->s[i].n) continue;
            if (blk) dm_buf_adds(&dat, "\n\n");
            dm_buf_printf(&dat, "# %s\n", p->s[i].label);
            for (size_t j = 0; j < p->s[i].n; j++)
                dm_buf_printf(&dat, "%.10g\t%.10g\t%.10g\n", p->s[i].x[j], p->s[i].y[j], isnan(p->s[i].sd[j]) ? 0.0 : p->s[i].sd[j]);
            dm_buf_printf(&plotcmd, "%s\"%s%s\" index %zu using 1:2%s with %s lt %zu dt %zu title ", blk ? ", \\\n     " : "plot ",
                          blk ? "" : f->name, blk ? "" : ".dat", blk, p->any_sd ? ":3" : "", p->any_sd ? "yerrorlines" : "linespoints", blk % 8 + 1,
                          blk / 8 % 5 + 1);
            ru_gp_str(&plotcmd, p->s[i].label);
            blk++;
        }
        dm_buf_adds(&plotcmd, "\n");
        if (p->ncats) {
            dm_buf_adds(&gp, "set xtics (");
            for (size_t c = 0; c < p->ncats; c++) {
                if (c) dm_buf_adds(&gp, ", ");
                ru_gp_str(&gp, p->cats[c]);
                dm_buf_printf(&gp, " %zu", c);
            }
            dm_buf_printf(&gp, ")\nset xrange [-0.5:%g]\n", (double)p->ncats - 0.5);
        } else {
            dm_buf_adds(&gp, "set offsets graph 0.06, graph 0.06, graph 0.06, graph 0.06\n");
            /* a sweep's few values: tics at the values themselves */
            double xs[16];
            size_t nx = 0;
            for (size_t i = 0; i < p->n && nx <= 10; i++)
                for (size_t j = 0; j < p->s[i].n && nx <= 10; j++) {
                    size_t q = 0;
                    while (q < nx && xs[q] != p->s[i].x[j]) q++;
                    if (q == nx) xs[nx++] = p->s[i].x[j];
                }
            if (nx >= 2 && nx <= 10) {
                for (size_t i = 1; i < nx; i++)
                    for (size_t j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
                        double t = xs[j];
                        xs[j] = xs[j - 1];
                        xs[j - 1] = t;
                    }
                dm_buf_adds(&gp, "set xtics (");
                for (size_t i = 0; i < nx; i++) dm_buf_printf(&gp, "%s%.10g", i ? ", " : "", xs[i]);
                dm_buf_adds(&gp, ")\n");
            }
        }
        if (logx) dm_buf_adds(&gp, "set logscale x\n");
        if (f->logy > 0) dm_buf_adds(&gp, "set logscale y\n");
    }
    int png = o->png, pdf = o->pdf;
    if (png)
        dm_buf_printf(&gp, "\nset terminal pngcairo size %d,%d noenhanced font \"%s,%g\" linewidth %g\nset output \"%s.png\"\n%s",
                      (int)(w * 300 + 0.5), (int)(h * 300 + 0.5), font, fs * 1.9, 2.4, f->name, plotcmd.data);
    if (pdf)
        dm_buf_printf(&gp, "\nset terminal pdfcairo size %gin,%gin noenhanced font \"%s,%g\" linewidth 0.8\nset output \"%s.pdf\"\n%s",
                      w, h, font, fs, f->name, png ? "replot\n" : plotcmd.data);
    dm_buf_adds(&gp, "unset output\n");
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.dat", o->out, f->name);
    rc = dm_fs_write_atomic(path, dat.data ? dat.data : "", dat.len, 0644);
    snprintf(path, sizeof path, "%s/%s.gp", o->out, f->name);
    if (!rc) rc = dm_fs_write_atomic(path, gp.data, gp.len, 0644);
    dm_buf_free(&dat);
    dm_buf_free(&gp);
    dm_buf_free(&plotcmd);
    return rc;
}

int rpt_figure(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_fig_spec *f, dm_buf *md, dm_buf *tex, int *made)
{
    *made = 0;
    plot p = {0};
    char **models = NULL;
    size_t nmodels = 0;
    int rc = DM_OK, bars = !strcmp(f->kind, "bars"), logx = 0;
    char xlabel[512] = "", ylabel[512] = "";
    if (!bars && strcmp(f->kind, "curve")) {
        DM_ERR(DM_ECONFIG, "figure '%s': unknown kind '%s'", f->name, f->kind);
        DM_HINT("kind=bars or kind=curve");
        return par_agree(ctx, DM_ECONFIG);
    }
    int points = !bars && (!strncmp(f->x, "column:", 7) || !strcmp(f->x, "row"));
    if (!points) {
        char *const star[] = {"*"};
        rc = rpt_match_models(s, f->nmodels ? f->models : star, f->nmodels ? f->nmodels : 1, &models, &nmodels);
        if (!rc && !f->nmetrics) rc = DM_ERR(DM_ECONFIG, "figure '%s': no metric given", f->name);
    }
    const char *ms = f->nmetrics ? f->metrics[0] : "";
    if (!rc && bars) {
        /* categories: model x configuration (as in tables), bars: metrics */
        double vals[4096];
        for (size_t k = 0; k < f->nmetrics && !rc; k++)
            if (!new_series(&p, f->metrics[k])) rc = DM_ENOMEM;
        for (size_t m = 0; m < nmodels && !rc; m++) {
            size_t cats_before = p.ncats;
            for (size_t c = 0; c < s->nconfs && !rc; c++) {
                if (!s->confs[c].nruns || !rpt_conf_ok(s, c, f->where, f->nwhere)) continue;
                if (!rpt_conf_values(s, c, f->split, f->protocol, models[m], f->metrics[0], vals)) continue;
                dm_buf lab = {0};
                dm_buf_adds(&lab, rpt_label(o, models[m]));
                /* the settings' values on a second line (the x label names the keys) */
                for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&lab, "%s%s", v ? ", " : "\n", s->confs[c].values[v]);
                double x;
                rc = cat_index(&p, lab.data, &x);
                dm_buf_free(&lab);
                for (size_t k = 0; k < f->nmetrics && !rc; k++) {
                    double mean = NAN, sd = NAN;
                    rpt_conf_values(s, c, f->split, f->protocol, models[m], f->metrics[k], vals);
                    mean_sd(vals, s->confs[c].nruns, &mean, &sd);
                    if (o->percent) {
                        mean *= 100;
                        sd *= 100;
                    }
                    rc = add_point(&p.s[k], x, mean, sd);
                }
            }
            /* the same numbers in every configuration: one category */
            size_t added = p.ncats - cats_before;
            if (!rc && added > 1) {
                int same = 1;
                for (size_t k = 0; k < f->nmetrics && same; k++)
                    for (size_t c = cats_before + 1; c < p.ncats; c++)
                        if (p.s[k].y[c] != p.s[k].y[cats_before]) same = 0;
                if (same) {
                    for (size_t c = cats_before + 1; c < p.ncats; c++) free(p.cats[c]);
                    p.ncats = cats_before + 1;
                    for (size_t k = 0; k < f->nmetrics; k++) p.s[k].n = cats_before + 1;
                    free(p.cats[cats_before]);
                    p.cats[cats_before] = dm_str_dup(rpt_label(o, models[m]));
                    if (!p.cats[cats_before]) rc = DM_ENOMEM;
                }
            }
        }
        xlabel[0] = '\0';
        for (size_t v = 0; v < s->nvaried && p.ncats > 0; v++) {
            size_t l = strlen(xlabel);
            snprintf(xlabel + l, sizeof xlabel - l, "%s%s", v ? ", " : "model (", rpt_key_label(o, s, s->varied[v]));
        }
        if (xlabel[0]) strncat(xlabel, ")", sizeof xlabel - strlen(xlabel) - 1);
        if (f->nmetrics == 1) snprintf(ylabel, sizeof ylabel, "%s%s", rpt_label(o, ms), o->percent ? " (%)" : "");
        else snprintf(ylabel, sizeof ylabel, "score%s", o->percent ? " (%)" : "");
    } else if (!rc && !strncmp(f->x, "key:", 4)) {
        rc = build_key_curve(s, o, f, f->x + 4, models, nmodels, &p);
        snprintf(xlabel, sizeof xlabel, "%s", rpt_key_label(o, s, f->x + 4));
        snprintf(ylabel, sizeof ylabel, "%s%s", rpt_label(o, ms), o->percent ? " (%)" : "");
    } else if (!rc && !strcmp(f->x, "suffix")) {
        rc = build_suffix_curve(s, o, f, models, nmodels, &p);
        /* x label: the common start of the stems after '@' ("drop_visual_", "drop_text_" -> "drop") */
        char lab[512] = "";
        int first = 1;
        for (size_t m = 0; m < nmodels; m++) {
            char stem[512];
            double x;
            if (!split_suffix(models[m], stem, sizeof stem, &x)) continue;
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
        snprintf(xlabel, sizeof xlabel, "%s", rpt_label(o, lab));
        snprintf(ylabel, sizeof ylabel, "%s%s", rpt_label(o, ms), o->percent ? " (%)" : "");
    } else if (!rc && points) {
        if (!f->data || !f->data[0]) {
            rc = DM_ERR(DM_ECONFIG, "figure '%s': x=%s needs data=GROUP (a group of points datasets)", f->name, f->x);
        } else {
            rc = build_points_curve(s, o, f, &p);
            snprintf(xlabel, sizeof xlabel, "%s",
                     !strcmp(f->x, "row") ? (strstr(f->data, "stream") || strstr(f->data, "window") ? "window" : "row") : rpt_label(o, f->x + 7));
            /* the y label: the one y column every dataset contributes, if there is one */
            const char *ycol = NULL;
            int one = 1;
            for (size_t r = 0; r < s->nruns && one; r++)
                for (size_t e = 0; e < s->runs[r].ne && one; e++) {
                    const rpt_entry *en = &s->runs[r].e[e];
                    if (en->kind != RE_POINTS || !dm_str_match(f->data, en->group)) continue;
                    for (size_t j = 0; j < en->cols && one; j++) {
                        if (!strncmp(f->x, "column:", 7) && !strcmp(en->colnames[j], f->x + 7)) continue;
                        int want = !f->nmetrics;
                        for (size_t k = 0; k < f->nmetrics; k++) want |= dm_str_match(f->metrics[k], en->colnames[j]);
                        if (!want) continue;
                        if (ycol && strcmp(ycol, en->colnames[j])) one = 0;
                        ycol = en->colnames[j];
                    }
                }
            snprintf(ylabel, sizeof ylabel, "%s", one && ycol ? rpt_label(o, ycol) : "value");
        }
    } else if (!rc) {
        rc = DM_ERR(DM_ECONFIG, "figure '%s': unknown x '%s'", f->name, f->x);
        DM_HINT("x=key:GROUP.KEY, x=suffix, x=column:NAME or x=row");
    }
    if (f->xlabel && f->xlabel[0]) snprintf(xlabel, sizeof xlabel, "%s", f->xlabel);
    if (f->ylabel && f->ylabel[0]) snprintf(ylabel, sizeof ylabel, "%s", f->ylabel);
    /* anything to draw? */
    size_t npts = 0, maxseeds_sd = 0;
    double xmin = INFINITY, xmax = -INFINITY;
    for (size_t i = 0; i < p.n; i++)
        for (size_t j = 0; j < p.s[i].n; j++) {
            npts += isfinite(p.s[i].y[j]);
            if (isfinite(p.s[i].sd[j])) maxseeds_sd = 1;
            xmin = p.s[i].x[j] < xmin ? p.s[i].x[j] : xmin;
            xmax = p.s[i].x[j] > xmax ? p.s[i].x[j] : xmax;
        }
    p.any_sd = (int)maxseeds_sd;
    if (!bars && !p.ncats) logx = f->logx > 0 || (f->logx < 0 && xmin > 0 && xmax / xmin >= 50);
    rc = par_agree(ctx, rc);
    if (!rc && npts && ctx->rank == 0) {
        rc = write_plot(o, f, &p, bars, f->metrics, f->nmetrics, xlabel, ylabel, logx);
        int missing = 0;
        if (!rc) rc = run_gnuplot(o, f->name, &missing);
        if (!rc && missing) {
            static int warned;
            if (!warned) dm_warn("'%s' not found: figure scripts written but not run; install gnuplot (Debian: gnuplot-nox) and run "
                                 "`gnuplot NAME.gp` in %s", dm_cfg_str(o->cfg, "report.gnuplot"), o->out);
            warned = 1;
        }
        dm_buf cap = {0};
        if (f->title && f->title[0]) dm_buf_adds(&cap, f->title);
        else if (points) dm_buf_printf(&cap, "%s against %s (%s).", ylabel, xlabel, f->data);
        else if (bars) {
            for (size_t k = 0; k < f->nmetrics; k++) dm_buf_printf(&cap, "%s%s", k ? ", " : "", rpt_label(o, f->metrics[k]));
            dm_buf_printf(&cap, " on the %s split (%s)", rpt_label(o, f->split), rpt_label(o, f->protocol));
        } else
            dm_buf_printf(&cap, "%s on the %s split (%s) against %s", rpt_label(o, ms), rpt_label(o, f->split), rpt_label(o, f->protocol), xlabel);
        if (!points && !(f->title && f->title[0])) dm_buf_adds(&cap, p.any_sd ? "; mean and standard deviation over seeds." : ".");
        if (md) dm_buf_printf(md, "![%s](%s.png)\n\n*Figure %s.* %s\n\n", f->name, f->name, f->name, cap.data);
        if (tex) {
            dm_buf_printf(tex, "\\begin{figure}[tbp]\n\\centering\n\\includegraphics{%s.pdf}\n\\caption{", f->name);
            ru_tex_escape(tex, cap.data);
            dm_buf_printf(tex, "}\n\\label{fig:%s}\n\\end{figure}\n\n", f->name);
        }
        dm_buf_free(&cap);
        dm_log("  figure %-28s %zu series, %zu points", f->name, p.n, npts);
    }
    if (!rc) *made = npts > 0;
    plot_free(&p);
    dm_strv_free(models, nmodels);
    return par_agree(ctx, rc);
}
