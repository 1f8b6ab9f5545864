/* test_adapter.c: the online adapter (src/adapter): known answers, optimised vs naive kernels,
 * finite-difference gradients of every loss term for every tensor, the per-example Fisher against
 * a brute-force loop, shard sums, ablation switches, EMA, the reservoir buffer and batch plans,
 * window summaries (naive twin, a hand-worked window, NumPy), the base latents' RMS norm, balancing
 * and recent taste (naive twins, a hand-worked user), the fixed-point chunk sums (bitwise over
 * simulated rank counts, against float sums), parity with PyTorch (tests/reference/gen_adapter.py,
 * through DM_REF_DIR), and the settings from the key table (adapter_config_from).
 */
#include "../../src/adapter/adapter.h"
#include "../../src/adapter/adapter_chunks.h"
#include "../../src/adapter/adapter_latents.h"
#include "../../src/adapter/adapter_kernels.h"
#include "../../src/adapter/adapter_window.h"
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/core/shard.h"
#include "../../src/nn/gemm.h"
#include "tap.h"
#include "testlib.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small random world -------------------------------------------------------------------- */

typedef struct {
    adapter_config c;
    float *e_cf, *z_base, *s_item, *r, *h_base, *s_user;
    int32_t *user, *pos, *neg; /* a batch of c.max_batch examples */
    adapter_tables t;
} world;

/* An adapter_config from the key table's defaults (dm_cfg_init) with the given assignments
 * ("adapter.hidden=12", ...; NULL-terminated); the sizes are left to the caller. */
static void config_from(adapter_config *c, const char *const *sets)
{
    dm_cfg cfg;
    int ok = dm_cfg_init(&cfg) == DM_OK;
    for (size_t i = 0; ok && sets && sets[i]; i++) ok = dm_cfg_set(&cfg, sets[i]) == DM_OK;
    CHECK(ok, "config from the keys: %s", dm_error_message());
    adapter_config_from(&cfg, c);
    dm_cfg_free(&cfg);
}

/* the sizes, which no adapter.* key sets */
static void set_sizes(adapter_config *c, int n_items, int n_users, int d_cf, int d, int ds_item, int ds_user,
                      int max_batch)
{
    c->n_items = n_items;
    c->n_users = n_users;
    c->d_cf = d_cf;
    c->d = d;
    c->ds_item = ds_item;
    c->ds_user = ds_user;
    c->max_batch = max_batch;
}

static void small_config(adapter_config *c)
{
    const char *sets[] = {"adapter.hidden=12", "adapter.negatives=3", "adapter.serve_rows=5",
                          "adapter.sigma=0.8", "adapter.zero_init=false", NULL};
    config_from(c, sets);
    set_sizes(c, 19, 8, 5, 4, 4, 7, 12);
}

static void world_make(world *w, const adapter_config *c, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->c = *c;
    dm_rng g;
    dm_rng_seed(&g, seed);
    w->e_cf = tl_randn_new(&g, (size_t)c->n_items * c->d_cf, 1.0);
    w->z_base = tl_randn_new(&g, (size_t)c->n_items * c->d, 1.0);
    w->s_item = tl_randn_new(&g, (size_t)c->n_items * c->ds_item, 1.0);
    w->r = tl_randn_new(&g, (size_t)c->n_users * c->d_cf, 1.0);
    w->h_base = tl_randn_new(&g, (size_t)c->n_users * c->d, 1.0);
    w->s_user = tl_randn_new(&g, (size_t)c->n_users * c->ds_user, 1.0);
    const int B = c->max_batch, K = c->negatives;
    w->user = malloc(B * sizeof(int32_t));
    w->pos = malloc(B * sizeof(int32_t));
    w->neg = malloc((size_t)B * K * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        w->user[b] = (int32_t)dm_rng_below(&g, c->n_users);
        w->pos[b] = (int32_t)dm_rng_below(&g, c->n_items);
        for (int k = 0; k < K; k++) w->neg[b * K + k] = (int32_t)dm_rng_below(&g, c->n_items);
    }
    if (B > 3 && K > 1) { /* duplicates on purpose: a repeated user, an accidental hit */
        w->user[3] = w->user[1];
        w->neg[2 * K + 1] = w->pos[2];
        w->pos[3] = w->pos[0];
    }
    w->t = (adapter_tables){w->e_cf, w->z_base, w->s_item, w->r, w->h_base, w->s_user};
}

static void world_free(world *w)
{
    TL_FREE(w->e_cf, w->z_base, w->s_item, w->r, w->h_base, w->s_user, w->user, w->pos, w->neg);
}

static adapter_batch wbatch(const world *w, int lo, int hi, double norm)
{
    return (adapter_batch){hi - lo, w->user + lo, w->pos + lo, w->neg + (size_t)lo * w->c.negatives,
                           norm};
}

static int model_make(adapter *m, adapter_acts *a, const adapter_config *c, uint64_t seed)
{
    if (adapter_init(m, c) != DM_OK || adapter_acts_init(a, c) != DM_OK) return 1;
    adapter_init_weights(m, seed);
    /* move the gate bias off zero so the gate's derivative is not symmetric */
    m->params.item.ca[0] = 0.4f;
    m->params.user.ca[0] = -0.3f;
    memcpy(m->ema_mem, m->params_mem, m->nparams * sizeof(float));
    return 0;
}

static void model_free(adapter *m, adapter_acts *a)
{
    adapter_free(m);
    adapter_acts_free(a);
}

/* ---- 1. known answers ------------------------------------------------------------------------ */

static void test_zero_init(void)
{
    adapter_config c;
    small_config(&c);
    c.zero_init = 1;
    world w;
    world_make(&w, &c, 1);
    adapter m;
    adapter_acts a;
    CHECK(model_make(&m, &a, &c, 2) == 0, "init");
    CHECK(tl_maxabs(m.params.item.w2, (size_t)c.d * c.hidden) == 0 && m.params.user.b2[0] == 0,
          "zero_init leaves W2/b2 at zero");
    CHECK(tl_maxabs(m.params.item.w1, (size_t)c.hidden * m.dx_item) > 0, "W1 initialised");
    float *z = malloc((size_t)c.n_items * c.d * sizeof(float));
    float *res = malloc((size_t)c.n_items * c.d * sizeof(float));
    float *h = malloc((size_t)c.n_users * c.d * sizeof(float));
    CHECK(adapter_item_latents(&m, &a, &w.t, 1, NULL, c.n_items, z, res) == DM_OK, "item latents");
    CHECK(adapter_user_latents(&m, &a, &w.t, 1, NULL, c.n_users, h, NULL) == DM_OK, "user latents");
    CHECK(memcmp(z, w.z_base, (size_t)c.n_items * c.d * sizeof(float)) == 0,
          "zero last layer: z = z_base exactly");
    CHECK(memcmp(h, w.h_base, (size_t)c.n_users * c.d * sizeof(float)) == 0,
          "zero last layer: h = h_base exactly");
    CHECK(tl_maxabs(res, (size_t)c.n_items * c.d) == 0, "zero residual");
    /* the first step still moves W2 (its gradient dz (x) hact is non-zero), not W1 */
    adapter_batch b = wbatch(&w, 0, c.max_batch, 0);
    adapter_loss l;
    adapter_zero_grad(&m);
    CHECK(adapter_train_step(&m, &a, &w.t, &b, &l) == DM_OK, "step");
    CHECK(tl_maxabs(m.grads.item.w2, (size_t)c.d * c.hidden) > 0, "W2 gradient non-zero");
    CHECK(tl_maxabs(m.grads.item.w1, (size_t)c.hidden * m.dx_item) == 0, "W1 gradient zero at start");
    CHECK(l.kl == 0, "KL zero when z = z_base (%g)", l.kl);
    /* same seed, same weights */
    adapter m2;
    adapter_acts a2;
    CHECK(model_make(&m2, &a2, &c, 2) == 0, "init 2");
    CHECK(memcmp(m.params_mem, m2.params_mem, m.nparams * 4) == 0, "init is a function of the seed");
    free(z);
    free(res);
    free(h);
    model_free(&m, &a);
    model_free(&m2, &a2);
    world_free(&w);
}

/* ---- 2. optimised vs naive kernels ----------------------------------------------------------- */

static void test_fast_vs_naive(void)
{
    double worst = 0;
    for (int loss = 0; loss < 2; loss++)
        for (int gate = 0; gate < 2; gate++) {
            adapter_config c;
            small_config(&c);
            c.loss = loss;
            c.gate = gate;
            world w;
            world_make(&w, &c, 10 + loss * 2 + gate);
            adapter mf, mn;
            adapter_acts af, an;
            adapter_config cn = c;
            cn.naive = 1;
            CHECK(model_make(&mf, &af, &c, 3) == 0 && model_make(&mn, &an, &cn, 3) == 0, "init");
            adapter_batch b = wbatch(&w, 0, c.max_batch, 17);
            adapter_loss lf, ln;
            adapter_zero_grad(&mf);
            adapter_zero_grad(&mn);
            CHECK(adapter_train_step(&mf, &af, &w.t, &b, &lf) == DM_OK &&
                      adapter_train_step(&mn, &an, &w.t, &b, &ln) == DM_OK,
                  "steps");
            NEAR(lf.rec, ln.rec, 1e-6 * fabs(ln.rec) + 1e-7, "rec loss fast vs naive");
            NEAR(lf.kl, ln.kl, 1e-6 * fabs(ln.kl) + 1e-7, "kl loss fast vs naive");
            double gm = tl_maxabs(mn.grads_mem, mn.nparams), d = 0;
            for (size_t j = 0; j < mn.nparams; j++)
                d = fmax(d, fabs(mf.grads_mem[j] - mn.grads_mem[j]));
            CHECK(d <= 1e-5 * gm, "loss %d gate %d: gradients fast vs naive differ by %g (max %g)",
                  loss, gate, d, gm);
            worst = fmax(worst, d / gm);
            /* serving latents */
            float *zf = malloc((size_t)c.n_items * c.d * 4), *zn = malloc((size_t)c.n_items * c.d * 4);
            adapter_item_latents(&mf, &af, &w.t, 0, NULL, c.n_items, zf, NULL);
            adapter_item_latents(&mn, &an, &w.t, 0, NULL, c.n_items, zn, NULL);
            double dz = 0;
            for (size_t j = 0; j < (size_t)c.n_items * c.d; j++) dz = fmax(dz, fabs(zf[j] - zn[j]));
            CHECK(dz < 1e-5, "latents fast vs naive differ by %g", dz);
            free(zf);
            free(zn);
            model_free(&mf, &af);
            model_free(&mn, &an);
            world_free(&w);
        }
    printf("# fast vs naive kernels: max relative gradient difference %.2g\n", worst);
}

/* ---- 3. finite differences ------------------------------------------------------------------- */

static double total_loss(adapter *m, adapter_acts *a, const world *w, const adapter_batch *b)
{
    adapter_loss l;
    adapter_eval_loss(m, a, &w->t, b, &l);
    return l.rec + l.kl;
}

/* Signs of every ReLU input of the last forward (item rows, then user rows) into sg; returns the
 * count. Two evaluations with different sign patterns straddle a kink of the loss. */
static size_t relu_signs(const adapter_acts *a, int H, uint8_t *sg)
{
    size_t n = 0;
    for (size_t j = 0; j < (size_t)a->item.N * H; j++) sg[n++] = a->item.pre[j] > 0;
    for (size_t j = 0; j < (size_t)a->user.N * H; j++) sg[n++] = a->user.pre[j] > 0;
    return n;
}

