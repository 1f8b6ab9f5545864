/* cmd_report.c: `dynmm report`: paper-ready tables and figures from one or many results files.
 *
 *   dynmm report [REPORT.cfg] INPUT... [--set report.key=value ...]
 *
 * INPUT: results.h5 files, run directories, sweep directories or manifests (every run of the sweep),
 * or globs of these (report.inputs adds more). Runs are grouped into configurations and seeds (see
 * report.h); tables and figures go to report.out:
 *   NAME.tex, NAME_tabular.tex   booktabs table (float with caption and legend; the tabular alone)
 *   NAME.md, NAME.csv            Markdown; CSV with one line per cell (mean, sd, seeds, p, mark)
 *   NAME_tests.csv               every paired test: per seed across users, across seeds, pooled
 *   FIG.dat, FIG.gp, FIG.png/pdf figure data, gnuplot script (rerun to restyle), figure
 *   index.md, report.tex         everything in one Markdown page and one LaTeX document
 *
 * Which tables and figures: report.tables and report.figures hold specs, one string each, of
 * "key=value" pairs separated by ';' (lists separated by ',' or '|'):
 *   table:  name, split, protocols, models (globs, in order), metrics, baseline, caption,
 *           where (config filters "group.key=value,...")
 *   figure: name, kind (bars|curve), split, protocol, models, metrics, x (key:GROUP.KEY | suffix |
 *           column:NAME | row), data (group of points datasets), xlabel, ylabel, title, logx, logy,
 *           where
 * Without specs the report makes, for every split of report.splits: one table per protocol over the
 * models without '@' (report.models), one table per variant family ("sasrec@drop_*": the part after
 * '@' up to the first '_' or digit), a bar chart of the models (one configuration) or a curve per
 * varied key (a sweep), a curve (numeric suffixes) or bars per variant family, and a curve per
 * group of points datasets. New model or variant names therefore need no new code or config.
 *
 * The settings come from REPORT.cfg when given; otherwise from the report.* and stats.* keys stored
 * in the first results file (so a sweep's report settings apply), then --set.
 */
#include "../stages/cmd.h"
#include "../mpi/cli.h"
#include "report.h"

#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"
#include "../src/core/timer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void rpt_labels_free(void);

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

/* ---- specs ------------------------------------------------------------------------------- */

static int split_list(const char *v, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char **a = NULL;
    size_t na = 0;
    DM_CALL(dm_strv_split(v, strchr(v, '|') ? '|' : ',', &a, &na));
    *out = a;
    *n = na;
    return DM_OK;
}

static void safe_name(char *s)
{
    for (; *s; s++)
        if (*s == '/' || *s == ' ' || *s == '\\' || *s == '\t' || *s == '*' || *s == '?' || *s == '@') *s = '_';
}

static void table_spec_free(rpt_table_spec *t)
{
    free(t->name);
    free(t->split);
    free(t->caption);
    free(t->baseline);
    dm_strv_free(t->protocols, t->nprotocols);
    dm_strv_free(t->models, t->nmodels);
    dm_strv_free(t->metrics, t->nmetrics);
    dm_strv_free(t->where, t->nwhere);
    memset(t, 0, sizeof *t);
}

static void fig_spec_free(rpt_fig_spec *f)
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

static int set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = dm_str_dup(v);
    return *dst ? DM_OK : DM_ENOMEM;
}

static int parse_bool(const char *v, int *out, const char *where)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *out = 0;
    else return DM_ERR(DM_ECONFIG, "%s: '%s' must be true or false", where, v);
    return DM_OK;
}

