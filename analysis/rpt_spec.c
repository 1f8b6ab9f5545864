/* rpt_spec.c: which tables and figures `dynmm report` makes: specs parsed from report.tables and
 * report.figures, completed from the report.* defaults, or made from what the results hold. See
 * rpt_spec.h. */
#include "rpt_spec.h"

#include "rpt_label.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ----------------------------------------------------------------------------- */

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

/* Parses one spec "key=value; ..." into a table (fig == NULL) or a figure (tab == NULL). */
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
        else if (fig && !strcmp(key, "y2label")) rc = set_str(&fig->y2label, v);
        else if (fig && !strcmp(key, "y2")) rc = split_list(v, &fig->y2, &fig->ny2);
        else if (fig && !strcmp(key, "title")) rc = set_str(&fig->title, v);
        else if (fig && !strcmp(key, "logx")) rc = parse_bool(v, &fig->logx, where);
        else if (fig && !strcmp(key, "logy")) rc = parse_bool(v, &fig->logy, where);
        else known = 0;
        if (!known) {
            rc = DM_ERR(DM_ECONFIG, "%s: unknown key '%s'", where, key);
            DM_HINT(tab ? "table keys: name, split, protocols, models, metrics, baseline, caption, where"
                        : "figure keys: name, kind, split, protocol, models, metrics, x, data, xlabel, ylabel, y2, y2label, title, logx, logy, "
                          "where");
        }
    }
    dm_strv_free(parts, np);
    return rc;
}

/* ---- shared by the defaults and the completion ------------------------------------------- */

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

/* The models of a table or figure without models=: report.models, else every model without '@'. */
static int default_models(const rpt_set *s, const dm_cfg *c, char ***out, size_t *n)
{
    if (dm_cfg_len(c, "report.models")) return cfg_list(c, "report.models", out, n);
    for (size_t m = 0; m < s->nmodels; m++)
        if (!strchr(s->models[m], '@')) DM_CALL(dm_strv_push(out, n, s->models[m]));
    return DM_OK;
}

/* The split of a table or figure without split=: the first of report.splits, else "test". */
static const char *first_split(const dm_cfg *c) { return dm_cfg_len(c, "report.splits") ? dm_cfg_str_at(c, "report.splits", 0) : "test"; }

