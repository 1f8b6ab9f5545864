/* gpt2.h: the GPT-2 transformer in C (learned positions, pre-LN blocks, tanh-GELU MLP, causal
 * attention, output head tied to the token embeddings), over OpenBLAS (through nn_sgemm) and OpenMP,
 * with the shared layers of src/nn (linear, layer norm, GELU, softmax, AdamW).
 *
 * Three ways to run it:
 *   - batch forward/backward over (B, T) independent sequences (gpt2_forward / gpt2_backward):
 *     cross-entropy on next tokens, gradients to the inputs (soft vectors) and optionally to the
 *     weights; used to pretrain the in-suite model and to train prompt projectors through the frozen
 *     model. Weight-gradient GEMMs are skipped unless GPT2_WEIGHT_GRADS is passed.
 *   - a KV cache for one sequence (gpt2_cache_*): append tokens or soft vectors, read the
 *     next-token log-probabilities, score many candidate continuations of the cached prefix in
 *     batches without recomputing it, truncate back, generate greedily.
 *   - AdamW over the parameter slab (gpt2_train_init / gpt2_adamw_step).
 *
 * Inputs: a position holds either a token id (>= 0) or GPT2_SOFT(k), meaning row k of a
 * caller-supplied (n_soft, C) matrix that replaces the token embedding there (the position
 * embedding is still added, as HF's inputs_embeds does).
 *
 * Memory: parameters live in one slab (param_slab) with named views (params); gradients, when
 * allocated, in one slab of the same layout (grad_slab), so a data-parallel driver allreduces
 * num_params floats in one call. Weights are stored in the Hugging Face Conv1D orientation
 * (in, out), so checkpoints load without transposes. Activations are allocated by gpt2_reserve()
 * for a maximum (B, T) and reused; nothing is allocated inside forward or backward.
 *
 * Precision (gpt2_set_precision): GPT2_F32 runs every product in float through nn_sgemm. GPT2_BF16
 * runs the products with the frozen weights (the four linear layers of every block and the tied
 * output head, forward and backward to the inputs) on bfloat16 copies of the weights with float
 * accumulation (src/nn/gemm_bf16.h): the activations entering those products are rounded to
 * bfloat16 too. Attention, layer norms, GELU, softmax, embeddings and weight gradients stay float;
 * the float weights stay the parameters (checkpoints, training), the copies are made from them.
 *
 * Threads: OpenMP loops over rows and heads; BLAS is never called from inside a parallel region.
 * gpt2_set_threads(n) gives OpenBLAS n threads and OpenMP n threads only when
 * OMP_WAIT_POLICY=passive (spinning OpenMP workers would steal the BLAS threads' cores), else 1.
 * Under GPT2_BF16 the products with the weights and the loops around them (GELU, log-sum-exp,
 * softmax and attention rows) run on the pool of src/nn/gemm_bf16.h instead, with as many threads
 * as OpenBLAS; its workers sleep between calls, so they steal no core whatever the wait policy.
 */
#ifndef DM_GPT2_H
#define DM_GPT2_H

#include "../nn/gemm_bf16.h"

#include <stddef.h>
#include <stdint.h>

#define GPT2_SOFT(k) (-1 - (k))        /* input code of soft row k */
#define GPT2_IS_SOFT(x) ((x) < 0)
#define GPT2_SOFT_ROW(x) (-1 - (x))

typedef struct {
    int max_seq_len; /* maxT: n_positions */
    int vocab_size;  /* V */
    int num_layers;  /* L */
    int num_heads;   /* NH */
    int channels;    /* C */
    int inner;       /* F: MLP width (n_inner, 4C by default) */
    float ln_eps;    /* layer_norm_epsilon */
} gpt2_config;

#define GPT2_NUM_PARAMS 16
typedef struct {
    float *wte;      /* (V, C) token embeddings and output head */
    float *wpe;      /* (maxT, C) */
    float *ln1w;     /* (L, C) */
    float *ln1b;     /* (L, C) */
    float *qkvw;     /* (L, C, 3C) */
    float *qkvb;     /* (L, 3C) */
    float *attprojw; /* (L, C, C) */
    float *attprojb; /* (L, C) */
    float *ln2w;     /* (L, C) */
    float *ln2b;     /* (L, C) */
    float *fcw;      /* (L, C, F) */
    float *fcb;      /* (L, F) */
    float *fcprojw;  /* (L, F, C) */
    float *fcprojb;  /* (L, C) */
    float *lnfw;     /* (C) */
    float *lnfb;     /* (C) */
} gpt2_params;

