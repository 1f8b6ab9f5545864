/* stage_explain.c: `dynmm explain`: evidence-grounded explanations of the LLM recommender's top-K
 * items (DESIGN.md idea 3) and their metrics.
 *
 * For each explained user u (explain.user_ids, or a seeded sample of explain.users users with a
 * test target): the aligner's top explain.candidates items outside u's history are re-ranked by the
 * llm_explain model of prompt.h5 (u's user evidence tokens in the prompt, each candidate scored
 * with its own evidence: tokens before it or the item-head term; src/prompt/llmrec.h); for each of
 * the top explain.top_k items i:
 *   - the evidence of (u, i) (neighbour users who took i, u's items closest to i, i's attributes
 *     weighted by attention from h_u; src/explain/explain.h);
 *   - the rationale written by the frozen LM after the prompt and i's continuation, from the
 *     templates of explain.templates, every slot filled with the strongest evidence of its kind,
 *     the templates of the user's K items chosen jointly under the share cap
 *     (explain.template_share; explain_templates_assign), or free-form (explain.rationale = free)
 *     decoded through a trie over the evidence values (src/explain/explain_free.h);
 *   - deletion faithfulness: the score and rank of i when its evidence is masked (the user
 *     evidence tokens and i's own evidence replaced by the encoders' output for the empty set),
 *     against masking as many random prompt tokens as the evidence has tokens
 *     (explain.random_masks draws);
 *   - evidence precision: the share of neighbours, items and attributes whose removal from the
 *     evidence lowers i's score (by more than explain.precision_tol);
 * and per user the feature-level text metrics of the K rationales (FMR, FCR, DIV).
 *
 * Outputs (written to temporary names, renamed when complete):
 *   explain.jsonl   one line per (user, rank): item, title, score, masked score, rationale, the
 *                   evidence behind it (ids, titles, names, weights), which elements it cites and
 *                   the user evidence of the prompt (explain.output: another path, or "-" to
 *                   print to stdout)
 *   explain.h5      format "dynmm-explain" v1: /explain/users (n_users, 12) per-user metrics, NaN
 *                   for users not explained (columns in the attribute); /explain/items (rows, 4):
 *                   user, item, rank, template of every explanation, and /explain/evidence/{kind,id,
 *                   weight,count} (rows, width) the evidence stored with it (explain_evidence_pack),
 *                   so each explanation can be verified; /explain/user_evidence/{kind,id,weight,
 *                   count} (explained users, width) the user evidence of each explained user (its
 *                   row of /explain/items' users in order; without user evidence tokens, empty
 *                   rows); summary attributes on /explain: means,
 *                   corpus FCR, paired Wilcoxon tests of the deletion drops against the random
 *                   control, and the ranking metrics of llm and llm_explain from prompt.h5 on the
 *                   same users with their paired test (the ranking cost of explanations).
 *
 * The stage body is a table of contents (explain_body): explain_settings, explain_load,
 * explain_select_users, then explain_users (per user explain_rerank, explain_item for each of the
 * top K, explain_choose_templates, explain_faithfulness, explain_item_write for each,
 * explain_user_metrics), explain_gather,
 * explain_write_jsonl, explain_summary, explain_ranking_cost, explain_write_h5. Every buffer lives
 * in one workspace (explain_ws), the per-user ones allocated once by explain_alloc.
 */
#include "align_inputs.h"
#include "cands.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "stage.h"

#include "../src/align/align.h"
#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/sort.h"
#include "../src/core/str.h"
#include "../src/core/timer.h"
#include "../src/explain/explain.h"
#include "../src/explain/explain_metrics.h"
#include "../src/explain/explain_free.h"
#include "../src/explain/explain_rationale.h"
#include "../src/prompt/llmrec.h"
#include "../src/stats/stats.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPLAIN_FORMAT "dynmm-explain"

static const char USAGE[] =
    "usage: dynmm explain CONFIG.cfg [--set group.key=value ...]\n\n"
    "Explains the top-K items of the LLM recommender with evidence (llm_explain of <run.dir>/prompt.h5):\n"
    "for each user of explain.user_ids (or a sample of explain.users), the rationale, its evidence,\n"
    "deletion faithfulness against random masking, evidence precision and FMR/FCR/DIV. Writes\n"
    "<run.dir>/explain.jsonl (or explain.output; \"-\" prints) and <run.dir>/explain.h5.\n";

static const char *const explain_config_groups[] = {"explain", "prompt", "lm.precision", "split.protocol", NULL};

enum {
    XC_FMR,
    XC_FCR,
    XC_DIV,
    XC_PRECISION,
    XC_DROP,
    XC_DROP_RANDOM,
    XC_RANK_DROP,
    XC_RANK_DROP_RANDOM,
    XC_SCORE,
    XC_SCORE_MASKED,
    XC_HIT,
    XC_TESTED,
    XC_NCOLS
};
static const char *const xc_names[XC_NCOLS] = {"fmr", "fcr", "div", "evidence_precision", "drop", "drop_random",
                                               "rank_drop", "rank_drop_random", "score", "score_masked", "hit@k",
                                               "elements_tested"};
static const char *const attr_kinds[4] = {"brand", "category", "price", "other"};

/* evidence precision: the scores with each tested element removed, computed in one batch */
typedef struct {
    const double *full;   /* score with the whole evidence */
    const double *without;/* (ev->n) score without element j (NaN: not tested) */
} prec_ctx;

static double prec_score(void *ctx, const explain_evidence *ev, int removed)
{
    (void)ev;
    const prec_ctx *c = ctx;
    return removed < 0 ? *c->full : c->without[removed];
}

/* entry i of a string table as a JSON string (cut to 4095 bytes) */
static int json_strtab(dm_buf *b, const dm_strtab *t, size_t i)
{
    size_t l;
    const char *s = dm_strtab_get(t, i, &l);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%.*s", (int)l, s);
    return dm_str_json(b, tmp);
}

static int json_evidence(dm_buf *b, const dm_dataset *d, const explain_evidence *ev)
{
    DM_CALL(dm_buf_adds(b, "["));
    for (int j = 0; j < ev->n; j++) {
        const explain_elem *e = &ev->el[j];
        if (j) DM_CALL(dm_buf_adds(b, ", "));
        DM_CALL(dm_buf_printf(b, "{\"kind\": \"%s\", ", explain_kind_names[e->kind]));
        if (e->kind == EXPLAIN_USER) {
            DM_CALL(dm_buf_adds(b, "\"id\": "));
            DM_CALL(json_strtab(b, &d->user_id, (size_t)e->id));
        } else if (e->kind == EXPLAIN_ITEM) {
            DM_CALL(dm_buf_adds(b, "\"id\": "));
            DM_CALL(json_strtab(b, &d->item_id, (size_t)e->id));
            DM_CALL(dm_buf_adds(b, ", \"title\": "));
            DM_CALL(json_strtab(b, &d->title, (size_t)e->id));
        } else if (e->kind == EXPLAIN_ATTR) {
            int k = d->attr_kind[e->id];
            DM_CALL(dm_buf_printf(b, "\"type\": \"%s\", \"name\": ", attr_kinds[k >= 0 && k < 4 ? k : 3]));
            DM_CALL(json_strtab(b, &d->attr_name, (size_t)e->id));
            DM_CALL(dm_buf_printf(b, ", \"count\": %d", e->count));
        } else {
            DM_CALL(dm_buf_printf(b, "\"modality\": \"%s\"", align_modality_name(e->id)));
        }
        DM_CALL(dm_buf_printf(b, ", \"weight\": %.6g}", e->weight));
    }
    return dm_buf_adds(b, "]");
}

