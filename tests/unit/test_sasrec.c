/* test_sasrec.c: the SASRec kernels and model (src/sasrec/).
 *
 *  1. every optimised kernel against its naive twin (random inputs, ragged sequences, dropout masks)
 *  2. whole model, optimised vs naive kernels, every norm placement and loss, with keyed dropout
 *  3. gradients of every parameter element by central finite differences (naive kernels, given
 *     dropout masks so the loss is a fixed function of the weights)
 *  4. parity with PyTorch (tests/reference/gen_sasrec.py, float64): loss, every gradient tensor,
 *     user states, replayed dropout masks, two Adam steps with L2
 *  5. data parallel: shard gradients summed over 2 and 3 shards equal the full-batch gradient, the
 *     keyed dropout masks agree, results are bitwise reproducible
 *  6. known answers: initial full-softmax loss ~ ln(#items); a tiny batch overfits
 *  7. inference (states, block and candidate scores, item table) and input errors
 *  8. the config from the key table (sasrec_config_from) and the model interface (sasrec_model_ops:
 *     training sequences, targets, keyed negatives, histories, shard gradients summing to the batch
 *     gradient, scores and candidate scores (score_items: bitwise the rows' entries in reproducible
 *     mode), tensors)
 */
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/core/shard.h"
#include "../../src/nn/gemm.h"
#include "../../src/sasrec/sasrec.h"
#include "../../src/sasrec/sasrec_kernels.h"
#include "../../src/sasrec/sasrec_model.h"
#include "tap.h"
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. kernels ------------------------------------------------------------------------------ */

/* the losses: CE in row blocks of 3 (chunk = 3V) against the naive one-row-at-a-time version, and
 * BCE; h = x (N, C) */
static void test_kernel_losses(dm_rng *rp, const float *x, int N, int C, int V)
{
    const sasrec_kernels *F = &sasrec_kernels_fast, *Nv = &sasrec_kernels_naive;
    dm_rng r = *rp;
    double d;
    float *dx1 = calloc((size_t)N * C, sizeof(float)), *dx2 = calloc((size_t)N * C, sizeof(float));
    float *wte = calloc((size_t)V * C, sizeof(float)),
          *logits = calloc((size_t)3 * V, sizeof(float));
    float *gw1 = calloc((size_t)V * C, sizeof(float)), *gw2 = calloc((size_t)V * C, sizeof(float));
    float *rowbuf = calloc(3 * (size_t)N, sizeof(float));
    int *tgt = calloc((size_t)N, sizeof(int)), *neg = calloc((size_t)N, sizeof(int));
    tl_randn(&r, wte + C, (size_t)(V - 1) * C, 0.4);
    for (int i = 0; i < N; i++) {
        tgt[i] = 1 + (int)dm_rng_below(&r, V - 1);
        neg[i] = 1 + (int)dm_rng_below(&r, V - 1);
    }
    neg[0] = tgt[0]; /* a negative equal to the positive is legal */
    double l1 = F->ce_loss(dx1, gw1, x, tgt, wte, N, V, C, 0.1f, logits, 3 * V, rowbuf);
    double l2 = Nv->ce_loss(dx2, gw2, x, tgt, wte, N, V, C, 0.1f, logits, 3 * V, rowbuf);
    d = fmax(tl_maxdiff(dx1, dx2, (size_t)N * C), tl_maxdiff(gw1, gw2, (size_t)V * C));
    printf("# ce loss: %.8f vs %.8f, gradients max diff %.3g\n", l1, l2, d);
    NEAR(l1, l2, 1e-5 * fabs(l2), "ce loss fast vs naive");
    CHECK(d < 1e-6, "ce gradients differ by %g", d);
    CHECK(tl_maxabs(gw1, C) == 0, "ce gradient reached the padding row");
    memset(gw1, 0, (size_t)V * C * sizeof(float));
    memset(gw2, 0, (size_t)V * C * sizeof(float));
    l1 = F->bce_loss(dx1, gw1, x, tgt, neg, wte, N, C, 0.1f, rowbuf);
    l2 = Nv->bce_loss(dx2, gw2, x, tgt, neg, wte, N, C, 0.1f, rowbuf);
    d = fmax(tl_maxdiff(dx1, dx2, (size_t)N * C), tl_maxdiff(gw1, gw2, (size_t)V * C));
    printf("# bce loss: %.8f vs %.8f, gradients max diff %.3g\n", l1, l2, d);
    NEAR(l1, l2, 1e-5 * fabs(l2), "bce loss fast vs naive");
    CHECK(d < 1e-6, "bce gradients differ by %g", d);

    TL_FREE(wte, logits, gw1, gw2, rowbuf, tgt, neg, dx1, dx2);
}

