/* test_data.c: readers and processing on small inputs written by the test, with hand-checked
 * answers: every format (Amazon 2014/2018/2023, RecBole, SASRec pairs/sequences with S3-Rec
 * attributes, TSV/CSV), stable time order with ties in input order, deduplication, iterative k-core,
 * dense ids, splits, calendar and count windows, attributes, features, and the stripe/merge path
 * giving the same records as a single reader. */
#include "../../src/core/buf.h"
#include "../../src/core/err.h"
#include "../../src/data/dataset.h"
#include "../../src/data/readers.h"
#include "../../src/data/text.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char g_dir[512];

static const char *write_file(const char *name, const char *text)
{
    static char p[8][640];
    static int k;
    char *path = p[k++ % 8];
    snprintf(path, 640, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static dm_process_opts opts(void)
{
    static const double edges[] = {10, 50};
    dm_process_opts o = {0};
    o.loo_min_len = 3;
    o.temporal_valid = 0.2;
    o.temporal_test = 0.2;
    o.window_count = 2;
    o.window_start = 0.5;
    o.price_edges = edges;
    o.n_price_edges = 2;
    o.max_cat_levels = 4;
    o.min_attr_count = 1;
    return o;
}

static const char *str(const dm_strtab *t, size_t i)
{
    static char b[4][256];
    static int k;
    size_t l;
    const char *s = dm_strtab_get(t, i, &l);
    char *o = b[k++ % 4];
    snprintf(o, 256, "%.*s", (int)l, s);
    return o;
}

static size_t user_of(const dm_dataset *d, const char *id)
{
    for (size_t u = 0; u < d->n_users; u++)
        if (!strcmp(str(&d->user_id, u), id)) return u;
    return (size_t)-1;
}

static const char *seq(const dm_dataset *d, size_t u)
{
    static char b[512];
    b[0] = '\0';
    for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
        strcat(b, str(&d->item_id, (size_t)d->item[j]));
        if (j + 1 < d->user_off[u + 1]) strcat(b, " ");
    }
    return b;
}

static void test_amazon2014(void)
{
    /* user A has a tie at t=200 between x2 (line 2) and x1 (line 3): file order keeps x2 first */
    const char *rev = write_file("r14.json",
                                 "{\"reviewerID\": \"A\", \"asin\": \"x3\", \"unixReviewTime\": 300}\n"
                                 "{\"reviewerID\": \"A\", \"asin\": \"x2\", \"unixReviewTime\": 200}\n"
                                 "{\"reviewerID\": \"A\", \"asin\": \"x1\", \"unixReviewTime\": 200}\n"
                                 "{\"reviewerID\": \"B\", \"asin\": \"x1\", \"unixReviewTime\": 100}\n"
                                 "\n"
                                 "{\"reviewerID\": \"B\", \"asin\": \"x3\", \"unixReviewTime\": 50}\n");
    const char *meta = write_file("m14.json",
                                  "{'asin': 'x1', 'title': 'Say \"hi\"\\tnow\\n', 'price': 12.5, 'brand': 'Acme', "
                                  "'categories': [['Beauty', 'Skin'], ['Beauty', 'Sale']]}\n"
                                  "{'asin': 'x2', 'categories': [[]], 'price': 5}\n"
                                  "{'asin': 'x3', 'title': u'caf\\xe9 \\u00e9\\U0001F600', 'brand': 'Acme', 'categories': [['Beauty']]}\n"
                                  "{'asin': 'x1', 'title': 'duplicate'}\n");
    dm_raw raw = {0};
    dm_meta m = {0};
    CHECK(dm_read_amazon_reviews(rev, 2014, NULL, 0, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(dm_read_amazon_meta(meta, 2014, NULL, &m) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 5 && m.n == 3 && m.duplicates == 1, "n %zu meta %zu dup %zu", raw.n, m.n, m.duplicates);
    CHECK(raw.time[0] == 300000, "times are ms: %lld", (long long)raw.time[0]);
    dm_process_opts o = opts();
    dm_dataset d;
    int32_t *r2i = NULL;
    CHECK(dm_process(&raw, &m, &o, &d, &r2i) == DM_OK, "%s", dm_error_message());
    CHECK(d.n_users == 2 && d.n_items == 3 && d.n_inter == 5, "counts %zu %zu %zu", d.n_users, d.n_items, d.n_inter);
    /* first appearance: users A, B; items x3, x2, x1 */
    CHECK(!strcmp(str(&d.user_id, 0), "A") && !strcmp(str(&d.item_id, 0), "x3") && !strcmp(str(&d.item_id, 2), "x1"),
          "dense ids by first appearance");
    CHECK(!strcmp(seq(&d, 0), "x2 x1 x3"), "A's order with the tie in file order: %s", seq(&d, 0));
    CHECK(!strcmp(seq(&d, 1), "x3 x1"), "B's order: %s", seq(&d, 1));
    /* leave-one-out: A (3 items) gets valid x1 and test x3; B (2 < 3) stays in train */
    CHECK(d.split_loo[0] == DM_TRAIN && d.split_loo[1] == DM_VALID && d.split_loo[2] == DM_TEST, "loo A");
    CHECK(d.split_loo[3] == DM_TRAIN && d.split_loo[4] == DM_TRAIN, "loo B short");
    CHECK(!strcmp(str(&d.title, 2), "Say \"hi\"\tnow\n"), "title with quotes/tab/newline: %s", str(&d.title, 2));
    CHECK(!strcmp(str(&d.title, 0), "caf\xc3\xa9 \xc3\xa9\xf0\x9f\x98\x80"), "python escapes to utf-8: %s", str(&d.title, 0));
    CHECK(d.has_title[1] == 0 && d.has_title[2] == 1, "has_title");
    CHECK(!strcmp(str(&d.category, 2), "Beauty > Skin | Beauty > Sale"), "category: %s", str(&d.category, 2));
    CHECK(fabsf(d.price[2] - 12.5f) < 1e-6 && isnan(d.price[0]), "price");
    /* attributes: brand Acme (x3, x1), Beauty@0, Skin@1, Sale@1, price buckets <=50 (x1) and <=10 (x2) */
    CHECK(d.n_attr == 6, "n_attr %zu", d.n_attr);
    size_t nx1 = (size_t)(d.item_attr_off[3] - d.item_attr_off[2]);
    CHECK(nx1 == 5, "x1 has brand, Beauty, Skin, Sale, price bucket: %zu", nx1);
    int found = 0;
    for (size_t a = 0; a < d.n_attr; a++)
        if (!strcmp(str(&d.attr_name, a), "price <= 50") && d.attr_kind[a] == DM_ATTR_PRICE) found = 1;
    CHECK(found, "price bucket attribute");
    free(r2i);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&m);
}

static void test_amazon2018_2023(void)
{
    const char *m18 = write_file("m18.json",
                                 "{\"asin\": \"p1\", \"title\": \"T1\", \"brand\": \"B1\", \"category\": [\"A\", \"B\"], \"price\": \"$1,234.50\"}\n"
                                 "{\"asin\": \"p2\", \"main_cat\": \"Toys\", \"price\": \"$3.00 - $5.00\"}\n");
    dm_meta m = {0};
    CHECK(dm_read_amazon_meta(m18, 2018, NULL, &m) == DM_OK, "%s", dm_error_message());
    CHECK(m.n == 2 && fabs(m.price[0] - 1234.5) < 1e-9 && fabs(m.price[1] - 3.0) < 1e-9, "2018 prices %g %g", m.price[0], m.price[1]);
    CHECK(!strcmp(str(&m.cats, 0), "A\tB") && !strcmp(str(&m.cats, 1), "Toys"), "2018 categories");
    dm_meta_free(&m);
    const char *r23 = write_file("r23.jsonl",
                                 "{\"rating\": 5.0, \"user_id\": \"U1\", \"asin\": \"v1\", \"parent_asin\": \"P1\", \"timestamp\": 1588687728923}\n"
                                 "{\"rating\": 4.0, \"user_id\": \"U1\", \"asin\": \"v2\", \"parent_asin\": \"P2\", \"timestamp\": 1588687728922}\n");
    const char *m23 = write_file("m23.jsonl",
                                 "{\"parent_asin\": \"P1\", \"title\": \"Cream\", \"store\": \"S\", \"categories\": [\"Beauty\", \"Skin\"], \"price\": null}\n"
                                 "{\"parent_asin\": \"P2\", \"title\": \"Gel\", \"details\": {\"Brand\": \"DB\"}, \"categories\": [], \"main_category\": \"All Beauty\", \"price\": 7.5}\n");
    dm_raw raw = {0};
    CHECK(dm_read_amazon_reviews(r23, 2023, NULL, 0, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(dm_read_amazon_meta(m23, 2023, NULL, &m) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 2 && raw.time[0] == 1588687728923LL, "2023 ms timestamps kept: %lld", (long long)raw.time[0]);
    CHECK(!strcmp(str(&m.brand, 0), "S") && !strcmp(str(&m.brand, 1), "DB"), "2023 store / details.Brand");
    CHECK(!strcmp(str(&m.cats, 1), "All Beauty") && isnan(m.price[0]) && m.price[1] == 7.5, "2023 categories/price");
    dm_process_opts o = opts();
    dm_dataset d;
    CHECK(dm_process(&raw, &m, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    /* millisecond order: P2 (…922) before P1 (…923) */
    CHECK(!strcmp(seq(&d, 0), "P2 P1"), "ms order: %s", seq(&d, 0));
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&m);
}

static void test_recbole_sasrec_tsv(void)
{
    const char *inter = write_file("x.inter",
                                   "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                   "u1\ti1\t5\t10.0\nu1\ti2\t3\t5.5\nu2\ti1\t4\t7\n");
    const char *item = write_file("x.item",
                                  "item_id:token\ttitle:token_seq\tbrand:token\tcategories:token_seq\tprice:float\n"
                                  "i1\tred lipstick\tAcme\tMakeup Lips\t9.99\ni2\tblue gel\t\t\t\n");
    dm_raw raw = {0};
    dm_meta m = {0};
    CHECK(dm_read_recbole_inter(inter, NULL, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(dm_read_recbole_item(item, NULL, &m) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 3 && raw.has_time && raw.time[1] == 5500, "recbole float times to ms: %lld", (long long)raw.time[1]);
    CHECK(m.n == 2 && !strcmp(str(&m.title, 0), "red lipstick") && !strcmp(str(&m.cats, 0), "Makeup\nLips") &&
              fabs(m.price[0] - 9.99) < 1e-12 && isnan(m.price[1]),
          "recbole item fields");
    dm_raw_free(&raw);
    dm_meta_free(&m);

    const char *pairs = write_file("pairs.txt", "1 5\n1 3\n2 5\n");
    CHECK(dm_read_sasrec(pairs, 0, NULL, &raw) == DM_OK && raw.n == 3 && !raw.has_time, "sasrec pairs auto");
    dm_raw_free(&raw);
    const char *seqs = write_file("seqs.txt", "1 5 3 9\n2 5\n");
    CHECK(dm_read_sasrec(seqs, 0, NULL, &raw) == DM_OK && raw.n == 4, "sasrec sequences auto: %zu", raw.n);
    const char *attrs = write_file("attrs.json", "{\"5\": [1, 2], \"3\": [2], \"9\": []}");
    CHECK(dm_read_item2attributes(attrs, &m) == DM_OK && m.n == 3, "item2attributes");
    dm_process_opts o = opts();
    o.numeric_ids = 1;
    dm_dataset d;
    CHECK(dm_process(&raw, &m, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    CHECK(!strcmp(seq(&d, 0), "5 3 9"), "sequence order kept without times: %s", seq(&d, 0));
    CHECK(!strcmp(str(&d.item_id, 0), "3") && !strcmp(str(&d.item_id, 2), "9"), "numeric id order");
    CHECK(d.n_attr == 2 && d.attr_kind[0] == DM_ATTR_OTHER, "S3-Rec attributes: %zu", d.n_attr);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&m);

    const char *csv = write_file("x.csv", "ts,user,item\n7,\"u,1\",a\n3,\"u,1\",\"b \"\"q\"\"\"\n");
    dm_tsv_opts to = {0, -1, "user", "item", "ts", 0};
    CHECK(dm_read_tsv(csv, &to, NULL, 0, -1, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 2 && raw.users.keys.n == 1 && !strcmp(str(&raw.items.keys, 1), "b \"q\""), "csv quotes");
    CHECK(raw.time[0] == 7000, "csv seconds to ms");
    dm_raw_free(&raw);
}

static void test_filters_and_windows(void)
{
    /* u1: a a b (a repeated); u2: a c; u3: b c d; d occurs once */
    dm_raw raw = {0};
    const char *rec[][3] = {{"u1", "a", "1"}, {"u1", "a", "5"}, {"u1", "b", "3"}, {"u2", "a", "2"}, {"u2", "c", "4"},
                            {"u3", "b", "6"}, {"u3", "c", "7"}, {"u3", "d", "8"}};
    raw.has_time = 1;
    for (int k = 0; k < 8; k++)
        dm_raw_push(&raw, rec[k][0], 2, rec[k][1], 1, atoll(rec[k][2]) * 86400000LL * 40, DM_ORDER(0, k + 1, 0), -1);
    dm_process_opts o = opts();
    dm_dataset d;
    o.dedup = 1; /* keep first */
    CHECK(dm_process(&raw, NULL, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    CHECK(d.n_inter == 7, "dedup first: %zu", d.n_inter);
    CHECK(!strcmp(seq(&d, user_of(&d, "u1")), "a b"), "dedup keeps the first a: %s", seq(&d, user_of(&d, "u1")));
    dm_dataset_free(&d);
    o.dedup = 2;
    CHECK(dm_process(&raw, NULL, &o, &d, NULL) == DM_OK && !strcmp(seq(&d, 0), "b a"), "dedup last: %s", seq(&d, 0));
    dm_dataset_free(&d);
    /* 2-core on items removes d; then u3 (b c) and everyone keep >= 2 */
    o.dedup = 0;
    o.kcore_item = 2;
    o.kcore_user = 3;
    /* user 3-core: u2 has 2 -> removed; then c has 1 (u3) -> removed; u3 has b only... -> removed; b has u1 only */
    int rc = dm_process(&raw, NULL, &o, &d, NULL);
    CHECK(rc == DM_EINPUT && strstr(dm_error_message(), "no interactions left after filtering"),
          "iterative k-core (3 per user, 2 per item) empties this set over three rounds: rc %d %s", rc, dm_error_message());
    dm_error_clear();
    o.kcore_user = 2;
    CHECK(dm_process(&raw, NULL, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    /* item 2-core: d removed; users all keep >= 2 */
    CHECK(d.n_items == 3 && d.n_inter == 7 && d.n_users == 3, "k-core 2/2: %zu items %zu inter", d.n_items, d.n_inter);
    dm_dataset_free(&d);
    /* count windows: start 0.5 of 8 = 4 history, then 2 windows of 2 */
    o.kcore_user = o.kcore_item = 0;
    CHECK(dm_process(&raw, NULL, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    size_t wc[3] = {0, 0, 0};
    for (size_t i = 0; i < d.n_inter; i++) wc[d.window[i] + 1]++;
    CHECK(d.n_windows == 2 && wc[0] == 4 && wc[1] == 2 && wc[2] == 2, "count windows %zu %zu %zu", wc[0], wc[1], wc[2]);
    /* temporal split 0.2/0.2 of 8: cut at sorted positions 4 and 6 */
    size_t sc[3] = {0, 0, 0};
    for (size_t i = 0; i < d.n_inter; i++) sc[d.split_temporal[i]]++;
    CHECK(sc[0] == 4 && sc[1] == 2 && sc[2] == 2, "temporal split %zu %zu %zu", sc[0], sc[1], sc[2]);
    dm_dataset_free(&d);
    /* calendar months: times are k*40 days from the epoch -> Jan 1970 .. Nov 1970 */
    o.window_time = 1;
    o.window_unit = 3;
    o.window_width = 2;
    o.window_last = 0;
    CHECK(dm_process(&raw, NULL, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    struct tm tm;
    time_t s0 = (time_t)(d.window_start[0] / 1000), s1 = (time_t)(d.window_start[1] / 1000);
    gmtime_r(&s0, &tm);
    int m0 = tm.tm_mon, day0 = tm.tm_mday;
    gmtime_r(&s1, &tm);
    CHECK(m0 == 1 && day0 == 1 && tm.tm_mon == 3 && tm.tm_mday == 1, "2-month windows start on the 1st: %d/%d -> %d/%d",
          m0 + 1, day0, tm.tm_mon + 1, tm.tm_mday);
    /* first interaction 40 days (Feb 10) -> window 0; 320 days (Nov 17) -> window (10-1)/2 = 4 */
    CHECK(d.n_windows == 5, "windows %zu", d.n_windows);
    dm_dataset_free(&d);
    o.window_last = 2;
    CHECK(dm_process(&raw, NULL, &o, &d, NULL) == DM_OK && d.n_windows == 2, "last 2 windows");
    size_t hist = 0;
    for (size_t i = 0; i < d.n_inter; i++) hist += d.window[i] < 0;
    /* windows Jul-Aug (240, 280 days) and Sep-Oct... times are 40..320 days: Aug 29(240), Oct 8(280), Nov 17(320) */
    CHECK(hist == 5, "history before the last two windows: %zu", hist);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
}

static void test_stripes(void)
{
    /* 10,000 lines read by 3 stripes and merged = one reader */
    char path[640];
    snprintf(path, sizeof path, "%s/many.tsv", g_dir);
    FILE *f = fopen(path, "w");
    for (int k = 0; k < 10000; k++) fprintf(f, "%d\t%d\t%d\n", k % 97, (k * 31) % 113, k % 13);
    fclose(f);
    dm_tsv_opts to = {'\t', 0, "0", "1", "2", 0};
    dm_raw one = {0}, part[3];
    CHECK(dm_read_tsv(path, &to, NULL, 0, -1, &one) == DM_OK, "%s", dm_error_message());
    dm_buf packs = {0};
    size_t sizes[3];
    for (int r = 0; r < 3; r++) {
        memset(&part[r], 0, sizeof part[r]);
        dm_stripe st = {r, 3, 1000};
        CHECK(dm_read_tsv(path, &to, &st, 0, -1, &part[r]) == DM_OK, "%s", dm_error_message());
        size_t before = packs.len;
        dm_raw_pack(&part[r], &packs);
        sizes[r] = packs.len - before;
        dm_raw_free(&part[r]);
    }
    dm_raw merged;
    CHECK(dm_raw_merge(packs.data, sizes, 3, &merged) == DM_OK, "%s", dm_error_message());
    int same = merged.n == one.n;
    for (size_t i = 0; same && i < one.n; i++)
        same = merged.user[i] == one.user[i] && merged.item[i] == one.item[i] && merged.time[i] == one.time[i] &&
               merged.order[i] == one.order[i];
    CHECK(same, "merged stripes equal one reader (%zu vs %zu records)", merged.n, one.n);
    dm_raw_free(&merged);
    dm_raw_free(&one);
    dm_buf_free(&packs);
}

static void test_features(void)
{
    dm_raw raw = {0};
    raw.has_time = 1;
    dm_raw_push(&raw, "u", 1, "0", 1, 1, 1, -1);
    dm_raw_push(&raw, "u", 1, "2", 1, 2, 2, -1);
    dm_raw_push(&raw, "u", 1, "1", 1, 3, 3, -1);
    dm_process_opts o = opts();
    o.numeric_ids = 1;
    dm_dataset d;
    int32_t *r2i;
    CHECK(dm_process(&raw, NULL, &o, &d, &r2i) == DM_OK, "%s", dm_error_message());
    float rows[4 * 2] = {1, 2, 0, 0, 5, 6, 7, 8}; /* row 1 all zero = absent; row 3 = item "3" unknown */
    CHECK(dm_attach_features(&d, &raw, r2i, DM_MOD_VISUAL, rows, 3, 2, NULL, 1, "f") == DM_OK, "%s", dm_error_message());
    CHECK(d.n_modal == 1 && d.modal[0].present[0] == 1 && d.modal[0].present[1] == 0 && d.modal[0].present[2] == 1,
          "presence from zero rows");
    CHECK(d.modal[0].feat[4] == 5 && d.modal[0].feat[5] == 6, "row 2 to item '2'");
    CHECK(dm_attach_features(&d, &raw, r2i, DM_MOD_AUDIO, rows, 4, 2, NULL, 1, "g") == DM_EINPUT &&
              strstr(dm_error_message(), "'g' row 3 belongs to item '3'"),
          "unknown item: %s", dm_error_message());
    /* half floats */
    CHECK(dm_half_to_float(0x3c00) == 1.0f && dm_half_to_float(0xc000) == -2.0f && dm_half_to_float(0x0001) == 5.9604644775390625e-08f &&
              isinf(dm_half_to_float(0x7c00)) && isnan(dm_half_to_float(0x7e00)) && dm_half_to_float(0x7bff) == 65504.0f,
          "half to float");
    free(r2i);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
}

static void test_tfidf(void)
{
    dm_raw raw = {0};
    dm_meta m = {0};
    raw.has_time = 1;
    dm_raw_push(&raw, "u", 1, "0", 1, 1, 1, -1);
    dm_raw_push(&raw, "u", 1, "1", 1, 2, 2, -1);
    dm_raw_push(&raw, "u", 1, "2", 1, 3, 3, -1);
    dm_meta_push(&m, "0", 1, "Red Lipstick", NULL, NULL, NULL, NAN, 1);
    dm_meta_push(&m, "1", 1, "red LIPSTICK, the matte", NULL, NULL, NULL, NAN, 2);
    dm_meta_push(&m, "2", 1, "Blue shampoo", "", "", NULL, NAN, 3);
    dm_process_opts o = opts();
    o.numeric_ids = 1;
    dm_dataset d;
    CHECK(dm_process(&raw, &m, &o, &d, NULL) == DM_OK, "%s", dm_error_message());
    dm_tfidf_opts to = {1, 1.0, 100};
    dm_csr A;
    CHECK(dm_tfidf(&d, &to, 0, 3, &A) == DM_OK, "%s", dm_error_message());
    /* vocabulary by document frequency, then bytes: lipstick red (df 2), blue matte shampoo (df 1);
       "the" is a stop word; idf = ln((1 + 3) / (1 + df)) + 1 */
    CHECK(A.n_cols == 5 && !strcmp(str(&A.terms, 0), "lipstick") && !strcmp(str(&A.terms, 1), "red") &&
              !strcmp(str(&A.terms, 3), "matte"),
          "vocabulary %zu", A.n_cols);
    double i2 = log(4.0 / 3.0) + 1.0, i1 = log(2.0) + 1.0, nrm = sqrt(2 * i2 * i2 + i1 * i1);
    CHECK(A.row_off[1] == 2 && fabs(A.val[0] - sqrt(0.5)) < 1e-12, "item 0: %g", A.val[0]);
    CHECK(A.row_off[2] - A.row_off[1] == 3 && fabs(A.val[2] - i2 / nrm) < 1e-12 && fabs(A.val[4] - i1 / nrm) < 1e-12,
          "item 1 weights %g %g", A.val[2], A.val[4]);
    dm_csr_free(&A);
    to.min_df = 2;
    CHECK(dm_tfidf(&d, &to, 0, 3, &A) == DM_OK && A.n_cols == 2 && A.row_off[3] == A.row_off[2], "min_df drops rare terms");
    dm_csr_free(&A);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&m);
}

int main(void)
{
    const char *tmp = getenv("DM_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_data", tmp ? tmp : "/tmp");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    if (system(cmd) != 0) return 1;
    test_amazon2014();
    test_amazon2018_2023();
    test_recbole_sasrec_tsv();
    test_filters_and_windows();
    test_stripes();
    test_features();
    test_tfidf();
    return tap_done("test_data");
}
