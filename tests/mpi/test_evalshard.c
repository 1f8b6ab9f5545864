/* test_evalshard.c: item-sharded scoring (stages/evalshard.h) against the unsharded path
 * (ev_score_users over the whole table) at any rank count, on a hand-made catalogue whose item
 * count divides unevenly over 2, 3 and 4 ranks:
 *   - latents of small integers (|x| <= 2, width 4): every score is an exact integer, so scores tie
 *     often and identically in both paths, whatever the BLAS; the per-user rows of full ranking and
 *     of a 1+9 sampled protocol are bitwise equal for every tie rule (expected, pessimistic,
 *     optimistic), for users with one target, several targets, a repeated target and a target in
 *     their history, at batch sizes that split the users into uneven blocks and at one block;
 *   - random Gaussian latents: the rows are bitwise equal too (model_latents_score's fixed-order
 *     kernel computes each score from its row and column alone, whatever the call; this is what eval
 *     relies on for real models: OpenBLAS's sgemm does not, by an ulp now and then);
 *   - the candidate scorer (ev_score_users_items with model_latents_score_items: sampled protocols
 *     score only each user's targets and negatives, sharded or not) gives the same bits as whole rows;
 *   - <model>@pq's candidate scorer (pq_scorer_items: ADC alone with float tables, the fast scan of
 *     residual 4-bit codes, and the exact scores with pq.rerank above the catalogue) gives the same
 *     rows as its whole rows, and is refused where the re-ranked top R needs the whole row;
 *   - sampled-user evaluation (ev_split.keep, every third user left out): the kept users' rows are
 *     bitwise those of the whole run, the others NaN, in both paths;
 *   - ev_shard_topk equals dm_top_k_f32 over the whole score vector (ids and scores, ties to the
 *     lower item, history left out, K longer than what is left);
 *   - a NaN item score fails both paths with the same message on every rank.
 */
#include "../../mpi/par.h"
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/shard.h"
#include "../../src/core/sort.h"
#include "../../stages/evalshard.h"
#include "../../stages/pq_model.h"
#include "../unit/tap.h"
#include "../unit/testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NU = 61, NI = 37, C = 4, NNEG = 9 };

typedef struct {
    int64_t off[NU + 1];
    int32_t item[NU * 12];
    int8_t role[NU * 12];
    int32_t neg[NU * NNEG];
    uint8_t keep[NU]; /* sampled-user evaluation: every third user left out */
    dm_dataset d;
} catalogue;

/* Users of 2..11 interactions; the last one or three are test targets (user 7: its target repeated,
 * user 11: a target that is also in its history), the one before valid. Negatives: NNEG items the
 * user never touched, -1 rows for users 5 and 40 (left out of the protocol). */
static void make_catalogue(catalogue *c, dm_rng *r)
{
    size_t n = 0;
    c->off[0] = 0;
    for (int u = 0; u < NU; u++) {
        int len = 2 + (int)dm_rng_below(r, 10), nt = u % 4 == 0 ? 3 : 1;
        if (nt + 1 > len) nt = 1;
        for (int k = 0; k < len; k++) {
            c->item[n + (size_t)k] = (int32_t)dm_rng_below(r, NI);
            c->role[n + (size_t)k] = k >= len - nt ? DM_TEST : k == len - nt - 1 ? DM_VALID : DM_TRAIN;
        }
        if (u == 7 && len >= 3) {
            c->role[n + (size_t)len - 2] = DM_TEST;
            c->item[n + (size_t)len - 2] = c->item[n + (size_t)len - 1];
        }
        if (u == 11) c->item[n + (size_t)len - 1] = c->item[n];
        n += (size_t)len;
        c->off[u + 1] = (int64_t)n;
        for (int k = 0; k < NNEG; k++) {
            int32_t x;
            int seen;
            do {
                x = (int32_t)dm_rng_below(r, NI);
                seen = 0;
                for (int64_t j = c->off[u]; j < c->off[u + 1]; j++) seen |= c->item[j] == x;
            } while (seen);
            c->neg[u * NNEG + k] = u == 5 || u == 40 ? -1 : x;
        }
    }
    for (int u = 0; u < NU; u++) c->keep[u] = u % 3 != 1;
    c->d = tl_dataset_view(NU, NI, c->off, c->item);
    c->d.n_cand = 1;
    snprintf(c->d.cand[0].name, sizeof c->d.cand[0].name, "uni%d", NNEG);
    c->d.cand[0].n = NNEG;
    c->d.cand[0].rows = c->neg;
    c->d.cand_row0 = 0;
    c->d.cand_rows = NU;
}

/* Rows of this rank's users, unsharded and sharded, for every protocol, split and tie rule:
 * returns the number of entries compared (all must be bitwise equal). */
