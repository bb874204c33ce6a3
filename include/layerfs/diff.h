/* SPDX-License-Identifier: MIT */
/*
 * diff.h - compare two views of an image: two layer prefixes, or a prefix
 * and the same prefix with an upper directory on top.
 *
 * Changes come out as `docker diff` prints them: A (added), C (changed),
 * D (deleted), in a depth-first walk with names in byte order, so parents
 * come before children.  An added directory lists its whole subtree; a
 * deleted path is one change (its children are implied); a directory is
 * changed only when its own metadata is (type, mode, owner, mtime, xattrs);
 * anything else is changed when type, mode, owner, size, mtime, symlink
 * target, xattrs, device number or content differ.  Content is compared by
 * sha256, and only when the cheaper fields agree and the data come from
 * different places (two tree entries, or an upper file; the views may be of
 * two stacks, two images: entries at the same offset of layers with the
 * same blob digest hold the same bytes, so a shared base costs no reads).  With an upper
 * directory, only what exists in it is walked: the rest is the image.
 *
 * The views are lf_mview's (mview.h): a prefix's tree, or the tree with an
 * upper dir on top.
 *
 * Ownership: views and their trees, blobs and uppers are borrowed.  Not
 * thread-safe (the upper view takes node references while it walks).
 */
#ifndef LAYERFS_DIFF_H
#define LAYERFS_DIFF_H

#include <stdint.h>

#include "layerfs/common.h"
#include "layerfs/mview.h"

struct lf_diff_change {
	char kind;	  /* 'A', 'C' or 'D' */
	const char *path; /* "/etc/passwd"; valid during the callback */
	uint32_t mode;	  /* st_mode of the new object (D: the old) */
	uint64_t size;	  /* regular files: the new size (D: the old);
				 * D of a directory: bytes of files below */
};

/* Return 0 to go on, a negative errno to stop. */
typedef int (*lf_diff_fn)(void *ctx, const struct lf_diff_change *c);

/* Compare view a (before) with view b (after). */
int lf_diff_run(const struct lf_mview *a, const struct lf_mview *b,
		lf_diff_fn fn, void *ctx, struct lf_err *err);

#endif /* LAYERFS_DIFF_H */
