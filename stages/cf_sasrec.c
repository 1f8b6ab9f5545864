/* cf_sasrec.c: data-parallel SASRec training, see cf_sasrec.h. */
#include "cf_sasrec.h"

#include "cands.h"
#include "../mpi/cli.h"
#include "evalcore.h"

#include "../src/core/err.h"
#include "../src/core/sort.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"
#include "../src/sasrec/sasrec.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_FORMAT "dynmm-sasrec-checkpoint"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct {
    const dm_dataset *d;
    const int8_t *roles;
    int T;
    /* training users and their train items (dense ids) */
    size_t nu;
    size_t *user;    /* (nu) dataset user id */
    int64_t *off;    /* (nu + 1) */
    int32_t *items;  /* train items in time order */
    int32_t *sorted; /* the same, sorted, for negative rejection */
} trainset;

static int trainset_init(trainset *t, const dm_dataset *d, const int8_t *roles, int T)
{
    memset(t, 0, sizeof *t);
    t->d = d;
    t->roles = roles;
    t->T = T;
    DM_ALLOC(t->user, d->n_users + 1);
    DM_ALLOC(t->off, d->n_users + 1);
    DM_ALLOC(t->items, d->n_inter + 1);
    DM_ALLOC(t->sorted, d->n_inter + 1);
    size_t q = 0;
    for (size_t u = 0; u < d->n_users; u++) {
        size_t start = q;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
            if (roles[j] == DM_TRAIN) t->items[q++] = d->item[j];
        if (q - start < 2) {
            q = start;
            continue;
        }
        t->user[t->nu] = u;
        t->off[t->nu + 1] = (int64_t)q;
        memcpy(t->sorted + start, t->items + start, (q - start) * sizeof(int32_t));
        qsort(t->sorted + start, q - start, sizeof(int32_t), dm_cmp_i32);
        t->nu++;
    }
    return DM_OK;
}

static void trainset_free(trainset *t)
{
    free(t->user);
    free(t->off);
    free(t->items);
    free(t->sorted);
    memset(t, 0, sizeof *t);
}

/* number of targets of training sequence k: min(len - 1, T) */
static int64_t n_targets(const trainset *t, size_t k)
{
    int64_t len = t->off[k + 1] - t->off[k] - 1;
    return len < t->T ? len : t->T;
}

/* Fills row b of seq/pos/neg (SASRec ids: dense + 1) for training sequence k: inputs are the
 * items before each target, left-padded, the latest T kept. Negatives avoid the user's train set. */
static void fill_train_row(const trainset *t, size_t k, uint64_t seed, uint64_t step, int64_t gidx, int32_t *seq,
                           int32_t *pos, int32_t *neg, int n_items)
{
    int T = t->T;
    const int32_t *it = t->items + t->off[k];
    size_t len = (size_t)(t->off[k + 1] - t->off[k]);
    size_t m = (size_t)n_targets(t, k);
    memset(seq, 0, (size_t)T * sizeof *seq);
    memset(pos, 0, (size_t)T * sizeof *pos);
    memset(neg, 0, (size_t)T * sizeof *neg);
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed ^ 0x6e6567ULL, step, (uint64_t)gidx));
    const int32_t *srt = t->sorted + t->off[k];
    int all_taken = len >= (size_t)n_items;
    for (size_t j = 0; j < m; j++) {
        size_t p = (size_t)T - m + j;     /* position in the padded row */
        size_t src = len - 1 - m + j;     /* input item index */
        seq[p] = it[src] + 1;
        pos[p] = it[src + 1] + 1;
        int32_t x;
        do x = (int32_t)dm_rng_below(&r, (uint64_t)n_items);
        while (!all_taken && dm_in_sorted_i32(srt, len, x));
        neg[p] = x + 1;
    }
}

