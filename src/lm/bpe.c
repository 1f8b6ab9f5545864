/* bpe.c: GPT-2 byte-level BPE; see bpe.h. */
#include "bpe.h"

#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"
#include "safetensors.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------------
 * GPT-2's byte alphabet: bytes_to_unicode() of the original encoder.py */

static void byte_alphabet(uint32_t enc[256], int order[256])
{
    int n = 0, extra = 0, printable[256] = {0};
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            enc[b] = (uint32_t)b;
            printable[b] = 1;
            order[n++] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) {
            enc[b] = 256 + (uint32_t)extra++;
            order[n++] = b;
        }
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* WHATWG UTF-8 decoding of s[0..n): calls emit(cp) per code point, U+FFFD per invalid sequence
 * (maximal subparts, exactly as TextDecoder does). Returns the number of code points. */
#define UTF8_DECODE(s, n, EMIT)                                                               \
    do {                                                                                      \
        uint32_t cp_ = 0, lower_ = 0x80, upper_ = 0xBF;                                       \
        int need_ = 0, seen_ = 0;                                                             \
        for (size_t i_ = 0; i_ < (n);) {                                                      \
            unsigned char b_ = (unsigned char)(s)[i_];                                        \
            if (need_ == 0) {                                                                 \
                i_++;                                                                         \
                if (b_ < 0x80) { uint32_t c_ = b_; EMIT(c_); }                                \
                else if (b_ >= 0xC2 && b_ <= 0xDF) { need_ = 1; cp_ = b_ & 0x1F; }           \
                else if (b_ >= 0xE0 && b_ <= 0xEF) {                                          \
                    if (b_ == 0xE0) lower_ = 0xA0;                                            \
                    if (b_ == 0xED) upper_ = 0x9F;                                            \
                    need_ = 2; cp_ = b_ & 0xF;                                                \
                } else if (b_ >= 0xF0 && b_ <= 0xF4) {                                        \
                    if (b_ == 0xF0) lower_ = 0x90;                                            \
                    if (b_ == 0xF4) upper_ = 0x8F;                                            \
                    need_ = 3; cp_ = b_ & 0x7;                                                \
                } else { uint32_t c_ = 0xFFFD; EMIT(c_); }                                    \
                continue;                                                                     \
            }                                                                                 \
            if (b_ < lower_ || b_ > upper_) { /* not consumed: it starts the next sequence */ \
                cp_ = 0; need_ = seen_ = 0; lower_ = 0x80; upper_ = 0xBF;                     \
                uint32_t c_ = 0xFFFD; EMIT(c_);                                               \
                continue;                                                                     \
            }                                                                                 \
            i_++;                                                                             \
            lower_ = 0x80; upper_ = 0xBF;                                                     \
            cp_ = (cp_ << 6) | (b_ & 0x3F);                                                   \
            if (++seen_ == need_) { uint32_t c_ = cp_; cp_ = 0; need_ = seen_ = 0; EMIT(c_); } \
        }                                                                                     \
        if (need_) { uint32_t c_ = 0xFFFD; EMIT(c_); }                                        \
    } while (0)

int bpe_char_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return BPE_LETTER;
        if (cp >= '0' && cp <= '9') return BPE_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return BPE_SPACE;
        return BPE_OTHER;
    }
    size_t lo = 0, hi = bpe_unicode_nranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < bpe_unicode_ranges[mid].lo) hi = mid;
        else if (cp > bpe_unicode_ranges[mid].hi) lo = mid + 1;
        else return bpe_unicode_ranges[mid].cls;
    }
    return BPE_OTHER;
}

/* ---------------------------------------------------------------------------------------------
 * small containers */

int bpe_ids_push(bpe_ids *x, int id)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        DM_REALLOC(x->v, cap);
        x->cap = cap;
    }
    x->v[x->n++] = id;
    return DM_OK;
}

