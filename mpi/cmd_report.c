/* cmd_report.c: `dynmm report` (being written). */
#include "cli.h"

#include "../src/core/err.h"

int cmd_report(par_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    return DM_ERR(DM_ECONFIG, "report: not available yet");
}
