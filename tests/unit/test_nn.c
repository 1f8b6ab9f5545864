/* test_nn.c: the shared layers of src/nn (the matrix products have their own test_nn_gemm.c).
 *
 * Every function is held against a naive twin written here in double (a generic reference matrix
 * product and each layer's equation from its header), src/nn's own _naive twins against the same,
 * and every backward pass against central finite differences of L = sum(out * R) (R random),
 * computed in float with step h and checked as |fd - g| <= atol + rtol |g|. Tolerances, stated at
 * each check:
 *   linear / matmul   fast and naive vs double: 1e-5 of the largest reference magnitude (float
 *                     sums of <= 45 products); backward accumulates into nonzero gradients; the
 *                     sgemv bias sum and the strided variant alike; reproducible mode: a row
 *                     computed alone equals the same row in a batch, bitwise; FD h 1e-2, atol 1e-3,
 *                     rtol 1e-3 (the loss is linear in every input)
 *   layer norm        forward 1e-5 (statistics 1e-6), backward 1e-5 of the largest reference
 *                     magnitude; a constant row gives exactly b; FD h 1e-2, atol 2e-3, rtol 2e-2
 *   GELU              fast vs tanhf 1e-6 (GPT-2's bound), vs double 2e-6; backward vs double 1e-5
 *                     times 1 + |dout| (the fast tanh's absolute error, ~1.2e-7 near |u| = 5, is
 *                     multiplied by x K (1 + 0.134 x^2) / 2 in gelu'); the naive backward 2e-6; in
 *                     place bitwise equal to out of place; FD h 1e-2, 2e-4 absolute
 *   softmax / CE      nn_expf relative 1e-6 on [-80, 80]; softmax, log-sum-exp, cross-entropy and
 *                     its gradient vs double 1e-6 (relative for the loss); the fused and the split
 *                     gradient agree to 1e-6; FD of the loss h 1e-2, atol 1e-3, rtol 1e-2
 *   Adam / AdamW      against PyTorch (tests/reference/gen_nn.py: torch.optim.Adam with L2 on some
 *                     tensors, AdamW with decay on some, plain Adam; 5 steps on given gradients,
 *                     float32): weights after every step within 2e-7 + 1e-6 |w|; m within 1e-6 of
 *                     its largest element; v within 1e-4 relative (1 - beta is rounded from the
 *                     float beta here, in double by torch: 1 - 0.999f = 1.0000467e-3, so v
 *                     differs by up to 4.7e-5);
 *                     against the formula in double, fed the same float state each step,
 *                     1e-7 + 1e-6 |w|; the known first step w (1 - lr wd) - lr sign(g)
 *   MLP projector     fast vs naive 1e-5 (outputs, input gradients), 1e-4 (parameter gradients);
 *                     every parameter and input against FD h 1e-2, atol 2e-3, rtol 2e-2;
 *                     a second backward doubles every gradient (accumulation)
 */
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/nn/adam.h"
#include "../../src/nn/gelu.h"
#include "../../src/nn/gemm.h"
#include "../../src/nn/layernorm.h"
#include "../../src/nn/linear.h"
#include "../../src/nn/mlp.h"
#include "../../src/nn/softmax.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dm_rng g_rng;

static float *randv(size_t n, double scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * dm_rng_normal(&g_rng));
    return x;
}

/* max |a - ref| over n elements of strided rows (rows of w values, ld apart), relative to
 * max(1e-30, max |ref|) */
static double reldiff(const float *a, const double *ref, int rows, int w, int ld)
{
    double d = 0, m = 1e-30;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < w; c++) {
            d = fmax(d, fabs(a[(size_t)r * ld + c] - ref[(size_t)r * w + c]));
            m = fmax(m, fabs(ref[(size_t)r * w + c]));
        }
    return d / m;
}

/* C (M, N) += sum_k A(i, k) B(k, j) in double, A(i, k) = a[i ai + k ak], B(k, j) = b[k bk + j bj] */
static void ref_mm(double *c, const float *a, size_t ai, size_t ak, const float *b, size_t bk,
                   size_t bj, int M, int N, int K)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a[i * ai + k * ak] * b[k * bk + j * bj];
            c[(size_t)i * N + j] += s;
        }
}

/* Central finite differences of loss() over x[0..n): returns the worst |fd - g| / (atol + rtol |g|)
 * (<= 1 passes). */
typedef double (*loss_fn)(void *ctx);
static double fd_worst(loss_fn loss, void *ctx, float *x, const float *g, size_t n, float h, double atol,
                       double rtol)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        const float x0 = x[k];
        double l[2];
        for (int s = 0; s < 2; s++) {
            x[k] = s ? x0 - h : x0 + h;
            l[s] = loss(ctx);
        }
        x[k] = x0;
        worst = fmax(worst, fabs((l[0] - l[1]) / (2.0 * h) - g[k]) / (atol + rtol * fabs(g[k])));
    }
    return worst;
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- linear and matmul -------------------------------------------------------------------------- */