void bpe_ids_free(bpe_ids *x)
{
    free(x->v);
    memset(x, 0, sizeof *x);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static size_t merge_slot(const bpe_tokenizer *t, uint64_t key)
{
    size_t mask = t->mcap - 1, i = (size_t)mix64(key) & mask;
    while (t->mkey[i] != UINT64_MAX && t->mkey[i] != key) i = (i + 1) & mask;
    return i;
}

/* rank of the pair (a, b), or INT_MAX; *res its merged symbol */
static inline int merge_rank(const bpe_tokenizer *t, int a, int b, int *res)
{
    size_t i = merge_slot(t, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (t->mkey[i] == UINT64_MAX) return INT_MAX;
    *res = t->mres[i];
    return t->mrank[i];
}

/* ---------------------------------------------------------------------------------------------
 * pre-tokenisation */

int bpe_pretokenize(const char *text, size_t len, dm_buf *clean, bpe_ids *ends)
{
    dm_buf_reset(clean);
    DM_CALL(dm_buf_grow(clean, len + 16));
    /* code points with their byte offsets in the cleaned text; 4 bytes of offset per cp */
    size_t ncp = 0, cap = len + 1;
    uint32_t *cps = malloc(cap * sizeof *cps);
    uint32_t *off = malloc((cap + 1) * sizeof *off);
    unsigned char *cls = malloc(cap);
    if (!cps || !off || !cls) {
        free(cps); free(off); free(cls);
        return DM_ERR(DM_ENOMEM, "out of memory");
    }
    int rc = DM_OK;
    /* every code point comes from at least one input byte, so cap is never exceeded */
#define PUSH_CP(c)                                                                    \
    do {                                                                              \
        char u_[4];                                                                   \
        size_t k_ = put_utf8(u_, (c));                                                \
        if (rc != DM_OK || ncp == cap) break;                                         \
        if ((rc = dm_buf_add(clean, u_, k_)) != DM_OK) break;                         \
        cps[ncp] = (c);                                                               \
        cls[ncp] = (unsigned char)bpe_char_class(c);                                  \
        off[ncp + 1] = (uint32_t)clean->len;                                          \
        ncp++;                                                                        \
    } while (0)
    off[0] = 0;
    UTF8_DECODE(text, len, PUSH_CP);
#undef PUSH_CP
    if (rc) goto done;
    size_t n = ncp;
    for (size_t i = 0; i < n;) {
        uint32_t c = cps[i];
        size_t end = 0;
        /* 's|'t|'re|'ve|'m|'ll|'d */
        if (c == '\'' && i + 1 < n) {
            uint32_t c1 = cps[i + 1], c2 = i + 2 < n ? cps[i + 2] : 0;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') end = i + 2;
            else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) end = i + 3;
        }
        /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' in that order */
        if (!end) {
            static const int order[3] = {BPE_LETTER, BPE_NUMBER, BPE_OTHER};
            for (int k = 0; k < 3 && !end; k++) {
                size_t s = (size_t)-1;
                if (c == ' ' && i + 1 < n && cls[i + 1] == order[k]) s = i + 1;
                else if (cls[i] == order[k]) s = i;
                if (s == (size_t)-1) continue;
                end = s + 1;
                while (end < n && cls[end] == order[k]) end++;
            }
        }
        /* '\s+(?!\S)|\s+': a run before a non-space leaves its last space to the next piece */
        if (!end) {
            size_t k = i + 1;
            while (k < n && cls[k] == BPE_SPACE) k++;
            end = (k < n && k - 1 > i) ? k - 1 : k;
        }
        if ((rc = bpe_ids_push(ends, (int)off[end])) != DM_OK) goto done;
        i = end;
    }
done:
    free(cps);
    free(off);
    free(cls);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * encode / decode */

/* BPE of one piece: word[0..n) holds byte symbols on entry, merged symbols on exit; returns n. */
static size_t bpe_word(const bpe_tokenizer *t, int *word, size_t n)
{
    while (n > 1) {
        int best = INT_MAX, a = -1, b = -1, res = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            int r2, rk = merge_rank(t, word[i], word[i + 1], &r2);
            if (rk < best) {
                best = rk;
                a = word[i];
                b = word[i + 1];
                res = r2;
            }
        }
        if (best == INT_MAX) break;
        /* merge every occurrence of (a, b), left to right, without overlaps */
        size_t j = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && word[i] == a && word[i + 1] == b) {
                word[j++] = res;
                i += 2;
            } else {
                word[j++] = word[i++];
            }
        }
        n = j;
    }
    return n;
}

int bpe_encode(const bpe_tokenizer *t, const char *text, size_t len, bpe_ids *out)
{
    dm_buf clean = {0};
    bpe_ids ends = {0};
    int rc = bpe_pretokenize(text, len, &clean, &ends);
    int *word = NULL;
    size_t wcap = 0, start = 0;
    for (size_t p = 0; rc == DM_OK && p < ends.n; p++) {
        size_t e = (size_t)ends.v[p], n = e - start;
        if (n > wcap) {
            free(word);
            wcap = n < 64 ? 64 : 2 * n;
            word = malloc(wcap * sizeof *word);
            if (!word) { rc = DM_ERR(DM_ENOMEM, "out of memory"); break; }
        }
        for (size_t i = 0; i < n; i++) word[i] = (unsigned char)clean.data[start + i];
        n = bpe_word(t, word, n);
        for (size_t i = 0; i < n && rc == DM_OK; i++) {
            int id = t->sym_tok[word[i]];
            if (id < 0) {
                size_t sl;
                const char *s = dm_strtab_get(&t->sym.keys, (size_t)word[i], &sl);
                rc = DM_ERR(DM_EINPUT, "bpe: the merges produce '%.*s', which has no id in the vocabulary", (int)sl, s);
                break;
            }
            rc = bpe_ids_push(out, id);
        }
        start = e;
    }
    free(word);
    dm_buf_free(&clean);
    bpe_ids_free(&ends);
    return rc;
}

