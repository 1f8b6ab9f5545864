/* mlp.h: the MLP projector: linear, layer norm, GELU, linear (A-LLMRec's stage-2 projector shape),
 * mapping a latent of one width to another; the LLM recommender's soft-prompt projectors
 * (src/prompt) and the evidence encoder's output head (src/explain) are instances.
 *
 *   pre = W1 x + b1          x (din), W1 (H, din), b1 (H)          nn_linear
 *   ln  = LN(pre) lnw + lnb  over H, gain lnw (H), bias lnb (H)    nn_layernorm (eps ln_eps)
 *   act = gelu(ln)           the tanh form (GPT-2's)               nn_gelu
 *   y   = W2 act + b2        W2 (dout, H), b2 (dout)               nn_linear
 *
 * Parameters: one nn_mlp is six named views into a caller's slab (nn_mlp_size floats, in the order
 * w1 b1 lnw lnb w2 b2), with the gradient views at the same offsets of a gradient slab; several
 * projectors (and other parts) can share one slab, so a data-parallel driver allreduces one buffer
 * and one Adam (src/nn/adam.h) steps all of them.
 *
 * nn_mlp_forward keeps what nn_mlp_backward needs in nn_mlp_acts (sized for maxN rows, one
 * allocation owned by the acts). nn_mlp_backward ACCUMULATES the parameter gradients and, when dx
 * is non-NULL, the input gradient: dx (N, din) += dL/dx. The naive twins (same signatures) run the
 * layers' naive twins; tests hold them together, against finite differences and against PyTorch
 * (tests/unit/test_nn.c, test_prompt.c, test_explain.c).
 */
#ifndef DM_NN_MLP_H
#define DM_NN_MLP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int din, hidden, dout;
    float ln_eps;
} nn_mlp_config;

typedef struct {
    nn_mlp_config cfg;
    float *w1, *b1, *lnw, *lnb, *w2, *b2;       /* (H, din), (H), (H), (H), (dout, H), (dout) */
    float *gw1, *gb1, *glnw, *glnb, *gw2, *gb2; /* gradient views, same shapes (NULL: no slab) */
} nn_mlp;

/* Floats one projector occupies in a slab. */
size_t nn_mlp_size(const nn_mlp_config *c);
/* Binds the views into params[0..nn_mlp_size) and grads (same offsets; may be NULL). */
void nn_mlp_bind(nn_mlp *p, const nn_mlp_config *c, float *params, float *grads);
/* PyTorch Linear default initialisation (uniform +-1/sqrt(fan_in)), LN gain 1 bias 0; W2 and b2
 * scaled by out_scale (e.g. so first soft tokens have the magnitude of token embeddings). Keyed by
 * seed: the same weights on every rank. */
void nn_mlp_init(nn_mlp *p, uint64_t seed, float out_scale);

typedef struct {
    int maxN, H, N;
    float *x;    /* (maxN, din) copy of the input */
    float *pre;  /* (maxN, H) W1 x + b1 */
    float *mean; /* (maxN) */
    float *rstd; /* (maxN) */
    float *ln;   /* (maxN, H) normalised, scaled and shifted */
    float *act;  /* (maxN, H) gelu(ln) */
    float *dact; /* (maxN, H) scratch: d act, then d pre */
    float *dln;  /* (maxN, H) scratch: d ln */
    float *mem;  /* the one allocation every view above points into */
} nn_mlp_acts;

int nn_mlp_acts_init(nn_mlp_acts *a, const nn_mlp_config *c, int maxN);
void nn_mlp_acts_free(nn_mlp_acts *a);
/* y (N, dout) from x (N, din), N <= maxN (DM_EINTERNAL otherwise). */
int nn_mlp_forward(const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, float *y);
int nn_mlp_forward_naive(const nn_mlp *p, nn_mlp_acts *a, const float *x, int N, float *y);
/* Given dy (N, dout) of the last forward: grads += dL/dparams; dx (N, din) += dL/dx if non-NULL. */
int nn_mlp_backward(const nn_mlp *p, nn_mlp_acts *a, const float *dy, float *dx);
int nn_mlp_backward_naive(const nn_mlp *p, nn_mlp_acts *a, const float *dy, float *dx);

#endif
