/* test_lm_bf16.c: the bfloat16 path of the frozen LM (src/nn/gemm_bf16.h, gpt2_set_precision).
 *
 *  1. rounding float -> bfloat16: known answers (ties to even, overflow to infinity, NaN, subnormal
 *     inputs flushed), and the AVX512_BF16 conversion equals nn_bf16_round on 200000 random floats;
 *  2. packing: every packed element is bf16(b_kj), in both source layouts, zero past K and N;
 *  3. the kernel equals its scalar twin (which rounds A and B to bfloat16 and accumulates pairs of
 *     k in the documented order) bitwise: odd and even K, N across panel edges, padded leading
 *     dimensions, from 0, C or a bias, K = 0, 1 and 2 threads, rows computed alone or among others;
 *  4. the kernel against the exact product of the float operands (double), within
 *         (2u + u^2) S + gamma_K (|c0| + (1 + u)^2 S),  S = sum_k |a_ik| |b_kj|,  u = 2^-8
 *     (gemm_bf16.h: one bfloat16 rounding of each operand, then K float additions);
 *  5. GPT-2 under GPT2_BF16, product by product: every linear layer of every block and the head,
 *     recomputed in double from the bf16 run's own kept inputs, within the bound of 4 (the residual
 *     add costs one more rounding); the backward's head product and layer 0's QKV product to the
 *     inputs likewise;
 *     the AVX-512 loops of the bf16 path (GELU, log-sum-exp and cross-entropy rows) against src/nn's;
 *  6. GPT-2 bf16 against f32 end to end (logits, loss, gradient to soft inputs; bf16 bitwise the same
 *     on 1, 2 and 3 threads of the pool), and the prompt
 *     stage's scoring calls (soft user tokens and a text prefix in the KV cache, candidates scored
 *     with their soft item tokens, gpt2_cache_score_mixed): every candidate score within a
 *     first-order budget derived from the same bound, and the ranking unchanged wherever the f32
 *     scores are further apart than twice that budget;
 *  7. the fallback: with the kernel disabled (nn_bf16_disable, and DM_NO_BF16 in a child process)
 *     GPT2_BF16 runs f32, bitwise equal to an f32 model, and the log says so once;
 *  8. Llama under LLAMA_BF16 (llama_set_precision), as parts 5-7: (a) every product of a forward
 *     (v of qkv, o, gate/up, down, head) and two of the backward (head, layer 0 qkv) within part
 *     4's bound, and the copies' bytes (forward; with the backward's, packed by the first
 *     backward) those of the packing formula; (b) bf16 against f32 on a multi-head model with an
 *     untied head and a grouped-query one with a tied head: logits, loss and the gradient to the
 *     soft inputs within part 6's budgets counted for a Llama block, the target rows and the pool's
 *     thread count changing no bit; (c) the prompt stage's scoring through the KV cache: scores
 *     against f32 within their budgets, and against the full bf16 forward to float rounding (up
 *     to the rare bfloat16 roundings a float-level difference flips); (d) the fallback, bitwise
 *     f32 (logits and gradients), once in the log, and lm_set_precision / lm_precision on a Llama.
 * Parts 1 (hardware), 3-6 and 8a-8c need AVX512_BF16 and are skipped with a message where the CPU
 * lacks it.
 */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/gpt2_bf16.h"
#include "../../src/lm/llama.h"
#include "../../src/lm/lm.h"
#include "../../src/nn/gelu.h"
#include "../../src/nn/softmax.h"
#include "../../src/nn/gemm_bf16.h"
#include "tap.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_BF (1.0 / 256.0)        /* bfloat16 unit roundoff 2^-8 */
#define U_F32 (1.0 / 16777216.0)  /* float unit roundoff 2^-24 */

static double gamma_n(int n) { return n * U_F32 / (1.0 - n * U_F32); }

static float bits_f(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint32_t f_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static void randn(dm_rng *g, float *x, size_t n, float s)
{
    for (size_t i = 0; i < n; i++) x[i] = s * (float)dm_rng_normal(g);
}

static void die(void)
{
    dm_error_print("test_lm_bf16");
    exit(1);
}

/* ---- 1. rounding ----------------------------------------------------------------------------- */

static void test_rounding(void)
{
    struct { uint32_t in; uint16_t out; const char *what; } k[] = {
        {0x3f800000u, 0x3f80, "1"},
        {0x3f808000u, 0x3f80, "1 + 2^-8: a tie, to even (down)"},
        {0x3f818000u, 0x3f82, "1 + 3 2^-8: a tie, to even (up)"},
        {0x3f808001u, 0x3f81, "just above a tie"},
        {0xbf80ffffu, 0xbf81, "negative, rounds away"},
        {0x7f7fffffu, 0x7f80, "FLT_MAX overflows to infinity"},
        {0x7f800000u, 0x7f80, "infinity"},
        {0x00400000u, 0x0000, "a subnormal flushes to +0"},
        {0x80000001u, 0x8000, "a negative subnormal flushes to -0"},
        {0x00800000u, 0x0080, "FLT_MIN stays"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        CHECK(nn_bf16_from_f32(bits_f(k[i].in)) == k[i].out, "%s: 0x%08x -> 0x%04x, expected 0x%04x", k[i].what,
              k[i].in, nn_bf16_from_f32(bits_f(k[i].in)), k[i].out);
    uint16_t nan = nn_bf16_from_f32(bits_f(0x7f800001u));
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f), "a signalling NaN stays a NaN: 0x%04x", nan);

    if (!nn_bf16_cpu()) return;
    /* the hardware conversion of A: C = bf16(a) 1 with K = 1 (one product, exact, added to 0) */
    nn_bf16_mat one = {0};
    float w1 = 1.0f;
    if (nn_bf16_pack(&one, &w1, 1, 1, 1, 0)) die();
    int n = 200000, bad = 0;
    float *a = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n);
    dm_rng g;
    dm_rng_seed(&g, 5);
    for (int i = 0; i < n; i++) {
        /* random bit patterns of normal floats (exponents 1 .. 254), half of them ties or near ties */
        uint32_t u = (uint32_t)dm_rng_u64(&g);
        uint32_t e = 1 + (uint32_t)dm_rng_below(&g, 254);
        u = (u & 0x807fffffu) | e << 23;
        if (i % 2) u = (u & 0xffff0000u) | (i % 4 == 1 ? 0x8000u : 0x7fffu);
        a[i] = bits_f(u);
    }
    nn_bf16_gemm(c, 1, a, 1, &one, n, NULL, 0);
    for (int i = 0; i < n; i++)
        if (f_bits(c[i]) != f_bits(nn_bf16_round(a[i])) && !(isinf(c[i]) && isinf(nn_bf16_round(a[i])))) {
            if (bad++ < 5)
                printf("  conversion of 0x%08x: hardware 0x%08x, nn_bf16_round 0x%08x\n", f_bits(a[i]), f_bits(c[i]),
                       f_bits(nn_bf16_round(a[i])));
        }
    printf("  hardware rounding of %d random floats: %d differ from nn_bf16_round\n", n, bad);
    CHECK(bad == 0, "%d conversions differ", bad);
    free(a);
    free(c);
    nn_bf16_mat_free(&one);
}

/* ---- 2. packing ------------------------------------------------------------------------------ */

static void test_pack(void)
{
    int K = 37, N = 131;
    size_t ld = 140;
    float *src = malloc(sizeof(float) * ld * ld);
    dm_rng g;
    dm_rng_seed(&g, 1);
    randn(&g, src, ld * ld, 1.0f);
    int bad = 0;
    for (int trans = 0; trans < 2; trans++) {
        nn_bf16_mat b = {0};
        if (nn_bf16_pack(&b, src, K, N, ld, trans)) die();
        CHECK(b.kp == 19 && b.np == 3, "pairs %d, panels %d", b.kp, b.np);
        for (int k = 0; k < 2 * b.kp; k++)
            for (int j = 0; j < b.np * NN_BF16_NR; j++) {
                float want = k < K && j < N ? nn_bf16_round(trans ? src[(size_t)j * ld + k] : src[(size_t)k * ld + j]) : 0.0f;
                if (f_bits(nn_bf16_mat_get(&b, k, j)) != f_bits(want)) bad++;
            }
        /* repacking the same shape reuses the memory */
        uint32_t *w = b.w;
        src[0] += 1.0f;
        if (nn_bf16_pack(&b, src, K, N, ld, trans)) die();
        CHECK(b.w == w, "a repack of the same shape reallocated");
        CHECK(nn_bf16_mat_get(&b, 0, 0) == nn_bf16_round(src[0]), "the repack took the new value");
        nn_bf16_mat_free(&b);
    }
    CHECK(bad == 0, "%d packed elements differ from bf16(b_kj) (or padding is not 0)", bad);
    free(src);
}

/* ---- 3. and 4. the kernel ---------------------------------------------------------------------- */

typedef struct {
    int M, K, N, trans, acc; /* acc: 0 start from 0, 1 accumulate onto C, 2 start from a bias */
    size_t lda, ldc;
} shape;

/* one product: kernel vs scalar twin bitwise, then against the exact product within the bound;
 * returns the largest error as a fraction of its bound */
