/* stage_stream.c: `dynmm stream`: dynamic incremental alignment under the prequential protocol
 * (DESIGN.md idea 1).
 *
 * The base models (cf.h5, align.h5) are trained on the interactions before the first streaming
 * window (split.protocol = "stream"). For each window w in order:
 *   1. every user's CF state r_u is recomputed by the frozen SASRec from the history before w, and
 *      h_base_u by the frozen aligner's user tower; the window summaries s_i, s_u come from window
 *      w - 1 (and w - 2 for the trend), so nothing of w leaks in;
 *   2. window w's interactions are scored first (each user's items of w are the targets, its
 *      history is excluded, full ranking) by every variant: the static aligner, the static SASRec,
 *      the adapter (EMA weights, residuals of all items computed once per window), its ablations,
 *      and SASRec retrained from scratch on everything before w;
 *   3. then every adapter variant trains on window w (mixed with a reservoir of older windows),
 *      takes its Fisher for EWC, and the reservoir takes window w.
 * The model maths live in src/adapter (adapter_latents.h: RMS norm, balancing, recent taste;
 * adapter_chunks.h: the fixed-point chunk sums); this file runs them window by window, shares the
 * work out among the ranks and writes stream.h5. Users are sharded across ranks for scoring;
 * adapter batches are cut into fixed chunks shared out among the ranks, with one exact
 * (fixed-point) gradient allreduce per step (stream_chunked_sum). The tables r and h_base
 * (states_before shards the users, so a row shares its sgemm calls with other rows at another rank
 * count), the adapters' training and their Fisher are computed in reproducible mode (src/nn/gemm.h:
 * each element of a matrix product in one fixed order, whatever the other rows of the call, the
 * thread count or the CPU; OpenBLAS rounds a row differently with both); e_cf and z_base come from
 * the models' files, the summaries from serial code on every rank. So 1, 2 and 3 ranks at any
 * OMP_NUM_THREADS reach bitwise the same adapted state. The served latents are computed in
 * reproducible mode as well and scored with eval's fixed-order kernel (model_latents_score, or item
 * sharded with ev_score_sharded under stream.item_shard), so the per-user rows are bitwise the same
 * too; only the means, summed over ranks, differ in the last bits.
 *
 * The stage body is a table of contents (stage_stream): stream_load, stream_setup, then per window
 * stream_window_tables, stream_retrain, stream_score, stream_adapt; then stream_user_means,
 * stream_tests, stream_write and stream_free. Every buffer lives in one workspace (stream_ws),
 * allocated once by stream_setup.
 *
 * stream.h5 (format "dynmm-stream" v2; root attribute n_users): /stream/window_start (W + 1),
 *   /prequential/full/<v> (users, ncols)   each user's mean of every metric over its scored windows
 *                                          >= eval_from (NaN: none); on synthetic data also
 *                                          /prequential/full-drifting/<v> and full-stable/<v>
 *                                          (NaN outside the group): `dynmm report` tables them
 *   and per variant v:
 *   /stream/<v>/mean (W, ncols)            window means of every metric (NaN: no scored users)
 *   /stream/<v>/users (W)                  users scored
 *   /stream/<v>/hit10, /ndcg10 (users, W)  per-user values (NaN: no target); kind "rows" (the
 *                                          report leaves them out)
 *   /stream/<v>/mean_drift, /mean_stable   the same means over drifting / stable users (synthetic)
 *   /stream/<v>/train_seconds (W)          adapter update or retraining time per window
 *   /stream/<v>/weights (nparams)          adapter variants: the served weights (EMA; raw without
 *                                          it), tensors in adapter_tensor_info order
 *   /serve/r (users, C), /serve/static/h (users, d)   the last window's SASRec states and h_base
 *   /serve/<v>/h (users, d), /serve/<v>/z (items, d) adapter variants: the latents served in the
 *                                          last window (attribute /serve window), in the aligner's
 *                                          units: what `dynmm prompt` reads with prompt.latents =
 *                                          "stream"
 *   /serve_prev/...                        the same of the window before the last (with two windows
 *                                          or more): prompt.train_latents = "stream" trains on it
 *   attributes: overall (ncols) = means over the scored (user, window) pairs of windows >=
 *   stream.eval_from, and serve/score timings; per variant, over [all, drifting, stable] users
 *   (NaN where not defined): user_ndcg10 = the mean over users of each user's mean NDCG@10 over
 *   its scored windows >= eval_from, vs_static_diff, vs_static_p (paired Wilcoxon against static,
 *   two-sided, zero differences dropped), vs_static_p_holm (Holm over the variants of the group),
 *   users_tested.
 */
#include "align_io.h"
#include "cands.h"
#include "cf_sasrec.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "evalshard.h"
#include "pq_model.h"
#include "stage.h"

#include "../src/adapter/adapter.h"
#include "../src/adapter/adapter_chunks.h"
#include "../src/adapter/adapter_latents.h"
#include "../src/align/align.h"
#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"
#include "../src/nn/gemm.h"
#include "../src/stats/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_FORMAT "dynmm-stream"


static const char USAGE[] =
    "usage: dynmm stream CONFIG.cfg [--set group.key=value ...]\n\n"
    "Runs the prequential protocol over the dataset's streaming windows (window.*): each window is\n"
    "scored first with the state adapted through the previous one, then the online adapter trains on\n"
    "it. Needs cf.h5 and align.h5 trained with split.protocol = \"stream\" (the base models see only\n"
    "the interactions before the first window). Variants: stream.variants. Writes <run.dir>/stream.h5\n"
    "with per-window and per-user metrics.\n";

static const char *const stream_config_groups[] = {"stream", "adapter", "window", "eval.ks", "eval.ties", "sasrec", "split.protocol",
                                                    /* adapter@pq's codebooks and re-ranking */
                                                    "pq.m", "pq.k", "pq.stages", "pq.iters", "pq.opq", "pq.opq_iters", "pq.metric", "pq.query_floor", "pq.seed", "pq.sample", "pq.rerank", NULL};

enum { V_STATIC, V_SASREC, V_ADAPTER, V_NO_GATE, V_NO_EMA, V_NO_REPLAY, V_NO_KL, V_NO_EWC, V_NO_STAB, V_RETRAINED, V_ADAPTER_PQ, V_N };
static const char *const vnames[V_N] = {"static", "sasrec", "adapter", "no_gate", "no_ema", "no_replay", "no_kl", "no_ewc", "no_stab", "retrained", "adapter@pq"};
#define V_LAST_ADAPTER V_NO_STAB
#define IS_ADAPTER(v) ((v) >= V_ADAPTER && (v) <= V_LAST_ADAPTER)

/* the variant named `name`, -1 for none */
static int variant_index(const char *name)
{
    for (int q = 0; q < V_N; q++)
        if (!strcmp(name, vnames[q])) return q;
    return -1;
}

/* r (n_users, C): SASRec states from each user's interactions with window < w (all users, every
 * rank; computed on user blocks and gathered) */
static int states_before(par_ctx *ctx, sasrec *m, sasrec_acts *a, const dm_dataset *d, int64_t w, float *r)
{
    size_t lo, hi, C = (size_t)m->cfg.C;
    int T = m->cfg.T, mb = m->cfg.max_batch;
    dm_shard_even(d->n_users, ctx->size, ctx->rank, &lo, &hi);
    int32_t *seq = calloc((size_t)mb * (size_t)T, sizeof *seq), *tmp = malloc((d->n_inter + 1) * sizeof *tmp);
    float *loc = malloc((hi - lo + 1) * C * sizeof *loc);
    int rc = (!seq || !tmp || !loc) ? DM_ERR(DM_ENOMEM, "out of memory") : DM_OK;
    for (size_t u0 = lo; u0 < hi && !rc; u0 += (size_t)mb) {
        int nb = (int)(hi - u0 < (size_t)mb ? hi - u0 : (size_t)mb);
        memset(seq, 0, (size_t)nb * (size_t)T * sizeof *seq);
        for (int b = 0; b < nb; b++) {
            size_t u = u0 + (size_t)b, n = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                if (d->window[j] < w) tmp[n++] = d->item[j];
            size_t k = n < (size_t)T ? n : (size_t)T;
            for (size_t j = 0; j < k; j++) seq[(size_t)b * (size_t)T + (size_t)T - k + j] = tmp[n - k + j] + 1;
        }
        rc = sasrec_user_states(m, a, seq, nb, loc + (u0 - lo) * C);
    }
    rc = par_agree(ctx, rc);
    if (!rc) {
        void *all = NULL;
        size_t *cnt = NULL;
        rc = par_allgatherv(ctx, loc, (hi - lo) * C * sizeof(float), &all, &cnt);
        if (!rc) memcpy(r, all, d->n_users * C * sizeof(float));
        free(all);
        free(cnt);
    }
    free(seq);
    free(tmp);
    free(loc);
    return rc;
}

