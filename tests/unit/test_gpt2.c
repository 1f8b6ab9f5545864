/* test_gpt2.c: the C GPT-2 against the PyTorch reference (tests/reference/gen_gpt2.py): logits,
 * loss, every parameter gradient, soft-input gradients, AdamW, candidate scoring and greedy
 * decoding through the KV cache; f16/bf16 checkpoints; refused checkpoints with their messages;
 * optimised kernels against their naive references; finite differences; data-parallel gradient
 * sums; known answers (initial loss ~ ln V, a tiny batch overfits). */
#include "../../src/core/err.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/gpt2_ckpt.h"
#include "../../src/lm/safetensors.h"
#include "../../src/nn/gelu.h"
#include "../../src/nn/linear.h"
#include "../../src/nn/softmax.h"
#include "tap.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char refdir[4096];
static safetensors_file ref;

static void ckpt(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", refdir, name); }

/* the reference's parameter gradients (grad.<view>) in slab order into g (num_params) */
static void ref_grads(const gpt2_model *m, float *g)
{
    for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
        char nm[64];
        snprintf(nm, sizeof nm, "grad.%s", gpt2_param_names[p]);
        float *r = tl_st_get(&ref, nm, NULL);
        memcpy(g, r, m->param_sizes[p] * sizeof(float));
        g += m->param_sizes[p];
        free(r);
    }
}

static void expect_load_error(const char *name, const char *want)
{
    char d[4200];
    ckpt(d, sizeof d, name);
    gpt2_model m;
    dm_error_clear();
    int rc = gpt2_load(&m, d);
    CHECK(rc != DM_OK, "%s: loaded a bad checkpoint", name);
    CHECK(strstr(dm_error_message(), want) != NULL, "%s: message '%s' lacks '%s'", name, dm_error_message(), want);
    printf("  refused %-12s: %s\n", name, dm_error_message());
}

/* forward + backward with the reference's inputs; returns the loss */
static float run_fb(gpt2_model *m, const int *ids, const float *soft, int n_soft, const int *tg, int B, int T,
                    float norm, float *dsoft, int wflags)
{
    if (gpt2_forward(m, ids, soft, n_soft, tg, B, T, norm, GPT2_KEEP)) {
        dm_error_print("test");
        exit(1);
    }
    float loss = m->loss;
    if (gpt2_backward(m, NULL, NULL, dsoft, wflags)) {
        dm_error_print("test");
        exit(1);
    }
    return loss;
}

