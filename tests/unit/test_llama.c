/* test_llama.c: the C Llama decoder against the PyTorch reference (tests/reference/gen_llama.py):
 * logits, hidden states and loss of two models (grouped-query attention with an untied head; a tied
 * head with head_dim != hidden/heads, rope_theta 5e5 and llama3 rope scaling); soft-input gradients
 * against autograd and finite differences; the same weights read from a single file, from shards,
 * as F16/BF16 and from llama2.c .bin files (Meta's q/k layout permuted on load); KV-cache scoring
 * against the full forward; greedy decoding; every loader error with its message; the RMSNorm,
 * RoPE, SwiGLU and attention kernels against their naive twins. */
#include "../../src/core/err.h"
#include "../../src/lm/llama.h"
#include "../../src/lm/llama_ckpt.h"
#include "../../src/lm/safetensors.h"
#include "../../src/nn/rmsnorm.h"
#include "../../src/nn/rope.h"
#include "../../src/nn/swiglu.h"
#include "tap.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char refdir[4096];
static safetensors_file ref;

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", refdir, name); }

static int load(llama_model *m, const char *name)
{
    char p[4200];
    path_of(p, sizeof p, name);
    int rc = strstr(name, ".bin") ? llama_load_llama2c(m, p) : llama_load_hf(m, p);
    if (rc) {
        dm_error_print("test_llama");
        CHECK(0, "cannot load %s", name);
    }
    return rc;
}

static void rand_fill(float *x, size_t n, unsigned *s, float scale)
{
    for (size_t i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        x[i] = scale * ((float)(*s >> 8) / (float)(1 << 24) * 2.0f - 1.0f);
    }
}

