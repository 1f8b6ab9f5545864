/* main.c: the dynmm binary. One subcommand per pipeline stage (from the stage registry) and a few
 * more (run, report, sweep, info, config, version); every one is an MPI program that
 * also runs as a single process without mpirun. Errors are agreed across ranks; rank 0 prints the
 * message and every rank exits with the same non-zero status. */
#include "cmd.h"
#include "stage.h"

#include "../mpi/cli.h"
#include "../mpi/par.h"

#include "../src/core/err.h"
#include "../src/core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_version(par_ctx *ctx, int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(par_ctx *ctx, int argc, char **argv);
    const char *summary;
} command;

/* the commands that are not stages; the stages come from their registry (stage.h) */
static const command g_cmds[] = {
    {"run", cmd_run, "run the stages of run.stages in order, skipping those already current"},
    {"report", cmd_report, "tables (LaTeX, Markdown, CSV) with significance tests and gnuplot figures from results files"},
    {"sweep", cmd_sweep, "expand a sweep file (grid, random search, seeds) into a manifest and a Slurm job array"},
    {"info", cmd_info, "summarise a dynmm HDF5 file (counts, density, lengths, time span, modalities, windows)"},
    {"config", cmd_config, "print the resolved config, or the reference config with every key"},
    {"version", cmd_version, "print the version and build information"},
};
static const int g_ncmds = (int)(sizeof g_cmds / sizeof g_cmds[0]);

static int cmd_version(par_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (ctx->rank == 0) printf("dynmm %s\n  mpi: %s\n", DM_VERSION, par_mpi_library());
    return DM_OK;
}

static void usage(void)
{
    printf("usage: dynmm <command> [CONFIG.cfg] [--set group.key=value ...] [-v|-q] [--help]\n\n"
           "Run under MPI with `mpirun -n N dynmm <command> ...` or `srun dynmm ...`; one process\n"
           "without a launcher also works.\n\ncommands:\n");
    printf("  %-10s %s\n", g_cmds[0].name, g_cmds[0].summary);
    for (int i = 0; i < stage_count(); i++) printf("  %-10s %s\n", stage_at(i)->name, stage_at(i)->summary);
    for (int i = 1; i < g_ncmds; i++) printf("  %-10s %s\n", g_cmds[i].name, g_cmds[i].summary);
    printf("\n`dynmm <command> --help` describes a command. Every config key is documented in\n"
           "configs/reference.cfg.\n");
}

/* libgomp reads OMP_WAIT_POLICY once, when the program starts. Its default lets idle OpenMP threads
 * spin, which starves OpenBLAS's own threads and other ranks on a shared node (steps measured 50x
 * slower), so unless the user chose a policy the process restarts itself once with "passive",
 * before MPI or OpenMP start. */
static void ensure_wait_policy(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("DM_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("DM_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv)
{
    ensure_wait_policy(argv);
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx) != DM_OK) return 1;
    int rc = DM_OK;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (ctx.rank == 0) usage();
        rc = argc < 2 ? DM_ECONFIG : DM_OK;
        par_finalize(&ctx);
        return rc ? 2 : 0;
    }
    const command *cmd = NULL;
    for (int i = 0; i < g_ncmds; i++)
        if (!strcmp(argv[1], g_cmds[i].name)) cmd = &g_cmds[i];
    const stage_def *st = cmd ? NULL : stage_find(argv[1]);
    if (!cmd && !st) {
        if (ctx.rank == 0) {
            fprintf(stderr, "dynmm: error: unknown command '%s'\n", argv[1]);
            fprintf(stderr, "  hint: `dynmm --help` lists the commands\n");
        }
        par_finalize(&ctx);
        return 2;
    }
    rc = cmd ? cmd->fn(&ctx, argc - 1, argv + 1) : stage_command(&ctx, st, argc - 1, argv + 1);
    rc = par_agree(&ctx, rc);
    if (rc != DM_OK && ctx.rank == 0) dm_error_print("dynmm: ");
    par_finalize(&ctx);
    return rc == DM_OK ? 0 : (rc == DM_ECONFIG ? 2 : 1);
}
