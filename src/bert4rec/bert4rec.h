/* bert4rec.h: BERT4Rec (Sun et al., CIKM 2019), the bidirectional transformer trained on the cloze
 * task, as its reference code (FeiSun/BERT4Rec) and RecBole implement it:
 *
 *   x0   = dropout(LN_e(E[s_t] + P[t]))           E (n_items + 1, C): the items, then [mask] (row n)
 *                                                 P (T, C): positions 0.. from the oldest item
 *   L post-norm blocks (BERT's):
 *        y  = LN1(x + dropout(W_o MHA(x) + b_o))  MHA bidirectional: every position attends to every
 *                                                 position of its sequence (src/nn/attention.h,
 *                                                 dropout on the probabilities)
 *        x' = LN2(y + dropout(W_2 gelu(W_1 y + b_1) + b_2))
 *   head at a masked position (the output transform, then the tied item table):
 *        z  = LN_h(gelu(W_h x_L + b_h)),   logits of every item = E[0..n) z + b_out
 *   loss = sum over masked positions of (logsumexp(logits) - logit of the item that was masked),
 *          divided by the global batch's count of masked positions; Adam
 * GELU is the tanh form of the reference code (src/nn/gelu.h); layer norms use eps 1e-12 (BERT's);
 * Q, K, V, W_o, W_1, W_2 and W_h are linear layers with biases in torch.nn.Linear's layout, Q/K/V
 * stacked as torch.nn.MultiheadAttention's in_proj (3C, C).
 *
 * Training (the cloze task): an example is a training user (at least two training items); its row is
 * the latest T training items (T = maxlen), left-aligned. k = max(1, round(mask_prob n)) of its n
 * positions, drawn without replacement from dm_rng_key(seed ^ "cloze", step, global position), are
 * replaced by [mask] and are the targets (the reference code's fixed count per sequence, always at
 * least one), so a batch's normaliser, the sum of k, is known before the draws. Dropout flags are
 * keyed by (seed, step, global position) (src/nn/dropout.h). No rank count changes a step.
 *
 * Scoring: a user's latest T - 1 items of a split's history with [mask] appended after them; the
 * scores of every item are the logits at that position (an empty history scores [mask] alone).
 *
 * Initialisation as RecBole's: every linear weight and embedding N(0, 0.02^2), biases 0, layer-norm
 * gains 1 and biases 0, b_out 0.
 *
 * Rows are packed as SASRec's (only the positions a sequence has, sequence after sequence), so the
 * attention needs no padding mask and the cost follows the real lengths. Memory: the parameter,
 * gradient and two Adam slabs, one set of activations for max_batch rows of T positions (attention
 * probabilities and their dropout flags max_batch H T^2 per layer), logits in blocks of at most
 * BERT4REC_BLOCK_FLOATS floats, the training sequences.
 */
#ifndef DM_BERT4REC_H
#define DM_BERT4REC_H

#include "../model/model.h"
#include "../model/seqs.h"

#include <stddef.h>
#include <stdint.h>

#define BERT4REC_LN_EPS 1e-12f
#define BERT4REC_BLOCK_FLOATS ((size_t)1 << 22) /* logits per block: 16 MiB */
#define BERT4REC_NTENSORS 21

typedef struct {
    int n_items;          /* items 0..n_items-1; id n_items is [mask] */
    int C, L, H, F, T;    /* dim, blocks, heads (dividing C), feed-forward width, maxlen */
    float mask_prob;      /* share of a training row's positions masked (at least one) */
    float dropout;        /* hidden and attention dropout, training only */
    float lr, beta1, beta2, eps;
    int max_batch;        /* sequences per forward pass (training share or inference users) */
} bert4rec_config;

/* named views into a slab (parameters or gradients); the order is the slab's and the saved tensors' */
typedef struct {
    float *emb;      /* (n_items + 1, C) items, then [mask] */
    float *pos;      /* (T, C) */
    float *lnew, *lneb;      /* (C) embedding layer norm */
    float *qkvw;     /* (L, 3C, C) */
    float *qkvb;     /* (L, 3C) */
    float *ow;       /* (L, C, C) W_o */
    float *ob;       /* (L, C) */
    float *ln1w, *ln1b;      /* (L, C) */
    float *fc1w;     /* (L, F, C) */
    float *fc1b;     /* (L, F) */
    float *fc2w;     /* (L, C, F) */
    float *fc2b;     /* (L, C) */
    float *ln2w, *ln2b;      /* (L, C) */
    float *hw;       /* (C, C) head transform */
    float *hb;       /* (C) */
    float *lnhw, *lnhb;      /* (C) */
    float *outb;     /* (n_items) output bias */
} bert4rec_views;