static int metric_exists(const rpt_set *s, const char *split, const char *metric)
{
    for (size_t r = 0; r < s->nruns; r++)
        for (size_t e = 0; e < s->runs[r].ne; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind == RPT_USERS && !strcmp(en->split, split) && rpt_col(en, metric) >= 0) return 1;
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

static rpt_table_spec *add_table(rpt_specs *sp)
{
    rpt_table_spec *n = dm_realloc_at(sp->t, sp->nt + 1, sizeof *n, __FILE__, __LINE__);
    if (!n) return NULL;
    sp->t = n;
    memset(&sp->t[sp->nt], 0, sizeof *n);
    return &sp->t[sp->nt++];
}

static rpt_fig_spec *add_fig(rpt_specs *sp)
{
    rpt_fig_spec *n = dm_realloc_at(sp->f, sp->nf + 1, sizeof *n, __FILE__, __LINE__);
    if (!n) return NULL;
    sp->f = n;
    memset(&sp->f[sp->nf], 0, sizeof *n);
    sp->f[sp->nf].logx = sp->f[sp->nf].logy = -1;
    return &sp->f[sp->nf++];
}

/* ---- the defaults ------------------------------------------------------------------------ */

/* What the default specs are made from. */
typedef struct {
    const rpt_set *s;
    const dm_cfg *c;
    rpt_specs *sp;
    int want_tables, want_figs;
    char **base_models;     /* (nbase) report.models, else the models without '@' */
    size_t nbase;
    char **fams;            /* (nfams) the variant families, in model order */
    size_t nfams;
} defaults;

/* One split's share of the defaults. */
typedef struct {
    const char *split;
    char **prots, **metrics, **matched; /* protocols with entries, default metrics, base models present */
    size_t nprot, nmet, nmatched;
    const char *p0;                     /* the protocol of the figures: "full" if present, else the first */
} dsplit;

static void dsplit_free(dsplit *x)
{
    dm_strv_free(x->matched, x->nmatched);
    dm_strv_free(x->prots, x->nprot);
    dm_strv_free(x->metrics, x->nmet);
}

/* The protocols, metrics and models of a split. */
static int split_setup(defaults *d, dsplit *x)
{
    const rpt_set *s = d->s;
    const dm_cfg *c = d->c;
    int rc = DM_OK;
    if (dm_cfg_len(c, "report.protocols")) {
        for (size_t i = 0; i < dm_cfg_len(c, "report.protocols") && !rc; i++)
            if (rpt_has_entry(s, x->split, dm_cfg_str_at(c, "report.protocols", i), NULL))
                rc = dm_strv_push(&x->prots, &x->nprot, dm_cfg_str_at(c, "report.protocols", i));
    } else
        for (size_t i = 0; i < s->nprotocols && !rc; i++)
            if (rpt_has_entry(s, x->split, s->protocols[i], NULL)) rc = dm_strv_push(&x->prots, &x->nprot, s->protocols[i]);
    if (!rc) rc = default_metrics(s, c, x->split, &x->metrics, &x->nmet);
    x->p0 = x->nprot ? (dm_strv_find(x->prots, x->nprot, "full") >= 0 ? "full" : x->prots[0]) : NULL;
    if (!rc) rc = rpt_match_models(s, d->base_models, d->nbase, &x->matched, &x->nmatched);
    return rc;
}

/* A table per protocol over the base models. */
static int split_tables(defaults *d, const dsplit *x)
{
    int rc = DM_OK;
    for (size_t p = 0; p < x->nprot && !rc && x->nmet && x->nmatched && d->want_tables; p++) {
        rpt_table_spec *t = add_table(d->sp);
        if (!t) return DM_ENOMEM;
        char name[256];
        snprintf(name, sizeof name, "%s_%s", x->split, x->prots[p]);
        safe_name(name);
        rc = set_str(&t->name, name);
        if (!rc) rc = set_str(&t->split, x->split);
        if (!rc) rc = dm_strv_push(&t->protocols, &t->nprotocols, x->prots[p]);
        for (size_t m = 0; m < x->nmatched && !rc; m++) rc = dm_strv_push(&t->models, &t->nmodels, x->matched[m]);
        for (size_t k = 0; k < x->nmet && !rc; k++) rc = dm_strv_push(&t->metrics, &t->nmetrics, x->metrics[k]);
    }
    return rc;
}

/* A figure of split x, protocol p0, over models (n). */
static int add_split_fig(defaults *d, const dsplit *x, const char *name, const char *kind, const char *xspec, char *const *models,
                         size_t n, rpt_fig_spec **out)
{
    rpt_fig_spec *f = add_fig(d->sp);
    if (!f) return DM_ENOMEM;
    char nm[256];
    snprintf(nm, sizeof nm, "%s", name);
    safe_name(nm);
    int rc = set_str(&f->name, nm);
    if (!rc) rc = set_str(&f->kind, kind);
    if (!rc) rc = set_str(&f->x, xspec);
    if (!rc) rc = set_str(&f->split, x->split);
    if (!rc) rc = set_str(&f->protocol, x->p0);
    for (size_t m = 0; m < n && !rc; m++) rc = dm_strv_push(&f->models, &f->nmodels, models[m]);
    *out = f;
    return rc;
}

/* Figures of the models: a curve per varied key (a sweep), else bars of every metric. */
static int model_figs(defaults *d, const dsplit *x)
{
    const rpt_set *s = d->s;
    int rc = DM_OK;
    for (size_t v = 0; v < s->nvaried && !rc; v++) {
        char name[256], xs[300];
        const char *dot = strrchr(s->varied[v], '.');
        snprintf(name, sizeof name, "%s_%s_%s", x->split, x->p0, dot ? dot + 1 : s->varied[v]);
        snprintf(xs, sizeof xs, "key:%s", s->varied[v]);
        rpt_fig_spec *f;
        rc = add_split_fig(d, x, name, "curve", xs, x->matched, x->nmatched, &f);
        if (!rc) rc = dm_strv_push(&f->metrics, &f->nmetrics, x->metrics[0]);
    }
    if (rc || s->nvaried) return rc;
    char name[256];
    snprintf(name, sizeof name, "%s_%s_models", x->split, x->p0);
    rpt_fig_spec *f;
    rc = add_split_fig(d, x, name, "bars", "", x->matched, x->nmatched, &f);
    for (size_t k = 0; k < x->nmet && !rc; k++) rc = dm_strv_push(&f->metrics, &f->nmetrics, x->metrics[k]);
    return rc;
}

/* A variant family: a table per protocol that holds some of its members (its base models, then
 * its members, against the first base model), named SPLIT_PROTOCOL_FAMILY, with several base models
 * also a table per base model of its own members against it (SPLIT_PROTOCOL_FAMILY-BASE: llm@static
 * against llm), and a figure on the
 * first such protocol of p0 and the others (a curve when every member ends in a number, else bars
 * with the base models). The stress variants of eval live in the full protocol, the modality
 * ablations of the LLM recommenders in the "-llm" protocols of prompt.h5. */
static int family_specs(defaults *d, const dsplit *x, const char *family)
{
    const rpt_set *s = d->s;
    int rc = DM_OK, fig_done = 0;
    for (size_t pi = 0; pi <= x->nprot && !rc; pi++) {
        /* p0 first, then the other protocols in order */
        const char *prot = pi == 0 ? x->p0 : x->prots[pi - 1];
        if (!prot || (pi > 0 && !strcmp(prot, x->p0))) continue;
        char **members = NULL, **bases = NULL;
        size_t nmem = 0, nb = 0;
        int numeric = 1;
        for (size_t m = 0; m < s->nmodels && !rc; m++) {
            char fam[128];
            family_of(s->models[m], fam, sizeof fam);
            if (strcmp(fam, family) || !rpt_has_entry(s, x->split, prot, s->models[m])) continue;
            rc = dm_strv_push(&members, &nmem, s->models[m]);
            size_t l = strlen(s->models[m]);
            numeric &= l && s->models[m][l - 1] >= '0' && s->models[m][l - 1] <= '9';
            char base[256];
            snprintf(base, sizeof base, "%.*s", (int)(strchr(s->models[m], '@') - s->models[m]), s->models[m]);
            if (!rc && dm_strv_find(bases, nb, base) < 0 && rpt_has_entry(s, x->split, prot, base)) rc = dm_strv_push(&bases, &nb, base);
        }
        char name[256];
        snprintf(name, sizeof name, "%s_%s_%s", x->split, prot, family);
        safe_name(name);
        if (!rc && nmem && d->want_tables) {
            rpt_table_spec *t = add_table(d->sp);
            rc = t ? set_str(&t->name, name) : DM_ENOMEM;
            if (!rc) rc = set_str(&t->split, x->split);
            if (!rc) rc = dm_strv_push(&t->protocols, &t->nprotocols, prot);
            for (size_t m = 0; m < nb && !rc; m++) rc = dm_strv_push(&t->models, &t->nmodels, bases[m]);
            for (size_t m = 0; m < nmem && !rc; m++) rc = dm_strv_push(&t->models, &t->nmodels, members[m]);
            for (size_t k = 0; k < x->nmet && !rc; k++) rc = dm_strv_push(&t->metrics, &t->nmetrics, x->metrics[k]);
            if (!rc) rc = set_str(&t->baseline, nb ? bases[0] : members[0]);
        }
        /* with several base models the table above tests against the first; each base also gets a
           table of its own members against it, SPLIT_PROTOCOL_FAMILY-BASE */
        for (size_t bi = 0; nb > 1 && bi < nb && !rc && nmem && d->want_tables; bi++) {
            size_t bl = strlen(bases[bi]), nown = 0;
            for (size_t m = 0; m < nmem; m++) nown += !strncmp(members[m], bases[bi], bl) && members[m][bl] == '@';
            if (!nown) continue;
            rpt_table_spec *t = add_table(d->sp);
            char bname[400];
            snprintf(bname, sizeof bname, "%s-%s", name, bases[bi]);
            safe_name(bname);
            rc = t ? set_str(&t->name, bname) : DM_ENOMEM;
            if (!rc) rc = set_str(&t->split, x->split);
            if (!rc) rc = dm_strv_push(&t->protocols, &t->nprotocols, prot);
            if (!rc) rc = dm_strv_push(&t->models, &t->nmodels, bases[bi]);
            for (size_t m = 0; m < nmem && !rc; m++)
                if (!strncmp(members[m], bases[bi], bl) && members[m][bl] == '@') rc = dm_strv_push(&t->models, &t->nmodels, members[m]);
            for (size_t k = 0; k < x->nmet && !rc; k++) rc = dm_strv_push(&t->metrics, &t->nmetrics, x->metrics[k]);
            if (!rc) rc = set_str(&t->baseline, bases[bi]);
        }
        if (!rc && nmem && d->want_figs && !fig_done) {
            rpt_fig_spec *f;
            rc = add_split_fig(d, x, name, numeric ? "curve" : "bars", numeric ? "suffix" : "", bases, numeric ? 0 : nb, &f);
            if (!rc) rc = set_str(&f->protocol, prot);
            for (size_t m = 0; m < nmem && !rc; m++) rc = dm_strv_push(&f->models, &f->nmodels, members[m]);
            if (!rc) rc = dm_strv_push(&f->metrics, &f->nmetrics, x->metrics[0]);
            fig_done = 1;
        }
        dm_strv_free(members, nmem);
        dm_strv_free(bases, nb);
    }
    return rc;
}

/* The default tables and figures of one split. */
static int split_defaults(defaults *d, const char *split)
{
    dsplit x = {.split = split};
    int rc = split_setup(d, &x);
    if (!rc) rc = split_tables(d, &x);
    if (!rc && x.p0 && x.nmet && x.nmatched && d->want_figs) rc = model_figs(d, &x);
    for (size_t fi = 0; fi < d->nfams && !rc && x.p0 && x.nmet; fi++) rc = family_specs(d, &x, d->fams[fi]);
    dsplit_free(&x);
    return rc;
}

/* A curve of the points datasets of group g, x = column x, y = cols (n; every other column when 0). */
static int add_points_fig(defaults *d, const char *name, const char *g, const char *x, char *const *cols, size_t n)
{
    rpt_fig_spec *f = add_fig(d->sp);
    char xs[300];
    snprintf(xs, sizeof xs, "column:%s", x);
    int rc = f ? set_str(&f->name, name) : DM_ENOMEM;
    if (!rc) safe_name(f->name);
    if (!rc) rc = set_str(&f->kind, "curve");
    if (!rc) rc = set_str(&f->x, xs);
    if (!rc) rc = set_str(&f->data, g);
    for (size_t i = 0; i < n && !rc; i++) rc = dm_strv_push(&f->metrics, &f->nmetrics, cols[i]);
    return rc;
}

/* Groups of points datasets with their own columns: a curve each, x = the first column, named by the
 * group (and the dataset when it is the group's only one: prompt_latency). A figure holds two
 * quantities at most (a loss and seconds, on two axes: rpt_quantity); a group of more makes one
 * figure per quantity. */
static int points_figs(defaults *d)
{
    const rpt_set *s = d->s;
    int rc = DM_OK;
    for (size_t g = 0; g < s->ngroups && !rc && d->want_figs; g++) {
        const rpt_entry *e0 = NULL;
        size_t nds = 0;
        for (size_t r = 0; r < s->nruns; r++)
            for (size_t e = 0; e < s->runs[r].ne; e++) {
                const rpt_entry *en = &s->runs[r].e[e];
                if (en->kind != RPT_POINTS || en->root_cols || strcmp(en->group, s->groups[g])) continue;
                nds += !e0 || strcmp(e0->leaf, en->leaf);
                if (!e0) e0 = en;
            }
        if (!e0 || e0->cols < 2) continue;
        char name[300];
        const char *gname = s->groups[g][0] ? s->groups[g] : "points";
        if (nds == 1) snprintf(name, sizeof name, "%s_%s", gname, e0->leaf);
        else snprintf(name, sizeof name, "%s", gname);
        char **qs = NULL;
        size_t nq = 0;
        int loss = 0;
        for (size_t j = 1; j < e0->cols; j++) loss |= strstr(e0->colnames[j], "loss") != NULL;
        for (size_t j = 1; j < e0->cols && !rc; j++) {
            const char *q = rpt_quantity(e0->colnames[j], loss);
            if (dm_strv_find(qs, nq, q) < 0) rc = dm_strv_push(&qs, &nq, q);
        }
        if (!rc && nq <= 2) rc = add_points_fig(d, name, s->groups[g], e0->colnames[0], NULL, 0);
        for (size_t q = 0; q < nq && nq > 2 && !rc; q++) {
            char **cols = NULL, qn[400];
            size_t nc = 0;
            for (size_t j = 1; j < e0->cols && !rc; j++)
                if (!strcmp(rpt_quantity(e0->colnames[j], loss), qs[q])) rc = dm_strv_push(&cols, &nc, e0->colnames[j]);
            snprintf(qn, sizeof qn, "%s_%s", name, qs[q]);
            if (!rc) rc = add_points_fig(d, qn, s->groups[g], e0->colnames[0], cols, nc);
            dm_strv_free(cols, nc);
        }
        dm_strv_free(qs, nq);
    }
    return rc;
}

/* Metrics per row (streaming windows: stream/<variant>/mean): one curve per parent group and
 * dataset name, a series per variant, x = the row (window), y = the first report metric. */
static int row_figs(defaults *d)
{
    const rpt_set *s = d->s;
    const dm_cfg *c = d->c;
    char **seen = NULL;
    size_t nseen = 0;
    int rc = DM_OK;
    for (size_t r = 0; r < s->nruns && !rc && d->want_figs; r++)
        for (size_t e = 0; e < s->runs[r].ne && !rc; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind != RPT_POINTS || !en->root_cols) continue;
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
            rpt_fig_spec *f = rc ? NULL : add_fig(d->sp);
            if (!rc && !f) rc = DM_ENOMEM;
            if (!rc) rc = set_str(&f->name, name);
            if (!rc) rc = set_str(&f->kind, "curve");
            if (!rc) rc = set_str(&f->x, "row");
            if (!rc) rc = set_str(&f->data, data);
            if (!rc) rc = dm_strv_push(&f->models, &f->nmodels, en->leaf);
            if (!rc) rc = dm_strv_push(&f->metrics, &f->nmetrics, metric);
        }
    dm_strv_free(seen, nseen);
    return rc;
}

