/* dataset_io.c: dataset.h5 writer and reader, see dataset_io.h. */
#include "dataset_io.h"

#include "../src/core/err.h"

#include <hdf5.h>
#include "../src/core/sha256.h"
#include "../src/core/shard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ds_config_groups[] = {"data", "modal", "split.temporal_valid", "split.temporal_test", "split.loo_min_len", "window", "synth", NULL};

int ds_stage_hash(par_ctx *ctx, const dm_cfg *cfg, char out[65])
{
    dm_buf b = {0};
    int rc = dm_cfg_serialize(cfg, ds_config_groups, &b);
    if (!rc) rc = dm_buf_printf(&b, "run.seed = %lld;\n", dm_cfg_int(cfg, "run.seed"));
    static const char *const files[] = {"data.inter", "data.meta", "data.valid", "data.test", "modal.text.path",
                                        "modal.visual.path", "modal.audio.path", "modal.text.ids", "modal.visual.ids",
                                        "modal.audio.ids", NULL};
    int synth = !strcmp(dm_cfg_str(cfg, "data.format"), "synth");
    /* what the readers make of the same files: 2 = Amazon text with HTML references decoded */
    if (!rc && !synth) rc = dm_buf_printf(&b, "readers = 2;\n");
    for (int k = 0; !rc && files[k]; k++) {
        const char *p = dm_cfg_str(cfg, files[k]);
        if (!p[0] || (synth && !strncmp(files[k], "data.", 5))) continue;
        char hex[65] = "";
        if (ctx->rank == 0) rc = dm_sha256_file(p, hex);
        rc = par_agree(ctx, rc);
        if (!rc) rc = par_bcast(ctx, hex, sizeof hex, 0);
        if (!rc) rc = dm_buf_printf(&b, "%s %s\n", files[k], hex);
    }
    if (!rc) dm_sha256_hex(b.data, b.len, out);
    dm_buf_free(&b);
    return rc;
}

int ds_process_opts(const dm_cfg *cfg, dm_process_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *dd = dm_cfg_str(cfg, "data.dedup");
    o->dedup = !strcmp(dd, "first") ? 1 : (!strcmp(dd, "last") ? 2 : 0);
    o->kcore_user = dm_cfg_int(cfg, "data.kcore_user");
    o->kcore_item = dm_cfg_int(cfg, "data.kcore_item");
    const char *fmt = dm_cfg_str(cfg, "data.format");
    /* integer ids keep their numbering (TikTok, SASRec text); string ids are numbered by appearance */
    o->numeric_ids = !strcmp(fmt, "tsv") || !strcmp(fmt, "sasrec") || !strcmp(fmt, "synth");
    o->loo_min_len = (int)dm_cfg_int(cfg, "split.loo_min_len");
    o->temporal_valid = dm_cfg_float(cfg, "split.temporal_valid");
    o->temporal_test = dm_cfg_float(cfg, "split.temporal_test");
    o->window_time = !strcmp(dm_cfg_str(cfg, "window.mode"), "time");
    o->window_count = dm_cfg_int(cfg, "window.count");
    const char *u = dm_cfg_str(cfg, "window.unit");
    o->window_unit = !strcmp(u, "second") ? 0 : !strcmp(u, "day") ? 1 : !strcmp(u, "week") ? 2 : 3;
    o->window_width = dm_cfg_int(cfg, "window.width");
    o->window_last = dm_cfg_int(cfg, "window.last");
    o->window_start = dm_cfg_float(cfg, "window.start");
    o->n_price_edges = dm_cfg_len(cfg, "data.price_buckets");
    static _Thread_local double edges[64];
    if (o->n_price_edges > 64) return DM_ERR(DM_ECONFIG, "data.price_buckets: at most 64 edges");
    for (size_t k = 0; k < o->n_price_edges; k++) {
        edges[k] = dm_cfg_float_at(cfg, "data.price_buckets", k);
        if (k && edges[k] <= edges[k - 1]) {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: price bucket edges must increase", dm_cfg_where(cfg, "data.price_buckets", w, sizeof w));
            return DM_ECONFIG;
        }
    }
    o->price_edges = edges;
    o->max_cat_levels = (int)dm_cfg_int(cfg, "data.max_category_levels");
    o->min_attr_count = dm_cfg_int(cfg, "data.min_attr_count");
    return DM_OK;
}

