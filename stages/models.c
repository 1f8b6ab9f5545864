/* models.c: the model registry, see models.h. */
#include "models.h"

#include "cands.h"
#include "cf_sasrec.h"
#include "ease.h"
#include "itemknn.h"
#include "pq_model.h"
#include "trainer.h"

#include "../src/bert4rec/bert4rec.h"
#include "../src/bpr/bpr.h"
#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/shard.h"
#include "../src/gru4rec/gru4rec.h"
#include "../src/lightgcn/lightgcn.h"
#include "../src/nn/gemm.h"
#include "../src/sasrec/sasrec_model.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- popularity, EASE, SASRec and the aligner: their own paths --------------------------------- */

/* the state of the built-in models: counts, or EASE's B, or an item table and user states */
typedef struct {
    size_t n_items;
    double *pop;        /* pop (n_items) */
    float *B;           /* ease (n_items, n_items) */
    model_latents lat;  /* sasrec, align */
    int32_t *hist;      /* scratch: one user's history */
} builtin;

static int pop_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    builtin *m = mv;
    (void)s;
    (void)users;
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < m->n_items; i++) scores[b * m->n_items + i] = (float)m->pop[i];
    return DM_OK;
}

static int ease_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    builtin *m = mv;
    size_t n = m->n_items;
    for (size_t b = 0; b < B; b++) {
        float *sc = scores + b * n;
        memset(sc, 0, n * sizeof *sc);
        size_t nh = ev_history(s, users[b], m->hist);
        for (size_t k = 0; k < nh; k++) cblas_saxpy((int)n, 1.0f, m->B + (size_t)m->hist[k] * n, 1, sc, 1);
    }
    return DM_OK;
}

int model_latents_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    model_latents *m = mv;
    const float *st = m->state[s->split];
    float *u = malloc(B * m->C * sizeof *u + 4);
    if (!u) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t b = 0; b < B; b++) memcpy(u + b * m->C, st + users[b] * m->C, m->C * sizeof *u);
    /* the fixed-order kernel: a score depends on its user's state and item's row alone, not on the
       rows of the call (OpenBLAS's do, by an ulp: evalshard.h), so rows match at any rank count; in
       blocks of items, as its scratch holds a copy of the rows of a call */
    for (size_t j0 = 0; j0 < m->n_items; j0 += 16384) {
        size_t nj = m->n_items - j0 < 16384 ? m->n_items - j0 : 16384;
        nn_sgemm_fixed(CblasNoTrans, CblasTrans, (int)B, (int)nj, (int)m->C, 1.0f, u, (int)m->C, m->e + j0 * m->C, (int)m->C, 0.0f,
                       scores + j0, (int)m->n_items);
    }
    free(u);
    return DM_OK;
}

int model_latents_score_items(void *mv, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n,
                              float *scores)
{
    model_latents *m = mv;
    return model_dot_items(m->e, m->n_items, m->C, m->state[s->split], users, B, items, n, scores);
}

int model_dot_items(const float *e, size_t n_items, size_t C, const float *st, const size_t *users, size_t B, const int32_t *items,
                    size_t n, float *scores)
{
    for (size_t k = 0; k < B * n; k++)
        if (items[k] < 0 || (size_t)items[k] >= n_items)
            return DM_ERR(DM_EINTERNAL, "candidate item %d of user %zu outside the table's %zu rows", (int)items[k], users[k / n], n_items);
    int nt = omp_get_max_threads();
    float *rowbuf = malloc((size_t)nt * n * C * sizeof *rowbuf + 4);
    if (!rowbuf) return DM_ERR(DM_ENOMEM, "out of memory for %zu candidate rows", n);
    /* each user's candidate rows gathered, then the same fixed-order kernel as the whole row: the
       same bits for every (user, item) */
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t b = 0; b < B; b++) {
        float *rb = rowbuf + (size_t)omp_get_thread_num() * n * C;
        for (size_t k = 0; k < n; k++) memcpy(rb + k * C, e + (size_t)items[b * n + k] * C, C * sizeof *rb);
        nn_sgemm_fixed(CblasNoTrans, CblasTrans, 1, (int)n, (int)C, 1.0f, st + users[b] * C, (int)C, rb, (int)C, 0.0f, scores + b * n,
                       (int)n);
    }
    free(rowbuf);
    return DM_OK;
}

