/* llama.c: Llama forward, backward to the inputs, KV cache; see llama.h. The layers (linear,
 * RMSNorm, RoPE, SwiGLU, softmax rows) are src/nn's; the batch grouped-query attention and what the
 * runtime shares with gpt2.c are lm_attention.c's and lm_common.c's; the naive attention and the
 * cache are here.
 *
 *   x = emb[tok] or soft row
 *   per block: h = RMS1(x); q, k, v = h Wqkv^T; q, k = rope(q), rope(k)
 *              x += attn(q, k, v) Wo^T;  h = RMS2(x); x += swiglu(h W13^T) W2^T
 *   logits = RMSf(x) head^T
 * Matrices are (out, in) (torch.nn.Linear), so a projection is one sgemm with B transposed, or under
 * LLAMA_BF16 one nn_bf16_gemm on a packed bfloat16 copy (proj, proj_back).
 */
#include "llama.h"

#include "../core/err.h"
#include "../nn/gemm.h"
#include "../nn/linear.h"
#include "../nn/rmsnorm.h"
#include "../nn/rope.h"
#include "../nn/softmax.h"
#include "../nn/swiglu.h"
#include "lm_attention.h"
#include "lm_common.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


const char *const llama_param_names[LLAMA_NUM_PARAMS] = {"emb", "attn_norm", "wqkv", "wo", "ffn_norm",
                                                         "w13", "w2", "norm", "head"};

/* ---------------------------------------------------------------------------------------------
 * products with the weights: nn_sgemm on the float matrices, or under LLAMA_BF16 nn_bf16_gemm on
 * the packed copies (m->bf). A weight is named by its layer and kind; W_HEAD ignores the layer. */

enum { W_QKV, W_O, W_13, W_2, W_KINDS, W_HEAD = W_KINDS }; /* the matrices of a block, then the head */

/* out (N, OC) = inp (N, IC) w^T, w (OC, IC) weight `kind` of layer l; beta 1 adds to out (the
 * residual), 0 overwrites it */
static void proj(const llama_model *m, int l, int kind, float *out, const float *inp, const float *w, int N, int IC,
                 int OC, float beta)
{
    if (m->bf) {
        const nn_bf16_mat *b = kind == W_HEAD ? &m->bf->head : &m->bf->fwd[(size_t)l * W_KINDS + kind];
        nn_bf16_gemm(out, (size_t)OC, inp, (size_t)IC, b, N, NULL, beta != 0.0f);
        return;
    }
    nn_sgemm(CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, w, IC, beta, out, OC);
}

/* dinp (N, IC) = dout (N, OC) w, w (OC, IC) weight `kind` of layer l (overwritten); under
 * LLAMA_BF16 the transposed copies, which llama_backward packs on its first call */
static void proj_back(const llama_model *m, int l, int kind, float *dinp, const float *dout, const float *w, int N,
                      int IC, int OC)
{
    if (m->bf) {
        const nn_bf16_mat *b = kind == W_HEAD ? &m->bf->head_t : &m->bf->bwd[(size_t)l * W_KINDS + kind];
        nn_bf16_gemm(dinp, (size_t)IC, dout, (size_t)OC, b, N, NULL, 0);
        return;
    }
    nn_sgemm(CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dinp, IC);
}

/* ---------------------------------------------------------------------------------------------
 * precision: the bfloat16 copies of the weights */

/* weight `kind` of layer l of the model (a llama_model), (OC, IC) */
static const float *block_weight(const void *model, int l, int kind, int *IC, int *OC)
{
    const llama_model *m = model;
    const llama_config *c = &m->cfg;
    const llama_params *p = &m->params;
    size_t D = (size_t)c->dim, F = (size_t)c->hidden_dim, QD = (size_t)llama_qdim(c),
           S = QD + 2 * (size_t)llama_kvdim(c);
    switch (kind) {
    case W_QKV: *IC = (int)D; *OC = (int)S; return p->wqkv + l * S * D;
    case W_O: *IC = (int)QD; *OC = (int)D; return p->wo + l * D * QD;
    case W_13: *IC = (int)D; *OC = (int)(2 * F); return p->w13 + l * 2 * F * D;
    default: *IC = (int)F; *OC = (int)D; return p->w2 + l * D * F;
    }
}

static void bf_free(llama_model *m)
{
    nn_bf16_weights_free(m->bf);
    m->bf = NULL;
}

/* packs the forward copies (fwd, head), and the backward ones (bwd, head_t) when they exist or
 * `bwd` asks for them (nn_bf16_weights_pack: the weights are (OC, IC)). The head is params.head,
 * which is the embedding when tied: one matrix, one pair of copies (the embedding lookup reads the
 * floats). */

static int bf_pack(void *model, int bwd)
{
    llama_model *m = model;
    return nn_bf16_weights_pack(m->bf, m->cfg.n_layers, W_KINDS, 1, bwd, block_weight, m, m->params.head, m->cfg.dim, m->cfg.vocab_size);
}

