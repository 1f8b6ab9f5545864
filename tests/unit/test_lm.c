/* test_lm.c: text-level operations of the frozen LM against brute force without the KV cache:
 * template filling (each slot's choice and log-likelihood recomputed by full forwards of every
 * alternative), greedy text generation, scoring after a prefix with soft vectors; and the
 * four-file checkpoint round trip (model + trained tokenizer). The same operations run on both
 * architectures of lm.h: a trained-tokenizer GPT-2, and a Llama loaded from the checkpoint of
 * tests/reference/gen_llama_prompt.py (with its loading, tokens and refusals). */
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/lines.h"
#include "../../src/core/rng.h"
#include "../../src/lm/lm.h"
#include "../../src/nn/gemm_bf16.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* log p(seq[from..n) | seq[0..from)) by one full forward */
static double full_ll(lm_model *m, const int *seq, int n, int from, const float *soft, int n_soft)
{
    if (lm_forward(m, seq, soft, n_soft, NULL, 1, n, 1, 0)) {
        dm_error_print("test_lm");
        exit(1);
    }
    int V = lm_vocab(m);
    double s = 0;
    for (int t = from; t < n; t++) {
        const float *r = lm_last(m).logits + (size_t)(t - 1) * V;
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < V; j++) mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < V; j++) z += exp(r[j] - mx);
        s += r[seq[t]] - mx - log(z);
    }
    return s;
}

static void push_text(const lm_model *lm, bpe_ids *ids, const char *s) { lm_encode(lm, s, strlen(s), ids); }

/* a tokenizer trained on a small corpus and a random GPT-2 sharpened so that choices are decided by
 * the network, not by token counts */
static void make_lm(lm_model *lm, dm_strtab *corpus)
{
    memset(lm, 0, sizeof *lm);
    const char *docs[] = {"Because you bought the red soap, we suggest the blue shampoo.",
                          "Because you liked the green widget, we suggest a brush.",
                          "the item is red; the item is blue; the item is green"};
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 3; i++) dm_strtab_add(corpus, docs[i], strlen(docs[i]));
    static const char *const specials[] = {"<|endoftext|>", NULL};
    CHECK(bpe_train(&lm->tok, corpus, 60, specials) == DM_OK, "train tokenizer");
    gpt2_config cfg = gpt2_config_make(2, 2, 32, 96, lm->tok.n_vocab);
    CHECK(gpt2_init(&lm->model, &cfg) == DM_OK, "init");
    gpt2_init_random(&lm->model, 11);
    for (size_t i = 0; i < lm->model.num_params; i++) lm->model.param_slab[i] *= 12.0f;
    for (int l = 0; l < cfg.num_layers; l++)
        for (int c = 0; c < cfg.channels; c++) {
            lm->model.params.ln1w[l * cfg.channels + c] = 1.0f;
            lm->model.params.ln2w[l * cfg.channels + c] = 1.0f;
        }
    for (int c = 0; c < cfg.channels; c++) lm->model.params.lnfw[c] = 1.0f;
}

/* checkpoint round trip of all four files */
static void test_roundtrip(const lm_model *lm, const char *tmp)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/lm_roundtrip", tmp);
    CHECK(lm_save(lm, dir) == DM_OK, "save");
    lm_model back;
    CHECK(lm_load(&back, dir) == DM_OK, "load");
    CHECK(back.model.num_params == lm->model.num_params &&
              !memcmp(back.model.param_slab, lm->model.param_slab, lm->model.num_params * sizeof(float)),
          "parameters changed in the round trip");
    CHECK(back.tok.n_vocab == lm->tok.n_vocab && back.tok.n_merges == lm->tok.n_merges, "tokenizer changed");
    lm_free(&back);
}

/* template filling after the prefix in cache c against brute force: every alternative of every
 * slot by a full forward of the whole sequence; seq (empty on entry) ends as prefix + filled text */
