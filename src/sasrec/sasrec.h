/* sasrec.h: SASRec, the self-attentive sequential recommender of Kang & McAuley (ICDM 2018), the
 * collaborative-filtering backbone of dynmm (trained by `dynmm train-cf`, then frozen).
 *
 * Architecture (the reference code kang205/SASRec and its PyTorch port pmixer/SASRec.pytorch):
 *   x0 = dropout(sqrt(C) * E[item_t] + P[t]) * mask_t       E (V, C) shared with the output, row 0 = padding
 *   L blocks, each followed by x *= mask (the timeline mask: padding rows are zero)
 *   h = LN_f(x_L);  score(item i at position t) = h_t . E[i]
 * Block arrangements (sasrec_config.norm):
 *   KANG (default; the reference code): a = LN1(x); y = a + MHA(q=a, kv=x); b = LN2(y); x' = b + FFN(b)
 *        (the query input and the residual are the normalised x, keys/values the raw x, exactly as
 *        kang205 model.py and pmixer model.py: `Q = LN(seqs); seqs = Q + MHA(Q, seqs, seqs)`)
 *   PRE:  x' = y + FFN(LN2(y)),  y = x + MHA(LN1(x))
 *   POST: y = LN1(x + MHA(x)),   x' = LN2(y + FFN(y))
 *   MHA(q, kv) = concat_h softmax(Q_h K_h^T / sqrt(C/H) + causal + key-padding mask) V_h, then W_o
 *        (Q, K, V, W_o linear with bias: torch.nn.MultiheadAttention, whose in_proj (3C, C) layout the
 *        slab uses; the TF code has no W_o). Dropout on the attention probabilities.
 *   FFN(x) = dropout(W2 dropout(relu(W1 x + b1)) + b2)   (the reference's two Conv1d(k=1))
 * Masking: padding positions (input item 0) are excluded as keys (TF's key masking) and their rows are
 * zeroed after the embedding and every block, so a real position's output never depends on the
 * padding. The kernels therefore work on "packed" rows: only the non-padding positions of each
 * sequence are stored and computed (results equal the dense masked computation; see the PyTorch
 * parity test), which is also why training cost scales with the real sequence lengths.
 * Layer norms use eps = 1e-8 as the reference.
 *
 * Losses (sasrec_config.loss), averaged over target positions (pos != 0) with a caller-given count:
 *   BCE: -log sigmoid(h.E[pos]) - log(1 - sigmoid(h.E[neg]))   (one negative per position, given)
 *   CE:  -log softmax_i(h.E[i])[pos] over items 1..n_items (padding excluded), in row blocks
 *
 * Data parallel use (one rank's shard of a global batch of G sequences with global targets Ntgt):
 *   sasrec_zero_grad(m);
 *   sasrec_train_step(m, a, &batch, &loss);   // batch.norm = Ntgt, batch.gidx = global seq indices,
 *                                             // batch.seed/step = dropout key, batch.neg = negatives
 *   allreduce(SUM, m->grads, m->nparams); allreduce(SUM, loss)  -> the full-batch mean gradient/loss
 *   sasrec_adam_step(m);                       // identical on every rank (deterministic); adds
 *                                             // the L2 gradient l2 * w on E and P itself
 *   log loss + sasrec_l2_loss(m)               // the L2 term once, not per rank
 * Dropout masks come from dm_rng_key(seed, step, gidx[b]) per sequence, so 1, 2 and 3 ranks draw the
 * same masks for the same global sequence.
 *
 * Dropout keeps a unit when a 16-bit uniform is below round((1 - p) 2^16) (exact for p = 0.5).
 *
 * Memory: sasrec owns its parameter and gradient slabs (one contiguous float array each, the same
 * layout, named views into it) and the Adam moments (one array: m then v, each in that layout); sasrec_acts owns activations sized for cfg.max_batch sequences.
 * Kernels never allocate. OpenMP parallelises over rows/sequences (loops under NN_PAR_MIN
 * elements stay serial); BLAS is never called inside an OpenMP region, so set BLAS and OpenMP thread
 * counts deliberately (sasrec_set_threads). On shared or oversubscribed nodes run with
 * OMP_WAIT_POLICY=passive: libgomp's spinning workers otherwise starve OpenBLAS's threads (a 2-thread
 * step measured 50x slower on a loaded 2-core node).
 */