/* The default tables (want_tables) and figures (want_figs): for every split of report.splits and
 * then the prequential split of `dynmm stream` when the results hold it, a table per protocol, the
 * figures of the models and a table and figure per variant family; a curve per group of points
 * datasets and per dataset of metrics per row. */
static int default_specs(const rpt_set *s, const dm_cfg *c, rpt_specs *sp, int want_tables, int want_figs)
{
    defaults d = {.s = s, .c = c, .sp = sp, .want_tables = want_tables, .want_figs = want_figs};
    int rc = default_models(s, c, &d.base_models, &d.nbase);
    for (size_t m = 0; m < s->nmodels && !rc; m++) {
        char fam[128];
        family_of(s->models[m], fam, sizeof fam);
        if (fam[0] && dm_strv_find(d.fams, d.nfams, fam) < 0) rc = dm_strv_push(&d.fams, &d.nfams, fam);
    }
    size_t nsplit_cfg = dm_cfg_len(c, "report.splits"), nsplit = nsplit_cfg;
    int add_preq = rpt_has_entry(s, "prequential", NULL, NULL);
    for (size_t si = 0; si < nsplit_cfg && add_preq; si++) add_preq = strcmp(dm_cfg_str_at(c, "report.splits", si), "prequential") != 0;
    nsplit += (size_t)add_preq;
    for (size_t si = 0; si < nsplit && !rc; si++) {
        const char *split = si < nsplit_cfg ? dm_cfg_str_at(c, "report.splits", si) : "prequential";
        if (rpt_has_entry(s, split, NULL, NULL)) rc = split_defaults(&d, split);
        /* (a streaming run alone holds only the prequential split: nothing to warn about) */
        else if (!(add_preq && s->nsplits == 1)) dm_warn("report.splits: the results hold no '%s' split", split);
    }
    if (!rc) rc = points_figs(&d);
    if (!rc) rc = row_figs(&d);
    dm_strv_free(d.base_models, d.nbase);
    dm_strv_free(d.fams, d.nfams);
    return rc;
}