static void test_template(lm_model *lm, lm_cache *c, const bpe_ids *pre, const float *soft, bpe_ids *seq,
                          dm_buf *out)
{
    static const char *const colours[] = {" green widget", " item", " blue", " red"};
    static const char *const things[] = {" the blue shampoo", " a brush", " shampoo", " soap"};
    lm_part parts[] = {{" the", NULL, 0}, {NULL, colours, 4}, {", we suggest", NULL, 0}, {NULL, things, 4}, {".", NULL, 0}};
    int choice[5];
    double cll[5];
    CHECK(lm_fill_template(lm, c, parts, 5, choice, cll, out) == DM_OK, "template");
    printf("  template: '%s' (choices %d, %d)\n", out->data, choice[1], choice[3]);

    for (size_t i = 0; i < pre->n; i++) bpe_ids_push(seq, pre->v[i]);
    double worst = 0;
    for (int k = 0; k < 5; k++) {
        if (parts[k].text) {
            push_text(lm, seq, parts[k].text);
            continue;
        }
        int best = -1;
        double bll = -INFINITY;
        for (int v = 0; v < parts[k].n_values; v++) {
            bpe_ids alt = {0};
            for (size_t i = 0; i < seq->n; i++) bpe_ids_push(&alt, seq->v[i]);
            push_text(lm, &alt, parts[k].values[v]);
            double ll = full_ll(lm, alt.v, (int)alt.n, (int)seq->n, soft, 2);
            if (ll > bll) { bll = ll; best = v; }
            bpe_ids_free(&alt);
        }
        CHECK(best == choice[k], "slot %d: brute force picks %d, the cache %d", k, best, choice[k]);
        worst = fabs(bll - cll[k]) > worst ? fabs(bll - cll[k]) : worst;
        push_text(lm, seq, parts[k].values[best]);
    }
    printf("  template slots vs brute force: same choices, log-likelihood max diff %.3g\n", worst);
    CHECK(worst < 1e-4, "slot log-likelihoods differ by %g", worst);
    CHECK((size_t)c->len == seq->n, "cache holds %d positions, the sequence %zu", c->len, seq->n);
}

/* scoring texts after the filled template (seq), against full forwards */
static void test_score_texts(lm_model *lm, lm_cache *c, const bpe_ids *seq, const float *soft)
{
    const char *cands[] = {" The end", " blue", "", " a brush and soap"};
    double ll[4];
    CHECK(lm_score_texts(lm, c, cands, 4, ll) == DM_OK, "score");
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        bpe_ids alt = {0};
        for (size_t k = 0; k < seq->n; k++) bpe_ids_push(&alt, seq->v[k]);
        push_text(lm, &alt, cands[i]);
        double b = alt.n > seq->n ? full_ll(lm, alt.v, (int)alt.n, (int)seq->n, soft, 2) : 0.0;
        worst = fabs(b - ll[i]) > worst ? fabs(b - ll[i]) : worst;
        bpe_ids_free(&alt);
    }
    printf("  text scores vs full forwards: max diff %.3g\n", worst);
    CHECK(worst < 1e-4, "text scores differ by %g", worst);
}

/* greedy text generation against step-by-step full forwards, which extend seq */
static void test_generate(lm_model *lm, lm_cache *c, bpe_ids *seq, const float *soft)
{
    dm_buf gen = {0};
    int before = c->len;
    CHECK(lm_generate_text(lm, c, 8, &gen) == DM_OK, "generate");
    int V = lm_vocab(lm), same = 1, steps = c->len - before, eot = lm_eot(lm), ended = 0;
    for (int s = 0; s < steps; s++) {
        lm_forward(lm, seq->v, soft, 2, NULL, 1, (int)seq->n, 1, 0);
        const float *row = lm_last(lm).logits + (seq->n - 1) * (size_t)V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (row[j] > row[best]) best = j;
        bpe_ids_push(seq, best);
        if ((ended = best == eot)) break;
    }
    dm_buf bf = {0};
    lm_decode(lm, seq->v + before, seq->n - (size_t)before - (size_t)ended, &bf);
    same = bf.len == gen.len && (gen.len == 0 || !memcmp(bf.data, gen.data, gen.len));
    printf("  greedy text (%d tokens) matches step-by-step forwards: %s\n", steps, same ? "yes" : "no");
    CHECK(same, "greedy generation differs: '%s' vs '%s'", gen.data ? gen.data : "", bf.data ? bf.data : "");
    dm_buf_free(&gen);
    dm_buf_free(&bf);
}

/* near the end of the context: values that do not fit are passed over; none fitting is
 * reported in choice (-2, cache unchanged), and is an error without choice */
