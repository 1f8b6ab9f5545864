/* test_llmhead.c: the item-head LLM recommender (src/prompt/llmhead.h) through a tiny LM, in the
 * aligner's item space alone or with the CF model's, and its LM-free twin: the untrained head ranks
 * as the aligner (scores h_u . z_i exactly, or 0 without the residual); the scores against a direct
 * computation from the LM's last hidden state (zero for the twin); the full-softmax loss against
 * its definition; every parameter gradient (projectors through the frozen LM, the head's W, b and
 * residual weights; with prompt.head_text also a_t and the text term's path into x) against central
 * finite differences; and a few Adam steps on one user raise the positive's rank. */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/config/config.h"
#include "../../src/data/dataset.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/lm.h"
#include "../../src/nn/adam.h"
#include "../../src/prompt/llmhead.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NI 12
#define DZ 5
#define DC 3

static const float *G; /* the CF latent of the user (NULL without the CF space) */

static double full_loss(pm *p, const float *h, const int32_t *hist, int n, int32_t pos)
{
    pm_head_scores(p, h, G, hist, n);
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < NI; i++) mx = fmax(mx, p->hs[i]);
    for (int i = 0; i < NI; i++) z += exp(p->hs[i] - mx);
    return -(p->hs[pos] - mx - log(z));
}

static int rank_of(const pm *p, int32_t pos)
{
    int r = 0;
    for (int i = 0; i < NI; i++) r += p->hs[i] > p->hs[pos];
    return r;
}

static int make_lm(const char *dir, dm_dataset *d, dm_raw *raw, dm_meta *meta)
{
    static const char *titles[NI] = {"red lipstick", "blue shampoo", "green tea soap", "matte blush", "rose perfume", "argan hair oil",
                                     "night cream", "sun screen", "lip balm", "eye liner", "body wash", ""};
    char id[16];
    raw->has_time = 1;
    for (int i = 0; i < NI; i++) {
        snprintf(id, sizeof id, "%d", i);
        dm_raw_push(raw, "u", 1, id, strlen(id), i, i + 1, -1);
        dm_meta_push(meta, id, strlen(id), titles[i][0] ? titles[i] : NULL, "acme", NULL, NULL, NAN, i + 1);
    }
    dm_process_opts o = {0};
    o.loo_min_len = 3;
    o.window_count = 1;
    o.numeric_ids = 1;
    if (dm_process(raw, meta, &o, d, NULL)) return 1;
    lm_model lm;
    memset(&lm, 0, sizeof lm);
    dm_strtab corpus = {0};
    for (int i = 0; i < NI - 1; i++) dm_strtab_add(&corpus, titles[i], strlen(titles[i]));
    dm_strtab_add(&corpus, " The user bought: Next:;", 24);
    static const char *const specials[] = {"<|endoftext|>", NULL};
    int rc = bpe_train(&lm.tok, &corpus, 40, specials);
    gpt2_config gc = gpt2_config_make(2, 2, 16, 128, lm.tok.n_vocab);
    if (!rc) rc = gpt2_init(&lm.model, &gc);
    if (!rc) gpt2_init_random(&lm.model, 3);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (!rc && system(cmd) != 0) rc = 1;
    if (!rc) rc = lm_save(&lm, dir);
    lm_free(&lm);
    dm_strtab_free(&corpus);
    return rc;
}

/* one case of the item head: the tiny LM's recommender and the inputs of one user */
typedef struct {
    int residual, cf, nolm, text;
    pm p;
    dm_cfg cfg;
    dm_dataset d;
    dm_raw raw;
    dm_meta meta;
    dm_rng r;
    float z[NI * DZ], e[NI * DC]; /* the items' aligner and CF latents */
    float h[DZ], gu[DC];          /* the user's */
    int32_t hist[2], pos;
} head_case;