/* The gradient (what = ADAPTER_CHUNKS_GRAD, into m->grads_mem) or Fisher sum (into m->fisher_acc)
 * of a global batch of N examples, bitwise the same at any rank count: this rank's share of the
 * chunks (adapter_chunks.h) in fixed point, one exact integer allreduce. fix: (nparams) scratch. */
static int stream_chunked_sum(par_ctx *ctx, adapter *m, adapter_acts *a, const adapter_tables *t, const int32_t *U, const int32_t *P,
                              const int32_t *Ng, size_t N, int what, int64_t *fix)
{
    size_t clo, chi;
    dm_shard_even(adapter_chunks_count(N), ctx->size, ctx->rank, &clo, &chi);
    int rc = adapter_chunks_sum(m, a, t, U, P, Ng, N, clo, chi, what, fix);
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_allreduce_sum_i64(ctx, fix, m->nparams);
    if (!rc) adapter_chunks_fix_get(fix, m->nparams, what == ADAPTER_CHUNKS_FISHER ? m->fisher_acc : m->grads_mem);
    return rc;
}

typedef struct {
    int on;
    adapter m;
    adapter_acts a;
    float *z;       /* (n_items, d) served item latents */
    float *h;       /* (n_users, d) served user latents */
} variant_adapter;

/* The stage's workspace: the inputs, the adapters, the window's tables and every result buffer.
 * stream_setup allocates it once; stream_free releases everything (also after a failure). Shapes:
 * nu users, ni items, W windows, C the SASRec width, dd the aligner's latent width, this rank's
 * users [lo, hi), nl = hi - lo, nc metric columns. */
typedef struct {
    par_ctx *ctx;
    const dm_cfg *cfg;
    const char *cpath;          /* cf.h5 */
    int want[V_N];              /* stream.variants */
    /* ---- inputs (stream_load) ---- */
    dm_dataset d;
    size_t nu, ni, W, C, dd;
    sasrec sm;                  /* the frozen SASRec */
    sasrec_acts sa;
    align_model am;             /* the frozen aligner */
    align_acts aa;
    float *zb;                  /* (ni, dd) z_base */
    float *e_cf;                /* (ni, C) SASRec item table */
    /* ---- adapters (stream_setup) ---- */
    adapter_config base;        /* adapter.*; each variant a copy with its switch off */
    adapter_summary_config scfg;
    int ds_item, ds_user;       /* summary widths; s_u = [ds_sum summary columns ; dd taste columns] */
    int ds_sum, taste;
    int G, steps, S;            /* examples per step, steps per window, Fisher samples */
    uint64_t seed;
    int replay_on;
    double mix;
    variant_adapter va[V_N];
    adapter_reservoir buf;
    /* ---- evaluation ---- */
    metrics_spec spec;
    int have_spec;
    size_t nc, ch, cn;          /* columns; those of hit@k and ndcg@k (k = 10, or the first cutoff) */
    int64_t kcut;
    long eval_from;
    size_t lo, hi;
    int shard;                  /* stream.item_shard: score against this rank's items [i0, i1) only */
    size_t i0, i1;
    /* ---- the window's tables (stream_window_tables) ---- */
    int8_t *roles;              /* (n_inter) train before w, test in w, 3 after */
    float *r, *hb;              /* (nu, C) states, (nu, dd) h_base */
    float *hs, *zs;             /* (nu, dd) h_base bal, (ni, dd) z_base / bal */
    double bal, rz_s;           /* the balance factor, RMS norm of zs (both set at window 0) */
    float *s_item;              /* (ni, ds_item) */
    float *s_user;              /* (nu, ds_user) */
    float *s_sum;               /* (nu, ds_sum) */
    adapter_tables tb;          /* views of the above */
    /* ---- the retrained reference (stream_retrain) ---- */
    sasrec rm;
    sasrec_acts ra;
    int have_rt;
    float *r_rt, *e_rt;         /* (nu, C), (ni, C) */
    long rt_every, rt_epochs;
    /* ---- training scratch (stream_adapt) ---- */
    int32_t *plan_u, *plan_p;   /* (max(G, S)) */
    int32_t *plan_n;            /* (max(G, S), K) */
    int64_t *fix;               /* (largest nparams) */
    int32_t *my_users;          /* (nl) lo..hi-1 */
    /* ---- results ---- */
    double *rows, *dmask_rows;  /* (nl, nc) */
    double *mean_all, *mean_dr, *mean_st; /* (V_N, W, nc) */
    double *acc;                /* (V_N, nc + 1) sums over the pairs of windows >= eval_from, count */
    double *usum;               /* (V_N, nl, nc + 1) the same per user */
    double *um;                 /* (nu, V_N) per-user mean NDCG@10 (stream_user_means) */
    int64_t *users;             /* (V_N, W) users scored */
    float *u_hit, *u_ndcg;      /* (V_N, nl, W) */
    double *tsec, *score_sec;   /* (V_N, W) */
    double *serve_sec;          /* (W) */
    double *pq_err;             /* (W) adapter@pq: the relative quantisation error of each window's codes */
    /* ---- the window before the last as it was served (/serve_prev): copies taken in stream_score ---- */
    float *pr, *phb;            /* (nu, C) states, (nu, dd) h_base */
    float *pz[V_N], *ph[V_N];   /* adapter variants: (ni, dd) item latents, (nu, dd) user latents (rows lo..hi) */
    int have_prev;
    double tst[V_N][4][3];      /* [v][mean, diff, p, p_holm][group]; NaN = not tested */
    int64_t tst_n[V_N][3];
} stream_ws;

/* adapter.features as a mask of ADAPTER_FEAT_* (DM_ECONFIG for an unknown or repeated feature) */
static int stream_features(const dm_cfg *cfg, unsigned *feat)
{
    size_t nf = dm_cfg_len(cfg, "adapter.features");
    const char *fn[8];
    if (nf > 8) nf = 8; /* a ninth name repeats one of the four: refused within the first eight */
    for (size_t k = 0; k < nf; k++) fn[k] = dm_cfg_str_at(cfg, "adapter.features", k);
    return adapter_parse_features(fn, nf, feat);
}

static int check_stream(const dm_cfg *cfg)
{
    char w[256];
    if (strcmp(dm_cfg_str(cfg, "split.protocol"), "stream")) {
        DM_ERR(DM_ECONFIG, "%s = \"%s\": the streaming protocol needs base models trained before the stream",
               dm_cfg_where(cfg, "split.protocol", w, sizeof w), dm_cfg_str(cfg, "split.protocol"));
        DM_HINT("set split.protocol = \"stream\" and rerun train-cf and align (they then train on the interactions before window 0)");
        return DM_ECONFIG;
    }
    for (size_t k = 0; k < dm_cfg_len(cfg, "stream.variants"); k++) {
        const char *v = dm_cfg_str_at(cfg, "stream.variants", k);
        if (variant_index(v) < 0) {
            DM_ERR(DM_ECONFIG, "%s: unknown variant '%s'", dm_cfg_where(cfg, "stream.variants", w, sizeof w), v);
            DM_HINT("variants: static, sasrec, adapter, no_gate, no_ema, no_replay, no_kl, no_ewc, no_stab, retrained, adapter@pq");
            return DM_ECONFIG;
        }
        if (!strcmp(v, "adapter@pq")) {
            int with = 0;
            for (size_t j = 0; j < dm_cfg_len(cfg, "stream.variants"); j++) with |= !strcmp(dm_cfg_str_at(cfg, "stream.variants", j), "adapter");
            if (!with) {
                DM_ERR(DM_ECONFIG, "%s: 'adapter@pq' quantises the latents the adapter serves, but 'adapter' is not listed",
                       dm_cfg_where(cfg, "stream.variants", w, sizeof w));
                DM_HINT("add 'adapter' to stream.variants");
                return DM_ECONFIG;
            }
            DM_CALL(pq_check_k(cfg));
        }
    }
    unsigned feat;
    return stream_features(cfg, &feat);
}