int llama_set_precision(llama_model *m, int precision)
{
    if (precision != LLAMA_F32 && precision != LLAMA_BF16)
        return DM_ERR(DM_EINTERNAL, "llama_set_precision: unknown precision %d", precision);
    int made;
    m->precision = LLAMA_F32;
    DM_CALL(lmc_bf16_switch(&m->bf, precision == LLAMA_BF16, bf_pack, m, &made));
    m->precision = made ? LLAMA_BF16 : LLAMA_F32;
    return DM_OK;
}

size_t llama_bf16_bytes(const llama_model *m)
{
    return nn_bf16_weights_bytes(m->bf);
}

/* ---------------------------------------------------------------------------------------------
 * attention: row stride S = QD + 2 KD; query head h at h hd, its key and value head
 * kh = h / (NH / NKV) at QD + kh hd and QD + KD + kh hd */

void llama_attention_forward_naive(float *out, float *att, const float *qkv, float *scratch, int B, int T,
                                   int NH, int NKV, int hd)
{
    int QD = NH * hd, KD = NKV * hd, S = QD + 2 * KD, grp = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                int kh = h / grp;
                const float *q = qkv + ((size_t)b * T + t) * S + (size_t)h * hd;
                float *row = att ? att + (((size_t)b * NH + h) * T + t) * T
                                 : scratch + (size_t)omp_get_thread_num() * T;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((size_t)b * T + t2) * S + QD + (size_t)kh * hd;
                    float s = 0.0f;
                    for (int i = 0; i < hd; i++) s += q[i] * k[i];
                    s *= scale;
                    row[t2] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = expf(row[t2] - mx);
                    sum += row[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) row[t2] /= sum;
                if (att)
                    for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0.0f;
                float *o = out + ((size_t)b * T + t) * QD + (size_t)h * hd;
                for (int i = 0; i < hd; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * S + QD + KD + (size_t)kh * hd;
                    for (int i = 0; i < hd; i++) o[i] += row[t2] * v[i];
                }
            }
}

void llama_attention_forward(float *out, float *att, const float *qkv, float *scratch, int B, int T, int NH,
                             int NKV, int hd)
{
    lma_forward(out, att, qkv, scratch, B, T, NH, NKV, hd, 0);
}

void llama_attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv,
                              float *scratch, int B, int T, int NH, int NKV, int hd)
{
    lma_backward(dqkv, dout, att, qkv, scratch, B, T, NH, NKV, hd, 0);
}

/* ---------------------------------------------------------------------------------------------
 * model setup */

int llama_config_check(const llama_config *c, const char *what)
{
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->vocab_size <= 0 || c->max_seq <= 0)
        return DM_ERR(DM_EINPUT,
                      "'%s': Llama sizes must be positive (hidden_size %d, intermediate_size %d, num_hidden_layers "
                      "%d, num_attention_heads %d, num_key_value_heads %d, head_dim %d, vocab_size %d, "
                      "max_position_embeddings %d)", what, c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                      c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq);
    if (c->n_heads % c->n_kv_heads)
        return DM_ERR(DM_EINPUT, "'%s': num_attention_heads %d is not a multiple of num_key_value_heads %d", what,
                      c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2)
        return DM_ERR(DM_EINPUT, "'%s': head_dim %d is odd; rotary embeddings rotate pairs", what, c->head_dim);
    if (!(c->rope_theta > 1.0f) || !(c->norm_eps > 0.0f))
        return DM_ERR(DM_EINPUT, "'%s': rope_theta %g must be > 1 and rms_norm_eps %g > 0", what,
                      (double)c->rope_theta, (double)c->norm_eps);
    if (c->rope_factor != 0.0f &&
        (!(c->rope_factor >= 1.0f) || !(c->rope_low_freq_factor > 0.0f) ||
         !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_max_pos <= 0))
        return DM_ERR(DM_EINPUT,
                      "'%s': llama3 rope_scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and "
                      "original_max_position_embeddings > 0 (got %g, %g, %g, %d)", what, (double)c->rope_factor,
                      (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_orig_max_pos);
    return DM_OK;
}

static void param_sizes(const llama_config *c, size_t *s)
{
    size_t V = (size_t)c->vocab_size, D = (size_t)c->dim, L = (size_t)c->n_layers, F = (size_t)c->hidden_dim;
    size_t QD = (size_t)llama_qdim(c), KD = (size_t)llama_kvdim(c);
    s[0] = V * D;
    s[1] = L * D;
    s[2] = L * (QD + 2 * KD) * D;
    s[3] = L * D * QD;
    s[4] = L * D;
    s[5] = L * 2 * F * D;
    s[6] = L * D * F;
    s[7] = D;
    s[8] = c->tied ? 0 : V * D;
}

void llama_inv_freq(const llama_config *c, double *inv)
{
    int hd = c->head_dim;
    nn_rope_inv_freq(inv, hd, (double)c->rope_theta);
    if (c->rope_factor == 0.0f) return;
    /* Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between
     * (HF's _compute_llama3_parameters) */
    double f = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor,
           old = c->rope_orig_max_pos;
    double lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < hd / 2; i++) {
        double wl = 2.0 * M_PI / inv[i];
        if (wl > lo_wl) {
            inv[i] /= f;
        } else if (wl >= hi_wl) {
            double sm = (old / wl - lo) / (hi - lo);
            inv[i] = (1.0 - sm) * inv[i] / f + sm * inv[i];
        }
    }
}

