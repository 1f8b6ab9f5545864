/* cmd_run.c: `dynmm run CONFIG.cfg`: the stages of run.stages in order, skipping current ones. */
#include "cmd.h"
#include "../mpi/cli.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/timer.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: dynmm run CONFIG.cfg [--set group.key=value ...]\n\n"
    "Runs the stages listed in run.stages, in order, each writing its file into run.dir. A stage whose\n"
    "output exists and was made from the same settings and the same inputs (the stage hash stored in\n"
    "the file covers its config groups, the seed and the hash of every file it reads) is skipped;\n"
    "run.force = true reruns everything. One command at a time may use a run.dir (a lock). Example:\n\n"
    "  mpirun -n 4 dynmm run configs/quickstart.cfg --set run.dir=runs/a\n";

/* Before anything runs: known stages, settings every listed stage accepts, and every input either
 * made by an earlier listed stage or present in run.dir. */
static int check_plan(par_ctx *ctx, const dm_cfg *cfg)
{
    size_t n = dm_cfg_len(cfg, "run.stages");
    char w[256];
    if (n == 0) {
        DM_ERR(DM_ECONFIG, "%s is empty: nothing to run", dm_cfg_where(cfg, "run.stages", w, sizeof w));
        DM_HINT("list the stages to run, e.g. run.stages = [\"synth\", \"train-cf\", \"eval\"]; stages: %s", stage_names());
        return DM_ECONFIG;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = dm_cfg_str_at(cfg, "run.stages", i);
        const stage_def *s = stage_find(name);
        if (!strcmp(name, "synth") && strcmp(dm_cfg_str(cfg, "data.format"), "synth")) {
            DM_ERR(DM_ECONFIG, "run.stages has 'synth' but data.format = \"%s\"", dm_cfg_str(cfg, "data.format"));
            DM_HINT("use the stage 'ingest' to read real data");
            return DM_ECONFIG;
        }
        if (!s) {
            DM_ERR(DM_ECONFIG, "%s: unknown stage '%s'", dm_cfg_where(cfg, "run.stages", w, sizeof w), name);
            DM_HINT("stages: %s", stage_names());
            return DM_ECONFIG;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(dm_cfg_str_at(cfg, "run.stages", j), name)) {
                DM_ERR(DM_ECONFIG, "%s lists '%s' twice", dm_cfg_where(cfg, "run.stages", w, sizeof w), name);
                return DM_ECONFIG;
            }
        if (s->check) DM_CALL(s->check(cfg));
        for (int k = 0; s->inputs[k]; k++) {
            if (s->uses && !s->uses(cfg, s->inputs[k])) continue;
            int made = 0;
            for (size_t j = 0; j < i; j++) made |= !strcmp(stage_find(dm_cfg_str_at(cfg, "run.stages", j))->output, s->inputs[k]);
            char path[4096];
            DM_CALL(cli_run_path(ctx, cfg, s->inputs[k], path, sizeof path));
            if (!made && access(path, F_OK) != 0) {
                DM_ERR(DM_ECONFIG, "run.stages: '%s' reads %s, which no earlier stage of run.stages makes and '%s' does not exist", name,
                       s->inputs[k], path);
                const char *maker = stage_maker(s->inputs[k]);
                DM_HINT("add '%s' to run.stages before '%s'", !strcmp(maker, "ingest") ? "synth' or 'ingest" : maker, name);
                return DM_ECONFIG;
            }
        }
    }
    return DM_OK;
}

static int run_command(par_ctx *ctx, const cli_args *a)
{
    dm_cfg cfg;
    int rc = cli_load_config(ctx, a, &cfg);
    if (!rc && a->npositional) rc = DM_ERR(DM_ECONFIG, "run: unexpected argument '%s'", a->positional[0]);
    if (!rc) rc = check_plan(ctx, &cfg);
    rc = par_agree(ctx, rc);
    if (!rc) {
        const stage_def *defs[32];
        int nd = 0;
        for (size_t i = 0; i < dm_cfg_len(&cfg, "run.stages") && nd < 32; i++) defs[nd++] = stage_find(dm_cfg_str_at(&cfg, "run.stages", i));
        stage_warn_unread_sets(&cfg, defs, nd);
    }
    stage_lock_t lk = {-1};
    if (!rc) rc = stage_lock(ctx, &cfg, &lk);
    size_t n = rc ? 0 : dm_cfg_len(&cfg, "run.stages");
    double t0 = dm_wtime();
    for (size_t i = 0; !rc && i < n; i++) {
        const stage_def *s = stage_find(dm_cfg_str_at(&cfg, "run.stages", i));
        stage_run sr;
        int current = 0;
        rc = stage_begin(ctx, &cfg, s, &sr);
        if (!rc) rc = stage_is_current(&sr, &current);
        if (rc) break;
        if (current && !dm_cfg_bool(&cfg, "run.force")) {
            dm_log("[%zu/%zu] %s: %s is current, skipped", i + 1, n, s->name, sr.out);
            continue;
        }
        dm_log("[%zu/%zu] %s", i + 1, n, s->name);
        double t1 = dm_wtime();
        rc = stage_exec(&sr);
        if (!rc) dm_log("[%zu/%zu] %s done in %.1fs", i + 1, n, s->name, dm_wtime() - t1);
    }
    stage_unlock(ctx, &lk);
    if (!rc) dm_log("run finished in %.1fs; outputs in %s/", dm_wtime() - t0, dm_cfg_str(&cfg, "run.dir"));
    dm_cfg_free(&cfg);
    return rc;
}

int cmd_run(par_ctx *ctx, int argc, char **argv) { return cli_command(ctx, argc, argv, USAGE, run_command); }
