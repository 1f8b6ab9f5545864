/* explain_enc_naive.c: the naive twins of the evidence encoder kernels: the equations of
 * explain_enc.h written out one element, slot and coordinate at a time (double accumulators, no
 * BLAS, no OpenMP), with the MLP's naive twin. Same activations as the fast kernels. */
#include "explain_enc.h"

#include "../core/err.h"
#include "explain_enc_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* position of attention entry (set b, slot s, element j of the set, j = -1 the null element) */
static size_t att_at(const explain_enc_acts *a, int E, int b, int s, int j)
{
    int64_t j0 = a->off[b];
    int n = (int)(a->off[b + 1] - j0);
    return (size_t)E * (size_t)(j0 + b) + (size_t)s * (size_t)(n + 1) + (size_t)(j + 1);
}

int explain_enc_forward_naive(const explain_enc *e, explain_enc_acts *a, const int64_t *off, int B,
                              const int8_t *kind, const float *x, const float *w, float *y)
{
    DM_CALL(explain_enc_stash(e, a, off, B, kind, x, w));
    const int D = e->cfg.D, NI = e->cfg.din, E = e->cfg.E;
    const double rs = 1.0 / sqrt((double)D);
    for (int j = 0; j < a->N; j++) {
        const float *W = e->win + (size_t)a->kind[j] * D * NI, *bb = e->bin + (size_t)a->kind[j] * D;
        for (int o = 0; o < D; o++) {
            double acc = bb[o];
            for (int c = 0; c < NI; c++) acc += (double)W[(size_t)o * NI + c] * a->x[(size_t)j * NI + c];
            a->u[(size_t)j * D + o] = (float)acc;
        }
    }
    for (int b = 0; b < B; b++) {
        int64_t j0 = off[b];
        int n = (int)(off[b + 1] - j0);
        for (int s = 0; s < E; s++) {
            /* raw scores into att, then the softmax in place */
            double mx = -INFINITY, z = 0;
            for (int j = -1; j < n; j++) {
                const float *k = j < 0 ? e->k0 : a->u + (size_t)(j0 + j) * D;
                double acc = 0;
                for (int c = 0; c < D; c++) acc += (double)e->q[(size_t)s * D + c] * k[c];
                a->att[att_at(a, E, b, s, j)] = (float)(acc * rs);
                if (acc * rs > mx) mx = acc * rs;
            }
            for (int j = -1; j < n; j++) z += exp((double)a->att[att_at(a, E, b, s, j)] - mx);
            for (int j = -1; j < n; j++)
                a->att[att_at(a, E, b, s, j)] = (float)(exp((double)a->att[att_at(a, E, b, s, j)] - mx) / z);
            for (int c = 0; c < D; c++) {
                double acc = (double)a->att[att_at(a, E, b, s, -1)] * e->v0[c];
                for (int j = 0; j < n; j++)
                    acc += (double)a->att[att_at(a, E, b, s, j)] * a->w[j0 + j] * a->u[(size_t)(j0 + j) * D + c];
                a->slot[((size_t)b * E + s) * D + c] = (float)acc;
            }
        }
    }
    if (B == 0) return DM_OK;
    DM_CALL(nn_mlp_forward_naive(&e->mlp, &a->mlp, a->slot, B * explain_enc_rows(&e->cfg), y));
    return DM_OK;
}

int explain_enc_backward_naive(const explain_enc *e, explain_enc_acts *a, const float *dy, float *dx, float *dw)
{
    const int D = e->cfg.D, NI = e->cfg.din, E = e->cfg.E, B = a->B;
    const double rs = 1.0 / sqrt((double)D);
    if (B == 0) return DM_OK;
    memset(a->dslot, 0, (size_t)B * E * D * sizeof *a->dslot);
    DM_CALL(nn_mlp_backward_naive(&e->mlp, &a->mlp, dy, a->dslot));
    memset(a->du, 0, (size_t)a->N * D * sizeof *a->du);
    if (dw) memset(dw, 0, (size_t)a->N * sizeof *dw);
    for (int b = 0; b < B; b++) {
        int64_t j0 = a->off[b];
        int n = (int)(a->off[b + 1] - j0);
        for (int s = 0; s < E; s++) {
            const float *dsl = a->dslot + ((size_t)b * E + s) * D;
            /* da_j = dslot . val_j with val_{-1} = v0, val_j = w_j u_j */
            /* da_j = dslot . val_j (val of the null = v0, val_j = w_j u_j), kept in ds until ds is known */
            double dot = 0;
            for (int j = -1; j < n; j++) {
                double acc = 0;
                for (int c = 0; c < D; c++) {
                    double val = j < 0 ? e->v0[c] : (double)a->w[j0 + j] * a->u[(size_t)(j0 + j) * D + c];
                    acc += (double)dsl[c] * val;
                }
                a->ds[att_at(a, E, b, s, j)] = (float)acc;
                dot += a->att[att_at(a, E, b, s, j)] * acc;
            }
            for (int j = -1; j < n; j++) {
                double aj = a->att[att_at(a, E, b, s, j)];
                double dsj = aj * ((double)a->ds[att_at(a, E, b, s, j)] - dot);
                a->ds[att_at(a, E, b, s, j)] = (float)dsj;
                /* ds_j -> q_e and the key; the value path -> v0 or (u_j, w_j) */
                const float *key = j < 0 ? e->k0 : a->u + (size_t)(j0 + j) * D;
                for (int c = 0; c < D; c++) e->gq[(size_t)s * D + c] += (float)(dsj * rs * key[c]);
                if (j < 0) {
                    for (int c = 0; c < D; c++) {
                        e->gk0[c] += (float)(dsj * rs * e->q[(size_t)s * D + c]);
                        e->gv0[c] += (float)(aj * dsl[c]);
                    }
                } else {
                    float *du = a->du + (size_t)(j0 + j) * D;
                    double g = 0;
                    for (int c = 0; c < D; c++) {
                        du[c] += (float)(dsj * rs * e->q[(size_t)s * D + c] + aj * a->w[j0 + j] * dsl[c]);
                        g += (double)dsl[c] * a->u[(size_t)(j0 + j) * D + c];
                    }
                    if (dw) dw[j0 + j] += (float)(aj * g);
                }
            }
        }
    }
    for (int j = 0; j < a->N; j++) {
        int k = a->kind[j];
        const float *du = a->du + (size_t)j * D;
        for (int o = 0; o < D; o++) {
            e->gbin[(size_t)k * D + o] += du[o];
            for (int c = 0; c < NI; c++) e->gwin[((size_t)k * D + o) * NI + c] += du[o] * a->x[(size_t)j * NI + c];
        }
        if (dx)
            for (int c = 0; c < NI; c++) {
                double acc = 0;
                for (int o = 0; o < D; o++) acc += (double)du[o] * e->win[((size_t)k * D + o) * NI + c];
                dx[(size_t)j * NI + c] = (float)acc;
            }
    }
    return DM_OK;
}
