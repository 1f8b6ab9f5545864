/* cmd_ingest.c: `dynmm ingest` and `dynmm synth`: real formats or the generator -> dataset.h5.
 *
 * Parallel plan: every rank parses its stripe of each input file's lines (readers.h), the stripes
 * are exchanged (allgather) and merged back into input order, and every rank then runs the same
 * deterministic processing (dm_process), so all ranks hold the same dataset; the file is written
 * collectively, each rank writing its block of users and items. The generator makes each rank
 * produce its own block of users. Output is identical at any rank count.
 */
#include "../mpi/cli.h"
#include "cands.h"
#include "dataset_io.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/sha256.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/data/readers.h"
#include "../src/data/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE_INGEST[] =
    "usage: dynmm ingest CONFIG.cfg [--set group.key=value ...]\n\n"
    "Reads the interactions (data.inter), item metadata (data.meta) and feature matrices\n"
    "(modal.<text|visual|audio>.path) named in the config, filters and splits them, and writes\n"
    "<run.dir>/dataset.h5. Formats (data.format): amazon2014, amazon2018, amazon2023, recbole, sasrec,\n"
    "tsv, or synth (the built-in generator, same as `dynmm synth`). Example:\n\n"
    "  mpirun -n 2 dynmm ingest configs/amazon-beauty.cfg --set data.inter=/data/reviews_Beauty_5.json.gz\n\n"
    "`dynmm info <run.dir>/dataset.h5` summarises the result.\n";

static const char USAGE_SYNTH[] =
    "usage: dynmm synth [CONFIG.cfg] [--set synth.users=N ...]\n\n"
    "Generates the synthetic default dataset (see the synth group of configs/reference.cfg: users and\n"
    "items, taste clusters, planted drift, title/feature generation and missing rates) and writes\n"
    "<run.dir>/dataset.h5, splits and windows included.\n";

/* Exchanges every rank's packed stripe of the interactions (lraw) and, unless lmeta is NULL, of
 * the item metadata (lmeta), and merges them on every rank into raw and meta. The stripes are freed.
 * Collective. */
static int gather_inputs(par_ctx *ctx, dm_raw *lraw, dm_raw *raw, dm_meta *lmeta, dm_meta *meta)
{
    if (ctx->size == 1) { /* one stripe is the whole input already in order */
        *raw = *lraw;
        memset(lraw, 0, sizeof *lraw);
        if (lmeta) {
            *meta = *lmeta;
            memset(lmeta, 0, sizeof *lmeta);
        }
        return DM_OK;
    }
    for (int part = 0; part < (lmeta ? 2 : 1); part++) { /* 0 interactions, 1 metadata */
        dm_buf pack = {0};
        int rc = part ? dm_meta_pack(lmeta, &pack) : dm_raw_pack(lraw, &pack);
        if (part) dm_meta_free(lmeta);
        else dm_raw_free(lraw);
        DM_CALL(par_agree(ctx, rc));
        void *all = NULL;
        size_t *counts = NULL;
        rc = par_allgatherv(ctx, pack.data, pack.len, &all, &counts);
        dm_buf_free(&pack);
        DM_CALL(par_agree(ctx, rc));
        rc = part ? dm_meta_merge(all, counts, ctx->size, meta) : dm_raw_merge(all, counts, ctx->size, raw);
        free(all);
        free(counts);
        DM_CALL(par_agree(ctx, rc));
    }
    return DM_OK;
}

static int need_path(const dm_cfg *cfg, const char *key)
{
    if (dm_cfg_str(cfg, key)[0]) return DM_OK;
    DM_ERR(DM_ECONFIG, "data.format = \"%s\" needs '%s' (the input file)", dm_cfg_str(cfg, "data.format"), key);
    DM_HINT("set it in the config or with --set %s=PATH", key);
    return DM_ECONFIG;
}

