/* gpt2_bf16.h: the elementwise and row kernels of GPT-2's bf16 path (gpt2.h, GPT2_BF16), compiled for
 * AVX-512 with function target attributes (the build stays portable) and threaded on the pool of
 * src/nn/gemm_bf16.h (nn_bf16_for). With the products on the AVX512_BF16 kernel, these loops (GELU
 * over every MLP activation, the log-sum-exp over the vocabulary of every scored position) are a
 * third of the time when built for x86-64-v2's 4 lanes; here they run on 16.
 *
 * They may only run where nn_bf16_available() (which implies AVX-512 F/BW/VL), i.e. on the bf16
 * path. Each computes what its src/nn counterpart computes:
 *   gpt2_bf16_gelu_forward / _backward   nn_gelu_forward / nn_gelu_backward, bitwise (elementwise, the
 *                                        same operations in the same order; no FMA contraction)
 *   gpt2_bf16_logsumexp_rows             lse[i] = nn_logsumexp(z + i ld, V) for n rows, the sum in
 *                                        16 lanes instead of 4: equal within float rounding
 *                                        (|d lse| <= V 2^-24 in the worst case, tests/unit/test_lm_bf16.c)
 *   gpt2_bf16_xent_backward_rows         nn_softmax_xent_backward on n rows, bitwise
 * Nothing allocates.
 */
#ifndef DM_GPT2_BF16_H
#define DM_GPT2_BF16_H

#include <stddef.h>

void gpt2_bf16_gelu_forward(float *out, const float *inp, size_t n);
void gpt2_bf16_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void gpt2_bf16_logsumexp_rows(float *lse, const float *z, size_t ld, int n, int V);
/* row k of z (n, V) := s_i (exp(z - lse[k]) - onehot(tg[i])), i = rows ? rows[k] : k, with
 * s_i = inv w[i] (w NULL: inv); a row whose tg[i] < 0 is zeroed (gpt2_backward's loss rows) */
void gpt2_bf16_xent_backward_rows(float *z, int n, int V, const float *lse, const int *tg, const int *rows,
                                  const float *w, float inv);

#endif
