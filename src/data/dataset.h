/* dataset.h: interactions and items, from raw records to the processed dataset.
 *
 * Readers (readers.c) turn input files into dm_raw (interaction records with original user and
 * item ids interned in string maps) and dm_meta (item side information keyed by original item id).
 * Each reader handles a stripe of the file's lines, so ranks can parse in parallel; the MPI layer
 * merges the stripes back into file order (dm_raw_merge) before processing.
 *
 * dm_process() is deterministic given its inputs: deduplication, iterative k-core, dense ids,
 * per-user chronological order with ties kept in input order (a stable sort on (time, order)),
 * item text and attribute vocabulary, the stored splits and the streaming windows. Every rank runs
 * it on the same merged input and gets bitwise the same dataset.
 *
 * Times are int64 milliseconds since the Unix epoch (day-resolution sources are multiplied out);
 * sources without times get time 0 and their input order decides.
 *
 * Ownership: each struct owns all its arrays; X_free releases them and zeroes the struct.
 */
#ifndef DM_DATASET_H
#define DM_DATASET_H

#include "../core/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Role of an interaction in a split. */
enum { DM_TRAIN = 0, DM_VALID = 1, DM_TEST = 2 };

/* order key of a record: file index, line, position within the line */
#define DM_ORDER(file, line, pos) (((int64_t)(file) << 56) | ((int64_t)(line) << 20) | (int64_t)(pos))

typedef struct {
    int64_t *user;  /* (n) id in `users` */
    int64_t *item;  /* (n) id in `items` */
    int64_t *time;  /* (n) ms since epoch, 0 if unknown */
    int64_t *order; /* (n) DM_ORDER key: position in the input */
    int8_t *part;   /* (n) -1, or DM_TRAIN/VALID/TEST for pre-split input */
    size_t n, cap;
    dm_strmap users, items;
    int has_time;
} dm_raw;

int dm_raw_push(dm_raw *r, const char *user, size_t ul, const char *item, size_t il, int64_t time, int64_t order,
                int8_t part);
void dm_raw_free(dm_raw *r);
/* Serialises / deserialises a raw stripe (for exchange between ranks). */
int dm_raw_pack(const dm_raw *r, dm_buf *out);
/* Merges packed stripes into one dm_raw ordered by `order` (file order), interning ids in that
 * order. `packs` holds npacks buffers back to back with their sizes. */
int dm_raw_merge(const char *packs, const size_t *sizes, int npacks, dm_raw *out);

typedef struct {
    dm_strmap ids;     /* original item ids, in input order */
    dm_strtab title;   /* (n) "" when absent */
    dm_strtab brand;   /* (n) */
    dm_strtab cats;    /* (n) category paths: levels joined by '\t', paths by '\n' */
    dm_strtab attrs;   /* (n) other attribute tokens joined by '\t' (e.g. S3-Rec attribute ids) */
    double *price;     /* (n) NaN when absent */
    int64_t *order;    /* (n) input position */
    int8_t *has_title; /* (n) 1 when the source gave a title (possibly empty) */
    size_t n, cap;
    size_t duplicates; /* entries skipped because their id was seen before */
} dm_meta;

/* Adds an entry unless the id exists (then counts a duplicate and returns DM_OK). NULL fields are
 * absent. */
int dm_meta_push(dm_meta *m, const char *id, size_t idl, const char *title, const char *brand, const char *cats,
                 const char *attrs, double price, int64_t order);
void dm_meta_free(dm_meta *m);
int dm_meta_pack(const dm_meta *m, dm_buf *out);
int dm_meta_merge(const char *packs, const size_t *sizes, int npacks, dm_meta *out);

#define DM_MAX_MODAL 4
enum { DM_MOD_TEXT = 0, DM_MOD_VISUAL = 1, DM_MOD_AUDIO = 2 };
extern const char *const dm_modal_names[3]; /* "text", "visual", "audio" */

typedef struct {
    char name[16];
    size_t dim;
    float *feat;      /* (n_items, dim) row-major, zeros where absent */
    uint8_t *present; /* (n_items) */
    char source[512]; /* file it came from ("synth" for generated) */
} dm_modal;

typedef struct {
    char name[24];   /* "uni99", "pop99" */
    size_t n;        /* negatives per user */
    int32_t *rows;   /* (cand_rows, n) */
} dm_cand;

enum { DM_ATTR_BRAND = 0, DM_ATTR_CATEGORY = 1, DM_ATTR_PRICE = 2, DM_ATTR_OTHER = 3 };