static void test_kernels(void)
{
    const sasrec_kernels *F = &sasrec_kernels_fast, *Nv = &sasrec_kernels_naive;
    dm_rng r;
    dm_rng_seed(&r, 7);
    enum { B = 4, C = 24, H = 3, IC = 24, OC = 40, V = 57 };
    int lens[B] = {9, 1, 0, 14};
    int off[B + 1];
    size_t att_off[B + 1];
    off[0] = 0;
    att_off[0] = 0;
    for (int b = 0; b < B; b++) {
        off[b + 1] = off[b] + lens[b];
        att_off[b + 1] = att_off[b] + (size_t)H * lens[b] * lens[b];
    }
    const int N = off[B];
    const size_t natt = att_off[B];
    float *x = calloc((size_t)N * 3 * C, sizeof(float)), *w = calloc(OC * IC, sizeof(float));
    float *bias = calloc(OC, sizeof(float)), *y1 = calloc((size_t)N * 3 * OC, sizeof(float));
    float *y2 = calloc((size_t)N * 3 * OC, sizeof(float)),
          *dy = calloc((size_t)N * 3 * OC, sizeof(float));
    float *dx1 = calloc((size_t)N * 3 * C, sizeof(float)),
          *dx2 = calloc((size_t)N * 3 * C, sizeof(float));
    float *dw1 = calloc(OC * IC, sizeof(float)), *dw2 = calloc(OC * IC, sizeof(float));
    float *db1 = calloc(OC, sizeof(float)), *db2 = calloc(OC, sizeof(float));
    float *ones = calloc((size_t)N, sizeof(float)), *mean = calloc(2 * (size_t)N, sizeof(float));
    float *rstd = calloc(2 * (size_t)N, sizeof(float));
    float *att1 = calloc(natt, sizeof(float)), *att2 = calloc(natt, sizeof(float));
    uint8_t *mask = calloc(natt, 1);
    for (int i = 0; i < N; i++) ones[i] = 1.0f;

    /* linear with row strides (the Q and K,V halves of the packed qkv buffer) */
    tl_randn(&r, x, (size_t)N * 3 * C, 1.0);
    tl_randn(&r, w, OC * IC, 0.3);
    tl_randn(&r, bias, OC, 0.5);
    tl_randn(&r, dy, (size_t)N * 3 * OC, 1.0);
    F->linear_forward(y1, 2 * OC, x, 3 * C, w, bias, N, IC, OC);
    Nv->linear_forward(y2, 2 * OC, x, 3 * C, w, bias, N, IC, OC);
    double d = 0;
    for (int i = 0; i < N; i++)
        d = fmax(d, tl_maxdiff(y1 + (size_t)i * 2 * OC, y2 + (size_t)i * 2 * OC, OC));
    printf("# linear forward: max |fast - naive| = %.3g\n", d);
    CHECK(d < 1e-5, "linear forward differs by %g", d);
    F->linear_backward(dx1, 3 * C, dw1, db1, dy, 2 * OC, x, w, ones, N, IC, OC);
    Nv->linear_backward(dx2, 3 * C, dw2, db2, dy, 2 * OC, x, w, ones, N, IC, OC);
    d = fmax(fmax(tl_maxdiff(dx1, dx2, (size_t)N * 3 * C), tl_maxdiff(dw1, dw2, OC * IC)),
             tl_maxdiff(db1, db2, OC));
    printf("# linear backward: max |fast - naive| = %.3g\n", d);
    CHECK(d < 1e-4, "linear backward differs by %g", d);

    /* layer norm, including a constant row (variance 0, the padding case) */
    for (int c = 0; c < C; c++) x[c] = 0.7f;
    F->layernorm_forward(y1, mean, rstd, x, w, bias, N, C, SASREC_LN_EPS);
    Nv->layernorm_forward(y2, mean + N, rstd + N, x, w, bias, N, C, SASREC_LN_EPS);
    d = tl_maxdiff(y1, y2, (size_t)N * C);
    printf("# layernorm forward: max |fast - naive| = %.3g\n", d);
    CHECK(d < 1e-4, "layernorm forward differs by %g", d);
    memset(dx1, 0, (size_t)N * C * sizeof(float));
    memset(dx2, 0, (size_t)N * C * sizeof(float));
    memset(dw1, 0, C * sizeof(float));
    memset(dw2, 0, C * sizeof(float));
    memset(db1, 0, C * sizeof(float));
    memset(db2, 0, C * sizeof(float));
    F->layernorm_backward(dx1 + C, dw1, db1, dy + C, x + C, w, mean + 1, rstd + 1, N - 1, C);
    Nv->layernorm_backward(dx2 + C, dw2, db2, dy + C, x + C, w, mean + N + 1, rstd + N + 1, N - 1,
                           C);
    d = fmax(tl_maxdiff(dx1, dx2, (size_t)N * C), fmax(tl_maxdiff(dw1, dw2, C), tl_maxdiff(db1, db2, C)));
    printf("# layernorm backward: max |fast - naive| = %.3g\n", d);
    CHECK(d < 1e-4, "layernorm backward differs by %g", d);

    /* attention over ragged sequences (lengths 9, 1, 0, 14), with and without dropout, causal
       (SASRec) and bidirectional (BERT4Rec: src/nn/attention.h serves both) */
    for (size_t i = 0; i < natt; i++) mask[i] = dm_rng_uniform(&r) < 0.6;
    for (int run = 0; run < 4; run++) {
        const int withmask = run % 2, causal = run < 2;
        const uint8_t *mk = withmask ? mask : NULL;
        float keep = withmask ? 1.0f / 0.6f : 1.0f;
        F->attention_forward(y1, att1, x, mk, keep, off, att_off, B, C, H, causal);
        Nv->attention_forward(y2, att2, x, mk, keep, off, att_off, B, C, H, causal);
        double da = 0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < lens[b]; i++)
                    for (int j = 0; j < (causal ? i + 1 : lens[b]); j++) {
                        size_t k = att_off[b] + ((size_t)h * lens[b] + i) * lens[b] + j;
                        da = fmax(da, fabs(att1[k] - att2[k]));
                    }
        d = tl_maxdiff(y1, y2, (size_t)N * C);
        printf("# attention forward (causal %d, mask %d): max |fast - naive| out %.3g, probabilities %.3g\n",
               causal, withmask, d, da);
        CHECK(d < 1e-5 && da < 1e-6, "attention forward differs by %g / %g", d, da);
        memset(dx1, 0, (size_t)N * 3 * C * sizeof(float));
        memset(dx2, 0, (size_t)N * 3 * C * sizeof(float));
        F->attention_backward(dx1, dy, x, att1, mk, keep, off, att_off, B, C, H, causal);
        Nv->attention_backward(dx2, dy, x, att1, mk, keep, off, att_off, B, C, H, causal);
        d = tl_maxdiff(dx1, dx2, (size_t)N * 3 * C);
        printf("# attention backward (causal %d, mask %d): max |fast - naive| = %.3g\n", causal, withmask, d);
        CHECK(d < 1e-5, "attention backward differs by %g", d);
    }

    test_kernel_losses(&r, x, N, C, V);

    TL_FREE(x, w, bias, y1, y2, dy, dx1, dx2, dw1, dw2, db1, db2, ones, mean, rstd, att1, att2, mask);
}

/* ---- helpers for model tests ----------------------------------------------------------------- */

typedef struct {
    int B, T;
    int32_t *seq, *pos, *neg;
    int64_t *gidx;
} tbatch;

/* Ragged left-padded sequences (lengths uniform in 0..T), targets = next items, negatives drawn. */
static void make_batch(tbatch *tb, int B, int T, int n_items, uint64_t seed)
{
    dm_rng r;
    dm_rng_seed(&r, seed);
    tb->B = B;
    tb->T = T;
    tb->seq = calloc((size_t)B * T, sizeof(int32_t));
    tb->pos = calloc((size_t)B * T, sizeof(int32_t));
    tb->neg = calloc((size_t)B * T, sizeof(int32_t));
    tb->gidx = calloc((size_t)B, sizeof(int64_t));
    for (int b = 0; b < B; b++) {
        int n = b == 0 ? T : (int)dm_rng_below(&r, (uint64_t)T + 1);
        tb->gidx[b] = b;
        for (int t = T - n; t < T; t++) {
            size_t i = (size_t)b * T + t;
            tb->seq[i] = 1 + (int)dm_rng_below(&r, (uint64_t)n_items);
            tb->pos[i] = 1 + (int)dm_rng_below(&r, (uint64_t)n_items);
            do tb->neg[i] = 1 + (int)dm_rng_below(&r, (uint64_t)n_items);
            while (tb->neg[i] == tb->pos[i] && n_items > 1);
        }
    }
}

static void free_batch(tbatch *tb)
{
    TL_FREE(tb->seq, tb->pos, tb->neg, tb->gidx);
}

static sasrec_batch view(const tbatch *tb, int lo, int hi, double norm, int train)
{
    sasrec_batch b = {.B = hi - lo,
                      .seq = tb->seq + (size_t)lo * tb->T,
                      .pos = tb->pos + (size_t)lo * tb->T,
                      .neg = tb->neg + (size_t)lo * tb->T,
                      .gidx = tb->gidx + lo,
                      .norm = norm,
                      .seed = 99,
                      .step = 5,
                      .train = train};
    return b;
}

