/* stats_core.c: NumPy's pairwise sum, paired differences and the standardised effect sizes shared
 * by every test of the stats module, see stats_core.h.
 */
#include "stats_core.h"

#include "../core/err.h"

#include <math.h>
#include <stdlib.h>

double stats_sum(const double *x, size_t n)
{
    /* numpy's pairwise_sum: blocks of <= 128 summed with 8 accumulators, halves recursively */
    if (n < 8) {
        double res = 0.0;
        for (size_t i = 0; i < n; i++) res += x[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = x[j];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += x[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += x[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return stats_sum(x, n2) + stats_sum(x + n2, n - n2);
}

/* d = a - b (or a) in fresh memory; a non-finite difference is an error */
int stats_diffs(const double *a, const double *b, size_t n, double **d)
{
    *d = NULL;
    double *x;
    DM_ALLOC(x, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        x[i] = b ? a[i] - b[i] : a[i];
        if (!isfinite(x[i])) {
            double bad = x[i];
            free(x);
            return DM_ERR(DM_EINPUT, "stats: difference %zu is %g (a = %g, b = %g); inputs must be finite", i, bad,
                          a[i], b ? b[i] : 0.0);
        }
    }
    *d = x;
    return DM_OK;
}

double stats_sum_sq_dev(const double *x, size_t n, double m, double *tmp)
{
    for (size_t i = 0; i < n; i++) tmp[i] = (x[i] - m) * (x[i] - m);
    return stats_sum(tmp, n);
}

/* ---- effect sizes ---------------------------------------------------------------------------------- */

double stats_cohen_dz(const double *a, const double *b, size_t n)
{
    if (n < 2) return NAN;
    double *d, *tmp;
    if (stats_diffs(a, b, n, &d)) return NAN;
    tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        free(d);
        return NAN;
    }
    double mean = stats_sum(d, n) / (double)n;
    double sd = sqrt(stats_sum_sq_dev(d, n, mean, tmp) / (double)(n - 1));
    free(tmp);
    free(d);
    if (sd == 0) return mean == 0 ? 0.0 : mean > 0 ? INFINITY : -INFINITY;
    return mean / sd;
}

double stats_hedges_g(const double *a, const double *b, size_t n)
{
    if (n < 3) return NAN;
    double df = (double)n - 1.0;
    double J = exp(lgamma(df / 2.0) - lgamma((df - 1.0) / 2.0)) / sqrt(df / 2.0);
    return J * stats_cohen_dz(a, b, n);
}