/* the tiny LM, the recommender with its item head, the latents; 1 when the case cannot run */
static int head_setup(head_case *hc)
{
    const char *tmp = getenv("DM_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_llmhead_lm", tmp ? tmp : "/tmp");
    int rc = make_lm(dir, &hc->d, &hc->raw, &hc->meta);
    CHECK(rc == DM_OK, "tiny LM: %s", dm_error_message());
    if (rc) return 1;
    dm_cfg_init(&hc->cfg);
    dm_cfg_set(&hc->cfg, "prompt.user_tokens=3");
    dm_cfg_set(&hc->cfg, "prompt.history=2");
    dm_cfg_set(&hc->cfg, "prompt.title_tokens=4");
    dm_cfg_set(&hc->cfg, "prompt.hidden=8");
    dm_cfg_set(&hc->cfg, hc->residual ? "prompt.head_residual=true" : "prompt.head_residual=false");
    dm_cfg_set(&hc->cfg, hc->text ? "prompt.head_text=true" : "prompt.head_text=false");
    dm_rng_seed(&hc->r, 7);
    for (int k = 0; k < NI * DZ; k++) hc->z[k] = (float)dm_rng_normal(&hc->r);
    for (int k = 0; k < NI * DC; k++) hc->e[k] = (float)dm_rng_normal(&hc->r);
    pm_head_opts o = {hc->cf ? hc->e : NULL, DC, hc->nolm};
    rc = pm_init_head(&hc->cfg, dir, &hc->d, hc->z, DZ, 8, 11, &o, &hc->p);
    CHECK(rc == DM_OK, "pm_init_head: %s", dm_error_message());
    if (rc) return 1;
    const pm *p = &hc->p;
    size_t nh = (size_t)DZ * p->C + DZ + 1 + (hc->cf ? (size_t)DC * p->C + DC + 1 : 0) + (size_t)(hc->text && !hc->nolm);
    CHECK(p->nparams == p->n_up + p->n_ip + nh, "slab: projectors then the head (%zu)", p->nparams);
    CHECK(p->head_text == (hc->text && !hc->nolm), "the text term only with the LM (%d)", p->head_text);
    if (p->head_text) {
        CHECK(p->at == p->w + p->nparams - 1 && *p->at == 0.0f, "a_t is the slab's last weight and starts at 0");
        CHECK(p->ftok[NI - 1] == -1 && p->ftok[0] == p->tok[p->toff[0]], "first title tokens (-1 untitled)");
    }
    static const float h[DZ] = {0.3f, -0.2f, 0.5f, 0.1f, -0.4f}, gu[DC] = {0.7f, -0.6f, 0.2f};
    memcpy(hc->h, h, sizeof h);
    memcpy(hc->gu, gu, sizeof gu);
    G = hc->cf ? hc->gu : NULL;
    hc->hist[0] = 1, hc->hist[1] = 4, hc->pos = 6;
    printf("item head: residual %d, CF space %d, LM %d, text term %d\n", hc->residual, hc->cf, !hc->nolm, hc->text);
    if (hc->cf) { /* the CF space needs the user's CF latent */
        CHECK(pm_head_scores(&hc->p, hc->h, NULL, hc->hist, 2) == DM_EINTERNAL && strstr(dm_error_message(), "no CF latent"),
              "no CF latent: %s", dm_error_message());
    }
    return 0;
}

/* untrained: W = 0, b = 0, a_z = 1, a_e = 0 -> the aligner's score (or 0) */
static void head_untrained(head_case *hc)
{
    pm *p = &hc->p;
    CHECK(pm_head_scores(p, hc->h, G, hc->hist, 2) == DM_OK, "scores: %s", dm_error_message());
    double worst = 0;
    for (int i = 0; i < NI; i++) {
        double a = 0;
        for (int k = 0; k < DZ; k++) a += (double)hc->h[k] * hc->z[i * DZ + k];
        worst = fmax(worst, fabs(p->hs[i] - (hc->residual ? a : 0.0)));
    }
    /* float dot products of 5 terms of size ~1: rounding ~ 5 * 2^-24 * sum |h z| */
    CHECK(worst < 1e-5, "untrained head scores as %s (worst %.3g)", hc->residual ? "the aligner h . z" : "zero", worst);
}

/* a random head (residual weights kept at their starts without the residual): scores from the
   LM's last hidden state x, q_j = W_j x + b_j + a_j u_j */
