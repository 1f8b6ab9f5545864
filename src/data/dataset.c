/* dataset.c: raw records, metadata, and dm_process (see dataset.h). */
#include "dataset.h"

#include "../core/err.h"
#include "../core/log.h"
#include "../core/sort.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

const char *const dm_modal_names[3] = {"text", "visual", "audio"};

/* ---- raw records ------------------------------------------------------------------------- */

static int raw_grow(dm_raw *r, size_t need)
{
    if (need <= r->cap) return DM_OK;
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < need) cap *= 2;
    DM_REALLOC(r->user, cap);
    DM_REALLOC(r->item, cap);
    DM_REALLOC(r->time, cap);
    DM_REALLOC(r->order, cap);
    DM_REALLOC(r->part, cap);
    r->cap = cap;
    return DM_OK;
}

int dm_raw_push(dm_raw *r, const char *user, size_t ul, const char *item, size_t il, int64_t time, int64_t order,
                int8_t part)
{
    DM_CALL(raw_grow(r, r->n + 1));
    int64_t u, i;
    DM_CALL(dm_strmap_intern(&r->users, user, ul, &u, NULL));
    DM_CALL(dm_strmap_intern(&r->items, item, il, &i, NULL));
    r->user[r->n] = u;
    r->item[r->n] = i;
    r->time[r->n] = time;
    r->order[r->n] = order;
    r->part[r->n] = part;
    r->n++;
    return DM_OK;
}

void dm_raw_free(dm_raw *r)
{
    DM_FREE_ALL(r->user, r->item, r->time, r->order, r->part);
    dm_strmap_free(&r->users);
    dm_strmap_free(&r->items);
    memset(r, 0, sizeof *r);
}

/* pack helpers: u64 counts then raw arrays */
static int put_u64(dm_buf *b, uint64_t v) { return dm_buf_add(b, &v, sizeof v); }

static int put_strtab(dm_buf *b, const dm_strtab *t)
{
    uint64_t n = t->n, nc = t->n ? (uint64_t)t->offsets[t->n] : 0;
    DM_CALL(put_u64(b, n));
    DM_CALL(put_u64(b, nc));
    if (n) DM_CALL(dm_buf_add(b, t->offsets, (n + 1) * sizeof(int64_t)));
    if (nc) DM_CALL(dm_buf_add(b, t->chars, nc));
    return DM_OK;
}

typedef struct {
    const char *p, *end;
} rd;

static int get_u64(rd *r, uint64_t *v)
{
    if (r->p + 8 > r->end) return DM_ERR(DM_EINTERNAL, "truncated record pack");
    memcpy(v, r->p, 8);
    r->p += 8;
    return DM_OK;
}

static int get_bytes(rd *r, const void **p, size_t n)
{
    if ((size_t)(r->end - r->p) < n) return DM_ERR(DM_EINTERNAL, "truncated record pack");
    *p = r->p;
    r->p += n;
    return DM_OK;
}

/* a view of a packed string table */
typedef struct {
    uint64_t n;
    const int64_t *off;
    const char *chars;
} strview;

static int get_strtab(rd *r, strview *v)
{
    uint64_t nc = 0;
    DM_CALL(get_u64(r, &v->n));
    DM_CALL(get_u64(r, &nc));
    const void *p = NULL;
    v->off = NULL;
    v->chars = "";
    if (v->n) {
        DM_CALL(get_bytes(r, &p, (v->n + 1) * sizeof(int64_t)));
        v->off = p;
    }
    if (nc) {
        DM_CALL(get_bytes(r, &p, nc));
        v->chars = p;
    }
    return DM_OK;
}

int dm_raw_pack(const dm_raw *r, dm_buf *out)
{
    DM_CALL(put_u64(out, r->n));
    DM_CALL(put_u64(out, (uint64_t)r->has_time));
    DM_CALL(put_strtab(out, &r->users.keys));
    DM_CALL(put_strtab(out, &r->items.keys));
    if (r->n) {
        DM_CALL(dm_buf_add(out, r->user, r->n * 8));
        DM_CALL(dm_buf_add(out, r->item, r->n * 8));
        DM_CALL(dm_buf_add(out, r->time, r->n * 8));
        DM_CALL(dm_buf_add(out, r->order, r->n * 8));
        DM_CALL(dm_buf_add(out, r->part, r->n));
    }
    return DM_OK;
}

typedef struct {
    uint64_t n;
    int has_time;
    strview users, items;
    const int64_t *user, *item, *time, *order;
    const int8_t *part;
} rawview;

static int unpack_raw(const char *p, size_t size, rawview *v)
{
    rd r = {p, p + size};
    uint64_t ht = 0;
    DM_CALL(get_u64(&r, &v->n));
    DM_CALL(get_u64(&r, &ht));
    v->has_time = (int)ht;
    DM_CALL(get_strtab(&r, &v->users));
    DM_CALL(get_strtab(&r, &v->items));
    const void *q = NULL;
    if (v->n) {
        /* arrays follow packed strings, so they may be unaligned: copy out when reading */
        DM_CALL(get_bytes(&r, &q, v->n * 8)); v->user = q;
        DM_CALL(get_bytes(&r, &q, v->n * 8)); v->item = q;
        DM_CALL(get_bytes(&r, &q, v->n * 8)); v->time = q;
        DM_CALL(get_bytes(&r, &q, v->n * 8)); v->order = q;
        DM_CALL(get_bytes(&r, &q, v->n)); v->part = q;
    }
    return DM_OK;
}

