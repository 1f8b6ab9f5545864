/* test_metrics.c: ranking metrics and negative samplers (src/eval).
 *
 *  1. brute-force reference (tests/reference/gen_metrics.py: every tie order enumerated), all three
 *     tie modes, fast and naive kernels, tolerance 1e-12;
 *  2. hand-computed answers; a constant scorer gets a random scorer's metrics (closed form and
 *     Monte Carlo);
 *  3. the one-pass kernel against the naive one on larger random cases with ties (1e-12); the
 *     batch (OpenMP) and several-target sampled entry points against the one-user kernel;
 *  4. errors (NaN, no target, ids outside the catalogue);
 *  5. samplers: exclusions, distinctness, keying (order of users and items does not matter),
 *     frequencies, the popularity fallback path, too few eligible items;
 *  6. speed of the full-ranking kernel at the scale of Amazon Beauty (12k items).
 */
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/eval/metrics.h"
#include "../../src/eval/metrics_sample.h"
#include "tap.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define TOL 1e-12

static size_t json_ints(const dm_json *arr, int32_t *out, size_t cap)
{
    size_t n = 0;
    for (const dm_json *v = arr ? arr->child : NULL; v && n < cap; v = v->next) {
        int64_t x = 0;
        dm_json_int(v, &x);
        out[n++] = (int32_t)x;
    }
    return n;
}

static size_t json_doubles(const dm_json *arr, double *out, size_t cap)
{
    size_t n = 0;
    for (const dm_json *v = arr ? arr->child : NULL; v && n < cap; v = v->next) dm_json_double(v, &out[n++]);
    return n;
}

static void test_reference(void)
{
    tl_manifest ref;
    if (tl_ref_json(&ref, "metrics_cases.json", "gen_metrics.py")) return;
    const dm_json *root = ref.root;
    if (!root) return;
    int64_t ks[16];
    int32_t kbuf[16];
    size_t nk = json_ints(dm_json_get(root, "ks"), kbuf, 16);
    for (size_t i = 0; i < nk; i++) ks[i] = kbuf[i];
    const char *modes[] = {"expected", "pessimistic", "optimistic"};
    double maxdiff[3] = {0};
    size_t ncases = 0;
    for (const dm_json *c = dm_json_get(root, "cases")->child; c; c = c->next, ncases++) {
        double sc[64];
        int32_t tg[16], ex[64];
        size_t n = json_doubles(dm_json_get(c, "scores"), sc, 64);
        size_t nt = json_ints(dm_json_get(c, "targets"), tg, 16);
        size_t ne = json_ints(dm_json_get(c, "excluded"), ex, 64);
        float scf[64];
        for (size_t i = 0; i < n; i++) scf[i] = (float)sc[i];
        int sampled = strcmp(dm_json_get(c, "kind")->str, "sampled") == 0;
        for (int mode = 0; mode < 3; mode++) {
            metrics_spec s;
            metrics_spec_init(&s, ks, nk, (metrics_ties)mode);
            double want[64], got[64], naive[64];
            size_t nw = json_doubles(dm_json_get(c, modes[mode]), want, 64);
            CHECK(nw == s.ncols, "case %zu: %zu reference columns, expected %zu", ncases, nw, s.ncols);
            metrics_ws w;
            metrics_ws_init(&w, n);
            int rc;
            if (sampled) {
                rc = metrics_sampled(&s, scf[0], scf + 1, n - 1, got);
                memcpy(naive, got, sizeof got);
            } else {
                rc = metrics_full(&s, &w, scf, n, tg, nt, ex, ne, got);
                CHECK(rc == DM_OK, "case %zu: metrics_full failed: %s", ncases, dm_error_message());
                rc = metrics_full_naive(&s, &w, scf, n, tg, nt, ex, ne, naive);
            }
            CHECK(rc == DM_OK, "case %zu: %s", ncases, dm_error_message());
            for (size_t k = 0; k < s.ncols; k++) {
                char name[32];
                metrics_col_name(&s, k, name, sizeof name);
                double d1 = fabs(got[k] - want[k]), d2 = fabs(naive[k] - want[k]);
                if (d1 > maxdiff[mode]) maxdiff[mode] = d1;
                if (d2 > maxdiff[mode]) maxdiff[mode] = d2;
                if (d1 > TOL || d2 > TOL)
                    CHECK(0, "case %zu (%s) %s %s: fast %.15g naive %.15g reference %.15g", ncases,
                          sampled ? "sampled" : "full", modes[mode], name, got[k], naive[k], want[k]);
            }
            for (size_t i = 0; i < n; i++) CHECK(w.mark[i] == 0, "case %zu: mark %zu left set", ncases, i);
            metrics_ws_free(&w);
            metrics_spec_free(&s);
        }
    }
    printf("reference: %zu cases; max |diff| expected %.3g, pessimistic %.3g, optimistic %.3g (tol %g)\n", ncases,
           maxdiff[0], maxdiff[1], maxdiff[2], TOL);
    CHECK(ncases >= 200, "only %zu reference cases", ncases);
    tl_manifest_close(&ref);
}

