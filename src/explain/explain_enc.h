/* explain_enc.h: the evidence encoder: E soft evidence tokens of the LM's width C from an evidence
 * set (explain.h), trained through the frozen LM like the soft-prompt projectors.
 *
 * Evidence element j of a set has a kind k_j (EXPLAIN_USER/ITEM/ATTR/MODAL), a feature x_j (din:
 * the neighbour's h, the item's z, the attribute embedding, the modality latent) and a weight w_j:
 *     u_j = Win[k_j] x_j + bin[k_j]                      per-kind linear map, (D)
 *     key_j = u_j,   val_j = w_j u_j                     the weight scales the value
 * A learned null element (key k0, value v0) is in every set, so any set, even an empty one, is
 * defined. Slot e (of E) pools with a learned query q_e:
 *     s_ej = q_e . key_j / sqrt(D),  a_ej = softmax_j over {null} + elements,
 *     slot_e = a_e0 v0 + sum_j a_ej val_j
 * and the MLP projector of src/nn/mlp.h maps each group of G consecutive slots (G = cfg.group,
 * 0 or 1: each slot alone) to one output row of width C:
 *     y_t = W2 gelu(LN(W1 [slot_{tG}; ...; slot_{tG+G-1}] + b1)) + b2,   t < E / G,
 * so a set gives E / G rows: E tokens (G = 1), or its E slots compressed into fewer (G = E: one
 * row, all slots concatenated, (E D) -> hidden -> C).
 *
 * Masked evidence (L_faith's "evidence masked" score) = the empty set: every element removed, only
 * the null element left, so every slot is v0 and every row y_t = MLP([v0; ...; v0]). The null element is trained by L_faith
 * through that pass. Removing one element (evidence precision) is the set without it.
 *
 * The output rows y (E / G, C) of a set are soft input rows of the LM (the caller appends them to
 * the prompt as LM_SOFT(k) positions, and the LM's backward returns dL/dy for explain_enc_backward)
 * or, for the LLM recommender's item-head evidence path (src/prompt/llmrec.h), one vector scored
 * against the LM's hidden state.
 *
 * Parameters live in one slab (views below, explain_enc_bind) that the caller may share with other
 * trainable parts (one allreduce, one Adam: nn_adam_step of src/nn/adam.h over the slab); the
 * gradient slab has the same layout and backward ACCUMULATES into it. Batches: B sets at once, set b = elements [off[b], off[b+1]) of kind, x, w; a set may be
 * empty. explain_enc_forward keeps in explain_enc_acts what the backward needs. A naive twin of
 * each kernel has the same signature; tests hold them together and against PyTorch.
 */
#ifndef DM_EXPLAIN_ENC_H
#define DM_EXPLAIN_ENC_H

#include "../nn/mlp.h"

#include <stddef.h>
#include <stdint.h>

#define EXPLAIN_ENC_KINDS 4
#define EXPLAIN_ENC_NTENSORS 11

typedef struct {
    int din;     /* evidence feature width (the latent width d) */
    int D;       /* key/value width of the per-kind maps and slots */
    int E;       /* evidence tokens */
    int hidden;  /* MLP hidden width */
    int C;       /* LM width */
    float ln_eps;
    int group;   /* G: slots per output row (0 or 1: one row per slot); divides E */
} explain_enc_config;

typedef struct {
    explain_enc_config cfg;
    float *win;  /* (4, D, din) per-kind linear maps */
    float *bin;  /* (4, D) */
    float *q;    /* (E, D) slot queries */
    float *k0;   /* (D) null key */
    float *v0;   /* (D) null value */
    float *gwin, *gbin, *gq, *gk0, *gv0; /* gradient views, same shapes */
    nn_mlp mlp;  /* G D -> hidden -> C: w1 (H, G D), b1, lnw, lnb (H), w2 (C, H), b2 (C) */
    float *params, *grads; /* the encoder's part of the slabs */
    size_t nparams;
} explain_enc;

/* Floats the encoder occupies in a slab. */
size_t explain_enc_size(const explain_enc_config *c);
/* Output rows per set: E / G. */
int explain_enc_rows(const explain_enc_config *c);
/* Binds views into params[0..explain_enc_size) and grads (same offsets; may be NULL). */
void explain_enc_bind(explain_enc *e, const explain_enc_config *c, float *params, float *grads);
/* Linear maps and biases uniform +-1/sqrt(fan_in) (PyTorch's default), queries N(0, 1), null key
 * and value uniform +-1/sqrt(D), the MLP as nn_mlp_init with out_scale. Keyed by seed. */
void explain_enc_init(explain_enc *e, uint64_t seed, float out_scale);
/* Tensor k (0..EXPLAIN_ENC_NTENSORS): name ("win", ..., "mlp.b2"), offset in the slab, floats. */
size_t explain_enc_tensor(const explain_enc *e, int k, const char **name, size_t *offset);

typedef struct {
    int maxB, maxN, B, N;
    int64_t *off;   /* (maxB + 1) */
    int8_t *kind;   /* (maxN) */
    float *x;       /* (maxN, din) */
    float *w;       /* (maxN) */
    float *u;       /* (maxN, D) */
    float *att;     /* (E (maxN + maxB)) attention of set b, slot e at E (off[b] + b) + e (n_b + 1) */
    float *slot;    /* (maxB E, D) */
    float *dslot;   /* (maxB E, D) */
    float *du;      /* (maxN, D) */
    float *ds;      /* like att: dL/ds */
    float *gx, *gu; /* (maxN, din), (maxN, D) per-kind gathers */
    int32_t *perm;  /* (maxN) elements grouped by kind */
    float *qt;      /* (D, E) the slot queries transposed */
    float *acc;     /* (maxB, E) per-set scratch of the pooling */
    int kcount[EXPLAIN_ENC_KINDS];
    nn_mlp_acts mlp; /* maxB E / G rows */
} explain_enc_acts;

int explain_enc_acts_init(explain_enc_acts *a, const explain_enc_config *c, int maxB, int maxN);
void explain_enc_acts_free(explain_enc_acts *a);

/* y (B, E / G, C) from B evidence sets: off (B + 1), kind (N), x (N, din), w (N), N = off[B]. */
int explain_enc_forward(const explain_enc *e, explain_enc_acts *a, const int64_t *off, int B, const int8_t *kind,
                        const float *x, const float *w, float *y);
int explain_enc_forward_naive(const explain_enc *e, explain_enc_acts *a, const int64_t *off, int B,
                              const int8_t *kind, const float *x, const float *w, float *y);
/* Given dy (B, E / G, C) of the last forward: grads += dL/dparams; dx (N, din) and dw (N) = dL/dx,
 * dL/dw when non-NULL. */
int explain_enc_backward(const explain_enc *e, explain_enc_acts *a, const float *dy, float *dx, float *dw);
int explain_enc_backward_naive(const explain_enc *e, explain_enc_acts *a, const float *dy, float *dx, float *dw);

#endif
