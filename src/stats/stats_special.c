/* stats_special.c: normal, incomplete beta and Student t functions, see stats_special.h.
 *
 * References: Wichura, "Algorithm AS 241: the percentage points of the normal distribution",
 * Applied Statistics 37 (1988) (PPND16, about 1e-16 relative); Press et al., Numerical Recipes
 * 6.4 (continued fraction of I_x(a,b), evaluated with the modified Lentz method); R's nmath lbeta
 * and lgammacor (Stirling series for log B(a,b) with large arguments, which keeps the t tail
 * accurate at large df where lgamma differences cancel).
 */
#include "stats_special.h"

#include <float.h>
#include <math.h>

#define LN_SQRT_2PI 0.918938533204672741780329736406

double stats_norm_cdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }

double stats_norm_sf(double x) { return 0.5 * erfc(x * M_SQRT1_2); }

static double poly7(const double *c, double x)
{
    double y = c[7];
    for (int i = 6; i >= 0; i--) y = y * x + c[i];
    return y;
}

double stats_norm_ppf(double p)
{
    static const double a[8] = {3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
                                1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
                                3.3430575583588128105e+4, 2.5090809287301226727e+3};
    static const double b[8] = {1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2,
                                5.3941960214247511077e+3, 2.1213794301586595867e+4, 3.9307895800092710610e+4,
                                2.8729085735721942674e+4, 5.2264952788528545610e+3};
    static const double c[8] = {1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
                                3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
                                2.27238449892691845833e-2, 7.74545014278341407640e-4};
    static const double d[8] = {1.0, 2.05319162663775882187e0, 1.67638483018380384940e0,
                                6.89767334985100004550e-1, 1.48103976427480074590e-1, 1.51986665636164571966e-2,
                                5.47593808499534494600e-4, 1.05075007164441684324e-9};
    static const double e[8] = {6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
                                2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
                                2.71155556874348757815e-5, 2.01033439929228813265e-7};
    static const double f[8] = {1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1,
                                1.48753612908506148525e-2, 7.86869131145613259100e-4, 1.84631831751005468180e-5,
                                1.42151175831644588870e-7, 2.04426310338993978564e-15};
    if (isnan(p) || p < 0 || p > 1) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    double q = p - 0.5;
    if (fabs(q) <= 0.425) {
        double r = 0.180625 - q * q;
        return q * poly7(a, r) / poly7(b, r);
    }
    double r = q < 0 ? p : 1.0 - p;
    r = sqrt(-log(r));
    double x;
    if (r <= 5.0) {
        r -= 1.6;
        x = poly7(c, r) / poly7(d, r);
    } else {
        r -= 5.0;
        x = poly7(e, r) / poly7(f, r);
    }
    return q < 0 ? -x : x;
}

/* log Gamma(x) - Stirling's approximation, for x >= 10 */
static double lgammacor(double x)
{
    double x2 = 1.0 / (x * x);
    /* Bernoulli series: 1/12x - 1/360x^3 + 1/1260x^5 - 1/1680x^7 + 1/1188x^9 - 691/360360x^11
     * + 1/156x^13 - 3617/122400x^15 */
    double s = -3617.0 / 122400.0;
    s = s * x2 + 1.0 / 156.0;
    s = s * x2 - 691.0 / 360360.0;
    s = s * x2 + 1.0 / 1188.0;
    s = s * x2 - 1.0 / 1680.0;
    s = s * x2 + 1.0 / 1260.0;
    s = s * x2 - 1.0 / 360.0;
    s = s * x2 + 1.0 / 12.0;
    return s / x;
}

double stats_lbeta(double a, double b)
{
    if (isnan(a) || isnan(b)) return NAN;
    double p = a < b ? a : b, q = a < b ? b : a;
    if (p < 0) return NAN;
    if (p == 0) return INFINITY;
    if (isinf(q)) return -INFINITY;
    if (p >= 10) {
        double corr = lgammacor(p) + lgammacor(q) - lgammacor(p + q);
        return -0.5 * log(q) + LN_SQRT_2PI + corr + (p - 0.5) * log(p / (p + q)) + q * log1p(-p / (p + q));
    }
    if (q >= 10) {
        double corr = lgammacor(q) - lgammacor(p + q);
        return lgamma(p) + corr + p - p * log(p + q) + (q - 0.5) * log1p(-p / (p + q));
    }
    return lgamma(p) + lgamma(q) - lgamma(p + q);
}

/* Continued fraction for I_x(a,b) (Numerical Recipes betacf), modified Lentz, in long double:
 * near x ~ a/(a+b) with large a (the t tail at large df) the early terms nearly cancel and the
 * result is sensitive to the last bits of x, so x, 1 - x and the recurrence carry extra precision. */