/* ---- kernels against their naive twins ---- */
static void test_kernels(void)
{
    enum { N = 37, C = 40, H = 3, HD = 10, F = 24 };
    unsigned s = 7;
    float x[N * C], w[C], o1[N * C], o2[N * C], r1[N], r2[N], dy[N * C], dx1[N * C], dx2[N * C], dw1[C], dw2[C];
    rand_fill(x, N * C, &s, 2.0f);
    rand_fill(w, C, &s, 1.5f);
    rand_fill(dy, N * C, &s, 1.0f);
    nn_rmsnorm_forward(o1, r1, x, w, N, C, 1e-5f);
    nn_rmsnorm_forward_naive(o2, r2, x, w, N, C, 1e-5f);
    double d = tl_maxdiff_nan(o1, o2, N * C);
    memset(dx1, 0, sizeof dx1); memset(dx2, 0, sizeof dx2); memset(dw1, 0, sizeof dw1); memset(dw2, 0, sizeof dw2);
    nn_rmsnorm_backward(dx1, dw1, dy, x, w, r1, N, C);
    nn_rmsnorm_backward_naive(dx2, dw2, dy, x, w, r2, N, C);
    double dd = tl_maxdiff_nan(dx1, dx2, N * C), ddw = tl_maxdiff_nan(dw1, dw2, C);
    /* rmsnorm backward against central differences of L = sum dy * out in double */
    double fd = 0;
    for (int k = 0; k < 5; k++) {
        int r = 3 + 7 * k, c = 11 + 5 * k;
        double e = 1e-3, lp = 0, lm = 0, ss;
        for (int sg = -1; sg <= 1; sg += 2) {
            double xs[C], acc = 0;
            for (int j = 0; j < C; j++) xs[j] = x[r * C + j];
            xs[c] += sg * e;
            ss = 0;
            for (int j = 0; j < C; j++) ss += xs[j] * xs[j];
            double rs = 1.0 / sqrt(ss / C + 1e-5);
            for (int j = 0; j < C; j++) acc += dy[r * C + j] * xs[j] * rs * w[j];
            if (sg < 0) lm = acc; else lp = acc;
        }
        double g = (lp - lm) / (2 * e), err = fabs(g - dx1[r * C + c]);
        fd = err > fd ? err : fd;
    }
    printf("  rmsnorm vs naive: out %.3g, dinp %.3g, dw %.3g; dinp vs finite differences %.3g\n", d, dd, ddw, fd);
    CHECK(d < 1e-5 && dd < 1e-5 && ddw < 1e-4, "rmsnorm differs from naive");
    CHECK(fd < 1e-4, "rmsnorm backward vs finite differences %g", fd);

    /* RoPE: table vs double angles, inverse, norm preserved */
    int pos[N];
    for (int i = 0; i < N; i++) pos[i] = (i * 13) % 90;
    double inv[HD / 2];
    nn_rope_inv_freq(inv, HD, 10000.0);
    float ct[90 * HD / 2], st[90 * HD / 2], q1[N * 32], q2[N * 32], q0[N * 32];
    nn_rope_table(ct, st, 90, HD, inv);
    rand_fill(q0, N * 32, &s, 1.0f);
    memcpy(q1, q0, sizeof q1);
    memcpy(q2, q0, sizeof q2);
    nn_rope_forward(q1, 32, pos, N, H, HD, ct, st);
    nn_rope_forward_naive(q2, 32, pos, N, H, HD, inv);
    double dr = tl_maxdiff_nan(q1, q2, N * 32), tail = 0;
    for (int i = 0; i < N; i++) tail += fabs(q1[i * 32 + 30] - q0[i * 32 + 30]) + fabs(q1[i * 32 + 31] - q0[i * 32 + 31]);
    /* rotate_half: pair (0, hd/2) of head 0 at position p by angle p f_0 = p */
    double want0 = q0[1 * 32 + 0] * cos(13.0) - q0[1 * 32 + 5] * sin(13.0);
    nn_rope_backward(q1, 32, pos, N, H, HD, ct, st);
    double dinv = tl_maxdiff_nan(q1, q0, N * 32);
    nn_rope_backward_naive(q2, 32, pos, N, H, HD, inv);
    double dinv2 = tl_maxdiff_nan(q2, q0, N * 32);
    printf("  rope table vs naive %.3g; backward(forward) vs identity %.3g / naive %.3g; untouched tail %.3g\n", dr,
           dinv, dinv2, tail);
    CHECK(dr < 2e-6 && dinv < 2e-6 && dinv2 < 2e-6 && tail == 0, "rope kernels");
    memcpy(q1, q0, sizeof q1);
    nn_rope_forward(q1, 32, pos, N, H, HD, ct, st);
    NEAR(q1[1 * 32 + 0], want0, 1e-6, "rope rotate_half pair (0, hd/2) at position 13");

    /* SwiGLU */
    float gu[N * 2 * F], h1[N * F], h2[N * F], dh[N * F], dg1[N * 2 * F], dg2[N * 2 * F];
    rand_fill(gu, N * 2 * F, &s, 6.0f);
    rand_fill(dh, N * F, &s, 1.0f);
    nn_swiglu_forward(h1, gu, N, F, 2 * F);
    nn_swiglu_forward_naive(h2, gu, N, F, 2 * F);
    nn_swiglu_backward(dg1, dh, gu, N, F, 2 * F);
    nn_swiglu_backward_naive(dg2, dh, gu, N, F, 2 * F);
    double dsw = tl_maxdiff_nan(h1, h2, N * F), dswb = tl_maxdiff_nan(dg1, dg2, N * 2 * F);
    printf("  swiglu vs naive: out %.3g, grad %.3g\n", dsw, dswb);
    CHECK(dsw < 1e-5 && dswb < 1e-5, "swiglu differs from naive");

    /* attention: blocked (GEMM) vs naive, GQA, T crossing the 128-query block */
    int B = 2, T = 150, NH = 4, NKV = 2, hd = 8, S = (NH + 2 * NKV) * hd;
    float *qkv = malloc(sizeof(float) * B * T * S), *a1 = malloc(sizeof(float) * B * T * NH * hd),
          *a2 = malloc(sizeof(float) * B * T * NH * hd), *att1 = malloc(sizeof(float) * B * NH * T * T),
          *att2 = malloc(sizeof(float) * B * NH * T * T), *scr = malloc(sizeof(float) * 256 * T);
    rand_fill(qkv, (size_t)B * T * S, &s, 1.5f);
    llama_attention_forward(a1, att1, qkv, scr, B, T, NH, NKV, hd);
    llama_attention_forward_naive(a2, att2, qkv, scr, B, T, NH, NKV, hd);
    double da = tl_maxdiff_nan(a1, a2, (size_t)B * T * NH * hd), dat = tl_maxdiff_nan(att1, att2, (size_t)B * NH * T * T);
    llama_attention_forward(a1, NULL, qkv, scr, B, T, NH, NKV, hd);
    double dn = tl_maxdiff_nan(a1, a2, (size_t)B * T * NH * hd);
    printf("  attention blocked vs naive: out %.3g, weights %.3g, without weights %.3g\n", da, dat, dn);
    CHECK(da < 1e-5 && dat < 1e-6 && dn < 1e-5, "attention kernels differ");
    free(qkv); free(a1); free(a2); free(att1); free(att2); free(scr);
}

