/* pq_model.c: pq.h5's codebooks and codes, and <model>@pq's scorer for the registry, see
 * pq_model.h. */
#include "pq_model.h"

#include "../mpi/cli.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pq_source g_sources[] = {
    {"align", "align.h5", "/align/z_base", {NULL, "/align/h_valid", "/align/h_test"}},
    {"sasrec", "cf.h5", "/sasrec/e_cf", {NULL, "/sasrec/state_valid", "/sasrec/state_test"}},
};
#define PQ_NSOURCES (sizeof g_sources / sizeof g_sources[0])

const pq_source *pq_source_find(const char *model)
{
    for (size_t k = 0; k < PQ_NSOURCES; k++)
        if (!strcmp(g_sources[k].model, model)) return &g_sources[k];
    return NULL;
}

const char *pq_source_names(void) { return "align, sasrec"; }

int pq_read(h5file *f, const char *model, size_t n_items, size_t d, pq_codebook *cb, uint8_t **codes)
{
    char nc[128], nk[128];
    snprintf(nc, sizeof nc, "/%s/codebook", model);
    snprintf(nk, sizeof nk, "/%s/codes", model);
    *codes = NULL;
    memset(cb, 0, sizeof *cb);
    int64_t M = 0, K = 0, L = 1;
    char grp[128];
    snprintf(grp, sizeof grp, "/%s", model);
    DM_CALL(h5_get_attr_i64(f, grp, "m", &M));
    DM_CALL(h5_get_attr_i64(f, grp, "k", &K));
    if (h5_has_attr(f, grp, "stages")) DM_CALL(h5_get_attr_i64(f, grp, "stages", &L)); /* files of one stage may lack it */
    DM_CALL(pq_init_rq(cb, d, (int)M, (int)L, (int)K, model));
    const int64_t C = M * L; /* code columns */
    void *p = NULL;
    size_t r, c;
    int rc = h5_read_all(f, nc, H5_F32, &p, &r, &c);
    if (!rc && (r != (size_t)(C * K) || c != cb->ds))
        rc = DM_ERR(DM_EFORMAT, "%s: %s is (%zu, %zu), expected (%lld, %zu)", f->path, nc, r, c, (long long)(C * K), cb->ds);
    if (!rc) memcpy(cb->c, p, r * c * sizeof(float));
    free(p);
    p = NULL;
    char nr[128];
    snprintf(nr, sizeof nr, "/%s/rotation", model);
    if (!rc && h5_exists(f, nr)) { /* OPQ */
        rc = h5_read_all(f, nr, H5_F32, &p, &r, &c);
        if (!rc && (r != d || c != d)) rc = DM_ERR(DM_EFORMAT, "%s: %s is (%zu, %zu), expected (%zu, %zu)", f->path, nr, r, c, d, d);
        if (!rc) cb->rot = p;
        else free(p);
        p = NULL;
    }
    snprintf(nr, sizeof nr, "/%s/query_rotation", model);
    if (!rc && h5_exists(f, nr)) { /* the queries' metric */
        rc = h5_read_all(f, nr, H5_F32, &p, &r, &c);
        if (!rc && (r != d || c != d)) rc = DM_ERR(DM_EFORMAT, "%s: %s is (%zu, %zu), expected (%zu, %zu)", f->path, nr, r, c, d, d);
        if (!rc && !cb->rot) rc = DM_ERR(DM_EFORMAT, "%s: %s without /%s/rotation", f->path, nr, model);
        if (!rc) cb->qrot = p;
        else free(p);
        p = NULL;
    }
    if (!rc) rc = h5_read_all(f, nk, H5_U8, &p, &r, &c);
    if (!rc && (r != n_items || c != (size_t)C)) {
        rc = DM_ERR(DM_EFORMAT, "%s: %s is (%zu, %zu), expected (%zu, %lld)", f->path, nk, r, c, n_items, (long long)C);
        DM_HINT("the file was made from other latents: rerun the pq stage");
    }
    for (size_t q = 0; !rc && q < r * c; q++)
        if (((uint8_t *)p)[q] >= K) rc = DM_ERR(DM_EFORMAT, "%s: %s[%zu] = %d is not below k = %lld", f->path, nk, q, ((uint8_t *)p)[q], (long long)K);
    if (rc) {
        free(p);
        pq_free(cb);
        return rc;
    }
    *codes = p;
    return DM_OK;
}

