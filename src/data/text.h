/* text.h: item text to a sparse TF-IDF matrix (the input of the LSA text encoder).
 *
 * Each item's document is the fields dm_tfidf_opts.fields selects: the words of its title, brand and
 * category path, and its attributes (dataset.h: the price bucket and the other attributes, such as
 * S3-Rec attribute ids or RecBole token/token_seq/float fields) each as one whole term
 * "attr:<name>". A numeric field ("name=value" attributes whose values all parse as numbers, with
 * more than numeric_bins distinct values, e.g. a RecBole float column) becomes numeric_bins
 * quantile bins over the items that have it ("attr:name#q3"). Tokens are maximal runs of letters
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

enum {
    DM_TF_TITLE = 1, DM_TF_BRAND = 2, DM_TF_CATEGORY = 4, /* words of the item's text fields */
    DM_TF_PRICE = 8,                                       /* the price-bucket attribute */
    DM_TF_ATTRS = 16,                                      /* every other attribute */
    DM_TF_ALL = 31
};

typedef struct {
    int64_t min_df;
    double max_df;
    size_t max_terms;
} dm_tfidf_opts;

/* Which fields make an item's document. */
typedef struct {
    unsigned fields;          /* DM_TF_* */
    char *const *attr_only;   /* when n_attr_only > 0: of the other attributes, only those of the */
    size_t n_attr_only;       /* fields named here ("class" takes "class=Drama") */
    int numeric_bins;         /* quantile bins of a numeric field (>= 1) */
} dm_tfidf_select;

/* Parses a list of field names (title, brand, category, price, attributes, attr:<name>) into
 * sel (attr_only pointing into names, through the caller's array attr_only of n entries).
 * Returns the index of an unknown name, or -1. */
int dm_tfidf_fields(dm_tfidf_select *sel, char *const *names, size_t n, char **attr_only);

/* Builds the TF-IDF rows of items [lo, hi) over the vocabulary of all items; sel NULL = the words of
 * title, brand and category. */
int dm_tfidf(const dm_dataset *d, const dm_tfidf_opts *o, size_t lo, size_t hi, dm_csr *out);
int dm_tfidf_sel(const dm_dataset *d, const dm_tfidf_opts *o, const dm_tfidf_select *sel, size_t lo, size_t hi, dm_csr *out);
void dm_csr_free(dm_csr *m);
/* Splits text into tokens (lowercased, in order); for tests. Returns the count. */
size_t dm_tokenize(const char *s, size_t n, dm_strtab *out);

#endif