/* ---- load: the dataset and the frozen models ---- */

static int stream_load(stream_ws *ws, stage_run *sr)
{
    par_ctx *ctx = ws->ctx;
    const char *dpath = stage_input(sr, "dataset.h5"), *apath = stage_input(sr, "align.h5");
    ws->cpath = stage_input(sr, "cf.h5");
    DM_CALL(par_agree(ctx, check_stream(ws->cfg)));
    for (size_t k = 0; k < dm_cfg_len(ws->cfg, "stream.variants"); k++) ws->want[variant_index(dm_cfg_str_at(ws->cfg, "stream.variants", k))] = 1;
    DM_CALL(ds_read(ctx, dpath, &ws->d));
    ws->nu = ws->d.n_users, ws->ni = ws->d.n_items, ws->W = ws->d.n_windows;
    int rc = ws->W < 2 ? DM_ERR(DM_ECONFIG, "the dataset has %zu streaming windows; the protocol needs at least 2", ws->W) : DM_OK;
    size_t nzi = 0;
    if (!rc) rc = cf_sasrec_load(ctx, ws->cpath, ws->ni, 256, &ws->sm, &ws->sa);
    if (!rc) rc = align_load(ctx, apath, 4096, &ws->am, &ws->aa, &ws->zb, &nzi);
    if (!rc && nzi != ws->ni) rc = DM_ERR(DM_EFORMAT, "'%s' has %zu items, the dataset %zu", apath, nzi, ws->ni);
    ws->C = (size_t)ws->sm.cfg.C, ws->dd = (size_t)ws->am.cfg.d;
    if (!rc) {
        ws->e_cf = malloc(ws->ni * ws->C * sizeof *ws->e_cf + 4);
        if (!ws->e_cf) rc = DM_ERR(DM_ENOMEM, "out of memory");
        else sasrec_item_table(&ws->sm, ws->e_cf);
    }
    return par_agree(ctx, rc);
}

/* ---- setup: the adapter variants, the metrics and every buffer ---- */

/* ws->base and the training settings from adapter.* */
static int stream_adapter_config(stream_ws *ws)
{
    const dm_cfg *cfg = ws->cfg;
    unsigned feat = 0;
    int rc = stream_features(cfg, &feat);
    adapter_summary_dims(feat, &ws->ds_item, &ws->ds_user);
    /* the recent-taste columns follow the summary columns of s_u */
    ws->ds_sum = ws->ds_user, ws->taste = dm_cfg_bool(cfg, "adapter.recent_taste");
    if (ws->taste) ws->ds_user += (int)ws->dd;
    adapter_config *b = &ws->base;
    adapter_config_from(cfg, b);
    b->n_items = (int)ws->ni;
    b->n_users = (int)ws->nu;
    b->d_cf = (int)ws->C;
    b->d = (int)ws->dd;
    b->ds_item = ws->ds_item;
    b->ds_user = ws->ds_user;
    b->max_batch = ADAPTER_CHUNK;
    ws->G = (int)dm_cfg_int(cfg, "adapter.batch"), ws->steps = (int)dm_cfg_int(cfg, "adapter.steps");
    ws->S = (int)dm_cfg_int(cfg, "adapter.fisher_samples");
    long long sd = dm_cfg_int(cfg, "adapter.seed");
    ws->seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xADA, 0);
    ws->replay_on = dm_cfg_bool(cfg, "adapter.replay");
    ws->mix = dm_cfg_float(cfg, "adapter.replay_mix");
    ws->scfg = (adapter_summary_config){feat, (int)dm_cfg_int(cfg, "adapter.cooc_recent"), dm_cfg_float(cfg, "adapter.recency_tau") * 3600e3};
    return rc;
}

/* one adapter per wanted variant, each the base with its part switched off, and the reservoir */
static int stream_variants(stream_ws *ws)
{
    int rc = DM_OK;
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER && !rc; v++) {
        if (!ws->want[v]) continue;
        variant_adapter *va = &ws->va[v];
        adapter_config c = ws->base;
        if (v == V_NO_GATE) c.gate = 0;
        if (v == V_NO_EMA) c.ema = 0;
        if (v == V_NO_KL) c.kl = 0;
        if (v == V_NO_EWC) c.ewc = 0;
        if (v == V_NO_STAB) c.kl = 0, c.ewc = 0;
        rc = adapter_init(&va->m, &c);
        if (!rc) rc = adapter_acts_init(&va->a, &c);
        if (!rc) {
            adapter_init_weights(&va->m, ws->seed);
            va->z = malloc(ws->ni * ws->dd * sizeof(float) + 4);
            va->h = malloc(ws->nu * ws->dd * sizeof(float) + 4);
            if (!va->z || !va->h) rc = DM_ERR(DM_ENOMEM, "out of memory");
            va->on = 1;
        }
    }
    if (!rc) rc = adapter_reservoir_init(&ws->buf, (size_t)dm_cfg_int(ws->cfg, "adapter.replay_capacity"), ws->seed ^ 0xB0F);
    return rc;
}

/* calloc of n (at least 1) elements of sz bytes; clears *ok on failure */
static void *ws_calloc(size_t n, size_t sz, int *ok)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) *ok = 0;
    return p;
}

/* the tables, the result buffers and the training scratch */
static int stream_buffers(stream_ws *ws)
{
    size_t nu = ws->nu, ni = ws->ni, W = ws->W, C = ws->C, dd = ws->dd, nc = ws->nc, nl = ws->hi - ws->lo, V = V_N;
    size_t GS = (size_t)(ws->G > ws->S ? ws->G : ws->S), np_max = 0;
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER; v++)
        if (ws->va[v].on && ws->va[v].m.nparams > np_max) np_max = ws->va[v].m.nparams;
    int ok = 1;
    ws->r = ws_calloc(nu * C, sizeof(float), &ok), ws->hb = ws_calloc(nu * dd, sizeof(float), &ok);
    ws->hs = ws_calloc(nu * dd, sizeof(float), &ok), ws->zs = ws_calloc(ni * dd, sizeof(float), &ok);
    ws->s_item = ws_calloc(ni * (size_t)(ws->ds_item ? ws->ds_item : 1), sizeof(float), &ok);
    ws->s_user = ws_calloc(nu * (size_t)(ws->ds_user ? ws->ds_user : 1), sizeof(float), &ok);
    ws->s_sum = ws_calloc(nu * (size_t)(ws->ds_sum ? ws->ds_sum : 1), sizeof(float), &ok);
    ws->roles = ws_calloc(ws->d.n_inter, 1, &ok);
    ws->r_rt = ws_calloc(nu * C, sizeof(float), &ok), ws->e_rt = ws_calloc(ni * C, sizeof(float), &ok);
    ws->plan_u = ws_calloc(GS, sizeof(int32_t), &ok), ws->plan_p = ws_calloc(GS, sizeof(int32_t), &ok);
    ws->plan_n = ws_calloc(GS * (size_t)ws->base.negatives, sizeof(int32_t), &ok);
    ws->fix = ws_calloc(np_max, sizeof(int64_t), &ok);
    ws->my_users = ws_calloc(nl, sizeof(int32_t), &ok);
    ws->rows = ws_calloc(nl * nc, sizeof(double), &ok), ws->dmask_rows = ws_calloc(nl * nc, sizeof(double), &ok);
    ws->mean_all = ws_calloc(V * W * nc, sizeof(double), &ok), ws->mean_dr = ws_calloc(V * W * nc, sizeof(double), &ok);
    ws->mean_st = ws_calloc(V * W * nc, sizeof(double), &ok), ws->acc = ws_calloc(V * (nc + 1), sizeof(double), &ok);
    ws->usum = ws_calloc(V * nl * (nc + 1), sizeof(double), &ok);
    ws->users = ws_calloc(V * W, sizeof(int64_t), &ok);
    ws->u_hit = ws_calloc(V * nl * W, sizeof(float), &ok), ws->u_ndcg = ws_calloc(V * nl * W, sizeof(float), &ok);
    ws->tsec = ws_calloc(V * W, sizeof(double), &ok), ws->score_sec = ws_calloc(V * W, sizeof(double), &ok);
    ws->serve_sec = ws_calloc(W, sizeof(double), &ok);
    ws->pq_err = ws_calloc(W, sizeof(double), &ok);
    if (!ok) return DM_ERR(DM_ENOMEM, "out of memory for the streaming protocol");
    for (size_t u = ws->lo; u < ws->hi; u++) ws->my_users[u - ws->lo] = (int32_t)u;
    ws->tb = (adapter_tables){ws->e_cf, ws->zs, ws->ds_item ? ws->s_item : NULL, ws->r, ws->hs, ws->ds_user ? ws->s_user : NULL};
    return DM_OK;
}

