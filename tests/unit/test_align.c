/* test_align.c: the multimodal base aligner (src/align/).
 *
 *  1. every optimised kernel against its naive twin (linear layers, InfoNCE with duplicate
 *     exclusion and several logit blocks)
 *  2. whole model, optimised vs naive kernels: losses, every gradient, the bank gradient
 *  3. gradients of every parameter element and of the negative bank by central finite differences
 *     (naive kernels), for three activation / fusion / rank-loss combinations
 *  4. parity with PyTorch (tests/reference/gen_align.py, float64): the four losses, every gradient
 *     tensor, the bank gradient, the latents, two AdamW steps
 *  5. data parallel: 2 and 3 shards against a bank holding the full batch (keyed modality dropout
 *     on): the shard losses and gradients sum to the full-batch ones
 *  6. presence: a modality absent for every item changes neither loss nor gradient nor inference
 *     compared to a model without that modality; modality dropout's keys and guarantees
 *  7. known answers: InfoNCE with tiny weights ~ ln(#candidates); a tiny batch overfits
 *  8. inference in chunks, and input errors
 *  9. settings from the key table (align_config_from)
 */
#include "../../src/align/align.h"
#include "../../src/align/align_kernels.h"
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/core/shard.h"
#include "tap.h"
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K = ALIGN_K };

/* ---- test data ------------------------------------------------------------------------------- */

typedef struct {
    int B, U, R, nneg, du;
    int dims[K];
    float *x[K];       /* (B, D_k) feature tables */
    int64_t *xrow;     /* (B) */
    uint8_t *present;  /* (B, K) */
    int64_t *item;     /* (B) */
    float *r;          /* (U, du) */
    int32_t *exu, *exp, *exn;
} tdata;

/* Random features and presence (every modality present with probability 0.6, item 0 has all,
 * item 1 only text, item 2 none), item ids 100 + b with the last row a duplicate of row 3, and
 * random rank examples over the whole batch. */
static void make_data(tdata *t, const align_config *c, int B, int U, int R, uint64_t seed)
{
    dm_rng r;
    dm_rng_seed(&r, seed);
    memset(t, 0, sizeof *t);
    t->B = B, t->U = U, t->R = R, t->nneg = c->n_neg, t->du = c->dim_user;
    for (int k = 0; k < K; k++) {
        t->dims[k] = c->dim_in[k];
        if (!c->dim_in[k]) continue;
        t->x[k] = malloc((size_t)B * c->dim_in[k] * sizeof(float));
        tl_randn(&r, t->x[k], (size_t)B * c->dim_in[k], 1.0);
    }
    t->xrow = malloc((size_t)B * sizeof(int64_t));
    t->item = malloc((size_t)B * sizeof(int64_t));
    t->present = malloc((size_t)B * K);
    for (int b = 0; b < B; b++) {
        t->xrow[b] = b;
        t->item[b] = 100 + b;
        for (int k = 0; k < K; k++) t->present[b * K + k] = dm_rng_uniform(&r) < 0.6;
        if (b == 0) memset(t->present, 1, K);
        if (b == 1) memset(t->present + K, 0, K), t->present[K + ALIGN_TEXT] = 1;
        if (b == 2) memset(t->present + 2 * K, 0, K);
    }
    if (B > 5) { /* a duplicate item: same id, features and presence as row 3 */
        t->xrow[B - 1] = t->xrow[3];
        t->item[B - 1] = t->item[3];
        memcpy(t->present + (B - 1) * K, t->present + 3 * K, K);
    }
    t->r = malloc((size_t)U * (t->du ? t->du : 1) * sizeof(float));
    tl_randn(&r, t->r, (size_t)U * (t->du ? t->du : 1), 1.0);
    t->exu = malloc((size_t)(R ? R : 1) * sizeof(int32_t));
    t->exp = malloc((size_t)(R ? R : 1) * sizeof(int32_t));
    t->exn = malloc((size_t)(R ? R : 1) * (t->nneg ? t->nneg : 1) * sizeof(int32_t));
    for (int e = 0; e < R; e++) {
        t->exu[e] = (int32_t)dm_rng_below(&r, (uint64_t)U);
        t->exp[e] = (int32_t)dm_rng_below(&r, (uint64_t)B);
        for (int j = 0; j < t->nneg; j++) t->exn[e * t->nneg + j] = (int32_t)dm_rng_below(&r, (uint64_t)B);
    }
}

static void free_data(tdata *t)
{
    for (int k = 0; k < K; k++) free(t->x[k]);
    TL_FREE(t->xrow, t->item, t->present, t->r, t->exu, t->exp, t->exn);
    memset(t, 0, sizeof *t);
}

static align_batch full_batch(const tdata *t, int train, uint64_t step)
{
    align_batch b = {0};
    b.B = t->B;
    for (int k = 0; k < K; k++) b.x[k] = t->x[k];
    b.xrow = t->xrow;
    b.present = t->present;
    b.item = t->item;
    b.seed = 77;
    b.step = step;
    b.train = train;
    b.U = t->U;
    b.r = t->r;
    b.R = t->R;
    b.ex_user = t->exu;
    b.ex_pos = t->exp;
    b.ex_neg = t->exn;
    return b;
}

static const char *act_name[3] = {"relu", "gelu", "tanh"};
static const char *fuse_name[2] = {"mean", "gate"};
static const char *rank_name[2] = {"softmax", "bce"};

/* An align_config from the key table's defaults (dm_cfg_init) with the given assignments
 * ("align.dim=4", ...; NULL-terminated) and feature widths; capacities left to the caller. */
static void config_from(align_config *c, const int dims[K], int dim_user, const char *const *sets)
{
    dm_cfg cfg;
    int ok = dm_cfg_init(&cfg) == DM_OK;
    for (size_t i = 0; ok && sets && sets[i]; i++) ok = dm_cfg_set(&cfg, sets[i]) == DM_OK;
    ok = ok && align_config_from(&cfg, dims, dim_user, c) == DM_OK;
    CHECK(ok, "config from the keys: %s", dm_error_message());
    dm_cfg_free(&cfg);
}

static void small_config(align_config *c, int act, int fusion, int rank)
{
    int dims[K] = {4, 6, 5, 3};
    char sa[64], sf[64], sr[64];
    snprintf(sa, sizeof sa, "align.act=%s", act_name[act]);
    snprintf(sf, sizeof sf, "align.fusion=%s", fuse_name[fusion]);
    snprintf(sr, sizeof sr, "align.rank_loss=%s", rank_name[rank]);
    const char *sets[] = {"align.dim=4", "align.hidden=6", sa, sf, sr, "align.negatives=2", "align.tau=0.3",
                          "align.w_nce=1", "align.w_recon=0.7", "align.w_match=1.3", "align.w_rank=0.9",
                          "align.modality_dropout=0.3", NULL};
    config_from(c, dims, 4, sets);
    c->max_batch = 12;
    c->max_users = 6;
    c->max_rank = 8;
    c->max_bank = 24;
}

/* Moves gate and query off zero so their gradients are exercised. */
static void perturb(align_model *m, uint64_t seed)
{
    dm_rng r;
    dm_rng_seed(&r, seed);
    if (m->params.fuse_gate) tl_randn(&r, m->params.fuse_gate, K, 0.5);
    if (m->params.fuse_query) tl_randn(&r, m->params.fuse_query, (size_t)m->cfg.d, 0.5);
}


/* ---- 1. kernels ------------------------------------------------------------------------------ */