/* Activations of one (B, T) forward. With GPT2_KEEP every per-layer buffer has L slices (kept for
 * backward); without it the layers share one slice and att is not stored. */
typedef struct {
    float *encoded;  /* (B, T, C) */
    float *ln1;      /* (L, B, T, C) */
    float *ln1_mean; /* (L, B, T) */
    float *ln1_rstd; /* (L, B, T) */
    float *qkv;      /* (L, B, T, 3C) */
    float *atty;     /* (L, B, T, C) */
    float *att;      /* (L, B, NH, T, T) softmax weights, GPT2_KEEP only */
    float *res2;     /* (L, B, T, C) residual after attention */
    float *ln2;      /* (L, B, T, C) */
    float *ln2_mean; /* (L, B, T) */
    float *ln2_rstd; /* (L, B, T) */
    float *fch;      /* (L, B, T, F) */
    float *fch_gelu; /* (L, B, T, F) */
    float *res3;     /* (L, B, T, C) residual after the MLP */
    float *lnf;      /* (B, T, C) final hidden states */
    float *lnf_mean; /* (B, T) */
    float *lnf_rstd; /* (B, T) */
    float *logits;   /* (B, T, V), or (n_rows, V) with GPT2_TARGET_ROWS; overwritten in backward */
    float *lse;      /* (B, T) or (n_rows) log-sum-exp of each logits row */
    float *lnf_rows; /* (n_rows, C) the final hidden states of the target rows (GPT2_TARGET_ROWS) */
} gpt2_acts;

/* Forward flags. */
enum {
    GPT2_KEEP = 1,     /* keep every layer's activations for gpt2_backward */
    GPT2_NOLOGITS = 2, /* stop at the final hidden states (acts.lnf); no logits, no loss */
    GPT2_TARGET_ROWS = 4, /* logits only at positions with a target (packed, rows[] says which):
                           * soft-prompt positions without targets skip the output head */
};
/* Precisions (gpt2_set_precision). */
enum {
    GPT2_F32 = 0,
    GPT2_BF16 = 1,
};

/* Backward flags. */
enum {
    GPT2_WEIGHT_GRADS = 1, /* accumulate parameter gradients into grad_slab (needs gpt2_train_init) */
};

/* The bfloat16 copies of the weights under GPT2_BF16, packed for nn_bf16_gemm (B of out = inp B):
 * fwd (L, 4): qkvw, attprojw, fcw, fcprojw of each layer as B = W (in, out); bwd (L, 4): the same
 * as B = W^T (out, in), for dinp = dout W^T, packed by the first backward (NULL until then); head
 * B = wte^T (C, V): logits = h wte^T; head_t B = wte (V, C): dh = dlogits wte, packed with bwd. */
typedef nn_bf16_weights gpt2_bf16;

typedef struct {
    gpt2_config cfg;
    int precision;                        /* GPT2_F32 or GPT2_BF16 (in force: see gpt2_set_precision) */
    gpt2_bf16 *bf;                        /* the bfloat16 weights under GPT2_BF16, else NULL */
    gpt2_params params;                   /* views into param_slab */
    size_t param_sizes[GPT2_NUM_PARAMS];  /* floats per view, in gpt2_params order */
    size_t num_params;
    float *param_slab;                    /* (num_params) */
    gpt2_params grads;                    /* views into grad_slab (NULL until gpt2_train_init) */
    float *grad_slab;                     /* (num_params) */
    float *adam_m, *adam_v;               /* (num_params) AdamW moments */
    /* activations, sized by gpt2_reserve */
    gpt2_acts acts;
    float *act_slab;
    size_t act_cap;                       /* floats in act_slab */
    int max_B, max_T, max_flags;
    float *scratch;                       /* (threads, maxT) per-thread attention rows */
    int scratch_threads;
    /* backward buffers, sized by gpt2_reserve with GPT2_KEEP */
    float *dres;   /* (B, T, C) */
    float *dbt_c;  /* (B, T, C) */
    float *dqkv;   /* (B, T, 3C) */
    float *dbt_f;  /* (B, T, F) */
    /* state of the last forward */
    int B, T, flags;
    int *inputs;   /* (maxB, maxT) copy of the last inputs */
    int *targets;  /* (maxB, maxT) copy of the last targets, -1 = none */
    int *rows;     /* (maxB, maxT) positions b * T + t of the logits rows with GPT2_TARGET_ROWS */
    int n_rows;    /* logits rows of the last forward */
    int has_targets;
    const float *target_w; /* (B, T) per-position loss weights or NULL (= 1): see gpt2_forward */
    float norm;
    float loss;    /* sum over targets of -log p, divided by norm */
} gpt2_model;