int bpe_decode(const bpe_tokenizer *t, const int *ids, size_t n, dm_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return DM_ERR(DM_EINPUT, "bpe: token id %d at %zu is outside the vocabulary of %d", ids[i], i, t->n_vocab);
        size_t len;
        const char *s = dm_strtab_get(&t->tok.keys, (size_t)ids[i], &len);
        DM_CALL(dm_buf_add(out, s, len));
    }
    return DM_OK;
}

int bpe_token_id(const bpe_tokenizer *t, const char *s, size_t len)
{
    return (int)dm_strmap_find(&t->tok, s, len);
}

/* ---------------------------------------------------------------------------------------------
 * building a tokenizer from tokens (raw bytes, id order) and merges (raw byte pairs, rank order) */

static int intern(dm_strmap *m, const char *s, size_t len, int *id)
{
    int64_t x;
    int added;
    DM_CALL(dm_strmap_intern(m, s, len, &x, &added));
    *id = (int)x;
    return DM_OK;
}

/* Fills sym, the merge table and sym_tok once t->tok holds the vocabulary and merge_a/merge_b
 * the merges as symbols. `where` names the merges' source in errors. */
static int build_tables(bpe_tokenizer *t, const char *where, const int *lines)
{
    size_t nsym = t->sym.keys.n;
    t->mcap = 16;
    while (t->mcap < 2 * (size_t)t->n_merges + 16) t->mcap *= 2;
    DM_ALLOC(t->mkey, t->mcap);
    DM_ALLOC(t->mrank, t->mcap);
    DM_ALLOC(t->mres, t->mcap);
    memset(t->mkey, 0xff, t->mcap * sizeof *t->mkey);
    dm_buf cat = {0};
    for (int r = 0; r < t->n_merges; r++) {
        size_t la, lb;
        const char *a = dm_strtab_get(&t->sym.keys, (size_t)t->merge_a[r], &la);
        const char *b = dm_strtab_get(&t->sym.keys, (size_t)t->merge_b[r], &lb);
        dm_buf_reset(&cat);
        int rc = dm_buf_add(&cat, a, la);
        if (!rc) rc = dm_buf_add(&cat, b, lb);
        int res = 0;
        if (!rc) rc = intern(&t->sym, cat.data, cat.len, &res);
        if (rc) { dm_buf_free(&cat); return rc; }
        size_t i = merge_slot(t, (uint64_t)(uint32_t)t->merge_a[r] << 32 | (uint32_t)t->merge_b[r]);
        /* a repeated merge takes its last rank, as dict(zip(merges, range(n))) does */
        t->mkey[i] = (uint64_t)(uint32_t)t->merge_a[r] << 32 | (uint32_t)t->merge_b[r];
        t->mrank[i] = r;
        t->mres[i] = res;
    }
    nsym = t->sym.keys.n;
    t->sym_tok = malloc(nsym * sizeof *t->sym_tok);
    if (!t->sym_tok) { dm_buf_free(&cat); return DM_ERR(DM_ENOMEM, "out of memory"); }
    for (size_t s = 0; s < nsym; s++) {
        size_t len;
        const char *k = dm_strtab_get(&t->sym.keys, s, &len);
        t->sym_tok[s] = (int)dm_strmap_find(&t->tok, k, len);
    }
    for (int b = 0; b < 256; b++)
        if (t->sym_tok[b] < 0) {
            dm_buf_free(&cat);
            return DM_ERR(DM_EINPUT, "%s: the vocabulary has no token for byte 0x%02x", where, b);
        }
    for (int r = 0; r < t->n_merges; r++) {
        int res = 0;
        merge_rank(t, t->merge_a[r], t->merge_b[r], &res);
        if (t->sym_tok[res] < 0) {
            size_t len;
            const char *k = dm_strtab_get(&t->sym.keys, (size_t)res, &len);
            int rc = DM_ERR(DM_EINPUT, "%s:%d: merge result '%.*s' is not in the vocabulary", where,
                            lines ? lines[r] : r + 1, (int)len, k);
            dm_buf_free(&cat);
            return rc;
        }
    }
    dm_buf_free(&cat);
    t->eot = bpe_token_id(t, "<|endoftext|>", 13);
    return DM_OK;
}

static int init_syms(bpe_tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int id;
        DM_CALL(intern(&t->sym, &c, 1, &id));
        DM_ASSERT(id == b);
    }
    return DM_OK;
}