int llama_init(llama_model *m, const llama_config *cfg)
{
    memset(m, 0, sizeof *m);
    DM_CALL(llama_config_check(cfg, "llama config"));
    m->cfg = *cfg;
    param_sizes(cfg, m->param_sizes);
    for (int i = 0; i < LLAMA_NUM_PARAMS; i++) m->num_params += m->param_sizes[i];
    DM_ALLOC(m->param_slab, m->num_params);
    float **v[LLAMA_NUM_PARAMS] = {&m->params.emb, &m->params.attn_norm, &m->params.wqkv, &m->params.wo,
                                   &m->params.ffn_norm, &m->params.w13, &m->params.w2, &m->params.norm,
                                   &m->params.head};
    float *p = m->param_slab;
    for (int i = 0; i < LLAMA_NUM_PARAMS; i++) {
        *v[i] = p;
        p += m->param_sizes[i];
    }
    if (cfg->tied) m->params.head = m->params.emb;
    int h2 = cfg->head_dim / 2;
    double *inv;
    DM_ALLOC(inv, (size_t)h2);
    llama_inv_freq(cfg, inv);
    m->rope_cos = dm_calloc_at((size_t)cfg->max_seq * h2, sizeof(float), __FILE__, __LINE__);
    m->rope_sin = dm_calloc_at((size_t)cfg->max_seq * h2, sizeof(float), __FILE__, __LINE__);
    if (!m->rope_cos || !m->rope_sin) {
        free(inv);
        llama_free(m);
        return DM_ENOMEM;
    }
    nn_rope_table(m->rope_cos, m->rope_sin, cfg->max_seq, cfg->head_dim, inv);
    free(inv);
    return DM_OK;
}

void llama_free(llama_model *m)
{
    bf_free(m);
    DM_FREE_ALL(m->param_slab, m->rope_cos, m->rope_sin, m->act_slab, m->scratch, m->pos, m->dres, m->dbt_d,
                m->dqkv, m->dbt_q, m->dgu, m->dbt_f, m->inputs, m->targets, m->rows);
    memset(m, 0, sizeof *m);
}

/* activation views for (B, T): returns the floats needed; assigns pointers when base != NULL */
static size_t act_layout(const llama_config *c, int B, int T, int flags, llama_acts *a, float *base)
{
    size_t BT = (size_t)B * T, D = (size_t)c->dim, F = (size_t)c->hidden_dim, NH = (size_t)c->n_heads;
    size_t QD = (size_t)llama_qdim(c), S = QD + 2 * (size_t)llama_kvdim(c);
    int keep = flags & LLAMA_KEEP;
    size_t L = keep ? (size_t)c->n_layers : 1;
    size_t V = (flags & LLAMA_NOLOGITS) ? 0 : (size_t)c->vocab_size;
    struct { float **p; size_t n; } v[] = {
        {&a->x0, BT * D}, {&a->xn1, L * BT * D}, {&a->rstd1, L * BT}, {&a->qkv, L * BT * S},
        {&a->att, keep ? L * B * NH * T * T : 0}, {&a->atty, L * BT * QD}, {&a->res2, L * BT * D},
        {&a->xn2, L * BT * D}, {&a->rstd2, L * BT}, {&a->gu, L * BT * 2 * F}, {&a->hsw, L * BT * F},
        {&a->res3, L * BT * D}, {&a->xf, BT * D}, {&a->rstdf, BT}, {&a->logits, BT * V}, {&a->lse, BT},
        {&a->xf_rows, V ? BT * D : 0}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (base) *v[i].p = v[i].n ? base + total : NULL;
        total += (v[i].n + 15) & ~(size_t)15; /* 64-byte aligned views */
    }
    return total;
}

