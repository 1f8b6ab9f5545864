/* test_data.c: readers and processing on small inputs written by the test, with hand-checked
 * answers: every format (Amazon 2014/2018/2023, RecBole, SASRec pairs/sequences with S3-Rec
 * attributes, TSV/CSV), stable time order with ties in input order, deduplication, iterative k-core,
 * dense ids, splits, calendar and count windows, attributes, features, and the stripe/merge path
 * giving the same records as a single reader; and input robustness: .npy shapes whose size overflows,
 * out-of-range timestamps, UTF-8 byte-order marks, multi-member gzip and trailing data, header
 * decisions, and lines of any length (100,000 items, 1000 fields, a 2 MB JSON line). */
#include "../../src/core/buf.h"
#include "../../src/core/err.h"
#include "../../src/core/lines.h"
#include "../../src/data/dataset.h"
#include "../../src/data/readers.h"
#include "../../src/data/text.h"
#include "tap.h"
#include "testlib.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

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
    return tl_process_opts(edges, 2, 4, 2);
}

static size_t user_of(const dm_dataset *d, const char *id)
{
    for (size_t u = 0; u < d->n_users; u++)
        if (!strcmp(tl_str(&d->user_id, u), id)) return u;
    return (size_t)-1;
}

static const char *seq(const dm_dataset *d, size_t u)
{
    static char b[512];
    b[0] = '\0';
    for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
        strcat(b, tl_str(&d->item_id, (size_t)d->item[j]));
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
    CHECK(!strcmp(tl_str(&d.user_id, 0), "A") && !strcmp(tl_str(&d.item_id, 0), "x3") && !strcmp(tl_str(&d.item_id, 2), "x1"),
          "dense ids by first appearance");
    CHECK(!strcmp(seq(&d, 0), "x2 x1 x3"), "A's order with the tie in file order: %s", seq(&d, 0));
    CHECK(!strcmp(seq(&d, 1), "x3 x1"), "B's order: %s", seq(&d, 1));
    /* leave-one-out: A (3 items) gets valid x1 and test x3; B (2 < 3) stays in train */
    CHECK(d.split_loo[0] == DM_TRAIN && d.split_loo[1] == DM_VALID && d.split_loo[2] == DM_TEST, "loo A");
    CHECK(d.split_loo[3] == DM_TRAIN && d.split_loo[4] == DM_TRAIN, "loo B short");
    CHECK(!strcmp(tl_str(&d.title, 2), "Say \"hi\"\tnow\n"), "title with quotes/tab/newline: %s", tl_str(&d.title, 2));
    CHECK(!strcmp(tl_str(&d.title, 0), "caf\xc3\xa9 \xc3\xa9\xf0\x9f\x98\x80"), "python escapes to utf-8: %s", tl_str(&d.title, 0));
    CHECK(d.has_title[1] == 0 && d.has_title[2] == 1, "has_title");
    CHECK(!strcmp(tl_str(&d.category, 2), "Beauty > Skin | Beauty > Sale"), "category: %s", tl_str(&d.category, 2));
    CHECK(fabsf(d.price[2] - 12.5f) < 1e-6 && isnan(d.price[0]), "price");
    /* attributes: brand Acme (x3, x1), Beauty@0, Skin@1, Sale@1, price buckets <=50 (x1) and <=10 (x2) */
    CHECK(d.n_attr == 6, "n_attr %zu", d.n_attr);
    size_t nx1 = (size_t)(d.item_attr_off[3] - d.item_attr_off[2]);
    CHECK(nx1 == 5, "x1 has brand, Beauty, Skin, Sale, price bucket: %zu", nx1);
    int found = 0;
    for (size_t a = 0; a < d.n_attr; a++)
        if (!strcmp(tl_str(&d.attr_name, a), "price <= 50") && d.attr_kind[a] == DM_ATTR_PRICE) found = 1;
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
    CHECK(!strcmp(tl_str(&m.cats, 0), "A\tB") && !strcmp(tl_str(&m.cats, 1), "Toys"), "2018 categories");
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
    CHECK(!strcmp(tl_str(&m.brand, 0), "S") && !strcmp(tl_str(&m.brand, 1), "DB"), "2023 store / details.Brand");
    CHECK(!strcmp(tl_str(&m.cats, 1), "All Beauty") && isnan(m.price[0]) && m.price[1] == 7.5, "2023 categories/price");
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
    CHECK(m.n == 2 && !strcmp(tl_str(&m.title, 0), "red lipstick") && !strcmp(tl_str(&m.cats, 0), "Makeup\nLips") &&
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
    CHECK(!strcmp(tl_str(&d.item_id, 0), "3") && !strcmp(tl_str(&d.item_id, 2), "9"), "numeric id order");
    CHECK(d.n_attr == 2 && d.attr_kind[0] == DM_ATTR_OTHER, "S3-Rec attributes: %zu", d.n_attr);
    dm_dataset_free(&d);
    dm_raw_free(&raw);
    dm_meta_free(&m);

    const char *csv = write_file("x.csv", "ts,user,item\n7,\"u,1\",a\n3,\"u,1\",\"b \"\"q\"\"\"\n");
    dm_tsv_opts to = {0, -1, "user", "item", "ts", 0, NULL};
    CHECK(dm_read_tsv(csv, &to, NULL, 0, -1, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 2 && raw.users.keys.n == 1 && !strcmp(tl_str(&raw.items.keys, 1), "b \"q\""), "csv quotes");
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
    dm_tsv_opts to = {'\t', 0, "0", "1", "2", 0, NULL};
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
    CHECK(A.n_cols == 5 && !strcmp(tl_str(&A.terms, 0), "lipstick") && !strcmp(tl_str(&A.terms, 1), "red") &&
              !strcmp(tl_str(&A.terms, 3), "matte"),
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

/* ---- input robustness: sizes, timestamps, BOMs, gzip members, headers, long lines ---------- */

#define EXPECT_ERR(call, ...)                                                                             \
    do {                                                                                                  \
        char want_[512];                                                                                  \
        snprintf(want_, sizeof want_, __VA_ARGS__);                                                       \
        int rc_ = (call);                                                                                 \
        CHECK(rc_ != DM_OK && strstr(dm_error_message(), want_) != NULL, "expected an error with \"%s\", got rc %d: %s", \
              want_, rc_, dm_error_message());                                                            \
        dm_error_clear();                                                                                 \
    } while (0)

static const char *write_bytes(const char *name, const void *data, size_t n, const char *mode)
{
    static char p[8][640];
    static int k;
    char *path = p[k++ % 8];
    snprintf(path, 640, "%s/%s", g_dir, name);
    FILE *f = fopen(path, mode);
    fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

/* one gzip member with `text`; mode "wb" starts the file, "ab" appends another member */
static const char *write_gz(const char *name, const char *text, const char *mode)
{
    static char p[4][640];
    static int k;
    char *path = p[k++ % 4];
    snprintf(path, 640, "%s/%s", g_dir, name);
    gzFile g = gzopen(path, mode);
    gzwrite(g, text, (unsigned)strlen(text));
    gzclose(g);
    return path;
}

/* a NumPy v1.0 header with the given shape text, then `data` zero bytes */
static const char *write_npy(const char *name, const char *shape, size_t data)
{
    char h[256];
    int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t hl = (size_t)n + 1;
    while ((10 + hl) % 64) hl++;
    unsigned char *b = calloc(10 + hl + data, 1);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl & 0xff);
    b[9] = (unsigned char)(hl >> 8);
    memset(b + 10, ' ', hl);
    memcpy(b + 10, h, (size_t)n);
    b[10 + hl - 1] = '\n';
    const char *path = write_bytes(name, b, 10 + hl + data, "wb");
    free(b);
    return path;
}

static void test_npy_sizes(void)
{
    float *x = NULL;
    size_t r = 0, c = 0;
    const char *ok = write_npy("ok32.npy", "(3, 2)", 24);
    CHECK(dm_read_npy(ok, &x, &r, &c) == DM_OK && r == 3 && c == 2, "(3, 2): %s", dm_error_message());
    free(x);
    /* 30 * (2^62 + 2) wraps to 2^63 + 60 elements and 240 bytes: a small buffer, then a read far past it */
    EXPECT_ERR(dm_read_npy(write_npy("huge1.npy", "(30, 4611686018427387906)", 120), &x, &r, &c),
               "huge1.npy' has shape (30, 4611686018427387906), too large to address: its size overflows 64 bits");
    /* 30 * 2^62 wraps to 2^63 elements, whose byte count wraps to 0 ("needs 0 bytes, found 0") */
    EXPECT_ERR(dm_read_npy(write_npy("huge2.npy", "(30, 4611686018427387904)", 120), &x, &r, &c),
               "huge2.npy' has shape (30, 4611686018427387904), too large to address");
    /* the element count fits, its bytes do not (2^62 * 4) */
    EXPECT_ERR(dm_read_npy(write_npy("huge3.npy", "(2, 2305843009213693952)", 120), &x, &r, &c),
               "huge3.npy' has shape (2, 2305843009213693952), too large to address");
    EXPECT_ERR(dm_read_npy(write_npy("huge4.npy", "(4294967296, 4294967296)", 120), &x, &r, &c),
               "huge4.npy' has shape (4294967296, 4294967296), too large to address");
    /* representable, but not what the file holds: refused before allocating 17 EB */
    EXPECT_ERR(dm_read_npy(write_npy("huge5.npy", "(30, 144115188075855872)", 120), &x, &r, &c),
               "huge5.npy' is truncated: shape (30, 144115188075855872) needs 17293822569102704640 bytes of data after "
               "the header, found 120");
    EXPECT_ERR(dm_read_npy(write_npy("extra.npy", "(3, 2)", 28), &x, &r, &c), "extra.npy' has extra bytes after its (3, 2) data");
    const char *raw = write_bytes("raw8.f32", "\0\0\0\0\0\0\0\0", 8, "wb");
    EXPECT_ERR(dm_read_raw_f32(raw, (size_t)1 << 62, 8, &x), "raw8.f32': shape (4611686018427387904, 8) of float32 is too large");
    CHECK(dm_read_raw_f32(raw, 1, 2, &x) == DM_OK, "raw (1, 2): %s", dm_error_message());
    free(x);
}

static void test_timestamps(void)
{
    dm_raw raw = {0};
    dm_tsv_opts sec = {'\t', 0, "0", "1", "2", 0, NULL}, ms = {'\t', 0, "0", "1", "2", 1, NULL};
    /* in range: the largest seconds whose milliseconds fit, negatives, decimals rounded to the ms */
    const char *ok = write_file("t_ok.tsv", "1\t1\t9223372036854775\n1\t2\t-5\n1\t3\t1.5\n1\t4\t1e3\n1\t5\t-9223372036854775\n");
    CHECK(dm_read_tsv(ok, &sec, NULL, 0, -1, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 5 && raw.time[0] == 9223372036854775000LL && raw.time[1] == -5000 && raw.time[2] == 1500 &&
              raw.time[3] == 1000000 && raw.time[4] == -9223372036854775000LL,
          "seconds to ms: %lld %lld %lld %lld", (long long)raw.time[0], (long long)raw.time[1], (long long)raw.time[2],
          (long long)raw.time[3]);
    dm_raw_free(&raw);
    const char *okms = write_file("t_okms.tsv", "1\t1\t9223372036854775807\n1\t2\t-9223372036854775808\n1\t3\t2.5\n");
    CHECK(dm_read_tsv(okms, &ms, NULL, 0, -1, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 3 && raw.time[0] == INT64_MAX && raw.time[1] == INT64_MIN && raw.time[2] == 3, "ms kept: %lld %lld",
          (long long)raw.time[0], (long long)raw.time[1]);
    dm_raw_free(&raw);
    /* 1e20 ms was stored as 0 */
    const char *big = write_file("t_big.tsv", "1\t1\t5\n1\t2\t6\n2\t1\t1e20\n");
    EXPECT_ERR(dm_read_tsv(big, &ms, NULL, 0, -1, &raw),
               "t_big.tsv' line 3 column 3: timestamp '1e20' is out of range: milliseconds must fit a 64-bit integer");
    dm_raw_free(&raw);
    /* INT64_MAX seconds: the x1000 wrapped to -1000 */
    const char *wrap = write_file("t_wrap.tsv", "1\t1\t5\n2\t1\t9223372036854775807\n");
    EXPECT_ERR(dm_read_tsv(wrap, &sec, NULL, 0, -1, &raw),
               "t_wrap.tsv' line 2 column 3: timestamp '9223372036854775807' (seconds) overflows a 64-bit integer when "
               "converted to milliseconds");
    dm_raw_free(&raw);
    const char *wrap2 = write_file("t_wrap2.tsv", "1\t1\t-9223372036854775.9\n");
    EXPECT_ERR(dm_read_tsv(wrap2, &sec, NULL, 0, -1, &raw), "t_wrap2.tsv' line 1 column 3: timestamp '-9223372036854775.9' (seconds) overflows");
    dm_raw_free(&raw);
    const char *past = write_file("t_past.tsv", "1\t1\t99999999999999999999\n");
    EXPECT_ERR(dm_read_tsv(past, &ms, NULL, 0, -1, &raw), "t_past.tsv' line 1 column 3: timestamp '99999999999999999999' is out of range");
    dm_raw_free(&raw);
    EXPECT_ERR(dm_read_tsv(past, &sec, NULL, 0, -1, &raw),
               "t_past.tsv' line 1 column 3: timestamp '99999999999999999999' is out of range: seconds must fit");
    dm_raw_free(&raw);
    static const char *nan_like[] = {"nan", "inf", "-infinity", "0x10", "12abc", "1e", "."};
    for (int k = 0; k < 7; k++) {
        char text[64];
        snprintf(text, sizeof text, "1\t1\t5\n1\t2\t%s\n", nan_like[k]);
        EXPECT_ERR(dm_read_tsv(write_file("t_nan.tsv", text), &sec, NULL, 0, -1, &raw),
                   "t_nan.tsv' line 2 column 3: timestamp '%s' is not a number", nan_like[k]);
        dm_raw_free(&raw);
    }
    /* a named column is named */
    dm_tsv_opts named = {0, -1, "u", "i", "ts", 0, NULL};
    EXPECT_ERR(dm_read_tsv(write_file("t_named.csv", "u,i,ts\n1,2,7\n1,3,1e300\n"), &named, NULL, 0, -1, &raw),
               "t_named.csv' line 3 column 3 ('ts'): timestamp '1e300' is out of range: seconds must fit");
    dm_raw_free(&raw);

    /* Amazon: the column of the value on the line */
    const char *l2 = "{\"reviewerID\": \"A\", \"asin\": \"y\", \"unixReviewTime\": 9223372036854775807}";
    char text[512];
    snprintf(text, sizeof text, "{\"reviewerID\": \"A\", \"asin\": \"x\", \"unixReviewTime\": 1.5e9}\n%s\n", l2);
    const char *rev = write_file("t_rev.json", text);
    EXPECT_ERR(dm_read_amazon_reviews(rev, 2014, NULL, 0, &raw),
               "t_rev.json' line 2 column %d ('unixReviewTime'): timestamp '9223372036854775807' (seconds) overflows a "
               "64-bit integer when converted to milliseconds", (int)(strstr(l2, "9223") - l2) + 1);
    dm_raw_free(&raw);
    const char *rev_ok = write_file("t_rev_ok.json", "{\"reviewerID\": \"A\", \"asin\": \"x\", \"unixReviewTime\": 1.5e9}\n");
    CHECK(dm_read_amazon_reviews(rev_ok, 2014, NULL, 0, &raw) == DM_OK && raw.time[0] == 1500000000000LL,
          "float seconds: %s", dm_error_message());
    dm_raw_free(&raw);
    const char *l23 = "{\"user_id\": \"U\", \"parent_asin\": \"P\", \"timestamp\": 1e20}\n";
    const char *r23 = write_file("t_r23.jsonl", l23);
    EXPECT_ERR(dm_read_amazon_reviews(r23, 2023, NULL, 0, &raw),
               "t_r23.jsonl' line 1 column %d ('timestamp'): timestamp '1e20' is out of range: milliseconds must fit",
               (int)(strstr(l23, "1e20") - l23) + 1);
    dm_raw_free(&raw);
    const char *lstr = "{\"reviewerID\": \"A\", \"asin\": \"x\", \"unixReviewTime\": \"5\"}\n";
    const char *rstr = write_file("t_rstr.json", lstr);
    EXPECT_ERR(dm_read_amazon_reviews(rstr, 2014, NULL, 0, &raw),
               "t_rstr.json' line 1 column %d: 'unixReviewTime' must be an integer timestamp, found string",
               (int)(strstr(lstr, "\"5\"") - lstr) + 1);
    dm_raw_free(&raw);
}

static void test_bom(void)
{
    dm_raw raw = {0};
    dm_meta m = {0};
    /* with the BOM glued to the first field, "0" was not an integer and line 1 became a header */
    const char *t = write_file("bom.tsv", "\xEF\xBB\xBF" "0\t1\n1\t2\n2\t3\n");
    dm_tsv_opts idx = {0, -1, "0", "1", "", 0, NULL};
    CHECK(dm_read_tsv(t, &idx, NULL, 0, -1, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 3 && raw.users.keys.n == 3 && !strcmp(tl_str(&raw.users.keys, 0), "0"), "BOM tsv: %zu records, user 0 '%s'",
          raw.n, raw.n ? tl_str(&raw.users.keys, 0) : "");
    dm_raw_free(&raw);
    dm_tsv_opts names = {0, -1, "user", "item", "", 0, NULL};
    const char *c = write_file("bom.csv", "\xEF\xBB\xBF" "user,item\nu1,i1\n");
    CHECK(dm_read_tsv(c, &names, NULL, 0, -1, &raw) == DM_OK && raw.n == 1, "BOM csv header by name: %s", dm_error_message());
    dm_raw_free(&raw);
    const char *gz = write_gz("bom.tsv.gz", "\xEF\xBB\xBF" "0\t1\n1\t2\n", "wb");
    CHECK(dm_read_tsv(gz, &idx, NULL, 0, -1, &raw) == DM_OK && raw.n == 2 && !strcmp(tl_str(&raw.users.keys, 0), "0"),
          "BOM inside gzip: %s", dm_error_message());
    dm_raw_free(&raw);
    const char *j = write_file("bom.json", "\xEF\xBB\xBF{\"reviewerID\": \"A\", \"asin\": \"x\", \"unixReviewTime\": 5}\n");
    CHECK(dm_read_amazon_reviews(j, 2014, NULL, 0, &raw) == DM_OK && raw.n == 1, "BOM JSON lines: %s", dm_error_message());
    dm_raw_free(&raw);
    const char *mj = write_file("bom_meta.json", "\xEF\xBB\xBF{'asin': 'x', 'title': 'T'}\n");
    CHECK(dm_read_amazon_meta(mj, 2014, NULL, &m) == DM_OK && m.n == 1, "BOM meta: %s", dm_error_message());
    dm_meta_free(&m);
    const char *ri = write_file("bom.inter", "\xEF\xBB\xBF" "user_id:token\titem_id:token\ttimestamp:float\nu\ti\t3\n");
    CHECK(dm_read_recbole_inter(ri, NULL, &raw) == DM_OK && raw.n == 1 && raw.has_time, "BOM recbole: %s", dm_error_message());
    dm_raw_free(&raw);
    const char *rit = write_file("bom.item", "\xEF\xBB\xBF" "item_id:token\ttitle:token_seq\ni\tred\n");
    CHECK(dm_read_recbole_item(rit, NULL, &m) == DM_OK && m.n == 1, "BOM recbole item: %s", dm_error_message());
    dm_meta_free(&m);
    const char *sq = write_file("bom_seq.txt", "\xEF\xBB\xBF" "1 5 3\n2 5\n");
    CHECK(dm_read_sasrec(sq, 0, NULL, &raw) == DM_OK && raw.n == 3 && !strcmp(tl_str(&raw.users.keys, 0), "1"),
          "BOM sasrec: user '%s'", raw.n ? tl_str(&raw.users.keys, 0) : "");
    dm_raw_free(&raw);
    const char *a = write_file("bom_attrs.json", "\xEF\xBB\xBF{\"5\": [1]}");
    CHECK(dm_read_item2attributes(a, &m) == DM_OK && m.n == 1, "BOM item2attributes: %s", dm_error_message());
    dm_meta_free(&m);
    dm_strtab ids = {0};
    const char *il = write_file("bom_ids.txt", "\xEF\xBB\xBF" "5\n6\n");
    CHECK(dm_read_id_list(il, &ids) == DM_OK && ids.n == 2 && !strcmp(tl_str(&ids, 0), "5"), "BOM id list: '%s'",
          ids.n ? tl_str(&ids, 0) : "");
    dm_strtab_free(&ids);
    /* only at the start: a BOM later in a line is data */
    const char *mid = write_file("bom_mid.tsv", "a\tb\n\xEF\xBB\xBF" "c\td\n");
    dm_tsv_opts no = {0, 0, "0", "1", "", 0, NULL};
    CHECK(dm_read_tsv(mid, &no, NULL, 0, -1, &raw) == DM_OK && raw.n == 2 && !strcmp(tl_str(&raw.users.keys, 1), "\xEF\xBB\xBF" "c"),
          "a BOM inside the file is kept");
    dm_raw_free(&raw);
}

static void test_gzip_members(void)
{
    dm_raw raw = {0};
    dm_tsv_opts no = {'\t', 0, "0", "1", "", 0, NULL};
    /* two members, the boundary inside line 2: one stream, as gzip -dc gives */
    write_gz("multi.tsv.gz", "1\t1\n2\t", "wb");
    const char *multi = write_gz("multi.tsv.gz", "2\n3\t3\n", "ab");
    CHECK(dm_read_tsv(multi, &no, NULL, 0, -1, &raw) == DM_OK, "multi-member gzip: %s", dm_error_message());
    CHECK(raw.n == 3 && !strcmp(tl_str(&raw.items.keys, 1), "2"), "three records across the members: %zu", raw.n);
    dm_raw_free(&raw);
    /* an empty member between two others */
    write_gz("multi3.tsv.gz", "1\t1\n", "wb");
    write_gz("multi3.tsv.gz", "", "ab");
    const char *multi3 = write_gz("multi3.tsv.gz", "2\t2\n", "ab");
    CHECK(dm_read_tsv(multi3, &no, NULL, 0, -1, &raw) == DM_OK && raw.n == 2, "empty middle member: %s", dm_error_message());
    dm_raw_free(&raw);

    /* trailing data: was read silently */
    static const struct { const char *name, *junk; size_t n; } junk[] = {
        {"trail_text.tsv.gz", "garbage\n", 8}, {"trail_zeros.tsv.gz", "\0\0\0\0", 4}, {"trail_1f.tsv.gz", "\x1f", 1}};
    for (int k = 0; k < 3; k++) {
        const char *p = write_gz(junk[k].name, "1\t1\n2\t2\n", "wb");
        long sz = file_size(p);
        write_bytes(junk[k].name, junk[k].junk, junk[k].n, "ab");
        EXPECT_ERR(dm_read_tsv(p, &no, NULL, 0, -1, &raw), "%s' has trailing data after the gzip stream at byte %ld (of %ld)",
                   junk[k].name, sz, sz + (long)junk[k].n);
        dm_raw_free(&raw);
    }
    /* after the second member too, and through dm_read_file */
    write_gz("trail2.json.gz", "{\"5\": ", "wb");
    const char *t2 = write_gz("trail2.json.gz", "[1]}\n", "ab");
    long sz = file_size(t2);
    char *text;
    size_t len;
    CHECK(dm_read_file(t2, &text, &len) == DM_OK && len == 11 && !strcmp(text, "{\"5\": [1]}\n"), "dm_read_file joins members");
    free(text);
    write_bytes("trail2.json.gz", "PK", 2, "ab");
    EXPECT_ERR(dm_read_file(t2, &text, &len), "trail2.json.gz' has trailing data after the gzip stream at byte %ld", sz);
    /* something that starts like a member but is not one is corrupt, as gzip -t says */
    const char *bad = write_gz("badmember.tsv.gz", "1\t1\n", "wb");
    write_bytes("badmember.tsv.gz", "\x1f\x8b\x08\x00garbage-garbage", 19, "ab");
    EXPECT_ERR(dm_read_tsv(bad, &no, NULL, 0, -1, &raw), "badmember.tsv.gz' is truncated or corrupt after byte");
    dm_raw_free(&raw);
    /* a truncated member */
    char big[8192], *q = big;
    for (unsigned k = 0; k < 400; k++) q += sprintf(q, "%04u\t%04u\n", k, (k * 7919u) % 1000u);
    const char *full = write_gz("full.tsv.gz", big, "wb");
    long fs = file_size(full);
    FILE *f = fopen(full, "rb");
    unsigned char *b = malloc((size_t)fs);
    CHECK(fread(b, 1, (size_t)fs, f) == (size_t)fs, "read back");
    fclose(f);
    const char *cut = write_bytes("cut.tsv.gz", b, (size_t)fs - 6, "wb");
    free(b);
    EXPECT_ERR(dm_read_tsv(cut, &no, NULL, 0, -1, &raw), "cut.tsv.gz' is truncated or corrupt after byte");
    dm_raw_free(&raw);
    CHECK(dm_read_tsv(full, &no, NULL, 0, -1, &raw) == DM_OK && raw.n == 400, "the whole file: %s", dm_error_message());
    dm_raw_free(&raw);
}

/* stdout into a file while `fn` runs (dm_log prints there) */
static const char *captured(void (*fn)(void))
{
    static char out[8192];
    char path[640];
    snprintf(path, sizeof path, "%s/stdout.txt", g_dir);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    fn();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    out[n] = '\0';
    return out;
}

static int g_rc;
static size_t g_n;
static const char *g_path;
static dm_tsv_opts g_opts;
static void read_tsv_quietly(void)
{
    dm_raw raw = {0};
    g_rc = dm_read_tsv(g_path, &g_opts, NULL, 0, -1, &raw);
    g_n = raw.n;
    dm_raw_free(&raw);
}

static void test_header_decisions(void)
{
    dm_raw raw = {0};
    /* auto: the inferred header is logged once, with the file and the column names */
    g_path = write_file("hdr_auto.tsv", "user\titem\n1\t2\n3\t4\n");
    g_opts = (dm_tsv_opts){0, -1, "0", "1", "", 0, NULL};
    const char *log = captured(read_tsv_quietly);
    char want[800];
    snprintf(want, sizeof want, "'%s': line 1 taken as a header (its id columns are not integers), column names 'user', 'item'", g_path);
    CHECK(g_rc == DM_OK && g_n == 2 && strstr(log, want) && strstr(log, "'item'; set data.header = \"no\" if it is data"),
          "log: %s", log);
    const char *first = strstr(log, "taken as a header");
    CHECK(first && !strstr(first + 1, "taken as a header"), "logged once: %s", log);
    g_opts = (dm_tsv_opts){0, -1, "user", "item", "", 0, NULL};
    log = captured(read_tsv_quietly);
    CHECK(g_rc == DM_OK && g_n == 2 && strstr(log, "(data.user_col / data.item_col are names), column names 'user', 'item'"),
          "log with names: %s", log);
    g_path = write_file("hdr_num.tsv", "1\t2\n3\t4\n");
    g_opts = (dm_tsv_opts){0, -1, "0", "1", "", 0, NULL};
    log = captured(read_tsv_quietly);
    CHECK(g_rc == DM_OK && g_n == 2 && !strstr(log, "header"), "no header, nothing logged: %s", log);

    /* data.header = "no": a header read as data is an error naming line 1 and the column */
    dm_tsv_opts no = {0, 0, "0", "1", "", 0, NULL};
    const char *h = write_file("hdr_no.tsv", "user\titem\n1\t2\n3\t4\n");
    EXPECT_ERR(dm_read_tsv(h, &no, NULL, 0, -1, &raw), "hdr_no.tsv' line 1 column 1: id 'user' is not an integer, while the "
               "ids on line 2 are: line 1 looks like a header, and data.header = \"no\"");
    dm_raw_free(&raw);
    const char *h2 = write_file("hdr_no2.csv", "7,item\n\n1,2\n");
    EXPECT_ERR(dm_read_tsv(h2, &no, NULL, 0, -1, &raw), "hdr_no2.csv' line 1 column 2: id 'item' is not an integer, while the ids on line 3 are");
    dm_raw_free(&raw);
    /* whatever the stripe: rank 1 of 2 with blocks of one line never reads line 1's records */
    dm_stripe st = {1, 2, 1};
    EXPECT_ERR(dm_read_tsv(h, &no, &st, 0, -1, &raw), "hdr_no.tsv' line 1 column 1: id 'user' is not an integer");
    dm_raw_free(&raw);
    /* ids that are not integers throughout are data (Amazon's ratings CSVs have no header) */
    const char *s = write_file("hdr_no_str.csv", "A39HTATAQ9V7YF,0205616461,5.0\nAKJHHD5VEH7VG,B00004U9V2,4.0\n");
    CHECK(dm_read_tsv(s, &no, NULL, 0, -1, &raw) == DM_OK && raw.n == 2, "string ids without a header: %s", dm_error_message());
    dm_raw_free(&raw);
}

static void test_long_lines(void)
{
    dm_raw raw = {0};
    dm_meta m = {0};
    /* one user with 100,000 items (1.2 MB, longer than the reader's 1 MB block), was "more than 255 items" */
    const int N = 100000;
    size_t cap = (size_t)N * 12 + 64;
    char *t = malloc(cap), *p = t;
    p += sprintf(p, "u1");
    for (int k = 0; k < N; k++) p += sprintf(p, " item%06d", k);
    p += sprintf(p, "\nu2 a b\n");
    const char *seq = write_bytes("long_seq.txt", t, (size_t)(p - t), "wb");
    for (int layout = 0; layout <= 2; layout += 2) {
        CHECK(dm_read_sasrec(seq, layout, NULL, &raw) == DM_OK, "layout %d: %s", layout, dm_error_message());
        CHECK(raw.n == (size_t)N + 2 && raw.items.keys.n == (size_t)N + 2 && !strcmp(tl_str(&raw.items.keys, N - 1), "item099999") &&
                  raw.order[N - 1] == DM_ORDER(0, 1, N) && raw.order[N] == DM_ORDER(0, 2, 1),
              "layout %d: %zu records", layout, raw.n);
        dm_raw_free(&raw);
    }
    dm_stripe st = {1, 2, 1};
    CHECK(dm_read_sasrec(seq, 2, &st, &raw) == DM_OK && raw.n == 2, "stripe 1 of 2 reads line 2 only: %zu", raw.n);
    dm_raw_free(&raw);
    /* pairs layout reads lines of any length too, and says how many fields it found */
    EXPECT_ERR(dm_read_sasrec(seq, 1, NULL, &raw), "long_seq.txt' line 1: expected 'user item', found %d fields", N + 1);
    dm_raw_free(&raw);
    /* past what the input-order key can hold: an error, never a silent misorder */
    const int M = 1 << 20;
    free(t);
    t = malloc((size_t)M * 2 + 16);
    p = t;
    p += sprintf(p, "u");
    for (int k = 0; k < M; k++) *p++ = ' ', *p++ = (char)('a' + k % 26);
    *p++ = '\n';
    const char *huge = write_bytes("huge_seq.txt", t, (size_t)(p - t), "wb");
    EXPECT_ERR(dm_read_sasrec(huge, 2, NULL, &raw), "huge_seq.txt' line 1: 1048576 items on one line; at most 1048575 fit");
    dm_raw_free(&raw);

    /* TSV and CSV lines with 1000 fields (was "more than 256 fields") */
    p = t;
    for (int line = 0; line < 2; line++) {
        for (int k = 0; k < 1000; k++) p += sprintf(p, "%s%d", k ? "\t" : "", k == 0 ? line : k == 999 ? 7 + line : k == 500 ? 100 + line : 0);
        *p++ = '\n';
    }
    const char *wide = write_bytes("wide.tsv", t, (size_t)(p - t), "wb");
    dm_tsv_opts o = {'\t', 0, "0", "999", "500", 0, NULL};
    CHECK(dm_read_tsv(wide, &o, NULL, 0, -1, &raw) == DM_OK, "%s", dm_error_message());
    CHECK(raw.n == 2 && !strcmp(tl_str(&raw.items.keys, 1), "8") && raw.time[1] == 101000, "wide tsv");
    dm_raw_free(&raw);
    p = t;
    for (int k = 0; k < 300; k++) p += sprintf(p, "%s\"%d\"", k ? "," : "", k);
    *p++ = '\n';
    const char *wcsv = write_bytes("wide.csv", t, (size_t)(p - t), "wb");
    dm_tsv_opts oc = {',', 0, "0", "299", "", 0, NULL};
    CHECK(dm_read_tsv(wcsv, &oc, NULL, 0, -1, &raw) == DM_OK && raw.n == 1 && !strcmp(tl_str(&raw.items.keys, 0), "299"),
          "wide quoted csv: %s", dm_error_message());
    dm_raw_free(&raw);
    /* RecBole .item: 300 columns, the price last and 76 characters long (was cut to 63: 0) */
    p = t;
    p += sprintf(p, "item_id:token");
    for (int k = 1; k < 299; k++) p += sprintf(p, "\tx%d:token", k);
    p += sprintf(p, "\tprice:float\ni1");
    for (int k = 1; k < 299; k++) p += sprintf(p, "\tv");
    p += sprintf(p, "\t0.%0*d1e72\n", 70, 0);
    const char *wi = write_bytes("wide.item", t, (size_t)(p - t), "wb");
    CHECK(dm_read_recbole_item(wi, NULL, &m) == DM_OK && m.n == 1, "wide recbole item: %s", dm_error_message());
    CHECK(m.n == 1 && fabs(m.price[0] - 10.0) < 1e-9, "long price text: %g", m.n ? m.price[0] : NAN);
    dm_meta_free(&m);
    /* a 2 MB JSON line (a long title), and an Amazon price string longer than 63 characters */
    free(t);
    t = malloc(3 << 20);
    p = t;
    p += sprintf(p, "{\"parent_asin\": \"P1\", \"price\": \"$1");
    for (int k = 0; k < 22; k++) p += sprintf(p, ",000");
    p += sprintf(p, ".5\", \"title\": \"");
    for (int k = 0; k < (2 << 20); k++) *p++ = (char)('a' + k % 26);
    p += sprintf(p, "\"}\n");
    const char *lj = write_bytes("long.jsonl", t, (size_t)(p - t), "wb");
    CHECK(dm_read_amazon_meta(lj, 2023, NULL, &m) == DM_OK && m.n == 1, "2 MB JSON line: %s", dm_error_message());
    size_t tl = 0;
    if (m.n) dm_strtab_get(&m.title, 0, &tl);
    CHECK(tl == (size_t)(2 << 20) && fabs(m.price[0] - 1e66) < 1e51, "title length %zu, price %g", tl, m.n ? m.price[0] : NAN);
    dm_meta_free(&m);
    free(t);
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
    test_npy_sizes();
    test_timestamps();
    test_bom();
    test_gzip_members();
    test_header_decisions();
    test_long_lines();
    return tap_done("test_data");
}