static int latents_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    return model_latents_score(&((builtin *)mv)->lat, s, users, B, scores);
}

static int latents_score_items(void *mv, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n, float *scores)
{
    return model_latents_score_items(&((builtin *)mv)->lat, s, users, B, items, n, scores);
}

int model_latents_read(h5file *f, const char *item, const char *valid, const char *test, model_latents *m)
{
    void *p;
    size_t c;
    int rc = h5_read_all(f, item, H5_F32, &p, &m->n_items, &m->C);
    if (!rc) {
        m->e = p;
        rc = h5_read_all(f, valid, H5_F32, &p, &c, &c);
    }
    if (!rc) {
        m->state[DM_VALID] = p;
        rc = h5_read_all(f, test, H5_F32, &p, &c, &c);
    }
    if (!rc) m->state[DM_TEST] = p;
    return rc;
}

void model_latents_free(model_latents *m)
{
    DM_FREE_ALL(m->e, m->state[DM_VALID], m->state[DM_TEST]);
    memset(m, 0, sizeof *m);
}

static void builtin_unload(model_loaded *ml)
{
    builtin *m = ml->state;
    if (m) {
        model_latents_free(&m->lat);
        DM_FREE_ALL(m->pop, m->B, m->hist, m);
    }
    ml->state = NULL;
}

static int builtin_new(const dm_dataset *d, model_loaded *ml, builtin **out)
{
    builtin *m;
    DM_ALLOC(m, 1);
    m->n_items = d->n_items;
    ml->state = m;
    DM_ALLOC(m->hist, d->n_inter + 1);
    *out = m;
    return DM_OK;
}

int model_need(h5file *f, const char *dset, const char *name)
{
    if (h5_exists(f, dset)) return DM_OK;
    DM_ERR(DM_ECONFIG, "eval.models has '%s' but %s has no %s", name, f->path, dset);
    DM_HINT("add '%s' to cf.models and rerun train-cf", name);
    return DM_ECONFIG;
}

/* A built-in model scored from one dataset of cf.h5 (dset, of model `name`), read whole into *p. */
static int builtin_table(const dm_dataset *d, h5file *f, model_loaded *ml, const char *name, const char *dset, h5type t,
                         ev_score_fn score, void **p)
{
    builtin *m;
    size_t r, c;
    DM_CALL(builtin_new(d, ml, &m));
    int rc = model_need(f, dset, name);
    if (!rc) rc = h5_read_all(f, dset, t, p, &r, &c);
    ml->score = score;
    return rc;
}

static int pop_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml)
{
    void *p;
    int rc = builtin_table(d, f, ml, "pop", "/pop/count", H5_F64, pop_score, &p);
    if (!rc) ((builtin *)ml->state)->pop = p;
    return rc;
}

static int ease_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml)
{
    void *p;
    int rc = builtin_table(d, f, ml, "ease", "/ease/B", H5_F32, ease_score, &p);
    if (!rc) ((builtin *)ml->state)->B = p;
    return rc;
}

/* the dot-product models' datasets: item table, user states of the valid and test histories */
static const char *const g_latents[][4] = {
    {"sasrec", "/sasrec/e_cf", "/sasrec/state_valid", "/sasrec/state_test"},
    {"align", "/align/z_base", "/align/h_valid", "/align/h_test"},
};

const char *const *model_latents_names(const model_def *m)
{
    for (size_t k = 0; k < sizeof g_latents / sizeof g_latents[0]; k++)
        if (!strcmp(g_latents[k][0], m->name)) return g_latents[k] + 1;
    return NULL;
}

