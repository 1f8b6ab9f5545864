/* cmd_eval.c: `dynmm eval`: every model of eval.models, on every split of eval.splits and protocol of
 * eval.protocols, per user, into results.h5.
 *
 * results.h5 (format "dynmm-results" v1):
 *   /columns/{chars,offsets}             metric names of the row layout ("hit@1", ..., "mrr")
 *   /<split>/<protocol>/<model>          float64 (n_users, ncols): per-user metrics, NaN rows for
 *                                        users without a target (or stored negatives) in that split
 *   attributes of each dataset: users (scored), mean (ncols), seconds
 * Users are sharded across ranks; each rank writes its rows collectively. The per-user rows are what
 * the significance tests compare.
 */
#include "cands.h"
#include "cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "stages.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RES_FORMAT "dynmm-results"

static const char *USAGE =
    "usage: dynmm eval CONFIG.cfg [--set group.key=value ...]\n\n"
    "Scores the models of eval.models (pop, ease, sasrec from cf.h5, ...) on the splits of eval.splits\n"
    "and the protocols of eval.protocols: 'full' ranks the whole catalogue minus the user's history,\n"
    "'uniN'/'popN' rank each target against the N negatives stored in dataset.h5, the same for every\n"
    "model. Metrics Hit@K, NDCG@K, Recall@K (eval.ks) and MRR, ties at their expected rank\n"
    "(eval.ties). Per-user rows go to <run.dir>/results.h5; the means are printed.\n";

const char *const eval_config_groups[] = {"eval", "split", NULL};

/* ---- models ------------------------------------------------------------------------------ */

typedef struct {
    size_t n_items, C;
    double *pop;    /* pop */
    float *B;       /* ease (n, n) */
    float *e;       /* sasrec e_cf (n, C) */
    float *state[3]; /* sasrec user states by split (valid, test) */
    int32_t *hist;
} model;

static int pop_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    model *m = mv;
    (void)s;
    (void)users;
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < m->n_items; i++) scores[b * m->n_items + i] = (float)m->pop[i];
    return DM_OK;
}

static int ease_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    model *m = mv;
    size_t n = m->n_items;
    for (size_t b = 0; b < B; b++) {
        float *sc = scores + b * n;
        memset(sc, 0, n * sizeof *sc);
        size_t nh = ev_history(s, users[b], m->hist);
        for (size_t k = 0; k < nh; k++) cblas_saxpy((int)n, 1.0f, m->B + (size_t)m->hist[k] * n, 1, sc, 1);
    }
    return DM_OK;
}

static int sasrec_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    model *m = mv;
    const float *st = m->state[s->split];
    float *u = malloc(B * m->C * sizeof *u + 4);
    if (!u) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t b = 0; b < B; b++) memcpy(u + b * m->C, st + users[b] * m->C, m->C * sizeof *u);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m->n_items, (int)m->C, 1.0f, u, (int)m->C, m->e,
                (int)m->C, 0.0f, scores, (int)m->n_items);
    free(u);
    return DM_OK;
}

static int align_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    model *m = mv;
    const float *st = m->state[s->split];
    float *u = malloc(B * m->C * sizeof *u + 4);
    if (!u) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t b = 0; b < B; b++) memcpy(u + b * m->C, st + users[b] * m->C, m->C * sizeof *u);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m->n_items, (int)m->C, 1.0f, u, (int)m->C, m->e,
                (int)m->C, 0.0f, scores, (int)m->n_items);
    free(u);
    return DM_OK;
}

static void model_free(model *m)
{
    free(m->pop);
    free(m->B);
    free(m->e);
    free(m->state[DM_VALID]);
    free(m->state[DM_TEST]);
    free(m->hist);
    memset(m, 0, sizeof *m);
}

