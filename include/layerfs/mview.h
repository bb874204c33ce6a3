/* SPDX-License-Identifier: MIT */
/*
 * mview.h - one merged view for the whole-view operations (diff, commit):
 * the merged tree of a layer prefix, or that tree with an upper directory
 * on top, read the same way whichever it is.
 *
 * An object is looked up by name in a directory and comes with a stat
 * (type, mode, owner, size, mtime, rdev, nlink and the view's inode number;
 * st_dev is 0), its xattrs, its symlink target and its bytes.  Upper views
 * take a node reference per object: lf_mview_put() drops it.
 *
 * lf_mview_walk() visits a subtree depth-first, names in byte order, each
 * parent before its children, without recursion (a frame per directory
 * on a heap stack, so depth costs heap, never C stack).
 *
 * Ownership: the stack, tree and upper are borrowed.  Not thread-safe
 * (upper views take node references while they walk).
 */
#ifndef LAYERFS_MVIEW_H
#define LAYERFS_MVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/index.h"
#include "layerfs/stack.h"
#include "layerfs/tree.h"
#include "layerfs/upper.h"

/* The root directory of any view (LF_TREE_ROOT == LF_UPPER_ROOT). */
#define LF_MVIEW_ROOT LF_TREE_ROOT

/* A view: `tree` (a prefix of `stack`: the stack's layer i holds the data
 * of tree layer i), with `upper` on top when it is set. */
struct lf_mview {
	const struct lf_stack *stack;
	struct lf_tree *tree;
	struct lf_upper *upper;
};

/* One object of a view. */
struct lf_mobj {
	uint64_t id;	/* tree inode or upper node (0: none) */
	struct stat st; /* see above */
	bool in_upper;	/* upper views: the upper dir holds it */
	size_t layer;	/* tree objects with data: the layer holding it */
	const struct lf_idx_entry *entry; /* and its entry (else NULL) */
};

/* Child `name` of directory `dir`: 0, -ENOENT when there is none, or
 * another -errno (an upper dir that cannot be read). */
int lf_mview_lookup(const struct lf_mview *v, uint64_t dir, const char *name,
		    struct lf_mobj *o);

/* Drop what lookup took (upper views: the node reference); o->id = 0. */
void lf_mview_put(const struct lf_mview *v, struct lf_mobj *o);

/* The names in directory `dir`, sorted in byte order; free them with
 * lf_mview_names_free(). */
int lf_mview_names(const struct lf_mview *v, uint64_t dir, char ***names,
		   size_t *n);
void lf_mview_names_free(char **names, size_t n);

/* Each xattr of `o`: fn's non-zero return stops and is returned.  Upper
 * xattrs come in the filesystem's order, tree ones in the archive's. */
typedef int (*lf_mview_xattr_fn)(void *ctx, const char *name, const void *value,
				 size_t len);
int lf_mview_xattrs(const struct lf_mview *v, const struct lf_mobj *o,
		    lf_mview_xattr_fn fn, void *ctx);

/* A symlink's target, whole whatever its length: *target points into *buf
 * (realloc'd as needed, the caller frees it) or into the tree. */
int lf_mview_readlink(const struct lf_mview *v, const struct lf_mobj *o,
		      char **buf, const char **target);

/* A regular file opened for reading. */
struct lf_mview_file {
	const struct lf_mview *v;
	const struct lf_mobj *o;
	uint64_t fh; /* upper views: the open handle */
};

int lf_mview_open(const struct lf_mview *v, const struct lf_mobj *o,
		  struct lf_mview_file *f);
ssize_t lf_mview_read(struct lf_mview_file *f, void *buf, size_t len,
		      uint64_t off, struct lf_err *err);
void lf_mview_close(struct lf_mview_file *f);

/*
 * Visit every object below directory `dir` (not `dir` itself).  `path`
 * holds the directory's path on entry; for each object "/NAME" is appended
 * while fn runs, and the walk gives it back as it was.  fn returns 0 to go
 * on (into a directory too), LF_MVIEW_PRUNE to not enter this directory,
 * or a negative errno to stop: the walk returns it and leaves `path` naming
 * the object it stopped at.  A failed lookup or listing stops the walk the
 * same way.
 */
#define LF_MVIEW_PRUNE 1
typedef int (*lf_mview_visit_fn)(void *ctx, const struct lf_buf *path,
				 const struct lf_mobj *o);
int lf_mview_walk(const struct lf_mview *v, uint64_t dir, struct lf_buf *path,
		  lf_mview_visit_fn fn, void *ctx);

#endif /* LAYERFS_MVIEW_H */
