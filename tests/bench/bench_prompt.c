/* bench_prompt.c: what prefix caching buys the LLM recommender's scoring (tests/bench/bench_prompt.sh).
 *
 *   bench_prompt LMDIR THREADS P NCAND CLEN NSOFT REPS
 *
 * One user's scoring as pm_score_user does it (src/prompt/llmrec.c): a prompt of P positions (the
 * first NSOFT soft user tokens, then token ids) and NCAND candidates of CLEN title tokens, each
 * followed by its soft item token scored through the tied head as one more vocabulary entry.
 *   cached     gpt2_cache_append of the prompt once ("prefix"), then gpt2_cache_score_soft of every
 *              candidate on its KV cache ("candidates")
 *   recompute  one gpt2_forward per candidate over prompt + candidate (B = 1, T = P + CLEN), logits
 *              only at the candidate's rows (GPT2_TARGET_ROWS): the prompt is recomputed every time
 *   batched    one gpt2_forward over all candidates at once (B = NCAND), for information
 * Both paths compute the same log-likelihoods (checked: max_diff). Token ids and soft vectors are
 * drawn from a fixed seed. One warm-up round, then REPS rounds; prints medians (ms) as key=value.
 */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/core/timer.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/gpt2_ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(void)
{
    dm_error_print("bench_prompt");
    exit(1);
}

/* log-likelihood of candidate c's title rows and soft token from a TARGET_ROWS forward whose batch
 * row b holds it (rows ordered by position) */
