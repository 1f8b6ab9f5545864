/* sptok.c: SentencePiece-style BPE from tokenizer.json or llama2.c's tokenizer.bin; see sptok.h. */
#include "sptok.h"

#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */
#define SPLEN 3

/* ---------------------------------------------------------------------------------------------
 * merge table */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int merges_alloc(sptok *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 16) cap *= 2;
    t->mcap = cap;
    DM_ALLOC(t->mkey, cap);
    DM_ALLOC(t->mrank, cap);
    DM_ALLOC(t->mres, cap);
    memset(t->mkey, 0xff, cap * sizeof *t->mkey);
    return DM_OK;
}

/* inserts (a, b) -> (rank, res) unless present; returns 1 when inserted */
static int merges_put(sptok *t, int a, int b, int rank, int res)
{
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = mix(k) & (t->mcap - 1);; i = (i + 1) & (t->mcap - 1)) {
        if (t->mkey[i] == k) return 0;
        if (t->mkey[i] == UINT64_MAX) {
            t->mkey[i] = k;
            t->mrank[i] = rank;
            t->mres[i] = res;
            return 1;
        }
    }
}

/* the merge of (a, b): its priority (lower first) and result; 0 when none */
static int pair_lookup(const sptok *t, int a, int b, double *prio, int *res, char *scratch)
{
    if (t->score) { /* llama2.c: the concatenation, if a token, by its score */
        size_t la, lb;
        const char *pa = dm_strtab_get(&t->tok.keys, (size_t)a, &la), *pb = dm_strtab_get(&t->tok.keys, (size_t)b, &lb);
        memcpy(scratch, pa, la);
        memcpy(scratch + la, pb, lb);
        int64_t id = dm_strmap_find(&t->tok, scratch, la + lb);
        if (id < 0) return 0;
        *prio = -(double)t->score[id];
        *res = (int)id;
        return 1;
    }
    if (!t->mcap) return 0;
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = mix(k) & (t->mcap - 1);; i = (i + 1) & (t->mcap - 1)) {
        if (t->mkey[i] == k) {
            *prio = t->mrank[i];
            *res = t->mres[i];
            return 1;
        }
        if (t->mkey[i] == UINT64_MAX) return 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * loading */

void sptok_free(sptok *t)
{
    dm_strmap_free(&t->tok);
    DM_FREE_ALL(t->special, t->added, t->byte_of, t->mkey, t->mrank, t->mres, t->score);
    memset(t, 0, sizeof *t);
}

/* the byte of a "<0xNN>" piece, or -1 */
static int byte_piece(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!h || !l || !s[3] || !s[4]) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

/* pieces (n) by id -> t->tok (ids in order), byte tables */
static int build_vocab(sptok *t, char **piece, size_t *plen, int n, const char *path)
{
    t->n_vocab = n;
    DM_ALLOC(t->special, (size_t)n);
    DM_ALLOC(t->byte_of, (size_t)n);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int i = 0; i < n; i++) {
        int64_t id;
        int added;
        if (!piece[i])
            return DM_ERR(DM_EINPUT, "'%s': token id %d is missing (ids must run from 0 to %d without gaps)", path, i,
                          n - 1);
        DM_CALL(dm_strmap_intern(&t->tok, piece[i], plen[i], &id, &added));
        if (!added)
            return DM_ERR(DM_EINPUT, "'%s': piece '%.*s' has two ids, %lld and %d", path, (int)plen[i], piece[i],
                          (long long)id, i);
        int b = byte_piece(piece[i], plen[i]);
        t->byte_of[i] = b;
        if (b >= 0) t->byte_id[b] = i;
    }
    return DM_OK;
}

