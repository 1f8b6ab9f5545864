/* test_bpe.c: the tokenizer without the network: the committed Unicode table equals the
 * generator's output, character classes, pre-tokenisation known answers (from JavaScript's
 * matchAll of GPT-2's pattern), WHATWG replacement of invalid UTF-8, the BPE trainer (known
 * merges, save/load round trip in the GPT-2 format), and refused vocabulary/merges files. */
#include "../../src/core/buf.h"
#include "../../src/core/err.h"
#include "../../src/core/lines.h"
#include "../../src/lm/bpe.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pieces of text joined by '|' */
static void pieces(const char *text, size_t len, dm_buf *out)
{
    dm_buf clean = {0};
    bpe_ids ends = {0};
    dm_buf_reset(out);
    if (bpe_pretokenize(text, len, &clean, &ends)) return;
    size_t st = 0;
    for (size_t i = 0; i < ends.n; i++) {
        if (i) dm_buf_addc(out, '|');
        dm_buf_add(out, clean.data + st, (size_t)ends.v[i] - st);
        st = (size_t)ends.v[i];
    }
    dm_buf_free(&clean);
    bpe_ids_free(&ends);
}

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

int main(void)
{
    const char *ref = getenv("DM_REF_DIR"), *tmp = getenv("DM_TMP");
    if (!ref || !tmp) {
        printf("SKIP: DM_REF_DIR / DM_TMP not set (run through tests/run.sh)\n");
        return 77;
    }
    /* 1. the committed table is what the generator writes */
    {
        char p[4200];
        snprintf(p, sizeof p, "%s/bpe/bpe_unicode.c", ref);
        char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        int ra = dm_read_file(p, &a, &la), rb = dm_read_file("src/lm/bpe_unicode.c", &b, &lb);
        CHECK(ra == DM_OK && rb == DM_OK, "cannot read the generated or the committed table");
        CHECK(ra == DM_OK && rb == DM_OK && la == lb && !memcmp(a, b, la),
              "src/lm/bpe_unicode.c differs from tests/reference/gen_bpe_unicode.py's output; regenerate it with "
              "/usr/bin/python3 tests/reference/gen_bpe_unicode.py --write src/lm/bpe_unicode.c");
        printf("  unicode table (%s, %zu ranges) matches its generator: %s\n", bpe_unicode_version, bpe_unicode_nranges,
               la == lb && a && b && !memcmp(a, b, la) ? "yes" : "no");
        free(a);
        free(b);
    }
    /* 2. classes */
    struct { uint32_t cp; int cls; } cl[] = {
        {'a', BPE_LETTER}, {'Z', BPE_LETTER}, {0xe9, BPE_LETTER}, {0x4e2d, BPE_LETTER}, {0xac00, BPE_LETTER},
        {0x01c5, BPE_LETTER}, {0x02b0, BPE_LETTER}, {'7', BPE_NUMBER}, {0x663, BPE_NUMBER}, {0x216b, BPE_NUMBER},
        {0xbd, BPE_NUMBER}, {0xb2, BPE_NUMBER}, {' ', BPE_SPACE}, {'\t', BPE_SPACE}, {0x0b, BPE_SPACE}, {0xa0, BPE_SPACE},
        {0x1680, BPE_SPACE}, {0x3000, BPE_SPACE}, {0x2028, BPE_SPACE}, {0xfeff, BPE_SPACE}, {0x85, BPE_OTHER},
        {0x1c, BPE_OTHER}, {0x200b, BPE_OTHER}, {0x301, BPE_OTHER}, {0x1f600, BPE_OTHER}, {'\'', BPE_OTHER},
        {0xfffd, BPE_OTHER}, {0x10ffff, BPE_OTHER}};
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++)
        CHECK(bpe_char_class(cl[i].cp) == cl[i].cls, "class of U+%04X is %d, expected %d", cl[i].cp,
              bpe_char_class(cl[i].cp), cl[i].cls);

    /* 3. pre-tokenisation (expected pieces from JavaScript's matchAll) */
    struct { const char *in; const char *want; } pt[] = {
        {"Hello world's  best\n\n  x!!", "Hello| world|'s| | best|\n\n | x|!!"},
        {"I'll  \tgo 123abc", "I|'ll|  |\t|go| 123|abc"},
        {"  a\xe3\x80\x80" "b\xc2\xa0 c   ", " | a|\xe3\x80\x80|b|\xc2\xa0| c|   "},
        {"don''t ...?", "don|''|t| ...?"},
        {"", ""},
        {"ab\xff" "cd", "ab|\xef\xbf\xbd|cd"},              /* one invalid byte -> U+FFFD */
        {"\xe2\x82" "x", "\xef\xbf\xbd|x"},                 /* truncated sequence -> one U+FFFD */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate: maximal subparts */
        {"\xf0\x9f\x98" "\xf0\x9f\x98\x80", "\xef\xbf\xbd\xf0\x9f\x98\x80"},
    };
    dm_buf got = {0};
    for (size_t i = 0; i < sizeof pt / sizeof pt[0]; i++) {
        pieces(pt[i].in, strlen(pt[i].in), &got);
        CHECK(got.len == strlen(pt[i].want) && (got.len == 0 || !memcmp(got.data, pt[i].want, got.len)),
              "pieces of case %zu: '%s', expected '%s'", i, got.data ? got.data : "", pt[i].want);
    }

    /* 4. the trainer: known first merges, the GPT-2 format round trip */
    {
        dm_strtab corpus = {0};
        const char *docs[] = {"aaab aaab aaab", "the cat sat on the mat", "the hat", "low lower lowest", "newer wider",
                              "\xe4\xb8\xad\xe6\x96\x87 \xe4\xb8\xad\xe6\x96\x87", "it's the cat's"};
        for (int rep = 0; rep < 3; rep++)
            for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) dm_strtab_add(&corpus, docs[i], strlen(docs[i]));
        bpe_tokenizer t, u;
        static const char *const specials[] = {"<|endoftext|>", NULL};
        CHECK(bpe_train(&t, &corpus, 40, specials) == DM_OK, "train");
        /* (a, a) occurs twice in each of the 9 copies of "aaab" / " aaab": the most frequent pair */
        size_t la, lb;
        const char *a0 = dm_strtab_get(&t.sym.keys, (size_t)t.merge_a[0], &la);
        const char *b0 = dm_strtab_get(&t.sym.keys, (size_t)t.merge_b[0], &lb);
        CHECK(la == 1 && lb == 1 && a0[0] == 'a' && b0[0] == 'a', "first merge is '%.*s' '%.*s', expected 'a' 'a'", (int)la, a0,
              (int)lb, b0);
        CHECK(t.n_merges == 40, "learned %d merges", t.n_merges);
        CHECK(t.eot == t.n_vocab - 1, "eot id %d of %d", t.eot, t.n_vocab);
        CHECK(t.n_vocab <= 256 + 40 + 1, "vocabulary of %d", t.n_vocab);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/bpe_trained", tmp);
        CHECK(bpe_save(&t, dir) == DM_OK, "save");
        CHECK(bpe_load_dir(&u, dir) == DM_OK, "load the saved tokenizer");
        if (dm_error_code()) dm_error_print("test_bpe");
        CHECK(u.n_vocab == t.n_vocab && u.n_merges == t.n_merges && u.eot == t.eot, "reloaded sizes differ");
        const char *probe[] = {"the cat sat on the mat", "aaab aaaab", "lowest newer", "unseen words ok?", "\xe4\xb8\xad\xe6\x96\x87!",
                               "it's"};
        bpe_ids x = {0}, y = {0};
        dm_buf dec = {0};
        for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
            x.n = y.n = 0;
            bpe_encode(&t, probe[i], strlen(probe[i]), &x);
            bpe_encode(&u, probe[i], strlen(probe[i]), &y);
            int same = x.n == y.n && !memcmp(x.v, y.v, x.n * sizeof *x.v);
            CHECK(same, "'%s' encodes differently after save/load", probe[i]);
            dm_buf_reset(&dec);
            bpe_decode(&u, y.v, y.n, &dec);
            CHECK(dec.len == strlen(probe[i]) && !memcmp(dec.data, probe[i], dec.len), "round trip of '%s'", probe[i]);
        }
        x.n = 0;
        bpe_encode(&t, "the cat", 7, &x);
        printf("  trained %d merges, vocabulary %d; 'the cat' -> %zu tokens\n", t.n_merges, t.n_vocab, x.n);
        CHECK(x.n == 2, "'the cat' should be two learned tokens, got %zu", x.n);
        /* no merges: one token per byte */
        bpe_tokenizer z;
        CHECK(bpe_train(&z, &corpus, 0, NULL) == DM_OK, "train 0");
        x.n = 0;
        bpe_encode(&z, "abc d", 5, &x);
        CHECK(z.n_vocab == 256 && x.n == 5, "byte-only tokenizer: vocab %d, %zu tokens", z.n_vocab, x.n);
        bpe_free(&z);
        bpe_ids_free(&x);
        bpe_ids_free(&y);
        dm_buf_free(&dec);
        bpe_free(&t);
        bpe_free(&u);
        dm_strtab_free(&corpus);
    }

    /* 5. refused files */
    {
        char v[4200], m[4200];
        snprintf(v, sizeof v, "%s/bpe_bad_vocab.json", tmp);
        snprintf(m, sizeof m, "%s/bpe_bad_merges.txt", tmp);
        bpe_tokenizer t;
        write_file(v, "{\"a\": 0, \"b\": 5}");
        write_file(m, "#version: 0.2\n");
        dm_error_clear();
        CHECK(bpe_load(&t, v, m) != DM_OK && strstr(dm_error_message(), "token 'b' has id 5, expected an integer in [0, 2)"),
              "sparse ids: %s", dm_error_message());
        write_file(v, "{\"a\": 0, \"b\": 1}");
        dm_error_clear();
        CHECK(bpe_load(&t, v, m) != DM_OK && strstr(dm_error_message(), "has no token for byte 0x00"),
              "missing bytes: %s", dm_error_message());
        write_file(m, "#version: 0.2\na b\nabc\n");
        dm_error_clear();
        CHECK(bpe_load(&t, v, m) != DM_OK && strstr(dm_error_message(), "bpe_bad_merges.txt':3: expected two tokens"),
              "bad merges line: %s", dm_error_message());
        dm_error_clear();
        CHECK(bpe_load(&t, v, "/nonexistent/merges.txt") != DM_OK && strstr(dm_error_message(), "/nonexistent/merges.txt"),
              "missing file: %s", dm_error_message());
        printf("  refused: %s\n", dm_error_message());
    }
    dm_buf_free(&got);
    return tap_done("test_bpe");
}
