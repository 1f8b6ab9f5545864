/* align_cfg.c: the aligner's settings from the align.* keys (align_config_from, see align.h). The
 * key table (src/config/keys/align.def) holds every default and range; this file only maps keys to
 * fields, so the stages, tests and benchmarks all start from the same values.
 */
#include "align.h"

#include "../core/err.h"

#include <string.h>

/* index of s among the '|'-separated names, as the key table's ENUM choices */
static int choice(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    DM_ASSERT(0 && "an ENUM value outside the key table's choices");
    return 0;
}

int align_config_from(const dm_cfg *cfg, const int dim_avail[ALIGN_K], int dim_user, align_config *c)
{
    static const char *const acts[] = {"relu", "gelu", "tanh"};      /* ALIGN_ACT_* */
    static const char *const fusions[] = {"mean", "gate"};           /* ALIGN_FUSE_* */
    static const char *const rank_losses[] = {"softmax", "bce"};     /* ALIGN_RANK_* */
    memset(c, 0, sizeof *c);
    for (size_t q = 0; q < dm_cfg_len(cfg, "align.modalities"); q++) {
        const char *mn = dm_cfg_str_at(cfg, "align.modalities", q);
        int k = 0;
        while (k < ALIGN_K && strcmp(mn, align_modality_name(k))) k++;
        if (k == ALIGN_K) {
            char w[256];
            return DM_ERR(DM_ECONFIG, "%s: unknown modality '%s' (cf, text, visual, audio)",
                          dm_cfg_where(cfg, "align.modalities", w, sizeof w), mn);
        }
        c->dim_in[k] = dim_avail ? dim_avail[k] : 0;
    }
    c->dim_user = dim_user;
    c->d = (int)dm_cfg_int(cfg, "align.dim");
    c->hidden = (int)dm_cfg_int(cfg, "align.hidden");
    c->act = choice(dm_cfg_str(cfg, "align.act"), acts, 3);
    c->fusion = choice(dm_cfg_str(cfg, "align.fusion"), fusions, 2);
    c->rank_loss = choice(dm_cfg_str(cfg, "align.rank_loss"), rank_losses, 2);
    c->n_neg = (int)dm_cfg_int(cfg, "align.negatives");
    c->tau = (float)dm_cfg_float(cfg, "align.tau");
    c->w_nce = (float)dm_cfg_float(cfg, "align.w_nce");
    c->w_recon = (float)dm_cfg_float(cfg, "align.w_recon");
    c->w_match = (float)dm_cfg_float(cfg, "align.w_match");
    c->w_rank = (float)dm_cfg_float(cfg, "align.w_rank");
    c->modality_dropout = (float)dm_cfg_float(cfg, "align.modality_dropout");
    c->lr = (float)dm_cfg_float(cfg, "align.lr");
    c->beta1 = (float)dm_cfg_float(cfg, "align.beta1");
    c->beta2 = (float)dm_cfg_float(cfg, "align.beta2");
    c->eps = (float)dm_cfg_float(cfg, "align.eps");
    c->weight_decay = (float)dm_cfg_float(cfg, "align.weight_decay");
    c->chunk_floats = (size_t)(dm_cfg_float(cfg, "align.nce_chunk_mb") * 1048576.0 / 4.0);
    return DM_OK;
}