/* model.vocab and added_tokens -> piece[id] (pointers into the JSON document) */
static int collect_pieces(const dm_json *vocab, const dm_json *added, char ***piece, size_t **plen, int *n_out,
                          const char *path)
{
    int64_t n = 0, id;
    for (const dm_json *e = vocab->child; e; e = e->next) {
        if (dm_json_int(e, &id) || id < 0 || id >= (1 << 26))
            return DM_ERR(DM_EINPUT, "'%s': model.vocab['%s'] must be a token id (a non-negative integer)", path, e->key);
        if (id + 1 > n) n = id + 1;
    }
    for (const dm_json *a = added ? added->child : NULL; a; a = a->next) {
        const dm_json *i = dm_json_get(a, "id"), *c = dm_json_get(a, "content");
        if (!i || dm_json_int(i, &id) || id < 0 || id >= (1 << 26) || !c || c->type != DM_JSTR)
            return DM_ERR(DM_EINPUT, "'%s': added_tokens entries need \"id\" (a token id) and \"content\" (a string)", path);
        if (id + 1 > n) n = id + 1;
    }
    *n_out = (int)n;
    *piece = calloc(n ? (size_t)n : 1, sizeof **piece);
    *plen = calloc(n ? (size_t)n : 1, sizeof **plen);
    if (!*piece || !*plen) return DM_ERR(DM_ENOMEM, "out of memory");
    for (const dm_json *e = vocab->child; e; e = e->next) {
        dm_json_int(e, &id);
        if ((*piece)[id])
            return DM_ERR(DM_EINPUT, "'%s': token id %lld is given to '%s' and '%s'", path, (long long)id, (*piece)[id],
                          e->key);
        (*piece)[id] = (char *)e->key;
        (*plen)[id] = e->keylen;
    }
    for (const dm_json *a = added ? added->child : NULL; a; a = a->next) {
        const dm_json *c = dm_json_get(a, "content");
        dm_json_int(dm_json_get(a, "id"), &id);
        if ((*piece)[id] && ((*plen)[id] != c->len || memcmp((*piece)[id], c->str, c->len)))
            return DM_ERR(DM_EINPUT, "'%s': added token '%s' has id %lld, which model.vocab gives to '%s'", path, c->str,
                          (long long)id, (*piece)[id]);
        (*piece)[id] = (char *)c->str;
        (*plen)[id] = c->len;
    }
    return DM_OK;
}

static int load_added(sptok *t, const dm_json *added, const char *path)
{
    if (!added) return DM_OK;
    DM_ALLOC(t->added, added->len ? added->len : 1);
    for (const dm_json *a = added->child; a; a = a->next) {
        int64_t id;
        const dm_json *sp = dm_json_get(a, "special");
        dm_json_int(dm_json_get(a, "id"), &id);
        t->added[t->n_added++] = (int)id;
        if (sp && sp->type == DM_JBOOL && sp->boolean) t->special[id] = 1;
    }
    return DM_OK;
}

static int load_merges(sptok *t, const dm_json *merges, const char *path)
{
    if (!merges || merges->type == DM_JNULL) return DM_OK;
    if (merges->type != DM_JARR) return DM_ERR(DM_EINPUT, "'%s': model.merges must be a list", path);
    DM_CALL(merges_alloc(t, merges->len));
    char *buf = NULL;
    size_t cap = 0;
    int rank = 0, rc = DM_OK;
    for (const dm_json *m = merges->child; m; m = m->next, rank++) {
        const char *a, *b;
        size_t la, lb;
        if (m->type == DM_JSTR) { /* "a b" */
            const char *sp = memchr(m->str, ' ', m->len);
            if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) {
                rc = DM_ERR(DM_EINPUT, "'%s': model.merges[%d] '%s' is not two pieces separated by one space", path,
                            rank, m->str);
                break;
            }
            a = m->str;
            la = (size_t)(sp - m->str);
            b = sp + 1;
            lb = m->len - la - 1;
        } else if (m->type == DM_JARR && m->len == 2 && m->child->type == DM_JSTR && m->child->next->type == DM_JSTR) {
            a = m->child->str;
            la = m->child->len;
            b = m->child->next->str;
            lb = m->child->next->len;
        } else {
            rc = DM_ERR(DM_EINPUT, "'%s': model.merges[%d] must be \"a b\" or [\"a\", \"b\"]", path, rank);
            break;
        }
        if (la + lb > cap) {
            cap = 2 * (la + lb) + 64;
            char *nb = realloc(buf, cap);
            if (!nb) { rc = DM_ERR(DM_ENOMEM, "out of memory"); break; }
            buf = nb;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int64_t ia = dm_strmap_find(&t->tok, a, la), ib = dm_strmap_find(&t->tok, b, lb),
                ir = dm_strmap_find(&t->tok, buf, la + lb);
        if (ia < 0 || ib < 0 || ir < 0) {
            rc = DM_ERR(DM_EINPUT, "'%s': model.merges[%d] ('%.*s' + '%.*s'): '%.*s' is not in the vocabulary", path,
                        rank, (int)la, a, (int)lb, b, (int)(ia < 0 ? la : ib < 0 ? lb : la + lb),
                        ia < 0 ? a : ib < 0 ? b : buf);
            break;
        }
        t->n_merges += merges_put(t, (int)ia, (int)ib, rank, (int)ir); /* a repeated pair keeps its first rank */
    }
    free(buf);
    return rc;
}

