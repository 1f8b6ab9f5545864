/* report_table.c: one results table of `dynmm report`: rows (model x configuration), cells (mean
 * +- sd over seeds), paired significance tests against a baseline with Holm's correction over the
 * table, best / second best, written as LaTeX (booktabs), Markdown and CSV. See report.h.
 *
 * Rows. Every model of the table in every configuration that has it; a model whose numbers are the
 * same (bitwise, every seed, every cell) in all configurations (e.g. popularity when only SASRec's
 * settings vary) is shown once, without configuration values.
 *
 * Tests. A row is compared with the baseline model of the same configuration, or of the one
 * configuration a baseline "model[group.key=value,...]" names, run by run (same seed, same users): within each seed across users with stats_compare (stats.test, stats.*), and
 * across seeds per report.across_seeds. The mark of a cell comes from the user-level test when the
 * configuration has one seed, else from the across-seeds test. Holm's adjustment runs over the
 * mark-deciding tests of the whole table (stats.correction); the per-seed tests are adjusted per
 * seed. Every test goes to <name>_tests.csv.
 */
#include "report.h"

#include "report_util.h"

#include "../src/config/cfgtext.h"
#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- labels ------------------------------------------------------------------------------ */

static char **g_lab_names, **g_lab_vals;
static size_t g_nlab_names, g_nlab_vals;

static const char *cache(const char *name, const char *val)
{
    if (dm_strv_push(&g_lab_names, &g_nlab_names, name) || dm_strv_push(&g_lab_vals, &g_nlab_vals, val)) return name;
    return g_lab_vals[g_nlab_vals - 1];
}

/* report.labels entry for name, or NULL */
static const char *user_label(const rpt_opts *o, const char *name)
{
    size_t n = dm_cfg_len(o->cfg, "report.labels"), l = strlen(name);
    for (size_t i = 0; i < n; i++) {
        const char *e = dm_cfg_str_at(o->cfg, "report.labels", i);
        if (!strncmp(e, name, l) && e[l] == '=') return e + l + 1;
    }
    return NULL;
}

static int is_user_label(const rpt_opts *o, const char *name) { return user_label(o, name) != NULL; }

const char *rpt_label(const rpt_opts *o, const char *name)
{
    const char *u = user_label(o, name);
    if (u) return u;
    for (size_t i = 0; i < g_nlab_names; i++)
        if (!strcmp(g_lab_names[i], name)) return g_lab_vals[i];
    static const char *const known[][2] = {{"pop", "Pop"},   {"ease", "EASE"},     {"sasrec", "SASRec"}, {"mrr", "MRR"},
                                           {"valid", "validation"}, {"test", "test"}, {"full", "full ranking"},
                                           {"seconds", "time per batch (s)"}, {"prompt_len", "prompt length L (tokens)"},
                                           {"snr_db", "SNR (dB)"}, {"window", "window"},
                                           /* the prequential protocol of `dynmm stream` */
                                           {"prequential", "prequential"}, {"full-drifting", "full ranking, drifting users"},
                                           {"full-stable", "full ranking, stable users"}, {"static", "static aligner"},
                                           {"adapter", "adapter"}, {"no_gate", "adapter w/o gate"}, {"no_ema", "adapter w/o EMA"},
                                           {"no_replay", "adapter w/o replay"}, {"no_kl", "adapter w/o KL"},
                                           {"no_ewc", "adapter w/o EWC"}, {"retrained", "SASRec retrained"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i][0], name)) return known[i][1];
    char buf[512];
    const char *at = strchr(name, '@');
    static const char *const metrics[][2] = {{"hit", "Hit"}, {"ndcg", "NDCG"}, {"recall", "Recall"}, {"precision", "Precision"},
                                             {"mrr", "MRR"}, {"map", "MAP"}};
    if (at) {
        for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
            if (strlen(metrics[i][0]) == (size_t)(at - name) && !strncmp(name, metrics[i][0], (size_t)(at - name))) {
                snprintf(buf, sizeof buf, "%s@%s", metrics[i][1], at + 1);
                return cache(name, buf);
            }
        /* a model variant: "sasrec@drop_visual_50" -> "SASRec drop_visual_50" */
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(at - name), name);
        snprintf(buf, sizeof buf, "%s %s", rpt_label(o, base), at + 1);
        return cache(name, buf);
    }
    long n;
    char tail;
    if ((sscanf(name, "uni%ld%c", &n, &tail) == 1 || sscanf(name, "pop%ld%c", &n, &tail) == 1) && n > 0) {
        snprintf(buf, sizeof buf, "1+%ld %s", n, name[0] == 'u' ? "uniform" : "popular");
        return cache(name, buf);
    }
    char rest[64];
    if ((sscanf(name, "uni%ld%63s", &n, rest) == 2 || sscanf(name, "pop%ld%63s", &n, rest) == 2) && n > 0 && !strcmp(rest, "-llm")) {
        snprintf(buf, sizeof buf, "1+%ld %s, the users of the LLM stage", n, name[0] == 'u' ? "uniform" : "popular");
        return cache(name, buf);
    }
    return name;
}

const char *rpt_key_label(const rpt_opts *o, const rpt_set *s, const char *key)
{
    const char *u = user_label(o, key);
    if (u) return u;
    const char *dot = strrchr(key, '.');
    if (!dot) return key;
    for (size_t j = 0; j < s->nvaried; j++) {
        const char *d2 = strrchr(s->varied[j], '.');
        if (strcmp(s->varied[j], key) && d2 && !strcmp(d2 + 1, dot + 1)) return key;
    }
    return dot + 1;
}

int rpt_lower_better(const rpt_opts *o, const char *metric)
{
    for (size_t i = 0; i < dm_cfg_len(o->cfg, "report.lower_better"); i++)
        if (dm_str_match(dm_cfg_str_at(o->cfg, "report.lower_better", i), metric)) return 1;
    return 0;
}

/* A label for LaTeX: user labels verbatim, generated ones escaped. */
static int tex_label(dm_buf *b, const rpt_opts *o, const char *name, const char *label)
{
    if (is_user_label(o, name)) return dm_buf_adds(b, label);
    return ru_tex_escape(b, label);
}

/* ---- selections -------------------------------------------------------------------------- */

