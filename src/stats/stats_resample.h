/* stats_resample.h: the paired randomisation (sign-flip) test and bootstrap intervals for the mean
 * difference (conventions and records in stats_core.h; SciPy 1.10 semantics, checked by
 * tests/reference/gen_stats.py to 1e-6).
 *
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
 */
#ifndef DM_STATS_RESAMPLE_H
#define DM_STATS_RESAMPLE_H

#include "stats_core.h"

/* signs: NULL or (permutations, n) of +1/-1. exact: STATS_METHOD_AUTO (2^n <= permutations),
 * EXACT (forced; n <= 24) or APPROX (always Monte Carlo). */
int stats_randomization(const double *a, const double *b, size_t n, stats_alt alt, size_t permutations,
                        uint64_t seed, const int8_t *signs, stats_method exact, stats_result *r);
/* idx: NULL or (resamples, n) indices in [0, n). level in (0, 1). */
int stats_bootstrap_ci(const double *a, const double *b, size_t n, double level, stats_ci_method method,
                       size_t resamples, uint64_t seed, const int64_t *idx, stats_ci *ci);

#endif
