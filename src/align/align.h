/* align.h: the multimodal base aligner of dynmm (DESIGN.md idea 2, trained by `dynmm align`, then
 * frozen): frozen per-modality item features go through per-modality encoders and ONE shared
 * projector into a common d-dim space, are pulled together by InfoNCE over every pair of modalities
 * an item has, reconstructed by per-modality decoders, matched CF-to-text as A-LLMRec's stage 1,
 * and fused into one item latent z_base_i that scores against the user latent h_base_u.
 *
 * Modalities k in {cf, text, visual, audio} (ALIGN_CF..ALIGN_AUDIO). x_i^k (D_k) are frozen
 * features: cf = the SASRec item embedding e_cf, text/visual/audio from the dataset. m_i^k in {0,1}
 * marks presence; missing modalities are the normal case. Cold items (never in training) have no
 * meaningful e_cf: the caller marks cf absent for them. A modality with D_k = 0 is not used at all
 * (no weights); its presence flags are ignored.
 *
 * Model (H = cfg.hidden, act = cfg.act in {relu, gelu (erf form), tanh}):
 *   enc_k(x)  = W2_k act(W1_k x + b1_k) + b2_k              (D_k -> H -> H)
 *   P(u)      = Wp u + bp                                    (H -> d) the SHARED projector (linear)
 *   z_i^k     = P(enc_k(x_i^k))                              for present (i, k)
 *   dec_k(z)  = V2_k act(V1_k z + c1_k) + c2_k               (d -> H -> D_k)
 *   h_u       = P(enc_user(r_u)), enc_user a 2-layer MLP (D_u -> H -> H); users share P with the
 *               items so both live in the same d-dim space
 *   fusion over the present set S_i (never empty for an item with data):
 *     mean:  z_base_i = (1/|S_i|) sum_{k in S_i} z_i^k
 *     gate:  a_i^k = softmax_{k in S_i}(g_k + q . z_i^k),  z_base_i = sum_{k in S_i} a_i^k z_i^k
 *            (learned per-modality gate g (K) and query q (d), both initialised to 0 so training
 *            starts from the masked mean); an item with no modality at all gets z_base_i = 0.
 *   score(u, i) = h_u . z_base_i   (a plain dot product; nothing is normalised at scoring time)
 *
 * Losses (each a mean over present terms; the total is the weighted sum w_nce L_nce + w_recon
 * L_recon + w_match L_match + w_rank L_rank):
 *   L_nce   = (1/N_nce) sum_{present (i,k,l), k != l} [ -s(i,i) + log sum_{j in C_i^l} exp s(i,j) ],
 *             s(i,j) = cos(z_i^k, z_j^l) / tau, C_i^l = the rows j of the negative bank (the global
 *             batch) that have modality l, minus other rows holding the same item id as i (a
 *             duplicate is not a negative); N_nce = number of present ordered pairs in the global
 *             batch = sum_i c_i (c_i - 1), c_i = present modalities of item i.
 *   L_recon = (1/N_recon) sum_{present (i,k)} (1/D_k) |dec_k(z_i^k) - x_i^k|^2   (per-element MSE)
 *   L_match = (1/N_match) sum_{i with cf and text} (1/d) |z_i^cf - z_i^text|^2   (A-LLMRec, KDD'24,
 *             stage-1 matching loss: torch MSELoss between the two latents)
 *   L_rank  = (1/N_rank) sum_{examples e = (u, p, n_1..n_N)}
 *               softmax: -log exp(s_up) / (exp(s_up) + sum_j exp(s_un_j))
 *               bce:     softplus(-s_up) + sum_j softplus(s_un_j)   (A-LLMRec uses N = 1)
 *             with s = h_u . z_base and the items p, n_j rows of this rank's item batch.
 * Modality dropout (training): every present modality of item i is dropped with probability p,
 * never all of them: with r = xoshiro seeded by dm_rng_key(seed, step, item id), four uniforms
 * u_0..u_3 are drawn (always four, so an absent modality shifts nothing), k is dropped when
 * u_k < p; if every present modality was dropped, the j-th present one is kept, j = below(r, count).
 * All losses, the fusion and the normalisers then use the effective (kept) presence.
 *
 * Data-parallel use (one rank holds B items of a global item batch of G rows, U users and R rank
 * examples; the rows of rank r are bank rows lo_r .. lo_r + B_r - 1, in rank order):
 *   align_zero_grad(m);
 *   align_forward(m, a, &b);            // a->z (B, K, d) and a->mask (B, K): the send buffers
 *   allgatherv(a->z, B K d floats)  -> zbank (G, K, d)
 *   allgatherv(a->mask, B K bytes)  -> mbank (G, K)
 *   allgatherv(b.item, B int64)     -> ibank (G)
 *   bank = {G, lo, zbank, mbank, ibank};  b.norm.rank = global R (allreduce); nce/recon/match
 *                                         norms are counted from mbank when left at 0
 *   align_loss(m, a, &b, &bank, dbank, &loss);   // dbank (G, K, d): this rank's share of dL/dzbank
 *   reduce_scatter(dbank, SUM, counts B_r K d) -> mine (B, K, d)
 *        (equivalently allreduce(dbank) and mine = dbank + lo K d)
 *   align_backward(m, a, &b, mine);     // adds mine to dL/dz, back-propagates into m->grads
 *   allreduce(SUM, m->grads_mem, m->nparams); allreduce(SUM, total, nce, recon, match, rank)
 *                                       // (not the n_* fields: those are already global)
 *   align_adam_step(m);                 // identical on every rank
 * Each rank's loss and gradient are its share: the sums over ranks equal the single-process
 * full-batch loss and gradient up to float summation order (anchors are local; the positive and
 * the negatives come from the bank, whose gradient goes back to the rank owning the row).
 * One process: align_train_step() does all of this with the bank = its own batch.
 * Sizing: cfg.max_batch >= the items of any rank's batch, cfg.max_bank >= G (e.g. the global
 * examples per step times 1 + n_neg), cfg.max_users / max_rank >= a rank's users / examples; a rank
 * may hold no items or examples (B = 0) and still takes part. The same item may sit in several
 * ranks' batches: each row is an anchor and none is the other's negative. Modality dropout keys are
 * (seed, step, item id), so the driver should draw anything else (negatives, shuffles) from
 * differently derived seeds.
 *
 * Memory: align_model owns the parameter, gradient and Adam slabs (one contiguous float array each,
 * the same layout, named views into it); align_acts owns activations and scratch sized by the
 * config (max_batch items, max_users users, max_rank examples, max_bank bank rows). Kernels never
 * allocate. Matrix work is OpenBLAS sgemm; OpenMP runs outer loops only and never calls BLAS, so
 * set BLAS and OpenMP thread counts deliberately (e.g. sasrec_set_threads).
 */
