/* pq_naive.c: the naive twins of pq.c's kernels and training (pq.h): one item, one centroid, one
 * term at a time, serial, centroid sums in double. */
#include "pq.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* |x_m - c_{q,k}|^2 summed in j order, for code column q (the sub-space m = q with one stage) */
static float d2(const pq_codebook *cb, const float *xm, int q, int k)
{
    const float *c = cb->c + ((size_t)q * (size_t)cb->K + (size_t)k) * cb->ds;
    float d = 0.0f;
    for (size_t j = 0; j < cb->ds; j++) d += (xm[j] - c[j]) * (xm[j] - c[j]);
    return d;
}

int pq_encode_naive(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes)
{
    float *y = NULL, *r; /* one rotated item (cb->rot); one sub-space's residual */
    if (cb->rot) DM_ALLOC(y, cb->D);
    r = malloc((cb->ds + 1) * sizeof *r);
    if (!r) {
        free(y);
        return DM_ERR(DM_ENOMEM, "out of memory for a residual of %zu values", cb->ds);
    }
    const int C = pq_ncodes(cb);
    for (size_t i = 0; i < n; i++) {
        if (y) pq_rotate(cb->rot, cb->D, x + i * cb->D, 1, y);
        const float *xi = y ? y : x + i * cb->D;
        for (int m = 0; m < cb->M; m++) {
            memcpy(r, xi + (size_t)m * cb->ds, cb->ds * sizeof *r);
            for (int l = 0; l < cb->L; l++) { /* r_l, then r_{l+1} = r_l - its nearest centroid */
                const int q = m * cb->L + l;
                int best = 0;
                float bd = d2(cb, r, q, 0);
                for (int k = 1; k < cb->K; k++) {
                    float d = d2(cb, r, q, k);
                    if (d < bd) bd = d, best = k;
                }
                codes[i * (size_t)C + (size_t)q] = (uint8_t)best;
                const float *c = cb->c + ((size_t)q * (size_t)cb->K + (size_t)best) * cb->ds;
                for (size_t j = 0; j < cb->ds; j++) r[j] -= c[j];
            }
        }
    }
    DM_FREE_ALL(y, r);
    return DM_OK;
}

void pq_adc_scores_naive(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out)
{
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) {
            float s = 0.0f;
            for (int m = 0; m < M; m++) s += luts[(b * (size_t)M + (size_t)m) * (size_t)K + codes[i * (size_t)M + (size_t)m]];
            out[b * n + i] = s;
        }
}

void pq_fs_sums_naive(const uint8_t *codes, size_t n, int M, const uint8_t *qlut, uint16_t *sums)
{
    for (size_t i = 0; i < n; i++) {
        unsigned s = 0;
        for (int m = 0; m < M; m++) s += qlut[(size_t)m * 16 + codes[i * (size_t)M + (size_t)m]];
        DM_ASSERT(s <= 65535); /* pq_fs_quantise's bound: M qmax <= 65535 */
        sums[i] = (uint16_t)s;
    }
}

int pq_fs_scores_naive(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out)
{
    uint8_t *qlut;
    uint16_t *sums;
    DM_ALLOC(qlut, (size_t)pq_fs_mpad(M) * 16);
    sums = malloc((n + 1) * sizeof *sums);
    if (!sums) {
        free(qlut);
        return DM_ERR(DM_ENOMEM, "out of memory for %zu sums", n);
    }
    for (size_t b = 0; b < B; b++) {
        pq_fs_scale sc;
        pq_fs_quantise(luts + b * (size_t)M * (size_t)K, M, K, qlut, &sc);
        pq_fs_sums_naive(codes, n, M, qlut, sums);
        for (size_t i = 0; i < n; i++) out[b * n + i] = pq_fs_score(sc, sums[i]);
    }
    DM_FREE_ALL(qlut, sums);
    return DM_OK;
}

