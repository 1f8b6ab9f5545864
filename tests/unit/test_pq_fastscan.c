/* test_pq_fastscan.c: ADC over 4-bit codes by fast scan (src/pq/pq.h, pq_fastscan.c), on every
 * path this CPU runs (scalar, SSSE3, AVX2, AVX-512BW, each forced through pq_fs_isa_force):
 *  - the integer sums of packed codes equal the naive twin's from the unpacked codes, bitwise, for
 *    M = 1 to 300 and item counts not multiples of the block (1, 31, 33, 1000, 2500), and at the
 *    uint16 bound itself (every entry qmax: M qmax = 65535 at M = 257)
 *  - the table quantisation: entries in [0, qmax], padding zero, each within delta / 2 of its float
 *  - the float scores bitwise equal on every path and to the naive twin, and within pq.h's bound
 *    (M delta / 2 (1 + 2^-40) + 3u (|base| + delta S) + M 2^-53 sum |b_m|) of the exact sum of
 *    the float table's entries (and of pq_adc_scores within that plus gamma_M sum |lut|)
 *  - re-ranking the fast scan's top R: every item whose ADC score clears the R-th by more than
 *    twice the bound is in it, none below by as much; the re-ranked top 10 equals the float ADC
 *    path's when the bound separates them; R >= n gives the exact scores, as the float ADC path
 *  - refusals and degenerate tables: a code of 16 or more, a constant table, a NaN entry. */
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

#define U24 ldexp(1.0, -24)

static int g_paths[PQ_FS_AUTO]; /* the paths this CPU runs */

static void random_codes(dm_rng *r, uint8_t *c, size_t n, int K)
{
    for (size_t q = 0; q < n; q++) c[q] = (uint8_t)dm_rng_below(r, (uint64_t)K);
}

/* packed sums on every path = the naive sums of the unpacked codes, bitwise */
static void sums_case(dm_rng *r, int M, size_t n, int fill_max)
{
    const size_t Mp = (size_t)pq_fs_mpad(M);
    const int qmax = 65535 / M < 255 ? 65535 / M : 255;
    uint8_t *codes = malloc(n * (size_t)M), *qlut = calloc(Mp * 16, 1);
    uint16_t *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    random_codes(r, codes, n * (size_t)M, PQ_FS_KMAX);
    for (size_t m = 0; m < (size_t)M; m++)
        for (size_t k = 0; k < 16; k++) qlut[m * 16 + k] = (uint8_t)(fill_max ? qmax : (int)dm_rng_below(r, (uint64_t)qmax + 1));
    pq_fs_codes fc;
    CHECK(pq_fs_pack(&fc, codes, n, M) == DM_OK && fc.nb == (n + 31) / 32 && fc.Mp == (int)Mp, "pack M %d n %zu", M, n);
    pq_fs_sums_naive(codes, n, M, qlut, want);
    for (int isa = 0; isa < PQ_FS_AUTO; isa++) {
        if (!g_paths[isa]) continue;
        CHECK(pq_fs_isa_force((pq_fs_isa)isa) == DM_OK, "force %s", pq_fs_isa_name((pq_fs_isa)isa));
        memset(got, 0xa5, n * sizeof *got);
        pq_fs_sums(&fc, qlut, got);
        CHECK(!memcmp(got, want, n * sizeof *got), "M %d n %zu: %s sums differ from the naive twin's (item 0: %u vs %u)", M, n,
              pq_fs_isa_name((pq_fs_isa)isa), got[0], want[0]);
    }
    pq_fs_isa_force(PQ_FS_AUTO);
    if (fill_max) {
        int all = 1;
        for (size_t i = 0; i < n; i++) all &= want[i] == (uint16_t)(M * qmax);
        CHECK(all && M * qmax <= 65535, "every entry qmax: sums M qmax = %d", M * qmax);
    }
    pq_fs_free(&fc);
    TL_FREE(codes, qlut, want, got);
}