static void test_known_answers(void)
{
    const int64_t ks[] = {1, 5, 10};
    metrics_spec s;
    CHECK(metrics_spec_init(&s, ks, 3, METRICS_TIES_EXPECTED) == DM_OK, "spec");
    double row[10];
    char name[32];
    metrics_col_name(&s, metrics_col(&s, METRICS_NDCG, 2), name, sizeof name);
    CHECK(strcmp(name, "ndcg@10") == 0, "column name %s", name);
    metrics_col_name(&s, metrics_col(&s, METRICS_MRR, 0), name, sizeof name);
    CHECK(strcmp(name, "mrr") == 0, "column name %s", name);

    /* rank 4, no ties */
    float neg[99];
    for (int i = 0; i < 99; i++) neg[i] = i < 3 ? 2.0f : 0.5f - 0.001f * (float)i;
    metrics_sampled(&s, 1.0f, neg, 99, row);
    NEAR(row[metrics_col(&s, METRICS_HIT, 0)], 0.0, 0, "rank 4 hit@1");
    NEAR(row[metrics_col(&s, METRICS_HIT, 1)], 1.0, 0, "rank 4 hit@5");
    NEAR(row[metrics_col(&s, METRICS_NDCG, 1)], 1.0 / log2(5.0), TOL, "rank 4 ndcg@5");
    NEAR(row[metrics_col(&s, METRICS_MRR, 0)], 0.25, TOL, "rank 4 mrr");

    /* tied with one other at the top: rank 1 or 2 with probability 1/2 each */
    float one = 3.0f;
    metrics_sampled(&s, 3.0f, &one, 1, row);
    NEAR(row[metrics_col(&s, METRICS_HIT, 0)], 0.5, TOL, "tie of two hit@1");
    NEAR(row[metrics_col(&s, METRICS_NDCG, 0)], 0.5, TOL, "tie of two ndcg@1");
    NEAR(row[metrics_col(&s, METRICS_NDCG, 1)], 0.5 * (1.0 + 1.0 / log2(3.0)), TOL, "tie of two ndcg@5");
    NEAR(row[metrics_col(&s, METRICS_MRR, 0)], 0.75, TOL, "tie of two mrr");

    /* two targets tied with one non-target at the top: first target at 1 w.p. 2/3, at 2 w.p. 1/3 */
    {
        float sc[5] = {1.0f, 1.0f, 1.0f, 0.0f, 0.0f};
        int32_t tg[2] = {0, 2};
        metrics_ws w;
        metrics_ws_init(&w, 5);
        metrics_full(&s, &w, sc, 5, tg, 2, NULL, 0, row);
        NEAR(row[metrics_col(&s, METRICS_HIT, 0)], 2.0 / 3.0, TOL, "2 of 3 tied hit@1");
        NEAR(row[metrics_col(&s, METRICS_MRR, 0)], 5.0 / 6.0, TOL, "2 of 3 tied mrr");
        NEAR(row[metrics_col(&s, METRICS_RECALL, 0)], (1.0 / 3.0 * 2.0) / 2.0, TOL, "2 of 3 tied recall@1");
        NEAR(row[metrics_col(&s, METRICS_RECALL, 1)], 1.0, TOL, "2 of 3 tied recall@5");
        double dcg1 = 2.0 / 3.0; /* E[#targets at rank 1] = 2/3, discount 1 */
        NEAR(row[metrics_col(&s, METRICS_NDCG, 0)], dcg1 / 1.0, TOL, "2 of 3 tied ndcg@1");
        double dcg5 = 2.0 / 3.0 * (1.0 + 1.0 / log2(3.0) + 0.5), idcg5 = 1.0 + 1.0 / log2(3.0);
        NEAR(row[metrics_col(&s, METRICS_NDCG, 1)], dcg5 / idcg5, TOL, "2 of 3 tied ndcg@5");
        metrics_ws_free(&w);
    }

    /* constant scorer = random scorer: 100 items, 9 excluded, 91 candidates, one target */
    {
        enum { N = 100 };
        float sc[N];
        int32_t ex[9], tg = 50;
        for (int i = 0; i < N; i++) sc[i] = 0.25f;
        for (int i = 0; i < 9; i++) ex[i] = i * 3;
        metrics_ws w;
        metrics_ws_init(&w, N);
        metrics_full(&s, &w, sc, N, &tg, 1, ex, 9, row);
        double n = 91, h = 0, d10 = 0;
        for (int r = 1; r <= 91; r++) h += 1.0 / r;
        for (int r = 1; r <= 10; r++) d10 += 1.0 / log2(r + 1.0);
        NEAR(row[metrics_col(&s, METRICS_HIT, 2)], 10.0 / n, TOL, "constant hit@10 = 10/91");
        NEAR(row[metrics_col(&s, METRICS_RECALL, 1)], 5.0 / n, TOL, "constant recall@5 = 5/91");
        NEAR(row[metrics_col(&s, METRICS_NDCG, 2)], d10 / n, TOL, "constant ndcg@10");
        NEAR(row[metrics_col(&s, METRICS_MRR, 0)], h / n, TOL, "constant mrr = H(91)/91");
        CHECK(row[metrics_col(&s, METRICS_HIT, 2)] < 0.2, "a constant scorer must not look perfect");

        /* Monte Carlo: a random scorer (continuous scores, no ties) averages to the same values */
        dm_rng r;
        dm_rng_seed(&r, 7);
        const int trials = 40000;
        double mean[10] = {0};
        for (int t = 0; t < trials; t++) {
            for (int i = 0; i < N; i++) sc[i] = (float)dm_rng_uniform(&r);
            double rr[10];
            metrics_full(&s, &w, sc, N, &tg, 1, ex, 9, rr);
            for (size_t k = 0; k < s.ncols; k++) mean[k] += rr[k] / trials;
        }
        /* 5 standard errors of a Bernoulli(10/91) mean */
        double se = sqrt(10.0 / n * (1 - 10.0 / n) / trials);
        NEAR(mean[metrics_col(&s, METRICS_HIT, 2)], row[metrics_col(&s, METRICS_HIT, 2)], 5 * se,
             "random scorer hit@10 (Monte Carlo) vs constant scorer");
        NEAR(mean[metrics_col(&s, METRICS_NDCG, 2)], row[metrics_col(&s, METRICS_NDCG, 2)], 5 * se,
             "random scorer ndcg@10 vs constant scorer");
        NEAR(mean[metrics_col(&s, METRICS_MRR, 0)], row[metrics_col(&s, METRICS_MRR, 0)], 5 * se,
             "random scorer mrr vs constant scorer");
        metrics_ws_free(&w);
    }

    /* pessimistic / optimistic of the constant scorer */
    {
        metrics_spec sp, so;
        metrics_spec_init(&sp, ks, 3, METRICS_TIES_PESSIMISTIC);
        metrics_spec_init(&so, ks, 3, METRICS_TIES_OPTIMISTIC);
        float negs[19];
        for (int i = 0; i < 19; i++) negs[i] = 1.0f;
        metrics_sampled(&sp, 1.0f, negs, 19, row);
        NEAR(row[metrics_col(&sp, METRICS_HIT, 2)], 0.0, 0, "pessimistic constant hit@10");
        NEAR(row[metrics_col(&sp, METRICS_MRR, 0)], 1.0 / 20, TOL, "pessimistic constant mrr");
        metrics_sampled(&so, 1.0f, negs, 19, row);
        NEAR(row[metrics_col(&so, METRICS_HIT, 0)], 1.0, 0, "optimistic constant hit@1");
        metrics_sampled(&s, 1.0f, negs, 19, row);
        NEAR(row[metrics_col(&s, METRICS_HIT, 2)], 0.5, TOL, "expected constant hit@10 of 1+19");
        metrics_spec_free(&sp);
        metrics_spec_free(&so);
    }
    metrics_spec_free(&s);
}

