/* llmrec.h: the LLM recommender's core, MPI-free: soft-prompt projectors, the prompt layout,
 * candidate scoring by likelihood on the frozen LM's KV cache, and one user's listwise training step
 * through the frozen LM, with or without evidence tokens and the explanation losses (DESIGN.md idea
 * 3; stages/stage_explain.c), and the training examples (users, epoch order, negatives). The stage
 * around it is stages/stage_prompt.c.
 *
 * Prompt of a user with history h_1..h_n (the last prompt.history items):
 *     [bos] [L user tokens] prefix  title(h_1) [item h_1] sep ... title(h_n) [item h_n] sep  query
 * (bos: the LM's beginning-of-sequence token where it has one, Llama's <s>; none for GPT-2). The
 * LM is either architecture of src/lm/lm.h.
 * Candidate c continues it with title(c), followed by c's soft token e_c. The candidate's score is
 *     s(u, c) = (sum of log p(title tokens) + log p_soft(c)) / (title length + 1)
 * with length normalisation, where p_soft scores e_c through the output head (GPT-2's tied wte,
 * Llama's head) as one more vocabulary entry:
 *     log p_soft(c) = h . e_c - log(sum_v exp(h . head_v) + exp(h . e_c))
 * with h the final hidden state after the title.
 *
 * Evidence (llm_explain, src != NULL) enters in two parts, so that the cost per candidate stays
 * small (the prompt runs once per user, the candidates many times):
 *   - user evidence (explain_user_evidence_build: u's nearest users, the history items closest to
 *     u, u's attribute profile, the agreeing modality) as Eu = explain.user_tokens soft tokens
 *     right after the user tokens, in the cached prompt:
 *         [bos] [L user tokens] [Eu user evidence tokens] prefix ...
 *   - the evidence of (u, c) (explain_evidence_build) from the evidence encoder's E =
 *     explain.tokens attention slots, compressed (grouped, explain_enc.h) into E_i =
 *     explain.item_tokens rows:
 *       E_i > 0: E_i soft tokens before the candidate's title: [E_i tokens of (u, c)] title(c);
 *       E_i = 0: one vector r_uc of width C on the item-head path, scored against the prompt's
 *                last hidden state x_u (the state every candidate continues from):
 *                    s(u, c | E) = s(u, c) + x_u . r_uc,
 *                one dot product per candidate and no LM position. Its encoder's output layer
 *                starts at zero, so the untrained term is 0.
 * E_i = E with Eu = 0 is the per-candidate layout: every evidence token before every candidate.
 * Evidence tokens are inputs only. Masked evidence (the faithfulness loss, deletion) is both parts
 * replaced by their encoder's output for the empty set (its learned null element alone): the user
 * evidence tokens in the prompt and the candidate's rows.
 *
 * Training (pm_train_user): one LM batch holds the K + 1 candidates (the positive first), each
 * row the whole prompt and the candidate with its evidence; with evidence, also the positive with
 * its evidence masked (when explain.w_faith > 0: its prompt holds the empty set's user evidence
 * tokens) and the explanation row (when explain.w_expl > 0): the positive with its evidence,
 * title and soft token as inputs, followed by the reference rationale built from its evidence
 * (explain_rationale_reference). The loss is
 *     L = -log softmax_c(s)[0] + w_faith max(0, delta - (s_0 - s_masked)) + w_expl CE(rationale)
 * with CE the mean token cross-entropy of the rationale. With g_r = dL/ds_r for each scored row r
 * and alpha_r = g_r / (m_r + 1):
 *   title rows carry loss weight -alpha_r (lm_set_target_weights), which yields alpha_r dA_r;
 *   the soft row carries a placeholder target tau with weight w = -alpha_r (1 - p_s), which yields
 *   the vocabulary part of alpha_r dS_r, plus dhidden = w head_tau (cancelling the placeholder's
 *   one-hot) + alpha_r (1 - p_s) e_c (the direct path through h . e_c); and dL/de_c =
 *   alpha_r (1 - p_s) h; rationale targets carry weight w_expl / (rationale length).
 * On the item-head path row r adds x_r . r_r to s_r (x_r its hidden state at the prompt's last
 * position), so dhidden there gets g_r r_r and dL/dr_r = g_r x_r. There the loss adds element
 * terms, the faithfulness hinge of the positive's evidence without each of its elements e (the
 * modality excepted), which cost no LM row:
 *     + w_felem mean_e max(0, delta - (s_0 - s_0 without e)),  s_0 - s_0 without e = x_0 . (r_0 - r_0,-e)
 * (w_felem = explain.w_faith_elements), so that each element an explanation shows supports it.
 * The LM's backward returns the soft rows' gradients; the projectors and the evidence encoders
 * accumulate theirs. The LM never changes.
 */