/* history row for inference: the latest T history items, left-padded */
static void fill_history(const ev_split *s, size_t u, int T, int32_t *seq, int32_t *tmp)
{
    size_t n = ev_history(s, u, tmp);
    memset(seq, 0, (size_t)T * sizeof *seq);
    size_t m = n < (size_t)T ? n : (size_t)T;
    for (size_t j = 0; j < m; j++) seq[(size_t)T - m + j] = tmp[n - m + j] + 1;
}

typedef struct {
    sasrec *m;
    sasrec_acts *a;
    int32_t *seq, *tmp;
    float *states;
} scorer;

static int sasrec_score(void *model, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    scorer *sc = model;
    int T = sc->m->cfg.T, mb = sc->m->cfg.max_batch;
    size_t n = s->d->n_items;
    for (size_t b0 = 0; b0 < B; b0 += (size_t)mb) {
        int nb = (int)(B - b0 < (size_t)mb ? B - b0 : (size_t)mb);
        for (int b = 0; b < nb; b++) fill_history(s, users[b0 + (size_t)b], T, sc->seq + (size_t)b * (size_t)T, sc->tmp);
        DM_CALL(sasrec_user_states(sc->m, sc->a, sc->seq, nb, sc->states));
        /* items 1..n of the model are dense items 0..n-1 */
        sasrec_scores_block(sc->m, sc->states, nb, 1, (int)n + 1, scores + b0 * n);
    }
    return DM_OK;
}

typedef struct {
    long epoch;          /* next epoch to run (0-based) */
    long batch;          /* next batch within the epoch */
    long step;           /* global steps taken */
    double best;         /* best validation metric */
    long best_epoch;
    long bad_rounds;
    double epoch_loss;   /* the current epoch's loss summed over its steps so far (all ranks) */
    double epoch_secs;   /* and its seconds so far */
} train_state;

static int ckpt_path(par_ctx *ctx, const dm_cfg *cfg, char *out, size_t cap)
{
    return cli_run_path(ctx, cfg, "ckpt_sasrec.h5", out, cap);
}

static int ckpt_write(par_ctx *ctx, const dm_cfg *cfg, const sasrec *m, const float *best, const train_state *st,
                      const char *hash, double *curve, size_t ncurve)
{
    char path[4096];
    DM_CALL(ckpt_path(ctx, cfg, path, sizeof path));
    h5file f;
    DM_CALL(par_agree(ctx, h5_create(ctx, path, 0, 1 << 20, &f)));
    int rc = h5_write_provenance(&f, CKPT_FORMAT, 1, "train-cf", cfg, hash);
    if (!rc) rc = h5_write_all(&f, "/params", H5_F32, m->nparams, 0, m->params_mem);
    if (!rc) rc = h5_write_all(&f, "/adam_m", H5_F32, m->nparams, 0, m->m_mem);
    if (!rc) rc = h5_write_all(&f, "/adam_v", H5_F32, m->nparams, 0, m->v_mem);
    if (!rc) rc = h5_write_all(&f, "/best", H5_F32, m->nparams, 0, best);
    if (!rc && ncurve) rc = h5_write_all(&f, "/curve", H5_F64, ncurve, 4, curve);
    if (!rc) rc = h5_attr_i64(&f, "/", "epoch", st->epoch);
    if (!rc) rc = h5_attr_i64(&f, "/", "batch", st->batch);
    if (!rc) rc = h5_attr_i64(&f, "/", "step", st->step);
    if (!rc) rc = h5_attr_i64(&f, "/", "adam_step", m->step);
    if (!rc) rc = h5_attr_f64(&f, "/", "best", st->best);
    if (!rc) rc = h5_attr_i64(&f, "/", "best_epoch", st->best_epoch);
    if (!rc) rc = h5_attr_i64(&f, "/", "bad_rounds", st->bad_rounds);
    if (!rc) rc = h5_attr_f64(&f, "/", "epoch_loss", st->epoch_loss);
    if (!rc) rc = h5_attr_f64(&f, "/", "epoch_seconds", st->epoch_secs);
    rc = par_agree(ctx, rc);
    if (rc) {
        h5_discard(&f);
        return rc;
    }
    return h5_commit(&f);
}

