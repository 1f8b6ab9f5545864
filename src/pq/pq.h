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
 * Memory: the codebook owns c (M, K, ds) floats (and rot (D, D) after OPQ, below); pq_train holds the shard's codes (n, M) bytes and
 * nearest squared distances (n, M) floats during seeding. Callers own x, codes and outputs.
 */
#ifndef DM_PQ_H
#define DM_PQ_H

#include <stddef.h>
#include <stdint.h>

#define PQ_KMAX 256

typedef struct {
    int M, K;     /* sub-spaces, centroids per sub-space (and stage) */
    int L;        /* stages per sub-space: 1 = PQ, more = residual (below) */
    size_t D, ds; /* latent dimension, sub-space dimension D / M */
    float *c;     /* (M, L, K, ds) centroids: code column m L + l's at c + (m L + l) K ds */
    float *rot;   /* NULL, or (D, D): the codes quantise y = x rot (OPQ: orthogonal; the queries' metric: not) */
    float *qrot;  /* NULL (queries take rot), or (D, D): a query q is scored as q qrot (the queries' metric) */
} pq_codebook;

/* ---- residual stages (pq.stages) ----------------------------------------------------------------------
 *
 * With L > 1 stages each sub-space is coded by residual quantisation (Juang and Gray 1982; Chen, Guan
 * and Wang, "Approximate nearest neighbor search by residual vector quantization", Sensors 2010;
 * Faiss's ProductResidualQuantizer): stage l has its own K centroids c_{m,l,k} (ds), and
 *     r_0 = x_m,   q_{m,l}(x) = argmin_k |r_l - c_{m,l,k}|^2,   r_{l+1} = r_l - c_{m,l,q_{m,l}(x)}
 * (greedy, lowest k on ties, each r a float subtraction), so x_m^ = sum_l c_{m,l,q_{m,l}} and an item
 * is M L codes: column m L + l of codes (n, M L) (pq_ncodes). The LUT keeps its form with one row per
 * code column, lut[m L + l][k] = q_m . c_{m,l,k}, so the ADC kernels and the fast scan take M L code
 * columns unchanged. The point is the bits per direction: a sub-space of K^L cells whose lookups are
 * L tables of K entries, so 4-bit codes (the fast scan) can give a sub-space that holds a direction
 * the queries use 8 or more bits. Training is stage by stage: the k-means of pq_train (seeding from
 * dm_rng_key(seed, stage, 0x5251) for stages after the first) on the residuals the earlier stages
 * leave, so it stays bitwise the same for any sharding. */

/* Checks the shape (1 <= K <= 256, M >= 1 dividing D; DM_ECONFIG naming what is wrong, `what`
 * prefixes the message, e.g. "pq: sasrec") and allocates a zeroed codebook of one stage. */
int pq_init(pq_codebook *cb, size_t D, int M, int K, const char *what);
/* pq_init with L stages per sub-space (1 <= L <= PQ_LMAX; pq.stages) */
int pq_init_rq(pq_codebook *cb, size_t D, int M, int L, int K, const char *what);
#define PQ_LMAX 16
/* code columns an item has: M L */
static inline int pq_ncodes(const pq_codebook *cb) { return cb->M * cb->L; }
void pq_free(pq_codebook *cb);

/* codes (n, M L) = the nearest centroid of each sub-vector of x (n, D) (lowest k on ties; of x rot
 * when cb->rot; stage by stage on the residuals when L > 1); DM_ENOMEM only. Items in parallel
 * (OpenMP): each item's codes depend on it and the codebook alone. */
int pq_encode(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes);
/* x (n, D) = the decoded latents of codes (n, M L) (the stages' centroids summed in l order), in the
 * codebook's space (x^ rot when cb->rot: the latent itself is that times rot^T). */
void pq_decode(const pq_codebook *cb, const uint8_t *codes, size_t n, float *x);
/* y (n, D) = x (n, D) rot (D, D): y_b = sum_a x_a rot[a][b], summed in a order (the one rotation of
 * this module: encoding, queries, training and the naive twins). */
void pq_rotate(const float *rot, size_t D, const float *x, size_t n, float *y);

/* lut (M L, K) = the products q_m . c_{m,l,k} of a query q (D), each summed in j order; with cb->rot,
 * of the rotated query q rot (so that q . x = (q rot) . (x rot) for the orthogonal rot); with
 * cb->qrot, of q qrot (q . x = (q qrot) . (x rot), the queries' metric below). */