static void test_kernels(void)
{
    /* matmul: BLAS vs naive */
    int N = 37, IC = 29, OC = 45;
    float *inp = malloc(sizeof(float) * N * IC), *w = malloc(sizeof(float) * IC * OC), *b = malloc(sizeof(float) * OC);
    float *o1 = malloc(sizeof(float) * N * OC), *o2 = malloc(sizeof(float) * N * OC);
    for (int i = 0; i < N * IC; i++) inp[i] = sinf(i * 0.37f);
    for (int i = 0; i < IC * OC; i++) w[i] = cosf(i * 0.11f);
    for (int i = 0; i < OC; i++) b[i] = 0.1f * i;
    nn_matmul_forward(o1, inp, w, b, N, IC, OC);
    nn_matmul_forward_naive(o2, inp, w, b, N, IC, OC);
    double d = tl_maxdiff_nan(o1, o2, (size_t)N * OC);
    printf("  matmul forward vs naive: max diff %.3g\n", d);
    CHECK(d < 1e-4, "matmul forward differs by %g", d);
    float *di1 = calloc((size_t)N * IC, 4), *di2 = calloc((size_t)N * IC, 4);
    float *dw1 = calloc((size_t)IC * OC, 4), *dw2 = calloc((size_t)IC * OC, 4), *db1 = calloc(OC, 4), *db2 = calloc(OC, 4);
    nn_matmul_backward(di1, dw1, db1, o1, inp, w, N, IC, OC);
    nn_matmul_backward_naive(di2, dw2, db2, o1, inp, w, N, IC, OC);
    double d1 = tl_maxdiff_nan(di1, di2, (size_t)N * IC), d2 = tl_maxdiff_nan(dw1, dw2, (size_t)IC * OC), d3 = tl_maxdiff_nan(db1, db2, OC);
    printf("  matmul backward vs naive: dinp %.3g dw %.3g db %.3g\n", d1, d2, d3);
    CHECK(d1 < 1e-3 && d2 < 1e-3 && d3 < 1e-3, "matmul backward differs");
    free(inp); free(w); free(b); free(o1); free(o2); free(di1); free(di2); free(dw1); free(dw2); free(db1); free(db2);

    /* attention: the blocked GEMM kernel vs the loops, with a partial last block */
    int B = 2, T = 150, C = 48, NH = 3;
    float *qkv = malloc(sizeof(float) * B * T * 3 * C), *y1 = malloc(sizeof(float) * B * T * C),
          *y2 = malloc(sizeof(float) * B * T * C), *a1 = malloc(sizeof(float) * B * NH * T * T),
          *a2 = malloc(sizeof(float) * B * NH * T * T), *scr = malloc(sizeof(float) * 256 * T);
    for (int i = 0; i < B * T * 3 * C; i++) qkv[i] = sinf(i * 0.013f) * 2.0f;
    gpt2_attention_forward(y1, a1, qkv, scr, B, T, C, NH);
    gpt2_attention_forward_naive(y2, a2, qkv, scr, B, T, C, NH);
    d1 = tl_maxdiff_nan(y1, y2, (size_t)B * T * C);
    d2 = tl_maxdiff_nan(a1, a2, (size_t)B * NH * T * T);
    gpt2_attention_forward(y1, NULL, qkv, scr, B, T, C, NH); /* without storing att */
    d3 = tl_maxdiff_nan(y1, y2, (size_t)B * T * C);
    printf("  attention blocked vs naive: out %.3g att %.3g (unstored %.3g)\n", d1, d2, d3);
    CHECK(d1 < 1e-5 && d2 < 1e-5 && d3 < 1e-5, "attention kernels differ");
    free(qkv); free(y1); free(y2); free(a1); free(a2); free(scr);

    /* gelu and exp: the vectorised approximations vs libm */
    float x[2001], g1[2001], g2[2001], e1[2001];
    double de = 0;
    for (int i = 0; i < 2001; i++) x[i] = -10.0f + 0.01f * i;
    nn_gelu_forward(g1, x, 2001);
    nn_gelu_forward_naive(g2, x, 2001);
    d = tl_maxdiff_nan(g1, g2, 2001);
    for (int i = 0; i < 2001; i++) x[i] = -80.0f + 0.08f * i;
    nn_exp(e1, x, 2001);
    for (int i = 0; i < 2001; i++) {
        double r = fabs(e1[i] - exp(x[i])) / exp(x[i]);
        de = r > de ? r : de;
    }
    printf("  gelu fast vs tanhf: %.3g, exp relative error: %.3g\n", d, de);
    CHECK(d < 1e-6, "gelu differs by %g", d);
    CHECK(de < 1e-6, "exp relative error %g", de);
}

/* the reference batch of gen_gpt2.py, read once by main and shared by the tests below */
typedef struct {
    int B, T, C, V;     /* batch, sequence length, channels, vocabulary */
    int n_soft;         /* soft-input rows */
    size_t ns, nl;      /* floats in soft (n_soft, C) and in the logits (B, T, V) */
    int *ids, *tg;      /* (B, T) input tokens and targets (-1: none) */
    float *soft;        /* (n_soft, C) soft inputs */
    float *rlog, *rhid; /* (B, T, V) reference logits, (B, T, C) final hidden states */
    float *rloss, *rnorm; /* (1) reference loss and the loss normaliser */
    float *rds, *rds2;  /* (n_soft, C) reference dsoft, and dsoft with the upstream dhidden */
    float *dh;          /* (B, T, C) upstream gradient on the hidden states */
} fixture;

