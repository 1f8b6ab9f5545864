/* text.h: item text to a sparse TF-IDF matrix (the input of the LSA text encoder).
 *
 * Each item's document is its title, brand and category path. Tokens are maximal runs of letters
 * and digits (ASCII case-folded; bytes >= 0x80 are kept as letters, so UTF-8 words stay whole),
 * at least two bytes long and not in a short English stop list. The vocabulary keeps terms whose
 * document frequency is within [min_df, max_df * n_docs], the max_terms most frequent ones (ties
 * broken by the term's bytes), in that order. Weights: tf = 1 + ln(count), idf = ln((1 + n) / (1 +
 * df)) + 1 (scikit-learn's smoothed idf), each row L2-normalised; an item without terms has an
 * empty row. Deterministic: the same items give the same matrix on every rank.
 */
#ifndef DM_TEXT_H
#define DM_TEXT_H

#include "dataset.h"

typedef struct {
    size_t n_rows, n_cols;
    int64_t *row_off; /* (n_rows + 1) */
    int32_t *col;     /* (nnz) */
    double *val;      /* (nnz) */
    dm_strtab terms;  /* (n_cols) vocabulary */
} dm_csr;

typedef struct {
    int64_t min_df;
    double max_df;
    size_t max_terms;
} dm_tfidf_opts;

/* Builds the TF-IDF rows of items [lo, hi) over the vocabulary of all items. */
int dm_tfidf(const dm_dataset *d, const dm_tfidf_opts *o, size_t lo, size_t hi, dm_csr *out);
void dm_csr_free(dm_csr *m);
/* Splits text into tokens (lowercased, in order); for tests. Returns the count. */
size_t dm_tokenize(const char *s, size_t n, dm_strtab *out);

#endif
