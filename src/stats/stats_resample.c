/* stats_resample.c: the paired randomisation (sign-flip) test and bootstrap intervals for the mean
 * difference, following scipy.stats.permutation_test and scipy.stats.bootstrap of SciPy 1.10
 * (scipy/stats/_resampling.py), see stats_resample.h.
 *
 * BCa (Efron & Tibshirani 1993, 14.3): z0 = Phi^-1(share of bootstrap means below the estimate,
 * ties counted half), acceleration a = sum U^3 / (6 (sum U^2)^(3/2)) with jackknife influence
 * U_i = (n-1)(mean of the leave-one-out means - leave-one-out mean i), which for the mean is
 * exactly d_i - mean(d); the interval is the bootstrap percentiles at
 * Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha))) and the same with z_{1-alpha}.
 */
#include "stats_resample.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../core/sort.h"
#include "stats_special.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_MAX_N 24

/* A thread's scratch row of n doubles, from inside a parallel region; NULL when out of memory, with
 * *oom set for the caller to report once the region ends. */
static double *thread_row(size_t n, int *oom)
{
    double *row = malloc(n * sizeof *row);
    if (!row) {
#pragma omp atomic write
        *oom = 1;
    }
    return row;
}

int stats_randomization(const double *a, const double *b, size_t n, stats_alt alt, size_t permutations,
                        uint64_t seed, const int8_t *signs, stats_method exact, stats_result *r)
{
    r->stat = r->p = r->z = r->df = r->estimate = r->effect = NAN;
    r->n = r->n_used = n;
    r->flags = 0;
    if (n == 0) {
        r->flags |= STATS_F_TOO_FEW;
        return DM_OK;
    }
    int use_exact = exact == STATS_METHOD_EXACT ||
                    (exact == STATS_METHOD_AUTO && n < 63 && ((uint64_t)1 << n) <= (uint64_t)permutations);
    if (use_exact && n > EXACT_MAX_N)
        return DM_ERR(DM_EINPUT, "randomisation: exact enumeration of 2^%zu sign vectors is refused (at most n = %d)", n,
                      EXACT_MAX_N);
    if (!use_exact && permutations == 0) return DM_ERR(DM_EINPUT, "randomisation: zero permutations requested");
    if (signs && !use_exact)
        for (size_t k = 0; k < permutations * n; k++)
            if (signs[k] != 1 && signs[k] != -1)
                return DM_ERR(DM_EINPUT, "randomisation: sign (%zu, %zu) is %d, not +1 or -1", k / n, k % n,
                              (int)signs[k]);
    double *d;
    DM_CALL(stats_diffs(a, b, n, &d));
    double obs = stats_sum(d, n) / (double)n;
    r->stat = r->estimate = obs;
    r->effect = stats_cohen_dz(d, NULL, n);
    /* SciPy's tolerance for statistics equal in theory but not in floating point */
    double gamma = fabs(1e-14 * obs) > 1e-14 ? fabs(1e-14 * obs) : 1e-14;
    uint64_t c_ge = 0, c_le = 0, total = use_exact ? (uint64_t)1 << n : (uint64_t)permutations;
    int oom = 0;
#pragma omp parallel reduction(+ : c_ge, c_le)
    {
        double *row = thread_row(n, &oom);
#pragma omp for schedule(static)
        for (uint64_t k = 0; k < total; k++) {
            if (!row) continue;
            if (use_exact) { /* bit i of k flips pair i */
                for (size_t i = 0; i < n; i++) row[i] = (k >> i) & 1 ? -d[i] : d[i];
            } else if (signs) {
                const int8_t *sk = signs + k * n;
                for (size_t i = 0; i < n; i++) row[i] = sk[i] < 0 ? -d[i] : d[i];
            } else { /* one generator per permutation: the same draws for any thread count */
                dm_rng g;
                dm_rng_seed(&g, dm_rng_key(seed, k, 0x5167));
                uint64_t bits = 0;
                for (size_t i = 0; i < n; i++) {
                    if (i % 64 == 0) bits = dm_rng_u64(&g);
                    row[i] = bits & 1 ? -d[i] : d[i];
                    bits >>= 1;
                }
            }
            double t = stats_sum(row, n) / (double)n;
            c_ge += t >= obs - gamma;
            c_le += t <= obs + gamma;
        }
        free(row);
    }
    if (oom) {
        free(d);
        return DM_ERR(DM_ENOMEM, "randomisation: out of memory (%zu values per thread)", n);
    }
    double p_ge, p_le;
    if (use_exact) {
        p_ge = (double)c_ge / (double)total;
        p_le = (double)c_le / (double)total;
        r->flags |= STATS_F_EXACT;
    } else {
        p_ge = (double)(c_ge + 1) / (double)(total + 1);
        p_le = (double)(c_le + 1) / (double)(total + 1);
        r->flags |= STATS_F_APPROX;
    }
    if (alt == STATS_GREATER) r->p = p_ge;
    else if (alt == STATS_LESS) r->p = p_le;
    else r->p = 2.0 * (p_ge < p_le ? p_ge : p_le);
    if (r->p > 1) r->p = 1;
    int all_zero = 1;
    for (size_t i = 0; i < n; i++) all_zero &= d[i] == 0;
    if (all_zero) r->flags |= STATS_F_NO_DIFF;
    free(d);
    return DM_OK;
}

