/* test_bpe_parity.c: the C GPT-2 tokenizer against the reference, the npm package gpt-3-encoder
 * (node), on every Amazon Beauty title, brand and category (DM_DATA) and on a hand-made corpus of
 * Unicode, whitespace runs, contractions, emoji, CJK, combining marks and invalid UTF-8: identical
 * ids for every text, identical decoded text, and decode(encode(x)) == x for valid UTF-8.
 * The package is installed into $DM_BUILD/npm at test time; without the registry the test skips. */
#include "../../src/core/buf.h"
#include "../../src/core/err.h"
#include "../../src/core/json.h"
#include "../../src/core/lines.h"
#include "../../src/core/rng.h"
#include "../../src/lm/bpe.h"
#include "tap.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *hand[] = {
    "Hello world", "Hello  world", "  leading spaces", "trailing spaces  ", "tabs\tand\nnewlines\r\n",
    "multiple\n\n\nnewlines", "   ", " ", "x", "\n", " \n ", "a\n b", "a \nb", "a  \t b",
    "nbsp\xc2\xa0here \xc2\xa0x", "ideographic\xe3\x80\x80space", "ogham\xe1\x9a\x80mark", "bom\xef\xbb\xbfhere",
    "line\xe2\x80\xa8sep and para\xe2\x80\xa9sep", "nel\xc2\x85here", "\x1c\x1d\x1e\x1f info separators",
    "I'm can't won't they're we've you'll he'd it's", "IT'S I'M WE'VE", "'''s rock'n'roll don''t", "'s", "'", "' s",
    "12345 1,000.50 \xc2\xbd \xe2\x85\xab \xd9\xa3\xd9\xa4\xd9\xa5 123abc abc123 3.14e-10",
    "I \xe2\x9d\xa4\xef\xb8\x8f \xf0\x9f\x8d\x95 pizza \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 family \xf0\x9f\x87\xba\xf0\x9f\x87\xb8",
    "\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
    "e\xcc\x81 cafe\xcc\x81 na\xc3\xafve Z\xcd\x91\xcc\x80" "a\xcc\x88lgo",
    "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 \xd8\xa8\xd8\xa7\xd9\x84\xd8\xb9\xd8\xa7\xd9\x84\xd9\x85",
    "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87 \xe0\xa4\xa6\xe0\xa5\x81\xe0\xa4\xa8\xe0\xa4\xbf\xe0\xa4\xaf\xe0\xa4\xbe",
    "\xce\x93\xce\xb5\xce\xb9\xce\xac \xcf\x83\xce\xbf\xcf\x85 \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xb1\xe0\xb8\xaa\xe0\xb8\x94\xe0\xb8\xb5",
    "\xef\xbc\xa6\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xac \xef\xbd\x94\xef\xbd\x85\xef\xbd\x98\xef\xbd\x94 \xc7\x84 titlecase",
    "\xe2\x88\x91\xe2\x88\xab\xe2\x88\x9a x\xc2\xb2 y\xc2\xb3 \xe2\x82\xac\xc2\xa3\xc2\xa5\xe2\x82\xb9",
    "~!@#$%^&*()_+{}|:\"<>? !!!???... --- $$$100", "e-mail@example.com https://x.y/z?q=1&r=2#frag",
    "<|endoftext|> tokens as text", "a                                                  b",
    "\n \n \t x", "end with newline\n", "x  ", "  ", "\t\t", " !", " 1", "  a", "a,b,,c,,,d", ",,,,,", " ,, ,",
    /* invalid UTF-8 */
    "\xff\xfe abc", "abc\xc3", "\xe2\x82", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 too big", "\xc0\xaf overlong",
    "ok\x80\x80ok", "\xf0\x9f\x98 partial emoji", "\xe0\x80\x80", "mixed \xf0\x9f\x98\x80\xf0\x9f letters",
    "\x00\x01\x7f controls",
};

/* Random strings over pools of code points assigned before Unicode 14 (both sides agree on their
 * classes) with runs of spaces, apostrophe contractions and stray invalid bytes. */
