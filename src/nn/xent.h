/* xent.h: full-softmax cross-entropy of rows of hidden states against a whole output table (every
 * item of a catalogue), forward and backward in blocks of rows so the logits never need more than a
 * bound of memory. GRU4Rec (src/gru4rec) and BERT4Rec (src/bert4rec) train with it.
 *
 * For rows h_r (R, C), targets t_r in [0, V), the table w (V, C) and a bias b (V) or NULL:
 *   z_r = w h_r + b,   loss = sum_r (logsumexp(z_r) - z_r[t_r])
 *   G_r = scale (softmax(z_r) - onehot(t_r))
 *   dh (R, C) = G w  (WRITTEN),   dw (V, C) += G^T h,   db (V) += sum_r G_r
 * Rows go in blocks of chunk / V (at least one): z by one nn_sgemm (the bias copied in first, then
 * the product added: sgemm's beta = 1; without a bias beta = 0), the softmax and its gradient per row
 * (nn_softmax_xent, OpenMP over rows), then dh and dw by nn_sgemm and db by a serial sum over the
 * block's rows. Each row's loss is a float; they are summed in row order in double. No sum depends
 * on the thread count.
 *
 * logits: scratch of at least min(chunk, R V) floats, rows of V (chunk >= V); rowloss: scratch of
 * R floats. dh NULL: the loss only (w, b and their gradients untouched). Nothing allocates.
 */
#ifndef DM_NN_XENT_H
#define DM_NN_XENT_H

#include <stddef.h>
#include <stdint.h>

double nn_xent_rows(float *dh, float *dw, float *db, const float *h, const int32_t *tgt, const float *w, const float *b, int R, int V, int C,
                    float scale, float *logits, size_t chunk, float *rowloss);

#endif
