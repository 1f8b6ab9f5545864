/* stats.h: paired significance tests, confidence intervals, multiple-comparison correction and
 * effect sizes for comparing two systems: the stats module's interface. It includes stats_core.h
 * (paired data, alternatives, result flags and records, pairwise sums, differences, effect sizes)
 * and stats_resample.h (randomisation test, bootstrap intervals); this file adds the rank and t
 * tests, Holm's correction, summaries and the one-call comparison of a results table cell.
 *
 * Semantics match SciPy 1.10 (tests/reference/gen_stats.py checks every p-value and interval to
 * 1e-6 against it):
 *
 *   stats_ttest_rel     scipy.stats.ttest_rel(a, b, alternative). t = mean(d) / (sd(d) / sqrt n),
 *                       sd with ddof 1, df = n - 1, p from the t distribution.
 *                       Degenerate: n < 2 -> t, p NaN, STATS_F_TOO_FEW (SciPy: NaN).
 *                       All d == 0 -> t = 0, p = 1, STATS_F_NO_DIFF (SciPy: NaN).
 *                       d constant != 0 -> t = +-inf, p = 0 or 1 by side, STATS_F_ZERO_VAR (SciPy: same).
 *                       effect = Cohen's d_z = mean(d) / sd(d) (0 with NO_DIFF, +-inf with ZERO_VAR).
 *   stats_wilcoxon      scipy.stats.wilcoxon(a, b, zero_method, correction, alternative, method).
 *                       Ranks of |d| (average ranks for ties); zero differences dropped ('wilcox'),
 *                       ranked then dropped ('pratt'), or split between the two sums ('zsplit').
 *                       stat = min(R+, R-) two-sided, R+ one-sided (SciPy's statistic).
 *                       EXACT: the exact null distribution of R+ (all 2^n sign patterns); with zero
 *                       differences SciPy switches to APPROX, and so do we (STATS_F_ZEROS). With
 *                       tied |d| SciPy 1.10 still uses the exact table with R+ truncated to an
 *                       integer; EXACT reproduces that and sets STATS_F_TIES.
 *                       APPROX: normal approximation, mean n(n+1)/4, variance n(n+1)(2n+1)/24 minus
 *                       the tie correction sum(t^3 - t)/48 (and Cureton's adjustment for 'pratt'),
 *                       optional continuity correction of 0.5; z is reported.
 *                       AUTO: EXACT when n <= 50 and there are neither zeros nor ties, APPROX
 *                       otherwise. (SciPy 1.10's 'auto' would also use the exact table when there
 *                       are ties; ours does not, see the note above.)
 *                       EXACT is available up to n = 1000; beyond, APPROX is used (flag says so).
 *                       Degenerate: n == 0 -> p NaN, STATS_F_TOO_FEW. All d == 0 with 'wilcox' or
 *                       'pratt' -> stat 0, p = 1, STATS_F_NO_DIFF (SciPy raises ValueError); with
 *                       'zsplit' the formula applies (SciPy's result). n == 1 follows SciPy (p = 1).
 *                       effect = matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-)
 *                       (Kerby 2014), with R+/R- as used by the test; 0 when both are 0.
 *   stats_holm          Holm-Bonferroni adjusted p-values over one family (e.g. all comparisons of
 *                       a results table): sort ascending, adj_(i) = max_{j <= i} min(1, (m-j+1) p_(j)).
 *                       Monotone in p; NaN p-values stay NaN and do not count in m.
 *   stats_summarize     mean, sd (ddof 1), standard error and the t interval mean +- t_{(1+level)/2,
 *                       n-1} se (scipy.stats.t.interval with scale = sem) of a sample, e.g. a metric
 *                       over seeds. n == 1: sd, se and interval NaN with STATS_F_TOO_FEW; sd == 0:
 *                       interval [mean, mean] with STATS_F_ZERO_VAR (SciPy: NaN).
 */
#ifndef DM_STATS_H
#define DM_STATS_H

#include "stats_core.h"
#include "stats_resample.h"

typedef enum { STATS_TEST_WILCOXON = 0, STATS_TEST_TTEST = 1, STATS_TEST_RANDOMIZATION = 2 } stats_test;
typedef enum { STATS_ZERO_WILCOX = 0, STATS_ZERO_PRATT = 1, STATS_ZERO_ZSPLIT = 2 } stats_zero;

int stats_ttest_rel(const double *a, const double *b, size_t n, stats_alt alt, stats_result *r);
int stats_wilcoxon(const double *a, const double *b, size_t n, stats_zero zero_method, int continuity,
                   stats_alt alt, stats_method method, stats_result *r);
/* adj (m) may alias p. */
int stats_holm(const double *p, size_t m, double *adj);

typedef struct {
    size_t n;
    double mean, sd, se; /* sd with ddof 1; se = sd / sqrt(n) */
    double lo, hi;       /* t interval at the requested level */
    int flags;
} stats_summary;

int stats_summarize(const double *x, size_t n, double level, stats_summary *s);

/* ---- one cell of a comparison table ----------------------------------------------------------- */

typedef struct {
    stats_test test;
    stats_alt alt;
    stats_zero zero_method;   /* Wilcoxon */
    int continuity;           /* Wilcoxon normal approximation */
    stats_method method;      /* Wilcoxon: auto/exact/approx; randomisation: auto/exact/Monte Carlo */
    size_t permutations;      /* randomisation */
    size_t resamples;         /* bootstrap; 0 = no interval */
    double level;             /* interval level, e.g. 0.95 */
    stats_ci_method ci_method;
    int hedges;               /* report Hedges' g instead of d_z as the standardised effect */
    uint64_t seed;            /* randomisation and bootstrap draws */
} stats_opts;

/* Defaults: Wilcoxon, two-sided, 'wilcox', no continuity, auto, 10000 permutations, 10000
 * resamples, BCa 95%, d_z, seed 0. */
void stats_opts_default(stats_opts *o);

typedef struct {
    size_t n;
    double mean_a, mean_b, mean_diff;
    stats_result test;  /* the chosen test */
    stats_ci ci;        /* bootstrap interval of mean(d) (NaN when resamples == 0) */
    double d;           /* d_z, or Hedges' g with opts.hedges */
    double rank_biserial;
} stats_comparison;

/* Runs the configured test, the effect sizes and the interval for one pair of systems. */
int stats_compare(const double *a, const double *b, size_t n, const stats_opts *o, stats_comparison *c);

/* Config names <-> enums ("two-sided|greater|less", "wilcoxon|ttest|randomization",
 * "wilcox|pratt|zsplit", "auto|exact|approx", "bca|percentile"). Unknown names: DM_ECONFIG. */
int stats_alt_parse(const char *s, stats_alt *out);
int stats_test_parse(const char *s, stats_test *out);
int stats_zero_parse(const char *s, stats_zero *out);
int stats_method_parse(const char *s, stats_method *out);
int stats_ci_parse(const char *s, stats_ci_method *out);
const char *stats_test_name(stats_test t);
const char *stats_alt_name(stats_alt a);

#endif
