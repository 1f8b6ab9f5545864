/* cmd_eval.c: `dynmm eval`: every model of eval.models, on every split of eval.splits and protocol of
 * eval.protocols, per user, into results.h5.
 *
 * results.h5 (format "dynmm-results" v1):
 *   /columns/{chars,offsets}             metric names of the row layout ("hit@1", ..., "mrr")
 *   /candidates/<uniN|popN>              int32 (n_users, N): the sampled negatives scored (cands.h)
 *   /<split>/<protocol>/<model>          float64 (n_users, ncols): per-user metrics, NaN rows for
 *                                        users without a target (or stored negatives) in that split
 *   attributes of each dataset: users (scored), mean (ncols), seconds
 *   /<split>/<model>@<variant>            the same for the stress variants (stress.enabled, below)
 * Users are sharded across ranks; each rank writes its rows collectively. The per-user rows are what
 * the significance tests compare.
 *
 * Stress experiments (stress.*, stages/stress.h), on the splits of stress.splits and every protocol,
 * scored like any model on the same users and candidate sets:
 *   align@drop_<set>_<rate>      modality set (one modality or a pair) dropped from rate% of the items
 *   align@noise_<modality>_<snr> Gaussian noise on one modality's features at an SNR in dB
 *   align@shuffle_<modality>     one modality's features permuted among the items that have it
 *   <model>@cold                 the rows of the users whose target is a cold item (never in the
 *                                training split), NaN elsewhere: the cold-item subset as a variant
 * A perturbed item's z_base is recomputed from align.h5's stored inputs (align_item_latents); other
 * items keep their stored rows, so a variant that perturbs nothing scores bitwise like `align`.
 * Attributes of a variant: stress (drop|noise|shuffle|cold), modalities, rate_percent or snr_db,
 * noise_sigma, items_perturbed; of the root: stress_seed, stress_zbase_max_diff (how closely
 * recomputing every item reproduces the stored z_base).
 */
#include "align_inputs.h"
#include "align_io.h"
#include "cands.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "evalshard.h"
#include "models.h"
#include "stage.h"
#include "stress.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RES_FORMAT "dynmm-results"

static const char USAGE[] =
    "usage: dynmm eval CONFIG.cfg [--set group.key=value ...]\n\n"
    "Scores the models of eval.models (pop, ease, sasrec from cf.h5, ...) on the splits of eval.splits\n"
    "and the protocols of eval.protocols: 'full' ranks the whole catalogue minus the user's history,\n"
    "'uniN'/'popN' rank each target against N sampled negatives, drawn from eval.seed and the same for\n"
    "every model and every stage (stored in results.h5 under /candidates). Metrics Hit@K, NDCG@K, Recall@K (eval.ks) and MRR, ties at their expected rank\n"
    "(eval.ties). Per-user rows go to <run.dir>/results.h5; the means are printed. With\n"
    "stress.enabled, also the aligner's stress variants (align@drop_*, align@noise_*, align@shuffle_*) and\n"
    "the cold-item subsets (<model>@cold) of stress.models.\n";

static const char *const eval_config_groups[] = {"eval", "split.protocol", "stress", NULL};

/* ---- one entry of results.h5 ------------------------------------------------------------- */

typedef struct {
    par_ctx *ctx;
    h5file *f;
    const metrics_spec *spec;
    const dm_dataset *d;
    const uint8_t *cold;  /* (n_items) 1 = never in the training split; NULL = no cold item */
    size_t lo, hi, batch; /* this rank's users [lo, hi) */
    double *rows, *mean;  /* (hi - lo, ncols), (ncols) */
    double *crow, *cmean; /* the same restricted to users whose target is cold */
    size_t ch, cn, cm;    /* logged columns: hit@10, ndcg@10, mrr */
    int mw;               /* width of the model column of the log */
    const char *align_path; /* align.h5 (stress experiments) */
    const ev_shard_latents *shard; /* the model scored with its item table sharded (evalshard.h), or NULL */
    const uint8_t *keep;  /* (n_users) the users eval.user_fraction samples, or NULL = every user */
} ev_out;

