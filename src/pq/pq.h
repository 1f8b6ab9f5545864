/* pq.h: product quantisation of item latents (Jegou, Douze, Schmid, TPAMI 2011) for inner-product
 * ranking by asymmetric distances.
 *
 * A latent x (D) is cut into M sub-vectors x_m (ds = D / M each); sub-space m has K <= 256
 * centroids c_{m,k} (ds), and x is stored as M one-byte codes q_m(x) = argmin_k |x_m - c_{m,k}|^2
 * (lowest k on ties): 4 D bytes become M bytes. A query q scores the code of x by the asymmetric
 * distance (the query stays in float):
 *     lut[m][k] = q_m . c_{m,k}                (M K products of ds terms, once per query)
 *     s(q, x)   = sum_m lut[m][q_m(x)]         (M lookups per item, summed in m order)
 * which is q . x^ for the decoded x^ = [c_{1,q_1(x)}, ..., c_{M,q_M(x)}] up to float rounding.
 *
 * Training is k-means per sub-space: k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd
 * iterations. It is data parallel without seeing ranks: items are sharded in rank order, and every
 * quantity that crosses ranks is an int64 sum the caller allreduces (pq_comm), so the codebooks are
 * bitwise the same for any number of shards:
 *   - a float v enters a sum as round(v 2^S) (pq_fix), S chosen from the global max |x| and item
 *     count so no sum can overflow 2^62 (pq_fix_shift); integer sums do not depend on their order,
 *     and are turned back once: (double) sum 2^-S. Error against the exact sum: N 2^-S / 2 <=
 *     2^-62 N^2 max (relative to the largest term), far below a float's rounding.
 *   - k-means++ draws item i with probability w_i / sum w, w_i = round(d_i^2 2^S) the fixed-point
 *     squared distance to the nearest chosen centroid. The draw u = dm_rng_below(key(seed, m, t),
 *     sum w) is the same on every rank; the rank whose prefix of w holds u names the item and
 *     sends its sub-vector to all as int64 float bits in another sum (one rank contributes).
 *   - a Lloyd step sums, per centroid, the fixed-point sub-vectors of its items and their count;
 *     c = (float)((double) sum 2^-S / count); an empty cluster keeps its centroid.
 * Per item every distance is computed by the same float code in a fixed order, so an item's
 * assignment depends on the item and the codebook alone, never on its shard.
 *
 * Memory: the codebook owns c (M, K, ds) floats; pq_train holds the shard's codes (n, M) bytes and
 * nearest squared distances (n, M) floats during seeding. Callers own x, codes and outputs.
 */
#ifndef DM_PQ_H
#define DM_PQ_H

#include <stddef.h>
#include <stdint.h>

#define PQ_KMAX 256

typedef struct {
    int M, K;     /* sub-spaces, centroids per sub-space */
    size_t D, ds; /* latent dimension, sub-space dimension D / M */
    float *c;     /* (M, K, ds) centroids */
} pq_codebook;

/* Checks the shape (1 <= K <= 256, M >= 1 dividing D; DM_ECONFIG naming what is wrong, `what`
 * prefixes the message, e.g. "pq: sasrec") and allocates a zeroed codebook. */
int pq_init(pq_codebook *cb, size_t D, int M, int K, const char *what);
void pq_free(pq_codebook *cb);

/* codes (n, M) = the nearest centroid of each sub-vector of x (n, D) (lowest k on ties); DM_ENOMEM
 * only. Items in parallel (OpenMP): each item's codes depend on it and the codebook alone. */
int pq_encode(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes);
/* x (n, D) = the decoded latents of codes (n, M). */
void pq_decode(const pq_codebook *cb, const uint8_t *codes, size_t n, float *x);

/* lut (M, K) = the products q_m . c_{m,k} of a query q (D), each summed in j order. */
void pq_adc_lut(const pq_codebook *cb, const float *q, float *lut);
/* out (B, n) = the ADC scores of B queries (luts (B, M, K)) over codes (n, M), each a float sum in
 * m order; items are taken in blocks so a block's codes are read once for all B queries. */
void pq_adc_scores(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out);
/* The naive twins of the kernels above (same signatures, same sums in the same order: bitwise
 * equal results). */
int pq_encode_naive(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes);
void pq_adc_scores_naive(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out);

/* Exact re-ranking of one user's top R: sc (n) holds the ADC scores on entry; the R best items
 * not marked (mark (n): nonzero = the user's history; ties to the lower index) take their exact
 * scores q . e_i (q (d), e (n, d), cblas_sdot) and every other item is shifted below the lowest
 * of them by one constant (its ADC order kept up to one float rounding each). top (R) is scratch;
 * mark is restored. */
void pq_rerank(float *sc, size_t n, size_t d, const float *q, const float *e, uint8_t *mark, size_t R, int32_t *top);

/* ---- data-parallel training -------------------------------------------------------------------- */

/* The caller's collectives. sum_i64 replaces buf (n) on every shard by its sum over the shards,
 * max_f64 by its maximum. Shards hold consecutive items in rank order (rank r holds global items
 * [i0_r, i0_r + n_r), i0_r increasing with r). NULL comm = one shard. */
typedef struct {
    int rank, size;
    void *ctx;
    int (*sum_i64)(void *ctx, int64_t *buf, size_t n);
    int (*max_f64)(void *ctx, double *buf, size_t n);
} pq_comm;

/* The fixed-point exponent S for sums of at most n terms of magnitude at most vmax:
 * n vmax 2^S <= 2^62 (0 when vmax is 0 or not finite). */
int pq_fix_shift(double vmax, size_t n);
/* round(v 2^S) */
int64_t pq_fix(double v, int S);

typedef struct {
    int iters;          /* Lloyd iterations run (stops early when no assignment changed) */
    int64_t changed;    /* assignments changed by the last iteration */
    double err;         /* final sum over items of |x - x^|^2 */
    double norm;        /* sum over items of |x|^2 (relative error = err / norm) */
    int64_t empty;      /* clusters empty after the last iteration (their centroids are seeds) */
} pq_train_stats;

/* Trains cb (shape from pq_init) on this shard's items x (n, D), global items [i0, i0 + n) of N,
 * with `iters` Lloyd iterations after k-means++ seeding from `seed`; codes (n, M) = the shard's
 * codes under the final codebook. Collective over comm (every shard calls with the same N, iters,
 * seed); the codebook is bitwise the same for any sharding. DM_EINPUT for N = 0 or a non-finite
 * latent (agreed over the shards). */
int pq_train(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, uint64_t seed, const pq_comm *comm,
             uint8_t *codes, pq_train_stats *st);

/* The naive serial twin of pq_train on all N items at once: the same seeding draws (the same
 * fixed-point weights, a plain running prefix) and Lloyd iterations whose centroid sums are plain
 * double sums in item order. Agrees with pq_train up to the centroids' last bits (and, in a near
 * tie, an assignment). */
int pq_train_naive(pq_codebook *cb, const float *x, size_t N, int iters, uint64_t seed, uint8_t *codes, pq_train_stats *st);

#endif
