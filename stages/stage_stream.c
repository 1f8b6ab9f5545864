/* cmd_stream.c: `dynmm stream`: dynamic incremental alignment under the prequential protocol
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
 * Users are sharded across ranks for scoring; adapter batches are cut into fixed chunks shared out
 * among the ranks, with one exact (fixed-point) gradient allreduce per step (chunked_sum). The
 * tables r and h_base (states_before shards the users, so a row shares its sgemm calls with other
 * rows at another rank count), the adapters' training and their Fisher are computed in
 * reproducible mode (src/nn/gemm.h: each element of a matrix product in one fixed order, whatever
 * the other rows of the call, the thread count or the CPU; OpenBLAS rounds a row differently with
 * both); e_cf and z_base come from the models' files, the summaries from serial code on every
 * rank. So 1, 2 and 3 ranks at any OMP_NUM_THREADS reach bitwise the same adapted state. Scoring
 * keeps OpenBLAS.
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
 *   attributes: overall (ncols) = means over the scored (user, window) pairs of windows >=
 *   stream.eval_from, and serve/score timings; per variant, over [all, drifting, stable] users
 *   (NaN where not defined): user_ndcg10 = the mean over users of each user's mean NDCG@10 over
 *   its scored windows >= eval_from, vs_static_diff, vs_static_p (paired Wilcoxon against static,
 *   two-sided, zero differences dropped), vs_static_p_holm (Holm over the variants of the group),
 *   users_tested.
 */
#include "cands.h"
#include "cf_sasrec.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "stage.h"

#include "../src/adapter/adapter.h"
#include "../src/align/align.h"
#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"
#include "../src/nn/gemm.h"
#include "../src/stats/stats.h"

#include <cblas.h>
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

static const char *const stream_config_groups[] = {"stream", "adapter", "window", "eval.ks", "eval.ties", "sasrec", "split.protocol", NULL};

enum { V_STATIC, V_SASREC, V_ADAPTER, V_NO_GATE, V_NO_EMA, V_NO_REPLAY, V_NO_KL, V_NO_EWC, V_RETRAINED, V_N };
static const char *const vnames[V_N] = {"static", "sasrec", "adapter", "no_gate", "no_ema", "no_replay", "no_kl", "no_ewc", "retrained"};
#define IS_ADAPTER(v) ((v) >= V_ADAPTER && (v) <= V_NO_EWC)

typedef struct {
    const float *z;  /* (n_items, d) */
    const float *h;  /* (n_users, d) */
    size_t d, n_items;
} dot_model;

static int dot_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    dot_model *m = mv;
    (void)s;
    float *u = malloc(B * m->d * sizeof *u + 4);
    if (!u) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t b = 0; b < B; b++) memcpy(u + b * m->d, m->h + users[b] * m->d, m->d * sizeof *u);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m->n_items, (int)m->d, 1.0f, u, (int)m->d, m->z,
                (int)m->d, 0.0f, scores, (int)m->n_items);
    free(u);
    return DM_OK;
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

/* sqrt of the mean squared row norm of x (n, d) */
static double rms_norm(const float *x, size_t n, size_t d)
{
    double s = 0;
    for (size_t k = 0; k < n * d; k++) s += (double)x[k] * x[k];
    return n ? sqrt(s / (double)n) : 0.0;
}

/* Reproducible data-parallel sums. A global batch of N examples is cut into chunks of
 * STREAM_CHUNK examples whatever the rank count; whole chunks are shared out among the ranks, each
 * chunk's gradient (or Fisher) is computed in float by the same code on the same examples, turned
 * into fixed point (multiples of 2^-40) and summed as integers, which is exact and independent of
 * the order. So 1, 2 and 3 ranks take bitwise the same steps, and the adapted state does not drift
 * apart over hundreds of Adam steps (float sums in a rank-dependent order would: Adam amplifies
 * the rounding). */
#define STREAM_CHUNK 64
#define STREAM_FIX 1099511627776.0 /* 2^40 */

static int fix_add(int64_t *acc, const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        double q = (double)x[k] * STREAM_FIX;
        if (!(fabs(q) < 9.0e18)) return DM_ERR(DM_ENUM, "adapter: gradient %g at parameter %zu is not finite or too large", (double)x[k], k);
        acc[k] += (int64_t)(q < 0 ? q - 0.5 : q + 0.5); /* round half away from zero */
    }
    return DM_OK;
}

/* fisher = 0: the gradient of the batch into m->grads; 1: its Fisher sum into m->fisher_acc
 * (norm = N in both). fix: (nparams) scratch. */