/* forward: logits, hidden states and loss against the reference; the inference path (no kept
 * activations) gives the same logits */
static void test_forward(gpt2_model *m, const fixture *fx)
{
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], GPT2_KEEP) == DM_OK,
          "forward");
    double dl = tl_maxdiff_nan(m->acts.logits, fx->rlog, fx->nl);
    double dhid = tl_maxdiff_nan(m->acts.lnf, fx->rhid, (size_t)fx->B * fx->T * fx->C);
    printf("  logits vs pytorch: max diff %.3g (max |logit| %.3g); hidden %.3g\n", dl, tl_maxabs(fx->rlog, fx->nl), dhid);
    CHECK(dl < 1e-4, "logits differ by %g", dl);
    CHECK(dhid < 1e-4, "hidden states differ by %g", dhid);
    NEAR(m->loss, fx->rloss[0], 1e-5, "loss");

    /* the inference path (no kept activations) gives the same logits */
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, NULL, fx->B, fx->T, 1, 0) == DM_OK, "forward infer");
    double dli = tl_maxdiff_nan(m->acts.logits, fx->rlog, fx->nl);
    printf("  logits without GPT2_KEEP: max diff %.3g\n", dli);
    CHECK(dli < 1e-4, "inference logits differ by %g", dli);
}

/* full backward: every parameter gradient and the soft-input gradient; the frozen backward
 * (no weight gradients) and an upstream gradient on the final hidden states */
static void test_backward(gpt2_model *m, const fixture *fx)
{
    CHECK(gpt2_train_init(m) == DM_OK, "train init");
    gpt2_zero_grad(m);
    float *dsoft = calloc(fx->ns, sizeof *dsoft), *dsoft_f = calloc(fx->ns, sizeof *dsoft_f);
    run_fb(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], dsoft, GPT2_WEIGHT_GRADS);
    float *g = m->grad_slab;
    for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
        char nm[64];
        snprintf(nm, sizeof nm, "grad.%s", gpt2_param_names[p]);
        size_t k;
        float *r = tl_st_get(&ref, nm, &k);
        CHECK(k == m->param_sizes[p], "%s size %zu vs %zu", nm, k, m->param_sizes[p]);
        double d = tl_maxdiff_nan(g, r, k), mx = tl_maxabs(r, k);
        printf("  %-16s max diff %.3g (max |g| %.3g)\n", nm, d, mx);
        CHECK(d <= 1e-5 + 1e-4 * mx, "%s differs by %g", nm, d);
        g += k;
        free(r);
    }
    double ds = tl_maxdiff_nan(dsoft, fx->rds, fx->ns);
    printf("  dsoft vs pytorch: max diff %.3g (max %.3g)\n", ds, tl_maxabs(fx->rds, fx->ns));
    CHECK(ds < 1e-5, "dsoft differs by %g", ds);

    /* frozen backward: no weight gradients touched, same input gradient */
    memset(m->grad_slab, 0, m->num_params * sizeof(float));
    run_fb(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], dsoft_f, 0);
    CHECK(tl_maxabs(m->grad_slab, m->num_params) == 0, "frozen backward wrote weight gradients");
    double dsf = tl_maxdiff_nan(dsoft_f, dsoft, fx->ns);
    printf("  frozen vs full backward dsoft: %.3g\n", dsf);
    CHECK(dsf < 1e-7, "frozen dsoft differs by %g", dsf);

    /* an upstream gradient on the final hidden states, added to the loss */
    memset(dsoft_f, 0, fx->ns * sizeof *dsoft_f);
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], GPT2_KEEP) == DM_OK,
          "forward");
    CHECK(gpt2_backward(m, NULL, fx->dh, dsoft_f, 0) == DM_OK, "backward dhidden");
    double ds2 = tl_maxdiff_nan(dsoft_f, fx->rds2, fx->ns);
    printf("  dsoft with dhidden vs pytorch: %.3g\n", ds2);
    CHECK(ds2 < 1e-5, "dsoft (dhidden) differs by %g", ds2);
    free(dsoft);
    free(dsoft_f);
}

