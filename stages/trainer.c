/* trainer.c: data-parallel training of any dm_model_ops model, see trainer.h. */
#include "trainer.h"

#include "cands.h"
#include "ckpt.h"
#include "evalcore.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "dynmm-trainer-checkpoint"

/* "<group>.<key>" of the model */
static const char *key(const dm_model_ops *ops, const char *k)
{
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "%s.%s", ops->name, k);
    return buf;
}

int trainer_check(const dm_cfg *cfg, const dm_model_ops *ops)
{
    return cands_check_key(cfg, key(ops, "select_protocol"));
}

uint64_t trainer_seed(const dm_cfg *cfg, const dm_model_ops *ops)
{
    long long s = dm_cfg_int(cfg, key(ops, "seed"));
    if (s >= 0) return (uint64_t)s;
    uint64_t run = (uint64_t)dm_cfg_int(cfg, "run.seed");
    if (ops->seed_key) return dm_rng_key(run, ops->seed_key, 0);
    return dm_rng_key(run, 0x7A1, (uint64_t)ops->name[0] << 8 | (uint64_t)ops->name[1]);
}

/* the cursor of a training run */
typedef struct {
    long epoch, batch, step;  /* next epoch (0-based), next batch within it, steps taken */
    double best;              /* best validation metric */
    long best_epoch, bad_rounds;
    double epoch_loss, epoch_secs; /* the current epoch's loss sum over all ranks and seconds so far */
} cursor;

typedef struct {
    par_ctx *ctx;
    const dm_cfg *cfg;
    const dm_model_ops *ops;
    void *self;
    float *best;              /* (nparams) */
    ckpt ck;                  /* the checkpoint (ck.hash NULL = none) */
    size_t score_batch;       /* users per score() call */
    int log;                  /* verbosity of the progress lines */
} run_ctx;

/* ---- checkpoints ---------------------------------------------------------------------------- */

static int save_state(run_ctx *r, const cursor *c, const double *curve, size_t ncurve)
{
    size_t np, no = 0;
    float *p = r->ops->params(r->self, &np), *o = r->ops->opt_state ? r->ops->opt_state(r->self, &no) : NULL;
    h5file f;
    DM_CALL(ckpt_create(&r->ck, &f));
    int rc = h5_write_all(&f, "/params", H5_F32, np, 0, p);
    if (!rc && o) rc = h5_write_all(&f, "/opt", H5_F32, no, 0, o);
    if (!rc) rc = h5_write_all(&f, "/best", H5_F32, np, 0, r->best);
    if (!rc && ncurve) rc = h5_write_all(&f, "/curve", H5_F64, ncurve, 4, curve);
    const int64_t iv[] = {c->epoch, c->batch, c->step, c->best_epoch, c->bad_rounds, r->ops->opt_steps ? *r->ops->opt_steps(r->self) : 0};
    const double dv[] = {c->best, c->epoch_loss, c->epoch_secs};
    static const char *const in[] = {"epoch", "batch", "step", "best_epoch", "bad_rounds", "opt_steps"};
    static const char *const dn[] = {"best", "epoch_loss", "epoch_seconds"};
    for (int k = 0; k < 6 && !rc; k++) rc = h5_attr_i64(&f, "/", in[k], iv[k]);
    for (int k = 0; k < 3 && !rc; k++) rc = h5_attr_f64(&f, "/", dn[k], dv[k]);
    return ckpt_commit(&r->ck, &f, rc);
}

