/* bench_gemm_bf16.c: the bf16 products of the LM (src/nn/gemm_bf16) against oneDNN's matmul and
 * OpenBLAS's fp32 sgemm, on the GPT-2 124M shapes of lm.precision = "bf16" (tests/bench/bench_gemm_bf16.sh).
 *
 *   bench_gemm_bf16 [REPS [THREADS...]]     default 7 repetitions at 1 and 2 threads
 *
 * C (M, N) = A (M, K) B (K, N), B the frozen weight, A the activations (float in the LM):
 *   forward B=8, T=128 (M = 1024): qkv (768, 2304), attn proj (768, 768), fc (768, 3072),
 *   fc proj (3072, 768), logits (768, 50257); candidate scoring (M = 64 and 16 rows) on the same
 *   weights; and fc with its bias and GELU (the LM's gemm then its GELU pass vs oneDNN's fused
 *   bias + gelu_tanh post-op).
 * Variants, each prepared once as a runtime would and timed interleaved (one untimed call after each
 * switch, the order rotating per repetition), median GFLOP/s over REPS:
 *   nn      nn_bf16_gemm on B packed once by nn_bf16_pack (A float, rounded inside the kernel)
 *   dnnl    oneDNN matmul, src bf16 (A converted beforehand), weights bf16 reordered once into the
 *           blocked format the primitive asks for (format_tag_any), dst f32; primitive created once
 *   dnnl+A  the same plus a oneDNN reorder of A f32 -> bf16 per call: what the LM, whose activations
 *           are float, would pay
 *   sgemm   cblas_sgemm in fp32, the reference
 * Threads: nn_bf16_set_threads (the module's pool), omp_set_num_threads (oneDNN's OpenMP runtime,
 * its primitives created at that count), openblas_set_num_threads.
 * Accuracy: on up to 32 rows, err = max_ij |c_ij - r_ij| / s_ij with r = the float64 product of the
 * same inputs (bf16-rounded for the bf16 variants) and s_ij = sum_k |a_ik b_kj|: fp32 accumulation
 * bounds it by gamma_K = K u / (1 - K u), u = 2^-24 (gemm_bf16.h), the verdict's threshold.
 * Start-up: oneDNN engine creation, per-shape primitive creation (JIT) and weight reorder, beside
 * nn_bf16_pack. Prints markdown; exits 1 when a verdict fails.
 */
#include "../../src/lm/gpt2_bf16.h"
#include "../../src/nn/gelu.h"
#include "../../src/nn/gemm_bf16.h"
#include "../unit/testlib.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

#define GB_MAXREPS 64
#define GB_CHECK_ROWS 32
#define GB_SAMPLE_S 0.02 /* seconds of work per timed sample */

enum { V_NN, V_DNNL, V_DNNL_A, V_SGEMM, NV };

typedef struct {
    const char *name;
    int M, K, N, gelu; /* gelu: bias + GELU after the product (sgemm not run) */
} gb_shape;

static const gb_shape SHAPES[] = {
    {"qkv", 1024, 768, 2304, 0},        {"attn proj", 1024, 768, 768, 0}, {"fc", 1024, 768, 3072, 0},
    {"fc proj", 1024, 3072, 768, 0},    {"logits", 1024, 768, 50257, 0},  {"fc+bias+GELU", 1024, 768, 3072, 1},
    {"qkv", 64, 768, 2304, 0},          {"attn proj", 64, 768, 768, 0},   {"fc", 64, 768, 3072, 0},
    {"fc proj", 64, 3072, 768, 0},      {"logits", 64, 768, 50257, 0},    {"fc+bias+GELU", 64, 768, 3072, 1},
    {"qkv", 16, 768, 2304, 0},          {"attn proj", 16, 768, 768, 0},   {"fc", 16, 768, 3072, 0},
    {"fc proj", 16, 3072, 768, 0},      {"logits", 16, 768, 50257, 0},
};

static dnnl_engine_t g_eng;
static dnnl_stream_t g_str;
/* sums of log(ratio) over the shapes, per thread count index and variant (geometric means) */
static double g_logr[8][NV];
static int g_nlogr[8][NV];

