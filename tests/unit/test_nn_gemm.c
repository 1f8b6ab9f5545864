/* test_nn_gemm.c: the matrix products of src/nn/gemm.h.
 *
 *  1. nn_sgemm_fixed for the four transpose combinations, odd sizes (1 .. 300, K = 0 too), padded
 *     leading dimensions and several (alpha, beta):
 *     - bitwise equal to its naive twin and to an emulation of the documented order done in
 *       double with an explicit rounding to float after every product and every sum (so a fused
 *       multiply-add or another summation order anywhere would show);
 *     - within the error bound of a double-precision reference:
 *         |c - c_ref| <= gamma_{K+2} (|alpha| sum_k |a_ik||b_kj| + |beta c0_ij|) + (same in double)
 *       gamma_n = n u / (1 - n u), u = 2^-24: K roundings in the recursive sum of the products
 *       (Higham, Accuracy and Stability, eq. 3.5), one for alpha t, two for beta c0 + alpha t;
 *       the double reference's own error is the same bound with u = 2^-53;
 *     - nn_sgemm equals cblas_sgemm bitwise with reproducible mode off, nn_sgemm_fixed with it on,
 *       and OpenBLAS meets the same bound.
 *  2. a row's result does not depend on the call: every row of a 64-row product equals, bitwise,
 *     the same row computed alone (M = 1), and at positions 0, 3 and 6 of a 7-row call among other
 *     rows, with 1 and 2 OpenMP threads; the same for a column computed alone (N = 1).
 */
#include "../../src/core/rng.h"
#include "../../src/nn/gemm.h"
#include "tap.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define U32 (1.0 / 16777216.0)         /* 2^-24 */
#define U64 (1.0 / 9007199254740992.0) /* 2^-53 */

static double gamma_n(int n, double u) { return n * u / (1.0 - n * u); }

static void randn(dm_rng *g, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)dm_rng_normal(g);
}

/* op(X)[r][c] of a row-major X with leading dimension ld */
static float at(const float *X, int trans, int ld, int r, int c)
{
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* The documented order, one rounding per operation: products of two floats are exact in double
 * (48 bits), so (float) of the double product is the float product; the sum of two floats
 * rounded to double and then to float is the float sum (53 >= 2 * 24 + 2: double rounding is
 * innocuous for +). */
static void emulate(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float t = 0.0f, *c = C + (size_t)i * ldc + j;
            if (alpha == 0.0f) {
                *c = beta == 0.0f ? 0.0f : (float)((double)beta * *c);
                continue;
            }
            for (int k = 0; k < K; k++) {
                float p = (float)((double)at(A, ta, lda, i, k) * (double)at(B, tb, ldb, k, j));
                t = (float)((double)t + (double)p);
            }
            if (alpha != 1.0f) t = (float)((double)alpha * (double)t);
            *c = beta == 0.0f ? t : (float)((double)(float)((double)beta * *c) + (double)t);
        }
}

typedef struct {
    int cases, bitwise;
    double worst, worst_blas; /* largest error / bound of nn_sgemm_fixed, of OpenBLAS */
} acc_stats;

/* One product: fixed against naive and the emulated order (bitwise), against the double reference
 * (the bound), OpenBLAS against the bound, and the switch. Leading dimensions are padded. */
