/* align_inputs.c: see align_inputs.h. */
#include "align_inputs.h"

#include "align_io.h"
#include "../mpi/h5io.h"
#include "../mpi/linalg.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/timer.h"
#include "../src/data/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ai_names[AI_NMOD] = {"cf", "text", "visual", "audio"};

/* gathers row blocks (la_row_block layout) of a (m, k) float matrix onto every rank */
static int gather_rows(par_ctx *ctx, const float *local, size_t rows, size_t k, float *all)
{
    void *out = NULL;
    size_t *cnt = NULL;
    DM_CALL(par_allgatherv(ctx, local, rows * k * sizeof(float), &out, &cnt));
    size_t off = 0;
    for (int r = 0; r < ctx->size; r++) off += cnt[r];
    memcpy(all, out, off);
    free(out);
    free(cnt);
    return DM_OK;
}

#define AI_MAX_FIELDS 64

/* The fields of the TF-IDF documents (lsa.fields); with a dataset, says once which of its attributes
 * they leave out. */
static int text_fields(const dm_cfg *cfg, const dm_dataset *d, dm_tfidf_select *sel, char **attr_only)
{
    size_t nf = dm_cfg_len(cfg, "lsa.fields");
    char *names[AI_MAX_FIELDS];
    if (nf > AI_MAX_FIELDS) return DM_ERR(DM_EINPUT, "lsa.fields: at most %d fields, got %zu", AI_MAX_FIELDS, nf);
    for (size_t i = 0; i < nf; i++) names[i] = (char *)dm_cfg_str_at(cfg, "lsa.fields", i);
    int bad = dm_tfidf_fields(sel, names, nf, attr_only);
    if (bad >= 0) {
        char wh[256];
        return DM_ERR(DM_EINPUT, "%s: lsa.fields: unknown field '%s'; expected title, brand, category, price, attributes or attr:NAME",
                      dm_cfg_where(cfg, "lsa.fields", wh, sizeof wh), names[bad]);
    }
    sel->numeric_bins = (int)dm_cfg_int(cfg, "lsa.numeric_bins");
    if (!d) return DM_OK;
    size_t unused[4] = {0};
    for (size_t a = 0; a < d->n_attr; a++) {
        int k = d->attr_kind[a];
        int used = k == DM_ATTR_PRICE ? (sel->fields & DM_TF_PRICE) != 0
                 : k == DM_ATTR_OTHER ? (sel->fields & DM_TF_ATTRS) != 0
                 : k == DM_ATTR_BRAND ? (sel->fields & DM_TF_BRAND) != 0
                                      : (sel->fields & DM_TF_CATEGORY) != 0;
        unused[k] += !used;
    }
    static const char *const kn[4] = {"brand", "category", "price", "other"};
    for (int k = 0; k < 4; k++)
        if (unused[k]) dm_log("  text: %zu %s attribute%s of the items not used (lsa.fields)", unused[k], kn[k], unused[k] == 1 ? "" : "s");
    return DM_OK;
}

