/* test_explain.c: evidence-grounded explanations (src/explain/): hand-computed evidence on a tiny
 * catalogue (neighbours, attention weights, counts, modality agreement), fast vs naive evidence on
 * random data, storage rows and the checker; the evidence encoder's fast vs naive kernels, every
 * parameter tensor and input gradient against central finite differences, the masked evidence, an
 * Adam overfit, and parity with PyTorch (tests/reference/gen_explain.py through DM_REF_DIR);
 * template parsing; the no-hallucination property of rationales written by a tiny GPT-2 (every
 * slot value belongs to the evidence, each slot its strongest allowed value), for templates and for
 * free-form decoding through the evidence trie; the template choice (the coverage/length term, the
 * joint assignment under the share cap against brute force); FMR / FCR / DIV, evidence precision and deletion helpers
 * against hand-computed values. */
#include "../../src/config/config.h"
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/rng.h"
#include "../../src/core/sort.h"
#include "../../src/data/dataset.h"
#include "../../src/explain/explain.h"
#include "../../src/explain/explain_enc.h"
#include "../../src/explain/explain_free.h"
#include "../../src/explain/explain_metrics.h"
#include "../../src/explain/explain_rationale.h"
#include "../../src/lm/gpt2.h"
#include "../../src/lm/lm.h"
#include "../../src/nn/adam.h"
#include "../../src/nn/mlp.h"
#include "tap.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the tiny catalogue ----
 * item  title           brand   categories              price  z
 *  0    red lipstick    Acme    Beauty > Makeup > Lips   5     ( 1,  0)
 *  1    matte blush     Acme    Beauty > Makeup > Face   9     ( 0,  1)
 *  2    rose perfume    Floral  Beauty > Fragrance      40     (-1,  0)
 *  3    lip balm        Floral  Beauty > Makeup > Lips   3     ( 1,  1)
 *  4    night cream     Dermo   Beauty > Skin           25     ( 0, -1)
 *  5    eye liner       Acme    Beauty > Makeup > Eyes  15     ( 2,  1)
 *  6    (no title)      Acme    Beauty > Skin           50     ( 0,  0)
 * price buckets <= 10, <= 30, > 30.  users (h): 0 (1, 0.25): 0 1 5 2;  1 (0.6, 0.8): 0 3 4;
 * 2 (1, 1): 2 3 0 1;  3 (-1, 0): 4 5 1 6. */
#define NI 7
#define NU 4
static const char *titles[NI] = {"red lipstick", "matte blush", "rose perfume", "lip balm", "night cream", "eye liner", ""};
static const char *brands[NI] = {"Acme", "Acme", "Floral", "Floral", "Dermo", "Acme", "Acme"};
static const char *cats[NI] = {"Beauty\tMakeup\tLips", "Beauty\tMakeup\tFace", "Beauty\tFragrance", "Beauty\tMakeup\tLips",
                               "Beauty\tSkin",         "Beauty\tMakeup\tEyes", "Beauty\tSkin"};
static const double prices[NI] = {5, 9, 40, 3, 25, 15, 50};
static const float Z[NI * 2] = {1, 0, 0, 1, -1, 0, 1, 1, 0, -1, 2, 1, 0, 0};
static const float HU[NU * 2] = {1, 0.25f, 0.6f, 0.8f, 1, 1, -1, 0};
static const int hist_of[NU][5] = {{0, 1, 5, 2, -1}, {0, 3, 4, -1, -1}, {2, 3, 0, 1, -1}, {4, 5, 1, 6, -1}};
/* explain.coverage_weight of the rationale tests (the default) */
#define COVW 1.0

static int catalogue(dm_dataset *d)
{
    dm_raw raw = {0};
    dm_meta meta = {0};
    raw.has_time = 1;
    char id[16], uid[16];
    int64_t ord = 1;
    for (int i = 0; i < NI; i++) {
        snprintf(id, sizeof id, "%d", i);
        dm_meta_push(&meta, id, strlen(id), titles[i][0] ? titles[i] : NULL, brands[i], cats[i], NULL, prices[i], i + 1);
    }
    for (int u = 0; u < NU; u++)
        for (int k = 0; hist_of[u][k] >= 0; k++) {
            snprintf(uid, sizeof uid, "%d", u);
            snprintf(id, sizeof id, "%d", hist_of[u][k]);
            dm_raw_push(&raw, uid, strlen(uid), id, strlen(id), 1000 * (k + 1), ord++, -1);
        }
    static const double edges[2] = {10, 30};
    dm_process_opts o = tl_process_opts(edges, 2, 3, 1);
    o.numeric_ids = 1;
    int rc = dm_process(&raw, &meta, &o, d, NULL);
    dm_raw_free(&raw);
    dm_meta_free(&meta);
    return rc;
}

static int find_attr(const dm_dataset *d, int kind, const char *name)
{
    for (size_t a = 0; a < d->n_attr; a++) {
        size_t l;
        const char *s = dm_strtab_get(&d->attr_name, a, &l);
        if (d->attr_kind[a] == kind && l == strlen(name) && !memcmp(s, name, l)) return (int)a;
    }
    return -1;
}

/* ---- evidence ---- */

/* the users who took each item, over all interactions and over the training split of
 * leave-one-out; returns the former in *toff / *took */
static void check_item_users(const dm_dataset *d, int64_t **toff_out, int32_t **took_out)
{
    int64_t *toff;
    int32_t *took;
    CHECK(explain_item_users(d, NULL, &toff, &took) == DM_OK, "item users");
    *toff_out = toff;
    *took_out = took;
    /* took(3) = {1, 2}; took(0) = {0, 1, 2}; took(6) = {3} */
    CHECK(toff[4] - toff[3] == 2 && took[toff[3]] == 1 && took[toff[3] + 1] == 2, "users of item 3");
    CHECK(toff[1] - toff[0] == 3 && took[0] == 0 && took[1] == 1 && took[2] == 2, "users of item 0");
    CHECK(toff[7] - toff[6] == 1 && took[toff[6]] == 3, "users of item 6");
    /* training split of leave-one-out (each user's last two items are valid / test): item 2 is user
     * 0's test target and user 2's first item, item 1 user 0's second and user 3's valid item */
    int64_t *toff2;
    int32_t *took2;
    CHECK(explain_item_users(d, d->split_loo, &toff2, &took2) == DM_OK, "item users (train)");
    CHECK(toff2[3] - toff2[2] == 1 && took2[toff2[2]] == 2, "training users of item 2");
    CHECK(toff2[2] - toff2[1] == 1 && took2[toff2[1]] == 0, "training users of item 1");
    free(toff2);
    free(took2);
}

/* the attributes of the tiny catalogue the hand-computed evidence names */
typedef struct {
    int lips, beauty, makeup, floral, p10;
} hand_attrs;

/* the evidence of (user 0, item 3) with hist, built fast and naive: neighbours, history items,
 * attention over the attributes with their counts, the agreeing modality; the checker accepts it */
static void check_hand_evidence(const explain_src *s, const hand_attrs *at, const int32_t *hist, explain_evidence *ev)
{
    for (int naive = 0; naive < 2; naive++) {
        int rc = (naive ? explain_evidence_build_naive : explain_evidence_build)(s, 0, 3, hist, 4, ev);
        CHECK(rc == DM_OK, "build: %s", dm_error_message());
        CHECK(ev->n == 2 + 2 + 3 + 1 && ev->n_kind[0] == 2 && ev->n_kind[1] == 2 && ev->n_kind[2] == 3 &&
                  ev->n_kind[3] == 1,
              "%d elements (%d %d %d %d)", ev->n, ev->n_kind[0], ev->n_kind[1], ev->n_kind[2], ev->n_kind[3]);
        if (ev->n != 8) continue;
        /* users who took 3: 2 (cos 0.857493), then 1 (cos 0.776114) */
        CHECK(ev->el[0].kind == EXPLAIN_USER && ev->el[0].id == 2 && ev->el[1].id == 1, "neighbours %d %d",
              ev->el[0].id, ev->el[1].id);
        NEAR(ev->el[0].weight, 0.8574929257125442, 1e-6, "sim(h_0, h_2)");
        NEAR(ev->el[1].weight, 0.7761140001162655, 1e-6, "sim(h_0, h_1)");
        /* history: 5 (3/sqrt(10)), then the tie 0 / 1 at 1/sqrt(2) goes to the smaller id */
        CHECK(ev->el[2].kind == EXPLAIN_ITEM && ev->el[2].id == 5 && ev->el[3].id == 0, "history items %d %d",
              ev->el[2].id, ev->el[3].id);
        NEAR(ev->el[2].weight, 0.9486832980505137, 1e-6, "sim(z_3, z_5)");
        NEAR(ev->el[3].weight, 0.7071067811865475, 1e-6, "sim(z_3, z_0)");
        /* attention over item 3's five attributes at tau = 0.1: Lips .38551, Beauty .27318, Makeup .22342
         * (price <= 10 .11764 and Floral .00025 not kept) */
        CHECK(ev->el[4].id == at->lips && ev->el[5].id == at->beauty && ev->el[6].id == at->makeup,
              "attributes %d %d %d", ev->el[4].id, ev->el[5].id, ev->el[6].id);
        NEAR(ev->el[4].weight, 0.3855116084290466, 1e-6, "a_Lips");
        NEAR(ev->el[5].weight, 0.27317696792112234, 1e-6, "a_Beauty");
        NEAR(ev->el[6].weight, 0.22342023383257617, 1e-6, "a_Makeup");
        /* history counts over {0, 1, 2, 5}: Lips 1, Beauty 4, Makeup 3 */
        CHECK(ev->el[4].count == 1 && ev->el[5].count == 4 && ev->el[6].count == 3, "counts %d %d %d",
              ev->el[4].count, ev->el[5].count, ev->el[6].count);
        /* modality: visual (cos 0.989461) beats text (0.242536) */
        CHECK(ev->el[7].kind == EXPLAIN_MODAL && ev->el[7].id == 1, "modality %d", ev->el[7].id);
        NEAR(ev->el[7].weight, 0.9894610641341026, 1e-6, "sim(h_0, z_3^visual)");
        CHECK(explain_evidence_check(s, ev) == DM_OK, "check: %s", dm_error_message());
    }
}

/* explain_src_init from the config and the dataset gives the same evidence as ev (no modality
 * latents) */
static void check_src_init(const dm_dataset *d, const int32_t *hist, const explain_evidence *ev)
{
    dm_cfg cfg;
    dm_cfg_init(&cfg);
    dm_cfg_set(&cfg, "explain.k_items=2");
    dm_cfg_set(&cfg, "explain.k_attrs=3");
    explain_src s2;
    CHECK(explain_src_init(&s2, &cfg, d, NULL, HU, Z, 2) == DM_OK, "src init: %s", dm_error_message());
    CHECK(s2.k_users == 5 && s2.k_items == 2 && s2.k_attrs == 3 && s2.modal == 1 && s2.sim == EXPLAIN_SIM_COSINE &&
              fabsf(s2.attr_temp - 0.1f) < 1e-7f,
          "keys");
    explain_evidence e2;
    explain_evidence_init(&e2, s2.k_users, s2.k_items, s2.k_attrs);
    explain_evidence_build(&s2, 0, 3, hist, 4, &e2);
    int same = e2.n == 7;
    for (int j = 0; same && j < 7; j++)
        same = e2.el[j].id == ev->el[j].id && e2.el[j].weight == ev->el[j].weight && e2.el[j].count == ev->el[j].count;
    CHECK(same, "explain_src_init evidence differs from the hand-built source");
    explain_evidence_free(&e2);
    explain_src_free(&s2);
    dm_cfg_free(&cfg);
}

/* all five attributes: the full softmax sums to one; price and Floral come last */
static void check_all_attrs(explain_src *s, const hand_attrs *at, const int32_t *hist)
{
    s->k_attrs = 5;
    explain_evidence ev5;
    explain_evidence_init(&ev5, 5, 2, 5);
    CHECK(explain_evidence_build(s, 0, 3, hist, 4, &ev5) == DM_OK, "build k_attrs 5");
    double tot = 0;
    for (int j = 4; j < 9; j++) tot += ev5.el[j].weight;
    NEAR(tot, 1.0, 1e-6, "attention weights of all attributes sum to 1");
    CHECK(ev5.el[7].id == at->p10 && ev5.el[8].id == at->floral && ev5.el[7].count == 2 && ev5.el[8].count == 1,
          "price bucket then brand, counts %d %d", ev5.el[7].count, ev5.el[8].count);
    NEAR(ev5.el[7].weight, 0.11764009961836316, 1e-6, "a_price<=10");
    NEAR(ev5.el[8].weight, 0.0002510901988916949, 1e-7, "a_Floral");
    explain_evidence_free(&ev5);
    s->k_attrs = 3;
}

/* without the visual latent, then without any; a user who took the item himself; dot similarity;
 * and the checker refusing tampered evidence. present (NI, 2) is s's modality mask. */
