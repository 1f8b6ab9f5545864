/* stats.h: paired significance tests, confidence intervals, multiple-comparison correction and
 * effect sizes for comparing two systems.
 *
 * Data. Every test takes paired samples a[i], b[i] (i < n) and works on d[i] = a[i] - b[i]; pass
 * b = NULL to give the differences directly (like scipy's x, y=None). Across users within a seed,
 * a and b are the two systems' per-user metric vectors (same users, same order); across seeds,
 * they are the per-seed means. A NaN in the input is an error (DM_EINPUT naming the index); every
 * other input, however degenerate, gives a defined result described by the flags below. No
 * function here keeps state; those that need scratch allocate it and free it before returning.
 *
 * Alternatives (scipy's `alternative`): STATS_TWO_SIDED; STATS_GREATER = the differences are
 * shifted above zero (a better than b); STATS_LESS = below.
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
 *   stats_randomization paired randomisation (sign-flip permutation) test of mean(d), like
 *                       scipy.stats.permutation_test((a, b), mean of a - b, permutation_type=
 *                       'samples'). Exact over all 2^n sign vectors when 2^n <= permutations (SciPy's
 *                       rule) or when forced; otherwise `permutations` random sign vectors, vector k
 *                       drawn from dm_rng_key(seed, k, .) so the draws do not depend on the thread
 *                       count (or given by the caller as a (permutations, n) matrix of +1/-1, so a
 *                       test can feed NumPy's draws). With c_ge = #{T* >= T - g}, c_le = #{T* <= T + g},
 *                       g = max(1e-14, 1e-14 |T|) (SciPy's tolerance for equal statistics):
 *                         Monte Carlo: p_greater = (c_ge + 1) / (P + 1), p_less = (c_le + 1) / (P + 1)
 *                         exact:       p_greater = c_ge / 2^n,          p_less = c_le / 2^n
 *                         two-sided:   min(1, 2 min(p_greater, p_less))
 *                       stat = mean(d); effect = d_z. n == 0 -> p NaN, STATS_F_TOO_FEW.
 *   stats_bootstrap_ci  scipy.stats.bootstrap((d,), np.mean, confidence_level, method=
 *                       'percentile' | 'BCa'): `resamples` resamples of d with replacement, resample
 *                       k drawn from dm_rng_key(seed, k, .) or given as a (resamples, n) index matrix
 *                       (SciPy's own draws in the test); percentiles use
 *                       NumPy's default linear interpolation; BCa uses the jackknife acceleration
 *                       and the bias correction z0 = Phi^-1((#{T* < T} + #{T* <= T}) / 2B).
 *                       Degenerate: n < 2 -> NaN interval, STATS_F_TOO_FEW (SciPy raises). When the
 *                       BCa levels are undefined (SciPy returns NaN: all d equal, or the bootstrap
 *                       distribution entirely on one side of T with a != 0) the percentile interval
 *                       is returned with STATS_F_DEGENERATE. All d equal also sets STATS_F_ZERO_VAR.
 *   stats_holm          Holm-Bonferroni adjusted p-values over one family (e.g. all comparisons of
 *                       a results table): sort ascending, adj_(i) = max_{j <= i} min(1, (m-j+1) p_(j)).
 *                       Monotone in p; NaN p-values stay NaN and do not count in m.
 *   stats_cohen_dz      mean(d) / sd(d) (ddof 1); stats_hedges_g multiplies by the exact small-sample
 *                       correction J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n - 1
 *                       (NaN for n < 3).
 *   stats_summarize     mean, sd (ddof 1), standard error and the t interval mean +- t_{(1+level)/2,
 *                       n-1} se (scipy.stats.t.interval with scale = sem) of a sample, e.g. a metric
 *                       over seeds. n == 1: sd, se and interval NaN with STATS_F_TOO_FEW; sd == 0:
 *                       interval [mean, mean] with STATS_F_ZERO_VAR (SciPy: NaN).
 *
 * Sums follow NumPy's pairwise summation so that statistics equal SciPy's to the last bit, which
 * matters where SciPy compares statistics for equality (permutation counts, BCa's z0).
 */