/* epochs of the retrained SASRec: stream.retrain_epochs, or as long as the base model trained (its
 * selected epoch). Collective. */
static int stream_retrain_epochs(stream_ws *ws)
{
    const dm_cfg *cfg = ws->cfg;
    ws->rt_every = (long)dm_cfg_int(cfg, "stream.retrain_every");
    ws->rt_epochs = (long)dm_cfg_int(cfg, "stream.retrain_epochs");
    if (!ws->want[V_RETRAINED] || ws->rt_epochs != 0) return DM_OK;
    h5file cf;
    int64_t be = 0;
    int rc = par_agree(ws->ctx, h5_open(ws->ctx, ws->cpath, &cf));
    if (!rc) {
        rc = h5_get_attr_i64(&cf, "/sasrec", "best_epoch", &be);
        h5_close(&cf);
    }
    rc = par_agree(ws->ctx, rc);
    ws->rt_epochs = be > 0 ? (long)be : (long)dm_cfg_int(cfg, "sasrec.epochs");
    return rc;
}

static int stream_setup(stream_ws *ws)
{
    int rc = stream_adapter_config(ws);
    if (!rc) rc = stream_variants(ws);
    if (!rc) rc = ev_spec_config(ws->cfg, &ws->spec);
    ws->have_spec = !rc;
    if (!rc) {
        ws->nc = ws->spec.ncols;
        ws->kcut = ev_cols_at10(&ws->spec, &ws->ch, &ws->cn);
        ws->eval_from = (long)dm_cfg_int(ws->cfg, "stream.eval_from");
        dm_shard_even(ws->nu, ws->ctx->size, ws->ctx->rank, &ws->lo, &ws->hi);
        rc = stream_buffers(ws);
    }
    rc = par_agree(ws->ctx, rc);
    if (!rc) {
        /* the wider of the tables scored (SASRec's or the aligner's) decides, for every variant */
        size_t Cw = ws->C > ws->dd ? ws->C : ws->dd;
        double tmib, bmib;
        ws->shard = ev_item_shard(ws->ctx, ws->cfg, "stream", ws->ni, Cw, &tmib, &bmib);
        dm_shard_even(ws->ni, ws->ctx->size, ws->ctx->rank, &ws->i0, &ws->i1);
        if (ws->shard)
            dm_log("  stream: item tables %zu x %zu (%.3g MiB) scored sharded over %d ranks (stream.item_shard %s, memory %.4g MiB "
                   "per rank)",
                   ws->ni, Cw, tmib, ws->ctx->size, dm_cfg_str(ws->cfg, "stream.item_shard"), bmib);
    }
    if (!rc) rc = stream_retrain_epochs(ws);
    if (!rc)
        dm_log("  stream: %zu windows, %zu users, %zu items; adapter d_cf=%zu d=%zu summaries %d/%d, %d steps x %d per window", ws->W,
               ws->nu, ws->ni, ws->C, ws->dd, ws->ds_item, ws->ds_user, ws->steps, ws->G);
    return rc;
}

/* ---- window w, step 1: states, base latents, summaries of the previous window ---- */

/* the adapters work on balanced copies of the base latents (adapter_latents.h): h c and z / c,
 * with c chosen at window 0 so that both sides have the same RMS norm (scores unchanged) */
static void stream_balance(stream_ws *ws, size_t w)
{
    size_t ni = ws->ni, nu = ws->nu, dd = ws->dd;
    if (w == 0) {
        double rz = adapter_latents_rms(ws->zb, ni, dd), rh = adapter_latents_rms(ws->hb, nu, dd);
        ws->bal = adapter_latents_balance(rz, rh);
        adapter_latents_unscale(ws->zb, ni * dd, ws->bal, ws->zs);
        dm_log("  stream: base latents balanced (users x %.4g, items / %.4g: RMS norms %.4g and %.4g become %.4g)", ws->bal, ws->bal, rh, rz,
               sqrt(rh * rz));
    }
    adapter_latents_scale(ws->hb, nu * dd, ws->bal, ws->hs);
}

/* s_item, and s_u = [summary columns ; the recent taste (time-decayed mean of the balanced z_base
 * over the user's items before w)], from window w - 1 (and w - 2 for the trend) */
static int stream_summaries(stream_ws *ws, size_t w)
{
    adapter_window W1, W2;
    memset(&W1, 0, sizeof W1);
    memset(&W2, 0, sizeof W2);
    int rc = adapter_window_gather(&ws->d, (int64_t)w - 1, &W1);
    if (!rc) rc = adapter_window_gather(&ws->d, (int64_t)w - 2, &W2);
    if (!rc)
        rc = adapter_summaries(&ws->scfg, (int)ws->nu, (int)ws->ni, &W1.ev, &W2.ev, W1.t_begin, ws->d.window_start[w], ws->s_item, ws->s_sum);
    if (!rc) {
        size_t ds_user = (size_t)ws->ds_user, ds_sum = (size_t)ws->ds_sum;
        for (size_t u = 0; u < ws->nu; u++) memcpy(ws->s_user + u * ds_user, ws->s_sum + u * ds_sum, ds_sum * sizeof(float));
        if (ws->taste)
            adapter_latents_taste(&ws->d, (int64_t)w, adapter_latents_tau(&ws->d, (int64_t)w, ws->scfg.tau_ms), ws->zs, ws->dd,
                                  ws->s_user + ds_sum, ds_user);
    }
    adapter_window_free(&W1);
    adapter_window_free(&W2);
    return rc;
}

static int stream_window_tables(stream_ws *ws, size_t w)
{
    dm_dataset *d = &ws->d;
    for (size_t i = 0; i < d->n_inter; i++)
        ws->roles[i] = d->window[i] < (int32_t)w ? DM_TRAIN : (d->window[i] == (int32_t)w ? DM_TEST : 3);
    nn_set_reproducible(1); /* r and h_base feed the adapters: rank-count independent */
    int rc = states_before(ws->ctx, &ws->sm, &ws->sa, d, (int64_t)w, ws->r);
    if (!rc) rc = align_user_latents(&ws->am, &ws->aa, ws->r, (int)ws->nu, ws->hb);
    nn_set_reproducible(0);
    if (!rc) stream_balance(ws, w);
    if (!rc) rc = stream_summaries(ws, w);
    /* adapter.sigma is in units of the RMS norm of each side's (balanced) base latents
     * (identical on every rank: the tables are) */
    if (!rc) {
        if (w == 0) ws->rz_s = adapter_latents_rms(ws->zs, ws->ni, ws->dd); /* zs is fixed; h_base moves with the window */
        double rz = ws->rz_s, rh = adapter_latents_rms(ws->hs, ws->nu, ws->dd);
        for (int v = V_ADAPTER; v <= V_LAST_ADAPTER; v++) {
            if (!ws->va[v].on) continue;
            ws->va[v].m.cfg.sigma = (float)(ws->base.sigma * (rz > 0 ? rz : 1.0));
            ws->va[v].m.cfg.sigma_user = (float)(ws->base.sigma * (rh > 0 ? rh : 1.0));
        }
        if (w == 0)
            dm_log("  stream: KL scales sigma %.4g (items, RMS norm %.4g) and %.4g (users, RMS norm %.4g)", ws->base.sigma * rz, rz,
                   ws->base.sigma * rh, rh);
    }
    return par_agree(ws->ctx, rc);
}

/* the retrained reference: SASRec from scratch on everything before w (every stream.retrain_every
 * windows), and its states */
static int stream_retrain(stream_ws *ws, size_t w)
{
    if (!ws->want[V_RETRAINED]) return DM_OK;
    int rc = DM_OK;
    if (!ws->have_rt || (long)w % ws->rt_every == 0) {
        double tr = dm_wtime();
        if (ws->have_rt) {
            sasrec_acts_free(&ws->ra);
            sasrec_free(&ws->rm);
            ws->have_rt = 0;
        }
        rc = cf_sasrec_retrain(ws->ctx, ws->cfg, &ws->d, ws->roles, ws->rt_epochs, &ws->rm, &ws->ra);
        if (!rc) {
            ws->have_rt = 1;
            sasrec_item_table(&ws->rm, ws->e_rt);
        }
        ws->tsec[V_RETRAINED * ws->W + w] = dm_wtime() - tr;
    }
    if (!rc) rc = states_before(ws->ctx, &ws->rm, &ws->ra, &ws->d, (int64_t)w, ws->r_rt);
    return par_agree(ws->ctx, rc);
}