/* GPT-2 alphabet string (UTF-8) -> raw bytes; -1 at the first character outside the alphabet */
static long unmap(const char *s, size_t n, dm_buf *raw, const int dec[512])
{
    dm_buf_reset(raw);
    long bad = -1, idx = 0;
#define UNMAP_CP(c)                                                           \
    do {                                                                      \
        if ((c) >= 512 || dec[(c)] < 0) { if (bad < 0) bad = idx; }           \
        else if (dm_buf_addc(raw, (char)dec[(c)]) != DM_OK) bad = idx;        \
        idx++;                                                                \
    } while (0)
    UTF8_DECODE(s, n, UNMAP_CP);
#undef UNMAP_CP
    return bad;
}

static void decode_table(int dec[512])
{
    uint32_t enc[256];
    int order[256];
    byte_alphabet(enc, order);
    for (int i = 0; i < 512; i++) dec[i] = -1;
    for (int b = 0; b < 256; b++) dec[enc[b]] = b;
}

int bpe_load(bpe_tokenizer *t, const char *vocab_path, const char *merges_path)
{
    memset(t, 0, sizeof *t);
    int dec[512];
    decode_table(dec);
    char *text = NULL;
    size_t len;
    dm_jdoc doc = {0};
    dm_buf raw = {0};
    int *lines = NULL;
    const dm_json **byid = NULL;
    int rc = DM_OK;
    DM_TRY(rc, dm_read_file(vocab_path, &text, &len), fail);
    dm_json *root;
    dm_jerr jerr;
    int jr = dm_json_parse(&doc, text, len, 0, &root, &jerr);
    if (jr) {
        rc = DM_ERR(jr < 0 ? DM_ENOMEM : DM_EINPUT, "'%s': bad JSON at byte %zu: %s", vocab_path, jerr.offset, jerr.what);
        goto fail;
    }
    if (root->type != DM_JOBJ || root->len == 0) {
        rc = DM_ERR(DM_EINPUT, "'%s': expected a non-empty JSON object of token -> id", vocab_path);
        goto fail;
    }
    t->n_vocab = (int)root->len;
    byid = calloc(root->len, sizeof *byid);
    if (!byid) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto fail; }
    for (const dm_json *c = root->child; c; c = c->next) {
        int64_t id;
        if (dm_json_int(c, &id) || id < 0 || id >= t->n_vocab) {
            rc = DM_ERR(DM_EINPUT, "'%s': token '%s' has id %s, expected an integer in [0, %d)", vocab_path, c->key,
                        c->type == DM_JNUM ? c->str : dm_json_type_name(c->type), t->n_vocab);
            DM_HINT("GPT-2 vocabularies number their tokens densely from 0");
            goto fail;
        }
        if (byid[id]) {
            rc = DM_ERR(DM_EINPUT, "'%s': id %lld is given to both '%s' and '%s'", vocab_path, (long long)id,
                        byid[id]->key, c->key);
            goto fail;
        }
        byid[id] = c;
    }
    for (int id = 0; id < t->n_vocab; id++) {
        if (unmap(byid[id]->key, byid[id]->keylen, &raw, dec) >= 0) {
            rc = DM_ERR(DM_EINPUT, "'%s': token '%s' (id %d) has characters outside GPT-2's byte alphabet", vocab_path,
                        byid[id]->key, id);
            goto fail;
        }
        int got;
        DM_TRY(rc, intern(&t->tok, raw.data ? raw.data : "", raw.len, &got), fail);
        if (got != id) {
            rc = DM_ERR(DM_EINPUT, "'%s': tokens %d and %d are the same string", vocab_path, got, id);
            goto fail;
        }
    }
    free(text);
    text = NULL;
    DM_TRY(rc, init_syms(t), fail);

    /* merges.txt */
    DM_TRY(rc, dm_read_file(merges_path, &text, &len), fail);
    size_t cap = 1024;
    t->merge_a = malloc(cap * sizeof *t->merge_a);
    t->merge_b = malloc(cap * sizeof *t->merge_b);
    lines = malloc(cap * sizeof *lines);
    if (!t->merge_a || !t->merge_b || !lines) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto fail; }
    int lineno = 0;
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        char *e = nl ? nl : text + len;
        lineno++;
        size_t ll = (size_t)(e - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll == 0 || (lineno == 1 && ll >= 8 && !memcmp(p, "#version", 8))) {
            p = nl ? nl + 1 : text + len;
            continue;
        }
        char *sp = memchr(p, ' ', ll);
        if (!sp || sp == p || sp == p + ll - 1 || memchr(sp + 1, ' ', (size_t)(p + ll - sp - 1))) {
            rc = DM_ERR(DM_EINPUT, "'%s':%d: expected two tokens separated by one space, got '%.*s'", merges_path, lineno,
                        (int)(ll > 80 ? 80 : ll), p);
            goto fail;
        }
        if ((size_t)t->n_merges == cap) {
            cap *= 2;
            int32_t *a = realloc(t->merge_a, cap * sizeof *a);
            if (a) t->merge_a = a;
            int32_t *b = realloc(t->merge_b, cap * sizeof *b);
            if (b) t->merge_b = b;
            int *l = realloc(lines, cap * sizeof *l);
            if (l) lines = l;
            if (!a || !b || !l) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto fail; }
        }
        int ab[2];
        const char *part[2] = {p, sp + 1};
        size_t plen[2] = {(size_t)(sp - p), (size_t)(p + ll - sp - 1)};
        for (int k = 0; k < 2; k++) {
            if (unmap(part[k], plen[k], &raw, dec) >= 0) {
                rc = DM_ERR(DM_EINPUT, "'%s':%d: '%.*s' has characters outside GPT-2's byte alphabet", merges_path, lineno,
                            (int)plen[k], part[k]);
                goto fail;
            }
            DM_TRY(rc, intern(&t->sym, raw.data, raw.len, &ab[k]), fail);
        }
        t->merge_a[t->n_merges] = ab[0];
        t->merge_b[t->n_merges] = ab[1];
        lines[t->n_merges] = lineno;
        t->n_merges++;
        p = nl ? nl + 1 : text + len;
    }
    DM_TRY(rc, build_tables(t, merges_path, lines), fail);
    free(text);
    free(lines);
    free(byid);
    dm_jdoc_free(&doc);
    dm_buf_free(&raw);
    return DM_OK;
