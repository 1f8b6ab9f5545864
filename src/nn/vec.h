/* vec.h: the two float vector loops the layers share, inline so they vectorise in place:
 *
 *   nn_dot(a, b, n)      returns sum_k a_k b_k (float, in the order `#pragma omp simd` gives it:
 *                        fixed by the build, never by threads)
 *   nn_axpy(y, a, x, n)  y_k += a x_k
 */
#ifndef DM_NN_VEC_H
#define DM_NN_VEC_H

static inline __attribute__((always_inline)) float nn_dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static inline __attribute__((always_inline)) void nn_axpy(float *y, float a, const float *x, int n)
{
#pragma omp simd
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

#endif