int llama_reserve(llama_model *m, int B, int T, int flags)
{
    const llama_config *c = &m->cfg;
    DM_CALL(lmc_check_batch(B, T, c->max_seq));
    int nB = B > m->max_B ? B : m->max_B, nT = T > m->max_T ? T : m->max_T;
    int nflags = lmc_reserve_flags(flags, m->max_flags, m->act_slab != NULL);
    llama_acts tmp;
    DM_CALL(lmc_reserve_slab(&m->act_slab, &m->act_cap, act_layout(c, nB, nT, nflags, &tmp, NULL)));
    DM_CALL(lmc_reserve_scratch(&m->scratch, &m->scratch_threads, nT, m->max_T, LMA_QBLOCK));
    size_t BT = (size_t)nB * nT;
    int grow = nB * nT > m->max_B * m->max_T;
    if (grow || !m->inputs) {
        DM_FREE_ALL(m->inputs, m->targets, m->rows, m->pos);
        DM_ALLOC(m->inputs, BT);
        DM_ALLOC(m->targets, BT);
        DM_ALLOC(m->rows, BT);
        DM_ALLOC(m->pos, BT);
    }
    if ((nflags & LLAMA_KEEP) && (!m->dres || grow)) {
        size_t D = (size_t)c->dim, F = (size_t)c->hidden_dim, QD = (size_t)llama_qdim(c);
        size_t S = QD + 2 * (size_t)llama_kvdim(c);
        DM_FREE_ALL(m->dres, m->dbt_d, m->dqkv, m->dbt_q, m->dgu, m->dbt_f);
        DM_ALLOC(m->dres, BT * D);
        DM_ALLOC(m->dbt_d, BT * D);
        DM_ALLOC(m->dqkv, BT * S);
        DM_ALLOC(m->dbt_q, BT * QD);
        DM_ALLOC(m->dgu, BT * 2 * F);
        DM_ALLOC(m->dbt_f, BT * F);
    }
    m->max_B = nB;
    m->max_T = nT;
    m->max_flags = nflags;
    return DM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * batch forward / backward */

/* out (n, D): row i is the embedding of inputs[i] */
static void embed_rows(float *out, const llama_model *m, const int *inputs, const float *soft, int n)
{
    int D = m->cfg.dim;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        int x = inputs[i];
        const float *e = x >= 0 ? m->params.emb + (size_t)x * D : soft + (size_t)LLAMA_SOFT_ROW(x) * D;
        memcpy(out + (size_t)i * D, e, (size_t)D * sizeof(float));
    }
}

/* One block over N rows at positions pos (N): res (N, D) -> res3; the intermediate buffers are the
 * caller's (one layer's slice). att (B, NH, T, T) or NULL; attention is over B sequences of T. */
static void block_forward(const llama_model *m, int l, const float *res, float *xn1, float *rstd1, float *qkv,
                          float *att, float *atty, float *res2, float *xn2, float *rstd2, float *gu,
                          float *hsw, float *res3, int B, int T)
{
    const llama_config *c = &m->cfg;
    const llama_params *p = &m->params;
    int D = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim;
    int QD = NH * hd, S = QD + 2 * NKV * hd, N = B * T;
    nn_rmsnorm_forward(xn1, rstd1, res, p->attn_norm + (size_t)l * D, N, D, c->norm_eps);
    proj(m, l, W_QKV, qkv, xn1, p->wqkv + (size_t)l * S * D, N, D, S, 0.0f);
    nn_rope_forward(qkv, S, m->pos, N, NH, hd, m->rope_cos, m->rope_sin);
    nn_rope_forward(qkv + QD, S, m->pos, N, NKV, hd, m->rope_cos, m->rope_sin);
    if (T >= 64) llama_attention_forward(atty, att, qkv, m->scratch, B, T, NH, NKV, hd);
    else llama_attention_forward_naive(atty, att, qkv, m->scratch, B, T, NH, NKV, hd);
    memcpy(res2, res, (size_t)N * D * sizeof(float));
    proj(m, l, W_O, res2, atty, p->wo + (size_t)l * D * QD, N, QD, D, 1.0f);
    nn_rmsnorm_forward(xn2, rstd2, res2, p->ffn_norm + (size_t)l * D, N, D, c->norm_eps);
    proj(m, l, W_13, gu, xn2, p->w13 + (size_t)l * 2 * F * D, N, D, 2 * F, 0.0f);
    nn_swiglu_forward(hsw, gu, N, F, 2 * F);
    memcpy(res3, res2, (size_t)N * D * sizeof(float));
    proj(m, l, W_2, res3, hsw, p->w2 + (size_t)l * D * F, N, F, D, 1.0f);
}

