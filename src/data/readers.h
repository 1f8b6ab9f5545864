/* readers.h: the input formats of dynmm (see DESIGN.md, "Data the suite must read").
 *
 * Every reader appends to a dm_raw (interactions) or dm_meta (item side information). Readers of
 * line-oriented files process only the lines of their stripe: with stripe {rank, size, block},
 * line k (1-based, data lines only) is read when ((k - 1) / block) % size == rank, so `size` ranks
 * split a file without coordination, and DM_ORDER(file, line, pos) records where each record was.
 * A stripe of {0, 1, any} reads everything.
 *
 * Errors name the file and line (and column or byte offset) and say what was expected; nothing is
 * skipped silently. Text inputs go through dm_lines (core/lines.h): plain or gzip (any number of
 * members, nothing after the last), a UTF-8 byte-order mark at the start skipped, lines of any
 * length. Lines may hold any number of fields; a SASRec sequence line at most 2^20 - 1 items, the
 * room DM_ORDER leaves for the position within a line (more is an error, never a misorder).
 * Timestamps become int64 milliseconds or an error (never a wrapped value): integers, or decimals
 * rounded to the ms; seconds whose milliseconds overflow are refused too.
 */
#ifndef DM_READERS_H
#define DM_READERS_H

#include "dataset.h"

typedef struct {
    int rank, size;
    int64_t block;
} dm_stripe;

/* Amazon reviews: version 2014 / 2018 (reviewerID, asin, unixReviewTime in s) or 2023 (JSONL:
 * user_id, parent_asin, timestamp in ms). */
int dm_read_amazon_reviews(const char *path, int version, const dm_stripe *s, int file_index, dm_raw *out);
/* Amazon metadata: 2014 (Python-literal dicts: asin, title, brand, categories, price), 2018 (JSON:
 * asin, title, brand, category, main_cat, price "$x"), 2023 (JSONL: parent_asin, title, store,
 * categories, main_category, price). */
int dm_read_amazon_meta(const char *path, int version, const dm_stripe *s, dm_meta *out);
/* RecBole atomic files: .inter (user_id, item_id, optional timestamp) and .item (item_id and any of
 * title, brand, categories, price). Typed headers "name:type", tab-separated. */
int dm_read_recbole_inter(const char *path, const dm_stripe *s, dm_raw *out);
int dm_read_recbole_item(const char *path, const dm_stripe *s, dm_meta *out);
/* SASRec / S3-Rec text: layout 0 auto, 1 "user item" pairs in order, 2 "user item item ..." lines. */
int dm_read_sasrec(const char *path, int layout, const dm_stripe *s, dm_raw *out);
/* S3-Rec *_item2attributes.json: {"item": [attr, ...], ...}. Whole file, no stripe. */
int dm_read_item2attributes(const char *path, dm_meta *out);

typedef struct {
    char sep;            /* 0 = auto */
    int header;          /* -1 auto: a header when the id columns are named or line 1's ids are not
                            integers, and that decision is logged with the column names; 0 no: ids
                            that are not integers are data, but a line 1 whose ids are not integers
                            followed by a line whose ids are is an error (a header read as data);
                            1 yes */
    const char *user_col, *item_col, *time_col; /* names or 0-based indices; time_col "" = none */
    int time_ms;
    const char *split_col; /* NULL or "" = none; else each line's given split: 0 train, 1 validation, 2 test
                              (MMRec's x_label), which replaces `part` */
} dm_tsv_opts;

/* TSV/CSV interactions; `part` is -1 or DM_TRAIN/VALID/TEST for pre-split files (o->split_col: per line). */
int dm_read_tsv(const char *path, const dm_tsv_opts *o, const dm_stripe *s, int file_index, int part, dm_raw *out);

/* The item ids of data.inter in another id space: `mapped` holds the same interactions as `inter`, row
 * for row, with the items' original ids in the same column (Last.fm-2k's lfm2k_og_ids.inter beside
 * lfm2k.inter). orig[k] is the k-th original id, dense[k] the item id of data.inter it names. Both
 * files are read whole. An original id naming two items, or an item with two original ids, is an
 * error naming the row. */
typedef struct {
    dm_strmap orig;  /* original ids, in first-seen order */
    dm_strtab dense; /* (orig size) the item id in data.inter of each */
} dm_item_map;
int dm_read_item_map(const char *inter, const char *mapped, const dm_tsv_opts *o, dm_item_map *out);
void dm_item_map_free(dm_item_map *m);

/* Item tables with a header (TSV, or CSV with RFC 4180 quotes), read whole: `path` gives each item's
 * title (column title_col, may be NULL), `tags_path` (may be NULL) its tags (column tags_col, separated
 * by commas), each a one-level category. Ids (id_col / tags_id_col, by name or 0-based index) are
 * translated through `map` when given; rows naming an item that has no interactions are skipped and
 * counted in *skipped. An item in both tables gets both; an id repeated in one table is an error. */
typedef struct {
    char sep; /* 0 = auto per file (tab if its first line has one, else comma) */
    const char *path, *id_col, *title_col;
    const char *tags_path, *tags_id_col, *tags_col;
} dm_item_tables;
int dm_read_item_tables(const dm_item_tables *t, const dm_item_map *map, dm_meta *out, size_t *skipped);

/* Item feature matrices, read whole: NumPy .npy (v1-v3 headers, <f2/<f4/<f8, C order, 2-D) and raw
 * little-endian float32 with a given shape. Output is float32, malloc'd, (rows, cols). */
int dm_read_npy(const char *path, float **data, size_t *rows, size_t *cols);
int dm_read_raw_f32(const char *path, size_t rows, size_t cols, float **data);
/* One original id per line (whitespace trimmed); duplicate ids are an error naming both lines. */
int dm_read_id_list(const char *path, dm_strtab *ids);

/* IEEE half -> float, exact (subnormals, infinities, NaN). */
float dm_half_to_float(uint16_t h);

#endif