static void check_evidence_variants(explain_src *s, uint8_t *present, const dm_dataset *d, const int32_t *hist,
                                    explain_evidence *ev)
{
    /* visual absent: text is the agreeing modality; no modality at all: no element */
    present[3 * 2 + 1] = 0;
    explain_evidence_build(s, 0, 3, hist, 4, ev);
    CHECK(ev->n_kind[EXPLAIN_MODAL] == 1 && ev->el[ev->n - 1].id == 0, "text modality when visual is absent");
    NEAR(ev->el[ev->n - 1].weight, 0.24253562503633297, 1e-6, "sim(h_0, z_3^text)");
    present[3 * 2 + 0] = 0;
    explain_evidence_build(s, 0, 3, hist, 4, ev);
    CHECK(ev->n_kind[EXPLAIN_MODAL] == 0 && ev->n == 7, "no modality element without modalities");
    /* user 1 took item 3 himself: not his own neighbour; repeats and i in the history are ignored */
    int32_t hist1[6] = {0, 3, 4, 0, 4, 3};
    explain_evidence_build(s, 1, 3, hist1, 6, ev);
    CHECK(ev->n_kind[EXPLAIN_USER] == 1 && ev->el[0].id == 2, "user 1's neighbours for item 3");
    CHECK(ev->n_kind[EXPLAIN_ITEM] == 2 && ev->el[1].id != ev->el[2].id && ev->el[1].id != 3 && ev->el[2].id != 3,
          "distinct history items other than i");
    /* dot similarity: sim(h_0, h_2) = 1.25, sim(h_0, h_1) = 0.8 */
    s->sim = EXPLAIN_SIM_DOT;
    explain_evidence_build(s, 0, 3, hist, 4, ev);
    NEAR(ev->el[0].weight, 1.25, 1e-6, "dot(h_0, h_2)");
    NEAR(ev->el[1].weight, 0.8, 1e-6, "dot(h_0, h_1)");
    /* the checker refuses tampered evidence */
    CHECK(explain_evidence_check(s, ev) == DM_OK, "check: %s", dm_error_message());
    ev->el[0].id = 0;
    CHECK(explain_evidence_check(s, ev) == DM_EINPUT, "own neighbour refused");
    ev->el[0].id = 3;
    CHECK(explain_evidence_check(s, ev) == DM_EINPUT && strstr(dm_error_message(), "did not take"),
          "a neighbour who did not take the item refused: %s", dm_error_message());
    ev->el[0].id = 2;
    int a0 = ev->el[4].id;
    ev->el[4].id = find_attr(d, DM_ATTR_BRAND, "Acme");
    CHECK(explain_evidence_check(s, ev) == DM_EINPUT && strstr(dm_error_message(), "does not belong"),
          "an attribute of another item refused: %s", dm_error_message());
    ev->el[4].id = a0;
    dm_error_clear();
}

static void test_evidence_hand(void)
{
    dm_dataset d;
    int rc = catalogue(&d);
    CHECK(rc == DM_OK, "catalogue: %s", dm_error_message());
    if (rc) return;
    CHECK(d.n_items == NI && d.n_users == NU, "%zu items, %zu users", d.n_items, d.n_users);
    int64_t *toff;
    int32_t *took;
    check_item_users(&d, &toff, &took);

    float emb[64 * 2];
    CHECK(d.n_attr <= 64, "%zu attributes", d.n_attr);
    CHECK(explain_attr_embed(NI, 2, Z, d.n_attr, d.item_attr_off, d.item_attr, emb) == DM_OK, "attr embed");
    hand_attrs at = {find_attr(&d, DM_ATTR_CATEGORY, "Lips"), find_attr(&d, DM_ATTR_CATEGORY, "Beauty"),
                     find_attr(&d, DM_ATTR_CATEGORY, "Makeup"), find_attr(&d, DM_ATTR_BRAND, "Floral"),
                     find_attr(&d, DM_ATTR_PRICE, "price <= 10")};
    CHECK(at.lips >= 0 && at.beauty >= 0 && at.makeup >= 0 && at.floral >= 0 && at.p10 >= 0, "attributes %d %d %d %d %d",
          at.lips, at.beauty, at.makeup, at.floral, at.p10);
    if (at.lips < 0 || at.beauty < 0 || at.makeup < 0 || at.floral < 0 || at.p10 < 0) goto out;
    /* e_Makeup = mean z of items 0, 1, 3, 5 = (1, 0.75); e_Beauty = mean of all 7 = (3/7, 2/7) */
    NEAR(emb[at.makeup * 2], 1.0, 1e-6, "e_Makeup[0]");
    NEAR(emb[at.makeup * 2 + 1], 0.75, 1e-6, "e_Makeup[1]");
    NEAR(emb[at.beauty * 2], 3.0 / 7, 1e-6, "e_Beauty[0]");
    NEAR(emb[at.beauty * 2 + 1], 2.0 / 7, 1e-6, "e_Beauty[1]");

    /* per-modality latents of item 3: text (0, 1), visual (1, 0.1) */
    float zm[NI * 2 * 2] = {0};
    uint8_t present[NI * 2] = {0};
    zm[(3 * 2 + 0) * 2 + 1] = 1;
    zm[(3 * 2 + 1) * 2 + 0] = 1;
    zm[(3 * 2 + 1) * 2 + 1] = 0.1f;
    present[3 * 2 + 0] = present[3 * 2 + 1] = 1;
    explain_src s = {.n_users = NU, .n_items = NI, .d = 2, .h = HU, .z = Z, .took_off = toff, .took = took,
                     .n_attr = d.n_attr, .attr_off = d.item_attr_off, .attr = d.item_attr, .attr_emb = emb,
                     .n_modal = 2, .zm = zm, .present = present, .k_users = 5, .k_items = 2, .k_attrs = 3,
                     .modal = 1, .sim = EXPLAIN_SIM_COSINE, .attr_temp = 0.1f};
    explain_evidence ev;
    explain_evidence_init(&ev, 5, 2, 3);
    int32_t hist[4] = {0, 1, 5, 2};
    check_hand_evidence(&s, &at, hist, &ev);
    check_src_init(&d, hist, &ev);
    check_all_attrs(&s, &at, hist);
    check_evidence_variants(&s, present, &d, hist, &ev);
    explain_evidence_free(&ev);
    printf("evidence: hand-computed neighbours, attention and modality agree (fast and naive)\n");
out:
    free(toff);
    free(took);
    dm_dataset_free(&d);
}

/* A random evidence source: 60 users, 80 items, 25 attributes, 3 modalities, latents of width 6
 * (coarse, so that exact ties occur); rand_src_free releases it. */
typedef struct {
    float *h, *z, *zm, *emb;
    uint8_t *present;
    int64_t *toff, *aoff;
    int32_t *took, *attr;
    explain_src s;
} rand_src;

static void rand_src_make(rand_src *q, dm_rng *rp)
{
    const size_t nu = 60, ni = 80, d = 6, na = 25;
    const int K = 3;
    float *h = malloc(nu * d * sizeof *h), *z = malloc(ni * d * sizeof *z), *zm = malloc(ni * K * d * sizeof *zm);
    float *emb = malloc(na * d * sizeof *emb);
    uint8_t *present = malloc(ni * K);
    int64_t *toff = calloc(ni + 1, sizeof *toff), *aoff = calloc(ni + 1, sizeof *aoff);
    int32_t *took = malloc(ni * nu * sizeof *took), *attr = malloc(ni * na * sizeof *attr);
    dm_rng r = *rp;
    /* coarse latents so that exact ties occur */
    for (size_t k = 0; k < nu * d; k++) h[k] = (float)(int)(3 * dm_rng_normal(&r)) / 2;
    for (size_t k = 0; k < ni * d; k++) z[k] = (float)(int)(3 * dm_rng_normal(&r)) / 2;
    for (size_t k = 0; k < ni * K * d; k++) zm[k] = (float)dm_rng_normal(&r);
    for (size_t k = 0; k < ni * K; k++) present[k] = dm_rng_uniform(&r) < 0.6;
    for (size_t i = 0; i < ni; i++) {
        toff[i + 1] = toff[i];
        for (size_t u = 0; u < nu; u++)
            if (dm_rng_uniform(&r) < 0.2) took[toff[i + 1]++] = (int32_t)u;
        aoff[i + 1] = aoff[i];
        for (size_t a = 0; a < na; a++)
            if (dm_rng_uniform(&r) < 0.15) attr[aoff[i + 1]++] = (int32_t)a;
    }
    CHECK(explain_attr_embed(ni, d, z, na, aoff, attr, emb) == DM_OK, "embed");
    *rp = r;
    *q = (rand_src){h, z, zm, emb, present, toff, aoff, took, attr,
                    {.n_users = nu, .n_items = ni, .d = d, .h = h, .z = z, .took_off = toff, .took = took, .n_attr = na,
                     .attr_off = aoff, .attr = attr, .attr_emb = emb, .n_modal = K, .zm = zm, .present = present,
                     .k_users = 4, .k_items = 3, .k_attrs = 3, .modal = 1, .sim = EXPLAIN_SIM_COSINE, .attr_temp = 0.5f}};
}

static void rand_src_free(rand_src *q)
{
    TL_FREE(q->h, q->z, q->zm, q->emb, q->present, q->toff, q->aoff, q->took, q->attr);
}

static void test_evidence_random(void)
{
    const size_t nu = 60, ni = 80;
    dm_rng r;
    dm_rng_seed(&r, 17);
    rand_src q;
    rand_src_make(&q, &r);
    explain_src s = q.s;
    explain_evidence a, b, c;
    explain_evidence_init(&a, 4, 3, 3);
    explain_evidence_init(&b, 4, 3, 3);
    explain_evidence_init(&c, 4, 3, 3);
    const int W = explain_evidence_width(4, 3, 3);
    int8_t kind[16];
    int32_t id[16], cnt[16];
    float w[16];
    int bad = 0, badcheck = 0, badpack = 0;
    for (int t = 0; t < 300; t++) {
        s.sim = t % 2 ? EXPLAIN_SIM_DOT : EXPLAIN_SIM_COSINE;
        int32_t u = (int32_t)dm_rng_below(&r, nu), i = (int32_t)dm_rng_below(&r, ni), hist[40];
        int nh = (int)dm_rng_below(&r, 40);
        for (int k = 0; k < nh; k++) hist[k] = (int32_t)dm_rng_below(&r, ni);
        explain_evidence_build(&s, u, i, hist, nh, &a);
        explain_evidence_build_naive(&s, u, i, hist, nh, &b);
        int same = a.n == b.n;
        for (int j = 0; same && j < a.n; j++)
            same = a.el[j].kind == b.el[j].kind && a.el[j].id == b.el[j].id && a.el[j].weight == b.el[j].weight &&
                   a.el[j].count == b.el[j].count;
        bad += !same;
        badcheck += explain_evidence_check(&s, &a) != DM_OK;
        explain_evidence_pack(&a, W, kind, id, w, cnt);
        explain_evidence_unpack(&c, u, i, W, kind, id, w, cnt);
        int rt = c.n == a.n && !memcmp(c.n_kind, a.n_kind, sizeof a.n_kind);
        for (int j = 0; rt && j < a.n; j++)
            rt = c.el[j].kind == a.el[j].kind && c.el[j].id == a.el[j].id && c.el[j].weight == a.el[j].weight &&
                 c.el[j].count == a.el[j].count;
        badpack += !rt;
    }
    CHECK(bad == 0, "%d of 300 random evidence sets differ between the top-k and the full-sort builders", bad);
    CHECK(badcheck == 0, "%d of 300 evidence sets fail the checker: %s", badcheck, dm_error_message());
    CHECK(badpack == 0, "%d of 300 evidence sets do not survive pack / unpack", badpack);
    explain_evidence_free(&a);
    explain_evidence_free(&b);
    explain_evidence_free(&c);
    rand_src_free(&q);
    printf("evidence: 300 random sets, top-k = full sort, checker and storage rows agree\n");
}

/* the expected top k of (score, id) pairs: higher score first, then smaller id */
static int ref_topk(double *sc, int32_t *id, int n, int k)
{
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && (sc[b] > sc[b - 1] || (sc[b] == sc[b - 1] && id[b] < id[b - 1])); b--) {
            double t = sc[b];
            sc[b] = sc[b - 1];
            sc[b - 1] = t;
            int32_t ti = id[b];
            id[b] = id[b - 1];
            id[b - 1] = ti;
        }
    return n < k ? n : k;
}

/* User evidence recomputed from its definition (explain.h), written out independently of
 * explain.c: expected elements into (kind, id, weight, count), the modality feature into mf.
 * Returns the element count. */
