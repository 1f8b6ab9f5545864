/* gemm_bf16.c: bfloat16 products with float accumulation (AVX512_BF16), the packing of B, and the
 * scalar twin; see gemm_bf16.h.
 *
 * Kernel: tiles of MR = 6 rows x one panel of 64 columns keep 24 vectors of 16 float accumulators
 * (+ 4 of B + a broadcast: 29 of the 32 registers). Per pair of k a tile loads the panel's 64
 * words (4 vectors) and broadcasts each row's word of A; one vdpbf16ps per accumulator adds both
 * products. K runs in blocks of KB pairs (the panel's block, 32 KiB, stays in L1 while every row
 * block of the work item passes over it); the accumulators go back to C between blocks, which
 * changes no bit (C is float, so the running sum is stored exactly). Work items are (panel, block
 * of up to MB rows), panel-major, split statically over the threads.
 */
#include "gemm_bf16.h"

#include "../core/err.h"
#include "../core/log.h"

#include <cblas.h>
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define NR NN_BF16_NR
#define MR 6
#define KB 128  /* pairs of k per block */
#define MB 192  /* rows per work item */
/* words of rounded A held at once (the scratch) */
#define A_CAP ((size_t)4 << 20)

static int g_cpu = -1, g_env = -1, g_off, g_threads;
static _Thread_local uint32_t *g_a;
static _Thread_local size_t g_a_cap;

int nn_bf16_cpu(void)
{
    if (g_cpu < 0) {
        __builtin_cpu_init();
        g_cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
    }
    return g_cpu;
}

int nn_bf16_available(void)
{
    if (g_env < 0) {
        const char *e = getenv("DM_NO_BF16");
        g_env = e && *e && strcmp(e, "0") != 0;
    }
    return nn_bf16_cpu() && !g_env && !g_off;
}

void nn_bf16_disable(int on) { g_off = on != 0; }
void nn_bf16_set_threads(int n) { g_threads = n > 0 ? n : 0; }

int nn_bf16_threads(void)
{
    int n = g_threads > 0 ? g_threads : openblas_get_num_threads();
    return n > 0 ? n : 1;
}

void nn_bf16_scratch_free(void)
{
    free(g_a);
    g_a = NULL;
    g_a_cap = 0;
}

/* ---- the thread pool ------------------------------------------------------------------------ */

/* Workers are created on first use and live for the process. A call publishes (task, arg, n) under
 * the mutex with a new generation and wakes them; worker t < n runs task(arg, t, n), the last to
 * finish signals `done`. Between calls a worker spins for about SPIN pauses (tens of microseconds:
 * back-to-back calls of one forward find it awake), then sleeps on `go`, leaving its core to
 * OpenBLAS and OpenMP: OpenMP's own workers would spin for milliseconds unless
 * OMP_WAIT_POLICY=passive, and on a loaded machine that made the bf16 path several times slower. */
#define POOL_MAX 128
#define SPIN 4096

static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen;
    void (*task)(void *, int, int);
    void *arg;
    int n, workers;
    atomic_int left, busy;
} g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void *pool_worker(void *p)
{
    int id = (int)(intptr_t)p;
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN && atomic_load_explicit(&g_pool.gen, memory_order_acquire) == seen; i++)
            __builtin_ia32_pause();
        pthread_mutex_lock(&g_pool.mu);
        while (atomic_load(&g_pool.gen) == seen) pthread_cond_wait(&g_pool.go, &g_pool.mu);
        seen = atomic_load(&g_pool.gen);
        void (*task)(void *, int, int) = g_pool.task;
        void *arg = g_pool.arg;
        int n = g_pool.n;
        pthread_mutex_unlock(&g_pool.mu);
        if (id >= n) continue;
        task(arg, id, n);
        if (atomic_fetch_sub(&g_pool.left, 1) == 1) {
            pthread_mutex_lock(&g_pool.mu);
            pthread_cond_signal(&g_pool.done);
            pthread_mutex_unlock(&g_pool.mu);
        }
    }
    return NULL;
}