#define GB_DNNL(call)                                                                                      \
    do {                                                                                                   \
        dnnl_status_t st_ = (call);                                                                        \
        if (st_ != dnnl_success) {                                                                         \
            fprintf(stderr, "bench_gemm_bf16: %s failed: oneDNN status %d (%s:%d)\n", #call, (int)st_,      \
                    __FILE__, __LINE__);                                                                   \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

/* oneDNN's side of one shape at one thread count */
typedef struct {
    dnnl_primitive_t mm, reo_a;        /* matmul (with bias + gelu_tanh for gelu shapes); A f32 -> bf16 */
    dnnl_memory_t src, src32, wei, bias, dst;
    char impl[96];
    double t_create, t_wreorder;       /* seconds: descriptor + primitive (JIT); weight reorder */
} gb_dnnl;

typedef struct {
    gb_shape s;
    float *A;         /* (M, K) activations */
    uint16_t *Ab;     /* (M, K) bf16(A), oneDNN's src */
    float *B, *Bq;    /* (K, N) weights; bf16(B) as float */
    float *bias;      /* (N) */
    float *C;         /* (M, N) every variant's output */
    nn_bf16_mat pk;   /* B packed for nn_bf16_gemm */
    gb_dnnl d;
    int rows[GB_CHECK_ROWS], nrows;
    double *ref[2], *sum[2]; /* (nrows, N): float64 products and sum |a b| of [0] float, [1] bf16 inputs */
    float *first[2];         /* (nrows, N): nn's and oneDNN's sampled rows at the first thread count */
    int same[2];             /* later thread counts: 1 when nn's / oneDNN's rows equal those bitwise */
    double t_pack;
} gb_case;

static dnnl_memory_desc_t gb_md(int r, int c, dnnl_data_type_t dt, dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {r, c};
    GB_DNNL(dnnl_memory_desc_init_by_tag(&md, 2, dims, dt, tag));
    return md;
}

static dnnl_primitive_t gb_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    GB_DNNL(dnnl_reorder_primitive_desc_create(&pd, from, g_eng, to, g_eng, NULL));
    GB_DNNL(dnnl_primitive_create(&p, pd));
    GB_DNNL(dnnl_primitive_desc_destroy(pd));
    return p;
}

static void gb_exec2(dnnl_primitive_t p, int a0, dnnl_memory_t m0, int a1, dnnl_memory_t m1)
{
    dnnl_exec_arg_t args[2] = {{a0, m0}, {a1, m1}};
    GB_DNNL(dnnl_primitive_execute(p, g_str, 2, args));
    GB_DNNL(dnnl_stream_wait(g_str));
}

/* Creates the matmul at the current OpenMP thread count and reorders B into its weight format. */
static void gb_dnnl_init(gb_dnnl *d, gb_case *c)
{
    int M = c->s.M, K = c->s.K, N = c->s.N;
    dnnl_memory_desc_t src = gb_md(M, K, dnnl_bf16, dnnl_ab), src32 = gb_md(M, K, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_t wei = gb_md(K, N, dnnl_bf16, dnnl_format_tag_any), wei32 = gb_md(K, N, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_t dst = gb_md(M, N, dnnl_f32, dnnl_ab), bias = gb_md(1, N, dnnl_f32, dnnl_ab);
    double t0 = tl_now();
    dnnl_matmul_desc_t md;
    GB_DNNL(dnnl_matmul_desc_init(&md, &src, &wei, c->s.gelu ? &bias : NULL, &dst));
    dnnl_primitive_attr_t attr = NULL;
    if (c->s.gelu) {
        dnnl_post_ops_t po;
        GB_DNNL(dnnl_post_ops_create(&po));
        GB_DNNL(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_tanh, 0.0f, 0.0f));
        GB_DNNL(dnnl_primitive_attr_create(&attr));
        GB_DNNL(dnnl_primitive_attr_set_post_ops(attr, po));
        GB_DNNL(dnnl_post_ops_destroy(po));
    }
    dnnl_primitive_desc_t pd;
    GB_DNNL(dnnl_primitive_desc_create(&pd, &md, attr, g_eng, NULL));
    GB_DNNL(dnnl_primitive_create(&d->mm, pd));
    d->t_create = tl_now() - t0;
    const char *impl = "?";
    GB_DNNL(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    snprintf(d->impl, sizeof d->impl, "%s", impl);
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

    GB_DNNL(dnnl_memory_create(&d->src, &src, g_eng, c->Ab));
    GB_DNNL(dnnl_memory_create(&d->src32, &src32, g_eng, c->A));
    GB_DNNL(dnnl_memory_create(&d->dst, &dst, g_eng, c->C));
    GB_DNNL(dnnl_memory_create(&d->bias, &bias, g_eng, c->bias));
    GB_DNNL(dnnl_memory_create(&d->wei, wq, g_eng, DNNL_MEMORY_ALLOCATE));
    dnnl_memory_t w32;
    GB_DNNL(dnnl_memory_create(&w32, &wei32, g_eng, c->B));
    t0 = tl_now();
    dnnl_primitive_t rw = gb_reorder(&wei32, wq);
    gb_exec2(rw, DNNL_ARG_FROM, w32, DNNL_ARG_TO, d->wei);
    d->t_wreorder = tl_now() - t0;
    GB_DNNL(dnnl_primitive_destroy(rw));
    GB_DNNL(dnnl_memory_destroy(w32));
    d->reo_a = gb_reorder(&src32, &src);
    GB_DNNL(dnnl_primitive_desc_destroy(pd));
    if (attr) GB_DNNL(dnnl_primitive_attr_destroy(attr));
}

static void gb_dnnl_free(gb_dnnl *d)
{
    dnnl_primitive_destroy(d->mm);
    dnnl_primitive_destroy(d->reo_a);
    dnnl_memory_t m[] = {d->src, d->src32, d->wei, d->bias, d->dst};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) dnnl_memory_destroy(m[i]);
    memset(d, 0, sizeof *d);
}

/* one product by variant v into c->C */
static void gb_call(gb_case *c, int v)
{
    int M = c->s.M, K = c->s.K, N = c->s.N;
    if (v == V_NN) {
        nn_bf16_gemm(c->C, (size_t)N, c->A, (size_t)K, &c->pk, M, c->s.gelu ? c->bias : NULL, 0);
        if (c->s.gelu) gpt2_bf16_gelu_forward(c->C, c->C, (size_t)M * N);
    } else if (v == V_SGEMM) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, c->A, K, c->B, N, 0.0f, c->C, N);
    } else {
        if (v == V_DNNL_A) gb_exec2(c->d.reo_a, DNNL_ARG_FROM, c->d.src32, DNNL_ARG_TO, c->d.src);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->d.src}, {DNNL_ARG_WEIGHTS, c->d.wei}, {DNNL_ARG_DST, c->d.dst},
                                   {DNNL_ARG_BIAS, c->d.bias}};
        GB_DNNL(dnnl_primitive_execute(c->d.mm, g_str, c->s.gelu ? 4 : 3, args));
        GB_DNNL(dnnl_stream_wait(g_str));
    }
}