/* paired one-sided Wilcoxon (a > b) over the users with both values */
static void paired(const double *a, const double *b, size_t n, stats_alt alt, double *ma, double *mb, double *p, size_t *m)
{
    double *x = malloc((n + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y);
    size_t k = 0;
    for (size_t i = 0; x && y && i < n; i++)
        if (!isnan(a[i]) && !isnan(b[i])) {
            x[k] = a[i];
            y[k] = b[i];
            k++;
        }
    *m = k;
    *ma = k ? stats_sum(x, k) / (double)k : NAN;
    *mb = k ? stats_sum(y, k) / (double)k : NAN;
    stats_result r;
    *p = NAN;
    if (k >= 2 && stats_wilcoxon(x, y, k, STATS_ZERO_WILCOX, 0, alt, STATS_METHOD_AUTO, &r) == DM_OK) *p = r.p;
    free(x);
    free(y);
}

/* column c of a row-major (n, cols) matrix into out (n) */
static void column(const double *m, size_t n, size_t cols, size_t c, double *out)
{
    for (size_t i = 0; i < n; i++) out[i] = m[i * cols + c];
}

/* ---- the stage body: a workspace and the steps over it ---- */

/* Everything the steps of explain_body share. Shapes: n_users, n_items, n_inter, n_attr of the
 * dataset; W = width (evidence elements of one stored row); Kl = nloc K (this rank's explanation
 * rows); mc = maxc + 2; E, C the evidence tokens and the LM's width. */
typedef struct {
    stage_run *sr;
    par_ctx *ctx;
    const dm_cfg *cfg;
    const char *dpath, *apath, *ppath;
    char jpath[4096];           /* where the JSON lines go ("-": stdout) */
    int to_stdout;
    int K, N, R;                /* explain.top_k, explain.candidates, explain.random_masks */
    double tol;                 /* explain.precision_tol */
    uint64_t seed, pseed;       /* explain.seed, prompt.seed (derived from run.seed when < 0) */
    /* explain_load */
    char *lmdir;                /* the LM of prompt.h5 */
    float *wts;                 /* (nw) the trained llm_explain parameters */
    size_t nw;
    dm_dataset d;
    int have_d;
    const int8_t *roles;        /* (n_inter) split roles */
    float *zb;                  /* (n_items, dz) the aligner's z_base */
    float *ht;                  /* (n_users, dz) the aligner's h_test */
    size_t dz;
    explain_src src;
    int have_src;
    float *zmod;                /* (n_items, ALIGN_K, dz) per-modality latents, NULL without */
    uint8_t *zpres;             /* (n_items, ALIGN_K) */
    pm p;                       /* llm_explain with the trained weights */
    int width, maxc;            /* W; candidates of one pm batch */
    /* explain_select_users, explain_alloc */
    int32_t *sel;               /* (nsel) the explained users, ascending */
    size_t nsel, nid;           /* nid: users named in explain.user_ids (0: a sample) */
    size_t lo, hi, nloc;        /* this rank's users sel[lo..hi), nloc = hi - lo */
    size_t V;                   /* attribute features (the FMR/FCR/DIV vocabulary) */
    /* results */
    double *urow;               /* (n_users, XC_NCOLS) per-user metrics, NaN: not explained */
    int8_t *pk;                 /* (Kl, W) stored evidence: kind, -1 unused */
    int32_t *pid, *pcnt;        /* (Kl, W) id, count */
    float *pw;                  /* (Kl, W) weight */
    int64_t *irow;              /* (Kl, 4) user, item, rank, template; -1 none */
    int8_t *uk;                 /* (nloc, W) stored user evidence: kind, -1 unused */
    int32_t *uid, *ucnt;        /* (nloc, W) id, count */
    float *uw;                  /* (nloc, W) weight */
    uint8_t *seen;              /* (n_attr) attributes some rationale named (corpus FCR) */
    dm_buf js;                  /* this rank's JSON lines */
    void *gj;                   /* rank 0: every rank's JSON lines, in rank order */
    size_t *gcnt;               /* (ranks) their lengths */
    double secs;                /* wall time of the explaining loop */
    /* one user's scratch */
    int32_t *tmp;               /* (n_inter) the user's history */
    int32_t *hist;              /* (nh) its last prompt.history items */
    int32_t *cand, *ctop;       /* (mc) the aligner's top N; the explained top K in llm_explain's order */
    int32_t *rep;               /* (W + 2) one candidate repeated */
    int *order;                 /* (mc) candidates best first */
    int *evi, *drop;            /* (mc) pm_encode's evidence sets and the element each drops */
    int *mpos;                  /* (E) randomly masked prompt positions */
    int *tidx;                  /* (W) the tested evidence elements */
    double *sc, *sm, *sw;       /* (mc) scores: candidates, explained items masked, elements removed */
    double *wo;                 /* (W) score without element j */
    double *srand;              /* (R, K) explained items' scores with random prompt tokens masked */
    double *sr1;                /* (R) */
    float *y;                   /* (mc Eo, C) evidence rows of (u, i) sets */
    float *bs;                  /* (n_items) aligner scores */
    uint8_t *mark;              /* (n_items) the user's history */
    uint8_t *lowered;           /* (W) */
    int64_t *foff;              /* (K + 1) text features of each rationale: offsets into feat */
    int32_t *feat, *fitem;      /* (K 64) features, (K) the rationale's item */
    /* rationales: explain.rationale, the template choice, the user's K rationales */
    int free_form;              /* explain.rationale = free */
    double covw, share;         /* explain.coverage_weight, explain.template_share */
    explain_free fr;
    int have_fr;
    explain_fit *fit;           /* (K, T) every template written for each explained item */
    double *tsc;                /* (K, T) their scores */
    int *tch;                   /* (K) the assigned templates */
    double *prk;                /* (K) evidence precision of each explained item */
    explain_rationale *rat;     /* (K) */
    int64_t *tcount;            /* (T + 2) rationales per template, then none (-1), then free-form; summed over ranks */
    int64_t over;               /* items beyond the template caps (demanded by the data) */
    /* explain_summary, explain_ranking_cost */
    double mean[XC_NCOLS];      /* over the explained users */
    double fcr, pd, prd;        /* corpus FCR; p of the score and rank drops against random masking */
    size_t nexp, np;            /* users explained; users in the paired tests */
    double rk[16][4];           /* per protocol: llm and llm_explain ndcg@10, p, users */
    char rkname[16][64];
    int nrk;
} explain_ws;

/* One user between the steps of explain_user. */
typedef struct {
    int32_t u;
    size_t row;                 /* its first explanation row on this rank: (q - lo) K */
    int example;                /* among the first two users of the rank (logged on rank 0) */
    size_t nhall;               /* history length (w->tmp) */
    int n;                      /* prompt history length (w->hist) */
    int32_t tg[64];             /* test items */
    int ntg;
    const float *hu;            /* (dz) h_test of u */
    int nc, Ku, P;              /* candidates, explained items, prompt length */
    double prec_sum, hit;
    int prec_n, tested;
    double acc[6];              /* sums over the explained items: drop, drop_random, rank_drop,
                                   rank_drop_random, score, score masked */
} explain_user_st;

/* Paths and settings. */
static int explain_settings(explain_ws *w)
{
    const dm_cfg *cfg = w->cfg;
    w->dpath = stage_input(w->sr, "dataset.h5");
    w->apath = stage_input(w->sr, "align.h5");
    w->ppath = stage_input(w->sr, "prompt.h5");
    const char *jo = dm_cfg_str(cfg, "explain.output");
    w->to_stdout = !strcmp(jo, "-");
    if (jo[0] == '/' || w->to_stdout) snprintf(w->jpath, sizeof w->jpath, "%s", jo);
    else DM_CALL(cli_run_path(w->ctx, cfg, jo, w->jpath, sizeof w->jpath));
    long long sd = dm_cfg_int(cfg, "explain.seed");
    w->seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xE7A, 0);
    long long psd = dm_cfg_int(cfg, "prompt.seed");
    w->pseed = psd >= 0 ? (uint64_t)psd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x9A0, 0);
    w->K = (int)dm_cfg_int(cfg, "explain.top_k");
    w->N = (int)dm_cfg_int(cfg, "explain.candidates");
    w->R = (int)dm_cfg_int(cfg, "explain.random_masks");
    w->tol = dm_cfg_float(cfg, "explain.precision_tol");
    w->free_form = !strcmp(dm_cfg_str(cfg, "explain.rationale"), "free");
    w->covw = dm_cfg_float(cfg, "explain.coverage_weight");
    w->share = dm_cfg_float(cfg, "explain.template_share");
    return DM_OK;
}

