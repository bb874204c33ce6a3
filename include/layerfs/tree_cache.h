/* SPDX-License-Identifier: MIT */
/*
 * tree_cache.h - merged trees kept in the cache directory, so that a second
 * mount (or ls, diff) of the same layers costs a mapping, not a merge.
 *
 * `<cache>/tree-<hex>.tree`, hex = sha256 of the list of the layers' index
 * checksums (lf_index_checksum()): a rebuilt or different index names a
 * different tree.  Layout (native little-endian, like the index files):
 *   struct header (magic "LFTREE\r\n", version, sizes, offsets, the
 *                  slots' SipHash key drawn when the tree was built, two
 *                  hashes)
 *   inodes  struct tinode[ninodes + 1]
 *   dirents struct tdirent[ndirents]
 *   slots   uint32_t[nslots]
 *   names   the dirents' names back to back, and symlink targets
 *           (NUL-terminated), so a walk never touches the indexes' strings
 * A loaded file is checked (hashes, the root, the hash table's size) and
 * then used straight from the mapping; a file that fails is reported with
 * lf_log(WARN), ignored and replaced.  Every other record is checked where
 * it is used, so a mount makes no pass over the records: an inode
 * when it is asked for, a directory's entries (in bounds, one path
 * component each, child directories strictly below their parent in inode
 * order so no walk can loop) once, on its first listing, a name when a
 * lookup finds it, each hash slot as it is probed.  A record that fails
 * then (a file that passed the hashes, so made on purpose) makes that
 * query fail (-EIO, an empty listing); nothing reads outside the mapping.
 * Directory layers are never cached (lf_index_checksum() is NULL for them).
 *
 * Thread safety: reentrant; the tree it returns is tree.h's.
 */
#ifndef LAYERFS_TREE_CACHE_H
#define LAYERFS_TREE_CACHE_H

#include <stddef.h>

#include "layerfs/common.h"
#include "layerfs/index.h"
#include "layerfs/tree.h"

/* Part of the file name too: bump it whenever the layout or the merge
 * rules (tree.c) change, or old files would keep old answers. */
#define LF_TREE_FILE_VERSION                                                   \
	4 /* 2: names of its own, 3: link targets, 4: the slots' hash key */

/*
 * The tree of layers[0..n): loaded from `cache_dir` when a valid file is
 * there, else built (lf_tree_build()) and stored.  cache_dir NULL: built
 * only.  Errors are lf_tree_build()'s; a cache that cannot be written
 * costs speed only (a warning).
 */
int lf_tree_open(struct lf_index *const *layers, size_t n,
		 const char *cache_dir, struct lf_tree **out,
		 struct lf_err *err);

/* The file name ("tree-<hex>", without ".tree") a tree of these layers is
 * stored under; -ENOENT when they cannot be cached (directory layers). */
int lf_tree_cache_key(struct lf_index *const *layers, size_t n, char key[72]);

#endif /* LAYERFS_TREE_CACHE_H */