static void add_random(dm_strtab *texts, int count)
{
    static const uint32_t pool[][2] = {
        {0x20, 0x7e}, {0x20, 0x20}, {0x27, 0x27}, {0x09, 0x0d}, {0xa0, 0xff}, {0x391, 0x3c9}, {0x410, 0x44f},
        {0x4e00, 0x4fff}, {0xac00, 0xacff}, {0x627, 0x64a}, {0x660, 0x669}, {0x905, 0x939}, {0x300, 0x36f},
        {0x1f600, 0x1f64f}, {0x2000, 0x200a}, {0x3000, 0x3000}, {0x2160, 0x216f}, {0xff10, 0xff5a}, {0x30, 0x39}};
    const int npool = sizeof pool / sizeof pool[0];
    dm_rng r;
    dm_rng_seed(&r, 20240501);
    char buf[1024];
    for (int i = 0; i < count; i++) {
        size_t n = 0, want = 1 + dm_rng_below(&r, 40);
        for (size_t k = 0; k < want && n + 8 < sizeof buf; k++) {
            int pi = (int)dm_rng_below(&r, (uint64_t)npool);
            uint32_t cp = pool[pi][0] + (uint32_t)dm_rng_below(&r, pool[pi][1] - pool[pi][0] + 1);
            if (dm_rng_below(&r, 30) == 0) { buf[n++] = (char)(0x80 + dm_rng_below(&r, 128)); continue; }
            if (dm_rng_below(&r, 12) == 0) {
                static const char *c[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "''"};
                const char *x = c[dm_rng_below(&r, 9)];
                memcpy(buf + n, x, strlen(x));
                n += strlen(x);
                continue;
            }
            if (cp < 0x80) buf[n++] = (char)cp;
            else if (cp < 0x800) { buf[n++] = (char)(0xC0 | cp >> 6); buf[n++] = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                buf[n++] = (char)(0xE0 | cp >> 12); buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)); buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (char)(0xF0 | cp >> 18); buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)); buf[n++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        dm_strtab_add(texts, buf, n);
    }
}

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static int valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        if (k == 3 && ((c == 0xE0 && (unsigned char)s[i + 1] < 0xA0) || (c == 0xED && (unsigned char)s[i + 1] > 0x9F))) return 0;
        if (k == 4 && ((c == 0xF0 && (unsigned char)s[i + 1] < 0x90) || (c == 0xF4 && (unsigned char)s[i + 1] > 0x8F))) return 0;
        i += k;
    }
    return 1;
}

typedef struct {
    dm_strtab *texts;
    long n, n_titles;
} meta_texts;

/* the title, brand and category names of one metadata record */
static void add_record(const dm_json *root, void *ctx)
{
    meta_texts *m = ctx;
    dm_strtab *texts = m->texts;
    const dm_json *t = dm_json_get(root, "title"), *b = dm_json_get(root, "brand"), *c = dm_json_get(root, "categories");
    if (t && t->type == DM_JSTR) { dm_strtab_add(texts, t->str, t->len); m->n++; m->n_titles++; }
    if (b && b->type == DM_JSTR) { dm_strtab_add(texts, b->str, b->len); m->n++; }
    if (c && c->type == DM_JARR)
        for (const dm_json *p = c->child; p; p = p->next)
            for (const dm_json *q = p->child; q; q = q->next)
                if (q->type == DM_JSTR) { dm_strtab_add(texts, q->str, q->len); m->n++; }
}

/* adds every title, brand and category name of the metadata file; returns the count or -1 */
static long add_meta(dm_strtab *texts, const char *path, long *n_titles)
{
    meta_texts m = {texts, 0, 0};
    int rc = tl_each_json_line(path, 1, add_record, &m);
    *n_titles = m.n_titles;
    return rc ? -1 : m.n;
}

