/* cmd_report.c: `dynmm report`: paper-ready tables and figures from one or many results files.
 *
 *   dynmm report [REPORT.cfg] INPUT... [--set report.key=value ...]
 *
 * INPUT: results.h5 files, run directories, sweep directories or manifests (every run of the sweep),
 * or globs of these (report.inputs adds more). Runs are grouped into configurations and seeds (see
 * rpt.h); the tables and figures (rpt_spec.h says which) go to report.out:
 *   NAME.tex, NAME_tabular.tex   booktabs table (float with caption and legend; the tabular alone)
 *   NAME.md, NAME.csv            Markdown; CSV with one line per cell (mean, sd, seeds, p, mark)
 *   NAME_tests.csv               every paired test: per seed across users, across seeds, pooled
 *   FIG.dat, FIG.gp, FIG.png/pdf figure data, gnuplot script (rerun to restyle), figure
 *   index.md, report.tex         everything in one Markdown page and one LaTeX document
 *
 * The settings come from REPORT.cfg when given; otherwise from the report.* and stats.* keys stored
 * in the first results file (so a sweep's report settings apply), then --set.
 */
#include "cmd_report.h"

#include "../mpi/cli.h"
#include "rpt.h"
#include "rpt_fig.h"
#include "rpt_label.h"
#include "rpt_spec.h"
#include "rpt_table.h"

#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/strv.h"
#include "../src/core/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: dynmm report [REPORT.cfg] INPUT... [--set report.key=value ...]\n\n"
    "Reads results files (INPUT: results.h5 files, run or sweep directories, manifests, globs) and\n"
    "writes tables (LaTeX booktabs, Markdown, CSV) with mean +- sd over seeds, best in bold, second\n"
    "underlined, and paired significance marks against a baseline (stats.test across users within a\n"
    "seed, report.across_seeds across seeds, Holm over each table), and gnuplot figures (PNG, PDF;\n"
    "the scripts stay beside them). Output in report.out (default DIR/report for one directory or\n"
    "manifest, else ./report), with index.md and report.tex gathering everything. Examples:\n\n"
    "  dynmm report runs/sweeps/small\n"
    "  dynmm report runs/a/results.h5 runs/b/results.h5 --set report.baseline=sasrec\n"
    "  dynmm report paper.cfg 'runs/sweeps/*/manifest.tsv'\n\n"
    "Table and figure specs (report.tables, report.figures), e.g.\n"
    "  \"name=main; split=test; protocols=full,uni99; models=pop,ease,sasrec; metrics=hit@10,ndcg@10; baseline=ease\"\n"
    "  \"name=hidden; kind=curve; x=key:sasrec.hidden; models=sasrec; metrics=ndcg@10\"\n"
    "  \"name=dropout; kind=bars; models=align,align@drop_*; metrics=hit@10\"\n"
    "  \"name=latency; kind=curve; data=latency; x=column:prompt_len; metrics=seconds\"\n"
    "Every key is documented in configs/reference.cfg (groups report and stats).\n";

/* ---- output directory -------------------------------------------------------------------- */

