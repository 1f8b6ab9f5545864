/* llmrec.c: the LLM recommender's core, see llmrec.h. */
#include "llmrec.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../core/sort.h"
#include "../explain/explain_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pm_free(pm *p)
{
    lm_free(&p->lm);
    lm_cache_free(&p->cache);
    DM_EACH(nn_mlp_acts_free, &p->ua, &p->ia);
    DM_EACH(bpe_ids_free, &p->prefix, &p->sep, &p->query, &p->rtok);
    if (p->ev)
        for (int k = 0; k < p->maxc; k++) explain_evidence_free(&p->ev[k]);
    if (p->evid) {
        explain_enc_acts_free(&p->ea);
        explain_templates_free(&p->tpl);
        explain_rationale_free(&p->rat);
    }
    if (p->Eu) {
        explain_enc_acts_free(&p->uea);
        explain_evidence_free(&p->uev);
    }
    for (int j = 0; j < p->nsp; j++) free(p->sp[j].q);
    /* the slab and its moments, the prompt tokens, the evidence and the batch buffers */
    DM_FREE_ALL(p->w, p->g, p->am, p->av, p->toff, p->tok, p->ev, p->uekind, p->uex, p->uew, p->dey, p->eoff,
                p->ekind, p->ex, p->ew, p->ey, p->mask_row, p->keep, p->in, p->tg, p->ctok, p->tw, p->dh, p->soft,
                p->dsoft, p->ie, p->ide, p->zin, p->hs, p->hx, p->ftok, p->tlog);
    memset(p, 0, sizeof *p);
}

/* pm_init_impl's steps, in the order it runs them */

/* the model and prompt options (prompt.*) and the candidate limits */
static int pm_read_prompt_opts(pm *p, const dm_cfg *cfg, const dm_dataset *d, const float *z, size_t dz, int maxc)
{
    p->C = lm_width(&p->lm);
    p->V = lm_vocab(&p->lm);
    p->eot = lm_eot(&p->lm) >= 0 ? lm_eot(&p->lm) : 0;
    p->bos = lm_bos(&p->lm);
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
    p->ds = d;
    p->n_items = d->n_items;
    p->maxc = maxc > p->K + 1 ? maxc : p->K + 1;
    if (p->maxc > PM_MAX_CAND) return DM_ERR(DM_ECONFIG, "%d candidates per user; at most %d are supported", p->maxc, PM_MAX_CAND);
    if (p->K + 1 > 64) return DM_ERR(DM_ECONFIG, "prompt.negatives = %d; at most 63 fit a training batch", p->K);
    return DM_OK;
}

/* the evidence options (explain.*), when an evidence source is given */
static int pm_read_explain_opts(pm *p, const dm_cfg *cfg, const explain_src *src, size_t dz)
{
    p->src = src;
    if (!src) return DM_OK;
    if (src->d != dz) return DM_ERR(DM_EINTERNAL, "evidence latents of width %zu for a recommender of width %zu", src->d, dz);
    int Es = (int)dm_cfg_int(cfg, "explain.tokens");
    p->evid = 1;
    p->E = (int)dm_cfg_int(cfg, "explain.item_tokens");
    p->Eu = (int)dm_cfg_int(cfg, "explain.user_tokens");
    if (p->E > 0 && Es % p->E != 0) {
        DM_ERR(DM_ECONFIG, "explain.item_tokens = %d does not divide explain.tokens = %d", p->E, Es);
        DM_HINT("the encoder's explain.tokens slots are compressed into explain.item_tokens tokens in equal groups; "
                "e.g. explain.item_tokens = 1, 2, 4, 8 or 16 with explain.tokens = 16, or 0 for the item-head path");
        return DM_ECONFIG;
    }
    p->ev_head = p->E == 0;
    p->Eo = p->E > 0 ? p->E : 1;
    p->w_felem = p->ev_head ? (float)dm_cfg_float(cfg, "explain.w_faith_elements") : 0.0f;
    p->w_faith = (float)dm_cfg_float(cfg, "explain.w_faith");
    p->w_expl = (float)dm_cfg_float(cfg, "explain.w_expl");
    p->delta = (float)dm_cfg_float(cfg, "explain.faith_delta");
    p->Rmax = (int)dm_cfg_int(cfg, "explain.rationale_tokens");
    DM_CALL(explain_templates_parse(dm_cfg_str(cfg, "explain.templates"), &p->tpl));
    DM_CALL(explain_rationale_init(&p->rat));
    return DM_OK;
}

int pm_history_docs(const dm_dataset *d, const int8_t *roles, const char *prefix, const char *sep, const char *query, size_t H,
                    dm_strtab *out)
{
    int32_t *seq = malloc((d->n_inter + 1) * sizeof *seq);
    if (!seq) return DM_ERR(DM_ENOMEM, "out of memory for the histories");
    dm_buf b = {0};
    int rc = DM_OK;
    for (size_t u = 0; u < d->n_users && !rc; u++) {
        size_t m = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
            if (roles[j] == DM_TRAIN) seq[m++] = d->item[j];
        for (size_t t = 1; t < m && !rc; t++) {
            size_t l;
            const char *s = dm_strtab_get(&d->title, (size_t)seq[t], &l);
            if (!l) continue;
            dm_buf_reset(&b);
            rc = dm_buf_printf(&b, "%s", prefix);
            for (size_t k = t > H ? t - H : 0; k < t && !rc; k++) {
                size_t hl;
                const char *h = dm_strtab_get(&d->title, (size_t)seq[k], &hl);
                if (hl) rc = dm_buf_printf(&b, " %.*s%s", (int)hl, h, sep);
            }
            if (!rc) rc = dm_buf_printf(&b, "%s %.*s", query, (int)l, s);
            if (!rc) rc = dm_strtab_add(out, b.data, b.len);
        }
    }
    free(seq);
    dm_buf_free(&b);
    return rc;
}

/* the fixed prompt texts (prefix, separator, query) and the " title" tokens of every item, cut to
 * prompt.title_tokens */
