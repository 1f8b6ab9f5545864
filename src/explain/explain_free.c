/* explain_free.c: free-form rationales decoded by the frozen LM through a token trie over the
 * evidence values and a fixed set of connective words (see explain_free.h). */
#include "explain_free.h"

#include "../core/err.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_punct_word(const char *w, size_t l)
{
    return l == 1 && (w[0] == '.' || w[0] == ',' || w[0] == ';');
}

/* 1 when w[0..l) equals (ignoring case) an item title or an attribute name of d */
static int names_catalogue(const dm_dataset *d, const char *w, size_t l)
{
    for (size_t i = 0; i < d->n_items; i++) {
        size_t tl;
        const char *t = dm_strtab_get(&d->title, i, &tl);
        if (tl == l && !strncasecmp(t, w, l)) return 1;
    }
    for (size_t a = 0; a < d->n_attr; a++) {
        size_t al;
        const char *t = dm_strtab_get(&d->attr_name, a, &al);
        if (al == l && !strncasecmp(t, w, l)) return 1;
    }
    return 0;
}

int explain_free_init(explain_free *f, const char *words, int max_tokens, const dm_dataset *d, const lm_model *lm)
{
    memset(f, 0, sizeof *f);
    f->max_tokens = max_tokens;
    f->period = -1;
    size_t L = strlen(words), cap = L / 2 + 2;
    DM_ALLOC(f->word, cap);
    DM_ALLOC(f->punct, cap);
    DM_ALLOC(f->wtok_off, cap + 1);
    DM_ALLOC(f->seg, (size_t)max_tokens + 1);
    bpe_ids ids = {0};
    int rc = DM_OK, dropped = 0;
    for (const char *p = words; *p && rc == DM_OK;) {
        while (*p && isspace((unsigned char)*p)) p++;
        const char *e = p;
        while (*e && !isspace((unsigned char)*e)) e++;
        size_t l = (size_t)(e - p);
        if (l == 0) break;
        int pu = is_punct_word(p, l), dup = 0;
        for (int k = 0; k < f->n_words && !dup; k++)
            dup = strlen(f->word[k]) == l + !pu && !strncmp(f->word[k] + !pu, p, l);
        if (!dup && !pu && names_catalogue(d, p, l)) {
            dropped++;
            dup = 1;
        }
        if (!dup) {
            int w = f->n_words;
            char *s = malloc(l + 2);
            if (!s) rc = DM_ERR(DM_ENOMEM, "out of memory");
            if (s) {
                s[0] = ' ';
                memcpy(s + !pu, p, l);
                s[l + !pu] = 0;
                f->word[w] = s;
                f->punct[w] = (uint8_t)pu;
                if (pu && p[0] == '.') f->period = w;
                f->n_words++;
                size_t n0 = ids.n;
                rc = lm_encode(lm, s, strlen(s), &ids);
                if (rc == DM_OK && ids.n == n0) rc = DM_ERR(DM_ECONFIG, "explain.free_words: '%s' has no tokens", s + !pu);
                f->wtok_off[w + 1] = (int64_t)ids.n;
            }
        }
        p = e;
    }
    f->wtok = ids.v;
    if (rc == DM_OK && f->n_words == 0) {
        rc = DM_ERR(DM_ECONFIG, "explain.free_words: no connective word left (%d dropped as catalogue names)", dropped);
        DM_HINT("list words such as \"because you bought and .\" separated by spaces");
    }
    if (rc != DM_OK) {
        explain_free_free(f);
        DM_CALL(rc);
    }
    return DM_OK;
}

void explain_free_free(explain_free *f)
{
    for (int k = 0; k < f->n_words; k++) free(f->word[k]);
    DM_FREE_ALL(f->word, f->punct, f->wtok, f->wtok_off, f->ent_elem, f->ent_slot, f->ent_off, f->ent_used,
                f->ent_len, f->node, f->vtext_off, f->seg);
    bpe_ids_free(&f->vtok);
    dm_buf_free(&f->vtext);
    memset(f, 0, sizeof *f);
}

