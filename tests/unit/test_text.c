/* test_text.c: the fields of an item's TF-IDF document (lsa.fields): attributes of a RecBole .item
 * file (token, token_seq and float columns) reach the document as whole terms, a numeric field as
 * its quantile bin, price as its bucket, attr:NAME selects one field; the field list parser. */
#include "../../src/data/readers.h"
#include "../../src/data/text.h"
#include "../../src/core/err.h"
#include "tap.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int has_term(const dm_csr *A, const char *t)
{
    for (size_t c = 0; c < A->n_cols; c++)
        if (!strcmp(tl_str(&A->terms, c), t)) return 1;
    return 0;
}

/* the terms of item i's row */
static int row_has(const dm_csr *A, size_t i, const char *t)
{
    for (int64_t k = A->row_off[i]; k < A->row_off[i + 1]; k++)
        if (!strcmp(tl_str(&A->terms, (size_t)A->col[k]), t)) return 1;
    return 0;
}

/* 24 items: ml-100k-like columns (movie_title token_seq, release_year float, class token_seq) */
static int make_dataset(const char *dir, dm_dataset *d)
{
    char p[512];
    snprintf(p, sizeof p, "%s/x.item", dir);
    FILE *f = fopen(p, "w");
    if (!f) return 1;
    fprintf(f, "item_id:token\tmovie_title:token_seq\trelease_year:float\tclass:token_seq\tprice:float\n");
    for (int i = 0; i < 24; i++)
        fprintf(f, "%d\tFilm number %d\t%d\t%s\t%g\n", i, i, 1970 + i, i % 3 == 0 ? "Drama Crime" : i % 3 == 1 ? "Comedy" : "",
                5.0 + i);
    fclose(f);
    dm_meta m = {0};
    dm_stripe st = {0, 1, 1 << 20};
    int rc = dm_read_recbole_item(p, &st, &m);
    if (rc) return rc;
    dm_raw raw = {0};
    raw.has_time = 1;
    for (int i = 0; i < 24; i++) {
        char it[16];
        int l = snprintf(it, sizeof it, "%d", i);
        dm_raw_push(&raw, "u", 1, it, (size_t)l, 1, i + 1, -1);
        dm_raw_push(&raw, "v", 1, it, (size_t)l, 1, i + 1, -1);
    }
    static const double edges[] = {10, 20};
    dm_process_opts o = tl_process_opts(edges, 2, 4, 2);
    o.numeric_ids = 1;
    rc = dm_process(&raw, &m, &o, d, NULL);
    dm_raw_free(&raw);
    dm_meta_free(&m);
    return rc;
}

static void test_recbole_fields(const char *dir)
{
    dm_dataset d;
    int rc = make_dataset(dir, &d);
    CHECK(rc == DM_OK, "%s", dm_error_message());
    if (rc) return;
    /* the extra columns arrive as attributes name=value; the empty class of every third item none */
    size_t n_year = 0, n_class = 0;
    for (size_t a = 0; a < d.n_attr; a++) {
        const char *s = tl_str(&d.attr_name, a);
        n_year += !strncmp(s, "release_year=", 13);
        n_class += !strncmp(s, "class=", 6);
    }
    CHECK(n_year == 24 && n_class == 3, "attributes: %zu years, %zu classes (of %zu)", n_year, n_class, d.n_attr);

    char *only[8];
    char *names[] = {"title", "attributes"};
    dm_tfidf_select sel;
    CHECK(dm_tfidf_fields(&sel, names, 2, only) == -1 && sel.fields == (DM_TF_TITLE | DM_TF_ATTRS) && !sel.n_attr_only, "fields");
    sel.numeric_bins = 4;
    dm_tfidf_opts o = {1, 1.0, 1000};
    dm_csr A;
    CHECK(dm_tfidf_sel(&d, &o, &sel, 0, d.n_items, &A) == DM_OK, "%s", dm_error_message());
    /* 24 distinct years > 4 bins: quartiles of 1970..1993, 6 items each */
    CHECK(has_term(&A, "attr:release_year#q0") && has_term(&A, "attr:release_year#q3") && !has_term(&A, "attr:release_year#q4") &&
              !has_term(&A, "attr:release_year=1970"),
          "numeric field as quantile bins");
    int bins_ok = 1;
    for (size_t i = 0; i < d.n_items; i++) {
        char t[64];
        snprintf(t, sizeof t, "attr:release_year#q%zu", i / 6); /* numeric ids: item i has year 1970 + i */
        bins_ok &= row_has(&A, i, t);
    }
    CHECK(bins_ok, "each item in the quartile of its year");
    CHECK(has_term(&A, "attr:class=Drama") && row_has(&A, 0, "attr:class=Crime") && row_has(&A, 1, "attr:class=Comedy") &&
              !row_has(&A, 2, "attr:class=Comedy"),
          "token_seq elements as whole terms");
    CHECK(has_term(&A, "film") && !has_term(&A, "attr:price <= 10"), "title words; price not selected");
    dm_csr_free(&A);

    /* only one field, and the price bucket */
    char *n2[] = {"attr:class", "price"};
    CHECK(dm_tfidf_fields(&sel, n2, 2, only) == -1 && sel.n_attr_only == 1 && !strcmp(sel.attr_only[0], "class"), "attr:NAME");
    CHECK(dm_tfidf_sel(&d, &o, &sel, 0, d.n_items, &A) == DM_OK, "%s", dm_error_message());
    CHECK(has_term(&A, "attr:class=Drama") && !has_term(&A, "attr:release_year#q0") && !has_term(&A, "film"), "one field only");
    CHECK(row_has(&A, 0, "attr:price <= 10") && row_has(&A, 10, "attr:price <= 20") && row_has(&A, 23, "attr:price > 20"),
          "price buckets");
    dm_csr_free(&A);

    /* few distinct values: whole terms, not bins */
    sel.numeric_bins = 30;
    char *n3[] = {"attributes"};
    dm_tfidf_fields(&sel, n3, 1, only);
    sel.numeric_bins = 30;
    CHECK(dm_tfidf_sel(&d, &o, &sel, 0, d.n_items, &A) == DM_OK && row_has(&A, 5, "attr:release_year=1975"),
          "24 values <= 30 bins: whole terms");
    dm_csr_free(&A);

    /* the default selection (NULL) is the words of title, brand and category: no attribute terms */
    CHECK(dm_tfidf(&d, &o, 0, d.n_items, &A) == DM_OK && !has_term(&A, "attr:class=Drama") && has_term(&A, "film"), "default");
    dm_csr_free(&A);
    char *bad[] = {"title", "colour"};
    CHECK(dm_tfidf_fields(&sel, bad, 2, only) == 1, "an unknown field is reported by index");
    dm_dataset_free(&d);
}

int main(void)
{
    char dir[] = "/tmp/dm_text_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_recbole_fields(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return tap_done("text");
}
