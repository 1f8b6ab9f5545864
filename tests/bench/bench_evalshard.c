/* bench_evalshard.c: full-ranking evaluation of a dot-product model with the item table on every
 * rank (model_load + ev_score_users, the unsharded path) or sharded over the ranks (ev_shard_load +
 * ev_score_sharded: stages/evalshard.h), on a large synthetic catalogue (tests/bench/bench_evalshard.sh).
 *
 *   bench_evalshard write PATH N_ITEMS N_USERS C     writes a latents file (one rank)
 *   bench_evalshard off|on PATH N_ITEMS N_USERS      scores the test split of every user
 *
 * The file holds SASRec's datasets (/sasrec/e_cf (N_ITEMS, C), /sasrec/state_valid and _test
 * (N_USERS, C), N(0, 1) entries), so both paths go through the registry's loaders. The dataset is
 * made in memory the same way on every rank: user u has 8 interactions of items drawn uniformly
 * (seeded by u), the 7th valid and the 8th the test target. One thread per rank. Prints one line:
 *   mode ranks load_s score_s peak_mib_rank hash ndcg10
 * peak_mib_rank is the largest peak RSS over the ranks; hash a sum over users of a hash of their
 * rows' bits (independent of the rank count: equal hashes = identical rows).
 */
#include "../../mpi/h5io.h"
#include "../../mpi/par.h"
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/shard.h"
#include "../../src/core/timer.h"
#include "../../stages/evalshard.h"
#include "../unit/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LEN = 8 };

static int write_file(par_ctx *ctx, const char *path, size_t n, size_t U, size_t C)
{
    h5file f;
    dm_rng r;
    dm_rng_seed(&r, 7);
    int rc = h5_create(ctx, path, 0, 65536, &f);
    float *x = malloc((n > U ? n : U) * C * sizeof *x);
    const char *nm[3] = {"/sasrec/e_cf", "/sasrec/state_valid", "/sasrec/state_test"};
    for (int k = 0; k < 3 && !rc; k++) {
        size_t rows = k ? U : n;
        tl_randn(&r, x, rows * C, 1.0);
        rc = h5_write_all(&f, nm[k], H5_F32, rows, C, x);
    }
    free(x);
    return h5_finish(&f, rc);
}

int main(int argc, char **argv)
{
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    if (argc < 5) {
        if (!ctx.rank) fprintf(stderr, "usage: bench_evalshard write|off|on PATH N_ITEMS N_USERS [C]\n");
        par_finalize(&ctx);
        return 2;
    }
    par_set_threads(&ctx, 1);
    const char *mode = argv[1], *path = argv[2];
    size_t n = strtoull(argv[3], NULL, 10), U = strtoull(argv[4], NULL, 10);
    int rc = DM_OK;
    if (!strcmp(mode, "write")) {
        rc = write_file(&ctx, path, n, U, argc > 5 ? strtoull(argv[5], NULL, 10) : 64);
        if (rc) dm_error_print("bench_evalshard");
        par_finalize(&ctx);
        return rc ? 1 : 0;
    }
    /* the dataset */
    int64_t *off = malloc((U + 1) * sizeof *off);
    int32_t *item = malloc(U * LEN * sizeof *item);
    int8_t *role = malloc(U * LEN);
    for (size_t u = 0; u <= U; u++) off[u] = (int64_t)(u * LEN);
    for (size_t u = 0; u < U; u++) {
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(11, u, 0));
        for (int k = 0; k < LEN; k++) {
            item[u * LEN + (size_t)k] = (int32_t)dm_rng_below(&r, n);
            role[u * LEN + (size_t)k] = k == LEN - 1 ? DM_TEST : k == LEN - 2 ? DM_VALID : DM_TRAIN;
        }
    }
    dm_dataset d = tl_dataset_view((int)U, (int)n, off, item);
    ev_split s = {&d, role, DM_TEST, NULL};
    int64_t ks[1] = {10};
    metrics_spec spec;
    metrics_spec_init(&spec, ks, 1, METRICS_TIES_EXPECTED);
    size_t lo, hi;
    dm_shard_even(U, ctx.size, ctx.rank, &lo, &hi);
    double *rows = malloc((hi - lo + 1) * spec.ncols * sizeof *rows);
    const model_def *md = model_find("sasrec");
    int sharded = !strcmp(mode, "on");
    model_loaded m;
    memset(&m, 0, sizeof m);
    ev_shard_latents sl;
    memset(&sl, 0, sizeof sl);
    par_barrier(&ctx);
    double t0 = dm_wtime();
    rc = sharded ? ev_shard_load(&ctx, md, path, &sl) : model_load(&ctx, NULL, &d, md, path, &m);
    par_barrier(&ctx);
    double t1 = dm_wtime();
    if (!rc) rc = sharded ? ev_score_sharded(&ctx, &s, &spec, "full", &sl, lo, hi, 512, rows)
                          : par_agree(&ctx, ev_score_users(&s, &spec, "full", m.score, m.state, lo, hi, 512, rows));
    par_barrier(&ctx);
    double t2 = dm_wtime();
    /* an order-independent hash of the rows' bits, and the mean NDCG@10 */
    int64_t h[1] = {0};
    double mean[8];
    int64_t cnt = 0;
    for (size_t u = lo; !rc && u < hi; u++) {
        uint64_t x = 1469598103934665603ull ^ (uint64_t)u;
        const unsigned char *p = (const unsigned char *)(rows + (u - lo) * spec.ncols);
        for (size_t b = 0; b < spec.ncols * sizeof *rows; b++) x = (x ^ p[b]) * 1099511628211ull;
        h[0] = (int64_t)((uint64_t)h[0] + x);
    }
    if (!rc) rc = par_allreduce_sum_i64(&ctx, h, 1);
    if (!rc) rc = ev_mean(&ctx, &spec, rows, hi - lo, mean, &cnt);
    size_t peak, sum;
    int pr;
    par_peak_rss(&ctx, &peak, &pr, &sum);
    if (rc) dm_error_print("bench_evalshard");
    else if (!ctx.rank)
        printf("%s %d %.3f %.3f %.1f %016llx %.6f\n", mode, ctx.size, t1 - t0, t2 - t1, (double)peak / 1048576.0, (unsigned long long)h[0],
               mean[metrics_col(&spec, METRICS_NDCG, 0)]);
    if (sharded) ev_shard_free(&sl);
    else model_unload(&m);
    free(rows);
    free(off);
    free(item);
    free(role);
    metrics_spec_free(&spec);
    par_finalize(&ctx);
    return rc ? 1 : 0;
}