static void test_kernels(void)
{
    const align_kernels *F = &align_kernels_fast, *Nv = &align_kernels_naive;
    dm_rng r;
    dm_rng_seed(&r, 5);
    enum { N = 13, IC = 17, OC = 9 };
    float inp[N * IC], w[OC * IC], b[OC], o1[N * OC], o2[N * OC], dout[N * OC];
    tl_randn(&r, inp, N * IC, 1.0);
    tl_randn(&r, w, OC * IC, 0.5);
    tl_randn(&r, b, OC, 0.5);
    tl_randn(&r, dout, N * OC, 1.0);
    F->linear_forward(o1, inp, w, b, N, IC, OC);
    Nv->linear_forward(o2, inp, w, b, N, IC, OC);
    double dl = tl_maxdiff(o1, o2, N * OC);
    F->linear_forward(o1, inp, w, NULL, N, IC, OC);
    Nv->linear_forward(o2, inp, w, NULL, N, IC, OC);
    dl = fmax(dl, tl_maxdiff(o1, o2, N * OC));
    float di1[N * IC], di2[N * IC], dw1[OC * IC], dw2[OC * IC], db1[OC], db2[OC];
    for (int i = 0; i < N * IC; i++) di1[i] = di2[i] = 0.25f;
    for (int i = 0; i < OC * IC; i++) dw1[i] = dw2[i] = -0.5f;
    for (int i = 0; i < OC; i++) db1[i] = db2[i] = 1.0f;
    F->linear_backward(di1, dw1, db1, dout, inp, w, N, IC, OC);
    Nv->linear_backward(di2, dw2, db2, dout, inp, w, N, IC, OC);
    double db = fmax(fmax(tl_maxdiff(di1, di2, N * IC), tl_maxdiff(dw1, dw2, OC * IC)),
                     tl_maxdiff(db1, db2, OC));
    printf("# kernels: linear forward max diff %.2g, backward (accumulating) %.2g\n", dl, db);
    CHECK(dl < 1e-5 && db < 1e-5, "linear fast vs naive: %g %g", dl, db);

    /* InfoNCE: 11 anchors, 23 candidates with duplicate ids, blocks of 2 anchors */
    enum { NA = 11, NB = 23, D = 7 };
    float A[NA * D], Bm[NB * D];
    int pos[NA];
    int64_t ai[NA], bi[NB];
    tl_randn(&r, A, NA * D, 1.0);
    tl_randn(&r, Bm, NB * D, 1.0);
    for (int i = 0; i < NA; i++) {
        float s = 0;
        for (int j = 0; j < D; j++) s += A[i * D + j] * A[i * D + j];
        for (int j = 0; j < D; j++) A[i * D + j] /= sqrtf(s);
    }
    for (int i = 0; i < NB; i++) {
        float s = 0;
        for (int j = 0; j < D; j++) s += Bm[i * D + j] * Bm[i * D + j];
        for (int j = 0; j < D; j++) Bm[i * D + j] /= sqrtf(s);
        bi[i] = i % 17; /* rows 17..22 duplicate 0..5 */
    }
    for (int i = 0; i < NA; i++) {
        pos[i] = (int)dm_rng_below(&r, NB);
        ai[i] = bi[pos[i]];
    }
    float da1[NA * D], da2[NA * D], dB1[NB * D], dB2[NB * D], logits[NB * 2];
    double rl[NA];
    for (int excl = 0; excl < 2; excl++) {
        memset(dB1, 0, sizeof dB1);
        memset(dB2, 0, sizeof dB2);
        for (int i = 0; i < NB * D; i++) dB1[i] = dB2[i] = 0.125f;
        double l1 = F->nce(da1, dB1, A, pos, excl ? ai : NULL, NA, Bm, excl ? bi : NULL, NB, D,
                           1.0f / 0.2f, 0.3f, logits, NB * 2, rl);
        double l2 = Nv->nce(da2, dB2, A, pos, excl ? ai : NULL, NA, Bm, excl ? bi : NULL, NB, D,
                            1.0f / 0.2f, 0.3f, logits, NB * 2, rl);
        double l3 = F->nce(NULL, NULL, A, pos, excl ? ai : NULL, NA, Bm, excl ? bi : NULL, NB, D,
                           1.0f / 0.2f, 0.3f, logits, NB * 2, rl);
        double dg = fmax(tl_maxdiff(da1, da2, NA * D), tl_maxdiff(dB1, dB2, NB * D));
        printf("# kernels: InfoNCE (%s duplicate exclusion, 6 blocks) loss %.9f vs %.9f, gradient "
               "max diff %.2g\n", excl ? "with" : "without", l1, l2, dg);
        NEAR(l1, l2, 1e-5 * fabs(l2), "nce loss fast vs naive");
        NEAR(l3, l1, 0, "nce loss without gradient");
        CHECK(dg < 1e-5, "nce gradients fast vs naive differ by %g", dg);
    }
}

/* ---- 2. fast vs naive model ------------------------------------------------------------------ */

static void test_model_naive(void)
{
    for (int v = 0; v < 3; v++) {
        align_config c;
        small_config(&c, v, v % 2, v == 2);
        tdata t;
        make_data(&t, &c, 12, 6, 8, 40 + v);
        align_model mf, mn;
        align_acts af, an;
        CHECK(align_init(&mf, &c) == DM_OK && align_acts_init(&af, &c) == DM_OK, "init fast");
        c.naive = 1;
        CHECK(align_init(&mn, &c) == DM_OK && align_acts_init(&an, &c) == DM_OK, "init naive");
        align_init_weights(&mf, 3);
        perturb(&mf, 4);
        memcpy(mn.params_mem, mf.params_mem, mf.nparams * sizeof(float));
        align_batch b = full_batch(&t, 1, 9);
        align_losses lf, ln;
        align_zero_grad(&mf);
        align_zero_grad(&mn);
        CHECK(align_train_step(&mf, &af, &b, &lf) == DM_OK, "fast step");
        CHECK(align_train_step(&mn, &an, &b, &ln) == DM_OK, "naive step");
        double dg = tl_maxdiff(mf.grads_mem, mn.grads_mem, mf.nparams);
        double s = tl_maxabs(mn.grads_mem, mn.nparams);
        double dbk = tl_maxdiff(af.dbank_self, an.dbank_self, (size_t)t.B * K * c.d);
        printf("# model %s/%s/%s fast vs naive: loss %.9f vs %.9f, gradient max diff %.2g (max "
               "|g| %.2g), bank gradient %.2g\n",
               act_name[v], fuse_name[v % 2], rank_name[v == 2], lf.total, ln.total, dg, s, dbk);
        NEAR(lf.total, ln.total, 1e-5 * fabs(ln.total), "total loss fast vs naive");
        CHECK(dg <= 1e-5 * fmax(1.0, s), "gradients differ by %g", dg);
        CHECK(dbk <= 1e-5, "bank gradients differ by %g", dbk);
        align_free(&mf);
        align_free(&mn);
        align_acts_free(&af);
        align_acts_free(&an);
        free_data(&t);
    }
}

/* ---- 3. finite differences ------------------------------------------------------------------- */

static double eval_total(align_model *m, align_acts *a, const align_batch *b)
{
    align_losses l;
    int rc = align_eval_loss(m, a, b, &l);
    DM_ASSERT(rc == DM_OK);
    return l.total;
}

/* Central difference of f at *w with steps hs; returns the closest to the analytic g. */
#define FD_TOL(g) (1e-3 + 1e-2 * fabs(g))

