/* gemm_bf16.h: matrix products with bfloat16 operands and float accumulation, for frozen weights
 * (the language model's linear layers when lm.precision = "bf16").
 *
 *   C (M, N) = c0 + bf16(A) B    A (M, K) float, rows lda apart, rounded to bfloat16 on the fly;
 *                                B (K, N) a matrix packed once (nn_bf16_pack) from float weights;
 *                                C rows ldc apart, float. The start c0 is what C holds (accumulate:
 *                                e.g. a residual the caller put there), or a bias row (N) given,
 *                                or 0; without accumulate C is written and never read.
 *
 * Rounding: float -> bfloat16 to nearest, ties to even (vcvtne2ps2bf16), subnormal inputs and
 * results flushed to zero; NaN stays NaN. bfloat16 keeps 8 significant bits: unit roundoff
 * u = 2^-8, so |bf16(x) - x| <= u |x|.
 *
 * Order: each c_ij is accumulated over pairs of k, starting from c0_ij (C's value, bias_j or 0):
 *     for p = 0, 1, ..., ceil(K / 2) - 1:
 *         t = c + a_i,2p+1 b_2p+1,j;   c = t + a_i,2p b_2p,j     (odd index first; K odd: 0 pads)
 * with the products of two bfloat16 exact in float and each sum rounded to float (nearest even),
 * subnormals flushed: exactly AVX512_BF16's vdpbf16ps lane by lane. So c_ij depends only on row i
 * of A, column j of B and its starting value: not on M, N, the blocking, the thread count or the
 * other rows of the call. nn_bf16_gemm_naive does the same scalar operations one element at a time
 * and equals nn_bf16_gemm bitwise (tests/unit/test_lm_bf16.c).
 * Error against the exact product of the float operands, with S = sum_k |a_ik| |b_kj| (b_kj the
 * float weight before packing):
 *     |c - c0 - sum_k a_ik b_kj| <= (2u + u^2) S + gamma_K (|c0| + (1 + u)^2 S)
 * (one bfloat16 rounding of each operand, then K float additions, u' = 2^-24 and
 * gamma_K = K u' / (1 - K u'); flushing subnormals adds at most 2^-126 per operation).
 *
 * CPU: the kernel needs AVX-512 F/BW/VL and AVX512_BF16; it is compiled with function target
 * attributes (the build stays portable) and may only be called when nn_bf16_available() says so.
 * nn_bf16_available() is false on CPUs without the instructions, when DM_NO_BF16 is set in the
 * environment (non-empty, not "0"), or after nn_bf16_disable(1): callers then keep their float path.
 *
 * Threads: the module's own pool (nn_bf16_parallel) over panels of columns and blocks of rows,
 * nn_bf16_set_threads(n) threads (default: as many as OpenBLAS uses), one for small products.
 * Memory: a packed matrix owns its pairs; the module keeps a grow-only scratch for the rounded A
 * (at most 16 MiB: long products run in chunks of rows) per calling thread, released by
 * nn_bf16_scratch_free. Nothing else allocates; nn_bf16_gemm cannot fail (it aborts if even the
 * scratch cannot be had).
 */
#ifndef DM_NN_GEMM_BF16_H
#define DM_NN_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#define NN_BF16_NR 64 /* columns per packed panel */

/* B (K, N) in panels of NN_BF16_NR columns: panel q holds rows (pairs) p = 0 .. kp-1, each as
 * NN_BF16_NR 32-bit words whose low half is bf16(b_2p,j) and high half bf16(b_2p+1,j); columns past
 * N and the row past an odd K are zero. */
typedef struct {
    int K, N;        /* the logical matrix */
    int kp, np;      /* ceil(K / 2) pairs of rows, ceil(N / NN_BF16_NR) panels */
    uint32_t *w;     /* (np, kp, NN_BF16_NR) */
} nn_bf16_mat;

/* 1 when the kernel may run: the CPU has AVX512_BF16 (and F/BW/VL) and it is not disabled. */
int nn_bf16_available(void);
/* 1 when the CPU has the instructions, whatever nn_bf16_disable and DM_NO_BF16 say. */
int nn_bf16_cpu(void);
/* Forces the float fallback (on = 1) or lifts it (0; DM_NO_BF16 still applies). Serial code only. */
void nn_bf16_disable(int on);
/* Threads of nn_bf16_gemm; n <= 0 = as many as OpenBLAS uses. nn_bf16_threads: the count in force. */
void nn_bf16_set_threads(int n);
int nn_bf16_threads(void);