/* one stage (cb->L == 1) */
static int train_naive1(pq_codebook *cb, const float *x, size_t N, int iters, uint64_t seed, uint8_t *codes, pq_train_stats *st)
{
    const int M = cb->M, K = cb->K;
    const size_t D = cb->D, ds = cb->ds;
    memset(st, 0, sizeof *st);
    if (N == 0) return DM_ERR(DM_EINPUT, "pq: no items to train the codebooks on");
    double mx = 0.0;
    for (size_t q = 0; q < N * D; q++) {
        if (!isfinite(x[q])) return DM_ERR(DM_EINPUT, "pq: an item latent is not finite");
        mx = fmax(mx, fabs((double)x[q]));
    }
    const int Sd = pq_fix_shift(4.0 * mx * mx * (double)ds, N);
    float *mind;
    double *sum;
    int64_t *cnt;
    uint8_t *prev;
    DM_ALLOC(mind, N);
    DM_ALLOC(sum, ds);
    DM_ALLOC(cnt, K);
    DM_ALLOC(prev, N * (size_t)M + 1);
    /* k-means++, one sub-space after another: the same draws as pq_train */
    for (int m = 0; m < M; m++)
        for (int t = 0; t < K; t++) {
            uint64_t total = 0;
            for (size_t i = 0; t > 0 && i < N; i++) total += (uint64_t)pq_fix(mind[i], Sd);
            dm_rng r;
            dm_rng_seed(&r, dm_rng_key(seed, (uint64_t)m, (uint64_t)t));
            size_t pick = 0;
            if (total == 0) pick = (size_t)dm_rng_below(&r, (uint64_t)N);
            else {
                uint64_t u = dm_rng_below(&r, total), acc = 0;
                while (acc + (uint64_t)pq_fix(mind[pick], Sd) <= u) acc += (uint64_t)pq_fix(mind[pick++], Sd);
            }
            float *c = cb->c + ((size_t)m * (size_t)K + (size_t)t) * ds;
            memcpy(c, x + pick * D + (size_t)m * ds, ds * sizeof *c);
            for (size_t i = 0; i < N; i++) {
                float d = d2(cb, x + i * D + (size_t)m * ds, m, t);
                if (t == 0 || d < mind[i]) mind[i] = d;
            }
        }
    /* Lloyd */
    for (int it = 0; it < iters; it++) {
        if (it) memcpy(prev, codes, N * (size_t)M);
        pq_encode_naive(cb, x, N, codes);
        int64_t changed = 0;
        for (size_t q = 0; q < N * (size_t)M; q++) changed += !it || prev[q] != codes[q];
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) {
                memset(sum, 0, ds * sizeof *sum);
                int64_t c = 0;
                for (size_t i = 0; i < N; i++) {
                    if (codes[i * (size_t)M + (size_t)m] != k) continue;
                    for (size_t j = 0; j < ds; j++) sum[j] += x[i * D + (size_t)m * ds + j];
                    c++;
                }
                for (size_t j = 0; c && j < ds; j++) cb->c[((size_t)m * (size_t)K + (size_t)k) * ds + j] = (float)(sum[j] / (double)c);
            }
        st->iters = it + 1;
        st->changed = changed;
        if (!changed) break;
    }
    pq_encode_naive(cb, x, N, codes);
    memset(cnt, 0, (size_t)K * sizeof *cnt);
    for (int m = 0; m < M; m++) {
        memset(cnt, 0, (size_t)K * sizeof *cnt);
        for (size_t i = 0; i < N; i++) {
            const float *xm = x + i * D + (size_t)m * ds;
            uint8_t k = codes[i * (size_t)M + (size_t)m];
            st->err += d2(cb, xm, m, k);
            for (size_t j = 0; j < ds; j++) st->norm += (double)xm[j] * xm[j];
            cnt[k]++;
        }
        for (int k = 0; k < K; k++) st->empty += !cnt[k];
    }
    free(mind);
    free(sum);
    free(cnt);
    free(prev);
    return DM_OK;
}

int pq_train_naive(pq_codebook *cb, const float *x, size_t N, int iters, uint64_t seed, uint8_t *codes, pq_train_stats *st)
{
    if (cb->L == 1) return train_naive1(cb, x, N, iters, seed, codes, st);
    /* residual stages: stage l a one-stage codebook trained on r_l = x - the earlier stages' decoding,
       each residual made by the float subtractions of pq_encode_naive; the seeds as pq_train's */
    const size_t D = cb->D, ds = cb->ds, M = (size_t)cb->M, K = (size_t)cb->K, L = (size_t)cb->L;
    memset(st, 0, sizeof *st);
    pq_codebook t = {cb->M, cb->K, 1, D, ds, NULL, NULL, NULL};
    float *r;
    uint8_t *tc;
    DM_ALLOC(r, N * D + 1);
    t.c = malloc(K * D * sizeof *t.c);
    tc = malloc(N * M + 1);
    int rc = t.c && tc ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory for the residuals of %zu items", N);
    if (!rc) memcpy(r, x, N * D * sizeof *r);
    for (size_t l = 0; !rc && l < L; l++) {
        pq_train_stats s;
        rc = train_naive1(&t, r, N, iters, l ? dm_rng_key(seed, (uint64_t)l, 0x5251) : seed, tc, &s);
        if (rc) break;
        for (size_t m = 0; m < M; m++) memcpy(cb->c + (m * L + l) * K * ds, t.c + m * K * ds, K * ds * sizeof *t.c);
        for (size_t i = 0; i < N; i++)
            for (size_t m = 0; m < M; m++) {
                const uint8_t k = tc[i * M + m];
                codes[i * M * L + m * L + l] = k;
                for (size_t j = 0; j < ds; j++) r[i * D + m * ds + j] -= t.c[(m * K + k) * ds + j];
            }
        if (s.iters > st->iters) st->iters = s.iters;
        st->changed += s.changed;
        st->empty += s.empty;
        if (!l) st->norm = s.norm;
        st->err = s.err;
    }
    DM_FREE_ALL(r, t.c, tc);
    return rc;
}
