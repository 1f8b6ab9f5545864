/* explain.c: evidence for a recommendation (see explain.h): neighbour users, history items,
 * attention-weighted attributes and the agreeing modality, of (u, i) and of u alone; storage rows
 * and the checkers. */
#include "explain.h"

#include "../core/err.h"
#include "../core/sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const explain_kind_names[EXPLAIN_NKINDS] = {"user", "item", "attr", "modal"};

void explain_src_config(explain_src *s, const dm_cfg *cfg)
{
    s->k_users = (int)dm_cfg_int(cfg, "explain.k_users");
    s->k_items = (int)dm_cfg_int(cfg, "explain.k_items");
    s->k_attrs = (int)dm_cfg_int(cfg, "explain.k_attrs");
    s->modal = dm_cfg_bool(cfg, "explain.modality");
    s->sim = !strcmp(dm_cfg_str(cfg, "explain.similarity"), "dot") ? EXPLAIN_SIM_DOT : EXPLAIN_SIM_COSINE;
    s->attr_temp = (float)dm_cfg_float(cfg, "explain.attr_temperature");
}

int explain_src_init(explain_src *s, const dm_cfg *cfg, const dm_dataset *d, const int8_t *split, const float *h,
                     const float *z, size_t dim)
{
    memset(s, 0, sizeof *s);
    explain_src_config(s, cfg);
    s->n_users = d->n_users;
    s->n_items = d->n_items;
    s->d = dim;
    s->h = h;
    s->z = z;
    s->n_attr = d->n_attr;
    s->attr_off = d->item_attr_off;
    s->attr = d->item_attr;
    DM_CALL(explain_item_users(d, split, &s->own_took_off, &s->own_took));
    s->took_off = s->own_took_off;
    s->took = s->own_took;
    s->own_attr_emb = malloc((d->n_attr * dim + 1) * sizeof *s->own_attr_emb);
    if (!s->own_attr_emb) {
        explain_src_free(s);
        return DM_ERR(DM_ENOMEM, "out of memory for %zu attribute embeddings of width %zu", d->n_attr, dim);
    }
    int rc = explain_attr_embed(d->n_items, dim, z, d->n_attr, d->item_attr_off, d->item_attr, s->own_attr_emb);
    if (rc != DM_OK) {
        explain_src_free(s);
        DM_CALL(rc);
    }
    s->attr_emb = s->own_attr_emb;
    return DM_OK;
}

void explain_src_free(explain_src *s)
{
    DM_FREE_ALL(s->own_took_off, s->own_took, s->own_attr_emb);
    memset(s, 0, sizeof *s);
}

int explain_item_users(const dm_dataset *d, const int8_t *split, int64_t **off_out, int32_t **users_out)
{
    const size_t NI = d->n_items;
    int64_t *off, *last;
    int32_t *users = NULL;
    DM_ALLOC(off, NI + 1);
    last = calloc(NI + 1, sizeof *last);
    if (!last) {
        free(off);
        return DM_ERR(DM_ENOMEM, "out of memory for the item-user lists of %zu items", NI);
    }
    /* pass 0 counts, pass 1 fills; users ascend because u does, so a repeat is the last one */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < NI; j++) last[j] = -1;
        for (size_t u = 0; u < d->n_users; u++) {
            for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++) {
                if (split && split[k] != DM_TRAIN) continue;
                int32_t it = d->item[k];
                if (last[it] == (int64_t)u) continue;
                last[it] = (int64_t)u;
                if (pass == 0) off[it + 1]++;
                else users[off[it]++] = (int32_t)u;
            }
        }
        if (pass == 0) {
            for (size_t j = 0; j < NI; j++) off[j + 1] += off[j];
            long long total = (long long)off[NI];
            users = malloc(((size_t)total + 1) * sizeof *users);
            if (!users) {
                free(off);
                free(last);
                return DM_ERR(DM_ENOMEM, "out of memory for %lld item-user pairs", total);
            }
        }
    }
    /* pass 1 advanced each off[j] to the end of item j: shift back */
    for (size_t j = NI; j > 0; j--) off[j] = off[j - 1];
    off[0] = 0;
    free(last);
    *off_out = off;
    *users_out = users;
    return DM_OK;
}

