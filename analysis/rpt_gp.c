/* rpt_gp.c: plots and their gnuplot data and scripts (see rpt_gp.h). */
#include "rpt_gp.h"

#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/sort.h"
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

/* ---- plots ------------------------------------------------------------------------------- */

rpt_series *rpt_plot_series(rpt_plot *p, const char *label)
{
    rpt_series *ns = dm_realloc_at(p->s, p->n + 1, sizeof *ns, __FILE__, __LINE__);
    if (!ns) return NULL;
    p->s = ns;
    rpt_series *s = &p->s[p->n];
    memset(s, 0, sizeof *s);
    s->axis = 1;
    s->label = dm_str_dup(label);
    if (!s->label) return NULL;
    p->n++;
    return s;
}

int rpt_plot_point(rpt_series *s, double x, double y, double sd)
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

int rpt_plot_category(rpt_plot *p, const char *c, double *x)
{
    int i = dm_strv_find(p->cats, p->ncats, c);
    if (i < 0) {
        DM_CALL(dm_strv_push(&p->cats, &p->ncats, c));
        i = (int)p->ncats - 1;
    }
    *x = i;
    return DM_OK;
}

void rpt_series_sort(rpt_series *s)
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
}

void rpt_plot_free(rpt_plot *p)
{
    for (size_t i = 0; i < p->n; i++) {
        DM_FREE_ALL(p->s[i].label, p->s[i].x, p->s[i].y, p->s[i].sd);
    }
    free(p->s);
    dm_strv_free(p->cats, p->ncats);
    memset(p, 0, sizeof *p);
}

/* ---- scripts ----------------------------------------------------------------------------- */

/* Okabe-Ito's colour-blind safe palette (yellow last: faint on white), then wine and grey; after
 * ten series the dash type changes. */
#define NCOLORS 10
static const char *const g_colors[NCOLORS] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                              "#56B4E9", "#000000", "#882255", "#999999", "#F0E442"};
static const int g_points[NCOLORS] = {7, 5, 9, 11, 13, 15, 4, 6, 8, 10};

/* A character of a label kept in a figure: LaTeX markup of report.labels ("SASRec$^{*}$", "hidden
 * size $d$") is for the .tex tables; the figures show its text ("SASRec*", "hidden size d"), dropping
 * $, the ^ _ { } of math and \commands. Strings without $ or \ are kept whole. */
static int gp_plain(const char *s, size_t i, int *math)
{
    if (s[i] == '$') {
        *math = !*math;
        return 0;
    }
    if (s[i] == '\\' || (i && s[i - 1] == '\\')) return 0;
    if (s[i] >= 'a' && s[i] <= 'z')
        for (size_t j = i; j > 0 && ((s[j - 1] >= 'a' && s[j - 1] <= 'z') || (s[j - 1] >= 'A' && s[j - 1] <= 'Z') || s[j - 1] == '\\'); j--)
            if (s[j - 1] == '\\') return 0;
    return !(s[i] == '{' || s[i] == '}' || (*math && (s[i] == '^' || s[i] == '_')));
}

/* a gnuplot double-quoted string, LaTeX markup left out (gp_plain) */
static int gp_str(dm_buf *b, const char *s)
{
    int latex = strchr(s, '$') || strchr(s, '\\'), math = 0;
    DM_CALL(dm_buf_addc(b, '"'));
    for (size_t i = 0; s[i]; i++) {
        if (latex && !gp_plain(s, i, &math)) continue;
        if (s[i] == '"' || s[i] == '\\') DM_CALL(dm_buf_addc(b, '\\'));
        DM_CALL(dm_buf_addc(b, s[i]));
    }
    return dm_buf_addc(b, '"');
}

static int has_axis2(const rpt_plot *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->s[i].axis == 2 && p->s[i].n) return 1;
    return 0;
}