const char *explain_free_entry_text(const explain_free *f, int e)
{
    DM_ASSERT(e >= 0 && e < f->n_entries);
    return e < f->n_words ? f->word[e] : f->vtext.data + f->vtext_off[e - f->n_words];
}

static int new_node(explain_free *f, int tok)
{
    if (f->n_nodes == f->node_cap) {
        int c = f->node_cap ? 2 * f->node_cap : 256;
        DM_REALLOC(f->node, c);
        f->node_cap = c;
    }
    explain_trie_node *n = &f->node[f->n_nodes++];
    n->tok = tok;
    n->child = n->sibling = n->entry = -1;
    n->need = n->needv = INT_MAX;
    return DM_OK;
}

/* Inserts entry e with tokens tk[0..n); a value wins a node over a connective (it names its
 * element), an earlier value over a later one. */
static int insert(explain_free *f, int e, const int *tk, size_t n)
{
    int at = 0;
    for (size_t q = 0; q < n; q++) {
        int c = f->node[at].child, last = -1;
        while (c >= 0 && f->node[c].tok != tk[q]) {
            last = c;
            c = f->node[c].sibling;
        }
        if (c < 0) {
            DM_CALL(new_node(f, tk[q]));
            c = f->n_nodes - 1;
            if (last < 0) f->node[at].child = c;
            else f->node[last].sibling = c;
        }
        at = c;
    }
    int old = f->node[at].entry;
    if (old < 0 || (old < f->n_words && e >= f->n_words)) f->node[at].entry = e;
    return DM_OK;
}

/* need of every node with the disabled entries (ent_off) ignored; children have larger indices
 * than their parents, so one pass from the end */
static void compute_need(explain_free *f)
{
    for (int k = f->n_nodes - 1; k >= 0; k--) {
        explain_trie_node *n = &f->node[k];
        int on = n->entry >= 0 && !f->ent_off[n->entry];
        int best = on ? 0 : INT_MAX, bv = on && n->entry >= f->n_words ? 0 : INT_MAX;
        for (int c = n->child; c >= 0; c = f->node[c].sibling) {
            if (f->node[c].need != INT_MAX && f->node[c].need + 1 < best) best = f->node[c].need + 1;
            if (f->node[c].needv != INT_MAX && f->node[c].needv + 1 < bv) bv = f->node[c].needv + 1;
        }
        n->need = best;
        n->needv = bv;
    }
}

