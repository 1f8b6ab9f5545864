/* bench_pq.c: full-catalogue scoring of product-quantised item latents (src/pq/pq.h) against exact
 * float32 scoring (OpenBLAS), side by side in one process, one thread.
 *
 * Usage: bench_pq [n_items] [d] [batch] [reps] [recall_users] [noise] [stages4]
 * Synthetic clustered latents: 1000 centres c ~ N(0, I), an item is a centre plus N(0, noise^2 I)
 * (noise 0.5 by default), a user state another such draw around a centre. Isotropic noise has no
 * structure a quantiser can use: at 1M items the exact top 10 of a user are the extremes of ~1000
 * items of its cluster, which is hard for any 16x compression. Two quantisers, each 16x smaller
 * than float32, trained by pq_train on 65536 evenly spaced items (10 Lloyd iterations), every item
 * then encoded:
 *   ADC8  pq.m = d / 4, pq.k = 256: one byte per code; float tables, pq_adc_scores
 *   FS4   pq.m = d / 2, pq.k = 16: 4-bit codes by fast scan (byte tables in registers, pq_fs_scores);
 *         with stages4 = L > 1, pq.m = d / (2 L) sub-spaces of L residual stages (pq.stages): the
 *         same d / 2 four-bit code columns, so the same scan
 * For a batch of B user states, timed interleaved, medians of `reps`:
 *   exact = cblas_sgemm (B, n) = (B, d) x (n, d)^T (cblas_sgemv when B = 1), OpenBLAS's best;
 *   exact_fixed = the same product by nn_sgemm_fixed in blocks of 16384 items, as eval's dot scorer
 *   computes it (model_latents_score: each score's bits independent of the call, hence of ranks);
 *   adc8 / fs4 = the B tables + the scores of every item; +rr = then per user the top 100 (no
 *   history) re-scored exactly (pq_rerank), fs4 also with the top 1000; fs4 again on each
 *   fast-scan path this CPU runs.
 * Recall@10 of the exact top 10 over `recall_users` other users: ADC's top 10, and the top 10 after
 * re-ranking its top 100 and 1000 (and the float ADC over the 4-bit codes, to show what the byte
 * tables cost). Correctness verdict: ADC8 within gamma_(ds+m) sum |q_j x^_j| of the decoded
 * latents' dot products; FS4 bitwise the same on every path, and within pq.h's bound (M delta / 2
 * + roundings) plus gamma_M sum |lut| of the float ADC over the same codes. Prints one line of
 * key=value pairs. */
#include "../../src/core/rng.h"
#include "../../src/core/sort.h"
#include "../../src/core/timer.h"
#include "../../src/nn/gemm.h"
#include "../../src/pq/pq.h"
#include "../unit/testlib.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

#define NCLUSTER 1000
#define RR 100
#define TRAIN_ITEMS 65536
#define MAXREP 64

/* rows (n, D): a centre of ctr (NCLUSTER, D) (row i uses centre key(i) mod NCLUSTER) plus N(0, sd^2) */
static float *clustered(dm_rng *r, const float *ctr, size_t n, size_t D, double sd)
{
    float *x = tl_randn_new(r, n * D, sd);
    for (size_t i = 0; i < n; i++) {
        const float *c = ctr + (size_t)(dm_rng_u64(r) % NCLUSTER) * D;
        for (size_t j = 0; j < D; j++) x[i * D + j] += c[j];
    }
    return x;
}

/* a quantiser of e (n, D): trained on TRAIN_ITEMS evenly spaced items, every item encoded */
static uint8_t *quantise(pq_codebook *cb, const float *e, size_t n, size_t D, int M, int L, int K, double *rel)
{
    const size_t S = n < TRAIN_ITEMS ? n : TRAIN_ITEMS;
    float *xs = malloc(S * D * sizeof *xs);
    uint8_t *cs = malloc(S * (size_t)M * (size_t)L), *codes = malloc(n * (size_t)M * (size_t)L);
    if (!xs || !cs || !codes || pq_init_rq(cb, D, M, L, K, "bench_pq")) tl_die("quantiser");
    for (size_t t = 0; t < S; t++) memcpy(xs + t * D, e + (t * n / S) * D, D * sizeof *xs);
    pq_train_stats st;
    if (pq_train(cb, xs, S, 0, S, 10, 1, NULL, cs, &st) || pq_encode(cb, e, n, codes)) tl_die("pq_train");
    *rel = st.err / st.norm;
    TL_FREE(xs, cs);
    return codes;
}