static void test_finite_differences(void)
{
    /* Central differences on the float weights with the naive kernels (double accumulation).
     * Error model: truncation O(h^2) plus the float rounding of the loss (~1e-7 relative) / h.
     * An element passes when |fd - analytic| <= 1e-3 + 1e-2 |analytic| for some h in {1e-2, 3e-3,
     * 1e-3}. A step whose two evaluations see different ReLU sign patterns straddles a kink, where
     * a difference quotient is not a derivative: such steps are skipped, and an element whose every
     * step straddles one is counted (and must stay rare). A missing or wrong term fails at every
     * step. */
    const double hs[3] = {1e-2, 3e-3, 1e-3};
    int kinks_all = 0, elems_all = 0;
    for (int loss = 0; loss < 2; loss++)
        for (int gate = 0; gate < 2; gate++)
            for (int kl = 0; kl < 2; kl++) {
                adapter_config c;
                small_config(&c);
                c.loss = loss;
                c.gate = gate;
                c.kl = kl;
                c.naive = 1;
                c.max_batch = 6;
                world w;
                world_make(&w, &c, 40 + loss * 4 + gate * 2 + kl);
                adapter m;
                adapter_acts a;
                CHECK(model_make(&m, &a, &c, 41) == 0, "init");
                adapter_batch b = wbatch(&w, 0, c.max_batch, 7.5);
                adapter_loss l;
                adapter_zero_grad(&m);
                CHECK(adapter_train_step(&m, &a, &w.t, &b, &l) == DM_OK, "step");
                CHECK(kl ? l.kl > 0 : l.kl == 0, "KL term present iff switched on (%g)", l.kl);
                float *g = malloc(m.nparams * sizeof(float));
                memcpy(g, m.grads_mem, m.nparams * sizeof(float));
                const size_t ns = (size_t)(a.item.N + a.user.N) * c.hidden;
                uint8_t *sp = malloc(ns), *sm = malloc(ns);
                double worst_all = 0;
                int bad = 0, kinks = 0;
                for (int k = 0; k < ADAPTER_NTENSORS; k++) {
                    const char *name;
                    size_t n = adapter_tensor_info(&m.cfg, k, &name, NULL, NULL), nz = 0;
                    double worst = 0, gmax = 0;
                    for (size_t i = 0; i < n; i++) {
                        size_t j = m.offset[k] + i;
                        float w0 = m.params_mem[j];
                        double err = INFINITY, fd = 0;
                        int tried = 0;
                        for (int q = 0; q < 3 && err > 1e-3 + 1e-2 * fabs(g[j]); q++) {
                            m.params_mem[j] = (float)(w0 + hs[q]);
                            double hp = (double)m.params_mem[j] - w0, lp = total_loss(&m, &a, &w, &b);
                            relu_signs(&a, c.hidden, sp);
                            m.params_mem[j] = (float)(w0 - hs[q]);
                            double hm = w0 - (double)m.params_mem[j], lm = total_loss(&m, &a, &w, &b);
                            relu_signs(&a, c.hidden, sm);
                            m.params_mem[j] = w0;
                            if (memcmp(sp, sm, ns)) continue; /* straddles a kink */
                            tried++;
                            fd = (lp - lm) / (hp + hm);
                            err = fmin(err, fabs(fd - g[j]));
                        }
                        gmax = fmax(gmax, fabs(g[j]));
                        nz += g[j] != 0;
                        if (!tried) {
                            kinks++;
                            continue;
                        }
                        if (err > 1e-3 + 1e-2 * fabs(g[j])) {
                            if (bad < 5)
                                printf("# FD mismatch loss %d gate %d kl %d %s[%zu]: analytic %.6g "
                                       "fd %.6g\n", loss, gate, kl, name, i, g[j], fd);
                            bad++;
                        }
                        worst = fmax(worst, err);
                    }
                    if (!gate && (k % 6 == 4 || k % 6 == 5))
                        CHECK(gmax == 0, "no gate: %s gradient is %g, expected 0", name, gmax);
                    else
                        CHECK(nz > 0, "%s: every gradient element is zero (untested)", name);
                    worst_all = fmax(worst_all, worst);
                    if (loss == 0 && gate == 1 && kl == 1)
                        printf("# FD softmax+gate+kl %-8s %4zu elements: max |fd - analytic| %.2g "
                               "(max |g| %.2g)\n", name, n, worst, gmax);
                }
                printf("# FD %s gate %d kl %d: every element of every tensor, max |fd - analytic| "
                       "= %.3g (%d of %zu elements only at ReLU kinks)\n", loss ? "bce" : "softmax",
                       gate, kl, worst_all, kinks, m.nparams);
                CHECK(bad == 0, "%d gradient elements disagree with finite differences", bad);
                kinks_all += kinks;
                elems_all += (int)m.nparams;
                free(sp);
                free(sm);
                free(g);
                model_free(&m, &a);
                world_free(&w);
            }
    CHECK(kinks_all * 50 < elems_all, "%d of %d elements untestable at ReLU kinks", kinks_all,
          elems_all);
    /* EWC: the gradient 2 lambda F (theta - theta*) against differences of the loss (double) */
    adapter_config c;
    small_config(&c);
    c.lambda_ewc = 0.7f;
    adapter m;
    adapter_acts a;
    CHECK(model_make(&m, &a, &c, 50) == 0, "init");
    dm_rng g;
    dm_rng_seed(&g, 51);
    for (size_t j = 0; j < m.nparams; j++) {
        m.fisher_mem[j] = (float)dm_rng_uniform(&g);
        m.anchor_mem[j] = m.params_mem[j] + (float)(0.2 * dm_rng_normal(&g));
    }
    CHECK(adapter_ewc_loss(&m) == 0, "EWC is off before the first Fisher commit");
    m.has_fisher = 1;
    float *eg = calloc(m.nparams, sizeof(float));
    adapter_ewc_grad(&m, eg);
    double worst = 0;
    for (size_t j = 0; j < m.nparams; j++) {
        float w0 = m.params_mem[j];
        m.params_mem[j] = w0 + 1e-2f;
        double hp = (double)m.params_mem[j] - w0, lp = adapter_ewc_loss(&m);
        m.params_mem[j] = w0 - 1e-2f;
        double hm = w0 - (double)m.params_mem[j], lm = adapter_ewc_loss(&m);
        m.params_mem[j] = w0;
        worst = fmax(worst, fabs((lp - lm) / (hp + hm) - eg[j]));
    }
    printf("# FD EWC: %zu elements, max |fd - analytic| = %.3g (max |g| %.3g)\n", m.nparams, worst,
           tl_maxabs(eg, m.nparams));
    CHECK(worst < 1e-4, "EWC gradient differs from finite differences by %g", worst);
    free(eg);
    model_free(&m, &a);
}

/* ---- 4. Fisher ------------------------------------------------------------------------------- */

static void test_fisher(void)
{
    for (int loss = 0; loss < 2; loss++)
        for (int gate = 0; gate < 2; gate++)
            for (int naive = 0; naive < 2; naive++) {
                adapter_config c;
                small_config(&c);
                c.loss = loss;
                c.gate = gate;
                c.naive = naive;
                world w;
                world_make(&w, &c, 60 + loss * 2 + gate);
                adapter m;
                adapter_acts a;
                CHECK(model_make(&m, &a, &c, 61) == 0, "init");
                const double S = 20; /* a global sample larger than this shard */
                adapter_batch b = wbatch(&w, 0, c.max_batch, S);
                float *brute = calloc(m.nparams, sizeof(float));
                adapter_fisher_begin(&m);
                CHECK(adapter_fisher_accumulate_naive(&m, &a, &w.t, &b) == DM_OK, "brute force");
                memcpy(brute, m.fisher_acc, m.nparams * sizeof(float));
                adapter_fisher_begin(&m);
                CHECK(adapter_fisher_accumulate(&m, &a, &w.t, &b) == DM_OK, "fisher");
                double d = 0, fm = tl_maxabs(brute, m.nparams);
                for (size_t j = 0; j < m.nparams; j++) d = fmax(d, fabs(m.fisher_acc[j] - brute[j]));
                CHECK(d <= 1e-5 * fm && fm > 0, "Fisher vs brute force: %g (max %g)", d, fm);
                if (!naive)
                    printf("# Fisher %s gate %d: batched vs per-example loop max diff %.2g (max F "
                           "%.2g)\n", loss ? "bce" : "softmax", gate, d, fm);
                /* commit: F = decay F + acc, anchor = theta, EWC on */
                m.cfg.fisher_decay = 0.5f;
                for (size_t j = 0; j < m.nparams; j++) m.fisher_mem[j] = 1.0f;
                adapter_fisher_commit(&m);
                CHECK(m.has_fisher && m.fisher_mem[0] == 0.5f + m.fisher_acc[0] &&
                          memcmp(m.anchor_mem, m.params_mem, m.nparams * 4) == 0,
                      "commit");
                CHECK(adapter_ewc_loss(&m) == 0, "EWC zero at the anchor");
                free(brute);
                model_free(&m, &a);
                world_free(&w);
            }
}

/* ---- 5. shards ------------------------------------------------------------------------------- */

/* How far the shard sums of the losses may be from the full batch's, derived from the rounding
 * (u = 2^-24, gamma_n = n u / (1 - n u); first order in u, so the float bounds below are doubled
 * to cover the neglected O(u^2) terms and the double-precision evaluation of each loss, ~1e-16
 * relative).
 *
 * With OpenBLAS a row's result depends on the other rows of its sgemm call, so a shard computes
 * its users' and items' latents with other roundings than the full batch. Each element of
 * y = W x + b (inner length n) lies within gamma_{n+1} (|W||x| + |b|) of the exact value in either
 * call (any summation order or blocking, FMA or not), so the two differ by at most twice that.
 * The rest is the same code on both sides; per operation it adds the spread of its inputs times
 * its slope, and one rounding of its result on each side: relu (slope 1, exact), the gate's
 * sigmoid (slope 1/4; expf, 1 + e and the division: 4 roundings), a g, z = z_base + a g, the score
 * s = h . z (a float dot of length d: 2 gamma_d sum |h||z|), then the loss of example b: softmax
 * |dl/ds_k| sums to 2 (1 - p_0) <= 2, bce has |dl/ds_k| <= 1, so |dl_b| <= 2 sum_k |ds_bk|; and
 * the KL row occ |a g|^2 / (2 sigma^2) moves by occ sum_c 2 |a g_c| d(a g)_c / (2 sigma^2). Finally
 * the double sums: n terms, all positive (both losses are), regrouped by shard, move by at most
 * (n + parts) eps_64 times their total.
 *
 * In reproducible mode (nn_set_reproducible) every row is rounded alike in any call, so only the
 * double sums remain. Either tolerance must stay far below a shard's own share (the check would
 * then miss a shard dropped or counted twice); the caller checks that too. */
static double gam(int n)
{
    const double u = 0x1p-24;
    return n * u / (1.0 - n * u);
}

/* spread of row r's latent z (or h) and of its residual delta = a g, each (d) */
static void row_spread(const adapter_side *p, const adapter_side_acts *s, int r, int Dx, int H,
                       int d, int gate, double *dz, double *ddl)
{
    const double u = 0x1p-24;
    const float *x = s->x + (size_t)r * Dx, *h = s->hact + (size_t)r * H, *g = s->g + (size_t)r * d;
    double dh[H];
    for (int j = 0; j < H; j++) { /* pre = W1 x + b1, relu */
        double P = fabs(p->b1[j]);
        for (int i = 0; i < Dx; i++) P += fabs(p->w1[(size_t)j * Dx + i]) * fabs(x[i]);
        dh[j] = 2 * gam(Dx + 1) * P;
    }
    const double a = s->a[r];
    double da = 0;
    if (gate) { /* a = sigmoid(w_a . x + c_a) */
        double P = fabs(p->ca[0]);
        for (int i = 0; i < Dx; i++) P += fabs(p->wa[i]) * fabs(x[i]);
        da = 0.25 * 2 * gam(Dx + 1) * P + 2 * 4 * u * a;
    }
    for (int o = 0; o < d; o++) { /* g = W2 hact + b2 */
        double P = fabs(p->b2[o]), L = 0;
        for (int j = 0; j < H; j++) {
            P += fabs(p->w2[(size_t)o * H + j]) * h[j];
            L += fabs(p->w2[(size_t)o * H + j]) * dh[j];
        }
        const double dg = 2 * gam(H + 1) * P + L;
        ddl[o] = fabs(a) * dg + fabs(g[o]) * da + 2 * u * fabs(a * g[o]);
        dz[o] = ddl[o] + 2 * u * fabs(s->z[(size_t)r * d + o]);
    }
}

/* Tolerances (the derivation above) for the rec and KL sums of a batch split into `parts` shards,
 * from the full batch's activations in a (a just-run train step). scale = 1 / norm. */
static void shard_tolerances(const adapter *m, const adapter_acts *a, int parts, double rec,
                             double kl, double *tol_rec, double *tol_kl)
{
    const adapter_config *c = &m->cfg;
    const int d = c->d, H = c->hidden, K1 = c->negatives + 1, B = a->B;
    const double scale = (float)(1.0 / B), eps = DBL_EPSILON;
    const adapter_side_acts *S[2] = {&a->item, &a->user};
    const adapter_side *P[2] = {&m->params.item, &m->params.user};
    const int Dx[2] = {m->dx_item, m->dx_user};
    const float su = c->sigma_user > 0.0f ? c->sigma_user : c->sigma;
    const double inv_s2[2] = {1.0f / (c->sigma * c->sigma), 1.0f / (su * su)};
    double *dz[2], *ddl[2], tk = 0;
    for (int q = 0; q < 2; q++) {
        const int N = S[q]->N;
        dz[q] = malloc(((size_t)N * d + 1) * sizeof(double));
        ddl[q] = malloc(((size_t)N * d + 1) * sizeof(double));
        for (int r = 0; r < N; r++) {
            row_spread(P[q], S[q], r, Dx[q], H, d, c->gate, dz[q] + (size_t)r * d,
                       ddl[q] + (size_t)r * d);
            double dq = 0;
            for (int o = 0; o < d; o++) {
                const double dl = fabs((double)S[q]->a[r] * S[q]->g[(size_t)r * d + o]);
                dq += 2 * dl * ddl[q][(size_t)r * d + o];
            }
            tk += 0.5 * inv_s2[q] * scale * S[q]->occ[r] * dq;
        }
    }
    double tr = 0;
    for (int e = 0; e < B; e++) {
        const int u = a->ex_u[e];
        const float *h = a->user.z + (size_t)u * d;
        const double *dh = dz[1] + (size_t)u * d;
        double dsum = 0;
        for (int k = 0; k < K1; k++) {
            const int i = a->ex_i[(size_t)e * K1 + k];
            const float *z = a->item.z + (size_t)i * d;
            const double *dzi = dz[0] + (size_t)i * d;
            double ds = 0, mag = 0;
            for (int o = 0; o < d; o++) {
                ds += fabs(h[o]) * dzi[o] + fabs(z[o]) * dh[o];
                mag += fabs(h[o]) * fabs(z[o]);
            }
            dsum += ds + 2 * gam(d) * mag;
        }
        tr += 2 * dsum;
    }
    *tol_rec = 2 * scale * tr + (B + parts) * eps * rec;
    *tol_kl = 2 * tk + (2 * (a->item.N + a->user.N) + parts) * eps * kl;
    for (int q = 0; q < 2; q++) {
        free(dz[q]);
        free(ddl[q]);
    }
}

