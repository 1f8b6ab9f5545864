/* gru4rec.h: GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018) as RecBole
 * implements it (recbole/model/sequential_recommender/gru4rec.py, loss CE):
 *
 *   x_t  = dropout(E[s_t])                                   E (n_items, emb), the item table
 *   h_t  = GRU(x_t, h_{t-1}), h_{-1} = 0, `layers` stacked layers without biases (PyTorch's gates):
 *          r = sigmoid(W_ir x + W_hr h),  z = sigmoid(W_iz x + W_hz h)
 *          n = tanh(W_in x + r * (W_hn h)),   h' = (1 - z) n + z h
 *          W_ih (3H, in) and W_hh (3H, H) hold the (r, z, n) blocks in PyTorch's order
 *   o_t  = W_d h_t + b_d                                     W_d (emb, H), b_d (emb)
 *   logits of the next item = o_t E^T (every item of the catalogue)
 *   loss = sum over targets of (logsumexp(logits) - logit of the next item), divided by the
 *          global batch's target count; Adam (no weight decay)
 *
 * RecBole trains on every prefix of a training sequence (its data augmentation), the prefix's last
 * output scoring the next item. A GRU is causal and starts from h = 0, so the output at position t
 * of the whole row IS that prefix's output: one pass over a row gives every prefix's loss. An
 * example is a training user (at least two training items); its row is the latest T + 1 training
 * items (T = maxlen), inputs the first m = min(len - 1, T), targets the next m. Rows are stored
 * left-aligned (no padding item). The dropout mask of example k at step s is keyed by
 * (seed, s, k's global position), so no rank count changes a step.
 *
 * Inference: a user's state is o at the last of the latest T items of its history in a split; the
 * scores of every item the dot products with E (an empty history: o = b_d).
 *
 * Initialisation as RecBole's _init_weights: E xavier-normal, every W_ih / W_hh xavier-uniform, the
 * dense layer PyTorch's nn.Linear default (uniform in +-1/sqrt(H)).
 *
 * Activations are time-major (t, b, .) so that step t's rows are one contiguous block. Memory: the
 * parameter, gradient and two Adam slabs, one set of activations for max_batch rows of T steps,
 * logits in blocks of at most GRU4REC_BLOCK_FLOATS floats, the training sequences.
 */
#ifndef DM_GRU4REC_H
#define DM_GRU4REC_H

#include "../model/model.h"
#include "../model/seqs.h"

#include <stddef.h>
#include <stdint.h>

#define GRU4REC_MAX_LAYERS 8
#define GRU4REC_BLOCK_FLOATS ((size_t)1 << 22) /* logits per block: 16 MiB */

typedef struct {
    int n_items, E, H, L, T; /* items, embedding size, hidden size, layers, maxlen */
    float dropout;           /* on the item embeddings, training only */
    float lr, beta1, beta2, eps;
    int max_batch;           /* rows per forward pass (training share or inference users) */
} gru4rec_config;

/* named views into a slab (parameters or gradients) */
typedef struct {
    float *emb;                        /* (n_items, E) */
    float *w_ih[GRU4REC_MAX_LAYERS];   /* (3H, E) for layer 0, (3H, H) above */
    float *w_hh[GRU4REC_MAX_LAYERS];   /* (3H, H) */
    float *dense_w;                    /* (E, H) */
    float *dense_b;                    /* (E) */
} gru4rec_views;

typedef struct {
    /* forward, time-major, Tm = the longest row of the batch */
    int32_t *seq, *tgt;    /* (max_batch, T) each: a row's inputs and targets, left-aligned */
    int *len;              /* (max_batch) inputs of each row */
    float *mask;           /* (T, B, E) dropout mask: 0 or 1 / (1 - p) */
    const float *used_mask;/* the mask of the last forward (NULL: none) */
    float *x;              /* (T, B, E) layer 0's input: the masked embeddings */
    float *xg[GRU4REC_MAX_LAYERS];  /* (T, B, 3H) W_ih x */
    float *gate[GRU4REC_MAX_LAYERS];/* (T, B, 3H) r, z, n after their nonlinearities */
    float *hgn[GRU4REC_MAX_LAYERS]; /* (T, B, H) W_hn h_{t-1} */
    float *h[GRU4REC_MAX_LAYERS];   /* (T, B, H) each layer's outputs */
    float *hg;             /* (B, 3H) W_hh h_{t-1} of one step */
    int32_t *vrow;         /* (B T) valid rows: t B + b of each target, in (b, t) order */
    int32_t *tv;           /* (B T) the target of each valid row */
    float *rowloss;        /* (B T) each valid row's loss */
    float *hv;             /* (B T, H) the last layer's output at the valid rows */
    float *ov;             /* (B T, E) o at the valid rows */
    float *logits;         /* (block rows, n_items) */
    /* backward */
    float *dov;            /* (B T, E) */
    float *dhv;            /* (B T, H) */
    float *dh;             /* (T, B, H) gradient into a layer's outputs */
    float *dxg;            /* (T, B, 3H) */
    float *dx;             /* (T, B, max(E, H)) gradient into a layer's inputs */
    float *dhg;            /* (B, 3H) */
    float *dhn;            /* (B, H) gradient into h_{t-1} */
} gru4rec_acts;

typedef struct {
    gru4rec_config cfg;
    size_t nparams;
    float *params, *grads;   /* (nparams) each */
    float *opt;              /* Adam m then v: (2 nparams) */
    long t;                  /* Adam steps taken */
    gru4rec_views p, g;      /* views of params and grads */
    gru4rec_acts a;
    char tname[2 * GRU4REC_MAX_LAYERS][24]; /* "w_ih_l0", ... */
    dm_seqs seqs;            /* training sequences: the users with at least two training items */
} gru4rec_model;

/* Allocates the model for cfg on the DM_TRAIN rows of d (roles NULL: no training set), weights
 * drawn from seed. */
int gru4rec_init(gru4rec_model *m, const gru4rec_config *cfg, const dm_dataset *d, const int8_t *roles, uint64_t seed);
void gru4rec_free(gru4rec_model *m);

/* Forward over B rows already in m->a.seq / m->a.len (B <= max_batch; a row with len 0 is allowed)
 * with the dropout mask of m->a.mask (NULL: no dropout): fills x, the layers, the valid rows
 * (targets are positions t < len[b], in (b, t) order) and their o (m->a.ov). Returns the number of
 * valid rows. */
size_t gru4rec_forward(gru4rec_model *m, int B, const float *mask);
/* After gru4rec_forward: the loss of the targets m->a.tgt (sum over valid rows of lse - logit) and
 * the gradient of loss / norm added into m->grads. */
int gru4rec_backward(gru4rec_model *m, int B, size_t nv, double norm, double *loss);
/* The dropout mask (T, B, E) of row b of a batch of B for its example at global position gidx. */
void gru4rec_dropout_row(const gru4rec_model *m, int B, int b, uint64_t seed, uint64_t step, int64_t gidx, float *mask);
/* Training row k (its latest T + 1 items) into seq / tgt (T each); returns its inputs m. */
int gru4rec_train_row(const gru4rec_model *m, size_t k, int32_t *seq, int32_t *tgt);
/* Scores (B, n_items) of users[0..B) from their histories in split (roles < split). */
int gru4rec_scores(gru4rec_model *m, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores);
void gru4rec_adam_step(gru4rec_model *m);

extern const dm_model_ops gru4rec_model_ops;

#endif
