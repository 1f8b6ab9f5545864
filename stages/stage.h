/* stages.h: the pipeline's stages, one contract for all of them, and the runner.
 *
 * A stage declares the files of run.dir it reads (its inputs), the file it writes, and the config
 * groups it reads. Its *stage hash* is the sha256 of
 *     those groups (canonical text), run.seed, the stage name, and every input's own stage hash
 * (the dataset stage hashes its source files instead of inputs). So a stage is current exactly when
 * its output exists with that hash: a change anywhere upstream - a setting, a retrained model, a new
 * dataset - changes the hash of every stage that reads it, directly or through another file.
 * `dynmm run` skips current stages (unless run.force); `dynmm <stage>` always runs.
 *
 * Identity: every output records the stage hashes of the inputs it was made from (root attribute
 * `inputs`, "cf.h5=<hash>;dataset.h5=<hash>") and of the dataset it derives from (`dataset_hash`).
 * Before a stage runs, stage_begin() checks that its inputs belong together: all made from one
 * dataset, and where one input was made from another (align.h5 from cf.h5) that it was made from
 * the very file present. A mismatched set (files copied from two runs, an upstream stage rerun
 * without its dependents) is an error naming the files, never silently wrong numbers.
 *
 * Key tracking: while a stage runs, every config key it reads is recorded (dm_cfg_seen_*); a key
 * read outside its declared groups (and the run-wide keys that cannot change results: run.dir,
 * run.threads, run.verbose, run.resume, run.force, run.stages, io.*) means the hash misses a
 * dependency. That is a warning, and an error under DM_STRICT_KEYS=1 (the test suite sets it).
 *
 * Lock: one `dynmm run` or stage command at a time per run.dir (an fcntl lock on
 * <run.dir>/.dynmm.lock, held by rank 0; the kernel releases it when the process dies, so a killed
 * job never leaves a stale lock). A second command on the same run.dir stops at once with a
 * message naming the holder.
 *
 * A stage is one file, stages/stage_<name>.c, that defines its stage_def (name, files, groups, checks,
 * body, help); this file's registry lists them. A stage body is `int fn(stage_run *sr)`: sr carries the context, the config, the paths of its
 * inputs and output and its hash. It writes its output through stage_output_create() and
 * stage_output_finish(), which add provenance and identity and commit or discard the file on all
 * ranks together.
 */
#ifndef DM_STAGES_H
#define DM_STAGES_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"

#define STAGE_MAX_IN 6

struct stage_run;

/* A stage's definition names only the members it has: the others are NULL (none). */
typedef struct stage_def {
    const char *name;             /* as in run.stages, and the command: `dynmm <name>` */
    const char *output;           /* file in run.dir */
    const char *inputs[STAGE_MAX_IN + 1]; /* files of run.dir it reads, NULL-terminated */
    const char *const *groups;    /* config groups (or single keys) it reads */
    /* list key naming registered models (stages/models.h) whose config groups it also reads:
     * "cf.models" (train-cf), "eval.models" (eval); NULL = none */
    const char *models_key;
    /* Further groups (or single keys) read only under some settings, given the config; they are
     * hashed only then, so a setting that does not matter to this config does not make its output
     * stale (NULL = none). lm: the split and the prompt's words when lm.corpus has "histories". */
    const char *const *(*groups_if)(const dm_cfg *cfg);
    /* 1 if this config reads `input` (NULL = every input is read); an input not read is neither
     * required nor hashed. */
    int (*uses)(const dm_cfg *cfg, const char *input);
    /* Checks of the config that need no file (NULL = none); `dynmm run` calls the check of every
     * listed stage before it runs the first, so a bad setting of a late stage stops the run at once. */
    int (*check)(const dm_cfg *cfg);
    int (*run)(struct stage_run *sr);
    /* The command's own arguments (positional, e.g. --resume) applied to the config; NULL = none
     * accepted. */
    int (*prepare)(dm_cfg *cfg, const char *const *args, int nargs);
    const char *summary;          /* one line for `dynmm --help` */
    const char *usage;            /* `dynmm <name> --help` */
    /* Hashed with the settings when set: changed when the output gains contents that a later stage
     * requires, so that an output of an earlier version is not current and is made again (NULL =
     * none). */
    const char *revision;
} stage_def;