/* Scores `fn` (items_fn, when not NULL, for a sampled protocol) on split s under `proto` into o->rows and writes /<split>/<proto>/<name> with its
 * attributes (users, mean, seconds; mean_cold and users_cold when the dataset has cold items).
 * `cold_name` non-NULL: also writes the rows of the users whose target is cold as that entry (a
 * reportable subset, e.g. "align@cold"), when there are such users. `alias` non-NULL: the same
 * rows and attributes under a second name as well. `t0`: when the work of this entry began (a
 * stress variant's latents count in its seconds). */
static int write_entry(ev_out *o, const ev_split *s, const char *sp, const char *proto, const char *name, ev_score_fn fn,
                       ev_items_fn items_fn, void *m, const char *cold_name, const char *alias, double t0)
{
    par_ctx *ctx = o->ctx;
    const metrics_spec *spec = o->spec;
    const dm_dataset *d = o->d;
    size_t lo = o->lo, hi = o->hi, nc = spec->ncols;
    int rc = o->shard ? ev_score_sharded(ctx, s, spec, proto, o->shard, lo, hi, o->batch, o->rows)
                      : ev_score_users_items(s, spec, proto, fn, items_fn, m, lo, hi, o->batch, o->rows);
    rc = par_agree(ctx, rc);
    int64_t cnt = 0;
    if (!rc) rc = ev_mean(ctx, spec, o->rows, hi - lo, o->mean, &cnt);
    char path[512], apath[512];
    snprintf(path, sizeof path, "/%s/%s/%s", sp, proto, name);
    snprintf(apath, sizeof apath, "/%s/%s/%s", sp, proto, alias ? alias : "");
    double secs = dm_wtime() - t0;
    for (int a = 0; a < (alias ? 2 : 1) && !rc; a++) {
        const char *p = a ? apath : path;
        rc = h5_write_rows(o->f, p, H5_F64, d->n_users, nc, lo, hi - lo, o->rows);
        if (!rc) rc = h5_attr_f64s(o->f, p, "mean", o->mean, nc);
        if (!rc) rc = h5_attr_i64(o->f, p, "users", cnt);
        if (!rc) rc = h5_attr_f64(o->f, p, "seconds", secs);
        if (!rc && a) rc = h5_attr_str(o->f, p, "same_as", name);
        const model_def *md = model_find(name);
        if (!rc && md) rc = h5_attr_str(o->f, p, "label", model_label(md));
    }
    /* users whose target is a cold item (never in the training split), reported apart */
    if (!rc && o->cold) {
        for (size_t u = lo; u < hi; u++) {
            int is_cold = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                if (s->roles[j] == s->split && o->cold[d->item[j]]) is_cold = 1;
            if (!is_cold)
                for (size_t c = 0; c < nc; c++) o->crow[(u - lo) * nc + c] = NAN;
            else
                memcpy(o->crow + (u - lo) * nc, o->rows + (u - lo) * nc, nc * sizeof *o->crow);
        }
        int64_t cc = 0;
        rc = ev_mean(ctx, spec, o->crow, hi - lo, o->cmean, &cc);
        for (int a = 0; a < (alias ? 2 : 1) && !rc; a++) {
            rc = h5_attr_f64s(o->f, a ? apath : path, "mean_cold", o->cmean, nc);
            if (!rc) rc = h5_attr_i64(o->f, a ? apath : path, "users_cold", cc);
        }
        if (!rc && cc > 0 && dm_log_verbosity() >= 1)
            dm_log("%-8s %-6s %-*s %8lld %10.4f %10.4f %10.4f   (users whose target is a cold item)", "", "", o->mw, "", (long long)cc,
                   o->cmean[o->ch], o->cmean[o->cn], o->cmean[o->cm]);
        if (!rc) dm_log("%-8s %-6s %-*s %8lld %10.4f %10.4f %10.4f %8.2f", sp, proto, o->mw, name, (long long)cnt, o->mean[o->ch],
                        o->mean[o->cn], o->mean[o->cm], secs);
        if (!rc && cold_name && cc > 0) {
            char cpath[512];
            snprintf(cpath, sizeof cpath, "/%s/%s/%s", sp, proto, cold_name);
            rc = h5_write_rows(o->f, cpath, H5_F64, d->n_users, nc, lo, hi - lo, o->crow);
            if (!rc) rc = h5_attr_f64s(o->f, cpath, "mean", o->cmean, nc);
            if (!rc) rc = h5_attr_i64(o->f, cpath, "users", cc);
            if (!rc) rc = h5_attr_f64(o->f, cpath, "seconds", secs);
            if (!rc) rc = h5_attr_str(o->f, cpath, "stress", "cold");
            if (!rc) rc = h5_attr_str(o->f, cpath, "subset", "users whose target is a cold item (never in the training split)");
            if (!rc) dm_log("%-8s %-6s %-*s %8lld %10.4f %10.4f %10.4f %8.2f", sp, proto, o->mw, cold_name, (long long)cc, o->cmean[o->ch],
                            o->cmean[o->cn], o->cmean[o->cm], secs);
        }
        return rc;
    }
    if (!rc) dm_log("%-8s %-6s %-*s %8lld %10.4f %10.4f %10.4f %8.2f", sp, proto, o->mw, name, (long long)cnt, o->mean[o->ch],
                    o->mean[o->cn], o->mean[o->cm], secs);
    return rc;
}

