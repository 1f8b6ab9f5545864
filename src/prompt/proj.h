/* proj.h: the projectors of the LLM recommender (A-LLMRec's stage-2 shape): a two-layer MLP with
 * layer norm mapping a recommender latent into the language model's embedding space.
 *
 *   y = W2 gelu(LN(W1 x + b1)) + b2        x (din), W1 (H, din), LN over H with gain/bias,
 *                                           gelu the tanh form (GPT-2's), W2 (dout, H)
 * The user projector maps h_u (d) to L soft prompt tokens (dout = L * C, read as L rows of C); the
 * item projector maps z_i (d) to one soft token (dout = C). Several projectors share one parameter
 * slab (and one gradient slab of the same layout) so a data-parallel driver allreduces one buffer.
 *
 * proj_forward keeps what proj_backward needs in proj_acts (sized for maxN rows); proj_backward
 * ACCUMULATES parameter gradients and optionally returns dx. A naive twin of each kernel
 * (proj_forward_naive, proj_backward_naive) has the same signature; tests hold them together.
 */
#ifndef DM_PROJ_H
#define DM_PROJ_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int din, hidden, dout;
    float ln_eps;
} proj_config;

typedef struct {
    proj_config cfg;
    float *w1, *b1, *lnw, *lnb, *w2, *b2; /* views: (H, din), (H), (H), (H), (dout, H), (dout) */
    float *gw1, *gb1, *glnw, *glnb, *gw2, *gb2; /* gradient views, same shapes */
} proj;

/* Floats one projector occupies in a slab. */
size_t proj_size(const proj_config *c);
/* Binds views into params[0..proj_size) and grads (same offsets). */
void proj_bind(proj *p, const proj_config *c, float *params, float *grads);
/* PyTorch Linear default initialisation (uniform +-1/sqrt(fan_in)), LN gain 1 bias 0; W2 scaled by
 * `out_scale` so the first soft tokens have the magnitude of token embeddings. Keyed by seed. */
void proj_init(proj *p, uint64_t seed, float out_scale);

typedef struct {
    int maxN, H;
    float *x;     /* (maxN, din) copy of the input */
    float *pre;   /* (maxN, H) W1 x + b1 */
    float *mean;  /* (maxN) */
    float *rstd;  /* (maxN) */
    float *ln;    /* (maxN, H) normalised and scaled */
    float *act;   /* (maxN, H) gelu(ln) */
    float *dact;  /* (maxN, H) scratch */
    float *dln;   /* (maxN, H) scratch */
    int N;
} proj_acts;

int proj_acts_init(proj_acts *a, const proj_config *c, int maxN);
void proj_acts_free(proj_acts *a);
/* y (N, dout) from x (N, din). */
int proj_forward(const proj *p, proj_acts *a, const float *x, int N, float *y);
int proj_forward_naive(const proj *p, proj_acts *a, const float *x, int N, float *y);
/* Given dy (N, dout) of the last forward: grads += dL/dparams; dx (N, din) = dL/dx when non-NULL. */
int proj_backward(const proj *p, proj_acts *a, const float *dy, float *dx);
int proj_backward_naive(const proj *p, proj_acts *a, const float *dy, float *dx);

/* Adam(W) over a slab: w -= lr (m^ / (sqrt(v^) + eps) + wd w), t = 1, 2, ... */
void proj_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps, float wd, long t);

#endif
