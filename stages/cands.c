/* cands.c: stored candidate sets, see cands.h. */
#include "cands.h"

#include "../src/core/err.h"
#include "../src/core/sort.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/eval/metrics.h"
#include "../src/eval/metrics_sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t cands_seed(const dm_cfg *cfg)
{
    long long s = dm_cfg_int(cfg, "eval.seed");
    return s ? (uint64_t)s : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xCA4D, 0);
}

int cands_parse(const char *p, char *kind, size_t *n)
{
    *kind = 0;
    *n = 0;
    if (!strcmp(p, "full")) return DM_OK;
    if ((p[0] == 'u' && !strncmp(p, "uni", 3)) || (p[0] == 'p' && !strncmp(p, "pop", 3))) {
        char *end;
        long v = strtol(p + 3, &end, 10);
        if (*end == '\0' && v > 0 && v < 1000000) {
            *kind = p[0];
            *n = (size_t)v;
            return DM_OK;
        }
    }
    DM_ERR(DM_ECONFIG, "eval.protocols: unknown protocol '%s'", p);
    DM_HINT("protocols are 'full', 'uniN' (N uniform negatives) or 'popN' (N popularity-sampled negatives), e.g. uni99");
    return DM_ECONFIG;
}

int cands_check_key(const dm_cfg *cfg, const char *key)
{
    char kind;
    size_t n;
    const char *p = dm_cfg_str(cfg, key);
    if (!cands_parse(p, &kind, &n)) return DM_OK;
    dm_error_clear();
    DM_ERR(DM_ECONFIG, "%s: unknown protocol '%s'", key, p);
    DM_HINT("a protocol is 'full', 'uniN' (N uniform negatives) or 'popN' (N popularity-sampled negatives), e.g. uni99");
    return DM_ECONFIG;
}

int cands_split(const dm_cfg *cfg, const dm_dataset *d, const int8_t **roles)
{
    const char *p = dm_cfg_str(cfg, "split.protocol");
    if (!strcmp(p, "loo")) *roles = d->split_loo;
    else if (!strcmp(p, "temporal")) *roles = d->split_temporal;
    else if (!strcmp(p, "stream")) *roles = d->split_stream;
    else if (d->split_given) *roles = d->split_given;
    else {
        char w[256];
        DM_ERR(DM_ECONFIG, "%s = \"given\", but the dataset was not pre-split", dm_cfg_where(cfg, "split.protocol", w, sizeof w));
        DM_HINT("give data.valid and data.test at ingest, or use split.protocol = \"loo\" or \"temporal\"");
        return DM_ECONFIG;
    }
    return DM_OK;
}

static int is_sampled(const char *p)
{
    char kind;
    size_t n;
    if (!strncmp(p, "top", 3)) return 0;
    if (cands_parse(p, &kind, &n)) {
        dm_error_clear();
        return 0;
    }
    return kind != 0;
}

int cands_draw(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d, const char *const *protocols, size_t np, size_t lo,
               size_t hi)
{
    uint64_t seed = cands_seed(cfg);
    for (int c = 0; c < d->n_cand; c++) free(d->cand[c].rows);
    memset(d->cand, 0, sizeof d->cand);
    d->n_cand = 0;
    d->cand_seed = seed;
    d->cand_row0 = lo;
    d->cand_rows = hi - lo;
    metrics_alias alias;
    memset(&alias, 0, sizeof alias);
    int have_alias = 0, rc = DM_OK;
    size_t short_users = 0, maxlen = 1;
    for (size_t u = lo; u < hi; u++)
        if ((size_t)(d->user_off[u + 1] - d->user_off[u]) > maxlen) maxlen = (size_t)(d->user_off[u + 1] - d->user_off[u]);
    for (size_t k = 0; k < np && !rc; k++) {
        const char *name = protocols[k];
        char kind;
        size_t N;
        if (!is_sampled(name)) continue;
        DM_CALL(cands_parse(name, &kind, &N));
        int dup = 0;
        for (int c = 0; c < d->n_cand; c++) dup |= !strcmp(d->cand[c].name, name);
        if (dup) continue;
        if (d->n_cand >= 8) return DM_ERR(DM_ECONFIG, "at most 8 sampled protocols ('%s' is the ninth)", name);
        if (kind == 'p' && !have_alias) {
            const int8_t *roles;
            DM_CALL(cands_split(cfg, d, &roles));
            double *w;
            DM_ALLOC(w, d->n_items);
            for (size_t i = 0; i < d->n_inter; i++)
                if (roles[i] == DM_TRAIN) w[d->item[i]] += 1.0;
            double pw = dm_cfg_float(cfg, "eval.pop_power");
            for (size_t i = 0; i < d->n_items; i++) w[i] = w[i] > 0 ? pow(w[i], pw) : 0.0;
            rc = metrics_alias_init(&alias, w, d->n_items);
            free(w);
            if (rc) break;
            have_alias = 1;
        }
        dm_cand *c = &d->cand[d->n_cand++];
        snprintf(c->name, sizeof c->name, "%s", name);
        c->n = N;
        DM_ALLOC(c->rows, (hi - lo) * N + 1);
        uint64_t pk = metrics_protocol_key(name);
        metrics_ws ws;
        DM_CALL(metrics_ws_init(&ws, d->n_items));
        /* the user's whole history, repeats included: it can be longer than the catalogue */
        int32_t *items;
        DM_ALLOC(items, maxlen);
        for (size_t u = lo; u < hi && !rc; u++) {
            size_t m = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) items[m++] = d->item[j];
            qsort(items, m, sizeof *items, dm_cmp_i32);
            int32_t *row = c->rows + (u - lo) * N;
            int r = kind == 'u' ? metrics_sample_uniform(&ws, seed, (int64_t)u, pk, items, m, N, row)
                                : metrics_sample_pop(&ws, &alias, seed, (int64_t)u, pk, items, m, N, row);
            if (r == DM_EINPUT) {
                /* too few untouched items: the user takes no part in this protocol */
                dm_error_clear();
                for (size_t q = 0; q < N; q++) row[q] = -1;
                short_users++;
            } else
                rc = r;
        }
        free(items);
        metrics_ws_free(&ws);
    }
    if (have_alias) metrics_alias_free(&alias);
    int64_t s = (int64_t)short_users;
    DM_CALL(par_agree(ctx, rc));
    DM_CALL(par_allreduce_sum_i64(ctx, &s, 1));
    if (s) dm_warn("%lld user-protocol pairs have too few untouched items for a sampled protocol and are left out of it", (long long)s);
    return DM_OK;
}

int cands_draw_key(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d, const char *key, size_t lo, size_t hi)
{
    size_t n = dm_cfg_len(cfg, key);
    const char *p[64];
    if (n > 64) return DM_ERR(DM_ECONFIG, "%s: at most 64 protocols", key);
    for (size_t k = 0; k < n; k++) p[k] = dm_cfg_str_at(cfg, key, k);
    return cands_draw(ctx, cfg, d, p, n, lo, hi);
}
