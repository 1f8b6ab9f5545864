/* synth.c: the generator, see synth.h. */
#include "synth.h"

#include "../core/err.h"
#include "../core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NOUNS[] = {
    "Lipstick", "Serum", "Shampoo", "Conditioner", "Mascara", "Moisturizer", "Cleanser", "Perfume",
    "Nail Polish", "Eyeliner", "Foundation", "Sunscreen", "Body Lotion", "Hair Oil", "Face Mask", "Toner",
    "Lip Balm", "Eye Cream", "Blush", "Bronzer", "Hair Spray", "Body Wash", "Razor", "Brush Set"};
static const char *const ADJ[] = {
    "Velvet", "Matte", "Hydrating", "Radiant", "Gentle", "Daily", "Intense", "Organic", "Silky", "Fresh",
    "Classic", "Ultra", "Natural", "Deep", "Soft", "Pure", "Bright", "Smooth", "Repair", "Vivid",
    "Long-Lasting", "Lightweight", "Nourishing", "Clarifying", "Firming", "Tinted", "Waterproof", "Sheer",
    "Rich", "Cooling", "Botanical", "Mineral", "Herbal", "Floral", "Citrus", "Vanilla", "Rose", "Coconut",
    "Charcoal", "Argan"};
static const char *const SYL[] = {"Au", "re", "lia", "Ve", "ra", "No", "va", "Lu", "mi", "Ze", "la", "Ka", "ri",
                                  "Sol", "ene", "Ma", "ris", "Ae", "the", "ra", "Bel", "le", "Cy", "ra", "Io",
                                  "na", "Oro", "Fa", "ye", "Li", "ora"};
static const char *const DEPT[] = {"Makeup", "Skin Care", "Hair Care", "Fragrance & Body"};
static const char *const SIZES[] = {"1 oz", "2 oz", "3.4 fl oz", "8 oz", "12 oz", "0.5 oz", "50 ml", "100 ml", "Pack of 2", "Set of 3"};

#define NN (sizeof NOUNS / sizeof NOUNS[0])
#define NA (sizeof ADJ / sizeof ADJ[0])
#define NS (sizeof SYL / sizeof SYL[0])