/* The trained llm_explain model of prompt.h5: its LM directory and its parameters. */
static int explain_load_model(explain_ws *w)
{
    par_ctx *ctx = w->ctx;
    h5file f;
    int rc = h5_open(ctx, w->ppath, &f);
    if (rc) {
        DM_HINT("run the prompt stage first (dynmm prompt, or add it to run.stages)");
        return par_agree(ctx, rc);
    }
    rc = h5_get_attr_str(&f, "/prompt", "lm_dir", &w->lmdir);
    if (!rc && !h5_exists(&f, "/prompt/llm_explain/weights")) {
        rc = DM_ERR(DM_ECONFIG, "%s has no llm_explain model", w->ppath);
        DM_HINT("add \"llm_explain\" to prompt.models and rerun the prompt stage");
    }
    size_t c;
    void *wt = NULL;
    if (!rc) rc = h5_read_all(&f, "/prompt/llm_explain/weights", H5_F32, &wt, &w->nw, &c);
    w->wts = wt;
    h5_close(&f);
    return par_agree(ctx, rc) ? DM_EINPUT : DM_OK;
}

/* The dataset, the aligner's latents (z_base, h_test and, for the modality evidence, the
 * per-modality latents), the evidence sources and the trained llm_explain model. Agreed. */
static int explain_load(explain_ws *w)
{
    par_ctx *ctx = w->ctx;
    DM_CALL(explain_load_model(w));
    DM_CALL(ds_read(ctx, w->dpath, &w->d));
    w->have_d = 1;
    int rc = par_agree(ctx, cands_split(w->cfg, &w->d, &w->roles));
    size_t r, c;
    if (!rc) rc = h5_read_file_f32(ctx, w->apath, "/align/z_base", &w->zb, &r, &w->dz);
    if (!rc) rc = h5_read_file_f32(ctx, w->apath, "/align/h_test", &w->ht, &r, &c);
    if (!rc && w->N < w->K) rc = DM_ERR(DM_ECONFIG, "explain.candidates = %d is smaller than explain.top_k = %d", w->N, w->K);
    rc = par_agree(ctx, rc);
    explain_src *src = &w->src;
    if (!rc) {
        rc = par_agree(ctx, explain_src_init(src, w->cfg, &w->d, w->roles, w->ht, w->zb, w->dz));
        w->have_src = !rc;
        /* the modality that agrees most with the user: per-modality latents of the aligner */
        if (!rc && src->modal) rc = ai_modal_latents(ctx, w->apath, w->d.n_items, w->dz, &w->zmod, &w->zpres);
        if (!rc && src->modal) {
            src->n_modal = ALIGN_K;
            src->zm = w->zmod;
            src->present = w->zpres;
        }
    }
    w->width = w->have_src ? explain_evidence_width(src->k_users, src->k_items, src->k_attrs) : 1;
    w->maxc = w->N > w->width + 1 ? w->N : w->width + 1;
    if (!rc) rc = par_agree(ctx, pm_init(w->cfg, w->lmdir, &w->d, w->zb, w->dz, w->maxc + 1, w->pseed, src, &w->p));
    if (!rc && w->nw != w->p.nparams) {
        rc = DM_ERR(DM_ECONFIG, "%s holds %zu llm_explain parameters but this configuration makes %zu", w->ppath, w->nw,
                    w->p.nparams);
        DM_HINT("rerun the prompt stage with this configuration (the prompt.* and explain.* sizes must match)");
    }
    rc = par_agree(ctx, rc);
    if (!rc) memcpy(w->p.w, w->wts, w->nw * sizeof *w->wts);
    if (!rc && w->free_form) {
        rc = par_agree(ctx, explain_free_init(&w->fr, dm_cfg_str(w->cfg, "explain.free_words"),
                                              (int)dm_cfg_int(w->cfg, "explain.free_max_tokens"), &w->d, &w->p.lm));
        w->have_fr = !rc;
    }
    return rc;
}

/* 1 if user u has a test item */
static int has_test(const dm_dataset *d, const int8_t *roles, size_t u)
{
    int has = 0;
    for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) has |= roles[j] == DM_TEST;
    return has;
}

/* The users of explain.user_ids, ascending and distinct. */
static int explain_users_by_id(explain_ws *w)
{
    const dm_dataset *d = &w->d;
    dm_strmap m = {0};
    int rc = DM_OK;
    for (size_t u = 0; !rc && u < d->n_users; u++) {
        size_t l;
        const char *s = dm_strtab_get(&d->user_id, u, &l);
        int64_t id;
        int added;
        rc = dm_strmap_intern(&m, s, l, &id, &added);
    }
    for (size_t k = 0; !rc && k < w->nid; k++) {
        const char *s = dm_cfg_str_at(w->cfg, "explain.user_ids", k);
        int64_t u = dm_strmap_find(&m, s, strlen(s));
        if (u < 0) rc = DM_ERR(DM_ECONFIG, "explain.user_ids: user '%s' is not in the dataset %s", s, w->dpath);
        else w->sel[w->nsel++] = (int32_t)u;
    }
    dm_strmap_free(&m);
    if (rc) return rc;
    qsort(w->sel, w->nsel, sizeof *w->sel, dm_cmp_i32);
    size_t q = 0;
    for (size_t k = 0; k < w->nsel; k++)
        if (!q || w->sel[k] != w->sel[q - 1]) w->sel[q++] = w->sel[k];
    w->nsel = q;
    return DM_OK;
}

/* A seeded sample of explain.users users with a test item: the smallest keys (seed, user). */
static int explain_users_sample(explain_ws *w)
{
    const dm_dataset *d = &w->d;
    size_t nu = d->n_users, want = (size_t)dm_cfg_int(w->cfg, "explain.users"), nt = 0;
    uint64_t *key = malloc((nu + 1) * sizeof *key);
    if (!key) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t u = 0; u < nu; u++)
        if (has_test(d, w->roles, u)) key[nt++] = dm_rng_key(w->seed, 0x5E1, u);
    uint64_t thr = UINT64_MAX;
    if (want < nt) {
        qsort(key, nt, sizeof *key, dm_cmp_u64);
        thr = key[want - 1];
    }
    for (size_t u = 0; u < nu; u++)
        if (has_test(d, w->roles, u) && dm_rng_key(w->seed, 0x5E1, u) <= thr) w->sel[w->nsel++] = (int32_t)u;
    free(key);
    return DM_OK;
}

/* The explained users: explain.user_ids, or a sample. Agreed. */
static int explain_select_users(explain_ws *w)
{
    int rc = DM_OK;
    w->sel = malloc((w->d.n_users + 1) * sizeof *w->sel);
    if (!w->sel) rc = DM_ERR(DM_ENOMEM, "out of memory");
    w->nid = dm_cfg_len(w->cfg, "explain.user_ids");
    if (!rc) rc = w->nid ? explain_users_by_id(w) : explain_users_sample(w);
    return par_agree(w->ctx, rc);
}

