/* lm_common.c: see lm_common.h. */
#include "lm_common.h"

#include "../core/err.h"
#include "../nn/softmax.h"
#include "gpt2.h"
#include "llama.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)LMC_KEEP == (int)GPT2_KEEP && (int)LMC_KEEP == (int)LLAMA_KEEP, "forward flags differ");
_Static_assert((int)LMC_NOLOGITS == (int)GPT2_NOLOGITS && (int)LMC_NOLOGITS == (int)LLAMA_NOLOGITS,
               "forward flags differ");
_Static_assert(LMC_SOFT_ROW(-8) == GPT2_SOFT_ROW(-8) && LMC_SOFT_ROW(-8) == LLAMA_SOFT_ROW(-8), "soft codes differ");

/* ---- checks ---- */

int lmc_check_inputs(int vocab, const int *inputs, const float *soft, int n_soft, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int x = inputs[i];
        if (x >= vocab)
            return DM_ERR(DM_EINPUT, "input %zu: token id %d is outside the vocabulary of %d", i, x, vocab);
        if (x < 0 && (!soft || LMC_SOFT_ROW(x) >= n_soft))
            return DM_ERR(DM_EINPUT, "input %zu: soft row %d is outside the %d soft vectors given", i,
                          LMC_SOFT_ROW(x), soft ? n_soft : 0);
    }
    return DM_OK;
}

int lmc_check_targets(int vocab, const int *targets, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (targets[i] >= vocab)
            return DM_ERR(DM_EINPUT, "target %zu: token id %d is outside the vocabulary of %d", i, targets[i], vocab);
    return DM_OK;
}

int lmc_check_candidates(const int *tokens, const int64_t *offsets, int n_cand, int len, int cap, int max_rows,
                         int vocab, const float *csoft, int n_csoft, int tokens_only)
{
    for (int i = 0; i < n_cand; i++) {
        int64_t n = offsets[i + 1] - offsets[i];
        if (n < 0) return DM_ERR(DM_EINPUT, "candidate %d: offsets decrease", i);
        if (n > max_rows)
            return DM_ERR(DM_EINPUT, "candidate %d has %lld tokens, more than the %d rows of a scoring batch", i,
                          (long long)n, max_rows);
        if (len + n > cap)
            return DM_ERR(DM_EINPUT, "candidate %d: prefix %d + %lld tokens exceeds the context of %d", i, len,
                          (long long)n, cap);
        for (int64_t j = offsets[i]; j < offsets[i + 1]; j++) {
            if (tokens[j] >= vocab || (tokens_only && tokens[j] < 0))
                return DM_ERR(DM_EINPUT, "candidate %d: token id %d is outside the vocabulary of %d", i, tokens[j],
                              vocab);
            if (tokens[j] < 0 && (!csoft || LMC_SOFT_ROW(tokens[j]) >= n_csoft))
                return DM_ERR(DM_EINPUT, "candidate %d: soft row %d is outside the %d soft vectors given", i,
                              LMC_SOFT_ROW(tokens[j]), csoft ? n_csoft : 0);
        }
    }
    return DM_OK;
}

/* ---- reserves ---- */

int lmc_check_batch(int B, int T, int maxT)
{
    if (B <= 0 || T <= 0 || T > maxT)
        return DM_ERR(DM_EINPUT, "batch (%d, %d) is outside [1, inf) x [1, %d] (the model's context)", B, T, maxT);
    return DM_OK;
}

int lmc_reserve_slab(float **slab, size_t *cap, size_t need)
{
    if (need <= *cap) return DM_OK;
    DM_FREE(*slab);
    *cap = 0;
    DM_ALLOC(*slab, need);
    *cap = need;
    return DM_OK;
}

int lmc_needs_reserve(int B, int T, int flags, int max_B, int max_T, int max_flags, int reserved)
{
    return B > max_B || T > max_T || ((flags & LMC_KEEP) && !(max_flags & LMC_KEEP)) ||
           (!(flags & LMC_NOLOGITS) && (max_flags & LMC_NOLOGITS)) || !reserved;
}

int lmc_reserve_flags(int flags, int max_flags, int reserved)
{
    if (!reserved) return flags & (LMC_KEEP | LMC_NOLOGITS);
    int nflags = max_flags | (flags & LMC_KEEP);
    if (!(flags & LMC_NOLOGITS)) nflags &= ~LMC_NOLOGITS;
    return nflags;
}

int lmc_reserve_scratch(float **scratch, int *scratch_threads, int nT, int max_T, int min_rows)
{
    int threads = omp_get_max_threads();
    size_t rows = (size_t)(threads > min_rows ? threads : min_rows);
    if (nT > max_T || threads > *scratch_threads || !*scratch) {
        DM_FREE(*scratch);
        DM_ALLOC(*scratch, rows * (size_t)nT);
        *scratch_threads = threads;
    }
    return DM_OK;
}

