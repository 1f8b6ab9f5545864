/* pq.c: product quantisation: codebook shape, encoding, ADC scoring and the data-parallel k-means
 * of pq.h. The naive twins are in pq_naive.c. */
#include "pq.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "../core/sort.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

int pq_init_rq(pq_codebook *cb, size_t D, int M, int L, int K, const char *what)
{
    memset(cb, 0, sizeof *cb);
    DM_CONFIG_CHECK(K < 1 || K > PQ_KMAX, "%s: pq.k = %d centroids per sub-space; expected 1 to %d (a code is one byte)", what, K,
                    PQ_KMAX);
    DM_CONFIG_CHECK(M < 1 || (size_t)M > D || D % (size_t)M, "%s: pq.m = %d sub-spaces does not divide the latent dimension %zu", what,
                    M, D);
    DM_CONFIG_CHECK(L < 1 || L > PQ_LMAX, "%s: pq.stages = %d residual stages per sub-space; expected 1 to %d", what, L, PQ_LMAX);
    cb->M = M;
    cb->K = K;
    cb->L = L;
    cb->D = D;
    cb->ds = D / (size_t)M;
    DM_ALLOC(cb->c, (size_t)K * D * (size_t)L);
    return DM_OK;
}

int pq_init(pq_codebook *cb, size_t D, int M, int K, const char *what) { return pq_init_rq(cb, D, M, 1, K, what); }

void pq_free(pq_codebook *cb)
{
    free(cb->c);
    free(cb->rot);
    free(cb->qrot);
    memset(cb, 0, sizeof *cb);
}

/* |a - b|^2 over ds terms, summed in j order (the order every distance of this module uses) */
static float dist2(const float *a, const float *b, size_t ds)
{
    float d = 0.0f;
    for (size_t j = 0; j < ds; j++) {
        float t = a[j] - b[j];
        d += t * t;
    }
    return d;
}

/* codes of x under cb with ct (M L, ds, K) the caller's workspace: each code column's centroids
 * transposed, so the loop over k is contiguous. Stage l of sub-space m reads the residual r_l, each
 * of its values made again from x and the earlier stages' centroids by the same float subtractions
 * in l order (pq.h; as pq_train's residual arrays are made) */
static void encode_ws(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes, float *ct)
{
    const int M = cb->M, K = cb->K, L = cb->L, C = M * L;
    const size_t D = cb->D, ds = cb->ds, Kz = (size_t)K;
    for (int q = 0; q < C; q++)
        for (int k = 0; k < K; k++)
            for (size_t j = 0; j < ds; j++) ct[((size_t)q * ds + j) * Kz + (size_t)k] = cb->c[((size_t)q * Kz + (size_t)k) * ds + j];
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d[PQ_KMAX];
        uint8_t *ci = codes + i * (size_t)C;
        for (int m = 0; m < M; m++) {
            const float *xm = x + i * D + (size_t)m * ds;
            for (int l = 0; l < L; l++) {
                const size_t q = (size_t)m * (size_t)L + (size_t)l;
                const float *cm = ct + q * ds * Kz;
                /* d_k = sum_j (r_j - c_kj)^2 in j order, as dist2, for all k at once */
                for (int k = 0; k < K; k++) d[k] = 0.0f;
                for (size_t j = 0; j < ds; j++) {
                    float rj = xm[j];
                    for (int e = 0; e < l; e++) rj -= cb->c[((q - (size_t)(l - e)) * Kz + ci[q - (size_t)(l - e)]) * ds + j];
                    const float *cj = cm + j * Kz;
                    for (int k = 0; k < K; k++) {
                        float t = rj - cj[k];
                        d[k] += t * t;
                    }
                }
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (d[k] < d[best]) best = k;
                ci[q] = (uint8_t)best;
            }
        }
    }
}

void pq_rotate(const float *rot, size_t D, const float *x, size_t n, float *y)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float *yi = y + i * D;
        const float *xi = x + i * D;
        for (size_t b = 0; b < D; b++) yi[b] = 0.0f;
        for (size_t a = 0; a < D; a++) {
            const float xa = xi[a], *ra = rot + a * D;
            for (size_t b = 0; b < D; b++) yi[b] += xa * ra[b];
        }
    }
}

/* items rotated at a time by pq_encode */
#define PQ_ROT_CHUNK 4096

int pq_encode(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes)
{
    float *ct, *y = NULL;
    DM_ALLOC(ct, (size_t)cb->K * cb->D * (size_t)cb->L);
    if (!cb->rot) {
        encode_ws(cb, x, n, codes, ct);
        free(ct);
        return DM_OK;
    }
    const size_t ch = n < PQ_ROT_CHUNK ? n : PQ_ROT_CHUNK;
    y = malloc((ch * cb->D + 1) * sizeof *y);
    if (!y) {
        free(ct);
        return DM_ERR(DM_ENOMEM, "pq: out of memory for %zu rotated latents", ch);
    }
    for (size_t i0 = 0; i0 < n; i0 += ch) {
        const size_t nc = n - i0 < ch ? n - i0 : ch;
        pq_rotate(cb->rot, cb->D, x + i0 * cb->D, nc, y);
        encode_ws(cb, y, nc, codes + i0 * (size_t)pq_ncodes(cb), ct);
    }
    free(y);
    free(ct);
    return DM_OK;
}

