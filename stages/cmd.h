/* cmd.h: the commands of the dynmm binary that are not stages (stages are commands through their
 * stage_def, stage.h). Each takes (ctx, argc, argv) with argv[0] = the command's name. */
#ifndef DM_CMD_H
#define DM_CMD_H

#include "../mpi/par.h"

int cmd_run(par_ctx *ctx, int argc, char **argv);    /* stages/cmd_run.c */
int cmd_sweep(par_ctx *ctx, int argc, char **argv);  /* stages/cmd_sweep.c */
int cmd_info(par_ctx *ctx, int argc, char **argv);   /* stages/cmd_info.c */
int cmd_config(par_ctx *ctx, int argc, char **argv); /* stages/cmd_config.c */
int cmd_status(par_ctx *ctx, int argc, char **argv); /* stages/cmd_status.c */
int cmd_export(par_ctx *ctx, int argc, char **argv); /* stages/cmd_export.c */
int cmd_report(par_ctx *ctx, int argc, char **argv); /* analysis/cmd_report.c */

#endif