static int compare_rows(par_ctx *ctx, catalogue *c, model_latents *full, size_t batch, const char *what)
{
    size_t lo, hi;
    dm_shard_even(NU, ctx->size, ctx->rank, &lo, &hi);
    ev_shard_latents sh = {NI, C, 0, 0, NULL, {NULL, full->state[DM_VALID], full->state[DM_TEST]}};
    dm_shard_even(NI, ctx->size, ctx->rank, &sh.i0, &sh.i1);
    sh.e = full->e + sh.i0 * C;
    char proto[16];
    snprintf(proto, sizeof proto, "uni%d", NNEG);
    const char *protos[2] = {"full", proto};
    int64_t ks[3] = {1, 5, 10};
    int n = 0;
    for (int t = 0; t < 3; t++) {
        metrics_spec spec;
        metrics_spec_init(&spec, ks, 3, (metrics_ties)t);
        double *a = malloc((hi - lo + 1) * spec.ncols * sizeof *a), *b = malloc((hi - lo + 1) * spec.ncols * sizeof *b);
        double *ci = malloc((hi - lo + 1) * spec.ncols * sizeof *ci); /* by the candidate scorer */
        double *a0 = malloc(2 * (hi - lo + 1) * spec.ncols * sizeof *a0); /* each protocol's rows without keep */
        for (int sp = DM_VALID; sp <= DM_TEST; sp++)
            for (int p = 0; p < 4; p++) { /* p & 1: protocol; p >= 2: every third user left out (ev_split.keep) */
                ev_split s = {&c->d, c->role, sp, p >= 2 ? c->keep : NULL};
                const char *pr = protos[p & 1];
                int ra = par_agree(ctx, ev_score_users(&s, &spec, pr, model_latents_score, full, lo, hi, batch, a));
                int rb = ev_score_sharded(ctx, &s, &spec, pr, &sh, lo, hi, batch, b);
                int rc = ev_score_users_items(&s, &spec, pr, model_latents_score, model_latents_score_items, full, lo, hi, batch, ci);
                CHECK(ra == DM_OK && rb == DM_OK && rc == DM_OK, "%s %s: scored (%d, %d, %d: %s)", what, pr, ra, rb, rc, dm_error_message());
                /* scoring only the candidates (sampled protocols; "full" scores whole rows either way) */
                for (size_t k = 0; k < (hi - lo) * spec.ncols; k++)
                    if (memcmp(&a[k], &ci[k], sizeof *a)) {
                        CHECK(0, "%s, %s ties, %s, split %d, batch %zu: user %zu column %zu: %.17g from whole rows, %.17g from candidates",
                              what, metrics_ties_name((metrics_ties)t), pr, sp, batch, lo + k / spec.ncols, k % spec.ncols, a[k], ci[k]);
                        ci[0] = NAN;
                        break;
                    }
                double *a0p = a0 + (size_t)(p & 1) * (hi - lo + 1) * spec.ncols;
                if (p < 2) memcpy(a0p, a, (hi - lo) * spec.ncols * sizeof *a);
                else /* the kept users' rows are those of the whole run, the others NaN */
                    for (size_t k = 0; k < (hi - lo) * spec.ncols; k++) {
                        size_t u = lo + k / spec.ncols;
                        int ok = c->keep[u] ? !memcmp(&a[k], &a0p[k], sizeof *a) : isnan(a[k]);
                        if (!ok) {
                            CHECK(0, "%s %s split %d: user %zu (kept %d) column %zu: %.17g, without keep %.17g", what, pr, sp, u,
                                  c->keep[u], k % spec.ncols, a[k], a0p[k]);
                            break;
                        }
                    }
                int same = memcmp(a, b, (hi - lo) * spec.ncols * sizeof *a) == 0 && memcmp(a, ci, (hi - lo) * spec.ncols * sizeof *a) == 0,
                    scored = 0;
                for (size_t u = 0; u < hi - lo; u++) scored += !isnan(a[u * spec.ncols]);
                for (size_t k = 0; !same && k < (hi - lo) * spec.ncols; k++)
                    if (memcmp(&a[k], &b[k], sizeof *a)) {
                        CHECK(0, "%s, %s ties, %s, split %d, batch %zu: user %zu column %zu: %.17g unsharded, %.17g sharded", what,
                              metrics_ties_name((metrics_ties)t), pr, sp, batch, lo + k / spec.ncols, k % spec.ncols, a[k], b[k]);
                        break;
                    }
                int64_t cnt = scored;
                par_allreduce_sum_i64(ctx, &cnt, 1); /* all but users 5, 40 (no negatives) and 7 (no valid target) */
                if (p < 2) CHECK(cnt >= NU - 3, "%s: %lld users scored", what, (long long)cnt);
                else CHECK(cnt >= (NU - 3) * 2 / 3 - 2 && cnt <= (NU * 2 + 2) / 3, "%s: %lld kept users scored", what, (long long)cnt);
                n += same;
            }
        free(a);
        free(a0);
        free(b);
        free(ci);
        metrics_spec_free(&spec);
    }
    return n;
}

