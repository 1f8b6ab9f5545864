/* align_io.c: see align_io.h. */
#include "align_io.h"

#include "../src/core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the shape attributes of /align: the feature widths of the modalities, then the rest */
#define N_SHAPE (ALIGN_K + 7)
static const char *const shape_attrs[N_SHAPE] = {"dim_cf", "dim_text", "dim_visual", "dim_audio", "dim_user", "d",
                                                 "hidden", "act",    "fusion",     "rank_loss", "negatives"};

/* the fields of c that shape_attrs name, in the same order */
static void shape_fields(align_config *c, int *f[N_SHAPE])
{
    for (int k = 0; k < ALIGN_K; k++) f[k] = &c->dim_in[k];
    int *rest[] = {&c->dim_user, &c->d, &c->hidden, &c->act, &c->fusion, &c->rank_loss, &c->n_neg};
    for (int k = ALIGN_K; k < N_SHAPE; k++) f[k] = rest[k - ALIGN_K];
}

/* the dataset of tensor t ("/align/weights/enc.text.w1"), its size in floats and shape */
static size_t weight_path(const align_model *m, int t, char *nm, size_t cap, int *nd, size_t shape[2])
{
    const char *name;
    size_t n = align_tensor_info(m, t, &name, nd, shape);
    snprintf(nm, cap, "/align/weights/%s", name);
    return n;
}

int align_write_model(h5file *f, const align_model *m)
{
    int rc = DM_OK;
    for (int t = 0; !rc && t < m->ntensors; t++) {
        char nm[160];
        int nd;
        size_t shape[2], n = weight_path(m, t, nm, sizeof nm, &nd, shape);
        rc = h5_write_all(f, nm, H5_F32, shape[0], nd == 2 ? n / shape[0] : 0, m->params_mem + m->offset[t]);
    }
    align_config c = m->cfg;
    int *v[N_SHAPE];
    shape_fields(&c, v);
    for (int k = 0; !rc && k < N_SHAPE; k++) rc = h5_attr_i64(f, "/align", shape_attrs[k], *v[k]);
    return rc;
}

int align_load(par_ctx *ctx, const char *path, int batch, align_model *m, align_acts *ai, float **z_base, size_t *n_items)
{
    memset(m, 0, sizeof *m);
    memset(ai, 0, sizeof *ai);
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    int rc = h5_check_format(&f, ALIGN_FORMAT, ALIGN_VERSION);
    /* the settings the model was trained with (the file's resolved config), then its shape */
    align_config ac;
    memset(&ac, 0, sizeof ac);
    dm_cfg fc;
    memset(&fc, 0, sizeof fc);
    char *text = NULL;
    if (!rc) rc = h5_get_attr_str(&f, "/", "config", &text);
    if (!rc) rc = dm_cfg_init(&fc);
    if (!rc) rc = dm_cfg_load_string(&fc, text, path);
    if (!rc) rc = align_config_from(&fc, NULL, 0, &ac);
    free(text);
    if (fc.v) dm_cfg_free(&fc);
    int *fld[N_SHAPE];
    shape_fields(&ac, fld);
    for (int k = 0; !rc && k < N_SHAPE; k++) {
        int64_t v;
        rc = h5_get_attr_i64(&f, "/align", shape_attrs[k], &v);
        *fld[k] = (int)v;
    }
    ac.max_batch = ac.max_users = ac.max_bank = batch;
    ac.max_rank = 1;
    if (!rc) rc = align_init(m, &ac);
    if (!rc) rc = align_acts_init(ai, &ac);
    for (int t = 0; !rc && t < m->ntensors; t++) {
        char nm[160];
        int nd;
        size_t shape[2], r, c, n = weight_path(m, t, nm, sizeof nm, &nd, shape);
        rc = h5_shape(&f, nm, &r, &c, NULL);
        if (!rc && r * (c ? c : 1) != n) rc = DM_ERR(DM_EFORMAT, "'%s': %s has %zu values, expected %zu", path, nm, r * (c ? c : 1), n);
        if (!rc) rc = h5_read_rows(&f, nm, H5_F32, 0, r, m->params_mem + m->offset[t]);
    }
    if (!rc && z_base) {
        void *p;
        size_t r, c;
        rc = h5_read_all(&f, "/align/z_base", H5_F32, &p, &r, &c);
        if (!rc) {
            *z_base = p;
            *n_items = r;
        }
    }
    h5_close(&f);
    return par_agree(ctx, rc);
}