/* ---- window w, step 2: serve and score ---- */

/* variant v's rows of window w into the window means, the per-user values and the sums over the
 * windows >= eval_from. Collective (ev_mean). */
static int stream_record(stream_ws *ws, int v, size_t w)
{
    size_t W = ws->W, nc = ws->nc, lo = ws->lo, nl = ws->hi - ws->lo;
    const double *rows = ws->rows;
    int64_t cnt = 0;
    int rc = ev_mean(ws->ctx, &ws->spec, rows, nl, ws->mean_all + ((size_t)v * W + w) * nc, &cnt);
    ws->users[(size_t)v * W + w] = cnt;
    for (size_t k = 0; k < nl && !rc; k++) {
        const double *rw = rows + k * nc;
        ws->u_hit[((size_t)v * nl + k) * W + w] = (float)rw[ws->ch];
        ws->u_ndcg[((size_t)v * nl + k) * W + w] = (float)rw[ws->cn];
        if ((long)w >= ws->eval_from && !isnan(rw[0])) {
            double *a = ws->acc + (size_t)v * (nc + 1), *us = ws->usum + ((size_t)v * nl + k) * (nc + 1);
            for (size_t c = 0; c < nc; c++) a[c] += rw[c];
            a[nc] += 1.0;
            for (size_t c = 0; c < nc; c++) us[c] += rw[c];
            us[nc] += 1.0;
        }
    }
    for (int g = 0; g < 2 && !rc && ws->d.drift_user; g++) { /* g = 0 drifting users, 1 stable */
        for (size_t u = lo; u < ws->hi; u++)
            for (size_t c = 0; c < nc; c++)
                ws->dmask_rows[(u - lo) * nc + c] = (ws->d.drift_user[u] == (g == 0)) ? rows[(u - lo) * nc + c] : NAN;
        int64_t c2;
        rc = ev_mean(ws->ctx, &ws->spec, ws->dmask_rows, nl, (g == 0 ? ws->mean_dr : ws->mean_st) + ((size_t)v * W + w) * nc, &c2);
    }
    return rc;
}

/* h (nu, dd): every rank's rows [lo, hi) to every rank */
static int gather_users(stream_ws *ws, float *h)
{
    size_t dd = ws->dd, *counts = NULL;
    void *all = NULL;
    int rc = par_allgatherv(ws->ctx, h + ws->lo * dd, (ws->hi - ws->lo) * dd * sizeof *h, &all, &counts);
    if (!rc) memcpy(h, all, ws->nu * dd * sizeof *h);
    free(all);
    free(counts);
    return rc;
}

/* adapter@pq: codebooks of the latents the adapter serves in window w (pq.m x pq.stages x pq.k, trained data
 * parallel, bitwise at any rank count) and every item's codes, as a scorer over them (re-ranking
 * pq.rerank items with the float latents, as eval's <model>@pq); the training's seconds are the
 * variant's train_seconds. Collective. */
static int stream_quantise(stream_ws *ws, size_t w, void **out)
{
    const dm_cfg *cfg = ws->cfg;
    const variant_adapter *va = &ws->va[V_ADAPTER];
    double t0 = dm_wtime();
    pq_codebook cb;
    memset(&cb, 0, sizeof cb);
    int rc = par_agree(ws->ctx, pq_init_rq(&cb, ws->dd, (int)dm_cfg_int(cfg, "pq.m"), (int)dm_cfg_int(cfg, "pq.stages"), (int)dm_cfg_int(cfg, "pq.k"),
                                          "stream: adapter@pq"));
    if (rc) {
        DM_HINT("the adapter's latents have %zu dimensions (align.dim): pq.m must divide it", ws->dd);
        return rc;
    }
    int64_t ps = dm_cfg_int(cfg, "pq.seed");
    uint64_t seed = ps > 0 ? (uint64_t)ps : dm_rng_key(ws->seed, 0x7051, 0);
    uint8_t *codes = NULL;
    pq_train_stats ts;
    size_t S = 0;
    int qdirs = 0; /* pq.metric = "query": the metric of the user latents this window serves (this rank's) */
    rc = pq_fit_table(ws->ctx, cfg, va->z, ws->ni, va->h + ws->lo * ws->dd, ws->hi - ws->lo, ws->nu, seed, &cb, &codes, &ts, &S, &qdirs);
    ws->pq_err[w] = ts.norm > 0 ? ts.err / ts.norm : 0.0;
    model_latents lat = {ws->ni, ws->dd, va->z, {NULL, NULL, va->h}};
    if (!rc) rc = pq_scorer_new(&cb, codes, &lat, (size_t)dm_cfg_int(cfg, "pq.rerank"), ws->d.n_inter, out);
    else {
        pq_free(&cb);
        free(codes);
    }
    ws->tsec[(size_t)V_ADAPTER_PQ * ws->W + w] = dm_wtime() - t0;
    return par_agree(ws->ctx, rc);
}

/* The window before the last as it was served: copies of the states, h_base and each adapter
 * variant's served latents (/serve_prev, what prompt.train_latents = "stream" trains on). */
static int stream_keep_prev(stream_ws *ws)
{
    size_t nu = ws->nu, ni = ws->ni, dd = ws->dd;
    ws->pr = malloc((nu * ws->C + 1) * sizeof *ws->pr);
    ws->phb = malloc((nu * dd + 1) * sizeof *ws->phb);
    int ok = ws->pr && ws->phb;
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER && ok; v++) {
        if (!ws->va[v].on) continue;
        ws->pz[v] = malloc((ni * dd + 1) * sizeof *ws->pz[v]);
        ws->ph[v] = malloc((nu * dd + 1) * sizeof *ws->ph[v]);
        ok = ws->pz[v] && ws->ph[v];
        if (ok) memcpy(ws->pz[v], ws->va[v].z, ni * dd * sizeof *ws->pz[v]);
        if (ok) memcpy(ws->ph[v], ws->va[v].h, nu * dd * sizeof *ws->ph[v]);
    }
    if (!ok) return DM_ERR(DM_ENOMEM, "out of memory");
    memcpy(ws->pr, ws->r, nu * ws->C * sizeof *ws->pr);
    memcpy(ws->phb, ws->hb, nu * dd * sizeof *ws->phb);
    ws->have_prev = 1;
    return DM_OK;
}

