/* adapter_summary.h: window summaries s_i (items) and s_u (users), the "what happened recently"
 * input of the online adapter (DESIGN.md idea 1).
 *
 * A window is a set of interactions (user, item, time), given as parallel arrays (adapter_events).
 * The summaries of window t are computed from its interactions ("cur") and those of window t - 1
 * ("prev", may be empty), with the reference time t_end = the end of window t. They are pure
 * functions of the arrays (every rank holds the whole window and gets bitwise the same result,
 * however the driver shards users); the order of the arrays matters only to break time ties
 * (earlier array position = earlier).
 *
 * Features (each switchable by a bit of `features`; d_s = the number of enabled columns, always in
 * this column order). c_t(x) = number of interactions of item/user x in cur, c_{t-1}(x) in prev:
 *   count    log(1 + c_t(x))
 *   trend    log(1 + c_t(x)) - log(1 + c_{t-1}(x))      (= log((1 + c_t) / (1 + c_{t-1})))
 *   recency  exp(-(t_end - last(x)) / tau)  where last(x) is the latest time of x in cur or prev
 *            (0 when x appears in neither; t_end - last is clamped at 0); tau = tau_ms, or the
 *            window length t_end - t_begin when tau_ms <= 0 (1 ms when that is not positive)
 *   cooc     items: log(1 + P_i) with P_i = sum_u m_u(i) (|R_u| - m_u(i)), where R_u (the user's
 *            recent items) = the last `recent` interactions of u in cur in time order and m_u(i) =
 *            how often i occurs in R_u: the number of ordered (i, other item) position pairs
 *            inside users' recent histories, i.e. how much the item co-occurs with other items.
 *            users: the mean of the item summaries s_j (all ds_item enabled item columns,
 *            including the item cooc column) over the positions of R_u (zeros when R_u is empty):
 *            how popular / trending / fresh / connected the user's recent items are.
 * Item summary: [count, trend, recency, cooc] restricted to the enabled ones (ds_item columns).
 * User summary: [count, trend, recency] (the user versions; enabled ones) followed, when cooc is
 * enabled, by the ds_item-wide mean item summary: ds_user = #enabled of {count, trend, recency}
 * + (cooc ? ds_item : 0).
 *
 * Use in the prequential protocol (no leakage): the latents that score window w's interactions
 * use the summaries of window w - 1 (cur = window w - 1, prev = window w - 2, t_end =
 * window_start[w]), both when serving window w and when training on it.
 *
 * Items are dense ids 0..n_items-1 and users 0..n_users-1 (the dataset's); ids out of range are
 * DM_EINPUT naming the array position. Sums are taken in double; integer counts are exact.
 */
#ifndef DM_ADAPTER_SUMMARY_H
#define DM_ADAPTER_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

enum {
    ADAPTER_FEAT_COUNT = 1,
    ADAPTER_FEAT_TREND = 2,
    ADAPTER_FEAT_RECENCY = 4,
    ADAPTER_FEAT_COOC = 8,
    ADAPTER_FEAT_ALL = 15
};

/* One window's interactions: parallel arrays of n entries. */
typedef struct {
    size_t n;
    const int32_t *user; /* (n) 0..n_users-1 */
    const int32_t *item; /* (n) 0..n_items-1 */
    const int64_t *time; /* (n) ms since the epoch */
} adapter_events;

typedef struct {
    unsigned features; /* ADAPTER_FEAT_* bits */
    int recent;        /* |R_u| bound: the last `recent` interactions of each user (>= 1) */
    double tau_ms;     /* recency time scale in ms; <= 0 = the window length */
} adapter_summary_config;

/* Widths of the item and user summaries for a feature mask. */
void adapter_summary_dims(unsigned features, int *ds_item, int *ds_user);
/* Feature mask from names ("count", "trend", "recency", "cooc"); DM_ECONFIG naming an unknown
 * name or a repeated one. n = 0 gives mask 0 (no summaries: the adapter sees e_cf / r_u alone). */
int adapter_parse_features(const char *const *names, size_t n, unsigned *mask);
/* Name of feature bit k (0..3). */
const char *adapter_feature_name(int k);

/* s_item (n_items, ds_item) and s_user (n_users, ds_user), row-major, overwritten. prev may be
 * NULL (no previous window). Allocates its scratch (O(n + n_items + n_users)) per call: called
 * once per window. DM_EINPUT for an id out of range, DM_ENOMEM. */
int adapter_summaries(const adapter_summary_config *c, int n_users, int n_items,
                      const adapter_events *cur, const adapter_events *prev, int64_t t_begin,
                      int64_t t_end, float *s_item, float *s_user);
/* The naive reference: the definitions above as direct loops (per-user selection of R_u by
 * repeated scans), O(n^2); same signature and results (tests only). */
int adapter_summaries_naive(const adapter_summary_config *c, int n_users, int n_items,
                            const adapter_events *cur, const adapter_events *prev,
                            int64_t t_begin, int64_t t_end, float *s_item, float *s_user);

#endif