/* logits only where there are targets (GPT2_TARGET_ROWS): same loss and gradients */
static void test_target_rows(gpt2_model *m, const fixture *fx)
{
    float *ref_all = malloc(m->num_params * sizeof(float)), *d5 = calloc(fx->ns, sizeof *d5);
    ref_grads(m, ref_all);
    gpt2_zero_grad(m);
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0],
                       GPT2_KEEP | GPT2_TARGET_ROWS) == DM_OK,
          "fwd rows");
    int nt = 0;
    for (int i = 0; i < fx->B * fx->T; i++) nt += fx->tg[i] >= 0;
    CHECK(m->n_rows == nt, "%d logits rows for %d targets", m->n_rows, nt);
    NEAR(m->loss, fx->rloss[0], 1e-5, "loss with GPT2_TARGET_ROWS");
    CHECK(gpt2_backward(m, NULL, NULL, d5, GPT2_WEIGHT_GRADS) == DM_OK, "bwd rows");
    double dg = tl_maxdiff_nan(m->grad_slab, ref_all, m->num_params), d5d = tl_maxdiff_nan(d5, fx->rds, fx->ns);
    printf("  GPT2_TARGET_ROWS (%d of %d rows): gradients vs pytorch %.3g, dsoft %.3g\n", nt, fx->B * fx->T, dg, d5d);
    CHECK(dg < 3e-5 && d5d < 1e-5, "target-rows gradients differ (%g, %g)", dg, d5d);
    free(ref_all);
    free(d5);
}

/* hidden states only (GPT2_NOLOGITS): the gradient of <hidden, dhidden> alone, which by
 * linearity is the reference's dsoft_hidden - dsoft */
static void test_nologits(gpt2_model *m, const fixture *fx)
{
    float *d4 = calloc(fx->ns, sizeof *d4), *want = malloc(fx->ns * sizeof *want);
    for (size_t i = 0; i < fx->ns; i++) want[i] = fx->rds2[i] - fx->rds[i];
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, NULL, fx->B, fx->T, 1, GPT2_KEEP | GPT2_NOLOGITS) == DM_OK,
          "forward nologits");
    double dhh = tl_maxdiff_nan(m->acts.lnf, fx->rhid, (size_t)fx->B * fx->T * fx->C);
    CHECK(gpt2_backward(m, NULL, fx->dh, d4, 0) == DM_OK, "backward nologits");
    double dd = tl_maxdiff_nan(d4, want, fx->ns);
    printf("  GPT2_NOLOGITS: hidden %.3g, dsoft from dhidden alone %.3g\n", dhh, dd);
    CHECK(dhh < 1e-4 && dd < 1e-5, "nologits path differs (%g, %g)", dhh, dd);
    free(d4);
    free(want);
}

/* an upstream gradient on the logits equal to the loss's own gradient gives the same dsoft */
static void test_dlogits(gpt2_model *m, const fixture *fx)
{
    float *dlg = malloc(fx->nl * sizeof *dlg), *d3 = calloc(fx->ns, sizeof *d3);
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], GPT2_KEEP) == DM_OK,
          "forward");
    for (int i = 0; i < fx->B * fx->T; i++) {
        float *r = m->acts.logits + (size_t)i * fx->V, mx = -INFINITY, s = 0;
        for (int j = 0; j < fx->V; j++) mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < fx->V; j++) s += expf(r[j] - mx);
        for (int j = 0; j < fx->V; j++)
            dlg[(size_t)i * fx->V + j] = fx->tg[i] < 0 ? 0 : expf(r[j] - mx) / s / fx->rnorm[0];
        if (fx->tg[i] >= 0) dlg[(size_t)i * fx->V + fx->tg[i]] -= 1.0f / fx->rnorm[0];
    }
    CHECK(gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, NULL, fx->B, fx->T, 1, GPT2_KEEP) == DM_OK, "forward");
    CHECK(gpt2_backward(m, dlg, NULL, d3, 0) == DM_OK, "backward dlogits");
    double dd = tl_maxdiff_nan(d3, fx->rds, fx->ns);
    printf("  dsoft from an upstream dlogits vs pytorch: %.3g\n", dd);
    CHECK(dd < 1e-5, "dsoft (dlogits) differs by %g", dd);
    free(dlg);
    free(d3);
}

