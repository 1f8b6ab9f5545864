/* explain.h: evidence for a recommendation (u, i), the input of evidence-grounded explanations
 * (DESIGN.md idea 3). MPI-free; the stage around it lives in mpi/.
 *
 * Evidence is a short list of elements, each a (kind, id, weight):
 *   EXPLAIN_USER   neighbour users: users v != u who took i in the training data, ranked by
 *                  sim(h_u, h_v); weight = that similarity.
 *   EXPLAIN_ITEM   history items: distinct items j != i of u's history, ranked by sim(z_i, z_j);
 *                  weight = that similarity.
 *   EXPLAIN_ATTR   i's attributes (dataset attribute ids: brand, category levels, price bucket,
 *                  other), weighted by attention from the user, parameter-free:
 *                      e_a = mean { z_j : item j holds attribute a }        (explain_attr_embed)
 *                      a_a = softmax_{a in attrs(i)} ( sim(h_u, e_a) / tau )
 *                  over ALL of i's attributes; the k with the largest a_a are kept with these
 *                  weights (so the kept weights sum to <= 1). count = how many distinct items of
 *                  u's history (i excluded) hold the attribute (the {n} of rationales).
 *   EXPLAIN_MODAL  for multimodal data, the modality k of the per-modality latents z_i^k (present
 *                  ones only) closest to h_u; id = k, weight = sim(h_u, z_i^k). At most one.
 * sim is cosine (0 when either vector is zero) or the dot product (explain.similarity). Ties are
 * broken by the smaller id, so evidence is deterministic.
 *
 * User evidence (explain_user_evidence_build) is what depends on u alone, the same for every
 * candidate (item = -1), with the same kinds and sizes:
 *   EXPLAIN_USER   users v != u who took one of u's history items in the training data, ranked
 *                  by sim(h_u, h_v).
 *   EXPLAIN_ITEM   distinct items j of u's history closest to u: sim(h_u, z_j).
 *   EXPLAIN_ATTR   u's attribute profile: the attributes some history item holds, weighted by
 *                  a_a = softmax_a(sim(h_u, e_a) / tau) over all of them; count = the distinct
 *                  history items holding it.
 *   EXPLAIN_MODAL  the modality k whose per-modality latents of u's history items agree most with
 *                  h_u: weight = the mean of sim(h_u, z_j^k) over the history items j that have k;
 *                  its encoder feature is the mean of those z_j^k (kept in the evidence, mfeat).
 *
 * Elements are stored grouped by kind in the order USER, ITEM, ATTR, MODAL, each group by
 * decreasing weight; element indices (0..n-1) are what rationales cite and what evidence
 * precision removes. explain_evidence_pack writes an evidence set into fixed-width rows (kind -1
 * pads) for storage; explain_evidence_check verifies a loaded one against the training data.
 *
 * Ownership: explain_evidence owns its element array and scratch; explain_src points at the
 * caller's arrays (latents, CSR of who took what, attribute tables), except the CSR and attribute
 * embeddings explain_src_init allocates (freed by explain_src_free).
 *
 * Typical use for a recommendation (u, i):
 *     explain_src s;  explain_src_init(&s, cfg, d, d->split_loo, h, z, dim);   (once)
 *     explain_evidence ev;  explain_evidence_init(&ev, s.k_users, s.k_items, s.k_attrs);
 *     explain_evidence_build(&s, u, i, train_items_of_u, n, &ev);           (per recommendation)
 *     explain_evidence_features(&s, &ev, NULL, kind, x, w, &m);             (encoder input rows)
 */
#ifndef DM_EXPLAIN_H
#define DM_EXPLAIN_H

#include "../config/config.h"
#include "../data/dataset.h"

#include <stddef.h>
#include <stdint.h>

enum { EXPLAIN_USER = 0, EXPLAIN_ITEM = 1, EXPLAIN_ATTR = 2, EXPLAIN_MODAL = 3, EXPLAIN_NKINDS = 4 };
enum { EXPLAIN_SIM_COSINE = 0, EXPLAIN_SIM_DOT = 1 };
extern const char *const explain_kind_names[EXPLAIN_NKINDS]; /* "user", "item", "attr", "modal" */

typedef struct {
    int8_t kind;    /* EXPLAIN_* */
    int32_t id;     /* user id, item id, attribute id, or modality index k of the latents */
    float weight;   /* similarity (user, item, modal) or attention weight (attr) */
    int32_t count;  /* attr: distinct history items (i excluded) holding it; 0 for other kinds */
} explain_elem;

typedef struct {
    int32_t user, item;              /* the recommendation (u, i) */
    int n;                           /* elements */
    int n_kind[EXPLAIN_NKINDS];      /* elements of each kind (contiguous, in kind order) */
    int cap;                         /* k_users + k_items + k_attrs + 1 */
    explain_elem *el;                /* (cap) */
    /* scratch of explain_evidence_build, grown on demand */
    int32_t *hist;                   /* (hcap) distinct history items */
    double *score;                   /* (scap) */
    int32_t *cand;                   /* (scap) */
    size_t hcap, scap;
    int32_t *uattr;                  /* (acap) user evidence: the attributes of the history items */
    size_t acap;
    int32_t *uuser;                  /* (ucap) user evidence: the users who took a history item */
    size_t ucap;
    float *mfeat;                    /* (d) user evidence: the modality element's feature, or NULL */
} explain_evidence;