/* Loads a checkpoint made with the same stage hash; *found = 0 when there is none to resume. */
static int ckpt_read(par_ctx *ctx, const dm_cfg *cfg, sasrec *m, float *best, train_state *st, const char *hash,
                     double **curve, size_t *ncurve, int *found)
{
    char path[4096];
    *found = 0;
    DM_CALL(ckpt_path(ctx, cfg, path, sizeof path));
    int64_t ex = access(path, F_OK) == 0;
    DM_CALL(par_allreduce_min_i64(ctx, &ex, 1));
    if (!ex) return DM_OK;
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    char *h = NULL;
    int rc = h5_check_format(&f, CKPT_FORMAT, 1);
    if (!rc) rc = h5_get_attr_str(&f, "/", "stage_hash", &h);
    rc = par_agree(ctx, rc);
    if (rc || strcmp(h, hash) != 0) {
        if (!rc) dm_warn("%s was made with other settings; starting afresh", path);
        dm_error_clear();
        free(h);
        h5_close(&f);
        return DM_OK;
    }
    free(h);
    size_t r = 0, c = 0;
    int64_t v;
    rc = h5_read_rows(&f, "/params", H5_F32, 0, m->nparams, m->params_mem);
    if (!rc) rc = h5_read_rows(&f, "/adam_m", H5_F32, 0, m->nparams, m->m_mem);
    if (!rc) rc = h5_read_rows(&f, "/adam_v", H5_F32, 0, m->nparams, m->v_mem);
    if (!rc) rc = h5_read_rows(&f, "/best", H5_F32, 0, m->nparams, best);
    if (!rc && h5_exists(&f, "/curve")) {
        void *p;
        rc = h5_read_all(&f, "/curve", H5_F64, &p, &r, &c);
        if (!rc) {
            *curve = p;
            *ncurve = r;
        }
    }
#define A(name, dst) if (!rc) { rc = h5_get_attr_i64(&f, "/", name, &v); dst = v; }
    A("epoch", st->epoch);
    A("batch", st->batch);
    A("step", st->step);
    A("adam_step", m->step);
    A("best_epoch", st->best_epoch);
    A("bad_rounds", st->bad_rounds);
#undef A
    if (!rc) rc = h5_get_attr_f64(&f, "/", "best", &st->best);
    if (!rc) rc = h5_get_attr_f64(&f, "/", "epoch_loss", &st->epoch_loss);
    if (!rc) rc = h5_get_attr_f64(&f, "/", "epoch_seconds", &st->epoch_secs);
    h5_close(&f);
    DM_CALL(par_agree(ctx, rc));
    *found = 1;
    dm_log("  resuming from %s: epoch %ld, batch %ld, step %ld", path, st->epoch, st->batch, st->step);
    return DM_OK;
}

static int validate(par_ctx *ctx, const dm_cfg *cfg, const ev_split *vs, scorer *sc, const metrics_spec *spec,
                    size_t col, double *out)
{
    size_t lo, hi;
    dm_shard_even(vs->d->n_users, ctx->size, ctx->rank, &lo, &hi);
    double *rows;
    DM_ALLOC(rows, (hi - lo + 1) * spec->ncols);
    const char *proto = dm_cfg_str(cfg, "sasrec.select_protocol");
    int rc = ev_score_users(vs, spec, proto, sasrec_score, sc, lo, hi, (size_t)dm_cfg_int(cfg, "sasrec.eval_batch"), rows);
    rc = par_agree(ctx, rc);
    double *mean = NULL;
    int64_t cnt = 0;
    if (!rc) {
        mean = calloc(spec->ncols, sizeof *mean);
        rc = mean ? ev_mean(ctx, spec, rows, hi - lo, mean, &cnt) : DM_ERR(DM_ENOMEM, "out of memory");
    }
    if (!rc) *out = mean[col];
    free(mean);
    free(rows);
    return rc;
}