static double check_product(const shape *s, int threads, dm_rng *g, int *nbad)
{
    int M = s->M, K = s->K, N = s->N;
    size_t ldb = s->trans ? (size_t)K + 3 : (size_t)N + 5;
    float *A = malloc(sizeof(float) * (M * s->lda + 1)), *W = malloc(sizeof(float) * ((s->trans ? N : K) * ldb + 1));
    float *C0 = malloc(sizeof(float) * (M * s->ldc + 1)), *C1 = malloc(sizeof(float) * (M * s->ldc + 1)),
          *C2 = malloc(sizeof(float) * (M * s->ldc + 1));
    randn(g, A, M * s->lda, 1.0f);
    randn(g, W, (s->trans ? N : K) * ldb, 0.05f);
    randn(g, C0, M * s->ldc, 1.0f);
    float *bias = malloc(sizeof(float) * N), *bb = s->acc == 2 ? bias : NULL;
    randn(g, bias, N, 1.0f);
    nn_bf16_mat b = {0};
    if (nn_bf16_pack(&b, W, K, N, ldb, s->trans)) die();
    memcpy(C1, C0, sizeof(float) * M * s->ldc);
    memcpy(C2, C0, sizeof(float) * M * s->ldc);
    nn_bf16_set_threads(threads);
    nn_bf16_gemm(C1, s->ldc, A, s->lda, &b, M, bb, s->acc == 1);
    nn_bf16_gemm_naive(C2, s->ldc, A, s->lda, &b, M, bb, s->acc == 1);
    double worst = 0;
    for (int i = 0; i < M; i++) {
        for (size_t j = 0; j < s->ldc; j++) {
            size_t x = (size_t)i * s->ldc + j;
            if (f_bits(C1[x]) != f_bits(C2[x])) (*nbad)++;
            if (j >= (size_t)N && f_bits(C1[x]) != f_bits(C0[x])) (*nbad)++; /* nothing past N written */
        }
        for (int j = 0; j < N; j++) {
            double c0 = s->acc == 1 ? C0[(size_t)i * s->ldc + j] : s->acc == 2 ? bias[j] : 0.0, exact = c0, S = 0;
            for (int k = 0; k < K; k++) {
                double a = A[(size_t)i * s->lda + k], w = s->trans ? W[(size_t)j * ldb + k] : W[(size_t)k * ldb + j];
                exact += a * w;
                S += fabs(a * w);
            }
            double bound = (2 * U_BF + U_BF * U_BF) * S + gamma_n(K) * (fabs(c0) + (1 + U_BF) * (1 + U_BF) * S);
            double e = fabs(C1[(size_t)i * s->ldc + j] - exact) / bound;
            worst = e > worst ? e : worst;
        }
    }
    /* a row alone equals the same row in the batch (the kernel's rows are independent) */
    if (M > 3) {
        int r = M / 2;
        float *one = malloc(sizeof(float) * s->ldc);
        memcpy(one, C0 + (size_t)r * s->ldc, sizeof(float) * s->ldc);
        nn_bf16_gemm(one, s->ldc, A + (size_t)r * s->lda, s->lda, &b, 1, bb, s->acc == 1);
        for (int j = 0; j < N; j++)
            if (f_bits(one[j]) != f_bits(C1[(size_t)r * s->ldc + j])) (*nbad)++;
        free(one);
    }
    nn_bf16_mat_free(&b);
    free(bias);
    free(A);
    free(W);
    free(C0);
    free(C1);
    free(C2);
    return worst;
}

static void test_kernel(void)
{
    static const shape sh[] = {
        {1, 1, 1, 0, 1, 1, 1},        {5, 2, 3, 0, 0, 2, 3},        {7, 3, 65, 1, 2, 3, 70},
        {13, 127, 64, 0, 1, 130, 64}, {6, 128, 129, 1, 0, 128, 131}, {37, 255, 200, 0, 2, 255, 200},
        {200, 64, 17, 1, 1, 64, 17},  {19, 770, 96, 0, 0, 771, 100}, {64, 300, 192, 1, 2, 300, 192},
        {401, 48, 130, 0, 1, 48, 130}, {3, 0, 5, 0, 2, 1, 5},
    };
    dm_rng g;
    dm_rng_seed(&g, 9);
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++)
        for (int th = 1; th <= 2; th++) {
            int b0 = bad;
            double w = check_product(&sh[i], th, &g, &bad);
            worst = w > worst ? w : worst;
            if (bad > b0 || w > 1)
                printf("  M %d K %d N %d trans %d acc %d threads %d: %d differ from the twin, error %.3g of the bound\n",
                       sh[i].M, sh[i].K, sh[i].N, sh[i].trans, sh[i].acc, th, bad - b0, w);
        }
    nn_bf16_set_threads(0);
    printf("  kernel vs scalar twin: %d elements differ over %zu shapes x 1, 2 threads; largest error %.3f of the bound\n",
           bad, sizeof sh / sizeof sh[0], worst);
    CHECK(bad == 0, "%d elements differ from the scalar twin (or were written past N)", bad);
    CHECK(worst <= 1.0, "an error of %.3f times the bound", worst);
    CHECK(worst > 0.005, "the errors (%.3g of the bound) are too small to be bf16: are the operands rounded?", worst);
}

/* ---- 5. GPT-2 products ------------------------------------------------------------------------- */

/* A small GPT-2 at GPT-2's initialisation with the block matrices x3 (std 0.06), token embeddings
 * of std 0.25 (logits of std ~2, a trained model's spread, so scores and rankings mean something)
 * and nonzero biases and layer-norm shifts (std 0.1). */
static void make_model(gpt2_model *m, int L, int NH, int C, int T, int V, uint64_t seed)
{
    gpt2_config c = gpt2_config_make(L, NH, C, T, V);
    if (gpt2_init(m, &c)) die();
    gpt2_init_random(m, seed);
    dm_rng g;
    dm_rng_seed(&g, seed + 1);
    gpt2_params *p = &m->params;
    float *mats[] = {p->qkvw, p->attprojw, p->fcw, p->fcprojw};
    size_t nm[] = {m->param_sizes[4], m->param_sizes[6], m->param_sizes[10], m->param_sizes[12]};
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < nm[k]; i++) mats[k][i] *= 3.0f;
    for (size_t i = 0; i < m->param_sizes[0]; i++) p->wte[i] *= 12.5f;
    float *vecs[] = {p->ln1b, p->qkvb, p->attprojb, p->ln2b, p->fcb, p->fcprojb, p->lnfb};
    size_t nv[] = {m->param_sizes[3], m->param_sizes[5], m->param_sizes[7], m->param_sizes[9], m->param_sizes[11],
                   m->param_sizes[13], m->param_sizes[15]};
    for (int k = 0; k < 7; k++) randn(&g, vecs[k], nv[k], 0.1f);
}

/* y (N, OC) against x (N, IC) w + b (+ r) in double; returns the largest error / bound, where the
 * bound is that of gemm_bf16.h with c0 = b (+ r) and one more rounding when r is added (the kernel
 * accumulates onto fl(r + b)). wt: w is (OC, IC) (a transposed use) */
static double product_error(const float *y, const float *x, const float *w, int wt, const float *b, const float *r,
                            int N, int IC, int OC)
{
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double c0 = (b ? b[o] : 0.0) + (r ? r[(size_t)i * OC + o] : 0.0), s = c0, S = 0;
            for (int k = 0; k < IC; k++) {
                double p = (double)x[(size_t)i * IC + k] * (wt ? w[(size_t)o * IC + k] : w[(size_t)k * OC + o]);
                s += p;
                S += fabs(p);
            }
            double bound = (2 * U_BF + U_BF * U_BF) * S + gamma_n(IC + 1) * (fabs(c0) + (1 + U_BF) * (1 + U_BF) * S) + 1e-30;
            double e = fabs(y[(size_t)i * OC + o] - s) / bound;
            worst = e > worst ? e : worst;
        }
    return worst;
}

