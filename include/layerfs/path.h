/* SPDX-License-Identifier: MIT */
/*
 * path.h - normalise the paths found in tar entries and image references.
 *
 * design.md section 3 rule 1: strip leading "./" and "/", collapse "//" and
 * "." components, drop a trailing "/"; a ".." component or an empty name is
 * refused.  The root directory normalises to the empty string ("." or "./"
 * entries name the root).  Nothing here touches the host filesystem.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef LAYERFS_PATH_H
#define LAYERFS_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "layerfs/buf.h"

/*
 * Normalise `in` (len bytes, need not be NUL-terminated) into `out` (reset
 * first).  Returns 0, -EINVAL when a component is ".." or the input is empty,
 * or -ENOMEM.  No message: callers know the layer and entry to name.
 */
int lf_path_normalize(const char *in, size_t len, struct lf_buf *out);

/* Is `p` what lf_path_normalize() makes: "" (the root) or components
 * joined by single slashes, none empty, "." or "..", no slash at either
 * end?  (For data read back from a cache file.) */
bool lf_path_is_normal(const char *p);

/*
 * Iterate components of a normalised path: *pos starts at the path; each call
 * sets *comp and *clen to the next component and returns 1, or returns 0 at the end.
 */
int lf_path_next(const char **pos, const char **comp, size_t *clen);

/* Last component of a normalised path (pointer into `path`). */
const char *lf_path_basename(const char *path);

/* Length of the parent part of a normalised path ("" for a top-level name). */
size_t lf_path_dirlen(const char *path);

#endif /* LAYERFS_PATH_H */
