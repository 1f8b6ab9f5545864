/* evalcore.h: scoring users of one split under one candidate protocol, for any model.
 *
 * A model is a score function: for a batch of users it fills (B, n_items) scores over the whole
 * catalogue, from the users' history for that split. History and targets follow the split's roles:
 * for split s, the targets of user u are the interactions with role s and the history those with a
 * smaller role (valid: train items; test: train and valid items), in the stored (time) order.
 *
 *   full   every item competes except the history (metrics_full)
 *   uniN   the targets against the user's N negatives (d->cand, drawn by cands_draw for a block of
 *          users covering [lo, hi))
 *   popN   likewise with popularity-sampled negatives
 *
 * Users are the caller's block [lo, hi) (its rank's shard); rows are (hi - lo, ncols) with NaN rows
 * for users that take no part (no target in the split, or no stored negatives). ev_mean reduces over
 * ranks. All ranks call the collective functions together.
 */
#ifndef DM_EVALCORE_H
#define DM_EVALCORE_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"
#include "../src/eval/metrics.h"

typedef struct {
    const dm_dataset *d;
    const int8_t *roles;  /* (n_inter) DM_TRAIN/VALID/TEST */
    int split;            /* DM_VALID or DM_TEST */
    const uint8_t *keep;  /* (n_users) users sampled for scoring (eval.user_fraction); NULL = every user */
} ev_split;

/* History (role < split) and targets (role == split) of user u; return counts. `out` needs room for
 * the user's interactions. */
size_t ev_history(const ev_split *s, size_t u, int32_t *out);
size_t ev_targets(const ev_split *s, size_t u, int32_t *out);

typedef int (*ev_score_fn)(void *model, const ev_split *s, const size_t *users, size_t B, float *scores);
/* Optional, beside an ev_score_fn: the scores of listed items only, scores[b * n + k] = the score of
 * item items[b * n + k] for users[b], the same bits as the ev_score_fn's entry of that item (so rows
 * do not change). Sampled protocols then score a user's targets and negatives instead of its whole
 * row over the catalogue: 1+99 costs 100 scores a user, not n_items. */
typedef int (*ev_items_fn)(void *model, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n, float *scores);

/* A block of scores (users x items) stays under this size: it bounds the users scored at once. */
#define EV_BLOCK_BYTES ((size_t)64 << 20)

/* Scores users [lo, hi) of split s under `protocol` ("full", "uni99", ...) into rows. */
int ev_score_users(const ev_split *s, const metrics_spec *spec, const char *protocol, ev_score_fn fn, void *model,
                   size_t lo, size_t hi, size_t batch, double *rows);
/* The same with a model's candidate scorer (NULL: as ev_score_users): under a sampled protocol the
 * users' targets and negatives are scored by items_fn, in blocks of up to `batch` users bounded by
 * EV_BLOCK_BYTES of candidate scores; "full" scores whole rows by fn. The same rows either way. */
int ev_score_users_items(const ev_split *s, const metrics_spec *spec, const char *protocol, ev_score_fn fn, ev_items_fn items_fn,
                         void *model, size_t lo, size_t hi, size_t batch, double *rows);
/* The users of [lo, hi) that take part in split s under `protocol` (a target in the split, and stored
 * negatives for a sampled protocol) into users (room for hi - lo), their count into *nu, the longest
 * interaction list of the block into *maxlen (>= 1) and the protocol's candidate sets into *cand
 * (NULL for "full"). DM_EINTERNAL when the protocol's sets were not drawn for these users. */
int ev_block_users(const ev_split *s, const char *protocol, size_t lo, size_t hi, const dm_cand **cand, size_t *users,
                   size_t *nu, size_t *maxlen);
/* The first (lowest) failing user of a parallel loop and its message, which is thread-local
 * (src/core/err.h): ev_err_note inside the loop's critical section, ev_err_raise after the loop
 * sets the error in the calling thread ("user U: message") and returns its code (DM_OK if none). */
typedef struct {
    int code;
    size_t user;
    char msg[256];
} ev_err;
void ev_err_note(ev_err *e, int rc, size_t user);
int ev_err_raise(const ev_err *e);
/* The users eval.user_fraction samples, for ev_split.keep: keep (n_users) = 1 where user u's uniform
 * draw, keyed by the candidate seed (cands_seed) and u alone, is below the fraction; *keep = NULL when
 * the fraction is 1 (every user). The caller frees *keep. Not collective: the same on every rank. */
int ev_user_sample(const dm_cfg *cfg, size_t n_users, uint8_t **keep);
/* The row of a user under a sampled protocol from f: its m target scores, then its n negatives'
 * (metrics_sampled for one target, metrics_sampled_multi with ws for more). */
int ev_sampled_row(const metrics_spec *spec, metrics_ws *ws, const float *f, size_t m, size_t n, double *row);
/* Column means over the non-NaN rows of all ranks; *count = users scored. */
int ev_mean(par_ctx *ctx, const metrics_spec *spec, const double *rows, size_t n, double *mean, int64_t *count);

/* The metrics of eval.ks and eval.ties into spec (the caller frees it with metrics_spec_free);
 * DM_ECONFIG for more than EV_MAX_KS cutoffs or an unknown tie rule, DM_EINPUT for a bad cutoff.
 * Not collective: the same result on every rank. */
#define EV_MAX_KS 64
int ev_spec_config(const dm_cfg *cfg, metrics_spec *spec);
/* The columns of Hit@10 and NDCG@10 in a row of spec (those of the first cutoff when 10 is not one
 * of them); returns the cutoff they are at. */
int64_t ev_cols_at10(const metrics_spec *spec, size_t *hit, size_t *ndcg);
/* The names of spec's columns ("hit@10", ...) as the string table /columns of f. Collective. */
int ev_write_columns(par_ctx *ctx, h5file *f, const metrics_spec *spec);

#endif