static int is_str(const dm_json *o, const char *key, const char *want)
{
    const dm_json *v = o ? dm_json_get(o, key) : NULL;
    return v && v->type == DM_JSTR && !strcmp(v->str, want);
}

static const char *type_of(const dm_json *o)
{
    const dm_json *v = o && o->type == DM_JOBJ ? dm_json_get(o, "type") : NULL;
    return v && v->type == DM_JSTR && v->str ? v->str : "(no type)";
}

/* normalizer: null, or Prepend("▁") / Replace(" " -> "▁"), alone or in a Sequence */
static int load_normalizer(sptok *t, const dm_json *n, const char *path)
{
    if (!n || n->type == DM_JNULL) return DM_OK;
    const dm_json *list = n, *one = n;
    int seq = !strcmp(type_of(n), "Sequence");
    if (seq) {
        list = dm_json_get(n, "normalizers");
        if (!list || list->type != DM_JARR)
            return DM_ERR(DM_EINPUT, "'%s': normalizer.normalizers must be a list", path);
        one = list->child;
    }
    for (; one; one = seq ? one->next : NULL) {
        const char *ty = type_of(one);
        const dm_json *pat = dm_json_get(one, "pattern");
        if (!strcmp(ty, "Prepend") && is_str(one, "prepend", SP)) {
            t->prepend = SPTOK_PREPEND_ALWAYS;
        } else if (!strcmp(ty, "Replace") && pat && is_str(pat, "String", " ") && is_str(one, "content", SP)) {
            /* spaces become "▁": done by every encode */
        } else {
            DM_ERR(DM_EINPUT, "'%s': normalizer '%s' is not supported", path, ty);
            DM_HINT("a SentencePiece-style BPE tokenizer.json normalises with Prepend(\"▁\") and Replace(\" \", \"▁\") only");
            return DM_EINPUT;
        }
    }
    return DM_OK;
}

static int load_pretokenizer(sptok *t, const dm_json *p, const char *path)
{
    if (!p || p->type == DM_JNULL) return DM_OK;
    const char *ty = type_of(p);
    if (strcmp(ty, "Metaspace") || !is_str(p, "replacement", SP)) {
        DM_ERR(DM_EINPUT, "'%s': pre_tokenizer '%s' is not supported", path, ty ? ty : "(no type)");
        if (!strcmp(ty, "ByteLevel") || !strcmp(ty, "Sequence") || !strcmp(ty, "Split"))
            DM_HINT("this looks like a byte-level BPE tokenizer (GPT-2, Llama 3), not SentencePiece-style BPE");
        return DM_EINPUT;
    }
    const dm_json *ps = dm_json_get(p, "prepend_scheme"), *aps = dm_json_get(p, "add_prefix_space"),
                  *sp = dm_json_get(p, "split");
    if (ps && ps->type == DM_JSTR) {
        if (!strcmp(ps->str, "always")) t->prepend = SPTOK_PREPEND_ALWAYS;
        else if (!strcmp(ps->str, "first")) t->prepend = SPTOK_PREPEND_FIRST;
        else if (!strcmp(ps->str, "never")) t->prepend = SPTOK_PREPEND_NEVER;
        else return DM_ERR(DM_EINPUT, "'%s': pre_tokenizer.prepend_scheme '%s' is not always, first or never", path, ps->str);
    } else {
        t->prepend = aps && aps->type == DM_JBOOL && !aps->boolean ? SPTOK_PREPEND_NEVER : SPTOK_PREPEND_ALWAYS;
    }
    t->split_words = !(sp && sp->type == DM_JBOOL && !sp->boolean);
    t->meta_prepend = 1;
    return DM_OK;
}