/* The pool: runs task(arg, t, n) for t = 0 .. n-1 (t = 0 on the caller, at most 128) and returns
 * when all have run. Its workers sleep between calls (after spinning some tens of microseconds), so
 * they leave the cores to OpenBLAS and OpenMP whatever OMP_WAIT_POLICY says. A call while another
 * runs (from another thread, or from inside a task) runs its n tasks on the caller, in order.
 * nn_bf16_for splits [0, n) into nn_bf16_threads() contiguous ranges (one when work, the caller's
 * measure of the loop's size, is below NN_BF16_PAR_MIN) and runs body(ctx, i0, i1, t) on each,
 * t < 128 the range's index (for per-thread scratch). */
#define NN_BF16_PAR_MIN ((size_t)1 << 15)
void nn_bf16_parallel(void (*task)(void *arg, int t, int n), void *arg, int n);
void nn_bf16_for(long n, size_t work, void (*body)(void *ctx, long i0, long i1, int t), void *ctx);

/* Packs B (K, N) from float: b_kj = src[k ld + j] (trans = 0) or src[j ld + k] (trans = 1, i.e.
 * src is B^T (N, K)). b is zeroed, or a packed matrix: of the same shape its memory is reused (no
 * allocation, so no failure), else it is freed first. Needs no CPU feature. */
int nn_bf16_pack(nn_bf16_mat *b, const float *src, int K, int N, size_t ld, int trans);
void nn_bf16_mat_free(nn_bf16_mat *b);
size_t nn_bf16_mat_bytes(const nn_bf16_mat *b);
/* The packed bfloat16 weights of an LM (src/lm: gpt2.h, llama.h): per layer a fixed number of
 * matrices for the forward and, once a backward has asked for them, their transposes; the output
 * head and its transpose. n = layers x matrices per layer. */
typedef struct {
    nn_bf16_mat *fwd, *bwd; /* (n); bwd NULL until packed */
    size_t n;
    nn_bf16_mat head, head_t;
} nn_bf16_weights;
/* Packs an LM's weights into w: layers x kinds block matrices, weight(model, l, k, &IC, &OC) giving
 * each (a product out (., OC) = inp (., IC) W), stored (OC, IC) row-major when out_in (torch.nn.Linear,
 * Llama) or (IC, OC) (Hugging Face's Conv1D, GPT-2); the forward copies always, the backward
 * transposes (for dinp = dout W^T) when `bwd` asks or they exist; the head (V, C) row-major
 * (logits = h head^T) likewise. Packing into existing copies reuses their memory. */
int nn_bf16_weights_pack(nn_bf16_weights *w, int layers, int kinds, int out_in, int bwd,
                         const float *(*weight)(const void *model, int l, int k, int *IC, int *OC), const void *model,
                         const float *head, int C, int V);
/* Frees the matrices and w itself (malloc'd); NULL is a no-op. */
void nn_bf16_weights_free(nn_bf16_weights *w);
/* Bytes of the copies held (the transposes once packed); 0 for NULL. */
size_t nn_bf16_weights_bytes(const nn_bf16_weights *w);
/* 1 where the bf16 kernel runs (nn_bf16_available); else 0, and the first call in the process says
 * in the log why the language model runs in f32 instead (DM_NO_BF16 / nn_bf16_disable, or a CPU
 * without AVX512_BF16). */
int nn_bf16_or_warn(void);
/* b_kj as a float (its bfloat16 value), for tests and references. */
float nn_bf16_mat_get(const nn_bf16_mat *b, int k, int j);

/* C (M, b->N; rows ldc apart) = c0 + bf16(A) (M, b->K; rows lda apart) b, in the order above, with
 * c0 = C (accumulate), bias (b->N floats, or NULL) or 0; not both accumulate and a bias. */
void nn_bf16_gemm(float *C, size_t ldc, const float *A, size_t lda, const nn_bf16_mat *b, int M, const float *bias,
                  int accumulate);
/* The same operations as plain serial scalar code (no CPU feature needed): the reference. */
void nn_bf16_gemm_naive(float *C, size_t ldc, const float *A, size_t lda, const nn_bf16_mat *b, int M,
                        const float *bias, int accumulate);

/* bfloat16 bits of x, rounded as above, and back to float. */
uint16_t nn_bf16_from_f32(float x);
float nn_bf16_to_f32(uint16_t h);
static inline float nn_bf16_round(float x) { return nn_bf16_to_f32(nn_bf16_from_f32(x)); }

void nn_bf16_scratch_free(void);

#endif
