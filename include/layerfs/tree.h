/* SPDX-License-Identifier: MIT */
/*
 * tree.h - the merged view of layers 1..N (design.md section 3).
 *
 * lf_tree_build() applies the layers' index entries bottom to top, on
 * metadata only, with the OCI/OverlayFS rules: whiteouts and opaque markers
 * of a layer first, then its other entries in tar order; implicit parents;
 * a non-directory replaces whatever was at its path; a directory over a
 * directory merges; hardlinks share an inode.  The result is immutable:
 *   inode numbers 1..count (1 = root, FUSE's root id), stable for a given
 *   image and prefix; hardlinked names share one inode;
 *   directory entries in tar order, so a recursive walk reads the blobs
 *   nearly sequentially; lookup by name is a hash probe.
 * The tree owns its names and symlink targets (one array, so it can be
 * stored and mapped: tree_cache.h); entries and xattrs are borrowed from the
 * indexes, which must outlive the tree.
 *
 * This module knows nothing of blobs or FUSE.  Thread safety: immutable after
 * build; any number of readers.
 */
#ifndef LAYERFS_TREE_H
#define LAYERFS_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "layerfs/common.h"
#include "layerfs/index.h"

#define LF_TREE_ROOT 1

struct lf_tree;

/* What an inode looks like (a stat-like record; fields are the contract). */
struct lf_tree_attr {
	uint64_t ino;
	uint32_t mode;	/* full st_mode: type | permissions */
	uint32_t nlink; /* dirs: 2 + subdirs; others: visible names */
	uint32_t uid, gid;
	uint64_t size;	 /* files: bytes; symlinks: target length */
	uint64_t blocks; /* 512-byte blocks of data actually stored */
	int64_t mtime;
	uint32_t mtime_nsec;
	uint32_t rdev_major, rdev_minor;
	int layer; /* 0-based layer of the entry, -1 implicit dir */
	const struct lf_idx_entry *entry; /* NULL for implicit dirs */
};

/*
 * Merge `layers[0..n)` (bottom first, borrowed).  Errors name the layer and
 * entry, e.g. "layer 3: hardlink 'a' points to 'b', which does not exist".
 * The caller frees the tree with lf_tree_free().
 */
int lf_tree_build(struct lf_index *const *layers, size_t n,
		  struct lf_tree **out, struct lf_err *err);
void lf_tree_free(struct lf_tree *t);

/*
 * Layer k's own entries alone, as its tar lists them: whiteouts (`.wh.NAME`)
 * and opaque markers (`.wh..wh..opq`) stay as the empty files they are,
 * nothing is deleted; implicit parents as usual; a hardlink to a file of a
 * lower layer is left out.  Inodes name layer k of `layers` (n of them), so
 * data reads go to the stack's layer k.  Not cached.
 */
int lf_tree_build_layer(struct lf_index *const *layers, size_t n, size_t k,
			struct lf_tree **out, struct lf_err *err);

/*
 * The same merge one layer at a time, for accounting that needs every
 * prefix (waste, layers): linear in the entries, where building a tree per
 * prefix is quadratic.  lf_tree_build() is new + apply n times + finish.
 *
 * gone(arg, layer, entry) is called when a regular file, symlink or other
 * non-directory leaves the view: its last name is whited out, replaced, or
 * removed with a parent (a file still reachable through another hardlink
 * has not left).  A non-zero return stops lf_merge_apply() with that error.
 */
struct lf_merge;
typedef int (*lf_merge_gone_fn)(void *arg, size_t layer, uint32_t entry);

int lf_merge_new(struct lf_index *const *layers, size_t n,
		 lf_merge_gone_fn gone, void *arg, struct lf_merge **out);
/* Apply the next layer (whiteouts first, then entries in tar order). */
int lf_merge_apply(struct lf_merge *g, struct lf_err *err);
/* Bytes of the regular files below directory path[0..len) of the current
 * view, each file once; symlinks on the way are not followed.  -ENOENT
 * when the path is not a directory of the view. */
int lf_merge_dir_bytes(struct lf_merge *g, const char *path, size_t len,
		       uint64_t *bytes);
/* Freeze the layers applied so far into a tree; then only lf_merge_free(). */
int lf_merge_finish(struct lf_merge *g, struct lf_tree **out,
		    struct lf_err *err);
void lf_merge_free(struct lf_merge *g);

/* Number of inodes (the largest inode number). */
uint64_t lf_tree_count(const struct lf_tree *t);

/* Fill *a for inode `ino`; -ENOENT for a number out of range, -EIO for a
 * record of a mapped tree that fails its check (tree_cache.h). */
int lf_tree_getattr(const struct lf_tree *t, uint64_t ino,
		    struct lf_tree_attr *a);

/* Child `name` (len bytes) of directory `dir`: 0, -ENOENT, -ENOTDIR or
 * -EIO (a record of a mapped tree that fails its check). */
int lf_tree_lookup(const struct lf_tree *t, uint64_t dir, const char *name,
		   size_t len, uint64_t *ino);

/* Parent of a directory (the root is its own parent). */
uint64_t lf_tree_parent(const struct lf_tree *t, uint64_t dir);

/*
 * Resolve a path inside the image ("", "/", "etc/passwd", "/etc/../x" are all
 * relative to the image root; the walk never leaves it: ".." at the root
 * stays there, absolute symlink targets restart at the image root).
 * Symlinks in the middle are followed; the last component only with
 * LF_TREE_FOLLOW.  No limit on the length of the path or of a target.
 * -ENOENT, -ENOTDIR, -ELOOP (more than 40 links), -ENOMEM.
 */
#define LF_TREE_FOLLOW 1
int lf_tree_resolve(const struct lf_tree *t, const char *path, int flags,
		    uint64_t *ino);

/* Number of entries in directory `dir` (0 for non-directories, and for a
 * directory of a mapped tree whose entries fail their check). */
size_t lf_tree_dir_count(const struct lf_tree *t, uint64_t dir);
/* Entry i < lf_tree_dir_count(t, dir) of directory `dir` (ask the count
 * first: it checks a mapped directory's entries): name (not
 * NUL-terminated), length, inode. */
void lf_tree_dir_entry(const struct lf_tree *t, uint64_t dir, size_t i,
		       const char **name, size_t *len, uint64_t *ino);

/* Symlink target (NUL-terminated, borrowed) or NULL. */
const char *lf_tree_readlink(const struct lf_tree *t, uint64_t ino);

/* xattrs of an inode: count, then name/value of k. */
size_t lf_tree_xattr_count(const struct lf_tree *t, uint64_t ino);
void lf_tree_xattr(const struct lf_tree *t, uint64_t ino, size_t k,
		   const char **name, const void **value, size_t *len);

/* xattr `name` of an inode: 0 with the value borrowed, or -ENODATA. */
int lf_tree_getxattr(const struct lf_tree *t, uint64_t ino, const char *name,
		     const void **value, size_t *len);

/* A struct stat for an inode's attributes: atime and ctime follow mtime
 * (a tar keeps only mtime), st_blksize is 4096, st_dev is left 0. */
void lf_tree_attr_stat(const struct lf_tree_attr *a, struct stat *st);

/* The layer (0-based) and index entry holding a regular file's data. */
int lf_tree_data(const struct lf_tree *t, uint64_t ino, size_t *layer,
		 const struct lf_idx_entry **e);

#endif /* LAYERFS_TREE_H */
