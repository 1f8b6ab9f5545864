/* test_prompt.c: the soft-prompt projectors: fast vs naive kernels, and every parameter gradient
 * and the input gradient against central finite differences of L = sum(y * R); the listwise step
 * through a tiny LM against finite differences; the training examples (users, epoch order,
 * negatives) against their definition. */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/sort.h"
#include "../../src/config/config.h"
#include "../../src/data/dataset.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/lm.h"
#include "../../src/prompt/llmrec.h"

#include <stdio.h>
#include "../../src/nn/mlp.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double loss(const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, const float *R, float *y)
{
    nn_mlp_forward_naive(p, a, x, N, y);
    double s = 0;
    for (int k = 0; k < N * p->cfg.dout; k++) s += (double)y[k] * R[k];
    return s;
}

/* (L(v + h) - L(v - h)) / 2h at one element v of the weights or of the inputs x, h = 1e-2 (v restored) */
static double central_diff(const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, const float *R, float *v)
{
    float keep = *v, h = 1e-2f, ys[5 * 10];
    *v = keep + h;
    double lp = loss(p, a, x, N, R, ys);
    *v = keep - h;
    double lm = loss(p, a, x, N, R, ys);
    *v = keep;
    return (lp - lm) / (2 * h);
}

/* From a full forward's logits row lg (V = 40): log p(next), and the log-probability of a soft
 * token of embedding e after hidden state h (C = 16) as one more vocabulary entry. */
static double ref_logp(const float *lg, int next)
{
    double mx = -1e30, z = 0;
    for (int v = 0; v < 40; v++) mx = fmax(mx, lg[v]);
    for (int v = 0; v < 40; v++) z += exp(lg[v] - mx);
    return lg[next] - mx - log(z);
}

static double ref_soft_logp(const float *lg, const float *h, const float *e)
{
    double mx = -1e30, z = 0, ls = 0;
    for (int v = 0; v < 40; v++) mx = fmax(mx, lg[v]);
    for (int q = 0; q < 16; q++) ls += (double)h[q] * e[q];
    mx = fmax(mx, ls);
    for (int v = 0; v < 40; v++) z += exp(lg[v] - mx);
    z += exp(ls - mx);
    return ls - mx - log(z);
}

/* gpt2_cache_score_soft against full forwards: title log-likelihoods and the soft token scored
 * through the tied head as one more vocabulary entry */
