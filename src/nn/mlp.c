/* mlp.c: see mlp.h. The forward and backward are written once over a table of layer kernels: the
 * optimised ones, or their naive twins. */
#include "mlp.h"

#include "../core/err.h"
#include "../core/rng.h"
#include "gelu.h"
#include "layernorm.h"
#include "linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t nn_mlp_size(const nn_mlp_config *c)
{
    size_t H = (size_t)c->hidden, NI = (size_t)c->din, NO = (size_t)c->dout;
    return H * NI + H + H + H + NO * H + NO;
}

void nn_mlp_bind(nn_mlp *p, const nn_mlp_config *c, float *w, float *g)
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

void nn_mlp_init(nn_mlp *p, uint64_t seed, float out_scale)
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

int nn_mlp_acts_init(nn_mlp_acts *a, const nn_mlp_config *c, int maxN)
{
    memset(a, 0, sizeof *a);
    const size_t N = (size_t)(maxN > 0 ? maxN : 1), H = (size_t)c->hidden;
    a->maxN = (int)N;
    a->H = c->hidden;
    /* one slab: x (N din), then pre, ln, act, dact, dln (N H each), then mean and rstd (N each) */
    DM_ALLOC(a->mem, N * ((size_t)c->din + 5 * H + 2));
    float **v[7] = {&a->x, &a->pre, &a->ln, &a->act, &a->dact, &a->dln, &a->mean};
    size_t n[7] = {N * (size_t)c->din, N * H, N * H, N * H, N * H, N * H, N}, off = 0;
    for (int k = 0; k < 7; k++) {
        *v[k] = a->mem + off;
        off += n[k];
    }
    a->rstd = a->mem + off;
    return DM_OK;
}

void nn_mlp_acts_free(nn_mlp_acts *a)
{
    free(a->mem);
    memset(a, 0, sizeof *a);
}

typedef struct {
    void (*linear_forward)(float *, const float *, const float *, const float *, int, int, int);
    void (*linear_backward)(float *, float *, float *, const float *, const float *, const float *,
                            int, int, int);
    void (*ln_forward)(float *, float *, float *, const float *, const float *, const float *, int,
                       int, float);
    void (*ln_backward)(float *, float *, float *, const float *, const float *, const float *,
                        const float *, const float *, int, int);
    void (*gelu_forward)(float *, const float *, size_t);
    void (*gelu_backward)(float *, const float *, const float *, size_t);
} layers;

static const layers fast = {nn_linear_forward,    nn_linear_backward, nn_layernorm_forward,
                            nn_layernorm_backward, nn_gelu_forward,    nn_gelu_backward};
static const layers naive = {nn_linear_forward_naive,    nn_linear_backward_naive,
                             nn_layernorm_forward_naive, nn_layernorm_backward_naive,
                             nn_gelu_forward_naive,      nn_gelu_backward_naive};

static int forward(const layers *L, const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, float *y)
{
    if (N < 0 || N > a->maxN)
        return DM_ERR(DM_EINTERNAL, "projector batch of %d rows, sized for %d", N, a->maxN);
    const int NI = p->cfg.din, H = p->cfg.hidden, NO = p->cfg.dout;
    a->N = N;
    if (!N) return DM_OK;
    memcpy(a->x, x, (size_t)N * (size_t)NI * sizeof *x);
    L->linear_forward(a->pre, x, p->w1, p->b1, N, NI, H);
    L->ln_forward(a->ln, a->mean, a->rstd, a->pre, p->lnw, p->lnb, N, H, p->cfg.ln_eps);
    L->gelu_forward(a->act, a->ln, (size_t)N * H);
    L->linear_forward(y, a->act, p->w2, p->b2, N, H, NO);
    return DM_OK;
}

static int backward(const layers *L, const nn_mlp *p, nn_mlp_acts *a, const float *dy, float *dx)
{
    const int N = a->N, NI = p->cfg.din, H = p->cfg.hidden, NO = p->cfg.dout;
    if (!N) return DM_OK;
    const size_t NH = (size_t)N * H;
    memset(a->dact, 0, NH * sizeof(float));
    L->linear_backward(a->dact, p->gw2, p->gb2, dy, a->act, p->w2, N, H, NO);
    L->gelu_backward(a->dln, a->ln, a->dact, NH);
    memset(a->dact, 0, NH * sizeof(float)); /* now d pre */
    L->ln_backward(a->dact, p->glnw, p->glnb, a->dln, a->pre, p->lnw, a->mean, a->rstd, N, H);
    L->linear_backward(dx, p->gw1, p->gb1, a->dact, a->x, p->w1, N, NI, H);
    return DM_OK;
}

int nn_mlp_forward(const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, float *y)
{
    return forward(&fast, p, a, x, N, y);
}

int nn_mlp_forward_naive(const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, float *y)
{
    return forward(&naive, p, a, x, N, y);
}

int nn_mlp_backward(const nn_mlp *p, nn_mlp_acts *a, const float *dy, float *dx)
{
    return backward(&fast, p, a, dy, dx);
}

int nn_mlp_backward_naive(const nn_mlp *p, nn_mlp_acts *a, const float *dy, float *dx)
{
    return backward(&naive, p, a, dy, dx);
}