static int load_decoder(sptok *t, const dm_json *d, const char *path)
{
    if (!d || d->type == DM_JNULL) return DM_OK;
    const dm_json *one = d;
    int seq = !strcmp(type_of(d), "Sequence");
    if (seq) {
        const dm_json *list = dm_json_get(d, "decoders");
        if (!list || list->type != DM_JARR) return DM_ERR(DM_EINPUT, "'%s': decoder.decoders must be a list", path);
        one = list->child;
    }
    for (; one; one = seq ? one->next : NULL) {
        const char *ty = type_of(one);
        if (!strcmp(ty, "Strip")) {
            int64_t st = 0;
            const dm_json *s = dm_json_get(one, "start");
            if (!is_str(one, "content", " ") || !s || dm_json_int(s, &st) || st < 0 || st > 1)
                return DM_ERR(DM_EINPUT, "'%s': decoder Strip must strip at most one leading \" \"", path);
            t->strip_leading = (int)st;
        } else if (!strcmp(ty, "Metaspace")) {
            const dm_json *ps = dm_json_get(one, "prepend_scheme"), *aps = dm_json_get(one, "add_prefix_space");
            int never = (ps && is_str(one, "prepend_scheme", "never")) ||
                        (!ps && aps && aps->type == DM_JBOOL && !aps->boolean);
            t->strip_leading = !never;
        } else if (strcmp(ty, "Replace") && strcmp(ty, "ByteFallback") && strcmp(ty, "Fuse")) {
            return DM_ERR(DM_EINPUT, "'%s': decoder '%s' is not supported", path, ty);
        }
    }
    return DM_OK;
}

/* post_processor TemplateProcessing "single": special tokens around $A */
static int load_template(sptok *t, const dm_json *pp, const char *path)
{
    if (!pp || pp->type == DM_JNULL) return DM_OK;
    if (strcmp(type_of(pp), "TemplateProcessing")) return DM_OK; /* no special tokens added */
    const dm_json *single = dm_json_get(pp, "single");
    if (!single || single->type != DM_JARR) return DM_ERR(DM_EINPUT, "'%s': post_processor.single must be a list", path);
    int after = 0;
    for (const dm_json *e = single->child; e; e = e->next) {
        const dm_json *st = dm_json_get(e, "SpecialToken");
        if (!st) {
            after = 1;
            continue;
        }
        const dm_json *id = dm_json_get(st, "id");
        int64_t tid = id && id->type == DM_JSTR ? dm_strmap_find(&t->tok, id->str, id->len) : -1;
        if (tid < 0)
            return DM_ERR(DM_EINPUT, "'%s': post_processor special token '%s' is not in the vocabulary", path,
                          id && id->type == DM_JSTR ? id->str : "?");
        int *arr = after ? t->post : t->pre, *n = after ? &t->n_post : &t->n_pre;
        if (*n == 4) return DM_ERR(DM_EINPUT, "'%s': post_processor adds more than 4 special tokens", path);
        arr[(*n)++] = (int)tid;
    }
    return DM_OK;
}