static void test_fast_vs_naive(void)
{
    const int64_t ks[] = {1, 3, 10, 20, 50};
    dm_rng r;
    dm_rng_seed(&r, 11);
    enum { N = 1500 };
    float *sc = malloc(N * sizeof *sc);
    int32_t tg[40], ex[300];
    double a[32], b[32], maxd = 0;
    metrics_ws w;
    metrics_ws_init(&w, N);
    for (int trial = 0; trial < 60; trial++) {
        metrics_ties ties = (metrics_ties)(trial % 3);
        metrics_spec s;
        metrics_spec_init(&s, ks, 5, ties);
        int levels = 1 + (int)dm_rng_below(&r, trial < 30 ? 6 : 400);
        for (int i = 0; i < N; i++) sc[i] = (float)dm_rng_below(&r, (uint64_t)levels) * 0.5f;
        if (trial % 7 == 0) sc[dm_rng_below(&r, N)] = -INFINITY;
        size_t nt = 1 + dm_rng_below(&r, 40), ne = dm_rng_below(&r, 300);
        for (size_t i = 0; i < nt; i++) tg[i] = (int32_t)dm_rng_below(&r, N);
        for (size_t i = 0; i < ne; i++) ex[i] = (int32_t)dm_rng_below(&r, N);
        CHECK(metrics_full(&s, &w, sc, N, tg, nt, ex, ne, a) == DM_OK, "fast: %s", dm_error_message());
        CHECK(metrics_full_naive(&s, &w, sc, N, tg, nt, ex, ne, b) == DM_OK, "naive: %s", dm_error_message());
        for (size_t k = 0; k < s.ncols; k++) {
            double d = fabs(a[k] - b[k]);
            if (d > maxd) maxd = d;
        }
        metrics_spec_free(&s);
    }
    printf("fast vs naive: 60 random users over %d items (ties, up to 40 targets): max |diff| %.3g\n", N, maxd);
    CHECK(maxd <= TOL, "fast and naive kernels differ by %.3g", maxd);
    metrics_ws_free(&w);
    free(sc);
}