static int ref_user_evidence(const explain_src *s, int32_t u, const int32_t *hist, int nh, int8_t *kind, int32_t *id,
                             double *wt, int32_t *cnt, double *mf)
{
    const size_t d = s->d;
    const float *hu = s->h + (size_t)u * d;
    int32_t dh[64], ids[256];
    double sc[256];
    int m = 0, n = 0;
    for (int k = 0; k < nh; k++) {
        int dup = 0;
        for (int q = 0; q < m; q++) dup |= dh[q] == hist[k];
        if (!dup) dh[m++] = hist[k];
    }
    /* neighbours: the other users who took a history item */
    int c = 0;
    for (size_t v = 0; v < s->n_users; v++) {
        int took = 0;
        for (int j = 0; j < m; j++)
            for (int64_t q = s->took_off[dh[j]]; q < s->took_off[dh[j] + 1]; q++) took |= s->took[q] == (int32_t)v;
        if ((int32_t)v != u && took) sc[c] = explain_sim(s->sim, hu, s->h + v * d, d), ids[c++] = (int32_t)v;
    }
    for (int j = 0, k = ref_topk(sc, ids, c, s->k_users); j < k; j++) kind[n] = 0, id[n] = ids[j], wt[n] = sc[j], cnt[n++] = 0;
    c = 0;
    for (int j = 0; j < m; j++) sc[c] = explain_sim(s->sim, hu, s->z + (size_t)dh[j] * d, d), ids[c++] = dh[j];
    for (int j = 0, k = ref_topk(sc, ids, c, s->k_items); j < k; j++) kind[n] = 1, id[n] = ids[j], wt[n] = sc[j], cnt[n++] = 0;
    /* the attribute profile: every attribute some history item holds, softmax attention over them */
    c = 0;
    for (size_t a = 0; a < s->n_attr; a++) {
        int held = 0;
        for (int j = 0; j < m; j++)
            for (int64_t q = s->attr_off[dh[j]]; q < s->attr_off[dh[j] + 1]; q++) held |= s->attr[q] == (int32_t)a;
        if (held) sc[c] = explain_sim(s->sim, hu, s->attr_emb + a * d, d) / s->attr_temp, ids[c++] = (int32_t)a;
    }
    double z = 0, mx = -INFINITY;
    for (int j = 0; j < c; j++) mx = fmax(mx, sc[j]);
    for (int j = 0; j < c; j++) z += exp(sc[j] - mx);
    for (int j = 0, k = ref_topk(sc, ids, c, s->k_attrs); j < k; j++) {
        int h = 0;
        for (int q = 0; q < m; q++)
            for (int64_t e = s->attr_off[dh[q]]; e < s->attr_off[dh[q] + 1]; e++) h += s->attr[e] == ids[j];
        kind[n] = 2, id[n] = ids[j], wt[n] = exp(sc[j] - mx) / z, cnt[n++] = h;
    }
    /* the modality: the best mean similarity over the history items that have it */
    int best = -1;
    double bs = 0;
    for (int k = 0; k < s->n_modal; k++) {
        double acc = 0;
        int cn = 0;
        for (int j = 0; j < m; j++)
            if (s->present[(size_t)dh[j] * s->n_modal + k])
                acc += explain_sim(s->sim, hu, s->zm + ((size_t)dh[j] * s->n_modal + k) * d, d), cn++;
        if (cn && (best < 0 || acc / cn > bs)) best = k, bs = acc / cn;
    }
    if (best >= 0) {
        int cn = 0;
        for (size_t e = 0; e < d; e++) mf[e] = 0;
        for (int j = 0; j < m; j++)
            if (s->present[(size_t)dh[j] * s->n_modal + best]) {
                for (size_t e = 0; e < d; e++) mf[e] += s->zm[((size_t)dh[j] * s->n_modal + best) * d + e];
                cn++;
            }
        for (size_t e = 0; e < d; e++) mf[e] /= cn;
        kind[n] = 3, id[n] = best, wt[n] = bs, cnt[n++] = 0;
    }
    return n;
}

/* User evidence on random sources: the builder (top-k and full sort) against the definition
 * written out here, the checker (and that it refuses a broken element), the encoder features. */
static void test_user_evidence(void)
{
    dm_rng r;
    dm_rng_seed(&r, 23);
    rand_src q;
    rand_src_make(&q, &r);
    explain_src s = q.s;
    explain_evidence a, b;
    explain_evidence_init(&a, 4, 3, 3);
    explain_evidence_init(&b, 4, 3, 3);
    int8_t kind[16], fk[16];
    int32_t id[16], cnt[16];
    double wt[16], mf[8];
    float fx[16 * 6], fw[16];
    int bad = 0, badnaive = 0, badcheck = 0, badfeat = 0, nmodal = 0, nel = 0;
    double worst = 0;
    for (int t = 0; t < 200; t++) {
        s.sim = t % 2 ? EXPLAIN_SIM_DOT : EXPLAIN_SIM_COSINE;
        int32_t u = (int32_t)dm_rng_below(&r, s.n_users), hist[40];
        int nh = (int)dm_rng_below(&r, 40);
        for (int k = 0; k < nh; k++) hist[k] = (int32_t)dm_rng_below(&r, s.n_items);
        CHECK(explain_user_evidence_build(&s, u, hist, nh, &a) == DM_OK, "build: %s", dm_error_message());
        explain_user_evidence_build_naive(&s, u, hist, nh, &b);
        int n = ref_user_evidence(&s, u, hist, nh, kind, id, wt, cnt, mf);
        int same = a.n == n && a.item == -1 && a.user == u;
        for (int j = 0; same && j < n; j++) {
            same = a.el[j].kind == kind[j] && a.el[j].id == id[j] && a.el[j].count == cnt[j];
            /* weights: float of a double-precision similarity; rounding and the order of the sums */
            double e = fabs(a.el[j].weight - wt[j]);
            worst = fmax(worst, e);
            same = same && e <= 1e-6 * fmax(1.0, fabs(wt[j]));
        }
        bad += !same;
        int sn = a.n == b.n;
        for (int j = 0; sn && j < a.n; j++)
            sn = a.el[j].kind == b.el[j].kind && a.el[j].id == b.el[j].id && a.el[j].weight == b.el[j].weight;
        badnaive += !sn;
        badcheck += explain_user_evidence_check(&s, &a, hist, nh) != DM_OK;
        int m = 0;
        explain_evidence_features(&s, &a, NULL, fk, fx, fw, &m);
        for (int j = 0; j < m; j++)
            if (fk[j] == EXPLAIN_MODAL) {
                nmodal++;
                for (size_t e = 0; e < s.d; e++) badfeat += fabs(fx[(size_t)j * s.d + e] - mf[e]) > 1e-6 * fmax(1, fabs(mf[e]));
            } else if (fk[j] == EXPLAIN_USER) {
                badfeat += memcmp(fx + (size_t)j * s.d, s.h + (size_t)a.el[j].id * s.d, s.d * sizeof *fx) != 0;
            }
        nel += n;
    }
    CHECK(bad == 0, "%d of 200 user evidence sets differ from the definition (worst weight difference %.3g)", bad, worst);
    CHECK(badnaive == 0, "%d of 200 user evidence sets differ between the top-k and the full-sort builders", badnaive);
    CHECK(badcheck == 0, "%d of 200 user evidence sets fail the checker: %s", badcheck, dm_error_message());
    CHECK(badfeat == 0 && nmodal > 100, "%d encoder feature rows wrong (%d modality elements)", badfeat, nmodal);
    /* the checker refuses what does not belong to the user */
    int32_t hist[3] = {5, 9, 5};
    explain_user_evidence_build(&s, 7, hist, 3, &a);
    CHECK(explain_user_evidence_check(&s, &a, hist, 3) == DM_OK, "a user evidence set passes: %s", dm_error_message());
    for (int j = 0; j < a.n; j++) {
        explain_elem keep = a.el[j];
        if (keep.kind == EXPLAIN_USER) { /* the user, or one who took neither history item */
            int32_t v = 0;
            while (v == 7 || bsearch(&v, q.took + q.toff[5], (size_t)(q.toff[6] - q.toff[5]), 4, dm_cmp_i32) ||
                   bsearch(&v, q.took + q.toff[9], (size_t)(q.toff[10] - q.toff[9]), 4, dm_cmp_i32))
                v++;
            a.el[j].id = j % 2 ? 7 : v;
        }
        else if (keep.kind == EXPLAIN_ITEM) a.el[j].id = 6;
        else if (keep.kind == EXPLAIN_ATTR) a.el[j].count++;
        else a.el[j].id = 9;
        CHECK(explain_user_evidence_check(&s, &a, hist, 3) == DM_EINPUT, "a broken %s element is refused",
              explain_kind_names[keep.kind]);
        dm_error_clear();
        a.el[j] = keep;
    }
    explain_evidence_free(&a);
    explain_evidence_free(&b);
    rand_src_free(&q);
    printf("user evidence: 200 random users (%d elements), the definition recomputed, top-k = full sort, checker, "
           "features; worst weight difference %.2g\n", nel, worst);
}

/* ---- the evidence encoder ---- */

typedef struct {
    explain_enc_config c;
    explain_enc e;
    float *w, *g;
    explain_enc_acts a;
    int B, N;
    int64_t off[8];
    int8_t kind[64];
    float *x, *wt, *y, *R;
} enc_case;

static void enc_setup(enc_case *t, int din, int D, int E, int H, int C, int G, const int *sizes, int B, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->c = (explain_enc_config){din, D, E, H, C, 1e-5f, G};
    size_t P = explain_enc_size(&t->c);
    t->w = calloc(P, sizeof *t->w);
    t->g = calloc(P, sizeof *t->g);
    explain_enc_bind(&t->e, &t->c, t->w, t->g);
    explain_enc_init(&t->e, seed, 1.0f);
    dm_rng r;
    dm_rng_seed(&r, seed + 1);
    /* perturb every tensor away from its symmetric start */
    for (int k = 0; k < H; k++) {
        t->e.mlp.lnw[k] = 1.0f + 0.3f * (float)dm_rng_normal(&r);
        t->e.mlp.lnb[k] = 0.2f * (float)dm_rng_normal(&r);
    }
    for (int k = 0; k < D; k++) t->e.k0[k] += 0.3f * (float)dm_rng_normal(&r);
    t->B = B;
    t->off[0] = 0;
    for (int b = 0; b < B; b++) t->off[b + 1] = t->off[b] + sizes[b];
    t->N = (int)t->off[B];
    t->x = malloc((size_t)t->N * din * sizeof *t->x + 1);
    t->wt = malloc((size_t)t->N * sizeof *t->wt + 1);
    t->y = malloc((size_t)B * E * C * sizeof *t->y);
    t->R = malloc((size_t)B * E * C * sizeof *t->R);
    for (int j = 0; j < t->N; j++) {
        t->kind[j] = (int8_t)dm_rng_below(&r, 4);
        t->wt[j] = (float)(2 * dm_rng_uniform(&r) - 1);
        for (int c = 0; c < din; c++) t->x[(size_t)j * din + c] = (float)dm_rng_normal(&r);
    }
    for (int k = 0; k < B * E * C; k++) t->R[k] = (float)dm_rng_normal(&r);
    explain_enc_acts_init(&t->a, &t->c, B, t->N);
}

static void enc_teardown(enc_case *t)
{
    TL_FREE(t->w, t->g, t->x, t->wt, t->y, t->R);
    explain_enc_acts_free(&t->a);
}

static double enc_loss(enc_case *t)
{
    explain_enc_forward_naive(&t->e, &t->a, t->off, t->B, t->kind, t->x, t->wt, t->y);
    double s = 0;
    for (int k = 0; k < t->B * explain_enc_rows(&t->c) * t->c.C; k++) s += (double)t->y[k] * t->R[k];
    return s;
}

static double maxabs_diff(const float *a, const float *b, size_t n, double *scale)
{
    double d = 0, m = 0;
    for (size_t k = 0; k < n; k++) {
        d = fmax(d, fabs((double)a[k] - b[k]));
        m = fmax(m, fabs((double)b[k]));
    }
    if (scale) *scale = m;
    return d;
}

/* The kernels of an encoder whose E slots form E / G output rows (G = 1: a token per slot; G = E:
 * one row of all slots, the item-head path's vector): fast vs naive, the masked set, finite
 * differences of every parameter tensor and of the inputs. */
