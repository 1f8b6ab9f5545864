/* explain_rationale.c: template parsing, allowed slot values from the evidence, and the choice of
 * template and values by likelihood on the LM's KV cache (see explain_rationale.h). */
#include "explain_rationale.h"

#include "../core/err.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const explain_slot_names[EXPLAIN_NSLOTS] = {"item", "brand", "category", "price", "n"};

static int slot_of(const char *s, size_t l)
{
    for (int k = 0; k < EXPLAIN_NSLOTS; k++)
        if (strlen(explain_slot_names[k]) == l && !memcmp(explain_slot_names[k], s, l)) return k;
    return -1;
}

/* dataset attribute kind a slot draws from, -1 for {item} and {n} */
static int attr_kind_of(int slot)
{
    return slot == EXPLAIN_SLOT_BRAND ? DM_ATTR_BRAND
           : slot == EXPLAIN_SLOT_CATEGORY ? DM_ATTR_CATEGORY
           : slot == EXPLAIN_SLOT_PRICE ? DM_ATTR_PRICE : -1;
}

static int add_part(explain_templates *t, int slot, const char *s, size_t l)
{
    int p = t->n_parts++;
    t->slot[p] = slot;
    t->text[p] = NULL;
    if (slot < 0) {
        DM_ALLOC(t->text[p], l + 1);
        memcpy(t->text[p], s, l);
    }
    return DM_OK;
}

static int parse(const char *spec, explain_templates *t)
{
    size_t L = strlen(spec), nbrace = 0;
    int n = 1;
    for (size_t k = 0; k < L; k++) {
        n += spec[k] == '|';
        nbrace += spec[k] == '{';
    }
    t->n = n;
    DM_ALLOC(t->part_off, (size_t)n + 1);
    DM_ALLOC(t->slot, 2 * nbrace + (size_t)n + 1);
    DM_ALLOC(t->text, 2 * nbrace + (size_t)n + 1);
    const char *p = spec;
    for (int k = 0; k < n; k++) {
        const char *e = strchr(p, '|');
        if (!e) e = spec + L;
        int blank = 1;
        for (const char *q = p; q < e; q++) blank &= isspace((unsigned char)*q) != 0;
        if (blank) {
            DM_ERR(DM_ECONFIG, "explain.templates: template %d of %d is empty", k + 1, n);
            DM_HINT("templates are separated by '|'; remove the extra separator");
            return DM_ECONFIG;
        }
        int nslots = 0;
        const char *seg = p;
        for (const char *q = p; q < e;) {
            if (*q != '{') {
                q++;
                continue;
            }
            const char *c = q + 1;
            while (c < e && *c != '}' && *c != '{') c++;
            if (c >= e || *c != '}') {
                DM_ERR(DM_ECONFIG, "explain.templates: template %d: '{' at column %d is not closed", k + 1,
                       (int)(q - p) + 1);
                DM_HINT("slots are {item}, {brand}, {category}, {price} and {n}");
                return DM_ECONFIG;
            }
            int s = slot_of(q + 1, (size_t)(c - q - 1));
            if (s < 0) {
                DM_ERR(DM_ECONFIG, "explain.templates: template %d: unknown slot '{%.*s}'", k + 1, (int)(c - q - 1), q + 1);
                DM_HINT("slots are {item}, {brand}, {category}, {price} and {n}");
                return DM_ECONFIG;
            }
            if (++nslots > EXPLAIN_MAX_SLOTS) {
                DM_ERR(DM_ECONFIG, "explain.templates: template %d has more than %d slots", k + 1, EXPLAIN_MAX_SLOTS);
                return DM_ECONFIG;
            }
            if (q > seg) DM_CALL(add_part(t, -1, seg, (size_t)(q - seg)));
            DM_CALL(add_part(t, s, NULL, 0));
            q = seg = c + 1;
        }
        if (e > seg) DM_CALL(add_part(t, -1, seg, (size_t)(e - seg)));
        t->part_off[k + 1] = t->n_parts;
        p = e + 1;
    }
    return DM_OK;
}

