/* stats.c: paired t-test, Wilcoxon signed-rank test, Holm adjustment, summaries and
 * the one-call comparison, following SciPy 1.10 (scipy/stats/_stats_py.py ttest_rel,
 * scipy/stats/_morestats.py wilcoxon), see stats.h. The shared records, sums and effect sizes are
 * in stats_core.c, the resampling tests in stats_resample.c.
 */
#include "stats.h"

#include "../core/err.h"
#include "../core/sort.h"
#include "stats_special.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ------------------------------------------------------------------------- */

static void result_init(stats_result *r, size_t n)
{
    r->stat = r->p = r->z = r->df = r->estimate = r->effect = NAN;
    r->n = n;
    r->n_used = n;
    r->flags = 0;
}

static double p_from_t(double t, double df, stats_alt alt)
{
    switch (alt) {
    case STATS_LESS: return stats_t_cdf(t, df);
    case STATS_GREATER: return stats_t_cdf(-t, df);
    default: return 2.0 * stats_t_cdf(-fabs(t), df);
    }
}

/* ---- paired t-test ------------------------------------------------------------------------------ */

int stats_ttest_rel(const double *a, const double *b, size_t n, stats_alt alt, stats_result *r)
{
    result_init(r, n);
    double *d, *tmp = NULL;
    DM_CALL(stats_diffs(a, b, n, &d));
    if (n >= 1) r->df = (double)n - 1.0;
    if (n >= 1) r->estimate = stats_sum(d, n) / (double)n;
    if (n < 2) {
        r->flags |= STATS_F_TOO_FEW;
        free(d);
        return DM_OK;
    }
    double mean = r->estimate;
    int all_zero = 1, constant = 1;
    for (size_t i = 0; i < n; i++) {
        all_zero &= d[i] == 0;
        constant &= d[i] == d[0];
    }
    if (all_zero) {
        r->flags |= STATS_F_NO_DIFF;
        r->stat = 0;
        r->p = 1;
        r->effect = 0;
    } else if (constant) {
        r->flags |= STATS_F_ZERO_VAR;
        r->stat = r->effect = mean > 0 ? INFINITY : -INFINITY;
        r->p = alt == STATS_TWO_SIDED ? 0.0 : (alt == STATS_GREATER) == (mean > 0) ? 0.0 : 1.0;
    } else {
        tmp = malloc(n * sizeof *tmp);
        if (!tmp) {
            free(d);
            return DM_ERR(DM_ENOMEM, "stats: out of memory (%zu values)", n);
        }
        double var = stats_sum_sq_dev(d, n, mean, tmp) / (double)n * ((double)n / (double)(n - 1));
        double se = sqrt(var / (double)n);
        r->stat = mean / se;
        r->p = p_from_t(r->stat, r->df, alt);
        r->effect = mean / sqrt(var);
    }
    free(tmp);
    free(d);
    return DM_OK;
}

/* ---- Wilcoxon signed-rank ------------------------------------------------------------------------- */

/* Average ranks of |d| (scipy.stats.rankdata 'average'). Returns the tie term sum(t^3 - t) over
 * tied groups, skipping the group of zeros when skip_zeros; *tied says whether any non-zero |d|
 * are tied. */
static double rank_abs(const double *d, size_t n, double *rank, dm_keyed *s, int skip_zeros, int *tied)
{
    for (size_t i = 0; i < n; i++) {
        s[i].key = fabs(d[i]);
        s[i].id = (int64_t)i;
    }
    qsort(s, n, sizeof *s, dm_cmp_keyed_asc);
    double tie = 0.0;
    *tied = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && s[j].key == s[i].key) j++;
        double avg = 0.5 * ((double)(i + 1) + (double)j); /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++) rank[s[k].id] = avg;
        double t = (double)(j - i);
        if (t > 1) {
            if (s[i].key != 0) *tied = 1;
            if (!(skip_zeros && s[i].key == 0)) tie += t * (t * t - 1.0);
        }
        i = j;
    }
    return tie;
}

