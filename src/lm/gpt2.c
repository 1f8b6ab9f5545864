/* gpt2.c: GPT-2 forward, backward, KV cache, AdamW; see gpt2.h. The layers (linear, layer norm,
 * GELU, softmax and cross-entropy rows, AdamW) are src/nn's; the batch attention and what the
 * runtime shares with llama.c (checks, reserves, cross-entropy rows, candidate batches) are
 * lm_attention.c's and lm_common.c's; the naive attention and the KV cache are here.
 *
 * Layer conventions follow Hugging Face gpt2 so checkpoints and a PyTorch reference agree:
 *   x = wte[tok] (or a soft row) + wpe[pos]
 *   per block: x += attn(LN1(x)) @ Wproj + bproj;  x += gelu_tanh(LN2(x) @ Wfc + bfc) @ Wfp + bfp
 *   logits = LNf(x) @ wte^T
 * Matrices are (in, out), so a linear layer is one row-major sgemm without transposes.
 */
#include "gpt2.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../nn/adam.h"
#include "../nn/gelu.h"
#include "../nn/gemm.h"
#include "../nn/layernorm.h"
#include "../nn/linear.h"
#include "../nn/softmax.h"
#include "gpt2_bf16.h"
#include "lm_attention.h"
#include "lm_common.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


const char *const gpt2_param_names[GPT2_NUM_PARAMS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

/* ---------------------------------------------------------------------------------------------
 * linear layers: src/nn/linear.h (nn_matmul_*: the weights are (in, out), Hugging Face's Conv1D),
 * or under GPT2_BF16 nn_bf16_gemm on the packed copies (starting from the bias, or from the residual
 * plus the bias put in out first, as the f32 path does) */

enum { W_QKV, W_ATTPROJ, W_FC, W_FCPROJ, W_KINDS }; /* the weight matrices of a block */

static const nn_bf16_mat *bf_fwd(const gpt2_model *m, int l, int kind)
{
    return m->bf ? &m->bf->fwd[(size_t)l * W_KINDS + kind] : NULL;
}

/* out (N, OC) = bias + inp @ w, w being weight `kind` of layer l */
static void matmul_fwd(const gpt2_model *m, int l, int kind, float *out, const float *inp, const float *w,
                       const float *bias, int N, int IC, int OC)
{
    const nn_bf16_mat *b = bf_fwd(m, l, kind);
    if (!b) {
        nn_matmul_forward(out, inp, w, bias, N, IC, OC);
        return;
    }
    nn_bf16_gemm(out, (size_t)OC, inp, (size_t)IC, b, N, bias, 0);
}

/* dinp (N, IC) = dout @ w^T (overwritten); dw (IC, OC), dbias (OC) += as nn_matmul_backward */
static void matmul_backward(const gpt2_model *m, int l, int kind, float *dinp, float *dw, float *dbias,
                            const float *dout, const float *inp, const float *w, int N, int IC, int OC)
{
    if (m->bf) {
        nn_bf16_gemm(dinp, (size_t)IC, dout, (size_t)OC, &m->bf->bwd[(size_t)l * W_KINDS + kind], N, NULL, 0);
        if (dw || dbias) nn_matmul_backward(NULL, dw, dbias, dout, inp, w, N, IC, OC);
        return;
    }
    memset(dinp, 0, (size_t)N * IC * sizeof *dinp);
    nn_matmul_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC);
}

/* out (N, OC) = res (N, OC) + inp @ w + bias: the residual add fused into the GEMM's beta. */
static void matmul_residual(const gpt2_model *m, int l, int kind, float *out, const float *res, const float *inp,
                            const float *w, const float *bias, int N, int IC, int OC)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) out[(size_t)i * OC + o] = res[(size_t)i * OC + o] + bias[o];
    const nn_bf16_mat *b = bf_fwd(m, l, kind);
    if (b) nn_bf16_gemm(out, (size_t)OC, inp, (size_t)IC, b, N, NULL, 1);
    else nn_sgemm(CblasNoTrans, CblasNoTrans, N, OC, IC, 1.0f, inp, IC, w, OC, 1.0f, out, OC);
}

/* logits (n, V) = h (n, C) wte^T */
static void head_forward(const gpt2_model *m, float *logits, const float *h, int n)
{
    int V = m->cfg.vocab_size, C = m->cfg.channels;
    if (m->bf) nn_bf16_gemm(logits, (size_t)V, h, (size_t)C, &m->bf->head, n, NULL, 0);
    else nn_sgemm(CblasNoTrans, CblasTrans, n, V, C, 1.0f, h, C, m->params.wte, C, 0.0f, logits, V);
}

/* dh (n, C) = dlogits (n, V) wte (overwritten) */
static void head_backward(const gpt2_model *m, float *dh, const float *dl, int n)
{
    int V = m->cfg.vocab_size, C = m->cfg.channels;
    if (m->bf) nn_bf16_gemm(dh, (size_t)C, dl, (size_t)V, &m->bf->head_t, n, NULL, 0);
    else nn_sgemm(CblasNoTrans, CblasNoTrans, n, C, V, 1.0f, dl, V, m->params.wte, C, 0.0f, dh, C);
}

/* ---------------------------------------------------------------------------------------------
 * precision: the bfloat16 copies of the weights */

/* weight `kind` of layer l of the model (a gpt2_model), (IC, OC) */
static const float *block_weight(const void *model, int l, int kind, int *IC, int *OC)
{
    const gpt2_model *m = model;
    const gpt2_params *p = &m->params;
    size_t C = (size_t)m->cfg.channels, F = (size_t)m->cfg.inner;
    switch (kind) {
    case W_QKV: *IC = (int)C; *OC = (int)(3 * C); return p->qkvw + l * C * 3 * C;
    case W_ATTPROJ: *IC = (int)C; *OC = (int)C; return p->attprojw + l * C * C;
    case W_FC: *IC = (int)C; *OC = (int)F; return p->fcw + l * C * F;
    default: *IC = (int)F; *OC = (int)C; return p->fcprojw + l * F * C;
    }
}

