/* bpr.h: BPR-MF (Rendle et al., UAI 2009), matrix factorisation trained with the Bayesian
 * personalised ranking loss on sampled triples, as the baseline of RecBole and most papers.
 *
 *   score(u, i) = U_u . V_i                                   U (n_users, d), V (n_items, d)
 *   triple (u, i, j): i a training item of u, j a uniform item u never took in training
 *   x_uij = U_u . (V_i - V_j),   l_uij = -log sigmoid(x_uij) + (reg / 2) (|U_u|^2 + |V_i|^2 + |V_j|^2)
 *   batch loss = (sum of l over the global batch) / (triples in the global batch)
 * Gradients (g = d l / d x = -sigmoid(-x)):
 *   dU_u = g (V_i - V_j) + reg U_u,   dV_i = g U_u + reg V_i,   dV_j = -g U_u + reg V_j
 * Adam on the whole slab (PyTorch's formula). The examples of an epoch are the training
 * interactions; the negative of example k at step s is keyed by (seed, s, k's global position), so
 * the steps do not depend on the rank count.
 *
 * The model is a dm_model_ops (src/model/model.h): `bpr_model_ops` is what the registry lists.
 * Memory: one slab of (n_users + n_items) d floats each for parameters, gradients and the two Adam
 * moments; the training interactions and each user's sorted training items (for rejection).
 */
#ifndef DM_BPR_H
#define DM_BPR_H

#include "../model/model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_users, n_items, d;
    float reg;                   /* L2 weight on the batch's embeddings */
    float init_std;              /* weights start N(0, init_std^2) */
    float lr, beta1, beta2, eps; /* Adam */
} bpr_config;

typedef struct {
    bpr_config cfg;
    size_t nparams;   /* (n_users + n_items) d */
    float *params;    /* U (n_users, d) then V (n_items, d) */
    float *grads;     /* same layout */
    float *opt;       /* Adam m then v: (2 nparams) */
    long t;           /* Adam steps taken */
    /* training examples: the DM_TRAIN interactions */
    size_t n_ex;
    int32_t *ex_u, *ex_i;   /* (n_ex) */
    int64_t *u_off;         /* (n_users + 1) into u_items */
    int32_t *u_items;       /* each user's training items, sorted (negatives avoid them) */
} bpr_model;

/* Allocates the model and its training set (src/model/pairs.h); weights drawn from seed. */
int bpr_init(bpr_model *m, const bpr_config *c, const dm_dataset *d, const int8_t *roles, uint64_t seed);
void bpr_free(bpr_model *m);

/* The gradient of (sum over the triples of the batch of l_uij) / norm added into m->grads; the
 * triples given explicitly: u, i, j (n). *loss = the sum of the triples' losses. */
int bpr_grad_triples(bpr_model *m, const int32_t *u, const int32_t *i, const int32_t *j, size_t n, double norm, double *loss);
/* The negative item of training example k at step `step` (keyed by (seed, step, gidx)). */
int32_t bpr_negative(const bpr_model *m, size_t k, uint64_t seed, uint64_t step, int64_t gidx);
/* One Adam step on the summed gradient (m->t incremented). */
void bpr_adam_step(bpr_model *m);
/* scores (B, n_items) of users[0..B); urows: (B, d) scratch */
void bpr_scores(const bpr_model *m, const size_t *users, size_t B, float *scores, float *urows);

extern const dm_model_ops bpr_model_ops;

#endif