/* Walker's alias method over weights w[0..n) */
static int build_alias(const double *w, size_t n, double *prob, int32_t *alias)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    int32_t *small, *large;
    DM_ALLOC(small, n + 1);
    DM_ALLOC(large, n + 1);
    size_t ns = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        prob[i] = w[i] * (double)n / sum;
        alias[i] = (int32_t)i;
        if (prob[i] < 1.0) small[ns++] = (int32_t)i;
        else large[nl++] = (int32_t)i;
    }
    while (ns && nl) {
        int32_t s = small[--ns], l = large[nl - 1];
        alias[s] = l;
        prob[l] -= 1.0 - prob[s];
        if (prob[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) prob[large[--nl]] = 1.0;
    while (ns) prob[small[--ns]] = 1.0;
    free(small);
    free(large);
    return DM_OK;
}

static size_t alias_draw(dm_rng *r, const double *prob, const int32_t *alias, size_t n)
{
    size_t i = dm_rng_below(r, n);
    return dm_rng_uniform(r) < prob[i] ? i : (size_t)alias[i];
}

int dm_synth_world_init(const dm_synth_opts *o, dm_synth_world *w)
{
    memset(w, 0, sizeof *w);
    w->o = *o;
    size_t C = (size_t)o->clusters, L = (size_t)o->latent, I = o->items;
    if (C > I) C = I, w->o.clusters = (int)I;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(o->seed, 1, 0));
    DM_ALLOC(w->mu, C * L);
    DM_ALLOC(w->v, I * L);
    DM_ALLOC(w->cluster, I);
    DM_ALLOC(w->pop, I);
    double sc = 1.0 / sqrt((double)L);
    for (size_t k = 0; k < C * L; k++) w->mu[k] = (float)(1.6 * sc * dm_rng_normal(&r));
    /* cluster sizes vary (a Dirichlet-like draw) */
    double *csz;
    DM_ALLOC(csz, C);
    double tot = 0;
    for (size_t c = 0; c < C; c++) tot += csz[c] = 0.5 + dm_rng_uniform(&r);
    /* items: cluster by cumulative size, factor near the centre */
    for (size_t i = 0; i < I; i++) {
        double u = (double)i / (double)I * tot, acc = 0;
        size_t c = 0;
        while (c + 1 < C && acc + csz[c] <= u) acc += csz[c++];
        w->cluster[i] = (int32_t)c;
        for (size_t k = 0; k < L; k++) w->v[i * L + k] = w->mu[c * L + k] + (float)(0.6 * sc * dm_rng_normal(&r));
    }
    /* shuffle cluster assignment order so ids do not reveal clusters */
    for (size_t i = I; i > 1; i--) {
        size_t j = dm_rng_below(&r, i);
        int32_t t = w->cluster[i - 1];
        w->cluster[i - 1] = w->cluster[j];
        w->cluster[j] = t;
        for (size_t k = 0; k < L; k++) {
            float f = w->v[(i - 1) * L + k];
            w->v[(i - 1) * L + k] = w->v[j * L + k];
            w->v[j * L + k] = f;
        }
    }
    /* Zipf popularity over a random permutation of items */
    size_t *perm;
    DM_ALLOC(perm, I);
    for (size_t i = 0; i < I; i++) perm[i] = i;
    for (size_t i = I; i > 1; i--) {
        size_t j = dm_rng_below(&r, i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < I; i++) w->pop[perm[i]] = pow((double)i + 1.0, -o->zipf);
    free(perm);
    DM_ALLOC(w->a_prob, I);
    DM_ALLOC(w->a_alias, I);
    DM_CALL(build_alias(w->pop, I, w->a_prob, w->a_alias));
    DM_ALLOC(w->c_off, C + 1);
    DM_ALLOC(w->c_items, I);
    DM_ALLOC(w->c_prob, I);
    DM_ALLOC(w->c_alias, I);
    for (size_t i = 0; i < I; i++) w->c_off[w->cluster[i] + 1]++;
    for (size_t c = 0; c < C; c++) w->c_off[c + 1] += w->c_off[c];
    int64_t *fill;
    DM_ALLOC(fill, C);
    for (size_t i = 0; i < I; i++) {
        size_t c = (size_t)w->cluster[i];
        w->c_items[w->c_off[c] + fill[c]++] = (int32_t)i;
    }
    double *tmp;
    DM_ALLOC(tmp, I);
    for (size_t c = 0; c < C; c++) {
        size_t a = (size_t)w->c_off[c], n = (size_t)(w->c_off[c + 1] - w->c_off[c]);
        if (!n) continue;
        for (size_t j = 0; j < n; j++) tmp[j] = w->pop[w->c_items[a + j]];
        DM_CALL(build_alias(tmp, n, w->c_prob + a, w->c_alias + a));
    }
    free(tmp);
    free(fill);
    /* users pick their primary cluster in proportion to cluster popularity */
    DM_ALLOC(w->cluster_pop, C);
    double acc = 0;
    for (size_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t j = w->c_off[c]; j < w->c_off[c + 1]; j++) s += w->pop[w->c_items[j]];
        acc += s;
        w->cluster_pop[c] = acc;
    }
    for (size_t c = 0; c < C; c++) w->cluster_pop[c] /= acc;
    free(csz);
    w->drift_ms = (o->start + (int64_t)(o->drift_at * (double)o->days * 86400.0)) * 1000;
    return DM_OK;
}

void dm_synth_world_free(dm_synth_world *w)
{
    DM_FREE_ALL(w->mu, w->v, w->cluster, w->pop, w->a_prob, w->a_alias, w->c_off, w->c_items, w->c_prob,
                w->c_alias, w->cluster_pop);
    memset(w, 0, sizeof *w);
}

static int pick_cluster(const dm_synth_world *w, dm_rng *r)
{
    double u = dm_rng_uniform(r);
    int c = 0;
    while (c + 1 < w->o.clusters && w->cluster_pop[c] < u) c++;
    return c;
}

static size_t draw_in_cluster(const dm_synth_world *w, dm_rng *r, int c)
{
    size_t a = (size_t)w->c_off[c], n = (size_t)(w->c_off[c + 1] - w->c_off[c]);
    if (!n) return alias_draw(r, w->a_prob, w->a_alias, w->o.items);
    return (size_t)w->c_items[a + alias_draw(r, w->c_prob + a, w->c_alias + a, n)];
}