/* ---- model a: forward, backward, finite differences ---- */
static void test_model(const char *ckpt, const char *pre, int B, int T, llama_model *m)
{
    char nm[64];
    int D = m->cfg.dim, V = m->cfg.vocab_size;
    size_t n, ns;
#define R(x) (snprintf(nm, sizeof nm, "%s.%s", pre, x), nm)
    int *ids = tl_st_get_int(&ref, R("ids"), &n), *tg = tl_st_get_int(&ref, R("targets"), NULL);
    float *soft = tl_st_get(&ref, R("soft"), &ns), *rlog = tl_st_get(&ref, R("logits"), NULL), *rhid = tl_st_get(&ref, R("hidden"), NULL);
    float *rloss = tl_st_get(&ref, R("loss"), NULL), *rds = tl_st_get(&ref, R("dsoft"), NULL), *rds2 = tl_st_get(&ref, R("dsoft_hidden"), NULL);
    float *dh = tl_st_get(&ref, R("dhidden"), NULL), *rnorm = tl_st_get(&ref, "norm", NULL);
#undef R
    int n_soft = (int)(ns / D);
    size_t nl = (size_t)B * T * V, nh = (size_t)B * T * D;
    CHECK(n == (size_t)B * T, "%s ids has %zu entries", pre, n);

    CHECK(llama_forward(m, ids, soft, n_soft, tg, B, T, rnorm[0], LLAMA_KEEP) == DM_OK, "forward");
    double dl = tl_maxdiff_nan(m->acts.logits, rlog, nl), dhid = tl_maxdiff_nan(m->acts.xf, rhid, nh), mx = tl_maxabs(rlog, nl);
    printf("  %s logits vs pytorch: max diff %.3g (max |logit| %.3g); hidden %.3g; loss %.7g vs %.7g\n", ckpt, dl,
           mx, dhid, m->loss, rloss[0]);
    CHECK(dl < 1e-5 * (1 + mx) * 4, "%s logits differ by %g", ckpt, dl);
    CHECK(dhid < 2e-5, "%s hidden states differ by %g", ckpt, dhid);
    NEAR(m->loss, rloss[0], 2e-6 * (1 + fabs(rloss[0])), "loss");
    float loss_keep = m->loss;

    /* the inference path and the packed target rows give the same numbers */
    CHECK(llama_forward(m, ids, soft, n_soft, NULL, B, T, 1, 0) == DM_OK, "forward infer");
    double dli = tl_maxdiff_nan(m->acts.logits, rlog, nl);
    CHECK(dli < 1e-5 * (1 + mx) * 4, "inference logits differ by %g", dli);
    CHECK(llama_forward(m, ids, soft, n_soft, tg, B, T, rnorm[0], LLAMA_KEEP | LLAMA_TARGET_ROWS) == DM_OK,
          "forward target rows");
    NEAR(m->loss, loss_keep, 1e-6 * (1 + fabs(loss_keep)), "loss with LLAMA_TARGET_ROWS");
    float *dsoft_r = calloc(ns, sizeof(float));
    CHECK(llama_backward(m, NULL, NULL, dsoft_r) == DM_OK, "backward target rows");

    /* backward to the soft rows against autograd */
    float *dsoft = calloc(ns, sizeof(float)), *dsoft2 = calloc(ns, sizeof(float));
    CHECK(llama_forward(m, ids, soft, n_soft, tg, B, T, rnorm[0], LLAMA_KEEP) == DM_OK, "forward");
    CHECK(llama_backward(m, NULL, NULL, dsoft) == DM_OK, "backward");
    double ds = tl_maxdiff_nan(dsoft, rds, ns), mxs = tl_maxabs(rds, ns), dsr = tl_maxdiff_nan(dsoft_r, dsoft, ns);
    CHECK(llama_forward(m, ids, soft, n_soft, tg, B, T, rnorm[0], LLAMA_KEEP) == DM_OK, "forward");
    CHECK(llama_backward(m, NULL, dh, dsoft2) == DM_OK, "backward with dhidden");
    double ds2 = tl_maxdiff_nan(dsoft2, rds2, ns), mxs2 = tl_maxabs(rds2, ns);
    printf("  %s dsoft vs autograd: %.3g (max %.3g); with dhidden %.3g (max %.3g); packed rows vs full %.3g\n",
           ckpt, ds, mxs, ds2, mxs2, dsr);
    CHECK(ds < 1e-6 + 2e-4 * mxs, "dsoft differs by %g", ds);
    CHECK(ds2 < 1e-6 + 2e-4 * mxs2, "dsoft with dhidden differs by %g", ds2);
    CHECK(dsr < 1e-6 + 1e-5 * mxs, "dsoft with LLAMA_TARGET_ROWS differs by %g", dsr);

    /* central differences of the float32 loss along directions u (unit): dsoft.u against
     * (L(s + e u) - L(s - e u)) / 2e, whose error is the loss's rounding (~1e-7 |L|) / e plus
     * O(e^2) curvature; u = dsoft / |dsoft| (the largest signal) and two random directions */
    double gn = 0, worst = 0, e = 2e-3;
    for (size_t i = 0; i < ns; i++) gn += (double)dsoft[i] * dsoft[i];
    gn = sqrt(gn);
    float *u = malloc(ns * sizeof *u), *s0 = malloc(ns * sizeof *s0);
    memcpy(s0, soft, ns * sizeof *s0);
    unsigned seed = 99;
    for (int k = 0; k < 3; k++) {
        double un = 0, gu = 0, lp, lm;
        if (k == 0) memcpy(u, dsoft, ns * sizeof *u);
        else rand_fill(u, ns, &seed, 1.0f);
        for (size_t i = 0; i < ns; i++) un += (double)u[i] * u[i];
        for (size_t i = 0; i < ns; i++) {
            u[i] = (float)(u[i] / sqrt(un));
            gu += (double)dsoft[i] * u[i];
        }
        for (size_t i = 0; i < ns; i++) soft[i] = s0[i] + (float)e * u[i];
        llama_forward(m, ids, soft, n_soft, tg, B, T, rnorm[0], 0);
        lp = m->loss;
        for (size_t i = 0; i < ns; i++) soft[i] = s0[i] - (float)e * u[i];
        llama_forward(m, ids, soft, n_soft, tg, B, T, rnorm[0], 0);
        lm = m->loss;
        double err = fabs((lp - lm) / (2 * e) - gu) / gn;
        worst = err > worst ? err : worst;
    }
    memcpy(soft, s0, ns * sizeof *s0);
    printf("  %s dsoft vs finite differences along 3 directions: worst error %.3g of |dsoft| %.3g\n", ckpt, worst, gn);
    CHECK(worst < 5e-3, "finite differences disagree by %g of |dsoft|", worst);
    free(u);
    free(s0);
    free(ids); free(tg); free(soft); free(rlog); free(rhid); free(rloss); free(rds); free(rds2); free(dh); free(rnorm);
    free(dsoft); free(dsoft2); free(dsoft_r);
}

