/* sptok.h: the SentencePiece-style BPE tokenizer of Llama 1/2-family models, read from a Hugging Face
 * tokenizer.json (LlamaTokenizerFast) or from llama2.c's tokenizer.bin.
 *
 * tokenizer.json: model.type "BPE" with model.vocab {piece: id} and model.merges ("a b" strings or
 * [a, b] pairs, in rank order), model.byte_fallback (characters outside the vocabulary become
 * their UTF-8 bytes as the tokens <0x00> .. <0xFF>), model.unk_token and fuse_unk; added_tokens
 * (<unk>, <s>, </s>, ...); the space handling of either generation of the format: the normalizer
 * Sequence [Prepend "▁", Replace " " -> "▁"], or the Metaspace pre-tokenizer (replacement "▁",
 * prepend_scheme always / first / never, split); the decoder's leading-space strip (Strip or
 * Metaspace); the post_processor's TemplateProcessing (which special tokens enclose a sequence).
 * Anything else (byte-level BPE as in Llama 3 and GPT-2, Unigram, other normalizers, dropout,
 * subword prefixes) is refused with the key named.
 *
 * tokenizer.bin (llama2.c): int32 max_token_length, then per token float32 score, int32 length and
 * the bytes, with the spaces of the pieces written as ' ' instead of "▁" (they are turned back on
 * load). Merges are by score: the adjacent pair whose concatenation is in the vocabulary with the
 * highest score merges first (llama2.c's run.c encode); the text gets a leading "▁" (SentencePiece's
 * add_dummy_prefix) and <s> (id 1) is the beginning-of-sequence token.
 *
 * Encoding (HF tokenizers' semantics): with SPTOK_PARSE_SPECIAL (what HF's encode does by default)
 * the text is first split around added tokens written literally in it (longest match first), which
 * become their ids; every other
 * piece is normalised (spaces to "▁", the "▁" prefix as configured) and split into characters;
 * a character in the vocabulary is its token, else its bytes' <0xNN> tokens (byte_fallback), else
 * <unk> (consecutive ones fused with fuse_unk); then merges apply, always the best-ranked adjacent
 * pair, the leftmost of equals, until none applies (a heap over the pairs, so long texts stay
 * O(n log n)). Invalid UTF-8 bytes count as one character each (and so fall back to their byte
 * token). SPTOK_ADD_SPECIAL adds the template's special tokens (e.g. <s> before the text).
 *
 * Decoding: pieces with "▁" turned into spaces, runs of byte tokens turned back into bytes (a run
 * that is not valid UTF-8 gives one U+FFFD per byte, as HF's ByteFallback decoder), special tokens
 * as their text unless SPTOK_SKIP_SPECIAL, then the one leading space the decoder strips.
 *
 * A loaded tokenizer is read-only: encode and decode may run from several threads at once.
 */
#ifndef DM_SPTOK_H
#define DM_SPTOK_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "bpe.h" /* bpe_ids */

enum { SPTOK_PREPEND_NEVER = 0, SPTOK_PREPEND_ALWAYS = 1, SPTOK_PREPEND_FIRST = 2 };

typedef struct {
    int n_vocab;
    dm_strmap tok;        /* piece bytes ("▁" for spaces) <-> token id (map ids are token ids) */
    unsigned char *special; /* (n_vocab) 1 for added special tokens (skipped by SPTOK_SKIP_SPECIAL) */
    int *added;           /* (n_added) ids of the added tokens (matched in text by PARSE_SPECIAL) */
    int n_added;
    int byte_id[256];     /* id of <0xNN>, or -1 */
    int *byte_of;         /* (n_vocab) byte of a <0xNN> token, or -1 */
    int byte_fallback;
    int unk;              /* id of the unknown token, or -1 */
    int fuse_unk;
    int prepend;          /* SPTOK_PREPEND_* */
    int meta_prepend;     /* the prefix comes from Metaspace: not added when the text starts with one */
    int split_words;      /* Metaspace split: merges never cross a "▁" word start */
    int strip_leading;    /* spaces the decoder strips from the start of the text (0 or 1) */
    /* merges: (a, b) -> rank and result, open addressing on a << 32 | b */
    uint64_t *mkey;       /* (mcap) or UINT64_MAX when empty */
    int32_t *mrank, *mres;
    size_t mcap;
    int n_merges;
    float *score;         /* (n_vocab) llama2.c scores: merges by score when non-NULL */
    int pre[4], n_pre;    /* template: special ids before the text */
    int post[4], n_post;  /* and after it */
    int bos, eos;         /* ids of <s> and </s>, or -1 */
} sptok;

/* Loads a tokenizer.json (path to the file). */
int sptok_load_json(sptok *t, const char *path);
/* Loads llama2.c's tokenizer.bin for a model of vocab_size tokens. */
int sptok_load_llama2c(sptok *t, const char *path, int vocab_size);
void sptok_free(sptok *t);

enum {
    SPTOK_ADD_SPECIAL = 1,   /* encode: add the template's special tokens (<s> ...) */
    SPTOK_PARSE_SPECIAL = 2, /* encode: added tokens written in the text become their ids */
    SPTOK_SKIP_SPECIAL = 4,  /* decode: special tokens produce no text */
    SPTOK_CONTINUE = 8,      /* the text continues a sequence: encode adds no "▁" prefix (a leading
                              * space is written as text, " a" -> "▁a"); decode keeps the leading
                              * space the decoder would strip. For pieces tokenized on their own and
                              * joined, as the LM runtime's prompts and templates are (lm.h). */
};
/* Appends the ids of text[0..len) to out. */
int sptok_encode(const sptok *t, const char *text, size_t len, int flags, bpe_ids *out);
/* Appends the text of ids to out (an id outside the vocabulary is an error). */
int sptok_decode(const sptok *t, const int *ids, size_t n, int flags, dm_buf *out);
/* Id of a piece given as raw bytes (spaces as "▁"), or -1. */
int sptok_token_id(const sptok *t, const char *piece, size_t len);

#endif
