/* test_pq.c: product quantisation (src/pq/pq.h) on one shard:
 *  - shapes refused with their message (pq.m not dividing D, pq.k above 256)
 *  - encoding and ADC scoring bitwise equal to their naive twins (the same sums in the same order)
 *  - ADC scores = the decoded latents' dot products within the float error of the two summation
 *    orders, and the ADC ranking of a codebook that reproduces every item exactly is the exact one
 *  - pq_train = its naive serial twin (double centroid sums): the same codes, centroids within a few
 *    float roundings; a known answer (K distinct sub-vectors per sub-space: zero error)
 *  - exact re-ranking of the top R (pq_rerank): exact scores in exact order above the rest, the
 *    rest in ADC order, history untouched; on tied scores the same top R as dm_top_k_f32
 *  - the fixed-point helpers (exponent bound, rounding)
 *  - OPQ: pq_polar's polar factor (orthogonal, R^T A symmetric PSD, a known answer, rank-deficient
 *    and zero A, NaN refused); pq_train_opq's rotation orthogonal, its codes = pq_encode's = the
 *    naive twin's, ADC of the rotated query = q . x^, error below plain PQ's
 *  - the queries' metric (pq.metric = "query"): second moment, the floored and allocated square
 *    root of a known spectrum, score error far below plain PQ's for queries in a sub-space
 *  - residual stages (pq.stages): the shape refused with its message; encoding bitwise its naive
 *    twin, each stage's code the nearest centroid of the float residual the earlier stages leave;
 *    decoding the stages' sum; ADC over the M L code columns (float and fast scan) against the
 *    decoded dot products and the naive twins; training = its naive twin, the training's codes =
 *    pq_encode's, the error falling with every stage, a known answer (two stages recover items
 *    made of one of K values plus one of K small offsets exactly); OPQ on stages: rotation
 *    orthogonal, codes pq_encode's, error at most the stages' without it
 * The multi-shard training (bitwise at 1, 2, 3 ranks, SciPy's error) is tests/mpi/test_pq_train.c. */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/sort.h"
#include "../../src/pq/pq.h"
#include "tap.h"
#include "testlib.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void shapes(void)
{
    pq_codebook cb;
    CHECK(pq_init(&cb, 50, 16, 256, "pq: align") == DM_ECONFIG && strstr(dm_error_message(), "pq.m = 16 sub-spaces does not divide the latent dimension 50"),
          "m not dividing d: %s", dm_error_message());
    dm_error_clear();
    CHECK(pq_init(&cb, 64, 16, 300, "pq: align") == DM_ECONFIG && strstr(dm_error_message(), "pq.k = 300 centroids per sub-space; expected 1 to 256"),
          "k above 256: %s", dm_error_message());
    dm_error_clear();
    CHECK(pq_init(&cb, 64, 16, 256, "pq") == DM_OK && cb.ds == 4 && cb.c, "64 = 16 x 4");
    pq_free(&cb);
    CHECK(cb.c == NULL, "pq_free clears");
}

/* kernels against their twins, ADC against decoded dot products (M = 6: the generic scoring loop;
 * M = 8, 16: eight codes per load) */
static void kernels(size_t D, int M, int K)
{
    dm_rng r;
    dm_rng_seed(&r, 7);
    const size_t n = 1003, B = 5;
    pq_codebook cb;
    CHECK(pq_init(&cb, D, M, K, "pq") == DM_OK, "init");
    tl_randn(&r, cb.c, (size_t)K * D, 1.0);
    float *x = tl_randn_new(&r, n * D, 1.0), *q = tl_randn_new(&r, B * D, 1.0), *xh = malloc(n * D * sizeof *xh);
    float *lut = malloc(B * (size_t)M * K * sizeof *lut), *s = malloc(B * n * sizeof *s), *sn = malloc(B * n * sizeof *sn);
    uint8_t *c = malloc(n * M), *cn = malloc(n * M);
    CHECK(pq_encode(&cb, x, n, c) == DM_OK && pq_encode_naive(&cb, x, n, cn) == DM_OK, "encode");
    CHECK(!memcmp(c, cn, n * M), "encode = its naive twin");
    /* each code is the nearest centroid (in double, up to a float-rounding near tie) */
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < M; m++) {
            double best = INFINITY, got = 0;
            for (int k = 0; k < K; k++) {
                double d = 0;
                for (size_t j = 0; j < cb.ds; j++) {
                    double t = (double)x[i * D + m * cb.ds + j] - cb.c[((size_t)m * K + k) * cb.ds + j];
                    d += t * t;
                }
                if (d < best) best = d;
                if (k == c[i * M + m]) got = d;
            }
            wrong += got > best * (1 + 1e-6);
        }
    CHECK(wrong == 0, "%zu codes are not the nearest centroid", wrong);
    pq_decode(&cb, c, n, xh);
    for (size_t b = 0; b < B; b++) pq_adc_lut(&cb, q + b * D, lut + b * M * K);
    pq_adc_scores(lut, B, c, n, M, K, s);
    pq_adc_scores_naive(lut, B, c, n, M, K, sn);
    CHECK(!memcmp(s, sn, B * n * sizeof *s), "ADC scores = the naive twin's, bitwise");
    /* |ADC - q.x^| <= gamma_(ds + M) sum_j |q_j x^_j|: each table entry sums ds products, the score
       M entries (Higham's bound for recursive summation, u = 2^-24) */
    double worst = 0;
    const double g = (double)(cb.ds + M) * ldexp(1.0, -24) / (1 - (double)(cb.ds + M) * ldexp(1.0, -24));
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) {
            double dot = 0, abs = 0;
            for (size_t j = 0; j < D; j++) {
                dot += (double)q[b * D + j] * xh[i * D + j];
                abs += fabs((double)q[b * D + j] * xh[i * D + j]);
            }
            double e = fabs(s[b * n + i] - dot) / (g * abs);
            if (e > worst) worst = e;
        }
    CHECK(worst <= 1.0, "ADC vs the decoded dot product: %.3g of the bound", worst);
    printf("  D %zu M %d K %d: ADC vs decoded dot products: worst %.3f of gamma_(ds+M) sum|q x^|\n", D, M, K, worst);
    TL_FREE(x, q, xh, lut, s, sn, c, cn);
    pq_free(&cb);
}