static int load_model(sptok *t, const dm_json *model, const dm_json *root, const char *path)
{
    if (!model || model->type != DM_JOBJ) return DM_ERR(DM_EINPUT, "'%s': missing \"model\" object", path);
    if (strcmp(type_of(model), "BPE")) {
        DM_ERR(DM_EINPUT, "'%s': model.type '%s' is not supported, expected 'BPE'", path, type_of(model));
        DM_HINT("SentencePiece Unigram and WordPiece tokenizers are not implemented");
        return DM_EINPUT;
    }
    const dm_json *vocab = dm_json_get(model, "vocab"), *added = dm_json_get(root, "added_tokens");
    if (!vocab || vocab->type != DM_JOBJ) return DM_ERR(DM_EINPUT, "'%s': model.vocab must be an object", path);
    if (added && added->type != DM_JARR) return DM_ERR(DM_EINPUT, "'%s': added_tokens must be a list", path);
    const dm_json *v;
    double dropout = 0;
    if ((v = dm_json_get(model, "dropout")) && v->type != DM_JNULL && (dm_json_double(v, &dropout) || dropout != 0))
        return DM_ERR(DM_EINPUT, "'%s': model.dropout must be null or 0 (BPE dropout is random)", path);
    static const char *const no[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++)
        if ((v = dm_json_get(model, no[i])) && v->type != DM_JNULL && !(v->type == DM_JSTR && v->len == 0))
            return DM_ERR(DM_EINPUT, "'%s': model.%s is not supported (not SentencePiece-style BPE)", path, no[i]);
    if ((v = dm_json_get(model, "ignore_merges")) && v->type == DM_JBOOL && v->boolean) {
        DM_ERR(DM_EINPUT, "'%s': model.ignore_merges true is not supported", path);
        DM_HINT("this looks like a byte-level BPE tokenizer (Llama 3), not SentencePiece-style BPE");
        return DM_EINPUT;
    }
    char **piece = NULL;
    size_t *plen = NULL;
    int n = 0, rc = collect_pieces(vocab, added, &piece, &plen, &n, path);
    if (!rc) rc = build_vocab(t, piece, plen, n, path);
    free(piece);
    free(plen);
    DM_CALL(rc);
    DM_CALL(load_added(t, added, path));
    t->byte_fallback = (v = dm_json_get(model, "byte_fallback")) && v->type == DM_JBOOL && v->boolean;
    t->fuse_unk = (v = dm_json_get(model, "fuse_unk")) && v->type == DM_JBOOL && v->boolean;
    t->unk = -1;
    if ((v = dm_json_get(model, "unk_token")) && v->type == DM_JSTR) {
        int64_t u = dm_strmap_find(&t->tok, v->str, v->len);
        if (u < 0) return DM_ERR(DM_EINPUT, "'%s': model.unk_token '%s' is not in the vocabulary", path, v->str);
        t->unk = (int)u;
    }
    return load_merges(t, dm_json_get(model, "merges"), path);
}

int sptok_load_json(sptok *t, const char *path)
{
    memset(t, 0, sizeof *t);
    char *text;
    dm_jdoc doc = {0};
    dm_json *root;
    DM_CALL(dm_json_load(path, 1, &doc, &text, &root));
    int rc = DM_OK;
    DM_TRY(rc, load_model(t, dm_json_get(root, "model"), root, path), done);
    DM_TRY(rc, load_normalizer(t, dm_json_get(root, "normalizer"), path), done);
    DM_TRY(rc, load_pretokenizer(t, dm_json_get(root, "pre_tokenizer"), path), done);
    DM_TRY(rc, load_decoder(t, dm_json_get(root, "decoder"), path), done);
    DM_TRY(rc, load_template(t, dm_json_get(root, "post_processor"), path), done);
    t->bos = (int)dm_strmap_find(&t->tok, "<s>", 3);
    t->eos = (int)dm_strmap_find(&t->tok, "</s>", 4);
done:
    dm_jdoc_free(&doc);
    free(text);
    if (rc) sptok_free(t);
    return rc;
}

