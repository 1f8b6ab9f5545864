/* pq_naive.c: the naive twins of pq.c's kernels and training (pq.h): one item, one centroid, one
 * term at a time, serial, centroid sums in double. */
#include "pq.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* |x_m - c_{m,k}|^2 summed in j order */
static float d2(const pq_codebook *cb, const float *xm, int m, int k)
{
    const float *c = cb->c + ((size_t)m * (size_t)cb->K + (size_t)k) * cb->ds;
    float d = 0.0f;
    for (size_t j = 0; j < cb->ds; j++) d += (xm[j] - c[j]) * (xm[j] - c[j]);
    return d;
}

int pq_encode_naive(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes)
{
    float *y = NULL; /* one rotated item (cb->rot) */
    if (cb->rot) DM_ALLOC(y, cb->D);
    for (size_t i = 0; i < n; i++) {
        if (y) pq_rotate(cb->rot, cb->D, x + i * cb->D, 1, y);
        const float *xi = y ? y : x + i * cb->D;
        for (int m = 0; m < cb->M; m++) {
            const float *xm = xi + (size_t)m * cb->ds;
            int best = 0;
            float bd = d2(cb, xm, m, 0);
            for (int k = 1; k < cb->K; k++) {
                float d = d2(cb, xm, m, k);
                if (d < bd) bd = d, best = k;
            }
            codes[i * (size_t)cb->M + (size_t)m] = (uint8_t)best;
        }
    }
    free(y);
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

int pq_train_naive(pq_codebook *cb, const float *x, size_t N, int iters, uint64_t seed, uint8_t *codes, pq_train_stats *st)
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