/* the rows [lo, hi) of a string table as a local table (offsets rebased) */
static int sub_strtab(const dm_strtab *t, size_t lo, size_t hi, dm_strtab *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = lo; i < hi; i++) {
        size_t l;
        const char *s = dm_strtab_get(t, i, &l);
        DM_CALL(dm_strtab_add(out, s, l));
    }
    return DM_OK;
}

static int write_strtab_block(h5file *f, const char *name, const dm_strtab *t, size_t lo, size_t hi)
{
    dm_strtab sub;
    DM_CALL(sub_strtab(t, lo, hi, &sub));
    int rc = h5_write_strtab(f, name, &sub, lo, t->n);
    dm_strtab_free(&sub);
    return rc;
}

void ds_user_block(par_ctx *ctx, const dm_dataset *d, size_t *lo, size_t *hi)
{
    dm_shard_weighted(d->user_off, d->n_users, ctx->size, ctx->rank, lo, hi);
}

int ds_write(par_ctx *ctx, const dm_dataset *d, const dm_cfg *cfg, const char *path, const char *stage,
             const char *stage_hash, double wall)
{
    h5file f;
    /* attribute values must agree on every rank: rank 0's wall time is the one recorded */
    DM_CALL(par_bcast(ctx, &wall, sizeof wall, 0));
    int rc = h5_create(ctx, path, (int)dm_cfg_int(cfg, "io.compress"), (size_t)dm_cfg_int(cfg, "io.chunk_rows"), &f);
    DM_CALL(par_agree(ctx, rc));
    size_t ulo, uhi, ilo, ihi;
    dm_shard_weighted(d->user_off, d->n_users, ctx->size, ctx->rank, &ulo, &uhi);
    dm_shard_even(d->n_items, ctx->size, ctx->rank, &ilo, &ihi);
    size_t r0 = (size_t)d->user_off[ulo], r1 = (size_t)d->user_off[uhi], n = d->n_inter;
    int last = ctx->rank == ctx->size - 1;
#define W(x) do { rc = (x); if (rc) goto fail; } while (0)
    W(h5_write_provenance(&f, DS_FORMAT, DS_VERSION, stage, cfg, stage_hash));
    W(h5_attr_i64(&f, "/", "n_users", (int64_t)d->n_users));
    W(h5_attr_i64(&f, "/", "n_items", (int64_t)d->n_items));
    W(h5_attr_i64(&f, "/", "n_interactions", (int64_t)d->n_inter));
    W(h5_attr_i64(&f, "/", "has_time", d->has_time));
    W(h5_attr_str(&f, "/", "sources", d->sources.data ? d->sources.data : ""));
    W(h5_attr_f64(&f, "/", "wall_seconds", wall));
    W(write_strtab_block(&f, "/users/id", &d->user_id, ulo, uhi));
    W(h5_write_rows(&f, "/users/offsets", H5_I64, d->n_users + 1, 0, ulo, uhi - ulo + (last ? 1 : 0), d->user_off + ulo));
    W(h5_write_rows(&f, "/inter/item", H5_I32, n, 0, r0, r1 - r0, d->item + r0));
    W(h5_write_rows(&f, "/inter/time", H5_I64, n, 0, r0, r1 - r0, d->time + r0));
    W(h5_write_rows(&f, "/split/loo", H5_I8, n, 0, r0, r1 - r0, d->split_loo + r0));
    W(h5_write_rows(&f, "/split/temporal", H5_I8, n, 0, r0, r1 - r0, d->split_temporal + r0));
    if (d->split_given) W(h5_write_rows(&f, "/split/given", H5_I8, n, 0, r0, r1 - r0, d->split_given + r0));
    W(h5_attr_i64(&f, "/split", "temporal_valid_from_ms", d->temporal_cut[0]));
    W(h5_attr_i64(&f, "/split", "temporal_test_from_ms", d->temporal_cut[1]));
    W(h5_write_rows(&f, "/window/id", H5_I32, n, 0, r0, r1 - r0, d->window + r0));
    W(h5_write_all(&f, "/window/start", H5_I64, d->n_windows + 1, 0, d->window_start));
    W(h5_attr_i64(&f, "/window", "n_windows", (int64_t)d->n_windows));
    W(h5_attr_str(&f, "/window", "mode", dm_cfg_str(cfg, "window.mode")));
    W(write_strtab_block(&f, "/items/id", &d->item_id, ilo, ihi));
    W(write_strtab_block(&f, "/items/title", &d->title, ilo, ihi));
    W(write_strtab_block(&f, "/items/brand", &d->brand, ilo, ihi));
    W(write_strtab_block(&f, "/items/category", &d->category, ilo, ihi));
    W(h5_write_rows(&f, "/items/price", H5_F32, d->n_items, 0, ilo, ihi - ilo, d->price + ilo));
    W(h5_write_rows(&f, "/items/has_title", H5_U8, d->n_items, 0, ilo, ihi - ilo, d->has_title + ilo));
    {
        size_t a0 = (size_t)d->item_attr_off[ilo], a1 = (size_t)d->item_attr_off[ihi];
        W(h5_write_rows(&f, "/items/attr_offsets", H5_I64, d->n_items + 1, 0, ilo, ihi - ilo + (last ? 1 : 0),
                        d->item_attr_off + ilo));
        W(h5_write_rows(&f, "/items/attr", H5_I32, (size_t)d->item_attr_off[d->n_items], 0, a0, a1 - a0, d->item_attr + a0));
    }
    {
        size_t alo, ahi;
        dm_shard_even(d->n_attr, ctx->size, ctx->rank, &alo, &ahi);
        W(write_strtab_block(&f, "/attrs/name", &d->attr_name, alo, ahi));
        W(h5_write_rows(&f, "/attrs/kind", H5_I8, d->n_attr, 0, alo, ahi - alo, d->attr_kind + alo));
        W(h5_write_rows(&f, "/attrs/level", H5_I8, d->n_attr, 0, alo, ahi - alo, d->attr_level + alo));
    }
    for (int m = 0; m < d->n_modal; m++) {
        const dm_modal *md = &d->modal[m];
        char nm[128];
        snprintf(nm, sizeof nm, "/modal/%s/features", md->name);
        W(h5_write_rows(&f, nm, H5_F32, d->n_items, md->dim, ilo, ihi - ilo, md->feat + ilo * md->dim));
        snprintf(nm, sizeof nm, "/modal/%s/present", md->name);
        W(h5_write_rows(&f, nm, H5_U8, d->n_items, 0, ilo, ihi - ilo, md->present + ilo));
        snprintf(nm, sizeof nm, "/modal/%s", md->name);
        W(h5_attr_str(&f, nm, "source", md->source));
        size_t np = 0;
        for (size_t i = 0; i < d->n_items; i++) np += md->present[i];
        W(h5_attr_i64(&f, nm, "n_present", (int64_t)np));
    }
    if (d->drift_user) {
        W(h5_write_rows(&f, "/synth/drift_user", H5_U8, d->n_users, 0, ulo, uhi - ulo, d->drift_user + ulo));
        W(h5_write_rows(&f, "/synth/taste_before", H5_I32, d->n_users, 0, ulo, uhi - ulo, d->taste_before + ulo));
        W(h5_write_rows(&f, "/synth/taste_after", H5_I32, d->n_users, 0, ulo, uhi - ulo, d->taste_after + ulo));
        W(h5_write_rows(&f, "/synth/item_cluster", H5_I32, d->n_items, 0, ilo, ihi - ilo, d->item_cluster + ilo));
        W(h5_attr_i64(&f, "/synth", "drift_time_ms", d->drift_time));
    }
#undef W
    rc = par_agree(ctx, DM_OK);
    if (rc) goto fail;
    return h5_commit(&f);
fail:
    rc = par_agree(ctx, rc);
    h5_discard(&f);
    return rc;
}

