/* llmrec.c: the LLM recommender's core, see llmrec.h. */
#include "llmrec.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pm_free(pm *p)
{
    lm_free(&p->lm);
    free(p->w);
    free(p->g);
    free(p->am);
    free(p->av);
    proj_acts_free(&p->ua);
    proj_acts_free(&p->ia);
    bpe_ids_free(&p->prefix);
    bpe_ids_free(&p->sep);
    bpe_ids_free(&p->query);
    free(p->toff);
    free(p->tok);
    free(p->in);
    free(p->tg);
    free(p->ctok);
    free(p->tw);
    free(p->dh);
    free(p->soft);
    free(p->dsoft);
    free(p->ude);
    free(p->ie);
    free(p->ide);
    free(p->zin);
    gpt2_cache_free(&p->cache);
    memset(p, 0, sizeof *p);
}

int pm_init(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc, uint64_t seed,
                   pm *p)
{
    memset(p, 0, sizeof *p);
    DM_CALL(lm_load(&p->lm, lmdir));
    p->C = p->lm.model.cfg.channels;
    p->V = p->lm.model.cfg.vocab_size;
    p->eot = p->lm.tok.eot >= 0 ? p->lm.tok.eot : 0;
    p->L = (int)dm_cfg_int(cfg, "prompt.user_tokens");
    p->nh = (int)dm_cfg_int(cfg, "prompt.history");
    p->mt = (int)dm_cfg_int(cfg, "prompt.title_tokens");
    p->K = (int)dm_cfg_int(cfg, "prompt.negatives");
    p->length_norm = dm_cfg_bool(cfg, "prompt.length_norm");
    const char *sc = dm_cfg_str(cfg, "prompt.score");
    p->use_title = strcmp(sc, "soft") != 0;
    p->use_soft = strcmp(sc, "title") != 0;
    p->z = z;
    p->d = dz;
    p->n_items = d->n_items;
    p->maxc = maxc > p->K + 1 ? maxc : p->K + 1;
    const char *s;
    s = dm_cfg_str(cfg, "prompt.prefix");
    DM_CALL(bpe_encode(&p->lm.tok, s, strlen(s), &p->prefix));
    s = dm_cfg_str(cfg, "prompt.separator");
    DM_CALL(bpe_encode(&p->lm.tok, s, strlen(s), &p->sep));
    s = dm_cfg_str(cfg, "prompt.query");
    DM_CALL(bpe_encode(&p->lm.tok, s, strlen(s), &p->query));
    /* " title" tokens of every item, cut to prompt.title_tokens */
    DM_ALLOC(p->toff, d->n_items + 1);
    size_t cap = d->n_items * (size_t)(p->mt > 0 ? p->mt : 1) + 1;
    DM_ALLOC(p->tok, cap);
    bpe_ids t = {0};
    dm_buf b = {0};
    for (size_t i = 0; i < d->n_items; i++) {
        size_t l;
        const char *ti = dm_strtab_get(&d->title, i, &l);
        t.n = 0;
        if (l && p->mt > 0) {
            dm_buf_reset(&b);
            DM_CALL(dm_buf_addc(&b, ' '));
            DM_CALL(dm_buf_add(&b, ti, l));
            DM_CALL(bpe_encode(&p->lm.tok, b.data, b.len, &t));
        }
        size_t n = t.n < (size_t)p->mt ? t.n : (size_t)p->mt;
        for (size_t k = 0; k < n; k++) p->tok[(size_t)p->toff[i] + k] = t.v[k];
        p->toff[i + 1] = p->toff[i] + (int64_t)n;
    }
    bpe_ids_free(&t);
    dm_buf_free(&b);
    p->Tmax = p->L + (int)p->prefix.n + p->nh * (p->mt + 1 + (int)p->sep.n) + (int)p->query.n + p->mt + 1;
    if (p->Tmax > p->lm.model.cfg.max_seq_len) {
        DM_ERR(DM_ECONFIG, "a prompt needs up to %d positions but the language model's context is %d", p->Tmax,
               p->lm.model.cfg.max_seq_len);
        DM_HINT("lower prompt.user_tokens, prompt.history or prompt.title_tokens, or use a model with a longer context (lm.context)");
        return DM_ECONFIG;
    }
    /* projectors in one slab */
    int H = (int)dm_cfg_int(cfg, "prompt.hidden");
    proj_config uc = {(int)dz, H, p->L * p->C, 1e-5f}, ic = {(int)dz, H, p->C, 1e-5f};
    p->n_up = proj_size(&uc);
    p->nparams = p->n_up + proj_size(&ic);
    DM_ALLOC(p->w, p->nparams);
    DM_ALLOC(p->g, p->nparams);
    DM_ALLOC(p->am, p->nparams);
    DM_ALLOC(p->av, p->nparams);
    proj_bind(&p->up, &uc, p->w, p->g);
    proj_bind(&p->ip, &ic, p->w + p->n_up, p->g + p->n_up);
    /* soft tokens start at the typical norm of the LM's token embeddings */
    double nrm = 0;
    for (size_t k = 0; k < (size_t)p->V * (size_t)p->C; k++) nrm += (double)p->lm.model.params.wte[k] * p->lm.model.params.wte[k];
    float scale = (float)sqrt(nrm / p->V) / sqrtf((float)p->C) * 2.0f;
    proj_init(&p->up, seed, scale);
    proj_init(&p->ip, seed ^ 0x17, scale);
    DM_CALL(proj_acts_init(&p->ua, &uc, 1));
    DM_CALL(proj_acts_init(&p->ia, &ic, p->nh + p->maxc));
    int B = p->K + 1, T = p->Tmax;
    DM_ALLOC(p->in, (size_t)B * (size_t)T);
    DM_ALLOC(p->tg, (size_t)B * (size_t)T);
    DM_ALLOC(p->ctok, (size_t)p->maxc * (size_t)(p->mt > 0 ? p->mt : 1) + 1);
    DM_ALLOC(p->tw, (size_t)B * (size_t)T);
    DM_ALLOC(p->dh, (size_t)B * (size_t)T * (size_t)p->C);
    DM_ALLOC(p->soft, (size_t)(p->L + p->nh + p->maxc) * (size_t)p->C);
    DM_ALLOC(p->dsoft, (size_t)(p->L + p->nh + 1) * (size_t)p->C);
    DM_ALLOC(p->ude, (size_t)p->L * (size_t)p->C);
    DM_ALLOC(p->ie, (size_t)(p->nh + p->maxc) * (size_t)p->C);
    DM_ALLOC(p->ide, (size_t)(p->nh + p->maxc) * (size_t)p->C);
    DM_ALLOC(p->zin, (size_t)(p->nh + p->maxc) * dz);
    DM_CALL(gpt2_reserve(&p->lm.model, B, T, GPT2_KEEP | GPT2_TARGET_ROWS));
    DM_CALL(gpt2_cache_init(&p->cache, &p->lm.model, p->lm.model.cfg.max_seq_len, 512));
    return DM_OK;
}