/* finite differences of the loss along a few soft coordinates (float forward, central) */
static void test_finite_differences(gpt2_model *m, fixture *fx)
{
    double worst = 0;
    int coords[] = {0, 7, fx->C + 3, 2 * fx->C + 31, 4 * fx->C + 1};
    for (int i = 0; i < 5; i++) {
        int k = coords[i];
        float h = 1e-2f, save = fx->soft[k];
        fx->soft[k] = save + h;
        gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], 0);
        double lp = m->loss;
        fx->soft[k] = save - h;
        gpt2_forward(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], 0);
        double lm = m->loss;
        fx->soft[k] = save;
        double fd = (lp - lm) / (2 * h), err = fabs(fd - fx->rds[k]);
        worst = err > worst ? err : worst;
    }
    printf("  finite differences vs dsoft: max abs error %.3g (h = 1e-2)\n", worst);
    CHECK(worst < 5e-4, "finite differences disagree by %g", worst);
}

/* data parallel: per-sequence gradients with the global normaliser sum to the batch gradient */
static void test_shards(gpt2_model *m, const fixture *fx)
{
    float *full = malloc(m->num_params * sizeof(float));
    gpt2_zero_grad(m);
    run_fb(m, fx->ids, fx->soft, fx->n_soft, fx->tg, fx->B, fx->T, fx->rnorm[0], NULL, GPT2_WEIGHT_GRADS);
    memcpy(full, m->grad_slab, m->num_params * sizeof(float));
    gpt2_zero_grad(m);
    float l0 = run_fb(m, fx->ids, fx->soft, fx->n_soft, fx->tg, 1, fx->T, fx->rnorm[0], NULL, GPT2_WEIGHT_GRADS);
    float l1 =
        run_fb(m, fx->ids + fx->T, fx->soft, fx->n_soft, fx->tg + fx->T, 1, fx->T, fx->rnorm[0], NULL, GPT2_WEIGHT_GRADS);
    double d = tl_maxdiff_nan(full, m->grad_slab, m->num_params);
    printf("  shard gradients summed vs full batch: %.3g; loss %.7g + %.7g vs %.7g\n", d, l0, l1, fx->rloss[0]);
    CHECK(d < 1e-6, "shard gradient sum differs by %g", d);
    NEAR(l0 + l1, fx->rloss[0], 1e-5, "shard loss sum");
    free(full);
}

/* AdamW from the reference gradients */
static void test_adamw(gpt2_model *m, const char *path)
{
    ref_grads(m, m->grad_slab);
    gpt2_model m2;
    CHECK(gpt2_load(&m2, path) == DM_OK, "reload");
    CHECK(gpt2_train_init(&m2) == DM_OK, "train init");
    memcpy(m2.grad_slab, m->grad_slab, m->num_params * sizeof(float));
    gpt2_adamw opt = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
    gpt2_adamw_step(&m2, &opt, 1);
    const float *w = m2.param_slab;
    double worst = 0;
    for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
        char nm[64];
        snprintf(nm, sizeof nm, "adamw.%s", gpt2_param_names[p]);
        float *r = tl_st_get(&ref, nm, NULL);
        double d = tl_maxdiff_nan(w, r, m->param_sizes[p]);
        worst = d > worst ? d : worst;
        w += m->param_sizes[p];
        free(r);
    }
    printf("  AdamW step vs torch.optim.AdamW: max diff %.3g\n", worst);
    CHECK(worst < 2e-6, "AdamW differs by %g", worst);
    gpt2_free(&m2);
}