static const char *norm_name[] = {"kang", "pre", "post"};
static const char *loss_name[] = {"bce", "ce"};

/* the key table's defaults (a config of defaults) for n_items items and max_batch sequences */
static void default_config(sasrec_config *c, int n_items, int max_batch)
{
    dm_cfg cfg;
    int ok = dm_cfg_init(&cfg) == DM_OK;
    ok = ok && sasrec_config_from(&cfg, n_items, max_batch, c) == DM_OK;
    CHECK(ok, "sasrec config of defaults: %s", dm_error_message());
    if (cfg.v) dm_cfg_free(&cfg);
}

static void small_config(sasrec_config *c, int norm, int loss)
{
    default_config(c, 23, 6);
    c->C = 12;
    c->F = 20;
    c->T = 7;
    c->L = 2;
    c->H = 2;
    c->dropout = 0.3f;
    c->norm = norm;
    c->loss = loss;
    c->chunk_floats = 2 * 24; /* CE in blocks of two rows */
}

/* Perturbs LN weights and biases away from 1 and 0 so that their gradients are generic. */
static void perturb(sasrec *m, uint64_t seed)
{
    dm_rng r;
    dm_rng_seed(&r, seed);
    size_t a = m->offset[2], b = m->offset[4];
    for (size_t i = a; i < b; i++) m->params_mem[i] += (float)(0.2 * dm_rng_normal(&r));
    for (int k = 5; k < SASREC_NTENSORS; k++) {
        if (k == 6 || k == 10 || k == 12) continue; /* matrices already random */
        size_t n = sasrec_tensor_info(&m->cfg, k, NULL, NULL, NULL);
        for (size_t i = 0; i < n; i++)
            m->params_mem[m->offset[k] + i] += (float)(0.2 * dm_rng_normal(&r));
    }
    for (size_t i = (size_t)m->cfg.C; i < (size_t)m->V * m->cfg.C; i++) m->params.wte[i] *= 3.0f;
}

/* ---- 2. model: optimised vs naive kernels ---------------------------------------------------- */

static void test_model_naive(void)
{
    for (int norm = 0; norm < 3; norm++)
        for (int loss = 0; loss < 2; loss++) {
            sasrec_config c;
            small_config(&c, norm, loss);
            sasrec mf, mn;
            sasrec_acts af, an;
            CHECK(sasrec_init(&mf, &c) == DM_OK, "init");
            c.naive = 1;
            CHECK(sasrec_init(&mn, &c) == DM_OK, "init naive");
            CHECK(sasrec_acts_init(&af, &c) == DM_OK && sasrec_acts_init(&an, &c) == DM_OK, "acts");
            sasrec_init_weights(&mf, 11);
            perturb(&mf, 12);
            memcpy(mn.params_mem, mf.params_mem, mf.nparams * sizeof(float));
            tbatch tb;
            make_batch(&tb, 6, c.T, c.n_items, 13);
            sasrec_batch b = view(&tb, 0, 6, 0, 1);
            double lf = 0, ln = 0;
            CHECK(sasrec_train_step(&mf, &af, &b, &lf) == DM_OK, "train step");
            CHECK(sasrec_train_step(&mn, &an, &b, &ln) == DM_OK, "train step naive");
            double worst = 0;
            for (int k = 0; k < SASREC_NTENSORS; k++) {
                size_t n = sasrec_tensor_info(&c, k, NULL, NULL, NULL);
                double s = tl_maxabs(mn.grads_mem + mn.offset[k], n);
                double dd = tl_maxdiff(mf.grads_mem + mf.offset[k], mn.grads_mem + mn.offset[k], n);
                worst = fmax(worst, dd / (s + 1e-6));
            }
            printf("# model %s/%s fast vs naive: loss %.7f vs %.7f, max gradient diff %.3g of the "
                   "tensor's max\n",
                   norm_name[norm], loss_name[loss], lf, ln, worst);
            NEAR(lf, ln, 1e-5 * fabs(ln), "model loss fast vs naive");
            CHECK(worst < 1e-4, "%s/%s gradients fast vs naive differ by %g relative",
                  norm_name[norm], loss_name[loss], worst);
            free_batch(&tb);
            sasrec_free(&mf);
            sasrec_free(&mn);
            sasrec_acts_free(&af);
            sasrec_acts_free(&an);
        }
}

/* ---- 3. finite differences ------------------------------------------------------------------- */

/* Dense dropout masks drawn once so the loss is a deterministic function of the weights. */
typedef struct {
    uint8_t *emb, *att, *fc1, *fc2;
    sasrec_dense_masks d;
} tmasks;

static void make_masks(tmasks *tm, const sasrec_config *c, int B, double p, uint64_t seed)
{
    dm_rng r;
    dm_rng_seed(&r, seed);
    size_t ne = (size_t)B * c->T * c->C, na = (size_t)c->L * B * c->H * c->T * c->T;
    size_t n1 = (size_t)c->L * B * c->T * c->F, n2 = (size_t)c->L * B * c->T * c->C;
    tm->emb = malloc(ne);
    tm->att = malloc(na);
    tm->fc1 = malloc(n1);
    tm->fc2 = malloc(n2);
    for (size_t i = 0; i < ne; i++) tm->emb[i] = dm_rng_uniform(&r) >= p;
    for (size_t i = 0; i < na; i++) tm->att[i] = dm_rng_uniform(&r) >= p;
    for (size_t i = 0; i < n1; i++) tm->fc1[i] = dm_rng_uniform(&r) >= p;
    for (size_t i = 0; i < n2; i++) tm->fc2[i] = dm_rng_uniform(&r) >= p;
    tm->d = (sasrec_dense_masks){tm->emb, tm->att, tm->fc1, tm->fc2};
}

static void free_masks(tmasks *tm)
{
    TL_FREE(tm->emb, tm->att, tm->fc1, tm->fc2);
}

