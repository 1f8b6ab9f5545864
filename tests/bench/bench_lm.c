/* bench_lm.c: the C side of the frozen-LM benchmark (tests/bench/bench_lm.sh).
 *
 *   bench_lm gen DIR [layers heads width context vocab]   random GPT-2 (default: 124M, GPT-2 small)
 *   bench_lm sgemm THREADS N REPS                         sgemm peak: median GFLOP/s of N^3 products
 *   bench_lm forward DIR THREADS B T REPS [PREC]          logits of a (B, T) batch: median tokens/s
 *   bench_lm score DIR THREADS P NCAND CLEN REPS [PREC]   prefix of P tokens computed once, then NCAND
 *                                                         candidates of CLEN tokens scored on its cache
 *   bench_lm prompt DIR THREADS B T NSOFT REPS [PREC]     a prompt-training step: NSOFT soft vectors then
 *                                                         text per sequence, loss on the text, gradient
 *                                                         to the soft vectors through the frozen weights
 * PREC: f32 (default) or bf16 (gpt2_set_precision; the output says which precision ran).
 * Inputs are drawn from a fixed seed so the PyTorch side (bench_lm.py) uses the same ones. Each
 * measuring mode prints one line of key=value pairs, including peak RSS and the weights' bytes.
 */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/timer.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/gpt2_ckpt.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* the same token stream as bench_lm.py: (i * 7919 + 13) % V */
static void tokens(int *t, size_t n, int V, size_t salt)
{
    for (size_t i = 0; i < n; i++) t[i] = (int)(((i + salt) * 7919 + 13) % (size_t)V);
}