static void sums(void)
{
    dm_rng r;
    dm_rng_seed(&r, 17);
    static const int Ms[] = {1, 2, 3, 4, 5, 8, 16, 32, 33, 64, 300};
    static const size_t ns[] = {1, 31, 33, 1000, 2500};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) sums_case(&r, Ms[a], ns[b], 0);
    /* the uint16 bound reached exactly (257 x 255 = 65535) and with qmax below 255 (300 x 218) */
    sums_case(&r, 257, 65, 1);
    sums_case(&r, 300, 33, 1);
    sums_case(&r, 32, 1000, 1);
}

/* pq.h's bound on |s^ - s| for a sum S of a table with scale sc and sum_m |b_m| = babs */
static double fs_bound(int M, pq_fs_scale sc, uint16_t S, double babs)
{
    return M * (double)sc.delta / 2 * (1 + ldexp(1.0, -40)) + 3 * U24 * (fabs((double)sc.base) + (double)sc.delta * S) + M * ldexp(1.0, -53) * babs;
}

/* the quantised table against the float one; returns sum_m |b_m| */
static double check_table(const float *lut, int M, int K, const uint8_t *qlut, pq_fs_scale sc)
{
    const int qmax = 65535 / M < 255 ? 65535 / M : 255;
    int range = 1, pad = 1, close = 1;
    double babs = 0;
    for (int m = 0; m < pq_fs_mpad(M); m++) {
        float lo = INFINITY;
        for (int k = 0; m < M && k < K; k++) lo = fminf(lo, lut[m * K + k]);
        if (m < M) babs += fabs((double)lo);
        for (int k = 0; k < 16; k++) {
            const int q = qlut[m * 16 + k];
            if (m >= M || k >= K) {
                pad &= q == 0;
                continue;
            }
            range &= q <= qmax;
            close &= fabs(q * (double)sc.delta - ((double)lut[m * K + k] - lo)) <= (double)sc.delta / 2 * (1 + ldexp(1.0, -40));
        }
    }
    CHECK(range && pad && close, "M %d K %d: entries within [0, %d] %d, padding zero %d, each within delta / 2 %d", M, K, qmax, range, pad, close);
    return babs;
}

/* fast-scan scores: bitwise the same on every path and as the naive twin; within the bound of the
 * exact sums of the float entries and of the float ADC */