static void bf_free(gpt2_model *m)
{
    nn_bf16_weights_free(m->bf);
    m->bf = NULL;
}

/* packs the forward copies (fwd, head), and the backward ones (bwd, head_t) when they exist or
 * `bwd` asks for them (nn_bf16_weights_pack: the weights are (IC, OC); the head is the tied wte) */

static int bf_pack(void *model, int bwd)
{
    gpt2_model *m = model;
    return nn_bf16_weights_pack(m->bf, m->cfg.num_layers, W_KINDS, 0, bwd, block_weight, m, m->params.wte, m->cfg.channels, m->cfg.vocab_size);
}

const char *gpt2_precision_name(int precision)
{
    return precision == GPT2_BF16 ? "bf16" : precision == GPT2_F32 ? "f32" : "?";
}

int gpt2_precision_parse(const char *name)
{
    if (!strcmp(name, "f32")) return GPT2_F32;
    if (!strcmp(name, "bf16")) return GPT2_BF16;
    return -1;
}

int gpt2_set_precision(gpt2_model *m, int precision)
{
    if (precision != GPT2_F32 && precision != GPT2_BF16)
        return DM_ERR(DM_EINTERNAL, "gpt2_set_precision: unknown precision %d", precision);
    int made;
    m->precision = GPT2_F32;
    DM_CALL(lmc_bf16_switch(&m->bf, precision == GPT2_BF16, bf_pack, m, &made));
    m->precision = made ? GPT2_BF16 : GPT2_F32;
    return DM_OK;
}

size_t gpt2_bf16_bytes(const gpt2_model *m)
{
    return nn_bf16_weights_bytes(m->bf);
}

/* ---------------------------------------------------------------------------------------------
 * attention */

void gpt2_attention_forward_naive(float *out, float *att, const float *qkv, float *scratch, int B, int T,
                                  int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *row = att ? att + (((size_t)b * NH + h) * T + t) * T
                                 : scratch + (size_t)omp_get_thread_num() * T;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    s *= scale;
                    row[t2] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = expf(row[t2] - mx);
                    sum += row[t2];
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) row[t2] *= inv;
                if (att)
                    for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0.0f;
                float *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] += row[t2] * v[i];
                }
            }
}

void gpt2_attention_forward(float *out, float *att, const float *qkv, float *scratch, int B, int T, int C,
                            int NH)
{
    lma_forward(out, att, qkv, scratch, B, T, NH, NH, C / NH, 0);
}

void gpt2_attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv,
                             float *scratch, int B, int T, int C, int NH)
{
    lma_backward(dqkv, dout, att, qkv, scratch, B, T, NH, NH, C / NH, 0);
}

/* ---------------------------------------------------------------------------------------------
 * model setup */

gpt2_config gpt2_config_make(int layers, int heads, int channels, int context, int vocab)
{
    gpt2_config c = {context, vocab, layers, heads, channels, 4 * channels, 1e-5f};
    return c;
}

int gpt2_config_check(const gpt2_config *c, const char *what)
{
    if (c->max_seq_len <= 0 || c->vocab_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 ||
        c->channels <= 0 || c->inner <= 0 || !(c->ln_eps > 0))
        return DM_ERR(DM_EINPUT,
                      "%s: GPT-2 sizes must be positive (n_positions %d, vocab_size %d, n_layer %d, "
                      "n_head %d, n_embd %d, n_inner %d, layer_norm_epsilon %g)", what, c->max_seq_len,
                      c->vocab_size, c->num_layers, c->num_heads, c->channels, c->inner, c->ln_eps);
    if (c->channels % c->num_heads)
        return DM_ERR(DM_EINPUT, "%s: n_embd %d is not divisible by n_head %d", what, c->channels,
                      c->num_heads);
    return DM_OK;
}

static void param_sizes(const gpt2_config *c, size_t *s)
{
    size_t V = (size_t)c->vocab_size, C = (size_t)c->channels, L = (size_t)c->num_layers,
           T = (size_t)c->max_seq_len, F = (size_t)c->inner;
    s[0] = V * C;      s[1] = T * C;
    s[2] = L * C;      s[3] = L * C;
    s[4] = L * C * 3 * C; s[5] = L * 3 * C;
    s[6] = L * C * C;  s[7] = L * C;
    s[8] = L * C;      s[9] = L * C;
    s[10] = L * C * F; s[11] = L * F;
    s[12] = L * F * C; s[13] = L * C;
    s[14] = C;         s[15] = C;
}

static void point_views(gpt2_params *p, float *slab, const size_t *sizes)
{
    float **v[GPT2_NUM_PARAMS] = {&p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb,
                                  &p->attprojw, &p->attprojb, &p->ln2w, &p->ln2b, &p->fcw, &p->fcb,
                                  &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb};
    for (int i = 0; i < GPT2_NUM_PARAMS; i++) {
        *v[i] = slab;
        slab += sizes[i];
    }
}

int gpt2_init(gpt2_model *m, const gpt2_config *cfg)
{
    memset(m, 0, sizeof *m);
    DM_CALL(gpt2_config_check(cfg, "gpt2 config"));
    m->cfg = *cfg;
    param_sizes(cfg, m->param_sizes);
    for (int i = 0; i < GPT2_NUM_PARAMS; i++) m->num_params += m->param_sizes[i];
    DM_ALLOC(m->param_slab, m->num_params);
    point_views(&m->params, m->param_slab, m->param_sizes);
    return DM_OK;
}

void gpt2_init_random(gpt2_model *m, uint64_t seed)
{
    const gpt2_config *c = &m->cfg;
    float resid_std = 0.02f / sqrtf(2.0f * c->num_layers);
    float *base = m->param_slab;
    for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
        size_t n = m->param_sizes[p];
        /* layer-norm gains 1 and all biases 0 */
        int is_gain = p == 2 || p == 8 || p == 14, is_bias = p == 3 || p == 5 || p == 7 || p == 9 ||
                                                             p == 11 || p == 13 || p == 15;
        float std = (p == 6 || p == 12) ? resid_std : 0.02f;
        if (is_gain || is_bias) {
            for (size_t i = 0; i < n; i++) base[i] = is_gain ? 1.0f : 0.0f;
        } else {
            /* one keyed stream per 4096-element chunk: the values do not depend on threads */
            size_t nchunk = (n + 4095) / 4096;
#pragma omp parallel for schedule(static)
            for (size_t ch = 0; ch < nchunk; ch++) {
                dm_rng r;
                dm_rng_seed(&r, dm_rng_key(seed, (uint64_t)p, ch));
                size_t e = (ch + 1) * 4096 < n ? (ch + 1) * 4096 : n;
                for (size_t i = ch * 4096; i < e; i++) base[i] = std * (float)dm_rng_normal(&r);
            }
        }
        base += n;
    }
}

