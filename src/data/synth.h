/* synth.h: the built-in generator of realistic recommendation data (the embedded default).
 *
 * A seeded world of item clusters with latent factors and Zipf popularity; users with latent
 * tastes near one cluster, a share of whom shift to another cluster at a drift time (planted drift
 * a static model misses); sequences from a choice model that mixes taste, popularity and affinity
 * to the previous item (the sequential signal SASRec can learn); titles, brands, categories and
 * prices from per-cluster vocabularies; text, visual and audio features that are noisy random
 * projections of the item factors at a set SNR, each missing for a set share of items.
 *
 * Every user's sequence comes from a generator keyed by (seed, user), so any block of users can be
 * generated on any rank and the data do not depend on the rank count. Original ids are decimal
 * strings ("0", "1", ...), so dense ids equal them.
 */
#ifndef DM_SYNTH_H
#define DM_SYNTH_H

#include "dataset.h"

typedef struct {
    size_t users, items;
    int clusters, latent;
    double mean_len, zipf, temperature, seq_weight;
    double drift_share, drift_at;
    int64_t days, start;           /* span in days, first second (Unix time) */
    size_t dim[3];                 /* text, visual, audio feature dims (0 = none) */
    double snr_db[3], missing[3];
    double title_missing;
    uint64_t seed;
} dm_synth_opts;

typedef struct {
    dm_synth_opts o;
    float *mu;            /* (clusters, latent) cluster centres */
    float *v;             /* (items, latent) item factors */
    int32_t *cluster;     /* (items) */
    double *pop;          /* (items) popularity weight */
    /* alias tables for popularity sampling: global and per cluster */
    double *a_prob;       /* (items) global */
    int32_t *a_alias;     /* (items) */
    int64_t *c_off;       /* (clusters + 1) items of cluster c are c_items[c_off[c]..c_off[c+1]) */
    int32_t *c_items;     /* (items) */
    double *c_prob;       /* (items) per-cluster alias tables, same layout as c_items */
    int32_t *c_alias;     /* (items) indices local to the cluster */
    double *cluster_pop;  /* (clusters) cumulative share of users by primary cluster */
    int64_t drift_ms;
} dm_synth_world;

int dm_synth_world_init(const dm_synth_opts *o, dm_synth_world *w);
void dm_synth_world_free(dm_synth_world *w);
/* Generates users [lo, hi) into `out` (record order = user, then time) and their ground truth
 * (arrays of hi - lo entries). */
int dm_synth_users(const dm_synth_world *w, size_t lo, size_t hi, dm_raw *out, uint8_t *drift, int32_t *before,
                   int32_t *after);
/* Titles, brands, categories and prices of all items (ids "0".."items-1"). */
int dm_synth_meta(const dm_synth_world *w, dm_meta *out);
/* Features of modality m (DM_MOD_*) for all items: (items, dim) with zeros where absent. */
int dm_synth_features(const dm_synth_world *w, int m, float **feat, uint8_t **present);

#endif