static void test_batch_and_multi(void)
{
    const int64_t ks[] = {1, 5, 10};
    metrics_spec s;
    metrics_spec_init(&s, ks, 3, METRICS_TIES_EXPECTED);
    enum { NU = 300, NI = 400 };
    dm_rng r;
    dm_rng_seed(&r, 21);
    float *sc = malloc((size_t)NU * NI * sizeof *sc);
    int64_t toff[NU + 1], eoff[NU + 1];
    int32_t *tg = malloc(NU * 5 * sizeof *tg), *ex = malloc(NU * 30 * sizeof *ex);
    toff[0] = eoff[0] = 0;
    for (int u = 0; u < NU; u++) {
        for (int i = 0; i < NI; i++) sc[(size_t)u * NI + i] = (float)dm_rng_below(&r, 20);
        size_t nt = u % 17 == 0 ? 0 : 1 + dm_rng_below(&r, 5), ne = dm_rng_below(&r, 30);
        toff[u + 1] = toff[u] + (int64_t)nt;
        eoff[u + 1] = eoff[u] + (int64_t)ne;
        for (size_t i = 0; i < nt; i++) tg[toff[u] + (int64_t)i] = (int32_t)dm_rng_below(&r, NI);
        for (size_t i = 0; i < ne; i++) ex[eoff[u] + (int64_t)i] = (int32_t)dm_rng_below(&r, NI);
    }
    double *rows = malloc((size_t)NU * s.ncols * sizeof *rows), one[16];
    CHECK(metrics_full_batch(&s, sc, NU, NI, toff, tg, eoff, ex, rows) == DM_OK, "batch: %s", dm_error_message());
    metrics_ws w;
    metrics_ws_init(&w, NI);
    int same = 1, nanrows = 0;
    for (int u = 0; u < NU; u++) {
        size_t nt = (size_t)(toff[u + 1] - toff[u]);
        if (nt == 0) {
            nanrows += isnan(rows[(size_t)u * s.ncols]);
            continue;
        }
        metrics_full(&s, &w, sc + (size_t)u * NI, NI, tg + toff[u], nt, ex + eoff[u], (size_t)(eoff[u + 1] - eoff[u]),
                     one);
        same &= memcmp(one, rows + (size_t)u * s.ncols, s.ncols * sizeof *one) == 0;
    }
    CHECK(same, "batch rows equal the one-user kernel");
    CHECK(nanrows == (NU + 16) / 17, "users without targets get NaN rows (%d)", nanrows);
    tg[toff[5]] = NI + 3; /* a bad id: the error names the user */
    CHECK(metrics_full_batch(&s, sc, NU, NI, toff, tg, eoff, ex, rows) == DM_EINPUT, "batch error");
    CHECK(strstr(dm_error_message(), "user 5 ") != NULL, "batch error names the user: %s", dm_error_message());
    dm_error_clear();

    /* several targets in a sampled protocol = the full kernel over targets + negatives */
    double maxd = 0;
    for (int trial = 0; trial < 200; trial++) {
        float all[40];
        size_t m = 1 + dm_rng_below(&r, 4), nn = dm_rng_below(&r, 30);
        for (size_t i = 0; i < m + nn; i++) all[i] = (float)dm_rng_below(&r, 6);
        int32_t t[4];
        for (size_t i = 0; i < m; i++) t[i] = (int32_t)i;
        metrics_ws w2;
        metrics_ws_init(&w2, m + nn);
        double a[16], b[16];
        CHECK(metrics_sampled_multi(&s, &w2, all, m, all + m, nn, a) == DM_OK, "multi");
        metrics_full(&s, &w2, all, m + nn, t, m, NULL, 0, b);
        for (size_t k = 0; k < s.ncols; k++) maxd = fmax(maxd, fabs(a[k] - b[k]));
        if (m == 1) {
            metrics_sampled(&s, all[0], all + 1, nn, b);
            for (size_t k = 0; k < s.ncols; k++) maxd = fmax(maxd, fabs(a[k] - b[k]));
        }
        metrics_ws_free(&w2);
    }
    CHECK(maxd == 0, "sampled with several targets differs from the full kernel by %.3g", maxd);
    metrics_ws_free(&w);
    free(rows);
    free(tg);
    free(ex);
    free(sc);
    metrics_spec_free(&s);
}