static void head_random_scores(head_case *hc)
{
    pm *p = &hc->p;
    for (int j = 0; j < p->nsp; j++) {
        pm_head_space *q = &p->sp[j];
        size_t n = q->d * (size_t)p->C + q->d + (q->train_a ? 1 : 0);
        for (size_t k = 0; k < n; k++) q->w[k] = 0.3f * (float)dm_rng_normal(&hc->r);
    }
    double lspan = 1; /* max_i |l_i|, l_i = x . wte_f(i) - mean_v x . wte_v */
    if (p->head_text) {
        *p->at = 1.0f;
        CHECK(pm_head_scores(p, hc->h, G, hc->hist, 2) == DM_OK, "scores");
        lspan = 0;
        for (int i = 0; i < NI; i++)
            if (p->ftok[i] >= 0) lspan = fmax(lspan, fabs(p->tlog[p->ftok[i]] - p->tmean));
        CHECK(lspan > 0, "the LM's logits differ between titles (%g)", lspan);
        *p->at = (float)(1.0 / lspan); /* the text term spans about +-1, as the latents' scores */
    }
    const double at = p->head_text ? *p->at : 0;
    CHECK(pm_head_scores(p, hc->h, G, hc->hist, 2) == DM_OK, "scores");
    const float *x = p->hx;
    float x0[64] = {0};
    if (hc->nolm) {
        CHECK(!memcmp(x, x0, (size_t)p->C * sizeof(float)), "without the LM x = 0");
    } else {
        int T = pm_build_prompt(p, hc->hist, 2, p->L, p->in);
        const float *xl = p->lm.model.acts.lnf + (size_t)(T - 1) * p->C;
        CHECK(!memcmp(x, xl, (size_t)p->C * sizeof(float)), "x is the final hidden state at the prompt's last position (%d)", T - 1);
    }
    double worst = 0;
    for (int i = 0; i < NI; i++) {
        double s = 0;
        for (int j = 0; j < p->nsp; j++) {
            const pm_head_space *q = &p->sp[j];
            const float *u = j ? hc->gu : hc->h, *t = j ? hc->e : hc->z;
            for (size_t k = 0; k < q->d; k++) {
                double qk = q->b[k] + (double)*q->a * u[k];
                for (int c = 0; c < p->C; c++) qk += (double)q->w[k * (size_t)p->C + (size_t)c] * x[c];
                s += qk * t[(size_t)i * q->d + k];
            }
        }
        if (p->head_text && p->ftok[i] >= 0) { /* a_t (x . wte_f(i) - mean_v x . wte_v) in double */
            const float *wte = lm_head(&p->lm);
            double lf = 0, mean = 0;
            for (int v = 0; v < p->V; v++) {
                double l = 0;
                for (int c = 0; c < p->C; c++) l += (double)wte[(size_t)v * p->C + c] * x[c];
                mean += l / p->V;
                if (v == p->ftok[i]) lf = l;
            }
            s += at * (lf - mean);
        }
        worst = fmax(worst, fabs(s - p->hs[i]) / (1 + fabs(s)));
    }
    /* float sums of C + 1 and then d terms of size ~1 against double: ~(C + d) 2^-24 relative */
    CHECK(worst < 1e-5, "scores = sum_j (W_j x + b_j + a_j u_j) . t_j[i]%s (worst relative %.3g)",
          p->head_text ? " + a_t (x . wte_f(i) - mean_v x . wte_v)" : "", worst);
}

/* the gradient at x (the last row of p->dh, which lm_backward reads and keeps) against
   dx = sum_j W_j^T t_j^T r + a_t sum_i r_i (wte_f(i) - mean_v wte_v), r = softmax(s) - y, in double */