static void test_gpt2_products(void)
{
    gpt2_model m;
    int L = 2, C = 64, F = 256, B = 2, T = 24, V = 300, ns = 6;
    make_model(&m, L, 4, C, 32, V, 21);
    if (gpt2_set_precision(&m, GPT2_BF16)) die();
    CHECK(m.precision == GPT2_BF16, "bf16 is in force");
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T), nt = 0;
    float *soft = malloc(sizeof(float) * ns * C), *dsoft = calloc((size_t)ns * C, sizeof(float));
    dm_rng g;
    dm_rng_seed(&g, 4);
    randn(&g, soft, (size_t)ns * C, 0.5f);
    for (int i = 0; i < B * T; i++) {
        int t = i % T;
        in[i] = t < 3 ? GPT2_SOFT((i / T) * 3 + t) : (int)(dm_rng_below(&g, (uint64_t)V));
        tg[i] = t >= 3 ? (int)(dm_rng_below(&g, (uint64_t)V)) : -1;
        nt += tg[i] >= 0;
    }
    if (gpt2_forward(&m, in, soft, ns, tg, B, T, (float)nt, GPT2_KEEP | GPT2_TARGET_ROWS)) die();
    const gpt2_acts *a = &m.acts;
    const gpt2_params *p = &m.params;
    size_t BT = (size_t)B * T;
    int N = (int)BT;
    double w[5] = {0};
    for (int l = 0; l < L; l++) {
        const float *res = l == 0 ? a->encoded : a->res3 + (l - 1) * BT * C;
        double e[4] = {
            product_error(a->qkv + l * BT * 3 * C, a->ln1 + l * BT * C, p->qkvw + (size_t)l * C * 3 * C, 0,
                          p->qkvb + l * 3 * C, NULL, N, C, 3 * C),
            product_error(a->res2 + l * BT * C, a->atty + l * BT * C, p->attprojw + (size_t)l * C * C, 0,
                          p->attprojb + l * C, res, N, C, C),
            product_error(a->fch + l * BT * F, a->ln2 + l * BT * C, p->fcw + (size_t)l * C * F, 0, p->fcb + l * F,
                          NULL, N, C, F),
            product_error(a->res3 + l * BT * C, a->fch_gelu + l * BT * F, p->fcprojw + (size_t)l * F * C, 0,
                          p->fcprojb + l * C, a->res2 + l * BT * C, N, F, C)};
        for (int k = 0; k < 4; k++) w[k] = e[k] > w[k] ? e[k] : w[k];
    }
    w[4] = product_error(a->logits, a->lnf_rows, p->wte, 1, NULL, NULL, m.n_rows, C, V);
    printf("  bf16 forward, error / bound: qkv %.3f, attention projection %.3f, fc %.3f, fc projection %.3f, head %.3f\n",
           w[0], w[1], w[2], w[3], w[4]);
    for (int k = 0; k < 5; k++) CHECK(w[k] <= 1.0 && w[k] > 0.005, "forward product %d: %.3g of the bound", k, w[k]);

    /* backward: the head's product to the hidden states (packed rows: lnf_rows = dlogits wte, with
     * dlogits left in logits) and layer 0's QKV product (dbt_c = dqkv qkvw^T) */
    if (gpt2_backward(&m, NULL, NULL, dsoft, 0)) die();
    double bh = product_error(a->lnf_rows, a->logits, p->wte, 0, NULL, NULL, m.n_rows, V, C);
    double bq = product_error(m.dbt_c, m.dqkv, p->qkvw, 1, NULL, NULL, N, 3 * C, C);
    printf("  bf16 backward, error / bound: head %.3f, layer 0 qkv %.3f\n", bh, bq);
    CHECK(bh <= 1.0 && bh > 0.005, "backward head product: %.3g of the bound", bh);
    CHECK(bq <= 1.0 && bq > 0.005, "backward qkv product: %.3g of the bound", bq);
    printf("  bf16 copies: %zu bytes (f32 weights %zu)\n", gpt2_bf16_bytes(&m), m.num_params * sizeof(float));
    free(in);
    free(tg);
    free(soft);
    free(dsoft);
    gpt2_free(&m);
}


/* ---- 5b. the AVX-512 loops of the bf16 path against src/nn ------------------------------------ */

static void test_loops(void)
{
    size_t n = 100003;
    int V = 1001, R = 7;
    float *x = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n),
          *y2 = malloc(sizeof(float) * n);
    dm_rng g;
    dm_rng_seed(&g, 3);
    randn(&g, x, n, 3.0f);
    randn(&g, d, n, 1.0f);
    int bad = 0;
    nn_gelu_forward(y1, x, n);
    gpt2_bf16_gelu_forward(y2, x, n);
    bad += memcmp(y1, y2, sizeof(float) * n) != 0;
    nn_gelu_backward(y1, x, d, n);
    gpt2_bf16_gelu_backward(y2, x, d, n);
    bad += memcmp(y1, y2, sizeof(float) * n) != 0;
    CHECK(bad == 0, "GELU forward/backward of the bf16 path differ from nn_gelu_* (%d)", bad);
    /* log-sum-exp rows: the same terms summed in another order, |d| <= (V - 1) 2^-24 sum / sum (+ the
     * rounding of log and of mx + log s: 2 ulps) */
    float lse[7];
    double worst = 0;
    gpt2_bf16_logsumexp_rows(lse, x, (size_t)V, R, V);
    for (int k = 0; k < R; k++) {
        float ref = nn_logsumexp(x + (size_t)k * V, V);
        double tol = (V - 1) * U_F32 + 4 * U_F32 * fabs(ref);
        worst = fabs(lse[k] - ref) / tol > worst ? fabs(lse[k] - ref) / tol : worst;
    }
    CHECK(worst <= 1, "log-sum-exp rows differ by %.3g of the tolerance", worst);
    /* cross-entropy gradient rows, bitwise nn_softmax_xent_backward (a row without target zeroed) */
    int tg[7] = {3, -1, 0, 1000, 17, 500, 2}, rows[3] = {6, 1, 3};
    float w[7] = {1, 2, 3, 4, 5, 6, 0.5f};
    memcpy(y1, x, sizeof(float) * R * V);
    memcpy(y2, x, sizeof(float) * R * V);
    gpt2_bf16_xent_backward_rows(y2, 3, V, lse, tg, rows, w, 0.25f);
    for (int k = 0; k < 3; k++) {
        float *r = y1 + (size_t)k * V;
        if (tg[rows[k]] >= 0) nn_softmax_xent_backward(r, V, lse[k], tg[rows[k]], 0.25f * w[rows[k]]);
        else memset(r, 0, sizeof(float) * V);
    }
    CHECK(!memcmp(y1, y2, sizeof(float) * 3 * V), "cross-entropy gradient rows differ from nn_softmax_xent_backward");
    printf("  bf16-path loops: GELU bitwise nn_gelu_*, log-sum-exp within %.3f of its tolerance, cross-entropy rows bitwise\n",
           worst);
    free(x);
    free(d);
    free(y1);
    free(y2);
}

/* ---- 6. bf16 against f32 end to end ------------------------------------------------------------ */

/* The budget of part 6 is probabilistic (Higham and Mary, "A new approach to probabilistic rounding
 * error analysis", SISC 2019), where part 5's bound is the worst case: rounding errors are modelled
 * as independent, mean zero and at most u, so the error of a product of two rounded operands has a
 * standard deviation of at most u sqrt(2/3) ||a o b||_2 (each rounding uniform: variance u^2/3),
 * not u sum |a b|. Along the 4L + 1 products in series from the embeddings to a logit the errors add
 * in quadrature, each at the logit's own scale (layer norms restore the scale; residual adds do not
 * amplify: a model for a well-conditioned network, not a proof):
 *     sigma_j = sqrt(4L + 1) u sqrt(2/3) ||h o w_j||_2        (h the final hidden state, w_j a row of
 *                                                              the head, or a soft item token)
 * Budgets at 6 sigma: a logit |dz_j| <= 6 sigma_j; a log-probability moves by at most
 * |dz_t| + |d lse| <= 2 x 6 max_j sigma_j, and so does a mean of them (loss, score); the gradient
 * to the inputs passes 2 (4L + 1) products: relative 2-norm error <= 6 sqrt(2 (4L + 1)) u sqrt(2/3). */
#define LAMBDA 6.0
static double sigma_unit(int L) { return sqrt(4.0 * L + 1) * U_BF * sqrt(2.0 / 3.0); }

/* ||h o w_j||_2 of one row h (C) and one row w_j (C) */
static double norm2_prod(const float *h, const float *w, int C)
{
    double s = 0;
    for (int k = 0; k < C; k++) s += (double)h[k] * w[k] * h[k] * w[k];
    return sqrt(s);
}

static double maxdiff(const float *a, const float *b, size_t n, double *scale)
{
    double m = 0, sc = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m || isnan(d) ? (isnan(d) ? INFINITY : d) : m;
        sc = fabs(b[i]) > sc ? fabs(b[i]) : sc;
    }
    if (scale) *scale = sc;
    return m;
}

/* The bf16 logits lb (n, V) against the f32 ones lf: *worst = the largest |lb - lf| in units of its
 * LAMBDA-sigma budget, sigma = su ||h_i o w_j||_2 (h (n, C) the f32 final hidden states, w (V, C)
 * the output head, su the model's sigma_unit); *smax = the largest sigma. */
static void logit_budget(const float *lb, const float *lf, const float *h, const float *w, int n, int V, int C,
                         double su, double *worst, double *smax)
{
    *worst = *smax = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < V; j++) {
            double sig = su * norm2_prod(h + (size_t)i * C, w + (size_t)j * C, C);
            double e = fabs((double)lb[(size_t)i * V + j] - lf[(size_t)i * V + j]) / (LAMBDA * sig);
            *worst = e > *worst ? e : *worst;
            *smax = sig > *smax ? sig : *smax;
        }
}