int rpt_match_models(const rpt_set *s, char *const *globs, size_t n, char ***out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    for (size_t g = 0; g < n; g++)
        for (size_t m = 0; m < s->nmodels; m++)
            if (dm_str_match(globs[g], s->models[m]) && dm_strv_find(*out, *nout, s->models[m]) < 0)
                DM_CALL(dm_strv_push(out, nout, s->models[m]));
    return DM_OK;
}

int rpt_conf_ok(const rpt_set *s, size_t c, char *const *where, size_t nwhere)
{
    const rpt_run *r = &s->runs[s->confs[c].runs[0]];
    for (size_t i = 0; i < nwhere; i++) {
        const char *eq = strchr(where[i], '=');
        if (!eq) continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - where[i]), where[i]);
        if (dm_key_index(key) < 0) return 0;
        dm_buf v = {0};
        int ok = !dm_cfgtext_value(&r->cfg, key, &v) && v.data && !strcmp(v.data, eq + 1);
        if (!ok && v.data) {
            double a, b;
            ok = dm_str_is_number(v.data, &a) && dm_str_is_number(eq + 1, &b) && a == b;
        }
        dm_buf_free(&v);
        if (!ok) return 0;
    }
    return 1;
}

size_t rpt_conf_values(const rpt_set *s, size_t c, const char *split, const char *protocol, const char *model,
                       const char *metric, double *vals)
{
    const rpt_conf *cf = &s->confs[c];
    size_t k = 0;
    for (size_t i = 0; i < cf->nruns; i++) {
        const rpt_entry *e = rpt_find(&s->runs[cf->runs[i]], split, protocol, model);
        int col = e ? rpt_col(e, metric) : -1;
        vals[i] = col >= 0 ? e->mean[col] : NAN;
        k += col >= 0 && !isnan(vals[i]);
    }
    return k;
}

/* ---- the table --------------------------------------------------------------------------- */

typedef struct {
    char *model;
    size_t conf;
    int collapsed;
} trow;

typedef struct {
    double mean, sd;
    size_t k;          /* seeds present */
    int64_t users;
    double p, padj;    /* the mark-deciding test (NaN: none) */
    int scope;         /* -1 none, 0..nruns-1 the seed, NR_ACROSS, NR_POOLED */
    int mark;          /* +1 significantly better, -1 worse */
    int rank;          /* 1 best, 2 second */
    char shown[64];    /* the displayed mean */
} tcell;

/* one comparison as doubles, so ranks can exchange them */
enum { C_N, C_MA, C_MB, C_DIFF, C_P, C_STAT, C_D, C_RB, C_LO, C_HI, C_FLAGS, C_NREC };

typedef struct {
    size_t row, prot;
    size_t bconf;      /* configuration of the baseline runs (the row's own unless fixed) */
    double *rec;       /* (nmetrics, nruns + 2, C_NREC): per seed, then across, then pooled */
    double *padj;      /* (nmetrics, nruns + 2) Holm-adjusted p of each test */
    size_t nruns;
} tunit;

#define NR_ACROSS(nr) (nr)
#define NR_POOLED(nr) ((nr) + 1)

static void rec_set(double *r, const stats_comparison *c)
{
    r[C_N] = (double)c->n;
    r[C_MA] = c->mean_a;
    r[C_MB] = c->mean_b;
    r[C_DIFF] = c->mean_diff;
    r[C_P] = c->test.p;
    r[C_STAT] = c->test.stat;
    r[C_D] = c->d;
    r[C_RB] = c->rank_biserial;
    r[C_LO] = c->ci.lo;
    r[C_HI] = c->ci.hi;
    r[C_FLAGS] = c->test.flags;
}

static void rec_nan(double *r)
{
    for (int i = 0; i < C_NREC; i++) r[i] = NAN;
}

/* The run of configuration bc with the seed of run r (r itself when bc is r's configuration). */
static const rpt_run *base_run(const rpt_set *s, const rpt_run *r, size_t bc)
{
    if (r->conf == bc) return r;
    for (size_t i = 0; i < s->confs[bc].nruns; i++)
        if (s->runs[s->confs[bc].runs[i]].seed == r->seed) return &s->runs[s->confs[bc].runs[i]];
    return NULL;
}

/* The user-level tests of one unit: every seed, and the pooled test. */
static int run_unit(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_table_spec *t, const trow *rows,
                    const char *baseline, tunit *u)
{
    const rpt_conf *cf = &s->confs[rows[u->row].conf];
    const char *prot = t->protocols[u->prot];
    size_t nm = t->nmetrics, nr = cf->nruns, stride = (nr + 2) * C_NREC;
    for (size_t i = 0; i < nm * stride; i++) u->rec[i] = NAN;
    double **pa = dm_calloc_at(nm + 1, sizeof *pa, __FILE__, __LINE__), **pb = dm_calloc_at(nm + 1, sizeof *pb, __FILE__, __LINE__);
    size_t *pn = dm_calloc_at(nm + 1, sizeof *pn, __FILE__, __LINE__);
    int rc = pa && pb && pn ? DM_OK : DM_ENOMEM;
    for (size_t i = 0; i < nr && !rc; i++) {
        const rpt_run *run = &s->runs[cf->runs[i]], *brun = base_run(s, run, u->bconf);
        const rpt_entry *es = rpt_find(run, t->split, prot, rows[u->row].model);
        const rpt_entry *eb = brun ? rpt_find(brun, t->split, prot, baseline) : NULL;
        if (!es || !eb) continue;
        if (es->rows != eb->rows) {
            rc = DM_ERR(DM_EFORMAT, "%s: %s has %zu rows but %s in %s %zu; cannot pair users", run->path, es->name, es->rows, eb->name,
                        brun->path, eb->rows);
            DM_HINT("a baseline in another configuration must be scored on the same users (the same data and split)");
            break;
        }
        double *xs = NULL, *xb = NULL;
        rc = rpt_read_rows(ctx, run, es, &xs);
        if (!rc) rc = rpt_read_rows(ctx, brun, eb, &xb);
        double *a = rc ? NULL : dm_calloc_at(es->rows + 1, sizeof *a, __FILE__, __LINE__);
        double *b = rc ? NULL : dm_calloc_at(es->rows + 1, sizeof *b, __FILE__, __LINE__);
        if (!rc && (!a || !b)) rc = DM_ENOMEM;
        for (size_t k = 0; k < nm && !rc; k++) {
            int cs = rpt_col(es, t->metrics[k]), cb = rpt_col(eb, t->metrics[k]);
            if (cs < 0 || cb < 0) continue;
            size_t n = 0;
            for (size_t r = 0; r < es->rows; r++) {
                double va = xs[r * es->cols + (size_t)cs], vb = xb[r * eb->cols + (size_t)cb];
                if (isfinite(va) && isfinite(vb)) {
                    a[n] = va;
                    b[n] = vb;
                    n++;
                }
            }
            if (n == 0) continue;
            stats_comparison c;
            rc = stats_compare(a, b, n, &o->so, &c);
            if (!rc) rec_set(u->rec + k * stride + i * C_NREC, &c);
            if (!rc && o->across == 2 && nr > 1) {
                double *na = dm_realloc_at(pa[k], pn[k] + n, sizeof *na, __FILE__, __LINE__);
                double *nb = na ? dm_realloc_at(pb[k], pn[k] + n, sizeof *nb, __FILE__, __LINE__) : NULL;
                if (na) pa[k] = na;
                if (nb) pb[k] = nb;
                if (!na || !nb) rc = DM_ENOMEM;
                else {
                    memcpy(pa[k] + pn[k], a, n * sizeof *a);
                    memcpy(pb[k] + pn[k], b, n * sizeof *b);
                    pn[k] += n;
                }
            }
        }
        free(xs);
        free(xb);
        free(a);
        free(b);
    }
    for (size_t k = 0; k < nm && !rc && o->across == 2 && nr > 1; k++) {
        if (!pn[k]) continue;
        stats_comparison c;
        rc = stats_compare(pa[k], pb[k], pn[k], &o->so, &c);
        if (!rc) rec_set(u->rec + k * stride + NR_POOLED(nr) * C_NREC, &c);
    }
    for (size_t k = 0; pa && pb && k < nm; k++) {
        free(pa[k]);
        free(pb[k]);
    }
    free(pa);
    free(pb);
    free(pn);
    return rc;
}