static int stream_score(stream_ws *ws, size_t w)
{
    size_t lo = ws->lo, hi = ws->hi, ni = ws->ni, dd = ws->dd;
    int rc = DM_OK;
    /* the adapters' served latents: every item, this rank's users (only they are scored here) */
    double ts = dm_wtime();
    nn_set_reproducible(1); /* served latents: the same bits at any rank and thread count */
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER && !rc; v++) {
        variant_adapter *va = &ws->va[v];
        if (!va->on) continue;
        rc = adapter_item_latents(&va->m, &va->a, &ws->tb, 1, NULL, (int)ni, va->z, NULL);
        if (!rc && hi > lo) rc = adapter_user_latents(&va->m, &va->a, &ws->tb, 1, ws->my_users, (int)(hi - lo), va->h + lo * dd, NULL);
    }
    nn_set_reproducible(0);
    ws->serve_sec[w] = dm_wtime() - ts;
    ev_split s = {&ws->d, ws->roles, DM_TEST, NULL};
    void *pqs = NULL;
    if (!rc && ws->want[V_ADAPTER_PQ]) rc = stream_quantise(ws, w, &pqs);
    for (int v = 0; v < V_N && !rc; v++) {
        if (!ws->want[v]) continue;
        if (v == V_ADAPTER_PQ) { /* the adapter's served latents, product-quantised this window (whole table) */
            double t1 = dm_wtime();
            rc = par_agree(ws->ctx, ev_score_users(&s, &ws->spec, "full", pq_scorer_score, pqs, lo, hi, 512, ws->rows));
            ws->score_sec[(size_t)v * ws->W + w] = dm_wtime() - t1;
            if (!rc) rc = stream_record(ws, v, w);
            continue;
        }
        /* eval's dot-product scoring (model_latents_score's fixed-order kernel): the same rows
         * whatever the rank count, and sharded or not */
        model_latents ml = {ni, dd, ws->zb, {NULL, NULL, ws->hb}};
        if (v == V_SASREC) ml = (model_latents){ni, ws->C, ws->e_cf, {NULL, NULL, ws->r}};
        else if (v == V_RETRAINED) ml = (model_latents){ni, ws->C, ws->e_rt, {NULL, NULL, ws->r_rt}};
        else if (IS_ADAPTER(v)) ml = (model_latents){ni, dd, ws->va[v].z, {NULL, NULL, ws->va[v].h}};
        double t1 = dm_wtime();
        if (ws->shard && IS_ADAPTER(v)) rc = par_agree(ws->ctx, gather_users(ws, ws->va[v].h)); /* every user's state */
        if (rc) break;
        if (ws->shard) {
            ev_shard_latents sl = {ni, ml.C, ws->i0, ws->i1, ml.e + ws->i0 * ml.C, {NULL, NULL, ml.state[DM_TEST]}};
            rc = ev_score_sharded(ws->ctx, &s, &ws->spec, "full", &sl, lo, hi, 512, ws->rows);
        } else
            rc = ev_score_users(&s, &ws->spec, "full", model_latents_score, &ml, lo, hi, 512, ws->rows);
        ws->score_sec[(size_t)v * ws->W + w] = dm_wtime() - t1;
        rc = par_agree(ws->ctx, rc);
        if (!rc) rc = stream_record(ws, v, w);
    }
    pq_scorer_free(pqs);
    if (!rc && w + 2 == ws->W) rc = par_agree(ws->ctx, stream_keep_prev(ws));
    return rc;
}

/* ---- window w, step 3: adapt ---- */

/* steps of variant v on window w (records Ww) mixed with the reservoir, then its Fisher */
static int stream_train_variant(stream_ws *ws, int v, size_t w, const adapter_window *Ww)
{
    variant_adapter *va = &ws->va[v];
    adapter *m = &va->m;
    const adapter_reservoir *bp = (v == V_NO_REPLAY || !ws->replay_on) ? NULL : &ws->buf;
    adapter_plan_config pc = {ws->base.negatives, (int)ws->ni, bp ? ws->mix : 0.0, ws->seed};
    int can = Ww->n > 0 || (bp && bp->n > 0), rc = DM_OK;
    for (int st = 0; st < ws->steps && can && !rc; st++) {
        adapter_plan_batch(&pc, Ww->rec, Ww->n, bp, w, (uint64_t)st, (size_t)ws->G, ws->plan_u, ws->plan_p, ws->plan_n);
        rc = stream_chunked_sum(ws->ctx, m, &va->a, &ws->tb, ws->plan_u, ws->plan_p, ws->plan_n, (size_t)ws->G, ADAPTER_CHUNKS_GRAD, ws->fix);
        if (!rc) {
            adapter_adam_step(m);
            adapter_ema_update(m);
        }
    }
    if (!rc && m->cfg.ewc && Ww->n > 0) {
        adapter_plan_batch(&pc, Ww->rec, Ww->n, NULL, w, ADAPTER_STEP_FISHER, (size_t)ws->S, ws->plan_u, ws->plan_p, ws->plan_n);
        rc = stream_chunked_sum(ws->ctx, m, &va->a, &ws->tb, ws->plan_u, ws->plan_p, ws->plan_n, (size_t)ws->S, ADAPTER_CHUNKS_FISHER, ws->fix);
        if (!rc) adapter_fisher_commit(m);
    }
    return rc;
}

static int stream_adapt(stream_ws *ws, size_t w)
{
    adapter_window Ww;
    memset(&Ww, 0, sizeof Ww);
    int rc = adapter_window_gather(&ws->d, (int64_t)w, &Ww);
    /* reproducible mode while the adapters learn: the chunked sums are bitwise only if every
     * chunk's gradient is, and OpenBLAS's rounding changes with its thread count (which differs
     * with the rank count) and with the CPU a rank runs on */
    nn_set_reproducible(1);
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER && !rc; v++) {
        if (!ws->va[v].on) continue;
        double tr = dm_wtime();
        rc = stream_train_variant(ws, v, w, &Ww);
        ws->tsec[(size_t)v * ws->W + w] = dm_wtime() - tr;
    }
    nn_set_reproducible(0);
    if (!rc) adapter_reservoir_add(&ws->buf, w, Ww.rec, Ww.n);
    adapter_window_free(&Ww);
    return par_agree(ws->ctx, rc);
}

/* one window: tables, retrained reference, scoring, adaptation, a log line */
static int stream_window(stream_ws *ws, size_t w)
{
    double tw = dm_wtime();
    int rc = stream_window_tables(ws, w);
    if (!rc) rc = stream_retrain(ws, w);
    if (!rc) rc = stream_score(ws, w);
    if (!rc) rc = stream_adapt(ws, w);
    if (!rc) {
        char line[1024];
        const int *want = ws->want;
        int l = snprintf(line, sizeof line, "  window %2zu (%lld users):", w, (long long)ws->users[(size_t)(want[V_STATIC] ? V_STATIC : V_ADAPTER) * ws->W + w]);
        for (int v = 0; v < V_N; v++)
            if (want[v] && l < (int)sizeof line - 40)
                l += snprintf(line + l, sizeof line - (size_t)l, " %s %.4f", vnames[v], ws->mean_all[((size_t)v * ws->W + w) * ws->nc + ws->cn]);
        dm_log("%s  (ndcg@%lld, %.1fs)", line, (long long)ws->kcut, dm_wtime() - tw);
    }
    return rc;
}

/* ---- per-user comparison against the static aligner ---- */

/* um (nu, V_N): each user's mean NDCG@10 over its scored windows >= eval_from (the same (user,
 * window) pairs for every variant; from the sums usum), gathered on every rank */
static int stream_user_means(stream_ws *ws)
{
    size_t nc = ws->nc, nl = ws->hi - ws->lo;
    double *loc = malloc(((size_t)V_N * nl + 1) * sizeof *loc);
    int rc = loc ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    for (int v = 0; v < V_N && !rc; v++)
        for (size_t k = 0; k < nl; k++) {
            const double *us = ws->usum + ((size_t)v * nl + k) * (nc + 1);
            loc[k * V_N + (size_t)v] = us[nc] > 0 ? us[ws->cn] / us[nc] : NAN;
        }
    rc = par_agree(ws->ctx, rc);
    size_t *cnt = NULL;
    void *all = NULL;
    if (!rc) rc = par_allgatherv(ws->ctx, loc, nl * V_N * sizeof *loc, &all, &cnt);
    ws->um = all;
    free(cnt);
    free(loc);
    return rc;
}

/* paired Wilcoxon (two-sided, zeros dropped) of each variant against static over the users of
 * group g (0 all, 1 drifting, 2 stable), Holm over the variants; xa, xb: (nu) scratch */
static void stream_test_group(stream_ws *ws, int g, double *xa, double *xb)
{
    const double *um = ws->um;
    const uint8_t *drift = ws->d.drift_user;
    double pv[V_N];
    int vs[V_N], m = 0;
    for (int v = 0; v < V_N; v++) {
        if (!ws->want[v] || v == V_STATIC) continue;
        size_t n = 0;
        for (size_t u = 0; u < ws->nu; u++) {
            if (g && drift[u] != (g == 1)) continue;
            double a = um[u * V_N + (size_t)v], b = um[u * V_N + V_STATIC];
            if (isnan(a) || isnan(b)) continue;
            xa[n] = a, xb[n] = b, n++;
        }
        ws->tst_n[v][g] = (int64_t)n;
        if (n < 2) continue;
        stats_result res;
        double ma = 0, mb = 0;
        for (size_t k = 0; k < n; k++) ma += xa[k], mb += xb[k];
        ws->tst[v][0][g] = ma / (double)n;
        ws->tst[v][1][g] = (ma - mb) / (double)n;
        if (stats_wilcoxon(xa, xb, n, STATS_ZERO_WILCOX, 0, STATS_TWO_SIDED, STATS_METHOD_AUTO, &res) == DM_OK) {
            ws->tst[v][2][g] = res.p;
            pv[m] = res.p;
            vs[m++] = v;
        }
    }
    if (m) {
        double adj[V_N];
        stats_holm(pv, (size_t)m, adj);
        for (int k = 0; k < m; k++) ws->tst[vs[k]][3][g] = adj[k];
    }
    /* static against itself: its own mean */
    double ms = 0;
    size_t n = 0;
    for (size_t u = 0; u < ws->nu; u++) {
        if (g && drift[u] != (g == 1)) continue;
        double b = um[u * V_N + V_STATIC];
        if (!isnan(b)) ms += b, n++;
    }
    ws->tst[V_STATIC][0][g] = n ? ms / (double)n : NAN;
    ws->tst_n[V_STATIC][g] = (int64_t)n;
}

