/* fs.c: directories and atomic file writes, see fs.h. */
#include "fs.h"

#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int dm_fs_mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return DM_ERR(DM_EIO, "path too long: '%s'", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0775) != 0 && errno != EEXIST)
                return DM_ERR(DM_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return DM_OK;
}

int dm_fs_write_atomic(const char *path, const void *data, size_t n, int mode)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp) return DM_ERR(DM_EIO, "path too long: '%s'", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        DM_ERR(DM_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        DM_HINT("check that the directory exists and is writable");
        return DM_EIO;
    }
    int bad = n && fwrite(data, 1, n, f) != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        remove(tmp);
        return DM_ERR(DM_EIO, "cannot write '%s': %s", tmp, strerror(errno));
    }
    chmod(tmp, (mode_t)mode);
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return DM_ERR(DM_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    }
    return DM_OK;
}
