/* explain_metrics.c: FMR / FCR / DIV per user, evidence precision by callback, deletion
 * faithfulness (see explain_metrics.h). */
#include "explain_metrics.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t explain_vocab_size(const dm_dataset *d, unsigned kinds)
{
    size_t v = 0;
    for (size_t a = 0; a < d->n_attr; a++) v += (kinds >> d->attr_kind[a]) & 1u;
    return v;
}

static int word_char(char c)
{
    return isalnum((unsigned char)c) || (unsigned char)c >= 0x80;
}

/* name[0..l) occurs in text at a word boundary, ASCII case-insensitive */
static int occurs(const char *text, size_t tl, const char *name, size_t l)
{
    if (l == 0 || l > tl) return 0;
    for (size_t p = 0; p + l <= tl; p++) {
        size_t k = 0;
        while (k < l && tolower((unsigned char)text[p + k]) == tolower((unsigned char)name[k])) k++;
        if (k < l) continue;
        /* boundaries matter only where the name itself starts / ends with a word character */
        if (p > 0 && word_char(name[0]) && word_char(text[p - 1])) continue;
        if (p + l < tl && word_char(name[l - 1]) && word_char(text[p + l])) continue;
        return 1;
    }
    return 0;
}

int explain_text_features(const dm_dataset *d, unsigned kinds, const char *text, int32_t *out, int cap, int *n)
{
    size_t tl = strlen(text);
    int m = 0;
    for (size_t a = 0; a < d->n_attr; a++) {
        if (!((kinds >> d->attr_kind[a]) & 1u)) continue;
        size_t l;
        const char *s = dm_strtab_get(&d->attr_name, a, &l);
        if (occurs(text, tl, s, l)) {
            if (m < cap) out[m] = (int32_t)a;
            m++;
        }
    }
    *n = m;
    return DM_OK;
}

static int has_attr(const dm_dataset *d, int32_t item, int32_t a)
{
    for (int64_t q = d->item_attr_off[item]; q < d->item_attr_off[item + 1]; q++)
        if (d->item_attr[q] == a) return 1;
    return 0;
}

/* |A cap B| of two ascending lists */
static int overlap(const int32_t *x, int64_t nx, const int32_t *y, int64_t ny)
{
    int64_t p = 0, q = 0;
    int c = 0;
    while (p < nx && q < ny) {
        if (x[p] < y[q]) p++;
        else if (x[p] > y[q]) q++;
        else {
            c++;
            p++;
            q++;
        }
    }
    return c;
}

int explain_text_user_metrics(const dm_dataset *d, int K, const int64_t *off, const int32_t *feat, const int32_t *item,
                              size_t V, uint8_t *seen, explain_text_user *out)
{
    memset(out, 0, sizeof *out);
    out->K = K;
    int match = 0;
    for (int k = 0; k < K; k++) {
        if (item[k] < 0 || (size_t)item[k] >= d->n_items)
            return DM_ERR(DM_EINPUT, "rationale %d explains item %d, out of range (%zu items)", k, item[k], d->n_items);
        int hit = 0;
        for (int64_t q = off[k]; q < off[k + 1]; q++) {
            if (feat[q] < 0 || (size_t)feat[q] >= d->n_attr)
                return DM_ERR(DM_EINPUT, "rationale %d: feature %d out of range (%zu attributes)", k, feat[q], d->n_attr);
            if (q > off[k] && feat[q] <= feat[q - 1])
                return DM_ERR(DM_EINPUT, "rationale %d: features not sorted ascending and distinct", k);
            hit |= has_attr(d, item[k], feat[q]);
        }
        match += hit;
    }
    out->fmr = K > 0 ? (double)match / K : NAN;
    /* DIV_u: mean overlap over pairs */
    if (K < 2) {
        out->div = NAN;
    } else {
        double tot = 0;
        for (int k = 0; k < K; k++)
            for (int l = k + 1; l < K; l++)
                tot += overlap(feat + off[k], off[k + 1] - off[k], feat + off[l], off[l + 1] - off[l]);
        out->div = tot / (0.5 * K * (K - 1));
    }
    /* union: a feature counts once, at its first rationale */
    int u = 0;
    for (int k = 0; k < K; k++)
        for (int64_t q = off[k]; q < off[k + 1]; q++) {
            int first = 1;
            for (int l = 0; l < k && first; l++) first = overlap(feat + q, 1, feat + off[l], off[l + 1] - off[l]) == 0;
            u += first;
            if (seen) seen[feat[q]] = 1;
        }
    out->n_features = u;
    out->fcr = V > 0 ? (double)u / (double)V : NAN;
    return DM_OK;
}