static int lsa_text(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, ai_inputs *in)
{
    double t0 = dm_wtime();
    size_t n = d->n_items, lo, hi;
    la_row_block(ctx, n, &lo, &hi);
    dm_tfidf_opts o = {dm_cfg_int(cfg, "lsa.min_df"), dm_cfg_float(cfg, "lsa.max_df"), (size_t)dm_cfg_int(cfg, "lsa.max_terms")};
    dm_tfidf_select sel;
    char *attr_only[AI_MAX_FIELDS];
    DM_CALL(text_fields(cfg, d, &sel, attr_only));
    dm_csr A;
    int rc = par_agree(ctx, dm_tfidf_sel(d, &o, &sel, lo, hi, &A));
    if (rc) return rc;
    int k = (int)dm_cfg_int(cfg, "lsa.dim");
    if ((size_t)k >= A.n_cols) k = (int)A.n_cols - 1;
    if ((size_t)k >= n) k = (int)n - 1;
    if (A.n_cols < 2 || n < 2) k = 0; /* (the casts above wrap for 0 columns) */
    if (k < 1) {
        dm_csr_free(&A);
        dm_warn("item text has too few terms for LSA (%zu terms); no text modality", A.n_cols);
        return DM_OK;
    }
    double *U = calloc((hi - lo + 1) * (size_t)k, sizeof *U), S[4096];
    float *Uf = calloc((hi - lo + 1) * (size_t)k, sizeof *Uf);
    in->x[AI_TEXT] = calloc(n * (size_t)k + 1, sizeof(float));
    in->present[AI_TEXT] = calloc(n + 1, 1);
    rc = (!U || !Uf || !in->x[AI_TEXT] || !in->present[AI_TEXT]) ? DM_ERR(DM_ENOMEM, "out of memory for LSA") : DM_OK;
    uint64_t seed = dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x15A, 0);
    if (!rc) rc = la_rsvd(ctx, &A, n, k, (int)dm_cfg_int(cfg, "lsa.oversample"), (int)dm_cfg_int(cfg, "lsa.power_iters"), seed,
                          dm_cfg_bool(cfg, "lsa.scale"), U, S);
    if (!rc) {
        for (size_t i = 0; i < (hi - lo) * (size_t)k; i++) Uf[i] = (float)U[i];
        rc = gather_rows(ctx, Uf, hi - lo, (size_t)k, in->x[AI_TEXT]);
    }
    if (!rc) {
        /* presence: items whose TF-IDF row is non-empty, gathered the same way */
        uint8_t *pl = calloc(hi - lo + 1, 1);
        for (size_t i = 0; pl && i < hi - lo; i++) pl[i] = A.row_off[i + 1] > A.row_off[i];
        void *out = NULL;
        size_t *cnt = NULL;
        rc = pl ? par_allgatherv(ctx, pl, hi - lo, &out, &cnt) : DM_ERR(DM_ENOMEM, "out of memory");
        if (!rc) memcpy(in->present[AI_TEXT], out, n);
        free(out);
        free(cnt);
        free(pl);
    }
    if (!rc) {
        in->dim[AI_TEXT] = (size_t)k;
        in->n_lsa_s = k < 64 ? k : 64;
        memcpy(in->lsa_s, S, (size_t)in->n_lsa_s * sizeof(double));
        size_t np = 0;
        for (size_t i = 0; i < n; i++) np += in->present[AI_TEXT][i];
        snprintf(in->source[AI_TEXT], sizeof in->source[AI_TEXT], "LSA rank %d of a %zu-term TF-IDF", k, A.n_cols);
        dm_log("  text: LSA rank %d of %zu items x %zu terms (randomised SVD on ScaLAPACK, %.1fs); sigma_1 %.3f, sigma_%d %.3f; "
               "%zu items have text",
               k, n, A.n_cols, dm_wtime() - t0, S[0], k, S[k - 1], np);
    }
    free(U);
    free(Uf);
    dm_csr_free(&A);
    return par_agree(ctx, rc);
}

static int pca_reduce(par_ctx *ctx, const dm_cfg *cfg, ai_inputs *in, int m)
{
    size_t n = in->n_items, D = in->dim[m], lo, hi;
    int k = (int)dm_cfg_int(cfg, "modal.pca_dim");
    if (k <= 0 || D <= (size_t)dm_cfg_int(cfg, "modal.pca_above") || (size_t)k >= D) return DM_OK;
    la_row_block(ctx, n, &lo, &hi);
    float *out = calloc((hi - lo + 1) * (size_t)k, sizeof *out), *all = calloc(n * (size_t)k + 1, sizeof *all);
    double *w = calloc((size_t)k, sizeof *w), *mean = calloc(D, sizeof *mean);
    int rc = (!out || !all || !w || !mean) ? DM_ERR(DM_ENOMEM, "out of memory for PCA") : DM_OK;
    rc = par_agree(ctx, rc);
    if (!rc) rc = la_pca(ctx, in->x[m] + lo * D, in->present[m] + lo, hi - lo, D, k, dm_cfg_bool(cfg, "modal.pca_whiten"), 1e-6,
                         (int)dm_cfg_int(cfg, "ease.block"), out, w, mean);
    if (!rc) rc = gather_rows(ctx, out, hi - lo, (size_t)k, all);
    if (!rc) {
        free(in->x[m]);
        in->x[m] = all;
        all = NULL;
        in->dim[m] = (size_t)k;
        size_t l = strlen(in->source[m]);
        snprintf(in->source[m] + l, sizeof in->source[m] - l, ", PCA %zu -> %d", D, k);
        dm_log("  %s: PCA %zu -> %d dimensions (pdsyevd), leading variance %.4g", ai_names[m], D, k, w[0]);
    }
    free(out);
    free(all);
    free(w);
    free(mean);
    return rc;
}