void nn_bf16_parallel(void (*task)(void *arg, int t, int n), void *arg, int n)
{
    if (n > POOL_MAX) n = POOL_MAX;
    int expect = 0;
    if (n <= 1 || !atomic_compare_exchange_strong(&g_pool.busy, &expect, 1)) {
        for (int t = 0; t < (n > 1 ? n : 1); t++) task(arg, t, n > 1 ? n : 1);
        return;
    }
    while (g_pool.workers < n - 1) { /* workers 1 .. n-1; without one, fewer tasks run in parallel */
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &at, pool_worker, (void *)(intptr_t)(g_pool.workers + 1));
        pthread_attr_destroy(&at);
        if (rc) break;
        g_pool.workers++;
    }
    int np = n - 1 < g_pool.workers ? n - 1 : g_pool.workers; /* tasks the workers take */
    pthread_mutex_lock(&g_pool.mu);
    g_pool.task = task;
    g_pool.arg = arg;
    g_pool.n = np + 1;
    atomic_store(&g_pool.left, np);
    atomic_fetch_add(&g_pool.gen, 1);
    pthread_cond_broadcast(&g_pool.go);
    pthread_mutex_unlock(&g_pool.mu);
    task(arg, 0, np + 1);
    for (int i = 0; i < SPIN && atomic_load_explicit(&g_pool.left, memory_order_acquire) > 0; i++)
        __builtin_ia32_pause();
    pthread_mutex_lock(&g_pool.mu);
    while (atomic_load(&g_pool.left) > 0) pthread_cond_wait(&g_pool.done, &g_pool.mu);
    pthread_mutex_unlock(&g_pool.mu);
    atomic_store(&g_pool.busy, 0);
}

typedef struct {
    void (*body)(void *, long, long, int);
    void *ctx;
    long n;
} for_job;

static void for_task(void *a, int t, int n)
{
    const for_job *j = a;
    long i0 = (long)((__int128)j->n * t / n), i1 = (long)((__int128)j->n * (t + 1) / n);
    if (i1 > i0) j->body(j->ctx, i0, i1, t);
}

void nn_bf16_for(long n, size_t work, void (*body)(void *ctx, long i0, long i1, int t), void *ctx)
{
    if (n <= 0) return;
    int nth = work < NN_BF16_PAR_MIN ? 1 : nn_bf16_threads();
    if (nth > n) nth = (int)n;
    if (nth <= 1) {
        body(ctx, 0, n, 0);
        return;
    }
    for_job j = {body, ctx, n};
    nn_bf16_parallel(for_task, &j, nth);
}

/* ---- rounding ------------------------------------------------------------------------------- */

/* the bits of bf16(x) from the bits of x, without branches (so packing loops vectorise) */
static inline uint32_t bf16_bits_u(uint32_t u)
{
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  /* nearest, ties to even */
    r = (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r; /* NaN: quiet */
    r = (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : r;       /* zero, subnormal: signed 0 */
    return r;
}

static inline uint32_t bf16_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return bf16_bits_u(u);
}

uint16_t nn_bf16_from_f32(float x) { return (uint16_t)bf16_bits(x); }

float nn_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- packing -------------------------------------------------------------------------------- */

/* n words, 64-byte aligned; large blocks 2 MiB aligned and advised to use transparent huge pages
 * (the copies of a GPT-2 are hundreds of MB: 4 KiB pages cost a page fault every 1024 words) */
static uint32_t *alloc_words(size_t n)
{
    size_t bytes = (n * sizeof(uint32_t) + 63) & ~(size_t)63;
    if (bytes < ((size_t)4 << 20)) return aligned_alloc(64, bytes);
    size_t huge = (size_t)2 << 20;
    bytes = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, bytes);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

int nn_bf16_pack(nn_bf16_mat *b, const float *src, int K, int N, size_t ld, int trans)
{
    if (K < 0 || N < 0) return DM_ERR(DM_EINTERNAL, "nn_bf16_pack: negative size (%d, %d)", K, N);
    if (!b->w || b->K != K || b->N != N) {
        nn_bf16_mat_free(b);
        b->K = K;
        b->N = N;
        b->kp = (K + 1) / 2;
        b->np = (N + NR - 1) / NR;
        size_t n = (size_t)b->np * b->kp * NR;
        if (n == 0) return DM_OK;
        b->w = alloc_words(n);
        if (!b->w) {
            nn_bf16_mat_free(b);
            return DM_ERR(DM_ENOMEM, "out of memory packing a (%d, %d) bf16 matrix", K, N);
        }
    }
    const int kp = b->kp, np = b->np;
    int nth = nn_bf16_threads();
    if (omp_in_parallel() || (size_t)np * kp * NR < ((size_t)1 << 16)) nth = 1;
    /* panel by panel; each source row read contiguously (rows of B, or rows of B^T = columns) */
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int q = 0; q < np; q++) {
        uint32_t *dst = b->w + (size_t)q * kp * NR;
        int w = N - q * NR < NR ? N - q * NR : NR;
        if (w < NR) memset(dst, 0, (size_t)kp * NR * sizeof *dst);
        if (trans) {
            for (int c = 0; c < w; c++) {
                const float *row = src + (size_t)(q * NR + c) * ld;
                for (int p = 0; p < K / 2; p++)
                    dst[(size_t)p * NR + c] = bf16_bits(row[2 * p]) | bf16_bits(row[2 * p + 1]) << 16;
                if (K % 2) dst[(size_t)(kp - 1) * NR + c] = bf16_bits(row[K - 1]);
            }
        } else {
            for (int p = 0; p < kp; p++) {
                const float *r0 = src + (size_t)(2 * p) * ld + (size_t)q * NR, *r1 = r0 + ld;
                uint32_t *d = dst + (size_t)p * NR;
                if (2 * p + 1 < K)
                    for (int c = 0; c < w; c++) d[c] = bf16_bits(r0[c]) | bf16_bits(r1[c]) << 16;
                else
                    for (int c = 0; c < w; c++) d[c] = bf16_bits(r0[c]);
            }
        }
    }
    return DM_OK;
}

