/* cmd_explain.c: `dynmm explain`: evidence-grounded explanations of the LLM recommender's top-K
 * items (DESIGN.md idea 3) and their metrics.
 *
 * For each explained user u (explain.user_ids, or a seeded sample of explain.users users with a
 * test target): the aligner's top explain.candidates items outside u's history are re-ranked by the
 * llm_explain model of prompt.h5 (each candidate scored with its own evidence tokens); for each of
 * the top explain.top_k items i:
 *   - the evidence of (u, i) (neighbour users who took i, u's items closest to i, i's attributes
 *     weighted by attention from h_u; src/explain/explain.h);
 *   - the rationale written by the frozen LM after the prompt and i's continuation, from the
 *     templates of explain.templates, every slot filled from that evidence only;
 *   - deletion faithfulness: the score and rank of i when its evidence tokens are masked (the
 *     encoder's empty set), against masking as many random prompt tokens (explain.random_masks
 *     draws);
 *   - evidence precision: the share of neighbours, items and attributes whose removal from the
 *     evidence lowers i's score (by more than explain.precision_tol);
 * and per user the feature-level text metrics of the K rationales (FMR, FCR, DIV).
 *
 * Outputs (written to temporary names, renamed when complete):
 *   explain.jsonl   one line per (user, rank): item, title, score, masked score, rationale, the
 *                   evidence behind it (ids, titles, names, weights) and which elements it cites
 *                   (explain.output: another path, or "-" to print to stdout)
 *   explain.h5      format "dynmm-explain" v1: /explain/users (n_users, 12) per-user metrics, NaN
 *                   for users not explained (columns in the attribute); /explain/items (rows, 4):
 *                   user, item, rank, template of every explanation, and /explain/evidence/{kind,id,
 *                   weight,count} (rows, width) the evidence stored with it (explain_evidence_pack),
 *                   so each explanation can be verified; summary attributes on /explain: means,
 *                   corpus FCR, paired Wilcoxon tests of the deletion drops against the random
 *                   control, and the ranking metrics of llm and llm_explain from prompt.h5 on the
 *                   same users with their paired test (the ranking cost of explanations).
 */
#include "align_inputs.h"
#include "cands.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/sort.h"
#include "../src/core/str.h"
#include "../src/core/timer.h"
#include "../src/explain/explain.h"
#include "../src/explain/explain_metrics.h"
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

static const char *const explain_config_groups[] = {"explain", "prompt", "split.protocol", NULL};

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

