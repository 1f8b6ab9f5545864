/* bench_llama_mem.c: the memory of a Llama-shaped LM in bf16 (lm.precision = "bf16"), the weights and
 * the working set of the LLM recommender's workloads, measured as the process's resident set.
 *
 *   bench_llama_mem [1b | tiny]
 *
 * 1b is the shape of TinyLlama-1.1B (hidden 2048, 22 layers, intermediate 5632, 32 heads, 4 key/value
 * heads, vocabulary 32000, untied head: 1.1e9 parameters) with random weights (no checkpoint can be
 * installed here; the memory and time depend on the shape only). tiny is a smoke test. Steps, each
 * followed by the resident set (VmRSS) and its peak so far (VmHWM):
 *   1. the float weights (llama_init, filled);
 *   2. their bfloat16 copies for the forward (llama_set_precision);
 *   3. one prompt training step: forward B = 8, T = 128 with 66 soft input rows, backward to them
 *      (packs the transposed copies for the backward on first use);
 *   4. candidate scoring: a 128-token prefix into the KV cache, then 64 candidates of 8 tokens.
 * Prints one line per step (MiB, seconds) and a summary line "weights f32 X MiB, bf16 copies Y MiB,
 * working set Z MiB (peak - weights - copies)". */
#include "../../src/core/err.h"
#include "../../src/core/timer.h"
#include "../../src/lm/llama.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double status_mib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') kb = atof(line + kl + 1);
    if (f) fclose(f);
    return kb / 1024.0;
}

static void step(const char *what, double t)
{
    printf("  %-58s rss %8.0f MiB  peak %8.0f MiB  %7.2f s\n", what, status_mib("VmRSS"), status_mib("VmHWM"), t);
    fflush(stdout);
}

/* uniform in [-s, s), xorshift64* (filling 1e9 floats must be fast, not Gaussian) */
static void fill(float *x, size_t n, float s, uint64_t seed)
{
    uint64_t z = seed | 1;
    for (size_t i = 0; i < n; i++) {
        z ^= z >> 12, z ^= z << 25, z ^= z >> 27;
        x[i] = s * ((float)((z * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f);
    }
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "1b";
    llama_config c = {2048, 5632, 22, 32, 4, 64, 32000, 2048, 10000.0f, 1e-5f, 0, 0, 0, 0, 0};
    if (!strcmp(preset, "tiny")) c = (llama_config){64, 176, 2, 4, 2, 16, 512, 256, 10000.0f, 1e-5f, 0, 0, 0, 0, 0};
    else if (strcmp(preset, "1b")) {
        fprintf(stderr, "usage: bench_llama_mem [1b | tiny]\n");
        return 2;
    }
    llama_model m;
    memset(&m, 0, sizeof m);
    double t = dm_wtime();
    if (llama_init(&m, &c)) return dm_error_print("bench_llama_mem"), 1;
    for (int k = 0; k < LLAMA_NUM_PARAMS; k++) {
        float *p = (&m.params.emb)[k];
        if (m.param_sizes[k]) fill(p, m.param_sizes[k], k == 1 || k == 4 || k == 7 ? 1.0f : 0.02f, 0x9E37 + (uint64_t)k);
    }
    /* the norms' weights near 1 */
    for (size_t i = 0; i < m.param_sizes[1]; i++) m.params.attn_norm[i] = 1.0f + 0.01f * m.params.attn_norm[i];
    for (size_t i = 0; i < m.param_sizes[4]; i++) m.params.ffn_norm[i] = 1.0f + 0.01f * m.params.ffn_norm[i];
    for (size_t i = 0; i < m.param_sizes[7]; i++) m.params.norm[i] = 1.0f + 0.01f * m.params.norm[i];
    printf("## Llama %s shape: %zu parameters (D %d, %d layers, F %d, %d heads, %d key/value heads, vocabulary %d)\n", preset,
           m.num_params, c.dim, c.n_layers, c.hidden_dim, c.n_heads, c.n_kv_heads, c.vocab_size);
    step("1. float weights", dm_wtime() - t);
    double w_f32 = (double)m.num_params * 4.0 / 1048576.0;
    t = dm_wtime();
    if (llama_set_precision(&m, LLAMA_BF16)) return dm_error_print("bench_llama_mem"), 1;
    const char *prec = m.precision == LLAMA_BF16 ? "bf16" : "f32 (no AVX512_BF16 here: the copies are not made)";
    step("2. bfloat16 copies of the weights (forward)", dm_wtime() - t);
    /* 3. a prompt training step: B = 8 sequences of T = 128 positions, 66 soft input rows (the
       batch's first 66 positions, as bench_lm's prompt step), targets on each sequence's last 8 */
    int B = 8, T = 128, ns = 66, D = c.dim;
    if (llama_reserve(&m, B, T, LLAMA_KEEP)) return dm_error_print("bench_llama_mem"), 1;
    int *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    float *soft = malloc((size_t)ns * D * sizeof *soft), *dsoft = calloc((size_t)ns * D, sizeof *dsoft);
    if (!in || !tg || !soft || !dsoft) return fprintf(stderr, "out of memory\n"), 1;
    fill(soft, (size_t)ns * D, 0.02f, 7);
    for (int i = 0; i < B * T; i++) {
        in[i] = i < ns ? LLAMA_SOFT(i) : (int)((i * 2654435761u) % (unsigned)c.vocab_size);
        tg[i] = i % T >= T - 8 ? (int)((i * 40503u) % (unsigned)c.vocab_size) : -1;
    }
    t = dm_wtime();
    if (llama_forward(&m, in, soft, ns, tg, B, T, (float)(B * 8), LLAMA_KEEP)) return dm_error_print("bench_llama_mem"), 1;
    double tf = dm_wtime() - t;
    if (llama_backward(&m, NULL, NULL, dsoft)) return dm_error_print("bench_llama_mem"), 1;
    char what[128];
    snprintf(what, sizeof what, "3. prompt step B=8 T=128: forward %.2f s + backward to %d soft rows", tf, ns);
    step(what, dm_wtime() - t);
    double bf_all = (double)llama_bf16_bytes(&m) / 1048576.0;
    /* 4. scoring: a 128-token prefix, 64 candidates of 8 tokens */
    llama_cache kc;
    if (llama_cache_init(&kc, &m, 256, 64 * 8)) return dm_error_print("bench_llama_mem"), 1;
    int pre[128], tok[64 * 8];
    int64_t off[65];
    double ll[64];
    for (int i = 0; i < 128; i++) pre[i] = (i * 7919) % c.vocab_size;
    for (int i = 0; i < 64 * 8; i++) tok[i] = (i * 104729) % c.vocab_size;
    for (int i = 0; i <= 64; i++) off[i] = (int64_t)i * 8;
    t = dm_wtime();
    if (llama_cache_append(&kc, pre, NULL, 0, 128) || llama_cache_score(&kc, tok, off, 64, ll)) return dm_error_print("bench_llama_mem"), 1;
    step("4. scoring: 128-token prefix, 64 candidates of 8 tokens", dm_wtime() - t);
    double peak = status_mib("VmHWM");
    printf("summary (%s): weights f32 %.0f MiB, bf16 copies %.0f MiB (forward and backward), working set %.0f MiB "
           "(peak %.0f MiB - weights - copies)\n",
           prec, w_f32, bf_all, peak - w_f32 - bf_all, peak);
    llama_cache_free(&kc);
    free(in);
    free(tg);
    free(soft);
    free(dsoft);
    llama_free(&m);
    return 0;
}
