/* evalshard.c: item-sharded scoring of dot-product models, see evalshard.h. */
#include "evalshard.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/shard.h"
#include "../src/core/sort.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

/* ---- the latents ------------------------------------------------------------------------------- */

int ev_shard_load(par_ctx *ctx, const model_def *m, const char *path, ev_shard_latents *out)
{
    memset(out, 0, sizeof *out);
    const char *const *nm = model_latents_names(m);
    if (!nm) return par_agree(ctx, DM_ERR(DM_EINTERNAL, "model '%s' does not score by a dot product: no item shards", m->name));
    h5file f;
    int rc = h5_open(ctx, path, &f);
    if (rc) {
        DM_HINT("run the stage that makes %s first (dynmm run lists it in run.stages)", path);
        return par_agree(ctx, rc);
    }
    rc = model_latents_check(m, &f);
    if (!rc) rc = h5_shape(&f, nm[0], &out->n_items, &out->C, NULL);
    if (!rc && out->C == 0) rc = DM_ERR(DM_EFORMAT, "'%s': %s is not a matrix", path, nm[0]);
    rc = par_agree(ctx, rc);
    if (!rc) {
        dm_shard_even(out->n_items, ctx->size, ctx->rank, &out->i0, &out->i1);
        out->e = malloc((out->i1 - out->i0) * out->C * sizeof *out->e + 4);
        if (!out->e) rc = DM_ERR(DM_ENOMEM, "out of memory for %zu rows of %s", out->i1 - out->i0, nm[0]);
        rc = par_agree(ctx, rc);
    }
    /* the shard's rows: a hyperslab of the table, collective */
    if (!rc) rc = par_agree(ctx, h5_read_rows(&f, nm[0], H5_F32, out->i0, out->i1 - out->i0, out->e));
    for (int k = 0; k < 2 && !rc; k++) {
        void *p = NULL;
        size_t r, c;
        rc = h5_read_all(&f, nm[1 + k], H5_F32, &p, &r, &c);
        out->state[k ? DM_TEST : DM_VALID] = p;
        if (!rc && c != out->C) rc = DM_ERR(DM_EFORMAT, "'%s': %s has %zu columns, %s %zu", path, nm[1 + k], c, nm[0], out->C);
        rc = par_agree(ctx, rc);
    }
    h5_close(&f);
    if (rc) ev_shard_free(out);
    return rc;
}

void ev_shard_free(ev_shard_latents *m)
{
    DM_FREE_ALL(m->e, m->state[DM_VALID], m->state[DM_TEST]);
    memset(m, 0, sizeof *m);
}

int ev_shard_scores(const ev_shard_latents *m, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    if (!B || m->i1 == m->i0) return DM_OK;
    /* model_latents_score's call over the shard's rows, viewed as a table of their own */
    model_latents v = {m->i1 - m->i0, m->C, m->e, {[DM_VALID] = m->state[DM_VALID], [DM_TEST] = m->state[DM_TEST]}};
    return model_latents_score(&v, s, users, B, scores);
}

/* ---- scoring ----------------------------------------------------------------------------------- */

/* The items whose scores a user's row needs from every rank: its distinct targets (full), or its
 * targets as listed and its negatives (sampled, as ev_score_users). Returns the count. */
static size_t user_list(const ev_split *s, size_t u, const int32_t *neg, size_t nneg, int32_t *list)
{
    size_t nt = ev_targets(s, u, list), m = nt;
    if (!neg) {
        m = 0;
        for (size_t k = 0; k < nt; k++) {
            int dup = 0;
            for (size_t j = 0; j < m && !dup; j++) dup = list[j] == list[k];
            if (!dup) list[m++] = list[k];
        }
    } else
        for (size_t k = 0; k < nneg; k++) list[m++] = neg[k];
    return m;
}

typedef struct {
    size_t *users;   /* (nu) this rank's taking part */
    size_t nu, maxlen;
    const dm_cand *cand;
    int64_t *ids;    /* (Bmax) the block's users, every rank's */
    int32_t *negs;   /* (Bmax, ncand) their negatives (sampled protocols) */
    int32_t *lists;  /* (Bmax, L) item lists (user_list) */
    size_t *nlist;   /* (Bmax) */
    float *vals;     /* (Bmax, L) their scores, summed over ranks */
    int64_t *cnt;    /* (Bmax, 2 L + 2) shard counts (full), summed over ranks */
    float *scores;   /* (Bmax, i1 - i0) */
    int32_t *hist;   /* (nt, 2 maxlen + 2) */
    metrics_ws *ws;  /* (nt) made for the shard */
    int nt;
} shard_work;