static void scores_case(dm_rng *r, size_t D, int M, int K, size_t n, size_t B)
{
    pq_codebook cb;
    CHECK(pq_init(&cb, D, M, K, "pq") == DM_OK, "init");
    tl_randn(r, cb.c, (size_t)K * D, 1.0);
    const size_t MK = (size_t)M * (size_t)K, Mp = (size_t)pq_fs_mpad(M);
    float *q = tl_randn_new(r, B * D, 1.0), *lut = malloc(B * MK * sizeof *lut), *want = malloc(B * n * sizeof *want);
    float *got = malloc(B * n * sizeof *got), *adc = malloc(B * n * sizeof *adc);
    uint8_t *codes = malloc(n * (size_t)M), *qluts = malloc(B * Mp * 16);
    uint16_t *S = malloc(n * sizeof *S);
    pq_fs_scale *sc = malloc(B * sizeof *sc);
    random_codes(r, codes, n * (size_t)M, K);
    for (size_t b = 0; b < B; b++) {
        pq_adc_lut(&cb, q + b * D, lut + b * MK);
        pq_fs_quantise(lut + b * MK, M, K, qluts + b * Mp * 16, sc + b);
    }
    pq_fs_codes fc;
    CHECK(pq_fs_pack(&fc, codes, n, M) == DM_OK, "pack");
    CHECK(pq_fs_scores_naive(lut, B, codes, n, M, K, want) == DM_OK, "naive scores");
    pq_adc_scores(lut, B, codes, n, M, K, adc);
    for (int isa = 0; isa < PQ_FS_AUTO; isa++) {
        if (!g_paths[isa]) continue;
        pq_fs_isa_force((pq_fs_isa)isa);
        pq_fs_scores(&fc, qluts, sc, B, got);
        CHECK(!memcmp(got, want, B * n * sizeof *got), "D %zu M %d K %d n %zu: %s scores differ from the naive twin's", D, M, K, n,
              pq_fs_isa_name((pq_fs_isa)isa));
    }
    pq_fs_isa_force(PQ_FS_AUTO);
    double worst = 0, worst_adc = 0;
    const double gM = M * U24 / (1 - M * U24);
    for (size_t b = 0; b < B; b++) {
        const float *l = lut + b * MK;
        const double babs = check_table(l, M, K, qluts + b * Mp * 16, sc[b]);
        pq_fs_sums(&fc, qluts + b * Mp * 16, S);
        for (size_t i = 0; i < n; i++) {
            double s = 0, sa = 0; /* the sum of the float entries in double: off the real sum by at most M 2^-53 sa */
            for (int m = 0; m < M; m++) {
                s += l[(size_t)m * K + codes[i * (size_t)M + (size_t)m]];
                sa += fabs(l[(size_t)m * K + codes[i * (size_t)M + (size_t)m]]);
            }
            const double bnd = fs_bound(M, sc[b], S[i], babs) + M * ldexp(1.0, -53) * sa;
            worst = fmax(worst, fabs(got[b * n + i] - s) / bnd);
            worst_adc = fmax(worst_adc, fabs(got[b * n + i] - (double)adc[b * n + i]) / (bnd + gM * sa));
        }
    }
    CHECK(worst <= 1.0, "fast scan vs the exact sums: %.3f of the bound", worst);
    CHECK(worst_adc <= 1.0, "fast scan vs pq_adc_scores: %.3f of the bound", worst_adc);
    printf("  D %zu M %d K %d n %zu B %zu: scores bitwise on every path; vs exact sums %.3f of the bound, vs float ADC %.3f (delta %.3g)\n",
           D, M, K, n, B, worst, worst_adc, (double)sc[0].delta);
    pq_fs_free(&fc);
    TL_FREE(q, lut, want, got, adc, codes, qluts, S, sc);
    pq_free(&cb);
}

static void scores(void)
{
    dm_rng r;
    dm_rng_seed(&r, 23);
    scores_case(&r, 64, 32, 16, 1000, 3);
    scores_case(&r, 64, 32, 16, 2500, 2); /* three chunks of 1024, the last partial */
    scores_case(&r, 24, 6, 16, 33, 4);    /* M padded to 8 */
    scores_case(&r, 15, 5, 9, 1, 2);      /* K below 16, one item */
    scores_case(&r, 16, 16, 2, 777, 1);
    scores_case(&r, 300, 300, 16, 100, 1); /* qmax 218 */
}

/* the top R of scores sc (n) outside the marks, as a membership array */
static void top_set(const float *sc, size_t n, const uint8_t *mark, size_t R, uint8_t *in, int32_t *top)
{
    memset(in, 0, n);
    int nt = dm_top_k_f32(sc, n, mark, (int)R, top);
    for (int t = 0; t < nt; t++) in[top[t]] = 1;
}