/* KV cache: candidate scores and greedy decoding vs the reference's full forwards */
static void test_kv_cache(gpt2_model *m, const fixture *fx)
{
    size_t np, nc;
    int *prefix = tl_st_get_int(&ref, "prefix", &np), *ct = tl_st_get_int(&ref, "cand_tokens", NULL);
    int *co32 = tl_st_get_int(&ref, "cand_offsets", &nc), *greedy = tl_st_get_int(&ref, "greedy", NULL);
    float *rll = tl_st_get(&ref, "cand_ll", NULL);
    int ncand = (int)nc - 1;
    int64_t *co = malloc(nc * sizeof *co);
    for (size_t i = 0; i < nc; i++) co[i] = co32[i];
    double ll[16], ll2[16], worst = 0, worst2 = 0;
    for (int rows = 0; rows < 2; rows++) {
        gpt2_cache c;
        CHECK(gpt2_cache_init(&c, m, 0, rows ? 8 : 256) == DM_OK, "cache init");
        /* prefix in two appends: the cache must not care how it was filled */
        CHECK(gpt2_cache_append(&c, prefix, fx->soft, fx->n_soft, 3) == DM_OK, "append");
        CHECK(gpt2_cache_append(&c, prefix + 3, fx->soft, fx->n_soft, (int)np - 3) == DM_OK, "append");
        CHECK(gpt2_cache_score(&c, ct, co, ncand, rows ? ll2 : ll) == DM_OK, "score");
        if (!rows) {
            int out[10], no;
            /* truncating and re-appending restores the state */
            CHECK(gpt2_cache_truncate(&c, 4) == DM_OK, "truncate");
            CHECK(gpt2_cache_append(&c, prefix + 4, fx->soft, fx->n_soft, (int)np - 4) == DM_OK, "append");
            CHECK(gpt2_generate_greedy(&c, 10, -1, out, &no) == DM_OK, "greedy");
            int same = no == 10;
            for (int i = 0; i < no && same; i++) same = out[i] == greedy[i];
            CHECK(same, "greedy decoding differs from the reference");
            printf("  greedy decoding of 10 tokens matches the reference: %s\n", same ? "yes" : "no");
        }
        gpt2_cache_free(&c);
    }
    /* appends longer than a batch run in chunks of max_rows: same next-token distribution */
    {
        gpt2_cache c1, c2;
        CHECK(gpt2_cache_init(&c1, m, 0, 2) == DM_OK && gpt2_cache_init(&c2, m, 0, 256) == DM_OK, "caches");
        CHECK(gpt2_cache_append(&c1, prefix, fx->soft, fx->n_soft, (int)np) == DM_OK, "chunked append");
        CHECK(gpt2_cache_append(&c2, prefix, fx->soft, fx->n_soft, (int)np) == DM_OK, "append");
        double dp = 0;
        for (int j = 0; j < fx->V; j++) dp = fabs(c1.logp[j] - c2.logp[j]) > dp ? fabs(c1.logp[j] - c2.logp[j]) : dp;
        printf("  append in chunks of 2 vs at once: next-token log-probs max diff %.3g\n", dp);
        CHECK(dp < 1e-5, "chunked append differs by %g", dp);
        dm_error_clear();
        int64_t o2[2] = {0, 3};
        double l2;
        CHECK(gpt2_cache_score(&c1, ct, o2, 1, &l2) != DM_OK && strstr(dm_error_message(), "more than the 2 rows"),
              "a candidate longer than a batch: %s", dm_error_message());
        gpt2_cache_free(&c1);
        gpt2_cache_free(&c2);
    }
    for (int i = 0; i < ncand; i++) {
        worst = fabs(ll[i] - rll[i]) > worst ? fabs(ll[i] - rll[i]) : worst;
        worst2 = fabs(ll2[i] - ll[i]) > worst2 ? fabs(ll2[i] - ll[i]) : worst2;
    }
    printf("  candidate log-likelihoods vs pytorch: max diff %.3g; batches of 8 rows vs 256: %.3g\n", worst, worst2);
    CHECK(worst < 1e-4, "candidate scores differ by %g", worst);
    CHECK(worst2 < 1e-5, "batching changes scores by %g", worst2);
    free(prefix); free(ct); free(co32); free(greedy); free(rll); free(co);
}

