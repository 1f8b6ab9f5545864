/* bench_stream.c: the inference overhead of the online adapter's dynamic latents over the base
 * latents (tests/bench/bench_stream.sh), measured side by side in one process.
 *
 *   bench_stream N_ITEMS N_USERS BATCH THREADS REPS [D_CF D HIDDEN DS_ITEM DS_USER]
 *
 * One window's serving: every scoring request of the window scores one user against all N_ITEMS
 * items, batched BATCH users at a time (the stage's full-ranking batch is 512), by one sgemm per
 * batch, h . z^T. The dynamic latents of the adapter are window-level objects (the inputs e_cf,
 * s_i, r_u, s_u and the EMA weights change only between windows), so they are computed once per
 * window and every request then costs what a base request costs:
 *   refresh  once per window: z = z_base + a g(e_cf, s) of every item and h = h_base + b g(r, s) of
 *            the window's N_USERS users (adapter_item_latents / adapter_user_latents, EMA weights)
 *   base     one pass of requests over the window's users: h_base rows, sgemm against z_base
 *   dynamic  the same pass on the served latents h, z
 * Reported (medians over REPS rounds, one warm-up round not counted; each round times 4 passes
 * of each kind, interleaved, and takes the median of each kind): overhead = (dynamic - base) / base per request; overhead_pass = (refresh +
 * dynamic - base) / base when the window serves only one pass over its users (the prequential
 * evaluation's load); breakeven_passes = refresh / (2% of one base pass), the serving load per
 * window (in passes over its users) above which the refresh costs less than 2%.
 * Tables and adapter weights are random (zero_init off, so the residual is really computed); the
 * shapes default to the stage's on the synthetic default, from the key table: d_cf = sasrec.hidden,
 * d = align.dim, hidden = adapter.hidden, summaries 4 per item and 7 + d per user (all
 * adapter.features and the recent-taste columns).
 */
#include "../../src/adapter/adapter.h"
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/timer.h"
#include "../unit/testlib.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

