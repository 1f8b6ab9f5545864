/* lm_common.h: what the GPT-2 (gpt2.c) and Llama (llama.c) runtimes share around their layers: the
 * checks of inputs, targets and scoring candidates; the sizing rules of their activation reserves;
 * the target rows of a forward and the cross-entropy over them; the candidate batches of the KV
 * cache and the soft token's log-likelihood; the switch to bfloat16 weights.
 *
 * Inputs are token ids (>= 0) or soft rows coded -1 - k (GPT2_SOFT, LLAMA_SOFT); the forward flags
 * are the shared values of gpt2.h's and llama.h's (LMC_KEEP, LMC_NOLOGITS). Nothing here allocates
 * except lmc_reserve_scratch and, through its callback, lmc_bf16_switch. */
#ifndef DM_LM_COMMON_H
#define DM_LM_COMMON_H

#include "../core/json.h"
#include "../nn/gemm_bf16.h"

#include <stddef.h>
#include <stdint.h>

#define LMC_SOFT_ROW(x) (-1 - (x)) /* the soft row of input code x < 0 */
enum { LMC_KEEP = 1, LMC_NOLOGITS = 2 };
/* Logits rows a KV cache materialises at once: as many as fit in this many floats (128 MiB), since
 * each GEMM chunk re-reads and re-packs the whole (V, C) output head. */
#define LMC_LOGIT_FLOATS ((size_t)32 << 20)

/* ---- checks ---- */

/* inputs[0..n): token ids below vocab, or soft rows below n_soft (soft given). */
int lmc_check_inputs(int vocab, const int *inputs, const float *soft, int n_soft, size_t n);
/* targets[0..n): token ids below vocab, or negative (no target). */
int lmc_check_targets(int vocab, const int *targets, size_t n);
/* The candidates tok_i = tokens[offsets[i] .. offsets[i+1]) of a scoring call on a KV cache holding
 * len of cap positions in batches of max_rows: non-decreasing offsets, each candidate in one batch
 * and in the context; token ids below vocab, and negative codes soft rows of csoft (n_csoft rows),
 * or refused as outside the vocabulary when tokens_only. */
int lmc_check_candidates(const int *tokens, const int64_t *offsets, int n_cand, int len, int cap, int max_rows,
                         int vocab, const float *csoft, int n_csoft, int tokens_only);

/* ---- reserves ---- */

/* A batch (B, T) fits a model of context maxT: 1 <= B, 1 <= T <= maxT. */
int lmc_check_batch(int B, int T, int maxT);
/* The activation slab *slab of *cap floats, made anew (zeroed) when need is larger. */
int lmc_reserve_slab(float **slab, size_t *cap, size_t need);
/* 1 when a forward of (B, T) with flags needs more than the reserve made for (max_B, max_T,
 * max_flags) (reserved = 0: none made yet). */
int lmc_needs_reserve(int B, int T, int flags, int max_B, int max_T, int max_flags, int reserved);
/* The flags a reserve is made for: KEEP once any caller needs it; NOLOGITS only while no caller
 * needs logits. */
int lmc_reserve_flags(int flags, int max_flags, int reserved);
/* The attention rows of the batch forward: max(threads, min_rows) rows of nT floats, made anew when
 * nT grows past max_T or more threads run than it was made for. */
int lmc_reserve_scratch(float **scratch, int *scratch_threads, int nT, int max_T, int min_rows);

/* ---- cross-entropy over the logits rows ---- */

/* The positions i < n with a target (targets[i] >= 0) into rows (returns their count NR), and their
 * hidden states h (n, C) packed into h_rows (NR, C). */
size_t lmc_pack_target_rows(const int *targets, size_t n, int *rows, const float *h, float *h_rows, int C);
/* Row k of src (NR, C) into row rows[k] of dst (., C). */
void lmc_unpack_rows(float *dst, const int *rows, size_t NR, const float *src, int C);
/* sum over the logits rows k < NR of position i (rows[k], or k when rows is NULL) with a target of
 * w_i (lse_k - logits_k[targets[i]]), w_i = target_w[i] or 1; lse_k (the row's log-sum-exp) is
 * stored for those rows. */
double lmc_xent_loss(const float *logits, float *lse, size_t NR, int V, const int *targets, const int *rows,
                     const float *target_w);
/* The gradient of the loss times inv (w_i inv on row i) in place of the logits rows dl (NR, V),
 * rows without a target (or all, targets NULL) zero; plus dlogits (., V) row i when given. */
void lmc_xent_backward(float *dl, size_t NR, int V, const float *lse, const int *targets, const int *rows,
                       const float *target_w, float inv, const float *dlogits);

/* ---- KV cache ---- */

/* logits rows of a cache of max_rows rows: min(max_rows, LMC_LOGIT_FLOATS / V), at least 1 */
int lmc_logit_rows(int V, int max_rows);
/* The end i1 of the batch of candidates from i0: as many as fit in max_rows rows. */
int lmc_cand_batch_end(const int64_t *offsets, int n_cand, int i0, int max_rows);
/* The rows of candidates i0 .. i1 (their last position only with run_last): row r holds input
 * row_tok[r] of candidate row_need[r] at position row_pos[r] within it, its group starting at row
 * row_start[r]. Returns the number of rows. */
int lmc_cand_rows(const int *tokens, const int64_t *offsets, int i0, int i1, int run_last, int *row_pos,
                  int *row_start, int *row_need, int *row_tok);
/* log(e^ls / (e^lv + e^ls)) for the vocabulary's log-sum-exp lv and a soft logit ls */
double lmc_soft_ll(double lv, double ls);
/* a . b (n) accumulated in double */
double lmc_dot_d(const float *a, const float *b, int n);
/* the index of the largest x[j] (the first of equals) */
int lmc_argmax(const float *x, int n);

/* ---- checkpoints ---- */

/* Reads DIR/config.json (want_object: dm_json_load's) and returns parse(root, out, path), path
 * naming the file for messages; or the read's error. */
int lmc_read_config(const char *dir, int want_object, int (*parse)(const dm_json *root, void *out, const char *path),
                    void *out);

/* ---- precision ---- */

/* Drops the bfloat16 copies *bf; when bf16 is asked for and the CPU runs it (nn_bf16_or_warn: else
 * said once in the log) makes new ones with pack(model, 0) (which packs the forward copies into the
 * model's *bf). *made = 1 when the copies are in force, 0 when the model runs in float. */
int lmc_bf16_switch(nn_bf16_weights **bf, int bf16, int (*pack)(void *model, int bwd), void *model, int *made);

#endif