void gpt2_free(gpt2_model *m)
{
    bf_free(m);
    DM_FREE_ALL(m->param_slab, m->grad_slab, m->adam_m, m->adam_v, m->act_slab, m->scratch, m->dres, m->dbt_c,
                m->dqkv, m->dbt_f, m->inputs, m->targets, m->rows);
    memset(m, 0, sizeof *m);
}

size_t gpt2_num_flops_per_token(const gpt2_config *c, int T)
{
    size_t C = (size_t)c->channels, F = (size_t)c->inner, L = (size_t)c->num_layers;
    size_t mm = L * (3 * C * C + C * C + 2 * C * F) + C * (size_t)c->vocab_size;
    size_t attn = L * 2 * C * (size_t)(T + 1) / 2; /* q.k and att.v over on average (T+1)/2 keys */
    return 2 * (mm + attn);
}

/* OpenBLAS (pthreads) and libgomp keep separate thread pools. After a parallel region libgomp's
 * workers spin-wait for the next one (unless OMP_WAIT_POLICY=passive) and steal the cores the BLAS
 * threads need: on two busy cores a GPT-2 small forward ran 3-10x slower. The GEMMs are most of the
 * work, so BLAS gets the n threads and the OpenMP loops run on one unless the workers sleep. */
void gpt2_set_threads(int n)
{
    if (n <= 0) return;
    const char *w = getenv("OMP_WAIT_POLICY");
    int passive = w && (w[0] == 'p' || w[0] == 'P');
    omp_set_num_threads(passive ? n : 1);
    openblas_set_num_threads(n);
}

/* Activation views for (B, T): returns the floats needed; assigns pointers when base != NULL. */
static size_t act_layout(const gpt2_config *c, int B, int T, int flags, gpt2_acts *a, float *base)
{
    size_t BT = (size_t)B * T, C = (size_t)c->channels, F = (size_t)c->inner, NH = (size_t)c->num_heads;
    size_t L = (flags & GPT2_KEEP) ? (size_t)c->num_layers : 1;
    size_t V = (flags & GPT2_NOLOGITS) ? 0 : (size_t)c->vocab_size;
    struct { float **p; size_t n; } v[] = {
        {&a->encoded, BT * C}, {&a->ln1, L * BT * C}, {&a->ln1_mean, L * BT}, {&a->ln1_rstd, L * BT},
        {&a->qkv, L * BT * 3 * C}, {&a->atty, L * BT * C},
        {&a->att, (flags & GPT2_KEEP) ? L * B * NH * T * T : 0},
        {&a->res2, L * BT * C}, {&a->ln2, L * BT * C}, {&a->ln2_mean, L * BT}, {&a->ln2_rstd, L * BT},
        {&a->fch, L * BT * F}, {&a->fch_gelu, (flags & GPT2_KEEP) ? L * BT * F : 0},
        {&a->res3, L * BT * C}, {&a->lnf, BT * C}, {&a->lnf_mean, BT}, {&a->lnf_rstd, BT},
        {&a->logits, BT * V}, {&a->lse, BT}, {&a->lnf_rows, V ? BT * C : 0}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (base) *v[i].p = v[i].n ? base + total : NULL;
        total += (v[i].n + 15) & ~(size_t)15; /* 64-byte aligned views */
    }
    if (base && !(flags & GPT2_KEEP)) a->fch_gelu = a->fch; /* GELU in place when nothing is kept */
    return total;
}

int gpt2_reserve(gpt2_model *m, int B, int T, int flags)
{
    const gpt2_config *c = &m->cfg;
    DM_CALL(lmc_check_batch(B, T, c->max_seq_len));
    int nB = B > m->max_B ? B : m->max_B, nT = T > m->max_T ? T : m->max_T;
    int nflags = lmc_reserve_flags(flags, m->max_flags, m->act_slab != NULL);
    gpt2_acts tmp;
    DM_CALL(lmc_reserve_slab(&m->act_slab, &m->act_cap, act_layout(c, nB, nT, nflags, &tmp, NULL)));
    DM_CALL(lmc_reserve_scratch(&m->scratch, &m->scratch_threads, nT, m->max_T, LMA_QBLOCK));
    if (nB * nT > m->max_B * m->max_T || !m->inputs) {
        DM_FREE_ALL(m->inputs, m->targets, m->rows);
        DM_ALLOC(m->inputs, (size_t)nB * nT);
        DM_ALLOC(m->targets, (size_t)nB * nT);
        DM_ALLOC(m->rows, (size_t)nB * nT);
    }
    if ((nflags & GPT2_KEEP) && (!m->dres || nB * nT > m->max_B * m->max_T)) {
        size_t BT = (size_t)nB * nT, C = (size_t)c->channels;
        DM_FREE_ALL(m->dres, m->dbt_c, m->dqkv, m->dbt_f);
        DM_ALLOC(m->dres, BT * C);
        DM_ALLOC(m->dbt_c, BT * C);
        DM_ALLOC(m->dqkv, BT * 3 * C);
        DM_ALLOC(m->dbt_f, BT * (size_t)c->inner);
    }
    m->max_B = nB;
    m->max_T = nT;
    m->max_flags = nflags;
    return DM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * batch forward / backward */

/* out (n, C): row i embeds inputs[i] at position pos0 + rowpos[i] (rowpos NULL: i % T, or i when
 * T == 0). */
static void embed_rows(float *out, const gpt2_model *m, const int *inputs, const float *soft, int n,
                       int pos0, int T, const int *rowpos)
{
    int C = m->cfg.channels;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        int x = inputs[i], pos = pos0 + (rowpos ? rowpos[i] : T > 0 ? i % T : i);
        const float *e = x >= 0 ? m->params.wte + (size_t)x * C : soft + (size_t)GPT2_SOFT_ROW(x) * C;
        const float *p = m->params.wpe + (size_t)pos * C;
        float *o = out + (size_t)i * C;
        for (int k = 0; k < C; k++) o[k] = e[k] + p[k];
    }
}