static void check_case(dm_rng *g, int ta, int tb, int M, int N, int K, float alpha, float beta,
                       acc_stats *st)
{
    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
    const size_t na = (size_t)(ta ? K : M) * lda + 1, nb = (size_t)(tb ? N : K) * ldb + 1;
    const size_t nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float)), *C[6];
    for (int q = 0; q < 6; q++) C[q] = malloc(nc * sizeof(float));
    randn(g, A, na);
    randn(g, B, nb);
    randn(g, C[0], nc);
    if (beta == 0.0f) /* beta = 0: C is not read, NaN included */
        for (size_t k = 0; k < nc; k++) C[0][k] = NAN;
    for (int q = 1; q < 6; q++) memcpy(C[q], C[0], nc * sizeof(float));
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    nn_sgemm_fixed(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C[1], ldc);
    nn_sgemm_naive(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C[2], ldc);
    emulate(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C[3], ldc);
    cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C[4], ldc);
    int same_naive = 1, same_emu = 1, pad_kept = 1;
    double ratio = 0.0, rblas = 0.0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            const size_t o = (size_t)i * ldc + j;
            same_naive &= !memcmp(&C[1][o], &C[2][o], sizeof(float));
            same_emu &= !memcmp(&C[1][o], &C[3][o], sizeof(float));
            double ref = 0.0, S = 0.0;
            for (int k = 0; k < K; k++) {
                double p = (double)at(A, ta, lda, i, k) * at(B, tb, ldb, k, j);
                ref += p;
                S += fabs(p);
            }
            const double c0 = beta == 0.0f ? 0.0 : (double)C[0][o];
            ref = alpha * ref + beta * c0;
            const double mag = fabs((double)alpha) * S + fabs((double)beta * c0);
            const double bound = (gamma_n(K + 2, U32) + gamma_n(K + 2, U64)) * mag;
            const double e = fabs((double)C[1][o] - ref), eb = fabs((double)C[4][o] - ref);
            if (e > 0 || bound > 0) ratio = fmax(ratio, bound > 0 ? e / bound : INFINITY);
            if (eb > 0 || bound > 0) rblas = fmax(rblas, bound > 0 ? eb / bound : INFINITY);
        }
        for (int j = N; j < ldc; j++) /* columns past N are untouched */
            pad_kept &= !memcmp(&C[1][(size_t)i * ldc + j], &C[0][(size_t)i * ldc + j], 4);
    }
    char what[128];
    snprintf(what, sizeof what, "M %d N %d K %d transA %d transB %d alpha %g beta %g", M, N, K, ta,
             tb, alpha, beta);
    CHECK(same_naive, "%s: fixed differs from naive", what);
    CHECK(same_emu, "%s: fixed differs from the emulated order", what);
    CHECK(pad_kept, "%s: columns past N written", what);
    CHECK(ratio <= 1.0, "%s: error %.3g of the bound", what, ratio);
    CHECK(rblas <= 1.0, "%s: OpenBLAS error %.3g of the bound", what, rblas);
    /* the switch: off = cblas_sgemm, on = nn_sgemm_fixed */
    memcpy(C[2], C[0], nc * sizeof(float));
    nn_set_reproducible(0);
    nn_sgemm(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C[2], ldc);
    CHECK(!memcmp(C[2], C[4], nc * sizeof(float)), "%s: nn_sgemm (off) is not cblas_sgemm", what);
    nn_set_reproducible(1);
    CHECK(nn_reproducible() == 1, "switch");
    nn_sgemm(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C[5], ldc);
    nn_set_reproducible(0);
    CHECK(!memcmp(C[5], C[1], nc * sizeof(float)), "%s: nn_sgemm (on) is not nn_sgemm_fixed", what);
    st->cases++;
    st->bitwise += same_naive && same_emu;
    st->worst = fmax(st->worst, ratio);
    st->worst_blas = fmax(st->worst_blas, rblas);
    free(A);
    free(B);
    for (int q = 0; q < 6; q++) free(C[q]);
}

static void test_accuracy(void)
{
    static const int sizes[][3] = {{1, 1, 1},  {3, 5, 7},     {4, 16, 8},    {13, 17, 33},
                                   {5, 35, 1}, {37, 41, 129}, {64, 23, 300}, {2, 9, 0},
                                   {9, 8, 65}, {1, 50, 31}};
    static const float ab[][2] = {
        {1.0f, 0.0f}, {1.0f, 1.0f}, {0.5f, -1.25f}, {-2.0f, 0.0f}, {0.0f, 3.0f}};
    dm_rng g;
    dm_rng_seed(&g, 7);
    acc_stats st = {0, 0, 0.0, 0.0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t q = 0; q < sizeof ab / sizeof ab[0]; q++)
                    check_case(&g, ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], ab[q][0],
                               ab[q][1], &st);
    printf("# %d cases (4 transpose combinations x 10 sizes x 5 alpha/beta): %d bitwise equal to "
           "naive and to the emulated order; largest error %.3g of the bound gamma_{K+2} "
           "(|alpha| sum |a||b| + |beta c0|) (OpenBLAS %.3g)\n",
           st.cases, st.bitwise, st.worst, st.worst_blas);
}

/* ---- 2. row and column independence ---------------------------------------------------------- */

/* op(A) row i of an (M, K) problem stored for transA = ta into X (ld) */
static void put_row(float *X, int ta, int ld, int i, const float *row, int K)
{
    for (int k = 0; k < K; k++) {
        if (ta)
            X[(size_t)k * ld + i] = row[k];
        else
            X[(size_t)i * ld + k] = row[k];
    }
}