/* P(R+ = k), k = 0 .. N = n(n+1)/2, like scipy's _get_wilcoxon_distr */
static int wilcoxon_pmf(size_t n, double **pmf, size_t *len)
{
    size_t N = n * (n + 1) / 2;
    double *c;
    DM_ALLOC(c, N + 1);
    c[0] = 1.0;
    size_t m = 1; /* current length */
    for (size_t k = 1; k <= n; k++) {
        size_t len_new = k * (k + 1) / 2 + 1;
        /* new[s] = 0.5 old[s] + 0.5 old[s - k], in place from the top */
        for (size_t s = len_new; s-- > 0;) {
            double lo = s < m ? c[s] : 0.0;
            double hi = s >= k && s - k < m ? c[s - k] : 0.0;
            c[s] = 0.5 * lo + 0.5 * hi;
        }
        m = len_new;
    }
    *pmf = c;
    *len = N + 1;
    return DM_OK;
}

#define WILCOXON_EXACT_MAX 1000

int stats_wilcoxon(const double *a, const double *b, size_t n, stats_zero zero_method, int continuity,
                   stats_alt alt, stats_method method, stats_result *r)
{
    result_init(r, n);
    if (n == 0) {
        r->flags |= STATS_F_TOO_FEW;
        return DM_OK;
    }
    double *d = NULL, *rank = NULL, *pmf = NULL;
    dm_keyed *s = NULL;
    int rc = DM_OK;
    DM_CALL(stats_diffs(a, b, n, &d));
    r->estimate = stats_sum(d, n) / (double)n;
    rank = malloc(n * sizeof *rank);
    s = malloc(n * sizeof *s);
    if (!rank || !s) {
        rc = DM_ERR(DM_ENOMEM, "stats: out of memory (%zu values)", n);
        goto done;
    }
    size_t n_zero = 0;
    for (size_t i = 0; i < n; i++) n_zero += d[i] == 0;
    if (n_zero) r->flags |= STATS_F_ZEROS;
    int tied;
    rank_abs(d, n, rank, s, 0, &tied);
    if (tied) r->flags |= STATS_F_TIES;

    stats_method mode = method;
    if (mode == STATS_METHOD_AUTO) mode = n <= 50 && !n_zero && !tied ? STATS_METHOD_EXACT : STATS_METHOD_APPROX;
    if (mode == STATS_METHOD_EXACT && (n_zero > 0 || n > WILCOXON_EXACT_MAX)) mode = STATS_METHOD_APPROX;

    if (mode == STATS_METHOD_APPROX && zero_method != STATS_ZERO_ZSPLIT && n_zero == n) {
        r->flags |= STATS_F_NO_DIFF | STATS_F_APPROX;
        r->stat = 0;
        r->p = 1;
        r->z = 0;
        r->effect = 0;
        r->n_used = zero_method == STATS_ZERO_WILCOX ? 0 : n;
        goto done;
    }
    size_t count = n;
    if (mode == STATS_METHOD_APPROX && zero_method == STATS_ZERO_WILCOX && n_zero) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (d[i] != 0) d[k++] = d[i];
        count = k;
    }
    r->n_used = count;
    double tie = rank_abs(d, count, rank, s, zero_method == STATS_ZERO_PRATT, &tied);
    double r_plus = 0, r_minus = 0, r_zero = 0;
    for (size_t i = 0; i < count; i++) {
        if (d[i] > 0) r_plus += rank[i];
        else if (d[i] < 0) r_minus += rank[i];
        else r_zero += rank[i];
    }
    if (zero_method == STATS_ZERO_ZSPLIT) {
        r_plus += r_zero / 2.0;
        r_minus += r_zero / 2.0;
    }
    double T = alt == STATS_TWO_SIDED ? (r_plus < r_minus ? r_plus : r_minus) : r_plus;
    r->stat = T;
    r->effect = r_plus + r_minus > 0 ? (r_plus - r_minus) / (r_plus + r_minus) : 0.0;

    if (mode == STATS_METHOD_APPROX) {
        r->flags |= STATS_F_APPROX;
        double c = (double)count;
        double mn = c * (c + 1.0) * 0.25, se = c * (c + 1.0) * (2.0 * c + 1.0);
        if (zero_method == STATS_ZERO_PRATT) { /* Cureton (1967) */
            double z0 = (double)n_zero;
            mn -= z0 * (z0 + 1.0) * 0.25;
            se -= z0 * (z0 + 1.0) * (2.0 * z0 + 1.0);
        }
        se -= 0.5 * tie;
        se = sqrt(se / 24.0);
        double cc = 0.0;
        if (continuity) {
            if (alt == STATS_TWO_SIDED) cc = 0.5 * (T > mn ? 1.0 : T < mn ? -1.0 : 0.0);
            else if (alt == STATS_LESS) cc = -0.5;
            else cc = 0.5;
        }
        double z = (T - mn - cc) / se;
        r->z = z;
        if (alt == STATS_TWO_SIDED) r->p = 2.0 * stats_norm_sf(fabs(z));
        else if (alt == STATS_GREATER) r->p = stats_norm_sf(z);
        else r->p = stats_norm_cdf(z);
    } else {
        r->flags |= STATS_F_EXACT;
        size_t len;
        DM_TRY(rc, wilcoxon_pmf(count, &pmf, &len), done);
        size_t rp = (size_t)r_plus; /* SciPy: int(r_plus), truncating a tied half rank */
        double p_less = 0, p_greater = 0;
        for (size_t k = 0; k <= rp && k < len; k++) p_less += pmf[k];
        for (size_t k = rp; k < len; k++) p_greater += pmf[k];
        double p;
        if (alt == STATS_TWO_SIDED) p = rp == (len - 1) / 2 ? 1.0 : 2.0 * (p_less < p_greater ? p_less : p_greater);
        else if (alt == STATS_GREATER) p = p_greater;
        else p = p_less;
        r->p = p < 0 ? 0 : p > 1 ? 1 : p;
    }