int pq_check_k(const dm_cfg *cfg)
{
    char w[256];
    int64_t K = dm_cfg_int(cfg, "pq.k");
    if (K <= PQ_KMAX) return DM_OK;
    DM_ERR(DM_ECONFIG, "%s: pq.k = %lld centroids per sub-space; at most %d (a code is one byte)", dm_cfg_where(cfg, "pq.k", w, sizeof w),
           (long long)K, PQ_KMAX);
    DM_HINT("use pq.k = 256 and more sub-spaces (pq.m) for a finer quantiser");
    return DM_ECONFIG;
}

/* ---- fitting a table ------------------------------------------------------------------------------ */

static int sum_i64(void *c, int64_t *buf, size_t n) { return par_allreduce_sum_i64(c, buf, n); }
static int max_f64(void *c, double *buf, size_t n) { return par_allreduce_max_f64(c, buf, n); }

int pq_fit_table(par_ctx *ctx, const dm_cfg *cfg, const float *e, size_t n, const float *q, size_t nq, size_t Nq, uint64_t seed,
                 pq_codebook *cb, uint8_t **codes, pq_train_stats *ts, size_t *n_train, int *q_dirs)
{
    const size_t D = cb->D, M = (size_t)pq_ncodes(cb); /* code columns */
    size_t lo, hi;
    dm_shard_even(n, ctx->size, ctx->rank, &lo, &hi);
    *codes = NULL;
    *q_dirs = 0;
    pq_comm comm = {ctx->rank, ctx->size, ctx, sum_i64, max_f64};
    const int qm = !strcmp(dm_cfg_str(cfg, "pq.metric"), "query");
    /* the queries' metric (pq.h): T from the second moment of the user states, the same on every rank */
    double *sig = qm ? malloc(4 * D * D * sizeof *sig) : NULL, *T = sig ? sig + D * D : NULL, *Ti = sig ? sig + 2 * D * D : NULL,
           *lam = sig ? sig + 3 * D * D : NULL;
    float *Tf = qm ? malloc(D * D * sizeof *Tf) : NULL;
    int rc = !qm || (sig && Tf) ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory for a %zu x %zu metric", D, D);
    rc = par_agree(ctx, rc);
    if (!rc && qm) rc = par_agree(ctx, pq_second_moment(q, nq, D, Nq, &comm, sig));
    if (!rc && qm) {
        const double fl = dm_cfg_float(cfg, "pq.query_floor");
        rc = pq_query_metric(sig, D, cb->M, fl, T, Ti, lam);
        double lmax = 0;
        for (size_t j = 0; !rc && j < D; j++) lmax = lam[j] > lmax ? lam[j] : lmax;
        for (size_t j = 0; !rc && j < D; j++) *q_dirs += lam[j] > fl * lmax;
        for (size_t k = 0; !rc && k < D * D; k++) Tf[k] = (float)T[k];
    }
    rc = par_agree(ctx, rc);
    uint8_t *mine = malloc((hi - lo) * M + 1);
    if (!rc && !mine) rc = DM_ERR(DM_ENOMEM, "out of memory for %zu codes", (hi - lo) * M);
    rc = par_agree(ctx, rc);
    /* the training items: all, or pq.sample of them evenly spaced (item t n / S for t < S), sharded
       evenly by their sample index so the codebooks do not depend on the rank count; in the queries'
       metric, y = x T */
    const int64_t want = dm_cfg_int(cfg, "pq.sample");
    const size_t S = want > 0 && (size_t)want < n ? (size_t)want : n;
    size_t tlo, thi;
    dm_shard_even(S, ctx->size, ctx->rank, &tlo, &thi);
    const int own = S < n || qm; /* the training items are a copy; every item encoded after */
    float *xs = own ? malloc((thi - tlo) * D * sizeof *xs + 4) : NULL;
    uint8_t *sc = own ? malloc((thi - tlo) * M + 1) : NULL;
    if (!rc && own && (!xs || !sc)) rc = DM_ERR(DM_ENOMEM, "out of memory for %zu training items", thi - tlo);
    for (size_t t = tlo; !rc && xs && t < thi; t++) {
        const float *x = e + (t * n / S) * D;
        if (qm) pq_rotate(Tf, D, x, 1, xs + (t - tlo) * D);
        else memcpy(xs + (t - tlo) * D, x, D * sizeof *xs);
    }
    rc = par_agree(ctx, rc);
    if (!rc)
        rc = par_agree(ctx, pq_train_opq(cb, own ? xs : e + lo * D, thi - tlo, tlo, S, (int)dm_cfg_int(cfg, "pq.iters"),
                                         (int)dm_cfg_int(cfg, "pq.opq"), (int)dm_cfg_int(cfg, "pq.opq_iters"), seed, &comm,
                                         own ? sc : mine, ts));
    if (!rc && qm) rc = par_agree(ctx, pq_set_metric(cb, T, Ti));
    if (!rc && own) rc = par_agree(ctx, pq_encode(cb, e + lo * D, hi - lo, mine));
    DM_FREE_ALL(xs, sc, sig, Tf);
    size_t *cnt = NULL;
    void *all = NULL;
    if (!rc) rc = par_allgatherv(ctx, mine, (hi - lo) * M, &all, &cnt);
    free(mine);
    free(cnt);
    if (!rc) *codes = all;
    else free(all);
    *n_train = S;
    return par_agree(ctx, rc);
}