/* pq_train against its naive twin; known answer */
static void training(void)
{
    dm_rng r;
    dm_rng_seed(&r, 11);
    const size_t N = 700, D = 12;
    const int M = 4, K = 24;
    float *x = tl_randn_new(&r, N * D, 1.0);
    for (size_t i = 0; i < N; i++) /* a little structure: eight offsets */
        for (size_t j = 0; j < D; j++) x[i * D + j] += (float)(3.0 * ((i % 8) == j % 8));
    pq_codebook a, b;
    pq_train_stats sa, sb;
    uint8_t *ca = malloc(N * M), *cbn = malloc(N * M);
    CHECK(pq_init(&a, D, M, K, "pq") == DM_OK && pq_init(&b, D, M, K, "pq") == DM_OK, "init");
    CHECK(pq_train(&a, x, N, 0, N, 30, 5, NULL, ca, &sa) == DM_OK, "train: %s", dm_error_message());
    CHECK(pq_train_naive(&b, x, N, 30, 5, cbn, &sb) == DM_OK, "naive train");
    CHECK(!memcmp(ca, cbn, N * M), "codes = the naive twin's");
    CHECK(sa.iters == sb.iters, "iterations %d vs %d", sa.iters, sb.iters);
    /* centroids: a mean of at most N floats, fixed point vs double sums, one float rounding each */
    double cd = 0, cm = tl_maxabs(a.c, (size_t)K * D);
    for (size_t q = 0; q < (size_t)K * D; q++) cd = fmax(cd, fabs((double)a.c[q] - b.c[q]));
    CHECK(cd <= 2 * ldexp(cm, -24), "centroids differ by %.3g (max %.3g)", cd, cm);
    NEAR(sa.err / sa.norm, sb.err / sb.norm, 1e-5, "relative error vs naive");
    CHECK(sa.err / sa.norm < 0.5, "relative error %.3f", sa.err / sa.norm);
    printf("  train: %d iterations (last changed %lld), relative error %.4f (naive %.4f), centroids within %.2g\n", sa.iters,
           (long long)sa.changed, sa.err / sa.norm, sb.err / sb.norm, cd);
    /* known answer: every sub-vector one of K distinct values -> zero error, codes decode exactly */
    float *y = malloc(N * D * sizeof *y), *yh = malloc(N * D * sizeof *yh), *pts = tl_randn_new(&r, (size_t)K * D, 1.0);
    for (size_t i = 0; i < N; i++)
        for (int m = 0; m < M; m++)
            memcpy(y + i * D + m * a.ds, pts + (((i * 7 + (size_t)m) % (size_t)K) * D) + m * a.ds, a.ds * sizeof *y);
    CHECK(pq_train(&a, y, N, 0, N, 30, 3, NULL, ca, &sa) == DM_OK, "train the known answer");
    pq_decode(&a, ca, N, yh);
    CHECK(!memcmp(y, yh, N * D * sizeof *y) && sa.err == 0 && sa.empty == 0, "K distinct sub-vectors: decoded exactly (err %g, empty %lld)",
          sa.err, (long long)sa.empty);
    /* fewer items than centroids: duplicates, no failure */
    CHECK(pq_train(&a, y, 5, 0, 5, 3, 3, NULL, ca, &sa) == DM_OK && sa.err == 0, "5 items, 24 centroids");
    float bad = NAN;
    memcpy(y, &bad, sizeof bad);
    CHECK(pq_train(&a, y, N, 0, N, 3, 3, NULL, ca, &sa) == DM_EINPUT && strstr(dm_error_message(), "not finite"), "NaN refused: %s",
          dm_error_message());
    dm_error_clear();
    TL_FREE(x, ca, cbn, y, yh, pts);
    pq_free(&a);
    pq_free(&b);
}

/* pq_rerank: the R best unmarked items by ADC take their exact scores, in exact order, above every
 * other item; the others keep their ADC order; history marks untouched */
static void rerank(void)
{
    dm_rng r;
    dm_rng_seed(&r, 3);
    const size_t n = 500, D = 8, R = 20;
    float *e = tl_randn_new(&r, n * D, 1.0), *q = tl_randn_new(&r, D, 1.0), *adc = tl_randn_new(&r, n, 1.0), *sc = malloc(n * sizeof *sc);
    uint8_t *mark = calloc(n, 1);
    int32_t top[20], want[20];
    for (size_t i = 0; i < n; i += 7) mark[i] = 1;
    for (size_t i = 0; i < n; i++) adc[i] += 3.0f * (float)(i % 5 == 1); /* the ADC favourites */
    memcpy(sc, adc, n * sizeof *sc);
    pq_rerank(sc, n, D, q, e, mark, R, top);
    int nt = dm_top_k_f32(adc, n, mark, (int)R, want);
    int good = nt == (int)R, order = 1, rest = 1, marks = 1;
    uint8_t *in = calloc(n, 1);
    float lo = INFINITY;
    for (int t = 0; t < nt; t++) {
        in[want[t]] = 1;
        float x = cblas_sdot((int)D, q, 1, e + (size_t)want[t] * D, 1);
        good &= sc[want[t]] == x;
        lo = fminf(lo, x);
    }
    for (size_t i = 0; i < n; i++) {
        marks &= mark[i] == (i % 7 == 0);
        if (in[i]) continue;
        rest &= sc[i] < lo;
        for (size_t j = 0; j < n; j++)
            if (!in[j] && adc[i] > adc[j]) order &= sc[i] >= sc[j];
    }
    CHECK(good, "the top %zu take their exact scores", R);
    CHECK(rest, "every other item below the lowest exact score");
    CHECK(order, "the others keep their ADC order");
    CHECK(marks, "history marks restored");
    TL_FREE(e, q, adc, sc, mark, in);
}