static inline int64_t ld64(const int64_t *a, size_t i)
{
    int64_t v;
    memcpy(&v, (const char *)a + 8 * i, 8);
    return v;
}

int dm_raw_merge(const char *packs, const size_t *sizes, int npacks, dm_raw *out)
{
    memset(out, 0, sizeof *out);
    rawview *v;
    DM_ALLOC(v, npacks);
    int64_t **umap, **imap;
    DM_ALLOC(umap, npacks);
    DM_ALLOC(imap, npacks);
    size_t total = 0, *pos;
    DM_ALLOC(pos, npacks);
    const char *p = packs;
    for (int k = 0; k < npacks; k++) {
        DM_CALL(unpack_raw(p, sizes[k], &v[k]));
        p += sizes[k];
        total += v[k].n;
        out->has_time |= v[k].has_time;
        /* intern each pack's distinct ids once; records then map through arrays */
        DM_ALLOC(umap[k], v[k].users.n + 1);
        DM_ALLOC(imap[k], v[k].items.n + 1);
        for (uint64_t j = 0; j < v[k].users.n; j++) {
            int64_t a0 = ld64(v[k].users.off, j), a1 = ld64(v[k].users.off, j + 1);
            DM_CALL(dm_strmap_intern(&out->users, v[k].users.chars + a0, (size_t)(a1 - a0), &umap[k][j], NULL));
        }
        for (uint64_t j = 0; j < v[k].items.n; j++) {
            int64_t a0 = ld64(v[k].items.off, j), a1 = ld64(v[k].items.off, j + 1);
            DM_CALL(dm_strmap_intern(&out->items, v[k].items.chars + a0, (size_t)(a1 - a0), &imap[k][j], NULL));
        }
    }
    DM_CALL(raw_grow(out, total));
    /* every pack is in input order: a P-way merge on the order key restores the file order */
    for (size_t j = 0; j < total; j++) {
        int best = -1;
        int64_t bo = 0;
        for (int k = 0; k < npacks; k++) {
            if (pos[k] >= v[k].n) continue;
            int64_t o = ld64(v[k].order, pos[k]);
            if (best < 0 || o < bo) {
                best = k;
                bo = o;
            }
        }
        size_t i = pos[best]++;
        const rawview *w = &v[best];
        out->user[j] = umap[best][ld64(w->user, i)];
        out->item[j] = imap[best][ld64(w->item, i)];
        out->time[j] = ld64(w->time, i);
        out->order[j] = bo;
        out->part[j] = w->part[i];
    }
    out->n = total;
    for (int k = 0; k < npacks; k++) {
        free(umap[k]);
        free(imap[k]);
    }
    free(umap);
    free(imap);
    free(pos);
    free(v);
    return DM_OK;
}

/* ---- metadata ---------------------------------------------------------------------------- */

int dm_meta_push(dm_meta *m, const char *id, size_t idl, const char *title, const char *brand, const char *cats,
                 const char *attrs, double price, int64_t order)
{
    int64_t k;
    int added;
    DM_CALL(dm_strmap_intern(&m->ids, id, idl, &k, &added));
    if (!added) {
        m->duplicates++;
        return DM_OK;
    }
    if (m->n + 1 > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        DM_REALLOC(m->price, cap);
        DM_REALLOC(m->order, cap);
        DM_REALLOC(m->has_title, cap);
        m->cap = cap;
    }
    DM_CALL(dm_strtab_add(&m->title, title ? title : "", title ? strlen(title) : 0));
    DM_CALL(dm_strtab_add(&m->brand, brand ? brand : "", brand ? strlen(brand) : 0));
    DM_CALL(dm_strtab_add(&m->cats, cats ? cats : "", cats ? strlen(cats) : 0));
    DM_CALL(dm_strtab_add(&m->attrs, attrs ? attrs : "", attrs ? strlen(attrs) : 0));
    m->price[m->n] = price;
    m->order[m->n] = order;
    m->has_title[m->n] = title != NULL;
    m->n++;
    return DM_OK;
}

void dm_meta_free(dm_meta *m)
{
    dm_strmap_free(&m->ids);
    DM_EACH(dm_strtab_free, &m->title, &m->brand, &m->cats, &m->attrs);
    DM_FREE_ALL(m->price, m->order, m->has_title);
    memset(m, 0, sizeof *m);
}

int dm_meta_pack(const dm_meta *m, dm_buf *out)
{
    DM_CALL(put_u64(out, m->n));
    DM_CALL(put_u64(out, m->duplicates));
    DM_CALL(put_strtab(out, &m->ids.keys));
    DM_CALL(put_strtab(out, &m->title));
    DM_CALL(put_strtab(out, &m->brand));
    DM_CALL(put_strtab(out, &m->cats));
    DM_CALL(put_strtab(out, &m->attrs));
    if (m->n) {
        DM_CALL(dm_buf_add(out, m->price, m->n * 8));
        DM_CALL(dm_buf_add(out, m->order, m->n * 8));
        DM_CALL(dm_buf_add(out, m->has_title, m->n));
    }
    return DM_OK;
}

typedef struct {
    uint64_t n, dup;
    strview ids, title, brand, cats, attrs;
    const double *price;
    const int64_t *order;
    const int8_t *has_title;
} metaview;

typedef struct {
    int64_t order;
    uint64_t pack, idx;
} mref2;