/* f16 / bf16 checkpoints (prefixed names, stored head) give the upcast model's logits */
static void test_half(const fixture *fx)
{
    const char *half[2] = {"tiny_f16", "tiny_bf16"}, *hlog[2] = {"logits_f16", "logits_bf16"};
    for (int k = 0; k < 2; k++) {
        gpt2_model mh;
        char hp[4200];
        ckpt(hp, sizeof hp, half[k]);
        if (gpt2_load(&mh, hp)) {
            dm_error_print("test_gpt2");
            CHECK(0, "cannot load %s", half[k]);
            continue;
        }
        float *r = tl_st_get(&ref, hlog[k], NULL);
        gpt2_forward(&mh, fx->ids, fx->soft, fx->n_soft, NULL, fx->B, fx->T, 1, 0);
        double d = tl_maxdiff_nan(mh.acts.logits, r, fx->nl), d0 = tl_maxdiff_nan(mh.acts.logits, fx->rlog, fx->nl);
        printf("  %s logits vs pytorch on upcast weights: %.3g (vs f32 model: %.3g)\n", half[k], d, d0);
        CHECK(d < 1e-4, "%s logits differ by %g", half[k], d);
        free(r);
        gpt2_free(&mh);
    }
}

/* save / load round trip, atomically */
static void test_roundtrip(const gpt2_model *m, const char *tmp)
{
    char sp[4200], part[4300];
    snprintf(sp, sizeof sp, "%s/gpt2_roundtrip", tmp);
    CHECK(gpt2_save(m, sp) == DM_OK, "save");
    snprintf(part, sizeof part, "%s/model.safetensors.part", sp);
    CHECK(access(part, F_OK) != 0, "a .part file was left behind");
    gpt2_model m3;
    CHECK(gpt2_load(&m3, sp) == DM_OK, "load saved");
    CHECK(m3.num_params == m->num_params && !memcmp(m3.param_slab, m->param_slab, m->num_params * 4),
          "round trip changed the parameters");
    gpt2_free(&m3);
    /* a truncated copy is refused with the tensor named */
    char tp[4300], cmd[20000];
    snprintf(tp, sizeof tp, "%s/gpt2_truncated", tmp);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && truncate -s -100 '%s/model.safetensors'", tp, sp,
             tp, tp);
    CHECK(system(cmd) == 0, "cannot make the truncated copy");
    dm_error_clear();
    CHECK(gpt2_load(&m3, tp) != DM_OK, "loaded a truncated file");
    CHECK(strstr(dm_error_message(), "lies beyond the end of the file") && strstr(dm_error_message(), "ln_f.bias") &&
              strstr(dm_error_hint_text(), "truncated"),
          "truncation message: %s / %s", dm_error_message(), dm_error_hint_text());
    printf("  refused truncated   : %s (hint: %s)\n", dm_error_message(), dm_error_hint_text());
}

/* broken checkpoints are refused with messages naming what is wrong */
static void test_refused(void)
{
    expect_load_error("bad_shape", "tensor 'h.1.mlp.c_fc.weight' has shape [128, 32], expected [32, 128]");
    expect_load_error("bad_missing", "tensor 'ln_f.bias' is missing");
    expect_load_error("bad_dtype", "tensor 'wpe.weight' has dtype I32");
    expect_load_error("bad_config", "tensor 'wte.weight' has shape [101, 32], expected [101, 48]");
    expect_load_error("bad_head", "differs from wte.weight");
    expect_load_error("bad_act", "activation_function 'relu' is not supported");
    expect_load_error("no_such_dir", "cannot open");
}

