/* evalcore.c: see evalcore.h. */
#include "evalcore.h"

#include "cands.h"

#include "../src/core/err.h"
#include "../src/core/rng.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ev_history(const ev_split *s, size_t u, int32_t *out)
{
    size_t m = 0;
    for (int64_t j = s->d->user_off[u]; j < s->d->user_off[u + 1]; j++)
        if (s->roles[j] < s->split) out[m++] = s->d->item[j];
    return m;
}

size_t ev_targets(const ev_split *s, size_t u, int32_t *out)
{
    size_t m = 0;
    for (int64_t j = s->d->user_off[u]; j < s->d->user_off[u + 1]; j++)
        if (s->roles[j] == s->split) out[m++] = s->d->item[j];
    return m;
}

static const dm_cand *find_cand(const dm_dataset *d, const char *protocol)
{
    for (int c = 0; c < d->n_cand; c++)
        if (!strcmp(d->cand[c].name, protocol)) return &d->cand[c];
    return NULL;
}

int ev_block_users(const ev_split *s, const char *protocol, size_t lo, size_t hi, const dm_cand **candp, size_t *users,
                   size_t *nu_out, size_t *maxlen_out)
{
    const dm_dataset *d = s->d;
    int full = !strcmp(protocol, "full");
    const dm_cand *cand = full ? NULL : find_cand(d, protocol);
    if (!full && !cand) {
        DM_ERR(DM_EINTERNAL, "protocol '%s': its candidate sets were not drawn (cands_draw)", protocol);
        return DM_EINTERNAL;
    }
    if (cand && (lo < d->cand_row0 || hi > d->cand_row0 + d->cand_rows)) {
        DM_ERR(DM_EINTERNAL, "protocol '%s': candidate rows %zu..%zu do not cover users %zu..%zu", protocol, d->cand_row0,
               d->cand_row0 + d->cand_rows, lo, hi);
        return DM_EINTERNAL;
    }
    /* users of the block that have targets (and negatives) */
    size_t nu = 0, maxlen = 1;
    for (size_t u = lo; u < hi; u++) {
        size_t len = (size_t)(d->user_off[u + 1] - d->user_off[u]);
        if (len > maxlen) maxlen = len;
        int has = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1] && !has; j++) has = s->roles[j] == s->split;
        if (has && cand && cand->rows[(u - d->cand_row0) * cand->n] < 0) has = 0;
        if (has && s->keep && !s->keep[u]) has = 0;
        if (has) users[nu++] = u;
    }
    *candp = cand;
    *nu_out = nu;
    *maxlen_out = maxlen;
    return DM_OK;
}

/* A sampled protocol through a candidate scorer: each block's users get a list of their targets
 * then their negatives (padded to the block's longest with the user's first target, whose extra
 * scores are not read), scored by items_fn, then the same metrics calls as the whole-row path. */
static int score_cands(const ev_split *s, const metrics_spec *spec, const dm_cand *cand, ev_items_fn items_fn, void *model,
                       const size_t *users, size_t nu, size_t maxlen, size_t lo, size_t batch, double *rows)
{
    const dm_dataset *d = s->d;
    const size_t nc = spec->ncols, ncand = cand->n;
    if (batch < 1) batch = 1;
    size_t cap = EV_BLOCK_BYTES / ((maxlen + ncand) * sizeof(float));
    if (cap < 1) cap = 1;
    if (batch > cap) batch = cap;
    int nt = omp_get_max_threads();
    int32_t *items = malloc(batch * (maxlen + ncand) * sizeof *items + 4);
    float *sc = malloc(batch * (maxlen + ncand) * sizeof *sc + 4);
    size_t *ntg = malloc(batch * sizeof *ntg + 8);
    metrics_ws *ws = calloc((size_t)nt, sizeof *ws);
    int rc = !items || !sc || !ntg || !ws ? DM_ERR(DM_ENOMEM, "out of memory for the candidates of %zu users", batch) : DM_OK;
    for (int t = 0; t < nt && !rc; t++) rc = metrics_ws_init(&ws[t], maxlen + ncand);
    for (size_t b0 = 0; b0 < nu && !rc; b0 += batch) {
        size_t B = nu - b0 < batch ? nu - b0 : batch, L = ncand + 1;
        for (size_t b = 0; b < B; b++) {
            size_t u = users[b0 + b], m = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) m += s->roles[j] == s->split;
            ntg[b] = m;
            if (m + ncand > L) L = m + ncand;
        }
        for (size_t b = 0; b < B; b++) {
            size_t u = users[b0 + b];
            int32_t *li = items + b * L;
            size_t m = ev_targets(s, u, li);
            memcpy(li + m, cand->rows + (u - d->cand_row0) * ncand, ncand * sizeof *li);
            for (size_t k = m + ncand; k < L; k++) li[k] = li[0];
        }
        rc = items_fn(model, s, users + b0, B, items, L, sc);
        if (rc) break;
        ev_err err = {DM_OK, 0, ""};
#pragma omp parallel for schedule(dynamic, 8)
        for (size_t b = 0; b < B; b++) {
            int t = omp_get_thread_num();
            size_t u = users[b0 + b], m = ntg[b];
            const float *f = sc + b * L;
            double *row = rows + (u - lo) * nc;
            int r = ev_sampled_row(spec, &ws[t], f, m, ncand, row);
            if (r) {
#pragma omp critical(ev_err)
                ev_err_note(&err, r, u);
            }
        }
        rc = ev_err_raise(&err);
    }
    for (int t = 0; ws && t < nt; t++) metrics_ws_free(&ws[t]);
    DM_FREE_ALL(ws, items, sc, ntg);
    return rc;
}