#define NPASS 4 /* passes of each kind per round */

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_stream N_ITEMS N_USERS BATCH THREADS REPS [D_CF D HIDDEN DS_ITEM DS_USER]\n");
        return 2;
    }
    int ni = atoi(argv[1]), nu = atoi(argv[2]), bs = atoi(argv[3]), th = atoi(argv[4]), reps = atoi(argv[5]);
    if (reps < 1 || reps > 1000 || bs < 1) return 2;
    openblas_set_num_threads(th);
    omp_set_num_threads(th);

    /* the key table's defaults (dm_cfg_init): adapter.*, and the widths of the synthetic default
     * (sasrec.hidden, align.dim) unless given */
    adapter_config c;
    dm_cfg cfg;
    if (dm_cfg_init(&cfg)) tl_die("bench_stream");
    adapter_config_from(&cfg, &c);
    int dcf = argc > 6 ? atoi(argv[6]) : (int)dm_cfg_int(&cfg, "sasrec.hidden");
    int d = argc > 7 ? atoi(argv[7]) : (int)dm_cfg_int(&cfg, "align.dim");
    dm_cfg_free(&cfg);
    if (argc > 8) c.hidden = atoi(argv[8]);
    int dsi = argc > 9 ? atoi(argv[9]) : 4, dsu = argc > 10 ? atoi(argv[10]) : 7 + d;
    c.n_items = ni;
    c.n_users = nu;
    c.d_cf = dcf;
    c.d = d;
    c.ds_item = dsi;
    c.ds_user = dsu;
    c.max_batch = 1;
    c.zero_init = 0;
    adapter m;
    adapter_acts a;
    if (adapter_init(&m, &c) || adapter_acts_init(&a, &c)) tl_die("bench_stream");
    adapter_init_weights(&m, 11);

    dm_rng g;
    dm_rng_seed(&g, 2024);
    float *e_cf = tl_randn_new(&g, (size_t)ni * dcf, 1.0f), *zb = tl_randn_new(&g, (size_t)ni * d, 0.3f);
    float *s_item = tl_randn_new(&g, (size_t)ni * (dsi ? dsi : 1), 1.0f);
    float *r = tl_randn_new(&g, (size_t)nu * dcf, 1.0f), *hb = tl_randn_new(&g, (size_t)nu * d, 0.3f);
    float *s_user = tl_randn_new(&g, (size_t)nu * (dsu ? dsu : 1), 1.0f);
    float *z = malloc((size_t)ni * d * sizeof *z), *h = malloc((size_t)bs * d * sizeof *h);
    float *sc = malloc((size_t)bs * ni * sizeof *sc);
    int32_t *ids = malloc((size_t)bs * sizeof *ids);
    double *tb = malloc((size_t)reps * sizeof(double)), *td = malloc((size_t)reps * sizeof(double)),
           *ti = malloc((size_t)reps * sizeof(double)), *tu = malloc((size_t)reps * sizeof(double)),
           *ov = malloc((size_t)reps * sizeof(double));
    if (!e_cf || !zb || !s_item || !r || !hb || !s_user || !z || !h || !sc || !ids || !tb || !td || !ti || !tu || !ov) {
        fprintf(stderr, "bench_stream: out of memory\n");
        return 1;
    }
    adapter_tables t = {e_cf, zb, dsi ? s_item : NULL, r, hb, dsu ? s_user : NULL};
    double check = 0;
    double *tr = malloc((size_t)reps * sizeof(double)), *op = malloc((size_t)reps * sizeof(double));
    float *hall = malloc((size_t)nu * d * sizeof *hall);
    int32_t *uids = malloc((size_t)nu * sizeof *uids);
    if (!tr || !op || !hall || !uids) {
        fprintf(stderr, "bench_stream: out of memory\n");
        return 1;
    }
    for (int k = 0; k < nu; k++) uids[k] = k;
    for (int rep = -1; rep < reps; rep++) { /* rep -1 warms up */
        double base = 0, dyn = 0, items = 0, users = 0;
        /* the window's refresh: every item's and every user's dynamic latent, once */
        double t0 = dm_wtime();
        if (adapter_item_latents(&m, &a, &t, 1, NULL, ni, z, NULL)) tl_die("bench_stream");
        items = dm_wtime() - t0;
        t0 = dm_wtime();
        if (adapter_user_latents(&m, &a, &t, 1, uids, nu, hall, NULL)) tl_die("bench_stream");
        users = dm_wtime() - t0;
        /* passes of requests over the window's users, base and served dynamic latents
         * interleaved (b d d b b d d b: each kind equally often first and after the other); the
         * round's time of each kind is the median of its passes */
        double pb[NPASS], pd[NPASS];
        int nb = 0, nd = 0;
        for (int pass = 0; pass < 2 * NPASS; pass++) {
            int dynamic = ((pass + 1) >> 1) & 1;
            if (rep & 1) dynamic = !dynamic;
            const float *zz = dynamic ? z : zb, *hh = dynamic ? hall : hb;
            t0 = dm_wtime();
            for (int u0 = 0; u0 < nu; u0 += bs) {
                int B = nu - u0 < bs ? nu - u0 : bs;
                memcpy(h, hh + (size_t)u0 * d, (size_t)B * d * sizeof *h);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, ni, d, 1.0f, h, d, zz, d, 0.0f, sc, ni);
                check += sc[0];
            }
            if (dynamic) pd[nd++] = dm_wtime() - t0;
            else pb[nb++] = dm_wtime() - t0;
        }
        base = tl_median(pb, nb);
        dyn = tl_median(pd, nd);
        if (rep >= 0) {
            tb[rep] = base;
            td[rep] = dyn;
            ti[rep] = items;
            tu[rep] = users;
            ov[rep] = (dyn - base) / base;
            tr[rep] = items + users;
            op[rep] = (items + users + dyn - base) / base;
        }
    }
    double o = tl_median(ov, reps), mb = tl_median(tb, reps), md = tl_median(td, reps);
    double mi = tl_median(ti, reps), mu = tl_median(tu, reps), mr = tl_median(tr, reps), mo = tl_median(op, reps);
    double gf = 2.0 * nu * (double)ni * d / mb / 1e9;
    /* passes over the window's users needed for the refresh to cost less than 2% of the scoring */
    double be = mr / (0.02 * mb);
    printf("items=%d users=%d batch=%d threads=%d reps=%d base_ms=%.3f dyn_ms=%.3f items_ms=%.3f users_ms=%.3f "
           "refresh_ms=%.3f overhead=%.5f overhead_pass=%.5f breakeven_passes=%.2f base_gflops=%.1f check=%.3g\n",
           ni, nu, bs, th, reps, 1e3 * mb, 1e3 * md, 1e3 * mi, 1e3 * mu, 1e3 * mr, o, mo, be, gf, check);
    free(tr);
    free(op);
    free(hall);
    free(uids);
    adapter_acts_free(&a);
    adapter_free(&m);
    return 0;
}