/* The start of a script: what it is, the style, the line types, the axis labels and the title. */
static void gp_preamble(const rpt_gp_style *st, const rpt_plot *p, dm_buf *gp)
{
    int y2 = !st->bars && has_axis2(p);
    dm_buf_printf(gp,
                  "# %s.gp: written by dynmm report. Restyle freely and rerun `gnuplot %s.gp` in this directory.\n"
                  "# Data: %s.dat (tab-separated%s).\n"
                  "set datafile separator \"\\t\"\nset encoding utf8\nset datafile missing \"nan\"\n"
                  "set border %d lw 1\nset tics nomirror out scale 0.6\nset grid ytics lc rgb \"#dddddd\" lw 0.6 dt 1\n"
                  "%s",
                  st->name, st->name, st->name,
                  st->bars ? "; one row per category: label, then mean and sd per bar" : "; one block per series: x, mean, sd over seeds",
                  y2 ? 11 : 3,
                  st->bars ? "set key above horizontal Left reverse samplen 1.2 width 2 noenhanced\n"
                           : "set key outside right center vertical Left reverse samplen 1.2 spacing 1.1 width -1 noenhanced\n");
    for (int i = 0; i < NCOLORS; i++)
        dm_buf_printf(gp, "set linetype %d lc rgb \"%s\" lw 1.6 pt %d ps 0.5\n", i + 1, g_colors[i], g_points[i]);
    dm_buf_adds(gp, "set xlabel ");
    gp_str(gp, st->xlabel);
    dm_buf_adds(gp, " noenhanced\nset ylabel ");
    gp_str(gp, st->ylabel);
    dm_buf_adds(gp, " noenhanced\n");
    if (y2) {
        dm_buf_adds(gp, "set y2tics nomirror out scale 0.6\nset y2label ");
        gp_str(gp, st->y2label ? st->y2label : "");
        dm_buf_adds(gp, " noenhanced\n");
    }
    if (st->title && st->title[0]) {
        dm_buf_adds(gp, "set title ");
        gp_str(gp, st->title);
        dm_buf_adds(gp, " noenhanced\n");
    }
}

/* The longest line of any category name (names hold '\n' between model and settings). */
static size_t longest_category(const rpt_plot *p)
{
    size_t longest = 0;
    for (size_t c = 0; c < p->ncats; c++) {
        size_t l = strcspn(p->cats[c], "\n");
        for (const char *q = p->cats[c]; (q = strchr(q, '\n')); q++) l = strcspn(q + 1, "\n") > l ? strcspn(q + 1, "\n") : l;
        longest = l > longest ? l : longest;
    }
    return longest;
}

/* The category tics of a bar chart (clusters sit at 0, 1, ...). Names that do not fit side by side
 * (about 40 characters across a one-column figure) are rotated by 45 degrees on one line each:
 * gnuplot then makes the bottom margin they need, and the left margin is widened for a long first
 * name; names that fit keep their lines, with a bottom margin for the most lines. */
static void bars_xtics(const rpt_plot *p, const char *xlabel, dm_buf *gp)
{
    size_t ncat = p->ncats, longest = longest_category(p);
    int rot = ncat * (longest + 2) > 40;
    dm_buf_printf(gp, "set style data histograms\nset style histogram %s gap 1.4%s\nset style fill solid 0.9 border -1\n"
                      "set boxwidth 0.92\nset yrange [0:*]\nset offsets 0, 0, graph 0.05, 0\nset xtics scale 0%s (",
                  p->any_sd ? "errorbars" : "clustered", p->any_sd ? " lw 1" : "", rot ? " rotate by 45 right" : "");
    for (size_t c = 0; c < ncat; c++) {
        dm_buf_adds(gp, c ? ", \"" : "\"");
        const char *cat = p->cats[c];
        int latex = strchr(cat, '$') || strchr(cat, '\\'), math = 0;
        for (size_t i = 0; cat[i]; i++) {
            if (cat[i] == '\n') dm_buf_adds(gp, rot ? ", " : "\\n");
            else if (!latex || gp_plain(cat, i, &math)) {
                if (cat[i] == '"' || cat[i] == '\\') dm_buf_addc(gp, '\\');
                dm_buf_addc(gp, cat[i]);
            }
        }
        dm_buf_printf(gp, "\" %zu", c);
    }
    dm_buf_adds(gp, ")\n");
    if (rot) {
        /* the first name reaches left by ~0.7 of its length; half a category is ~20 / ncat characters */
        double first = ncat ? (double)strlen(p->cats[0]) : 0, need = 0.72 * first - 20.0 / (double)(ncat ? ncat : 1) + 2;
        if (need > 9) dm_buf_printf(gp, "set lmargin %.0f\n", ceil(need));
        return;
    }
    size_t lines = 1;
    for (size_t c = 0; c < ncat; c++) {
        size_t l = 1;
        for (const char *q = p->cats[c]; *q; q++) l += *q == '\n';
        lines = l > lines ? l : lines;
    }
    dm_buf_printf(gp, "set bmargin %zu\n", lines + (xlabel[0] ? 2 : 1));
    if (lines > 1) dm_buf_printf(gp, "set xlabel offset 0,-%zu\n", lines - 1);
}