/* <model>@pq: rows of the sampled protocol from the candidate scorer = from whole rows (this rank's
 * users; the codebooks are trained on one shard of every item, the same on every rank) */
static void pq_candidates(catalogue *c, model_latents *full)
{
    const struct {
        int M, L, K;
        size_t R;
        const char *what;
    } cases[4] = {{2, 1, 32, 0, "float tables (m 2, k 32)"}, {2, 2, 16, 0, "fast scan, 2 residual stages (m 2 x 2, k 16)"},
                  {2, 2, 16, 1000, "pq.rerank above the catalogue (exact)"}, {2, 1, 32, 5, "pq.rerank 5"}};
    char proto[16];
    snprintf(proto, sizeof proto, "uni%d", NNEG);
    int64_t ks[3] = {1, 5, 10};
    for (int q = 0; q < 4; q++) {
        pq_codebook cb;
        pq_train_stats st;
        uint8_t *codes = malloc((size_t)NI * 4);
        CHECK(pq_init_rq(&cb, C, cases[q].M, cases[q].L, cases[q].K, "pq") == DM_OK && pq_train(&cb, full->e, NI, 0, NI, 10, 3, NULL, codes, &st) == DM_OK,
              "%s: codebooks", cases[q].what);
        void *p = NULL;
        CHECK(pq_scorer_new(&cb, codes, full, cases[q].R, c->d.n_inter, &p) == DM_OK, "%s: scorer", cases[q].what);
        if (!p) continue;
        if (cases[q].R == 5) { /* the top 5 re-ranked: a property of the whole row */
            size_t u = 0;
            int32_t it = 0;
            float sc;
            ev_split s = {&c->d, c->role, DM_TEST, NULL};
            CHECK(!pq_scorer_has_items(p) && pq_scorer_items(p, &s, &u, 1, &it, 1, &sc) == DM_EINTERNAL, "%s: no candidate scorer", cases[q].what);
            dm_error_clear();
            pq_scorer_free(p);
            continue;
        }
        CHECK(pq_scorer_has_items(p), "%s: has a candidate scorer", cases[q].what);
        size_t lo = 0, hi = NU, diff = 0, scored = 0;
        for (int t = 0; t < 3; t++) {
            metrics_spec spec;
            metrics_spec_init(&spec, ks, 3, (metrics_ties)t);
            double *a = malloc(NU * spec.ncols * sizeof *a), *b = malloc(NU * spec.ncols * sizeof *b);
            for (int sp = DM_VALID; sp <= DM_TEST; sp++) {
                ev_split s = {&c->d, c->role, sp, NULL};
                int ra = ev_score_users(&s, &spec, proto, pq_scorer_score, p, lo, hi, 7, a);
                int rb = ev_score_users_items(&s, &spec, proto, pq_scorer_score, pq_scorer_items, p, lo, hi, 7, b);
                CHECK(ra == DM_OK && rb == DM_OK, "%s: scored (%s)", cases[q].what, dm_error_message());
                for (size_t k = 0; k < NU * spec.ncols; k++) diff += memcmp(&a[k], &b[k], sizeof *a) != 0, scored += !isnan(a[k]);
            }
            free(a);
            free(b);
        }
        CHECK(diff == 0 && scored > 0, "%s: %zu of the entries from candidates differ from whole rows (%zu scored)", cases[q].what, diff, scored);
        pq_scorer_free(p);
    }
}