void pq_decode(const pq_codebook *cb, const uint8_t *codes, size_t n, float *x)
{
    const size_t M = (size_t)cb->M, K = (size_t)cb->K, L = (size_t)cb->L, C = M * L, ds = cb->ds;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < M; m++) {
            float *xm = x + i * cb->D + m * ds;
            const uint8_t *ci = codes + i * C + m * L;
            memcpy(xm, cb->c + (m * L * K + ci[0]) * ds, ds * sizeof *x);
            for (size_t l = 1; l < L; l++) {
                const float *c = cb->c + ((m * L + l) * K + ci[l]) * ds;
                for (size_t j = 0; j < ds; j++) xm[j] += c[j];
            }
        }
}

/* a rotated query is made a piece of a sub-space at a time (no allocation) */
#define PQ_LUT_PIECE 256

void pq_adc_lut(const pq_codebook *cb, const float *q, float *lut)
{
    const size_t M = (size_t)cb->M, K = (size_t)cb->K, L = (size_t)cb->L, ds = cb->ds, D = cb->D;
    const float *qrot = cb->qrot ? cb->qrot : cb->rot;
    float yb[PQ_LUT_PIECE];
    for (size_t m = 0; m < M; m++) {
        for (size_t k = 0; k < L * K; k++) lut[m * L * K + k] = 0.0f;
        for (size_t j0 = 0; j0 < ds; j0 += PQ_LUT_PIECE) {
            const size_t j1 = j0 + PQ_LUT_PIECE < ds ? j0 + PQ_LUT_PIECE : ds;
            const float *qm = q + m * ds + j0; /* the piece [j0, j1) of sub-space m */
            if (qrot) {                         /* (q qrot)_b, summed in a order as pq_rotate */
                for (size_t j = j0; j < j1; j++) yb[j - j0] = 0.0f;
                for (size_t a = 0; a < D; a++) {
                    const float qa = q[a], *ra = qrot + a * D + m * ds;
                    for (size_t j = j0; j < j1; j++) yb[j - j0] += qa * ra[j];
                }
                qm = yb;
            }
            for (size_t k = 0; k < L * K; k++) { /* code column m L + k / K, centroid k % K */
                const float *c = cb->c + (m * L * K + k) * ds + j0;
                float s = lut[m * L * K + k];
                for (size_t j = 0; j < j1 - j0; j++) s += qm[j] * c[j];
                lut[m * L * K + k] = s;
            }
        }
    }
}

/* items per block: a block's codes (PQ_BLOCK M bytes) stay in L1 while every query's table reads them */
#define PQ_BLOCK 256

void pq_adc_scores(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out)
{
    const size_t Mz = (size_t)M, Kz = (size_t)K, nb = (n + PQ_BLOCK - 1) / PQ_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t i0 = blk * PQ_BLOCK, i1 = i0 + PQ_BLOCK < n ? i0 + PQ_BLOCK : n;
        for (size_t b = 0; b < B; b++) {
            const float *lut = luts + b * Mz * Kz;
            float *o = out + b * n;
            size_t i = i0;
            /* M a multiple of 8: eight codes per 64-bit load (one load instead of eight byte loads;
               the table lookups are then the only other loads), two items at once */
            if (Mz % 8 == 0)
                for (; i + 2 <= i1; i += 2) {
                    const uint8_t *c0 = codes + i * Mz, *c1 = c0 + Mz;
                    float s0 = 0.0f, s1 = 0.0f;
                    for (size_t m = 0; m < Mz; m += 8) {
                        uint64_t w0, w1;
                        memcpy(&w0, c0 + m, 8);
                        memcpy(&w1, c1 + m, 8);
                        const float *l = lut + m * Kz;
                        for (size_t t = 0; t < 8; t++, l += Kz) { /* little-endian: byte t is code m + t */
                            s0 += l[(w0 >> (8 * t)) & 0xff];
                            s1 += l[(w1 >> (8 * t)) & 0xff];
                        }
                    }
                    o[i] = s0;
                    o[i + 1] = s1;
                }
            /* four items at once: four independent sums, each still in m order */
            for (; i + 4 <= i1; i += 4) {
                const uint8_t *c0 = codes + i * Mz, *c1 = c0 + Mz, *c2 = c1 + Mz, *c3 = c2 + Mz;
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
                for (size_t m = 0; m < Mz; m++) {
                    const float *l = lut + m * Kz;
                    s0 += l[c0[m]];
                    s1 += l[c1[m]];
                    s2 += l[c2[m]];
                    s3 += l[c3[m]];
                }
                o[i] = s0;
                o[i + 1] = s1;
                o[i + 2] = s2;
                o[i + 3] = s3;
            }
            for (; i < i1; i++) {
                const uint8_t *c = codes + i * Mz;
                float s = 0.0f;
                for (size_t m = 0; m < Mz; m++) s += lut[m * Kz + c[m]];
                o[i] = s;
            }
        }
    }
}

/* whether item a ranks before item b: the higher score, ties to the lower index (NaN as -infinity) */
static int ranks_before(const float *s, int32_t a, int32_t b)
{
    const float x = isnan(s[a]) ? -INFINITY : s[a], y = isnan(s[b]) ? -INFINITY : s[b];
    return x > y || (x == y && a < b);
}

/* restores the heap h (k) whose root is the item ranked last, from position j down */
static void sift_down(const float *s, int32_t *h, int k, int j)
{
    for (;;) {
        int c = 2 * j + 1;
        if (c >= k) return;
        if (c + 1 < k && ranks_before(s, h[c], h[c + 1])) c++;
        if (!ranks_before(s, h[j], h[c])) return;
        int32_t t = h[j];
        h[j] = h[c];
        h[c] = t;
        j = c;
    }
}

/* dm_top_k_f32's result (the same items in the same order, for scores without NaN) in one cheap
 * pass: the R best so far in a heap whose root is the R-th; once it is full, a block of scores none
 * of which beats the root (a vectorised test) is skipped: a later item ties the root only with a
 * higher index, so it could not enter. Then a heap sort, best first. */