int ai_build(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const float *e_cf, size_t C,
             ai_inputs *in)
{
    memset(in, 0, sizeof *in);
    size_t n = d->n_items;
    in->n_items = n;
    dm_tfidf_select sel;
    char *attr_only[AI_MAX_FIELDS];
    DM_CALL(text_fields(cfg, NULL, &sel, attr_only)); /* lsa.fields checked whatever the text source */
    int rc = DM_OK;
    if (e_cf) {
        in->dim[AI_CF] = C;
        in->x[AI_CF] = malloc(n * C * sizeof(float) + 4);
        in->present[AI_CF] = calloc(n + 1, 1);
        if (!in->x[AI_CF] || !in->present[AI_CF]) rc = DM_ERR(DM_ENOMEM, "out of memory");
        else {
            memcpy(in->x[AI_CF], e_cf, n * C * sizeof(float));
            for (size_t j = 0; j < d->n_inter; j++)
                if (roles[j] == DM_TRAIN) in->present[AI_CF][d->item[j]] = 1;
            snprintf(in->source[AI_CF], sizeof in->source[AI_CF], "SASRec item embeddings (cf.h5)");
        }
    }
    for (int k = 0; k < d->n_modal && !rc; k++) {
        const dm_modal *md = &d->modal[k];
        int m = !strcmp(md->name, "text") ? AI_TEXT : !strcmp(md->name, "visual") ? AI_VISUAL : AI_AUDIO;
        in->dim[m] = md->dim;
        in->x[m] = malloc(n * md->dim * sizeof(float) + 4);
        in->present[m] = malloc(n + 1);
        if (!in->x[m] || !in->present[m]) {
            rc = DM_ERR(DM_ENOMEM, "out of memory");
            break;
        }
        memcpy(in->x[m], md->feat, n * md->dim * sizeof(float));
        memcpy(in->present[m], md->present, n);
        snprintf(in->source[m], sizeof in->source[m], "%s", md->source);
    }
    rc = par_agree(ctx, rc);
    if (!rc && !in->dim[AI_TEXT]) {
        size_t with = 0;
        for (size_t i = 0; i < n; i++) {
            size_t l1, l2, l3;
            dm_strtab_get(&d->title, i, &l1);
            dm_strtab_get(&d->brand, i, &l2);
            dm_strtab_get(&d->category, i, &l3);
            with += l1 + l2 + l3 > 0 || (d->item_attr_off && d->item_attr_off[i + 1] > d->item_attr_off[i]);
        }
        if (with) rc = lsa_text(ctx, cfg, d, in);
        else if (!ctx->rank) dm_log("  text: the items have no title, brand, category or attribute; no text modality");
    } else if (!rc && d->n_attr && !ctx->rank)
        dm_log("  text: features of %s; the items' %zu attributes are not used by the aligner (they serve explanations)",
               in->source[AI_TEXT], d->n_attr);
    for (int m = AI_TEXT; m < AI_NMOD && !rc; m++)
        if (in->dim[m] && strncmp(in->source[m], "LSA", 3)) rc = pca_reduce(ctx, cfg, in, m);
    return par_agree(ctx, rc);
}

void ai_free(ai_inputs *in)
{
    for (int m = 0; m < AI_NMOD; m++) {
        free(in->x[m]);
        free(in->present[m]);
    }
    memset(in, 0, sizeof *in);
}

int ai_read_stored(par_ctx *ctx, const char *path, const align_model *am, size_t n, float *x[ALIGN_K], uint8_t *present)
{
    for (int k = 0; k < ALIGN_K; k++) x[k] = NULL;
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    int rc = DM_OK;
    for (int k = 0; k < ALIGN_K && !rc; k++) {
        if (!am->cfg.dim_in[k]) continue;
        char nm[128];
        void *p = NULL;
        size_t r = 0, c = 0;
        snprintf(nm, sizeof nm, "/align/inputs/%s/x", align_modality_name(k));
        if (!h5_exists(&f, nm)) {
            rc = DM_ERR(DM_EFORMAT, "'%s' has no %s (the aligner's stored inputs)", path, nm);
            DM_HINT("rerun the align stage with this version of dynmm");
            break;
        }
        rc = h5_read_all(&f, nm, H5_F32, &p, &r, &c);
        x[k] = p;
        if (!rc && (r != n || c != (size_t)am->cfg.dim_in[k]))
            rc = DM_ERR(DM_EFORMAT, "'%s': %s is (%zu, %zu), expected (%zu, %d)", path, nm, r, c, n, am->cfg.dim_in[k]);
        snprintf(nm, sizeof nm, "/align/inputs/%s/present", align_modality_name(k));
        p = NULL;
        if (!rc) rc = h5_read_all(&f, nm, H5_U8, &p, &r, &c);
        if (!rc && r != n) rc = DM_ERR(DM_EFORMAT, "'%s': %s has %zu rows, expected %zu", path, nm, r, n);
        for (size_t i = 0; !rc && i < n; i++) present[i * ALIGN_K + (size_t)k] = ((uint8_t *)p)[i] ? 1 : 0;
        free(p);
    }
    h5_close(&f);
    rc = par_agree(ctx, rc);
    if (rc)
        for (int k = 0; k < ALIGN_K; k++) free(x[k]), x[k] = NULL;
    return rc;
}