int main(int argc, char **argv)
{
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    par_set_threads(&ctx, 0);
    dm_rng r;
    dm_rng_seed(&r, 20261205);
    static catalogue c;
    make_catalogue(&c, &r);
    float *e = malloc(NI * C * sizeof *e), *hv = malloc(NU * C * sizeof *hv), *ht = malloc(NU * C * sizeof *ht);
    model_latents full = {NI, C, e, {NULL, hv, ht}};

    /* integer latents: exact scores, many ties (identical in both paths by construction) */
    for (size_t k = 0; k < NI * C; k++) e[k] = (float)((int)dm_rng_below(&r, 5) - 2);
    for (size_t k = 0; k < NU * C; k++) hv[k] = (float)((int)dm_rng_below(&r, 3) - 1), ht[k] = (float)((int)dm_rng_below(&r, 3) - 1);
    size_t batches[3] = {1, 7, 1000};
    for (int bi = 0; bi < 3; bi++) {
        char what[64];
        snprintf(what, sizeof what, "integer latents, batch %zu", batches[bi]);
        CHECK(compare_rows(&ctx, &c, &full, batches[bi], what) == 24, "%s: every entry bitwise equal", what);
    }
    /* Gaussian latents: each (user, item) scored the same in a call over a shard */
    tl_randn(&r, e, NI * C, 1.0);
    tl_randn(&r, hv, NU * C, 1.0);
    tl_randn(&r, ht, NU * C, 1.0);
    CHECK(compare_rows(&ctx, &c, &full, 7, "gaussian latents") == 24, "gaussian latents: every entry bitwise equal");
    pq_candidates(&c, &full);

    /* top-K over shards: integer latents again (ties), history excluded */
    for (size_t k = 0; k < NI * C; k++) e[k] = (float)((int)dm_rng_below(&r, 3) - 1);
    {
        size_t users[NU], B = NU, i0, i1;
        for (size_t u = 0; u < NU; u++) users[u] = u;
        dm_shard_even(NI, ctx.size, ctx.rank, &i0, &i1);
        ev_shard_latents sh = {NI, C, i0, i1, e + i0 * C, {NULL, hv, ht}};
        ev_split s = {&c.d, c.role, DM_TEST, NULL};
        float *all = malloc(B * NI * sizeof *all), *part = malloc(B * (i1 - i0) * sizeof *part + 4);
        int64_t xo[NU + 1];
        int32_t *xs = malloc(NU * 12 * sizeof *xs);
        xo[0] = 0;
        for (size_t u = 0; u < NU; u++) xo[u + 1] = xo[u] + (int64_t)ev_history(&s, u, xs + xo[u]);
        model_latents_score(&full, &s, users, B, all);
        ev_shard_scores(&sh, &s, users, B, part);
        int Ks[3] = {1, 10, NI};
        for (int q = 0; q < 3; q++) {
            int K = Ks[q];
            int32_t *got = malloc(B * (size_t)K * sizeof *got), *want = malloc((size_t)K * sizeof *want);
            float *gs = malloc(B * (size_t)K * sizeof *gs);
            uint8_t mark[NI];
            CHECK(ev_shard_topk(&ctx, part, B, i0, i1 - i0, xo, xs, K, got, gs) == DM_OK, "topk K %d", K);
            int bad = 0;
            for (size_t u = 0; u < B && !bad; u++) {
                memset(mark, 0, sizeof mark);
                for (int64_t j = xo[u]; j < xo[u + 1]; j++) mark[xs[j]] = 1;
                int k = dm_top_k_f32(all + u * NI, NI, mark, K, want);
                for (int j = 0; j < K && !bad; j++) {
                    int32_t w = j < k ? want[j] : -1;
                    bad = got[u * (size_t)K + (size_t)j] != w || (w >= 0 && memcmp(&gs[u * (size_t)K + (size_t)j], &all[u * NI + (size_t)w], sizeof(float)));
                    if (bad) CHECK(0, "top-%d of user %zu, place %d: item %d sharded, %d unsharded", K, u, j, got[u * (size_t)K + (size_t)j], w);
                }
            }
            CHECK(!bad, "top-%d lists equal the unsharded ones (ties to the lower item)", K);
            free(got);
            free(want);
            free(gs);
        }
        free(all);
        free(part);
        free(xs);
    }

    /* a NaN score: both paths refuse with the same message, on every rank */
    e[(NI - 1) * C] = NAN;
    {
        size_t lo, hi;
        dm_shard_even(NU, ctx.size, ctx.rank, &lo, &hi);
        ev_shard_latents sh = {NI, C, 0, 0, NULL, {NULL, hv, ht}};
        dm_shard_even(NI, ctx.size, ctx.rank, &sh.i0, &sh.i1);
        sh.e = e + sh.i0 * C;
        int64_t ks[1] = {10};
        metrics_spec spec;
        metrics_spec_init(&spec, ks, 1, METRICS_TIES_EXPECTED);
        double *rows = malloc((hi - lo + 1) * spec.ncols * sizeof *rows);
        ev_split s = {&c.d, c.role, DM_TEST, NULL};
        int ra = par_agree(&ctx, ev_score_users(&s, &spec, "full", model_latents_score, &full, lo, hi, 7, rows));
        char ma[256];
        snprintf(ma, sizeof ma, "%s", dm_error_message());
        dm_error_clear();
        int rb = ev_score_sharded(&ctx, &s, &spec, "full", &sh, lo, hi, 7, rows);
        CHECK(ra == DM_ENUM && rb == DM_ENUM, "NaN refused: %d, %d", ra, rb);
        CHECK(strstr(ma, "NaN") && strstr(dm_error_message(), "NaN"), "NaN messages: '%s', '%s'", ma, dm_error_message());
        dm_error_clear();
        free(rows);
        metrics_spec_free(&spec);
    }
    free(e);
    free(hv);
    free(ht);
    int rc = tap_done("test_evalshard");
    par_finalize(&ctx);
    return rc;
}