typedef struct {
    size_t n, D, B;
    const float *e, *u; /* (n, D) items, (B, D) users */
    pq_codebook *c8, *c4;
    const uint8_t *codes8; /* (n, M8) */
    const pq_fs_codes *fs; /* FS4's codes */
    float *se, *s8, *s4;   /* (B, n) scores */
    float *lut8, *lut4;    /* (B, M, K) */
    uint8_t *qlut;         /* (B, Mp, 16) */
    pq_fs_scale *qsc;      /* (B) */
    uint8_t *mark;         /* (n) zero: no history */
    int32_t *top;          /* (1000) */
} bench;

static void run_exact(bench *b)
{
    if (b->B == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)b->n, (int)b->D, 1.0f, b->e, (int)b->D, b->u, 1, 0.0f, b->se, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b->B, (int)b->n, (int)b->D, 1.0f, b->u, (int)b->D, b->e, (int)b->D, 0.0f,
                    b->se, (int)b->n);
}

/* exact scores as eval computes them (model_latents_score): the fixed-order kernel in blocks of
   16384 items, every score the same bits at any rank count (slower than OpenBLAS) */
static void run_exact_fixed(bench *b)
{
    for (size_t j0 = 0; j0 < b->n; j0 += 16384) {
        size_t nj = b->n - j0 < 16384 ? b->n - j0 : 16384;
        nn_sgemm_fixed(CblasNoTrans, CblasTrans, (int)b->B, (int)nj, (int)b->D, 1.0f, b->u, (int)b->D, b->e + j0 * b->D, (int)b->D, 0.0f,
                       b->se + j0, (int)b->n);
    }
}

static void run_adc8(bench *b)
{
    const size_t MK = (size_t)b->c8->M * (size_t)b->c8->K;
    for (size_t q = 0; q < b->B; q++) pq_adc_lut(b->c8, b->u + q * b->D, b->lut8 + q * MK);
    pq_adc_scores(b->lut8, b->B, b->codes8, b->n, b->c8->M, b->c8->K, b->s8);
}

static void run_fs4(bench *b)
{
    const size_t MK = (size_t)pq_ncodes(b->c4) * (size_t)b->c4->K, Q = (size_t)pq_fs_mpad(pq_ncodes(b->c4)) * 16;
    for (size_t q = 0; q < b->B; q++) {
        pq_adc_lut(b->c4, b->u + q * b->D, b->lut4 + q * MK);
        pq_fs_quantise(b->lut4 + q * MK, pq_ncodes(b->c4), b->c4->K, b->qlut + q * Q, b->qsc + q);
    }
    pq_fs_scores(b->fs, b->qlut, b->qsc, b->B, b->s4);
}

static void run_rerank(bench *b, float *sc, size_t R)
{
    for (size_t q = 0; q < b->B; q++) pq_rerank(sc + q * b->n, b->n, b->D, b->u + q * b->D, b->e, b->mark, R, b->top);
}

/* the timings: [exact, adc8, adc8+rr, fs4, fs4+rr, fs4+rr1000, fs4 on path 0..PQ_FS_AUTO-1, exact by
   the fixed-order kernel] (reps each) */
