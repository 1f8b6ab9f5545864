/* stats_core.h: what every significance test of the stats module shares: the alternatives, methods
 * and result flags, the result and interval records, NumPy's pairwise sum, paired differences and
 * the standardised effect sizes. stats_resample.h and stats.h build on it; it uses neither.
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
 *   stats_cohen_dz      mean(d) / sd(d) (ddof 1); stats_hedges_g multiplies by the exact small-sample
 *                       correction J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n - 1
 *                       (NaN for n < 3).
 *
 * Sums follow NumPy's pairwise summation so that statistics equal SciPy's to the last bit, which
 * matters where SciPy compares statistics for equality (permutation counts, BCa's z0).
 */
#ifndef DM_STATS_CORE_H
#define DM_STATS_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { STATS_TWO_SIDED = 0, STATS_GREATER = 1, STATS_LESS = 2 } stats_alt;
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

/* NumPy's pairwise summation (numpy/core/src/umath/loops_utils.h), so means equal np.mean's. */
double stats_sum(const double *x, size_t n);

/* Sum of squared deviations of x (n) from m, pairwise (np.mean((x - m)**2) * n); tmp (n) is
 * scratch. */
double stats_sum_sq_dev(const double *x, size_t n, double m, double *tmp);

/* d = a - b (or a when b == NULL) in memory the caller frees; a non-finite difference is
 * DM_EINPUT naming its index. */
int stats_diffs(const double *a, const double *b, size_t n, double **d);

double stats_cohen_dz(const double *a, const double *b, size_t n);
double stats_hedges_g(const double *a, const double *b, size_t n);

#endif
