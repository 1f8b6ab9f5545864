/* fs.h: files and directories for outputs written by one process (rank 0's reports, manifests and
 * scripts): directory creation and atomic file replacement. Reading a whole file is dm_read_file
 * (lines.h). Errors are recorded with the path and returned as DM_EIO.
 */
#ifndef DM_FS_H
#define DM_FS_H

#include <stddef.h>

/* mkdir -p (mode 0775 before the umask); existing directories are fine. */
int dm_fs_mkdirs(const char *path);
/* Writes n bytes of data to <path>.part, sets its mode (e.g. 0644, 0755), then renames it over
 * path, so a reader never sees a half-written file; the .part file is removed on failure. */
int dm_fs_write_atomic(const char *path, const void *data, size_t n, int mode);

#endif