static int write_states(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, scorer *sc,
                        h5file *f, int split, const char *name)
{
    size_t lo, hi;
    dm_shard_even(d->n_users, ctx->size, ctx->rank, &lo, &hi);
    int C = sc->m->cfg.C, T = sc->m->cfg.T, mb = sc->m->cfg.max_batch;
    float *st;
    DM_ALLOC(st, (hi - lo + 1) * (size_t)C);
    ev_split s = {d, roles, split};
    int rc = DM_OK;
    for (size_t u0 = lo; u0 < hi && !rc; u0 += (size_t)mb) {
        int nb = (int)(hi - u0 < (size_t)mb ? hi - u0 : (size_t)mb);
        for (int b = 0; b < nb; b++) fill_history(&s, u0 + (size_t)b, T, sc->seq + (size_t)b * (size_t)T, sc->tmp);
        rc = sasrec_user_states(sc->m, sc->a, sc->seq, nb, st + (u0 - lo) * (size_t)C);
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = h5_write_rows(f, name, H5_F32, d->n_users, (size_t)C, lo, hi - lo, st);
    free(st);
    (void)cfg;
    return rc;
}

int cf_sasrec_fit(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const char *stage_hash,
                  h5file *f, long epochs_override, sasrec *out_m, sasrec_acts *out_a)
{
    sasrec_config sc;
    sasrec_config_default(&sc, (int)d->n_items);
    sc.C = (int)dm_cfg_int(cfg, "sasrec.hidden");
    sc.F = (int)dm_cfg_int(cfg, "sasrec.ffn");
    sc.T = (int)dm_cfg_int(cfg, "sasrec.maxlen");
    sc.L = (int)dm_cfg_int(cfg, "sasrec.blocks");
    sc.H = (int)dm_cfg_int(cfg, "sasrec.heads");
    sc.dropout = (float)dm_cfg_float(cfg, "sasrec.dropout");
    const char *norm = dm_cfg_str(cfg, "sasrec.norm");
    sc.norm = !strcmp(norm, "pre") ? SASREC_NORM_PRE : !strcmp(norm, "post") ? SASREC_NORM_POST : SASREC_NORM_KANG;
    sc.loss = !strcmp(dm_cfg_str(cfg, "sasrec.loss"), "ce") ? SASREC_LOSS_CE : SASREC_LOSS_BCE;
    sc.lr = (float)dm_cfg_float(cfg, "sasrec.lr");
    sc.beta1 = (float)dm_cfg_float(cfg, "sasrec.beta1");
    sc.beta2 = (float)dm_cfg_float(cfg, "sasrec.beta2");
    sc.eps = (float)dm_cfg_float(cfg, "sasrec.eps");
    sc.l2 = (float)dm_cfg_float(cfg, "sasrec.l2");
    sc.chunk_floats = (size_t)(dm_cfg_float(cfg, "sasrec.ce_chunk_mb") * 1048576.0 / 4.0);
    int G = (int)dm_cfg_int(cfg, "sasrec.batch");
    int eb = (int)dm_cfg_int(cfg, "sasrec.eval_batch");
    size_t glo, ghi;
    dm_shard_even((size_t)G, ctx->size, 0, &glo, &ghi);
    int local_max = (int)(ghi - glo);
    sc.max_batch = local_max > eb ? local_max : eb;
    long long s = dm_cfg_int(cfg, "sasrec.seed");
    uint64_t seed = s >= 0 ? (uint64_t)s : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x5A5, 0);
    DM_CALL(sasrec_config_check(&sc));

    sasrec m;
    sasrec_acts a;
    trainset ts;
    memset(&m, 0, sizeof m);
    memset(&a, 0, sizeof a);
    int rc = sasrec_init(&m, &sc);
    if (!rc) rc = sasrec_acts_init(&a, &sc);
    if (!rc) rc = trainset_init(&ts, d, roles, sc.T);
    DM_CALL(par_agree(ctx, rc));
    sasrec_init_weights(&m, seed);
    float *best = malloc(m.nparams * sizeof *best);
    int32_t *seq = malloc((size_t)sc.max_batch * (size_t)sc.T * 3 * sizeof(int32_t) + 16);
    int32_t *tmp = malloc((d->n_inter + 1) * sizeof(int32_t));
    size_t *perm = malloc((ts.nu + 1) * sizeof *perm);
    int64_t *gidx = malloc(((size_t)G + 1) * sizeof *gidx);
    float *states = malloc((size_t)sc.max_batch * (size_t)sc.C * sizeof(float));
    double *curve = NULL;
    size_t ncurve = 0;
    if (!best || !seq || !tmp || !perm || !gidx || !states) rc = DM_ERR(DM_ENOMEM, "out of memory for SASRec training");
    DM_CALL(par_agree(ctx, rc));
    memcpy(best, m.params_mem, m.nparams * sizeof *best);
    scorer scr = {&m, &a, seq, tmp, states};

    metrics_spec spec;
    int64_t ks[1] = {10};
    DM_CALL(metrics_spec_init(&spec, ks, 1, METRICS_TIES_EXPECTED));
    const char *sel = dm_cfg_str(cfg, "sasrec.select_metric");
    size_t col = !strcmp(sel, "hit@10") ? metrics_col(&spec, METRICS_HIT, 0)
                                        : !strcmp(sel, "mrr") ? metrics_col(&spec, METRICS_MRR, 0)
                                                              : metrics_col(&spec, METRICS_NDCG, 0);
    int has_valid = 0;
    for (size_t i = 0; i < d->n_inter && !has_valid && !epochs_override; i++) has_valid = roles[i] == DM_VALID;
    /* the validation candidates of a sampled sasrec.select_protocol, drawn for this rank's users
       into a shallow copy of the dataset (only its candidate rows are its own) */
    dm_dataset dv = *d;
    dv.n_cand = 0;
    memset(dv.cand, 0, sizeof dv.cand);
    if (has_valid) {
        size_t vlo, vhi;
        dm_shard_even(d->n_users, ctx->size, ctx->rank, &vlo, &vhi);
        const char *vp = dm_cfg_str(cfg, "sasrec.select_protocol");
        rc = cands_draw(ctx, cfg, &dv, &vp, 1, vlo, vhi);
        if (rc) {
            metrics_spec_free(&spec);
            return rc;
        }
    }
    ev_split vs = {&dv, roles, DM_VALID};

    train_state st = {0, 0, 0, -INFINITY, -1, 0, 0.0, 0.0};
    int found = 0;
    if (stage_hash && dm_cfg_bool(cfg, "run.resume"))
        DM_CALL(ckpt_read(ctx, cfg, &m, best, &st, stage_hash, &curve, &ncurve, &found));
    long epochs = epochs_override > 0 ? epochs_override : (long)dm_cfg_int(cfg, "sasrec.epochs");
    long eval_every = (long)dm_cfg_int(cfg, "sasrec.eval_every"), patience = (long)dm_cfg_int(cfg, "sasrec.patience");
    long ck_every = stage_hash ? (long)dm_cfg_int(cfg, "sasrec.checkpoint_every") : 0;
    long nb_per_epoch = (long)((ts.nu + (size_t)G - 1) / (size_t)G);
    dm_log_v(epochs_override > 0 ? 2 : 1,
             "  sasrec: %zu training users, %d items, d=%d, T=%d, %d blocks, %d heads, global batch %d (%d per rank), "
             "%ld steps/epoch, %s loss",
             ts.nu, sc.n_items, sc.C, sc.T, sc.L, sc.H, G, local_max, nb_per_epoch, sc.loss ? "ce" : "bce");
    g_stop = 0;
    struct sigaction sa, old_term, old_usr1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);
    double t_train = 0;
    int stopped_early = 0;
    while (!rc && st.epoch < epochs) {
        /* the epoch's user order, the same on every rank */
        for (size_t k = 0; k < ts.nu; k++) perm[k] = k;
        dm_rng pr;
        dm_rng_seed(&pr, dm_rng_key(seed, 0xE90C, (uint64_t)st.epoch));
        for (size_t k = ts.nu; k > 1; k--) {
            size_t j = dm_rng_below(&pr, k), x = perm[k - 1];
            perm[k - 1] = perm[j];
            perm[j] = x;
        }
        /* a resumed epoch continues its sums: rank 0 carries the steps before the checkpoint */
        double t0 = dm_wtime() - st.epoch_secs, loss_sum = ctx->rank == 0 ? st.epoch_loss : 0.0;
        long steps0 = st.step - st.batch;
        st.epoch_loss = st.epoch_secs = 0.0;
        for (; st.batch < nb_per_epoch && !rc; st.batch++) {
            size_t b0 = (size_t)st.batch * (size_t)G;
            size_t bn = ts.nu - b0 < (size_t)G ? ts.nu - b0 : (size_t)G;
            size_t lo, hi;
            dm_shard_even(bn, ctx->size, ctx->rank, &lo, &hi);
            int64_t ntgt = 0;
            for (size_t k = 0; k < bn; k++) ntgt += n_targets(&ts, perm[b0 + k]);
            int B = (int)(hi - lo);
            int32_t *sq = seq, *ps = seq + (size_t)sc.max_batch * (size_t)sc.T, *ng = ps + (size_t)sc.max_batch * (size_t)sc.T;
            for (int b = 0; b < B; b++) {
                size_t k = perm[b0 + lo + (size_t)b];
                gidx[b] = (int64_t)(b0 + lo + (size_t)b);
                fill_train_row(&ts, k, seed, (uint64_t)st.step, gidx[b], sq + (size_t)b * (size_t)sc.T,
                               ps + (size_t)b * (size_t)sc.T, ng + (size_t)b * (size_t)sc.T, sc.n_items);
            }
            sasrec_batch bt = {B, sq, ps, ng, gidx, (double)ntgt, seed, (uint64_t)st.step, 1, NULL};
            double loss = 0;
            sasrec_zero_grad(&m);
            rc = B > 0 ? sasrec_train_step(&m, &a, &bt, &loss) : DM_OK;
            rc = par_agree(ctx, rc);
            if (rc) break;
            rc = par_allreduce_sum_f32(ctx, m.grads_mem, m.nparams);
            if (rc) break;
            /* The key bias cannot change any attention output (it adds q.b_k to every score of a
               query, which the softmax cancels), so its exact gradient is zero and the computed one
               is rounding noise; Adam would turn that noise into lr-sized steps that differ with
               the summation order, i.e. with the rank count. Use the exact zero. */
            for (int l = 0; l < sc.L; l++) memset(m.grads.qkvb + (size_t)l * 3 * (size_t)sc.C + (size_t)sc.C, 0, (size_t)sc.C * sizeof(float));
            sasrec_adam_step(&m);
            loss_sum += loss;
            st.step++;
            if (st.step % 16 == 0) {
                int64_t stop = g_stop;
                rc = par_allreduce_max_i64(ctx, &stop, 1);
                if (!rc && stop) {
                    st.batch++;
                    st.epoch_loss = loss_sum;
                    st.epoch_secs = dm_wtime() - t0;
                    rc = par_allreduce_sum_f64(ctx, &st.epoch_loss, 1);
                    if (!rc) rc = par_bcast(ctx, &st.epoch_secs, sizeof st.epoch_secs, 0);
                    if (!rc) rc = ckpt_write(ctx, cfg, &m, best, &st, stage_hash, curve, ncurve);
                    if (!rc) {
                        rc = DM_ERR(DM_EIO, "interrupted by a signal at step %ld; checkpoint written", st.step);
                        DM_HINT("rerun the same command (run.resume = true) to continue from it");
                    }
                }
            }
        }
        if (rc) break;
        double lsum = loss_sum;
        par_allreduce_sum_f64(ctx, &lsum, 1);
        double dt = dm_wtime() - t0;
        t_train += dt;
        long nsteps = st.step - steps0;
        st.epoch++;
        st.batch = 0;
        double vm = NAN;
        int do_eval = has_valid && (st.epoch % eval_every == 0 || st.epoch == epochs);
        if (do_eval) {
            rc = validate(ctx, cfg, &vs, &scr, &spec, col, &vm);
            if (rc) break;
            if (vm > st.best) {
                st.best = vm;
                st.best_epoch = st.epoch;
                st.bad_rounds = 0;
                memcpy(best, m.params_mem, m.nparams * sizeof *best);
            } else
                st.bad_rounds++;
        }
        double *nc = realloc(curve, (ncurve + 1) * 4 * sizeof *nc);
        if (!nc) {
            rc = DM_ERR(DM_ENOMEM, "out of memory");
            break;
        }
        curve = nc;
        curve[ncurve * 4 + 0] = (double)st.epoch;
        curve[ncurve * 4 + 1] = nsteps ? lsum / (double)nsteps : NAN;
        curve[ncurve * 4 + 2] = vm;
        curve[ncurve * 4 + 3] = dt;
        ncurve++;
        if ((do_eval || st.epoch == 1 || dm_log_verbosity() >= 2) && !(epochs_override > 0 && dm_log_verbosity() < 2))
            dm_log("  epoch %4ld  loss %.4f  %.1f ms/step  %.0f seq/s%s%s", st.epoch, nsteps ? lsum / (double)nsteps : NAN,
                   nsteps ? 1e3 * dt / (double)nsteps : 0.0, dt > 0 ? (double)ts.nu / dt : 0.0, do_eval ? "  valid " : "",
                   do_eval ? sel : "");
        if (do_eval) dm_log("               valid %s %.4f (best %.4f at epoch %ld)", sel, vm, st.best, st.best_epoch);
        if (patience > 0 && st.bad_rounds >= patience) {
            stopped_early = 1;
            dm_log("  early stop: no improvement in %ld validation rounds", patience);
            break;
        }
        if (ck_every > 0 && st.epoch % ck_every == 0 && st.epoch < epochs)
            rc = ckpt_write(ctx, cfg, &m, best, &st, stage_hash, curve, ncurve);
    }
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    /* keep the selected weights (the last ones when there is no validation split) */
    if (!rc && has_valid && st.best_epoch > 0) memcpy(m.params_mem, best, m.nparams * sizeof *best);
    if (!f) goto keep;
    if (!rc) {
        for (int k = 0; k < SASREC_NTENSORS && !rc; k++) {
            const char *name;
            int nd;
            size_t shape[3];
            size_t n = sasrec_tensor_info(&sc, k, &name, &nd, shape);
            char nm[128];
            snprintf(nm, sizeof nm, "/sasrec/weights/%s", name);
            size_t cols = nd == 1 ? 0 : n / shape[0];
            rc = h5_write_all(f, nm, H5_F32, shape[0], cols, m.params_mem + m.offset[k]);
        }
    }
    if (!rc) {
        float *e = malloc(d->n_items * (size_t)sc.C * sizeof *e + 4);
        if (!e) rc = DM_ERR(DM_ENOMEM, "out of memory");
        else {
            sasrec_item_table(&m, e);
            rc = h5_write_all(f, "/sasrec/e_cf", H5_F32, d->n_items, (size_t)sc.C, e);
            free(e);
        }
    }
    if (!rc) rc = write_states(ctx, cfg, d, roles, &scr, f, DM_VALID, "/sasrec/state_valid");
    if (!rc) rc = write_states(ctx, cfg, d, roles, &scr, f, DM_TEST, "/sasrec/state_test");
    if (!rc && ncurve) rc = h5_write_all(f, "/sasrec/curve", H5_F64, ncurve, 4, curve);
    if (!rc) {
        rc = h5_attr_str(f, "/sasrec/curve", "columns", "epoch, mean loss, validation metric, seconds");
        if (!rc) rc = h5_attr_str(f, "/sasrec", "select_metric", sel);
        if (!rc) rc = h5_attr_f64(f, "/sasrec", "best_valid", st.best);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "best_epoch", st.best_epoch);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "epochs_run", st.epoch);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "steps", st.step);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "early_stopped", stopped_early);
        if (!rc) rc = h5_attr_f64(f, "/sasrec", "train_seconds", t_train);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "seed", (int64_t)seed);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "hidden", sc.C);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "maxlen", sc.T);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "blocks", sc.L);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "heads", sc.H);
        if (!rc) rc = h5_attr_i64(f, "/sasrec", "ffn", sc.F ? sc.F : sc.C);
        if (!rc) rc = h5_attr_str(f, "/sasrec", "norm", norm);
    }
    if (!rc) dm_log("  sasrec: %ld epochs, %ld steps, %.1fs training; kept epoch %ld (valid %s %.4f)", st.epoch, st.step,
                    t_train, st.best_epoch, sel, st.best);
