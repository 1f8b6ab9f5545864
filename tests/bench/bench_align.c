/* bench_align.c: where a step of `dynmm align` spends its time (tests/bench/bench_align.sh).
 *
 *   mpirun -n NP bench_align STEPS G NNEG D_CF D_TEXT D_VISUAL D_AUDIO [ITEMS]
 *
 * Runs the stage's data-parallel step (stages/stage_align.c) on random features of the given widths
 * (0 = modality unused; presence rates as the synthetic generator's defaults: text 0.9, visual 0.8,
 * audio 0.6, cf always) with the stage's sizing: a global batch of G examples (one user, its
 * positive and NNEG negatives each) split evenly over the ranks, the key table's align.* defaults
 * otherwise (align_config_from over dm_cfg_init: align.dim, align.hidden, gate fusion, softmax rank
 * loss, modality dropout as configs/reference.cfg lists them). Each step is timed
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
#include "../unit/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_FWD, P_AGREE, P_GATHER, P_LOSS, P_RBANK, P_BWD, P_RGRAD, P_ADAM, P_STEP, P_N };
static const char *const pname[P_N] = {"fwd", "agree", "gather", "loss", "red_bank", "bwd", "red_grad", "adam", "step"};

/* Everything one run holds: the model at the stage's sizing, random features of every item (the
 * same on every rank: seeded), their presence, the user states, the step's batch buffers and the
 * per-step phase times t (steps + warm, P_N). */
typedef struct {
    par_ctx *ctx;
    int steps, warm, G, nn, C, Rmax;
    size_t ni;
    int dim_in[ALIGN_K];
    align_config ac;
    align_model m;
    align_acts a;
    float *x[ALIGN_K];  /* (ni, D_k) */
    uint8_t *pres;      /* (ni, ALIGN_K) */
    float *r;           /* (Rmax, C) */
    int64_t *items;     /* (max_batch) */
    uint8_t *bp;        /* (max_batch, ALIGN_K) */
    int32_t *exu, *exp_, *exn; /* (Rmax), (Rmax), (Rmax, nn) */
    float *dbank;       /* (max_bank, ALIGN_K, d) */
    double *t;          /* (steps + warm, P_N) */
    double bytes_sent;
} bench;

/* The aligner at the stage's sizing: a global batch of G examples split evenly over the ranks,
 * the key table's align.* defaults otherwise (align.negatives = NNEG). */
static int bench_config(bench *w)
{
    dm_cfg cfg;
    char neg[64];
    snprintf(neg, sizeof neg, "align.negatives=%d", w->nn);
    int rc = dm_cfg_init(&cfg);
    if (!rc) rc = dm_cfg_set(&cfg, neg);
    if (!rc) rc = align_config_from(&cfg, w->dim_in, w->C, &w->ac);
    dm_cfg_free(&cfg);
    size_t glo, ghi;
    dm_shard_even((size_t)w->G, w->ctx->size, 0, &glo, &ghi);
    w->Rmax = (int)(ghi - glo);
    w->ac.max_rank = w->Rmax;
    w->ac.max_users = w->Rmax;
    w->ac.max_batch = w->Rmax * (1 + w->nn);
    w->ac.max_bank = w->G * (1 + w->nn);
    if (!rc) rc = align_config_check(&w->ac);
    return par_agree(w->ctx, rc);
}

/* Features, presence (rates as the synthetic generator's defaults), user states, the model and the
 * step's buffers. Agreed. */
