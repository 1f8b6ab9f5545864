/* stress.c: the stress variants of `dynmm eval` and their perturbed aligner inputs, see stress.h.
 * Nothing here sees ranks: every rank builds the same inputs for the same variant. */
#include "stress.h"

#include "../src/core/err.h"
#include "../src/core/rng.h"
#include "../src/core/sort.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* key tags, so the three perturbations draw from unrelated streams */
#define TAG_DROP 0xD809ULL
#define TAG_NOISE 0x4015EULL
#define TAG_SHUFFLE 0x5F1FULL

void stress_set_name(unsigned mask, char *out, size_t cap)
{
    size_t l = 0;
    out[0] = '\0';
    for (int k = 0; k < ALIGN_K; k++)
        if (mask & (1u << k)) {
            int w = snprintf(out + l, cap > l ? cap - l : 0, "%s%s", l ? "+" : "", align_modality_name(k));
            if (w > 0) l += (size_t)w;
        }
}

void stress_inputs_power(stress_inputs *in)
{
    for (int k = 0; k < ALIGN_K; k++) {
        in->power[k] = 0.0;
        if (!in->dim[k] || !in->x[k]) continue;
        const size_t D = (size_t)in->dim[k];
        double s = 0.0;
        size_t cnt = 0;
        for (size_t i = 0; i < in->n; i++) {
            if (!in->present[i * ALIGN_K + (size_t)k]) continue;
            const float *r = in->x[k] + i * D;
            for (size_t j = 0; j < D; j++) s += (double)r[j] * (double)r[j];
            cnt += D;
        }
        in->power[k] = cnt ? s / (double)cnt : 0.0;
    }
}

static int mod_index(const char *s)
{
    for (int k = 0; k < ALIGN_K; k++)
        if (!strcmp(s, align_modality_name(k))) return k;
    return -1;
}

static int push(stress_variant **v, size_t *nv, size_t *cap, stress_kind kind, unsigned mask, double level, const char *fmt,
                ...) __attribute__((format(printf, 7, 8)));