/* The entries and the trie of one recommendation. */
static int build(explain_free *f, const dm_dataset *d, const explain_evidence *ev, const lm_model *lm)
{
    int ne = f->n_words + ev->n;
    if (f->ent_cap < ne) {
        DM_REALLOC(f->ent_elem, ne);
        DM_REALLOC(f->ent_slot, ne);
        DM_REALLOC(f->ent_off, ne);
        DM_REALLOC(f->ent_used, ne);
        DM_REALLOC(f->ent_len, ne);
        DM_REALLOC(f->vtext_off, ev->n + 1);
        f->ent_cap = ne;
    }
    f->n_entries = f->n_words;
    f->n_nodes = 0;
    dm_buf_reset(&f->vtext);
    f->vtok.n = 0;
    DM_CALL(new_node(f, -1));
    for (int w = 0; w < f->n_words; w++) {
        f->ent_elem[w] = -1;
        f->ent_slot[w] = -1;
        DM_CALL(insert(f, w, f->wtok + f->wtok_off[w], (size_t)(f->wtok_off[w + 1] - f->wtok_off[w])));
    }
    dm_buf val = {0};
    int rc = DM_OK;
    for (int j = 0; j < ev->n && rc == DM_OK; j++) {
        const explain_elem *el = &ev->el[j];
        int slot = -1;
        if (el->kind == EXPLAIN_ITEM) slot = EXPLAIN_SLOT_ITEM;
        else if (el->kind == EXPLAIN_ATTR && el->id >= 0 && (size_t)el->id < d->n_attr)
            slot = d->attr_kind[el->id] == DM_ATTR_BRAND      ? EXPLAIN_SLOT_BRAND
                   : d->attr_kind[el->id] == DM_ATTR_CATEGORY ? EXPLAIN_SLOT_CATEGORY
                   : d->attr_kind[el->id] == DM_ATTR_PRICE    ? EXPLAIN_SLOT_PRICE : -1;
        if (slot < 0) continue;
        dm_buf_reset(&val);
        rc = dm_buf_addc(&val, ' ');
        if (rc == DM_OK) rc = explain_slot_value(d, ev, slot, j, &val);
        if (rc != DM_OK || val.len <= 1) continue;
        int dup = 0; /* each distinct string once: the strongest element that has it */
        for (int e = f->n_words; e < f->n_entries && !dup; e++) dup = !strcmp(explain_free_entry_text(f, e), val.data);
        if (dup) continue;
        int e = f->n_entries;
        f->vtext_off[e - f->n_words] = f->vtext.len;
        rc = dm_buf_add(&f->vtext, val.data, val.len);
        if (rc == DM_OK) rc = dm_buf_addc(&f->vtext, 0);
        size_t n0 = f->vtok.n;
        if (rc == DM_OK) rc = lm_encode(lm, val.data, val.len, &f->vtok);
        if (rc != DM_OK || f->vtok.n == n0) continue;
        f->ent_elem[e] = j;
        f->ent_slot[e] = slot;
        f->ent_len[e] = (int)(f->vtok.n - n0);
        f->n_entries++;
        rc = insert(f, e, f->vtok.v + n0, f->vtok.n - n0);
    }
    dm_buf_free(&val);
    DM_CALL(rc);
    return DM_OK;
}

/* Appends segment entry e to r (text, and as a slot when it is a value). */
static int add_segment(explain_free *f, const dm_dataset *d, const explain_evidence *ev, int e, explain_rationale *r)
{
    const char *s = explain_free_entry_text(f, e);
    f->seg[f->n_seg++] = e;
    DM_CALL(dm_buf_adds(&r->text, r->text.len == 0 && s[0] == ' ' ? s + 1 : s));
    if (e < f->n_words) return DM_OK;
    int k = r->n_slots++, el = f->ent_elem[e];
    r->slot_kind[k] = f->ent_slot[e];
    r->slot_elem[k] = el;
    r->value_off[k] = r->values.len;
    DM_CALL(explain_slot_value(d, ev, f->ent_slot[e], el, &r->values));
    DM_CALL(dm_buf_addc(&r->values, 0));
    int dup = 0;
    for (int q = 0; q < r->n_cite; q++) dup |= r->cite[q] == el;
    if (!dup) r->cite[r->n_cite++] = el;
    return DM_OK;
}

/* Token node k may be taken after `used` tokens with nval values written: the entry it leads to
 * can be completed within the budget, and before the first value a value still fits after it. */
static int allowed(const explain_free *f, int k, int used, int nval, int budget)
{
    const explain_trie_node *n = &f->node[k];
    if (nval > 0) return n->need != INT_MAX && used + 1 + n->need <= budget;
    if (n->needv != INT_MAX && used + 1 + n->needv <= budget) return 1;
    return n->need != INT_MAX && f->vmin != INT_MAX && (long)used + 1 + n->need + f->vmin <= budget;
}

/* ent_off = the values written, the connectives written twice (ent_used counts them), the last
 * segment when it is a connective, and for the first segment (first = 1) every entry but the
 * connectives starting with a capital letter, and '.' before the first value; need */