/* pq_rerank's selection on tied scores (as fast-scan scores are: base + delta S): the same items in
 * the same order as dm_top_k_f32 (ties to the lower index) for R from 1 to beyond n; the chosen
 * take their exact scores (q = 1, e_i = 100 + i: above every ADC score, so nothing is shifted) */
static void rerank_ties(void)
{
    dm_rng r;
    dm_rng_seed(&r, 5);
    const size_t n = 5001;
    float *adc = malloc(n * sizeof *adc), *sc = malloc(n * sizeof *sc), *e = malloc(n * sizeof *e), q = 1.0f;
    uint8_t *mark = calloc(n, 1);
    int32_t *top = malloc(n * sizeof *top), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) {
        adc[i] = (float)dm_rng_below(&r, 8) / 8.0f;
        e[i] = (float)(100 + i);
        mark[i] = i % 11 == 3;
    }
    static const size_t Rs[] = {1, 7, 100, 1000, 4545, 6000};
    for (size_t a = 0; a < sizeof Rs / sizeof *Rs; a++) {
        const size_t R = Rs[a];
        memcpy(sc, adc, n * sizeof *sc);
        pq_rerank(sc, n, 1, &q, e, mark, R, top);
        int nt = dm_top_k_f32(adc, n, mark, (int)R, want), exact = 1;
        size_t free_items = 0;
        uint8_t *in = calloc(n, 1);
        for (int t = 0; t < nt; t++) in[want[t]] = 1;
        for (size_t i = 0; i < n; i++) {
            exact &= in[i] ? sc[i] == e[i] : sc[i] == adc[i];
            free_items += !mark[i];
        }
        CHECK(nt == (int)(R < free_items ? R : free_items) && !memcmp(top, want, (size_t)nt * sizeof *top) && exact,
              "R %zu: the top %d are dm_top_k_f32's, in its order, with their exact scores, the rest unchanged", R, nt);
        free(in);
    }
    TL_FREE(adc, sc, e, mark, top, want);
}

/* max |R R^T - I| and max |S - S^T| with S = R^T A, and the least x^T S x / |x|^2 over random x */
static void polar_check(const double *A, size_t D, const double *R, double *orth, double *asym, double *minq, dm_rng *r)
{
    double *S = calloc(D * D, sizeof *S), *x = malloc(D * sizeof *x);
    *orth = *asym = 0;
    *minq = INFINITY;
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) {
            double rr = 0, sa = 0;
            for (size_t j = 0; j < D; j++) rr += R[a * D + j] * R[b * D + j], sa += R[j * D + a] * A[j * D + b];
            *orth = fmax(*orth, fabs(rr - (a == b)));
            S[a * D + b] = sa;
        }
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) *asym = fmax(*asym, fabs(S[a * D + b] - S[b * D + a]));
    for (int t = 0; t < 200; t++) {
        double nx = 0, q = 0;
        for (size_t a = 0; a < D; a++) x[a] = dm_rng_normal(r), nx += x[a] * x[a];
        for (size_t a = 0; a < D; a++)
            for (size_t b = 0; b < D; b++) q += x[a] * S[a * D + b] * x[b];
        *minq = fmin(*minq, q / nx);
    }
    free(S);
    free(x);
}

/* pq_polar: R orthogonal and R^T A = V S V^T symmetric positive semi-definite (which makes R the
 * polar factor U V^T, the maximiser of sum R_ab A_ab); a known answer; rank-deficient and zero A;
 * a NaN refused. Tolerances: Jacobi in double, about D^2 eps of |A| (here 2^-40 relative). */
static void polar(void)
{
    dm_rng r;
    dm_rng_seed(&r, 23);
    const size_t Ds[] = {1, 5, 12, 64};
    for (size_t t = 0; t < sizeof Ds / sizeof *Ds; t++) {
        const size_t D = Ds[t];
        double *A = malloc(D * D * sizeof *A), *R = malloc(D * D * sizeof *R), orth, asym, minq, amax = 0;
        for (size_t q = 0; q < D * D; q++) A[q] = dm_rng_normal(&r), amax = fmax(amax, fabs(A[q]));
        CHECK(pq_polar(A, D, R) == DM_OK, "polar %zu", D);
        polar_check(A, D, R, &orth, &asym, &minq, &r);
        CHECK(orth <= ldexp(1.0, -40) && asym <= ldexp(amax * (double)D, -40) && minq >= -ldexp(amax * (double)D, -40),
              "D %zu: |R R^T - I| %.2g, asymmetry of R^T A %.2g, least Rayleigh quotient %.3g", D, orth, asym, minq);
        /* rank 2 (A = u v^T + w z^T) and zero: R orthogonal, R^T A still symmetric PSD */
        for (int z = 0; z < 2; z++) {
            double u[64], v[64], w[64], y[64];
            for (size_t a = 0; a < D; a++) u[a] = dm_rng_normal(&r), v[a] = dm_rng_normal(&r), w[a] = dm_rng_normal(&r), y[a] = dm_rng_normal(&r);
            for (size_t a = 0; a < D; a++)
                for (size_t b = 0; b < D; b++) A[a * D + b] = z ? 0.0 : u[a] * v[b] + w[a] * y[b];
            CHECK(pq_polar(A, D, R) == DM_OK, "polar %zu %s", D, z ? "zero" : "rank 2");
            polar_check(A, D, R, &orth, &asym, &minq, &r);
            CHECK(orth <= ldexp(1.0, -40) && asym <= ldexp(10.0 * (double)D, -40) && minq >= -ldexp(10.0 * (double)D, -40),
                  "D %zu %s: |R R^T - I| %.2g, asymmetry %.2g, least Rayleigh quotient %.3g", D, z ? "zero" : "rank 2", orth, asym, minq);
        }
        free(A);
        free(R);
    }
    /* known answer: A = Q diag(3, 2, 1, 0.5) with Q a rotation in the (0, 2) plane and a sign flip: R = Q */
    const double c = cos(0.7), s = sin(0.7);
    const double Q[16] = {c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 0, 0, 0, -1}, sg[4] = {3, 2, 1, 0.5};
    double A[16], R[16], d = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) A[a * 4 + b] = Q[a * 4 + b] * sg[b];
    CHECK(pq_polar(A, 4, R) == DM_OK, "polar known");
    for (int q = 0; q < 16; q++) d = fmax(d, fabs(R[q] - Q[q]));
    CHECK(d <= 1e-14, "known answer: R = Q within %.2g", d);
    A[5] = NAN;
    CHECK(pq_polar(A, 4, R) == DM_EINPUT && strstr(dm_error_message(), "non-finite entry (1, 1)"), "NaN refused: %s", dm_error_message());
    dm_error_clear();
}