static void work_free(shard_work *w)
{
    DM_FREE_ALL(w->users, w->ids, w->negs, w->lists, w->nlist, w->vals, w->cnt, w->scores, w->hist);
    for (int t = 0; w->ws && t < w->nt; t++) metrics_ws_free(&w->ws[t]);
    free(w->ws);
}

/* This block's users (every rank's chunk, in rank order) into w->ids and, for a sampled protocol,
 * their negatives into w->negs; returns the count in *B. */
static int gather_block(par_ctx *ctx, shard_work *w, const ev_split *s, size_t c0, size_t chunk, size_t *B)
{
    size_t mine = c0 < w->nu ? (w->nu - c0 < chunk ? w->nu - c0 : chunk) : 0;
    int64_t *my = malloc(mine * sizeof *my + 8);
    if (!my) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t b = 0; b < mine; b++) my[b] = (int64_t)w->users[c0 + b];
    void *all = NULL;
    size_t *counts = NULL;
    int rc = par_allgatherv(ctx, my, mine * sizeof *my, &all, &counts);
    size_t tot = 0;
    for (int r = 0; !rc && r < ctx->size; r++) tot += counts[r];
    *B = tot / sizeof *my;
    if (!rc) memcpy(w->ids, all, tot);
    free(all);
    free(counts);
    all = NULL;
    counts = NULL;
    if (!rc && w->cand) {
        size_t n = w->cand->n;
        int32_t *neg = malloc(mine * n * sizeof *neg + 4);
        if (!neg) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t b = 0; !rc && b < mine; b++)
            memcpy(neg + b * n, w->cand->rows + (w->users[c0 + b] - s->d->cand_row0) * n, n * sizeof *neg);
        if (!rc) rc = par_allgatherv(ctx, neg, mine * n * sizeof *neg, &all, &counts);
        if (!rc) memcpy(w->negs, all, *B * n * sizeof *neg);
        free(neg);
        free(all);
        free(counts);
    }
    free(my);
    return rc;
}

