/* bench_pq.c: full-catalogue scoring by asymmetric distances over product-quantised codes
 * (src/pq/pq.h) against exact float32 scoring (OpenBLAS), side by side in one process, one thread.
 *
 * Usage: bench_pq [n_items] [d] [m] [batch] [reps]
 * For a batch of B user states: exact = cblas_sgemm (B, n) = (B, d) x (n, d)^T (cblas_sgemv when
 * B = 1), as eval's dot-product scorer; ADC = B lookup tables (pq_adc_lut) + pq_adc_scores over the
 * n x m codes; ADC+rerank = ADC, then per user the top 100 outside no history (dm_top_k_f32) scored
 * exactly (pq_rerank). Timings interleaved, medians of `reps`; the speed of a code lookup does not
 * depend on the codebook's quality, so codebook and codes are random (k = 256). Correctness
 * verdict: ADC scores within gamma_(ds+m) sum |q_j x^_j| of the decoded latents' dot products.
 * Prints one line of key=value pairs. */
#include "../../src/core/rng.h"
#include "../../src/core/timer.h"
#include "../../src/pq/pq.h"
#include "../unit/testlib.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atoll(argv[1]) : 1000000, D = argc > 2 ? (size_t)atoll(argv[2]) : 64;
    int M = argc > 3 ? atoi(argv[3]) : 16, reps = argc > 5 ? atoi(argv[5]) : 5;
    size_t B = argc > 4 ? (size_t)atoll(argv[4]) : 64;
    const int K = 256;
    const size_t R = 100;
    if (reps > 64) reps = 64;
    openblas_set_num_threads(1);
    omp_set_num_threads(1);
    pq_codebook cb;
    if (pq_init(&cb, D, M, K, "bench_pq")) tl_die("pq_init");
    dm_rng r;
    dm_rng_seed(&r, 1);
    tl_randn(&r, cb.c, (size_t)K * D, 1.0);
    uint8_t *codes = malloc(n * (size_t)M);
    for (size_t q = 0; q < n * (size_t)M; q++) codes[q] = (uint8_t)(dm_rng_u64(&r) >> 56);
    float *e = malloc(n * D * sizeof *e), *u = tl_randn_new(&r, B * D, 1.0);
    pq_decode(&cb, codes, n, e); /* the float table: the decoded latents plus noise */
    for (size_t q = 0; q < n * D; q++) e[q] += (float)(0.1 * ((double)(dm_rng_u64(&r) >> 11) / 9007199254740992.0 - 0.5));
    float *se = malloc(B * n * sizeof *se), *sa = malloc(B * n * sizeof *sa), *lut = malloc(B * (size_t)M * K * sizeof *lut);
    uint8_t *mark = calloc(n, 1);
    int32_t *top = malloc(R * sizeof *top);
    if (!codes || !e || !se || !sa || !lut || !mark || !top) tl_die("out of memory");
    double te[64], ta[64], tr[64];
    for (int rep = 0; rep < reps; rep++) {
        double t0 = dm_wtime();
        if (B == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)D, 1.0f, e, (int)D, u, 1, 0.0f, se, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)n, (int)D, 1.0f, u, (int)D, e, (int)D, 0.0f, se, (int)n);
        double t1 = dm_wtime();
        for (size_t b = 0; b < B; b++) pq_adc_lut(&cb, u + b * D, lut + b * (size_t)M * K);
        pq_adc_scores(lut, B, codes, n, M, K, sa);
        double t2 = dm_wtime();
        for (size_t b = 0; b < B; b++) pq_rerank(sa + b * n, n, D, u + b * D, e, mark, R, top);
        double t3 = dm_wtime();
        te[rep] = t1 - t0;
        ta[rep] = t2 - t1;
        tr[rep] = t3 - t1;
    }
    /* verdict: the last repetition's ADC scores (recomputed: the re-ranking changed them) */
    pq_adc_scores(lut, B, codes, n, M, K, sa);
    const size_t ds = cb.ds, check = n < 2000 ? n : 2000;
    const double g = (double)(ds + (size_t)M) * ldexp(1.0, -24) / (1 - (double)(ds + (size_t)M) * ldexp(1.0, -24));
    float *xh = malloc(D * sizeof *xh);
    double worst = 0;
    for (size_t i = 0; i < check; i++) {
        size_t it = i * (n / check);
        pq_decode(&cb, codes + it * (size_t)M, 1, xh);
        for (size_t b = 0; b < B; b++) {
            double dot = 0, abs = 0;
            for (size_t j = 0; j < D; j++) {
                dot += (double)u[b * D + j] * xh[j];
                abs += fabs((double)u[b * D + j] * xh[j]);
            }
            worst = fmax(worst, fabs(sa[b * n + it] - dot) / (g * abs));
        }
    }
    double me = tl_median(te, reps), ma = tl_median(ta, reps), mr = tl_median(tr, reps);
    printf("n=%zu d=%zu m=%d k=%d batch=%zu reps=%d exact_ms=%.3f adc_ms=%.3f adc_rerank100_ms=%.3f speedup=%.2f speedup_rerank=%.2f "
           "bytes_floats=%zu bytes_codes=%zu adc_bound_used=%.3f verdict=%s\n",
           n, D, M, K, B, reps, 1e3 * me, 1e3 * ma, 1e3 * mr, me / ma, me / mr, n * D * sizeof(float), n * (size_t)M, worst,
           worst <= 1.0 ? "PASSED" : "FAILED");
    TL_FREE(codes, e, u, se, sa, lut, mark, top, xh);
    pq_free(&cb);
    return worst <= 1.0 ? 0 : 1;
}