static int read_inputs(par_ctx *ctx, const dm_cfg *cfg, dm_raw *raw, dm_meta *meta)
{
    const char *fmt = dm_cfg_str(cfg, "data.format");
    dm_stripe st = {ctx->rank, ctx->size, 4096};
    dm_raw local = {0};
    dm_meta lmeta = {0};
    const char *inter = dm_cfg_str(cfg, "data.inter"), *mp = dm_cfg_str(cfg, "data.meta");
    int rc = need_path(cfg, "data.inter");
    if (!rc && strcmp(fmt, "tsv")) {
        const char *only[] = {"data.tags", "data.item_map", "data.split_col"};
        for (int k = 0; k < 3 && !rc; k++)
            if (dm_cfg_str(cfg, only[k])[0])
                rc = DM_ERR(DM_ECONFIG, "%s is read with data.format = \"tsv\", not \"%s\"", only[k], fmt);
    }
    int version = !strcmp(fmt, "amazon2014") ? 2014 : !strcmp(fmt, "amazon2018") ? 2018 : 2023;
    if (!rc) {
        if (!strncmp(fmt, "amazon", 6)) {
            rc = dm_read_amazon_reviews(inter, version, &st, 0, &local);
            if (!rc && mp[0]) rc = dm_read_amazon_meta(mp, version, &st, &lmeta);
        } else if (!strcmp(fmt, "recbole")) {
            rc = dm_read_recbole_inter(inter, &st, &local);
            if (!rc && mp[0]) rc = dm_read_recbole_item(mp, &st, &lmeta);
        } else if (!strcmp(fmt, "sasrec")) {
            const char *lay = dm_cfg_str(cfg, "data.sasrec_layout");
            rc = dm_read_sasrec(inter, !strcmp(lay, "pairs") ? 1 : !strcmp(lay, "sequences") ? 2 : 0, &st, &local);
            /* the attribute file is one JSON document: rank 0 reads it */
            if (!rc && mp[0] && ctx->rank == 0) rc = dm_read_item2attributes(mp, &lmeta);
        } else if (!strcmp(fmt, "tsv")) {
            const char *sep = dm_cfg_str(cfg, "data.sep"), *hdr = dm_cfg_str(cfg, "data.header");
            dm_tsv_opts o = {0, -1, dm_cfg_str(cfg, "data.user_col"), dm_cfg_str(cfg, "data.item_col"),
                             dm_cfg_str(cfg, "data.time_col"), dm_cfg_bool(cfg, "data.time_ms"), NULL};
            if (!strcmp(sep, "\\t") || !strcmp(sep, "\t") || !strcmp(sep, "tab")) o.sep = '\t';
            else if (strcmp(sep, "auto")) {
                if (strlen(sep) != 1) {
                    rc = DM_ERR(DM_ECONFIG, "data.sep = \"%s\": expected 'auto', '\\t' or one character", sep);
                    goto read_done;
                }
                o.sep = sep[0];
            }
            o.header = !strcmp(hdr, "yes") ? 1 : !strcmp(hdr, "no") ? 0 : -1;
            const char *vp = dm_cfg_str(cfg, "data.valid"), *tp = dm_cfg_str(cfg, "data.test");
            int split = vp[0] || tp[0];
            o.split_col = dm_cfg_str(cfg, "data.split_col");
            if (o.split_col[0] && split) {
                rc = DM_ERR(DM_ECONFIG, "data.split_col = \"%s\" and data.%s: the given split comes from one or the other",
                            o.split_col, vp[0] ? "valid" : "test");
                DM_HINT("clear data.valid and data.test, or data.split_col");
                goto read_done;
            }
            rc = dm_read_tsv(inter, &o, &st, 0, split ? DM_TRAIN : -1, &local);
            if (!rc && vp[0]) rc = dm_read_tsv(vp, &o, &st, 1, DM_VALID, &local);
            if (!rc && tp[0]) rc = dm_read_tsv(tp, &o, &st, 2, DM_TEST, &local);
            /* item tables are small: rank 0 reads them whole (and the id map they are keyed by) */
            const char *gp = dm_cfg_str(cfg, "data.tags"), *map = dm_cfg_str(cfg, "data.item_map");
            for (int k = 0; k < 2 && !rc; k++) {
                const char *ck = k ? "data.tags_cols" : "data.meta_cols";
                if (dm_cfg_len(cfg, ck) != 2)
                    rc = DM_ERR(DM_ECONFIG, "%s has %zu entries; expected 2: the id column and the %s column", ck,
                                dm_cfg_len(cfg, ck), k ? "tags" : "title");
            }
            if (!rc && (mp[0] || gp[0]) && ctx->rank == 0) {
                dm_item_map M = {0};
                if (map[0]) {
                    dm_tsv_opts mo = o;
                    mo.split_col = NULL;
                    rc = dm_read_item_map(inter, map, &mo, &M);
                }
                dm_item_tables t = {o.sep, mp, dm_cfg_str_at(cfg, "data.meta_cols", 0), dm_cfg_str_at(cfg, "data.meta_cols", 1),
                                    gp, dm_cfg_str_at(cfg, "data.tags_cols", 0), dm_cfg_str_at(cfg, "data.tags_cols", 1)};
                size_t skipped = 0;
                if (!rc) rc = dm_read_item_tables(&t, map[0] ? &M : NULL, &lmeta, &skipped);
                if (!rc && skipped)
                    dm_log("item tables: %zu rows name items without interactions%s; skipped", skipped,
                           map[0] ? " (not in data.item_map)" : "");
                dm_item_map_free(&M);
            }
        }

    }
read_done:
    rc = par_agree(ctx, rc);
    if (rc) {
        dm_raw_free(&local);
        dm_meta_free(&lmeta);
        return rc;
    }
    DM_CALL(gather_inputs(ctx, &local, raw, &lmeta, meta));
    if (raw->n == 0) {
        DM_ERR(DM_EINPUT, "'%s' has no interactions", inter);
        DM_HINT("check data.format (\"%s\") against the file", fmt);
        return DM_EINPUT;
    }
    if (meta->duplicates) dm_warn("%zu metadata entries repeat an item id; the first one was kept", meta->duplicates);
    return DM_OK;
}

