/* lm_attention.c: see lm_attention.h.
 *
 * The loop bodies are written once, as always-inline functions over one row or one (sequence,
 * key/value head) pair, and instantiated twice: as OpenMP loops, and for the bf16 path, which runs
 * only where AVX-512 is present, in functions compiled for AVX-512 that run on the bf16 pool
 * (nn_bf16_for; at most LMA_QBLOCK ranges, the rows of the scratch the models reserve). */
#include "lm_attention.h"

#include "../nn/gemm.h"
#include "../nn/gemm_bf16.h"

#include <omp.h>
#include <stddef.h>

typedef struct { /* the arguments of the wide loops */
    float *s, *dqkv, *scratch;
    const float *dout, *att, *qkv;
    int ld, valid0, T, NH, NKV, hd;
} job;

LMA_AVX512 static void softmax_rows_wide(void *p, long i0, long i1, int t)
{
    const job *j = p;
    for (long i = i0; i < i1; i++) lma_softmax_masked_row(j->s + (size_t)i * j->ld, j->valid0 + (int)i, j->ld);
}

/* Softmax of rows [0, n) of s (leading dimension ld); row i has `valid0 + i` live entries, the rest
 * is set to 0 (causal mask). */
static void softmax_causal_rows(float *s, int ld, int n, int valid0, int wide)
{
    if (wide) {
        job j = {.s = s, .ld = ld, .valid0 = valid0};
        nn_bf16_for(n, (size_t)n * ld, softmax_rows_wide, &j);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *r = s + (size_t)i * ld;
        int nv = valid0 + i;
        nn_softmax(r, nv);
        for (int j = nv; j < ld; j++) r[j] = 0.0f;
    }
}

void lma_forward(float *out, float *att, const float *qkv, float *scratch, int B, int T, int NH, int NKV, int hd,
                 int wide)
{
    int QD = NH * hd, KD = NKV * hd, S = QD + 2 * KD, grp = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    /* a block of LMA_QBLOCK queries needs keys [0, t1) only: the GEMMs skip the masked upper blocks */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t0 = 0; t0 < T; t0 += LMA_QBLOCK) {
                int t1 = t0 + LMA_QBLOCK < T ? t0 + LMA_QBLOCK : T, M = t1 - t0, kh = h / grp;
                const float *q = qkv + ((size_t)b * T + t0) * S + (size_t)h * hd;
                const float *k = qkv + (size_t)b * T * S + QD + (size_t)kh * hd;
                const float *v = qkv + (size_t)b * T * S + QD + KD + (size_t)kh * hd;
                float *s;
                int ld;
                if (att) {
                    s = att + (((size_t)b * NH + h) * T + t0) * T;
                    ld = T;
                } else {
                    s = scratch;
                    ld = t1;
                }
                nn_sgemm(CblasNoTrans, CblasTrans, M, t1, hd, scale, q, S, k, S, 0.0f, s, ld);
                softmax_causal_rows(s, ld, M, t0 + 1, wide);
                nn_sgemm(CblasNoTrans, CblasNoTrans, M, hd, t1, 1.0f, s, ld, v, S, 0.0f,
                         out + ((size_t)b * T + t0) * QD + (size_t)h * hd, QD);
            }
}

/* the backward of sequence b, key/value head kh and its group of query heads: their slices of dqkv
 * += ...; datt (T) scratch */
static inline __attribute__((always_inline)) void backward_pair(float *dqkv, const float *dout, const float *att,
                                                                const float *qkv, float *datt, int b, int kh, int T,
                                                                int NH, int NKV, int hd)
{
    int QD = NH * hd, KD = NKV * hd, S = QD + 2 * KD, grp = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = kh * grp; h < (kh + 1) * grp; h++)
        for (int t = 0; t < T; t++) {
            const float *a = att + (((size_t)b * NH + h) * T + t) * T;
            const float *g = dout + ((size_t)b * T + t) * QD + (size_t)h * hd;
            const float *q = qkv + ((size_t)b * T + t) * S + (size_t)h * hd;
            float *dq = dqkv + ((size_t)b * T + t) * S + (size_t)h * hd;
            float dot = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *v = qkv + ((size_t)b * T + t2) * S + QD + KD + (size_t)kh * hd;
                float *dv = dqkv + ((size_t)b * T + t2) * S + QD + KD + (size_t)kh * hd;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int i = 0; i < hd; i++) {
                    s += g[i] * v[i];
                    dv[i] += a[t2] * g[i];
                }
                datt[t2] = s;
                dot += a[t2] * s;
            }
            for (int t2 = 0; t2 <= t; t2++) {
                float dp = a[t2] * (datt[t2] - dot) * scale; /* softmax backward, then the scale */
                const float *k = qkv + ((size_t)b * T + t2) * S + QD + (size_t)kh * hd;
                float *dk = dqkv + ((size_t)b * T + t2) * S + QD + (size_t)kh * hd;
#pragma omp simd /* dq (row t's queries) and dk (row t2's keys) never overlap */
                for (int i = 0; i < hd; i++) {
                    dq[i] += dp * k[i];
                    dk[i] += dp * q[i];
                }
            }
        }
}

LMA_AVX512 static void backward_wide(void *p, long i0, long i1, int t)
{
    const job *j = p;
    for (long i = i0; i < i1; i++)
        backward_pair(j->dqkv, j->dout, j->att, j->qkv, j->scratch + (size_t)t * j->T, (int)(i / j->NKV),
                      (int)(i % j->NKV), j->T, j->NH, j->NKV, j->hd);
}

void lma_backward(float *dqkv, const float *dout, const float *att, const float *qkv, float *scratch, int B, int T,
                  int NH, int NKV, int hd, int wide)
{
    if (wide) {
        job j = {.dqkv = dqkv, .scratch = scratch, .dout = dout, .att = att, .qkv = qkv, .T = T, .NH = NH, .NKV = NKV,
                 .hd = hd};
        nn_bf16_for((long)B * NKV, (size_t)B * T * T * NH * hd, backward_wide, &j);
        return;
    }
    /* parallel over (b, key/value head): the query heads of a group share dk and dv, so one task
     * owns them all */
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < NKV; kh++)
            backward_pair(dqkv, dout, att, qkv, scratch + (size_t)omp_get_thread_num() * T, b, kh, T, NH, NKV, hd);
}