typedef struct {
    int io, N, IC, OC;
    float *x, *w, *b, *y, *R;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    if (c->io) nn_matmul_forward(c->y, c->x, c->w, c->b, c->N, c->IC, c->OC);
    else nn_linear_forward(c->y, c->x, c->w, c->b, c->N, c->IC, c->OC);
    return dot_d(c->y, c->R, (size_t)c->N * c->OC);
}

/* one layout (io = 0: w (OC, IC); 1: w (IC, OC)), with row strides ldi, ldo (linear only) */
static void linear_case(int io, int ldpad, int bias, int sgemv)
{
    const int N = 37, IC = 29, OC = 45, ldi = IC + ldpad, ldo = OC + ldpad;
    const size_t wo = io ? 1 : (size_t)IC, wi = io ? (size_t)OC : 1; /* w(o, i) = w[o wo + i wi] */
    float *x = randv((size_t)N * ldi, 1), *w = randv((size_t)IC * OC, 0.3), *b = bias ? randv(OC, 1) : NULL;
    float *dy = randv((size_t)N * ldo, 1), *ones = malloc((size_t)N * sizeof *ones);
    for (int r = 0; r < N; r++) ones[r] = 1.0f;
    double *ry = calloc((size_t)N * OC, sizeof *ry), *rdx = calloc((size_t)N * IC, sizeof *rdx),
           *rdw = calloc((size_t)IC * OC, sizeof *rdw), *rdb = calloc(OC, sizeof *rdb);
    /* reference: y = x W^T + b; dx = g0 + dy W; dW = gw0 + dy^T x; db = gb0 + 1^T dy */
    ref_mm(ry, x, (size_t)ldi, 1, w, wi, wo, N, OC, IC);
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) ry[(size_t)r * OC + o] += b ? b[o] : 0.0;
    float *gx0 = randv((size_t)N * ldi, 1), *gw0 = randv((size_t)IC * OC, 1), *gb0 = randv(OC, 1);
    for (int r = 0; r < N; r++)
        for (int i = 0; i < IC; i++) rdx[(size_t)r * IC + i] = gx0[(size_t)r * ldi + i];
    for (size_t k = 0; k < (size_t)IC * OC; k++) rdw[k] = gw0[k];
    for (int o = 0; o < OC; o++) rdb[o] = gb0[o];
    ref_mm(rdx, dy, (size_t)ldo, 1, w, wo, wi, N, IC, OC);
    double *tw = calloc((size_t)IC * OC, sizeof *tw); /* dW in (o, i) order, then placed */
    ref_mm(tw, dy, 1, (size_t)ldo, x, (size_t)ldi, 1, OC, IC, N);
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < IC; i++) rdw[o * wo + i * wi] += tw[(size_t)o * IC + i];
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) rdb[o] += dy[(size_t)r * ldo + o];

    for (int naive = 0; naive < 2; naive++) {
        float *y = malloc((size_t)N * ldo * sizeof *y), *dx = malloc((size_t)N * ldi * sizeof *dx);
        float *dw = malloc((size_t)IC * OC * sizeof *dw), *db = malloc(OC * sizeof *db);
        memcpy(dx, gx0, (size_t)N * ldi * sizeof *dx);
        memcpy(dw, gw0, (size_t)IC * OC * sizeof *dw);
        memcpy(db, gb0, OC * sizeof *db);
        if (io && naive) {
            nn_matmul_forward_naive(y, x, w, b, N, IC, OC);
            nn_matmul_backward_naive(dx, dw, db, dy, x, w, N, IC, OC);
        } else if (io) {
            nn_matmul_forward(y, x, w, b, N, IC, OC);
            nn_matmul_backward(dx, dw, db, dy, x, w, N, IC, OC);
        } else if (naive) {
            nn_linear_forward_ld_naive(y, ldo, x, ldi, w, b, N, IC, OC);
            nn_linear_backward_ld_naive(dx, ldi, dw, db, dy, ldo, x, w, sgemv ? ones : NULL, N, IC, OC);
        } else {
            nn_linear_forward_ld(y, ldo, x, ldi, w, b, N, IC, OC);
            nn_linear_backward_ld(dx, ldi, dw, db, dy, ldo, x, w, sgemv ? ones : NULL, N, IC, OC);
        }
        double e[4] = {reldiff(y, ry, N, OC, ldo), reldiff(dx, rdx, N, IC, ldi), reldiff(dw, rdw, 1, IC * OC, 0),
                       reldiff(db, rdb, 1, OC, 0)};
        printf("# %s %s (pad %d, bias %d, sgemv %d) vs double: y %.2g dx %.2g dw %.2g db %.2g\n",
               io ? "matmul" : "linear", naive ? "naive" : "fast ", ldpad, bias, sgemv, e[0], e[1], e[2], e[3]);
        CHECK(e[0] < 1e-5 && e[1] < 1e-5 && e[2] < 1e-5 && e[3] < 1e-5, "%s differs from the double reference",
              naive ? "naive" : "fast");
        free(y), free(dx), free(dw), free(db);
    }
    free(x), free(w), free(b), free(dy), free(ones), free(ry), free(rdx), free(rdw), free(rdb), free(tw);
    free(gx0), free(gw0), free(gb0);
}

