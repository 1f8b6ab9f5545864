/* cli.h: the command line shared by every subcommand, and the subcommand table.
 *
 *   dynmm <command> [CONFIG.cfg ...] [--set group.key=value ...] [-v|-q] [--help]
 *
 * cli_load_config() builds the resolved config on every rank: defaults, then each CONFIG in order
 * (a later file overrides an earlier one, so a small file of overrides can sit on a base config),
 * then --set in order.
 */
#ifndef DM_CLI_H
#define DM_CLI_H

#include "par.h"

#include "../src/config/config.h"

typedef struct {
    const char *config_path; /* the first config file, NULL = defaults only */
    const char **configs;    /* every config file in order: later files override earlier ones */
    int nconfigs;
    const char **sets;       /* --set assignments in order */
    int nsets;
    const char **positional; /* other arguments */
    int npositional;
    int help;
    int verbose;             /* -v / -q adjustments */
} cli_args;


/* Parses argv[1..]; the first positional ending in .cfg is the config. Errors name the argument. */
int cli_parse(int argc, char **argv, cli_args *a);
void cli_args_free(cli_args *a);
/* Defaults, file, --set; applies run.threads and run.verbose to the context and the log. */
int cli_load_config(par_ctx *ctx, const cli_args *a, dm_cfg *cfg);
/* Prints the usage text when a->help and returns 1 (the caller then returns 0). */
int cli_help(par_ctx *ctx, const cli_args *a, const char *usage);
/* The start of a command without a config of its own: cli_parse, then for --help the usage and
 * *done = 1 (a freed; the caller returns DM_OK). Otherwise the caller owns a (cli_args_free). */
int cli_start(par_ctx *ctx, int argc, char **argv, const char *usage, cli_args *a, int *done);
/* A whole command without a config of its own: cli_start, then (unless --help was answered)
 * body(ctx, &a), then cli_args_free. Returns body's status (DM_OK after --help). */
typedef int (*cli_body)(par_ctx *ctx, const cli_args *a);
int cli_command(par_ctx *ctx, int argc, char **argv, const char *usage, cli_body body);
/* The start of a command: cli_parse, then for --help the usage and *done = 1 (the caller returns
 * DM_OK; nothing to free), else cli_load_config with the outcome agreed by every rank. On success
 * the caller owns a and cfg (cli_args_free, dm_cfg_free); on failure nothing is left to free.
 * Collective. */
int cli_begin(par_ctx *ctx, int argc, char **argv, const char *usage, cli_args *a, dm_cfg *cfg, int *done);
/* The binary as the user invoked it, for "next:" hints: "dynmm" when found on PATH, else the path
 * typed ("build/dynmm", "/opt/dynmm/bin/dynmm"). main() sets it from argv[0]. */
void cli_set_program(const char *argv0);
const char *cli_program(void);
/* Joins run.dir and a file name (local, not collective). */
int cli_run_path(par_ctx *ctx, const dm_cfg *cfg, const char *file, char *out, size_t cap);
/* Creates run.dir (rank 0) if needed. Collective. */
int cli_make_run_dir(par_ctx *ctx, const dm_cfg *cfg);


#endif