int gpt2_forward(gpt2_model *m, const int *inputs, const float *soft, int n_soft, const int *targets,
                 int B, int T, float norm, int flags)
{
    const gpt2_config *c = &m->cfg;
    int C = c->channels, F = c->inner, NH = c->num_heads, V = c->vocab_size;
    size_t BT = (size_t)B * T;
    if (targets && (flags & GPT2_NOLOGITS))
        return DM_ERR(DM_EINTERNAL, "gpt2_forward: targets given with GPT2_NOLOGITS");
    if (targets && !(norm > 0))
        return DM_ERR(DM_EINPUT, "gpt2_forward: the loss normaliser must be positive, got %g", norm);
    DM_CALL(lmc_check_inputs(V, inputs, soft, n_soft, BT));
    if (lmc_needs_reserve(B, T, flags, m->max_B, m->max_T, m->max_flags, m->act_slab != NULL))
        DM_CALL(gpt2_reserve(m, B, T, flags));
    gpt2_acts *a = &m->acts;
    size_t need = act_layout(c, B, T, flags, a, m->act_slab);
    DM_ASSERT(need <= m->act_cap);
    memcpy(m->inputs, inputs, BT * sizeof *inputs);
    m->has_targets = targets != NULL;
    if (targets) memcpy(m->targets, targets, BT * sizeof *targets);
    m->B = B;
    m->T = T;
    m->flags = flags;
    m->norm = norm;
    int keep = flags & GPT2_KEEP;
    size_t lC = keep ? BT * C : 0, lR = keep ? BT : 0, l3 = keep ? BT * 3 * C : 0, lF = keep ? BT * F : 0;
    const gpt2_params *p = &m->params;

    embed_rows(a->encoded, m, inputs, soft, (int)BT, 0, T, NULL);
    for (int l = 0; l < c->num_layers; l++) {
        const float *res = l == 0 ? a->encoded : a->res3 + (l - 1) * lC;
        float *ln1 = a->ln1 + l * lC, *qkv = a->qkv + l * l3, *atty = a->atty + l * lC;
        float *att = keep ? a->att + (size_t)l * B * NH * T * T : NULL;
        float *res2 = a->res2 + l * lC, *ln2 = a->ln2 + l * lC, *fch = a->fch + l * lF;
        float *fchg = a->fch_gelu + l * lF, *res3 = a->res3 + l * lC;
        nn_layernorm_forward(ln1, a->ln1_mean + l * lR, a->ln1_rstd + l * lR, res, p->ln1w + l * C,
                             p->ln1b + l * C, (int)BT, C, c->ln_eps);
        matmul_fwd(m, l, W_QKV, qkv, ln1, p->qkvw + (size_t)l * C * 3 * C, p->qkvb + l * 3 * C, (int)BT, C, 3 * C);
        if (T >= 64) lma_forward(atty, att, qkv, m->scratch, B, T, NH, NH, C / NH, m->bf != NULL);
        else gpt2_attention_forward_naive(atty, att, qkv, m->scratch, B, T, C, NH);
        matmul_residual(m, l, W_ATTPROJ, res2, res, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C,
                        (int)BT, C, C);
        nn_layernorm_forward(ln2, a->ln2_mean + l * lR, a->ln2_rstd + l * lR, res2, p->ln2w + l * C,
                             p->ln2b + l * C, (int)BT, C, c->ln_eps);
        matmul_fwd(m, l, W_FC, fch, ln2, p->fcw + (size_t)l * C * F, p->fcb + (size_t)l * F, (int)BT, C, F);
        if (m->bf) gpt2_bf16_gelu_forward(fchg, fch, BT * F);
        else nn_gelu_forward(fchg, fch, BT * F);
        matmul_residual(m, l, W_FCPROJ, res3, res2, fchg, p->fcprojw + (size_t)l * F * C, p->fcprojb + l * C, (int)BT,
                        F, C);
    }
    const float *last = a->res3 + (c->num_layers - 1) * lC;
    nn_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, p->lnfw, p->lnfb, (int)BT, C, c->ln_eps);
    m->loss = 0.0f;
    m->n_rows = 0;
    if (flags & GPT2_NOLOGITS) return DM_OK;
    if ((flags & GPT2_TARGET_ROWS) && !targets)
        return DM_ERR(DM_EINTERNAL, "gpt2_forward: GPT2_TARGET_ROWS needs targets");
    if (targets) DM_CALL(lmc_check_targets(V, targets, BT));
    int sparse = (flags & GPT2_TARGET_ROWS) != 0;
    const float *hin = sparse ? a->lnf_rows : a->lnf;
    size_t NR = sparse ? lmc_pack_target_rows(targets, BT, m->rows, a->lnf, a->lnf_rows, C) : BT;
    m->n_rows = (int)NR;
    if (NR > 0) head_forward(m, a->logits, hin, (int)NR);
    if (!targets) return DM_OK;
    double loss = 0.0;
    if (m->bf) { /* every row's log-sum-exp on the AVX-512 loop (rows without a target included) */
        gpt2_bf16_logsumexp_rows(a->lse, a->logits, (size_t)V, (int)NR, V);
        for (size_t k = 0; k < NR; k++) {
            size_t i = sparse ? (size_t)m->rows[k] : k;
            if (targets[i] >= 0)
                loss += (m->target_w ? m->target_w[i] : 1.0f) * (a->lse[k] - a->logits[k * V + targets[i]]);
        }
    } else {
        loss = lmc_xent_loss(a->logits, a->lse, NR, V, targets, sparse ? m->rows : NULL, m->target_w);
    }
    m->loss = (float)(loss / norm);
    return DM_OK;
}