double explain_fcr(const uint8_t *seen, size_t n_attr, size_t V)
{
    size_t c = 0;
    for (size_t a = 0; a < n_attr; a++) c += seen[a] != 0;
    return V > 0 ? (double)c / (double)V : NAN;
}

int explain_evidence_precision(const explain_evidence *ev, const int *idx, int n_idx, explain_score_fn score_without,
                               void *ctx, double tol, uint8_t *lowered, double *precision, int *n_tested)
{
    const double full = score_without(ctx, ev, -1);
    const int n = idx ? n_idx : ev->n;
    int tested = 0, low = 0;
    for (int k = 0; k < n; k++) {
        int j = idx ? idx[k] : k;
        if (j < 0 || j >= ev->n)
            return DM_ERR(DM_EINPUT, "evidence precision: element %d of (user %d, item %d) out of range (%d elements)", j,
                          ev->user, ev->item, ev->n);
        if (lowered) lowered[k] = 0;
        if (!idx && ev->el[j].kind == EXPLAIN_MODAL) continue;
        double s = score_without(ctx, ev, j);
        int l = s < full - tol;
        if (lowered) lowered[k] = (uint8_t)l;
        low += l;
        tested++;
    }
    *precision = tested ? (double)low / tested : NAN;
    if (n_tested) *n_tested = tested;
    return DM_OK;
}

double explain_rank(const double *s, int n, int t, double v)
{
    if (isnan(v)) return NAN;
    double r = 1;
    for (int c = 0; c < n; c++) {
        if (c == t) continue;
        if (s[c] > v) r += 1;
        else if (s[c] == v) r += 0.5;
    }
    return r;
}

void explain_deletion_eval(const double *cand, int n, int t, double s_masked, const double *s_random, int n_random,
                           explain_deletion *out)
{
    DM_ASSERT(t >= 0 && t < n);
    out->s_full = cand[t];
    out->s_masked = s_masked;
    out->drop = cand[t] - s_masked;
    out->rank_full = explain_rank(cand, n, t, cand[t]);
    out->rank_masked = explain_rank(cand, n, t, s_masked);
    out->rank_drop = out->rank_masked - out->rank_full;
    if (n_random > 0) {
        double s = 0, r = 0;
        for (int k = 0; k < n_random; k++) {
            s += s_random[k];
            r += explain_rank(cand, n, t, s_random[k]);
        }
        out->s_random = s / n_random;
        out->rank_random = r / n_random;
        out->drop_random = cand[t] - out->s_random;
        out->rank_drop_random = out->rank_random - out->rank_full;
    } else {
        out->s_random = out->rank_random = out->drop_random = out->rank_drop_random = NAN;
    }
}

double explain_faith_loss(double s_full, double s_masked, double delta, double *d_full, double *d_masked)
{
    double m = delta - (s_full - s_masked);
    int on = m > 0;
    if (d_full) *d_full = on ? -1.0 : 0.0;
    if (d_masked) *d_masked = on ? 1.0 : 0.0;
    return on ? m : 0.0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void explain_random_positions(uint64_t seed, uint64_t a, uint64_t b, int n, int count, int *out)
{
    DM_ASSERT(count >= 0 && count <= n);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, a, b));
    /* Floyd's sampling: for j = n - count .. n - 1 take t in [0, j]; t if new, else j */
    int m = 0;
    for (int j = n - count; j < n; j++) {
        int t = (int)dm_rng_below(&r, (uint64_t)j + 1), dup = 0;
        for (int k = 0; k < m && !dup; k++) dup = out[k] == t;
        out[m++] = dup ? j : t;
    }
    qsort(out, (size_t)m, sizeof *out, cmp_int);
}