static int pm_encode_texts(pm *p, const dm_cfg *cfg, const dm_dataset *d)
{
    const char *s;
    s = dm_cfg_str(cfg, "prompt.prefix");
    DM_CALL(lm_encode(&p->lm, s, strlen(s), &p->prefix));
    s = dm_cfg_str(cfg, "prompt.separator");
    DM_CALL(lm_encode(&p->lm, s, strlen(s), &p->sep));
    s = dm_cfg_str(cfg, "prompt.query");
    DM_CALL(lm_encode(&p->lm, s, strlen(s), &p->query));
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
            DM_CALL(lm_encode(&p->lm, b.data, b.len, &t));
        }
        size_t n = t.n < (size_t)p->mt ? t.n : (size_t)p->mt;
        for (size_t k = 0; k < n; k++) p->tok[(size_t)p->toff[i] + k] = t.v[k];
        p->toff[i + 1] = p->toff[i] + (int64_t)n;
    }
    bpe_ids_free(&t);
    dm_buf_free(&b);
    return DM_OK;
}

/* the longest prompt (p->Tmax) must fit the language model's context */
static int pm_check_context(pm *p)
{
    int R = p->evid && p->w_expl > 0 ? p->Rmax : 0;
    p->Tmax = (p->bos >= 0) + p->L + p->Eu + (int)p->prefix.n + p->nh * (p->mt + 1 + (int)p->sep.n) + (int)p->query.n + p->E + p->mt + 1 + R;
    if (p->Tmax > lm_context(&p->lm)) {
        DM_ERR(DM_ECONFIG, "a prompt needs up to %d positions but the language model's context is %d", p->Tmax,
               lm_context(&p->lm));
        DM_HINT("lower prompt.user_tokens, prompt.history, prompt.title_tokens, explain.user_tokens, explain.item_tokens or explain.rationale_tokens, or use a model with a longer context (lm.context)");
        return DM_ECONFIG;
    }
    return DM_OK;
}

/* the shapes of the trainable parts, which share one slab: the user and item projectors, the (u, i)
 * evidence encoder (explain.tokens slots in groups of explain.tokens / Eo) and the user encoder */
typedef struct {
    nn_mlp_config uc, ic;
    explain_enc_config ec, uec;
} pm_shapes;

/* the shapes and sizes of the parameter slab: projectors, item head, evidence encoders */
static void pm_size_params(pm *p, const dm_cfg *cfg, const pm_head_opts *head, pm_shapes *sh)
{
    int H = (int)dm_cfg_int(cfg, "prompt.hidden");
    size_t dz = p->d;
    sh->uc = (nn_mlp_config){(int)dz, H, p->L * p->C, 1e-5f};
    sh->ic = (nn_mlp_config){(int)dz, H, p->C, 1e-5f};
    sh->ec = (explain_enc_config){(int)dz, 0, 0, 0, p->C, 1e-5f, 1};
    sh->uec = sh->ec;
    p->n_up = nn_mlp_size(&sh->uc);
    p->n_ip = nn_mlp_size(&sh->ic);
    p->nparams = p->n_up + p->n_ip;
    if (head) {
        p->head_nolm = head->no_lm;
        p->nsp = head->cf ? 2 : 1;
        p->sp[0].t = p->z, p->sp[0].d = dz;
        p->sp[1].t = head->cf, p->sp[1].d = head->cf ? head->dcf : 0;
        for (int j = 0; j < p->nsp; j++) p->n_head += p->sp[j].d * (size_t)p->C + p->sp[j].d + 1;
        p->head_text = !head->no_lm && dm_cfg_bool(cfg, "prompt.head_text");
        p->n_head += (size_t)p->head_text;
        p->nparams += p->n_head;
    }
    if (p->evid) {
        sh->ec.D = sh->uec.D = (int)dm_cfg_int(cfg, "explain.width");
        sh->ec.hidden = sh->uec.hidden = (int)dm_cfg_int(cfg, "explain.hidden");
        sh->ec.E = (int)dm_cfg_int(cfg, "explain.tokens");
        sh->ec.group = sh->ec.E / p->Eo;
        sh->uec.E = p->Eu;
        p->nparams += explain_enc_size(&sh->ec) + (p->Eu ? explain_enc_size(&sh->uec) : 0);
    }
}

/* the slab, its gradients and AdamW moments; the projectors bound and initialised. *scale: the
 * initial scale of the soft tokens, the typical norm of the LM's token embeddings */
static int pm_init_projectors(pm *p, const pm_shapes *sh, uint64_t seed, float *scale)
{
    DM_ALLOC(p->w, p->nparams);
    DM_ALLOC(p->g, p->nparams);
    DM_ALLOC(p->am, p->nparams);
    DM_ALLOC(p->av, p->nparams);
    nn_mlp_bind(&p->up, &sh->uc, p->w, p->g);
    nn_mlp_bind(&p->ip, &sh->ic, p->w + p->n_up, p->g + p->n_up);
    double nrm = 0;
    const float *emb = lm_embeddings(&p->lm);
    for (size_t k = 0; k < (size_t)p->V * (size_t)p->C; k++) nrm += (double)emb[k] * emb[k];
    *scale = (float)sqrt(nrm / p->V) / sqrtf((float)p->C) * 2.0f;
    nn_mlp_init(&p->up, seed, *scale);
    nn_mlp_init(&p->ip, seed ^ 0x17, *scale);
    return DM_OK;
}

/* the item head after the projectors (and no evidence encoder): per space W (d, C), b (d) zero and
 * a; a starts at 1 in the aligner's space (prompt.head_residual) and 0 in the CF model's, so the
 * untrained model scores h_u . z_i (the aligner's score, or 0) */
static int pm_init_item_head(pm *p, const dm_cfg *cfg, const dm_dataset *d)
{
    int res = dm_cfg_bool(cfg, "prompt.head_residual");
    size_t off = p->n_up + p->n_ip;
    for (int j = 0; j < p->nsp; j++) {
        pm_head_space *q = &p->sp[j];
        size_t dj = q->d, nw = dj * (size_t)p->C;
        q->w = p->w + off, q->b = q->w + nw, q->a = q->b + dj;
        q->gw = p->g + off, q->gb = q->gw + nw, q->ga = q->gb + dj;
        *q->a = j == 0 && res ? 1.0f : 0.0f;
        q->train_a = res;
        off += nw + dj + 1;
        DM_ALLOC(q->q, 2 * dj);
        q->dq = q->q + dj;
    }
    if (p->head_text) { /* a_t starts at 0: the untrained head still ranks as the aligner */
        p->at = p->w + off, p->gat = p->g + off;
        *p->at = 0.0f;
        DM_ALLOC(p->ftok, d->n_items + 1);
        for (size_t i = 0; i < d->n_items; i++) p->ftok[i] = p->toff[i + 1] > p->toff[i] ? p->tok[p->toff[i]] : -1;
        DM_ALLOC(p->tlog, 2 * (size_t)p->V);
    }
    DM_ALLOC(p->hs, d->n_items + 1);
    DM_ALLOC(p->hx, (size_t)p->C);
    return DM_OK;
}