int ev_score_sharded(par_ctx *ctx, const ev_split *s, const metrics_spec *spec, const char *protocol, const ev_shard_latents *m,
                     size_t lo, size_t hi, size_t batch, double *rows)
{
    const dm_dataset *d = s->d;
    const size_t nc = spec->ncols, ns = m->i1 - m->i0;
    const int full = !strcmp(protocol, "full");
    shard_work w;
    memset(&w, 0, sizeof w);
    for (size_t k = 0; k < (hi - lo) * nc; k++) rows[k] = NAN;
    int rc = DM_OK;
    if (m->n_items != d->n_items)
        rc = DM_ERR(DM_EFORMAT, "the item table has %zu rows, the dataset %zu items", m->n_items, d->n_items);
    w.users = malloc((hi - lo + 1) * sizeof *w.users);
    if (!rc && !w.users) rc = DM_ERR(DM_ENOMEM, "out of memory");
    if (!rc) rc = ev_block_users(s, protocol, lo, hi, &w.cand, w.users, &w.nu, &w.maxlen);
    /* every rank's longest history and count of users, for equal blocks and buffers everywhere */
    int64_t g[2] = {(int64_t)w.maxlen, 0};
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_allreduce_max_i64(ctx, g, 1);
    const size_t maxlen = (size_t)g[0], ncand = w.cand ? w.cand->n : 0, L = full ? maxlen : maxlen + ncand;
    /* users per block over all ranks: batch, bounded as ev_score_users bounds it over the whole
       catalogue, so each rank's block of scores is 1/P of the unsharded one; a chunk of each rank's */
    size_t cap = EV_BLOCK_BYTES / ((full ? (m->n_items ? m->n_items : 1) : L) * sizeof(float));
    size_t Bg = batch < 1 ? 1 : batch;
    if (Bg > cap) Bg = cap ? cap : 1;
    size_t chunk = Bg / (size_t)ctx->size ? Bg / (size_t)ctx->size : 1, Bmax = chunk * (size_t)ctx->size;
    g[1] = (int64_t)((w.nu + chunk - 1) / chunk);
    if (!rc) rc = par_allreduce_max_i64(ctx, g + 1, 1);
    const size_t nblocks = (size_t)g[1];
    w.nt = omp_get_max_threads();
    if (!rc) {
        w.ids = malloc(Bmax * sizeof *w.ids);
        w.negs = malloc(Bmax * ncand * sizeof *w.negs + 4);
        w.lists = malloc(Bmax * L * sizeof *w.lists + 4);
        w.nlist = malloc(Bmax * sizeof *w.nlist);
        w.vals = malloc(Bmax * L * sizeof *w.vals + 4);
        w.cnt = malloc(Bmax * (2 * L + 2) * sizeof *w.cnt);
        w.scores = malloc(Bmax * (full ? ns : L) * sizeof *w.scores + 4);
        w.hist = malloc((size_t)w.nt * (2 * maxlen + 2) * sizeof *w.hist);
        w.ws = calloc((size_t)w.nt, sizeof *w.ws);
        if (!w.ids || !w.negs || !w.lists || !w.nlist || !w.vals || !w.cnt || !w.scores || !w.hist || !w.ws)
            rc = DM_ERR(DM_ENOMEM, "out of memory for a block of %zu users over %zu items", Bmax, ns);
        for (int t = 0; !rc && t < w.nt; t++) rc = metrics_ws_init(&w.ws[t], ns);
        rc = par_agree(ctx, rc);
    }
    for (size_t k = 0; k < nblocks && !rc; k++) {
        size_t B = 0;
        rc = par_agree(ctx, gather_block(ctx, &w, s, k * chunk, chunk, &B));
        if (rc) break;
        size_t *ub = malloc(B * sizeof *ub + 8);
        if (!ub) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t b = 0; !rc && b < B; b++) ub[b] = (size_t)w.ids[b];
        if (!rc && full) rc = ev_shard_scores(m, s, ub, B, w.scores);
        for (size_t b = 0; !rc && b < B; b++)
            w.nlist[b] = user_list(s, (size_t)w.ids[b], w.cand ? w.negs + b * ncand : NULL, ncand, w.lists + b * L);
        if (!rc && !full && ns) {
            /* sampled: only the lists' items in this shard are scored (the others stand in as the
               shard's first row and are zeroed below), by the kernel of the whole rows */
            int32_t *loc = malloc(B * L * sizeof *loc + 4);
            if (!loc) rc = DM_ERR(DM_ENOMEM, "out of memory");
            for (size_t b = 0; !rc && b < B; b++)
                for (size_t j = 0; j < L; j++) {
                    int32_t it = j < w.nlist[b] ? w.lists[b * L + j] : -1;
                    loc[b * L + j] = it >= 0 && (size_t)it >= m->i0 && (size_t)it < m->i1 ? it - (int32_t)m->i0 : 0;
                }
            if (!rc) rc = model_dot_items(m->e, ns, m->C, m->state[s->split], ub, B, loc, L, w.scores);
            free(loc);
        }
        free(ub);
        /* the scores of each user's list from the ranks holding them (0 elsewhere: the sum is exact) */
        for (size_t b = 0; !rc && b < B; b++) {
            const int32_t *li = w.lists + b * L;
            float *v = w.vals + b * L;
            for (size_t j = 0; j < L; j++) v[j] = 0.0f;
            for (size_t j = 0; j < w.nlist[b]; j++)
                if ((size_t)li[j] >= m->i0 && (size_t)li[j] < m->i1)
                    v[j] = full ? w.scores[b * ns + (size_t)li[j] - m->i0] : w.scores[b * L + j];
        }
        rc = par_agree(ctx, rc);
        if (!rc) rc = par_allreduce_sum_f32(ctx, w.vals, B * L);
        if (rc) break;
        ev_err err = {DM_OK, 0, ""};
        if (full) {
            /* each rank's counts over its items, summed over ranks; a user's counts fill the first
               2 dd + 2 of its 2 L + 2 slots, dd the same on every rank (the same summed scores) */
#pragma omp parallel for schedule(dynamic, 8)
            for (size_t b = 0; b < B; b++) {
                int t = omp_get_thread_num();
                size_t u = (size_t)w.ids[b], m1 = w.nlist[b];
                const float *v = w.vals + b * L;
                int64_t *cnt = w.cnt + b * (2 * L + 2);
                memset(cnt, 0, (2 * L + 2) * sizeof *cnt);
                int r = DM_OK;
                for (size_t j = 0; j < m1 && !r; j++)
                    if (isnan(v[j])) r = DM_ERR(DM_ENUM, "metrics: target item %d has a NaN score", (int)w.lists[b * L + j]);
                if (!r) {
                    int32_t *hist = w.hist + (size_t)t * (2 * maxlen + 2);
                    size_t nh = ev_history(s, u, hist), dd = metrics_shard_targets(&w.ws[t], v, m1);
                    if (!dd) r = DM_ENOMEM;
                    else r = metrics_shard_count(&w.ws[t], dd, w.scores + b * ns, m->i0, ns, w.lists + b * L, m1, hist, nh, cnt);
                }
                if (r) {
#pragma omp critical(ev_err)
                    ev_err_note(&err, r, u);
                }
            }
            rc = par_agree(ctx, ev_err_raise(&err));
            if (!rc) rc = par_allreduce_sum_i64(ctx, w.cnt, B * (2 * L + 2));
            if (rc) break;
        }
        /* the owners finish their users' rows */
#pragma omp parallel for schedule(dynamic, 8)
        for (size_t b = 0; b < B; b++) {
            size_t u = (size_t)w.ids[b];
            if (u < lo || u >= hi) continue;
            int t = omp_get_thread_num();
            const float *v = w.vals + b * L;
            double *row = rows + (u - lo) * nc;
            int r;
            if (full) {
                size_t dd = metrics_shard_targets(&w.ws[t], v, w.nlist[b]);
                r = dd ? metrics_shard_finish(spec, &w.ws[t], dd, w.cnt + b * (2 * L + 2), row) : DM_ENOMEM;
            } else {
                size_t ntg = w.nlist[b] - ncand;
                r = ev_sampled_row(spec, &w.ws[t], v, ntg, ncand, row);
            }
            if (r) {
#pragma omp critical(ev_err)
                ev_err_note(&err, r, u);
            }
        }
        rc = par_agree(ctx, ev_err_raise(&err));
    }
    work_free(&w);
    return par_agree(ctx, rc);
}

