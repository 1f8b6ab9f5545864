/* pq_model.h: product-quantised item tables (src/pq/pq.h) in pq.h5, and their scoring by eval as
 * the registry's <model>@pq (align@pq, sasrec@pq).
 *
 * pq.h5 (format "dynmm-pq" v1), per quantised model <model> of pq.models:
 *   /<model>/codebook   float32 (M K, ds): centroid k of sub-space m in row m K + k
 *   /<model>/codes      uint8 (n_items, M)
 *   /<model>/rotation   float32 (d, d), only with pq.opq > 0 or pq.metric = "query": the codes
 *                       quantise x rotation, and a query q is scored as q rotation (pq.h, OPQ)
 *   /<model>/query_rotation  float32 (d, d), only with pq.metric = "query": a query q is scored as
 *                       q query_rotation instead (pq.h, the queries' metric)
 *   attributes of /<model>: m, k, d, source (file), item_table (dataset), iters, opq (rounds, 0 =
 *   none), metric ("l2", "query"), query_dirs (the metric's directions above pq.query_floor, 0 for
 *   l2), train_items,
 *   rel_err (sum |x - x^|^2 / sum |x|^2 over the training items), empty_clusters, bytes_codes, bytes_floats, train_seconds, and the
 *   recall@10 of the exact top 10 over a sample of test users (recall_users, recall_rerank (R),
 *   recall_at10 (per R)).
 *
 * Scoring (<model>@pq): a user's ADC scores over the whole catalogue; with pq.rerank = R > 0 the R
 * best items outside the user's history get their exact float score q . x_i and stand above every
 * other item, which keeps its ADC order, shifted down by one constant (one float rounding each);
 * R >= n_items is the exact scorer of <model> itself (bitwise its rows). The user states and, for
 * re-ranking, the float items come from <model>'s own file (align.h5, cf.h5), which must be the one
 * pq.h5 was made from (checked by stage hash).
 */
#ifndef DM_PQ_MODEL_H
#define DM_PQ_MODEL_H

#include "models.h"

#include "../src/pq/pq.h"

#define PQ_FORMAT "dynmm-pq"

/* A latent table pq can quantise: the model, its file of run.dir and its datasets. */
typedef struct {
    const char *model;   /* "align" */
    const char *file;    /* "align.h5" */
    const char *item;    /* "/align/z_base" (n_items, d) */
    const char *state[3]; /* [DM_VALID], [DM_TEST]: the user states (n_users, d) */
} pq_source;

/* The source of `model`, or NULL. */
const pq_source *pq_source_find(const char *model);
/* "align, sasrec" */
const char *pq_source_names(void);

/* Reads /<model>/codebook and /<model>/codes of an open pq.h5 (checked against n_items and d). */
int pq_read(h5file *f, const char *model, size_t n_items, size_t d, pq_codebook *cb, uint8_t **codes);

/* DM_ECONFIG naming the key when pq.k is above PQ_KMAX (a code is one byte). */
int pq_check_k(const dm_cfg *cfg);

/* Codebooks cb (made by pq_init) of the table e (n, cb->D; every rank holds all of it) under pq.iters,
 * pq.sample (evenly spaced training items), pq.opq and pq.metric, trained data parallel over even
 * shards (bitwise the same at any rank count), then every item encoded: *codes (n, M) on every rank
 * (the caller frees it); *ts the training's statistics, *n_train its items. With pq.metric = "query"
 * the metric is the second moment of the user states q (nq, cb->D), this rank's share of Nq rows
 * (any sharding gives the same bits), and *q_dirs counts its directions above pq.query_floor (0
 * otherwise; q is then not read). Collective. */
int pq_fit_table(par_ctx *ctx, const dm_cfg *cfg, const float *e, size_t n, const float *q, size_t nq, size_t Nq, uint64_t seed,
                 pq_codebook *cb, uint8_t **codes, pq_train_stats *ts, size_t *n_train, int *q_dirs);

/* A scorer over tables in memory (ev_score_fn pq_scorer_score, the one of <model>@pq): takes over
 * cb and codes (n_items, M) (freed with the scorer, also on failure), borrows lat (the user states;
 * for R > 0 the float items lat->e, which must outlive it); R = the re-ranked top (pq.rerank). */
int pq_scorer_new(pq_codebook *cb, uint8_t *codes, const model_latents *lat, size_t R, size_t n_inter, void **out);
int pq_scorer_score(void *p, const ev_split *s, const size_t *users, size_t B, float *scores);
/* Its candidate scorer (ev_items_fn): the listed items' scores, the same bits as their entries of
 * pq_scorer_score's rows, when those do not depend on the rest of the row: R = 0 (ADC alone: the
 * float table's sum in column order, or the fast scan's integer sum) or R >= n_items (exact).
 * With 0 < R < n_items the re-ranked top R is a property of the whole row: DM_EINTERNAL, and
 * pq_scorer_has_items says so first. */
int pq_scorer_items(void *p, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n, float *scores);
int pq_scorer_has_items(const void *p);
void pq_scorer_free(void *p);

/* Registry hooks of align@pq and sasrec@pq. */
int pq_model_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml);
void pq_model_unload(model_loaded *ml);

#endif