static void test_context_end(lm_model *lm, const bpe_ids *pre)
{
    const int ctx = lm_context(lm);
    static const char *const vals[] = {" the blue shampoo and the red soap and a brush", " soap"};
    bpe_ids t0 = {0}, t1 = {0};
    push_text(lm, &t0, vals[0]);
    push_text(lm, &t1, vals[1]);
    CHECK(t0.n > t1.n, "test values: %zu vs %zu tokens", t0.n, t1.n);
    lm_cache c2;
    CHECK(lm_cache_init(&c2, lm, 0, 16) == DM_OK, "cache");
    int room = (int)t1.n, fill = ctx - room;
    int *ids = malloc((size_t)fill * sizeof *ids);
    for (int i = 0; i < fill; i++) ids[i] = pre->v[2 + i % (int)(pre->n - 2)];
    CHECK(lm_cache_append(&c2, ids, NULL, 0, fill) == DM_OK, "fill the context");
    lm_part p1[] = {{NULL, vals, 2}};
    int ch = -1;
    double l1 = 0;
    dm_buf o2 = {0};
    CHECK(lm_fill_template(lm, &c2, p1, 1, &ch, &l1, &o2) == DM_OK && ch == 1 && c2.len == ctx,
          "the value that fits: choice %d, cache %d", ch, c2.len);
    CHECK(lm_cache_truncate(&c2, fill) == DM_OK, "truncate");
    lm_part p2[] = {{NULL, vals, 1}};
    CHECK(lm_fill_template(lm, &c2, p2, 1, &ch, &l1, &o2) == DM_OK && ch == -2 && c2.len == fill,
          "no value fits: choice %d, cache %d", ch, c2.len);
    dm_error_clear();
    CHECK(lm_fill_template(lm, &c2, p2, 1, NULL, NULL, &o2) != DM_OK && strstr(dm_error_message(), "fits after the"),
          "no value fits without choice: %s", dm_error_message());
    dm_error_clear();
    printf("  template near the end of the context: the %zu-token value passed over, the %zu-token one written\n", t0.n,
           t1.n);
    free(ids);
    dm_buf_free(&o2);
    bpe_ids_free(&t0);
    bpe_ids_free(&t1);
    lm_cache_free(&c2);
}

/* the text-level operations on lm after a prefix of two soft vectors and text, against brute force */
static void test_text_ops(lm_model *lm)
{
    int C = lm_width(lm);
    float *soft = malloc(2 * (size_t)C * sizeof *soft);
    dm_rng r;
    dm_rng_seed(&r, 5);
    for (int i = 0; i < 2 * C; i++) soft[i] = (float)dm_rng_normal(&r);
    bpe_ids pre = {0};
    bpe_ids_push(&pre, LM_SOFT(0));
    bpe_ids_push(&pre, LM_SOFT(1));
    push_text(lm, &pre, "Because you bought");
    lm_cache c;
    CHECK(lm_cache_init(&c, lm, 0, 16) == DM_OK, "cache");
    CHECK(lm_cache_append(&c, pre.v, soft, 2, (int)pre.n) == DM_OK, "prefix");

    bpe_ids seq = {0};
    dm_buf out = {0};
    test_template(lm, &c, &pre, soft, &seq, &out);
    test_score_texts(lm, &c, &seq, soft);
    test_generate(lm, &c, &seq, soft);

    /* a slot without values is an error */
    lm_part bad[] = {{NULL, NULL, 0}};
    dm_error_clear();
    CHECK(lm_fill_template(lm, &c, bad, 1, NULL, NULL, &out) != DM_OK &&
              strstr(dm_error_message(), "slot without allowed values"), "empty slot: %s", dm_error_message());

    test_context_end(lm, &pre);

    dm_buf_free(&out);
    bpe_ids_free(&pre);
    bpe_ids_free(&seq);
    lm_cache_free(&c);
    free(soft);
}

/* A Llama checkpoint through lm_load (tests/reference/gen_llama_prompt.py: GQA, untied head,
 * tokenizer.json): its shape, the continuation tokens of texts against the Python tokenizer, <s>
 * and </s>, decode(encode(x)) == x with the leading space kept, embeddings, and the loaders'
 * refusals: lm.arch = gpt2 on it, a directory without a tokenizer, an unknown lm.arch. */