/* OPQ on one shard: the rotation orthogonal in float; encoding with it = the naive twin and = the
 * training's codes; the ADC table scores the rotated query: lut sums = (q rot) . y^ and, rotated back,
 * q . (y^ rot^T) within the float error of the sums; the error below plain PQ's on correlated latents;
 * opq = 0 is pq_train itself (no rotation) */
static void opq(void)
{
    dm_rng r;
    dm_rng_seed(&r, 31);
    const size_t N = 1500, D = 16;
    const int M = 4, K = 16;
    float *x = tl_randn_new(&r, N * D, 1.0), *mix = tl_randn_new(&r, D * D, 1.0), *y = malloc(N * D * sizeof *y);
    for (size_t i = 0; i < N; i++) /* decaying scales, then mixed: correlated across the sub-spaces */
        for (size_t b = 0; b < D; b++) {
            double v = 0;
            for (size_t a = 0; a < D; a++) v += x[i * D + a] * exp(-(double)a / 3.0) * mix[a * D + b];
            y[i * D + b] = (float)v;
        }
    pq_codebook p, o, z;
    pq_train_stats sp, so, sz;
    uint8_t *cp = malloc(N * M), *co = malloc(N * M), *ce = malloc(N * M), *cn = malloc(N * M), *cz = malloc(N * M);
    CHECK(pq_init(&p, D, M, K, "pq") == DM_OK && pq_init(&o, D, M, K, "pq") == DM_OK && pq_init(&z, D, M, K, "pq") == DM_OK, "init");
    CHECK(pq_train(&p, y, N, 0, N, 20, 7, NULL, cp, &sp) == DM_OK, "plain");
    CHECK(pq_train_opq(&o, y, N, 0, N, 20, 8, 4, 7, NULL, co, &so) == DM_OK && o.rot, "opq: %s", dm_error_message());
    CHECK(pq_train_opq(&z, y, N, 0, N, 20, 0, 4, 7, NULL, cz, &sz) == DM_OK && !z.rot && !memcmp(z.c, p.c, (size_t)K * D * sizeof(float)) &&
              !memcmp(cz, cp, N * M),
          "opq = 0 is pq_train");
    double orth = 0;
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) {
            double rr = 0;
            for (size_t j = 0; j < D; j++) rr += (double)o.rot[a * D + j] * o.rot[b * D + j];
            orth = fmax(orth, fabs(rr - (a == b)));
        }
    CHECK(orth <= 4 * D * ldexp(1.0, -24), "rotation orthogonal in float: %.2g", orth);
    CHECK(pq_encode(&o, y, N, ce) == DM_OK && !memcmp(ce, co, N * M), "encode with the rotation = the training's codes");
    CHECK(pq_encode_naive(&o, y, N, cn) == DM_OK && !memcmp(cn, co, N * M), "encode = its naive twin");
    const double rp = sp.err / sp.norm, ro = so.err / so.norm;
    CHECK(ro < 0.8 * rp, "OPQ relative error %.4f, plain %.4f", ro, rp);
    /* the table of a query against the decoded items, rotated back */
    float *yh = malloc(N * D * sizeof *yh), *q = tl_randn_new(&r, D, 1.0), lut[4 * 16];
    pq_decode(&o, co, N, yh);
    pq_adc_lut(&o, q, lut);
    double worst = 0;
    for (size_t i = 0; i < N; i++) {
        double s = 0, e = 0, bound = 0;
        for (int m = 0; m < M; m++) s += lut[m * K + co[i * M + (size_t)m]];
        for (size_t a = 0; a < D; a++) { /* q . (y^ rot^T) */
            double xa = 0;
            for (size_t b = 0; b < D; b++) xa += (double)yh[i * D + b] * o.rot[a * D + b];
            e += q[a] * xa;
            for (size_t b = 0; b < D; b++) bound += fabs(q[a] * o.rot[a * D + b] * yh[i * D + b]);
        }
        worst = fmax(worst, fabs(s - e) / bound);
    }
    CHECK(worst <= 2.0 * (D + 2) * ldexp(1.0, -24), "ADC of the rotated query = q . x^ within %.2g of sum |terms|", worst);
    printf("  opq: relative error %.4f (plain PQ %.4f), rotation orthogonal within %.2g, ADC within %.2g\n", ro, rp, orth, worst);
    TL_FREE(x, mix, y, cp, co, ce, cn, cz, yh, q);
    pq_free(&p);
    pq_free(&o);
    pq_free(&z);
}

static void fixed_point(void)
{
    int S = pq_fix_shift(3.0, 1000);
    CHECK(1000.0 * 3.0 * ldexp(1.0, S) <= ldexp(1.0, 62) && 1000.0 * 3.0 * ldexp(1.0, S + 1) > ldexp(1.0, 62), "shift %d", S);
    CHECK(pq_fix_shift(0.0, 10) == 0 && pq_fix_shift(NAN, 10) == 0, "degenerate shifts");
    CHECK(pq_fix(1.5, 1) == 3 && pq_fix(-0.75, 2) == -3 && pq_fix(0.5, 0) == 0, "rounding (half to even)");
}

