/* align_naive.c: the naive reference kernels of the multimodal aligner: the same signatures and
 * equations as align_kernels.c written as plain serial loops with double accumulators, no BLAS, no
 * OpenMP. They are the yardstick the optimised kernels are tested against (tests/unit/test_align.c)
 * and can run a whole model (align_config.naive = 1).
 */
#include "align_kernels.h"

#include <math.h>
#include <string.h>

static void linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                           int IC, int OC)
{
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += (double)inp[(size_t)r * IC + i] * w[(size_t)o * IC + i];
            out[(size_t)r * OC + o] = (float)s;
        }
}

static void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, int N, int IC, int OC)
{
    if (dinp)
        for (int r = 0; r < N; r++)
            for (int i = 0; i < IC; i++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++)
                    s += (double)dout[(size_t)r * OC + o] * w[(size_t)o * IC + i];
                dinp[(size_t)r * IC + i] += (float)s;
            }
    if (dw)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++) {
                double s = 0.0;
                for (int r = 0; r < N; r++)
                    s += (double)dout[(size_t)r * OC + o] * inp[(size_t)r * IC + i];
                dw[(size_t)o * IC + i] += (float)s;
            }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int r = 0; r < N; r++) s += dout[(size_t)r * OC + o];
            db[o] += (float)s;
        }
}

static double nce(float *dahat, float *dbhat, const float *ahat, const int *pos,
                  const int64_t *aitem, int na, const float *bhat, const int64_t *bitem, int nb,
                  int d, float inv_tau, float gscale, float *logits, size_t chunk, double *rowloss)
{
    (void)logits;
    (void)chunk;
    (void)rowloss;
    double total = 0.0;
    for (int r = 0; r < na; r++) {
        const float *a = ahat + (size_t)r * d;
        const int p = pos[r];
        /* candidates: every j except other rows of the same item */
        double mx = -INFINITY;
        for (int j = 0; j < nb; j++) {
            if (aitem && bitem && bitem[j] == aitem[r] && j != p) continue;
            double s = 0.0;
            for (int c = 0; c < d; c++) s += (double)a[c] * bhat[(size_t)j * d + c];
            s *= inv_tau;
            if (s > mx) mx = s;
        }
        double z = 0.0, sp = 0.0;
        for (int j = 0; j < nb; j++) {
            if (aitem && bitem && bitem[j] == aitem[r] && j != p) continue;
            double s = 0.0;
            for (int c = 0; c < d; c++) s += (double)a[c] * bhat[(size_t)j * d + c];
            s *= inv_tau;
            z += exp(s - mx);
            if (j == p) sp = s;
        }
        const double lse = mx + log(z);
        total += lse - sp;
        if (!dahat) continue;
        for (int c = 0; c < d; c++) dahat[(size_t)r * d + c] = 0.0f;
        for (int j = 0; j < nb; j++) {
            if (aitem && bitem && bitem[j] == aitem[r] && j != p) continue;
            double s = 0.0;
            for (int c = 0; c < d; c++) s += (double)a[c] * bhat[(size_t)j * d + c];
            double g = exp(s * inv_tau - lse) - (j == p ? 1.0 : 0.0);
            g *= (double)gscale * inv_tau;
            for (int c = 0; c < d; c++) {
                dahat[(size_t)r * d + c] += (float)(g * bhat[(size_t)j * d + c]);
                dbhat[(size_t)j * d + c] += (float)(g * a[c]);
            }
        }
    }
    return total;
}

const align_kernels align_kernels_naive = {linear_forward, linear_backward, nce};