static void test_finite_differences(void)
{
    /* Central differences on float weights, the loss accumulated in double by the naive kernels.
     * Error model: truncation O(h^2 f''') plus float rounding of the loss (~1e-7 relative) / h,
     * both near 1e-4 for h = 1e-2 here. An element passes when |fd - analytic| <= 1e-3 + 1e-2
     * |analytic| for some h in {1e-2, 3e-3, 1e-3, 3e-4}: the smaller steps only matter where the
     * larger one straddles a ReLU kink. A missing or wrong term fails at every step. */
    const double hs[4] = {1e-2, 3e-3, 1e-3, 3e-4};
    for (int norm = 0; norm < 3; norm++)
        for (int loss = 0; loss < 2; loss++) {
            sasrec_config c;
            small_config(&c, norm, loss);
            c.C = 8;
            c.F = 12;
            c.T = 5;
            c.n_items = 12;
            c.max_batch = 3;
            c.naive = 1;
            sasrec m;
            sasrec_acts a;
            CHECK(sasrec_init(&m, &c) == DM_OK && sasrec_acts_init(&a, &c) == DM_OK, "init");
            sasrec_init_weights(&m, 21);
            perturb(&m, 22);
            tbatch tb;
            make_batch(&tb, 3, c.T, c.n_items, 23);
            tmasks tm;
            make_masks(&tm, &m.cfg, 3, 0.3, 24);
            sasrec_batch b = view(&tb, 0, 3, 0, 1);
            b.masks = &tm.d;
            double l0;
            sasrec_zero_grad(&m);
            CHECK(sasrec_train_step(&m, &a, &b, &l0) == DM_OK, "train step");
            float *g = malloc(m.nparams * sizeof(float));
            memcpy(g, m.grads_mem, m.nparams * sizeof(float));
            double worst_all = 0;
            int bad = 0;
            for (int k = 0; k < SASREC_NTENSORS; k++) {
                const char *name;
                size_t n = sasrec_tensor_info(&m.cfg, k, &name, NULL, NULL);
                double worst = 0, gmax = 0;
                for (size_t i = 0; i < n; i++) {
                    size_t j = m.offset[k] + i;
                    float w0 = m.params_mem[j];
                    double err = INFINITY, fd = 0;
                    for (int q = 0; q < 4 && err > 1e-3 + 1e-2 * fabs(g[j]); q++) {
                        double lp, lm;
                        m.params_mem[j] = (float)(w0 + hs[q]);
                        double hp = (double)m.params_mem[j] - w0;
                        sasrec_eval_loss(&m, &a, &b, &lp);
                        m.params_mem[j] = (float)(w0 - hs[q]);
                        double hm = w0 - (double)m.params_mem[j];
                        sasrec_eval_loss(&m, &a, &b, &lm);
                        m.params_mem[j] = w0;
                        fd = (lp - lm) / (hp + hm);
                        err = fmin(err, fabs(fd - g[j]));
                    }
                    gmax = fmax(gmax, fabs(g[j]));
                    if (err > 1e-3 + 1e-2 * fabs(g[j])) {
                        if (bad < 5)
                            printf("# FD mismatch %s/%s %s[%zu]: analytic %.6g fd %.6g\n",
                                   norm_name[norm], loss_name[loss], name, i, g[j], fd);
                        bad++;
                    }
                    worst = fmax(worst, err);
                }
                worst_all = fmax(worst_all, worst);
                if (norm == 0 && loss == 0)
                    printf("# FD kang/bce %-8s %5zu elements: max |fd - analytic| %.2g (max |g| "
                           "%.2g)\n",
                           name, n, worst, gmax);
            }
            printf("# FD %s/%s (dropout masks on): every element of every tensor, max |fd - "
                   "analytic| = %.3g\n",
                   norm_name[norm], loss_name[loss], worst_all);
            CHECK(bad == 0, "%s/%s: %d gradient elements disagree with finite differences",
                  norm_name[norm], loss_name[loss], bad);
            free(g);
            free_masks(&tm);
            free_batch(&tb);
            sasrec_free(&m);
            sasrec_acts_free(&a);
        }
}

/* ---- 4. PyTorch parity ----------------------------------------------------------------------- */

static void parity_case(const char *dir, const dm_json *cs, int naive)
{
    const char *name = dm_json_get(cs, "name")->str;
    const char *nm = dm_json_get(cs, "norm")->str, *ls = dm_json_get(cs, "loss")->str;
    sasrec_config c;
    default_config(&c, (int)tl_jint(cs, "n_items"), (int)tl_jint(cs, "B"));
    c.C = (int)tl_jint(cs, "C");
    c.T = (int)tl_jint(cs, "T");
    c.L = (int)tl_jint(cs, "L");
    c.H = (int)tl_jint(cs, "H");
    c.F = (int)tl_jint(cs, "F");
    c.dropout = (float)tl_jnum(cs, "dropout");
    c.norm = !strcmp(nm, "kang")  ? SASREC_NORM_KANG
             : !strcmp(nm, "pre") ? SASREC_NORM_PRE
                                  : SASREC_NORM_POST;
    c.loss = !strcmp(ls, "ce") ? SASREC_LOSS_CE : SASREC_LOSS_BCE;
    c.naive = naive;
    c.chunk_floats = 3 * (size_t)(c.n_items + 1); /* CE over several row blocks */
    const int B = c.max_batch, T = c.T;
    sasrec m;
    sasrec_acts a;
    if (sasrec_init(&m, &c) != DM_OK || sasrec_acts_init(&a, &c) != DM_OK) {
        CHECK(0, "init for %s", name);
        return;
    }
    CHECK((long long)m.nparams == tl_jint(cs, "nparams"), "%s: slab of %zu floats, reference %lld",
          name, m.nparams, tl_jint(cs, "nparams"));
    float *p = tl_slurp(dir, name, "_params.f32", m.nparams * 4);
    int32_t *seq = tl_slurp(dir, name, "_seq.i32", (size_t)B * T * 4),
            *pos = tl_slurp(dir, name, "_pos.i32", (size_t)B * T * 4);
    int32_t *neg = tl_slurp(dir, name, "_neg.i32", (size_t)B * T * 4);
    double *g = tl_slurp(dir, name, "_grads.f64", m.nparams * 8),
           *st = tl_slurp(dir, name, "_states.f64", (size_t)B * c.C * 8);
    uint8_t *me = NULL, *ma = NULL, *m1 = NULL, *m2 = NULL;
    sasrec_dense_masks dm = {0};
    int drop = c.dropout > 0;
    if (drop) {
        me = tl_slurp(dir, name, "_memb.u8", (size_t)B * T * c.C);
        ma = tl_slurp(dir, name, "_matt.u8", (size_t)c.L * B * c.H * T * T);
        m1 = tl_slurp(dir, name, "_mfc1.u8", (size_t)c.L * B * T * m.cfg.F);
        m2 = tl_slurp(dir, name, "_mfc2.u8", (size_t)c.L * B * T * c.C);
        dm = (sasrec_dense_masks){me, ma, m1, m2};
    }
    if (!p || !seq || !pos || !neg || !g || !st || (drop && (!me || !ma || !m1 || !m2))) {
        CHECK(0, "reference files of %s missing", name);
        goto done;
    }
    memcpy(m.params_mem, p, m.nparams * sizeof(float));
    sasrec_batch b = {
        .B = B, .seq = seq, .pos = pos, .neg = neg, .train = drop, .masks = drop ? &dm : NULL};
    double loss = 0, ref = tl_jnum(cs, "loss_value");
    sasrec_zero_grad(&m);
    CHECK(sasrec_train_step(&m, &a, &b, &loss) == DM_OK, "%s: train step", name);
    printf("# torch %-14s %s: loss %.8f vs %.8f (diff %.2g)\n", name, naive ? "naive" : "fast ",
           loss, ref, fabs(loss - ref));
    NEAR(loss, ref, 2e-6 * fabs(ref) + 1e-7, "loss vs torch");
    double worst = 0;
    for (int k = 0; k < SASREC_NTENSORS; k++) {
        const char *tn;
        size_t n = sasrec_tensor_info(&m.cfg, k, &tn, NULL, NULL);
        double d = 0, s = 0;
        for (size_t i = 0; i < n; i++) {
            d = fmax(d, fabs(m.grads_mem[m.offset[k] + i] - g[m.offset[k] + i]));
            s = fmax(s, fabs(g[m.offset[k] + i]));
        }
        /* float32 against float64: allow 1e-4 of the tensor's largest gradient */
        CHECK(d <= 1e-4 * s + 1e-7, "%s %s: gradient differs from torch by %g (max |g| %g)", name,
              tn, d, s);
        if (!naive && (!strcmp(name, "kang_bce") || !strcmp(name, "kang_bce_drop")))
            printf("#   %-8s max |dC - dtorch| %.2g  (max |g| %.2g)\n", tn, d, s);
        worst = fmax(worst, d / (s + 1e-12));
    }
    printf("#   every gradient tensor: max relative difference %.2g\n", worst);
    /* user states (eval mode, no dropout) */
    float *out = calloc((size_t)B * c.C, sizeof(float));
    CHECK(sasrec_user_states(&m, &a, seq, B, out) == DM_OK, "%s: user states", name);
    double ds = 0;
    for (size_t i = 0; i < (size_t)B * c.C; i++) ds = fmax(ds, fabs(out[i] - st[i]));
    CHECK(ds < 2e-5, "%s: user states differ from torch by %g", name, ds);
    free(out);
    const dm_json *adam = dm_json_get(cs, "adam");
    if (adam && !naive) {
        double *ap = tl_slurp(dir, name, "_adam.f64", m.nparams * 8);
        if (!ap) {
            CHECK(0, "adam reference of %s missing", name);
        } else {
            m.cfg.lr = (float)tl_jnum(adam, "lr");
            m.cfg.l2 = (float)tl_jnum(adam, "l2");
            memcpy(m.params_mem, p, m.nparams * sizeof(float));
            m.step = 0;
            memset(m.m_mem, 0, m.nparams * 4);
            memset(m.v_mem, 0, m.nparams * 4);
            for (int s = 0; s < (int)tl_jint(adam, "steps"); s++) {
                sasrec_zero_grad(&m);
                CHECK(sasrec_train_step(&m, &a, &b, &loss) == DM_OK, "adam step");
                sasrec_adam_step(&m);
            }
            /* The key bias has an exactly zero gradient (softmax is invariant to q . b_k); Adam
             * turns float rounding noise (~1e-9) there into steps of up to lr, as float32 torch
             * would, so those elements are left out. */
            double da = 0;
            size_t skipped = 0;
            for (size_t i = 0; i < m.nparams; i++) {
                if (fabs(g[i]) < 1e-12 && i >= m.offset[2]) { /* E and P rows move by l2 alone */
                    skipped++;
                    continue;
                }
                da = fmax(da, fabs(m.params_mem[i] - ap[i]));
            }
            printf("# torch Adam (2 steps, lr %.3g, l2 %.3g): max |w_C - w_torch| = %.3g (%zu "
                   "elements with zero true gradient skipped)\n",
                   m.cfg.lr, m.cfg.l2, da, skipped);
            CHECK(da < 5e-6, "adam parameters differ from torch by %g", da);
            CHECK(tl_maxabs(m.params.wte, (size_t)c.C) == 0, "padding row moved");
            free(ap);
        }
    }
done:
    TL_FREE(p, seq, pos, neg, g, st, me, ma, m1, m2);
    sasrec_free(&m);
    sasrec_acts_free(&a);
}