int llama_forward(llama_model *m, const int *inputs, const float *soft, int n_soft, const int *targets, int B,
                  int T, float norm, int flags)
{
    const llama_config *c = &m->cfg;
    int D = c->dim, F = c->hidden_dim, NH = c->n_heads, V = c->vocab_size, L = c->n_layers;
    int QD = llama_qdim(c), S = QD + 2 * llama_kvdim(c);
    size_t BT = (size_t)B * T;
    if (targets && (flags & LLAMA_NOLOGITS))
        return DM_ERR(DM_EINTERNAL, "llama_forward: targets given with LLAMA_NOLOGITS");
    if ((flags & LLAMA_TARGET_ROWS) && !targets)
        return DM_ERR(DM_EINTERNAL, "llama_forward: LLAMA_TARGET_ROWS needs targets");
    if (targets && !(norm > 0))
        return DM_ERR(DM_EINPUT, "llama_forward: the loss normaliser must be positive, got %g", norm);
    DM_CALL(lmc_check_inputs(V, inputs, soft, n_soft, BT));
    if (targets) DM_CALL(lmc_check_targets(V, targets, BT));
    if (lmc_needs_reserve(B, T, flags, m->max_B, m->max_T, m->max_flags, m->act_slab != NULL))
        DM_CALL(llama_reserve(m, B, T, flags));
    llama_acts *a = &m->acts;
    size_t need = act_layout(c, B, T, flags, a, m->act_slab);
    DM_ASSERT(need <= m->act_cap);
    memcpy(m->inputs, inputs, BT * sizeof *inputs);
    m->has_targets = targets != NULL;
    if (targets) memcpy(m->targets, targets, BT * sizeof *targets);
    m->B = B;
    m->T = T;
    m->flags = flags;
    m->norm = norm;
    for (size_t i = 0; i < BT; i++) m->pos[i] = (int)(i % (size_t)T);
    int keep = flags & LLAMA_KEEP;
    size_t lD = keep ? BT * D : 0, lR = keep ? BT : 0, lS = keep ? BT * S : 0, lQ = keep ? BT * QD : 0,
           lF = keep ? BT * F : 0;

    embed_rows(a->x0, m, inputs, soft, (int)BT);
    for (int l = 0; l < L; l++) {
        const float *res = l == 0 ? a->x0 : a->res3 + (l - 1) * lD;
        block_forward(m, l, res, a->xn1 + l * lD, a->rstd1 + l * lR, a->qkv + l * lS,
                      keep ? a->att + (size_t)l * B * NH * T * T : NULL, a->atty + l * lQ, a->res2 + l * lD,
                      a->xn2 + l * lD, a->rstd2 + l * lR, a->gu + 2 * l * lF, a->hsw + l * lF,
                      a->res3 + l * lD, B, T);
    }
    const float *last = a->res3 + (L - 1) * lD;
    nn_rmsnorm_forward(a->xf, a->rstdf, last, m->params.norm, (int)BT, D, c->norm_eps);
    m->loss = 0.0f;
    m->n_rows = 0;
    if (flags & LLAMA_NOLOGITS) return DM_OK;
    int sparse = (flags & LLAMA_TARGET_ROWS) != 0;
    const float *hin = sparse ? a->xf_rows : a->xf;
    size_t NR = sparse ? lmc_pack_target_rows(targets, BT, m->rows, a->xf, a->xf_rows, D) : BT;
    m->n_rows = (int)NR;
    if (NR > 0) proj(m, 0, W_HEAD, a->logits, hin, m->params.head, (int)NR, D, V, 0.0f);
    if (!targets) return DM_OK;
    double loss = lmc_xent_loss(a->logits, a->lse, NR, V, targets, sparse ? m->rows : NULL, m->target_w);
    m->loss = (float)(loss / norm);
    return DM_OK;
}

