/* report_util.h: escaping of text for the report's LaTeX and gnuplot outputs. */
#ifndef DM_REPORT_UTIL_H
#define DM_REPORT_UTIL_H

#include "../src/core/buf.h"

int ru_tex_escape(dm_buf *b, const char *s);   /* \ _ % & # $ { } ~ ^ < > escaped */
int ru_gp_str(dm_buf *b, const char *s);       /* a gnuplot double-quoted string (enhanced text escaped) */

#endif
