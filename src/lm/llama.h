/* llama.h: the Llama-family decoder in C (RMSNorm, rotary positions, SwiGLU MLP, grouped-query
 * attention, tied or untied output head; Touvron et al. 2023), over OpenBLAS (through nn_sgemm)
 * and OpenMP with the shared layers of src/nn (linear, RMSNorm, RoPE, SwiGLU, softmax). The model
 * is frozen: it is run forward and differentiated with respect to its inputs, never trained.
 *
 * Two ways to run it, shaped like gpt2.h's so the LM runtime can take either:
 *   - batch forward/backward over (B, T) independent sequences (llama_forward / llama_backward):
 *     logits, cross-entropy on next tokens, and gradients to the soft input rows;
 *   - a KV cache for one sequence (llama_cache_*): append tokens or soft vectors, read the
 *     next-token log-probabilities, score many candidate continuations of the cached prefix in
 *     batches without recomputing it, truncate back, generate greedily.
 *
 * Conventions (Hugging Face LlamaForCausalLM):
 *   x = emb[tok] (or a soft row: no position is added, positions enter through RoPE only)
 *   per block: x += o(attn(rope(q(RMS1(x))), rope(k(RMS1(x))), v(RMS1(x))))
 *              x += down(silu(gate(RMS2(x))) * up(RMS2(x)))
 *   logits = RMSf(x) @ head^T   (head = emb when tied)
 * Query head h reads key/value head h / (NH / NKV) (grouped-query attention; NKV = NH is
 * multi-head attention). RoPE is rotate_half (src/nn/rope.h) on the HF layout of q and k.
 *
 * Inputs: a position holds a token id (>= 0) or LLAMA_SOFT(k), row k of a caller-supplied
 * (n_soft, D) matrix used as that position's input embedding (HF's inputs_embeds).
 *
 * Memory: parameters live in one slab (param_slab) with named views (params). Matrices are in
 * torch.nn.Linear's (out, in) layout, as both HF and llama2.c store them; the q, k and v
 * projections of a layer are stacked into one (QD + 2 KD, D) matrix and gate and up into one
 * (2F, D), so each is one GEMM. Activations are sized by llama_reserve() for a maximum (B, T) and
 * reused; nothing is allocated inside forward or backward.
 *
 * Precision (llama_set_precision), as gpt2.h's: LLAMA_F32 runs every product in float through
 * nn_sgemm. LLAMA_BF16 runs the products with the frozen weights (the qkv, o, gate/up and down
 * projections of every block and the output head, forward, in the KV cache and backward to the
 * inputs) on bfloat16 copies of the weights with float accumulation (src/nn/gemm_bf16.h): the
 * activations entering those products are rounded to bfloat16 too. Attention, RMSNorm, RoPE,
 * SwiGLU, softmax and the embedding lookup stay float; the float weights stay the parameters.
 *
 * Threads: OpenMP loops over rows and heads; BLAS is never called from inside a parallel region
 * (gpt2_set_threads sets both pools for the whole LM runtime). Under LLAMA_BF16 the products run
 * on the pool of src/nn/gemm_bf16.h (as many threads as OpenBLAS).
 */
#ifndef DM_LLAMA_H
#define DM_LLAMA_H

#include "../nn/gemm_bf16.h"

#include <stddef.h>
#include <stdint.h>

#define LLAMA_SOFT(k) (-1 - (k))        /* input code of soft row k */
#define LLAMA_IS_SOFT(x) ((x) < 0)
#define LLAMA_SOFT_ROW(x) (-1 - (x))

typedef struct {
    int dim;          /* D: hidden_size */
    int hidden_dim;   /* F: intermediate_size */
    int n_layers;     /* L */
    int n_heads;      /* NH */
    int n_kv_heads;   /* NKV, dividing NH */
    int head_dim;     /* hd, even: D / NH unless the checkpoint says otherwise */
    int vocab_size;   /* V */
    int max_seq;      /* maxT: max_position_embeddings */
    float rope_theta; /* base of the rotary frequencies (10000 for Llama 2, 500000 for Llama 3) */
    float norm_eps;   /* rms_norm_eps */
    int tied;         /* 1: the output head is the embedding matrix */
    /* Llama 3.1 "llama3" frequency scaling (rope_scaling in config.json); factor 0 = none */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos;
} llama_config;