int llama_backward(llama_model *m, const float *dlogits, const float *dhidden, float *dsoft)
{
    const llama_config *c = &m->cfg;
    if (!(m->flags & LLAMA_KEEP))
        return DM_ERR(DM_EINTERNAL, "llama_backward: the last forward did not keep activations (LLAMA_KEEP)");
    int sparse = (m->flags & LLAMA_TARGET_ROWS) != 0;
    if (dlogits && (m->flags & LLAMA_NOLOGITS))
        return DM_ERR(DM_EINTERNAL, "llama_backward: dlogits given but the forward had LLAMA_NOLOGITS");
    if (sparse && dlogits)
        return DM_ERR(DM_EINTERNAL, "llama_backward: dlogits cannot be combined with LLAMA_TARGET_ROWS");
    int B = m->B, T = m->T, D = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim;
    int V = c->vocab_size, L = c->n_layers, QD = NH * hd, S = QD + 2 * NKV * hd;
    size_t BT = (size_t)B * T, lD = BT * D, lR = BT, lS = BT * S, lF = BT * F;
    if (m->bf && !m->bf->bwd) DM_CALL(bf_pack(m, 1)); /* the transposed copies, once */
    llama_acts *a = &m->acts;
    const llama_params *p = &m->params;
    int use_logits = !(m->flags & LLAMA_NOLOGITS) && (m->has_targets || dlogits);

    float *dres = m->dres, *dc = m->dbt_d;
    memset(dres, 0, lD * sizeof *dres);
    memset(dc, 0, lD * sizeof *dc);
    if (use_logits) {
        float *dl = a->logits; /* in place: the logits are no longer needed */
        const int *tg = m->targets;
        float inv = 1.0f / m->norm;
        size_t NR = sparse ? (size_t)m->n_rows : BT;
        lmc_xent_backward(dl, NR, V, a->lse, m->has_targets ? tg : NULL, sparse ? m->rows : NULL, m->target_w, inv, dlogits);
        if (!sparse) {
            proj_back(m, 0, W_HEAD, dc, dl, p->head, (int)BT, D, V);
        } else if (NR > 0) {
            /* the packed hidden states are spent: their buffer takes the packed gradient */
            proj_back(m, 0, W_HEAD, a->xf_rows, dl, p->head, (int)NR, D, V);
            lmc_unpack_rows(dc, m->rows, NR, a->xf_rows, D);
        }
    }
    if (dhidden)
        for (size_t i = 0; i < lD; i++) dc[i] += dhidden[i];
    nn_rmsnorm_backward(dres, NULL, dc, a->res3 + (L - 1) * lD, p->norm, a->rstdf, (int)BT, D);

    for (int l = L - 1; l >= 0; l--) {
        const float *res = l == 0 ? a->x0 : a->res3 + (l - 1) * lD;
        /* dres = d res3: through the MLP; the residual passes dres on unchanged */
        proj_back(m, l, W_2, m->dbt_f, dres, p->w2 + (size_t)l * D * F, (int)BT, F, D);
        nn_swiglu_backward(m->dgu, m->dbt_f, a->gu + 2 * l * lF, (int)BT, F, 2 * F);
        proj_back(m, l, W_13, dc, m->dgu, p->w13 + (size_t)l * 2 * F * D, (int)BT, D, 2 * F);
        nn_rmsnorm_backward(dres, NULL, dc, a->res2 + l * lD, p->ffn_norm + (size_t)l * D, a->rstd2 + l * lR,
                            (int)BT, D);
        /* dres = d res2: through attention */
        proj_back(m, l, W_O, m->dbt_q, dres, p->wo + (size_t)l * D * QD, (int)BT, QD, D);
        memset(m->dqkv, 0, lS * sizeof *m->dqkv);
        llama_attention_backward(m->dqkv, m->dbt_q, a->att + (size_t)l * B * NH * T * T, a->qkv + l * lS,
                                 m->scratch, B, T, NH, NKV, hd);
        nn_rope_backward(m->dqkv, S, m->pos, (int)BT, NH, hd, m->rope_cos, m->rope_sin);
        nn_rope_backward(m->dqkv + QD, S, m->pos, (int)BT, NKV, hd, m->rope_cos, m->rope_sin);
        proj_back(m, l, W_QKV, dc, m->dqkv, p->wqkv + (size_t)l * S * D, (int)BT, D, S);
        nn_rmsnorm_backward(dres, NULL, dc, res, p->attn_norm + (size_t)l * D, a->rstd1 + l * lR, (int)BT, D);
    }
    /* dres = d x0: to the soft rows */
    if (dsoft)
        for (size_t i = 0; i < BT; i++) {
            int x = m->inputs[i];
            if (x >= 0) continue;
            float *dst = dsoft + (size_t)LLAMA_SOFT_ROW(x) * D;
            const float *d = dres + i * D;
            for (int k = 0; k < D; k++) dst[k] += d[k];
        }
    return DM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * KV cache */

int llama_cache_init(llama_cache *c, const llama_model *m, int cap, int max_rows)
{
    memset(c, 0, sizeof *c);
    const llama_config *g = &m->cfg;
    if (cap <= 0 || cap > g->max_seq) cap = g->max_seq;
    if (max_rows <= 0) max_rows = 256;
    c->m = m;
    c->cap = cap;
    c->max_rows = max_rows;
    size_t D = (size_t)g->dim, R = (size_t)max_rows, L = (size_t)g->n_layers, QD = (size_t)llama_qdim(g),
           KD = (size_t)llama_kvdim(g), F = (size_t)g->hidden_dim;
    DM_ALLOC(c->k, L * cap * KD);
    DM_ALLOC(c->v, L * cap * KD);
    DM_ALLOC(c->logp, (size_t)g->vocab_size);
    DM_ALLOC(c->x, R * D);
    DM_ALLOC(c->xn, R * D);
    DM_ALLOC(c->qkv, R * (QD + 2 * KD));
    DM_ALLOC(c->y, R * QD);
    DM_ALLOC(c->gu, R * 2 * F);
    DM_ALLOC(c->h, R * F);
    DM_ALLOC(c->scores, R * (size_t)cap);
    c->logit_rows = lmc_logit_rows(g->vocab_size, max_rows);
    DM_ALLOC(c->logits, (size_t)c->logit_rows * g->vocab_size);
    DM_ALLOC(c->lse, (size_t)c->logit_rows);
    DM_ALLOC(c->row_pos, R);
    DM_ALLOC(c->row_start, R);
    DM_ALLOC(c->row_need, R);
    DM_ALLOC(c->row_tok, R);
    DM_ALLOC(c->row_abs, R);
    DM_ALLOC(c->hid, (size_t)cap * D);
    return DM_OK;
}

void llama_cache_free(llama_cache *c)
{
    free(c->k); free(c->v); free(c->logp); free(c->x); free(c->xn); free(c->qkv); free(c->y); free(c->gu);
    free(c->h); free(c->scores); free(c->logits); free(c->lse); free(c->row_pos); free(c->row_start);
    free(c->row_need); free(c->row_tok); free(c->row_abs); free(c->hid);
    memset(c, 0, sizeof *c);
}

/* Runs the blocks over R rows already embedded in c->x. Row r sits at position c->len + row_pos[r]
 * and attends to the cached positions [0, c->len) and to rows row_start[r] .. r. With commit, the
 * rows' keys and values go to the cache at their positions. Leaves the final residual in c->x. */
static void cache_blocks(llama_cache *c, int R, int commit)
{
    const llama_model *m = c->m;
    const llama_config *g = &m->cfg;
    const llama_params *p = &m->params;
    int D = g->dim, F = g->hidden_dim, NH = g->n_heads, NKV = g->n_kv_heads, hd = g->head_dim;
    int QD = NH * hd, KD = NKV * hd, S = QD + 2 * KD, grp = NH / NKV, P = c->len, cap = c->cap;
    float scale = 1.0f / sqrtf((float)hd);
    for (int r = 0; r < R; r++) c->row_abs[r] = P + c->row_pos[r];
    int ld = P + c->max_rows; /* score row: P cached keys, then the row's own group */
    if (ld > cap) ld = cap;
    for (int l = 0; l < g->n_layers; l++) {
        float *kc = c->k + (size_t)l * cap * KD, *vc = c->v + (size_t)l * cap * KD;
        nn_rmsnorm_forward(c->xn, NULL, c->x, p->attn_norm + (size_t)l * D, R, D, g->norm_eps);
        proj(m, l, W_QKV, c->qkv, c->xn, p->wqkv + (size_t)l * S * D, R, D, S, 0.0f);
        nn_rope_forward(c->qkv, S, c->row_abs, R, NH, hd, m->rope_cos, m->rope_sin);
        nn_rope_forward(c->qkv + QD, S, c->row_abs, R, NKV, hd, m->rope_cos, m->rope_sin);
        for (int h = 0; h < NH; h++) {
            int kh = h / grp;
            float *s = c->scores;
            if (P > 0)
                nn_sgemm(CblasNoTrans, CblasTrans, R, P, hd, scale, c->qkv + (size_t)h * hd, S,
                         kc + (size_t)kh * hd, KD, 0.0f, s, ld);
#pragma omp parallel for schedule(static)
            for (int r = 0; r < R; r++) {
                const float *q = c->qkv + (size_t)r * S + (size_t)h * hd;
                float *row = s + (size_t)r * ld;
                int st = c->row_start[r], n = P + r - st + 1;
                for (int r2 = st; r2 <= r; r2++) {
                    const float *k = c->qkv + (size_t)r2 * S + QD + (size_t)kh * hd;
                    float d = 0.0f;
#pragma omp simd reduction(+ : d)
                    for (int i = 0; i < hd; i++) d += q[i] * k[i];
                    row[P + r2 - st] = d * scale;
                }
                nn_softmax(row, n);
            }
            if (P > 0)
                nn_sgemm(CblasNoTrans, CblasNoTrans, R, hd, P, 1.0f, s, ld, vc + (size_t)kh * hd, KD, 0.0f,
                         c->y + (size_t)h * hd, QD);
#pragma omp parallel for schedule(static)
            for (int r = 0; r < R; r++) {
                float *o = c->y + (size_t)r * QD + (size_t)h * hd;
                const float *row = s + (size_t)r * ld;
                int st = c->row_start[r];
                if (P == 0)
                    for (int i = 0; i < hd; i++) o[i] = 0.0f;
                for (int r2 = st; r2 <= r; r2++) {
                    const float *v = c->qkv + (size_t)r2 * S + QD + KD + (size_t)kh * hd;
                    float w = row[P + r2 - st];
                    for (int i = 0; i < hd; i++) o[i] += w * v[i];
                }
            }
        }
        if (commit)
            for (int r = 0; r < R; r++) {
                size_t pos = (size_t)c->row_abs[r];
                memcpy(kc + pos * KD, c->qkv + (size_t)r * S + QD, (size_t)KD * sizeof(float));
                memcpy(vc + pos * KD, c->qkv + (size_t)r * S + QD + KD, (size_t)KD * sizeof(float));
            }
        proj(m, l, W_O, c->x, c->y, p->wo + (size_t)l * D * QD, R, QD, D, 1.0f);
        nn_rmsnorm_forward(c->xn, NULL, c->x, p->ffn_norm + (size_t)l * D, R, D, g->norm_eps);
        proj(m, l, W_13, c->gu, c->xn, p->w13 + (size_t)l * 2 * F * D, R, D, 2 * F, 0.0f);
        nn_swiglu_forward(c->h, c->gu, R, F, 2 * F);
        proj(m, l, W_2, c->x, c->h, p->w2 + (size_t)l * D * F, R, F, D, 1.0f);
    }
}

/* logits (n, V) of n final hidden states into c->logits and each row's log-sum-exp into out_lse */
static void logsoftmax_rows(const llama_cache *c, const float *hid, int n, float *out_lse)
{
    const llama_model *m = c->m;
    int V = m->cfg.vocab_size;
    proj(m, 0, W_HEAD, c->logits, hid, m->params.head, n, m->cfg.dim, V, 0.0f);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) out_lse[i] = nn_logsumexp(c->logits + (size_t)i * V, V);
}