void pq_adc_lut(const pq_codebook *cb, const float *q, float *lut);
/* out (B, n) = the ADC scores of B queries (luts (B, M, K)) over codes (n, M), each a float sum in
 * m order; items are taken in blocks so a block's codes are read once for all B queries. With
 * residual stages M here is the code columns, pq_ncodes. */
void pq_adc_scores(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out);
/* The naive twins of the kernels above (same signatures, same sums in the same order: bitwise
 * equal results). */
int pq_encode_naive(const pq_codebook *cb, const float *x, size_t n, uint8_t *codes);
void pq_adc_scores_naive(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out);

/* Exact re-ranking of one user's top R: sc (n) holds the ADC scores on entry; the R best items
 * not marked (mark (n): nonzero = the user's history; ties to the lower index) take their exact
 * scores q . e_i (q (d), e (n, d), cblas_sdot) and every other item is shifted below the lowest
 * of them by one constant (its ADC order kept up to one float rounding each). top (min(R, n)) is
 * scratch; mark is only read (NULL: no history). One pass finds the top R (dm_top_k_f32's items in
 * its order), one the maximum of the rest, one shifts them. */
void pq_rerank(float *sc, size_t n, size_t d, const float *q, const float *e, uint8_t *mark, size_t R, int32_t *top);

/* ---- fast scan: 4-bit codes (K <= 16) ----------------------------------------------------------------
 *
 * ADC over codes of at most 16 centroids with the lookups done in SIMD registers (André, Kermarrec,
 * Le Scouarnec, "Cache locality is not enough", VLDB 2015, and "Quicker ADC", TPAMI 2019; Faiss's
 * PQ fast scan):
 *   - layout: items in blocks of 32; a block holds, per sub-space m < Mp (M rounded up to a multiple
 *     of 4, padding sub-spaces all code 0), 16 bytes: byte j = code of item j (low nibble) | code of
 *     item j + 16 (high nibble). Mp 16 bytes per block: M / 2 bytes per item, half of pq.h5's codes.
 *     Items past n in the last block are code 0 and dropped.
 *   - table: the float table lut (M, K) of one query becomes bytes qlut (Mp, 16)
 *         b_m = min_k lut[m][k],   qlut[m][k] = round((lut[m][k] - b_m) / delta)   (0 past K and M)
 *     with one step delta = max_m (max_k lut[m][k] - b_m) / qmax, qmax = min(255, floor(65535 / M)):
 *     every entry is in [0, qmax], so any sum over the M sub-spaces is at most M qmax <= 65535 and
 *     the uint16 sums never wrap (nor do their partial sums, which are smaller).
 *   - scan: S(i) = sum_m qlut[m][code_m(i)], exact integers, the same on every path: a byte shuffle
 *     (pshufb) looks up 16 items of one sub-space per 128-bit lane (SSSE3: one sub-space, AVX2: two,
 *     AVX-512BW: four per instruction), summed in uint16.
 *   - score: s^(i) = base + delta S(i) in float (one product and one sum, each rounded), base =
 *     sum_m b_m (summed in double, rounded once). Against the real sum s(i) = sum_m lut[m][code_m(i)]
 *     of the float table's entries:
 *         |s^(i) - s(i)| <= M delta / 2 (1 + 2^-40) + 3u (|base| + delta S(i)) + M 2^-53 sum_m |b_m|
 *     with u = 2^-24: each table entry is off by at most delta / 2 (its rounding to the step; the
 *     division in double adds 2^-52 relative), then the score's two float roundings (2u (1 + u)^2
 *     <= 3u) and base's double sum and float rounding. The first term is the one that matters.
 *     pq_adc_scores sums the same float entries in float, within gamma_M sum_m |lut[m][code_m]|.
 * The float scores are the same bits on every path (one shared conversion of the exact sums). */

#define PQ_FS_KMAX 16  /* centroids per sub-space the fast scan takes */
#define PQ_FS_BLOCK 32 /* items per block */

/* The scan's paths; PQ_FS_AUTO = the best this CPU runs (__builtin_cpu_supports). */
typedef enum { PQ_FS_SCALAR, PQ_FS_SSSE3, PQ_FS_AVX2, PQ_FS_AVX512, PQ_FS_AUTO } pq_fs_isa;

typedef struct {
    int M, Mp;      /* sub-spaces, and M rounded up to a multiple of 4 */
    size_t n, nb;   /* items, blocks of PQ_FS_BLOCK */
    uint8_t *codes; /* (nb, Mp, 16) nibble-packed codes */
} pq_fs_codes;

/* One query's scale: s^ = base + delta S. */
typedef struct {
    float delta, base;
} pq_fs_scale;