/* ---- 5. data parallel ------------------------------------------------------------------------ */

static void test_shards(void)
{
    for (int loss = 0; loss < 2; loss++) {
        sasrec_config c;
        small_config(&c, SASREC_NORM_KANG, loss);
        c.max_batch = 7;
        sasrec full, part;
        sasrec_acts a;
        CHECK(sasrec_init(&full, &c) == DM_OK && sasrec_init(&part, &c) == DM_OK &&
                  sasrec_acts_init(&a, &c) == DM_OK,
              "init");
        sasrec_init_weights(&full, 31);
        memcpy(part.params_mem, full.params_mem, full.nparams * sizeof(float));
        tbatch tb;
        make_batch(&tb, 7, c.T, c.n_items, 32);
        double ntgt = 0;
        for (int i = 0; i < 7 * c.T; i++) ntgt += tb.pos[i] != 0;
        double lfull;
        sasrec_zero_grad(&full);
        sasrec_batch b = view(&tb, 0, 7, ntgt, 1);
        CHECK(sasrec_train_step(&full, &a, &b, &lfull) == DM_OK, "full step");
        /* the same step again: bitwise identical */
        float *g0 = malloc(full.nparams * sizeof(float));
        memcpy(g0, full.grads_mem, full.nparams * sizeof(float));
        double lagain;
        sasrec_zero_grad(&full);
        sasrec_train_step(&full, &a, &b, &lagain);
        CHECK(lfull == lagain && memcmp(g0, full.grads_mem, full.nparams * sizeof(float)) == 0,
              "train step not reproducible");
        for (int parts = 2; parts <= 3; parts++) {
            float *sum = calloc(full.nparams, sizeof(float));
            double lsum = 0;
            for (int k = 0; k < parts; k++) {
                size_t lo, hi;
                dm_shard_even(7, parts, k, &lo, &hi);
                double l;
                sasrec_zero_grad(&part);
                sasrec_batch bs = view(&tb, (int)lo, (int)hi, ntgt, 1);
                CHECK(sasrec_train_step(&part, &a, &bs, &l) == DM_OK, "shard step");
                for (size_t i = 0; i < full.nparams; i++) sum[i] += part.grads_mem[i];
                lsum += l;
            }
            double d = tl_maxdiff(sum, full.grads_mem, full.nparams),
                   s = tl_maxabs(full.grads_mem, full.nparams);
            printf("# %s, %d shards vs full batch (keyed dropout on): loss %.9f vs %.9f, max "
                   "gradient diff %.2g (max |g| %.2g)\n",
                   loss_name[loss], parts, lsum, lfull, d, s);
            NEAR(lsum, lfull, 1e-6 * fabs(lfull), "sum of shard losses");
            CHECK(d <= 1e-6 * s, "%d shards: gradient sum differs by %g", parts, d);
            free(sum);
        }
        /* a different step key gives different masks (and so a different loss) */
        b.step = 6;
        double lother;
        sasrec_eval_loss(&full, &a, &b, &lother);
        CHECK(lother != lfull, "dropout masks ignore the step key");
        free(g0);
        free_batch(&tb);
        sasrec_free(&full);
        sasrec_free(&part);
        sasrec_acts_free(&a);
    }
}

/* ---- 6. known answers ------------------------------------------------------------------------ */