/* Parses one spec into a table (fig == NULL) or a figure (tab == NULL). */
static int parse_spec(const char *spec, const char *where, rpt_table_spec *tab, rpt_fig_spec *fig)
{
    char **parts = NULL;
    size_t np = 0;
    DM_CALL(dm_strv_split(spec, ';', &parts, &np));
    int rc = DM_OK;
    for (size_t i = 0; i < np && !rc; i++) {
        const char *eq = strchr(parts[i], '=');
        if (!eq) {
            rc = DM_ERR(DM_ECONFIG, "%s: '%s' is not key=value", where, parts[i]);
            break;
        }
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - parts[i]), parts[i]);
        for (size_t l = strlen(key); l && key[l - 1] == ' '; l--) key[l - 1] = '\0';
        const char *v = eq + 1;
        while (*v == ' ') v++;
        int known = 1;
        if (!strcmp(key, "name")) {
            rc = set_str(tab ? &tab->name : &fig->name, v);
            if (!rc) safe_name(tab ? tab->name : fig->name);
        } else if (!strcmp(key, "split")) rc = set_str(tab ? &tab->split : &fig->split, v);
        else if (!strcmp(key, "models")) rc = tab ? split_list(v, &tab->models, &tab->nmodels) : split_list(v, &fig->models, &fig->nmodels);
        else if (!strcmp(key, "metrics") || !strcmp(key, "metric"))
            rc = tab ? split_list(v, &tab->metrics, &tab->nmetrics) : split_list(v, &fig->metrics, &fig->nmetrics);
        else if (!strcmp(key, "where")) rc = tab ? split_list(v, &tab->where, &tab->nwhere) : split_list(v, &fig->where, &fig->nwhere);
        else if (tab && (!strcmp(key, "protocols") || !strcmp(key, "protocol"))) rc = split_list(v, &tab->protocols, &tab->nprotocols);
        else if (tab && !strcmp(key, "baseline")) rc = set_str(&tab->baseline, v);
        else if (tab && !strcmp(key, "caption")) rc = set_str(&tab->caption, v);
        else if (fig && !strcmp(key, "protocol")) rc = set_str(&fig->protocol, v);
        else if (fig && !strcmp(key, "kind")) rc = set_str(&fig->kind, v);
        else if (fig && !strcmp(key, "x")) rc = set_str(&fig->x, v);
        else if (fig && !strcmp(key, "data")) rc = set_str(&fig->data, v);
        else if (fig && !strcmp(key, "xlabel")) rc = set_str(&fig->xlabel, v);
        else if (fig && !strcmp(key, "ylabel")) rc = set_str(&fig->ylabel, v);
        else if (fig && !strcmp(key, "title")) rc = set_str(&fig->title, v);
        else if (fig && !strcmp(key, "logx")) rc = parse_bool(v, &fig->logx, where);
        else if (fig && !strcmp(key, "logy")) rc = parse_bool(v, &fig->logy, where);
        else known = 0;
        if (!known) {
            rc = DM_ERR(DM_ECONFIG, "%s: unknown key '%s'", where, key);
            DM_HINT(tab ? "table keys: name, split, protocols, models, metrics, baseline, caption, where"
                        : "figure keys: name, kind, split, protocol, models, metrics, x, data, xlabel, ylabel, title, logx, logy, where");
        }
    }
    dm_strv_free(parts, np);
    return rc;
}

/* ---- defaults ---------------------------------------------------------------------------- */

/* The variant family of "sasrec@drop_visual_50": "drop". */
static void family_of(const char *model, char *out, size_t cap)
{
    const char *at = strchr(model, '@');
    out[0] = '\0';
    if (!at) return;
    size_t l = strcspn(at + 1, "_-=0123456789.");
    if (!l) l = strlen(at + 1);
    snprintf(out, cap, "%.*s", (int)l, at + 1);
}

static int cfg_list(const dm_cfg *c, const char *key, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < dm_cfg_len(c, key); i++) DM_CALL(dm_strv_push(out, n, dm_cfg_str_at(c, key, i)));
    return DM_OK;
}

static int has_entry(const rpt_set *s, const char *split, const char *protocol)
{
    for (size_t r = 0; r < s->nruns; r++)
        for (size_t e = 0; e < s->runs[r].ne; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind == RE_USERS && !strcmp(en->split, split) && (!protocol || !strcmp(en->protocol, protocol))) return 1;
        }
    return 0;
}

static int metric_exists(const rpt_set *s, const char *split, const char *metric)
{
    for (size_t r = 0; r < s->nruns; r++)
        for (size_t e = 0; e < s->runs[r].ne; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind == RE_USERS && !strcmp(en->split, split) && rpt_col(en, metric) >= 0) return 1;
        }
    return 0;
}

/* Default metrics of a split: report.metrics that exist. */
static int default_metrics(const rpt_set *s, const dm_cfg *c, const char *split, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < dm_cfg_len(c, "report.metrics"); i++) {
        const char *m = dm_cfg_str_at(c, "report.metrics", i);
        if (metric_exists(s, split, m)) DM_CALL(dm_strv_push(out, n, m));
        else dm_warn("report.metrics: no '%s' in the %s results; left out of the default tables", m, split);
    }
    return DM_OK;
}

typedef struct {
    rpt_table_spec *t;
    size_t nt;
    rpt_fig_spec *f;
    size_t nf;
} specs;

static rpt_table_spec *add_table(specs *sp)
{
    rpt_table_spec *n = dm_realloc_at(sp->t, sp->nt + 1, sizeof *n, __FILE__, __LINE__);
    if (!n) return NULL;
    sp->t = n;
    memset(&sp->t[sp->nt], 0, sizeof *n);
    return &sp->t[sp->nt++];
}

static rpt_fig_spec *add_fig(specs *sp)
{
    rpt_fig_spec *n = dm_realloc_at(sp->f, sp->nf + 1, sizeof *n, __FILE__, __LINE__);
    if (!n) return NULL;
    sp->f = n;
    memset(&sp->f[sp->nf], 0, sizeof *n);
    sp->f[sp->nf].logx = sp->f[sp->nf].logy = -1;
    return &sp->f[sp->nf++];
}