int gpt2_backward(gpt2_model *m, const float *dlogits, const float *dhidden, float *dsoft, int flags)
{
    const gpt2_config *c = &m->cfg;
    if (!(m->flags & GPT2_KEEP))
        return DM_ERR(DM_EINTERNAL, "gpt2_backward: the last forward did not keep activations (GPT2_KEEP)");
    int wg = flags & GPT2_WEIGHT_GRADS;
    if (wg && !m->grad_slab)
        return DM_ERR(DM_EINTERNAL, "gpt2_backward: weight gradients asked for before gpt2_train_init");
    int B = m->B, T = m->T, C = c->channels, F = c->inner, NH = c->num_heads, V = c->vocab_size, L = c->num_layers;
    size_t BT = (size_t)B * T, lC = BT * C, lR = BT, l3 = BT * 3 * C, lF = BT * F;
    gpt2_acts *a = &m->acts;
    const gpt2_params *p = &m->params;
    gpt2_params *g = &m->grads;
    int use_logits = !(m->flags & GPT2_NOLOGITS) && (m->has_targets || dlogits);
    if (dlogits && (m->flags & GPT2_NOLOGITS))
        return DM_ERR(DM_EINTERNAL, "gpt2_backward: dlogits given but the forward had GPT2_NOLOGITS");
    if (m->bf && !m->bf->bwd) DM_CALL(bf_pack(m, 1)); /* the transposed copies, once */

    float *dres = m->dres, *dc = m->dbt_c;
    memset(dres, 0, lC * sizeof *dres);
    memset(dc, 0, lC * sizeof *dc);
    int sparse = (m->flags & GPT2_TARGET_ROWS) != 0;
    if (sparse && dlogits)
        return DM_ERR(DM_EINTERNAL, "gpt2_backward: dlogits cannot be combined with GPT2_TARGET_ROWS");
    if (use_logits) {
        float *dl = a->logits; /* in place: logits are no longer needed */
        const int *tg = m->targets;
        float inv = 1.0f / m->norm;
        size_t NR = sparse ? (size_t)m->n_rows : BT;
        if (m->bf && m->has_targets && !dlogits) {
            gpt2_bf16_xent_backward_rows(dl, (int)NR, V, a->lse, tg, sparse ? m->rows : NULL, m->target_w, inv);
        } else {
            lmc_xent_backward(dl, NR, V, a->lse, m->has_targets ? tg : NULL, sparse ? m->rows : NULL, m->target_w, inv,
                              dlogits);
        }
        if (!sparse) {
            head_backward(m, dc, dl, (int)BT);
            if (wg)
                nn_sgemm(CblasTrans, CblasNoTrans, V, C, (int)BT, 1.0f, dl, V, a->lnf, C, 1.0f,
                         g->wte, C);
        } else if (NR > 0) {
            if (wg)
                nn_sgemm(CblasTrans, CblasNoTrans, V, C, (int)NR, 1.0f, dl, V, a->lnf_rows, C, 1.0f,
                         g->wte, C);
            /* the packed hidden states are spent: their buffer takes the packed gradient */
            head_backward(m, a->lnf_rows, dl, (int)NR);
            lmc_unpack_rows(dc, m->rows, NR, a->lnf_rows, C);
        }
    }
    if (dhidden)
        for (size_t i = 0; i < lC; i++) dc[i] += dhidden[i];
    const float *last = a->res3 + (L - 1) * lC;
    nn_layernorm_backward(dres, wg ? g->lnfw : NULL, wg ? g->lnfb : NULL, dc, last, p->lnfw, a->lnf_mean,
                          a->lnf_rstd, (int)BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const float *res = l == 0 ? a->encoded : a->res3 + (l - 1) * lC;
        const float *ln1 = a->ln1 + l * lC, *qkv = a->qkv + l * l3, *atty = a->atty + l * lC;
        const float *att = a->att + (size_t)l * B * NH * T * T;
        const float *res2 = a->res2 + l * lC, *ln2 = a->ln2 + l * lC, *fch = a->fch + l * lF;
        const float *fchg = a->fch_gelu + l * lF;
        /* dres = d res3: through the MLP; the residual path passes dres on unchanged */
        matmul_backward(m, l, W_FCPROJ, m->dbt_f, wg ? g->fcprojw + (size_t)l * F * C : NULL, wg ? g->fcprojb + l * C : NULL,
                        dres, fchg, p->fcprojw + (size_t)l * F * C, (int)BT, F, C);
        if (m->bf) gpt2_bf16_gelu_backward(m->dbt_f, fch, m->dbt_f, lF);
        else nn_gelu_backward(m->dbt_f, fch, m->dbt_f, lF);
        matmul_backward(m, l, W_FC, dc, wg ? g->fcw + (size_t)l * C * F : NULL, wg ? g->fcb + (size_t)l * F : NULL,
                        m->dbt_f, ln2, p->fcw + (size_t)l * C * F, (int)BT, C, F);
        nn_layernorm_backward(dres, wg ? g->ln2w + l * C : NULL, wg ? g->ln2b + l * C : NULL, dc, res2,
                              p->ln2w + l * C, a->ln2_mean + l * lR, a->ln2_rstd + l * lR, (int)BT, C);
        /* dres = d res2: through attention */
        matmul_backward(m, l, W_ATTPROJ, dc, wg ? g->attprojw + (size_t)l * C * C : NULL, wg ? g->attprojb + l * C : NULL,
                        dres, atty, p->attprojw + (size_t)l * C * C, (int)BT, C, C);
        memset(m->dqkv, 0, l3 * sizeof *m->dqkv);
        lma_backward(m->dqkv, dc, att, qkv, m->scratch, B, T, NH, NH, C / NH, m->bf != NULL);
        matmul_backward(m, l, W_QKV, dc, wg ? g->qkvw + (size_t)l * C * 3 * C : NULL, wg ? g->qkvb + l * 3 * C : NULL,
                        m->dqkv, ln1, p->qkvw + (size_t)l * C * 3 * C, (int)BT, C, 3 * C);
        nn_layernorm_backward(dres, wg ? g->ln1w + l * C : NULL, wg ? g->ln1b + l * C : NULL, dc, res,
                              p->ln1w + l * C, a->ln1_mean + l * lR, a->ln1_rstd + l * lR, (int)BT, C);
    }
    /* dres = d encoded: to the soft rows, and to wte / wpe when training */
    for (size_t i = 0; i < BT; i++) {
        int x = m->inputs[i];
        const float *d = dres + i * C;
        float *dst = NULL;
        if (x < 0) dst = dsoft ? dsoft + (size_t)GPT2_SOFT_ROW(x) * C : NULL;
        else if (wg) dst = g->wte + (size_t)x * C;
        if (dst)
            for (int k = 0; k < C; k++) dst[k] += d[k];
        if (wg) {
            float *dp = g->wpe + (size_t)(i % T) * C;
            for (int k = 0; k < C; k++) dp[k] += d[k];
        }
    }
    return DM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * training */

int gpt2_train_init(gpt2_model *m)
{
    if (!m->grad_slab) {
        DM_ALLOC(m->grad_slab, m->num_params);
        point_views(&m->grads, m->grad_slab, m->param_sizes);
    }
    if (!m->adam_m) DM_ALLOC(m->adam_m, m->num_params);
    if (!m->adam_v) DM_ALLOC(m->adam_v, m->num_params);
    return DM_OK;
}

void gpt2_zero_grad(gpt2_model *m)
{
    if (m->grad_slab) memset(m->grad_slab, 0, m->num_params * sizeof *m->grad_slab);
}

double gpt2_grad_norm(const gpt2_model *m)
{
    double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s)
    for (size_t i = 0; i < m->num_params; i++) s += (double)m->grad_slab[i] * m->grad_slab[i];
    return sqrt(s);
}