static void test_finite_differences(void)
{
    /* Central differences on float weights, the loss accumulated in double by the naive kernels.
     * Error model: truncation O(h^2 f''') plus float rounding of the loss (~1e-7 relative) / h,
     * both near 1e-4 for h = 1e-2. An element passes when |fd - analytic| <= 1e-3 + 1e-2
     * |analytic| for some h in {1e-2, 3e-3, 1e-3, 3e-4}: the smaller steps only matter where the
     * larger one straddles a ReLU kink. A missing or wrong term fails at every step. */
    const double hs[4] = {1e-2, 3e-3, 1e-3, 3e-4};
    const int combos[3][3] = {{ALIGN_ACT_RELU, ALIGN_FUSE_GATE, ALIGN_RANK_SOFTMAX},
                              {ALIGN_ACT_GELU, ALIGN_FUSE_MEAN, ALIGN_RANK_BCE},
                              {ALIGN_ACT_TANH, ALIGN_FUSE_GATE, ALIGN_RANK_BCE}};
    for (int v = 0; v < 3; v++) {
        align_config c;
        small_config(&c, combos[v][0], combos[v][1], combos[v][2]);
        c.naive = 1;
        tdata t;
        make_data(&t, &c, 10, 4, 6, 50 + v);
        align_model m;
        align_acts a;
        CHECK(align_init(&m, &c) == DM_OK && align_acts_init(&a, &c) == DM_OK, "init");
        align_init_weights(&m, 51);
        perturb(&m, 52);
        align_batch b = full_batch(&t, 1, 3); /* keyed modality dropout: fixed for fixed step */
        align_losses l0;
        align_zero_grad(&m);
        CHECK(align_train_step(&m, &a, &b, &l0) == DM_OK, "train step");
        CHECK(l0.nce > 0 && l0.recon > 0 && l0.match > 0 && l0.rank > 0,
              "every loss active (%g %g %g %g)", l0.nce, l0.recon, l0.match, l0.rank);
        float *g = malloc(m.nparams * sizeof(float));
        memcpy(g, m.grads_mem, m.nparams * sizeof(float));
        double worst_all = 0;
        int bad = 0;
        for (int ti = 0; ti < m.ntensors; ti++) {
            const char *name;
            size_t n = align_tensor_info(&m, ti, &name, NULL, NULL);
            double worst = 0, gmax = 0;
            for (size_t i = 0; i < n; i++) {
                size_t j = m.offset[ti] + i;
                float w0 = m.params_mem[j];
                double err = INFINITY, fd = 0;
                for (int q = 0; q < 4 && err > FD_TOL(g[j]); q++) {
                    m.params_mem[j] = (float)(w0 + hs[q]);
                    double hp = (double)m.params_mem[j] - w0, lp = eval_total(&m, &a, &b);
                    m.params_mem[j] = (float)(w0 - hs[q]);
                    double hm = w0 - (double)m.params_mem[j], lm = eval_total(&m, &a, &b);
                    m.params_mem[j] = w0;
                    fd = (lp - lm) / (hp + hm);
                    err = fmin(err, fabs(fd - g[j]));
                }
                gmax = fmax(gmax, fabs(g[j]));
                if (err > FD_TOL(g[j])) {
                    if (bad < 5)
                        printf("# FD mismatch %s %s[%zu]: analytic %.6g fd %.6g\n", act_name[v],
                               name, i, g[j], fd);
                    bad++;
                }
                worst = fmax(worst, err);
            }
            worst_all = fmax(worst_all, worst);
            if (v == 0)
                printf("# FD %s/%s/%s %-14s %4zu elements: max |fd - analytic| %.2g (max |g| "
                       "%.2g)\n", act_name[v], fuse_name[combos[v][1]], rank_name[combos[v][2]],
                       name, n, worst, gmax);
        }
        printf("# FD %s/%s/%s (modality dropout on): every element of %d tensors, max |fd - "
               "analytic| = %.3g\n", act_name[v], fuse_name[combos[v][1]], rank_name[combos[v][2]],
               m.ntensors, worst_all);
        CHECK(bad == 0, "%s: %d parameter gradient elements disagree with finite differences",
              act_name[v], bad);

        /* the bank: this batch is rows lo .. lo + B - 1 of a bank whose other rows come from
         * another batch (another rank); the loss as a function of those other rows */
        tdata o;
        make_data(&o, &c, 9, 4, 0, 60 + v);
        align_acts ao;
        CHECK(align_acts_init(&ao, &c) == DM_OK, "acts");
        align_batch bo = full_batch(&o, 1, 3);
        CHECK(align_forward(&m, &ao, &bo) == DM_OK, "other forward");
        const int lo = 5, G = 9 + t.B, d = c.d;
        const size_t Kd = (size_t)K * d;
        float *zb = calloc((size_t)G * Kd, sizeof(float)), *dbank = calloc((size_t)G * Kd, sizeof(float));
        uint8_t *mb = calloc((size_t)G * K, 1);
        int64_t *ib = calloc((size_t)G, sizeof(int64_t));
        CHECK(align_forward(&m, &a, &b) == DM_OK, "forward");
        for (int j = 0, q = 0; j < G; j++) {
            int own = j >= lo && j < lo + t.B;
            const float *zs = own ? a.z + (size_t)(j - lo) * Kd : ao.z + (size_t)q * Kd;
            const uint8_t *ms = own ? a.mask + (size_t)(j - lo) * K : ao.mask + (size_t)q * K;
            memcpy(zb + (size_t)j * Kd, zs, Kd * sizeof(float));
            memcpy(mb + (size_t)j * K, ms, K);
            ib[j] = own ? t.item[j - lo] : (q == 0 ? t.item[0] : 500 + q); /* one duplicate id */
            if (!own) q++;
        }
        align_bank bank = {G, lo, zb, mb, ib, NULL};
        align_losses lb;
        CHECK(align_loss(&m, &a, &b, &bank, dbank, &lb) == DM_OK, "loss with bank");
        double bworst = 0;
        int bbad = 0, nchk = 0;
        for (int j = 0; j < G; j++) {
            if (j >= lo && j < lo + t.B) continue;
            for (int k = 0; k < K; k++)
                for (int e = 0; e < d; e++) {
                    size_t idx = (size_t)j * Kd + (size_t)k * d + e;
                    float w0 = zb[idx];
                    double err = INFINITY, fd = 0;
                    for (int q = 0; q < 4 && err > FD_TOL(dbank[idx]); q++) {
                        align_losses lp, lm;
                        zb[idx] = (float)(w0 + hs[q]);
                        double hp = (double)zb[idx] - w0;
                        align_loss(&m, &a, &b, &bank, NULL, &lp);
                        zb[idx] = (float)(w0 - hs[q]);
                        double hm = w0 - (double)zb[idx];
                        align_loss(&m, &a, &b, &bank, NULL, &lm);
                        zb[idx] = w0;
                        fd = (lp.total - lm.total) / (hp + hm);
                        err = fmin(err, fabs(fd - dbank[idx]));
                    }
                    if (!mb[(size_t)j * K + k]) CHECK(dbank[idx] == 0, "absent bank row gradient");
                    if (err > FD_TOL(dbank[idx])) {
                        if (bbad < 5)
                            printf("# FD mismatch bank[%d][%d][%d]: analytic %.6g fd %.6g\n", j, k,
                                   e, dbank[idx], fd);
                        bbad++;
                    }
                    bworst = fmax(bworst, err);
                    nchk++;
                }
        }
        printf("# FD %s: %d bank elements of other ranks' rows, max |fd - analytic| = %.3g (max "
               "|g| %.2g)\n", act_name[v], nchk, bworst, tl_maxabs(dbank, (size_t)G * Kd));
        CHECK(bbad == 0, "%d bank gradient elements disagree with finite differences", bbad);
        TL_FREE(zb, dbank, mb, ib);
        align_acts_free(&ao);
        free_data(&o);
        free(g);
        align_free(&m);
        align_acts_free(&a);
        free_data(&t);
    }
}

/* ---- 4. PyTorch parity ----------------------------------------------------------------------- */

static double maxabs_d(const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(b[i]));
    return m;
}

static double worst_torch_grad; /* max over cases of (max diff / max(1, max |g|)) */

/* The case's settings as align.* keys over the key table's defaults (the generator's AdamW betas
 * and eps are the defaults), capacities for its batch. */
static void parity_config(const dm_json *cs, int naive, int dims[K], align_config *c)
{
    const dm_json *jd = dm_json_get(cs, "dims"), *jw = dm_json_get(cs, "w");
    for (int k = 0; k < K; k++) dims[k] = (int)tl_jat(jd, (size_t)k);
    static const char *const wkey[4] = {"w_nce", "w_recon", "w_match", "w_rank"};
    char s[11][96];
    snprintf(s[0], sizeof s[0], "align.dim=%lld", tl_jint(cs, "d"));
    snprintf(s[1], sizeof s[1], "align.hidden=%lld", tl_jint(cs, "hidden"));
    snprintf(s[2], sizeof s[2], "align.act=%s", dm_json_get(cs, "act")->str);
    snprintf(s[3], sizeof s[3], "align.fusion=%s", dm_json_get(cs, "fusion")->str);
    snprintf(s[4], sizeof s[4], "align.rank_loss=%s", dm_json_get(cs, "rank_loss")->str);
    snprintf(s[5], sizeof s[5], "align.negatives=%lld", tl_jint(cs, "n_neg"));
    snprintf(s[6], sizeof s[6], "align.tau=%.17g", tl_jnum(cs, "tau"));
    for (int i = 0; i < 4; i++) {
        double w = 0;
        dm_json_double(dm_json_at(jw, (size_t)i), &w);
        snprintf(s[7 + i], sizeof s[7 + i], "align.%s=%.17g", wkey[i], w);
    }
    const char *sets[12];
    for (int i = 0; i < 11; i++) sets[i] = s[i];
    sets[11] = NULL;
    config_from(c, dims, (int)tl_jint(cs, "dim_user"), sets);
    const int B = (int)tl_jint(cs, "B"), U = (int)tl_jint(cs, "U"), R = (int)tl_jint(cs, "R");
    c->max_batch = B, c->max_users = U, c->max_rank = R, c->max_bank = B;
    c->naive = naive;
}

/* The model's tensor table is the generator's. */
static void parity_tensors(const char *name, const dm_json *cs, const align_model *m)
{
    const dm_json *tt = dm_json_get(cs, "tensors");
    int nt = 0, same = 1;
    for (const dm_json *e = tt ? tt->child : NULL; e; e = e->next, nt++) {
        const char *tn;
        int nd;
        size_t sh[2];
        if (nt >= m->ntensors) { same = 0; break; }
        align_tensor_info(m, nt, &tn, &nd, sh);
        const dm_json *js = dm_json_get(e, "shape");
        same &= !strcmp(tn, dm_json_get(e, "name")->str) && (size_t)nd == js->len;
        for (int q = 0; q < nd && same; q++) same &= (long long)sh[q] == tl_jat(js, (size_t)q);
    }
    CHECK(same && nt == m->ntensors && (long long)m->nparams == tl_jint(cs, "nparams"),
          "%s: tensor table differs from the generator's", name);
}

/* The four losses and the normalisers of the last step against the generator's; returns the
 * largest relative loss difference. */