static void test_shards(void)
{
    for (int loss = 0; loss < 2; loss++) {
        adapter_config c;
        small_config(&c);
        c.loss = loss;
        world w;
        world_make(&w, &c, 70 + loss);
        adapter m;
        adapter_acts a;
        CHECK(model_make(&m, &a, &c, 71) == 0, "init");
        const int G = c.max_batch;
        adapter_batch b = wbatch(&w, 0, G, G);
        adapter_loss lf;
        adapter_zero_grad(&m);
        CHECK(adapter_train_step(&m, &a, &w.t, &b, &lf) == DM_OK, "full");
        double tol_rec[4], tol_kl[4];
        for (int parts = 2; parts <= 3; parts++)
            shard_tolerances(&m, &a, parts, lf.rec, lf.kl, &tol_rec[parts], &tol_kl[parts]);
        float *full = malloc(m.nparams * sizeof(float)), *fis = malloc(m.nparams * sizeof(float));
        memcpy(full, m.grads_mem, m.nparams * sizeof(float));
        adapter_fisher_begin(&m);
        adapter_fisher_accumulate(&m, &a, &w.t, &b);
        memcpy(fis, m.fisher_acc, m.nparams * sizeof(float));
        /* bitwise reproducible */
        adapter_loss l2;
        adapter_zero_grad(&m);
        adapter_train_step(&m, &a, &w.t, &b, &l2);
        CHECK(l2.rec == lf.rec && l2.kl == lf.kl && !memcmp(full, m.grads_mem, m.nparams * 4),
              "train step not reproducible");
        for (int parts = 2; parts <= 3; parts++) {
            float *sum = calloc(m.nparams, sizeof(float)), *fsum = calloc(m.nparams, sizeof(float));
            double rec = 0, kl = 0, min_rec = INFINITY, min_kl = INFINITY;
            for (int p = 0; p < parts; p++) {
                size_t lo, hi;
                dm_shard_even((size_t)G, parts, p, &lo, &hi);
                adapter_batch sb = wbatch(&w, (int)lo, (int)hi, G);
                adapter_loss l;
                adapter_zero_grad(&m);
                CHECK(adapter_train_step(&m, &a, &w.t, &sb, &l) == DM_OK, "shard");
                for (size_t j = 0; j < m.nparams; j++) sum[j] += m.grads_mem[j];
                rec += l.rec;
                kl += l.kl;
                min_rec = fmin(min_rec, l.rec);
                min_kl = fmin(min_kl, l.kl);
                adapter_fisher_begin(&m);
                adapter_fisher_accumulate(&m, &a, &w.t, &sb);
                for (size_t j = 0; j < m.nparams; j++) fsum[j] += m.fisher_acc[j];
            }
            double d = 0, gm = tl_maxabs(full, m.nparams), df = 0, fm = tl_maxabs(fis, m.nparams);
            for (size_t j = 0; j < m.nparams; j++) {
                d = fmax(d, fabs(sum[j] - full[j]));
                df = fmax(df, fabs(fsum[j] - fis[j]));
            }
            printf("# %d shards (%s): |sum of shard gradients - full| = %.2g (max |g| %.2g), "
                   "rec diff %.2g (tol %.2g), KL diff %.2g (tol %.2g), Fisher diff %.2g\n", parts,
                   loss ? "bce" : "softmax", d, gm, fabs(rec - lf.rec), tol_rec[parts],
                   fabs(kl - lf.kl), tol_kl[parts], df);
            CHECK(d <= 1e-6 * gm + 1e-9, "%d shards: gradient sum differs by %g", parts, d);
            NEAR(rec, lf.rec, tol_rec[parts], "shard rec losses sum to the full loss");
            NEAR(kl, lf.kl, tol_kl[parts], "shard KL terms sum to the full term");
            CHECK(tol_rec[parts] < 0.1 * min_rec && tol_kl[parts] < 0.1 * min_kl,
                  "%d shards: tolerances %g, %g would not see a shard's share %g, %g dropped", parts,
                  tol_rec[parts], tol_kl[parts], min_rec, min_kl);
            CHECK(df <= 1e-6 * fm, "%d shards: Fisher sum differs by %g", parts, df);
            free(sum);
            free(fsum);
        }
        /* reproducible mode: each example's loss is bitwise that of the full batch whichever shard
         * computes it, so the sums differ only by the regrouping of positive doubles */
        nn_set_reproducible(1);
        adapter_loss lr;
        adapter_zero_grad(&m);
        CHECK(adapter_train_step(&m, &a, &w.t, &b, &lr) == DM_OK, "full (reproducible)");
        double *rowf = malloc((size_t)G * sizeof(double));
        memcpy(rowf, a.rowloss, (size_t)G * sizeof(double));
        const int nrows = a.item.N + a.user.N;
        for (int parts = 2; parts <= 3; parts++) {
            double rec = 0, kl = 0;
            int same = 1;
            for (int p = 0; p < parts; p++) {
                size_t lo, hi;
                dm_shard_even((size_t)G, parts, p, &lo, &hi);
                adapter_batch sb = wbatch(&w, (int)lo, (int)hi, G);
                adapter_loss l;
                adapter_zero_grad(&m);
                CHECK(adapter_train_step(&m, &a, &w.t, &sb, &l) == DM_OK, "shard (reproducible)");
                same &= !memcmp(a.rowloss, rowf + lo, (hi - lo) * sizeof(double));
                rec += l.rec;
                kl += l.kl;
            }
            printf("# %d shards (%s), reproducible mode: per-example losses %s, rec diff %.2g, KL "
                   "diff %.2g\n", parts, loss ? "bce" : "softmax", same ? "bitwise equal" : "DIFFER",
                   fabs(rec - lr.rec), fabs(kl - lr.kl));
            CHECK(same, "%d shards, reproducible mode: an example's loss depends on its shard", parts);
            NEAR(rec, lr.rec, (G + parts) * DBL_EPSILON * lr.rec,
                 "reproducible: shard rec losses sum to the full loss");
            NEAR(kl, lr.kl, (2 * nrows + parts) * DBL_EPSILON * lr.kl,
                 "reproducible: shard KL terms sum to the full term");
        }
        nn_set_reproducible(0);
        free(rowf);
        /* a batch over max_batch is an error, not an overflow */
        adapter_batch big = wbatch(&w, 0, G, G);
        big.B = G + 1;
        CHECK(adapter_train_step(&m, &a, &w.t, &big, NULL) == DM_ECONFIG, "oversized batch refused");
        dm_error_clear();
        int32_t bad = c.n_items;
        adapter_batch bb = wbatch(&w, 0, 1, 1);
        bb.pos = &bad;
        CHECK(adapter_train_step(&m, &a, &w.t, &bb, NULL) == DM_EINPUT, "item out of range refused");
        printf("# expected error: %s\n", dm_error_message());
        dm_error_clear();
        free(full);
        free(fis);
        model_free(&m, &a);
        world_free(&w);
    }
}

/* ---- 6. ablations, EMA, Adam ----------------------------------------------------------------- */

/* no gate: a = b = 1 and the gate weights get no gradient */
static void ablation_no_gate(const adapter_config *c, world *w, const adapter_batch *b)
{
    adapter_config cg = *c;
    cg.gate = 0;
    adapter m;
    adapter_acts a;
    CHECK(model_make(&m, &a, &cg, 81) == 0, "init");
    float gi[19], gu[8];
    adapter_item_gates(&m, &a, &w->t, 1, NULL, c->n_items, gi);
    adapter_user_gates(&m, &a, &w->t, 1, NULL, c->n_users, gu);
    int ones = 1;
    for (int i = 0; i < c->n_items; i++) ones &= gi[i] == 1.0f;
    for (int u = 0; u < c->n_users; u++) ones &= gu[u] == 1.0f;
    CHECK(ones, "no gate: every gate is exactly 1");
    float *z = malloc((size_t)c->n_items * c->d * 4), *res = malloc((size_t)c->n_items * c->d * 4);
    adapter_item_latents(&m, &a, &w->t, 0, NULL, c->n_items, z, res);
    double d = 0;
    for (size_t j = 0; j < (size_t)c->n_items * c->d; j++)
        d = fmax(d, fabs(z[j] - w->z_base[j] - res[j]));
    CHECK(d < 1e-6, "no gate: z = z_base + g");
    adapter_zero_grad(&m);
    adapter_train_step(&m, &a, &w->t, b, NULL);
    CHECK(tl_maxabs(m.grads.item.wa, (size_t)m.dx_item) == 0 && m.grads.item.ca[0] == 0 &&
              tl_maxabs(m.grads.user.wa, (size_t)m.dx_user) == 0 && m.grads.user.ca[0] == 0,
          "no gate: zero gate gradients");
    /* with the gate the gates lie in (0, 1) and are not all equal */
    m.cfg.gate = 1;
    adapter_item_gates(&m, &a, &w->t, 1, NULL, c->n_items, gi);
    CHECK(gi[0] > 0 && gi[0] < 1 && gi[0] != gi[1], "gate values %g %g", gi[0], gi[1]);
    free(z);
    free(res);
    model_free(&m, &a);
}

/* no KL: zero term, and the gradient is the one of an infinitely wide KL (sigma -> inf) */
static void ablation_no_kl(const adapter_config *c, world *w, const adapter_batch *b)
{
    adapter_config ck = *c;
    ck.kl = 0;
    adapter m;
    adapter_acts a;
    adapter_loss l;
    CHECK(model_make(&m, &a, &ck, 82) == 0, "init");
    adapter_zero_grad(&m);
    adapter_train_step(&m, &a, &w->t, b, &l);
    float *g0 = malloc(m.nparams * 4);
    memcpy(g0, m.grads_mem, m.nparams * 4);
    CHECK(l.kl == 0, "no KL: zero KL loss");
    m.cfg.kl = 1;
    m.cfg.sigma = 1e30f; /* 1 / sigma^2 underflows to 0: the KL gradient vanishes exactly */
    adapter_zero_grad(&m);
    adapter_train_step(&m, &a, &w->t, b, &l);
    CHECK(!memcmp(g0, m.grads_mem, m.nparams * 4), "no KL equals a vanishing KL term");
    m.cfg.sigma = 0.5f;
    adapter_zero_grad(&m);
    adapter_train_step(&m, &a, &w->t, b, &l);
    CHECK(l.kl > 0 && memcmp(g0, m.grads_mem, m.nparams * 4), "the KL term changes the gradient");
    /* each side has its own scale: sigma for the items, sigma_user for the users (<= 0 =
     * sigma); the term is the sum of the two sides' parts */
    double k_both = l.kl, k_item, k_user, k_mixed;
    m.cfg.sigma_user = 1e30f;
    adapter_eval_loss(&m, &a, &w->t, b, &l);
    k_item = l.kl;
    m.cfg.sigma = 1e30f;
    m.cfg.sigma_user = 0.5f;
    adapter_eval_loss(&m, &a, &w->t, b, &l);
    k_user = l.kl;
    m.cfg.sigma = 0.5f;
    m.cfg.sigma_user = 1.0f;
    adapter_eval_loss(&m, &a, &w->t, b, &l);
    k_mixed = l.kl;
    CHECK(k_item > 0 && k_user > 0 && fabs(k_item + k_user - k_both) <= 1e-5 * k_both,
          "KL sides: items %g + users %g = both %g", k_item, k_user, k_both);
    CHECK(fabs(k_item + 0.25 * k_user - k_mixed) <= 1e-5 * k_mixed,
          "KL with sigma_user = 2 sigma: %g, expected %g", k_mixed, k_item + 0.25 * k_user);
    m.cfg.sigma_user = 0.0f;
    free(g0);
    model_free(&m, &a);
}

/* no EWC: zero loss and the Adam step ignores F; with EWC the step differs */
static void ablation_no_ewc(const adapter_config *c, world *w, const adapter_batch *b)
{
    adapter m1, m2;
    adapter_acts a1, a2;
    adapter_config ce = *c;
    ce.ewc = 0;
    CHECK(model_make(&m1, &a1, &ce, 83) == 0 && model_make(&m2, &a2, c, 83) == 0, "init");
    for (adapter *m = &m1; m; m = m == &m1 ? &m2 : NULL) {
        for (size_t j = 0; j < m->nparams; j++) {
            m->fisher_mem[j] = 3.0f;
            m->anchor_mem[j] = m->params_mem[j] + 0.5f;
        }
        m->has_fisher = 1;
    }
    CHECK(adapter_ewc_loss(&m1) == 0 && adapter_ewc_loss(&m2) > 0, "EWC loss switch");
    adapter_zero_grad(&m1);
    adapter_zero_grad(&m2);
    adapter_train_step(&m1, &a1, &w->t, b, NULL);
    adapter_train_step(&m2, &a2, &w->t, b, NULL);
    adapter_adam_step(&m1);
    adapter_adam_step(&m2);
    CHECK(memcmp(m1.params_mem, m2.params_mem, m1.nparams * 4) != 0, "EWC changes the step");
    /* m1 (EWC off) equals a model that never had a Fisher */
    adapter m3;
    adapter_acts a3;
    CHECK(model_make(&m3, &a3, &ce, 83) == 0, "init");
    adapter_zero_grad(&m3);
    adapter_train_step(&m3, &a3, &w->t, b, NULL);
    adapter_adam_step(&m3);
    CHECK(!memcmp(m1.params_mem, m3.params_mem, m1.nparams * 4), "no EWC: F is ignored");
    model_free(&m1, &a1);
    model_free(&m2, &a2);
    model_free(&m3, &a3);
}

