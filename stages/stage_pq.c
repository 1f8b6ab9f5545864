/* stage_pq.c: `dynmm pq`: product quantisation of the item tables of pq.models into pq.h5
 * (stages/pq_model.h for the format, src/pq/pq.h for the method).
 *
 * Per model: every rank reads the item table, trains the codebooks on its even shard of the items
 * (or of pq.sample evenly spaced items; int64 allreduces: bitwise the same codebooks at any rank
 * count), encodes its shard and writes its codes' rows, and
 * measures on a sample of test users how many of the exact top 10 the codes find (ADC's top 10,
 * and the top 10 after exact re-ranking of ADC's top 100 and 1000).
 */
#include "pq_model.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/sort.h"
#include "../src/core/timer.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: dynmm pq CONFIG.cfg [--set group.key=value ...]\n\n"
    "Product-quantises the item tables of pq.models ('align': align.h5's z_base; 'sasrec': cf.h5's e_cf)\n"
    "into <run.dir>/pq.h5: pq.m sub-spaces of pq.k centroids each (k-means++ seeding from pq.seed, then\n"
    "pq.iters Lloyd iterations, data parallel over every item or pq.sample evenly spaced ones; pq.stages\n"
    "residual stages per sub-space; pq.opq rounds of an OPQ rotation; with pq.metric = query, in the\n"
    "metric of the users' validation states), one code per sub-space, stage and item. Eval scores them as align@pq and\n"
    "sasrec@pq (eval.models) by asymmetric distances over the whole catalogue, re-ranking the top\n"
    "pq.rerank items exactly. Logged and stored: relative quantisation error, memory of the codes\n"
    "against float32, and the recall@10 of the exact top 10 on test users.\n";

/* pq.rerank is eval's (align@pq's group): it does not change the codebooks */
static const char *const pq_config_groups[] = {"pq.models", "pq.m", "pq.k", "pq.stages", "pq.iters", "pq.opq", "pq.opq_iters", "pq.metric", "pq.query_floor", "pq.seed", "pq.sample", NULL};

#define PQ_RECALL_USERS 1000
static const size_t g_recall_R[] = {10, 100, 1000};
#define PQ_NR (sizeof g_recall_R / sizeof g_recall_R[0])

static int check_pq(const dm_cfg *cfg)
{
    char w[256];
    size_t nm = dm_cfg_len(cfg, "pq.models");
    if (!nm) return DM_ERR(DM_ECONFIG, "%s: no model to quantise (expected some of %s)", dm_cfg_where(cfg, "pq.models", w, sizeof w), pq_source_names());
    for (size_t k = 0; k < nm; k++) {
        const char *mn = dm_cfg_str_at(cfg, "pq.models", k);
        if (!pq_source_find(mn)) {
            DM_ERR(DM_ECONFIG, "%s: pq cannot quantise '%s'", dm_cfg_where(cfg, "pq.models", w, sizeof w), mn);
            DM_HINT("pq.models takes %s", pq_source_names());
            return DM_ECONFIG;
        }
        for (size_t j = 0; j < k; j++)
            if (!strcmp(dm_cfg_str_at(cfg, "pq.models", j), mn))
                return DM_ERR(DM_ECONFIG, "%s lists '%s' twice", dm_cfg_where(cfg, "pq.models", w, sizeof w), mn);
    }
    return pq_check_k(cfg);
}

static int uses_pq(const dm_cfg *cfg, const char *input)
{
    for (size_t k = 0; k < dm_cfg_len(cfg, "pq.models"); k++) {
        const pq_source *s = pq_source_find(dm_cfg_str_at(cfg, "pq.models", k));
        if (s && !strcmp(s->file, input)) return 1;
    }
    return 0;
}

/* hits[r] = how many of the exact top 10 are among the top 10 after exact re-ranking of ADC's top
 * g_recall_R[r], summed over this rank's share of the sampled test users; *users = their count */