static void test_known_answers(void)
{
    /* initial full-softmax loss ~ ln(#items): xavier-initialised E gives logits of std ~0.4 */
    sasrec_config c;
    default_config(&c, 500, 16);
    c.T = 20;
    c.loss = SASREC_LOSS_CE;
    sasrec m;
    sasrec_acts a;
    CHECK(sasrec_init(&m, &c) == DM_OK && sasrec_acts_init(&a, &c) == DM_OK, "init");
    sasrec_init_weights(&m, 41);
    tbatch tb;
    make_batch(&tb, 16, c.T, c.n_items, 42);
    sasrec_batch b = view(&tb, 0, 16, 0, 0);
    double l;
    CHECK(sasrec_eval_loss(&m, &a, &b, &l) == DM_OK, "eval");
    printf("# initial CE loss %.4f, ln(500) = %.4f\n", l, log(500.0));
    NEAR(l, log(500.0), 0.25, "initial CE loss vs ln(#items)");
    free_batch(&tb);
    sasrec_free(&m);
    sasrec_acts_free(&a);

    /* a tiny batch overfits: 4 sequences, fixed negatives, no dropout, Adam lr 1e-2 */
    for (int loss = 0; loss < 2; loss++) {
        default_config(&c, 30, 4);
        c.C = 32;
        c.T = 10;
        c.dropout = 0.0f;
        c.lr = 1e-2f;
        c.loss = loss;
        CHECK(sasrec_init(&m, &c) == DM_OK && sasrec_acts_init(&a, &c) == DM_OK, "init");
        sasrec_init_weights(&m, 43);
        make_batch(&tb, 4, c.T, c.n_items, 44);
        b = view(&tb, 0, 4, 0, 1);
        double first = 0;
        int steps = 300;
        for (int s = 0; s < steps; s++) {
            sasrec_zero_grad(&m);
            sasrec_train_step(&m, &a, &b, &l);
            if (s == 0) first = l;
            sasrec_adam_step(&m);
        }
        sasrec_eval_loss(&m, &a, &b, &l);
        printf("# overfit %s: loss %.4f -> %.4f after %d Adam steps\n", loss_name[loss], first, l,
               steps);
        CHECK(l < 0.05 * first && l < 0.1, "%s: tiny batch does not overfit (%.4f -> %.4f)",
              loss_name[loss], first, l);
        CHECK(tl_maxabs(m.params.wte, (size_t)c.C) == 0, "padding row moved during training");
        free_batch(&tb);
        sasrec_free(&m);
        sasrec_acts_free(&a);
    }
}

/* ---- 7. inference and errors ----------------------------------------------------------------- */

static void test_inference(void)
{
    sasrec_config c;
    small_config(&c, SASREC_NORM_KANG, SASREC_LOSS_BCE);
    sasrec m;
    sasrec_acts a;
    CHECK(sasrec_init(&m, &c) == DM_OK && sasrec_acts_init(&a, &c) == DM_OK, "init");
    sasrec_init_weights(&m, 51);
    tbatch tb;
    make_batch(&tb, 6, c.T, c.n_items, 52);
    memset(tb.seq + 3 * c.T, 0, (size_t)c.T * sizeof(int32_t)); /* an empty history */
    float st[6 * 12], st1[12], all[6 * 24], cand[6 * 3], table[23 * 12];
    CHECK(sasrec_user_states(&m, &a, tb.seq, 6, st) == DM_OK, "states");
    /* a user's state does not depend on the rest of the batch */
    CHECK(sasrec_user_states(&m, &a, tb.seq + 4 * c.T, 1, st1) == DM_OK, "one state");
    CHECK(tl_maxdiff(st1, st + 4 * 12, 12) < 1e-6, "state depends on the batch");
    CHECK(tl_maxdiff(st + 3 * 12, m.params.lnfb, 12) == 0, "empty history state is not LN_f(0)");
    /* a second, larger set of activations (evaluation batches) gives the same states */
    sasrec_config ce = c;
    ce.max_batch = 13;
    sasrec_acts ea;
    CHECK(sasrec_acts_init(&ea, &ce) == DM_OK, "eval acts");
    int32_t seq13[13 * 7];
    float st13[13 * 12];
    for (int i = 0; i < 13 * 7; i++) seq13[i] = tb.seq[i % (6 * 7)];
    CHECK(sasrec_user_states(&m, &ea, seq13, 13, st13) == DM_OK, "13 states");
    CHECK(tl_maxdiff(st13, st, 6 * 12) < 1e-6 && tl_maxdiff(st13 + 6 * 12, st, 6 * 12) < 1e-6,
          "eval-batch states differ");
    sasrec_acts_free(&ea);
    ce.C = 16; /* activations of another shape are refused */
    ce.H = 2;
    CHECK(sasrec_acts_init(&ea, &ce) == DM_OK, "other acts");
    CHECK(sasrec_user_states(&m, &ea, seq13, 2, st13) == DM_EINTERNAL,
          "mismatched activations accepted");
    dm_error_clear();
    sasrec_acts_free(&ea);
    sasrec_scores_block(&m, st, 6, 0, m.V, all);
    int32_t items[6 * 3];
    for (int i = 0; i < 18; i++) items[i] = 1 + i % 23;
    sasrec_scores_items(&m, st, 6, items, 3, cand);
    double d = 0;
    for (int s = 0; s < 6; s++)
        for (int k = 0; k < 3; k++)
            d = fmax(d, fabs(cand[s * 3 + k] - all[s * 24 + items[s * 3 + k]]));
    CHECK(d < 1e-5, "candidate scores differ from block scores by %g", d);
    float blk[6 * 10];
    sasrec_scores_block(&m, st, 6, 5, 15, blk);
    d = 0;
    for (int s = 0; s < 6; s++)
        for (int k = 0; k < 10; k++) d = fmax(d, fabs(blk[s * 10 + k] - all[s * 24 + 5 + k]));
    CHECK(d < 1e-5, "item block scores differ by %g", d);
    sasrec_item_table(&m, table);
    CHECK(memcmp(table, m.params.wte + 12, sizeof table) == 0, "item table");

    /* input errors */
    double l;
    sasrec_batch b = view(&tb, 0, 6, 0, 1);
    tb.pos[3 * c.T + 2] = 5; /* target on padding */
    CHECK(sasrec_train_step(&m, &a, &b, &l) == DM_EINPUT, "target on padding accepted");
    printf("# expected error: %s (hint: %s)\n", dm_error_message(), dm_error_hint_text());
    dm_error_clear();
    tb.pos[3 * c.T + 2] = 0;
    int32_t keep = tb.seq[6];
    tb.seq[6] = 24;
    CHECK(sasrec_train_step(&m, &a, &b, &l) == DM_EINPUT, "item out of range accepted");
    dm_error_clear();
    tb.seq[6] = keep;
    b.B = 7;
    CHECK(sasrec_train_step(&m, &a, &b, &l) == DM_EINPUT, "oversized batch accepted");
    dm_error_clear();
    sasrec_config bad = c;
    bad.H = 5;
    CHECK(sasrec_config_check(&bad) == DM_ECONFIG, "heads not dividing hidden accepted");
    dm_error_clear();
    free_batch(&tb);
    sasrec_free(&m);
    sasrec_acts_free(&a);
}