static double parity_losses(const char *name, const dm_json *cs, const align_losses *l)
{
    const dm_json *jl = dm_json_get(cs, "loss");
    const char *ln[5] = {"total", "nce", "recon", "match", "rank"};
    double lc[5] = {l->total, l->nce, l->recon, l->match, l->rank}, dlmax = 0;
    for (int i = 0; i < 5; i++) {
        double ref = tl_jnum(jl, ln[i]);
        dlmax = fmax(dlmax, fabs(lc[i] - ref) / fmax(1.0, fabs(ref)));
        NEAR(lc[i], ref, 2e-6 * fmax(1.0, fabs(ref)), ln[i]);
    }
    const dm_json *jn = dm_json_get(cs, "norms");
    double nv[4];
    for (int i = 0; i < 4; i++) dm_json_double(dm_json_at(jn, (size_t)i), &nv[i]);
    CHECK(l->n_nce == nv[0] && l->n_recon == nv[1] && l->n_match == nv[2] && l->n_rank == nv[3],
          "%s: normalisers %g %g %g %g vs %g %g %g %g", name, l->n_nce, l->n_recon, l->n_match,
          l->n_rank, nv[0], nv[1], nv[2], nv[3]);
    return dlmax;
}

/* Every gradient tensor against the generator's; returns the worst difference relative to
 * max(1, max |g|). */
static double parity_grads(const char *name, const align_model *m, const double *gref, int naive)
{
    double gworst = 0;
    for (int ti = 0; ti < m->ntensors; ti++) {
        const char *tn;
        size_t n = align_tensor_info(m, ti, &tn, NULL, NULL);
        double dg = tl_maxdiff_ref(m->grads_mem + m->offset[ti], gref + m->offset[ti], n, NULL);
        double s = maxabs_d(gref + m->offset[ti], n);
        gworst = fmax(gworst, dg / fmax(1.0, s));
        if (!naive && !strcmp(name, "relu_gate_softmax"))
            printf("# torch %s %-14s max |g_C - g_torch| %.2g (max |g| %.2g)\n", name, tn, dg, s);
        CHECK(dg <= 1e-5 * fmax(1.0, s), "%s %s: gradient differs from torch by %g", name, tn, dg);
    }
    return gworst;
}

/* The bank gradient and the latents of the step against the generator's; prints them with the
 * loss and gradient differences found before. */
static void parity_latents(const char *dir, const char *name, const align_acts *a, int naive,
                           double dlmax, double gworst)
{
    const int B = a->B, U = a->U, d = a->cfg.d;
    double *dbref = tl_load(dir, name, "_dbank.f64", (size_t)B * K * d * 8);
    double *zref = tl_load(dir, name, "_z.f64", (size_t)B * K * d * 8);
    double *zbref = tl_load(dir, name, "_zb.f64", (size_t)B * d * 8);
    double *huref = tl_load(dir, name, "_hu.f64", (size_t)U * d * 8);
    double ddb = tl_maxdiff_ref(a->dbank_self, dbref, (size_t)B * K * d, NULL);
    double sdb = maxabs_d(dbref, (size_t)B * K * d);
    double dz = tl_maxdiff_ref(a->z, zref, (size_t)B * K * d, NULL), dzb = tl_maxdiff_ref(a->zb, zbref, (size_t)B * d, NULL);
    double dhu = tl_maxdiff_ref(a->hu, huref, (size_t)U * d, NULL);
    printf("# torch %s (%s kernels): max rel loss diff %.2g, max gradient diff %.2g (rel. to "
           "max(1, |g|)), bank gradient %.2g (max %.2g), z %.2g, z_base %.2g, h_u %.2g\n", name,
           naive ? "naive" : "fast", dlmax, gworst, ddb, sdb, dz, dzb, dhu);
    worst_torch_grad = fmax(worst_torch_grad, fmax(gworst, ddb / fmax(1.0, sdb)));
    CHECK(ddb <= 1e-5 * fmax(1.0, sdb), "%s: bank gradient differs from torch by %g", name, ddb);
    CHECK(dz < 1e-5 && dzb < 1e-5 && dhu < 1e-5, "%s: latents differ (%g %g %g)", name, dz, dzb,
          dhu);
    TL_FREE(dbref, zref, zbref, huref);
}

/* Inference reproduces the training latents (no dropout here). */
static void parity_inference(const char *dir, const char *name, align_model *m, align_acts *a,
                             const align_batch *b)
{
    const int B = b->B, U = b->U, d = m->cfg.d;
    double *zbref = tl_load(dir, name, "_zb.f64", (size_t)B * d * 8);
    double *huref = tl_load(dir, name, "_hu.f64", (size_t)U * d * 8);
    float *zi = malloc((size_t)B * d * 4), *hi = malloc((size_t)U * d * 4);
    const float *xc[K];
    for (int k = 0; k < K; k++) xc[k] = b->x[k];
    CHECK(align_item_latents(m, a, xc, b->xrow, b->present, B, zi, NULL) == DM_OK &&
              align_user_latents(m, a, b->r, U, hi) == DM_OK,
          "inference");
    CHECK(tl_maxdiff_ref(zi, zbref, (size_t)B * d, NULL) < 1e-5 && tl_maxdiff_ref(hi, huref, (size_t)U * d, NULL) < 1e-5,
          "%s: inference latents differ from torch", name);
    TL_FREE(zi, hi, zbref, huref);
}

/* Two AdamW steps (the case's lr and weight decay) from the generator's initial weights. */
static void parity_adam(const char *dir, const char *name, const dm_json *adam, align_model *m,
                        align_acts *a, const align_batch *b, const float *slab, const double *gref)
{
    double *ap = tl_load(dir, name, "_adam.f64", m->nparams * 8);
    m->cfg.lr = (float)tl_jnum(adam, "lr");
    m->cfg.weight_decay = (float)tl_jnum(adam, "wd");
    memcpy(m->params_mem, slab, m->nparams * 4);
    memset(m->m_mem, 0, m->nparams * 4);
    memset(m->v_mem, 0, m->nparams * 4);
    m->step = 0;
    align_losses l;
    for (int s = 0; s < (int)tl_jint(adam, "steps"); s++) {
        align_zero_grad(m);
        CHECK(align_train_step(m, a, b, &l) == DM_OK, "adam step");
        align_adam_step(m);
    }
    /* Adam divides by sqrt(v): elements whose true gradient is ~0 take a step of either sign
     * under rounding, so they are skipped (count printed) */
    double da = 0;
    size_t skipped = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        if (fabs(gref[i]) < 1e-6) { skipped++; continue; }
        da = fmax(da, fabs(m->params_mem[i] - ap[i]));
    }
    printf("# torch AdamW (%d steps, lr %.3g, weight decay %.3g): max |w_C - w_torch| = %.3g "
           "(%zu elements with |g| < 1e-6 skipped)\n", (int)tl_jint(adam, "steps"), m->cfg.lr,
           m->cfg.weight_decay, da, skipped);
    CHECK(da < 1e-5, "AdamW parameters differ from torch by %g", da);
    free(ap);
}

static void parity_case(const char *dir, const dm_json *cs, int naive)
{
    const char *name = dm_json_get(cs, "name")->str;
    align_config c;
    int dims[K];
    parity_config(cs, naive, dims, &c);
    align_model m;
    align_acts a;
    if (align_init(&m, &c) != DM_OK || align_acts_init(&a, &c) != DM_OK) {
        CHECK(0, "%s: init: %s", name, dm_error_message());
        return;
    }
    parity_tensors(name, cs, &m);
    const int B = c.max_batch, U = c.max_users, R = c.max_rank;
    float *slab = tl_load(dir, name, "_params.f32", m.nparams * 4);
    memcpy(m.params_mem, slab, m.nparams * 4);
    float *x[K] = {0};
    for (int k = 0; k < K; k++) {
        char suf[32];
        snprintf(suf, sizeof suf, "_x%d.f32", k);
        if (dims[k]) x[k] = tl_load(dir, name, suf, (size_t)B * dims[k] * 4);
    }
    float *r = tl_load(dir, name, "_r.f32", (size_t)U * c.dim_user * 4);
    uint8_t *mask = tl_load(dir, name, "_mask.u8", (size_t)B * K);
    int64_t *xrow = tl_load(dir, name, "_xrow.i64", (size_t)B * 8);
    int64_t *item = tl_load(dir, name, "_item.i64", (size_t)B * 8);
    int32_t *exu = tl_load(dir, name, "_exu.i32", (size_t)R * 4);
    int32_t *exp_ = tl_load(dir, name, "_exp.i32", (size_t)R * 4);
    int32_t *exn = tl_load(dir, name, "_exn.i32", (size_t)R * c.n_neg * 4);
    double *gref = tl_load(dir, name, "_grads.f64", m.nparams * 8);
    align_batch b = {.B = B, .xrow = xrow, .present = mask, .item = item, .U = U, .r = r, .R = R,
                     .ex_user = exu, .ex_pos = exp_, .ex_neg = exn};
    for (int k = 0; k < K; k++) b.x[k] = x[k];
    align_losses l;
    align_zero_grad(&m);
    int rc = align_train_step(&m, &a, &b, &l);
    CHECK(rc == DM_OK, "%s: train step: %s", name, dm_error_message());
    double dlmax = parity_losses(name, cs, &l);
    parity_latents(dir, name, &a, naive, dlmax, parity_grads(name, &m, gref, naive));
    parity_inference(dir, name, &m, &a, &b);
    const dm_json *adam = dm_json_get(cs, "adam");
    if (adam) parity_adam(dir, name, adam, &m, &a, &b, slab, gref);
    free(slab);
    for (int k = 0; k < K; k++) free(x[k]);
    TL_FREE(r, mask, xrow, item, exu, exp_, exn, gref);
    align_free(&m);
    align_acts_free(&a);
}