/* re-ranking: the fast scan's top R against the float ADC's, and the re-ranked top 10 */
static void rerank(void)
{
    dm_rng r;
    dm_rng_seed(&r, 29);
    const size_t n = 1000, D = 64, R = 100;
    const int M = 32, K = 16;
    pq_codebook cb;
    CHECK(pq_init(&cb, D, M, K, "pq") == DM_OK, "init");
    /* items of 20 clusters with their own norms, so that the exact top 10 stands out */
    float *ctr = tl_randn_new(&r, 20 * D, 1.0), *x = tl_randn_new(&r, n * D, 0.3), *q = malloc(D * sizeof *q);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) x[i * D + j] += ctr[(i % 20) * D + j] * (float)(1.0 + 0.05 * (double)(i % 7));
    memcpy(q, ctr + 3 * D, D * sizeof *q);
    uint8_t *codes = malloc(n * (size_t)M), qlut[32 * 16], *mark = calloc(n, 1), *inf = malloc(n), *ina = malloc(n);
    CHECK(pq_train(&cb, x, n, 0, n, 10, 5, NULL, codes, &(pq_train_stats){0}) == DM_OK, "train");
    for (size_t i = 0; i < n; i += 13) mark[i] = 1; /* a history */
    float *lut = malloc((size_t)M * K * sizeof *lut), *fs = malloc(n * sizeof *fs), *adc = malloc(n * sizeof *adc);
    double *s = malloc(n * sizeof *s);
    int32_t *top = malloc(n * sizeof *top), tf[10], ta[10];
    pq_adc_lut(&cb, q, lut);
    pq_fs_scale sc;
    pq_fs_quantise(lut, M, K, qlut, &sc);
    pq_fs_codes fc;
    CHECK(pq_fs_pack(&fc, codes, n, M) == DM_OK, "pack");
    pq_fs_scores(&fc, qlut, &sc, 1, fs);
    pq_adc_scores(lut, 1, codes, n, M, K, adc);
    /* beta: the bound at the largest sum, plus the double sums' error (as in scores_case) */
    double babs = 0, beta = 0, smax = 0;
    for (int m = 0; m < M; m++) {
        float lo = INFINITY;
        for (int k = 0; k < K; k++) lo = fminf(lo, lut[m * K + k]);
        babs += fabs((double)lo);
    }
    for (size_t i = 0; i < n; i++) {
        double sa = 0;
        s[i] = 0;
        for (int m = 0; m < M; m++) {
            s[i] += lut[(size_t)m * K + codes[i * (size_t)M + (size_t)m]];
            sa += fabs(lut[(size_t)m * K + codes[i * (size_t)M + (size_t)m]]);
        }
        smax = fmax(smax, sa);
    }
    beta = fs_bound(M, sc, 65535, babs) + M * ldexp(1.0, -53) * smax;
    /* the R-th and (R+1)-th best exact ADC sums outside the history */
    float *sf = malloc(n * sizeof *sf);
    for (size_t i = 0; i < n; i++) sf[i] = (float)s[i];
    int32_t *rk = malloc((R + 1) * sizeof *rk);
    dm_top_k_f32(sf, n, mark, (int)R + 1, rk);
    const double sR = s[rk[R - 1]], sR1 = s[rk[R]];
    top_set(fs, n, mark, R, inf, top);
    int in_ok = 1, out_ok = 1;
    size_t sure_in = 0, sure_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (mark[i]) continue;
        if (s[i] > sR1 + 2 * beta) sure_in++, in_ok &= inf[i];
        if (s[i] < sR - 2 * beta) sure_out++, out_ok &= !inf[i];
    }
    CHECK(in_ok && out_ok, "fast scan's top %zu: %zu items above the %zu-th by 2 beta all in (%d), %zu below by 2 beta all out (%d)", R, sure_in,
          R + 1, in_ok, sure_out, out_ok);
    CHECK(sure_in >= R / 2 && sure_out >= n / 2, "the bound separates most items (%zu sure in, %zu sure out, beta %.3g)", sure_in, sure_out, beta);
    /* the exact top 10 of the union of both top-R sets, all in both: then both re-ranked top 10s are it */
    top_set(adc, n, mark, R, ina, top);
    float *ex = malloc(n * sizeof *ex);
    uint8_t *notu = malloc(n);
    for (size_t i = 0; i < n; i++) {
        ex[i] = cblas_sdot((int)D, q, 1, x + i * D, 1);
        notu[i] = mark[i] || !(inf[i] || ina[i]);
    }
    int32_t best[10];
    dm_top_k_f32(ex, n, notu, 10, best);
    int separated = 1;
    for (int t = 0; t < 10; t++) separated &= inf[best[t]] && ina[best[t]];
    CHECK(separated, "the exact top 10 of both top-%zu sets lies in both", R);
    memcpy(sf, fs, n * sizeof *sf);
    pq_rerank(fs, n, D, q, x, mark, R, top);
    pq_rerank(adc, n, D, q, x, mark, R, top);
    dm_top_k_f32(fs, n, mark, 10, tf);
    dm_top_k_f32(adc, n, mark, 10, ta);
    CHECK(separated && !memcmp(tf, ta, sizeof tf) && !memcmp(tf, best, sizeof tf), "re-ranked top 10: fast scan = float ADC = exact");
    /* R >= n: every item's exact score, whichever scores came first */
    memcpy(fs, sf, n * sizeof *fs);
    pq_adc_scores(lut, 1, codes, n, M, K, adc);
    pq_rerank(fs, n, D, q, x, mark, n, top);
    pq_rerank(adc, n, D, q, x, mark, n, top);
    int same = 1;
    for (size_t i = 0; i < n; i++) same &= mark[i] || (fs[i] == adc[i] && fs[i] == ex[i]);
    CHECK(same, "R >= n: the exact scores on both paths");
    printf("  re-ranking the top %zu of %zu: beta %.3g (delta %.3g), %zu items surely in, %zu surely out; top 10 the exact one\n", R, n, beta,
           (double)sc.delta, sure_in, sure_out);
    pq_fs_free(&fc);
    TL_FREE(ctr, x, q, codes, mark, inf, ina, lut, fs, adc, s, top, sf, rk, ex, notu);
    pq_free(&cb);
}