/* ---- top-K ------------------------------------------------------------------------------------- */

int ev_shard_topk(par_ctx *ctx, const float *scores, size_t B, size_t i0, size_t n, const int64_t *excl_off,
                  const int32_t *excl, int K, int32_t *out, float *out_scores)
{
    if (K < 0) K = 0;
    /* this rank's best K of each user: (score, item) pairs, -1 items past a short list */
    typedef struct {
        float s;
        int32_t i;
    } pair;
    pair *mine = calloc(B * (size_t)K + 1, sizeof *mine);
    uint8_t *mark = calloc(n + 1, 1);
    int32_t *top = malloc(((size_t)K + 1) * sizeof *top);
    int rc = !mine || !mark || !top ? DM_ERR(DM_ENOMEM, "out of memory") : DM_OK;
    for (size_t b = 0; !rc && b < B; b++) {
        const int64_t a = excl_off ? excl_off[b] : 0, z = excl_off ? excl_off[b + 1] : 0;
        for (int64_t j = a; j < z; j++)
            if ((size_t)excl[j] >= i0 && (size_t)excl[j] < i0 + n) mark[(size_t)excl[j] - i0] = 1;
        int k = dm_top_k_f32(scores + b * n, n, mark, K, top);
        for (int q = 0; q < K; q++) {
            mine[b * (size_t)K + (size_t)q].i = q < k ? (int32_t)i0 + top[q] : -1;
            mine[b * (size_t)K + (size_t)q].s = q < k ? scores[b * n + (size_t)top[q]] : 0.0f;
        }
        for (int64_t j = a; j < z; j++)
            if ((size_t)excl[j] >= i0 && (size_t)excl[j] < i0 + n) mark[(size_t)excl[j] - i0] = 0;
    }
    rc = par_agree(ctx, rc);
    void *all = NULL;
    size_t *counts = NULL;
    if (!rc) rc = par_allgatherv(ctx, mine, B * (size_t)K * sizeof *mine, &all, &counts);
    /* merge: rank r's lists follow rank r-1's and hold higher items, and a list keeps ties in item
     * order, so over the concatenation "ties in position order" (dm_top_k_f32) is "ties to the lower
     * item"; the placeholders of short lists are marked out */
    size_t P = (size_t)ctx->size, cand = P * (size_t)K;
    float *cs = malloc((cand + 1) * sizeof *cs);
    uint8_t *cm = malloc(cand + 1);
    int32_t *ci = malloc((cand + 1) * sizeof *ci);
    if (!rc && (!cs || !cm || !ci)) rc = DM_ERR(DM_ENOMEM, "out of memory");
    const pair *ap = all;
    for (size_t b = 0; !rc && b < B; b++) {
        for (size_t r = 0; r < P; r++)
            for (size_t q = 0; q < (size_t)K; q++) {
                const pair *p = &ap[r * B * (size_t)K + b * (size_t)K + q];
                cs[r * (size_t)K + q] = p->s;
                ci[r * (size_t)K + q] = p->i;
                cm[r * (size_t)K + q] = p->i < 0;
            }
        int k = dm_top_k_f32(cs, cand, cm, K, top);
        for (int q = 0; q < K; q++) {
            out[b * (size_t)K + (size_t)q] = q < k ? ci[top[q]] : -1;
            if (out_scores) out_scores[b * (size_t)K + (size_t)q] = q < k ? cs[top[q]] : NAN;
        }
    }
    free(all);
    free(counts);
    free(cs);
    free(cm);
    free(ci);
    free(mine);
    free(mark);
    free(top);
    return par_agree(ctx, rc);
}

