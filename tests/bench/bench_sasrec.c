/* bench_sasrec.c: training throughput of the C SASRec (src/sasrec/) on synthetic batches, the C half
 * of tests/bench/bench_sasrec.sh (the PyTorch half is bench_sasrec.py, timed on the same batches).
 *
 *   bench_sasrec gen DIR [--full]   write K batches of (seq, pos, neg) (K, B, T) int32 to DIR:
 *                                   Amazon-Beauty-like data, 12101 items with Zipf popularity,
 *                                   5-core users (n = 5 + geometric, mean 8.9 interactions), the
 *                                   reference sampler's layout (train = all but the last two items,
 *                                   inputs train[:-1] left-padded to T, targets train[1:], one
 *                                   uniform negative outside the user's items). --full: every
 *                                   sequence fills all T positions (no padding).
 *   bench_sasrec run DIR THREADS STEPS WARMUP
 *                                   times STEPS full training steps (zero grad, forward, BCE loss,
 *                                   backward, Adam) after WARMUP untimed ones, cycling over the
 *                                   batches; prints "sasrec_c threads=.. seq_per_s=.. ms_per_step=..".
 * Hyperparameters are the key table's defaults, which are the reference's: d = 50, maxlen = 50,
 * 2 blocks, 1 head, dropout 0.5; batch 128.
 */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/timer.h"
#include "../../src/sasrec/sasrec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_ITEMS = 12101, B = 128, T = 50, K = 16 };

static int write_all(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "error: cannot write '%s'\n", path);
        if (f) fclose(f);
        return 1;
    }
    fclose(f);
    return 0;
}

static int read_all(const char *dir, const char *name, void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f || fread(p, 1, n, f) != n) {
        fprintf(stderr, "error: cannot read %zu bytes from '%s'\n", n, path);
        if (f) fclose(f);
        return 1;
    }
    fclose(f);
    return 0;
}

static int gen(const char *dir, int full)
{
    size_t n = (size_t)K * B * T;
    int32_t *seq = calloc(n, 4), *pos = calloc(n, 4), *neg = calloc(n, 4);
    double *cdf = malloc(N_ITEMS * sizeof(double));
    int32_t items[T + 3];
    dm_rng r;
    dm_rng_seed(&r, 2018);
    double z = 0; /* Zipf(0.8) popularity over the catalogue */
    for (int i = 0; i < N_ITEMS; i++) cdf[i] = (z += pow(i + 1.0, -0.8));
    long real = 0;
    for (size_t s = 0; s < (size_t)K * B; s++) {
        int len = 5;
        while (dm_rng_uniform(&r) > 1.0 / 4.9) len++; /* mean 8.9 */
        if (full || len > T + 3) len = T + 3;
        for (int i = 0; i < len; i++) {
            double u = dm_rng_uniform(&r) * z;
            int lo = 0, hi = N_ITEMS - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            items[i] = lo + 1;
        }
        int ntrain = len - 2, nin = ntrain - 1; /* inputs train[:-1], targets train[1:] */
        if (nin > T) nin = T;
        for (int k = 0; k < nin; k++) {
            size_t at = s * T + (size_t)(T - nin + k);
            seq[at] = items[ntrain - 1 - nin + k];
            pos[at] = items[ntrain - nin + k];
            int ng, clash;
            do { /* a negative the user never took */
                ng = 1 + (int)dm_rng_below(&r, N_ITEMS);
                clash = 0;
                for (int i = 0; i < len; i++) clash |= items[i] == ng;
            } while (clash);
            neg[at] = ng;
        }
        real += nin;
    }
    printf("generated %d batches of %d x %d, %d items: %.1f%% of positions are real (mean input "
           "length %.2f)\n",
           K, B, T, N_ITEMS, 100.0 * real / (double)n, real / (double)(K * B));
    int rc = write_all(dir, "seq.i32", seq, n * 4) || write_all(dir, "pos.i32", pos, n * 4) ||
             write_all(dir, "neg.i32", neg, n * 4);
    free(seq);
    free(pos);
    free(neg);
    free(cdf);
    return rc;
}

static int run(const char *dir, int threads, int steps, int warmup)
{
    size_t n = (size_t)K * B * T;
    int32_t *seq = malloc(n * 4), *pos = malloc(n * 4), *neg = malloc(n * 4);
    int64_t gidx[B];
    if (read_all(dir, "seq.i32", seq, n * 4) || read_all(dir, "pos.i32", pos, n * 4) ||
        read_all(dir, "neg.i32", neg, n * 4))
        return 1;
    sasrec_set_threads(threads);
    /* the key table's defaults (d = 50, 2 blocks, 1 head, dropout 0.5, BCE) at the batches' T */
    sasrec_config c;
    dm_cfg cfg;
    char maxlen[64];
    snprintf(maxlen, sizeof maxlen, "sasrec.maxlen=%d", T);
    int rc = dm_cfg_init(&cfg);
    if (!rc) rc = dm_cfg_set(&cfg, maxlen);
    if (!rc) rc = sasrec_config_from(&cfg, N_ITEMS, B, &c);
    if (cfg.v) dm_cfg_free(&cfg);
    sasrec m;
    sasrec_acts a;
    if (rc || sasrec_init(&m, &c) != DM_OK || sasrec_acts_init(&a, &c) != DM_OK) {
        dm_error_print("bench_sasrec");
        return 1;
    }
    sasrec_init_weights(&m, 1);
    double t0 = 0, loss = 0, lsum = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = dm_wtime();
        int k = s % K;
        for (int i = 0; i < B; i++) gidx[i] = (int64_t)k * B + i;
        sasrec_batch b = {.B = B,
                          .seq = seq + (size_t)k * B * T,
                          .pos = pos + (size_t)k * B * T,
                          .neg = neg + (size_t)k * B * T,
                          .gidx = gidx,
                          .seed = 7,
                          .step = (uint64_t)s,
                          .train = 1};
        sasrec_zero_grad(&m);
        if (sasrec_train_step(&m, &a, &b, &loss) != DM_OK) {
            dm_error_print("bench_sasrec");
            return 1;
        }
        sasrec_adam_step(&m);
        if (s >= warmup) lsum += loss;
    }
    double dt = dm_wtime() - t0;
    printf("sasrec_c threads=%d steps=%d seq_per_s=%.1f ms_per_step=%.3f mean_loss=%.4f\n", threads,
           steps, steps * (double)B / dt, 1e3 * dt / steps, lsum / steps);
    sasrec_free(&m);
    sasrec_acts_free(&a);
    free(seq);
    free(pos);
    free(neg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "gen"))
        return gen(argv[2], argc >= 4 && !strcmp(argv[3], "--full"));
    if (argc == 6 && !strcmp(argv[1], "run"))
        return run(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: bench_sasrec gen DIR [--full] | run DIR THREADS STEPS WARMUP\n");
    return 2;
}
