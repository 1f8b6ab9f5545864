/* rpt_table.c: one results table of `dynmm report`: rows (model x configuration), cells (mean
 * +- sd over seeds), paired significance tests against a baseline with Holm's correction over the
 * table, best / second best, written as LaTeX (booktabs), Markdown and CSV. See rpt_table.h.
 *
 * Rows. Every model of the table in every configuration that has it; a model whose numbers are the
 * same (bitwise, every seed, every cell) in all configurations (e.g. popularity when only SASRec's
 * settings vary) is shown once, without configuration values.
 *
 * Tests. A row is compared with the baseline model of the same configuration, or of the one
 * configuration a baseline "model[group.key=value,...]" names, run by run (same seed, same users):
 * within each seed across users with stats_compare (stats.test, stats.*), and across seeds per
 * report.across_seeds. The mark of a cell comes from the user-level test when the
 * configuration has one seed, else from the across-seeds test. Holm's adjustment runs over the
 * mark-deciding tests of the whole table (stats.correction); the per-seed tests are adjusted per
 * seed. Every test goes to <name>_tests.csv.
 */
#include "rpt_table.h"

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

/* ---- records ----------------------------------------------------------------------------- */

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
    int warn;          /* W_* bits: why the mark-deciding test cannot mean much */
    char why[160];     /* the same in words */
} tcell;

/* one comparison as doubles, so ranks can exchange them */
enum { C_N, C_MA, C_MB, C_DIFF, C_P, C_STAT, C_D, C_RB, C_LO, C_HI, C_FLAGS, C_NZ, C_NREC };

typedef struct {
    size_t row, prot;
    size_t bconf;      /* configuration of the baseline runs (the row's own unless fixed) */
    double *rec;       /* (nmetrics, nruns + 2, C_NREC): per seed, then across, then pooled */
    double *padj;      /* (nmetrics, nruns + 2) Holm-adjusted p of each test */
    size_t nruns;
} tunit;

#define NR_ACROSS(nr) (nr)
#define NR_POOLED(nr) ((nr) + 1)

/* The pairs whose difference is not zero: what a rank test has left to rank. */
static double nonzero_pairs(const double *a, const double *b, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += a[i] != b[i];
    return (double)k;
}

/* The record of comparison c of the pairs (a, b). */
static void rec_set(double *r, const stats_comparison *c, const double *a, const double *b)
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
    r[C_NZ] = nonzero_pairs(a, b, c->n);
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
        rec[C_NZ] = nonzero_pairs(ms, mb, n);
        return DM_OK;
    }
    stats_comparison c;
    DM_CALL(stats_compare(ms, mb, n, &o->so, &c));
    rec_set(rec, &c, ms, mb);
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

/* Why a test cannot mean much: W_SEEDS a test over fewer than 5 seeds, W_USERS a test across fewer
 * than 10 users, W_TIES every difference zero or constant, or too few non-zero ones to rank (fewer
 * than 10 across users; any tied seed over seeds). */
enum { W_SEEDS = 1, W_USERS = 2, W_TIES = 4 };

/* The W_* bits of the test in rec (kind: 0 across users, 1 over seeds, 2 pooled users); its reasons
 * in words into why ("" without). */