static void check_dx(head_case *hc, const char *what)
{
    pm *p = &hc->p;
    const float *h = hc->h;
    const int32_t *hist = hc->hist, pos = hc->pos;
    double loss;
        memset(p->g, 0, p->nparams * sizeof *p->g);
    pm_head_train_user(p, h, G, hist, 2, pos, 1.0f, &loss);
    int T = pm_build_prompt(p, hist, 2, p->L, p->in);
    float dx[64];
    memcpy(dx, p->dh + (size_t)(T - 1) * p->C, (size_t)p->C * sizeof *dx);
    full_loss(p, h, hist, 2, pos);
    double mx = -INFINITY, z = 0, r[NI], werr = 0, wmag = 0;
    for (int i = 0; i < NI; i++) mx = fmax(mx, p->hs[i]);
    for (int i = 0; i < NI; i++) z += exp(p->hs[i] - mx);
    for (int i = 0; i < NI; i++) r[i] = exp(p->hs[i] - mx) / z - (i == pos);
    const float *wte = lm_head(&p->lm);
    for (int c = 0; c < p->C; c++) {
        double want = 0;
        for (int j = 0; j < p->nsp; j++) {
            const pm_head_space *q = &p->sp[j];
            const float *t = j ? hc->e : hc->z;
            for (size_t k = 0; k < q->d; k++) {
                double dq = 0;
                for (int i = 0; i < NI; i++) dq += r[i] * t[(size_t)i * q->d + k];
                want += dq * q->w[k * (size_t)p->C + (size_t)c];
            }
        }
        if (p->head_text) {
            double wbar = 0;
            for (int v = 0; v < p->V; v++) wbar += wte[(size_t)v * p->C + c] / p->V;
            for (int i = 0; i < NI; i++)
                if (p->ftok[i] >= 0) want += *p->at * r[i] * (wte[(size_t)p->ftok[i] * p->C + c] - wbar);
        }
        werr = fmax(werr, fabs(dx[c] - want));
        wmag = fmax(wmag, fabs(want));
    }
    /* float sums of NI, d and V terms against double: well within 1e-4 of the largest */
    CHECK(wmag > 0 && werr <= 1e-4 * wmag, "dx at the prompt's last position%s (worst %.3g of %.3g)", what, werr, wmag);
}

/* the loss and every gradient against central finite differences of the full-softmax loss */
static void head_gradients(head_case *hc)
{
    pm *p = &hc->p;
    const float *h = hc->h;
    const int32_t *hist = hc->hist, pos = hc->pos;
    memset(p->g, 0, p->nparams * sizeof *p->g);
    double loss;
    CHECK(pm_head_train_user(p, h, G, hist, 2, pos, 1.0f, &loss) == DM_OK, "train: %s", dm_error_message());
    double want = full_loss(p, h, hist, 2, pos);
    NEAR(loss, want, 1e-5 * (1 + fabs(want)), "loss = -log softmax(s)[pos]");
    float *g = malloc(p->nparams * sizeof *g);
    memcpy(g, p->g, p->nparams * sizeof *g);
    int bad = 0, n = 0, nz = 0;
    double worst = 0;
    for (size_t k = 0; k < p->nparams; k += 3) {
        if ((p->nsp > 0 && p->w + k == p->sp[0].a) || (p->nsp > 1 && p->w + k == p->sp[1].a) || (p->head_text && p->w + k == p->at))
            continue; /* below */
        float keep = p->w[k], hstep = 5e-3f;
        p->w[k] = keep + hstep;
        double lp = full_loss(p, h, hist, 2, pos);
        p->w[k] = keep - hstep;
        double lm2 = full_loss(p, h, hist, 2, pos);
        p->w[k] = keep;
        double fd = (lp - lm2) / (2 * hstep), e = fabs(fd - g[k]);
        worst = fmax(worst, e);
        /* float forward through the LM: the difference quotient carries ~1e-7 / 5e-3 of rounding
           plus the O(h^2) curvature term */
        if (e > 1e-3 + 2e-2 * fabs(g[k])) bad++;
        nz += fabs(g[k]) > 1e-6;
        n++;
    }
    CHECK(bad == 0, "%d of %d gradients disagree with finite differences (worst %.3g)", bad, n, worst);
    if (!hc->nolm) CHECK(nz > n / 4, "the gradient reaches the projectors through the LM (%d of %d nonzero)", nz, n);
    /* the residual weights (and a_t): each gradient against its own central difference */
    for (int j = 0; j < p->nsp + p->head_text; j++) {
        float *a = j < p->nsp ? p->sp[j].a : p->at, keep = *a;
        *a = keep + 5e-3f;
        double lp = full_loss(p, h, hist, 2, pos);
        *a = keep - 5e-3f;
        double lm2 = full_loss(p, h, hist, 2, pos);
        *a = keep;
        double fd = (lp - lm2) / 1e-2, ga = g[a - p->w];
        if (hc->residual || j == p->nsp) CHECK(fabs(ga - fd) < 1e-3 + 2e-2 * fabs(fd), "d loss / d a_%d: %g vs finite difference %g", j, ga, fd);
        else CHECK(ga == 0.0f, "a_%d is not trained without the residual (gradient %g)", j, ga);
    }
    if (!hc->nolm) check_dx(hc, "");
    if (p->head_text) { /* the text term's part alone: the spaces' W at zero */
        float *keep[2] = {NULL, NULL};
        for (int j = 0; j < p->nsp; j++) {
            size_t nw = p->sp[j].d * (size_t)p->C;
            keep[j] = malloc(nw * sizeof(float));
            memcpy(keep[j], p->sp[j].w, nw * sizeof(float));
            memset(p->sp[j].w, 0, nw * sizeof(float));
        }
        check_dx(hc, " (the text term alone)");
        for (int j = 0; j < p->nsp; j++) memcpy(p->sp[j].w, keep[j], p->sp[j].d * (size_t)p->C * sizeof(float)), free(keep[j]);
    }
    if (p->head_text) { /* d loss / d a_t = sum_i (softmax(s)_i - y_i) l_i, in double from the scores and logits */
        full_loss(p, h, hist, 2, pos);
        double mx = -INFINITY, z = 0, want = 0, mag = 0;
        for (int i = 0; i < NI; i++) mx = fmax(mx, p->hs[i]);
        for (int i = 0; i < NI; i++) z += exp(p->hs[i] - mx);
        for (int i = 0; i < NI; i++)
            if (p->ftok[i] >= 0) {
                double t = (exp(p->hs[i] - mx) / z - (i == pos)) * (p->tlog[p->ftok[i]] - p->tmean);
                want += t, mag += fabs(t);
            }
        double ga = g[p->at - p->w];
        /* float sums of NI terms against double: ~NI 2^-24 of sum |r_i l_i| */
        CHECK(mag > 0 && fabs(ga - want) <= 1e-5 * mag, "d loss / d a_t = sum_i r_i l_i: %.6g vs %.6g (sum |r_i l_i| %.3g)", ga, want, mag);
    }
    if (hc->nolm) { /* nothing reaches the projectors, W or the LM */
        double gp = 0;
        for (size_t k = 0; k < p->n_up + p->n_ip; k++) gp += fabs(g[k]);
        CHECK(gp == 0, "without the LM the projectors get no gradient (%g)", gp);
    }
    printf("item head: loss %.6f; %d gradients vs finite differences, worst %.3g\n", loss, n, worst);
    free(g);
}