static void test_vs_f32(void)
{
    int L = 2, C = 64, B = 2, T = 72, V = 300, ns = 8; /* T >= 64: the blocked attention */
    gpt2_model mf, mb;
    make_model(&mf, L, 4, C, 80, V, 33);
    make_model(&mb, L, 4, C, 80, V, 33);
    if (gpt2_set_precision(&mb, GPT2_BF16)) die();
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T), nt = 0;
    float *soft = malloc(sizeof(float) * ns * C), *d1 = calloc((size_t)ns * C, 4), *d2 = calloc((size_t)ns * C, 4);
    dm_rng g;
    dm_rng_seed(&g, 8);
    randn(&g, soft, (size_t)ns * C, 0.5f);
    for (int i = 0; i < B * T; i++) {
        int t = i % T;
        in[i] = t < 4 ? GPT2_SOFT((i / T) * 4 + t) : (int)dm_rng_below(&g, (uint64_t)V);
        tg[i] = t >= 4 ? (int)dm_rng_below(&g, (uint64_t)V) : -1;
        nt += tg[i] >= 0;
    }
    size_t nl = (size_t)B * T * V;
    if (gpt2_forward(&mf, in, soft, ns, tg, B, T, (float)nt, GPT2_KEEP)) die();
    if (gpt2_forward(&mb, in, soft, ns, tg, B, T, (float)nt, GPT2_KEEP)) die();
    double sc, dl = maxdiff(mb.acts.logits, mf.acts.logits, nl, &sc), worst, smax;
    logit_budget(mb.acts.logits, mf.acts.logits, mf.acts.lnf, mf.params.wte, B * T, V, C, sigma_unit(L), &worst, &smax);
    double tz = LAMBDA * smax;
    double dloss = fabs((double)mb.loss - mf.loss);
    if (gpt2_backward(&mf, NULL, NULL, d1, 0)) die();
    if (gpt2_backward(&mb, NULL, NULL, d2, 0)) die();
    double n1 = 0, nd = 0;
    for (size_t i = 0; i < (size_t)ns * C; i++) {
        n1 += (double)d1[i] * d1[i];
        nd += ((double)d2[i] - d1[i]) * ((double)d2[i] - d1[i]);
    }
    double rg = sqrt(nd / n1), tg_rel = LAMBDA * sqrt(2.0 * (4 * L + 1)) * U_BF * sqrt(2.0 / 3.0);
    printf("  bf16 vs f32: logits max diff %.3g (max |logit| %.3g), the largest %.3f of its own 6-sigma budget;\n"
           "    loss %.6f vs %.6f (budget %.3g); gradient to the soft inputs: relative 2-norm difference %.3g (budget %.3g)\n",
           dl, sc, worst, mb.loss, mf.loss, 2 * tz, rg, tg_rel);
    CHECK(worst <= 1, "a logit differs by %.3g of its budget", worst);
    CHECK(dloss <= 2 * tz, "losses differ by %g, budget %g", dloss, 2 * tz);
    CHECK(rg <= tg_rel, "soft-input gradients differ by %g relative, budget %g", rg, tg_rel);
    CHECK(dl > 0 && rg > 0, "bf16 and f32 agree exactly: is bf16 in force?");
    /* the pool: 2 and 3 threads give the same bits as 1 (every product row, loop element and attention
     * head is computed by one thread, in the same order) */
    float *l1 = malloc(sizeof(float) * nl), *d3 = calloc((size_t)ns * C, 4);
    nn_bf16_set_threads(1); /* the logits were overwritten by the backward: run again */
    if (gpt2_forward(&mb, in, soft, ns, tg, B, T, (float)nt, GPT2_KEEP)) die();
    memcpy(l1, mb.acts.logits, sizeof(float) * nl);
    memset(d2, 0, sizeof(float) * ns * C);
    if (gpt2_backward(&mb, NULL, NULL, d2, 0)) die();
    int same = 1;
    for (int th = 2; th <= 3; th++) {
        nn_bf16_set_threads(th);
        memset(d3, 0, sizeof(float) * ns * C);
        if (gpt2_forward(&mb, in, soft, ns, tg, B, T, (float)nt, GPT2_KEEP)) die();
        same &= !memcmp(l1, mb.acts.logits, sizeof(float) * nl);
        if (gpt2_backward(&mb, NULL, NULL, d3, 0)) die();
        same &= !memcmp(d2, d3, sizeof(float) * ns * C);
    }
    nn_bf16_set_threads(0);
    CHECK(same, "bf16 logits or soft-input gradients depend on the thread count");
    free(l1);
    free(d3);
    free(in);
    free(tg);
    free(soft);
    free(d1);
    free(d2);
    gpt2_free(&mf);
    gpt2_free(&mb);
}

/* The prompt stage's scoring calls: soft user tokens and a text prefix appended to the KV cache,
 * then candidates (a title of 1-5 tokens, then the item's soft token) scored by
 * gpt2_cache_score_mixed, the score being the mean of the title's and the soft token's
 * log-probabilities ("both", length-normalised). Returns the scores and, through hid, the final
 * hidden states of every scored position (for the budget). */
#define NCAND 24
static void score_candidates(const gpt2_model *m, const int *pre, int np, const float *usoft, int nus, const int *tok,
                             const int64_t *off, const float *esoft, double *score)
{
    gpt2_cache c;
    if (gpt2_cache_init(&c, m, 128, 16)) die(); /* 16 rows per batch: several batches */
    if (gpt2_cache_append(&c, pre, usoft, nus, np)) die();
    double ll[NCAND], ls[NCAND];
    if (gpt2_cache_score_mixed(&c, tok, off, NCAND, NULL, 0, esoft, ll, ls)) die();
    for (int i = 0; i < NCAND; i++) score[i] = (ll[i] + ls[i]) / (double)(off[i + 1] - off[i] + 1);
    gpt2_cache_free(&c);
}

/* A prompt of np positions, the first nus soft rows of usoft (3 x 64; GPT2_SOFT(k) = LLAMA_SOFT(k)),
 * the rest random tokens of V; NCAND candidates of 1-5 random tokens (tok, off); esoft (NCAND x 64)
 * a soft token per candidate, scaled like token embeddings. Seeded. */
static void random_prompt(uint64_t seed, int V, int np, int nus, int *pre, int *tok, int64_t *off, float *usoft, float *esoft)
{
    dm_rng g;
    dm_rng_seed(&g, seed);
    randn(&g, usoft, 3 * 64, 0.5f);
    randn(&g, esoft, (size_t)NCAND * 64, 0.25f);
    for (int i = 0; i < np; i++) pre[i] = i < nus ? GPT2_SOFT(i) : (int)dm_rng_below(&g, (uint64_t)V);
    off[0] = 0;
    for (int i = 0; i < NCAND; i++) {
        int n = 1 + (int)dm_rng_below(&g, 5);
        for (int j = 0; j < n; j++) tok[off[i] + j] = (int)dm_rng_below(&g, (uint64_t)V);
        off[i + 1] = off[i] + n;
    }
}

/* A candidate's score budget (part 6): for every log-probability its score averages (its n title
 * tokens, then its soft item token e as one more vocabulary entry), log p_t = z_t - lse moves by at
 * most LAMBDA sig (sigma_t + sum_j p_j sigma_j) (the lse moves by the softmax-weighted mean of the
 * logits' moves); h (rows np - 1 .. np - 1 + n, width C) and z (likewise, V logits) from an f32
 * batch forward of the prompt + candidate, head (V, C) the output head, sig the model's unit sigma. */
static double cand_budget(const float *hs, const float *zs, const float *head, const float *e, const int *ctok, int n, int np, int C,
                          int V, double sig)
{
    double tau = 0;
    for (int j = 0; j <= n; j++) { /* j < n: title token j; j = n: the soft item token */
        const float *h = hs + (size_t)(np - 1 + j) * C, *z = zs + (size_t)(np - 1 + j) * V;
        double ze = 0;
        for (int k = 0; k < C; k++) ze += (double)h[k] * e[k];
        double mx = ze, se = 0, ws = 0;
        for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) {
            double pv = exp(z[v] - mx);
            se += pv;
            ws += pv * norm2_prod(h, head + (size_t)v * C, C);
        }
        if (j == n) { /* the soft token is one more entry of the softmax */
            se += exp(ze - mx);
            ws += exp(ze - mx) * norm2_prod(h, e, C);
        }
        double st = j < n ? norm2_prod(h, head + (size_t)ctok[j] * C, C) : norm2_prod(h, e, C);
        tau += LAMBDA * sig * (st + ws / se);
    }
    return tau / (n + 1);
}