/* EMA: exact recurrence in float; serving uses it; no EMA serves the raw weights */
static void ablation_ema(const adapter_config *c, world *w, const adapter_batch *b)
{
    adapter m;
    adapter_acts a;
    adapter_config ce = *c;
    ce.ema_decay = 0.75f;
    ce.lr = 0.05f;
    CHECK(model_make(&m, &a, &ce, 84) == 0, "init");
    float *e = malloc(m.nparams * 4);
    memcpy(e, m.params_mem, m.nparams * 4);
    for (int s = 0; s < 4; s++) {
        adapter_zero_grad(&m);
        adapter_train_step(&m, &a, &w->t, b, NULL);
        adapter_adam_step(&m);
        adapter_ema_update(&m);
        for (size_t j = 0; j < m.nparams; j++) e[j] = 0.75f * e[j] + (1.0f - 0.75f) * m.params_mem[j];
    }
    CHECK(!memcmp(e, m.ema_mem, m.nparams * 4), "EMA equals the float recurrence exactly");
    CHECK(memcmp(m.ema_mem, m.params_mem, m.nparams * 4) != 0, "EMA lags the weights");
    float *zs = malloc((size_t)c->n_items * c->d * 4), *zr = malloc((size_t)c->n_items * c->d * 4);
    adapter_item_latents(&m, &a, &w->t, 1, NULL, c->n_items, zs, NULL);
    adapter_item_latents(&m, &a, &w->t, 0, NULL, c->n_items, zr, NULL);
    CHECK(memcmp(zs, zr, (size_t)c->n_items * c->d * 4) != 0, "serving uses the EMA weights");
    /* swap the slabs: serving with EMA weights equals raw serving of a model holding them */
    memcpy(m.params_mem, m.ema_mem, m.nparams * 4);
    adapter_item_latents(&m, &a, &w->t, 0, NULL, c->n_items, zr, NULL);
    CHECK(!memcmp(zs, zr, (size_t)c->n_items * c->d * 4), "EMA serving = raw serving of EMA weights");
    m.cfg.ema = 0;
    memcpy(e, m.ema_mem, m.nparams * 4);
    m.params_mem[0] += 1.0f;
    adapter_ema_update(&m);
    CHECK(!memcmp(e, m.ema_mem, m.nparams * 4), "no EMA: the update does nothing");
    adapter_item_latents(&m, &a, &w->t, 1, NULL, c->n_items, zs, NULL);
    adapter_item_latents(&m, &a, &w->t, 0, NULL, c->n_items, zr, NULL);
    CHECK(!memcmp(zs, zr, (size_t)c->n_items * c->d * 4), "no EMA: serving uses the raw weights");
    free(e);
    free(zs);
    free(zr);
    model_free(&m, &a);
}

static void test_ablations(void)
{
    adapter_config c;
    small_config(&c);
    world w;
    world_make(&w, &c, 80);
    adapter_batch b = wbatch(&w, 0, c.max_batch, 0);
    ablation_no_gate(&c, &w, &b);
    ablation_no_kl(&c, &w, &b);
    ablation_no_ewc(&c, &w, &b);
    ablation_ema(&c, &w, &b);
    world_free(&w);
}

/* ---- 7. serving ------------------------------------------------------------------------------ */

static void test_serving(void)
{
    adapter_config c;
    small_config(&c);
    world w;
    world_make(&w, &c, 90);
    adapter m;
    adapter_acts a;
    CHECK(model_make(&m, &a, &c, 91) == 0, "init");
    /* all items in blocks of serve_rows (5) against one block holding everything */
    adapter_config cb = c;
    cb.serve_rows = 64;
    adapter_acts ab;
    CHECK(adapter_acts_init(&ab, &cb) == DM_OK, "acts");
    size_t nz = (size_t)c.n_items * c.d;
    float *z1 = malloc(nz * 4), *z2 = malloc(nz * 4), *res = malloc(nz * 4);
    adapter_item_latents(&m, &a, &w.t, 0, NULL, c.n_items, z1, res);
    adapter_item_latents(&m, &ab, &w.t, 0, NULL, c.n_items, z2, NULL);
    double d = 0;
    for (size_t j = 0; j < nz; j++) d = fmax(d, fabs(z1[j] - z2[j]));
    CHECK(d < 1e-6, "blocked serving differs by %g", d);
    int ok = 1;
    for (size_t j = 0; j < nz; j++) ok &= z1[j] == w.z_base[j] + res[j];
    CHECK(ok, "z = z_base + residual");
    /* the latents the training step uses are the served ones (raw weights) */
    adapter_batch b = wbatch(&w, 0, c.max_batch, 0);
    adapter_eval_loss(&m, &a, &w.t, &b, NULL);
    d = 0;
    for (int r = 0; r < a.item.N; r++)
        for (int q = 0; q < c.d; q++)
            d = fmax(d, fabs(a.item.z[(size_t)r * c.d + q] - z1[(size_t)a.item.ids[r] * c.d + q]));
    CHECK(d < 1e-6, "training latents differ from served ones by %g", d);
    /* a subset of users by id */
    int32_t ids[3] = {5, 0, 5};
    float hs[3 * 4], hall[8 * 4];
    adapter_user_latents(&m, &a, &w.t, 0, ids, 3, hs, NULL);
    adapter_user_latents(&m, &a, &w.t, 0, NULL, c.n_users, hall, NULL);
    d = 0;
    for (int j = 0; j < 3; j++)
        for (int q = 0; q < c.d; q++) d = fmax(d, fabs(hs[j * c.d + q] - hall[ids[j] * c.d + q]));
    CHECK(d < 1e-6, "user subset differs by %g", d);
    int32_t bad = 8;
    CHECK(adapter_user_latents(&m, &a, &w.t, 0, &bad, 1, hs, NULL) == DM_EINPUT, "bad user id");
    dm_error_clear();
    adapter_tables t2 = w.t;
    t2.s_item = NULL;
    CHECK(adapter_item_latents(&m, &a, &t2, 0, NULL, 3, z1, NULL) == DM_EINTERNAL &&
              adapter_eval_loss(&m, &a, &t2, &b, NULL) == DM_EINTERNAL,
          "a missing summary table is refused");
    dm_error_clear();
    free(z1);
    free(z2);
    free(res);
    model_free(&m, &a);
    adapter_acts_free(&ab);
    world_free(&w);
}

/* ---- 7b. sizes where the OpenMP paths engage: fast vs naive, 1 vs 2 threads ------------------ */

static void test_large(void)
{
    adapter_config c;
    small_config(&c);
    c.n_items = 20000;
    c.n_users = 3000;
    c.max_batch = 1500;
    c.negatives = 7;
    c.serve_rows = 4096;
    world w;
    world_make(&w, &c, 95);
    adapter_config cn = c;
    cn.naive = 1;
    adapter mf, mn;
    adapter_acts af, an;
    CHECK(model_make(&mf, &af, &c, 96) == 0 && model_make(&mn, &an, &cn, 96) == 0, "init");
    adapter_batch b = wbatch(&w, 0, c.max_batch, 0);
    adapter_loss lf, ln, l2;
    adapter_zero_grad(&mf);
    adapter_zero_grad(&mn);
    CHECK(adapter_train_step(&mf, &af, &w.t, &b, &lf) == DM_OK &&
              adapter_train_step(&mn, &an, &w.t, &b, &ln) == DM_OK, "steps");
    NEAR(lf.rec, ln.rec, 1e-6 * fabs(ln.rec), "large batch rec loss fast vs naive");
    double gm = tl_maxabs(mn.grads_mem, mn.nparams), d = 0;
    for (size_t j = 0; j < mn.nparams; j++) d = fmax(d, fabs(mf.grads_mem[j] - mn.grads_mem[j]));
    CHECK(d <= 1e-4 * gm, "large batch: gradients fast vs naive differ by %g (max %g)", d, gm);
    /* thread counts: the loss is bitwise the same (per-example buffer), latents too */
    float *g1 = malloc(mf.nparams * 4);
    memcpy(g1, mf.grads_mem, mf.nparams * 4);
    const size_t nz = (size_t)c.n_items * c.d;
    float *z1 = malloc(nz * 4), *z2 = malloc(nz * 4), *zn = malloc(nz * 4);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    adapter_item_latents(&mf, &af, &w.t, 1, NULL, c.n_items, z1, NULL);
    adapter_zero_grad(&mf);
    adapter_train_step(&mf, &af, &w.t, &b, &l2);
    CHECK(l2.rec == lf.rec && l2.kl == lf.kl, "loss depends on the thread count");
    omp_set_num_threads(2);
    adapter_item_latents(&mf, &af, &w.t, 1, NULL, c.n_items, z2, NULL);
    omp_set_num_threads(nt);
    CHECK(!memcmp(z1, z2, nz * 4), "latents depend on the thread count");
    adapter_item_latents(&mn, &an, &w.t, 1, NULL, c.n_items, zn, NULL);
    d = 0;
    for (size_t j = 0; j < nz; j++) d = fmax(d, fabs(z1[j] - zn[j]));
    CHECK(d < 1e-5, "all-item latents fast vs naive differ by %g", d);
    printf("# large (%d items, batch %d x %d): all-item latents fast vs naive max diff %.2g\n",
           c.n_items, c.max_batch, c.negatives + 1, d);
    TL_FREE(g1, z1, z2, zn);
    model_free(&mf, &af);
    model_free(&mn, &an);
    world_free(&w);
    /* summaries over many items and users: 1 and 2 threads give the same bits */
    const int nu = 70000, ni = 70000;
    const size_t n = 150000;
    int32_t *cu = malloc(n * 4), *ci = malloc(n * 4);
    int64_t *ct = malloc(n * 8);
    dm_rng g;
    dm_rng_seed(&g, 97);
    for (size_t k = 0; k < n; k++) {
        cu[k] = (int32_t)dm_rng_below(&g, nu);
        ci[k] = (int32_t)dm_rng_below(&g, ni);
        ct[k] = (int64_t)dm_rng_below(&g, 100000);
    }
    adapter_events cur = {n / 2, cu, ci, ct}, prev = {n - n / 2, cu + n / 2, ci + n / 2, ct + n / 2};
    adapter_summary_config sc = {ADAPTER_FEAT_ALL, 5, 0};
    float *si1 = malloc((size_t)ni * 4 * 4), *su1 = malloc((size_t)nu * 7 * 4);
    float *si2 = malloc((size_t)ni * 4 * 4), *su2 = malloc((size_t)nu * 7 * 4);
    omp_set_num_threads(1);
    adapter_summaries(&sc, nu, ni, &cur, &prev, 0, 100000, si1, su1);
    omp_set_num_threads(2);
    adapter_summaries(&sc, nu, ni, &cur, &prev, 0, 100000, si2, su2);
    omp_set_num_threads(nt);
    CHECK(!memcmp(si1, si2, (size_t)ni * 16) && !memcmp(su1, su2, (size_t)nu * 28),
          "summaries depend on the thread count");
    TL_FREE(cu, ci, ct, si1, su1, si2, su2);
}

/* ---- 8. a tiny batch overfits ---------------------------------------------------------------- */

static void test_overfit(void)
{
    for (int loss = 0; loss < 2; loss++) {
        adapter_config c;
        small_config(&c);
        c.loss = loss;
        c.zero_init = 1;
        c.kl = 0;
        c.max_batch = 4;
        c.lr = 0.02f;
        world w;
        world_make(&w, &c, 100 + loss);
        adapter m;
        adapter_acts a;
        CHECK(model_make(&m, &a, &c, 101) == 0, "init");
        /* distinct users, negatives that are no example's positive: a perfect fit exists */
        for (int e = 0; e < 4; e++) {
            w.user[e] = e;
            w.pos[e] = e;
            for (int k = 0; k < c.negatives; k++) w.neg[e * c.negatives + k] = 4 + (e + k) % 15;
        }
        adapter_batch b = wbatch(&w, 0, 4, 0);
        adapter_loss l0, l;
        adapter_eval_loss(&m, &a, &w.t, &b, &l0);
        for (int s = 0; s < 400; s++) {
            adapter_zero_grad(&m);
            adapter_train_step(&m, &a, &w.t, &b, &l);
            adapter_adam_step(&m);
            adapter_ema_update(&m);
        }
        adapter_eval_loss(&m, &a, &w.t, &b, &l);
        printf("# overfit %s: loss %.4f -> %.5f after 400 Adam steps on 4 examples\n",
               loss ? "bce" : "softmax", l0.rec, l.rec);
        CHECK(l.rec < 0.02 && l.rec < 0.05 * l0.rec, "tiny batch did not overfit: %g -> %g", l0.rec,
              l.rec);
        model_free(&m, &a);
        world_free(&w);
    }
}

/* ---- 9. reservoir and batch plans ------------------------------------------------------------ */

static int same_buffer(const adapter_reservoir *x, const adapter_reservoir *y)
{
    return x->n == y->n && x->seen == y->seen &&
           !memcmp(x->rec, y->rec, x->n * sizeof(adapter_record));
}