/* The aligner of align.h5 (path), its latent width checked against d, and the stored inputs it was
 * trained on (ai_read_stored): x[k] (the caller's, all NULL) and *pr (n_items, ALIGN_K), malloc'd
 * for the caller. ok = 0 says the caller's own buffers could not be allocated: out of memory,
 * agreed with the checks. Agreed; on failure the aligner is freed and x and *pr are left NULL. */
static int load_stored(par_ctx *ctx, const char *path, size_t n_items, size_t d, int ok, align_model *am, align_acts *aa,
                       float *x[ALIGN_K], uint8_t **pr)
{
    *pr = NULL;
    int rc = align_load(ctx, path, 256, am, aa, NULL, NULL);
    if (!rc) {
        *pr = calloc(n_items * ALIGN_K + 1, 1);
        rc = ok && *pr ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
        if (!rc && (size_t)am->cfg.d != d) rc = DM_ERR(DM_EFORMAT, "'%s': latents of width %d, expected %zu", path, am->cfg.d, d);
        rc = par_agree(ctx, rc);
    }
    if (!rc) rc = ai_read_stored(ctx, path, am, n_items, x, *pr);
    if (rc) {
        free(*pr);
        *pr = NULL;
        align_acts_free(aa);
        align_free(am);
    }
    return rc;
}

int ai_modal_latents(par_ctx *ctx, const char *path, size_t n_items, size_t d, float **zm, uint8_t **present)
{
    align_model am;
    align_acts aa;
    *zm = NULL;
    *present = NULL;
    float *x[ALIGN_K] = {0};
    uint8_t *pr;
    float *zb = malloc((n_items * d + 1) * sizeof *zb), *z = calloc(n_items * ALIGN_K * d + 1, sizeof *z);
    int rc = load_stored(ctx, path, n_items, d, zb && z, &am, &aa, x, &pr);
    if (!rc) rc = par_agree(ctx, align_item_latents(&am, &aa, (const float *const *)x, NULL, pr, (int)n_items, zb, z));
    for (int k = 0; k < ALIGN_K; k++) free(x[k]);
    free(zb);
    align_acts_free(&aa);
    align_free(&am);
    if (rc) {
        free(pr);
        free(z);
        return rc;
    }
    *zm = z;
    *present = pr;
    return DM_OK;
}

int ai_latents_without(par_ctx *ctx, const char *path, const float *zs, size_t n_items, size_t d, unsigned drop, float **z,
                       size_t *changed)
{
    align_model am;
    align_acts aa;
    *z = NULL;
    *changed = 0;
    float *x[ALIGN_K] = {0};
    uint8_t *pr;
    int64_t *rows = malloc((n_items + 1) * sizeof *rows);
    float *zo = malloc((n_items * d + 1) * sizeof *zo), *zr = malloc((n_items * d + 1) * sizeof *zr);
    int rc = load_stored(ctx, path, n_items, d, rows && zo && zr, &am, &aa, x, &pr);
    /* the items that lose a modality: their flags cleared, their rows packed to the front */
    size_t nr = 0;
    for (size_t i = 0; !rc && i < n_items; i++) {
        uint8_t *q = pr + i * ALIGN_K;
        int hit = 0;
        for (int k = 0; k < ALIGN_K; k++) hit |= (drop & (1u << k)) && q[k];
        if (!hit) continue;
        uint8_t *o = pr + nr * ALIGN_K;
        for (int k = 0; k < ALIGN_K; k++) o[k] = (drop & (1u << k)) ? 0 : q[k];
        rows[nr++] = (int64_t)i;
    }
    if (!rc) memcpy(zo, zs, n_items * d * sizeof *zo);
    if (!rc && nr) rc = par_agree(ctx, align_item_latents(&am, &aa, (const float *const *)x, rows, pr, (int)nr, zr, NULL));
    for (size_t j = 0; !rc && j < nr; j++) memcpy(zo + (size_t)rows[j] * d, zr + j * d, d * sizeof *zo);
    for (int k = 0; k < ALIGN_K; k++) free(x[k]);
    free(pr);
    free(rows);
    free(zr);
    align_acts_free(&aa);
    align_free(&am);
    if (rc) {
        free(zo);
        return rc;
    }
    *z = zo;
    *changed = nr;
    return DM_OK;
}
