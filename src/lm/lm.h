/* lm.h: the frozen language model as the rest of dynmm sees it, whatever its architecture:
 *   LM_GPT2   a GPT-2 (gpt2.h) with its byte-level BPE (bpe.h): a Hugging Face-layout directory
 *             (config.json, model.safetensors, vocab.json, merges.txt); also the in-suite model,
 *             pretrained by `dynmm lm` and saved in that layout (lm_save);
 *   LM_LLAMA  a Llama-family decoder (llama.h) with its SentencePiece-style BPE (sptok.h): a
 *             Hugging Face directory (config.json, model.safetensors or shards with their index,
 *             tokenizer.json, or llama2.c's tokenizer.bin) or a llama2.c .bin checkpoint file
 *             (tokenizer.bin or tokenizer.json beside it). Loaded only, never trained or saved.
 * Everything below dispatches on lm->arch, so the prompt and explain stages run either unchanged.
 *
 * Sequences are input codes: a token id (>= 0) or LM_SOFT(k), row k of a caller-supplied (n_soft, C)
 * matrix used as that position's input embedding (GPT-2 adds its position embedding to it; Llama's
 * positions enter through RoPE only). C = lm_width().
 *
 * Two ways to run the model, both the architectures' own (see gpt2.h and llama.h for the contracts):
 *   - batch forward/backward over (B, T) independent sequences (lm_forward / lm_backward): logits,
 *     next-token cross-entropy with optional per-position weights, and gradients to the soft input
 *     rows given a hidden-state gradient (the weights are frozen: no weight gradients here);
 *   - a KV cache for one sequence (lm_cache_*): append, truncate, score candidate continuations of
 *     the cached prefix (also with soft inputs and a trailing soft token), generate greedily.
 *
 * Text: pieces are tokenized on their own as continuations of a sequence (lm_encode), so a value's
 * tokens do not depend on its neighbours and " word" gives the same token ("Ġword" for GPT-2,
 * "▁word" for Llama) wherever it stands; no special tokens are added. A Llama sequence starts
 * with the tokenizer's beginning-of-sequence token (lm_bos; GPT-2 has none: -1), which the
 * caller places where the sequence begins.
 *   - lm_score_texts: log-likelihood of each candidate string after the prefix, batched;
 *   - lm_generate_text: greedy continuation until the end-of-text token or a token budget;
 *   - lm_fill_template: a template of fixed segments and slots, each slot taking the allowed
 *     value of highest likelihood given everything before it (prefix, earlier segments and
 *     chosen values); the cache grows as the template is written.
 */
#ifndef DM_LM_H
#define DM_LM_H

#include "../core/buf.h"
#include "bpe.h"
#include "gpt2.h"
#include "llama.h"
#include "sptok.h"

enum { LM_GPT2 = 0, LM_LLAMA = 1 };
enum { LM_F32 = GPT2_F32, LM_BF16 = GPT2_BF16 };

#define LM_SOFT(k) (-1 - (k)) /* input code of soft row k (GPT2_SOFT and LLAMA_SOFT alike) */
#define LM_IS_SOFT(x) ((x) < 0)
#define LM_SOFT_ROW(x) (-1 - (x))

/* Forward flags: the values of gpt2.h's and llama.h's. */
enum {
    LM_KEEP = 1,        /* keep every layer's activations for lm_backward */
    LM_NOLOGITS = 2,    /* stop at the final hidden states */
    LM_TARGET_ROWS = 4, /* logits only at positions with a target (packed; lm_out's rows say which) */
};

typedef struct {
    int arch;              /* LM_GPT2 or LM_LLAMA */
    gpt2_model model;      /* LM_GPT2 (zeroed otherwise) */
    bpe_tokenizer tok;     /* LM_GPT2 */
    llama_model llama;     /* LM_LLAMA (zeroed otherwise) */
    sptok sp;              /* LM_LLAMA */
} lm_model;

/* "auto" (or NULL) / "gpt2" / "llama" -> -1 / LM_GPT2 / LM_LLAMA; -2 for any other name. */
int lm_arch_parse(const char *name);
const char *lm_arch_name(int arch);
/* The architecture of a checkpoint: a llama2.c .bin file is LM_LLAMA; a directory is what its
 * config.json's model_type says ("gpt2" or "llama"; without one, GPT-2's n_embd or Llama's
 * hidden_size decides). Another model_type is an error naming the file. */
