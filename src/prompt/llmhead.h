/* llmhead.h: the item-head LLM recommender (`llm_head` of prompt.models), MPI-free.
 *
 * One LM pass per user ranks the whole catalogue, as item-head LLM recommenders do (E4SRec): the
 * user's prompt (llmrec.h: L soft user tokens from h_u, the history's titles and soft item tokens,
 * the query) runs through the frozen LM; the final hidden state x at the prompt's last position is
 * mapped into the aligner's item space and scored against every item latent z_i:
 *     q = W x + b + r h_u,        s_i = q . z_i
 * with W (d, C), b (d) trained and r = 1 (prompt.head_residual) or 0. W and b start at zero, so the
 * untrained model ranks exactly as the aligner whose latents it reads (r = 1): training can only
 * move it where the validation metric says it helps (the stage keeps the best epoch), and every
 * gain over the aligner is the LM's. Training minimises the full softmax cross-entropy over the
 * catalogue, L = -log softmax(s)[pos]: with p the softmax and y the positive's one-hot,
 *     dq = Z^T (p - y),  dW += dq x^T,  db += dq,  dx = W^T dq,
 * and dx flows back through the frozen LM (lm_backward with a hidden-state gradient at the last
 * position) into the soft rows and the projectors.
 */
#ifndef DM_LLMHEAD_H
#define DM_LLMHEAD_H

#include "llmrec.h"

/* p->hs[0..n_items) = the scores of every item for a user with latent h (dz) and history
 * hist[0..n). p must come from pm_init_head. */
int pm_head_scores(pm *p, const float *h, const int32_t *hist, int n);
/* One user's full-softmax step towards item pos; gradients times `scale` accumulate into p->g;
 * *loss = -log softmax(s)[pos] (unscaled). */
int pm_head_train_user(pm *p, const float *h, const int32_t *hist, int n, int32_t pos, float scale, double *loss);

#endif
