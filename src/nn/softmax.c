/* softmax.c: see softmax.h. */
#include "softmax.h"

#include <math.h>

void nn_exp(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = nn_expf(inp[i]);
}

/* max of z (exact in any order) */
static inline __attribute__((always_inline)) float row_max(const float *z, int n)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    return mx;
}

/* z := exp(z - mx); returns the sum */
static inline __attribute__((always_inline)) float exp_shift(float *z, int n, float mx)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) {
        z[i] = nn_expf(z[i] - mx);
        s += z[i];
    }
    return s;
}

void nn_softmax(float *z, int n)
{
    float s = exp_shift(z, n, row_max(z, n));
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++) z[i] *= inv;
}

float nn_logsumexp(const float *z, int n)
{
    float mx = row_max(z, n), s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += nn_expf(z[i] - mx);
    return mx + logf(s);
}

float nn_softmax_xent(float *z, int n, int t, float scale)
{
    float mx = row_max(z, n), zt = z[t];
    float s = exp_shift(z, n, mx);
    float l = logf(s) + mx - zt; /* lse - z_t = log s + mx - z_t */
    float g = scale / s;
#pragma omp simd
    for (int i = 0; i < n; i++) z[i] *= g;
    z[t] -= scale;
    return l;
}

void nn_softmax_xent_backward(float *z, int n, float lse, int t, float scale)
{
    for (int i = 0; i < n; i++) z[i] = nn_expf(z[i] - lse) * scale;
    z[t] -= scale;
}