static void test_encoder_kernels(int E, int G)
{
    const int sizes[3] = {4, 0, 5};
    enc_case t;
    enc_setup(&t, 5, 6, E, 7, 4, G, sizes, 3, 21 + (uint64_t)G);
    const int rows = explain_enc_rows(&t.c);
    const size_t P = t.e.nparams, NY = (size_t)t.B * rows * t.c.C;
    printf("encoder E = %d slots, G = %d per row (%d rows per set):\n", E, G, rows);
    /* fast vs naive */
    float *y2 = malloc(NY * sizeof *y2), *g2 = calloc(P, sizeof *g2);
    float *dx = malloc((size_t)t.N * t.c.din * sizeof *dx), *dx2 = malloc((size_t)t.N * t.c.din * sizeof *dx2);
    float *dw = malloc((size_t)t.N * sizeof *dw), *dw2 = malloc((size_t)t.N * sizeof *dw2);
    CHECK(explain_enc_forward(&t.e, &t.a, t.off, t.B, t.kind, t.x, t.wt, t.y) == DM_OK, "forward");
    CHECK(explain_enc_backward(&t.e, &t.a, t.R, dx, dw) == DM_OK, "backward");
    memcpy(g2, t.g, P * sizeof *g2);
    memset(t.g, 0, P * sizeof *t.g);
    CHECK(explain_enc_forward_naive(&t.e, &t.a, t.off, t.B, t.kind, t.x, t.wt, y2) == DM_OK, "forward naive");
    CHECK(explain_enc_backward_naive(&t.e, &t.a, t.R, dx2, dw2) == DM_OK, "backward naive");
    double sc, dy = maxabs_diff(t.y, y2, NY, &sc);
    double dg = maxabs_diff(g2, t.g, P, &sc), gs = sc;
    double dxx = maxabs_diff(dx, dx2, (size_t)t.N * t.c.din, NULL), dww = maxabs_diff(dw, dw2, (size_t)t.N, NULL);
    printf("encoder fast vs naive: y %.2g, grads %.2g (max |g| %.2g), dx %.2g, dw %.2g\n", dy, dg, gs, dxx, dww);
    CHECK(dy < 1e-5 && dg < 1e-5 * fmax(1, gs) && dxx < 1e-5 && dww < 1e-5, "fast and naive kernels disagree");
    /* the masked (empty) set 1: every row = MLP([v0; ...; v0]) (G copies) */
    {
        nn_mlp_acts pa;
        nn_mlp_acts_init(&pa, &t.e.mlp.cfg, 1);
        float ym[16], v0g[64];
        for (int g = 0; g < G; g++) memcpy(v0g + (size_t)g * t.c.D, t.e.v0, (size_t)t.c.D * sizeof *v0g);
        nn_mlp_forward_naive(&t.e.mlp, &pa, v0g, 1, ym);
        double dm = 0;
        for (int e = 0; e < rows; e++)
            for (int c = 0; c < t.c.C; c++) dm = fmax(dm, fabs(t.y[((size_t)1 * rows + e) * t.c.C + c] - ym[c]));
        NEAR(dm, 0, 1e-5, "masked evidence rows = MLP(v0 in every slot of the group)");
        nn_mlp_acts_free(&pa);
    }
    /* finite differences of L = sum(y * R): every parameter tensor, x and w */
    int bad = 0, n = 0;
    double worst = 0;
    const float hstep = 1e-3f;
    for (int k = 0; k < EXPLAIN_ENC_NTENSORS; k++) {
        const char *name;
        size_t o, cnt = explain_enc_tensor(&t.e, k, &name, &o);
        size_t stride = cnt > 40 ? cnt / 40 + 1 : 1;
        int tb = 0;
        double tw = 0;
        for (size_t q = 0; q < cnt; q += stride) {
            float keep = t.w[o + q];
            t.w[o + q] = keep + hstep;
            double lp = enc_loss(&t);
            t.w[o + q] = keep - hstep;
            double lm = enc_loss(&t);
            t.w[o + q] = keep;
            double fd = (lp - lm) / (2 * hstep), e = fabs(fd - g2[o + q]);
            tw = fmax(tw, e);
            if (e > 2e-3 + 1e-2 * fabs(g2[o + q])) tb++;
            n++;
        }
        printf("  finite differences %-8s (%4zu floats): worst |fd - g| %.2g\n", name, cnt, tw);
        CHECK(tb == 0, "%s: %d gradients disagree with finite differences (worst %.3g)", name, tb, tw);
        bad += tb;
        worst = fmax(worst, tw);
    }
    for (int which = 0; which < 2; which++) {
        float *v = which ? t.wt : t.x, *gr = which ? dw : dx;
        size_t cnt = which ? (size_t)t.N : (size_t)t.N * t.c.din;
        int tb = 0;
        double tw = 0;
        for (size_t q = 0; q < cnt; q++) {
            float keep = v[q];
            v[q] = keep + hstep;
            double lp = enc_loss(&t);
            v[q] = keep - hstep;
            double lm = enc_loss(&t);
            v[q] = keep;
            double fd = (lp - lm) / (2 * hstep), e = fabs(fd - gr[q]);
            tw = fmax(tw, e);
            if (e > 2e-3 + 1e-2 * fabs(gr[q])) tb++;
        }
        printf("  finite differences %-8s (%4zu floats): worst |fd - g| %.2g\n", which ? "w" : "x", cnt, tw);
        CHECK(tb == 0, "input %s: %d gradients disagree with finite differences (worst %.3g)", which ? "w" : "x", tb, tw);
    }
    CHECK(bad == 0 && n > 100, "%d parameter gradients checked", n);
    /* a kind outside 0..3 is refused */
    t.kind[0] = 7;
    CHECK(explain_enc_forward(&t.e, &t.a, t.off, t.B, t.kind, t.x, t.wt, t.y) == DM_EINPUT, "bad kind refused");
    dm_error_clear();
    t.kind[0] = 1;
    TL_FREE(y2, g2, dx, dx2, dw, dw2);
    enc_teardown(&t);
}

static void test_encoder(void)
{
    test_encoder_kernels(3, 1);
    test_encoder_kernels(4, 2); /* two tokens of two slots each */
    test_encoder_kernels(4, 4); /* one row of every slot: the item-head vector */
    enc_case t;

    /* Adam fits the tokens of one evidence set (and of the masked set) to targets */
    const int sz[2] = {6, 0};
    enc_setup(&t, 4, 8, 4, 16, 6, 1, sz, 2, 5);
    const size_t P2 = t.e.nparams, NY2 = (size_t)2 * t.c.E * t.c.C;
    float *m = calloc(P2, sizeof *m), *v = calloc(P2, sizeof *v), *dyv = malloc(NY2 * sizeof *dyv);
    /* the masked set's tokens are one row repeated (MLP(v0)): its targets are one row too */
    for (int e = 1; e < t.c.E; e++)
        memcpy(t.R + ((size_t)t.c.E + e) * t.c.C, t.R + (size_t)t.c.E * t.c.C, (size_t)t.c.C * sizeof *t.R);
    double l0 = 0, l1 = 0;
    for (int step = 1; step <= 300; step++) {
        memset(t.g, 0, P2 * sizeof *t.g);
        explain_enc_forward(&t.e, &t.a, t.off, 2, t.kind, t.x, t.wt, t.y);
        double l = 0;
        for (size_t k = 0; k < NY2; k++) {
            double diff = t.y[k] - t.R[k];
            l += 0.5 * diff * diff;
            dyv[k] = (float)diff;
        }
        if (step == 1) l0 = l;
        l1 = l;
        explain_enc_backward(&t.e, &t.a, dyv, NULL, NULL);
        const nn_adam o = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, NN_ADAM_DECOUPLED};
        nn_adam_step(&o, step, t.e.params, t.e.grads, m, v, t.e.nparams);
    }
    printf("encoder Adam fit: loss %.4g -> %.3g in 300 steps\n", l0, l1);
    CHECK(l1 < 0.01 * l0, "Adam does not fit the evidence tokens: %.4f -> %.4f", l0, l1);
    free(m);
    free(v);
    free(dyv);
    enc_teardown(&t);
}

static void torch_case(const char *dir, const dm_json *cs)
{
    const char *name = dm_json_get(cs, "name")->str;
    const dm_json *gj = dm_json_get(cs, "group");
    explain_enc_config c = {(int)tl_jint(cs, "din"), (int)tl_jint(cs, "D"), (int)tl_jint(cs, "E"), (int)tl_jint(cs, "hidden"),
                            (int)tl_jint(cs, "C"), 1e-5f, gj ? (int)tl_jint(cs, "group") : 1};
    const int B = (int)tl_jint(cs, "B"), N = (int)tl_jint(cs, "N");
    const size_t P = explain_enc_size(&c), NY = (size_t)B * explain_enc_rows(&c) * c.C;
    CHECK((long long)P == tl_jint(cs, "nparams"), "%s: slab of %zu floats, reference %lld", name, P, tl_jint(cs, "nparams"));
    float *w = tl_slurp(dir, name, "_params.f32", P * 4), *x = tl_slurp(dir, name, "_x.f32", (size_t)N * c.din * 4);
    float *wt = tl_slurp(dir, name, "_w.f32", (size_t)N * 4), *dy = tl_slurp(dir, name, "_dy.f32", NY * 4);
    int64_t *off = tl_slurp(dir, name, "_off.i64", ((size_t)B + 1) * 8);
    int8_t *kind = tl_slurp(dir, name, "_kind.i8", (size_t)N);
    double *ry = tl_slurp(dir, name, "_y.f64", NY * 8), *rg = tl_slurp(dir, name, "_grad.f64", P * 8);
    double *rdx = tl_slurp(dir, name, "_dx.f64", (size_t)N * c.din * 8), *rdw = tl_slurp(dir, name, "_dw.f64", (size_t)N * 8);
    float *g = calloc(P, 4), *y = malloc(NY * 4), *dx = malloc((size_t)N * c.din * 4 + 4), *dw = malloc((size_t)N * 4 + 4);
    if (!w || !x || !wt || !dy || !off || !kind || !ry || !rg || !rdx || !rdw) {
        CHECK(0, "reference files of %s missing", name);
        goto done;
    }
    explain_enc e;
    explain_enc_bind(&e, &c, w, g);
    explain_enc_acts a;
    explain_enc_acts_init(&a, &c, B, N);
    for (int naive = 0; naive < 2; naive++) {
        memset(g, 0, P * 4);
        CHECK((naive ? explain_enc_forward_naive : explain_enc_forward)(&e, &a, off, B, kind, x, wt, y) == DM_OK, "forward");
        CHECK((naive ? explain_enc_backward_naive : explain_enc_backward)(&e, &a, dy, dx, dw) == DM_OK, "backward");
        double ys, gs, xs, wsc;
        double d1 = tl_maxdiff_ref(y, ry, NY, &ys), d2 = tl_maxdiff_ref(g, rg, P, &gs);
        double d3 = tl_maxdiff_ref(dx, rdx, (size_t)N * c.din, &xs), d4 = tl_maxdiff_ref(dw, rdw, (size_t)N, &wsc);
        /* per tensor, relative to its own scale (floored at 1% of the largest gradient) */
        double worst = 0;
        for (int k = 0; k < EXPLAIN_ENC_NTENSORS; k++) {
            size_t o, n = explain_enc_tensor(&e, k, NULL, &o);
            double tm, dk = tl_maxdiff_ref(g + o, rg + o, n, &tm);
            worst = fmax(worst, dk / fmax(tm, 1e-2 * gs));
        }
        printf("# torch %-6s %s: y max diff %.2g (max %.2g), grads %.2g (max %.2g, per-tensor rel %.2g), dx %.2g, dw %.2g\n",
               name, naive ? "naive" : "fast ", d1, ys, d2, gs, worst, d3, d4);
        CHECK(d1 <= 2e-5 * fmax(1, ys), "%s: tokens differ from torch by %g", name, d1);
        CHECK(d2 <= 2e-5 * fmax(1, gs) && worst < 1e-4, "%s: parameter gradients differ from torch by %g (rel %g)", name,
              d2, worst);
        CHECK(d3 <= 2e-5 * fmax(1, xs) && d4 <= 2e-5 * fmax(1, wsc), "%s: input gradients differ from torch by %g / %g",
              name, d3, d4);
    }
    explain_enc_acts_free(&a);
done:
    TL_FREE(w, x, wt, dy, off, kind, ry, rg, rdx, rdw, g, y, dx, dw);
}

static void test_encoder_torch(void)
{
    tl_manifest mf;
    if (tl_manifest_open(&mf, "explain", "dynmm-explain-ref")) return;
    int nc = 0;
    for (const dm_json *cs = tl_json_first(mf.root, "cases"); cs; cs = cs->next, nc++) torch_case(mf.dir, cs);
    CHECK(nc >= 2, "only %d reference cases", nc);
    tl_manifest_close(&mf);
}

/* ---- templates and rationales ---- */