#ifndef DM_LLMREC_H
#define DM_LLMREC_H

#include "../config/config.h"
#include "../data/dataset.h"
#include "../explain/explain.h"
#include "../explain/explain_enc.h"
#include "../explain/explain_rationale.h"
#include "../lm/lm.h"
#include "../nn/mlp.h"

#define PM_MAX_CAND 1024
#define PM_MAX_EL 64 /* element terms of the faithfulness loss, at most */

/* One item space of the item head (llmhead.h): its item table t (n_items, d), and in the slab the
 * head's W (d, C), b (d) and the residual weight a of the user's latent in that space. */
typedef struct {
    const float *t;     /* (n_items, d), the caller's */
    size_t d;
    float *w, *b, *a;   /* W (d, C), b (d), a (1) in the slab */
    float *gw, *gb, *ga;
    int train_a;        /* 0: a stays at its start */
    float *q, *dq;      /* (d) the query and its gradient */
} pm_head_space;

typedef struct pm {
    lm_model lm;
    int C, V, L, nh, mt, K, length_norm, eot;
    int bos;                 /* the LM's beginning-of-sequence token that starts every prompt, or -1 */
    int use_title, use_soft; /* prompt.score */
    nn_mlp up, ip;
    size_t n_up, n_ip, nparams;
    float *w, *g, *am, *av;
    long t;
    nn_mlp_acts ua, ia;
    bpe_ids prefix, sep, query;
    int64_t *toff;   /* (n_items + 1) */
    int32_t *tok;    /* title tokens */
    const float *z;  /* (n_items, d) */
    size_t d, n_items;
    const dm_dataset *ds;
    /* evidence (evid) */
    int evid;                         /* evidence on (llm_explain) */
    int E;                            /* E_i: evidence tokens before each candidate (0: the item-head path) */
    int Eo;                           /* rows of one (u, i) evidence set out of the encoder: E_i, or 1 (r_ui) */
    int Eu;                           /* user evidence tokens in the prompt */
    int ev_head;                      /* the (u, i) evidence on the item-head path (E_i = 0) */
    float w_felem;                    /* item-head path: weight of the element terms (explain.w_faith_elements) */
    int nsets_max;                    /* (u, i) evidence sets one encoder call takes */
    int Rmax;
    float w_faith, w_expl, delta;
    const explain_src *src;           /* the caller's */
    explain_enc enc;                  /* the (u, i) evidence encoder: explain.tokens slots -> Eo rows */
    explain_enc_acts ea;
    explain_enc uenc;                 /* the user evidence encoder: Eu tokens (when Eu > 0) */
    explain_enc_acts uea;
    explain_evidence uev;             /* the user evidence of the last prompt built (pm_prompt) */
    int64_t ueoff[3];
    int8_t *uekind;                   /* (2 width) its encoder inputs */
    float *uex, *uew;                 /* (2 width, d), (2 width) */
    float *dey;                       /* (maxc + 2, C) item-head path: dL/dr of the training sets */
    double evs[66];                   /* item-head path: x_r . r_r of the training rows */
    explain_evidence *ev;             /* (maxc) evidence of the candidates being scored or trained */
    explain_templates tpl;
    explain_rationale rat;            /* the reference rationale of the last training step */
    bpe_ids rtok;                     /* its tokens (cut to Rmax) */
    int32_t user;                     /* pm_set_user */
    const int32_t *uall;
    int n_uall;
    int64_t *eoff;                    /* (maxc + 2) */
    int8_t *ekind;                    /* (maxN) */
    float *ex, *ew;                   /* (maxN, d), (maxN) */
    float *ey;                        /* ((maxc + 2) Eo, C) evidence rows of (u, i) sets */
    float *mask_row;                  /* (max(Eo, Eu), C) the masked-evidence token (row 0: the empty set's) */
    uint8_t *keep;                    /* (set width) */
    double last_rank, last_faith, last_expl; /* parts of the last training loss */
    double last_felem;                /* item-head path: the element terms' mean hinge */
    /* scratch */
    int *in, *tg;    /* (B, T) */
    int *ctok;       /* candidate codes while scoring */
    float *tw;       /* (B, T) */
    float *dh;       /* (B, T, C) */
    float *soft;     /* (nsoft, C) */
    float *dsoft;    /* (nsoft, C) */
    int nsoft;
    float *ie, *ide; /* (n + maxc, C) */
    float *zin;      /* (n + maxc, d) */
    int Tmax, maxc, Bmax, cur_n;
    lm_cache cache;
    /* the item head (pm_init_head; llmhead.c) */
    int head;
    int head_nolm;                    /* 1: x = 0, no LM pass (latent_head) */
    size_t n_head;                    /* its parameters, at the end of the slab */
    int nsp;                          /* item spaces: 1 (the aligner's) or 2 (and the CF model's) */
    pm_head_space sp[2];
    int head_text;                    /* prompt.head_text: + a_t (the LM's logit of each item's first title token) */
    float *at, *gat;                  /* a_t (1) in the slab, after the spaces, and its gradient */
    int32_t *ftok;                    /* (n_items) each item's first title token, -1 untitled */
    float *tlog;                      /* (2 V) the logits x . wte_v of the last user, then their gradient */
    double tmean;                     /* the mean of those logits over the vocabulary */
    float *hs;                        /* (n_items) scores of the last user */
    float *hx;                        /* (C) the last hidden state x */
} pm;