#ifndef DM_ALIGN_H
#define DM_ALIGN_H

#include "../config/config.h"

#include <stddef.h>
#include <stdint.h>

enum { ALIGN_CF = 0, ALIGN_TEXT = 1, ALIGN_VISUAL = 2, ALIGN_AUDIO = 3, ALIGN_K = 4 };
enum { ALIGN_ACT_RELU = 0, ALIGN_ACT_GELU = 1, ALIGN_ACT_TANH = 2 };
enum { ALIGN_FUSE_MEAN = 0, ALIGN_FUSE_GATE = 1 };
enum { ALIGN_RANK_SOFTMAX = 0, ALIGN_RANK_BCE = 1 };

/* "cf", "text", "visual", "audio" (the align.modalities / modal.* names). */
const char *align_modality_name(int k);

/* Hyperparameters: the align.* config keys (align_config_from; their defaults and ranges are the
 * key table's, src/config/keys/align.def) plus the data-dependent widths and the capacities. */
typedef struct {
    int dim_in[ALIGN_K]; /* feature width D_k per modality; 0 = modality unused (no weights) */
    int dim_user;        /* width of r_u (sasrec.hidden); 0 = no user tower and no rank loss */
    int d;               /* latent dimension (align.dim) */
    int hidden;          /* H: hidden width of every MLP and the encoders' output width */
    int act;             /* ALIGN_ACT_* */
    int fusion;          /* ALIGN_FUSE_* */
    int rank_loss;       /* ALIGN_RANK_* */
    int n_neg;           /* sampled negatives per rank example */
    float tau;           /* InfoNCE temperature */
    float w_nce, w_recon, w_match, w_rank; /* loss weights */
    float modality_dropout;                /* p in [0, 1) */
    float lr, beta1, beta2, eps, weight_decay; /* AdamW (decoupled decay on every tensor) */
    int max_batch;       /* items per call on this rank */
    int max_users;       /* users per call on this rank (inference batches too) */
    int max_rank;        /* rank examples per call on this rank (0 = max_users) */
    int max_bank;        /* rows of the negative bank (the global item batch; 0 = max_batch) */
    size_t chunk_floats; /* bound on one block of InfoNCE logits (align.nce_chunk_mb) */
    int naive;           /* 1 = the naive reference kernels (tests) */
} align_config;