typedef struct {
    size_t n_users, n_items, n_inter;
    int64_t *user_off;    /* (n_users + 1) interaction offsets per user */
    int32_t *item;        /* (n_inter) dense item id, grouped by user, in time order */
    int64_t *time;        /* (n_inter) ms */
    int8_t *split_loo;    /* (n_inter) DM_TRAIN/VALID/TEST, leave-one-out */
    int8_t *split_temporal; /* (n_inter) global temporal split */
    int8_t *split_given;  /* (n_inter) pre-split input, NULL if none */
    int8_t *split_stream; /* (n_inter) streaming: train before the first window, valid = window 0,
                             test = later windows (derived from `window`, not stored) */
    int64_t temporal_cut[2]; /* first ms of valid, first ms of test */
    int32_t *window;      /* (n_inter) streaming window, -1 = before the first window */
    size_t n_windows;
    int64_t *window_start; /* (n_windows + 1) first ms of each window; last = end (exclusive) */
    int has_time;

    dm_strtab user_id;    /* (n_users) original ids */
    dm_strtab item_id;    /* (n_items) */
    dm_strtab title;      /* (n_items) "" when absent */
    dm_strtab brand;      /* (n_items) */
    dm_strtab category;   /* (n_items) category paths "A > B > C", several joined by " | " */
    float *price;         /* (n_items) NaN when absent */
    uint8_t *has_title;   /* (n_items) */

    size_t n_attr;
    dm_strtab attr_name;  /* (n_attr) */
    int8_t *attr_kind;    /* (n_attr) DM_ATTR_* */
    int8_t *attr_level;   /* (n_attr) category level (0 = top), 0 otherwise */
    int64_t *item_attr_off; /* (n_items + 1) */
    int32_t *item_attr;   /* (item_attr_off[n_items]) attribute ids of each item */

    int n_modal;
    dm_modal modal[DM_MAX_MODAL];

    /* synthetic ground truth (NULL / 0 for real data) */
    uint8_t *drift_user;   /* (n_users) 1 = taste shifts at drift_time */
    int32_t *taste_before; /* (n_users) cluster */
    int32_t *taste_after;  /* (n_users) cluster */
    int32_t *item_cluster; /* (n_items) */
    int64_t drift_time;

    /* sampled candidate sets (negatives) of the sampled protocols: row u holds user u's negatives,
       -1 when the user has too few untouched items. The writer holds only its block of users
       [cand_row0, cand_row0 + cand_rows); a reader holds all rows. */
    int n_cand;
    dm_cand cand[8];
    size_t cand_row0, cand_rows;
    uint64_t cand_seed;

    /* provenance of the inputs: "path sha256" lines */
    dm_buf sources;
} dm_dataset;

typedef struct {
    int dedup;            /* 0 none, 1 keep first, 2 keep last */
    int64_t kcore_user, kcore_item;
    int numeric_ids;      /* order dense ids by the numeric value of the original ids (when all are
                             integers) instead of by first appearance */
    int loo_min_len;
    double temporal_valid, temporal_test;
    /* windows */
    int window_time;      /* 0 equal counts, 1 calendar width */
    int64_t window_count;
    int window_unit;      /* 0 second, 1 day, 2 week, 3 month */
    int64_t window_width;
    int64_t window_last;
    double window_start;
    /* attributes */
    const double *price_edges;
    size_t n_price_edges;
    int max_cat_levels;
    int64_t min_attr_count;
} dm_process_opts;

/* Builds the dataset from merged raw records and (optional) metadata. `raw_to_item` (optional
 * out, malloc'd, raw->items.keys.n entries) maps raw item ids to dense ids or -1 when filtered. */
int dm_process(const dm_raw *raw, const dm_meta *meta, const dm_process_opts *o, dm_dataset *d,
               int32_t **raw_to_item);
/* Recomputes the splits and windows of d (used by the generator and after changes of options). */
int dm_make_splits(dm_dataset *d, const dm_process_opts *o);
int dm_make_windows(dm_dataset *d, const dm_process_opts *o);
/* split_stream from the window ids (called by dm_make_windows and by readers of the file). */
int dm_make_stream_split(dm_dataset *d);
void dm_dataset_free(dm_dataset *d);

/* Attaches a feature matrix to modality `m`: rows[r] of (nrows, dim) belongs to the item whose
 * original id is ids[r] (or decimal r when ids is NULL). Unknown ids are an error naming `what` and
 * the row; items without a row are absent; all-zero rows are absent when zero_is_missing. NaN/Inf
 * values are an error naming the row and column. */
int dm_attach_features(dm_dataset *d, const dm_raw *raw, const int32_t *raw_to_item, int m, const float *rows,
                       size_t nrows, size_t dim, const dm_strtab *ids, int zero_is_missing, const char *what);

#endif