static int default_specs(const rpt_set *s, const dm_cfg *c, specs *sp, int want_tables, int want_figs)
{
    char **base_models = NULL, **fams = NULL;
    size_t nbase = 0, nfams = 0;
    int rc = DM_OK;
    if (dm_cfg_len(c, "report.models")) rc = cfg_list(c, "report.models", &base_models, &nbase);
    else
        for (size_t m = 0; m < s->nmodels && !rc; m++)
            if (!strchr(s->models[m], '@')) rc = dm_strv_push(&base_models, &nbase, s->models[m]);
    for (size_t m = 0; m < s->nmodels && !rc; m++) {
        char fam[128];
        family_of(s->models[m], fam, sizeof fam);
        if (fam[0] && dm_strv_find(fams, nfams, fam) < 0) rc = dm_strv_push(&fams, &nfams, fam);
    }
    const char *baseline = dm_cfg_str(c, "report.baseline");
    /* report.splits, then the prequential protocol of `dynmm stream` (stream.h5) when present */
    size_t nsplit_cfg = dm_cfg_len(c, "report.splits"), nsplit = nsplit_cfg;
    int add_preq = has_entry(s, "prequential", NULL);
    for (size_t si = 0; si < nsplit_cfg && add_preq; si++) add_preq = strcmp(dm_cfg_str_at(c, "report.splits", si), "prequential") != 0;
    nsplit += (size_t)add_preq;
    for (size_t si = 0; si < nsplit && !rc; si++) {
        const char *split = si < nsplit_cfg ? dm_cfg_str_at(c, "report.splits", si) : "prequential";
        if (!has_entry(s, split, NULL)) {
            /* (a streaming run alone holds only the prequential split: nothing to warn about) */
            if (!(add_preq && s->nsplits == 1)) dm_warn("report.splits: the results hold no '%s' split", split);
            continue;
        }
        char **prots = NULL, **metrics = NULL;
        size_t nprot = 0, nmet = 0;
        if (dm_cfg_len(c, "report.protocols")) {
            for (size_t i = 0; i < dm_cfg_len(c, "report.protocols") && !rc; i++)
                if (has_entry(s, split, dm_cfg_str_at(c, "report.protocols", i)))
                    rc = dm_strv_push(&prots, &nprot, dm_cfg_str_at(c, "report.protocols", i));
        } else
            for (size_t i = 0; i < s->nprotocols && !rc; i++)
                if (has_entry(s, split, s->protocols[i])) rc = dm_strv_push(&prots, &nprot, s->protocols[i]);
        if (!rc) rc = default_metrics(s, c, split, &metrics, &nmet);
        const char *p0 = nprot ? (dm_strv_find(prots, nprot, "full") >= 0 ? "full" : prots[0]) : NULL;
        char **matched = NULL;
        size_t nmatched = 0;
        if (!rc) rc = rpt_match_models(s, base_models, nbase, &matched, &nmatched);
        char bmodel[256];
        snprintf(bmodel, sizeof bmodel, "%.*s", (int)strcspn(baseline, "["), baseline);
        int base_ok = baseline[0] && dm_strv_find(matched, nmatched, bmodel) >= 0;
        /* the streaming variants are compared with the static aligner unless report.baseline
         * names one of them */
        if (!rc && !strcmp(split, "prequential") && !base_ok && dm_strv_find(matched, nmatched, "static") >= 0) {
            baseline = "static";
            snprintf(bmodel, sizeof bmodel, "static");
            base_ok = 1;
        }
        if (!rc && baseline[0] && !base_ok && nmatched)
            dm_warn("report.baseline '%s' is not among the models of the %s tables; comparing with %s", baseline, split, matched[0]);
        for (size_t p = 0; p < nprot && !rc && nmet && nmatched && want_tables; p++) {
            rpt_table_spec *t = add_table(sp);
            if (!t) {
                rc = DM_ENOMEM;
                break;
            }
            char name[256];
            snprintf(name, sizeof name, "%s_%s", split, prots[p]);
            safe_name(name);
            rc = set_str(&t->name, name);
            if (!rc) rc = set_str(&t->split, split);
            if (!rc) rc = dm_strv_push(&t->protocols, &t->nprotocols, prots[p]);
            for (size_t m = 0; m < nmatched && !rc; m++) rc = dm_strv_push(&t->models, &t->nmodels, matched[m]);
            for (size_t k = 0; k < nmet && !rc; k++) rc = dm_strv_push(&t->metrics, &t->nmetrics, metrics[k]);
            if (!rc) rc = set_str(&t->baseline, base_ok ? baseline : matched[0]);
        }
        /* figures of the models */
        if (!rc && p0 && nmet && nmatched && want_figs) {
            size_t ncurves = 0;
            for (size_t v = 0; v < s->nvaried && !rc; v++) {
                rpt_fig_spec *f = add_fig(sp);
                if (!f) {
                    rc = DM_ENOMEM;
                    break;
                }
                char name[256], x[300];
                const char *dot = strrchr(s->varied[v], '.');
                snprintf(name, sizeof name, "%s_%s_%s", split, p0, dot ? dot + 1 : s->varied[v]);
                safe_name(name);
                snprintf(x, sizeof x, "key:%s", s->varied[v]);
                rc = set_str(&f->name, name);
                if (!rc) rc = set_str(&f->kind, "curve");
                if (!rc) rc = set_str(&f->x, x);
                if (!rc) rc = set_str(&f->split, split);
                if (!rc) rc = set_str(&f->protocol, p0);
                for (size_t m = 0; m < nmatched && !rc; m++) rc = dm_strv_push(&f->models, &f->nmodels, matched[m]);
                if (!rc) rc = dm_strv_push(&f->metrics, &f->nmetrics, metrics[0]);
                ncurves++;
            }
            if (!rc && !ncurves) {
                rpt_fig_spec *f = add_fig(sp);
                char name[256];
                snprintf(name, sizeof name, "%s_%s_models", split, p0);
                safe_name(name);
                rc = f ? set_str(&f->name, name) : DM_ENOMEM;
                if (!rc) rc = set_str(&f->kind, "bars");
                if (!rc) rc = set_str(&f->x, "");
                if (!rc) rc = set_str(&f->split, split);
                if (!rc) rc = set_str(&f->protocol, p0);
                for (size_t m = 0; m < nmatched && !rc; m++) rc = dm_strv_push(&f->models, &f->nmodels, matched[m]);
                for (size_t k = 0; k < nmet && !rc; k++) rc = dm_strv_push(&f->metrics, &f->nmetrics, metrics[k]);
            }
        }
        /* variant families: a table and a figure each */
        for (size_t fi = 0; fi < nfams && !rc && p0 && nmet; fi++) {
            char **members = NULL, **bases = NULL;
            size_t nmem = 0, nb = 0;
            int numeric = 1;
            for (size_t m = 0; m < s->nmodels && !rc; m++) {
                char fam[128];
                family_of(s->models[m], fam, sizeof fam);
                if (strcmp(fam, fams[fi])) continue;
                rc = dm_strv_push(&members, &nmem, s->models[m]);
                size_t l = strlen(s->models[m]);
                numeric &= l && s->models[m][l - 1] >= '0' && s->models[m][l - 1] <= '9';
                char base[256];
                snprintf(base, sizeof base, "%.*s", (int)(strchr(s->models[m], '@') - s->models[m]), s->models[m]);
                if (!rc && dm_strv_find(bases, nb, base) < 0 && dm_strv_find(s->models, s->nmodels, base) >= 0) rc = dm_strv_push(&bases, &nb, base);
            }
            if (!rc && want_tables && has_entry(s, split, p0)) {
                rpt_table_spec *t = add_table(sp);
                char name[256];
                snprintf(name, sizeof name, "%s_%s_%s", split, p0, fams[fi]);
                safe_name(name);
                rc = t ? set_str(&t->name, name) : DM_ENOMEM;
                if (!rc) rc = set_str(&t->split, split);
                if (!rc) rc = dm_strv_push(&t->protocols, &t->nprotocols, p0);
                for (size_t m = 0; m < nb && !rc; m++) rc = dm_strv_push(&t->models, &t->nmodels, bases[m]);
                for (size_t m = 0; m < nmem && !rc; m++) rc = dm_strv_push(&t->models, &t->nmodels, members[m]);
                for (size_t k = 0; k < nmet && !rc; k++) rc = dm_strv_push(&t->metrics, &t->nmetrics, metrics[k]);
                if (!rc) rc = set_str(&t->baseline, nb ? bases[0] : members[0]);
            }
            if (!rc && want_figs) {
                rpt_fig_spec *f = add_fig(sp);
                char name[256];
                snprintf(name, sizeof name, "%s_%s_%s", split, p0, fams[fi]);
                safe_name(name);
                rc = f ? set_str(&f->name, name) : DM_ENOMEM;
                if (!rc) rc = set_str(&f->kind, numeric ? "curve" : "bars");
                if (!rc) rc = set_str(&f->x, numeric ? "suffix" : "");
                if (!rc) rc = set_str(&f->split, split);
                if (!rc) rc = set_str(&f->protocol, p0);
                for (size_t m = 0; m < nb && !rc && !numeric; m++) rc = dm_strv_push(&f->models, &f->nmodels, bases[m]);
                for (size_t m = 0; m < nmem && !rc; m++) rc = dm_strv_push(&f->models, &f->nmodels, members[m]);
                if (!rc) rc = dm_strv_push(&f->metrics, &f->nmetrics, metrics[0]);
            }
            dm_strv_free(members, nmem);
            dm_strv_free(bases, nb);
        }
        dm_strv_free(matched, nmatched);
        dm_strv_free(prots, nprot);
        dm_strv_free(metrics, nmet);
    }
    /* groups of points datasets with their own columns: a curve each, x = the first column */
    for (size_t g = 0; g < s->ngroups && !rc && want_figs; g++) {
        const rpt_entry *e0 = NULL;
        for (size_t r = 0; r < s->nruns && !e0; r++)
            for (size_t e = 0; e < s->runs[r].ne && !e0; e++)
                if (s->runs[r].e[e].kind == RE_POINTS && !s->runs[r].e[e].root_cols && !strcmp(s->runs[r].e[e].group, s->groups[g]))
                    e0 = &s->runs[r].e[e];
        if (!e0 || e0->cols < 2) continue;
        rpt_fig_spec *f = add_fig(sp);
        char name[300], x[300];
        snprintf(name, sizeof name, "%s", s->groups[g][0] ? s->groups[g] : "points");
        safe_name(name);
        snprintf(x, sizeof x, "column:%s", e0->colnames[0]);
        rc = f ? set_str(&f->name, name) : DM_ENOMEM;
        if (!rc) rc = set_str(&f->kind, "curve");
        if (!rc) rc = set_str(&f->x, x);
        if (!rc) rc = set_str(&f->data, s->groups[g]);
    }
    /* metrics per row (streaming windows: stream/<variant>/mean): one curve per parent group and
     * dataset name, a series per variant, x = the row (window), y = the first report metric */
    char **seen = NULL;
    size_t nseen = 0;
    for (size_t r = 0; r < s->nruns && !rc && want_figs; r++)
        for (size_t e = 0; e < s->runs[r].ne && !rc; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind != RE_POINTS || !en->root_cols) continue;
            const char *metric = NULL;
            for (size_t i = 0; i < dm_cfg_len(c, "report.metrics") && !metric; i++)
                if (rpt_col(en, dm_cfg_str_at(c, "report.metrics", i)) >= 0) metric = dm_cfg_str_at(c, "report.metrics", i);
            if (!metric) continue;
            const char *sl = strrchr(en->group, '/');
            char parent[300], key[700], name[700], data[400];
            snprintf(parent, sizeof parent, "%.*s", (int)(sl ? sl - en->group : 0), en->group);
            snprintf(key, sizeof key, "%s|%s", parent, en->leaf);
            if (dm_strv_find(seen, nseen, key) >= 0) continue;
            rc = dm_strv_push(&seen, &nseen, key);
            snprintf(name, sizeof name, "%s_%s", parent[0] ? parent : "points", en->leaf);
            safe_name(name);
            snprintf(data, sizeof data, "%s%s*", parent, parent[0] ? "/" : "");
            rpt_fig_spec *f = rc ? NULL : add_fig(sp);
            if (!rc && !f) rc = DM_ENOMEM;
            if (!rc) rc = set_str(&f->name, name);
            if (!rc) rc = set_str(&f->kind, "curve");
            if (!rc) rc = set_str(&f->x, "row");
            if (!rc) rc = set_str(&f->data, data);
            if (!rc) rc = dm_strv_push(&f->models, &f->nmodels, en->leaf);
            if (!rc) rc = dm_strv_push(&f->metrics, &f->nmetrics, metric);
        }
    dm_strv_free(seen, nseen);
    dm_strv_free(base_models, nbase);
    dm_strv_free(fams, nfams);
    return rc;
}