#define NT (7 + PQ_FS_AUTO)
#define T_FIXED (6 + PQ_FS_AUTO)
static void timings(bench *b, int reps, double t[NT][MAXREP])
{
    for (int rep = 0; rep < reps; rep++) {
        double t0 = dm_wtime();
        run_exact(b);
        double t1 = dm_wtime();
        run_adc8(b);
        double t2 = dm_wtime();
        run_rerank(b, b->s8, RR);
        double t3 = dm_wtime();
        run_fs4(b);
        double t4 = dm_wtime();
        run_rerank(b, b->s4, RR);
        double t5 = dm_wtime();
        run_fs4(b);
        run_rerank(b, b->s4, 1000);
        double t6 = dm_wtime();
        t[0][rep] = t1 - t0, t[1][rep] = t2 - t1, t[2][rep] = t3 - t1, t[3][rep] = t4 - t3, t[4][rep] = t5 - t3, t[5][rep] = t6 - t5;
        for (int isa = 0; isa < PQ_FS_AUTO; isa++) {
            t[6 + isa][rep] = NAN;
            if (!pq_fs_isa_supported((pq_fs_isa)isa)) continue;
            pq_fs_isa_force((pq_fs_isa)isa);
            double a = dm_wtime();
            run_fs4(b);
            t[6 + isa][rep] = dm_wtime() - a;
        }
        pq_fs_isa_force(PQ_FS_AUTO);
        double a = dm_wtime();
        run_exact_fixed(b);
        t[T_FIXED][rep] = dm_wtime() - a;
    }
}

/* hits of the exact top 10 (best) among the top 10 of sc (n) after re-ranking its top R (R = 0:
 * none); tmp (n) scratch */
static int hits(const bench *b, const float *sc, const float *q, const int32_t *best, size_t R, float *tmp)
{
    memcpy(tmp, sc, b->n * sizeof *tmp);
    if (R) pq_rerank(tmp, b->n, b->D, q, b->e, b->mark, R, b->top);
    int32_t got[10];
    int ng = dm_top_k_f32(tmp, b->n, NULL, 10, got), h = 0;
    for (int a = 0; a < 10; a++)
        for (int c = 0; c < ng; c++) h += best[a] == got[c];
    return h;
}

/* recall@10 of the exact top 10 over U users (U, D): rec[scorer][r] for the scorers ADC8, FS4 and
 * the float ADC over the 4-bit codes, after re-ranking the top g_rr[r]; uses b's first rows */
static const size_t g_rr[3] = {0, RR, 1000};
static void recall(bench *b, const float *users, size_t U, const uint8_t *codes4, double rec[3][3])
{
    const size_t n = b->n, D = b->D;
    float *a4 = malloc(n * sizeof *a4), *tmp = malloc(n * sizeof *tmp);
    int32_t *top = malloc(1000 * sizeof *top);
    if (!a4 || !tmp || !top) tl_die("out of memory");
    int64_t h[3][3] = {{0}};
    bench one = *b;
    one.B = 1;
    one.top = top;
    for (size_t t = 0; t < U; t++) {
        const float *q = users + t * D;
        int32_t best[10];
        one.u = q;
        run_exact(&one);
        dm_top_k_f32(one.se, n, NULL, 10, best);
        run_adc8(&one);
        run_fs4(&one);
        pq_adc_scores(one.lut4, 1, codes4, n, pq_ncodes(b->c4), b->c4->K, a4);
        const float *sc[3] = {one.s8, one.s4, a4};
        for (int k = 0; k < 3; k++)
            for (int r = 0; r < 3; r++) h[k][r] += hits(&one, sc[k], q, best, g_rr[r], tmp);
    }
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < 3; r++) rec[k][r] = (double)h[k][r] / (10.0 * (double)U);
    TL_FREE(a4, tmp, top);
}