/* the queries' metric (pq_second_moment, pq_query_metric, pq_set_metric):
 *  - the second moment of rows = the float64 one within the fixed-point rounding of the values
 *  - on sig = V diag(l) V^T with known V and l (rank 5 of 12, M = 4): T Ti^T = I (scores kept);
 *    each column of T is +-v_j sqrt(l'_j) for a direction j, Ti's the same with 1 / sqrt(l'_j),
 *    l' = max(l, floor l_max) / mean; the directions fall into the sub-spaces by the eigenvalue
 *    allocation (a twin of the greedy rule here); lam = l
 *  - queries in a 3-dimensional sub-space of 16: PQ in the metric (y = x T, queries q Ti, through
 *    pq_set_metric and pq_adc_lut) has an expected squared score error below 0.3x plain PQ's at
 *    the same size; ADC = (q Ti) . y^ within the float bound
 *  - refusals: zero and non-finite sig, a floor outside (0, 1], M not dividing D, non-finite rows */
static void orthonormal(dm_rng *r, size_t D, double *V) /* V (D, D), columns orthonormal */
{
    float *g = tl_randn_new(r, D * D, 1.0);
    for (size_t c = 0; c < D; c++) {
        for (size_t a = 0; a < D; a++) V[a * D + c] = g[a * D + c];
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k < c; k++) {
                double d = 0;
                for (size_t a = 0; a < D; a++) d += V[a * D + k] * V[a * D + c];
                for (size_t a = 0; a < D; a++) V[a * D + c] -= d * V[a * D + k];
            }
        double n = 0;
        for (size_t a = 0; a < D; a++) n += V[a * D + c] * V[a * D + c];
        for (size_t a = 0; a < D; a++) V[a * D + c] /= sqrt(n);
    }
    free(g);
}