static void test_linear(void)
{
    for (int io = 0; io < 2; io++)
        for (int bias = 0; bias < 2; bias++) linear_case(io, 0, bias, 0);
    linear_case(0, 3, 1, 0);
    linear_case(0, 3, 1, 1);
    linear_case(0, 0, 1, 1);

    /* edge cases: IC = 0 gives the bias (or 0); N = 0 touches nothing */
    float b[3] = {1, -2, 3}, y[6] = {9, 9, 9, 9, 9, 9}, x[1] = {0}, w[1] = {0};
    nn_linear_forward(y, x, w, b, 2, 0, 3);
    CHECK(y[0] == 1 && y[4] == -2 && y[5] == 3, "IC = 0: out = b");
    nn_linear_forward(y, x, w, NULL, 2, 0, 3);
    CHECK(y[0] == 0 && y[5] == 0, "IC = 0 without bias: out = 0");
    y[0] = 7;
    nn_linear_forward(y, x, w, b, 0, 5, 3);
    CHECK(y[0] == 7, "N = 0 writes nothing");

    /* reproducible mode: row r computed alone equals row r of the batch, bitwise */
    const int N = 7, IC = 300, OC = 33;
    float *X = randv((size_t)N * IC, 1), *W = randv((size_t)OC * IC, 0.1), *B = randv(OC, 1);
    float *Y = malloc((size_t)N * OC * sizeof *Y), *Y1 = malloc(OC * sizeof *Y1);
    nn_set_reproducible(1);
    nn_linear_forward(Y, X, W, B, N, IC, OC);
    int same = 1;
    for (int r = 0; r < N; r++) {
        nn_linear_forward(Y1, X + (size_t)r * IC, W, B, 1, IC, OC);
        same &= memcmp(Y1, Y + (size_t)r * OC, OC * sizeof *Y1) == 0;
    }
    nn_set_reproducible(0);
    CHECK(same, "reproducible mode: a row alone differs from the row in a batch");
    free(X), free(W), free(B), free(Y), free(Y1);

    /* finite differences of sum(y R) in every weight, bias and input, both layouts */
    for (int io = 0; io < 2; io++) {
        lin_ctx c = {io, 4, 5, 3, randv(20, 1), randv(15, 1), randv(3, 1), malloc(12 * sizeof(float)), randv(12, 1)};
        float gx[20] = {0}, gw[15] = {0}, gb[3] = {0};
        (io ? nn_matmul_backward : nn_linear_backward)(gx, gw, gb, c.R, c.x, c.w, 4, 5, 3);
        double wx = fd_worst(lin_loss, &c, c.x, gx, 20, 1e-2f, 1e-3, 1e-3);
        double ww = fd_worst(lin_loss, &c, c.w, gw, 15, 1e-2f, 1e-3, 1e-3);
        double wb = fd_worst(lin_loss, &c, c.b, gb, 3, 1e-2f, 1e-3, 1e-3);
        printf("# %s finite differences (worst / tolerance): x %.2g w %.2g b %.2g\n", io ? "matmul" : "linear", wx,
               ww, wb);
        CHECK(wx <= 1 && ww <= 1 && wb <= 1, "linear gradients disagree with finite differences");
        free(c.x), free(c.w), free(c.b), free(c.y), free(c.R);
    }
}

/* ---- layer norm --------------------------------------------------------------------------------- */

typedef struct {
    int N, C;
    float *x, *w, *b, *y, *R;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    nn_layernorm_forward(c->y, NULL, NULL, c->x, c->w, c->b, c->N, c->C, 1e-5f);
    return dot_d(c->y, c->R, (size_t)c->N * c->C);
}

/* xhat (C) and rstd of one row in double */
static double ref_xhat(double *xh, const float *x, int C, double eps)
{
    double mu = 0, var = 0;
    for (int c = 0; c < C; c++) mu += x[c] / (double)C;
    for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu) / C;
    for (int c = 0; c < C; c++) xh[c] = (x[c] - mu) / sqrt(var + eps);
    return 1.0 / sqrt(var + eps);
}