/* the verdicts; returns the worst fraction of a bound used (<= 1: passed), -1 when paths differ */
static double verdict(bench *b, const uint8_t *codes4, double *used8, double *used4)
{
    const size_t n = b->n, D = b->D, check = n < 2000 ? n : 2000, M8 = (size_t)b->c8->M, M4 = (size_t)pq_ncodes(b->c4);
    const size_t ds = b->c8->ds, K4 = (size_t)b->c4->K, Q = (size_t)pq_fs_mpad(pq_ncodes(b->c4)) * 16, Bc = b->B < 4 ? b->B : 4;
    /* ADC8 against the decoded latents' dot products: gamma_(ds+m) sum |q_j x^_j| */
    run_adc8(b);
    const double g = (double)(ds + M8) * ldexp(1.0, -24) / (1 - (double)(ds + M8) * ldexp(1.0, -24));
    float *xh = malloc(D * sizeof *xh), *ref = malloc(b->B * n * sizeof *ref);
    uint16_t *S = malloc(n * sizeof *S);
    if (!xh || !ref || !S) tl_die("out of memory");
    *used8 = *used4 = 0;
    for (size_t c = 0; c < check; c++) {
        const size_t it = c * (n / check);
        pq_decode(b->c8, b->codes8 + it * M8, 1, xh);
        for (size_t q = 0; q < b->B; q++) {
            double dot = 0, abs = 0;
            for (size_t j = 0; j < D; j++) dot += (double)b->u[q * D + j] * xh[j], abs += fabs((double)b->u[q * D + j] * xh[j]);
            *used8 = fmax(*used8, fabs(b->s8[q * n + it] - dot) / (g * abs));
        }
    }
    /* FS4: every path the same bits */
    int same = 1;
    pq_fs_isa_force(PQ_FS_SCALAR);
    run_fs4(b);
    memcpy(ref, b->s4, b->B * n * sizeof *ref);
    for (int isa = 1; isa < PQ_FS_AUTO; isa++) {
        if (pq_fs_isa_force((pq_fs_isa)isa)) continue;
        run_fs4(b);
        same &= !memcmp(ref, b->s4, b->B * n * sizeof *ref);
    }
    pq_fs_isa_force(PQ_FS_AUTO);
    /* FS4 against the float ADC over the same codes: pq.h's bound + gamma_M sum |lut| */
    const double u = ldexp(1.0, -24), gM = (double)M4 * u / (1 - (double)M4 * u);
    for (size_t q = 0; q < Bc; q++) {
        const float *l = b->lut4 + q * M4 * K4;
        const pq_fs_scale sc = b->qsc[q];
        pq_fs_sums(b->fs, b->qlut + q * Q, S);
        double babs = 0;
        for (size_t m = 0; m < M4; m++) {
            float lo = l[m * K4];
            for (size_t k = 1; k < K4; k++) lo = fminf(lo, l[m * K4 + k]);
            babs += fabs((double)lo);
        }
        for (size_t c = 0; c < check; c++) {
            const size_t it = c * (n / check);
            float s = 0.0f;
            double sa = 0;
            for (size_t m = 0; m < M4; m++) s += l[m * K4 + codes4[it * M4 + m]], sa += fabs(l[m * K4 + codes4[it * M4 + m]]);
            const double bnd = (double)M4 * sc.delta / 2 * (1 + ldexp(1.0, -40)) + 3 * u * (fabs((double)sc.base) + (double)sc.delta * S[it]) +
                               (double)M4 * ldexp(1.0, -53) * babs + gM * sa;
            *used4 = fmax(*used4, fabs((double)b->s4[q * n + it] - s) / bnd);
        }
    }
    TL_FREE(xh, ref, S);
    return same ? fmax(*used8, *used4) : -1.0;
}

