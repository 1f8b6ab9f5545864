/* lightgcn.h: LightGCN (He et al., SIGIR 2020) as RecBole implements it:
 *
 *   E0 = [U; V]                                   U (n_users, d), V (n_items, d): the ego embeddings
 *   A  = the user-item graph of the distinct training pairs, N = n_users + n_items nodes
 *   A_hat = D^-1/2 A D^-1/2,  D_nn = deg(n) + 1e-7 (RecBole's guard for isolated nodes)
 *   E_{k+1} = A_hat E_k,  F = (E0 + E1 + ... + E_K) / (K + 1)    (K = lightgcn.layers)
 *   score(u, i) = F_u . F_i
 *   triple (u, i, j): i a training item of u, j a uniform item u never took in training
 *   l_uij = -log sigmoid(F_u . (F_i - F_j)) + (reg / 2) (|U_u|^2 + |V_i|^2 + |V_j|^2)
 *   batch loss = (sum of l over the global batch) / (triples in the global batch); Adam
 *
 * The L2 term is on the ego embeddings of the batch's triples, squared (RecBole's EmbLoss with
 * require_pow = True; the paper's lambda |E0|^2 over the batch). Backward: with G = dLoss/dF, the
 * gradient into E0 is (G + A_hat G + ... + A_hat^K G) / (K + 1) (A_hat is symmetric), so a rank
 * propagates the gradient of its share of the batch and the ranks' gradients add up to the batch's.
 * Every rank propagates the whole graph at each step (every rank holds the same parameters); the
 * sparse products run row by row in the graph's fixed order, so F is the same on every rank and
 * thread count. The examples are the training interactions, the negative of example k at step s
 * keyed by (seed, s, k's global position), as BPR-MF's (src/bpr/bpr.h).
 *
 * Initialisation as RecBole's xavier_uniform_initialization of the two embedding tables.
 * Memory: the parameter, gradient and two Adam slabs (N d floats each), the graph in CSR
 * (N + 1 offsets, 2 nnz columns and values), five (N, d) buffers for F, the parameters F was
 * computed from, the gradient G and two propagation buffers, the training pairs.
 */
#ifndef DM_LIGHTGCN_H
#define DM_LIGHTGCN_H

#include "../model/model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_users, n_items, d, K;
    float reg;                   /* L2 weight on the ego embeddings of each triple */
    float lr, beta1, beta2, eps; /* Adam */
} lightgcn_config;

typedef struct {
    lightgcn_config cfg;
    size_t N;               /* nodes: n_users + n_items (users first) */
    size_t nparams;         /* N d */
    float *params, *grads;  /* E0 (N, d) and its gradient */
    float *opt;             /* Adam m then v: (2 nparams) */
    long t;                 /* Adam steps taken */
    /* the normalised graph A_hat in CSR */
    int64_t *adj_off;       /* (N + 1) */
    int32_t *adj_col;       /* (nnz) */
    float *adj_val;         /* (nnz) 1 / sqrt(D_aa D_bb) */
    size_t nnz;
    /* propagation */
    float *F;               /* (N, d) the layer mean of the parameters in F_of */
    float *F_of;            /* (N, d) the parameters F was computed from */
    int have_F;
    float *G;               /* (N, d) gradient into F */
    float *cur, *nxt;       /* (N, d) scratch */
    /* training examples: the DM_TRAIN interactions */
    size_t n_ex;
    int32_t *ex_u, *ex_i;   /* (n_ex) */
    int64_t *u_off;         /* (n_users + 1) into u_items */
    int32_t *u_items;       /* each user's training items, sorted (negatives avoid them) */
} lightgcn_model;

/* Allocates the model, its graph and training set (src/model/pairs.h) from the DM_TRAIN rows of d;
 * weights drawn from seed. */
int lightgcn_init(lightgcn_model *m, const lightgcn_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed);
void lightgcn_free(lightgcn_model *m);

/* out (N, d) = (in + A_hat in + ... + A_hat^K in) / (K + 1) */
void lightgcn_propagate(lightgcn_model *m, const float *in, float *out);
/* m->F for the current parameters (recomputed when they changed) */
const float *lightgcn_final(lightgcn_model *m);
/* The gradient of (sum over the triples of l_uij) / norm added into m->grads; *loss = the sum. */
int lightgcn_grad_triples(lightgcn_model *m, const int32_t *u, const int32_t *i, const int32_t *j, size_t n, double norm, double *loss);
/* The negative item of training example k at step `step` (keyed by (seed, step, gidx)). */
int32_t lightgcn_negative(const lightgcn_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx);
void lightgcn_adam_step(lightgcn_model *m);
/* scores (B, n_items) of users[0..B) */
int lightgcn_scores(lightgcn_model *m, const size_t *users, size_t B, float *scores);

extern const dm_model_ops lightgcn_model_ops;

#endif