/* Loads model `name` from the run's files. */
static int model_load(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const char *name, model *m, ev_score_fn *fn)
{
    memset(m, 0, sizeof *m);
    m->n_items = d->n_items;
    DM_ALLOC(m->hist, d->n_inter + 1);
    char path[4096];
    int is_align = !strcmp(name, "align");
    DM_CALL(cli_run_path(ctx, cfg, is_align ? "align.h5" : "cf.h5", path, sizeof path));
    h5file f;
    int rc = h5_open(ctx, path, &f);
    if (rc) {
        DM_HINT(is_align ? "run the align stage first (dynmm align, or add it to run.stages)"
                         : "run the train-cf stage first (dynmm train-cf, or add it to run.stages)");
        return par_agree(ctx, rc);
    }
    void *p;
    size_t r, c;
    if (is_align) {
        rc = h5_check_format(&f, "dynmm-align", 1);
        if (!rc) rc = h5_read_all(&f, "/align/z_base", H5_F32, &p, &r, &c);
        if (!rc) {
            m->e = p;
            m->C = c;
            rc = h5_read_all(&f, "/align/h_valid", H5_F32, &p, &r, &c);
        }
        if (!rc) {
            m->state[DM_VALID] = p;
            rc = h5_read_all(&f, "/align/h_test", H5_F32, &p, &r, &c);
        }
        if (!rc) m->state[DM_TEST] = p;
        *fn = align_score;
        h5_close(&f);
        return par_agree(ctx, rc);
    }
    rc = h5_check_format(&f, "dynmm-cf", 1);
    const char *need = !strcmp(name, "pop") ? "/pop/count" : !strcmp(name, "ease") ? "/ease/B" : "/sasrec/e_cf";
    if (!rc && !h5_exists(&f, need)) {
        rc = DM_ERR(DM_ECONFIG, "eval.models has '%s' but %s has no %s", name, path, need);
        DM_HINT("add '%s' to cf.models and rerun train-cf", name);
    }
    if (!rc && !strcmp(name, "pop")) {
        rc = h5_read_all(&f, "/pop/count", H5_F64, &p, &r, &c);
        m->pop = p;
        *fn = pop_score;
    } else if (!rc && !strcmp(name, "ease")) {
        rc = h5_read_all(&f, "/ease/B", H5_F32, &p, &r, &c);
        m->B = p;
        *fn = ease_score;
    } else if (!rc) {
        rc = h5_read_all(&f, "/sasrec/e_cf", H5_F32, &p, &r, &c);
        m->e = p;
        m->C = c;
        if (!rc) rc = h5_read_all(&f, "/sasrec/state_valid", H5_F32, &p, &r, &c);
        if (!rc) m->state[DM_VALID] = p;
        if (!rc) rc = h5_read_all(&f, "/sasrec/state_test", H5_F32, &p, &r, &c);
        if (!rc) m->state[DM_TEST] = p;
        *fn = sasrec_score;
    }
    h5_close(&f);
    return par_agree(ctx, rc);
}

/* ---- the stage --------------------------------------------------------------------------- */

