/* gemm.c: nn_sgemm (OpenBLAS, or the fixed-order kernel in reproducible mode), the fixed-order
 * kernel itself and its naive twin; see gemm.h.
 *
 * The fixed kernel first copies op(B) into panels of NR = 16 columns, (K, 16) each, zero-padded
 * past column N. It then computes tiles of a few rows x one panel: each row keeps 16 float
 * accumulators in vectors; for k = 0, 1, ... it loads row k of the panel, multiplies it by the
 * broadcast a_ik and adds (two roundings, lane-wise: each lane does exactly the scalar operations
 * of gemm.h's order; padding lanes are computed and dropped). Row remainders use a tile with fewer
 * rows. Which tile computes an element, and on which thread, changes nothing in its result.
 */
#include "gemm.h"

#include "../core/err.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Panels of NR = 16 columns; tiles of up to 6 rows with AVX (vectors of 8: 12 accumulators + 2 of
 * B + the broadcast in 16 registers), 2 rows without (vectors of 4: 8 + 4 + 1). The tile is chosen
 * at run time (__builtin_cpu_supports), so a portable build still uses AVX where the CPU has it;
 * the results are the same bits either way (lane-wise operations). */
#define NR 16
#define MR_MAX 6
typedef float nn_v4 __attribute__((vector_size(16)));
typedef float nn_v8 __attribute__((vector_size(32)));
/* fewer multiply-adds than this run on the calling thread (a parallel region costs more) */
#define NN_PAR_MIN ((size_t)1 << 18)

static int g_repro;
/* the panels of op(B); grow-only, one per calling thread */
static _Thread_local float *g_pack;
static _Thread_local size_t g_pack_cap;

void nn_set_reproducible(int on) { g_repro = on != 0; }
int nn_reproducible(void) { return g_repro; }

void nn_gemm_scratch_free(void)
{
    free(g_pack);
    g_pack = NULL;
    g_pack_cap = 0;
}

void nn_sgemm(enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc)
{
    if (g_repro)
        nn_sgemm_fixed(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        cblas_sgemm(CblasRowMajor, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void check_args(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc)
{
    DM_ASSERT(M >= 0 && N >= 0 && K >= 0);
    DM_ASSERT(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N);
}

/* c = beta == 0 ? alpha t : beta c + alpha t (alpha = 1 multiplies exactly, so is skipped) */
static inline float put(float c, float t, float alpha, float beta)
{
    if (alpha != 1.0f) t = alpha * t;
    return beta == 0.0f ? t : beta * c + t;
}

/* C = beta C when alpha = 0 (A and B are not read) */
static void scale_only(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = C + (size_t)i * ldc + j;
            *c = beta == 0.0f ? 0.0f : beta * *c;
        }
}

/* What both kernels open with: the arguments checked; 1 when that leaves nothing to do (C empty, or
 * alpha = 0: C = beta C). */
static int trivial(int ta, int tb, int M, int N, int K, float alpha, int lda, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return 1;
    check_args(ta, tb, M, N, K, lda, ldb, ldc);
    if (alpha != 0.0f) return 0;
    scale_only(M, N, beta, C, ldc);
    return 1;
}

/* ---- the naive twin ------------------------------------------------------------------------- */

void nn_sgemm_naive(enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc)
{
    const int ta = transA != CblasNoTrans, tb = transB != CblasNoTrans;
    if (trivial(ta, tb, M, N, K, alpha, lda, ldb, beta, C, ldc)) return;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float t = 0.0f;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                t = t + a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            *c = put(*c, t, alpha, beta);
        }
}

/* ---- the fixed-order kernel ------------------------------------------------------------------ */

typedef struct {
    int M, N, K;
    float alpha, beta;
    const float *A;
    size_t ars, acs;   /* a_ik = A[i ars + k acs] */
    const float *B;
    size_t bks, bjs;   /* b_kj = B[k bks + j bjs] (the unpacked fallback) */
    const float *pk;   /* op(B) in panels of NR columns: panel p (K, NR) at pk + p K NR */
    float *C;
    size_t ldc;
} gemm_args;

/* out (mr, NR) = the sums of rows i0 .. i0 + mr - 1 over panel jp; one template per vector type,
 * instantiated with a constant mr so the accumulators stay in registers */
#define NN_TILE_BODY(VT, VL)                                                                       \
    VT acc[MR_MAX][NR / VL];                                                                       \
    _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++)                                           \
        _Pragma("GCC unroll 4") for (int v = 0; v < NR / VL; v++) acc[r][v] = (VT){0};             \
    const float *a0 = g->A + (size_t)i0 * g->ars, *bp = g->pk + (size_t)jp * g->K * NR;            \
    for (int k = 0; k < g->K; k++) {                                                               \
        VT b[NR / VL];                                                                             \
        _Pragma("GCC unroll 4") for (int v = 0; v < NR / VL; v++)                                  \
            memcpy(&b[v], bp + (size_t)k * NR + VL * v, sizeof(VT));                               \
        const float *ak = a0 + (size_t)k * g->acs;                                                 \
        _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++) {                                     \
            const float a = ak[(size_t)r * g->ars];                                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < NR / VL; v++)                              \
                acc[r][v] = acc[r][v] + a * b[v]; /* a product, then a sum: never an FMA */        \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++)                                           \
        _Pragma("GCC unroll 4") for (int v = 0; v < NR / VL; v++)                                  \
            memcpy(out + (size_t)r * NR + VL * v, &acc[r][v], sizeof(VT));