/* Fills the default GPT-2 small shape scaled by the arguments (F = 4C, eps 1e-5). */
gpt2_config gpt2_config_make(int layers, int heads, int channels, int context, int vocab);
/* Checks a config (positive sizes, C divisible by NH); names `what` (a file) in errors. */
int gpt2_config_check(const gpt2_config *c, const char *what);

/* Allocates the parameter slab (zeroed) and its views. */
int gpt2_init(gpt2_model *m, const gpt2_config *cfg);
/* GPT-2 initialisation: N(0, 0.02) weights, residual projections N(0, 0.02/sqrt(2L)), zero biases,
 * unit layer-norm gains. Deterministic in `seed`, independent of the thread count. */
void gpt2_init_random(gpt2_model *m, uint64_t seed);
void gpt2_free(gpt2_model *m);
/* Names of the parameter views in slab order ("wte", "wpe", "ln1w", ...). */
extern const char *const gpt2_param_names[GPT2_NUM_PARAMS];
size_t gpt2_num_flops_per_token(const gpt2_config *c, int T); /* forward FLOPs with logits */

/* Sets the precision of the products with the weights (GPT2_F32, the default, or GPT2_BF16; see
 * the top of this file) and makes or drops the bfloat16 copies of the weights, which follow the
 * float weights at this call (gpt2_adamw_step refreshes them; other writes to the parameters need
 * another call). Where the CPU lacks AVX512_BF16 (or DM_NO_BF16 is set, nn_bf16_available),
 * GPT2_BF16 falls back to GPT2_F32 and says so once per process in the log; m->precision tells
 * which is in force. */
int gpt2_set_precision(gpt2_model *m, int precision);
/* "f32" / "bf16" and back (-1 for an unknown name). */
const char *gpt2_precision_name(int precision);
int gpt2_precision_parse(const char *name);
/* Bytes of the bfloat16 copies now held. */
size_t gpt2_bf16_bytes(const gpt2_model *m);

/* Sizes the activation buffers for batches up to (B, T) with the given forward flags. */
int gpt2_reserve(gpt2_model *m, int B, int T, int flags);

/* Forward over inputs (B, T) (token ids or GPT2_SOFT(k) rows of soft (n_soft, C), soft may be
 * NULL when no position is soft). targets (B, T): next-token ids, -1 where no loss is taken; may be
 * NULL. When m->target_w is set (B, T weights, kept by the caller until the backward), position i's
 * term is weighted: loss = sum_i w_i (-log p(target_i)) / norm, and the backward follows (weights may
 * be negative: a listwise loss over candidate continuations sets w = dL/dscore / length).
 * m->loss = sum of -log p(target) / norm (norm > 0: pass the number of targets in the global
 * batch so that shard gradients sum to the full-batch gradient). Logits land in m->acts.logits,
 * final hidden states in m->acts.lnf. */
int gpt2_forward(gpt2_model *m, const int *inputs, const float *soft, int n_soft, const int *targets,
                 int B, int T, float norm, int flags);

/* Backward of the last forward (which must have used GPT2_KEEP). The upstream gradient is the sum
 * of: the loss (when the forward had targets), dlogits (B, T, V) when non-NULL, dhidden (B, T, C)
 * (with respect to acts.lnf) when non-NULL. dsoft (n_soft, C), when non-NULL, receives += the
 * gradient of the soft rows. With GPT2_WEIGHT_GRADS parameter gradients are accumulated (+=) into
 * grad_slab; without it no weight-gradient GEMM runs. Destroys acts.logits. */
int gpt2_backward(gpt2_model *m, const float *dlogits, const float *dhidden, float *dsoft, int flags);

/* Training support: allocates grad_slab and the AdamW moments. */
int gpt2_train_init(gpt2_model *m);
void gpt2_zero_grad(gpt2_model *m);
double gpt2_grad_norm(const gpt2_model *m);
void gpt2_grad_scale(gpt2_model *m, float s);
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} gpt2_adamw;
/* One AdamW step (t = 1, 2, ...; torch.optim.AdamW's formula, src/nn/adam.h). Weight decay applies
 * to the matrices (wte, wpe, qkvw, attprojw, fcw, fcprojw) only, as in GPT-2 practice; biases and
 * layer-norm parameters are not decayed. */