static int bench_setup(bench *w)
{
    static const double keep[ALIGN_K] = {1.0, 0.9, 0.8, 0.6};
    size_t ni = w->ni, C = (size_t)w->C, Rmax = (size_t)w->Rmax;
    w->pres = calloc(ni * ALIGN_K, 1);
    w->r = malloc(Rmax * C * sizeof *w->r);
    int rc = w->pres && w->r ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    dm_rng g;
    dm_rng_seed(&g, 12345);
    for (int k = 0; k < ALIGN_K && !rc; k++) {
        if (!w->dim_in[k]) continue;
        w->x[k] = malloc(ni * (size_t)w->dim_in[k] * sizeof(float));
        if (!w->x[k]) {
            rc = DM_ERR(DM_ENOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < ni * (size_t)w->dim_in[k]; i++) w->x[k][i] = (float)dm_rng_normal(&g);
        for (size_t i = 0; i < ni; i++) w->pres[i * ALIGN_K + (size_t)k] = dm_rng_uniform(&g) < keep[k];
    }
    for (size_t i = 0; !rc && i < Rmax * C; i++) w->r[i] = (float)(0.5 * dm_rng_normal(&g));
    if (!rc) rc = align_init(&w->m, &w->ac);
    if (!rc) rc = align_acts_init(&w->a, &w->ac);
    DM_CALL(par_agree(w->ctx, rc));
    align_init_weights(&w->m, 7);
    size_t B_max = (size_t)w->ac.max_batch;
    w->items = malloc(B_max * sizeof *w->items);
    w->bp = malloc(B_max * ALIGN_K);
    w->exu = malloc(Rmax * sizeof *w->exu);
    w->exp_ = malloc(Rmax * sizeof *w->exp_);
    w->exn = malloc(Rmax * (size_t)w->nn * sizeof *w->exn + 4);
    w->dbank = malloc((size_t)w->ac.max_bank * ALIGN_K * (size_t)w->ac.d * sizeof *w->dbank);
    w->t = calloc((size_t)(w->steps + w->warm) * P_N, sizeof *w->t);
    if (!w->items || !w->bp || !w->exu || !w->exp_ || !w->exn || !w->dbank || !w->t) rc = DM_ERR(DM_ENOMEM, "out of memory");
    return par_agree(w->ctx, rc);
}

/* Step s's batch of this rank's R examples from global position lo: the stage's layout, items
 * drawn at random. */
static align_batch bench_batch(bench *w, int s, size_t lo, int R)
{
    const int nn = w->nn, B = R * (1 + nn);
    for (int e = 0; e < R; e++) {
        dm_rng rn;
        dm_rng_seed(&rn, dm_rng_key(99, (uint64_t)s, lo + (size_t)e));
        for (int j = 0; j <= nn; j++) w->items[e * (1 + nn) + j] = (int64_t)dm_rng_below(&rn, w->ni);
        w->exu[e] = e;
        w->exp_[e] = e * (1 + nn);
        for (int j = 0; j < nn; j++) w->exn[e * nn + j] = e * (1 + nn) + 1 + j;
    }
    for (int b = 0; b < B; b++) memcpy(w->bp + (size_t)b * ALIGN_K, w->pres + (size_t)w->items[b] * ALIGN_K, ALIGN_K);
    align_batch bt;
    memset(&bt, 0, sizeof bt);
    bt.B = B;
    for (int k = 0; k < ALIGN_K; k++) bt.x[k] = w->x[k];
    bt.xrow = w->items;
    bt.present = w->bp;
    bt.item = w->items;
    bt.seed = 5;
    bt.step = (uint64_t)s;
    bt.train = 1;
    bt.U = R;
    bt.r = w->r;
    bt.R = R;
    bt.ex_user = w->exu;
    bt.ex_pos = w->exp_;
    bt.ex_neg = w->exn;
    bt.norm.rank = (double)w->G;
    return bt;
}

/* the time since *t0 into ts[p]; *t0 moves on */
static void lap(double *ts, int p, double *t0)
{
    double t1 = dm_wtime();
    ts[p] += t1 - *t0;
    *t0 = t1;
}

/* One data-parallel step s in the stage's calling sequence, each phase timed into its row of w->t.
 * Agreed. */
static int bench_step(bench *w, int s)
{
    par_ctx *ctx = w->ctx;
    align_model *m = &w->m;
    const size_t dd = (size_t)w->ac.d;
    double *ts = w->t + (size_t)s * P_N;
    size_t lo, hi;
    dm_shard_even((size_t)w->G, ctx->size, ctx->rank, &lo, &hi);
    int R = (int)(hi - lo), B = R * (1 + w->nn);
    align_batch bt = bench_batch(w, s, lo, R);
    double t0 = dm_wtime(), ts0 = t0;
    align_zero_grad(m);
    int rc = align_forward(m, &w->a, &bt);
    lap(ts, P_FWD, &t0);
    rc = par_agree(ctx, rc);
    lap(ts, P_AGREE, &t0);
    if (rc) return rc;
    void *zall = NULL, *mall = NULL, *iall = NULL;
    size_t *zc = NULL, *mc = NULL, *ic = NULL;
    rc = par_allgatherv(ctx, w->a.z, (size_t)B * ALIGN_K * dd * sizeof(float), &zall, &zc);
    if (!rc) rc = par_allgatherv(ctx, w->a.mask, (size_t)B * ALIGN_K, &mall, &mc);
    if (!rc) rc = par_allgatherv(ctx, w->items, (size_t)B * sizeof(int64_t), &iall, &ic);
    int64_t lo_row = 0, Gtot = 0;
    if (!rc) rc = par_exscan_i64(ctx, B, &lo_row, &Gtot);
    lap(ts, P_GATHER, &t0);
    align_losses L;
    memset(&L, 0, sizeof L);
    if (!rc) {
        align_bank bank = {(int)Gtot, (int)lo_row, zall, mall, iall, NULL};
        rc = align_loss(m, &w->a, &bt, &bank, w->dbank, &L);
    }
    lap(ts, P_LOSS, &t0);
    rc = par_agree(ctx, rc);
    lap(ts, P_AGREE, &t0);
    if (!rc) rc = par_allreduce_sum_f32(ctx, w->dbank, (size_t)Gtot * ALIGN_K * dd);
    lap(ts, P_RBANK, &t0);
    if (!rc) rc = align_backward(m, &w->a, &bt, w->dbank + (size_t)lo_row * ALIGN_K * dd);
    lap(ts, P_BWD, &t0);
    rc = par_agree(ctx, rc);
    lap(ts, P_AGREE, &t0);
    if (!rc) rc = par_allreduce_sum_f32(ctx, m->grads_mem, m->nparams);
    lap(ts, P_RGRAD, &t0);
    if (!rc) align_adam_step(m);
    lap(ts, P_ADAM, &t0);
    ts[P_STEP] = t0 - ts0;
    if (s == 0)
        w->bytes_sent = (double)B * ALIGN_K * ((double)dd * 4 + 1) + (double)B * 8 +
                        4.0 * ((double)Gtot * ALIGN_K * (double)dd + (double)m->nparams);
    void *gathered[] = {zall, mall, iall, zc, mc, ic};
    for (size_t k = 0; k < sizeof gathered / sizeof *gathered; k++) free(gathered[k]);
    return rc;
}

/* Per phase the median over the measured steps of the mean over ranks, the collectives' share and
 * the peak RSS; rank 0 prints the line. */
static int bench_report(bench *w)
{
    par_ctx *ctx = w->ctx;
    const int steps = w->steps, warm = w->warm;
    DM_CALL(par_allreduce_sum_f64(ctx, w->t, (size_t)(steps + warm) * P_N));
    double med[P_N], *col = malloc((size_t)steps * sizeof *col);
    if (!col) return DM_ERR(DM_ENOMEM, "out of memory");
    for (int p = 0; p < P_N; p++) {
        for (int s = 0; s < steps; s++) col[s] = w->t[(size_t)(s + warm) * P_N + p] / ctx->size;
        med[p] = tl_median(col, steps);
    }
    /* the collectives' share: per step, (agree + gather + allreduces) / step, median over steps */
    for (int s = 0; s < steps; s++) {
        const double *ts = w->t + (size_t)(s + warm) * P_N;
        col[s] = (ts[P_AGREE] + ts[P_GATHER] + ts[P_RBANK] + ts[P_RGRAD]) / ts[P_STEP];
    }
    double share = tl_median(col, steps);
    free(col);
    size_t rss_max, rss_sum;
    int rss_rank;
    par_peak_rss(ctx, &rss_max, &rss_rank, &rss_sum);
    if (ctx->rank == 0) {
        printf("ranks=%d threads=%d G=%d nneg=%d params=%zu", ctx->size, ctx->threads, w->G, w->nn, w->m.nparams);
        for (int p = 0; p < P_N; p++) printf(" %s_ms=%.3f", pname[p], 1e3 * med[p]);
        printf(" steps_per_s=%.2f comm_share=%.4f bytes_per_rank=%.0f peak_rss_mib=%.1f\n", 1.0 / med[P_STEP], share,
               w->bytes_sent, (double)rss_max / 1048576.0);
        fflush(stdout);
    }
    return DM_OK;
}

static void bench_free(bench *w)
{
    void *own[] = {w->pres, w->r, w->items, w->bp, w->exu, w->exp_, w->exn, w->dbank, w->t};
    for (size_t k = 0; k < sizeof own / sizeof *own; k++) free(own[k]);
    for (int k = 0; k < ALIGN_K; k++) free(w->x[k]);
    align_acts_free(&w->a);
    align_free(&w->m);
}

static int run(par_ctx *ctx, int argc, char **argv)
{
    if (argc < 8) {
        if (ctx->rank == 0) fprintf(stderr, "usage: bench_align STEPS G NNEG D_CF D_TEXT D_VISUAL D_AUDIO [ITEMS]\n");
        return DM_EINPUT;
    }
    bench w;
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    w.steps = atoi(argv[1]), w.G = atoi(argv[2]), w.nn = atoi(argv[3]), w.warm = 3;
    for (int k = 0; k < ALIGN_K; k++) w.dim_in[k] = atoi(argv[4 + k]);
    w.ni = argc > 8 ? (size_t)atol(argv[8]) : 12101;
    w.C = w.dim_in[ALIGN_CF] > 0 ? w.dim_in[ALIGN_CF] : 50;
    int rc = bench_config(&w);
    if (!rc) rc = bench_setup(&w);
    for (int s = 0; s < w.steps + w.warm && !rc; s++) rc = bench_step(&w, s);
    rc = par_agree(ctx, rc);
    if (!rc) rc = bench_report(&w);
    bench_free(&w);
    return rc;
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
