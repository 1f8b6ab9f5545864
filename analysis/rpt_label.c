/* rpt_label.c: display names of the report (built-in and report.labels), see rpt_label.h. */
#include "rpt_label.h"

#include "../src/core/err.h"
#include "../src/core/strv.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* generated labels, kept until rpt_label_free() */
static char **g_lab_names, **g_lab_vals;
static size_t g_nlab_names, g_nlab_vals;

static const char *cache(const char *name, const char *val)
{
    if (dm_strv_push(&g_lab_names, &g_nlab_names, name) || dm_strv_push(&g_lab_vals, &g_nlab_vals, val)) return name;
    return g_lab_vals[g_nlab_vals - 1];
}

/* report.labels entry for name, or NULL */
static const char *user_label(const rpt_opts *o, const char *name)
{
    size_t n = dm_cfg_len(o->cfg, "report.labels"), l = strlen(name);
    for (size_t i = 0; i < n; i++) {
        const char *e = dm_cfg_str_at(o->cfg, "report.labels", i);
        if (!strncmp(e, name, l) && e[l] == '=') return e + l + 1;
    }
    return NULL;
}

static int is_user_label(const rpt_opts *o, const char *name) { return user_label(o, name) != NULL; }

const char *rpt_label(const rpt_opts *o, const char *name)
{
    const char *u = user_label(o, name);
    if (u) return u;
    for (size_t i = 0; i < g_nlab_names; i++)
        if (!strcmp(g_lab_names[i], name)) return g_lab_vals[i];
    const char *st = rpt_stored_label(name);
    if (st) return st;
    static const char *const known[][2] = {{"mrr", "MRR"},
                                           {"valid", "validation"}, {"test", "test"}, {"full", "full ranking"},
                                           {"seconds", "time per batch (s)"}, {"prompt_len", "prompt length L (tokens)"},
                                           {"snr_db", "SNR (dB)"}, {"window", "window"},
                                           /* the prequential protocol of `dynmm stream` */
                                           {"prequential", "prequential"}, {"full-drifting", "full ranking, drifting users"},
                                           {"full-stable", "full ranking, stable users"}, {"static", "static aligner"},
                                           {"adapter", "adapter"}, {"no_gate", "adapter w/o gate"}, {"no_ema", "adapter w/o EMA"},
                                           {"no_replay", "adapter w/o replay"}, {"no_kl", "adapter w/o KL"},
                                           {"no_ewc", "adapter w/o EWC"}, {"retrained", "SASRec retrained"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i][0], name)) return known[i][1];
    char buf[512];
    const char *at = strchr(name, '@');
    static const char *const metrics[][2] = {{"hit", "Hit"}, {"ndcg", "NDCG"}, {"recall", "Recall"}, {"precision", "Precision"},
                                             {"mrr", "MRR"}, {"map", "MAP"}};
    if (at) {
        for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
            if (strlen(metrics[i][0]) == (size_t)(at - name) && !strncmp(name, metrics[i][0], (size_t)(at - name))) {
                snprintf(buf, sizeof buf, "%s@%s", metrics[i][1], at + 1);
                return cache(name, buf);
            }
        /* a model variant: "sasrec@drop_visual_50" -> "SASRec drop_visual_50" */
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(at - name), name);
        snprintf(buf, sizeof buf, "%s %s", rpt_label(o, base), at + 1);
        return cache(name, buf);
    }
    long n;
    char tail;
    if ((sscanf(name, "uni%ld%c", &n, &tail) == 1 || sscanf(name, "pop%ld%c", &n, &tail) == 1) && n > 0) {
        snprintf(buf, sizeof buf, "1+%ld %s", n, name[0] == 'u' ? "uniform" : "popular");
        return cache(name, buf);
    }
    char rest[64];
    if ((sscanf(name, "uni%ld%63s", &n, rest) == 2 || sscanf(name, "pop%ld%63s", &n, rest) == 2) && n > 0 && !strcmp(rest, "-llm")) {
        snprintf(buf, sizeof buf, "1+%ld %s, the users of the LLM stage", n, name[0] == 'u' ? "uniform" : "popular");
        return cache(name, buf);
    }
    return name;
}

const char *rpt_label_key(const rpt_opts *o, const rpt_set *s, const char *key)
{
    const char *u = user_label(o, key);
    if (u) return u;
    const char *dot = strrchr(key, '.');
    if (!dot) return key;
    for (size_t j = 0; j < s->nvaried; j++) {
        const char *d2 = strrchr(s->varied[j], '.');
        if (strcmp(s->varied[j], key) && d2 && !strcmp(d2 + 1, dot + 1)) return key;
    }
    return dot + 1;
}

int rpt_label_tex(dm_buf *b, const rpt_opts *o, const char *name, const char *label)
{
    if (is_user_label(o, name)) return dm_buf_adds(b, label);
    /* a variant of a model with a report.labels entry: that entry verbatim, the variant escaped */
    const char *at = strchr(name, '@');
    char base[256];
    snprintf(base, sizeof base, "%.*s", at ? (int)(at - name) : 0, name);
    const char *bl = at ? user_label(o, base) : NULL;
    size_t l = bl ? strlen(bl) : 0;
    if (bl && !strncmp(label, bl, l)) {
        DM_CALL(dm_buf_adds(b, bl));
        return rpt_label_tex_escape(b, label + l);
    }
    return rpt_label_tex_escape(b, label);
}

int rpt_label_tex_escape(dm_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\': DM_CALL(dm_buf_adds(b, "\\textbackslash{}")); break;
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
            DM_CALL(dm_buf_addc(b, '\\'));
            DM_CALL(dm_buf_addc(b, *s));
            break;
        /* accents on nothing, in every encoding: \textasciitilde and \textasciicircum need TS1, whose
         * fonts are bitmaps (Type 3) without cm-super */
        case '~': DM_CALL(dm_buf_adds(b, "\\~{}")); break;
        case '^': DM_CALL(dm_buf_adds(b, "\\^{}")); break;
        case '<': DM_CALL(dm_buf_adds(b, "\\textless{}")); break;
        case '>': DM_CALL(dm_buf_adds(b, "\\textgreater{}")); break;
        default: DM_CALL(dm_buf_addc(b, *s));
        }
    }
    return DM_OK;
}

static int has_word(const char *s, const char *w) { return strcasestr(s, w) != NULL; }

const char *rpt_quantity(const char *col, int with_loss)
{
    size_t l = strlen(col);
    if (has_word(col, "/s")) return "throughput";
    if (has_word(col, "second") || has_word(col, "latency") || !strcasecmp(col, "time") || (l > 4 && !strcmp(col + l - 4, " (s)")) ||
        (l > 2 && !strcmp(col + l - 2, "_s")))
        return "time";
    if (strchr(col, '@') || has_word(col, "mrr") || has_word(col, "ndcg") || has_word(col, "metric") || has_word(col, "recall"))
        return "metric";
    if (!strcasecmp(col, "lr") || has_word(col, "learning rate")) return "learning rate";
    if (has_word(col, "loss") || with_loss) return "loss";
    return col;
}

void rpt_label_free(void)
{
    dm_strv_free(g_lab_names, g_nlab_names);
    dm_strv_free(g_lab_vals, g_nlab_vals);
    g_lab_names = g_lab_vals = NULL;
    g_nlab_names = g_nlab_vals = 0;
}