/* a few Adam steps on this user move the positive to the top; the residual weights step at
   their own rate: the slab as Adam at 0.01 everywhere else, and as Adam at 0.05 at a (the
   same per-element formula, so bitwise) */
static void head_adam_steps(head_case *hc)
{
    pm *p = &hc->p;
    const float *h = hc->h;
    const int32_t *hist = hc->hist, pos = hc->pos;
    double loss;
    nn_adam opt = {0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, NN_ADAM_DECOUPLED}, opt5 = opt;
    opt5.lr = 0.05f;
    memset(p->am, 0, p->nparams * sizeof *p->am);
    memset(p->av, 0, p->nparams * sizeof *p->av);
    int r0 = rank_of(p, pos), same = 1;
    float *w1 = malloc(3 * p->nparams * sizeof *w1), *m1 = w1 + p->nparams, *v1 = m1 + p->nparams;
    for (long t = 1; t <= 60; t++) {
        memset(p->g, 0, p->nparams * sizeof *p->g);
        pm_head_train_user(p, h, G, hist, 2, pos, 1.0f, &loss);
        memcpy(w1, p->w, p->nparams * sizeof *w1), memcpy(m1, p->am, p->nparams * sizeof *m1), memcpy(v1, p->av, p->nparams * sizeof *v1);
        nn_adam_step(&opt, t, w1, p->g, m1, v1, p->nparams);
        for (int j = 0; j < p->nsp; j++) {
            size_t k = (size_t)(p->sp[j].a - p->w);
            w1[k] = p->w[k], m1[k] = p->am[k], v1[k] = p->av[k];
            if (hc->residual) nn_adam_step(&opt5, t, w1 + k, p->g + k, m1 + k, v1 + k, 1);
        }
        if (p->head_text) {
            size_t k = (size_t)(p->at - p->w);
            w1[k] = p->w[k], m1[k] = p->am[k], v1[k] = p->av[k];
            nn_adam_step(&opt5, t, w1 + k, p->g + k, m1 + k, v1 + k, 1);
        }
        p->t = t;
        pm_head_adam_step(p, &opt, 0.05f);
        same &= !memcmp(w1, p->w, p->nparams * sizeof *w1) && !memcmp(m1, p->am, p->nparams * sizeof *m1);
    }
    free(w1);
    CHECK(same, "pm_head_adam_step: Adam at 0.01, the residual weights at 0.05 (%s)", hc->residual ? "trained" : "kept");
    pm_head_scores(p, h, G, hist, 2);
    CHECK(rank_of(p, pos) == 0, "after 60 steps the positive ranks first (rank %d, was %d)", rank_of(p, pos), r0);
}