/* ---- <model>@pq in the registry ------------------------------------------------------------------ */

typedef struct {
    pq_codebook cb;
    uint8_t *codes;      /* (n_items, M L); NULL when packed for the fast scan */
    pq_fs_codes fs;      /* K <= 16: the codes nibble-packed, scored by fast scan (pq.h) */
    model_latents lat;   /* states; the float items e only when re-ranking */
    size_t R;            /* pq.rerank (>= n_items: exact) */
    float *lut;          /* (cap, M L, K) */
    uint8_t *qlut;       /* fast scan: (cap, Mp, 16) the quantised tables */
    pq_fs_scale *qsc;    /* fast scan: (cap) their scales */
    size_t cap;
    int32_t *hist, *top; /* scratch: one user's history, the top R */
    uint8_t *mark;       /* (n_items) */
    int borrowed;        /* lat belongs to the caller (pq_scorer_new) */
} pq_scorer;

/* the tables of B users (grow-only; the byte tables are small, so made for either path) */
static int grow(pq_scorer *p, size_t B)
{
    if (B <= p->cap) return DM_OK;
    const size_t MK = (size_t)pq_ncodes(&p->cb) * (size_t)p->cb.K, Q = (size_t)pq_fs_mpad(pq_ncodes(&p->cb)) * 16;
    float *l = realloc(p->lut, B * MK * sizeof *l);
    if (l) p->lut = l;
    uint8_t *q = realloc(p->qlut, B * Q);
    if (q) p->qlut = q;
    pq_fs_scale *s = realloc(p->qsc, B * sizeof *s);
    if (s) p->qsc = s;
    if (!l || !q || !s) return DM_ERR(DM_ENOMEM, "out of memory for %zu lookup tables", B);
    p->cap = B;
    return DM_OK;
}

/* The B users' float tables p->lut (B, M L, K) and, for 4-bit codes, their byte tables p->qlut and
 * scales p->qsc (scores within M delta / 2 of the float ADC's, pq.h): what both scorers read. */
static int make_tables(pq_scorer *p, const ev_split *s, const size_t *users, size_t B)
{
    const int C = pq_ncodes(&p->cb);
    const size_t D = p->lat.C, MK = (size_t)C * (size_t)p->cb.K, Q = (size_t)pq_fs_mpad(C) * 16;
    DM_CALL(grow(p, B));
    const float *st = p->lat.state[s->split];
    for (size_t b = 0; b < B; b++) {
        pq_adc_lut(&p->cb, st + users[b] * D, p->lut + b * MK);
        if (p->fs.codes) pq_fs_quantise(p->lut + b * MK, C, p->cb.K, p->qlut + b * Q, p->qsc + b);
    }
    return DM_OK;
}

