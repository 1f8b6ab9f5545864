/* llmhead.h: the item-head LLM recommender (`llm_head` of prompt.models), MPI-free.
 *
 * One LM pass per user ranks the whole catalogue, as item-head LLM recommenders do (E4SRec): the
 * user's prompt (llmrec.h: L soft user tokens from h_u, the history's titles and soft item tokens,
 * the query) runs through the frozen LM; the final hidden state x at the prompt's last position is
 * mapped into one or two item spaces and scored against every item there: the aligner's (item
 * latents z_i, user latent h_u) and, with prompt.head_cf, the CF model's (SASRec's item table e_i and
 * user state g_u, the latents the aligner itself reads):
 *     q_z = W_z x + b_z + a_z h_u,   q_e = W_e x + b_e + a_e g_u,   s_i = q_z . z_i + q_e . e_i
 * with W, b and the residual weights a trained (a only with prompt.head_residual). W and b start at
 * zero, a_z at 1 and a_e at 0, so the untrained model ranks exactly as the aligner whose latents
 * it reads: training moves it only where the validation metric says it helps (the stage keeps the
 * best epoch). Training minimises the full softmax cross-entropy over the catalogue,
 * L = -log softmax(s)[pos]: with p the softmax and y the positive's one-hot, per space
 *     dq = T^T (p - y),  dW += dq x^T,  db += dq,  da += dq . u,  dx += W^T dq,
 * and dx flows back through the frozen LM (lm_backward with a hidden-state gradient at the last
 * position) into the soft rows and the projectors.
 *
 * With prompt.head_text the LM also scores every item in its own words: its next-token logit of the
 * item's first title token f(i) at the prompt's end, centred on the vocabulary's mean,
 *     s_i += a_t l_i,   l_i = x . wte_f(i) - (1/V) sum_v x . wte_v   (0 for an untitled item)
 * with a_t trained at the residual weights' rate and starting at 0 (so the untrained head still ranks
 * as the aligner): da_t = sum_i r_i l_i, dx += a_t sum_v (c_v - c / V) wte_v with c_v the sum of r_i
 * over the items whose title starts with v and c their total. One (V, C) product per user; it
 * carries the LM's guess of the next title, which means something once the LM has read the users'
 * histories (lm.corpus "histories", pm_history_docs).
 *
 * The LM-free twin (`latent_head`, pm_head_opts.no_lm) is the same head with x = 0 and no LM pass:
 * a trained blend of the two spaces' scores, b_z . z_i + b_e . e_i + a_z h_u . z_i + a_e g_u . e_i.
 * Trained on the same users, it measures what the LM adds beyond re-weighting the latents.
 */
#ifndef DM_LLMHEAD_H
#define DM_LLMHEAD_H

#include "llmrec.h"

#include "../nn/adam.h"

/* p->hs[0..n_items) = the scores of every item for a user with aligner latent h (dz), CF latent g
 * (dcf; may be NULL without the CF space) and history hist[0..n). p must come from pm_init_head. */
int pm_head_scores(pm *p, const float *h, const float *g, const int32_t *hist, int n);
/* One user's full-softmax step towards item pos; gradients times `scale` accumulate into p->g;
 * *loss = -log softmax(s)[pos] (unscaled). */
int pm_head_train_user(pm *p, const float *h, const float *g, const int32_t *hist, int n, int32_t pos, float scale, double *loss);

/* The optimiser step (p->t) of the head's slab: Adam o over every parameter but the residual
 * weights a, which step at learning rate mix_lr without weight decay (their own moments, in the
 * slab's). Two scalars that set the blend of the latents' scores and the softmax temperature
 * would move by at most o->lr per step at the projectors' rate (prompt.head_mix_lr). */
void pm_head_adam_step(pm *p, const nn_adam *o, float mix_lr);

#endif