static int read_i64_attr(h5file *f, const char *obj, const char *name, int64_t *v) { return h5_get_attr_i64(f, obj, name, v); }

int ds_read(par_ctx *ctx, const char *path, dm_dataset *d)
{
    memset(d, 0, sizeof *d);
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    int rc = h5_check_format(&f, DS_FORMAT, DS_VERSION);
    size_t r, c;
    int64_t v;
    void *p;
#define R(x) do { rc = (x); if (rc) goto done; } while (0)
    if (rc) goto done;
    R(read_i64_attr(&f, "/", "n_users", &v)); d->n_users = (size_t)v;
    R(read_i64_attr(&f, "/", "n_items", &v)); d->n_items = (size_t)v;
    R(read_i64_attr(&f, "/", "n_interactions", &v)); d->n_inter = (size_t)v;
    R(read_i64_attr(&f, "/", "has_time", &v)); d->has_time = (int)v;
    {
        char *s = NULL;
        R(h5_get_attr_str(&f, "/", "sources", &s));
        rc = dm_buf_adds(&d->sources, s);
        free(s);
        if (rc) goto done;
    }
    R(h5_read_strtab(&f, "/users/id", &d->user_id));
    R(h5_read_all(&f, "/users/offsets", H5_I64, &p, &r, &c)); d->user_off = p;
    R(h5_read_all(&f, "/inter/item", H5_I32, &p, &r, &c)); d->item = p;
    R(h5_read_all(&f, "/inter/time", H5_I64, &p, &r, &c)); d->time = p;
    R(h5_read_all(&f, "/split/loo", H5_I8, &p, &r, &c)); d->split_loo = p;
    R(h5_read_all(&f, "/split/temporal", H5_I8, &p, &r, &c)); d->split_temporal = p;
    if (h5_exists(&f, "/split/given")) {
        R(h5_read_all(&f, "/split/given", H5_I8, &p, &r, &c));
        d->split_given = p;
    }
    R(read_i64_attr(&f, "/split", "temporal_valid_from_ms", &d->temporal_cut[0]));
    R(read_i64_attr(&f, "/split", "temporal_test_from_ms", &d->temporal_cut[1]));
    R(h5_read_all(&f, "/window/id", H5_I32, &p, &r, &c)); d->window = p;
    R(h5_read_all(&f, "/window/start", H5_I64, &p, &r, &c)); d->window_start = p;
    R(dm_make_stream_split(d));
    d->n_windows = r ? r - 1 : 0;
    R(h5_read_strtab(&f, "/items/id", &d->item_id));
    R(h5_read_strtab(&f, "/items/title", &d->title));
    R(h5_read_strtab(&f, "/items/brand", &d->brand));
    R(h5_read_strtab(&f, "/items/category", &d->category));
    R(h5_read_all(&f, "/items/price", H5_F32, &p, &r, &c)); d->price = p;
    R(h5_read_all(&f, "/items/has_title", H5_U8, &p, &r, &c)); d->has_title = p;
    R(h5_read_all(&f, "/items/attr_offsets", H5_I64, &p, &r, &c)); d->item_attr_off = p;
    R(h5_read_all(&f, "/items/attr", H5_I32, &p, &r, &c)); d->item_attr = p;
    R(h5_read_strtab(&f, "/attrs/name", &d->attr_name));
    d->n_attr = d->attr_name.n;
    R(h5_read_all(&f, "/attrs/kind", H5_I8, &p, &r, &c)); d->attr_kind = p;
    R(h5_read_all(&f, "/attrs/level", H5_I8, &p, &r, &c)); d->attr_level = p;
    for (int m = 0; m < 3; m++) {
        char nm[128];
        snprintf(nm, sizeof nm, "/modal/%s/features", dm_modal_names[m]);
        if (!h5_exists(&f, nm)) continue;
        dm_modal *md = &d->modal[d->n_modal];
        snprintf(md->name, sizeof md->name, "%s", dm_modal_names[m]);
        R(h5_read_all(&f, nm, H5_F32, &p, &r, &c)); md->feat = p; md->dim = c;
        snprintf(nm, sizeof nm, "/modal/%s/present", dm_modal_names[m]);
        R(h5_read_all(&f, nm, H5_U8, &p, &r, &c)); md->present = p;
        d->n_modal++;
        snprintf(nm, sizeof nm, "/modal/%s", dm_modal_names[m]);
        char *s = NULL;
        if (h5_has_attr(&f, nm, "source") && h5_get_attr_str(&f, nm, "source", &s) == DM_OK) {
            snprintf(md->source, sizeof md->source, "%s", s);
            free(s);
        }
    }
    /* version 1 files also hold /candidates: sampled sets are now drawn where they are scored (cands.h) */
    if (h5_exists(&f, "/synth/drift_user")) {
        R(h5_read_all(&f, "/synth/drift_user", H5_U8, &p, &r, &c)); d->drift_user = p;
        R(h5_read_all(&f, "/synth/taste_before", H5_I32, &p, &r, &c)); d->taste_before = p;
        R(h5_read_all(&f, "/synth/taste_after", H5_I32, &p, &r, &c)); d->taste_after = p;
        R(h5_read_all(&f, "/synth/item_cluster", H5_I32, &p, &r, &c)); d->item_cluster = p;
        R(read_i64_attr(&f, "/synth", "drift_time_ms", &d->drift_time));
    }
    if (d->user_off[d->n_users] != (int64_t)d->n_inter) rc = DM_ERR(DM_EFORMAT, "'%s': user offsets do not match the interaction count", path);
#undef R
done:
    h5_close(&f);
    rc = par_agree(ctx, rc);
    if (rc) dm_dataset_free(d);
    return rc;
}