/* ---- stress experiments ------------------------------------------------------------------ */

static int in_list(const dm_cfg *cfg, const char *key, const char *s)
{
    for (size_t k = 0; k < dm_cfg_len(cfg, key); k++)
        if (!strcmp(dm_cfg_str_at(cfg, key, k), s)) return 1;
    return 0;
}

/* Checks the stress keys up front: every stressed model is scored, the splits exist, the plan
 * parses. */
static int stress_check(const dm_cfg *cfg)
{
    char w[256];
    for (size_t k = 0; k < dm_cfg_len(cfg, "stress.models"); k++) {
        const char *mn = dm_cfg_str_at(cfg, "stress.models", k);
        if (!in_list(cfg, "eval.models", mn)) {
            DM_ERR(DM_ECONFIG, "%s: model '%s' is not in eval.models", dm_cfg_where(cfg, "stress.models", w, sizeof w), mn);
            DM_HINT("stress variants are compared with the intact model: add '%s' to eval.models", mn);
            return DM_ECONFIG;
        }
    }
    for (size_t k = 0; k < dm_cfg_len(cfg, "stress.splits"); k++) {
        const char *sp = dm_cfg_str_at(cfg, "stress.splits", k);
        if (strcmp(sp, "valid") && strcmp(sp, "test")) {
            DM_ERR(DM_ECONFIG, "%s: unknown split '%s' (valid or test)", dm_cfg_where(cfg, "stress.splits", w, sizeof w), sp);
            return DM_ECONFIG;
        }
    }
    /* the modality lists, sets, rates and SNRs, before any model is scored */
    stress_inputs none;
    memset(&none, 0, sizeof none);
    stress_variant *v = NULL;
    size_t nv = 0;
    DM_CALL(stress_plan(cfg, &none, &v, &nv));
    free(v);
    return DM_OK;
}

static uint64_t stress_seed(const dm_cfg *cfg)
{
    long long s = dm_cfg_int(cfg, "stress.seed");
    return s > 0 ? (uint64_t)s : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x57E55, 0);
}

