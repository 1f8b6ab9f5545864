/* metrics_io.c: the per-user metric rows of results files, see metrics_io.h. */
#include "metrics_io.h"

#include "../src/core/err.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "a/b/c" with three non-empty parts, a not one of the groups that hold other data */
static int split_name(const char *name, char **a, char **b, char **c)
{
    const char *s1 = strchr(name, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || strchr(s2 + 1, '/') || s1 == name || s2 == s1 + 1 || !s2[1]) return 0;
    static const char *const other[] = {"candidates", "columns", "stream", "prompt", "explain", "synth", "serve", NULL};
    for (int k = 0; other[k]; k++)
        if ((size_t)(s1 - name) == strlen(other[k]) && !strncmp(name, other[k], strlen(other[k]))) return 0;
    *a = dm_str_ndup(name, (size_t)(s1 - name));
    *b = dm_str_ndup(s1 + 1, (size_t)(s2 - s1 - 1));
    *c = dm_str_dup(s2 + 1);
    return 1;
}

int mio_open(h5file *f, mio_list *l)
{
    memset(l, 0, sizeof *l);
    if (!h5_exists(f, "/columns/chars")) return DM_OK;
    DM_CALL(h5_read_strv(f, "/columns", &l->cols, &l->ncols));
    h5_dataset_info *ds = NULL;
    size_t nds = 0;
    int rc = h5_list_datasets(f, &ds, &nds);
    if (!rc) l->e = calloc(nds + 1, sizeof *l->e);
    if (!rc && !l->e) rc = DM_ERR(DM_ENOMEM, "out of memory listing '%s'", f->path);
    for (size_t i = 0; !rc && i < nds; i++) {
        if (ds[i].rank != 2 || !ds[i].is_float) continue;
        mio_entry e = {0};
        if (!split_name(ds[i].name, &e.split, &e.protocol, &e.model)) continue;
        size_t rows, cols;
        int exists;
        char path[1024];
        snprintf(path, sizeof path, "/%s", ds[i].name);
        rc = h5_shape(f, path, &rows, &cols, &exists);
        if (!rc && exists && cols == l->ncols && (e.name = dm_str_dup(ds[i].name))) {
            e.rows = rows;
            l->e[l->n++] = e;
        } else {
            free(e.split);
            free(e.protocol);
            free(e.model);
        }
    }
    h5_dataset_info_free(ds, nds);
    if (rc) mio_free(l);
    return rc;
}

void mio_free(mio_list *l)
{
    for (size_t i = 0; l->e && i < l->n; i++) {
        DM_FREE_ALL(l->e[i].name, l->e[i].split, l->e[i].protocol, l->e[i].model);
    }
    free(l->e);
    dm_strv_free(l->cols, l->ncols);
    memset(l, 0, sizeof *l);
}

int mio_rows(h5file *f, const mio_list *l, const mio_entry *e, double **rows)
{
    char path[1024];
    snprintf(path, sizeof path, "/%s", e->name);
    void *p = NULL;
    size_t r, c;
    *rows = NULL;
    DM_CALL(h5_read_all(f, path, H5_F64, &p, &r, &c));
    if (r != e->rows || c != l->ncols) {
        free(p);
        return DM_ERR(DM_EFORMAT, "'%s': %s changed shape while read", f->path, path);
    }
    *rows = p;
    return DM_OK;
}

int mio_col(const mio_list *l, const char *metric)
{
    for (size_t j = 0; j < l->ncols; j++)
        if (!strcmp(l->cols[j], metric)) return (int)j;
    return -1;
}