static int out_dir_default(char *const *inputs, size_t n, char *out, size_t cap)
{
    snprintf(out, cap, "report");
    if (n != 1 || strpbrk(inputs[0], "*?[")) return DM_OK;
    struct stat st;
    if (stat(inputs[0], &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(out, cap, "%s/report", inputs[0]); /* a run or sweep directory: its report beside its runs */
    } else {
        size_t l = strlen(inputs[0]);
        if ((l > 4 && !strcmp(inputs[0] + l - 4, ".tsv")) || (l > 5 && !strcmp(inputs[0] + l - 5, ".json"))) {
            const char *s = strrchr(inputs[0], '/');
            if (s) snprintf(out, cap, "%.*s/report", (int)(s - inputs[0]), inputs[0]);
        }
    }
    for (size_t l = strlen(out); l > 1 && out[l - 1] == '/'; l--) out[l - 1] = '\0';
    return DM_OK;
}

/* ---- the command ------------------------------------------------------------------------- */

/* The inputs: report.inputs, then the positional arguments (an option there is an error). */
static int collect_inputs(const cli_args *a, const dm_cfg *cfg0, char ***inputs, size_t *ninputs)
{
    int rc = DM_OK;
    for (size_t i = 0; i < dm_cfg_len(cfg0, "report.inputs") && !rc; i++) rc = dm_strv_push(inputs, ninputs, dm_cfg_str_at(cfg0, "report.inputs", i));
    for (int i = 0; i < a->npositional && !rc; i++) {
        if (a->positional[i][0] == '-' && a->positional[i][1] == '-') {
            rc = DM_ERR(DM_ECONFIG, "report: unknown option '%s'", a->positional[i]);
            DM_HINT("settings are keys: --set report.out=DIR; see `dynmm report --help`");
        } else
            rc = dm_strv_push(inputs, ninputs, a->positional[i]);
    }
    if (!rc && !*ninputs) {
        rc = DM_ERR(DM_ECONFIG, "report: no input");
        DM_HINT("give results.h5 files, run directories, a sweep directory or manifest: dynmm report runs/sweeps/small");
    }
    return rc;
}

/* The settings: the report config, or those stored in the first results file, then --set; the
 * options, and the output directory (created by rank 0). */
static int settings(par_ctx *ctx, const cli_args *a, const dm_cfg *cfg0, const rpt_set *s, char *const *inputs, size_t ninputs,
                    dm_cfg *cfg, rpt_opts *o)
{
    int rc;
    if (a->config_path) rc = dm_cfg_copy(cfg, cfg0);
    else {
        rc = dm_cfg_copy(cfg, &s->runs[0].cfg);
        for (int i = 0; i < a->nsets && !rc; i++) rc = dm_cfg_set(cfg, a->sets[i]);
    }
    if (!rc) rc = rpt_opts_init(cfg, o);
    if (!rc) {
        if (dm_cfg_str(cfg, "report.out")[0]) snprintf(o->out, sizeof o->out, "%s", dm_cfg_str(cfg, "report.out"));
        else out_dir_default(inputs, ninputs, o->out, sizeof o->out);
        if (ctx->rank == 0) rc = dm_fs_mkdirs(o->out);
    }
    return rc;
}

static void log_inputs(const rpt_set *s, size_t missing)
{
    size_t nused = 0;
    for (size_t r = 0; r < s->nruns; r++) nused += s->runs[r].conf != SIZE_MAX;
    dm_buf vk = {0};
    for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&vk, "%s%s", v ? ", " : "; varied: ", s->varied[v]);
    dm_log("report: %zu results file%s, %zu configuration%s%s", nused, nused == 1 ? "" : "s", s->nconfs, s->nconfs == 1 ? "" : "s",
           vk.data ? vk.data : "");
    dm_buf_free(&vk);
    if (missing) dm_warn("%zu run%s of the sweep had no results yet and are not in the report", missing, missing == 1 ? "" : "s");
}

/* The tables (collective): their Markdown into md, \input lines into tex; *ntab made. */
static int make_tables(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_specs *sp, dm_buf *md, dm_buf *tex, size_t *ntab)
{
    int rc = DM_OK;
    for (size_t i = 0; i < sp->nt && !rc; i++) {
        const rpt_table_spec *t = &sp->t[i];
        size_t before = md->len;
        rc = rpt_table(ctx, s, o, t, md);
        if (!rc && md->len > before) {
            (*ntab)++;
            dm_log("  table  %-28s %zu model pattern%s x %zu protocol%s x %zu metric%s", t->name, t->nmodels, t->nmodels == 1 ? "" : "s",
                   t->nprotocols, t->nprotocols == 1 ? "" : "s", t->nmetrics, t->nmetrics == 1 ? "" : "s");
            if (o->tex) dm_buf_printf(tex, "\\input{%s.tex}\n", t->name);
        }
        if (ctx->size > 1 && !rc) {
            /* only rank 0 appends; keep the count in step */
            int64_t c = (int64_t)*ntab;
            rc = par_bcast(ctx, &c, sizeof c, 0);
            *ntab = (size_t)c;
        }
    }
    return rc;
}

/* The figures (collective): Markdown images into md, LaTeX figures (with a PDF) into figtex. */
static int make_figures(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_specs *sp, dm_buf *md, dm_buf *figtex, size_t *nfig)
{
    int rc = DM_OK;
    for (size_t i = 0; i < sp->nf && !rc; i++) {
        int made = 0;
        dm_buf one = {0};
        rc = rpt_fig(ctx, s, o, &sp->f[i], md, &one, &made);
        if (!rc && made) {
            (*nfig)++;
            char pdf[4400];
            snprintf(pdf, sizeof pdf, "%s/%s.pdf", o->out, sp->f[i].name);
            if (ctx->rank == 0 && access(pdf, R_OK) == 0) dm_buf_add(figtex, one.data ? one.data : "", one.len);
        }
        dm_buf_free(&one);
    }
    return rc;
}