/* Every stress variant of the aligner on the stress splits and every protocol (see stress.h). */
static int run_stress(ev_out *o, const dm_cfg *cfg, const int8_t *roles, const int *splits, size_t nsplits)
{
    par_ctx *ctx = o->ctx;
    const dm_dataset *d = o->d;
    double t0 = dm_wtime();
    const char *path = o->align_path;
    model_latents m;
    memset(&m, 0, sizeof m);
    h5file af;
    int rc = par_agree(ctx, h5_open(ctx, path, &af));
    if (rc) return rc;
    rc = model_latents_read(&af, "/align/z_base", "/align/h_valid", "/align/h_test", &m);
    h5_close(&af);
    DM_CALL(par_agree(ctx, rc));
    align_model am;
    align_acts ai;
    const size_t n = d->n_items, dd = m.C;
    rc = align_load(ctx, path, 1024, &am, &ai, NULL, NULL);
    if (!rc && (size_t)am.cfg.d != dd) rc = DM_ERR(DM_EFORMAT, "'%s': z_base has %zu columns but the aligner's d is %d", path, dd, am.cfg.d);
    rc = par_agree(ctx, rc);
    float *x[ALIGN_K] = {NULL, NULL, NULL, NULL}, *zv = NULL, *za = NULL;
    uint8_t *present = NULL;
    stress_variant *v = NULL;
    size_t nv = 0;
    stress_work w;
    memset(&w, 0, sizeof w);
    stress_inputs in;
    memset(&in, 0, sizeof in);
    if (!rc) {
        present = calloc(n * ALIGN_K + 1, 1);
        zv = malloc(n * dd * sizeof *zv + 4);
        za = malloc(n * dd * sizeof *za + 4);
        if (!present || !zv || !za) rc = DM_ERR(DM_ENOMEM, "out of memory");
        rc = par_agree(ctx, rc);
    }
    if (!rc) rc = ai_read_stored(ctx, path, &am, n, x, present);
    if (!rc) {
        in.n = n;
        for (int k = 0; k < ALIGN_K; k++) {
            in.dim[k] = am.cfg.dim_in[k];
            in.x[k] = x[k];
        }
        in.present = present;
        in.seed = stress_seed(cfg);
        stress_inputs_power(&in);
        rc = stress_plan(cfg, &in, &v, &nv);
        if (!rc) rc = stress_work_init(&w, &in);
        rc = par_agree(ctx, rc);
    }
    /* provenance: how closely recomputing every item reproduces the stored z_base (a variant
       recomputes only the items it perturbs; the others keep their stored rows) */
    double maxdiff = 0.0;
    if (!rc) {
        const float *xs[ALIGN_K];
        for (int k = 0; k < ALIGN_K; k++) xs[k] = x[k];
        rc = align_item_latents(&am, &ai, xs, NULL, present, (int)n, za, NULL);
        for (size_t j = 0; !rc && j < n * dd; j++) {
            double e = fabs((double)za[j] - (double)m.e[j]);
            if (e > maxdiff) maxdiff = e;
        }
        rc = par_agree(ctx, rc);
    }
    if (!rc) {
        char mods[64] = "";
        for (int k = 0; k < ALIGN_K; k++)
            if (in.dim[k]) {
                size_t np = 0;
                for (size_t i = 0; i < n; i++) np += present[i * ALIGN_K + (size_t)k];
                size_t l = strlen(mods);
                snprintf(mods + l, sizeof mods - l, "%s%s %zu", l ? ", " : "", align_modality_name(k), np);
            }
        dm_log("stress: %zu variants of align (items with each modality: %s); stored z_base recomputed to %.2g", nv, mods, maxdiff);
        rc = h5_attr_i64(o->f, "/", "stress_seed", (int64_t)in.seed);
        if (!rc) rc = h5_attr_f64(o->f, "/", "stress_zbase_max_diff", maxdiff);
    }
    static const char *const kinds[] = {"drop", "noise", "shuffle"};
    model_latents mv = m;
    mv.e = zv;
    for (size_t vi = 0; vi < nv && !rc; vi++) {
        const stress_variant *sv = &v[vi];
        double t1 = dm_wtime();
        rc = stress_apply(&in, sv, &w);
        memcpy(zv, m.e, n * dd * sizeof *zv);
        if (!rc && w.nrows) {
            rc = align_item_latents(&am, &ai, w.x, w.rows, w.pres, (int)w.nrows, za, NULL);
            for (size_t j = 0; !rc && j < w.nrows; j++) memcpy(zv + (size_t)w.rows[j] * dd, za + j * dd, dd * sizeof *zv);
        }
        rc = par_agree(ctx, rc);
        char name[160], alias[160], set[64];
        snprintf(name, sizeof name, "align@%s", sv->name);
        snprintf(alias, sizeof alias, "align@%s", sv->alias);
        stress_set_name(sv->mask, set, sizeof set);
        for (size_t si = 0; si < nsplits && !rc; si++) {
            ev_split s = {d, roles, splits[si], o->keep};
            const char *sp = splits[si] == DM_VALID ? "valid" : "test";
            for (size_t pi = 0; pi < dm_cfg_len(cfg, "eval.protocols") && !rc; pi++) {
                const char *proto = dm_cfg_str_at(cfg, "eval.protocols", pi);
                rc = write_entry(o, &s, sp, proto, name, model_latents_score, model_latents_score_items, &mv, NULL, sv->alias[0] ? alias : NULL, pi == 0 && si == 0 ? t1 : dm_wtime());
                for (int a = 0; a < (sv->alias[0] ? 2 : 1) && !rc; a++) {
                    char ep[512];
                    snprintf(ep, sizeof ep, "/%s/%s/%s", sp, proto, a ? alias : name);
                    rc = h5_attr_str(o->f, ep, "stress", kinds[sv->kind]);
                    if (!rc) rc = h5_attr_str(o->f, ep, "modalities", set);
                    if (!rc && sv->kind != STRESS_SHUFFLE)
                        rc = h5_attr_f64(o->f, ep, sv->kind == STRESS_DROP ? "rate_percent" : "snr_db", sv->level);
                    if (!rc && sv->kind == STRESS_NOISE) rc = h5_attr_f64(o->f, ep, "noise_sigma", w.sigma);
                    if (!rc) rc = h5_attr_i64(o->f, ep, "items_perturbed", (int64_t)w.nrows);
                }
            }
        }
    }
    if (!rc) dm_log("stress: %zu variants in %.1fs", nv, dm_wtime() - t0);
    for (int k = 0; k < ALIGN_K; k++) free(x[k]);
    free(present);
    free(zv);
    free(za);
    free(v);
    stress_work_free(&w);
    align_acts_free(&ai);
    align_free(&am);
    model_latents_free(&m);
    return par_agree(ctx, rc);
}