static void layernorm_case(int N, int C, float eps)
{
    float *x = randv((size_t)N * C, 2), *w = randv(C, 1), *b = randv(C, 1), *dy = randv((size_t)N * C, 1);
    for (int c = 0; c < C; c++) x[c] = 3.25f; /* row 0 constant: its variance is exactly 0 */
    double *ry = malloc((size_t)N * C * sizeof *ry), *rdx = malloc((size_t)N * C * sizeof *rdx),
           *rdw = calloc(C, sizeof *rdw), *rdb = calloc(C, sizeof *rdb), *rrs = malloc(N * sizeof *rrs);
    double *xh = malloc(C * sizeof *xh);
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C, *g = dy + (size_t)r * C;
        double rs = rrs[r] = ref_xhat(xh, xr, C, eps), a = 0, bb = 0;
        for (int c = 0; c < C; c++) {
            ry[(size_t)r * C + c] = xh[c] * w[c] + b[c];
            a += g[c] * w[c] / C;
            bb += g[c] * w[c] * xh[c] / C;
            rdw[c] += g[c] * xh[c];
            rdb[c] += g[c];
        }
        for (int c = 0; c < C; c++) rdx[(size_t)r * C + c] = 0.5 + rs * (g[c] * w[c] - a - xh[c] * bb);
    }
    for (int c = 0; c < C; c++) rdw[c] += 0.5, rdb[c] += 0.5;
    for (int naive = 0; naive < 2; naive++) {
        float *y = malloc((size_t)N * C * sizeof *y), *y2 = malloc((size_t)N * C * sizeof *y2);
        float *mean = malloc(N * sizeof *mean), *rstd = malloc(N * sizeof *rstd);
        float *dx = malloc((size_t)N * C * sizeof *dx), *dw = malloc(C * sizeof *dw), *db = malloc(C * sizeof *db);
        for (size_t k = 0; k < (size_t)N * C; k++) dx[k] = 0.5f;
        for (int c = 0; c < C; c++) dw[c] = db[c] = 0.5f;
        (naive ? nn_layernorm_forward_naive : nn_layernorm_forward)(y, mean, rstd, x, w, b, N, C, eps);
        (naive ? nn_layernorm_forward_naive : nn_layernorm_forward)(y2, NULL, NULL, x, w, b, N, C, eps);
        (naive ? nn_layernorm_backward_naive : nn_layernorm_backward)(dx, dw, db, dy, x, w, mean, rstd, N, C);
        double es = 0;
        for (int r = 0; r < N; r++) es = fmax(es, fabs(rstd[r] - rrs[r]) / rrs[r]);
        double e[4] = {reldiff(y, ry, N, C, C), reldiff(dx, rdx, N, C, C), reldiff(dw, rdw, 1, C, C),
                       reldiff(db, rdb, 1, C, C)};
        int constant_b = memcmp(y, b, C * sizeof *y) == 0, nullsame = memcmp(y, y2, (size_t)N * C * sizeof *y) == 0;
        printf("# layernorm %s (N %d, C %d, eps %g) vs double: y %.2g rstd %.2g dx %.2g dw %.2g db %.2g\n",
               naive ? "naive" : "fast ", N, C, eps, e[0], es, e[1], e[2], e[3]);
        CHECK(e[0] < 1e-5 && es < 1e-6 && e[1] < 1e-5 && e[2] < 1e-5 && e[3] < 1e-5, "layer norm differs");
        CHECK(constant_b || naive, "a constant row does not give exactly b");
        CHECK(nullsame, "layer norm without mean/rstd gives other outputs");
        free(y), free(y2), free(mean), free(rstd), free(dx), free(dw), free(db);
    }
    free(x), free(w), free(b), free(dy), free(ry), free(rdx), free(rdw), free(rdb), free(rrs), free(xh);
}

static void test_layernorm(void)
{
    layernorm_case(33, 50, 1e-8f);
    layernorm_case(9, 7, 1e-5f);
    layernorm_case(70, 768, 1e-5f);
    ln_ctx c = {3, 6, randv(18, 1), randv(6, 1), randv(6, 1), malloc(18 * sizeof(float)), randv(18, 1)};
    for (int k = 0; k < 6; k++) c.w[k] += 1.0f;
    float mean[3], rstd[3], gx[18] = {0}, gw[6] = {0}, gb[6] = {0};
    nn_layernorm_forward(c.y, mean, rstd, c.x, c.w, c.b, 3, 6, 1e-5f);
    nn_layernorm_backward(gx, gw, gb, c.R, c.x, c.w, mean, rstd, 3, 6);
    double wx = fd_worst(ln_loss, &c, c.x, gx, 18, 1e-2f, 2e-3, 2e-2);
    double ww = fd_worst(ln_loss, &c, c.w, gw, 6, 1e-2f, 2e-3, 2e-2);
    double wb = fd_worst(ln_loss, &c, c.b, gb, 6, 1e-2f, 2e-3, 2e-2);
    printf("# layernorm finite differences (worst / tolerance): x %.2g w %.2g b %.2g\n", wx, ww, wb);
    CHECK(wx <= 1 && ww <= 1 && wb <= 1, "layer norm gradients disagree with finite differences");
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.R);
}

/* ---- GELU --------------------------------------------------------------------------------------- */