fail:
    free(text);
    free(lines);
    free(byid);
    dm_jdoc_free(&doc);
    dm_buf_free(&raw);
    bpe_free(t);
    return rc;
}

int bpe_load_dir(bpe_tokenizer *t, const char *dir)
{
    char v[4096], m[4096];
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    return bpe_load(t, v, m);
}

void bpe_free(bpe_tokenizer *t)
{
    dm_strmap_free(&t->tok);
    dm_strmap_free(&t->sym);
    DM_FREE_ALL(t->sym_tok, t->merge_a, t->merge_b, t->mkey, t->mrank, t->mres);
    memset(t, 0, sizeof *t);
}

/* raw bytes -> GPT-2 alphabet (UTF-8) */
static int map_bytes(dm_buf *out, const char *s, size_t n, const uint32_t enc[256])
{
    for (size_t i = 0; i < n; i++) {
        char u[4];
        size_t k = put_utf8(u, enc[(unsigned char)s[i]]);
        DM_CALL(dm_buf_add(out, u, k));
    }
    return DM_OK;
}

int bpe_save(const bpe_tokenizer *t, const char *dir)
{
    uint32_t enc[256];
    int order[256];
    byte_alphabet(enc, order);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return DM_ERR(DM_EIO, "cannot create directory '%s': %s", dir, strerror(errno));
    dm_buf js = {0}, tokb = {0};
    char path[4096];
    int rc = dm_buf_adds(&js, "{");
    for (int id = 0; id < t->n_vocab && !rc; id++) {
        size_t len;
        const char *s = dm_strtab_get(&t->tok.keys, (size_t)id, &len);
        dm_buf_reset(&tokb);
        /* special tokens such as <|endoftext|> are printable ASCII: the alphabet maps them to
         * themselves */
        rc = map_bytes(&tokb, s, len, enc);
        if (rc) break;
        size_t need = dm_json_quote(NULL, 0, tokb.data ? tokb.data : "", tokb.len);
        rc = dm_buf_grow(&js, need + 32);
        if (rc) break;
        dm_json_quote(js.data + js.len, need + 1, tokb.data ? tokb.data : "", tokb.len);
        js.len += need;
        rc = dm_buf_printf(&js, ": %d%s", id, id + 1 < t->n_vocab ? ", " : "");
    }
    if (!rc) rc = dm_buf_adds(&js, "}\n");
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (!rc) rc = safetensors_write_file_atomic(path, js.data, js.len);
    dm_buf_reset(&js);
    if (!rc) rc = dm_buf_adds(&js, "#version: 0.2\n");
    for (int r = 0; r < t->n_merges && !rc; r++) {
        size_t la, lb;
        const char *a = dm_strtab_get(&t->sym.keys, (size_t)t->merge_a[r], &la);
        const char *b = dm_strtab_get(&t->sym.keys, (size_t)t->merge_b[r], &lb);
        rc = map_bytes(&js, a, la, enc);
        if (!rc) rc = dm_buf_addc(&js, ' ');
        if (!rc) rc = map_bytes(&js, b, lb, enc);
        if (!rc) rc = dm_buf_addc(&js, '\n');
    }
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (!rc) rc = safetensors_write_file_atomic(path, js.data, js.len);
    dm_buf_free(&js);
    dm_buf_free(&tokb);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * training */

/* max-heap of (count, pair) with lazy deletion: an entry is live while its count is current */
typedef struct {
    int64_t count;
    int32_t a, b;
} heap_ent;

static int heap_less(const heap_ent *x, const heap_ent *y)
{
    /* x below y: lower count, then (for a deterministic order) larger symbols */
    if (x->count != y->count) return x->count < y->count;
    if (x->a != y->a) return x->a > y->a;
    return x->b > y->b;
}

typedef struct {
    heap_ent *v;
    size_t n, cap;
} heap;

static int heap_push(heap *h, heap_ent e)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 1024;
        DM_REALLOC(h->v, cap);
        h->cap = cap;
    }
    size_t i = h->n++;
    h->v[i] = e;
    while (i > 0 && heap_less(&h->v[(i - 1) / 2], &h->v[i])) {
        heap_ent t = h->v[i];
        h->v[i] = h->v[(i - 1) / 2];
        h->v[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    return DM_OK;
}

static heap_ent heap_pop(heap *h)
{
    heap_ent top = h->v[0];
    h->v[0] = h->v[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && heap_less(&h->v[m], &h->v[l])) m = l;
        if (r < h->n && heap_less(&h->v[m], &h->v[r])) m = r;
        if (m == i) break;
        heap_ent t = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = t;
        i = m;
    }
    return top;
}