static int push(stress_variant **v, size_t *nv, size_t *cap, stress_kind kind, unsigned mask, double level, const char *fmt, ...)
{
    if (*nv == *cap) {
        size_t nc = *cap ? 2 * *cap : 32;
        stress_variant *p = dm_realloc_at(*v, nc, sizeof *p, __FILE__, __LINE__);
        if (!p) return DM_ENOMEM;
        *v = p;
        *cap = nc;
    }
    stress_variant *s = &(*v)[(*nv)++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->mask = mask;
    s->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    return DM_OK;
}

int stress_plan(const dm_cfg *cfg, const stress_inputs *in, stress_variant **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    char w[256];
    int mods[ALIGN_K], nm = 0;
    size_t nl = dm_cfg_len(cfg, "stress.modalities");
    for (size_t i = 0; i < nl; i++) {
        const char *s = dm_cfg_str_at(cfg, "stress.modalities", i);
        int k = mod_index(s);
        if (k < 0) {
            DM_ERR(DM_ECONFIG, "%s: unknown modality '%s' (cf, text, visual, audio)", dm_cfg_where(cfg, "stress.modalities", w, sizeof w), s);
            return DM_ECONFIG;
        }
        for (int j = 0; j < nm; j++)
            if (mods[j] == k) {
                DM_ERR(DM_ECONFIG, "%s: modality '%s' listed twice", dm_cfg_where(cfg, "stress.modalities", w, sizeof w), s);
                return DM_ECONFIG;
            }
        mods[nm++] = k;
    }
    if (!nl) /* every modality the aligner has and some item holds */
        for (int k = 0; k < ALIGN_K; k++) {
            int any = 0;
            for (size_t i = 0; in->dim[k] && i < in->n && !any; i++) any = in->present[i * ALIGN_K + (size_t)k];
            if (any) mods[nm++] = k;
        }
    /* modalities in the canonical order, so names and masks agree whatever the listed order */
    qsort(mods, (size_t)nm, sizeof *mods, dm_cmp_i32);
    size_t nr = dm_cfg_len(cfg, "stress.rates"), ns = dm_cfg_len(cfg, "stress.snr_db");
    for (size_t i = 0; i < nr; i++)
        for (size_t j = 0; j < i; j++)
            if (dm_cfg_int_at(cfg, "stress.rates", i) == dm_cfg_int_at(cfg, "stress.rates", j)) {
                DM_ERR(DM_ECONFIG, "%s: rate %lld listed twice", dm_cfg_where(cfg, "stress.rates", w, sizeof w),
                       dm_cfg_int_at(cfg, "stress.rates", i));
                return DM_ECONFIG;
            }
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < i; j++) {
            char a[32], b[32];
            snprintf(a, sizeof a, "%g", dm_cfg_float_at(cfg, "stress.snr_db", i));
            snprintf(b, sizeof b, "%g", dm_cfg_float_at(cfg, "stress.snr_db", j));
            if (!strcmp(a, b)) {
                DM_ERR(DM_ECONFIG, "%s: SNR %s dB listed twice", dm_cfg_where(cfg, "stress.snr_db", w, sizeof w), a);
                return DM_ECONFIG;
            }
        }
    stress_variant *v = NULL;
    size_t nv = 0, cap = 0;
    int rc = DM_OK;
    /* modality sets: singles, then pairs */
    unsigned sets[1u << ALIGN_K]; /* at most every non-empty subset */
    int nsets = 0;
    for (int a = 0; a < nm; a++) sets[nsets++] = 1u << mods[a];
    if (dm_cfg_bool(cfg, "stress.pairs"))
        for (int a = 0; a < nm; a++)
            for (int b = a + 1; b < nm; b++) sets[nsets++] = (1u << mods[a]) | (1u << mods[b]);
    /* further sets of stress.sets ("text+visual+audio"), not repeating one already there */
    for (size_t i = 0; i < dm_cfg_len(cfg, "stress.sets"); i++) {
        const char *e = dm_cfg_str_at(cfg, "stress.sets", i);
        unsigned mask = 0;
        for (const char *p = e; *p;) {
            size_t l = strcspn(p, "+");
            char one[32];
            snprintf(one, sizeof one, "%.*s", (int)(l < sizeof one - 1 ? l : sizeof one - 1), p);
            int k = mod_index(one);
            if (k < 0 || (mask & (1u << k))) {
                DM_ERR(DM_ECONFIG, "%s: set '%s': %s modality '%s' (cf, text, visual, audio joined by '+')",
                       dm_cfg_where(cfg, "stress.sets", w, sizeof w), e, k < 0 ? "unknown" : "repeated", one);
                return DM_ECONFIG;
            }
            mask |= 1u << k;
            p += l;
            if (*p == '+') p++;
        }
        if (!mask) {
            DM_ERR(DM_ECONFIG, "%s: empty modality set", dm_cfg_where(cfg, "stress.sets", w, sizeof w));
            return DM_ECONFIG;
        }
        int dup = 0;
        for (int q = 0; q < nsets; q++) dup |= sets[q] == mask;
        if (!dup) sets[nsets++] = mask;
    }
    char sn[64];
    for (int s = 0; s < nsets && !rc; s++) {
        stress_set_name(sets[s], sn, sizeof sn);
        int full = 0;
        for (size_t r = 0; r < nr && !rc; r++) {
            long long rate = dm_cfg_int_at(cfg, "stress.rates", r);
            rc = push(&v, &nv, &cap, STRESS_DROP, sets[s], (double)rate, "drop_%s_%03lld", sn, rate);
            if (!rc && rate == 100) {
                snprintf(v[nv - 1].alias, sizeof v[nv - 1].alias, "without_%s", sn);
                full = 1;
            }
        }
        if (!rc && !full && nr) rc = push(&v, &nv, &cap, STRESS_DROP, sets[s], 100.0, "without_%s", sn);
    }
    for (int a = 0; a < nm && !rc; a++)
        for (size_t j = 0; j < ns && !rc; j++) {
            double snr = dm_cfg_float_at(cfg, "stress.snr_db", j);
            rc = push(&v, &nv, &cap, STRESS_NOISE, 1u << mods[a], snr, "noise_%s_%g", align_modality_name(mods[a]), snr);
        }
    if (dm_cfg_bool(cfg, "stress.shuffle"))
        for (int a = 0; a < nm && !rc; a++) rc = push(&v, &nv, &cap, STRESS_SHUFFLE, 1u << mods[a], 0.0, "shuffle_%s", align_modality_name(mods[a]));
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *nout = nv;
    return DM_OK;
}