void gpt2_grad_scale(gpt2_model *m, float s)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->num_params; i++) m->grad_slab[i] *= s;
}

void gpt2_adamw_step(gpt2_model *m, const gpt2_adamw *o, int t)
{
    /* decoupled decay on the matrices only: wte, wpe, qkvw, attprojw, fcw, fcprojw */
    static const unsigned char decay[GPT2_NUM_PARAMS] = {1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1};
    const nn_adam opt = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, NN_ADAM_DECOUPLED};
    nn_adam_step_tensors(&opt, t, m->param_slab, m->grad_slab, m->adam_m, m->adam_v, GPT2_NUM_PARAMS,
                         m->param_sizes, decay);
    /* the bfloat16 copies follow the weights (same shapes: packed in place, nothing can fail) */
    if (m->bf) DM_ASSERT(bf_pack(m, 0) == DM_OK);
}

/* ---------------------------------------------------------------------------------------------
 * KV cache */

int gpt2_cache_init(gpt2_cache *c, const gpt2_model *m, int cap, int max_rows)
{
    memset(c, 0, sizeof *c);
    const gpt2_config *g = &m->cfg;
    if (cap <= 0 || cap > g->max_seq_len) cap = g->max_seq_len;
    if (max_rows <= 0) max_rows = 256;
    c->m = m;
    c->cap = cap;
    c->max_rows = max_rows;
    size_t C = (size_t)g->channels, R = (size_t)max_rows, L = (size_t)g->num_layers;
    DM_ALLOC(c->k, L * cap * C);
    DM_ALLOC(c->v, L * cap * C);
    DM_ALLOC(c->logp, (size_t)g->vocab_size);
    DM_ALLOC(c->x, R * C);
    DM_ALLOC(c->ln, R * C);
    DM_ALLOC(c->qkv, R * 3 * C);
    DM_ALLOC(c->y, R * C);
    DM_ALLOC(c->h, R * (size_t)g->inner);
    DM_ALLOC(c->scores, R * (size_t)cap);
    c->logit_rows = lmc_logit_rows(g->vocab_size, max_rows);
    DM_ALLOC(c->logits, (size_t)c->logit_rows * g->vocab_size);
    DM_ALLOC(c->lse, (size_t)c->logit_rows);
    DM_ALLOC(c->row_pos, R);
    DM_ALLOC(c->row_start, R);
    DM_ALLOC(c->row_need, R);
    DM_ALLOC(c->row_tok, R);
    DM_ALLOC(c->hid, (size_t)cap * C);
    return DM_OK;
}

void gpt2_cache_free(gpt2_cache *c)
{
    free(c->k); free(c->v); free(c->logp); free(c->x); free(c->ln); free(c->qkv); free(c->y);
    free(c->h); free(c->scores); free(c->logits); free(c->row_pos); free(c->row_start); free(c->row_need);
    free(c->row_tok); free(c->hid); free(c->lse);
    memset(c, 0, sizeof *c);
}

/* The cache's attention is written as lm_attention.c's: always-inline bodies over one row, run as
 * OpenMP loops or, under GPT2_BF16, on the bf16 pool in AVX-512 code. */
#define INLINE static inline __attribute__((always_inline))

typedef struct { /* the arguments of the bf16 path's cache loops */
    float *s;
    gpt2_cache *c;
    int ld, h, P;
    float scale;
} cache_job;

/* The cache's attention, row r of head h:
 * scores of the row against its group's rows (after the P cached keys already in row), softmax */
INLINE void cache_scores_row(const gpt2_cache *c, float *row, int r, int h, int P, float scale, int wide)
{
    int C = c->m->cfg.channels, hs = C / c->m->cfg.num_heads;
    const float *q = c->qkv + (size_t)r * 3 * C + h * hs;
    int st = c->row_start[r], n = P + r - st + 1;
    for (int r2 = st; r2 <= r; r2++) {
        const float *k = c->qkv + (size_t)r2 * 3 * C + C + h * hs;
        float d = 0.0f;
#pragma omp simd reduction(+ : d)
        for (int i = 0; i < hs; i++) d += q[i] * k[i];
        row[P + r2 - st] = d * scale;
    }
    if (wide) lma_softmax_masked_row(row, n, n);
    else nn_softmax(row, n);
}

