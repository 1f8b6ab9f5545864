/* llmrec.h: the LLM recommender's core, MPI-free: soft-prompt projectors, the prompt layout,
 * candidate scoring by likelihood on the frozen LM's KV cache, and one user's listwise training step
 * through the frozen LM (see mpi/cmd_prompt.c for the stage around it).
 *
 * Prompt of a user with history h_1..h_n (the last prompt.history items):
 *     [L user tokens] prefix  title(h_1) [item h_1] sep ... title(h_n) [item h_n] sep  query
 * Candidate c continues it with title(c) followed by c's soft token e_c. The candidate's score is
 * (sum of log p(title tokens) + log p_soft(c)) / (title length + 1) with length normalisation, where
 * p_soft scores e_c through the tied output head as one more vocabulary entry:
 *     log p_soft(c) = h . e_c - log(sum_v exp(h . wte_v) + exp(h . e_c))
 * with h the final hidden state after the title.
 *
 * Training (pm_train_user): the K + 1 candidates (the positive first) run through the LM in one
 * batch; L = -log softmax_c(score)[0]. With g_c = dL/dscore_c and alpha_c = g_c / (m_c + 1):
 *   title rows carry loss weight -alpha_c (gpt2 target_w), which yields alpha_c dA_c;
 *   the soft row carries a placeholder target tau with weight w = -alpha_c (1 - p_s), which yields the
 *   vocabulary part of alpha_c dS_c, plus dhidden = w wte_tau (cancelling the placeholder's one-hot)
 *   + alpha_c (1 - p_s) e_c (the direct path through h . e_c); and dL/de_c = alpha_c (1 - p_s) h.
 * The LM's backward returns the soft rows' gradients; the projectors accumulate theirs.
 */
#ifndef DM_LLMREC_H
#define DM_LLMREC_H

#include "../config/config.h"
#include "../data/dataset.h"
#include "../lm/lm.h"
#include "proj.h"

typedef struct pm {
    lm_model lm;
    int C, V, L, nh, mt, K, length_norm, eot;
    int use_title, use_soft; /* prompt.score */
    proj up, ip;
    size_t n_up, nparams;
    float *w, *g, *am, *av;
    long t;
    proj_acts ua, ia;
    bpe_ids prefix, sep, query;
    int64_t *toff;   /* (n_items + 1) */
    int32_t *tok;    /* title tokens */
    const float *z;  /* (n_items, d) */
    size_t d, n_items;
    /* scratch */
    int *in, *tg;    /* (B, T) */
    int *ctok;       /* (maxc * title_tokens) candidate title tokens while scoring */
    float *tw;       /* (B, T) */
    float *dh;       /* (B, T, C) */
    float *soft;     /* (L + n + maxc, C) */
    float *dsoft;    /* (L + n, C) */
    float *ude;      /* (L C) */
    float *ie, *ide; /* (n + maxc, C) */
    float *zin;      /* (n + maxc, d) */
    int Tmax, maxc;
    gpt2_cache cache;
} pm;


/* Loads the LM of lmdir, tokenizes the prompt pieces and every item's title, sizes the projectors
 * (din = dz) and buffers for up to maxc candidates per user. z (n_items, dz) stays the caller's. */
int pm_init(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc, uint64_t seed,
            pm *p);
void pm_free(pm *p);
/* s[0..nc) = scores of candidates cand for a user with latent h (dz) and history hist[0..n), the
 * first L user tokens (L <= the configured L) shortened from the front for latency runs. */
int pm_score_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc, int L, double *s);
/* The listwise step over cand[0..K] (positive first); gradients scaled by `scale` accumulate into
 * p->g; *loss is the unscaled loss. */
int pm_train_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, float scale, double *loss);

#endif