static void test_prompt_scores(void)
{
    int L = 2, C = 64, V = 300, nus = 3, np = 23;
    gpt2_model mf, mb;
    make_model(&mf, L, 4, C, 128, V, 44);
    make_model(&mb, L, 4, C, 128, V, 44);
    if (gpt2_set_precision(&mb, GPT2_BF16)) die();
    int pre[23], tok[NCAND * 5];
    int64_t off[NCAND + 1];
    float usoft[3 * 64], esoft[NCAND * 64];
    random_prompt(12, V, np, nus, pre, tok, off, usoft, esoft);
    double sf[NCAND], sb[NCAND];
    score_candidates(&mf, pre, np, usoft, nus, tok, off, esoft, sf);
    score_candidates(&mb, pre, np, usoft, nus, tok, off, esoft, sb);

    /* each candidate's budget: for every log-probability it averages, log p_t = z_t - lse moves by at
     * most 6 (sigma_t + sum_j p_j sigma_j) (the lse moves by the softmax-weighted mean of the logits'
     * moves), with h, p from an f32 batch forward of the prompt + candidate */
    double tau[NCAND], dbatch = 0;
    int T = np + 5, *seq = malloc(sizeof(int) * T);
    for (int i = 0; i < NCAND; i++) {
        int n = (int)(off[i + 1] - off[i]);
        memcpy(seq, pre, sizeof(int) * np);
        memcpy(seq + np, tok + off[i], sizeof(int) * n);
        if (gpt2_forward(&mf, seq, usoft, nus, NULL, 1, np + n, 1, 0)) die();
        tau[i] = cand_budget(mf.acts.lnf, mf.acts.logits, mf.params.wte, esoft + (size_t)i * C, tok + off[i], n, np, C, V, sigma_unit(L));
        /* the cache path and the batch forward agree under bf16 (the same kernel on the same rows; only
         * float attention differs): the candidate's title log-likelihood */
        if (gpt2_forward(&mb, seq, usoft, nus, NULL, 1, np + n, 1, 0)) die();
        double llb = 0;
        for (int j = 0; j < n; j++) {
            const float *z = mb.acts.logits + (size_t)(np - 1 + j) * V;
            double mx = -INFINITY, se = 0;
            for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            for (int v = 0; v < V; v++) se += exp(z[v] - mx);
            llb += z[tok[off[i] + j]] - mx - log(se);
        }
        gpt2_cache cc;
        if (gpt2_cache_init(&cc, &mb, 128, 16)) die();
        if (gpt2_cache_append(&cc, pre, usoft, nus, np)) die();
        double ll;
        if (gpt2_cache_score(&cc, tok + off[i], (int64_t[]){0, n}, 1, &ll)) die();
        gpt2_cache_free(&cc);
        dbatch = fabs(ll - llb) > dbatch ? fabs(ll - llb) : dbatch;
    }
    free(seq);
    double worst = 0, tmax = 0;
    for (int i = 0; i < NCAND; i++) {
        worst = fabs(sb[i] - sf[i]) / tau[i] > worst ? fabs(sb[i] - sf[i]) / tau[i] : worst;
        tmax = tau[i] > tmax ? tau[i] : tmax;
    }
    /* rankings: every pair the f32 scores separate by more than both budgets keeps its order */
    int pairs = 0, sep = 0, flipped = 0, flipped_close = 0, top_f = 0, top_b = 0;
    for (int i = 0; i < NCAND; i++) {
        if (sf[i] > sf[top_f]) top_f = i;
        if (sb[i] > sb[top_b]) top_b = i;
        for (int j = i + 1; j < NCAND; j++) {
            pairs++;
            int flip = (sf[i] - sf[j]) * (sb[i] - sb[j]) < 0;
            if (fabs(sf[i] - sf[j]) > tau[i] + tau[j]) {
                sep++;
                flipped += flip;
            } else {
                flipped_close += flip;
            }
        }
    }
    printf("  prompt scoring, %d candidates: bf16 vs f32 scores differ by at most %.3f of their budgets (largest budget\n"
           "    %.3g); %d of %d pairs further apart than their two budgets, %d of them reordered; %d reordered among the\n"
           "    closer ones; top-1 %s; cache path vs batch forward under bf16: %.3g\n",
           NCAND, worst, tmax, sep, pairs, flipped, flipped_close, top_f == top_b ? "the same" : "differs", dbatch);
    CHECK(worst <= 1, "a score differs by %.3g of its budget", worst);
    CHECK(flipped == 0, "%d well-separated pairs reordered", flipped);
    CHECK(sep > pairs / 2, "only %d of %d pairs are separated: the check says little", sep, pairs);
    /* the two bf16 paths differ by float attention only: far below the bf16 budget */
    CHECK(dbatch <= 1e-3 * tmax, "the cache path and the batch forward differ by %g under bf16", dbatch);
    gpt2_free(&mf);
    gpt2_free(&mb);
}

/* ---- 7. the fallback ------------------------------------------------------------------------- */

/* forward logits of a fixed batch are bitwise those of an f32 model */
static int same_as_f32(gpt2_model *m)
{
    gpt2_model f;
    make_model(&f, 1, 2, 32, 16, 50, 77);
    int in[16];
    for (int i = 0; i < 16; i++) in[i] = (i * 7) % 50;
    if (gpt2_forward(m, in, NULL, 0, NULL, 1, 16, 1, 0) || gpt2_forward(&f, in, NULL, 0, NULL, 1, 16, 1, 0)) die();
    int same = !memcmp(m->acts.logits, f.acts.logits, sizeof(float) * 16 * 50);
    gpt2_free(&f);
    return same;
}

static int child(void)
{
    /* DM_NO_BF16 is set: both requests fall back, the log says so once */
    gpt2_model a, b;
    make_model(&a, 1, 2, 32, 16, 50, 77);
    make_model(&b, 1, 2, 32, 16, 50, 77);
    if (gpt2_set_precision(&a, GPT2_BF16) || gpt2_set_precision(&b, GPT2_BF16)) die();
    printf("child: available %d, precision %s %s, same as f32 %d\n", nn_bf16_available(), gpt2_precision_name(a.precision),
           gpt2_precision_name(b.precision), same_as_f32(&a));
    gpt2_free(&a);
    gpt2_free(&b);
    return 0;
}

/* Runs this binary with DM_NO_BF16=1 and `flag` (its child mode): its output (stdout and stderr) into
 * out, the count of its fallback warnings into *warns; returns its exit status (-1: not started). */
static int run_child(const char *self, const char *flag, char *out, size_t cap, int *warns)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "DM_NO_BF16=1 '%s' %s 2>&1", self, flag);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    int rc = f ? pclose(f) : -1;
    *warns = 0;
    for (const char *s = out; (s = strstr(s, "warning: lm:")) != NULL; s++) (*warns)++;
    return rc;
}

static void test_fallback(const char *self)
{
    gpt2_model m;
    make_model(&m, 1, 2, 32, 16, 50, 77);
    nn_bf16_disable(1);
    CHECK(!nn_bf16_available(), "disabled, yet available");
    if (gpt2_set_precision(&m, GPT2_BF16)) die();
    CHECK(m.precision == GPT2_F32 && m.bf == NULL, "disabled: bf16 fell back to %s", gpt2_precision_name(m.precision));
    CHECK(same_as_f32(&m), "the fallback's logits differ from an f32 model's");
    nn_bf16_disable(0);
    if (nn_bf16_cpu()) {
        if (gpt2_set_precision(&m, GPT2_BF16)) die();
        CHECK(m.precision == GPT2_BF16 && !same_as_f32(&m), "re-enabled: bf16 is in force and differs from f32");
        if (gpt2_set_precision(&m, GPT2_F32)) die();
        CHECK(m.precision == GPT2_F32 && m.bf == NULL && same_as_f32(&m), "back to f32: bitwise f32 again");
    }
    gpt2_free(&m);

    char out[4096];
    int warns, rc = run_child(self, "--child", out, sizeof out, &warns);
    printf("  DM_NO_BF16=1: %s", out);
    CHECK(rc == 0, "the child failed (%d)", rc);
    CHECK(strstr(out, "child: available 0, precision f32 f32, same as f32 1") != NULL, "the child did not fall back to f32");
    CHECK(warns == 1, "%d fallback warnings, expected exactly one", warns);
}

/* ---- 8. Llama under LLAMA_BF16 ------------------------------------------------------------------ */

/* A small random Llama, scaled as make_model's GPT-2: token embeddings and an untied head of std
 * 0.25 (logits of std ~2 at D = 64), block matrices of std 0.06, norm gains 1 + N(0, 0.1).
 * rope_theta 10000, eps 1e-5. */
static void make_llama(llama_model *m, int L, int NH, int NKV, int hd, int D, int F, int T, int V, int tied,
                       uint64_t seed)
{
    llama_config c = {.dim = D, .hidden_dim = F, .n_layers = L, .n_heads = NH, .n_kv_heads = NKV, .head_dim = hd,
                      .vocab_size = V, .max_seq = T, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied = tied};
    if (llama_init(m, &c)) die();
    dm_rng g;
    dm_rng_seed(&g, seed);
    llama_params *p = &m->params;
    float *v[LLAMA_NUM_PARAMS] = {p->emb, p->attn_norm, p->wqkv, p->wo, p->ffn_norm, p->w13, p->w2, p->norm, p->head};
    float sd[LLAMA_NUM_PARAMS] = {0.25f, 0.1f, 0.06f, 0.06f, 0.1f, 0.06f, 0.06f, 0.1f, 0.25f};
    for (int k = 0; k < LLAMA_NUM_PARAMS; k++) {
        randn(&g, v[k], m->param_sizes[k], sd[k]); /* param_sizes[8] is 0 when tied */
        if (k == 1 || k == 4 || k == 7)
            for (size_t i = 0; i < m->param_sizes[k]; i++) v[k][i] += 1.0f;
    }
}

/* the bytes nn_bf16_pack gives B (K, N): ceil(N / 64) panels of ceil(K / 2) pairs of 64 words */
static size_t packed_bytes(size_t K, size_t N) { return (N + 63) / 64 * ((K + 1) / 2) * 64 * sizeof(uint32_t); }