static void test_errors(void)
{
    const int64_t ks[] = {5};
    metrics_spec s;
    metrics_spec_init(&s, ks, 1, METRICS_TIES_EXPECTED);
    const int64_t bad[] = {5, 0};
    metrics_spec s2;
    CHECK(metrics_spec_init(&s2, bad, 2, METRICS_TIES_EXPECTED) == DM_EINPUT, "K = 0 is refused");
    dm_error_clear();
    float sc[6] = {1, 2, 3, NAN, 5, 6};
    double row[4];
    metrics_ws w;
    metrics_ws_init(&w, 6);
    int32_t t = 3, t2 = 1, ex = 3, far = 9;
    CHECK(metrics_full(&s, &w, sc, 6, &t, 1, NULL, 0, row) == DM_ENUM, "NaN target score is an error");
    dm_error_clear();
    CHECK(metrics_full(&s, &w, sc, 6, &t2, 1, NULL, 0, row) == DM_ENUM, "NaN competitor is an error");
    dm_error_clear();
    CHECK(metrics_full(&s, &w, sc, 6, &t2, 1, &ex, 1, row) == DM_OK, "NaN of an excluded item is fine");
    NEAR(row[metrics_col(&s, METRICS_MRR, 0)], 1.0 / 4, TOL, "rank with the NaN item excluded");
    CHECK(metrics_full(&s, &w, sc, 6, &t2, 0, NULL, 0, row) == DM_EINPUT, "no target is an error");
    dm_error_clear();
    CHECK(metrics_full(&s, &w, sc, 6, &far, 1, NULL, 0, row) == DM_EINPUT, "target outside the catalogue");
    dm_error_clear();
    CHECK(metrics_full(&s, &w, sc, 6, &t2, 1, &far, 1, row) == DM_EINPUT, "excluded outside the catalogue");
    dm_error_clear();
    for (int i = 0; i < 6; i++) CHECK(w.mark[i] == 0, "marks reset after errors (%d)", i);
    CHECK(metrics_sampled(&s, NAN, sc, 3, row) == DM_ENUM, "NaN sampled target");
    dm_error_clear();
    metrics_ties tm;
    CHECK(metrics_ties_parse("pessimistic", &tm) == DM_OK && tm == METRICS_TIES_PESSIMISTIC, "parse ties");
    CHECK(metrics_ties_parse("average", &tm) == DM_ECONFIG, "unknown tie mode refused");
    dm_error_clear();
    metrics_ws_free(&w);
    metrics_spec_free(&s);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void test_samplers(void)
{
    enum { N = 500, NEG = 99 };
    metrics_ws w;
    metrics_ws_init(&w, N);
    uint64_t proto = metrics_protocol_key("uni99/test");
    CHECK(proto != metrics_protocol_key("uni19/test"), "protocol keys differ");
    int32_t items[200], items_rev[200], neg[NEG], neg2[NEG];
    long count[N] = {0};
    const int users = 3000;
    int ok = 1;
    for (int u = 0; u < users; u++) {
        size_t ni = 5 + (size_t)(u % 150);
        for (size_t i = 0; i < ni; i++) items[i] = (int32_t)((u * 7 + i * 3) % N);
        for (size_t i = 0; i < ni; i++) items_rev[i] = items[ni - 1 - i];
        if (metrics_sample_uniform(&w, 42, u, proto, items, ni, NEG, neg) != DM_OK) {
            ok = 0;
            break;
        }
        metrics_sample_uniform(&w, 42, u, proto, items_rev, ni, NEG, neg2);
        ok &= memcmp(neg, neg2, sizeof neg) == 0; /* order of the user's items does not matter */
        int32_t sorted[NEG];
        memcpy(sorted, neg, sizeof neg);
        qsort(sorted, NEG, sizeof *sorted, cmp_i32);
        for (int i = 0; i < NEG; i++) {
            ok &= sorted[i] >= 0 && sorted[i] < N;
            ok &= i == 0 || sorted[i] != sorted[i - 1];
            for (size_t k = 0; k < ni; k++) ok &= neg[i] != items[k];
            count[neg[i]]++;
        }
    }
    CHECK(ok, "uniform negatives: in range, distinct, never the user's items, independent of item order");
    for (int i = 0; i < N; i++) CHECK(w.mark[i] == 0, "marks reset (%d)", i);
    /* keying: user 17 drawn alone, in a fresh workspace, gives the same set */
    {
        metrics_ws w2;
        metrics_ws_init(&w2, N);
        size_t ni = 5 + 17;
        for (size_t i = 0; i < ni; i++) items[i] = (int32_t)((17 * 7 + i * 3) % N);
        metrics_sample_uniform(&w2, 42, 17, proto, items, ni, NEG, neg);
        metrics_sample_uniform(&w, 42, 17, proto, items, ni, NEG, neg2);
        CHECK(memcmp(neg, neg2, sizeof neg) == 0, "the negatives of a user do not depend on other users");
        metrics_sample_uniform(&w, 43, 17, proto, items, ni, NEG, neg2);
        CHECK(memcmp(neg, neg2, sizeof neg) != 0, "another seed gives other negatives");
        metrics_ws_free(&w2);
    }
    /* frequencies: every item is eligible for most users; chi-square against the exact expectation */
    {
        double expect[N] = {0};
        for (int u = 0; u < users; u++) {
            size_t ni = 5 + (size_t)(u % 150);
            char touched[N] = {0};
            for (size_t i = 0; i < ni; i++) touched[(u * 7 + i * 3) % N] = 1;
            size_t distinct = 0;
            for (int i = 0; i < N; i++) distinct += touched[i];
            for (int i = 0; i < N; i++)
                if (!touched[i]) expect[i] += (double)NEG / (double)(N - distinct);
        }
        double chi2 = 0;
        for (int i = 0; i < N; i++) chi2 += (count[i] - expect[i]) * (count[i] - expect[i]) / expect[i];
        /* df ~ 499: mean 499, sd ~ 32; 700 is > 6 sd */
        printf("uniform negatives: chi-square %.1f over %d items (df ~ %d)\n", chi2, N, N - 1);
        CHECK(chi2 < 700, "uniform negatives are not uniform: chi-square %.1f", chi2);
    }
    /* too few eligible items: an error, not a hang; and the dense path (few eligible) still works */
    {
        int32_t many[N];
        for (int i = 0; i < N; i++) many[i] = i;
        CHECK(metrics_sample_uniform(&w, 1, 5, proto, many, N - 50, NEG, neg) == DM_EINPUT,
              "50 eligible items for 99 negatives is an error");
        dm_error_clear();
        CHECK(metrics_sample_uniform(&w, 1, 5, proto, many + 1, N - 120, NEG, neg) == DM_OK, "dense path");
        int ok2 = 1;
        for (int i = 0; i < NEG; i++) ok2 &= neg[i] == 0 || neg[i] >= N - 119;
        CHECK(ok2, "dense path draws only eligible items");
        for (int i = 0; i < N; i++) CHECK(w.mark[i] == 0, "marks reset after the dense path (%d)", i);
    }

    /* popularity */
    {
        double wt[N];
        for (int i = 0; i < N; i++) wt[i] = i % 10 == 0 ? 0.0 : 1.0 + (double)(i % 7);
        metrics_alias a;
        CHECK(metrics_alias_init(&a, wt, N) == DM_OK, "alias");
        /* with one negative and no exclusions the draw is exactly proportional to the weight */
        long cnt[N] = {0};
        const int draws = 200000;
        uint64_t pp = metrics_protocol_key("pop1/test");
        int zero_drawn = 0;
        for (int u = 0; u < draws; u++) {
            int32_t x;
            metrics_sample_pop(&w, &a, 9, u, pp, NULL, 0, 1, &x);
            cnt[x]++;
            zero_drawn |= wt[x] == 0;
        }
        CHECK(!zero_drawn, "items of zero popularity are never drawn");
        double chi2 = 0;
        int df = 0;
        for (int i = 0; i < N; i++)
            if (a.p[i] > 0) {
                double e = a.p[i] * draws;
                chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
                df++;
            }
        printf("popularity negatives: chi-square %.1f (df %d)\n", chi2, df - 1);
        CHECK(chi2 < df + 8 * sqrt(2.0 * df), "popularity draws do not follow the weights: chi-square %.1f", chi2);
        /* 99 distinct negatives avoiding the user's items */
        int32_t its[30];
        for (int i = 0; i < 30; i++) its[i] = i * 11;
        int ok3 = 1;
        for (int u = 0; u < 200; u++) {
            CHECK(metrics_sample_pop(&w, &a, 9, u, pp, its, 30, NEG, neg) == DM_OK, "pop");
            qsort(neg, NEG, sizeof *neg, cmp_i32);
            for (int i = 0; i < NEG; i++) {
                ok3 &= wt[neg[i]] > 0 && (i == 0 || neg[i] != neg[i - 1]);
                for (int k = 0; k < 30; k++) ok3 &= neg[i] != its[k];
            }
        }
        CHECK(ok3, "popularity negatives: distinct, non-zero weight, never the user's items");
        /* the fallback: the user holds nearly all the mass */
        double wt2[N];
        for (int i = 0; i < N; i++) wt2[i] = i < 400 ? 1e6 : 1e-6;
        metrics_alias a2;
        metrics_alias_init(&a2, wt2, N);
        int32_t heavy[400];
        for (int i = 0; i < 400; i++) heavy[i] = i;
        CHECK(metrics_sample_pop(&w, &a2, 3, 1, pp, heavy, 400, NEG, neg) == DM_OK, "fallback path");
        metrics_sample_pop(&w, &a2, 3, 1, pp, heavy, 400, NEG, neg2);
        CHECK(memcmp(neg, neg2, sizeof neg) == 0, "fallback path is deterministic");
        int ok4 = 1;
        qsort(neg, NEG, sizeof *neg, cmp_i32);
        for (int i = 0; i < NEG; i++) ok4 &= neg[i] >= 400 && (i == 0 || neg[i] != neg[i - 1]);
        CHECK(ok4, "fallback draws distinct eligible items");
        CHECK(metrics_sample_pop(&w, &a2, 3, 1, pp, heavy, 400, 101, neg) == DM_EINPUT, "too few: error");
        dm_error_clear();
        for (int i = 0; i < N; i++) CHECK(w.mark[i] == 0, "marks reset after popularity sampling (%d)", i);
        double bad[3] = {1, -1, 0};
        metrics_alias a3;
        CHECK(metrics_alias_init(&a3, bad, 3) == DM_EINPUT, "negative weight refused");
        dm_error_clear();
        metrics_alias_free(&a2);
        metrics_alias_free(&a);
    }
    metrics_ws_free(&w);
}

static void test_speed(void)
{
    enum { N = 12000, USERS = 2000 };
    const int64_t ks[] = {1, 5, 10, 20};
    metrics_spec s;
    metrics_spec_init(&s, ks, 4, METRICS_TIES_EXPECTED);
    metrics_ws w;
    metrics_ws_init(&w, N);
    float *sc = malloc((size_t)N * sizeof *sc);
    dm_rng r;
    dm_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) sc[i] = (float)dm_rng_normal(&r);
    int32_t ex[40];
    double row[13], sum = 0;
    double t0 = tl_now();
    for (int u = 0; u < USERS; u++) {
        for (int i = 0; i < 40; i++) ex[i] = (int32_t)((u * 31 + i * 97) % N);
        int32_t t = (int32_t)((u * 13 + 5) % N);
        metrics_full(&s, &w, sc, N, &t, 1, ex, 40, row);
        sum += row[12];
    }
    double dt = tl_now() - t0;
    printf("speed: full ranking over %d items: %.2f us/user (%.2f s for 22k users), checksum %.6f\n", N,
           1e6 * dt / USERS, dt / USERS * 22000, sum);
    /* information only: speed is measured by make bench (bench_eval), never asserted in a test */
    free(sc);
    metrics_ws_free(&w);
    metrics_spec_free(&s);
}

int main(void)
{
    test_reference();
    test_known_answers();
    test_fast_vs_naive();
    test_batch_and_multi();
    test_errors();
    test_samplers();
    test_speed();
    return tap_done("metrics");
}