/* known answers: GPT-2 initialisation starts near ln V, and a tiny batch overfits */
static void test_known_answers(void)
{
    gpt2_config cfg = gpt2_config_make(2, 2, 16, 32, 50);
    gpt2_model t;
    CHECK(gpt2_init(&t, &cfg) == DM_OK, "init");
    gpt2_init_random(&t, 7);
    CHECK(gpt2_train_init(&t) == DM_OK, "train init");
    int tin[2 * 16], ttg[2 * 16];
    for (int i = 0; i < 32; i++) {
        tin[i] = (i * 7 + 3) % 50;
        ttg[i] = (i * 7 + 10) % 50;
    }
    gpt2_adamw opt = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f};
    float first = 0, last = 0;
    for (int step = 1; step <= 150; step++) {
        gpt2_zero_grad(&t);
        float l = run_fb(&t, tin, NULL, 0, ttg, 2, 16, 32, NULL, GPT2_WEIGHT_GRADS);
        if (step == 1) first = l;
        last = l;
        gpt2_adamw_step(&t, &opt, step);
    }
    printf("  random init loss %.4f (ln 50 = %.4f); after 150 AdamW steps on one batch %.4f\n", first, log(50.0), last);
    NEAR(first, log(50.0), 0.1, "initial loss vs ln V");
    CHECK(last < 0.1 * first, "the tiny batch did not overfit: %g -> %g", first, last);
    gpt2_free(&t);
}
int main(void)
{
    const char *rd = getenv("DM_REF_DIR"), *tmp = getenv("DM_TMP");
    if (!rd || !tmp) {
        printf("SKIP: DM_REF_DIR / DM_TMP not set (run through tests/run.sh)\n");
        return 77;
    }
    if (tl_st_open_ref(&ref, refdir, sizeof refdir, rd, "gpt2", "test_gpt2")) return 1;
    char path[4200];
    const char *nt = getenv("OMP_NUM_THREADS");
    gpt2_set_threads(nt ? atoi(nt) : 1);
    test_kernels();

    gpt2_model m;
    ckpt(path, sizeof path, "tiny");
    if (gpt2_load(&m, path)) {
        dm_error_print("test_gpt2");
        return 1;
    }
    fixture fx = {.B = 2, .T = 70, .C = m.cfg.channels, .V = m.cfg.vocab_size};
    size_t n;
    fx.ids = tl_st_get_int(&ref, "ids", &n);
    fx.tg = tl_st_get_int(&ref, "targets", NULL);
    fx.soft = tl_st_get(&ref, "soft", &fx.ns);
    fx.rlog = tl_st_get(&ref, "logits", NULL);
    fx.rhid = tl_st_get(&ref, "hidden", NULL);
    fx.rloss = tl_st_get(&ref, "loss", NULL);
    fx.rnorm = tl_st_get(&ref, "norm", NULL);
    fx.rds = tl_st_get(&ref, "dsoft", NULL);
    fx.rds2 = tl_st_get(&ref, "dsoft_hidden", NULL);
    fx.dh = tl_st_get(&ref, "dhidden", NULL);
    fx.n_soft = (int)(fx.ns / fx.C);
    fx.nl = (size_t)fx.B * fx.T * fx.V;
    CHECK(n == (size_t)fx.B * fx.T, "ids has %zu entries", n);

    test_forward(&m, &fx);
    test_backward(&m, &fx);
    test_target_rows(&m, &fx);
    test_nologits(&m, &fx);
    test_dlogits(&m, &fx);
    test_finite_differences(&m, &fx);
    test_shards(&m, &fx);
    test_adamw(&m, path);
    test_kv_cache(&m, &fx);
    test_half(&fx);
    test_roundtrip(&m, tmp);
    test_refused();
    test_known_answers();

    free(fx.ids); free(fx.tg); free(fx.soft); free(fx.rlog); free(fx.rhid); free(fx.rloss); free(fx.rnorm);
    free(fx.rds); free(fx.rds2); free(fx.dh);
    gpt2_free(&m);
    safetensors_close(&ref);
    return tap_done("test_gpt2");
}
