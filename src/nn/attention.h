/* attention.h: multi-head scaled dot-product attention within ragged sequences, forward and
 * backward over raw row-major pointers: SASRec's causal blocks (src/sasrec) and BERT4Rec's
 * bidirectional ones (src/bert4rec).
 *
 * Rows are "packed": the positions of a batch's sequences one sequence after another, sequence b
 * owning rows off[b] .. off[b+1] (n = off[b+1] - off[b] of them; no padding is stored, so no padding
 * mask is needed). qkv (N, 3C) holds [Q | K | V] per row; head h uses columns h hs .. (h+1) hs of
 * each, hs = C / H. Per sequence and head, with d_ij the dropout multiplier (mask_ij keep, or 1):
 *
 *   S_ij = q_i . k_j / sqrt(hs),   P_i = softmax_j S_ij,   out_i = sum_j P_ij d_ij v_j
 *
 * over keys j <= i (causal = 1) or every j of the sequence (causal = 0). att holds P per sequence b
 * at att_off[b] as an (H, n, n) block [h][query i][key j] (causal: the entries j > i are left
 * untouched); mask (NULL = no dropout) has the same layout, 1 = keep.
 *
 * Backward, given dout (N, C): dPd_ij = dout_i . v_j, dv_j += P_ij d_ij dout_i, dP = dPd d,
 * dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik), dq_i += dS_ij k_j / sqrt(hs), dk_j += dS_ij q_i / sqrt(hs).
 * It ACCUMULATES (+=) into dqkv (N, 3C).
 *
 * The fast kernels parallelise over (sequence, head) pairs (OpenMP; each pair writes its own rows
 * and columns, every sum in a fixed order, so no result depends on the thread count). The naive
 * twins (suffix _naive, same signatures) are plain serial loops with double accumulators, the
 * yardstick the fast ones are tested against (tests/unit/test_sasrec.c, test_bert4rec.c). Nothing
 * allocates (the backward keeps one row of n floats on the stack).
 */
#ifndef DM_NN_ATTENTION_H
#define DM_NN_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* out (N, C) and att from qkv (N, 3C); B sequences by off (B + 1) and att_off (B + 1) */
void nn_attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask, float keep,
                          const int *off, const size_t *att_off, int B, int C, int H, int causal);
/* dqkv (N, 3C) += the gradient of out wrt Q, K and V given dout (N, C) and the forward's att */
void nn_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           const uint8_t *mask, float keep, const int *off, const size_t *att_off,
                           int B, int C, int H, int causal);

void nn_attention_forward_naive(float *out, float *att, const float *qkv, const uint8_t *mask,
                                float keep, const int *off, const size_t *att_off, int B, int C,
                                int H, int causal);
void nn_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                 const float *att, const uint8_t *mask, float keep, const int *off,
                                 const size_t *att_off, int B, int C, int H, int causal);

#endif
