/* linear.c: see linear.h. One forward and one backward serve both weight layouts: `io` = 0 for
 * W (OC, IC) (torch.nn.Linear), 1 for W (IC, OC) (GPT-2's Conv1D); the layout only changes which
 * operand sgemm transposes. */
#include "linear.h"

#include "gemm.h"

#include <cblas.h>
#include <string.h>

static void forward(float *out, int ldo, const float *inp, int ldi, const float *w, int io,
                    const float *b, int N, int IC, int OC)
{
    if (N <= 0) return;
    float beta = 0.0f;
    if (b || IC <= 0) {
        /* start from the bias and let sgemm add inp W^T to it */
#pragma omp parallel for schedule(static) if ((size_t)N * OC > NN_PAR_MIN)
        for (int r = 0; r < N; r++) {
            float *o = out + (size_t)r * ldo;
            if (b) memcpy(o, b, (size_t)OC * sizeof(float));
            else memset(o, 0, (size_t)OC * sizeof(float));
        }
        beta = 1.0f;
    }
    if (IC <= 0) return;
    if (io)
        nn_sgemm(CblasNoTrans, CblasNoTrans, N, OC, IC, 1.0f, inp, ldi, w, OC, beta, out, ldo);
    else
        nn_sgemm(CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, ldi, w, IC, beta, out, ldo);
}

/* db (OC) += sum over rows of dout: columns in blocks of 64 per task, rows in order inside */
static void bias_backward(float *db, const float *dout, int ldo, int N, int OC)
{
#pragma omp parallel for schedule(static) if ((size_t)N * OC > NN_PAR_MIN)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        int o1 = o0 + 64 < OC ? o0 + 64 : OC;
        for (int r = 0; r < N; r++) {
            const float *g = dout + (size_t)r * ldo;
            for (int o = o0; o < o1; o++) db[o] += g[o];
        }
    }
}

static void backward(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                     const float *inp, const float *w, int io, const float *ones, int N, int IC,
                     int OC)
{
    if (N <= 0) return;
    if (dinp && IC > 0) { /* dinp += dout W (linear) or dout W^T (matmul) */
        if (io)
            nn_sgemm(CblasNoTrans, CblasTrans, N, IC, OC, 1.0f, dout, ldo, w, OC, 1.0f, dinp, ldi);
        else
            nn_sgemm(CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, ldo, w, IC, 1.0f, dinp,
                     ldi);
    }
    if (dw && IC > 0) { /* dW += dout^T inp (OC, IC) or inp^T dout (IC, OC) */
        if (io)
            nn_sgemm(CblasTrans, CblasNoTrans, IC, OC, N, 1.0f, inp, ldi, dout, ldo, 1.0f, dw, OC);
        else
            nn_sgemm(CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, ldo, inp, ldi, 1.0f, dw, IC);
    }
    if (db) {
        if (ones) /* db += dout^T 1 */
            cblas_sgemv(CblasRowMajor, CblasTrans, N, OC, 1.0f, dout, ldo, ones, 1, 1.0f, db, 1);
        else
            bias_backward(db, dout, ldo, N, OC);
    }
}

/* naive twins: w[o][i] sits at w + o * wo + i * wi */

static void forward_naive(float *out, int ldo, const float *inp, int ldi, const float *w,
                          size_t wo, size_t wi, const float *b, int N, int IC, int OC)
{
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += (double)inp[(size_t)r * ldi + i] * w[o * wo + i * wi];
            out[(size_t)r * ldo + o] = (float)s;
        }
}

static void backward_naive(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                           const float *inp, const float *w, size_t wo, size_t wi, int N, int IC,
                           int OC)
{
    if (dinp)
        for (int r = 0; r < N; r++)
            for (int i = 0; i < IC; i++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)r * ldo + o] * w[o * wo + i * wi];
                dinp[(size_t)r * ldi + i] += (float)s;
            }
    if (dw)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++) {
                double s = 0.0;
                for (int r = 0; r < N; r++)
                    s += (double)dout[(size_t)r * ldo + o] * inp[(size_t)r * ldi + i];
                dw[o * wo + i * wi] += (float)s;
            }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int r = 0; r < N; r++) s += dout[(size_t)r * ldo + o];
            db[o] += (float)s;
        }
}

/* ---- the public functions, each followed by its naive twin ---------------------------------- */

void nn_linear_forward_ld(float *out, int ldo, const float *inp, int ldi, const float *w,
                          const float *b, int N, int IC, int OC)
{
    forward(out, ldo, inp, ldi, w, 0, b, N, IC, OC);
}

void nn_linear_forward_ld_naive(float *out, int ldo, const float *inp, int ldi, const float *w,
                                const float *b, int N, int IC, int OC)
{
    forward_naive(out, ldo, inp, ldi, w, (size_t)IC, 1, b, N, IC, OC);
}

void nn_linear_backward_ld(float *dinp, int ldi, float *dw, float *db, const float *dout, int ldo,
                           const float *inp, const float *w, const float *ones, int N, int IC,
                           int OC)
{
    backward(dinp, ldi, dw, db, dout, ldo, inp, w, 0, ones, N, IC, OC);
}

void nn_linear_backward_ld_naive(float *dinp, int ldi, float *dw, float *db, const float *dout,
                                 int ldo, const float *inp, const float *w, const float *ones, int N,
                                 int IC, int OC)
{
    (void)ones;
    backward_naive(dinp, ldi, dw, db, dout, ldo, inp, w, (size_t)IC, 1, N, IC, OC);
}

void nn_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC,
                       int OC)
{
    forward(out, OC, inp, IC, w, 1, b, N, IC, OC);
}

void nn_matmul_forward_naive(float *out, const float *inp, const float *w, const float *b, int N,
                             int IC, int OC)
{
    forward_naive(out, OC, inp, IC, w, 1, (size_t)OC, b, N, IC, OC);
}

void nn_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC)
{
    backward(dinp, IC, dw, db, dout, OC, inp, w, 1, NULL, N, IC, OC);
}

void nn_matmul_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, int N, int IC, int OC)
{
    backward_naive(dinp, IC, dw, db, dout, OC, inp, w, 1, (size_t)OC, N, IC, OC);
}