int explain_templates_parse(const char *spec, explain_templates *t)
{
    memset(t, 0, sizeof *t);
    int rc = parse(spec, t);
    if (rc != DM_OK) {
        dm_error_trace(__FILE__, __LINE__);
        explain_templates_free(t);
    }
    return rc;
}

void explain_templates_free(explain_templates *t)
{
    for (int p = 0; p < t->n_parts; p++) free(t->text[p]);
    DM_FREE_ALL(t->text, t->slot, t->part_off);
    memset(t, 0, sizeof *t);
}

int explain_rationale_init(explain_rationale *r)
{
    memset(r, 0, sizeof *r);
    r->tpl = -1;
    return DM_OK;
}

void explain_rationale_free(explain_rationale *r)
{
    DM_EACH(dm_buf_free, &r->text, &r->values, &r->cand);
    DM_FREE_ALL(r->cand_off, r->cand_ptr, r->cand_elem);
    memset(r, 0, sizeof *r);
    r->tpl = -1;
}

int explain_slot_value(const dm_dataset *d, const explain_evidence *ev, int slot, int elem, dm_buf *out)
{
    DM_ASSERT(elem >= 0 && elem < ev->n);
    const explain_elem *e = &ev->el[elem];
    size_t l;
    const char *s;
    if (slot == EXPLAIN_SLOT_N) return dm_buf_printf(out, "%d", (int)e->count);
    if (slot == EXPLAIN_SLOT_ITEM) {
        if (e->id < 0 || (size_t)e->id >= d->n_items)
            return DM_ERR(DM_EINPUT, "evidence item %d out of range (%zu items)", e->id, d->n_items);
        s = dm_strtab_get(&d->title, (size_t)e->id, &l);
    } else {
        if (e->id < 0 || (size_t)e->id >= d->n_attr)
            return DM_ERR(DM_EINPUT, "evidence attribute %d out of range (%zu attributes)", e->id, d->n_attr);
        s = dm_strtab_get(&d->attr_name, (size_t)e->id, &l);
    }
    return dm_buf_add(out, s, l);
}

/* Adds the value of element j to the candidates unless it is empty, already a candidate, or in
 * `used` (NUL-separated strings, nused of them). */
static int add_cand(explain_rationale *r, const dm_dataset *d, const explain_evidence *ev, int slot, int j,
                    const dm_buf *used, int nused, int *n)
{
    size_t start = r->cand.len;
    DM_CALL(explain_slot_value(d, ev, slot, j, &r->cand));
    size_t l = r->cand.len - start;
    const char *v = r->cand.data ? r->cand.data + start : "";
    int dup = l == 0;
    for (int k = 0; k < *n && !dup; k++)
        dup = strlen(r->cand.data + r->cand_off[k]) == l && !memcmp(r->cand.data + r->cand_off[k], v, l);
    for (size_t o = 0, k = 0; (int)k < nused && !dup; k++) {
        const char *u = used->data + o;
        size_t ul = strlen(u);
        dup = ul == l && !memcmp(u, v, l);
        o += ul + 1;
    }
    if (dup) {
        r->cand.len = start;
        if (r->cand.data) r->cand.data[start] = 0;
        return DM_OK;
    }
    DM_CALL(dm_buf_addc(&r->cand, 0));
    r->cand_off[*n] = start;
    r->cand_elem[*n] = j;
    (*n)++;
    return DM_OK;
}

