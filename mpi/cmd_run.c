/* cmd_run.c: `dynmm run CONFIG.cfg`: the stages of run.stages in order, skipping current ones. */
#include "cli.h"
#include "stages.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/timer.h"

#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "usage: dynmm run CONFIG.cfg [--set group.key=value ...]\n\n"
    "Runs the stages listed in run.stages, in order, each writing its file into run.dir. A stage whose\n"
    "output exists and was made from the same settings (the stage hash stored in the file, covering its\n"
    "config groups, the seed and its input) is skipped; run.force = true reruns everything. Example:\n\n"
    "  mpirun -n 4 dynmm run configs/quickstart.cfg --set run.dir=runs/a\n";

int cmd_run(par_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    DM_CALL(cli_parse(argc, argv, &a));
    if (cli_help(ctx, &a, USAGE)) {
        cli_args_free(&a);
        return DM_OK;
    }
    dm_cfg cfg;
    int rc = cli_load_config(ctx, &a, &cfg);
    if (!rc && a.npositional) rc = DM_ERR(DM_ECONFIG, "run: unexpected argument '%s'", a.positional[0]);
    cli_args_free(&a);
    size_t n = rc ? 0 : dm_cfg_len(&cfg, "run.stages");
    for (size_t i = 0; !rc && i < n; i++) {
        const char *name = dm_cfg_str_at(&cfg, "run.stages", i);
        if (!strcmp(name, "synth") && strcmp(dm_cfg_str(&cfg, "data.format"), "synth")) {
            rc = DM_ERR(DM_ECONFIG, "run.stages has 'synth' but data.format = \"%s\"", dm_cfg_str(&cfg, "data.format"));
            DM_HINT("use the stage 'ingest' to read real data");
        } else if (!stage_find(name)) {
            char w[256];
            rc = DM_ERR(DM_ECONFIG, "%s: unknown stage '%s'", dm_cfg_where(&cfg, "run.stages", w, sizeof w), name);
            DM_HINT("stages: %s", stage_names());
        }
    }
    double t0 = dm_wtime();
    for (size_t i = 0; !rc && i < n; i++) {
        const stage_def *s = stage_find(dm_cfg_str_at(&cfg, "run.stages", i));
        char hash[65];
        int current = 0;
        rc = stage_hash(ctx, s, &cfg, hash);
        if (!rc) rc = stage_is_current(ctx, s, &cfg, hash, &current);
        if (rc) break;
        if (current && !dm_cfg_bool(&cfg, "run.force")) {
            dm_log("[%zu/%zu] %s: %s/%s is current, skipped", i + 1, n, s->name, dm_cfg_str(&cfg, "run.dir"), s->output);
            continue;
        }
        dm_log("[%zu/%zu] %s", i + 1, n, s->name);
        double t1 = dm_wtime();
        rc = s->run(ctx, &cfg);
        if (!rc) dm_log("[%zu/%zu] %s done in %.1fs", i + 1, n, s->name, dm_wtime() - t1);
    }
    if (!rc) dm_log("run finished in %.1fs; outputs in %s/", dm_wtime() - t0, dm_cfg_str(&cfg, "run.dir"));
    dm_cfg_free(&cfg);
    return rc;
}
