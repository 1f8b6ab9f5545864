/* adapter.h: the online adapter of dynamic incremental alignment (DESIGN.md idea 1): a gated
 * residual on the frozen base latents, learned from recent traffic window by window.
 *
 * Model (two separate adapters, one for items and one for users, with their own weights: the
 * inputs differ in width and meaning):
 *   item i:  x_i = [e_cf_i ; s_i]       (Dx_i = d_cf + ds_item)
 *   user u:  x_u = [r_u ; s_u]          (Dx_u = d_cf + ds_user)
 *   g(x)  = W2 relu(W1 x + b1) + b2     W1 (H, Dx), b1 (H), W2 (d, H), b2 (d); H = adapter.hidden
 *   a(x)  = sigmoid(w_a . x + c_a)      the confidence gate; a = 1 with cfg.gate = 0
 *   z_i = z_base_i + a_i g_item(x_i),  h_u = h_base_u + b_u g_user(x_u),  score(u, i) = h_u . z_i
 * e_cf_i are the CF item embeddings, r_u the user's CF state (SASRec output), z_base / h_base the
 * frozen base aligner's latents, s_i / s_u the window summaries (adapter_summary.h). All tables are
 * indexed by the dataset's dense ids (items 0..n_items-1, users 0..n_users-1).
 *
 * Losses of one batch of examples (u_b, p_b, n_b1..n_bK), negatives given by the caller, divided by
 * a caller-given GLOBAL example count N (adapter_batch.norm) so per-rank values sum to the global
 * mean:
 *   rec   softmax: l_b = -s_b0 + log sum_{k=0..K} exp(s_bk)   (s_b0 = h_u . z_p, s_bk = h_u . z_nk)
 *         bce:     l_b = softplus(-s_b0) + sum_{k=1..K} softplus(s_bk)
 *         L_rec = (1/N) sum_b l_b
 *   kl    L_kl = (1/N) sum_b [ |h_ub - h_base|^2 / (2 sigma_u^2) + sum_{k=0..K} |z_ibk - z_base|^2 / (2 sigma^2) ]
 *         (the KL between N(z, sigma^2 I) and N(z_base, sigma^2 I), counted per occurrence of a
 *         user or item in the batch, so shards sum exactly to the full batch; sigma_u = sigma_user,
 *         or sigma when sigma_user <= 0. The driver sets both in units of the RMS norm of its base
 *         latents, since the item and user latents of a dot-product model differ in scale)
 *   ewc   L_ewc = lambda_ewc sum_k F_k (theta_k - theta*_k)^2   over the whole slab, with the
 *         diagonal Fisher F and anchor theta* of the last adapter_fisher_commit(). A global term:
 *         adapter_adam_step adds its gradient once (after the allreduce), adapter_ewc_loss gives
 *         its value to log once.
 *   Fisher: F_k = gamma F_k + (1/S) sum_{b in sample} (d l_b / d theta_k)^2 over a sample of S
 *         examples of the window (per-example gradients of the recommendation loss only),
 *         gamma = fisher_decay (0 = replace: plain EWC with the last window's Fisher).
 * Ablation switches (cfg): gate (0: a = b = 1, gate weights unused), kl (0: no KL term), ewc (0:
 * no EWC term, no Fisher needed), ema (0: serve the raw weights). Replay is the driver's: mix = 0
 * or no buffer in the batch plan (adapter_replay.h).
 *
 * EMA: ema = decay ema + (1 - decay) theta after every Adam step (adapter_ema_update); training
 * always uses the raw weights theta, serving uses the EMA weights (raw ones when cfg.ema = 0).
 *
 * Data-parallel use per window w = 0..n_windows-1 (prequential: serve and evaluate window w first,
 * then train on it). Every rank holds the tables, the window's records and the buffer; kernels
 * never see ranks. A rank's share of a global batch is dm_shard_even(G, nranks, rank).
 *   adapter_window_gather(d, w, &W); adapter_window_gather(d, w - 1, &W1); (w - 2, &W2)
 *   adapter_summaries(&sc, n_users, n_items, &W1.ev, &W2.ev, W1.t_begin, window_start[w],
 *                     s_item, s_user)        the summaries of the window before w (no leakage);
 *                                            identical on every rank
 *   tables t = {e_cf, z_base, s_item, r (user CF states from the history before w), h_base, s_user}
 *   serve:  adapter_item_latents(m, a, &t, 1, NULL, n_items, z, NULL)  all items once (sgemm)
 *           adapter_user_latents(m, a, &t, 1, users, n, h, NULL)      this rank's users
 *           scores = h . z^T, exactly as base scoring            -> evaluate window w
 *   train (skip when W.n == 0 and nothing can be replayed), step = 0..steps-1:
 *           adapter_plan_batch(&pc, W.rec, W.n, replay ? &buf : NULL, w, step, G, U, P, Ng)
 *           adapter_zero_grad(m)
 *           adapter_train_step(m, a, &t, &(adapter_batch){hi - lo, U + lo, P + lo, Ng + lo K, G}, &l)
 *           allreduce(SUM, m->grads_mem, m->nparams); allreduce(SUM, {l.rec, l.kl})
 *           adapter_adam_step(m)        adds the EWC gradient itself; identical on every rank
 *           adapter_ema_update(m)
 *           log l.rec + l.kl + adapter_ewc_loss(m)      (the EWC term once, not per rank)
 *   end of window, when cfg.ewc (S = adapter.fisher_samples):
 *           adapter_plan_batch(&pc, W.rec, W.n, NULL, w, ADAPTER_STEP_FISHER, S, U, P, Ng)
 *           adapter_fisher_begin(m); adapter_fisher_accumulate(m, a, &t, rank's block, norm = S)
 *           allreduce(SUM, m->fisher_acc, m->nparams); adapter_fisher_commit(m)
 *   adapter_reservoir_add(&buf, w, W.rec, W.n)   (after training: the buffer holds older windows)
 * A rank's share larger than cfg.max_batch is split over several train_step / fisher calls with
 * the same norm (gradients accumulate). 1 and 3 ranks give the same weights to float rounding
 * (tests/unit/test_adapter.c bounds it): with OpenBLAS a row's result depends on the other rows of
 * its sgemm call, and the sums over examples are grouped by shard. Over hundreds of Adam steps that
 * rounding grows, so the stage (stages/stage_stream.c) runs training and Fisher in reproducible mode
 * (src/nn/gemm.h: every row of a product rounded alike whatever the call and the thread count),
 * cuts every batch into fixed chunks whatever the rank count and sums the chunks' gradients in
 * fixed point (chunked_sum): bitwise the same weights at any rank and thread count, given tables
 * bitwise the same on every rank (the stage computes r and h_base in reproducible mode too).
 *
 * Memory: the adapter owns its slabs (parameters, gradients, Adam moments, EMA, Fisher, anchor,
 * Fisher accumulator, the Adam step's gradient: one layout, named views); adapter_acts owns the activations of up to
 * cfg.max_batch examples and cfg.serve_rows serving rows. The tables belong to the caller. Kernels
 * never allocate. Matrix work is nn_sgemm (OpenBLAS, or the fixed-order kernel in reproducible
 * mode) outside OpenMP regions.
 */