static void test_torch(void)
{
    int nc = tl_parity("align", "dynmm-align-ref", parity_case, 1, 4);
    if (nc >= 0)
        printf("# torch: %d cases, worst gradient difference over every tensor and the bank %.2g "
               "(tolerance 1e-5 relative to max(1, max |g|))\n", nc, worst_torch_grad);
}

/* ---- 5. data parallel ------------------------------------------------------------------------ */

static void test_shards(void)
{
    for (int parts = 2; parts <= 3; parts++) {
        align_config c;
        small_config(&c, ALIGN_ACT_GELU, ALIGN_FUSE_GATE, ALIGN_RANK_SOFTMAX);
        tdata t;
        make_data(&t, &c, 12, 6, 8, 70 + parts);
        /* rank examples local to a shard: example e lives on shard e % parts */
        size_t ilo[3], ihi[3], ulo[3], uhi[3];
        dm_rng r;
        dm_rng_seed(&r, 71);
        for (int s = 0; s < parts; s++) {
            dm_shard_even((size_t)t.B, parts, s, &ilo[s], &ihi[s]);
            dm_shard_even((size_t)t.U, parts, s, &ulo[s], &uhi[s]);
        }
        for (int e = 0; e < t.R; e++) {
            int s = e % parts;
            t.exu[e] = (int32_t)(ulo[s] + dm_rng_below(&r, uhi[s] - ulo[s]));
            t.exp[e] = (int32_t)(ilo[s] + dm_rng_below(&r, ihi[s] - ilo[s]));
            for (int j = 0; j < c.n_neg; j++)
                t.exn[e * c.n_neg + j] = (int32_t)(ilo[s] + dm_rng_below(&r, ihi[s] - ilo[s]));
        }
        align_model full, part;
        align_acts af, as[3];
        CHECK(align_init(&full, &c) == DM_OK && align_init(&part, &c) == DM_OK &&
                  align_acts_init(&af, &c) == DM_OK,
              "init");
        for (int s = 0; s < parts; s++) CHECK(align_acts_init(&as[s], &c) == DM_OK, "acts");
        align_init_weights(&full, 72);
        perturb(&full, 73);
        memcpy(part.params_mem, full.params_mem, full.nparams * sizeof(float));
        align_batch bf = full_batch(&t, 1, 5); /* keyed modality dropout on */
        align_losses lf;
        align_zero_grad(&full);
        CHECK(align_train_step(&full, &af, &bf, &lf) == DM_OK, "full step");
        const size_t Kd = (size_t)K * c.d;
        /* the "ranks": forward, then the gathered bank */
        float *zbank = malloc((size_t)t.B * Kd * sizeof(float));
        uint8_t *mbank = malloc((size_t)t.B * K);
        float *dsum = calloc((size_t)t.B * Kd, sizeof(float));
        float *dpart = malloc((size_t)t.B * Kd * sizeof(float));
        align_batch bs[3];
        int32_t *exu[3], *exp_[3], *exn[3];
        for (int s = 0; s < parts; s++) {
            align_batch b = bf;
            b.B = (int)(ihi[s] - ilo[s]);
            b.xrow = t.xrow + ilo[s];
            b.present = t.present + ilo[s] * K;
            b.item = t.item + ilo[s];
            b.U = (int)(uhi[s] - ulo[s]);
            b.r = t.r + ulo[s] * c.dim_user;
            exu[s] = malloc((size_t)t.R * 4);
            exp_[s] = malloc((size_t)t.R * 4);
            exn[s] = malloc((size_t)t.R * c.n_neg * 4);
            b.R = 0;
            for (int e = s; e < t.R; e += parts) {
                exu[s][b.R] = t.exu[e] - (int32_t)ulo[s];
                exp_[s][b.R] = t.exp[e] - (int32_t)ilo[s];
                for (int j = 0; j < c.n_neg; j++)
                    exn[s][b.R * c.n_neg + j] = t.exn[e * c.n_neg + j] - (int32_t)ilo[s];
                b.R++;
            }
            b.ex_user = exu[s];
            b.ex_pos = exp_[s];
            b.ex_neg = exn[s];
            b.norm.rank = t.R; /* the global count */
            bs[s] = b;
            CHECK(align_forward(&part, &as[s], &bs[s]) == DM_OK, "shard forward");
            memcpy(zbank + ilo[s] * Kd, as[s].z, (size_t)b.B * Kd * sizeof(float));
            memcpy(mbank + ilo[s] * K, as[s].mask, (size_t)b.B * K);
        }
        CHECK(memcmp(mbank, af.mask, (size_t)t.B * K) == 0 &&
                  memcmp(zbank, af.z, (size_t)t.B * Kd * sizeof(float)) == 0,
              "shard latents and keyed dropout masks differ from the full batch's");
        double lsum = 0, lparts[5] = {0};
        for (int s = 0; s < parts; s++) {
            align_bank bank = {t.B, (int)ilo[s], zbank, mbank, t.item, NULL};
            align_losses l;
            CHECK(align_loss(&part, &as[s], &bs[s], &bank, dpart, &l) == DM_OK, "shard loss");
            for (size_t i = 0; i < (size_t)t.B * Kd; i++) dsum[i] += dpart[i]; /* the reduce */
            lsum += l.total;
            lparts[1] += l.nce, lparts[2] += l.recon, lparts[3] += l.match, lparts[4] += l.rank;
        }
        align_zero_grad(&part);
        for (int s = 0; s < parts; s++) /* the ranks' gradients, summed by the allreduce */
            CHECK(align_backward(&part, &as[s], &bs[s], dsum + ilo[s] * Kd) == DM_OK,
                  "shard backward");
        double d = tl_maxdiff(part.grads_mem, full.grads_mem, full.nparams);
        double sc = tl_maxabs(full.grads_mem, full.nparams);
        double dbk = tl_maxdiff(dsum, af.dbank_self, (size_t)t.B * Kd);
        printf("# %d shards vs full batch (keyed modality dropout on): loss %.9f vs %.9f (nce "
               "%.6f recon %.6f match %.6f rank %.6f), max gradient diff %.2g (max |g| %.2g), "
               "bank gradient %.2g\n", parts, lsum, lf.total, lparts[1], lparts[2], lparts[3],
               lparts[4], d, sc, dbk);
        NEAR(lsum, lf.total, 1e-6 * fabs(lf.total), "sum of shard losses");
        NEAR(lparts[1], lf.nce, 1e-6 * fabs(lf.nce), "sum of shard nce");
        NEAR(lparts[4], lf.rank, 1e-6 * fabs(lf.rank), "sum of shard rank losses");
        CHECK(d <= 1e-6 * sc, "%d shards: gradient sum differs by %g", parts, d);
        CHECK(dbk <= 1e-6, "%d shards: bank gradient sum differs by %g", parts, dbk);
        /* a driver bug: a bank whose rows are not this rank's latents */
        {
            align_bank bad = {t.B, (int)ilo[1] + 1, zbank, mbank, t.item, NULL};
            align_losses l;
            CHECK(align_forward(&part, &as[1], &bs[1]) == DM_OK, "forward");
            CHECK(align_loss(&part, &as[1], &bs[1], &bad, dpart, &l) == DM_EINPUT,
                  "misplaced bank rows accepted");
            dm_error_clear();
        }
        for (int s = 0; s < parts; s++) {
            free(exu[s]);
            free(exp_[s]);
            free(exn[s]);
            align_acts_free(&as[s]);
        }
        TL_FREE(zbank, mbank, dsum, dpart);
        align_free(&full);
        align_free(&part);
        align_acts_free(&af);
        free_data(&t);
    }
}

/* ---- 6. presence ----------------------------------------------------------------------------- */