static void test_rows(void)
{
    enum { M = 64, N = 37, K = 129, M7 = 7 };
    dm_rng g;
    dm_rng_seed(&g, 11);
    float *rows = malloc((size_t)M * K * sizeof(float)),
          *other = malloc((size_t)M7 * K * sizeof(float));
    float *Bs = malloc((size_t)N * K * sizeof(float));
    randn(&g, rows, (size_t)M * K);
    randn(&g, other, (size_t)M7 * K);
    randn(&g, Bs, (size_t)N * K);
    int bad = 0, checked = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans,
                                 TB = tb ? CblasTrans : CblasNoTrans;
            const int ldb = tb ? K : N;
            float *B = malloc((size_t)N * K * sizeof(float));
            for (int k = 0; k < K; k++)
                for (int j = 0; j < N; j++)
                    B[tb ? (size_t)j * K + k : (size_t)k * N + j] = Bs[(size_t)j * K + k];
            /* the 64-row product, with 1 and 2 threads */
            const int lda64 = ta ? M : K;
            float *A64 = malloc((size_t)M * K * sizeof(float)), *C64[2];
            for (int i = 0; i < M; i++) put_row(A64, ta, lda64, i, rows + (size_t)i * K, K);
            for (int th = 0; th < 2; th++) {
                omp_set_num_threads(th + 1);
                C64[th] = malloc((size_t)M * N * sizeof(float));
                nn_sgemm_fixed(TA, TB, M, N, K, 1.0f, A64, lda64, B, ldb, 0.0f, C64[th], N);
            }
            CHECK(!memcmp(C64[0], C64[1], (size_t)M * N * sizeof(float)),
                  "ta %d tb %d: 1 and 2 threads differ", ta, tb);
            for (int th = 0; th < 2; th++) {
                omp_set_num_threads(th + 1);
                for (int i = 0; i < M; i += 3) {
                    const float *want = C64[0] + (size_t)i * N;
                    /* alone */
                    float c1[N], a1[K];
                    /* (1, K) or (K, 1): the same layout */
                    memcpy(a1, rows + (size_t)i * K, (size_t)K * sizeof(float));
                    nn_sgemm_fixed(TA, TB, 1, N, K, 1.0f, a1, ta ? 1 : K, B, ldb, 0.0f, c1, N);
                    bad += memcmp(c1, want, (size_t)N * sizeof(float)) != 0;
                    checked++;
                    /* at positions 0, 3, 6 of a 7-row call */
                    for (int p = 0; p < M7; p += 3) {
                        const int lda7 = ta ? M7 : K;
                        float A7[M7 * K], C7[M7 * N];
                        for (int r = 0; r < M7; r++)
                            put_row(A7, ta, lda7, r,
                                    r == p ? rows + (size_t)i * K : other + (size_t)r * K, K);
                        nn_sgemm_fixed(TA, TB, M7, N, K, 1.0f, A7, lda7, B, ldb, 0.0f, C7, N);
                        bad += memcmp(C7 + (size_t)p * N, want, (size_t)N * sizeof(float)) != 0;
                        checked++;
                    }
                }
                /* a column alone (N = 1): column j of op(B) */
                for (int j = 0; j < N; j += 5) {
                    float bj[K], cj[M];
                    /* (K, 1) or (1, K): the same layout */
                    for (int k = 0; k < K; k++) bj[k] = Bs[(size_t)j * K + k];
                    nn_sgemm_fixed(TA, TB, M, 1, K, 1.0f, A64, lda64, bj, tb ? K : 1, 0.0f, cj, 1);
                    int diff = 0;
                    for (int i = 0; i < M; i++)
                        diff |= memcmp(&cj[i], C64[0] + (size_t)i * N + j, sizeof(float)) != 0;
                    bad += diff;
                    checked++;
                }
            }
            omp_set_num_threads(1);
            free(A64);
            free(C64[0]);
            free(C64[1]);
            free(B);
        }
    CHECK(bad == 0, "%d of %d rows or columns depend on the call", bad, checked);
    printf("# row independence: %d rows (alone, at 3 positions of a 7-row call) and columns "
           "(alone) of a 64 x 37 x 129 product, 4 transpose combinations, 1 and 2 threads: %d "
           "differ bitwise\n",
           checked, bad);
    free(rows);
    free(other);
    free(Bs);
}

int main(void)
{
    test_accuracy();
    test_rows();
    nn_gemm_scratch_free();
    return tap_done("test_nn_gemm");
}