/* ---- when to shard ----------------------------------------------------------------------------- */

int ev_item_shard(par_ctx *ctx, const dm_cfg *cfg, const char *group, size_t n_items, size_t C, double *table_mib,
                  double *budget_mib)
{
    char km[64], kb[64];
    snprintf(km, sizeof km, "%s.item_shard", group);
    snprintf(kb, sizeof kb, "%s.mem_per_rank", group);
    const char *mode = dm_cfg_str(cfg, km);
    double mib = dm_cfg_float(cfg, kb);
    if (mib <= 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
        mib = pages > 0 && psz > 0 ? (double)pages * (double)psz / 1048576.0 / (ctx->local_size > 0 ? ctx->local_size : 1) : 0;
        /* nodes may differ: the least of them, so every rank makes the same choice */
        int64_t v = (int64_t)mib;
        if (par_allreduce_min_i64(ctx, &v, 1)) v = 0;
        mib = (double)v;
    }
    *table_mib = (double)n_items * (double)C * sizeof(float) / 1048576.0;
    *budget_mib = mib;
    if (!strcmp(mode, "on")) return 1;
    if (!strcmp(mode, "off")) return 0;
    return ctx->size > 1 && *table_mib > 0.25 * mib;
}

int ev_shard_plan(par_ctx *ctx, const dm_cfg *cfg, const model_def *m, const char *path, int *on)
{
    *on = 0;
    const char *const *nm = model_latents_names(m);
    if (!nm) return DM_OK;
    /* the table's shape; a missing file or dataset is left to the loader's message */
    h5file f;
    size_t n = 0, C = 0;
    int exists = 0;
    int orc = h5_open(ctx, path, &f);
    if (par_agree(ctx, orc)) {
        if (!orc) h5_close(&f);
        dm_error_clear();
        return DM_OK;
    }
    int rc = h5_shape(&f, nm[0], &n, &C, &exists);
    h5_close(&f);
    if (par_agree(ctx, rc) || !exists) {
        dm_error_clear();
        return DM_OK;
    }
    double tmib, bmib;
    *on = ev_item_shard(ctx, cfg, "eval", n, C, &tmib, &bmib);
    if (*on)
        dm_log("  %s: item table %zu x %zu (%.3g MiB) sharded over %d ranks, %.3g MiB each (eval.item_shard %s, memory %.4g MiB per rank)",
               m->name, n, C, tmib, ctx->size, tmib / ctx->size, dm_cfg_str(cfg, "eval.item_shard"), bmib);
    return DM_OK;
}