/* the copies llama_set_precision makes (each weight (OC, IC) as B = W^T (IC, OC), the head once
 * as (D, V), tied or not) and those the first backward adds (B = W (OC, IC), the head as (V, D)) */
static size_t llama_expected_bytes(const llama_config *c, int bwd)
{
    size_t D = (size_t)c->dim, F = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, QD = (size_t)llama_qdim(c),
           S = QD + 2 * (size_t)llama_kvdim(c);
    size_t io[4][2] = {{D, S}, {QD, D}, {D, 2 * F}, {F, D}}; /* (IC, OC) of wqkv, wo, w13, w2 */
    size_t n = packed_bytes(D, V) + (bwd ? packed_bytes(V, D) : 0);
    for (int k = 0; k < 4; k++)
        n += (size_t)c->n_layers * (packed_bytes(io[k][0], io[k][1]) + (bwd ? packed_bytes(io[k][1], io[k][0]) : 0));
    return n;
}

/* inputs (B, T): the first ns_per positions of each sequence soft rows, then random tokens; targets
 * from position ns_per on; returns the number of targets */
static int llama_batch(dm_rng *g, int *in, int *tg, int B, int T, int ns_per, int V)
{
    int nt = 0;
    for (int i = 0; i < B * T; i++) {
        int t = i % T;
        in[i] = t < ns_per ? LLAMA_SOFT((i / T) * ns_per + t) : (int)dm_rng_below(g, (uint64_t)V);
        tg[i] = t >= ns_per ? (int)dm_rng_below(g, (uint64_t)V) : -1;
        nt += tg[i] >= 0;
    }
    return nt;
}

/* 8a. Every product of a bf16 forward (and two of the backward) recomputed in double from the run's
 * own kept inputs, within part 4's worst-case bound (product_error): the o and down projections
 * accumulate onto the residual, gate/up and the head start from 0; of the stacked qkv product only
 * v is kept unrotated, so v is checked. A packing in the wrong orientation, the wrong layer's or
 * kind's copy, or a float path left in place fails it (the bound also has a floor: > 0.005 of it,
 * so the operands must be rounded). The copies' bytes are those of the formula, before and after
 * the first backward. */
static void test_llama_products(void)
{
    llama_model m;
    int L = 2, NH = 4, NKV = 2, hd = 12, D = 64, F = 96, B = 2, T = 24, V = 301, ns = 6;
    make_llama(&m, L, NH, NKV, hd, D, F, 32, V, 0, 51);
    if (llama_set_precision(&m, LLAMA_BF16)) die();
    CHECK(m.precision == LLAMA_BF16 && m.bf != NULL, "Llama: bf16 is in force");
    size_t b0 = llama_bf16_bytes(&m), e0 = llama_expected_bytes(&m.cfg, 0);
    CHECK(b0 == e0, "Llama bf16 copies: %zu bytes, expected %zu", b0, e0);
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    float *soft = malloc(sizeof(float) * ns * D), *dsoft = calloc((size_t)ns * D, sizeof(float));
    dm_rng g;
    dm_rng_seed(&g, 52);
    randn(&g, soft, (size_t)ns * D, 0.5f);
    int nt = llama_batch(&g, in, tg, B, T, 3, V);
    if (llama_forward(&m, in, soft, ns, tg, B, T, (float)nt, LLAMA_KEEP | LLAMA_TARGET_ROWS)) die();
    const llama_acts *a = &m.acts;
    const llama_params *p = &m.params;
    int N = B * T, QD = NH * hd, KD = NKV * hd, S = QD + 2 * KD;
    size_t lD = (size_t)N * D;
    float *yv = malloc(sizeof(float) * N * KD);
    double w[5] = {0};
    for (int l = 0; l < L; l++) {
        const float *res = l == 0 ? a->x0 : a->res3 + (l - 1) * lD;
        const float *qkv = a->qkv + (size_t)l * N * S;
        for (int i = 0; i < N; i++) memcpy(yv + (size_t)i * KD, qkv + (size_t)i * S + QD + KD, sizeof(float) * KD);
        double e[4] = {
            product_error(yv, a->xn1 + l * lD, p->wqkv + ((size_t)l * S + QD + KD) * D, 1, NULL, NULL, N, D, KD),
            product_error(a->res2 + l * lD, a->atty + (size_t)l * N * QD, p->wo + (size_t)l * D * QD, 1, NULL, res, N,
                          QD, D),
            product_error(a->gu + (size_t)l * N * 2 * F, a->xn2 + l * lD, p->w13 + (size_t)l * 2 * F * D, 1, NULL, NULL,
                          N, D, 2 * F),
            product_error(a->res3 + l * lD, a->hsw + (size_t)l * N * F, p->w2 + (size_t)l * D * F, 1, NULL,
                          a->res2 + l * lD, N, F, D)};
        for (int k = 0; k < 4; k++) w[k] = e[k] > w[k] ? e[k] : w[k];
    }
    w[4] = product_error(a->logits, a->xf_rows, p->head, 1, NULL, NULL, m.n_rows, D, V);
    printf("  Llama bf16 forward, error / bound: v %.3f, o %.3f, gate/up %.3f, down %.3f, head %.3f\n", w[0], w[1],
           w[2], w[3], w[4]);
    for (int k = 0; k < 5; k++) CHECK(w[k] <= 1.0 && w[k] > 0.005, "Llama forward product %d: %.3g of the bound", k, w[k]);
    /* backward: the head's product to the hidden states (packed rows: xf_rows = dlogits head, with
     * dlogits left in logits) and layer 0's qkv product (dbt_d = dqkv wqkv) */
    if (llama_backward(&m, NULL, NULL, dsoft)) die();
    double bh = product_error(a->xf_rows, a->logits, p->head, 0, NULL, NULL, m.n_rows, V, D);
    double bq = product_error(m.dbt_d, m.dqkv, p->wqkv, 0, NULL, NULL, N, S, D);
    printf("  Llama bf16 backward, error / bound: head %.3f, layer 0 qkv %.3f\n", bh, bq);
    CHECK(bh <= 1.0 && bh > 0.005, "Llama backward head product: %.3g of the bound", bh);
    CHECK(bq <= 1.0 && bq > 0.005, "Llama backward qkv product: %.3g of the bound", bq);
    size_t b1 = llama_bf16_bytes(&m), e1 = llama_expected_bytes(&m.cfg, 1);
    printf("  Llama bf16 copies: %zu bytes forward, %zu with the backward's (f32 weights %zu)\n", b0, b1,
           m.num_params * sizeof(float));
    CHECK(b1 == e1, "Llama bf16 copies after a backward: %zu bytes, expected %zu", b1, e1);
    free(yv);
    free(in);
    free(tg);
    free(soft);
    free(dsoft);
    llama_free(&m);
}

/* 8b. bf16 against f32 end to end, with part 6's probabilistic budget. A Llama block has the same
 * four products in series as GPT-2's (qkv, o, gate/up, down), but SwiGLU multiplies the gate and up
 * halves of one product, so that product's independent errors reach the logit twice: 5L + 1
 * sources forward,
 *     sigma_j = sqrt(5L + 1) u sqrt(2/3) ||h o head_j||_2      (h the final hidden state),
 * a logit within 6 sigma_j, the loss (a mean of log-probabilities) within 2 x 6 max_j sigma_j. The
 * gradient to the inputs adds the backward's 4L + 1 products (down, gate/up, o, qkv transposed
 * and the head's): relative 2-norm error <= 6 sqrt(9L + 2) u sqrt(2/3). */
static double llama_sigma_unit(int L) { return sqrt(5.0 * L + 1) * U_BF * sqrt(2.0 / 3.0); }