#define PQ_TOPK_BLOCK 128
static int top_k(const float *s, size_t n, const uint8_t *mark, int R, int32_t *out)
{
    int k = 0;
    if (R <= 0) return 0;
    for (size_t i0 = 0; i0 < n; i0 += PQ_TOPK_BLOCK) {
        const size_t i1 = i0 + PQ_TOPK_BLOCK < n ? i0 + PQ_TOPK_BLOCK : n;
        if (k == R) {
            const float thr = s[out[0]];
            int any = 0;
            for (size_t i = i0; i < i1; i++) any |= s[i] > thr;
            if (!any && !isnan(thr)) continue;
        }
        for (size_t i = i0; i < i1; i++) {
            if (mark && mark[i]) continue;
            if (k < R) { /* push, then up towards the root while it ranks after its parent */
                int j = k++;
                out[j] = (int32_t)i;
                while (j > 0 && ranks_before(s, out[(j - 1) / 2], out[j])) {
                    int32_t t = out[j];
                    out[j] = out[(j - 1) / 2];
                    out[(j - 1) / 2] = t;
                    j = (j - 1) / 2;
                }
            } else if (ranks_before(s, (int32_t)i, out[0])) {
                out[0] = (int32_t)i;
                sift_down(s, out, k, 0);
            }
        }
    }
    for (int m = k - 1; m > 0; m--) { /* the last-ranked to the end: best first */
        int32_t t = out[0];
        out[0] = out[m];
        out[m] = t;
        sift_down(s, out, m, 0);
    }
    return k;
}

/* max_i s[i] ignoring NaNs (-INFINITY for none), as a loop of fmaxf; SSE's maxps where there is one */
static float max_f32(const float *s, size_t n)
{
    float m = -INFINITY;
    size_t i = 0;
#if defined(__SSE__)
    __m128 a = _mm_set1_ps(-INFINITY), b = a;
    for (; i + 8 <= n; i += 8) { /* maxps(x, acc) = x > acc ? x : acc: a NaN x keeps acc */
        a = _mm_max_ps(_mm_loadu_ps(s + i), a);
        b = _mm_max_ps(_mm_loadu_ps(s + i + 4), b);
    }
    float v[4];
    _mm_storeu_ps(v, _mm_max_ps(a, b));
    for (int j = 0; j < 4; j++) m = fmaxf(m, v[j]);
#endif
    for (; i < n; i++) m = fmaxf(m, s[i]);
    return m;
}

void pq_rerank(float *sc, size_t n, size_t d, const float *q, const float *e, uint8_t *mark, size_t R, int32_t *top)
{
    int nt = top_k(sc, n, mark, R < (size_t)INT32_MAX ? (int)R : INT32_MAX, top);
    if (nt <= 0) return;
    float lo = INFINITY;
    for (int t = 0; t < nt; t++) {
        lo = fminf(lo, cblas_sdot((int)d, q, 1, e + (size_t)top[t] * d, 1));
        sc[top[t]] = -INFINITY; /* out of the maximum and the shift below: its exact score comes last */
    }
    const float hi = max_f32(sc, n);
    /* the rest below the lowest exact score: shift by (hi - lo) + a margin above the rounding of
       the shifted values (2^-20 of the magnitudes against a rounding of 2^-24) */
    if (hi >= lo) {
        double shift = (double)hi - (double)lo + ldexp(fabs((double)hi) + fabs((double)lo) + 1e-30, -20);
        for (size_t i = 0; i < n; i++) sc[i] = (float)((double)sc[i] - shift);
    }
    for (int t = 0; t < nt; t++) sc[top[t]] = cblas_sdot((int)d, q, 1, e + (size_t)top[t] * d, 1);
}

/* ---- fixed point --------------------------------------------------------------------------------- */

int pq_fix_shift(double vmax, size_t n)
{
    if (!(vmax > 0.0) || !isfinite(vmax)) return 0;
    int e;
    frexp(vmax * (double)(n ? n : 1), &e); /* n vmax < 2^e */
    int S = 62 - e;
    return S < -1000 ? -1000 : S > 1000 ? 1000 : S;
}

int64_t pq_fix(double v, int S) { return (int64_t)llrint(ldexp(v, S)); }

/* ---- data-parallel training ---------------------------------------------------------------------- */

static int comm_sum(const pq_comm *c, int64_t *buf, size_t n) { return c->sum_i64 && c->size > 1 ? c->sum_i64(c->ctx, buf, n) : DM_OK; }
static int comm_max(const pq_comm *c, double *buf, size_t n) { return c->max_f64 && c->size > 1 ? c->max_f64(c->ctx, buf, n) : DM_OK; }

/* the seeding draw of sub-space m, step t: an item index below N (total == 0) or a weight below total */
static uint64_t seed_draw(uint64_t seed, int m, int t, uint64_t bound)
{
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, (uint64_t)m, (uint64_t)t));
    return dm_rng_below(&r, bound);
}

/* max |x| and whether every value is finite; the fixed-point exponents of the sums */
typedef struct {
    int Sx, Sd, Se; /* centroid sums; seeding squared distances (one sub-space); per-item errors and norms */
} pq_scales;

static pq_scales scales_of(double mx, size_t N, size_t ds, size_t D)
{
    pq_scales s = {pq_fix_shift(mx, N), pq_fix_shift(4.0 * mx * mx * (double)ds, N), pq_fix_shift(4.0 * mx * mx * (double)D, N)};
    return s;
}

