/* adapter_replay.h: the reservoir replay buffer of the online adapter and the keyed plan of each
 * training batch (window records mixed with replayed ones, plus negatives).
 *
 * Reservoir (Vitter's algorithm R): records are offered one at a time; the first `cap` fill the
 * buffer, record number s (0-based, counted over all windows) replaces slot j = uniform{0..s} when
 * j < cap. After N offers every record is in the buffer with probability min(1, cap / N). The
 * draw for the i-th record offered in window w comes from dm_rng_key(seed, w, i), so the buffer is
 * a function of the record sequence alone: every rank that offers the same records in the same
 * global order (e.g. the window's interactions in dataset order) holds the same buffer, without
 * communication. Offer window w's records after training on window w, so the buffer holds older
 * windows only.
 *
 * Batch plan: the global batch of step `step` of window w has G examples; the first G - R come
 * from the window's records, the last R = round(mix * G) from the buffer (R = 0 when mix = 0 or
 * the buffer is empty: the replay ablation). Example j draws its record with a generator keyed by
 * (seed, w, step, j) and its K negatives uniformly from the items other than its positive (any
 * item when n_items == 1). Every rank computes the same plan and takes its block of examples
 * (dm_shard_even), so the global step is the same at any rank count.
 */
#ifndef DM_ADAPTER_REPLAY_H
#define DM_ADAPTER_REPLAY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t user, item; /* dense ids */
    int64_t time;       /* ms */
} adapter_record;

typedef struct {
    size_t cap;           /* capacity (records) */
    size_t n;             /* records held (min(cap, seen)) */
    uint64_t seen;        /* records offered so far */
    uint64_t seed;
    uint64_t window;      /* window of the last offer */
    uint64_t win_offered; /* records offered in that window (the key's record index) */
    adapter_record *rec;  /* (cap) */
} adapter_reservoir;

/* cap >= 1; the buffer starts empty. adapter_reservoir_free releases it and zeroes the struct. */
int adapter_reservoir_init(adapter_reservoir *r, size_t cap, uint64_t seed);
void adapter_reservoir_free(adapter_reservoir *r);
/* Offers n records of window `window` in order (several calls per window continue the index). */
void adapter_reservoir_add(adapter_reservoir *r, uint64_t window, const adapter_record *recs,
                           size_t n);

typedef struct {
    int negatives;  /* K per example */
    int n_items;    /* negatives are drawn from 0..n_items-1 */
    double mix;     /* fraction of each batch drawn from the buffer, [0, 1] */
    uint64_t seed;
} adapter_plan_config;

/* Step index reserved for the Fisher sample of a window (a plan with buf = NULL). */
#define ADAPTER_STEP_FISHER UINT64_C(0xffffffff)

/* The global batch of G examples of (window, step): user (G), pos (G), neg (G, K). win holds the
 * window's nwin records; buf may be NULL (no replay). With nwin = 0 every example is replayed; an
 * empty window with an empty buffer is a caller bug (assertion) unless G = 0. Returns the number R
 * of replayed examples (the last R). */
size_t adapter_plan_batch(const adapter_plan_config *c, const adapter_record *win, size_t nwin,
                          const adapter_reservoir *buf, uint64_t window, uint64_t step, size_t G,
                          int32_t *user, int32_t *pos, int32_t *neg);

#endif
