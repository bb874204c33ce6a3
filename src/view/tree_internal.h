/* SPDX-License-Identifier: MIT */
/* tree_internal.h - the frozen tree, shared by tree.c and tree_lookup.c. */
#ifndef LAYERFS_TREE_INTERNAL_H
#define LAYERFS_TREE_INTERNAL_H

#include "layerfs/hash.h"
#include "layerfs/tree.h"

#define LF_NIL UINT32_MAX

/* One inode of the merged view; index = inode number (0 unused). */
struct tinode {
	int32_t layer;	/* -1: implicit directory */
	uint32_t entry; /* entry number in that layer's index */
	uint32_t nlink;
	uint32_t parent; /* directories: parent inode */
	uint32_t first;	 /* directories: first dirent; symlinks: the
				 * NUL-terminated target in names (so a walk
				 * never touches the index's strings) */
	uint32_t count;	 /* directories: number of dirents */
};

/* A name in a directory: bytes names[name .. name + len) of the tree. */
struct tdirent {
	uint32_t name;
	uint32_t len;
	uint32_t ino;
};

/*
 * inodes, dirents, slots and names are flat arrays without pointers, so a
 * tree can be stored in a file and used straight from its mapping
 * (tree_cache.c).  A directory's entries are dirents[first .. first +
 * count).  The names are the tree's own (not the indexes' full paths), so a
 * walk of the tree touches only them.
 */
struct lf_tree {
	struct lf_index **layers; /* owned array of borrowed indexes */
	size_t nlayers;
	struct tinode *inodes; /* [0..ninodes], 0 unused */
	uint32_t ninodes;
	struct tdirent *dirents;
	uint32_t ndirents;
	uint32_t *slots; /* hash of dirents by (dir, name) */
	uint32_t nslots; /* power of two, at least one LF_NIL */
	char *names;	 /* dirent names and symlink targets */
	size_t names_len;
	void *map; /* loaded from a file: the mapping that
					 * holds the arrays, else NULL */
	size_t maplen;
	/* a mapped tree is checked as it is used, not at load: one bit per
	 * inode, set once that directory's entries passed
	 * lf_tree_dir_checked() (set atomically: readers share the tree;
	 * bit 0, inode 0's, once a failed check was reported); NULL for a
	 * built tree, which needs no checks */
	uint64_t *checked;
	char *path; /* the mapped file, removed when a check fails */
	/* the key of the slots' hash, drawn at random when the tree was
	 * built (kept in the tree file): names an image chose in advance
	 * cannot all land in one slot */
	struct lf_hash_key hkey;
};

static inline const char *lf_tree_dirent_name(const struct lf_tree *t,
					      const struct tdirent *d)
{
	return t->names + d->name;
}

/* Hash of a name within directory `dir` (shared by build and lookup):
 * SipHash-2-4 under the tree's key (hash.h). */
static inline uint64_t lf_tree_hash(const struct lf_hash_key *key, uint64_t dir,
				    const char *name, size_t len)
{
	return lf_siphash(key, dir, name, len);
}

/*
 * Checks of a mapped tree's records (tree_lookup.c), made on use so that
 * mapping a tree costs nothing per entry.  A tree file may be anything that
 * passed the hashes; these make every reference it holds stay inside the
 * mapping and every downward walk end:
 *   lf_tree_inode_ok: the number in range; layer and entry exist; parent in
 *     range and, for a directory other than the root, a smaller number;
 *     a directory's entries inside the dirent array, a file without any;
 *     a symlink's target a NUL-terminated string inside the names.
 *   lf_tree_dir_checked: the inode is a good directory, and each of its
 *     entries names a good inode by a name inside the names that is one
 *     path component; a child directory has a larger number and this
 *     directory as its parent (so no walk down can loop).
 * The first failure is logged and the file removed (the next open builds
 * the tree again).  Built trees pass without a look.
 */
bool lf_tree_inode_ok(const struct lf_tree *t, uint64_t ino);
/* lf_tree_inode_ok() without the report of a failure (the load's check). */
bool lf_tree_inode_sane(const struct lf_tree *t, uint64_t ino);
bool lf_tree_dir_checked(const struct lf_tree *t, uint64_t dir);

#endif /* LAYERFS_TREE_INTERNAL_H */