int ev_score_users(const ev_split *s, const metrics_spec *spec, const char *protocol, ev_score_fn fn, void *model,
                   size_t lo, size_t hi, size_t batch, double *rows)
{
    return ev_score_users_items(s, spec, protocol, fn, NULL, model, lo, hi, batch, rows);
}

int ev_score_users_items(const ev_split *s, const metrics_spec *spec, const char *protocol, ev_score_fn fn, ev_items_fn items_fn,
                         void *model, size_t lo, size_t hi, size_t batch, double *rows)
{
    const dm_dataset *d = s->d;
    size_t n_items = d->n_items, nc = spec->ncols;
    int full = !strcmp(protocol, "full");
    for (size_t k = 0; k < (hi - lo) * nc; k++) rows[k] = NAN;
    size_t *users;
    DM_ALLOC(users, hi - lo + 1);
    size_t nu = 0, maxlen = 1;
    const dm_cand *cand = NULL;
    int rc0 = ev_block_users(s, protocol, lo, hi, &cand, users, &nu, &maxlen);
    if (!rc0 && !full && items_fn) rc0 = score_cands(s, spec, cand, items_fn, model, users, nu, maxlen, lo, batch, rows);
    if (rc0 || (!full && items_fn)) {
        free(users);
        return rc0;
    }
    if (batch < 1) batch = 1;
    /* bound the score block to ~64 MiB */
    size_t cap = EV_BLOCK_BYTES / (n_items * sizeof(float));
    if (cap < 1) cap = 1;
    if (batch > cap) batch = cap;
    float *scores;
    DM_ALLOC(scores, batch * n_items);
    int nt = omp_get_max_threads();
    metrics_ws *ws;
    DM_ALLOC(ws, nt);
    int rc = DM_OK;
    for (int t = 0; t < nt && !rc; t++) rc = metrics_ws_init(&ws[t], n_items);
    int32_t *buf;
    DM_ALLOC(buf, (size_t)nt * (2 * maxlen + (cand ? cand->n : 0) + 2));
    float *fbuf;
    DM_ALLOC(fbuf, (size_t)nt * (maxlen + (cand ? cand->n : 0) + 2));
    for (size_t b0 = 0; b0 < nu && !rc; b0 += batch) {
        size_t B = nu - b0 < batch ? nu - b0 : batch;
        rc = fn(model, s, users + b0, B, scores);
        if (rc) break;
        ev_err err = {DM_OK, 0, ""};
#pragma omp parallel for schedule(dynamic, 8)
        for (size_t b = 0; b < B; b++) {
            int t = omp_get_thread_num();
            size_t u = users[b0 + b];
            int32_t *hist = buf + (size_t)t * (2 * maxlen + (cand ? cand->n : 0) + 2);
            int32_t *tg = hist + maxlen;
            size_t nh = ev_history(s, u, hist), ntg = ev_targets(s, u, tg);
            const float *sc = scores + b * n_items;
            double *row = rows + (u - lo) * nc;
            int r;
            if (full) r = metrics_full(spec, &ws[t], sc, n_items, tg, ntg, hist, nh, row);
            else {
                float *f = fbuf + (size_t)t * (maxlen + cand->n + 2);
                const int32_t *neg = cand->rows + (u - d->cand_row0) * cand->n;
                for (size_t k = 0; k < ntg; k++) f[k] = sc[tg[k]];
                for (size_t k = 0; k < cand->n; k++) f[ntg + k] = sc[neg[k]];
                r = ev_sampled_row(spec, &ws[t], f, ntg, cand->n, row);
            }
            if (r) {
#pragma omp critical(ev_err)
                ev_err_note(&err, r, u);
            }
        }
        rc = ev_err_raise(&err);
    }
    for (int t = 0; t < nt; t++) metrics_ws_free(&ws[t]);
    free(ws);
    free(buf);
    free(fbuf);
    free(scores);
    free(users);
    return rc;
}