/* logits of another copy of the weights against a reference tensor */
static void test_variant(const char *ckpt, const char *pre, const char *want, int B, int T, double tol,
                         const llama_model *base)
{
    llama_model m;
    if (load(&m, ckpt)) return;
    char nm[64];
    snprintf(nm, sizeof nm, "%s.ids", pre);
    int *ids = tl_st_get_int(&ref, nm, NULL);
    snprintf(nm, sizeof nm, "%s.soft", pre);
    size_t ns;
    float *soft = tl_st_get(&ref, nm, &ns), *rl = tl_st_get(&ref, want, NULL);
    CHECK(llama_forward(&m, ids, soft, (int)(ns / m.cfg.dim), NULL, B, T, 1, 0) == DM_OK, "forward %s", ckpt);
    size_t nl = (size_t)B * T * m.cfg.vocab_size;
    double d = tl_maxdiff_nan(m.acts.logits, rl, nl);
    if (base) {
        int same = base->num_params == m.num_params &&
                   !memcmp(base->param_slab, m.param_slab, m.num_params * sizeof(float));
        printf("  %-12s logits vs %s: %.3g; weights bitwise as a/: %s\n", ckpt, want, d, same ? "yes" : "NO");
        CHECK(same, "%s weights differ from a/'s", ckpt);
    } else {
        printf("  %-12s logits vs %s: %.3g\n", ckpt, want, d);
    }
    CHECK(d < tol, "%s logits differ by %g", ckpt, d);
    free(ids); free(soft); free(rl);
    llama_free(&m);
}