static void test_presence(void)
{
    /* model A uses audio but no item has it; model B has no audio at all */
    for (int fusion = 0; fusion < 2; fusion++) {
        align_config ca, cb;
        small_config(&ca, ALIGN_ACT_RELU, fusion, ALIGN_RANK_SOFTMAX);
        cb = ca;
        cb.dim_in[ALIGN_AUDIO] = 0;
        tdata t;
        make_data(&t, &ca, 12, 6, 8, 90 + fusion);
        for (int b = 0; b < t.B; b++) t.present[b * K + ALIGN_AUDIO] = 0;
        align_model ma, mb;
        align_acts aa, ab;
        CHECK(align_init(&ma, &ca) == DM_OK && align_acts_init(&aa, &ca) == DM_OK &&
                  align_init(&mb, &cb) == DM_OK && align_acts_init(&ab, &cb) == DM_OK,
              "init");
        align_init_weights(&ma, 91);
        align_init_weights(&mb, 91);
        perturb(&ma, 92);
        perturb(&mb, 92);
        int same_init = 1;
        for (int ti = 0; ti < mb.ntensors; ti++) {
            const char *n;
            size_t sz = align_tensor_info(&mb, ti, &n, NULL, NULL);
            int tj = align_tensor_find(&ma, n);
            same_init &= tj >= 0 &&
                         !memcmp(mb.params_mem + mb.offset[ti], ma.params_mem + ma.offset[tj], sz * 4);
        }
        CHECK(same_init, "a modality's presence changed other tensors' initial weights");
        align_batch ba = full_batch(&t, 1, 11), bb = ba;
        bb.x[ALIGN_AUDIO] = NULL;
        align_losses la, lb;
        align_zero_grad(&ma);
        align_zero_grad(&mb);
        CHECK(align_train_step(&ma, &aa, &ba, &la) == DM_OK, "step with audio");
        CHECK(align_train_step(&mb, &ab, &bb, &lb) == DM_OK, "step without audio");
        CHECK(la.total == lb.total && la.nce == lb.nce && la.recon == lb.recon &&
                  la.n_nce == lb.n_nce && la.n_recon == lb.n_recon,
              "fusion %s: loss with an all-absent modality %.9g vs %.9g", fuse_name[fusion],
              la.total, lb.total);
        double dmax = 0, dabs = 0;
        for (int ti = 0; ti < ma.ntensors; ti++) {
            const char *n;
            size_t sz = align_tensor_info(&ma, ti, &n, NULL, NULL);
            int tj = align_tensor_find(&mb, n);
            if (tj < 0) {
                dabs = fmax(dabs, tl_maxabs(ma.grads_mem + ma.offset[ti], sz));
                continue;
            }
            dmax = fmax(dmax, tl_maxdiff(ma.grads_mem + ma.offset[ti], mb.grads_mem + mb.offset[tj], sz));
        }
        printf("# presence (%s fusion): all-absent audio vs no audio: loss %.9f vs %.9f, max "
               "gradient diff %.2g, max |audio gradient| %.2g\n", fuse_name[fusion], la.total,
               lb.total, dmax, dabs);
        CHECK(dmax == 0 && dabs == 0, "an absent modality changed the gradient (%g, %g)", dmax, dabs);
        /* inference: identical latents; clearing a modality an item lacks changes nothing; clearing
         * one it has changes only that item */
        int n = t.B, d = ca.d;
        float *za = malloc((size_t)n * d * 4), *zb = malloc((size_t)n * d * 4);
        float *zc = malloc((size_t)n * d * 4);
        const float *xa[K], *xb[K];
        for (int k = 0; k < K; k++) xa[k] = ba.x[k], xb[k] = bb.x[k];
        CHECK(align_item_latents(&ma, &aa, xa, t.xrow, t.present, n, za, NULL) == DM_OK &&
                  align_item_latents(&mb, &ab, xb, t.xrow, t.present, n, zb, NULL) == DM_OK,
              "inference");
        CHECK(!memcmp(za, zb, (size_t)n * d * 4), "inference differs with an all-absent modality");
        uint8_t *pr = malloc((size_t)n * K);
        memcpy(pr, t.present, (size_t)n * K);
        int item = -1;
        for (int b = 0; b < n && item < 0; b++)
            if (pr[b * K + ALIGN_VISUAL] && pr[b * K + ALIGN_CF]) item = b;
        CHECK(item >= 0, "no item with visual and cf");
        pr[item * K + ALIGN_VISUAL] = 0;
        CHECK(align_item_latents(&ma, &aa, xa, t.xrow, pr, n, zc, NULL) == DM_OK, "inference");
        int others = 1;
        for (int b = 0; b < n; b++)
            if (b != item) others &= !memcmp(za + (size_t)b * d, zc + (size_t)b * d, (size_t)d * 4);
        CHECK(others && memcmp(za + (size_t)item * d, zc + (size_t)item * d, (size_t)d * 4),
              "dropping a present modality of one item must change that item only");
        TL_FREE(pr, za, zb, zc);
        align_free(&ma);
        align_free(&mb);
        align_acts_free(&aa);
        align_acts_free(&ab);
        free_data(&t);
    }

    /* modality dropout: keep <= present, never empty, rate ~p, keyed, and exactly the documented
     * draws: four uniforms from dm_rng_key(seed, step, item), k dropped when u_k < p, so an absent
     * modality shifts nothing */
    const float p = 0.3f;
    long kept = 0, tot = 0, empty = 0, wrong = 0, rescued = 0;
    for (int64_t it = 0; it < 20000; it++) {
        uint8_t all[K] = {1, 1, 1, 1}, k1[K], k2[K], part[K] = {1, 1, 0, 1}, k3[K];
        align_modality_dropout(p, 5, 9, it, all, k1);
        align_modality_dropout(p, 5, 9, it, all, k2);
        align_modality_dropout(p, 5, 9, it, part, k3);
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(5, 9, (uint64_t)it));
        uint8_t raw[K];
        int nraw = 0, n1 = 0, n3 = 0;
        for (int k = 0; k < K; k++) raw[k] = !(dm_rng_uniform(&r) < p), nraw += raw[k];
        for (int k = 0; k < K; k++) n1 += k1[k], n3 += k3[k];
        empty += n1 == 0 || n3 == 0;
        wrong += memcmp(k1, k2, K) != 0 || k3[ALIGN_VISUAL];
        if (nraw) wrong += memcmp(k1, raw, K) != 0;
        else rescued++, wrong += n1 != 1;
        if (raw[0] || raw[1] || raw[3])
            wrong += k3[0] != raw[0] || k3[1] != raw[1] || k3[3] != raw[3];
        else
            wrong += n3 != 1;
        kept += n1;
        tot += K;
        uint8_t one[K] = {0, 1, 0, 0}, k4[K];
        align_modality_dropout(0.99f, 5, 9, it, one, k4);
        wrong += k4[1] != 1 || k4[0] || k4[2] || k4[3];
    }
    double rate = 1.0 - (double)kept / tot;
    /* P(all four dropped) = p^4 = 0.0081; then one is kept: expected drop rate p - p^4/4 */
    printf("# modality dropout p = %.2f over 20000 items with 4 modalities: drop rate %.4f "
           "(expected %.4f), %ld empty, %ld rescued by the never-all rule, %ld wrong draws\n", p,
           rate, p - pow(p, 4) / 4, empty, rescued, wrong);
    CHECK(empty == 0 && wrong == 0 && rescued > 0, "modality dropout guarantees (%ld %ld)", empty,
          wrong);
    NEAR(rate, p - pow(p, 4) / 4, 0.01, "modality drop rate");
}

/* ---- 7. known answers ------------------------------------------------------------------------ */