static void disable(explain_free *f, int last, int first)
{
    for (int e = 0; e < f->n_entries; e++) {
        f->ent_off[e] = f->ent_used[e] >= (e < f->n_words ? 2 : 1);
        if (first) {
            const char *t = explain_free_entry_text(f, e);
            f->ent_off[e] |= e >= f->n_words || !isupper((unsigned char)t[t[0] == ' ']);
        }
    }
    f->vmin = INT_MAX;
    int nval = 0;
    for (int e = f->n_words; e < f->n_entries; e++) {
        nval += f->ent_used[e];
        if (!f->ent_used[e] && f->ent_len[e] < f->vmin) f->vmin = f->ent_len[e];
    }
    if (nval == 0 && f->period >= 0) f->ent_off[f->period] = 1; /* no '.' before the first value */
    if (last >= 0 && last < f->n_words) f->ent_off[last] = 1;
    compute_need(f);
}

int explain_free_make(explain_free *f, const dm_dataset *d, const explain_evidence *ev, const lm_model *lm, lm_cache *c,
                      explain_rationale *r)
{
    r->tpl = -1;
    r->ll = r->score = 0;
    r->n_tokens = r->n_slots = r->n_cite = 0;
    dm_buf_reset(&r->text);
    dm_buf_reset(&r->values);
    f->n_seg = 0;
    DM_CALL(build(f, d, ev, lm));
    if (f->n_entries == f->n_words || c->len == 0) return DM_OK;
    const int len0 = c->len;
    const int budget = c->cap - c->len < f->max_tokens ? c->cap - c->len : f->max_tokens;
    int at = 0, used = 0, last = -1, rc = DM_OK;
    double ll = 0;
    memset(f->ent_used, 0, (size_t)f->n_entries);
    disable(f, last, 1);
    while (rc == DM_OK) {
        const float *lp = lm_cache_logp(c);
        int best = -1, stop = 0, e = at ? f->node[at].entry : -1;
        float bl = -INFINITY;
        const int term = at != 0 && e >= 0 && !f->ent_off[e]; /* an enabled entry ends here */
        /* inside an entry: its continuations that can still end an entry within the budget */
        for (int k = at ? f->node[at].child : -1; k >= 0; k = f->node[k].sibling) {
            if (allowed(f, k, used, r->n_slots, budget) && lp[f->node[k].tok] > bl) {
                bl = lp[f->node[k].tok];
                best = k;
            }
        }
        if (at == 0 || term) {
            /* the entry ending here written (tentatively): a new entry, or the end */
            int nval = r->n_slots + (term && e >= f->n_words), from_root = 0;
            if (term) {
                f->ent_used[e]++;
                disable(f, e, 0);
            }
            if ((term && e == f->period && nval > 0) || nval >= EXPLAIN_MAX_SLOTS) stop = 1;
            for (int k = f->node[0].child; !stop && k >= 0; k = f->node[k].sibling) {
                if (!allowed(f, k, used, nval, budget) || lp[f->node[k].tok] <= bl) continue;
                bl = lp[f->node[k].tok];
                best = k;
                from_root = 1;
            }
            if (best < 0) stop = 1;
            if (term && (stop || from_root)) {
                rc = add_segment(f, d, ev, e, r);
                last = e;
            } else if (term) {
                /* the path goes on inside a longer entry: the one ending here is not written */
                f->ent_used[e]--;
                disable(f, last, f->n_seg == 0);
            }
        }
        if (stop || rc != DM_OK) break;
        DM_ASSERT(best >= 0);
        int tok = f->node[best].tok;
        ll += lp[tok];
        rc = lm_cache_append(c, &tok, NULL, 0, 1);
        used++;
        at = best;
    }
    int rc2 = lm_cache_truncate(c, len0);
    DM_CALL(rc);
    DM_CALL(rc2);
    if (r->n_slots == 0) { /* no value written: no rationale */
        dm_buf_reset(&r->text);
        f->n_seg = 0;
        r->n_cite = 0;
        return DM_OK;
    }
    r->tpl = EXPLAIN_FREE_TPL;
    r->ll = ll;
    r->n_tokens = used;
    r->score = used > 0 ? ll / used : 0.0;
    return DM_OK;
}