/* This rank's share of the users, the result buffers and one user's scratch. */
static int explain_alloc(explain_ws *w)
{
    const dm_dataset *d = &w->d;
    dm_shard_even(w->nsel, w->ctx->size, w->ctx->rank, &w->lo, &w->hi);
    w->nloc = w->hi - w->lo;
    w->V = explain_vocab_size(d, EXPLAIN_FEAT_ALL);
    char lay[128];
    if (w->p.ev_head) snprintf(lay, sizeof lay, "%d user evidence tokens, the item's evidence on the item-head path", w->p.Eu);
    else snprintf(lay, sizeof lay, "%d user evidence tokens, %d evidence tokens before each candidate", w->p.Eu, w->p.E);
    dm_log("  explain: %zu users (%s), top %d of the aligner's top %d re-ranked by llm_explain (%s); "
           "evidence: %d neighbours, %d items, %d attributes; %zu attribute features",
           w->nsel, w->nid ? "explain.user_ids" : "a sample of users with a test item", w->K, w->N, lay, w->src.k_users,
           w->src.k_items, w->src.k_attrs, w->V);
    size_t nu = d->n_users, ni = d->n_items, K = (size_t)w->K, W = (size_t)w->width, R = (size_t)w->R;
    size_t kl = w->nloc * K, mc = (size_t)w->maxc + 2, E = (size_t)w->p.Eo, C = (size_t)w->p.C, E1 = (size_t)pm_evidence_tokens(&w->p);
    w->urow = malloc((nu + 1) * XC_NCOLS * sizeof *w->urow);
    w->pk = malloc((kl + 1) * W);
    w->pid = malloc((kl + 1) * W * sizeof *w->pid);
    w->pcnt = malloc((kl + 1) * W * sizeof *w->pcnt);
    w->pw = malloc((kl + 1) * W * sizeof *w->pw);
    w->irow = malloc((kl + 1) * 4 * sizeof *w->irow);
    w->uk = malloc((w->nloc + 1) * W);
    w->uid = malloc((w->nloc + 1) * W * sizeof *w->uid);
    w->ucnt = malloc((w->nloc + 1) * W * sizeof *w->ucnt);
    w->uw = malloc((w->nloc + 1) * W * sizeof *w->uw);
    w->seen = calloc(d->n_attr + 1, 1);
    w->tmp = malloc((d->n_inter + 1) * sizeof *w->tmp);
    w->hist = malloc((size_t)(w->p.nh + 1) * sizeof *w->hist);
    w->cand = malloc(mc * sizeof *w->cand);
    w->ctop = malloc(mc * sizeof *w->ctop);
    w->rep = malloc((W + 2) * sizeof *w->rep);
    w->order = malloc(mc * sizeof *w->order);
    w->evi = malloc(mc * sizeof *w->evi);
    w->drop = malloc(mc * sizeof *w->drop);
    w->mpos = malloc((E1 + 1) * sizeof *w->mpos);
    w->tidx = malloc((W + 1) * sizeof *w->tidx);
    w->sc = malloc(mc * sizeof *w->sc);
    w->sm = malloc(mc * sizeof *w->sm);
    w->sw = malloc(mc * sizeof *w->sw);
    w->wo = malloc((W + 1) * sizeof *w->wo);
    w->srand = malloc((R * K + 1) * sizeof *w->srand);
    w->sr1 = malloc((R + 1) * sizeof *w->sr1);
    w->y = malloc(mc * E * C * sizeof *w->y);
    w->bs = malloc(ni * sizeof *w->bs + 4);
    w->mark = calloc(ni + 1, 1);
    w->lowered = malloc(W + 1);
    w->foff = malloc((K + 1) * sizeof *w->foff);
    w->feat = malloc((K * 64 + 1) * sizeof *w->feat);
    w->fitem = malloc((K + 1) * sizeof *w->fitem);
    size_t T = (size_t)w->p.tpl.n;
    w->fit = malloc((K * T + 1) * sizeof *w->fit);
    w->tsc = malloc((K * T + 1) * sizeof *w->tsc);
    w->tch = malloc((K + 1) * sizeof *w->tch);
    w->prk = malloc((K + 1) * sizeof *w->prk);
    w->tcount = calloc(T + 2, sizeof *w->tcount);
    w->rat = calloc(K, sizeof *w->rat);
    if (!w->fit || !w->tsc || !w->tch || !w->prk || !w->tcount || !w->rat) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t k = 0; k < K; k++) explain_rationale_init(&w->rat[k]);
    if (!w->urow || !w->pk || !w->pid || !w->pcnt || !w->pw || !w->irow || !w->uk || !w->uid || !w->ucnt || !w->uw || !w->seen ||
        !w->tmp || !w->hist || !w->cand ||
        !w->ctop || !w->rep || !w->order || !w->evi || !w->drop || !w->mpos || !w->tidx || !w->sc || !w->sm || !w->sw ||
        !w->wo || !w->srand || !w->sr1 || !w->y || !w->bs || !w->mark || !w->lowered || !w->foff || !w->feat || !w->fitem)
        return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t k = 0; k < nu * XC_NCOLS; k++) w->urow[k] = NAN;
    for (size_t k = 0; k < kl * W; k++) {
        w->pk[k] = -1;
        w->pid[k] = -1;
        w->pw[k] = 0;
        w->pcnt[k] = 0;
    }
    for (size_t k = 0; k < kl * 4; k++) w->irow[k] = -1;
    for (size_t k = 0; k < w->nloc * W; k++) {
        w->uk[k] = -1;
        w->uid[k] = -1;
        w->uw[k] = 0;
        w->ucnt[k] = 0;
    }
    return DM_OK;
}

/* The user's candidates, the aligner's top N outside its history, re-ranked by llm_explain (each
 * with its own evidence); the explained top K in that order; the user evidence stored. */