static double local_max(const float *x, size_t n, int *bad)
{
    double mx = 0.0;
    *bad = 0;
    for (size_t i = 0; i < n; i++) {
        double v = fabs((double)x[i]);
        if (!isfinite(v)) *bad = 1;
        else if (v > mx) mx = v;
    }
    return mx;
}

/* The training's buffers, allocated before the first collective (a failure is agreed once, and
 * nothing after it can fail on one shard alone). */
typedef struct {
    float *mind;   /* (n, M) squared distance to the nearest centroid chosen so far */
    int64_t *tot;  /* (P, M) the shards' weight totals */
    int64_t *bits; /* (D) the chosen sub-vectors' float bits */
    int64_t *acc;  /* (nacc) a Lloyd step's sums: [sums (M, K, ds) | counts (M, K) | changed] */
    uint8_t *prev; /* (n, M) the previous step's codes */
    float *ct;     /* (K D) encode_ws's workspace */
} pq_ws;

/* k-means++ seeding of every sub-space at once (pq.h): K steps, two sums each */
static int seed_pp(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, uint64_t seed, const pq_comm *comm, int Sd, pq_ws *w)
{
    const int M = cb->M, K = cb->K, P = comm->size, R = comm->rank;
    const size_t D = cb->D, ds = cb->ds, Kz = (size_t)K, Mz = (size_t)M;
    for (int t = 0; t < K; t++) {
        memset(w->tot, 0, (size_t)P * Mz * sizeof *w->tot);
        for (size_t m = 0; t > 0 && m < Mz; m++) {
            int64_t s = 0;
            for (size_t i = 0; i < n; i++) s += pq_fix(w->mind[i * Mz + m], Sd);
            w->tot[(size_t)R * Mz + m] = s;
        }
        DM_CALL(comm_sum(comm, w->tot, (size_t)P * Mz));
        memset(w->bits, 0, D * sizeof *w->bits);
        for (size_t m = 0; m < Mz; m++) {
            uint64_t total = 0, before = 0;
            for (int r = 0; r < P; r++) {
                total += (uint64_t)w->tot[(size_t)r * Mz + m];
                if (r < R) before += (uint64_t)w->tot[(size_t)r * Mz + m];
            }
            size_t pick = 0;
            int mine = 0;
            if (total == 0) { /* the first centroid, or every item already is a centroid: uniform */
                uint64_t g = seed_draw(seed, (int)m, t, (uint64_t)N);
                if (g >= i0 && g < i0 + n) mine = 1, pick = (size_t)(g - i0);
            } else {
                uint64_t u = seed_draw(seed, (int)m, t, total), own = (uint64_t)w->tot[(size_t)R * Mz + m];
                if (u >= before && u < before + own) {
                    u -= before;
                    for (size_t i = 0; i < n && !mine; i++) {
                        uint64_t wi = (uint64_t)pq_fix(w->mind[i * Mz + m], Sd);
                        if (u < wi) mine = 1, pick = i;
                        else u -= wi;
                    }
                    DM_ASSERT(mine);
                }
            }
            for (size_t j = 0; mine && j < ds; j++) {
                uint32_t b;
                memcpy(&b, x + pick * D + m * ds + j, sizeof b);
                w->bits[m * ds + j] = (int64_t)b;
            }
        }
        /* the chosen sub-vectors' float bits: exactly one shard contributes each */
        DM_CALL(comm_sum(comm, w->bits, D));
        for (size_t m = 0; m < Mz; m++) {
            float *c = cb->c + (m * Kz + (size_t)t) * ds;
            for (size_t j = 0; j < ds; j++) {
                uint32_t b = (uint32_t)w->bits[m * ds + j];
                memcpy(c + j, &b, sizeof b);
            }
            for (size_t i = 0; i < n; i++) {
                float d = dist2(x + i * D + m * ds, c, ds), *md = w->mind + i * Mz + m;
                if (t == 0 || d < *md) *md = d;
            }
        }
    }
    return DM_OK;
}

/* One Lloyd step's local sums into w->acc (codes: the shard's assignment under the current codebook) */
static void lloyd_sums(const pq_codebook *cb, const float *x, size_t n, const uint8_t *codes, const uint8_t *prev, int Sx, int64_t *acc)
{
    const size_t D = cb->D, ds = cb->ds, Mz = (size_t)cb->M, Kz = (size_t)cb->K, nacc = Kz * D + Mz * Kz + 1;
    memset(acc, 0, nacc * sizeof *acc);
    int64_t *cnt = acc + Kz * D;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < Mz; m++) {
            size_t k = codes[i * Mz + m];
            int64_t *s = acc + (m * Kz + k) * ds;
            const float *xm = x + i * D + m * ds;
            for (size_t j = 0; j < ds; j++) s[j] += pq_fix(xm[j], Sx);
            cnt[m * Kz + k]++;
            acc[nacc - 1] += !prev || prev[i * Mz + m] != codes[i * Mz + m];
        }
}

/* The final error, norm and cluster sizes of codes: fin = [err | norm | counts (M, K)] */
static void final_sums(const pq_codebook *cb, const float *x, size_t n, const uint8_t *codes, int Se, int64_t *fin)
{
    const size_t D = cb->D, ds = cb->ds, Mz = (size_t)cb->M, Kz = (size_t)cb->K;
    memset(fin, 0, (2 + Mz * Kz) * sizeof *fin);
    for (size_t i = 0; i < n; i++) {
        float e = 0.0f, nr = 0.0f;
        for (size_t m = 0; m < Mz; m++) {
            const float *xm = x + i * D + m * ds;
            e += dist2(xm, cb->c + (m * Kz + codes[i * Mz + m]) * ds, ds);
            for (size_t j = 0; j < ds; j++) nr += xm[j] * xm[j];
            fin[2 + m * Kz + codes[i * Mz + m]]++;
        }
        fin[0] += pq_fix(e, Se);
        fin[1] += pq_fix(nr, Se);
    }
}