/* *found = 0 when there is no checkpoint of this stage hash to resume */
static int load_state(run_ctx *r, cursor *c, double **curve, size_t *ncurve, int *found)
{
    h5file f;
    DM_CALL(ckpt_open(&r->ck, &f, found));
    if (!*found) return DM_OK;
    size_t np, no = 0;
    float *p = r->ops->params(r->self, &np), *o = r->ops->opt_state ? r->ops->opt_state(r->self, &no) : NULL;
    int rc = h5_read_rows(&f, "/params", H5_F32, 0, np, p);
    if (!rc && o) rc = h5_read_rows(&f, "/opt", H5_F32, 0, no, o);
    if (!rc) rc = h5_read_rows(&f, "/best", H5_F32, 0, np, r->best);
    if (!rc && h5_exists(&f, "/curve")) {
        void *v;
        size_t rows, cols;
        rc = h5_read_all(&f, "/curve", H5_F64, &v, &rows, &cols);
        if (!rc) {
            *curve = v;
            *ncurve = rows;
        }
    }
    int64_t iv[6] = {0};
    static const char *const in[] = {"epoch", "batch", "step", "best_epoch", "bad_rounds", "opt_steps"};
    static const char *const dn[] = {"best", "epoch_loss", "epoch_seconds"};
    double dv[3] = {0};
    for (int k = 0; k < 6 && !rc; k++) rc = h5_get_attr_i64(&f, "/", in[k], &iv[k]);
    for (int k = 0; k < 3 && !rc; k++) rc = h5_get_attr_f64(&f, "/", dn[k], &dv[k]);
    h5_close(&f);
    DM_CALL(par_agree(r->ctx, rc));
    *c = (cursor){iv[0], iv[1], iv[2], dv[0], iv[3], iv[4], dv[1], dv[2]};
    if (r->ops->opt_steps) *r->ops->opt_steps(r->self) = (long)iv[5];
    dm_log("  %s: resuming from %s: epoch %ld, batch %ld, step %ld", r->ops->name, r->ck.path, c->epoch, c->batch, c->step);
    return DM_OK;
}

/* ---- validation ------------------------------------------------------------------------------- */

int trainer_score(void *scorer, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    trainer_scorer *sc = scorer;
    return sc->ops->score(sc->self, s->d, s->roles, s->split, users, B, scores);
}

static int trainer_score_items(void *scorer, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n,
                               float *scores)
{
    trainer_scorer *sc = scorer;
    return sc->ops->score_items(sc->self, s->d, s->roles, s->split, users, B, items, n, scores);
}

typedef struct {
    metrics_spec spec;
    size_t col;
    dm_dataset dv;   /* a shallow copy of the dataset holding this rank's validation candidates */
    ev_split vs;
    int on;          /* the dataset has a validation split */
    size_t lo, hi;   /* this rank's users */
} valid_set;

/* validation = 0: no rounds (v->on = 0) */
static int valid_init(par_ctx *ctx, const dm_cfg *cfg, const dm_model_ops *ops, const dm_dataset *d, const int8_t *roles, int validation,
                      valid_set *v)
{
    memset(v, 0, sizeof *v);
    int64_t ks[1] = {10};
    DM_CALL(metrics_spec_init(&v->spec, ks, 1, METRICS_TIES_EXPECTED));
    const char *sel = dm_cfg_str(cfg, key(ops, "select_metric"));
    v->col = !strcmp(sel, "hit@10") ? metrics_col(&v->spec, METRICS_HIT, 0)
             : !strcmp(sel, "mrr")  ? metrics_col(&v->spec, METRICS_MRR, 0)
                                    : metrics_col(&v->spec, METRICS_NDCG, 0);
    for (size_t i = 0; i < d->n_inter && !v->on && validation; i++) v->on = roles[i] == DM_VALID;
    v->dv = *d;
    v->dv.n_cand = 0;
    memset(v->dv.cand, 0, sizeof v->dv.cand);
    dm_shard_even(d->n_users, ctx->size, ctx->rank, &v->lo, &v->hi);
    v->vs = (ev_split){&v->dv, roles, DM_VALID, NULL};
    if (!v->on) return DM_OK;
    const char *vp = dm_cfg_str(cfg, key(ops, "select_protocol"));
    return cands_draw(ctx, cfg, &v->dv, &vp, 1, v->lo, v->hi);
}

static void valid_free(valid_set *v)
{
    for (int c = 0; c < v->dv.n_cand; c++) free(v->dv.cand[c].rows);
    metrics_spec_free(&v->spec);
}

static int validate(run_ctx *r, valid_set *v, double *out)
{
    par_ctx *ctx = r->ctx;
    double *rows, *mean;
    DM_ALLOC(rows, (v->hi - v->lo + 1) * v->spec.ncols);
    DM_ALLOC(mean, v->spec.ncols);
    trainer_scorer sc = {r->ops, r->self};
    int rc = ev_score_users_items(&v->vs, &v->spec, dm_cfg_str(r->cfg, key(r->ops, "select_protocol")), trainer_score,
                                  r->ops->score_items ? trainer_score_items : NULL, &sc, v->lo, v->hi, r->score_batch, rows);
    rc = par_agree(ctx, rc);
    int64_t cnt = 0;
    if (!rc) rc = ev_mean(ctx, &v->spec, rows, v->hi - v->lo, mean, &cnt);
    if (!rc) *out = mean[v->col];
    free(rows);
    free(mean);
    return rc;
}