static void test_templates(void)
{
    dm_cfg cfg;
    dm_cfg_init(&cfg);
    explain_templates t;
    CHECK(explain_templates_parse(dm_cfg_str(&cfg, "explain.templates"), &t) == DM_OK, "default templates: %s",
          dm_error_message());
    CHECK(t.n == 4, "%d default templates", t.n);
    /* "Recommended because you bought {item} and {item}; people ..." = text slot text slot text */
    CHECK(t.part_off[1] == 5 && t.slot[0] == -1 && t.slot[1] == EXPLAIN_SLOT_ITEM && t.slot[3] == EXPLAIN_SLOT_ITEM &&
              !strcmp(t.text[2], " and ") && t.slot[4] == -1,
          "first template's parts");
    /* "It is a {brand} {category}, like {n} of your items." */
    int p = t.part_off[1];
    CHECK(t.slot[p + 1] == EXPLAIN_SLOT_BRAND && t.slot[p + 3] == EXPLAIN_SLOT_CATEGORY && t.slot[p + 5] == EXPLAIN_SLOT_N &&
              !strcmp(t.text[p + 2], " "),
          "second template's parts");
    explain_templates_free(&t);
    dm_cfg_free(&cfg);
    CHECK(explain_templates_parse("{item}{brand}", &t) == DM_OK && t.n == 1 && t.n_parts == 2, "slots only");
    explain_templates_free(&t);
    CHECK(explain_templates_parse("plain text", &t) == DM_OK && t.n_parts == 1 && t.slot[0] == -1, "text only");
    explain_templates_free(&t);
    CHECK(explain_templates_parse("a {colour} b", &t) == DM_ECONFIG && strstr(dm_error_message(), "{colour}"),
          "unknown slot: %s", dm_error_message());
    CHECK(explain_templates_parse("a {item b", &t) == DM_ECONFIG && strstr(dm_error_message(), "not closed"),
          "unclosed slot: %s", dm_error_message());
    CHECK(explain_templates_parse("a {item}|| b", &t) == DM_ECONFIG && strstr(dm_error_message(), "template 2 of 3 is empty"),
          "empty template: %s", dm_error_message());
    dm_buf many = {0};
    for (int k = 0; k < EXPLAIN_MAX_SLOTS + 1; k++) dm_buf_adds(&many, "{n} ");
    CHECK(explain_templates_parse(many.data, &t) == DM_ECONFIG, "too many slots refused");
    dm_buf_free(&many);
    dm_error_clear();
}

/* The value a slot of kind `slot` writes for element e, computed here from the dataset directly. */
static void expected_value(const dm_dataset *d, const explain_elem *e, int slot, char *out, size_t cap)
{
    size_t l;
    const char *s;
    if (slot == EXPLAIN_SLOT_N) {
        snprintf(out, cap, "%d", e->count);
        return;
    }
    s = slot == EXPLAIN_SLOT_ITEM ? dm_strtab_get(&d->title, (size_t)e->id, &l) : dm_strtab_get(&d->attr_name, (size_t)e->id, &l);
    snprintf(out, cap, "%.*s", (int)l, s);
}

static int slot_matches(const dm_dataset *d, const explain_elem *e, int slot)
{
    switch (slot) {
    case EXPLAIN_SLOT_ITEM: return e->kind == EXPLAIN_ITEM;
    case EXPLAIN_SLOT_BRAND: return e->kind == EXPLAIN_ATTR && d->attr_kind[e->id] == DM_ATTR_BRAND;
    case EXPLAIN_SLOT_CATEGORY: return e->kind == EXPLAIN_ATTR && d->attr_kind[e->id] == DM_ATTR_CATEGORY;
    case EXPLAIN_SLOT_PRICE: return e->kind == EXPLAIN_ATTR && d->attr_kind[e->id] == DM_ATTR_PRICE;
    default: return e->kind == EXPLAIN_ATTR && e->count > 0;
    }
}

/* Every claim of r is backed by ev: returns a description of the first violation or NULL. */
static const char *audit(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                         const explain_rationale *r)
{
    static char why[256];
    char val[256];
    dm_buf text = {0};
    int s = 0, last_attr = -1;
    const char *res = NULL;
    for (int p = t->part_off[r->tpl]; p < t->part_off[r->tpl + 1] && !res; p++) {
        if (t->slot[p] < 0) {
            dm_buf_adds(&text, t->text[p]);
            continue;
        }
        int e = r->slot_elem[s];
        const char *v = r->values.data + r->value_off[s];
        if (r->slot_kind[s] != t->slot[p]) res = "slot kinds differ from the template";
        else if (e < 0 || e >= ev->n) res = "slot names an element outside the evidence";
        else if (!slot_matches(d, &ev->el[e], t->slot[p])) res = "slot names an element of the wrong kind";
        else {
            expected_value(d, &ev->el[e], t->slot[p], val, sizeof val);
            if (strcmp(val, v)) res = "slot value is not the element's title / name / count";
            else if (!v[0]) res = "empty slot value";
            else if (t->slot[p] == EXPLAIN_SLOT_N && last_attr >= 0 && e != last_attr)
                res = "{n} is not the count of the preceding attribute";
            for (int q = 0; q < s && !res; q++)
                if (r->slot_kind[q] == r->slot_kind[s] && t->slot[p] != EXPLAIN_SLOT_N &&
                    !strcmp(r->values.data + r->value_off[q], v))
                    res = "a value repeated in two slots of the same kind";
        }
        if (t->slot[p] == EXPLAIN_SLOT_BRAND || t->slot[p] == EXPLAIN_SLOT_CATEGORY || t->slot[p] == EXPLAIN_SLOT_PRICE)
            last_attr = e;
        dm_buf_adds(&text, v);
        s++;
    }
    if (!res && s != r->n_slots) res = "slot count differs";
    if (!res && strcmp(text.data ? text.data : "", r->text.data ? r->text.data : "")) res = "text is not the template filled with the values";
    for (int k = 0; k < r->n_cite && !res; k++) {
        int found = 0;
        for (int q = 0; q < r->n_slots; q++) found |= r->slot_elem[q] == r->cite[k];
        for (int q = 0; q < k; q++)
            if (r->cite[q] == r->cite[k]) res = "a cited element twice";
        if (!found) res = "a cited element no slot names";
    }
    for (int q = 0; q < r->n_slots && !res; q++) {
        int found = 0;
        for (int k = 0; k < r->n_cite; k++) found |= r->slot_elem[q] == r->cite[k];
        if (!found) res = "a slot's element is not cited";
    }
    dm_buf_free(&text);
    if (res) snprintf(why, sizeof why, "%s (template %d, text '%s')", res, r->tpl, r->text.data ? r->text.data : "");
    return res ? why : NULL;
}

/* Every value a slot of template tpl could take (along the choices r->cur_elem of its earlier
 * slots) is the title / name / count of an evidence element of the slot's kind: the allowed lists
 * themselves, whatever the LM picks. *empty = 1 when some slot on the path has no allowed value.
 * Returns a description of the first violation or NULL. */
static const char *audit_allowed(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                                 explain_rationale *r, int nslots, int *empty, int *nvalues)
{
    char val[256], prev[256];
    int s = 0, near = -1;
    *empty = 0;
    for (int p = t->part_off[tpl]; p < t->part_off[tpl + 1] && s <= nslots; p++) {
        if (t->slot[p] < 0) continue;
        if (p > t->part_off[tpl] && s > 0) {
            /* the nearest earlier attribute slot, for {n} */
            int q = p - 1;
            while (q >= t->part_off[tpl] && (t->slot[q] < 0 || t->slot[q] == EXPLAIN_SLOT_ITEM || t->slot[q] == EXPLAIN_SLOT_N)) q--;
            near = -1;
            if (q >= t->part_off[tpl]) {
                int sq = 0;
                for (int z = t->part_off[tpl]; z < q; z++) sq += t->slot[z] >= 0;
                near = r->cur_elem[sq];
            }
        }
        int nv = 0;
        if (explain_slot_values(t, tpl, p, d, ev, r, &nv) != DM_OK) return "explain_slot_values failed";
        if (nv == 0) {
            *empty = 1;
            return NULL;
        }
        for (int k = 0; k < nv; k++) {
            int e = r->cand_elem[k];
            if (e < 0 || e >= ev->n) return "an allowed value names an element outside the evidence";
            if (!slot_matches(d, &ev->el[e], t->slot[p])) return "an allowed value names an element of the wrong kind";
            expected_value(d, &ev->el[e], t->slot[p], val, sizeof val);
            if (strcmp(val, r->cand_ptr[k])) return "an allowed value is not its element's title / name / count";
            for (int q = 0; q < k; q++)
                if (!strcmp(r->cand_ptr[q], r->cand_ptr[k])) return "an allowed value listed twice";
            if (t->slot[p] == EXPLAIN_SLOT_N && near >= 0 && e != near)
                return "{n} allows a count other than the preceding attribute's";
            for (int q = t->part_off[tpl], sq = 0; q < p && t->slot[p] != EXPLAIN_SLOT_N; q++) {
                if (t->slot[q] < 0) continue;
                if (t->slot[q] == t->slot[p]) {
                    expected_value(d, &ev->el[r->cur_elem[sq]], t->slot[q], prev, sizeof prev);
                    if (!strcmp(prev, r->cand_ptr[k])) return "an allowed value repeats an earlier slot of the same kind";
                }
                sq++;
            }
        }
        *nvalues += nv;
        if (s == nslots) break; /* the path is known up to here */
        s++;
    }
    return NULL;
}

/* Each slot of r (template tpl) names the strongest value its slot allowed: the first allowed value
 * (evidence order = decreasing weight within a kind) given the earlier slots; the context is large
 * enough here for every value to fit. r->cur_elem is overwritten. */
static const char *audit_strongest(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                                   explain_rationale *r)
{
    memcpy(r->cur_elem, r->slot_elem, sizeof r->cur_elem);
    for (int p = t->part_off[tpl], s = 0; p < t->part_off[tpl + 1]; p++) {
        if (t->slot[p] < 0) continue;
        int nv = 0;
        if (explain_slot_values(t, tpl, p, d, ev, r, &nv) != DM_OK || nv == 0) return "no allowed value for a written slot";
        if (r->slot_elem[s] != r->cand_elem[0]) return "a slot does not name its strongest allowed value";
        for (int k = 1; k < nv; k++)
            if (ev->el[r->cand_elem[k]].weight > ev->el[r->cand_elem[0]].weight) return "a later allowed value weighs more";
        s++;
    }
    return NULL;
}

static int make_lm(const dm_dataset *d, const char *templates, lm_model *lm, char *dir, size_t dircap)
{
    const char *tmp = getenv("DM_TMP");
    snprintf(dir, dircap, "%s/test_explain_lm", tmp ? tmp : "/tmp");
    lm_model m;
    memset(&m, 0, sizeof m);
    dm_strtab corpus = {0};
    for (size_t i = 0; i < d->n_items; i++) {
        size_t l;
        const char *s = dm_strtab_get(&d->title, i, &l);
        dm_strtab_add(&corpus, s, l);
    }
    for (size_t a = 0; a < d->n_attr; a++) {
        size_t l;
        const char *s = dm_strtab_get(&d->attr_name, a, &l);
        dm_strtab_add(&corpus, s, l);
    }
    dm_strtab_add(&corpus, templates, strlen(templates));
    static const char *const specials[] = {"<|endoftext|>", NULL};
    DM_CALL(bpe_train(&m.tok, &corpus, 60, specials));
    dm_strtab_free(&corpus);
    gpt2_config gc = gpt2_config_make(2, 2, 16, 256, m.tok.n_vocab);
    DM_CALL(gpt2_init(&m.model, &gc));
    gpt2_init_random(&m.model, 3);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) return DM_ERR(DM_EIO, "mkdir %s", dir);
    DM_CALL(lm_save(&m, dir));
    lm_free(&m);
    return lm_load(lm, dir);
}

/* the rationale of the hand evidence of (user 0, item 3) with the default templates deftpl: written,
 * audited, the best-scoring qualifying template, its tokens; templates without their evidence are
 * disqualified. c holds the prompt (len0 positions); r and r1 are scratch rationales. */
