/* bench_align.c: where a step of `dynmm align` spends its time (tests/bench/bench_align.sh).
 *
 *   mpirun -n NP bench_align STEPS G NNEG D_CF D_TEXT D_VISUAL D_AUDIO [ITEMS]
 *
 * Runs the stage's data-parallel step (stages/stage_align.c) on random features of the given widths
 * (0 = modality unused; presence rates as the synthetic generator's defaults: text 0.9, visual 0.8,
 * audio 0.6, cf always) with the stage's sizing: a global batch of G examples (one user, its
 * positive and NNEG negatives each) split evenly over the ranks, the align.* defaults otherwise
 * (d 64, hidden 256, gate fusion, softmax rank loss, modality dropout 0.2). Each step is timed
 * phase by phase in the stage's calling sequence:
 *   fwd      align_zero_grad + align_forward
 *   agree    the three par_agree error-flag allreduces (they absorb the ranks' load imbalance)
 *   gather   allgatherv of z (B K d floats), mask and item ids, and the exscan of the row offsets
 *   loss     align_loss against the gathered bank
 *   red_bank allreduce of dL/dbank (G (1 + NNEG) K d floats)
 *   bwd      align_backward
 *   red_grad allreduce of the parameter gradient (one fused buffer)
 *   adam     align_adam_step
 * The first 3 steps warm up. Prints one line of key=value pairs on rank 0: per phase the median
 * over steps of the mean over ranks (ms), the median step, the collectives' share of it, the bytes
 * each rank sends per step and the peak RSS (max over ranks).
 */