keep:
    for (int c = 0; c < dv.n_cand; c++) free(dv.cand[c].rows);
    metrics_spec_free(&spec);
    free(best);
    free(seq);
    free(tmp);
    free(perm);
    free(gidx);
    free(states);
    free(curve);
    trainset_free(&ts);
    if (!rc && out_m && out_a) {
        *out_m = m;
        *out_a = a;
    } else {
        sasrec_acts_free(&a);
        sasrec_free(&m);
    }
    return par_agree(ctx, rc);
}

int cf_sasrec_train(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const char *stage_hash,
                    h5file *f)
{
    return cf_sasrec_fit(ctx, cfg, d, roles, stage_hash, f, 0, NULL, NULL);
}

int cf_sasrec_load(par_ctx *ctx, const char *path, size_t n_items, int max_batch, sasrec *m, sasrec_acts *a)
{
    memset(m, 0, sizeof *m);
    memset(a, 0, sizeof *a);
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    sasrec_config sc;
    sasrec_config_default(&sc, (int)n_items);
    int64_t v;
    char *norm = NULL;
    int rc = h5_check_format(&f, "dynmm-cf", 1);
    if (!rc && !h5_exists(&f, "/sasrec/weights")) {
        rc = DM_ERR(DM_EFORMAT, "'%s' holds no SASRec model", path);
        DM_HINT("add sasrec to cf.models and rerun train-cf");
    }
#define A(name, dst) if (!rc) { rc = h5_get_attr_i64(&f, "/sasrec", name, &v); dst = (int)v; }
    A("hidden", sc.C);
    A("maxlen", sc.T);
    A("blocks", sc.L);
    A("heads", sc.H);
    A("ffn", sc.F);
#undef A
    if (!rc) rc = h5_get_attr_str(&f, "/sasrec", "norm", &norm);
    if (!rc) {
        sc.norm = !strcmp(norm, "pre") ? SASREC_NORM_PRE : !strcmp(norm, "post") ? SASREC_NORM_POST : SASREC_NORM_KANG;
        sc.max_batch = max_batch;
        sc.dropout = 0;
        rc = sasrec_config_check(&sc);
    }
    free(norm);
    if (!rc) rc = sasrec_init(m, &sc);
    if (!rc) rc = sasrec_acts_init(a, &sc);
    for (int k = 0; k < SASREC_NTENSORS && !rc; k++) {
        const char *name;
        int nd;
        size_t shape[3];
        size_t n = sasrec_tensor_info(&sc, k, &name, &nd, shape);
        char nm[128];
        snprintf(nm, sizeof nm, "/sasrec/weights/%s", name);
        size_t r, c;
        rc = h5_shape(&f, nm, &r, &c, NULL);
        if (!rc && r * (c ? c : 1) != n) rc = DM_ERR(DM_EFORMAT, "'%s': %s has %zu values, the model needs %zu", path, nm, r * (c ? c : 1), n);
        if (!rc) rc = h5_read_rows(&f, nm, H5_F32, 0, r, m->params_mem + m->offset[k]);
    }
    h5_close(&f);
    return par_agree(ctx, rc);
}

int cf_sasrec_states(sasrec *m, sasrec_acts *a, const int32_t *seq, int B, float *out)
{
    return sasrec_user_states(m, a, seq, B, out);
}