static void test_reservoir(void)
{
    enum { N = 300, CAP = 30, TRIALS = 3000 };
    adapter_record rec[N];
    for (int i = 0; i < N; i++) rec[i] = (adapter_record){i % 17, i, 1000 + i};
    /* determinism: one call per window vs the same records in uneven chunks */
    adapter_reservoir r1, r2, r3;
    adapter_reservoir_init(&r1, CAP, 5);
    adapter_reservoir_init(&r2, CAP, 5);
    adapter_reservoir_init(&r3, CAP, 6);
    for (int wdw = 0; wdw < 3; wdw++) {
        adapter_reservoir_add(&r1, (uint64_t)wdw, rec + wdw * 100, 100);
        adapter_reservoir_add(&r2, (uint64_t)wdw, rec + wdw * 100, 7);
        adapter_reservoir_add(&r2, (uint64_t)wdw, rec + wdw * 100 + 7, 0);
        adapter_reservoir_add(&r2, (uint64_t)wdw, rec + wdw * 100 + 7, 93);
        adapter_reservoir_add(&r3, (uint64_t)wdw, rec + wdw * 100, 100);
    }
    CHECK(r1.n == CAP && r1.seen == N, "buffer holds %zu of %llu", r1.n, (unsigned long long)r1.seen);
    CHECK(same_buffer(&r1, &r2), "same records, same buffer (chunking does not matter)");
    CHECK(!same_buffer(&r1, &r3), "another seed gives another buffer");
    adapter_reservoir_free(&r1);
    adapter_reservoir_free(&r2);
    adapter_reservoir_free(&r3);
    /* inclusion probability cap / N for every record, over independent seeds */
    static int hits[N];
    memset(hits, 0, sizeof hits);
    for (int t = 0; t < TRIALS; t++) {
        adapter_reservoir r;
        adapter_reservoir_init(&r, CAP, 1000 + (uint64_t)t);
        for (int wdw = 0; wdw < 3; wdw++) adapter_reservoir_add(&r, (uint64_t)wdw, rec + wdw * 100, 100);
        for (size_t j = 0; j < r.n; j++) hits[r.rec[j].item]++;
        adapter_reservoir_free(&r);
    }
    const double p = (double)CAP / N, sd = sqrt(p * (1 - p) / TRIALS);
    double worst = 0, chi = 0;
    for (int i = 0; i < N; i++) {
        double z = ((double)hits[i] / TRIALS - p) / sd;
        worst = fmax(worst, fabs(z));
        chi += z * z;
    }
    chi /= N;
    printf("# reservoir: inclusion of %d records over %d seeds: max |z| = %.2f, mean z^2 = %.3f "
           "(expected p = %.3f)\n", N, TRIALS, worst, chi, p);
    CHECK(worst < 5.0, "an inclusion frequency is %.1f sd from cap/seen", worst);
    CHECK(chi > 0.75 && chi < 1.3, "mean squared z %.3f, expected ~1", chi);
    /* early records are no more likely than late ones: first vs last third */
    double first = 0, last = 0;
    for (int i = 0; i < 100; i++) {
        first += hits[i];
        last += hits[N - 1 - i];
    }
    NEAR(first / (100.0 * TRIALS), last / (100.0 * TRIALS), 5 * sqrt(2.0 * p * (1 - p) / (100.0 * TRIALS)),
         "first vs last window inclusion");
}

static void test_plan(void)
{
    adapter_record win[50], old[40];
    for (int i = 0; i < 50; i++) win[i] = (adapter_record){i % 9, 100 + i % 23, i};
    for (int i = 0; i < 40; i++) old[i] = (adapter_record){1000 + i, 200 + i, i};
    adapter_reservoir buf;
    adapter_reservoir_init(&buf, 16, 3);
    adapter_plan_config pc = {.negatives = 5, .n_items = 250, .mix = 0.25, .seed = 9};
    enum { G = 40 };
    int32_t u1[G], p1[G], n1[G * 5], u2[G], p2[G], n2[G * 5];
    size_t R = adapter_plan_batch(&pc, win, 50, &buf, 2, 7, G, u1, p1, n1);
    CHECK(R == 0, "empty buffer: no replay (R = %zu)", R);
    adapter_reservoir_add(&buf, 0, old, 40);
    R = adapter_plan_batch(&pc, win, 50, &buf, 2, 7, G, u1, p1, n1);
    size_t R2 = adapter_plan_batch(&pc, win, 50, &buf, 2, 7, G, u2, p2, n2);
    CHECK(R == 10 && R2 == R, "replayed %zu, expected round(0.25 * 40) = 10", R);
    CHECK(!memcmp(u1, u2, sizeof u1) && !memcmp(p1, p2, sizeof p1) && !memcmp(n1, n2, sizeof n1),
          "plan is a function of its key");
    int ok = 1, negok = 1;
    for (int j = 0; j < G; j++) {
        int fromwin = u1[j] < 9 && p1[j] >= 100 && p1[j] < 123, fromold = u1[j] >= 1000;
        ok &= j < G - (int)R ? fromwin : fromold;
        for (int k = 0; k < 5; k++) negok &= n1[j * 5 + k] != p1[j] && n1[j * 5 + k] >= 0 && n1[j * 5 + k] < 250;
    }
    CHECK(ok, "the first G - R examples come from the window, the last R from the buffer");
    CHECK(negok, "negatives in range and never the positive");
    R = adapter_plan_batch(&pc, win, 50, &buf, 2, 8, G, u2, p2, n2);
    CHECK(memcmp(u1, u2, sizeof u1) || memcmp(p1, p2, sizeof p1), "another step, another batch");
    pc.mix = 0;
    CHECK(adapter_plan_batch(&pc, win, 50, &buf, 2, 7, G, u2, p2, n2) == 0, "mix 0: no replay");
    pc.mix = 0.25;
    CHECK(adapter_plan_batch(&pc, win, 50, NULL, 2, 7, G, u2, p2, n2) == 0, "no buffer: no replay");
    /* an example's draw does not depend on G (so a rank's block needs only its indices) */
    int32_t u3[G + 8], p3[G + 8], n3[(G + 8) * 5];
    pc.mix = 0;
    adapter_plan_batch(&pc, win, 50, NULL, 2, 7, G, u2, p2, n2);
    adapter_plan_batch(&pc, win, 50, NULL, 2, 7, G + 8, u3, p3, n3);
    CHECK(!memcmp(u2, u3, sizeof u2) && !memcmp(n2, n3, sizeof n2), "draws keyed by example index");
    adapter_reservoir_free(&buf);
}

/* ---- 10. window summaries -------------------------------------------------------------------- */

static void test_summaries_known(void)
{
    /* cur: u0 i0@1000 i1@2000 i0@3000; u1 i1@1500.  prev: u1 i2@500; u0 i1@100.
     * t_begin 1000, t_end 4000 (tau = 3000 ms), recent = 2: R_u0 = [i1, i0], R_u1 = [i1]. */
    int32_t cu[4] = {0, 1, 0, 0}, ci[4] = {0, 1, 1, 0}, pu[2] = {1, 0}, pi[2] = {2, 1};
    int64_t ct[4] = {1000, 1500, 2000, 3000}, pt[2] = {500, 100};
    adapter_events cur = {4, cu, ci, ct}, prev = {2, pu, pi, pt};
    adapter_summary_config sc = {ADAPTER_FEAT_ALL, 2, 0.0};
    int dsi, dsu;
    adapter_summary_dims(sc.features, &dsi, &dsu);
    CHECK(dsi == 4 && dsu == 7, "dims %d %d", dsi, dsu);
    float si[3 * 4], su[3 * 7];
    CHECK(adapter_summaries(&sc, 3, 3, &cur, &prev, 1000, 4000, si, su) == DM_OK, "summaries");
    const double e_i[3][4] = {{log(3), log(3), exp(-1.0 / 3), log(2)},
                              {log(3), log(1.5), exp(-2.0 / 3), log(2)},
                              {0, log(0.5), exp(-3.5 / 3), 0}};
    double d = 0;
    for (int i = 0; i < 3; i++)
        for (int q = 0; q < 4; q++) d = fmax(d, fabs(si[i * 4 + q] - e_i[i][q]));
    double e_u[3][7];
    const double u0[3] = {log(4), log(2), exp(-1.0 / 3)}, u1[3] = {log(2), 0, exp(-2.5 / 3)};
    for (int q = 0; q < 3; q++) {
        e_u[0][q] = u0[q];
        e_u[1][q] = u1[q];
        e_u[2][q] = 0;
    }
    for (int q = 0; q < 4; q++) {
        e_u[0][3 + q] = 0.5 * (e_i[1][q] + e_i[0][q]);
        e_u[1][3 + q] = e_i[1][q];
        e_u[2][3 + q] = 0;
    }
    for (int u = 0; u < 3; u++)
        for (int q = 0; q < 7; q++) d = fmax(d, fabs(su[u * 7 + q] - e_u[u][q]));
    CHECK(d < 1e-6, "hand-worked window: max difference %g", d);
    /* feature subsets select columns in order */
    sc.features = ADAPTER_FEAT_TREND | ADAPTER_FEAT_COOC;
    float si2[3 * 2], su2[3 * 3];
    adapter_summaries(&sc, 3, 3, &cur, &prev, 1000, 4000, si2, su2);
    CHECK(si2[0 * 2 + 0] == si[0 * 4 + 1] && si2[1 * 2 + 1] == si[1 * 4 + 3], "item columns");
    NEAR(su2[0 * 3 + 1], 0.5 * (e_i[1][1] + e_i[0][1]), 1e-6, "user cooc block over item columns");
    const char *names[2] = {"cooc", "count"};
    unsigned mask = 0;
    CHECK(adapter_parse_features(names, 2, &mask) == DM_OK && mask == 9, "parse features");
    const char *bad[1] = {"counts"};
    CHECK(adapter_parse_features(bad, 1, &mask) == DM_ECONFIG, "unknown feature refused");
    dm_error_clear();
    int32_t badu[1] = {3};
    adapter_events be = {1, badu, ci, ct};
    CHECK(adapter_summaries(&sc, 3, 3, &be, NULL, 0, 1, si2, su2) == DM_EINPUT, "user out of range");
    dm_error_clear();
}

static void test_summaries_random(void)
{
    dm_rng g;
    dm_rng_seed(&g, 110);
    double worst = 0;
    for (int trial = 0; trial < 24; trial++) {
        const int nu = 7 + trial % 5, ni = 11 + trial % 7;
        const size_t n = 40 + (size_t)trial * 5, np = trial % 3 == 0 ? 0 : 30;
        int32_t *cu = malloc(n * 4), *ci = malloc(n * 4), *pu = malloc(np * 4 + 4), *pi = malloc(np * 4 + 4);
        int64_t *ct = malloc(n * 8), *pt = malloc(np * 8 + 8);
        for (size_t k = 0; k < n; k++) {
            cu[k] = (int32_t)dm_rng_below(&g, nu - 1); /* the last user idle */
            ci[k] = (int32_t)dm_rng_below(&g, ni);
            ct[k] = 5000 + (int64_t)dm_rng_below(&g, 40); /* many time ties */
        }
        for (size_t k = 0; k < np; k++) {
            pu[k] = (int32_t)dm_rng_below(&g, nu);
            pi[k] = (int32_t)dm_rng_below(&g, ni);
            pt[k] = 4000 + (int64_t)dm_rng_below(&g, 1000);
        }
        adapter_events cur = {n, cu, ci, ct}, prev = {np, pu, pi, pt};
        adapter_summary_config sc = {(unsigned)(trial % 16), 1 + trial % 6, trial % 2 ? 300.0 : 0.0};
        int dsi, dsu;
        adapter_summary_dims(sc.features, &dsi, &dsu);
        float *si = calloc((size_t)ni * dsi + 1, 4), *su = calloc((size_t)nu * dsu + 1, 4);
        float *si2 = calloc((size_t)ni * dsi + 1, 4), *su2 = calloc((size_t)nu * dsu + 1, 4);
        CHECK(adapter_summaries(&sc, nu, ni, &cur, np ? &prev : NULL, 5000, 5040, si, su) == DM_OK &&
                  adapter_summaries_naive(&sc, nu, ni, &cur, np ? &prev : NULL, 5000, 5040, si2, su2) == DM_OK,
              "summaries");
        for (size_t j = 0; j < (size_t)ni * dsi; j++) worst = fmax(worst, fabs(si[j] - si2[j]));
        for (size_t j = 0; j < (size_t)nu * dsu; j++) worst = fmax(worst, fabs(su[j] - su2[j]));
        TL_FREE(cu, ci, ct, pu, pi, pt, si, su, si2, su2);
    }
    printf("# summaries vs naive twin, 24 random windows (all feature masks): max diff %.2g\n", worst);
    CHECK(worst < 1e-6, "summaries differ from the naive twin by %g", worst);
}

/* ---- 10b. windows of a dataset, and the whole per-window sequence at 1 and 3 "ranks" ---------- */

static void test_window_gather(void)
{
    /* 3 users; windows: -1, 0, 1 */
    int64_t off[4] = {0, 3, 5, 8};
    int32_t item[8] = {4, 5, 6, 1, 2, 0, 3, 4};
    int64_t time[8] = {10, 20, 30, 15, 25, 5, 21, 40};
    int32_t win[8] = {-1, 0, 1, 0, 1, -1, 0, 1};
    int64_t ws[3] = {10, 20, 41};
    dm_dataset d = tl_dataset_view(3, 7, off, item);
    d.time = time;
    d.window = win;
    d.n_windows = 2;
    d.window_start = ws;
    adapter_window w;
    CHECK(adapter_window_gather(&d, 1, &w) == DM_OK, "gather");
    CHECK(w.n == 3 && w.t_begin == 20 && w.t_end == 41, "window 1: %zu records", w.n);
    CHECK(w.user[0] == 0 && w.item[0] == 6 && w.time[0] == 30 && w.user[1] == 1 && w.item[1] == 2 &&
              w.user[2] == 2 && w.item[2] == 4 && w.rec[2].time == 40 && w.ev.n == 3 && w.ev.item == w.item,
          "window 1 in dataset order");
    adapter_window_free(&w);
    CHECK(adapter_window_gather(&d, -1, &w) == DM_OK && w.n == 0, "window -1 is empty");
    adapter_window_free(&w);
    CHECK(adapter_window_gather(&d, 2, &w) == DM_OK && w.n == 0, "window past the end is empty");
    adapter_window_free(&w);
}

/* Synthetic stream: item popularity drifts from the first half of the catalogue to the second
 * between windows. Runs the per-window sequence of adapter.h with the global batch split over P
 * simulated ranks (gradients, losses and Fisher summed as the allreduce would). */
typedef struct {
    double first_rec, last_rec, ewc;
    float *params;
    size_t nparams, buffered;
} stream_out;

