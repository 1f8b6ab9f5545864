/* lm_attention.h: the batch attention GPT-2 (gpt2.c) and Llama (llama.c) share: causal
 * grouped-query attention over B sequences of T positions, blocked into GEMMs, and its backward.
 *
 * Rows of qkv (B, T, S), S = QD + 2 KD (QD = NH hd, KD = NKV hd): the NH query heads, then the NKV
 * key heads, then the NKV value heads, hd floats each; query head h reads key/value head
 * h / (NH / NKV). GPT-2 is the case NKV = NH, hd = C / NH (S = 3C). out (B, T, QD).
 *
 * wide = 1 runs the row loops (softmax rows, backward pairs) on the pool of src/nn/gemm_bf16.h in
 * functions compiled for AVX-512 (the GPT2_BF16 path; only where the bf16 kernel runs), wide = 0
 * as OpenMP loops. The softmax inline below is shared with gpt2.c's KV cache.
 */
#ifndef DM_LM_ATTENTION_H
#define DM_LM_ATTENTION_H

#include "../nn/softmax.h"

#include <math.h>

#define LMA_QBLOCK 128 /* query rows per block of the GEMM attention (rows of its scratch) */
#define LMA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

/* nn_softmax's operations (softmax.h), inline so that it vectorises in the caller (16 lanes in an
 * LMA_AVX512 function); the causal mask's zeros from nv to ld */
static inline __attribute__((always_inline)) void lma_softmax_masked_row(float *z, int nv, int ld)
{
    float mx = -INFINITY, s = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < nv; i++) mx = z[i] > mx ? z[i] : mx;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < nv; i++) {
        z[i] = nn_expf(z[i] - mx);
        s += z[i];
    }
    float inv = 1.0f / s;
    for (int i = 0; i < nv; i++) z[i] *= inv;
    for (int j = nv; j < ld; j++) z[j] = 0.0f;
}

/* out (B, T, QD) from qkv; att (B, NH, T, T) stored when non-NULL, else scratch (LMA_QBLOCK, T)
 * holds a block's weights. */
void lma_forward(float *out, float *att, const float *qkv, float *scratch, int B, int T, int NH, int NKV, int hd,
                 int wide);
/* dqkv (B, T, S) += from dout (B, T, QD), the forward's att and qkv; scratch (threads, T). */
void lma_backward(float *dqkv, const float *dout, const float *att, const float *qkv, float *scratch, int B, int T,
                  int NH, int NKV, int hd, int wide);

#endif