static void test_score_soft(void)
{
    gpt2_model m;
    gpt2_config c = gpt2_config_make(2, 2, 16, 64, 40);
    CHECK(gpt2_init(&m, &c) == DM_OK, "init");
    gpt2_init_random(&m, 5);
    dm_rng r;
    dm_rng_seed(&r, 4);
    float soft[3 * 16], esoft[4 * 16];
    for (int k = 0; k < 3 * 16; k++) soft[k] = 0.1f * (float)dm_rng_normal(&r);
    for (int k = 0; k < 4 * 16; k++) esoft[k] = 0.2f * (float)dm_rng_normal(&r);
    int prefix[7] = {GPT2_SOFT(0), 5, 9, GPT2_SOFT(1), 3, GPT2_SOFT(2), 7};
    int tokens[9] = {4, 11, 2, 8, 8, 30, 1, 12, 6};
    int64_t off[5] = {0, 3, 3, 5, 9}; /* candidate 1 is empty: its soft token follows the prefix */
    gpt2_cache cache;
    CHECK(gpt2_cache_init(&cache, &m, 64, 6) == DM_OK, "cache");
    gpt2_cache_append(&cache, prefix, soft, 3, 7);
    double ll[4], lls[4];
    CHECK(gpt2_cache_score_soft(&cache, tokens, off, 4, esoft, ll, lls) == DM_OK, "score_soft: %s", dm_error_message());
    gpt2_reserve(&m, 1, 16, 0);
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        int in[16], n = (int)(off[i + 1] - off[i]);
        memcpy(in, prefix, sizeof prefix);
        for (int j = 0; j < n; j++) in[7 + j] = tokens[off[i] + j];
        int T = 7 + n;
        gpt2_forward(&m, in, soft, 3, NULL, 1, T, 1.0f, 0);
        double want = 0;
        for (int j = 0; j <= n; j++) {
            const float *lg = m.acts.logits + (size_t)(6 + j) * 40, *h = m.acts.lnf + (size_t)(6 + j) * 16;
            if (j < n) want += ref_logp(lg, tokens[off[i] + j]);
            else worst = fmax(worst, fabs(ref_soft_logp(lg, h, esoft + i * 16) - lls[i]));
        }
        worst = fmax(worst, fabs(want - ll[i]));
    }
    NEAR(worst, 0, 1e-4, "cached candidate and soft-token log-likelihoods vs full forwards");
    /* soft inputs inside candidates (evidence tokens before a title): inputs only, never scored */
    float csoft[3 * 16];
    for (int k = 0; k < 3 * 16; k++) csoft[k] = 0.3f * (float)dm_rng_normal(&r);
    int mtok[8] = {GPT2_SOFT(0), GPT2_SOFT(1), 4, 11, GPT2_SOFT(2), 6, 2, GPT2_SOFT(1)};
    int64_t moff[4] = {0, 4, 7, 8}; /* evidence + title; title with a soft token inside; evidence only */
    CHECK(gpt2_cache_score_mixed(&cache, mtok, moff, 3, csoft, 3, esoft, ll, lls) == DM_OK, "score_mixed: %s", dm_error_message());
    int bad_code[1] = {GPT2_SOFT(3)};
    int64_t boff[2] = {0, 1};
    CHECK(gpt2_cache_score_mixed(&cache, bad_code, boff, 1, csoft, 3, esoft, ll + 3, lls + 3) == DM_EINPUT &&
              strstr(dm_error_message(), "soft row 3 is outside the 3"),
          "a soft row outside the given ones is refused: %s", dm_error_message());
    /* full forwards over one soft matrix: prefix rows, then the candidate's rows */
    float all[6 * 16];
    memcpy(all, soft, sizeof soft);
    memcpy(all + 3 * 16, csoft, sizeof csoft);
    worst = 0;
    for (int i = 0; i < 3; i++) {
        int in[16], n = (int)(moff[i + 1] - moff[i]);
        memcpy(in, prefix, sizeof prefix);
        for (int j = 0; j < n; j++) {
            int x = mtok[moff[i] + j];
            in[7 + j] = x >= 0 ? x : GPT2_SOFT(3 + GPT2_SOFT_ROW(x));
        }
        gpt2_forward(&m, in, all, 6, NULL, 1, 7 + n, 1.0f, 0);
        double want = 0, want_s = 0;
        for (int j = 0; j <= n; j++) {
            const float *lg = m.acts.logits + (size_t)(6 + j) * 40, *h = m.acts.lnf + (size_t)(6 + j) * 16;
            int next = j < n ? mtok[moff[i] + j] : -1;
            if (j == n) want_s = ref_soft_logp(lg, h, esoft + i * 16);
            else if (next >= 0) want += ref_logp(lg, next);
        }
        worst = fmax(worst, fmax(fabs(want - ll[i]), fabs(want_s - lls[i])));
    }
    NEAR(worst, 0, 1e-4, "candidates with soft inputs (evidence tokens) vs full forwards");
    gpt2_cache_free(&cache);
    gpt2_free(&m);
}

/* The listwise training step of the LLM recommender: its loss equals the loss of the KV-cache scores,
 * and its projector gradients match central finite differences of that loss (through a tiny GPT-2,
 * and through a Llama). */
/* the loss of pm_train_user recomputed through the KV-cache path: listwise over the candidates'
 * scores, with evidence also the faithfulness hinge (masked evidence scored on its own: the prompt
 * with the empty set's user evidence tokens, the positive with its evidence masked) and the
 * explanation cross-entropy of the reference rationale after the positive's continuation and, on
 * the item-head path, the element terms (the positive without each element); its parts (listwise,
 * faithfulness, explanation, element terms) into part[4] when non-NULL */