/* ---- KV cache ---- */
static void test_cache(llama_model *m)
{
    size_t np, nt, no, nc, ne, nmt, nmo, ncs, nem, ns, ng;
    int *prefix = tl_st_get_int(&ref, "prefix", &np), *tok = tl_st_get_int(&ref, "cand_tokens", &nt), *greedy = tl_st_get_int(&ref, "greedy", &ng);
    int *mtok = tl_st_get_int(&ref, "mcand_tokens", &nmt);
    float *off_f = tl_st_get(&ref, "cand_offsets", &no), *rll = tl_st_get(&ref, "cand_ll", &nc), *esoft = tl_st_get(&ref, "esoft", &ne);
    float *rlls = tl_st_get(&ref, "cand_ll_soft", NULL), *moff_f = tl_st_get(&ref, "mcand_offsets", &nmo), *csoft = tl_st_get(&ref, "csoft", &ncs);
    float *emsoft = tl_st_get(&ref, "emsoft", &nem), *rmll = tl_st_get(&ref, "mcand_ll", NULL), *rmlls = tl_st_get(&ref, "mcand_ll_soft", NULL);
    float *soft = tl_st_get(&ref, "a.soft", &ns);
    int D = m->cfg.dim, V = m->cfg.vocab_size, n_soft = (int)(ns / D);
    int n_cand = (int)nc, n_m = (int)(nmo - 1);
    int64_t *off = malloc(no * sizeof *off), *moff = malloc(nmo * sizeof *moff);
    for (size_t i = 0; i < no; i++) off[i] = (int64_t)off_f[i];
    for (size_t i = 0; i < nmo; i++) moff[i] = (int64_t)moff_f[i];
    double *ll = calloc(16, sizeof *ll), *lls = calloc(16, sizeof *lls);

    /* the prefix's next-token distribution against the full forward's last row */
    /* appended in two calls to a cache of 8-row batches, and in one call to one of 3-row batches */
    llama_cache c, c3;
    CHECK(llama_cache_init(&c, m, 0, 8) == DM_OK, "cache init");
    CHECK(llama_cache_append(&c, prefix, soft, n_soft, 3) == DM_OK, "append");
    CHECK(llama_cache_append(&c, prefix + 3, soft, n_soft, (int)np - 3) == DM_OK, "append");
    CHECK(llama_cache_init(&c3, m, 0, 3) == DM_OK, "cache init");
    CHECK(llama_cache_append(&c3, prefix, soft, n_soft, (int)np) == DM_OK, "append in batches of 3 rows");
    double d3r = tl_maxdiff_nan(c.logp, c3.logp, V);
    CHECK(d3r < 1e-5, "3-row batches change logp by %g", d3r);
    llama_cache_free(&c3);
    CHECK(llama_forward(m, prefix, soft, n_soft, NULL, 1, (int)np, 1, 0) == DM_OK, "forward prefix");
    float *last = m->acts.logits + (np - 1) * V, lse = 0;
    double mxl = -INFINITY, s = 0;
    for (int j = 0; j < V; j++) mxl = last[j] > mxl ? last[j] : mxl;
    for (int j = 0; j < V; j++) s += exp(last[j] - mxl);
    lse = (float)(mxl + log(s));
    double dp = 0;
    for (int j = 0; j < V; j++) dp = fmax(dp, fabs(c.logp[j] - (last[j] - lse)));
    printf("  cache logp after the prefix vs full forward: %.3g\n", dp);
    CHECK(dp < 2e-5, "cache logp differs by %g", dp);

    /* candidates (one empty), scored plain and with a soft token after each */
    CHECK(llama_cache_score(&c, tok, off, n_cand, ll) == DM_OK, "score");
    double d1 = 0;
    for (int i = 0; i < n_cand; i++) d1 = fmax(d1, fabs(ll[i] - rll[i]));
    memset(ll, 0, 16 * sizeof *ll);
    CHECK(llama_cache_score_mixed(&c, tok, off, n_cand, NULL, 0, esoft, ll, lls) == DM_OK, "score soft");
    double d2 = 0, d3 = 0;
    for (int i = 0; i < n_cand; i++) {
        d2 = fmax(d2, fabs(ll[i] - rll[i]));
        d3 = fmax(d3, fabs(lls[i] - rlls[i]));
    }
    /* candidates with soft positions inside (rows of csoft) */
    CHECK(llama_cache_score_mixed(&c, mtok, moff, n_m, csoft, (int)(ncs / D), emsoft, ll, lls) == DM_OK,
          "score mixed");
    double d4 = 0, d5 = 0;
    for (int i = 0; i < n_m; i++) {
        d4 = fmax(d4, fabs(ll[i] - rmll[i]));
        d5 = fmax(d5, fabs(lls[i] - rmlls[i]));
    }
    printf("  candidate log-likelihoods vs pytorch: plain %.3g, with soft tokens %.3g (soft %.3g), soft positions "
           "%.3g (soft %.3g)\n", d1, d2, d3, d4, d5);
    CHECK(d1 < 1e-4 && d2 < 1e-4 && d3 < 1e-4 && d4 < 1e-4 && d5 < 1e-4, "cache scoring differs");
    CHECK(c.len == (int)np, "scoring changed the cache (len %d)", c.len);

    /* a candidate longer than a scoring batch is refused */
    int nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t long_off[2] = {0, 9};
    CHECK(llama_cache_score(&c, nine, long_off, 1, ll) != DM_OK, "9 tokens in 8 rows accepted");

    /* greedy decoding, then truncation back to the prefix restores logp */
    float *logp0 = malloc(V * sizeof *logp0);
    memcpy(logp0, c.logp, V * sizeof *logp0);
    int out[16], n_out = 0;
    CHECK(llama_generate_greedy(&c, (int)ng, -1, out, &n_out) == DM_OK, "greedy");
    int same = n_out == (int)ng;
    for (int i = 0; same && i < n_out; i++) same = out[i] == greedy[i];
    printf("  greedy: %d tokens, %s the reference\n", n_out, same ? "as" : "NOT as");
    CHECK(same, "greedy tokens differ");
    CHECK(llama_cache_truncate(&c, (int)np) == DM_OK, "truncate");
    CHECK(tl_maxdiff_nan(c.logp, logp0, V) < 1e-6, "truncate did not restore logp");
    CHECK(llama_cache_append(&c, prefix, soft, n_soft, m->cfg.max_seq) != DM_OK, "over-capacity append accepted");
    llama_cache_free(&c);
    free(prefix); free(tok); free(greedy); free(mtok); free(off_f); free(rll); free(esoft); free(rlls);
    free(moff_f); free(csoft); free(emsoft); free(rmll); free(rmlls); free(soft); free(off); free(moff); free(ll);
    free(lls); free(logp0);
}