static int chunked_sum(par_ctx *ctx, adapter *m, adapter_acts *a, const adapter_tables *t, const int32_t *U, const int32_t *P,
                       const int32_t *Ng, size_t N, int fisher, int64_t *fix)
{
    size_t nch = (N + STREAM_CHUNK - 1) / STREAM_CHUNK, clo, chi, K = (size_t)m->cfg.negatives;
    dm_shard_even(nch, ctx->size, ctx->rank, &clo, &chi);
    memset(fix, 0, m->nparams * sizeof *fix);
    int rc = DM_OK;
    for (size_t c = clo; c < chi && !rc; c++) {
        size_t lo = c * STREAM_CHUNK, hi = lo + STREAM_CHUNK < N ? lo + STREAM_CHUNK : N;
        adapter_batch bt = {(int)(hi - lo), U + lo, P + lo, Ng + lo * K, (double)N};
        if (fisher) {
            adapter_fisher_begin(m);
            rc = adapter_fisher_accumulate(m, a, t, &bt);
            if (!rc) rc = fix_add(fix, m->fisher_acc, m->nparams);
        } else {
            adapter_zero_grad(m);
            rc = adapter_train_step(m, a, t, &bt, NULL);
            if (!rc) rc = fix_add(fix, m->grads_mem, m->nparams);
        }
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_allreduce_sum_i64(ctx, fix, m->nparams);
    float *dst = fisher ? m->fisher_acc : m->grads_mem;
    for (size_t k = 0; !rc && k < m->nparams; k++) dst[k] = (float)((double)fix[k] / STREAM_FIX);
    return rc;
}

typedef struct {
    int on;
    adapter m;
    adapter_acts a;
    float *z;       /* (n_items, d) served item latents */
    float *h;       /* (n_users, d) served user latents */
} variant_adapter;

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
        int f = -1;
        for (int q = 0; q < V_N; q++)
            if (!strcmp(v, vnames[q])) f = q;
        if (f < 0) {
            DM_ERR(DM_ECONFIG, "%s: unknown variant '%s'", dm_cfg_where(cfg, "stream.variants", w, sizeof w), v);
            DM_HINT("variants: static, sasrec, adapter, no_gate, no_ema, no_replay, no_kl, no_ewc, retrained");
            return DM_ECONFIG;
        }
    }
    return DM_OK;
}

