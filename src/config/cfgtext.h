/* cfgtext.h: one setting of a resolved config as text in --set syntax, the form `dynmm sweep`
 * writes into run commands and `dynmm report` compares configurations and labels rows with.
 *
 * Unlike the canonical serialisation (dm_cfg_serialize: libconfig syntax, quoted strings, "1.0"),
 * values are bare: 16, 0.5, true, bce, [pop,sasrec]; floats in their shortest round-trip form.
 * Keys must exist in the key table (asserted: a wrong key name is a bug in the caller).
 */
#ifndef DM_CFGTEXT_H
#define DM_CFGTEXT_H

#include "config.h"

/* Appends the value of `key` to out. */
int dm_cfgtext_value(const dm_cfg *c, const char *key, dm_buf *out);
/* Type of `key` (DM_KT_*). */
dm_ktype dm_cfgtext_type(const char *key);

#endif