typedef struct {
    /* the batch: B rows in seq (max_batch, T), inputs left-aligned ([mask] = n_items), len[b] of them;
       tgt (max_batch, T): the item to predict at a position, -1 where none */
    int32_t *seq, *tgt;
    int *len;
    int B, N, M;           /* rows, packed positions, targets of the current batch */
    int *off;              /* (max_batch + 1) first packed position of each row */
    size_t *att_off;       /* (max_batch + 1) start of each row's (H, n, n) attention block */
    int *item, *t;         /* (maxN) input item and position of each packed position */
    int *trow;             /* (maxN) packed positions that carry a target, in (row, position) order */
    int32_t *titem;        /* (maxN) their targets */
    int drop;              /* dropout flags in use for this batch */
    /* forward (maxN = max_batch T, attL = max_batch H T^2) */
    float *e0;             /* (maxN, C) E[item] + P[t] */
    float *lne;            /* (maxN, C) LN_e(e0) */
    float *lne_mean, *lne_rstd; /* (maxN) */
    float *x0;             /* (maxN, C) dropout(lne): block 0's input */
    float *qkv;            /* (L, maxN, 3C) */
    float *att;            /* (L, attL) attention probabilities */
    float *atty;           /* (L, maxN, C) attention output before W_o */
    float *r1;             /* (L, maxN, C) x + dropout(W_o atty + b_o) */
    float *y;              /* (L, maxN, C) LN1(r1) */
    float *y_mean, *y_rstd;/* (L, maxN) */
    float *u;              /* (L, maxN, F) W_1 y + b_1 */
    float *gu;             /* (L, maxN, F) gelu(u) */
    float *r2;             /* (L, maxN, C) y + dropout(W_2 gu + b_2) */
    float *x;              /* (L, maxN, C) LN2(r2): block l's output */
    float *x_mean, *x_rstd;/* (L, maxN) */
    uint8_t *m_emb;        /* (maxN, C) dropout keep flags */
    uint8_t *m_att;        /* (L, attL) */
    uint8_t *m_o;          /* (L, maxN, C) on W_o's output */
    uint8_t *m_f;          /* (L, maxN, C) on W_2's output */
    /* head at the target positions (M rows) */
    float *hc;             /* (maxN, C) x_L at the targets */
    float *hu;             /* (maxN, C) W_h hc + b_h */
    float *hg;             /* (maxN, C) gelu(hu) */
    float *hz;             /* (maxN, C) LN_h(hg) */
    float *hz_mean, *hz_rstd; /* (maxN) */
    float *logits;         /* (block rows, n_items) */
    float *rowloss;        /* (maxN) */
    /* backward */
    float *dz;             /* (maxN, C) */
    float *dx, *dt, *dt2;  /* (maxN, C) */
    float *dqkv;           /* (maxN, 3C) */
    float *df;             /* (maxN, F) */
} bert4rec_acts;

typedef struct {
    bert4rec_config cfg;
    size_t nparams;
    float *params, *grads;   /* (nparams) each */
    float *opt;              /* Adam m then v: (2 nparams) */
    long t;                  /* Adam steps taken */
    bert4rec_views p, g;     /* views of params and grads */
    size_t off[BERT4REC_NTENSORS + 1]; /* each tensor's offset in the slab */
    bert4rec_acts a;
    dm_seqs seqs;            /* training sequences: the users with at least two training items */
} bert4rec_model;

/* Fills c from the bert4rec.* keys of cfg for n_items items and batches of max_batch sequences and
 * checks it (bert4rec_config_check). */
int bert4rec_config_from(const dm_cfg *cfg, int n_items, int max_batch, bert4rec_config *c);
/* Checks what the key table cannot (items in the dataset, heads dividing dim, max_batch * maxlen
 * below 1e9); the ranges of the bert4rec.* keys are the config loader's (bert4rec.def). DM_ECONFIG
 * naming the bert4rec.* key and what was expected. */
int bert4rec_config_check(const bert4rec_config *c);
/* Allocates the model for c on the DM_TRAIN rows of d (roles NULL: no training set), weights drawn
 * from seed. */
int bert4rec_init(bert4rec_model *m, const bert4rec_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed);
void bert4rec_free(bert4rec_model *m);
/* Name and shape of tensor k of the slab (rows, cols; cols 0 = a vector); 0 when k is out of range. */
int bert4rec_tensor(const bert4rec_model *m, int k, const char **name, size_t *rows, size_t *cols, float **data);

/* Packs the B rows in m->a.seq / m->a.len with their targets m->a.tgt (B <= max_batch; a row may be
 * empty) into positions (off, item, t, the target list). DM_EINPUT for an item or target out of
 * range. */
int bert4rec_pack(bert4rec_model *m, int B);
/* Dropout flags of row b of the packed batch for its example at global position gidx, in the order
 * embedding, then per block attention (head, query, key), W_o's output, W_2's output. */
void bert4rec_draw_dropout(bert4rec_model *m, int b, uint64_t seed, uint64_t step, int64_t gidx);
/* Forward over the packed batch (with the dropout flags in m->a.m_* when drop: drawn, or a test's)
 * and the loss of its targets: *loss = sum over them of lse - logit. With grad, the gradient of
 * loss / norm is added into m->grads. DM_ENUM when the loss is not finite. */
int bert4rec_forward_backward(bert4rec_model *m, int drop, int grad, double norm, double *loss);
/* Training example k at step `step` (global position gidx): its row into seq (inputs, k positions
 * masked) and tgt (T each); returns its length. */
int bert4rec_train_row(const bert4rec_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx, int32_t *seq, int32_t *tgt);
/* Masked positions of training example k: k = max(1, round(mask_prob n)) for n = its row length. */
int bert4rec_targets(const bert4rec_model *m, size_t k);
/* Scores (B, n_items) of users[0..B) from their histories in split (roles < split). */
int bert4rec_scores(bert4rec_model *m, const dm_dataset *d, const int8_t *roles, int split, const size_t *users, size_t B, float *scores);
void bert4rec_adam_step(bert4rec_model *m);

extern const dm_model_ops bert4rec_model_ops;

#endif