static void read_scores(const gpt2_model *m, int b, int T, int P, int clen, const float *e, double *ll, double *lls)
{
    const int V = m->cfg.vocab_size, C = m->cfg.channels;
    double a = 0;
    *lls = 0;
    for (int k = 0; k < m->n_rows; k++) {
        int i = m->rows[k], bb = i / T, pos = i % T;
        if (bb != b) continue;
        const float *r = m->acts.logits + (size_t)k * V;
        if (pos < P - 1 + clen) a += r[m->targets[i]] - m->acts.lse[k];
        else {
            const float *h = m->acts.lnf + (size_t)i * C;
            double s = 0;
            for (int q = 0; q < C; q++) s += (double)h[q] * e[q];
            double lv = m->acts.lse[k], mx = lv > s ? lv : s;
            *lls = s - (mx + log(exp(lv - mx) + exp(s - mx)));
        }
    }
    *ll = a;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: bench_prompt LMDIR THREADS P NCAND CLEN NSOFT REPS\n");
        return 2;
    }
    const char *dir = argv[1];
    int th = atoi(argv[2]), P = atoi(argv[3]), nc = atoi(argv[4]), cl = atoi(argv[5]), ns = atoi(argv[6]), reps = atoi(argv[7]);
    if (reps < 1 || reps > 1000 || nc < 1 || nc > 1024 || cl < 1 || ns < 0 || ns > P) return 2;
    gpt2_set_threads(th);
    gpt2_model m;
    if (gpt2_load(&m, dir)) die();
    const int V = m.cfg.vocab_size, C = m.cfg.channels, T = P + cl;
    if (T > m.cfg.max_seq_len) {
        fprintf(stderr, "bench_prompt: %d positions exceed the model's context %d\n", T, m.cfg.max_seq_len);
        return 1;
    }
    dm_rng g;
    dm_rng_seed(&g, 77);
    int *pre = malloc(sizeof(int) * (size_t)P), *ct = malloc(sizeof(int) * (size_t)nc * cl);
    int *in = malloc(sizeof(int) * (size_t)nc * T), *tg = malloc(sizeof(int) * (size_t)nc * T);
    float *soft = malloc(sizeof(float) * (size_t)(ns + 1) * C), *esoft = malloc(sizeof(float) * (size_t)nc * C);
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(nc + 1));
    double *ll = malloc(sizeof(double) * nc), *lls = malloc(sizeof(double) * nc), *ll2 = malloc(sizeof(double) * nc),
           *lls2 = malloc(sizeof(double) * nc);
    double *tp = malloc(sizeof(double) * reps), *tc = malloc(sizeof(double) * reps), *tr = malloc(sizeof(double) * reps),
           *tb = malloc(sizeof(double) * reps);
    if (!pre || !ct || !in || !tg || !soft || !esoft || !off || !ll || !lls || !ll2 || !lls2 || !tp || !tc || !tr || !tb) {
        fprintf(stderr, "bench_prompt: out of memory\n");
        return 1;
    }
    for (int i = 0; i < P; i++) pre[i] = i < ns ? GPT2_SOFT(i) : (int)dm_rng_below(&g, (uint64_t)V);
    for (int i = 0; i < nc * cl; i++) ct[i] = (int)dm_rng_below(&g, (uint64_t)V);
    for (int i = 0; i < (ns + 1) * C; i++) soft[i] = 0.1f * (float)dm_rng_normal(&g);
    for (int i = 0; i < nc * C; i++) esoft[i] = 0.1f * (float)dm_rng_normal(&g);
    for (int i = 0; i <= nc; i++) off[i] = (int64_t)i * cl;
    /* the recomputed sequences: prompt + candidate; targets at the candidate's rows and, after its last
       title token, a placeholder row whose hidden state and log-sum-exp give the soft token's score */
    for (int c = 0; c < nc; c++) {
        int *x = in + (size_t)c * T, *y = tg + (size_t)c * T;
        memcpy(x, pre, sizeof(int) * (size_t)P);
        memcpy(x + P, ct + (size_t)c * cl, sizeof(int) * (size_t)cl);
        for (int t = 0; t < T; t++) y[t] = -1;
        for (int j = 0; j < cl; j++) y[P - 1 + j] = ct[(size_t)c * cl + j];
        y[P - 1 + cl] = 0;
    }
    gpt2_cache cache;
    if (gpt2_cache_init(&cache, &m, T, 512)) die();
    if (gpt2_reserve(&m, nc, T, GPT2_TARGET_ROWS)) die();
    double maxdiff = 0;
    for (int r = -1; r < reps; r++) { /* r = -1 warms up */
        double t0 = dm_wtime();
        if (gpt2_cache_truncate(&cache, 0) || gpt2_cache_append(&cache, pre, soft, ns, P)) die();
        double t1 = dm_wtime();
        if (gpt2_cache_score_soft(&cache, ct, off, nc, esoft, ll, lls)) die();
        double t2 = dm_wtime();
        for (int c = 0; c < nc; c++) {
            if (gpt2_forward(&m, in + (size_t)c * T, soft, ns, tg + (size_t)c * T, 1, T, 1.0f, GPT2_TARGET_ROWS)) die();
            read_scores(&m, 0, T, P, cl, esoft + (size_t)c * C, &ll2[c], &lls2[c]);
        }
        double t3 = dm_wtime();
        if (gpt2_forward(&m, in, soft, ns, tg, nc, T, 1.0f, GPT2_TARGET_ROWS)) die();
        double t4 = dm_wtime();
        for (int c = 0; c < nc; c++) {
            double d1 = fabs(ll[c] - ll2[c]), d2 = fabs(lls[c] - lls2[c]);
            if (d1 > maxdiff) maxdiff = d1;
            if (d2 > maxdiff) maxdiff = d2;
            double b1 = 0, b2 = 0;
            read_scores(&m, c, T, P, cl, esoft + (size_t)c * C, &b1, &b2);
            if (fabs(b1 - ll[c]) > maxdiff) maxdiff = fabs(b1 - ll[c]);
            if (fabs(b2 - lls[c]) > maxdiff) maxdiff = fabs(b2 - lls[c]);
        }
        if (r >= 0) {
            tp[r] = t1 - t0;
            tc[r] = t2 - t1;
            tr[r] = t3 - t2;
            tb[r] = t4 - t3;
        }
    }
    double mp = median(tp, reps), mc = median(tc, reps), mr = median(tr, reps), mb = median(tb, reps);
    printf("layers=%d width=%d vocab=%d P=%d ncand=%d clen=%d nsoft=%d threads=%d prefix_ms=%.3f cands_ms=%.3f cached_ms=%.3f "
           "recompute_ms=%.3f batched_ms=%.3f prefix_share=%.4f speedup=%.3f speedup_batched=%.3f max_diff=%.3g\n",
           m.cfg.num_layers, C, V, P, nc, cl, ns, th, 1e3 * mp, 1e3 * mc, 1e3 * (mp + mc), 1e3 * mr, 1e3 * mb, mp / (mp + mc),
           mr / (mp + mc), mb / (mp + mc), maxdiff);
    gpt2_cache_free(&cache);
    gpt2_free(&m);
    return 0;
}