int explain_slot_values(const explain_templates *t, int tpl, int p, const dm_dataset *d, const explain_evidence *ev,
                        explain_rationale *r, int *n)
{
    const int slot = t->slot[p], p0 = t->part_off[tpl];
    DM_ASSERT(slot >= 0 && p >= p0 && p < t->part_off[tpl + 1]);
    if (r->cand_cap < ev->n + 1) {
        int c = ev->n + 16;
        DM_REALLOC(r->cand_off, c);
        DM_REALLOC(r->cand_ptr, c);
        DM_REALLOC(r->cand_elem, c);
        r->cand_cap = c;
    }
    dm_buf_reset(&r->cand);
    *n = 0;
    /* earlier slots of this template: s = their count; for {n} the nearest attribute slot */
    int s = 0, near = -1;
    for (int q = p0; q < p; q++) {
        if (t->slot[q] < 0) continue;
        if (attr_kind_of(t->slot[q]) >= 0) near = r->cur_elem[s];
        s++;
    }
    if (slot == EXPLAIN_SLOT_N) {
        if (near >= 0) {
            if (ev->el[near].count > 0) DM_CALL(add_cand(r, d, ev, slot, near, NULL, 0, n));
        } else {
            for (int j = 0; j < ev->n; j++)
                if (ev->el[j].kind == EXPLAIN_ATTR && ev->el[j].count > 0) DM_CALL(add_cand(r, d, ev, slot, j, NULL, 0, n));
        }
    } else {
        /* values written into earlier slots of the same kind are not allowed again */
        dm_buf used = {0};
        int nused = 0, rc = DM_OK;
        for (int q = p0, k = 0; q < p && rc == DM_OK; q++) {
            if (t->slot[q] < 0) continue;
            if (t->slot[q] == slot) {
                rc = explain_slot_value(d, ev, slot, r->cur_elem[k], &used);
                if (rc == DM_OK) rc = dm_buf_addc(&used, 0);
                nused++;
            }
            k++;
        }
        const int ak = attr_kind_of(slot);
        for (int j = 0; j < ev->n && rc == DM_OK; j++) {
            const explain_elem *e = &ev->el[j];
            int ok = slot == EXPLAIN_SLOT_ITEM ? e->kind == EXPLAIN_ITEM
                                               : e->kind == EXPLAIN_ATTR && e->id >= 0 && (size_t)e->id < d->n_attr &&
                                                     d->attr_kind[e->id] == ak;
            if (ok) rc = add_cand(r, d, ev, slot, j, &used, nused, n);
        }
        dm_buf_free(&used);
        DM_CALL(rc);
    }
    for (int k = 0; k < *n; k++) r->cand_ptr[k] = r->cand.data + r->cand_off[k];
    return DM_OK;
}

/* Writes template tpl after the cache's prefix, each slot its strongest allowed value (the first
 * in evidence order, groups being sorted by decreasing weight) that fits in the context; the chosen
 * elements go to r->cur_elem. *ok = 0 when a slot has no allowed value or none fits. The cache is
 * truncated back to its length on entry. */
static int try_template(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                        const lm_model *lm, lm_cache *c, explain_rationale *r, double *ll, int *ntok, int *ok)
{
    const int len0 = c->len;
    int rc = DM_OK, s = 0;
    *ll = 0;
    *ok = 1;
    for (int p = t->part_off[tpl]; p < t->part_off[tpl + 1] && rc == DM_OK && *ok; p++) {
        double pll = 0;
        int choice = -1;
        dm_buf_reset(&r->text);
        if (t->slot[p] < 0) {
            const char *const v[1] = {t->text[p]};
            lm_part part = {NULL, v, 1};
            rc = lm_fill_template(lm, c, &part, 1, &choice, &pll, &r->text);
            if (rc == DM_OK && choice < 0) *ok = 0; /* does not fit in the context */
        } else {
            int nv = 0;
            rc = explain_slot_values(t, tpl, p, d, ev, r, &nv);
            /* the strongest value that fits; a value that does not fit leaves the cache as it was */
            for (int k = 0; k < nv && rc == DM_OK && choice < 0; k++) {
                lm_part part = {NULL, &r->cand_ptr[k], 1};
                rc = lm_fill_template(lm, c, &part, 1, &choice, &pll, &r->text);
                if (rc == DM_OK && choice >= 0) r->cur_elem[s++] = r->cand_elem[k];
            }
            if (rc == DM_OK && choice < 0) *ok = 0;
        }
        *ll += pll;
    }
    *ntok = c->len - len0;
    int rc2 = lm_cache_truncate(c, len0);
    DM_CALL(rc);
    DM_CALL(rc2);
    return DM_OK;
}