static int json_evidence(dm_buf *b, const dm_dataset *d, const explain_evidence *ev)
{
    DM_CALL(dm_buf_adds(b, "["));
    for (int j = 0; j < ev->n; j++) {
        const explain_elem *e = &ev->el[j];
        size_t l;
        if (j) DM_CALL(dm_buf_adds(b, ", "));
        DM_CALL(dm_buf_printf(b, "{\"kind\": \"%s\", ", explain_kind_names[e->kind]));
        char tmp[4096];
        if (e->kind == EXPLAIN_USER) {
            const char *s = dm_strtab_get(&d->user_id, (size_t)e->id, &l);
            snprintf(tmp, sizeof tmp, "%.*s", (int)l, s);
            DM_CALL(dm_buf_adds(b, "\"id\": "));
            DM_CALL(dm_str_json(b, tmp));
        } else if (e->kind == EXPLAIN_ITEM) {
            const char *s = dm_strtab_get(&d->item_id, (size_t)e->id, &l);
            snprintf(tmp, sizeof tmp, "%.*s", (int)l, s);
            DM_CALL(dm_buf_adds(b, "\"id\": "));
            DM_CALL(dm_str_json(b, tmp));
            s = dm_strtab_get(&d->title, (size_t)e->id, &l);
            snprintf(tmp, sizeof tmp, "%.*s", (int)l, s);
            DM_CALL(dm_buf_adds(b, ", \"title\": "));
            DM_CALL(dm_str_json(b, tmp));
        } else if (e->kind == EXPLAIN_ATTR) {
            const char *s = dm_strtab_get(&d->attr_name, (size_t)e->id, &l);
            snprintf(tmp, sizeof tmp, "%.*s", (int)l, s);
            int k = d->attr_kind[e->id];
            DM_CALL(dm_buf_printf(b, "\"type\": \"%s\", \"name\": ", attr_kinds[k >= 0 && k < 4 ? k : 3]));
            DM_CALL(dm_str_json(b, tmp));
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

static int explain_body(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    const char *dpath = stage_input(sr, "dataset.h5"), *apath = stage_input(sr, "align.h5"), *ppath = stage_input(sr, "prompt.h5");
    char jpath[4096];
    const char *jo = dm_cfg_str(cfg, "explain.output");
    int to_stdout = !strcmp(jo, "-");
    if (jo[0] == '/' || to_stdout) snprintf(jpath, sizeof jpath, "%s", jo);
    else DM_CALL(cli_run_path(ctx, cfg, jo, jpath, sizeof jpath));
    /* the trained llm_explain model and its LM */
    char *lmdir = NULL;
    float *wts = NULL;
    size_t nw = 0;
    {
        h5file f;
        int rc = h5_open(ctx, ppath, &f);
        if (rc) {
            DM_HINT("run the prompt stage first (dynmm prompt, or add it to run.stages)");
            return par_agree(ctx, rc);
        }
        rc = h5_get_attr_str(&f, "/prompt", "lm_dir", &lmdir);
        if (!rc && !h5_exists(&f, "/prompt/llm_explain/weights")) {
            rc = DM_ERR(DM_ECONFIG, "%s has no llm_explain model", ppath);
            DM_HINT("add \"llm_explain\" to prompt.models and rerun the prompt stage");
        }
        size_t c;
        void *w = NULL;
        if (!rc) rc = h5_read_all(&f, "/prompt/llm_explain/weights", H5_F32, &w, &nw, &c);
        wts = w;
        h5_close(&f);
        if (par_agree(ctx, rc)) {
            free(lmdir);
            free(wts);
            return DM_EINPUT;
        }
    }
    dm_dataset d;
    int rc = ds_read(ctx, dpath, &d);
    if (rc) {
        free(lmdir);
        free(wts);
        return rc;
    }
    const int8_t *roles = NULL;
    rc = par_agree(ctx, cands_split(cfg, &d, &roles));
    size_t nu = d.n_users, ni = d.n_items, r, c, dz = 0;
    float *zb = NULL, *ht = NULL;
    if (!rc) rc = h5_read_file_f32(ctx, apath, "/align/z_base", &zb, &r, &dz);
    if (!rc) rc = h5_read_file_f32(ctx, apath, "/align/h_test", &ht, &r, &c);
    long long sd = dm_cfg_int(cfg, "explain.seed");
    uint64_t seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xE7A, 0);
    long long psd = dm_cfg_int(cfg, "prompt.seed");
    uint64_t pseed = psd >= 0 ? (uint64_t)psd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x9A0, 0);
    int K = (int)dm_cfg_int(cfg, "explain.top_k"), N = (int)dm_cfg_int(cfg, "explain.candidates");
    int R = (int)dm_cfg_int(cfg, "explain.random_masks");
    double tol = dm_cfg_float(cfg, "explain.precision_tol");
    if (!rc && N < K) rc = DM_ERR(DM_ECONFIG, "explain.candidates = %d is smaller than explain.top_k = %d", N, K);
    rc = par_agree(ctx, rc);
    explain_src src;
    memset(&src, 0, sizeof src);
    int have_src = 0;
    pm p;
    memset(&p, 0, sizeof p);
    float *zmod = NULL;
    uint8_t *zpres = NULL;
    if (!rc) {
        rc = par_agree(ctx, explain_src_init(&src, cfg, &d, roles, ht, zb, dz));
        have_src = !rc;
        /* the modality that agrees most with the user: per-modality latents of the aligner */
        if (!rc && src.modal) rc = ai_modal_latents(ctx, apath, ni, dz, &zmod, &zpres);
        if (!rc && src.modal) {
            src.n_modal = ALIGN_K;
            src.zm = zmod;
            src.present = zpres;
        }
    }
    int width = have_src ? explain_evidence_width(src.k_users, src.k_items, src.k_attrs) : 1;
    int maxc = N > width + 1 ? N : width + 1;
    if (!rc) rc = par_agree(ctx, pm_init(cfg, lmdir, &d, zb, dz, maxc + 1, pseed, &src, &p));
    if (!rc && nw != p.nparams) {
        rc = DM_ERR(DM_ECONFIG, "%s holds %zu llm_explain parameters but this configuration makes %zu", ppath, nw, p.nparams);
        DM_HINT("rerun the prompt stage with this configuration (the prompt.* and explain.* sizes must match)");
    }
    rc = par_agree(ctx, rc);
    if (!rc) memcpy(p.w, wts, nw * sizeof *wts);
    /* ---- the users ---- */
    size_t nsel = 0;
    int32_t *sel = malloc((nu + 1) * sizeof *sel);
    if (!rc && !sel) rc = DM_ERR(DM_ENOMEM, "out of memory");
    size_t nid = dm_cfg_len(cfg, "explain.user_ids");
    if (!rc && nid) {
        dm_strmap m = {0};
        for (size_t u = 0; !rc && u < nu; u++) {
            size_t l;
            const char *s = dm_strtab_get(&d.user_id, u, &l);
            int64_t id;
            int added;
            rc = dm_strmap_intern(&m, s, l, &id, &added);
        }
        for (size_t k = 0; !rc && k < nid; k++) {
            const char *s = dm_cfg_str_at(cfg, "explain.user_ids", k);
            int64_t u = dm_strmap_find(&m, s, strlen(s));
            if (u < 0) rc = DM_ERR(DM_ECONFIG, "explain.user_ids: user '%s' is not in the dataset %s", s, dpath);
            else sel[nsel++] = (int32_t)u;
        }
        dm_strmap_free(&m);
        if (!rc) {
            qsort(sel, nsel, sizeof *sel, dm_cmp_i32);
            size_t q = 0;
            for (size_t k = 0; k < nsel; k++)
                if (!q || sel[k] != sel[q - 1]) sel[q++] = sel[k];
            nsel = q;
        }
    } else if (!rc) {
        size_t want = (size_t)dm_cfg_int(cfg, "explain.users"), nt = 0;
        uint64_t *key = malloc((nu + 1) * sizeof *key);
        if (!key) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t u = 0; !rc && u < nu; u++) {
            int has = 0;
            for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++) has |= roles[j] == DM_TEST;
            if (has) key[nt++] = dm_rng_key(seed, 0x5E1, u);
        }
        uint64_t thr = UINT64_MAX;
        if (!rc && want < nt) {
            qsort(key, nt, sizeof *key, dm_cmp_u64);
            thr = key[want - 1];
        }
        for (size_t u = 0; !rc && u < nu; u++) {
            int has = 0;
            for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++) has |= roles[j] == DM_TEST;
            if (has && dm_rng_key(seed, 0x5E1, u) <= thr) sel[nsel++] = (int32_t)u;
        }
        free(key);
    }
    rc = par_agree(ctx, rc);
    if (rc) goto early;
    {
        size_t lo, hi;
        dm_shard_even(nsel, ctx->size, ctx->rank, &lo, &hi);
        size_t nloc = hi - lo, V = explain_vocab_size(&d, EXPLAIN_FEAT_ALL);
        dm_log("  explain: %zu users (%s), top %d of the aligner's top %d re-ranked by llm_explain (E=%d evidence tokens); "
               "evidence: %d neighbours, %d items, %d attributes; %zu attribute features",
               nsel, nid ? "explain.user_ids" : "a sample of users with a test item", K, N, p.E, src.k_users, src.k_items,
               src.k_attrs, V);
        const int C = p.C, E = p.E;
        double *urow = malloc((nu + 1) * XC_NCOLS * sizeof *urow);
        int8_t *pk = malloc((nloc * (size_t)K + 1) * (size_t)width);
        int32_t *pid = malloc((nloc * (size_t)K + 1) * (size_t)width * sizeof *pid), *pcnt = malloc((nloc * (size_t)K + 1) * (size_t)width * sizeof *pcnt);
        float *pw = malloc((nloc * (size_t)K + 1) * (size_t)width * sizeof *pw);
        int64_t *irow = malloc((nloc * (size_t)K + 1) * 4 * sizeof *irow);
        int32_t *tmp = malloc((d.n_inter + 1) * sizeof *tmp), *hist = malloc((size_t)(p.nh + 1) * sizeof *hist);
        int32_t *cand = malloc((size_t)(maxc + 2) * sizeof *cand), *ctop = malloc((size_t)(maxc + 2) * sizeof *ctop),
                *rep = malloc((size_t)(width + 2) * sizeof *rep);
        int *order = malloc((size_t)(maxc + 2) * sizeof *order), *evi = malloc((size_t)(maxc + 2) * sizeof *evi),
            *drop = malloc((size_t)(maxc + 2) * sizeof *drop), *mpos = malloc((size_t)(E + 1) * sizeof *mpos),
            *tidx = malloc((size_t)(width + 1) * sizeof *tidx);
        double *sc = malloc((size_t)(maxc + 2) * sizeof *sc), *sm = malloc((size_t)(maxc + 2) * sizeof *sm),
               *sw = malloc((size_t)(maxc + 2) * sizeof *sw), *wo = malloc((size_t)(width + 1) * sizeof *wo),
               *srand = malloc(((size_t)R * (size_t)K + 1) * sizeof *srand), *sr1 = malloc(((size_t)R + 1) * sizeof *sr1);
        float *y = malloc((size_t)(maxc + 2) * (size_t)E * (size_t)C * sizeof *y), *bs = malloc(ni * sizeof *bs + 4);
        uint8_t *mark = calloc(ni + 1, 1), *seen = calloc(d.n_attr + 1, 1), *lowered = malloc((size_t)width + 1);
        int64_t *foff = malloc(((size_t)K + 1) * sizeof *foff);
        int32_t *feat = malloc(((size_t)K * 64 + 1) * sizeof *feat), *fitem = malloc(((size_t)K + 1) * sizeof *fitem);
        explain_rationale rat;
        explain_rationale_init(&rat);
        dm_buf js = {0}, one = {0};
        if (!urow || !pk || !pid || !pcnt || !pw || !irow || !tmp || !hist || !cand || !ctop || !rep || !order || !evi || !drop || !mpos ||
            !tidx || !sc || !sm || !sw || !wo || !srand || !sr1 || !y || !bs || !mark || !seen || !lowered || !foff || !feat || !fitem)
            rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t k = 0; urow && k < nu * XC_NCOLS; k++) urow[k] = NAN;
        for (size_t k = 0; pk && k < nloc * (size_t)K * (size_t)width; k++) {
            pk[k] = -1;
            pid[k] = -1;
            pw[k] = 0;
            pcnt[k] = 0;
        }
        for (size_t k = 0; irow && k < nloc * (size_t)K * 4; k++) irow[k] = -1;
        ev_split s = {&d, roles, DM_TEST};
        double tl = dm_wtime();
        for (size_t q = lo; q < hi && !rc; q++) {
            int32_t u = sel[q];
            double *row = urow + (size_t)u * XC_NCOLS;
            int n = 0;
            size_t nhall = ev_history(&s, (size_t)u, tmp);
            {
                size_t m = nhall < (size_t)p.nh ? nhall : (size_t)p.nh;
                memcpy(hist, tmp + (nhall - m), m * sizeof *hist);
                n = (int)m;
            }
            int32_t tg[64];
            int ntg = 0;
            for (int64_t j = d.user_off[u]; j < d.user_off[u + 1] && ntg < 64; j++)
                if (roles[j] == DM_TEST) tg[ntg++] = d.item[j];
            pm_set_user(&p, u, tmp, (int)nhall);
            const float *hu = ht + (size_t)u * dz;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)ni, (int)dz, 1.0f, zb, (int)dz, hu, 1, 0.0f, bs, 1);
            for (size_t k = 0; k < nhall; k++) mark[tmp[k]] = 1;
            int nc = dm_top_k_f32(bs, ni, mark, N, cand);
            for (size_t k = 0; k < nhall; k++) mark[tmp[k]] = 0;
            if (nc == 0) continue;
            rc = pm_score_user(&p, hu, hist, n, cand, nc, p.L, sc);
            if (rc) break;
            int P = p.cache.len;
            for (int k = 0; k < nc; k++) order[k] = k;
            /* best first; ties by candidate order (the aligner's) */
            for (int a = 1; a < nc; a++)
                for (int b = a; b > 0 && sc[order[b]] > sc[order[b - 1]]; b--) {
                    int t = order[b];
                    order[b] = order[b - 1];
                    order[b - 1] = t;
                }
            int Ku = nc < K ? nc : K;
            for (int k = 0; k < Ku; k++) {
                ctop[k] = cand[order[k]];
                evi[k] = order[k];
                drop[k] = -2;
            }
            /* masked evidence of every explained item, in one batch */
            rc = pm_encode(&p, evi, drop, Ku, y);
            if (!rc) rc = pm_score_cached(&p, ctop, Ku, y, sm);
            double prec_sum = 0, hit = 0;
            int prec_n = 0, tested = 0;
            foff[0] = 0;
            for (int k = 0; k < Ku && !rc; k++) {
                int t = order[k];
                const explain_evidence *ev = &p.ev[t];
                /* evidence precision: each neighbour, item and attribute removed in turn */
                int nt = 0;
                evi[0] = t;
                drop[0] = -1;
                for (int j = 0; j < ev->n; j++)
                    if (ev->el[j].kind != EXPLAIN_MODAL) {
                        tidx[nt] = j;
                        evi[1 + nt] = t;
                        drop[1 + nt] = j;
                        nt++;
                    }
                for (int j = 0; j <= nt; j++) sw[j] = 0;
                for (int j = 0; j <= nt; j++) rep[j] = cand[t];
                rc = pm_encode(&p, evi, drop, nt + 1, y);
                if (!rc) rc = pm_score_cached(&p, rep, nt + 1, y, sw);
                if (rc) break;
                for (int j = 0; j < ev->n; j++) wo[j] = NAN;
                for (int j = 0; j < nt; j++) wo[tidx[j]] = sw[1 + j];
                prec_ctx pc = {&sw[0], wo};
                double pr = NAN;
                int ntest = 0;
                rc = explain_evidence_precision(ev, tidx, nt, prec_score, &pc, tol, lowered, &pr, &ntest);
                if (!rc && !isnan(pr)) {
                    prec_sum += pr;
                    prec_n++;
                }
                tested += ntest;
                /* the rationale after the prompt and the item's continuation with its evidence */
                evi[0] = t;
                drop[0] = -1;
                if (!rc) rc = pm_encode(&p, evi, drop, 1, y);
                if (!rc) rc = pm_append_candidate(&p, cand[t], y);
                if (!rc) rc = explain_rationale_make(&p.tpl, &d, ev, &p.lm, &p.cache, &rat);
                if (!rc) rc = gpt2_cache_truncate(&p.cache, P);
                if (rc) break;
                const char *text = rat.tpl >= 0 && rat.text.data ? rat.text.data : "";
                int nf = 0;
                rc = explain_text_features(&d, EXPLAIN_FEAT_ALL, text, feat + foff[k], 64, &nf);
                if (nf > 64) nf = 64;
                foff[k + 1] = foff[k] + nf;
                fitem[k] = cand[t];
                int is_hit = 0;
                for (int j = 0; j < ntg; j++) is_hit |= tg[j] == cand[t];
                hit += is_hit;
                /* stored evidence */
                size_t er = (q - lo) * (size_t)K + (size_t)k;
                explain_evidence_pack(ev, width, pk + er * (size_t)width, pid + er * (size_t)width, pw + er * (size_t)width,
                                      pcnt + er * (size_t)width);
                irow[er * 4] = u;
                irow[er * 4 + 1] = cand[t];
                irow[er * 4 + 2] = k + 1;
                irow[er * 4 + 3] = rat.tpl;
                /* the JSON line */
                size_t l;
                char tb[4096];
                const char *sid = dm_strtab_get(&d.user_id, (size_t)u, &l);
                snprintf(tb, sizeof tb, "%.*s", (int)l, sid);
                dm_buf_reset(&one);
                rc = dm_buf_adds(&one, "{\"user\": ");
                if (!rc) rc = dm_str_json(&one, tb);
                sid = dm_strtab_get(&d.item_id, (size_t)cand[t], &l);
                snprintf(tb, sizeof tb, "%.*s", (int)l, sid);
                if (!rc) rc = dm_buf_printf(&one, ", \"rank\": %d, \"item\": ", k + 1);
                if (!rc) rc = dm_str_json(&one, tb);
                sid = dm_strtab_get(&d.title, (size_t)cand[t], &l);
                snprintf(tb, sizeof tb, "%.*s", (int)l, sid);
                if (!rc) rc = dm_buf_adds(&one, ", \"title\": ");
                if (!rc) rc = dm_str_json(&one, tb);
                if (!rc)
                    rc = dm_buf_printf(&one, ", \"score\": %.6g, \"score_evidence_masked\": %.6g, \"test_item\": %s, \"rationale\": ", sc[t],
                                       sm[k], is_hit ? "true" : "false");
                if (!rc) rc = dm_str_json(&one, text);
                if (!rc) rc = dm_buf_printf(&one, ", \"template\": %d, \"cites\": [", rat.tpl);
                for (int j = 0; j < rat.n_cite && !rc; j++) rc = dm_buf_printf(&one, "%s%d", j ? ", " : "", rat.cite[j]);
                if (!rc && isnan(pr)) rc = dm_buf_adds(&one, "], \"evidence_precision\": null, \"evidence\": ");
                else if (!rc) rc = dm_buf_printf(&one, "], \"evidence_precision\": %.4g, \"evidence\": ", pr);
                if (!rc) rc = json_evidence(&one, &d, ev);
                if (!rc) rc = dm_buf_adds(&one, "}\n");
                if (!rc) rc = dm_buf_add(&js, one.data, one.len);
                /* the first users of rank 0 as examples in the log */
                if (q - lo < 2 && k < 3) {
                    size_t lt;
                    const char *ti = dm_strtab_get(&d.title, (size_t)cand[t], &lt);
                    if (k == 0) {
                        const char *un = dm_strtab_get(&d.user_id, (size_t)u, &l);
                        dm_log("  user %.*s, top %d of %d candidates:", (int)l, un, Ku, nc);
                    }
                    dm_log("    %d. %.*s%s (score %.3f, evidence masked %.3f)", k + 1, (int)(lt > 60 ? 60 : lt), ti, lt > 60 ? "..." : "",
                           sc[t], sm[k]);
                    dm_log("       \"%s\"", text);
                }
            }
            if (rc) break;
            /* deletion control: as many random prompt tokens masked, the explained items rescored */
            for (int rr = 0; rr < R && !rc; rr++) {
                int cnt = E < P ? E : P, P2;
                explain_random_positions(seed, (uint64_t)u, (uint64_t)rr, P, cnt, mpos);
                rc = pm_prompt(&p, hu, hist, n, p.L, mpos, cnt, &P2);
                for (int k = 0; k < Ku; k++) {
                    evi[k] = order[k];
                    drop[k] = -1;
                }
                if (!rc) rc = pm_encode(&p, evi, drop, Ku, y);
                if (!rc) rc = pm_score_cached(&p, ctop, Ku, y, srand + (size_t)rr * Ku);
            }
            if (rc) break;
            double acc[6] = {0, 0, 0, 0, 0, 0};
            for (int k = 0; k < Ku; k++) {
                for (int rr = 0; rr < R; rr++) sr1[rr] = srand[(size_t)rr * Ku + k];
                explain_deletion del;
                explain_deletion_eval(sc, nc, order[k], sm[k], sr1, R, &del);
                acc[0] += del.drop;
                acc[1] += del.drop_random;
                acc[2] += del.rank_drop;
                acc[3] += del.rank_drop_random;
                acc[4] += del.s_full;
                acc[5] += del.s_masked;
            }
            explain_text_user tu;
            rc = explain_text_user_metrics(&d, Ku, foff, feat, fitem, V, seen, &tu);
            if (rc) break;
            row[XC_FMR] = tu.fmr;
            row[XC_FCR] = tu.fcr;
            row[XC_DIV] = tu.div;
            row[XC_PRECISION] = prec_n ? prec_sum / prec_n : NAN;
            row[XC_DROP] = acc[0] / Ku;
            row[XC_DROP_RANDOM] = R ? acc[1] / Ku : NAN;
            row[XC_RANK_DROP] = acc[2] / Ku;
            row[XC_RANK_DROP_RANDOM] = R ? acc[3] / Ku : NAN;
            row[XC_SCORE] = acc[4] / Ku;
            row[XC_SCORE_MASKED] = acc[5] / Ku;
            row[XC_HIT] = hit > 0 ? 1.0 : 0.0;
            row[XC_TESTED] = (double)tested / Ku;
            if ((q - lo + 1) % 50 == 0)
                dm_log("  explained %zu of %zu users on rank 0 (%.1fs)", q - lo + 1, nloc, dm_wtime() - tl);
        }
        rc = par_agree(ctx, rc);
        double secs = dm_wtime() - tl;
        /* ---- gather: per-user rows (each user on one rank), coverage marks, JSON lines ---- */
        double *all = NULL;
        if (!rc) {
            /* rows are NaN except on the owning rank: max ignores NaN when we map NaN -> -inf */
            for (size_t k = 0; k < nu * XC_NCOLS; k++)
                if (isnan(urow[k])) urow[k] = -INFINITY;
            rc = par_allreduce_max_f64(ctx, urow, nu * XC_NCOLS);
            for (size_t k = 0; k < nu * XC_NCOLS; k++)
                if (urow[k] == -INFINITY) urow[k] = NAN;
            all = urow;
        }
        if (!rc) {
            int64_t *sm64 = malloc((d.n_attr + 1) * sizeof *sm64);
            if (!sm64) rc = DM_ERR(DM_ENOMEM, "out of memory");
            for (size_t k = 0; !rc && k < d.n_attr; k++) sm64[k] = seen[k];
            if (!rc) rc = par_allreduce_max_i64(ctx, sm64, d.n_attr);
            for (size_t k = 0; !rc && k < d.n_attr; k++) seen[k] = (uint8_t)sm64[k];
            free(sm64);
        }
        void *gj = NULL;
        size_t *gcnt = NULL;
        if (!rc) rc = par_gatherv(ctx, js.data ? js.data : "", js.len, 0, &gj, &gcnt);
        rc = par_agree(ctx, rc);
        if (!rc && ctx->rank == 0) {
            size_t tot = 0;
            for (int k = 0; k < ctx->size; k++) tot += gcnt[k];
            if (to_stdout) {
                fwrite(gj, 1, tot, stdout);
                fflush(stdout);
            } else {
                char tmpn[4200];
                snprintf(tmpn, sizeof tmpn, "%s.tmp.%ld", jpath, (long)getpid());
                FILE *fp = fopen(tmpn, "wb");
                if (!fp) rc = DM_ERR(DM_EIO, "%s: cannot write the explanations", tmpn);
                if (fp && fwrite(gj, 1, tot, fp) != tot) rc = DM_ERR(DM_EIO, "%s: short write", tmpn);
                if (fp && fclose(fp) != 0 && !rc) rc = DM_ERR(DM_EIO, "%s: cannot close", tmpn);
                if (!rc && rename(tmpn, jpath) != 0) rc = DM_ERR(DM_EIO, "cannot rename %s to %s", tmpn, jpath);
                if (rc) remove(tmpn);
            }
        }
        free(gj);
        free(gcnt);
        rc = par_agree(ctx, rc);
        /* ---- summary: means, corpus FCR, paired tests, the ranking cost from prompt.h5 ---- */
        double mean[XC_NCOLS];
        size_t nexp = 0;
        for (int k = 0; k < XC_NCOLS; k++) {
            double sum = 0;
            size_t m = 0;
            for (size_t u = 0; all && u < nu; u++) {
                double v = all[u * XC_NCOLS + k];
                if (!isnan(v)) {
                    sum += v;
                    m++;
                }
            }
            mean[k] = m ? sum / (double)m : NAN;
            if (k == XC_SCORE) nexp = m;
        }
        double fcr = explain_fcr(seen, d.n_attr, V);
        double *ca = malloc((nu + 1) * sizeof *ca), *cb = malloc((nu + 1) * sizeof *cb);
        double pd = NAN, prd = NAN, m1, m2;
        size_t np = 0;
        if (!rc && ca && cb && all) {
            for (size_t u = 0; u < nu; u++) {
                ca[u] = all[u * XC_NCOLS + XC_DROP];
                cb[u] = all[u * XC_NCOLS + XC_DROP_RANDOM];
            }
            paired(ca, cb, nu, STATS_GREATER, &m1, &m2, &pd, &np);
            for (size_t u = 0; u < nu; u++) {
                ca[u] = all[u * XC_NCOLS + XC_RANK_DROP];
                cb[u] = all[u * XC_NCOLS + XC_RANK_DROP_RANDOM];
            }
            paired(ca, cb, nu, STATS_GREATER, &m1, &m2, &prd, &np);
        }
        if (!rc) {
            dm_log("  %zu users explained in %.1fs (%.3fs per user and rank)", nexp, secs, nloc ? secs / (double)nloc : 0.0);
            dm_log("  deletion: masking the evidence tokens lowers the explained items' score by %.4f and their rank by %.2f;",
                   mean[XC_DROP], mean[XC_RANK_DROP]);
            dm_log("            masking %d random prompt tokens instead: by %.4f and %.2f (paired Wilcoxon, greater: p = %.3g and %.3g, %zu users)",
                   E, mean[XC_DROP_RANDOM], mean[XC_RANK_DROP_RANDOM], pd, prd, np);
            dm_log("  evidence precision %.3f (%.1f elements tested per item); FMR %.3f, FCR %.3f (corpus %.3f), DIV %.3f; test item in the top %d: %.3f",
                   mean[XC_PRECISION], mean[XC_TESTED], mean[XC_FMR], mean[XC_FCR], fcr, mean[XC_DIV], K, mean[XC_HIT]);
        }
        /* the ranking cost of explanations: llm vs llm_explain of prompt.h5, same users */
        double rk[16][4];
        char rkname[16][64];
        int nrk = 0;
        if (!rc) {
            h5file f;
            rc = par_agree(ctx, h5_open(ctx, ppath, &f));
            size_t npr = dm_cfg_len(cfg, "prompt.protocols");
            for (size_t pi = 0; !rc && pi < npr && nrk < 16; pi++) {
                const char *pn = dm_cfg_str_at(cfg, "prompt.protocols", pi);
                char a[256], b[256];
                snprintf(a, sizeof a, "/test/%s/llm", pn);
                snprintf(b, sizeof b, "/test/%s/llm_explain", pn);
                if (!h5_exists(&f, a) || !h5_exists(&f, b)) continue;
                void *ra = NULL, *rb = NULL;
                size_t rows, cols, cols2;
                rc = h5_read_all(&f, a, H5_F64, &ra, &rows, &cols);
                if (!rc) rc = h5_read_all(&f, b, H5_F64, &rb, &rows, &cols2);
                dm_strtab cn = {0};
                if (!rc) rc = h5_read_strtab(&f, "/columns", &cn);
                size_t col = (size_t)-1;
                for (size_t k = 0; !rc && k < cn.n; k++) {
                    size_t l;
                    const char *nmc = dm_strtab_get(&cn, k, &l);
                    if (l == 7 && !strncmp(nmc, "ndcg@10", 7)) col = k;
                }
                if (!rc && col != (size_t)-1 && ca && cb) {
                    for (size_t u = 0; u < rows; u++) {
                        ca[u] = ((double *)ra)[u * cols + col];
                        cb[u] = ((double *)rb)[u * cols + col];
                    }
                    size_t m;
                    paired(cb, ca, rows, STATS_TWO_SIDED, &rk[nrk][1], &rk[nrk][0], &rk[nrk][2], &m);
                    rk[nrk][3] = (double)m;
                    snprintf(rkname[nrk], sizeof rkname[nrk], "%s", pn);
                    dm_log("  ranking with and without the explanation losses (test %s, ndcg@10, %zu users): llm %.4f, llm_explain %.4f (paired Wilcoxon p = %.3g)",
                           pn, m, rk[nrk][0], rk[nrk][1], rk[nrk][2]);
                    nrk++;
                }
                dm_strtab_free(&cn);
                free(ra);
                free(rb);
            }
            h5_close(&f);
            rc = par_agree(ctx, rc);
        }
        free(ca);
        free(cb);
        /* ---- explain.h5 ---- */
        h5file f;
        memset(&f, 0, sizeof f);
        f.id = -1;
        if (!rc) rc = stage_output_create(sr, EXPLAIN_FORMAT, 1, &f);
        if (!rc) rc = h5_write_all(&f, "/explain/users", H5_F64, nu, XC_NCOLS, all);
        if (!rc) {
            char cols[1024] = "";
            for (int k = 0; k < XC_NCOLS; k++) {
                size_t l = strlen(cols);
                snprintf(cols + l, sizeof cols - l, "%s%s", k ? ", " : "", xc_names[k]);
            }
            rc = h5_attr_str(&f, "/explain/users", "columns", cols);
        }
        size_t gr = nsel * (size_t)K, r0 = lo * (size_t)K, nr = nloc * (size_t)K;
        if (!rc) rc = h5_write_rows(&f, "/explain/items", H5_I64, gr, 4, r0, nr, irow);
        if (!rc) rc = h5_attr_str(&f, "/explain/items", "columns", "user, item, rank, template (-1: none qualified, or no explanation)");
        if (!rc) rc = h5_write_rows(&f, "/explain/evidence/kind", H5_I8, gr, (size_t)width, r0, nr, pk);
        if (!rc) rc = h5_write_rows(&f, "/explain/evidence/id", H5_I32, gr, (size_t)width, r0, nr, pid);
        if (!rc) rc = h5_write_rows(&f, "/explain/evidence/weight", H5_F32, gr, (size_t)width, r0, nr, pw);
        if (!rc) rc = h5_write_rows(&f, "/explain/evidence/count", H5_I32, gr, (size_t)width, r0, nr, pcnt);
        if (!rc) rc = h5_attr_str(&f, "/explain/evidence", "kinds", "0 user, 1 item, 2 attribute, 3 modality, -1 unused");
        if (!rc) rc = h5_attr_f64s(&f, "/explain", "mean", mean, XC_NCOLS);
        if (!rc) rc = h5_attr_f64(&f, "/explain", "fcr_corpus", fcr);
        if (!rc) rc = h5_attr_f64(&f, "/explain", "p_drop_vs_random", pd);
        if (!rc) rc = h5_attr_f64(&f, "/explain", "p_rank_drop_vs_random", prd);
        if (!rc) rc = h5_attr_i64(&f, "/explain", "users", (int64_t)nexp);
        if (!rc) rc = h5_attr_i64(&f, "/explain", "top_k", K);
        if (!rc) rc = h5_attr_i64(&f, "/explain", "evidence_tokens", E);
        if (!rc) rc = h5_attr_f64(&f, "/explain", "seconds_per_user", nloc ? secs / (double)nloc : NAN);
        if (!rc && nrk) {
            double buf[64];
            dm_buf nm2 = {0};
            for (int k = 0; k < nrk; k++) {
                for (int j = 0; j < 4; j++) buf[k * 4 + j] = rk[k][j];
                dm_buf_printf(&nm2, "%s%s", k ? ", " : "", rkname[k]);
            }
            rc = h5_write_all(&f, "/explain/ranking_cost", H5_F64, (size_t)nrk, 4, buf);
            if (!rc) rc = h5_attr_str(&f, "/explain/ranking_cost", "columns", "llm ndcg@10, llm_explain ndcg@10, paired Wilcoxon p (two-sided), users");
            if (!rc) rc = h5_attr_str(&f, "/explain/ranking_cost", "protocols", nm2.data);
            dm_buf_free(&nm2);
        }
        rc = stage_output_finish(sr, &f, rc);
        if (!rc) dm_log("  explain: the explanations went to %s", to_stdout ? "stdout" : jpath);
        explain_rationale_free(&rat);
        dm_buf_free(&js);
        dm_buf_free(&one);
        free(urow);
        free(pk);
        free(pid);
        free(pcnt);
        free(pw);
        free(irow);
        free(tmp);
        free(hist);
        free(cand);
        free(ctop);
        free(rep);
        free(order);
        free(evi);
        free(drop);
        free(mpos);
        free(tidx);
        free(sc);
        free(sm);
        free(sw);
        free(wo);
        free(srand);
        free(sr1);
        free(y);
        free(bs);
        free(mark);
        free(seen);
        free(lowered);
        free(foff);
        free(feat);
        free(fitem);
    }
early:
    pm_free(&p);
    if (have_src) explain_src_free(&src);
    free(zmod);
    free(zpres);
    free(sel);
    free(lmdir);
    free(wts);
    free(zb);
    free(ht);
    dm_dataset_free(&d);
    return par_agree(ctx, rc);
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
    .uses = NULL,
    .check = NULL,
    .run = stage_explain,
    .prepare = NULL,
    .summary = "explain the LLM recommender's top-K items with evidence and rationales; deletion faithfulness, evidence precision, FMR/FCR/DIV",
    .usage = USAGE,
};