/* ---- 8. the config and the model interface --------------------------------------------------- */

static void test_config(void)
{
    /* the key table's defaults are the reference implementation's (kang205/SASRec) */
    sasrec_config c;
    default_config(&c, 100, 8);
    CHECK(c.n_items == 100 && c.max_batch == 8 && c.C == 50 && c.F == 0 && c.T == 50 && c.L == 2 && c.H == 1,
          "default shape: C %d F %d T %d L %d H %d", c.C, c.F, c.T, c.L, c.H);
    CHECK(c.dropout == 0.5f && c.norm == SASREC_NORM_KANG && c.loss == SASREC_LOSS_BCE && c.naive == 0,
          "default dropout %g, norm %d, loss %d", c.dropout, c.norm, c.loss);
    CHECK(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.98f && c.eps == 1e-8f && c.l2 == 0.0f,
          "default Adam: lr %g, betas %g %g, eps %g, l2 %g", c.lr, c.beta1, c.beta2, c.eps, c.l2);
    CHECK(c.chunk_floats == (size_t)16 << 20, "default logits block: %zu floats (64 MiB)", c.chunk_floats);
    /* settings flow into the struct */
    dm_cfg cfg;
    CHECK(dm_cfg_init(&cfg) == DM_OK, "config");
    const char *set[] = {"sasrec.hidden=64", "sasrec.heads=4", "sasrec.ffn=96", "sasrec.norm=pre", "sasrec.loss=ce",
                         "sasrec.ce_chunk_mb=1", "sasrec.beta2=0.999", "sasrec.dropout=0.2"};
    for (size_t k = 0; k < sizeof set / sizeof set[0]; k++) CHECK(dm_cfg_set(&cfg, set[k]) == DM_OK, "%s", set[k]);
    CHECK(sasrec_config_from(&cfg, 7, 3, &c) == DM_OK, "config from settings");
    CHECK(c.C == 64 && c.H == 4 && c.F == 96 && c.norm == SASREC_NORM_PRE && c.loss == SASREC_LOSS_CE && c.chunk_floats == 262144 &&
              c.beta2 == 0.999f && c.dropout == 0.2f,
          "settings: C %d H %d F %d norm %d loss %d chunk %zu beta2 %g dropout %g", c.C, c.H, c.F, c.norm, c.loss, c.chunk_floats,
          c.beta2, c.dropout);
    /* heads that do not divide hidden: an error naming the key */
    CHECK(dm_cfg_set(&cfg, "sasrec.heads=3") == DM_OK, "set heads");
    CHECK(sasrec_config_from(&cfg, 7, 3, &c) == DM_ECONFIG && strstr(dm_error_message(), "sasrec.heads"),
          "heads not dividing hidden: %s", dm_error_message());
    printf("# expected error: %s\n", dm_error_message());
    dm_error_clear();
    /* ranges are the loader's, with the key named */
    CHECK(dm_cfg_set(&cfg, "sasrec.hidden=0") != DM_OK && strstr(dm_error_message(), "sasrec.hidden"), "hidden = 0 accepted: %s",
          dm_error_message());
    printf("# expected error: %s\n", dm_error_message());
    dm_error_clear();
    dm_cfg_free(&cfg);
}

/* A tiny dataset: 5 users over 9 items (roles 0 train, 1 valid, 2 test). User 1 has one training
 * item (no training sequence); user 4 took items 0..7 in training, so its only negative is item 8. */