#ifndef DM_SASREC_H
#define DM_SASREC_H

#include "../config/config.h"

#include <stddef.h>
#include <stdint.h>

enum { SASREC_NORM_KANG = 0, SASREC_NORM_PRE = 1, SASREC_NORM_POST = 2 };
enum { SASREC_LOSS_BCE = 0, SASREC_LOSS_CE = 1 };

/* Hyperparameters: the sasrec.* config keys (sasrec_config_from), whose key table
 * (src/config/keys/sasrec.def) holds their defaults and ranges; max_batch, chunk_floats and naive
 * are the caller's. */
typedef struct {
    int n_items;         /* items are 1..n_items; id 0 is padding; V = n_items + 1 rows */
    int C;               /* hidden size d (50) */
    int F;               /* feed-forward inner width (0 = C) */
    int T;               /* maxlen (50) */
    int L;               /* blocks (2) */
    int H;               /* heads (1), divides C */
    int max_batch;       /* sequences per call on this rank (sizes the activations) */
    float dropout;       /* 0.5 */
    int norm;            /* SASREC_NORM_* */
    int loss;            /* SASREC_LOSS_* */
    float lr, beta1, beta2, eps; /* Adam: 1e-3, 0.9, 0.98, 1e-8 */
    float l2;            /* L2 on E and P: l2/2 (|E|^2 + |P|^2), added by the Adam step (0) */
    size_t chunk_floats; /* bound on one block of logits (CE loss, scoring); 16M floats = 64 MiB */
    int naive;           /* 1 = use the naive reference kernels (tests) */
} sasrec_config;

/* Fills c from the sasrec.* keys of cfg (a config of defaults is dm_cfg_init's) for n_items items
 * and batches of up to max_batch sequences; chunk_floats from sasrec.ce_chunk_mb, naive = 0.
 * DM_ECONFIG (naming the keys) when sasrec.heads does not divide sasrec.hidden. */
int sasrec_config_from(const dm_cfg *cfg, int n_items, int max_batch, sasrec_config *c);
/* Checks what the key table cannot (items in the dataset, heads dividing C, max_batch * T below
 * 1e9); the ranges of the sasrec.* keys are the config loader's (sasrec.def). DM_ECONFIG naming the
 * field. */
int sasrec_config_check(const sasrec_config *c);

/* Named views into one slab; grads and Adam moments use the same layout. */
#define SASREC_NTENSORS 16
typedef struct {
    float *wte;      /* (V, C) item embeddings; row 0 = padding, kept at zero */
    float *wpe;      /* (T, C) positional embeddings */
    float *ln1w;     /* (L, C) */
    float *ln1b;     /* (L, C) */
    float *qkvw;     /* (L, 3C, C) rows: W_q, W_k, W_v (torch in_proj_weight) */
    float *qkvb;     /* (L, 3C) */
    float *attprojw; /* (L, C, C) W_o (torch out_proj.weight) */
    float *attprojb; /* (L, C) */
    float *ln2w;     /* (L, C) */
    float *ln2b;     /* (L, C) */
    float *fc1w;     /* (L, F, C) first Conv1d(k=1) */
    float *fc1b;     /* (L, F) */
    float *fc2w;     /* (L, C, F) second Conv1d(k=1) */
    float *fc2b;     /* (L, C) */
    float *lnfw;     /* (C) final layer norm */
    float *lnfb;     /* (C) */
} sasrec_params;

/* Name and shape of tensor k of the slab (for checkpoints); returns its size in floats. */
size_t sasrec_tensor_info(const sasrec_config *c, int k, const char **name, int *ndim,
                          size_t shape[3]);