/* distinct elements among elem[0..n) */
static int count_distinct(const int *elem, int n)
{
    int m = 0;
    for (int k = 0; k < n; k++) {
        int dup = 0;
        for (int q = 0; q < k; q++) dup |= elem[q] == elem[k];
        m += !dup;
    }
    return m;
}

static int template_slots(const explain_templates *t, int tpl)
{
    int n = 0;
    for (int p = t->part_off[tpl]; p < t->part_off[tpl + 1]; p++) n += t->slot[p] >= 0;
    return n;
}

double explain_fit_score(double ll, int n_tokens, int n_cite, double coverage_weight)
{
    return n_tokens > 0 ? (ll + coverage_weight * n_cite) / n_tokens : 0.0;
}

/* Result of template tpl with slot elements elem: text, values, cites. */
static int finish(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                  const int *elem, double ll, int ntok, explain_rationale *r)
{
    int ch[EXPLAIN_MAX_SLOTS];
    memcpy(ch, elem, sizeof ch);
    r->tpl = tpl;
    r->ll = ll;
    r->n_tokens = ntok;
    r->score = ntok > 0 ? ll / ntok : 0.0;
    dm_buf_reset(&r->text);
    dm_buf_reset(&r->values);
    r->n_slots = r->n_cite = 0;
    for (int p = t->part_off[tpl]; p < t->part_off[tpl + 1]; p++) {
        if (t->slot[p] < 0) {
            DM_CALL(dm_buf_adds(&r->text, t->text[p]));
            continue;
        }
        int s = r->n_slots++, e = ch[s];
        r->slot_kind[s] = t->slot[p];
        r->slot_elem[s] = e;
        r->value_off[s] = r->values.len;
        size_t before = r->values.len;
        DM_CALL(explain_slot_value(d, ev, t->slot[p], e, &r->values));
        DM_CALL(dm_buf_add(&r->text, r->values.data + before, r->values.len - before));
        DM_CALL(dm_buf_addc(&r->values, 0));
        int dup = 0;
        for (int k = 0; k < r->n_cite; k++) dup |= r->cite[k] == e;
        if (!dup) r->cite[r->n_cite++] = e;
    }
    return DM_OK;
}

static void clear(explain_rationale *r)
{
    r->tpl = -1;
    r->ll = r->score = 0;
    r->n_tokens = r->n_slots = r->n_cite = 0;
    dm_buf_reset(&r->text);
    dm_buf_reset(&r->values);
}

int explain_rationale_fit(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                          const lm_model *lm, lm_cache *c, double coverage_weight, explain_rationale *r, explain_fit *fit)
{
    for (int tpl = 0; tpl < t->n; tpl++) {
        explain_fit *f = &fit[tpl];
        memset(f, 0, sizeof *f);
        f->score = -INFINITY;
        DM_CALL(try_template(t, tpl, d, ev, lm, c, r, &f->ll, &f->n_tokens, &f->ok));
        if (!f->ok) continue;
        memcpy(f->elem, r->cur_elem, sizeof f->elem);
        f->n_cite = count_distinct(f->elem, template_slots(t, tpl));
        f->score = explain_fit_score(f->ll, f->n_tokens, f->n_cite, coverage_weight);
    }
    return DM_OK;
}

int explain_rationale_set(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                          const explain_fit *fit, explain_rationale *r)
{
    clear(r);
    if (tpl < 0) return DM_OK;
    DM_ASSERT(tpl < t->n && fit[tpl].ok);
    DM_CALL(finish(t, tpl, d, ev, fit[tpl].elem, fit[tpl].ll, fit[tpl].n_tokens, r));
    r->score = fit[tpl].score;
    return DM_OK;
}