/* the evidence encoders after the projectors, their activations and the evidence buffers */
static int pm_init_evidence(pm *p, const pm_shapes *sh, const explain_src *src, uint64_t seed, float scale)
{
    size_t dz = p->d, off = p->n_up + p->n_ip;
    int nsets = p->maxc + 2;
    /* a training step encodes K + 2 sets, and the positive's without each element */
    int tsets = p->K + 2 + explain_evidence_width(src->k_users, src->k_items, src->k_attrs);
    if (tsets > nsets) nsets = tsets;
    p->nsets_max = nsets;
    explain_enc_bind(&p->enc, &sh->ec, p->w + off, p->g + off);
    /* on the item-head path the output layer starts at zero: the untrained evidence term is 0 */
    explain_enc_init(&p->enc, seed ^ 0xE1, p->ev_head ? 0.0f : scale);
    int cap_el = explain_evidence_width(src->k_users, src->k_items, src->k_attrs);
    if (p->Eu) {
        off += explain_enc_size(&sh->ec);
        explain_enc_bind(&p->uenc, &sh->uec, p->w + off, p->g + off);
        explain_enc_init(&p->uenc, seed ^ 0xE2, scale);
        DM_CALL(explain_enc_acts_init(&p->uea, &sh->uec, 2, 2 * cap_el));
        DM_CALL(explain_evidence_init(&p->uev, src->k_users, src->k_items, src->k_attrs));
        DM_ALLOC(p->uekind, 2 * (size_t)cap_el);
        DM_ALLOC(p->uex, 2 * (size_t)cap_el * dz);
        DM_ALLOC(p->uew, 2 * (size_t)cap_el);
    }
    DM_CALL(explain_enc_acts_init(&p->ea, &sh->ec, nsets, nsets * cap_el));
    DM_ALLOC(p->ev, (size_t)p->maxc);
    for (int k = 0; k < p->maxc; k++) DM_CALL(explain_evidence_init(&p->ev[k], src->k_users, src->k_items, src->k_attrs));
    DM_ALLOC(p->eoff, (size_t)nsets + 1);
    DM_ALLOC(p->ekind, (size_t)nsets * (size_t)cap_el + 1);
    DM_ALLOC(p->ex, ((size_t)nsets * (size_t)cap_el + 1) * dz);
    DM_ALLOC(p->ew, (size_t)nsets * (size_t)cap_el + 1);
    DM_ALLOC(p->ey, (size_t)nsets * (size_t)p->Eo * (size_t)p->C);
    DM_ALLOC(p->dey, (size_t)nsets * (size_t)p->C);
    DM_ALLOC(p->mask_row, (size_t)(p->Eo > p->Eu ? p->Eo : p->Eu) * (size_t)p->C);
    DM_ALLOC(p->keep, (size_t)cap_el);
    return DM_OK;
}

/* the batch buffers for (Bmax, Tmax), the LM's activations and its KV cache */
static int pm_init_batches(pm *p)
{
    int B = p->Bmax, T = p->Tmax;
    size_t dz = p->d;
    DM_ALLOC(p->in, (size_t)B * (size_t)T);
    DM_ALLOC(p->tg, (size_t)B * (size_t)T);
    DM_ALLOC(p->ctok, (size_t)p->maxc * (size_t)(p->E + (p->mt > 0 ? p->mt : 1)) * 2 + 1);
    DM_ALLOC(p->tw, (size_t)B * (size_t)T);
    DM_ALLOC(p->dh, (size_t)B * (size_t)T * (size_t)p->C);
    p->nsoft = p->L + p->nh + 2 + (p->K + 3) * p->E + 2 * p->Eu;
    DM_ALLOC(p->soft, (size_t)p->nsoft * (size_t)p->C);
    DM_ALLOC(p->dsoft, (size_t)p->nsoft * (size_t)p->C);
    DM_ALLOC(p->ie, (size_t)(p->nh + p->maxc) * (size_t)p->C);
    DM_ALLOC(p->ide, (size_t)(p->nh + p->maxc) * (size_t)p->C);
    DM_ALLOC(p->zin, (size_t)(p->nh + p->maxc) * dz);
    DM_CALL(lm_reserve(&p->lm, B, T, LM_KEEP | LM_TARGET_ROWS));
    DM_CALL(lm_cache_init(&p->cache, &p->lm, lm_context(&p->lm), 512));
    return DM_OK;
}

static int pm_init_impl(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc,
                        uint64_t seed, const explain_src *src, const pm_head_opts *head, pm *p)
{
    memset(p, 0, sizeof *p);
    p->head = head != NULL;
    DM_CALL(lm_load(&p->lm, lmdir));
    DM_CALL(lm_set_precision(&p->lm, dm_cfg_str(cfg, "lm.precision")));
    DM_CALL(pm_read_prompt_opts(p, cfg, d, z, dz, maxc));
    DM_CALL(pm_read_explain_opts(p, cfg, src, dz));
    DM_CALL(pm_encode_texts(p, cfg, d));
    DM_CALL(pm_check_context(p));
    pm_shapes sh;
    pm_size_params(p, cfg, head, &sh);
    float scale;
    DM_CALL(pm_init_projectors(p, &sh, seed, &scale));
    if (head) DM_CALL(pm_init_item_head(p, cfg, d));
    DM_CALL(nn_mlp_acts_init(&p->ua, &sh.uc, 1));
    DM_CALL(nn_mlp_acts_init(&p->ia, &sh.ic, p->nh + p->maxc));
    p->Bmax = p->K + 1 + (p->evid ? 2 : 0);
    if (p->evid) DM_CALL(pm_init_evidence(p, &sh, src, seed, scale));
    return pm_init_batches(p);
}