/* ---- completing specs -------------------------------------------------------------------- */

/* Fills the fields a table spec left out (i: its index in report.tables). */
static int complete_table(const rpt_set *s, const dm_cfg *c, rpt_table_spec *t, size_t i)
{
    char nm[64];
    snprintf(nm, sizeof nm, "table%zu", i + 1);
    if (!t->name) DM_CALL(set_str(&t->name, nm));
    if (!t->split) DM_CALL(set_str(&t->split, first_split(c)));
    if (!t->nprotocols) {
        if (dm_strv_find(s->protocols, s->nprotocols, "full") >= 0) DM_CALL(dm_strv_push(&t->protocols, &t->nprotocols, "full"));
        else if (s->nprotocols) DM_CALL(dm_strv_push(&t->protocols, &t->nprotocols, s->protocols[0]));
    }
    for (size_t p = 0; p < t->nprotocols; p++)
        if (!rpt_has_entry(s, t->split, t->protocols[p], NULL)) {
            DM_ERR(DM_ECONFIG, "table '%s': the results hold no %s/%s", t->name, t->split, t->protocols[p]);
            DM_HINT("eval.splits and eval.protocols of the runs say what exists");
            return DM_ECONFIG;
        }
    if (!t->nmodels) DM_CALL(default_models(s, c, &t->models, &t->nmodels));
    if (!t->nmetrics) DM_CALL(cfg_list(c, "report.metrics", &t->metrics, &t->nmetrics));
    return DM_OK;
}

