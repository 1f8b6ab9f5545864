/* cmd_report.h: `dynmm report` (cmd_report.c), a command of the dynmm binary: argv[0] is the
 * command's name, the rest its arguments. Collective. */
#ifndef DM_CMD_REPORT_H
#define DM_CMD_REPORT_H

#include "../mpi/par.h"

int cmd_report(par_ctx *ctx, int argc, char **argv);

#endif
