/* adapter_latents.c: RMS norm, balancing and recent taste of the base latents (see
 * adapter_latents.h). */
#include "adapter_latents.h"

#include <math.h>
#include <string.h>

double adapter_latents_rms(const float *x, size_t n, size_t d)
{
    double s = 0;
    for (size_t k = 0; k < n * d; k++) s += (double)x[k] * x[k];
    return n ? sqrt(s / (double)n) : 0.0;
}

double adapter_latents_balance(double rms_z, double rms_h)
{
    return rms_z > 0 && rms_h > 0 ? sqrt(rms_z / rms_h) : 1.0;
}

void adapter_latents_scale(const float *x, size_t n, double c, float *out)
{
    for (size_t k = 0; k < n; k++) out[k] = (float)(x[k] * c);
}

void adapter_latents_unscale(const float *x, size_t n, double c, float *out)
{
    for (size_t k = 0; k < n; k++) out[k] = (float)(x[k] / c);
}

double adapter_latents_tau(const dm_dataset *d, int64_t w, double tau_ms)
{
    const int64_t *ws = d->window_start;
    /* the window before w; before window 0, one as long as window 0 */
    double tau = tau_ms > 0 ? tau_ms : (double)(ws[w] - (w ? ws[w - 1] : ws[0] - (ws[1] - ws[0])));
    return tau > 0 ? tau : 1.0;
}

void adapter_latents_taste(const dm_dataset *d, int64_t w, double tau, const float *z, size_t d_z,
                           float *out, size_t ld)
{
    int64_t tw = d->window_start[w];
    for (size_t u = 0; u < d->n_users; u++) {
        float *dst = out + u * ld;
        memset(dst, 0, d_z * sizeof *dst);
        double wsum = 0;
        /* time order: the interactions before w are a prefix of the user's */
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1] && d->window[j] < (int32_t)w; j++) {
            double a = exp(-(double)(tw - d->time[j]) / tau);
            if (a < 1e-6) continue;
            const float *src = z + (size_t)d->item[j] * d_z;
            for (size_t q = 0; q < d_z; q++) dst[q] += (float)(a * src[q]);
            wsum += a;
        }
        if (wsum > 0)
            for (size_t q = 0; q < d_z; q++) dst[q] /= (float)wsum;
    }
}
