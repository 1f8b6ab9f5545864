/* metrics_sample.h: seeded negative candidates for the sampled protocols (1 + N).
 *
 * Keying. The N negatives of user u under a protocol are drawn from a generator seeded with
 * dm_rng_key(seed, u, protocol) (src/core/rng.h), where u is the global user id and `protocol`
 * names the candidate set, conventionally metrics_protocol_key("uni99/test"). The draw depends only
 * on (seed, u, protocol, the catalogue size, the user's item *set*, N and the popularity table):
 * not on the rank count, on which other users a rank holds, on the order users are processed in,
 * or on the order of the user's items. Different protocol names give independent sets.
 *
 * Both samplers draw N *distinct* items that are not in the user's item set (everything the user
 * touched in train/valid/test: the caller passes the union, the targets included). When fewer
 * than N items are eligible they fail with DM_EINPUT naming the user (never an endless loop).
 *
 *   metrics_sample_uniform  uniform over the eligible items. Rejection sampling while at least a
 *                           quarter of the catalogue is eligible, otherwise a partial Fisher-Yates
 *                           shuffle of the eligible list (O(n_items)).
 *   metrics_sample_pop      proportional to a popularity weight (e.g. train counts, or counts raised
 *                           to a power), without replacement: successive draws from the alias
 *                           table (Walker/Vose), rejecting the user's items and repeats. Items of
 *                           weight 0 are never drawn. If the user's items hold so much of the mass
 *                           that rejection stalls (64 N + 1024 draws), the whole set is redrawn by
 *                           Efraimidis-Spirakis keys u^(1/w), which has the same distribution
 *                           (successive sampling proportional to weight).
 *
 * Negatives are written in draw order. The workspace (metrics.h) provides the per-item marks and
 * scratch; one workspace per thread.
 */
#ifndef DM_METRICS_SAMPLE_H
#define DM_METRICS_SAMPLE_H

#include "../core/rng.h"
#include "metrics.h"

#include <stddef.h>
#include <stdint.h>

/* Stable 64-bit key of a protocol name (dm_hash_bytes of the string). */
uint64_t metrics_protocol_key(const char *name);

/* neg (n_neg) receives distinct items of [0, w->n_items) \ user_items. */
int metrics_sample_uniform(metrics_ws *w, uint64_t seed, int64_t user, uint64_t protocol,
                           const int32_t *user_items, size_t n_user_items, size_t n_neg,
                           int32_t *neg);

/* Alias table over n item weights (finite, >= 0, at least one > 0). Owns its arrays. */
typedef struct {
    size_t n;
    size_t n_pos;    /* items with weight > 0 */
    double *prob;    /* (n) acceptance probability of slot i */
    int32_t *alias;  /* (n) the other item of slot i */
    double *p;       /* (n) normalised weights (sum 1) */
} metrics_alias;

int metrics_alias_init(metrics_alias *a, const double *weight, size_t n);
void metrics_alias_free(metrics_alias *a);
/* One draw from the table (with replacement). */
int32_t metrics_alias_draw(const metrics_alias *a, dm_rng *rng);

/* neg (n_neg) receives distinct items with weight > 0 outside user_items. a->n == w->n_items. */
int metrics_sample_pop(metrics_ws *w, const metrics_alias *a, uint64_t seed, int64_t user,
                       uint64_t protocol, const int32_t *user_items, size_t n_user_items,
                       size_t n_neg, int32_t *neg);

#endif
