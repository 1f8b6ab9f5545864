/* test_pq_train.c: data-parallel product-quantisation training (src/pq/pq.h) at any rank count, on the
 * latents of tests/reference/gen_pq.py:
 *  - items sharded evenly in rank order, centroid sums and counts allreduced as int64: the
 *    codebooks bitwise equal a one-shard run of the same function (so bitwise the same at 1, 2
 *    and 3 ranks), and every rank's codes equal that run's codes for its items
 *  - the naive serial twin (double centroid sums): the same codes, centroids within two float
 *    roundings of the largest value
 *  - the quantisation error against SciPy's k-means (kmeans2, k-means++ seeding, the best of 5
 *    seeds): the seeds differ, so ours may be up to 5% above it; both are printed.
 *  - the queries' second moment (pq.metric = "query"): bitwise one shard's at 1, 2 and 3 ranks
 *  - OPQ (pq_train_opq) on the case that has it: rotation, codebooks and codes at 1, 2 and 3 ranks
 *    bitwise one shard's; the error within 5% of SciPy's OPQ (best of 5 seeds) and below 0.8 x
 *    plain PQ's on its correlated latents.
 *  - residual stages (pq.stages = 3, with and without OPQ): codebooks, rotation and codes at 1, 2 and
 *    3 ranks bitwise one shard's, the training's codes = pq_encode's, the naive twin's codes; the
 *    error within 5% of SciPy's stage-by-stage kmeans2 (best of 5 seeds) and below one stage's.
 *  - two items and four centroids per sub-space, so that at 3 ranks one rank holds no item. */
#include "../../mpi/par.h"
#include "../../src/core/err.h"
#include "../../src/core/shard.h"
#include "../../src/pq/pq.h"
#include "../unit/tap.h"
#include "../unit/testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static par_ctx g_ctx;

static int sum_i64(void *c, int64_t *buf, size_t n) { return par_allreduce_sum_i64(c, buf, n); }
static int max_f64(void *c, double *buf, size_t n) { return par_allreduce_max_f64(c, buf, n); }