/* Precisions (llama_set_precision): the values of gpt2.h's GPT2_F32 and GPT2_BF16. */
enum {
    LLAMA_F32 = 0,
    LLAMA_BF16 = 1,
};

/* The bfloat16 copies of the weights under LLAMA_BF16, packed for nn_bf16_gemm (B of out = inp B):
 * fwd (L, 4): wqkv, wo, w13, w2 of each layer as B = W^T (in, out); bwd (L, 4): the same as B = W
 * (out, in), for dinp = dout W, packed by the first llama_backward (NULL until then); head B =
 * head^T (D, V): logits = h head^T (head = emb when tied: one copy); head_t B = head (V, D): dh =
 * dlogits head, packed with bwd. */
typedef nn_bf16_weights llama_bf16;

#define LLAMA_NUM_PARAMS 9
typedef struct {
    float *emb;       /* (V, D) token embeddings */
    float *attn_norm; /* (L, D) */
    float *wqkv;      /* (L, QD + 2 KD, D): rows of q (NH hd), k (NKV hd), v (NKV hd) */
    float *wo;        /* (L, D, QD) */
    float *ffn_norm;  /* (L, D) */
    float *w13;       /* (L, 2F, D): rows of gate (F), then up (F) */
    float *w2;        /* (L, D, F) down */
    float *norm;      /* (D) final norm */
    float *head;      /* (V, D) output head; == emb when tied (no storage of its own) */
} llama_params;

/* Activations of one (B, T) forward. With LLAMA_KEEP every per-layer buffer has L slices (kept for
 * the backward); without it the layers share one slice and att is not stored. */
typedef struct {
    float *x0;       /* (B, T, D) input embeddings */
    float *xn1;      /* (L, B, T, D) RMS1 output */
    float *rstd1;    /* (L, B, T) */
    float *qkv;      /* (L, B, T, QD + 2 KD) projections, q and k rotated */
    float *att;      /* (L, B, NH, T, T) softmax weights, LLAMA_KEEP only */
    float *atty;     /* (L, B, T, QD) attention output before o */
    float *res2;     /* (L, B, T, D) residual after attention */
    float *xn2;      /* (L, B, T, D) */
    float *rstd2;    /* (L, B, T) */
    float *gu;       /* (L, B, T, 2F) gate and up projections */
    float *hsw;      /* (L, B, T, F) silu(gate) * up */
    float *res3;     /* (L, B, T, D) residual after the MLP */
    float *xf;       /* (B, T, D) final hidden states (after the final norm) */
    float *rstdf;    /* (B, T) */
    float *logits;   /* (B, T, V), or (n_rows, V) with LLAMA_TARGET_ROWS; overwritten in backward */
    float *lse;      /* (B, T) or (n_rows) */
    float *xf_rows;  /* (n_rows, D) final hidden states of the target rows (LLAMA_TARGET_ROWS) */
} llama_acts;

/* Forward flags (the values of gpt2.h's). */
enum {
    LLAMA_KEEP = 1,        /* keep every layer's activations for llama_backward */
    LLAMA_NOLOGITS = 2,    /* stop at the final hidden states (acts.xf) */
    LLAMA_TARGET_ROWS = 4, /* logits only at positions with a target (packed; rows[] says which) */
};