/* The across-seeds test from per-seed means (every rank computes it; it is cheap). */
static int across_test(const rpt_opts *o, const double *ms, const double *mb, size_t n, double *rec)
{
    rec_nan(rec);
    if (n < 2) return DM_OK;
    if (o->across == 0) {
        stats_result r;
        DM_CALL(stats_ttest_rel(ms, mb, n, o->so.alt, &r));
        rec[C_N] = (double)n;
        rec[C_MA] = stats_sum(ms, n) / (double)n;
        rec[C_MB] = stats_sum(mb, n) / (double)n;
        rec[C_DIFF] = r.estimate;
        rec[C_P] = r.p;
        rec[C_STAT] = r.stat;
        rec[C_D] = r.effect;
        rec[C_FLAGS] = r.flags;
        return DM_OK;
    }
    stats_comparison c;
    DM_CALL(stats_compare(ms, mb, n, &o->so, &c));
    rec_set(rec, &c);
    return DM_OK;
}

static const char *test_desc(const rpt_opts *o, int scope_kind)
{
    static char buf[200];
    const char *tn = o->so.test == STATS_TEST_TTEST ? "t-test" : o->so.test == STATS_TEST_RANDOMIZATION ? "randomisation test" : "Wilcoxon signed-rank test";
    if (scope_kind == 0) snprintf(buf, sizeof buf, "paired %s across users", tn);
    else if (scope_kind == 1 && o->across == 0) snprintf(buf, sizeof buf, "paired t-test over the per-seed means");
    else if (scope_kind == 1) snprintf(buf, sizeof buf, "paired %s over the per-seed means", tn);
    else snprintf(buf, sizeof buf, "paired %s over the users of all seeds", tn);
    return buf;
}

static const char *test_name(const rpt_opts *o, int scope_kind)
{
    if (scope_kind == 1 && o->across == 0) return "ttest";
    return stats_test_name(o->so.test);
}

static int csv_field(dm_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\n")) return dm_buf_adds(b, s);
    DM_CALL(dm_buf_addc(b, '"'));
    for (; *s; s++) {
        if (*s == '"') DM_CALL(dm_buf_addc(b, '"'));
        DM_CALL(dm_buf_addc(b, *s));
    }
    return dm_buf_addc(b, '"');
}

static int csv_num(dm_buf *b, double x)
{
    if (isnan(x)) return DM_OK;
    return dm_buf_printf(b, "%.10g", x);
}

static void fmt_num(const rpt_opts *o, double x, char *out, size_t cap)
{
    if (isnan(x)) snprintf(out, cap, "--");
    else snprintf(out, cap, "%.*f", o->digits, o->percent ? 100 * x : x);
}

