/* gpt2_bf16.c: AVX-512 builds of GPT-2's elementwise and row loops for the bf16 path; see
 * gpt2_bf16.h. The formulas are src/nn's (gelu.h, softmax.h), written out again so the compiler can
 * give them 16 lanes; -ffp-contract=off keeps every product and sum a separate rounding, as there. */
#include "gpt2_bf16.h"

#include "../nn/gemm_bf16.h"
#include "../nn/softmax.h"

#include <math.h>
#include <omp.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define CHUNK ((size_t)1 << 14)    /* elements per OpenMP task */
#define PAR_MIN ((size_t)1 << 15)  /* fewer elements run on the calling thread */

static int threads(size_t work) { return work < PAR_MIN || omp_in_parallel() ? 1 : nn_bf16_threads(); }

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

/* gelu.h's tanh: 1 - 2 / (1 + e^{2x}), |x| clamped at 9 */
static inline __attribute__((always_inline)) float tanh_k(float x)
{
    x = x < -9.0f ? -9.0f : x;
    x = x > 9.0f ? 9.0f : x;
    return 1.0f - 2.0f / (1.0f + nn_expf(2.0f * x));
}

void gpt2_bf16_gelu_forward(float *out, const float *inp, size_t n)
{
    size_t nc = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads(n))
    for (size_t c = 0; c < nc; c++) {
        size_t e = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
#pragma omp simd
        for (size_t i = c * CHUNK; i < e; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanh_k(GELU_K * (x + 0.044715f * x * x * x)));
        }
    }
}

void gpt2_bf16_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    size_t nc = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads(n))
    for (size_t c = 0; c < nc; c++) {
        size_t e = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
#pragma omp simd
        for (size_t i = c * CHUNK; i < e; i++) {
            float x = inp[i];
            float t = tanh_k(GELU_K * (x + 0.044715f * x * x * x));
            float sech2 = 1.0f - t * t;
            float g = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
            dinp[i] = g * dout[i];
        }
    }
}

void gpt2_bf16_logsumexp_rows(float *lse, const float *z, size_t ld, int n, int V)
{
#pragma omp parallel for schedule(static) num_threads(threads((size_t)n * V))
    for (int k = 0; k < n; k++) {
        const float *r = z + (size_t)k * ld;
        float mx = -INFINITY, s = 0.0f;
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < V; i++) mx = r[i] > mx ? r[i] : mx;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < V; i++) s += nn_expf(r[i] - mx);
        lse[k] = mx + logf(s);
    }
}

void gpt2_bf16_xent_backward_rows(float *z, int n, int V, const float *lse, const int *tg, const int *rows,
                                  const float *w, float inv)
{
#pragma omp parallel for schedule(static) num_threads(threads((size_t)n * V))
    for (int k = 0; k < n; k++) {
        int i = rows ? rows[k] : k;
        float *r = z + (size_t)k * V, l = lse[k], sc = w ? inv * w[i] : inv;
        if (tg[i] < 0) {
            for (int j = 0; j < V; j++) r[j] = 0.0f;
            continue;
        }
#pragma omp simd
        for (int j = 0; j < V; j++) r[j] = nn_expf(r[j] - l) * sc;
        r[tg[i]] -= sc;
    }
}

#pragma GCC pop_options