static void run_case(const char *dir, const dm_json *cs, int naive)
{
    (void)naive;
    const dm_json *nm = dm_json_get(cs, "name");
    const char *name = nm && nm->str ? nm->str : "?";
    const size_t N = (size_t)tl_jint(cs, "n"), D = (size_t)tl_jint(cs, "d");
    const int M = (int)tl_jint(cs, "m"), K = (int)tl_jint(cs, "k"), iters = (int)tl_jint(cs, "iters");
    const int L = dm_json_get(cs, "stages") ? (int)tl_jint(cs, "stages") : 1, C = M * L; /* residual stages; code columns */
    const size_t NC = (size_t)K * D * (size_t)L; /* centroid values */
    const double ref = tl_jnum(cs, "scipy_rel_err");
    float *x = tl_load(dir, name, "_x.f32", N * D * sizeof(float));
    size_t lo, hi;
    dm_shard_even(N, g_ctx.size, g_ctx.rank, &lo, &hi);
    pq_comm comm = {g_ctx.rank, g_ctx.size, &g_ctx, sum_i64, max_f64};
    pq_codebook cp, c1, cn;
    pq_train_stats sp, s1, sn;
    uint8_t *kp = malloc((hi - lo) * (size_t)C + 1), *k1 = malloc(N * (size_t)C), *kn = malloc(N * (size_t)C), *ke = malloc(N * (size_t)C);
    CHECK(pq_init_rq(&cp, D, M, L, K, "pq") == DM_OK && pq_init_rq(&c1, D, M, L, K, "pq") == DM_OK && pq_init_rq(&cn, D, M, L, K, "pq") == DM_OK,
          "init");
    int rc = pq_train(&cp, x + lo * D, hi - lo, lo, N, iters, 42, &comm, kp, &sp);
    CHECK(par_agree(&g_ctx, rc) == DM_OK, "%s: sharded train: %s", name, dm_error_message());
    CHECK(pq_train(&c1, x, N, 0, N, iters, 42, NULL, k1, &s1) == DM_OK, "%s: one-shard train", name);
    CHECK(pq_train_naive(&cn, x, N, iters, 42, kn, &sn) == DM_OK, "%s: naive train", name);
    CHECK(!memcmp(cp.c, c1.c, NC * sizeof(float)), "%s: codebooks at %d ranks = one shard's, bitwise", name, g_ctx.size);
    CHECK(!memcmp(kp, k1 + lo * (size_t)C, (hi - lo) * (size_t)C), "%s: codes of items [%zu, %zu) = one shard's", name, lo, hi);
    CHECK(pq_encode(&c1, x, N, ke) == DM_OK && !memcmp(ke, k1, N * (size_t)C), "%s: the training's codes = pq_encode's", name);
    CHECK(sp.iters == s1.iters && sp.err == s1.err && sp.empty == s1.empty, "%s: statistics %d/%g vs %d/%g", name, sp.iters, sp.err, s1.iters,
          s1.err);
    CHECK(!memcmp(k1, kn, N * (size_t)C), "%s: codes = the naive twin's", name);
    double cd = 0, cm = tl_maxabs(c1.c, NC);
    for (size_t q = 0; q < NC; q++) cd = fmax(cd, fabs((double)c1.c[q] - cn.c[q]));
    CHECK(cd <= 2 * ldexp(cm, -24), "%s: centroids vs naive differ by %.3g (max %.3g)", name, cd, cm);
    const double rel = sp.err / sp.norm;
    CHECK(rel <= 1.05 * ref, "%s: relative quantisation error %.4f vs SciPy's %.4f", name, rel, ref);
    if (L > 1) { /* more stages, less error: one stage of the same M and K */
        pq_codebook c0;
        pq_train_stats s0;
        CHECK(pq_init(&c0, D, M, K, "pq") == DM_OK && pq_train(&c0, x, N, 0, N, iters, 42, NULL, ke, &s0) == DM_OK, "%s: one stage", name);
        CHECK(rel < 0.8 * s0.err / s0.norm, "%s: %d stages' relative error %.4f is not below 0.8 x one stage's %.4f", name, L, rel, s0.err / s0.norm);
        if (g_ctx.rank == 0) printf("  %s: %d residual stages: relative error %.4f, one stage %.4f\n", name, L, rel, s0.err / s0.norm);
        pq_free(&c0);
    }
    if (g_ctx.rank == 0)
        printf("  %s: N %zu D %zu M %d L %d K %d, %d ranks: %d iterations, relative error %.4f (SciPy kmeans2 best of 5: %.4f), "
               "%lld empty clusters, naive centroids within %.2g\n",
               name, N, D, M, L, K, g_ctx.size, sp.iters, rel, ref, (long long)sp.empty, cd);
    if (dm_json_get(cs, "opq")) { /* OPQ: sharded = one shard bitwise (codebooks, rotation, codes); error vs SciPy's */
        const int R = (int)tl_jint(cs, "opq"), Ri = (int)tl_jint(cs, "opq_iters");
        const double oref = tl_jnum(cs, "scipy_opq_rel_err");
        pq_codebook op, o1;
        pq_train_stats tp, t1;
        CHECK(pq_init_rq(&op, D, M, L, K, "pq") == DM_OK && pq_init_rq(&o1, D, M, L, K, "pq") == DM_OK, "init");
        rc = pq_train_opq(&op, x + lo * D, hi - lo, lo, N, iters, R, Ri, 42, &comm, kp, &tp);
        CHECK(par_agree(&g_ctx, rc) == DM_OK && op.rot, "%s: sharded OPQ: %s", name, dm_error_message());
        CHECK(pq_train_opq(&o1, x, N, 0, N, iters, R, Ri, 42, NULL, k1, &t1) == DM_OK && o1.rot, "%s: one-shard OPQ", name);
        CHECK(op.rot && o1.rot && !memcmp(op.rot, o1.rot, D * D * sizeof(float)) && !memcmp(op.c, o1.c, NC * sizeof(float)),
              "%s: OPQ rotation and codebooks at %d ranks = one shard's, bitwise", name, g_ctx.size);
        CHECK(!memcmp(kp, k1 + lo * (size_t)C, (hi - lo) * (size_t)C) && tp.err == t1.err, "%s: OPQ codes and error = one shard's", name);
        CHECK(pq_encode(&o1, x, N, ke) == DM_OK && !memcmp(ke, k1, N * (size_t)C), "%s: OPQ's codes = pq_encode's", name);
        const double orel = tp.err / tp.norm;
        CHECK(orel <= 1.05 * oref, "%s: OPQ relative error %.4f vs SciPy's %.4f", name, orel, oref);
        CHECK(orel < 0.8 * rel, "%s: OPQ relative error %.4f is not below 0.8 x plain PQ's %.4f", name, orel, rel);
        if (g_ctx.rank == 0)
            printf("  %s: OPQ %d rounds x %d iterations, %d ranks: relative error %.4f (SciPy OPQ best of 5: %.4f; plain PQ %.4f)\n", name,
                   R, Ri, g_ctx.size, orel, oref, rel);
        pq_free(&op);
        pq_free(&o1);
    }
    TL_FREE(x, kp, k1, kn, ke);
    pq_free(&cp);
    pq_free(&c1);
    pq_free(&cn);
}