static void die(void)
{
    dm_error_print("bench_lm");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lm gen|sgemm|forward|score ...\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "gen")) {
        gpt2_config c = gpt2_config_make(12, 12, 768, 1024, 50257);
        if (argc >= 8) c = gpt2_config_make(atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
        gpt2_model m;
        gpt2_set_threads(2);
        if (gpt2_init(&m, &c)) die();
        gpt2_init_random(&m, 1234);
        if (gpt2_save(&m, argv[2])) die();
        printf("params=%zu\n", m.num_params);
        gpt2_free(&m);
        return 0;
    }
    if (!strcmp(mode, "sgemm")) {
        int th = atoi(argv[2]), n = argc > 3 ? atoi(argv[3]) : 2048, reps = argc > 4 ? atoi(argv[4]) : 5;
        gpt2_set_threads(th);
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
        for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 1000);
        double t[64];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t0 = dm_wtime();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            t[r] = 2.0 * n * n * (double)n / (dm_wtime() - t0) / 1e9;
        }
        printf("sgemm_gflops=%.1f n=%d threads=%d\n", median(t, reps), n, th);
        return 0;
    }
    if (argc < 4) return 2;
    const char *dir = argv[2];
    int th = atoi(argv[3]);
    gpt2_set_threads(th);
    gpt2_model m;
    double t0 = dm_wtime();
    if (gpt2_load(&m, dir)) die();
    double t_load = dm_wtime() - t0;
    int nfix = !strcmp(mode, "forward") ? 7 : 8; /* arguments before the optional precision */
    const char *prec = argc > nfix ? argv[nfix] : "f32";
    if (gpt2_precision_parse(prec) < 0) {
        fprintf(stderr, "bench_lm: unknown precision '%s' (f32 or bf16)\n", prec);
        return 2;
    }
    t0 = dm_wtime();
    if (gpt2_set_precision(&m, gpt2_precision_parse(prec))) die();
    double t_conv = dm_wtime() - t0;
    size_t wbytes = m.num_params * sizeof(float);
    int V = m.cfg.vocab_size;
    if (!strcmp(mode, "forward") && argc >= 7) {
        int B = atoi(argv[4]), T = atoi(argv[5]), reps = atoi(argv[6]);
        int *in = malloc(sizeof(int) * B * T);
        tokens(in, (size_t)B * T, V, 0);
        double t[64];
        if (gpt2_forward(&m, in, NULL, 0, NULL, B, T, 1, 0)) die(); /* warm-up, allocates */
        for (int r = 0; r < reps; r++) {
            t0 = dm_wtime();
            if (gpt2_forward(&m, in, NULL, 0, NULL, B, T, 1, 0)) die();
            t[r] = dm_wtime() - t0;
        }
        double s = median(t, reps);
        double flops = (double)gpt2_num_flops_per_token(&m.cfg, T) * B * T;
        /* checksum so both sides can be seen to compute the same thing */
        double cs = 0, ab = 0;
        for (int j = 0; j < V; j++) {
            cs += m.acts.logits[(size_t)(B * T - 1) * V + j];
            ab += fabs(m.acts.logits[(size_t)(B * T - 1) * V + j]);
        }
        printf("tokens_per_s=%.1f seconds=%.4f gflops=%.1f load_s=%.2f checksum=%.4f abssum=%.4f peak_rss=%zu weights=%zu "
               "precision=%s convert_s=%.2f bf16_bytes=%zu\n",
               B * T / s, s, flops / s / 1e9, t_load, cs, ab, dm_peak_rss(), wbytes, gpt2_precision_name(m.precision),
               t_conv, gpt2_bf16_bytes(&m));
    } else if (!strcmp(mode, "score") && argc >= 8) {
        int P = atoi(argv[4]), nc = atoi(argv[5]), cl = atoi(argv[6]), reps = atoi(argv[7]);
        int *pre = malloc(sizeof(int) * P), *ct = malloc(sizeof(int) * nc * cl);
        int64_t *off = malloc(sizeof(int64_t) * (nc + 1));
        double *ll = malloc(sizeof(double) * nc), t[64];
        tokens(pre, (size_t)P, V, 0);
        tokens(ct, (size_t)nc * cl, V, 100000);
        for (int i = 0; i <= nc; i++) off[i] = (int64_t)i * cl;
        gpt2_cache c;
        if (gpt2_cache_init(&c, &m, P + cl, 512)) die();
        for (int r = 0; r <= reps; r++) { /* r = 0 warms up */
            t0 = dm_wtime();
            gpt2_cache_truncate(&c, 0);
            if (gpt2_cache_append(&c, pre, NULL, 0, P)) die();
            if (gpt2_cache_score(&c, ct, off, nc, ll)) die();
            if (r) t[r - 1] = dm_wtime() - t0;
        }
        double s = median(t, reps), sum = 0;
        for (int i = 0; i < nc; i++) sum += ll[i];
        /* useful work: the prefix and every candidate position but the last through the blocks, and
         * one logits row per scored token (the first token of every candidate reuses the prefix's) */
        const gpt2_config *g = &m.cfg;
        double head = 2.0 * g->channels * (double)V, per = (double)gpt2_num_flops_per_token(g, P) - head;
        double rows = (double)nc * (cl - 1), flops = (P + rows) * per + (1 + rows) * head;
        printf("cands_per_s=%.1f seconds=%.4f gflops=%.1f ll_sum=%.4f ll0=%.5f peak_rss=%zu weights=%zu load_s=%.2f "
               "precision=%s convert_s=%.2f bf16_bytes=%zu\n",
               nc / s, s, flops / s / 1e9, sum, ll[0], dm_peak_rss(), wbytes, t_load, gpt2_precision_name(m.precision),
               t_conv, gpt2_bf16_bytes(&m));
        gpt2_cache_free(&c);
    } else if (!strcmp(mode, "prompt") && argc >= 8) {
        int B = atoi(argv[4]), T = atoi(argv[5]), ns = atoi(argv[6]), reps = atoi(argv[7]), C = m.cfg.channels;
        int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
        float *soft = malloc(sizeof(float) * B * ns * C), *dsoft = malloc(sizeof(float) * B * ns * C);
        tokens(in, (size_t)B * T, V, 0);
        int nt = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)b * T + t;
                if (t < ns) in[i] = GPT2_SOFT(b * ns + t);
                tg[i] = t >= ns ? (int)((i * 7919 + 29) % (size_t)V) : -1;
                nt += tg[i] >= 0;
            }
        for (size_t i = 0; i < (size_t)B * ns * C; i++) soft[i] = 0.05f * sinf(0.1f * (float)i);
        double t[64], tf[64], loss = 0;
        for (int r = 0; r <= reps; r++) {
            memset(dsoft, 0, sizeof(float) * B * ns * C);
            t0 = dm_wtime();
            if (gpt2_forward(&m, in, soft, B * ns, tg, B, T, (float)nt, GPT2_KEEP | GPT2_TARGET_ROWS)) die();
            double t1 = dm_wtime();
            loss = m.loss;
            if (gpt2_backward(&m, NULL, NULL, dsoft, 0)) die();
            if (r) {
                t[r - 1] = dm_wtime() - t0;
                tf[r - 1] = t1 - t0;
            }
        }
        double sf = median(tf, reps);
        double s = median(t, reps), cs = 0;
        for (size_t i = 0; i < (size_t)B * ns * C; i++) cs += fabs(dsoft[i]);
        /* GEMM work: the forward through the blocks and the head's target rows, and the same again
         * for the input gradients (no weight gradients); attention's own products are left out */
        double head = 2.0 * C * (double)V, blocks = (double)gpt2_num_flops_per_token(&m.cfg, T) - head;
        double flops = 2.0 * ((double)B * T * blocks + (double)nt * head);
        printf("tokens_per_s=%.1f seconds=%.4f forward_s=%.4f gflops=%.1f loss=%.6f checksum=%.6e peak_rss=%zu weights=%zu "
               "precision=%s convert_s=%.2f bf16_bytes=%zu\n",
               B * T / s, s, sf, flops / s / 1e9, loss, cs, dm_peak_rss(), wbytes, gpt2_precision_name(m.precision), t_conv,
               gpt2_bf16_bytes(&m));
    } else {
        fprintf(stderr, "bench_lm: bad arguments\n");
        return 2;
    }
    gpt2_free(&m);
    return 0;
}