/* M rounded up to a multiple of 4: the rows of a quantised table and of a block */
static inline int pq_fs_mpad(int M) { return (M + 3) & ~3; }
/* The dequantised score of an integer sum (the one conversion every path uses). */
static inline float pq_fs_score(pq_fs_scale s, uint16_t S) { return s.base + s.delta * (float)S; }

/* Packs codes (n, M), each below 16, into fc; DM_EINPUT names a code of 16 or more, DM_ENOMEM. */
int pq_fs_pack(pq_fs_codes *fc, const uint8_t *codes, size_t n, int M);
void pq_fs_free(pq_fs_codes *fc);
/* qlut (pq_fs_mpad(M), 16) and *sc from one query's float table lut (M, K), K <= 16. A table with a
 * non-finite entry gives a non-finite delta or base, hence non-finite scores, as pq_adc_scores. */
void pq_fs_quantise(const float *lut, int M, int K, uint8_t *qlut, pq_fs_scale *sc);
/* sums (n) = the exact integer sums S(i) of one quantised table qlut over fc, on the current path. */
void pq_fs_sums(const pq_fs_codes *fc, const uint8_t *qlut, uint16_t *sums);
/* S(i) of one item i < fc->n, read out of the packed block (scalar): the same integer as pq_fs_sums's,
 * for scoring a few listed items (a sampled protocol's candidates) without scanning the catalogue. */
uint16_t pq_fs_sum_item(const pq_fs_codes *fc, const uint8_t *qlut, size_t i);
/* out (B, n) = the dequantised scores of B queries (qluts (B, Mp, 16), scales (B)) over fc; items in
 * chunks whose codes stay in L1 while every query reads them (OpenMP over chunks). */
void pq_fs_scores(const pq_fs_codes *fc, const uint8_t *qluts, const pq_fs_scale *sc, size_t B, float *out);
/* The naive twins: from the unpacked codes (n, M), one item and one sub-space at a time; the same
 * integers, and the same float scores bitwise (pq_fs_quantise, then pq_fs_score); DM_ENOMEM only. */
void pq_fs_sums_naive(const uint8_t *codes, size_t n, int M, const uint8_t *qlut, uint16_t *sums);
int pq_fs_scores_naive(const float *luts, size_t B, const uint8_t *codes, size_t n, int M, int K, float *out);

/* Whether this CPU runs a path; the path in use; its name ("scalar", "ssse3", "avx2", "avx512bw"). */
int pq_fs_isa_supported(pq_fs_isa isa);
pq_fs_isa pq_fs_isa_current(void);
const char *pq_fs_isa_name(pq_fs_isa isa);
/* Test and benchmark hook: scan with `isa` from now on (PQ_FS_AUTO: the best again); DM_EINPUT when
 * this CPU does not run it. Not for use while another thread scans. */
int pq_fs_isa_force(pq_fs_isa isa);

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
 * with `iters` Lloyd iterations after k-means++ seeding from `seed`; codes (n, M L) = the shard's
 * codes under the final codebook (pq_encode's). Collective over comm (every shard calls with the
 * same N, iters, seed); the codebook is bitwise the same for any sharding. DM_EINPUT for N = 0 or a
 * non-finite latent (agreed over the shards). With L > 1 stages, stage by stage on the residuals:
 * st->iters is the most any stage ran, changed and empty are summed over the stages, err is the last
 * residual's and norm x's. */
int pq_train(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, uint64_t seed, const pq_comm *comm,
             uint8_t *codes, pq_train_stats *st);

/* ---- optimised product quantisation (OPQ) -------------------------------------------------------------
 *
 * Non-parametric OPQ (Ge, He, Ke, Sun, CVPR 2013; Faiss's OPQMatrix): an orthogonal rotation of the
 * latents before they are cut into sub-spaces, chosen with the codebooks to minimise the distortion
 * sum_i |x_i rot - y^_i|^2. Starting from rot = I and pq_train's codebooks, each of `opq` rounds
 *   - fixes the codes and solves the orthogonal Procrustes problem: with A = sum_i x_i^T y^_i (D, D),
 *     rot = U V^T for A = U S V^T (pq_polar). A is made of integer sums: per sub-space m and centroid
 *     k the fixed-point sum of the items x_i coded k in m (allreduced, exact), then
 *     A[a][m ds + j] = sum_k X_{m,k}[a] c_{m,k}[j] in double, in k order, on every shard alike;
 *   - fixes rot and runs `opq_iters` Lloyd iterations from the current codebooks (no new seeding).
 * Each step can only lower the distortion (up to rounding). The rotation is bitwise the same on every
 * shard and for any sharding, as the codebooks are. Inner products survive it: q . x = (q rot) . (x
 * rot), so ADC scores the rotated query (pq_adc_lut) and re-ranking still reads the float latents. */

