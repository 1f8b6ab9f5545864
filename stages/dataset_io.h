/* dataset_io.h: the dataset file (dataset.h5), format "dynmm-dataset" version 2.
 *
 * Layout (n_u users, n_i items, n interactions, n_a attributes, W windows):
 *   /users/id/{chars,offsets}     original user ids (string table, n_u)
 *   /users/offsets                int64 (n_u + 1): user u's interactions are rows [off[u], off[u+1])
 *   /inter/item  int32 (n)        dense item id, per user in time order (ties in input order)
 *   /inter/time  int64 (n)        ms since epoch; the input position when the source has no times
 *   /split/loo, /split/temporal   int8 (n): 0 train, 1 valid, 2 test; /split/given when pre-split
 *   /window/id   int32 (n)        streaming window, -1 = before the first window
 *   /window/start int64 (W + 1)   first ms of each window, then the end (exclusive)
 *   /items/id, /items/title, /items/brand, /items/category   string tables (n_i)
 *   /items/price float32 (n_i, NaN = unknown), /items/has_title uint8 (n_i)
 *   /items/attr_offsets int64 (n_i + 1), /items/attr int32: attribute ids of each item
 *   /attrs/name (string table), /attrs/kind int8 (0 brand, 1 category, 2 price, 3 other), /attrs/level int8
 *   /modal/<text|visual|audio>/features float32 (n_i, dim), /modal/<m>/present uint8 (n_i)
 *   /synth/...  ground truth of generated data (drift_user, taste_before, taste_after, item_cluster)
 * Root attributes: counts, has_time, the split cut times, window settings, the input sources with
 * their sha256, and the provenance every dynmm file carries (h5_write_provenance).
 *
 * ds_write is collective: rank r writes the users of its interaction-balanced block and the items
 * of its even block. ds_read reads the whole dataset on every rank.
 */
#ifndef DM_DATASET_IO_H
#define DM_DATASET_IO_H

#include "../mpi/h5io.h"

#include "../src/data/dataset.h"

#define DS_FORMAT "dynmm-dataset"
#define DS_VERSION 2 /* 1 also held /candidates (ignored when read) */

int ds_write(par_ctx *ctx, const dm_dataset *d, const dm_cfg *cfg, const char *path, const char *stage,
             const char *stage_hash, double wall_seconds);
int ds_read(par_ctx *ctx, const char *path, dm_dataset *d);
/* The block of users rank ctx->rank writes (balanced by interaction count). */
void ds_user_block(par_ctx *ctx, const dm_dataset *d, size_t *lo, size_t *hi);

/* The dm_process options from the config (data, split, window groups). */
int ds_process_opts(const dm_cfg *cfg, dm_process_opts *o);
/* The config groups a dataset depends on (for the stage hash). */
extern const char *const ds_config_groups[];
/* Stage hash of the dataset: the dataset's config groups, the seed, and the sha256 of every input
 * file the config names. Collective (rank 0 hashes the files). */
int ds_stage_hash(par_ctx *ctx, const dm_cfg *cfg, char out[65]);

#endif