#include "../../mpi/par.h"
#include "../../src/align/align.h"
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/shard.h"
#include "../../src/core/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_FWD, P_AGREE, P_GATHER, P_LOSS, P_RBANK, P_BWD, P_RGRAD, P_ADAM, P_STEP, P_N };
static const char *const pname[P_N] = {"fwd", "agree", "gather", "loss", "red_bank", "bwd", "red_grad", "adam", "step"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int run(par_ctx *ctx, int argc, char **argv)
{
    if (argc < 8) {
        if (ctx->rank == 0) fprintf(stderr, "usage: bench_align STEPS G NNEG D_CF D_TEXT D_VISUAL D_AUDIO [ITEMS]\n");
        return DM_EINPUT;
    }
    int steps = atoi(argv[1]), G = atoi(argv[2]), nn = atoi(argv[3]), warm = 3;
    int dim_in[ALIGN_K] = {atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7])};
    size_t ni = argc > 8 ? (size_t)atol(argv[8]) : 12101;
    int C = dim_in[ALIGN_CF] > 0 ? dim_in[ALIGN_CF] : 50;
    static const double keep[ALIGN_K] = {1.0, 0.9, 0.8, 0.6};

    align_config ac;
    align_config_default(&ac, dim_in, C);
    ac.n_neg = nn;
    size_t glo, ghi;
    dm_shard_even((size_t)G, ctx->size, 0, &glo, &ghi);
    int Rmax = (int)(ghi - glo);
    ac.max_rank = Rmax;
    ac.max_users = Rmax;
    ac.max_batch = Rmax * (1 + nn);
    ac.max_bank = G * (1 + nn);
    int rc = align_config_check(&ac);
    DM_CALL(par_agree(ctx, rc));

    /* features of every item (the same on every rank: seeded), presence, user states */
    float *x[ALIGN_K] = {NULL, NULL, NULL, NULL};
    uint8_t *pres = calloc(ni * ALIGN_K, 1);
    float *r = malloc((size_t)Rmax * (size_t)C * sizeof *r);
    rc = pres && r ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    dm_rng g;
    dm_rng_seed(&g, 12345);
    for (int k = 0; k < ALIGN_K && !rc; k++) {
        if (!dim_in[k]) continue;
        x[k] = malloc(ni * (size_t)dim_in[k] * sizeof(float));
        if (!x[k]) {
            rc = DM_ERR(DM_ENOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < ni * (size_t)dim_in[k]; i++) x[k][i] = (float)dm_rng_normal(&g);
        for (size_t i = 0; i < ni; i++) pres[i * ALIGN_K + (size_t)k] = dm_rng_uniform(&g) < keep[k];
    }
    for (size_t i = 0; !rc && i < (size_t)Rmax * (size_t)C; i++) r[i] = (float)(0.5 * dm_rng_normal(&g));

    align_model m;
    align_acts a;
    memset(&m, 0, sizeof m);
    memset(&a, 0, sizeof a);
    if (!rc) rc = align_init(&m, &ac);
    if (!rc) rc = align_acts_init(&a, &ac);
    DM_CALL(par_agree(ctx, rc));
    align_init_weights(&m, 7);

    size_t B_max = (size_t)ac.max_batch;
    int64_t *items = malloc(B_max * sizeof *items);
    uint8_t *bp = malloc(B_max * ALIGN_K);
    int32_t *exu = malloc((size_t)Rmax * sizeof *exu), *exp_ = malloc((size_t)Rmax * sizeof *exp_),
            *exn = malloc((size_t)Rmax * (size_t)nn * sizeof *exn + 4);
    float *dbank = malloc((size_t)ac.max_bank * ALIGN_K * (size_t)ac.d * sizeof *dbank);
    double *t = calloc((size_t)(steps + warm) * P_N, sizeof *t);
    if (!items || !bp || !exu || !exp_ || !exn || !dbank || !t) rc = DM_ERR(DM_ENOMEM, "out of memory");
    DM_CALL(par_agree(ctx, rc));

    size_t lo, hi;
    dm_shard_even((size_t)G, ctx->size, ctx->rank, &lo, &hi);
    int R = (int)(hi - lo), B = R * (1 + nn);
    double bytes_sent = 0;
    for (int s = 0; s < steps + warm && !rc; s++) {
        double *ts = t + (size_t)s * P_N;
        /* the batch: the stage's layout, items drawn at random */
        for (int e = 0; e < R; e++) {
            dm_rng rn;
            dm_rng_seed(&rn, dm_rng_key(99, (uint64_t)s, lo + (size_t)e));
            for (int j = 0; j <= nn; j++) items[e * (1 + nn) + j] = (int64_t)dm_rng_below(&rn, ni);
            exu[e] = e;
            exp_[e] = e * (1 + nn);
            for (int j = 0; j < nn; j++) exn[e * nn + j] = e * (1 + nn) + 1 + j;
        }
        for (int b = 0; b < B; b++) memcpy(bp + (size_t)b * ALIGN_K, pres + (size_t)items[b] * ALIGN_K, ALIGN_K);
        align_batch bt;
        memset(&bt, 0, sizeof bt);
        bt.B = B;
        for (int k = 0; k < ALIGN_K; k++) bt.x[k] = x[k];
        bt.xrow = items;
        bt.present = bp;
        bt.item = items;
        bt.seed = 5;
        bt.step = (uint64_t)s;
        bt.train = 1;
        bt.U = R;
        bt.r = r;
        bt.R = R;
        bt.ex_user = exu;
        bt.ex_pos = exp_;
        bt.ex_neg = exn;
        bt.norm.rank = (double)G;

        double t0 = dm_wtime(), t1, ts0 = t0;
        align_zero_grad(&m);
        rc = align_forward(&m, &a, &bt);
        t1 = dm_wtime();
        ts[P_FWD] += t1 - t0;
        t0 = t1;
        rc = par_agree(ctx, rc);
        t1 = dm_wtime();
        ts[P_AGREE] += t1 - t0;
        t0 = t1;
        if (rc) break;
        void *zall = NULL, *mall = NULL, *iall = NULL;
        size_t *zc = NULL, *mc = NULL, *ic = NULL;
        rc = par_allgatherv(ctx, a.z, (size_t)B * ALIGN_K * (size_t)ac.d * sizeof(float), &zall, &zc);
        if (!rc) rc = par_allgatherv(ctx, a.mask, (size_t)B * ALIGN_K, &mall, &mc);
        if (!rc) rc = par_allgatherv(ctx, items, (size_t)B * sizeof(int64_t), &iall, &ic);
        int64_t lo_row = 0, Gtot = 0;
        if (!rc) rc = par_exscan_i64(ctx, B, &lo_row, &Gtot);
        t1 = dm_wtime();
        ts[P_GATHER] += t1 - t0;
        t0 = t1;
        align_losses L;
        memset(&L, 0, sizeof L);
        if (!rc) {
            align_bank bank = {(int)Gtot, (int)lo_row, zall, mall, iall, NULL};
            rc = align_loss(&m, &a, &bt, &bank, dbank, &L);
        }
        t1 = dm_wtime();
        ts[P_LOSS] += t1 - t0;
        t0 = t1;
        rc = par_agree(ctx, rc);
        t1 = dm_wtime();
        ts[P_AGREE] += t1 - t0;
        t0 = t1;
        if (!rc) rc = par_allreduce_sum_f32(ctx, dbank, (size_t)Gtot * ALIGN_K * (size_t)ac.d);
        t1 = dm_wtime();
        ts[P_RBANK] += t1 - t0;
        t0 = t1;
        if (!rc) rc = align_backward(&m, &a, &bt, dbank + (size_t)lo_row * ALIGN_K * (size_t)ac.d);
        t1 = dm_wtime();
        ts[P_BWD] += t1 - t0;
        t0 = t1;
        rc = par_agree(ctx, rc);
        t1 = dm_wtime();
        ts[P_AGREE] += t1 - t0;
        t0 = t1;
        if (!rc) rc = par_allreduce_sum_f32(ctx, m.grads_mem, m.nparams);
        t1 = dm_wtime();
        ts[P_RGRAD] += t1 - t0;
        t0 = t1;
        if (!rc) align_adam_step(&m);
        t1 = dm_wtime();
        ts[P_ADAM] += t1 - t0;
        ts[P_STEP] = t1 - ts0;
        if (s == 0)
            bytes_sent = (double)B * ALIGN_K * ((double)ac.d * 4 + 1) + (double)B * 8 +
                         4.0 * ((double)Gtot * ALIGN_K * ac.d + (double)m.nparams);
        free(zall);
        free(mall);
        free(iall);
        free(zc);
        free(mc);
        free(ic);
    }
    DM_CALL(par_agree(ctx, rc));
    /* per step, the mean over ranks of each phase; then the median over steps */
    DM_CALL(par_allreduce_sum_f64(ctx, t, (size_t)(steps + warm) * P_N));
    double med[P_N], *col = malloc((size_t)steps * sizeof *col);
    for (int p = 0; p < P_N; p++) {
        for (int s = 0; s < steps; s++) col[s] = t[(size_t)(s + warm) * P_N + p] / ctx->size;
        med[p] = median(col, steps);
    }
    /* the collectives' share: per step, (agree + gather + allreduces) / step, median over steps */
    for (int s = 0; s < steps; s++) {
        const double *ts = t + (size_t)(s + warm) * P_N;
        col[s] = (ts[P_AGREE] + ts[P_GATHER] + ts[P_RBANK] + ts[P_RGRAD]) / ts[P_STEP];
    }
    double share = median(col, steps);
    size_t rss_max, rss_sum;
    int rss_rank;
    par_peak_rss(ctx, &rss_max, &rss_rank, &rss_sum);
    if (ctx->rank == 0) {
        printf("ranks=%d threads=%d G=%d nneg=%d params=%zu", ctx->size, ctx->threads, G, nn, m.nparams);
        for (int p = 0; p < P_N; p++) printf(" %s_ms=%.3f", pname[p], 1e3 * med[p]);
        printf(" steps_per_s=%.2f comm_share=%.4f bytes_per_rank=%.0f peak_rss_mib=%.1f\n", 1.0 / med[P_STEP], share,
               bytes_sent, (double)rss_max / 1048576.0);
        fflush(stdout);
    }
    free(col);
    free(t);
    free(items);
    free(bp);
    free(exu);
    free(exp_);
    free(exn);
    free(dbank);
    free(pres);
    free(r);
    for (int k = 0; k < ALIGN_K; k++) free(x[k]);
    align_acts_free(&a);
    align_free(&m);
    return DM_OK;
}

int main(int argc, char **argv)
{
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    int rc = run(&ctx, argc, argv);
    if (rc && ctx.rank == 0) dm_error_print("bench_align");
    par_finalize(&ctx);
    return rc ? 1 : 0;
}