/* ---- the stage --------------------------------------------------------------------------- */

static int check_eval(const dm_cfg *cfg)
{
    char w[256];
    size_t nm = dm_cfg_len(cfg, "eval.models"), np = dm_cfg_len(cfg, "eval.protocols"), ns = dm_cfg_len(cfg, "eval.splits");
    for (size_t k = 0; k < ns; k++) {
        const char *sp = dm_cfg_str_at(cfg, "eval.splits", k);
        if (strcmp(sp, "valid") && strcmp(sp, "test")) {
            DM_ERR(DM_ECONFIG, "%s: unknown split '%s' (valid or test)", dm_cfg_where(cfg, "eval.splits", w, sizeof w), sp);
            return DM_ECONFIG;
        }
    }
    for (size_t k = 0; k < np; k++) {
        char kind;
        size_t n;
        DM_CALL(cands_parse(dm_cfg_str_at(cfg, "eval.protocols", k), &kind, &n));
    }
    for (size_t k = 0; k < nm; k++) {
        const char *mname = dm_cfg_str_at(cfg, "eval.models", k);
        if (!model_find(mname)) {
            DM_ERR(DM_ECONFIG, "%s: unknown model '%s'", dm_cfg_where(cfg, "eval.models", w, sizeof w), mname);
            DM_HINT("models: %s", model_names(0));
            return DM_ECONFIG;
        }
    }
    if (dm_cfg_bool(cfg, "stress.enabled")) DM_CALL(stress_check(cfg));
    return DM_OK;
}