void nn_bf16_mat_free(nn_bf16_mat *b)
{
    free(b->w);
    memset(b, 0, sizeof *b);
}

size_t nn_bf16_mat_bytes(const nn_bf16_mat *b) { return (size_t)b->np * b->kp * NR * sizeof(uint32_t); }

float nn_bf16_mat_get(const nn_bf16_mat *b, int k, int j)
{
    uint32_t w = b->w[((size_t)(j / NR) * b->kp + k / 2) * NR + j % NR];
    return nn_bf16_to_f32((uint16_t)(k % 2 ? w >> 16 : w & 0xffffu));
}

/* ---- the scalar twin ------------------------------------------------------------------------ */

static inline float ftz(float x) { return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x; }

void nn_bf16_gemm_naive(float *C, size_t ldc, const float *A, size_t lda, const nn_bf16_mat *b, int M,
                        const float *bias, int accumulate)
{
    const int K = b->K, N = b->N;
    DM_ASSERT(!(bias && accumulate));
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float c = ftz(accumulate ? C[(size_t)i * ldc + j] : bias ? bias[j] : 0.0f);
            const float *a = A + (size_t)i * lda;
            for (int p = 0; p < b->kp; p++) {
                float a0 = nn_bf16_round(a[2 * p]), a1 = 2 * p + 1 < K ? nn_bf16_round(a[2 * p + 1]) : 0.0f;
                float b0 = nn_bf16_mat_get(b, 2 * p, j), b1 = 2 * p + 1 < K ? nn_bf16_mat_get(b, 2 * p + 1, j) : 0.0f;
                float t = ftz(c + a1 * b1); /* products of two bfloat16 are exact in float */
                c = ftz(t + a0 * b0);
            }
            C[(size_t)i * ldc + j] = c;
        }
}

/* ---- the AVX512_BF16 kernel ----------------------------------------------------------------- */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

/* row (K floats) -> (K + 1) / 2 words of bfloat16 pairs */
static void round_row(uint32_t *dst, const float *a, int K)
{
    for (int k0 = 0; k0 < K; k0 += 32) {
        int n = K - k0 < 32 ? K - k0 : 32;
        __mmask16 m0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
        __mmask16 m1 = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
        __m512 v0 = _mm512_maskz_loadu_ps(m0, a + k0), v1 = _mm512_maskz_loadu_ps(m1, a + k0 + 16);
        __m512i r = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
        int nw = (n + 1) / 2;
        _mm512_mask_storeu_epi32(dst + k0 / 2, (__mmask16)(nw >= 16 ? 0xffff : (1u << nw) - 1), r);
    }
}

/* C rows r0 .. r0 + mr - 1 of one panel, += over nk pairs; a: the rows' words at the block's first
 * pair (rows lda words apart), b: the panel at the block's first pair, mk: live columns */