static int add_source(par_ctx *ctx, dm_buf *sources, const char *path)
{
    char hex[65] = "";
    int rc = ctx->rank == 0 ? dm_sha256_file(path, hex) : DM_OK;
    DM_CALL(par_agree(ctx, rc));
    DM_CALL(par_bcast(ctx, hex, sizeof hex, 0));
    return dm_buf_printf(sources, "%s  %s\n", hex, path);
}

/* feature matrices of the modal group */
static int read_features(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d, const dm_raw *raw, const int32_t *raw_to_item)
{
    for (int m = 0; m < 3; m++) {
        char key[64], dkey[64], skey[64], ikey[64];
        snprintf(key, sizeof key, "modal.%s.path", dm_modal_names[m]);
        snprintf(dkey, sizeof dkey, "modal.%s.dataset", dm_modal_names[m]);
        snprintf(skey, sizeof skey, "modal.%s.shape", dm_modal_names[m]);
        snprintf(ikey, sizeof ikey, "modal.%s.ids", dm_modal_names[m]);
        const char *path = dm_cfg_str(cfg, key);
        if (!path[0]) continue;
        float *rows = NULL;
        size_t nr = 0, nc = 0;
        int rc = DM_OK;
        size_t pl = strlen(path);
        int is_h5 = (pl > 3 && !strcmp(path + pl - 3, ".h5")) || (pl > 5 && !strcmp(path + pl - 5, ".hdf5"));
        int is_npy = pl > 4 && !strcmp(path + pl - 4, ".npy");
        if (is_h5) {
            const char *dn = dm_cfg_str(cfg, dkey);
            if (!dn[0]) {
                DM_ERR(DM_ECONFIG, "'%s' is an HDF5 file: set %s to the dataset holding the features", path, dkey);
                return par_agree(ctx, DM_ECONFIG);
            }
            h5file f;
            rc = par_agree(ctx, h5_open(ctx, path, &f));
            if (rc) return rc;
            void *p = NULL;
            rc = h5_read_all(&f, dn, H5_F32, &p, &nr, &nc);
            h5_close(&f);
            rows = p;
            if (!rc && nc == 0) rc = DM_ERR(DM_EINPUT, "'%s' dataset '%s' must be 2-D (items, features)", path, dn);
        } else if (is_npy)
            rc = dm_read_npy(path, &rows, &nr, &nc);
        else {
            if (dm_cfg_len(cfg, skey) != 2) {
                rc = DM_ERR(DM_ECONFIG, "'%s' is read as raw float32: set %s = [rows, cols]", path, skey);
                DM_HINT("or give a .npy or .h5 file");
            } else {
                nr = (size_t)dm_cfg_int_at(cfg, skey, 0);
                nc = (size_t)dm_cfg_int_at(cfg, skey, 1);
                rc = dm_read_raw_f32(path, nr, nc, &rows);
            }
        }
        dm_strtab ids = {0};
        const char *ip = dm_cfg_str(cfg, ikey);
        if (!rc && ip[0]) rc = dm_read_id_list(ip, &ids);
        if (!rc) rc = dm_attach_features(d, raw, raw_to_item, m, rows, nr, nc, ip[0] ? &ids : NULL,
                                         dm_cfg_bool(cfg, "modal.zero_is_missing"), path);
        free(rows);
        dm_strtab_free(&ids);
        DM_CALL(par_agree(ctx, rc));
        DM_CALL(add_source(ctx, &d->sources, path));
        if (ip[0]) DM_CALL(add_source(ctx, &d->sources, ip));
    }
    return DM_OK;
}

