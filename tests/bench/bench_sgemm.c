/* bench_sgemm.c: the machine's single-precision GEMM rate with OpenBLAS, the peak other benchmarks
 * report their achieved GFLOP/s against. Usage: bench_sgemm [threads] [n] [reps]; prints the
 * median GFLOP/s of `reps` square n x n x n products. */
#include "../../src/core/timer.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

void openblas_set_num_threads(int);

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int th = argc > 1 ? atoi(argv[1]) : 1, n = argc > 2 ? atoi(argv[2]) : 2048, reps = argc > 3 ? atoi(argv[3]) : 5;
    openblas_set_num_threads(th);
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b), *c = malloc((size_t)n * n * sizeof *c);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double g[64];
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
        double t = dm_wtime();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        g[r] = 2.0 * n * (double)n * n / (dm_wtime() - t) / 1e9;
    }
    qsort(g, (size_t)reps, sizeof *g, cmp);
    printf("%.2f\n", g[reps / 2]);
    free(a);
    free(b);
    free(c);
    return 0;
}