static void test_llama_vs_f32(const char *what, int NH, int NKV, int hd, int V, int tied, uint64_t seed)
{
    int L = 2, D = 64, F = 128, B = 2, T = 72, ns = 8; /* T >= 64: the blocked attention */
    llama_model mf, mb;
    make_llama(&mf, L, NH, NKV, hd, D, F, 80, V, tied, seed);
    make_llama(&mb, L, NH, NKV, hd, D, F, 80, V, tied, seed);
    if (llama_set_precision(&mb, LLAMA_BF16)) die();
    CHECK(tied == (mb.params.head == mb.params.emb), "%s: the head is%s the embedding", what, tied ? " not" : "");
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    float *soft = malloc(sizeof(float) * ns * D), *d1 = calloc((size_t)ns * D, 4), *d2 = calloc((size_t)ns * D, 4);
    dm_rng g;
    dm_rng_seed(&g, seed + 7);
    randn(&g, soft, (size_t)ns * D, 0.5f);
    int nt = llama_batch(&g, in, tg, B, T, 4, V);
    size_t nl = (size_t)B * T * V;
    if (llama_forward(&mf, in, soft, ns, tg, B, T, (float)nt, LLAMA_KEEP)) die();
    if (llama_forward(&mb, in, soft, ns, tg, B, T, (float)nt, LLAMA_KEEP)) die();
    double sc, dl = maxdiff(mb.acts.logits, mf.acts.logits, nl, &sc), worst, smax;
    logit_budget(mb.acts.logits, mf.acts.logits, mf.acts.xf, mf.params.head, B * T, V, D, llama_sigma_unit(L), &worst,
                 &smax);
    double tz = LAMBDA * smax, dloss = fabs((double)mb.loss - mf.loss);
    /* the logits of the target rows alone are bitwise the full forward's (the kernel's rows are
     * independent), and so is the gradient through them */
    float *lfull = malloc(sizeof(float) * nl), *d3 = calloc((size_t)ns * D, 4);
    memcpy(lfull, mb.acts.logits, sizeof(float) * nl);
    float loss_full = mb.loss;
    if (llama_backward(&mf, NULL, NULL, d1)) die();
    if (llama_backward(&mb, NULL, NULL, d2)) die();
    double n1 = 0, nd = 0;
    for (size_t i = 0; i < (size_t)ns * D; i++) {
        n1 += (double)d1[i] * d1[i];
        nd += ((double)d2[i] - d1[i]) * ((double)d2[i] - d1[i]);
    }
    double rg = sqrt(nd / n1), tg_rel = LAMBDA * sqrt(9.0 * L + 2) * U_BF * sqrt(2.0 / 3.0);
    printf("  %s bf16 vs f32: logits max diff %.3g (max |logit| %.3g), the largest %.3f of its own 6-sigma budget;\n"
           "    loss %.6f vs %.6f (diff %.3g, budget %.3g); gradient to the soft inputs: relative 2-norm difference %.3g\n"
           "    (budget %.3g)\n",
           what, dl, sc, worst, mb.loss, mf.loss, dloss, 2 * tz, rg, tg_rel);
    CHECK(worst <= 1, "%s: a logit differs by %.3g of its budget", what, worst);
    CHECK(dloss <= 2 * tz, "%s: losses differ by %g, budget %g", what, dloss, 2 * tz);
    CHECK(rg <= tg_rel, "%s: soft-input gradients differ by %g relative, budget %g", what, rg, tg_rel);
    CHECK(dl > 0 && rg > 0, "%s: bf16 and f32 agree exactly: is bf16 in force?", what);

    if (llama_forward(&mb, in, soft, ns, tg, B, T, (float)nt, LLAMA_KEEP | LLAMA_TARGET_ROWS)) die();
    int rows_same = mb.n_rows == nt && mb.loss == loss_full;
    for (int k = 0; k < mb.n_rows && rows_same; k++)
        rows_same = !memcmp(mb.acts.logits + (size_t)k * V, lfull + (size_t)mb.rows[k] * V, sizeof(float) * V);
    if (llama_backward(&mb, NULL, NULL, d3)) die();
    CHECK(rows_same, "%s: bf16 logits of the target rows differ from the full forward's", what);
    CHECK(!memcmp(d2, d3, sizeof(float) * ns * D), "%s: bf16 soft-input gradients through the target rows differ", what);

    /* the pool: 2 and 3 threads give the same bits as 1 */
    int same = 1;
    float *l1 = malloc(sizeof(float) * nl);
    for (int th = 1; th <= 3; th++) {
        nn_bf16_set_threads(th);
        memset(d3, 0, sizeof(float) * ns * D);
        if (llama_forward(&mb, in, soft, ns, tg, B, T, (float)nt, LLAMA_KEEP)) die();
        if (th == 1) memcpy(l1, mb.acts.logits, sizeof(float) * nl);
        else same &= !memcmp(l1, mb.acts.logits, sizeof(float) * nl);
        if (llama_backward(&mb, NULL, NULL, d3)) die();
        same &= !memcmp(d2, d3, sizeof(float) * ns * D);
    }
    nn_bf16_set_threads(0);
    CHECK(same, "%s: bf16 logits or soft-input gradients depend on the thread count", what);
    free(l1);
    free(lfull);
    free(d3);
    free(in);
    free(tg);
    free(soft);
    free(d1);
    free(d2);
    llama_free(&mf);
    llama_free(&mb);
}

/* 8c. The prompt stage's scoring calls on the Llama (as part 6's test_prompt_scores): soft user
 * tokens and a text prefix in the KV cache, NCAND candidates scored with their soft item tokens by
 * llama_cache_score_mixed. bf16 against f32: every score within its first-order budget tau (part
 * 6's, with 5L + 1 sources), well-separated pairs keep their order.
 * The cache path against the full forward, both in bf16: the products are the same kernel on the
 * same rows, so the two differ only where float operations differ: the attention's sums (taken in
 * another order) and what follows from them. In f32 that is float rounding, d32 (measured here, the
 * same comparison in f32). Under bf16 such a float-level shift D = k 2^-24 |x| of an operand x
 * usually leaves bf16(x) as it is, but with probability D / s crosses a rounding boundary and moves
 * it by a whole bfloat16 spacing s <= 2u |x|: a jump of mean D and standard deviation
 * sqrt(D s) <= sqrt(2 k 2^-24 u) |x|, i.e. sqrt(6 k 2^-24 / u) times a bfloat16 rounding's own
 * (u |x| / sqrt(3)). So (i) most candidates (no flip anywhere upstream: at most 4 d32 apart) agree to
 * float rounding, and (ii) every candidate agrees within tau sqrt(6 k 2^-24 / u), taking k = 16
 * ulps of float difference: 0.038 tau. */
static void llama_score(const llama_model *m, const int *pre, int np, const float *usoft, int nus, const int *tok,
                        const int64_t *off, const float *esoft, double *score)
{
    llama_cache c;
    if (llama_cache_init(&c, m, 128, 16)) die(); /* 16 rows per batch: several batches */
    if (llama_cache_append(&c, pre, usoft, nus, np)) die();
    double ll[NCAND], ls[NCAND];
    if (llama_cache_score_mixed(&c, tok, off, NCAND, NULL, 0, esoft, ll, ls)) die();
    for (int i = 0; i < NCAND; i++) score[i] = (ll[i] + ls[i]) / (double)(off[i + 1] - off[i] + 1);
    llama_cache_free(&c);
}