static void run_stream(int P, stream_out *o)
{
    enum { NW = 4, NWIN = 150, NU = 20, NI = 30, G = 24, S = 16, STEPS = 12 };
    adapter_config c;
    small_config(&c);
    c.n_items = NI;
    c.n_users = NU;
    c.zero_init = 1;
    c.lr = 0.01f;
    c.max_batch = G; /* >= every shard, and the fixed watch batch */
    c.negatives = 4;
    adapter_summary_config sc = {ADAPTER_FEAT_ALL, 4, 0};
    adapter_summary_dims(sc.features, &c.ds_item, &c.ds_user);
    world w;
    world_make(&w, &c, 120); /* e_cf, z_base, r, h_base random; summaries computed below */
    adapter m;
    adapter_acts a;
    CHECK(model_make(&m, &a, &c, 121) == 0, "init");
    adapter_reservoir buf;
    adapter_reservoir_init(&buf, 64, 122);
    adapter_plan_config pc = {c.negatives, NI, 0.25, 123};
    adapter_record win[NW][NWIN];
    dm_rng g;
    dm_rng_seed(&g, 124);
    for (int t = 0; t < NW; t++)
        for (int k = 0; k < NWIN; k++) {
            int hot = t < NW / 2 ? 0 : NI / 2;
            int it = dm_rng_uniform(&g) < 0.8 ? hot + (int)dm_rng_below(&g, NI / 2) : (int)dm_rng_below(&g, NI);
            win[t][k] = (adapter_record){(int32_t)dm_rng_below(&g, NU), it, 1000 * t + k};
        }
    int32_t U[G], Pp[G], Ng[G * 4];
    float *gsum = malloc(m.nparams * 4), *fsum = malloc(m.nparams * 4);
    o->first_rec = o->last_rec = 0;
    for (int t = 1; t < NW; t++) { /* window t uses the summaries of t - 1 (and t - 2) */
        int32_t cu[NWIN], ci[NWIN], pu[NWIN], pi[NWIN];
        int64_t ct[NWIN], pt[NWIN];
        for (int k = 0; k < NWIN; k++) {
            cu[k] = win[t - 1][k].user, ci[k] = win[t - 1][k].item, ct[k] = win[t - 1][k].time;
            if (t >= 2) pu[k] = win[t - 2][k].user, pi[k] = win[t - 2][k].item, pt[k] = win[t - 2][k].time;
        }
        adapter_events cur = {NWIN, cu, ci, ct}, prev = {NWIN, pu, pi, pt};
        CHECK(adapter_summaries(&sc, NU, NI, &cur, t >= 2 ? &prev : NULL, 1000 * (t - 1), 1000 * t,
                                w.s_item, w.s_user) == DM_OK, "summaries");
        /* the window's Fisher sample doubles as a fixed batch to watch the loss on */
        int32_t FU[S], FP[S], FN[S * 4];
        adapter_plan_batch(&pc, win[t], NWIN, NULL, (uint64_t)t, ADAPTER_STEP_FISHER, S, FU, FP, FN);
        adapter_batch fb = {S, FU, FP, FN, S};
        adapter_loss before, after;
        CHECK(adapter_eval_loss(&m, &a, &w.t, &fb, &before) == DM_OK, "eval");
        double rec = 0;
        for (int step = 0; step < STEPS; step++) {
            adapter_plan_batch(&pc, win[t], NWIN, &buf, (uint64_t)t, (uint64_t)step, G, U, Pp, Ng);
            memset(gsum, 0, m.nparams * 4);
            rec = 0;
            for (int p = 0; p < P; p++) {
                size_t lo, hi;
                dm_shard_even(G, P, p, &lo, &hi);
                adapter_batch b = {(int)(hi - lo), U + lo, Pp + lo, Ng + lo * 4, G};
                adapter_loss l;
                adapter_zero_grad(&m);
                CHECK(adapter_train_step(&m, &a, &w.t, &b, &l) == DM_OK, "stream step");
                for (size_t j = 0; j < m.nparams; j++) gsum[j] += m.grads_mem[j];
                rec += l.rec;
            }
            memcpy(m.grads_mem, gsum, m.nparams * 4);
            adapter_adam_step(&m);
            adapter_ema_update(&m);
        }
        CHECK(adapter_eval_loss(&m, &a, &w.t, &fb, &after) == DM_OK && isfinite(rec), "eval");
        o->first_rec += before.rec;
        o->last_rec += after.rec;
        if (t == NW - 1) o->ewc = adapter_ewc_loss(&m); /* before this window's commit */
        adapter_plan_batch(&pc, win[t], NWIN, NULL, (uint64_t)t, ADAPTER_STEP_FISHER, S, U, Pp, Ng);
        memset(fsum, 0, m.nparams * 4);
        for (int p = 0; p < P; p++) {
            size_t lo, hi;
            dm_shard_even(S, P, p, &lo, &hi);
            adapter_batch b = {(int)(hi - lo), U + lo, Pp + lo, Ng + lo * 4, S};
            adapter_fisher_begin(&m);
            CHECK(adapter_fisher_accumulate(&m, &a, &w.t, &b) == DM_OK, "fisher");
            for (size_t j = 0; j < m.nparams; j++) fsum[j] += m.fisher_acc[j];
        }
        memcpy(m.fisher_acc, fsum, m.nparams * 4);
        adapter_fisher_commit(&m);
        adapter_reservoir_add(&buf, (uint64_t)t, win[t], NWIN);
    }
    CHECK(adapter_ewc_loss(&m) == 0, "EWC zero right after a commit (theta = theta*)");
    o->nparams = m.nparams;
    o->params = malloc(m.nparams * 4);
    memcpy(o->params, m.params_mem, m.nparams * 4);
    o->buffered = buf.n;
    free(gsum);
    free(fsum);
    adapter_reservoir_free(&buf);
    model_free(&m, &a);
    world_free(&w);
}

static void test_stream(void)
{
    stream_out o1, o3;
    run_stream(1, &o1);
    run_stream(3, &o3);
    double d = 0;
    for (size_t j = 0; j < o1.nparams; j++) d = fmax(d, fabs(o1.params[j] - o3.params[j]));
    printf("# stream (3 windows x 12 steps, replay, Fisher/EWC, EMA): window sample loss %.4f before "
           "-> %.4f after training (summed over windows), EWC term %.3g; 1 vs 3 simulated ranks: "
           "max |w1 - w3| = %.2g\n", o1.first_rec, o1.last_rec, o1.ewc, d);
    CHECK(o1.last_rec < o1.first_rec, "training on the windows does not lower their loss");
    CHECK(o1.buffered == 64, "buffer holds %zu", o1.buffered);
    CHECK(o1.ewc > 0, "EWC term inactive in the last window: %g", o1.ewc);
    CHECK(d < 1e-4, "1 and 3 ranks drift apart by %g", d);
    free(o1.params);
    free(o3.params);
}

/* ---- 10c. base latents: RMS norm, balancing, recent taste (adapter_latents.h) ---------------- */

/* rms by rows in long double: the definition sqrt((1/n) sum_r |x_r|^2) */
static double rms_naive(const float *x, size_t n, size_t d)
{
    long double s = 0;
    for (size_t r = 0; r < n; r++) {
        long double row = 0;
        for (size_t q = 0; q < d; q++) row += (long double)x[r * d + q] * x[r * d + q];
        s += row;
    }
    return n ? (double)sqrtl(s / (long double)n) : 0.0;
}

static void test_latents_balance(void)
{
    enum { NU = 37, NI = 53, D = 6 };
    dm_rng g;
    dm_rng_seed(&g, 301);
    float *h = tl_randn_new(&g, NU * D, 0.05), *z = tl_randn_new(&g, NI * D, 2.0); /* the two scales of a base model */
    float hs[NU * D], zs[NI * D];
    double rh = adapter_latents_rms(h, NU, D), rz = adapter_latents_rms(z, NI, D);
    NEAR(rh, rms_naive(h, NU, D), 1e-12 * rh, "rms(h) against the row-wise long double sum");
    NEAR(rz, rms_naive(z, NI, D), 1e-12 * rz, "rms(z)");
    CHECK(adapter_latents_rms(z, 0, D) == 0.0, "rms of no rows is 0");
    double c = adapter_latents_balance(rz, rh);
    NEAR(c, sqrt(rz / rh), 1e-15 * c, "c = sqrt(rms_z / rms_h)");
    CHECK(adapter_latents_balance(0.0, rh) == 1.0 && adapter_latents_balance(rz, 0.0) == 1.0, "c = 1 when a side is zero");
    adapter_latents_scale(h, NU * D, c, hs);
    adapter_latents_unscale(z, NI * D, c, zs);
    CHECK(hs[5] == (float)(h[5] * c) && zs[7] == (float)(z[7] / c), "h c and z / c rounded once to float");
    /* both sides at sqrt(rms_z rms_h), up to float rounding of the entries (2^-24 relative) */
    double target = sqrt(rz * rh), sh = adapter_latents_rms(hs, NU, D), sz = adapter_latents_rms(zs, NI, D);
    NEAR(sh, target, 1e-6 * target, "balanced users' RMS norm");
    NEAR(sz, target, 1e-6 * target, "balanced items' RMS norm");
    /* scores unchanged: |h.z - hs.zs| <= 1e-6 of the largest |score| */
    double dmax = 0, smax = 0;
    for (int u = 0; u < NU; u++)
        for (int i = 0; i < NI; i++) {
            double a = 0, b = 0;
            for (int q = 0; q < D; q++) a += (double)h[u * D + q] * z[i * D + q], b += (double)hs[u * D + q] * zs[i * D + q];
            dmax = fmax(dmax, fabs(a - b)), smax = fmax(smax, fabs(a));
        }
    printf("# balance: RMS norms %.4g (users) and %.4g (items) -> %.4g and %.4g (c = %.4g); scores max |diff| %.2g of %.3g\n", rh, rz, sh, sz, c,
           dmax, smax);
    CHECK(dmax <= 1e-6 * smax, "scores moved by %g (max |score| %g)", dmax, smax);
    memcpy(hs, h, sizeof hs);
    adapter_latents_scale(hs, NU * D, c, hs); /* in place */
    CHECK(hs[11] == (float)(h[11] * c), "in-place scale");
    free(h);
    free(z);
}

/* taste_u(w) by its definition: every interaction of u (no time-order shortcut), double sums */
static void taste_naive(const dm_dataset *d, int64_t w, double tau, const float *z, size_t dz, double *out)
{
    for (size_t u = 0; u < d->n_users; u++) {
        double *dst = out + u * dz, wsum = 0;
        for (size_t q = 0; q < dz; q++) dst[q] = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
            if (d->window[j] >= (int32_t)w) continue;
            double a = exp(-(double)(d->window_start[w] - d->time[j]) / tau);
            if (a < 1e-6) continue;
            for (size_t q = 0; q < dz; q++) dst[q] += a * z[(size_t)d->item[j] * dz + q];
            wsum += a;
        }
        for (size_t q = 0; q < dz && wsum > 0; q++) dst[q] /= wsum;
    }
}

static void test_latents_taste(void)
{
    /* known answer: 2 users, 3 items (d_z 2), windows [100, 200) [200, 300) [300, 400); the row
     * has a column before and after the taste (ld 4), which must stay untouched */
    int64_t off[3] = {0, 4, 5}, time[5] = {50, 150, 250, 350, 320}, ws[4] = {100, 200, 300, 400};
    int32_t item[5] = {0, 1, 2, 0, 1}, win[5] = {-1, 0, 1, 2, 2};
    float z[6] = {1, 0, 0, 2, -1, 1};
    dm_dataset d;
    memset(&d, 0, sizeof d);
    d.n_users = 2, d.n_items = 3, d.n_inter = 5, d.user_off = off, d.item = item, d.time = time, d.window = win;
    d.n_windows = 3, d.window_start = ws;
    NEAR(adapter_latents_tau(&d, 0, 0), 100, 0, "tau at window 0: its own length");
    NEAR(adapter_latents_tau(&d, 2, 0), 100, 0, "tau at window 2: the length of window 1");
    NEAR(adapter_latents_tau(&d, 2, 7.5), 7.5, 0, "tau = tau_ms when set");
    int64_t flat[4] = {100, 100, 100, 100};
    d.window_start = flat;
    NEAR(adapter_latents_tau(&d, 1, 0), 1, 0, "tau = 1 ms for an empty window");
    d.window_start = ws;
    float out[2 * 4];
    for (int k = 0; k < 8; k++) out[k] = 9;
    adapter_latents_taste(&d, 2, 100, z, 2, out + 1, 4);
    /* user 0 before window 2: items 0 (t 50), 1 (t 150), 2 (t 250); t_w = 300: weights e^-2.5,
     * e^-1.5, e^-0.5 on z = (1, 0), (0, 2), (-1, 1) */
    double a0 = exp(-2.5), a1 = exp(-1.5), a2 = exp(-0.5), sa = a0 + a1 + a2;
    NEAR(out[1], (a0 - a2) / sa, 1e-7, "user 0 taste[0]");
    NEAR(out[2], (2 * a1 + a2) / sa, 1e-7, "user 0 taste[1]");
    CHECK(out[5] == 0 && out[6] == 0, "user 1 has no interaction before window 2: taste 0");
    CHECK(out[0] == 9 && out[3] == 9 && out[4] == 9 && out[7] == 9, "columns outside the taste untouched");
    /* tau 10: the weights e^-25 and e^-15 fall below 1e-6 and are dropped; item 2 alone is left */
    adapter_latents_taste(&d, 2, 10, z, 2, out + 1, 4);
    CHECK(out[1] == -1 && out[2] == 1, "weights below 1e-6 dropped: %g %g", out[1], out[2]);

    /* random: 40 users, 25 items, 5 windows, times sorted per user; against the naive twin. The
     * taste adds up to 39 float terms a_j z_j and divides once; each rounding is at most 2^-24 of
     * a partial sum <= max|z| sum a_j, so |diff| <= (39 + 2) 2^-24 max|z| */
    enum { NU = 40, NI = 25, DZ = 3, NW = 5 };
    dm_rng g;
    dm_rng_seed(&g, 302);
    int64_t roff[NU + 1], rws[NW + 1];
    for (int k = 0; k <= NW; k++) rws[k] = 1000 + 500 * k;
    int64_t *rt = malloc(NU * 40 * sizeof *rt);
    int32_t *ri = malloc(NU * 40 * sizeof *ri), *rw = malloc(NU * 40 * sizeof *rw);
    size_t n = 0;
    for (int u = 0; u < NU; u++) {
        roff[u] = (int64_t)n;
        int m = (int)dm_rng_below(&g, 40), t = (int)dm_rng_below(&g, 300);
        for (int k = 0; k < m; k++, n++) {
            t += (int)dm_rng_below(&g, 200);
            rt[n] = t, ri[n] = (int32_t)dm_rng_below(&g, NI);
            rw[n] = -1;
            for (int q = 0; q < NW; q++)
                if (t >= rws[q]) rw[n] = (int32_t)q;
        }
    }
    roff[NU] = (int64_t)n;
    float *rz = tl_randn_new(&g, NI * DZ, 2.0), *got = malloc(NU * DZ * sizeof *got);
    double *ref = malloc(NU * DZ * sizeof *ref), worst = 0;
    dm_dataset r;
    memset(&r, 0, sizeof r);
    r.n_users = NU, r.n_items = NI, r.n_inter = n, r.user_off = roff, r.item = ri, r.time = rt, r.window = rw;
    r.n_windows = NW, r.window_start = rws;
    for (int w = 0; w < NW; w++)
        for (int tk = 0; tk < 2; tk++) { /* tau: the window length, and a short fixed one */
            double tau = adapter_latents_tau(&r, w, tk ? 120.0 : 0.0);
            adapter_latents_taste(&r, w, tau, rz, DZ, got, DZ);
            taste_naive(&r, w, tau, rz, DZ, ref);
            for (size_t k = 0; k < NU * DZ; k++) worst = fmax(worst, fabs(got[k] - ref[k]));
        }
    double tol = 41 * ldexp(1.0, -24) * tl_maxabs(rz, NI * DZ);
    printf("# recent taste: %zu interactions, 5 windows x 2 taus against the double-precision twin: max |diff| %.2g (tol %.2g)\n", n, worst, tol);
    CHECK(worst <= tol, "taste differs from the naive twin by %g > %g", worst, tol);
    TL_FREE(rt, ri, rw, rz, got, ref);
}

