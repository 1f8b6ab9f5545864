/* stages.c: the stage registry and stage hashes, see stages.h. */
#include "stages.h"

#include "cli.h"
#include "dataset_io.h"
#include "h5io.h"

#include "../src/core/err.h"
#include "../src/core/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const stage_def g_stages[] = {
    {"ingest", "dataset.h5", NULL, ds_config_groups, stage_ingest},
    {"synth", "dataset.h5", NULL, ds_config_groups, stage_ingest},
    {"train-cf", "cf.h5", "dataset.h5", cf_config_groups, stage_train_cf},
    {"align", "align.h5", "cf.h5", align_config_groups, stage_align},
    {"lm", "lm.h5", "dataset.h5", lm_config_groups, stage_lm},
    {"prompt", "prompt.h5", "align.h5", prompt_config_groups, stage_prompt},
    {"explain", "explain.h5", "prompt.h5", explain_config_groups, stage_explain},
    {"stream", "stream.h5", "align.h5", stream_config_groups, stage_stream},
    {"eval", "results.h5", "cf.h5", eval_config_groups, stage_eval},
};
static const int g_nstages = (int)(sizeof g_stages / sizeof g_stages[0]);

const stage_def *stage_find(const char *name)
{
    for (int i = 0; i < g_nstages; i++)
        if (!strcmp(g_stages[i].name, name)) return &g_stages[i];
    return NULL;
}

const char *stage_names(void)
{
    static char buf[512];
    buf[0] = '\0';
    for (int i = 0; i < g_nstages; i++) {
        if (i) strcat(buf, ", ");
        strcat(buf, g_stages[i].name);
    }
    return buf;
}

static int read_stage_hash(par_ctx *ctx, const char *path, char out[65], int *exists)
{
    *exists = access(path, F_OK) == 0;
    int all = *exists;
    /* every rank must agree on existence before collective opens */
    int64_t e = all;
    DM_CALL(par_allreduce_min_i64(ctx, &e, 1));
    *exists = (int)e;
    if (!e) return DM_OK;
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    char *h = NULL;
    int rc = h5_has_attr(&f, "/", "stage_hash") ? h5_get_attr_str(&f, "/", "stage_hash", &h) : DM_OK;
    h5_close(&f);
    DM_CALL(par_agree(ctx, rc));
    snprintf(out, 65, "%s", h ? h : "");
    free(h);
    return DM_OK;
}

int stage_hash(par_ctx *ctx, const stage_def *s, const dm_cfg *cfg, char out[65])
{
    if (!s->input) return ds_stage_hash(ctx, cfg, out);
    dm_buf b = {0};
    int rc = dm_cfg_serialize(cfg, s->groups, &b);
    if (!rc) rc = dm_buf_printf(&b, "run.seed = %lld;\nstage = \"%s\";\n", dm_cfg_int(cfg, "run.seed"), s->name);
    char in[4096], up[65] = "";
    int exists = 0;
    if (!rc) rc = cli_run_path(ctx, cfg, s->input, in, sizeof in);
    if (!rc) rc = read_stage_hash(ctx, in, up, &exists);
    if (!rc) rc = dm_buf_printf(&b, "upstream = \"%s\";\n", up);
    if (!rc) dm_sha256_hex(b.data, b.len, out);
    dm_buf_free(&b);
    return rc;
}

int stage_is_current(par_ctx *ctx, const stage_def *s, const dm_cfg *cfg, const char *hash, int *current)
{
    char path[4096], h[65] = "";
    int exists;
    *current = 0;
    DM_CALL(cli_run_path(ctx, cfg, s->output, path, sizeof path));
    DM_CALL(read_stage_hash(ctx, path, h, &exists));
    *current = exists && !strcmp(h, hash);
    return DM_OK;
}