done:
    free(pmf);
    free(s);
    free(rank);
    free(d);
    return rc;
}

/* ---- Holm ------------------------------------------------------------------------------------------ */

int stats_holm(const double *p, size_t m, double *adj)
{
    dm_keyed *s;
    DM_ALLOC(s, m ? m : 1);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (isnan(p[i])) continue;
        if (p[i] < 0 || p[i] > 1) {
            free(s);
            return DM_ERR(DM_EINPUT, "holm: p-value %zu is %g, outside [0, 1]", i, p[i]);
        }
        s[k].key = p[i];
        s[k].id = (int64_t)i;
        k++;
    }
    qsort(s, k, sizeof *s, dm_cmp_keyed_asc);
    for (size_t i = 0; i < m; i++)
        if (isnan(p[i])) adj[i] = NAN;
    double run = 0.0;
    for (size_t j = 0; j < k; j++) {
        double v = (double)(k - j) * s[j].key;
        if (v > 1) v = 1;
        if (v > run) run = v;
        adj[s[j].id] = run;
    }
    free(s);
    return DM_OK;
}

/* ---- summaries -------------------------------------------------------------------- */

int stats_summarize(const double *x, size_t n, double level, stats_summary *s)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->mean = s->sd = s->se = s->lo = s->hi = NAN;
    if (!(level > 0 && level < 1)) return DM_ERR(DM_EINPUT, "stats: interval level %g is outside (0, 1)", level);
    double *d;
    DM_CALL(stats_diffs(x, NULL, n, &d));
    if (n >= 1) s->mean = stats_sum(d, n) / (double)n;
    if (n < 2) {
        s->flags |= STATS_F_TOO_FEW;
        free(d);
        return DM_OK;
    }
    double *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        free(d);
        return DM_ERR(DM_ENOMEM, "stats: out of memory (%zu values)", n);
    }
    s->sd = sqrt(stats_sum_sq_dev(d, n, s->mean, tmp) / (double)(n - 1));
    s->se = s->sd / sqrt((double)n);
    if (s->sd == 0) s->flags |= STATS_F_ZERO_VAR;
    double t = stats_t_ppf(0.5 * (1.0 + level), (double)n - 1.0);
    s->lo = s->mean - t * s->se;
    s->hi = s->mean + t * s->se;
    free(tmp);
    free(d);
    return DM_OK;
}

