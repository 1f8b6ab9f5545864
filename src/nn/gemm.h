/* gemm.h: single-precision matrix products for the neural-network code (the start of the shared
 * layer src/nn/), with a reproducible mode.
 *
 * All three kernels take cblas_sgemm's row-major argument list without the order argument:
 *   C (M, N) = alpha op(A) op(B) + beta C,   op(A) (M, K), op(B) (K, N)
 *   A is (M, K) with row stride lda >= K, or (K, M) with lda >= M when transA = CblasTrans;
 *   B is (K, N) with ldb >= N, or (N, K) with ldb >= K when transB = CblasTrans; ldc >= N.
 *   Everything is row-major; CblasConjTrans counts as CblasTrans (real data). beta = 0: C is
 *   written, never read (it may hold NaN), as in BLAS.
 *
 *   nn_sgemm        cblas_sgemm, or nn_sgemm_fixed while reproducible mode is on.
 *   nn_sgemm_fixed  every element in one fixed order, whatever the call:
 *                     t = 0;  for k = 0 .. K-1:  t = t + a_ik b_kj   (float; the product rounded,
 *                                                                     then the sum: never an FMA)
 *                     t = alpha t;  c_ij = beta == 0 ? t : beta c_ij + t
 *                   so c_ij depends only on row i of op(A), column j of op(B), alpha, beta and
 *                   c_ij: not on M, N, the other rows in the call, the OpenMP thread count, the
 *                   vector width or the CPU (IEEE single precision, round to nearest; the build
 *                   passes -ffp-contract=off so the compiler cannot fuse the multiply and add).
 *                   Error: |t - exact| <= gamma_K sum_k |a_ik| |b_kj|, gamma_K = K u / (1 - K u),
 *                   u = 2^-24 (the textbook bound for recursive summation).
 *                   Vectorised across the columns j (lanes are independent, so the order above
 *                   holds lane by lane; AVX when the CPU has it, chosen at run time, else SSE),
 *                   OpenMP over tiles of rows and columns; op(B) is first copied into panels of
 *                   16 columns (a grow-only scratch of the calling thread).
 *   nn_sgemm_naive  the same order as plain serial loops: the reference nn_sgemm_fixed must equal
 *                   bitwise (tests/unit/test_nn_gemm.c).
 *
 * Reproducible mode (nn_set_reproducible) is process-wide: turn it on around computations whose
 * float results must not depend on how rows are grouped into calls (data-parallel shards at any
 * rank count, stages/stage_stream.c) and off again for throughput. Set it from serial code only. The
 * fixed kernel is slower than OpenBLAS (no FMA, no reordering; 1.1-1.8x on the adapter's shapes
 * with AVX, one thread), so keep OpenBLAS where results are only compared within a tolerance.
 *
 * Memory: the module owns one scratch buffer per calling thread (the panels of op(B), at most
 * (N + 15) K floats), grown on demand and kept; nn_gemm_scratch_free releases the calling thread's.
 * Without memory for it the kernel reads B in place (slower, the same results). No function fails.
 */
#ifndef DM_NN_GEMM_H
#define DM_NN_GEMM_H

#include <cblas.h>

void nn_sgemm(enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc);
void nn_sgemm_fixed(enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc);
void nn_sgemm_naive(enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc);

/* 1 = nn_sgemm runs nn_sgemm_fixed, 0 = OpenBLAS (the default). */
void nn_set_reproducible(int on);
int nn_reproducible(void);

void nn_gemm_scratch_free(void);

#endif
