/* cli.c: shared command-line handling, see cli.h. */
#include "cli.h"

#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_program = "dynmm";

void cli_set_program(const char *argv0)
{
    if (argv0 && strchr(argv0, '/')) g_program = argv0;
}

const char *cli_program(void) { return g_program; }

int cli_parse(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->verbose = -1;
    DM_ALLOC(a->sets, argc + 1);
    DM_ALLOC(a->positional, argc + 1);
    DM_ALLOC(a->configs, argc + 1);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) a->help = 1;
        else if (!strcmp(s, "--set") || !strcmp(s, "-s")) {
            if (i + 1 >= argc) return DM_ERR(DM_ECONFIG, "%s needs an argument: group.key=value", s);
            a->sets[a->nsets++] = argv[++i];
        } else if (!strncmp(s, "--set=", 6)) a->sets[a->nsets++] = s + 6;
        else if (!strcmp(s, "-v")) a->verbose = 2;
        else if (!strcmp(s, "-vv")) a->verbose = 3;
        else if (!strcmp(s, "-q")) a->verbose = 0;
        else if (s[0] == '-' && s[1] == '-' && strchr(s, '=') == NULL && strlen(s) > 2) {
            /* long flags that subcommands understand are kept as positional */
            a->positional[a->npositional++] = s;
        } else if (strlen(s) > 4 && !strcmp(s + strlen(s) - 4, ".cfg")) {
            if (!a->config_path) a->config_path = s;
            a->configs[a->nconfigs++] = s;
        }
        else
            a->positional[a->npositional++] = s;
    }
    return DM_OK;
}

void cli_args_free(cli_args *a)
{
    DM_FREE_ALL(a->sets, a->positional, a->configs);
    memset(a, 0, sizeof *a);
}

int cli_load_config(par_ctx *ctx, const cli_args *a, dm_cfg *cfg)
{
    DM_CALL(dm_cfg_init(cfg));
    /* every bad key or value of every file and --set in one error */
    DM_CALL(dm_cfg_load_all(cfg, a->configs, (size_t)a->nconfigs, a->sets, (size_t)a->nsets));
    int verb = a->verbose >= 0 ? a->verbose : (int)dm_cfg_int(cfg, "run.verbose");
    dm_log_init(ctx->rank == 0, verb);
    par_set_threads(ctx, (int)dm_cfg_int(cfg, "run.threads"));
    return DM_OK;
}

int cli_help(par_ctx *ctx, const cli_args *a, const char *usage)
{
    if (!a->help) return 0;
    if (ctx->rank == 0) fputs(usage, stdout);
    return 1;
}

int cli_start(par_ctx *ctx, int argc, char **argv, const char *usage, cli_args *a, int *done)
{
    *done = 0;
    DM_CALL(cli_parse(argc, argv, a));
    if (cli_help(ctx, a, usage)) {
        cli_args_free(a);
        *done = 1;
    }
    return DM_OK;
}

int cli_command(par_ctx *ctx, int argc, char **argv, const char *usage, cli_body body)
{
    cli_args a;
    int helped;
    DM_CALL(cli_start(ctx, argc, argv, usage, &a, &helped));
    if (helped) return DM_OK;
    int rc = body(ctx, &a);
    cli_args_free(&a);
    return rc;
}

int cli_begin(par_ctx *ctx, int argc, char **argv, const char *usage, cli_args *a, dm_cfg *cfg, int *done)
{
    DM_CALL(cli_start(ctx, argc, argv, usage, a, done));
    if (*done) return DM_OK;
    int rc = par_agree(ctx, cli_load_config(ctx, a, cfg));
    if (rc) {
        dm_cfg_free(cfg);
        cli_args_free(a);
    }
    return rc;
}

int cli_run_path(par_ctx *ctx, const dm_cfg *cfg, const char *file, char *out, size_t cap)
{
    (void)ctx;
    const char *dir = dm_cfg_str(cfg, "run.dir");
    if ((size_t)snprintf(out, cap, "%s%s%s", dir, dir[0] ? "/" : "", file) >= cap)
        return DM_ERR(DM_ECONFIG, "run.dir '%s' is too long", dir);
    return DM_OK;
}

int cli_make_run_dir(par_ctx *ctx, const dm_cfg *cfg)
{
    const char *dir = dm_cfg_str(cfg, "run.dir");
    int rc = DM_OK;
    if (ctx->rank == 0 && dir[0]) rc = dm_fs_mkdirs(dir);
    return par_agree(ctx, rc);
}