static void test_gelu(void)
{
    enum { n = 2001 };
    static float x[n], y1[n], y2[n], d1[n], d2[n], dy[n], d3[n];
    const double k = sqrt(2.0 / M_PI);
    for (int i = 0; i < n; i++) {
        x[i] = -10.0f + 0.01f * i;
        dy[i] = (float)dm_rng_normal(&g_rng);
    }
    nn_gelu_forward(y1, x, n);
    nn_gelu_forward_naive(y2, x, n);
    nn_gelu_backward(d1, x, dy, n);
    nn_gelu_backward_naive(d2, x, dy, n);
    memcpy(d3, dy, sizeof d3);
    nn_gelu_backward(d3, x, d3, n); /* in place */
    double ef = 0, en = 0, eb = 0, ebn = 0, efd = 0;
    for (int i = 0; i < n; i++) {
        double xi = x[i], t = tanh(k * (xi + 0.044715 * xi * xi * xi));
        double g = 0.5 * xi * (1 + t), dg = 0.5 * (1 + t) + 0.5 * xi * (1 - t * t) * k * (1 + 3 * 0.044715 * xi * xi);
        ef = fmax(ef, fabs(y1[i] - y2[i]));
        en = fmax(en, fmax(fabs(y1[i] - g), fabs(y2[i] - g)));
        eb = fmax(eb, fabs(d1[i] - dg * dy[i]) / (1 + fabs(dy[i])));
        ebn = fmax(ebn, fabs(d2[i] - dg * dy[i]) / (1 + fabs(dy[i])));
        float xp = x[i] + 1e-2f, xm = x[i] - 1e-2f, yp, ym;
        nn_gelu_forward(&yp, &xp, 1);
        nn_gelu_forward(&ym, &xm, 1);
        efd = fmax(efd, fabs(((double)yp - ym) / ((double)xp - xm) - dg));
    }
    printf("# gelu: fast vs tanhf %.2g, vs double %.2g; backward vs double %.2g (naive %.2g); finite "
           "differences %.2g\n", ef, en, eb, ebn, efd);
    CHECK(ef < 1e-6, "gelu fast vs tanhf %g", ef);
    CHECK(en < 2e-6 && ebn < 2e-6, "gelu vs double");
    CHECK(eb < 1e-5, "gelu backward vs double %g", eb);
    CHECK(efd < 2e-4, "gelu backward vs finite differences %g", efd);
    CHECK(memcmp(d1, d3, sizeof d3) == 0, "gelu backward in place differs");
}

/* ---- softmax and cross-entropy ------------------------------------------------------------------ */

static double xent_loss(void *p)
{
    float *z = p, t[11];
    memcpy(t, z, sizeof t);
    return nn_softmax_xent(t, 11, 4, 1.0f);
}

static void test_softmax(void)
{
    double ee = 0;
    for (int i = 0; i <= 2000; i++) {
        float x = -80.0f + 0.08f * i;
        ee = fmax(ee, fabs(nn_expf(x) - exp(x)) / exp(x));
    }
    float lo = nn_expf(-1000.0f), big[3] = {-1e4f, 88.0f, 100.0f}, ebig[3];
    nn_exp(ebig, big, 3);
    printf("# nn_expf relative error on [-80, 80]: %.2g; e^-1000 -> %.3g\n", ee, lo);
    CHECK(ee < 1e-6, "nn_expf relative error %g", ee);
    CHECK(lo > 0 && lo < 1e-37f && isfinite(ebig[2]) && ebig[2] == ebig[1], "nn_expf clamps");

    const int V = 301, t = 17;
    float *z = randv(V, 3), *p = malloc(V * sizeof *p), *g = malloc(V * sizeof *g), *g2 = malloc(V * sizeof *g2);
    z[5] = 30.0f; /* a dominant logit */
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, z[i]);
    for (int i = 0; i < V; i++) s += exp(z[i] - mx);
    const double lse = mx + log(s), scale = 0.25;
    memcpy(p, z, V * sizeof *p);
    nn_softmax(p, V);
    memcpy(g, z, V * sizeof *g);
    float l = nn_softmax_xent(g, V, t, (float)scale), ls = nn_logsumexp(z, V);
    memcpy(g2, z, V * sizeof *g2);
    nn_softmax_xent_backward(g2, V, ls, t, (float)scale);
    double ep = 0, eg = 0, es = 0, psum = 0;
    for (int i = 0; i < V; i++) {
        double pr = exp(z[i] - lse);
        psum += p[i];
        ep = fmax(ep, fabs(p[i] - pr));
        eg = fmax(eg, fabs(g[i] - scale * (pr - (i == t))));
        es = fmax(es, fabs(g[i] - g2[i]));
    }
    double el = fabs(l - (lse - z[t])) / (lse - z[t]), els = fabs(ls - lse) / fabs(lse);
    printf("# softmax %.2g (sum - 1 %.2g), logsumexp %.2g, cross-entropy %.2g, gradient %.2g, fused vs split %.2g\n",
           ep, psum - 1, els, el, eg, es);
    CHECK(ep < 1e-6 && fabs(psum - 1) < 1e-6 && els < 1e-6 && el < 1e-6, "softmax / logsumexp / cross-entropy");
    CHECK(eg < 1e-6 && es < 1e-6, "cross-entropy gradient");
    float zs[11], gs[11];
    for (int i = 0; i < 11; i++) zs[i] = (float)dm_rng_normal(&g_rng);
    memcpy(gs, zs, sizeof gs);
    nn_softmax_xent(gs, 11, 4, 1.0f);
    double wz = fd_worst(xent_loss, zs, zs, gs, 11, 1e-2f, 1e-3, 1e-2);
    printf("# cross-entropy finite differences (worst / tolerance): %.2g\n", wz);
    CHECK(wz <= 1, "cross-entropy gradient disagrees with finite differences");
    free(z), free(p), free(g), free(g2);
}