static double cache_loss(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, double *part)
{
    double sc[8], parts[4] = {0, 0, 0, 0};
    int K1 = p->K + 1, P;
    pm_score_user(p, h, hist, n, cand, K1, p->L, sc);
    double mx = sc[0], z2 = 0;
    for (int k = 1; k < K1; k++) mx = fmax(mx, sc[k]);
    for (int k = 0; k < K1; k++) z2 += exp(sc[k] - mx);
    parts[0] = -(sc[0] - mx - log(z2));
    if (p->evid) {
        float y[64 * 16];
        int evi = 0, drop = -2;
        double sm;
        if (p->Eu) pm_prompt(p, h, hist, n, p->L, NULL, 0, 1, &P);
        pm_encode(p, &evi, &drop, 1, y);
        pm_score_cached(p, cand, 1, y, &sm);
        parts[1] = fmax(0.0, p->delta - (sc[0] - sm));
        if (p->Eu) pm_prompt(p, h, hist, n, p->L, NULL, 0, 0, &P);
        if (p->w_felem > 0) { /* the positive without each element but the modality */
            double se, acc = 0;
            int ne = 0;
            for (int j = 0; j < p->ev[0].n; j++)
                if (p->ev[0].el[j].kind != EXPLAIN_MODAL) {
                    drop = j;
                    pm_encode(p, &evi, &drop, 1, y);
                    pm_score_cached(p, cand, 1, y, &se);
                    acc += fmax(0.0, p->delta - (sc[0] - se));
                    ne++;
                }
            parts[3] = ne ? acc / ne : 0.0;
        }
        drop = -1;
        pm_encode(p, &evi, &drop, 1, y);
        int len0 = p->cache.len;
        pm_append_candidate(p, cand[0], y);
        int64_t off[2] = {0, (int64_t)p->rtok.n};
        double ll = 0;
        lm_cache_score(&p->cache, p->rtok.v, off, 1, &ll);
        lm_cache_truncate(&p->cache, len0);
        parts[2] = -ll / (double)p->rtok.n;
    }
    if (part) memcpy(part, parts, sizeof parts);
    return parts[0] + p->w_faith * parts[1] + p->w_expl * parts[2] + p->w_felem * parts[3];
}

/* Masked evidence is the empty set: with nothing to draw evidence from (k = 0 of every kind, no
 * modality), the prompt with the user's evidence tokens and the candidates' evidence give the same
 * scores, bit for bit, as the masked prompt and masked sets. */
static void check_masking_identity(pm *p, explain_src *src, const float *h, const int32_t *hist, int n, const int32_t *cand)
{
    explain_src keep = *src;
    src->k_users = src->k_items = src->k_attrs = 0;
    src->modal = 0;
    int K1 = p->K + 1, evi[8], drop[8], P;
    double full[8], masked[8];
    float y[8 * 64 * 16];
    pm_score_user(p, h, hist, n, cand, K1, p->L, full);
    CHECK(p->ev[0].n == 0 && (!p->Eu || p->uev.n == 0), "no evidence drawn");
    pm_prompt(p, h, hist, n, p->L, NULL, 0, 1, &P);
    for (int k = 0; k < K1; k++) evi[k] = k, drop[k] = -2;
    pm_encode(p, evi, drop, K1, y);
    pm_score_cached(p, cand, K1, y, masked);
    int same = 1;
    for (int k = 0; k < K1; k++) same &= full[k] == masked[k];
    CHECK(same, "masked evidence scores differ from the empty set's: %.9g vs %.9g", full[0], masked[0]);
    *src = keep;
}

/* a tiny GPT-2 with a tokenizer learned on the titles, saved in dir like a checkpoint */
static void make_gpt2(const char *dir, const char *const *titles)
{
    lm_model lm;
    memset(&lm, 0, sizeof lm);
    dm_strtab corpus = {0};
    for (int i = 0; i < 11; i++) dm_strtab_add(&corpus, titles[i], strlen(titles[i]));
    dm_strtab_add(&corpus, " The user bought: Next:;", 24);
    static const char *const specials[] = {"<|endoftext|>", NULL};
    CHECK(bpe_train(&lm.tok, &corpus, 40, specials) == DM_OK, "bpe: %s", dm_error_message());
    gpt2_config gc = gpt2_config_make(2, 2, 16, 128, lm.tok.n_vocab);
    gpt2_init(&lm.model, &gc);
    gpt2_init_random(&lm.model, 3);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) CHECK(0, "mkdir");
    CHECK(lm_save(&lm, dir) == DM_OK, "save: %s", dm_error_message());
    lm_free(&lm);
    dm_strtab_free(&corpus);
}