int pq_scorer_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    pq_scorer *p = mv;
    const int C = pq_ncodes(&p->cb); /* code columns: M L */
    const size_t n = p->lat.n_items, D = p->lat.C;
    if (p->R >= n) return model_latents_score(&p->lat, s, users, B, scores);
    DM_CALL(make_tables(p, s, users, B));
    const float *st = p->lat.state[s->split];
    if (p->fs.codes) {
        pq_fs_scores(&p->fs, p->qlut, p->qsc, B, scores);
    } else {
        pq_adc_scores(p->lut, B, p->codes, n, C, p->cb.K, scores);
    }
    for (size_t b = 0; p->R && b < B; b++) {
        size_t nh = ev_history(s, users[b], p->hist);
        for (size_t h = 0; h < nh; h++) p->mark[p->hist[h]] = 1;
        pq_rerank(scores + b * n, n, D, st + users[b] * D, p->lat.e, p->mark, p->R, p->top);
        for (size_t h = 0; h < nh; h++) p->mark[p->hist[h]] = 0;
    }
    return DM_OK;
}

int pq_scorer_has_items(const void *pv)
{
    const pq_scorer *p = pv;
    return p->R == 0 || p->R >= p->lat.n_items;
}

int pq_scorer_items(void *mv, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n, float *scores)
{
    pq_scorer *p = mv;
    const int C = pq_ncodes(&p->cb);
    const size_t ni = p->lat.n_items, Kz = (size_t)p->cb.K, MK = (size_t)C * Kz, Q = (size_t)pq_fs_mpad(C) * 16;
    if (p->R >= ni) return model_latents_score_items(&p->lat, s, users, B, items, n, scores);
    if (p->R) return DM_ERR(DM_EINTERNAL, "pq: a candidate scorer with pq.rerank = %zu of %zu items", p->R, ni);
    DM_CALL(make_tables(p, s, users, B));
    for (size_t b = 0; b < B; b++) {
        const float *lut = p->lut + b * MK;
        for (size_t k = 0; k < n; k++) {
            const int32_t it = items[b * n + k];
            if (it < 0 || (size_t)it >= ni) return DM_ERR(DM_EINTERNAL, "candidate item %d of user %zu outside the %zu items", (int)it, users[b], ni);
            if (p->fs.codes) { /* the fast scan's exact integer sum, dequantised as its rows are */
                scores[b * n + k] = pq_fs_score(p->qsc[b], pq_fs_sum_item(&p->fs, p->qlut + b * Q, (size_t)it));
            } else { /* pq_adc_scores's sum: from 0, in column order */
                const uint8_t *c = p->codes + (size_t)it * (size_t)C;
                float v = 0.0f;
                for (int q = 0; q < C; q++) v += lut[(size_t)q * Kz + c[q]];
                scores[b * n + k] = v;
            }
        }
    }
    return DM_OK;
}

/* The codes packed for the fast scan when K <= 16 (the bytes dropped), and the scratch. */
static int scorer_finish(pq_scorer *p, size_t n_inter)
{
    const size_t n = p->lat.n_items;
    int rc = DM_OK;
    /* at most 16 centroids: packed two codes a byte for the fast scan, the bytes dropped */
    if (p->cb.K <= PQ_FS_KMAX) rc = pq_fs_pack(&p->fs, p->codes, n, pq_ncodes(&p->cb));
    if (!rc && p->fs.codes) DM_FREE(p->codes);
    if (!rc) {
        p->hist = malloc((n_inter + 1) * sizeof *p->hist);
        p->top = malloc(((p->R < n ? p->R : n) + 1) * sizeof *p->top);
        p->mark = calloc(n + 1, 1);
        if (!p->hist || !p->top || !p->mark) rc = DM_ERR(DM_ENOMEM, "out of memory");
    }
    return rc;
}

/* pq.h5 must have been made from the source file present (its `inputs` record that file's hash) */
static int same_source(par_ctx *ctx, h5file *f, const pq_source *src, const char *path)
{
    h5file g;
    DM_CALL(h5_open(ctx, path, &g));
    char *inputs = NULL, *hash = NULL;
    int rc = h5_get_attr_str(f, "/", "inputs", &inputs);
    if (!rc) rc = h5_get_attr_str(&g, "/", "stage_hash", &hash);
    if (!rc) {
        char want[128];
        snprintf(want, sizeof want, "%s=%s", src->file, hash);
        const char *at = strstr(inputs, want);
        if (!at || (at != inputs && at[-1] != ';') || (at[strlen(want)] && at[strlen(want)] != ';')) {
            rc = DM_ERR(DM_EINPUT, "%s was not made from the %s present ('%s')", f->path, src->file, path);
            DM_HINT("pq.h5 is stale: rerun the pq stage");
        }
    }
    free(inputs);
    free(hash);
    h5_close(&g);
    return rc;
}