/* np.percentile(x, q100) with the default 'linear' method on sorted x (n >= 1) */
static double np_percentile(const double *x, size_t n, double q100)
{
    double q = q100 / 100.0;
    double v = q * (double)(n - 1);
    if (v < 0) return x[0];
    if (v >= (double)(n - 1)) return x[n - 1];
    double fl = floor(v);
    size_t i = (size_t)fl;
    double g = v - fl, lo = x[i], hi = x[i + 1];
    double diff = hi - lo;
    return g >= 0.5 ? hi - diff * (1.0 - g) : lo + diff * g; /* numpy's _lerp */
}

int stats_bootstrap_ci(const double *a, const double *b, size_t n, double level, stats_ci_method method,
                       size_t resamples, uint64_t seed, const int64_t *idx, stats_ci *ci)
{
    ci->lo = ci->hi = ci->estimate = ci->se = NAN;
    ci->flags = 0;
    if (!(level > 0 && level < 1)) return DM_ERR(DM_EINPUT, "bootstrap: interval level %g is outside (0, 1)", level);
    if (resamples == 0) return DM_ERR(DM_EINPUT, "bootstrap: zero resamples requested");
    double *d;
    DM_CALL(stats_diffs(a, b, n, &d));
    if (n >= 1) ci->estimate = stats_sum(d, n) / (double)n;
    if (n < 2) {
        ci->flags |= STATS_F_TOO_FEW;
        free(d);
        return DM_OK;
    }
    if (idx)
        for (size_t k = 0; k < resamples * n; k++)
            if (idx[k] < 0 || (size_t)idx[k] >= n) {
                free(d);
                return DM_ERR(DM_EINPUT, "bootstrap: resample index (%zu, %zu) = %lld is outside [0, %zu)", k / n,
                              k % n, (long long)idx[k], n);
            }
    int rc = DM_OK;
    double *tb = malloc(resamples * sizeof *tb), *sorted = malloc(resamples * sizeof *sorted);
    double *row = malloc(n * sizeof *row);
    if (!tb || !sorted || !row) {
        rc = DM_ERR(DM_ENOMEM, "bootstrap: out of memory (%zu resamples of %zu values)", resamples, n);
        goto done;
    }
    double theta = ci->estimate;
    int oom = 0;
#pragma omp parallel
    {
        double *rw = thread_row(n, &oom);
#pragma omp for schedule(static)
        for (size_t k = 0; k < resamples; k++) {
            if (!rw) continue;
            if (idx) {
                for (size_t i = 0; i < n; i++) rw[i] = d[idx[k * n + i]];
            } else { /* one generator per resample: the same draws for any thread count */
                dm_rng g;
                dm_rng_seed(&g, dm_rng_key(seed, k, 0xb007));
                for (size_t i = 0; i < n; i++) rw[i] = d[dm_rng_below(&g, n)];
            }
            tb[k] = stats_sum(rw, n) / (double)n;
        }
        free(rw);
    }
    if (oom) {
        rc = DM_ERR(DM_ENOMEM, "bootstrap: out of memory (%zu values per thread)", n);
        goto done;
    }
    if (resamples > 1) {
        double m = stats_sum(tb, resamples) / (double)resamples;
        for (size_t k = 0; k < resamples; k++) sorted[k] = (tb[k] - m) * (tb[k] - m);
        ci->se = sqrt(stats_sum(sorted, resamples) / (double)(resamples - 1));
    }
    memcpy(sorted, tb, resamples * sizeof *tb);
    qsort(sorted, resamples, sizeof *sorted, dm_cmp_f64);
    int constant = 1;
    for (size_t i = 0; i < n; i++) constant &= d[i] == d[0];
    if (constant) ci->flags |= STATS_F_ZERO_VAR;

    double alpha = (1.0 - level) / 2.0;
    double q_lo = alpha * 100.0, q_hi = (1.0 - alpha) * 100.0;
    if (method == STATS_CI_BCA) {
        size_t below = 0, at_or_below = 0;
        for (size_t k = 0; k < resamples; k++) {
            below += tb[k] < theta;
            at_or_below += tb[k] <= theta;
        }
        double z0 = stats_norm_ppf((double)(below + at_or_below) / (2.0 * (double)resamples));
        for (size_t i = 0; i < n; i++) row[i] = d[i] - theta; /* U_i */
        double s2 = 0, s3 = 0;
        for (size_t i = 0; i < n; i++) {
            s2 += row[i] * row[i];
            s3 += row[i] * row[i] * row[i];
        }
        double ahat = s3 / (6.0 * pow(s2, 1.5));
        double za = stats_norm_ppf(alpha);
        double num1 = z0 + za, num2 = z0 - za;
        double a1 = stats_norm_cdf(z0 + num1 / (1.0 - ahat * num1));
        double a2 = stats_norm_cdf(z0 + num2 / (1.0 - ahat * num2));
        if (isnan(a1) || isnan(a2)) {
            ci->flags |= STATS_F_DEGENERATE;
        } else {
            q_lo = a1 * 100.0;
            q_hi = a2 * 100.0;
        }
    }
    ci->lo = np_percentile(sorted, resamples, q_lo);
    ci->hi = np_percentile(sorted, resamples, q_hi);
done:
    free(row);
    free(sorted);
    free(tb);
    free(d);
    return rc;
}