/* ---- Adam and AdamW ----------------------------------------------------------------------------- */

/* One step of the formula in double on the float state (torch's order: the bias corrections
 * divide); writes w, m, v rounded to float. */
static void adam_formula(const nn_adam *o, long t, float *w, const float *g, float *m, float *v, int nt,
                         const size_t *sizes, const unsigned char *decay)
{
    const double bc1 = 1 - pow(o->beta1, (double)t), bc2 = 1 - pow(o->beta2, (double)t);
    size_t i = 0;
    for (int k = 0; k < nt; k++)
        for (size_t e = 0; e < sizes[k]; e++, i++) {
            double wd = decay && !decay[k] ? 0.0 : o->weight_decay, wi = w[i], gi = g[i];
            if (o->decay_mode == NN_ADAM_L2) gi += wd * wi;
            else wi -= (double)o->lr * wd * wi;
            double mi = o->beta1 * (double)m[i] + (1 - (double)o->beta1) * gi;
            double vi = o->beta2 * (double)v[i] + (1 - (double)o->beta2) * gi * gi;
            m[i] = (float)mi;
            v[i] = (float)vi;
            w[i] = (float)(wi - o->lr / bc1 * mi / (sqrt(vi) / sqrt(bc2) + o->eps));
        }
}

static void test_adam_formula(void)
{
    const size_t sizes[4] = {6, 5, 7, 3}, n = 21;
    const unsigned char decay[4] = {1, 0, 1, 0};
    for (int mode = 0; mode < 2; mode++) {
        nn_adam o = {1e-2f, 0.9f, mode ? 0.98f : 0.95f, 1e-8f, 0.1f, mode ? NN_ADAM_L2 : NN_ADAM_DECOUPLED};
        float *w = randv(n, 1), m[21] = {0}, v[21] = {0}, w2[21], m2[21], v2[21];
        double worst = 0;
        for (long t = 1; t <= 6; t++) {
            float *g = randv(n, t == 3 ? 1e-3 : 1.0); /* one step of small gradients */
            memcpy(w2, w, sizeof w2), memcpy(m2, m, sizeof m2), memcpy(v2, v, sizeof v2);
            adam_formula(&o, t, w2, g, m2, v2, 4, sizes, decay);
            nn_adam_step_tensors(&o, t, w, g, m, v, 4, sizes, decay);
            for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(w[i] - w2[i]) / (1e-7 + 1e-6 * fabs(w2[i])));
            free(g);
        }
        printf("# %s vs the formula in double over 6 steps (tensors 0, 2 decayed): worst %.2g of tolerance\n",
               mode ? "Adam (L2)" : "AdamW", worst);
        CHECK(worst <= 1, "nn_adam_step_tensors differs from the formula");
        free(w);
    }
}

static void test_adam(void)
{
    test_adam_formula();
    /* nn_adam_step == one tensor that decays; the naive twin == the formula; first step known */
    const size_t n = 50;
    nn_adam o = {3e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, NN_ADAM_DECOUPLED};
    float *w = randv(n, 1), *g = randv(n, 1), *w1 = malloc(n * sizeof *w1), *w2 = malloc(n * sizeof *w2);
    float *m1 = calloc(n, sizeof *m1), *v1 = calloc(n, sizeof *v1), *m2 = calloc(n, sizeof *m2),
          *v2 = calloc(n, sizeof *v2);
    memcpy(w1, w, n * sizeof *w), memcpy(w2, w, n * sizeof *w);
    nn_adam_step(&o, 1, w1, g, m1, v1, n);
    nn_adam_step_tensors(&o, 1, w2, g, m2, v2, 1, &n, NULL);
    CHECK(memcmp(w1, w2, n * sizeof *w1) == 0, "nn_adam_step differs from one decayed tensor");
    double e1 = 0, en = 0;
    memcpy(w2, w, n * sizeof *w), memset(m2, 0, n * sizeof *m2), memset(v2, 0, n * sizeof *v2);
    nn_adam_step_naive(&o, 1, w2, g, m2, v2, n);
    for (size_t i = 0; i < n; i++) {
        /* step 1: m^ = g, v^ = g^2, so w1 = w (1 - lr wd) - lr g / (|g| + eps) */
        double want = w[i] * (1 - (double)o.lr * o.weight_decay) - o.lr * g[i] / (fabs(g[i]) + o.eps);
        e1 = fmax(e1, fabs(w1[i] - want));
        en = fmax(en, fabs(w2[i] - want));
    }
    printf("# first AdamW step vs w (1 - lr wd) - lr sign(g): %.2g (naive %.2g)\n", e1, en);
    CHECK(e1 < 1e-6 && en < 1e-6, "the first step is not lr sign(g)");
    /* the naive twin against the formula, Adam with L2 on every element, 4 steps */
    o.decay_mode = NN_ADAM_L2;
    double eN = 0;
    for (long t = 1; t <= 4; t++) {
        memcpy(w1, w2, n * sizeof *w1), memcpy(m1, m2, n * sizeof *m1), memcpy(v1, v2, n * sizeof *v1);
        adam_formula(&o, t, w1, g, m1, v1, 1, &n, NULL);
        nn_adam_step_naive(&o, t, w2, g, m2, v2, n);
        for (size_t i = 0; i < n; i++) eN = fmax(eN, fabs(w1[i] - w2[i]) / (1e-7 + 1e-6 * fabs(w1[i])));
    }
    CHECK(eN <= 1, "nn_adam_step_naive differs from the formula (%g of tolerance)", eN);
    free(w), free(g), free(w1), free(w2), free(m1), free(v1), free(m2), free(v2);
}