/* float64 products of the sampled rows: ref[0], sum[0] of the float inputs, ref[1], sum[1] of their
 * bfloat16 roundings */
static void gb_reference(gb_case *c)
{
    int M = c->s.M, K = c->s.K, N = c->s.N;
    c->nrows = M < GB_CHECK_ROWS ? M : GB_CHECK_ROWS;
    for (int t = 0; t < c->nrows; t++) c->rows[t] = (int)((long)t * M / c->nrows);
    for (int q = 0; q < 2; q++) {
        const float *B = q ? c->Bq : c->B;
        c->ref[q] = calloc((size_t)c->nrows * N, sizeof(double));
        c->sum[q] = calloc((size_t)c->nrows * N, sizeof(double));
        if (!c->ref[q] || !c->sum[q]) tl_die("bench_gemm_bf16: reference rows");
        for (int t = 0; t < c->nrows; t++) {
            double *r = c->ref[q] + (size_t)t * N, *s = c->sum[q] + (size_t)t * N;
            const float *a = c->A + (size_t)c->rows[t] * K;
            for (int k = 0; k < K; k++) {
                double ak = q ? (double)nn_bf16_round(a[k]) : (double)a[k];
                const float *b = B + (size_t)k * N;
                for (int j = 0; j < N; j++) {
                    double p = ak * (double)b[j];
                    r[j] += p;
                    s[j] += fabs(p);
                }
            }
        }
    }
}