static int stage_stream(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    const char *dpath = stage_input(sr, "dataset.h5"), *cpath = stage_input(sr, "cf.h5"), *apath = stage_input(sr, "align.h5");
    DM_CALL(par_agree(ctx, check_stream(cfg)));
    int want[V_N] = {0};
    for (size_t k = 0; k < dm_cfg_len(cfg, "stream.variants"); k++) {
        const char *v = dm_cfg_str_at(cfg, "stream.variants", k);
        for (int q = 0; q < V_N; q++)
            if (!strcmp(v, vnames[q])) want[q] = 1;
    }
    dm_dataset d;
    DM_CALL(ds_read(ctx, dpath, &d));
    size_t nu = d.n_users, ni = d.n_items, W = d.n_windows;
    int rc = W < 2 ? DM_ERR(DM_ECONFIG, "the dataset has %zu streaming windows; the protocol needs at least 2", W) : DM_OK;
    /* frozen models */
    sasrec sm;
    sasrec_acts sa;
    align_model am;
    align_acts aa;
    float *zb = NULL, *e_cf = NULL;
    size_t nzi = 0;
    memset(&sm, 0, sizeof sm);
    memset(&sa, 0, sizeof sa);
    memset(&am, 0, sizeof am);
    memset(&aa, 0, sizeof aa);
    if (!rc) rc = cf_sasrec_load(ctx, cpath, ni, 256, &sm, &sa);
    if (!rc) rc = align_load(ctx, apath, 4096, &am, &aa, &zb, &nzi);
    if (!rc && nzi != ni) rc = DM_ERR(DM_EFORMAT, "'%s' has %zu items, the dataset %zu", apath, nzi, ni);
    size_t C = (size_t)sm.cfg.C, dd = (size_t)am.cfg.d;
    if (!rc) {
        e_cf = malloc(ni * C * sizeof *e_cf + 4);
        if (!e_cf) rc = DM_ERR(DM_ENOMEM, "out of memory");
        else sasrec_item_table(&sm, e_cf);
    }
    rc = par_agree(ctx, rc);
    if (rc) goto done_early;
    {
        /* ---- adapter variants ---- */
        unsigned feat = 0;
        size_t nf = dm_cfg_len(cfg, "adapter.features");
        const char *fn[8];
        for (size_t k = 0; k < nf && k < 8; k++) fn[k] = dm_cfg_str_at(cfg, "adapter.features", k);
        rc = adapter_parse_features(fn, nf, &feat);
        int ds_item = 0, ds_user = 0;
        adapter_summary_dims(feat, &ds_item, &ds_user);
        /* the recent-taste columns follow the summary columns of s_u */
        int ds_sum = ds_user, taste = dm_cfg_bool(cfg, "adapter.recent_taste");
        if (taste) ds_user += (int)dd;
        adapter_config base;
        memset(&base, 0, sizeof base);
        adapter_config_default(&base);
        base.n_items = (int)ni;
        base.n_users = (int)nu;
        base.d_cf = (int)C;
        base.d = (int)dd;
        base.ds_item = ds_item;
        base.ds_user = ds_user;
        base.hidden = (int)dm_cfg_int(cfg, "adapter.hidden");
        base.negatives = (int)dm_cfg_int(cfg, "adapter.negatives");
        base.loss = !strcmp(dm_cfg_str(cfg, "adapter.loss"), "bce") ? ADAPTER_LOSS_BCE : ADAPTER_LOSS_SOFTMAX;
        base.gate = dm_cfg_bool(cfg, "adapter.gate");
        base.ema = dm_cfg_bool(cfg, "adapter.ema");
        base.kl = dm_cfg_bool(cfg, "adapter.kl");
        base.ewc = dm_cfg_bool(cfg, "adapter.ewc");
        base.sigma = (float)dm_cfg_float(cfg, "adapter.sigma");
        base.lambda_ewc = (float)dm_cfg_float(cfg, "adapter.lambda_ewc");
        base.fisher_decay = (float)dm_cfg_float(cfg, "adapter.fisher_decay");
        base.ema_decay = (float)dm_cfg_float(cfg, "adapter.ema_decay");
        base.lr = (float)dm_cfg_float(cfg, "adapter.lr");
        base.beta1 = (float)dm_cfg_float(cfg, "adapter.beta1");
        base.beta2 = (float)dm_cfg_float(cfg, "adapter.beta2");
        base.eps = (float)dm_cfg_float(cfg, "adapter.eps");
        base.zero_init = dm_cfg_bool(cfg, "adapter.zero_init");
        base.serve_rows = (int)dm_cfg_int(cfg, "adapter.serve_rows");
        int G = (int)dm_cfg_int(cfg, "adapter.batch"), steps = (int)dm_cfg_int(cfg, "adapter.steps");
        int S = (int)dm_cfg_int(cfg, "adapter.fisher_samples");
        base.max_batch = STREAM_CHUNK;
        long long sd = dm_cfg_int(cfg, "adapter.seed");
        uint64_t seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xADA, 0);
        int replay_on = dm_cfg_bool(cfg, "adapter.replay");
        double mix = dm_cfg_float(cfg, "adapter.replay_mix");
        variant_adapter va[V_N];
        memset(va, 0, sizeof va);
        for (int v = V_ADAPTER; v <= V_NO_EWC && !rc; v++) {
            if (!want[v]) continue;
            adapter_config c = base;
            if (v == V_NO_GATE) c.gate = 0;
            if (v == V_NO_EMA) c.ema = 0;
            if (v == V_NO_KL) c.kl = 0;
            if (v == V_NO_EWC) c.ewc = 0;
            rc = adapter_config_check(&c);
            if (!rc) rc = adapter_init(&va[v].m, &c);
            if (!rc) rc = adapter_acts_init(&va[v].a, &c);
            if (!rc) {
                adapter_init_weights(&va[v].m, seed);
                va[v].z = malloc(ni * dd * sizeof(float) + 4);
                va[v].h = malloc(nu * dd * sizeof(float) + 4);
                if (!va[v].z || !va[v].h) rc = DM_ERR(DM_ENOMEM, "out of memory");
                va[v].on = 1;
            }
        }
        adapter_reservoir buf;
        memset(&buf, 0, sizeof buf);
        if (!rc) rc = adapter_reservoir_init(&buf, (size_t)dm_cfg_int(cfg, "adapter.replay_capacity"), seed ^ 0xB0F);
        adapter_summary_config scfg = {feat, (int)dm_cfg_int(cfg, "adapter.cooc_recent"), dm_cfg_float(cfg, "adapter.recency_tau") * 3600e3};
        /* ---- buffers ---- */
        metrics_spec spec;
        metrics_ties ties;
        size_t nk = dm_cfg_len(cfg, "eval.ks");
        int64_t ks[64];
        for (size_t k = 0; k < nk && k < 64; k++) ks[k] = dm_cfg_int_at(cfg, "eval.ks", k);
        int have_spec = 0;
        if (!rc) rc = metrics_ties_parse(dm_cfg_str(cfg, "eval.ties"), &ties);
        if (!rc) rc = metrics_spec_init(&spec, ks, nk < 64 ? nk : 64, ties);
        have_spec = !rc;
        size_t nc = have_spec ? spec.ncols : 1, c10 = 0;
        for (size_t k = 0; k < nk; k++)
            if (ks[k] == 10) c10 = k + 1;
        size_t ch = have_spec ? metrics_col(&spec, METRICS_HIT, c10 ? c10 - 1 : 0) : 0;
        size_t cn = have_spec ? metrics_col(&spec, METRICS_NDCG, c10 ? c10 - 1 : 0) : 0;
        size_t lo, hi;
        dm_shard_even(nu, ctx->size, ctx->rank, &lo, &hi);
        float *r = malloc(nu * C * sizeof *r + 4), *hb = malloc(nu * dd * sizeof *hb + 4);
        /* the adapters work on balanced copies of the base latents: h c and z / c with c chosen at
         * window 0 so that both sides have the same RMS norm (scores unchanged); otherwise the side
         * with the small norm would need far larger residuals and one sigma could not fit both */
        float *hs = malloc(nu * dd * sizeof *hs + 4), *zs = malloc(ni * dd * sizeof *zs + 4);
        double bal = 0.0, rz_s = 0.0;
        float *s_item = calloc(ni * (size_t)(ds_item ? ds_item : 1), sizeof(float)), *s_user = calloc(nu * (size_t)(ds_user ? ds_user : 1), sizeof(float));
        float *s_sum = calloc(nu * (size_t)(ds_sum ? ds_sum : 1), sizeof(float));
        int8_t *roles = malloc(d.n_inter + 1);
        double *rows = malloc((hi - lo + 1) * nc * sizeof *rows);
        double *mean_all = calloc((size_t)V_N * W * nc + 1, sizeof *mean_all), *mean_dr = calloc((size_t)V_N * W * nc + 1, sizeof *mean_dr),
               *mean_st = calloc((size_t)V_N * W * nc + 1, sizeof *mean_st), *acc = calloc((size_t)V_N * (nc + 1) + 1, sizeof *acc);
        int64_t *users = calloc((size_t)V_N * W + 1, sizeof *users);
        float *u_hit = calloc((size_t)V_N * (hi - lo + 1) * W, sizeof(float)), *u_ndcg = calloc((size_t)V_N * (hi - lo + 1) * W, sizeof(float));
        double *tsec = calloc((size_t)V_N * W + 1, sizeof *tsec), *serve_sec = calloc(W + 1, sizeof(double)),
               *score_sec = calloc((size_t)V_N * W + 1, sizeof(double));
        double *dmask_rows = malloc((hi - lo + 1) * nc * sizeof *dmask_rows);
        int32_t *plan_u = malloc((size_t)(G > S ? G : S) * sizeof(int32_t) + 4), *plan_p = malloc((size_t)(G > S ? G : S) * sizeof(int32_t) + 4),
                *plan_n = malloc((size_t)(G > S ? G : S) * (size_t)base.negatives * sizeof(int32_t) + 4);
        size_t np_max = 0;
        for (int v = V_ADAPTER; v <= V_NO_EWC; v++)
            if (va[v].on && va[v].m.nparams > np_max) np_max = va[v].m.nparams;
        int64_t *fix = malloc((np_max + 1) * sizeof *fix);
        /* per-user sums of every metric over the windows >= eval_from, and the count (column nc) */
        double *usum = calloc((size_t)V_N * (hi - lo + 1) * (nc + 1), sizeof *usum);
        int32_t *my_users = malloc((hi - lo + 1) * sizeof *my_users);
        for (size_t u = lo; my_users && u < hi; u++) my_users[u - lo] = (int32_t)u;
        if (!rc && (!fix || !usum || !my_users || !r || !hb || !hs || !zs || !s_item || !s_user || !s_sum || !roles || !rows || !mean_all || !mean_dr || !mean_st || !acc || !users ||
                    !u_hit || !u_ndcg || !tsec || !serve_sec || !score_sec || !dmask_rows || !plan_u || !plan_p || !plan_n))
            rc = DM_ERR(DM_ENOMEM, "out of memory for the streaming protocol");
        rc = par_agree(ctx, rc);
        sasrec rm;
        sasrec_acts ra;
        memset(&rm, 0, sizeof rm);
        memset(&ra, 0, sizeof ra);
        int have_rt = 0;
        float *r_rt = malloc(nu * C * sizeof(float) + 4), *e_rt = malloc(ni * C * sizeof(float) + 4);
        if (!rc && (!r_rt || !e_rt)) rc = DM_ERR(DM_ENOMEM, "out of memory");
        long eval_from = (long)dm_cfg_int(cfg, "stream.eval_from"), rt_every = (long)dm_cfg_int(cfg, "stream.retrain_every");
        long rt_epochs = (long)dm_cfg_int(cfg, "stream.retrain_epochs");
        if (!rc && want[V_RETRAINED] && rt_epochs == 0) {
            /* as long as the base model trained (its selected epoch) */
            h5file cf;
            int64_t be = 0;
            rc = par_agree(ctx, h5_open(ctx, cpath, &cf));
            if (!rc) {
                rc = h5_get_attr_i64(&cf, "/sasrec", "best_epoch", &be);
                h5_close(&cf);
            }
            rc = par_agree(ctx, rc);
            rt_epochs = be > 0 ? (long)be : (long)dm_cfg_int(cfg, "sasrec.epochs");
        }
        dm_log("  stream: %zu windows, %zu users, %zu items; adapter d_cf=%zu d=%zu summaries %d/%d, %d steps x %d per window",
               W, nu, ni, C, dd, ds_item, ds_user, steps, G);
        for (size_t w = 0; w < W && !rc; w++) {
            double tw = dm_wtime();
            for (size_t i = 0; i < d.n_inter; i++)
                roles[i] = d.window[i] < (int32_t)w ? DM_TRAIN : (d.window[i] == (int32_t)w ? DM_TEST : 3);
            ev_split s = {&d, roles, DM_TEST};
            /* 1. states, base latents, summaries of the previous window */
            nn_set_reproducible(1); /* r and h_base feed the adapters: rank-count independent */
            rc = states_before(ctx, &sm, &sa, &d, (int64_t)w, r);
            if (!rc) rc = align_user_latents(&am, &aa, r, (int)nu, hb);
            nn_set_reproducible(0);
            if (!rc && w == 0) {
                double rz = rms_norm(zb, ni, dd), rh = rms_norm(hb, nu, dd);
                bal = rz > 0 && rh > 0 ? sqrt(rz / rh) : 1.0;
                for (size_t k = 0; k < ni * dd; k++) zs[k] = (float)(zb[k] / bal);
                dm_log("  stream: base latents balanced (users x %.4g, items / %.4g: RMS norms %.4g and %.4g become %.4g)", bal, bal, rh, rz, sqrt(rh * rz));
            }
            if (!rc)
                for (size_t k = 0; k < nu * dd; k++) hs[k] = (float)(hb[k] * bal);
            adapter_window W1, W2;
            memset(&W1, 0, sizeof W1);
            memset(&W2, 0, sizeof W2);
            if (!rc) rc = adapter_window_gather(&d, (int64_t)w - 1, &W1);
            if (!rc) rc = adapter_window_gather(&d, (int64_t)w - 2, &W2);
            if (!rc) rc = adapter_summaries(&scfg, (int)nu, (int)ni, &W1.ev, &W2.ev, W1.t_begin, d.window_start[w], s_item, s_sum);
            if (!rc) {
                /* s_u = [summary columns ; mean z_base of the user's items in window w - 1] */
                memset(s_user, 0, nu * (size_t)ds_user * sizeof *s_user);
                for (size_t u = 0; u < nu; u++) memcpy(s_user + u * (size_t)ds_user, s_sum + u * (size_t)ds_sum, (size_t)ds_sum * sizeof *s_user);
                if (taste) {
                    /* time-decayed mean of z_base over the user's items before w: weights
                     * exp(-(start of w - t) / tau), tau = adapter.recency_tau or the previous
                     * window's length */
                    double tau = scfg.tau_ms > 0 ? scfg.tau_ms : (double)(d.window_start[w] - (w ? d.window_start[w - 1] : d.window_start[0] - (d.window_start[1] - d.window_start[0])));
                    if (!(tau > 0)) tau = 1.0;
                    for (size_t u = 0; u < nu; u++) {
                        float *dst = s_user + u * (size_t)ds_user + ds_sum;
                        double wsum = 0;
                        for (int64_t j = d.user_off[u]; j < d.user_off[u + 1] && d.window[j] < (int32_t)w; j++) {
                            double wt = exp(-(double)(d.window_start[w] - d.time[j]) / tau);
                            if (wt < 1e-6) continue;
                            const float *src = zs + (size_t)d.item[j] * dd;
                            for (size_t q = 0; q < dd; q++) dst[q] += (float)(wt * src[q]);
                            wsum += wt;
                        }
                        if (wsum > 0)
                            for (size_t q = 0; q < dd; q++) dst[q] /= (float)wsum;
                    }
                }
            }
            adapter_window_free(&W1);
            adapter_window_free(&W2);
            adapter_tables tb = {e_cf, zs, ds_item ? s_item : NULL, r, hs, ds_user ? s_user : NULL};
            /* adapter.sigma is in units of the RMS norm of each side's (balanced) base latents
             * (identical on every rank: the tables are) */
            if (!rc) {
                if (w == 0) rz_s = rms_norm(zs, ni, dd); /* zs is fixed; h_base moves with the window */
                double rz = rz_s, rh = rms_norm(hs, nu, dd);
                for (int v = V_ADAPTER; v <= V_NO_EWC; v++) {
                    if (!va[v].on) continue;
                    va[v].m.cfg.sigma = (float)(base.sigma * (rz > 0 ? rz : 1.0));
                    va[v].m.cfg.sigma_user = (float)(base.sigma * (rh > 0 ? rh : 1.0));
                }
                if (w == 0) dm_log("  stream: KL scales sigma %.4g (items, RMS norm %.4g) and %.4g (users, RMS norm %.4g)", base.sigma * rz, rz, base.sigma * rh, rh);
            }
            /* the retrained reference: SASRec from scratch on everything before w */
            if (!rc && want[V_RETRAINED] && (!have_rt || (long)w % rt_every == 0)) {
                double tr = dm_wtime();
                if (have_rt) {
                    sasrec_acts_free(&ra);
                    sasrec_free(&rm);
                    have_rt = 0;
                }
                rc = cf_sasrec_fit(ctx, cfg, &d, roles, NULL, NULL, rt_epochs, &rm, &ra);
                if (!rc) {
                    have_rt = 1;
                    sasrec_item_table(&rm, e_rt);
                }
                tsec[V_RETRAINED * W + w] = dm_wtime() - tr;
            }
            if (!rc && want[V_RETRAINED]) rc = states_before(ctx, &rm, &ra, &d, (int64_t)w, r_rt);
            rc = par_agree(ctx, rc);
            /* 2. serve and score window w */
            double ts = dm_wtime();
            for (int v = V_ADAPTER; v <= V_NO_EWC && !rc; v++) {
                if (!va[v].on) continue;
                rc = adapter_item_latents(&va[v].m, &va[v].a, &tb, 1, NULL, (int)ni, va[v].z, NULL);
                /* only this rank's users are scored here */
                if (!rc && hi > lo) rc = adapter_user_latents(&va[v].m, &va[v].a, &tb, 1, my_users, (int)(hi - lo), va[v].h + lo * dd, NULL);
            }
            serve_sec[w] = dm_wtime() - ts;
            for (int v = 0; v < V_N && !rc; v++) {
                if (!want[v]) continue;
                dot_model dm = {zb, hb, dd, ni};
                if (v == V_SASREC) dm = (dot_model){e_cf, r, C, ni};
                else if (v == V_RETRAINED) dm = (dot_model){e_rt, r_rt, C, ni};
                else if (IS_ADAPTER(v)) dm = (dot_model){va[v].z, va[v].h, dd, ni};
                double t1 = dm_wtime();
                rc = ev_score_users(&s, &spec, "full", dot_score, &dm, lo, hi, 512, rows);
                score_sec[(size_t)v * W + w] = dm_wtime() - t1;
                rc = par_agree(ctx, rc);
                int64_t cnt = 0;
                if (!rc) rc = ev_mean(ctx, &spec, rows, hi - lo, mean_all + ((size_t)v * W + w) * nc, &cnt);
                users[(size_t)v * W + w] = cnt;
                for (size_t u = lo; u < hi && !rc; u++) {
                    const double *rw = rows + (u - lo) * nc;
                    u_hit[((size_t)v * (hi - lo) + (u - lo)) * W + w] = (float)rw[ch];
                    u_ndcg[((size_t)v * (hi - lo) + (u - lo)) * W + w] = (float)rw[cn];
                    if ((long)w >= eval_from && !isnan(rw[0])) {
                        for (size_t c = 0; c < nc; c++) acc[(size_t)v * (nc + 1) + c] += rw[c];
                        acc[(size_t)v * (nc + 1) + nc] += 1.0;
                        double *us = usum + ((size_t)v * (hi - lo) + (u - lo)) * (nc + 1);
                        for (size_t c = 0; c < nc; c++) us[c] += rw[c];
                        us[nc] += 1.0;
                    }
                }
                if (!rc && d.drift_user) {
                    for (int g = 0; g < 2 && !rc; g++) {
                        for (size_t u = lo; u < hi; u++)
                            for (size_t c = 0; c < nc; c++)
                                dmask_rows[(u - lo) * nc + c] = (d.drift_user[u] == (g == 0)) ? rows[(u - lo) * nc + c] : NAN;
                        int64_t c2;
                        rc = ev_mean(ctx, &spec, dmask_rows, hi - lo, (g == 0 ? mean_dr : mean_st) + ((size_t)v * W + w) * nc, &c2);
                    }
                }
            }
            /* 3. adapt on window w */
            adapter_window Ww;
            memset(&Ww, 0, sizeof Ww);
            if (!rc) rc = adapter_window_gather(&d, (int64_t)w, &Ww);
            /* reproducible mode while the adapters learn: the chunked sums are bitwise only if
             * every chunk's gradient is, and OpenBLAS's rounding changes with its thread count
             * (which differs with the rank count) and with the CPU a rank runs on */
            nn_set_reproducible(1);
            for (int v = V_ADAPTER; v <= V_NO_EWC && !rc; v++) {
                if (!va[v].on) continue;
                double tr = dm_wtime();
                adapter *m = &va[v].m;
                const adapter_reservoir *bp = (v == V_NO_REPLAY || !replay_on) ? NULL : &buf;
                adapter_plan_config pc = {base.negatives, (int)ni, bp ? mix : 0.0, seed};
                int can = Ww.n > 0 || (bp && bp->n > 0);
                for (int st = 0; st < steps && can && !rc; st++) {
                    adapter_plan_batch(&pc, Ww.rec, Ww.n, bp, w, (uint64_t)st, (size_t)G, plan_u, plan_p, plan_n);
                    rc = chunked_sum(ctx, m, &va[v].a, &tb, plan_u, plan_p, plan_n, (size_t)G, 0, fix);
                    if (!rc) {
                        adapter_adam_step(m);
                        adapter_ema_update(m);
                    }
                }
                if (!rc && m->cfg.ewc && Ww.n > 0) {
                    adapter_plan_batch(&pc, Ww.rec, Ww.n, NULL, w, ADAPTER_STEP_FISHER, (size_t)S, plan_u, plan_p, plan_n);
                    rc = chunked_sum(ctx, m, &va[v].a, &tb, plan_u, plan_p, plan_n, (size_t)S, 1, fix);
                    if (!rc) adapter_fisher_commit(m);
                }
                tsec[(size_t)v * W + w] = dm_wtime() - tr;
            }
            nn_set_reproducible(0);
            if (!rc) adapter_reservoir_add(&buf, w, Ww.rec, Ww.n);
            adapter_window_free(&Ww);
            rc = par_agree(ctx, rc);
            if (!rc && have_spec) {
                char line[1024];
                int l = snprintf(line, sizeof line, "  window %2zu (%lld users):", w, (long long)users[(size_t)(want[V_STATIC] ? V_STATIC : V_ADAPTER) * W + w]);
                for (int v = 0; v < V_N; v++)
                    if (want[v] && l < (int)sizeof line - 40)
                        l += snprintf(line + l, sizeof line - (size_t)l, " %s %.4f", vnames[v], mean_all[((size_t)v * W + w) * nc + cn]);
                dm_log("%s  (ndcg@%lld, %.1fs)", line, c10 ? 10LL : (long long)ks[0], dm_wtime() - tw);
            }
        }
        /* ---- per-user comparison against the static aligner ---- */
        /* each user's mean NDCG@10 over its scored windows >= eval_from (the same (user, window)
         * pairs for every variant), gathered on every rank; paired Wilcoxon (two-sided, zeros
         * dropped) of each variant against static over all / drifting / stable users, Holm over the
         * variants within each group */
        double tst[V_N][4][3];  /* [v][mean, diff, p, p_holm][group]; NaN = not tested */
        int64_t tst_n[V_N][3];
        for (int v = 0; v < V_N; v++)
            for (int g = 0; g < 3; g++) {
                for (int q = 0; q < 4; q++) tst[v][q][g] = NAN;
                tst_n[v][g] = 0;
            }
        double *um = NULL;
        if (!rc) {
            /* from the per-user sums the window loop keeps (usum: every metric over the windows
             * >= eval_from, count in column nc) */
            double *loc = malloc(((size_t)V_N * (hi - lo) + 1) * sizeof *loc);
            if (!loc) rc = DM_ERR(DM_ENOMEM, "out of memory");
            for (int v = 0; v < V_N && !rc; v++)
                for (size_t u = lo; u < hi; u++) {
                    const double *us = usum + ((size_t)v * (hi - lo) + (u - lo)) * (nc + 1);
                    loc[(size_t)(u - lo) * V_N + (size_t)v] = us[nc] > 0 ? us[cn] / us[nc] : NAN;
                }
            rc = par_agree(ctx, rc);
            size_t *cnt = NULL;
            void *all = NULL;
            if (!rc) rc = par_allgatherv(ctx, loc, (hi - lo) * V_N * sizeof *loc, &all, &cnt);
            um = all;
            free(cnt);
            free(loc);
        }
        if (!rc && want[V_STATIC]) {
            double *xa = malloc((nu + 1) * sizeof *xa), *xb = malloc((nu + 1) * sizeof *xb);
            if (!xa || !xb) rc = DM_ERR(DM_ENOMEM, "out of memory");
            for (int g = 0; g < (d.drift_user ? 3 : 1) && !rc; g++) {
                double pv[V_N];
                int vs[V_N], m = 0;
                for (int v = 0; v < V_N; v++) {
                    if (!want[v] || v == V_STATIC) continue;
                    size_t n = 0;
                    for (size_t u = 0; u < nu; u++) {
                        if (g && d.drift_user[u] != (g == 1)) continue;
                        double a = um[u * V_N + (size_t)v], b = um[u * V_N + V_STATIC];
                        if (isnan(a) || isnan(b)) continue;
                        xa[n] = a, xb[n] = b, n++;
                    }
                    tst_n[v][g] = (int64_t)n;
                    if (n < 2) continue;
                    stats_result res;
                    double ma = 0, mb = 0;
                    for (size_t k = 0; k < n; k++) ma += xa[k], mb += xb[k];
                    tst[v][0][g] = ma / (double)n;
                    tst[v][1][g] = (ma - mb) / (double)n;
                    if (stats_wilcoxon(xa, xb, n, STATS_ZERO_WILCOX, 0, STATS_TWO_SIDED, STATS_METHOD_AUTO, &res) == DM_OK) {
                        tst[v][2][g] = res.p;
                        pv[m] = res.p;
                        vs[m++] = v;
                    }
                }
                if (m) {
                    double adj[V_N];
                    stats_holm(pv, (size_t)m, adj);
                    for (int k = 0; k < m; k++) tst[vs[k]][3][g] = adj[k];
                }
                /* static against itself: its own mean */
                double ms = 0;
                size_t n = 0;
                for (size_t u = 0; u < nu; u++) {
                    if (g && d.drift_user[u] != (g == 1)) continue;
                    double b = um[u * V_N + V_STATIC];
                    if (!isnan(b)) ms += b, n++;
                }
                tst[V_STATIC][0][g] = n ? ms / (double)n : NAN;
                tst_n[V_STATIC][g] = (int64_t)n;
            }
            free(xa);
            free(xb);
            static const char *gname[3] = {"all", "drifting", "stable"};
            for (int g = 0; g < (d.drift_user ? 3 : 1) && !rc; g++) {
                dm_log("  per-user NDCG@10 over windows >= %ld, %s users; paired Wilcoxon against static, Holm over variants:", eval_from, gname[g]);
                dm_log("    %-10s %7s %9s %9s %10s %14s", "variant", "users", "ndcg@10", "diff", "p (Holm)", "gap recovered");
                double gs = tst[V_STATIC][0][g], gr = want[V_RETRAINED] ? tst[V_RETRAINED][0][g] : NAN;
                for (int v = 0; v < V_N; v++) {
                    if (!want[v]) continue;
                    char gap[32] = "";
                    if (v != V_STATIC && v != V_RETRAINED && !isnan(gr) && gr != gs)
                        snprintf(gap, sizeof gap, "%.1f%%", 100.0 * (tst[v][0][g] - gs) / (gr - gs));
                    char pb[32];
                    if (tst[v][3][g] < 1e-300) snprintf(pb, sizeof pb, "<1e-300");
                    else snprintf(pb, sizeof pb, "%.2g", tst[v][3][g]);
                    if (v == V_STATIC) dm_log("    %-10s %7lld %9.4f", vnames[v], (long long)tst_n[v][g], tst[v][0][g]);
                    else dm_log("    %-10s %7lld %9.4f %+9.4f %10s %14s", vnames[v], (long long)tst_n[v][g], tst[v][0][g], tst[v][1][g], pb, gap);
                }
            }
        }
        rc = par_agree(ctx, rc);
        /* ---- output ---- */
        h5file f;
        memset(&f, 0, sizeof f);
        f.id = -1;
        if (!rc) rc = stage_output_create(sr, STREAM_FORMAT, 2, &f);
        if (!rc) rc = h5_attr_i64(&f, "/", "n_users", (int64_t)nu);
        if (!rc) rc = h5_write_all(&f, "/stream/window_start", H5_I64, W + 1, 0, d.window_start);
        if (!rc) rc = h5_write_all(&f, "/stream/serve_seconds", H5_F64, W, 0, serve_sec);
        if (!rc) {
            dm_strtab cols = {0};
            char nmb[32];
            for (size_t c = 0; c < nc && !rc; c++) {
                metrics_col_name(&spec, c, nmb, sizeof nmb);
                rc = dm_strtab_add(&cols, nmb, strlen(nmb));
            }
            if (!rc) rc = h5_write_strtab(&f, "/columns", ctx->rank == 0 ? &cols : &(dm_strtab){0}, ctx->rank == 0 ? 0 : nc, nc);
            dm_strtab_free(&cols);
        }
        if (!rc) rc = par_allreduce_sum_f64(ctx, acc, (size_t)V_N * (nc + 1));
        if (!rc) dm_log("  overall (windows >= %ld): %-10s %8s %10s %10s %12s", eval_from, "variant", "pairs", "hit@10", "ndcg@10", "train s/win");
        for (int v = 0; v < V_N && !rc; v++) {
            if (!want[v]) continue;
            char nm[160];
            snprintf(nm, sizeof nm, "/stream/%s/mean", vnames[v]);
            rc = h5_write_all(&f, nm, H5_F64, W, nc, mean_all + (size_t)v * W * nc);
            if (!rc) rc = h5_attr_str(&f, nm, "kind", "points");
            snprintf(nm, sizeof nm, "/stream/%s/users", vnames[v]);
            if (!rc) rc = h5_write_all(&f, nm, H5_I64, W, 0, users + (size_t)v * W);
            snprintf(nm, sizeof nm, "/stream/%s/train_seconds", vnames[v]);
            if (!rc) rc = h5_write_all(&f, nm, H5_F64, W, 0, tsec + (size_t)v * W);
            snprintf(nm, sizeof nm, "/stream/%s/score_seconds", vnames[v]);
            if (!rc) rc = h5_write_all(&f, nm, H5_F64, W, 0, score_sec + (size_t)v * W);
            snprintf(nm, sizeof nm, "/stream/%s/hit10", vnames[v]);
            if (!rc) rc = h5_write_rows(&f, nm, H5_F32, nu, W, lo, hi - lo, u_hit + (size_t)v * (hi - lo) * W);
            if (!rc) rc = h5_attr_str(&f, nm, "kind", "rows");
            snprintf(nm, sizeof nm, "/stream/%s/ndcg10", vnames[v]);
            if (!rc) rc = h5_write_rows(&f, nm, H5_F32, nu, W, lo, hi - lo, u_ndcg + (size_t)v * (hi - lo) * W);
            if (!rc) rc = h5_attr_str(&f, nm, "kind", "rows");
            /* /prequential/<full|full-drifting|full-stable>/<variant>: each user's mean of every
             * metric over its scored windows >= eval_from (NaN: none, or not in the group), the
             * per-user rows `dynmm report` tables and tests like any evaluation's */
            for (int g = 0; g < (d.drift_user ? 3 : 1) && !rc; g++) {
                static const char *const pn[3] = {"full", "full-drifting", "full-stable"};
                for (size_t u = lo; u < hi; u++) {
                    const double *us = usum + ((size_t)v * (hi - lo) + (u - lo)) * (nc + 1);
                    int in = !g || d.drift_user[u] == (g == 1);
                    for (size_t c = 0; c < nc; c++) rows[(u - lo) * nc + c] = in && us[nc] > 0 ? us[c] / us[nc] : NAN;
                }
                snprintf(nm, sizeof nm, "/prequential/%s/%s", pn[g], vnames[v]);
                rc = h5_write_rows(&f, nm, H5_F64, nu, nc, lo, hi - lo, rows);
            }
            if (!rc && d.drift_user) {
                snprintf(nm, sizeof nm, "/stream/%s/mean_drift", vnames[v]);
                rc = h5_write_all(&f, nm, H5_F64, W, nc, mean_dr + (size_t)v * W * nc);
                if (!rc) rc = h5_attr_str(&f, nm, "kind", "points");
                snprintf(nm, sizeof nm, "/stream/%s/mean_stable", vnames[v]);
                if (!rc) rc = h5_write_all(&f, nm, H5_F64, W, nc, mean_st + (size_t)v * W * nc);
                if (!rc) rc = h5_attr_str(&f, nm, "kind", "points");
            }
            if (!rc && want[V_STATIC]) {
                const char *an[4] = {"user_ndcg10", "vs_static_diff", "vs_static_p", "vs_static_p_holm"};
                snprintf(nm, sizeof nm, "/stream/%s", vnames[v]);
                for (int q = 0; q < 4 && !rc; q++) rc = h5_attr_f64s(&f, nm, an[q], tst[v][q], 3);
                double tn[3] = {(double)tst_n[v][0], (double)tst_n[v][1], (double)tst_n[v][2]};
                if (!rc) rc = h5_attr_f64s(&f, nm, "users_tested", tn, 3);
            }
            if (!rc && IS_ADAPTER(v) && va[v].on) {
                /* the served weights (EMA, or raw without it) as one slab in the tensor order of
                 * adapter_tensor_info: item w1 b1 w2 b2 wa ca, then user */
                adapter *m = &va[v].m;
                snprintf(nm, sizeof nm, "/stream/%s/weights", vnames[v]);
                rc = h5_write_all(&f, nm, H5_F32, m->nparams, 0, m->cfg.ema ? m->ema_mem : m->params_mem);
            }
            double ov[256];
            const double *a = acc + (size_t)v * (nc + 1);
            for (size_t c = 0; c < nc && c < 256; c++) ov[c] = a[nc] > 0 ? a[c] / a[nc] : NAN;
            snprintf(nm, sizeof nm, "/stream/%s", vnames[v]);
            if (!rc) rc = h5_attr_f64s(&f, nm, "overall", ov, nc);
            if (!rc) rc = h5_attr_i64(&f, nm, "pairs", (int64_t)a[nc]);
            double tt = 0;
            for (size_t w = 0; w < W; w++) tt += tsec[(size_t)v * W + w];
            if (!rc) dm_log("                          %-10s %8.0f %10.4f %10.4f %12.2f", vnames[v], a[nc], ov[ch], ov[cn], tt / (double)W);
        }
        if (!rc) rc = h5_attr_i64(&f, "/stream", "eval_from", eval_from);
        rc = stage_output_finish(sr, &f, rc);
        if (have_rt) {
            sasrec_acts_free(&ra);
            sasrec_free(&rm);
        }
        for (int v = 0; v < V_N; v++)
            if (va[v].on) {
                adapter_acts_free(&va[v].a);
                adapter_free(&va[v].m);
                free(va[v].z);
                free(va[v].h);
            }
        adapter_reservoir_free(&buf);
        if (have_spec) metrics_spec_free(&spec);
        free(r);
        free(hb);
        free(hs);
        free(zs);
        free(my_users);
        free(fix);
        free(usum);
        free(um);
        free(s_item);
        free(s_user);
        free(s_sum);
        free(roles);
        free(rows);
        free(mean_all);
        free(mean_dr);
        free(mean_st);
        free(acc);
        free(users);
        free(u_hit);
        free(u_ndcg);
        free(tsec);
        free(serve_sec);
        free(score_sec);
        free(dmask_rows);
        free(plan_u);
        free(plan_p);
        free(plan_n);
        free(r_rt);
        free(e_rt);
    }
done_early:
    free(zb);
    free(e_cf);
    align_acts_free(&aa);
    align_free(&am);
    sasrec_acts_free(&sa);
    sasrec_free(&sm);
    dm_dataset_free(&d);
    return par_agree(ctx, rc);
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_stream_def = {
    .name = "stream",
    .output = "stream.h5",
    .inputs = {"dataset.h5", "cf.h5", "align.h5", NULL},
    .groups = stream_config_groups,
    .uses = NULL,
    .check = check_stream,
    .run = stage_stream,
    .prepare = NULL,
    .summary = "the online adapter over streaming windows, prequential evaluation, into stream.h5",
    .usage = USAGE,
};