/* pair statistics: (a, b) -> index into count / word lists */
typedef struct {
    uint64_t *key;
    int32_t *idx;
    size_t cap, n;
    int64_t *count;     /* (n) weighted occurrences */
    int32_t **words;    /* (n) words that contained the pair when it was counted (may repeat) */
    int32_t *nw, *cw;   /* (n) list sizes and capacities */
} pairstats;

static int pair_index(pairstats *p, int a, int b, int create)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    if (create && 2 * (p->n + 1) > p->cap) {
        size_t ncap = p->cap ? 2 * p->cap : 4096;
        uint64_t *nk = malloc(ncap * sizeof *nk);
        int32_t *ni = malloc(ncap * sizeof *ni);
        if (!nk || !ni) { free(nk); free(ni); return -2; }
        memset(nk, 0xff, ncap * sizeof *nk);
        for (size_t i = 0; i < p->cap; i++)
            if (p->key[i] != UINT64_MAX) {
                size_t j = (size_t)mix64(p->key[i]) & (ncap - 1);
                while (nk[j] != UINT64_MAX) j = (j + 1) & (ncap - 1);
                nk[j] = p->key[i];
                ni[j] = p->idx[i];
            }
        free(p->key);
        free(p->idx);
        p->key = nk;
        p->idx = ni;
        p->cap = ncap;
        int64_t *c = realloc(p->count, ncap / 2 * sizeof *c);
        if (c) p->count = c;
        int32_t **w = realloc(p->words, ncap / 2 * sizeof *w);
        if (w) p->words = w;
        int32_t *a1 = realloc(p->nw, ncap / 2 * sizeof *a1);
        if (a1) p->nw = a1;
        int32_t *a2 = realloc(p->cw, ncap / 2 * sizeof *a2);
        if (a2) p->cw = a2;
        if (!c || !w || !a1 || !a2) return -2;
    }
    if (!p->cap) return -1;
    size_t i = (size_t)mix64(key) & (p->cap - 1);
    while (p->key[i] != UINT64_MAX && p->key[i] != key) i = (i + 1) & (p->cap - 1);
    if (p->key[i] == key) return p->idx[i];
    if (!create) return -1;
    p->key[i] = key;
    p->idx[i] = (int32_t)p->n;
    p->count[p->n] = 0;
    p->words[p->n] = NULL;
    p->nw[p->n] = p->cw[p->n] = 0;
    return (int)p->n++;
}

static void pairstats_free(pairstats *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->words[i]);
    free(p->key); free(p->idx); free(p->count); free(p->words); free(p->nw); free(p->cw);
    memset(p, 0, sizeof *p);
}

/* adds delta occurrences of (a, b) from word w; new counts go to the heap */
static int pair_add(pairstats *p, heap *h, int a, int b, int64_t delta, int32_t w)
{
    int i = pair_index(p, a, b, 1);
    if (i < 0) return DM_ERR(DM_ENOMEM, "out of memory");
    p->count[i] += delta;
    if (delta > 0) {
        if (p->nw[i] == p->cw[i]) {
            int32_t nc = p->cw[i] ? 2 * p->cw[i] : 4;
            int32_t *nw = realloc(p->words[i], (size_t)nc * sizeof *nw);
            if (!nw) return DM_ERR(DM_ENOMEM, "out of memory");
            p->words[i] = nw;
            p->cw[i] = nc;
        }
        p->words[i][p->nw[i]++] = w;
    }
    if (p->count[i] > 0) DM_CALL(heap_push(h, (heap_ent){p->count[i], a, b}));
    return DM_OK;
}