#ifndef DM_ADAPTER_H
#define DM_ADAPTER_H

#include "adapter_replay.h"
#include "adapter_summary.h"
#include "adapter_window.h"

#include "../config/config.h"

#include <stddef.h>
#include <stdint.h>

enum { ADAPTER_LOSS_SOFTMAX = 0, ADAPTER_LOSS_BCE = 1 };

/* Hyperparameters: the adapter.* keys (adapter_config_from; their defaults and ranges are the key
 * table's, src/config/keys/adapter.def) plus the sizes of the run, which the driver sets. */
typedef struct {
    int n_items, n_users; /* table rows (ids 0..n-1) */
    int d_cf;             /* width of e_cf_i and r_u */
    int d;                /* base latent width: output of g */
    int ds_item, ds_user; /* summary widths (adapter_summary_dims) */
    int hidden;           /* H (adapter.hidden) */
    int negatives;        /* K per example */
    int max_batch;        /* examples per call on this rank (sizes the activations) */
    int serve_rows;       /* rows per block when computing latents of many items/users */
    int loss;             /* ADAPTER_LOSS_* */
    int gate, ema, kl, ewc; /* switches, 1 = on */
    float sigma;          /* KL scale of the items: |z - z_base|^2 / (2 sigma^2) (absolute) */
    float sigma_user;     /* KL scale of the users: |h - h_base|^2 / (2 sigma_user^2); <= 0 = sigma */
    float lambda_ewc;
    float fisher_decay;   /* gamma in F = gamma F + F_window */
    float ema_decay;
    float lr, beta1, beta2, eps; /* Adam (PyTorch's formula) */
    int zero_init;        /* 1 = W2, b2 start at zero: dynamic latents start equal to the base */
    int naive;            /* 1 = naive reference kernels (tests) */
} adapter_config;