/* the prompt of a user with history hist[0..n) (the last prompt.history items are used) as input
 * codes: soft rows 0..L-1 are the user tokens, L + k the k-th history item; returns its length */
static int build_prompt(const pm *p, const int32_t *hist, int n, int L, int *out)
{
    int q = 0;
    for (int k = 0; k < L; k++) out[q++] = GPT2_SOFT(k);
    for (size_t k = 0; k < p->prefix.n; k++) out[q++] = p->prefix.v[k];
    for (int k = 0; k < n; k++) {
        int32_t it = hist[k];
        for (int64_t j = p->toff[it]; j < p->toff[it + 1]; j++) out[q++] = p->tok[j];
        out[q++] = GPT2_SOFT(p->L + k);
        for (size_t j = 0; j < p->sep.n; j++) out[q++] = p->sep.v[j];
    }
    for (size_t k = 0; k < p->query.n; k++) out[q++] = p->query.v[k];
    return q;
}

/* soft rows: user tokens from h, history and candidate item tokens from z */
static int project(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc)
{
    DM_CALL(proj_forward(&p->up, &p->ua, h, 1, p->soft));
    for (int k = 0; k < n; k++) memcpy(p->zin + (size_t)k * p->d, p->z + (size_t)hist[k] * p->d, p->d * sizeof(float));
    for (int k = 0; k < nc; k++) memcpy(p->zin + (size_t)(n + k) * p->d, p->z + (size_t)cand[k] * p->d, p->d * sizeof(float));
    DM_CALL(proj_forward(&p->ip, &p->ia, p->zin, n + nc, p->ie));
    /* history rows follow the user rows in the soft matrix */
    memcpy(p->soft + (size_t)p->L * p->C, p->ie, (size_t)n * p->C * sizeof(float));
    return DM_OK;
}