static void query_metric(void)
{
    dm_rng r;
    dm_rng_seed(&r, 77);
    /* second moment of rows */
    {
        const size_t N = 300, D = 5;
        float *q = tl_randn_new(&r, N * D, 2.0);
        double sig[25], ref[25] = {0}, mx = 0;
        CHECK(pq_second_moment(q, N, D, N, NULL, sig) == DM_OK, "second moment");
        for (size_t u = 0; u < N; u++)
            for (size_t a = 0; a < D; a++) {
                mx = fmax(mx, fabs(q[u * D + a]));
                for (size_t b = 0; b < D; b++) ref[a * D + b] += (double)q[u * D + a] * q[u * D + b] / (double)N;
            }
        /* each value rounded to 2^-s, s = floor(S / 2) for N (mx 2^S) ... : an entry is off by at most 2 mx 2^-s */
        const int s = pq_fix_shift(mx * mx, N) / 2;
        double worst = 0;
        for (size_t k = 0; k < 25; k++) worst = fmax(worst, fabs(sig[k] - ref[k]));
        CHECK(worst <= 2.0 * mx * ldexp(1.0, -s) && sig[1] == sig[5], "second moment within %.2g of float64's (bound %.2g), symmetric", worst,
              2.0 * mx * ldexp(1.0, -s));
        q[7] = NAN;
        CHECK(pq_second_moment(q, N, D, N, NULL, sig) == DM_EINPUT && strstr(dm_error_message(), "non-finite"), "NaN state refused: %s",
              dm_error_message());
        free(q);
    }
    /* a known spectrum */
    const size_t D = 12;
    const int M = 4;
    const double fl = 1e-3, lv[12] = {9.0, 4.0, 2.5, 1.0, 0.2, 0, 0, 0, 0, 0, 0, 0};
    double V[144], sig[144], T[144], Ti[144], lam[12];
    orthonormal(&r, D, V);
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) {
            double s = 0;
            for (size_t j = 0; j < D; j++) s += V[a * D + j] * lv[j] * V[b * D + j];
            sig[a * D + b] = s;
        }
    CHECK(pq_query_metric(sig, D, M, fl, T, Ti, lam) == DM_OK, "metric: %s", dm_error_message());
    double lp[12], mean = 0, ident = 0;
    for (size_t j = 0; j < D; j++) mean += (lp[j] = fmax(lv[j], fl * lv[0]));
    mean /= (double)D;
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) {
            double s = 0;
            for (size_t c = 0; c < D; c++) s += T[a * D + c] * Ti[b * D + c];
            ident = fmax(ident, fabs(s - (a == b)));
        }
    CHECK(ident <= 1e-9, "T Ti^T = I within %.2g", ident);
    /* twin of the allocation: lv is sorted; the first M one to a sub-space, then the smallest product with room */
    const size_t ds = D / (size_t)M;
    size_t fill[4] = {0}, want[12];
    double lg[4] = {0};
    for (size_t t = 0; t < D; t++) {
        size_t best = t < (size_t)M ? t : 99;
        for (size_t m = 0; t >= (size_t)M && m < (size_t)M; m++)
            if (fill[m] < ds && (best == 99 || lg[m] < lg[best])) best = m;
        want[best * ds + fill[best]++] = t;
        lg[best] += log(lp[t] / mean);
    }
    int cols_ok = 1;
    for (size_t c = 0; c < D; c++) {
        const size_t j = want[c];
        double dot = 0, dti = 0, n2 = 0;
        for (size_t a = 0; a < D; a++) {
            dot += V[a * D + j] * T[a * D + c];
            dti += V[a * D + j] * Ti[a * D + c];
            n2 += T[a * D + c] * T[a * D + c];
        }
        const double w = sqrt(lp[j] / mean);
        /* directions of equal eigenvalue (the floored ones) may mix: then only the norm is fixed */
        const int distinct = j < 5;
        if (fabs(sqrt(n2) - w) > 1e-9 * w || (distinct && (fabs(fabs(dot) - w) > 1e-9 * w || fabs(fabs(dti) - 1 / w) > 1e-9 / w))) cols_ok = 0;
    }
    CHECK(cols_ok, "columns of T and Ti: +-v_j sqrt(l'_j) and +-v_j / sqrt(l'_j), by the eigenvalue allocation");
    double ls[12];
    memcpy(ls, lam, sizeof ls);
    int lam_ok = 1;
    for (size_t j = 0; j < D; j++) { /* lam is in no order: match each known eigenvalue */
        size_t best = 0;
        for (size_t k = 1; k < D; k++)
            if (fabs(ls[k] - lv[j]) < fabs(ls[best] - lv[j])) best = k;
        if (fabs(ls[best] - lv[j]) > 1e-10 * lv[0]) lam_ok = 0;
        ls[best] = INFINITY;
    }
    CHECK(lam_ok, "lam = the eigenvalues");
    double z[144] = {0};
    CHECK(pq_query_metric(z, D, M, fl, T, Ti, NULL) == DM_EINPUT && strstr(dm_error_message(), "second moment is zero"), "zero: %s",
          dm_error_message());
    CHECK(pq_query_metric(sig, D, M, 0.0, T, Ti, NULL) == DM_EINPUT && strstr(dm_error_message(), "floor 0 is not in (0, 1]"), "floor: %s",
          dm_error_message());
    CHECK(pq_query_metric(sig, D, 5, fl, T, Ti, NULL) == DM_EINPUT && strstr(dm_error_message(), "5 sub-spaces do not divide 12"), "M: %s",
          dm_error_message());
    sig[13] = NAN;
    CHECK(pq_query_metric(sig, D, M, fl, T, Ti, NULL) == DM_EINPUT && strstr(dm_error_message(), "non-finite entry (1, 1)"), "NaN: %s",
          dm_error_message());

    /* quantising in the metric: items isotropic in 16 dimensions, queries in a 3-dimensional sub-space */
    {
        const size_t N = 2000, Dq = 16, NQ = 400;
        const int Mq = 4, Kq = 16;
        double B[256];
        orthonormal(&r, Dq, B);
        float *x = tl_randn_new(&r, N * Dq, 1.0), *g = tl_randn_new(&r, NQ * 3, 1.0), *q = calloc(NQ * Dq, sizeof *q);
        for (size_t u = 0; u < NQ; u++)
            for (size_t a = 0; a < Dq; a++)
                for (size_t k = 0; k < 3; k++) q[u * Dq + a] += (float)(g[u * 3 + k] * B[a * Dq + k] * (3.0 - (double)k));
        double sq[256], Tq[256], Tiq[256];
        CHECK(pq_second_moment(q, NQ, Dq, NQ, NULL, sq) == DM_OK && pq_query_metric(sq, Dq, Mq, 1e-3, Tq, Tiq, NULL) == DM_OK, "metric of the queries");
        float Tf[256], *y = malloc(N * Dq * sizeof *y);
        for (size_t k = 0; k < 256; k++) Tf[k] = (float)Tq[k];
        pq_rotate(Tf, Dq, x, N, y);
        pq_codebook p, w;
        pq_train_stats sp, sw;
        uint8_t *cp = malloc(N * Mq), *cw = malloc(N * Mq), *ce = malloc(N * Mq);
        CHECK(pq_init(&p, Dq, Mq, Kq, "pq") == DM_OK && pq_init(&w, Dq, Mq, Kq, "pq") == DM_OK, "init");
        CHECK(pq_train(&p, x, N, 0, N, 20, 5, NULL, cp, &sp) == DM_OK && pq_train(&w, y, N, 0, N, 20, 5, NULL, cw, &sw) == DM_OK, "train");
        CHECK(pq_set_metric(&w, Tq, Tiq) == DM_OK && w.rot && w.qrot, "set metric");
        CHECK(pq_encode(&w, x, N, ce) == DM_OK, "encode in the metric");
        size_t same = 0;
        for (size_t k = 0; k < N * (size_t)Mq; k++) same += ce[k] == cw[k];
        CHECK(same >= N * (size_t)Mq * 99 / 100, "encoding x through rot = T gives the training's codes of x T (%zu of %zu; near ties aside)", same,
              N * (size_t)Mq);
        float lp_[64], lw[64];
        double ep = 0, ew = 0, worst = 0;
        float *yh = malloc(N * Dq * sizeof *yh), *xh = malloc(N * Dq * sizeof *xh), qr[16];
        pq_decode(&p, cp, N, xh);
        pq_decode(&w, ce, N, yh);
        for (size_t u = 0; u < NQ; u++) {
            const float *qu = q + u * Dq;
            pq_adc_lut(&p, qu, lp_);
            pq_adc_lut(&w, qu, lw);
            pq_rotate(w.qrot, Dq, qu, 1, qr);
            for (size_t i = 0; i < N; i++) {
                double ex = 0, sp_ = 0, sw_ = 0, ref = 0, bound = 0;
                for (size_t a = 0; a < Dq; a++) ex += (double)qu[a] * x[i * Dq + a];
                for (int m = 0; m < Mq; m++) {
                    sp_ += lp_[m * Kq + cp[i * Mq + (size_t)m]];
                    sw_ += lw[m * Kq + ce[i * Mq + (size_t)m]];
                }
                for (size_t b = 0; b < Dq; b++) {
                    ref += (double)qr[b] * yh[i * Dq + b];
                    bound += fabs((double)qr[b] * yh[i * Dq + b]);
                }
                ep += (ex - sp_) * (ex - sp_);
                ew += (ex - sw_) * (ex - sw_);
                worst = fmax(worst, fabs(sw_ - ref) / (bound + 1e-30));
            }
        }
        CHECK(ew < 0.3 * ep, "expected squared score error in the metric %.4g, plain PQ %.4g", ew / (double)(N * NQ), ep / (double)(N * NQ));
        CHECK(worst <= 2.0 * (Dq + 2) * ldexp(1.0, -24), "ADC = (q Ti) . y^ within %.2g of sum |terms|", worst);
        printf("  query metric: expected squared score error %.4g against plain PQ's %.4g (%.3fx)\n", ew / (double)(N * NQ), ep / (double)(N * NQ), ew / ep);
        TL_FREE(x, g, q, y, cp, cw, ce, yh, xh);
        pq_free(&p);
        pq_free(&w);
    }
}