/* the row's output += its weights times its group's values (the cached ones already in y) */
INLINE void cache_values_row(gpt2_cache *c, const float *row, int r, int h, int P)
{
    int C = c->m->cfg.channels, hs = C / c->m->cfg.num_heads;
    float *o = c->y + (size_t)r * C + h * hs;
    int st = c->row_start[r];
    if (P == 0)
        for (int i = 0; i < hs; i++) o[i] = 0.0f;
    for (int r2 = st; r2 <= r; r2++) {
        const float *v = c->qkv + (size_t)r2 * 3 * C + 2 * C + h * hs;
        float w = row[P + r2 - st];
#pragma omp simd
        for (int i = 0; i < hs; i++) o[i] += w * v[i];
    }
}

LMA_AVX512 static void cache_scores_wide(void *p, long r0, long r1, int t)
{
    const cache_job *j = p;
    for (long r = r0; r < r1; r++) cache_scores_row(j->c, j->s + (size_t)r * j->ld, (int)r, j->h, j->P, j->scale, 1);
}

LMA_AVX512 static void cache_values_wide(void *p, long r0, long r1, int t)
{
    const cache_job *j = p;
    for (long r = r0; r < r1; r++) cache_values_row(j->c, j->s + (size_t)r * j->ld, (int)r, j->h, j->P);
}

/* Attention of the R rows of c->qkv against the cached keys kc and values vc and their own groups,
 * into c->y */
static void cache_attention(gpt2_cache *c, int R, const float *kc, const float *vc, int wide)
{
    const gpt2_config *g = &c->m->cfg;
    int C = g->channels, NH = g->num_heads, hs = C / NH, P = c->len, cap = c->cap;
    float scale = 1.0f / sqrtf((float)hs);
    int ld = P + c->max_rows; /* score row: P cached keys, then the row's own group */
    if (ld > cap) ld = cap;
    for (int h = 0; h < NH; h++) {
        float *s = c->scores;
        if (P > 0)
            nn_sgemm(CblasNoTrans, CblasTrans, R, P, hs, scale, c->qkv + h * hs, 3 * C,
                     kc + h * hs, C, 0.0f, s, ld);
        cache_job j = {.s = s, .c = c, .ld = ld, .h = h, .P = P, .scale = scale};
        if (wide) {
            nn_bf16_for(R, (size_t)R * hs * 4, cache_scores_wide, &j);
        } else {
#pragma omp parallel for schedule(static)
            for (int r = 0; r < R; r++) cache_scores_row(c, s + (size_t)r * ld, r, h, P, scale, 0);
        }
        if (P > 0)
            nn_sgemm(CblasNoTrans, CblasNoTrans, R, hs, P, 1.0f, s, ld, vc + h * hs, C, 0.0f,
                     c->y + h * hs, C);
        if (wide) {
            nn_bf16_for(R, (size_t)R * hs * 4, cache_values_wide, &j);
        } else {
#pragma omp parallel for schedule(static)
            for (int r = 0; r < R; r++) cache_values_row(c, s + (size_t)r * ld, r, h, P);
        }
    }
}

/* Runs the blocks over R rows already embedded in c->x. Row r sits at position c->len + row_pos[r]
 * and attends to the cached positions [0, c->len) and to rows row_start[r] .. r. With commit, the
 * rows' keys and values are written to the cache at their positions. Leaves the final residual in
 * c->x. */
static void cache_blocks(gpt2_cache *c, int R, int commit)
{
    const gpt2_model *m = c->m;
    const gpt2_config *g = &m->cfg;
    const gpt2_params *p = &m->params;
    int C = g->channels, F = g->inner, P = c->len, cap = c->cap;
    for (int l = 0; l < g->num_layers; l++) {
        float *kc = c->k + (size_t)l * cap * C, *vc = c->v + (size_t)l * cap * C;
        nn_layernorm_forward(c->ln, NULL, NULL, c->x, p->ln1w + l * C, p->ln1b + l * C, R, C, g->ln_eps);
        matmul_fwd(m, l, W_QKV, c->qkv, c->ln, p->qkvw + (size_t)l * C * 3 * C, p->qkvb + l * 3 * C, R, C, 3 * C);
        cache_attention(c, R, kc, vc, m->bf != NULL);
        if (commit)
            for (int r = 0; r < R; r++) {
                size_t pos = (size_t)P + c->row_pos[r];
                memcpy(kc + pos * C, c->qkv + (size_t)r * 3 * C + C, C * sizeof(float));
                memcpy(vc + pos * C, c->qkv + (size_t)r * 3 * C + 2 * C, C * sizeof(float));
            }
        matmul_residual(m, l, W_ATTPROJ, c->x, c->x, c->y, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, R, C, C);
        nn_layernorm_forward(c->ln, NULL, NULL, c->x, p->ln2w + l * C, p->ln2b + l * C, R, C, g->ln_eps);
        matmul_fwd(m, l, W_FC, c->h, c->ln, p->fcw + (size_t)l * C * F, p->fcb + (size_t)l * F, R, C, F);
        if (m->bf) gpt2_bf16_gelu_forward(c->h, c->h, (size_t)R * F);
        else nn_gelu_forward(c->h, c->h, (size_t)R * F);
        matmul_residual(m, l, W_FCPROJ, c->x, c->x, c->h, p->fcprojw + (size_t)l * F * C, p->fcprojb + l * C, R, F, C);
    }
}

/* logits (n, V) of n final hidden states into c->logits and each row's log-sum-exp into out_lse */
static void logsoftmax_rows(const gpt2_cache *c, const float *hid, int n, float *out_lse)
{
    const gpt2_model *m = c->m;
    int V = m->cfg.vocab_size;
    head_forward(m, c->logits, hid, n);
    if (m->bf) {
        gpt2_bf16_logsumexp_rows(out_lse, c->logits, (size_t)V, n, V);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        out_lse[i] = nn_logsumexp(c->logits + (size_t)i * V, V);
    }
}

/* c->logp from the stored final hidden state of cached position pos */
static void set_logp(gpt2_cache *c, int pos)
{
    int V = c->m->cfg.vocab_size, C = c->m->cfg.channels;
    float lse;
    logsoftmax_rows(c, c->hid + (size_t)pos * C, 1, &lse);
    for (int j = 0; j < V; j++) c->logp[j] = c->logits[j] - lse;
    c->logp_lse = lse;
}

