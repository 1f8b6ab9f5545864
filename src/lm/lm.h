/* lm.h: the frozen language model as the rest of dynmm sees it: a GPT-2 (gpt2.h) with its
 * tokenizer (bpe.h), loaded from and saved to one Hugging Face-layout directory
 * (config.json, model.safetensors, vocab.json, merges.txt).
 *
 * Text-level operations run on a KV cache (gpt2_cache) holding a prefix the caller built (token
 * ids and soft vectors, gpt2_cache_append):
 *   - lm_score_texts: log-likelihood of each candidate string after the prefix, batched;
 *   - lm_generate_text: greedy continuation until <|endoftext|> or a token budget;
 *   - lm_fill_template: a template of fixed segments and slots, each slot taking the allowed
 *     value of highest likelihood given everything before it (prefix, earlier segments and
 *     chosen values); the cache grows as the template is written.
 * Each text piece is tokenized on its own, so a value's tokens do not depend on its neighbours.
 */
#ifndef DM_LM_H
#define DM_LM_H

#include "../core/buf.h"
#include "bpe.h"
#include "gpt2.h"

typedef struct {
    gpt2_model model;
    bpe_tokenizer tok;
} lm_model;

/* Loads dir/{config.json, model.safetensors, vocab.json, merges.txt}; the tokenizer's ids must fit
 * the model's vocabulary. */
int lm_load(lm_model *lm, const char *dir);
/* The precision of the model's products with its weights, by its lm.precision name: "f32" or
 * "bf16" (gpt2_set_precision: bfloat16 copies of the weights made now, from the float weights
 * loaded; on a CPU without AVX512_BF16 the model stays f32 and the log says so once). Any other
 * name is an error naming the key. lm->model.precision tells which is in force. */
int lm_set_precision(lm_model *lm, const char *precision);
/* Writes the four files (each atomically), creating dir. */
int lm_save(const lm_model *lm, const char *dir);
void lm_free(lm_model *lm);

/* Appends the tokens of text to the cache. */
int lm_append_text(const lm_model *lm, gpt2_cache *c, const char *text);

/* ll[i] = log p(tokens of cands[i] | cached prefix). */
int lm_score_texts(const lm_model *lm, gpt2_cache *c, const char *const *cands, int n, double *ll);

/* Greedy generation of up to max_new tokens (stops after <|endoftext|>, which is not written);
 * appends the text to out and the tokens to the cache. */
int lm_generate_text(const lm_model *lm, gpt2_cache *c, int max_new, dm_buf *out);

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
int lm_fill_template(const lm_model *lm, gpt2_cache *c, const lm_part *parts, int n_parts, int *choice,
                     double *choice_ll, dm_buf *out);

#endif