static void check_hand_rationale(const dm_dataset *d, const char *deftpl, lm_model *lm, lm_cache *c, int len0,
                                 explain_rationale *r, explain_rationale *r1)
{
    int64_t *toff;
    int32_t *took;
    explain_item_users(d, NULL, &toff, &took);
    float emb[64 * 2];
    explain_attr_embed(NI, 2, Z, d->n_attr, d->item_attr_off, d->item_attr, emb);
    explain_src s = {.n_users = NU, .n_items = NI, .d = 2, .h = HU, .z = Z, .took_off = toff, .took = took,
                     .n_attr = d->n_attr, .attr_off = d->item_attr_off, .attr = d->item_attr, .attr_emb = emb,
                     .k_users = 2, .k_items = 2, .k_attrs = 5, .modal = 1, .sim = EXPLAIN_SIM_COSINE, .attr_temp = 0.1f};
    explain_evidence ev;
    explain_evidence_init(&ev, 2, 2, 5);
    int32_t hist[4] = {0, 1, 5, 2};
    explain_evidence_build(&s, 0, 3, hist, 4, &ev);
    explain_templates t;
    explain_templates_parse(deftpl, &t);
    int rc = explain_rationale_make(&t, d, &ev, lm, c, COVW, r);
    CHECK(rc == DM_OK, "rationale: %s", dm_error_message());
    CHECK(r->tpl >= 0 && r->text.len > 0, "a default template qualifies for (0, 3)");
    CHECK(c->len == len0, "cache restored (%d vs %d positions)", c->len, len0);
    const char *why = r->tpl >= 0 ? audit(&t, d, &ev, r) : "no template";
    CHECK(why == NULL, "default rationale: %s", why);
    /* the audit itself catches a forged value */
    if (r->n_slots > 0) {
        char keep = r->values.data[r->value_off[0]];
        r->values.data[r->value_off[0]] = 'X';
        CHECK(audit(&t, d, &ev, r) != NULL, "the audit misses a forged slot value");
        r->values.data[r->value_off[0]] = keep;
        int e0 = r->slot_elem[0];
        r->slot_elem[0] = ev.n;
        CHECK(audit(&t, d, &ev, r) != NULL, "the audit misses an element outside the evidence");
        r->slot_elem[0] = e0;
    }
    printf("rationale of (user 0, lip balm): template %d, mean log-likelihood %.3f over %d tokens: \"%s\"\n", r->tpl,
           r->score, r->n_tokens, r->text.data);
    /* the chosen template has the best mean log-likelihood of the qualifying ones */
    for (int k = 0; k < t.n; k++) {
        explain_rationale_make_one(&t, k, d, &ev, lm, c, COVW, r1);
        if (r1->tpl < 0) continue;
        CHECK(r1->score <= r->score + 1e-9, "template %d scores %.6f above the chosen %.6f", k, r1->score, r->score);
        if (k == r->tpl) CHECK(!strcmp(r1->text.data, r->text.data), "the chosen template written alone differs");
    }
    /* its tokens, each piece on its own, are what was written */
    bpe_ids ids = {0};
    explain_rationale_tokens(lm, &t, r, &ids);
    CHECK((int)ids.n == r->n_tokens, "%zu tokens vs %d written", ids.n, r->n_tokens);
    bpe_ids_free(&ids);
    /* template 2 ("It is a {brand} {category}, like {n} of your items.") without brand evidence: disqualified */
    explain_evidence noattr = ev;
    noattr.n = ev.n_kind[0] + ev.n_kind[1];
    explain_rationale_make_one(&t, 1, d, &noattr, lm, c, COVW, r1);
    CHECK(r1->tpl == -1, "a template with an empty slot is disqualified");
    explain_rationale_make(&t, d, &noattr, lm, c, COVW, r1);
    CHECK(r1->tpl == 0 || r1->tpl == 2, "only item templates qualify without attributes (got %d)", r1->tpl);
    /* no evidence at all: nothing qualifies */
    noattr.n = 0;
    explain_rationale_make(&t, d, &noattr, lm, c, COVW, r1);
    CHECK(r1->tpl == -1 && r1->text.len == 0 && r1->n_cite == 0, "no rationale without evidence");
    explain_templates_free(&t);
    explain_evidence_free(&ev);
    free(toff);
    free(took);
}

/* random evidence for user 0 and a random item: users, items (some untitled, some repeated),
 * attributes with counts */
static void random_evidence(dm_rng *g, const dm_dataset *d, explain_evidence *rev)
{
    rev->user = 0;
    rev->item = (int32_t)dm_rng_below(g, NI);
    rev->n = 0;
    memset(rev->n_kind, 0, sizeof rev->n_kind);
    int nk[3] = {(int)dm_rng_below(g, 3), (int)dm_rng_below(g, 5), (int)dm_rng_below(g, 7)};
    for (int kind = 0; kind < 3; kind++)
        for (int q = 0; q < nk[kind]; q++) {
            explain_elem e = {(int8_t)kind, 0, (float)(1.0 - 0.1 * q), 0};
            e.id = kind == EXPLAIN_USER ? (int32_t)dm_rng_below(g, NU)
                   : kind == EXPLAIN_ITEM ? (int32_t)dm_rng_below(g, NI) : (int32_t)dm_rng_below(g, d->n_attr);
            if (kind == EXPLAIN_ATTR) e.count = (int32_t)dm_rng_below(g, 4);
            rev->el[rev->n++] = e;
            rev->n_kind[kind]++;
        }
}

/* 1 to 3 random templates of 1 to 6 parts, each with at least one slot, into spec */
static void random_templates(dm_rng *g, dm_buf *spec)
{
    static const char *const words[] = {" because", " you", " like", ", a", " and", ".", " from", " the"};
    int ntpl = 1 + (int)dm_rng_below(g, 3);
    for (int k = 0; k < ntpl; k++) {
        if (k) dm_buf_addc(spec, '|');
        int np = 1 + (int)dm_rng_below(g, 6), any = 0;
        for (int q = 0; q < np; q++) {
            if (dm_rng_uniform(g) < 0.55 || (q == np - 1 && !any)) {
                dm_buf_printf(spec, "{%s}", explain_slot_names[dm_rng_below(g, EXPLAIN_NSLOTS)]);
                any = 1;
            } else {
                dm_buf_adds(spec, words[dm_rng_below(g, 8)]);
            }
        }
    }
}

/* the audit tallies of the property test: violations (the first described) and values audited */
typedef struct {
    int fails, allowed;
    const char *first;
} audit_tally;

static void tally_fail(audit_tally *a, const char *why)
{
    a->fails++;
    if (!a->first) a->first = why;
}

/* each template of rt alone: qualified ones pass the audit too and every value their slots could
 * have taken belongs to the evidence; disqualified ones have a slot without allowed values. r is the
 * rationale chosen over all of rt, r1 scratch. */
static void audit_each_template(const explain_templates *rt, const dm_dataset *d, const explain_evidence *rev,
                                lm_model *lm, lm_cache *c, const explain_rationale *r, explain_rationale *r1,
                                audit_tally *a)
{
    for (int k = 0; k < rt->n; k++) {
        explain_rationale_make_one(rt, k, d, rev, lm, c, COVW, r1);
        int slots_k = 0, empty = 0;
        for (int p = rt->part_off[k]; p < rt->part_off[k + 1]; p++) slots_k += rt->slot[p] >= 0;
        if (r1->tpl >= 0) memcpy(r1->cur_elem, r1->slot_elem, sizeof r1->cur_elem);
        const char *wa = audit_allowed(rt, k, d, rev, r1, slots_k, &empty, &a->allowed);
        if (!wa && r1->tpl >= 0) wa = audit_strongest(rt, k, d, rev, r1);
        if (wa || empty != (r1->tpl < 0))
            tally_fail(a, wa ? wa : "a template qualifies with an empty slot, or is refused without one");
        if (r1->tpl >= 0) {
            const char *w = audit(rt, d, rev, r1);
            if (w) tally_fail(a, w);
            if (r->tpl >= 0 && r1->score > r->score + 1e-9)
                tally_fail(a, "a qualifying template scores above the chosen one");
        } else if (r->tpl == k) {
            tally_fail(a, "the chosen template does not qualify alone");
        }
    }
}

/* property: over random evidence and random templates, every slot value belongs to the evidence */
static void check_rationale_property(const dm_dataset *d, lm_model *lm, lm_cache *c, int len0,
                                     explain_rationale *r, explain_rationale *r1)
{
    dm_rng g;
    dm_rng_seed(&g, 99);
    explain_evidence rev;
    explain_evidence_init(&rev, 4, 6, 8);
    int trials = 0, written = 0, restored = 1, cited = 0, nslots = 0;
    audit_tally a = {0, 0, NULL};
    for (int trial = 0; trial < 150; trial++) {
        random_evidence(&g, d, &rev);
        dm_buf spec = {0};
        random_templates(&g, &spec);
        explain_templates rt;
        if (explain_templates_parse(spec.data, &rt) != DM_OK) {
            CHECK(0, "random template '%s': %s", spec.data, dm_error_message());
            dm_buf_free(&spec);
            continue;
        }
        trials++;
        if (explain_rationale_make(&rt, d, &rev, lm, c, COVW, r) != DM_OK) {
            CHECK(0, "rationale of '%s': %s", spec.data, dm_error_message());
        } else if (r->tpl >= 0) {
            written++;
            nslots += r->n_slots;
            cited += r->n_cite;
            const char *w = audit(&rt, d, &rev, r);
            if (w) tally_fail(&a, w);
        }
        restored &= c->len == len0;
        audit_each_template(&rt, d, &rev, lm, c, r, r1, &a);
        explain_templates_free(&rt);
        dm_buf_free(&spec);
    }
    printf("rationales: %d random evidence sets x templates, %d written (%d slots, %d cited elements), %d allowed values "
           "audited, %d violations\n", trials, written, nslots, cited, a.allowed, a.fails);
    CHECK(a.fails == 0, "a rationale names something outside its evidence: %s", a.first);
    CHECK(restored, "the cache is restored after every rationale");
    CHECK(written > 40 && written < trials, "the property test exercises both outcomes (%d of %d written)", written, trials);
    explain_evidence_free(&rev);
}

static void check_strongest_and_coverage(const dm_dataset *d, lm_model *lm, lm_cache *c, explain_rationale *r);
static void check_free_rationales(const dm_dataset *d, lm_model *lm, lm_cache *c, int len0, explain_rationale *r);

static void test_rationales(void)
{
    dm_dataset d;
    if (catalogue(&d) != DM_OK) {
        CHECK(0, "catalogue: %s", dm_error_message());
        return;
    }
    dm_cfg cfg;
    dm_cfg_init(&cfg);
    const char *deftpl = dm_cfg_str(&cfg, "explain.templates");
    lm_model lm;
    char dir[512];
    int rc = make_lm(&d, deftpl, &lm, dir, sizeof dir);
    CHECK(rc == DM_OK, "tiny LM: %s", dm_error_message());
    if (rc) {
        dm_cfg_free(&cfg);
        dm_dataset_free(&d);
        return;
    }
    lm_cache c;
    CHECK(lm_cache_init(&c, &lm, 256, 64) == DM_OK, "cache");
    lm_append_text(&lm, &c, " The user bought: red lipstick; matte blush; Next: lip balm.");
    const int len0 = c.len;
    explain_rationale r, r1;
    explain_rationale_init(&r);
    explain_rationale_init(&r1);
    check_hand_rationale(&d, deftpl, &lm, &c, len0, &r, &r1);
    check_rationale_property(&d, &lm, &c, len0, &r, &r1);
    check_strongest_and_coverage(&d, &lm, &c, &r);
    check_free_rationales(&d, &lm, &c, len0, &r);
    explain_rationale_free(&r);
    explain_rationale_free(&r1);
    lm_cache_free(&c);
    lm_free(&lm);
    dm_cfg_free(&cfg);
    dm_dataset_free(&d);
}

/* ---- the template choice: coverage/length term, strongest evidence, the share cap ---- */

/* Brute force over every assignment of n items (n_tpl^n): the fewest items beyond the caps, then
 * the highest total score; *over and *total of the best. */
static void assign_brute(int n, int T, const double *sc, int cap, int *over, double *total)
{
    int a[8], cnt[8];
    long long tot = 1;
    for (int k = 0; k < n; k++) tot *= T;
    *over = 1 << 30;
    *total = -INFINITY;
    for (long long code = 0; code < tot; code++) {
        long long c = code;
        int ok = 1, ov = 0;
        double sum = 0;
        memset(cnt, 0, sizeof cnt);
        for (int k = 0; k < n; k++) {
            a[k] = (int)(c % T);
            c /= T;
        }
        for (int k = 0; k < n && ok; k++) {
            int any = 0;
            for (int t = 0; t < T; t++) any |= sc[k * T + t] != -INFINITY;
            if (!any) continue; /* nothing qualifies: the item stays without a template */
            if (a[k] != 0 && !any) ok = 0;
            if (sc[k * T + a[k]] == -INFINITY) ok = 0;
            else {
                sum += sc[k * T + a[k]];
                cnt[a[k]]++;
            }
        }
        if (!ok) continue;
        for (int t = 0; t < T; t++) ov += cnt[t] > cap ? cnt[t] - cap : 0;
        if (ov < *over || (ov == *over && sum > *total + 1e-12)) {
            *over = ov;
            *total = sum;
        }
    }
}