static inline __attribute__((always_inline)) void tile(int mr, int nk, const uint32_t *a, size_t lda,
                                                       const uint32_t *b, float *c, size_t ldc,
                                                       const __mmask16 *mk, int load, const float *bias)
{
    __m512 acc[MR][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
            acc[r][v] = load   ? _mm512_maskz_loadu_ps(mk[v], c + (size_t)r * ldc + 16 * v)
                        : bias ? _mm512_maskz_loadu_ps(mk[v], bias + 16 * v)
                               : _mm512_setzero_ps();
    for (int p = 0; p < nk; p++) {
        const uint32_t *bp = b + (size_t)p * NR;
        __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 16);
        __m512bh b2 = (__m512bh)_mm512_load_si512(bp + 32), b3 = (__m512bh)_mm512_load_si512(bp + 48);
        _Pragma("GCC unroll 6") for (int r = 0; r < mr; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[(size_t)r * lda + p]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
            acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, b2);
            acc[r][3] = _mm512_dpbf16_ps(acc[r][3], x, b3);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(c + (size_t)r * ldc + 16 * v, mk[v], acc[r][v]);
}

static void tile_mr(int mr, int nk, const uint32_t *a, size_t lda, const uint32_t *b, float *c, size_t ldc,
                    const __mmask16 *mk, int load, const float *bias)
{
    switch (mr) {
    case 6: tile(6, nk, a, lda, b, c, ldc, mk, load, bias); break;
    case 5: tile(5, nk, a, lda, b, c, ldc, mk, load, bias); break;
    case 4: tile(4, nk, a, lda, b, c, ldc, mk, load, bias); break;
    case 3: tile(3, nk, a, lda, b, c, ldc, mk, load, bias); break;
    case 2: tile(2, nk, a, lda, b, c, ldc, mk, load, bias); break;
    default: tile(1, nk, a, lda, b, c, ldc, mk, load, bias); break;
    }
}

/* rows i0 .. i1 - 1 of panel q */
static void work_item(float *C, size_t ldc, const uint32_t *a, size_t kp, const nn_bf16_mat *b, int q, int i0, int i1,
                      const float *bias, int acc)
{
    int j0 = q * NR, w = b->N - j0 < NR ? b->N - j0 : NR;
    __mmask16 mk[4];
    for (int v = 0; v < 4; v++) {
        int n = w - 16 * v;
        mk[v] = (__mmask16)(n >= 16 ? 0xffff : n > 0 ? (1u << n) - 1 : 0);
    }
    const uint32_t *panel = b->w + (size_t)q * b->kp * NR;
    for (int p0 = 0; p0 < b->kp; p0 += KB) {
        int nk = b->kp - p0 < KB ? b->kp - p0 : KB;
        for (int i = i0; i < i1; i += MR) {
            int mr = i1 - i < MR ? i1 - i : MR;
            tile_mr(mr, nk, a + (size_t)i * kp + p0, kp, panel + (size_t)p0 * NR, C + (size_t)i * ldc + j0, ldc, mk,
                    acc || p0 > 0, bias ? bias + j0 : NULL);
        }
    }
}

typedef struct {
    float *C;
    size_t ldc, lda, kp;
    const float *A, *bias;
    const nn_bf16_mat *b;
    uint32_t *a;
    int M, nmb, acc;
} gemm_job;

static void round_rows(void *p, long i0, long i1, int t)
{
    const gemm_job *j = p;
    for (long i = i0; i < i1; i++) round_row(j->a + (size_t)i * j->kp, j->A + (size_t)i * j->lda, j->b->K);
}

/* work items (panel, block of rows), panel-major: consecutive items share a panel */
static void tiles(void *p, long t0, long t1, int tid)
{
    const gemm_job *j = p;
    (void)tid;
    for (long t = t0; t < t1; t++) {
        int q = (int)(t / j->nmb), i0 = (int)(t % j->nmb) * MB;
        work_item(j->C, j->ldc, j->a, j->kp, j->b, q, i0, j->M - i0 < MB ? j->M : i0 + MB, j->bias, j->acc);
    }
}

static void gemm_avx512(float *C, size_t ldc, const float *A, size_t lda, const nn_bf16_mat *b, int M,
                        uint32_t *a, const float *bias, int acc)
{
    gemm_job j = {C, ldc, lda, (size_t)b->kp, A, bias, b, a, M, (M + MB - 1) / MB, acc};
    /* in elementwise units: a multiply-add costs about 1/32 of a cycle here (two vdpbf16ps a cycle) */
    size_t work = (size_t)M * b->N * b->K / 32;
    nn_bf16_for(M, work, round_rows, &j);
    nn_bf16_for((long)b->np * j.nmb, work, tiles, &j);
}

#pragma GCC pop_options

void nn_bf16_gemm(float *C, size_t ldc, const float *A, size_t lda, const nn_bf16_mat *b, int M, const float *bias,
                  int accumulate)
{
    if (M <= 0 || b->N <= 0) return;
    DM_ASSERT(!(bias && accumulate));
    if (b->K <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < b->N; j++) C[(size_t)i * ldc + j] = bias ? bias[j] : 0.0f;
        return;
    }
    DM_ASSERT(nn_bf16_cpu());
    DM_ASSERT(lda >= (size_t)b->K && ldc >= (size_t)b->N);
    /* rows in chunks whose rounded copy fits the scratch cap (a long K, e.g. the vocabulary of the
     * head's backward, would otherwise need M K / 2 words) */
    size_t kp = (size_t)b->kp, rows = A_CAP / kp;
    if (rows < MR) rows = MR;
    if (rows > (size_t)M) rows = (size_t)M;
    size_t need = rows * kp;
    if (need > g_a_cap) {
        free(g_a);
        g_a = aligned_alloc(64, ((need * sizeof *g_a + 63) / 64) * 64);
        DM_ASSERT(g_a != NULL); /* at most A_CAP words (16 MiB) */
        g_a_cap = need;
    }
    for (size_t i0 = 0; i0 < (size_t)M; i0 += rows) {
        int m = (int)((size_t)M - i0 < rows ? (size_t)M - i0 : rows);
        gemm_avx512(C + i0 * ldc, ldc, A + i0 * lda, lda, b, m, g_a, bias, accumulate);
    }
}