/* the state of a training run: the corpus as unique words of current symbols, and pair counts */
typedef struct {
    dm_strmap words;               /* unique pre-tokenised words */
    int64_t *wcount;               /* (wcap) occurrences of each word in the corpus */
    size_t wcap;
    int32_t *sym;                  /* (total word bytes) current symbols; word w at wstart[w] */
    int32_t *wstart, *wlen, *seen; /* (nw) start in sym, current length, last merge that saw it */
    pairstats ps;
    heap hp;
} bpe_trainer;

static void trainer_free(bpe_trainer *w)
{
    dm_strmap_free(&w->words);
    free(w->wcount); free(w->sym); free(w->wstart); free(w->wlen); free(w->seen);
    pairstats_free(&w->ps);
    free(w->hp.v);
    memset(w, 0, sizeof *w);
}

/* step 1: the unique pre-tokenised words of the corpus with their counts */
static int count_words(bpe_trainer *w, const dm_strtab *corpus)
{
    int rc = DM_OK;
    dm_buf clean = {0};
    bpe_ids ends = {0};
    for (size_t d = 0; d < corpus->n; d++) {
        size_t len;
        const char *s = dm_strtab_get(corpus, d, &len);
        ends.n = 0;
        DM_TRY(rc, bpe_pretokenize(s, len, &clean, &ends), done);
        size_t st = 0;
        for (size_t k = 0; k < ends.n; k++) {
            int64_t id;
            int added;
            DM_TRY(rc, dm_strmap_intern(&w->words, clean.data + st, (size_t)ends.v[k] - st, &id, &added), done);
            if ((size_t)id >= w->wcap) {
                size_t nc = w->wcap ? 2 * w->wcap : 4096;
                int64_t *nw = realloc(w->wcount, nc * sizeof *nw);
                if (!nw) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
                memset(nw + w->wcap, 0, (nc - w->wcap) * sizeof *nw);
                w->wcount = nw;
                w->wcap = nc;
            }
            w->wcount[id]++;
            st = (size_t)ends.v[k];
        }
    }
done:
    dm_buf_free(&clean);
    bpe_ids_free(&ends);
    return rc;
}

/* step 2: each word as its byte symbols */
static int split_words(bpe_trainer *w)
{
    size_t nw = w->words.keys.n, nsymtot = 0;
    w->wstart = malloc((nw + 1) * sizeof *w->wstart);
    w->wlen = malloc((nw + 1) * sizeof *w->wlen);
    w->seen = malloc((nw + 1) * sizeof *w->seen);
    w->sym = malloc(((size_t)w->words.keys.offsets[nw] + 1) * sizeof *w->sym);
    if (!w->wstart || !w->wlen || !w->seen || !w->sym) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t k = 0; k < nw; k++) {
        size_t len;
        const char *s = dm_strtab_get(&w->words.keys, k, &len);
        w->wstart[k] = (int32_t)nsymtot;
        w->wlen[k] = (int32_t)len;
        w->seen[k] = -1;
        for (size_t i = 0; i < len; i++) w->sym[nsymtot++] = (unsigned char)s[i];
    }
    return DM_OK;
}

/* the weighted count of every adjacent symbol pair of every word */
static int count_pairs(bpe_trainer *w)
{
    for (size_t k = 0; k < w->words.keys.n; k++)
        for (int32_t i = 0; i + 1 < w->wlen[k]; i++)
            DM_CALL(pair_add(&w->ps, &w->hp, w->sym[w->wstart[k] + i], w->sym[w->wstart[k] + i + 1], w->wcount[k],
                             (int32_t)k));
    return DM_OK;
}

/* appends merge (a, b) to t's merge list (capacity *mcap) */
static int push_merge(bpe_tokenizer *t, int32_t a, int32_t b, size_t *mcap)
{
    if ((size_t)t->n_merges == *mcap) {
        *mcap = *mcap ? 2 * *mcap : 1024;
        int32_t *na = realloc(t->merge_a, *mcap * sizeof *na);
        if (na) t->merge_a = na;
        int32_t *nb = realloc(t->merge_b, *mcap * sizeof *nb);
        if (nb) t->merge_b = nb;
        if (!na || !nb) return DM_ERR(DM_ENOMEM, "out of memory");
    }
    int r = t->n_merges++;
    t->merge_a[r] = a;
    t->merge_b[r] = b;
    return DM_OK;
}

/* merge r of pair pi = (a, b) into symbol res: rewrites the words holding the pair, retracting
   their pairs, merging, and counting them again */