static inline __attribute__((always_inline)) void tile4(const gemm_args *g, int i0, int jp, int mr,
                                                        float *out)
{
    NN_TILE_BODY(nn_v4, 4)
}

static inline __attribute__((always_inline)) void tile8(const gemm_args *g, int i0, int jp, int mr,
                                                        float *out)
{
    NN_TILE_BODY(nn_v8, 8)
}

static void tile_sse(const gemm_args *g, int i0, int jp, int mr, float *out)
{
    if (mr == 2) tile4(g, i0, jp, 2, out);
    else tile4(g, i0, jp, 1, out);
}

__attribute__((target("avx"))) static void tile_avx(const gemm_args *g, int i0, int jp, int mr,
                                                    float *out)
{
    switch (mr) {
    case 6: tile8(g, i0, jp, 6, out); break;
    case 5: tile8(g, i0, jp, 5, out); break;
    case 4: tile8(g, i0, jp, 4, out); break;
    case 3: tile8(g, i0, jp, 3, out); break;
    case 2: tile8(g, i0, jp, 2, out); break;
    default: tile8(g, i0, jp, 1, out); break;
    }
}

/* rows i0 .. i0 + mr - 1 (mr <= the tile's rows), columns j0 = jp NR .. j0 + w - 1 (w <= NR) */
static void do_tile(const gemm_args *g, int avx, int i0, int mr, int jp, int w)
{
    float out[MR_MAX * NR];
    const int j0 = jp * NR;
    if (g->pk) {
        if (avx) tile_avx(g, i0, jp, mr, out);
        else tile_sse(g, i0, jp, mr, out);
    } else {
        /* no memory for the panels: the same loop, one element at a time, B read in place */
        for (int j = 0; j < w; j++)
            for (int r = 0; r < mr; r++) {
                const float *a = g->A + (size_t)(i0 + r) * g->ars;
                const float *b = g->B + (size_t)(j0 + j) * g->bjs;
                float t = 0.0f;
                for (int k = 0; k < g->K; k++)
                    t = t + a[(size_t)k * g->acs] * b[(size_t)k * g->bks];
                out[(size_t)r * NR + j] = t;
            }
    }
    for (int r = 0; r < mr; r++) {
        float *c = g->C + (size_t)(i0 + r) * g->ldc + j0;
        for (int q = 0; q < w; q++) c[q] = put(c[q], out[(size_t)r * NR + q], g->alpha, g->beta);
    }
}

void nn_sgemm_fixed(enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc)
{
    const int ta = transA != CblasNoTrans, tb = transB != CblasNoTrans;
    if (trivial(ta, tb, M, N, K, alpha, lda, ldb, beta, C, ldc)) return;
    static int has_avx = -1; /* set once; a benign race (every thread stores the same value) */
    if (has_avx < 0) has_avx = __builtin_cpu_supports("avx") ? 1 : 0;
    const int avx = has_avx, mr_max = avx ? MR_MAX : 2;
    const int nib = (M + mr_max - 1) / mr_max, njp = (N + NR - 1) / NR;
    gemm_args g = {M, N, K, alpha, beta, A, ta ? 1 : (size_t)lda, ta ? (size_t)lda : 1,
                   B, tb ? 1 : (size_t)ldb, tb ? (size_t)ldb : 1, NULL, C, (size_t)ldc};
    /* op(B) packed in zero-padded panels of NR columns: tiles load contiguous rows of NR and every
     * column, remainders included, takes the vector path */
    const size_t need = (size_t)njp * (size_t)K * NR;
    if (need > g_pack_cap) {
        float *p = malloc(need * sizeof *p);
        if (p) {
            free(g_pack);
            g_pack = p;
            g_pack_cap = need;
        }
    }
    float *pk = need <= g_pack_cap ? g_pack : NULL;
    g.pk = pk;
    const long ntiles = (long)nib * njp;
    const int par =
        (size_t)M * (size_t)N * (size_t)(K > 0 ? K : 1) > NN_PAR_MIN && !omp_in_parallel();
#pragma omp parallel if (par)
    {
        if (pk && K > 0) {
#pragma omp for schedule(static)
            for (int jp = 0; jp < njp; jp++) {
                float *dst = pk + (size_t)jp * K * NR;
                const int j0 = jp * NR, w = N - j0 < NR ? N - j0 : NR;
                if (tb) {
                    for (int q = 0; q < w; q++) {
                        const float *src = B + (size_t)(j0 + q) * ldb;
                        for (int k = 0; k < K; k++) dst[(size_t)k * NR + q] = src[k];
                    }
                    for (int k = 0; k < K && w < NR; k++)
                        memset(dst + (size_t)k * NR + w, 0, (size_t)(NR - w) * sizeof(float));
                } else {
                    for (int k = 0; k < K; k++) {
                        memcpy(dst + (size_t)k * NR, B + (size_t)k * ldb + j0,
                               (size_t)w * sizeof(float));
                        if (w < NR)
                            memset(dst + (size_t)k * NR + w, 0, (size_t)(NR - w) * sizeof(float));
                    }
                }
            }
        }
        /* consecutive tiles share a panel (it stays in cache across row blocks) */
#pragma omp for schedule(static)
        for (long t = 0; t < ntiles; t++) {
            const int jp = (int)(t / nib), ib = (int)(t % nib);
            const int i0 = ib * mr_max, j0 = jp * NR;
            do_tile(&g, avx, i0, M - i0 < mr_max ? M - i0 : mr_max, jp, N - j0 < NR ? N - j0 : NR);
        }
    }
}
