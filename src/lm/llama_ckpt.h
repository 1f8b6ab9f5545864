/* llama_ckpt.h: Llama checkpoints in the two layouts people have on disk.
 *
 * Hugging Face (LlamaForCausalLM): a directory with config.json (model_type "llama", hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim,
 * vocab_size, max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings, rope_scaling
 * null or "llama3") and the tensors either in model.safetensors or in shards listed by
 * model.safetensors.index.json ({"weight_map": {tensor: shard file}}):
 *   model.embed_tokens.weight (V, D), model.layers.N.input_layernorm.weight (D),
 *   model.layers.N.self_attn.{q_proj (NH hd, D), k_proj (NKV hd, D), v_proj (NKV hd, D),
 *   o_proj (D, NH hd)}.weight, model.layers.N.post_attention_layernorm.weight (D),
 *   model.layers.N.mlp.{gate_proj (F, D), up_proj (F, D), down_proj (D, F)}.weight,
 *   model.norm.weight (D), lm_head.weight (V, D) unless tied
 * in F32, F16 or BF16 (the "model." prefix may be absent; rotary_emb.inv_freq buffers are
 * ignored). HF stores q_proj and k_proj with the rows of each head permuted relative to Meta's
 * original layout (convert_llama_weights_to_hf.py), which is what its rotate_half RoPE expects:
 * the runtime (llama.h) uses that layout as is.
 *
 * llama2.c (Karpathy) legacy .bin: seven little-endian int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; vocab_size < 0 means an untied classifier follows), then float32
 * tensors in Meta's layout and this order: token_embedding (V, D), rms_att (L, D), wq (L, NH hd, D),
 * wk (L, NKV hd, D), wv (L, NKV hd, D), wo (L, D, NH hd), rms_ffn (L, D), w1 (L, F, D),
 * w2 (L, D, F), w3 (L, F, D), rms_final (D), freq_cis_real and freq_cis_imag (seq_len, hd/2 each;
 * skipped: the tables are recomputed), wcls (V, D) when untied. Its q and k rows are permuted into
 * HF's layout on load (rope_theta 10000, rms_norm_eps 1e-5, as llama2.c's run.c).
 *
 * The loaders refuse, naming the file and the tensor: a missing or unexpected tensor, a shape that
 * disagrees with the config, a dtype other than F32/F16/BF16, a truncated file (or one with bytes
 * after the last tensor), a shard listed in the index that is absent or does not hold the tensor
 * the index says it does, a tied config whose lm_head differs from the embeddings, and configs for
 * what the runtime does not implement (another model_type or activation, attention or MLP biases,
 * rope scaling other than llama3).
 */
#ifndef DM_LLAMA_CKPT_H
#define DM_LLAMA_CKPT_H

#include "llama.h"

/* Reads dir/config.json only. */
int llama_load_hf_config(const char *dir, llama_config *cfg);
/* Loads an HF directory (single file or sharded) into a new model (llama_init is called). */
int llama_load_hf(llama_model *m, const char *dir);
/* Loads a llama2.c legacy .bin checkpoint into a new model. */
int llama_load_llama2c(llama_model *m, const char *path);

/* Meta's interleaved q/k rows -> HF's (out (n_heads hd, in) from w (n_heads hd, in)): row
 * h hd + 2i + j goes to h hd + j hd/2 + i (i < hd/2, j < 2). out must not alias w. */
void llama_permute_meta_to_hf(float *out, const float *w, int n_heads, int hd, int in);
/* The inverse. */
void llama_permute_hf_to_meta(float *out, const float *w, int n_heads, int hd, int in);

#endif
