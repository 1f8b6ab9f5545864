/* proj.c: see proj.h. */
#include "proj.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GELU_C 0.7978845608028654f /* sqrt(2 / pi) */

size_t proj_size(const proj_config *c)
{
    size_t H = (size_t)c->hidden, NI = (size_t)c->din, NO = (size_t)c->dout;
    return H * NI + H + H + H + NO * H + NO;
}

void proj_bind(proj *p, const proj_config *c, float *w, float *g)
{
    size_t H = (size_t)c->hidden, NI = (size_t)c->din, NO = (size_t)c->dout;
    p->cfg = *c;
    float **v[6] = {&p->w1, &p->b1, &p->lnw, &p->lnb, &p->w2, &p->b2};
    float **gv[6] = {&p->gw1, &p->gb1, &p->glnw, &p->glnb, &p->gw2, &p->gb2};
    size_t n[6] = {H * NI, H, H, H, NO * H, NO}, off = 0;
    for (int k = 0; k < 6; k++) {
        *v[k] = w + off;
        *gv[k] = g ? g + off : NULL;
        off += n[k];
    }
}

void proj_init(proj *p, uint64_t seed, float out_scale)
{
    size_t H = (size_t)p->cfg.hidden, NI = (size_t)p->cfg.din, NO = (size_t)p->cfg.dout;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0x9A0, 1));
    float a1 = 1.0f / sqrtf((float)NI), a2 = 1.0f / sqrtf((float)H);
    for (size_t k = 0; k < H * NI; k++) p->w1[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a1;
    for (size_t k = 0; k < H; k++) p->b1[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a1;
    for (size_t k = 0; k < H; k++) {
        p->lnw[k] = 1.0f;
        p->lnb[k] = 0.0f;
    }
    for (size_t k = 0; k < NO * H; k++) p->w2[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a2 * out_scale;
    for (size_t k = 0; k < NO; k++) p->b2[k] = (float)(2 * dm_rng_uniform(&r) - 1) * a2 * out_scale;
}

int proj_acts_init(proj_acts *a, const proj_config *c, int maxN)
{
    memset(a, 0, sizeof *a);
    size_t N = (size_t)(maxN > 0 ? maxN : 1), H = (size_t)c->hidden;
    a->maxN = (int)N;
    a->H = c->hidden;
    DM_ALLOC(a->x, N * (size_t)c->din);
    DM_ALLOC(a->pre, N * H);
    DM_ALLOC(a->mean, N);
    DM_ALLOC(a->rstd, N);
    DM_ALLOC(a->ln, N * H);
    DM_ALLOC(a->act, N * H);
    DM_ALLOC(a->dact, N * H);
    DM_ALLOC(a->dln, N * H);
    return DM_OK;
}

void proj_acts_free(proj_acts *a)
{
    free(a->x);
    free(a->pre);
    free(a->mean);
    free(a->rstd);
    free(a->ln);
    free(a->act);
    free(a->dact);
    free(a->dln);
    memset(a, 0, sizeof *a);
}

static float gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(GELU_C * (x + 0.044715f * x * x * x)));
}

static float gelu_grad(float x)
{
    float u = GELU_C * (x + 0.044715f * x * x * x), t = tanhf(u);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
}

/* layer norm + gelu of rows of pre (shared by both forwards) */
static void ln_gelu(const proj *p, proj_acts *a, int N)
{
    int H = p->cfg.hidden;
    for (int i = 0; i < N; i++) {
        const float *x = a->pre + (size_t)i * H;
        double m = 0, v = 0;
        for (int k = 0; k < H; k++) m += x[k];
        m /= H;
        for (int k = 0; k < H; k++) v += (x[k] - m) * (x[k] - m);
        v /= H;
        float rs = (float)(1.0 / sqrt(v + p->cfg.ln_eps));
        a->mean[i] = (float)m;
        a->rstd[i] = rs;
        for (int k = 0; k < H; k++) {
            float n = (x[k] - (float)m) * rs;
            a->ln[(size_t)i * H + k] = n * p->lnw[k] + p->lnb[k];
            a->act[(size_t)i * H + k] = gelu(a->ln[(size_t)i * H + k]);
        }
    }
}

static int check_n(const proj_acts *a, int N)
{
    if (N < 0 || N > a->maxN) return DM_ERR(DM_EINTERNAL, "projector batch of %d rows, sized for %d", N, a->maxN);
    return DM_OK;
}

int proj_forward(const proj *p, proj_acts *a, const float *x, int N, float *y)
{
    DM_CALL(check_n(a, N));
    int NI = p->cfg.din, H = p->cfg.hidden, NO = p->cfg.dout;
    a->N = N;
    if (!N) return DM_OK;
    memcpy(a->x, x, (size_t)N * (size_t)NI * sizeof *x);
    for (int i = 0; i < N; i++) memcpy(a->pre + (size_t)i * H, p->b1, (size_t)H * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, NI, 1.0f, x, NI, p->w1, NI, 1.0f, a->pre, H);
    ln_gelu(p, a, N);
    for (int i = 0; i < N; i++) memcpy(y + (size_t)i * NO, p->b2, (size_t)NO * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, NO, H, 1.0f, a->act, H, p->w2, H, 1.0f, y, NO);
    return DM_OK;
}