int main(void)
{
    const char *build = getenv("DM_BUILD"), *tmp = getenv("DM_TMP"), *data = getenv("DM_DATA");
    if (!build || !tmp) {
        printf("SKIP: DM_BUILD / DM_TMP not set (run through tests/run.sh)\n");
        return 77;
    }
    char mod[4096], cmd[16384];
    snprintf(mod, sizeof mod, "%s/npm/node_modules/gpt-3-encoder", build);
    snprintf(cmd, sizeof cmd, "%s/Encoder.js", mod);
    if (access(cmd, R_OK) != 0) {
        snprintf(cmd, sizeof cmd,
                 "timeout 300 npm install --prefix '%s/npm' --no-audit --no-fund --loglevel=error gpt-3-encoder >'%s/npm.log' 2>&1",
                 build, tmp);
        if (system(cmd) != 0) {
            printf("SKIP: npm cannot fetch gpt-3-encoder from the registry (see %s/npm.log)\n", tmp);
            return 77;
        }
    }
    if (system("node --version >/dev/null 2>&1") != 0) {
        printf("SKIP: node is not installed\n");
        return 77;
    }
    bpe_tokenizer t;
    char vp[4200], mp[4200];
    snprintf(vp, sizeof vp, "%s/encoder.json", mod);
    snprintf(mp, sizeof mp, "%s/vocab.bpe", mod);
    if (bpe_load(&t, vp, mp)) {
        dm_error_print("test_bpe_parity");
        return 1;
    }
    CHECK(t.n_vocab == 50257 && t.n_merges == 50000 && t.eot == 50256, "gpt-2 vocabulary: %d tokens, %d merges, eot %d",
          t.n_vocab, t.n_merges, t.eot);

    dm_strtab texts = {0};
    size_t n_hand = sizeof hand / sizeof hand[0];
    for (size_t i = 0; i < n_hand; i++) dm_strtab_add(&texts, hand[i], strlen(hand[i]));
    dm_strtab_add(&texts, "nul\0inside", 10);
    n_hand++;
    add_random(&texts, 3000);
    n_hand += 3000;
    long n_meta = 0, n_titles = 0;
    char meta[4200];
    if (tl_beauty_meta(meta, sizeof meta)) {
        n_meta = add_meta(&texts, meta, &n_titles);
        CHECK(n_meta > 0, "cannot read %s", meta);
    } else {
        printf("  note: DM_DATA absent: the Amazon Beauty part is skipped, the hand corpus still runs\n");
    }

    dm_buf in = {0};
    tl_length_records(&in, &texts);
    char ip[4200], op[4200];
    snprintf(ip, sizeof ip, "%s/bpe_parity_in.bin", tmp);
    snprintf(op, sizeof op, "%s/bpe_parity_out.bin", tmp);
    FILE *f = fopen(ip, "wb");
    CHECK(f && fwrite(in.data, 1, in.len, f) == in.len, "cannot write %s", ip);
    if (f) fclose(f);
    snprintf(cmd, sizeof cmd, "node tests/reference/gen_bpe_ref.js '%s' '%s' '%s'", mod, ip, op);
    if (system(cmd) != 0) {
        printf("FAIL: the node reference failed: %s\n", cmd);
        return 1;
    }
    char *out;
    size_t olen;
    if (dm_read_file(op, &out, &olen)) {
        dm_error_print("test_bpe_parity");
        return 1;
    }
    const unsigned char *p = (const unsigned char *)out;
    long enc_ok = 0, dec_ok = 0, rt_ok = 0, rt_n = 0, shown = 0, tokens = 0, hand_ok = 0;
    bpe_ids ids = {0};
    dm_buf dec = {0};
    for (size_t i = 0; i < texts.n; i++) {
        size_t len;
        const char *s = dm_strtab_get(&texts, i, &len);
        uint32_t n = rd32(p);
        const unsigned char *rid = p + 4;
        p += 4 + 4 * (size_t)n;
        uint32_t dl = rd32(p);
        const char *rdec = (const char *)p + 4;
        p += 4 + dl;
        ids.n = 0;
        if (bpe_encode(&t, s, len, &ids)) {
            dm_error_print("test_bpe_parity");
            return 1;
        }
        int same = ids.n == n;
        for (uint32_t k = 0; same && k < n; k++) same = ids.v[k] == (int)rd32(rid + 4 * k);
        enc_ok += same;
        if (i < n_hand) hand_ok += same;
        tokens += (long)ids.n;
        if (!same && shown++ < 8) {
            printf("  mismatch on text %zu '%.*s': C", i, (int)(len > 60 ? 60 : len), s);
            for (size_t k = 0; k < ids.n && k < 12; k++) printf(" %d", ids.v[k]);
            printf(" | reference");
            for (uint32_t k = 0; k < n && k < 12; k++) printf(" %d", (int)rd32(rid + 4 * k));
            printf("\n");
        }
        /* decode the reference ids: the same bytes as the reference's decode */
        int *r = malloc((n + 1) * sizeof *r);
        for (uint32_t k = 0; k < n; k++) r[k] = (int)rd32(rid + 4 * k);
        dm_buf_reset(&dec);
        int ok = bpe_decode(&t, r, n, &dec) == DM_OK && dec.len == dl && (dl == 0 || !memcmp(dec.data, rdec, dl));
        dec_ok += ok;
        free(r);
        if (valid_utf8(s, len)) {
            rt_n++;
            dm_buf_reset(&dec);
            bpe_decode(&t, ids.v, ids.n, &dec);
            rt_ok += dec.len == len && (len == 0 || !memcmp(dec.data, s, len));
        }
    }
    CHECK((size_t)((const char *)p - out) == olen, "reference output has %zu trailing bytes", olen - (size_t)((const char *)p - out));
    printf("  encode parity: %ld / %zu texts identical (%zu hand-made and random: %ld; %ld Beauty titles, brands and categories from %ld titles), %ld tokens\n",
           enc_ok, texts.n, n_hand, hand_ok, n_meta, n_titles, tokens);
    printf("  decode parity: %ld / %zu; round trip decode(encode(x)) == x: %ld / %ld valid UTF-8 texts\n", dec_ok, texts.n,
           rt_ok, rt_n);
    CHECK(enc_ok == (long)texts.n, "%ld texts encode differently", (long)texts.n - enc_ok);
    CHECK(dec_ok == (long)texts.n, "%ld decodes differ", (long)texts.n - dec_ok);
    CHECK(rt_ok == rt_n, "%ld round trips differ", rt_n - rt_ok);
    if (data && *data) CHECK(n_titles >= 12000, "only %ld titles read", n_titles);

    free(out);
    bpe_ids_free(&ids);
    dm_buf_free(&dec);
    dm_buf_free(&in);
    dm_strtab_free(&texts);
    bpe_free(&t);
    return tap_done("test_bpe_parity");
}