/* residual stages (pq.h): kernels, decoding, ADC, training, OPQ */
static void residual(void)
{
    pq_codebook cb;
    CHECK(pq_init_rq(&cb, 64, 8, 0, 16, "pq: align") == DM_ECONFIG && strstr(dm_error_message(), "pq.stages = 0 residual stages per sub-space; expected 1 to 16"),
          "0 stages: %s", dm_error_message());
    dm_error_clear();
    CHECK(pq_init_rq(&cb, 64, 8, 17, 16, "pq: align") == DM_ECONFIG && strstr(dm_error_message(), "pq.stages = 17"), "17 stages: %s",
          dm_error_message());
    dm_error_clear();
    dm_rng r;
    dm_rng_seed(&r, 23);
    const size_t D = 24, n = 777, B = 3;
    const int M = 4, L = 3, K = 16, C = M * L;
    CHECK(pq_init_rq(&cb, D, M, L, K, "pq") == DM_OK && pq_ncodes(&cb) == 12 && cb.ds == 6, "24 = 4 x 6, 3 stages: 12 code columns");
    /* stage l's centroids at scale 2^-l, as trained stages shrink */
    for (int m = 0; m < M; m++)
        for (int l = 0; l < L; l++) tl_randn(&r, cb.c + ((size_t)(m * L + l) * K) * cb.ds, (size_t)K * cb.ds, ldexp(1.0, -l));
    float *x = tl_randn_new(&r, n * D, 1.0), *q = tl_randn_new(&r, B * D, 1.0), *xh = malloc(n * D * sizeof *xh);
    float *lut = malloc(B * (size_t)C * K * sizeof *lut), *s = malloc(B * n * sizeof *s), *sn = malloc(B * n * sizeof *sn);
    uint8_t *c = malloc(n * C), *cn = malloc(n * C);
    CHECK(pq_encode(&cb, x, n, c) == DM_OK && pq_encode_naive(&cb, x, n, cn) == DM_OK && !memcmp(c, cn, n * C), "encode = its naive twin");
    /* each stage's code: the nearest centroid (double distances) of the float residual r_l */
    size_t wrong = 0;
    double dec = 0;
    pq_decode(&cb, c, n, xh);
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < M; m++) {
            float res[6];
            memcpy(res, x + i * D + (size_t)m * cb.ds, sizeof res);
            double sum[6] = {0};
            for (int l = 0; l < L; l++) {
                const float *cq = cb.c + (size_t)(m * L + l) * K * cb.ds;
                double best = INFINITY, got = 0;
                for (int k = 0; k < K; k++) {
                    double d = 0;
                    for (size_t j = 0; j < cb.ds; j++) d += ((double)res[j] - cq[k * cb.ds + j]) * ((double)res[j] - cq[k * cb.ds + j]);
                    if (d < best) best = d;
                    if (k == c[i * C + m * L + l]) got = d;
                }
                wrong += got > best * (1 + 1e-6);
                const float *ck = cq + c[i * C + m * L + l] * cb.ds;
                for (size_t j = 0; j < cb.ds; j++) res[j] -= ck[j], sum[j] += ck[j];
            }
            /* decoding: the stages' centroids summed in l order (L - 1 float additions) */
            for (size_t j = 0; j < cb.ds; j++) dec = fmax(dec, fabs(xh[i * D + m * cb.ds + j] - sum[j]) / (2.0 * ldexp(fabs(sum[j]) + 2.0, -24)));
        }
    CHECK(wrong == 0, "%zu stage codes are not the nearest centroid of their residual", wrong);
    CHECK(dec <= 1.0, "decoded = the stages' sum: %.3g of the rounding bound", dec);
    /* ADC over the M L columns: the naive twin bitwise, q . x^ within gamma_(ds + C) sum |q_j c_j| */
    for (size_t b = 0; b < B; b++) pq_adc_lut(&cb, q + b * D, lut + b * (size_t)C * K);
    pq_adc_scores(lut, B, c, n, C, K, s);
    pq_adc_scores_naive(lut, B, c, n, C, K, sn);
    CHECK(!memcmp(s, sn, B * n * sizeof *s), "ADC over %d code columns = the naive twin's, bitwise", C);
    const double g = (double)(cb.ds + (size_t)C) * ldexp(1.0, -24) / (1 - (double)(cb.ds + (size_t)C) * ldexp(1.0, -24));
    double worst = 0;
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) {
            double dot = 0, abs = 0;
            for (int m = 0; m < M; m++)
                for (int l = 0; l < L; l++) {
                    const float *ck = cb.c + ((size_t)(m * L + l) * K + c[i * C + m * L + l]) * cb.ds;
                    for (size_t j = 0; j < cb.ds; j++) {
                        dot += (double)q[b * D + m * cb.ds + j] * ck[j];
                        abs += fabs((double)q[b * D + m * cb.ds + j] * ck[j]);
                    }
                }
            worst = fmax(worst, fabs(s[b * n + i] - dot) / (g * abs));
        }
    CHECK(worst <= 1.0, "ADC vs the stages' dot products: %.3g of the bound", worst);
    /* fast scan over the same 12 columns: the naive twin bitwise */
    pq_fs_codes fc;
    uint8_t *ql = malloc(B * (size_t)pq_fs_mpad(C) * 16);
    pq_fs_scale sc[3];
    CHECK(pq_fs_pack(&fc, c, n, C) == DM_OK, "pack");
    for (size_t b = 0; b < B; b++) pq_fs_quantise(lut + b * (size_t)C * K, C, K, ql + b * (size_t)pq_fs_mpad(C) * 16, sc + b);
    pq_fs_scores(&fc, ql, sc, B, s);
    CHECK(pq_fs_scores_naive(lut, B, c, n, C, K, sn) == DM_OK && !memcmp(s, sn, B * n * sizeof *s), "fast scan over %d code columns = its naive twin", C);
    pq_fs_free(&fc);
    printf("  residual: M %d L %d K %d: codes nearest per stage, ADC within %.3f of its bound\n", M, L, K, worst);
    TL_FREE(x, q, xh, lut, s, sn, c, cn, ql);
    pq_free(&cb);

    /* training: the naive twin; codes = pq_encode's; error falling with the stages */
    const size_t N = 900, Dt = 12;
    const int Mt = 3, Kt = 8;
    float *y = tl_randn_new(&r, N * Dt, 1.0);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < Dt; j++) y[i * Dt + j] += (float)(2.0 * ((i % 5) == j % 5));
    uint8_t *ca = malloc(N * (size_t)Mt * 4), *cb2 = malloc(N * (size_t)Mt * 4);
    double prev = INFINITY;
    for (int Lt = 1; Lt <= 4; Lt++) {
        pq_codebook a, b;
        pq_train_stats sa, sb;
        CHECK(pq_init_rq(&a, Dt, Mt, Lt, Kt, "pq") == DM_OK && pq_init_rq(&b, Dt, Mt, Lt, Kt, "pq") == DM_OK, "init");
        CHECK(pq_train(&a, y, N, 0, N, 20, 5, NULL, ca, &sa) == DM_OK, "train %d stages: %s", Lt, dm_error_message());
        CHECK(pq_train_naive(&b, y, N, 20, 5, cb2, &sb) == DM_OK && !memcmp(ca, cb2, N * (size_t)Mt * (size_t)Lt), "%d stages: codes = the naive twin's", Lt);
        double cd = 0, cm = tl_maxabs(a.c, (size_t)Kt * Dt * (size_t)Lt);
        for (size_t t = 0; t < (size_t)Kt * Dt * (size_t)Lt; t++) cd = fmax(cd, fabs((double)a.c[t] - b.c[t]));
        CHECK(cd <= 2 * ldexp(cm, -24), "%d stages: centroids within %.3g of the naive twin's (max %.3g)", Lt, cd, cm);
        CHECK(pq_encode(&a, y, N, cb2) == DM_OK && !memcmp(ca, cb2, N * (size_t)Mt * (size_t)Lt), "%d stages: training codes = pq_encode's", Lt);
        /* the stored error: sum |x - x^|^2 of the decoded codes (float residuals vs the decoded sum) */
        float *yh = malloc(N * Dt * sizeof *yh);
        pq_decode(&a, ca, N, yh);
        double e2 = 0;
        for (size_t t = 0; t < N * Dt; t++) e2 += ((double)y[t] - yh[t]) * ((double)y[t] - yh[t]);
        CHECK(fabs(sa.err - e2) <= 1e-4 * e2, "%d stages: error %.6g = that of the decoded codes %.6g", Lt, sa.err, e2);
        const double rel = sa.err / sa.norm;
        CHECK(rel < prev, "%d stages: relative error %.4f not below %d stages' %.4f", Lt, rel, Lt - 1, prev);
        printf("  residual training: %d stage(s): relative error %.4f, centroids within %.2g of the naive twin's\n", Lt, rel, cd);
        prev = rel;
        if (Lt == 2) { /* OPQ on two stages: rotation orthogonal, codes pq_encode's, error not above the stages' alone */
            pq_codebook o;
            pq_train_stats so;
            CHECK(pq_init_rq(&o, Dt, Mt, 2, Kt, "pq") == DM_OK && pq_train_opq(&o, y, N, 0, N, 20, 4, 3, 5, NULL, ca, &so) == DM_OK && o.rot,
                  "OPQ on two stages");
            double orth = 0;
            for (size_t i = 0; o.rot && i < Dt; i++)
                for (size_t j = 0; j < Dt; j++) {
                    double d = 0;
                    for (size_t t = 0; t < Dt; t++) d += (double)o.rot[i * Dt + t] * o.rot[j * Dt + t];
                    orth = fmax(orth, fabs(d - (i == j)));
                }
            CHECK(orth <= 4 * (double)Dt * ldexp(1.0, -24), "OPQ rotation orthogonal within %.3g", orth);
            CHECK(pq_encode(&o, y, N, cb2) == DM_OK && !memcmp(ca, cb2, N * (size_t)Mt * 2), "OPQ on stages: codes = pq_encode's");
            CHECK(so.err <= sa.err * (1 + 1e-4), "OPQ on two stages: error %.5g above the stages' alone %.5g", so.err, sa.err);
            printf("  residual + OPQ: relative error %.4f (two stages alone %.4f)\n", so.err / so.norm, rel);
            pq_free(&o);
        }
        free(yh);
        pq_free(&a);
        pq_free(&b);
    }
    /* known answer: each sub-vector one of Kt values plus one of Kt offsets 1/64 as large, every pair
       equally often: two stages of Kt centroids recover every item (up to the float sums) */
    float *base = tl_randn_new(&r, (size_t)Kt * Dt, 4.0), *off = tl_randn_new(&r, (size_t)Kt * Dt, 1.0 / 16.0);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < Dt; j++) y[i * Dt + j] = base[(i % (size_t)Kt) * Dt + j] + off[((i / (size_t)Kt) % (size_t)Kt) * Dt + j];
    pq_codebook a;
    pq_train_stats sa;
    const size_t Nk = 14 * (size_t)Kt * (size_t)Kt; /* every (value, offset) pair equally often */
    CHECK(pq_init_rq(&a, Dt, Mt, 2, Kt, "pq") == DM_OK && pq_train(&a, y, Nk, 0, Nk, 30, 3, NULL, ca, &sa) == DM_OK, "known answer");
    CHECK(sa.err / sa.norm < 1e-10, "known answer: two stages' relative error %.3g", sa.err / sa.norm);
    pq_free(&a);
    TL_FREE(y, ca, cb2, base, off);
}

int main(void)
{
    shapes();
    kernels(24, 6, 200);
    kernels(24, 8, 256);
    kernels(64, 16, 256);
    training();
    rerank();
    rerank_ties();
    fixed_point();
    polar();
    opq();
    query_metric();
    residual();
    return tap_done("test_pq");
}