/* ---- refused checkpoints ---- */
static void expect_error(const char *name, const char *want)
{
    char p[4200];
    path_of(p, sizeof p, name);
    llama_model m;
    dm_error_clear();
    int rc = strstr(name, ".bin") ? llama_load_llama2c(&m, p) : llama_load_hf(&m, p);
    CHECK(rc != DM_OK, "%s: loaded a bad checkpoint", name);
    CHECK(strstr(dm_error_message(), want) != NULL, "%s: message '%s' lacks '%s'", name, dm_error_message(), want);
    CHECK(rc != DM_OK || m.param_slab == NULL, "%s: model not freed", name);
    printf("  refused %-20s %s\n", name, dm_error_message());
    if (rc == DM_OK) llama_free(&m);
}

static void test_errors(void)
{
    expect_error("bad_shape", "tensor 'model.layers.1.self_attn.k_proj.weight' has shape [48, 16], expected [16, 48]");
    expect_error("bad_missing", "tensor 'model.layers.1.mlp.up_proj.weight' is missing");
    expect_error("bad_nohead", "tensor 'lm_head.weight' is missing");
    expect_error("bad_unknown", "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'");
    expect_error("bad_layer", "belongs to layer 1 but config.json says num_hidden_layers 1");
    expect_error("bad_dtype", "tensor 'model.norm.weight' has dtype I32");
    expect_error("bad_type", "model_type is 'mistral'");
    expect_error("bad_kvheads", "num_attention_heads 6 is not a multiple of num_key_value_heads 4");
    expect_error("bad_bias", "attention_bias true is not supported");
    expect_error("bad_act", "hidden_act 'gelu' is not supported");
    expect_error("bad_rope", "rope_scaling type 'linear' is not supported");
    expect_error("bad_nolayers", "missing \"intermediate_size\"");
    expect_error("bad_tied_head", "'lm_head.weight' differs from model.embed_tokens.weight");
    expect_error("bad_truncated", "lies beyond the end of the file");
    expect_error("bad_shard_absent", "model-00002-of-00003.safetensors' (listed for tensor");
    expect_error("bad_shard_wrong", "tensor 'model.norm.weight' is listed in shard");
    expect_error("bad_index", "model.safetensors.index.json': bad JSON");
    expect_error("bad_empty", "model.safetensors");
    expect_error("no_such_dir", "config.json");
    expect_error("bad_l2c_trunc.bin", "tensor 'wcls' needs bytes");
    expect_error("bad_l2c_long.bin", "12 bytes follow the last tensor ('wcls'");
    expect_error("bad_l2c_tied.bin", "bytes follow the last tensor ('freq_cis_imag'");
    expect_error("bad_l2c_heads.bin", "dim must be a positive multiple of n_heads");
    expect_error("bad_l2c_magic.bin", "versioned llama2.c export");
    expect_error("bad_l2c_short.bin", "too short for the llama2.c header");
    expect_error("no_such.bin", "cannot open");
}