static void test_template_assign(void)
{
    /* constructed case: template 0 is every item's best (as on the data, where one template wins
     * 96-100% of the items), 10 items, 4 templates: the cap of 5 holds, the other five go where
     * they lose least */
    double sc[10 * 4];
    int tpl[10], over = -1;
    for (int k = 0; k < 10; k++) {
        sc[k * 4 + 0] = -1.0;
        sc[k * 4 + 1] = -1.5 - 0.1 * k; /* items 0.. lose least by moving to template 1 */
        sc[k * 4 + 2] = -2.0;
        sc[k * 4 + 3] = -INFINITY;      /* never qualifies */
    }
    CHECK(explain_template_cap(10, 0.5) == 5 && explain_template_cap(5, 0.5) == 2 && explain_template_cap(1, 0.5) == 1 &&
              explain_template_cap(4, 1.0) == 4,
          "caps: max(1, floor(share K))");
    explain_templates_assign(10, 4, sc, 0.5, tpl, &over);
    int cnt[4] = {0};
    for (int k = 0; k < 10; k++) cnt[tpl[k] < 0 ? 3 : tpl[k]]++;
    CHECK(cnt[0] == 5 && cnt[1] == 5 && cnt[2] == 0 && cnt[3] == 0 && over == 0, "shares 5/5/0/0 with the cap (got %d/%d/%d/%d, %d over)",
          cnt[0], cnt[1], cnt[2], cnt[3], over);
    int okset = 1; /* template 0 keeps the items that lose most by moving (the last five) */
    for (int k = 0; k < 10; k++) okset &= tpl[k] == (k < 5 ? 1 : 0);
    CHECK(okset, "template 1 takes the items where it costs least");
    explain_templates_assign(10, 4, sc, 1.0, tpl, &over);
    okset = 1;
    for (int k = 0; k < 10; k++) okset &= tpl[k] == 0;
    CHECK(okset && over == 0, "share 1: each item its best template");
    /* demand: items only template 0 qualifies for go beyond its cap; the others do not */
    for (int k = 0; k < 10; k++)
        for (int t = 1; t < 4; t++) sc[k * 4 + t] = k < 7 ? -INFINITY : -3.0;
    explain_templates_assign(10, 4, sc, 0.5, tpl, &over);
    memset(cnt, 0, sizeof cnt);
    for (int k = 0; k < 10; k++) cnt[tpl[k]]++;
    CHECK(cnt[0] == 7 && over == 2 && tpl[7] != 0 && tpl[8] != 0 && tpl[9] != 0,
          "7 items only template 0 fits: 7 on it, 2 over the cap, the 3 others elsewhere (got %d, %d over)", cnt[0], over);
    /* an item no template qualifies for stays -1 */
    for (int t = 0; t < 4; t++) sc[0 * 4 + t] = -INFINITY;
    explain_templates_assign(10, 4, sc, 0.5, tpl, &over);
    CHECK(tpl[0] == -1 && over == 1, "no qualifying template: -1 (and 6 on template 0, one over: got %d over)", over);
    /* random score matrices with holes against brute force: the fewest items over the caps, then
     * the highest total */
    dm_rng g;
    dm_rng_seed(&g, 17);
    int bad = 0, cases = 0, over_cases = 0;
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)dm_rng_below(&g, 6), T = 1 + (int)dm_rng_below(&g, 4);
        double share = dm_rng_uniform(&g) < 0.5 ? 0.5 : 0.34;
        double m[8 * 4], total = 0, bt;
        for (int k = 0; k < n * T; k++)
            m[k] = dm_rng_uniform(&g) < 0.3 ? -INFINITY : -3.0 * dm_rng_uniform(&g) + (dm_rng_uniform(&g) < 0.2 ? 0.5 : 0.0);
        int bo, cap = explain_template_cap(n, share);
        assign_brute(n, T, m, cap, &bo, &bt);
        explain_templates_assign(n, T, m, share, tpl, &over);
        int c2[4] = {0}, ov = 0;
        for (int k = 0; k < n; k++) {
            int any = 0;
            for (int t = 0; t < T; t++) any |= m[k * T + t] != -INFINITY;
            if (!any) bad += tpl[k] != -1;
            else if (tpl[k] < 0 || tpl[k] >= T || m[k * T + tpl[k]] == -INFINITY) bad++;
            else {
                total += m[k * T + tpl[k]];
                c2[tpl[k]]++;
            }
        }
        for (int t = 0; t < T; t++) ov += c2[t] > cap ? c2[t] - cap : 0;
        /* totals are sums of <= 6 doubles: equal up to rounding */
        if (ov != over || ov != bo || (bo < (1 << 30) && fabs(total - bt) > 1e-9)) bad++;
        cases++;
        over_cases += bo > 0;
    }
    printf("template assignment: %d random cases against brute force (%d with items over the caps by demand), %d wrong\n", cases,
           over_cases, bad);
    CHECK(bad == 0 && over_cases > 0 && over_cases < cases, "assignment = brute force on %d cases (%d wrong)", cases, bad);
    CHECK(explain_fit_score(-10.0, 5, 2, 1.0) == -8.0 / 5 && explain_fit_score(-3.0, 0, 1, 1.0) == 0.0,
          "score = (ll + w n_cite) / n_tokens");
}

/* On the hand evidence: each slot names the strongest allowed value, whatever the weights'
 * order; the coverage term moves the choice to the template naming more evidence. */
static void check_strongest_and_coverage(const dm_dataset *d, lm_model *lm, lm_cache *c, explain_rationale *r)
{
    explain_templates t;
    explain_templates_parse("You liked {item}.|A {category} from {brand}, like {n} of yours, and {item} and {item}.", &t);
    explain_evidence ev;
    explain_evidence_init(&ev, 0, 3, 3);
    /* items 0 (red lipstick), 1 (matte blush), 4 (night cream) by decreasing weight; categories
     * Lips then Makeup; brand Floral */
    int lips = find_attr(d, DM_ATTR_CATEGORY, "Lips"), makeup = find_attr(d, DM_ATTR_CATEGORY, "Makeup");
    int floral = find_attr(d, DM_ATTR_BRAND, "Floral");
    explain_elem el[6] = {{EXPLAIN_ITEM, 0, 0.9f, 0}, {EXPLAIN_ITEM, 1, 0.5f, 0}, {EXPLAIN_ITEM, 4, 0.1f, 0},
                          {EXPLAIN_ATTR, lips, 0.6f, 2}, {EXPLAIN_ATTR, makeup, 0.3f, 3}, {EXPLAIN_ATTR, floral, 0.1f, 1}};
    ev.user = 0;
    ev.item = 3;
    ev.n = 6;
    memcpy(ev.el, el, sizeof el);
    ev.n_kind[EXPLAIN_ITEM] = 3;
    ev.n_kind[EXPLAIN_ATTR] = 3;
    explain_rationale_make_one(&t, 0, d, &ev, lm, c, COVW, r);
    CHECK(r->tpl == 0 && !strcmp(r->text.data, "You liked red lipstick."), "strongest item named: '%s'", r->text.data);
    /* the weakest item made strongest (the group re-sorted): it is named instead */
    explain_evidence ev2 = ev;
    explain_elem swapped[6] = {{EXPLAIN_ITEM, 4, 0.95f, 0}, {EXPLAIN_ITEM, 0, 0.9f, 0}, {EXPLAIN_ITEM, 1, 0.5f, 0},
                               el[3], el[4], el[5]};
    ev2.el = swapped;
    explain_rationale_make_one(&t, 0, d, &ev2, lm, c, COVW, r);
    CHECK(!strcmp(r->text.data, "You liked night cream."), "the strongest item after re-weighting: '%s'", r->text.data);
    explain_rationale_make_one(&t, 1, d, &ev, lm, c, COVW, r);
    CHECK(r->tpl == 1 && !strcmp(r->text.data, "A Lips from Floral, like 1 of yours, and red lipstick and matte blush."),
          "strongest category, the brand's count, the two strongest items: '%s'", r->text.data);
    CHECK(r->n_cite == 4, "4 cited elements (got %d)", r->n_cite);
    /* the coverage/length term: each cited element is worth w nats per token of the template */
    explain_fit fit[2];
    explain_rationale_fit(&t, d, &ev, lm, c, 0.0, r, fit);
    CHECK(fit[0].ok && fit[1].ok && fit[0].n_cite == 1 && fit[1].n_cite == 4, "fits: %d and %d cited", fit[0].n_cite, fit[1].n_cite);
    CHECK(fabs(fit[0].score - fit[0].ll / fit[0].n_tokens) < 1e-12, "w = 0: the mean log-likelihood per token");
    /* the weight at which the two templates tie: beyond it the one naming more evidence wins */
    double a0 = fit[0].ll, n0 = fit[0].n_tokens, a1 = fit[1].ll, n1 = fit[1].n_tokens;
    double wtie = (a0 * n1 - a1 * n0) / (4.0 * n0 - 1.0 * n1);
    printf("coverage term: template 0 %.3f nats over %d tokens (1 element), template 1 %.3f over %d (4 elements): tie at w = %.3f\n",
           a0, fit[0].n_tokens, a1, fit[1].n_tokens, wtie);
    if (wtie > 0 && 4.0 * n0 > n1) {
        explain_rationale_make(&t, d, &ev, lm, c, wtie * 1.5 + 0.1, r);
        CHECK(r->tpl == 1, "beyond the tie the template naming more evidence wins (got %d)", r->tpl);
        explain_rationale_make(&t, d, &ev, lm, c, wtie * 0.5, r);
        CHECK(r->tpl == 0, "below the tie the more fluent one wins (got %d)", r->tpl);
    } else {
        explain_rationale_make(&t, d, &ev, lm, c, 0.0, r);
        CHECK(r->tpl == (fit[1].score > fit[0].score), "w = 0: the best mean log-likelihood (got %d)", r->tpl);
    }
    explain_evidence_free(&ev);
    explain_templates_free(&t);
}

/* ---- free-form rationales ---- */

/* Checks a free-form rationale r of f against ev independently of the decoder: the text is the
 * segments concatenated (leading space dropped); each connective is one of the words of spec
 * (split here) and names no catalogue entry; each value segment is, in order, a slot whose value is
 * the title / name of an evidence element of the slot's kind; no value twice, no connective twice
 * in a row, no punctuation first, at most max_tokens tokens; and every item title or attribute name
 * of the catalogue found in the text lies inside a value segment. */
static const char *audit_free(const explain_free *f, const char *spec, const dm_dataset *d, const explain_evidence *ev,
                              const explain_rationale *r, int max_tokens)
{
    static char why[512];
    const char *res = NULL;
    char val[256];
    if (r->tpl == -1) return r->text.len == 0 && r->n_slots == 0 ? NULL : "no rationale, yet text or slots";
    if (r->tpl != EXPLAIN_FREE_TPL) return "free-form rationale without its marker";
    if (r->n_tokens > max_tokens) return "more tokens than the bound";
    dm_buf text = {0};
    size_t vs[64], ve[64];
    int nv = 0, s = 0, prev = -1;
    for (int q = 0; q < f->n_seg && !res; q++) {
        int e = f->seg[q];
        const char *t = explain_free_entry_text(f, e);
        if (text.len == 0 && t[0] == ' ') t++;
        size_t at = text.len;
        dm_buf_adds(&text, t);
        if (e < f->n_words) {
            const char *w = t[0] == ' ' ? t + 1 : t;
            int found = 0;
            for (const char *p = spec; *p;) {
                while (*p == ' ') p++;
                const char *z = p;
                while (*z && *z != ' ') z++;
                found |= (size_t)(z - p) == strlen(w) && z > p && !strncmp(p, w, strlen(w));
                p = z;
            }
            if (!found) res = "a connective outside explain.free_words";
            if (q == 0 && f->punct[e]) res = "punctuation first";
            if (e == prev) res = "a connective twice in a row";
        } else {
            if (s >= r->n_slots) {
                res = "more value segments than slots";
                break;
            }
            int el = r->slot_elem[s];
            if (el < 0 || el >= ev->n) res = "a value names an element outside the evidence";
            else if (!slot_matches(d, &ev->el[el], r->slot_kind[s]) || r->slot_kind[s] == EXPLAIN_SLOT_N)
                res = "a value names an element of another kind";
            else {
                expected_value(d, &ev->el[el], r->slot_kind[s], val, sizeof val);
                const char *v = r->values.data + r->value_off[s];
                const char *w = t[0] == ' ' ? t + 1 : t;
                if (strcmp(val, v) || strcmp(w, v) || !v[0]) res = "a value is not its element's title / name";
                for (int q2 = 0; q2 < s && !res; q2++)
                    if (!strcmp(r->values.data + r->value_off[q2], v)) res = "a value written twice";
            }
            if (nv < 64) {
                vs[nv] = at + (t[0] == ' ');
                ve[nv++] = text.len;
            }
            s++;
        }
        prev = e;
    }
    if (!res && s != r->n_slots) res = "slot count differs from the value segments";
    if (!res && s == 0) res = "a rationale without a value";
    if (!res && strcmp(text.data ? text.data : "", r->text.data ? r->text.data : "")) res = "text is not the segments";
    /* the catalogue scan */
    for (size_t k = 0; k < d->n_items + d->n_attr && !res; k++) {
        size_t l;
        const char *nm = k < d->n_items ? dm_strtab_get(&d->title, k, &l) : dm_strtab_get(&d->attr_name, k - d->n_items, &l);
        if (l == 0 || !r->text.data) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)l, nm);
        for (const char *p = strstr(r->text.data, name); p && !res; p = strstr(p + 1, name)) {
            size_t o = (size_t)(p - r->text.data);
            int inside = 0;
            for (int q = 0; q < nv; q++) inside |= o >= vs[q] && o + l <= ve[q];
            if (!inside) res = "a catalogue name outside the evidence values";
        }
    }
    for (int k = 0; k < r->n_cite && !res; k++) {
        int found = 0;
        for (int q = 0; q < r->n_slots; q++) found |= r->slot_elem[q] == r->cite[k];
        if (!found) res = "a cited element no value names";
    }
    if (res) snprintf(why, sizeof why, "%s ('%s')", res, r->text.data ? r->text.data : "");
    dm_buf_free(&text);
    return res ? why : NULL;
}