int lm_detect_arch(const char *path, int *arch);

/* Loads the model and tokenizer of path (see the top) as architecture `arch` (lm.arch: "auto",
 * NULL, "gpt2" or "llama"). A named architecture the checkpoint is not is an error naming lm.arch
 * and the file; so is a tokenizer with more tokens than the model's vocabulary. lm_load = "auto". */
int lm_load_as(lm_model *lm, const char *path, const char *arch);
int lm_load(lm_model *lm, const char *path);
/* The precision of the model's products with its weights, by its lm.precision name: "f32" or
 * "bf16": gpt2_set_precision or llama_set_precision (bfloat16 copies of the weights made now, from
 * the float weights loaded; on a CPU without AVX512_BF16 the model stays f32 and the log says so
 * once). Any other name is an error naming the key. lm_precision tells which is in force. */
int lm_set_precision(lm_model *lm, const char *precision);
int lm_precision(const lm_model *lm);
/* Writes the four GPT-2 files (each atomically), creating dir; a Llama model is an error. */
int lm_save(const lm_model *lm, const char *dir);
void lm_free(lm_model *lm);

/* ---- shape ---- */
int lm_width(const lm_model *lm);   /* C: the width of input embeddings and final hidden states */
int lm_context(const lm_model *lm); /* maximum positions */
int lm_vocab(const lm_model *lm);   /* V: rows of the output head */
int lm_layers(const lm_model *lm);
int lm_heads(const lm_model *lm);
int lm_kv_heads(const lm_model *lm); /* key/value heads (GPT-2: lm_heads) */
size_t lm_num_params(const lm_model *lm);
/* The input token embeddings (V, C) and the output head (V, C): logits = h head^T. The same
 * matrix for GPT-2 and tied Llama models. */
const float *lm_embeddings(const lm_model *lm);
const float *lm_head(const lm_model *lm);
/* out (n, C): the input embeddings of tokens ids[0..n) (soft rows that start as words). */
int lm_embed_tokens(const lm_model *lm, const int *ids, int n, float *out);

/* ---- tokens ---- */
/* End of text (GPT-2's <|endoftext|>, Llama's </s>) and beginning of sequence (Llama's <s> when
 * its tokenizer adds one; else -1). lm_eot is -1 when the tokenizer has none. */
int lm_eot(const lm_model *lm);
int lm_bos(const lm_model *lm);
/* Appends the tokens of text[0..len) to out, as a continuation (see the top). */
int lm_encode(const lm_model *lm, const char *text, size_t len, bpe_ids *out);
/* Appends the text of ids[0..n) to out (special tokens as their text, the leading space kept). */
int lm_decode(const lm_model *lm, const int *ids, size_t n, dm_buf *out);

/* ---- batch forward and backward to the inputs ---- */
/* Sizes the activations for batches up to (B, T) with the given forward flags. */
int lm_reserve(lm_model *lm, int B, int T, int flags);
/* Per-position loss weights (B, T) of the next forward and backward, or NULL (= 1); the caller
 * keeps them alive until the backward (gpt2_forward's target_w). */
void lm_set_target_weights(lm_model *lm, const float *w);
/* gpt2_forward / llama_forward: inputs (B, T) codes, soft (n_soft, C), targets (B, T) or NULL,
 * loss = sum_i w_i (-log p(target_i)) / norm. */
int lm_forward(lm_model *lm, const int *inputs, const float *soft, int n_soft, const int *targets, int B, int T,
               float norm, int flags);
/* Backward of the last forward (LM_KEEP) to the inputs: the upstream gradient is the loss (when
 * the forward had targets) plus dhidden (B, T, C) with respect to the final hidden states when
 * non-NULL; dsoft (n_soft, C) receives += the gradient of the soft rows. Destroys the logits. */