/* lmdir: a checkpoint to run through (a Llama), or NULL for a tiny GPT-2 made here. evid: 0 none,
 * 1 the per-candidate layout (explain.tokens = explain.item_tokens = 2, no user evidence tokens),
 * 2 the item-head path with 2 user evidence tokens, 3 explain.tokens = 4 slots compressed into 2
 * tokens before each candidate with 1 user evidence token. */
static void test_train_step(const char *mode, int evid, const char *lmdir)
{
    const char *tmp = getenv("DM_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_prompt_lm", tmp ? tmp : "/tmp");
    if (lmdir) snprintf(dir, sizeof dir, "%s", lmdir);
    /* a catalogue of 12 titled items, one user */
    dm_raw raw = {0};
    dm_meta meta = {0};
    raw.has_time = 1;
    static const char *titles[12] = {"red lipstick", "blue shampoo", "green tea soap", "matte blush", "rose perfume",
                                     "argan hair oil", "night cream", "sun screen", "lip balm", "eye liner", "body wash", ""};
    static const char *brands[3] = {"acme", "zeta", "orto"};
    char id[16];
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof id, "%d", i);
        dm_raw_push(&raw, "u", 1, id, strlen(id), i, i + 1, -1);
        dm_meta_push(&meta, id, strlen(id), titles[i][0] ? titles[i] : NULL, brands[i % 3], NULL, NULL, NAN, i + 1);
    }
    /* two more users, so that items have neighbour users as evidence */
    for (int i = 0; i < 12; i += 2) {
        snprintf(id, sizeof id, "%d", i);
        dm_raw_push(&raw, "v", 1, id, strlen(id), 20 + i, i + 1, -1);
        if (i % 4 == 0) dm_raw_push(&raw, "w", 1, id, strlen(id), 40 + i, i + 1, -1);
    }
    dm_process_opts o = {0};
    o.loo_min_len = 3;
    o.window_count = 1;
    o.numeric_ids = 1;
    dm_dataset d;
    CHECK(dm_process(&raw, &meta, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    /* a tiny LM, saved and loaded like a checkpoint */
    if (!lmdir) make_gpt2(dir, titles);
    dm_cfg cfg;
    dm_cfg_init(&cfg);
    dm_cfg_set(&cfg, "prompt.user_tokens=3");
    dm_cfg_set(&cfg, "prompt.history=2");
    dm_cfg_set(&cfg, "prompt.title_tokens=4");
    dm_cfg_set(&cfg, "prompt.negatives=3");
    dm_cfg_set(&cfg, "prompt.hidden=8");
    char sm[64];
    snprintf(sm, sizeof sm, "prompt.score=%s", mode);
    dm_cfg_set(&cfg, sm);
    static const char *const layouts[4][3] = {{"explain.tokens=2", "explain.item_tokens=2", "explain.user_tokens=0"},
                                              {"explain.tokens=2", "explain.item_tokens=2", "explain.user_tokens=0"},
                                              {"explain.tokens=2", "explain.item_tokens=0", "explain.user_tokens=2"},
                                              {"explain.tokens=4", "explain.item_tokens=2", "explain.user_tokens=1"}};
    for (int k = 0; k < 3; k++) dm_cfg_set(&cfg, layouts[evid][k]);
    dm_cfg_set(&cfg, "explain.width=4");
    dm_cfg_set(&cfg, "explain.hidden=6");
    dm_cfg_set(&cfg, "explain.k_users=2");
    dm_cfg_set(&cfg, "explain.k_items=2");
    dm_cfg_set(&cfg, "explain.k_attrs=2");
    dm_cfg_set(&cfg, "explain.faith_delta=5"); /* the hinge stays active: differentiable */
    dm_cfg_set(&cfg, "explain.w_faith=0.7");
    dm_cfg_set(&cfg, "explain.w_expl=0.3");
    dm_cfg_set(&cfg, "explain.rationale_tokens=12");
    dm_cfg_set(&cfg, "explain.templates=It is a {brand} item, like {item}.|{item} and {item}");
    float z[12 * 5], hu[3 * 5];
    dm_rng r;
    dm_rng_seed(&r, 7);
    for (int k = 0; k < 12 * 5; k++) z[k] = (float)dm_rng_normal(&r);
    for (int k = 0; k < 3 * 5; k++) hu[k] = (float)dm_rng_normal(&r);
    explain_src src;
    memset(&src, 0, sizeof src);
    if (evid) CHECK(explain_src_init(&src, &cfg, &d, NULL, hu, z, 5) == DM_OK, "explain_src_init: %s", dm_error_message());
    pm p;
    int rc = pm_init(&cfg, dir, &d, z, 5, 8, 11, evid ? &src : NULL, &p);
    CHECK(rc == DM_OK, "pm_init: %s", dm_error_message());
    if (rc) return;
    if (p.ev_head) {
        /* the item-head encoder's output layer starts at zero: give it weights, so that every
           gradient below it is exercised */
        CHECK(p.enc.mlp.w2[0] == 0 && p.enc.mlp.b2[0] == 0, "the item-head evidence term starts at zero");
        size_t nw = (size_t)p.enc.mlp.cfg.dout * (size_t)p.enc.mlp.cfg.hidden;
        for (size_t k = 0; k < nw; k++) p.enc.mlp.w2[k] = 0.3f * (float)dm_rng_normal(&r);
        for (int k = 0; k < p.enc.mlp.cfg.dout; k++) p.enc.mlp.b2[k] = 0.1f * (float)dm_rng_normal(&r);
    }
    /* the user is u (id 0 after processing: the first seen) */
    float h[5] = {0.3f, -0.2f, 0.5f, 0.1f, -0.4f};
    int32_t hist[2] = {1, 4}, cand[4] = {6, 2, 11, 9}; /* item 11 has no title: its soft token alone */
    int32_t all[5] = {0, 1, 3, 4, 5};
    pm_set_user(&p, 0, all, 5);
    double loss;
    memset(p.g, 0, p.nparams * sizeof *p.g);
    CHECK(pm_train_user(&p, h, hist, 2, cand, 1.0f, &loss) == DM_OK, "train: %s", dm_error_message());
    if (evid) {
        CHECK(p.rtok.n > 0 && p.last_faith > 0 && p.last_expl > 0, "the evidence step has a rationale (%zu tokens), an active hinge (%g) and an explanation loss (%g)",
              p.rtok.n, p.last_faith, p.last_expl);
        CHECK(p.rat.tpl == 0 && p.rat.n_slots == 2, "the reference rationale is the first qualifying template: '%s'", p.rat.text.data ? p.rat.text.data : "");
    }
    float *g = malloc(p.nparams * sizeof *g);
    memcpy(g, p.g, p.nparams * sizeof *g);
    double parts[4];
    double lcache = cache_loss(&p, h, hist, 2, cand, parts);
    NEAR(loss, lcache, 2e-4, "loss of the batch forward vs the KV-cache path");
    /* the batch's masked row is the cache path's masked evidence (the faithfulness hinge) */
    NEAR(p.last_rank, parts[0], 2e-4, "listwise part");
    NEAR(p.last_faith, parts[1], 2e-4, "faithfulness hinge: the masked row vs the masked prompt and set");
    NEAR(p.last_expl, parts[2], 2e-4, "explanation part");
    NEAR(p.last_felem, parts[3], 2e-4, "element terms: each element removed in the batch vs the cache path");
    if (p.ev_head) CHECK(p.w_felem > 0 && p.last_felem > 0, "the element terms are on and active (%g)", p.last_felem);
    /* finite differences on every 7th parameter of the projectors (and the evidence encoder) */
    int bad = 0, n = 0;
    double worst = 0;
    for (size_t k = 0; k < p.nparams; k += 7) {
        float keep = p.w[k], hstep = 5e-3f;
        double lp, lm2;
        p.w[k] = keep + hstep;
        lp = cache_loss(&p, h, hist, 2, cand, NULL);
        p.w[k] = keep - hstep;
        lm2 = cache_loss(&p, h, hist, 2, cand, NULL);
        p.w[k] = keep;
        double fd = (lp - lm2) / (2 * hstep), e = fabs(fd - g[k]);
        worst = fmax(worst, e);
        if (e > 1e-3 + 2e-2 * fabs(g[k])) bad++;
        n++;
    }
    CHECK(bad == 0, "%d of %d parameter gradients through the LM disagree with finite differences (worst %.3g)", bad, n, worst);
    static const char *const what[4] = {"", ", per-candidate evidence tokens", ", user evidence tokens and the item-head evidence path",
                                        ", user evidence tokens and compressed evidence tokens"};
    printf("llm recommender (%s, score %s%s%s): loss %.6f (cache %.6f); %d parameter gradients vs finite differences, worst %.3g\n",
           lm_arch_name(p.lm.arch), mode, what[evid], evid ? ", faithfulness and explanation losses" : "", loss, lcache, n, worst);
    if (evid) check_masking_identity(&p, &src, h, hist, 2, cand);
    free(g);
    pm_free(&p);
    if (evid) explain_src_free(&src);
    dm_cfg_free(&cfg);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&meta);
}