typedef struct {
    llama_config cfg;
    int precision;                         /* LLAMA_F32 or LLAMA_BF16 (in force: see llama_set_precision) */
    llama_bf16 *bf;                        /* the bfloat16 weights under LLAMA_BF16, else NULL */
    llama_params params;                   /* views into param_slab */
    size_t param_sizes[LLAMA_NUM_PARAMS];  /* floats per view (0 for a tied head) */
    size_t num_params;
    float *param_slab;                     /* (num_params) */
    float *rope_cos, *rope_sin;            /* (maxT, hd/2) */
    /* activations, sized by llama_reserve */
    llama_acts acts;
    float *act_slab;
    size_t act_cap;
    int max_B, max_T, max_flags;
    float *scratch;                        /* (max(threads, QBLOCK), maxT) attention rows */
    int scratch_threads;
    int *pos;                              /* (maxB maxT) position of each row: t */
    /* backward buffers, sized with LLAMA_KEEP */
    float *dres;   /* (B, T, D) */
    float *dbt_d;  /* (B, T, D) */
    float *dqkv;   /* (B, T, QD + 2 KD) */
    float *dbt_q;  /* (B, T, QD) */
    float *dgu;    /* (B, T, 2F) */
    float *dbt_f;  /* (B, T, F) */
    /* state of the last forward */
    int B, T, flags;
    int *inputs;   /* (maxB, maxT) */
    int *targets;  /* (maxB, maxT), -1 = none */
    int *rows;     /* (maxB, maxT) positions b T + t of the logits rows with LLAMA_TARGET_ROWS */
    int n_rows;
    int has_targets;
    const float *target_w; /* (B, T) per-position loss weights or NULL (= 1), as gpt2_model's */
    float norm;
    float loss;    /* sum over targets of w (-log p), divided by norm */
} llama_model;

/* Derived sizes: QD = NH hd, KD = NKV hd. */
static inline int llama_qdim(const llama_config *c) { return c->n_heads * c->head_dim; }
static inline int llama_kvdim(const llama_config *c) { return c->n_kv_heads * c->head_dim; }

/* Checks a config (positive sizes, NKV divides NH, even head_dim, theta > 1, eps > 0); names
 * `what` (a file) in errors. */
int llama_config_check(const llama_config *c, const char *what);
/* Allocates the parameter slab (zeroed), its views and the RoPE tables. */
int llama_init(llama_model *m, const llama_config *cfg);
void llama_free(llama_model *m);
/* Sets the precision of the products with the weights (LLAMA_F32, the default, or LLAMA_BF16; see
 * the top of this file) and makes or drops the bfloat16 copies of the weights, which follow the
 * float weights at this call (later writes to the parameters need another call). Where the CPU
 * lacks AVX512_BF16 (or DM_NO_BF16 is set, nn_bf16_available), LLAMA_BF16 falls back to LLAMA_F32
 * and says so once per process in the log; m->precision tells which is in force. */
int llama_set_precision(llama_model *m, int precision);
/* Bytes of the bfloat16 copies now held (the backward's copies once a backward has run). */
size_t llama_bf16_bytes(const llama_model *m);
/* Names of the parameter views in slab order ("emb", "attn_norm", "wqkv", ...). */
extern const char *const llama_param_names[LLAMA_NUM_PARAMS];
/* RoPE frequencies of a config (hd/2), Llama 3 scaling applied when rope_factor > 0. */
void llama_inv_freq(const llama_config *c, double *inv_freq);

/* Sizes the activation buffers for batches up to (B, T) with the given forward flags. */
int llama_reserve(llama_model *m, int B, int T, int flags);

/* Forward over inputs (B, T) (token ids or LLAMA_SOFT(k) rows of soft (n_soft, D); soft may be
 * NULL when no position is soft). targets (B, T): next-token ids, -1 where no loss is taken; may be
 * NULL. m->loss = sum_i w_i (-log p(target_i)) / norm (norm > 0; w from m->target_w or 1). Logits
 * land in m->acts.logits, final hidden states in m->acts.xf. Same contract as gpt2_forward. */
int llama_forward(llama_model *m, const int *inputs, const float *soft, int n_soft, const int *targets, int B,
                  int T, float norm, int flags);
/* Backward of the last forward (which must have used LLAMA_KEEP) to the inputs only. The upstream
 * gradient is the sum of: the loss (when the forward had targets), dlogits (B, T, V) when non-NULL
 * (not with LLAMA_TARGET_ROWS), dhidden (B, T, D) with respect to acts.xf when non-NULL. dsoft
 * (n_soft, D), when non-NULL, receives += the gradient of the soft rows. Destroys acts.logits. */