static int recall_sample(par_ctx *ctx, const pq_codebook *cb, const uint8_t *codes, const float *e, size_t n, const float *st,
                         size_t n_users, int64_t *hits, int64_t *users)
{
    const size_t D = cb->D, S = n_users < PQ_RECALL_USERS ? n_users : PQ_RECALL_USERS, Rmax = g_recall_R[PQ_NR - 1] < n ? g_recall_R[PQ_NR - 1] : n;
    size_t lo, hi;
    dm_shard_even(S, ctx->size, ctx->rank, &lo, &hi);
    float *ex = malloc(n * sizeof *ex), *adc = malloc(n * sizeof *adc), *lut = malloc((size_t)pq_ncodes(cb) * (size_t)cb->K * sizeof *lut), *sub = malloc(Rmax * sizeof *sub);
    int32_t *top = malloc(Rmax * sizeof *top), best[10], got[10];
    int rc = ex && adc && lut && top && sub ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    memset(hits, 0, PQ_NR * sizeof *hits);
    *users = 0;
    for (size_t t = lo; !rc && t < hi; t++) {
        const float *q = st + (t * n_users / S) * D;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)D, 1.0f, e, (int)D, q, 1, 0.0f, ex, 1);
        int nb = dm_top_k_f32(ex, n, NULL, 10, best);
        pq_adc_lut(cb, q, lut);
        pq_adc_scores(lut, 1, codes, n, pq_ncodes(cb), cb->K, adc);
        int nt = dm_top_k_f32(adc, n, NULL, (int)Rmax, top);
        for (size_t r = 0; r < PQ_NR; r++) {
            size_t R = g_recall_R[r] < (size_t)nt ? g_recall_R[r] : (size_t)nt;
            for (size_t c = 0; c < R; c++) sub[c] = ex[top[c]];
            int ng = dm_top_k_f32(sub, R, NULL, 10, got);
            for (int a = 0; a < nb; a++)
                for (int b = 0; b < ng; b++) hits[r] += best[a] == top[got[b]];
        }
        ++*users;
    }
    free(ex);
    free(adc);
    free(lut);
    free(sub);
    free(top);
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_allreduce_sum_i64(ctx, hits, PQ_NR);
    if (!rc) rc = par_allreduce_sum_i64(ctx, users, 1);
    return rc;
}