int ev_sampled_row(const metrics_spec *spec, metrics_ws *ws, const float *f, size_t m, size_t n, double *row)
{
    return m == 1 ? metrics_sampled(spec, f[0], f + 1, n, row) : metrics_sampled_multi(spec, ws, f, m, f + m, n, row);
}

void ev_err_note(ev_err *e, int rc, size_t user)
{
    if (e->code && user >= e->user) return;
    e->code = rc;
    e->user = user;
    snprintf(e->msg, sizeof e->msg, "%s", dm_error_message());
}

int ev_err_raise(const ev_err *e)
{
    if (!e->code) return DM_OK;
    return DM_ERR(e->code, "user %zu: %s", e->user, e->msg);
}

int ev_user_sample(const dm_cfg *cfg, size_t n_users, uint8_t **keep)
{
    double f = dm_cfg_float(cfg, "eval.user_fraction");
    *keep = NULL;
    if (f >= 1.0) return DM_OK;
    uint8_t *k;
    DM_ALLOC(k, n_users + 1);
    uint64_t seed = cands_seed(cfg);
    for (size_t u = 0; u < n_users; u++) k[u] = (double)(dm_rng_key(seed, 0x5E1EC7, (uint64_t)u) >> 11) * 0x1.0p-53 < f;
    *keep = k;
    return DM_OK;
}

int ev_mean(par_ctx *ctx, const metrics_spec *spec, const double *rows, size_t n, double *mean, int64_t *count)
{
    size_t nc = spec->ncols;
    double *acc;
    DM_ALLOC(acc, nc + 1);
    for (size_t u = 0; u < n; u++) {
        if (isnan(rows[u * nc])) continue;
        for (size_t c = 0; c < nc; c++) acc[c] += rows[u * nc + c];
        acc[nc] += 1.0;
    }
    DM_CALL(par_allreduce_sum_f64(ctx, acc, nc + 1));
    for (size_t c = 0; c < nc; c++) mean[c] = acc[nc] > 0 ? acc[c] / acc[nc] : NAN;
    *count = (int64_t)acc[nc];
    free(acc);
    return DM_OK;
}

int ev_spec_config(const dm_cfg *cfg, metrics_spec *spec)
{
    metrics_ties ties;
    int64_t ks[EV_MAX_KS];
    size_t nk = dm_cfg_len(cfg, "eval.ks");
    if (nk > EV_MAX_KS) return DM_ERR(DM_ECONFIG, "eval.ks: %zu cutoffs, at most %d", nk, EV_MAX_KS);
    for (size_t k = 0; k < nk; k++) ks[k] = dm_cfg_int_at(cfg, "eval.ks", k);
    DM_CALL(metrics_ties_parse(dm_cfg_str(cfg, "eval.ties"), &ties));
    return metrics_spec_init(spec, ks, nk, ties);
}

int64_t ev_cols_at10(const metrics_spec *spec, size_t *hit, size_t *ndcg)
{
    size_t k10 = 0;
    for (size_t k = 0; k < spec->nk; k++)
        if (spec->ks[k] == 10) k10 = k + 1;
    size_t ki = k10 ? k10 - 1 : 0;
    *hit = metrics_col(spec, METRICS_HIT, ki);
    *ndcg = metrics_col(spec, METRICS_NDCG, ki);
    return spec->nk ? spec->ks[ki] : 0;
}

int ev_write_columns(par_ctx *ctx, h5file *f, const metrics_spec *spec)
{
    dm_strtab cols = {0};
    char name[32];
    int rc = DM_OK;
    for (size_t c = 0; c < spec->ncols && !rc; c++) {
        metrics_col_name(spec, c, name, sizeof name);
        rc = dm_strtab_add(&cols, name, strlen(name));
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = h5_write_strtab(f, "/columns", ctx->rank == 0 ? &cols : &(dm_strtab){0}, ctx->rank == 0 ? 0 : spec->ncols, spec->ncols);
    dm_strtab_free(&cols);
    return rc;
}