int main(int argc, char **argv)
{
    const size_t n = argc > 1 ? (size_t)atoll(argv[1]) : 1000000, D = argc > 2 ? (size_t)atoll(argv[2]) : 64;
    const size_t B = argc > 3 ? (size_t)atoll(argv[3]) : 1, U = argc > 5 ? (size_t)atoll(argv[5]) : 100;
    const double noise = argc > 6 ? atof(argv[6]) : 0.5;
    const int L4 = argc > 7 ? atoi(argv[7]) : 1; /* FS4's residual stages: pq.m d / (2 L4), the same 4-bit columns */
    int reps = argc > 4 ? atoi(argv[4]) : 7;
    if (reps > MAXREP) reps = MAXREP;
    if (reps < 1 || !n || !B || D % 4 || L4 < 1 || (D / 2) % (size_t)L4)
        tl_die("usage: bench_pq [n_items] [d (a multiple of 4)] [batch] [reps] [recall_users] [noise] [stages4 (dividing d / 2)]");
    openblas_set_num_threads(1);
    omp_set_num_threads(1);
    double t0 = dm_wtime(), rel8, rel4;
    dm_rng r;
    dm_rng_seed(&r, 1);
    float *ctr = tl_randn_new(&r, NCLUSTER * D, 1.0), *e = clustered(&r, ctr, n, D, noise), *u = clustered(&r, ctr, B + U, D, noise);
    pq_codebook c8, c4;
    uint8_t *codes8 = quantise(&c8, e, n, D, (int)(D / 4), 1, 256, &rel8),
            *codes4 = quantise(&c4, e, n, D, (int)(D / 2) / L4, L4, 16, &rel4);
    pq_fs_codes fs;
    if (pq_fs_pack(&fs, codes4, n, pq_ncodes(&c4))) tl_die("pq_fs_pack");
    const double setup = dm_wtime() - t0;
    bench b = {n, D, B, e, u, &c8, &c4, codes8, &fs, malloc(B * n * sizeof(float)), malloc(B * n * sizeof(float)), malloc(B * n * sizeof(float)),
               malloc(B * (size_t)c8.M * 256 * sizeof(float)), malloc(B * (size_t)pq_ncodes(&c4) * 16 * sizeof(float)),
               malloc(B * (size_t)pq_fs_mpad(pq_ncodes(&c4)) * 16), malloc(B * sizeof(pq_fs_scale)), calloc(n, 1), malloc(1000 * sizeof(int32_t))};
    if (!b.se || !b.s8 || !b.s4 || !b.lut8 || !b.lut4 || !b.qlut || !b.qsc || !b.mark || !b.top) tl_die("out of memory");
    static double t[NT][MAXREP];
    timings(&b, reps, t);
    double used8, used4, rec[3][3];
    const double worst = verdict(&b, codes4, &used8, &used4);
    recall(&b, u + B * D, U, codes4, rec);
    double med[NT];
    for (int k = 0; k < NT; k++) med[k] = k < 6 || k == T_FIXED || pq_fs_isa_supported((pq_fs_isa)(k - 6)) ? tl_median(t[k], reps) : NAN;
    const int ok = worst >= 0 && worst <= 1.0;
    printf("n=%zu d=%zu batch=%zu reps=%d m8=%d k8=256 m4=%d stages4=%d k4=16 rel_err8=%.4f rel_err4=%.4f setup_s=%.1f exact_ms=%.3f "
           "adc8_ms=%.3f adc8_rr_ms=%.3f fs4_ms=%.3f fs4_rr_ms=%.3f fs4_rr1000_ms=%.3f speedup_adc8=%.2f speedup_adc8_rr=%.2f "
           "speedup_fs4=%.2f speedup_fs4_rr=%.2f speedup_fs4_rr1000=%.2f isa=%s",
           n, D, B, reps, c8.M, c4.M, c4.L, rel8, rel4, setup, 1e3 * med[0], 1e3 * med[1], 1e3 * med[2], 1e3 * med[3], 1e3 * med[4], 1e3 * med[5],
           med[0] / med[1], med[0] / med[2], med[0] / med[3], med[0] / med[4], med[0] / med[5], pq_fs_isa_name(pq_fs_isa_current()));
    for (int isa = 0; isa < PQ_FS_AUTO; isa++) printf(" fs4_%s_ms=%.3f", pq_fs_isa_name((pq_fs_isa)isa), 1e3 * med[6 + isa]);
    printf(" exact_fixed_ms=%.3f speedup_fs4_fixed=%.2f speedup_fs4_rr_fixed=%.2f", 1e3 * med[T_FIXED], med[T_FIXED] / med[3], med[T_FIXED] / med[4]);
    printf(" recall_users=%zu noise=%.3g", U, noise);
    static const char *const names[3] = {"adc8", "fs4", "adc4"};
    for (int k = 0; k < 3; k++)
        printf(" recall_%s=%.4f recall_%s_rr100=%.4f recall_%s_rr1000=%.4f", names[k], rec[k][0], names[k], rec[k][1], names[k], rec[k][2]);
    printf(" bytes_floats=%zu bytes_codes8=%zu bytes_codes4=%zu bound_used_adc8=%.3f bound_used_fs4=%.3f paths_same=%d verdict=%s\n",
           n * D * sizeof(float), n * (size_t)c8.M, fs.nb * (size_t)fs.Mp * 16, used8, used4, worst >= 0, ok ? "PASSED" : "FAILED");
    TL_FREE(ctr, e, u, codes8, codes4, b.se, b.s8, b.s4, b.lut8, b.lut4, b.qlut, b.qsc, b.mark, b.top);
    pq_fs_free(&fs);
    pq_free(&c8);
    pq_free(&c4);
    return ok ? 0 : 1;
}