int sptok_load_llama2c(sptok *t, const char *path, int vocab_size)
{
    memset(t, 0, sizeof *t);
    if (vocab_size <= 0) return DM_ERR(DM_EINPUT, "'%s': vocab_size %d must be positive", path, vocab_size);
    FILE *f = fopen(path, "rb");
    if (!f) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    int rc = DM_OK;
    char **piece = calloc((size_t)vocab_size, sizeof *piece);
    size_t *plen = calloc((size_t)vocab_size, sizeof *plen);
    t->score = calloc((size_t)vocab_size, sizeof *t->score);
    char *raw = NULL;
    int32_t maxlen;
    if (!piece || !plen || !t->score) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
    if (fread(&maxlen, 4, 1, f) != 1 || maxlen <= 0 || maxlen > (1 << 16)) {
        rc = DM_ERR(DM_EINPUT, "'%s': expected a positive max_token_length (int32) at byte 0", path);
        goto done;
    }
    raw = malloc((size_t)maxlen + 1);
    if (!raw) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
    long off = 4;
    for (int i = 0; i < vocab_size; i++, off = ftell(f)) {
        int32_t n;
        if (fread(&t->score[i], 4, 1, f) != 1 || fread(&n, 4, 1, f) != 1) {
            rc = DM_ERR(DM_EINPUT, "'%s': the file ends at token %d (byte %ld) of the %d the model's vocab_size needs",
                        path, i, off, vocab_size);
            goto done;
        }
        if (n < 0 || n > maxlen || fread(raw, 1, (size_t)n, f) != (size_t)n) {
            rc = DM_ERR(DM_EINPUT, "'%s': token %d (byte %ld): length %d is outside [0, max_token_length %d] or the "
                        "file ends", path, i, off, n, maxlen);
            goto done;
        }
        /* the exported pieces have ' ' where SentencePiece has "▁" */
        size_t sp = 0;
        for (int k = 0; k < n; k++) sp += raw[k] == ' ';
        piece[i] = malloc((size_t)n + 2 * sp + 1);
        if (!piece[i]) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
        size_t o = 0;
        for (int k = 0; k < n; k++) {
            if (raw[k] == ' ') { memcpy(piece[i] + o, SP, SPLEN); o += SPLEN; }
            else piece[i][o++] = raw[k];
        }
        plen[i] = o;
    }
    if (fgetc(f) != EOF) {
        rc = DM_ERR(DM_EINPUT, "'%s': bytes follow token %d (at byte %ld): the tokenizer has more tokens than the "
                    "model's vocab_size %d", path, vocab_size - 1, off, vocab_size);
        goto done;
    }
    DM_TRY(rc, build_vocab(t, piece, plen, vocab_size, path), done);
    t->byte_fallback = 1;
    t->unk = vocab_size > 0 && plen[0] == 5 && !memcmp(piece[0], "<unk>", 5) ? 0 : -1;
    t->prepend = SPTOK_PREPEND_ALWAYS; /* add_dummy_prefix */
    t->strip_leading = 1;
    /* run.c's convention: <s> is 1 and </s> 2 (exported as "\n<s>\n" and "\n</s>\n") */
    t->bos = vocab_size > 1 ? 1 : -1;
    t->eos = vocab_size > 2 ? 2 : -1;
    if (t->bos >= 0) t->pre[t->n_pre++] = t->bos;
    for (int s = 0; s < 3 && s < vocab_size; s++) t->special[s] = s > 0 || t->unk == 0;
done:
    for (int i = 0; piece && i < vocab_size; i++) free(piece[i]);
    free(piece);
    free(plen);
    free(raw);
    fclose(f);
    if (rc) sptok_free(t);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * encoding */

int sptok_token_id(const sptok *t, const char *piece, size_t len)
{
    return (int)dm_strmap_find(&t->tok, piece, len);
}

typedef struct {
    int id, prev, next;
    int word_start; /* begins with a "▁" of the text (a word boundary when splitting) */
} sym;

typedef struct {
    double prio;
    int left, right, res;
    int lid, rid; /* ids when queued: the entry is stale once either symbol changed */
} cand;

static int cand_less(const cand *a, const cand *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

typedef struct {
    sym *s;
    size_t ns, cap_s;
    cand *h;
    size_t nh, cap_h;
    char *scratch;
    size_t cap_scratch;
} work;

static void heap_push(work *w, cand c)
{
    size_t i = w->nh++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->h[p])) break;
        w->h[i] = w->h[p];
        i = p;
    }
    w->h[i] = c;
}

static cand heap_pop(work *w)
{
    cand top = w->h[0], last = w->h[--w->nh];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < w->nh && cand_less(&w->h[l], best)) { m = l; best = &w->h[l]; }
        if (r < w->nh && cand_less(&w->h[r], best)) m = r;
        if (m == i) break;
        w->h[i] = w->h[m];
        i = m;
    }
    if (w->nh) w->h[i] = last;
    return top;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return DM_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return DM_ERR(DM_ENOMEM, "out of memory");
    *p = q;
    *cap = c;
    return DM_OK;
}

/* queues the pair (i, next of i) if it merges */
static void consider(const sptok *t, work *w, int i)
{
    if (i < 0) return;
    int j = w->s[i].next;
    if (j < 0) return;
    if (t->split_words && w->s[j].word_start) return;
    double prio;
    int res;
    if (!pair_lookup(t, w->s[i].id, w->s[j].id, &prio, &res, w->scratch)) return;
    cand c = {prio, i, j, res, w->s[i].id, w->s[j].id};
    heap_push(w, c);
}