static float dot(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

#define NCAND 52

/* sequence of one user: len items and times into it/tm */
static void gen_user(const dm_synth_world *w, size_t u, size_t len, int32_t *it, int64_t *tm, uint8_t *drift,
                     int32_t *before, int32_t *after, float *taste0, float *taste1, uint8_t *taken)
{
    const dm_synth_opts *o = &w->o;
    size_t L = (size_t)o->latent;
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(o->seed, 2, u));
    (void)dm_rng_u64(&r); /* the first draw decided the length */
    int a = pick_cluster(w, &r), b = a;
    int dr = dm_rng_uniform(&r) < o->drift_share && o->clusters > 1;
    if (dr) {
        b = (int)dm_rng_below(&r, (uint64_t)o->clusters - 1);
        if (b >= a) b++;
    }
    double sc = 1.0 / sqrt((double)L);
    for (size_t k = 0; k < L; k++) {
        float noise = (float)(0.5 * sc * dm_rng_normal(&r));
        taste0[k] = w->mu[(size_t)a * L + k] + noise;
        taste1[k] = w->mu[(size_t)b * L + k] + noise;
    }
    *drift = (uint8_t)dr;
    *before = a;
    *after = b;
    /* times: uniform over the span, sorted (insertion sort; sequences are short) */
    int64_t span = o->days * 86400;
    for (size_t j = 0; j < len; j++) {
        int64_t t = o->start + (int64_t)dm_rng_below(&r, (uint64_t)span);
        size_t q = j;
        while (q > 0 && tm[q - 1] > t * 1000) {
            tm[q] = tm[q - 1];
            q--;
        }
        tm[q] = t * 1000;
    }
    int32_t prev = -1;
    int32_t cand[NCAND];
    for (size_t j = 0; j < len; j++) {
        int after_drift = dr && tm[j] >= w->drift_ms;
        const float *taste = after_drift ? taste1 : taste0;
        int cur = after_drift ? b : a;
        int nc = 0;
        for (int k = 0; k < 24; k++) cand[nc++] = (int32_t)draw_in_cluster(w, &r, cur);
        for (int k = 0; k < 12; k++)
            cand[nc++] = (int32_t)(prev >= 0 ? draw_in_cluster(w, &r, w->cluster[prev]) : draw_in_cluster(w, &r, cur));
        for (int k = 0; k < 12; k++) cand[nc++] = (int32_t)alias_draw(&r, w->a_prob, w->a_alias, o->items);
        for (int k = 0; k < 4; k++) cand[nc++] = (int32_t)dm_rng_below(&r, o->items);
        /* softmax draw over the untaken candidates: weights exp((s - max) / T), one uniform */
        double sc[NCAND], mx = -INFINITY;
        for (int k = 0; k < nc; k++) {
            int32_t c = cand[k];
            if (taken[c]) {
                sc[k] = -INFINITY;
                continue;
            }
            const float *vc = w->v + (size_t)c * L;
            double s = dot(taste, vc, L);
            if (prev >= 0) s += o->seq_weight * dot(w->v + (size_t)prev * L, vc, L);
            sc[k] = s / o->temperature;
            if (sc[k] > mx) mx = sc[k];
        }
        int32_t pick = -1;
        if (mx > -INFINITY) {
            double tot = 0;
            for (int k = 0; k < nc; k++) tot += sc[k] = sc[k] > -INFINITY ? exp(sc[k] - mx) : 0.0;
            double x = dm_rng_uniform(&r) * tot;
            for (int k = 0; k < nc && pick < 0; k++) {
                x -= sc[k];
                if (x <= 0 && sc[k] > 0) pick = cand[k];
            }
            for (int k = nc - 1; k >= 0 && pick < 0; k--)
                if (sc[k] > 0) pick = cand[k];
        }
        if (pick < 0) { /* every candidate taken: any untaken item */
            do pick = (int32_t)dm_rng_below(&r, o->items);
            while (taken[pick]);
        }
        taken[pick] = 1;
        it[j] = pick;
        prev = pick;
    }
    for (size_t j = 0; j < len; j++) taken[it[j]] = 0;
}

static size_t user_len(const dm_synth_world *w, size_t u)
{
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(w->o.seed, 2, u));
    double p = 1.0 / (w->o.mean_len - 2.0); /* geometric with mean mean_len - 3 */
    double x = dm_rng_uniform(&r);
    size_t len = 3 + (size_t)floor(log1p(-x) / log1p(-p));
    size_t cap = w->o.items / 2;
    if (len > cap && cap >= 3) len = cap;
    return len;
}

int dm_synth_users(const dm_synth_world *w, size_t lo, size_t hi, dm_raw *out, uint8_t *drift, int32_t *before,
                   int32_t *after)
{
    size_t n = hi - lo, L = (size_t)w->o.latent;
    int64_t *off;
    DM_ALLOC(off, n + 1);
    for (size_t u = 0; u < n; u++) off[u + 1] = off[u] + (int64_t)user_len(w, lo + u);
    size_t total = (size_t)off[n];
    int32_t *items;
    int64_t *times;
    DM_ALLOC(items, total + 1);
    DM_ALLOC(times, total + 1);
    int failed = 0;
#pragma omp parallel
    {
        float *t0 = calloc(L, sizeof(float)), *t1 = calloc(L, sizeof(float));
        uint8_t *taken = calloc(w->o.items, 1);
        if (!t0 || !t1 || !taken) {
#pragma omp atomic write
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, 64)
            for (size_t u = 0; u < n; u++)
                gen_user(w, lo + u, (size_t)(off[u + 1] - off[u]), items + off[u], times + off[u], drift + u, before + u,
                         after + u, t0, t1, taken);
        }
        free(t0);
        free(t1);
        free(taken);
    }
    if (failed) return DM_ERR(DM_ENOMEM, "out of memory generating users");
    out->has_time = 1;
    char us[24], is[24];
    for (size_t u = 0; u < n; u++) {
        int ul = snprintf(us, sizeof us, "%zu", lo + u);
        for (int64_t j = off[u]; j < off[u + 1]; j++) {
            int il = snprintf(is, sizeof is, "%d", items[j]);
            DM_CALL(dm_raw_push(out, us, (size_t)ul, is, (size_t)il, times[j], DM_ORDER(0, lo + u + 1, j - off[u]), -1));
        }
    }
    free(off);
    free(items);
    free(times);
    return DM_OK;
}