#ifndef DM_STATS_H
#define DM_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { STATS_TWO_SIDED = 0, STATS_GREATER = 1, STATS_LESS = 2 } stats_alt;
typedef enum { STATS_TEST_WILCOXON = 0, STATS_TEST_TTEST = 1, STATS_TEST_RANDOMIZATION = 2 } stats_test;
typedef enum { STATS_ZERO_WILCOX = 0, STATS_ZERO_PRATT = 1, STATS_ZERO_ZSPLIT = 2 } stats_zero;
typedef enum { STATS_METHOD_AUTO = 0, STATS_METHOD_EXACT = 1, STATS_METHOD_APPROX = 2 } stats_method;
typedef enum { STATS_CI_BCA = 0, STATS_CI_PERCENTILE = 1 } stats_ci_method;

enum {
    STATS_F_EXACT = 1 << 0,      /* p from an exact null distribution */
    STATS_F_APPROX = 1 << 1,     /* p from the normal approximation (Wilcoxon) or Monte Carlo */
    STATS_F_TOO_FEW = 1 << 2,    /* n too small: p / interval NaN */
    STATS_F_NO_DIFF = 1 << 3,    /* every difference is zero: p = 1 by definition */
    STATS_F_ZERO_VAR = 1 << 4,   /* differences constant and non-zero */
    STATS_F_TIES = 1 << 5,       /* tied |differences| */
    STATS_F_ZEROS = 1 << 6,      /* some differences are zero */
    STATS_F_DEGENERATE = 1 << 7  /* BCa undefined, percentile interval returned */
};

typedef struct {
    double stat;     /* t; Wilcoxon T; randomisation: mean(d) */
    double p;        /* p-value for the requested alternative */
    double z;        /* Wilcoxon normal approximation z (NaN otherwise) */
    double df;       /* t-test degrees of freedom (NaN otherwise) */
    double estimate; /* mean(d) */
    double effect;   /* d_z (t-test, randomisation) or rank-biserial r (Wilcoxon) */
    size_t n;        /* pairs given */
    size_t n_used;   /* pairs entering the statistic (Wilcoxon 'wilcox' drops zeros) */
    int flags;       /* STATS_F_* */
} stats_result;

typedef struct {
    double lo, hi;   /* interval for mean(d) */
    double estimate; /* mean(d) */
    double se;       /* standard deviation of the bootstrap distribution (ddof 1) */
    int flags;
} stats_ci;

int stats_ttest_rel(const double *a, const double *b, size_t n, stats_alt alt, stats_result *r);
int stats_wilcoxon(const double *a, const double *b, size_t n, stats_zero zero_method, int continuity,
                   stats_alt alt, stats_method method, stats_result *r);
/* signs: NULL or (permutations, n) of +1/-1. exact: STATS_METHOD_AUTO (2^n <= permutations),
 * EXACT (forced; n <= 30) or APPROX (always Monte Carlo). */
int stats_randomization(const double *a, const double *b, size_t n, stats_alt alt, size_t permutations,
                        uint64_t seed, const int8_t *signs, stats_method exact, stats_result *r);
/* idx: NULL or (resamples, n) indices in [0, n). level in (0, 1). */
int stats_bootstrap_ci(const double *a, const double *b, size_t n, double level, stats_ci_method method,
                       size_t resamples, uint64_t seed, const int64_t *idx, stats_ci *ci);
/* adj (m) may alias p. */
int stats_holm(const double *p, size_t m, double *adj);

double stats_cohen_dz(const double *a, const double *b, size_t n);
double stats_hedges_g(const double *a, const double *b, size_t n);

typedef struct {
    size_t n;
    double mean, sd, se; /* sd with ddof 1; se = sd / sqrt(n) */
    double lo, hi;       /* t interval at the requested level */
    int flags;
} stats_summary;

int stats_summarize(const double *x, size_t n, double level, stats_summary *s);

/* d = a - b (or a when b == NULL) in memory the caller frees; a non-finite difference is
 * DM_EINPUT naming its index. */
int stats_diffs(const double *a, const double *b, size_t n, double **d);

/* NumPy's pairwise summation (numpy/core/src/umath/loops_utils.h), so means equal np.mean's. */
double stats_sum(const double *x, size_t n);

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