static void test_known_answers(void)
{
    align_config c;
    small_config(&c, ALIGN_ACT_RELU, ALIGN_FUSE_MEAN, ALIGN_RANK_SOFTMAX);
    tdata t;
    make_data(&t, &c, 12, 6, 8, 100);
    align_model m;
    align_acts a;
    CHECK(align_init(&m, &c) == DM_OK && align_acts_init(&a, &c) == DM_OK, "init");
    align_init_weights(&m, 101);
    for (size_t i = 0; i < m.nparams; i++) m.params_mem[i] *= 1e-4f; /* tiny weights */
    align_batch b = full_batch(&t, 0, 0);
    align_losses l;
    CHECK(align_eval_loss(&m, &a, &b, &l) == DM_OK, "eval");
    /* every cosine ~ 1 (all z ~ the projector bias): each anchor's loss ~ ln(#its candidates) */
    double expect = 0;
    for (int i = 0; i < t.B; i++)
        for (int k = 0; k < K; k++)
            for (int q = 0; q < K; q++) {
                if (k == q || !a.mask[i * K + k] || !a.mask[i * K + q]) continue;
                int nc = 0;
                for (int j = 0; j < t.B; j++)
                    nc += a.mask[j * K + q] && (j == i || t.item[j] != t.item[i]);
                expect += log(nc);
            }
    expect /= l.n_nce;
    printf("# known answer: InfoNCE with tiny weights %.6f, mean ln(#candidates) %.6f; rank loss "
           "%.6f vs ln(1 + negatives) %.6f\n", l.nce, expect, l.rank, log(1.0 + c.n_neg));
    NEAR(l.nce, expect, 1e-3, "initial InfoNCE");
    NEAR(l.rank, log(1.0 + c.n_neg), 1e-3, "initial rank loss");

    /* a tiny batch overfits (rank examples without conflicts: one per user, the positives items
     * 4..9, the negatives items 0 and 1) */
    t.R = t.U;
    for (int e = 0; e < t.R; e++) {
        t.exu[e] = e;
        t.exp[e] = 4 + e;
        t.exn[e * c.n_neg] = 0;
        t.exn[e * c.n_neg + 1] = 1;
    }
    b = full_batch(&t, 0, 0);
    align_init_weights(&m, 102);
    m.cfg.lr = 0.01f;
    align_losses l0, l1 = {0};
    CHECK(align_eval_loss(&m, &a, &b, &l0) == DM_OK, "eval");
    for (int s = 0; s < 300; s++) {
        align_zero_grad(&m);
        CHECK(align_train_step(&m, &a, &b, &l1) == DM_OK, "step");
        align_adam_step(&m);
    }
    CHECK(align_eval_loss(&m, &a, &b, &l1) == DM_OK, "eval");
    printf("# overfit 12 items, 300 AdamW steps: total %.4f -> %.4f (nce %.4f -> %.4f, recon "
           "%.4f -> %.4f, match %.4f -> %.4f, rank %.4f -> %.4f)\n", l0.total, l1.total, l0.nce,
           l1.nce, l0.recon, l1.recon, l0.match, l1.match, l0.rank, l1.rank);
    CHECK(l1.total < 0.25 * l0.total, "no overfit: %g -> %g", l0.total, l1.total);
    CHECK(l1.rank < 0.05 && l1.match < 0.05 * l0.match && l1.recon < 0.05 * l0.recon,
          "rank %g, match %g, recon %g", l1.rank, l1.match, l1.recon);
    align_free(&m);
    align_acts_free(&a);
    free_data(&t);
}

/* ---- 8. inference and errors ----------------------------------------------------------------- */

static void test_inference(void)
{
    align_config c;
    small_config(&c, ALIGN_ACT_GELU, ALIGN_FUSE_GATE, ALIGN_RANK_BCE);
    tdata t;
    make_data(&t, &c, 12, 6, 8, 110);
    align_model m;
    align_acts a, small;
    CHECK(align_init(&m, &c) == DM_OK && align_acts_init(&a, &c) == DM_OK, "init");
    align_config cs = c;
    cs.max_batch = 5;
    cs.max_users = 4;
    CHECK(align_acts_init(&small, &cs) == DM_OK, "small acts");
    align_init_weights(&m, 111);
    perturb(&m, 112);
    align_batch b = full_batch(&t, 0, 0);
    CHECK(align_forward(&m, &a, &b) == DM_OK, "forward");
    const int d = c.d;
    float *zb = malloc((size_t)t.B * d * 4), *zm = malloc((size_t)t.B * K * d * 4);
    float *hu = malloc((size_t)t.U * d * 4);
    const float *x[K];
    for (int k = 0; k < K; k++) x[k] = t.x[k];
    /* chunks of 5 items and 4 users; the chunked path must agree with the batch forward */
    CHECK(align_item_latents(&m, &small, x, t.xrow, t.present, t.B, zb, zm) == DM_OK &&
              align_user_latents(&m, &small, t.r, t.U, hu) == DM_OK,
          "chunked inference");
    double dz = tl_maxdiff(zb, a.zb, (size_t)t.B * d), dm = tl_maxdiff(zm, a.z, (size_t)t.B * K * d);
    double dh = tl_maxdiff(hu, a.hu, (size_t)t.U * d);
    printf("# inference in chunks of 5 items / 4 users vs one batch: z_base %.2g, z^k %.2g, h %.2g\n",
           dz, dm, dh);
    CHECK(dz < 1e-6 && dm < 1e-6 && dh < 1e-6, "chunked inference differs");
    /* an item with no modality has z_base = 0; a cold item (no cf) gets content only */
    int empty = 1;
    for (int j = 0; j < d; j++) empty &= zb[2 * d + j] == 0.0f;
    CHECK(empty, "an item without modalities must have z_base = 0");
    /* the gate weights are a distribution over the present modalities */
    int okw = 1;
    for (int i = 0; i < t.B; i++) {
        double s = 0;
        int cnt = 0;
        for (int k = 0; k < K; k++) {
            s += a.alpha[i * K + k];
            cnt += a.mask[i * K + k];
            okw &= a.mask[i * K + k] || a.alpha[i * K + k] == 0.0f;
        }
        okw &= cnt ? fabs(s - 1.0) < 1e-6 : s == 0.0;
    }
    CHECK(okw, "fusion weights are not a distribution over the present modalities");

    /* w_nce = 0: the InfoNCE is reported but contributes no gradient */
    {
        align_model m0;
        align_config c0 = c;
        c0.w_nce = 0;
        CHECK(align_init(&m0, &c0) == DM_OK, "init");
        memcpy(m0.params_mem, m.params_mem, m.nparams * 4);
        align_losses l0, l1;
        align_zero_grad(&m0);
        align_zero_grad(&m);
        CHECK(align_train_step(&m0, &a, &b, &l0) == DM_OK && align_train_step(&m, &a, &b, &l1) == DM_OK,
              "steps");
        CHECK(l0.nce == l1.nce && l0.nce > 0 && fabs(l0.total - (l1.total - l1.nce)) < 1e-6,
              "w_nce = 0: nce %g vs %g, total %g vs %g", l0.nce, l1.nce, l0.total, l1.total - l1.nce);
        /* the gradient is linear in the weights: g(w_nce = 0) = g(all) - g(InfoNCE alone) */
        align_model mn;
        align_config cn = c;
        cn.w_recon = cn.w_match = cn.w_rank = 0;
        CHECK(align_init(&mn, &cn) == DM_OK, "init");
        memcpy(mn.params_mem, m.params_mem, m.nparams * 4);
        align_zero_grad(&mn);
        CHECK(align_train_step(&mn, &a, &b, &l1) == DM_OK, "InfoNCE-only step");
        double dl = 0;
        for (size_t i = 0; i < m.nparams; i++)
            dl = fmax(dl, fabs((double)m0.grads_mem[i] - (m.grads_mem[i] - mn.grads_mem[i])));
        CHECK(dl < 1e-5 * fmax(1.0, tl_maxabs(m.grads_mem, m.nparams)),
              "w_nce = 0 gradient differs from the difference by %g", dl);
        align_free(&m0);
        align_free(&mn);
    }

    /* input errors */
    align_batch bad = b;
    int32_t badpos[8];
    memcpy(badpos, t.exp, sizeof badpos);
    badpos[3] = t.B;
    bad.ex_pos = badpos;
    CHECK(align_forward(&m, &a, &bad) == DM_EINPUT, "example outside the batch accepted");
    dm_error_clear();
    bad = b;
    bad.x[ALIGN_TEXT] = NULL;
    CHECK(align_forward(&m, &a, &bad) == DM_EINPUT, "present modality without features accepted");
    dm_error_clear();
    bad = b;
    bad.B = c.max_batch + 1;
    CHECK(align_forward(&m, &a, &bad) == DM_EINPUT, "oversized batch accepted");
    dm_error_clear();
    CHECK(align_forward(&m, &a, &b) == DM_OK, "forward");
    CHECK(align_backward(&m, &a, &b, NULL) == DM_EINTERNAL, "backward without loss accepted");
    dm_error_clear();
    dm_cfg tcfg; /* a temperature of 0 is refused by the key table when the config is read */
    CHECK(dm_cfg_init(&tcfg) == DM_OK, "config");
    CHECK(dm_cfg_set(&tcfg, "align.tau=0") == DM_ECONFIG && strstr(dm_error_message(), "align.tau"), "tau = 0 accepted");
    dm_error_clear();
    dm_cfg_free(&tcfg);
    align_config cc = c;
    cc.max_bank = 3;
    CHECK(align_config_check(&cc) == DM_ECONFIG, "bank smaller than the batch accepted");
    dm_error_clear();
    /* a repeated step is bitwise reproducible */
    align_losses l1, l2;
    float *g1 = malloc(m.nparams * 4);
    align_zero_grad(&m);
    b.train = 1;
    CHECK(align_train_step(&m, &a, &b, &l1) == DM_OK, "step");
    memcpy(g1, m.grads_mem, m.nparams * 4);
    align_zero_grad(&m);
    CHECK(align_train_step(&m, &a, &b, &l2) == DM_OK, "step");
    CHECK(l1.total == l2.total && !memcmp(g1, m.grads_mem, m.nparams * 4),
          "train step not reproducible");
    TL_FREE(g1, zb, zm, hu);
    align_free(&m);
    align_acts_free(&a);
    align_acts_free(&small);
    free_data(&t);
}