static void test_llama_scores(void)
{
    int L = 2, D = 64, V = 300, nus = 3, np = 23;
    llama_model mf, mb;
    make_llama(&mf, L, 4, 2, 16, D, 128, 128, V, 1, 61); /* grouped-query attention, tied head */
    make_llama(&mb, L, 4, 2, 16, D, 128, 128, V, 1, 61);
    if (llama_set_precision(&mb, LLAMA_BF16)) die();
    int pre[23], tok[NCAND * 5];
    int64_t off[NCAND + 1];
    float usoft[3 * 64], esoft[NCAND * 64];
    random_prompt(62, V, np, nus, pre, tok, off, usoft, esoft);
    double sf[NCAND], sb[NCAND];
    llama_score(&mf, pre, np, usoft, nus, tok, off, esoft, sf);
    llama_score(&mb, pre, np, usoft, nus, tok, off, esoft, sb);

    /* budgets (part 6's derivation) from an f32 batch forward of the prompt + candidate; the same
     * forward under bf16 gives the candidate's score the cache path must reproduce */
    double tau[NCAND], dcache[NCAND], d32 = 0, dlogp = 0;
    int T = np + 5, *seq = malloc(sizeof(int) * T);
    for (int i = 0; i < NCAND; i++) {
        int n = (int)(off[i + 1] - off[i]);
        memcpy(seq, pre, sizeof(int) * np);
        memcpy(seq + np, tok + off[i], sizeof(int) * n);
        if (llama_forward(&mf, seq, usoft, nus, NULL, 1, np + n, 1, 0)) die();
        tau[i] = cand_budget(mf.acts.xf, mf.acts.logits, mf.params.head, esoft + (size_t)i * D, tok + off[i], n, np, D, V, llama_sigma_unit(L));
        /* the candidate's score from the batch forward, f32 (pr 0) and bf16 (pr 1) */
        for (int pr = 0; pr < 2; pr++) {
            llama_model *mm = pr ? &mb : &mf;
            if (pr && llama_forward(mm, seq, usoft, nus, NULL, 1, np + n, 1, 0)) die();
            double s = 0;
            for (int j = 0; j <= n; j++) {
                const float *z = mm->acts.logits + (size_t)(np - 1 + j) * V, *h = mm->acts.xf + (size_t)(np - 1 + j) * D;
                double mx = -INFINITY, se = 0, ze = 0;
                for (int k = 0; k < D; k++) ze += (double)h[k] * esoft[(size_t)i * D + k];
                for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
                for (int v = 0; v < V; v++) se += exp(z[v] - mx);
                double lse = mx + log(se);
                if (j < n) {
                    s += z[tok[off[i] + j]] - lse;
                } else { /* the soft token as one more vocabulary entry */
                    double m2 = lse > ze ? lse : ze;
                    s += ze - (m2 + log(exp(lse - m2) + exp(ze - m2)));
                }
                if (pr && j == 0) { /* the cache's next-token distribution after the prefix */
                    llama_cache cc;
                    if (llama_cache_init(&cc, &mb, 128, 16)) die();
                    if (llama_cache_append(&cc, pre, usoft, nus, np)) die();
                    for (int v = 0; v < V; v++) {
                        double d = fabs(cc.logp[v] - (z[v] - lse));
                        dlogp = d > dlogp ? d : dlogp;
                    }
                    llama_cache_free(&cc);
                }
            }
            s /= n + 1;
            if (pr) dcache[i] = fabs(s - sb[i]);
            else d32 = fabs(s - sf[i]) > d32 ? fabs(s - sf[i]) : d32;
        }
    }
    free(seq);
    double worst = 0, tmax = 0;
    for (int i = 0; i < NCAND; i++) {
        worst = fabs(sb[i] - sf[i]) / tau[i] > worst ? fabs(sb[i] - sf[i]) / tau[i] : worst;
        tmax = tau[i] > tmax ? tau[i] : tmax;
    }
    int pairs = 0, sep = 0, flipped = 0, flipped_close = 0;
    for (int i = 0; i < NCAND; i++)
        for (int j = i + 1; j < NCAND; j++) {
            pairs++;
            int flip = (sf[i] - sf[j]) * (sb[i] - sb[j]) < 0;
            if (fabs(sf[i] - sf[j]) > tau[i] + tau[j]) {
                sep++;
                flipped += flip;
            } else {
                flipped_close += flip;
            }
        }
    double dsc = 0, tflip = sqrt(6.0 * 16 * U_F32 / U_BF), wflip = 0, dmax = 0, tmin = INFINITY;
    int at_float = 0;
    for (int i = 0; i < NCAND; i++) {
        dsc = fabs(sb[i] - sf[i]) > dsc ? fabs(sb[i] - sf[i]) : dsc;
        at_float += dcache[i] <= 4 * d32;
        wflip = dcache[i] / (tflip * tau[i]) > wflip ? dcache[i] / (tflip * tau[i]) : wflip;
        dmax = dcache[i] > dmax ? dcache[i] : dmax;
        tmin = tau[i] < tmin ? tau[i] : tmin;
    }
    printf("  Llama prompt scoring, %d candidates: bf16 vs f32 scores differ by at most %.3g, %.3f of their budgets\n"
           "    (largest budget %.3g); %d of %d pairs further apart than their two budgets, %d of them reordered; %d\n"
           "    reordered among the closer ones; cache path vs batch forward: f32 scores %.3g; bf16 scores: %d of %d\n"
           "    within 4 x that (float rounding), the largest %.3g, %.4f of its flip budget %.3f tau; bf16 next-token\n"
           "    log-probabilities after the prefix %.3g\n",
           NCAND, dsc, worst, tmax, sep, pairs, flipped, flipped_close, d32, at_float, NCAND, dmax, wflip, tflip,
           dlogp);
    CHECK(worst <= 1, "Llama: a score differs by %.3g of its budget", worst);
    CHECK(dsc > 0, "Llama: bf16 and f32 scores agree exactly: is bf16 in force in the cache?");
    CHECK(flipped == 0, "Llama: %d well-separated pairs reordered", flipped);
    CHECK(sep > pairs / 2, "Llama: only %d of %d pairs are separated: the check says little", sep, pairs);
    CHECK(d32 < 1e-5, "Llama: the cache path and the batch forward differ by %g in f32", d32);
    CHECK(at_float > NCAND / 2, "Llama: only %d of %d bf16 cache scores agree with the forward to float rounding", at_float,
          NCAND);
    CHECK(wflip <= 1, "Llama: a bf16 cache score differs from the forward's by %.3g of its flip budget", wflip);
    CHECK(dlogp <= tflip * tmin, "Llama: the cache's log-probabilities differ from the forward's by %g under bf16", dlogp);
    llama_free(&mf);
    llama_free(&mb);
}

/* 8d. The fallback: disabled, LLAMA_BF16 runs f32 (no copies), logits and soft-input gradients
 * bitwise an f32 model's; re-enabled it is bf16 again, and back to LLAMA_F32 bitwise f32. lm.c
 * dispatches lm.precision to the Llama (lm_set_precision, lm_precision). */
static int llama_same_as_f32(llama_model *m)
{
    llama_model f;
    make_llama(&f, 1, 4, 2, 8, 32, 48, 16, 50, 0, 78);
    int in[16], tg[16];
    float soft[2 * 32], d1[2 * 32] = {0}, d2[2 * 32] = {0};
    for (int i = 0; i < 16; i++) {
        in[i] = i < 2 ? LLAMA_SOFT(i) : (i * 7) % 50;
        tg[i] = i >= 2 ? (i * 11) % 50 : -1;
    }
    for (int k = 0; k < 64; k++) soft[k] = 0.05f * (float)(k % 13) - 0.3f;
    if (llama_forward(m, in, soft, 2, tg, 1, 16, 14, LLAMA_KEEP) || llama_forward(&f, in, soft, 2, tg, 1, 16, 14, LLAMA_KEEP))
        die();
    int same = !memcmp(m->acts.logits, f.acts.logits, sizeof(float) * 16 * 50);
    if (llama_backward(m, NULL, NULL, d1) || llama_backward(&f, NULL, NULL, d2)) die();
    same &= !memcmp(d1, d2, sizeof d1);
    llama_free(&f);
    return same;
}

static int llama_child(void)
{
    /* DM_NO_BF16 is set: both requests fall back, the log says so once */
    llama_model a, b;
    make_llama(&a, 1, 4, 2, 8, 32, 48, 16, 50, 0, 78);
    make_llama(&b, 1, 4, 2, 8, 32, 48, 16, 50, 0, 78);
    if (llama_set_precision(&a, LLAMA_BF16) || llama_set_precision(&b, LLAMA_BF16)) die();
    printf("llama child: available %d, precision %d %d, copies %zu bytes, same as f32 %d\n", nn_bf16_available(),
           a.precision, b.precision, llama_bf16_bytes(&a) + llama_bf16_bytes(&b), llama_same_as_f32(&a));
    llama_free(&a);
    llama_free(&b);
    return 0;
}

static void test_llama_fallback(const char *self)
{
    llama_model m;
    make_llama(&m, 1, 4, 2, 8, 32, 48, 16, 50, 0, 78);
    nn_bf16_disable(1);
    if (llama_set_precision(&m, LLAMA_BF16)) die();
    CHECK(m.precision == LLAMA_F32 && m.bf == NULL && llama_bf16_bytes(&m) == 0, "Llama disabled: bf16 fell back to %d",
          m.precision);
    CHECK(llama_same_as_f32(&m), "the Llama fallback's logits or gradients differ from an f32 model's");
    nn_bf16_disable(0);
    if (nn_bf16_cpu()) {
        if (llama_set_precision(&m, LLAMA_BF16)) die();
        CHECK(m.precision == LLAMA_BF16 && !llama_same_as_f32(&m), "Llama re-enabled: bf16 is in force and differs from f32");
        if (llama_set_precision(&m, LLAMA_F32)) die();
        CHECK(m.precision == LLAMA_F32 && m.bf == NULL && llama_same_as_f32(&m), "Llama back to f32: bitwise f32 again");
    }
    llama_free(&m);

    /* lm.c's dispatch: an lm_model holding this Llama */
    lm_model lm;
    memset(&lm, 0, sizeof lm);
    lm.arch = LM_LLAMA;
    make_llama(&lm.llama, 1, 4, 2, 8, 32, 48, 16, 50, 0, 78);
    int want = nn_bf16_available() ? LM_BF16 : LM_F32;
    CHECK(lm_set_precision(&lm, "bf16") == DM_OK && lm_precision(&lm) == want && (lm.llama.bf != NULL) == (want == LM_BF16),
          "lm_set_precision(\"bf16\") on a Llama: precision %d, expected %d", lm_precision(&lm), want);
    CHECK(lm_set_precision(&lm, "f32") == DM_OK && lm_precision(&lm) == LM_F32 && lm.llama.bf == NULL,
          "lm_set_precision(\"f32\") on a Llama: precision %d", lm_precision(&lm));
    llama_free(&lm.llama);

    char out[4096];
    int warns, rc = run_child(self, "--child-llama", out, sizeof out, &warns);
    printf("  Llama, DM_NO_BF16=1: %s", out);
    CHECK(rc == 0, "the Llama child failed (%d)", rc);
    CHECK(strstr(out, "llama child: available 0, precision 0 0, copies 0 bytes, same as f32 1") != NULL,
          "the Llama child did not fall back to f32");
    CHECK(warns == 1, "%d Llama fallback warnings, expected exactly one", warns);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--child")) return child();
    if (argc > 1 && !strcmp(argv[1], "--child-llama")) return llama_child();
    test_rounding();
    test_pack();
    if (nn_bf16_cpu()) {
        test_kernel();
        test_gpt2_products();
        test_loops();
        test_vs_f32();
        test_prompt_scores();
        test_llama_products();
        test_llama_vs_f32("Llama (multi-head, untied head)", 4, 4, 16, 300, 0, 71);
        test_llama_vs_f32("Llama (grouped-query, tied head, head_dim 12)", 4, 2, 12, 301, 1, 72);
        test_llama_scores();
    } else {
        printf("SKIP parts 1 (hardware), 3-6, 8a-8c: this CPU lacks AVX512_BF16\n");
    }
    test_fallback(argv[0]);
    test_llama_fallback(argv[0]);
    return tap_done("test_lm_bf16");
}