/* R (D, D) = the orthogonal polar factor U V^T of A (D, D) = U S V^T (the orthogonal R maximising
 * sum_ab R_ab A_ab), by one-sided Jacobi rotations in double in a fixed order (cyclic sweeps until no
 * pair is rotated); directions of A's null space are completed by Gram-Schmidt from the unit vectors.
 * DM_EINPUT for a non-finite entry, DM_ENOMEM. */
int pq_polar(const double *A, size_t D, double *R);

/* pq_train, then `opq` rounds of rotation and `opq_iters` Lloyd iterations (above); cb->rot is
 * allocated and set (the identity for opq = 0 is not stored: cb->rot stays NULL). codes (n, M) =
 * the shard's codes of x rot; st as pq_train's, of the final rotation and codebooks. Collective. */
int pq_train_opq(pq_codebook *cb, const float *x, size_t n, size_t i0, size_t N, int iters, int opq, int opq_iters, uint64_t seed,
                 const pq_comm *comm, uint8_t *codes, pq_train_stats *st);

/* ---- the queries' metric ------------------------------------------------------------------------------
 *
 * PQ minimises |x - x^|^2, which treats every direction of the latent alike; ranking only needs the
 * scores q . x of the queries that come. For queries with second moment sig = E[q^T q] (D, D) =
 * V diag(l) V^T, the expected squared error of a score is
 *     E_q (q . (x - x^))^2 = (x - x^) sig (x - x^)^T = |(x - x^) V diag(sqrt(l))|^2,
 * so PQ of y = x T, T = V diag(sqrt(l)) P for any permutation P, minimises it exactly, and a query
 * is scored as q Ti, Ti = V diag(1 / sqrt(l)) P: (q Ti) . (x T) = q . x. Directions the users' states
 * never take get no codes. User states often span few directions (a trained model's dozen of 64),
 * so which sub-space gets which direction matters: P is the eigenvalue allocation of parametric OPQ
 * (Ge, He, Ke, Sun, CVPR 2013): by decreasing eigenvalue, the first M directions one to a sub-space,
 * then each to the sub-space with the smallest product of eigenvalues that still has room. Each
 * sub-space then holds an equal share of the variance that matters instead of a few holding all of
 * it. The eigenvalues are floored at `floor` times the largest (a state outside the sample still
 * scores in every direction) and scaled to mean 1 (y keeps x's scale): l' = max(l, floor l_max) /
 * mean. sig's eigenvectors come from one-sided Jacobi in a fixed order (as pq_polar), so T is the
 * same on every rank. With OPQ on y (rotation R): items x (T R), queries q (Ti R): cb->rot and
 * cb->qrot. The training's rel_err is then measured in that metric: sum |(x - x^) T|^2 / sum |x T|^2. */

/* sig (D, D) = (1/N) sum_u q_u^T q_u over the N query rows of all shards (this shard: q (n, D)), of
 * int64 fixed-point products allreduced over comm: bitwise the same for any sharding. DM_EINPUT for a
 * non-finite value or N = 0 (agreed over the shards), DM_ENOMEM. Collective. */
int pq_second_moment(const float *q, size_t n, size_t D, size_t N, const pq_comm *comm, double *sig);
/* T and Ti (D, D) for M sub-spaces (above); lam (D) or NULL = sig's eigenvalues before the floor,
 * in no particular order. DM_EINPUT for a non-finite entry, a zero sig, M not dividing D or a floor
 * outside (0, 1], DM_ENOMEM. */
int pq_query_metric(const double *sig, size_t D, int M, double floor, double *T, double *Ti, double *lam);
/* After training on y = x T: cb->rot = T rot and cb->qrot = Ti rot (rot = cb->rot, or I), composed
 * in double and rounded once. DM_ENOMEM only. */
int pq_set_metric(pq_codebook *cb, const double *T, const double *Ti);

/* The naive serial twin of pq_train on all N items at once: the same seeding draws (the same
 * fixed-point weights, a plain running prefix) and Lloyd iterations whose centroid sums are plain
 * double sums in item order. Agrees with pq_train up to the centroids' last bits (and, in a near
 * tie, an assignment). */
int pq_train_naive(pq_codebook *cb, const float *x, size_t N, int iters, uint64_t seed, uint8_t *codes, pq_train_stats *st);

#endif