/* The users' training histories as text in the prompt's own words, for pretraining the LM on them
 * (lm.corpus "histories"): one document per interaction t >= 1 of the training role (roles (n_inter)
 * == DM_TRAIN) of every user, "<prefix> <title>" "<sep>" for each of the (at most H) training items
 * before it, then "<query> <title of t>" (" The user bought: A; B; Next: C"). Only training-role
 * interactions are read, so no validation or test item appears. Untitled items are left out of a
 * history; an untitled item t makes no document. Appends to out; DM_ENOMEM only. */
int pm_history_docs(const dm_dataset *d, const int8_t *roles, const char *prefix, const char *sep, const char *query, size_t H,
                    dm_strtab *out);

/* Loads the LM of lmdir, tokenizes the prompt pieces and every item's title, sizes the projectors
 * (din = dz) and buffers for up to maxc candidates per user. z (n_items, dz) stays the caller's.
 * src, when non-NULL, turns evidence on: explain.user_tokens user evidence tokens in the prompt
 * and explain.item_tokens per candidate (or the item-head path) from two encoders in the same
 * parameter slab (after the projectors: the (u, i) encoder, then the user encoder), the
 * explanation losses weighted by explain.w_faith and explain.w_expl, rationale templates from
 * explain.templates. src (the caller's, latents of width dz) may have its h pointer changed
 * between calls. */
int pm_init(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc, uint64_t seed,
            const explain_src *src, pm *p);
void pm_free(pm *p);
/* The item-head recommender (see llmhead.h): as pm_init without evidence, plus the head's
 * parameters at the end of the slab (prompt.head_residual). cf (n_items, dcf), when non-NULL, adds
 * the CF model's item space (prompt.head_cf); no_lm = 1 makes the LM-free twin (latent_head). */
typedef struct {
    const float *cf;
    size_t dcf;
    int no_lm;
} pm_head_opts;
int pm_init_head(const dm_cfg *cfg, const char *lmdir, const dm_dataset *d, const float *z, size_t dz, int maxc, uint64_t seed,
                 const pm_head_opts *o, pm *p);
/* The user whose evidence the next calls build: id u and u's training items all[0..n) (the
 * history evidence draws from; kept by the caller). Needed only with evidence. */
void pm_set_user(pm *p, int32_t u, const int32_t *all, int n);

/* s[0..nc) = scores of candidates cand for a user with latent h (dz) and history hist[0..n), the
 * first L user tokens (L <= the configured L) shortened from the front for latency runs. */
int pm_score_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc, int L, double *s);
/* The listwise step over cand[0..K] (positive first); gradients scaled by `scale` accumulate into
 * p->g; *loss is the unscaled total loss (parts in last_rank, last_faith, last_expl). */