/* ---- one epoch ------------------------------------------------------------------------------------ */

typedef struct {
    size_t *perm;   /* (n_examples) */
    size_t *ex;     /* (this rank's share of a batch) */
    int64_t *gidx;
    long G;         /* global batch */
} epoch_buf;

/* A time left as "12m05s", or "2h07m" from an hour on. */
static const char *fmt_eta(double left, char *out, size_t cap)
{
    long m = (long)(left / 60.0), sec = (long)(left - 60.0 * (double)m + 0.5);
    if (m >= 60) snprintf(out, cap, "%ldh%02ldm", m / 60, m % 60);
    else snprintf(out, cap, "%ldm%02lds", m, sec > 59 ? 59 : sec);
    return out;
}

/* Seconds between the progress lines of an epoch that runs longer: 60, or DM_PROGRESS_SECONDS. */
static double progress_seconds(void)
{
    const char *e = getenv("DM_PROGRESS_SECONDS");
    double v = e && *e ? strtod(e, NULL) : 0.0;
    return v > 0 ? v : 60.0;
}

void trainer_progress(int level, const char *name, long epoch, long done, long total, double t0, double *t_note)
{
    double now = dm_wtime();
    if (now - *t_note < progress_seconds() || done >= total || done < 1) return;
    double per = (now - t0) / (double)done;
    char d[48];
    dm_log_v(level, "  %s epoch %4ld  step %ld of %ld (%.0f%%)  %.1f ms/step  epoch eta %s", name, epoch, done, total,
             100.0 * (double)done / (double)total, 1e3 * per, fmt_eta(per * (double)(total - done), d, sizeof d));
    *t_note = now;
}

/* The steps of epoch c->epoch from batch c->batch on; *lsum = this rank's loss sum (rank 0 also
 * carries the sums before a checkpoint). Checks for a stop signal every 16 steps. */
static int run_epoch(run_ctx *r, cursor *c, epoch_buf *b, uint64_t seed, double *lsum, double t0, const double *curve, size_t ncurve)
{
    const dm_model_ops *ops = r->ops;
    size_t n = ops->n_examples(r->self), np;
    float *g = ops->grads(r->self, &np);
    long nb = (long)((n + (size_t)b->G - 1) / (size_t)b->G);
    int rc = DM_OK;
    double t_note = dm_wtime(); /* progress lines inside a long epoch */
    for (; c->batch < nb && !rc; c->batch++) {
        size_t b0 = (size_t)c->batch * (size_t)b->G, bn = n - b0 < (size_t)b->G ? n - b0 : (size_t)b->G, lo, hi;
        dm_shard_even(bn, r->ctx->size, r->ctx->rank, &lo, &hi);
        double norm = ops->batch_norm(r->self, b->perm + b0, bn), loss = 0;
        for (size_t k = lo; k < hi; k++) {
            b->ex[k - lo] = b->perm[b0 + k];
            b->gidx[k - lo] = (int64_t)(b0 + k);
        }
        memset(g, 0, np * sizeof *g);
        rc = hi > lo ? ops->grad(r->self, b->ex, hi - lo, b->gidx, seed, (uint64_t)c->step, norm, &loss) : DM_OK;
        rc = par_agree(r->ctx, rc);
        if (!rc) rc = par_allreduce_sum_f32(r->ctx, g, np);
        if (rc) break;
        if (ops->after_reduce) ops->after_reduce(r->self);
        ops->step(r->self);
        *lsum += ops->loss_is_mean ? loss : loss / norm;
        c->step++;
        trainer_progress(r->log, ops->name, c->epoch + 1, c->batch + 1, nb, t0, &t_note); /* t0 counts a resumed epoch's earlier steps */
        if (!r->ck.hash || c->step % 16) continue;
        int stop;
        rc = ckpt_stop_requested(r->ctx, &stop);
        if (rc || !stop) continue;
        c->batch++;
        c->epoch_loss = *lsum;
        c->epoch_secs = dm_wtime() - t0;
        rc = par_allreduce_sum_f64(r->ctx, &c->epoch_loss, 1);
        if (!rc) rc = par_bcast(r->ctx, &c->epoch_secs, sizeof c->epoch_secs, 0);
        if (!rc) rc = save_state(r, c, curve, ncurve);
        if (!rc) rc = ckpt_interrupted(&r->ck, ops->name, "at step %ld", c->step);
    }
    return rc;
}