/* n floats of the PyTorch reference file <dir>/<name>_<what>.f32 into buf; 0 = complete */
static int load(const char *dir, const char *name, const char *what, float *buf, size_t n)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s_%s.f32", dir, name, what);
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buf, sizeof *buf, n + 1, f) : 0;
    if (f) fclose(f);
    return got == n ? 0 : (printf("# %s: %zu floats, expected %zu\n", path, got, n), 1);
}

static double num(const dm_json *o, const char *key)
{
    double v = NAN;
    return dm_json_double(dm_json_get(o, key), &v) ? NAN : v;
}

/* rd: DM_REF_DIR (where tests/reference/gen_nn.py wrote nn/) */
static void test_adam_torch(const char *rd)
{
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/nn", rd);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "rb");
    char *text = calloc(1 << 16, 1);
    size_t len = f ? fread(text, 1, (1 << 16) - 1, f) : 0;
    if (f) fclose(f);
    dm_jdoc doc = {0};
    dm_json *root = NULL;
    dm_jerr jerr;
    if (!len || dm_json_parse(&doc, text, len, 0, &root, &jerr)) {
        CHECK(0, "%s: missing or not JSON (tests/reference/gen_nn.py)", path);
        free(text);
        return;
    }
    enum { NT = 4, N = 21, STEPS = 5 };
    const size_t sizes[NT] = {6, 5, 7, 3};
    const unsigned char decay[NT] = {1, 0, 1, 0};
    for (size_t k = 0; k < NT; k++) {
        int64_t sz = -1, dc = -1;
        dm_json_int(dm_json_at(dm_json_get(root, "sizes"), k), &sz);
        dm_json_int(dm_json_at(dm_json_get(root, "decay"), k), &dc);
        CHECK(sz == (int64_t)sizes[k] && dc == decay[k], "manifest: tensor %zu is not (%zu, %d)", k, sizes[k], decay[k]);
    }
    const dm_json *cases = dm_json_get(root, "cases");
    for (size_t c = 0; cases && c < cases->len; c++) {
        const dm_json *cs = dm_json_at(cases, c);
        const char *name = dm_json_get(cs, "name")->str;
        int l2 = strcmp(dm_json_get(cs, "mode")->str, "l2") == 0;
        nn_adam o = {(float)num(cs, "lr"), (float)num(cs, "beta1"), (float)num(cs, "beta2"), (float)num(cs, "eps"),
                     (float)num(cs, "weight_decay"), l2 ? NN_ADAM_L2 : NN_ADAM_DECOUPLED};
        static float w[N], g[STEPS * N], wt[STEPS * N], mt[N], vt[N];
        float m[N] = {0}, v[N] = {0};
        if (load(dir, name, "w0", w, N) || load(dir, name, "g", g, STEPS * N) || load(dir, name, "w", wt, STEPS * N) ||
            load(dir, name, "m", mt, N) || load(dir, name, "v", vt, N)) {
            CHECK(0, "reference %s incomplete", name);
            continue;
        }
        double ew = 0, emv = 0;
        for (int t = 1; t <= STEPS; t++) {
            nn_adam_step_tensors(&o, t, w, g + (size_t)(t - 1) * N, m, v, NT, sizes, decay);
            for (int i = 0; i < N; i++) {
                const float want = wt[(size_t)(t - 1) * N + i];
                ew = fmax(ew, fabs(w[i] - want) / (2e-7 + 1e-6 * fabs(want)));
            }
        }
        double em = 0, mmax = 0;
        for (int i = 0; i < N; i++) {
            em = fmax(em, fabs(m[i] - mt[i]));
            mmax = fmax(mmax, fabs(mt[i]));
            emv = fmax(emv, fabs(v[i] - vt[i]) / vt[i]);
        }
        em /= mmax;
        printf("# torch %-10s (%s, lr %g, betas %g %g, wd %g on tensors 0 and 2): weights worst %.2g of "
               "tolerance over %d steps; m %.2g of its largest, v %.2g relative\n",
               name, l2 || o.weight_decay == 0 ? "Adam" : "AdamW", o.lr, o.beta1, o.beta2, o.weight_decay, ew, STEPS,
               em, emv);
        CHECK(ew <= 1 && em < 1e-6 && emv < 1e-4, "%s differs from torch", name);
    }
    dm_jdoc_free(&doc);
    free(text);
}