static void final_stats(const pq_codebook *cb, const int64_t *fin, int Se, pq_train_stats *st)
{
    st->err = ldexp((double)fin[0], -Se);
    st->norm = ldexp((double)fin[1], -Se);
    st->empty = 0;
    for (size_t q = 0; q < (size_t)cb->M * (size_t)cb->K; q++) st->empty += !fin[2 + q];
}

static void ws_free(pq_ws *w)
{
    DM_FREE_ALL(w->mind, w->tot, w->bits, w->acc, w->prev, w->ct);
    memset(w, 0, sizeof *w);
}

/* pq_train from k-means++ seeding (reseed) or from the codebook as it is (OPQ's rounds) */
static int train_run(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, uint64_t seed, const pq_comm *comm,
                     uint8_t *codes, pq_train_stats *st, int reseed)
{
    pq_comm one = {0, 1, NULL, NULL, NULL};
    if (!comm) comm = &one;
    memset(st, 0, sizeof *st);
    const size_t D = cb->D, ds = cb->ds, Mz = (size_t)cb->M, Kz = (size_t)cb->K;
    const size_t nacc = Kz * D + Mz * Kz + 1;
    pq_ws w = {malloc((n * Mz + 1) * sizeof(float)), malloc(((size_t)comm->size * Mz + 1) * sizeof(int64_t)),
               malloc((D + 1) * sizeof(int64_t)), malloc(nacc * sizeof(int64_t)), malloc(n * Mz + 1), malloc((Kz * D + 1) * sizeof(float))};
    int bad;
    /* [max |x|, a non-finite value, an allocation failed]: agreed before any other collective */
    double g[3] = {local_max(x, n * D, &bad), 0.0, 0.0};
    g[1] = bad;
    g[2] = !w.mind || !w.tot || !w.bits || !w.acc || !w.prev || !w.ct;
    int rc = comm_max(comm, g, 3);
    if (!rc && g[2] != 0.0) rc = DM_ERR(DM_ENOMEM, "pq: out of memory for the training buffers of %zu items", n);
    if (!rc && g[1] != 0.0) rc = DM_ERR(DM_EINPUT, "pq: an item latent is not finite");
    if (!rc && N == 0) rc = DM_ERR(DM_EINPUT, "pq: no items to train the codebooks on");
    const pq_scales sc = scales_of(g[0], N, ds, D);
    if (!rc && reseed) rc = seed_pp(cb, x, n, i0, N, seed, comm, sc.Sd, &w);
    for (int it = 0; !rc && it < iters; it++) {
        if (it) memcpy(w.prev, codes, n * Mz);
        encode_ws(cb, x, n, codes, w.ct);
        lloyd_sums(cb, x, n, codes, it ? w.prev : NULL, sc.Sx, w.acc);
        rc = comm_sum(comm, w.acc, nacc);
        if (rc) break;
        const int64_t *cnt = w.acc + Kz * D;
        for (size_t q = 0; q < Mz * Kz; q++) {
            if (!cnt[q]) continue; /* empty: keeps its centroid */
            for (size_t j = 0; j < ds; j++) cb->c[q * ds + j] = (float)(ldexp((double)w.acc[q * ds + j], -sc.Sx) / (double)cnt[q]);
        }
        st->iters = it + 1;
        st->changed = w.acc[nacc - 1];
        if (!st->changed) break;
    }
    /* the codes of the final codebook, its error and its empty clusters (acc is large enough) */
    if (!rc) {
        encode_ws(cb, x, n, codes, w.ct);
        final_sums(cb, x, n, codes, sc.Se, w.acc);
        rc = comm_sum(comm, w.acc, 2 + Mz * Kz);
    }
    if (!rc) final_stats(cb, w.acc, sc.Se, st);
    ws_free(&w);
    return rc;
}

/* train_run stage by stage on the residuals (pq.h, residual stages): stage l's codebook is a
 * one-stage codebook t of its own, trained (or, without reseed, refined from cb's stage l) on r_l;
 * r_{l+1} = r_l - its centroid, the subtraction encode_ws repeats */