static void test_llama_load(lm_model *lm, const char *ref)
{
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/llama_prompt/lm", ref);
    CHECK(lm_load(lm, dir) == DM_OK, "load %s: %s", dir, dm_error_message());
    CHECK(lm->arch == LM_LLAMA && lm_width(lm) == 32 && lm_layers(lm) == 2 && lm_heads(lm) == 4 && lm_kv_heads(lm) == 2 &&
              lm_head(lm) != lm_embeddings(lm) && lm_bos(lm) == 1 && lm_eot(lm) == 2,
          "llama shape: arch %d width %d layers %d heads %d/%d bos %d eot %d", lm->arch, lm_width(lm), lm_layers(lm),
          lm_heads(lm), lm_kv_heads(lm), lm_bos(lm), lm_eot(lm));
    /* token ids of the Python tokenizer (continuations: no "▁" prefix) */
    snprintf(path, sizeof path, "%s/llama_prompt/ref.json", ref);
    char *text = NULL;
    size_t len;
    dm_jdoc doc = {0};
    dm_json *root = NULL;
    dm_jerr je;
    CHECK(dm_read_file(path, &text, &len) == DM_OK && dm_json_parse(&doc, text, len, 0, &root, &je) == 0, "%s", path);
    int nt = 0, same = 0;
    for (const dm_json *t = root ? dm_json_get(root, "texts")->child : NULL, *ids = root ? dm_json_get(root, "ids")->child : NULL;
         t && ids; t = t->next, ids = ids->next, nt++) {
        bpe_ids got = {0};
        dm_buf back = {0};
        CHECK(lm_encode(lm, t->str, t->len, &got) == DM_OK, "encode '%s'", t->str);
        int ok = 1;
        size_t k = 0;
        for (const dm_json *e = ids->child; e; e = e->next, k++) {
            int64_t v = -1;
            ok &= dm_json_int(e, &v) == 0 && k < got.n && got.v[k] == (int)v;
        }
        ok &= k == got.n;
        same += ok;
        CHECK(ok, "'%s': %zu tokens differ from the Python tokenizer's %zu", t->str, got.n, k);
        CHECK(lm_decode(lm, got.v, got.n, &back) == DM_OK && back.len == t->len && !memcmp(back.data, t->str, t->len),
              "decode(encode('%s')) = '%s'", t->str, back.data ? back.data : "");
        bpe_ids_free(&got);
        dm_buf_free(&back);
    }
    printf("  llama: %d of %d texts tokenized as the Python reference, decoded back\n", same, nt);
    CHECK(nt >= 5, "ref.json holds %d texts", nt);
    dm_jdoc_free(&doc);
    free(text);
    int ids[2] = {5, 300};
    float *e = malloc(2 * (size_t)lm_width(lm) * sizeof *e);
    CHECK(lm_embed_tokens(lm, ids, 2, e) == DM_OK && !memcmp(e + lm_width(lm), lm_embeddings(lm) + 300 * (size_t)lm_width(lm),
                                                             (size_t)lm_width(lm) * sizeof *e), "embedding rows");
    ids[1] = lm_vocab(lm);
    dm_error_clear();
    CHECK(lm_embed_tokens(lm, ids, 2, e) != DM_OK && strstr(dm_error_message(), "outside the vocabulary"), "%s", dm_error_message());
    free(e);
    /* refusals */
    lm_model bad;
    dm_error_clear();
    CHECK(lm_load_as(&bad, dir, "gpt2") != DM_OK && strstr(dm_error_message(), "lm.arch = \"gpt2\"") &&
              strstr(dm_error_message(), "lm/config.json' is a llama checkpoint"), "gpt2 on a Llama: %s", dm_error_message());
    printf("  refused: %s\n", dm_error_message());
    dm_error_clear();
    CHECK(lm_load_as(&bad, dir, "mistral") == DM_ECONFIG && strstr(dm_error_message(), "lm.arch"), "%s", dm_error_message());
    snprintf(path, sizeof path, "%s/llama/a", ref);
    dm_error_clear();
    CHECK(lm_load(&bad, path) != DM_OK && strstr(dm_error_message(), "neither tokenizer.json nor tokenizer.bin"),
          "Llama without a tokenizer: %s", dm_error_message());
    int arch = -1;
    snprintf(path, sizeof path, "%s/llama/a.bin", ref);
    CHECK(lm_detect_arch(path, &arch) == DM_OK && arch == LM_LLAMA, "a llama2.c .bin is a Llama");
    dm_error_clear();
    /* bf16 on the Llama: in force where the CPU has AVX512_BF16 (else the f32 fallback), and back */
    CHECK(lm_set_precision(lm, "bf16") == DM_OK && lm_precision(lm) == (nn_bf16_available() ? LM_BF16 : LM_F32),
          "bf16 on the Llama: precision %d", lm_precision(lm));
    CHECK(lm_set_precision(lm, "f32") == DM_OK && lm_precision(lm) == LM_F32, "f32 again on the Llama");
    dm_error_clear();
}

int main(void)
{
    const char *tmp = getenv("DM_TMP");
    if (!tmp) {
        printf("SKIP: DM_TMP not set (run through tests/run.sh)\n");
        return 77;
    }
    gpt2_set_threads(1);
    lm_model lm;
    dm_strtab corpus = {0};
    make_lm(&lm, &corpus);
    test_roundtrip(&lm, tmp);
    printf("gpt2:\n");
    test_text_ops(&lm);
    lm_free(&lm);
    dm_strtab_free(&corpus);

    const char *ref = getenv("DM_REF_DIR");
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/llama_prompt/lm/tokenizer.json", ref ? ref : ".");
    if (!ref || access(probe, R_OK) != 0) {
        printf("note: %s absent (tests/reference/gen_llama_prompt.py): the Llama half is skipped\n", probe);
        return tap_done("test_lm");
    }
    printf("llama:\n");
    test_llama_load(&lm, ref);
    if (lm.arch == LM_LLAMA) test_text_ops(&lm);
    lm_free(&lm);
    return tap_done("test_lm");
}
