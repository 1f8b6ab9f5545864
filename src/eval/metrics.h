/* metrics.h: per-user ranking metrics (Hit@K, NDCG@K, Recall@K, MRR) with exact tie handling.
 *
 * A user is scored against a set of competing candidates: either the whole catalogue minus the
 * user's history (full ranking) or the target plus N sampled negatives (sampled protocols). The
 * candidates are ranked by score, descending. One user's result is a row of doubles laid out by a
 * metrics_spec (see "Row layout"); the evaluation stage fills one row per user in its shard and
 * gathers the rows, so every function here works on one user and never sees ranks.
 *
 * Ties. Candidates with equal scores form a tied block. For a block of B candidates holding j
 * targets that G candidates strictly outscore:
 *   METRICS_TIES_EXPECTED     the expectation over a uniformly random order of the block (the
 *                             default). Each target's rank is uniform on G+1 .. G+B, and the first
 *                             target's position F in the block has P(F = f) = C(B-f, j-1) / C(B, j).
 *                             The metrics are exact expectations (E[1/log2(1+rank)], not the
 *                             discount at the mean rank), so a constant-score model gets exactly
 *                             the metrics of a random ranking (Hit@K = K/n for one target).
 *   METRICS_TIES_PESSIMISTIC  every tied non-target ahead of the targets: the block's targets sit
 *                             at G+B-j+1 .. G+B (the minimum of every metric over tie orders).
 *   METRICS_TIES_OPTIMISTIC   the targets first: G+1 .. G+j (the maximum).
 *
 * Several targets (m distinct targets, e.g. temporal splits):
 *   Recall@K = E[#targets ranked <= K] / m
 *   NDCG@K   = E[sum over targets ranked <= K of 1/log2(1+rank)] / IDCG@K,
 *              IDCG@K = sum_{i=1..min(m,K)} 1/log2(1+i)
 *   Hit@K    = P(at least one target ranked <= K)
 *   MRR      = E[1 / rank of the highest-ranked target]   (not cut at K)
 * Targets compete with each other (a higher-scored target counts in G of a lower one). With one
 * target, Recall@K == Hit@K and MRR = E[1/rank].
 *
 * Full ranking. Items excluded for the user (train items; train + valid items when scoring test)
 * never compete; a target listed among the excluded items is still a target (a repeated item
 * counts once as a target). Duplicate ids in either list are harmless. The kernel makes one pass
 * over the score vector (no sort): each non-excluded score is compared with the distinct target
 * scores; the excluded items are then subtracted. Cost O(n_items * log(#distinct target scores)
 * + n_excluded + n_targets * |ks|) per user, plus O(B) for the expected MRR of a tied top block.
 * metrics_full_naive is the straightforward reference (per target, a scan with a linear search of
 * the excluded list) with the same signature; tests hold the two together.
 *
 * Scores are float (what the scorers produce). A NaN among the competing scores or the target
 * scores is an error (DM_ENUM); excluded items may hold anything (e.g. -inf or NaN masks).
 *
 * Row layout (ncols = 3 * nk + 1 doubles per user):
 *   [hit@k_0 .. hit@k_{nk-1}, ndcg@k_0 .., recall@k_0 .., mrr]
 * metrics_col() gives a column, metrics_col_name() its name ("ndcg@10").
 *
 * Memory: a metrics_spec owns its copy of the cutoffs; a metrics_ws owns its scratch (one per
 * thread: the functions are reentrant given distinct workspaces). Output rows belong to the caller.
 *
 * Under MPI (mpi/ does this; the kernels never see ranks): each rank takes a block of users
 * (dm_shard_even / dm_shard_weighted), draws their sampled candidates with metrics_sample.h (keyed
 * per user, so the sets do not depend on the rank count), fills one row per user, and the rows are
 * gathered (or written at the users' offsets) into a (n_users, ncols) matrix. Per-user rows are what
 * the paired tests in src/stats need; a table's numbers are the column means over users.
 */
#ifndef DM_METRICS_H
#define DM_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    METRICS_TIES_EXPECTED = 0,
    METRICS_TIES_PESSIMISTIC = 1,
    METRICS_TIES_OPTIMISTIC = 2
} metrics_ties;

typedef enum { METRICS_HIT = 0, METRICS_NDCG = 1, METRICS_RECALL = 2, METRICS_MRR = 3 } metrics_kind;

typedef struct {
    size_t nk;         /* number of cutoffs */
    int64_t *ks;       /* (nk) cutoffs, each >= 1, in the caller's order */
    metrics_ties ties;
    size_t ncols;      /* 3 * nk + 1 */
} metrics_spec;

/* Copies ks (each >= 1, no duplicates; DM_EINPUT otherwise). */
int metrics_spec_init(metrics_spec *s, const int64_t *ks, size_t nk, metrics_ties ties);
void metrics_spec_free(metrics_spec *s);
/* Column of metric `kind` at cutoff index ki (ki ignored for METRICS_MRR). */
size_t metrics_col(const metrics_spec *s, metrics_kind kind, size_t ki);
/* Writes "hit@10", "ndcg@10", "recall@10" or "mrr" into buf (snprintf semantics). */
int metrics_col_name(const metrics_spec *s, size_t col, char *buf, size_t cap);
/* "expected" / "pessimistic" / "optimistic" <-> enum; parse returns DM_ECONFIG on an unknown name. */
int metrics_ties_parse(const char *name, metrics_ties *out);
const char *metrics_ties_name(metrics_ties t);

