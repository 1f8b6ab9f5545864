/* config.h: every setting of dynmm, typed and range-checked, from libconfig files and --set.
 *
 * The key table (src/config/keys/<group>.def, one X-macro line per key) is the single source of
 * truth: defaults are set in code from it, a file overrides them, then command-line assignments
 * (`--set group.key=value`) override the file. Unknown keys are errors that name the key and the
 * closest valid one; wrong types and out-of-range values are errors naming file:line. A load does
 * not stop at the first bad setting: every one of a file (and, with dm_cfg_load_all, of every file
 * and every --set) is reported in one error, each with its file:line or --set and what was expected. The
 * reference config (configs/reference.cfg) is generated from the table (dynmm config --reference)
 * and a test keeps it identical.
 *
 * The resolved config serialises canonically (keys sorted, shortest round-trip numbers) so it can
 * be stored in every output file, read back, and hashed: a stage's hash covers only the groups it
 * depends on.
 *
 * Accessors take the full key name and assert that it exists in the table (a typo in code is a
 * bug, not a user error). The dm_cfg owns all its strings.
 */
#ifndef DM_CONFIG_H
#define DM_CONFIG_H

#include "../core/buf.h"

#include <stddef.h>

typedef enum {
    DM_KT_INT,
    DM_KT_FLOAT,
    DM_KT_BOOL,
    DM_KT_STR,
    DM_KT_ENUM,   /* a string from `choices` ("a|b|c") */
    DM_KT_INTS,   /* list of integers, each within [min, max] */
    DM_KT_FLOATS, /* list of floats, each within [min, max] */
    DM_KT_STRS    /* list of strings */
} dm_ktype;

typedef struct {
    const char *name;    /* "sasrec.hidden" */
    dm_ktype type;
    const char *def;     /* default in --set syntax; lists comma-separated */
    double min, max;     /* numeric range (inclusive) */
    const char *choices; /* DM_KT_ENUM: "a|b|c" */
    const char *doc;     /* one or two sentences */
} dm_key;

typedef struct {
    long long i;  /* INT, BOOL */
    double f;     /* FLOAT */
    char *s;      /* STR, ENUM */
    size_t n;     /* list length */
    long long *il;
    double *fl;
    char **sl;
    int origin;   /* 0 default, 1 file, 2 command line */
    char *file;   /* where it was set (file or "--set") */
    int line;
} dm_cval;

typedef struct {
    dm_cval *v;   /* (nkeys), same order as dm_keys() */
    size_t nkeys;
    unsigned char *seen; /* (nkeys) 1 = read by an accessor since dm_cfg_seen_clear() */
} dm_cfg;

const dm_key *dm_keys(size_t *n); /* sorted by name */
int dm_key_index(const char *name); /* -1 if unknown */

int dm_cfg_init(dm_cfg *c); /* all defaults */
void dm_cfg_free(dm_cfg *c);
int dm_cfg_copy(dm_cfg *dst, const dm_cfg *src);
/* One file; every bad key or value of it in one error (a single one as it is). */
int dm_cfg_load_file(dm_cfg *c, const char *path);
/* The string value of one key ("split.protocol") of libconfig text, without checking the rest: for
 * configs stored in files by other versions, whose other keys may no longer exist. DM_EINPUT when
 * the text does not parse or holds no such string. */
int dm_cfg_text_str(const char *text, const char *key, char *out, size_t cap);
/* Parses libconfig text (e.g. a resolved config read back from an HDF5 attribute). */
int dm_cfg_load_string(dm_cfg *c, const char *text, const char *name);
/* "group.key=value" as on the command line. */
int dm_cfg_set(dm_cfg *c, const char *assignment);
/* Every file in order, then every assignment: all are applied, and every bad key or value of all of
 * them is collected into one error ("3 errors in the configuration:" and one line each, with its
 * hint; a single error as it is). */
int dm_cfg_load_all(dm_cfg *c, const char *const *files, size_t nfiles, const char *const *sets, size_t nsets);

long long dm_cfg_int(const dm_cfg *c, const char *key);
double dm_cfg_float(const dm_cfg *c, const char *key);
int dm_cfg_bool(const dm_cfg *c, const char *key);
const char *dm_cfg_str(const dm_cfg *c, const char *key);
size_t dm_cfg_len(const dm_cfg *c, const char *key);
long long dm_cfg_int_at(const dm_cfg *c, const char *key, size_t i);
double dm_cfg_float_at(const dm_cfg *c, const char *key, size_t i);
const char *dm_cfg_str_at(const dm_cfg *c, const char *key, size_t i);
/* "file:line" where a key was set, "default" or "--set"; for error messages about values. */
const char *dm_cfg_where(const dm_cfg *c, const char *key, char *buf, size_t cap);

/* Which keys a piece of code reads. Every accessor (dm_cfg_int, dm_cfg_len, ...) marks its key as
 * seen, even through a const dm_cfg; the stage runner clears the marks before a stage and afterwards
 * asks for the keys read outside the groups the stage declares (its hash covers only those), so an
 * undeclared dependency cannot go unnoticed. `groups` as in dm_cfg_serialize; keys under any of
 * `exempt` (may be NULL) are not reported. Returns the number of such keys; their names, comma-
 * separated, go to out when out is not NULL. */
void dm_cfg_seen_clear(const dm_cfg *c);
size_t dm_cfg_seen_outside(const dm_cfg *c, const char *const *groups, const char *const *exempt, dm_buf *out);

/* 1 if key `name` belongs to one of `groups` (as dm_cfg_serialize selects them). */
int dm_cfg_in_groups(const char *name, const char *const *groups);

/* Canonical libconfig text of the groups listed (NULL-terminated; NULL = all groups). */
int dm_cfg_serialize(const dm_cfg *c, const char *const *groups, dm_buf *out);
/* sha256 hex of dm_cfg_serialize(c, groups). */
int dm_cfg_hash(const dm_cfg *c, const char *const *groups, char out[65]);
/* The documented reference config: every key, its doc, type, range and default. */
int dm_cfg_reference(dm_buf *out);

#endif