/* A bar chart: data (a row per category: label, then mean and sd per series), tics, plot command. */
static void bars_script(const rpt_gp_style *st, const rpt_plot *p, dm_buf *dat, dm_buf *gp, dm_buf *plotcmd)
{
    dm_buf_adds(dat, "# category");
    for (size_t k = 0; k < p->n; k++) dm_buf_printf(dat, "\t%s mean\t%s sd", p->s[k].label, p->s[k].label);
    dm_buf_adds(dat, "\n");
    for (size_t c = 0; c < p->ncats; c++) {
        for (const char *q = p->cats[c]; *q; q++) dm_buf_addc(dat, *q == '\n' ? ' ' : *q);
        for (size_t k = 0; k < p->n; k++) {
            double y = c < p->s[k].n ? p->s[k].y[c] : NAN, sd = c < p->s[k].n ? p->s[k].sd[c] : NAN;
            dm_buf_printf(dat, "\t%.10g\t%.10g", y, isnan(sd) ? 0.0 : sd);
        }
        dm_buf_adds(dat, "\n");
    }
    bars_xtics(p, st->xlabel, gp);
    if (p->n == 1) dm_buf_adds(gp, "unset key\n"); /* the y label names the one series */
    dm_buf_adds(plotcmd, "plot ");
    for (size_t k = 0; k < p->n; k++) {
        if (k) dm_buf_adds(plotcmd, ", \\\n     ");
        dm_buf_printf(plotcmd, "\"%s%s\" using %zu", k ? "" : st->name, k ? "" : ".dat", 2 + 2 * k);
        if (p->any_sd) dm_buf_printf(plotcmd, ":%zu", 3 + 2 * k);
        dm_buf_printf(plotcmd, " lt %zu title ", k % NCOLORS + 1);
        gp_str(plotcmd, p->s[k].label);
    }
    dm_buf_adds(plotcmd, "\n");
}

/* The x tics of curves: the categories; a single x value alone (the range around it); a few values
 * (at most 10, none closer than 1/12 of the axis) at the values; else gnuplot's. */
static void curves_xtics(const rpt_plot *p, int logx, dm_buf *gp)
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
    double xs[16];
    size_t nx = 0;
    for (size_t i = 0; i < p->n && nx <= 10; i++)
        for (size_t j = 0; j < p->s[i].n && nx <= 10; j++) {
            size_t q = 0;
            while (q < nx && xs[q] != p->s[i].x[j]) q++;
            if (q == nx) xs[nx++] = p->s[i].x[j];
        }
    if (nx == 1) {
        double d = xs[0] ? 0.5 * fabs(xs[0]) : 1;
        dm_buf_printf(gp, "set xtics (%.10g)\nset xrange [%.10g:%.10g]\n", xs[0], xs[0] - d, xs[0] + d);
        return;
    }
    dm_buf_adds(gp, "set autoscale xfix\nset offsets graph 0.06, graph 0.06, 0, 0\n");
    if (nx < 2 || nx > 10) return;
    qsort(xs, nx, sizeof *xs, dm_cmp_f64);
    /* values too close for their labels (10 and 20 on an axis to 200): gnuplot's own tics */
    for (size_t i = 1; i < nx; i++) {
        double gap = logx && xs[0] > 0 ? log(xs[i] / xs[i - 1]) / log(xs[nx - 1] / xs[0]) : (xs[i] - xs[i - 1]) / (xs[nx - 1] - xs[0]);
        if (gap < 1.0 / 12) return;
    }
    dm_buf_adds(gp, "set xtics (");
    for (size_t i = 0; i < nx; i++) dm_buf_printf(gp, "%s%.10g", i ? ", " : "", xs[i]);
    dm_buf_adds(gp, ")\n");
}

/* The y range of an axis fitted to its data (means +- sd) with 8% room, from 0 when the data come
 * within that room of it; nothing on a log axis or without data. */