/* Fills c from the align.* keys of cfg (a config of defaults is dm_cfg_init's; tests and
 * benchmarks override keys with dm_cfg_set): dim_in[k] = dim_avail[k] for the modalities
 * align.modalities lists and 0 for the others (dim_avail NULL = all 0), dim_user as given,
 * chunk_floats from align.nce_chunk_mb. The capacities max_batch, max_users, max_rank and max_bank
 * are left 0 for the caller to set, and naive 0. DM_ECONFIG naming align.modalities for an unknown
 * modality. */
int align_config_from(const dm_cfg *cfg, const int dim_avail[ALIGN_K], int dim_user, align_config *c);
/* Checks what the key table cannot (some modality used, the feature widths, the shape a stored
 * model's file gives: positive sizes, known act / fusion / rank loss; positive capacities and a bank
 * holding the batch); the ranges of the align.* keys are the config loader's (align.def).
 * DM_ECONFIG naming the field. */
int align_config_check(const align_config *c);

/* Named views into one slab; NULL for tensors that do not exist (unused modality, no user tower,
 * mean fusion). Slab order (align_tensor_info): for each used k: enc.<k>.w1 b1 w2 b2; proj.w proj.b;
 * user.w1 b1 w2 b2 (dim_user > 0); for each used k: dec.<k>.w1 b1 w2 b2; fuse.gate fuse.query
 * (gate fusion). Weights are (out, in) as torch.nn.Linear. */
#define ALIGN_MAX_TENSORS (8 * ALIGN_K + 8)
typedef struct {
    float *enc_w1[ALIGN_K]; /* (H, D_k) */
    float *enc_b1[ALIGN_K]; /* (H) */
    float *enc_w2[ALIGN_K]; /* (H, H) */
    float *enc_b2[ALIGN_K]; /* (H) */
    float *proj_w;          /* (d, H) shared projector P */
    float *proj_b;          /* (d) */
    float *user_w1;         /* (H, D_u) */
    float *user_b1;         /* (H) */
    float *user_w2;         /* (H, H) */
    float *user_b2;         /* (H) */
    float *dec_w1[ALIGN_K]; /* (H, d) */
    float *dec_b1[ALIGN_K]; /* (H) */
    float *dec_w2[ALIGN_K]; /* (D_k, H) */
    float *dec_b2[ALIGN_K]; /* (D_k) */
    float *fuse_gate;       /* (K) per-modality gate g */
    float *fuse_query;      /* (d) attention query q */
} align_params;

typedef struct {
    align_config cfg;
    size_t nparams;       /* floats in each slab */
    float *params_mem;    /* (nparams) */
    float *grads_mem;     /* (nparams) summed over ranks by the driver */
    float *m_mem, *v_mem; /* (nparams) Adam moments */
    align_params params, grads;
    long step;            /* Adam steps taken */
    int ntensors;
    size_t offset[ALIGN_MAX_TENSORS]; /* offset of each tensor in the slab */
} align_model;

/* Name ("enc.text.w1"), rank and shape of tensor t < m->ntensors; returns its size in floats. */
size_t align_tensor_info(const align_model *m, int t, const char **name, int *ndim,
                         size_t shape[2]);
/* Index of the tensor with this name, or -1. */
int align_tensor_find(const align_model *m, const char *name);

int align_init(align_model *m, const align_config *cfg);
void align_free(align_model *m);
/* torch.nn.Linear's default initialisation (weights and biases uniform(+-1/sqrt(fan_in))), gate and
 * query zero. Each tensor draws from its own key (seed, tensor kind, modality), so adding or removing
 * a modality leaves every other tensor's initial value unchanged. Resets Adam. */
void align_init_weights(align_model *m, uint64_t seed);