int pm_train_user(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, float scale, double *loss);

/* ---- the pieces of pm_score_user, for explanations and their metrics ---- */
/* The prompt of a user with history hist[0..n) as input codes (soft rows 0..L-1 the user tokens,
 * L + k history item k) into out; returns its length. */
int pm_build_prompt(const pm *p, const int32_t *hist, int n, int L, int *out);
/* The soft rows: user tokens from h, history and candidate item tokens from z (into p->ie; the
 * history rows also into p->soft after the user rows). */
int pm_project(pm *p, const float *h, const int32_t *hist, int n, const int32_t *cand, int nc);
/* Runs the prompt into the KV cache (projecting h and the history and, with user evidence tokens,
 * encoding the user evidence of pm_set_user's user into p->uev, or the empty set's when
 * ev_masked); positions mask[0..n_mask) of the prompt are replaced by the masked-evidence token
 * (the random-masking control). Returns the prompt length in *P. */
int pm_prompt(pm *p, const float *h, const int32_t *hist, int n, int L, const int *mask, int n_mask, int ev_masked, int *P);
/* Evidence tokens of one recommendation: user evidence tokens plus the candidate's (E_i) tokens. */
int pm_evidence_tokens(const pm *p);
/* Evidence of (user, cand[k]) into p->ev[k], k < nc. */
int pm_build_evidence(pm *p, const int32_t *cand, int nc);
/* Evidence rows of nsets (u, i) sets into y (nsets Eo, C): set k is p->ev[evi[k]] without
 * element drop[k] (-1: nothing dropped, -2: every element dropped, i.e. masked evidence). */
int pm_encode(pm *p, const int *evi, const int *drop, int nsets, float *y);
/* Scores candidates after the cached prompt: candidate k continues with evidence rows y + k Eo
 * (y NULL: no evidence): its E_i evidence tokens, its title and its soft token, and on the
 * item-head path x_u . r_uk added, x_u the last cached position's hidden state. */
int pm_score_cached(pm *p, const int32_t *cand, int nc, const float *y, double *s);
/* Appends candidate c's continuation (its E_i evidence tokens y (Eo, C) or none, title, soft
 * token) to the cache, as the prompt of its rationale; the caller truncates back. */
int pm_append_candidate(pm *p, int32_t c, const float *y);

/* ---- training examples: who trains, in which order, against which negatives ---- */
/* The users a recommender trains on and the items each may never draw as a negative. */
typedef struct {
    size_t *users, n;  /* (n) the users with at least 2 training items, ascending */
    int64_t *off;      /* (n_users + 1) */
    int32_t *items;    /* (n_inter) items[off[u]..off[u + 1]): every item u touched (any role), sorted */
} pm_train_set;
/* roles: (n_inter) DM_TRAIN/VALID/TEST. pm_train_set_free releases it (also after a failure). */
int pm_train_set_init(pm_train_set *t, const dm_dataset *d, const int8_t *roles);
void pm_train_set_free(pm_train_set *t);
/* The users of epoch ep: the first k positions of order[0..n) drawn by a partial Fisher-Yates
 * shuffle keyed by (seed, ep), applied in place to the order the previous epoch left (so epoch
 * ep's order follows from epoch 0's and the epochs before it, whatever the rank count). */
void pm_epoch_order(size_t *order, size_t n, size_t k, uint64_t seed, uint64_t ep);
/* User u's listwise example at global step `step`, `back` positions before the end of u's training
 * sequence (0: its last item is the positive; u needs back + 2 training items). u's training items
 * go to `all` in order (all needs room for u's interactions): all[0..*n_all) those before the
 * positive (u's evidence history, for pm_set_user), all[*n_all] the positive, which is also
 * cand[0]; hist[0..*n) the last nh items before the positive; cand[1..K] K items u never touched
 * (t's sets), drawn uniformly with rejection, keyed by (seed, step, u). u must be one of t's users. */
void pm_train_example(const pm_train_set *t, const dm_dataset *d, const int8_t *roles, size_t u, int back, int nh, int K,
                      uint64_t seed, uint64_t step, int32_t *all, int *n_all, int32_t *hist, int *n, int32_t *cand);

#endif
