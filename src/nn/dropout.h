/* dropout.h: dropout with keyed keep flags, shared by SASRec (src/sasrec) and BERT4Rec
 * (src/bert4rec).
 *
 * Keep flags come from a stream seeded by the caller (dm_rng_key(seed, step, global sequence index)
 * in both models, so 1, 2 and 3 ranks draw the same flags for the same sequence): a unit is kept when
 * a 16-bit uniform (four per 64-bit draw, low bits first) is below nn_keep_threshold(p) =
 * round((1 - p) 2^16), so the keep probability is exact for p = k / 65536 (0.5, 0.25, ...) and within
 * 8e-6 otherwise. The flags depend only on the key and the order of the draws.
 *
 * The element-wise layers (mask NULL = no dropout; keep = 1 / (1 - p)):
 *   nn_dropout_add_forward   out = res + dropout(y)   (res NULL: out = dropout(y); out may alias y)
 *   nn_dropout_backward      dy = dropout'(dout)      (writes; dy may alias dout)
 * OpenMP over elements above NN_PAR_MIN; nothing allocates.
 */
#ifndef DM_NN_DROPOUT_H
#define DM_NN_DROPOUT_H

#include "../core/rng.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    dm_rng r;
    uint64_t buf;
    int left;
    uint32_t thr;
} nn_keep_stream;

static inline uint32_t nn_keep_threshold(double p) { return (uint32_t)lround(ldexp(1.0 - p, 16)); }

/* a stream of keep flags from `key` with threshold thr */
static inline void nn_keep_init(nn_keep_stream *k, uint64_t key, uint32_t thr)
{
    dm_rng_seed(&k->r, key);
    k->buf = 0;
    k->left = 0;
    k->thr = thr;
}

static inline uint8_t nn_keep_bit(nn_keep_stream *k)
{
    if (k->left == 0) {
        k->buf = dm_rng_u64(&k->r);
        k->left = 4;
    }
    uint32_t u = (uint32_t)(k->buf & 0xffff);
    k->buf >>= 16;
    k->left--;
    return u < k->thr;
}

void nn_dropout_add_forward(float *out, const float *res, const float *y, const uint8_t *mask, float keep, size_t n);
void nn_dropout_backward(float *dy, const float *dout, const uint8_t *mask, float keep, size_t n);

#endif