int dm_synth_meta(const dm_synth_world *w, dm_meta *out)
{
    dm_rng r;
    char title[256], brand[64], cats[256];
    for (size_t i = 0; i < w->o.items; i++) {
        int c = w->cluster[i];
        dm_rng_seed(&r, dm_rng_key(w->o.seed, 7, i));
        /* three brands per cluster, built from syllables */
        unsigned bi = (unsigned)(c * 3 + (int)dm_rng_below(&r, 3));
        dm_rng br;
        dm_rng_seed(&br, dm_rng_key(w->o.seed, 8, bi));
        int nsyl = 2 + (int)dm_rng_below(&br, 2);
        brand[0] = '\0';
        for (int k = 0; k < nsyl; k++) strncat(brand, SYL[dm_rng_below(&br, NS)], sizeof brand - strlen(brand) - 1);
        brand[0] = (char)(brand[0] >= 'a' && brand[0] <= 'z' ? brand[0] - 32 : brand[0]);
        const char *noun = NOUNS[(size_t)c % NN];
        /* adjectives lean towards a per-cluster subset so text carries the cluster */
        size_t a1 = ((size_t)c * 7 + dm_rng_below(&r, 5)) % NA, a2 = dm_rng_below(&r, NA);
        const char *sz = SIZES[dm_rng_below(&r, sizeof SIZES / sizeof SIZES[0])];
        if ((size_t)c < NN)
            snprintf(title, sizeof title, "%s %s %s %s, %s", brand, ADJ[a1], ADJ[a2], noun, sz);
        else
            snprintf(title, sizeof title, "%s %s %s %s No. %d, %s", brand, ADJ[a1], ADJ[a2], noun, c / (int)NN + 1, sz);
        snprintf(cats, sizeof cats, "Synthetic\t%s\t%s%s", DEPT[(size_t)c % 4], noun, (size_t)c < NN ? "" : " Plus");
        double price = exp(2.0 + 0.15 * (double)(c % 10) + 0.4 * dm_rng_normal(&r));
        price = floor(price) + 0.99;
        int no_title = dm_rng_uniform(&r) < w->o.title_missing;
        char id[24];
        int il = snprintf(id, sizeof id, "%zu", i);
        DM_CALL(dm_meta_push(out, id, (size_t)il, no_title ? NULL : title, brand, cats, NULL, price, DM_ORDER(0, i + 1, 0)));
    }
    return DM_OK;
}

int dm_synth_features(const dm_synth_world *w, int m, float **feat, uint8_t **present)
{
    size_t D = w->o.dim[m], L = (size_t)w->o.latent, I = w->o.items;
    float *W, *f;
    uint8_t *p;
    DM_ALLOC(W, D * L + 1);
    DM_ALLOC(f, I * D + 1);
    DM_ALLOC(p, I + 1);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(w->o.seed, 10 + (uint64_t)m, 0));
    for (size_t k = 0; k < D * L; k++) W[k] = (float)(dm_rng_normal(&r) / sqrt((double)L));
    double power = 0;
    for (size_t i = 0; i < I; i++)
        for (size_t d = 0; d < D; d++) {
            float s = dot(W + d * L, w->v + i * L, L);
            f[i * D + d] = s;
            power += (double)s * s;
        }
    power /= (double)((I * D) > 0 ? I * D : 1);
    double sd = sqrt(power / pow(10.0, w->o.snr_db[m] / 10.0));
    for (size_t i = 0; i < I; i++) {
        dm_rng_seed(&r, dm_rng_key(w->o.seed, 20 + (uint64_t)m, i));
        p[i] = dm_rng_uniform(&r) >= w->o.missing[m];
        for (size_t d = 0; d < D; d++) f[i * D + d] = p[i] ? f[i * D + d] + (float)(sd * dm_rng_normal(&r)) : 0.0f;
    }
    free(W);
    *feat = f;
    *present = p;
    return DM_OK;
}
