/* safetensors.h: reader and writer of the safetensors tensor file format (Hugging Face).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [a, b], "data_offsets": [begin, end]}, ...}
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header.
 *
 * safetensors_open() reads and checks the header only: every tensor's byte range must match its
 * dtype and shape and lie inside the file, so a truncated file is refused at open time with the
 * file and tensor named. Tensor data is read on demand with safetensors_read_f32(), which converts
 * F16 and BF16 to float. The writer writes F32 tensors to `<path>.part` and renames it onto
 * `path`, so a crash never leaves a half-written checkpoint under the real name.
 */
#ifndef DM_SAFETENSORS_H
#define DM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { SAFETENSORS_F32, SAFETENSORS_F16, SAFETENSORS_BF16, SAFETENSORS_OTHER };
#define SAFETENSORS_MAX_DIM 8

typedef struct {
    char *name;        /* owned */
    int dtype;         /* SAFETENSORS_F32 ... SAFETENSORS_OTHER */
    char dtype_name[16];
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIM];
    size_t numel;
    uint64_t begin, end; /* byte range relative to the data section */
} safetensors_tensor;

typedef struct {
    char *path;           /* owned copy */
    FILE *f;
    uint64_t data_start;  /* 8 + header length */
    uint64_t file_size;
    safetensors_tensor *t; /* (n) in header order */
    size_t n;
} safetensors_file;

/* Opens `path` and validates its header (see above). On error nothing stays open. */
int safetensors_open(safetensors_file *sf, const char *path);
/* The tensor called `name`, or NULL. */
const safetensors_tensor *safetensors_find(const safetensors_file *sf, const char *name);
/* Reads tensor t into out[0..t->numel) as float32 (F32, F16 and BF16 are accepted). */
int safetensors_read_f32(safetensors_file *sf, const safetensors_tensor *t, float *out);
void safetensors_close(safetensors_file *sf);

/* Half-precision conversions (exact: every f16/bf16 value is a float). */
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t h);
uint16_t safetensors_f32_to_f16(float f);  /* round to nearest even */
uint16_t safetensors_f32_to_bf16(float f); /* round to nearest even */

typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIM];
} safetensors_entry;

/* Writes the n entries as F32 to `path` atomically (`path`.part, fsync, rename). `metadata` is a
 * NULL-terminated list of key, value string pairs stored in "__metadata__" (may be NULL). */
int safetensors_write_f32(const char *path, const safetensors_entry *e, size_t n,
                          const char *const *metadata);

/* Writes len bytes to `path` atomically the same way (used for config.json, vocab.json, ...). */
int safetensors_write_file_atomic(const char *path, const void *data, size_t len);

#endif