int explain_attr_embed(size_t n_items, size_t d, const float *z, size_t n_attr, const int64_t *attr_off,
                       const int32_t *attr, float *emb)
{
    double *acc;
    int64_t *cnt;
    DM_ALLOC(acc, n_attr * d + 1);
    cnt = calloc(n_attr + 1, sizeof *cnt);
    if (!cnt) {
        free(acc);
        return DM_ERR(DM_ENOMEM, "out of memory for %zu attribute embeddings", n_attr);
    }
    for (size_t j = 0; j < n_items; j++) {
        for (int64_t q = attr_off[j]; q < attr_off[j + 1]; q++) {
            int32_t a = attr[q];
            DM_ASSERT(a >= 0 && (size_t)a < n_attr);
            cnt[a]++;
            for (size_t c = 0; c < d; c++) acc[(size_t)a * d + c] += z[j * d + c];
        }
    }
    for (size_t a = 0; a < n_attr; a++)
        for (size_t c = 0; c < d; c++) emb[a * d + c] = cnt[a] ? (float)(acc[a * d + c] / (double)cnt[a]) : 0.0f;
    free(acc);
    free(cnt);
    return DM_OK;
}

int explain_evidence_init(explain_evidence *ev, int k_users, int k_items, int k_attrs)
{
    memset(ev, 0, sizeof *ev);
    DM_ASSERT(k_users >= 0 && k_items >= 0 && k_attrs >= 0);
    ev->cap = k_users + k_items + k_attrs + 1;
    ev->user = ev->item = -1;
    DM_ALLOC(ev->el, ev->cap);
    return DM_OK;
}

void explain_evidence_free(explain_evidence *ev)
{
    DM_FREE_ALL(ev->el, ev->hist, ev->score, ev->cand, ev->uattr, ev->uuser, ev->mfeat);
    memset(ev, 0, sizeof *ev);
}

double explain_sim(int sim, const float *a, const float *b, size_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t c = 0; c < d; c++) {
        ab += (double)a[c] * b[c];
        aa += (double)a[c] * a[c];
        bb += (double)b[c] * b[c];
    }
    if (sim == EXPLAIN_SIM_DOT) return ab;
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

/* a before b: higher score, then smaller id */
static int better(double sa, int32_t ia, double sb, int32_t ib)
{
    return sa > sb || (sa == sb && ia < ib);
}