int explain_rationale_make_one(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                               const lm_model *lm, lm_cache *c, double coverage_weight, explain_rationale *r)
{
    DM_ASSERT(tpl >= 0 && tpl < t->n);
    explain_fit f;
    memset(&f, 0, sizeof f);
    DM_CALL(try_template(t, tpl, d, ev, lm, c, r, &f.ll, &f.n_tokens, &f.ok));
    clear(r);
    if (!f.ok) return DM_OK;
    DM_CALL(finish(t, tpl, d, ev, r->cur_elem, f.ll, f.n_tokens, r));
    r->score = explain_fit_score(f.ll, f.n_tokens, r->n_cite, coverage_weight);
    return DM_OK;
}

int explain_rationale_make(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                           const lm_model *lm, lm_cache *c, double coverage_weight, explain_rationale *r)
{
    explain_fit *fit;
    DM_ALLOC(fit, (size_t)t->n);
    int rc = explain_rationale_fit(t, d, ev, lm, c, coverage_weight, r, fit), best = -1;
    for (int tpl = 0; rc == DM_OK && tpl < t->n; tpl++)
        if (fit[tpl].ok && (best < 0 || fit[tpl].score > fit[best].score)) best = tpl;
    if (rc == DM_OK) rc = explain_rationale_set(t, best, d, ev, fit, r);
    free(fit);
    return rc;
}

/* ---- template shares: a min-cost assignment (Kuhn-Munkres) of items to template slots ---- */

/* Hungarian algorithm for a rectangular cost matrix a (n, m), n <= m, row-major: row i goes to
 * column col[i], the total cost minimal. O(n^2 m); potentials in double. Ties resolve to the first
 * minimum in index order, so the result is deterministic. */