static void curves_yrange(const rpt_plot *p, int axis, int logy, dm_buf *gp)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < p->n; i++) {
        if (p->s[i].axis != axis) continue;
        for (size_t j = 0; j < p->s[i].n; j++) {
            double y = p->s[i].y[j], sd = isfinite(p->s[i].sd[j]) ? p->s[i].sd[j] : 0;
            if (!isfinite(y)) continue;
            lo = y - sd < lo ? y - sd : lo;
            hi = y + sd > hi ? y + sd : hi;
        }
    }
    if (logy || !isfinite(lo)) return;
    double room = hi > lo ? 0.08 * (hi - lo) : (hi ? 0.1 * fabs(hi) : 0.1);
    double a = lo - room, b = hi + room;
    if (lo >= 0 && a < 0) a = 0;
    dm_buf_printf(gp, "set %s [%.6g:%.6g]\n", axis == 2 ? "y2range" : "yrange", a, b);
}

/* Curves: data (a block per series: x, mean, sd), tics, ranges, log scales, plot command. */
static void curves_script(const rpt_gp_style *st, const rpt_plot *p, dm_buf *dat, dm_buf *gp, dm_buf *plotcmd)
{
    dm_buf_printf(dat, "# x\tmean\tsd\n");
    size_t blk = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->s[i].n) continue;
        if (blk) dm_buf_adds(dat, "\n\n");
        dm_buf_printf(dat, "# %s\n", p->s[i].label);
        for (size_t j = 0; j < p->s[i].n; j++)
            dm_buf_printf(dat, "%.10g\t%.10g\t%.10g\n", p->s[i].x[j], p->s[i].y[j], isnan(p->s[i].sd[j]) ? 0.0 : p->s[i].sd[j]);
        dm_buf_printf(plotcmd, "%s\"%s%s\" index %zu using 1:2%s%s with %s lt %zu dt %zu title ", blk ? ", \\\n     " : "plot ",
                      blk ? "" : st->name, blk ? "" : ".dat", blk, p->any_sd ? ":3" : "", p->s[i].axis == 2 ? " axes x1y2" : "",
                      p->any_sd ? "yerrorlines" : "linespoints", blk % NCOLORS + 1, blk / NCOLORS % 5 + 1);
        gp_str(plotcmd, p->s[i].label);
        blk++;
    }
    dm_buf_adds(plotcmd, "\n");
    curves_xtics(p, st->logx, gp);
    curves_yrange(p, 1, st->logy, gp);
    if (has_axis2(p)) curves_yrange(p, 2, st->logy, gp);
    if (st->logx) dm_buf_adds(gp, "set logscale x\n");
    if (st->logy) dm_buf_adds(gp, "set logscale y\n");
}

/* The outputs: PNG (pngcairo, 300 dpi) and PDF (pdfcairo) at report.width inches. */
static void gp_terminals(const rpt_opts *o, const char *name, const dm_buf *plotcmd, dm_buf *gp)
{
    double w = dm_cfg_float(o->cfg, "report.width"), h = 0.68 * w, fs = dm_cfg_float(o->cfg, "report.font_size");
    const char *font = dm_cfg_str(o->cfg, "report.font");
    if (o->png)
        dm_buf_printf(gp, "\nset terminal pngcairo size %d,%d noenhanced font \"%s,%g\" linewidth %g\nset output \"%s.png\"\n%s",
                      (int)(w * 300 + 0.5), (int)(h * 300 + 0.5), font, fs * 1.9, 2.4, name, plotcmd->data);
    if (o->pdf)
        dm_buf_printf(gp, "\nset terminal pdfcairo size %gin,%gin noenhanced font \"%s,%g\" linewidth 0.8\nset output \"%s.pdf\"\n%s",
                      w, h, font, fs, name, o->png ? "replot\n" : plotcmd->data);
    dm_buf_adds(gp, "unset output\n");
}

int rpt_gp_write(const rpt_opts *o, const rpt_gp_style *st, const rpt_plot *p)
{
    dm_buf dat = {0}, gp = {0}, plotcmd = {0};
    gp_preamble(st, p, &gp);
    if (st->bars) bars_script(st, p, &dat, &gp, &plotcmd);
    else curves_script(st, p, &dat, &gp, &plotcmd);
    gp_terminals(o, st->name, &plotcmd, &gp);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.dat", o->out, st->name);
    int rc = dm_fs_write_atomic(path, dat.data ? dat.data : "", dat.len, 0644);
    snprintf(path, sizeof path, "%s/%s.gp", o->out, st->name);
    if (!rc) rc = dm_fs_write_atomic(path, gp.data, gp.len, 0644);
    dm_buf_free(&dat);
    dm_buf_free(&gp);
    dm_buf_free(&plotcmd);
    return rc;
}

/* ---- gnuplot ----------------------------------------------------------------------------- */

int rpt_gp_run(const rpt_opts *o, const char *name, int *missing)
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
