/* lm.c: model + tokenizer operations on text; see lm.h. */
#include "lm.h"

#include "../core/err.h"
#include "gpt2_ckpt.h"

#include <stdlib.h>
#include <string.h>

int lm_load(lm_model *lm, const char *dir)
{
    memset(lm, 0, sizeof *lm);
    DM_CALL(gpt2_load(&lm->model, dir));
    int rc = bpe_load_dir(&lm->tok, dir);
    if (rc == DM_OK && lm->tok.n_vocab > lm->model.cfg.vocab_size) {
        rc = DM_ERR(DM_EINPUT, "'%s': the tokenizer has %d tokens but the model's vocabulary is %d", dir, lm->tok.n_vocab,
                    lm->model.cfg.vocab_size);
        DM_HINT("vocab.json and merges.txt must belong to the checkpoint in the same directory");
    }
    if (rc) {
        dm_error_trace(__FILE__, __LINE__);
        lm_free(lm);
    }
    return rc;
}

int lm_set_precision(lm_model *lm, const char *precision)
{
    int p = gpt2_precision_parse(precision);
    if (p < 0) {
        DM_ERR(DM_ECONFIG, "lm.precision: unknown precision '%s'", precision);
        DM_HINT("lm.precision is \"f32\" or \"bf16\"");
        return DM_ECONFIG;
    }
    return gpt2_set_precision(&lm->model, p);
}

int lm_save(const lm_model *lm, const char *dir)
{
    DM_CALL(gpt2_save(&lm->model, dir));
    DM_CALL(bpe_save(&lm->tok, dir));
    return DM_OK;
}

void lm_free(lm_model *lm)
{
    gpt2_free(&lm->model);
    bpe_free(&lm->tok);
}

int lm_append_text(const lm_model *lm, gpt2_cache *c, const char *text)
{
    bpe_ids ids = {0};
    int rc = bpe_encode(&lm->tok, text, strlen(text), &ids);
    if (rc == DM_OK && ids.n) rc = gpt2_cache_append(c, ids.v, NULL, 0, (int)ids.n);
    bpe_ids_free(&ids);
    return rc;
}

/* tokens of n strings back to back, with offsets (n + 1) */
static int encode_all(const lm_model *lm, const char *const *s, int n, bpe_ids *ids, int64_t *off)
{
    off[0] = 0;
    for (int i = 0; i < n; i++) {
        DM_CALL(bpe_encode(&lm->tok, s[i], strlen(s[i]), ids));
        off[i + 1] = (int64_t)ids->n;
    }
    return DM_OK;
}

int lm_score_texts(const lm_model *lm, gpt2_cache *c, const char *const *cands, int n, double *ll)
{
    bpe_ids ids = {0};
    int64_t *off;
    DM_ALLOC(off, (size_t)n + 1);
    int rc = encode_all(lm, cands, n, &ids, off);
    if (rc == DM_OK) rc = gpt2_cache_score(c, ids.v, off, n, ll);
    bpe_ids_free(&ids);
    free(off);
    return rc;
}

int lm_generate_text(const lm_model *lm, gpt2_cache *c, int max_new, dm_buf *out)
{
    int *tok;
    DM_ALLOC(tok, max_new > 0 ? (size_t)max_new : 1);
    int n = 0;
    int rc = gpt2_generate_greedy(c, max_new, lm->tok.eot, tok, &n);
    if (rc == DM_OK) {
        if (n > 0 && tok[n - 1] == lm->tok.eot && lm->tok.eot >= 0) n--;
        rc = bpe_decode(&lm->tok, tok, (size_t)n, out);
    }
    free(tok);
    return rc;
}

int lm_fill_template(const lm_model *lm, gpt2_cache *c, const lm_part *parts, int n_parts, int *choice,
                     double *choice_ll, dm_buf *out)
{
    int rc = DM_OK;
    bpe_ids ids = {0};
    int64_t *off = NULL;
    double *ll = NULL;
    for (int k = 0; k < n_parts && rc == DM_OK; k++) {
        if (choice) choice[k] = -1;
        if (choice_ll) choice_ll[k] = 0.0;
        if (parts[k].text) {
            rc = lm_append_text(lm, c, parts[k].text);
            if (rc == DM_OK) rc = dm_buf_adds(out, parts[k].text);
            continue;
        }
        int nv = parts[k].n_values;
        if (nv <= 0) {
            rc = DM_ERR(DM_EINPUT, "template part %d is a slot without allowed values", k);
            break;
        }
        free(off);
        free(ll);
        off = malloc(((size_t)nv + 1) * sizeof *off);
        ll = malloc((size_t)nv * sizeof *ll);
        if (!off || !ll) { rc = DM_ERR(DM_ENOMEM, "out of memory"); break; }
        ids.n = 0;
        if ((rc = encode_all(lm, parts[k].values, nv, &ids, off)) != DM_OK) break;
        /* the values that fit after the prefix, scored; the others left out */
        int nfit = 0;
        int64_t *fo = malloc(((size_t)nv + 1) * sizeof *fo);
        int *fi = malloc((size_t)nv * sizeof *fi), *ft = malloc(ids.n ? ids.n * sizeof *ft : 1);
        if (!fo || !fi || !ft) rc = DM_ERR(DM_ENOMEM, "out of memory");
        fo[0] = 0;
        for (int i = 0; i < nv && rc == DM_OK; i++) {
            int64_t nt = off[i + 1] - off[i];
            if (c->len + nt > c->cap || nt > c->max_rows) continue;
            memcpy(ft + fo[nfit], ids.v + off[i], (size_t)nt * sizeof *ft);
            fo[nfit + 1] = fo[nfit] + nt;
            fi[nfit++] = i;
        }
        if (rc == DM_OK && nfit > 0) rc = gpt2_cache_score(c, ft, fo, nfit, ll);
        int best = nfit > 0 ? fi[0] : -1;
        double bll = nfit > 0 ? ll[0] : 0.0;
        for (int j = 1; j < nfit; j++)
            if (ll[j] > bll) {
                bll = ll[j];
                best = fi[j];
            }
        free(fo);
        free(fi);
        free(ft);
        if (rc != DM_OK) break;
        if (best < 0) {
            if (choice) {
                choice[k] = -2;
                break;
            }
            rc = DM_ERR(DM_EINPUT, "template part %d: none of its %d value%s fits after the %d tokens before it (context %d)", k, nv,
                        nv == 1 ? "" : "s", c->len, c->cap);
            break;
        }
        ll[0] = bll;
        if (choice) choice[k] = best;
        if (choice_ll) choice_ll[k] = ll[0];
        int nt = (int)(off[best + 1] - off[best]);
        if (nt > 0 && (rc = gpt2_cache_append(c, ids.v + off[best], NULL, 0, nt)) != DM_OK) break;
        rc = dm_buf_adds(out, parts[k].values[best]);
    }
    free(off);
    free(ll);
    bpe_ids_free(&ids);
    return rc;
}
