#include "cli.h"
#include "../src/core/err.h"
int cmd_ingest(par_ctx *ctx, int argc, char **argv) { (void)ctx; (void)argc; (void)argv; return DM_ERR(DM_EINTERNAL, "todo"); }
int cmd_synth(par_ctx *ctx, int argc, char **argv) { (void)ctx; (void)argc; (void)argv; return DM_ERR(DM_EINTERNAL, "todo"); }
int cmd_info(par_ctx *ctx, int argc, char **argv) { (void)ctx; (void)argc; (void)argv; return DM_ERR(DM_EINTERNAL, "todo"); }