/* fewer items than ranks x centroids, and a rank with no items at all */
static void tiny(void)
{
    const size_t N = 2, D = 4;
    float x[8] = {1, 2, 3, 4, -1, 0.5f, 2, 7};
    size_t lo, hi;
    dm_shard_even(N, g_ctx.size, g_ctx.rank, &lo, &hi);
    pq_comm comm = {g_ctx.rank, g_ctx.size, &g_ctx, sum_i64, max_f64};
    pq_codebook a, b;
    pq_train_stats sa, sb;
    uint8_t ka[8], kb[8];
    CHECK(pq_init(&a, D, 2, 4, "pq") == DM_OK && pq_init(&b, D, 2, 4, "pq") == DM_OK, "init");
    int rc = par_agree(&g_ctx, pq_train(&a, x + lo * D, hi - lo, lo, N, 5, 9, &comm, ka, &sa));
    CHECK(rc == DM_OK && pq_train(&b, x, N, 0, N, 5, 9, NULL, kb, &sb) == DM_OK, "tiny train");
    CHECK(!memcmp(a.c, b.c, 4 * D * sizeof(float)) && sa.err == 0, "2 items, 4 centroids, %d ranks: bitwise, error %g", g_ctx.size, sa.err);
    pq_free(&a);
    pq_free(&b);
    /* OPQ with a rank that holds no item (3 ranks): the same rotation and codebooks as one shard */
    CHECK(pq_init(&a, D, 2, 4, "pq") == DM_OK && pq_init(&b, D, 2, 4, "pq") == DM_OK, "init");
    rc = par_agree(&g_ctx, pq_train_opq(&a, x + lo * D, hi - lo, lo, N, 5, 3, 2, 9, &comm, ka, &sa));
    CHECK(rc == DM_OK && pq_train_opq(&b, x, N, 0, N, 5, 3, 2, 9, NULL, kb, &sb) == DM_OK && a.rot && b.rot, "tiny OPQ");
    CHECK(a.rot && b.rot && !memcmp(a.rot, b.rot, D * D * sizeof(float)) && !memcmp(a.c, b.c, 4 * D * sizeof(float)),
          "OPQ, 2 items, %d ranks: rotation and codebooks bitwise one shard's", g_ctx.size);
    pq_free(&a);
    pq_free(&b);
    /* the queries' second moment over 7 rows sharded unevenly: bitwise one shard's */
    float q[21];
    for (int k = 0; k < 21; k++) q[k] = (float)sin(1.7 * k + 0.3) * (float)(1 + k % 4);
    size_t qlo, qhi;
    dm_shard_even(7, g_ctx.size, g_ctx.rank, &qlo, &qhi);
    double s_sh[9], s_one[9];
    rc = par_agree(&g_ctx, pq_second_moment(q + qlo * 3, qhi - qlo, 3, 7, &comm, s_sh));
    CHECK(rc == DM_OK && pq_second_moment(q, 7, 3, 7, NULL, s_one) == DM_OK && !memcmp(s_sh, s_one, sizeof s_sh),
          "second moment of 7 states, %d ranks: bitwise one shard's", g_ctx.size);
}

int main(int argc, char **argv)
{
    if (par_init(&argc, &argv, &g_ctx)) return 1;
    tl_parity("pq", "dynmm-pq-ref", run_case, 0, 2);
    tiny();
    int64_t failed = tap_fail_count;
    par_allreduce_sum_i64(&g_ctx, &failed, 1);
    int ret = g_ctx.rank == 0 ? tap_done("test_pq_train") : 0;
    par_finalize(&g_ctx);
    return failed ? 1 : ret;
}