static void gb_case_init(gb_case *c, const gb_shape *s, dm_rng *rng)
{
    memset(c, 0, sizeof *c);
    c->s = *s;
    size_t MK = (size_t)s->M * s->K, KN = (size_t)s->K * s->N, MN = (size_t)s->M * s->N;
    /* GPT-2's scales: layer-normed activations ~ N(0, 1), weights and biases ~ N(0, 0.02^2) */
    c->A = tl_randn_new(rng, MK, 1.0);
    c->B = tl_randn_new(rng, KN, 0.02);
    c->bias = tl_randn_new(rng, (size_t)s->N, 0.02);
    c->Ab = malloc(MK * sizeof *c->Ab);
    c->Bq = malloc(KN * sizeof *c->Bq);
    c->C = malloc(MN * sizeof *c->C);
    if (!c->Ab || !c->Bq || !c->C) tl_die("bench_gemm_bf16: buffers");
    for (size_t i = 0; i < MK; i++) c->Ab[i] = nn_bf16_from_f32(c->A[i]);
    for (size_t i = 0; i < KN; i++) c->Bq[i] = nn_bf16_round(c->B[i]);
    double t0 = tl_now();
    if (nn_bf16_pack(&c->pk, c->B, s->K, s->N, (size_t)s->N, 0)) tl_die("bench_gemm_bf16: nn_bf16_pack");
    c->t_pack = tl_now() - t0;
    gb_reference(c);
}

static void gb_case_free(gb_case *c)
{
    nn_bf16_mat_free(&c->pk);
    TL_FREE(c->A, c->Ab, c->B, c->Bq, c->bias, c->C, c->ref[0], c->ref[1], c->sum[0], c->sum[1], c->first[0],
            c->first[1]);
    memset(c, 0, sizeof *c);
}

/* max_ij |c_ij - r_ij| / s_ij over the sampled rows of C against reference kind q */
static double gb_err(const gb_case *c, int q)
{
    size_t N = (size_t)c->s.N;
    double e = 0;
    for (int t = 0; t < c->nrows; t++) {
        const float *x = c->C + (size_t)c->rows[t] * N;
        const double *r = c->ref[q] + t * N, *s = c->sum[q] + t * N;
        for (size_t j = 0; j < N; j++) {
            double d = fabs((double)x[j] - r[j]);
            if (d > 0) e = fmax(e, s[j] > 0 ? d / s[j] : INFINITY);
        }
    }
    return e;
}

/* n calls of variant v after one untimed call (which absorbs the previous variant's threads
 * spinning down): GFLOP/s */
static double gb_rate(gb_case *c, int v, int n)
{
    gb_call(c, v);
    double t0 = tl_now();
    for (int i = 0; i < n; i++) gb_call(c, v);
    return 2.0 * c->s.M * c->s.K * (double)c->s.N * n / (tl_now() - t0) / 1e9;
}

static void gb_threads(int th)
{
    nn_bf16_set_threads(th);
    omp_set_num_threads(th);
    openblas_set_num_threads(th);
}

