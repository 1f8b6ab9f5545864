/* ckpt.c: checkpoint files and stop signals, see ckpt.h. */
#include "ckpt.h"

#include "../mpi/cli.h"

#include "../src/core/err.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ckpt_init(ckpt *c, par_ctx *ctx, const dm_cfg *cfg, const char *name, const char *format, const char *stage, const char *hash)
{
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->cfg = cfg;
    c->format = format;
    c->stage = stage;
    c->hash = hash;
    return cli_run_path(ctx, cfg, name, c->path, sizeof c->path);
}

int ckpt_open(const ckpt *c, h5file *f, int *found)
{
    *found = 0;
    if (!dm_cfg_bool(c->cfg, "run.resume")) return DM_OK;
    return h5_open_checkpoint(c->ctx, c->path, c->format, c->hash, f, found);
}

int ckpt_create(const ckpt *c, h5file *f)
{
    DM_CALL(par_agree(c->ctx, h5_create(c->ctx, c->path, 0, 1 << 20, f)));
    int rc = par_agree(c->ctx, h5_write_provenance(f, c->format, 1, c->stage, c->cfg, c->hash));
    if (rc) h5_discard(f);
    return rc;
}

int ckpt_commit(const ckpt *c, h5file *f, int rc)
{
    rc = par_agree(c->ctx, rc);
    if (rc) {
        h5_discard(f);
        return rc;
    }
    return h5_commit(f);
}

void ckpt_remove(const ckpt *c)
{
    if (c->ctx->rank == 0) unlink(c->path);
}

/* ---- stop signals ---- */

static volatile sig_atomic_t g_stop;
static int g_depth;
static struct sigaction g_old_term, g_old_usr1;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void ckpt_signals_install(void)
{
    if (g_depth++) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_stop = 0;
    sigaction(SIGTERM, &sa, &g_old_term);
    sigaction(SIGUSR1, &sa, &g_old_usr1);
}

void ckpt_signals_restore(void)
{
    if (g_depth == 0 || --g_depth) return;
    sigaction(SIGTERM, &g_old_term, NULL);
    sigaction(SIGUSR1, &g_old_usr1, NULL);
}

int ckpt_stop_requested(par_ctx *ctx, int *stop)
{
    int64_t s = g_stop;
    int rc = par_allreduce_max_i64(ctx, &s, 1);
    *stop = !rc && s != 0;
    return rc;
}

int ckpt_interrupted(const ckpt *c, const char *what, const char *where_fmt, ...)
{
    char where[256];
    va_list ap;
    va_start(ap, where_fmt);
    vsnprintf(where, sizeof where, where_fmt, ap);
    va_end(ap);
    int rc = DM_ERR(DM_EIO, "%s: interrupted by a signal %s; checkpoint written to %s", what, where, c->path);
    DM_HINT("rerun the same command (run.resume = true) to continue from it");
    return rc;
}