/* Effective presence keep (K) of one item under modality dropout p (see the header comment):
 * keyed by (seed, step, item), never empty when present is not, keep <= present. */
void align_modality_dropout(float p, uint64_t seed, uint64_t step, int64_t item,
                            const uint8_t present[ALIGN_K], uint8_t keep[ALIGN_K]);

/* One rank's batch. */
typedef struct {
    double nce, recon, match, rank; /* global normalisers; <= 0 = counted: nce, recon and match
                                       from the bank's mask (global when the bank is the global
                                       batch), rank = this batch's R */
} align_norms;

typedef struct {
    /* items */
    int B;                          /* items, <= cfg.max_batch */
    const float *x[ALIGN_K];        /* feature tables (rows of D_k floats); NULL when unused */
    const int64_t *xrow;            /* (B) row of item b in every x[k]; NULL = row b */
    const uint8_t *present;         /* (B, K) m_b^k; 1 = present */
    const int64_t *item;            /* (B) global item ids (dropout key, duplicates in the bank);
                                       NULL = 0..B-1 */
    uint64_t seed, step;            /* modality dropout key */
    int train;                      /* 1 = modality dropout (cfg.modality_dropout > 0) */
    /* users and rank examples */
    int U;                          /* users, <= cfg.max_users */
    const float *r;                 /* (U, D_u) user states r_u */
    int R;                          /* rank examples, <= max_rank */
    const int32_t *ex_user;         /* (R) user of each example, in [0, U) */
    const int32_t *ex_pos;          /* (R) item row (in [0, B)) of the positive */
    const int32_t *ex_neg;          /* (R, n_neg) item rows of the sampled negatives */
    align_norms norm;
} align_batch;

/* The negative bank: the global item batch gathered from every rank (see the header comment). */
typedef struct {
    int G;                  /* rows, <= cfg.max_bank */
    int lo;                 /* this rank's first row: local item b is bank row lo + b */
    const float *z;         /* (G, K, d) gathered a->z */
    const uint8_t *mask;    /* (G, K) gathered a->mask */
    const int64_t *item;    /* (G) gathered item ids; NULL = no duplicate exclusion */
    const uint8_t *nce;     /* (G) 1 = the row takes part in InfoNCE (as anchor, positive and
                               negative; N_nce counts only such rows); NULL = every row. Lets
                               the driver keep sampled negatives out of the quadratic InfoNCE */
} align_bank;

typedef struct {
    double total;                    /* w_nce nce + w_recon recon + w_match match + w_rank rank */
    double nce, recon, match, rank;  /* unweighted; this rank's share of each global mean */
    double n_nce, n_recon, n_match, n_rank; /* the normalisers used */
} align_losses;

/* Activations, saved for backward, and scratch, for up to max_batch items, max_users users,
 * max_rank examples and max_bank bank rows of its config. A model may use several (e.g. one for
 * training batches, a larger one for inference): their widths (dim_in, dim_user, d, hidden,
 * n_neg) must be the model's; the capacities may differ. */