static int explain_rerank(explain_ws *w, explain_user_st *x)
{
    pm *p = &w->p;
    const dm_dataset *d = &w->d;
    size_t ni = d->n_items, dz = w->dz;
    ev_split s = {d, w->roles, DM_TEST, NULL};
    x->nhall = ev_history(&s, (size_t)x->u, w->tmp);
    size_t m = x->nhall < (size_t)p->nh ? x->nhall : (size_t)p->nh;
    memcpy(w->hist, w->tmp + (x->nhall - m), m * sizeof *w->hist);
    x->n = (int)m;
    for (int64_t j = d->user_off[x->u]; j < d->user_off[x->u + 1] && x->ntg < 64; j++)
        if (w->roles[j] == DM_TEST) x->tg[x->ntg++] = d->item[j];
    pm_set_user(p, x->u, w->tmp, (int)x->nhall);
    x->hu = w->ht + (size_t)x->u * dz;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)ni, (int)dz, 1.0f, w->zb, (int)dz, x->hu, 1, 0.0f, w->bs, 1);
    for (size_t k = 0; k < x->nhall; k++) w->mark[w->tmp[k]] = 1;
    x->nc = dm_top_k_f32(w->bs, ni, w->mark, w->N, w->cand);
    for (size_t k = 0; k < x->nhall; k++) w->mark[w->tmp[k]] = 0;
    if (x->nc == 0) return DM_OK;
    DM_CALL(pm_score_user(p, x->hu, w->hist, x->n, w->cand, x->nc, p->L, w->sc));
    x->P = p->cache.len;
    int *order = w->order;
    for (int k = 0; k < x->nc; k++) order[k] = k;
    /* best first; ties by candidate order (the aligner's) */
    for (int a = 1; a < x->nc; a++)
        for (int b = a; b > 0 && w->sc[order[b]] > w->sc[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    x->Ku = x->nc < w->K ? x->nc : w->K;
    for (int k = 0; k < x->Ku; k++) w->ctop[k] = w->cand[order[k]];
    if (p->Eu) {
        size_t r = x->row / (size_t)w->K, W = (size_t)w->width;
        DM_CALL(explain_evidence_pack(&p->uev, w->width, w->uk + r * W, w->uid + r * W, w->uw + r * W, w->ucnt + r * W));
    }
    return DM_OK;
}

/* Evidence precision of candidate t: its score with each neighbour, item and attribute removed in
 * turn (one batch), and the share of them whose removal lowers it (*pr, NaN: none tested). */
static int explain_precision(explain_ws *w, explain_user_st *x, int t, double *pr)
{
    pm *p = &w->p;
    const explain_evidence *ev = &p->ev[t];
    int nt = 0;
    w->evi[0] = t;
    w->drop[0] = -1;
    for (int j = 0; j < ev->n; j++)
        if (ev->el[j].kind != EXPLAIN_MODAL) {
            w->tidx[nt] = j;
            w->evi[1 + nt] = t;
            w->drop[1 + nt] = j;
            nt++;
        }
    for (int j = 0; j <= nt; j++) w->sw[j] = 0;
    for (int j = 0; j <= nt; j++) w->rep[j] = w->cand[t];
    DM_CALL(pm_encode(p, w->evi, w->drop, nt + 1, w->y));
    DM_CALL(pm_score_cached(p, w->rep, nt + 1, w->y, w->sw));
    for (int j = 0; j < ev->n; j++) w->wo[j] = NAN;
    for (int j = 0; j < nt; j++) w->wo[w->tidx[j]] = w->sw[1 + j];
    prec_ctx pc = {&w->sw[0], w->wo};
    int ntest = 0;
    DM_CALL(explain_evidence_precision(ev, w->tidx, nt, prec_score, &pc, w->tol, w->lowered, pr, &ntest));
    if (!isnan(*pr)) {
        x->prec_sum += *pr;
        x->prec_n++;
    }
    x->tested += ntest;
    return DM_OK;
}

/* The JSON line of explained item k (candidate t = order[k]) into w->js. */
static int explain_json_line(explain_ws *w, const explain_user_st *x, int k, double pr, int is_hit, const explain_rationale *r,
                             const char *text)
{
    const dm_dataset *d = &w->d;
    int t = w->order[k];
    size_t c = (size_t)w->cand[t];
    dm_buf *b = &w->js;
    DM_CALL(dm_buf_adds(b, "{\"user\": "));
    DM_CALL(json_strtab(b, &d->user_id, (size_t)x->u));
    DM_CALL(dm_buf_printf(b, ", \"rank\": %d, \"item\": ", k + 1));
    DM_CALL(json_strtab(b, &d->item_id, c));
    DM_CALL(dm_buf_adds(b, ", \"title\": "));
    DM_CALL(json_strtab(b, &d->title, c));
    DM_CALL(dm_buf_printf(b, ", \"score\": %.6g, \"score_evidence_masked\": %.6g, \"test_item\": %s, \"rationale\": ", w->sc[t],
                          w->sm[k], is_hit ? "true" : "false"));
    DM_CALL(dm_str_json(b, text));
    DM_CALL(dm_buf_printf(b, ", \"template\": %d, \"cites\": [", r->tpl));
    for (int j = 0; j < r->n_cite; j++) DM_CALL(dm_buf_printf(b, "%s%d", j ? ", " : "", r->cite[j]));
    if (isnan(pr)) DM_CALL(dm_buf_adds(b, "], \"evidence_precision\": null, \"evidence\": "));
    else DM_CALL(dm_buf_printf(b, "], \"evidence_precision\": %.4g, \"evidence\": ", pr));
    DM_CALL(json_evidence(b, d, &w->p.ev[t]));
    if (w->p.Eu) {
        DM_CALL(dm_buf_adds(b, ", \"user_evidence\": "));
        DM_CALL(json_evidence(b, d, &w->p.uev));
    }
    return dm_buf_adds(b, "}\n");
}

/* the first items of the first users of rank 0 as examples in the log */
static void explain_log_example(const explain_ws *w, const explain_user_st *x, int k, const char *text)
{
    int t = w->order[k];
    size_t l, lt;
    const char *ti = dm_strtab_get(&w->d.title, (size_t)w->cand[t], &lt);
    if (k == 0) {
        const char *un = dm_strtab_get(&w->d.user_id, (size_t)x->u, &l);
        dm_log("  user %.*s, top %d of %d candidates:", (int)l, un, x->Ku, x->nc);
    }
    dm_log("    %d. %.*s%s (score %.3f, evidence masked %.3f)", k + 1, (int)(lt > 60 ? 60 : lt), ti, lt > 60 ? "..." : "",
           w->sc[t], w->sm[k]);
    dm_log("       \"%s\"", text);
}

/* Explained item k of the user (candidate t = order[k]): evidence precision, and after the prompt
 * and the item's continuation with its evidence either every template written (w->fit, chosen by
 * explain_templates_assign once the user's K items are known) or the free-form rationale (w->rat). */
static int explain_item(explain_ws *w, explain_user_st *x, int k)
{
    pm *p = &w->p;
    int t = w->order[k];
    int32_t c = w->cand[t];
    const explain_evidence *ev = &p->ev[t];
    w->prk[k] = NAN;
    DM_CALL(explain_precision(w, x, t, &w->prk[k]));
    w->evi[0] = t;
    w->drop[0] = -1;
    DM_CALL(pm_encode(p, w->evi, w->drop, 1, w->y));
    DM_CALL(pm_append_candidate(p, c, w->y));
    if (w->free_form) DM_CALL(explain_free_make(&w->fr, &w->d, ev, &p->lm, &p->cache, &w->rat[k]));
    else DM_CALL(explain_rationale_fit(&p->tpl, &w->d, ev, &p->lm, &p->cache, w->covw, &w->rat[k], w->fit + (size_t)k * p->tpl.n));
    return lm_cache_truncate(&p->cache, x->P);
}

/* The templates of the user's K rationales, chosen jointly under the share cap
 * (explain_templates_assign), into w->rat. */
static int explain_choose_templates(explain_ws *w, explain_user_st *x)
{
    const explain_templates *tp = &w->p.tpl;
    int T = tp->n, over = 0;
    for (int k = 0; k < x->Ku; k++)
        for (int q = 0; q < T; q++) w->tsc[(size_t)k * T + q] = w->fit[(size_t)k * T + q].score;
    DM_CALL(explain_templates_assign(x->Ku, T, w->tsc, w->share, w->tch, &over));
    w->over += over;
    for (int k = 0; k < x->Ku; k++)
        DM_CALL(explain_rationale_set(tp, w->tch[k], &w->d, &w->p.ev[w->order[k]], w->fit + (size_t)k * T, &w->rat[k]));
    return DM_OK;
}

/* Explained item k's rationale written out: its text features, the stored evidence row and the
 * JSON line. */
static int explain_item_write(explain_ws *w, explain_user_st *x, int k)
{
    int t = w->order[k], T = w->p.tpl.n;
    int32_t c = w->cand[t];
    const explain_evidence *ev = &w->p.ev[t];
    const explain_rationale *r = &w->rat[k];
    const char *text = r->tpl != -1 && r->text.data ? r->text.data : "";
    w->tcount[r->tpl >= 0 ? r->tpl : r->tpl == -1 ? T : T + 1]++;
    int nf = 0;
    DM_CALL(explain_text_features(&w->d, EXPLAIN_FEAT_ALL, text, w->feat + w->foff[k], 64, &nf));
    if (nf > 64) nf = 64;
    w->foff[k + 1] = w->foff[k] + nf;
    w->fitem[k] = c;
    int is_hit = 0;
    for (int j = 0; j < x->ntg; j++) is_hit |= x->tg[j] == c;
    x->hit += is_hit;
    /* stored evidence */
    size_t er = x->row + (size_t)k, W = (size_t)w->width;
    explain_evidence_pack(ev, w->width, w->pk + er * W, w->pid + er * W, w->pw + er * W, w->pcnt + er * W);
    int64_t *ir = w->irow + er * 4;
    ir[0] = x->u;
    ir[1] = c;
    ir[2] = k + 1;
    ir[3] = r->tpl;
    DM_CALL(explain_json_line(w, x, k, w->prk[k], is_hit, r, text));
    if (x->example && k < 3) explain_log_example(w, x, k, text);
    return DM_OK;
}

/* Deletion faithfulness of the explained items: their scores with their evidence masked (the
 * empty set's user evidence tokens in the prompt and their own evidence masked, in one batch)
 * against those with as many random prompt tokens masked as there are evidence tokens
 * (explain.random_masks draws), summed into x->acc. Runs after the items' rationales: it
 * replaces the cached prompt. */
static int explain_faithfulness(explain_ws *w, explain_user_st *x)
{
    pm *p = &w->p;
    int Ku = x->Ku, E1 = pm_evidence_tokens(p), cnt = E1 < x->P ? E1 : x->P, P2;
    /* without user evidence tokens the cached prompt is already the masked one */
    if (p->Eu) DM_CALL(pm_prompt(p, x->hu, w->hist, x->n, p->L, NULL, 0, 1, &P2));
    for (int k = 0; k < Ku; k++) {
        w->evi[k] = w->order[k];
        w->drop[k] = -2;
    }
    DM_CALL(pm_encode(p, w->evi, w->drop, Ku, w->y));
    DM_CALL(pm_score_cached(p, w->ctop, Ku, w->y, w->sm));
    for (int rr = 0; rr < w->R; rr++) {
        explain_random_positions(w->seed, (uint64_t)x->u, (uint64_t)rr, x->P, cnt, w->mpos);
        DM_CALL(pm_prompt(p, x->hu, w->hist, x->n, p->L, w->mpos, cnt, 0, &P2));
        for (int k = 0; k < Ku; k++) {
            w->evi[k] = w->order[k];
            w->drop[k] = -1;
        }
        DM_CALL(pm_encode(p, w->evi, w->drop, Ku, w->y));
        DM_CALL(pm_score_cached(p, w->ctop, Ku, w->y, w->srand + (size_t)rr * Ku));
    }
    for (int k = 0; k < Ku; k++) {
        for (int rr = 0; rr < w->R; rr++) w->sr1[rr] = w->srand[(size_t)rr * Ku + k];
        explain_deletion del;
        explain_deletion_eval(w->sc, x->nc, w->order[k], w->sm[k], w->sr1, w->R, &del);
        x->acc[0] += del.drop;
        x->acc[1] += del.drop_random;
        x->acc[2] += del.rank_drop;
        x->acc[3] += del.rank_drop_random;
        x->acc[4] += del.s_full;
        x->acc[5] += del.s_masked;
    }
    return DM_OK;
}

/* The user's row of metrics: FMR, FCR, DIV of its rationales, evidence precision, the deletion
 * means, whether a test item was explained. */
static int explain_user_metrics(explain_ws *w, const explain_user_st *x)
{
    int Ku = x->Ku, R = w->R;
    explain_text_user tu;
    DM_CALL(explain_text_user_metrics(&w->d, Ku, w->foff, w->feat, w->fitem, w->V, w->seen, &tu));
    double *row = w->urow + (size_t)x->u * XC_NCOLS;
    row[XC_FMR] = tu.fmr;
    row[XC_FCR] = tu.fcr;
    row[XC_DIV] = tu.div;
    row[XC_PRECISION] = x->prec_n ? x->prec_sum / x->prec_n : NAN;
    row[XC_DROP] = x->acc[0] / Ku;
    row[XC_DROP_RANDOM] = R ? x->acc[1] / Ku : NAN;
    row[XC_RANK_DROP] = x->acc[2] / Ku;
    row[XC_RANK_DROP_RANDOM] = R ? x->acc[3] / Ku : NAN;
    row[XC_SCORE] = x->acc[4] / Ku;
    row[XC_SCORE_MASKED] = x->acc[5] / Ku;
    row[XC_HIT] = x->hit > 0 ? 1.0 : 0.0;
    row[XC_TESTED] = (double)x->tested / Ku;
    return DM_OK;
}

/* One user (sel[q]): re-ranked, its top K explained, the deletion control, its row of metrics. */
static int explain_user(explain_ws *w, size_t q)
{
    explain_user_st x;
    memset(&x, 0, sizeof x);
    x.u = w->sel[q];
    x.row = (q - w->lo) * (size_t)w->K;
    x.example = q - w->lo < 2;
    DM_CALL(explain_rerank(w, &x));
    if (x.nc == 0) return DM_OK;
    w->foff[0] = 0;
    for (int k = 0; k < x.Ku; k++) DM_CALL(explain_item(w, &x, k));
    if (!w->free_form) DM_CALL(explain_choose_templates(w, &x));
    DM_CALL(explain_faithfulness(w, &x));
    for (int k = 0; k < x.Ku; k++) DM_CALL(explain_item_write(w, &x, k));
    return explain_user_metrics(w, &x);
}

/* This rank's users; the other ranks' rows stay NaN. Agreed. */
static int explain_users(explain_ws *w)
{
    int rc = explain_alloc(w);
    double tl = dm_wtime();
    for (size_t q = w->lo; q < w->hi && !rc; q++) {
        rc = explain_user(w, q);
        if (!rc && (q - w->lo + 1) % 50 == 0)
            dm_log("  explained %zu of %zu users on rank 0 (%.1fs)", q - w->lo + 1, w->nloc, dm_wtime() - tl);
    }
    rc = par_agree(w->ctx, rc);
    w->secs = dm_wtime() - tl;
    return rc;
}

/* Every rank's results: the per-user rows (each user explained on one rank) and the attributes
 * named on every rank, the JSON lines on rank 0. Agreed. */
static int explain_gather(explain_ws *w)
{
    par_ctx *ctx = w->ctx;
    size_t n = w->d.n_users * XC_NCOLS, na = w->d.n_attr;
    /* rows are NaN except on the owning rank: max ignores NaN when we map NaN -> -inf */
    for (size_t k = 0; k < n; k++)
        if (isnan(w->urow[k])) w->urow[k] = -INFINITY;
    int rc = par_allreduce_max_f64(ctx, w->urow, n);
    for (size_t k = 0; k < n; k++)
        if (w->urow[k] == -INFINITY) w->urow[k] = NAN;
    if (!rc) {
        int64_t *sm64 = malloc((na + 1) * sizeof *sm64);
        if (!sm64) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t k = 0; !rc && k < na; k++) sm64[k] = w->seen[k];
        if (!rc) rc = par_allreduce_max_i64(ctx, sm64, na);
        for (size_t k = 0; !rc && k < na; k++) w->seen[k] = (uint8_t)sm64[k];
        free(sm64);
    }
    if (!rc) rc = par_allreduce_sum_i64(ctx, w->tcount, (size_t)w->p.tpl.n + 2);
    if (!rc) rc = par_allreduce_sum_i64(ctx, &w->over, 1);
    if (!rc) rc = par_gatherv(ctx, w->js.data ? w->js.data : "", w->js.len, 0, &w->gj, &w->gcnt);
    return par_agree(ctx, rc);
}