static void shuffle(size_t *perm, size_t n, uint64_t seed, long epoch)
{
    for (size_t k = 0; k < n; k++) perm[k] = k;
    dm_rng pr;
    dm_rng_seed(&pr, dm_rng_key(seed, 0xE90C, (uint64_t)epoch));
    for (size_t k = n; k > 1; k--) {
        size_t j = dm_rng_below(&pr, k), x = perm[k - 1];
        perm[k - 1] = perm[j];
        perm[j] = x;
    }
}

/* ---- the loop ---------------------------------------------------------------------------------------- */

typedef struct {
    long epochs, eval_every, patience, ck_every, G;
} plan;

static plan read_plan(const dm_cfg *cfg, const dm_model_ops *ops, const trainer_opts *o)
{
    plan p = {o->epochs > 0 ? o->epochs : (long)dm_cfg_int(cfg, key(ops, "epochs")), (long)dm_cfg_int(cfg, key(ops, "eval_every")),
              (long)dm_cfg_int(cfg, key(ops, "patience")), o->stage_hash ? (long)dm_cfg_int(cfg, key(ops, "checkpoint_every")) : 0,
              (long)dm_cfg_int(cfg, key(ops, "batch"))};
    return p;
}

/* one validation round after an epoch; *stop = 1 when patience runs out */
static int end_epoch(run_ctx *r, valid_set *v, const plan *p, cursor *c, trainer_run *t, double lsum, long nsteps, double dt, int *stop)
{
    const dm_model_ops *ops = r->ops;
    double vm = NAN;
    int do_eval = v->on && (c->epoch % p->eval_every == 0 || c->epoch == p->epochs);
    if (do_eval) {
        DM_CALL(validate(r, v, &vm));
        size_t np;
        const float *w = ops->params(r->self, &np);
        if (vm > c->best) {
            c->best = vm;
            c->best_epoch = c->epoch;
            c->bad_rounds = 0;
            memcpy(r->best, w, np * sizeof *w);
        } else
            c->bad_rounds++;
    }
    double *nc = realloc(t->curve, (t->ncurve + 1) * 4 * sizeof *nc);
    if (!nc) return DM_ERR(DM_ENOMEM, "out of memory");
    t->curve = nc;
    double *row = nc + t->ncurve++ * 4;
    row[0] = (double)c->epoch;
    row[1] = nsteps ? lsum / (double)nsteps : NAN;
    row[2] = vm;
    row[3] = dt;
    /* the time left at the mean epoch time so far (an upper bound: early stopping may end sooner) */
    char eta[96] = "";
    if (c->epoch < p->epochs) {
        double sum = 0;
        for (size_t k = 0; k < t->ncurve; k++) sum += nc[k * 4 + 3];
        double left = sum / (double)t->ncurve * (double)(p->epochs - c->epoch);
        char d[48];
        snprintf(eta, sizeof eta, "  eta %s", fmt_eta(left, d, sizeof d));
    }
    if (do_eval || c->epoch == 1 || dm_log_verbosity() >= 2)
        dm_log_v(r->log, "  %s epoch %4ld  loss %.4f  %.1f ms/step  %.0f examples/s%s", ops->name, c->epoch, row[1],
                 nsteps ? 1e3 * dt / (double)nsteps : 0.0, dt > 0 ? (double)ops->n_examples(r->self) / dt : 0.0, eta);
    if (do_eval)
        dm_log_v(r->log, "  %*s valid %s %.4f (best %.4f at epoch %ld)", (int)strlen(ops->name), "",
                 dm_cfg_str(r->cfg, key(ops, "select_metric")), vm, c->best, c->best_epoch);
    *stop = p->patience > 0 && c->bad_rounds >= p->patience;
    if (*stop) dm_log_v(r->log, "  %s: early stop, no improvement in %ld validation rounds", ops->name, p->patience);
    return DM_OK;
}