typedef struct {
    align_config cfg;
    int B, U, R;
    uint8_t *mask;          /* (max_batch, K) effective presence: the send buffer */
    float *z;               /* (max_batch, K, d) modality latents, 0 where absent: the send buffer */
    float *zb;              /* (max_batch, d) fused z_base */
    float *alpha;           /* (max_batch, K) fusion weights */
    float *hu;              /* (max_users, d) user latents */
    int n[ALIGN_K];         /* present items of modality k */
    int *rows[ALIGN_K];     /* (max_batch) their item rows, ascending */
    float *xin[ALIGN_K];    /* (max_batch, D_k) gathered inputs (compacted) */
    float *eh[ALIGN_K];     /* (max_batch, H) encoder pre-activation */
    float *ea[ALIGN_K];     /* (max_batch, H) act(eh) */
    float *eo[ALIGN_K];     /* (max_batch, H) encoder output */
    float *zc[ALIGN_K];     /* (max_batch, d) z, compacted */
    float *dh[ALIGN_K];     /* (max_batch, H) decoder pre-activation */
    float *da[ALIGN_K];     /* (max_batch, H) act(dh) */
    float *xhat[ALIGN_K];   /* (max_batch, D_k) reconstruction */
    float *uh, *ua, *uo;    /* (max_users, H) user tower */
    /* gradients of the loss wrt the outputs (align_loss) */
    float *dz;              /* (max_batch, K, d) */
    float *dzb;             /* (max_batch, d) */
    float *dhu;             /* (max_users, d) */
    float *dxhat[ALIGN_K];  /* (max_batch, D_k) */
    int has_grad;           /* align_loss computed gradients */
    /* scratch */
    float *zhat;            /* (max_batch, K, d) normalised z */
    float *znrm;            /* (max_batch, K) |z| */
    float *sd;              /* (max(max_batch, max_users), d) */
    float *sh1, *sh2;       /* (max(max_batch, max_users), H) */
    float *bhat, *dbhat;    /* (max_bank, d) normalised bank rows of one modality, their grad */
    float *bnrm;            /* (max_bank) */
    int *bidx, *bmap;       /* (max_bank) compact -> bank row, bank row -> compact */
    int64_t *bitem;         /* (max_bank) */
    float *anc, *danc;      /* (max_batch K, d) anchors of one candidate modality, their grad */
    int *apos, *asrc;       /* (max_batch K) positive (compact bank index), source b * K + k */
    int64_t *aitem;         /* (max_batch K) */
    double *rowloss;        /* (max(max_batch K, max_rank)) per-row losses */
    float *logits;          /* (chunk) */
    size_t chunk;           /* floats in logits (>= max_bank) */
    float *dbank_self;      /* (max_batch, K, d) bank gradient of align_train_step */
    float *sc;              /* (max_rank, 1 + n_neg) rank-loss scores */
} align_acts;

int align_acts_init(align_acts *a, const align_config *cfg);
void align_acts_free(align_acts *a);

/* Item encoders, projector, modality dropout, fusion, decoders and the user tower for batch b.
 * DM_EINPUT for rows out of range, sizes over the config, or a present modality without features. */
int align_forward(align_model *m, align_acts *a, const align_batch *b);
/* The four losses of the last forward against the bank. dbank (G, K, d) non-NULL: overwritten with
 * this rank's share of dL/dbank.z (rows and modalities not in the bank's mask get 0) and the local
 * gradients are saved for align_backward; NULL: losses only. DM_EINPUT when the bank's rows
 * lo .. lo + B - 1 are not this rank's a->z and a->mask (a driver bug), or sizes are out of range. */
int align_loss(align_model *m, align_acts *a, const align_batch *b, const align_bank *bank,
               float *dbank, align_losses *loss);
/* Back-propagates the last align_loss, plus dz_bank (B, K, d) = this rank's rows of the bank
 * gradient summed over ranks (NULL = none), ACCUMULATING into m->grads. */
int align_backward(align_model *m, align_acts *a, const align_batch *b, const float *dz_bank);
/* One process: forward, the bank = this batch (G = B, lo = 0), loss, backward (accumulates). */
int align_train_step(align_model *m, align_acts *a, const align_batch *b, align_losses *loss);
/* Forward and losses with the bank = this batch, no gradients. */
int align_eval_loss(align_model *m, align_acts *a, const align_batch *b, align_losses *loss);
void align_zero_grad(align_model *m);
/* AdamW (torch.optim.AdamW, src/nn/adam.h): w *= 1 - lr wd; m, v moments; w -= lr/(1 - b1^t) m /
 * (sqrt(v)/sqrt(1 - b2^t) + eps). Deterministic, so every rank takes the same step. */
void align_adam_step(align_model *m);

/* Inference. z_base (n, d) of n items (no dropout; present (n, K) as given, so a stress test drops a
 * modality by clearing its flags), in chunks of a->cfg.max_batch; x/xrow as in align_batch (xrow (n)
 * or NULL = rows 0..n-1). zmod (n, K, d) non-NULL receives the per-modality latents (0 where
 * absent). Scores are plain dot products h_u . z_base_i (nothing is normalised). */
int align_item_latents(align_model *m, align_acts *a, const float *const x[ALIGN_K],
                       const int64_t *xrow, const uint8_t *present, int n, float *zbase,
                       float *zmod);
/* h_base (n, d) of n users from r (n, D_u), in chunks of a->cfg.max_users. */
int align_user_latents(align_model *m, align_acts *a, const float *r, int n, float *h);

#endif