void gpt2_adamw_step(gpt2_model *m, const gpt2_adamw *opt, int t);

/* ---- KV cache for one sequence ---- */
typedef struct {
    const gpt2_model *m;
    int cap;         /* positions it can hold (<= maxT) */
    int len;         /* positions cached */
    int max_rows;    /* positions processed per batched call */
    float *k, *v;    /* (L, cap, C) */
    float *logp;     /* (V) log p(next token | cached positions), valid when len > 0 */
    float logp_lse;  /* the log-sum-exp of the logits behind logp */
    /* scratch for up to max_rows rows */
    float *x;        /* (R, C) residual */
    float *ln;       /* (R, C) */
    float *qkv;      /* (R, 3C) */
    float *y;        /* (R, C) */
    float *h;        /* (R, F) */
    float *scores;   /* (R, cap) one head's attention rows */
    float *logits;   /* (logit_rows, V) */
    float *lse;      /* (logit_rows) */
    int logit_rows;  /* min(max_rows, 32M floats / V) */
    int *row_pos;    /* (R) position within its group */
    int *row_start;  /* (R) row index of its group's first row */
    int *row_need;   /* (R) candidate of each row */
    int *row_tok;    /* (R) token of each row */
    float *hid;      /* (cap, C) final hidden state (after LNf) of each cached position */
} gpt2_cache;

int gpt2_cache_init(gpt2_cache *c, const gpt2_model *m, int cap, int max_rows);
void gpt2_cache_free(gpt2_cache *c);
/* Appends n positions (token ids or GPT2_SOFT(k) rows of soft) and updates c->logp. */
int gpt2_cache_append(gpt2_cache *c, const int *inputs, const float *soft, int n_soft, int n);
/* Forgets positions from len on (len <= c->len); logp is recomputed when len > 0. */
int gpt2_cache_truncate(gpt2_cache *c, int len);
/* ll[i] = sum_j log p(tok_i[j] | cached prefix, tok_i[<j]) for the n_cand token sequences
 * tok_i = tokens[offsets[i] .. offsets[i+1]). The cached state is not changed. Candidates are
 * batched max_rows positions at a time; an empty candidate scores 0. */
int gpt2_cache_score(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, double *ll);
/* Like gpt2_cache_score, and each candidate i is followed by a soft token with embedding
 * esoft (n_cand, C) scored through the tied output head as one more vocabulary entry:
 * ll_soft[i] = log( exp(h . e_i) / (sum_v exp(h . wte_v) + exp(h . e_i)) ), h the final hidden
 * state after the candidate's last token (after the prefix for an empty candidate). */
int gpt2_cache_score_soft(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *esoft,
                          double *ll, double *ll_soft);
/* Like gpt2_cache_score_soft, and candidate positions may hold soft inputs GPT2_SOFT(k), rows of
 * csoft (n_csoft, C): such positions are inputs only (no log-probability is taken for them), so
 * ll[i] sums over the candidate's token positions; e.g. evidence tokens before a title. */
int gpt2_cache_score_mixed(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *csoft,
                           int n_csoft, const float *esoft, double *ll, double *ll_soft);
/* Greedy decoding of up to max_new tokens (stops after emitting stop_token when >= 0); appends them
 * to the cache and writes them to out; *n_out = the number generated. */
int gpt2_generate_greedy(gpt2_cache *c, int max_new, int stop_token, int *out, int *n_out);

/* ---- kernels (exposed so tests can hold the optimised ones to their naive references; the
 * linear, layer-norm, GELU and softmax layers are src/nn's) ---- */
void gpt2_set_threads(int n);
/* Causal attention: qkv (B, T, 3C) -> out (B, T, C); att (B, NH, T, T) stored when non-NULL.
 * scratch: (threads, T) floats. The blocked version runs the score and value products as GEMMs. */
void gpt2_attention_forward(float *out, float *att, const float *qkv, float *scratch, int B, int T, int C, int NH);
void gpt2_attention_forward_naive(float *out, float *att, const float *qkv, float *scratch, int B, int T, int C, int NH);
/* dqkv (B, T, 3C) += from dout (B, T, C), att (B, NH, T, T), qkv. scratch: (threads, T). */
void gpt2_attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv,
                             float *scratch, int B, int T, int C, int NH);

#endif