int stage_eval(par_ctx *ctx, const dm_cfg *cfg)
{
    double t0 = dm_wtime();
    char in[4096], out[4096], hash[65];
    DM_CALL(cli_run_path(ctx, cfg, "dataset.h5", in, sizeof in));
    DM_CALL(cli_run_path(ctx, cfg, "results.h5", out, sizeof out));
    DM_CALL(stage_hash(ctx, stage_find("eval"), cfg, hash));
    size_t nm = dm_cfg_len(cfg, "eval.models"), np = dm_cfg_len(cfg, "eval.protocols"), ns = dm_cfg_len(cfg, "eval.splits");
    for (size_t k = 0; k < ns; k++) {
        const char *sp = dm_cfg_str_at(cfg, "eval.splits", k);
        if (strcmp(sp, "valid") && strcmp(sp, "test")) {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: unknown split '%s' (valid or test)", dm_cfg_where(cfg, "eval.splits", w, sizeof w), sp);
            return DM_ECONFIG;
        }
    }
    for (size_t k = 0; k < np; k++) {
        char kind;
        size_t n;
        DM_CALL(cands_parse(dm_cfg_str_at(cfg, "eval.protocols", k), &kind, &n));
    }
    metrics_spec spec;
    metrics_ties ties;
    DM_CALL(metrics_ties_parse(dm_cfg_str(cfg, "eval.ties"), &ties));
    size_t nk = dm_cfg_len(cfg, "eval.ks");
    int64_t ks[64];
    if (nk > 64) return DM_ERR(DM_ECONFIG, "eval.ks: at most 64 cutoffs");
    for (size_t k = 0; k < nk; k++) ks[k] = dm_cfg_int_at(cfg, "eval.ks", k);
    DM_CALL(metrics_spec_init(&spec, ks, nk, ties));
    dm_dataset d;
    DM_CALL(ds_read(ctx, in, &d));
    const int8_t *roles = NULL;
    int rc = par_agree(ctx, cands_split(cfg, &d, &roles));
    size_t lo, hi;
    dm_shard_even(d.n_users, ctx->size, ctx->rank, &lo, &hi);
    double *rows = calloc((hi - lo + 1) * spec.ncols, sizeof *rows), *mean = calloc(spec.ncols, sizeof *mean);
    if (!rows || !mean) rc = DM_ERR(DM_ENOMEM, "out of memory");
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = par_agree(ctx, h5_create(ctx, out, (int)dm_cfg_int(cfg, "io.compress"), (size_t)dm_cfg_int(cfg, "io.chunk_rows"), &f));
    if (!rc) rc = h5_write_provenance(&f, RES_FORMAT, 1, "eval", cfg, hash);
    if (!rc) {
        dm_strtab cols = {0};
        char nmb[32];
        for (size_t c = 0; c < spec.ncols && !rc; c++) {
            metrics_col_name(&spec, c, nmb, sizeof nmb);
            rc = dm_strtab_add(&cols, nmb, strlen(nmb));
        }
        if (!rc) rc = h5_write_strtab(&f, "/columns", ctx->rank == 0 ? &cols : &(dm_strtab){0}, ctx->rank == 0 ? 0 : spec.ncols, spec.ncols);
        dm_strtab_free(&cols);
    }
    if (!rc) rc = h5_attr_i64(&f, "/", "n_users", (int64_t)d.n_users);
    if (!rc) rc = h5_attr_str(&f, "/", "ties", metrics_ties_name(ties));
    if (!rc) rc = h5_attr_str(&f, "/", "split_protocol", dm_cfg_str(cfg, "split.protocol"));
    /* cold items: never in the training split */
    uint8_t *cold = NULL;
    double *crow = NULL, *cmean = NULL;
    if (!rc) {
        cold = calloc(d.n_items + 1, 1);
        size_t nc = 0;
        if (cold) {
            memset(cold, 1, d.n_items);
            for (size_t i = 0; i < d.n_inter; i++)
                if (roles[i] == DM_TRAIN) cold[d.item[i]] = 0;
            for (size_t i = 0; i < d.n_items; i++) nc += cold[i];
        }
        if (!nc) {
            free(cold);
            cold = NULL;
        } else {
            crow = calloc((hi - lo + 1) * spec.ncols, sizeof *crow);
            cmean = calloc(spec.ncols, sizeof *cmean);
            if (!crow || !cmean) rc = DM_ERR(DM_ENOMEM, "out of memory");
            if (!rc) rc = h5_attr_i64(&f, "/", "cold_items", (int64_t)nc);
        }
    }
    size_t c10 = 0;
    for (size_t k = 0; k < nk; k++)
        if (ks[k] == 10) c10 = k + 1;
    if (!rc) dm_log("%-8s %-6s %-8s %8s %10s %10s %10s %8s", "split", "proto", "model", "users", c10 ? "hit@10" : "hit@k0",
                    c10 ? "ndcg@10" : "ndcg@k0", "mrr", "seconds");
    for (size_t mi = 0; mi < nm && !rc; mi++) {
        const char *mname = dm_cfg_str_at(cfg, "eval.models", mi);
        model m;
        ev_score_fn fn = NULL;
        if (strcmp(mname, "pop") && strcmp(mname, "ease") && strcmp(mname, "sasrec") && strcmp(mname, "align")) {
            char w[256];
            rc = DM_ERR(DM_ECONFIG, "%s: unknown model '%s'", dm_cfg_where(cfg, "eval.models", w, sizeof w), mname);
            DM_HINT("models: pop, ease, sasrec, align");
            rc = par_agree(ctx, rc);
            break;
        }
        rc = model_load(ctx, cfg, &d, mname, &m, &fn);
        for (size_t si = 0; si < ns && !rc; si++) {
            const char *sp = dm_cfg_str_at(cfg, "eval.splits", si);
            ev_split s = {&d, roles, !strcmp(sp, "valid") ? DM_VALID : DM_TEST};
            for (size_t pi = 0; pi < np && !rc; pi++) {
                const char *proto = dm_cfg_str_at(cfg, "eval.protocols", pi);
                double t1 = dm_wtime();
                size_t ch = metrics_col(&spec, METRICS_HIT, c10 ? c10 - 1 : 0), cn = metrics_col(&spec, METRICS_NDCG, c10 ? c10 - 1 : 0);
                rc = ev_score_users(&s, &spec, proto, fn, &m, lo, hi, (size_t)dm_cfg_int(cfg, "eval.batch"), rows);
                rc = par_agree(ctx, rc);
                int64_t cnt = 0;
                if (!rc) rc = ev_mean(ctx, &spec, rows, hi - lo, mean, &cnt);
                char name[256];
                snprintf(name, sizeof name, "/%s/%s/%s", sp, proto, mname);
                if (!rc) rc = h5_write_rows(&f, name, H5_F64, d.n_users, spec.ncols, lo, hi - lo, rows);
                if (!rc) rc = h5_attr_f64s(&f, name, "mean", mean, spec.ncols);
                if (!rc) rc = h5_attr_i64(&f, name, "users", cnt);
                double secs = dm_wtime() - t1;
                if (!rc) rc = h5_attr_f64(&f, name, "seconds", secs);
                /* users whose target is a cold item (never in the training split), reported apart */
                if (!rc && cold) {
                    for (size_t u = lo; u < hi; u++) {
                        int is_cold = 0;
                        for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++)
                            if (roles[j] == s.split && cold[d.item[j]]) is_cold = 1;
                        if (!is_cold)
                            for (size_t c = 0; c < spec.ncols; c++) crow[(u - lo) * spec.ncols + c] = NAN;
                        else
                            memcpy(crow + (u - lo) * spec.ncols, rows + (u - lo) * spec.ncols, spec.ncols * sizeof *crow);
                    }
                    int64_t cc = 0;
                    rc = ev_mean(ctx, &spec, crow, hi - lo, cmean, &cc);
                    if (!rc) rc = h5_attr_f64s(&f, name, "mean_cold", cmean, spec.ncols);
                    if (!rc) rc = h5_attr_i64(&f, name, "users_cold", cc);
                    if (!rc && cc > 0 && dm_log_verbosity() >= 1)
                        dm_log("%-8s %-6s %-8s %8lld %10.4f %10.4f %10.4f   (users whose target is a cold item)", "", "", "",
                               (long long)cc, cmean[ch], cmean[cn], cmean[metrics_col(&spec, METRICS_MRR, 0)]);
                }
                if (!rc) dm_log("%-8s %-6s %-8s %8lld %10.4f %10.4f %10.4f %8.2f", sp, proto, mname, (long long)cnt, mean[ch],
                                mean[cn], mean[metrics_col(&spec, METRICS_MRR, 0)], secs);
            }
        }
        model_free(&m);
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = h5_attr_f64(&f, "/", "wall_seconds", dm_wtime() - t0);
    if (rc) {
        if (f.id >= 0) h5_discard(&f);
    } else {
        rc = h5_commit(&f);
        if (!rc) dm_log("wrote %s in %.1fs", out, dm_wtime() - t0);
        if (!rc) par_log_peak(ctx);
    }
    free(rows);
    free(mean);
    free(cold);
    free(crow);
    free(cmean);
    metrics_spec_free(&spec);
    dm_dataset_free(&d);
    return rc;
}

int cmd_eval(par_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    DM_CALL(cli_parse(argc, argv, &a));
    if (cli_help(ctx, &a, USAGE)) {
        cli_args_free(&a);
        return DM_OK;
    }
    dm_cfg cfg;
    int rc = cli_load_config(ctx, &a, &cfg);
    if (!rc && a.npositional) rc = DM_ERR(DM_ECONFIG, "eval: unexpected argument '%s'", a.positional[0]);
    cli_args_free(&a);
    rc = par_agree(ctx, rc);
    if (!rc) rc = stage_eval(ctx, &cfg);
    dm_cfg_free(&cfg);
    return rc;
}