/* Inserts (s, id) into the descending top-k list (sc, ids) of length *m. */
static void topk_insert(double *sc, int32_t *ids, int *m, int k, double s, int32_t id)
{
    if (k <= 0) return;
    if (*m == k && !better(s, id, sc[k - 1], ids[k - 1])) return;
    int p = *m < k ? (*m)++ : k - 1;
    while (p > 0 && better(s, id, sc[p - 1], ids[p - 1])) {
        sc[p] = sc[p - 1];
        ids[p] = ids[p - 1];
        p--;
    }
    sc[p] = s;
    ids[p] = id;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int grow(explain_evidence *ev, size_t nh, size_t ns)
{
    if (nh > ev->hcap) {
        size_t c = nh < 64 ? 64 : nh;
        DM_REALLOC(ev->hist, c);
        ev->hcap = c;
    }
    if (ns > ev->scap) {
        size_t c = ns < 64 ? 64 : ns;
        DM_REALLOC(ev->score, c);
        DM_REALLOC(ev->cand, c);
        ev->scap = c;
    }
    return DM_OK;
}

/* Distinct history items other than i (i = -1: all) into ev->hist; returns their count or -1 on a
 * bad id. */
static int distinct_history(const explain_src *s, int32_t i, const int32_t *hist, int n_hist, explain_evidence *ev)
{
    int m = 0;
    for (int k = 0; k < n_hist; k++) {
        if (hist[k] < 0 || (size_t)hist[k] >= s->n_items) {
            DM_ERR(DM_EINPUT, "history item %d of user %d is out of range (%zu items)", hist[k], ev->user, s->n_items);
            return -1;
        }
        if (hist[k] != i) ev->hist[m++] = hist[k];
    }
    qsort(ev->hist, (size_t)m, sizeof *ev->hist, cmp_i32);
    int q = 0;
    for (int k = 0; k < m; k++)
        if (q == 0 || ev->hist[k] != ev->hist[q - 1]) ev->hist[q++] = ev->hist[k];
    return q;
}

static int holds(const explain_src *s, int32_t item, int32_t a)
{
    for (int64_t q = s->attr_off[item]; q < s->attr_off[item + 1]; q++)
        if (s->attr[q] == a) return 1;
    return 0;
}

/* The distinct values of the rows of the nh history items in ev->hist of a CSR (off, val: the
 * attributes of each item, or the users who took it) into *buf (ascending, grown as needed);
 * returns their count, or -1 when out of memory. */
static int64_t history_union(const int64_t *off, const int32_t *val, const explain_evidence *ev, int nh, int32_t **buf,
                             size_t *cap)
{
    size_t tot = 0;
    for (int q = 0; q < nh; q++) tot += (size_t)(off[ev->hist[q] + 1] - off[ev->hist[q]]);
    if (tot + 1 > *cap) {
        int32_t *a = realloc(*buf, (tot + 1) * sizeof *a);
        if (!a) {
            DM_ERR(DM_ENOMEM, "out of memory for the %zu attributes or users of a user's history", tot);
            return -1;
        }
        *buf = a;
        *cap = tot + 1;
    }
    size_t m = 0;
    for (int q = 0; q < nh; q++)
        for (int64_t j = off[ev->hist[q]]; j < off[ev->hist[q] + 1]; j++) (*buf)[m++] = val[j];
    qsort(*buf, m, sizeof **buf, cmp_i32);
    size_t w = 0;
    for (size_t k = 0; k < m; k++)
        if (w == 0 || (*buf)[k] != (*buf)[w - 1]) (*buf)[w++] = (*buf)[k];
    return (int64_t)w;
}

/* The user-level modality element: the modality k whose latents z_j^k of the history items that
 * have it agree most with h_u on average (weight: that mean), its feature the mean z_j^k. */
static int user_modality(const explain_src *s, const float *hu, explain_evidence *ev, int nh)
{
    const size_t d = s->d;
    int best = -1;
    double bs = 0;
    for (int k = 0; k < s->n_modal; k++) {
        double acc = 0;
        int cnt = 0;
        for (int q = 0; q < nh; q++) {
            size_t j = (size_t)ev->hist[q];
            if (!s->present[j * s->n_modal + k]) continue;
            acc += explain_sim(s->sim, hu, s->zm + (j * s->n_modal + k) * d, d);
            cnt++;
        }
        if (cnt && (best < 0 || acc / cnt > bs)) {
            best = k;
            bs = acc / cnt;
        }
    }
    if (best < 0) return DM_OK;
    if (!ev->mfeat) DM_ALLOC(ev->mfeat, d);
    int cnt = 0;
    double *acc = ev->score; /* (>= d) scratch: the sums in double */
    for (size_t c = 0; c < d; c++) acc[c] = 0;
    for (int q = 0; q < nh; q++) {
        size_t j = (size_t)ev->hist[q];
        if (!s->present[j * s->n_modal + best]) continue;
        const float *zk = s->zm + (j * s->n_modal + (size_t)best) * d;
        for (size_t c = 0; c < d; c++) acc[c] += zk[c];
        cnt++;
    }
    for (size_t c = 0; c < d; c++) ev->mfeat[c] = (float)(acc[c] / cnt);
    ev->el[ev->n++] = (explain_elem){EXPLAIN_MODAL, best, (float)bs, 0};
    ev->n_kind[EXPLAIN_MODAL] = 1;
    return DM_OK;
}

/* Shared by the fast and naive builders of (u, i) evidence and, with i = -1, of u's user evidence:
 * naive = sort every candidate instead of a top-k list. */
static int build(const explain_src *s, int32_t u, int32_t i, const int32_t *hist, int n_hist, explain_evidence *ev,
                 int naive)
{
    const int ul = i < 0; /* user evidence */
    if (u < 0 || (size_t)u >= s->n_users || (!ul && (size_t)i >= s->n_items))
        return DM_ERR(DM_EINPUT, "recommendation (user %d, item %d) out of range (%zu users, %zu items)", u, i,
                      s->n_users, s->n_items);
    DM_ASSERT(s->k_users + s->k_items + s->k_attrs + 1 <= ev->cap);
    const size_t d = s->d;
    int64_t nt = ul ? 0 : s->took_off[i + 1] - s->took_off[i];
    int64_t na = !s->attr_emb ? 0 : ul ? 0 : s->attr_off[i + 1] - s->attr_off[i];
    size_t ns = (size_t)(nt > n_hist ? nt : n_hist);
    if ((size_t)na > ns) ns = (size_t)na;
    if (ul && d > ns) ns = d;
    DM_CALL(grow(ev, (size_t)n_hist + 1, ns + 1));
    ev->user = u;
    ev->item = i;
    ev->n = 0;
    memset(ev->n_kind, 0, sizeof ev->n_kind);
    int nh = distinct_history(s, i, hist, n_hist, ev);
    if (nh < 0) return DM_EINPUT;
    if (ul) { /* the users who took a history item, the attributes the history holds */
        nt = history_union(s->took_off, s->took, ev, nh, &ev->uuser, &ev->ucap);
        na = s->attr_emb ? history_union(s->attr_off, s->attr, ev, nh, &ev->uattr, &ev->acap) : 0;
        if (nt < 0 || na < 0) return DM_ENOMEM;
        DM_CALL(grow(ev, (size_t)n_hist + 1, (size_t)(nt > na ? nt : na) + 1));
    }
    const float *hu = s->h + (size_t)u * d, *zi = ul ? hu : s->z + (size_t)i * d;
    double *sc = ev->score;
    int32_t *id = ev->cand;
    for (int kind = 0; kind < EXPLAIN_MODAL; kind++) {
        int k = kind == EXPLAIN_USER ? s->k_users : kind == EXPLAIN_ITEM ? s->k_items : s->k_attrs;
        int64_t nc = kind == EXPLAIN_USER ? nt : kind == EXPLAIN_ITEM ? nh : na;
        int m = 0;
        double mx = -INFINITY;
        for (int64_t c = 0; c < nc; c++) {
            int32_t cid;
            double v;
            if (kind == EXPLAIN_USER) {
                cid = ul ? ev->uuser[c] : s->took[s->took_off[i] + c];
                if (cid == u) continue;
                v = explain_sim(s->sim, hu, s->h + (size_t)cid * d, d);
            } else if (kind == EXPLAIN_ITEM) {
                /* (u, i): the history items closest to i; user evidence: closest to u */
                cid = ev->hist[c];
                v = explain_sim(s->sim, zi, s->z + (size_t)cid * d, d);
            } else {
                cid = ul ? ev->uattr[c] : s->attr[s->attr_off[i] + c];
                v = explain_sim(s->sim, hu, s->attr_emb + (size_t)cid * d, d) / s->attr_temp;
            }
            if (v > mx) mx = v;
            if (naive) {
                sc[m] = v;
                id[m++] = cid;
            } else {
                topk_insert(sc, id, &m, k, v, cid);
            }
        }
        if (naive && m > 0) {
            dm_keyed *all = malloc((size_t)m * sizeof *all);
            if (!all) return DM_ERR(DM_ENOMEM, "out of memory sorting %d evidence candidates", m);
            for (int c = 0; c < m; c++) all[c] = (dm_keyed){sc[c], id[c]};
            qsort(all, (size_t)m, sizeof *all, dm_cmp_keyed_desc); /* the order of better() */
            for (int c = 0; c < m; c++) {
                sc[c] = all[c].key;
                id[c] = (int32_t)all[c].id;
            }
            free(all);
            if (m > k) m = k;
        }
        /* attention normaliser over all of i's attributes (user evidence: the history's) */
        double lse = 0;
        if (kind == EXPLAIN_ATTR && na > 0) {
            double z = 0;
            for (int64_t c = 0; c < na; c++) {
                int32_t a = ul ? ev->uattr[c] : s->attr[s->attr_off[i] + c];
                z += exp(explain_sim(s->sim, hu, s->attr_emb + (size_t)a * d, d) / s->attr_temp - mx);
            }
            lse = mx + log(z);
        }
        for (int c = 0; c < m; c++) {
            explain_elem *e = &ev->el[ev->n++];
            e->kind = (int8_t)kind;
            e->id = id[c];
            e->count = 0;
            if (kind == EXPLAIN_ATTR) {
                e->weight = (float)exp(sc[c] - lse);
                for (int q = 0; q < nh; q++) e->count += holds(s, ev->hist[q], id[c]);
            } else {
                e->weight = (float)sc[c];
            }
        }
        ev->n_kind[kind] = m;
    }
    if (ul) return s->modal && s->n_modal > 0 && s->zm && s->present ? user_modality(s, hu, ev, nh) : DM_OK;
    if (s->modal && s->n_modal > 0 && s->zm && s->present) {
        int best = -1;
        double bs = 0;
        for (int k = 0; k < s->n_modal; k++) {
            if (!s->present[(size_t)i * s->n_modal + k]) continue;
            double v = explain_sim(s->sim, hu, s->zm + ((size_t)i * s->n_modal + k) * d, d);
            if (best < 0 || v > bs) {
                best = k;
                bs = v;
            }
        }
        if (best >= 0) {
            ev->el[ev->n++] = (explain_elem){EXPLAIN_MODAL, best, (float)bs, 0};
            ev->n_kind[EXPLAIN_MODAL] = 1;
        }
    }
    return DM_OK;
}

int explain_evidence_build(const explain_src *s, int32_t u, int32_t i, const int32_t *hist, int n_hist,
                           explain_evidence *ev)
{
    return build(s, u, i, hist, n_hist, ev, 0);
}

int explain_evidence_build_naive(const explain_src *s, int32_t u, int32_t i, const int32_t *hist, int n_hist,
                                 explain_evidence *ev)
{
    return build(s, u, i, hist, n_hist, ev, 1);
}

int explain_user_evidence_build(const explain_src *s, int32_t u, const int32_t *hist, int n_hist, explain_evidence *ev)
{
    return build(s, u, -1, hist, n_hist, ev, 0);
}

int explain_user_evidence_build_naive(const explain_src *s, int32_t u, const int32_t *hist, int n_hist,
                                      explain_evidence *ev)
{
    return build(s, u, -1, hist, n_hist, ev, 1);
}

void explain_evidence_features(const explain_src *s, const explain_evidence *ev, const uint8_t *keep, int8_t *kind,
                               float *x, float *w, int *n_out)
{
    const size_t d = s->d;
    int m = 0;
    for (int j = 0; j < ev->n; j++) {
        if (keep && !keep[j]) continue;
        const explain_elem *e = &ev->el[j];
        const float *src;
        switch (e->kind) {
        case EXPLAIN_USER: src = s->h + (size_t)e->id * d; break;
        case EXPLAIN_ITEM: src = s->z + (size_t)e->id * d; break;
        case EXPLAIN_ATTR: src = s->attr_emb + (size_t)e->id * d; break;
        default: src = ev->item < 0 ? ev->mfeat : s->zm + ((size_t)ev->item * s->n_modal + e->id) * d; break;
        }
        kind[m] = e->kind;
        memcpy(x + (size_t)m * d, src, d * sizeof *x);
        w[m] = e->weight;
        m++;
    }
    *n_out = m;
}

int explain_evidence_width(int k_users, int k_items, int k_attrs)
{
    return k_users + k_items + k_attrs + 1;
}

int explain_evidence_pack(const explain_evidence *ev, int width, int8_t *kind, int32_t *id, float *weight,
                          int32_t *count)
{
    if (ev->n > width)
        return DM_ERR(DM_EINTERNAL, "evidence of %d elements does not fit a row of %d", ev->n, width);
    for (int j = 0; j < width; j++) {
        int used = j < ev->n;
        kind[j] = used ? ev->el[j].kind : -1;
        id[j] = used ? ev->el[j].id : -1;
        weight[j] = used ? ev->el[j].weight : 0.0f;
        if (count) count[j] = used ? ev->el[j].count : 0;
    }
    return DM_OK;
}

int explain_evidence_unpack(explain_evidence *ev, int32_t user, int32_t item, int width, const int8_t *kind,
                            const int32_t *id, const float *weight, const int32_t *count)
{
    ev->user = user;
    ev->item = item;
    ev->n = 0;
    memset(ev->n_kind, 0, sizeof ev->n_kind);
    for (int j = 0; j < width; j++) {
        if (kind[j] < 0) continue;
        if (kind[j] >= EXPLAIN_NKINDS)
            return DM_ERR(DM_EFORMAT, "evidence row of (user %d, item %d): slot %d has kind %d", user, item, j, kind[j]);
        if (ev->n >= ev->cap)
            return DM_ERR(DM_EFORMAT, "evidence row of (user %d, item %d) holds more than %d elements", user, item,
                          ev->cap);
        ev->el[ev->n++] = (explain_elem){kind[j], id[j], weight[j], count ? count[j] : 0};
        ev->n_kind[kind[j]]++;
    }
    return DM_OK;
}

/* What is wrong with the kind, order or weight of element j of an evidence set, or NULL. */
static const char *order_check(const explain_evidence *ev, int j)
{
    const explain_elem *e = &ev->el[j];
    if (e->kind < 0 || e->kind >= EXPLAIN_NKINDS) return "unknown kind";
    if (j > 0 && e->kind < ev->el[j - 1].kind) return "kinds out of order";
    if (!isfinite(e->weight)) return "weight not finite";
    if (j > 0 && e->kind == ev->el[j - 1].kind && e->weight > ev->el[j - 1].weight) return "weights not decreasing";
    return NULL;
}

int explain_evidence_check(const explain_src *s, const explain_evidence *ev)
{
    const int32_t u = ev->user, i = ev->item;
    if (u < 0 || (size_t)u >= s->n_users || i < 0 || (size_t)i >= s->n_items)
        return DM_ERR(DM_EINPUT, "evidence of (user %d, item %d): out of range", u, i);
    int seen[EXPLAIN_NKINDS] = {0};
    for (int j = 0; j < ev->n; j++) {
        const explain_elem *e = &ev->el[j];
        const char *why = NULL;
        if ((why = order_check(ev, j)) != NULL) {
            /* its kind, order or weight is wrong */
        } else if (e->kind == EXPLAIN_USER) {
            if (e->id < 0 || (size_t)e->id >= s->n_users) why = "user id out of range";
            else if (e->id == u) why = "the user is their own neighbour";
            else {
                const int32_t *t = s->took + s->took_off[i];
                size_t n = (size_t)(s->took_off[i + 1] - s->took_off[i]);
                if (!bsearch(&e->id, t, n, sizeof *t, cmp_i32)) why = "neighbour user did not take the item";
            }
        } else if (e->kind == EXPLAIN_ITEM) {
            if (e->id < 0 || (size_t)e->id >= s->n_items) why = "item id out of range";
            else if (e->id == i) why = "the item is its own evidence";
        } else if (e->kind == EXPLAIN_ATTR) {
            if (e->id < 0 || (size_t)e->id >= s->n_attr) why = "attribute id out of range";
            else if (!holds(s, i, e->id)) why = "attribute does not belong to the item";
            else if (!(e->weight >= 0 && e->weight <= 1)) why = "attention weight outside [0, 1]";
        } else {
            if (e->id < 0 || e->id >= s->n_modal) why = "modality out of range";
            else if (s->present && !s->present[(size_t)i * s->n_modal + e->id]) why = "modality absent for the item";
            else if (seen[EXPLAIN_MODAL]) why = "more than one modality";
        }
        if (why)
            return DM_ERR(DM_EINPUT, "evidence of (user %d, item %d), element %d (%s %d): %s", u, i, j,
                          e->kind >= 0 && e->kind < EXPLAIN_NKINDS ? explain_kind_names[e->kind] : "?", e->id, why);
        seen[e->kind]++;
    }
    for (int k = 0; k < EXPLAIN_NKINDS; k++)
        if (seen[k] != ev->n_kind[k])
            return DM_ERR(DM_EINPUT, "evidence of (user %d, item %d): %d %s elements, n_kind says %d", u, i, seen[k],
                          explain_kind_names[k], ev->n_kind[k]);
    return DM_OK;
}

int explain_user_evidence_check(const explain_src *s, const explain_evidence *ev, const int32_t *hist, int n_hist)
{
    const int32_t u = ev->user;
    if (u < 0 || (size_t)u >= s->n_users || ev->item != -1)
        return DM_ERR(DM_EINPUT, "user evidence of user %d (item %d): not user evidence", u, ev->item);
    int seen[EXPLAIN_NKINDS] = {0};
    for (int j = 0; j < ev->n; j++) {
        const explain_elem *e = &ev->el[j];
        const char *why = NULL;
        int in_hist = 0, count = 0;
        /* membership and counts over the distinct history items */
        for (int k = 0; k < n_hist; k++) {
            int first = 1;
            for (int q = 0; q < k; q++) first &= hist[q] != hist[k];
            if (!first || hist[k] < 0 || (size_t)hist[k] >= s->n_items) continue;
            if (e->kind == EXPLAIN_USER && e->id >= 0 && (size_t)e->id < s->n_users) {
                const int32_t *t = s->took + s->took_off[hist[k]];
                size_t nt = (size_t)(s->took_off[hist[k] + 1] - s->took_off[hist[k]]);
                in_hist |= bsearch(&e->id, t, nt, sizeof *t, cmp_i32) != NULL;
            } else if (e->kind == EXPLAIN_ITEM) {
                in_hist |= hist[k] == e->id;
            } else if (e->kind == EXPLAIN_ATTR && e->id >= 0 && (size_t)e->id < s->n_attr) {
                count += holds(s, hist[k], e->id);
            } else if (e->kind == EXPLAIN_MODAL && e->id >= 0 && e->id < s->n_modal) {
                in_hist |= !s->present || s->present[(size_t)hist[k] * s->n_modal + e->id];
            }
        }
        if ((why = order_check(ev, j)) != NULL) {
            /* its kind, order or weight is wrong */
        } else if (e->kind == EXPLAIN_USER) {
            if (e->id < 0 || (size_t)e->id >= s->n_users) why = "user id out of range";
            else if (e->id == u) why = "the user is their own neighbour";
            else if (!in_hist) why = "neighbour user took none of the user's history items";
        } else if (e->kind == EXPLAIN_ITEM) {
            if (e->id < 0 || (size_t)e->id >= s->n_items) why = "item id out of range";
            else if (!in_hist) why = "item not in the user's history";
        } else if (e->kind == EXPLAIN_ATTR) {
            if (e->id < 0 || (size_t)e->id >= s->n_attr) why = "attribute id out of range";
            else if (count == 0) why = "no history item holds the attribute";
            else if (count != e->count) why = "count is not the history items holding the attribute";
            else if (!(e->weight >= 0 && e->weight <= 1)) why = "attention weight outside [0, 1]";
        } else {
            if (e->id < 0 || e->id >= s->n_modal) why = "modality out of range";
            else if (!in_hist) why = "no history item has the modality";
            else if (seen[EXPLAIN_MODAL]) why = "more than one modality";
        }
        if (why)
            return DM_ERR(DM_EINPUT, "user evidence of user %d, element %d (%s %d): %s", u, j,
                          e->kind >= 0 && e->kind < EXPLAIN_NKINDS ? explain_kind_names[e->kind] : "?", e->id, why);
        seen[e->kind]++;
    }
    for (int k = 0; k < EXPLAIN_NKINDS; k++)
        if (seen[k] != ev->n_kind[k])
            return DM_ERR(DM_EINPUT, "user evidence of user %d: %d %s elements, n_kind says %d", u, seen[k],
                          explain_kind_names[k], ev->n_kind[k]);
    return DM_OK;
}