int pq_model_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml)
{
    pq_scorer *p;
    DM_ALLOC(p, 1);
    ml->state = p;
    ml->score = pq_scorer_score;
    /* "align@pq" -> align */
    char model[64];
    snprintf(model, sizeof model, "%.*s", (int)strcspn(ml->def->name, "@"), ml->def->name);
    const pq_source *src = pq_source_find(model);
    DM_ASSERT(src);
    int64_t R = dm_cfg_int(cfg, "pq.rerank");
    p->R = (size_t)R;
    char path[4096];
    h5file g;
    DM_CALL(h5_check_format(f, PQ_FORMAT, 1));
    char nk[128];
    snprintf(nk, sizeof nk, "/%s/codes", model);
    if (!h5_exists(f, nk)) {
        int rc = DM_ERR(DM_ECONFIG, "eval.models has '%s' but %s has no %s", ml->def->name, f->path, nk);
        DM_HINT("add '%s' to pq.models and rerun the pq stage", model);
        return rc;
    }
    DM_CALL(cli_run_path(ctx, cfg, src->file, path, sizeof path));
    DM_CALL(same_source(ctx, f, src, path));
    DM_CALL(h5_open(ctx, path, &g));
    void *x = NULL;
    size_t r, c, n = d->n_items;
    int rc = DM_OK;
    for (int sp = DM_VALID; sp <= DM_TEST && !rc; sp++) {
        rc = h5_read_all(&g, src->state[sp], H5_F32, &x, &r, &c);
        p->lat.state[sp] = x;
        p->lat.C = c;
    }
    int exists = 0;
    size_t ni = 0, di = 0;
    if (!rc) rc = h5_shape(&g, src->item, &ni, &di, &exists);
    if (!rc && (!exists || ni != n || di != p->lat.C))
        rc = DM_ERR(DM_EFORMAT, "%s: %s is (%zu, %zu), expected (%zu, %zu)", path, src->item, ni, di, n, p->lat.C);
    p->lat.n_items = n;
    if (!rc && p->R) {
        rc = h5_read_all(&g, src->item, H5_F32, &x, &r, &c);
        p->lat.e = x;
    }
    h5_close(&g);
    if (!rc) rc = pq_read(f, model, n, p->lat.C, &p->cb, &p->codes);
    if (!rc) rc = scorer_finish(p, d->n_inter);
    if (!rc && p->fs.codes) dm_log("  %s@pq: 4-bit codes, scored by fast scan (%s)", model, pq_fs_isa_name(pq_fs_isa_current()));
    /* sampled protocols score only the candidates unless the re-ranked top R needs the whole row */
    if (!rc && pq_scorer_has_items(p)) ml->score_items = pq_scorer_items;
    return rc;
}

void pq_scorer_free(void *pv)
{
    pq_scorer *p = pv;
    if (!p) return;
    pq_free(&p->cb);
    pq_fs_free(&p->fs);
    free(p->codes);
    if (!p->borrowed) model_latents_free(&p->lat);
    DM_FREE_ALL(p->lut, p->qlut, p->qsc, p->hist, p->top, p->mark, p);
}

void pq_model_unload(model_loaded *ml)
{
    pq_scorer_free(ml->state);
    ml->state = NULL;
}

int pq_scorer_new(pq_codebook *cb, uint8_t *codes, const model_latents *lat, size_t R, size_t n_inter, void **out)
{
    *out = NULL;
    pq_scorer *p = calloc(1, sizeof *p);
    if (!p) {
        pq_free(cb);
        free(codes);
        return DM_ERR(DM_ENOMEM, "out of memory");
    }
    p->cb = *cb;
    memset(cb, 0, sizeof *cb);
    p->codes = codes;
    p->lat = *lat;
    p->borrowed = 1;
    p->R = R;
    int rc = scorer_finish(p, n_inter);
    if (rc) pq_scorer_free(p);
    else *out = p;
    return rc;
}