/* refusals and degenerate tables */
static void edges(void)
{
    uint8_t codes[6] = {1, 2, 3, 4, 16, 5}, qlut[16 * 4];
    pq_fs_codes fc;
    CHECK(pq_fs_pack(&fc, codes, 3, 2) == DM_EINPUT && strstr(dm_error_message(), "code 16 of item 2, sub-space 0 is not a 4-bit code"),
          "a code of 16 refused: %s", dm_error_message());
    dm_error_clear();
    CHECK(fc.codes == NULL, "nothing allocated");
    codes[4] = 15;
    CHECK(pq_fs_pack(&fc, codes, 3, 2) == DM_OK, "pack");
    float lut[2 * 16], out[3];
    pq_fs_scale sc;
    for (int k = 0; k < 32; k++) lut[k] = 0.25f;
    pq_fs_quantise(lut, 2, 16, qlut, &sc);
    pq_fs_scores(&fc, qlut, &sc, 1, out);
    CHECK(sc.delta == 0.0f && out[0] == 0.5f && out[1] == 0.5f && out[2] == 0.5f, "a constant table: delta 0, every score the sum (%g)",
          (double)out[0]);
    lut[7] = NAN;
    pq_fs_quantise(lut, 2, 16, qlut, &sc);
    pq_fs_scores(&fc, qlut, &sc, 1, out);
    CHECK(isnan(out[0]) && isnan(out[1]) && isnan(out[2]), "a NaN entry: NaN scores, as the float ADC");
    CHECK(pq_fs_isa_force(PQ_FS_AUTO) == DM_OK && pq_fs_isa_current() < PQ_FS_AUTO && g_paths[pq_fs_isa_current()], "automatic path %s",
          pq_fs_isa_name(pq_fs_isa_current()));
    pq_fs_free(&fc);
}

int main(void)
{
    printf("  fast-scan paths:");
    for (int isa = 0; isa < PQ_FS_AUTO; isa++) {
        g_paths[isa] = pq_fs_isa_supported((pq_fs_isa)isa);
        printf(" %s%s", pq_fs_isa_name((pq_fs_isa)isa), g_paths[isa] ? "" : " (not on this CPU)");
    }
    printf("; automatic: %s\n", pq_fs_isa_name(pq_fs_isa_current()));
    CHECK(g_paths[PQ_FS_SCALAR], "the scalar path always runs");
    sums();
    scores();
    rerank();
    edges();
    return tap_done("test_pq_fastscan");
}