int proj_forward_naive(const proj *p, proj_acts *a, const float *x, int N, float *y)
{
    DM_CALL(check_n(a, N));
    int NI = p->cfg.din, H = p->cfg.hidden, NO = p->cfg.dout;
    a->N = N;
    if (!N) return DM_OK;
    memcpy(a->x, x, (size_t)N * (size_t)NI * sizeof *x);
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            double s = p->b1[h];
            for (int k = 0; k < NI; k++) s += (double)p->w1[(size_t)h * NI + k] * x[(size_t)i * NI + k];
            a->pre[(size_t)i * H + h] = (float)s;
        }
    ln_gelu(p, a, N);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < NO; o++) {
            double s = p->b2[o];
            for (int h = 0; h < H; h++) s += (double)p->w2[(size_t)o * H + h] * a->act[(size_t)i * H + h];
            y[(size_t)i * NO + o] = (float)s;
        }
    return DM_OK;
}

/* dln (N, H) from dact: through gelu, then the layer-norm backward into dpre (stored in dact) */
static void back_ln_gelu(const proj *p, proj_acts *a, int N)
{
    int H = p->cfg.hidden;
    for (int i = 0; i < N; i++) {
        float *da = a->dact + (size_t)i * H, *dl = a->dln + (size_t)i * H;
        const float *l = a->ln + (size_t)i * H, *x = a->pre + (size_t)i * H;
        float m = a->mean[i], rs = a->rstd[i];
        double s1 = 0, s2 = 0;
        for (int k = 0; k < H; k++) {
            float g = da[k] * gelu_grad(l[k]); /* d out / d ln */
            float n = (x[k] - m) * rs;
            p->glnw[k] += g * n;
            p->glnb[k] += g;
            dl[k] = g * p->lnw[k]; /* d / d normalised */
            s1 += dl[k];
            s2 += dl[k] * n;
        }
        s1 /= H;
        s2 /= H;
        for (int k = 0; k < H; k++) {
            float n = (x[k] - m) * rs;
            da[k] = rs * (dl[k] - (float)s1 - n * (float)s2); /* d / d pre */
        }
    }
}

int proj_backward(const proj *p, proj_acts *a, const float *dy, float *dx)
{
    int N = a->N, NI = p->cfg.din, H = p->cfg.hidden, NO = p->cfg.dout;
    if (!N) return DM_OK;
    /* y = act W2^T + b2 */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NO, H, N, 1.0f, dy, NO, a->act, H, 1.0f, p->gw2, H);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < NO; o++) p->gb2[o] += dy[(size_t)i * NO + o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, NO, 1.0f, dy, NO, p->w2, H, 0.0f, a->dact, H);
    back_ln_gelu(p, a, N);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, NI, N, 1.0f, a->dact, H, a->x, NI, 1.0f, p->gw1, NI);
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) p->gb1[h] += a->dact[(size_t)i * H + h];
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, NI, H, 1.0f, a->dact, H, p->w1, NI, 0.0f, dx, NI);
    return DM_OK;
}

int proj_backward_naive(const proj *p, proj_acts *a, const float *dy, float *dx)
{
    int N = a->N, NI = p->cfg.din, H = p->cfg.hidden, NO = p->cfg.dout;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < NO; o++) {
            float g = dy[(size_t)i * NO + o];
            p->gb2[o] += g;
            for (int h = 0; h < H; h++) p->gw2[(size_t)o * H + h] += g * a->act[(size_t)i * H + h];
        }
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            double s = 0;
            for (int o = 0; o < NO; o++) s += (double)dy[(size_t)i * NO + o] * p->w2[(size_t)o * H + h];
            a->dact[(size_t)i * H + h] = (float)s;
        }
    back_ln_gelu(p, a, N);
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            float g = a->dact[(size_t)i * H + h];
            p->gb1[h] += g;
            for (int k = 0; k < NI; k++) p->gw1[(size_t)h * NI + k] += g * a->x[(size_t)i * NI + k];
        }
    if (dx)
        for (int i = 0; i < N; i++)
            for (int k = 0; k < NI; k++) {
                double s = 0;
                for (int h = 0; h < H; h++) s += (double)a->dact[(size_t)i * H + h] * p->w1[(size_t)h * NI + k];
                dx[(size_t)i * NI + k] = (float)s;
            }
    return DM_OK;
}

void proj_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps, float wd, long t)
{
    float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (size_t k = 0; k < n; k++) {
        m[k] = b1 * m[k] + (1 - b1) * g[k];
        v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
        w[k] -= lr * ((m[k] / c1) / (sqrtf(v[k] / c2) + eps) + wd * w[k]);
    }
}