static void stream_log_tests(const stream_ws *ws, int g)
{
    static const char *gname[3] = {"all", "drifting", "stable"};
    const double(*tst)[4][3] = ws->tst;
    dm_log("  per-user NDCG@10 over windows >= %ld, %s users; paired Wilcoxon against static, Holm over variants:", ws->eval_from, gname[g]);
    dm_log("    %-10s %7s %9s %9s %10s %14s", "variant", "users", "ndcg@10", "diff", "p (Holm)", "gap recovered");
    double gs = tst[V_STATIC][0][g], gr = ws->want[V_RETRAINED] ? tst[V_RETRAINED][0][g] : NAN;
    for (int v = 0; v < V_N; v++) {
        if (!ws->want[v]) continue;
        char gap[32] = "";
        if (v != V_STATIC && v != V_RETRAINED && !isnan(gr) && gr != gs) snprintf(gap, sizeof gap, "%.1f%%", 100.0 * (tst[v][0][g] - gs) / (gr - gs));
        char pb[32];
        if (tst[v][3][g] < 1e-300) snprintf(pb, sizeof pb, "<1e-300");
        else snprintf(pb, sizeof pb, "%.2g", tst[v][3][g]);
        if (v == V_STATIC) dm_log("    %-10s %7lld %9.4f", vnames[v], (long long)ws->tst_n[v][g], tst[v][0][g]);
        else dm_log("    %-10s %7lld %9.4f %+9.4f %10s %14s", vnames[v], (long long)ws->tst_n[v][g], tst[v][0][g], tst[v][1][g], pb, gap);
    }
}

/* every variant against static, per group of users (drifting and stable on synthetic data) */
static int stream_tests(stream_ws *ws)
{
    int ng = ws->d.drift_user ? 3 : 1;
    double *xa = malloc((ws->nu + 1) * sizeof *xa), *xb = malloc((ws->nu + 1) * sizeof *xb);
    int rc = xa && xb ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    for (int g = 0; g < ng && !rc; g++) stream_test_group(ws, g, xa, xb);
    free(xa);
    free(xb);
    for (int g = 0; g < ng && !rc; g++) stream_log_tests(ws, g);
    return rc;
}

/* ---- output: stream.h5 ---- */

/* /stream/<v>/<what>: a (n, ncol) array (ncol = 0: a vector) with attribute kind (NULL: none) */
static int write_variant_all(h5file *f, int v, const char *what, h5type type, size_t n, size_t ncol, const void *x, const char *kind)
{
    char nm[160];
    snprintf(nm, sizeof nm, "/stream/%s/%s", vnames[v], what);
    int rc = h5_write_all(f, nm, type, n, ncol, x);
    if (!rc && kind) rc = h5_attr_str(f, nm, "kind", kind);
    return rc;
}

/* /stream/<v>/<what>: this rank's rows [lo, hi) of a (nu, W) array of per-user values */
static int write_variant_rows(const stream_ws *ws, h5file *f, int v, const char *what, const float *x)
{
    char nm[160];
    size_t nl = ws->hi - ws->lo;
    snprintf(nm, sizeof nm, "/stream/%s/%s", vnames[v], what);
    int rc = h5_write_rows(f, nm, H5_F32, ws->nu, ws->W, ws->lo, nl, x + (size_t)v * nl * ws->W);
    if (!rc) rc = h5_attr_str(f, nm, "kind", "rows");
    return rc;
}

/* /prequential/<full|full-drifting|full-stable>/<v>: each user's mean of every metric over its
 * scored windows >= eval_from (NaN: none, or not in the group), the per-user rows `dynmm report`
 * tables and tests like any evaluation's */
static int write_prequential(stream_ws *ws, h5file *f, int v)
{
    static const char *const pn[3] = {"full", "full-drifting", "full-stable"};
    size_t nc = ws->nc, lo = ws->lo, nl = ws->hi - ws->lo;
    int rc = DM_OK;
    for (int g = 0; g < (ws->d.drift_user ? 3 : 1) && !rc; g++) {
        for (size_t k = 0; k < nl; k++) {
            const double *us = ws->usum + ((size_t)v * nl + k) * (nc + 1);
            int in = !g || ws->d.drift_user[lo + k] == (g == 1);
            for (size_t c = 0; c < nc; c++) ws->rows[k * nc + c] = in && us[nc] > 0 ? us[c] / us[nc] : NAN;
        }
        char nm[160];
        snprintf(nm, sizeof nm, "/prequential/%s/%s", pn[g], vnames[v]);
        rc = h5_write_rows(f, nm, H5_F64, ws->nu, nc, lo, nl, ws->rows);
    }
    return rc;
}

/* variant v's datasets and attributes, and its line of the overall table */
static int stream_write_variant(stream_ws *ws, h5file *f, int v)
{
    size_t W = ws->W, nc = ws->nc, VW = (size_t)v * W;
    char nm[160];
    snprintf(nm, sizeof nm, "/stream/%s", vnames[v]);
    int rc = write_variant_all(f, v, "mean", H5_F64, W, nc, ws->mean_all + VW * nc, "points");
    if (!rc) rc = write_variant_all(f, v, "users", H5_I64, W, 0, ws->users + VW, NULL);
    if (!rc) rc = write_variant_all(f, v, "train_seconds", H5_F64, W, 0, ws->tsec + VW, NULL);
    if (!rc) rc = write_variant_all(f, v, "score_seconds", H5_F64, W, 0, ws->score_sec + VW, NULL);
    if (!rc) rc = write_variant_rows(ws, f, v, "hit10", ws->u_hit);
    if (!rc) rc = write_variant_rows(ws, f, v, "ndcg10", ws->u_ndcg);
    if (!rc) rc = write_prequential(ws, f, v);
    if (!rc && ws->d.drift_user) {
        rc = write_variant_all(f, v, "mean_drift", H5_F64, W, nc, ws->mean_dr + VW * nc, "points");
        if (!rc) rc = write_variant_all(f, v, "mean_stable", H5_F64, W, nc, ws->mean_st + VW * nc, "points");
    }
    if (!rc && ws->want[V_STATIC]) {
        const char *an[4] = {"user_ndcg10", "vs_static_diff", "vs_static_p", "vs_static_p_holm"};
        for (int q = 0; q < 4 && !rc; q++) rc = h5_attr_f64s(f, nm, an[q], ws->tst[v][q], 3);
        double tn[3] = {(double)ws->tst_n[v][0], (double)ws->tst_n[v][1], (double)ws->tst_n[v][2]};
        if (!rc) rc = h5_attr_f64s(f, nm, "users_tested", tn, 3);
    }
    if (!rc && v == V_ADAPTER_PQ) {
        rc = write_variant_all(f, v, "rel_err", H5_F64, W, 0, ws->pq_err, NULL);
        if (!rc) rc = h5_attr_i64(f, nm, "pq_m", dm_cfg_int(ws->cfg, "pq.m"));
        if (!rc) rc = h5_attr_i64(f, nm, "pq_k", dm_cfg_int(ws->cfg, "pq.k"));
        if (!rc) rc = h5_attr_i64(f, nm, "pq_stages", dm_cfg_int(ws->cfg, "pq.stages"));
        if (!rc) rc = h5_attr_i64(f, nm, "pq_rerank", dm_cfg_int(ws->cfg, "pq.rerank"));
    }
    if (!rc && IS_ADAPTER(v) && ws->va[v].on) {
        /* the served weights (EMA, or raw without it) as one slab in the tensor order of
         * adapter_tensor_info: item w1 b1 w2 b2 wa ca, then user */
        adapter *m = &ws->va[v].m;
        rc = write_variant_all(f, v, "weights", H5_F32, m->nparams, 0, m->cfg.ema ? m->ema_mem : m->params_mem, NULL);
    }
    double ov[3 * EV_MAX_KS + 1];
    const double *a = ws->acc + (size_t)v * (nc + 1);
    for (size_t c = 0; c < nc; c++) ov[c] = a[nc] > 0 ? a[c] / a[nc] : NAN;
    if (!rc) rc = h5_attr_f64s(f, nm, "overall", ov, nc);
    if (!rc) rc = h5_attr_i64(f, nm, "pairs", (int64_t)a[nc]);
    double tt = 0;
    for (size_t w = 0; w < W; w++) tt += ws->tsec[VW + w];
    if (!rc) dm_log("                          %-10s %8.0f %10.4f %10.4f %12.2f", vnames[v], a[nc], ov[ws->ch], ov[ws->cn], tt / (double)W);
    return rc;
}