/* Fills the fields a spec left out. */
static int complete_table(const rpt_set *s, const dm_cfg *c, rpt_table_spec *t, size_t i)
{
    char nm[64];
    snprintf(nm, sizeof nm, "table%zu", i + 1);
    if (!t->name) DM_CALL(set_str(&t->name, nm));
    if (!t->split) DM_CALL(set_str(&t->split, dm_cfg_len(c, "report.splits") ? dm_cfg_str_at(c, "report.splits", 0) : "test"));
    if (!t->nprotocols) {
        if (dm_strv_find(s->protocols, s->nprotocols, "full") >= 0) DM_CALL(dm_strv_push(&t->protocols, &t->nprotocols, "full"));
        else if (s->nprotocols) DM_CALL(dm_strv_push(&t->protocols, &t->nprotocols, s->protocols[0]));
    }
    for (size_t p = 0; p < t->nprotocols; p++)
        if (!has_entry(s, t->split, t->protocols[p])) {
            DM_ERR(DM_ECONFIG, "table '%s': the results hold no %s/%s", t->name, t->split, t->protocols[p]);
            DM_HINT("eval.splits and eval.protocols of the runs say what exists");
            return DM_ECONFIG;
        }
    if (!t->nmodels) {
        if (dm_cfg_len(c, "report.models")) DM_CALL(cfg_list(c, "report.models", &t->models, &t->nmodels));
        else
            for (size_t m = 0; m < s->nmodels; m++)
                if (!strchr(s->models[m], '@')) DM_CALL(dm_strv_push(&t->models, &t->nmodels, s->models[m]));
    }
    if (!t->nmetrics) DM_CALL(cfg_list(c, "report.metrics", &t->metrics, &t->nmetrics));
    if (!t->baseline && dm_cfg_str(c, "report.baseline")[0]) DM_CALL(set_str(&t->baseline, dm_cfg_str(c, "report.baseline")));
    return DM_OK;
}