int main(void)
{
    const char *rd = getenv("DM_REF_DIR");
    if (!rd) {
        printf("SKIP: DM_REF_DIR not set (run through tests/run.sh)\n");
        return 77;
    }
    if (tl_st_open_ref(&ref, refdir, sizeof refdir, rd, "llama", "test_llama")) return 1;
    test_kernels();

    /* the HF/Meta permutation */
    size_t nw;
    float *hf = tl_st_get(&ref, "perm.hf", &nw), *meta = tl_st_get(&ref, "perm.meta", NULL), *t1 = malloc(nw * sizeof *t1),
          *t2 = malloc(nw * sizeof *t2);
    llama_permute_hf_to_meta(t1, hf, 6, 8, 48);
    llama_permute_meta_to_hf(t2, meta, 6, 8, 48);
    CHECK(!memcmp(t1, meta, nw * sizeof *t1) && !memcmp(t2, hf, nw * sizeof *t2), "q/k permutation");
    free(hf); free(meta); free(t1); free(t2);

    llama_model a, b;
    if (load(&a, "a")) return tap_done("test_llama");
    CHECK(a.cfg.n_kv_heads == 2 && a.cfg.n_heads == 6 && !a.cfg.tied && a.cfg.head_dim == 8, "model a config");
    test_model("a", "a", 2, 70, &a);
    test_variant("a_sharded", "a", "a.logits", 2, 70, 2e-4, &a);
    test_variant("a.bin", "a", "a.logits", 2, 70, 2e-4, &a);
    test_variant("a_f16", "a", "a.logits_f16", 2, 70, 2e-4, NULL);
    test_variant("a_tied.bin", "a", "a.logits_tied", 2, 70, 2e-4, NULL);
    test_cache(&a);
    if (load(&b, "b")) return tap_done("test_llama");
    CHECK(b.cfg.tied && b.cfg.head_dim == 12 && b.cfg.rope_factor == 4.0f && b.params.head == b.params.emb,
          "model b config");
    test_model("b", "b", 2, 40, &b);
    test_variant("b_bf16", "b", "b.logits_bf16", 2, 40, 2e-4, NULL);
    test_errors();
    llama_free(&a);
    llama_free(&b);
    safetensors_close(&ref);
    return tap_done("test_llama");
}
