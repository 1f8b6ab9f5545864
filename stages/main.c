/* main.c: the dynmm binary. One subcommand per pipeline stage (from the stage registry) and a few
 * more (run, report, sweep, status, export, info, config, version); every one is an MPI program that
 * also runs as a single process without mpirun. Errors are agreed across ranks; rank 0 prints the
 * message (with the code's file:line trace only under -v) and every rank exits with the same non-zero
 * status. A mistyped command gets the closest names as a hint. */
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
    {"status", cmd_status, "the runs of a sweep: done, running, failed or not started, and how far each got"},
    {"export", cmd_export, "per-user metrics of results/prompt/stream files as a long CSV/TSV table with original ids"},
    {"info", cmd_info, "summarise a dynmm HDF5 file (dataset counts and coverage; metric means of results files)"},
    {"config", cmd_config, "print the resolved config, or the reference config with every key"},
    {"version", cmd_version, "print the version and build information"},
};
static const int g_ncmds = (int)(sizeof g_cmds / sizeof g_cmds[0]);

#ifndef DM_CFLAGS
#define DM_CFLAGS ""
#endif

static int cmd_version(par_ctx *ctx, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (ctx->rank == 0)
                printf("usage: dynmm version\n       dynmm --version\n       dynmm -V\n\n"
                       "Prints the version of dynmm (the git commit it was built from), its build flags and the MPI\n"
                       "library. Every output file records the same in its provenance.\n");
            return DM_OK;
        }
    if (ctx->rank == 0) printf("dynmm %s\n  build flags: %s\n  mpi: %s\n", DM_VERSION, DM_CFLAGS, par_mpi_library());
    return DM_OK;
}

/* Levenshtein distance of two short names (commands), for the did-you-mean hint. */
static size_t name_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 64 || lb >= 64) return (size_t)-1;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* "did you mean 'train-cf'?" for an unknown command: every command within one edit (up to 4
 * letters), two (up to 8) or a third of the name, or starting with what was typed. */
static void unknown_command(const char *name)
{
    const char *names[64];
    int n = 0;
    for (int i = 0; i < g_ncmds && n < 64; i++) names[n++] = g_cmds[i].name;
    for (int i = 0; i < stage_count() && n < 64; i++) names[n++] = stage_at(i)->name;
    size_t len = strlen(name), tol = len <= 4 ? 1 : len <= 8 ? 2 : len / 3;
    char close[512] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        int prefix = len >= 2 && strncmp(names[i], name, len) == 0;
        if (name_distance(name, names[i]) > tol && !prefix) continue;
        int w = snprintf(close + used, sizeof close - used, "%s'%s'", used ? " or " : "", names[i]);
        if (w < 0 || (size_t)w >= sizeof close - used) break;
        used += (size_t)w;
    }
    fprintf(stderr, "dynmm: error: unknown command '%s'\n", name);
    if (used) fprintf(stderr, "  hint: did you mean %s? `dynmm --help` lists the commands\n", close);
    else fprintf(stderr, "  hint: `dynmm --help` lists the commands\n");
}

/* -v / -vv anywhere on the command line, or run.verbose >= 2: an error shows its code trace */
static int wants_trace(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "-vv")) return 1;
    return dm_log_verbosity() >= 2;
}

static void usage(void)
{
    printf("usage: dynmm <command> [CONFIG.cfg] [--set group.key=value ...] [-v|-q] [--help]\n"
           "       dynmm --version\n\n"
           "Run under MPI with `mpirun -n N dynmm <command> ...` or `srun dynmm ...`; one process\n"
           "without a launcher also works.\n\ncommands:\n");
    printf("  %-10s %s\n", g_cmds[0].name, g_cmds[0].summary);
    for (int i = 0; i < stage_count(); i++) printf("  %-10s %s\n", stage_at(i)->name, stage_at(i)->summary);
    for (int i = 1; i < g_ncmds; i++) printf("  %-10s %s\n", g_cmds[i].name, g_cmds[i].summary);
    printf("\noptions of every command:\n"
           "  --set, -s group.key=value   override one config key (after the config files, in order)\n"
           "  -v, -vv                     more output; an error also shows where in the code it arose\n"
           "  -q                          only warnings and errors\n"
           "  --help, -h                  describe the command\n"
           "\n`dynmm <command> --help` (or `dynmm help <command>`; `dynmm help --all` for every command)\n"
           "describes a command. Every config key is documented in configs/reference.cfg\n"
           "(`dynmm config --reference`).\n");
}

/* `dynmm help --all`: the usage, then every command's help after a line "\f<name>", in the order of
 * the usage (for doc/man.sh and doc/completion.sh: one process instead of one per command) */
static int help_all(par_ctx *ctx)
{
    if (ctx->rank == 0) usage();
    static char help_flag[] = "--help";
    int rc = DM_OK, ns = stage_count();
    for (int i = 0; i < g_ncmds + ns && !rc; i++) {
        /* run, the stages, the other commands */
        const stage_def *st = i >= 1 && i <= ns ? stage_at(i - 1) : NULL;
        const command *cmd = st ? NULL : &g_cmds[i == 0 ? 0 : i - ns];
        char *args[3] = {(char *)(st ? st->name : cmd->name), help_flag, NULL};
        if (ctx->rank == 0) printf("\f%s\n", args[0]);
        fflush(stdout);
        rc = st ? stage_command(ctx, st, 2, args) : cmd->fn(ctx, 2, args);
        fflush(stdout);
    }
    return rc;
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
    cli_set_program(argv[0]);
    int rc = DM_OK;
    static char version_cmd[] = "version", help_flag[] = "--help";
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) argv[1] = version_cmd;
    if (argc == 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "--all")) {
        rc = help_all(&ctx);
        par_finalize(&ctx);
        return rc ? 1 : 0;
    }
    /* `dynmm help CMD` is `dynmm CMD --help` */
    if (argc == 3 && !strcmp(argv[1], "help")) {
        argv[1] = argv[2];
        argv[2] = help_flag;
    }
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
        if (ctx.rank == 0) unknown_command(argv[1]);
        par_finalize(&ctx);
        return 2;
    }
    rc = cmd ? cmd->fn(&ctx, argc - 1, argv + 1) : stage_command(&ctx, st, argc - 1, argv + 1);
    rc = par_agree(&ctx, rc);
    if (rc != DM_OK && ctx.rank == 0) dm_error_print_user("dynmm: ", wants_trace(argc, argv));
    par_finalize(&ctx);
    return rc == DM_OK ? 0 : (rc == DM_ECONFIG ? 2 : 1);
}