static int rewrite_words(bpe_trainer *w, int pi, int32_t a, int32_t b, int res, int r)
{
    int rc = DM_OK;
    pairstats *ps = &w->ps;
    int32_t nlist = ps->nw[pi];
    int32_t *list = ps->words[pi];
    ps->words[pi] = NULL;
    ps->nw[pi] = ps->cw[pi] = 0;
    for (int32_t k = 0; k < nlist && !rc; k++) {
        int32_t wd = list[k];
        if (w->seen[wd] == r) continue;
        w->seen[wd] = r;
        int32_t *s = w->sym + w->wstart[wd];
        int32_t n = w->wlen[wd], found = 0;
        for (int32_t i = 0; i + 1 < n; i++)
            if (s[i] == a && s[i + 1] == b) { found = 1; break; }
        if (!found) continue;
        for (int32_t i = 0; i + 1 < n && !rc; i++) rc = pair_add(ps, &w->hp, s[i], s[i + 1], -w->wcount[wd], wd);
        int32_t j = 0;
        for (int32_t i = 0; i < n;) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[j++] = res; i += 2; }
            else s[j++] = s[i++];
        }
        w->wlen[wd] = j;
        for (int32_t i = 0; i + 1 < j && !rc; i++) rc = pair_add(ps, &w->hp, s[i], s[i + 1], w->wcount[wd], wd);
    }
    free(list);
    return rc;
}

/* step 3: merges the most frequent pair until n_merges or no pair occurs twice */
static int merge_pairs(bpe_tokenizer *t, bpe_trainer *w, int n_merges)
{
    int rc = DM_OK;
    size_t mcap = 0;
    dm_buf cat = {0};
    while (t->n_merges < n_merges && w->hp.n > 0) {
        heap_ent e = heap_pop(&w->hp);
        int pi = pair_index(&w->ps, e.a, e.b, 0);
        if (pi < 0 || w->ps.count[pi] != e.count) continue; /* stale entry */
        if (e.count < 2) break;
        size_t la, lb;
        const char *sa = dm_strtab_get(&t->sym.keys, (size_t)e.a, &la);
        const char *sb = dm_strtab_get(&t->sym.keys, (size_t)e.b, &lb);
        dm_buf_reset(&cat);
        rc = dm_buf_add(&cat, sa, la);
        if (!rc) rc = dm_buf_add(&cat, sb, lb);
        int res = 0;
        if (!rc) rc = intern(&t->sym, cat.data, cat.len, &res);
        if (!rc) rc = push_merge(t, e.a, e.b, &mcap);
        if (!rc) rc = rewrite_words(w, pi, e.a, e.b, res, t->n_merges - 1);
        if (rc) break;
    }
    dm_buf_free(&cat);
    return rc;
}

/* step 4: the vocabulary: bytes in GPT-2's order, merged strings in merge order, special tokens */
static int build_vocab(bpe_tokenizer *t, const char *const *specials)
{
    uint32_t enc[256];
    int order[256];
    byte_alphabet(enc, order);
    for (int i = 0; i < 256; i++) {
        char c = (char)order[i];
        int id;
        DM_CALL(intern(&t->tok, &c, 1, &id));
    }
    for (int r = 0; r < t->n_merges; r++) {
        size_t la, lb;
        const char *sa = dm_strtab_get(&t->sym.keys, (size_t)t->merge_a[r], &la);
        const char *sb = dm_strtab_get(&t->sym.keys, (size_t)t->merge_b[r], &lb);
        dm_buf tmp = {0};
        int rc = dm_buf_add(&tmp, sa, la);
        if (!rc) rc = dm_buf_add(&tmp, sb, lb);
        int id;
        if (!rc) rc = intern(&t->tok, tmp.data, tmp.len, &id);
        dm_buf_free(&tmp);
        if (rc) return rc;
    }
    for (int k = 0; specials && specials[k]; k++) {
        int id;
        DM_CALL(intern(&t->tok, specials[k], strlen(specials[k]), &id));
    }
    t->n_vocab = (int)t->tok.keys.n;
    return DM_OK;
}

int bpe_train(bpe_tokenizer *t, const dm_strtab *corpus, int n_merges, const char *const *specials)
{
    memset(t, 0, sizeof *t);
    if (n_merges < 0) return DM_ERR(DM_ECONFIG, "bpe_train: negative merge count %d", n_merges);
    int rc = DM_OK;
    bpe_trainer w = {0};
    DM_TRY(rc, count_words(&w, corpus), done);
    DM_TRY(rc, split_words(&w), done);
    DM_TRY(rc, init_syms(t), done);
    DM_TRY(rc, count_pairs(&w), done);
    DM_TRY(rc, merge_pairs(t, &w, n_merges), done);
    DM_TRY(rc, build_vocab(t, specials), done);
    DM_TRY(rc, build_tables(t, "bpe_train", NULL), done);
done:
    trainer_free(&w);
    if (rc) bpe_free(t);
    return rc;
}
