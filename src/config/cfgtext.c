/* cfgtext.c: config values in --set syntax, see cfgtext.h. */
#include "cfgtext.h"

#include "../core/err.h"

#include <stdio.h>
#include <stdlib.h>

dm_ktype dm_cfgtext_type(const char *key)
{
    size_t n;
    const dm_key *k = dm_keys(&n);
    int i = dm_key_index(key);
    DM_ASSERT(i >= 0);
    return k[i].type;
}

/* shortest %g that reads back as x */
static int put_float(dm_buf *b, double x)
{
    char t[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x) break;
    }
    return dm_buf_adds(b, t);
}

int dm_cfgtext_value(const dm_cfg *c, const char *key, dm_buf *out)
{
    int i = dm_key_index(key);
    DM_ASSERT(i >= 0);
    size_t n;
    const dm_key *k = &dm_keys(&n)[i];
    const dm_cval *v = &c->v[i];
    switch (k->type) {
    case DM_KT_INT: return dm_buf_printf(out, "%lld", v->i);
    case DM_KT_FLOAT: return put_float(out, v->f);
    case DM_KT_BOOL: return dm_buf_adds(out, v->i ? "true" : "false");
    case DM_KT_STR:
    case DM_KT_ENUM: return dm_buf_adds(out, v->s ? v->s : "");
    default:
        DM_CALL(dm_buf_addc(out, '['));
        for (size_t j = 0; j < v->n; j++) {
            if (j) DM_CALL(dm_buf_addc(out, ','));
            if (k->type == DM_KT_INTS) DM_CALL(dm_buf_printf(out, "%lld", v->il[j]));
            else if (k->type == DM_KT_FLOATS) DM_CALL(put_float(out, v->fl[j]));
            else DM_CALL(dm_buf_adds(out, v->sl[j]));
        }
        return dm_buf_addc(out, ']');
    }
}