/* ---- MLP projector ------------------------------------------------------------------------------ */

typedef struct {
    nn_mlp *p;
    nn_mlp_acts *a;
    float *x, *y, *R;
    int N;
} mlp_ctx;

static double mlp_loss(void *q)
{
    mlp_ctx *c = q;
    nn_mlp_forward(c->p, c->a, c->x, c->N, c->y);
    return dot_d(c->y, c->R, (size_t)c->N * c->p->cfg.dout);
}

static void test_mlp(void)
{
    const nn_mlp_config cfg = {5, 8, 4, 1e-5f};
    const int N = 6;
    const size_t n = nn_mlp_size(&cfg);
    float *w = calloc(n, sizeof *w), *g = calloc(n, sizeof *g), *g2 = calloc(n, sizeof *g2);
    nn_mlp p, p2;
    nn_mlp_bind(&p, &cfg, w, g);
    nn_mlp_bind(&p2, &cfg, w, g2);
    nn_mlp_init(&p, 11, 0.7f);
    for (int k = 0; k < cfg.hidden; k++) p.lnw[k] += 0.3f * (float)dm_rng_normal(&g_rng), p.lnb[k] = 0.2f * (float)dm_rng_normal(&g_rng);
    nn_mlp_acts a;
    CHECK(nn_mlp_acts_init(&a, &cfg, N) == DM_OK, "acts");
    float *x = randv((size_t)N * cfg.din, 1), *R = randv((size_t)N * cfg.dout, 1);
    float *y = malloc((size_t)N * cfg.dout * sizeof *y), *y2 = malloc((size_t)N * cfg.dout * sizeof *y2);
    float *dx = calloc((size_t)N * cfg.din, sizeof *dx), *dx2 = calloc((size_t)N * cfg.din, sizeof *dx2);
    CHECK(nn_mlp_forward(&p, &a, x, N, y) == DM_OK, "forward");
    nn_mlp_backward(&p, &a, R, dx);
    nn_mlp_forward_naive(&p2, &a, x, N, y2);
    nn_mlp_backward_naive(&p2, &a, R, dx2);
    double ey = 0, eg = 0, ex = 0;
    for (int k = 0; k < N * cfg.dout; k++) ey = fmax(ey, fabs(y[k] - y2[k]));
    for (size_t k = 0; k < n; k++) eg = fmax(eg, fabs(g[k] - g2[k]));
    for (int k = 0; k < N * cfg.din; k++) ex = fmax(ex, fabs(dx[k] - dx2[k]));
    printf("# mlp fast vs naive: y %.2g, parameter gradients %.2g, input gradients %.2g\n", ey, eg, ex);
    CHECK(ey < 1e-5 && eg < 1e-4 && ex < 1e-5, "mlp fast vs naive");
    mlp_ctx c = {&p, &a, x, y2, R, N};
    double ww = fd_worst(mlp_loss, &c, w, g, n, 1e-2f, 2e-3, 2e-2);
    double wx = fd_worst(mlp_loss, &c, x, dx, (size_t)N * cfg.din, 1e-2f, 2e-3, 2e-2);
    printf("# mlp finite differences (worst / tolerance): %zu parameters %.2g, inputs %.2g\n", n, ww, wx);
    CHECK(ww <= 1 && wx <= 1, "mlp gradients disagree with finite differences");
    /* accumulation: a second backward of the same forward doubles every gradient */
    memcpy(g2, g, n * sizeof *g);
    nn_mlp_forward(&p, &a, x, N, y);
    nn_mlp_backward(&p, &a, R, NULL);
    double ea = 0;
    for (size_t k = 0; k < n; k++) ea = fmax(ea, fabs(g[k] - 2 * g2[k]) / (1e-6 + fabs(g2[k])));
    CHECK(ea < 1e-5, "a second backward does not add the same gradients (%g)", ea);
    CHECK(nn_mlp_forward(&p, &a, x, N + 1, y) != DM_OK, "a batch over maxN is refused");
    dm_error_clear();
    nn_mlp_acts_free(&a);
    free(w), free(g), free(g2), free(x), free(R), free(y), free(y2), free(dx), free(dx2);
}

int main(void)
{
    dm_rng_seed(&g_rng, 20240517);
    test_linear();
    test_layernorm();
    test_gelu();
    test_softmax();
    test_adam();
    const char *rd = getenv("DM_REF_DIR");
    if (rd) test_adam_torch(rd);
    else printf("# DM_REF_DIR not set: the PyTorch Adam references are skipped (run through tests/run.sh)\n");
    test_mlp();
    return tap_done("test_nn");
}