static int rq_run(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, uint64_t seed, const pq_comm *comm,
                  uint8_t *codes, pq_train_stats *st, int reseed)
{
    if (cb->L == 1) return train_run(cb, x, n, i0, N, iters, seed, comm, codes, st, reseed);
    pq_comm one = {0, 1, NULL, NULL, NULL};
    if (!comm) comm = &one;
    memset(st, 0, sizeof *st);
    const size_t D = cb->D, ds = cb->ds, Mz = (size_t)cb->M, Kz = (size_t)cb->K, Lz = (size_t)cb->L, C = Mz * Lz;
    pq_codebook t = {cb->M, cb->K, 1, D, ds, malloc(Kz * D * sizeof(float)), NULL, NULL};
    float *r = malloc((n * D + 1) * sizeof *r);
    uint8_t *tc = malloc(n * Mz + 1);
    double g = !t.c || !r || !tc; /* agreed before any other collective */
    int rc = comm_max(comm, &g, 1);
    if (!rc && g != 0.0) rc = DM_ERR(DM_ENOMEM, "pq: out of memory for the residuals of %zu items", n);
    if (!rc) memcpy(r, x, n * D * sizeof *r);
    for (size_t l = 0; !rc && l < Lz; l++) {
        if (!reseed)
            for (size_t m = 0; m < Mz; m++) memcpy(t.c + m * Kz * ds, cb->c + (m * Lz + l) * Kz * ds, Kz * ds * sizeof *t.c);
        pq_train_stats s;
        rc = train_run(&t, r, n, i0, N, iters, l ? dm_rng_key(seed, (uint64_t)l, 0x5251) : seed, comm, tc, &s, reseed);
        if (rc) break;
        for (size_t m = 0; m < Mz; m++) memcpy(cb->c + (m * Lz + l) * Kz * ds, t.c + m * Kz * ds, Kz * ds * sizeof *t.c);
        for (size_t i = 0; i < n; i++)
            for (size_t m = 0; m < Mz; m++) {
                const uint8_t k = tc[i * Mz + m];
                const float *c = t.c + (m * Kz + k) * ds;
                float *rm = r + i * D + m * ds;
                codes[i * C + m * Lz + l] = k;
                for (size_t j = 0; j < ds; j++) rm[j] -= c[j];
            }
        if (s.iters > st->iters) st->iters = s.iters;
        st->changed += s.changed;
        st->empty += s.empty;
        if (!l) st->norm = s.norm;
        st->err = s.err;
    }
    DM_FREE_ALL(t.c, r, tc);
    return rc;
}

int pq_train(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, uint64_t seed, const pq_comm *comm,
             uint8_t *codes, pq_train_stats *st)
{
    return rq_run(cb, x, n, i0, N, iters, seed, comm, codes, st, 1);
}

/* ---- OPQ ------------------------------------------------------------------------------------------ */

/* One-sided Jacobi (Hestenes): rotates column pairs of W (D, D) and of J (D, D, the identity on
   entry) until every pair of W's columns is orthogonal to working precision, in cyclic sweeps of a
   fixed order. On return W = A J for the A W held on entry, J orthogonal, so A = U S J^T with S the
   column norms of W (into nrm (D); the largest is returned) and U its normalised columns. */
static double jacobi_cols(double *W, double *J, size_t D, double *nrm)
{
    for (size_t q = 0; q < D * D; q++) J[q] = q / D == q % D;
    for (int sweep = 0; sweep < 100; sweep++) {
        int rotated = 0;
        for (size_t p = 0; p + 1 < D; p++)
            for (size_t q = p + 1; q < D; q++) {
                double al = 0, be = 0, ga = 0;
                for (size_t r = 0; r < D; r++) {
                    const double wp = W[r * D + p], wq = W[r * D + q];
                    al += wp * wp;
                    be += wq * wq;
                    ga += wp * wq;
                }
                if (ga == 0.0 || fabs(ga) <= DBL_EPSILON * sqrt(al) * sqrt(be)) continue;
                rotated = 1;
                const double zeta = (be - al) / (2.0 * ga), t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                const double c = 1.0 / sqrt(1.0 + t * t), s = c * t;
                for (size_t r = 0; r < D; r++) {
                    double wp = W[r * D + p], wq = W[r * D + q];
                    W[r * D + p] = c * wp - s * wq;
                    W[r * D + q] = s * wp + c * wq;
                    wp = J[r * D + p], wq = J[r * D + q];
                    J[r * D + p] = c * wp - s * wq;
                    J[r * D + q] = s * wp + c * wq;
                }
            }
        if (!rotated) break;
    }
    double mx = 0.0;
    for (size_t j = 0; j < D; j++) {
        double s2 = 0;
        for (size_t r = 0; r < D; r++) s2 += W[r * D + j] * W[r * D + j];
        nrm[j] = sqrt(s2);
        mx = fmax(mx, nrm[j]);
    }
    return mx;
}

int pq_polar(const double *A, size_t D, double *R)
{
    for (size_t q = 0; q < D * D; q++)
        if (!isfinite(A[q])) return DM_ERR(DM_EINPUT, "pq: OPQ's cross-covariance has a non-finite entry (%zu, %zu)", q / D, q % D);
    double *W = malloc((D * D + 1) * sizeof *W), *J = malloc((D * D + 1) * sizeof *J), *U = malloc((D * D + 1) * sizeof *U),
           *sg = malloc((D + 1) * sizeof *sg);
    if (!W || !J || !U || !sg) {
        DM_FREE_ALL(W, J, U, sg);
        return DM_ERR(DM_ENOMEM, "pq: out of memory for a %zu x %zu rotation", D, D);
    }
    memcpy(W, A, D * D * sizeof *W);
    /* W = A J = U S, so A = U S J^T and R = U J^T */
    const double smax = jacobi_cols(W, J, D, sg);
    const double tiny = smax * (double)D * DBL_EPSILON;
    for (size_t j = 0; j < D; j++) /* U's columns: W's normalised, or 0 for a null direction (below) */
        for (size_t r = 0; r < D; r++) U[r * D + j] = sg[j] > tiny && smax > 0 ? W[r * D + j] / sg[j] : 0.0;
    size_t e = 0; /* the next unit vector to try */
    for (size_t j = 0; j < D; j++) {
        if (sg[j] > tiny && smax > 0) continue;
        for (; e < D; e++) { /* e_e minus its projections on every column set so far, twice */
            double *v = W; /* W is free now: v (D) */
            for (size_t r = 0; r < D; r++) v[r] = r == e;
            for (int pass = 0; pass < 2; pass++)
                for (size_t k = 0; k < D; k++) {
                    if (k == j) continue;
                    double dot = 0;
                    for (size_t r = 0; r < D; r++) dot += U[r * D + k] * v[r];
                    for (size_t r = 0; r < D; r++) v[r] -= dot * U[r * D + k];
                }
            double nv = 0;
            for (size_t r = 0; r < D; r++) nv += v[r] * v[r];
            nv = sqrt(nv);
            if (nv > 0.5) {
                for (size_t r = 0; r < D; r++) U[r * D + j] = v[r] / nv;
                e++;
                break;
            }
        }
    }
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) {
            double s = 0;
            for (size_t j = 0; j < D; j++) s += U[a * D + j] * J[b * D + j];
            R[a * D + b] = s;
        }
    DM_FREE_ALL(W, J, U, sg);
    return DM_OK;
}