/* Where evidence comes from. Every pointer is the caller's. */
typedef struct {
    size_t n_users, n_items, d;
    const float *h;             /* (n_users, d) user latents h_u */
    const float *z;             /* (n_items, d) item latents z_i */
    const int64_t *took_off;    /* (n_items + 1) CSR: users who took each item in training */
    const int32_t *took;        /* (took_off[n_items]) user ids (explain_item_users) */
    size_t n_attr;
    const int64_t *attr_off;    /* (n_items + 1) dataset item_attr_off */
    const int32_t *attr;        /* dataset item_attr */
    const float *attr_emb;      /* (n_attr, d) explain_attr_embed; NULL = no attribute evidence */
    int n_modal;                /* K per-modality latents, 0 = none */
    const float *zm;            /* (n_items, K, d) per-modality latents z_i^k */
    const uint8_t *present;     /* (n_items, K) 1 = item has modality k */
    int k_users, k_items, k_attrs;
    int modal;                  /* 1 = add the modality element */
    int sim;                    /* EXPLAIN_SIM_* */
    float attr_temp;            /* tau */
    /* set by explain_src_init only: the arrays it allocated */
    int64_t *own_took_off;
    int32_t *own_took;
    float *own_attr_emb;
} explain_src;

/* Sets k_users, k_items, k_attrs, modal, sim, attr_temp from the explain.* keys. */
void explain_src_config(explain_src *s, const dm_cfg *cfg);
/* Everything at once for dataset d and latents h (d->n_users, dim), z (d->n_items, dim), which stay
 * the caller's: the explain.* keys, the users who took each item in interactions with split[k] ==
 * DM_TRAIN (split NULL: all) and the attribute embeddings, both allocated here (explain_src_free).
 * No modality latents: set n_modal, zm and present to add them. */
int explain_src_init(explain_src *s, const dm_cfg *cfg, const dm_dataset *d, const int8_t *split, const float *h,
                     const float *z, size_t dim);
void explain_src_free(explain_src *s);

/* CSR of the users who took each item in interactions with split[k] == DM_TRAIN (split NULL:
 * all interactions), each user once per item, ascending. *off (n_items + 1) and *users are
 * malloc'd for the caller. */
int explain_item_users(const dm_dataset *d, const int8_t *split, int64_t **off, int32_t **users);
/* emb (n_attr, d): e_a = mean of z_j over the items j holding attribute a; zero rows for
 * attributes no item holds. */
int explain_attr_embed(size_t n_items, size_t d, const float *z, size_t n_attr, const int64_t *attr_off,
                       const int32_t *attr, float *emb);

/* Sizes an evidence set for up to k_users + k_items + k_attrs + 1 elements. */
int explain_evidence_init(explain_evidence *ev, int k_users, int k_items, int k_attrs);
void explain_evidence_free(explain_evidence *ev);
/* Evidence for (u, i) given u's history hist[0..n_hist) (training items; repeats and i itself are
 * ignored). The naive twin computes every similarity and sorts all candidates. */
int explain_evidence_build(const explain_src *s, int32_t u, int32_t i, const int32_t *hist, int n_hist,
                           explain_evidence *ev);
int explain_evidence_build_naive(const explain_src *s, int32_t u, int32_t i, const int32_t *hist, int n_hist,
                                 explain_evidence *ev);
/* User evidence of u (item = -1) given u's history hist[0..n_hist) (training items; repeats are
 * ignored). The naive twin computes every similarity and sorts all candidates. */
int explain_user_evidence_build(const explain_src *s, int32_t u, const int32_t *hist, int n_hist, explain_evidence *ev);
int explain_user_evidence_build_naive(const explain_src *s, int32_t u, const int32_t *hist, int n_hist,
                                      explain_evidence *ev);
/* Verifies user evidence against u's history hist[0..n_hist): kinds grouped in order, weights
 * decreasing within a kind, neighbours other users who took a history item, items in the history,
 * attributes held by a history item with the right count, the modality present in a history item.
 * DM_EINPUT names the first bad element. */
int explain_user_evidence_check(const explain_src *s, const explain_evidence *ev, const int32_t *hist, int n_hist);
/* sim of two d-vectors as explain_src.sim defines it. */
double explain_sim(int sim, const float *a, const float *b, size_t d);

/* Feature rows of the elements for the evidence encoder: kept elements (keep NULL = all, else
 * keep[j] != 0) in order, kind[m], x[m] (d) = h_id / z_id / attr_emb[id] / zm[item, id] (user
 * evidence: ev->mfeat) and w[m] = weight. *n_out = rows written (<= ev->n). */
void explain_evidence_features(const explain_src *s, const explain_evidence *ev, const uint8_t *keep, int8_t *kind,
                               float *x, float *w, int *n_out);

/* Fixed-width storage: row of `width` slots (explain_evidence_width), unused slots kind -1, id -1,
 * weight 0, count 0. Unpack sizes ev from the row (ev must be initialised with cap >= used). */
int explain_evidence_width(int k_users, int k_items, int k_attrs);
int explain_evidence_pack(const explain_evidence *ev, int width, int8_t *kind, int32_t *id, float *weight,
                          int32_t *count);
int explain_evidence_unpack(explain_evidence *ev, int32_t user, int32_t item, int width, const int8_t *kind,
                            const int32_t *id, const float *weight, const int32_t *count);
/* Verifies an evidence set: kinds grouped in order, ids in range, neighbour users took i and are
 * not u, items are not i, attributes belong to i, the modality is present for i, weights finite,
 * each group sorted by decreasing weight. DM_EINPUT names the first bad element. */
int explain_evidence_check(const explain_src *s, const explain_evidence *ev);

#endif