/* eval reads the file of every model it scores (models.h), and align.h5 for the stress experiments */
static int uses_eval(const dm_cfg *cfg, const char *input)
{
    if (!strcmp(input, "dataset.h5")) return 1;
    for (size_t k = 0; k < dm_cfg_len(cfg, "eval.models"); k++) {
        const model_def *m = model_find(dm_cfg_str_at(cfg, "eval.models", k));
        if (m && !strcmp(m->file, input)) return 1;
    }
    return !strcmp(input, "align.h5") && dm_cfg_bool(cfg, "stress.enabled") && in_list(cfg, "stress.models", "align");
}

/* The sampled candidate sets scored, stored beside the rows for the record (kind "rows": not a
 * table of metrics). */
static int write_candidates(h5file *f, const dm_dataset *d, size_t lo, size_t hi)
{
    int rc = DM_OK;
    for (int c = 0; c < d->n_cand && !rc; c++) {
        char nm[128];
        snprintf(nm, sizeof nm, "/candidates/%s", d->cand[c].name);
        rc = h5_write_rows(f, nm, H5_I32, d->n_users, d->cand[c].n, lo, hi - lo, d->cand[c].rows);
        if (!rc) rc = h5_attr_str(f, nm, "kind", "rows");
        if (!rc) rc = h5_attr_i64(f, nm, "seed", (int64_t)d->cand_seed);
        if (!rc) rc = h5_attr_str(f, nm, "columns", "negative item ids (dense); -1 rows: users left out of the protocol");
    }
    return rc;
}

