/* cmd_config.c: `dynmm config`: print the resolved config or the reference config. */
#include "cmd.h"
#include "../mpi/cli.h"

#include "../src/core/err.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: dynmm config [CONFIG.cfg] [--set group.key=value ...] [--reference] [--hash] [--keys]\n\n"
    "Prints the resolved configuration (defaults, then CONFIG, then --set), exactly as it is stored in\n"
    "every output file. --reference prints every key with its documentation, type, range and default\n"
    "(the content of configs/reference.cfg). --hash prints the sha256 of the resolved config. --keys\n"
    "lists every key, one a line, an enumerated one followed by a tab and its choices (a|b|c).\n"
    "A config with several bad keys or values gets one error listing them all, each with its\n"
    "file:line or --set.\n";

static int config_command(par_ctx *ctx, const cli_args *a)
{
    int reference = 0, hash = 0, keys = 0, rc = DM_OK;
    for (int i = 0; i < a->npositional; i++) {
        if (!strcmp(a->positional[i], "--reference")) reference = 1;
        else if (!strcmp(a->positional[i], "--hash")) hash = 1;
        else if (!strcmp(a->positional[i], "--keys")) keys = 1;
        else {
            rc = DM_ERR(DM_ECONFIG, "config: unexpected argument '%s'", a->positional[i]);
            DM_HINT("config files must end in .cfg; see `dynmm config --help`");
        }
    }
    dm_buf b = {0};
    dm_cfg cfg = {0};
    if (!rc && keys) {
        size_t n;
        const dm_key *k = dm_keys(&n);
        for (size_t i = 0; i < n && !rc; i++)
            rc = k[i].type == DM_KT_ENUM ? dm_buf_printf(&b, "%s\t%s\n", k[i].name, k[i].choices) : dm_buf_printf(&b, "%s\n", k[i].name);
    } else if (!rc && reference) rc = dm_cfg_reference(&b);
    else if (!rc) {
        rc = cli_load_config(ctx, a, &cfg);
        if (!rc && hash) {
            char h[65];
            rc = dm_cfg_hash(&cfg, NULL, h);
            if (!rc) rc = dm_buf_printf(&b, "%s\n", h);
        } else if (!rc)
            rc = dm_cfg_serialize(&cfg, NULL, &b);
    }
    if (!rc && ctx->rank == 0) fwrite(b.data, 1, b.len, stdout);
    dm_buf_free(&b);
    dm_cfg_free(&cfg);
    return rc;
}

int cmd_config(par_ctx *ctx, int argc, char **argv) { return cli_command(ctx, argc, argv, USAGE, config_command); }