/* original id of generated data: a decimal string of the given length (string tables are not
 * NUL-separated) */
static size_t synth_orig(const dm_strtab *t, size_t i)
{
    size_t l, v = 0;
    const char *s = dm_strtab_get(t, i, &l);
    for (size_t k = 0; k < l; k++) v = v * 10 + (size_t)(s[k] - '0');
    return v;
}

static int synth_dataset(par_ctx *ctx, const dm_cfg *cfg, dm_dataset *d)
{
    dm_synth_opts o = {0};
    o.users = (size_t)dm_cfg_int(cfg, "synth.users");
    o.items = (size_t)dm_cfg_int(cfg, "synth.items");
    o.clusters = (int)dm_cfg_int(cfg, "synth.clusters");
    o.latent = (int)dm_cfg_int(cfg, "synth.latent");
    o.mean_len = dm_cfg_float(cfg, "synth.mean_len");
    o.zipf = dm_cfg_float(cfg, "synth.zipf");
    o.temperature = dm_cfg_float(cfg, "synth.temperature");
    o.seq_weight = dm_cfg_float(cfg, "synth.seq_weight");
    o.drift_share = dm_cfg_float(cfg, "synth.drift_share");
    o.drift_at = dm_cfg_float(cfg, "synth.drift_at");
    o.days = dm_cfg_int(cfg, "synth.days");
    o.start = dm_cfg_int(cfg, "synth.start");
    const char *dk[3] = {"synth.text_dim", "synth.visual_dim", "synth.audio_dim"};
    const char *sk[3] = {"synth.text_snr_db", "synth.visual_snr_db", "synth.audio_snr_db"};
    const char *mk[3] = {"synth.text_missing", "synth.visual_missing", "synth.audio_missing"};
    for (int m = 0; m < 3; m++) {
        o.dim[m] = (size_t)dm_cfg_int(cfg, dk[m]);
        o.snr_db[m] = dm_cfg_float(cfg, sk[m]);
        o.missing[m] = dm_cfg_float(cfg, mk[m]);
    }
    o.title_missing = dm_cfg_float(cfg, "synth.title_missing");
    o.seed = (uint64_t)dm_cfg_int(cfg, "run.seed");
    if (o.items < 8) return DM_ERR(DM_ECONFIG, "synth.items = %zu: need at least 8 items", o.items);
    dm_synth_world w;
    int rc = dm_synth_world_init(&o, &w);
    DM_CALL(par_agree(ctx, rc));
    size_t lo, hi;
    dm_shard_even(o.users, ctx->size, ctx->rank, &lo, &hi);
    dm_raw local = {0}, raw = {0};
    dm_meta meta = {0};
    uint8_t *drift = NULL;
    int32_t *before = NULL, *after = NULL;
    drift = calloc(o.users + 1, 1);
    before = calloc(o.users + 1, 4);
    after = calloc(o.users + 1, 4);
    rc = (!drift || !before || !after) ? DM_ERR(DM_ENOMEM, "out of memory") : DM_OK;
    if (!rc) rc = dm_synth_users(&w, lo, hi, &local, drift + lo, before + lo, after + lo);
    if (!rc) rc = dm_synth_meta(&w, &meta);
    rc = par_agree(ctx, rc);
    if (!rc) rc = gather_inputs(ctx, &local, &raw, NULL, NULL);
    /* ground truth: every rank filled its block; the others are zero, so a sum gathers them */
    int64_t *tmp = NULL;
    if (!rc) {
        tmp = calloc(3 * o.users + 1, sizeof *tmp);
        rc = par_agree(ctx, tmp ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
    }
    if (!rc) {
        for (size_t u = lo; u < hi; u++) {
            tmp[u] = drift[u];
            tmp[o.users + u] = before[u];
            tmp[2 * o.users + u] = after[u];
        }
        rc = par_allreduce_sum_i64(ctx, tmp, 3 * o.users);
    }
    dm_process_opts po;
    int32_t *raw_to_item = NULL;
    if (!rc) rc = ds_process_opts(cfg, &po);
    if (!rc) {
        po.numeric_ids = 1;
        rc = dm_process(&raw, &meta, &po, d, &raw_to_item);
    }
    rc = par_agree(ctx, rc);
    if (!rc) {
        /* ground truth by dense id (dense ids are the numeric order of the original ids) */
        d->drift_user = calloc(d->n_users + 1, 1);
        d->taste_before = calloc(d->n_users + 1, 4);
        d->taste_after = calloc(d->n_users + 1, 4);
        d->item_cluster = calloc(d->n_items + 1, 4);
        if (!d->drift_user || !d->taste_before || !d->taste_after || !d->item_cluster) rc = DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t u = 0; !rc && u < d->n_users; u++) {
            size_t orig = synth_orig(&d->user_id, u);
            d->drift_user[u] = (uint8_t)tmp[orig];
            d->taste_before[u] = (int32_t)tmp[o.users + orig];
            d->taste_after[u] = (int32_t)tmp[2 * o.users + orig];
        }
        for (size_t i = 0; !rc && i < d->n_items; i++) {
            d->item_cluster[i] = w.cluster[synth_orig(&d->item_id, i)];
        }
        d->drift_time = w.drift_ms;
    }
    /* features of the items that occur */
    for (int m = 0; !rc && m < 3; m++) {
        if (!o.dim[m]) continue;
        float *f = NULL;
        uint8_t *pres = NULL;
        rc = dm_synth_features(&w, m, &f, &pres);
        if (!rc) {
            dm_modal *md = &d->modal[d->n_modal];
            memset(md, 0, sizeof *md);
            snprintf(md->name, sizeof md->name, "%s", dm_modal_names[m]);
            snprintf(md->source, sizeof md->source, "synth (snr %.1f dB, missing %.2f)", o.snr_db[m], o.missing[m]);
            md->dim = o.dim[m];
            md->feat = calloc(d->n_items * md->dim + 1, sizeof(float));
            md->present = calloc(d->n_items + 1, 1);
            if (!md->feat || !md->present) rc = DM_ERR(DM_ENOMEM, "out of memory");
            for (size_t i = 0; !rc && i < d->n_items; i++) {
                size_t orig = synth_orig(&d->item_id, i);
                md->present[i] = pres[orig];
                memcpy(md->feat + i * md->dim, f + orig * md->dim, md->dim * sizeof(float));
            }
            d->n_modal++;
        }
        free(f);
        free(pres);
    }
    if (!rc) rc = dm_buf_printf(&d->sources, "synth seed %llu\n", (unsigned long long)o.seed);
    free(tmp);
    free(drift);
    free(before);
    free(after);
    free(raw_to_item);
    dm_raw_free(&raw);
    dm_meta_free(&meta);
    dm_synth_world_free(&w);
    return par_agree(ctx, rc);
}