static int complete_fig(const rpt_set *s, const dm_cfg *c, rpt_fig_spec *f, size_t i)
{
    char nm[64];
    snprintf(nm, sizeof nm, "figure%zu", i + 1);
    if (!f->name) DM_CALL(set_str(&f->name, nm));
    if (!f->x) DM_CALL(set_str(&f->x, f->data ? "column:" : ""));
    if (!f->kind) DM_CALL(set_str(&f->kind, f->x[0] ? "curve" : "bars"));
    if (!strcmp(f->x, "column:") && f->data) {
        /* the first column of the group */
        for (size_t r = 0; r < s->nruns; r++)
            for (size_t e = 0; e < s->runs[r].ne; e++)
                if (s->runs[r].e[e].kind == RE_POINTS && !strcmp(s->runs[r].e[e].group, f->data) && !strcmp(f->x, "column:")) {
                    char x[300];
                    snprintf(x, sizeof x, "column:%s", s->runs[r].e[e].colnames[0]);
                    DM_CALL(set_str(&f->x, x));
                }
        if (!strcmp(f->x, "column:")) {
            DM_ERR(DM_ECONFIG, "figure '%s': the results hold no points datasets in group '%s'", f->name, f->data);
            return DM_ECONFIG;
        }
    }
    if (!strcmp(f->kind, "curve") && !f->x[0]) {
        DM_ERR(DM_ECONFIG, "figure '%s': a curve needs x=key:GROUP.KEY, x=suffix, x=column:NAME or x=row", f->name);
        return DM_ECONFIG;
    }
    if (!f->split) DM_CALL(set_str(&f->split, dm_cfg_len(c, "report.splits") ? dm_cfg_str_at(c, "report.splits", 0) : "test"));
    if (!f->protocol) DM_CALL(set_str(&f->protocol, dm_strv_find(s->protocols, s->nprotocols, "full") >= 0 || !s->nprotocols ? "full" : s->protocols[0]));
    if (!f->nmetrics && !f->data) DM_CALL(dm_strv_push(&f->metrics, &f->nmetrics, dm_cfg_len(c, "report.metrics") ? dm_cfg_str_at(c, "report.metrics", 0) : "ndcg@10"));
    if (!f->nmodels && !f->data) {
        if (dm_cfg_len(c, "report.models")) DM_CALL(cfg_list(c, "report.models", &f->models, &f->nmodels));
        else
            for (size_t m = 0; m < s->nmodels; m++)
                if (!strchr(s->models[m], '@')) DM_CALL(dm_strv_push(&f->models, &f->nmodels, s->models[m]));
    }
    return DM_OK;
}