int model_latents_check(const model_def *m, h5file *f)
{
    if (!strcmp(m->name, "align")) return h5_check_format(f, "dynmm-align", 1);
    return model_need(f, model_latents_names(m)[0], m->name);
}

static int sasrec_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml)
{
    builtin *m;
    DM_CALL(builtin_new(d, ml, &m));
    const char *const *nm = g_latents[0] + 1;
    int rc = model_need(f, nm[0], "sasrec");
    if (!rc) rc = model_latents_read(f, nm[0], nm[1], nm[2], &m->lat);
    ml->score = latents_score;
    ml->score_items = latents_score_items;
    return rc;
}

static int align_load_scorer(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, h5file *f, model_loaded *ml)
{
    builtin *m;
    DM_CALL(builtin_new(d, ml, &m));
    const char *const *nm = g_latents[1] + 1;
    int rc = h5_check_format(f, "dynmm-align", 1);
    if (!rc) rc = model_latents_read(f, nm[0], nm[1], nm[2], &m->lat);
    ml->score = latents_score;
    ml->score_items = latents_score_items;
    return rc;
}

static int pop_train(const model_train_args *t)
{
    double *cnt;
    DM_ALLOC(cnt, t->d->n_items + 1);
    for (size_t i = 0; i < t->d->n_inter; i++)
        if (t->roles[i] == DM_TRAIN) cnt[t->d->item[i]] += 1.0;
    int rc = h5_write_all(t->f, "/pop/count", H5_F64, t->d->n_items, 0, cnt);
    free(cnt);
    dm_log("  pop: train-set counts of %zu items", t->d->n_items);
    return par_agree(t->ctx, rc);
}

static int ease_train(const model_train_args *t)
{
    size_t lo, hi;
    dm_shard_weighted(t->d->user_off, t->d->n_users, t->ctx->size, t->ctx->rank, &lo, &hi);
    return ease_fit_write(t->ctx, t->d, t->roles, lo, hi, dm_cfg_float(t->cfg, "ease.lambda"), (int)dm_cfg_int(t->cfg, "ease.block"), t->f);
}

static int sasrec_train(const model_train_args *t) { return cf_sasrec_train(t->ctx, t->cfg, t->d, t->roles, t->stage_hash, t->f); }

/* the plan check: a shape the model can have (heads dividing hidden) and the select protocol */
static int sasrec_check(const dm_cfg *cfg)
{
    sasrec_config c;
    DM_CALL(sasrec_config_from(cfg, 1, 1, &c));
    return trainer_check(cfg, &sasrec_model_ops);
}

/* ---- the registry ------------------------------------------------------------------------------- */

static const char *const g_ease_groups[] = {"ease", NULL};
static const char *const g_itemknn_groups[] = {"itemknn", NULL};
static const char *const g_pq_groups[] = {"pq.rerank", NULL};

static const model_def g_models[] = {
    {"pop", "Pop", "cf.h5", NULL, NULL, pop_train, pop_load, builtin_unload, NULL},
    {"ease", "EASE", "cf.h5", g_ease_groups, NULL, ease_train, ease_load, builtin_unload, NULL},
    {"sasrec", NULL, "cf.h5", NULL, &sasrec_model_ops, sasrec_train, sasrec_load, builtin_unload, sasrec_check},
    {"align", "aligner", "align.h5", NULL, NULL, NULL, align_load_scorer, builtin_unload, NULL},
    {"bpr", NULL, "cf.h5", NULL, &bpr_model_ops, NULL, NULL, NULL, NULL},
    {"itemknn", "ItemKNN", "cf.h5", g_itemknn_groups, NULL, itemknn_train, itemknn_load, itemknn_unload, NULL},
    {"align@pq", "aligner (PQ)", "pq.h5", g_pq_groups, NULL, NULL, pq_model_load, pq_model_unload, NULL},
    {"sasrec@pq", "SASRec (PQ)", "pq.h5", g_pq_groups, NULL, NULL, pq_model_load, pq_model_unload, NULL},
    {"gru4rec", NULL, "cf.h5", NULL, &gru4rec_model_ops, NULL, NULL, NULL, NULL},
    {"lightgcn", NULL, "cf.h5", NULL, &lightgcn_model_ops, NULL, NULL, NULL, NULL},
    {"bert4rec", NULL, "cf.h5", NULL, &bert4rec_model_ops, NULL, NULL, NULL, NULL},
};
static const int g_nmodels = (int)(sizeof g_models / sizeof g_models[0]);