int stress_work_init(stress_work *w, const stress_inputs *in)
{
    memset(w, 0, sizeof *w);
    size_t dmax = 1;
    for (int k = 0; k < ALIGN_K; k++)
        if ((size_t)in->dim[k] > dmax) dmax = (size_t)in->dim[k];
    w->n = in->n;
    DM_ALLOC(w->rows, in->n + 1);
    DM_ALLOC(w->pres, in->n * ALIGN_K + 1);
    DM_ALLOC(w->xp, in->n * dmax + 1);
    DM_ALLOC(w->perm, in->n + 1);
    return DM_OK;
}

void stress_work_free(stress_work *w)
{
    DM_FREE_ALL(w->rows, w->pres, w->xp, w->perm);
    memset(w, 0, sizeof *w);
}

int stress_apply(const stress_inputs *in, const stress_variant *v, stress_work *w)
{
    const size_t n = in->n;
    w->nrows = 0;
    w->sigma = 0.0;
    for (int k = 0; k < ALIGN_K; k++) w->x[k] = in->dim[k] ? in->x[k] : NULL;
    if (v->kind == STRESS_DROP) {
        double p = v->level / 100.0;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *pr = in->present + i * ALIGN_K;
            int has = 0;
            for (int k = 0; k < ALIGN_K; k++) has |= (v->mask & (1u << k)) && pr[k];
            if (!has) continue;
            dm_rng r;
            dm_rng_seed(&r, dm_rng_key(in->seed ^ TAG_DROP, v->mask, i));
            if (!(dm_rng_uniform(&r) < p)) continue;
            uint8_t *q = w->pres + w->nrows * ALIGN_K;
            for (int k = 0; k < ALIGN_K; k++) q[k] = (v->mask & (1u << k)) ? 0 : pr[k];
            w->rows[w->nrows++] = (int64_t)i;
        }
        return DM_OK;
    }
    int k = 0;
    while (k < ALIGN_K && !(v->mask & (1u << k))) k++;
    if (k == ALIGN_K || !in->dim[k]) return DM_OK; /* the aligner lacks the modality: nothing to perturb */
    const size_t D = (size_t)in->dim[k];
    for (size_t i = 0; i < n; i++)
        if (in->present[i * ALIGN_K + (size_t)k]) {
            memcpy(w->pres + w->nrows * ALIGN_K, in->present + i * ALIGN_K, ALIGN_K);
            w->rows[w->nrows++] = (int64_t)i;
        }
    w->x[k] = w->xp;
    if (v->kind == STRESS_NOISE) {
        double sigma = sqrt(in->power[k] / pow(10.0, v->level / 10.0));
        w->sigma = sigma;
        for (size_t j = 0; j < w->nrows; j++) {
            size_t i = (size_t)w->rows[j];
            dm_rng r;
            dm_rng_seed(&r, dm_rng_key(in->seed ^ TAG_NOISE, (uint64_t)k, i));
            const float *src = in->x[k] + i * D;
            float *dst = w->xp + i * D;
            for (size_t e = 0; e < D; e++) dst[e] = (float)((double)src[e] + sigma * dm_rng_normal(&r));
        }
        return DM_OK;
    }
    /* shuffle: Fisher-Yates over the present items */
    for (size_t j = 0; j < w->nrows; j++) w->perm[j] = (int64_t)j;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(in->seed ^ TAG_SHUFFLE, (uint64_t)k, 0));
    for (size_t j = w->nrows; j > 1; j--) {
        size_t q = (size_t)dm_rng_below(&r, j);
        int64_t t = w->perm[j - 1];
        w->perm[j - 1] = w->perm[q];
        w->perm[q] = t;
    }
    for (size_t j = 0; j < w->nrows; j++)
        memcpy(w->xp + (size_t)w->rows[j] * D, in->x[k] + (size_t)w->rows[w->perm[j]] * D, D * sizeof(float));
    return DM_OK;
}
