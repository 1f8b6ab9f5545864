/* ckpt.h: a stage's checkpoint file and the stop signals that ask for one.
 *
 * A checkpoint is one HDF5 file of run.dir (<run.dir>/<name>, e.g. ckpt_sasrec.h5) carrying a root
 * format name and the stage hash it was written under (h5_write_provenance). Writing is atomic:
 * ckpt_create() makes <path>.part and ckpt_commit() renames it over the previous checkpoint only
 * when every rank wrote its part, so a run killed while writing keeps the last complete checkpoint.
 * Reading is hash-checked: ckpt_open() opens the file only when run.resume is on and the file has
 * this format and stage hash (a checkpoint of other settings is a warning and a fresh start).
 *
 *   ckpt c;
 *   ckpt_init(&c, ctx, cfg, "ckpt_lm.h5", "dynmm-lm-checkpoint", "lm", hash);
 *   ckpt_open(&c, &f, &found);            // found: read the state from f, then h5_close(&f)
 *   ckpt_signals_install();
 *   ... every few steps: ckpt_stop_requested(ctx, &stop); on stop:
 *       ckpt_create(&c, &f); write the state; rc = ckpt_commit(&c, &f, rc);
 *       return ckpt_interrupted(&c, "lm", "at step %ld", step);
 *   ckpt_signals_restore();
 *   ckpt_remove(&c);                      // the stage completed
 *
 * Signals: between ckpt_signals_install() and ckpt_signals_restore(), SIGTERM and SIGUSR1 (what
 * Slurm sends before a time limit, `--signal`) only set a flag; the previous handlers come back at
 * restore. Installs nest (only the outermost one installs and clears the flag). The flag is
 * process-wide; ckpt_stop_requested() agrees on it over the ranks, so all stop at the same step.
 *
 * Every function taking a ckpt is collective over c->ctx and returns the same code on every rank.
 */
#ifndef DM_CKPT_H
#define DM_CKPT_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/config/config.h"

typedef struct {
    par_ctx *ctx;
    const dm_cfg *cfg;  /* recorded in the file; run.dir and run.resume come from it */
    const char *format; /* the root format name ("dynmm-trainer-checkpoint") */
    const char *stage;  /* recorded as the file's stage */
    const char *hash;   /* the stage hash the checkpoint belongs to */
    char path[4096];    /* <run.dir>/<name> */
} ckpt;

/* Sets c up for <run.dir>/<name>; the strings must outlive c. DM_EIO when the path does not fit. */
int ckpt_init(ckpt *c, par_ctx *ctx, const dm_cfg *cfg, const char *name, const char *format, const char *stage, const char *hash);

/* Opens the checkpoint to resume from: *found = 1 and f open for reading (the caller reads and
 * h5_closes it) when run.resume is on and c->path holds a checkpoint of this format and stage hash;
 * otherwise *found = 0 and f is not open. */
int ckpt_open(const ckpt *c, h5file *f, int *found);
/* Creates <path>.part with the provenance (format, stage, config, stage hash) written; the caller
 * writes its state into f, then calls ckpt_commit. */
int ckpt_create(const ckpt *c, h5file *f);
/* Agrees on rc (the caller's writes) over the ranks; 0 everywhere: renames <path>.part to path,
 * otherwise removes it and returns the error. */
int ckpt_commit(const ckpt *c, h5file *f, int rc);
/* Removes the checkpoint (rank 0), once the stage that wrote it has completed. */
void ckpt_remove(const ckpt *c);

/* SIGTERM/SIGUSR1 set the stop flag until ckpt_signals_restore (see above). */
void ckpt_signals_install(void);
void ckpt_signals_restore(void);
/* *stop = 1 on every rank when any rank received a stop signal since the install. Collective. */
int ckpt_stop_requested(par_ctx *ctx, int *stop);
/* The error a run returns after writing its checkpoint at a stop signal: DM_EIO, the message
 * "<what>: interrupted by a signal <where>; checkpoint written to <path>" (where from where_fmt,
 * e.g. "at step %ld") and a hint to rerun. */
int ckpt_interrupted(const ckpt *c, const char *what, const char *where_fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