static int hungarian(int n, int m, const double *a, int *col)
{
    double *u, *v, *minv;
    int *p, *way;
    uint8_t *used;
    DM_ALLOC(u, (size_t)n + 1);
    v = calloc((size_t)m + 1, sizeof *v);
    minv = malloc(((size_t)m + 1) * sizeof *minv);
    p = calloc((size_t)m + 1, sizeof *p);
    way = calloc((size_t)m + 1, sizeof *way);
    used = malloc((size_t)m + 1);
    if (!v || !minv || !p || !way || !used) {
        free(u), free(v), free(minv), free(p), free(way), free(used);
        return DM_ERR(DM_ENOMEM, "out of memory for a %d x %d assignment", n, m);
    }
    for (int i = 0; i <= n; i++) u[i] = 0;
    /* rows and columns 1-based, column 0 the virtual start (e-maxx's formulation) */
    for (int i = 1; i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= m; j++) {
            minv[j] = INFINITY;
            used[j] = 0;
        }
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= m; j++) {
                if (used[j]) continue;
                double cur = a[(size_t)(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            DM_ASSERT(j1 > 0);
            for (int j = 0; j <= m; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int j = 1; j <= m; j++)
        if (p[j]) col[p[j] - 1] = j - 1;
    free(u), free(v), free(minv), free(p), free(way), free(used);
    return DM_OK;
}

int explain_template_cap(int n_items, double share)
{
    int cap = (int)floor(share * n_items + 1e-9);
    return cap < 1 ? 1 : cap;
}

int explain_templates_assign(int n_items, int n_tpl, const double *score, double share, int *tpl, int *over)
{
    int rc = DM_OK, nq = 0, cap = explain_template_cap(n_items, share);
    *over = 0;
    for (int k = 0; k < n_items; k++) tpl[k] = -1;
    /* the items some template qualifies for; the others stay -1 */
    int *row;
    DM_ALLOC(row, (size_t)n_items + 1);
    double span = 0;
    for (int k = 0; k < n_items; k++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int t = 0; t < n_tpl; t++) {
            double s = score[(size_t)k * n_tpl + t];
            if (s == -INFINITY) continue;
            DM_ASSERT(isfinite(s));
            lo = s < lo ? s : lo;
            hi = s > hi ? s : hi;
        }
        if (hi > -INFINITY) {
            row[nq++] = k;
            span += hi - lo;
        }
    }
    if (nq == 0) {
        free(row);
        return DM_OK;
    }
    /* columns: nq slots per template, the first cap at cost -score, the others -score + M; M is
     * larger than any difference of total scores, so the assignment first minimises the items over
     * a cap, then maximises the total score; a template that does not qualify costs F > nq M */
    const double M = 1.0 + 2.0 * span, F = (nq + 1.0) * M * 2.0 + 1.0;
    const int m = n_tpl * nq;
    double *a = malloc((size_t)nq * m * sizeof *a);
    int *col = malloc((size_t)nq * sizeof *col);
    if (!a || !col) rc = DM_ERR(DM_ENOMEM, "out of memory for the template assignment of %d items", nq);
    for (int i = 0; rc == DM_OK && i < nq; i++)
        for (int t = 0; t < n_tpl; t++) {
            double s = score[(size_t)row[i] * n_tpl + t];
            for (int j = 0; j < nq; j++)
                a[(size_t)i * m + t * nq + j] = s == -INFINITY ? F : -s + (j >= cap ? M : 0.0);
        }
    if (rc == DM_OK) rc = hungarian(nq, m, a, col);
    int *used = rc == DM_OK ? calloc((size_t)n_tpl, sizeof *used) : NULL;
    if (rc == DM_OK && !used) rc = DM_ERR(DM_ENOMEM, "out of memory");
    for (int i = 0; rc == DM_OK && i < nq; i++) {
        int t = col[i] / nq;
        DM_ASSERT(score[(size_t)row[i] * n_tpl + t] != -INFINITY);
        tpl[row[i]] = t;
        used[t]++;
    }
    for (int t = 0; rc == DM_OK && t < n_tpl; t++) *over += used[t] > cap ? used[t] - cap : 0;
    free(used);
    free(a);
    free(col);
    free(row);
    return rc;
}

int explain_rationale_reference(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                                explain_rationale *r)
{
    clear(r);
    for (int tpl = 0; tpl < t->n; tpl++) {
        int ok = 1, s = 0;
        for (int p = t->part_off[tpl]; p < t->part_off[tpl + 1] && ok; p++) {
            if (t->slot[p] < 0) continue;
            int nv = 0;
            DM_CALL(explain_slot_values(t, tpl, p, d, ev, r, &nv));
            if (nv == 0) ok = 0;
            else r->cur_elem[s++] = r->cand_elem[0];
        }
        if (ok) return finish(t, tpl, d, ev, r->cur_elem, 0.0, 0, r);
    }
    return DM_OK;
}

int explain_rationale_tokens(const lm_model *lm, const explain_templates *t, const explain_rationale *r, bpe_ids *out)
{
    if (r->tpl < 0) return DM_OK;
    int s = 0;
    for (int p = t->part_off[r->tpl]; p < t->part_off[r->tpl + 1]; p++) {
        const char *piece = t->slot[p] < 0 ? t->text[p] : r->values.data + r->value_off[s++];
        DM_CALL(lm_encode(lm, piece, strlen(piece), out));
    }
    return DM_OK;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void explain_rationale_attrs(const explain_rationale *r, const explain_evidence *ev, int32_t *out, int *n)
{
    int m = 0;
    for (int s = 0; s < r->n_slots; s++) {
        if (r->slot_kind[s] == EXPLAIN_SLOT_ITEM) continue;
        const explain_elem *e = &ev->el[r->slot_elem[s]];
        if (e->kind == EXPLAIN_ATTR) out[m++] = e->id;
    }
    qsort(out, (size_t)m, sizeof *out, cmp_i32);
    int q = 0;
    for (int k = 0; k < m; k++)
        if (q == 0 || out[k] != out[q - 1]) out[q++] = out[k];
    *n = q;
}