/* one model of pq.models: train, write, measure */
static int quantise(stage_run *sr, h5file *f, const pq_source *src, uint64_t seed)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    double t0 = dm_wtime();
    float *e = NULL, *st = NULL;
    size_t n = 0, D = 0, nu = 0, c = 0;
    h5file g;
    DM_CALL(par_agree(ctx, h5_open(ctx, stage_input(sr, src->file), &g)));
    void *p = NULL;
    int rc = h5_read_all(&g, src->item, H5_F32, &p, &n, &D);
    e = p;
    p = NULL;
    if (!rc) rc = h5_read_all(&g, src->state[DM_TEST], H5_F32, &p, &nu, &c);
    st = p;
    if (!rc && c != D) rc = DM_ERR(DM_EFORMAT, "%s: %s has %zu columns, %s %zu", g.path, src->state[DM_TEST], c, src->item, D);
    /* pq.metric = "query": the validation states, this rank's even share, give the queries' metric
       (the test states are the ones it is measured on) */
    const int qm = !strcmp(dm_cfg_str(cfg, "pq.metric"), "query");
    float *sv = NULL;
    size_t nv = 0, cv = 0, vlo = 0, vhi = 0;
    int ex = 0;
    if (!rc && qm) rc = h5_shape(&g, src->state[DM_VALID], &nv, &cv, &ex);
    if (!rc && qm && (!ex || cv != D))
        rc = DM_ERR(DM_EFORMAT, "%s: %s is missing or not %zu wide", g.path, src->state[DM_VALID], D);
    if (!rc && qm) {
        dm_shard_even(nv, ctx->size, ctx->rank, &vlo, &vhi);
        sv = malloc((vhi - vlo) * D * sizeof *sv + 4);
        if (!sv) rc = DM_ERR(DM_ENOMEM, "out of memory for %zu user states", vhi - vlo);
    }
    rc = par_agree(ctx, rc); /* the read below is collective */
    if (!rc && qm) rc = h5_read_rows(&g, src->state[DM_VALID], H5_F32, vlo, vhi - vlo, sv);
    h5_close(&g);
    rc = par_agree(ctx, rc);
    char what[96];
    snprintf(what, sizeof what, "pq: %s", src->model);
    pq_codebook cb = {0};
    if (!rc) {
        rc = pq_init_rq(&cb, D, (int)dm_cfg_int(cfg, "pq.m"), (int)dm_cfg_int(cfg, "pq.stages"), (int)dm_cfg_int(cfg, "pq.k"), what);
        if (rc && D) DM_HINT("%s's latents (%s) have %zu dimensions: pq.m must divide it", src->model, src->item, D);
    }
    rc = par_agree(ctx, rc);
    size_t lo, hi, S = 0;
    dm_shard_even(n, ctx->size, ctx->rank, &lo, &hi);
    const size_t M = (size_t)pq_ncodes(&cb); /* code columns: pq.m pq.stages */
    uint8_t *codes = NULL;
    pq_train_stats ts;
    memset(&ts, 0, sizeof ts);
    int qdirs = 0;
    if (!rc) rc = pq_fit_table(ctx, cfg, e, n, sv, vhi - vlo, nv, seed, &cb, &codes, &ts, &S, &qdirs);
    DM_FREE(sv);
    double train_s = dm_wtime() - t0;
    uint8_t *mine = codes ? codes + lo * M : NULL;
    char grp[96], nm[128];
    snprintf(grp, sizeof grp, "/%s", src->model);
    snprintf(nm, sizeof nm, "%s/codebook", grp);
    if (!rc) rc = h5_write_all(f, nm, H5_F32, M * (size_t)cb.K, cb.ds, cb.c);
    snprintf(nm, sizeof nm, "%s/codes", grp);
    if (!rc) rc = h5_write_rows(f, nm, H5_U8, n, M, lo, hi - lo, mine);
    snprintf(nm, sizeof nm, "%s/rotation", grp);
    if (!rc && cb.rot) rc = h5_write_all(f, nm, H5_F32, D, D, cb.rot);
    snprintf(nm, sizeof nm, "%s/query_rotation", grp);
    if (!rc && cb.qrot) rc = h5_write_all(f, nm, H5_F32, D, D, cb.qrot);
    int64_t hits[PQ_NR], users = 0;
    if (!rc) rc = recall_sample(ctx, &cb, codes, e, n, st, nu, hits, &users);
    double rec[PQ_NR], Rs[PQ_NR];
    for (size_t r = 0; r < PQ_NR; r++) {
        rec[r] = users ? (double)hits[r] / (10.0 * (double)users) : 0.0;
        Rs[r] = (double)g_recall_R[r];
    }
    const double rel = ts.norm > 0 ? ts.err / ts.norm : 0.0, bc = (double)n * (double)(cb.K <= PQ_FS_KMAX ? (M + 1) / 2 : M), bf = (double)(n * D * sizeof(float));
    if (!rc) rc = h5_attr_i64(f, grp, "m", cb.M);
    if (!rc) rc = h5_attr_i64(f, grp, "k", cb.K);
    if (!rc) rc = h5_attr_i64(f, grp, "stages", cb.L);
    if (!rc) rc = h5_attr_i64(f, grp, "d", (int64_t)D);
    if (!rc) rc = h5_attr_str(f, grp, "source", src->file);
    if (!rc) rc = h5_attr_str(f, grp, "item_table", src->item);
    if (!rc) rc = h5_attr_i64(f, grp, "iters", ts.iters);
    if (!rc) rc = h5_attr_i64(f, grp, "opq", dm_cfg_int(cfg, "pq.opq"));
    if (!rc) rc = h5_attr_str(f, grp, "metric", dm_cfg_str(cfg, "pq.metric"));
    if (!rc) rc = h5_attr_i64(f, grp, "query_dirs", qdirs);
    if (!rc) rc = h5_attr_i64(f, grp, "train_items", (int64_t)S);
    if (!rc) rc = h5_attr_f64(f, grp, "rel_err", rel);
    if (!rc) rc = h5_attr_i64(f, grp, "empty_clusters", ts.empty);
    if (!rc) rc = h5_attr_f64(f, grp, "bytes_codes", bc);
    if (!rc) rc = h5_attr_f64(f, grp, "bytes_floats", bf);
    if (!rc) rc = h5_attr_f64(f, grp, "train_seconds", train_s);
    if (!rc) rc = h5_attr_i64(f, grp, "recall_users", users);
    if (!rc) rc = h5_attr_f64s(f, grp, "recall_rerank", Rs, PQ_NR);
    if (!rc) rc = h5_attr_f64s(f, grp, "recall_at10", rec, PQ_NR);
    if (!rc) {
        char opq[160] = "";
        int o = 0;
        if (dm_cfg_int(cfg, "pq.opq") > 0) o = snprintf(opq, sizeof opq, ", OPQ %lld rounds", (long long)dm_cfg_int(cfg, "pq.opq"));
        if (cb.qrot)
            snprintf(opq + o, sizeof opq - (size_t)o, ", in the metric of %zu validation states (%d of %zu directions above the floor)", nv, qdirs, D);
        char shape[64];
        if (cb.L > 1) snprintf(shape, sizeof shape, "%d x %d stages x %d", cb.M, cb.L, cb.K);
        else snprintf(shape, sizeof shape, "%d x %d", cb.M, cb.K);
        dm_log("  pq %s: %zu items x %zu -> %s centroids trained on %zu items, %d iterations (last changed %lld)%s, relative error %.4f, "
               "%lld empty clusters, %.1fs",
               src->model, n, D, shape, S, ts.iters, (long long)ts.changed, opq, rel, (long long)ts.empty, train_s);
        dm_log("  pq %s: codes %.2f MiB%s vs float32 %.2f MiB (%.0fx); recall@10 of the exact top 10 over %lld test users: ADC %.4f, "
               "re-ranking the top 100 %.4f, top 1000 %.4f",
               src->model, bc / 1048576.0, cb.K <= PQ_FS_KMAX ? " (4 bits a code, as eval scores them)" : "", bf / 1048576.0, bf / bc, (long long)users, rec[0], rec[1], rec[2]);
    }
    pq_free(&cb);
    free(e);
    free(st);
    free(codes);
    return par_agree(ctx, rc);
}

static int stage_pq(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    DM_CALL(par_agree(ctx, check_pq(cfg)));
    int64_t s = dm_cfg_int(cfg, "pq.seed");
    uint64_t seed = s > 0 ? (uint64_t)s : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x7051, 0);
    h5file f;
    int rc = stage_output_create(sr, PQ_FORMAT, 1, &f);
    if (!rc) rc = h5_attr_i64(&f, "/", "seed", (int64_t)seed);
    for (size_t k = 0; !rc && k < dm_cfg_len(cfg, "pq.models"); k++) rc = quantise(sr, &f, pq_source_find(dm_cfg_str_at(cfg, "pq.models", k)), seed);
    return stage_output_finish(sr, &f, rc);
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_pq_def = {
    .name = "pq",
    .output = "pq.h5",
    .inputs = {"align.h5", "cf.h5", NULL},
    .groups = pq_config_groups,
    .uses = uses_pq,
    .check = check_pq,
    .run = stage_pq,
    .summary = "product-quantise the item latents (codebooks and one-byte codes) into pq.h5",
    .usage = USAGE,
};