/* ---- 10d. fixed-point chunk sums (adapter_chunks.h) ------------------------------------------ */

static void test_chunks_fix(void)
{
    CHECK(adapter_chunks_count(0) == 0 && adapter_chunks_count(1) == 1 && adapter_chunks_count(ADAPTER_CHUNK) == 1 &&
              adapter_chunks_count(ADAPTER_CHUNK + 1) == 2,
          "chunk counts");
    /* half a unit rounds away from zero */
    const float half = (float)ldexp(1.0, -41), x[4] = {half, -half, 3 * half, 0.75f};
    int64_t acc[4] = {0, 0, 0, 0};
    CHECK(adapter_chunks_fix_add(acc, x, 4) == DM_OK, "fix_add");
    CHECK(acc[0] == 1 && acc[1] == -1 && acc[2] == 2 && acc[3] == (int64_t)(0.75 * ADAPTER_CHUNK_FIX), "round half away from zero: %lld %lld %lld",
          (long long)acc[0], (long long)acc[1], (long long)acc[2]);
    float back[4];
    adapter_chunks_fix_get(acc, 4, back);
    CHECK(back[3] == 0.75f, "0.75 comes back exactly");
    /* round trip of random values: |x - back| <= 2^-41 + |x| 2^-24 */
    dm_rng g;
    dm_rng_seed(&g, 303);
    float *v = tl_randn_new(&g, 1000, 3.0), *vb = malloc(1000 * sizeof *vb);
    int64_t *va = calloc(1000, sizeof *va);
    CHECK(adapter_chunks_fix_add(va, v, 1000) == DM_OK, "fix_add");
    adapter_chunks_fix_get(va, 1000, vb);
    double worst = 0;
    for (int k = 0; k < 1000; k++) worst = fmax(worst, fabs(vb[k] - v[k]) - fabs(v[k]) * ldexp(1.0, -24));
    CHECK(worst <= ldexp(1.0, -41), "round trip off by %g beyond float rounding", worst);
    const float bad[2] = {1.0f, INFINITY}, big[1] = {1e10f};
    printf("# (two 'not finite or too large' errors expected)\n");
    CHECK(adapter_chunks_fix_add(va, bad, 2) == DM_ENUM, "an infinite gradient is an error");
    CHECK(adapter_chunks_fix_add(va, big, 1) == DM_ENUM, "a gradient over 9e18 / 2^40 is an error");
    free(v);
    free(vb);
    free(va);
}

/* the chunked gradient / Fisher of a batch of N = 150 examples (chunks 64, 64, 22): any split of
 * the chunks over 1, 2, 3 simulated ranks, and the chunks summed in reverse, give bitwise the same
 * integers; against the double sum of the chunks' float results within nchunks 2^-41 + 2^-24
 * relative; against one float pass over the whole batch within 1e-5 of the largest entry (float
 * grouping) */
static void test_chunks_sum(void)
{
    enum { N = 150 };
    adapter_config c;
    small_config(&c);
    c.max_batch = N;
    world w;
    world_make(&w, &c, 304);
    adapter whole, m;
    adapter_acts wa, a;
    CHECK(model_make(&whole, &wa, &c, 305) == 0, "init");
    c.max_batch = ADAPTER_CHUNK;
    CHECK(model_make(&m, &a, &c, 305) == 0, "init");
    memcpy(m.params_mem, whole.params_mem, m.nparams * sizeof(float));
    size_t np = m.nparams, nch = adapter_chunks_count(N);
    int64_t *fix = malloc(np * sizeof *fix), *tot = malloc(np * sizeof *tot), *part = malloc(np * sizeof *part);
    double *dsum = malloc(np * sizeof *dsum);
    float *got = malloc(np * sizeof *got);
    for (int what = 0; what < 2; what++) {
        const char *nm = what == ADAPTER_CHUNKS_FISHER ? "Fisher" : "gradient";
        CHECK(adapter_chunks_sum(&m, &a, &w.t, w.user, w.pos, w.neg, N, 0, nch, what, fix) == DM_OK, "chunk sum");
        for (int P = 1; P <= 3; P++) {
            memset(tot, 0, np * sizeof *tot);
            for (int p = 0; p < P; p++) {
                size_t clo, chi;
                dm_shard_even(nch, P, p, &clo, &chi);
                CHECK(adapter_chunks_sum(&m, &a, &w.t, w.user, w.pos, w.neg, N, clo, chi, what, part) == DM_OK, "chunk sum");
                for (size_t k = 0; k < np; k++) tot[k] += part[k];
            }
            CHECK(!memcmp(tot, fix, np * sizeof *fix), "%s: %d simulated ranks differ from 1", nm, P);
        }
        memset(tot, 0, np * sizeof *tot);
        memset(dsum, 0, np * sizeof *dsum);
        for (size_t ch = nch; ch-- > 0;) { /* reverse order; the float results summed in double */
            CHECK(adapter_chunks_sum(&m, &a, &w.t, w.user, w.pos, w.neg, N, ch, ch + 1, what, part) == DM_OK, "chunk sum");
            for (size_t k = 0; k < np; k++) tot[k] += part[k];
            const float *x = what == ADAPTER_CHUNKS_FISHER ? m.fisher_acc : m.grads_mem;
            for (size_t k = 0; k < np; k++) dsum[k] += x[k];
        }
        CHECK(!memcmp(tot, fix, np * sizeof *fix), "%s: the chunks summed in reverse differ", nm);
        adapter_chunks_fix_get(fix, np, got);
        double dchunk = 0, dwhole = 0, gmax = 0;
        for (size_t k = 0; k < np; k++) dchunk = fmax(dchunk, fabs(got[k] - dsum[k]) - fabs(dsum[k]) * ldexp(1.0, -24));
        adapter_batch b = {N, w.user, w.pos, w.neg, N};
        if (what == ADAPTER_CHUNKS_FISHER) {
            adapter_fisher_begin(&whole);
            CHECK(adapter_fisher_accumulate(&whole, &wa, &w.t, &b) == DM_OK, "whole-batch Fisher");
        } else {
            adapter_zero_grad(&whole);
            CHECK(adapter_train_step(&whole, &wa, &w.t, &b, NULL) == DM_OK, "whole-batch gradient");
        }
        const float *ref = what == ADAPTER_CHUNKS_FISHER ? whole.fisher_acc : whole.grads_mem;
        for (size_t k = 0; k < np; k++) dwhole = fmax(dwhole, fabs(got[k] - ref[k])), gmax = fmax(gmax, fabs(ref[k]));
        printf("# chunked %s (N %d, %zu chunks, %zu params): 1/2/3 ranks and reverse order bitwise; vs the chunks' double sum %.2g "
               "beyond float rounding; vs one whole-batch pass max |diff| %.2g of max %.3g\n",
               nm, N, nch, np, fmax(dchunk, 0), dwhole, gmax);
        CHECK(dchunk <= (double)nch * ldexp(1.0, -41), "%s: off the chunks' sum by %g", nm, dchunk);
        CHECK(dwhole <= 1e-5 * gmax, "%s: off the whole batch by %g (max %g)", nm, dwhole, gmax);
    }
    TL_FREE(fix, tot, part, dsum, got);
    model_free(&m, &a);
    model_free(&whole, &wa);
    world_free(&w);
}

/* ---- 11. PyTorch / NumPy parity -------------------------------------------------------------- */

/* The case's settings as adapter.* keys over the key table's defaults (KL, EWC and EMA on), its
 * sizes as given. */
static void torch_config(const dm_json *cs, int naive, adapter_config *c)
{
    const dm_json *ad = dm_json_get(cs, "adam");
    char s[10][96];
    snprintf(s[0], sizeof s[0], "adapter.hidden=%lld", tl_jint(cs, "hidden"));
    snprintf(s[1], sizeof s[1], "adapter.negatives=%lld", tl_jint(cs, "negatives"));
    snprintf(s[2], sizeof s[2], "adapter.loss=%s", dm_json_get(cs, "loss")->str);
    snprintf(s[3], sizeof s[3], "adapter.gate=%s", tl_jint(cs, "gate") ? "true" : "false");
    snprintf(s[4], sizeof s[4], "adapter.sigma=%.17g", tl_jnum(cs, "sigma"));
    snprintf(s[5], sizeof s[5], "adapter.lambda_ewc=%.17g", tl_jnum(cs, "lambda_ewc"));
    snprintf(s[6], sizeof s[6], "adapter.lr=%.17g", tl_jnum(ad, "lr"));
    snprintf(s[7], sizeof s[7], "adapter.beta1=%.17g", tl_jnum(ad, "beta1"));
    snprintf(s[8], sizeof s[8], "adapter.beta2=%.17g", tl_jnum(ad, "beta2"));
    snprintf(s[9], sizeof s[9], "adapter.eps=%.17g", tl_jnum(ad, "eps"));
    char e[96];
    snprintf(e, sizeof e, "adapter.ema_decay=%.17g", tl_jnum(ad, "ema_decay"));
    const char *sets[] = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], e,
                          "adapter.serve_rows=7", NULL};
    config_from(c, sets);
    set_sizes(c, (int)tl_jint(cs, "n_items"), (int)tl_jint(cs, "n_users"), (int)tl_jint(cs, "d_cf"),
              (int)tl_jint(cs, "d"), (int)tl_jint(cs, "ds_item"), (int)tl_jint(cs, "ds_user"),
              (int)tl_jint(cs, "B"));
    c->naive = naive;
}