int gpt2_cache_append(gpt2_cache *c, const int *inputs, const float *soft, int n_soft, int n)
{
    const gpt2_model *m = c->m;
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
        embed_rows(c->x, m, inputs + done, soft, R, c->len, 0, NULL);
        cache_blocks(c, R, 1);
        nn_layernorm_forward(c->hid + (size_t)c->len * m->cfg.channels, NULL, NULL, c->x, m->params.lnfw,
                             m->params.lnfb, R, m->cfg.channels, m->cfg.ln_eps);
        c->len += R;
        done += R;
        if (done == n) set_logp(c, c->len - 1);
    }
    return DM_OK;
}

int gpt2_cache_truncate(gpt2_cache *c, int len)
{
    if (len < 0 || len > c->len)
        return DM_ERR(DM_EINTERNAL, "kv cache: cannot truncate %d positions to %d", c->len, len);
    c->len = len;
    if (len > 0) set_logp(c, len - 1);
    return DM_OK;
}

/* The scores of gpt2_cache_score_mixed for candidates already checked. Without esoft (and
 * ll_soft) no soft token follows the candidates: a candidate's last position predicts nothing
 * scored, so it is not run. */
static void score_checked(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *csoft,
                          const float *esoft, double *ll, double *ll_soft)
{
    const gpt2_model *m = c->m;
    int V = m->cfg.vocab_size, C = m->cfg.channels;
    for (int i = 0; i < n_cand; i++) {
        int64_t n = offsets[i + 1] - offsets[i];
        ll[i] = n > 0 && tokens[offsets[i]] >= 0 ? c->logp[tokens[offsets[i]]] : 0.0;
        if (n == 0 && esoft) {
            /* the soft token right after the prefix: vocabulary lse from the cached log-probs */
            const float *h = c->hid + (size_t)(c->len - 1) * C;
            double ls = lmc_dot_d(h, esoft + (size_t)i * C, C);
            /* f32: the vocabulary's lse from logit 0 (as before); bf16: the kept lse, whose logits came
             * from the bfloat16 head rather than this float dot product */
            double lse = m->bf ? (double)c->logp_lse : lmc_dot_d(h, m->params.wte, C) - c->logp[0];
            ll_soft[i] = lmc_soft_ll(lse, ls);
        }
    }
    float *lse = c->lse;
    int i0 = 0;
    while (i0 < n_cand) {
        /* batch candidates i0..i1 whose positions fit in max_rows rows */
        int i1 = lmc_cand_batch_end(offsets, n_cand, i0, c->max_rows);
        int Rin = lmc_cand_rows(tokens, offsets, i0, i1, esoft != NULL, c->row_pos, c->row_start, c->row_need,
                                c->row_tok);
        if (Rin > 0) {
            embed_rows(c->x, m, c->row_tok, csoft, Rin, c->len, 0, c->row_pos);
            cache_blocks(c, Rin, 0);
            nn_layernorm_forward(c->ln, NULL, NULL, c->x, m->params.lnfw, m->params.lnfb, Rin, C, m->cfg.ln_eps);
            for (int r0 = 0; r0 < Rin; r0 += c->logit_rows) {
                int nr = Rin - r0 < c->logit_rows ? Rin - r0 : c->logit_rows;
                logsoftmax_rows(c, c->ln + (size_t)r0 * C, nr, lse);
                for (int k = 0; k < nr; k++) {
                    int rr = r0 + k, i = c->row_need[rr];
                    int n = (int)(offsets[i + 1] - offsets[i]);
                    if (c->row_pos[rr] + 1 < n) {
                        int next = tokens[offsets[i] + c->row_pos[rr] + 1];
                        if (next >= 0) ll[i] += c->logits[(size_t)k * V + next] - lse[k];
                    } else {
                        ll_soft[i] = lmc_soft_ll(lse[k], lmc_dot_d(c->ln + (size_t)rr * C, esoft + (size_t)i * C, C));
                    }
                }
            }
        }
        i0 = i1;
    }
}

int gpt2_cache_score(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, double *ll)
{
    if (c->len == 0)
        return DM_ERR(DM_EINPUT, "kv cache: scoring needs a non-empty prefix");
    DM_CALL(lmc_check_candidates(tokens, offsets, n_cand, c->len, c->cap, c->max_rows, c->m->cfg.vocab_size, NULL, 0, 1));
    score_checked(c, tokens, offsets, n_cand, NULL, NULL, ll, NULL);
    return DM_OK;
}

int gpt2_cache_score_soft(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *esoft,
                          double *ll, double *ll_soft)
{
    return gpt2_cache_score_mixed(c, tokens, offsets, n_cand, NULL, 0, esoft, ll, ll_soft);
}

int gpt2_cache_score_mixed(gpt2_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *csoft,
                           int n_csoft, const float *esoft, double *ll, double *ll_soft)
{
    if (c->len == 0) return DM_ERR(DM_EINPUT, "kv cache: scoring needs a non-empty prefix");
    DM_CALL(lmc_check_candidates(tokens, offsets, n_cand, c->len, c->cap, c->max_rows, c->m->cfg.vocab_size, csoft,
                                 n_csoft, 0));
    score_checked(c, tokens, offsets, n_cand, csoft, esoft, ll, ll_soft);
    return DM_OK;
}

int gpt2_generate_greedy(gpt2_cache *c, int max_new, int stop_token, int *out, int *n_out)
{
    int V = c->m->cfg.vocab_size;
    *n_out = 0;
    if (c->len == 0) return DM_ERR(DM_EINPUT, "kv cache: greedy generation needs a non-empty prefix");
    for (int s = 0; s < max_new && c->len < c->cap; s++) {
        int best = lmc_argmax(c->logp, V);
        out[(*n_out)++] = best;
        DM_CALL(gpt2_cache_append(c, &best, NULL, 0, 1));
        if (best == stop_token) break;
    }
    return DM_OK;
}