/* Rank 0 prints the JSON lines, or writes them to a temporary name renamed when complete. Agreed. */
static int explain_write_jsonl(explain_ws *w)
{
    int rc = DM_OK;
    if (w->ctx->rank == 0) {
        size_t tot = 0;
        for (int k = 0; k < w->ctx->size; k++) tot += w->gcnt[k];
        if (w->to_stdout) {
            fwrite(w->gj, 1, tot, stdout);
            fflush(stdout);
        } else {
            char tmpn[4200];
            snprintf(tmpn, sizeof tmpn, "%s.tmp.%ld", w->jpath, (long)getpid());
            FILE *fp = fopen(tmpn, "wb");
            if (!fp) rc = DM_ERR(DM_EIO, "%s: cannot write the explanations", tmpn);
            if (fp && fwrite(w->gj, 1, tot, fp) != tot) rc = DM_ERR(DM_EIO, "%s: short write", tmpn);
            if (fp && fclose(fp) != 0 && !rc) rc = DM_ERR(DM_EIO, "%s: cannot close", tmpn);
            if (!rc && rename(tmpn, w->jpath) != 0) rc = DM_ERR(DM_EIO, "cannot rename %s to %s", tmpn, w->jpath);
            if (rc) remove(tmpn);
        }
    }
    return par_agree(w->ctx, rc);
}