static int train_loop(run_ctx *r, valid_set *v, const plan *p, cursor *c, epoch_buf *b, uint64_t seed, trainer_run *t)
{
    int rc = DM_OK, stop = 0;
    size_t n = r->ops->n_examples(r->self);
    while (!rc && !stop && c->epoch < p->epochs) {
        shuffle(b->perm, n, seed, c->epoch);
        /* a resumed epoch continues its sums: rank 0 carries the steps before the checkpoint */
        double t0 = dm_wtime() - c->epoch_secs, lsum = r->ctx->rank == 0 ? c->epoch_loss : 0.0;
        long steps0 = c->step - c->batch;
        c->epoch_loss = c->epoch_secs = 0.0;
        rc = run_epoch(r, c, b, seed, &lsum, t0, t->curve, t->ncurve);
        if (rc) break;
        rc = par_allreduce_sum_f64(r->ctx, &lsum, 1);
        double dt = dm_wtime() - t0;
        t->train_seconds += dt;
        c->epoch++;
        c->batch = 0;
        if (!rc) rc = end_epoch(r, v, p, c, t, lsum, c->step - steps0, dt, &stop);
        if (!rc && !stop && p->ck_every > 0 && c->epoch % p->ck_every == 0 && c->epoch < p->epochs) rc = save_state(r, c, t->curve, t->ncurve);
    }
    t->early_stopped = stop;
    return rc;
}

static void trainer_summary(const run_ctx *r, const cursor *c, const trainer_run *t)
{
    dm_log_v(r->log, "  %s: %ld epochs, %ld steps, %.1fs training; kept epoch %ld (valid %s %.4f)", r->ops->name, c->epoch, c->step,
             t->train_seconds, c->best_epoch, dm_cfg_str(r->cfg, key(r->ops, "select_metric")), c->best);
}

int trainer_fit(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const dm_model_ops *ops, const trainer_opts *opts,
                trainer_run *t)
{
    static const trainer_opts none = {NULL, 0, 1};
    const trainer_opts *o = opts ? opts : &none;
    memset(t, 0, sizeof *t);
    t->ops = ops;
    t->seed = trainer_seed(cfg, ops);
    plan p = read_plan(cfg, ops, o);
    size_t lo, hi, sb = ops->score_batch ? ops->score_batch(cfg) : 256;
    dm_shard_even((size_t)p.G, ctx->size, 0, &lo, &hi);
    DM_CALL(par_agree(ctx, ops->create(&t->self, cfg, d, roles, (int)(hi - lo > sb ? hi - lo : sb), t->seed)));
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.cfg = cfg;
    r.ops = ops;
    r.self = t->self;
    r.score_batch = sb;
    r.log = o->log_level > 0 ? o->log_level : 1;
    char ck[128];
    snprintf(ck, sizeof ck, "ckpt_%s.h5", ops->name);
    int rc = o->stage_hash ? ckpt_init(&r.ck, ctx, cfg, ck, CKPT_FORMAT, ops->name, o->stage_hash) : DM_OK;
    size_t np, n = ops->n_examples(t->self);
    const float *w = ops->params(t->self, &np);
    epoch_buf b = {malloc((n + 1) * sizeof(size_t)), malloc((hi - lo + 1) * sizeof(size_t)), malloc((hi - lo + 1) * sizeof(int64_t)), p.G};
    r.best = malloc((np + 1) * sizeof *r.best);
    if (!rc && (!b.perm || !b.ex || !b.gidx || !r.best)) rc = DM_ERR(DM_ENOMEM, "out of memory for training %s", ops->label);
    rc = par_agree(ctx, rc);
    if (!rc) memcpy(r.best, w, np * sizeof *w);
    valid_set v;
    memset(&v, 0, sizeof v);
    if (!rc) rc = valid_init(ctx, cfg, ops, d, roles, o->epochs <= 0, &v);
    cursor c = {0, 0, 0, -INFINITY, -1, 0, 0.0, 0.0};
    int found = 0;
    if (!rc && r.ck.hash) rc = load_state(&r, &c, &t->curve, &t->ncurve, &found);
    if (!rc)
        dm_log_v(r.log, "  %s: %zu %s, %zu parameters, global batch %ld, %ld steps/epoch", ops->label, n,
                 ops->examples ? ops->examples : "training examples", np, p.G, (long)((n + (size_t)p.G - 1) / (size_t)p.G));
    if (r.ck.hash) ckpt_signals_install();
    if (!rc) rc = train_loop(&r, &v, &p, &c, &b, t->seed, t);
    if (r.ck.hash) ckpt_signals_restore();
    /* keep the selected weights (the last ones when there is no validation split) */
    if (!rc && v.on && c.best_epoch > 0) memcpy(ops->params(t->self, &np), r.best, np * sizeof *r.best);
    t->best_epoch = c.best_epoch;
    t->best_valid = c.best;
    t->epochs_run = c.epoch;
    t->steps = c.step;
    if (!rc) trainer_summary(&r, &c, t);
    valid_free(&v);
    free(b.perm);
    free(b.ex);
    free(b.gidx);
    free(r.best);
    if (!rc && r.ck.hash) ckpt_remove(&r.ck); /* the checkpoint served its purpose */
    return par_agree(ctx, rc);
}

