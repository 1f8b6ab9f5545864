/* rope.c: see rope.h. */
#include "rope.h"

#include "linear.h" /* NN_PAR_MIN */

#include <math.h>
#include <stddef.h>

void nn_rope_inv_freq(double *inv_freq, int hd, double theta)
{
    for (int i = 0; i < hd / 2; i++) inv_freq[i] = pow(theta, -2.0 * i / hd);
}

void nn_rope_table(float *cos_t, float *sin_t, int max_pos, int hd, const double *inv_freq)
{
    int h2 = hd / 2;
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < h2; i++) {
            double a = (double)p * inv_freq[i];
            cos_t[(size_t)p * h2 + i] = (float)cos(a);
            sin_t[(size_t)p * h2 + i] = (float)sin(a);
        }
}

/* sgn = 1: rotate by +p f_i; sgn = -1: by -p f_i */
static void rotate(float *x, int ld, const int *pos, int N, int n_heads, int hd, const float *cos_t,
                   const float *sin_t, float sgn)
{
    int h2 = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * n_heads * hd > NN_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *c = cos_t + (size_t)pos[r] * h2, *s = sin_t + (size_t)pos[r] * h2;
        for (int h = 0; h < n_heads; h++) {
            float *a = x + (size_t)r * ld + (size_t)h * hd, *b = a + h2;
#pragma omp simd
            for (int i = 0; i < h2; i++) {
                float a0 = a[i], b0 = b[i], si = sgn * s[i];
                a[i] = a0 * c[i] - b0 * si;
                b[i] = b0 * c[i] + a0 * si;
            }
        }
    }
}

void nn_rope_forward(float *x, int ld, const int *pos, int N, int n_heads, int hd, const float *cos_t,
                     const float *sin_t)
{
    rotate(x, ld, pos, N, n_heads, hd, cos_t, sin_t, 1.0f);
}

void nn_rope_backward(float *dx, int ld, const int *pos, int N, int n_heads, int hd, const float *cos_t,
                      const float *sin_t)
{
    rotate(dx, ld, pos, N, n_heads, hd, cos_t, sin_t, -1.0f);
}

static void rotate_naive(float *x, int ld, const int *pos, int N, int n_heads, int hd, const double *inv_freq,
                         double sgn)
{
    int h2 = hd / 2;
    for (int r = 0; r < N; r++)
        for (int h = 0; h < n_heads; h++) {
            float *a = x + (size_t)r * ld + (size_t)h * hd, *b = a + h2;
            for (int i = 0; i < h2; i++) {
                double ang = sgn * (double)pos[r] * inv_freq[i], a0 = a[i], b0 = b[i];
                a[i] = (float)(a0 * cos(ang) - b0 * sin(ang));
                b[i] = (float)(b0 * cos(ang) + a0 * sin(ang));
            }
        }
}

void nn_rope_forward_naive(float *x, int ld, const int *pos, int N, int n_heads, int hd,
                           const double *inv_freq)
{
    rotate_naive(x, ld, pos, N, n_heads, hd, inv_freq, 1.0);
}

void nn_rope_backward_naive(float *dx, int ld, const int *pos, int N, int n_heads, int hd,
                            const double *inv_freq)
{
    rotate_naive(dx, ld, pos, N, n_heads, hd, inv_freq, -1.0);
}