int pm_init(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc, uint64_t seed,
            const explain_src *src, pm *p)
{
    return pm_init_impl(cfg, lmdir, d, z, dz, maxc, seed, src, NULL, p);
}

int pm_init_head(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc, uint64_t seed,
                 const pm_head_opts *o, pm *p)
{
    static const pm_head_opts none = {NULL, 0, 0};
    return pm_init_impl(cfg, lmdir, d, z, dz, maxc, seed, NULL, o ? o : &none, p);
}

void pm_set_user(pm *p, int32_t u, const int32_t *all, int n)
{
    p->user = u;
    p->uall = all;
    p->n_uall = n;
}

/* the prompt of a user with history hist[0..n) (the last prompt.history items are used) as input
 * codes: the LM's beginning-of-sequence token if it has one (Llama's <s>, as its tokenizer starts
 * every text), then soft rows 0..L-1, the user tokens, L + n + e the user evidence tokens and
 * L + k the k-th history item; returns its length */
int pm_build_prompt(const pm *p, const int32_t *hist, int n, int L, int *out)
{
    int q = 0;
    if (p->bos >= 0) out[q++] = p->bos;
    for (int k = 0; k < L; k++) out[q++] = LM_SOFT(k);
    for (int e = 0; e < p->Eu; e++) out[q++] = LM_SOFT(L + n + e);
    for (size_t k = 0; k < p->prefix.n; k++) out[q++] = p->prefix.v[k];
    for (int k = 0; k < n; k++) {
        int32_t it = hist[k];
        for (int64_t j = p->toff[it]; j < p->toff[it + 1]; j++) out[q++] = p->tok[j];
        out[q++] = LM_SOFT(p->L + k);
        for (size_t j = 0; j < p->sep.n; j++) out[q++] = p->sep.v[j];
    }
    for (size_t k = 0; k < p->query.n; k++) out[q++] = p->query.v[k];
    return q;
}

/* soft rows: user tokens from h, history and candidate item tokens from z (into ie, the history
 * rows also into the soft matrix after the user rows) */
int pm_project(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc)
{
    DM_CALL(nn_mlp_forward(&p->up, &p->ua, h, 1, p->soft));
    for (int k = 0; k < n; k++) memcpy(p->zin + (size_t)k * p->d, p->z + (size_t)hist[k] * p->d, p->d * sizeof(float));
    for (int k = 0; k < nc; k++) memcpy(p->zin + (size_t)(n + k) * p->d, p->z + (size_t)cand[k] * p->d, p->d * sizeof(float));
    DM_CALL(nn_mlp_forward(&p->ip, &p->ia, p->zin, n + nc, p->ie));
    memcpy(p->soft + (size_t)p->L * p->C, p->ie, (size_t)n * p->C * sizeof(float));
    p->cur_n = n;
    return DM_OK;
}

int pm_evidence_tokens(const pm *p)
{
    return p->Eu + p->E;
}

/* The user evidence tokens of nsets sets into y (nsets Eu, C): set k the user's evidence (built
 * into p->uev from pm_set_user's user and history) when full[k], else the empty set's. */
static int user_tokens(pm *p, const int *full, int nsets, float *y)
{
    int built = 0, m = 0;
    p->ueoff[0] = 0;
    for (int b = 0; b < nsets; b++) {
        if (full[b] && !built) {
            DM_CALL(explain_user_evidence_build(p->src, p->user, p->uall, p->n_uall, &p->uev));
            built = 1;
        }
        if (full[b]) {
            size_t o = (size_t)p->ueoff[b];
            explain_evidence_features(p->src, &p->uev, NULL, p->uekind + o, p->uex + o * p->d, p->uew + o, &m);
        } else {
            m = 0;
        }
        p->ueoff[b + 1] = p->ueoff[b] + m;
    }
    return explain_enc_forward(&p->uenc, &p->uea, p->ueoff, nsets, p->uekind, p->uex, p->uew, y);
}

/* the masked-evidence token of the random-masking control: row 0 of the empty set's output of the
   user evidence encoder (a prompt position), or of the (u, i) encoder when there are no user
   evidence tokens */
static int update_mask_row(pm *p)
{
    int64_t off[2] = {0, 0};
    if (p->Eu) {
        int none = 0;
        return user_tokens(p, &none, 1, p->mask_row);
    }
    return explain_enc_forward(&p->enc, &p->ea, off, 1, p->ekind, p->ex, p->ew, p->mask_row);
}

int pm_prompt(pm *p, const float *h, const int32_t *hist, int n, int L, const int *mask, int n_mask, int ev_masked, int *P)
{
    DM_CALL(pm_project(p, h, hist, n, NULL, 0));
    if (p->Eu) {
        int full = !ev_masked;
        DM_CALL(user_tokens(p, &full, 1, p->soft + (size_t)(p->L + n) * p->C));
    }
    int *code = p->in;
    int q = pm_build_prompt(p, hist, n, p->L, code);
    int ns = p->L + n + p->Eu;
    if (n_mask > 0) {
        if (!p->evid || (p->ev_head && !p->Eu))
            return DM_ERR(DM_EINTERNAL, "masking prompt positions needs a masked-evidence token");
        DM_CALL(update_mask_row(p));
        memcpy(p->soft + (size_t)ns * p->C, p->mask_row, (size_t)p->C * sizeof(float));
        for (int k = 0; k < n_mask; k++) {
            if (mask[k] < 0 || mask[k] >= q) return DM_ERR(DM_EINTERNAL, "masked position %d outside a prompt of %d", mask[k], q);
            code[mask[k]] = LM_SOFT(ns);
        }
        ns++;
    }
    if (L < p->L) {
        /* latency at a shorter prompt: drop the first L - p->L user rows (after the BOS token) */
        int drop = p->L - L, nb = p->bos >= 0;
        memmove(code + nb, code + nb + drop, (size_t)(q - nb - drop) * sizeof *code);
        q -= drop;
    }
    DM_CALL(lm_cache_truncate(&p->cache, 0));
    DM_CALL(lm_cache_append(&p->cache, code, p->soft, ns, q));
    *P = q;
    return DM_OK;
}