enum { MU = 5, MI = 9, MN = 25 };
static const int64_t m_off[MU + 1] = {0, 4, 6, 14, 17, 25};
static const int32_t m_item[MN] = {1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 0, 1, 2, 3, 4, 5, 6, 7};
static const int8_t m_roles[MN] = {0, 0, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

/* Runs body on a new model over the tiny dataset (sasrec_model_ops.create: one check). */
static void with_model(void (*body)(const dm_model_ops *ops, void *self, const dm_dataset *d))
{
    dm_dataset d = tl_dataset_view(MU, MI, (int64_t *)m_off, (int32_t *)m_item);
    dm_cfg cfg;
    const char *set[] = {"sasrec.hidden=8", "sasrec.heads=2", "sasrec.maxlen=4", "sasrec.blocks=1", "sasrec.dropout=0.2"};
    int ok = dm_cfg_init(&cfg) == DM_OK;
    for (size_t k = 0; k < sizeof set / sizeof set[0] && ok; k++) ok = dm_cfg_set(&cfg, set[k]) == DM_OK;
    void *self = NULL;
    CHECK(ok && sasrec_model_ops.create(&self, &cfg, &d, m_roles, 5, 77) == DM_OK, "create: %s", dm_error_message());
    if (self) {
        body(&sasrec_model_ops, self, &d);
        sasrec_model_ops.destroy(self);
    }
    dm_cfg_free(&cfg);
}

/* training sequences, targets, rows, keyed negatives, histories */
static void test_model_rows(const dm_model_ops *ops, void *self, const dm_dataset *d)
{
    sasrec_model *s = self;
    CHECK(ops->n_examples(self) == 4 && s->user[0] == 0 && s->user[1] == 2 && s->user[2] == 3 && s->user[3] == 4,
          "training sequences: %zu", ops->n_examples(self));
    size_t all[4] = {0, 1, 2, 3};
    CHECK(ops->batch_norm(self, all, 4) == 1 + 4 + 2 + 4, "targets of the batch: %g", ops->batch_norm(self, all, 4));
    int32_t seq[4], pos[4], neg[4], seq2[4], pos2[4], neg2[4];
    /* user 2, training items 0..5: inputs 1..4, targets 2..5 (ids + 1) */
    sasrec_model_train_row(s, 1, 5, 3, 9, seq, pos, neg);
    const int32_t want_seq[4] = {2, 3, 4, 5}, want_pos[4] = {3, 4, 5, 6};
    CHECK(!memcmp(seq, want_seq, sizeof seq) && !memcmp(pos, want_pos, sizeof pos), "row of user 2: seq %d %d %d %d, pos %d %d %d %d",
          seq[0], seq[1], seq[2], seq[3], pos[0], pos[1], pos[2], pos[3]);
    int avoid = 1, differ = 0;
    for (int k = 0; k < 4; k++) avoid &= neg[k] >= 7 && neg[k] <= 9; /* items 6..8 */
    for (uint64_t g = 0; g < 8; g++) {
        sasrec_model_train_row(s, 1, 5, 3, (int64_t)g, seq2, pos2, neg2);
        differ |= memcmp(neg, neg2, sizeof neg) != 0;
    }
    sasrec_model_train_row(s, 1, 5, 3, 9, seq2, pos2, neg2);
    CHECK(avoid && differ && !memcmp(neg, neg2, sizeof neg), "negatives: outside the training items, keyed by the global position");
    /* user 0 (two training items): one target, left-padded */
    sasrec_model_train_row(s, 0, 5, 3, 0, seq, pos, neg);
    CHECK(seq[0] == 0 && seq[1] == 0 && seq[2] == 0 && seq[3] == 2 && pos[3] == 3 && pos[2] == 0 && neg[2] == 0, "row of user 0");
    int only = 1;
    for (uint64_t st = 0; st < 20; st++) {
        sasrec_model_train_row(s, 3, 5, st, (int64_t)st, seq, pos, neg);
        for (int k = 0; k < 4; k++) only &= neg[k] == 9;
    }
    CHECK(only, "user 4's negatives are item 8, the one it never took");
    /* histories: the latest T items of role < split */
    sasrec_history_row(d, m_roles, DM_VALID, 2, 4, seq);
    sasrec_history_row(d, m_roles, DM_TEST, 2, 4, seq2);
    const int32_t hv[4] = {3, 4, 5, 6}, ht[4] = {4, 5, 6, 7};
    CHECK(!memcmp(seq, hv, sizeof seq) && !memcmp(seq2, ht, sizeof seq2), "histories of user 2");
    sasrec_history_row(d, m_roles, DM_VALID, 1, 4, seq);
    CHECK(seq[0] == 0 && seq[1] == 0 && seq[2] == 0 && seq[3] == 6, "history of user 1");
}

/* the trainer's contract: shard gradients with the global normaliser and positions sum to the
 * batch's; after_reduce zeroes the key bias; scores; tensors tile the slab */
static void test_model_ops(const dm_model_ops *ops, void *self, const dm_dataset *d)
{
    sasrec_model *s = self;
    size_t np, ex[4] = {2, 0, 3, 1};
    int64_t gidx[4] = {0, 1, 2, 3};
    float *g = ops->grads(self, &np), *full = malloc(np * sizeof *full), *sum = calloc(np, sizeof *sum);
    double norm = ops->batch_norm(self, ex, 4), lfull = 0;
    memset(g, 0, np * sizeof *g);
    CHECK(ops->loss_is_mean && ops->grad(self, ex, 4, gidx, 11, 2, norm, &lfull) == DM_OK, "full batch");
    memcpy(full, g, np * sizeof *g);
    for (int parts = 2; parts <= 3; parts++) {
        double lsum = 0;
        memset(sum, 0, np * sizeof *sum);
        for (int k = 0; k < parts; k++) {
            size_t lo, hi;
            double l = 0;
            dm_shard_even(4, parts, k, &lo, &hi);
            memset(g, 0, np * sizeof *g);
            CHECK(ops->grad(self, ex + lo, hi - lo, gidx + lo, 11, 2, norm, &l) == DM_OK, "shard");
            for (size_t i = 0; i < np; i++) sum[i] += g[i];
            lsum += l;
        }
        double dg = tl_maxdiff(sum, full, np), sc = tl_maxabs(full, np);
        printf("# model interface, %d shards: loss %.9f vs %.9f, gradient diff %.2g (max |g| %.2g)\n", parts, lsum, lfull, dg, sc);
        NEAR(lsum, lfull, 1e-6 * fabs(lfull), "shard losses sum to the batch mean");
        CHECK(dg <= 1e-6 * sc && sc > 0, "%d shards: gradient sum differs by %g", parts, dg);
    }
    for (size_t i = 0; i < np; i++) g[i] = 1.0f;
    ops->after_reduce(self);
    size_t C = (size_t)s->m.cfg.C, zero = 0, ones = 0;
    for (size_t i = 0; i < 3 * C; i++) {
        zero += s->m.grads.qkvb[i] == 0.0f;
        ones += s->m.grads.qkvb[i] == 1.0f && (i < C || i >= 2 * C);
    }
    CHECK(zero == C && ones == 2 * C, "after_reduce: %zu key-bias zeros, %zu other biases kept", zero, ones);
    long before = *ops->opt_steps(self);
    size_t no;
    CHECK(ops->opt_state(self, &no) == s->m.m_mem && no == 2 * np, "optimiser state: both Adam moments");
    ops->step(self);
    CHECK(*ops->opt_steps(self) == before + 1, "the step counts");
    /* scores: the states' dot products with items 1..n of E */
    size_t users[2] = {2, 1};
    float sc[2 * MI], st[2 * 8];
    CHECK(ops->score(self, d, m_roles, DM_TEST, users, 2, sc) == DM_OK && sasrec_model_states(s, d, m_roles, DM_TEST, users, 2, st) == DM_OK,
          "score");
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < MI; i++) {
            double want = 0;
            for (size_t c = 0; c < C; c++) want += (double)st[b * 8 + (int)c] * s->m.params.wte[(size_t)(i + 1) * C + c];
            worst = fmax(worst, fabs(want - sc[b * MI + i]));
        }
    CHECK(worst < 1e-5, "scores differ from the states' dot products by %g", worst);
    /* score_items: the listed items' entries of score()'s rows (bitwise in reproducible mode, where
       both take every dot product in index order: src/nn/gemm.h), with repeats and in any order */
    {
        const int32_t items[2 * 5] = {8, 0, 3, 3, 5, 1, 2, 8, 0, 7};
        float si[2 * 5], sr[2 * MI];
        nn_set_reproducible(1);
        int ra = ops->score(self, d, m_roles, DM_TEST, users, 2, sr), rb = ops->score_items(self, d, m_roles, DM_TEST, users, 2, items, 5, si);
        nn_set_reproducible(0);
        int same = ra == DM_OK && rb == DM_OK;
        for (int k = 0; k < 10 && same; k++) same = !memcmp(&si[k], &sr[(k / 5) * MI + items[k]], sizeof *si);
        CHECK(same, "score_items: the rows' entries of the listed items, bitwise (%d, %d)", ra, rb);
        double wi = 0;
        CHECK(ops->score_items(self, d, m_roles, DM_TEST, users, 2, items, 5, si) == DM_OK, "score_items, default mode");
        for (int k = 0; k < 10; k++) wi = fmax(wi, fabs(si[k] - sc[(k / 5) * MI + items[k]]));
        CHECK(wi < 1e-5, "score_items differ from score() by %g in the default mode", wi);
    }
    /* tensors tile the parameter slab in order */
    const float *p = ops->params(self, &np);
    size_t at = 0;
    int k = 0, tiled = 1;
    const char *tn;
    size_t rows, cols;
    float *data;
    for (; ops->tensor(self, k, &tn, &rows, &cols, &data); k++) {
        tiled &= data == p + at;
        at += rows * (cols ? cols : 1);
    }
    CHECK(k == SASREC_NTENSORS && at == np && tiled, "%d tensors cover %zu of %zu parameters", k, at, np);
    free(full);
    free(sum);
}

int main(void)
{
    sasrec_set_threads(2);
    test_kernels();
    test_model_naive();
    test_finite_differences();
    tl_parity("sasrec", "dynmm-sasrec-ref", parity_case, 1, 9);
    test_shards();
    sasrec_set_threads(1);
    test_known_answers();
    test_inference();
    test_config();
    with_model(test_model_rows);
    with_model(test_model_ops);
    return tap_done("test_sasrec");
}