int rpt_table(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_table_spec *t, dm_buf *md)
{
    int rc = DM_OK;
    char **models = NULL;
    size_t nmodels = 0;
    DM_CALL(rpt_match_models(s, t->models, t->nmodels, &models, &nmodels));
    if (!nmodels) {
        dm_warn("table '%s': no model matches; skipped", t->name);
        return DM_OK;
    }
    /* metrics must exist */
    for (size_t k = 0; k < t->nmetrics && !rc; k++) {
        int found = 0;
        const rpt_entry *any = NULL;
        for (size_t r = 0; r < s->nruns && !found; r++)
            for (size_t e = 0; e < s->runs[r].ne && !found; e++) {
                const rpt_entry *en = &s->runs[r].e[e];
                if (en->kind != RE_USERS || strcmp(en->split, t->split)) continue;
                any = en;
                found = rpt_col(en, t->metrics[k]) >= 0;
            }
        if (!found) {
            rc = DM_ERR(DM_ECONFIG, "table '%s': no metric '%s' in the results", t->name, t->metrics[k]);
            if (any) {
                dm_buf h = {0};
                for (size_t j = 0; j < any->cols; j++) dm_buf_printf(&h, "%s%s", j ? ", " : "", any->colnames[j]);
                DM_HINT("the results hold: %s (eval.ks sets the cutoffs)", h.data ? h.data : "");
                dm_buf_free(&h);
            }
        }
    }
    /* the baseline: a model, optionally in one configuration: "sasrec[sasrec.hidden=32]" */
    char baseline[256], bdesc[512] = "";
    size_t bfixed = SIZE_MAX;
    snprintf(baseline, sizeof baseline, "%s", t->baseline && t->baseline[0] ? t->baseline : models[0]);
    char *br = strchr(baseline, '[');
    if (!rc && br) {
        size_t l = strlen(br);
        char **flt = NULL;
        size_t nflt = 0;
        if (br[l - 1] != ']') rc = DM_ERR(DM_ECONFIG, "table '%s': baseline '%s' is not MODEL[group.key=value,...]", t->name, baseline);
        else {
            br[l - 1] = '\0';
            rc = dm_strv_split(br + 1, ',', &flt, &nflt);
            *br = '\0';
        }
        size_t nmatch = 0;
        for (size_t c = 0; !rc && c < s->nconfs; c++)
            if (s->confs[c].nruns && rpt_conf_ok(s, c, flt, nflt)) {
                nmatch++;
                bfixed = c;
            }
        if (!rc && nmatch != 1) {
            rc = DM_ERR(DM_ECONFIG, "table '%s': %zu configurations match the baseline's settings [%s]", t->name, nmatch, br + 1);
            DM_HINT(nmatch ? "add the other varied keys to the baseline's settings" : "the settings are full key names with values as in the runs, e.g. sasrec[sasrec.hidden=32]");
        }
        if (!rc) snprintf(bdesc, sizeof bdesc, " (%s)", s->confs[bfixed].label);
        dm_strv_free(flt, nflt);
    }
    if (!rc && dm_strv_find(models, nmodels, baseline) < 0) {
        rc = DM_ERR(DM_ECONFIG, "table '%s': the baseline '%s' is not one of its models", t->name, baseline);
        DM_HINT("add it to the table's models, or set baseline= (report.baseline) to one of them");
    }
    /* rows */
    trow *rows = NULL;
    size_t nrows = 0, nconf_used = 0;
    if (!rc) rows = dm_calloc_at(nmodels * s->nconfs + 1, sizeof *rows, __FILE__, __LINE__);
    if (!rc && !rows) rc = DM_ENOMEM;
    for (size_t c = 0; c < s->nconfs && !rc; c++) nconf_used += rpt_conf_ok(s, c, t->where, t->nwhere) ? 1 : 0;
    for (size_t m = 0; m < nmodels && !rc; m++) {
        size_t first = nrows;
        for (size_t c = 0; c < s->nconfs; c++) {
            if (!s->confs[c].nruns || !rpt_conf_ok(s, c, t->where, t->nwhere)) continue;
            int has = 0;
            for (size_t i = 0; i < s->confs[c].nruns && !has; i++)
                for (size_t p = 0; p < t->nprotocols && !has; p++)
                    has = rpt_find(&s->runs[s->confs[c].runs[i]], t->split, t->protocols[p], models[m]) != NULL;
            if (!has) continue;
            rows[nrows].model = models[m];
            rows[nrows].conf = c;
            nrows++;
        }
        /* the same numbers in every configuration: one row */
        if (nrows - first > 1) {
            int same = 1;
            for (size_t r = first + 1; r < nrows && same; r++) {
                const rpt_conf *a = &s->confs[rows[first].conf], *b = &s->confs[rows[r].conf];
                if (a->nruns != b->nruns) same = 0;
                for (size_t i = 0; i < a->nruns && same; i++) {
                    const rpt_run *ra = &s->runs[a->runs[i]], *rb = &s->runs[b->runs[i]];
                    if (ra->seed != rb->seed) same = 0;
                    for (size_t p = 0; p < t->nprotocols && same; p++) {
                        const rpt_entry *ea = rpt_find(ra, t->split, t->protocols[p], models[m]);
                        const rpt_entry *eb = rpt_find(rb, t->split, t->protocols[p], models[m]);
                        if (!ea != !eb) same = 0;
                        else if (ea && (ea->cols != eb->cols || memcmp(ea->mean, eb->mean, ea->cols * sizeof *ea->mean))) same = 0;
                    }
                }
            }
            if (same) {
                rows[first].collapsed = 1;
                nrows = first + 1;
            }
        }
    }
    if (!rc && !nrows) {
        dm_warn("table '%s': no results for split '%s'; skipped", t->name, t->split);
        free(rows);
        dm_strv_free(models, nmodels);
        return DM_OK;
    }
    size_t np = t->nprotocols, nm = t->nmetrics;
    tcell *cells = rc ? NULL : dm_calloc_at(nrows * np * nm + 1, sizeof *cells, __FILE__, __LINE__);
    if (!rc && !cells) rc = DM_ENOMEM;
    size_t maxruns = 1;
    for (size_t c = 0; c < s->nconfs; c++) maxruns = s->confs[c].nruns > maxruns ? s->confs[c].nruns : maxruns;
    double *vals = dm_calloc_at(maxruns + 1, sizeof *vals, __FILE__, __LINE__), *vb = dm_calloc_at(maxruns + 1, sizeof *vb, __FILE__, __LINE__);
    if (!rc && (!vals || !vb)) rc = DM_ENOMEM;
    size_t kmin = SIZE_MAX, kmax = 0;
    for (size_t r = 0; r < nrows && !rc; r++)
        for (size_t p = 0; p < np; p++)
            for (size_t k = 0; k < nm; k++) {
                tcell *cl = &cells[(r * np + p) * nm + k];
                cl->p = cl->padj = NAN;
                cl->scope = -1;
                size_t n = rpt_conf_values(s, rows[r].conf, t->split, t->protocols[p], rows[r].model, t->metrics[k], vals);
                size_t j = 0;
                for (size_t i = 0; i < s->confs[rows[r].conf].nruns; i++)
                    if (!isnan(vals[i])) vals[j++] = vals[i];
                cl->k = n;
                cl->mean = cl->sd = NAN;
                if (n) {
                    stats_summary sm;
                    stats_summarize(vals, n, 0.95, &sm);
                    cl->mean = sm.mean;
                    cl->sd = n > 1 ? sm.sd : NAN;
                    kmin = n < kmin ? n : kmin;
                    kmax = n > kmax ? n : kmax;
                }
                const rpt_conf *cf = &s->confs[rows[r].conf];
                for (size_t i = 0; i < cf->nruns; i++) {
                    const rpt_entry *e = rpt_find(&s->runs[cf->runs[i]], t->split, t->protocols[p], rows[r].model);
                    if (e && (int64_t)e->users > cl->users) cl->users = e->users;
                }
                fmt_num(o, cl->mean, cl->shown, sizeof cl->shown);
            }
    /* units of tests: every non-baseline row x protocol whose configuration has the baseline */
    tunit *units = rc ? NULL : dm_calloc_at(nrows * np + 1, sizeof *units, __FILE__, __LINE__);
    size_t nunits = 0;
    if (!rc && !units) rc = DM_ENOMEM;
    size_t base_rows = 0;
    for (size_t r = 0; r < nrows; r++) base_rows += !strcmp(rows[r].model, baseline);
    for (size_t r = 0; r < nrows && !rc; r++) {
        size_t bc = bfixed != SIZE_MAX ? bfixed : rows[r].conf;
        if (!strcmp(rows[r].model, baseline) && (bfixed == SIZE_MAX || rows[r].collapsed || rows[r].conf == bfixed)) continue;
        /* a row shown once for every configuration has no single baseline when the baseline varies */
        if (rows[r].collapsed && base_rows > 1 && bfixed == SIZE_MAX) continue;
        const rpt_conf *cf = &s->confs[rows[r].conf];
        for (size_t p = 0; p < np && !rc; p++) {
            int have = 0;
            for (size_t i = 0; i < cf->nruns; i++) {
                const rpt_run *run = &s->runs[cf->runs[i]], *brun = base_run(s, run, bc);
                have |= brun && rpt_find(brun, t->split, t->protocols[p], baseline) && rpt_find(run, t->split, t->protocols[p], rows[r].model);
            }
            if (!have) continue;
            tunit *u = &units[nunits++];
            u->row = r;
            u->prot = p;
            u->bconf = bc;
            u->nruns = cf->nruns;
            u->rec = dm_calloc_at(nm * (cf->nruns + 2) * C_NREC + 1, sizeof *u->rec, __FILE__, __LINE__);
            u->padj = dm_calloc_at(nm * (cf->nruns + 2) + 1, sizeof *u->padj, __FILE__, __LINE__);
            if (!u->rec || !u->padj) rc = DM_ENOMEM;
        }
    }
    /* user-level tests, shared out across ranks, then gathered */
    dm_buf mine = {0};
    for (size_t i = 0; i < nunits && !rc; i++) {
        if ((int)(i % (size_t)ctx->size) != ctx->rank) continue;
        rc = run_unit(ctx, s, o, t, rows, baseline, &units[i]);
        if (!rc) rc = dm_buf_add(&mine, units[i].rec, nm * (units[i].nruns + 2) * C_NREC * sizeof(double));
    }
    rc = par_agree(ctx, rc);
    if (!rc && ctx->size > 1) {
        void *all = NULL;
        size_t *counts = NULL;
        rc = par_allgatherv(ctx, mine.data ? mine.data : "", mine.len, &all, &counts);
        if (!rc) {
            size_t off = 0;
            for (int rk = 0; rk < ctx->size; rk++)
                for (size_t i = (size_t)rk; i < nunits; i += (size_t)ctx->size) {
                    size_t bytes = nm * (units[i].nruns + 2) * C_NREC * sizeof(double);
                    memcpy(units[i].rec, (char *)all + off, bytes);
                    off += bytes;
                }
        }
        free(all);
        free(counts);
    }
    dm_buf_free(&mine);
    /* across seeds, the mark-deciding p of each cell, Holm over the table */
    size_t ntests = 0;
    double *pv = rc ? NULL : dm_calloc_at(nunits * nm + 1, sizeof *pv, __FILE__, __LINE__);
    if (!rc && !pv) rc = DM_ENOMEM;
    int kinds_used[3] = {0, 0, 0};
    for (size_t i = 0; i < nunits && !rc; i++) {
        tunit *u = &units[i];
        const rpt_conf *cf = &s->confs[rows[u->row].conf];
        size_t stride = (u->nruns + 2) * C_NREC;
        for (size_t k = 0; k < nm && !rc; k++) {
            size_t n = 0;
            for (size_t j = 0; j < cf->nruns; j++) {
                const rpt_run *run = &s->runs[cf->runs[j]], *brun = base_run(s, run, u->bconf);
                const rpt_entry *es = rpt_find(run, t->split, t->protocols[u->prot], rows[u->row].model);
                const rpt_entry *eb = brun ? rpt_find(brun, t->split, t->protocols[u->prot], baseline) : NULL;
                int cs = es ? rpt_col(es, t->metrics[k]) : -1, cb = eb ? rpt_col(eb, t->metrics[k]) : -1;
                if (cs < 0 || cb < 0 || isnan(es->mean[cs]) || isnan(eb->mean[cb])) continue;
                vals[n] = es->mean[cs];
                vb[n] = eb->mean[cb];
                n++;
            }
            rc = across_test(o, vals, vb, n, u->rec + k * stride + NR_ACROSS(u->nruns) * C_NREC);
            tcell *cl = &cells[(u->row * np + u->prot) * nm + k];
            int scope = n >= 2 ? (o->across == 2 ? NR_POOLED(u->nruns) : NR_ACROSS(u->nruns)) : 0;
            if (n == 1)
                for (size_t j = 0; j < u->nruns; j++)
                    if (!isnan(u->rec[k * stride + j * C_NREC + C_P])) scope = (int)j;
            double p = u->rec[k * stride + (size_t)scope * C_NREC + C_P];
            if (!isnan(p)) {
                cl->scope = scope;
                cl->p = p;
                kinds_used[n >= 2 ? (o->across == 2 ? 2 : 1) : 0] = 1;
                ntests++;
            }
            pv[i * nm + k] = p;
        }
    }
    if (!rc && o->holm) rc = stats_holm(pv, nunits * nm, pv);
    for (size_t i = 0; i < nunits && !rc; i++) {
        tunit *u = &units[i];
        for (size_t k = 0; k < nm; k++) {
            tcell *cl = &cells[(u->row * np + u->prot) * nm + k];
            if (cl->scope < 0) continue;
            cl->padj = pv[i * nm + k];
            double diff = u->rec[k * (u->nruns + 2) * C_NREC + (size_t)cl->scope * C_NREC + C_DIFF];
            int better = rpt_lower_better(o, t->metrics[k]) ? diff < 0 : diff > 0;
            if (cl->padj < o->alpha && diff != 0) cl->mark = better ? 1 : -1;
        }
    }
    /* Holm of the other tests, per family: seed j of every unit, all across-seeds tests, all pooled */
    for (size_t fam = 0; fam < maxruns + 2 && !rc; fam++) {
        double *q = dm_calloc_at(nunits * nm + 1, sizeof *q, __FILE__, __LINE__);
        size_t *at = dm_calloc_at(nunits * nm + 1, sizeof *at, __FILE__, __LINE__);
        if (!q || !at) {
            free(q);
            free(at);
            rc = DM_ENOMEM;
            break;
        }
        size_t cnt = 0;
        for (size_t i = 0; i < nunits; i++) {
            size_t nr = units[i].nruns, sl = fam < maxruns ? fam : fam == maxruns ? NR_ACROSS(nr) : NR_POOLED(nr);
            if (fam < maxruns && fam >= nr) continue;
            for (size_t k = 0; k < nm; k++) {
                at[cnt] = k * (nr + 2) + sl;
                q[cnt++] = units[i].rec[(k * (nr + 2) + sl) * C_NREC + C_P];
            }
        }
        if (o->holm) rc = stats_holm(q, cnt, q);
        cnt = 0;
        for (size_t i = 0; i < nunits && !rc; i++) {
            size_t nr = units[i].nruns;
            if (fam < maxruns && fam >= nr) continue;
            for (size_t k = 0; k < nm; k++, cnt++) units[i].padj[at[cnt]] = q[cnt];
        }
        free(q);
        free(at);
    }
    /* best and second best per column, on the displayed numbers */
    for (size_t p = 0; p < np && !rc; p++)
        for (size_t k = 0; k < nm; k++) {
            int low = rpt_lower_better(o, t->metrics[k]);
            double best = NAN, second = NAN;
            for (size_t r = 0; r < nrows; r++) {
                double v = strtod(cells[(r * np + p) * nm + k].shown, NULL);
                if (cells[(r * np + p) * nm + k].k == 0) continue;
                if (low) v = -v;
                if (isnan(best) || v > best) {
                    if (!isnan(best)) second = best;
                    best = v;
                } else if (v < best && (isnan(second) || v > second))
                    second = v;
            }
            for (size_t r = 0; r < nrows && nrows > 1; r++) {
                tcell *cl = &cells[(r * np + p) * nm + k];
                if (!cl->k) continue;
                double v = strtod(cl->shown, NULL) * (low ? -1 : 1);
                cl->rank = v == best ? 1 : (!isnan(second) && v == second ? 2 : 0);
            }
        }
    /* ---- output (rank 0) ---- */
    if (!rc && ctx->rank == 0) {
        int show_std = o->std && kmax > 1;
        int multi = 0; /* a model with several rows: rules between models */
        for (size_t r = 1; r < nrows; r++)
            if (!strcmp(rows[r].model, rows[r - 1].model)) multi = 1;
        dm_buf cap = {0}, leg = {0}, legmd = {0};
        if (t->caption && t->caption[0]) dm_buf_adds(&cap, t->caption);
        else {
            dm_buf_printf(&cap, "Results on the %s split (", rpt_label(o, t->split));
            for (size_t p = 0; p < np; p++) dm_buf_printf(&cap, "%s%s", p ? "; " : "", rpt_label(o, t->protocols[p]));
            dm_buf_adds(&cap, ").");
        }
        /* legend: the same words in LaTeX and Markdown */
        const char *bl = rpt_label(o, baseline);
        char seeds[64] = "";
        if (kmax > 1) {
            if (kmin == kmax) snprintf(seeds, sizeof seeds, "%zu seeds", kmax);
            else snprintf(seeds, sizeof seeds, "%zu to %zu seeds", kmin, kmax);
        }
        dm_buf_adds(&leg, " Best in bold, second best underlined.");
        dm_buf_adds(&legmd, "Best in **bold**, second best in *italics*.");
        if (kmax > 1) {
            dm_buf_printf(&leg, " %s over %s.", show_std ? "Mean $\\pm$ standard deviation" : "Means", seeds);
            dm_buf_printf(&legmd, " %s over %s.", show_std ? "Mean ± standard deviation" : "Means", seeds);
        }
        if (o->percent) {
            dm_buf_adds(&leg, " Metrics in \\%.");
            dm_buf_adds(&legmd, " Metrics in %.");
        }
        if (ntests) {
            dm_buf tests = {0};
            for (int kd = 0; kd < 3; kd++)
                if (kinds_used[kd]) dm_buf_printf(&tests, "%s%s", tests.len ? "; " : "", test_desc(o, kd));
            char alpha[32];
            snprintf(alpha, sizeof alpha, "%g", o->alpha);
            const char *side = o->so.alt == STATS_TWO_SIDED ? "two-sided" : "one-sided";
            dm_buf_adds(&leg, " $^{\\dagger}$/$^{\\ddagger}$: significantly better/worse than ");
            tex_label(&leg, o, baseline, bl);
            if (bdesc[0]) ru_tex_escape(&leg, bdesc);
            dm_buf_printf(&leg, "%s (", bdesc[0] ? "" : " of the same configuration");
            ru_tex_escape(&leg, tests.data);
            dm_buf_printf(&leg, ", %s, %s$p < %s$ over the %zu comparisons of this table).", side, o->holm ? "Holm-adjusted " : "", alpha, ntests);
            dm_buf_printf(&legmd, " † / ‡: significantly better / worse than %s%s (%s, %s, %sp < %s over the %zu comparisons of this table).",
                          bl, bdesc[0] ? bdesc : " of the same configuration", tests.data, side, o->holm ? "Holm-adjusted " : "", alpha, ntests);
            dm_buf_free(&tests);
        }
        /* LaTeX; more than 5 columns of numbers span both columns of a two-column paper */
        int wide = s->nvaried + np * nm > 5;
        dm_buf tab = {0}, tex = {0};
        dm_buf_printf(&tab, "\\begin{tabular}{l%.*s", (int)s->nvaried, "cccccccccccccccccccccccccccccccc");
        for (size_t p = 0; p < np; p++) dm_buf_printf(&tab, "%s%.*s", np > 1 ? "@{\\hspace{1.2em}}" : "", (int)nm, "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
        dm_buf_adds(&tab, "}\n\\toprule\n");
        size_t lead = 1 + s->nvaried;
        if (np > 1) {
            for (size_t i = 1; i < lead; i++) dm_buf_adds(&tab, " &");
            for (size_t p = 0; p < np; p++) {
                dm_buf_printf(&tab, " & \\multicolumn{%zu}{c}{", nm);
                tex_label(&tab, o, t->protocols[p], rpt_label(o, t->protocols[p]));
                dm_buf_adds(&tab, "}");
            }
            dm_buf_adds(&tab, " \\\\\n");
            for (size_t p = 0; p < np; p++) dm_buf_printf(&tab, "\\cmidrule(lr){%zu-%zu}", lead + 1 + p * nm, lead + (p + 1) * nm);
            dm_buf_adds(&tab, "\n");
        }
        dm_buf_adds(&tab, "Model");
        for (size_t v = 0; v < s->nvaried; v++) {
            dm_buf_adds(&tab, " & ");
            tex_label(&tab, o, s->varied[v], rpt_key_label(o, s, s->varied[v]));
        }
        for (size_t p = 0; p < np; p++)
            for (size_t k = 0; k < nm; k++) {
                dm_buf_adds(&tab, " & ");
                tex_label(&tab, o, t->metrics[k], rpt_label(o, t->metrics[k]));
            }
        dm_buf_adds(&tab, " \\\\\n\\midrule\n");
        for (size_t r = 0; r < nrows; r++) {
            /* rules around the groups of rows of one model */
            if (r && multi && strcmp(rows[r].model, rows[r - 1].model)) {
                size_t before = 0, after = 0;
                for (size_t q = 0; q < nrows; q++) {
                    before += !strcmp(rows[q].model, rows[r - 1].model);
                    after += !strcmp(rows[q].model, rows[r].model);
                }
                if (before > 1 || after > 1) dm_buf_adds(&tab, "\\midrule\n");
            }
            tex_label(&tab, o, rows[r].model, rpt_label(o, rows[r].model));
            for (size_t v = 0; v < s->nvaried; v++) {
                dm_buf_adds(&tab, " & ");
                if (rows[r].collapsed) dm_buf_adds(&tab, "--");
                else ru_tex_escape(&tab, s->confs[rows[r].conf].values[v]);
            }
            for (size_t p = 0; p < np; p++)
                for (size_t k = 0; k < nm; k++) {
                    tcell *cl = &cells[(r * np + p) * nm + k];
                    dm_buf_adds(&tab, " & ");
                    if (!cl->k) {
                        dm_buf_adds(&tab, "--");
                        continue;
                    }
                    dm_buf_printf(&tab, cl->rank == 1 ? "\\textbf{%s}" : cl->rank == 2 ? "\\underline{%s}" : "%s", cl->shown);
                    if (show_std && cl->k > 1) {
                        char sd[64];
                        fmt_num(o, cl->sd, sd, sizeof sd);
                        dm_buf_printf(&tab, "{\\scriptsize$\\pm$%s}", sd);
                    }
                    if (cl->mark) dm_buf_printf(&tab, "\\rlap{$^{%s}$}", cl->mark > 0 ? "\\dagger" : "\\ddagger");
                }
            dm_buf_adds(&tab, " \\\\\n");
        }
        dm_buf_adds(&tab, "\\bottomrule\n\\end{tabular}\n");
        dm_buf_printf(&tex, "%% %s.tex: written by dynmm report from %zu results file%s; needs \\usepackage{booktabs}.\n"
                            "%% %s_tabular.tex holds the tabular alone, to \\input into a table of your own.\n"
                            "\\begin{%s}[tbp]\n\\centering\n\\caption{",
                      t->name, s->nruns, s->nruns == 1 ? "" : "s", t->name, wide ? "table*" : "table");
        if (t->caption && t->caption[0]) dm_buf_adds(&tex, cap.data);
        else ru_tex_escape(&tex, cap.data);
        dm_buf_printf(&tex, "%s}\n\\label{tab:%s}\n\\small\n%s\\end{%s}\n", leg.data, t->name, tab.data, wide ? "table*" : "table");
        /* Markdown */
        dm_buf m = {0};
        dm_buf_printf(&m, "**Table %s.** %s\n\n| Model |", t->name, cap.data);
        for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&m, " %s |", rpt_key_label(o, s, s->varied[v]));
        for (size_t p = 0; p < np; p++)
            for (size_t k = 0; k < nm; k++)
                dm_buf_printf(&m, np > 1 ? " %s (%s) |" : " %s |", rpt_label(o, t->metrics[k]), rpt_label(o, t->protocols[p]));
        dm_buf_adds(&m, "\n|:--|");
        for (size_t v = 0; v < s->nvaried; v++) dm_buf_adds(&m, "--:|");
        for (size_t i = 0; i < np * nm; i++) dm_buf_adds(&m, "--:|");
        dm_buf_adds(&m, "\n");
        for (size_t r = 0; r < nrows; r++) {
            dm_buf_printf(&m, "| %s |", rpt_label(o, rows[r].model));
            for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(&m, " %s |", rows[r].collapsed ? "–" : s->confs[rows[r].conf].values[v]);
            for (size_t p = 0; p < np; p++)
                for (size_t k = 0; k < nm; k++) {
                    tcell *cl = &cells[(r * np + p) * nm + k];
                    if (!cl->k) {
                        dm_buf_adds(&m, " – |");
                        continue;
                    }
                    dm_buf_printf(&m, cl->rank == 1 ? " **%s**" : cl->rank == 2 ? " *%s*" : " %s", cl->shown);
                    if (show_std && cl->k > 1) {
                        char sd[64];
                        fmt_num(o, cl->sd, sd, sizeof sd);
                        dm_buf_printf(&m, " ± %s", sd);
                    }
                    dm_buf_printf(&m, "%s |", cl->mark > 0 ? "†" : cl->mark < 0 ? "‡" : "");
                }
            dm_buf_adds(&m, "\n");
        }
        dm_buf_printf(&m, "\n%s\n", legmd.data);
        /* CSV: one line per cell */
        dm_buf csv = {0};
        dm_buf_adds(&csv, "table,model,label,config");
        for (size_t v = 0; v < s->nvaried; v++) {
            dm_buf_adds(&csv, ",");
            csv_field(&csv, s->varied[v]);
        }
        dm_buf_adds(&csv, ",split,protocol,metric,mean,std,seeds,users,baseline,test,p,p_adj,mark,best\n");
        for (size_t r = 0; r < nrows; r++)
            for (size_t p = 0; p < np; p++)
                for (size_t k = 0; k < nm; k++) {
                    tcell *cl = &cells[(r * np + p) * nm + k];
                    csv_field(&csv, t->name);
                    dm_buf_adds(&csv, ",");
                    csv_field(&csv, rows[r].model);
                    dm_buf_adds(&csv, ",");
                    csv_field(&csv, rpt_label(o, rows[r].model));
                    dm_buf_adds(&csv, ",");
                    csv_field(&csv, rows[r].collapsed ? "*" : s->confs[rows[r].conf].label);
                    for (size_t v = 0; v < s->nvaried; v++) {
                        dm_buf_adds(&csv, ",");
                        csv_field(&csv, rows[r].collapsed ? "*" : s->confs[rows[r].conf].values[v]);
                    }
                    dm_buf_printf(&csv, ",%s,%s,%s,", t->split, t->protocols[p], t->metrics[k]);
                    csv_num(&csv, cl->mean);
                    dm_buf_adds(&csv, ",");
                    csv_num(&csv, cl->sd);
                    dm_buf_printf(&csv, ",%zu,%lld,", cl->k, (long long)cl->users);
                    csv_field(&csv, t->baseline && t->baseline[0] ? t->baseline : baseline);
                    dm_buf_adds(&csv, ",");
                    if (cl->scope >= 0) {
                        const tunit *u = NULL;
                        for (size_t i = 0; i < nunits; i++)
                            if (units[i].row == r && units[i].prot == p) u = &units[i];
                        int kd = u && cl->scope >= (int)u->nruns ? (cl->scope == (int)NR_POOLED(u->nruns) ? 2 : 1) : 0;
                        dm_buf_printf(&csv, "%s%s", test_name(o, kd), kd == 0 ? "/users" : kd == 1 ? "/seeds" : "/pooled");
                    }
                    dm_buf_adds(&csv, ",");
                    csv_num(&csv, cl->p);
                    dm_buf_adds(&csv, ",");
                    csv_num(&csv, cl->padj);
                    dm_buf_printf(&csv, ",%s,%d\n", cl->mark > 0 ? "better" : cl->mark < 0 ? "worse" : "", cl->rank);
                }
        /* every test */
        dm_buf tcsv = {0};
        dm_buf_adds(&tcsv, "table,model,config,split,protocol,metric,baseline,scope,seed,test,n,mean_system,mean_baseline,"
                           "diff,ci_lo,ci_hi,effect,rank_biserial,p,p_holm,marks\n");
        for (size_t i = 0; i < nunits; i++) {
            const tunit *u = &units[i];
            const rpt_conf *cf = &s->confs[rows[u->row].conf];
            for (size_t k = 0; k < nm; k++)
                for (size_t sl = 0; sl < u->nruns + 2; sl++) {
                    const double *rec = u->rec + k * (u->nruns + 2) * C_NREC + sl * C_NREC;
                    if (isnan(rec[C_P])) continue;
                    int kd = sl < u->nruns ? 0 : sl == NR_ACROSS(u->nruns) ? 1 : 2;
                    const tcell *cl = &cells[(u->row * np + u->prot) * nm + k];
                    csv_field(&tcsv, t->name);
                    dm_buf_adds(&tcsv, ",");
                    csv_field(&tcsv, rows[u->row].model);
                    dm_buf_adds(&tcsv, ",");
                    csv_field(&tcsv, cf->label);
                    dm_buf_printf(&tcsv, ",%s,%s,%s,", t->split, t->protocols[u->prot], t->metrics[k]);
                    csv_field(&tcsv, t->baseline && t->baseline[0] ? t->baseline : baseline);
                    dm_buf_printf(&tcsv, ",%s,", kd == 0 ? "users" : kd == 1 ? "seeds" : "pooled");
                    if (kd == 0) dm_buf_printf(&tcsv, "%lld", (long long)s->runs[cf->runs[sl]].seed);
                    dm_buf_printf(&tcsv, ",%s,%.0f", test_name(o, kd), rec[C_N]);
                    int f[] = {C_MA, C_MB, C_DIFF, C_LO, C_HI, C_D, C_RB, C_P};
                    for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
                        dm_buf_adds(&tcsv, ",");
                        csv_num(&tcsv, rec[f[j]]);
                    }
                    dm_buf_adds(&tcsv, ",");
                    csv_num(&tcsv, (int)sl == cl->scope ? cl->padj : u->padj[k * (u->nruns + 2) + sl]);
                    dm_buf_printf(&tcsv, ",%d\n", (int)sl == cl->scope);
                }
        }
        char path[4400];
        if (o->tex) {
            snprintf(path, sizeof path, "%s/%s.tex", o->out, t->name);
            if (!rc) rc = dm_fs_write_atomic(path, tex.data, tex.len, 0644);
            snprintf(path, sizeof path, "%s/%s_tabular.tex", o->out, t->name);
            if (!rc) rc = dm_fs_write_atomic(path, tab.data, tab.len, 0644);
        }
        if (o->md) {
            snprintf(path, sizeof path, "%s/%s.md", o->out, t->name);
            if (!rc) rc = dm_fs_write_atomic(path, m.data, m.len, 0644);
        }
        if (o->csv) {
            snprintf(path, sizeof path, "%s/%s.csv", o->out, t->name);
            if (!rc) rc = dm_fs_write_atomic(path, csv.data, csv.len, 0644);
            snprintf(path, sizeof path, "%s/%s_tests.csv", o->out, t->name);
            if (!rc) rc = dm_fs_write_atomic(path, tcsv.data, tcsv.len, 0644);
        }
        if (!rc && md) rc = dm_buf_printf(md, "%s\n", m.data);
        dm_buf_free(&cap);
        dm_buf_free(&leg);
        dm_buf_free(&legmd);
        dm_buf_free(&tab);
        dm_buf_free(&tex);
        dm_buf_free(&m);
        dm_buf_free(&csv);
        dm_buf_free(&tcsv);
    }
    for (size_t i = 0; units && i < nunits; i++) {
        free(units[i].rec);
        free(units[i].padj);
    }
    free(units);
    free(pv);
    free(cells);
    free(vals);
    free(vb);
    free(rows);
    dm_strv_free(models, nmodels);
    return par_agree(ctx, rc);
}

void rpt_labels_free(void);
void rpt_labels_free(void)
{
    dm_strv_free(g_lab_names, g_nlab_names);
    dm_strv_free(g_lab_vals, g_nlab_vals);
    g_lab_names = g_lab_vals = NULL;
    g_nlab_names = g_nlab_vals = 0;
}