static int stage_eval(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    DM_CALL(par_agree(ctx, check_eval(cfg)));
    size_t nm = dm_cfg_len(cfg, "eval.models"), np = dm_cfg_len(cfg, "eval.protocols"), ns = dm_cfg_len(cfg, "eval.splits");
    const int stress = dm_cfg_bool(cfg, "stress.enabled");
    /* stress splits: those of stress.splits that eval.splits scores, in eval.splits order */
    int ssplits[2];
    size_t nss = 0;
    for (size_t k = 0; stress && k < ns; k++) {
        const char *sp = dm_cfg_str_at(cfg, "eval.splits", k);
        if (in_list(cfg, "stress.splits", sp)) ssplits[nss++] = !strcmp(sp, "valid") ? DM_VALID : DM_TEST;
    }
    if (stress && !nss) dm_warn("stress.splits: none of its splits is in eval.splits; no stress variants are scored");
    metrics_spec spec;
    metrics_ties ties;
    DM_CALL(metrics_ties_parse(dm_cfg_str(cfg, "eval.ties"), &ties));
    size_t nk = dm_cfg_len(cfg, "eval.ks");
    int64_t ks[64];
    if (nk > 64) return DM_ERR(DM_ECONFIG, "eval.ks: at most 64 cutoffs");
    for (size_t k = 0; k < nk; k++) ks[k] = dm_cfg_int_at(cfg, "eval.ks", k);
    DM_CALL(metrics_spec_init(&spec, ks, nk, ties));
    dm_dataset d;
    DM_CALL(ds_read(ctx, stage_input(sr, "dataset.h5"), &d));
    const int8_t *roles = NULL;
    int rc = par_agree(ctx, cands_split(cfg, &d, &roles));
    size_t lo, hi;
    dm_shard_even(d.n_users, ctx->size, ctx->rank, &lo, &hi);
    if (!rc) rc = cands_draw_key(ctx, cfg, &d, "eval.protocols", lo, hi);
    uint8_t *keep = NULL;
    if (!rc) rc = ev_user_sample(cfg, d.n_users, &keep);
    double *rows = calloc((hi - lo + 1) * spec.ncols, sizeof *rows), *mean = calloc(spec.ncols, sizeof *mean);
    if (!rows || !mean) rc = DM_ERR(DM_ENOMEM, "out of memory");
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = stage_output_create(sr, RES_FORMAT, 1, &f);
    if (!rc) rc = par_agree(ctx, write_candidates(&f, &d, lo, hi));
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
    if (!rc) rc = h5_attr_f64(&f, "/", "user_fraction", dm_cfg_float(cfg, "eval.user_fraction"));
    if (!rc && keep) {
        size_t nk = 0;
        for (size_t u = 0; u < d.n_users; u++) nk += keep[u];
        dm_log("eval: %zu of %zu users sampled (eval.user_fraction %g); the others' rows are NaN", nk, d.n_users,
               dm_cfg_float(cfg, "eval.user_fraction"));
        rc = h5_attr_i64(&f, "/", "users_sampled", (int64_t)nk);
    }
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
        if (!rc && stress && !nc) dm_log("stress: no cold items (every item occurs in the training split); no @cold variants");
    }
    size_t c10 = 0;
    for (size_t k = 0; k < nk; k++)
        if (ks[k] == 10) c10 = k + 1;
    ev_out o = {ctx, &f, &spec, &d, cold, lo, hi, (size_t)dm_cfg_int(cfg, "eval.batch"), rows, mean, crow, cmean,
                metrics_col(&spec, METRICS_HIT, c10 ? c10 - 1 : 0), metrics_col(&spec, METRICS_NDCG, c10 ? c10 - 1 : 0),
                metrics_col(&spec, METRICS_MRR, 0), stress ? 24 : 8, uses_eval(cfg, "align.h5") ? stage_input(sr, "align.h5") : NULL, NULL, keep};
    if (!rc) dm_log("%-8s %-6s %-*s %8s %10s %10s %10s %8s", "split", "proto", o.mw, "model", "users", c10 ? "hit@10" : "hit@k0",
                    c10 ? "ndcg@10" : "ndcg@k0", "mrr", "seconds");
    for (size_t mi = 0; mi < nm && !rc; mi++) {
        const char *mname = dm_cfg_str_at(cfg, "eval.models", mi);
        const model_def *md = model_find(mname);
        model_loaded m;
        memset(&m, 0, sizeof m);
        ev_shard_latents sl;
        int sharded = 0;
        rc = ev_shard_plan(ctx, cfg, md, stage_input(sr, md->file), &sharded);
        if (!rc) rc = sharded ? ev_shard_load(ctx, md, stage_input(sr, md->file), &sl) : model_load(ctx, cfg, &d, md, stage_input(sr, md->file), &m);
        o.shard = !rc && sharded ? &sl : NULL;
        /* the stress experiments' cold-item subset of this model: <model>@cold */
        char cold_name[160];
        snprintf(cold_name, sizeof cold_name, "%s@cold", mname);
        int want_cold = stress && in_list(cfg, "stress.models", mname);
        for (size_t si = 0; si < ns && !rc; si++) {
            const char *sp = dm_cfg_str_at(cfg, "eval.splits", si);
            ev_split s = {&d, roles, !strcmp(sp, "valid") ? DM_VALID : DM_TEST, keep};
            int cold_here = want_cold && in_list(cfg, "stress.splits", sp);
            for (size_t pi = 0; pi < np && !rc; pi++)
                rc = write_entry(&o, &s, sp, dm_cfg_str_at(cfg, "eval.protocols", pi), mname, m.score, m.score_items, m.state, cold_here ? cold_name : NULL,
                                 NULL, dm_wtime());
        }
        model_unload(&m);
        if (sharded) ev_shard_free(&sl);
        o.shard = NULL;
    }
    rc = par_agree(ctx, rc);
    if (!rc && stress && nss && in_list(cfg, "stress.models", "align")) rc = run_stress(&o, cfg, roles, ssplits, nss);
    rc = stage_output_finish(sr, &f, rc);
    free(rows);
    free(mean);
    free(cold);
    free(crow);
    free(cmean);
    free(keep);
    metrics_spec_free(&spec);
    dm_dataset_free(&d);
    return rc;
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_eval_def = {
    .name = "eval",
    .output = "results.h5",
    .inputs = {"dataset.h5", "cf.h5", "align.h5", "pq.h5", NULL},
    .groups = eval_config_groups,
    .models_key = "eval.models",
    .uses = uses_eval,
    .check = check_eval,
    .run = stage_eval,
    .summary = "score every model on the same candidate sets, per user, into results.h5",
    .usage = USAGE,
};