/* Fills the fields a figure spec left out (i: its index in report.figures). */
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
                if (s->runs[r].e[e].kind == RPT_POINTS && !strcmp(s->runs[r].e[e].group, f->data) && !strcmp(f->x, "column:")) {
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
    if (!f->split) DM_CALL(set_str(&f->split, first_split(c)));
    if (!f->protocol) DM_CALL(set_str(&f->protocol, dm_strv_find(s->protocols, s->nprotocols, "full") >= 0 || !s->nprotocols ? "full" : s->protocols[0]));
    if (!f->nmetrics && !f->data) DM_CALL(dm_strv_push(&f->metrics, &f->nmetrics, dm_cfg_len(c, "report.metrics") ? dm_cfg_str_at(c, "report.metrics", 0) : "ndcg@10"));
    if (!f->nmodels && !f->data) DM_CALL(default_models(s, c, &f->models, &f->nmodels));
    return DM_OK;
}

/* ---- the specs --------------------------------------------------------------------------- */

/* "<where report.tables was set>: report.tables entry 2" */
static const char *entry_where(const dm_cfg *c, const char *key, size_t i, char *where, size_t cap)
{
    char w[256];
    snprintf(where, cap, "%s: %s entry %zu", dm_cfg_where(c, key, w, sizeof w), key, i + 1);
    return where;
}