/* ---- options ----------------------------------------------------------------------------- */

static int opts_init(const dm_cfg *c, rpt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cfg = c;
    stats_opts_default(&o->so);
    DM_CALL(stats_test_parse(dm_cfg_str(c, "stats.test"), &o->so.test));
    DM_CALL(stats_alt_parse(dm_cfg_str(c, "stats.alternative"), &o->so.alt));
    DM_CALL(stats_zero_parse(dm_cfg_str(c, "stats.zero_method"), &o->so.zero_method));
    DM_CALL(stats_method_parse(dm_cfg_str(c, "stats.method"), &o->so.method));
    DM_CALL(stats_ci_parse(dm_cfg_str(c, "stats.ci_method"), &o->so.ci_method));
    o->so.continuity = dm_cfg_bool(c, "stats.continuity");
    o->so.permutations = (size_t)dm_cfg_int(c, "stats.permutations");
    o->so.resamples = (size_t)dm_cfg_int(c, "stats.bootstrap");
    o->so.level = dm_cfg_float(c, "stats.ci");
    o->so.hedges = !strcmp(dm_cfg_str(c, "stats.effect"), "hedges");
    o->so.seed = (uint64_t)dm_cfg_int(c, "stats.seed");
    if (!o->so.seed) o->so.seed = dm_rng_key((uint64_t)dm_cfg_int(c, "run.seed"), 0x5354415453ULL, 0);
    o->alpha = dm_cfg_float(c, "stats.alpha");
    o->holm = !strcmp(dm_cfg_str(c, "stats.correction"), "holm");
    const char *a = dm_cfg_str(c, "report.across_seeds");
    o->across = !strcmp(a, "ttest") ? 0 : !strcmp(a, "test") ? 1 : 2;
    o->digits = (int)dm_cfg_int(c, "report.digits");
    o->percent = dm_cfg_bool(c, "report.percent");
    o->std = dm_cfg_bool(c, "report.std");
    for (size_t i = 0; i < dm_cfg_len(c, "report.formats"); i++) {
        const char *f = dm_cfg_str_at(c, "report.formats", i);
        if (!strcmp(f, "tex")) o->tex = 1;
        else if (!strcmp(f, "md")) o->md = 1;
        else if (!strcmp(f, "csv")) o->csv = 1;
        else {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: unknown table format '%s'", dm_cfg_where(c, "report.formats", w, sizeof w), f);
            DM_HINT("tex, md, csv");
            return DM_ECONFIG;
        }
    }
    for (size_t i = 0; i < dm_cfg_len(c, "report.figure_formats"); i++) {
        const char *f = dm_cfg_str_at(c, "report.figure_formats", i);
        if (!strcmp(f, "png")) o->png = 1;
        else if (!strcmp(f, "pdf")) o->pdf = 1;
        else {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: unknown figure format '%s'", dm_cfg_where(c, "report.figure_formats", w, sizeof w), f);
            DM_HINT("png, pdf");
            return DM_ECONFIG;
        }
    }
    for (size_t i = 0; i < dm_cfg_len(c, "report.labels"); i++)
        if (!strchr(dm_cfg_str_at(c, "report.labels", i), '=')) {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: label '%s' is not name=Label", dm_cfg_where(c, "report.labels", w, sizeof w), dm_cfg_str_at(c, "report.labels", i));
            return DM_ECONFIG;
        }
    return DM_OK;
}

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

