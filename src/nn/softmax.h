/* softmax.h: exponential, softmax and softmax cross-entropy over rows of logits, shared by the
 * attention and output layers of SASRec (src/sasrec) and GPT-2 (src/lm). Row-major, float, one row
 * per call (callers parallelise over rows); nothing allocates.
 *
 *   nn_expf(x)        e^x by the Cephes expf reduction x = k ln2 + r and a degree-6 polynomial in
 *                     r; relative error below 2e-7 on [-87, 88], inputs clamped there (so below
 *                     -87 it returns about 1.6e-38, never 0 or a denormal). Inline, branch- and
 *                     call-free, so loops over it vectorise (libm's expf is one call per element).
 *   nn_exp            out (n) = nn_expf(inp), elementwise (out may alias inp).
 *   nn_softmax        z (n) := softmax(z):  z_i = exp(z_i - max z) / sum_j exp(z_j - max z).
 *   nn_logsumexp      returns lse = max z + log sum_j exp(z_j - max z)   (z (n) unchanged).
 *   nn_softmax_xent   softmax cross-entropy of one row and its gradient in place: returns
 *                     l = lse(z) - z_t  and sets  z := scale (softmax(z) - onehot(t)).
 *   nn_softmax_xent_backward
 *                     the gradient alone given a stored lse: z := scale (exp(z - lse) - onehot(t)).
 *
 * Every sum runs in float in the order `#pragma omp simd` gives it (fixed by the build), the
 * exponentials are nn_expf: the results depend only on the row, never on threads. n >= 1 and
 * 0 <= t < n; a row of -inf, inf or NaN is the caller's business.
 * A double-precision naive twin of each function is in tests/unit/test_nn.c.
 */
#ifndef DM_NN_SOFTMAX_H
#define DM_NN_SOFTMAX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float nn_expf(float x)
{
    x = x < -87.0f ? -87.0f : x; /* ternaries, not fminf: they vectorise without -ffast-math */
    x = x > 88.0f ? 88.0f : x;
    /* k = nearest integer to x log2(e), by the 1.5 * 2^23 trick (floorf would not vectorise) */
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693359375f + k * 2.12194440e-4f; /* x - k ln2, ln2 in two parts */
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23; /* 2^k from the exponent bits */
    float s;
    memcpy(&s, &bits, sizeof s);
    return y * s;
}

void nn_exp(float *out, const float *inp, size_t n);
void nn_softmax(float *z, int n);
float nn_logsumexp(const float *z, int n);
float nn_softmax_xent(float *z, int n, int t, float scale);
void nn_softmax_xent_backward(float *z, int n, float lse, int t, float scale);

#endif
