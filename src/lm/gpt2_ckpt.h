/* gpt2_ckpt.h: GPT-2 checkpoints in the Hugging Face layout.
 *
 * A checkpoint is a directory with config.json (n_embd, n_head, n_layer, n_positions, vocab_size,
 * layer_norm_epsilon, n_inner, activation_function) and model.safetensors holding the tensors
 *   wte.weight (V, C), wpe.weight (maxT, C), h.N.ln_1.{weight,bias} (C),
 *   h.N.attn.c_attn.weight (C, 3C), h.N.attn.c_attn.bias (3C), h.N.attn.c_proj.weight (C, C), ...,
 *   h.N.mlp.c_fc.weight (C, F), h.N.mlp.c_proj.weight (F, C), ln_f.{weight,bias} (C)
 * in F32, F16 or BF16, with or without a "transformer." prefix. lm_head.weight may be absent (tied)
 * or present and equal to wte.weight; the attention mask buffers h.N.attn.bias / masked_bias are
 * ignored. This is what `gpt2`, `distilgpt2` and `gpt2-medium` ship.
 *
 * The loader refuses, naming the file and tensor: a missing or unknown tensor, a shape that
 * disagrees with config.json, a dtype other than F32/F16/BF16, an untied output head, a config
 * for another architecture (activation, attention scaling), and a truncated file. The writer
 * stores F32 without prefix and writes each file to `<path>.part` before renaming it.
 */
#ifndef DM_GPT2_CKPT_H
#define DM_GPT2_CKPT_H

#include "gpt2.h"

/* Reads dir/config.json only. */
int gpt2_load_config(const char *dir, gpt2_config *cfg);
/* Loads dir/config.json + dir/model.safetensors into a new model (gpt2_init is called). */
int gpt2_load(gpt2_model *m, const char *dir);
/* Writes dir/config.json and dir/model.safetensors (F32), creating dir if needed. */
int gpt2_save(const gpt2_model *m, const char *dir);

#endif