int pm_build_evidence(pm *p, const int32_t *cand, int nc)
{
    if (!p->evid) return DM_OK;
    if (nc > p->maxc) return DM_ERR(DM_EINTERNAL, "%d candidates for a user, sized for %d", nc, p->maxc);
    for (int k = 0; k < nc; k++) DM_CALL(explain_evidence_build(p->src, p->user, cand[k], p->uall, p->n_uall, &p->ev[k]));
    return DM_OK;
}

/* encoder inputs of the sets (evi, drop) into eoff/ekind/ex/ew */
static void gather_sets(pm *p, const int *evi, const int *drop, int nsets)
{
    uint8_t *keep = p->keep;
    p->eoff[0] = 0;
    for (int b = 0; b < nsets; b++) {
        int m = 0;
        if (drop[b] != -2) {
            const explain_evidence *ev = &p->ev[evi[b]];
            for (int j = 0; j < ev->n; j++) keep[j] = j != drop[b];
            size_t o = (size_t)p->eoff[b];
            explain_evidence_features(p->src, ev, keep, p->ekind + o, p->ex + o * p->d, p->ew + o, &m);
        }
        p->eoff[b + 1] = p->eoff[b] + m;
    }
}

int pm_encode(pm *p, const int *evi, const int *drop, int nsets, float *y)
{
    if (!p->evid) return DM_ERR(DM_EINTERNAL, "evidence tokens without an evidence encoder");
    if (nsets > p->nsets_max) return DM_ERR(DM_EINTERNAL, "%d evidence sets at once, sized for %d", nsets, p->nsets_max);
    gather_sets(p, evi, drop, nsets);
    return explain_enc_forward(&p->enc, &p->ea, p->eoff, nsets, p->ekind, p->ex, p->ew, y);
}

int pm_score_cached(pm *p, const int32_t *cand, int nc, const float *y, double *s)
{
    if (nc > p->maxc) return DM_ERR(DM_EINTERNAL, "%d candidates for a user, sized for %d", nc, p->maxc);
    int n = p->cur_n, E = y ? p->E : 0;
    for (int k = 0; k < nc; k++) memcpy(p->zin + (size_t)(n + k) * p->d, p->z + (size_t)cand[k] * p->d, p->d * sizeof(float));
    DM_CALL(nn_mlp_forward(&p->ip, &p->ia, p->zin + (size_t)n * p->d, nc, p->ie + (size_t)n * p->C));
    int64_t off[PM_MAX_CAND + 1];
    int *tk = p->ctok;
    off[0] = 0;
    for (int k = 0; k < nc; k++) {
        int64_t a = p->toff[cand[k]], b = p->toff[cand[k] + 1], q = off[k];
        for (int e = 0; e < E; e++) tk[q++] = LM_SOFT(k * E + e);
        for (int64_t j = a; j < b; j++) tk[q++] = p->tok[j];
        off[k + 1] = q;
    }
    double ll[PM_MAX_CAND], lls[PM_MAX_CAND];
    DM_CALL(lm_cache_score_mixed(&p->cache, tk, off, nc, E ? y : NULL, nc * E, p->ie + (size_t)n * p->C, ll, lls));
    /* the item-head path: x_u . r_uc, x_u the prompt's last hidden state */
    const float *x = y && p->ev_head ? lm_cache_hidden(&p->cache, p->cache.len - 1) : NULL;
    for (int k = 0; k < nc; k++) {
        int mk = (int)(p->toff[cand[k] + 1] - p->toff[cand[k]]);
        /* an item without a title always counts its soft token (else title-only scoring has nothing) */
        int soft = p->use_soft || mk == 0;
        double len = (p->use_title ? (double)mk : 0.0) + (soft ? 1.0 : 0.0);
        double v = (p->use_title ? ll[k] : 0.0) + (soft ? lls[k] : 0.0);
        s[k] = p->length_norm && len > 0 ? v / len : v;
        if (x) {
            const float *r = y + (size_t)k * p->C;
            double dot = 0;
            for (int q = 0; q < p->C; q++) dot += (double)x[q] * r[q];
            s[k] += dot;
        }
    }
    return DM_OK;
}

int pm_append_candidate(pm *p, int32_t c, const float *y)
{
    int n = p->cur_n, E = y ? p->E : 0, C = p->C;
    memcpy(p->zin + (size_t)n * p->d, p->z + (size_t)c * p->d, p->d * sizeof(float));
    DM_CALL(nn_mlp_forward(&p->ip, &p->ia, p->zin + (size_t)n * p->d, 1, p->ie + (size_t)n * C));
    /* soft rows: E evidence rows then the item token, behind the prompt's rows (and the mask row)
       in the soft matrix */
    int base = p->L + n + p->Eu + 1;
    float *sr = p->soft + (size_t)base * C;
    if (E) memcpy(sr, y, (size_t)E * C * sizeof(float));
    memcpy(sr + (size_t)E * C, p->ie + (size_t)n * C, (size_t)C * sizeof(float));
    int code[4096], q = 0;
    for (int e = 0; e < E; e++) code[q++] = LM_SOFT(base + e);
    for (int64_t j = p->toff[c]; j < p->toff[c + 1]; j++) code[q++] = p->tok[j];
    code[q++] = LM_SOFT(base + E);
    return lm_cache_append(&p->cache, code, p->soft, base + E + 1, q);
}

int pm_score_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc, int L, double *s)
{
    int P;
    DM_CALL(pm_prompt(p, h, hist, n, L, NULL, 0, 0, &P));
    if (!p->evid) return pm_score_cached(p, cand, nc, NULL, s);
    DM_CALL(pm_build_evidence(p, cand, nc));
    int evi[PM_MAX_CAND], drop[PM_MAX_CAND];
    for (int k = 0; k < nc; k++) {
        evi[k] = k;
        drop[k] = -1;
    }
    DM_CALL(pm_encode(p, evi, drop, nc, p->ey));
    return pm_score_cached(p, cand, nc, p->ey, s);
}