/* c->logp from the stored final hidden state of cached position pos */
static void set_logp(llama_cache *c, int pos)
{
    int V = c->m->cfg.vocab_size;
    float lse;
    logsoftmax_rows(c, c->hid + (size_t)pos * c->m->cfg.dim, 1, &lse);
    for (int j = 0; j < V; j++) c->logp[j] = c->logits[j] - lse;
    c->logp_lse = lse;
}

int llama_cache_append(llama_cache *c, const int *inputs, const float *soft, int n_soft, int n)
{
    const llama_model *m = c->m;
    int D = m->cfg.dim;
    if (n <= 0) return DM_OK;
    if (c->len + n > c->cap)
        return DM_ERR(DM_EINPUT, "kv cache: appending %d positions to %d exceeds its capacity of %d", n, c->len,
                      c->cap);
    DM_CALL(lmc_check_inputs(m->cfg.vocab_size, inputs, soft, n_soft, (size_t)n));
    for (int done = 0; done < n;) {
        int R = n - done < c->max_rows ? n - done : c->max_rows;
        for (int r = 0; r < R; r++) {
            c->row_pos[r] = r;
            c->row_start[r] = 0;
        }
        embed_rows(c->x, m, inputs + done, soft, R);
        cache_blocks(c, R, 1);
        nn_rmsnorm_forward(c->hid + (size_t)c->len * D, NULL, c->x, m->params.norm, R, D, m->cfg.norm_eps);
        c->len += R;
        done += R;
    }
    set_logp(c, c->len - 1);
    return DM_OK;
}