int llama_backward(llama_model *m, const float *dlogits, const float *dhidden, float *dsoft);

/* ---- KV cache for one sequence (gpt2_cache's API) ---- */
typedef struct {
    const llama_model *m;
    int cap;         /* positions it can hold (<= maxT) */
    int len;         /* positions cached */
    int max_rows;    /* positions processed per batched call */
    float *k, *v;    /* (L, cap, KD) keys (rotated) and values */
    float *logp;     /* (V) log p(next token | cached positions), valid when len > 0 */
    float logp_lse;  /* the log-sum-exp of the logits behind logp */
    float *x;        /* (R, D) residual */
    float *xn;       /* (R, D) */
    float *qkv;      /* (R, QD + 2 KD) */
    float *y;        /* (R, QD) */
    float *gu;       /* (R, 2F) */
    float *h;        /* (R, F) */
    float *scores;   /* (R, cap) one head's attention rows */
    float *logits;   /* (logit_rows, V) */
    float *lse;      /* (logit_rows) */
    int logit_rows;
    int *row_pos;    /* (R) position within its group */
    int *row_start;  /* (R) row index of its group's first row */
    int *row_need;   /* (R) candidate of each row */
    int *row_tok;    /* (R) input of each row */
    int *row_abs;    /* (R) absolute position of each row (len + row_pos) */
    float *hid;      /* (cap, D) final hidden state of each cached position */
} llama_cache;

int llama_cache_init(llama_cache *c, const llama_model *m, int cap, int max_rows);
void llama_cache_free(llama_cache *c);
/* Appends n positions (token ids or LLAMA_SOFT(k) rows of soft) and updates c->logp. */
int llama_cache_append(llama_cache *c, const int *inputs, const float *soft, int n_soft, int n);
/* Forgets positions from len on (len <= c->len); logp is recomputed when len > 0. */
int llama_cache_truncate(llama_cache *c, int len);
/* ll[i] = sum_j log p(tok_i[j] | cached prefix, tok_i[<j]) for the candidates
 * tok_i = tokens[offsets[i] .. offsets[i+1]); the cached state is not changed. */
int llama_cache_score(llama_cache *c, const int *tokens, const int64_t *offsets, int n_cand, double *ll);
/* As gpt2_cache_score_mixed: candidate positions may hold soft inputs LLAMA_SOFT(k) (rows of csoft
 * (n_csoft, D); inputs only, not scored), and when esoft (n_cand, D) is given each candidate is
 * followed by a soft token scored through the output head as one more vocabulary entry:
 * ll_soft[i] = h.e_i - log(sum_v exp(h.head_v) + exp(h.e_i)), h the final hidden state after the
 * candidate (after the prefix for an empty one). esoft and ll_soft may be NULL together. */
int llama_cache_score_mixed(llama_cache *c, const int *tokens, const int64_t *offsets, int n_cand,
                            const float *csoft, int n_csoft, const float *esoft, double *ll, double *ll_soft);
/* Greedy decoding of up to max_new tokens (stops after emitting stop_token when >= 0). */
int llama_generate_greedy(llama_cache *c, int max_new, int stop_token, int *out, int *n_out);

/* ---- kernels (exposed so tests hold the blocked one to the naive one) ---- */
/* Causal grouped-query attention over qkv (B, T, QD + 2 KD) (q and k already rotated) ->
 * out (B, T, QD); att (B, NH, T, T) stored when non-NULL; scratch (max(threads, 128), T). */
void llama_attention_forward(float *out, float *att, const float *qkv, float *scratch, int B, int T, int NH,
                             int NKV, int hd);
void llama_attention_forward_naive(float *out, float *att, const float *qkv, float *scratch, int B, int T,
                                   int NH, int NKV, int hd);
/* dqkv (B, T, QD + 2 KD) += from dout (B, T, QD), att, qkv; scratch (threads, T). */
void llama_attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv,
                              float *scratch, int B, int T, int NH, int NKV, int hd);

#endif