static int cmp_mref2(const void *a, const void *b)
{
    const mref2 *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static char *sv_dup(const strview *s, size_t i, char *buf, size_t cap)
{
    int64_t a = ld64(s->off, i), b = ld64(s->off, i + 1);
    size_t l = (size_t)(b - a);
    if (l + 1 > cap) l = cap - 1;
    memcpy(buf, s->chars + a, l);
    buf[l] = '\0';
    return buf;
}

int dm_meta_merge(const char *packs, const size_t *sizes, int npacks, dm_meta *out)
{
    memset(out, 0, sizeof *out);
    metaview *v;
    DM_ALLOC(v, npacks);
    const char *p = packs;
    size_t total = 0, dup = 0;
    for (int k = 0; k < npacks; k++) {
        rd r = {p, p + sizes[k]};
        p += sizes[k];
        DM_CALL(get_u64(&r, &v[k].n));
        DM_CALL(get_u64(&r, &v[k].dup));
        DM_CALL(get_strtab(&r, &v[k].ids));
        DM_CALL(get_strtab(&r, &v[k].title));
        DM_CALL(get_strtab(&r, &v[k].brand));
        DM_CALL(get_strtab(&r, &v[k].cats));
        DM_CALL(get_strtab(&r, &v[k].attrs));
        const void *q = NULL;
        if (v[k].n) {
            DM_CALL(get_bytes(&r, &q, v[k].n * 8)); v[k].price = q;
            DM_CALL(get_bytes(&r, &q, v[k].n * 8)); v[k].order = q;
            DM_CALL(get_bytes(&r, &q, v[k].n)); v[k].has_title = q;
        }
        total += v[k].n;
        dup += v[k].dup;
    }
    mref2 *refs;
    DM_ALLOC(refs, total);
    size_t q = 0;
    for (int k = 0; k < npacks; k++)
        for (uint64_t i = 0; i < v[k].n; i++) refs[q++] = (mref2){ld64(v[k].order, i), (uint64_t)k, i};
    qsort(refs, total, sizeof *refs, cmp_mref2);
    size_t cap = 1 << 16;
    char *b1, *b2, *b3, *b4, *b5;
    DM_ALLOC(b1, cap);
    DM_ALLOC(b2, cap);
    DM_ALLOC(b3, cap);
    DM_ALLOC(b4, cap);
    DM_ALLOC(b5, cap);
    for (size_t j = 0; j < total; j++) {
        const metaview *w = &v[refs[j].pack];
        size_t i = refs[j].idx;
        double price;
        memcpy(&price, (const char *)w->price + 8 * i, 8);
        int64_t a = ld64(w->ids.off, i), b = ld64(w->ids.off, i + 1);
        DM_CALL(dm_meta_push(out, w->ids.chars + a, (size_t)(b - a), w->has_title[i] ? sv_dup(&w->title, i, b1, cap) : NULL,
                             sv_dup(&w->brand, i, b2, cap), sv_dup(&w->cats, i, b3, cap), sv_dup(&w->attrs, i, b4, cap),
                             price, refs[j].order));
    }
    (void)b5;
    out->duplicates += dup;
    free(b1); free(b2); free(b3); free(b4); free(b5);
    free(refs);
    free(v);
    return DM_OK;
}

/* ---- processing -------------------------------------------------------------------------- */

/* parses a full non-negative decimal integer; -1 if the string is not one */
static int64_t as_uint(const char *s, size_t n)
{
    if (n == 0 || n > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Dense ids for the raw ids marked used (first[k] = first appearance rank, or -1): in numeric order
 * when `numeric` and every used raw id is a decimal number, else in order of first appearance; ties
 * (equal numbers) in raw-id order, which the stable sort of the ascending `used` list keeps. */
static int dense_ids(const dm_strmap *m, const int64_t *first, int numeric, int32_t *dense, size_t *n_out)
{
    size_t n = m->keys.n, cnt = 0;
    int64_t *num; /* (n) the number of raw id k */
    size_t *used; /* (cnt) the used raw ids, ascending, then in dense order */
    DM_ALLOC(num, n);
    used = dm_calloc_at(n, sizeof *used, __FILE__, __LINE__);
    if (!used) {
        free(num);
        return DM_ENOMEM;
    }
    int all_num = numeric;
    for (size_t k = 0; k < n; k++) {
        if (first[k] < 0) continue;
        size_t l;
        const char *s = dm_strtab_get(&m->keys, k, &l);
        num[k] = all_num ? as_uint(s, l) : -1;
        if (num[k] < 0) all_num = 0;
        used[cnt++] = k;
    }
    int rc = dm_argsort_i64_of(all_num ? num : first, used, cnt);
    if (rc == DM_OK) {
        for (size_t k = 0; k < n; k++) dense[k] = -1;
        for (size_t j = 0; j < cnt; j++) dense[used[j]] = (int32_t)j;
        *n_out = cnt;
    }
    free(num);
    free(used);
    return rc;
}

static int add_joined(dm_strtab *t, const char *s, size_t n, const char *lev_sep, const char *path_sep)
{
    /* source: levels joined by '\t', paths by '\n' */
    dm_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\t') DM_CALL(dm_buf_adds(&b, lev_sep));
        else if (s[i] == '\n') DM_CALL(dm_buf_adds(&b, path_sep));
        else DM_CALL(dm_buf_addc(&b, s[i]));
    }
    int rc = dm_strtab_add(t, b.data ? b.data : "", b.len);
    dm_buf_free(&b);
    return rc;
}

/* An attribute key: kind byte, level byte (1 + level: never NUL), then the caller appends the name. */
static int attr_key(dm_buf *key, int kind, int level)
{
    dm_buf_reset(key);
    DM_CALL(dm_buf_addc(key, (char)(1 + kind)));
    return dm_buf_addc(key, (char)(1 + level));
}

/* Interns key and appends its id to cand (ncand of cap) unless the item's candidates, those from
 * start on, already hold it. */
static int attr_add(dm_strmap *keys, const dm_buf *key, size_t start, int64_t **cand, size_t *ncand, size_t *cap)
{
    int64_t id;
    DM_CALL(dm_strmap_intern(keys, key->data, key->len, &id, NULL));
    for (size_t c = start; c < *ncand; c++)
        if ((*cand)[c] == id) return DM_OK;
    if (*ncand + 1 > *cap) {
        *cap = *cap ? 2 * *cap : 4096;
        DM_REALLOC(*cand, *cap);
    }
    (*cand)[(*ncand)++] = id;
    return DM_OK;
}

static int build_attributes(dm_dataset *d, const dm_meta *meta, const int64_t *meta_of_item, const dm_process_opts *o)
{
    /* candidate attribute keys per item: kind byte, level byte, name */
    dm_strmap keys = {0};
    int64_t *count = NULL;
    size_t ccap = 0;
    int64_t *cand_off;
    DM_ALLOC(cand_off, d->n_items + 1);
    int64_t *cand = NULL;
    size_t ncand = 0, cap = 0;
    dm_buf key = {0};
    for (size_t it = 0; it < d->n_items; it++) {
        cand_off[it] = (int64_t)ncand;
        int64_t mi = meta_of_item[it];
        if (mi < 0) continue;
        size_t start = ncand;
        for (int pass = 0; pass < 4; pass++) {
            /* pass 0 brand, 1 categories, 2 price, 3 other */
            size_t l;
            const char *s;
            if (pass == 0) {
                s = dm_strtab_get(&meta->brand, (size_t)mi, &l);
                if (!l) continue;
                DM_CALL(attr_key(&key, DM_ATTR_BRAND, 0));
                DM_CALL(dm_buf_add(&key, s, l));
                DM_CALL(attr_add(&keys, &key, start, &cand, &ncand, &cap));
            } else if (pass == 2) {
                double pr = meta->price[mi];
                if (isnan(pr) || o->n_price_edges == 0) continue;
                size_t b = 0;
                while (b < o->n_price_edges && pr > o->price_edges[b]) b++;
                DM_CALL(attr_key(&key, DM_ATTR_PRICE, 0));
                if (b < o->n_price_edges) DM_CALL(dm_buf_printf(&key, "price <= %g", o->price_edges[b]));
                else DM_CALL(dm_buf_printf(&key, "price > %g", o->price_edges[o->n_price_edges - 1]));
                DM_CALL(attr_add(&keys, &key, start, &cand, &ncand, &cap));
            } else {
                int kind = pass == 1 ? DM_ATTR_CATEGORY : DM_ATTR_OTHER;
                s = dm_strtab_get(pass == 1 ? &meta->cats : &meta->attrs, (size_t)mi, &l);
                size_t i = 0;
                int level = 0;
                while (i < l) {
                    size_t j = i;
                    while (j < l && s[j] != '\t' && s[j] != '\n') j++;
                    if (j > i && (kind != DM_ATTR_CATEGORY || level < o->max_cat_levels)) {
                        DM_CALL(attr_key(&key, kind, kind == DM_ATTR_CATEGORY ? level : 0));
                        DM_CALL(dm_buf_add(&key, s + i, j - i));
                        DM_CALL(attr_add(&keys, &key, start, &cand, &ncand, &cap));
                    }
                    if (j < l && s[j] == '\n') level = 0;
                    else if (kind == DM_ATTR_CATEGORY) level++;
                    i = j + 1;
                }
            }
        }
    }
    cand_off[d->n_items] = (int64_t)ncand;
    ccap = keys.keys.n;
    DM_ALLOC(count, ccap + 1);
    for (size_t c = 0; c < ncand; c++) count[cand[c]]++;
    int32_t *newid;
    DM_ALLOC(newid, ccap + 1);
    size_t na = 0;
    for (size_t k = 0; k < ccap; k++) newid[k] = count[k] >= o->min_attr_count ? (int32_t)na++ : -1;
    d->n_attr = na;
    DM_ALLOC(d->attr_kind, na + 1);
    DM_ALLOC(d->attr_level, na + 1);
    for (size_t k = 0; k < ccap; k++) {
        if (newid[k] < 0) continue;
        size_t l;
        const char *s = dm_strtab_get(&keys.keys, k, &l);
        d->attr_kind[newid[k]] = (int8_t)(s[0] - 1);
        d->attr_level[newid[k]] = (int8_t)(s[1] - 1);
        DM_CALL(dm_strtab_add(&d->attr_name, s + 2, l - 2));
    }
    DM_ALLOC(d->item_attr_off, d->n_items + 1);
    DM_ALLOC(d->item_attr, ncand + 1);
    size_t q = 0;
    for (size_t it = 0; it < d->n_items; it++) {
        d->item_attr_off[it] = (int64_t)q;
        for (int64_t c = cand_off[it]; c < cand_off[it + 1]; c++)
            if (newid[cand[c]] >= 0) d->item_attr[q++] = newid[cand[c]];
    }
    d->item_attr_off[d->n_items] = (int64_t)q;
    free(newid);
    free(count);
    free(cand);
    free(cand_off);
    dm_buf_free(&key);
    dm_strmap_free(&keys);
    return DM_OK;
}

/* the records' input order: normally the file order already; otherwise sorted by the order key */
static int input_order(const dm_raw *raw, size_t **out)
{
    size_t n = raw->n;
    size_t *base;
    DM_ALLOC(base, n);
    int in_order = 1;
    for (size_t i = 1; i < n && in_order; i++) in_order = raw->order[i] > raw->order[i - 1];
    if (in_order)
        for (size_t i = 0; i < n; i++) base[i] = i;
    else
        DM_CALL(dm_argsort_i64(raw->order, n, base));
    *out = base;
    return DM_OK;
}

/* groups records by user (stable counting sort), then each user's records by time: ties keep the
   input order because both sorts are stable. uoff (nu_raw+1) and byu (n) are the user segments. */
static int group_by_user(const dm_raw *raw, const size_t *base, int64_t **uoff_out, size_t **byu_out)
{
    size_t n = raw->n, nu_raw = raw->users.keys.n;
    int64_t *uoff;
    size_t *byu;
    DM_ALLOC(uoff, nu_raw + 1);
    DM_ALLOC(byu, n);
    for (size_t i = 0; i < n; i++) uoff[raw->user[i] + 1]++;
    for (size_t k = 0; k < nu_raw; k++) uoff[k + 1] += uoff[k];
    {
        int64_t *fill;
        DM_ALLOC(fill, nu_raw + 1);
        for (size_t j = 0; j < n; j++) {
            size_t i = base[j];
            byu[uoff[raw->user[i]] + fill[raw->user[i]]++] = i;
        }
        free(fill);
    }
    for (size_t k = 0; k < nu_raw; k++) {
        size_t *seg = byu + uoff[k], len = (size_t)(uoff[k + 1] - uoff[k]);
        int sorted = 1;
        for (size_t j = 1; j < len && sorted; j++) sorted = raw->time[seg[j]] >= raw->time[seg[j - 1]];
        if (sorted) continue;
        if (len <= 32) { /* stable insertion sort */
            for (size_t j = 1; j < len; j++) {
                size_t x = seg[j], q = j;
                while (q > 0 && raw->time[seg[q - 1]] > raw->time[x]) {
                    seg[q] = seg[q - 1];
                    q--;
                }
                seg[q] = x;
            }
        } else
            DM_CALL(dm_argsort_i64_of(raw->time, seg, len));
    }
    *uoff_out = uoff;
    *byu_out = byu;
    return DM_OK;
}

/* clears alive[] for repeated (user, item) pairs in time order: dedup 1 keeps the first, 2 the last */
static int drop_duplicates(const dm_raw *raw, const int64_t *uoff, const size_t *byu, int dedup, uint8_t *alive)
{
    size_t nu_raw = raw->users.keys.n, ni_raw = raw->items.keys.n;
    int64_t *stamp;
    DM_ALLOC(stamp, ni_raw + 1);
    for (size_t k = 0; k < ni_raw; k++) stamp[k] = -1;
    for (size_t k = 0; k < nu_raw; k++) {
        size_t len = (size_t)(uoff[k + 1] - uoff[k]);
        for (size_t j = 0; j < len; j++) {
            size_t i = byu[uoff[k] + (dedup == 1 ? j : len - 1 - j)];
            if (stamp[raw->item[i]] == (int64_t)k) alive[i] = 0;
            else stamp[raw->item[i]] = (int64_t)k;
        }
    }
    free(stamp);
    return DM_OK;
}

/* iterative k-core: clears alive[] until every user and item keeps its minimum count */
static int kcore_filter(const dm_raw *raw, const dm_process_opts *o, uint8_t *alive)
{
    size_t n = raw->n, nu_raw = raw->users.keys.n, ni_raw = raw->items.keys.n;
    int64_t *uc, *ic;
    DM_ALLOC(uc, nu_raw);
    DM_ALLOC(ic, ni_raw);
    for (int changed = 1, round = 0; changed; round++) {
        changed = 0;
        memset(uc, 0, nu_raw * sizeof *uc);
        memset(ic, 0, ni_raw * sizeof *ic);
        for (size_t i = 0; i < n; i++)
            if (alive[i]) {
                uc[raw->user[i]]++;
                ic[raw->item[i]]++;
            }
        for (size_t i = 0; i < n; i++)
            if (alive[i] && (uc[raw->user[i]] < o->kcore_user || ic[raw->item[i]] < o->kcore_item)) {
                alive[i] = 0;
                changed = 1;
            }
        if (changed) dm_log_v(2, "  k-core round %d removed interactions", round + 1);
    }
    free(uc);
    free(ic);
    return DM_OK;
}

/* dense user and item ids (du: nu_raw, di: ni_raw, -1 when filtered out) by first appearance in
   input order (or numeric value); *m_out is the number of records alive */
static int assign_dense_ids(const dm_raw *raw, const size_t *base, const uint8_t *alive, const dm_process_opts *o,
                            dm_dataset *d, int32_t **du_out, int32_t **di_out, size_t *m_out)
{
    size_t n = raw->n, nu_raw = raw->users.keys.n, ni_raw = raw->items.keys.n;
    int64_t *ufirst, *ifirst;
    DM_ALLOC(ufirst, nu_raw);
    DM_ALLOC(ifirst, ni_raw);
    for (size_t k = 0; k < nu_raw; k++) ufirst[k] = -1;
    for (size_t k = 0; k < ni_raw; k++) ifirst[k] = -1;
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        size_t i = base[j];
        if (!alive[i]) continue;
        if (ufirst[raw->user[i]] < 0) ufirst[raw->user[i]] = (int64_t)j;
        if (ifirst[raw->item[i]] < 0) ifirst[raw->item[i]] = (int64_t)j;
        m++;
    }
    if (m == 0) {
        DM_ERR(DM_EINPUT, "no interactions left after filtering (k-core %lld/%lld)", (long long)o->kcore_user,
               (long long)o->kcore_item);
        DM_HINT("lower data.kcore_user / data.kcore_item");
        return DM_EINPUT;
    }
    int32_t *du, *di;
    DM_ALLOC(du, nu_raw);
    DM_ALLOC(di, ni_raw);
    DM_CALL(dense_ids(&raw->users, ufirst, o->numeric_ids, du, &d->n_users));
    DM_CALL(dense_ids(&raw->items, ifirst, o->numeric_ids, di, &d->n_items));
    free(ufirst);
    free(ifirst);
    *du_out = du;
    *di_out = di;
    *m_out = m;
    return DM_OK;
}

/* emits the m alive records: users in dense order (inv[u] = raw user of dense user u), each user's
   records in time order; item, time and given split per record */
static int emit_interactions(const dm_raw *raw, const size_t *base, const uint8_t *alive, const int64_t *uoff,
                             const size_t *byu, const int32_t *di, const int64_t *inv, size_t m, dm_dataset *d)
{
    size_t n = raw->n;
    d->n_inter = m;
    d->has_time = raw->has_time;
    DM_ALLOC(d->user_off, d->n_users + 1);
    DM_ALLOC(d->item, m);
    DM_ALLOC(d->time, m);
    int has_part = 0;
    for (size_t i = 0; i < n; i++) has_part |= alive[i] && raw->part[i] >= 0;
    if (has_part) DM_ALLOC(d->split_given, m);
    size_t *pos_of = NULL; /* input position of each alive record, for time-less sources */
    if (!raw->has_time) {
        DM_ALLOC(pos_of, n);
        size_t q = 0;
        for (size_t j = 0; j < n; j++)
            if (alive[base[j]]) pos_of[base[j]] = q++;
    }
    size_t q = 0;
    for (size_t u = 0; u < d->n_users; u++) {
        size_t k = (size_t)inv[u];
        for (int64_t j = uoff[k]; j < uoff[k + 1]; j++) {
            size_t i = byu[j];
            if (!alive[i]) continue;
            d->item[q] = di[raw->item[i]];
            /* no timestamps: the input position stands in for time */
            d->time[q] = raw->has_time ? raw->time[i] : (int64_t)pos_of[i];
            if (has_part) d->split_given[q] = raw->part[i] < 0 ? DM_TRAIN : raw->part[i];
            q++;
        }
        d->user_off[u + 1] = (int64_t)q;
    }
    free(pos_of);
    return DM_OK;
}

/* per dense item (inv[it] = raw item of dense item it): original id, and title, brand, category
   and price from the metadata when it has the item; meta_of_item[it] is its metadata row or -1 */
static int item_metadata(const dm_raw *raw, const dm_meta *meta, const int64_t *inv, dm_dataset *d,
                         int64_t *meta_of_item)
{
    DM_ALLOC(d->price, d->n_items + 1);
    DM_ALLOC(d->has_title, d->n_items + 1);
    for (size_t it = 0; it < d->n_items; it++) {
        size_t l;
        const char *s = dm_strtab_get(&raw->items.keys, (size_t)inv[it], &l);
        DM_CALL(dm_strtab_add(&d->item_id, s, l));
        int64_t mi = meta ? dm_strmap_find(&meta->ids, s, l) : -1;
        meta_of_item[it] = mi;
        if (mi >= 0) {
            const char *t = dm_strtab_get(&meta->title, (size_t)mi, &l);
            DM_CALL(dm_strtab_add(&d->title, t, l));
            t = dm_strtab_get(&meta->brand, (size_t)mi, &l);
            DM_CALL(dm_strtab_add(&d->brand, t, l));
            t = dm_strtab_get(&meta->cats, (size_t)mi, &l);
            DM_CALL(add_joined(&d->category, t, l, " > ", " | "));
            d->price[it] = (float)meta->price[mi];
            d->has_title[it] = (uint8_t)meta->has_title[mi];
        } else {
            DM_CALL(dm_strtab_add(&d->title, "", 0));
            DM_CALL(dm_strtab_add(&d->brand, "", 0));
            DM_CALL(dm_strtab_add(&d->category, "", 0));
            d->price[it] = NAN;
        }
    }
    return DM_OK;
}

int dm_process(const dm_raw *raw, const dm_meta *meta, const dm_process_opts *o, dm_dataset *d,
               int32_t **raw_to_item)
{
    memset(d, 0, sizeof *d);
    size_t n = raw->n;
    if (n == 0) return DM_ERR(DM_EINPUT, "no interactions to process");
    size_t nu_raw = raw->users.keys.n, ni_raw = raw->items.keys.n;
    size_t *base, *byu;
    int64_t *uoff;
    DM_CALL(input_order(raw, &base));
    DM_CALL(group_by_user(raw, base, &uoff, &byu));
    uint8_t *alive;
    DM_ALLOC(alive, n);
    memset(alive, 1, n);
    if (o->dedup) DM_CALL(drop_duplicates(raw, uoff, byu, o->dedup, alive));
    if (o->kcore_user > 0 || o->kcore_item > 0) DM_CALL(kcore_filter(raw, o, alive));
    int32_t *du, *di;
    size_t m;
    DM_CALL(assign_dense_ids(raw, base, alive, o, d, &du, &di, &m));
    int64_t *inv; /* dense id -> raw id, for users, then for items */
    DM_ALLOC(inv, (d->n_users > d->n_items ? d->n_users : d->n_items) + 1);
    for (size_t k = 0; k < nu_raw; k++)
        if (du[k] >= 0) inv[du[k]] = (int64_t)k;
    DM_CALL(emit_interactions(raw, base, alive, uoff, byu, di, inv, m, d));
    free(uoff);
    free(byu);
    free(base);
    for (size_t u = 0; u < d->n_users; u++) {
        size_t l;
        const char *s = dm_strtab_get(&raw->users.keys, (size_t)inv[u], &l);
        DM_CALL(dm_strtab_add(&d->user_id, s, l));
    }
    for (size_t k = 0; k < ni_raw; k++)
        if (di[k] >= 0) inv[di[k]] = (int64_t)k;
    int64_t *meta_of_item;
    DM_ALLOC(meta_of_item, d->n_items + 1);
    DM_CALL(item_metadata(raw, meta, inv, d, meta_of_item));
    DM_CALL(build_attributes(d, meta, meta_of_item, o));
    free(meta_of_item);
    free(inv);
    free(du);
    free(alive);
    if (raw_to_item) *raw_to_item = di;
    else free(di);
    DM_CALL(dm_make_splits(d, o));
    DM_CALL(dm_make_windows(d, o));
    return DM_OK;
}

/* interaction indices by (time, position): a total order that depends on nothing but the dataset */
static int sorted_by_time(const dm_dataset *d, size_t **out)
{
    size_t *idx;
    DM_ALLOC(idx, d->n_inter + 1);
    DM_CALL(dm_argsort_i64(d->time, d->n_inter, idx));
    *out = idx;
    return DM_OK;
}

int dm_make_splits(dm_dataset *d, const dm_process_opts *o)
{
    free(d->split_loo);
    free(d->split_temporal);
    DM_ALLOC(d->split_loo, d->n_inter + 1);
    DM_ALLOC(d->split_temporal, d->n_inter + 1);
    for (size_t u = 0; u < d->n_users; u++) {
        int64_t a = d->user_off[u], b = d->user_off[u + 1];
        if (b - a >= o->loo_min_len) {
            d->split_loo[b - 1] = DM_TEST;
            d->split_loo[b - 2] = DM_VALID;
        }
    }
    size_t *idx;
    DM_CALL(sorted_by_time(d, &idx));
    size_t n = d->n_inter;
    size_t iv = (size_t)floor((double)n * (1.0 - o->temporal_valid - o->temporal_test));
    size_t itt = (size_t)floor((double)n * (1.0 - o->temporal_test));
    if (iv >= n) iv = n - 1;
    if (itt >= n) itt = n - 1;
    int64_t cv = d->time[idx[iv]], ct = d->time[idx[itt]];
    if (o->temporal_test <= 0) ct = INT64_MAX;
    if (o->temporal_valid <= 0) cv = ct;
    d->temporal_cut[0] = cv;
    d->temporal_cut[1] = ct;
    for (size_t i = 0; i < n; i++)
        d->split_temporal[i] = d->time[i] >= ct ? DM_TEST : (d->time[i] >= cv ? DM_VALID : DM_TRAIN);
    free(idx);
    return DM_OK;
}

/* calendar helpers on ms timestamps (UTC) */
static int64_t floor_unit(int64_t ms, int unit)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    if (unit == 0) return (int64_t)s * 1000;
    struct tm tm;
    gmtime_r(&s, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (unit == 2) {
        /* weeks start on Monday */
        int back = (tm.tm_wday + 6) % 7;
        tm.tm_mday -= back;
    }
    if (unit == 3) tm.tm_mday = 1;
    return (int64_t)timegm(&tm) * 1000;
}

static int64_t add_units(int64_t ms, int unit, int64_t k)
{
    if (unit == 0) return ms + k * 1000;
    if (unit == 1) return ms + k * 86400000LL;
    if (unit == 2) return ms + k * 7 * 86400000LL;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int64_t mon = tm.tm_mon + k;
    tm.tm_year += (int)(mon >= 0 ? mon / 12 : -((11 - mon) / 12));
    tm.tm_mon = (int)(((mon % 12) + 12) % 12);
    return (int64_t)timegm(&tm) * 1000;
}

int dm_make_windows(dm_dataset *d, const dm_process_opts *o)
{
    free(d->window);
    free(d->window_start);
    d->window = NULL;
    d->window_start = NULL;
    size_t n = d->n_inter;
    DM_ALLOC(d->window, n + 1);
    for (size_t i = 0; i < n; i++) d->window[i] = -1;
    size_t *idx;
    DM_CALL(sorted_by_time(d, &idx));
    if (!o->window_time) {
        size_t h = (size_t)floor(o->window_start * (double)n);
        size_t rest = n - h;
        size_t W = (size_t)o->window_count;
        if (rest < W) W = rest;
        d->n_windows = W;
        DM_ALLOC(d->window_start, W + 1);
        for (size_t k = 0; k < W; k++) {
            size_t a = h + k * rest / W, b = h + (k + 1) * rest / W;
            d->window_start[k] = d->time[idx[a]];
            for (size_t j = a; j < b; j++) d->window[idx[j]] = (int32_t)k;
        }
        if (W) d->window_start[W] = d->time[idx[n - 1]] + 1;
    } else {
        if (!d->has_time) {
            free(idx);
            DM_ERR(DM_ECONFIG, "window.mode = \"time\" needs timestamps, and this dataset has none");
            DM_HINT("use window.mode = \"count\" (equal numbers of interactions per window)");
            return DM_ECONFIG;
        }
        int64_t t0 = floor_unit(d->time[idx[0]], o->window_unit), tmax = d->time[idx[n - 1]];
        size_t W = 0;
        while (add_units(t0, o->window_unit, (int64_t)W * o->window_width) <= tmax) W++;
        size_t first = 0;
        if (o->window_last > 0 && (size_t)o->window_last < W) first = W - (size_t)o->window_last;
        d->n_windows = W - first;
        DM_ALLOC(d->window_start, d->n_windows + 1);
        for (size_t k = 0; k <= d->n_windows; k++)
            d->window_start[k] = add_units(t0, o->window_unit, (int64_t)(first + k) * o->window_width);
        size_t k = 0;
        for (size_t j = 0; j < n; j++) {
            int64_t t = d->time[idx[j]];
            if (t < d->window_start[0]) continue;
            while (k + 1 < d->n_windows && t >= d->window_start[k + 1]) k++;
            d->window[idx[j]] = (int32_t)k;
        }
    }
    free(idx);
    return dm_make_stream_split(d);
}

int dm_make_stream_split(dm_dataset *d)
{
    free(d->split_stream);
    DM_ALLOC(d->split_stream, d->n_inter + 1);
    for (size_t i = 0; i < d->n_inter; i++)
        d->split_stream[i] = d->window[i] < 0 ? DM_TRAIN : (d->window[i] == 0 ? DM_VALID : DM_TEST);
    return DM_OK;
}

void dm_dataset_free(dm_dataset *d)
{
    DM_FREE_ALL(d->user_off, d->item, d->time, d->split_loo, d->split_temporal, d->split_given, d->split_stream,
                d->window, d->window_start);
    DM_EACH(dm_strtab_free, &d->user_id, &d->item_id, &d->title, &d->brand, &d->category, &d->attr_name);
    DM_FREE_ALL(d->price, d->has_title, d->attr_kind, d->attr_level, d->item_attr_off, d->item_attr);
    for (int m = 0; m < d->n_modal; m++) DM_FREE_ALL(d->modal[m].feat, d->modal[m].present);
    DM_FREE_ALL(d->drift_user, d->taste_before, d->taste_after, d->item_cluster);
    for (int c = 0; c < d->n_cand; c++) free(d->cand[c].rows);
    dm_buf_free(&d->sources);
    memset(d, 0, sizeof *d);
}

int dm_attach_features(dm_dataset *d, const dm_raw *raw, const int32_t *raw_to_item, int m, const float *rows,
                       size_t nrows, size_t dim, const dm_strtab *ids, int zero_is_missing, const char *what)
{
    if (d->n_modal >= DM_MAX_MODAL) return DM_ERR(DM_EINTERNAL, "too many modalities");
    if (ids && ids->n != nrows) {
        DM_ERR(DM_EINPUT, "'%s' has %zu feature rows but its id list has %zu ids", what, nrows, ids->n);
        DM_HINT("the ids file needs exactly one original item id per feature row");
        return DM_EINPUT;
    }
    dm_modal *md = &d->modal[d->n_modal];
    memset(md, 0, sizeof *md);
    snprintf(md->name, sizeof md->name, "%s", dm_modal_names[m]);
    snprintf(md->source, sizeof md->source, "%s", what);
    md->dim = dim;
    DM_ALLOC(md->feat, d->n_items * dim + 1);
    DM_ALLOC(md->present, d->n_items + 1);
    char num[32];
    for (size_t r = 0; r < nrows; r++) {
        const float *x = rows + r * dim;
        for (size_t c = 0; c < dim; c++)
            if (!isfinite(x[c])) {
                free(md->feat);
                free(md->present);
                md->feat = NULL;
                md->present = NULL;
                DM_ERR(DM_EINPUT, "'%s' row %zu column %zu is %s", what, r, c, isnan(x[c]) ? "NaN" : "infinite");
                DM_HINT("features must be finite; mark a missing item with an all-zero row");
                return DM_EINPUT;
            }
        const char *id;
        size_t l;
        if (ids) id = dm_strtab_get(ids, r, &l);
        else {
            l = (size_t)snprintf(num, sizeof num, "%zu", r);
            id = num;
        }
        int64_t k = dm_strmap_find(&raw->items, id, l);
        if (k < 0) {
            int allzero = 1;
            for (size_t c = 0; c < dim; c++) allzero &= x[c] == 0.0f;
            if (zero_is_missing && allzero) continue;
            free(md->feat);
            free(md->present);
            md->feat = NULL;
            md->present = NULL;
            DM_ERR(DM_EINPUT, "'%s' row %zu belongs to item '%.*s', which is not in the interactions", what, r, (int)l, id);
            DM_HINT(ids ? "check that the ids file lists the dataset's original item ids"
                        : "row r is read as the item whose original id is r; give modal.<name>.ids when rows follow another order");
            return DM_EINPUT;
        }
        int32_t it = raw_to_item[k];
        if (it < 0) continue; /* item filtered out */
        int allzero = 1;
        for (size_t c = 0; c < dim; c++) allzero &= x[c] == 0.0f;
        if (zero_is_missing && allzero) continue;
        if (md->present[it]) {
            free(md->feat);
            free(md->present);
            md->feat = NULL;
            md->present = NULL;
            DM_ERR(DM_EINPUT, "'%s' row %zu repeats item '%.*s'", what, r, (int)l, id);
            DM_HINT("every item may have at most one feature row");
            return DM_EINPUT;
        }
        memcpy(md->feat + (size_t)it * dim, x, dim * sizeof(float));
        md->present[it] = 1;
    }
    d->n_modal++;
    return DM_OK;
}