static int report(par_ctx *ctx, const cli_args *a, dm_cfg *cfg0)
{
    double t0 = dm_wtime();
    char **inputs = NULL, **paths = NULL;
    size_t ninputs = 0, npaths = 0, missing = 0;
    int rc = DM_OK;
    for (size_t i = 0; i < dm_cfg_len(cfg0, "report.inputs") && !rc; i++) rc = dm_strv_push(&inputs, &ninputs, dm_cfg_str_at(cfg0, "report.inputs", i));
    for (int i = 0; i < a->npositional && !rc; i++) {
        if (a->positional[i][0] == '-' && a->positional[i][1] == '-') {
            rc = DM_ERR(DM_ECONFIG, "report: unknown option '%s'", a->positional[i]);
            DM_HINT("settings are keys: --set report.out=DIR; see `dynmm report --help`");
        } else
            rc = dm_strv_push(&inputs, &ninputs, a->positional[i]);
    }
    if (!rc && !ninputs) {
        rc = DM_ERR(DM_ECONFIG, "report: no input");
        DM_HINT("give results.h5 files, run directories, a sweep directory or manifest: dynmm report runs/sweeps/small");
    }
    if (!rc) rc = rpt_resolve_inputs(inputs, ninputs, &paths, &npaths, &missing);
    rc = par_agree(ctx, rc);
    if (!rc && !npaths) {
        rc = DM_ERR(DM_EIO, "report: none of the %zu run%s has a results.h5 yet", missing, missing == 1 ? "" : "s");
        DM_HINT("run the sweep first (jobs/sweep.sbatch or sbatch .../sweep.sbatch)");
    }
    rpt_set s;
    memset(&s, 0, sizeof s);
    if (!rc) rc = rpt_load(ctx, paths, npaths, &s);
    /* the settings: the report config, or those stored in the first results file */
    dm_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    if (!rc) {
        if (a->config_path) rc = dm_cfg_copy(&cfg, cfg0);
        else {
            rc = dm_cfg_copy(&cfg, &s.runs[0].cfg);
            for (int i = 0; i < a->nsets && !rc; i++) rc = dm_cfg_set(&cfg, a->sets[i]);
        }
    }
    rpt_opts o;
    if (!rc) rc = opts_init(&cfg, &o);
    if (!rc) {
        if (dm_cfg_str(&cfg, "report.out")[0]) snprintf(o.out, sizeof o.out, "%s", dm_cfg_str(&cfg, "report.out"));
        else out_dir_default(inputs, ninputs, o.out, sizeof o.out);
        if (ctx->rank == 0) rc = dm_fs_mkdirs(o.out);
    }
    rc = par_agree(ctx, rc);
    if (!rc) {
        size_t nused = 0;
        for (size_t r = 0; r < s.nruns; r++) nused += s.runs[r].conf != SIZE_MAX;
        dm_buf vk = {0};
        for (size_t v = 0; v < s.nvaried; v++) dm_buf_printf(&vk, "%s%s", v ? ", " : "; varied: ", s.varied[v]);
        dm_log("report: %zu results file%s, %zu configuration%s%s", nused, nused == 1 ? "" : "s", s.nconfs, s.nconfs == 1 ? "" : "s",
               vk.data ? vk.data : "");
        dm_buf_free(&vk);
        if (missing) dm_warn("%zu run%s of the sweep had no results yet and are not in the report", missing, missing == 1 ? "" : "s");
    }
    /* specs */
    specs sp = {0};
    size_t nts = rc ? 0 : dm_cfg_len(&cfg, "report.tables"), nfs = rc ? 0 : dm_cfg_len(&cfg, "report.figures");
    if (!rc) rc = default_specs(&s, &cfg, &sp, !nts, !nfs);
    for (size_t i = 0; i < nts && !rc; i++) {
        char where[300], w[256];
        snprintf(where, sizeof where, "%s: report.tables entry %zu", dm_cfg_where(&cfg, "report.tables", w, sizeof w), i + 1);
        rpt_table_spec *t = add_table(&sp);
        rc = t ? parse_spec(dm_cfg_str_at(&cfg, "report.tables", i), where, t, NULL) : DM_ENOMEM;
        if (!rc) rc = complete_table(&s, &cfg, t, i);
    }
    for (size_t i = 0; i < nfs && !rc; i++) {
        char where[300], w[256];
        snprintf(where, sizeof where, "%s: report.figures entry %zu", dm_cfg_where(&cfg, "report.figures", w, sizeof w), i + 1);
        rpt_fig_spec *f = add_fig(&sp);
        rc = f ? parse_spec(dm_cfg_str_at(&cfg, "report.figures", i), where, NULL, f) : DM_ENOMEM;
        if (!rc) rc = complete_fig(&s, &cfg, f, i);
    }
    rc = par_agree(ctx, rc);
    /* the work */
    dm_buf md = {0}, tex = {0}, figtex = {0};
    size_t ntab = 0, nfig = 0;
    for (size_t i = 0; i < sp.nt && !rc; i++) {
        size_t before = md.len;
        rc = rpt_table(ctx, &s, &o, &sp.t[i], &md);
        if (!rc && md.len > before) {
            ntab++;
            dm_log("  table  %-28s %zu model pattern%s x %zu protocol%s x %zu metric%s", sp.t[i].name, sp.t[i].nmodels,
                   sp.t[i].nmodels == 1 ? "" : "s", sp.t[i].nprotocols, sp.t[i].nprotocols == 1 ? "" : "s", sp.t[i].nmetrics,
                   sp.t[i].nmetrics == 1 ? "" : "s");
            if (o.tex) dm_buf_printf(&tex, "\\input{%s.tex}\n", sp.t[i].name);
        }
        if (ctx->size > 1 && !rc) {
            /* only rank 0 appends; keep the count in step */
            int64_t c = (int64_t)ntab;
            rc = par_bcast(ctx, &c, sizeof c, 0);
            ntab = (size_t)c;
        }
    }
    for (size_t i = 0; i < sp.nf && !rc; i++) {
        int made = 0;
        dm_buf one = {0};
        rc = rpt_figure(ctx, &s, &o, &sp.f[i], &md, &one, &made);
        if (!rc && made) {
            nfig++;
            char pdf[4400];
            snprintf(pdf, sizeof pdf, "%s/%s.pdf", o.out, sp.f[i].name);
            if (ctx->rank == 0 && access(pdf, R_OK) == 0) dm_buf_add(&figtex, one.data ? one.data : "", one.len);
        }
        dm_buf_free(&one);
    }
    /* index.md and report.tex */
    if (!rc && ctx->rank == 0) {
        dm_buf idx = {0}, doc = {0};
        dm_buf_printf(&idx, "# Report\n\nFrom %zu results file%s", s.nruns, s.nruns == 1 ? "" : "s");
        if (s.nconfs > 1) dm_buf_printf(&idx, " in %zu configurations", s.nconfs);
        if (s.nvaried) {
            dm_buf_adds(&idx, " (varied: ");
            for (size_t v = 0; v < s.nvaried; v++) dm_buf_printf(&idx, "%s`%s`", v ? ", " : "", s.varied[v]);
            dm_buf_adds(&idx, ")");
        }
        dm_buf_printf(&idx, ". Written by `dynmm report` (%s); the tables are also in LaTeX (`*.tex`) and CSV (`*.csv`, "
                            "every test in `*_tests.csv`), the figures' gnuplot scripts are `*.gp`.\n\n",
                      DM_VERSION);
        if (missing) dm_buf_printf(&idx, "**%zu run%s of the sweep had no results yet and are missing.**\n\n", missing, missing == 1 ? "" : "s");
        dm_buf_add(&idx, md.data ? md.data : "", md.len);
        dm_buf_adds(&doc, "% report.tex: every table and figure of this report; pdflatex report.tex\n"
                          "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                          "\\begin{document}\n");
        dm_buf_add(&doc, tex.data ? tex.data : "", tex.len);
        dm_buf_add(&doc, figtex.data ? figtex.data : "", figtex.len);
        dm_buf_adds(&doc, "\\end{document}\n");
        char path[4400];
        snprintf(path, sizeof path, "%s/index.md", o.out);
        rc = dm_fs_write_atomic(path, idx.data, idx.len, 0644);
        snprintf(path, sizeof path, "%s/report.tex", o.out);
        if (!rc && o.tex) rc = dm_fs_write_atomic(path, doc.data, doc.len, 0644);
        if (!rc) dm_log("wrote %zu table%s and %zu figure%s to %s/ in %.1fs (index.md, report.tex)", ntab, ntab == 1 ? "" : "s", nfig,
                        nfig == 1 ? "" : "s", o.out, dm_wtime() - t0);
        dm_buf_free(&idx);
        dm_buf_free(&doc);
    }
    rc = par_agree(ctx, rc);
    dm_buf_free(&md);
    dm_buf_free(&tex);
    dm_buf_free(&figtex);
    for (size_t i = 0; i < sp.nt; i++) table_spec_free(&sp.t[i]);
    for (size_t i = 0; i < sp.nf; i++) fig_spec_free(&sp.f[i]);
    free(sp.t);
    free(sp.f);
    rpt_set_free(&s);
    rpt_labels_free();
    dm_cfg_free(&cfg);
    dm_strv_free(inputs, ninputs);
    dm_strv_free(paths, npaths);
    return rc;
}

int cmd_report(par_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    DM_CALL(cli_parse(argc, argv, &a));
    if (cli_help(ctx, &a, USAGE)) {
        cli_args_free(&a);
        return DM_OK;
    }
    dm_cfg cfg;
    int rc = cli_load_config(ctx, &a, &cfg);
    rc = par_agree(ctx, rc);
    if (!rc) rc = report(ctx, &a, &cfg);
    dm_cfg_free(&cfg);
    cli_args_free(&a);
    return rc;
}