static void check_free_rationales(const dm_dataset *d, lm_model *lm, lm_cache *c, int len0, explain_rationale *r)
{
    dm_cfg cfg;
    dm_cfg_init(&cfg);
    const char *spec = dm_cfg_str(&cfg, "explain.free_words");
    explain_free f;
    /* words that name catalogue entries are dropped; none left is an error naming the key */
    CHECK(explain_free_init(&f, "Acme because lips blush . because", 8, d, lm) == DM_OK && f.n_words == 3 &&
              !strcmp(f.word[0], " because") && !strcmp(f.word[1], " blush") && !strcmp(f.word[2], ".") && f.period == 2,
          "'Acme' and 'lips' (catalogue names, ignoring case) dropped, 'blush', '.' kept, 'because' once: %d words", f.n_words);
    explain_free_free(&f);
    CHECK(explain_free_init(&f, "floral ACME", 8, d, lm) == DM_ECONFIG && strstr(dm_error_message(), "explain.free_words"),
          "no word left: %s", dm_error_message());
    dm_error_clear();
    int rc = explain_free_init(&f, spec, 32, d, lm);
    CHECK(rc == DM_OK && f.period >= 0, "default words: %s", rc ? dm_error_message() : "");
    if (rc) {
        dm_cfg_free(&cfg);
        return;
    }
    /* property: random evidence, random bounds; every value from the evidence */
    dm_rng g;
    dm_rng_seed(&g, 123);
    explain_evidence rev;
    explain_evidence_init(&rev, 4, 6, 8);
    int written = 0, values = 0, fails = 0, restored = 1, trials = 300, tokens = 0;
    const char *first = NULL;
    char example[512] = "";
    for (int trial = 0; trial < trials; trial++) {
        random_evidence(&g, d, &rev);
        f.max_tokens = 2 + (int)dm_rng_below(&g, 39);
        if (explain_free_make(&f, d, &rev, lm, c, r) != DM_OK) {
            CHECK(0, "free-form rationale: %s", dm_error_message());
            break;
        }
        restored &= c->len == len0;
        const char *w = audit_free(&f, spec, d, &rev, r, f.max_tokens);
        if (w && !fails++) first = w;
        if (r->tpl == EXPLAIN_FREE_TPL) {
            written++;
            values += r->n_slots;
            tokens += r->n_tokens;
            if (!example[0]) snprintf(example, sizeof example, "%s", r->text.data);
        }
    }
    printf("free-form rationales: %d random evidence sets, %d written (%d values, %.1f tokens each), %d violations; e.g. \"%s\"\n",
           trials, written, values, written ? (double)tokens / written : 0.0, fails, example);
    CHECK(fails == 0, "a free-form rationale names something outside its evidence: %s", first);
    CHECK(restored, "the cache is restored after every free-form rationale");
    CHECK(written > trials / 4 && written < trials, "both outcomes exercised (%d of %d written)", written, trials);
    /* the checker catches a forged value */
    random_evidence(&g, d, &rev);
    f.max_tokens = 32;
    int caught = 0, tried = 0;
    for (int k = 0; k < 20 && !tried; k++) {
        explain_free_make(&f, d, &rev, lm, c, r);
        if (r->tpl == EXPLAIN_FREE_TPL) {
            tried = 1;
            r->slot_elem[0] = rev.n;
            caught = audit_free(&f, spec, d, &rev, r, 32) != NULL;
        } else {
            random_evidence(&g, d, &rev);
        }
    }
    CHECK(tried && caught, "the free-form audit catches a value outside the evidence");
    explain_evidence_free(&rev);
    explain_free_free(&f);
    dm_cfg_free(&cfg);
}

/* ---- metrics ---- */

static void test_text_metrics(void)
{
    dm_dataset d;
    if (catalogue(&d) != DM_OK) {
        CHECK(0, "catalogue: %s", dm_error_message());
        return;
    }
    int acme = find_attr(&d, DM_ATTR_BRAND, "Acme"), floral = find_attr(&d, DM_ATTR_BRAND, "Floral");
    int makeup = find_attr(&d, DM_ATTR_CATEGORY, "Makeup"), lips = find_attr(&d, DM_ATTR_CATEGORY, "Lips");
    int skin = find_attr(&d, DM_ATTR_CATEGORY, "Skin"), p10 = find_attr(&d, DM_ATTR_PRICE, "price <= 10");
    int32_t f[16];
    int n;
    explain_text_features(&d, EXPLAIN_FEAT_ALL, "It is a FLORAL lip balm for makeups; like Makeup, price <= 10.", f, 16, &n);
    /* Floral (case-insensitive), Makeup (not "makeups"), "price <= 10"; not Lips ("lip") */
    int ok = n == 3;
    for (int k = 0; ok && k < 3; k++) ok = f[k] == floral || f[k] == makeup || f[k] == p10;
    CHECK(ok, "text features: %d found", n);
    CHECK(n < 2 || f[0] < f[1], "text features sorted");
    explain_text_features(&d, 1u << DM_ATTR_BRAND, "It is a FLORAL lip balm; like Makeup.", f, 16, &n);
    CHECK(n == 1 && f[0] == floral, "kinds filter");
    /* V over all kinds: 3 brands + 8 category names (Beauty, Makeup, Lips, Face, Fragrance, Skin, Eyes) + 3 buckets */
    size_t V = explain_vocab_size(&d, EXPLAIN_FEAT_ALL);
    CHECK(V == d.n_attr && V == 3 + 7 + 3, "vocabulary %zu (n_attr %zu)", V, d.n_attr);
    /* one user, K = 3 rationales explaining items 3, 0, 4:
     *   F_0 = {Floral, Lips}  (item 3 holds both)  -> match
     *   F_1 = {Lips, Skin}    (item 0 holds Lips)  -> match
     *   F_2 = {Acme}          (item 4 is Dermo)    -> no match
     * FMR = 2/3; DIV = (|F0 F1| + |F0 F2| + |F1 F2|) / 3 = (1 + 0 + 0) / 3; union = 4 -> FCR_u = 4 / 13 */
    int32_t feat[5];
    int64_t off[4] = {0, 2, 4, 5};
    int32_t items[3] = {3, 0, 4};
    feat[0] = floral < lips ? floral : lips;
    feat[1] = floral < lips ? lips : floral;
    feat[2] = lips < skin ? lips : skin;
    feat[3] = lips < skin ? skin : lips;
    feat[4] = acme;
    uint8_t seen[64] = {0};
    explain_text_user m;
    CHECK(explain_text_user_metrics(&d, 3, off, feat, items, V, seen, &m) == DM_OK, "metrics: %s", dm_error_message());
    NEAR(m.fmr, 2.0 / 3, 1e-12, "FMR_u");
    NEAR(m.div, 1.0 / 3, 1e-12, "DIV_u");
    NEAR(m.fcr, 4.0 / 13, 1e-12, "FCR_u");
    CHECK(m.n_features == 4, "%d distinct features", m.n_features);
    /* a second user: F = {Makeup}, {Makeup} for items 1, 5 -> FMR 1, DIV 1, union 1; corpus FCR = 5 / 13 */
    int32_t feat2[2] = {makeup, makeup};
    int64_t off2[3] = {0, 1, 2};
    int32_t items2[2] = {1, 5};
    explain_text_user_metrics(&d, 2, off2, feat2, items2, V, seen, &m);
    NEAR(m.fmr, 1.0, 1e-12, "FMR_u (2)");
    NEAR(m.div, 1.0, 1e-12, "DIV_u (2)");
    NEAR(explain_fcr(seen, d.n_attr, V), 5.0 / 13, 1e-12, "corpus FCR");
    /* one rationale: DIV undefined; unsorted features refused */
    explain_text_user_metrics(&d, 1, off2, feat2, items2, V, NULL, &m);
    CHECK(isnan(m.div) && m.fmr == 1.0, "K = 1");
    int32_t bad[2] = {makeup, makeup};
    int64_t offb[2] = {0, 2};
    CHECK(explain_text_user_metrics(&d, 1, offb, bad, items2, V, NULL, &m) == DM_EINPUT, "repeated feature refused");
    dm_error_clear();
    dm_dataset_free(&d);
}

/* toy recommender: score = sum of the weights of the remaining elements */
static double toy_score(void *ctx, const explain_evidence *ev, int removed)
{
    int *calls = ctx;
    (*calls)++;
    double s = 0;
    for (int j = 0; j < ev->n; j++)
        if (j != removed) s += ev->el[j].weight;
    return s;
}

static void test_faithfulness(void)
{
    explain_evidence ev;
    explain_evidence_init(&ev, 2, 2, 2);
    explain_elem els[6] = {{EXPLAIN_USER, 1, 0.5f, 0}, {EXPLAIN_USER, 2, -0.2f, 0}, {EXPLAIN_ITEM, 4, 0.3f, 0},
                           {EXPLAIN_ITEM, 5, 0.0f, 0},  {EXPLAIN_ATTR, 7, 0.4f, 1},  {EXPLAIN_MODAL, 0, 0.9f, 0}};
    memcpy(ev.el, els, sizeof els);
    ev.n = 6;
    int calls = 0, nt;
    double prec;
    uint8_t low[6];
    /* all but the modality: 5 tested, removing 0.5, 0.3, 0.4 lowers the score -> 3/5 */
    explain_evidence_precision(&ev, NULL, 0, toy_score, &calls, 0.0, low, &prec, &nt);
    NEAR(prec, 0.6, 1e-12, "evidence precision");
    CHECK(nt == 5 && calls == 6 && low[0] && !low[1] && low[2] && !low[3] && low[4] && !low[5], "tested %d, calls %d", nt,
          calls);
    /* cited elements only, with a tolerance above 0.35: only 0.5 and 0.4 count */
    int cites[3] = {0, 4, 2};
    explain_evidence_precision(&ev, cites, 3, toy_score, &calls, 0.35, low, &prec, &nt);
    NEAR(prec, 2.0 / 3, 1e-12, "evidence precision of cited elements with tol");
    CHECK(low[0] && low[1] && !low[2], "lowered flags of cites");
    int none[1] = {9};
    CHECK(explain_evidence_precision(&ev, none, 1, toy_score, &calls, 0, NULL, &prec, &nt) == DM_EINPUT, "bad index refused");
    dm_error_clear();
    explain_evidence_free(&ev);
    /* ranks with ties at their expected rank */
    double cand[4] = {0.5, 0.9, 0.5, 0.1}, rnd[2] = {0.5, 0.95};
    explain_deletion del;
    explain_deletion_eval(cand, 4, 0, 0.05, rnd, 2, &del);
    NEAR(del.rank_full, 2.5, 1e-12, "rank with a tie");
    NEAR(del.rank_masked, 4, 1e-12, "rank masked");
    NEAR(del.rank_drop, 1.5, 1e-12, "rank drop");
    NEAR(del.drop, 0.45, 1e-12, "score drop");
    NEAR(del.s_random, 0.725, 1e-12, "random-mask score");
    NEAR(del.rank_random, 1.75, 1e-12, "random-mask rank");
    NEAR(del.drop_random, -0.225, 1e-12, "random-mask drop");
    NEAR(del.rank_drop_random, -0.75, 1e-12, "random-mask rank drop");
    explain_deletion_eval(cand, 4, 0, 0.05, NULL, 0, &del);
    CHECK(isnan(del.drop_random) && isnan(del.rank_random), "no random control");
    double df, dmk;
    NEAR(explain_faith_loss(1.0, 0.95, 0.1, &df, &dmk), 0.05, 1e-12, "L_faith active");
    CHECK(df == -1 && dmk == 1, "L_faith derivatives");
    NEAR(explain_faith_loss(1.0, 0.5, 0.1, &df, &dmk), 0.0, 1e-12, "L_faith inactive");
    CHECK(df == 0 && dmk == 0, "L_faith derivatives inactive");
    /* random positions: distinct, sorted, in range, keyed */
    int pos[16], pos2[16], okp = 1;
    explain_random_positions(7, 3, 1, 50, 16, pos);
    explain_random_positions(7, 3, 1, 50, 16, pos2);
    for (int k = 0; k < 16; k++) okp &= pos[k] >= 0 && pos[k] < 50 && (k == 0 || pos[k] > pos[k - 1]) && pos[k] == pos2[k];
    CHECK(okp, "random positions");
    explain_random_positions(7, 3, 2, 16, 16, pos);
    okp = 1;
    for (int k = 0; k < 16; k++) okp &= pos[k] == k;
    CHECK(okp, "all positions when count = n");
}

int main(void)
{
    test_evidence_hand();
    test_evidence_random();
    test_user_evidence();
    test_encoder();
    test_encoder_torch();
    test_templates();
    test_rationales();
    test_template_assign();
    test_text_metrics();
    test_faithfulness();
    return tap_done("explain");
}