int rpt_spec_build(const rpt_set *s, const dm_cfg *c, rpt_specs *sp)
{
    memset(sp, 0, sizeof *sp);
    size_t nts = dm_cfg_len(c, "report.tables"), nfs = dm_cfg_len(c, "report.figures");
    int rc = default_specs(s, c, sp, !nts, !nfs);
    char where[300];
    for (size_t i = 0; i < nts && !rc; i++) {
        rpt_table_spec *t = add_table(sp);
        rc = t ? parse_spec(dm_cfg_str_at(c, "report.tables", i), entry_where(c, "report.tables", i, where, sizeof where), t, NULL) : DM_ENOMEM;
        if (!rc) rc = complete_table(s, c, t, i);
    }
    for (size_t i = 0; i < nfs && !rc; i++) {
        rpt_fig_spec *f = add_fig(sp);
        rc = f ? parse_spec(dm_cfg_str_at(c, "report.figures", i), entry_where(c, "report.figures", i, where, sizeof where), NULL, f) : DM_ENOMEM;
        if (!rc) rc = complete_fig(s, c, f, i);
    }
    return rc;
}

void rpt_spec_free(rpt_specs *sp)
{
    for (size_t i = 0; i < sp->nt; i++) rpt_table_spec_free(&sp->t[i]);
    for (size_t i = 0; i < sp->nf; i++) rpt_fig_spec_free(&sp->f[i]);
    free(sp->t);
    free(sp->f);
    memset(sp, 0, sizeof *sp);
}