static void test_head(int residual, int cf, int nolm, int text)
{
    head_case hc = {.residual = residual, .cf = cf, .nolm = nolm, .text = text};
    if (head_setup(&hc)) return;
    head_untrained(&hc);
    head_random_scores(&hc);
    head_gradients(&hc);
    head_adam_steps(&hc);
    pm_free(&hc.p);
    dm_cfg_free(&hc.cfg);
    dm_dataset_free(&hc.d);
    dm_raw_free(&hc.raw);
    dm_meta_free(&hc.meta);
}

/* the LM's training histories in the prompt's words (lm.corpus "histories"): the user's 12 items in
   time order, leave-one-out (item 11, untitled, is the test item, 10 "body wash" the validation
   one); two items of history */
static void test_history_docs(void)
{
    dm_dataset d;
    dm_raw raw;
    dm_meta meta;
    memset(&d, 0, sizeof d), memset(&raw, 0, sizeof raw), memset(&meta, 0, sizeof meta);
    const char *tmp = getenv("DM_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_llmhead_docs", tmp ? tmp : "/tmp");
    if (make_lm(dir, &d, &raw, &meta)) {
        CHECK(0, "tiny data: %s", dm_error_message());
        return;
    }
    dm_strtab docs = {0};
    CHECK(pm_history_docs(&d, d.split_loo, " The user bought:", ";", " Next:", 2, &docs) == DM_OK, "docs: %s", dm_error_message());
    /* training items 0..9: one document for each of 1..9 */
    CHECK(docs.n == 9, "one document per training interaction after the first (%zu)", docs.n);
    size_t l = 0;
    const char *s0 = docs.n ? dm_strtab_get(&docs, 0, &l) : "";
    CHECK(docs.n && l == strlen(" The user bought: red lipstick; Next: blue shampoo") &&
              !memcmp(s0, " The user bought: red lipstick; Next: blue shampoo", l),
          "first: '%.*s'", (int)l, s0);
    const char *s8 = docs.n == 9 ? dm_strtab_get(&docs, 8, &l) : "";
    static const char want8[] = " The user bought: sun screen; lip balm; Next: eye liner";
    CHECK(docs.n == 9 && l == strlen(want8) && !memcmp(s8, want8, l), "last (two items of history): '%.*s'", (int)l, s8);
    int leak = 0;
    for (size_t k = 0; k < docs.n; k++) {
        const char *t = dm_strtab_get(&docs, k, &l);
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)l, t);
        leak += strstr(buf, "body wash") != NULL;
    }
    CHECK(leak == 0, "the validation item is in no document (%d)", leak);
    /* no history: prefix, query and the title */
    dm_strtab d0 = {0};
    pm_history_docs(&d, d.split_loo, "P", ",", " Q", 0, &d0);
    const char *t0 = d0.n ? dm_strtab_get(&d0, 0, &l) : "";
    CHECK(d0.n == 9 && l == strlen("P Q blue shampoo") && !memcmp(t0, "P Q blue shampoo", l), "H = 0: '%.*s'", (int)l, t0);
    dm_strtab_free(&docs);
    dm_strtab_free(&d0);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&meta);
}

int main(void)
{
    test_head(1, 0, 0, 0);
    test_head(0, 0, 0, 0);
    test_head(1, 1, 0, 0);
    test_head(1, 1, 1, 0);
    test_head(0, 1, 0, 0);
    test_head(1, 1, 0, 1); /* with the LM's logit of each title's first token */
    test_head(1, 1, 1, 1); /* latent_head: no LM, so no text term */
    test_history_docs();
    return tap_done("llmhead");
}