/* Scores candidates cand[0..nc) of a user (KV cache; the first L user tokens of the projection). */
int pm_score_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc, int L, double *s)
{
    DM_CALL(project(p, h, hist, n, cand, nc));
    int *code = p->in;
    int P = build_prompt(p, hist, n, p->L, code);
    if (L < p->L) {
        /* latency at a shorter prompt: drop the first L - p->L user rows */
        int drop = p->L - L;
        memmove(code, code + drop, (size_t)(P - drop) * sizeof *code);
        P -= drop;
    }
    DM_CALL(gpt2_cache_truncate(&p->cache, 0));
    DM_CALL(gpt2_cache_append(&p->cache, code, p->soft, p->L + n, P));
    int64_t off[1024 + 1];
    if (nc > 1024 || nc > p->maxc) return DM_ERR(DM_EINTERNAL, "%d candidates for a user, sized for %d", nc, p->maxc);
    int *tk = p->ctok;
    off[0] = 0;
    for (int k = 0; k < nc; k++) {
        int64_t a = p->toff[cand[k]], b = p->toff[cand[k] + 1];
        for (int64_t j = a; j < b; j++) tk[off[k] + (j - a)] = p->tok[j];
        off[k + 1] = off[k] + (b - a);
    }
    double ll[1024], lls[1024];
    DM_CALL(gpt2_cache_score_soft(&p->cache, tk, off, nc, p->ie + (size_t)n * p->C, ll, lls));
    for (int k = 0; k < nc; k++) {
        /* an item without a title always counts its soft token (else title-only scoring has nothing) */
        int soft = p->use_soft || off[k + 1] == off[k];
        double len = (p->use_title ? (double)(off[k + 1] - off[k]) : 0.0) + (soft ? 1.0 : 0.0);
        double v = (p->use_title ? ll[k] : 0.0) + (soft ? lls[k] : 0.0);
        s[k] = p->length_norm && len > 0 ? v / len : v;
    }
    return DM_OK;
}

/* One user's listwise loss over cand[0..K] (the positive first), scaled by `scale`; accumulates the
 * projector gradients. Returns the unscaled loss. */