int model_count(void) { return g_nmodels; }
const model_def *model_at(int i) { return i >= 0 && i < g_nmodels ? &g_models[i] : NULL; }

const model_def *model_find(const char *name)
{
    for (int i = 0; i < g_nmodels; i++)
        if (!strcmp(g_models[i].name, name)) return &g_models[i];
    return NULL;
}

const char *model_names(int trainable)
{
    static char buf[512];
    buf[0] = '\0';
    for (int i = 0; i < g_nmodels; i++) {
        if (trainable && !g_models[i].train && !g_models[i].ops) continue;
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%s", l ? ", " : "", g_models[i].name);
    }
    return buf;
}

const char *model_label(const model_def *m) { return m->ops ? m->ops->label : m->label; }

void model_groups(const dm_cfg *cfg, const char *key, const char **out, size_t *n, size_t cap)
{
    for (size_t k = 0; k < dm_cfg_len(cfg, key); k++) {
        const model_def *m = model_find(dm_cfg_str_at(cfg, key, k));
        const char *const *g = !m ? NULL : m->ops ? m->ops->groups : m->groups;
        for (; g && *g && *n + 1 < cap; g++) {
            int dup = 0;
            for (size_t j = 0; j < *n; j++) dup |= !strcmp(out[j], *g);
            if (!dup) out[(*n)++] = *g;
        }
    }
    out[*n] = NULL;
}

/* ---- generic models -------------------------------------------------------------------------------- */

int model_check(const model_def *m, const dm_cfg *cfg)
{
    if (m->check) return m->check(cfg);
    if (m->ops && m->ops->check) DM_CALL(m->ops->check(cfg));
    return m->ops ? trainer_check(cfg, m->ops) : DM_OK;
}

int model_train(const model_def *m, const model_train_args *t)
{
    if (m->train) return m->train(t);
    trainer_run run;
    trainer_opts o = {t->stage_hash, 0, 1};
    int rc = trainer_fit(t->ctx, t->cfg, t->d, t->roles, m->ops, &o, &run);
    if (!rc) rc = trainer_write(t->ctx, &run, t->f);
    trainer_run_free(&run);
    return rc;
}

int model_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const model_def *m, const char *path, model_loaded *out)
{
    memset(out, 0, sizeof *out);
    out->def = m;
    if (!m->load) {
        trainer_scorer *g;
        DM_ALLOC(g, 1);
        g->ops = m->ops;
        out->state = g;
        out->score = trainer_score;
        return trainer_load(ctx, path, d, m->ops, 512, &g->self);
    }
    h5file f;
    int rc = h5_open(ctx, path, &f);
    if (rc) {
        DM_HINT("run the stage that makes %s first (dynmm run lists it in run.stages)", path);
        return par_agree(ctx, rc);
    }
    rc = m->load(ctx, cfg, d, &f, out);
    h5_close(&f);
    return par_agree(ctx, rc);
}

void model_unload(model_loaded *ml)
{
    if (!ml->def) return;
    if (!ml->def->load) {
        trainer_scorer *g = ml->state;
        if (g && g->self) g->ops->destroy(g->self);
        free(g);
        ml->state = NULL;
    } else if (ml->def->unload)
        ml->def->unload(ml);
    memset(ml, 0, sizeof *ml);
}