int lm_backward(lm_model *lm, const float *dhidden, float *dsoft);
/* What the last forward left (views into the model, valid until the next forward or backward). */
typedef struct {
    int n_rows;          /* logits rows: B T, or the packed target positions with LM_TARGET_ROWS */
    const int *rows;     /* (n_rows) position b T + t of each packed row (LM_TARGET_ROWS) */
    const float *logits; /* (n_rows, V) */
    const float *lse;    /* (n_rows) log-sum-exp of each row with a target */
    const float *hidden; /* (B, T, C) final hidden states (after the final norm) */
    float loss;
} lm_out;
lm_out lm_last(const lm_model *lm);

/* ---- KV cache for one sequence ---- */
typedef struct {
    int arch;
    gpt2_cache g;  /* LM_GPT2 */
    llama_cache l; /* LM_LLAMA */
    int len;       /* positions cached \                                            */
    int cap;       /* positions it can hold  > copies of the architecture's, read-only */
    int max_rows;  /* positions per batched call /                                  */
} lm_cache;

/* cap <= 0 or above the context: the context. */
int lm_cache_init(lm_cache *c, const lm_model *lm, int cap, int max_rows);
void lm_cache_free(lm_cache *c);
/* Appends n positions (token ids or LM_SOFT(k) rows of soft (n_soft, C)). */
int lm_cache_append(lm_cache *c, const int *inputs, const float *soft, int n_soft, int n);
/* Forgets positions from len on (len <= c->len). */
int lm_cache_truncate(lm_cache *c, int len);
/* (V) log p(next token | cached positions), valid when len > 0. */
const float *lm_cache_logp(const lm_cache *c);
/* (C) the final hidden state (after the final norm) of cached position pos < len. */
const float *lm_cache_hidden(const lm_cache *c, int pos);
/* ll[i] = sum_j log p(tok_i[j] | cached prefix, tok_i[<j]), tok_i = tokens[offsets[i] ..
 * offsets[i+1]); the cached state is not changed. */
int lm_cache_score(lm_cache *c, const int *tokens, const int64_t *offsets, int n_cand, double *ll);
/* gpt2_cache_score_mixed / llama_cache_score_mixed: candidate positions may hold soft inputs
 * LM_SOFT(k) (rows of csoft (n_csoft, C); inputs only, not scored), and each candidate is followed
 * by a soft token with embedding esoft (n_cand, C) scored through the output head as one more
 * vocabulary entry: ll_soft[i] = h.e_i - log(sum_v exp(h.head_v) + exp(h.e_i)). */
int lm_cache_score_mixed(lm_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *csoft,
                         int n_csoft, const float *esoft, double *ll, double *ll_soft);
/* Greedy decoding of up to max_new tokens (stops after emitting stop_token when >= 0); appends
 * them to the cache and to out; *n_out = the number generated. */
int lm_cache_generate(lm_cache *c, int max_new, int stop_token, int *out, int *n_out);

/* ---- text ---- */
/* Appends the tokens of text to the cache. */
int lm_append_text(const lm_model *lm, lm_cache *c, const char *text);

/* ll[i] = log p(tokens of cands[i] | cached prefix). */
int lm_score_texts(const lm_model *lm, lm_cache *c, const char *const *cands, int n, double *ll);

/* Greedy generation of up to max_new tokens (stops after the end-of-text token, which is not
 * written); appends the text to out and the tokens to the cache. */
int lm_generate_text(const lm_model *lm, lm_cache *c, int max_new, dm_buf *out);

typedef struct {
    const char *text;           /* a fixed segment, or NULL for a slot */
    const char *const *values;  /* slot: the allowed values */
    int n_values;
} lm_part;

/* Writes the template after the cached prefix: fixed parts verbatim, each slot the value with the
 * highest log-likelihood. choice[k] = the chosen value index of part k (-1 for fixed parts),
 * choice_ll[k] its log-likelihood (0 for fixed parts; either may be NULL). The text goes to out.
 * A slot's values that do not fit in the rest of the context are passed over; when none fits,
 * choice[k] = -2 and filling stops there (DM_OK: the caller decides; without choice it is an
 * error, as is a fixed part that does not fit). */
int lm_fill_template(const lm_model *lm, lm_cache *c, const lm_part *parts, int n_parts, int *choice,
                     double *choice_ll, dm_buf *out);

#endif