/* index.md (what was read, then every table and figure) and report.tex (rank 0). */
static int write_index(const rpt_set *s, const rpt_opts *o, size_t missing, const dm_buf *md, const dm_buf *tex, const dm_buf *figtex)
{
    dm_buf idx = {0}, doc = {0};
    dm_buf_printf(&idx, "# Report\n\nFrom %zu results file%s", s->nruns, s->nruns == 1 ? "" : "s");
    if (s->nconfs > 1) dm_buf_printf(&idx, " in %zu configurations", s->nconfs);
    if (s->nvaried) {
        dm_buf_adds(&idx, " (varied: ");
        for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&idx, "%s`%s`", v ? ", " : "", s->varied[v]);
        dm_buf_adds(&idx, ")");
    }
    dm_buf_printf(&idx, ". Written by `dynmm report` (%s); the tables are also in LaTeX (`*.tex`) and CSV (`*.csv`, "
                        "every test in `*_tests.csv`), the figures' gnuplot scripts are `*.gp`.\n\n",
                  DM_VERSION);
    if (missing) dm_buf_printf(&idx, "**%zu run%s of the sweep had no results yet and are missing.**\n\n", missing, missing == 1 ? "" : "s");
    dm_buf_add(&idx, md->data ? md->data : "", md->len);
    /* Type 1 fonts only (what ACM and IEEE checks accept): T1 with Latin Modern (Debian: lmodern);
     * without it the OT1 Computer Modern fonts, also Type 1, rather than T1's bitmap (Type 3) ones */
    dm_buf_adds(&doc, "% report.tex: every table and figure of this report; pdflatex report.tex\n"
                      "\\documentclass{article}\n"
                      "\\IfFileExists{lmodern.sty}{\\usepackage[T1]{fontenc}\\usepackage{lmodern}}{}\n"
                      "\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                      "\\begin{document}\n");
    dm_buf_add(&doc, tex->data ? tex->data : "", tex->len);
    dm_buf_add(&doc, figtex->data ? figtex->data : "", figtex->len);
    dm_buf_adds(&doc, "\\end{document}\n");
    char path[4400];
    snprintf(path, sizeof path, "%s/index.md", o->out);
    int rc = dm_fs_write_atomic(path, idx.data, idx.len, 0644);
    snprintf(path, sizeof path, "%s/report.tex", o->out);
    if (!rc && o->tex) rc = dm_fs_write_atomic(path, doc.data, doc.len, 0644);
    dm_buf_free(&idx);
    dm_buf_free(&doc);
    return rc;
}

static int report(par_ctx *ctx, const cli_args *a, dm_cfg *cfg0)
{
    double t0 = dm_wtime();
    char **inputs = NULL, **paths = NULL;
    size_t ninputs = 0, npaths = 0, missing = 0;
    int rc = collect_inputs(a, cfg0, &inputs, &ninputs);
    if (!rc) rc = rpt_resolve_inputs(inputs, ninputs, &paths, &npaths, &missing);
    rc = par_agree(ctx, rc);
    if (!rc && !npaths) {
        rc = DM_ERR(DM_EIO, "report: none of the %zu run%s has a results.h5 yet", missing, missing == 1 ? "" : "s");
        DM_HINT("run the sweep first (jobs/sweep.sbatch or sbatch .../sweep.sbatch)");
    }
    rpt_set s = {0};
    if (!rc) rc = rpt_load(ctx, paths, npaths, &s);
    dm_cfg cfg = {0};
    rpt_opts o;
    if (!rc) rc = settings(ctx, a, cfg0, &s, inputs, ninputs, &cfg, &o);
    rc = par_agree(ctx, rc);
    if (!rc) log_inputs(&s, missing);
    rpt_specs sp = {0};
    if (!rc) rc = rpt_spec_build(&s, &cfg, &sp);
    rc = par_agree(ctx, rc);
    dm_buf md = {0}, tex = {0}, figtex = {0};
    size_t ntab = 0, nfig = 0;
    if (!rc) rc = make_tables(ctx, &s, &o, &sp, &md, &tex, &ntab);
    if (!rc) rc = make_figures(ctx, &s, &o, &sp, &md, &figtex, &nfig);
    if (!rc && ctx->rank == 0) {
        rc = write_index(&s, &o, missing, &md, &tex, &figtex);
        if (!rc) dm_log("wrote %zu table%s and %zu figure%s to %s/ in %.1fs (index.md, report.tex)", ntab, ntab == 1 ? "" : "s", nfig,
                        nfig == 1 ? "" : "s", o.out, dm_wtime() - t0);
    }
    rc = par_agree(ctx, rc);
    dm_buf_free(&md);
    dm_buf_free(&tex);
    dm_buf_free(&figtex);
    rpt_spec_free(&sp);
    rpt_set_free(&s);
    rpt_label_free();
    dm_cfg_free(&cfg);
    dm_strv_free(inputs, ninputs);
    dm_strv_free(paths, npaths);
    return rc;
}

int cmd_report(par_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    dm_cfg cfg;
    int done = 0;
    DM_CALL(cli_begin(ctx, argc, argv, USAGE, &a, &cfg, &done));
    if (done) return DM_OK;
    int rc = report(ctx, &a, &cfg);
    dm_cfg_free(&cfg);
    cli_args_free(&a);
    return rc;
}