/* Per-user scratch, sized for a catalogue of n_items. mark is all zero between calls. */
typedef struct {
    size_t n_items;
    uint8_t *mark;       /* (n_items) per-item flags, reset before every return */
    size_t cap;          /* capacity of the per-target arrays below */
    float *tscore;       /* (cap) distinct target scores, descending */
    int64_t *between;    /* (cap + 1) competitors strictly between consecutive target scores */
    int64_t *eq;         /* (cap) competitors equal to each target score (targets included) */
    int64_t *ntarget;    /* (cap) targets holding each distinct score */
    int64_t *G, *B;      /* (cap) block description handed to metrics_from_blocks */
    int32_t *list;       /* (list_cap) sampler scratch: the eligible items */
    size_t list_cap;
} metrics_ws;

int metrics_ws_init(metrics_ws *w, size_t n_items);
void metrics_ws_free(metrics_ws *w);

/* The primitive every protocol reduces to. nblocks tied blocks holding targets, in any order:
 * block b has G[b] competitors scored strictly above it, B[b] candidates in the block and j[b]
 * targets among them (1 <= j[b] <= B[b]). m = sum of j. Writes row[ncols]. Exposed so a caller
 * that counts over item shards can reduce the counts and finish here. */
int metrics_from_blocks(const metrics_spec *s, const int64_t *G, const int64_t *B, const int64_t *j,
                        size_t nblocks, double *row);

/* Full ranking: scores (n_items) over the whole catalogue (n_items must equal w->n_items);
 * targets (n_targets >= 1) and excluded (n_excluded, may be 0) are item ids in [0, n_items).
 * Writes row[ncols]. */
int metrics_full(const metrics_spec *s, metrics_ws *w, const float *scores, size_t n_items,
                 const int32_t *targets, size_t n_targets, const int32_t *excluded,
                 size_t n_excluded, double *row);
/* Reference for metrics_full: same signature and results (to rounding), no cleverness. */
int metrics_full_naive(const metrics_spec *s, metrics_ws *w, const float *scores, size_t n_items,
                       const int32_t *targets, size_t n_targets, const int32_t *excluded,
                       size_t n_excluded, double *row);

/* Full ranking over item shards: each rank holds the scores of items [i0, i0 + n) and the counts
 * metrics_full makes in its one pass are summed over the shards, so the row is metrics_full's
 * exactly (the same integer counts reach the same metrics_from_blocks).
 *   metrics_shard_targets  the user's m distinct target scores (every rank the same values, a
 *                          repeated target item given once) into w, sorted and merged; returns d,
 *                          the number of distinct scores (0 when out of memory: DM_ERR is set)
 *   metrics_shard_count    the shard's counts into cnt (2 d + 2 int64): competitors strictly between
 *                          consecutive target scores [0 .. d], equal to each [d + 1 .. 2 d], NaN
 *                          scores [2 d + 1]; targets and excluded ids are global (those outside
 *                          the shard are skipped). w is made for n items (metrics_ws_init(w, n)).
 *   metrics_shard_finish   the row from the counts summed over every shard; DM_ENUM for NaNs.
 * A NaN target score is the caller's to refuse (as metrics_full does). */
size_t metrics_shard_targets(metrics_ws *w, const float *tscores, size_t m);
int metrics_shard_count(metrics_ws *w, size_t d, const float *scores, size_t i0, size_t n, const int32_t *targets,
                        size_t n_targets, const int32_t *excluded, size_t n_excluded, int64_t *cnt);
int metrics_shard_finish(const metrics_spec *s, metrics_ws *w, size_t d, const int64_t *cnt, double *row);

/* Sampled protocol (1 + N): the target's score against N negative scores (N may be 0).
 * Writes row[ncols]. */
int metrics_sampled(const metrics_spec *s, float target, const float *neg, size_t n_neg, double *row);
/* Sampled protocol with m targets (m + N candidates: every target and the shared negatives). */
int metrics_sampled_multi(const metrics_spec *s, metrics_ws *w, const float *tscores, size_t m,
                          const float *neg, size_t n_neg, double *row);

/* A batch of users scored over the whole catalogue, users in parallel (OpenMP, one workspace per
 * thread, allocated here). scores (n_users, n_items) row-major; the targets of user u are
 * targets[target_off[u] .. target_off[u+1]) and its excluded items excluded[excl_off[u] ..
 * excl_off[u+1]) (excl_off NULL = nothing excluded); offsets are (n_users + 1). rows
 * (n_users, ncols). A user without targets gets a row of NaN (the caller decides whether that is an
 * error). On failure the error names the first failing user of the batch. */
int metrics_full_batch(const metrics_spec *s, const float *scores, size_t n_users, size_t n_items,
                       const int64_t *target_off, const int32_t *targets, const int64_t *excl_off,
                       const int32_t *excluded, double *rows);

#endif