static const char *gb_isa(dnnl_cpu_isa_t isa)
{
    switch ((int)isa) {
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* Keeps the sampled rows of C for variant q (0 nn, 1 oneDNN) at the first thread count, or says
 * whether they equal those bitwise at a later one. */
static void gb_same(gb_case *c, int q)
{
    size_t N = (size_t)c->s.N;
    int have = c->first[q] != NULL;
    if (!have && !(c->first[q] = malloc((size_t)c->nrows * N * sizeof(float)))) tl_die("bench_gemm_bf16: rows");
    c->same[q] = 1;
    for (int t = 0; t < c->nrows; t++) {
        float *x = c->C + (size_t)c->rows[t] * N, *y = c->first[q] + t * N;
        if (!have) memcpy(y, x, N * sizeof *y);
        else c->same[q] &= !memcmp(x, y, N * sizeof *y);
    }
}

/* The check pass: each variant twice (the second call timed to size the samples), its error on the
 * sampled rows (gelu shapes: dnnl's distance from nn's result instead, relative to s_ij), whether
 * oneDNN's A reorder rounded as nn_bf16_from_f32 does, and whether nn's and oneDNN's results
 * depend on the thread count. */
static void gb_check(gb_case *c, int calls[NV], double err[NV], long *abits)
{
    size_t N = (size_t)c->s.N, MK = (size_t)c->s.M * c->s.K;
    float *keep = malloc((size_t)c->nrows * N * sizeof *keep);
    if (!keep) tl_die("bench_gemm_bf16: check rows");
    for (int v = 0; v < NV; v++) {
        err[v] = NAN;
        if (c->s.gelu && v == V_SGEMM) continue;
        gb_call(c, v);
        double t0 = tl_now();
        gb_call(c, v);
        double n = ceil(GB_SAMPLE_S / fmax(tl_now() - t0, 1e-7));
        calls[v] = n < 1 ? 1 : n > 10000 ? 10000 : (int)n;
        if (!c->s.gelu) {
            err[v] = gb_err(c, v == V_SGEMM ? 0 : 1);
        } else if (v == V_NN) {
            for (int t = 0; t < c->nrows; t++) memcpy(keep + t * N, c->C + (size_t)c->rows[t] * N, N * sizeof *keep);
        } else {
            double e = 0;
            for (int t = 0; t < c->nrows; t++)
                for (size_t j = 0; j < N; j++)
                    e = fmax(e, fabs((double)c->C[(size_t)c->rows[t] * N + j] - keep[t * N + j]) / c->sum[1][t * N + j]);
            err[v] = e;
        }
        if (v == V_NN || v == V_DNNL) gb_same(c, v == V_DNNL);
        if (v == V_DNNL_A) {
            *abits = 0;
            for (size_t i = 0; i < MK; i++) *abits += c->Ab[i] != nn_bf16_from_f32(c->A[i]);
        }
    }
    free(keep);
}

static void gb_num(double x, const char *fmt)
{
    if (isnan(x)) printf(" — |");
    else printf(fmt, x);
}

/* One table row: the shape at th threads. Appends its start-up row to start. Returns 1 on a failed
 * verdict. */
static int gb_measure(gb_case *c, int ti, int th, int reps, char *start, size_t cap)
{
    int later = c->first[0] != NULL;
    gb_threads(th);
    gb_dnnl_init(&c->d, c);
    int calls[NV] = {0};
    double err[NV], g[NV][GB_MAXREPS], med[NV], ratio[NV], q[GB_MAXREPS];
    long abits = -1;
    gb_check(c, calls, err, &abits);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < NV; i++) {
            int v = (r + i) % NV;
            if (calls[v]) g[v][r] = gb_rate(c, v, calls[v]);
        }
    /* ratios: medians of the per-repetition ratios (each pair measured back to back, so a change of
     * the machine's load between repetitions cancels) */
    for (int v = 0; v < NV; v++) {
        for (int r = 0; r < reps && calls[v]; r++) q[r] = g[V_NN][r] / g[v][r];
        ratio[v] = calls[v] ? tl_median(q, reps) : NAN;
        if (calls[v] && !c->s.gelu) {
            g_logr[ti][v] += log(ratio[v]);
            g_nlogr[ti][v]++;
        }
    }
    for (int v = 0; v < NV; v++) med[v] = calls[v] ? tl_median(g[v], reps) : NAN;
    double Ku = c->s.K * 0x1p-24, gamma = Ku / (1 - Ku), tol = c->s.gelu ? 2.5 * gamma : gamma;
    int ok = abits == 0 && (!later || c->same[0]);
    for (int v = 0; v < NV; v++) ok &= isnan(err[v]) || err[v] <= tol;
    printf("| %s | %d | %d | %d | %d |", c->s.name, c->s.M, c->s.K, c->s.N, th);
    for (int v = 0; v < NV; v++) gb_num(med[v], " %.1f |");
    for (int v = V_DNNL; v < NV; v++) gb_num(ratio[v], " %.2f |");
    for (int v = 0; v < NV; v++)
        if (v != V_DNNL_A) gb_num(err[v], " %.1e |");
    printf(" %.1e |", tol);
    if (later) printf(" %s / %s |", c->same[0] ? "yes" : "NO", c->same[1] ? "yes" : "no");
    else printf(" — |");
    printf(" %s |\n", ok ? "PASSED" : "FAILED");
    fflush(stdout);
    size_t len = strlen(start);
    snprintf(start + len, cap - len, "| %s | %d | %d | %s | %.1f | %.1f | %.1f |%s\n", c->s.name, c->s.M, th, c->d.impl,
             1e3 * c->d.t_create, 1e3 * c->d.t_wreorder, 1e3 * c->t_pack,
             abits ? " A reorder rounds differently |" : "");
    gb_dnnl_free(&c->d);
    return !ok;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7, th[8] = {1, 2}, nth = 2;
    if (reps < 1 || reps > GB_MAXREPS) {
        fprintf(stderr, "bench_gemm_bf16: REPS must be 1..%d, got '%s'\n", GB_MAXREPS, argv[1]);
        return 2;
    }
    if (argc > 2) nth = 0;
    for (int i = 2; i < argc && nth < 8; i++)
        if ((th[nth++] = atoi(argv[i])) < 1) {
            fprintf(stderr, "bench_gemm_bf16: THREADS must be >= 1, got '%s'\n", argv[i]);
            return 2;
        }
    if (!nn_bf16_available()) {
        printf("SKIPPED: the CPU has no AVX512_BF16 (or DM_NO_BF16 is set): nn_bf16_gemm cannot run\n");
        return 0;
    }
    double t0 = tl_now();
    GB_DNNL(dnnl_engine_create(&g_eng, dnnl_cpu, 0));
    GB_DNNL(dnnl_stream_create(&g_str, g_eng, dnnl_stream_default_flags));
    double t_eng = tl_now() - t0;
    const dnnl_version_t *ver = dnnl_version();
    printf("oneDNN %d.%d.%d (CPU runtime %s), effective ISA %s, engine + stream created in %.2f ms; "
           "%d repetitions, median GFLOP/s (2MKN / time)\n\n",
           ver->major, ver->minor, ver->patch, ver->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other",
           gb_isa(dnnl_get_effective_cpu_isa()), 1e3 * t_eng, reps);
    printf("| shape | M | K | N | threads | nn bf16 | oneDNN bf16 | oneDNN + A f32->bf16 | OpenBLAS sgemm f32 | "
           "nn / oneDNN | nn / (oneDNN + A) | nn / sgemm | err nn | err oneDNN | err sgemm | bound | bits as at %d thread(s): nn / oneDNN | verdict |\n", th[0]);
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    size_t cap = 16384;
    char *start = calloc(cap, 1);
    if (!start) tl_die("bench_gemm_bf16: start-up rows");
    dm_rng rng;
    dm_rng_seed(&rng, 2024);
    int fail = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        gb_case c;
        gb_case_init(&c, &SHAPES[s], &rng);
        for (int t = 0; t < nth; t++) fail |= gb_measure(&c, t, th[t], reps, start, cap);
        gb_case_free(&c);
    }
    for (int t = 0; t < nth; t++)
        printf("%sgeometric mean over the %d products (no GELU rows), %d thread(s): nn / oneDNN %.2f, nn / (oneDNN + A) "
               "%.2f, nn / sgemm %.2f\n", t ? "" : "\n", g_nlogr[t][V_DNNL], th[t], exp(g_logr[t][V_DNNL] / g_nlogr[t][V_DNNL]),
               exp(g_logr[t][V_DNNL_A] / g_nlogr[t][V_DNNL_A]), exp(g_logr[t][V_SGEMM] / g_nlogr[t][V_SGEMM]));
    printf("\nRatios: medians of the per-repetition ratios (the variants run back to back in each repetition).\n"
           "err = max |c - r| / sum_k |a b| on %d sampled rows against the float64 product of the same\n"
           "inputs (bf16-rounded for nn and oneDNN); bound = gamma_K = K 2^-24 / (1 - K 2^-24), fp32 accumulation.\n"
           "fc+bias+GELU rows: nn = product from the bias, then the LM's AVX-512 GELU pass; oneDNN = bias and\n"
           "gelu_tanh fused as a post-op; err oneDNN = its distance from nn's result in the same units (bound\n"
           "2.5 gamma_K: both accumulate in fp32, gelu' <= 1.13); no sgemm. bits: the sampled rows bitwise equal\n"
           "to the first thread count's (nn's kernel promises it, gemm_bf16.h: part of the verdict; oneDNN's does not).\n\n",
           GB_CHECK_ROWS);
    printf("Start-up (ms): oneDNN primitive descriptor + primitive creation (JIT), the one-off weight reorder\n"
           "into its blocked bf16 format, and nn_bf16_pack of the same weights.\n\n");
    printf("| shape | M | threads | oneDNN implementation | create | weight reorder | nn pack |\n|---|---|---|---|---|---|---|\n%s",
           start);
    free(start);
    dnnl_stream_destroy(g_str);
    dnnl_engine_destroy(g_eng);
    nn_bf16_scratch_free();
    return fail;
}