int llama_cache_truncate(llama_cache *c, int len)
{
    if (len < 0 || len > c->len)
        return DM_ERR(DM_EINTERNAL, "kv cache: cannot truncate %d positions to %d", c->len, len);
    c->len = len;
    if (len > 0) set_logp(c, len - 1);
    return DM_OK;
}

int llama_cache_score_mixed(llama_cache *c, const int *tokens, const int64_t *offsets, int n_cand,
                            const float *csoft, int n_csoft, const float *esoft, double *ll, double *ll_soft)
{
    const llama_model *m = c->m;
    int V = m->cfg.vocab_size, D = m->cfg.dim;
    if (c->len == 0) return DM_ERR(DM_EINPUT, "kv cache: scoring needs a non-empty prefix");
    if ((esoft == NULL) != (ll_soft == NULL))
        return DM_ERR(DM_EINTERNAL, "llama_cache_score_mixed: esoft and ll_soft go together");
    DM_CALL(lmc_check_candidates(tokens, offsets, n_cand, c->len, c->cap, c->max_rows, V, csoft, n_csoft, 0));
    for (int i = 0; i < n_cand; i++) {
        int64_t n = offsets[i + 1] - offsets[i];
        ll[i] = n > 0 && tokens[offsets[i]] >= 0 ? c->logp[tokens[offsets[i]]] : 0.0;
        if (n == 0 && esoft) /* the soft token right after the prefix */
            ll_soft[i] = lmc_soft_ll(c->logp_lse, lmc_dot_d(c->hid + (size_t)(c->len - 1) * D, esoft + (size_t)i * D, D));
    }
    /* without soft tokens to score, a candidate's last position predicts nothing: it is not run */
    int run_last = esoft != NULL;
    int i0 = 0;
    while (i0 < n_cand) {
        /* candidates i0..i1 whose positions fit in max_rows rows */
        int i1 = lmc_cand_batch_end(offsets, n_cand, i0, c->max_rows);
        int Rin = lmc_cand_rows(tokens, offsets, i0, i1, run_last, c->row_pos, c->row_start, c->row_need, c->row_tok);
        if (Rin > 0) {
            embed_rows(c->x, m, c->row_tok, csoft, Rin);
            cache_blocks(c, Rin, 0);
            nn_rmsnorm_forward(c->xn, NULL, c->x, m->params.norm, Rin, D, m->cfg.norm_eps);
            for (int r0 = 0; r0 < Rin; r0 += c->logit_rows) {
                int nr = Rin - r0 < c->logit_rows ? Rin - r0 : c->logit_rows;
                logsoftmax_rows(c, c->xn + (size_t)r0 * D, nr, c->lse);
                for (int k = 0; k < nr; k++) {
                    int rr = r0 + k, i = c->row_need[rr];
                    int n = (int)(offsets[i + 1] - offsets[i]);
                    if (c->row_pos[rr] + 1 < n) {
                        int next = tokens[offsets[i] + c->row_pos[rr] + 1];
                        if (next >= 0) ll[i] += c->logits[(size_t)k * V + next] - c->lse[k];
                    } else {
                        ll_soft[i] = lmc_soft_ll(c->lse[k], lmc_dot_d(c->xn + (size_t)rr * D, esoft + (size_t)i * D, D));
                    }
                }
            }
        }
        i0 = i1;
    }
    return DM_OK;
}

int llama_cache_score(llama_cache *c, const int *tokens, const int64_t *offsets, int n_cand, double *ll)
{
    return llama_cache_score_mixed(c, tokens, offsets, n_cand, NULL, 0, NULL, ll, NULL);
}

int llama_generate_greedy(llama_cache *c, int max_new, int stop_token, int *out, int *n_out)
{
    int V = c->m->cfg.vocab_size;
    *n_out = 0;
    if (c->len == 0) return DM_ERR(DM_EINPUT, "kv cache: greedy generation needs a non-empty prefix");
    for (int s = 0; s < max_new && c->len < c->cap; s++) {
        int best = lmc_argmax(c->logp, V);
        out[(*n_out)++] = best;
        DM_CALL(llama_cache_append(c, &best, NULL, 0, 1));
        if (best == stop_token) break;
    }
    return DM_OK;
}
