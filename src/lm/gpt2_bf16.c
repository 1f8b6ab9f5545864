/* gpt2_bf16.c: AVX-512 builds of GPT-2's elementwise and row loops for the bf16 path; see
 * gpt2_bf16.h. The formulas are src/nn's (gelu.h, softmax.h), written out again so the compiler can
 * give them 16 lanes; -ffp-contract=off keeps every product and sum a separate rounding, as there. */
#include "gpt2_bf16.h"

#include "../nn/gemm_bf16.h"
#include "../nn/softmax.h"

#include <math.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

/* gelu.h's tanh: 1 - 2 / (1 + e^{2x}), |x| clamped at 9 */
static inline __attribute__((always_inline)) float tanh_k(float x)
{
    x = x < -9.0f ? -9.0f : x;
    x = x > 9.0f ? 9.0f : x;
    return 1.0f - 2.0f / (1.0f + nn_expf(2.0f * x));
}

typedef struct {
    float *out;
    const float *inp, *dout;
} gelu_job;

static void gelu_fwd(void *p, long i0, long i1, int t)
{
    const gelu_job *j = p;
    float *out = j->out;
    const float *inp = j->inp;
#pragma omp simd
    for (long i = i0; i < i1; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanh_k(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

static void gelu_bwd(void *p, long i0, long i1, int t)
{
    const gelu_job *j = p;
    float *dinp = j->out;
    const float *inp = j->inp, *dout = j->dout;
#pragma omp simd
    for (long i = i0; i < i1; i++) {
        float x = inp[i];
        float t = tanh_k(GELU_K * (x + 0.044715f * x * x * x));
        float sech2 = 1.0f - t * t;
        float g = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = g * dout[i];
    }
}

void gpt2_bf16_gelu_forward(float *out, const float *inp, size_t n)
{
    gelu_job j = {out, inp, NULL};
    nn_bf16_for((long)n, n, gelu_fwd, &j);
}

void gpt2_bf16_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    gelu_job j = {dinp, inp, dout};
    nn_bf16_for((long)n, n, gelu_bwd, &j);
}

typedef struct {
    float *z, *lse;
    const float *cz, *clse, *w;
    const int *tg, *rows;
    size_t ld;
    int V;
    float inv;
} rows_job;

static void lse_rows(void *p, long k0, long k1, int t)
{
    const rows_job *j = p;
    for (long k = k0; k < k1; k++) {
        const float *r = j->cz + (size_t)k * j->ld;
        float mx = -INFINITY, s = 0.0f;
        int V = j->V;
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < V; i++) mx = r[i] > mx ? r[i] : mx;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < V; i++) s += nn_expf(r[i] - mx);
        j->lse[k] = mx + logf(s);
    }
}

void gpt2_bf16_logsumexp_rows(float *lse, const float *z, size_t ld, int n, int V)
{
    rows_job j = {.lse = lse, .cz = z, .ld = ld, .V = V};
    nn_bf16_for(n, (size_t)n * V, lse_rows, &j);
}

static void xent_rows(void *p, long k0, long k1, int t)
{
    const rows_job *j = p;
    int V = j->V;
    for (long k = k0; k < k1; k++) {
        int i = j->rows ? j->rows[k] : (int)k;
        float *r = j->z + (size_t)k * V, l = j->clse[k], sc = j->w ? j->inv * j->w[i] : j->inv;
        if (j->tg[i] < 0) {
            for (int c = 0; c < V; c++) r[c] = 0.0f;
            continue;
        }
#pragma omp simd
        for (int c = 0; c < V; c++) r[c] = nn_expf(r[c] - l) * sc;
        r[j->tg[i]] -= sc;
    }
}

void gpt2_bf16_xent_backward_rows(float *z, int n, int V, const float *lse, const int *tg, const int *rows,
                                  const float *w, float inv)
{
    rows_job j = {.z = z, .clse = lse, .w = w, .tg = tg, .rows = rows, .V = V, .inv = inv};
    nn_bf16_for(n, (size_t)n * V, xent_rows, &j);
}

#pragma GCC pop_options