/* ---- one comparison ------------------------------------------------------------------------------- */

void stats_opts_default(stats_opts *o)
{
    memset(o, 0, sizeof *o);
    o->test = STATS_TEST_WILCOXON;
    o->alt = STATS_TWO_SIDED;
    o->zero_method = STATS_ZERO_WILCOX;
    o->method = STATS_METHOD_AUTO;
    o->permutations = 10000;
    o->resamples = 10000;
    o->level = 0.95;
    o->ci_method = STATS_CI_BCA;
}

int stats_compare(const double *a, const double *b, size_t n, const stats_opts *o, stats_comparison *c)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->mean_a = n ? stats_sum(a, n) / (double)n : NAN;
    c->mean_b = n && b ? stats_sum(b, n) / (double)n : NAN;
    c->ci.lo = c->ci.hi = c->ci.estimate = c->ci.se = NAN;
    switch (o->test) {
    case STATS_TEST_TTEST: DM_CALL(stats_ttest_rel(a, b, n, o->alt, &c->test)); break;
    case STATS_TEST_RANDOMIZATION:
        DM_CALL(stats_randomization(a, b, n, o->alt, o->permutations, o->seed, NULL, o->method, &c->test));
        break;
    default:
        DM_CALL(stats_wilcoxon(a, b, n, o->zero_method, o->continuity, o->alt, o->method, &c->test));
        break;
    }
    c->mean_diff = c->test.estimate;
    if (o->test == STATS_TEST_WILCOXON) {
        c->rank_biserial = c->test.effect;
    } else {
        stats_result w;
        DM_CALL(stats_wilcoxon(a, b, n, o->zero_method, o->continuity, o->alt, STATS_METHOD_APPROX, &w));
        c->rank_biserial = w.effect;
    }
    c->d = o->hedges ? stats_hedges_g(a, b, n) : stats_cohen_dz(a, b, n);
    if (o->resamples > 0)
        DM_CALL(stats_bootstrap_ci(a, b, n, o->level, o->ci_method, o->resamples, o->seed, NULL, &c->ci));
    return DM_OK;
}

/* ---- names ---------------------------------------------------------------------------------------- */

static int parse_name(const char *s, const char *const *names, int count, int *out, const char *what)
{
    for (int i = 0; i < count; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return DM_OK;
        }
    DM_ERR(DM_ECONFIG, "unknown %s '%s'", what, s);
    char buf[160] = "use one of:";
    for (int i = 0; i < count; i++) {
        strncat(buf, " ", sizeof buf - strlen(buf) - 1);
        strncat(buf, names[i], sizeof buf - strlen(buf) - 1);
    }
    DM_HINT("%s", buf);
    return DM_ECONFIG;
}

static const char *const g_alt[] = {"two-sided", "greater", "less"};
static const char *const g_test[] = {"wilcoxon", "ttest", "randomization"};
static const char *const g_zero[] = {"wilcox", "pratt", "zsplit"};
static const char *const g_method[] = {"auto", "exact", "approx"};
static const char *const g_ci[] = {"bca", "percentile"};

#define PARSE(fn, type, names, what)                               \
    int fn(const char *s, type *out)                               \
    {                                                              \
        int v = 0;                                                 \
        DM_CALL(parse_name(s, names, (int)(sizeof names / sizeof names[0]), &v, what)); \
        *out = (type)v;                                            \
        return DM_OK;                                              \
    }
PARSE(stats_alt_parse, stats_alt, g_alt, "alternative")
PARSE(stats_test_parse, stats_test, g_test, "test")
PARSE(stats_zero_parse, stats_zero, g_zero, "zero method")
PARSE(stats_method_parse, stats_method, g_method, "method")
PARSE(stats_ci_parse, stats_ci_method, g_ci, "interval method")
#undef PARSE

const char *stats_test_name(stats_test t) { return (unsigned)t < 3 ? g_test[t] : "?"; }
const char *stats_alt_name(stats_alt a) { return (unsigned)a < 3 ? g_alt[a] : "?"; }