/* length of the UTF-8 character at s (1 for an invalid byte) */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t k = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (k == 0 || k > n) return 1;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 1;
    if (k == 2 && s[0] < 0xc2) return 1;                        /* overlong */
    if (k == 3 && s[0] == 0xe0 && s[1] < 0xa0) return 1;
    if (k == 3 && s[0] == 0xed && s[1] >= 0xa0) return 1;       /* surrogates */
    if (k == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || s[0] > 0xf4 || (s[0] == 0xf4 && s[1] >= 0x90))) return 1;
    return k;
}

/* BPE of one normalised piece p[0..n) */
static int encode_piece(const sptok *t, work *w, const char *p, size_t n, bpe_ids *out)
{
    w->ns = 0;
    w->nh = 0;
    DM_CALL(grow((void **)&w->s, &w->cap_s, n + 1, sizeof *w->s));
    int prev_unk = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((const unsigned char *)p + i, n - i);
        int64_t id = dm_strmap_find(&t->tok, p + i, k);
        int ws = k == SPLEN && !memcmp(p + i, SP, SPLEN);
        if (id >= 0) {
            w->s[w->ns++] = (sym){(int)id, 0, 0, ws};
            prev_unk = 0;
        } else {
            int all = t->byte_fallback;
            for (size_t b = 0; all && b < k; b++) all = t->byte_id[(unsigned char)p[i + b]] >= 0;
            if (all) {
                for (size_t b = 0; b < k; b++) w->s[w->ns++] = (sym){t->byte_id[(unsigned char)p[i + b]], 0, 0, ws && !b};
                prev_unk = 0;
            } else if (t->unk >= 0) {
                if (!(t->fuse_unk && prev_unk)) w->s[w->ns++] = (sym){t->unk, 0, 0, ws};
                prev_unk = 1;
            } else {
                return DM_ERR(DM_EINPUT, "text byte %zu: '%.*s' is not in the vocabulary and the tokenizer has neither "
                              "byte fallback nor an unknown token", i, (int)k, p + i);
            }
        }
        i += k;
    }
    for (size_t i = 0; i < w->ns; i++) {
        w->s[i].prev = (int)i - 1;
        w->s[i].next = i + 1 < w->ns ? (int)i + 1 : -1;
    }
    DM_CALL(grow((void **)&w->h, &w->cap_h, 2 * w->ns + 1, sizeof *w->h));
    for (size_t i = 0; i + 1 < w->ns; i++) consider(t, w, (int)i);
    while (w->nh) {
        cand c = heap_pop(w);
        sym *l = &w->s[c.left], *r = &w->s[c.right];
        if (l->id != c.lid || l->next != c.right || r->id != c.rid || r->prev != c.left) continue; /* stale */
        l->id = c.res;
        l->next = r->next;
        if (r->next >= 0) w->s[r->next].prev = c.left;
        r->id = -1;
        r->prev = r->next = -2;
        /* each merge adds at most two pairs: the heap holds at most 2n */
        DM_CALL(grow((void **)&w->h, &w->cap_h, w->nh + 3, sizeof *w->h));
        if (l->prev >= 0) consider(t, w, l->prev);
        consider(t, w, c.left);
    }
    for (int i = w->ns ? 0 : -1; i >= 0; i = w->s[i].next) DM_CALL(bpe_ids_push(out, w->s[i].id));
    return DM_OK;
}

/* normalises text piece s[0..n) (first: it starts the text; cont: SPTOK_CONTINUE) and encodes it */
static int encode_text(const sptok *t, work *w, dm_buf *norm, const char *s, size_t n, int first, int cont, bpe_ids *out)
{
    if (n == 0) return DM_OK;
    dm_buf_reset(norm);
    int starts_sp = s[0] == ' ' || (n >= SPLEN && !memcmp(s, SP, SPLEN));
    int pre = !cont && (t->prepend == SPTOK_PREPEND_ALWAYS || (t->prepend == SPTOK_PREPEND_FIRST && first));
    /* the Prepend normaliser always prepends; Metaspace only when no "▁" is there already */
    if (pre && !(t->meta_prepend && starts_sp)) DM_CALL(dm_buf_add(norm, SP, SPLEN));
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') DM_CALL(dm_buf_add(norm, SP, SPLEN));
        else DM_CALL(dm_buf_addc(norm, s[i]));
    }
    size_t need = norm->len + 16;
    if (t->score) DM_CALL(grow((void **)&w->scratch, &w->cap_scratch, 2 * need + 256, 1));
    return encode_piece(t, w, norm->data, norm->len, out);
}