/* align_bank.nce: rows flagged 0 take no part in InfoNCE (neither anchor nor negative, nor in
 * N_nce). All flags 1 equals no flags bitwise; a subset's InfoNCE value and its gradient with
 * respect to the latents equal those of a batch made of the flagged rows only. */
static void test_nce_rows(void)
{
    align_config c;
    small_config(&c, ALIGN_ACT_RELU, ALIGN_FUSE_GATE, ALIGN_RANK_SOFTMAX);
    c.modality_dropout = 0.0f;
    align_model m;
    align_acts a, as;
    CHECK(align_init(&m, &c) == DM_OK && align_acts_init(&a, &c) == DM_OK && align_acts_init(&as, &c) == DM_OK, "init");
    align_init_weights(&m, 91);
    perturb(&m, 92);
    tdata t;
    make_data(&t, &c, 10, 4, 5, 93);
    align_batch b = full_batch(&t, 0, 1);
    const int d = c.d, B = t.B;
    const size_t Kd = (size_t)K * d;
    float *db0 = calloc((size_t)B * Kd, sizeof(float)), *db1 = calloc((size_t)B * Kd, sizeof(float));
    float *dbs = calloc((size_t)B * Kd, sizeof(float));
    uint8_t flags[10];
    CHECK(align_forward(&m, &a, &b) == DM_OK, "forward");
    align_bank bank = {B, 0, a.z, a.mask, t.item, NULL};
    align_losses l0, l1, ls;
    CHECK(align_loss(&m, &a, &b, &bank, db0, &l0) == DM_OK, "loss");
    memset(flags, 1, sizeof flags);
    bank.nce = flags;
    CHECK(align_loss(&m, &a, &b, &bank, db1, &l1) == DM_OK, "loss, all flagged");
    CHECK(l0.nce == l1.nce && l0.n_nce == l1.n_nce && l0.total == l1.total && !memcmp(db0, db1, (size_t)B * Kd * sizeof(float)),
          "all rows flagged = no flags");
    /* InfoNCE alone: the flagged rows {0, 2, 3, 5, 9} (row 9 duplicates row 3) */
    m.cfg.w_recon = m.cfg.w_match = m.cfg.w_rank = 0.0f;
    const int sub[5] = {0, 2, 3, 5, 9};
    memset(flags, 0, sizeof flags);
    for (int q = 0; q < 5; q++) flags[sub[q]] = 1;
    CHECK(align_loss(&m, &a, &b, &bank, db1, &l1) == DM_OK, "loss, subset flagged");
    int64_t xr[5], it[5];
    uint8_t pr[5 * K];
    for (int q = 0; q < 5; q++) {
        xr[q] = t.xrow[sub[q]];
        it[q] = t.item[sub[q]];
        memcpy(pr + q * K, t.present + sub[q] * K, K);
    }
    align_batch bs = b;
    bs.B = 5;
    bs.xrow = xr;
    bs.item = it;
    bs.present = pr;
    bs.R = 0;
    CHECK(align_forward(&m, &as, &bs) == DM_OK, "subset forward");
    align_bank bks = {5, 0, as.z, as.mask, it, NULL};
    CHECK(align_loss(&m, &as, &bs, &bks, dbs, &ls) == DM_OK, "subset loss");
    double gd = 0, gz = 0;
    for (int j = 0, q = 0; j < B; j++) {
        if (flags[j]) gd = fmax(gd, tl_maxdiff(db1 + (size_t)j * Kd, dbs + (size_t)(q++) * Kd, Kd));
        else gz = fmax(gz, tl_maxabs(db1 + (size_t)j * Kd, Kd));
    }
    printf("# nce rows: subset InfoNCE %.8f vs batch of the subset %.8f (N_nce %g / %g), dL/dz max diff %.1e, unflagged rows max |dL/dz| %.1e\n",
           l1.nce, ls.nce, l1.n_nce, ls.n_nce, gd, gz);
    CHECK(l1.n_nce == ls.n_nce && l1.n_nce < l0.n_nce, "N_nce counts the flagged rows: %g vs %g", l1.n_nce, ls.n_nce);
    CHECK(fabs(l1.nce - ls.nce) <= 1e-6 * fabs(ls.nce), "subset InfoNCE %g vs %g", l1.nce, ls.nce);
    CHECK(gd <= 1e-6 && gz == 0, "InfoNCE gradient: flagged rows differ by %g, unflagged rows %g", gd, gz);
    free(db0);
    free(db1);
    free(dbs);
    free_data(&t);
    align_acts_free(&a);
    align_acts_free(&as);
    align_free(&m);
}

/* ---- 9. settings from the key table ------------------------------------------------------- */

/* align_config_from: every align.* key lands in its own field (each set to a value no other key
 * has), align.modalities picks the widths, nce_chunk_mb becomes floats, capacities stay the
 * caller's; an unknown modality is refused naming the key. */
static void test_config_from(void)
{
    int dims[K] = {50, 32, 16, 8};
    align_config c;
    const char *sets[] = {"align.dim=17", "align.hidden=23", "align.act=tanh", "align.fusion=mean",
                          "align.rank_loss=bce", "align.negatives=7", "align.tau=0.25", "align.w_nce=2",
                          "align.w_recon=3", "align.w_match=4", "align.w_rank=5",
                          "align.modality_dropout=0.125", "align.lr=0.0625", "align.beta1=0.5",
                          "align.beta2=0.75", "align.eps=0.001", "align.weight_decay=0.375",
                          "align.nce_chunk_mb=2", "align.modalities=audio,text", NULL};
    config_from(&c, dims, 40, sets);
    CHECK(c.dim_in[ALIGN_CF] == 0 && c.dim_in[ALIGN_TEXT] == 32 && c.dim_in[ALIGN_VISUAL] == 0 &&
              c.dim_in[ALIGN_AUDIO] == 8 && c.dim_user == 40,
          "widths %d %d %d %d, user %d", c.dim_in[0], c.dim_in[1], c.dim_in[2], c.dim_in[3], c.dim_user);
    CHECK(c.d == 17 && c.hidden == 23 && c.act == ALIGN_ACT_TANH && c.fusion == ALIGN_FUSE_MEAN &&
              c.rank_loss == ALIGN_RANK_BCE && c.n_neg == 7,
          "d %d hidden %d act %d fusion %d rank_loss %d negatives %d", c.d, c.hidden, c.act, c.fusion,
          c.rank_loss, c.n_neg);
    CHECK(c.tau == 0.25f && c.w_nce == 2.0f && c.w_recon == 3.0f && c.w_match == 4.0f &&
              c.w_rank == 5.0f && c.modality_dropout == 0.125f,
          "tau %g weights %g %g %g %g dropout %g", c.tau, c.w_nce, c.w_recon, c.w_match, c.w_rank,
          c.modality_dropout);
    CHECK(c.lr == 0.0625f && c.beta1 == 0.5f && c.beta2 == 0.75f && c.eps == 0.001f &&
              c.weight_decay == 0.375f,
          "AdamW %g %g %g %g %g", c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
    CHECK(c.chunk_floats == (size_t)2 * 1048576 / 4, "chunk_floats %zu for 2 MiB", c.chunk_floats);
    CHECK(c.max_batch == 0 && c.max_users == 0 && c.max_rank == 0 && c.max_bank == 0 && !c.naive,
          "capacities are the caller's");
    dm_cfg cfg;
    CHECK(dm_cfg_init(&cfg) == DM_OK && dm_cfg_set(&cfg, "align.modalities=text,smell") == DM_OK, "cfg");
    dm_error_clear();
    int rc = align_config_from(&cfg, dims, 40, &c);
    const char *msg = dm_error_message();
    CHECK(rc == DM_ECONFIG && strstr(msg, "align.modalities") && strstr(msg, "'smell'"),
          "unknown modality: rc %d, message '%s'", rc, msg);
    dm_error_clear();
    dm_cfg_free(&cfg);
}

int main(void)
{
    test_kernels();
    test_model_naive();
    test_finite_differences();
    test_torch();
    test_shards();
    test_presence();
    test_known_answers();
    test_inference();
    test_nce_rows();
    test_config_from();
    return tap_done("align");
}