int pq_train_opq(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, int opq, int opq_iters, uint64_t seed,
                 const pq_comm *comm, uint8_t *codes, pq_train_stats *st)
{
    if (opq <= 0) return pq_train(cb, x, n, i0, N, iters, seed, comm, codes, st);
    pq_comm one = {0, 1, NULL, NULL, NULL};
    if (!comm) comm = &one;
    const size_t D = cb->D, ds = cb->ds, Mz = (size_t)cb->M, Kz = (size_t)cb->K, Lz = (size_t)cb->L, Cz = Mz * Lz, nxs = Cz * Kz * D;
    float *y = malloc((n * D + 1) * sizeof *y), *rot = malloc(D * D * sizeof *rot);
    int64_t *xs = malloc((nxs + 1) * sizeof *xs), *fx = malloc((D + 1) * sizeof *fx);
    double *A = malloc(D * D * sizeof *A), *R = malloc(D * D * sizeof *R);
    int bad;
    double g[2] = {local_max(x, n * D, &bad), !y || !rot || !xs || !fx || !A || !R};
    int rc = comm_max(comm, g, 2);
    if (!rc && g[1] != 0.0) rc = DM_ERR(DM_ENOMEM, "pq: out of memory for OPQ's buffers of %zu items", n);
    if (!rc) rc = pq_train(cb, x, n, i0, N, iters, seed, comm, codes, st); /* rot = I */
    const int Sx = pq_fix_shift(g[0], N);
    for (int t = 0; !rc && t < opq; t++) {
        /* X_{q,k} = sum of the items coded k in code column q (sub-space q / L, stage q % L), fixed
           point: exact, any sharding */
        memset(xs, 0, nxs * sizeof *xs);
        for (size_t i = 0; i < n; i++) {
            for (size_t a = 0; a < D; a++) fx[a] = pq_fix(x[i * D + a], Sx);
            for (size_t q = 0; q < Cz; q++) {
                int64_t *s = xs + (q * Kz + codes[i * Cz + q]) * D;
                for (size_t a = 0; a < D; a++) s[a] += fx[a];
            }
        }
        rc = comm_sum(comm, xs, nxs);
        if (rc) break;
        /* A[a][m ds + j] = sum_{l,k} X_{mL+l,k}[a] c_{m,l,k}[j] (the decoded y^ is the sum of the
           stages' centroids), l then k in order, the same on every shard */
        memset(A, 0, D * D * sizeof *A);
        for (size_t q = 0; q < Cz; q++)
            for (size_t k = 0; k < Kz; k++) {
                const float *c = cb->c + (q * Kz + k) * ds;
                for (size_t a = 0; a < D; a++) {
                    const double xa = ldexp((double)xs[(q * Kz + k) * D + a], -Sx);
                    double *Aa = A + a * D + (q / Lz) * ds;
                    for (size_t j = 0; j < ds; j++) Aa[j] += xa * (double)c[j];
                }
            }
        rc = pq_polar(A, D, R);
        if (rc) break;
        for (size_t q = 0; q < D * D; q++) rot[q] = (float)R[q];
        pq_rotate(rot, D, x, n, y);
        rc = rq_run(cb, y, n, i0, N, opq_iters, seed, comm, codes, st, 0);
    }
    if (!rc) {
        free(cb->rot);
        cb->rot = rot;
        rot = NULL;
    }
    DM_FREE_ALL(y, rot, xs, fx, A, R);
    return rc;
}

/* ---- the queries' metric ---- */

int pq_second_moment(const float *q, size_t n, size_t D, size_t N, const pq_comm *comm, double *sig)
{
    pq_comm one = {0, 1, NULL, NULL, NULL};
    if (!comm) comm = &one;
    const size_t nt = D * (D + 1) / 2; /* the upper triangle, row by row (and a failure flag) */
    int64_t *acc = calloc(nt + 1, sizeof *acc);
    int bad;
    double g[2] = {local_max(q, n * D, &bad), !acc};
    g[0] = bad ? INFINITY : g[0];
    int rc = comm_max(comm, g, 2);
    if (!rc && g[1] != 0.0) rc = DM_ERR(DM_ENOMEM, "pq: out of memory for the queries' second moment");
    if (!rc && !isfinite(g[0])) rc = DM_ERR(DM_EINPUT, "pq: a query (user state) has a non-finite value");
    if (!rc && N == 0) rc = DM_ERR(DM_EINPUT, "pq: no query (user state) to take the second moment of");
    if (rc) {
        free(acc);
        return rc;
    }
    /* each value in fixed point, f = round(v 2^s) with N (max 2^s)^2 <= 2^62: the products f_a f_b
       and their sums over all N rows are exact int64, hence order-free (sig is that of the values
       rounded to 2^-s, a relative 2^-20 of the largest at N = 2^21) */
    const int S2 = pq_fix_shift(g[0] * g[0], N), s = (S2 - (S2 < 0 && S2 % 2 ? 1 : 0)) / 2;
    int64_t *f = malloc((D + 1) * sizeof *f);
    const int nof = !f;
    if (nof) rc = DM_ERR(DM_ENOMEM, "pq: out of memory");
    for (size_t u = 0; f && u < n; u++) {
        for (size_t a = 0; a < D; a++) f[a] = pq_fix(q[u * D + a], s);
        size_t t = 0;
        for (size_t a = 0; a < D; a++) {
            const int64_t fa = f[a];
            int64_t *row = acc + t;
            for (size_t b = a; b < D; b++) row[b - a] += fa * f[b];
            t += D - a;
        }
    }
    free(f);
    acc[nt] = nof; /* an allocation failure is agreed by the sum */
    int rc2 = comm_sum(comm, acc, nt + 1);
    if (!rc) rc = rc2;
    if (!rc && acc[nt]) rc = DM_ERR(DM_ENOMEM, "pq: out of memory on a shard");
    if (!rc) {
        size_t t = 0;
        for (size_t a = 0; a < D; a++)
            for (size_t b = a; b < D; b++, t++) sig[a * D + b] = sig[b * D + a] = ldexp((double)acc[t], -2 * s) / (double)N;
    }
    free(acc);
    return rc;
}