/* ---- cross-entropy over the logits rows ---- */

size_t lmc_pack_target_rows(const int *targets, size_t n, int *rows, const float *h, float *h_rows, int C)
{
    size_t NR = 0;
    for (size_t i = 0; i < n; i++)
        if (targets[i] >= 0) rows[NR++] = (int)i;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < NR; k++) memcpy(h_rows + k * C, h + (size_t)rows[k] * C, (size_t)C * sizeof(float));
    return NR;
}

void lmc_unpack_rows(float *dst, const int *rows, size_t NR, const float *src, int C)
{
    for (size_t k = 0; k < NR; k++) memcpy(dst + (size_t)rows[k] * C, src + k * C, (size_t)C * sizeof(float));
}

double lmc_xent_loss(const float *logits, float *lse, size_t NR, int V, const int *targets, const int *rows,
                     const float *target_w)
{
    double loss = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : loss)
    for (size_t k = 0; k < NR; k++) {
        size_t i = rows ? (size_t)rows[k] : k;
        if (targets[i] < 0) continue;
        const float *r = logits + k * V;
        lse[k] = nn_logsumexp(r, V);
        loss += (target_w ? target_w[i] : 1.0f) * (lse[k] - r[targets[i]]);
    }
    return loss;
}

void lmc_xent_backward(float *dl, size_t NR, int V, const float *lse, const int *targets, const int *rows,
                       const float *target_w, float inv, const float *dlogits)
{
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < NR; k++) {
        size_t i = rows ? (size_t)rows[k] : k;
        float *r = dl + k * V;
        const float *u = dlogits ? dlogits + i * V : NULL;
        if (targets && targets[i] >= 0) {
            float wi = target_w ? inv * target_w[i] : inv;
            nn_softmax_xent_backward(r, V, lse[k], targets[i], wi);
        } else {
            for (int j = 0; j < V; j++) r[j] = 0.0f;
        }
        if (u)
            for (int j = 0; j < V; j++) r[j] += u[j];
    }
}

/* ---- KV cache ---- */

int lmc_logit_rows(int V, int max_rows)
{
    int n = (int)(LMC_LOGIT_FLOATS / (size_t)V);
    if (n > max_rows) n = max_rows;
    return n < 1 ? 1 : n;
}

int lmc_cand_batch_end(const int64_t *offsets, int n_cand, int i0, int max_rows)
{
    int i1 = i0, R = 0;
    while (i1 < n_cand && R + (offsets[i1 + 1] - offsets[i1]) <= max_rows) {
        R += (int)(offsets[i1 + 1] - offsets[i1]);
        i1++;
    }
    return i1;
}

int lmc_cand_rows(const int *tokens, const int64_t *offsets, int i0, int i1, int run_last, int *row_pos,
                  int *row_start, int *row_need, int *row_tok)
{
    int R = 0;
    for (int i = i0; i < i1; i++) {
        int n = (int)(offsets[i + 1] - offsets[i]);
        for (int j = 0; j < n - !run_last; j++) {
            row_pos[R] = j;
            row_start[R] = R - j;
            row_need[R] = i;
            row_tok[R] = tokens[offsets[i] + j];
            R++;
        }
    }
    return R;
}

double lmc_soft_ll(double lv, double ls)
{
    double mx = lv > ls ? lv : ls;
    return ls - (mx + log(exp(lv - mx) + exp(ls - mx)));
}

double lmc_dot_d(const float *a, const float *b, int n)
{
    double s = 0.0;
    for (int k = 0; k < n; k++) s += (double)a[k] * b[k];
    return s;
}

int lmc_argmax(const float *x, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* ---- checkpoints ---- */

int lmc_read_config(const char *dir, int want_object, int (*parse)(const dm_json *root, void *out, const char *path),
                    void *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    dm_jdoc doc = {0};
    dm_json *root;
    DM_CALL(dm_json_load(path, want_object, &doc, &text, &root));
    int rc = parse(root, out, path);
    dm_jdoc_free(&doc);
    free(text);
    return rc;
}

/* ---- precision ---- */

int lmc_bf16_switch(nn_bf16_weights **bf, int bf16, int (*pack)(void *model, int bwd), void *model, int *made)
{
    nn_bf16_weights_free(*bf);
    *bf = NULL;
    *made = 0;
    if (!bf16 || !nn_bf16_or_warn()) return DM_OK; /* f32 (the fallback said once in the log) */
    DM_ALLOC(*bf, 1);
    int rc = pack(model, 0);
    if (rc) {
        nn_bf16_weights_free(*bf);
        *bf = NULL;
        dm_error_trace(__FILE__, __LINE__);
        return rc;
    }
    *made = 1;
    return DM_OK;
}
