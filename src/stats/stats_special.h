/* stats_special.h: the special functions behind the significance tests.
 *
 * Pure functions of doubles, no state, no allocation. Accuracy (checked against scipy.special in
 * tests/unit/test_stats.c): about 1e-15 relative for the normal functions, 1e-12 or better for the
 * incomplete beta and Student t over the parameter ranges the tests use (df up to 1e6).
 *
 *   stats_norm_cdf(x)      Phi(x) = erfc(-x / sqrt 2) / 2                      (scipy.special.ndtr)
 *   stats_norm_sf(x)       1 - Phi(x) without cancellation
 *   stats_norm_ppf(p)      Phi^-1(p), Wichura's AS 241 (PPND16); -inf at 0, +inf at 1, NaN outside
 *                                                                              (scipy.special.ndtri)
 *   stats_lbeta(a, b)      log B(a, b), with Stirling corrections for large arguments (as R's lbeta)
 *   stats_betainc(a, b, x) regularised incomplete beta I_x(a, b), continued fraction (modified Lentz)
 *                                                                              (scipy.special.betainc)
 *   stats_t_cdf(t, df)     Student t CDF, P(T <= t) = I_{df/(df+t^2)}(df/2, 1/2) / 2 for t < 0
 *                                                                              (scipy.special.stdtr)
 *   stats_t_sf(t, df)      P(T > t)
 *   stats_t_ppf(p, df)     Student t quantile: safeguarded Newton on the tail  (scipy.stats.t.ppf)
 * df may be fractional; df = +inf gives the normal distribution. Invalid arguments give NaN.
 */
#ifndef DM_STATS_SPECIAL_H
#define DM_STATS_SPECIAL_H

double stats_norm_cdf(double x);
double stats_norm_sf(double x);
double stats_norm_ppf(double p);
double stats_lbeta(double a, double b);
double stats_betainc(double a, double b, double x);
double stats_t_cdf(double t, double df);
double stats_t_sf(double t, double df);
double stats_t_ppf(double p, double df);

#endif