static int test_weakness(const rpt_opts *o, const double *rec, int kind, char *why, size_t cap)
{
    why[0] = '\0';
    if (isnan(rec[C_P])) return 0;
    double n = rec[C_N], nz = rec[C_NZ];
    int fl = isnan(rec[C_FLAGS]) ? 0 : (int)rec[C_FLAGS], w = 0;
    size_t l = 0;
    if (kind == 1 && n < 5) {
        w |= W_SEEDS;
        if (o->across == 0 || o->so.test == STATS_TEST_TTEST)
            l += (size_t)snprintf(why + l, cap - l, "%.0f seeds (a t-test with %.0f degree%s of freedom)", n, n - 1, n - 1 == 1 ? "" : "s");
        else l += (size_t)snprintf(why + l, cap - l, "%.0f seeds", n);
    }
    if (kind != 1 && n < 10) {
        w |= W_USERS;
        l += (size_t)snprintf(why + l, cap - l, "%sonly %.0f users", l ? "; " : "", n);
    }
    if (l >= cap) l = cap - 1;
    if (nz == 0 || (fl & STATS_F_NO_DIFF)) {
        w |= W_TIES;
        snprintf(why + l, cap - l, "%severy difference is zero", l ? "; " : "");
    } else if (fl & STATS_F_ZERO_VAR) {
        w |= W_TIES;
        snprintf(why + l, cap - l, "%severy difference is the same", l ? "; " : "");
    } else if (kind == 1 ? nz < n : nz < 10) {
        w |= W_TIES;
        snprintf(why + l, cap - l, "%sties: %.0f of %.0f differences non-zero", l ? "; " : "", nz, n);
    }
    return w;
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

/* The table under construction (every rank builds the same one). */
typedef struct {
    const rpt_set *s;
    const rpt_opts *o;
    const rpt_table_spec *t;
    char **models;        /* (nmodels) the models matching the spec, in the set's order */
    size_t nmodels;
    char baseline[256];   /* the baseline model */
    char bdesc[512];      /* " (<configuration label>)" when the baseline is fixed to one configuration */
    char bfull[256];      /* the baseline as chosen, with its configuration: "sasrec[sasrec.hidden=32]" */
    char bwhy[512];       /* why this baseline when no spec or report.baseline chose it ("" otherwise) */
    size_t bfixed;        /* that configuration, or SIZE_MAX: each row's own */
    trow *rows;           /* (nrows) */
    size_t nrows;
    size_t np, nm;        /* protocols, metrics */
    tcell *cells;         /* (nrows, np, nm) */
    tunit *units;         /* (nunits) every row x protocol with a baseline to compare with */
    size_t nunits;
    size_t maxruns;       /* runs of the largest configuration */
    double *vals, *vb;    /* (maxruns) scratch */
    size_t kmin, kmax;    /* fewest and most seeds of a cell */
    size_t ntests;        /* mark-deciding tests */
    int kinds_used[3];    /* their kinds: across users, over seeds, pooled */
    size_t nweak[3];      /* those of them with each W_* bit (seeds, users, ties) */
    double wseeds_min, wseeds_max; /* the seeds of the tests with too few */
    double *pv;           /* (nunits, nm) the mark-deciding p of each cell, Holm-adjusted */
} table;

static tcell *cell_at(const table *tb, size_t r, size_t p, size_t k) { return &tb->cells[(r * tb->np + p) * tb->nm + k]; }

static void table_free(table *tb)
{
    for (size_t i = 0; tb->units && i < tb->nunits; i++) {
        DM_FREE_ALL(tb->units[i].rec, tb->units[i].padj);
    }
    DM_FREE_ALL(tb->units, tb->pv, tb->cells, tb->vals, tb->vb, tb->rows);
    dm_strv_free(tb->models, tb->nmodels);
}

/* For a run of row model `model`: its entry of protocol prot, the run of baseline configuration bc
 * with the same seed (*brun, NULL when none) and the baseline's entry there (NULL where absent). */
static void pair_entries(const table *tb, const rpt_run *run, size_t bc, const char *prot, const char *model,
                         const rpt_run **brun, const rpt_entry **es, const rpt_entry **eb)
{
    *brun = base_run(tb->s, run, bc);
    *es = rpt_find(run, tb->t->split, prot, model);
    *eb = *brun ? rpt_find(*brun, tb->t->split, prot, tb->baseline) : NULL;
}

/* ---- the rows ---------------------------------------------------------------------------- */

/* Every metric of the spec is a column of some users entry of the split. */
static int check_metrics(const table *tb)
{
    const rpt_set *s = tb->s;
    const rpt_table_spec *t = tb->t;
    int rc = DM_OK;
    for (size_t k = 0; k < t->nmetrics && !rc; k++) {
        int found = 0;
        const rpt_entry *any = NULL;
        for (size_t r = 0; r < s->nruns && !found; r++)
            for (size_t e = 0; e < s->runs[r].ne && !found; e++) {
                const rpt_entry *en = &s->runs[r].e[e];
                if (en->kind != RPT_USERS || strcmp(en->split, t->split)) continue;
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
    return rc;
}

/* Model m has a row in the table (results in one of its protocols). */
static int has_rows(const table *tb, const char *m)
{
    for (size_t r = 0; r < tb->nrows; r++)
        if (!strcmp(tb->rows[r].model, m)) return 1;
    return 0;
}

/* The baseline's text ("model" or "model[group.key=value,...]"), per table: the spec's baseline=
 * (which must have results here), else the first report.baselines rule "TABLE_GLOB=MODEL" whose
 * glob matches the table's name and whose model has results here, else report.baseline when it has
 * results here (a warning when not), else the first model with results. */
static int choose_baseline(table *tb)
{
    const rpt_table_spec *t = tb->t;
    const dm_cfg *c = tb->o->cfg;
    char m[256];
    if (t->baseline && t->baseline[0]) {
        snprintf(tb->baseline, sizeof tb->baseline, "%s", t->baseline);
        snprintf(m, sizeof m, "%.*s", (int)strcspn(t->baseline, "["), t->baseline);
        if (has_rows(tb, m) || dm_strv_find(tb->models, tb->nmodels, m) < 0) return DM_OK; /* (not a model: resolve_baseline says so) */
        DM_ERR(DM_ECONFIG, "table '%s': the baseline '%s' has no results in this table (split %s, protocol %s)", t->name, m, t->split,
               t->protocols[0]);
        DM_HINT("set baseline= to a model with results there, e.g. '%s'", tb->rows[0].model);
        return DM_ECONFIG;
    }
    for (size_t i = 0; i < dm_cfg_len(c, "report.baselines"); i++) {
        const char *rule = dm_cfg_str_at(c, "report.baselines", i), *eq = strchr(rule, '=');
        char glob[256];
        snprintf(glob, sizeof glob, "%.*s", (int)(eq - rule), rule);
        snprintf(m, sizeof m, "%.*s", (int)strcspn(eq + 1, "["), eq + 1);
        if (dm_str_match(glob, t->name) && has_rows(tb, m)) {
            snprintf(tb->baseline, sizeof tb->baseline, "%s", eq + 1);
            snprintf(tb->bwhy, sizeof tb->bwhy, "report.baselines rule '%s'", rule);
            return DM_OK;
        }
    }
    const char *rb = dm_cfg_str(c, "report.baseline");
    snprintf(m, sizeof m, "%.*s", (int)strcspn(rb, "["), rb);
    if (rb[0] && has_rows(tb, m)) {
        snprintf(tb->baseline, sizeof tb->baseline, "%s", rb);
        return DM_OK;
    }
    snprintf(tb->baseline, sizeof tb->baseline, "%s", tb->rows[0].model);
    snprintf(tb->bwhy, sizeof tb->bwhy, "the first model with results in this table");
    if (rb[0])
        dm_warn("table '%s': report.baseline '%s' has no results in it; comparing with %s, %s (report.baselines sets a baseline "
                "per table)", t->name, m, tb->baseline, tb->bwhy);
    return DM_OK;
}

/* The baseline: a model, optionally in one configuration: "sasrec[sasrec.hidden=32]". */
static int resolve_baseline(table *tb)
{
    const rpt_set *s = tb->s;
    const rpt_table_spec *t = tb->t;
    int rc = choose_baseline(tb);
    snprintf(tb->bfull, sizeof tb->bfull, "%s", tb->baseline);
    char *br = rc ? NULL : strchr(tb->baseline, '[');
    if (br) {
        size_t l = strlen(br);
        char **flt = NULL;
        size_t nflt = 0;
        if (br[l - 1] != ']') rc = DM_ERR(DM_ECONFIG, "table '%s': baseline '%s' is not MODEL[group.key=value,...]", t->name, tb->baseline);
        else {
            br[l - 1] = '\0';
            rc = dm_strv_split(br + 1, ',', &flt, &nflt);
            *br = '\0';
        }
        size_t nmatch = 0;
        for (size_t c = 0; !rc && c < s->nconfs; c++)
            if (s->confs[c].nruns && rpt_conf_ok(s, c, flt, nflt)) {
                nmatch++;
                tb->bfixed = c;
            }
        if (!rc && nmatch != 1) {
            rc = DM_ERR(DM_ECONFIG, "table '%s': %zu configurations match the baseline's settings [%s]", t->name, nmatch, br + 1);
            DM_HINT(nmatch ? "add the other varied keys to the baseline's settings" : "the settings are full key names with values as in the runs, e.g. sasrec[sasrec.hidden=32]");
        }
        if (!rc) snprintf(tb->bdesc, sizeof tb->bdesc, " (%s)", s->confs[tb->bfixed].label);
        dm_strv_free(flt, nflt);
    }
    if (!rc && dm_strv_find(tb->models, tb->nmodels, tb->baseline) < 0) {
        rc = DM_ERR(DM_ECONFIG, "table '%s': the baseline '%s' is not one of its models", t->name, tb->baseline);
        DM_HINT("add it to the table's models, or set baseline= (report.baseline) to one of them");
    }
    return rc;
}

/* Rows first..nrows-1 (one model) hold the same numbers in every configuration: bitwise, every
 * seed, every protocol's entry. */
static int same_everywhere(const table *tb, size_t first, const char *model)
{
    const rpt_set *s = tb->s;
    const rpt_table_spec *t = tb->t;
    int same = 1;
    for (size_t r = first + 1; r < tb->nrows && same; r++) {
        const rpt_conf *a = &s->confs[tb->rows[first].conf], *b = &s->confs[tb->rows[r].conf];
        if (a->nruns != b->nruns) same = 0;
        for (size_t i = 0; i < a->nruns && same; i++) {
            const rpt_run *ra = &s->runs[a->runs[i]], *rb = &s->runs[b->runs[i]];
            if (ra->seed != rb->seed) same = 0;
            for (size_t p = 0; p < t->nprotocols && same; p++) {
                const rpt_entry *ea = rpt_find(ra, t->split, t->protocols[p], model);
                const rpt_entry *eb = rpt_find(rb, t->split, t->protocols[p], model);
                if (!ea != !eb) same = 0;
                else if (ea && (ea->cols != eb->cols || memcmp(ea->mean, eb->mean, ea->cols * sizeof *ea->mean))) same = 0;
            }
        }
    }
    return same;
}

/* A row per model and configuration that has it (passing the spec's filters); a model with the
 * same numbers in every configuration gets one row. */
static int build_rows(table *tb)
{
    const rpt_set *s = tb->s;
    const rpt_table_spec *t = tb->t;
    DM_ALLOC(tb->rows, tb->nmodels * s->nconfs + 1);
    for (size_t m = 0; m < tb->nmodels; m++) {
        size_t first = tb->nrows;
        for (size_t c = 0; c < s->nconfs; c++) {
            if (!s->confs[c].nruns || !rpt_conf_ok(s, c, t->where, t->nwhere)) continue;
            int has = 0;
            for (size_t i = 0; i < s->confs[c].nruns && !has; i++)
                for (size_t p = 0; p < t->nprotocols && !has; p++)
                    has = rpt_find(&s->runs[s->confs[c].runs[i]], t->split, t->protocols[p], tb->models[m]) != NULL;
            if (!has) continue;
            tb->rows[tb->nrows].model = tb->models[m];
            tb->rows[tb->nrows].conf = c;
            tb->nrows++;
        }
        if (tb->nrows - first > 1 && same_everywhere(tb, first, tb->models[m])) {
            tb->rows[first].collapsed = 1;
            tb->nrows = first + 1;
        }
    }
    return DM_OK;
}

/* ---- the cells --------------------------------------------------------------------------- */

/* Mean and sd over the seeds of row r, protocol p, metric k; the users scored; the shown number. */
static void fill_cell(table *tb, size_t r, size_t p, size_t k)
{
    const rpt_set *s = tb->s;
    const rpt_table_spec *t = tb->t;
    const trow *row = &tb->rows[r];
    double *vals = tb->vals;
    tcell *cl = cell_at(tb, r, p, k);
    cl->p = cl->padj = NAN;
    cl->scope = -1;
    size_t n = rpt_conf_values(s, row->conf, t->split, t->protocols[p], row->model, t->metrics[k], vals);
    size_t j = 0;
    for (size_t i = 0; i < s->confs[row->conf].nruns; i++)
        if (!isnan(vals[i])) vals[j++] = vals[i];
    cl->k = n;
    cl->mean = cl->sd = NAN;
    if (n) {
        stats_summary sm;
        stats_summarize(vals, n, 0.95, &sm);
        cl->mean = sm.mean;
        cl->sd = n > 1 ? sm.sd : NAN;
        tb->kmin = n < tb->kmin ? n : tb->kmin;
        tb->kmax = n > tb->kmax ? n : tb->kmax;
    }
    const rpt_conf *cf = &s->confs[row->conf];
    for (size_t i = 0; i < cf->nruns; i++) {
        const rpt_entry *e = rpt_find(&s->runs[cf->runs[i]], t->split, t->protocols[p], row->model);
        if (e && (int64_t)e->users > cl->users) cl->users = e->users;
    }
    fmt_num(tb->o, cl->mean, cl->shown, sizeof cl->shown);
}

static int fill_cells(table *tb)
{
    const rpt_set *s = tb->s;
    DM_ALLOC(tb->cells, tb->nrows * tb->np * tb->nm + 1);
    tb->maxruns = 1;
    for (size_t c = 0; c < s->nconfs; c++) tb->maxruns = s->confs[c].nruns > tb->maxruns ? s->confs[c].nruns : tb->maxruns;
    tb->vals = dm_calloc_at(tb->maxruns + 1, sizeof *tb->vals, __FILE__, __LINE__);
    tb->vb = dm_calloc_at(tb->maxruns + 1, sizeof *tb->vb, __FILE__, __LINE__);
    if (!tb->vals || !tb->vb) return DM_ENOMEM;
    for (size_t r = 0; r < tb->nrows; r++)
        for (size_t p = 0; p < tb->np; p++)
            for (size_t k = 0; k < tb->nm; k++) fill_cell(tb, r, p, k);
    return DM_OK;
}

/* ---- the tests --------------------------------------------------------------------------- */

/* Units of tests: every non-baseline row x protocol whose configuration has the baseline. */
static int plan_units(table *tb)
{
    const rpt_set *s = tb->s;
    const trow *rows = tb->rows;
    DM_ALLOC(tb->units, tb->nrows * tb->np + 1);
    size_t base_rows = 0;
    for (size_t r = 0; r < tb->nrows; r++) base_rows += !strcmp(rows[r].model, tb->baseline);
    int rc = DM_OK;
    for (size_t r = 0; r < tb->nrows && !rc; r++) {
        size_t bc = tb->bfixed != SIZE_MAX ? tb->bfixed : rows[r].conf;
        if (!strcmp(rows[r].model, tb->baseline) && (tb->bfixed == SIZE_MAX || rows[r].collapsed || rows[r].conf == tb->bfixed)) continue;
        /* a row shown once for every configuration has no single baseline when the baseline varies */
        if (rows[r].collapsed && base_rows > 1 && tb->bfixed == SIZE_MAX) continue;
        const rpt_conf *cf = &s->confs[rows[r].conf];
        for (size_t p = 0; p < tb->np && !rc; p++) {
            int have = 0;
            for (size_t i = 0; i < cf->nruns; i++) {
                const rpt_run *brun;
                const rpt_entry *es, *eb;
                pair_entries(tb, &s->runs[cf->runs[i]], bc, tb->t->protocols[p], rows[r].model, &brun, &es, &eb);
                have |= eb && es;
            }
            if (!have) continue;
            tunit *u = &tb->units[tb->nunits++];
            u->row = r;
            u->prot = p;
            u->bconf = bc;
            u->nruns = cf->nruns;
            u->rec = dm_calloc_at(tb->nm * (cf->nruns + 2) * C_NREC + 1, sizeof *u->rec, __FILE__, __LINE__);
            u->padj = dm_calloc_at(tb->nm * (cf->nruns + 2) + 1, sizeof *u->padj, __FILE__, __LINE__);
            if (!u->rec || !u->padj) rc = DM_ENOMEM;
        }
    }
    return rc;
}

/* The values of column cs of es and cb of eb for the users both scored, into a and b; their count. */
static size_t paired_users(const rpt_entry *es, const double *xs, const rpt_entry *eb, const double *xb, int cs, int cb,
                           double *a, double *b)
{
    size_t n = 0;
    for (size_t r = 0; r < es->rows; r++) {
        double va = xs[r * es->cols + (size_t)cs], vb = xb[r * eb->cols + (size_t)cb];
        if (isfinite(va) && isfinite(vb)) {
            a[n] = va;
            b[n] = vb;
            n++;
        }
    }
    return n;
}

/* Appends a[n], b[n] to the pooled users of metric k (pa, pb, pn). */
static int pool_users(double **pa, double **pb, size_t *pn, const double *a, const double *b, size_t n)
{
    double *na = dm_realloc_at(*pa, *pn + n, sizeof *na, __FILE__, __LINE__);
    double *nb = na ? dm_realloc_at(*pb, *pn + n, sizeof *nb, __FILE__, __LINE__) : NULL;
    if (na) *pa = na;
    if (nb) *pb = nb;
    if (!na || !nb) return DM_ENOMEM;
    memcpy(*pa + *pn, a, n * sizeof *a);
    memcpy(*pb + *pn, b, n * sizeof *b);
    *pn += n;
    return DM_OK;
}

/* The user-level tests of seed i of a unit, every metric; pooled users collected when asked. */
static int seed_tests(par_ctx *ctx, const table *tb, tunit *u, size_t i, double **pa, double **pb, size_t *pn)
{
    const rpt_set *s = tb->s;
    const rpt_opts *o = tb->o;
    const rpt_table_spec *t = tb->t;
    const rpt_conf *cf = &s->confs[tb->rows[u->row].conf];
    size_t nm = t->nmetrics, nr = cf->nruns, stride = (nr + 2) * C_NREC;
    const rpt_run *run = &s->runs[cf->runs[i]], *brun;
    const rpt_entry *es, *eb;
    pair_entries(tb, run, u->bconf, t->protocols[u->prot], tb->rows[u->row].model, &brun, &es, &eb);
    if (!es || !eb) return DM_OK;
    if (es->rows != eb->rows) {
        int rc = DM_ERR(DM_EFORMAT, "%s: %s has %zu rows but %s in %s %zu; cannot pair users", run->path, es->name, es->rows, eb->name,
                        brun->path, eb->rows);
        DM_HINT("a baseline in another configuration must be scored on the same users (the same data and split)");
        return rc;
    }
    double *xs = NULL, *xb = NULL;
    int rc = rpt_read_rows(ctx, run, es, &xs);
    if (!rc) rc = rpt_read_rows(ctx, brun, eb, &xb);
    double *a = rc ? NULL : dm_calloc_at(es->rows + 1, sizeof *a, __FILE__, __LINE__);
    double *b = rc ? NULL : dm_calloc_at(es->rows + 1, sizeof *b, __FILE__, __LINE__);
    if (!rc && (!a || !b)) rc = DM_ENOMEM;
    for (size_t k = 0; k < nm && !rc; k++) {
        int cs = rpt_col(es, t->metrics[k]), cb = rpt_col(eb, t->metrics[k]);
        if (cs < 0 || cb < 0) continue;
        size_t n = paired_users(es, xs, eb, xb, cs, cb, a, b);
        if (n == 0) continue;
        stats_comparison c;
        rc = stats_compare(a, b, n, &o->so, &c);
        if (!rc) rec_set(u->rec + k * stride + i * C_NREC, &c, a, b);
        if (!rc && o->across == 2 && nr > 1) rc = pool_users(&pa[k], &pb[k], &pn[k], a, b, n);
    }
    free(xs);
    free(xb);
    free(a);
    free(b);
    return rc;
}

/* The user-level tests of one unit: every seed, and the pooled test. */
static int run_unit(par_ctx *ctx, const table *tb, tunit *u)
{
    const rpt_opts *o = tb->o;
    const rpt_conf *cf = &tb->s->confs[tb->rows[u->row].conf];
    size_t nm = tb->nm, nr = cf->nruns, stride = (nr + 2) * C_NREC;
    for (size_t i = 0; i < nm * stride; i++) u->rec[i] = NAN;
    double **pa = dm_calloc_at(nm + 1, sizeof *pa, __FILE__, __LINE__), **pb = dm_calloc_at(nm + 1, sizeof *pb, __FILE__, __LINE__);
    size_t *pn = dm_calloc_at(nm + 1, sizeof *pn, __FILE__, __LINE__);
    int rc = pa && pb && pn ? DM_OK : DM_ENOMEM;
    for (size_t i = 0; i < nr && !rc; i++) rc = seed_tests(ctx, tb, u, i, pa, pb, pn);
    for (size_t k = 0; k < nm && !rc && o->across == 2 && nr > 1; k++) {
        if (!pn[k]) continue;
        stats_comparison c;
        rc = stats_compare(pa[k], pb[k], pn[k], &o->so, &c);
        if (!rc) rec_set(u->rec + k * stride + NR_POOLED(nr) * C_NREC, &c, pa[k], pb[k]);
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

static size_t unit_bytes(const table *tb, const tunit *u) { return tb->nm * (u->nruns + 2) * C_NREC * sizeof(double); }

/* This rank's share of the units (i % size == rank), their records appended to mine. */
static int run_my_units(par_ctx *ctx, table *tb, dm_buf *mine)
{
    int rc = DM_OK;
    for (size_t i = 0; i < tb->nunits && !rc; i++) {
        if ((int)(i % (size_t)ctx->size) != ctx->rank) continue;
        rc = run_unit(ctx, tb, &tb->units[i]);
        if (!rc) rc = dm_buf_add(mine, tb->units[i].rec, unit_bytes(tb, &tb->units[i]));
    }
    return rc;
}

/* Every rank's records into every rank's units. Collective. */
static int gather_units(par_ctx *ctx, table *tb, const dm_buf *mine)
{
    void *all = NULL;
    size_t *counts = NULL;
    int rc = par_allgatherv(ctx, mine->data ? mine->data : "", mine->len, &all, &counts);
    if (!rc) {
        size_t off = 0;
        for (int rk = 0; rk < ctx->size; rk++)
            for (size_t i = (size_t)rk; i < tb->nunits; i += (size_t)ctx->size) {
                size_t bytes = unit_bytes(tb, &tb->units[i]);
                memcpy(tb->units[i].rec, (char *)all + off, bytes);
                off += bytes;
            }
    }
    free(all);
    free(counts);
    return rc;
}

/* The across-seeds test of unit i, metric k, and the cell's mark-deciding test: across seeds (or
 * pooled) with several seeds, else the one seed's test across users. */
static int cell_test(table *tb, size_t i, size_t k)
{
    const rpt_set *s = tb->s;
    const rpt_opts *o = tb->o;
    const rpt_table_spec *t = tb->t;
    tunit *u = &tb->units[i];
    const rpt_conf *cf = &s->confs[tb->rows[u->row].conf];
    size_t stride = (u->nruns + 2) * C_NREC, n = 0;
    for (size_t j = 0; j < cf->nruns; j++) {
        const rpt_run *brun;
        const rpt_entry *es, *eb;
        pair_entries(tb, &s->runs[cf->runs[j]], u->bconf, t->protocols[u->prot], tb->rows[u->row].model, &brun, &es, &eb);
        int cs = es ? rpt_col(es, t->metrics[k]) : -1, cb = eb ? rpt_col(eb, t->metrics[k]) : -1;
        if (cs < 0 || cb < 0 || isnan(es->mean[cs]) || isnan(eb->mean[cb])) continue;
        tb->vals[n] = es->mean[cs];
        tb->vb[n] = eb->mean[cb];
        n++;
    }
    int rc = across_test(o, tb->vals, tb->vb, n, u->rec + k * stride + NR_ACROSS(u->nruns) * C_NREC);
    tcell *cl = cell_at(tb, u->row, u->prot, k);
    int scope = n >= 2 ? (o->across == 2 ? NR_POOLED(u->nruns) : NR_ACROSS(u->nruns)) : 0;
    if (n == 1)
        for (size_t j = 0; j < u->nruns; j++)
            if (!isnan(u->rec[k * stride + j * C_NREC + C_P])) scope = (int)j;
    double p = u->rec[k * stride + (size_t)scope * C_NREC + C_P];
    if (!isnan(p)) {
        int kind = n >= 2 ? (o->across == 2 ? 2 : 1) : 0;
        const double *rec = u->rec + k * stride + (size_t)scope * C_NREC;
        cl->scope = scope;
        cl->p = p;
        tb->kinds_used[kind] = 1;
        tb->ntests++;
        cl->warn = test_weakness(o, rec, kind, cl->why, sizeof cl->why);
        for (int b = 0; b < 3; b++) tb->nweak[b] += (cl->warn >> b) & 1;
        if (cl->warn & W_SEEDS) {
            tb->wseeds_min = rec[C_N] < tb->wseeds_min ? rec[C_N] : tb->wseeds_min;
            tb->wseeds_max = rec[C_N] > tb->wseeds_max ? rec[C_N] : tb->wseeds_max;
        }
    }
    tb->pv[i * tb->nm + k] = p;
    return rc;
}

/* Across seeds, the mark-deciding p of each cell, Holm over the table, the marks. */
static int decide_marks(table *tb)
{
    const rpt_opts *o = tb->o;
    size_t nm = tb->nm;
    DM_ALLOC(tb->pv, tb->nunits * nm + 1);
    int rc = DM_OK;
    for (size_t i = 0; i < tb->nunits && !rc; i++)
        for (size_t k = 0; k < nm && !rc; k++) rc = cell_test(tb, i, k);
    if (!rc && o->holm) rc = stats_holm(tb->pv, tb->nunits * nm, tb->pv);
    for (size_t i = 0; i < tb->nunits && !rc; i++) {
        tunit *u = &tb->units[i];
        for (size_t k = 0; k < nm; k++) {
            tcell *cl = cell_at(tb, u->row, u->prot, k);
            if (cl->scope < 0) continue;
            cl->padj = tb->pv[i * nm + k];
            double diff = u->rec[k * (u->nruns + 2) * C_NREC + (size_t)cl->scope * C_NREC + C_DIFF];
            int better = rpt_lower_better(o, tb->t->metrics[k]) ? diff < 0 : diff > 0;
            if (cl->padj < o->alpha && diff != 0) cl->mark = better ? 1 : -1;
        }
    }
    return rc;
}

/* Holm of the other tests, per family: seed j of every unit, all across-seeds tests, all pooled. */
static int holm_families(table *tb)
{
    size_t nm = tb->nm, maxruns = tb->maxruns;
    for (size_t fam = 0; fam < maxruns + 2; fam++) {
        double *q = dm_calloc_at(tb->nunits * nm + 1, sizeof *q, __FILE__, __LINE__);
        size_t *at = dm_calloc_at(tb->nunits * nm + 1, sizeof *at, __FILE__, __LINE__);
        if (!q || !at) {
            free(q);
            free(at);
            return DM_ENOMEM;
        }
        size_t cnt = 0;
        for (size_t i = 0; i < tb->nunits; i++) {
            size_t nr = tb->units[i].nruns, sl = fam < maxruns ? fam : fam == maxruns ? NR_ACROSS(nr) : NR_POOLED(nr);
            if (fam < maxruns && fam >= nr) continue;
            for (size_t k = 0; k < nm; k++) {
                at[cnt] = k * (nr + 2) + sl;
                q[cnt++] = tb->units[i].rec[(k * (nr + 2) + sl) * C_NREC + C_P];
            }
        }
        int rc = tb->o->holm ? stats_holm(q, cnt, q) : DM_OK;
        cnt = 0;
        for (size_t i = 0; i < tb->nunits && !rc; i++) {
            size_t nr = tb->units[i].nruns;
            if (fam < maxruns && fam >= nr) continue;
            for (size_t k = 0; k < nm; k++, cnt++) tb->units[i].padj[at[cnt]] = q[cnt];
        }
        free(q);
        free(at);
        DM_CALL(rc);
    }
    return DM_OK;
}

/* Best and second best per column, on the displayed numbers. */
static void rank_cells(table *tb)
{
    for (size_t p = 0; p < tb->np; p++)
        for (size_t k = 0; k < tb->nm; k++) {
            int low = rpt_lower_better(tb->o, tb->t->metrics[k]);
            double best = NAN, second = NAN;
            for (size_t r = 0; r < tb->nrows; r++) {
                double v = strtod(cell_at(tb, r, p, k)->shown, NULL);
                if (cell_at(tb, r, p, k)->k == 0) continue;
                if (low) v = -v;
                if (isnan(best) || v > best) {
                    if (!isnan(best)) second = best;
                    best = v;
                } else if (v < best && (isnan(second) || v > second))
                    second = v;
            }
            for (size_t r = 0; r < tb->nrows && tb->nrows > 1; r++) {
                tcell *cl = cell_at(tb, r, p, k);
                if (!cl->k) continue;
                double v = strtod(cl->shown, NULL) * (low ? -1 : 1);
                cl->rank = v == best ? 1 : (!isnan(second) && v == second ? 2 : 0);
            }
        }
}

/* ---- output (rank 0) --------------------------------------------------------------------- */

/* Which users results.h5's rows of the table are on, when eval.user_fraction sampled them in a run
 * of the set (nothing otherwise; prompt.h5's -llm tables and the prequential ones have their own). */
static void sample_note(const table *tb, dm_buf *cap)
{
    const rpt_table_spec *t = tb->t;
    if (t->split && !strcmp(t->split, "prequential")) return;
    for (size_t p = 0; p < tb->np; p++)
        if (strstr(t->protocols[p], "-llm")) return;
    double lo = 1, hi = 0;
    for (size_t r = 0; r < tb->s->nruns; r++) {
        double f = dm_cfg_float(&tb->s->runs[r].cfg, "eval.user_fraction");
        if (f < lo) lo = f;
        if (f > hi) hi = f;
    }
    if (lo >= 1) return;
    if (lo == hi) dm_buf_printf(cap, " On a sample of the users: each took part with probability %g (eval.user_fraction), the same users for every model.", lo);
    else dm_buf_printf(cap, " On samples of the users: each took part with probability %g to %g (eval.user_fraction) by run.", lo, hi);
}

/* The spec's caption, else "Results on the <split> split (<protocols>)."; then the users' sample */
static void write_caption(const table *tb, dm_buf *cap)
{
    const rpt_opts *o = tb->o;
    const rpt_table_spec *t = tb->t;
    if (t->caption && t->caption[0]) dm_buf_adds(cap, t->caption);
    else {
        dm_buf_printf(cap, "Results on the %s split (", rpt_label(o, t->split));
        for (size_t p = 0; p < tb->np; p++) dm_buf_printf(cap, "%s%s", p ? "; " : "", rpt_label(o, t->protocols[p]));
        dm_buf_adds(cap, ").");
    }
    sample_note(tb, cap);
}

/* Distinct models among the rows. */
static size_t row_models(const table *tb)
{
    size_t n = 0;
    for (size_t r = 0; r < tb->nrows; r++) {
        size_t q = 0;
        while (q < r && strcmp(tb->rows[q].model, tb->rows[r].model)) q++;
        n += q == r;
    }
    return n;
}

/* Plain words on the mark-deciding tests that cannot mean much (nothing when none): how many rest on
 * too few seeds, too few users, or ties. */
static void caution_text(const table *tb, dm_buf *b)
{
    size_t nw = 0;
    for (size_t r = 0; r < tb->nrows; r++)
        for (size_t p = 0; p < tb->np; p++)
            for (size_t k = 0; k < tb->nm; k++) nw += cell_at(tb, r, p, k)->warn != 0;
    if (!nw) return;
    dm_buf_printf(b, "Caution: %zu of the %zu tests cannot mean much (", nw, tb->ntests);
    const char *sep = "";
    if (tb->nweak[0]) {
        double lo = tb->wseeds_min, hi = tb->wseeds_max;
        if (lo == hi) dm_buf_printf(b, "%zu rest on %.0f seeds", tb->nweak[0], lo);
        else dm_buf_printf(b, "%zu rest on %.0f to %.0f seeds", tb->nweak[0], lo, hi);
        if (tb->o->across == 0) dm_buf_printf(b, ", a t-test with %.0f degree%s of freedom", lo - 1, lo - 1 == 1 ? "" : "s");
        sep = "; ";
    }
    if (tb->nweak[1]) {
        dm_buf_printf(b, "%s%zu on fewer than 10 users", sep, tb->nweak[1]);
        sep = "; ";
    }
    if (tb->nweak[2]) dm_buf_printf(b, "%s%zu on ties: fewer than 10 non-zero differences, or none", sep, tb->nweak[2]);
    dm_buf_printf(b, "); see %s_tests.csv, column warning.", tb->t->name);
}

/* The legend under the table: the same words in LaTeX (leg) and Markdown (legmd). */
static void write_legend(const table *tb, int show_std, dm_buf *leg, dm_buf *legmd)
{
    const rpt_opts *o = tb->o;
    const char *bl = rpt_label(o, tb->baseline);
    char seeds[64] = "";
    if (tb->kmax > 1) {
        if (tb->kmin == tb->kmax) snprintf(seeds, sizeof seeds, "%zu seeds", tb->kmax);
        else snprintf(seeds, sizeof seeds, "%zu to %zu seeds", tb->kmin, tb->kmax);
    }
    dm_buf_adds(leg, " Best in bold, second best underlined.");
    dm_buf_adds(legmd, "Best in **bold**, second best in *italics*.");
    if (tb->kmax > 1) {
        dm_buf_printf(leg, " %s over %s.", show_std ? "Mean $\\pm$ standard deviation" : "Means", seeds);
        dm_buf_printf(legmd, " %s over %s.", show_std ? "Mean ± standard deviation" : "Means", seeds);
    }
    if (o->percent) {
        dm_buf_adds(leg, " Metrics in \\%.");
        dm_buf_adds(legmd, " Metrics in %.");
    }
    if (!tb->ntests) {
        if (row_models(tb) < 2) return;
        dm_buf_printf(leg, " No significance tests: no model shares scored users with ");
        rpt_label_tex(leg, o, tb->baseline, bl);
        dm_buf_adds(leg, " in this table.");
        dm_buf_printf(legmd, " No significance tests: no model shares scored users with %s in this table.", bl);
        return;
    }
    dm_buf tests = {0};
    for (int kd = 0; kd < 3; kd++)
        if (tb->kinds_used[kd]) dm_buf_printf(&tests, "%s%s", tests.len ? "; " : "", test_desc(o, kd));
    char alpha[32];
    snprintf(alpha, sizeof alpha, "%g", o->alpha);
    const char *side = o->so.alt == STATS_TWO_SIDED ? "two-sided" : "one-sided";
    const char *bdesc = tb->bdesc;
    dm_buf_adds(leg, " $^{\\dagger}$/$^{\\ddagger}$: significantly better/worse than ");
    rpt_label_tex(leg, o, tb->baseline, bl);
    if (bdesc[0]) rpt_label_tex_escape(leg, bdesc);
    dm_buf_printf(leg, "%s (", bdesc[0] ? "" : " of the same configuration");
    rpt_label_tex_escape(leg, tests.data);
    dm_buf_printf(leg, ", %s, %s$p < %s$ over the %zu comparisons of this table).", side, o->holm ? "Holm-adjusted " : "", alpha,
                  tb->ntests);
    dm_buf_printf(legmd, " † / ‡: significantly better / worse than %s%s (%s, %s, %sp < %s over the %zu comparisons of this table).",
                  bl, bdesc[0] ? bdesc : " of the same configuration", tests.data, side, o->holm ? "Holm-adjusted " : "", alpha,
                  tb->ntests);
    dm_buf_reset(&tests);
    caution_text(tb, &tests);
    if (tests.len) {
        dm_buf_adds(leg, " ");
        rpt_label_tex_escape(leg, tests.data);
        dm_buf_printf(legmd, " %s", tests.data);
    }
    dm_buf_free(&tests);
}

/* The header rows of the tabular: protocol groups (several protocols), then the column names. */
static void tabular_header(const table *tb, dm_buf *tab)
{
    const rpt_set *s = tb->s;
    const rpt_opts *o = tb->o;
    const rpt_table_spec *t = tb->t;
    size_t np = tb->np, nm = tb->nm;
    dm_buf_printf(tab, "\\begin{tabular}{l%.*s", (int)s->nvaried, "cccccccccccccccccccccccccccccccc");
    for (size_t p = 0; p < np; p++) dm_buf_printf(tab, "%s%.*s", np > 1 ? "@{\\hspace{1.2em}}" : "", (int)nm, "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
    dm_buf_adds(tab, "}\n\\toprule\n");
    size_t lead = 1 + s->nvaried;
    if (np > 1) {
        for (size_t i = 1; i < lead; i++) dm_buf_adds(tab, " &");
        for (size_t p = 0; p < np; p++) {
            dm_buf_printf(tab, " & \\multicolumn{%zu}{c}{", nm);
            rpt_label_tex(tab, o, t->protocols[p], rpt_label(o, t->protocols[p]));
            dm_buf_adds(tab, "}");
        }
        dm_buf_adds(tab, " \\\\\n");
        for (size_t p = 0; p < np; p++) dm_buf_printf(tab, "\\cmidrule(lr){%zu-%zu}", lead + 1 + p * nm, lead + (p + 1) * nm);
        dm_buf_adds(tab, "\n");
    }
    dm_buf_adds(tab, "Model");
    for (size_t v = 0; v < s->nvaried; v++) {
        dm_buf_adds(tab, " & ");
        rpt_label_tex(tab, o, s->varied[v], rpt_label_key(o, s, s->varied[v]));
    }
    for (size_t p = 0; p < np; p++)
        for (size_t k = 0; k < nm; k++) {
            dm_buf_adds(tab, " & ");
            rpt_label_tex(tab, o, t->metrics[k], rpt_label(o, t->metrics[k]));
        }
    dm_buf_adds(tab, " \\\\\n\\midrule\n");
}

/* A rule before row r when it starts another model and either model has several rows. */
static int rule_before(const table *tb, size_t r)
{
    size_t before = 0, after = 0;
    for (size_t q = 0; q < tb->nrows; q++) {
        before += !strcmp(tb->rows[q].model, tb->rows[r - 1].model);
        after += !strcmp(tb->rows[q].model, tb->rows[r].model);
    }
    return before > 1 || after > 1;
}

/* How a format writes a cell: what comes before and after it, a cell without numbers, the shown
 * number of the best, the second and any other row, its sd, and the marks of a significant
 * difference (better, worse than the baseline). */
typedef struct {
    const char *before, *empty, *shown[3], *sd, *mark[2], *after;
} cell_format;

static const cell_format g_cell_tex = {" & ", "--", {"\\textbf{%s}", "\\underline{%s}", "%s"}, "{\\scriptsize$\\pm$%s}",
                                       {"\\rlap{$^{\\dagger}$}", "\\rlap{$^{\\ddagger}$}"}, ""};
static const cell_format g_cell_md = {"", " –", {" **%s**", " *%s*", " %s"}, " ± %s", {"†", "‡"}, " |"};

static void write_cell(const table *tb, const tcell *cl, int show_std, const cell_format *cf, dm_buf *b)
{
    dm_buf_adds(b, cf->before);
    if (!cl->k) {
        dm_buf_adds(b, cf->empty);
        dm_buf_adds(b, cf->after);
        return;
    }
    dm_buf_printf(b, cf->shown[cl->rank == 1 ? 0 : cl->rank == 2 ? 1 : 2], cl->shown);
    if (show_std && cl->k > 1) {
        char sd[64];
        fmt_num(tb->o, cl->sd, sd, sizeof sd);
        dm_buf_printf(b, cf->sd, sd);
    }
    if (cl->mark) dm_buf_adds(b, cf->mark[cl->mark > 0 ? 0 : 1]);
    dm_buf_adds(b, cf->after);
}

/* The booktabs tabular: header, a line per row (bold best, underlined second, marks), rules. */
static void write_tabular(const table *tb, int show_std, dm_buf *tab)
{
    const rpt_set *s = tb->s;
    const trow *rows = tb->rows;
    int multi = 0; /* a model with several rows: rules between models */
    for (size_t r = 1; r < tb->nrows; r++)
        if (!strcmp(rows[r].model, rows[r - 1].model)) multi = 1;
    tabular_header(tb, tab);
    for (size_t r = 0; r < tb->nrows; r++) {
        if (r && multi && strcmp(rows[r].model, rows[r - 1].model) && rule_before(tb, r)) dm_buf_adds(tab, "\\midrule\n");
        rpt_label_tex(tab, tb->o, rows[r].model, rpt_label(tb->o, rows[r].model));
        for (size_t v = 0; v < s->nvaried; v++) {
            dm_buf_adds(tab, " & ");
            if (rows[r].collapsed) dm_buf_adds(tab, "--");
            else rpt_label_tex_escape(tab, s->confs[rows[r].conf].values[v]);
        }
        for (size_t p = 0; p < tb->np; p++)
            for (size_t k = 0; k < tb->nm; k++) write_cell(tb, cell_at(tb, r, p, k), show_std, &g_cell_tex, tab);
        dm_buf_adds(tab, " \\\\\n");
    }
    dm_buf_adds(tab, "\\bottomrule\n\\end{tabular}\n");
}

/* The LaTeX float around the tabular; more than 5 columns of numbers span both columns of a
 * two-column paper (table*). */
static void write_tex(const table *tb, const dm_buf *cap, const dm_buf *leg, const dm_buf *tab, dm_buf *tex)
{
    const rpt_table_spec *t = tb->t;
    int wide = tb->s->nvaried + tb->np * tb->nm > 5;
    dm_buf_printf(tex, "%% %s.tex: written by dynmm report from %zu results file%s; needs \\usepackage{booktabs}.\n"
                       "%% %s_tabular.tex holds the tabular alone, to \\input into a table of your own.\n"
                       "\\begin{%s}[tbp]\n\\centering\n\\caption{",
                  t->name, tb->s->nruns, tb->s->nruns == 1 ? "" : "s", t->name, wide ? "table*" : "table");
    if (t->caption && t->caption[0]) dm_buf_adds(tex, cap->data);
    else rpt_label_tex_escape(tex, cap->data);
    dm_buf_printf(tex, "%s}\n\\label{tab:%s}\n\\small\n%s\\end{%s}\n", leg->data, t->name, tab->data, wide ? "table*" : "table");
}

static void write_markdown(const table *tb, int show_std, const dm_buf *cap, const dm_buf *legmd, dm_buf *m)
{
    const rpt_set *s = tb->s;
    const rpt_opts *o = tb->o;
    const rpt_table_spec *t = tb->t;
    const trow *rows = tb->rows;
    size_t np = tb->np, nm = tb->nm;
    dm_buf_printf(m, "**Table %s.** %s\n\n| Model |", t->name, cap->data);
    for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(m, " %s |", rpt_label_key(o, s, s->varied[v]));
    for (size_t p = 0; p < np; p++)
        for (size_t k = 0; k < nm; k++)
            dm_buf_printf(m, np > 1 ? " %s (%s) |" : " %s |", rpt_label(o, t->metrics[k]), rpt_label(o, t->protocols[p]));
    dm_buf_adds(m, "\n|:--|");
    for (size_t v = 0; v < s->nvaried; v++) dm_buf_adds(m, "--:|");
    for (size_t i = 0; i < np * nm; i++) dm_buf_adds(m, "--:|");
    dm_buf_adds(m, "\n");
    for (size_t r = 0; r < tb->nrows; r++) {
        dm_buf_printf(m, "| %s |", rpt_label(o, rows[r].model));
        for (size_t v = 0; v < s->nvaried; v++) dm_buf_printf(m, " %s |", rows[r].collapsed ? "–" : s->confs[rows[r].conf].values[v]);
        for (size_t p = 0; p < np; p++)
            for (size_t k = 0; k < nm; k++) write_cell(tb, cell_at(tb, r, p, k), show_std, &g_cell_md, m);
        dm_buf_adds(m, "\n");
    }
    dm_buf_printf(m, "\n%s\n", legmd->data);
}

/* The kind of the test behind a cell's mark: 0 across users, 1 over seeds, 2 pooled. */
static int cell_test_kind(const table *tb, size_t r, size_t p, const tcell *cl)
{
    const tunit *u = NULL;
    for (size_t i = 0; i < tb->nunits; i++)
        if (tb->units[i].row == r && tb->units[i].prot == p) u = &tb->units[i];
    return u && cl->scope >= (int)u->nruns ? (cl->scope == (int)NR_POOLED(u->nruns) ? 2 : 1) : 0;
}

/* The baseline as chosen for the table, with its configuration when fixed to one. */
static const char *baseline_name(const table *tb) { return tb->bfull; }

/* CSV: one line per cell. */
static void write_csv(const table *tb, dm_buf *csv)
{
    const rpt_set *s = tb->s;
    const rpt_opts *o = tb->o;
    const rpt_table_spec *t = tb->t;
    const trow *rows = tb->rows;
    dm_buf_adds(csv, "table,model,label,config");
    for (size_t v = 0; v < s->nvaried; v++) {
        dm_buf_adds(csv, ",");
        csv_field(csv, s->varied[v]);
    }
    dm_buf_adds(csv, ",split,protocol,metric,mean,std,seeds,users,baseline,test,p,p_adj,mark,best,warning\n");
    for (size_t r = 0; r < tb->nrows; r++)
        for (size_t p = 0; p < tb->np; p++)
            for (size_t k = 0; k < tb->nm; k++) {
                const tcell *cl = cell_at(tb, r, p, k);
                csv_field(csv, t->name);
                dm_buf_adds(csv, ",");
                csv_field(csv, rows[r].model);
                dm_buf_adds(csv, ",");
                csv_field(csv, rpt_label(o, rows[r].model));
                dm_buf_adds(csv, ",");
                csv_field(csv, rows[r].collapsed ? "*" : s->confs[rows[r].conf].label);
                for (size_t v = 0; v < s->nvaried; v++) {
                    dm_buf_adds(csv, ",");
                    csv_field(csv, rows[r].collapsed ? "*" : s->confs[rows[r].conf].values[v]);
                }
                dm_buf_printf(csv, ",%s,%s,%s,", t->split, t->protocols[p], t->metrics[k]);
                csv_num(csv, cl->mean);
                dm_buf_adds(csv, ",");
                csv_num(csv, cl->sd);
                dm_buf_printf(csv, ",%zu,%lld,", cl->k, (long long)cl->users);
                csv_field(csv, baseline_name(tb));
                dm_buf_adds(csv, ",");
                if (cl->scope >= 0) {
                    int kd = cell_test_kind(tb, r, p, cl);
                    dm_buf_printf(csv, "%s%s", test_name(o, kd), kd == 0 ? "/users" : kd == 1 ? "/seeds" : "/pooled");
                }
                dm_buf_adds(csv, ",");
                csv_num(csv, cl->p);
                dm_buf_adds(csv, ",");
                csv_num(csv, cl->padj);
                dm_buf_printf(csv, ",%s,%d,", cl->mark > 0 ? "better" : cl->mark < 0 ? "worse" : "", cl->rank);
                csv_field(csv, cl->why);
                dm_buf_adds(csv, "\n");
            }
}

/* One line of <name>_tests.csv: test sl (a seed, across, pooled) of unit u, metric k. */
static void tests_csv_line(const table *tb, const tunit *u, size_t k, size_t sl, dm_buf *tcsv)
{
    const rpt_set *s = tb->s;
    const rpt_table_spec *t = tb->t;
    const rpt_conf *cf = &s->confs[tb->rows[u->row].conf];
    const double *rec = u->rec + k * (u->nruns + 2) * C_NREC + sl * C_NREC;
    int kd = sl < u->nruns ? 0 : sl == NR_ACROSS(u->nruns) ? 1 : 2;
    const tcell *cl = cell_at(tb, u->row, u->prot, k);
    csv_field(tcsv, t->name);
    dm_buf_adds(tcsv, ",");
    csv_field(tcsv, tb->rows[u->row].model);
    dm_buf_adds(tcsv, ",");
    csv_field(tcsv, cf->label);
    dm_buf_printf(tcsv, ",%s,%s,%s,", t->split, t->protocols[u->prot], t->metrics[k]);
    csv_field(tcsv, baseline_name(tb));
    dm_buf_printf(tcsv, ",%s,", kd == 0 ? "users" : kd == 1 ? "seeds" : "pooled");
    if (kd == 0) dm_buf_printf(tcsv, "%lld", (long long)s->runs[cf->runs[sl]].seed);
    dm_buf_printf(tcsv, ",%s,%.0f", test_name(tb->o, kd), rec[C_N]);
    int f[] = {C_MA, C_MB, C_DIFF, C_LO, C_HI, C_D, C_RB, C_P};
    for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
        dm_buf_adds(tcsv, ",");
        csv_num(tcsv, rec[f[j]]);
    }
    dm_buf_adds(tcsv, ",");
    csv_num(tcsv, (int)sl == cl->scope ? cl->padj : u->padj[k * (u->nruns + 2) + sl]);
    char why[160];
    test_weakness(tb->o, rec, kd, why, sizeof why);
    dm_buf_printf(tcsv, ",%d,%.0f,", (int)sl == cl->scope, rec[C_NZ]);
    csv_field(tcsv, why);
    dm_buf_adds(tcsv, "\n");
}

/* Every test: per seed across users, across seeds, pooled. */
static void write_tests_csv(const table *tb, dm_buf *tcsv)
{
    dm_buf_adds(tcsv, "table,model,config,split,protocol,metric,baseline,scope,seed,test,n,mean_system,mean_baseline,"
                      "diff,ci_lo,ci_hi,effect,rank_biserial,p,p_holm,marks,nonzero,warning\n");
    for (size_t i = 0; i < tb->nunits; i++) {
        const tunit *u = &tb->units[i];
        for (size_t k = 0; k < tb->nm; k++)
            for (size_t sl = 0; sl < u->nruns + 2; sl++)
                if (!isnan(u->rec[k * (u->nruns + 2) * C_NREC + sl * C_NREC + C_P])) tests_csv_line(tb, u, k, sl, tcsv);
    }
}

/* Writes <out>/<name><suffix> when rc is still DM_OK. */
static int write_file(int rc, const table *tb, const char *suffix, const dm_buf *b)
{
    if (rc) return rc;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s%s", tb->o->out, tb->t->name, suffix);
    return dm_fs_write_atomic(path, b->data, b->len, 0644);
}

/* <name>.tex, <name>_tabular.tex, <name>.md, <name>.csv, <name>_tests.csv (the formats asked for),
 * and the Markdown appended to md. */
static int write_table(const table *tb, dm_buf *md)
{
    const rpt_opts *o = tb->o;
    int show_std = o->std && tb->kmax > 1;
    dm_buf cap = {0}, leg = {0}, legmd = {0}, tab = {0}, tex = {0}, m = {0}, csv = {0}, tcsv = {0};
    write_caption(tb, &cap);
    write_legend(tb, show_std, &leg, &legmd);
    write_tabular(tb, show_std, &tab);
    write_tex(tb, &cap, &leg, &tab, &tex);
    write_markdown(tb, show_std, &cap, &legmd, &m);
    write_csv(tb, &csv);
    write_tests_csv(tb, &tcsv);
    int rc = DM_OK;
    if (o->tex) {
        rc = write_file(rc, tb, ".tex", &tex);
        rc = write_file(rc, tb, "_tabular.tex", &tab);
    }
    if (o->md) rc = write_file(rc, tb, ".md", &m);
    if (o->csv) {
        rc = write_file(rc, tb, ".csv", &csv);
        rc = write_file(rc, tb, "_tests.csv", &tcsv);
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
    return rc;
}

/* ---- the table --------------------------------------------------------------------------- */

/* The log's word on a table whose marks cannot be trusted, or that has none. */
static void warn_weak(const table *tb)
{
    dm_log_v(2, "  table %s: baseline %s%s%s%s", tb->t->name, tb->baseline, tb->bwhy[0] ? " (" : "", tb->bwhy, tb->bwhy[0] ? ")" : "");
    if (!tb->ntests && row_models(tb) > 1)
        dm_warn("table '%s': no significance tests: no model shares scored users with its baseline %s", tb->t->name, tb->baseline);
    dm_buf b = {0};
    caution_text(tb, &b);
    if (b.len) dm_warn("table '%s': %s", tb->t->name, b.data);
    dm_buf_free(&b);
}

int rpt_table(par_ctx *ctx, const rpt_set *s, const rpt_opts *o, const rpt_table_spec *t, dm_buf *md)
{
    table tb = {.s = s, .o = o, .t = t, .bfixed = SIZE_MAX, .np = t->nprotocols, .nm = t->nmetrics, .kmin = SIZE_MAX,
                .wseeds_min = INFINITY, .wseeds_max = 0};
    DM_CALL(rpt_match_models(s, t->models, t->nmodels, &tb.models, &tb.nmodels));
    if (!tb.nmodels) {
        dm_warn("table '%s': no model matches; skipped", t->name);
        return DM_OK;
    }
    int rc = check_metrics(&tb);
    if (!rc) rc = build_rows(&tb);
    if (!rc && !tb.nrows) {
        dm_warn("table '%s': no results for split '%s'; skipped", t->name, t->split);
        table_free(&tb);
        return DM_OK;
    }
    if (!rc) rc = resolve_baseline(&tb);
    if (!rc) rc = fill_cells(&tb);
    if (!rc) rc = plan_units(&tb);
    /* user-level tests, shared out across ranks, then gathered */
    dm_buf mine = {0};
    if (!rc) rc = run_my_units(ctx, &tb, &mine);
    rc = par_agree(ctx, rc);
    if (!rc && ctx->size > 1) rc = gather_units(ctx, &tb, &mine);
    dm_buf_free(&mine);
    if (!rc) rc = decide_marks(&tb);
    if (!rc) rc = holm_families(&tb);
    if (!rc) rank_cells(&tb);
    if (!rc) warn_weak(&tb);
    if (!rc && ctx->rank == 0) rc = write_table(&tb, md);
    table_free(&tb);
    return par_agree(ctx, rc);
}

void rpt_table_spec_free(rpt_table_spec *t)
{
    DM_FREE_ALL(t->name, t->split, t->caption, t->baseline);
    dm_strv_free(t->protocols, t->nprotocols);
    dm_strv_free(t->models, t->nmodels);
    dm_strv_free(t->metrics, t->nmetrics);
    dm_strv_free(t->where, t->nwhere);
    memset(t, 0, sizeof *t);
}