static void summary(const dm_dataset *d, const char *path, double secs, int ranks)
{
    size_t nt = 0;
    for (size_t i = 0; i < d->n_items; i++) nt += d->has_title[i];
    dm_log("wrote %s in %.2fs on %d rank%s: %zu users, %zu items, %zu interactions (density %.3g%%), %zu titles, "
           "%zu attributes, %zu windows",
           path, secs, ranks, ranks > 1 ? "s" : "", d->n_users, d->n_items, d->n_inter,
           100.0 * (double)d->n_inter / ((double)d->n_users * (double)d->n_items), nt, d->n_attr, d->n_windows);
    for (int m = 0; m < d->n_modal; m++) {
        size_t np = 0;
        for (size_t i = 0; i < d->n_items; i++) np += d->modal[m].present[i];
        dm_log("  modality %-6s dim %4zu, present for %zu of %zu items", d->modal[m].name, d->modal[m].dim, np, d->n_items);
    }
}

/* The ingest stage on a resolved config (used by `dynmm ingest`, `dynmm synth` and `dynmm run`). */
static int stage_ingest(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    double t0 = sr->t0;
    dm_dataset d;
    memset(&d, 0, sizeof d);
    const char *out = sr->out;
    int synth = !strcmp(dm_cfg_str(cfg, "data.format"), "synth");
    int rc = DM_OK;
    if (synth) {
        dm_log("generating synthetic data: %lld users, %lld items (seed %lld)", dm_cfg_int(cfg, "synth.users"),
               dm_cfg_int(cfg, "synth.items"), dm_cfg_int(cfg, "run.seed"));
        rc = synth_dataset(ctx, cfg, &d);
    } else {
        dm_raw raw = {0};
        dm_meta meta = {0};
        int32_t *raw_to_item = NULL;
        dm_log("reading %s (%s)%s%s", dm_cfg_str(cfg, "data.inter"), dm_cfg_str(cfg, "data.format"),
               dm_cfg_str(cfg, "data.meta")[0] ? " and " : "", dm_cfg_str(cfg, "data.meta"));
        rc = read_inputs(ctx, cfg, &raw, &meta);
        dm_process_opts po;
        if (!rc) rc = ds_process_opts(cfg, &po);
        if (!rc) rc = par_agree(ctx, dm_process(&raw, &meta, &po, &d, &raw_to_item));
        if (!rc) {
            dm_log_v(2, "  parsed %zu interactions, %zu metadata entries in %.2fs", raw.n, meta.n, dm_wtime() - t0);
            rc = add_source(ctx, &d.sources, dm_cfg_str(cfg, "data.inter"));
            const char *extra[] = {"data.meta", "data.tags", "data.item_map", "data.valid", "data.test"};
            for (int k = 0; !rc && k < 5; k++)
                if (dm_cfg_str(cfg, extra[k])[0]) rc = add_source(ctx, &d.sources, dm_cfg_str(cfg, extra[k]));
        }
        if (!rc) rc = read_features(ctx, cfg, &d, &raw, raw_to_item);
        free(raw_to_item);
        dm_raw_free(&raw);
        dm_meta_free(&meta);
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = ds_write(ctx, &d, cfg, out, synth ? "synth" : "ingest", sr->hash, dm_wtime() - t0);
    if (!rc) summary(&d, out, dm_wtime() - t0, ctx->size);
    dm_dataset_free(&d);
    if (!rc) par_log_peak(ctx);
    return rc;
}

static int prepare_synth(dm_cfg *cfg, const char *const *args, int nargs)
{
    if (nargs) {
        DM_ERR(DM_ECONFIG, "synth: unexpected argument '%s'", args[0]);
        DM_HINT("config files end in .cfg; settings go through --set group.key=value");
        return DM_ECONFIG;
    }
    return dm_cfg_set(cfg, "data.format=synth");
}


/* ---- the stage's contract (stage.h) ---- */

/* ingest and synth are one stage under two names: the same body, groups and file; synth sets
 * data.format = "synth" */
#define DATASET_STAGE .output = "dataset.h5", .inputs = {NULL}, .groups = ds_config_groups, .run = stage_ingest

const stage_def stage_ingest_def = {
    .name = "ingest",
    DATASET_STAGE,
    .summary = "read a real dataset (Amazon, RecBole, SASRec, TSV, features) into dataset.h5",
    .usage = USAGE_INGEST,
};

const stage_def stage_synth_def = {
    .name = "synth",
    DATASET_STAGE,
    .prepare = prepare_synth,
    .summary = "generate the synthetic default dataset into dataset.h5",
    .usage = USAGE_SYNTH,
};