/* /serve: the latents served in the last window, as it was scored (the base models' user states
 * updated to the window, the adapters adapted through the window before it), in the aligner's units
 * (the balance undone: h / c and z c, scores unchanged). The LLM recommender reads them with
 * prompt.latents = "stream". /serve_prev: the same of the window before the last (with at least two
 * windows), which prompt.train_latents = "stream" trains the projectors on. Group grp of window win
 * from the states r, h_base hb and the variants' z[v], h[v]. Collective. */
static int stream_write_serve(stream_ws *ws, h5file *f, const char *grp, size_t win, const float *r, const float *hb,
                              float *const *z, float *const *h)
{
    size_t nu = ws->nu, ni = ws->ni, dd = ws->dd, lo = ws->lo, nl = ws->hi - ws->lo, nb = (ni > nl ? ni : nl) * dd;
    float *buf = malloc((nb + 1) * sizeof *buf);
    char nm[160];
    int rc = par_agree(ws->ctx, buf ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
    snprintf(nm, sizeof nm, "%s/r", grp);
    if (!rc) rc = h5_write_all(f, nm, H5_F32, nu, ws->C, r);
    if (!rc) rc = h5_attr_str(f, nm, "kind", "latents"); /* not metric rows: readers leave them out */
    snprintf(nm, sizeof nm, "%s/static/h", grp);
    if (!rc) rc = h5_write_all(f, nm, H5_F32, nu, dd, hb);
    if (!rc) rc = h5_attr_str(f, nm, "kind", "latents");
    if (!rc) rc = h5_attr_i64(f, grp, "window", (int64_t)win);
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER && !rc; v++) {
        if (!ws->va[v].on) continue;
        for (size_t k = 0; k < ni * dd; k++) buf[k] = (float)(z[v][k] * ws->bal);
        snprintf(nm, sizeof nm, "%s/%s/z", grp, vnames[v]);
        rc = h5_write_all(f, nm, H5_F32, ni, dd, buf);
        if (!rc) rc = h5_attr_str(f, nm, "kind", "latents");
        for (size_t k = 0; k < nl * dd; k++) buf[k] = (float)(h[v][lo * dd + k] / ws->bal);
        snprintf(nm, sizeof nm, "%s/%s/h", grp, vnames[v]);
        if (!rc) rc = h5_write_rows(f, nm, H5_F32, nu, dd, lo, nl, buf);
        if (!rc) rc = h5_attr_str(f, nm, "kind", "latents");
    }
    free(buf);
    return rc;
}

/* writes stream.h5 (with rc == DM_OK on every rank) and ends the output: committed, or discarded
 * after a failure */
static int stream_write(stream_ws *ws, stage_run *sr, int rc)
{
    par_ctx *ctx = ws->ctx;
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = stage_output_create(sr, STREAM_FORMAT, 2, &f);
    if (!rc) rc = h5_attr_i64(&f, "/", "n_users", (int64_t)ws->nu);
    if (!rc) rc = h5_write_all(&f, "/stream/window_start", H5_I64, ws->W + 1, 0, ws->d.window_start);
    if (!rc) rc = h5_write_all(&f, "/stream/serve_seconds", H5_F64, ws->W, 0, ws->serve_sec);
    if (!rc) rc = ev_write_columns(ctx, &f, &ws->spec);
    if (!rc) rc = par_allreduce_sum_f64(ctx, ws->acc, (size_t)V_N * (ws->nc + 1));
    if (!rc) dm_log("  overall (windows >= %ld): %-10s %8s %10s %10s %12s", ws->eval_from, "variant", "pairs", "hit@10", "ndcg@10", "train s/win");
    for (int v = 0; v < V_N && !rc; v++)
        if (ws->want[v]) rc = stream_write_variant(ws, &f, v);
    if (!rc) rc = h5_attr_i64(&f, "/stream", "eval_from", ws->eval_from);
    float *lz[V_N] = {0}, *lh[V_N] = {0};
    for (int v = V_ADAPTER; v <= V_LAST_ADAPTER; v++) lz[v] = ws->va[v].z, lh[v] = ws->va[v].h;
    if (!rc) rc = stream_write_serve(ws, &f, "/serve", ws->W - 1, ws->r, ws->hb, lz, lh);
    if (!rc && ws->have_prev) rc = stream_write_serve(ws, &f, "/serve_prev", ws->W - 2, ws->pr, ws->phb, ws->pz, ws->ph);
    return stage_output_finish(sr, &f, rc);
}

/* ---- free ---- */

static void stream_free(stream_ws *ws)
{
    if (ws->have_rt) {
        sasrec_acts_free(&ws->ra);
        sasrec_free(&ws->rm);
    }
    for (int v = 0; v < V_N; v++)
        if (ws->va[v].on) {
            adapter_acts_free(&ws->va[v].a);
            adapter_free(&ws->va[v].m);
            DM_FREE_ALL(ws->va[v].z, ws->va[v].h);
        }
    for (int v = 0; v < V_N; v++) DM_FREE_ALL(ws->pz[v], ws->ph[v]);
    DM_FREE_ALL(ws->pr, ws->phb);
    adapter_reservoir_free(&ws->buf);
    if (ws->have_spec) metrics_spec_free(&ws->spec);
    DM_FREE_ALL(ws->r, ws->hb, ws->hs, ws->zs, ws->s_item, ws->s_user, ws->s_sum, ws->roles, ws->r_rt, ws->e_rt,
                ws->plan_u, ws->plan_p, ws->plan_n, ws->fix, ws->my_users, ws->rows, ws->dmask_rows, ws->mean_all,
                ws->mean_dr, ws->mean_st, ws->acc, ws->usum, ws->um, ws->users, ws->u_hit, ws->u_ndcg, ws->tsec,
                ws->score_sec, ws->serve_sec, ws->pq_err, ws->zb, ws->e_cf);
    align_acts_free(&ws->aa);
    align_free(&ws->am);
    sasrec_acts_free(&ws->sa);
    sasrec_free(&ws->sm);
    dm_dataset_free(&ws->d);
    memset(ws, 0, sizeof *ws);
}

/* ---- the stage: a table of contents ---- */

static int stage_stream(stage_run *sr)
{
    stream_ws ws;
    memset(&ws, 0, sizeof ws);
    ws.ctx = sr->ctx, ws.cfg = sr->cfg;
    for (int v = 0; v < V_N; v++)
        for (int g = 0; g < 3; g++) {
            for (int q = 0; q < 4; q++) ws.tst[v][q][g] = NAN;
            ws.tst_n[v][g] = 0;
        }
    int rc = stream_load(&ws, sr);                   /* dataset, frozen models */
    if (!rc) {
        rc = stream_setup(&ws);                      /* adapters, metrics, buffers */
        for (size_t w = 0; w < ws.W && !rc; w++) rc = stream_window(&ws, w); /* score, then adapt */
        if (!rc) rc = stream_user_means(&ws);
        if (!rc && ws.want[V_STATIC]) rc = stream_tests(&ws); /* against the static aligner */
        rc = par_agree(sr->ctx, rc);
        rc = stream_write(&ws, sr, rc);              /* stream.h5 */
    }
    stream_free(&ws);
    return par_agree(sr->ctx, rc);
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_stream_def = {
    .name = "stream",
    .output = "stream.h5",
    .inputs = {"dataset.h5", "cf.h5", "align.h5", NULL},
    .groups = stream_config_groups,
    .check = check_stream,
    .run = stage_stream,
    .summary = "the online adapter over streaming windows, prequential evaluation, into stream.h5",
    .usage = USAGE,
    .revision = "serve_prev", /* /serve_prev, which prompt.train_latents = "stream" reads */
};