/* Fills c from the adapter.* keys of cfg (a config of defaults is dm_cfg_init's; tests and
 * benchmarks override keys with dm_cfg_set). sigma is adapter.sigma as it stands (the stage rescales
 * it by the base latents' RMS norm), sigma_user 0. The sizes (n_items, n_users, d_cf, d, ds_item,
 * ds_user, max_batch) are left 0 for the caller to set, and naive 0. */
void adapter_config_from(const dm_cfg *cfg, adapter_config *c);
/* Checks what the key table cannot: the sizes the caller sets (positive, a non-empty input); the
 * ranges of the adapter.* keys are the config loader's (adapter.def). DM_ECONFIG naming the field. */
int adapter_config_check(const adapter_config *c);

/* Views of one side's weights (item or user). */
typedef struct {
    float *w1; /* (H, Dx) */
    float *b1; /* (H) */
    float *w2; /* (d, H) */
    float *b2; /* (d) */
    float *wa; /* (Dx) gate weights */
    float *ca; /* (1) gate bias */
} adapter_side;

#define ADAPTER_NTENSORS 12
typedef struct {
    adapter_side item, user; /* tensors 0..5 item (w1 b1 w2 b2 wa ca), 6..11 user */
} adapter_params;

/* Name ("item.w1", ...) and shape of tensor k; returns its size in floats. */
size_t adapter_tensor_info(const adapter_config *c, int k, const char **name, int *ndim,
                           size_t shape[2]);

typedef struct {
    adapter_config cfg;
    int dx_item, dx_user;   /* d_cf + ds_item, d_cf + ds_user */
    size_t nparams;         /* floats in each slab */
    size_t offset[ADAPTER_NTENSORS];
    float *params_mem;      /* (nparams) theta, the training weights */
    float *grads_mem;       /* (nparams) summed over ranks by the driver */
    float *m_mem, *v_mem;   /* (nparams) Adam moments */
    float *ema_mem;         /* (nparams) EMA of theta (serving) */
    float *fisher_mem;      /* (nparams) diagonal Fisher F */
    float *anchor_mem;      /* (nparams) theta* */
    float *fisher_acc;      /* (nparams) this window's sum, summed over ranks by the driver */
    float *gstep_mem;       /* (nparams) scratch: the gradient Adam steps on (grads + EWC) */
    adapter_params params, grads, ema;
    long step;              /* Adam steps taken */
    int has_fisher;         /* a Fisher has been committed (EWC active) */
} adapter;

/* Activations of one side for up to maxN rows. */
typedef struct {
    int maxN, N, Dx;
    int32_t *ids;  /* (maxN) table row of each batch row */
    float *occ;    /* (maxN) occurrences in the batch (KL weight) */
    int32_t *slot; /* (table rows) batch row of each id, -1 = absent */
    float *x;      /* (maxN, Dx) [e_cf ; s] or [r ; s] */
    float *pre;    /* (maxN, H) W1 x + b1 */
    float *hact;   /* (maxN, H) relu(pre) */
    float *g;      /* (maxN, d) */
    float *gl;     /* (maxN) gate logit */
    float *a;      /* (maxN) gate */
    float *z;      /* (maxN, d) dynamic latent */
    float *dz;     /* (maxN, d) gradient of z */
    float *dg;     /* (maxN, d) */
    float *dh;     /* (maxN, H) */
    float *dgl;    /* (maxN) */
} adapter_side_acts;

typedef struct {
    adapter_config cfg;     /* the configuration the buffers were sized for */
    adapter_side_acts item; /* max(max_batch (K + 1), serve_rows) rows; slots n_items */
    adapter_side_acts user; /* max(max_batch, serve_rows) rows; slots n_users */
    adapter_side_acts ex;   /* K + 1 rows: one example's rows (Fisher) */
    int B;                  /* examples of the current batch */
    int32_t *ex_u;          /* (max_batch) user row of each example */
    int32_t *ex_i;          /* (max_batch, K + 1) item rows: positive, then negatives */
    float *dscore;          /* (max_batch, K + 1) d loss / d score */
    double *rowloss;        /* (max_batch) per-example losses */
    float *gtmp;            /* (nparams) one example's gradient (Fisher) */
} adapter_acts;

/* The tables of the current window (owned by the caller). */
typedef struct {
    const float *e_cf;   /* (n_items, d_cf) */
    const float *z_base; /* (n_items, d) */
    const float *s_item; /* (n_items, ds_item); NULL when ds_item = 0 */
    const float *r;      /* (n_users, d_cf) user CF states */
    const float *h_base; /* (n_users, d) */
    const float *s_user; /* (n_users, ds_user); NULL when ds_user = 0 */
} adapter_tables;