/* the longest added token written at s[0..n), or -1 */
static int match_added(const sptok *t, const char *s, size_t n, size_t *mlen)
{
    int best = -1;
    *mlen = 0;
    for (int a = 0; a < t->n_added; a++) {
        size_t l;
        const char *p = dm_strtab_get(&t->tok.keys, (size_t)t->added[a], &l);
        if (l > *mlen && l <= n && !memcmp(s, p, l)) {
            best = t->added[a];
            *mlen = l;
        }
    }
    return best;
}

int sptok_encode(const sptok *t, const char *text, size_t len, int flags, bpe_ids *out)
{
    work w = {0};
    dm_buf norm = {0};
    int rc = DM_OK, cont = (flags & SPTOK_CONTINUE) != 0;
    if (flags & SPTOK_ADD_SPECIAL)
        for (int i = 0; i < t->n_pre && !rc; i++) rc = bpe_ids_push(out, t->pre[i]);
    if (t->score && !rc) rc = grow((void **)&w.scratch, &w.cap_scratch, 256, 1);
    size_t start = 0;
    if (!rc && (flags & SPTOK_PARSE_SPECIAL) && t->n_added) {
        for (size_t i = 0; i < len && !rc;) {
            size_t ml;
            int id = match_added(t, text + i, len - i, &ml);
            if (id < 0) {
                i++;
                continue;
            }
            rc = encode_text(t, &w, &norm, text + start, i - start, start == 0, cont, out);
            if (!rc) rc = bpe_ids_push(out, id);
            i += ml;
            start = i;
        }
    }
    if (!rc) rc = encode_text(t, &w, &norm, text + start, len - start, start == 0, cont, out);
    if (flags & SPTOK_ADD_SPECIAL)
        for (int i = 0; i < t->n_post && !rc; i++) rc = bpe_ids_push(out, t->post[i]);
    free(w.s);
    free(w.h);
    free(w.scratch);
    dm_buf_free(&norm);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * decoding */

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 1 && s[i] >= 0x80) return 0;
        i += k;
    }
    return 1;
}

/* flushes the pending byte tokens run[0..n) as text, or one U+FFFD per byte */
static int flush_bytes(dm_buf *out, const unsigned char *run, size_t n)
{
    if (valid_utf8(run, n)) return dm_buf_add(out, run, n);
    for (size_t i = 0; i < n; i++) DM_CALL(dm_buf_add(out, "\xef\xbf\xbd", 3));
    return DM_OK;
}

int sptok_decode(const sptok *t, const int *ids, size_t n, int flags, dm_buf *out)
{
    size_t start = out->len;
    dm_buf run = {0}; /* pending byte tokens */
    int rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            rc = DM_ERR(DM_EINPUT, "token id %d at position %zu is outside the vocabulary of %d", id, i, t->n_vocab);
            break;
        }
        if (t->byte_of[id] >= 0) {
            rc = dm_buf_addc(&run, (char)t->byte_of[id]);
            continue;
        }
        if (run.len) {
            rc = flush_bytes(out, (const unsigned char *)run.data, run.len);
            dm_buf_reset(&run);
        }
        if (rc || (t->special[id] && (flags & SPTOK_SKIP_SPECIAL))) continue;
        size_t l;
        const char *p = dm_strtab_get(&t->tok.keys, (size_t)id, &l);
        for (size_t k = 0; k < l && !rc;) {
            if (k + SPLEN <= l && !memcmp(p + k, SP, SPLEN)) {
                rc = dm_buf_addc(out, ' ');
                k += SPLEN;
            } else {
                rc = dm_buf_addc(out, p[k++]);
            }
        }
    }
    if (!rc && run.len) rc = flush_bytes(out, (const unsigned char *)run.data, run.len);
    dm_buf_free(&run);
    DM_CALL(rc);
    if (t->strip_leading && !(flags & SPTOK_CONTINUE) && out->len > start && out->data[start] == ' ') {
        memmove(out->data + start, out->data + start + 1, out->len - start - 1);
        out->len--;
        out->data[out->len] = '\0';
    }
    return DM_OK;
}