int nn_bf16_weights_pack(nn_bf16_weights *w, int layers, int kinds, int out_in, int bwd,
                         const float *(*weight)(const void *model, int l, int k, int *IC, int *OC), const void *model,
                         const float *head, int C, int V)
{
    w->n = (size_t)layers * (size_t)kinds;
    if (!w->fwd) DM_ALLOC(w->fwd, w->n);
    if (bwd && !w->bwd) DM_ALLOC(w->bwd, w->n);
    for (int l = 0; l < layers; l++)
        for (int k = 0; k < kinds; k++) {
            int IC, OC;
            const float *m = weight(model, l, k, &IC, &OC);
            size_t i = (size_t)l * (size_t)kinds + (size_t)k, ld = (size_t)(out_in ? IC : OC);
            /* forward B = W as (IC, OC); backward B = W^T as (OC, IC) */
            DM_CALL(nn_bf16_pack(&w->fwd[i], m, IC, OC, ld, out_in));
            if (w->bwd) DM_CALL(nn_bf16_pack(&w->bwd[i], m, OC, IC, ld, !out_in));
        }
    DM_CALL(nn_bf16_pack(&w->head, head, C, V, (size_t)C, 1));
    if (w->bwd) DM_CALL(nn_bf16_pack(&w->head_t, head, V, C, (size_t)C, 0));
    return DM_OK;
}

void nn_bf16_weights_free(nn_bf16_weights *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        if (w->fwd) nn_bf16_mat_free(&w->fwd[i]);
        if (w->bwd) nn_bf16_mat_free(&w->bwd[i]);
    }
    DM_FREE_ALL(w->fwd, w->bwd);
    nn_bf16_mat_free(&w->head);
    nn_bf16_mat_free(&w->head_t);
    free(w);
}

size_t nn_bf16_weights_bytes(const nn_bf16_weights *w)
{
    if (!w) return 0;
    size_t n = nn_bf16_mat_bytes(&w->head) + (w->bwd ? nn_bf16_mat_bytes(&w->head_t) : 0);
    for (size_t i = 0; i < w->n; i++) n += (w->fwd ? nn_bf16_mat_bytes(&w->fwd[i]) : 0) + (w->bwd ? nn_bf16_mat_bytes(&w->bwd[i]) : 0);
    return n;
}

int nn_bf16_or_warn(void)
{
    static atomic_int said; /* once per process */
    if (nn_bf16_available()) return 1;
    if (!atomic_exchange(&said, 1)) {
        if (nn_bf16_cpu())
            dm_warn("lm: bf16 precision is switched off (DM_NO_BF16 or nn_bf16_disable); the language model runs in f32");
        else
            dm_warn("lm: this CPU lacks AVX512_BF16 (or AVX-512 F/BW/VL); the language model runs in f32 instead of bf16");
    }
    return 0;
}