/* One listwise training batch of pm_train_user: its layout, then its scores and loss gradients. */
typedef struct {
    int K1, n, P, T;        /* candidates, history items, prompt length, row length */
    int B, Bt;              /* scored rows (candidates, masked positive); all rows (with the explanation row) */
    int faith, expl;        /* the masked-positive row and the explanation row are on */
    int ubase;              /* the first user evidence soft row (then the masked row's, when faith) */
    int sbase, nsets;       /* the first (u, i) evidence soft row; (u, i) evidence sets */
    int posrow, rrow, R;    /* the positive's soft row (explanation row), the explanation row (-1 none), its length */
    int mlen[66], item[66]; /* per row: title length, candidate */
    int set[66];            /* per row: its (u, i) evidence set (K1: the empty set) */
    int nel;                /* item-head path: the positive's elements removed one at a time (sets K1 + 1 ...) */
    double sel[PM_MAX_EL], cel[PM_MAX_EL]; /* x_0 . r of the positive without element e; its hinge's weight */
    int srow[66];           /* per scored row: the packed target row of its soft token */
    double A[66], S[66], ps[66], s[66], lens[66], g[66], ce;
} pm_batch;

/* The user evidence tokens (and the empty set's, for the masked row) into the soft rows after the
 * history; the (u, i) evidence of the candidates and of the masked positive (the empty set) into
 * the soft rows after them (or into p->ey on the item-head path); the reference rationale of the
 * positive's evidence (explanation row). */
static int train_evidence(pm *p, const int32_t *cand, pm_batch *b)
{
    int evi[66], drop[66], K1 = b->K1;
    if (p->Eu) {
        int full[2] = {1, 0};
        DM_CALL(user_tokens(p, full, 1 + b->faith, p->soft + (size_t)b->ubase * p->C));
    }
    DM_CALL(pm_build_evidence(p, cand, K1));
    for (int c = 0; c < K1; c++) {
        evi[c] = c;
        drop[c] = -1;
    }
    evi[K1] = 0;
    drop[K1] = -2;
    b->nsets = K1 + 1;
    b->nel = 0;
    if (p->w_felem > 0) /* the positive without each element but the modality */
        for (int j = 0; j < p->ev[0].n && b->nel < PM_MAX_EL; j++)
            if (p->ev[0].el[j].kind != EXPLAIN_MODAL) {
                evi[b->nsets] = 0;
                drop[b->nsets++] = j;
                b->nel++;
            }
    DM_CALL(pm_encode(p, evi, drop, b->nsets, p->ey));
    if (p->E) memcpy(p->soft + (size_t)b->sbase * p->C, p->ey, (size_t)b->nsets * p->E * p->C * sizeof(float));
    if (p->w_expl > 0) {
        DM_CALL(explain_rationale_reference(&p->tpl, p->ds, &p->ev[0], &p->rat));
        if (p->rat.tpl >= 0) DM_CALL(explain_rationale_tokens(&p->lm, &p->tpl, &p->rat, &p->rtok));
        if (p->rtok.n > (size_t)p->Rmax) p->rtok.n = (size_t)p->Rmax;
        b->expl = p->rtok.n > 0;
    }
    return DM_OK;
}

/* The rows' inputs and targets: each row the prompt (row 0's, copied), its evidence tokens and its
 * candidate's title; scored rows predict the title and, after it, a placeholder for the soft token;
 * the explanation row continues with the positive's soft token and predicts the rationale. */
static void train_rows(pm *p, const int32_t *cand, pm_batch *b)
{
    int P = b->P, T = b->T, E = p->E, R = b->R;
    for (int r = 0; r < b->Bt; r++) {
        int c = r < b->K1 ? r : 0; /* masked and explanation rows are the positive */
        b->item[r] = c;
        int *in = p->in + (size_t)r * T, *tg = p->tg + (size_t)r * T;
        if (r) memcpy(in, p->in, (size_t)P * sizeof *in);
        int set = r < b->K1 ? r : r == b->rrow ? 0 : b->K1;
        b->set[r] = set;
        if (set == b->K1) /* the masked row: the empty set's user evidence tokens in its prompt */
            for (int j = 0; j < P; j++)
                if (in[j] <= LM_SOFT(b->ubase) && in[j] > LM_SOFT(b->ubase + p->Eu)) in[j] -= p->Eu;
        for (int e = 0; e < E; e++) in[P + e] = LM_SOFT(b->sbase + set * E + e);
        int64_t a = p->toff[cand[c]], z = p->toff[cand[c] + 1];
        int m = (int)(z - a), q = P + E;
        b->mlen[r] = m;
        for (int j = 0; j < m; j++) in[q++] = p->tok[a + j];
        for (int j = 0; j < T; j++) tg[j] = -1;
        if (r == b->rrow) {
            in[q++] = LM_SOFT(b->posrow);
            for (int j = 0; j < R; j++) {
                tg[q - 1] = p->rtok.v[j];
                in[q++] = p->rtok.v[j];
            }
        } else {
            /* title token j is predicted at position P + E + j - 1; the soft token after the title at
               P + E + m - 1 (its target is a placeholder whose term train_weights cancels) */
            for (int j = 0; j < m; j++) tg[P + E - 1 + j] = p->tok[a + j];
            tg[P + E - 1 + m] = p->eot;
        }
        for (int j = q; j < T; j++) in[j] = p->eot;
    }
}

/* Per-row scores from the packed logits of the forward: title log-likelihoods A, soft-token
 * log-probabilities S (and p_s), the rationale's cross-entropy; then the length-normalised scores s. */