static long double betacf(long double a, long double b, long double x)
{
    const long double tiny = 1e-300L, eps = 4 * LDBL_EPSILON;
    long double qab = a + b, qap = a + 1.0L, qam = a - 1.0L;
    long double c = 1.0L, d = 1.0L - qab * x / qap;
    if (fabsl(d) < tiny) d = tiny;
    d = 1.0L / d;
    long double h = d;
    for (int m = 1; m <= 200000; m++) {
        long double m2 = 2.0L * m;
        long double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0L + aa * d;
        if (fabsl(d) < tiny) d = tiny;
        c = 1.0L + aa / c;
        if (fabsl(c) < tiny) c = tiny;
        d = 1.0L / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0L + aa * d;
        if (fabsl(d) < tiny) d = tiny;
        c = 1.0L + aa / c;
        if (fabsl(c) < tiny) c = tiny;
        d = 1.0L / d;
        long double del = d * c;
        h *= del;
        if (fabsl(del - 1.0L) < eps) break;
    }
    return h;
}

/* I_x(a,b) given both x and y = 1 - x (so callers can pass an accurate complement) */
static double betainc_xy(double a, double b, long double x, long double y)
{
    if (x <= 0) return 0.0;
    if (y <= 0) return 1.0;
    long double lx = x > 0.5L ? log1pl(-y) : logl(x);
    long double ly = y > 0.5L ? log1pl(-x) : logl(y);
    long double lbt = (long double)a * lx + (long double)b * ly - (long double)stats_lbeta(a, b);
    if (x < (a + 1.0L) / (a + b + 2.0L)) return (double)(expl(lbt) * betacf(a, b, x) / a);
    return (double)(1.0L - expl(lbt) * betacf(b, a, y) / b);
}

double stats_betainc(double a, double b, double x)
{
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0 || b <= 0 || x < 0 || x > 1) return NAN;
    return betainc_xy(a, b, x, 1.0L - (long double)x);
}

double stats_t_cdf(double t, double df)
{
    if (isnan(t) || isnan(df) || df <= 0) return NAN;
    if (isinf(df)) return stats_norm_cdf(t);
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    long double t2 = (long double)t * t;
    long double x = df / (df + t2), y = t2 / (df + t2);
    double tail = 0.5 * betainc_xy(0.5 * df, 0.5, x, y); /* P(T > |t|) */
    return t < 0 ? tail : 1.0 - tail;
}

double stats_t_sf(double t, double df) { return stats_t_cdf(-t, df); }

static double t_pdf(double t, double df)
{
    return exp(-stats_lbeta(0.5 * df, 0.5) - 0.5 * log(df) - 0.5 * (df + 1.0) * log1p(t * t / df));
}

double stats_t_ppf(double p, double df)
{
    if (isnan(p) || isnan(df) || p < 0 || p > 1 || df <= 0) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    if (p == 0.5) return 0.0;
    if (isinf(df)) return stats_norm_ppf(p);
    double q = p < 0.5 ? p : 1.0 - p; /* upper tail of |t| */
    double t;
    if (df == 1.0) {
        t = 1.0 / tan(M_PI * q); /* Cauchy: sf(t) = atan(1/t) / pi */
    } else if (df == 2.0) {
        t = (1.0 - 2.0 * q) / sqrt(2.0 * q * (1.0 - q));
    } else {
        /* Cornish-Fisher start, then Newton on sf(t) = q safeguarded by a bracket */
        double z = -stats_norm_ppf(q), z2 = z * z;
        double g1 = (z2 + 1.0) * z / 4.0, g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
        double g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
        t = z + g1 / df + g2 / (df * df) + g3 / (df * df * df);
        if (!(t > 0) || !isfinite(t)) t = 1.0;
        double lo = 0.0, hi = t;
        while (stats_t_sf(hi, df) > q) {
            lo = hi;
            hi *= 2.0;
            if (!isfinite(hi)) return p < 0.5 ? -INFINITY : INFINITY;
        }
        for (int it = 0; it < 300; it++) {
            double s = stats_t_sf(t, df);
            if (s > q) lo = t;
            else hi = t;
            double pdf = t_pdf(t, df);
            double tn = pdf > 0 ? t + (s - q) / pdf : 0.5 * (lo + hi);
            if (!(tn > lo && tn < hi)) tn = 0.5 * (lo + hi);
            if (fabs(tn - t) <= 4e-16 * fabs(t) || hi - lo <= 4e-16 * hi) {
                t = tn;
                break;
            }
            t = tn;
        }
    }
    return p < 0.5 ? -t : t;
}