/* Means over the explained users, the corpus FCR, and the paired tests of the deletion drops
 * against the random control; logged. Agreed. */
static int explain_summary(explain_ws *w)
{
    size_t nu = w->d.n_users;
    const double *all = w->urow;
    for (int k = 0; k < XC_NCOLS; k++) {
        double sum = 0;
        size_t m = 0;
        for (size_t u = 0; u < nu; u++) {
            double v = all[u * XC_NCOLS + k];
            if (!isnan(v)) {
                sum += v;
                m++;
            }
        }
        w->mean[k] = m ? sum / (double)m : NAN;
        if (k == XC_SCORE) w->nexp = m;
    }
    w->fcr = explain_fcr(w->seen, w->d.n_attr, w->V);
    double *a = malloc((nu + 1) * sizeof *a), *b = malloc((nu + 1) * sizeof *b), m1, m2;
    if (!a || !b) {
        free(a);
        free(b);
        return par_agree(w->ctx, DM_ERR(DM_ENOMEM, "out of memory"));
    }
    column(all, nu, XC_NCOLS, XC_DROP, a);
    column(all, nu, XC_NCOLS, XC_DROP_RANDOM, b);
    paired(a, b, nu, STATS_GREATER, &m1, &m2, &w->pd, &w->np);
    column(all, nu, XC_NCOLS, XC_RANK_DROP, a);
    column(all, nu, XC_NCOLS, XC_RANK_DROP_RANDOM, b);
    paired(a, b, nu, STATS_GREATER, &m1, &m2, &w->prd, &w->np);
    free(a);
    free(b);
    const double *mean = w->mean;
    dm_log("  %zu users explained in %.1fs (%.3fs per user and rank)", w->nexp, w->secs, w->nloc ? w->secs / (double)w->nloc : 0.0);
    dm_log("  deletion: masking the evidence lowers the explained items' score by %.4f and their rank by %.2f;",
           mean[XC_DROP], mean[XC_RANK_DROP]);
    dm_log("            masking %d random prompt tokens instead: by %.4f and %.2f (paired Wilcoxon, greater: p = %.3g and %.3g, %zu users)",
           pm_evidence_tokens(&w->p), mean[XC_DROP_RANDOM], mean[XC_RANK_DROP_RANDOM], w->pd, w->prd, w->np);
    dm_log("  evidence precision %.3f (%.1f elements tested per item); FMR %.3f, FCR %.3f (corpus %.3f), DIV %.3f; test item in the top %d: %.3f",
           mean[XC_PRECISION], mean[XC_TESTED], mean[XC_FMR], mean[XC_FCR], w->fcr, mean[XC_DIV], w->K, mean[XC_HIT]);
    int T = w->p.tpl.n;
    int64_t tot = 0;
    for (int k = 0; k < T + 2; k++) tot += w->tcount[k];
    dm_buf sh = {0};
    for (int k = 0; k < T + 2 && tot > 0; k++) {
        if (k >= T && w->tcount[k] == 0) continue;
        if (k < T) dm_buf_printf(&sh, "%stemplate %d: %lld (%.1f%%)", k ? ", " : "", k, (long long)w->tcount[k], 100.0 * w->tcount[k] / tot);
        else dm_buf_printf(&sh, ", %s: %lld", k == T ? "none" : "free-form", (long long)w->tcount[k]);
    }
    if (w->free_form) dm_log("  rationales (free-form, at most %d tokens): %s", w->fr.max_tokens, sh.data ? sh.data : "none");
    else
        dm_log("  rationales: %s; share cap %.2f of each user's top %d, %lld over the caps (demanded by the data)",
               sh.data ? sh.data : "none", w->share, w->K, (long long)w->over);
    dm_buf_free(&sh);
    return par_agree(w->ctx, DM_OK);
}

/* The ranking cost of explanations on one protocol of prompt.h5 (f): ndcg@10 of llm and
 * llm_explain on the same users, with a paired two-sided test, into w->rk. */
static int explain_ranking_cost_one(explain_ws *w, h5file *f, const char *pn)
{
    char a[256], b[256];
    snprintf(a, sizeof a, "/test/%s/llm", pn);
    snprintf(b, sizeof b, "/test/%s/llm_explain", pn);
    if (!h5_exists(f, a) || !h5_exists(f, b)) return DM_OK;
    void *ra = NULL, *rb = NULL;
    size_t rows = 0, cols = 0, rows2 = 0, cols2 = 0, col = (size_t)-1;
    double *x = NULL, *y = NULL;
    dm_strtab cn = {0};
    int rc = h5_read_all(f, a, H5_F64, &ra, &rows, &cols);
    if (!rc) rc = h5_read_all(f, b, H5_F64, &rb, &rows2, &cols2);
    if (!rc && rows2 != rows) rc = DM_ERR(DM_EFORMAT, "%s: %s and %s hold %zu and %zu users", w->ppath, a, b, rows, rows2);
    if (!rc) rc = h5_read_strtab(f, "/columns", &cn);
    for (size_t k = 0; !rc && k < cn.n; k++) {
        size_t l;
        const char *nmc = dm_strtab_get(&cn, k, &l);
        if (l == 7 && !strncmp(nmc, "ndcg@10", 7)) col = k;
    }
    if (!rc && col != (size_t)-1) {
        x = malloc((rows + 1) * sizeof *x);
        y = malloc((rows + 1) * sizeof *y);
        if (!x || !y) rc = DM_ERR(DM_ENOMEM, "out of memory");
    }
    if (!rc && col != (size_t)-1) {
        double *rk = w->rk[w->nrk];
        size_t m;
        column(ra, rows, cols, col, x);
        column(rb, rows, cols2, col, y);
        paired(y, x, rows, STATS_TWO_SIDED, &rk[1], &rk[0], &rk[2], &m);
        rk[3] = (double)m;
        snprintf(w->rkname[w->nrk], sizeof w->rkname[w->nrk], "%s", pn);
        dm_log("  ranking with and without the explanation losses (test %s, ndcg@10, %zu users): llm %.4f, llm_explain %.4f (paired Wilcoxon p = %.3g)",
               pn, m, rk[0], rk[1], rk[2]);
        w->nrk++;
    }
    dm_strtab_free(&cn);
    free(ra);
    free(rb);
    free(x);
    free(y);
    return rc;
}

/* The ranking cost of explanations: llm against llm_explain of prompt.h5 per protocol of
 * prompt.protocols. Agreed. */
static int explain_ranking_cost(explain_ws *w)
{
    par_ctx *ctx = w->ctx;
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, w->ppath, &f)));
    size_t npr = dm_cfg_len(w->cfg, "prompt.protocols");
    int rc = DM_OK;
    for (size_t pi = 0; !rc && pi < npr && w->nrk < 16; pi++)
        rc = explain_ranking_cost_one(w, &f, dm_cfg_str_at(w->cfg, "prompt.protocols", pi));
    h5_close(&f);
    return par_agree(ctx, rc);
}

/* explain.h5: per-user rows, the explanations with their evidence, the summary and the ranking
 * cost; committed when rc is DM_OK on every rank, discarded otherwise. */
