/* sasrec_kernels.h: the layer kernels of SASRec, each a forward/backward pair over raw pointers on
 * "packed" rows (the non-padding positions of a batch, sequence after sequence; sequence b owns rows
 * off[b] .. off[b+1]). Two implementations share every signature: the optimised one
 * (sasrec_kernels.c: OpenBLAS sgemm, OpenMP over rows or (sequence, head) pairs) and the naive
 * reference (sasrec_naive.c: plain loops with double accumulators). Tests hold them together. The
 * linear, layer-norm and attention entries are the shared layers of src/nn (linear.h, layernorm.h,
 * attention.h) and their naive twins; the losses are SASRec's own.
 *
 * Conventions: row-major; a linear layer is y = x W^T + b with W (out, in) as torch.nn.Linear;
 * backward kernels ACCUMULATE (+=) into every gradient they are given, NULL skips one.
 * No kernel allocates; callers pass scratch.
 */
#ifndef DM_SASREC_KERNELS_H
#define DM_SASREC_KERNELS_H

#include "../nn/linear.h" /* NN_PAR_MIN, below which loops stay serial */

#include <stddef.h>
#include <stdint.h>

#define SASREC_LN_EPS 1e-8f /* the reference's layer-norm epsilon */

typedef struct {
    /* out (N, OC; row stride ldo) = inp (N, IC; stride ldi) . w^T (w (OC, IC)) + b (OC; NULL = 0) */
    void (*linear_forward)(float *out, int ldo, const float *inp, int ldi, const float *w,
                           const float *b, int N, int IC, int OC);
    /* dinp (N, IC; ldi) += dout . w;  dw (OC, IC) += dout^T . inp;  db (OC) += sum_rows dout.
     * ones (N) is a vector of ones (bias gradient as a gemv). */
    void (*linear_backward)(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                            const float *inp, const float *w, const float *ones, int N, int IC,
                            int OC);
    /* out = (inp - mean) * rstd * w + b per row; rstd = 1 / sqrt(var + eps), var biased (SASRec
     * passes SASREC_LN_EPS). out, inp (N, C); mean, rstd (N) saved for backward. */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps);
    /* dinp (N, C) += ...; dw, db (C) += ...  (dinp may not alias dout) */
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C);
    /* Multi-head attention within each sequence (src/nn/attention.h; SASRec passes causal = 1).
     * qkv (N, 3C) = [Q | K | V], head h uses columns h*hs .. (h+1)*hs of each, hs = C / H. att: per
     * sequence b at att_off[b] an (H, n, n) block of softmax probabilities P[h][i][j] (causal: j <= i,
     * the rest left untouched), n = off[b+1] - off[b]. mask (same layout as att, NULL = no dropout):
     * out_i = sum_j P_ij * mask_ij * keep * V_j. out (N, C). */
    void (*attention_forward)(float *out, float *att, const float *qkv, const uint8_t *mask,
                              float keep, const int *off, const size_t *att_off, int B, int C,
                              int H, int causal);
    /* dqkv (N, 3C) += gradient of out wrt Q, K, V given dout (N, C). */
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const uint8_t *mask, float keep, const int *off,
                               const size_t *att_off, int B, int C, int H, int causal);
    /* Full softmax cross-entropy over items 1..V-1 (row 0 of wte is padding and excluded):
     * returns scale * sum_r (logsumexp_i h_r . wte_i - h_r . wte_tgt[r]) (double accumulation).
     * When dh != NULL: dh (M, C) = scale (softmax - onehot) . wte (overwritten) and dwte (V, C) +=
     * scale (softmax - onehot)^T . h. logits: scratch of chunk floats (>= V; rows are processed in
     * blocks of chunk / V), rowbuf: scratch of M floats. */
    double (*ce_loss)(float *dh, float *dwte, const float *h, const int *tgt, const float *wte,
                      int M, int V, int C, float scale, float *logits, size_t chunk,
                      float *rowbuf);
    /* Binary cross-entropy with one negative per row: returns scale * sum_r softplus(-h.E[pos]) +
     * softplus(h.E[neg]). When dh != NULL: dh (M, C) overwritten, dwte (V, C) += (scatter, serial
     * so the sum order is fixed). rowbuf: scratch of 3M floats. */
    double (*bce_loss)(float *dh, float *dwte, const float *h, const int *pos, const int *neg,
                       const float *wte, int M, int C, float scale, float *rowbuf);
} sasrec_kernels;

extern const sasrec_kernels sasrec_kernels_fast;  /* sasrec_kernels.c */
extern const sasrec_kernels sasrec_kernels_naive; /* sasrec_naive.c */

#endif