int trainer_write(par_ctx *ctx, const trainer_run *t, h5file *f)
{
    const dm_model_ops *ops = t->ops;
    char g[160], nm[320];
    snprintf(g, sizeof g, "/%s", ops->name);
    int rc = DM_OK;
    const char *tn;
    size_t rows, cols;
    float *data;
    for (int k = 0; !rc && ops->tensor(t->self, k, &tn, &rows, &cols, &data); k++) {
        snprintf(nm, sizeof nm, "%s/weights/%s", g, tn);
        rc = h5_write_all(f, nm, H5_F32, rows, cols, data);
    }
    snprintf(nm, sizeof nm, "%s/curve", g);
    if (!rc && t->ncurve) rc = h5_write_all(f, nm, H5_F64, t->ncurve, 4, t->curve);
    if (!rc && t->ncurve) rc = h5_attr_str(f, nm, "columns", "epoch, mean loss, validation metric, seconds");
    if (!rc) rc = h5_attr_str(f, g, "label", ops->label);
    if (!rc) rc = h5_attr_i64(f, g, "best_epoch", t->best_epoch);
    if (!rc) rc = h5_attr_f64(f, g, "best_valid", t->best_valid);
    if (!rc) rc = h5_attr_i64(f, g, "epochs_run", t->epochs_run);
    if (!rc) rc = h5_attr_i64(f, g, "steps", t->steps);
    if (!rc) rc = h5_attr_i64(f, g, "early_stopped", t->early_stopped);
    if (!rc) rc = h5_attr_f64(f, g, "train_seconds", t->train_seconds);
    if (!rc) rc = h5_attr_i64(f, g, "seed", (int64_t)t->seed);
    return par_agree(ctx, rc);
}

int trainer_load(par_ctx *ctx, const char *path, const dm_dataset *d, const dm_model_ops *ops, int max_batch, void **self)
{
    *self = NULL;
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    char *text = NULL, g[160], nm[320];
    snprintf(g, sizeof g, "/%s/weights", ops->name);
    dm_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = h5_exists(&f, g) ? DM_OK : DM_ERR(DM_EFORMAT, "'%s' holds no %s model (no %s)", path, ops->label, g);
    if (rc) DM_HINT("add '%s' to cf.models and rerun train-cf", ops->name);
    if (!rc) rc = h5_get_attr_str(&f, "/", "config", &text);
    if (!rc) rc = dm_cfg_init(&cfg);
    if (!rc) rc = dm_cfg_load_string(&cfg, text, path);
    const int8_t *roles = NULL;
    if (!rc) rc = cands_split(&cfg, d, &roles);
    if (!rc) rc = ops->create(self, &cfg, d, roles, max_batch, 0);
    const char *tn;
    size_t rows, cols, r2, c2;
    float *data;
    for (int k = 0; !rc && ops->tensor(*self, k, &tn, &rows, &cols, &data); k++) {
        snprintf(nm, sizeof nm, "%s/%s", g, tn);
        rc = h5_shape(&f, nm, &r2, &c2, NULL);
        if (!rc && (r2 != rows || c2 != cols))
            rc = DM_ERR(DM_EFORMAT, "'%s': %s is (%zu, %zu), the model needs (%zu, %zu)", path, nm, r2, c2, rows, cols);
        if (!rc) rc = h5_read_rows(&f, nm, H5_F32, 0, rows, data);
    }
    h5_close(&f);
    free(text);
    if (cfg.v) dm_cfg_free(&cfg);
    rc = par_agree(ctx, rc);
    if (rc && *self) {
        ops->destroy(*self);
        *self = NULL;
    }
    return rc;
}

void trainer_run_free(trainer_run *t)
{
    if (t->self) t->ops->destroy(t->self);
    free(t->curve);
    memset(t, 0, sizeof *t);
}
