/* adam.h: Adam and AdamW over a parameter slab, with PyTorch's formulas (torch.optim.Adam and
 * torch.optim.AdamW, non-fused, non-amsgrad).
 *
 * Layout: the parameters w, their gradient g and the two moment slabs m, v are four arrays of the
 * same n floats in the same order (a model's named views index all four alike); m and v start at 0
 * and are the optimiser's whole state besides the step count t (saved with a checkpoint as they
 * are). Step t = 1, 2, ..., per element:
 *
 *   g' = g + wd w                         weight_decay_mode NN_ADAM_L2 (torch.optim.Adam)
 *   w  = w (1 - lr wd)                    NN_ADAM_DECOUPLED (torch.optim.AdamW; Loshchilov & Hutter)
 *   m  = b1 m + (1 - b1) g'
 *   v  = b2 v + (1 - b2) g'^2
 *   w  = w - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * with g' = g when the decay does not apply. Bias corrections in double, then
 * step_size = lr / (1 - b1^t) and 1 / sqrt(1 - b2^t) rounded to float; per element, in float:
 * w - step_size m / (sqrt(v) (1 / sqrt(1 - b2^t)) + eps) (a product where torch divides: within an
 * ulp of torch's). Every element is independent: the result does not depend on the thread count.
 *
 * Weight decay per tensor: nn_adam_step_tensors takes the slab as consecutive tensors of sizes[k]
 * floats and decays tensor k only where decay[k] != 0 (GPT-2 decays its matrices, not biases and
 * layer-norm gains; SASRec puts its L2 on the embeddings). nn_adam_step decays every element.
 *
 * nn_adam_step_naive is the per-element formula above in double (rounded to float once per
 * element), for tests. Nothing allocates.
 */
#ifndef DM_NN_ADAM_H
#define DM_NN_ADAM_H

#include <stddef.h>

enum { NN_ADAM_DECOUPLED = 0, NN_ADAM_L2 = 1 };

typedef struct {
    float lr, beta1, beta2, eps;
    float weight_decay; /* wd >= 0; 0 = none */
    int decay_mode;     /* NN_ADAM_DECOUPLED (AdamW, the default) or NN_ADAM_L2 (Adam's) */
} nn_adam;

/* One step t >= 1 over w, g, m, v (n): every element decays. */
void nn_adam_step(const nn_adam *o, long t, float *w, const float *g, float *m, float *v, size_t n);
/* The same over ntensors consecutive tensors of sizes[k] floats; decay[k] != 0 where weight decay
 * applies (decay NULL: everywhere). */
void nn_adam_step_tensors(const nn_adam *o, long t, float *w, const float *g, float *m, float *v,
                          int ntensors, const size_t *sizes, const unsigned char *decay);
void nn_adam_step_naive(const nn_adam *o, long t, float *w, const float *g, float *m, float *v,
                        size_t n);

#endif
