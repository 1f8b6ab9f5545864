/* xent.c: see xent.h. */
#include "xent.h"

#include "gemm.h"
#include "linear.h" /* NN_PAR_MIN */
#include "softmax.h"

#include <string.h>

double nn_xent_rows(float *dh, float *dw, float *db, const float *h, const int32_t *tgt, const float *w, const float *b, int R, int V, int C,
                    float scale, float *logits, size_t chunk, float *rowloss)
{
    size_t blk = chunk / (size_t)V;
    if (blk < 1) blk = 1;
    if (blk > (size_t)R) blk = (size_t)R;
    double loss = 0.0;
    for (int r0 = 0; r0 < R; r0 += (int)blk) {
        int nr = R - r0 < (int)blk ? R - r0 : (int)blk;
        const float *hb = h + (size_t)r0 * C;
        if (b)
            for (int r = 0; r < nr; r++) memcpy(logits + (size_t)r * V, b, (size_t)V * sizeof(float));
        nn_sgemm(CblasNoTrans, CblasTrans, nr, V, C, 1.0f, hb, C, w, C, b ? 1.0f : 0.0f, logits, V);
#pragma omp parallel for schedule(static) if ((size_t)nr * V > NN_PAR_MIN)
        for (int r = 0; r < nr; r++) rowloss[r0 + r] = nn_softmax_xent(logits + (size_t)r * V, V, tgt[r0 + r], scale);
        if (!dh) continue;
        nn_sgemm(CblasNoTrans, CblasNoTrans, nr, C, V, 1.0f, logits, V, w, C, 0.0f, dh + (size_t)r0 * C, C);
        nn_sgemm(CblasTrans, CblasNoTrans, V, C, nr, 1.0f, logits, V, hb, C, 1.0f, dw, C);
        if (db)
            for (int r = 0; r < nr; r++) {
                const float *g = logits + (size_t)r * V;
#pragma omp simd
                for (int i = 0; i < V; i++) db[i] += g[i];
            }
    }
    for (int r = 0; r < R; r++) loss += rowloss[r];
    return loss;
}