typedef struct {
    sasrec_config cfg;
    int V;                /* n_items + 1 */
    size_t nparams;       /* floats in each slab */
    float *params_mem;    /* (nparams) */
    float *grads_mem;     /* (nparams) summed over ranks by the driver */
    float *m_mem, *v_mem; /* (nparams) each: the Adam moments, one slab of 2 nparams (m_mem first) */
    sasrec_params params, grads;
    long step;            /* Adam steps taken (bias correction) */
    size_t offset[SASREC_NTENSORS]; /* offset of each tensor in the slab */
} sasrec;

/* Dropout masks in the dense layout, 1 = keep (tests and parity checks; the RNG is the normal way).
 * Only the entries of non-padding positions (and j <= i for attention) are read. */
typedef struct {
    const uint8_t *emb; /* (B, T, C) */
    const uint8_t *att; /* (L, B, H, T, T) [query i][key j] */
    const uint8_t *fc1; /* (L, B, T, F) after relu(fc1) */
    const uint8_t *fc2; /* (L, B, T, C) after fc2 */
} sasrec_dense_masks;

/* One (local) batch. Sequences are left-padded to T with item 0, as the reference's sampler. */
typedef struct {
    int B;                /* sequences, <= cfg.max_batch */
    const int32_t *seq;   /* (B, T) input items, 0 = padding */
    const int32_t *pos;   /* (B, T) target item at each position (the next item), 0 = no target.
                             A target must sit at a non-padding input position. */
    const int32_t *neg;   /* (B, T) one sampled negative per target (BCE; ignored for CE) */
    const int64_t *gidx;  /* (B) global sequence index (dropout key); NULL = 0..B-1 */
    double norm;          /* loss divisor: the GLOBAL number of targets over all ranks; <= 0 = local */
    uint64_t seed, step;  /* dropout key: masks of sequence b from dm_rng_key(seed, step, gidx[b]) */
    int train;            /* 1 = dropout on (cfg.dropout > 0) */
    const sasrec_dense_masks *masks; /* non-NULL: use these masks instead of the RNG (train = 1) */
} sasrec_batch;

/* Activations and scratch for up to cfg.max_batch sequences of one model configuration. A model
 * may use several (e.g. one for training batches and a larger one for evaluation): their configs
 * must match the model's except for max_batch and chunk_floats. */
typedef struct {
    sasrec_config cfg;    /* the configuration the buffers were sized for (F resolved) */
    int B, N;             /* sequences and packed (non-padding) rows of the current batch */
    int maxN;             /* max_batch * T */
    size_t attL;          /* max_batch * H * T * T: per-block stride of att and m_att */
    int *off;             /* (B + 1) first packed row of each sequence */
    int *row_t;           /* (maxN) position t of each packed row */
    int *row_item;        /* (maxN) input item */
    int *row_pos;         /* (maxN) target item (0 = none) */
    int *row_neg;         /* (maxN) negative item */
    size_t *att_off;      /* (B + 1) start of each sequence's (H, n, n) attention block */
    int *tgt_row;         /* (maxN) packed rows that carry a target */
    int *tgt_item;        /* (maxN) their target items */
    int *tgt_neg;         /* (maxN) their negatives (BCE) */
    int M;                /* number of targets in the current batch */
    float scale;          /* 1 / norm */
    /* forward activations */
    float *x0;            /* (maxN, C) block-0 input (embedding after dropout) */
    float *ln1;           /* (L, maxN, C) */
    float *ln1_mean, *ln1_rstd; /* (L, maxN) */
    float *qkv;           /* (L, maxN, 3C) */
    float *att;           /* (L, attL) softmax probabilities, packed per sequence */
    float *atty;          /* (L, maxN, C) attention output before W_o */
    float *r1;            /* (L, maxN, C) residual after attention */
    float *ln2;           /* (L, maxN, C) */
    float *ln2_mean, *ln2_rstd; /* (L, maxN) */
    float *fch;           /* (L, maxN, F) dropout(relu(fc1)) */
    float *r2;            /* (L, maxN, C) residual after FFN */
    float *hf;            /* (maxN, C) final hidden state h */
    float *lnf_mean, *lnf_rstd; /* (maxN) */
    uint8_t *m_emb;       /* (maxN, C) dropout keep flags */
    uint8_t *m_att;       /* (L, attL) */
    uint8_t *m_fc1;       /* (L, maxN, F) */
    uint8_t *m_fc2;       /* (L, maxN, C) */
    int drop;             /* dropout active for the current batch */
    /* backward scratch */
    float *dx;            /* (maxN, C) gradient of the residual stream */
    float *dtmp;          /* (maxN, C) */
    float *dtmp2;         /* (maxN, C) */
    float *dqkv;          /* (maxN, 3C) */
    float *dfch;          /* (maxN, F) */
    float *dh;            /* (maxN, C) gradient of h */
    float *hc;            /* (maxN, C) target rows of h, compacted (CE) */
    float *dhc;           /* (maxN, C) */
    float *ones;          /* (maxN) for bias gradients */
    float *rowbuf;        /* (3 maxN) per-row loss scratch */
    float *logits;        /* (chunk) CE / scoring block */
    size_t chunk;         /* floats in logits (>= V) */
} sasrec_acts;

