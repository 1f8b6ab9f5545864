/* report_util.c: escaping for LaTeX and gnuplot, see report_util.h. */
#include "report_util.h"

#include "../src/core/err.h"

int ru_tex_escape(dm_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\': DM_CALL(dm_buf_adds(b, "\\textbackslash{}")); break;
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
            DM_CALL(dm_buf_addc(b, '\\'));
            DM_CALL(dm_buf_addc(b, *s));
            break;
        case '~': DM_CALL(dm_buf_adds(b, "\\textasciitilde{}")); break;
        case '^': DM_CALL(dm_buf_adds(b, "\\textasciicircum{}")); break;
        case '<': DM_CALL(dm_buf_adds(b, "\\textless{}")); break;
        case '>': DM_CALL(dm_buf_adds(b, "\\textgreater{}")); break;
        default: DM_CALL(dm_buf_addc(b, *s));
        }
    }
    return DM_OK;
}

int ru_gp_str(dm_buf *b, const char *s)
{
    DM_CALL(dm_buf_addc(b, '"'));
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') DM_CALL(dm_buf_addc(b, '\\'));
        DM_CALL(dm_buf_addc(b, *s));
    }
    return dm_buf_addc(b, '"');
}