static void train_scores(pm *p, pm_batch *b)
{
    const lm_out m = lm_last(&p->lm);
    int T = b->T, C = p->C, V = p->V, E = p->E;
    b->ce = 0;
    for (int r = 0; r < b->Bt; r++) b->A[r] = 0;
    for (int k = 0; k < m.n_rows; k++) {
        int i = m.rows[k], r = i / T, pos = i % T;
        const float *lg = m.logits + (size_t)k * V;
        if (r == b->rrow) {
            b->ce -= lg[p->tg[i]] - m.lse[k];
            continue;
        }
        if (pos < b->P + E - 1 + b->mlen[r]) b->A[r] += lg[p->tg[i]] - m.lse[k];
        else {
            b->srow[r] = k;
            const float *hh = m.hidden + (size_t)i * C, *e = p->ie + (size_t)(b->n + b->item[r]) * C;
            double ls = 0;
            for (int q = 0; q < C; q++) ls += (double)hh[q] * e[q];
            double lv = m.lse[k], mx = lv > ls ? lv : ls, lz = mx + log(exp(lv - mx) + exp(ls - mx));
            b->S[r] = ls - lz;
            b->ps[r] = exp(b->S[r]);
        }
    }
    for (int r = 0; r < b->B; r++) {
        int soft = p->use_soft || b->mlen[r] == 0;
        double len = (p->use_title ? b->mlen[r] : 0) + (soft ? 1.0 : 0.0);
        b->lens[r] = p->length_norm && len > 0 ? len : 1.0;
        b->s[r] = ((p->use_title ? b->A[r] : 0.0) + (soft ? b->S[r] : 0.0)) / b->lens[r];
        if (p->ev_head) { /* x_r . r_r, x_r the row's hidden state at the prompt's last position */
            const float *x = m.hidden + ((size_t)r * T + (size_t)b->P - 1) * C, *rv = p->ey + (size_t)b->set[r] * C;
            double dot = 0;
            for (int q = 0; q < C; q++) dot += (double)x[q] * rv[q];
            p->evs[r] = dot;
            b->s[r] += dot;
        }
    }
    const float *x0 = m.hidden + ((size_t)b->P - 1) * C;
    for (int e = 0; e < b->nel; e++) {
        const float *rv = p->ey + (size_t)(b->K1 + 1 + e) * C;
        double dot = 0;
        for (int q = 0; q < C; q++) dot += (double)x0[q] * rv[q];
        b->sel[e] = dot;
    }
}

/* The loss L = listwise + w_faith hinge + w_expl CE (parts into p->last_*) and g = dL/ds per
 * scored row. */
static double train_loss(pm *p, pm_batch *b)
{
    int K1 = b->K1;
    double mx = -INFINITY, zs = 0;
    for (int r = 0; r < K1; r++)
        if (b->s[r] > mx) mx = b->s[r];
    for (int c = 0; c < K1; c++) zs += exp(b->s[c] - mx);
    p->last_rank = -(b->s[0] - mx - log(zs));
    for (int c = 0; c < K1; c++) b->g[c] = exp(b->s[c] - mx) / zs - (c == 0);
    p->last_faith = p->last_expl = 0;
    if (b->faith) {
        double dfull, dmask;
        p->last_faith = explain_faith_loss(b->s[0], b->s[K1], p->delta, &dfull, &dmask);
        b->g[0] += p->w_faith * dfull;
        b->g[K1] = p->w_faith * dmask;
    }
    /* the element terms: mean_e max(0, delta - (s_0 - s_0 without e)) = mean_e max(0, delta - x_0 . (r_0 - r_-e));
       each active one weighs w_felem / nel on x_0 . r_-e and -w_felem / nel on x_0 . r_0 */
    p->last_felem = 0;
    for (int e = 0; e < b->nel; e++) {
        double dfull, dmask, h = explain_faith_loss(p->evs[0], b->sel[e], p->delta, &dfull, &dmask);
        p->last_felem += h / b->nel;
        b->cel[e] = p->w_felem * dmask / b->nel;
    }
    if (b->expl) p->last_expl = b->ce / b->R;
    return p->last_rank + p->w_faith * p->last_faith + p->w_felem * p->last_felem + p->w_expl * p->last_expl;
}

/* The backward's inputs: per-position loss weights (title targets -alpha, the soft placeholder
 * -alpha (1 - p_s), rationale targets w_expl / R), the soft tokens' hidden-state gradients and the
 * candidates' output-side item gradients (into p->ide). */
static void train_weights(pm *p, pm_batch *b, float scale)
{
    const lm_out m = lm_last(&p->lm);
    int T = b->T, C = p->C, E = p->E, n = b->n, Bt = b->Bt;
    memset(p->tw, 0, (size_t)Bt * (size_t)T * sizeof *p->tw);
    memset(p->dh, 0, (size_t)Bt * (size_t)T * (size_t)C * sizeof *p->dh);
    memset(p->ide, 0, (size_t)(n + b->K1) * (size_t)C * sizeof *p->ide);
    for (int r = 0; r < b->B; r++) {
        double alpha = b->g[r] / b->lens[r] * scale;
        int c = b->item[r];
        if (p->use_title)
            for (int j = 0; j < b->mlen[r]; j++) p->tw[(size_t)r * T + (size_t)(b->P + E - 1 + j)] = (float)-alpha;
        int i = m.rows[b->srow[r]];
        if (!p->use_soft && b->mlen[r] > 0) continue;
        float ws = (float)(-alpha * (1.0 - b->ps[r]));
        p->tw[i] = ws;
        const float *wt = lm_head(&p->lm) + (size_t)p->eot * C, *e = p->ie + (size_t)(n + c) * C, *hh = m.hidden + (size_t)i * C;
        float *dh = p->dh + (size_t)i * C, *de = p->ide + (size_t)(n + c) * C;
        float a1 = (float)(alpha * (1.0 - b->ps[r]));
        for (int q = 0; q < C; q++) {
            dh[q] = ws * wt[q] + a1 * e[q];
            de[q] += a1 * hh[q];
        }
    }
    if (b->expl)
        for (int j = 0; j < T; j++)
            if (p->tg[(size_t)b->rrow * T + j] >= 0) p->tw[(size_t)b->rrow * T + j] = p->w_expl * scale / (float)b->R;
    if (!p->ev_head) return;
    /* the item-head path: dhidden of x_r += g_r r_r (after the soft placeholder's, which an untitled
       item puts at the same position), dL/dr_r += g_r x_r */
    memset(p->dey, 0, (size_t)b->nsets * (size_t)C * sizeof *p->dey);
    for (int r = 0; r < b->B; r++) {
        size_t i = (size_t)r * T + (size_t)b->P - 1;
        float gr = (float)(b->g[r] * scale);
        const float *x = m.hidden + i * C, *rv = p->ey + (size_t)b->set[r] * C;
        float *dh = p->dh + i * C, *dr = p->dey + (size_t)b->set[r] * C;
        for (int q = 0; q < C; q++) {
            dh[q] += gr * rv[q];
            dr[q] += gr * x[q];
        }
    }
    /* the element terms: c_e (x_0 . r_-e - x_0 . r_0) */
    const float *x0 = m.hidden + ((size_t)b->P - 1) * C, *r0 = p->ey;
    float *dh0 = p->dh + ((size_t)b->P - 1) * C, *dr0 = p->dey;
    for (int e = 0; e < b->nel; e++) {
        float ce = (float)(b->cel[e] * scale);
        if (ce == 0) continue;
        const float *re = p->ey + (size_t)(b->K1 + 1 + e) * C;
        float *dre = p->dey + (size_t)(b->K1 + 1 + e) * C;
        for (int q = 0; q < C; q++) {
            dh0[q] += ce * (re[q] - r0[q]);
            dre[q] += ce * x0[q];
            dr0[q] -= ce * x0[q];
        }
    }
}