/* Allocates the slabs (zeroed) for cfg; sasrec_free releases them and zeroes the struct. */
int sasrec_init(sasrec *m, const sasrec_config *cfg);
void sasrec_free(sasrec *m);
/* Reference initialisation (pmixer main.py): xavier_normal on every matrix and embedding, PyTorch's
 * default uniform(+-1/sqrt(fan_in)) on the feed-forward biases, zero attention biases, LN ones/zeros,
 * row 0 of E zeroed. The same seed gives the same weights on every rank. Resets Adam. */
void sasrec_init_weights(sasrec *m, uint64_t seed);
int sasrec_acts_init(sasrec_acts *a, const sasrec_config *cfg);
void sasrec_acts_free(sasrec_acts *a);

/* Sets the OpenMP and OpenBLAS thread counts of this process (n >= 1). */
void sasrec_set_threads(int n);

/* Training: forward with dropout (when batch->train), loss, and backward. ACCUMULATES into
 * m->grads (call sasrec_zero_grad first). *loss = (sum of the local targets' losses) / norm, so the
 * sum over ranks is the global mean. DM_EINPUT for items out of range or a target at padding. */
int sasrec_train_step(sasrec *m, sasrec_acts *a, const sasrec_batch *b, double *loss);
/* Forward and loss only, no gradients (dropout still follows batch->train). */
int sasrec_eval_loss(sasrec *m, sasrec_acts *a, const sasrec_batch *b, double *loss);
void sasrec_zero_grad(sasrec *m);
/* The L2 term l2/2 (|E|^2 + |P|^2) to add once to the global loss for logging. */
double sasrec_l2_loss(const sasrec *m);
/* Adam (PyTorch formula, betas and eps from cfg) on the summed gradient slab plus l2 * w on E and P.
 * Deterministic; row 0 of E stays zero. */
void sasrec_adam_step(sasrec *m);

/* Inference. seq (B, T) left-padded histories (B <= a->cfg.max_batch). out (B, C): the user state r_u =
 * final hidden state at the last position (T - 1); a history that is all padding gives LN_f(0). */
int sasrec_user_states(sasrec *m, sasrec_acts *a, const int32_t *seq, int B, float *out);
/* scores (B, hi - lo) = states (B, C) . E[lo..hi)^T, by sgemm over item blocks. */
void sasrec_scores_block(const sasrec *m, const float *states, int B, int lo, int hi, float *scores);
/* scores (B, K) = states[b] . E[items[b][k]] for given candidate lists items (B, K). */
void sasrec_scores_items(const sasrec *m, const float *states, int B, const int32_t *items, int K,
                         float *scores);
/* Copies the item embedding table e_cf (n_items, C): row i - 1 = E[i]. */
void sasrec_item_table(const sasrec *m, float *out);

/* Final hidden states (maxN, C) of the last forward call in packed order (tests). */
const float *sasrec_hidden(const sasrec_acts *a);

#endif