/* the training examples: who trains (>= 2 training items), the positive and history, negatives
 * never touched and uniform over the untouched items, the epoch order a keyed permutation */
static void test_train_examples(void)
{
    /* 5 users over 30 items: u0 4 training items, a valid and a test one; u1 one training item;
       u2 two; u3 none; u4 six (one repeated) */
    static const int32_t items[] = {3, 7, 1, 9, 4, 12, /* u1 */ 5, 6, /* u2 */ 8, 2, /* u4 */ 10, 11, 10, 20, 21, 22};
    static const int8_t roles[] = {DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_VALID, DM_TEST, DM_TRAIN, DM_TEST,
                                   DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_TRAIN, DM_TRAIN};
    int64_t off[6] = {0, 6, 8, 10, 10, 16};
    dm_dataset d;
    memset(&d, 0, sizeof d);
    d.n_users = 5, d.n_items = 30, d.n_inter = 16;
    d.user_off = off;
    d.item = (int32_t *)items;
    pm_train_set t;
    CHECK(pm_train_set_init(&t, &d, roles) == DM_OK, "pm_train_set_init: %s", dm_error_message());
    CHECK(t.n == 3 && t.users[0] == 0 && t.users[1] == 2 && t.users[2] == 4, "training users: %zu (expected 0, 2, 4)", t.n);
    static const int32_t u0[] = {1, 3, 4, 7, 9, 12}, u4[] = {10, 10, 11, 20, 21, 22};
    CHECK(t.off[1] - t.off[0] == 6 && !memcmp(t.items + t.off[0], u0, sizeof u0), "user 0's items, sorted, every role");
    CHECK(t.off[5] - t.off[4] == 6 && !memcmp(t.items + t.off[4], u4, sizeof u4), "user 4's items, sorted, repeats kept");
    /* user 0's example: positive 9, history before it 3 7 1, its last 2 in the prompt */
    int32_t all[16], hist[16], cand[9], cand2[9];
    int nall, n, K = 8;
    pm_train_example(&t, &d, roles, 0, 0, 2, K, 42, 5, all, &nall, hist, &n, cand);
    CHECK(cand[0] == 9 && nall == 3 && all[0] == 3 && all[1] == 7 && all[2] == 1 && all[3] == 9, "positive %d, history of %d", cand[0], nall);
    CHECK(n == 2 && hist[0] == 7 && hist[1] == 1, "the last 2 items before the positive: %d items", n);
    pm_train_example(&t, &d, roles, 0, 0, 10, K, 42, 5, all, &nall, hist, &n, cand2);
    CHECK(n == 3 && hist[0] == 3 && !memcmp(cand, cand2, sizeof cand), "a longer history keeps the draws: %d items", n);
    pm_train_example(&t, &d, roles, 4, 0, 2, K, 42, 5, all, &nall, hist, &n, cand2);
    CHECK(cand2[0] == 22 && nall == 5 && n == 2 && hist[0] == 20 && hist[1] == 21, "user 4: positive %d", cand2[0]);
    /* positions before the end (prompt.head_positions): user 0's train 3 7 1 9, one back: positive 1
       after 3 7; two back: positive 7 after 3; user 4 (10 11 10 20 21 22) three back: the repeated 10 after 10 11 */
    pm_train_example(&t, &d, roles, 0, 1, 10, K, 42, 5, all, &nall, hist, &n, cand2);
    CHECK(cand2[0] == 1 && nall == 2 && n == 2 && hist[0] == 3 && hist[1] == 7 && all[2] == 1, "one back: positive %d, %d items", cand2[0], n);
    pm_train_example(&t, &d, roles, 0, 2, 10, K, 42, 5, all, &nall, hist, &n, cand2);
    CHECK(cand2[0] == 7 && nall == 1 && n == 1 && hist[0] == 3, "two back: positive %d, %d items", cand2[0], n);
    pm_train_example(&t, &d, roles, 4, 3, 1, K, 42, 5, all, &nall, hist, &n, cand2);
    CHECK(cand2[0] == 10 && nall == 2 && n == 1 && hist[0] == 11 && all[0] == 10, "user 4, three back: positive %d, %d items", cand2[0], n);
    /* negatives over many steps: never an item the user touched (any role), each untouched item
       about equally often: counts within 5 binomial standard deviations of S K / 24 */
    int cnt[30] = {0}, bad = 0;
    const int S = 3000;
    for (int s = 0; s < S; s++) {
        pm_train_example(&t, &d, roles, 0, 0, 2, K, 42, (uint64_t)s, all, &nall, hist, &n, cand);
        for (int j = 1; j <= K; j++) {
            bad += cand[j] < 0 || cand[j] >= 30 || dm_in_sorted_i32(u0, 6, cand[j]);
            if (cand[j] >= 0 && cand[j] < 30) cnt[cand[j]]++;
        }
    }
    double e = (double)S * K / 24.0, sd = sqrt((double)S * K * (1.0 / 24) * (23.0 / 24)), worst = 0;
    for (int i = 0; i < 30; i++)
        if (!dm_in_sorted_i32(u0, 6, i)) worst = fmax(worst, fabs(cnt[i] - e));
    CHECK(bad == 0, "%d negatives outside the catalogue or touched by the user", bad);
    CHECK(worst < 5 * sd, "negatives not uniform: a count %.0f from the expected %.0f (sd %.1f)", worst, e, sd);
    pm_train_example(&t, &d, roles, 0, 0, 2, K, 42, 5, all, &nall, hist, &n, cand2);
    pm_train_example(&t, &d, roles, 0, 0, 2, K, 42, 6, all, &nall, hist, &n, cand);
    CHECK(memcmp(cand, cand2, sizeof cand) != 0, "steps 5 and 6 draw other negatives");
    pm_train_example(&t, &d, roles, 0, 0, 2, K, 43, 5, all, &nall, hist, &n, cand);
    CHECK(memcmp(cand, cand2, sizeof cand) != 0, "seeds 42 and 43 draw other negatives");
    /* the epoch order: a permutation; the first k positions uniform over the users, applied
       epoch after epoch (counts at position 0 within 5 standard deviations of E / 10) */
    size_t ord[10], ref[10], first[10] = {0};
    for (size_t k = 0; k < 10; k++) ord[k] = ref[k] = 100 + k;
    pm_epoch_order(ord, 10, 0, 7, 0);
    CHECK(!memcmp(ord, ref, sizeof ord), "k = 0 leaves the order");
    const int E = 4000;
    int perm = 1;
    for (int ep = 0; ep < E; ep++) {
        pm_epoch_order(ord, 10, 4, 7, (uint64_t)ep);
        first[ord[0] - 100]++;
        size_t seen = 0;
        for (size_t k = 0; k < 10; k++) seen |= (size_t)1 << (ord[k] - 100);
        perm &= seen == 0x3FF;
    }
    CHECK(perm, "an epoch order is not a permutation of the users");
    double ef = E / 10.0, sf = sqrt(E * 0.1 * 0.9), wf = 0;
    for (int k = 0; k < 10; k++) wf = fmax(wf, fabs((double)first[k] - ef));
    CHECK(wf < 5 * sf, "first users not uniform: a count %.0f from the expected %.0f (sd %.1f)", wf, ef, sf);
    size_t a[10], b[10];
    for (size_t k = 0; k < 10; k++) a[k] = b[k] = k;
    pm_epoch_order(a, 10, 10, 7, 3);
    pm_epoch_order(b, 10, 10, 7, 3);
    CHECK(!memcmp(a, b, sizeof a), "the order is a function of (seed, epoch)");
    printf("training examples: users, history and positive; %d x %d negatives never touched, uniform within %.1f sd; "
           "epoch orders permutations, first user uniform within %.1f sd\n", S, K, worst / sd, wf / sf);
    pm_train_set_free(&t);
}