int pm_train_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, float scale, double *loss)
{
    int B = p->K + 1, C = p->C, V = p->V;
    DM_CALL(project(p, h, hist, n, cand, B));
    int P = build_prompt(p, hist, n, p->L, p->in);
    int T = P + p->mt + 1;
    int mlen[64];
    for (int c = 0; c < B; c++) {
        int *in = p->in + (size_t)c * T, *tg = p->tg + (size_t)c * T;
        if (c) memcpy(in, p->in, (size_t)P * sizeof *in);
        int64_t a = p->toff[cand[c]], e = p->toff[cand[c] + 1];
        int m = (int)(e - a);
        mlen[c] = m;
        for (int j = 0; j < m; j++) in[P + j] = p->tok[a + j];
        for (int j = P + m; j < T; j++) in[j] = p->eot;
        for (int j = 0; j < T; j++) tg[j] = -1;
        /* title token j is predicted at position P + j - 1; the soft token after the title at P + m - 1
           (its target is a placeholder whose term is cancelled below) */
        for (int j = 0; j < m; j++) tg[P - 1 + j] = p->tok[a + j];
        tg[P - 1 + m] = p->eot;
    }
    gpt2_model *m = &p->lm.model;
    m->target_w = NULL;
    DM_CALL(gpt2_forward(m, p->in, p->soft, p->L + n, p->tg, B, T, 1.0f, GPT2_KEEP | GPT2_TARGET_ROWS));
    /* per-candidate scores from the packed logits */
    double A[64], S[64], ps[64], s[64];
    int srow[64];
    for (int c = 0; c < B; c++) A[c] = 0;
    for (int k = 0; k < m->n_rows; k++) {
        int i = m->rows[k], c = i / T, pos = i % T;
        const float *r = m->acts.logits + (size_t)k * V;
        if (pos < P - 1 + mlen[c]) A[c] += r[p->tg[i]] - m->acts.lse[k];
        else {
            srow[c] = k;
            const float *hh = m->acts.lnf + (size_t)i * C, *e = p->ie + (size_t)(n + c) * C;
            double ls = 0;
            for (int q = 0; q < C; q++) ls += (double)hh[q] * e[q];
            double lv = m->acts.lse[k], mx = lv > ls ? lv : ls, lz = mx + log(exp(lv - mx) + exp(ls - mx));
            S[c] = ls - lz;
            ps[c] = exp(S[c]);
        }
    }
    double mx = -INFINITY, z = 0;
    double lens[64];
    for (int c = 0; c < B; c++) {
        int soft = p->use_soft || mlen[c] == 0;
        double len = (p->use_title ? mlen[c] : 0) + (soft ? 1.0 : 0.0);
        lens[c] = p->length_norm && len > 0 ? len : 1.0;
        s[c] = ((p->use_title ? A[c] : 0.0) + (soft ? S[c] : 0.0)) / lens[c];
        if (s[c] > mx) mx = s[c];
    }
    for (int c = 0; c < B; c++) z += exp(s[c] - mx);
    *loss = -(s[0] - mx - log(z));
    /* dL/ds_c = softmax - onehot(0); alpha_c = dL/d(A_c + S_c) */
    memset(p->tw, 0, (size_t)B * (size_t)T * sizeof *p->tw);
    memset(p->dh, 0, (size_t)B * (size_t)T * (size_t)C * sizeof *p->dh);
    memset(p->ide, 0, (size_t)(n + B) * (size_t)C * sizeof *p->ide);
    for (int c = 0; c < B; c++) {
        double g = exp(s[c] - mx) / z - (c == 0);
        double alpha = g / lens[c] * scale;
        if (p->use_title)
            for (int j = 0; j < mlen[c]; j++) p->tw[(size_t)c * T + (size_t)(P - 1 + j)] = (float)-alpha;
        int i = m->rows[srow[c]];
        if (!p->use_soft && mlen[c] > 0) continue;
        float ws = (float)(-alpha * (1.0 - ps[c]));
        p->tw[i] = ws;
        const float *wt = m->params.wte + (size_t)p->eot * C, *e = p->ie + (size_t)(n + c) * C, *hh = m->acts.lnf + (size_t)i * C;
        float *dh = p->dh + (size_t)i * C, *de = p->ide + (size_t)(n + c) * C;
        float a1 = (float)(alpha * (1.0 - ps[c]));
        for (int q = 0; q < C; q++) {
            dh[q] = ws * wt[q] + a1 * e[q];
            de[q] = a1 * hh[q];
        }
    }
    m->target_w = p->tw;
    memset(p->dsoft, 0, (size_t)(p->L + n) * (size_t)C * sizeof *p->dsoft);
    int rc = gpt2_backward(m, NULL, p->dh, p->dsoft, 0);
    m->target_w = NULL;
    DM_CALL(rc);
    /* into the projectors: user rows, then history rows beside the candidates' output-side gradients */
    DM_CALL(proj_backward(&p->up, &p->ua, p->dsoft, NULL));
    memcpy(p->ide, p->dsoft + (size_t)p->L * C, (size_t)n * C * sizeof(float));
    DM_CALL(proj_backward(&p->ip, &p->ia, p->ide, NULL));
    return DM_OK;
}

