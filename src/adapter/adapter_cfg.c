/* adapter_cfg.c: the adapter's settings from the adapter.* keys (adapter_config_from, see
 * adapter.h). The key table (src/config/keys/adapter.def) holds every default and range; this file
 * only maps keys to fields, so the stream stage, tests and benchmarks start from the same values.
 */
#include "adapter.h"

#include "../core/err.h"

#include <string.h>

void adapter_config_from(const dm_cfg *cfg, adapter_config *c)
{
    memset(c, 0, sizeof *c);
    c->hidden = (int)dm_cfg_int(cfg, "adapter.hidden");
    c->negatives = (int)dm_cfg_int(cfg, "adapter.negatives");
    c->serve_rows = (int)dm_cfg_int(cfg, "adapter.serve_rows");
    const char *loss = dm_cfg_str(cfg, "adapter.loss");
    DM_ASSERT(!strcmp(loss, "softmax") || !strcmp(loss, "bce")); /* the key's ENUM choices */
    c->loss = !strcmp(loss, "bce") ? ADAPTER_LOSS_BCE : ADAPTER_LOSS_SOFTMAX;
    c->gate = dm_cfg_bool(cfg, "adapter.gate");
    c->ema = dm_cfg_bool(cfg, "adapter.ema");
    c->kl = dm_cfg_bool(cfg, "adapter.kl");
    c->ewc = dm_cfg_bool(cfg, "adapter.ewc");
    c->sigma = (float)dm_cfg_float(cfg, "adapter.sigma");
    c->lambda_ewc = (float)dm_cfg_float(cfg, "adapter.lambda_ewc");
    c->fisher_decay = (float)dm_cfg_float(cfg, "adapter.fisher_decay");
    c->ema_decay = (float)dm_cfg_float(cfg, "adapter.ema_decay");
    c->lr = (float)dm_cfg_float(cfg, "adapter.lr");
    c->beta1 = (float)dm_cfg_float(cfg, "adapter.beta1");
    c->beta2 = (float)dm_cfg_float(cfg, "adapter.beta2");
    c->eps = (float)dm_cfg_float(cfg, "adapter.eps");
    c->zero_init = dm_cfg_bool(cfg, "adapter.zero_init");
}