int main(void)
{
    test_train_examples();
    test_score_soft();
    test_train_step("both", 0, NULL);
    test_train_step("title", 0, NULL);
    test_train_step("soft", 0, NULL);
    test_train_step("both", 1, NULL);
    test_train_step("title", 1, NULL);
    test_train_step("both", 2, NULL);
    test_train_step("title", 2, NULL);
    test_train_step("soft", 2, NULL);
    test_train_step("both", 3, NULL);
    /* the same through a Llama (tests/reference/gen_llama_prompt.py: GQA, untied head, <s> first) */
    const char *ref = getenv("DM_REF_DIR");
    char llama[4200], probe[4300];
    snprintf(llama, sizeof llama, "%s/llama_prompt/lm", ref ? ref : ".");
    snprintf(probe, sizeof probe, "%s/tokenizer.json", llama);
    if (ref && access(probe, R_OK) == 0) {
        test_train_step("both", 0, llama);
        test_train_step("both", 1, llama);
        test_train_step("both", 2, llama);
    } else {
        printf("note: %s absent (tests/reference/gen_llama_prompt.py): the Llama steps are skipped\n", probe);
    }
    nn_mlp_config c = {7, 12, 10, 1e-5f};
    size_t n = nn_mlp_size(&c);
    float *w = calloc(n, sizeof *w), *g = calloc(n, sizeof *g), *g2 = calloc(n, sizeof *g2);
    nn_mlp p, p2;
    nn_mlp_bind(&p, &c, w, g);
    nn_mlp_bind(&p2, &c, w, g2);
    nn_mlp_init(&p, 3, 0.5f);
    /* perturb the layer norm so its gradients are not trivially symmetric */
    dm_rng r;
    dm_rng_seed(&r, 9);
    for (int k = 0; k < c.hidden; k++) {
        p.lnw[k] = 1.0f + 0.3f * (float)dm_rng_normal(&r);
        p.lnb[k] = 0.2f * (float)dm_rng_normal(&r);
    }
    int N = 5;
    float x[5 * 7], R[5 * 10], y[5 * 10], y2[5 * 10], dx[5 * 7] = {0}, dx2[5 * 7] = {0};
    for (int k = 0; k < N * 7; k++) x[k] = (float)dm_rng_normal(&r);
    for (int k = 0; k < N * 10; k++) R[k] = (float)dm_rng_normal(&r);
    nn_mlp_acts a;
    nn_mlp_acts_init(&a, &c, 8);
    CHECK(nn_mlp_forward(&p, &a, x, N, y) == DM_OK, "forward");
    nn_mlp_backward(&p, &a, R, dx);
    nn_mlp_forward_naive(&p2, &a, x, N, y2);
    nn_mlp_backward_naive(&p2, &a, R, dx2);
    double ey = 0, eg = 0, ex = 0;
    for (int k = 0; k < N * 10; k++) ey = fmax(ey, fabs(y[k] - y2[k]));
    for (size_t k = 0; k < n; k++) eg = fmax(eg, fabs(g[k] - g2[k]));
    for (int k = 0; k < N * 7; k++) ex = fmax(ex, fabs(dx[k] - dx2[k]));
    NEAR(ey, 0, 1e-5, "fast vs naive outputs");
    NEAR(eg, 0, 1e-4, "fast vs naive parameter gradients");
    NEAR(ex, 0, 1e-5, "fast vs naive input gradients");
    /* finite differences (central, in float; step 1e-2 with a tolerance relative to the gradient) */
    int bad = 0;
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        double fd = central_diff(&p, &a, x, N, R, &w[k]), e = fabs(fd - g2[k]);
        worst = fmax(worst, e / (1e-2 + fabs(g2[k])));
        if (e > 2e-3 + 2e-2 * fabs(g2[k])) bad++;
    }
    CHECK(bad == 0, "%d of %zu parameter gradients disagree with finite differences (worst relative %.3g)", bad, n, worst);
    for (int k = 0; k < N * 7; k++) {
        double fd = central_diff(&p, &a, x, N, R, &x[k]);
        if (fabs(fd - dx2[k]) > 2e-3 + 2e-2 * fabs(dx2[k])) bad++;
    }
    CHECK(bad == 0, "input gradients disagree with finite differences");
    printf("projector: fast/naive %.2g %.2g %.2g; finite differences worst relative %.3g over %zu parameters\n", ey, eg, ex, worst, n);
    nn_mlp_acts_free(&a);
    free(w);
    free(g);
    free(g2);
    return tap_done("test_prompt");
}