/* One user's loss over cand[0..K] (the positive first), scaled by `scale`; accumulates the
 * projector and encoder gradients. Returns the unscaled loss. */
int pm_train_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, float scale, double *loss)
{
    const int C = p->C, E = p->E;
    pm_batch b;
    b.K1 = p->K + 1, b.n = n;
    DM_CALL(pm_project(p, h, hist, n, cand, b.K1));
    b.P = pm_build_prompt(p, hist, n, p->L, p->in);
    /* rows: 0..K candidates, then (evidence) the masked positive, then the explanation row */
    b.faith = p->evid && p->w_faith > 0, b.expl = 0, b.B = b.K1 + b.faith;
    b.ubase = p->L + n;
    b.sbase = b.ubase + p->Eu * (1 + b.faith), b.nsets = 0, b.nel = 0;
    p->rtok.n = 0;
    if (p->evid) DM_CALL(train_evidence(p, cand, &b));
    b.posrow = b.sbase + b.nsets * E; /* the positive's item token as an input (explanation row) */
    if (b.expl) memcpy(p->soft + (size_t)b.posrow * C, p->ie + (size_t)n * C, (size_t)C * sizeof(float));
    b.R = (int)p->rtok.n;
    b.rrow = b.expl ? b.B : -1;
    b.Bt = b.B + b.expl;
    b.T = b.P + E + p->mt + 1 + (b.expl ? b.R : 0);
    train_rows(p, cand, &b);
    int ns = b.expl ? b.posrow + 1 : b.sbase + b.nsets * E;
    lm_set_target_weights(&p->lm, NULL);
    DM_CALL(lm_forward(&p->lm, p->in, p->soft, ns, p->tg, b.Bt, b.T, 1.0f, LM_KEEP | LM_TARGET_ROWS));
    train_scores(p, &b);
    *loss = train_loss(p, &b);
    /* backward: per-position weights, soft-token hidden gradients, output-side item gradients */
    train_weights(p, &b, scale);
    lm_set_target_weights(&p->lm, p->tw);
    memset(p->dsoft, 0, (size_t)ns * (size_t)C * sizeof *p->dsoft);
    int rc = lm_backward(&p->lm, p->dh, p->dsoft);
    lm_set_target_weights(&p->lm, NULL);
    DM_CALL(rc);
    /* into the projectors: user rows, then history rows beside the candidates' output-side gradients */
    DM_CALL(nn_mlp_backward(&p->up, &p->ua, p->dsoft, NULL));
    memcpy(p->ide, p->dsoft + (size_t)p->L * C, (size_t)n * C * sizeof(float));
    if (b.expl)
        for (int q = 0; q < C; q++) p->ide[(size_t)n * C + q] += p->dsoft[(size_t)b.posrow * C + q];
    DM_CALL(nn_mlp_backward(&p->ip, &p->ia, p->ide, NULL));
    if (p->evid)
        DM_CALL(explain_enc_backward(&p->enc, &p->ea, p->ev_head ? p->dey : p->dsoft + (size_t)b.sbase * C, NULL, NULL));
    if (p->Eu) DM_CALL(explain_enc_backward(&p->uenc, &p->uea, p->dsoft + (size_t)b.ubase * C, NULL, NULL));
    return DM_OK;
}

/* ---- training examples ---- */

int pm_train_set_init(pm_train_set *t, const dm_dataset *d, const int8_t *roles)
{
    size_t nu = d->n_users;
    memset(t, 0, sizeof *t);
    DM_ALLOC(t->users, nu + 1);
    DM_ALLOC(t->off, nu + 1);
    DM_ALLOC(t->items, d->n_inter + 1);
    size_t q = 0;
    for (size_t u = 0; u < nu; u++) {
        size_t s0 = q, ntr = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
            t->items[q++] = d->item[j];
            ntr += roles[j] == DM_TRAIN;
        }
        qsort(t->items + s0, q - s0, sizeof *t->items, dm_cmp_i32);
        t->off[u + 1] = (int64_t)q;
        if (ntr >= 2) t->users[t->n++] = u;
    }
    return DM_OK;
}

void pm_train_set_free(pm_train_set *t)
{
    DM_FREE_ALL(t->users, t->off, t->items);
    memset(t, 0, sizeof *t);
}

void pm_epoch_order(size_t *order, size_t n, size_t k, uint64_t seed, uint64_t ep)
{
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0xE9, ep));
    for (size_t i = 0; i < k && i < n; i++) {
        size_t j = i + dm_rng_below(&r, n - i), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
}

void pm_train_example(const pm_train_set *t, const dm_dataset *d, const int8_t *roles, size_t u, int back, int nh, int K,
                      uint64_t seed, uint64_t step, int32_t *all, int *n_all, int32_t *hist, int *n, int32_t *cand)
{
    size_t na = 0;
    for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
        if (roles[j] == DM_TRAIN) all[na++] = d->item[j];
    DM_ASSERT(back >= 0 && na >= (size_t)back + 2);
    na -= (size_t)back + 1; /* all[na] is the positive */
    size_t m = na < (size_t)nh ? na : (size_t)nh;
    memcpy(hist, all + (na - m), m * sizeof *hist);
    *n_all = (int)na;
    *n = (int)m;
    cand[0] = all[na];
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed ^ 0x4E, step, u));
    const int32_t *su = t->items + t->off[u];
    size_t ns = (size_t)(t->off[u + 1] - t->off[u]);
    for (int j = 1; j <= K; j++) {
        int32_t y;
        do y = (int32_t)dm_rng_below(&r, d->n_items);
        while (dm_in_sorted_i32(su, ns, y));
        cand[j] = y;
    }
}