static int explain_write_h5(explain_ws *w, int rc)
{
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    size_t nu = w->d.n_users, W = (size_t)w->width;
    if (!rc) rc = stage_output_create(w->sr, EXPLAIN_FORMAT, 1, &f);
    if (!rc) rc = h5_write_all(&f, "/explain/users", H5_F64, nu, XC_NCOLS, w->urow);
    if (!rc) {
        char cols[1024] = "";
        for (int k = 0; k < XC_NCOLS; k++) {
            size_t l = strlen(cols);
            snprintf(cols + l, sizeof cols - l, "%s%s", k ? ", " : "", xc_names[k]);
        }
        rc = h5_attr_str(&f, "/explain/users", "columns", cols);
    }
    size_t gr = w->nsel * (size_t)w->K, r0 = w->lo * (size_t)w->K, nr = w->nloc * (size_t)w->K;
    if (!rc) rc = h5_write_rows(&f, "/explain/items", H5_I64, gr, 4, r0, nr, w->irow);
    if (!rc) rc = h5_attr_str(&f, "/explain/items", "columns", "user, item, rank, template (-1: none qualified, or no explanation; -2: free-form)");
    if (!rc) rc = h5_write_rows(&f, "/explain/evidence/kind", H5_I8, gr, W, r0, nr, w->pk);
    if (!rc) rc = h5_write_rows(&f, "/explain/evidence/id", H5_I32, gr, W, r0, nr, w->pid);
    if (!rc) rc = h5_write_rows(&f, "/explain/evidence/weight", H5_F32, gr, W, r0, nr, w->pw);
    if (!rc) rc = h5_write_rows(&f, "/explain/evidence/count", H5_I32, gr, W, r0, nr, w->pcnt);
    if (!rc) rc = h5_attr_str(&f, "/explain/evidence", "kinds", "0 user, 1 item, 2 attribute, 3 modality, -1 unused");
    if (!rc) rc = h5_write_rows(&f, "/explain/user_evidence/kind", H5_I8, w->nsel, W, w->lo, w->nloc, w->uk);
    if (!rc) rc = h5_write_rows(&f, "/explain/user_evidence/id", H5_I32, w->nsel, W, w->lo, w->nloc, w->uid);
    if (!rc) rc = h5_write_rows(&f, "/explain/user_evidence/weight", H5_F32, w->nsel, W, w->lo, w->nloc, w->uw);
    if (!rc) rc = h5_write_rows(&f, "/explain/user_evidence/count", H5_I32, w->nsel, W, w->lo, w->nloc, w->ucnt);
    if (!rc) rc = h5_attr_str(&f, "/explain/user_evidence", "kinds", "0 user, 1 item, 2 attribute, 3 modality, -1 unused; one row per explained user, in /explain/items' order of users");
    if (!rc) rc = h5_attr_f64s(&f, "/explain", "mean", w->mean, XC_NCOLS);
    if (!rc) rc = h5_attr_f64(&f, "/explain", "fcr_corpus", w->fcr);
    if (!rc) {
        /* rationales per template, then none, then free-form; the items beyond the template caps */
        size_t nt = (size_t)w->p.tpl.n + 2;
        double *tc = malloc(nt * sizeof *tc);
        if (!tc) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t k = 0; tc && k < nt; k++) tc[k] = (double)w->tcount[k];
        if (!rc) rc = h5_attr_f64s(&f, "/explain", "template_counts", tc, nt);
        free(tc);
        if (!rc) rc = h5_attr_i64(&f, "/explain", "template_over_cap", w->over);
        if (!rc) rc = h5_attr_str(&f, "/explain", "rationale", w->free_form ? "free" : "template");
    }
    if (!rc) rc = h5_attr_f64(&f, "/explain", "p_drop_vs_random", w->pd);
    if (!rc) rc = h5_attr_f64(&f, "/explain", "p_rank_drop_vs_random", w->prd);
    if (!rc) rc = h5_attr_i64(&f, "/explain", "users", (int64_t)w->nexp);
    if (!rc) rc = h5_attr_i64(&f, "/explain", "top_k", w->K);
    if (!rc) rc = h5_attr_i64(&f, "/explain", "evidence_tokens", w->p.E);
    if (!rc) rc = h5_attr_i64(&f, "/explain", "user_evidence_tokens", w->p.Eu);
    if (!rc) rc = h5_attr_i64(&f, "/explain", "item_head", w->p.ev_head);
    if (!rc) rc = h5_attr_f64(&f, "/explain", "seconds_per_user", w->nloc ? w->secs / (double)w->nloc : NAN);
    if (!rc && w->nrk) {
        double buf[64];
        dm_buf names = {0};
        for (int k = 0; k < w->nrk; k++) {
            for (int j = 0; j < 4; j++) buf[k * 4 + j] = w->rk[k][j];
            dm_buf_printf(&names, "%s%s", k ? ", " : "", w->rkname[k]);
        }
        rc = h5_write_all(&f, "/explain/ranking_cost", H5_F64, (size_t)w->nrk, 4, buf);
        if (!rc) rc = h5_attr_str(&f, "/explain/ranking_cost", "columns", "llm ndcg@10, llm_explain ndcg@10, paired Wilcoxon p (two-sided), users");
        if (!rc) rc = h5_attr_str(&f, "/explain/ranking_cost", "protocols", names.data);
        dm_buf_free(&names);
    }
    rc = stage_output_finish(w->sr, &f, rc);
    if (!rc) dm_log("  explain: the explanations went to %s", w->to_stdout ? "stdout" : w->jpath);
    return rc;
}

static void explain_ws_free(explain_ws *w)
{
    pm_free(&w->p);
    if (w->have_src) explain_src_free(&w->src);
    if (w->have_d) dm_dataset_free(&w->d);
    for (int k = 0; w->rat && k < w->K; k++) explain_rationale_free(&w->rat[k]);
    if (w->have_fr) explain_free_free(&w->fr);
    dm_buf_free(&w->js);
    void *own[] = {w->lmdir, w->wts, w->zb, w->ht, w->zmod, w->zpres, w->sel, w->urow, w->pk, w->pid, w->pcnt, w->pw, w->irow,
                   w->uk, w->uid, w->ucnt, w->uw,
                   w->seen, w->gj, w->gcnt, w->tmp, w->hist, w->cand, w->ctop, w->rep, w->order, w->evi, w->drop, w->mpos,
                   w->tidx, w->sc, w->sm, w->sw, w->wo, w->srand, w->sr1, w->y, w->bs, w->mark, w->lowered, w->foff, w->feat,
                   w->fitem, w->fit, w->tsc, w->tch, w->prk, w->tcount, w->rat};
    for (size_t k = 0; k < sizeof own / sizeof *own; k++) free(own[k]);
    memset(w, 0, sizeof *w);
}

/* The stage body, as a table of contents: load, select the users, explain this rank's share,
 * gather, write explain.jsonl, summarise, the ranking cost, write explain.h5. */
static int explain_body(stage_run *sr)
{
    explain_ws w = {.sr = sr, .ctx = sr->ctx, .cfg = sr->cfg};
    int rc = explain_settings(&w);
    if (!rc) rc = explain_load(&w);
    if (!rc) rc = explain_select_users(&w);
    if (!rc) {
        rc = explain_users(&w);
        if (!rc) rc = explain_gather(&w);
        if (!rc) rc = explain_write_jsonl(&w);
        if (!rc) rc = explain_summary(&w);
        if (!rc) rc = explain_ranking_cost(&w);
        rc = explain_write_h5(&w, rc);
    }
    explain_ws_free(&w);
    return par_agree(sr->ctx, rc);
}

static int stage_explain(stage_run *sr)
{
    const dm_cfg *cfg = sr->cfg;
    /* explanations printed to stdout: the log stays out of the JSON lines */
    int quiet = !strcmp(dm_cfg_str(cfg, "explain.output"), "-"), root = dm_log_is_root(), v = dm_log_verbosity();
    if (quiet) dm_log_init(0, v);
    int rc = explain_body(sr);
    if (quiet) dm_log_init(root, v);
    return rc;
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_explain_def = {
    .name = "explain",
    .output = "explain.h5",
    .inputs = {"dataset.h5", "align.h5", "lm.h5", "prompt.h5", NULL},
    .groups = explain_config_groups,
    .run = stage_explain,
    .summary = "explain the LLM recommender's top-K items with evidence and rationales; deletion faithfulness, evidence precision, FMR/FCR/DIV",
    .usage = USAGE,
};