/* One (local) batch. */
typedef struct {
    int B;              /* examples, <= cfg.max_batch */
    const int32_t *user; /* (B) */
    const int32_t *pos;  /* (B) positive item */
    const int32_t *neg;  /* (B, K) negatives */
    double norm;        /* divisor: the GLOBAL number of examples over all ranks; <= 0 = B */
} adapter_batch;

typedef struct {
    double rec; /* sum of the local examples' l_b / norm */
    double kl;  /* KL term of the local occurrences / norm (0 with cfg.kl = 0) */
} adapter_loss;

/* Allocates the slabs (zeroed) for cfg; adapter_free releases them and zeroes the struct. */
int adapter_init(adapter *m, const adapter_config *cfg);
void adapter_free(adapter *m);
/* PyTorch Linear initialisation (uniform +-1/sqrt(fan_in)) of W1, b1 and the gate weights w_a;
 * c_a = 0 (a starts near 1/2); W2, b2 zero when cfg.zero_init, else uniform +-1/sqrt(H). Keyed by
 * seed: the same weights on every rank. Resets Adam and the Fisher; ema = anchor = theta. */
void adapter_init_weights(adapter *m, uint64_t seed);
int adapter_acts_init(adapter_acts *a, const adapter_config *cfg);
void adapter_acts_free(adapter_acts *a);

/* Forward, losses (rec and, with cfg.kl, KL) and backward; ACCUMULATES into m->grads (call
 * adapter_zero_grad first). Uses the raw weights. DM_EINPUT for ids out of range, DM_ECONFIG for
 * B > max_batch. */
int adapter_train_step(adapter *m, adapter_acts *a, const adapter_tables *t,
                       const adapter_batch *b, adapter_loss *out);
/* Forward and losses only (raw weights). */
int adapter_eval_loss(adapter *m, adapter_acts *a, const adapter_tables *t, const adapter_batch *b,
                      adapter_loss *out);
void adapter_zero_grad(adapter *m);
/* lambda_ewc sum F (theta - theta*)^2 (0 with cfg.ewc = 0 or before the first commit). */
double adapter_ewc_loss(const adapter *m);
/* grad += 2 lambda_ewc F (theta - theta*) (nothing with cfg.ewc = 0 or before the first commit). */
void adapter_ewc_grad(const adapter *m, float *grad);
/* Adam (torch.optim.Adam, src/nn/adam.h) on g = grads + EWC gradient (grads itself is left
 * unchanged). Deterministic. */
void adapter_adam_step(adapter *m);
/* ema = decay ema + (1 - decay) theta, elementwise in float (nothing with cfg.ema = 0). */
void adapter_ema_update(adapter *m);

/* Fisher at the end of a window: begin zeroes fisher_acc; accumulate adds sum_b (d l_b/d theta)^2 /
 * norm over the batch's examples (rec loss only, raw weights; several calls accumulate); after the
 * driver's allreduce of fisher_acc, commit sets F = fisher_decay F + fisher_acc and theta* =
 * theta, and turns EWC on. */
void adapter_fisher_begin(adapter *m);
int adapter_fisher_accumulate(adapter *m, adapter_acts *a, const adapter_tables *t,
                              const adapter_batch *b);
/* Brute force: one full backward per example into a scratch slab (tests). */
int adapter_fisher_accumulate_naive(adapter *m, adapter_acts *a, const adapter_tables *t,
                                    const adapter_batch *b);
void adapter_fisher_commit(adapter *m);

/* Serving. serve = 1: EMA weights (raw with cfg.ema = 0); serve = 0: raw weights.
 * Items ids[0..n) (ids NULL = items 0..n-1): z (n, d) = z_base + a g and/or res (n, d) = a g
 * (either may be NULL). Processes cfg.serve_rows rows per block (sgemm). */
int adapter_item_latents(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                         const int32_t *ids, int n, float *z, float *res);
/* The same for users: h (n, d) = h_base + b g, res (n, d) = b g. */
int adapter_user_latents(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                         const int32_t *ids, int n, float *h, float *res);
/* Gates of items / users ids[0..n) (ids NULL = 0..n-1) into out (n) (1 with cfg.gate = 0). */
int adapter_item_gates(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                       const int32_t *ids, int n, float *out);
int adapter_user_gates(adapter *m, adapter_acts *a, const adapter_tables *t, int serve,
                       const int32_t *ids, int n, float *out);

#endif