int pq_query_metric(const double *sig, size_t D, int M, double floor, double *T, double *Ti, double *lam)
{
    for (size_t q = 0; q < D * D; q++)
        if (!isfinite(sig[q])) return DM_ERR(DM_EINPUT, "pq: the queries' second moment has a non-finite entry (%zu, %zu)", q / D, q % D);
    if (!(floor > 0.0 && floor <= 1.0)) return DM_ERR(DM_EINPUT, "pq: the eigenvalue floor %g is not in (0, 1]", floor);
    if (M < 1 || D % (size_t)M) return DM_ERR(DM_EINPUT, "pq: %d sub-spaces do not divide %zu dimensions", M, D);
    const size_t Mz = (size_t)M, ds = D / Mz;
    double *W = malloc((D * D + 1) * sizeof *W), *J = malloc((D * D + 1) * sizeof *J), *l = malloc((D + 1) * sizeof *l),
           *lp = malloc((Mz + 1) * sizeof *lp);
    size_t *ord = malloc((D + 1) * sizeof *ord), *col = malloc((D + 1) * sizeof *col), *fill = calloc(Mz + 1, sizeof *fill);
    if (!W || !J || !l || !lp || !ord || !col || !fill) {
        DM_FREE_ALL(W, J, l, lp, ord, col, fill);
        return DM_ERR(DM_ENOMEM, "pq: out of memory for a %zu x %zu metric", D, D);
    }
    memcpy(W, sig, D * D * sizeof *W);
    /* sig J = U S with sig PSD: sig = J S J^T, the eigenvalues S on J's columns */
    const double lmax = jacobi_cols(W, J, D, l);
    int rc = DM_OK;
    if (!(lmax > 0.0)) rc = DM_ERR(DM_EINPUT, "pq: the queries' second moment is zero (every user state is zero)");
    if (!rc) {
        double mean = 0.0;
        for (size_t j = 0; j < D; j++) {
            if (lam) lam[j] = l[j];
            l[j] = fmax(l[j], floor * lmax);
            mean += l[j];
        }
        mean /= (double)D;
        /* the directions by decreasing eigenvalue (insertion sort; ties by index) */
        for (size_t j = 0; j < D; j++) {
            size_t t = j;
            for (; t > 0 && l[ord[t - 1]] < l[j]; t--) ord[t] = ord[t - 1];
            ord[t] = j;
        }
        /* eigenvalue allocation: the first M one to a sub-space, then each to the sub-space with the
           smallest product of eigenvalues that still has room (lowest index on ties) */
        for (size_t m = 0; m < Mz; m++) lp[m] = 0.0;
        for (size_t t = 0; t < D; t++) {
            size_t best = t < Mz ? t : Mz;
            for (size_t m = 0; t >= Mz && m < Mz; m++)
                if (fill[m] < ds && (best == Mz || lp[m] < lp[best])) best = m;
            col[best * ds + fill[best]++] = ord[t];
            lp[best] += log(l[ord[t]] / mean); /* of the scaled l' */
        }
        /* T[a][m ds + i] = V[a][j] sqrt(l'_j), Ti the same with 1 / sqrt(l'_j), j = col[m ds + i] */
        for (size_t a = 0; a < D; a++)
            for (size_t c = 0; c < D; c++) {
                const size_t j = col[c];
                const double r = sqrt(l[j] / mean);
                T[a * D + c] = J[a * D + j] * r;
                Ti[a * D + c] = J[a * D + j] / r;
            }
    }
    DM_FREE_ALL(W, J, l, lp, ord, col, fill);
    return rc;
}

int pq_set_metric(pq_codebook *cb, const double *T, const double *Ti)
{
    const size_t D = cb->D;
    float *r = malloc(D * D * sizeof *r), *qr = malloc(D * D * sizeof *qr);
    if (!r || !qr) {
        DM_FREE_ALL(r, qr);
        return DM_ERR(DM_ENOMEM, "pq: out of memory for a %zu x %zu metric", D, D);
    }
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++) {
            double s = 0, sq = 0;
            for (size_t c = 0; c < D; c++) {
                const double rcb = cb->rot ? (double)cb->rot[c * D + b] : (double)(c == b);
                s += T[a * D + c] * rcb;
                sq += Ti[a * D + c] * rcb;
            }
            r[a * D + b] = (float)s;
            qr[a * D + b] = (float)sq;
        }
    free(cb->rot);
    free(cb->qrot);
    cb->rot = r;
    cb->qrot = qr;
    return DM_OK;
}