static void torch_case(const char *dir, const dm_json *cs, int naive)
{
    const char *name = dm_json_get(cs, "name")->str;
    adapter_config c;
    torch_config(cs, naive, &c);
    const dm_json *ad = dm_json_get(cs, "adam");
    const int B = c.max_batch, K = c.negatives;
    adapter m;
    adapter_acts a;
    if (adapter_init(&m, &c) != DM_OK || adapter_acts_init(&a, &c) != DM_OK) {
        CHECK(0, "init for %s", name);
        return;
    }
    const size_t P = m.nparams, NI = (size_t)c.n_items, NU = (size_t)c.n_users;
    CHECK((long long)P == tl_jint(cs, "nparams"), "%s: slab of %zu floats, reference %lld", name, P,
          tl_jint(cs, "nparams"));
    float *p = tl_slurp(dir, name, "_params.f32", P * 4);
    float *e_cf = tl_slurp(dir, name, "_e_cf.f32", NI * c.d_cf * 4), *zb = tl_slurp(dir, name, "_z_base.f32", NI * c.d * 4);
    float *si = tl_slurp(dir, name, "_s_item.f32", NI * c.ds_item * 4), *r = tl_slurp(dir, name, "_r.f32", NU * c.d_cf * 4);
    float *hb = tl_slurp(dir, name, "_h_base.f32", NU * c.d * 4), *su = tl_slurp(dir, name, "_s_user.f32", NU * c.ds_user * 4);
    int32_t *user = tl_slurp(dir, name, "_user.i32", B * 4), *pos = tl_slurp(dir, name, "_pos.i32", B * 4);
    int32_t *neg = tl_slurp(dir, name, "_neg.i32", (size_t)B * K * 4);
    double *grec = tl_slurp(dir, name, "_grad_rec.f64", P * 8), *gall = tl_slurp(dir, name, "_grad_all.f64", P * 8);
    double *fis = tl_slurp(dir, name, "_fisher.f64", P * 8), *eg = tl_slurp(dir, name, "_ewc_grad.f64", P * 8);
    float *F = tl_slurp(dir, name, "_ewc_F.f32", P * 4), *anc = tl_slurp(dir, name, "_ewc_anchor.f32", P * 4);
    double *adam = tl_slurp(dir, name, "_adam.f64", P * 8), *ema = tl_slurp(dir, name, "_ema.f64", P * 8);
    double *zd = tl_slurp(dir, name, "_zdyn.f64", NI * c.d * 8), *hd = tl_slurp(dir, name, "_hdyn.f64", NU * c.d * 8);
    if (!p || !e_cf || !zb || !si || !r || !hb || !su || !user || !pos || !neg || !grec || !gall ||
        !fis || !eg || !F || !anc || !adam || !ema || !zd || !hd) {
        CHECK(0, "reference files of %s missing", name);
        goto done;
    }
    const char *kind = naive ? "naive" : "fast ";
    adapter_tables t = {e_cf, zb, si, r, hb, su};
    adapter_batch b = {B, user, pos, neg, tl_jnum(cs, "norm")};
    memcpy(m.params_mem, p, P * 4);
    memcpy(m.ema_mem, p, P * 4);
    adapter_loss l;
    double gmax, d;
    /* rec alone, then rec + KL */
    m.cfg.kl = 0;
    adapter_zero_grad(&m);
    CHECK(adapter_train_step(&m, &a, &t, &b, &l) == DM_OK, "step");
    NEAR(l.rec, tl_jnum(cs, "loss_rec"), 1e-6 * fabs(tl_jnum(cs, "loss_rec")), "rec loss vs torch");
    d = tl_maxdiff_ref(m.grads_mem, grec, P, &gmax);
    printf("# torch %-15s %s: L_rec %.8f (diff %.2g), grad L_rec max diff %.2g (max |g| %.2g)\n",
           name, kind, l.rec, fabs(l.rec - tl_jnum(cs, "loss_rec")), d, gmax);
    CHECK(d <= 1e-5 * gmax, "%s: rec gradient differs from torch by %g", name, d);
    /* per tensor, relative to its own scale (floored at 1% of the largest: a tensor whose true
     * gradient vanishes, e.g. item.b2 without the gate under the softmax, which is invariant to a
     * shift shared by all candidates, holds only rounding noise) */
    double worst = 0;
    for (int k = 0; k < ADAPTER_NTENSORS; k++) {
        size_t n = adapter_tensor_info(&m.cfg, k, NULL, NULL, NULL);
        double tm;
        double dk = tl_maxdiff_ref(m.grads_mem + m.offset[k], grec + m.offset[k], n, &tm);
        worst = fmax(worst, dk / fmax(tm, 1e-2 * gmax));
    }
    CHECK(worst < 1e-4, "%s: a tensor's gradient differs by %g of its largest element", name, worst);
    m.cfg.kl = 1;
    adapter_zero_grad(&m);
    CHECK(adapter_train_step(&m, &a, &t, &b, &l) == DM_OK, "step");
    NEAR(l.kl, tl_jnum(cs, "loss_kl"), 1e-6 * fabs(tl_jnum(cs, "loss_kl")), "KL loss vs torch");
    d = tl_maxdiff_ref(m.grads_mem, gall, P, &gmax);
    printf("#   L_kl %.8f (diff %.2g), grad (L_rec + L_kl) max diff %.2g (max |g| %.2g), per-tensor "
           "rel %.2g\n", l.kl, fabs(l.kl - tl_jnum(cs, "loss_kl")), d, gmax, worst);
    CHECK(d <= 1e-5 * gmax, "%s: rec + KL gradient differs from torch by %g", name, d);
    /* Fisher */
    adapter_fisher_begin(&m);
    b.norm = (double)tl_jint(cs, "fisher_norm");
    CHECK((naive ? adapter_fisher_accumulate_naive : adapter_fisher_accumulate)(&m, &a, &t, &b) == DM_OK,
          "fisher");
    b.norm = tl_jnum(cs, "norm");
    d = tl_maxdiff_ref(m.fisher_acc, fis, P, &gmax);
    printf("#   Fisher max diff %.2g (max F %.2g)", d, gmax);
    CHECK(d <= 1e-5 * gmax, "%s: Fisher differs from torch by %g", name, d);
    /* EWC */
    memcpy(m.fisher_mem, F, P * 4);
    memcpy(m.anchor_mem, anc, P * 4);
    m.has_fisher = 1;
    NEAR(adapter_ewc_loss(&m), tl_jnum(cs, "loss_ewc"), 1e-6 * fabs(tl_jnum(cs, "loss_ewc")), "EWC loss vs torch");
    float *gg = calloc(P, 4);
    adapter_ewc_grad(&m, gg);
    d = tl_maxdiff_ref(gg, eg, P, &gmax);
    printf(", EWC loss diff %.2g, grad max diff %.2g (max %.2g)\n",
           fabs(adapter_ewc_loss(&m) - tl_jnum(cs, "loss_ewc")), d, gmax);
    CHECK(d <= 1e-5 * gmax, "%s: EWC gradient differs from torch by %g", name, d);
    free(gg);
    /* dynamic latents */
    float *z = malloc(NI * c.d * 4), *h = malloc(NU * c.d * 4);
    adapter_item_latents(&m, &a, &t, 0, NULL, c.n_items, z, NULL);
    adapter_user_latents(&m, &a, &t, 0, NULL, c.n_users, h, NULL);
    double dz = tl_maxdiff_ref(z, zd, NI * c.d, NULL), dh = tl_maxdiff_ref(h, hd, NU * c.d, NULL);
    CHECK(dz < 1e-5 && dh < 1e-5, "%s: latents differ from torch by %g / %g", name, dz, dh);
    free(z);
    free(h);
    /* Adam on rec + KL + EWC, EMA after each step */
    const int steps = (int)tl_jint(ad, "steps");
    for (int s = 0; s < steps; s++) {
        adapter_zero_grad(&m);
        adapter_train_step(&m, &a, &t, &b, NULL);
        adapter_adam_step(&m);
        adapter_ema_update(&m);
    }
    double da = tl_maxdiff_ref(m.params_mem, adam, P, NULL), de = tl_maxdiff_ref(m.ema_mem, ema, P, NULL);
    printf("#   Adam (%d steps, lr %.3g, with EWC): max |w_C - w_torch| %.2g, EMA max diff %.2g, "
           "latents max diff %.2g\n", steps, c.lr, da, de, fmax(dz, dh));
    CHECK(da < 2e-5 && de < 2e-5, "%s: Adam / EMA differ from torch by %g / %g", name, da, de);
done:
    TL_FREE(p, e_cf, zb, si, r, hb, su, user, pos, neg, grec, gall, fis, eg, F, anc, adam, ema, zd, hd);
    model_free(&m, &a);
}

static void numpy_summary_case(const char *dir, const dm_json *cs)
{
    const char *name = dm_json_get(cs, "name")->str;
    adapter_summary_config sc = {(unsigned)tl_jint(cs, "features"), (int)tl_jint(cs, "recent"), tl_jnum(cs, "tau_ms")};
    const int nu = (int)tl_jint(cs, "n_users"), ni = (int)tl_jint(cs, "n_items");
    const size_t n = (size_t)tl_jint(cs, "n"), np = (size_t)tl_jint(cs, "n_prev");
    int dsi, dsu;
    adapter_summary_dims(sc.features, &dsi, &dsu);
    CHECK(dsi == tl_jint(cs, "ds_item") && dsu == tl_jint(cs, "ds_user"), "%s: widths %d %d", name, dsi, dsu);
    int32_t *cu = tl_slurp(dir, name, "_cu.bin", n * 4), *ci = tl_slurp(dir, name, "_ci.bin", n * 4);
    int64_t *ct = tl_slurp(dir, name, "_ct.bin", n * 8);
    int32_t *pu = tl_slurp(dir, name, "_pu.bin", np * 4), *pi = tl_slurp(dir, name, "_pi.bin", np * 4);
    int64_t *pt = tl_slurp(dir, name, "_pt.bin", np * 8);
    double *ri = tl_slurp(dir, name, "_s_item.f64", (size_t)ni * dsi * 8);
    double *ru = tl_slurp(dir, name, "_s_user.f64", (size_t)nu * dsu * 8);
    float *si = calloc((size_t)ni * dsi + 1, 4), *su = calloc((size_t)nu * dsu + 1, 4);
    if (!cu || !ci || !ct || !pu || !pi || !pt || !ri || !ru) {
        CHECK(0, "summary reference files of %s missing", name);
    } else {
        adapter_events cur = {n, cu, ci, ct}, prev = {np, pu, pi, pt};
        int64_t t0 = (int64_t)tl_jint(cs, "t_begin"), t1 = (int64_t)tl_jint(cs, "t_end");
        double d = 0;
        for (int naive = 0; naive < 2; naive++) {
            CHECK((naive ? adapter_summaries_naive : adapter_summaries)(&sc, nu, ni, &cur, np ? &prev : NULL,
                                                                      t0, t1, si, su) == DM_OK,
                  "summaries");
            d = fmax(d, fmax(tl_maxdiff_ref(si, ri, (size_t)ni * dsi, NULL), tl_maxdiff_ref(su, ru, (size_t)nu * dsu, NULL)));
        }
        printf("# numpy summaries %-22s (features 0x%x, recent %d): max diff %.2g\n", name,
               sc.features, sc.recent, d);
        CHECK(d < 2e-6, "%s: summaries differ from NumPy by %g", name, d);
    }
    TL_FREE(cu, ci, ct, pu, pi, pt, ri, ru, si, su);
}

static void test_reference(void)
{
    tl_manifest mf;
    if (tl_manifest_open(&mf, "adapter", "dynmm-adapter-ref")) return;
    int nc = tl_each_case(&mf, "cases", torch_case, 1), ns = 0;
    for (const dm_json *cs = tl_json_first(mf.root, "summaries"); cs; cs = cs->next, ns++)
        numpy_summary_case(mf.dir, cs);
    CHECK(nc >= 3 && ns >= 4, "only %d model and %d summary reference cases", nc, ns);
    tl_manifest_close(&mf);
}

/* ---- settings from the key table ------------------------------------------------------------ */

/* adapter_config_from: every adapter.* key of the model lands in its own field (each set to a value
 * no other key has), the sizes stay the caller's. */
static void test_config_from(void)
{
    adapter_config c;
    const char *sets[] = {"adapter.hidden=33", "adapter.negatives=9", "adapter.serve_rows=77",
                          "adapter.loss=bce", "adapter.gate=false", "adapter.ema=false",
                          "adapter.kl=false", "adapter.ewc=false", "adapter.sigma=2.5",
                          "adapter.lambda_ewc=3.5", "adapter.fisher_decay=0.25",
                          "adapter.ema_decay=0.875", "adapter.lr=0.0625", "adapter.beta1=0.5",
                          "adapter.beta2=0.75", "adapter.eps=0.001", "adapter.zero_init=false", NULL};
    config_from(&c, sets);
    CHECK(c.hidden == 33 && c.negatives == 9 && c.serve_rows == 77 && c.loss == ADAPTER_LOSS_BCE,
          "hidden %d negatives %d serve_rows %d loss %d", c.hidden, c.negatives, c.serve_rows, c.loss);
    CHECK(!c.gate && !c.ema && !c.kl && !c.ewc && !c.zero_init, "switches %d %d %d %d %d", c.gate,
          c.ema, c.kl, c.ewc, c.zero_init);
    CHECK(c.sigma == 2.5f && c.sigma_user == 0.0f && c.lambda_ewc == 3.5f && c.fisher_decay == 0.25f &&
              c.ema_decay == 0.875f,
          "sigma %g / %g lambda %g decays %g %g", c.sigma, c.sigma_user, c.lambda_ewc, c.fisher_decay,
          c.ema_decay);
    CHECK(c.lr == 0.0625f && c.beta1 == 0.5f && c.beta2 == 0.75f && c.eps == 0.001f,
          "Adam %g %g %g %g", c.lr, c.beta1, c.beta2, c.eps);
    CHECK(c.n_items == 0 && c.n_users == 0 && c.d_cf == 0 && c.d == 0 && c.ds_item == 0 &&
              c.ds_user == 0 && c.max_batch == 0 && !c.naive,
          "sizes are the caller's");
    /* the other way round: every switch on */
    const char *on[] = {"adapter.gate=true", "adapter.ema=true", "adapter.kl=true", "adapter.ewc=true",
                        "adapter.zero_init=true", "adapter.loss=softmax", NULL};
    config_from(&c, on);
    CHECK(c.gate && c.ema && c.kl && c.ewc && c.zero_init && c.loss == ADAPTER_LOSS_SOFTMAX,
          "switches on %d %d %d %d %d, loss %d", c.gate, c.ema, c.kl, c.ewc, c.zero_init, c.loss);
}

int main(void)
{
    test_zero_init();
    test_fast_vs_naive();
    test_finite_differences();
    test_fisher();
    test_shards();
    test_ablations();
    test_serving();
    test_large();
    test_overfit();
    test_reservoir();
    test_plan();
    test_summaries_known();
    test_summaries_random();
    test_window_gather();
    test_stream();
    test_latents_balance();
    test_latents_taste();
    test_chunks_fix();
    test_chunks_sum();
    test_reference();
    test_config_from();
    return tap_done("test_adapter");
}
