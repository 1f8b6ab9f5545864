/* sort.h: stable argsort of integer keys by LSD radix (16-bit digits, passes over constant digits
 * skipped), O(n) per pass: orders 20M timestamps in well under a second, where qsort with an
 * indirect comparator takes many. Ties keep index order, which is what "ties in input order"
 * needs. */
#ifndef DM_SORT_H
#define DM_SORT_H

#include <stddef.h>
#include <stdint.h>

/* idx[0..n) = the permutation that sorts key ascending, stable. Returns DM_OK or DM_ENOMEM. */
int dm_argsort_i64(const int64_t *key, size_t n, size_t *idx);
/* Stable reorder of an index list by key[idx[i]] (idx is sorted in place). */
int dm_argsort_i64_of(const int64_t *key, size_t *idx, size_t n);

/* qsort comparators (ascending) and a binary search over a sorted int32 array. */
int dm_cmp_i32(const void *a, const void *b);
int dm_cmp_u64(const void *a, const void *b);
int dm_cmp_f64(const void *a, const void *b);
int dm_in_sorted_i32(const int32_t *a, size_t n, int32_t x);

/* A key and the id it belongs to (an item, a row, a position). Sorted by key, ties by id ascending:
 * a total order, so any qsort gives the same sequence. */
typedef struct {
    double key;
    int64_t id;
} dm_keyed;
int dm_cmp_keyed_asc(const void *a, const void *b);  /* key ascending, then id ascending */
int dm_cmp_keyed_desc(const void *a, const void *b); /* key descending, then id ascending */

/* The (at most) n highest-scored items of s[0..n_items) whose mark is 0 (mark may be NULL), best
 * first, ties in index order, into out; returns how many. Insertion into a sorted prefix: meant
 * for small n. */
int dm_top_k_f32(const float *s, size_t n_items, const uint8_t *mark, int n, int32_t *out);

#endif