typedef struct stage_run {
    par_ctx *ctx;
    const dm_cfg *cfg;
    const stage_def *def;
    char hash[65];               /* this stage's hash */
    char dataset_hash[65];       /* the dataset every input derives from ("" for the dataset stage) */
    char out[4096];              /* output path */
    int nin;                     /* inputs this config reads */
    struct {
        const char *file;        /* "cf.h5" */
        char path[4096];
        char hash[65];           /* its stage hash */
    } in[STAGE_MAX_IN];
    double t0;                   /* wall time at stage_begin */
} stage_run;

/* The registry: every stage in pipeline order (stage_at(i) for i < stage_count()). */
int stage_count(void);
const stage_def *stage_at(int i);
const stage_def *stage_find(const char *name);
/* The stage that writes `file` of run.dir ("ingest" for dataset.h5), "?" for none. */
const char *stage_maker(const char *file);
/* Names of all stages, for messages ("ingest, synth, train-cf, ..."). */
const char *stage_names(void);

/* Resolves paths, reads and cross-checks the inputs' identities, computes the hash. Collective;
 * errors agreed. */
int stage_begin(par_ctx *ctx, const dm_cfg *cfg, const stage_def *def, stage_run *sr);
/* 1 in *current if the output exists and carries sr->hash. Collective. */
int stage_is_current(stage_run *sr, int *current);
/* Runs the body with key tracking; logs the keys read outside the declared groups. */
int stage_exec(stage_run *sr);
/* The path of declared input `file` ("cf.h5"); the stage must declare it (asserted). */
const char *stage_input(const stage_run *sr, const char *file);

/* Creates the output (<out>.part) with provenance, the stage hash and the identity attributes. */
int stage_output_create(stage_run *sr, const char *format, int version, h5file *f);
/* Writes the identity attributes (inputs, dataset_hash) to a file being written (used by writers
 * that create their file themselves, such as the dataset writer). */
int stage_write_identity(const stage_run *sr, h5file *f);
/* Ends the output: with rc == DM_OK on every rank, records wall_seconds and commits (renames) it;
 * otherwise discards it. Returns the agreed code. f may be unopened (f->id < 0). */
int stage_output_finish(stage_run *sr, h5file *f, int rc);

/* run.dir lock: held from stage_lock() to stage_unlock(); *held = 0 when run.dir is empty (the
 * current directory is not locked). Collective. */
typedef struct {
    int fd; /* rank 0's lock file descriptor, -1 = none */
} stage_lock_t;
int stage_lock(par_ctx *ctx, const dm_cfg *cfg, stage_lock_t *lk);
void stage_unlock(par_ctx *ctx, stage_lock_t *lk);

/* Warns about --set keys that none of defs[0..n) reads, naming the stages that would. */
void stage_warn_unread_sets(const dm_cfg *cfg, const stage_def *const *defs, int n);

/* A stage command (`dynmm eval CONFIG ...`): parse, --help, config, the stage's own arguments,
 * check, lock, begin, run. argv[0] is the stage's name. */
int stage_command(par_ctx *ctx, const stage_def *def, int argc, char **argv);

/* The stages (one file each: stages/stage_<name>.c), in pipeline order. */
extern const stage_def stage_ingest_def, stage_synth_def, stage_train_cf_def, stage_align_def, stage_pq_def, stage_lm_def,
    stage_prompt_def, stage_explain_def, stage_stream_def, stage_eval_def;
/* The dataset's config groups (dataset_io.h) */
extern const char *const ds_config_groups[];

#endif
